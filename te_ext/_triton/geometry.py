"""Launch geometry of the fused Triton kernels: tiles, split-K, and shared memory per block.

Imports no triton, so ``dispatch`` can decide before anything compiles: a call whose kernel
would need more shared memory per block than the GPU allows is declined from these static
sizes, never launched into Triton's ``OutOfResources``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache
from typing import Optional

from . import codegen, heuristic


def interpreted() -> bool:
    """True under ``TRITON_INTERPRET=1`` (kernels run in numpy on CPU tensors)."""
    return os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")


# Marginals kernel geometry: a [BLOCK_K, BLOCK_N] block of one side's series per step, 4 warps.
# One side's 2^(k+1) - 1 (or 2^l - 1) state streams are all live in a step, so the block
# shrinks as they grow: ptxas (sm_90, triton 3.8) spilled 2.8 KB per thread for k = 3 at 64x64,
# and 24 B at 16x64; 7 streams spill 64-68 B at 64x64 and none at 32x64.
MARGINAL_BLOCK_N = 64
MARGINAL_NUM_WARPS = 4


def marginal_block_k(k: int, l: int) -> int:
    streams = max((1 << l) - 1, (1 << (k + 1)) - 1)
    return 64 if streams <= 3 else 32 if streams <= 7 else 16


# Split epilogue geometry: pairs of a program, 8 warps; its counts and f(c) sums live in
# registers, so 4 pairs a thread, 2 where a pair has 15 or more cross counts (ptxas spilled
# 444-784 B at 32x32 for (2, 2) and (1, 3)).
EPILOGUE_NUM_WARPS = 8


def epilogue_blocks(k: int, l: int):
    """(BLOCK_I, BLOCK_J) of the split epilogue for (k, l)."""
    return (32, 32) if len(codegen.stream_products(k, l)) < 15 else (16, 32)


# Splitting the observations of a tile over programs (split-K): at most this many splits, each
# at least this many BLOCK_K blocks long (shorter ones spend more on writing and re-reading
# their partial counts than they save).
MAX_SPLIT = 16
MIN_BLOCKS_PER_SPLIT = 8


def _cuda_index(device) -> Optional[int]:
    import torch

    device = torch.device(device)
    if device.type != "cuda":
        return None
    return device.index if device.index is not None else torch.cuda.current_device()


@lru_cache(maxsize=None)
def _properties(index: int):
    import torch

    return torch.cuda.get_device_properties(index)


def sm_count(device) -> Optional[int]:
    """Streaming multiprocessors of a CUDA ``device``; None for other devices."""
    index = _cuda_index(device)
    return None if index is None else _properties(index).multi_processor_count


def split_count(programs: int, nobs: int, block_k: int, device=None) -> int:
    """How many parts a launch of ``programs`` programs (tiles of pairs, or of neurons) splits
    its ``nobs`` observations into.

    Small problems have fewer tiles than the GPU has SMs (256^2 pairs are 16 tiles of 64x64,
    on 132 SMs): each tile's program then walks all T observations alone while most SMs idle.
    Splitting multiplies the programs, at the cost of writing and re-reading partial counts,
    O(programs x tile) memory: the smallest power of two that gives every SM a program, at most
    ``MAX_SPLIT``, each split at least ``MIN_BLOCKS_PER_SPLIT`` blocks of ``block_k``.
    ``TE_EXT_TRITON_SPLIT=N`` forces N (tests, and the benchmark's sweep); the interpreter and
    non-CUDA devices use 1. Until a GPU measures it, this rule is a reasoned default, not a
    measured one (scripts/gpu_bench_fused.py times it against forced splits).
    """
    override = os.environ.get("TE_EXT_TRITON_SPLIT")
    if override:
        value = int(override)
        if value < 1:
            raise ValueError(f"TE_EXT_TRITON_SPLIT must be an integer >= 1, got {override!r}")
        return value
    if interpreted():
        return 1
    sms = sm_count(device) if device is not None else None
    if sms is None:
        return 1
    blocks = -(-nobs // block_k)
    split = 1
    while (programs * split < sms and split * 2 <= MAX_SPLIT
           and blocks >= split * 2 * MIN_BLOCKS_PER_SPLIT):
        split *= 2
    return split


@dataclass(frozen=True)
class Tiles:
    block_i: int
    block_j: int
    block_k: int
    num_warps: int
    group_i: int = 8


# Default tiles per (k, l) until a GPU measures them: among the shapes tried, the one ptxas
# compiles for sm_90 with the fewest spill bytes per thread, 8 warps, and 64-row blocks, which
# Triton lowers to wgmma (32-row blocks fall back to mma.sync there). Triton 3.8, 2026-11;
# bench/results/triton-static-*.md. Spills at these tiles: (1, 1) 48 B, (1, 2) and (2, 1)
# none, (2, 2) 452 B, (3, 1) 456 B, (1, 3) 476 B. The first default, 128x64x64 for k = l = 1
# and 32x32x64 / 4 warps for (2, 2), spilled 3.2 KB and 22-35 KB.
STATIC_TILES = {
    (1, 1): Tiles(64, 64, 64, 8),
    (1, 2): Tiles(64, 32, 64, 8),
    (2, 1): Tiles(64, 32, 64, 8),
    (2, 2): Tiles(64, 32, 64, 8),
    (3, 1): Tiles(64, 32, 64, 8),
    (1, 3): Tiles(64, 32, 64, 8),
}

# Before sm_90 (A100, sm_86, sm_89: mma.sync) the sm_90 tiles spill more, and at (2, 2) ptxas
# falls back to 32 registers and 26.6 KB of spills. 32x64x64 / 8 warps spills least of eight
# shapes tried there: none for (1, 1), (1, 2), (2, 1); (2, 2) 492 B, (3, 1) 28 B, (1, 3) 624 B.
STATIC_TILES_SM80 = {kl: Tiles(32, 64, 64, 8) for kl in STATIC_TILES}


def compute_capability(device) -> Optional[int]:
    """``major * 10 + minor`` of a CUDA ``device`` (90 for an H100); None for other devices."""
    index = _cuda_index(device)
    if index is None:
        return None
    props = _properties(index)
    return props.major * 10 + props.minor


def tiles(k: int, l: int, device=None, cc: Optional[int] = None) -> Tiles:
    """Tile sizes of the fused kernel for (k, l) on ``device`` (or compute capability ``cc``).

    First found wins: ``TE_EXT_TRITON_TILES=BLOCK_I,BLOCK_J,BLOCK_K[,num_warps]`` (powers of
    two, each >= 16); under the interpreter few, large programs (numpy does the work per
    program); the tiles the measured table of ``device``'s GPU model chose
    (scripts/gpu_bench_fused.py, heuristic.measured_tiles); else the static default of the
    architecture, ``STATIC_TILES_SM80`` before sm_90 and ``STATIC_TILES`` from it on.
    """
    override = os.environ.get("TE_EXT_TRITON_TILES")
    if override:  # "BLOCK_I,BLOCK_J,BLOCK_K[,num_warps]": tests and tuning runs
        values = [int(v) for v in override.split(",")]
        return Tiles(*values[:3], values[3] if len(values) > 3 else 4)
    if interpreted():
        return Tiles(64, 64, 512, 1, 1)
    measured = heuristic.measured_tiles(k, l, device)
    if measured is not None:
        return Tiles(measured["block_i"], measured["block_j"], measured["block_k"],
                     measured["num_warps"])
    if cc is None and device is not None:
        cc = compute_capability(device)
    return (STATIC_TILES_SM80 if cc is not None and cc < 90 else STATIC_TILES)[(k, l)]


# ---- shared memory per block ----------------------------------------------------------------
# What the MMA kernel's block holds in shared memory, as Triton 3.8 lays it out (every (k, l),
# bool/float16/float32/float64 input, sm_80 and sm_90 default tiles: exact to the byte against
# the compiled kernels' metadata.shared; tests/test_fused_triton_aot.py checks it where the
# AOT compiles run): the int8 operand tiles of every state stream, plus two pipeline stages of
# the raw input rows each step reads (l source lags, k + 1 target lags) in the input's dtype.
INPUT_STAGES = 2

# Opt-in shared memory per block by compute capability, where torch does not report it
# (``shared_memory_per_block_optin``): A100 163 KB, sm_86/89 99 KB, H100/H200 227 KB.
MAX_SHARED_BY_CC = {80: 166912, 86: 101376, 87: 166912, 89: 101376, 90: 232448}


def shared_bytes(k: int, l: int, itemsize: int, t: "Tiles") -> int:
    """Shared memory per block of the fused MMA kernel for (k, l), tiles ``t`` and input
    elements of ``itemsize`` bytes (bool: 1)."""
    streams = ((1 << l) - 1) * t.block_i + ((1 << (k + 1)) - 1) * t.block_j
    rows = l * t.block_i + (k + 1) * t.block_j
    return t.block_k * streams + INPUT_STAGES * t.block_k * rows * itemsize


def max_shared_bytes(device) -> Optional[int]:
    """Shared memory a block of CUDA ``device`` may use (opt-in), or None off CUDA."""
    index = _cuda_index(device)
    if index is None:
        return None
    props = _properties(index)
    optin = getattr(props, "shared_memory_per_block_optin", None)
    if optin:
        return int(optin)
    return MAX_SHARED_BY_CC.get(props.major * 10 + props.minor, 101376)


def table_size(nobs: int) -> int:
    """Entries of the f(c) table a call with ``nobs`` observations uses (ops.clog_table): the
    power of two >= nobs + 1, in integer arithmetic."""
    return 1 << nobs.bit_length()
