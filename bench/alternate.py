"""Interleaved timing for the headline ratios.

pytest-benchmark times one function for all its rounds, then the next, so a burst of background
load can land on one side of a ratio only. Here every round times each function once, in a
rotating order, and a ratio is the median of the per-round ratios: a burst that hits one round
moves one sample, not the whole comparison.
"""

from __future__ import annotations

import statistics
import time
from typing import Callable, Dict, List, Mapping, Sequence, Tuple

# Below this a single call is dominated by timer and call overhead; repeat it instead.
MIN_SAMPLE_S = 2e-3


def _once(fn: Callable[[], object], iterations: int) -> float:
    start = time.perf_counter()
    for _ in range(iterations):
        fn()
    return (time.perf_counter() - start) / iterations


def alternate(fns: Mapping[str, Callable[[], object]], *, budget_s: float,
              min_rounds: int = 7, max_rounds: int = 101) -> Dict[str, List[float]]:
    """Seconds per call of each function, one sample per round, the rounds interleaved."""
    if not fns:
        raise ValueError("alternate: fns is empty")
    names = list(fns)
    iterations = {}
    per_round = 0.0
    for name in names:
        first = _once(fns[name], 1)  # also the warm-up
        iterations[name] = max(1, min(1000, int(MIN_SAMPLE_S / max(first, 1e-7))))
        per_round += _once(fns[name], iterations[name]) * iterations[name]
    rounds = max(min_rounds, min(max_rounds, int(budget_s / max(per_round, 1e-9))))
    times: Dict[str, List[float]] = {name: [] for name in names}
    for r in range(rounds):
        shift = r % len(names)
        for name in names[shift:] + names[:shift]:
            times[name].append(_once(fns[name], iterations[name]))
    return times


def paired_ratio(numerator: Sequence[float], denominator: Sequence[float],
                 scale: float = 1.0) -> Tuple[float, float, float]:
    """Median and quartiles of ``scale * numerator[r] / denominator[r]`` over the rounds."""
    ratios = sorted(scale * a / b for a, b in zip(numerator, denominator))
    if len(ratios) < 4:
        mid = statistics.median(ratios)
        return mid, ratios[0], ratios[-1]
    q1, q2, q3 = statistics.quantiles(ratios, n=4)
    return q2, q1, q3


def median(values: Sequence[float]) -> float:
    return statistics.median(values)
