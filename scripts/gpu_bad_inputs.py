"""Every bad input, each in its own process: does it raise a Python exception, or crash?

    python scripts/gpu_bad_inputs.py [--device cuda] [--json out.json] [--jobs 8]

A crash (SIGSEGV, abort) would end a pytest run, so each case runs in a child process
(``--child NAME``) and this driver reports, per case, "raised <Type>: <message>", "no error"
or "crashed (signal N)". Exit status 0 only if every case raised ValueError/TypeError/
RuntimeError. Used by scripts/gpu_check.sh; runs on the CPU too (``--device cpu``).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import signal
import subprocess
import sys
from typing import Callable, Dict

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def cases(dev: str) -> Dict[str, Callable[[], object]]:
    import torch
    import te_ext

    g = torch.Generator().manual_seed(0)
    x = torch.rand(60, 3, generator=g).to(dev)
    y = torch.rand(60, 2, generator=g).to(dev)
    nan = x.clone()
    nan[33, 1] = float("nan")
    two = (x > 0.5).to(torch.uint8)
    two[59, 1] = 2
    ok = y > 0.5
    bx = x > 0.5
    counts = torch.ones(2, 8, dtype=torch.int64, device=dev)
    negative = counts.clone()
    negative[1, 4] = -3
    huge = counts.clone()
    huge[0, 0] = 2 ** 62

    def window_nan():
        w = te_ext.StreamingJointCounts(3, 2, 10, device=dev)
        w.append(nan[30:38], y[30:38], 0.5, 0.5)
        w.check()  # deferred on a GPU: the recorded error is raised here

    def window_counts_shape():
        w = te_ext.StreamingJointCounts(3, 2, 10, device=dev)
        torch.ops.te.window_append_(torch.zeros(3, 2, 4, dtype=torch.int64, device=dev),
                                    w.source_ring, w.target_ring, bx[:4], ok[:4], 0)

    def over_large():
        big = torch.zeros(100, 1 << 20, dtype=torch.bool, device=dev)
        te_ext.joint_counts(big, big, k=3, l=3)

    return {
        "nan_transfer_entropy": lambda: te_ext.transfer_entropy(nan, y, threshold=0.5),
        "nan_joint_counts": lambda: te_ext.joint_counts(nan, y, threshold=0.5),
        "nan_pairs": lambda: te_ext.transfer_entropy_pairs(
            nan, y, torch.zeros(1, 2, dtype=torch.int64, device=dev), threshold=0.5),
        "non_binary_transfer_entropy": lambda: te_ext.transfer_entropy(two, ok),
        "non_binary_joint_counts": lambda: te_ext.joint_counts(ok, two[:, :2]),
        "pairs_out_of_range": lambda: te_ext.transfer_entropy_pairs(
            bx, ok, torch.tensor([[0, 0], [3, 1]], device=dev)),
        "pairs_negative": lambda: te_ext.transfer_entropy_pairs(
            bx, ok, torch.tensor([[0, -1]], device=dev)),
        "pairs_dtype": lambda: te_ext.transfer_entropy_pairs(
            bx, ok, torch.zeros(1, 2, dtype=torch.int32, device=dev)),
        "counts_negative": lambda: te_ext.te_from_counts(negative),
        "counts_too_large": lambda: te_ext.te_from_counts(huge),
        "counts_last_dim": lambda: te_ext.te_from_counts(counts[:, :7]),
        "counts_float": lambda: te_ext.te_from_counts(counts.double()),
        "series_too_short": lambda: te_ext.transfer_entropy(bx[:1], ok[:1]),
        "k_huge": lambda: te_ext.transfer_entropy(bx, ok, k=40),
        "empty_series": lambda: te_ext.transfer_entropy(bx[:0], ok[:0]),
        "float_without_threshold": lambda: te_ext.transfer_entropy(x, y),
        "complex_dtype": lambda: te_ext.transfer_entropy(x.to(torch.complex64), ok, threshold=0.5),
        "mixed_devices": lambda: te_ext.transfer_entropy(bx, ok.cpu() if dev != "cpu" else ok.to("meta")),
        "over_large_request": over_large,
        "window_append_nan": lambda: torch.ops.te.window_append_(
            torch.zeros(3, 2, 8, dtype=torch.int64, device=dev),
            torch.zeros(10, 1, dtype=torch.uint8, device=dev),
            torch.zeros(10, 1, dtype=torch.uint8, device=dev), nan[30:38], y[30:38], 0, 1, 1, 1, 0.5, 0.5),
        "window_deferred_nan": window_nan,
        "window_counts_shape": window_counts_shape,
    }


def child(name: str, dev: str) -> int:
    import torch  # noqa: F401

    fn = cases(dev)[name]
    try:
        fn()
        if dev.startswith("cuda"):
            torch.cuda.synchronize()
    except Exception as exc:  # noqa: BLE001
        print(json.dumps({"name": name, "outcome": "raised", "type": type(exc).__name__,
                          "message": str(exc).splitlines()[0] if str(exc) else ""}))
        return 0
    print(json.dumps({"name": name, "outcome": "no error"}))
    return 0


def run_one(name: str, dev: str, timeout: float) -> Dict[str, object]:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        p for p in (ROOT, os.environ.get("PYTHONPATH")) if p))
    try:
        r = subprocess.run([sys.executable, __file__, "--child", name, "--device", dev],
                           capture_output=True, text=True, timeout=timeout, env=env, cwd=ROOT)
    except subprocess.TimeoutExpired:
        return {"name": name, "outcome": "hung", "message": f"no answer in {timeout:.0f} s"}
    if r.returncode < 0:
        sig = -r.returncode
        return {"name": name, "outcome": "crashed",
                "message": f"signal {sig} ({signal.Signals(sig).name})",
                "stderr": r.stderr[-2000:]}
    for line in r.stdout.splitlines():
        if line.startswith("{"):
            return json.loads(line)
    return {"name": name, "outcome": "failed", "message": f"exit {r.returncode}",
            "stderr": r.stderr[-2000:]}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--child")
    ap.add_argument("--json")
    ap.add_argument("--jobs", type=int, default=8)
    ap.add_argument("--timeout", type=float, default=120.0)
    args = ap.parse_args()
    if args.child:
        return child(args.child, args.device)
    import torch

    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print("gpu_bad_inputs: no CUDA device; use --device cpu")
        return 2
    names = list(cases("cpu" if args.device == "meta" else args.device))
    good = ("ValueError", "TypeError", "RuntimeError")
    results = []
    with concurrent.futures.ThreadPoolExecutor(args.jobs) as pool:
        futures = [pool.submit(run_one, n, args.device, args.timeout) for n in names]
        for fut in concurrent.futures.as_completed(futures):  # printed as they come: a
            r = fut.result()                                    # killed run keeps its lines
            r["ok"] = r["outcome"] == "raised" and r.get("type") in good
            results.append(r)
            print(f"{'ok  ' if r['ok'] else 'FAIL'} {r['name']:28s} {r['outcome']}"
                  f"{' ' + str(r.get('type')) if r.get('type') else ''}: {r.get('message', '')}",
                  flush=True)
    results.sort(key=lambda r: names.index(r["name"]))
    summary = {"device": args.device, "cases": len(results),
               "raised": sum(r["ok"] for r in results),
               "crashed": sum(r["outcome"] == "crashed" for r in results), "results": results}
    print(f"{summary['raised']} of {summary['cases']} bad inputs raised a Python exception; "
          f"{summary['crashed']} crashed")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(summary, fh, indent=2)
    return 0 if summary["raised"] == summary["cases"] else 1


if __name__ == "__main__":
    sys.exit(main())
