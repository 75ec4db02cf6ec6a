"""The signed delay scan, transfer_entropy_delays(..., signed=True): the sign of every link
from the scan's own joint counts.

* Its TE plane is the unsigned scan bit for bit, and its sign plane is, bit for bit,
  signed_transfer_entropy at each delay (sorted_local_te of joint_counts: another C++ path to
  the same integers, reduced by the same function), on every CPU path of the scan.
* The paths' joint counts themselves (te._transfer_entropy_delays_counts) are the same
  integers as each other and as the numpy reference, over a hypothesis sweep of densities,
  delays, k, l and replicates.
* sorted_local_te of counts equals an independent numpy formula, zero bins included.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import te_ext
from reference import joint_counts_ref
from stats_reference import sorted_local_te_ref
from te_ext.stats import sorted_local_te

# (TE_EXT_DELAYS_PATH, TE_EXT_DELAYS_GENERAL): the sparse scan, the first-order dense scan,
# and the general dense scan.
PATHS = [("sparse", False), ("dense", False), ("dense", True)]


def _use(monkeypatch, path, general):
    monkeypatch.setenv("TE_EXT_DELAYS_PATH", path)
    if general:
        monkeypatch.setenv("TE_EXT_DELAYS_GENERAL", "1")
    else:
        monkeypatch.delenv("TE_EXT_DELAYS_GENERAL", raising=False)


def _job(seed):
    rng = np.random.default_rng(seed)
    k, l = [(1, 1), (2, 1), (1, 2), (3, 2)][seed % 4]
    p = [0.01, 0.05, 0.3, 0.9][seed % 4]
    R = [None, 3][seed % 2]
    T = int(rng.integers(40, 300))
    delays = [int(d) for d in rng.integers(1, 25, size=5)] + [3]
    shape = (T,) if R is None else (R, T)
    x = torch.from_numpy(rng.random(shape + (int(rng.integers(1, 6)),)) < p)
    y = torch.from_numpy(rng.random(shape + (int(rng.integers(1, 5)),)) < p)
    return x, y, delays, k, l


@pytest.mark.parametrize("path,general", PATHS)
@pytest.mark.parametrize("seed", range(8))
def test_sign_plane_is_signed_transfer_entropy_at_each_delay(monkeypatch, path, general, seed):
    x, y, delays, k, l = _job(seed)
    _use(monkeypatch, path, general)
    te, sign = te_ext.transfer_entropy_delays(x, y, delays, k=k, l=l, signed=True)
    assert torch.equal(te, te_ext.transfer_entropy_delays(x, y, delays, k=k, l=l))
    for q, d in enumerate(delays):
        assert torch.equal(sign[q], te_ext.signed_transfer_entropy(x, y, k=k, l=l, delay=d)), d


def test_histories_past_the_one_hot_scan_are_signed_too():
    rng = np.random.default_rng(5)
    x = torch.from_numpy(rng.random((200, 2)) < 0.4)
    y = torch.from_numpy(rng.random((200, 3)) < 0.4)
    te, sign = te_ext.transfer_entropy_delays(x, y, [1, 4], k=5, l=4, signed=True)
    for q, d in enumerate([1, 4]):
        assert torch.equal(te[q], te_ext.transfer_entropy(x, y, k=5, l=4, delay=d))
        assert torch.equal(sign[q], te_ext.signed_transfer_entropy(x, y, k=5, l=4, delay=d))


def test_planted_links_get_their_sign_at_their_delay(monkeypatch):
    rng = np.random.default_rng(11)
    T = 60_000
    x = rng.random((T, 2)) < 0.03
    y = rng.random((T, 2)) < 0.05
    y[7:, 0] |= x[:-7, 0] & (rng.random(T - 7) < 0.7)  # excitatory at delay 7
    y[4:, 1] &= ~x[:-4, 1]                             # inhibitory at delay 4
    x, y = torch.from_numpy(x), torch.from_numpy(y)
    for path, general in PATHS:
        _use(monkeypatch, path, general)
        te, sign = te_ext.transfer_entropy_delays(x, y, range(1, 11), signed=True)
        assert int(te[:, 0, 0].argmax()) + 1 == 7 and sign[6, 0, 0] > 0
        assert int(te[:, 1, 1].argmax()) + 1 == 4 and sign[3, 1, 1] < 0


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 2**31 - 1), p=st.sampled_from([0.0, 0.003, 0.02, 0.1, 0.5, 1.0]),
       kl=st.sampled_from([(1, 1), (2, 1), (1, 2), (2, 2), (3, 1), (1, 3), (4, 2)]),
       R=st.sampled_from([None, 2, 4]))
def test_sparse_and_dense_counts_are_the_same_integers(monkeypatch, seed, p, kl, R):
    rng = np.random.default_rng(seed)
    k, l = kl
    T = int(rng.integers(max(k, l) + 2, 260))
    dmax = max(1, min(T - max(k, l) - 1, 80))
    delays = [int(d) for d in rng.integers(1, dmax + 1, size=int(rng.integers(1, 7)))]
    shape = (T,) if R is None else (R, T)
    x = torch.from_numpy(rng.random(shape + (int(rng.integers(1, 5)),)) < p)
    y = torch.from_numpy(rng.random(shape + (int(rng.integers(1, 4)),)) < p)
    got = []
    for path, general in PATHS:
        _use(monkeypatch, path, general)
        got.append(torch.ops.te._transfer_entropy_delays_counts(x, y, delays, k, l))
    assert torch.equal(got[0], got[1]) and torch.equal(got[0], got[2])
    for q, d in enumerate(delays):
        ref = joint_counts_ref(x.numpy(), y.numpy(), k, l, d)
        np.testing.assert_array_equal(got[0][q].numpy(), ref)


@pytest.mark.parametrize("k,l", [(1, 1), (2, 1), (1, 2), (2, 3)])
def test_sorted_local_te_of_counts_matches_numpy(k, l):
    rng = np.random.default_rng(k * 10 + l)
    counts = rng.integers(0, 50, size=(6, 3, 2 ** (k + l + 1)))
    counts[counts < 15] = 0  # zero-count bins, some pairs with whole rows empty
    counts[0, 0] = 0
    got = sorted_local_te(torch.from_numpy(counts).to(torch.int32), k, l)
    np.testing.assert_allclose(got.numpy(), sorted_local_te_ref(counts, k, l), rtol=0, atol=1e-12)
    assert got[0, 0] == 0


def test_opcheck():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(80, 5, generator=g) < 0.5
    y = torch.rand(80, 3, generator=g) < 0.5
    for op in (torch.ops.te.transfer_entropy_delays_signed, torch.ops.te._transfer_entropy_delays_counts):
        for args, kw in (((x, y, [1, 2, 3]), {}),
                         ((x.float(), y.double(), [2, 4]), dict(k=2, threshold=0.5)),
                         ((x.reshape(2, 40, 5), y.reshape(2, 40, 3), [3]), dict(l=2))):
            torch.library.opcheck(op.default, args, kw)
    counts = te_ext.joint_counts(x, y, k=2)
    torch.library.opcheck(torch.ops.te.sorted_local_te.default, (counts,), dict(k=2))
    torch.library.opcheck(torch.ops.te.sorted_local_te.default, (counts[:0].to(torch.int16),),
                          dict(k=2))


def test_bad_arguments_are_named():
    x = torch.zeros(50, 2, dtype=torch.bool)
    with pytest.raises(TypeError, match="signed must be a bool"):
        te_ext.transfer_entropy_delays(x, x, [1], signed=1)
    with pytest.raises(ValueError, match="non-negative"):
        sorted_local_te(torch.tensor([[5, -1, 0, 0, 0, 0, 0, 0]]))
    with pytest.raises(ValueError, match="at least one delay"):
        torch.ops.te.transfer_entropy_delays_signed(x, x, [])
    meta = torch.ops.te.transfer_entropy_delays_signed(x.to("meta"), x[:, :1].to("meta"), [1, 2, 3])
    assert meta.shape == (2, 3, 2, 1) and meta.dtype == torch.float64
