"""The delay scan: TE at many source delays in one call.

Delayed TE scanned over 1..30 bins, with the peak taken per pair, is how
effective connectivity is read from spike trains (Ito et al., PLoS ONE 2011).
``transfer_entropy_delays`` computes the whole scan at once: both series are
binarised and packed once, the target streams and marginals are shared, and each
delay's source streams are word shifts of the packed source.
"""

from __future__ import annotations

import numbers
from typing import Optional, Sequence, Union

import torch
from torch import Tensor

__all__ = ["transfer_entropy_delays", "parse_delays"]


def _delay_list(delays) -> list:
    if isinstance(delays, Tensor):
        if delays.dtype.is_floating_point or delays.dtype.is_complex or delays.dtype == torch.bool:
            raise TypeError(f"delays must hold integers, got a tensor of dtype {delays.dtype}")
        delays = delays.reshape(-1).tolist()
    elif isinstance(delays, (numbers.Integral,)) and not isinstance(delays, bool):
        delays = [delays]
    elif isinstance(delays, (str, bytes)) or not hasattr(delays, "__iter__"):
        raise TypeError(f"delays must be a sequence of ints, got {type(delays).__name__}")
    out = []
    for q, d in enumerate(delays):
        if isinstance(d, bool) or not isinstance(d, numbers.Integral):
            raise TypeError(f"delays must hold ints, got delays[{q}] = {d!r} "
                            f"({type(d).__name__})")
        if d < 1:
            raise ValueError(f"delays must all be >= 1, got delays[{q}] = {int(d)}")
        out.append(int(d))
    if not out:
        raise ValueError("delays must hold at least one delay, got none")
    return out


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
    """
    return torch.ops.te.transfer_entropy_delays(source, target, _delay_list(delays), k, l,
                                                threshold)


def parse_delays(spec: str) -> list:
    """``"1:30"`` -> ``[1, ..., 30]`` (inclusive), ``"1:30:2"`` -> every 2nd, ``"3"`` -> ``[3]``,
    ``"1,2,5"`` -> ``[1, 2, 5]``. Raises ValueError naming the text."""
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
            out = list(range(lo, hi + 1, step))
        else:
            out = [int(p) for p in text.split(",")]
    except ValueError:
        raise ValueError(f"delays must look like 1:30, 1:30:2, 5 or 1,2,5, got {spec!r}") from None
    if not out or min(out) < 1:
        raise ValueError(f"delays must all be >= 1, got {spec!r}")
    return out
