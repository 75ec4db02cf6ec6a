"""The one preparation path of every public function that takes series: integer arguments,
dtype conversion and delay lists, checked before any allocation or loop, with one message.

* ``ints``: ``k``, ``l``, ``delay`` and the like must be ints (a bool raises TypeError; the op
  schemas would read ``True`` as 1) that fit in int64.
* ``series``: uint16, uint32, uint64 and float8 series, which the kernels do not read, are
  converted first (a copy), the same way for every function: without a threshold to a
  signed integer dtype (the kernel then checks 0/1), with one to a dtype that compares
  identically in double precision.
* ``delays``: a delay list read one delay at a time and bounded by the series' length as it
  is read, so ``range(1, 10**12)`` is refused at its first impossible delay, never
  materialised.
"""

from __future__ import annotations

import numbers
from typing import Iterable, List, Optional

import numpy as np
import torch
from torch import Tensor

_INT64 = (-2**63, 2**63)

# Series dtypes the kernels do not read, and what each becomes: without a threshold (0/1
# values, checked by the kernel after the conversion) and with one (compared in double
# precision either way, so the conversion changes no result). A uint64 value of 2^63 or
# more wraps to a negative int64: still rejected as "not 0/1", but named as that.
_CONVERT_01 = {torch.uint16: torch.int32, torch.uint32: torch.int64, torch.uint64: torch.int64}
_CONVERT_THRESHOLD = {torch.uint16: torch.int32, torch.uint32: torch.int64,
                      torch.uint64: torch.float64}
for _name in ("float8_e4m3fn", "float8_e5m2", "float8_e4m3fnuz", "float8_e5m2fnuz"):
    if hasattr(torch, _name):  # float8 without a threshold stays: the kernel names it
        _CONVERT_THRESHOLD[getattr(torch, _name)] = torch.float32


def series(x, threshold: Optional[float]):
    """``x`` in a dtype the kernels read (see the module docstring); anything that is not a
    Tensor is returned as it is, for the op to name."""
    if not isinstance(x, Tensor):
        return x
    wider = (_CONVERT_01 if threshold is None else _CONVERT_THRESHOLD).get(x.dtype)
    return x if wider is None else x.to(wider)


def ints(op: str, **values) -> None:
    """Refuses a bool (TypeError) or an int outside int64 (ValueError) among ``values``."""
    for name, v in values.items():
        if isinstance(v, (bool, np.bool_)):
            raise TypeError(f"te.{op}: {name} must be an int, got bool ({v})")
        if isinstance(v, numbers.Integral) and not _INT64[0] <= int(v) < _INT64[1]:
            raise ValueError(f"te.{op}: {name} = {int(v)} does not fit in int64")


def flag(op: str, **values) -> None:
    """Refuses anything but a bool among ``values`` (TypeError): a flag given 0, 1 or a
    string is a mistake to name, not a truth value to guess."""
    for name, v in values.items():
        if not isinstance(v, (bool, np.bool_)):
            raise TypeError(f"te.{op}: {name} must be a bool, got {type(v).__name__} ({v!r})")


def delays(values, *, longest: Optional[int] = None, l: int = 1,
           op: str = "transfer_entropy_delays") -> List[int]:
    """The delays as a list of ints >= 1, from a sequence, a range, a 1-d integer tensor or a
    single int. With ``longest`` (the series' length T), each delay is checked as it is read
    against ``T > l - 1 + delay``, so an endless or huge range stops at its first delay too
    long for the series."""
    if isinstance(values, Tensor):
        if values.dtype.is_floating_point or values.dtype.is_complex or values.dtype == torch.bool:
            raise TypeError(f"te.{op}: delays must hold integers, got a tensor of dtype "
                            f"{values.dtype}")
        values = values.reshape(-1).tolist()
    elif isinstance(values, numbers.Integral) and not isinstance(values, bool):
        values = [values]
    elif isinstance(values, (str, bytes)) or not isinstance(values, Iterable):
        raise TypeError(f"te.{op}: delays must be a sequence of ints, got {type(values).__name__}")
    limit = None if longest is None else longest - l  # the largest delay T allows
    out = []
    for q, d in enumerate(values):
        if isinstance(d, bool) or not isinstance(d, numbers.Integral):
            raise TypeError(f"te.{op}: delays must hold ints, got delays[{q}] = {d!r} "
                            f"({type(d).__name__})")
        if d < 1:
            raise ValueError(f"te.{op}: delays must all be >= 1, got delays[{q}] = {int(d)}")
        if limit is not None and d > limit:
            raise ValueError(f"te.{op}: delays[{q}] = {int(d)} is too long for series of length "
                             f"T = {longest} with l = {l} (T > l - 1 + delay is needed, so "
                             f"delay <= {limit})")
        out.append(int(d))
    if not out:
        raise ValueError(f"te.{op}: delays must hold at least one delay, got none")
    return out


def length(x) -> Optional[int]:
    """T of a ``[T, n]`` or ``[R, T, n]`` tensor; None for anything the op will refuse with its
    own message (another rank, an empty series)."""
    if not isinstance(x, Tensor) or x.dim() not in (2, 3) or x.numel() == 0:
        return None
    return int(x.shape[-2])
