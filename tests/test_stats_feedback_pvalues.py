"""TEFeedback(estimator="effective") exposes the last refresh's surrogate p-values, which
te-train's diagnostics turn into the fraction of significant pairs."""

import pytest
import torch
from torch import nn

from te_ext.feedback_measures import surrogate_seed
from te_ext import TEFeedback, significance
from te_ext.experiments.diagnostics import TEDiagnostics


def _train(fb, layer, steps=12, seed=0):
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.SGD(layer.parameters(), lr=0.01)
    for _ in range(steps):
        x = torch.randn(16, layer.in_features, generator=g)
        opt.zero_grad()
        layer(x).square().mean().backward()
        opt.step()


def test_effective_estimator_exposes_p_values_of_its_refresh():
    torch.manual_seed(0)
    layer = nn.Linear(5, 4)
    fb = TEFeedback(layer, window=64, estimator="effective", surrogates=9, seed=3)
    assert fb.p_values is None
    _train(fb, layer)
    assert fb.te is not None and fb.p_values is not None
    assert fb.p_values.shape == (5, 4) and fb.p_values.dtype == torch.float64
    # p-values of S=9 surrogates live on the grid (1 + m) / 10.
    grid = fb.p_values * 10 - 1
    assert torch.equal(grid, grid.round()) and bool(((grid >= 0) & (grid <= 9)).all())
    # The same window and seed through significance() give the same p-values.
    src, tgt = fb.window.window_series()
    seed = surrogate_seed(fb.seed, fb.steps)
    res = significance(src.view(torch.bool), tgt.view(torch.bool), surrogates=9, seed=seed)
    assert torch.equal(res.p_value, fb.p_values)
    fb.remove()


@pytest.mark.parametrize("surrogates", [4, 16, 99])
def test_diagnostics_record_the_fraction_at_an_attainable_level(surrogates):
    # Permutation p-values live on (1 + m) / (S + 1): with S < 19 none is below 0.05, so the
    # level is the smallest attainable p (the pairs that beat every surrogate), else 0.05.
    layer = nn.Linear(4, 3)
    fb = TEFeedback(layer, window=32, estimator="effective", surrogates=surrogates)
    diag = TEDiagnostics(fb)
    diag.start_epoch(4)
    fb.te = torch.zeros(4, 3)
    m = torch.tensor([[0, 3, 0], [2, 2, 1], [0, 4, 4], [1, 1, 4]], dtype=torch.float64)
    fb.p_values = (1 + m) / (surrogates + 1)
    diag.observe()
    out = diag.end_epoch()
    alpha = max(0.05, 1 / (surrogates + 1))
    assert out["te_significance_alpha"] == alpha
    want = float((fb.p_values <= alpha + 1e-12).double().mean())
    assert abs(out["te_frac_significant"] - want) < 1e-12
    # S = 4 and 16: the three pairs with m = 0; S = 99: p <= 0.05 is m <= 4, all twelve.
    assert want == (3 / 12 if surrogates < 19 else 1.0)
    fb.remove()
