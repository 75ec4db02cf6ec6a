"""When CUDA ``transfer_entropy`` takes the fused Triton kernel: a measured table, not a guess.

The table is the JSON that ``scripts/gpu_bench_fused.py`` writes to
``bench/results/gpu-heuristic-<date>.json`` after timing the popcount path against the fused
kernel on a GPU. Its ``fused`` list holds rules ``{"k", "l", "min_pairs", "min_obs"[, "op"]}``:
the fused kernel is used for that (k, l) when ``I * J >= min_pairs`` and the number of
observations ``R * (T - n0) >= min_obs``; ``op`` is ``"transfer_entropy"`` (the default) or
``"joint_counts"``, timed separately (the counts epilogue writes 2^(k+l+1) int64 per pair).

A table holds for the GPU model that measured it (its ``device``, as
``torch.cuda.get_device_name`` spells it). Where it comes from, first found wins:

1. ``TE_EXT_GPU_HEURISTIC=<path to such a JSON>``, whatever its device;
2. the table shipped in the package for this GPU model,
   ``te_ext/_triton/tables/gpu-heuristic-<model>.json`` (``<model>``: ``table_slug`` of the
   device name), so a wheel install finds it;
3. the newest ``bench/results/gpu-heuristic-*.json`` of the source checkout the package runs
   from whose ``device`` is this GPU model (a run of the benchmark not yet copied into the
   package);
4. none: the **documented default is never to take the fused kernel**, since nothing has
   measured it on this GPU model (the existing CUDA path stays what runs).

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

RESULTS = Path(__file__).resolve().parents[2] / "bench" / "results"
PACKAGED = Path(__file__).resolve().parent / "tables"


def table_slug(device_name: str) -> str:
    """File-name form of a GPU model: "NVIDIA H200" -> "nvidia-h200"."""
    return re.sub(r"[^a-z0-9]+", "-", device_name.lower()).strip("-")


@lru_cache(maxsize=None)
def _device_of(path: str) -> Optional[str]:
    try:
        with open(path) as f:
            return json.load(f).get("device")
    except (OSError, ValueError):
        return None


def table_path(device_name: Optional[str] = None) -> Optional[Path]:
    """The table for GPU model ``device_name`` (see the module docstring), or None."""
    explicit = os.environ.get("TE_EXT_GPU_HEURISTIC")
    if explicit:
        return Path(explicit)
    if device_name is None:
        return None
    # Looked up on every CUDA call: the search is cached, and a directory's mtime in the key
    # (it changes when a file is added, removed or renamed there) keeps the cache honest for
    # a benchmark run or an install that writes a new table while the process lives.
    return _find(device_name, str(PACKAGED), str(RESULTS), _mtime(PACKAGED), _mtime(RESULTS))


def _mtime(path: Path) -> Optional[int]:
    try:
        return path.stat().st_mtime_ns
    except OSError:
        return None


@lru_cache(maxsize=64)
def _find(device_name: str, packaged: str, results: str, packaged_mtime, results_mtime):
    shipped = Path(packaged) / f"gpu-heuristic-{table_slug(device_name)}.json"
    if shipped.is_file():
        return shipped
    found = sorted(Path(results).glob("gpu-heuristic-*.json")) if results_mtime is not None else []
    for path in reversed(found):  # names sort by date: newest first
        if _device_of(str(path)) == device_name:
            return path
    return None


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
