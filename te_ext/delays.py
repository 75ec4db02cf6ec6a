"""The delay scan: TE at many source delays in one call.

Delayed TE scanned over 1..30 bins, with the peak taken per pair, is how
effective connectivity is read from spike trains (Ito et al., PLoS ONE 2011).
``transfer_entropy_delays`` computes the whole scan at once: both series are
binarised and packed once, the target streams and marginals are shared, and each
delay's source streams are word shifts of the packed source.
"""

from __future__ import annotations

import numbers
from typing import Optional, Sequence, Tuple, Union

import torch
from torch import Tensor

from . import _prepare

__all__ = ["transfer_entropy_delays", "transfer_entropy_delays_packed", "parse_delays"]


def transfer_entropy_delays(source: Tensor, target: Tensor,
                            delays: Union[Sequence[int], Tensor, int], *, k: int = 1, l: int = 1,
                            threshold: Optional[float] = None, signed: bool = False
                            ) -> Union[Tensor, Tuple[Tensor, Tensor]]:
    """``TE(source i -> target j)`` in bits at each delay: float64 ``[D, I, J]``.

    With ``signed=True``, ``(te, signed)``: the same TE and, beside it, the sorted local TE
    (:func:`te_ext.stats.sorted_local_te`) of the same joint counts, ``[D, I, J]``, positive
    where the source's spike raises the target's chance to spike next (excitatory) and negative
    where it lowers it. On the CPU the sign comes out of the scan's own counts: no second pass.

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
    >>> te, sign = te_ext.transfer_entropy_delays(x, 1 - y, range(1, 9), signed=True)
    >>> bool(sign[3, 0, 0] < 0)  # silent 4 steps after the source fires: inhibitory
    True
    """
    _prepare.ints("transfer_entropy_delays", k=k, l=l)
    _prepare.flag("transfer_entropy_delays", signed=signed)
    scan = _prepare.delays(delays, longest=_prepare.length(source), l=l if isinstance(l, int) else 1)
    op = torch.ops.te.transfer_entropy_delays_signed if signed else torch.ops.te.transfer_entropy_delays
    out = op(_prepare.series(source, threshold), _prepare.series(target, threshold), scan, k, l,
             threshold)
    return (out[0], out[1]) if signed else out


def transfer_entropy_delays_packed(source_words: Tensor, target_words: Tensor, length: int,
                                   delays: Union[Sequence[int], Tensor, int], *, k: int = 1,
                                   l: int = 1, signed: bool = False
                                   ) -> Union[Tensor, Tuple[Tensor, Tensor]]:
    """:func:`transfer_entropy_delays` of series given bit-packed, CPU only: each side int64
    ``[N, W]`` words, bit ``t`` of row ``i`` (least significant bit first) the value of
    neuron ``i`` at time ``t``, for ``t < length``, and every bit at or past ``length`` zero
    (``W >= ceil(length / 64)``). No replicates, no threshold. The result is the one the same
    series as a bool ``[length, N]`` tensor give, bit for bit; ``te-matrix`` bins spike times
    straight into such words, so a recording never exists as a ``[T, N]`` byte array.

    >>> x = torch.tensor([[0b1011_0110_0101]])      # one neuron, 12 bins
    >>> dense = (x >> torch.arange(12)) & 1         # the same series as [1, 12] bits
    >>> te = te_ext.delays.transfer_entropy_delays_packed(x, x, 12, [1, 2])
    >>> torch.equal(te, te_ext.transfer_entropy_delays(dense.T, dense.T, [1, 2]))
    True
    """
    if isinstance(length, bool) or not isinstance(length, numbers.Integral):
        raise TypeError(f"te.transfer_entropy_delays_packed: length must be an int, got "
                        f"{type(length).__name__}")
    _prepare.ints("transfer_entropy_delays_packed", k=k, l=l, length=length)
    _prepare.flag("transfer_entropy_delays_packed", signed=signed)
    scan = _prepare.delays(delays, longest=int(length), l=l, op="transfer_entropy_delays_packed")
    out = torch.ops.te._transfer_entropy_delays_packed(source_words, target_words, int(length),
                                                       scan, k, l, signed)
    return (out[0], out[1]) if signed else out


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
