"""Argument checks shared by the Python classes, with messages that name the argument.

The bounds are the ops' own: ``check_history`` and ``check_memory`` call the C++ checks
(``csrc/te_plan.cpp``) through ``te_ext._C``, so a class refuses exactly what the ops refuse.
"""

from __future__ import annotations

import numbers
from typing import Any, Sequence, Tuple

import numpy as np

import torch

from . import _C

_INT64_MAX = 2**63 - 1


def check_int(name: str, value: Any, lo: int, hi: int = _INT64_MAX) -> int:
    """``value`` as an int in [lo, hi] (hi: int64's largest by default, what the ops take);
    TypeError for a non-int (bool included), else ValueError."""
    if not isinstance(value, numbers.Integral) or isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    value = int(value)  # numpy integers, as every public function takes them
    if value < lo:
        raise ValueError(f"{name} must be >= {lo}, got {value}")
    if value > hi:
        raise ValueError(f"{name} must be <= {hi}, got {value}")
    return value


def check_history(owner: str, k: int, l: int) -> None:
    """1 <= k, l and k + l + 1 <= 32, checked before anything forms ``2**(k+l+1)``."""
    _C._check_history(min(k, _INT64_MAX), min(l, _INT64_MAX), owner)


def check_memory(owner: str, parts: Sequence[Tuple[int, str]], device: torch.device) -> None:
    """ValueError before allocating unless the parts' bytes fit in the memory available on
    ``device`` (less the margin of ``te_ext._C._usable_memory_bytes``). Each part is
    ``(bytes, what)``, ``what`` naming the arguments that ask for them; the biggest part is
    named first. Requests up to 64 MiB pass without asking the OS or the driver."""
    total = sum(b for b, _ in parts)
    if total <= _C._MEMORY_QUERY_BYTES:
        return
    ordered = sorted(parts, key=lambda p: -p[0])
    what = " plus ".join(f"{w} ({b} bytes)" for b, w in ordered)
    _C._check_memory(min(total, _INT64_MAX), torch.device(device), what, owner)


def check_window(owner: str, num_source: int, num_target: int, window: int, k: int, l: int,
                 delay: int, device: torch.device, track_counts: bool) -> int:
    """The configuration of a streaming window (StreamingJointCounts, TEFeedback); returns
    n0 = max(k, l - 1 + delay). Every int is checked before any arithmetic on it."""
    for name, v in (("num_source", num_source), ("num_target", num_target), ("k", k),
                    ("l", l), ("delay", delay), ("window", window)):
        check_int(name, v, 1)
    check_history(owner, k, l)
    n0 = max(k, l - 1 + delay)
    if window <= n0:
        raise ValueError(f"window must be > max(k, l - 1 + delay) = {n0} so that it holds at "
                         f"least one observation, got {window}")
    bins = 2 ** (k + l + 1)
    rings = window * ((num_source + 7) // 8 + (num_target + 7) // 8)
    counts = num_source * num_target * bins * 8 if track_counts else 0
    check_memory(owner, [
        (rings, f"window={window} (bit-packed rings of {num_source} + {num_target} neurons)"),
        (counts, f"num_source={num_source} x num_target={num_target} x 2^(k+l+1)={bins} "
                 f"int64 counts (k={k}, l={l})"),
    ], device)
    return n0


def usable_memory(device) -> int:
    """Bytes a request may take on ``device`` now: the one memory probe of te_ext (the C++
    ``usable_memory_bytes``: /proc/meminfo, cgroup limits, RLIMIT_AS, the CUDA driver), 7/8 of
    what is available."""
    return int(_C._usable_memory_bytes(torch.device(device)))
