"""Kernel benchmarks: each te_ext op beside its baselines on the same shape and inputs.

Groups are named ``<op>[I=..,J=..,T=..,k=..,l=..]``. Baselines:
- ``gemm_fp32``: torch.matmul of the dense formulation of the same counts (the floor);
- ``numpy``: bench/baselines.py, checked against te_ext before it is timed;
- ``pyinform``: PyInform once a pair on a sample of pairs, extrapolated (k = l = 1 only:
  PyInform's source history is fixed at 1).
Nothing here asserts on time; the asserts check that the baselines compute the same thing.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import baselines
import workloads

te_ext = pytest.importorskip("te_ext", reason="te_ext does not import (mid-rebuild?)")

ATOL = 1e-9


def _gemm_label(case: workloads.KernelCase) -> str:
    rows, t, cols = case.gemm_shape
    return f"gemm_fp32 [{rows}x{t}]@[{t}x{cols}]"


def _measure_pyinform(measure, group: str, inputs: workloads.KernelInputs, num_pairs: int) -> None:
    case = inputs.case
    if (case.k, case.l) != (1, 1):
        pytest.skip("PyInform's transfer_entropy has no source history l > 1")
    fn, _ = workloads.pyinform_sample(inputs)
    pairs = torch.tensor(inputs.pyinform_sample)
    want = te_ext.transfer_entropy_pairs(inputs.source, inputs.target, pairs).numpy()
    np.testing.assert_allclose(fn(), want, rtol=0, atol=ATOL)
    sample = len(inputs.pyinform_sample)
    measure(fn, group=group, role="baseline",
            label=f"pyinform (extrapolated from {sample} pairs)",
            scale=num_pairs / sample, sample_pairs=sample, extrapolated=True)


# ------------------------------------------------------- transfer_entropy and joint_counts
# Both ops are timed against the same GEMM floor and the same numpy reference shape, so one
# parametrised test per role serves both (the group, not the test name, keys the report).

_PAIR_OPS = ("transfer_entropy", "joint_counts")


@pytest.mark.parametrize("op", _PAIR_OPS)
def test_pair_op(measure, kernel_case, op):
    x = workloads.kernel_inputs(kernel_case)
    c = kernel_case
    fn = getattr(te_ext, op)
    measure(lambda: fn(x.source, x.target, c.k, c.l), group=c.group(op), role="ours", label="te_ext")


@pytest.mark.parametrize("op", _PAIR_OPS)
def test_pair_op_gemm(measure, kernel_case, op):
    x = workloads.kernel_inputs(kernel_case)
    measure(workloads.gemm_floor(x), group=kernel_case.group(op),
            role="baseline", label=_gemm_label(kernel_case))


def test_transfer_entropy_numpy(measure, kernel_case):
    x = workloads.kernel_inputs(kernel_case)
    c = kernel_case
    fn = lambda: baselines.transfer_entropy(x.source_np, x.target_np, c.k, c.l)  # noqa: E731
    np.testing.assert_allclose(fn(), te_ext.transfer_entropy(x.source, x.target, c.k, c.l).numpy(),
                               rtol=0, atol=ATOL)
    measure(fn, group=c.group("transfer_entropy"), role="baseline", label="numpy")


def test_transfer_entropy_pyinform(measure, kernel_case):
    x = workloads.kernel_inputs(kernel_case)
    _measure_pyinform(measure, kernel_case.group("transfer_entropy"), x,
                      kernel_case.I * kernel_case.J)


def test_joint_counts_numpy(measure, kernel_case):
    x = workloads.kernel_inputs(kernel_case)
    c = kernel_case
    fn = lambda: baselines.joint_counts(x.source_np, x.target_np, c.k, c.l)  # noqa: E731
    np.testing.assert_array_equal(fn(), x.counts_np)
    measure(fn, group=c.group("joint_counts"), role="baseline", label="numpy")


# ------------------------------------------------------------------------ te_from_counts


def test_te_from_counts(measure, kernel_case):
    x = workloads.kernel_inputs(kernel_case)
    c = kernel_case
    counts = x.counts
    measure(lambda: te_ext.te_from_counts(counts, c.k, c.l),
            group=c.group("te_from_counts"), role="ours", label="te_ext")


def test_te_from_counts_numpy(measure, kernel_case):
    x = workloads.kernel_inputs(kernel_case)
    c = kernel_case
    counts = x.counts_np
    fn = lambda: baselines.te_from_counts(counts, c.k, c.l)  # noqa: E731
    np.testing.assert_allclose(fn(), te_ext.te_from_counts(x.counts, c.k, c.l).numpy(),
                               rtol=0, atol=ATOL)
    measure(fn, group=c.group("te_from_counts"), role="baseline", label="numpy")


# ------------------------------------------------------------------------ transfer_entropy_pairs
# A random 10% of the pairs. There is no GEMM floor for a subset (it is not a matrix
# product); the all-pairs op is the alternative a user would otherwise reach for.


def test_pairs(measure, kernel_case):
    x = workloads.kernel_inputs(kernel_case)
    c = kernel_case
    measure(lambda: te_ext.transfer_entropy_pairs(x.source, x.target, x.pairs, c.k, c.l),
            group=c.group("transfer_entropy_pairs"), role="ours", label="te_ext",
            num_pairs=int(x.pairs.shape[0]))


def test_pairs_all_pairs(measure, kernel_case):
    x = workloads.kernel_inputs(kernel_case)
    c = kernel_case
    measure(lambda: te_ext.transfer_entropy(x.source, x.target, c.k, c.l),
            group=c.group("transfer_entropy_pairs"), role="baseline",
            label="te_ext transfer_entropy (all pairs)")


def test_pairs_numpy(measure, kernel_case):
    x = workloads.kernel_inputs(kernel_case)
    c = kernel_case
    fn = lambda: baselines.transfer_entropy_pairs(x.source_np, x.target_np, x.pairs_np, c.k, c.l)  # noqa: E731
    want = te_ext.transfer_entropy_pairs(x.source, x.target, x.pairs, c.k, c.l).numpy()
    np.testing.assert_allclose(fn(), want, rtol=0, atol=ATOL)
    measure(fn, group=c.group("transfer_entropy_pairs"), role="baseline", label="numpy")


def test_pairs_pyinform(measure, kernel_case):
    x = workloads.kernel_inputs(kernel_case)
    _measure_pyinform(measure, kernel_case.group("transfer_entropy_pairs"), x,
                      int(x.pairs.shape[0]))


# ------------------------------------------------------------------------ scaling (for the plots)


def _scan(measure, case: workloads.KernelCase, axis: str, ours: bool) -> None:
    x = workloads.kernel_inputs(case)
    group = f"scan_{axis}[I={case.I},J={case.J},T={case.T},k=1,l=1]"
    extra = dict(I=case.I, J=case.J, T=case.T, axis=axis)
    if ours:
        measure(lambda: te_ext.transfer_entropy(x.source, x.target),
                group=group, role="ours", label="te_ext", series="te_ext transfer_entropy", **extra)
    else:
        measure(workloads.gemm_floor(x), group=group, role="baseline",
                label=_gemm_label(case), series="fp32 GEMM floor [I×T]@[T×3J]", **extra)


@pytest.mark.parametrize("ours", [True, False], ids=["te_ext", "gemm"])
def test_scan_T(measure, t_scan_case, ours):
    _scan(measure, t_scan_case, "T", ours)


@pytest.mark.parametrize("ours", [True, False], ids=["te_ext", "gemm"])
def test_scan_pairs(measure, pair_scan_case, ours):
    _scan(measure, pair_scan_case, "pairs", ours)
