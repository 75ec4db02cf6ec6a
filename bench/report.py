"""Run bench/, then print one markdown table of ratios against each named baseline.

    python bench/report.py --quick     # the default; a few minutes on 2 cores
    python bench/report.py --full      # larger shapes, the k=3, l=2 case everywhere

Writes bench/results/<date>.json (pytest-benchmark's JSON with machine info, plus the
interleaved target measurements and the memory accounting under "te_bench"), <date>.md (the
table), <date>.log (pytest's output) and the plots time_vs_T.png, time_vs_pairs.png and
window_step_vs_window.png.

The four targets of TARGETS.md are measured here again, in this one process, with the op and
its baseline interleaved round by round (bench/alternate.py); the other rows are the medians
pytest-benchmark measured, each group in one process. No figure here is asserted on.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import subprocess
import sys
import time
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)

import torch  # noqa: E402

import alternate  # noqa: E402
import delays_target  # noqa: E402
import conftest  # noqa: E402
import workloads  # noqa: E402

# Seconds of interleaved timing per target.
TARGET_BUDGET_S = {"quick": {"P1": 3.0, "P2": 4.0, "P3": 8.0, "P4": 4.0, "D1": 6.0, "S1": 6.0,
                             "S2": 6.0, "D2": 30.0},
                   "full": {"P1": 10.0, "P2": 10.0, "P3": 30.0, "P4": 10.0, "D1": 20.0, "S1": 60.0,
                            "S2": 60.0, "D2": 90.0}}


# ----------------------------------------------------------------------------- formatting


def fmt_time(seconds: Optional[float]) -> str:
    if seconds is None:
        return "–"
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("µs", 1e-6)):
        if seconds >= scale:
            return f"{seconds / scale:.3g} {unit}"
    return f"{seconds / 1e-9:.3g} ns"


def _kib(value: Optional[int]) -> str:
    return "n/a" if value is None else f"{value / 1024:.0f} KiB"


def fmt_ratio(value: Optional[float]) -> str:
    if value is None:
        return "–"
    if value >= 100:
        return f"{value:,.0f}×"
    return f"{value:.3g}×"


# ----------------------------------------------------------------------------- background load


class CpuLoad:
    """Share of the machine's CPU time used by other processes between start() and stop()."""

    def start(self) -> None:
        self._stat, self._own = self._read(), self._own_time()

    def stop(self) -> Optional[float]:
        if self._stat is None:
            return None
        busy0, total0 = self._stat
        busy1, total1 = self._read() or (busy0, total0)
        ticks = os.sysconf("SC_CLK_TCK")
        others = (busy1 - busy0) / ticks - (self._own_time() - self._own)
        total = (total1 - total0) / ticks
        return max(0.0, others / total) if total > 0 else None

    @staticmethod
    def _read() -> Optional[Tuple[int, int]]:
        try:
            with open("/proc/stat") as fh:
                fields = [int(v) for v in fh.readline().split()[1:]]
        except (OSError, ValueError):
            return None
        idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
        return sum(fields) - idle, sum(fields)

    @staticmethod
    def _own_time() -> float:
        t = os.times()  # children count as ours: the pytest child has been waited for
        return t.user + t.system + t.children_user + t.children_system


# ----------------------------------------------------------------------------- pytest-benchmark


def run_pytest(full: bool, json_path: str, log_path: str) -> Tuple[int, List[str]]:
    """pytest bench/ --benchmark-only in a child process; returns its exit code and skip reasons."""
    cmd = [sys.executable, "-m", "pytest", HERE, "--benchmark-only", f"--benchmark-json={json_path}",
           "-q", "-rs", "-p", "no:cacheprovider", "--benchmark-columns=median,iqr,rounds,iterations"]
    if full:
        cmd.append("--full")
    print("$", " ".join(cmd), flush=True)
    with open(log_path, "w") as log:
        proc = subprocess.run(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, text=True)
    with open(log_path) as log:
        text = log.read()
    skips = sorted(set(m.group(1).strip() for m in re.finditer(r"^SKIPPED \[\d+\] [^:]+:\d+: (.*)$",
                                                               text, re.M)))
    summary = [line for line in text.splitlines() if re.search(r"\d+ (passed|failed|error)", line)]
    print("pytest:", summary[-1] if summary else f"exit code {proc.returncode}", flush=True)
    if proc.returncode not in (0, 5):
        print(text[-4000:], file=sys.stderr)
    return proc.returncode, skips


def benchmark_rows(data: Dict[str, Any]) -> List[Dict[str, Any]]:
    """Table rows from pytest-benchmark JSON: every "ours" entry of a group against every baseline."""
    groups: Dict[str, List[Dict[str, Any]]] = {}
    for bench in data.get("benchmarks", []):
        groups.setdefault(bench["group"], []).append(bench)
    order = ["transfer_entropy[", "significance[", "joint_counts[", "te_from_counts[", "transfer_entropy_pairs[",
             "train_step[", "window_step["]
    rows = []
    for prefix in order:
        for group in sorted(g for g in groups if g.startswith(prefix)):
            entries = groups[group]
            ours = [b for b in entries if b["extra_info"].get("role") == "ours"]
            bases = [b for b in entries if b["extra_info"].get("role") == "baseline"]
            for o in ours:
                for b in bases:
                    t_ours = o["stats"]["median"] * o["extra_info"].get("scale", 1.0)
                    t_base = b["stats"]["median"] * b["extra_info"].get("scale", 1.0)
                    rows.append({"what": group, "ours": o["extra_info"]["label"],
                                 "baseline": b["extra_info"]["label"], "t_ours": t_ours,
                                 "t_base": t_base, "ratio": t_ours / t_base})
    return rows


# ----------------------------------------------------------------------------- targets


@contextlib.contextmanager
def torch_threads(n: Optional[int]) -> Iterator[None]:
    """Runs the block with ``n`` intra-op threads (None: as configured)."""
    before = torch.get_num_threads()
    if n is not None:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _not_measured(tid: str, reason: str) -> Dict[str, Any]:
    return {"id": tid, "measured": None, "reason": reason}


def d3_from_results(folder: str) -> Dict[str, Any]:
    """D3 from the newest bench/results/d3-*.json of bench/d3_toolbox.py (it needs two git
    mirrors and minutes of the toolbox, so it is run on its own): the smallest speed-up over its
    recordings and orders."""
    import glob

    runs = sorted(glob.glob(os.path.join(folder, "d3-*.json")))
    if not runs:
        return _not_measured("D3", "run bench/d3_toolbox.py first (needs git mirrors of "
                                   "Motoki878/Kaji_EICont and shixnya/transfer-entropy-toolbox)")
    with open(runs[-1]) as fh:
        rows = json.load(fh)["rows"]
    if not all("speedup_te_matrix" in r for r in rows):
        return _not_measured("D3", f"{os.path.basename(runs[-1])} predates the te-matrix end-to-end "
                                   "timing; rerun bench/d3_toolbox.py")
    ratios = sorted(r["speedup_te_matrix"] for r in rows)  # te-matrix end to end, the target
    return {"id": "D3", "measured": ratios[0], "quartiles": [ratios[0], ratios[-1]],
            "rounds": len(rows), "t_ours": sum(r["t_te_matrix"] for r in rows),
            "t_base": sum(r["t_toolbox_1_thread"] for r in rows),
            "op_only": sorted(r["speedup"] for r in rows),
            "peak_rss_gib": [round(r["te_matrix_peak_rss_bytes"] / 2**30, 3) for r in rows],
            "source": os.path.basename(runs[-1])}


def target_p1(budget: float) -> Dict[str, Any]:
    import te_ext

    x = workloads.KernelInputs(workloads.KernelCase(256, 256, 4096))
    times = alternate.alternate({"ours": lambda: te_ext.transfer_entropy(x.source, x.target),
                                 "gemm": workloads.gemm_floor(x)}, budget_s=budget)
    mid, lo, hi = alternate.paired_ratio(times["ours"], times["gemm"])
    return {"id": "P1", "measured": mid, "quartiles": [lo, hi], "rounds": len(times["ours"]),
            "t_ours": alternate.median(times["ours"]), "t_base": alternate.median(times["gemm"])}


def target_p2(budget: float) -> Dict[str, Any]:
    import te_ext

    x = workloads.KernelInputs(workloads.KernelCase(256, 256, 4096))
    pyinform, scale = workloads.pyinform_sample(x)
    times = alternate.alternate({"ours": lambda: te_ext.transfer_entropy(x.source, x.target),
                                 "pyinform": pyinform}, budget_s=budget)
    mid, lo, hi = alternate.paired_ratio(times["pyinform"], times["ours"], scale)
    return {"id": "P2", "measured": mid, "quartiles": [lo, hi], "rounds": len(times["ours"]),
            "t_ours": alternate.median(times["ours"]),
            "t_base": alternate.median(times["pyinform"]) * scale,
            "pyinform_sample_pairs": len(x.pyinform_sample), "pyinform_per_pair":
            alternate.median(times["pyinform"]) / len(x.pyinform_sample)}


def target_p3(budget: float) -> Tuple[Dict[str, Any], Optional[Dict[str, Any]]]:
    reason = workloads.training_available()
    if reason:
        return _not_measured("P3", reason), None
    steps = {v: workloads.TrainingStep(v) for v in ("plain", "te", "te_subset")}
    try:
        times = alternate.alternate(steps, budget_s=budget)
    finally:
        for step in steps.values():
            step.close()
    out = {}
    for variant in ("te", "te_subset"):
        mid, lo, hi = alternate.paired_ratio(times[variant], times["plain"])
        out[variant] = {"measured": mid, "quartiles": [lo, hi], "rounds": len(times["plain"]),
                        "t_ours": alternate.median(times[variant]),
                        "t_base": alternate.median(times["plain"]),
                        "te_kwargs": {k: repr(v) for k, v in steps[variant].te_kwargs.items()}}
    return dict(out["te"], id="P3"), dict(out["te_subset"], id="P3-subset")


def target_p4(budget: float) -> Tuple[Dict[str, Any], List[Dict[str, Any]]]:
    reason = workloads.streaming_available()
    if reason:
        return _not_measured("P4", reason), []
    steps = {w: workloads.WindowStep(w) for w in workloads.WINDOWS}
    times = alternate.alternate({str(w): s for w, s in steps.items()}, budget_s=budget)
    base = str(workloads.WINDOWS[0])
    rows = []
    for w in workloads.WINDOWS[1:]:
        mid, lo, hi = alternate.paired_ratio(times[str(w)], times[base])
        rows.append({"window": w, "measured": mid, "quartiles": [lo, hi],
                     "t_ours": alternate.median(times[str(w)]), "t_base": alternate.median(times[base])})
    p4 = dict(rows[-1], id="P4", rounds=len(times[base]))
    return p4, rows


def target_s1(budget: float, level: str = "quick") -> Dict[str, Any]:
    import stats_workloads as sw

    s = sw.SURROGATES[level]
    times = alternate.alternate({"ours": sw.ours(s), "te": sw.repeated_te(s)}, budget_s=budget,
                                min_rounds=3)
    mid, lo, hi = alternate.paired_ratio(times["ours"], times["te"])
    return {"id": "S1", "measured": mid, "quartiles": [lo, hi], "rounds": len(times["ours"]),
            "t_ours": alternate.median(times["ours"]), "t_base": alternate.median(times["te"]),
            "surrogates": s}


def target_s2(budget: float, level: str = "quick") -> Dict[str, Any]:
    import stats_workloads as sw

    reason = sw.jidt_unavailable()
    if reason:
        return _not_measured("S2", reason)
    s = sw.SURROGATES[level]
    jidt, scale, sample = sw.jidt_sample(level)
    times = alternate.alternate({"ours": sw.ours(s), "jidt": jidt}, budget_s=budget, min_rounds=3)
    # Both sides brought to 1000 surrogates over all pairs: JIDT extrapolated from its sample
    # of pairs, ours scaled from S surrogates.
    ours_scale = sw.JIDT_SURROGATES / s
    mid, lo, hi = alternate.paired_ratio(times["jidt"], times["ours"], scale / ours_scale)
    return {"id": "S2", "measured": mid, "quartiles": [lo, hi],
            "rounds": len(times["ours"]), "t_ours": alternate.median(times["ours"]) * ours_scale,
            "t_base": alternate.median(times["jidt"]) * scale, "jidt_sample_pairs": sample,
            "surrogates_timed": s}


def memory_report() -> Dict[str, Any]:
    reason = workloads.streaming_available()
    if reason:
        return {"reason": reason}
    per_window = [workloads.window_memory(w) for w in workloads.WINDOWS]
    lo, hi = per_window[0], per_window[-1]
    # nbytes = fixed + per_sample * window: the slope is what a window sample costs, the rest
    # is per pair (the counts) and per neuron.
    per_sample = (hi["nbytes"] - lo["nbytes"]) / (hi["window"] - lo["window"])
    fixed = lo["nbytes"] - per_sample * lo["window"]
    return {"per_window": per_window, "bytes_per_window_sample": per_sample,
            "fixed_bytes_per_pair": fixed / (lo["source"] * lo["target"]),
            "window_bits_per_sample_bound": (lo["source"] + lo["target"]) / 8}


_NO_EXTRA = object()


def _guarded(tid: str, fn: Callable[[float], Any], budget: float, extra: Any = _NO_EXTRA) -> Any:
    """A target that raises is reported as not measured, with the error, instead of ending the run."""
    try:
        return fn(budget)
    except Exception as exc:  # noqa: BLE001
        failed = _not_measured(tid, f"failed: {type(exc).__name__}: {exc}")
        return failed if extra is _NO_EXTRA else (failed, extra)


# id: (what, ours, baseline, sense, our target, the issue's target)
TARGETS = {
    "P1": ("transfer_entropy 256×256 T=4096 / fp32 GEMM", "te_ext transfer_entropy",
           "torch.matmul [256×4096]@[4096×768]", "le", 0.15, 0.5),
    "P2": ("PyInform all pairs (extrapolated) / transfer_entropy, 256×256 T=4096",
           "te_ext transfer_entropy", "pyinform × 65,536 pairs (extrapolated)", "ge", 2000.0, 1000.0),
    "P3": ("USPS CNN train step with TE feedback / plain step, batch 64", "te (paper preset)",
           "plain", "le", 1.05, 1.05),
    "P4": ("TE window step at window 4096 / at window 512", "window=4096", "window=512",
           "le", 1.2, None),
    "D1": ("transfer_entropy_delays, 30 delays / one transfer_entropy, 256×256 T=4096",
           "te_ext transfer_entropy_delays(1..30)", "te_ext transfer_entropy (one delay)", "le",
           12.0, 12.0),
    "D2": ("30-delay scan, 200 neurons at 2% density, T=3.6 M: sparse path speed-up over dense",
           "te_ext transfer_entropy_delays, sparse path", "the same scan, dense path", "ge",
           10.0, 10.0),
    "D3": ("te-matrix on Kaji_EICont data1/data5 / the toolbox's transent.c (1 thread)",
           "te-matrix, 2 threads", "transent.c, 1 thread", "ge", 10.0, 10.0),
    "S1": ("significance(surrogates=S) 256×256 T=4096 / S × transfer_entropy",
           "te_ext significance", "S × te_ext transfer_entropy", "le", 1.1, 1.1),
    "S2": ("JIDT computeSignificance(1000) all pairs (extrapolated) / significance(1000), "
           "256×256 T=4096", "te_ext significance(1000)",
           "JIDT computeSignificance(1000) × 65,536 pairs (extrapolated)", "ge", 1000.0, 1000.0),
}


def target_rows(results: Dict[str, Dict[str, Any]]) -> List[Dict[str, Any]]:
    rows = []
    for tid, (what, ours, base, sense, goal, issue_goal) in TARGETS.items():
        r = results.get(tid) or _not_measured(tid, "not run")
        m = r.get("measured")
        if m is None:
            status = f"not measured: {r.get('reason')}"
        else:
            ok = m <= goal if sense == "le" else m >= goal
            status = "**met**" if ok else "**missed**"
            if issue_goal is not None and issue_goal != goal:
                ok_issue = m <= issue_goal if sense == "le" else m >= issue_goal
                status += f" (issue's {'≤' if sense == 'le' else '≥'}{issue_goal:g}×: " \
                          f"{'met' if ok_issue else 'missed'})"
            status += f"; IQR {fmt_ratio(r['quartiles'][0])}–{fmt_ratio(r['quartiles'][1])}, " \
                      f"{r.get('rounds')} rounds"
        rows.append({"what": f"**{tid}** {what}", "ours": ours, "baseline": base, "target": f"{'≤' if sense == 'le' else '≥'} {goal:g}×",
                     "measured": m, "status": status, "t_ours": r.get("t_ours"), "t_base": r.get("t_base")})
    return rows


# ----------------------------------------------------------------------------- output


def markdown_table(targets: List[Dict[str, Any]], extra: List[Dict[str, Any]],
                   rows: List[Dict[str, Any]]) -> str:
    lines = ["| group / target | ours | baseline | ours (median) | baseline (median) | "
             "ours / baseline | baseline / ours | target | status |",
             "|---|---|---|---|---|---|---|---|---|"]
    for t in targets:
        m = t["measured"]
        # P2 is stated as a speed-up, the others as a time ratio.
        ratio = None if m is None else (1 / m if ("P2" in t["what"] or "S2" in t["what"]) else m)
        lines.append(f"| {t['what']} | {t['ours']} | {t['baseline']} | {fmt_time(t['t_ours'])} | {fmt_time(t['t_base'])} | "
                     f"{fmt_ratio(ratio)} | {fmt_ratio(None if ratio is None else 1 / ratio)} | "
                     f"{t['target']} | {t['status']} |")
    for e in extra:
        lines.append(f"| {e['what']} | {e['ours']} | {e['baseline']} | {fmt_time(e['t_ours'])} | "
                     f"{fmt_time(e['t_base'])} | {fmt_ratio(e['ratio'])} | {fmt_ratio(1 / e['ratio'])} "
                     f"| | interleaved |")
    for r in rows:
        lines.append(f"| `{r['what']}` | {r['ours']} | {r['baseline']} | {fmt_time(r['t_ours'])} | "
                     f"{fmt_time(r['t_base'])} | {fmt_ratio(r['ratio'])} | {fmt_ratio(1 / r['ratio'])} | | |")
    return "\n".join(lines)


def _series(data: Dict[str, Any], prefixes: Tuple[str, ...], key: Callable[[Dict[str, Any]], float]
            ) -> Dict[str, List[Tuple[float, float, float, float]]]:
    """(x, median, q1, q3) points per series name, from the groups starting with ``prefixes``."""
    lines: Dict[str, List[Tuple[float, float, float, float]]] = {}
    for b in data.get("benchmarks", []):
        if b["group"].startswith(prefixes):
            e, st = b["extra_info"], b["stats"]
            lines.setdefault(e.get("series", e["label"]), []).append(
                (key(e), st["median"], st["q1"], st["q3"]))
    return {name: sorted(points) for name, points in lines.items()}


def plot(data: Dict[str, Any], out_dir: str, title_note: str) -> List[str]:
    import matplotlib
    import numpy as np

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    specs = [
        ("time_vs_T.png", ("scan_T[",), lambda e: e["T"], "T (time steps)",
         "all pairs, I = J = 256, k = l = 1"),
        ("time_vs_pairs.png", ("scan_pairs[",), lambda e: e["I"] * e["J"], "I × J (neuron pairs)",
         "all pairs, T = 1024, k = l = 1"),
        ("window_step_vs_window.png", ("window_step[", "window_recount["), lambda e: e["window"],
         "window (samples)",
         f"append a batch of {workloads.BATCH} + te_from_counts, "
         f"I={workloads.WINDOW_SOURCES}, J={workloads.WINDOW_TARGETS}"),
    ]
    written = []
    for name, prefixes, key, xlabel, title in specs:
        series = _series(data, prefixes, key)
        if not series:
            print(f"plot {name}: no data (benchmarks skipped), not written")
            continue
        fig, ax = plt.subplots(figsize=(6, 4))
        for label, points in series.items():
            xs, mid, q1, q3 = (np.array(v) * (1 if i == 0 else 1e3) for i, v in enumerate(zip(*points)))
            ax.errorbar(xs, mid, yerr=[mid - q1, q3 - mid], marker="o", capsize=3, label=label)
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel(xlabel)
        ax.set_ylabel("median time (ms); bars: quartiles")
        ax.set_title(f"{title}\n{title_note}", fontsize=9)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
        fig.tight_layout()
        path = os.path.join(out_dir, name)
        fig.savefig(path, dpi=110)
        plt.close(fig)
        written.append(path)
    return written


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true", help="the default: the issue's shapes")
    mode.add_argument("--full", action="store_true", help="larger shapes and longer timing")
    parser.add_argument("--out", default=os.path.join(HERE, "results"), help="output folder")
    args = parser.parse_args(argv)
    level = "full" if args.full else "quick"
    started = time.perf_counter()
    os.makedirs(args.out, exist_ok=True)
    stamp = time.strftime("%Y-%m-%d_%H%M%S")
    json_path = os.path.join(args.out, f"{stamp}.json")

    pytest_load = CpuLoad()
    pytest_load.start()
    code, skips = run_pytest(args.full, json_path, os.path.join(args.out, f"{stamp}.log"))
    pytest_background = pytest_load.stop()
    if not os.path.exists(json_path):
        print(f"pytest wrote no {json_path} (exit code {code}); see the .log", file=sys.stderr)
        return 1
    with open(json_path) as fh:
        data = json.load(fh)

    budgets = TARGET_BUDGET_S[level]
    load = CpuLoad()
    load.start()
    results: Dict[str, Dict[str, Any]] = {}
    print("targets: interleaved timing ...", flush=True)
    results["P1"] = _guarded("P1", target_p1, budgets["P1"])
    results["P2"] = _guarded("P2", target_p2, budgets["P2"])
    results["P3"], subset = _guarded("P3", target_p3, budgets["P3"], extra=None)
    results["P4"], windows = _guarded("P4", target_p4, budgets["P4"], extra=[])
    results["D1"] = _guarded("D1", delays_target.target_d1, budgets["D1"])
    results["D2"] = _guarded("D2", delays_target.target_d2, budgets["D2"])
    results["D3"] = d3_from_results(args.out)
    results["S1"] = _guarded("S1", lambda b: target_s1(b, level), budgets["S1"])
    results["S2"] = _guarded("S2", lambda b: target_s2(b, level), budgets["S2"])
    # One thread on both sides: far less sensitive to a busy neighbour than two threads that
    # wait on each other, so a useful cross-check when the background load is high.
    with torch_threads(1):
        single = {"P1": _guarded("P1", target_p1, budgets["P1"]),
                  "P2": _guarded("P2", target_p2, budgets["P2"])}
    background = load.stop()
    try:
        memory = memory_report()
    except Exception as exc:  # noqa: BLE001
        memory = {"reason": f"{type(exc).__name__}: {exc}"}

    extra = []
    for tid, r in single.items():
        if r.get("measured") is None:
            continue
        what, ours, base = TARGETS[tid][:3]
        ratio = r["measured"] if tid == "P1" else 1 / r["measured"]
        extra.append({"what": f"{tid} at 1 thread (both sides): {what}", "ours": ours, "baseline": base,
                      "t_ours": r["t_ours"], "t_base": r["t_base"], "ratio": ratio})
    if subset:
        extra.append({"what": "P3 variant: train step, TE on a random 10% of pairs / plain",
                      "ours": "te_subset", "baseline": "plain", "t_ours": subset["t_ours"],
                      "t_base": subset["t_base"], "ratio": subset["measured"]})
    for w in windows[:-1]:
        extra.append({"what": f"P4 scan: window step {w['window']} / 512", "ours": f"window={w['window']}",
                      "baseline": "window=512", "t_ours": w["t_ours"], "t_base": w["t_base"],
                      "ratio": w["measured"]})

    info = conftest.runtime_info()
    wall = time.perf_counter() - started
    data["te_bench"] = {"level": level, "targets": results, "p3_subset": subset, "p4_windows": windows,
                        "single_thread": single, "memory": memory, "background_cpu_share": background,
                        "background_cpu_share_pytest": pytest_background, "skipped": skips,
                        "runtime": info, "wall_s": wall}
    with open(json_path, "w") as fh:
        json.dump(data, fh, indent=1, default=str)

    te_info = info.get("te_ext", {})
    kernel = te_info.get("cpu_kernel", "?") if isinstance(te_info, dict) else te_info
    note = (f"torch {info['torch']}, {info['torch_threads']} threads, te_ext kernel {kernel}, "
            f"torch BLAS {info['torch_blas']}")
    plots = plot(data, args.out, note)

    table = markdown_table(target_rows(results), extra, benchmark_rows(data))
    head = [f"`python bench/report.py --{level}` — {time.strftime('%Y-%m-%d')}, "
            f"{data.get('machine_info', {}).get('cpu', {}).get('brand_raw', 'unknown CPU')}, "
            f"{os.cpu_count()} cores; {note}; numpy BLAS {info['numpy_blas']}, "
            f"mkldnn {info['mkldnn']}, torch CPU capability {info['torch_cpu_capability']}.",
            "Targets: interleaved rounds in one process, median of per-round ratios. Other rows: "
            "pytest-benchmark medians, one group at a time. PyInform rows are extrapolated from "
            f"a sample of {workloads.PYINFORM_SAMPLE} pairs.", "", ""]
    tail = [""]
    if background is not None and pytest_background is not None:
        tail.append(f"Background load: other processes used {pytest_background:.0%} of the CPU "
                    f"during the pytest-benchmark run and {background:.0%} while the targets were timed.")
    if "per_window" in memory:
        over = max(m["nbytes_over_bound"] for m in memory["per_window"])
        rss = [m["peak_extra_rss_per_step"] for m in memory["per_window"]]
        tail.append(
            f"TE state (StreamingJointCounts, I={workloads.WINDOW_SOURCES}, J={workloads.WINDOW_TARGETS}): "
            + ", ".join(f"window {m['window']}: {m['nbytes']:,} B" for m in memory["per_window"])
            + f"; {memory['bytes_per_window_sample']:.1f} B per window sample "
            f"(bits bound {memory['window_bits_per_sample_bound']:.1f} B), "
            f"{memory['fixed_bytes_per_pair']:.1f} B per neuron pair; "
            f"at most {over:.2f}× the bound window bits + counts. Per step: peak extra RSS "
            + ", ".join(_kib(r) for r in rss) + "; allocated (sum over ops, bounds the peak) "
            + ", ".join(_kib(m["allocated_per_step"]) for m in memory["per_window"]) + ".")
    else:
        tail.append(f"TE state memory: not measured ({memory.get('reason')}).")
    for reason in skips:
        tail.append(f"Skipped: {reason}")
    tail.append(f"Wall time: {wall:.0f} s. Results: {json_path}; plots: "
                + (", ".join(os.path.basename(p) for p in plots) or "none"))
    text = "\n".join(head) + table + "\n" + "\n".join(tail)
    with open(os.path.join(args.out, f"{stamp}.md"), "w") as fh:
        fh.write(text + "\n")
    print()
    print(text)
    return 0 if code in (0, 5) else code


if __name__ == "__main__":
    sys.exit(main())
