"""The ops against the independent numpy reference (tests/reference.py).

Counts must be exactly equal; TE within 1e-12 bits (the kernels sum c*log2(c)
terms, the reference sums p*log2(ratio), so the last bits may differ).
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch

import te_ext
from reference import (coupled_series, first_observation, joint_counts_ref, random_series,
                       te_from_counts_ref)

TOL = 1e-12
HISTORIES = list(itertools.product((1, 2, 3), repeat=3))  # (k, l, delay)
LARGE_STATE = [(6, 1), (1, 6), (4, 4), (7, 1), (2, 5)]  # around the one-hot/histogram switch


def _t(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(a))


def assert_ops_match_reference(x: np.ndarray, y: np.ndarray, k: int, l: int, delay: int,
                               xt: torch.Tensor | None = None, yt: torch.Tensor | None = None,
                               threshold: float | None = None) -> None:
    """All four ops on (xt, yt) (default: x, y as tensors) against the reference on x, y."""
    xt = _t(x) if xt is None else xt
    yt = _t(y) if yt is None else yt
    kw = dict(k=k, l=l, delay=delay, threshold=threshold)
    counts_ref = joint_counts_ref(x, y, k, l, delay)
    te_ref = te_from_counts_ref(counts_ref, k, l)

    counts = te_ext.joint_counts(xt, yt, **kw)
    assert counts.dtype == torch.int64
    np.testing.assert_array_equal(counts.numpy(), counts_ref)

    te = te_ext.transfer_entropy(xt, yt, **kw)
    assert te.dtype == torch.float64 and te.shape == counts_ref.shape[:2]
    np.testing.assert_allclose(te.numpy(), te_ref, rtol=0, atol=TOL)
    # The fused op and the two-step route reduce the same integers the same way.
    assert torch.equal(te_ext.te_from_counts(counts, k, l), te)

    I, J = counts_ref.shape[:2]
    pairs = torch.tensor([(i, j) for i in range(I) for j in range(J)], dtype=torch.int64)
    te_pairs = te_ext.transfer_entropy_pairs(xt, yt, pairs, **kw)
    assert torch.equal(te_pairs, te[pairs[:, 0], pairs[:, 1]])


def test_reference_matches_brute_force(rng):
    """The vectorised reference equals a literal loop over the definition."""
    k, l, delay = 2, 2, 3
    x = random_series(rng, 20, 2, R=3).astype(np.int64)
    y = random_series(rng, 20, 3, R=3).astype(np.int64)
    R, T = x.shape[:2]
    n0 = first_observation(k, l, delay)
    expected = np.zeros((2, 3, 2 ** (k + l + 1)), dtype=np.int64)
    for r in range(R):
        for i in range(2):
            for j in range(3):
                for n in range(n0, T):
                    yp = sum(int(y[r, n - 1 - m, j]) * 2**m for m in range(k))
                    xp = sum(int(x[r, n - delay - m, i]) * 2**m for m in range(l))
                    expected[i, j, (int(y[r, n, j]) << (k + l)) | (yp << l) | xp] += 1
    np.testing.assert_array_equal(joint_counts_ref(x, y, k, l, delay), expected)

    # TE of one pair, as H(ynext | ypast) - H(ynext | ypast, xpast) from plug-in entropies.
    c = expected[1, 2].reshape(2, 2**k, 2**l).astype(float)

    def cond_entropy(joint: np.ndarray) -> float:  # H(first axis | the others)
        nz = joint > 0
        cond = np.broadcast_to(joint.sum(axis=0, keepdims=True), joint.shape)
        return float(-(joint[nz] / joint.sum() * np.log2(joint[nz] / cond[nz])).sum())

    te = cond_entropy(c.sum(axis=2)) - cond_entropy(c)
    assert math.isclose(te_from_counts_ref(expected[1, 2], k, l), te, abs_tol=1e-14)


@pytest.mark.parametrize("k,l,delay", HISTORIES)
@pytest.mark.parametrize("kind", ["random", "coupled"])
def test_every_history_matches_reference(rng, k, l, delay, kind):
    n0 = first_observation(k, l, delay)
    # The shortest legal T, word boundaries (64), and a longer run.
    for T in (n0 + 1, n0 + 2, 64, 65, 64 + n0, 300):
        x = random_series(rng, T, 3)
        y = random_series(rng, T, 2) if kind == "random" else coupled_series(rng, x, 2, lag=delay)
        assert_ops_match_reference(x, y, k, l, delay)


@pytest.mark.parametrize("k,l,delay", HISTORIES)
def test_replicates_match_reference(rng, k, l, delay):
    n0 = first_observation(k, l, delay)
    for T in (n0 + 1, 70, 129):
        x = random_series(rng, T, 2, R=3)
        y = coupled_series(rng, x, 3, lag=delay, noise=0.2)
        assert_ops_match_reference(x, y, k, l, delay)


def test_replicates_restart_history(rng):
    """Pooling R replicates equals summing the counts of each replicate alone."""
    x = random_series(rng, 50, 3, R=4)
    y = coupled_series(rng, x, 2)
    pooled = te_ext.joint_counts(_t(x), _t(y), k=2, l=2, delay=2)
    separate = sum(te_ext.joint_counts(_t(x[r]), _t(y[r]), k=2, l=2, delay=2) for r in range(4))
    assert torch.equal(pooled, separate)
    # ...which differs from concatenating the replicates into one long series.
    glued = te_ext.joint_counts(_t(x.reshape(200, 3)), _t(y.reshape(200, 2)), k=2, l=2, delay=2)
    assert not torch.equal(pooled, glued)


@pytest.mark.parametrize("k,l", LARGE_STATE)
@pytest.mark.parametrize("delay", [1, 3])
@pytest.mark.parametrize("R", [None, 2])
def test_large_state_spaces_match_reference(rng, k, l, delay, R):
    T = 257
    x = random_series(rng, T, 3, R=R)
    y = coupled_series(rng, x, 4, lag=delay, noise=0.25)
    assert_ops_match_reference(x, y, k, l, delay)


@pytest.mark.parametrize("k,l,delay", [(1, 1, 1), (2, 3, 2), (1, 6, 1)])
def test_pairs_match_all_pairs(rng, k, l, delay):
    x = random_series(rng, 200, 5)
    y = coupled_series(rng, x, 4, lag=delay)
    xt, yt = _t(x), _t(y)
    full = te_ext.transfer_entropy(xt, yt, k, l, delay)
    # Repeated pairs, reversed order, both corners.
    pairs = torch.tensor([[4, 3], [0, 0], [4, 3], [2, 1], [0, 3], [4, 0], [2, 1]])
    got = te_ext.transfer_entropy_pairs(xt, yt, pairs, k, l, delay)
    assert got.shape == (7,) and got.dtype == torch.float64
    assert torch.equal(got, full[pairs[:, 0], pairs[:, 1]])
    # A non-contiguous pairs tensor (every other row of a bigger one).
    wide = torch.stack([pairs, pairs.flip(0)], dim=1).reshape(-1, 2)[::2]
    assert not wide.is_contiguous()
    assert torch.equal(te_ext.transfer_entropy_pairs(xt, yt, wide, k, l, delay), got)
    empty = te_ext.transfer_entropy_pairs(xt, yt, torch.empty(0, 2, dtype=torch.int64), k, l, delay)
    assert empty.shape == (0,) and empty.dtype == torch.float64


def test_torch_ops_namespace_matches_python_functions(rng):
    x, y = _t(random_series(rng, 100, 3)), _t(random_series(rng, 100, 2))
    pairs = torch.tensor([[0, 1], [2, 0]])
    ops = torch.ops.te
    assert torch.equal(ops.joint_counts(x, y, 2, 1, 1, None), te_ext.joint_counts(x, y, k=2))
    assert torch.equal(ops.transfer_entropy(x, y), te_ext.transfer_entropy(x, y))
    assert torch.equal(ops.transfer_entropy_pairs(x, y, pairs, l=2),
                       te_ext.transfer_entropy_pairs(x, y, pairs, l=2))
    c = te_ext.joint_counts(x, y)
    assert torch.equal(ops.te_from_counts(c), te_ext.te_from_counts(c))


@pytest.mark.parametrize("dtype", [torch.bool, torch.uint8, torch.int8, torch.int32, torch.int64])
def test_binary_dtypes(rng, dtype):
    x = random_series(rng, 150, 3, R=2)
    y = coupled_series(rng, x, 2)
    assert_ops_match_reference(x, y, 2, 2, 1, xt=_t(x).to(dtype), yt=_t(y).to(dtype))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16, torch.int64])
def test_threshold_binarises_as_strictly_greater(rng, dtype):
    # Values on a grid that includes the threshold itself: equal means 0.
    threshold = 0.5 if dtype.is_floating_point else 2.0
    values = rng.integers(0, 5, size=(2, 120, 7))
    xf = values[..., :3] * (0.25 if dtype.is_floating_point else 1)
    yf = values[..., 3:] * (0.25 if dtype.is_floating_point else 1)
    x, y = xf > threshold, yf > threshold
    assert (xf == threshold).any() and x.any() and not x.all()
    assert_ops_match_reference(x, y, 1, 2, 2, xt=_t(xf).to(dtype), yt=_t(yf).to(dtype),
                               threshold=threshold)


def test_threshold_is_compared_in_double(rng):
    # 0.1 is not a float32: float32(0.1) > 0.1 in double, so those entries are 1.
    xf = np.where(random_series(rng, 100, 3), np.float32(0.1), np.float32(0.0))
    yf = rng.standard_normal((100, 2)).astype(np.float32)
    x = xf.astype(np.float64) > 0.1
    y = yf.astype(np.float64) > 0.1
    assert x.any()
    assert_ops_match_reference(x, y, 1, 1, 1, xt=_t(xf), yt=_t(yf), threshold=0.1)


def test_non_contiguous_inputs(rng):
    k, l, delay = 2, 1, 2
    big_x = random_series(rng, 301, 9)
    big_y = coupled_series(rng, big_x, 8, lag=2)
    xt, yt = _t(big_x), _t(big_y)
    views = {
        # Stored neuron-major, read time-major.
        "transposed": (xt.t().contiguous().t(), yt.t().contiguous().t(), big_x, big_y),
        "stepped": (xt[1::3, 1::2], yt[2::3, ::3], big_x[1::3, 1::2], big_y[2::3, ::3]),
        "offset column-major": (xt[:, [0, 4, 8]].t().contiguous().t()[5:], yt[5:, 2:7],
                                big_x[5:, [0, 4, 8]], big_y[5:, 2:7]),
        # Every neuron the same series: stride 0 along the neuron axis.
        "expanded": (xt[:, :1].expand(301, 4), yt[:, 3:4].expand(301, 3),
                     np.repeat(big_x[:, :1], 4, axis=1), np.repeat(big_y[:, 3:4], 3, axis=1)),
    }
    for name, (xv, yv, xn, yn) in views.items():
        assert xv.shape == xn.shape and yv.shape == yn.shape, name
        assert not (xv.is_contiguous() and yv.is_contiguous()), name
        assert_ops_match_reference(xn, yn, k, l, delay, xt=xv, yt=yv)
        assert torch.equal(te_ext.transfer_entropy(xv, yv, k, l, delay),
                           te_ext.transfer_entropy(xv.contiguous(), yv.contiguous(), k, l, delay))


def test_non_contiguous_replicates_and_floats(rng):
    # [T, R, n] storage permuted to [R, T, n], float with a threshold.
    xf = rng.standard_normal((90, 3, 4))
    yf = rng.standard_normal((90, 3, 2))
    xv = torch.from_numpy(xf).permute(1, 0, 2)
    yv = torch.from_numpy(yf).permute(1, 0, 2)
    assert not xv.is_contiguous()
    x = xf.transpose(1, 0, 2) > -0.2
    y = yf.transpose(1, 0, 2) > -0.2
    assert_ops_match_reference(x, y, 3, 2, 1, xt=xv, yt=yv, threshold=-0.2)


def test_te_from_counts_accepts_integer_dtypes_and_batch_shapes(rng):
    counts = rng.integers(0, 50, size=(2, 3, 4, 32))
    counts[0, 0, 0] = 0  # a pair with no observations gives 0
    ref = te_from_counts_ref(counts, 2, 2)
    assert ref[0, 0, 0] == 0
    for dtype in (torch.int64, torch.int32, torch.int16, torch.uint8):
        got = te_ext.te_from_counts(torch.from_numpy(counts).to(dtype), 2, 2)
        assert got.shape == (2, 3, 4) and got.dtype == torch.float64
        np.testing.assert_allclose(got.numpy(), ref, rtol=0, atol=TOL)
    # A non-contiguous view, and a single histogram (0-d result).
    view = torch.from_numpy(counts).transpose(0, 2)
    np.testing.assert_allclose(te_ext.te_from_counts(view, 2, 2).numpy(),
                               ref.transpose(2, 1, 0), rtol=0, atol=TOL)
    single = te_ext.te_from_counts(torch.from_numpy(counts[1, 2, 3]), 2, 2)
    assert single.shape == () and math.isclose(single.item(), ref[1, 2, 3], abs_tol=TOL)


def test_te_from_counts_large_totals(rng):
    # Totals past the size where a c*log2(c) table stops paying: the direct
    # logarithm path must agree with the reference too.
    counts = rng.integers(0, 2**40, size=(5, 8))
    counts[1] = rng.integers(0, 3, size=8)
    counts[2, ::2] = 0
    np.testing.assert_allclose(te_ext.te_from_counts(torch.from_numpy(counts)).numpy(),
                               te_from_counts_ref(counts), rtol=0, atol=TOL)


# --- CPU popcount kernels -----------------------------------------------------


@pytest.fixture
def restore_cpu_kernel():
    default = te_ext.build_info()["cpu_kernel"]
    yield
    te_ext._C._set_cpu_kernel(default)


def _kernels() -> list[str]:
    return te_ext.build_info()["cpu_kernels_available"].split(",")


def test_kernel_list_is_sane():
    info = te_ext.build_info()
    assert info["cpu_kernel"] in _kernels()
    assert "generic" in _kernels()


@pytest.mark.parametrize("T,R,k,l,delay", [
    (1000, None, 1, 1, 1),      # T not a multiple of 64
    (333, 3, 2, 3, 2),          # replicates, several streams
    (2 * 64 * 512 + 101, None, 1, 1, 1),  # past a 512-word chunk of the time axis
    (64 * 512 + 7, 2, 2, 2, 1),
])
def test_every_cpu_kernel_is_bit_identical(rng, restore_cpu_kernel, T, R, k, l, delay):
    x = random_series(rng, T, 5, R=R)
    y = coupled_series(rng, x, 7, lag=delay, noise=0.3)  # I, J not multiples of 4
    xt, yt = _t(x), _t(y)
    pairs = torch.tensor([[0, 0], [4, 6], [3, 2], [4, 6]])
    results = {}
    for name in _kernels():
        te_ext._C._set_cpu_kernel(name)
        assert te_ext.build_info()["cpu_kernel"] == name
        results[name] = (te_ext.joint_counts(xt, yt, k, l, delay),
                         te_ext.transfer_entropy(xt, yt, k, l, delay),
                         te_ext.transfer_entropy_pairs(xt, yt, pairs, k, l, delay))
    first, *rest = results.values()
    for name, got in zip(list(results)[1:], rest):
        for a, b in zip(first, got):
            assert torch.equal(a, b), name
    np.testing.assert_array_equal(first[0].numpy(), joint_counts_ref(x, y, k, l, delay))
