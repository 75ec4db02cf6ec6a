"""Shape-only ("fake") kernels of the statistics ops (see te_ext/_fake.py)."""

from __future__ import annotations

import torch

from ._fake import _check_devices, _series_sizes


@torch.library.register_fake("te::transfer_entropy_surrogates")
def _transfer_entropy_surrogates_fake(source, target, permutations, k=1, l=1, delay=1,
                                      threshold=None, pairs=None):
    op = "te.transfer_entropy_surrogates"
    i, j = _series_sizes(source, target, op)
    _check_devices(op, source, target, pairs)
    if permutations.device != source.device:
        raise ValueError(f"{op}: permutations must be on {source.device} like source and target, "
                         f"got {permutations.device}")
    shape = (pairs.shape[0],) if pairs is not None else (i, j)
    return (source.new_empty(shape, dtype=torch.float64), source.new_empty(shape, dtype=torch.int64),
            source.new_empty(shape, dtype=torch.float64), source.new_empty(shape, dtype=torch.float64))


@torch.library.register_fake("te::local_transfer_entropy")
def _local_transfer_entropy_fake(source, target, pairs, k=1, l=1, delay=1, threshold=None):
    op = "te.local_transfer_entropy"
    _series_sizes(source, target, op)
    _check_devices(op, source, target, pairs)
    reps = source.shape[0] if source.dim() == 3 else 1
    n_obs = reps * (source.shape[-2] - max(k, l - 1 + delay))
    return source.new_empty((pairs.shape[0], n_obs), dtype=torch.float64)
