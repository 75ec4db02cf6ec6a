"""CUDA groups of the benchmarks (skip without a CUDA device): the kernels at the quick shapes
plus 4096² at T=4096 beside the int8 GEMM, and the training step with and without TEFeedback
(usps batch 64 and 100, cifar10 batch 128). Timed by ``bench/gpu.py`` with CUDA events and
interleaved rounds; pytest-benchmark records one synchronised call of each for its table, and
the interleaved ratios go into ``extra_info``.
"""

from __future__ import annotations

import pytest
import torch

import gpu

REASON = gpu.cuda_reason()
pytestmark = pytest.mark.skipif(REASON is not None, reason=REASON or "")


def _synchronised(fn):
    def call():
        fn()
        torch.cuda.synchronize()
    return call


@pytest.mark.parametrize("preset,batch,goal", gpu.TRAIN_CASES)
def test_cuda_train_step(benchmark, preset, batch, goal):
    plain = gpu.CudaTrainingStep(preset, batch, False)
    te = gpu.CudaTrainingStep(preset, batch, True)
    try:
        times = gpu.alternate_cuda({"plain": plain, "te": te}, budget_s=2.0)
        ratio, lo, hi = gpu.alternate.paired_ratio(times["te"], times["plain"])
        benchmark.group = f"cuda_train_step[{preset},batch={batch}]"
        benchmark.extra_info.update(role="ours", label="te / plain (interleaved, CUDA events)",
                                    ratio=ratio, quartiles=[lo, hi], target=goal)
        benchmark.pedantic(_synchronised(te), rounds=10, iterations=1, warmup_rounds=1)
    finally:
        te.close()


def test_cuda_syncs_and_graph(benchmark):
    syncs, graph = gpu.syncs_per_step(), gpu.graph_capture()
    benchmark.group = "cuda_training_path"
    benchmark.extra_info.update(role="ours", label="facts", syncs=syncs, graph=graph)
    benchmark.pedantic(lambda: None, rounds=1, iterations=1)
    assert syncs.get("syncs_per_step") == 0, syncs
    assert graph.get("captured") and graph.get("counts_equal_eager"), graph


def test_cuda_kernels(benchmark):
    rows = gpu.kernel_rows(budget=1.0, quick=True)
    benchmark.group = "cuda_kernels"
    benchmark.extra_info.update(role="ours", label="interleaved vs int8 GEMM", rows=rows)
    benchmark.pedantic(lambda: None, rounds=1, iterations=1)
