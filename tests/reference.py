"""Independent plain-numpy plug-in estimator of transfer entropy, and test series.

Written from the definitions in docs/ops.md "Definitions", not from the C++ code, so
that the tests compare two separate implementations of the contract:

* series are time-major ``[T, n]`` or ``[R, T, n]``; replicates are pooled and
  the history restarts in each replicate;
* observations ``n = n0 .. T-1`` with ``n0 = max(k, l - 1 + delay)``;
* ``ypast = sum_{m<k} y[n-1-m] 2^m``, ``xpast = sum_{m<l} x[n-delay-m] 2^m``,
  ``bin = (y[n] << (k+l)) | (ypast << l) | xpast``;
* ``TE = sum_bin p(bin) log2(p(ynext | ypast, xpast) / p(ynext | ypast))`` in bits,
  with empty bins contributing 0.

The TE is computed from probabilities as written above, not through the
``c log2 c`` identity the kernels use.
"""

from __future__ import annotations

import numpy as np


def first_observation(k: int, l: int, delay: int) -> int:
    return max(k, l - 1 + delay)


def _replicates(series) -> np.ndarray:
    a = np.asarray(series)
    if a.ndim == 2:
        a = a[None]
    if a.ndim != 3:
        raise ValueError(f"series must be [T, n] or [R, T, n], got shape {a.shape}")
    if not np.isin(a, (0, 1)).all():
        raise ValueError("reference series must hold only 0 and 1")
    return a.astype(np.int64)


def joint_counts_ref(source, target, k: int = 1, l: int = 1, delay: int = 1) -> np.ndarray:
    """int64 ``[I, J, 2^(k+l+1)]``: the joint histogram of (ynext, ypast, xpast) per pair."""
    x, y = _replicates(source), _replicates(target)
    R, T, I = x.shape
    J = y.shape[2]
    assert y.shape[:2] == (R, T)
    n0 = first_observation(k, l, delay)
    assert T > n0
    n = np.arange(n0, T)
    ypast = sum(y[:, n - 1 - m, :] << m for m in range(k))  # [R, N, J]
    xpast = sum(x[:, n - delay - m, :] << m for m in range(l))  # [R, N, I]
    ycode = (y[:, n, :] << (k + l)) | (ypast << l)
    nbins = 2 ** (k + l + 1)
    out = np.empty((I, J, nbins), dtype=np.int64)
    # Offsetting each target's bins by j * nbins histograms all J pairs of one
    # source in a single bincount.
    offset = np.arange(J, dtype=np.int64) * nbins
    for i in range(I):
        b = (ycode | xpast[:, :, i : i + 1]) + offset
        out[i] = np.bincount(b.ravel(), minlength=J * nbins).reshape(J, nbins)
    return out


def te_from_counts_ref(counts, k: int = 1, l: int = 1) -> np.ndarray:
    """TE in bits from counts ``[..., 2^(k+l+1)]``; a pair with no observations gives 0."""
    c = np.asarray(counts, dtype=np.float64)
    lead = c.shape[:-1]
    assert c.shape[-1] == 2 ** (k + l + 1)
    # Axes of one pair: (ynext, ypast, xpast), matching the bin's bit fields.
    c = c.reshape(lead + (2, 2**k, 2**l))
    total = c.sum(axis=(-3, -2, -1), keepdims=True)
    n_yp_xp = c.sum(axis=-3, keepdims=True)
    n_yn_yp = c.sum(axis=-1, keepdims=True)
    n_yp = c.sum(axis=(-3, -1), keepdims=True)
    occupied = c > 0
    with np.errstate(divide="ignore", invalid="ignore"):
        p_bin = c / total
        p_full = c / n_yp_xp  # p(ynext | ypast, xpast)
        p_self = n_yn_yp / n_yp  # p(ynext | ypast)
        terms = np.where(occupied, p_bin * np.log2(p_full / p_self), 0.0)
    return terms.sum(axis=(-3, -2, -1))


def transfer_entropy_ref(source, target, k: int = 1, l: int = 1, delay: int = 1) -> np.ndarray:
    """float64 ``[I, J]``: TE(source i -> target j) in bits."""
    return te_from_counts_ref(joint_counts_ref(source, target, k, l, delay), k, l)


# ---------------------------------------------------------------------------
# Test series (numpy, so that the reference and the ops read the same data).


def random_series(rng: np.random.Generator, T: int, n: int, R: int | None = None,
                  p: float = 0.5) -> np.ndarray:
    """iid Bernoulli(p) bool series, ``[T, n]`` or ``[R, T, n]``."""
    shape = (T, n) if R is None else (R, T, n)
    return rng.random(shape) < p


def coupled_series(rng: np.random.Generator, source: np.ndarray, n: int, lag: int = 1,
                   noise: float = 0.1) -> np.ndarray:
    """Targets that copy source neurons ``j % I`` with a lag, each bit flipped w.p. ``noise``.

    The first ``lag`` steps of each replicate are random, so the copy does not
    leak across replicates.
    """
    I = source.shape[-1]
    copied = source[..., np.arange(n) % I]
    out = np.empty_like(copied)
    out[..., lag:, :] = copied[..., :-lag, :]
    out[..., :lag, :] = rng.random(out[..., :lag, :].shape) < 0.5
    flips = rng.random(out.shape) < noise
    return out ^ flips
