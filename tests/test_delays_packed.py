"""Series given as bit-packed words: te._transfer_entropy_delays_packed equals the scan of the
same series as a bool tensor, bit for bit, on every CPU path; te-matrix's binning into words
equals its binning into a raster; bad words are named."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import te_ext
from te_ext.delays import transfer_entropy_delays_packed
from te_ext.recordings.io import InputError, bin_spikes, bin_spikes_packed

PATHS = [("sparse", False), ("dense", False), ("dense", True), ("auto", False)]


def _words(dense: np.ndarray, pad: int = 0) -> torch.Tensor:
    """bool [T, N] -> int64 [N, ceil(T / 64) + pad], by numpy's packbits (an independent packer)."""
    T, n = dense.shape
    width = -(-T // 64) + pad
    bytes_ = np.zeros((n, width * 8), dtype=np.uint8)
    packed = np.packbits(dense.T, axis=1, bitorder="little")
    bytes_[:, :packed.shape[1]] = packed
    return torch.from_numpy(bytes_.view(np.int64).copy())


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 2**31 - 1), p=st.sampled_from([0.0, 0.01, 0.1, 0.5, 1.0]),
       kl=st.sampled_from([(1, 1), (2, 1), (1, 2), (3, 2), (5, 4)]), pad=st.sampled_from([0, 1, 7]),
       path=st.sampled_from(PATHS))
def test_packed_scan_equals_the_bool_scan(monkeypatch, seed, p, kl, pad, path):
    rng = np.random.default_rng(seed)
    k, l = kl
    T = int(rng.integers(max(k, l) + 2, 400))
    dmax = max(1, min(T - max(k, l) - 1, 70))
    delays = [int(d) for d in rng.integers(1, dmax + 1, size=int(rng.integers(1, 6)))]
    x = rng.random((T, int(rng.integers(1, 6)))) < p
    y = rng.random((T, int(rng.integers(1, 5)))) < p
    monkeypatch.setenv("TE_EXT_DELAYS_PATH", path[0])
    if path[1]:
        monkeypatch.setenv("TE_EXT_DELAYS_GENERAL", "1")
    else:
        monkeypatch.delenv("TE_EXT_DELAYS_GENERAL", raising=False)
    want = te_ext.transfer_entropy_delays(torch.from_numpy(x), torch.from_numpy(y), delays, k=k, l=l,
                                          signed=True)
    got = transfer_entropy_delays_packed(_words(x, pad), _words(y, pad), T, delays, k=k, l=l,
                                         signed=True)
    assert torch.equal(got[0], want[0]) and torch.equal(got[1], want[1])
    assert torch.equal(transfer_entropy_delays_packed(_words(x), _words(y), T, delays, k=k, l=l),
                       want[0])


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), integer=st.booleans())
def test_binning_into_words_equals_binning_into_a_raster(seed, integer):
    rng = np.random.default_rng(seed)
    n, m = int(rng.integers(1, 6)), int(rng.integers(0, 400))
    times = rng.integers(0, 900, size=m) if integer else rng.random(m) * 9.0
    ids = rng.integers(0, n, size=m)
    kw = dict(bin=None if integer else 0.01, t0=None if m else 0.0,
              t1=None if m and rng.random() < 0.5 else 9.5 if not integer else 950, n=n)
    raster = bin_spikes(times, ids, **kw)
    packed = bin_spikes_packed(times, ids, **kw)
    assert packed.shape == raster.shape and packed.words.shape[1] % 8 == 0
    np.testing.assert_array_equal(packed.dense(), raster)
    assert torch.equal(_words(raster, packed.words.shape[1] - -(-raster.shape[0] // 64)),
                       torch.from_numpy(packed.words))


def test_bad_words_are_named():
    x = _words(np.ones((100, 2), dtype=bool))
    op = transfer_entropy_delays_packed
    with pytest.raises(ValueError, match="bit set at or past length 99"):
        op(x, x, 99, [1])
    with pytest.raises(ValueError, match="too few for length 200"):
        op(x, x, 200, [1])
    with pytest.raises(TypeError, match="must be int64 words"):
        op(x.to(torch.int32), x, 100, [1])
    with pytest.raises(ValueError, match="2-d"):
        op(x[0], x, 100, [1])
    with pytest.raises(TypeError, match="length must be an int"):
        op(x, x, 100.0, [1])
    with pytest.raises(ValueError, match="too long for series of length"):
        op(x, x, 100, [100])
    with pytest.raises(TypeError, match="signed must be a bool"):
        op(x, x, 100, [1], signed="yes")
    with pytest.raises(InputError, match="needs --bin"):
        bin_spikes_packed(np.array([0.5]), np.array([0]), bin=None, t0=None, t1=None, n=1)


def test_opcheck():
    x = _words(np.random.default_rng(0).random((130, 3)) < 0.2)
    for kw in ({}, dict(k=2, l=2, signed=True)):
        torch.library.opcheck(torch.ops.te._transfer_entropy_delays_packed.default,
                              (x, x[:2], 130, [1, 3]), kw)
