"""TEFeedback(estimator="effective") exposes the last refresh's surrogate p-values, which
te-train's diagnostics turn into the fraction of pairs with p < 0.05."""

import torch
from torch import nn

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
    seed = (fb.seed * 1_000_003 + fb.steps) % (2 ** 63)
    res = significance(src.view(torch.bool), tgt.view(torch.bool), surrogates=9, seed=seed)
    assert torch.equal(res.p_value, fb.p_values)
    fb.remove()


def test_diagnostics_record_the_fraction_below_005():
    layer = nn.Linear(4, 3)
    fb = TEFeedback(layer, window=32, estimator="effective", surrogates=4)
    diag = TEDiagnostics(fb)
    diag.start_epoch(4)
    fb.te = torch.zeros(4, 3)
    fb.p_values = torch.tensor([[0.01, 0.5, 0.04], [0.2, 0.2, 0.2], [0.01, 0.9, 0.9],
                                [0.3, 0.3, 0.3]], dtype=torch.float64)
    diag.observe()
    out = diag.end_epoch()
    assert abs(out["te_frac_p05"] - 3 / 12) < 1e-12
    fb.remove()
