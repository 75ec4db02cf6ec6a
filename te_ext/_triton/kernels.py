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

from . import codegen


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
def fused_kernel(k: int, l: int):
    """The @triton.jit kernel for (k, l)."""
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
    return getattr(module, codegen.kernel_name(k, l))


@dataclass(frozen=True)
class Tiles:
    block_i: int
    block_j: int
    block_k: int
    num_warps: int
    group_i: int = 8


def tiles(k: int, l: int) -> Tiles:
    """Tile sizes: the accumulators of a program ((2^l-1)(2^(k+1)-1) tiles of int32) stay
    near 3 x 128 x 64 elements, what k = l = 1 holds at 8 warps.

    Untuned (no GPU here): scripts/gpu_bench_fused.py is where they get measured.
    Under the interpreter: few, large programs (numpy does the work per program).
    ``TE_EXT_TRITON_TILES=BLOCK_I,BLOCK_J,BLOCK_K[,num_warps]`` overrides them (powers of
    two, each >= 16).
    """
    override = os.environ.get("TE_EXT_TRITON_TILES")
    if override:  # "BLOCK_I,BLOCK_J,BLOCK_K[,num_warps]": tests and tuning runs
        values = [int(v) for v in override.split(",")]
        return Tiles(*values[:3], values[3] if len(values) > 3 else 4)
    products = ((1 << l) - 1) * ((1 << (k + 1)) - 1)
    if interpreted():
        return Tiles(64, 64, 512, 1, 1)
    area = 3 * 128 * 64 // products
    bi = bj = 16
    while bi * bj * 2 <= area and bi < 128:
        if bi <= bj:
            bi *= 2
        else:
            bj *= 2
    return Tiles(bi, bj, 64, 8 if bi * bj >= 128 * 64 else 4)
