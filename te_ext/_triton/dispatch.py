"""Whether a call can and should take the fused Triton kernel, and the call itself.

Imported by ``te_ext._ops`` at ``import te_ext``: it imports neither triton nor the kernels
until a CUDA call wants them (a CPU-only machine never pays for importing triton, and a
missing or broken triton only means the existing CUDA path runs). Anything unusual (bad
arguments, value errors, dtypes and threshold combinations the kernel does not take, state
spaces with many streams, 2^31 or more observations) returns ``None``: the caller then runs the
C++ op, which raises the documented errors with the documented messages.
"""

from __future__ import annotations

import math
from typing import Optional

import torch
from torch import Tensor

from . import heuristic

# Source streams x target streams per pair the kernel is used for: k, l <= 2, and (3, 1), (1, 3).
# Each product is one [BLOCK_I, BLOCK_J] int32 accumulator; more shrink the tiles too far.
MAX_STREAM_PRODUCTS = 21

# The epilogue's f(c) table (ops.clog_table, float64) may always take this many entries (1 MiB);
# beyond it, at most half the [I, J] float64 output, so the fused call's peak extra memory
# stays <= 1.5x its output.
MIN_TABLE_CAP = 1 << 17

# Floating input dtypes the kernel thresholds, and the integer dtype of their bit patterns.
_BITS_DTYPE = {torch.float64: torch.int64, torch.float32: torch.int32,
               torch.float16: torch.int16, torch.bfloat16: torch.int16}

_ops_module = None  # the loaded te_ext._triton.ops, False once it failed to load


def ops():
    """``te_ext._triton.ops`` (which registers the fused ops), or None where triton or
    ``torch.library.triton_op`` / ``wrap_triton`` (torch >= 2.6) is missing."""
    global _ops_module
    if _ops_module is None:
        try:
            from . import ops as module
            _ops_module = module
        except Exception:  # ImportError, or a triton that fails to initialise
            _ops_module = False
    return _ops_module or None


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def applicable(source, target, k, l, delay, threshold) -> bool:
    """The fused kernel computes this call exactly as the op would (no data checks yet)."""
    if not (isinstance(source, Tensor) and isinstance(target, Tensor)):
        return False
    if not (_is_int(k) and _is_int(l) and _is_int(delay) and k >= 1 and l >= 1 and delay >= 1):
        return False
    if source.dim() not in (2, 3) or source.dim() != target.dim() or source.device != target.device:
        return False
    if source.numel() == 0 or target.numel() == 0 or source.shape[:-1] != target.shape[:-1]:
        return False
    if ((1 << l) - 1) * ((1 << (k + 1)) - 1) > MAX_STREAM_PRODUCTS:
        return False
    T = source.shape[-2]
    R = source.shape[0] if source.dim() == 3 else 1
    n0 = max(k, l - 1 + delay)
    nobs = R * (T - n0)
    if T <= n0 or nobs >= 2 ** 31:
        return False
    if table_size(nobs) > max(source.shape[-1] * target.shape[-1] // 2, MIN_TABLE_CAP):
        return False  # the f(c) table would outgrow half the TE output (peak-memory promise)
    if threshold is None:
        return all(not x.is_floating_point() and not x.is_complex() for x in (source, target))
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)):
        return False
    if math.isnan(threshold):
        return False
    # With a threshold the kernel compares in the input's floating dtype (threshold_in).
    return source.dtype in _BITS_DTYPE and target.dtype == source.dtype


def table_size(nobs: int) -> int:
    """Entries of the f(c) table a call with ``nobs`` observations uses (ops.clog_table): the
    power of two >= nobs + 1, in integer arithmetic."""
    return 1 << nobs.bit_length()


def threshold_bits(threshold: float, dtype: torch.dtype) -> int:
    """``threshold_in(threshold, dtype)``'s bit pattern as a signed int: the fused kernel's
    scalar threshold argument."""
    return int(threshold_in(threshold, dtype, "cpu").view(_BITS_DTYPE[dtype]).item())


def threshold_in(threshold: float, dtype: torch.dtype, device) -> Tensor:
    """The largest value of ``dtype`` <= ``threshold``, as a 1-element tensor: for every ``v``
    of ``dtype``, ``v > that`` in ``dtype`` equals ``double(v) > threshold`` (te_math.h
    to_bit): if ``threshold`` rounds up to ``u``, no ``dtype`` value lies in
    ``(threshold, u)``, so ``v > threshold`` is ``v >= u``, i.e. ``v > nextafter(u, -inf)``."""
    exact = torch.tensor([float(threshold)], dtype=torch.float64)
    t = exact.to(dtype)
    if bool(t.double() > exact):
        t = torch.nextafter(t, torch.full_like(t, -math.inf))
    return t.to(device)


def values_ok(source: Tensor, target: Tensor, threshold) -> bool:
    """0/1 values without a threshold, no NaN with one (one device sync, none for bool)."""
    bad = []
    for x in (source, target):
        if threshold is not None:
            bad.append(torch.isnan(x).any())
        elif x.dtype != torch.bool:
            bad.append(((x != 0) & (x != 1)).any())
    return not bad or not bool(torch.stack(bad).any())


def run(which: str, source, target, k=1, l=1, delay=1, threshold=None) -> Optional[Tensor]:
    """``which`` in {"transfer_entropy", "joint_counts"} by the fused kernel, on any device
    Triton runs on (CPU tensors under ``TRITON_INTERPRET=1``); None where it does not apply."""
    if not applicable(source, target, k, l, delay, threshold):
        return None
    module = ops()
    if module is None or not values_ok(source, target, threshold):
        return None
    bits = None if threshold is None else threshold_bits(threshold, source.dtype)
    op = module.transfer_entropy_fused if which == "transfer_entropy" else module.joint_counts_fused
    return op(source, target, k, l, delay, bits)


def _maybe(which: str, source, target, k, l, delay, threshold) -> Optional[Tensor]:
    if not (isinstance(source, Tensor) and source.is_cuda):
        return None
    if not applicable(source, target, k, l, delay, threshold):
        return None
    R = source.shape[0] if source.dim() == 3 else 1
    nobs = R * (source.shape[-2] - max(k, l - 1 + delay))
    if not heuristic.prefer_fused(source.shape[-1], target.shape[-1], nobs, k, l, source.device,
                                  op=which):
        return None
    return run(which, source, target, k, l, delay, threshold)


def maybe_transfer_entropy(source, target, k=1, l=1, delay=1, threshold=None) -> Optional[Tensor]:
    """The fused kernel's TE for a CUDA call the measured heuristic gives to it, else None."""
    return _maybe("transfer_entropy", source, target, k, l, delay, threshold)


def maybe_joint_counts(source, target, k=1, l=1, delay=1, threshold=None) -> Optional[Tensor]:
    """The fused kernel's joint counts for a CUDA call the measured heuristic gives to it (its
    ``joint_counts`` rules), else None."""
    return _maybe("joint_counts", source, target, k, l, delay, threshold)
