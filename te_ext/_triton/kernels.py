"""The generated Triton kernels (codegen.py), loaded from files (their launch geometry:
geometry.py).

Importing this module imports triton. Triton's ``@jit`` reads a kernel's source with
``inspect``, so each rendered kernel is written once to a file (named by the hash of its
source, written atomically) and imported from there.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import tempfile
from functools import lru_cache
from pathlib import Path

import triton  # noqa: F401  (the generated modules import it too; fail here, early)

from . import codegen
# The launch geometry lives in geometry.py, which imports no triton (dispatch decides with it).
from .geometry import (EPILOGUE_NUM_WARPS, MARGINAL_BLOCK_N, MARGINAL_NUM_WARPS,  # noqa: F401
                       STATIC_TILES, STATIC_TILES_SM80, Tiles, epilogue_blocks, marginal_block_k,
                       interpreted, split_count, tiles)


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


def epilogue_kernel(k: int, l: int):
    """The @triton.jit epilogue of a split launch (sums the partial cross counts)."""
    return getattr(_module(k, l), codegen.epilogue_name(k, l))
