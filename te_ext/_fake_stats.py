"""Shape-only ("fake") kernels of the statistics ops (see te_ext/_fake.py).

They run the real kernels' argument checks, in C++, through ``te_ext._C._check_statistics``:
``plan_series`` on the series (dtypes, shapes, T against k, l and delay, the threshold, the
history bound that keeps ``2**(k+l+1)`` finite), the shape of ``pairs`` and of
``permutations`` against the pooled observations. A meta or traced call therefore raises
where the real op raises, with its message. Data-dependent checks (0/1 values, pair ranges,
that each row is a permutation) stay with the real kernels.
"""

from __future__ import annotations

import torch

from . import _C
from ._fake import _describe, _ints, counts_reduction_fake


def _check(op, source, target, k, l, delay, threshold, pairs=None, permutations=None):
    """n_obs from the C++ checks; None where a size is not known yet (symbolic)."""
    described = [_describe(source), _describe(target)]
    extra = [None if t is None else _describe(t) for t in (pairs, permutations)]
    ints = _ints(k, l, delay)
    if ints is None or any(d is None for d in described) or any(
            e is None and t is not None for e, t in zip(extra, (pairs, permutations))):
        if ints is not None:
            _C._check_history(ints[0], ints[1], op)  # never form 2**(k+l+1) unchecked
        return None
    return _C._check_statistics(*described, *extra, *ints, threshold, op)


@torch.library.register_fake("te::transfer_entropy_surrogates")
def _transfer_entropy_surrogates_fake(source, target, permutations, k=1, l=1, delay=1,
                                      threshold=None, pairs=None):
    _check("te.transfer_entropy_surrogates", source, target, k, l, delay, threshold, pairs,
           permutations)
    shape = (pairs.shape[0],) if pairs is not None else (source.shape[-1], target.shape[-1])
    return (source.new_empty(shape, dtype=torch.float64), source.new_empty(shape, dtype=torch.int64),
            source.new_empty(shape, dtype=torch.float64), source.new_empty(shape, dtype=torch.float64))


@torch.library.register_fake("te::local_transfer_entropy")
def _local_transfer_entropy_fake(source, target, pairs, k=1, l=1, delay=1, threshold=None):
    n_obs = _check("te.local_transfer_entropy", source, target, k, l, delay, threshold, pairs)
    if n_obs is None:
        reps = source.shape[0] if source.dim() == 3 else 1
        n_obs = reps * (source.shape[-2] - max(k, l - 1 + delay))
    return source.new_empty((pairs.shape[0], n_obs), dtype=torch.float64)


@torch.library.register_fake("te::sorted_local_te")
def _sorted_local_te_fake(counts, k=1, l=1):
    return counts_reduction_fake("te.sorted_local_te", counts, k, l)
