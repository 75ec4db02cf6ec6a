"""Targets D1 and D2 of TARGETS.md, timed interleaved for bench/report.py.

D1: 30 delays of ``transfer_entropy_delays`` / one ``transfer_entropy`` call, 256 x 256,
T = 4096, CPU (dense random series).
D2: the same 30-delay all-pairs scan of 200 neurons firing in 2% of T = 3.6 M bins (an hour
at 1 ms), the dense path / the spike-sparse path (TE_EXT_DELAYS_PATH), CPU."""

from __future__ import annotations

import contextlib
import os
from typing import Any, Dict, Iterator

import alternate
import workloads

DELAYS = list(range(1, 31))


def target_d1(budget: float) -> Dict[str, Any]:
    import te_ext

    x = workloads.KernelInputs(workloads.KernelCase(256, 256, 4096))
    times = alternate.alternate(
        {"scan": lambda: te_ext.transfer_entropy_delays(x.source, x.target, DELAYS),
         "one": lambda: te_ext.transfer_entropy(x.source, x.target)}, budget_s=budget)
    mid, lo, hi = alternate.paired_ratio(times["scan"], times["one"])
    return {"id": "D1", "measured": mid, "quartiles": [lo, hi], "rounds": len(times["scan"]),
            "t_ours": alternate.median(times["scan"]), "t_base": alternate.median(times["one"])}


D2_NEURONS, D2_T, D2_DENSITY = 200, 3_600_000, 0.02


@contextlib.contextmanager
def scan_path(path: str) -> Iterator[None]:
    """TE_EXT_DELAYS_PATH=path inside the block (the op reads it at every call)."""
    old = os.environ.get("TE_EXT_DELAYS_PATH")
    os.environ["TE_EXT_DELAYS_PATH"] = path
    try:
        yield
    finally:
        if old is None:
            del os.environ["TE_EXT_DELAYS_PATH"]
        else:
            os.environ["TE_EXT_DELAYS_PATH"] = old


def d2_raster(neurons: int = D2_NEURONS, T: int = D2_T, density: float = D2_DENSITY):
    import torch

    g = torch.Generator().manual_seed(2)
    return torch.rand(T, neurons, generator=g) < density


def target_d2(budget: float, T: int = D2_T) -> Dict[str, Any]:
    import torch
    import te_ext

    x = d2_raster(T=T)

    def scan(path: str):
        with scan_path(path):
            return te_ext.transfer_entropy_delays(x, x, DELAYS)

    # the two paths must agree bit for bit before their times mean anything
    if not torch.equal(scan("sparse"), scan("dense")):
        raise AssertionError("D2: the sparse and dense scans differ")
    times = alternate.alternate({"dense": lambda: scan("dense"), "sparse": lambda: scan("sparse")},
                                budget_s=budget, min_rounds=3)
    # a speed-up: dense time / sparse time
    mid, lo, hi = alternate.paired_ratio(times["dense"], times["sparse"])
    return {"id": "D2", "measured": mid, "quartiles": [lo, hi], "rounds": len(times["dense"]),
            "t_ours": alternate.median(times["sparse"]), "t_base": alternate.median(times["dense"])}
