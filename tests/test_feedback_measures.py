"""TEFeedback's ablation modulators (te_ext/feedback_measures.py) against plain numpy computed
from the window's series: mutual information and |phi| of (y[n-1], x[n-delay]), and the
shuffled control, which keeps every source's marginals and destroys the timing."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import te_ext
from reference import coupled_series, random_series
from te_ext import TEFeedback
from te_ext import feedback_measures as fm


def _pairs_table(x, y, k, l, delay):
    """numpy [I, J, 2, 2] counts of (y[n-1], x[n-delay]) over the observations n0 .. T-1."""
    n0 = max(k, l - 1 + delay)
    T = x.shape[0]
    yv, xv = y[n0 - 1:T - 1].astype(int), x[n0 - delay:T - delay].astype(int)
    out = np.zeros((x.shape[1], y.shape[1], 2, 2))
    for a in (0, 1):
        for b in (0, 1):
            out[:, :, a, b] = ((xv == b).T.astype(float)) @ (yv == a).astype(float)
    return out


def _mi_ref(t):
    n = t.sum()
    mi = 0.0
    for a in (0, 1):
        for b in (0, 1):
            if t[a, b] > 0:
                mi += t[a, b] / n * np.log2(t[a, b] * n / (t[a].sum() * t[:, b].sum()))
    return max(mi, 0.0)


@pytest.mark.parametrize("k,l,delay", [(1, 1, 1), (2, 1, 1), (1, 2, 2), (3, 2, 1)])
def test_lag_table_mi_and_phi_equal_numpy(rng, k, l, delay):
    x = random_series(rng, 400, 6, p=0.3)
    # y[n] copies x[n - (delay - 1)]: the pair (y[n-1], x[n-delay]) is coupled
    y = (coupled_series(rng, x, 5, lag=delay - 1, noise=0.3) if delay > 1
         else x[:, np.arange(5) % 6] ^ (rng.random((400, 5)) < 0.3))
    counts = te_ext.joint_counts(torch.from_numpy(x), torch.from_numpy(y), k=k, l=l, delay=delay)
    table = fm.lag_table(counts, k, l)
    want = _pairs_table(x, y, k, l, delay)
    np.testing.assert_array_equal(table.numpy(), want)
    mi = fm.mutual_information(table).numpy()
    phi = fm.phi_abs(table).numpy()
    n0 = max(k, l - 1 + delay)
    for i in range(6):
        for j in range(5):
            assert abs(mi[i, j] - _mi_ref(want[i, j])) < 1e-12
            xs, ys = x[n0 - delay:400 - delay, i], y[n0 - 1:399, j]
            r = np.corrcoef(xs, ys)[0, 1] if xs.std() > 0 and ys.std() > 0 else 0.0
            assert abs(phi[i, j] - abs(r)) < 1e-12
    assert mi.max() > 0.05 and (mi >= 0).all() and (phi <= 1 + 1e-12).all()


def test_constant_series_give_zero_mi_and_phi():
    x = np.zeros((50, 2), dtype=bool)
    x[:, 1] = True
    y = np.random.default_rng(0).random((50, 3)) < 0.5
    counts = te_ext.joint_counts(torch.from_numpy(x), torch.from_numpy(y))
    table = fm.lag_table(counts, 1, 1)
    assert torch.equal(fm.mutual_information(table), torch.zeros(2, 3, dtype=torch.float64))
    assert torch.equal(fm.phi_abs(table), torch.zeros(2, 3, dtype=torch.float64))


def test_shifted_source_keeps_marginals_and_loses_the_timing(rng):
    x = random_series(rng, 512, 8, p=0.4)
    y = coupled_series(rng, x, 8, lag=1, noise=0.05)
    src = torch.from_numpy(x)
    shifted = fm.shift_source(src, 256)
    # every source keeps its ones and zeros (its marginal), the target is untouched
    assert torch.equal(shifted.sum(0), src.sum(0))
    assert torch.equal(torch.sort(shifted.int(), 0).values, torch.sort(src.int(), 0).values)
    assert not torch.equal(shifted, src)
    te = te_ext.transfer_entropy(src, torch.from_numpy(y))
    te_shift = te_ext.transfer_entropy(shifted, torch.from_numpy(y))
    diag, diag_shift = torch.diagonal(te), torch.diagonal(te_shift)
    assert diag.min() > 0.3 and diag_shift.max() < 0.05  # coupled pairs: timing gone


def _train(measure, window=64, steps=6, seed=0, **kw):
    torch.manual_seed(seed)
    layer = nn.Linear(7, 4)
    fb = TEFeedback(layer, window=window, measure=measure, target_threshold=0.0, **kw)
    opt = torch.optim.SGD(layer.parameters(), lr=0.05)
    g = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        x = torch.randn(16, 7, generator=g)
        opt.zero_grad()
        layer(x).pow(2).sum().backward()
        opt.step()
    return fb


@pytest.mark.parametrize("measure", ["mi", "phi", "te_shifted"])
def test_feedback_puts_the_measure_in_the_slot(measure):
    fb = _train(measure)
    src, tgt = fb.window.window_series()
    if measure == "te_shifted":
        want = te_ext.transfer_entropy(fm.shift_source(src, src.shape[0] // 2), tgt)
    else:
        table = fm.lag_table(te_ext.joint_counts(src, tgt), 1, 1)
        want = fm.mutual_information(table) if measure == "mi" else fm.phi_abs(table)
    torch.testing.assert_close(fb.te, want.float())
    assert fb.te.max() > 0  # not a vacuous comparison
    scale = fb._grad_scale
    torch.testing.assert_close(scale, (1 + want.t()).float())
    state = fb.state_dict()
    assert state["config"]["measure"] == measure
    with pytest.raises(ValueError, match="configured"):
        _train("te").load_state_dict(state)
    fb.remove()


@pytest.mark.parametrize("kw,match", [
    (dict(measure="entropy"), "measure must be one of"),
    (dict(measure="mi", estimator="analytic"), "plug-in estimator only"),
    (dict(measure="phi", pair_fraction=0.5), "pair_fraction must be 1"),
])
def test_bad_measures_are_refused(kw, match):
    with pytest.raises(ValueError, match=match):
        TEFeedback(nn.Linear(3, 2), **kw)


def test_default_te_config_unchanged():
    # states saved before the measures existed keep loading: no "measure" key for "te"
    assert "measure" not in _train("te").state_dict()["config"]
