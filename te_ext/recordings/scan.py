"""``te-matrix``'s computation: the delay scan in blocks of source neurons, the peak over
delays, p-values of the peak, spread over ranks under torchrun."""

from __future__ import annotations

import os
import sys
from typing import List, Optional

import numpy as np
import torch

from .. import distributed as te_dist
from .._ops import joint_counts
from ..delays import transfer_entropy_delays
from ..stats import significance, sorted_local_te

# Bytes of float64 TE per block of sources ([D, block, N]); the op's workspace is about as much.
BLOCK_BYTES = 256 << 20


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
    if requested is not None:
        return min(requested, n)
    return max(1, min(n, BLOCK_BYTES // max(1, d * n * 8)))


def delay_scan(x: torch.Tensor, delays: List[int], *, k: int, l: int, block: int, ranks: Ranks,
               write_rows=None, peak: Optional[np.ndarray] = None,
               peak_delay: Optional[np.ndarray] = None) -> None:
    """TE at every delay, one block of source neurons at a time: ``write_rows(i0, te[D, b, N])``
    receives each block (rank 0), and ``peak``/``peak_delay`` their maximum over delays and its
    delay (the first on ties)."""
    n = x.shape[-1]
    dl = np.asarray(delays)
    starts = list(range(0, n, block))
    bar = _progress(len(starts), ranks.rank == 0)
    for i0 in starts:
        i1 = min(n, i0 + block)
        src = x[:, i0:i1]
        if ranks.world > 1:
            te = te_dist.transfer_entropy_delays(src, x, delays, k=k, l=l)
        else:
            te = transfer_entropy_delays(src, x, delays, k=k, l=l)
        if write_rows is not None:
            te = te.cpu().numpy()
            write_rows(i0, te)
            best = np.argmax(te, axis=0)  # the first delay on ties
            peak[i0:i1] = np.take_along_axis(te, best[None], axis=0)[0]
            peak_delay[i0:i1] = dl[best]
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


def peak_signed(x: torch.Tensor, peak_delay: np.ndarray, *, k: int, l: int, block: int) -> np.ndarray:
    """Sorted local TE (:func:`te_ext.stats.sorted_local_te`) of each pair at its peak delay:
    positive for an excitatory link, negative for an inhibitory one. One ``joint_counts`` per
    block of sources and distinct peak delay: a second pass over the data, which the delay scan's
    own kernel does not yet share."""
    n = x.shape[-1]
    out = np.zeros(peak_delay.shape, dtype=np.float64)
    bins = 2 ** (k + l + 1)
    block = max(1, min(block, (256 << 20) // max(1, n * bins * 8)))
    for d in np.unique(peak_delay):
        for i0 in range(0, n, block):
            i1 = min(n, i0 + block)
            rows = peak_delay[i0:i1] == d
            if not rows.any():
                continue
            s = sorted_local_te(joint_counts(x[:, i0:i1], x, k=k, l=l, delay=int(d)), k, l)
            out[i0:i1][rows] = s.cpu().numpy()[rows]
    return out
