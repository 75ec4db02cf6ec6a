"""Baselines that te_ext is timed against: a vectorised numpy estimator and PyInform.

The numpy estimator is written to be as fast as numpy allows, so that the ratio against it
means something: the joint counts are one float32 GEMM of one-hot state streams (exact, since
every count is below 2**24), the states that are never stored follow from per-neuron marginals
(so k = l = 1 is the GEMM ``[I x T] @ [T x 3J]``, the same product as the fp32 floor), and the
plug-in TE reads ``c * log2(c)`` from a table instead of taking logarithms. It implements the
README's definitions independently of te_ext; ``bench/`` checks it against te_ext before timing.
"""

from __future__ import annotations

from typing import Optional, Sequence, Tuple

import numpy as np

# Keeps one block of float64 [rows, J, bins] intermediates around 32 MB.
_BLOCK_BYTES = 32 << 20


def _first_observation(k: int, l: int, delay: int) -> int:
    return max(k, l - 1 + delay)


def _history(series: np.ndarray, length: int, lag: int, n0: int) -> np.ndarray:
    """State ``sum_{m<length} z[n-lag-m] << m`` for n = n0..T-1, as int64 ``[T-n0, N]``."""
    steps = series.shape[0] - n0
    state = np.zeros((steps, series.shape[1]), dtype=np.int64)
    for m in range(length):
        start = n0 - lag - m
        state |= series[start:start + steps].astype(np.int64) << m
    return state


def states(source: np.ndarray, target: np.ndarray, k: int = 1, l: int = 1,
           delay: int = 1) -> Tuple[np.ndarray, np.ndarray]:
    """Per-step states of time-major 0/1 series ``[T, I]`` and ``[T, J]``.

    Returns ``xpast [N, I]`` in ``0 .. 2**l - 1`` and ``ystate = (ynext << k) | ypast``
    ``[N, J]`` in ``0 .. 2**(k+1) - 1``, so that ``bin = (ystate << l) | xpast``.
    """
    n0 = _first_observation(k, l, delay)
    if source.shape[0] != target.shape[0] or source.shape[0] <= n0:
        raise ValueError(f"states: need equal T > {n0}, got {source.shape[0]} and {target.shape[0]}")
    xpast = _history(source, l, delay, n0)
    ypast = _history(target, k, 1, n0)
    ystate = (target[n0:].astype(np.int64) << k) | ypast
    return xpast, ystate


def _one_hot_nonzero(state: np.ndarray, num_states: int) -> np.ndarray:
    """float32 ``[N, cols * (num_states - 1)]``; column ``c * (S-1) + s - 1`` is ``state[:, c] == s``."""
    codes = np.arange(1, num_states, dtype=state.dtype)
    hot = state[:, :, None] == codes
    return hot.reshape(state.shape[0], -1).astype(np.float32)


def _marginals(state: np.ndarray, num_states: int) -> np.ndarray:
    """int64 ``[cols, num_states]``: how often each column takes each state."""
    cols = state.shape[1]
    flat = state + num_states * np.arange(cols, dtype=state.dtype)
    return np.bincount(flat.ravel(), minlength=cols * num_states).reshape(cols, num_states)


class _Streams:
    """One-hot streams and marginals of one problem, built once and reused by every block."""

    def __init__(self, source: np.ndarray, target: np.ndarray, k: int, l: int, delay: int):
        xpast, ystate = states(source, target, k, l, delay)
        self.k, self.l = k, l
        self.num_x, self.num_y = 1 << l, 1 << (k + 1)
        self.steps = xpast.shape[0]
        self.x_hot = _one_hot_nonzero(xpast, self.num_x)      # [N, I*(A-1)]
        self.y_hot = _one_hot_nonzero(ystate, self.num_y)     # [N, J*(B-1)]
        self.x_marg = _marginals(xpast, self.num_x)           # [I, A]
        self.y_marg = _marginals(ystate, self.num_y)          # [J, B]
        self.num_source, self.num_target = xpast.shape[1], ystate.shape[1]

    def counts(self, rows: slice) -> np.ndarray:
        """int64 ``[rows, J, B * A]`` joint counts of the sources in ``rows``."""
        A, B = self.num_x, self.num_y
        x_cols = slice(rows.start * (A - 1), rows.stop * (A - 1))
        cross = self.x_hot[:, x_cols].T @ self.y_hot          # the binary GEMM, exact in fp32
        n_rows = rows.stop - rows.start
        cross = np.rint(cross).astype(np.int64).reshape(n_rows, A - 1, self.num_target, B - 1)
        c = np.empty((n_rows, self.num_target, B, A), dtype=np.int64)
        c[:, :, 1:, 1:] = cross.transpose(0, 2, 3, 1)
        # States never stored as streams come from the marginals, as in te_ext.
        c[:, :, 0, 1:] = self.x_marg[rows, None, 1:] - c[:, :, 1:, 1:].sum(axis=2)
        c[:, :, 1:, 0] = self.y_marg[None, :, 1:] - c[:, :, 1:, 1:].sum(axis=3)
        c[:, :, 0, 0] = 0
        c[:, :, 0, 0] = self.steps - c.sum(axis=(2, 3))
        return c.reshape(n_rows, self.num_target, B * A)

    def block_rows(self) -> int:
        per_row = self.num_target * self.num_x * self.num_y * 8 * 4
        return max(1, min(self.num_source, _BLOCK_BYTES // max(per_row, 1)))


def _flogf_table(total: int) -> np.ndarray:
    c = np.arange(total + 1, dtype=np.float64)
    return c * np.log2(np.maximum(c, 1.0))


def te_from_counts(counts: np.ndarray, k: int = 1, l: int = 1,
                   table: Optional[np.ndarray] = None) -> np.ndarray:
    """Plug-in TE in bits from int counts ``[..., 2**(k+l+1)]`` laid out as te_ext's bins."""
    counts = np.asarray(counts)
    lead = counts.shape[:-1]
    if counts.shape[-1] != 1 << (k + l + 1):
        raise ValueError(f"te_from_counts: counts has {counts.shape[-1]} bins, k={k}, l={l} need {1 << (k + l + 1)}")
    c = counts.reshape(lead + (2, 1 << k, 1 << l))               # [..., ynext, ypast, xpast]
    c_ypast_xpast = c.sum(axis=-3)
    c_ynext_ypast = c.sum(axis=-1)
    c_ypast = c_ynext_ypast.sum(axis=-2)
    total = c_ypast.sum(axis=-1)
    if table is None:
        table = _flogf_table(int(total.max()) if total.size else 0)
    n_te = (table[c].sum(axis=(-3, -2, -1)) + table[c_ypast].sum(axis=-1)
            - table[c_ypast_xpast].sum(axis=(-2, -1)) - table[c_ynext_ypast].sum(axis=(-2, -1)))
    with np.errstate(invalid="ignore", divide="ignore"):
        te = np.where(total > 0, n_te / np.maximum(total, 1), 0.0)
    return np.maximum(te, 0.0)


def joint_counts(source: np.ndarray, target: np.ndarray, k: int = 1, l: int = 1,
                 delay: int = 1) -> np.ndarray:
    """int64 ``[I, J, 2**(k+l+1)]`` joint counts, as te_ext.joint_counts (no replicates)."""
    streams = _Streams(source, target, k, l, delay)
    return streams.counts(slice(0, streams.num_source))


def transfer_entropy(source: np.ndarray, target: np.ndarray, k: int = 1, l: int = 1,
                     delay: int = 1) -> np.ndarray:
    """float64 ``[I, J]`` TE, counting and reducing a block of sources at a time."""
    streams = _Streams(source, target, k, l, delay)
    table = _flogf_table(streams.steps)
    out = np.empty((streams.num_source, streams.num_target), dtype=np.float64)
    step = streams.block_rows()
    for start in range(0, streams.num_source, step):
        rows = slice(start, min(start + step, streams.num_source))
        out[rows] = te_from_counts(streams.counts(rows), k, l, table)
    return out


def transfer_entropy_pairs(source: np.ndarray, target: np.ndarray, pairs: np.ndarray,
                           k: int = 1, l: int = 1, delay: int = 1,
                           chunk: int = 8192) -> np.ndarray:
    """float64 ``[P]`` TE of the pairs ``[P, 2]`` only: one bincount per chunk of pairs."""
    xpast, ystate = states(source, target, k, l, delay)
    bins = 1 << (k + l + 1)
    table = _flogf_table(xpast.shape[0])
    out = np.empty(pairs.shape[0], dtype=np.float64)
    for start in range(0, pairs.shape[0], chunk):
        sel = pairs[start:start + chunk]
        code = (ystate[:, sel[:, 1]] << l) | xpast[:, sel[:, 0]]
        code += bins * np.arange(sel.shape[0], dtype=np.int64)
        counts = np.bincount(code.ravel(), minlength=sel.shape[0] * bins).reshape(-1, bins)
        out[start:start + sel.shape[0]] = te_from_counts(counts, k, l, table)
    return out


def pyinform_rows(series: np.ndarray) -> np.ndarray:
    """PyInform wants one int32 row per neuron; converting up front keeps it out of the timing."""
    return np.ascontiguousarray(series.T, dtype=np.int32)


def pyinform_pairs(source_rows: np.ndarray, target_rows: np.ndarray,
                   pairs: Sequence[Tuple[int, int]], k: int = 1) -> np.ndarray:
    """PyInform's ``transfer_entropy(x, y, k)`` called once a pair (its l and delay are 1)."""
    from pyinform.transferentropy import transfer_entropy as pyinform_te

    return np.array([pyinform_te(source_rows[i], target_rows[j], k=k) for i, j in pairs])
