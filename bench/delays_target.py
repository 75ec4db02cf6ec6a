"""Target D1 of TARGETS.md, timed interleaved for bench/report.py: 30 delays of
``transfer_entropy_delays`` / one ``transfer_entropy`` call, 256 x 256, T = 4096, CPU."""

from __future__ import annotations

from typing import Any, Dict

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
