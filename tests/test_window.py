"""StreamingJointCounts / te.window_append_: the incremental counts equal a from-scratch
joint_counts over the window after every step."""

import random
import re

import pytest
import torch

import te_ext
from te_ext import StreamingJointCounts

from reference import joint_counts_ref


def _run_stream(seed, k, l, delay, window, I, J, batches):
    g = torch.Generator().manual_seed(seed)
    w = StreamingJointCounts(I, J, window, k=k, l=l, delay=delay)
    src_hist, tgt_hist = [], []
    n0 = max(k, l - 1 + delay)
    for b in batches:
        s = torch.randn(b, I, generator=g)
        t = torch.rand(b, J, generator=g)
        w.append(s, t, source_threshold=0.0, target_threshold=0.5)
        src_hist.append(s > 0.0)
        tgt_hist.append(t > 0.5)
        S = torch.cat(src_hist)[-window:]
        T = torch.cat(tgt_hist)[-window:]
        if S.shape[0] > n0:
            expect = te_ext.joint_counts(S, T, k, l, delay)
        else:
            expect = torch.zeros_like(w.counts)
        assert torch.equal(w.counts, expect), (seed, b, w.seen)
        ws, wt = w.window_series()
        assert torch.equal(ws.bool(), S) and torch.equal(wt.bool(), T)
        assert w.full == (w.seen >= window)
    return w


@pytest.mark.parametrize("seed", range(25))
def test_streaming_equals_from_scratch_random(seed):
    rnd = random.Random(seed)
    k, l, delay = rnd.randint(1, 3), rnd.randint(1, 3), rnd.randint(1, 3)
    n0 = max(k, l - 1 + delay)
    window = rnd.randint(n0 + 1, 50)
    # Batches of random sizes, including 1, sizes that do not divide the window,
    # and batches longer than the window.
    batches = [rnd.choice([1, 2, 3, 5, 7, 16, window - 1 or 1, window, window + 3]) for _ in range(15)]
    _run_stream(seed, k, l, delay, window, rnd.randint(1, 13), rnd.randint(1, 11), batches)


def test_streaming_spans_words_and_bytes_of_neurons():
    # Segments longer than one 64-bit word and neuron counts that are not a multiple of 8,
    # so rows go through the kernel's 8 x 8 bit transposes in partial groups too.
    for seed, (k, l) in enumerate([(1, 1), (2, 1), (1, 2)]):
        _run_stream(40 + seed, k, l, 1, 300, 37, 19, [50, 64, 200, 7, 131, 301, 64])


def test_streaming_matches_numpy_reference_paper_shape():
    # The training shape of the paper's USPS net: 144 -> 10, window 500, batch 64.
    w = _run_stream(7, 1, 1, 1, 500, 144, 10, [64] * 12)
    s, t = w.window_series()
    ref = joint_counts_ref(s.numpy(), t.numpy(), 1, 1, 1)
    assert torch.equal(w.counts, torch.from_numpy(ref).to(torch.int64))


def test_shortest_window_and_batch_of_one():
    _run_stream(3, 1, 1, 1, 2, 3, 2, [1] * 10)
    _run_stream(4, 2, 3, 2, 5, 2, 3, [1] * 12)


def test_bool_and_int_inputs_without_threshold():
    w = StreamingJointCounts(3, 2, 8)
    x = torch.tensor([[1, 0, 1], [0, 1, 1], [1, 1, 0], [0, 0, 1]], dtype=torch.int64)
    y = torch.tensor([[1, 0], [0, 1], [1, 1], [0, 0]], dtype=torch.bool)
    w.append(x, y)
    w.append(x.to(torch.uint8), y)
    S, T = torch.cat([x, x]).bool(), torch.cat([y, y])
    assert torch.equal(w.counts, te_ext.joint_counts(S, T))


def test_state_dict_round_trip():
    w = _run_stream(1, 1, 2, 1, 20, 5, 4, [6, 6, 6, 6])
    w2 = StreamingJointCounts(5, 4, 20, k=1, l=2, delay=1)
    w2.load_state_dict(w.state_dict())
    g = torch.Generator().manual_seed(9)
    s, t = torch.randn(7, 5, generator=g), torch.rand(7, 4, generator=g)
    w.append(s, t, 0.0, 0.5)
    w2.append(s, t, 0.0, 0.5)
    assert torch.equal(w.counts, w2.counts) and w.seen == w2.seen
    with pytest.raises(ValueError, match="window"):
        StreamingJointCounts(5, 4, 21, k=1, l=2).load_state_dict(w.state_dict())


def test_state_is_bits_plus_counts():
    w = StreamingJointCounts(144, 10, 4096)
    packed = 4096 * (18 + 2)  # ceil(144 / 8) + ceil(10 / 8) bytes a sample
    assert w.nbytes == packed + 144 * 10 * 8 * 8


def test_untracked_window_keeps_rows_only():
    w = StreamingJointCounts(4, 3, 10, track_counts=False)
    w.append(torch.randn(12, 4), torch.rand(12, 3), 0.0, 0.5)
    assert w.counts.numel() == 0 and w.window_series()[0].shape == (10, 4)


@pytest.mark.parametrize("kwargs, exc, match", [
    (dict(window=1), ValueError, "window must be > max"),
    (dict(window=3, k=3), ValueError, "window must be > max"),
    (dict(window=10, k=0), ValueError, "k must be >= 1"),
    (dict(window=10.0), TypeError, "window must be an int"),
])
def test_bad_configuration(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        StreamingJointCounts(4, 3, **kwargs)


def test_bad_appends():
    w = StreamingJointCounts(4, 3, 10)
    with pytest.raises(ValueError, match=r"source must be \[B, 4\]"):
        w.append(torch.randn(5, 5), torch.rand(5, 3), 0.0, 0.5)
    with pytest.raises(ValueError, match="same number of rows"):
        w.append(torch.randn(5, 4), torch.rand(6, 3), 0.0, 0.5)
    with pytest.raises(ValueError, match="source contains NaN"):
        w.append(torch.full((5, 4), float("nan")), torch.rand(5, 3), 0.0, 0.5)
    with pytest.raises(TypeError, match="target_threshold is None"):
        w.append(torch.randn(5, 4), torch.rand(5, 3), 0.0, None)
    with pytest.raises(ValueError, match="contains the value 2"):
        w.append(torch.ones(5, 4, dtype=torch.int64) * 2, torch.ones(5, 3, dtype=torch.bool))
    with pytest.raises(ValueError, match="source_threshold must not be NaN"):
        w.append(torch.randn(5, 4), torch.rand(5, 3), float("nan"), 0.5)
    assert w.seen == 0 and int(w.counts.sum()) == 0  # nothing half-applied


def test_window_append_opcheck():
    counts = torch.zeros(4, 3, 8, dtype=torch.int64)
    rs, rt = torch.zeros(10, 1, dtype=torch.uint8), torch.zeros(10, 1, dtype=torch.uint8)
    torch.library.opcheck(torch.ops.te.window_append_,
                          (counts, rs, rt, torch.randn(6, 4), torch.rand(6, 3), 0),
                          {"source_threshold": 0.0, "target_threshold": 0.5})
    torch.library.opcheck(torch.ops.te.window_append_,
                          (counts, rs, rt, torch.randn(6, 4), torch.rand(6, 3), 8),
                          {"source_threshold": 0.0, "target_threshold": 0.5})


@pytest.mark.parametrize("seed", range(8))
def test_cpu_kernel_equals_generic_composite(seed):
    # CUDA runs the device-generic composite; on the CPU it is reachable as
    # te._window_append_generic_. Both must leave identical counts and rings.
    rnd = random.Random(100 + seed)
    k, l, delay = rnd.randint(1, 3), rnd.randint(1, 2), rnd.randint(1, 2)
    window, I, J = rnd.randint(max(k, l - 1 + delay) + 1, 40), rnd.randint(1, 20), rnd.randint(1, 9)
    states = [StreamingJointCounts(I, J, window, k=k, l=l, delay=delay) for _ in range(2)]
    ops = [torch.ops.te.window_append_, torch.ops.te._window_append_generic_]
    g = torch.Generator().manual_seed(seed)
    seen = 0
    for _ in range(12):
        b = rnd.choice([1, 4, 9, window, window + 2])
        s, t = torch.randn(b, I, generator=g), torch.rand(b, J, generator=g)
        for st, op in zip(states, ops):
            op(st.counts, st.source_ring, st.target_ring, s, t, seen, k, l, delay, 0.0, 0.5)
        seen += b
        assert torch.equal(states[0].counts, states[1].counts)
        assert torch.equal(states[0].source_ring, states[1].source_ring)
        assert torch.equal(states[0].target_ring, states[1].target_ring)


@pytest.mark.parametrize("op_name", ["window_append_", "_window_append_generic_"])
def test_both_implementations_raise_the_same_errors(op_name):
    op = getattr(torch.ops.te, op_name)
    w = StreamingJointCounts(4, 3, 10)
    args = (w.counts, w.source_ring, w.target_ring)
    with pytest.raises(ValueError, match="source contains NaN; with source_threshold=0"):
        op(*args, torch.full((2, 4), float("nan")), torch.rand(2, 3), 0, 1, 1, 1, 0.0, 0.5)
    with pytest.raises(ValueError, match="target contains the value 3 but target_threshold is None"):
        op(*args, torch.randn(2, 4), torch.full((2, 3), 3), 0, 1, 1, 1, 0.0, None)
    with pytest.raises(TypeError, match="target has dtype Float but target_threshold is None"):
        op(*args, torch.randn(2, 4), torch.rand(2, 3), 0, 1, 1, 1, 0.0, None)
    with pytest.raises(ValueError, match=r"counts must be \[4, 3, 8\]"):
        op(torch.zeros(4, 3, 4, dtype=torch.int64), w.source_ring, w.target_ring,
           torch.randn(2, 4), torch.rand(2, 3), 0, 1, 1, 1, 0.0, 0.5)
    with pytest.raises(ValueError, match="seen must be >= 0"):
        op(*args, torch.randn(2, 4), torch.rand(2, 3), -1, 1, 1, 1, 0.0, 0.5)
    assert int(w.counts.abs().sum()) == 0 and int(w.source_ring.sum()) == 0


def test_window_on_device_equals_cpu(device):
    # On CUDA this runs the device-generic composite over the CUDA joint_counts.
    g = torch.Generator().manual_seed(11)
    cpu = StreamingJointCounts(37, 5, 100, k=2, l=1)
    dev = StreamingJointCounts(37, 5, 100, k=2, l=1, device=device)
    for b in [30, 64, 64, 7, 150, 64]:
        s, t = torch.randn(b, 37, generator=g), torch.rand(b, 5, generator=g)
        cpu.append(s, t, 0.0, 0.5)
        dev.append(s.to(device), t.to(device), 0.0, 0.5)
        assert torch.equal(cpu.counts, dev.counts.cpu())
        assert torch.equal(cpu.source_ring, dev.source_ring.cpu())


# ---- thresholds compared in double (issue 10, item 4) ---------------------------------------

@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
@pytest.mark.parametrize("threshold", [0.1, 0.3])
def test_generic_composite_compares_in_double(dtype, threshold):
    # Values at the threshold rounded to the input's dtype, and around it: compared in the
    # input dtype (the old composite) x == dtype(threshold) is "not greater", in double it is
    # greater or not as the rounding went. Both implementations must agree with double.
    g = torch.Generator().manual_seed(int(threshold * 10) + dtype.itemsize)
    I, J, W = 6, 5, 16
    at_thr = torch.tensor(threshold, dtype=dtype)
    assert at_thr.double().item() != threshold  # not exactly representable: the case at issue
    states = [StreamingJointCounts(I, J, W) for _ in range(2)]
    ops = [torch.ops.te.window_append_, torch.ops.te._window_append_generic_]
    seen = 0
    for b in (5, 7, 20, 3):
        s = (threshold + 0.002 * torch.randn(b, I, generator=g)).to(dtype)
        t = (threshold + 0.002 * torch.randn(b, J, generator=g)).to(dtype)
        s[:, 0] = at_thr
        t[::2, 1] = at_thr
        for st, op in zip(states, ops):
            op(st.counts, st.source_ring, st.target_ring, s, t, seen, 1, 1, 1, threshold, threshold)
        seen += b
        assert torch.equal(states[0].counts, states[1].counts), (dtype, threshold, seen)
        assert torch.equal(states[0].source_ring, states[1].source_ring)
        assert torch.equal(states[0].target_ring, states[1].target_ring)
    # And both equal joint_counts of the double comparison (the contract).
    expect_bit = bool(at_thr.double().item() > threshold)
    last_row = states[0].source_ring[(seen - 1) % W]  # the ops were called directly: read the ring
    assert bool(last_row[0] & 1) == expect_bit


# ---- the deferred (GPU) error path, run on the CPU with the same protocol --------------------

def _deferred(I, J, W, **kw):
    w = StreamingJointCounts(I, J, W, **kw)
    w._deferred = True  # what a CUDA window is; the CPU kernel implements the same protocol
    return w


@pytest.mark.parametrize("seed", range(6))
def test_deferred_op_equals_immediate_op(seed):
    rnd = random.Random(200 + seed)
    k, l, delay = rnd.randint(1, 3), rnd.randint(1, 2), rnd.randint(1, 2)
    window, I, J = rnd.randint(max(k, l - 1 + delay) + 1, 30), rnd.randint(1, 12), rnd.randint(1, 9)
    a = StreamingJointCounts(I, J, window, k=k, l=l, delay=delay)
    b = _deferred(I, J, window, k=k, l=l, delay=delay)
    g = torch.Generator().manual_seed(seed)
    for _ in range(10):
        n = rnd.choice([1, 3, window, window + 4])
        s, t = torch.randn(n, I, generator=g), torch.rand(n, J, generator=g)
        a.append(s, t, 0.0, 0.5)
        b.append(s, t, 0.0, 0.5)
        assert torch.equal(a.counts, b.counts)
        assert torch.equal(a.source_ring, b.source_ring) and torch.equal(a.target_ring, b.target_ring)
        assert int(b.status[0]) == b.seen == a.seen  # the op keeps the counter
        b.check()
        b.poll()
    te = torch.ops.te._te_from_window_counts(b.counts, b.status, k, l)
    assert torch.equal(te, te_ext.te_from_counts(a.counts, k, l))


@pytest.mark.parametrize("side", ["source", "target"])
def test_deferred_nan_ends_in_a_clear_error(side):
    w = _deferred(4, 3, 10)
    w.append(torch.randn(6, 4), torch.rand(6, 3), 0.0, 0.5)
    s, t = torch.randn(6, 4), torch.rand(6, 3)
    (s if side == "source" else t)[2, 1] = float("nan")
    w.append(s, t, 0.0, 0.5)  # recorded, not raised: on a GPU raising here would be a sync
    assert w.seen == 12 and int(w.status[0]) == 12
    te = torch.ops.te._te_from_window_counts(w.counts, w.status, 1, 1)
    assert bool(te.isnan().all())  # no number computed from bad data
    thr = "0" if side == "source" else "0.5"
    msg = f"te.window_append_: {side} contains NaN; with {side}_threshold={thr} every value must be a number"
    with pytest.raises(ValueError, match=re.escape(msg)):
        w.check()
    with pytest.raises(ValueError, match=f"{side} contains NaN"):
        w.poll()
    with pytest.raises(ValueError, match=f"{side} contains NaN"):
        w.state_dict()  # a window holding bad data is not saved


def test_deferred_non_binary_value_is_named():
    w = _deferred(4, 3, 10)
    x = torch.ones(5, 4, dtype=torch.int64)
    x[3, 2] = 7
    w.append(x, torch.ones(5, 3, dtype=torch.bool))
    with pytest.raises(ValueError, match="source contains the value 7 but source_threshold is None"):
        w.check()


def test_deferred_state_dict_round_trip():
    a = _deferred(5, 4, 20, k=2)
    g = torch.Generator().manual_seed(3)
    for n in (7, 9, 30):
        a.append(torch.randn(n, 5, generator=g), torch.rand(n, 4, generator=g), 0.0, 0.5)
    b = _deferred(5, 4, 20, k=2)
    b.load_state_dict(a.state_dict())
    assert int(b.status[0]) == b.seen == a.seen
    s, t = torch.randn(8, 5, generator=g), torch.rand(8, 4, generator=g)
    a.append(s, t, 0.0, 0.5)
    b.append(s, t, 0.0, 0.5)
    assert torch.equal(a.counts, b.counts)


def test_te_from_window_counts_equals_te_from_counts():
    g = torch.Generator().manual_seed(5)
    counts = torch.randint(0, 500, (7, 3, 32), generator=g)
    counts[0, 0] = 0
    status = torch.zeros(8, dtype=torch.int64)
    got = torch.ops.te._te_from_window_counts(counts, status, 2, 2)
    assert torch.equal(got, te_ext.te_from_counts(counts, 2, 2))
    assert torch.equal(torch.ops.te._te_from_window_counts(counts, None, 2, 2), got)
    with pytest.raises(ValueError, match="status must be a contiguous int64 \\[8\\]"):
        torch.ops.te._te_from_window_counts(counts, torch.zeros(3, dtype=torch.int64), 2, 2)
    with pytest.raises(ValueError, match="last dimension must be 2\\^\\(k\\+l\\+1\\) = 32"):
        torch.ops.te._te_from_window_counts(counts[..., :8], status, 2, 2)


def test_async_ops_opcheck():
    counts = torch.zeros(4, 3, 8, dtype=torch.int64)
    rs, rt = torch.zeros(10, 1, dtype=torch.uint8), torch.zeros(10, 1, dtype=torch.uint8)
    status = torch.zeros(8, dtype=torch.int64)
    torch.library.opcheck(torch.ops.te._window_append_async_,
                          (counts, rs, rt, status, torch.randn(6, 4), torch.rand(6, 3)),
                          {"source_threshold": 0.0, "target_threshold": 0.5})
    torch.library.opcheck(torch.ops.te._te_from_window_counts,
                          (torch.randint(0, 9, (4, 3, 8)), status), {})


def test_window_refresh_writes_te_and_the_gradient_scale(device):
    # TEFeedback's refresh in one op: T (float32 [I, J]) and (1 + T)^T ([J, I]), equal to
    # _te_from_window_counts; an empty grad_scale skips the scale; bad buffers raise.
    g = torch.Generator().manual_seed(7)
    w = StreamingJointCounts(9, 4, 40, device=device)
    w.append((torch.rand(50, 9, generator=g) < 0.4).to(device), (torch.rand(50, 4, generator=g) < 0.6).to(device))
    want = torch.ops.te._te_from_window_counts(w.counts, w.status, 1, 1)
    te = torch.full((9, 4), -1.0, device=device)
    scale = torch.full((4, 9), -1.0, device=device)
    torch.ops.te._window_refresh_(w.counts, w.status, 1, 1, te, scale)
    assert torch.equal(te, want.float()) and bool((want > 0).any())
    assert torch.equal(scale, (1 + want.t()).float())
    te.fill_(0)
    torch.ops.te._window_refresh_(w.counts, None, 1, 1, te, torch.empty(0, device=device))
    assert torch.equal(te, want.float())
    with pytest.raises(ValueError, match="te must be a floating \\[9, 4\\]"):
        torch.ops.te._window_refresh_(w.counts, None, 1, 1, torch.empty(4, 9, device=device), scale)
    with pytest.raises(ValueError, match="grad_scale must be empty or a floating \\[4, 9\\]"):
        torch.ops.te._window_refresh_(w.counts, None, 1, 1, te, torch.empty(9, 4, device=device))
    torch.library.opcheck(torch.ops.te._window_refresh_.default, (w.counts, w.status, 1, 1, te, scale))

