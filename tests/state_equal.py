"""Exact equality of nested training states (state_dicts, optimizer and RNG states, lists):
tensors must match in dtype and every element, so a resumed run is the run it continues."""

from __future__ import annotations

import torch


def state_equal(a, b) -> bool:
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b)
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(state_equal(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(state_equal(x, y) for x, y in zip(a, b))
    return a == b
