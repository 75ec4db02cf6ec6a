"""Registration: torch.library.opcheck on every op, and torch.compile(fullgraph=True)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import te_ext
from reference import coupled_series, random_series


def _series(seed: int, T: int, I: int, J: int, R: int | None = None):
    rng = np.random.default_rng(seed)
    x = random_series(rng, T, I, R=R)
    return torch.from_numpy(x), torch.from_numpy(coupled_series(rng, x, J, 1, 0.2))


def _samples():
    """(op name, args, kwargs) covering bool, thresholded floats, replicates, large states."""
    xb, yb = _series(0, 90, 3, 4)
    xr, yr = _series(1, 40, 2, 3, R=3)
    xf = torch.randn(70, 3, dtype=torch.float32, generator=torch.Generator().manual_seed(2))
    yf = torch.randn(70, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    pairs = torch.tensor([[0, 1], [2, 0], [0, 1]])
    out = []
    for op in ("joint_counts", "transfer_entropy"):
        out += [(op, (xb, yb), {}),
                (op, (xb.to(torch.uint8), yb.to(torch.uint8)), dict(k=2, l=3, delay=2)),
                (op, (xf, yf), dict(k=2, threshold=0.1)),
                (op, (xr, yr), dict(l=2, delay=2)),
                (op, (xb, yb), dict(k=1, l=6))]
    out += [("transfer_entropy_pairs", (xb, yb, pairs), {}),
            ("transfer_entropy_pairs", (xf, yf, pairs.clamp(max=1)), dict(threshold=0.0)),
            ("transfer_entropy_pairs", (xr, yr, pairs.clamp(max=1)), dict(k=3)),
            ("transfer_entropy_pairs", (xb, yb, torch.empty(0, 2, dtype=torch.int64)), {})]
    counts = te_ext.joint_counts(xr, yr, k=2, l=1)
    out += [("te_from_counts", (counts,), dict(k=2, l=1)),
            ("te_from_counts", (counts.to(torch.int32)[:, 0],), dict(k=2, l=1)),
            ("te_from_counts", (torch.zeros(2, 8, dtype=torch.int64),), {})]
    return out


SAMPLES = _samples()


@pytest.mark.parametrize("op,args,kwargs", SAMPLES,
                         ids=[f"{s[0]}-{i}" for i, s in enumerate(SAMPLES)])
def test_opcheck(op, args, kwargs):
    torch.library.opcheck(getattr(torch.ops.te, op).default, args, kwargs)


def _pipeline(acts_in: torch.Tensor, acts_out: torch.Tensor):
    """A TE step as training would write it: binarise, count, reduce, normalise."""
    te = te_ext.transfer_entropy(acts_in, acts_out, k=2, threshold=0.0)
    counts = te_ext.joint_counts(acts_in > 0, acts_out > 0, k=2)
    te_counts = te_ext.te_from_counts(counts, k=2)
    pairs = torch.stack([torch.arange(acts_in.shape[1]), torch.zeros(acts_in.shape[1],
                                                                    dtype=torch.int64)], 1)
    te_pairs = te_ext.transfer_entropy_pairs(acts_in, acts_out, pairs, k=2, threshold=0.0)
    return te / (te.sum() + 1), counts.sum(-1), te_counts, te_pairs


@pytest.mark.parametrize("backend", ["inductor", "aot_eager"])
def test_compile_fullgraph_matches_eager(backend):
    g = torch.Generator().manual_seed(4)
    a = torch.randn(200, 5, generator=g)
    b = torch.roll(a, 1, 0)[:, :3] + 0.3 * torch.randn(200, 3, generator=g)
    torch._dynamo.reset()
    compiled = torch.compile(_pipeline, fullgraph=True, backend=backend)
    expected = _pipeline(a, b)
    got = compiled(a, b)
    for e, c in zip(expected, got):
        assert e.dtype == c.dtype and e.shape == c.shape
        torch.testing.assert_close(c, e, rtol=1e-12, atol=1e-12)
    if backend == "inductor":
        return  # one inductor compile is most of a minute on 2 cores; enough
    # A second shape: the guards recompile (as a dynamic graph), still equal.
    a2, b2 = a[:150, :4], b[:150]
    for e, c in zip(_pipeline(a2, b2), compiled(a2, b2)):
        torch.testing.assert_close(c, e, rtol=1e-12, atol=1e-12)
