"""Atomic files and RNG snapshots for ``te-train``'s exact resume."""

from __future__ import annotations

import json
import os
import random
import tempfile
from typing import Any, Callable

import numpy as np
import torch

__all__ = ["atomic_write", "save_checkpoint", "load_checkpoint", "write_json",
           "rng_state", "set_rng_state"]


def atomic_write(path: str, write: Callable[[Any], None], mode: str = "wb") -> None:
    """Write ``path`` through ``write(fileobj)`` into a temp file in the same directory,
    then ``os.replace`` it: a reader (or a Ctrl-C) sees the old file or the new, never half."""
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=".tmp",
                               dir=directory)
    try:
        with os.fdopen(fd, mode) as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def write_json(path: str, obj: Any) -> None:
    atomic_write(path, lambda f: json.dump(obj, f, indent=2, allow_nan=True), mode="w")


def save_checkpoint(path: str, state: dict) -> None:
    atomic_write(path, lambda f: torch.save(state, f))


def load_checkpoint(path: str) -> dict:
    # Our own file with numpy/python RNG states in it, which weights_only refuses.
    return torch.load(path, map_location="cpu", weights_only=False)


def rng_state() -> dict:
    """Every global RNG a training step might draw from (dropout, user hooks...)."""
    state = {"torch": torch.get_rng_state(), "numpy": np.random.get_state(),
             "python": random.getstate()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
