"""Shape-only ("fake") kernel of ``te.transfer_entropy_delays``, for torch.compile and opcheck.

It runs the series ops' shared metadata checks (``te_ext._fake._check_series``) at the
smallest and the largest delay: the bounds that every delay of the scan must meet.
"""

from __future__ import annotations

import torch

from ._fake import _check_series, _concrete


@torch.library.register_fake("te::transfer_entropy_delays")
def _transfer_entropy_delays_fake(source, target, delays, k=1, l=1, threshold=None):
    op = "te.transfer_entropy_delays"
    if len(delays) == 0:
        raise ValueError(f"{op}: delays must hold at least one delay, got none")
    known = [d for d in (_concrete(d) for d in delays) if d is not None]
    for delay in sorted({min(known), max(known)}) if known else (1,):
        _check_series(op, source, target, k, l, delay, threshold)
    return source.new_empty((len(delays), source.shape[-1], target.shape[-1]),
                            dtype=torch.float64)
