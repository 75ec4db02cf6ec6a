"""Properties that hold for every input, checked on hypothesis-generated series."""

from __future__ import annotations

import numpy as np
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import te_ext
from reference import joint_counts_ref, te_from_counts_ref

# derandomize: the same examples every run (fixed seeds), no example database.
SETTINGS = dict(deadline=None, derandomize=True, database=None)


@st.composite
def problems(draw, max_neurons: int = 6, max_T: int = 90):
    """(x, y, k, l, delay): bool series [T, n] or [R, T, n] long enough for the history."""
    k = draw(st.integers(1, 3))
    l = draw(st.integers(1, 3))
    delay = draw(st.integers(1, 3))
    n0 = max(k, l - 1 + delay)
    T = draw(st.integers(n0 + 1, max_T))
    R = draw(st.one_of(st.none(), st.integers(1, 3)))
    lead = () if R is None else (R,)
    I = draw(st.integers(1, max_neurons))
    J = draw(st.integers(1, max_neurons))
    x = draw(hnp.arrays(np.bool_, lead + (T, I)))
    y = draw(hnp.arrays(np.bool_, lead + (T, J)))
    return x, y, k, l, delay


@settings(max_examples=150, **SETTINGS)
@given(problems())
def test_te_is_between_zero_and_one_bit(problem):
    # ynext is one bit, so TE <= H(ynext | ypast) <= 1 whatever k and l are.
    x, y, k, l, delay = problem
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    te = te_ext.transfer_entropy(xt, yt, k, l, delay)
    from_counts = te_ext.te_from_counts(te_ext.joint_counts(xt, yt, k, l, delay), k, l)
    for t in (te, from_counts):
        assert torch.isfinite(t).all()
        assert (t >= 0).all() and (t <= 1 + 1e-12).all(), t


@settings(max_examples=150, **SETTINGS)
@given(problems())
def test_counts_of_each_pair_sum_to_the_observations(problem):
    x, y, k, l, delay = problem
    counts = te_ext.joint_counts(torch.from_numpy(x), torch.from_numpy(y), k, l, delay)
    R = 1 if x.ndim == 2 else x.shape[0]
    T = x.shape[-2]
    n0 = max(k, l - 1 + delay)
    assert counts.shape == (x.shape[-1], y.shape[-1], 2 ** (k + l + 1))
    assert (counts >= 0).all()
    assert (counts.sum(-1) == R * (T - n0)).all()


@settings(max_examples=80, **SETTINGS)
@given(problems(), st.data())
def test_counts_follow_a_consistent_permutation_of_neurons(problem, data):
    x, y, k, l, delay = problem
    pi = np.array(data.draw(st.permutations(range(x.shape[-1]))), dtype=np.int64)
    pj = np.array(data.draw(st.permutations(range(y.shape[-1]))), dtype=np.int64)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    counts = te_ext.joint_counts(xt, yt, k, l, delay)
    permuted = te_ext.joint_counts(xt[..., pi], yt[..., pj], k, l, delay)
    assert torch.equal(permuted, counts[pi][:, pj])
    te = te_ext.transfer_entropy(xt, yt, k, l, delay)
    assert torch.equal(te_ext.transfer_entropy(xt[..., pi], yt[..., pj], k, l, delay),
                       te[pi][:, pj])


@settings(max_examples=80, **SETTINGS)
@given(problems())
def test_replicates_pool_as_a_sum_of_counts(problem):
    x, y, k, l, delay = problem
    if x.ndim == 2:
        x, y = x[None], y[None]
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    pooled = te_ext.joint_counts(xt, yt, k, l, delay)
    summed = sum(te_ext.joint_counts(xt[r], yt[r], k, l, delay) for r in range(x.shape[0]))
    assert torch.equal(pooled, summed)
    assert torch.equal(te_ext.transfer_entropy(xt, yt, k, l, delay),
                       te_ext.te_from_counts(summed, k, l))


@settings(max_examples=40, **SETTINGS)
@given(problems(max_neurons=80, max_T=150), st.integers(0, 2**31))
def test_thread_count_does_not_change_results(problem, seed):
    # Up to 80 neurons so that the pair tiles (64 sources or 24 targets at
    # k = l = 1) split across threads; pairs in blocks of 16 likewise.
    x, y, k, l, delay = problem
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    g = np.random.default_rng(seed)
    pairs = torch.from_numpy(np.stack([g.integers(0, x.shape[-1], 50),
                                       g.integers(0, y.shape[-1], 50)], axis=1))
    results = []
    before = torch.get_num_threads()
    try:
        for threads in (1, 2):
            torch.set_num_threads(threads)
            counts = te_ext.joint_counts(xt, yt, k, l, delay)
            results.append((counts,
                            te_ext.transfer_entropy(xt, yt, k, l, delay),
                            te_ext.transfer_entropy_pairs(xt, yt, pairs, k, l, delay),
                            te_ext.te_from_counts(counts, k, l)))
    finally:
        torch.set_num_threads(before)
    for a, b in zip(*results):
        assert torch.equal(a, b)


@settings(max_examples=100, **SETTINGS)
@given(problems())
def test_matches_reference(problem):
    x, y, k, l, delay = problem
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    counts_ref = joint_counts_ref(x, y, k, l, delay)
    np.testing.assert_array_equal(te_ext.joint_counts(xt, yt, k, l, delay).numpy(), counts_ref)
    np.testing.assert_allclose(te_ext.transfer_entropy(xt, yt, k, l, delay).numpy(),
                               te_from_counts_ref(counts_ref, k, l), rtol=0, atol=1e-12)
