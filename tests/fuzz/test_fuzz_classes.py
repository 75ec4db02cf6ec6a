"""Fuzz StreamingJointCounts and TEFeedback with invalid and extreme configurations (issue #15).

Each example runs in the guarded worker (see ``_fuzz_harness``). A constructor either raises a
clean ValueError/TypeError naming the argument it refuses, or builds an object that then works:
the window's counts equal the numpy reference over the window's series (and those series are the
last rows appended), and TEFeedback trains a small MLP for a few steps with finite weights and a
T of the right shape.
"""

from __future__ import annotations

import os
import sys

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import _fuzz_cases as cases  # noqa: E402
from _fuzz_harness import worker  # noqa: E402
from _fuzz_profile import fuzz_settings  # noqa: E402
from reference import joint_counts_ref  # noqa: E402
from test_fuzz_ops import check_clean  # noqa: E402

# Extreme ints for every int argument: huge, negative, bool, and non-ints.
EXTREME = [0, -1, -(2**63), 2**31, 2**40, 2**62, 2**63 - 1, 2**64, True, 2.0, "3", None]


def _int_arg(draw, lo, hi):
    return draw(st.one_of(st.integers(lo, hi), st.sampled_from(EXTREME)))


def _is_valid_int(v, lo):
    return isinstance(v, int) and not isinstance(v, bool) and v >= lo


@st.composite
def window_configs(draw):
    mutate = draw(st.booleans())
    pick = (lambda lo, hi: _int_arg(draw, lo, hi)) if mutate else (lambda lo, hi: draw(st.integers(lo, hi)))
    I, J = pick(1, 9), pick(1, 9)
    k, l, delay = pick(1, 3), pick(1, 2), pick(1, 3)
    window = pick(1, 30)
    track = draw(st.booleans())
    batches = []
    for seed in range(draw(st.integers(0, 3))):
        B = draw(st.integers(0, 25))
        dtype = draw(st.sampled_from(["bool", "uint8", "float32", "bfloat16"]))
        fill = "float" if dtype in ("float32", "bfloat16") else "bits"
        thr = 0.1 if fill == "float" else None
        n_i = I if isinstance(I, int) and 0 < I < 64 else 3
        n_j = J if isinstance(J, int) and 0 < J < 64 else 3
        batches.append((dict(shape=(B, n_i), dtype=dtype, fill=fill, seed=seed),
                        dict(shape=(B, n_j), dtype=dtype, fill=fill, seed=seed + 10), thr, thr))
    case = dict(args=(I, J, window), kwargs=dict(k=k, l=l, delay=delay, track_counts=track),
                batches=batches)
    names = ["num_source", "num_target", "window", r"\bk\b", r"\bl\b", "delay"]
    return case, names


@fuzz_settings(60)
@given(window_configs())
def test_streaming_window_refuses_cleanly_or_counts_right(example):
    case, names = example
    result = worker().run("run_window_class", case)
    if check_clean(result, names):
        return
    out = result[1]
    I, J, window = case["args"]
    kw = case["kwargs"]
    for name, v, lo in (("I", I, 1), ("J", J, 1), ("window", window, 1), ("k", kw["k"], 1),
                        ("l", kw["l"], 1), ("delay", kw["delay"], 1)):
        assert _is_valid_int(v, lo), f"{name}={v!r} was accepted"
    rows_s = [cases.binary(s, ts) for s, _, ts, _ in case["batches"]]
    rows_t = [cases.binary(t, tt) for _, t, _, tt in case["batches"]]
    xs = np.concatenate(rows_s)[-window:] if rows_s else np.zeros((0, I), np.uint8)
    ys = np.concatenate(rows_t)[-window:] if rows_t else np.zeros((0, J), np.uint8)
    np.testing.assert_array_equal(out["source"], xs)
    np.testing.assert_array_equal(out["target"], ys)
    if not kw["track_counts"]:
        assert out["counts"].size == 0
        return
    n0 = max(kw["k"], kw["l"] - 1 + kw["delay"])
    want = (joint_counts_ref(xs, ys, kw["k"], kw["l"], kw["delay"]) if len(xs) > n0
            else np.zeros_like(out["counts"]))
    np.testing.assert_array_equal(out["counts"], want)


@st.composite
def feedback_configs(draw):
    kwargs = {}
    for name, lo, hi in (("window", 2, 40), ("every", 1, 3), ("k", 1, 2), ("l", 1, 2),
                         ("delay", 1, 2), ("seed", 0, 5)):
        if draw(st.integers(0, 3)) == 0:
            kwargs[name] = _int_arg(draw, lo, hi)
        elif draw(st.booleans()):
            kwargs[name] = draw(st.integers(lo, hi))
    if draw(st.integers(0, 3)) == 0:
        kwargs["pair_fraction"] = draw(st.sampled_from([0.0, -1.0, 1.5, float("nan"), 0.3, 1.0,
                                                        True, "1"]))
    for name in ("source_threshold", "target_threshold"):
        if draw(st.integers(0, 4)) == 0:
            kwargs[name] = draw(st.sampled_from([float("nan"), float("inf"), -float("inf"),
                                                 1e308, None, "0", 0.25]))
    if draw(st.integers(0, 4)) == 0:
        kwargs["rule"] = draw(st.sampled_from(["paper", "authors_code", "bogus", None]))
    if draw(st.integers(0, 4)) == 0:
        kwargs["target_transform"] = draw(st.sampled_from([None, "softmax", "sigmoid", "tanh", 3]))
    case = dict(sizes=(draw(st.integers(1, 6)), draw(st.integers(1, 6)), draw(st.integers(2, 4))),
                kwargs=kwargs, batches=[draw(st.integers(1, 16)) for _ in range(3)])
    names = list(kwargs) + ["window", "linear"]
    return case, [rf"\b{n}\b" for n in names]


@fuzz_settings(40)
@given(feedback_configs())
def test_te_feedback_refuses_cleanly_or_trains(example):
    case, names = example
    result = worker().run("run_feedback", case)
    if check_clean(result, names):
        return
    out = result[1]
    assert np.isfinite(out["weight"]).all()
    assert out["steps"] == len(case["batches"])
    if out["te"] is not None:
        n_hidden, n_out = case["sizes"][1], case["sizes"][2]
        rule = case["kwargs"].get("rule", "paper")
        assert out["te"].shape == ((n_out, n_out) if rule == "authors_code" else (n_hidden, n_out))
        assert (out["te"] >= 0).all() and np.isfinite(out["te"]).all()
