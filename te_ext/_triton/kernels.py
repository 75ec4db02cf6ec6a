"""The generated Triton kernels (codegen.py), loaded from files, and their launch geometry.

Importing this module imports triton. Triton's ``@jit`` reads a kernel's source with
``inspect``, so each rendered kernel is written once to a file (named by the hash of its
source, written atomically) and imported from there.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import tempfile
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import triton  # noqa: F401  (the generated modules import it too; fail here, early)

from . import codegen, heuristic


def interpreted() -> bool:
    """True under ``TRITON_INTERPRET=1`` (kernels run in numpy on CPU tensors)."""
    return os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")


def _cache_dir() -> Path:
    root = os.environ.get("TE_EXT_TRITON_CACHE")
    if root:
        path = Path(root)
    else:
        path = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "te_ext" / "triton"
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / ".probe"
        probe.write_text("")
        probe.unlink()
        return path
    except OSError:  # read-only home: a per-user temp dir
        path = Path(tempfile.gettempdir()) / f"te_ext_triton_{os.getuid()}"
        path.mkdir(parents=True, exist_ok=True)
        return path


@lru_cache(maxsize=None)
def _module(k: int, l: int):
    source = codegen.render(k, l)
    digest = hashlib.sha256(source.encode()).hexdigest()[:16]
    path = _cache_dir() / f"{codegen.kernel_name(k, l)}_{digest}.py"
    if not path.exists() or path.read_text() != source:
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".py")
        with os.fdopen(fd, "w") as f:
            f.write(source)
        os.replace(tmp, path)
    spec = importlib.util.spec_from_file_location(f"te_ext_triton_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def fused_kernel(k: int, l: int):
    """The @triton.jit MMA-and-epilogue kernel for (k, l)."""
    return getattr(_module(k, l), codegen.kernel_name(k, l))


def marginals_kernel(k: int, l: int):
    """The @triton.jit per-neuron state-count kernel for (k, l), launched first."""
    return getattr(_module(k, l), codegen.marginals_name(k, l))


# Marginals kernel geometry: a [BLOCK_K, BLOCK_N] block of one side's series per step.
MARGINAL_BLOCK_N = 64
MARGINAL_BLOCK_K = 64
MARGINAL_NUM_WARPS = 4


@dataclass(frozen=True)
class Tiles:
    block_i: int
    block_j: int
    block_k: int
    num_warps: int
    group_i: int = 8


# Default tiles per (k, l) until a GPU measures them: among the shapes tried, the one ptxas
# compiles for sm_90 with the fewest spill bytes per thread, 8 warps (triton 3.8, 2026-11;
# bench/results/triton-static-*.md). Spills at these tiles: (1, 1) 48 B, (1, 2) and (2, 1)
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


def tiles(k: int, l: int, device=None) -> Tiles:
    """Tile sizes of the fused kernel for (k, l).

    First found wins: ``TE_EXT_TRITON_TILES=BLOCK_I,BLOCK_J,BLOCK_K[,num_warps]`` (powers of
    two, each >= 16); under the interpreter few, large programs (numpy does the work per
    program); the tiles the measured table of ``device``'s GPU model chose
    (scripts/gpu_bench_fused.py, heuristic.measured_tiles); else ``STATIC_TILES``.
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
    return STATIC_TILES[(k, l)]
