"""Shape-only ("fake") kernels of ``te.transfer_entropy_delays(_signed)``, for torch.compile and opcheck.

It runs the series ops' shared metadata checks (``te_ext._fake._check_series``) at the
smallest and the largest delay: the bounds that every delay of the scan must meet.
"""

from __future__ import annotations

import torch

from ._fake import _check_series, _concrete


def _check_scan(op, source, target, delays, k, l, threshold):
    if len(delays) == 0:
        raise ValueError(f"{op}: delays must hold at least one delay, got none")
    known = [d for d in (_concrete(d) for d in delays) if d is not None]
    for delay in sorted({min(known), max(known)}) if known else (1,):
        _check_series(op, source, target, k, l, delay, threshold)
    return (len(delays), source.shape[-1], target.shape[-1])


@torch.library.register_fake("te::transfer_entropy_delays")
def _transfer_entropy_delays_fake(source, target, delays, k=1, l=1, threshold=None):
    shape = _check_scan("te.transfer_entropy_delays", source, target, delays, k, l, threshold)
    return source.new_empty(shape, dtype=torch.float64)


@torch.library.register_fake("te::transfer_entropy_delays_signed")
def _transfer_entropy_delays_signed_fake(source, target, delays, k=1, l=1, threshold=None):
    shape = _check_scan("te.transfer_entropy_delays_signed", source, target, delays, k, l,
                        threshold)
    return source.new_empty((2, *shape), dtype=torch.float64)


@torch.library.register_fake("te::_transfer_entropy_delays_counts")
def _transfer_entropy_delays_counts_fake(source, target, delays, k=1, l=1, threshold=None):
    shape = _check_scan("te._transfer_entropy_delays_counts", source, target, delays, k, l,
                        threshold)
    return source.new_empty((*shape, 2 ** (k + l + 1)), dtype=torch.int64)


@torch.library.register_fake("te::_transfer_entropy_delays_packed")
def _transfer_entropy_delays_packed_fake(source, target, length, delays, k=1, l=1, signed=False):
    op = "te._transfer_entropy_delays_packed"
    if len(delays) == 0:
        raise ValueError(f"{op}: delays must hold at least one delay, got none")
    for name, words in (("source", source), ("target", target)):
        if words.dtype != torch.int64 or words.dim() != 2:
            raise ValueError(f"{op}: {name} must be int64 words [neurons, words], got "
                             f"{words.dtype} of {words.dim()} dimensions")
    shape = (len(delays), source.shape[0], target.shape[0])
    return source.new_empty((2, *shape) if signed else shape, dtype=torch.float64)
