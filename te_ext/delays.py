"""The delay scan: TE at many source delays in one call.

Delayed TE scanned over 1..30 bins, with the peak taken per pair, is how
effective connectivity is read from spike trains (Ito et al., PLoS ONE 2011).
``transfer_entropy_delays`` computes the whole scan at once: both series are
binarised and packed once, the target streams and marginals are shared, and each
delay's source streams are word shifts of the packed source.
"""

from __future__ import annotations

from typing import Optional, Sequence, Union

import torch
from torch import Tensor

from . import _prepare

__all__ = ["transfer_entropy_delays", "parse_delays"]


def transfer_entropy_delays(source: Tensor, target: Tensor,
                            delays: Union[Sequence[int], Tensor, int], *, k: int = 1, l: int = 1,
                            threshold: Optional[float] = None) -> Tensor:
    """``TE(source i -> target j)`` in bits at each delay: float64 ``[D, I, J]``.

    Slice ``d`` equals ``transfer_entropy(source, target, k=k, l=l, delay=delays[d],
    threshold=threshold)`` bit for bit: each delay keeps its own first observation
    ``n0 = max(k, l - 1 + delay)``. ``delays`` is a non-empty sequence (or 1-d integer
    tensor, or a single int) of delays >= 1, in any order, repeats allowed. Series,
    replicates and ``threshold`` follow the other ops (see ``te_ext._ops``). ``T`` must
    exceed ``max(k, l - 1 + max(delays))``.

    On the CPU, spike-sparse series take a path whose cost follows the spikes (see
    docs/recordings.md); ``TE_EXT_DELAYS_PATH=dense|sparse`` forces one, with the same result.

    >>> g = torch.Generator().manual_seed(0)
    >>> x = (torch.rand(5_000, 1, generator=g) < 0.1).to(torch.uint8)
    >>> y = torch.roll(x, 4, dims=0)  # the target fires 4 steps after the source
    >>> scan = te_ext.transfer_entropy_delays(x, y, range(1, 9))
    >>> scan.shape, int(scan[:, 0, 0].argmax()) + 1
    (torch.Size([8, 1, 1]), 4)
    """
    _prepare.ints("transfer_entropy_delays", k=k, l=l)
    scan = _prepare.delays(delays, longest=_prepare.length(source), l=l if isinstance(l, int) else 1)
    return torch.ops.te.transfer_entropy_delays(_prepare.series(source, threshold),
                                                _prepare.series(target, threshold), scan, k, l,
                                                threshold)


def parse_delays(spec: str) -> Sequence[int]:
    """``"1:30"`` -> ``range(1, 31)`` (inclusive), ``"1:30:2"`` -> every 2nd, ``"3"`` -> ``[3]``,
    ``"1,2,5"`` -> ``[1, 2, 5]``. A range stays lazy (``"1:100000000"`` costs nothing until a
    scan reads it, and the scan stops at the first delay too long for its series). Raises
    ValueError naming the text."""
    text = spec.strip()
    try:
        if ":" in text:
            parts = [int(p) for p in text.split(":")]
            if len(parts) not in (2, 3):
                raise ValueError
            lo, hi = parts[0], parts[1]
            step = parts[2] if len(parts) == 3 else 1
            if step < 1 or hi < lo:
                raise ValueError
            out = range(lo, hi + 1, step)
        else:
            out = [int(p) for p in text.split(",")]
    except ValueError:
        raise ValueError(f"delays must look like 1:30, 1:30:2, 5 or 1,2,5, got {spec!r}") from None
    # a range ascends: its first value is its least (min() would walk all of it)
    if len(out) == 0 or (out[0] if isinstance(out, range) else min(out)) < 1:
        raise ValueError(f"delays must all be >= 1, got {spec!r}")
    return out
