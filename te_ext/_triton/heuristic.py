"""When CUDA ``transfer_entropy`` takes the fused Triton kernel: a measured table, not a guess.

The table is the JSON that ``scripts/gpu_bench_fused.py`` writes to
``bench/results/gpu-heuristic-<date>.json`` after timing the popcount path against the fused
kernel on a GPU. Its ``fused`` list holds rules ``{"k", "l", "min_pairs", "min_obs"}``: the
fused kernel is used for that (k, l) when ``I * J >= min_pairs`` and the number of
observations ``R * (T - n0) >= min_obs``.

Where the table comes from, first found wins:

1. ``TE_EXT_GPU_HEURISTIC=<path to such a JSON>``;
2. the newest ``bench/results/gpu-heuristic-*.json`` of the source checkout the package runs
   from;
3. none: the **documented default is never to take the fused kernel**, since nothing has
   measured it (the existing CUDA path stays what runs).

``TE_EXT_FUSED=1`` takes the fused kernel wherever it applies and ``TE_EXT_FUSED=0`` never
(the CUDA tests use both, to compare the two paths).
"""

from __future__ import annotations

import json
import os
from functools import lru_cache
from pathlib import Path
from typing import Any, Dict, List, Optional

RESULTS = Path(__file__).resolve().parents[2] / "bench" / "results"


def table_path() -> Optional[Path]:
    explicit = os.environ.get("TE_EXT_GPU_HEURISTIC")
    if explicit:
        return Path(explicit)
    found = sorted(RESULTS.glob("gpu-heuristic-*.json")) if RESULTS.is_dir() else []
    return found[-1] if found else None  # names sort by date


@lru_cache(maxsize=None)
def _load(path: Optional[str]) -> List[Dict[str, Any]]:
    if path is None:
        return []
    with open(path) as f:
        table = json.load(f)
    rules = table.get("fused", [])
    for r in rules:
        if not all(isinstance(r.get(key), int) for key in ("k", "l", "min_pairs", "min_obs")):
            raise ValueError(f"{path}: every rule of 'fused' needs integer k, l, min_pairs and "
                             f"min_obs, got {r}")
    return rules


def rules() -> List[Dict[str, Any]]:
    path = table_path()
    return _load(None if path is None else str(path))


def prefer_fused(I: int, J: int, nobs: int, k: int, l: int) -> bool:
    """True when the fused kernel should run this problem (see the module docstring)."""
    forced = os.environ.get("TE_EXT_FUSED", "")
    if forced in ("0", "1"):
        return forced == "1"
    return any(r["k"] == k and r["l"] == l and I * J >= r["min_pairs"] and nobs >= r["min_obs"]
               for r in rules())
