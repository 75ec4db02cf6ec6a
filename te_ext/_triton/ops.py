"""``te::_transfer_entropy_fused`` and ``te::_joint_counts_fused``: the fused Triton kernel as
torch ops, registered with ``torch.library.triton_op`` so ``torch.compile`` sees the kernel.

Internal ops: their arguments are assumed valid (``dispatch.py`` checks them, and falls back to
the C++ op, which raises the documented errors, for anything else). Importing this module
imports triton and needs torch >= 2.6 (``triton_op`` / ``wrap_triton``); ``dispatch.py``
guards both.

Threshold tensors: one element of the input's floating dtype ``D``, the largest ``D`` value
<= the threshold, so ``v > thr`` evaluated in ``D`` equals the contract's double-precision
comparison for every ``v`` of dtype ``D`` (see ``dispatch.threshold_in``).
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor
from torch.library import triton_op, wrap_triton

from . import kernels


def _as_3d(x: Tensor) -> Tensor:
    x = x if x.dim() == 3 else x.unsqueeze(0)
    # bool -> uint8 is a view (same bytes); Triton then loads plain bytes.
    return x.view(torch.uint8) if x.dtype == torch.bool else x


def _launch(source: Tensor, target: Tensor, k: int, l: int, delay: int,
            source_threshold: Optional[Tensor], target_threshold: Optional[Tensor],
            out_counts: bool) -> Tensor:
    x, y = _as_3d(source), _as_3d(target)
    R, T, I = x.shape
    J = y.shape[2]
    n0 = max(k, l - 1 + delay)
    obs_per_rep = T - n0
    nobs = R * obs_per_rep
    if out_counts:
        out = torch.empty((I, J, 1 << (k + l + 1)), dtype=torch.int64, device=x.device)
    else:
        out = torch.empty((I, J), dtype=torch.float64, device=x.device)
    has_threshold = source_threshold is not None
    xthr = source_threshold if has_threshold else out
    ythr = target_threshold if has_threshold else out
    # f(c) = c log2 c for c = 0..nobs (te_math.h clog2c; a table as the CPU path's TableClog).
    c = torch.arange(nobs + 1, dtype=torch.float64, device=x.device)
    clog = c * torch.log2(c)
    clog[0] = 0.0
    t = kernels.tiles(k, l)
    grid = (triton_cdiv(I, t.block_i) * triton_cdiv(J, t.block_j),)
    wrap_triton(kernels.fused_kernel(k, l))[grid](
        x, y, xthr, ythr, clog, out, I, J, nobs, obs_per_rep, n0, delay,
        x.stride(0), x.stride(1), x.stride(2), y.stride(0), y.stride(1), y.stride(2),
        HAS_THRESHOLD=has_threshold, OUT_COUNTS=out_counts,
        BLOCK_I=t.block_i, BLOCK_J=t.block_j, BLOCK_K=t.block_k, GROUP_I=t.group_i,
        num_warps=t.num_warps)
    return out


def triton_cdiv(a: int, b: int) -> int:
    return (a + b - 1) // b


@triton_op("te::_transfer_entropy_fused", mutates_args=())
def transfer_entropy_fused(source: Tensor, target: Tensor, k: int, l: int, delay: int,
                           source_threshold: Optional[Tensor],
                           target_threshold: Optional[Tensor]) -> Tensor:
    """float64 [I, J] TE; equals ``te.transfer_entropy`` (counts exactly, TE to rounding)."""
    return _launch(source, target, k, l, delay, source_threshold, target_threshold, False)


@triton_op("te::_joint_counts_fused", mutates_args=())
def joint_counts_fused(source: Tensor, target: Tensor, k: int, l: int, delay: int,
                       source_threshold: Optional[Tensor],
                       target_threshold: Optional[Tensor]) -> Tensor:
    """int64 [I, J, 2^(k+l+1)] joint counts; equal to ``te.joint_counts`` bit for bit."""
    return _launch(source, target, k, l, delay, source_threshold, target_threshold, True)
