"""Fake (meta) kernels, so the ops trace under torch.compile and pass opcheck.

Each fake runs the real kernels' argument checks: the C++ functions in
``csrc/te_plan.cpp`` and ``csrc/window_plan.cpp`` (through ``te_ext._C``), which
read only a tensor's sizes, dtype, device and contiguity. So a meta call, or a
traced call, raises exactly where the real op raises, with the same message,
before any shape arithmetic (``2**(k+l+1)`` with a huge ``k`` would never end).
Only data-dependent checks (0/1 values, NaN, pair indices, count ranges) and
the memory checks are left to the real kernels.
"""

from __future__ import annotations

from typing import Optional, Tuple

import torch

from . import _C


def _concrete(n):
    """An int for a size or an int argument; a symbolic one gives its hint (no guard: the
    real kernel checks the runtime value again). None where nothing is known yet."""
    if isinstance(n, int):
        return n
    return getattr(getattr(n, "node", None), "hint", None)


def _describe(t: torch.Tensor) -> Optional[Tuple]:
    """(sizes, dtype, device, contiguous) as the C++ checks read them, or None for a tensor
    with unknown (unbacked) sizes, whose checks then wait for the real kernel."""
    sizes = [_concrete(s) for s in t.shape]
    if any(s is None for s in sizes):
        return None
    try:
        contiguous = bool(t.is_contiguous())
    except Exception:  # symbolic strides that cannot be decided now: the kernel decides
        contiguous = True
    return sizes, t.dtype, t.device, contiguous


def _ints(*values):
    out = tuple(_concrete(v) for v in values)
    return None if any(v is None for v in out) else out


def _check_series(op, source, target, k, l, delay, threshold):
    s, t, ints = _describe(source), _describe(target), _ints(k, l, delay)
    if s is not None and t is not None and ints is not None:
        _C._check_series(s, t, *ints, threshold, op)
    elif ints is not None:
        _C._check_history(ints[0], ints[1], op)  # never form 2**(k+l+1) unchecked


@torch.library.register_fake("te::joint_counts")
def _joint_counts_fake(source, target, k=1, l=1, delay=1, threshold=None):
    _check_series("te.joint_counts", source, target, k, l, delay, threshold)
    return source.new_empty((source.shape[-1], target.shape[-1], 2 ** (k + l + 1)),
                            dtype=torch.int64)


def counts_reduction_fake(op, counts, k, l):
    """The fake of an op that reduces each ``[..., bins]`` histogram to one float64."""
    c, ints = _describe(counts), _ints(k, l)
    if ints is not None:
        if c is not None:
            _C._check_counts(c, *ints, op)
        else:
            _C._check_history(*ints, op)
    return counts.new_empty(counts.shape[:-1], dtype=torch.float64)


@torch.library.register_fake("te::te_from_counts")
def _te_from_counts_fake(counts, k=1, l=1):
    return counts_reduction_fake("te.te_from_counts", counts, k, l)


@torch.library.register_fake("te::transfer_entropy")
def _transfer_entropy_fake(source, target, k=1, l=1, delay=1, threshold=None):
    _check_series("te.transfer_entropy", source, target, k, l, delay, threshold)
    return source.new_empty((source.shape[-1], target.shape[-1]), dtype=torch.float64)


@torch.library.register_fake("te::transfer_entropy_pairs")
def _transfer_entropy_pairs_fake(source, target, pairs, k=1, l=1, delay=1, threshold=None):
    op = "te.transfer_entropy_pairs"
    _check_series(op, source, target, k, l, delay, threshold)
    p = _describe(pairs)
    if p is not None:
        _C._check_pairs(p, source.device, op)
    return source.new_empty((pairs.shape[0],), dtype=torch.float64)


def _window_append_fake(op, counts, source_ring, target_ring, source, target, seen, k, l, delay,
                        source_threshold, target_threshold):
    _C._check_window_seen(seen, op)
    described = [_describe(t) for t in (counts, source_ring, target_ring, source, target)]
    ints = _ints(seen, k, l, delay)
    if ints is not None and all(d is not None for d in described):
        _C._check_window(*described, *ints, source_threshold, target_threshold, op)
    return None


@torch.library.register_fake("te::window_append_")
def _window_append_fake_public(counts, source_ring, target_ring, source, target, seen, k=1, l=1,
                               delay=1, source_threshold=None, target_threshold=None):
    return _window_append_fake("te.window_append_", counts, source_ring, target_ring, source,
                               target, seen, k, l, delay, source_threshold, target_threshold)


@torch.library.register_fake("te::_window_append_generic_")
def _window_append_fake_generic(counts, source_ring, target_ring, source, target, seen, k=1, l=1,
                                delay=1, source_threshold=None, target_threshold=None):
    # The kernels name the op te.window_append_ in both cases: so does its fake.
    return _window_append_fake("te.window_append_", counts, source_ring, target_ring, source,
                               target, seen, k, l, delay, source_threshold, target_threshold)
