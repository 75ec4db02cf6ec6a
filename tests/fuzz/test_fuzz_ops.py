"""Fuzz the ops and their fake kernels with invalid and extreme arguments (issue #15).

Every example runs in a guarded worker process (``_fuzz_harness``: 5 s timeout, address space
capped at 4 GiB over what torch needs). The oracle: the call either raises a clean ValueError,
TypeError or RuntimeError (exactly these classes) whose message names one of the arguments the
example broke, or returns the right answer (the numpy reference of tests/reference.py for real
tensors, the right shape and dtype for meta tensors). A crash, a hang, any other exception
class, or a wrong answer fails the test. The fake kernels must also raise exactly where the
real kernels raise.
"""

from __future__ import annotations

import os
import re
import sys

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import _fuzz_cases as cases  # noqa: E402
from _fuzz_harness import worker  # noqa: E402
from _fuzz_profile import fuzz_settings  # noqa: E402
from reference import joint_counts_ref, te_from_counts_ref, transfer_entropy_ref  # noqa: E402
from stats_reference import sorted_local_te_ref  # noqa: E402

# The delay scans run at delays [delay, 1]: a second delay that is always legal.
SERIES_OPS = ["joint_counts", "transfer_entropy", "transfer_entropy_pairs",
              "transfer_entropy_delays", "transfer_entropy_delays_signed"]
CLEAN = ("ValueError", "TypeError", "RuntimeError")
VALID_DTYPES = ["bool", "uint8", "int8", "int16", "int32", "int64", "float16", "bfloat16",
                "float32", "float64"]
FLOATING = {"float16", "bfloat16", "float32", "float64", "float8_e4m3fn", "complex64"}
HUGE = 2**40
# Most examples break one or two things; a few stay valid and are checked for their answer.
MUTATION_COUNT = st.sampled_from([0, 1, 1, 1, 2])
BAD_INTS = [0, -1, -(2**63), 31, 40, 2**31, 2**62, 2**63 - 1, 2**64, True, False]


def check_clean(result, names):
    """A clean exception naming one of `names` (regexes); returns False for a success."""
    status = result[0]
    assert status not in ("crash", "hang"), result
    if status == "ok":
        return False
    cls, msg = result[1], result[2]
    assert cls in CLEAN, f"unclean exception {cls}: {msg}"
    assert any(re.search(n, msg) for n in names), f"message names none of {names}: {msg!r}"
    return True


@st.composite
def series_cases(draw, mutations=("k", "l", "delay", "threshold", "dtype", "shape", "short",
                                  "values", "device", "giant", "pairs")):
    op = draw(st.sampled_from(SERIES_OPS))
    R = draw(st.sampled_from([None, None, 2]))
    k, l, delay = draw(st.integers(1, 3)), draw(st.integers(1, 2)), draw(st.integers(1, 3))
    n0 = max(k, l - 1 + delay)
    T, I, J = draw(st.integers(n0 + 1, n0 + 24)), draw(st.integers(1, 4)), draw(st.integers(1, 4))
    dtype = draw(st.sampled_from(VALID_DTYPES))
    floating = dtype in FLOATING
    threshold = (draw(st.sampled_from([0.0, 0.5, -0.3, 0.1])) if floating
                 else draw(st.sampled_from([None, None, 0.5])))
    view = draw(st.sampled_from([None, None, "transposed", "sliced"]))
    lead = (R,) if R else ()

    def spec(n, seed):
        return dict(shape=lead + (T, n), dtype=dtype, device="cpu", view=view, seed=seed,
                    fill="float" if floating else "bits")

    case = dict(op=op, source=spec(I, draw(st.integers(0, 99))),
                target=spec(J, draw(st.integers(0, 99))), k=k, l=l, delay=delay,
                threshold=threshold, raw=draw(st.booleans()))
    if op == "transfer_entropy_pairs":
        P = draw(st.integers(0, 5))
        case["pairs"] = [[draw(st.integers(0, I - 1)), draw(st.integers(0, J - 1))] for _ in range(P)]
    names = []
    for m in draw(st.lists(st.sampled_from(mutations), min_size=draw(MUTATION_COUNT), max_size=2,
                           unique=True)):
        side = draw(st.sampled_from(["source", "target"]))
        if m in ("k", "l"):
            case[m] = draw(st.sampled_from(BAD_INTS))
            names += [rf"\b{m}\b"]
        elif m == "delay":
            case["delay"] = draw(st.sampled_from(BAD_INTS + [T, 2**63 - 2]))
            names += ["delay"]
        elif m == "threshold":
            case["threshold"] = draw(st.sampled_from([float("nan"), float("inf"), -float("inf"),
                                                      1e308, None]))
            names += ["threshold", "source", "target"]
        elif m == "dtype":
            new = draw(st.sampled_from(["complex64", "uint16", "uint32", "uint64",
                                        "float8_e4m3fn", "float32"]))
            case[side]["dtype"] = new
            case[side]["fill"] = "float" if new in FLOATING else "bits"
            names += [side]
        elif m == "shape":
            how = draw(st.sampled_from(["T", "R", "1d", "4d", "empty_T", "empty_n"]))
            shape = list(case[side]["shape"])
            if how == "T":
                shape[-2] += draw(st.sampled_from([-1, 1]))
                names += [r"\bT\b"]
            elif how == "R":
                shape = [3] + shape[-2:]
                names += [r"\bR\b", "source and target"]
            elif how == "1d":
                shape = shape[-2:-1]
            elif how == "4d":
                shape = [1, 1] + shape[-2:]
            elif how == "empty_T":
                shape[-2] = 0
                names += [r"\bT\b"]
            else:
                shape[-1] = 0
            case[side]["shape"] = tuple(shape)
            if case[side].get("view") == "expanded":  # after "giant": expand to the new shape
                case[side]["expand"] = tuple(shape)
            names += [side, "source and target"]
        elif m == "short":
            for s in ("source", "target"):
                shape = list(case[s]["shape"])
                if len(shape) >= 2:  # a "shape" mutation may have left a 1-d series
                    shape[-2] = n0
                case[s]["shape"] = tuple(shape)
            names += ["too short", "too long for series"]  # the scans name the delay
        elif m == "values":
            if case["threshold"] is not None and case[side]["dtype"] in FLOATING:
                case[side]["value"] = float("nan")
            elif case["threshold"] is None and case[side]["dtype"] != "bool":
                case[side]["value"] = draw(st.sampled_from([2, 7] + ([-1] if "u" not in case[side]["dtype"] else [])))
            else:
                continue
            case[side]["at"] = (draw(st.integers(0, 99)), draw(st.integers(0, 99)), draw(st.integers(0, 99)))
            names += [side]
        elif m == "device":
            case[side]["device"] = "meta"
            names += ["device", r"pairs must be on"]
        elif m == "giant":
            for s in ("source", "target"):
                n = case[s]["shape"][-1]
                case[s].update(view="expanded", expand=(HUGE, n), shape=(HUGE, n), dtype="bool")
            case["threshold"] = None
            names += ["memory"]
        elif m == "pairs" and op == "transfer_entropy_pairs":
            how = draw(st.sampled_from(["int32", "shape", "range", "negative", "expanded"]))
            names += ["pairs"]
            if how == "int32":
                case["pairs"] = dict(shape=(2, 2), dtype="int32", fill="bits", seed=0)
            elif how == "shape":
                case["pairs"] = dict(shape=(2, 3), dtype="int64", fill="bits", seed=0)
            elif how == "range":
                case["pairs"] = [[0, 0], [I + draw(st.integers(0, 2**40)), 0]]
            elif how == "negative":
                case["pairs"] = [[0, -draw(st.integers(1, 2**62))]]
            else:
                case["pairs"] = dict(shape=(1, 2), dtype="int64", fill="bits", seed=0,
                                     view="expanded", expand=(HUGE, 2))
    return case, names


def expected(case):
    """The reference answer of a valid case (numpy), from the 0/1 series the contract defines."""
    k, l, delay = int(case["k"]), int(case["l"]), int(case["delay"])
    x = cases.binary(case["source"], case["threshold"])
    y = cases.binary(case["target"], case["threshold"])
    if case["op"] == "joint_counts":
        return joint_counts_ref(x, y, k, l, delay)
    if case["op"].startswith("transfer_entropy_delays"):
        te = np.stack([transfer_entropy_ref(x, y, k, l, d) for d in (delay, 1)])
        if case["op"] == "transfer_entropy_delays":
            return te
        sign = np.stack([sorted_local_te_ref(joint_counts_ref(x, y, k, l, d), k, l)
                         for d in (delay, 1)])
        return np.stack([te, sign])
    te = transfer_entropy_ref(x, y, k, l, delay)
    if case["op"] == "transfer_entropy":
        return te
    p = np.asarray(case["pairs"], dtype=np.int64).reshape(-1, 2)
    return te[p[:, 0], p[:, 1]]


def check_result(case, out):
    sizes = [np.prod(case[s]["shape"]) for s in ("source", "target")]
    assert max(sizes) < 10**6, f"a giant request was not refused: {case}"
    metas = [case["source"].get("device") == "meta", case["target"].get("device") == "meta"]
    if any(metas):
        assert all(metas) and out["meta"], (case, out)
        return
    want = expected(case)
    assert out["shape"] == want.shape, (out["shape"], want.shape)
    if case["op"] == "joint_counts":
        np.testing.assert_array_equal(out["value"], want)
    else:
        np.testing.assert_allclose(out["value"], want, rtol=0, atol=1e-12)


@fuzz_settings(160)
@given(series_cases())
def test_series_ops_raise_cleanly_or_match_the_reference(example):
    case, names = example
    result = worker().run("run_op", case)
    if not check_clean(result, names or ["(?!)"]):
        check_result(case, result[1])


@st.composite
def counts_cases(draw):
    k, l = draw(st.integers(1, 3)), draw(st.integers(1, 2))
    bins = 2 ** (k + l + 1)
    lead = tuple(draw(st.lists(st.integers(0, 3), max_size=2)))
    case = dict(op="te_from_counts", k=k, l=l, raw=draw(st.booleans()),
                counts=dict(shape=lead + (bins,), dtype=draw(st.sampled_from(
                    ["int64", "int32", "uint8", "int16", "uint16", "uint32"])), fill="bits",
                    seed=draw(st.integers(0, 99))))
    names = []
    for m in draw(st.lists(st.sampled_from(["k", "l", "dtype", "lastdim", "negative", "huge",
                                            "expanded", "meta"]), min_size=draw(MUTATION_COUNT), max_size=2, unique=True)):
        c = case["counts"]
        if m in ("k", "l"):
            case[m] = draw(st.sampled_from(BAD_INTS))
            names += [rf"\b{m}\b"]
        elif m == "dtype":
            c["dtype"] = draw(st.sampled_from(["float32", "bool", "complex64", "uint64"]))
            names += ["counts"]
        elif m == "lastdim":
            c["shape"] = c["shape"][:-1] + (draw(st.sampled_from([1, 7, bins * 2])),)
            names += ["counts"]
        elif m == "negative" and "u" not in c["dtype"]:
            c.update(at=(1, 2, 3), value=-draw(st.integers(1, 100)))
            names += ["counts"]
        elif m == "huge" and c["dtype"] == "int64":
            c.update(at=(0, 0, 0), value=draw(st.sampled_from([2**62, 2**63 - 1])))
            names += ["counts"]
        elif m == "expanded":
            c.update(view="expanded", shape=(1, c["shape"][-1]), expand=(HUGE, c["shape"][-1]))
            names += ["counts"]
        elif m == "meta":
            c["device"] = "meta"
    return case, names


@fuzz_settings(60)
@given(counts_cases())
def test_te_from_counts_raises_cleanly_or_matches_the_reference(example):
    case, names = example
    result = worker().run("run_op", case)
    if check_clean(result, names or ["(?!)"]):
        return
    out, c = result[1], case["counts"]
    assert c.get("view") != "expanded", "a giant request was not refused"
    if c.get("device") == "meta":
        assert out["meta"] and out["shape"] == tuple(c["shape"][:-1])
        return
    counts = cases.build(c, "cpu").to(__import__("torch").int64).numpy()
    np.testing.assert_allclose(out["value"], te_from_counts_ref(counts, int(case["k"]),
                                                                int(case["l"])), rtol=0, atol=1e-12)


def _on_meta(case):
    meta = dict(case)
    for key in ("source", "target", "counts"):
        if isinstance(case.get(key), dict):
            meta[key] = dict(case[key], device="meta")
    if isinstance(case.get("pairs"), dict):
        meta["pairs"] = dict(case["pairs"], device="meta")
    elif "pairs" in case:
        meta["pairs_device"] = "meta"
    return meta


def _outcome(result):
    assert result[0] in ("ok", "raise"), result
    if result[0] == "raise":
        return result[1], result[2]
    return "ok", result[1]["shape"], result[1]["dtype"]


# Mutations whose checks need no data and no memory query: the fake must agree exactly.
@fuzz_settings(100)
@given(st.one_of(series_cases(mutations=("k", "l", "delay", "threshold", "dtype", "shape",
                                         "short")), counts_cases()))
def test_fake_kernels_raise_exactly_where_the_kernels_raise(example):
    case, _ = example
    if case["op"] == "te_from_counts":
        c = case["counts"]
        if c.get("view") == "expanded" or "value" in c or c.get("device") == "meta":
            return  # memory and count-range checks need the real kernel
    if case.get("threshold") is not None and case["threshold"] != case["threshold"]:
        pass  # a NaN threshold is an argument check: the fake must raise it too
    real = _outcome(worker().run("run_op", case))
    fake = _outcome(worker().run("run_op", _on_meta(case)))
    assert fake == real, (case, real, fake)


# --- window_append_ and its device-generic twin -----------------------------------------


@st.composite
def window_cases(draw):
    k, l, delay = draw(st.integers(1, 3)), draw(st.integers(1, 2)), draw(st.integers(1, 3))
    n0 = max(k, l - 1 + delay)
    I, J = draw(st.integers(1, 9)), draw(st.integers(1, 9))
    W, B = draw(st.integers(n0 + 1, n0 + 12)), draw(st.integers(0, 20))
    dtype = draw(st.sampled_from(VALID_DTYPES))
    floating = dtype in FLOATING
    thr = draw(st.sampled_from([0.0, 0.1, -0.5])) if floating else draw(st.sampled_from([None, 0.5]))

    def spec(n, seed):
        return dict(shape=(B, n), dtype=dtype, fill="float" if floating else "bits", seed=seed)

    case = dict(name=draw(st.sampled_from(["window_append_", "_window_append_generic_"])),
                I=I, J=J, W=W, bins=2 ** (k + l + 1), track=draw(st.booleans()),
                source=spec(I, 1), target=spec(J, 2), seen=0, k=k, l=l, delay=delay,
                source_threshold=thr, target_threshold=thr)
    names = []
    for m in draw(st.lists(st.sampled_from(["k", "l", "delay", "seen", "window", "device",
                                            "dtype", "nan", "values", "rows"]),
                           min_size=draw(MUTATION_COUNT), max_size=2, unique=True)):
        side = draw(st.sampled_from(["source", "target"]))
        if m in ("k", "l", "delay"):
            case[m] = draw(st.sampled_from([v for v in BAD_INTS if v != 2**64]))
            names += [rf"\b{m}\b", "window"]
        elif m == "seen":
            case["seen"] = draw(st.sampled_from([-1, -(2**63), 2**63 - 1, 2**63 - 1 - B, 2**62,
                                                  True, False, 1.0, 2.5]))
            names += ["seen"]
        elif m == "window":
            case["W"] = draw(st.integers(1, n0))
            names += ["window"]
        elif m == "device":
            case[side]["device"] = "meta"
            names += ["device", "must be on"]
        elif m == "dtype":
            case[side]["dtype"] = draw(st.sampled_from(["uint16", "complex64", "float8_e4m3fn"]))
            case[side]["fill"] = "float" if case[side]["dtype"] in FLOATING else "bits"
            names += [side]
        elif m == "nan":
            case[f"{side}_threshold"] = float("nan")
            names += [f"{side}_threshold"]
        elif m == "values" and B > 0:
            if case[f"{side}_threshold"] is None and dtype != "bool":
                case[side].update(at=(draw(st.integers(0, 99)), draw(st.integers(0, 99))), value=2)
            elif case[f"{side}_threshold"] is not None and floating:
                case[side].update(at=(draw(st.integers(0, 99)), 0), value=float("nan"))
            names += [side]
        elif m == "rows":
            case[side]["shape"] = (B + 1, case[side]["shape"][1])
            names += ["rows"]
    return case, names


@fuzz_settings(70)
@given(window_cases())
def test_window_append_raises_cleanly_or_counts_right(example):
    case, names = example
    result = worker().run("run_window_op", case)
    if check_clean(result, names or ["(?!)"]):
        return
    out = result[1]
    if case["source"].get("device") == "meta" or case["target"].get("device") == "meta":
        pytest.fail(f"mixed meta/cpu window call returned: {case}")
    if not case["track"] or case["seen"] != 0:
        return
    rows = min(case["source"]["shape"][0], case["W"])
    x = cases.binary(case["source"], case["source_threshold"])[-rows:] if rows else None
    y = cases.binary(case["target"], case["target_threshold"])[-rows:] if rows else None
    k, l, delay = int(case["k"]), int(case["l"]), int(case["delay"])
    want = (joint_counts_ref(x, y, k, l, delay) if rows > max(k, l - 1 + delay)
            else np.zeros((case["I"], case["J"], case["bins"]), dtype=np.int64))
    np.testing.assert_array_equal(out["value"], want)
