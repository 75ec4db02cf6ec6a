"""The delay scan (target D1): ``transfer_entropy_delays`` over 30 delays beside one
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
