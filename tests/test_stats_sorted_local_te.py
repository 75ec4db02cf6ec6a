"""Sorted local TE (Kajiwara et al. 2021): the sign of a link from the same joint counts as TE.

Checked against an independent per-observation computation (numpy local TE, each observation
signed by whether y[n] equals x[n-delay], then averaged), and on hand-made excitatory and
inhibitory links."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import te_ext
from reference import random_series
from stats_reference import local_te_ref
from te_ext.stats import sorted_local_te


def _slte_ref(x, y, k, l, delay):
    """numpy: the mean over observations of local TE times +1 if y[n] == x[n - delay] else -1."""
    I, J = x.shape[-1], y.shape[-1]
    pairs = np.array([(i, j) for i in range(I) for j in range(J)])
    local = local_te_ref(x, y, pairs, k, l, delay)  # [P, n_obs]
    n0 = max(k, l - 1 + delay)
    xs = x if x.ndim == 3 else x[None]
    ys = y if y.ndim == 3 else y[None]
    agree = np.concatenate([(ys[r, n0:, pairs[:, 1]] == xs[r, n0 - delay:xs.shape[1] - delay, pairs[:, 0]])
                            for r in range(xs.shape[0])], axis=1)
    return (local * np.where(agree, 1.0, -1.0)).mean(axis=1).reshape(I, J)


@pytest.mark.parametrize("k,l,delay,R", [(1, 1, 1, None), (2, 1, 2, None), (1, 2, 1, 2), (2, 2, 3, None)])
def test_equals_the_signed_mean_of_local_te(rng, k, l, delay, R):
    x = random_series(rng, 300, 5, R=R, p=0.3)
    y = random_series(rng, 300, 4, R=R, p=0.4)
    y[..., 0] = np.roll(x[..., 1], delay, axis=-1)  # one excitatory link
    y[..., 1] = ~np.roll(x[..., 2], delay, axis=-1) & y[..., 1]  # one inhibitory link
    got = te_ext.signed_transfer_entropy(torch.from_numpy(x), torch.from_numpy(y), k=k, l=l,
                                         delay=delay)
    np.testing.assert_allclose(got.numpy(), _slte_ref(x, y, k, l, delay), rtol=0, atol=1e-12)
    assert got[1, 0] > 0.05 and got[2, 1] < -0.05  # the planted links, with their signs


def _spikes(rng, T, rate):
    return rng.random(T) < rate


@pytest.mark.parametrize("kind,sign", [("excitatory", 1), ("inhibitory", -1)])
def test_sign_of_hand_made_links(kind, sign):
    rng = np.random.default_rng(3)
    T, d = 20000, 2
    x = _spikes(rng, T, 0.1)
    base = _spikes(rng, T, 0.2)
    prev = np.roll(x, d)
    prev[:d] = False
    y = (base | (prev & (rng.random(T) < 0.6))) if kind == "excitatory" else (base & ~prev)
    s = te_ext.signed_transfer_entropy(torch.from_numpy(x[:, None]), torch.from_numpy(y[:, None]),
                                       delay=d)
    te = te_ext.transfer_entropy(torch.from_numpy(x[:, None]), torch.from_numpy(y[:, None]), delay=d)
    assert np.sign(float(s)) == sign and abs(float(s)) > 0.5 * float(te) > 0


def test_counts_without_observations_and_bad_arguments():
    assert torch.equal(sorted_local_te(torch.zeros(3, 8, dtype=torch.int64)), torch.zeros(3, dtype=torch.float64))
    with pytest.raises(ValueError, match="2\\^\\(k\\+l\\+1\\) = 8"):
        sorted_local_te(torch.zeros(3, 7, dtype=torch.int64))
    with pytest.raises(TypeError, match="integer tensor"):
        sorted_local_te(torch.zeros(3, 8))
    with pytest.raises(ValueError):
        sorted_local_te(torch.zeros(3, 8, dtype=torch.int64), k=2**62)
