"""Shape-only ("fake") kernels, so the ops trace under torch.compile and pass opcheck.

Only shapes are checked here: data-dependent checks (0/1 values, NaN, pair
ranges) run in the real kernels.
"""

from __future__ import annotations

import torch


# A meta tensor beside a real one routes the call here, not to the kernels'
# device checks: repeat them, word for word, so mixed devices never yield an
# uninitialised result.
def _check_devices(op, source, target, pairs=None):
    if source.device != target.device:
        raise ValueError(f"{op}: source and target must be on the same device, got source on "
                         f"{source.device} and target on {target.device}")
    if pairs is not None and pairs.device != source.device:
        raise ValueError(f"{op}: pairs must be on {source.device} like source and target, "
                         f"got {pairs.device}")


def _series_sizes(source, target, op):
    _check_devices(op, source, target)
    if source.dim() not in (2, 3) or source.dim() != target.dim():
        raise ValueError(f"{op}: source and target must both be [T, n] or [R, T, n], "
                         f"got {tuple(source.shape)} and {tuple(target.shape)}")
    return source.shape[-1], target.shape[-1]


@torch.library.register_fake("te::joint_counts")
def _joint_counts_fake(source, target, k=1, l=1, delay=1, threshold=None):
    i, j = _series_sizes(source, target, "te.joint_counts")
    return source.new_empty((i, j, 2 ** (k + l + 1)), dtype=torch.int64)


@torch.library.register_fake("te::te_from_counts")
def _te_from_counts_fake(counts, k=1, l=1):
    return counts.new_empty(counts.shape[:-1], dtype=torch.float64)


@torch.library.register_fake("te::transfer_entropy")
def _transfer_entropy_fake(source, target, k=1, l=1, delay=1, threshold=None):
    i, j = _series_sizes(source, target, "te.transfer_entropy")
    return source.new_empty((i, j), dtype=torch.float64)


@torch.library.register_fake("te::transfer_entropy_pairs")
def _transfer_entropy_pairs_fake(source, target, pairs, k=1, l=1, delay=1, threshold=None):
    _series_sizes(source, target, "te.transfer_entropy_pairs")
    _check_devices("te.transfer_entropy_pairs", source, target, pairs)
    return source.new_empty((pairs.shape[0],), dtype=torch.float64)


@torch.library.register_fake("te::_window_append_generic_")
@torch.library.register_fake("te::window_append_")
def _window_append_fake(counts, source_ring, target_ring, source, target, seen, k=1, l=1, delay=1,
                        source_threshold=None, target_threshold=None):
    return None
