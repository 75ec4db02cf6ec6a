"""Fake (meta) kernels of the training path's sync-free ops (csrc/window_async_ops.cpp)."""

from __future__ import annotations

import torch


@torch.library.register_fake("te::_window_append_async_")
def _window_append_async_fake(counts, source_ring, target_ring, status, source, target, k=1, l=1,
                              delay=1, source_threshold=None, target_threshold=None):
    return None


@torch.library.register_fake("te::_te_from_window_counts")
def _te_from_window_counts_fake(counts, status=None, k=1, l=1):
    return counts.new_empty(counts.shape[:-1], dtype=torch.float64)


@torch.library.register_fake("te::_window_check")
def _window_check_fake(status, source_threshold=None, target_threshold=None):
    return None


@torch.library.register_fake("te::_window_refresh_")
def _window_refresh_fake(counts, status, k, l, te, grad_scale):
    return None
