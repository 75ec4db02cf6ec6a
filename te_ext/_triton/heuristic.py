"""When CUDA ``transfer_entropy`` takes the fused Triton kernel: a measured table, not a guess.

The table is the JSON that ``scripts/gpu_bench_fused.py`` records after timing the C++ path
against the fused kernel on a GPU, shipped into the package with ``--install-from``. Its
``fused`` list holds rules ``{"k", "l", "min_pairs", "min_obs"[, "op"]}``: the fused kernel is
used for that (k, l) when ``I * J >= min_pairs`` and the number of observations
``R * (T - n0) >= min_obs``; ``op`` is ``"transfer_entropy"`` (the default) or
``"joint_counts"``, timed separately (the counts epilogue writes 2^(k+l+1) int64 per pair).

A table holds for the GPU model that measured it (its ``device``, as
``torch.cuda.get_device_name`` spells it). Where it comes from, first found wins:

1. ``TE_EXT_GPU_HEURISTIC=<path to such a JSON>``, whatever its device (a fresh record from
   the benchmark, before it is shipped);
2. the table shipped in the package for this GPU model,
   ``te_ext/_triton/tables/gpu-heuristic-<model>.json`` (``<model>``: ``table_slug`` of the
   device name);
3. none: the **documented default is never to take the fused kernel**, since nothing has
   measured it on this GPU model (the C++ path stays what runs).

The package reads nothing outside itself: a record in a checkout's ``bench/results`` counts
only once installed (or named by ``TE_EXT_GPU_HEURISTIC``).

``TE_EXT_FUSED=1`` takes the fused kernel wherever it applies (and raises where it cannot:
``dispatch.choose``) and ``TE_EXT_FUSED=0`` never
(the CUDA tests use both, to compare the two paths).
"""

from __future__ import annotations

import json
import os
import re
from functools import lru_cache
from pathlib import Path
from typing import Any, Dict, List, Optional

PACKAGED = Path(__file__).resolve().parent / "tables"


def table_slug(device_name: str) -> str:
    """File-name form of a GPU model: "NVIDIA H200" -> "nvidia-h200"."""
    return re.sub(r"[^a-z0-9]+", "-", device_name.lower()).strip("-")


def table_path(device_name: Optional[str] = None) -> Optional[Path]:
    """The table for GPU model ``device_name`` (see the module docstring), or None."""
    explicit = os.environ.get("TE_EXT_GPU_HEURISTIC")
    if explicit:
        return Path(explicit)
    if device_name is None:
        return None
    return _shipped(device_name)


@lru_cache(maxsize=64)
def _shipped(device_name: str) -> Optional[Path]:
    path = PACKAGED / f"gpu-heuristic-{table_slug(device_name)}.json"
    return path if path.is_file() else None


OPS = ("transfer_entropy", "joint_counts")
TILE_KEYS = ("k", "l", "block_i", "block_j", "block_k", "num_warps")


@lru_cache(maxsize=None)
def _load(path: Optional[str]) -> Dict[str, List[Dict[str, Any]]]:
    if path is None:
        return {"fused": [], "tiles": []}
    with open(path) as f:
        table = json.load(f)
    rules = table.get("fused", [])
    for r in rules:
        if not all(isinstance(r.get(key), int) for key in ("k", "l", "min_pairs", "min_obs")):
            raise ValueError(f"{path}: every rule of 'fused' needs integer k, l, min_pairs and "
                             f"min_obs, got {r}")
        if r.get("op", "transfer_entropy") not in OPS:
            raise ValueError(f"{path}: a rule's 'op' must be one of {', '.join(OPS)}, got {r}")
    tiles = table.get("tiles", [])
    for t in tiles:
        if not all(isinstance(t.get(key), int) and t[key] > 0 for key in TILE_KEYS):
            raise ValueError(f"{path}: every entry of 'tiles' needs positive integers "
                             f"{', '.join(TILE_KEYS)}, got {t}")
        if any(t[key] < 16 or t[key] & (t[key] - 1) for key in ("block_i", "block_j", "block_k")):
            raise ValueError(f"{path}: tile blocks must be powers of two >= 16, got {t}")
    return {"fused": rules, "tiles": tiles}


def rules(device_name: Optional[str] = None) -> List[Dict[str, Any]]:
    path = table_path(device_name)
    return _load(None if path is None else str(path))["fused"]


def measured_tiles(k: int, l: int, device=None) -> Optional[Dict[str, int]]:
    """The tile shape the table of ``device``'s GPU model measured fastest for (k, l), or None
    (then ``kernels.tiles`` uses its static default)."""
    name = None if device is None else _name_of(device)
    path = table_path(name)
    for t in _load(None if path is None else str(path))["tiles"]:
        if t["k"] == k and t["l"] == l:
            return t
    return None


@lru_cache(maxsize=None)
def _device_name(index: int) -> str:
    import torch

    return torch.cuda.get_device_name(index)


def _name_of(device) -> Optional[str]:
    """The GPU model of a CUDA ``torch.device``; None for other devices (no table)."""
    import torch

    device = torch.device(device)
    if device.type != "cuda":
        return None
    return _device_name(device.index if device.index is not None else torch.cuda.current_device())


def prefer_fused(I: int, J: int, nobs: int, k: int, l: int, device=None,
                 op: str = "transfer_entropy") -> bool:
    """True when the fused kernel should run ``op`` for this problem on CUDA ``device`` (a
    ``torch.device``, or None for the environment's table only; see the module docstring)."""
    forced = os.environ.get("TE_EXT_FUSED", "")
    if forced in ("0", "1"):
        return forced == "1"
    name = None if device is None else _name_of(device)
    return any(r.get("op", "transfer_entropy") == op and r["k"] == k and r["l"] == l
               and I * J >= r["min_pairs"] and nobs >= r["min_obs"] for r in rules(name))
