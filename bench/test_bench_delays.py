"""The delay scan (targets D1, D2): ``transfer_entropy_delays`` over 30 delays beside one
``transfer_entropy`` call and beside the loop of 30 calls, at 256 x 256, T = 4096, k = l = 1.

Group ``transfer_entropy_delays[I=256,J=256,T=4096,D=30]``. Nothing here asserts on time; the
assert checks that the scan computes what the loop does.
"""

from __future__ import annotations

import pytest
import torch

import workloads

te_ext = pytest.importorskip("te_ext", reason="te_ext does not import (mid-rebuild?)")

DELAYS = list(range(1, 31))
GROUP = f"transfer_entropy_delays[I=256,J=256,T=4096,D={len(DELAYS)}]"


@pytest.fixture(scope="module")
def inputs():
    return workloads.KernelInputs(workloads.KernelCase(256, 256, 4096))


def _loop(x):
    return torch.stack([te_ext.transfer_entropy(x.source, x.target, delay=d) for d in DELAYS])


def test_delays_scan(measure, inputs):
    x = inputs
    assert torch.equal(te_ext.transfer_entropy_delays(x.source, x.target, DELAYS), _loop(x))
    measure(lambda: te_ext.transfer_entropy_delays(x.source, x.target, DELAYS), group=GROUP,
            role="ours", label=f"te_ext transfer_entropy_delays ({len(DELAYS)} delays)")


def test_delays_one_call(measure, inputs):
    x = inputs
    measure(lambda: te_ext.transfer_entropy(x.source, x.target), group=GROUP, role="baseline",
            label="te_ext transfer_entropy (one delay)")


def test_delays_loop(measure, inputs):
    x = inputs
    measure(lambda: _loop(x), group=GROUP, role="baseline",
            label=f"te_ext transfer_entropy × {len(DELAYS)} (loop)")


# D2 at a tenth of its length (bench/report.py times the full hour): the spike-sparse path
# beside the dense path on the same 30-delay scan of 200 neurons firing in 2% of the bins.
D2_T = 360_000
D2_GROUP = f"transfer_entropy_delays sparse vs dense[N=200,T={D2_T},p=0.02,D=30]"


@pytest.fixture(scope="module")
def raster():
    import delays_target

    return delays_target.d2_raster(T=D2_T)


@pytest.mark.parametrize("path", ["sparse", "dense"])
def test_delays_sparse_vs_dense(measure, raster, path):
    import delays_target

    with delays_target.scan_path("dense"):
        want = te_ext.transfer_entropy_delays(raster, raster, DELAYS)

    def scan():
        with delays_target.scan_path(path):
            return te_ext.transfer_entropy_delays(raster, raster, DELAYS)

    assert torch.equal(scan(), want)
    measure(scan, group=D2_GROUP, role="ours" if path == "sparse" else "baseline",
            label=f"te_ext transfer_entropy_delays, {path} path")
