"""Surrogate statistics against JIDT's discrete computeSignificance (a separate
implementation with its own random permutations): the TE agrees to rounding, the
surrogate mean and standard deviation within Monte-Carlo error, p-values within
binomial error."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import te_ext
from jidt import jidt_significance, jidt_te_calculator_class
from reference import coupled_series, random_series

S = 400


@pytest.mark.parametrize("k,l,delay,R", [(1, 1, 1, None), (2, 1, 1, None), (1, 2, 2, None),
                                         (2, 2, 1, 2), (3, 1, 3, None)])
def test_surrogates_agree_with_jidt(k, l, delay, R):
    jidt_te_calculator_class()  # skips with the reason where JIDT is unavailable
    rng = np.random.default_rng(100 + 10 * k + l + delay)
    x = random_series(rng, 600, 3, R)
    y = np.concatenate([coupled_series(rng, x[..., :1], 1, lag=delay, noise=0.42),  # weak
                        random_series(rng, 600, 2, R)], axis=-1)                      # none
    pairs = torch.tensor([[0, 0], [1, 1], [2, 2], [0, 2]])
    res = te_ext.significance(torch.from_numpy(x), torch.from_numpy(y), surrogates=S, k=k, l=l,
                              delay=delay, pairs=pairs, seed=1)
    for q, (i, j) in enumerate(pairs.tolist()):
        te, p_j, mean_j, std_j, values = jidt_significance(x[..., i], y[..., j], k, l,
                                                           delay, S)
        assert math.isclose(res.te[q].item(), te, rel_tol=0, abs_tol=1e-12)
        sd = max(std_j, res.surrogate_std[q].item())
        # Two independent Monte-Carlo estimates of the same mean / std.
        assert abs(res.surrogate_mean[q].item() - mean_j) < 5 * sd * math.sqrt(2 / S)
        ours_std = res.surrogate_std[q].item() * math.sqrt(S / (S - 1))  # JIDT: ddof = 1
        assert abs(ours_std - std_j) < 5 * sd / math.sqrt(S) + 1e-15
        # JIDT's p is #{surrogate >= te} / S; ours is (1 + that count) / (1 + S).
        ours_frac = (res.p_value[q].item() * (S + 1) - 1) / S
        pbar = (ours_frac + p_j) / 2
        assert abs(ours_frac - p_j) <= 5 * math.sqrt(2 * pbar * (1 - pbar) / S) + 2 / S
        assert abs(values.mean() - mean_j) < 1e-12  # the helper reads JIDT's distribution


def test_jidt_helper_replicates_layout():
    """jidt_significance takes [R, T] per pair for replicates, as used above."""
    jidt_te_calculator_class()  # skips with the reason where JIDT is unavailable
    rng = np.random.default_rng(5)
    x = random_series(rng, 300, 1, 2)
    y = coupled_series(rng, x, 1, noise=0.1)
    te = jidt_significance(x[..., 0], y[..., 0], 1, 1, 1, 5)[0]
    ours = te_ext.transfer_entropy(torch.from_numpy(x), torch.from_numpy(y))[0, 0].item()
    assert math.isclose(te, ours, rel_tol=0, abs_tol=1e-12)
