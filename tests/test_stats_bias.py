"""The analytic bias correction (hand-derived cases), the Benjamini–Hochberg helper, and
TEFeedback's "analytic" / "effective" estimators."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

import te_ext
from te_ext.feedback_measures import surrogate_seed
from reference import coupled_series, random_series
from te_ext.stats import analytic_bias

LN2 = math.log(2.0)


def test_analytic_hand_derived_copy():
    # x alternates 0,1,...; y copies x with lag 1. Observations n = 1..8, as
    # (ynext, ypast, xpast): (0,0,0) once, (1,0,1) four times, (0,1,0) three times.
    x = torch.tensor([0, 1, 0, 1, 0, 1, 0, 1, 0], dtype=torch.bool)[:, None]
    y = torch.tensor([0, 0, 1, 0, 1, 0, 1, 0, 1], dtype=torch.bool)[:, None]
    # Plug-in: H(Yn|Yp) - H(Yn|Yp,Xp) = 5/8 h(1/5) - 0.
    h = -(0.2 * math.log2(0.2) + 0.8 * math.log2(0.8))
    plugin = 5 / 8 * h
    # Occupied bins: B(Yn,Yp,Xp) = 3, B(Yp,Xp) = 3, B(Yn,Yp) = 3, B(Yp) = 2.
    bias = (3 - 3 - 3 + 2) / (2 * 8 * LN2)
    assert math.isclose(te_ext.transfer_entropy(x, y).item(), plugin, abs_tol=1e-15)
    got = te_ext.transfer_entropy(x, y, bias_correction="analytic").item()
    assert math.isclose(got, plugin - bias, abs_tol=1e-15)
    assert math.isclose(got, 5 / 8 * h + 1 / (16 * LN2), abs_tol=1e-15)


def test_analytic_all_bins_occupied(rng):
    # k = l = 1 with all 8 bins occupied: bias = (8 - 4 - 4 + 2) / (2 N ln 2) = 1 / (N ln 2).
    x = torch.from_numpy(random_series(rng, 501, 3))
    y = torch.from_numpy(random_series(rng, 501, 2))
    assert bool((te_ext.joint_counts(x, y) > 0).all())
    got = te_ext.transfer_entropy(x, y, bias_correction="analytic")
    torch.testing.assert_close(got, te_ext.transfer_entropy(x, y) - 1 / (500 * LN2), rtol=0,
                               atol=1e-15)


def test_analytic_bias_from_counts_by_hand():
    # k = 2, l = 1: 16 bins (ynext, ypast in 0..3, xpast). Occupied bins chosen by hand:
    # (0,0,0), (0,0,1), (1,0,0), (1,3,1), (0,2,1) -> B_all = 5; B(Yp,Xp) = {(0,0),(0,1),(3,1),
    # (2,1)} = 4; B(Yn,Yp) = {(0,0),(1,0),(1,3),(0,2)} = 4; B(Yp) = {0,2,3} = 3.
    c = torch.zeros(16, dtype=torch.int64)
    for (yn, yp, xp), n in {(0, 0, 0): 3, (0, 0, 1): 1, (1, 0, 0): 2, (1, 3, 1): 5,
                            (0, 2, 1): 9}.items():
        c[(yn << 3) | (yp << 1) | xp] = n
    want = (5 - 4 - 4 + 3) / (2 * 20 * LN2)
    assert math.isclose(analytic_bias(c, 2, 1).item(), want, abs_tol=1e-16)
    batch = torch.stack([c, torch.zeros_like(c)])  # an empty histogram has bias 0
    torch.testing.assert_close(analytic_bias(batch, 2, 1),
                               torch.tensor([want, 0.0], dtype=torch.float64))


def test_analytic_shrinks_independent_te(rng):
    x = torch.from_numpy(random_series(rng, 300, 20))
    y = torch.from_numpy(random_series(rng, 300, 20))
    plugin = te_ext.transfer_entropy(x, y, k=2)
    corrected = te_ext.transfer_entropy(x, y, k=2, bias_correction="analytic")
    # Independent series: the plug-in mean is about the bias, the corrected mean about 0.
    assert corrected.mean().abs() < 0.2 * plugin.mean()


def test_bias_correction_bad_value(rng):
    x = torch.from_numpy(random_series(rng, 30, 2))
    for bad in ("miller", None, "Analytic"):
        with pytest.raises(ValueError, match="bias_correction must be 'none' or 'analytic'"):
            te_ext.transfer_entropy(x, x, bias_correction=bad)
    with pytest.raises(ValueError, match="last dimension must be"):
        analytic_bias(torch.zeros(3, 7, dtype=torch.int64), 1, 1)


# ---- Benjamini–Hochberg -------------------------------------------------------------------

def _bh_numpy(p, alpha):
    p = np.asarray(p, dtype=float).ravel()
    order = np.argsort(p, kind="stable")
    n = p.size
    ok = p[order] <= alpha * np.arange(1, n + 1) / n
    keep = np.zeros(n, bool)
    if ok.any():
        keep[order[: np.nonzero(ok)[0].max() + 1]] = True
    return keep


def test_bh_hand_example():
    p = torch.tensor([0.01, 0.04, 0.03, 0.005, 0.20, 0.9])
    # sorted: .005 .01 .03 .04 .2 .9 vs alpha*r/6 = .0083 .0167 .025 .0333 .0417 .05
    # largest r with p_(r) <= bound: r = 2 -> {0.005, 0.01}.
    assert te_ext.benjamini_hochberg(p, 0.05).tolist() == [True, False, False, True, False, False]
    # alpha 0.25: bounds .042 .083 .125 .167 .208 .25, r = 5.
    assert te_ext.benjamini_hochberg(p, 0.25).tolist() == [True, True, True, True, True, False]
    # Step-up: 0.06 is above its own bound (.05) but 0.07 passes (.075), so both are kept.
    q = torch.tensor([0.07, 0.001, 0.9, 0.06])
    assert te_ext.benjamini_hochberg(q, 0.1).tolist() == [True, True, False, True]


def test_bh_matches_numpy_and_shapes():
    rng = np.random.default_rng(3)
    for shape in [(7,), (5, 6), (3, 4, 2)]:
        p = torch.from_numpy(np.concatenate([rng.random(int(np.prod(shape)) - 3) ,
                                             [1e-4, 2e-3, 0.01]])).reshape(shape)
        for alpha in (0.01, 0.05, 0.2):
            got = te_ext.benjamini_hochberg(p, alpha)
            assert got.shape == p.shape and got.dtype == torch.bool
            assert got.flatten().tolist() == _bh_numpy(p.numpy(), alpha).tolist()
    assert te_ext.benjamini_hochberg(torch.empty(0)).shape == (0,)


def test_bh_bad_input():
    with pytest.raises(ValueError, match="alpha must be"):
        te_ext.benjamini_hochberg(torch.tensor([0.1]), alpha=0)
    with pytest.raises(ValueError, match="p_values must lie in"):
        te_ext.benjamini_hochberg(torch.tensor([0.1, 1.5]))
    with pytest.raises(ValueError, match="p_values must lie in"):
        te_ext.benjamini_hochberg(torch.tensor([float("nan")]))
    with pytest.raises(TypeError, match="p_values must be a Tensor"):
        te_ext.benjamini_hochberg([0.1])


def test_bh_on_significance_finds_the_coupled_pairs(rng):
    x = random_series(rng, 1000, 8)
    y = coupled_series(rng, x, 8, noise=0.2)  # target j copies source j
    res = te_ext.significance(torch.from_numpy(x), torch.from_numpy(y), surrogates=199, seed=0)
    found = te_ext.benjamini_hochberg(res.p_value, 0.05)
    assert torch.all(torch.diagonal(found))
    assert int(found.sum()) <= 8 + 3


# ---- TEFeedback estimators -----------------------------------------------------------------

def _train(fb_kwargs, steps=8, batch=16, seed=0):
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(10, 7), nn.ReLU(), nn.Linear(7, 4))
    fb = te_ext.TEFeedback(model[2], window=64, target_transform="softmax",
                           target_threshold=0.3, **fb_kwargs)
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    g = torch.Generator().manual_seed(1)
    for _ in range(steps):
        x, y = torch.randn(batch, 10, generator=g), torch.randint(0, 4, (batch,), generator=g)
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    return fb


@pytest.mark.parametrize("pair_fraction", [1.0, 0.5])
def test_feedback_analytic_equals_corrected_te_of_window(pair_fraction):
    fb = _train(dict(estimator="analytic", pair_fraction=pair_fraction))
    src, tgt = fb.window.window_series()
    want = te_ext.transfer_entropy(src, tgt, bias_correction="analytic").clamp(min=0)
    if fb.pairs is not None:
        mask = torch.zeros_like(want, dtype=torch.bool)
        mask[fb.pairs[:, 0], fb.pairs[:, 1]] = True
        want = torch.where(mask, want, torch.zeros_like(want))
    torch.testing.assert_close(fb.te, want.float())


@pytest.mark.parametrize("pair_fraction", [1.0, 0.5])
def test_feedback_effective_equals_significance(pair_fraction):
    fb = _train(dict(estimator="effective", surrogates=5, pair_fraction=pair_fraction, seed=3))
    src, tgt = fb.window.window_series()
    res = te_ext.significance(src, tgt, surrogates=5, seed=surrogate_seed(3, fb.steps),
                              pairs=fb.pairs)
    values = res.effective.clamp(min=0)
    if fb.pairs is not None:
        want = torch.zeros(7, 4, dtype=torch.float64)
        want[fb.pairs[:, 0], fb.pairs[:, 1]] = values
    else:
        want = values
    torch.testing.assert_close(fb.te, want.float())
    assert fb.te.min() >= 0


def test_feedback_estimator_state_round_trip():
    fb = _train(dict(estimator="effective", surrogates=3))
    state = fb.state_dict()
    assert state["config"]["estimator"] == "effective" and state["config"]["surrogates"] == 3
    plain = _train({})
    assert "estimator" not in plain.state_dict()["config"]  # old checkpoints still load
    with pytest.raises(ValueError, match="TEFeedback state was saved with"):
        plain.load_state_dict(state)


@pytest.mark.parametrize("kwargs,exc,match", [
    (dict(estimator="bayes"), ValueError, "estimator must be one of"),
    (dict(estimator="effective", surrogates=0), ValueError, "surrogates must be >= 1"),
    (dict(surrogates=1.5), TypeError, "surrogates must be an int"),
])
def test_feedback_estimator_bad_arguments(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        te_ext.TEFeedback(nn.Linear(3, 2), **kwargs)


def test_surrogate_seed_distinct_per_refresh_and_in_range():
    # The seed rule the tests above share with TEFeedback, checked on its own terms (not
    # re-derived): one seed per (feedback seed, step), a valid generator seed, stable.
    seeds = {surrogate_seed(s, step) for s in range(4) for step in range(200)}
    assert len(seeds) == 800
    assert all(0 <= x < 2 ** 63 for x in seeds)
    assert surrogate_seed(2 ** 62, 7) == surrogate_seed(2 ** 62, 7) < 2 ** 63
