"""Shape-only ("fake") kernel of ``te.transfer_entropy_delays``, for torch.compile and opcheck."""

from __future__ import annotations

import torch

from ._fake import _series_sizes


@torch.library.register_fake("te::transfer_entropy_delays")
def _transfer_entropy_delays_fake(source, target, delays, k=1, l=1, threshold=None):
    i, j = _series_sizes(source, target, "te.transfer_entropy_delays")
    if len(delays) == 0:
        raise ValueError("te.transfer_entropy_delays: delays must hold at least one delay, got none")
    return source.new_empty((len(delays), i, j), dtype=torch.float64)
