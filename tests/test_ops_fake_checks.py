"""The fake (meta) kernels run the real kernels' checks: one C++ function serves both.

Issue #15, item 6: each case below returned a shape from the fake kernel where the real op
raised, which under torch.compile becomes a wrong program instead of an error. Every case is
run on the CPU and on meta tensors; both must raise the same exception with the same message.
Data-dependent checks (NaN values, non-binary values, pair indices, count ranges) need data
and stay in the real kernels; they are not listed here.
"""

from __future__ import annotations

import pytest
import torch

import te_ext

SERIES_OPS = ["joint_counts", "transfer_entropy", "transfer_entropy_pairs"]


def _series_op(op, source, target, **kw):
    fn = getattr(torch.ops.te, op)
    args = dict(k=1, l=1, delay=1, threshold=None)
    args.update(kw)
    if op == "transfer_entropy_pairs":
        pairs = kw.pop("pairs", None)
        pairs = torch.zeros(1, 2, dtype=torch.int64) if pairs is None else pairs
        args.pop("pairs", None)
        return fn(source, target, pairs.to(source.device), args["k"], args["l"], args["delay"],
                  args["threshold"])
    return fn(source, target, args["k"], args["l"], args["delay"], args["threshold"])


def b(*shape, dtype=torch.bool):
    return (torch.rand(*shape, generator=torch.Generator().manual_seed(5)) < 0.5).to(dtype)


# The campaign's cases (series ones for each of the three series ops).
SERIES_CASES = {
    "k=0": lambda: (b(50, 3), b(50, 4), dict(k=0)),
    "l=0": lambda: (b(50, 3), b(50, 4), dict(l=0)),
    "delay=0": lambda: (b(50, 3), b(50, 4), dict(delay=0)),
    "k=l=40": lambda: (b(50, 3), b(50, 4), dict(k=40, l=40)),
    "huge k": lambda: (b(50, 3), b(50, 4), dict(k=2**62)),
    "delay near 2^63": lambda: (b(50, 3), b(50, 4), dict(l=2, delay=2**63 - 1)),
    "mismatched T": lambda: (b(50, 3), b(49, 4), {}),
    "mismatched R": lambda: (b(2, 50, 3), b(3, 50, 4), {}),
    "mismatched ndim": lambda: (b(50, 3), b(1, 50, 4), {}),
    "1-d source": lambda: (b(50), b(50, 4), {}),
    "T too short": lambda: (b(3, 3), b(3, 4), dict(k=3)),
    "complex dtype": lambda: (torch.zeros(50, 3, dtype=torch.complex64), b(50, 4), dict(threshold=0.0)),
    "float without threshold": lambda: (torch.zeros(50, 3), b(50, 4), {}),
    "NaN threshold": lambda: (torch.zeros(50, 3), torch.zeros(50, 4), dict(threshold=float("nan"))),
    "I=0": lambda: (b(50, 0), b(50, 4), {}),
    "T=0": lambda: (b(0, 3), b(0, 4), {}),
    "uint16 (unsupported by the kernels)": lambda: (b(50, 3, dtype=torch.uint16), b(50, 4), {}),
}

PAIRS_CASES = {
    "int32 pairs": torch.zeros(2, 2, dtype=torch.int32),
    "pairs [2, 3]": torch.zeros(2, 3, dtype=torch.int64),
    "pairs [2]": torch.zeros(2, dtype=torch.int64),
}

COUNTS_CASES = {
    "last dim 7": (torch.zeros(3, 7, dtype=torch.int64), {}),
    "float counts": (torch.zeros(3, 8), {}),
    "bool counts": (torch.zeros(3, 8, dtype=torch.bool), {}),
    "0-d counts": (torch.tensor(5), {}),
    "k=0": (torch.zeros(3, 8, dtype=torch.int64), dict(k=0)),
    "huge k": (torch.zeros(3, 8, dtype=torch.int64), dict(k=2**62, l=2**62)),
    "k=2 with 8 bins": (torch.zeros(3, 8, dtype=torch.int64), dict(k=2)),
}


def _outcome(fn):
    try:
        out = fn()
    except Exception as e:  # noqa: BLE001 - the class is what we compare
        return type(e), str(e).split("\n")[0]
    return "ok", (tuple(out.shape), out.dtype) if out is not None else None


def _assert_same(cpu_fn, meta_fn):
    cpu, meta = _outcome(cpu_fn), _outcome(meta_fn)
    assert cpu[0] in (ValueError, TypeError), cpu  # every case here is invalid
    assert meta == cpu


@pytest.mark.parametrize("op", SERIES_OPS)
@pytest.mark.parametrize("case", list(SERIES_CASES))
def test_series_fake_raises_like_the_kernel(op, case):
    x, y, kw = SERIES_CASES[case]()
    _assert_same(lambda: _series_op(op, x, y, **kw),
                 lambda: _series_op(op, x.to("meta"), y.to("meta"), **kw))


@pytest.mark.parametrize("case", list(PAIRS_CASES))
def test_pairs_fake_raises_like_the_kernel(case):
    x, y, pairs = b(50, 3), b(50, 4), PAIRS_CASES[case]
    _assert_same(lambda: _series_op("transfer_entropy_pairs", x, y, pairs=pairs),
                 lambda: _series_op("transfer_entropy_pairs", x.to("meta"), y.to("meta"),
                                    pairs=pairs.to("meta")))


@pytest.mark.parametrize("case", list(COUNTS_CASES))
def test_counts_fake_raises_like_the_kernel(case):
    counts, kw = COUNTS_CASES[case]
    k, l = kw.get("k", 1), kw.get("l", 1)
    _assert_same(lambda: torch.ops.te.te_from_counts(counts, k, l),
                 lambda: torch.ops.te.te_from_counts(counts.to("meta"), k, l))


def _window_state(I=3, J=4, W=10, k=1, l=1, device="cpu"):
    return (torch.zeros(I, J, 2 ** (k + l + 1), dtype=torch.int64, device=device),
            torch.zeros(W, (I + 7) // 8, dtype=torch.uint8, device=device),
            torch.zeros(W, (J + 7) // 8, dtype=torch.uint8, device=device))


WINDOW_CASES = {
    "k=0": dict(k=0),
    "huge l": dict(l=2**62),
    "delay near 2^63": dict(l=2, delay=2**63 - 1),
    "seen < 0": dict(seen=-1),
    "seen + B overflows": dict(seen=2**63 - 1),
    "window too short": dict(k=12),
    "float without threshold": dict(source=torch.zeros(2, 3)),
    "NaN threshold": dict(source=torch.zeros(2, 3), source_threshold=float("nan")),
    "wrong counts shape": dict(counts=torch.zeros(3, 4, 4, dtype=torch.int64)),
    "wrong ring width": dict(source_ring=torch.zeros(10, 2, dtype=torch.uint8)),
    "rows differ": dict(target=b(3, 4)),
}


def _window_call(op, device="cpu", **kw):
    counts, sr, tr = _window_state()
    args = dict(counts=counts, source_ring=sr, target_ring=tr, source=b(2, 3), target=b(2, 4),
                seen=0, k=1, l=1, delay=1, source_threshold=None, target_threshold=None)
    args.update(kw)
    tensors = {n: args[n].to(device) for n in ("counts", "source_ring", "target_ring", "source",
                                               "target")}
    args.update(tensors)
    return lambda: getattr(torch.ops.te, op)(*args.values())


@pytest.mark.parametrize("op", ["window_append_", "_window_append_generic_"])
@pytest.mark.parametrize("case", list(WINDOW_CASES))
def test_window_fake_raises_like_the_kernel(op, case):
    kw = WINDOW_CASES[case]
    _assert_same(_window_call(op, "cpu", **kw), _window_call(op, "meta", **kw))


@pytest.mark.parametrize("op", ["window_append_", "_window_append_generic_"])
def test_window_meta_source_with_cpu_rings_raises(op):
    counts, sr, tr = _window_state()
    fn = getattr(torch.ops.te, op)
    with pytest.raises(ValueError, match=r"source_ring must be on meta like source, got cpu"):
        fn(torch.zeros(0, dtype=torch.int64), sr, tr, b(2, 3).to("meta"), b(2, 4).to("meta"), 0,
           1, 1, 1, None, None)
    with pytest.raises(ValueError, match=r"source and target must be on the same device"):
        fn(counts, sr, tr, b(2, 3).to("meta"), b(2, 4), 0, 1, 1, 1, None, None)
    with pytest.raises(ValueError, match=r"counts must be contiguous on meta, got cpu"):
        fn(counts, sr.to("meta"), tr.to("meta"), b(2, 3).to("meta"), b(2, 4).to("meta"), 0, 1,
           1, 1, None, None)


def test_valid_meta_calls_still_give_shapes():
    x, y = b(50, 3).to("meta"), b(50, 4).to("meta")
    assert torch.ops.te.joint_counts(x, y, 2, 3, 1, None).shape == (3, 4, 64)
    assert torch.ops.te.transfer_entropy(x, y, 1, 1, 2, None).shape == (3, 4)
    pairs = torch.zeros(5, 2, dtype=torch.int64, device="meta")
    assert torch.ops.te.transfer_entropy_pairs(x, y, pairs, 1, 1, 1, None).shape == (5,)
    counts = torch.zeros(2, 6, 32, dtype=torch.int64, device="meta")
    assert torch.ops.te.te_from_counts(counts, 2, 2).shape == (2, 6)
    counts, sr, tr = _window_state(device="meta")
    torch.ops.te.window_append_(counts, sr, tr, x[:2], y[:2], 0, 1, 1, 1, None, None)


def test_compile_refuses_what_the_op_refuses():
    # Under torch.compile the fake kernel runs at trace time: a bad k fails there, as eagerly.
    torch._dynamo.reset()
    fn = torch.compile(lambda x, y: torch.ops.te.transfer_entropy(x, y, 0, 1, 1, None),
                       fullgraph=True, backend="eager")
    with pytest.raises(Exception, match=r"k \(target history length\) must be >= 1"):
        fn(b(50, 3), b(50, 4))


# ---- the statistics ops' fakes: the same C++ checks (_C._check_statistics) -----------------

def _stats_call(op, source, target, k=1, l=1, delay=1, threshold=None, pairs=None,
                permutations=None):
    dev = source.device
    if op == "local_transfer_entropy":
        pairs = torch.zeros(1, 2, dtype=torch.int64) if pairs is None else pairs
        return torch.ops.te.local_transfer_entropy(source, target, pairs.to(dev), k, l, delay,
                                                   threshold)
    if permutations is None:
        T = source.shape[-2] if source.dim() in (2, 3) else 1
        n_obs = max(1, (source.shape[0] if source.dim() == 3 else 1) * (T - max(k, l - 1 + delay)))
        permutations = torch.arange(n_obs).unsqueeze(0) if n_obs < 10**6 else torch.zeros(1, 1, dtype=torch.int64)
    return torch.ops.te.transfer_entropy_surrogates(
        source, target, permutations.to(dev), k, l, delay, threshold,
        None if pairs is None else pairs.to(dev))


STATS_CASES = {
    "k=0": lambda: (b(50, 3), b(50, 4), dict(k=0)),
    "k=100": lambda: (b(50, 3), b(50, 4), dict(k=100)),
    "T mismatch": lambda: (b(50, 3), b(49, 4), {}),
    "NaN threshold": lambda: (torch.zeros(50, 3), torch.zeros(50, 4), dict(threshold=float("nan"))),
    "float without threshold": lambda: (torch.zeros(50, 3), b(50, 4), {}),
    "1-d pairs": lambda: (b(50, 3), b(50, 4), dict(pairs=torch.zeros(2, dtype=torch.int64))),
    "int32 pairs": lambda: (b(50, 3), b(50, 4), dict(pairs=torch.zeros(1, 2, dtype=torch.int32))),
    "T too short": lambda: (b(3, 3), b(3, 4), dict(k=3)),
}
SURROGATE_CASES = {
    "float permutations": lambda: (b(50, 3), b(50, 4), dict(permutations=torch.zeros(1, 49))),
    "permutations of the wrong length": lambda: (b(50, 3), b(50, 4),
                                                 dict(permutations=torch.zeros(1, 7, dtype=torch.int64))),
    "1-d permutations": lambda: (b(50, 3), b(50, 4), dict(permutations=torch.zeros(49, dtype=torch.int64))),
}


def _raised(fn):
    try:
        fn()
    except Exception as exc:  # noqa: BLE001
        return type(exc), str(exc).splitlines()[0]
    return None


@pytest.mark.parametrize("op", ["local_transfer_entropy", "transfer_entropy_surrogates"])
@pytest.mark.parametrize("case", list(STATS_CASES))
def test_statistics_fakes_raise_like_the_kernels(op, case):
    source, target, kw = STATS_CASES[case]()
    cpu = _raised(lambda: _stats_call(op, source, target, **kw))
    assert cpu is not None and cpu[0] in (ValueError, TypeError), cpu
    kw_meta = {key: (v.to("meta") if isinstance(v, torch.Tensor) else v) for key, v in kw.items()}
    meta = _raised(lambda: _stats_call(op, source.to("meta"), target.to("meta"), **kw_meta))
    assert meta == cpu, (case, meta, cpu)


@pytest.mark.parametrize("case", list(SURROGATE_CASES))
def test_surrogate_fake_checks_permutations(case):
    source, target, kw = SURROGATE_CASES[case]()
    cpu = _raised(lambda: _stats_call("transfer_entropy_surrogates", source, target, **kw))
    assert cpu is not None
    meta = _raised(lambda: _stats_call("transfer_entropy_surrogates", source.to("meta"),
                                       target.to("meta"),
                                       permutations=kw["permutations"].to("meta")))
    assert meta == cpu, (case, meta, cpu)


def test_statistics_fake_k100_raises_under_compile():
    x = b(50, 3)
    fn = torch.compile(lambda s, t: torch.ops.te.local_transfer_entropy(
        s, t, torch.zeros(1, 2, dtype=torch.int64), 100, 1, 1, None), fullgraph=True)
    with pytest.raises(Exception, match="k \\+ l"):
        fn(x, x)
