"""Agreement with PyInform's transfer_entropy (l = delay = 1), a third implementation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import te_ext
from reference import coupled_series, random_series, transfer_entropy_ref

pyinform = pytest.importorskip("pyinform")

TOL = 1e-12


def _pyinform_matrix(x: np.ndarray, y: np.ndarray, k: int) -> np.ndarray:
    """TE(x[..., i] -> y[..., j]) from PyInform, one call per pair (time on the last axis)."""
    xs = np.moveaxis(x, -2, -1).astype(np.int32)  # [..., I, T]
    ys = np.moveaxis(y, -2, -1).astype(np.int32)
    I, J = xs.shape[-2], ys.shape[-2]
    out = np.empty((I, J))
    for i in range(I):
        for j in range(J):
            out[i, j] = pyinform.transferentropy.transfer_entropy(xs[..., i, :], ys[..., j, :], k)
    return out


@pytest.mark.parametrize("k", [1, 2, 3, 4])
@pytest.mark.parametrize("kind", ["random", "coupled", "biased"])
@pytest.mark.parametrize("T", [None, 40, 517])
def test_matches_pyinform(rng, k, kind, T):
    T = k + 1 if T is None else T  # None: the shortest series both accept
    if kind == "biased":
        x = random_series(rng, T, 3, p=0.2)
        y = random_series(rng, T, 3, p=0.7)
    else:
        x = random_series(rng, T, 3)
        y = random_series(rng, T, 3) if kind == "random" else coupled_series(rng, x, 3, 1, 0.15)
    expected = _pyinform_matrix(x, y, k)
    # The numpy reference the other tests lean on agrees with PyInform too.
    np.testing.assert_allclose(transfer_entropy_ref(x, y, k), expected, rtol=0, atol=TOL)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    np.testing.assert_allclose(te_ext.transfer_entropy(xt, yt, k=k).numpy(), expected,
                               rtol=0, atol=TOL)
    pairs = torch.tensor([[2, 0], [0, 2], [1, 1]])
    np.testing.assert_allclose(te_ext.transfer_entropy_pairs(xt, yt, pairs, k=k).numpy(),
                               expected[pairs[:, 0], pairs[:, 1]], rtol=0, atol=TOL)


@pytest.mark.parametrize("k", [1, 2, 3])
@pytest.mark.parametrize("R", [1, 3])
def test_replicates_match_pyinform_initial_conditions(rng, k, R):
    # PyInform takes [R, T] arrays as R initial conditions pooled into one estimate.
    x = random_series(rng, 60, 2, R=R)
    y = coupled_series(rng, x, 3, 1, 0.2)
    expected = _pyinform_matrix(x, y, k)
    got = te_ext.transfer_entropy(torch.from_numpy(x), torch.from_numpy(y), k=k)
    np.testing.assert_allclose(got.numpy(), expected, rtol=0, atol=TOL)


def test_pyinform_matches_on_thresholded_floats(rng):
    xf = rng.standard_normal((300, 2))
    yf = np.roll(xf, 1, axis=0) + 0.5 * rng.standard_normal((300, 2))
    expected = _pyinform_matrix(xf > 0.25, yf > 0.25, 2)
    got = te_ext.transfer_entropy(torch.from_numpy(xf), torch.from_numpy(yf), k=2,
                                  threshold=0.25)
    np.testing.assert_allclose(got.numpy(), expected, rtol=0, atol=TOL)
