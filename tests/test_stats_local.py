"""te_ext.local_transfer_entropy: against an independent numpy reference and PyInform's
local TE; its mean is transfer_entropy."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import te_ext
from reference import coupled_series, random_series
from stats_reference import local_te_ref

PAIRS = torch.tensor([[0, 0], [2, 1], [1, 2], [2, 2], [0, 0]])


@pytest.mark.parametrize("k,l,delay", [(1, 1, 1), (2, 1, 1), (1, 2, 3), (3, 2, 2), (6, 3, 1)])
@pytest.mark.parametrize("R", [None, 2])
def test_local_matches_numpy_reference(rng, k, l, delay, R):
    x = random_series(rng, 90, 3, R, p=0.4)
    y = coupled_series(rng, x, 3, lag=delay, noise=0.2)
    got = te_ext.local_transfer_entropy(torch.from_numpy(x), torch.from_numpy(y), PAIRS,
                                        k=k, l=l, delay=delay)
    want = local_te_ref(x, y, PAIRS.numpy(), k, l, delay)
    assert got.dtype == torch.float64 and got.shape == want.shape
    np.testing.assert_allclose(got.numpy(), want, rtol=0, atol=1e-12)


@pytest.mark.parametrize("k,l,delay", [(1, 1, 1), (2, 2, 1), (3, 1, 4), (6, 3, 1)])
@pytest.mark.parametrize("R", [None, 3])
def test_local_mean_is_transfer_entropy(rng, k, l, delay, R):
    x = random_series(rng, 400, 4, R)
    y = coupled_series(rng, x, 4, lag=delay, noise=0.3)
    xs, ys = torch.from_numpy(x), torch.from_numpy(y)
    pairs = torch.cartesian_prod(torch.arange(4), torch.arange(4))
    local = te_ext.local_transfer_entropy(xs, ys, pairs, k=k, l=l, delay=delay)
    te = te_ext.transfer_entropy(xs, ys, k, l, delay)[pairs[:, 0], pairs[:, 1]]
    torch.testing.assert_close(local.mean(1), te, rtol=0, atol=1e-12)


@pytest.mark.parametrize("k", [1, 2, 3])
@pytest.mark.parametrize("R", [None, 3])
def test_local_matches_pyinform(rng, k, R):
    pyinform = pytest.importorskip("pyinform")
    x = random_series(rng, 200, 3, R)
    y = coupled_series(rng, x, 3, noise=0.2)
    got = te_ext.local_transfer_entropy(torch.from_numpy(x), torch.from_numpy(y), PAIRS, k=k)
    for q, (i, j) in enumerate(PAIRS.tolist()):
        want = pyinform.transferentropy.transfer_entropy(
            x[..., i].astype(np.int32), y[..., j].astype(np.int32), k, local=True)
        np.testing.assert_allclose(got[q].numpy(), np.asarray(want).reshape(-1), rtol=0,
                                   atol=1e-12)


def test_local_threshold_and_strides(rng):
    xf = torch.from_numpy(rng.standard_normal((100, 5)))
    yf = torch.from_numpy(rng.standard_normal((100, 4)))
    a = te_ext.local_transfer_entropy(xf.t().contiguous().t(), yf, PAIRS, k=2, threshold=0.3)
    b = te_ext.local_transfer_entropy(xf > 0.3, yf > 0.3, PAIRS, k=2)
    assert torch.equal(a, b)


def test_local_empty_pairs():
    x = torch.zeros(10, 2, dtype=torch.bool)
    out = te_ext.local_transfer_entropy(x, x, torch.empty(0, 2, dtype=torch.int64), k=2)
    assert out.shape == (0, 8)


@pytest.mark.parametrize("pairs,exc,match", [
    (torch.tensor([[2, 0]]), ValueError, r"pairs\[:, 0\] \(source index\) must be in \[0, 2\)"),
    (torch.tensor([[0, 5]]), ValueError, r"pairs\[:, 1\] \(target index\)"),
    (torch.tensor([[-1, 0]]), ValueError, r"pairs\[:, 0\]"),
    (torch.tensor([[0, 0, 0]]), ValueError, r"pairs must have shape \[P, 2\]"),
    (torch.tensor([[0, 0]], dtype=torch.int32), TypeError, "pairs must be int64"),
])
def test_local_bad_pairs(pairs, exc, match):
    x = torch.zeros(10, 2, dtype=torch.bool)
    with pytest.raises(exc, match=match):
        te_ext.local_transfer_entropy(x, x, pairs)


def test_local_bad_series():
    x = torch.zeros(10, 2, dtype=torch.bool)
    p = torch.tensor([[0, 0]])
    with pytest.raises(ValueError, match="series too short"):
        te_ext.local_transfer_entropy(x, x, p, k=10)
    with pytest.raises(ValueError, match="contains the value 3"):
        te_ext.local_transfer_entropy(x.long() + 3, x, p)
    with pytest.raises(TypeError, match="threshold is None"):
        te_ext.local_transfer_entropy(x.float(), x, p)
    with pytest.raises(ValueError, match="l \\(source history length\\) must be >= 1"):
        te_ext.local_transfer_entropy(x, x, p, l=0)


def test_opcheck_local(rng):
    x = torch.from_numpy(random_series(rng, 40, 3))
    y = torch.from_numpy(random_series(rng, 40, 2))
    torch.library.opcheck(torch.ops.te.local_transfer_entropy.default, (x, y, PAIRS.clamp(max=1)),
                          dict(k=2))
    torch.library.opcheck(torch.ops.te.local_transfer_entropy.default,
                          (x.reshape(2, 20, 3).double(), y.reshape(2, 20, 2).double(),
                           torch.tensor([[2, 1]])), dict(threshold=0.5, delay=2))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
@pytest.mark.parametrize("k,l,delay", [(1, 1, 1), (2, 2, 2), (6, 3, 1)])
def test_local_cuda_matches_cpu(rng, k, l, delay):
    x = torch.from_numpy(random_series(rng, 300, 3, 2))
    y = torch.from_numpy(coupled_series(rng, x.numpy(), 3, lag=delay, noise=0.3))
    a = te_ext.local_transfer_entropy(x, y, PAIRS, k=k, l=l, delay=delay)
    b = te_ext.local_transfer_entropy(x.cuda(), y.cuda(), PAIRS.cuda(), k=k, l=l, delay=delay)
    torch.testing.assert_close(a, b.cpu(), rtol=0, atol=1e-12)


def test_fakes_trace_under_compile(rng):
    x = torch.from_numpy(random_series(rng, 64, 3))
    y = torch.from_numpy(random_series(rng, 64, 2))
    perm = te_ext.surrogate_permutations(63, 4, seed=0)

    @torch.compile(fullgraph=True, backend="eager")
    def both(a, b, p):
        te, at_least, s1, s2 = torch.ops.te.transfer_entropy_surrogates(a, b, p, 1, 1, 1)
        return torch.ops.te.local_transfer_entropy(a, b, PAIRS.clamp(max=1), 2).mean(1), te, s1

    local, te, s1 = both(x, y, perm)
    torch.testing.assert_close(local, te_ext.local_transfer_entropy(x, y, PAIRS.clamp(max=1),
                                                                    k=2).mean(1))
    assert torch.equal(te, te_ext.transfer_entropy(x, y))


def test_fake_mixed_devices_raise():
    x = torch.zeros(10, 2, dtype=torch.bool)
    m = torch.empty(10, 2, dtype=torch.bool, device="meta")
    with pytest.raises(ValueError, match="same device"):
        torch.ops.te.local_transfer_entropy(x, m, torch.tensor([[0, 0]]))
    with pytest.raises(ValueError, match="permutations must be on meta like source and target, got cpu"):
        torch.ops.te.transfer_entropy_surrogates(m.new_empty(10, 2, device="meta"), m,
                                                 torch.arange(9).unsqueeze(0))
