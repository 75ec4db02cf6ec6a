"""Atomic files, checksummed checkpoints and RNG snapshots for ``te-train``'s exact resume.

A checkpoint file is a two-line header followed by the ``torch.save`` payload::

    TE-TRAIN-CHECKPOINT 1
    sha256 <64 hex digits of the payload>
    <payload>

:func:`load_checkpoint` refuses a file whose header is missing (a file of the older,
unchecksummed format included: it cannot be verified), whose payload is shorter or differs
from its hash, or whose content is not a te-train checkpoint, with a :class:`CheckpointError`
that names the file. The hash guards against corruption (a torn copy, a bit flip, an edit), not
against a forged file: the payload is unpickled with ``weights_only=False`` (it holds numpy's and
Python's RNG states), so load checkpoints only from directories you trust.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import random
import re
import tempfile
from typing import Any, Callable, List

import numpy as np
import torch

__all__ = ["atomic_write", "save_checkpoint", "load_checkpoint", "write_json",
           "rng_state", "set_rng_state", "remove_stale_temps", "CheckpointError"]

MAGIC = b"TE-TRAIN-CHECKPOINT 1\n"
_HASH_LINE = re.compile(rb"sha256 ([0-9a-f]{64})\n")
_HEADER_LEN = len(MAGIC) + len(b"sha256 ") + 64 + 1
# The keys every checkpoint holds (train.py checks their values against the run's config).
CHECKPOINT_KEYS = frozenset({"signature", "arm", "seed", "epoch", "epochs", "model", "optimizer",
                             "te_feedback", "rng"})
# atomic_write's temp names: "." + basename + "." + mkstemp's 8 random characters + ".tmp".
_TEMP_NAME = re.compile(r"^\..+\.(pt|json|csv|png)\.[a-z0-9_]{8}\.tmp$")


class CheckpointError(ValueError):
    """A checkpoint that cannot be trusted or does not belong to this run; names the file."""

    def __init__(self, path: str, reason: str):
        super().__init__(f"checkpoint {path}: {reason}")
        self.path = path


def atomic_write(path: str, write: Callable[[Any], None], mode: str = "wb") -> None:
    """Write ``path`` through ``write(fileobj)`` into a temp file in the same directory,
    then ``os.replace`` it: a reader (or a Ctrl-C) sees the old file or the new, never half.
    A kill -9 mid-write can leave the temp file behind; :func:`remove_stale_temps` clears it."""
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


def remove_stale_temps(directory: str) -> List[str]:
    """Delete the temp files that an interrupted :func:`atomic_write` left in ``directory``
    (only names of its own pattern); returns their paths. Two te-train runs must not share
    an output directory, so no live writer owns them."""
    removed = []
    try:
        names = os.listdir(directory)
    except FileNotFoundError:
        return removed
    for name in names:
        if _TEMP_NAME.match(name):
            path = os.path.join(directory, name)
            try:
                os.unlink(path)
                removed.append(path)
            except FileNotFoundError:
                pass
    return removed


def write_json(path: str, obj: Any) -> None:
    atomic_write(path, lambda f: json.dump(obj, f, indent=2, allow_nan=True), mode="w")


def save_checkpoint(path: str, state: dict) -> None:
    """Atomically write ``state`` with its SHA-256 (see the module docstring)."""
    buf = io.BytesIO()
    torch.save(state, buf)
    payload = buf.getvalue()
    data = MAGIC + b"sha256 " + hashlib.sha256(payload).hexdigest().encode() + b"\n" + payload
    atomic_write(path, lambda f: f.write(data))


def load_checkpoint(path: str) -> dict:
    """The state saved by :func:`save_checkpoint`, after checking its header, its length and
    its SHA-256, and that it is a dict with every checkpoint key; :class:`CheckpointError`
    (naming ``path``) otherwise. The file is only read."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as exc:
        raise CheckpointError(path, f"cannot be read ({exc.strerror or exc})") from exc
    if not data.startswith(MAGIC):
        if MAGIC.startswith(data):
            raise CheckpointError(path, f"truncated ({len(data)} bytes, header incomplete)")
        if data[:4] == b"PK\x03\x04" or data[:1] == b"\x80":
            raise CheckpointError(path, "has no te-train checksum header: written by an older "
                                  "te-train (or by something else), so it cannot be verified; "
                                  "delete it to restart that run, or use another --out")
        raise CheckpointError(path, "is not a te-train checkpoint (no TE-TRAIN-CHECKPOINT header)")
    match = _HASH_LINE.match(data, len(MAGIC))
    if match is None:
        what = "truncated" if len(data) < _HEADER_LEN else "corrupted"
        raise CheckpointError(path, f"{what}: its sha256 header line is unreadable")
    payload = data[_HEADER_LEN:]
    digest = hashlib.sha256(payload).hexdigest()
    if digest != match.group(1).decode():
        raise CheckpointError(path, f"content hash mismatch (stored sha256 "
                              f"{match.group(1).decode()[:12]}..., computed {digest[:12]}...): "
                              f"the file was truncated, corrupted or modified")
    try:
        # Our own file with numpy/python RNG states in it, which weights_only refuses.
        state = torch.load(io.BytesIO(payload), map_location="cpu", weights_only=False)
    except Exception as exc:  # a payload that hashes right but does not unpickle
        raise CheckpointError(path, f"unreadable payload ({type(exc).__name__}: "
                              f"{_one_line(exc)})") from exc
    if not isinstance(state, dict):
        raise CheckpointError(path, f"holds a {type(state).__name__}, not a checkpoint dict")
    missing = sorted(CHECKPOINT_KEYS - set(state))
    if missing:
        raise CheckpointError(path, f"is missing {missing}")
    return state


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())


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
