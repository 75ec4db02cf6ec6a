"""te_ext.significance and te.transfer_entropy_surrogates: against an independent numpy
reference given the same permutations, and their statistical properties."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import te_ext
from reference import coupled_series, random_series, transfer_entropy_ref
from stats_reference import surrogate_te_ref
from te_ext import stats as te_stats

CASES = [(1, 1, 1), (2, 1, 1), (1, 2, 1), (2, 2, 3), (3, 1, 2)]


def _n_obs(T, k, l, delay, R=1):
    return R * (T - max(k, l - 1 + delay))


@pytest.mark.parametrize("k,l,delay", CASES + [(6, 3, 1)])  # (6, 3): the histogram path
@pytest.mark.parametrize("R", [None, 3])
def test_surrogates_match_numpy_reference(rng, k, l, delay, R):
    x = random_series(rng, 150, 5, R)
    y = coupled_series(rng, x, 4, lag=delay, noise=0.3)
    n = _n_obs(150, k, l, delay, R or 1)
    perm = te_ext.surrogate_permutations(n, 6, seed=3)
    te, at_least, s1, s2 = torch.ops.te.transfer_entropy_surrogates(
        torch.from_numpy(x), torch.from_numpy(y), perm, k, l, delay)
    ref_te = transfer_entropy_ref(x, y, k, l, delay)
    sur = np.stack([surrogate_te_ref(x, y, p.numpy(), k, l, delay) for p in perm])
    np.testing.assert_allclose(te.numpy(), ref_te, atol=1e-12)
    np.testing.assert_allclose(s1.numpy(), sur.sum(0), atol=1e-11)
    np.testing.assert_allclose(s2.numpy(), (sur ** 2).sum(0), atol=1e-11)
    # >= on values that agree to rounding: compare away from ties.
    close = np.abs(sur - ref_te[None]) < 1e-9
    expected = (sur >= ref_te[None]) | close
    assert np.all((at_least.numpy() >= (sur >= ref_te[None] + 1e-9).sum(0))
                  & (at_least.numpy() <= expected.sum(0)))


def test_identity_permutation_reproduces_te_exactly(rng):
    x = random_series(rng, 300, 7)
    y = coupled_series(rng, x, 6, noise=0.2)
    xs, ys = torch.from_numpy(x), torch.from_numpy(y)
    n = _n_obs(300, 1, 1, 1)
    ident = torch.arange(n).repeat(3, 1)
    te, at_least, s1, s2 = torch.ops.te.transfer_entropy_surrogates(xs, ys, ident)
    assert torch.equal(te, te_ext.transfer_entropy(xs, ys))
    assert torch.equal(at_least, torch.full_like(at_least, 3))  # TE_s == TE, bit for bit
    assert torch.equal(s1, te * 3)


@pytest.mark.parametrize("k,l,delay", [(1, 1, 1), (2, 2, 2), (6, 3, 1)])
def test_significance_fields(rng, k, l, delay):
    x = random_series(rng, 200, 4)
    y = coupled_series(rng, x, 5, lag=delay, noise=0.25)
    xs, ys = torch.from_numpy(x), torch.from_numpy(y)
    S = 20
    res = te_ext.significance(xs, ys, surrogates=S, k=k, l=l, delay=delay, seed=7)
    perm = te_ext.surrogate_permutations(_n_obs(200, k, l, delay), S, seed=7)
    sur = np.stack([surrogate_te_ref(x, y, p.numpy(), k, l, delay) for p in perm])
    te = transfer_entropy_ref(x, y, k, l, delay)
    assert res.surrogates == S
    assert torch.equal(res.te, te_ext.transfer_entropy(xs, ys, k, l, delay))
    np.testing.assert_allclose(res.surrogate_mean.numpy(), sur.mean(0), atol=1e-12)
    np.testing.assert_allclose(res.surrogate_std.numpy(), sur.std(0), atol=1e-8)
    np.testing.assert_allclose(res.effective.numpy(), te - sur.mean(0), atol=1e-12)
    strict = ((sur > te[None] + 1e-9).sum(0) + 1) / (S + 1)
    loose = ((sur >= te[None] - 1e-9).sum(0) + 1) / (S + 1)
    p = res.p_value.numpy()
    assert np.all((p >= strict) & (p <= loose))
    for t in (res.te, res.p_value, res.surrogate_mean, res.surrogate_std, res.effective):
        assert t.dtype == torch.float64 and t.shape == (4, 5)


def test_pairs_equal_the_all_pairs_entries(rng):
    x = random_series(rng, 400, 70)  # more than 64 stream rows: several row blocks
    y = coupled_series(rng, x, 9, noise=0.3)
    xs, ys = torch.from_numpy(x), torch.from_numpy(y)
    pairs = torch.tensor([[0, 0], [69, 8], [65, 3], [3, 3], [65, 3]])
    for k, l in ((1, 1), (2, 2), (6, 3)):
        full = te_ext.significance(xs, ys, surrogates=9, k=k, l=l, seed=1)
        some = te_ext.significance(xs, ys, surrogates=9, k=k, l=l, seed=1, pairs=pairs)
        for name in ("te", "p_value", "surrogate_mean", "surrogate_std"):
            got, want = getattr(some, name), getattr(full, name)[pairs[:, 0], pairs[:, 1]]
            torch.testing.assert_close(got, want, rtol=0, atol=1e-12)


def test_chunked_permutations_give_the_same_result(rng, monkeypatch):
    x = random_series(rng, 300, 3)
    y = coupled_series(rng, x, 3, noise=0.3)
    xs, ys = torch.from_numpy(x), torch.from_numpy(y)
    whole = te_ext.significance(xs, ys, surrogates=25, seed=4)
    monkeypatch.setattr(te_stats, "_PERMUTATION_CHUNK_BYTES", 8 * 299 * 4)  # 4 rows a chunk
    chunked = te_ext.significance(xs, ys, surrogates=25, seed=4)
    assert torch.equal(whole.p_value, chunked.p_value)
    torch.testing.assert_close(whole.surrogate_mean, chunked.surrogate_mean, rtol=0, atol=1e-15)


def test_coupled_pair_gets_the_smallest_p_value(rng):
    x = random_series(rng, 2000, 3)
    y = coupled_series(rng, x, 3, noise=0.05)  # target j copies source j with lag 1
    S = 200
    res = te_ext.significance(torch.from_numpy(x), torch.from_numpy(y), surrogates=S, seed=0)
    diag = torch.diagonal(res.p_value)
    assert torch.all(diag == 1.0 / (1 + S))
    assert torch.all(torch.diagonal(res.effective) > 0.5)


def test_independent_series_give_uniform_p_values():
    sps = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(2024)
    x = random_series(rng, 500, 20)
    y = random_series(rng, 500, 20)
    S = 99
    res = te_ext.significance(torch.from_numpy(x), torch.from_numpy(y), surrogates=S, seed=11)
    p = res.p_value.flatten().numpy()
    # p takes the values m / (S + 1), m = 1..S+1; jitter within a step makes it continuous.
    u = p - np.random.default_rng(0).random(p.size) / (S + 1)
    assert sps.kstest(u, "uniform").pvalue > 0.01
    assert abs(np.mean(p <= 0.05) - 0.05) < 0.03


def test_p_values_bit_identical_across_thread_counts(rng):
    x = random_series(rng, 700, 40)
    y = coupled_series(rng, x, 30, noise=0.4)
    xs, ys = torch.from_numpy(x), torch.from_numpy(y)
    before = torch.get_num_threads()
    out = {}
    try:
        for n in (1, 2):
            torch.set_num_threads(n)
            out[n] = [te_ext.significance(xs, ys, surrogates=15, k=k, l=l, seed=5)
                      for k, l in ((1, 1), (2, 2), (6, 3))]
    finally:
        torch.set_num_threads(before)
    for a, b in zip(out[1], out[2]):
        for name in ("te", "p_value", "surrogate_mean", "surrogate_std", "effective"):
            assert torch.equal(getattr(a, name), getattr(b, name)), name


def test_seed_changes_surrogates_and_repeats(rng):
    x = random_series(rng, 300, 4)
    y = random_series(rng, 300, 4)
    xs, ys = torch.from_numpy(x), torch.from_numpy(y)
    a = te_ext.significance(xs, ys, surrogates=30, seed=1)
    b = te_ext.significance(xs, ys, surrogates=30, seed=1)
    c = te_ext.significance(xs, ys, surrogates=30, seed=2)
    assert torch.equal(a.surrogate_mean, b.surrogate_mean)
    assert not torch.equal(a.surrogate_mean, c.surrogate_mean)


def test_threshold_and_strided_input(rng):
    xf = torch.from_numpy(rng.standard_normal((3, 120, 6)))
    yf = torch.from_numpy(rng.standard_normal((3, 120, 5)))
    a = te_ext.significance(xf.transpose(1, 2).contiguous().transpose(1, 2), yf, surrogates=5, threshold=0.1, k=2)
    b = te_ext.significance((xf > 0.1), (yf > 0.1).contiguous(), surrogates=5, k=2)
    assert torch.equal(a.p_value, b.p_value) and torch.equal(a.te, b.te)


# ---- bad input ---------------------------------------------------------------------------

def _xy():
    g = torch.Generator().manual_seed(0)
    return (torch.rand(50, 3, generator=g) > 0.5), (torch.rand(50, 2, generator=g) > 0.5)


@pytest.mark.parametrize("kwargs,exc,match", [
    (dict(surrogates=0), ValueError, "surrogates must be >= 1"),
    (dict(surrogates=-3), ValueError, "surrogates must be >= 1"),
    (dict(surrogates=2.0), TypeError, "surrogates must be an int"),
    (dict(surrogates=True), TypeError, "surrogates must be an int"),
    (dict(seed=-1), ValueError, "seed must be >= 0"),
    (dict(k=0), ValueError, "k must be >= 1"),
    (dict(delay=0), ValueError, "delay must be >= 1"),
    (dict(pairs=torch.tensor([[3, 0]])), ValueError, r"pairs\[:, 0\] \(source index\)"),
    (dict(pairs=torch.tensor([[0, 2]])), ValueError, r"pairs\[:, 1\] \(target index\)"),
    (dict(pairs=torch.tensor([[0, -1]])), ValueError, r"pairs\[:, 1\]"),
    (dict(pairs=torch.tensor([0, 1])), ValueError, r"pairs must have shape \[P, 2\]"),
    (dict(pairs=torch.tensor([[0.0, 1.0]])), TypeError, "pairs must be int64"),
])
def test_significance_bad_arguments(kwargs, exc, match):
    x, y = _xy()
    with pytest.raises(exc, match=match):
        te_ext.significance(x, y, **{"surrogates": 3, **kwargs})


def test_significance_bad_series():
    x, y = _xy()
    with pytest.raises(ValueError, match="series too short"):
        te_ext.significance(x[:2], y[:2], surrogates=3, k=2)
    with pytest.raises(ValueError, match="same length T"):
        te_ext.significance(x, y[:40], surrogates=3)
    with pytest.raises(ValueError, match=r"\[T, neurons\]"):
        te_ext.significance(x[0], y[0], surrogates=3)
    with pytest.raises(ValueError, match="contains the value 2"):
        te_ext.significance(x.long() * 2, y, surrogates=3)
    with pytest.raises(ValueError, match="contains NaN"):
        te_ext.significance(torch.full((50, 3), float("nan")), y.double(), surrogates=3,
                            threshold=0.5)
    with pytest.raises(TypeError, match="must be Tensors"):
        te_ext.significance(x.numpy(), y, surrogates=3)


def test_op_rejects_bad_permutations():
    x, y = _xy()
    op = torch.ops.te.transfer_entropy_surrogates
    n = 49
    with pytest.raises(ValueError, match=r"permutations\[1\] is not a permutation"):
        op(x, y, torch.stack([torch.arange(n), torch.zeros(n, dtype=torch.int64)]))
    with pytest.raises(ValueError, match=r"permutations\[0\] is not a permutation"):
        op(x, y, (torch.arange(n) + 1).unsqueeze(0))
    with pytest.raises(ValueError, match="n_obs = R \\* \\(T - n0\\) = 49"):
        op(x, y, torch.arange(n + 1).unsqueeze(0))
    with pytest.raises(ValueError, match="surrogates >= 1"):
        op(x, y, torch.empty(0, n, dtype=torch.int64))
    with pytest.raises(TypeError, match="permutations must be int64"):
        op(x, y, torch.arange(n, dtype=torch.int32).unsqueeze(0))


def test_empty_pairs(rng):
    x, y = _xy()
    res = te_ext.significance(x, y, surrogates=3, pairs=torch.empty(0, 2, dtype=torch.int64))
    assert res.te.shape == (0,) and res.p_value.shape == (0,)


def test_opcheck_surrogates(rng):
    x, y = _xy()
    perm = te_ext.surrogate_permutations(49, 3, seed=0)
    torch.library.opcheck(torch.ops.te.transfer_entropy_surrogates.default, (x, y, perm), {})
    torch.library.opcheck(torch.ops.te.transfer_entropy_surrogates.default,
                          (x.double(), y.double(), perm),
                          dict(threshold=0.5, pairs=torch.tensor([[0, 1], [2, 0]])))
    perm2 = te_ext.surrogate_permutations(3 * 47, 2, seed=0)
    xr, yr = x[:48].reshape(3, 16, 3), y[:48].reshape(3, 16, 2)
    torch.library.opcheck(torch.ops.te.transfer_entropy_surrogates.default, (xr, yr,
                          te_ext.surrogate_permutations(3 * 14, 2)), dict(k=2))
    del perm2


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
@pytest.mark.parametrize("k,l,delay", [(1, 1, 1), (2, 2, 2), (6, 3, 1)])
def test_cuda_matches_cpu(rng, k, l, delay):
    x = random_series(rng, 300, 70, 2)
    y = coupled_series(rng, x, 9, lag=delay, noise=0.3)
    xs, ys = torch.from_numpy(x), torch.from_numpy(y)
    pairs = torch.tensor([[0, 0], [69, 8], [3, 3]])
    for pr in (None, pairs):
        a = te_ext.significance(xs, ys, surrogates=12, k=k, l=l, delay=delay, seed=3, pairs=pr)
        b = te_ext.significance(xs.cuda(), ys.cuda(), surrogates=12, k=k, l=l, delay=delay, seed=3,
                                pairs=None if pr is None else pr.cuda())
        # TE and the surrogates first: if these agree, a p-value mismatch is a tie decided
        # differently (csrc/stats_math.h kTieTolerance), not a different permutation.
        torch.testing.assert_close(a.te, b.te.cpu(), rtol=0, atol=1e-12)
        torch.testing.assert_close(a.surrogate_mean, b.surrogate_mean.cpu(), rtol=0, atol=1e-12)
        torch.testing.assert_close(a.surrogate_std, b.surrogate_std.cpu(), rtol=0, atol=1e-12)
        differ = (a.p_value != b.p_value.cpu()).nonzero().tolist()
        assert not differ, [(q, a.te[tuple(q)].item(), a.p_value[tuple(q)].item(),
                             b.p_value[tuple(q)].item()) for q in differ[:5]]


def test_huge_permutation_requests_are_refused_by_name():
    with pytest.raises(ValueError, match="surrogate_permutations: 1099511627776 permutations"):
        te_ext.surrogate_permutations(2**40, 2**40)
    with pytest.raises(ValueError, match="surrogate_permutations: .*more than"):
        te_ext.surrogate_permutations(2**36, 2)  # fits int64, not the host's memory
    # significance on a huge (meta) series: refused before drawing a 64 GB permutation
    x = torch.empty(2**33, 2, dtype=torch.bool, device="meta")
    with pytest.raises(ValueError, match="te.transfer_entropy_surrogates: .*permutations"):
        te_ext.significance(x, x, surrogates=3)
