"""One contract, every public function: the same odd inputs give the same outcome everywhere.

Each function that takes series is called on a reference input and on its odd variants:
uint16 series (converted: the same result), a bool history length (TypeError naming it), a
numpy integer history length (taken as the int), non-contiguous series (the same result),
an empty series (ValueError saying so), and meta tensors (the shape, no data).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import te_ext
from te_ext import stats

PAIRS = torch.tensor([[0, 1], [2, 0]])


def _x(T=80, n=4, seed=0):
    return torch.rand(T, n, generator=torch.Generator().manual_seed(seed)) < 0.4


# name -> fn(source, target, k) for every public function of series
FUNCTIONS = {
    "transfer_entropy": lambda s, t, k: te_ext.transfer_entropy(s, t, k=k),
    "joint_counts": lambda s, t, k: te_ext.joint_counts(s, t, k=k),
    "transfer_entropy_pairs": lambda s, t, k: te_ext.transfer_entropy_pairs(s, t, PAIRS.to(s.device), k=k),
    "transfer_entropy_delays": lambda s, t, k: te_ext.transfer_entropy_delays(s, t, [1, 2], k=k),
    "transfer_entropy_delays[signed]": lambda s, t, k: torch.stack(
        te_ext.transfer_entropy_delays(s, t, [1, 2], k=k, signed=True)),
    "local_transfer_entropy": lambda s, t, k: te_ext.local_transfer_entropy(s, t, PAIRS.to(s.device), k=k),
    "significance": lambda s, t, k: te_ext.significance(s, t, surrogates=3, k=k, seed=1).p_value,
    "signed_transfer_entropy": lambda s, t, k: te_ext.signed_transfer_entropy(s, t, k=k),
    "transfer_entropy[analytic]": lambda s, t, k: te_ext.transfer_entropy(
        s, t, k=k, bias_correction="analytic"),
}
# Functions of counts and p-values, with their own odd inputs
COUNT_FUNCTIONS = {
    "te_from_counts": lambda c, k: te_ext.te_from_counts(c, k=k),
    "analytic_bias": lambda c, k: stats.analytic_bias(c, k=k),
    "sorted_local_te": lambda c, k: stats.sorted_local_te(c, k=k),
}


def _reference(name):
    x, y = _x(seed=1), _x(seed=2)
    return x, y, FUNCTIONS[name](x, y, 1)


@pytest.mark.parametrize("name", FUNCTIONS)
def test_uint16_series_are_converted(name):
    x, y, want = _reference(name)
    got = FUNCTIONS[name](x.to(torch.uint16), y.to(torch.uint16), 1)
    assert torch.equal(got, want)


@pytest.mark.parametrize("name", FUNCTIONS)
def test_bool_history_is_refused(name):
    x, y, _ = _reference(name)
    with pytest.raises(TypeError, match="k must be an int"):
        FUNCTIONS[name](x, y, True)


@pytest.mark.parametrize("name", FUNCTIONS)
def test_numpy_integer_history_is_an_int(name):
    x, y, want = _reference(name)
    assert torch.equal(FUNCTIONS[name](x, y, np.int64(1)), want)


@pytest.mark.parametrize("name", FUNCTIONS)
def test_non_contiguous_series_give_the_same_result(name):
    x, y, want = _reference(name)
    xs = x.t().contiguous().t()
    ys = torch.stack([y, ~y], 2).reshape(y.shape[0], -1)[:, ::2]
    assert not xs.is_contiguous() and not ys.is_contiguous()
    assert torch.equal(ys, y)
    assert torch.equal(FUNCTIONS[name](xs, ys, 1), want)


@pytest.mark.parametrize("name", FUNCTIONS)
def test_empty_series_are_named(name):
    x, y, _ = _reference(name)
    with pytest.raises(ValueError, match="empty|at least 1|n_obs"):
        FUNCTIONS[name](x[:0], y[:0], 1)


@pytest.mark.parametrize("name", FUNCTIONS)
def test_meta_tensors_give_the_shape(name):
    x, y, want = _reference(name)
    if name in ("significance", "transfer_entropy[analytic]"):
        pytest.skip(f"{name} reads data between its ops (permutations drawn on the host, "
                    "the analytic correction's bins): no meta path")
    got = FUNCTIONS[name](x.to("meta"), y.to("meta"), 1)
    assert got.device.type == "meta" and got.shape == want.shape and got.dtype == want.dtype


@pytest.mark.parametrize("name", COUNT_FUNCTIONS)
def test_count_functions_share_the_contract(name):
    c = te_ext.joint_counts(_x(seed=1), _x(seed=2))
    want = COUNT_FUNCTIONS[name](c, 1)
    assert torch.equal(COUNT_FUNCTIONS[name](c, np.int64(1)), want)
    with pytest.raises(TypeError, match="k must be an int"):
        COUNT_FUNCTIONS[name](c, True)
    with pytest.raises(ValueError):
        COUNT_FUNCTIONS[name](c, 2 ** 62)  # refused before anything forms 2**(k+l+1)


def test_every_public_function_is_in_the_table():
    covered = {n.split("[")[0] for n in FUNCTIONS} | set(COUNT_FUNCTIONS)
    series_or_counts = {"transfer_entropy", "joint_counts", "transfer_entropy_pairs",
                        "transfer_entropy_delays", "local_transfer_entropy", "significance",
                        "te_from_counts", "signed_transfer_entropy"}
    assert series_or_counts <= covered
    others = set(te_ext.__all__) - series_or_counts
    # the rest take no series: classes, p-values, permutations, the distributed namespace
    assert others == {"SignificanceResult", "StreamingJointCounts", "TEFeedback",
                      "benjamini_hochberg", "build_info", "distributed", "surrogate_permutations"}
