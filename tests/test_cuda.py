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


@needs_cuda
def test_mixed_devices_are_rejected():
    x = torch.rand(60, 3) > 0.5
    y = torch.rand(60, 2) > 0.5
    for op in (te_ext.joint_counts, te_ext.transfer_entropy):
        with pytest.raises(ValueError, match=r"source and target must be on the same device"):
            op(x.cuda(), y)
        with pytest.raises(ValueError, match=r"source and target must be on the same device"):
            op(x, y.cuda())
    with pytest.raises(ValueError, match=r"pairs must be on cuda"):
        te_ext.transfer_entropy_pairs(x.cuda(), y.cuda(), torch.zeros(1, 2, dtype=torch.int64))
    with pytest.raises(ValueError, match=r"pairs must be on cpu"):
        te_ext.transfer_entropy_pairs(x, y, torch.zeros(1, 2, dtype=torch.int64, device="cuda"))


@needs_cuda
@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs two CUDA devices")
def test_second_cuda_device():
    x, y = _case(10, 300, 4, 5)
    check_on_device("cuda:1", x, y, 2, 1, 1)


@pytest.mark.parametrize("device", CUDA_ONLY)
def test_opcheck_cuda(device):
    x, y = _case(11, 120, 3, 4, R=2)
    xt, yt = torch.from_numpy(x).to(device), torch.from_numpy(y).to(device)
    xf = torch.randn(120, 3, device=device)
    yf = torch.randn(120, 2, device=device)
    pairs = torch.tensor([[0, 1], [2, 3], [0, 1]], device=device)
    ops = torch.ops.te
    cases = [
        (ops.joint_counts.default, (xt, yt), dict(k=2)),
        (ops.joint_counts.default, (xt, yt), dict(k=1, l=6)),
        (ops.joint_counts.default, (xf, yf), dict(threshold=0.0)),
        (ops.transfer_entropy.default, (xt, yt), dict(l=2, delay=2)),
        (ops.transfer_entropy.default, (xf, yf), dict(threshold=0.0)),
        (ops.transfer_entropy_pairs.default, (xt, yt, pairs), {}),
        (ops.te_from_counts.default, (te_ext.joint_counts(xt, yt),), {}),
        (ops.sorted_local_te.default, (te_ext.joint_counts(xt, yt, k=2),), dict(k=2)),
        (ops.transfer_entropy_delays_signed.default, (xt, yt, [1, 3]), dict(k=2)),
    ]
    for op, args, kwargs in cases:
        torch.library.opcheck(op, args, kwargs)


# ---- issue 10: the CUDA window step, sync-free training, launch geometry --------------------

def test_pairs_empty(device):
    # k=8 takes the histogram path, whose CUDA kernel once launched zero blocks for P = 0.
    x, y = _case(12, 200, 3, 2)
    xd, yd = torch.from_numpy(x).to(device), torch.from_numpy(y).to(device)
    pairs = torch.zeros(0, 2, dtype=torch.int64, device=device)
    for k, l in ((1, 1), (8, 1), (1, 6)):
        got = te_ext.transfer_entropy_pairs(xd, yd, pairs, k=k, l=l)
        assert got.shape == (0,) and got.dtype == torch.float64 and got.device.type == device


def _window_pair(device, I, J, W, k, l, delay, deferred):
    from te_ext import StreamingJointCounts

    cpu = StreamingJointCounts(I, J, W, k=k, l=l, delay=delay)
    dev = StreamingJointCounts(I, J, W, k=k, l=l, delay=delay, device=device)
    dev._deferred = deferred
    return cpu, dev


@pytest.mark.parametrize("device", CUDA_ONLY)
@pytest.mark.parametrize("deferred", [False, True])
@pytest.mark.parametrize("seed", range(6))
def test_window_kernel_equals_cpu(device, deferred, seed):
    import random

    rnd = random.Random(300 + seed)
    k, l, delay = rnd.randint(1, 3), rnd.randint(1, 3), rnd.randint(1, 2)
    W = rnd.randint(max(k, l - 1 + delay) + 1, 70)
    I, J = rnd.randint(1, 150), rnd.randint(1, 17)
    cpu, dev = _window_pair(device, I, J, W, k, l, delay, deferred)
    g = torch.Generator().manual_seed(seed)
    dtypes = [torch.float32, torch.float16, torch.bfloat16, torch.float64]
    for _ in range(14):
        b = rnd.choice([1, 2, 5, 31, W - 1 or 1, W, W + 9])
        s = torch.randn(b, I, generator=g).to(rnd.choice(dtypes))
        t = torch.rand(b, J, generator=g)
        if rnd.random() < 0.3:
            s = s.t().contiguous().t()  # column-major: any strides are read in place
        thr_s = rnd.choice([0.0, 0.1, 0.3])
        cpu.append(s, t > 0.5, thr_s, None)
        dev.append(s.to(device), (t > 0.5).to(device), thr_s, None)
        assert torch.equal(cpu.counts, dev.counts.cpu()), (seed, cpu.seen)
        assert torch.equal(cpu.source_ring, dev.source_ring.cpu())
        assert torch.equal(cpu.target_ring, dev.target_ring.cpu())
    dev.check()
    if deferred:
        assert int(dev.status[0]) == cpu.seen


@pytest.mark.parametrize("device", CUDA_ONLY)
def test_window_kernel_bad_values(device):
    from te_ext import StreamingJointCounts

    for deferred in (False, True):
        w = StreamingJointCounts(4, 3, 10, device=device)
        w._deferred = deferred
        nan = torch.randn(5, 4, device=device)
        nan[3, 1] = float("nan")
        if not deferred:  # the op raises before it changes anything (one sync, not training)
            with pytest.raises(ValueError, match="source contains NaN; with source_threshold=0"):
                w.append(nan, torch.rand(5, 3, device=device), 0.0, 0.5)
            assert w.seen == 0 and int(w.counts.abs().sum()) == 0
            two = torch.ones(5, 3, dtype=torch.int64, device=device) * 2
            with pytest.raises(ValueError, match="target contains the value 2 but target_threshold is None"):
                w.append(torch.randn(5, 4, device=device), two, 0.0, None)
            continue
        w.append(nan, torch.rand(5, 3, device=device), 0.0, 0.5)  # recorded, no sync
        te = torch.ops.te._te_from_window_counts(w.counts, w.status, 1, 1)
        assert bool(te.isnan().all())
        with pytest.raises(ValueError, match="source contains NaN; with source_threshold=0"):
            w.check()
        torch.cuda.synchronize()
        w.poll()  # starts the copy
        torch.cuda.synchronize()
        with pytest.raises(ValueError, match="source contains NaN"):
            w.poll()  # the copy has landed: raises


@pytest.mark.parametrize("device", CUDA_ONLY)
def test_te_from_window_counts_cuda(device):
    g = torch.Generator().manual_seed(13)
    counts = torch.randint(0, 400, (9, 4, 16), generator=g)
    status = torch.zeros(8, dtype=torch.int64)
    got = torch.ops.te._te_from_window_counts(counts.to(device), status.to(device), 2, 1)
    torch.testing.assert_close(got.cpu(), te_ext.te_from_counts(counts, 2, 1), rtol=0, atol=TOL)


@pytest.mark.parametrize("device", CUDA_ONLY)
def test_cross_count_grid_beyond_65535_tiles(device):
    # 4.2M source neurons: 65,625 tiles of 64 rows, past the grid's y limit of 65,535.
    g = torch.Generator().manual_seed(14)
    I = 65_625 * 64
    x = torch.rand(70, I, generator=g) < 0.5
    y = torch.rand(70, 1, generator=g) < 0.5
    counts = te_ext.joint_counts(x.to(device), y.to(device))
    assert counts.shape == (I, 1, 8)
    assert bool((counts.sum(-1) == 69).all())
    idx = torch.cat([torch.arange(64), torch.arange(I - 4096, I), torch.randint(0, I, (512,), generator=g)])
    assert torch.equal(counts[idx.to(device)].cpu(), te_ext.joint_counts(x[:, idx], y))


def _training_setup(rule="paper", every=1, pair_fraction=1.0, seed=0):
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(20, 48), torch.nn.ReLU(),
                                torch.nn.Linear(48, 10)).cuda()
    fb = te_ext.TEFeedback(model[2], window=96, every=every, target_transform="softmax",
                           rule=rule, pair_fraction=pair_fraction)
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    return model, fb, opt


def _train_step(model, opt, x, y):
    opt.zero_grad(set_to_none=True)
    torch.nn.functional.cross_entropy(model(x), y).backward()
    opt.step()


@needs_cuda
@pytest.mark.parametrize("rule,every", [("paper", 1), ("paper", 3), ("authors_code", 1)])
def test_feedback_training_step_never_syncs(rule, every):
    model, fb, opt = _training_setup(rule, every)
    g = torch.Generator(device="cuda").manual_seed(1)
    x = torch.randn(32, 20, device="cuda", generator=g)
    y = torch.randint(0, 10, (32,), device="cuda", generator=g)
    for _ in range(5):  # fill the window (96 = 3 batches) and warm up every allocation
        _train_step(model, opt, x, y)
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        for _ in range(2 * every + 1):
            _train_step(model, opt, x, y)
    finally:
        torch.cuda.set_sync_debug_mode(0)
    fb.check()
    assert fb.te is not None and bool(torch.isfinite(fb.te).all())


@needs_cuda
def test_feedback_training_step_in_a_cuda_graph():
    g = torch.Generator(device="cuda").manual_seed(2)
    batches = [(torch.randn(32, 20, device="cuda", generator=g),
                torch.randint(0, 10, (32,), device="cuda", generator=g)) for _ in range(9)]
    warm, replays = batches[:4], batches[4:]

    # Eager reference: the same 9 steps.
    m1, f1, o1 = _training_setup()
    for x, y in batches:
        _train_step(m1, o1, x, y)

    # Captured: 4 eager warm-up steps on a side stream (fills the window), one captured
    # step (capture records, it does not run), then 5 replays on new data.
    m2, f2, o2 = _training_setup()
    static_x, static_y = warm[0][0].clone(), warm[0][1].clone()
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for x, y in warm:
            _train_step(m2, o2, x, y)
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    o2.zero_grad(set_to_none=True)
    with torch.cuda.graph(graph):
        torch.nn.functional.cross_entropy(m2(static_x), static_y).backward()
        o2.step()
    for x, y in replays:
        static_x.copy_(x)
        static_y.copy_(y)
        graph.replay()
    torch.cuda.synchronize()
    # The window's counter lives on the device, so the replays advanced it.
    assert int(f2.window.status[0]) == f1.window.seen == 9 * 32
    assert torch.equal(f1.window.counts, f2.window.counts)
    assert torch.equal(f1.window.source_ring, f2.window.source_ring)
    torch.testing.assert_close(f2.te, f1.te, rtol=1e-6, atol=1e-7)
    for p1, p2 in zip(m1.parameters(), m2.parameters()):
        torch.testing.assert_close(p2, p1, rtol=1e-5, atol=1e-6)
    f2.check()


def test_signed_delay_scan_matches_cpu(device):
    """The CUDA scan (one delay at a time) and te.sorted_local_te's kernel against the CPU
    scan: TE bit for bit as transfer_entropy is, the sign to the last bits of log2."""
    x, y = _case(13, 400, 5, 4, R=2)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    te, sign = te_ext.transfer_entropy_delays(xt, yt, [1, 4, 2], k=2, signed=True)
    te_d, sign_d = te_ext.transfer_entropy_delays(xt.to(device), yt.to(device), [1, 4, 2], k=2,
                                                  signed=True)
    torch.testing.assert_close(te_d.cpu(), te, rtol=0, atol=1e-12)
    torch.testing.assert_close(sign_d.cpu(), sign, rtol=0, atol=1e-12)
