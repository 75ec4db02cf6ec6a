"""Cases whose transfer entropy is known in closed form.

The bounds come from the sampling distribution of the plug-in estimator. For N
observations and a conditional mutual information whose true value is 0,
``2 N ln2 * TE_hat`` is asymptotically chi-squared with
``d = (|ynext| - 1)(|xpast| - 1)|ypast| = (2^l - 1) 2^k`` degrees of freedom (the
G-test of conditional independence), so ``E[TE_hat] = d / (2 N ln2)``. Likewise a
plug-in binary entropy of a fair coin falls short of 1 bit by
``chi2_1 / (2 n ln2)`` for n samples.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import te_ext
from reference import random_series

N_LN2 = 2 * math.log(2)


def _chi2_upper(d: int) -> float:
    """A value a chi2_d variable exceeds with probability < 1e-9 (Chernoff bound).

    P(X > x) <= (x/d * exp(1 - x/d))^(d/2); x = d + 12 sqrt(d) + 42 keeps it
    below 1e-9 for every d used here (d <= 64).
    """
    x = d + 12 * math.sqrt(d) + 42
    assert (x / d * math.exp(1 - x / d)) ** (d / 2) < 1e-9
    return x


def _all_ops(x: torch.Tensor, y: torch.Tensor, k: int = 1, l: int = 1, delay: int = 1,
             threshold=None) -> list[torch.Tensor]:
    """TE [I, J] computed three ways: fused, from counts, and pair by pair."""
    I, J = x.shape[-1], y.shape[-1]
    pairs = torch.cartesian_prod(torch.arange(I), torch.arange(J))
    kw = dict(k=k, l=l, delay=delay, threshold=threshold)
    return [
        te_ext.transfer_entropy(x, y, **kw),
        te_ext.te_from_counts(te_ext.joint_counts(x, y, **kw), k, l),
        te_ext.transfer_entropy_pairs(x, y, pairs, **kw).reshape(I, J),
    ]


@pytest.mark.parametrize("k", [1, 2, 3])
@pytest.mark.parametrize("R", [None, 4])
def test_delayed_copy_carries_one_bit(rng, k, R):
    """y[n] = x[n-1], x an iid fair coin: TE(x -> y) = H(y[n] | y past) = 1 bit.

    Given x[n-1], y[n] is determined, so the estimate equals the plug-in
    H(ynext | ypast) exactly, which is <= 1 and falls short of 1 by
    chi2_{2^k} / (2 N ln2) (one chi2_1 per ypast context, weighted by its
    frequency). With N ~ 2^15 that is below ~1.2e-3 with probability 1 - 1e-9.
    """
    T = 2**15 if R is None else 2**13
    x = random_series(rng, T, 3, R=R)
    y = np.empty_like(x)
    y[..., 1:, :] = x[..., :-1, :]
    y[..., :1, :] = random_series(rng, 1, 3, R=R)
    N = (R or 1) * (T - k)
    lower = 1 - _chi2_upper(2**k) / (N * N_LN2)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    for te in _all_ops(xt, yt, k=k):
        diag = te.diagonal().numpy()
        assert (diag <= 1 + 1e-12).all() and (diag > lower).all(), diag
        # Other pairs are independent: near 0 (see test_independent_series_near_zero).
        off = te.numpy()[~np.eye(3, dtype=bool)]
        assert (off < _chi2_upper(2**k) / (N * N_LN2)).all(), off
    # The reverse direction carries nothing: x[n] is independent of every past.
    back = te_ext.transfer_entropy(yt, xt, k=k).numpy()
    assert (back < _chi2_upper(2**k) / (N * N_LN2)).all()


def test_delay_selects_the_lag(rng):
    """y[n] = x[n-2]: with delay=2 the source explains y fully; with delay=1, not at all."""
    T = 2**15
    x = random_series(rng, T, 2)
    y = np.empty_like(x)
    y[2:], y[:2] = x[:-2], random_series(rng, 2, 2)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    N = T - 2
    at_lag = te_ext.transfer_entropy(xt, yt, delay=2).diagonal()
    assert ((at_lag > 1 - _chi2_upper(2) / (N * N_LN2)) & (at_lag <= 1 + 1e-12)).all(), at_lag
    # delay=1 reads x[n-1], independent of y[n] = x[n-2] and of y[n-1] = x[n-3].
    wrong_lag = te_ext.transfer_entropy(xt, yt, delay=1).diagonal()
    assert (wrong_lag < _chi2_upper(2) / (N * N_LN2)).all(), wrong_lag
    # A longer source history that reaches back to lag 2 finds it too.
    via_history = te_ext.transfer_entropy(xt, yt, l=2, delay=1).diagonal()
    assert (via_history > 1 - _chi2_upper(2) / (N * N_LN2)).all(), via_history


@pytest.mark.parametrize("value", [0, 1])
@pytest.mark.parametrize("which", ["source", "target", "both"])
@pytest.mark.parametrize("k,l,delay", [(1, 1, 1), (2, 3, 2), (1, 6, 1)])
@pytest.mark.parametrize("R", [None, 2])
def test_constant_series_give_exactly_zero(rng, value, which, k, l, delay, R):
    """A constant series has no information to transfer or receive: TE is 0, not NaN."""
    T = 130
    shape = (T, 3) if R is None else (R, T, 3)
    const = torch.full(shape, value, dtype=torch.uint8)
    rand = torch.from_numpy(random_series(rng, T, 3, R=R))
    x = const if which in ("source", "both") else rand
    y = const if which in ("target", "both") else rand
    for te in _all_ops(x, y, k, l, delay):
        assert torch.equal(te, torch.zeros(3, 3, dtype=torch.float64)), te
    # The same through a threshold, with a constant float series.
    xf = x.double() * 3 - 1
    yf = y.double() * 3 - 1
    for te in _all_ops(xf, yf, k, l, delay, threshold=0.5):
        assert torch.equal(te, torch.zeros(3, 3, dtype=torch.float64)), te


def test_counts_with_a_single_source_state_give_exactly_zero():
    # xpast always 0 (a constant source): p(yn | yp, xp) = p(yn | yp) exactly.
    counts = torch.tensor([[1, 0, 1, 0, 2, 0, 5, 0], [0, 3, 0, 7, 0, 1, 0, 2]])
    assert torch.equal(te_ext.te_from_counts(counts), torch.zeros(2, dtype=torch.float64))


@pytest.mark.parametrize("k,l", [(1, 1), (2, 2), (1, 6)])
def test_te_from_zero_counts_is_zero(k, l):
    counts = torch.zeros(4, 2, 2 ** (k + l + 1), dtype=torch.int64)
    assert torch.equal(te_ext.te_from_counts(counts, k, l), torch.zeros(4, 2, dtype=torch.float64))
    # One observation in one bin: a single state, nothing transferred.
    counts[1, 1, 5] = 1
    assert torch.equal(te_ext.te_from_counts(counts, k, l), torch.zeros(4, 2, dtype=torch.float64))


@pytest.mark.parametrize("k,l,delay", [(1, 1, 1), (2, 1, 1), (1, 2, 3), (2, 2, 1)])
def test_independent_series_near_zero(rng, k, l, delay):
    """Independent iid series: TE is only the plug-in bias, chi2_d / (2 N ln2).

    Every pair stays below the 1 - 1e-9 quantile, and the mean over 64 pairs is
    within [d/2, 2d] / (2 N ln2) of its expectation d / (2 N ln2): the mean of
    64 independent chi2_d variables leaves that range with probability < 5e-6
    for d >= 2 (Chernoff bound).
    This also pins the estimator to the plain plug-in (no bias correction).
    """
    T = 20000
    x = torch.from_numpy(random_series(rng, T, 8))
    y = torch.from_numpy(random_series(rng, T, 8))
    n0 = max(k, l - 1 + delay)
    N = T - n0
    d = (2**l - 1) * 2**k
    te = te_ext.transfer_entropy(x, y, k, l, delay).numpy()
    assert (te >= 0).all()
    assert te.max() < _chi2_upper(d) / (N * N_LN2), te.max() * N * N_LN2
    mean_stat = te.mean() * N * N_LN2
    assert d / 2 < mean_stat < 2 * d, mean_stat


def test_biased_coins_delayed_copy(rng):
    """y[n] = x[n-1], x iid with P(1) = 0.2: TE(x -> y) = H(0.2) bits."""
    T = 2**16
    x = random_series(rng, T, 2, p=0.2)
    y = np.empty_like(x)
    y[1:], y[:1] = x[:-1], False
    p_hat = x[:-1].mean(axis=0)  # the realised frequency of the copied bits
    te = te_ext.transfer_entropy(torch.from_numpy(x), torch.from_numpy(y)).diagonal().numpy()
    h = -(0.2 * math.log2(0.2) + 0.8 * math.log2(0.8))
    # The estimate is the plug-in H(ynext | ypast), which falls short of H(p_hat)
    # by the plug-in I(ynext; ypast) ~ chi2_1 / (2 N ln2) < 1e-3. H(p_hat) itself
    # is within 0.02 of H(0.2): dH/dp = log2(0.8/0.2) = 2 and sd(p_hat) = 1.6e-3,
    # so 0.02 is over 6 sd.
    h_hat = -(p_hat * np.log2(p_hat) + (1 - p_hat) * np.log2(1 - p_hat))
    assert (te <= h_hat + 1e-12).all() and (te > h_hat - 1e-3).all(), (te, h_hat)
    assert np.abs(te - h).max() < 0.02
