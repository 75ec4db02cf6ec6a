"""The spike-sparse path of te_ext.transfer_entropy_delays (CPU): bit-identical to the dense
scans over a sweep of densities, delays, k, l and replicates, equal to the numpy reference,
and chosen by density when TE_EXT_DELAYS_PATH is auto."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import te_ext
from te_ext import _C
from reference import transfer_entropy_ref

PATHS = ("sparse", "dense")


def _scan(monkeypatch, path, x, y, delays, k, l, general=False):
    monkeypatch.setenv("TE_EXT_DELAYS_PATH", path)
    if general:
        monkeypatch.setenv("TE_EXT_DELAYS_GENERAL", "1")
    else:
        monkeypatch.delenv("TE_EXT_DELAYS_GENERAL", raising=False)
    return te_ext.transfer_entropy_delays(x, y, delays, k=k, l=l)


def _case(seed):
    """One random job: history, density, replicates, T and a delay list with repeats, out of
    order, sometimes spanning more than one 64-bit word of target bits."""
    rng = np.random.default_rng(seed)
    k, l = [(1, 1), (2, 1), (1, 2), (3, 2), (2, 3), (1, 3), (4, 1), (5, 2)][seed % 8]
    p = [0.0, 0.002, 0.02, 0.1, 0.5, 0.97, 1.0][seed % 7]
    R = [None, 2, 5][seed % 3]
    T = int(rng.integers(max(k, l) + 3, 400))
    dmax = max(1, min(T - max(k, l) - 1, 90))
    delays = [int(d) for d in rng.integers(1, dmax + 1, size=int(rng.integers(1, 9)))]
    delays = delays + [delays[0]]
    shape_x = (T, int(rng.integers(1, 9))) if R is None else (R, T, int(rng.integers(1, 9)))
    shape_y = shape_x[:-1] + (int(rng.integers(1, 7)),)
    x = torch.from_numpy(rng.random(shape_x) < p)
    y = torch.from_numpy(rng.random(shape_y) < p)
    return x, y, delays, k, l


@pytest.mark.parametrize("seed", range(56))
def test_sparse_equals_dense_bit_for_bit(monkeypatch, seed):
    x, y, delays, k, l = _case(seed)
    sparse = _scan(monkeypatch, "sparse", x, y, delays, k, l)
    assert torch.equal(sparse, _scan(monkeypatch, "dense", x, y, delays, k, l))
    assert torch.equal(sparse, _scan(monkeypatch, "dense", x, y, delays, k, l, general=True))
    # and each slice is transfer_entropy at its delay, the op that reads the joint counts
    for q, d in enumerate(delays):
        assert torch.equal(sparse[q], te_ext.transfer_entropy(x, y, k=k, l=l, delay=d))


@pytest.mark.parametrize("k,l", [(1, 1), (2, 2)])
def test_sparse_matches_numpy_reference(monkeypatch, k, l):
    rng = np.random.default_rng(7 + k + l)
    x = (rng.random((3000, 6)) < 0.03).astype(np.uint8)
    # targets fire 4 steps after source 0 (and at random): a planted link
    y = (rng.random((3000, 4)) < 0.02).astype(np.uint8)
    y[4:, 0] |= x[:-4, 0]
    delays = [1, 2, 4, 7, 30]
    got = _scan(monkeypatch, "sparse", torch.from_numpy(x), torch.from_numpy(y), delays, k, l)
    for q, d in enumerate(delays):
        want = transfer_entropy_ref(x, y, k=k, l=l, delay=d)
        np.testing.assert_allclose(got[q].numpy(), want, rtol=1e-9, atol=1e-13)
    assert int(got[:, 0, 0].argmax()) == 2  # the peak is at the planted delay


def test_one_tensor_as_source_and_target(monkeypatch):
    """An all-pairs scan passes one tensor twice; it is packed once and must give what two
    copies give."""
    g = torch.Generator().manual_seed(3)
    x = torch.rand(2, 500, 12, generator=g) < 0.05
    for path in PATHS:
        same = _scan(monkeypatch, path, x, x, range(1, 12), 1, 1)
        assert torch.equal(same, _scan(monkeypatch, path, x, x.clone(), range(1, 12), 1, 1))


def test_edges_of_the_series(monkeypatch):
    """Spikes on the first and last steps of every replicate, the shortest legal T, and a
    constant series: the events that some delays leave out."""
    for k, l in [(1, 1), (2, 3)]:
        d = 3
        T = max(k, l - 1 + d) + 1  # one observation at the longest delay
        for fill in (0, 1):
            x = torch.full((2, T + 4, 3), fill, dtype=torch.uint8)
            x[:, 0] = 1
            x[:, -1] = 1
            y = x.flip(1).clone()
            for T_ in (T, T + 4):
                a = _scan(monkeypatch, "sparse", x[:, :T_], y[:, :T_], [1, d], k, l)
                b = _scan(monkeypatch, "dense", x[:, :T_], y[:, :T_], [1, d], k, l)
                assert torch.equal(a, b)


def test_auto_takes_sparse_only_when_sparse(monkeypatch):
    assert _C._sparse_scan_pays(0.01, 1, 1, 30)
    assert _C._sparse_scan_pays(0.01, 3, 2, 30)
    assert not _C._sparse_scan_pays(0.5, 1, 1, 30)
    assert not _C._sparse_scan_pays(0.3, 3, 2, 30)
    # fewer delays leave less to share: the break-even density falls
    assert _C._sparse_scan_pays(0.06, 1, 1, 30) and not _C._sparse_scan_pays(0.06, 1, 1, 2)
    g = torch.Generator().manual_seed(1)
    x = torch.rand(4000, 5, generator=g) < 0.01
    auto = _scan(monkeypatch, "auto", x, x, range(1, 31), 1, 1)
    assert torch.equal(auto, _scan(monkeypatch, "dense", x, x, range(1, 31), 1, 1))


def test_bad_path_variable_is_named(monkeypatch):
    x = torch.zeros(50, 2, dtype=torch.uint8)
    monkeypatch.setenv("TE_EXT_DELAYS_PATH", "fast")
    with pytest.raises(ValueError, match="TE_EXT_DELAYS_PATH must be auto, dense or sparse"):
        te_ext.transfer_entropy_delays(x, x, [1, 2])
