"""``te::_transfer_entropy_fused`` and ``te::_joint_counts_fused``: the fused Triton kernel as
torch ops, registered with ``torch.library.triton_op`` so ``torch.compile`` sees the kernel.

Internal ops: their arguments are assumed valid (``dispatch.py`` checks them, and falls back to
the C++ op, which raises the documented errors, for anything else). Importing this module
imports triton and needs torch >= 2.6 (``triton_op`` / ``wrap_triton``); ``dispatch.py``
guards both.

The threshold is the bit pattern (a Python int) of one value of the input's floating dtype
``D``, the largest ``D`` value <= the threshold, so ``v > thr`` evaluated in ``D`` equals the
contract's double-precision comparison for every ``v`` of dtype ``D`` (see
``dispatch.threshold_bits``). A scalar kernel argument: no device tensor, so no host-to-device
copy, which from pageable memory would synchronise the stream on every call.

The table ``f(c) = c log2(c / centre)`` the epilogue reads (te_math.h ``clog2c``, centred near
the pair total, which keeps the reduction's rounding at ~1e-16 bits) is built once per device,
stream and centre and reused (``clog_table``); only a traced call (``torch.compile``) builds it
in the graph.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Optional, Tuple

import torch
from torch import Tensor
from torch.library import triton_op, wrap_triton

from . import codegen, geometry, kernels


def _as_3d(x: Tensor) -> Tensor:
    x = x if x.dim() == 3 else x.unsqueeze(0)
    if x.dtype != torch.bool:
        return x
    # bool -> uint8: eagerly a view (same bytes), so Triton loads plain bytes. Inductor (torch
    # 2.11, the H200 run of 2026-12-04) cannot lower view(dtype) of a bool tensor ("torch.bool
    # is not supported by torch.iinfo"): traced, it is a conversion, which it fuses.
    return x.to(torch.uint8) if _tracing() else x.view(torch.uint8)


# (device, stream, centre) -> its table; a few entries, so short-lived streams and changing
# window lengths cannot pile tables up.
_TABLES: "OrderedDict[Tuple[str, int, int], Tensor]" = OrderedDict()
_MAX_TABLES = 4


def clog_centre(nobs: int) -> int:
    """te_math.h ``clog_centre``: ``nobs`` with all but its 4 leading bits cleared (1 for 0)."""
    if nobs <= 0:
        return 1
    shift = max(nobs.bit_length() - 4, 0)
    return (nobs >> shift) << shift


def _build_table(size: int, nobs: int, device) -> Tensor:
    # te_math.h clog2c: c * log2(c / centre), and 0 at c = 0 (the CPU path's TableClog). The
    # quotient is one rounding of exact integers; log2(c) - log2(centre) would cancel.
    c = torch.arange(size, dtype=torch.float64, device=device)
    return torch.where(c > 0, c * torch.log2(c / clog_centre(nobs)),
                       torch.zeros((), dtype=torch.float64, device=device))


def _tracing() -> bool:
    compiler = getattr(torch, "compiler", None)
    if compiler is not None and hasattr(compiler, "is_compiling") and compiler.is_compiling():
        return True
    return torch._guards.detect_fake_mode() is not None


def clog_table(nobs: int, device) -> Tensor:
    """float64 ``f(c)`` for at least ``c = 0..nobs``, centred for ``nobs``. Eager calls share one
    table per device, stream and centre, grown to the next power of two; ``dispatch.applicable``
    bounds its size."""
    device = torch.device(device)
    if _tracing():
        return _build_table(nobs + 1, nobs, device)
    stream = torch.cuda.current_stream(device).cuda_stream if device.type == "cuda" else 0
    key = (str(device), stream, clog_centre(nobs))
    table = _TABLES.get(key)
    if table is None or table.numel() <= nobs:
        table = _build_table(geometry.table_size(nobs), nobs, device)
        _TABLES[key] = table
    _TABLES.move_to_end(key)
    while len(_TABLES) > _MAX_TABLES:
        _TABLES.popitem(last=False)
    return table


def _launch(source: Tensor, target: Tensor, k: int, l: int, delay: int,
            threshold_bits: Optional[int], out_counts: bool) -> Tensor:
    x, y = _as_3d(source), _as_3d(target)
    R, T, I = x.shape
    J = y.shape[2]
    n0 = max(k, l - 1 + delay)
    obs_per_rep = T - n0
    nobs = R * obs_per_rep
    device = x.device
    if out_counts:
        out = torch.empty((I, J, 1 << (k + l + 1)), dtype=torch.int64, device=device)
    else:
        out = torch.empty((I, J), dtype=torch.float64, device=device)
    has_threshold = threshold_bits is not None
    bits = threshold_bits if has_threshold else 0
    clog = clog_table(nobs, device)
    strides = (x.stride(0), x.stride(1), x.stride(2), y.stride(0), y.stride(1), y.stride(2))

    # Per-neuron counts of each state >= 1, counted once (not by every tile of a row), in
    # partial planes when the neurons alone are too few programs for the GPU.
    bn, bk = kernels.MARGINAL_BLOCK_N, kernels.marginal_block_k(k, l)
    marg_programs = triton_cdiv(I, bn) + triton_cdiv(J, bn)
    marg_split = kernels.split_count(marg_programs, nobs, bk, device)
    xmarg = torch.empty((marg_split, I, (1 << l) - 1), dtype=torch.int32, device=device)
    ymarg = torch.empty((marg_split, J, (1 << (k + 1)) - 1), dtype=torch.int32, device=device)
    wrap_triton(kernels.marginals_kernel(k, l))[(marg_programs, marg_split)](
        x, y, bits, xmarg, ymarg, I, J, nobs, obs_per_rep, n0, delay, *strides, marg_split,
        HAS_THRESHOLD=has_threshold, BLOCK_N=bn, BLOCK_K=bk,
        num_warps=kernels.MARGINAL_NUM_WARPS)

    t = kernels.tiles(k, l, device)
    tiles = triton_cdiv(I, t.block_i) * triton_cdiv(J, t.block_j)
    split = kernels.split_count(tiles, nobs, t.block_k, device)
    # Split: partial cross counts, O(programs x tile), which the epilogue kernel sums and turns
    # into `out`. The MMA kernel then has no epilogue and never sees `out` (nor its dtype), so
    # TE and counts share one compiled variant of it. The pointer a launch does not use is
    # xmarg, which the MMA kernel only reads: no argument that aliases another is written
    # (what torch.compile's functional view of the kernel needs).
    if split > 1:
        part = torch.empty((split, len(codegen.stream_products(k, l)), I, J), dtype=torch.int32,
                           device=device)
        mma_out = xmarg
    else:
        part, mma_out = xmarg, out
    wrap_triton(kernels.fused_kernel(k, l))[(tiles, split)](
        x, y, bits, clog, xmarg, ymarg, mma_out, part, I, J, nobs, obs_per_rep, n0, delay, *strides,
        split, marg_split, HAS_THRESHOLD=has_threshold, OUT_COUNTS=out_counts and split == 1,
        BLOCK_I=t.block_i, BLOCK_J=t.block_j, BLOCK_K=t.block_k, GROUP_I=t.group_i,
        PARTIAL=split > 1, num_warps=t.num_warps)
    if split > 1:
        ei, ej = kernels.epilogue_blocks(k, l)
        wrap_triton(kernels.epilogue_kernel(k, l))[(triton_cdiv(I, ei) * triton_cdiv(J, ej),)](
            part, clog, xmarg, ymarg, out, I, J, nobs, split, marg_split,
            OUT_COUNTS=out_counts, BLOCK_I=ei, BLOCK_J=ej, num_warps=kernels.EPILOGUE_NUM_WARPS)
    return out


def triton_cdiv(a: int, b: int) -> int:
    return (a + b - 1) // b


@triton_op("te::_transfer_entropy_fused", mutates_args=())
def transfer_entropy_fused(source: Tensor, target: Tensor, k: int, l: int, delay: int,
                           threshold_bits: Optional[int]) -> Tensor:
    """float64 [I, J] TE; equals ``te.transfer_entropy`` (counts exactly, TE to rounding)."""
    return _launch(source, target, k, l, delay, threshold_bits, False)


@triton_op("te::_joint_counts_fused", mutates_args=())
def joint_counts_fused(source: Tensor, target: Tensor, k: int, l: int, delay: int,
                       threshold_bits: Optional[int]) -> Tensor:
    """int64 [I, J, 2^(k+l+1)] joint counts; equal to ``te.joint_counts`` bit for bit."""
    return _launch(source, target, k, l, delay, threshold_bits, True)
