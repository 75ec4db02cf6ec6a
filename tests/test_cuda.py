"""The ops on each device against the CPU op and the numpy reference.

Parametrised over ``device`` (conftest): the CUDA cases skip with "no CUDA
device" where there is none. On the CPU they compare against the reference,
on CUDA against both the CPU op (counts exactly, TE to 1e-12) and the reference.
"""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch

import te_ext
from reference import coupled_series, joint_counts_ref, random_series, te_from_counts_ref

TOL = 1e-12
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
CUDA_ONLY = [pytest.param("cuda", marks=needs_cuda)]


def _case(seed: int, T: int, I: int, J: int, R: int | None = None, lag: int = 1):
    rng = np.random.default_rng(seed)
    x = random_series(rng, T, I, R=R)
    return x, coupled_series(rng, x, J, lag=lag, noise=0.2)


def check_on_device(device: str, x: np.ndarray, y: np.ndarray, k: int, l: int, delay: int,
                    xt: torch.Tensor | None = None, yt: torch.Tensor | None = None,
                    threshold=None, reference: bool = True) -> None:
    """All four ops on `device` equal the CPU ops (and the reference on x, y)."""
    xc = torch.from_numpy(x) if xt is None else xt
    yc = torch.from_numpy(y) if yt is None else yt
    xd, yd = xc.to(device), yc.to(device)
    if xt is not None:  # keep the caller's layout on the device too
        xd = torch.empty_strided(xt.shape, xt.stride(), dtype=xt.dtype, device=device)
        xd.copy_(xt)
        yd = torch.empty_strided(yt.shape, yt.stride(), dtype=yt.dtype, device=device)
        yd.copy_(yt)
    kw = dict(k=k, l=l, delay=delay, threshold=threshold)
    I, J = xc.shape[-1], yc.shape[-1]
    g = torch.Generator().manual_seed(0)
    pairs = torch.stack([torch.randint(0, I, (37,), generator=g),
                         torch.randint(0, J, (37,), generator=g)], dim=1)

    counts = te_ext.joint_counts(xd, yd, **kw)
    te = te_ext.transfer_entropy(xd, yd, **kw)
    te_pairs = te_ext.transfer_entropy_pairs(xd, yd, pairs.to(device), **kw)
    te_counts = te_ext.te_from_counts(counts, k, l)
    for t in (counts, te, te_pairs, te_counts):
        assert t.device.type == device
    assert counts.dtype == torch.int64 and te.dtype == torch.float64

    cpu_counts = te_ext.joint_counts(xc, yc, **kw)
    cpu_te = te_ext.transfer_entropy(xc, yc, **kw)
    assert torch.equal(counts.cpu(), cpu_counts)
    torch.testing.assert_close(te.cpu(), cpu_te, rtol=0, atol=TOL)
    torch.testing.assert_close(te_pairs.cpu(), cpu_te[pairs[:, 0], pairs[:, 1]], rtol=0, atol=TOL)
    torch.testing.assert_close(te_counts.cpu(), cpu_te, rtol=0, atol=TOL)
    if reference:
        counts_ref = joint_counts_ref(x, y, k, l, delay)
        np.testing.assert_array_equal(counts.cpu().numpy(), counts_ref)
        np.testing.assert_allclose(te.cpu().numpy(), te_from_counts_ref(counts_ref, k, l),
                                   rtol=0, atol=TOL)


@pytest.mark.parametrize("k,l,delay", [(1, 1, 1), (2, 1, 1), (1, 2, 2), (3, 3, 3), (2, 3, 1)])
@pytest.mark.parametrize("R", [None, 3])
def test_one_hot_path(device, k, l, delay, R):
    x, y = _case(1, 300, 5, 7, R=R, lag=delay)
    check_on_device(device, x, y, k, l, delay)


@pytest.mark.parametrize("k,l", [(1, 6), (4, 4), (7, 1), (6, 1)])
@pytest.mark.parametrize("R", [None, 2])
def test_histogram_path(device, k, l, R):
    x, y = _case(2, 400, 4, 3, R=R)
    check_on_device(device, x, y, k, l, 2)


@pytest.mark.parametrize("T", [8, 63, 64, 65, 4096 + 17])
def test_word_boundaries(device, T):
    x, y = _case(3, T, 3, 6)
    check_on_device(device, x, y, 2, 2, 1)


@pytest.mark.parametrize("device", CUDA_ONLY)
@pytest.mark.parametrize("k,l,R", [(1, 1, None), (2, 1, None), (1, 1, 2)])
def test_gemm_path(device, k, l, R):
    # One-hot rows: I (2^l - 1) and J (2^(k+1) - 1), both >= 512 with T >= 4096,
    # which is where the CUDA code switches to the int8 GEMM.
    x, y = _case(4, 4096, 512, 256, R=R)
    check_on_device(device, x, y, k, l, 1, reference=False)


def test_non_contiguous(device):
    x, y = _case(5, 500, 9, 8)
    xt = torch.from_numpy(x).t().contiguous().t()[3::2, 1::3]  # column-major, stepped
    yt = torch.from_numpy(y)[2::2, ::2]
    assert not xt.is_contiguous() and not yt.is_contiguous()
    check_on_device(device, x[3::2, 1::3], y[2::2, ::2], 2, 1, 1, xt=xt, yt=yt)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16])
def test_thresholded_floats(device, dtype):
    g = torch.Generator().manual_seed(6)
    xf = torch.randn(2, 300, 4, generator=g).to(dtype)
    yf = (torch.roll(xf.double(), 1, 1)[..., :3] + torch.randn(2, 300, 3, generator=g)).to(dtype)
    thr = 0.25
    x = (xf.double() > thr).numpy()
    y = (yf.double() > thr).numpy()
    check_on_device(device, x, y, 2, 2, 1, xt=xf, yt=yf, threshold=thr)


def test_te_from_counts(device):
    rng = np.random.default_rng(7)
    counts = rng.integers(0, 1000, size=(3, 5, 32))
    counts[0, 0] = 0
    counts[1, 1] = 0
    counts[1, 1, 3] = 9
    ct = torch.from_numpy(counts)
    got = te_ext.te_from_counts(ct.to(device), 2, 2)
    assert got.device.type == device and got.dtype == torch.float64
    torch.testing.assert_close(got.cpu(), te_ext.te_from_counts(ct, 2, 2), rtol=0, atol=TOL)
    np.testing.assert_allclose(got.cpu().numpy(), te_from_counts_ref(counts, 2, 2),
                               rtol=0, atol=TOL)
    assert got[0, 0].item() == 0.0 and got[1, 1].item() == 0.0
    assert te_ext.te_from_counts(torch.zeros(0, 8, dtype=torch.int64, device=device)).shape == (0,)


def _error(fn):
    """(exception class, message) that fn raises."""
    with pytest.raises(Exception) as info:
        fn()
    return info.type, str(info.value).split("\n")[0]


# What each case of test_errors_match_cpu must raise (class, message pattern).
EXPECTED_ERRORS = [
    (ValueError, r"te\.transfer_entropy: source contains NaN"),
    (ValueError, r"te\.joint_counts: source contains NaN"),
    (ValueError, r"te\.transfer_entropy: source contains the value 2"),
    (ValueError, r"te\.joint_counts: target contains the value 2"),
    (ValueError, r"pairs\[:, 0\] \(source index\) must be in \[0, 3\), found values in \[0, 3\]"),
    (ValueError, r"pairs\[:, 1\] \(target index\) must be in \[0, 2\), found values in \[-1, -1\]"),
    (TypeError, r"source has dtype Float but threshold is None"),
    (ValueError, r"series too short for k, l, delay: T = 1"),
    (ValueError, r"counts must be non-negative, found -3"),
    (ValueError, r"counts' last dimension must be 2\^\(k\+l\+1\) = 8 for k=1, l=1, got 7"),
]


def test_errors_match_cpu(device):
    """Each bad input raises its documented error on `device`; off the CPU, word for word
    what the CPU raises. (On the CPU alone, the patterns are what is checked.)"""
    def on(dev):
        x = torch.rand(60, 3, generator=torch.Generator().manual_seed(8)).to(dev)
        y = torch.rand(60, 2, generator=torch.Generator().manual_seed(9)).to(dev)
        nan = x.clone()
        nan[33, 1] = float("nan")
        two = (x > 0.5).to(torch.uint8)
        two[59, 1] = 2
        ok = (y > 0.5)
        pairs = torch.tensor([[0, 0], [3, 1]], device=dev)
        neg = torch.tensor([[0, -1]], device=dev)
        counts = torch.ones(2, 8, dtype=torch.int64, device=dev)
        counts[1, 4] = -3
        return [
            lambda: te_ext.transfer_entropy(nan, y, threshold=0.5),
            lambda: te_ext.joint_counts(nan, y, threshold=0.5),
            lambda: te_ext.transfer_entropy(two, ok),
            lambda: te_ext.joint_counts(ok.T.contiguous().T, two[:, :2]),
            lambda: te_ext.transfer_entropy_pairs(x > 0.5, ok, pairs),
            lambda: te_ext.transfer_entropy_pairs(x > 0.5, ok, neg),
            lambda: te_ext.transfer_entropy(x, y),
            lambda: te_ext.transfer_entropy(x[:1] > 0.5, ok[:1]),
            lambda: te_ext.te_from_counts(counts),
            lambda: te_ext.te_from_counts(counts[:, :7]),
        ]

    cases = list(zip(on("cpu"), on(device), EXPECTED_ERRORS))
    assert len(cases) == len(EXPECTED_ERRORS)
    for i, (cpu_fn, dev_fn, (want_cls, pattern)) in enumerate(cases):
        cls, msg = _error(dev_fn)
        assert cls is want_cls, (i, cls, msg)
        assert re.search(pattern, msg), (i, msg, pattern)
        if device != "cpu":
            assert (cls, msg) == _error(cpu_fn), i
