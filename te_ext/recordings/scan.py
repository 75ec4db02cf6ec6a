"""``te-matrix``'s computation: the delay scan in blocks of source neurons, the peak over
delays and its sign, p-values of the peak, spread over ranks under torchrun."""

from __future__ import annotations

import os
import sys
from typing import List, NamedTuple, Optional

import numpy as np
import torch

from .. import distributed as te_dist
from ..delays import transfer_entropy_delays, transfer_entropy_delays_packed
from ..stats import significance

# Bytes of float64 TE and sign per block of sources ([2, D, block, N]); the op's workspace is
# about as much.
BLOCK_BYTES = 256 << 20


class PackedSeries(NamedTuple):
    """A recording as bit-packed words, int64 ``[N, ceil(length / 64)]`` (one process, CPU)."""
    words: torch.Tensor
    length: int


class Ranks:
    """torch.distributed under torchrun (WORLD_SIZE > 1), a no-op otherwise."""

    def __init__(self, device: str):
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = 0
        self.owned = False
        if self.world > 1:
            import torch.distributed as dist
            if device == "cuda":
                torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
            if not dist.is_initialized():
                dist.init_process_group("nccl" if device == "cuda" else "gloo")
                self.owned = True
            self.rank = dist.get_rank()

    def all_ok(self, ok: bool) -> bool:
        if self.world == 1:
            return ok
        import torch.distributed as dist
        flag = torch.tensor([1 if ok else 0])
        dist.all_reduce(flag, op=dist.ReduceOp.MIN)
        return bool(flag.item())

    def close(self):
        if self.owned:
            import torch.distributed as dist
            dist.destroy_process_group()


def _progress(total: int, enabled: bool):
    """A bar on a terminal; none in logs (tqdm's disable=None) or without tqdm."""
    try:
        from tqdm import tqdm
    except ImportError:
        return None
    return tqdm(total=total, desc="te-matrix", unit="block", disable=None if enabled else True,
                file=sys.stderr)


def block_size(n: int, d: int, requested: Optional[int]) -> int:
    """Sources per block: the block's TE and its sign, float64 [2, D, block, N], stay under
    BLOCK_BYTES."""
    if requested is not None:
        return min(requested, n)
    return max(1, min(n, BLOCK_BYTES // max(1, 2 * d * n * 8)))


def coincidence_index(te: np.ndarray, best: np.ndarray, window: int) -> np.ndarray:
    """The coincidence index (TECI; Ito et al., PLoS ONE 2011) of each pair: the TE summed over
    ``window`` consecutive entries of the scan centred on the peak (clipped at the ends), over
    the TE summed over the whole scan, as the Transfer Entropy Toolbox's ``CIReduce.m`` computes
    it. ``te [D, ...]``, ``best`` the peak's index per pair; NaN where every TE is 0 (0/0, as
    there). A sharp peak gives a value near 1, a flat scan about window / D."""
    D = te.shape[0]
    cs = np.concatenate([np.zeros((1,) + te.shape[1:]), np.cumsum(te, axis=0)])
    lo = np.maximum(best - window // 2, 0)
    hi = np.minimum(best + window // 2, D - 1)
    num = np.take_along_axis(cs, hi[None] + 1, axis=0)[0] - np.take_along_axis(cs, lo[None], axis=0)[0]
    total = cs[D]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, num / np.where(total > 0, total, 1.0), np.nan)


def delay_scan(x: torch.Tensor, delays: List[int], *, k: int, l: int, block: int, ranks: Ranks,
               write_rows=None, peak: Optional[np.ndarray] = None,
               peak_delay: Optional[np.ndarray] = None,
               signed_peak: Optional[np.ndarray] = None, teci: Optional[np.ndarray] = None,
               ci_window: int = 5) -> None:
    """TE at every delay, one block of source neurons at a time: ``write_rows(i0, te[D, b, N])``
    receives each block (rank 0); ``peak``/``peak_delay`` their maximum over delays and its
    delay (the first on ties), and ``signed_peak`` the sorted local TE (Kajiwara et al. 2021)
    at that delay, positive for an excitatory link. The sign comes from the scan's own joint
    counts (``transfer_entropy_delays(..., signed=True)``): no second pass over the data.
    ``teci``: the coincidence index over ``ci_window`` delays (:func:`coincidence_index`)."""
    packed = isinstance(x, PackedSeries)
    n = x.words.shape[0] if packed else x.shape[-1]
    dl = np.asarray(delays)
    starts = list(range(0, n, block))
    bar = _progress(len(starts), ranks.rank == 0)
    for i0 in starts:
        i1 = min(n, i0 + block)
        if packed:
            te, sign = transfer_entropy_delays_packed(x.words[i0:i1], x.words, x.length, delays,
                                                      k=k, l=l, signed=True)
        elif ranks.world > 1:
            src = x[:, i0:i1]
            te, sign = te_dist.transfer_entropy_delays(src, x, delays, k=k, l=l, signed=True)
        else:
            te, sign = transfer_entropy_delays(x[:, i0:i1], x, delays, k=k, l=l, signed=True)
        if write_rows is not None:
            te, sign = te.cpu().numpy(), sign.cpu().numpy()
            write_rows(i0, te)
            best = np.argmax(te, axis=0)[None]  # the first delay on ties
            peak[i0:i1] = np.take_along_axis(te, best, axis=0)[0]
            peak_delay[i0:i1] = dl[best[0]]
            signed_peak[i0:i1] = np.take_along_axis(sign, best, axis=0)[0]
            if teci is not None:
                teci[i0:i1] = coincidence_index(te, best[0], ci_window)
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()


def peak_p_values(x: torch.Tensor, peak_delay: np.ndarray, *, surrogates: int, k: int, l: int,
                  seed: int) -> np.ndarray:
    """p-value of each pair's peak TE at its peak delay (:func:`te_ext.significance`): about
    ``surrogates + 1`` TE calls per distinct peak delay, over the pairs that peak there."""
    p = np.empty(peak_delay.shape, dtype=np.float64)
    for d in np.unique(peak_delay):
        ij = np.argwhere(peak_delay == d)
        res = significance(x, x, surrogates=surrogates, k=k, l=l, delay=int(d),
                           pairs=torch.from_numpy(ij).to(x.device), seed=seed)
        p[ij[:, 0], ij[:, 1]] = res.p_value.cpu().numpy()
    return p
