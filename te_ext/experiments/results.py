"""``te-train`` results: the summary statistics, the markdown table, the CSV and the plot.

A run is ``{"arm", "seed", "epochs": [{"epoch", "train_loss", "test_acc", "seconds",
"te_seconds"}, ...]}`` (plus ``"error"`` when it stopped early); ``epoch`` counts from 1
and ``seconds`` is the wall time of that epoch's training steps (forward, backward, TE
feedback, optimizer), without evaluation or checkpointing. Epochs of TE arms also carry
the diagnostics of :mod:`te_ext.experiments.diagnostics` (``te_median``, ``te_p99``, ...).
Arm names are kept as given (``te:authors_code``); every arm other than ``baseline`` is
compared with ``baseline``, paired over the seeds both ran.
"""

from __future__ import annotations

import csv
import io
from typing import Dict, List, Optional, Sequence

import numpy as np

from .checkpoint import atomic_write

__all__ = ["summarize", "summary_markdown", "write_csv", "plot_curves", "plot_te_diagnostics"]

CSV_FIELDS = ("arm", "seed", "epoch", "train_loss", "test_acc", "seconds", "te_seconds",
              "cumulative_seconds", "te_median", "te_p99", "te_mean", "grad_scale_mean",
              "te_frac_significant", "te_significance_alpha", "train_acc", "train_acc_running")


def _mean_std(values: Sequence[float]) -> Dict[str, Optional[float]]:
    # Sample std (ddof=1) over seeds; one value has no spread to estimate, reported as 0.
    if not values:
        return {"mean": None, "std": None}
    a = np.asarray(values, dtype=np.float64)
    return {"mean": float(a.mean()), "std": float(a.std(ddof=1)) if a.size > 1 else 0.0}


def _to_target(run: dict, target: float, key: str = "test_acc"):
    """(epochs, cumulative seconds) at the first epoch whose ``key`` accuracy >= target."""
    elapsed = 0.0
    for rec in run["epochs"]:
        elapsed += rec["seconds"]
        if rec.get(key) is not None and rec[key] >= target:
            return rec["epoch"], elapsed
    return None, None


def _paired(a: Dict[int, float], b: Dict[int, float]) -> Dict[str, Optional[float]]:
    """Mean of a - b over the seeds present in both, its 95% confidence interval (Student
    t, n - 1 degrees of freedom) and a paired t-test's two-sided p."""
    seeds = sorted(set(a) & set(b))
    diff = np.asarray([a[s] - b[s] for s in seeds], dtype=np.float64)
    out = {"n": len(seeds), "mean_diff": float(diff.mean()) if seeds else None, "p_value": None,
           "ci95": None}
    if len(seeds) >= 2:
        from scipy import stats

        half = float(stats.t.ppf(0.975, len(seeds) - 1) * diff.std(ddof=1) / np.sqrt(len(seeds)))
        out["ci95"] = [out["mean_diff"] - half, out["mean_diff"] + half]
        if np.ptp(diff) > 0:
            out["p_value"] = float(stats.ttest_1samp(diff, 0.0).pvalue)
    return out


def summarize(runs: List[dict], arms: Sequence[str], target_acc: float) -> dict:
    """Per arm: mean ± std over seeds of epochs-to-target and seconds-to-target (over the
    seeds that reached it, with ``reached``/``runs`` counts), final test accuracy, seconds
    per epoch and TE seconds per epoch; ``time_per_epoch_ratio`` is the arm's mean seconds
    per epoch over the baseline's. Arms other than the baseline also get paired
    comparisons with it over the seeds both ran (``vs_baseline``)."""
    summary = {}
    per_arm = {}
    for arm in arms:
        mine = [r for r in runs if r["arm"] == arm and r["epochs"]]
        reached = {}
        for r in mine:
            ep, sec = _to_target(r, target_acc)
            if ep is not None:
                reached[r["seed"]] = (ep, sec)
        final = {r["seed"]: r["epochs"][-1]["test_acc"] for r in mine}
        # The seed paper's own metric (te-train --eval-train): accuracy on the training data.
        train_reached = {r["seed"]: _to_target(r, target_acc, "train_acc")[0] for r in mine
                         if any(e.get("train_acc") is not None for e in r["epochs"])}
        train_reached = {s: e for s, e in train_reached.items() if e is not None}
        has_train = any(e.get("train_acc") is not None for r in mine for e in r["epochs"])
        spe = {r["seed"]: float(np.mean([e["seconds"] for e in r["epochs"]])) for r in mine}
        tspe = [float(np.mean([e["te_seconds"] for e in r["epochs"]])) for r in mine]
        per_arm[arm] = {"final": final, "epochs": {s: v[0] for s, v in reached.items()},
                        "seconds": {s: v[1] for s, v in reached.items()}, "spe": spe,
                        "train_epochs": train_reached}
        n = len([r for r in runs if r["arm"] == arm])
        summary[arm] = {
            "runs": n,
            "failed_runs": len([r for r in runs if r["arm"] == arm and r.get("error")]),
            "target_acc": target_acc,
            "epochs_to_target": dict(_mean_std([v[0] for v in reached.values()]),
                                     reached=len(reached), of=n),
            "seconds_to_target": dict(_mean_std([v[1] for v in reached.values()]),
                                      reached=len(reached), of=n),
            "final_test_acc": _mean_std(list(final.values())),
            "seconds_per_epoch": _mean_std(list(spe.values())),
            "te_seconds_per_epoch": _mean_std(tspe),
            "time_per_epoch_ratio": None,
        }
        if has_train:
            summary[arm]["epochs_to_train_target"] = dict(
                _mean_std(list(train_reached.values())), reached=len(train_reached), of=n)
    base = summary.get("baseline")
    for arm in arms:
        if base is None:
            break
        b, s = base["seconds_per_epoch"]["mean"], summary[arm]["seconds_per_epoch"]["mean"]
        if b and s is not None:
            summary[arm]["time_per_epoch_ratio"] = s / b
        if arm != "baseline":
            pa, pb = per_arm[arm], per_arm["baseline"]
            summary[arm]["vs_baseline"] = {
                "final_test_acc": _paired(pa["final"], pb["final"]),
                "epochs_to_target": _paired(pa["epochs"], pb["epochs"]),
                "seconds_to_target": _paired(pa["seconds"], pb["seconds"]),
                "seconds_per_epoch": _paired(pa["spe"], pb["spe"]),
            }
            if "epochs_to_train_target" in summary[arm]:
                summary[arm]["vs_baseline"]["epochs_to_train_target"] = _paired(
                    pa["train_epochs"], pb["train_epochs"])
    return summary


def _fmt(stat: dict, digits: int, counts: bool = False) -> str:
    if stat["mean"] is None:
        text = "—"
    else:
        text = f"{stat['mean']:.{digits}f} ± {stat['std']:.{digits}f}"
    if counts:
        text += f" ({stat['reached']}/{stat['of']})"
    return text


def summary_markdown(summary: dict, target_acc: float) -> str:
    """The summary as a markdown table, then one line per paired comparison."""
    train = any("epochs_to_train_target" in s for s in summary.values())
    lines = [
        f"| arm | epochs to {target_acc:g} (reached) | "
        + (f"epochs to {target_acc:g} on train acc (reached) | " if train else "")
        + f"seconds to {target_acc:g} (reached) "
        "| final test acc | s/epoch | TE s/epoch | time/epoch vs baseline |",
        "|---|---|---|---|---|---|---|" + ("---|" if train else ""),
    ]
    for arm, s in summary.items():
        ratio = s["time_per_epoch_ratio"]
        train_cell = ([_fmt(s["epochs_to_train_target"], 1, True)
                       if "epochs_to_train_target" in s else "—"] if train else [])
        lines.append("| " + " | ".join([
            arm, _fmt(s["epochs_to_target"], 1, True), *train_cell,
            _fmt(s["seconds_to_target"], 2, True),
            _fmt(s["final_test_acc"], 4), _fmt(s["seconds_per_epoch"], 3),
            _fmt(s["te_seconds_per_epoch"], 3),
            "—" if ratio is None else f"{ratio:.3f}×"]) + " |")
    for arm, s in summary.items():
        vs = s.get("vs_baseline")
        if not vs:
            continue
        parts = []
        for key, label, d in (("final_test_acc", "final test acc", 4),
                              ("epochs_to_target", "epochs to target", 2),
                              ("epochs_to_train_target", "epochs to target on train acc", 2),
                              ("seconds_to_target", "seconds to target", 3)):
            if key not in vs:
                continue
            c = vs[key]
            if c["n"] == 0:
                parts.append(f"{label}: no seed comparable")
                continue
            p = "n/a" if c["p_value"] is None else f"{c['p_value']:.3g}"
            ci = ("" if c.get("ci95") is None else
                  f"95% CI [{c['ci95'][0]:+.{d}f}, {c['ci95'][1]:+.{d}f}], ")
            parts.append(f"{label} {c['mean_diff']:+.{d}f} ({ci}p = {p})")
        n = vs["final_test_acc"]["n"]
        lines.append("")
        lines.append(f"{arm} − baseline, paired over seeds (n = {n}; two-sided paired "
                     f"t-test): " + "; ".join(parts) + ".")
    return "\n".join(lines)


def write_csv(path: str, runs: List[dict]) -> None:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=CSV_FIELDS, lineterminator="\n")
    w.writeheader()
    for r in runs:
        elapsed = 0.0
        for e in r["epochs"]:
            elapsed += e["seconds"]
            w.writerow({"arm": r["arm"], "seed": r["seed"], "cumulative_seconds": elapsed,
                        **{k: e[k] for k in CSV_FIELDS[2:7]},
                        **{k: e[k] for k in CSV_FIELDS[8:] if e.get(k) is not None}})
    atomic_write(path, lambda f: f.write(buf.getvalue()), mode="w")


def plot_curves(path: str, runs: List[dict], arms: Sequence[str],
                target_acc: Optional[float] = None, title: str = "") -> None:
    """Test accuracy against epoch and against cumulative training time: the mean over
    seeds with a ± std band, one colour per arm."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_e, ax_t) = plt.subplots(1, 2, figsize=(11, 4.2))
    for arm in arms:
        mine = [r for r in runs if r["arm"] == arm and r["epochs"]]
        if not mine:
            continue
        # Runs stopped early (NaN loss) are shorter: each epoch averages the runs that got there.
        length = max(len(r["epochs"]) for r in mine)
        acc = np.full((len(mine), length), np.nan)
        clock = np.full_like(acc, np.nan)
        for i, r in enumerate(mine):
            a = [e["test_acc"] for e in r["epochs"]]
            acc[i, :len(a)] = a
            clock[i, :len(a)] = np.cumsum([e["seconds"] for e in r["epochs"]])
        # Every column holds at least one run (length is the longest), so no all-NaN slice.
        # Sample std (ddof=1) as in the summary; a single run has a band of width 0.
        count = np.sum(~np.isnan(acc), 0)
        mean, t = np.nanmean(acc, 0), np.nanmean(clock, 0)
        std = np.sqrt(np.nansum((acc - mean) ** 2, 0) / np.maximum(count - 1, 1))
        epochs = np.arange(1, length + 1)
        label = f"{arm} (n={len(mine)})"
        for ax, x in ((ax_e, epochs), (ax_t, t)):
            (line,) = ax.plot(x, mean, marker="o", markersize=3, label=label)
            ax.fill_between(x, mean - std, mean + std, color=line.get_color(), alpha=0.2)
    for ax, xlabel in ((ax_e, "epoch"), (ax_t, "training wall time (s)")):
        if target_acc is not None:
            ax.axhline(target_acc, color="grey", linestyle="--", linewidth=1,
                       label=f"target {target_acc:g}")
        ax.set_xlabel(xlabel)
        ax.set_ylabel("test accuracy")
        ax.grid(alpha=0.3)
        ax.legend(loc="lower right")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    atomic_write(path, lambda f: f.write(buf.getvalue()))



def _per_epoch(runs: List[dict], key: str) -> Optional[np.ndarray]:
    """``[runs, epochs]`` of ``key`` (NaN where a run lacks it), or None when no epoch has it."""
    length = max((len(r["epochs"]) for r in runs), default=0)
    a = np.full((len(runs), length), np.nan)
    for i, r in enumerate(runs):
        for j, e in enumerate(r["epochs"]):
            if e.get(key) is not None:
                a[i, j] = e[key]
    return None if np.all(np.isnan(a)) else a


def _nanmean(a: np.ndarray) -> np.ndarray:
    count = np.sum(~np.isnan(a), 0)
    return np.where(count > 0, np.nansum(a, 0) / np.maximum(count, 1), np.nan)


def plot_te_diagnostics(path: str, runs: List[dict], arms: Sequence[str],
                        title: str = "") -> None:
    """For each TE arm (one row): T's median and 99th percentile per epoch, the mean
    gradient scale 1 + T per epoch (``paper`` rule; the mean T otherwise), and, when the
    runs recorded it, the fraction of pairs significant at the recorded level
    (``te_frac_significant``; the legacy ``te_frac_p05``, 0 by construction with 16
    surrogates, is not drawn). Mean over seeds, with every
    seed's line faint behind it."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [(arm, [r for r in runs if r["arm"] == arm and r["epochs"]]) for arm in arms]
    rows = [(arm, mine) for arm, mine in rows if mine]
    has_p = any(_per_epoch(mine, "te_frac_significant") is not None for _, mine in rows)
    cols = 3 if has_p else 2
    fig, axes = plt.subplots(max(len(rows), 1), cols, figsize=(5 * cols, 3.6 * max(len(rows), 1)),
                             squeeze=False)
    for (arm, mine), ax in zip(rows, axes):
        panels = [(ax[0], (("te_median", "median T"), ("te_p99", "99th percentile of T")),
                   "T (bits)", True)]
        if _per_epoch(mine, "grad_scale_mean") is not None:
            panels.append((ax[1], (("grad_scale_mean", "mean of 1 + T"),),
                           "mean gradient scale", False))
        else:
            panels.append((ax[1], (("te_mean", "mean T (no gradient scaling in this rule)"),),
                           "mean T (bits)", False))
        if has_p:
            alpha = _per_epoch(mine, "te_significance_alpha")
            level = f"{np.nanmax(alpha):.3g}" if alpha is not None else "alpha"
            panels.append((ax[2], (("te_frac_significant", f"pairs with p <= {level}"),),
                           "fraction of pairs", False))
        for a, series, ylabel, log in panels:
            drawn = False
            for key, label in series:
                v = _per_epoch(mine, key)
                if v is None:
                    continue
                x = np.arange(1, v.shape[1] + 1)
                (line,) = a.plot(x, _nanmean(v), marker="o", markersize=3,
                                 label=f"{label} (mean of {len(mine)} seed(s))")
                for row in v:
                    a.plot(x, row, color=line.get_color(), alpha=0.25, linewidth=0.8)
                drawn = True
            if not drawn:
                a.text(0.5, 0.5, "not recorded for this arm", ha="center", va="center",
                       transform=a.transAxes)
            elif log and np.nanmin([np.nanmin(_per_epoch(mine, k)) for k, _ in series
                                    if _per_epoch(mine, k) is not None]) > 0:
                a.set_yscale("log")
            a.set_title(arm, fontsize=10)
            a.set_xlabel("epoch")
            a.set_ylabel(ylabel)
            a.grid(alpha=0.3)
            if drawn:
                a.legend(fontsize=8)
    if title:
        fig.suptitle(f"TE feedback diagnostics: {title}")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    atomic_write(path, lambda f: f.write(buf.getvalue()))
