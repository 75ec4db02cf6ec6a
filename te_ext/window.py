"""A sliding window of binary series whose joint counts are kept up to date incrementally.

The window holds the last ``window`` samples (rows) of a source and a target series,
bit-packed along the neuron axis on the series' device. Its joint counts (as
:func:`te_ext.joint_counts` would return them over the window) are maintained by adding
the counts of the observations that enter and subtracting those that leave, so the cost
of a step is O(batch), not O(window). Counts are integers, so the result equals a
from-scratch ``joint_counts`` over the window exactly.
"""

from __future__ import annotations

from typing import Any, Dict, Optional, Tuple

import torch
from torch import Tensor

from ._checks import check_window


__all__ = ["StreamingJointCounts"]


def _unpack_rows(packed: Tensor, cols: int, shifts: Tensor) -> Tensor:
    """uint8 [n, ceil(C / 8)] (bit c % 8 of byte c // 8 = column c) -> uint8 0/1 [n, C]."""
    # An explicit width: view(n, -1) is ambiguous for an empty window (n = 0).
    return ((packed.unsqueeze(-1) >> shifts) & 1).view(packed.shape[0], packed.shape[1] * 8)[:, :cols]


class StreamingJointCounts:
    """Joint counts of (source, target) over a sliding window, updated in O(batch) a step.

    Args:
        num_source: I, source neurons (columns of ``source``).
        num_target: J, target neurons.
        window: samples kept; the counts cover the observations ``n0 .. window-1`` of the
            window (``n0 = max(k, l - 1 + delay)``), exactly as ``joint_counts`` over it.
        k, l, delay: history lengths and source lag, as in :func:`te_ext.joint_counts`.
        device: where the packed window and the counts live.

    ``append(source, target)`` adds a batch of rows (time-major ``[B, I]`` and ``[B, J]``)
    in order. ``counts`` is int64 ``[I, J, 2**(k+l+1)]``; it covers the whole window once
    ``full`` is true, and the samples seen so far before that.
    """

    def __init__(self, num_source: int, num_target: int, window: int, *, k: int = 1, l: int = 1,
                 delay: int = 1, device: Optional[torch.device | str] = None,
                 track_counts: bool = True) -> None:
        device = torch.device(device) if device is not None else torch.device("cpu")
        # Bounds first (k + l as the ops allow), then the memory the state needs.
        self.n0 = check_window("StreamingJointCounts", num_source, num_target, window, k, l, delay,
                               device, track_counts)
        self.num_source, self.num_target, self.window = num_source, num_target, window
        self.k, self.l, self.delay = k, l, delay
        self.track_counts = track_counts
        self._shifts = torch.arange(8, dtype=torch.uint8, device=device)
        self.source_ring = torch.zeros(window, (num_source + 7) // 8, dtype=torch.uint8, device=device)
        self.target_ring = torch.zeros(window, (num_target + 7) // 8, dtype=torch.uint8, device=device)
        bins = 2 ** (k + l + 1)
        self.counts = torch.zeros((num_source, num_target, bins) if track_counts else (0,),
                                  dtype=torch.int64, device=device)
        self.seen = 0  # samples appended since the start (a Python int: no device sync)
        # Bad input values (NaN under a threshold, a non-0/1 value without one): on the CPU the
        # op raises at once. On a GPU raising would take a device->host sync every step, so the
        # window is "deferred": its kernel records them in this int64 status tensor (which also
        # holds the device's sample counter, so a captured CUDA graph replays correct steps),
        # and check() (blocking) or poll() (not blocking) raise the same ValueError. The TE of
        # a window that recorded one is NaN. See docs/gpu.md, "Training on a GPU without syncs".
        self._status = torch.zeros(8, dtype=torch.int64, device=device)
        self._deferred = device.type == "cuda"
        self._thresholds: Tuple[Optional[float], Optional[float]] = (None, None)
        self._host_status: Optional[Tensor] = None
        self._event: Any = None
        self._pending = False  # a copy of the status to the host is in flight

    @property
    def device(self) -> torch.device:
        return self.source_ring.device

    @property
    def full(self) -> bool:
        return self.seen >= self.window

    @property
    def nbytes(self) -> int:
        """Bytes of state: the packed window (bits) plus the int64 counts."""
        return sum(t.numel() * t.element_size() for t in (self.source_ring, self.target_ring, self.counts))

    def window_series(self) -> Tuple[Tensor, Tensor]:
        """The window's series as uint8 0/1 ``[n, I]`` and ``[n, J]``, oldest first."""
        order = torch.arange(max(0, self.seen - self.window), self.seen, device=self.device) % self.window
        return (_unpack_rows(self.source_ring[order], self.num_source, self._shifts),
                _unpack_rows(self.target_ring[order], self.num_target, self._shifts))

    def append(self, source: Tensor, target: Tensor, source_threshold: Optional[float] = None,
               target_threshold: Optional[float] = None) -> None:
        """Appends rows ``source [B, I]`` and ``target [B, J]``, oldest first.

        Each side is binarised inside the op as ``value > threshold`` (NaN raises), or
        must hold only 0/1 when its threshold is None. One call of ``te.window_append_``.
        """
        for name, x, n in (("source", source, self.num_source), ("target", target, self.num_target)):
            if not isinstance(x, Tensor):
                raise TypeError(f"{name} must be a Tensor, got {type(x).__name__}")
            if x.dim() != 2 or x.shape[1] != n:
                raise ValueError(f"{name} must be [B, {n}], got {tuple(x.shape)}")
            if x.device != self.device:
                raise ValueError(f"{name} must be on {self.device} like the window, got {x.device}")
        if self._deferred:
            torch.ops.te._window_append_async_(self.counts, self.source_ring, self.target_ring,
                                               self._status, source, target, self.k, self.l,
                                               self.delay, source_threshold, target_threshold)
            self._thresholds = (source_threshold, target_threshold)
        else:
            torch.ops.te.window_append_(self.counts, self.source_ring, self.target_ring, source,
                                        target, self.seen, self.k, self.l, self.delay,
                                        source_threshold, target_threshold)
        self.seen += source.shape[0]

    @property
    def status(self) -> Tensor:
        """int64 [8] on the window's device: the deferred error record and sample counter."""
        return self._status

    def check(self) -> None:
        """Raises the ValueError of a bad input value that a deferred (GPU) window recorded.

        One device->host copy: call it outside the training step (``TEFeedback.check()`` and
        ``state_dict()`` do). A window that raises at once (the CPU) has nothing to check.
        """
        if self._deferred:
            torch.ops.te._window_check(self._status, *self._thresholds)

    def poll(self) -> None:
        """``check()`` without blocking: raises an error recorded by an earlier step once a
        copy of the status has reached the host, then starts the next copy. Never syncs; a
        no-op while a CUDA graph is being captured."""
        if not self._deferred:
            return
        if self.device.type != "cuda":
            self.check()
            return
        if torch.cuda.is_current_stream_capturing():
            return
        if self._host_status is None:
            self._host_status = torch.zeros(8, dtype=torch.int64, pin_memory=True)
            self._event = torch.cuda.Event()
        elif self._pending:
            if not self._event.query():
                return
            self._pending = False
            torch.ops.te._window_check(self._host_status, *self._thresholds)
        self._host_status.copy_(self._status, non_blocking=True)
        self._event.record()
        self._pending = True

    def state_dict(self) -> Dict[str, Any]:
        """The window's state; a deferred window is checked first (a window holding bad data is
        not saved) and its device counter, which CUDA graph replays advance, is read back."""
        if self._deferred:
            self.check()
            self.seen = int(self._status[0])
        return {"seen": self.seen, "source_ring": self.source_ring.clone(),
                "target_ring": self.target_ring.clone(), "counts": self.counts.clone(),
                "config": self._config()}

    def _config(self) -> Dict[str, Any]:
        return {"num_source": self.num_source, "num_target": self.num_target, "window": self.window,
                "k": self.k, "l": self.l, "delay": self.delay, "track_counts": self.track_counts}

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        if state["config"] != self._config():
            raise ValueError(f"state was saved with {state['config']}, this window is {self._config()}")
        self.source_ring.copy_(state["source_ring"])
        self.target_ring.copy_(state["target_ring"])
        self.counts.copy_(state["counts"])
        self.seen = int(state["seen"])
        self._status.zero_()
        self._status[0] = self.seen
