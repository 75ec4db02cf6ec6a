"""Independent numpy reference for the statistics ops, from the definitions in docs/ops.md and docs/statistics.md.

Pooled observations q = 0 .. R*(T-n0)-1 run replicate by replicate, in time order.
"""

from __future__ import annotations

import numpy as np

from reference import _replicates, first_observation, te_from_counts_ref


def observations_ref(source, target, k: int, l: int, delay: int):
    """Pooled per-observation codes: xpast [N, I], ynext [N, J], ypast [N, J]."""
    x, y = _replicates(source), _replicates(target)
    n = np.arange(first_observation(k, l, delay), x.shape[1])
    xpast = sum(x[:, n - delay - m, :] << m for m in range(l))
    ypast = sum(y[:, n - 1 - m, :] << m for m in range(k))
    ynext = y[:, n, :]
    flat = lambda a: a.reshape(-1, a.shape[-1])  # noqa: E731
    return flat(xpast), flat(ynext), flat(ypast)


def surrogate_te_ref(source, target, perm, k: int, l: int, delay: int) -> np.ndarray:
    """TE [I, J] of the surrogate that moves observation perm[q]'s xpast to observation q."""
    xpast, ynext, ypast = observations_ref(source, target, k, l, delay)
    xs = xpast[np.asarray(perm)]
    nb = 2 ** (k + l + 1)
    I, J = xs.shape[1], ynext.shape[1]
    counts = np.empty((I, J, nb), dtype=np.int64)
    for i in range(I):
        for j in range(J):
            b = (ynext[:, j] << (k + l)) | (ypast[:, j] << l) | xs[:, i]
            counts[i, j] = np.bincount(b, minlength=nb)
    return te_from_counts_ref(counts, k, l)


def local_te_ref(source, target, pairs, k: int, l: int, delay: int) -> np.ndarray:
    """[P, N] local TE, log2 p(yn | yp, xp) / p(yn | yp), plug-in over the whole series."""
    xpast, ynext, ypast = observations_ref(source, target, k, l, delay)
    out = []
    for i, j in np.asarray(pairs):
        xp, yn, yp = xpast[:, i], ynext[:, j], ypast[:, j]
        full = np.array([np.mean((yn == a) & (yp == b) & (xp == c)) /
                         np.mean((yp == b) & (xp == c)) for a, b, c in zip(yn, yp, xp)])
        own = np.array([np.mean((yn == a) & (yp == b)) / np.mean(yp == b)
                        for a, b in zip(yn, yp)])
        out.append(np.log2(full / own))
    return np.array(out)


def sorted_local_te_ref(counts, k: int, l: int) -> np.ndarray:
    """numpy, bin by bin: sum of c * log2(c * c_yp / (c_past * c_target)) * (+1 if ynext equals
    bit 0 of xpast else -1), over the total."""
    c = np.asarray(counts, dtype=np.int64).reshape(-1, 2 ** (k + l + 1))
    out = np.zeros(len(c))
    for p, row in enumerate(c):
        n = row.sum()
        total = 0.0
        for b, cb in enumerate(row):
            if cb == 0:
                continue
            yn, yp, xp = b >> (k + l), (b >> l) & (2 ** k - 1), b & (2 ** l - 1)
            past = sum(row[(v << (k + l)) | (yp << l) | xp] for v in (0, 1))
            target = sum(row[(yn << (k + l)) | (yp << l) | u] for u in range(2 ** l))
            ypast = sum(row[(v << (k + l)) | (yp << l) | u] for v in (0, 1) for u in range(2 ** l))
            total += (1 if yn == (xp & 1) else -1) * cb * np.log2(cb * ypast / (past * target))
        out[p] = total / n if n else 0.0
    return out.reshape(np.shape(counts)[:-1])
