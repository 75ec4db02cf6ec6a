"""Bad input raises the documented exception class with a message naming the argument."""

from __future__ import annotations

import contextlib
import resource

import numpy as np
import pytest
import torch

import te_ext
from reference import te_from_counts_ref

SERIES_OPS = ["joint_counts", "transfer_entropy", "transfer_entropy_pairs"]


def call(op: str, source, target, pairs=None, **kw):
    """Calls a series op by name; the pairs op gets one valid pair unless told otherwise."""
    fn = getattr(te_ext, op)
    if op == "transfer_entropy_pairs":
        return fn(source, target, torch.zeros(1, 2, dtype=torch.int64) if pairs is None else pairs,
                  **kw)
    return fn(source, target, **kw)


def bits(*shape) -> torch.Tensor:
    g = torch.Generator().manual_seed(7)
    return torch.rand(*shape, generator=g) < 0.5


@contextlib.contextmanager
def address_space_headroom(extra_bytes: int = 4 << 30):
    """Caps this process's address space at what it uses now plus `extra_bytes`.

    An op that skipped its memory check would otherwise try to allocate
    terabytes and take the machine down; under the cap it fails fast instead
    (and the test fails, since it expects ValueError).
    """
    with open("/proc/self/status") as f:
        vm = next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmSize:"))
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    cap = vm + extra_bytes
    if hard != resource.RLIM_INFINITY:
        cap = min(cap, hard)
    resource.setrlimit(resource.RLIMIT_AS, (cap, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


# --- shapes ---------------------------------------------------------------------


@pytest.mark.parametrize("op", SERIES_OPS)
def test_wrong_ndim(op):
    y = bits(50, 2)
    with pytest.raises(ValueError, match=r"source must be \[T, neurons\].*1-d"):
        call(op, bits(50), y)
    with pytest.raises(ValueError, match=r"source must be \[T, neurons\].*4-d"):
        call(op, bits(1, 2, 50, 3), bits(1, 2, 50, 2))
    with pytest.raises(ValueError, match=r"target must be \[T, neurons\].*1-d"):
        call(op, bits(50, 3), bits(50))
    with pytest.raises(ValueError, match=r"source must be"):
        call(op, torch.tensor(True), torch.tensor(False))


@pytest.mark.parametrize("op", SERIES_OPS)
def test_source_target_ndim_mismatch(op):
    with pytest.raises(ValueError, match=r"source and target must both be"):
        call(op, bits(50, 3), bits(2, 50, 3))
    with pytest.raises(ValueError, match=r"source and target must both be"):
        call(op, bits(2, 50, 3), bits(50, 3))


@pytest.mark.parametrize("op", SERIES_OPS)
def test_length_and_replicate_mismatch(op):
    with pytest.raises(ValueError, match=r"same length T, got 50 and 49"):
        call(op, bits(50, 3), bits(49, 2))
    with pytest.raises(ValueError, match=r"same length T, got 50 and 51"):
        call(op, bits(2, 50, 3), bits(2, 51, 2))
    with pytest.raises(ValueError, match=r"same number of replicates R, got 2 and 3"):
        call(op, bits(2, 50, 3), bits(3, 50, 2))


@pytest.mark.parametrize("op", SERIES_OPS)
@pytest.mark.parametrize("shapes", [((0, 3), (0, 2)), ((50, 0), (50, 2)), ((50, 3), (50, 0)),
                                    ((0, 50, 3), (0, 50, 2)), ((2, 0, 3), (2, 0, 2))])
def test_empty_series(op, shapes):
    xs, ys = shapes
    name = "source" if 0 in xs else "target"
    with pytest.raises(ValueError, match=rf"{name} is empty"):
        call(op, bits(*xs), bits(*ys))


# --- values and dtypes --------------------------------------------------------------


@pytest.mark.parametrize("op", SERIES_OPS)
@pytest.mark.parametrize("dtype", [torch.uint8, torch.int8, torch.int32, torch.int64])
def test_non_binary_values_are_named(op, dtype):
    x = bits(50, 3).to(dtype)
    y = bits(50, 2).to(dtype)
    bad = x.clone()
    bad[17, 1] = 2
    with pytest.raises(ValueError, match=r"source contains the value 2"):
        call(op, bad, y)
    bad = y.clone()
    bad[49, 0] = 3  # the very last element
    with pytest.raises(ValueError, match=r"target contains the value 3"):
        call(op, x, bad)
    if dtype.is_signed:
        bad = x.clone()
        bad[0, 0] = -1
        with pytest.raises(ValueError, match=r"source contains the value -1"):
            call(op, bad, y)


@pytest.mark.parametrize("op", SERIES_OPS)
def test_non_binary_value_in_a_non_contiguous_view(op):
    base = bits(100, 6).to(torch.uint8)
    base[31, 4] = 7  # inside the view: rows ::3 from 1, columns ::2
    view = base[1::3, ::2]
    with pytest.raises(ValueError, match=r"source contains the value 7"):
        call(op, view, bits(33, 2))
    base[32, 4] = 9  # outside the view (row 32 is not read), so it must not matter
    base[31, 4] = 1
    call(op, base[1::3, ::2], bits(33, 2))


@pytest.mark.parametrize("op", SERIES_OPS)
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32, torch.float64])
def test_floating_input_needs_a_threshold(op, dtype):
    with pytest.raises(TypeError, match=r"source has dtype .* threshold is None"):
        call(op, torch.zeros(50, 3, dtype=dtype), bits(50, 2))
    with pytest.raises(TypeError, match=r"target has dtype .* threshold is None"):
        call(op, bits(50, 3), torch.ones(50, 2, dtype=dtype))


@pytest.mark.parametrize("op", SERIES_OPS)
def test_complex_input_is_a_type_error(op):
    with pytest.raises(TypeError, match=r"source has complex dtype"):
        call(op, torch.zeros(50, 3, dtype=torch.complex64), bits(50, 2), threshold=0.0)


@pytest.mark.parametrize("op", SERIES_OPS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_nan_input_with_threshold(op, dtype):
    x = torch.randn(50, 3, dtype=dtype)
    y = torch.randn(50, 2, dtype=dtype)
    bad = x.clone()
    bad[40, 2] = float("nan")
    with pytest.raises(ValueError, match=r"source contains NaN"):
        call(op, bad, y, threshold=0.0)
    bad = y.clone()
    bad[0, 1] = float("nan")
    with pytest.raises(ValueError, match=r"target contains NaN"):
        call(op, x, bad, threshold=0.0)


@pytest.mark.parametrize("op", SERIES_OPS)
def test_nan_threshold(op):
    with pytest.raises(ValueError, match=r"threshold must not be NaN"):
        call(op, torch.randn(50, 3), torch.randn(50, 2), threshold=float("nan"))


# --- history lengths ---------------------------------------------------------


@pytest.mark.parametrize("op", SERIES_OPS)
@pytest.mark.parametrize("k,l,delay,T", [(1, 1, 1, 1), (3, 1, 1, 3), (1, 3, 1, 3), (1, 1, 5, 5),
                                         (2, 4, 3, 6)])
def test_series_too_short(op, k, l, delay, T):
    n0 = max(k, l - 1 + delay)
    assert T == n0
    with pytest.raises(ValueError, match=rf"too short.*T = {T}.*= {n0}"):
        call(op, bits(T, 3), bits(T, 2), k=k, l=l, delay=delay)
    with pytest.raises(ValueError, match=r"too short"):
        call(op, bits(4, T, 3), bits(4, T, 2), k=k, l=l, delay=delay)


@pytest.mark.parametrize("op", SERIES_OPS)
@pytest.mark.parametrize("arg,pattern", [("k", r"k \(target history length\) must be >= 1"),
                                         ("l", r"l \(source history length\) must be >= 1"),
                                         ("delay", r"delay must be >= 1")])
@pytest.mark.parametrize("value", [0, -1, -(2**40)])
def test_history_lengths_below_one(op, arg, pattern, value):
    with pytest.raises(ValueError, match=pattern + rf", got {value}"):
        call(op, bits(50, 3), bits(50, 2), **{arg: value})


@pytest.mark.parametrize("op", SERIES_OPS)
@pytest.mark.parametrize("k,l", [(16, 16), (30, 30), (39, 1), (1, 39), (2**40, 1),
                                 (2**62, 2**62)])
def test_huge_histories_rejected_before_allocating(op, k, l):
    with address_space_headroom(), pytest.raises(ValueError, match=r"k \+ l = .* too large"):
        call(op, bits(100, 3), bits(100, 2), k=k, l=l)


@pytest.mark.parametrize("op", SERIES_OPS)
@pytest.mark.parametrize("k,l", [(15, 15), (16, 15)])
def test_histories_too_large_for_memory(op, k, l):
    """Legal k + l whose histograms do not fit: a ValueError about memory, before allocating.

    joint_counts returns every pair's histogram (here 1 TiB or more); the fused ops fill one
    histogram per thread at a time (32 GiB or more). The check compares with the memory
    available now, which the address-space cap bounds by 4 GiB here, so it always refuses."""
    I = J = 8
    with address_space_headroom(), pytest.raises(ValueError, match=r"k=%d, l=%d.*memory" % (k, l)):
        call(op, bits(200, I), bits(200, J), k=k, l=l)


# --- pairs ------------------------------------------------------------------------


@pytest.mark.parametrize("pairs,pattern", [
    ([[0, 0], [-1, 1]], r"pairs\[:, 0\] \(source index\) must be in \[0, 3\), found .*-1"),
    ([[3, 0]], r"pairs\[:, 0\] \(source index\) must be in \[0, 3\), found .*3"),
    ([[2, -5], [0, 0]], r"pairs\[:, 1\] \(target index\) must be in \[0, 2\), found .*-5"),
    ([[2, 1], [0, 2]], r"pairs\[:, 1\] \(target index\) must be in \[0, 2\), found .*2"),
    ([[0, 0], [2**62, 0]], r"pairs\[:, 0\]"),
])
def test_pairs_out_of_range(pairs, pattern):
    with pytest.raises(ValueError, match=pattern):
        te_ext.transfer_entropy_pairs(bits(50, 3), bits(50, 2), torch.tensor(pairs))


@pytest.mark.parametrize("dtype", [torch.int32, torch.int16, torch.uint8, torch.float32,
                                   torch.float64, torch.bool])
def test_pairs_wrong_dtype(dtype):
    with pytest.raises(TypeError, match=r"pairs must be int64"):
        te_ext.transfer_entropy_pairs(bits(50, 3), bits(50, 2), torch.zeros(2, 2, dtype=dtype))


@pytest.mark.parametrize("shape", [(2,), (0,), (2, 3), (2, 1), (1, 2, 2), (2, 2, 1), (0, 3)])
def test_pairs_wrong_shape(shape):
    with pytest.raises(ValueError, match=r"pairs must have shape \[P, 2\]"):
        te_ext.transfer_entropy_pairs(bits(50, 3), bits(50, 2),
                                      torch.zeros(shape, dtype=torch.int64))


def test_meta_series_give_shapes_only():
    # The fake kernels answer for meta tensors (torch.compile traces with them).
    x, y = bits(50, 3).to("meta"), bits(50, 2).to("meta")
    assert te_ext.transfer_entropy(x, y).shape == (3, 2)
    assert te_ext.joint_counts(x, y, k=2).shape == (3, 2, 16)
    pairs = torch.zeros(4, 2, dtype=torch.int64, device="meta")
    assert te_ext.transfer_entropy_pairs(x, y, pairs).shape == (4,)


@pytest.mark.parametrize("op", SERIES_OPS)
def test_meta_mixed_with_cpu_is_rejected(op):
    # One meta input routes the call to the fake kernel, which must refuse
    # mixed devices as the real kernels do, not return an uninitialised tensor.
    x, y = bits(50, 3), bits(50, 2)
    with pytest.raises(ValueError, match=r"same device"):
        call(op, x.to("meta"), y)
    with pytest.raises(ValueError, match=r"same device"):
        call(op, x, y.to("meta"))


def test_meta_pairs_with_cpu_series_are_rejected():
    with pytest.raises(ValueError, match=r"pairs must be on cpu"):
        te_ext.transfer_entropy_pairs(bits(50, 3), bits(50, 2),
                                      torch.zeros(2, 2, dtype=torch.int64, device="meta"))


# --- te_from_counts ------------------------------------------------------------------


def test_counts_wrong_last_dimension():
    with pytest.raises(ValueError,
                       match=r"counts' last dimension must be 2\^\(k\+l\+1\) = 8.*got 7"):
        te_ext.te_from_counts(torch.zeros(3, 7, dtype=torch.int64))
    with pytest.raises(ValueError, match=r"= 32 for k=2, l=2, got 16"):
        te_ext.te_from_counts(torch.zeros(3, 16, dtype=torch.int64), k=2, l=2)
    with pytest.raises(ValueError, match=r"counts must have at least one dimension"):
        te_ext.te_from_counts(torch.tensor(5))


@pytest.mark.parametrize("where", [0, 3, 7])
def test_counts_negative(where):
    counts = torch.ones(4, 2, 8, dtype=torch.int64)
    counts[3, 1, where] = -2
    with pytest.raises(ValueError, match=r"counts must be non-negative, found -2"):
        te_ext.te_from_counts(counts)
    with pytest.raises(ValueError, match=r"counts must be non-negative"):
        te_ext.te_from_counts(counts.to(torch.int8))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bool, torch.complex64])
def test_counts_non_integer(dtype):
    with pytest.raises(TypeError, match=r"counts must be an integer tensor"):
        te_ext.te_from_counts(torch.zeros(2, 8, dtype=dtype))


@pytest.mark.parametrize("arg,value,pattern", [("k", 0, r"k \(target history length\)"),
                                               ("l", -1, r"l \(source history length\)"),
                                               ("k", 40, r"k \+ l = 41 is too large")])
def test_counts_bad_history(arg, value, pattern):
    with pytest.raises(ValueError, match=pattern):
        te_ext.te_from_counts(torch.zeros(2, 8, dtype=torch.int64), **{arg: value})


@pytest.mark.parametrize("k,l", [(16, 16), (2**40, 1), (2**62, 2**62)])
def test_counts_huge_history(k, l):
    # Rejected as too large, before 2^(k+l+1) is formed (it would overflow).
    with pytest.raises(ValueError, match=r"k \+ l = .* too large"):
        te_ext.te_from_counts(torch.zeros(2, 8, dtype=torch.int64), k=k, l=l)


@pytest.mark.parametrize("big", [
    [2**62, 2**62, 0, 0, 0, 0, 0, 0],                # total exactly 2^63
    [2**63 - 1, 0, 0, 1, 0, 0, 0, 0],               # one past int64 max
    [2**61] * 8,                                    # 2^64: wraps to 0
])
def test_counts_whose_total_overflows_int64(big):
    counts = torch.zeros(3, 8, dtype=torch.int64)
    counts[1] = torch.tensor(big)
    with pytest.raises(ValueError, match=r"counts"):
        te_ext.te_from_counts(counts)


def test_counts_at_the_int64_limit_still_work():
    # 8 bins of 2^60 - 1 sum to 2^63 - 8, just inside int64: accepted, and right.
    counts = torch.tensor([[2**60 - 1] * 8, [2**60 - 1, 1, 0, 5, 2**59, 0, 3, 2**60 - 1]])
    np.testing.assert_allclose(te_ext.te_from_counts(counts).numpy(),
                               te_from_counts_ref(counts.numpy()), rtol=0, atol=1e-12)


# --- dtypes the kernels do not read, and bools as ints (issue #15, item 7) ---------------

UINT_DTYPES = [getattr(torch, n) for n in ("uint16", "uint32", "uint64") if hasattr(torch, n)]
FLOAT8_DTYPES = [getattr(torch, n) for n in ("float8_e4m3fn", "float8_e5m2") if hasattr(torch, n)]


@pytest.mark.parametrize("op", SERIES_OPS)
@pytest.mark.parametrize("dtype", UINT_DTYPES)
def test_wide_unsigned_01_series_are_converted(op, dtype):
    x, y = bits(60, 3), bits(60, 2)
    want = call(op, x, y, k=2)
    assert torch.equal(call(op, x.to(dtype), y.to(dtype), k=2), want)
    assert torch.equal(call(op, x.to(dtype), y, k=2, threshold=0.5), want)
    bad = x.to(dtype)
    bad[5, 1] = 7
    with pytest.raises(ValueError, match=r"source contains the value 7"):
        call(op, bad, y)


@pytest.mark.parametrize("op", SERIES_OPS)
@pytest.mark.parametrize("dtype", FLOAT8_DTYPES)
def test_float8_with_a_threshold_is_converted(op, dtype):
    g = torch.Generator().manual_seed(3)
    x8 = torch.randn(60, 3, generator=g).to(dtype)
    y = bits(60, 2)
    want = call(op, x8.to(torch.float32), y, threshold=0.25)
    assert torch.equal(call(op, x8, y, threshold=0.25), want)
    with pytest.raises(TypeError, match=r"source has dtype Float8.* threshold is None"):
        call(op, x8, y)


@pytest.mark.parametrize("op", SERIES_OPS)
@pytest.mark.parametrize("dtype", UINT_DTYPES + FLOAT8_DTYPES)
def test_raw_ops_name_unsupported_dtypes(op, dtype):
    # torch.ops.te.* convert nothing: a TypeError that names the argument and lists dtypes.
    x = torch.zeros(60, 3, dtype=dtype)
    fn = getattr(torch.ops.te, op)
    args = (torch.zeros(1, 2, dtype=torch.int64),) if op == "transfer_entropy_pairs" else ()
    with pytest.raises(TypeError, match=r"source has dtype .*supported: bool, uint8"):
        fn(x, bits(60, 2), *args, 1, 1, 1, 0.5)
    with pytest.raises(TypeError, match=r"target has dtype .*supported: bool, uint8"):
        fn(bits(60, 3), x, *args, 1, 1, 1, 0.5)


@pytest.mark.parametrize("name", ["window_append_", "_window_append_generic_"])
def test_window_names_unsupported_dtypes(name):
    w = te_ext.StreamingJointCounts(3, 2, 10)
    with pytest.raises(TypeError, match=r"source has dtype UInt16.*supported"):
        getattr(torch.ops.te, name)(w.counts, w.source_ring, w.target_ring,
                                    torch.zeros(2, 3, dtype=torch.uint16), bits(2, 2), 0, 1, 1,
                                    1, None, None)


@pytest.mark.parametrize("op", SERIES_OPS)
@pytest.mark.parametrize("arg", ["k", "l", "delay"])
@pytest.mark.parametrize("value", [True, False])
def test_bool_int_arguments_are_type_errors(op, arg, value):
    with pytest.raises(TypeError, match=rf"{arg} must be an int, got bool"):
        call(op, bits(50, 3), bits(50, 2), **{arg: value})


@pytest.mark.parametrize("arg", ["k", "l"])
def test_te_from_counts_bool_history_is_a_type_error(arg):
    with pytest.raises(TypeError, match=rf"{arg} must be an int, got bool"):
        te_ext.te_from_counts(torch.zeros(2, 8, dtype=torch.int64), **{arg: True})


@pytest.mark.parametrize("name", ["window_append_", "_window_append_generic_"])
@pytest.mark.parametrize("device", ["cpu", "meta"])
@pytest.mark.parametrize("seen, kind", [(True, "bool"), (False, "bool"), (1.0, "float"),
                                        (2.5, "float"), (1 + 0j, "complex|ComplexDouble")])
def test_window_append_seen_must_be_an_int(name, device, seen, kind):
    # The schema takes a Scalar so that a bool reaches the check instead of running as 1.
    w = te_ext.StreamingJointCounts(3, 2, 10)
    state = [t.to(device) for t in (w.counts, w.source_ring, w.target_ring)]
    before = [t.clone() for t in state]
    with pytest.raises(TypeError, match=rf"seen must be an int .*got ({kind})"):
        getattr(torch.ops.te, name)(*state, bits(4, 3).to(device), bits(4, 2).to(device), seen)
    if device == "cpu":
        assert all(torch.equal(a, b) for a, b in zip(state, before))  # nothing written


@pytest.mark.parametrize("name", ["window_append_", "_window_append_generic_"])
def test_window_append_int_seen_still_runs(name):
    w = te_ext.StreamingJointCounts(3, 2, 10)
    x, y = bits(4, 3), bits(4, 2)
    getattr(torch.ops.te, name)(w.counts, w.source_ring, w.target_ring, x, y, 0)
    assert torch.equal(w.counts, te_ext.joint_counts(x, y))


@pytest.mark.parametrize("arg", ["window", "k", "l", "delay"])
def test_window_classes_reject_bools(arg):
    kw = dict(window=10)
    kw[arg] = True
    with pytest.raises(TypeError, match=rf"{arg} must be an int, got bool"):
        te_ext.StreamingJointCounts(3, 2, **kw)
    with pytest.raises(TypeError, match=rf"{arg} must be an int, got bool"):
        te_ext.TEFeedback(torch.nn.Linear(3, 2), **kw)
