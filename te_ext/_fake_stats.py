"""Shape-only ("fake") kernels of the statistics ops (see te_ext/_fake.py).

Only shapes and devices are checked here (with the kernels' messages, so a meta tensor
beside a real one never yields an uninitialised result); data-dependent checks (0/1
values, pair ranges, that each row is a permutation) run in the real kernels.
"""

from __future__ import annotations

import torch


def _same_device(op, source, **others):
    for name, t in others.items():
        if t is None:
            continue
        if t.device != source.device:
            what = "source and target must be on the same device, got source on " \
                   f"{source.device} and target on {t.device}" if name == "target" else \
                   f"{name} must be on {source.device} like source and target, got {t.device}"
            raise ValueError(f"{op}: {what}")


def _sizes(op, source, target):
    if source.dim() not in (2, 3) or source.dim() != target.dim():
        raise ValueError(f"{op}: source and target must both be [T, n] or [R, T, n], "
                         f"got {tuple(source.shape)} and {tuple(target.shape)}")
    return source.shape[-1], target.shape[-1]


@torch.library.register_fake("te::transfer_entropy_surrogates")
def _transfer_entropy_surrogates_fake(source, target, permutations, k=1, l=1, delay=1,
                                      threshold=None, pairs=None):
    op = "te.transfer_entropy_surrogates"
    _same_device(op, source, target=target, pairs=pairs, permutations=permutations)
    i, j = _sizes(op, source, target)
    shape = (pairs.shape[0],) if pairs is not None else (i, j)
    return (source.new_empty(shape, dtype=torch.float64), source.new_empty(shape, dtype=torch.int64),
            source.new_empty(shape, dtype=torch.float64), source.new_empty(shape, dtype=torch.float64))


@torch.library.register_fake("te::local_transfer_entropy")
def _local_transfer_entropy_fake(source, target, pairs, k=1, l=1, delay=1, threshold=None):
    op = "te.local_transfer_entropy"
    _same_device(op, source, target=target, pairs=pairs)
    _sizes(op, source, target)
    reps = source.shape[0] if source.dim() == 3 else 1
    n_obs = reps * (source.shape[-2] - max(k, l - 1 + delay))
    return source.new_empty((pairs.shape[0], n_obs), dtype=torch.float64)
