"""Whether a call can and should take the fused Triton kernel, and the call itself.

Imported by ``te_ext._ops`` at ``import te_ext``: it imports neither triton nor the kernels
until a CUDA call wants them (a CPU-only machine never pays for importing triton).

Every call the kernel does not take gets a reason (``why_not``), of one of two kinds:

* **invalid** input (bad arguments, values, dtypes or shapes): the C++ op runs and raises the
  documented error with the documented message, forced or not;
* **unsupported**: a valid call the kernel cannot run (state spaces with many streams, 2^31 or
  more observations, integer input with a threshold, more shared memory per block than the GPU
  has, triton missing or failing to load, a launch that fails).

With ``TE_EXT_FUSED=1`` (forced) an unsupported call raises ``RuntimeError`` with its reason:
a forced kernel never falls back silently. On the automatic path (the measured table chose
the fused kernel) it falls back to the C++ op and counts the fallback by reason in
``FALLBACKS``, which benchmarks read (``fallback_counts()``), with one warning per reason.
"""

from __future__ import annotations

import collections
import math
import os
import warnings
from typing import Dict, Optional, Tuple

import torch
from torch import Tensor

from . import geometry, heuristic
from .geometry import table_size  # noqa: F401  (dispatch.table_size, as before)

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
_ops_error: Optional[str] = None

INVALID, UNSUPPORTED = "invalid", "unsupported"

# Automatic-path fallbacks to the C++ op, by reason (see the module docstring).
FALLBACKS: "collections.Counter[str]" = collections.Counter()


def fallback_counts() -> Dict[str, int]:
    """How many automatic-path calls fell back to the C++ op since the process started (or
    since ``FALLBACKS.clear()``), by reason."""
    return dict(FALLBACKS)


def ops():
    """``te_ext._triton.ops`` (which registers the fused ops), or None where triton or
    ``torch.library.triton_op`` / ``wrap_triton`` (torch >= 2.6) is missing or fails to load
    (``unavailable_reason()`` says why)."""
    global _ops_module, _ops_error
    if _ops_module is None:
        try:
            from . import ops as module
            _ops_module = module
        except Exception as exc:  # ImportError, or a triton that fails to initialise
            _ops_module = False
            _ops_error = f"{type(exc).__name__}: {exc}"
    return _ops_module or None


def unavailable_reason() -> Optional[str]:
    """Why the fused kernel cannot load here, or None when it can."""
    return None if ops() is not None else f"triton could not be loaded ({_ops_error})"


def forced() -> Optional[bool]:
    """``TE_EXT_FUSED``: True (``1``: always the fused kernel, or an error), False (``0``:
    never), None (unset: the measured table decides)."""
    value = os.environ.get("TE_EXT_FUSED", "")
    return {"1": True, "0": False}.get(value)


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def why_not(source, target, k, l, delay, threshold) -> Optional[Tuple[str, str]]:
    """None when the fused kernel computes this call exactly as the op would (no data checks
    yet), else ``(kind, reason)`` with kind ``INVALID`` or ``UNSUPPORTED``."""
    if not (isinstance(source, Tensor) and isinstance(target, Tensor)):
        return INVALID, "source and target must be tensors"
    if not (_is_int(k) and _is_int(l) and _is_int(delay) and k >= 1 and l >= 1 and delay >= 1):
        return INVALID, "k, l and delay must be ints >= 1"
    if source.dim() not in (2, 3) or source.dim() != target.dim() or source.device != target.device:
        return INVALID, "source and target must be 2-d or 3-d alike, on one device"
    if source.numel() == 0 or target.numel() == 0 or source.shape[:-1] != target.shape[:-1]:
        return INVALID, "empty series, or source and target of different lengths"
    T = source.shape[-2]
    n0 = max(k, l - 1 + delay)
    if T <= n0:
        return INVALID, f"T = {T} leaves no observation for k={k}, l={l}, delay={delay}"
    if threshold is None:
        if any(x.is_floating_point() or x.is_complex() for x in (source, target)):
            return INVALID, "floating or complex series need a threshold"
    elif isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or math.isnan(threshold):
        return INVALID, "threshold must be a real number, not NaN"
    elif source.is_complex() or target.is_complex():
        return INVALID, "complex series"
    if ((1 << l) - 1) * ((1 << (k + 1)) - 1) > MAX_STREAM_PRODUCTS:
        return UNSUPPORTED, (f"(k, l) = ({k}, {l}) has {((1 << l) - 1) * ((1 << (k + 1)) - 1)} "
                             f"stream products, over the kernel's {MAX_STREAM_PRODUCTS}")
    R = source.shape[0] if source.dim() == 3 else 1
    nobs = R * (T - n0)
    if nobs >= 2 ** 31:
        return UNSUPPORTED, f"{nobs} observations: the kernel counts in int32 (< 2^31)"
    if table_size(nobs) > max(source.shape[-1] * target.shape[-1] // 2, MIN_TABLE_CAP):
        return UNSUPPORTED, ("its f(c) table would outgrow half the TE output (the peak-memory "
                             "promise)")
    if threshold is not None and not (source.dtype in _BITS_DTYPE and target.dtype == source.dtype):
        return UNSUPPORTED, (f"with a threshold the kernel reads float16/bfloat16/float32/float64 "
                             f"source and target of one dtype, got {source.dtype} and {target.dtype}")
    limit = geometry.max_shared_bytes(source.device)
    if limit is not None:
        t = geometry.tiles(k, l, source.device)
        need = geometry.shared_bytes(k, l, source.element_size(), t)
        if need > limit:
            return UNSUPPORTED, (f"{source.dtype} input at (k, l) = ({k}, {l}) with tiles "
                                 f"{t.block_i}x{t.block_j}x{t.block_k} needs {need} B of shared "
                                 f"memory per block, over this GPU's {limit} B")
    return None


def applicable(source, target, k, l, delay, threshold) -> bool:
    """The fused kernel computes this call exactly as the op would (no data checks yet)."""
    return why_not(source, target, k, l, delay, threshold) is None


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
    Triton runs on (CPU tensors under ``TRITON_INTERPRET=1``); None where it does not apply
    (``why_not``), triton is unavailable, or the values are not 0/1 (NaN with a threshold)."""
    if not applicable(source, target, k, l, delay, threshold):
        return None
    module = ops()
    if module is None or not values_ok(source, target, threshold):
        return None
    return _launch(module, which, source, target, k, l, delay, threshold)


def _launch(module, which, source, target, k, l, delay, threshold) -> Tensor:
    bits = None if threshold is None else threshold_bits(threshold, source.dtype)
    op = module.transfer_entropy_fused if which == "transfer_entropy" else module.joint_counts_fused
    return op(source, target, k, l, delay, bits)


def _fall_back(reason: str) -> None:
    if reason not in FALLBACKS:
        warnings.warn(f"te_ext: the fused kernel was chosen but cannot run this call ({reason}); "
                      "the C++ op runs instead", RuntimeWarning, stacklevel=4)
    FALLBACKS[reason] += 1


def _maybe(which: str, source, target, k, l, delay, threshold) -> Optional[Tensor]:
    if not (isinstance(source, Tensor) and source.is_cuda):
        return None
    return choose(which, source, target, k, l, delay, threshold)


def choose(which: str, source, target, k, l, delay, threshold) -> Optional[Tensor]:
    """The decision of a CUDA call (any device in tests): the fused result, None for the C++
    op, or RuntimeError where a forced kernel cannot run (see the module docstring)."""
    force = forced()
    if force is False:
        return None
    why = why_not(source, target, k, l, delay, threshold)
    if why is not None and why[0] == INVALID:
        return None  # the C++ op raises the documented error
    if force is None:
        R = source.shape[0] if source.dim() == 3 else 1
        nobs = R * (source.shape[-2] - max(k, l - 1 + delay))
        if not heuristic.prefer_fused(source.shape[-1], target.shape[-1], nobs, k, l,
                                      source.device, op=which):
            return None  # the table says the C++ op is faster here: not a fallback
    reason = why[1] if why is not None else unavailable_reason()
    if reason is None and not values_ok(source, target, threshold):
        return None  # bad values: the C++ op raises the documented error
    if reason is None:
        try:
            return _launch(ops(), which, source, target, k, l, delay, threshold)
        except Exception as exc:  # noqa: BLE001  (a failed launch: OutOfResources, compile errors)
            if force:
                raise
            reason = f"the launch failed: {type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
    if force:
        raise RuntimeError(f"te.{which}: TE_EXT_FUSED=1 forces the fused Triton kernel, which "
                           f"cannot run this call: {reason}. Unset TE_EXT_FUSED (or set it to 0) "
                           "to use the C++ op.")
    _fall_back(reason)
    return None


def maybe_transfer_entropy(source, target, k=1, l=1, delay=1, threshold=None) -> Optional[Tensor]:
    """The fused kernel's TE for a CUDA call that ``TE_EXT_FUSED=1`` or the measured table
    gives to it, else None (the caller runs the C++ op)."""
    return _maybe("transfer_entropy", source, target, k, l, delay, threshold)


def maybe_joint_counts(source, target, k=1, l=1, delay=1, threshold=None) -> Optional[Tensor]:
    """The fused kernel's joint counts for a CUDA call that ``TE_EXT_FUSED=1`` or the
    measured table (its ``joint_counts`` rules) gives to it, else None."""
    return _maybe("joint_counts", source, target, k, l, delay, threshold)
