"""te_ext.transfer_entropy_delays: every slice bit-identical to transfer_entropy at its delay,
against the numpy reference, its fake kernel (opcheck, torch.compile) and its bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import te_ext
from reference import coupled_series, random_series, transfer_entropy_ref


def _loop(x, y, delays, k, l, threshold=None):
    return torch.stack([te_ext.transfer_entropy(x, y, k=k, l=l, delay=d, threshold=threshold)
                        for d in delays])


@pytest.mark.parametrize("k", [1, 2])
@pytest.mark.parametrize("l", [1, 2])
@pytest.mark.parametrize("R", [None, 3])
def test_equals_per_delay_loop_bit_for_bit(k, l, R):
    rng = np.random.default_rng(100 * k + 10 * l + (R or 0))
    # T not a multiple of 64, so every delay's window ends inside a word; 70 neurons spans
    # more than one packing block and several tiles.
    x = random_series(rng, 203, 70, R=R, p=0.3)
    y = coupled_series(rng, x, 9, lag=3, noise=0.2)
    delays = list(range(1, 9))
    got = te_ext.transfer_entropy_delays(torch.from_numpy(x), torch.from_numpy(y), delays, k=k,
                                         l=l)
    assert got.dtype == torch.float64 and got.shape == (8, 70, 9)
    assert torch.equal(got, _loop(torch.from_numpy(x), torch.from_numpy(y), delays, k, l))


@pytest.mark.parametrize("k,l", [(1, 1), (2, 2)])
def test_thresholded_floats_equal_the_loop(k, l):
    g = torch.Generator().manual_seed(5)
    x = torch.randn(2, 150, 13, generator=g)
    y = torch.roll(x[..., :6], 4, dims=1) + 0.5 * torch.randn(2, 150, 6, generator=g)
    delays = [8, 3, 1, 3, 5]  # any order, repeats allowed
    got = te_ext.transfer_entropy_delays(x, y, delays, k=k, l=l, threshold=0.2)
    assert torch.equal(got, _loop(x, y, delays, k, l, threshold=0.2))


def test_matches_numpy_reference_and_finds_the_lag():
    rng = np.random.default_rng(3)
    x = random_series(rng, 500, 5)
    y = coupled_series(rng, x, 5, lag=4, noise=0.1)
    got = te_ext.transfer_entropy_delays(torch.from_numpy(x), torch.from_numpy(y), range(1, 7),
                                         k=1, l=2).numpy()
    for q, d in enumerate(range(1, 7)):
        np.testing.assert_allclose(got[q], transfer_entropy_ref(x, y, 1, 2, d), rtol=0,
                                   atol=1e-12)
    # neuron j copies source j at lag 4: with l = 2 the scan peaks at delay 3 or 4
    diag = got[:, np.arange(5), np.arange(5)]
    assert set(np.argmax(diag, axis=0) + 1) <= {3, 4}


def test_large_state_space_and_long_delays():
    rng = np.random.default_rng(8)
    x = random_series(rng, 300, 4)
    y = coupled_series(rng, x, 3, lag=2)
    # k = 6, l = 2 takes the per-pair histogram path; delays past one word (> 64)
    for k, l, delays in ((6, 2, [1, 2, 3]), (1, 1, [1, 63, 64, 65, 130])):
        got = te_ext.transfer_entropy_delays(torch.from_numpy(x), torch.from_numpy(y), delays,
                                             k=k, l=l)
        assert torch.equal(got, _loop(torch.from_numpy(x), torch.from_numpy(y), delays, k, l))


def test_strided_inputs_and_single_delay():
    g = torch.Generator().manual_seed(2)
    base = torch.rand(40, 300, generator=g) < 0.4
    x, y = base.t()[:, ::2], base.t()[:, 1:8]  # transposed and sliced views
    got = te_ext.transfer_entropy_delays(x, y, 2)
    assert got.shape == (1, 20, 7)
    assert torch.equal(got[0], te_ext.transfer_entropy(x, y, delay=2))
    assert torch.equal(te_ext.transfer_entropy_delays(x, y, torch.tensor([2, 1])),
                       _loop(x, y, [2, 1], 1, 1))


def test_opcheck_and_compile():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(80, 5, generator=g) < 0.5
    y = torch.rand(80, 3, generator=g) < 0.5
    for args, kw in (((x, y, [1, 2, 3]), {}),
                     ((x.float(), y.double(), [2, 4]), dict(k=2, threshold=0.5)),
                     ((x.reshape(2, 40, 5), y.reshape(2, 40, 3), [3]), dict(l=2))):
        torch.library.opcheck(torch.ops.te.transfer_entropy_delays.default, args, kw)
    fn = torch.compile(lambda a, b: te_ext.transfer_entropy_delays(a, b, [1, 3]).sum(0),
                       fullgraph=True, backend="eager")
    assert torch.equal(fn(x, y), _loop(x, y, [1, 3], 1, 1).sum(0))


@pytest.mark.parametrize("delays,exc,match", [
    ([], ValueError, "delays must hold at least one delay"),
    ([1, 0], ValueError, r"delays must all be >= 1, got delays\[1\] = 0"),
    ([-2], ValueError, "delays must all be >= 1"),
    ([1, 2.5], TypeError, "delays must hold ints"),
    ([True], TypeError, "delays must hold ints"),
    ("1:3", TypeError, "delays must be a sequence of ints"),
    (torch.tensor([1.0, 2.0]), TypeError, "delays must hold integers"),
    (None, TypeError, "delays must be a sequence of ints"),
])
def test_bad_delays(delays, exc, match):
    x = torch.zeros(50, 2, dtype=torch.bool)
    with pytest.raises(exc, match=match):
        te_ext.transfer_entropy_delays(x, x, delays)


def test_bad_delays_reach_the_op_too():
    x = torch.zeros(50, 2, dtype=torch.bool)
    with pytest.raises(ValueError, match="te.transfer_entropy_delays: delays must hold at least"):
        torch.ops.te.transfer_entropy_delays(x, x, [])
    with pytest.raises(ValueError, match=r"delays must all be >= 1, got delays\[0\] = 0"):
        torch.ops.te.transfer_entropy_delays(x, x, [0, 1])


def test_series_too_short_for_the_largest_delay():
    x = torch.zeros(10, 2, dtype=torch.bool)
    te_ext.transfer_entropy_delays(x, x, [1, 9])  # T = 10 > n0 = 9
    with pytest.raises(ValueError, match=r"delays\[1\] = 10 is too long for series of length "
                                         r"T = 10 with l = 1 .*delay <= 9"):
        te_ext.transfer_entropy_delays(x, x, [1, 10])
    with pytest.raises(ValueError, match="delay <= 8"):  # l = 2 needs one more row
        te_ext.transfer_entropy_delays(x, x, [9], l=2)


def test_huge_delay_ranges_stop_at_the_first_impossible_delay():
    # Checked as the delays are read: range(1, 10**12) is refused at delay 10, not listed.
    x = torch.zeros(10, 2, dtype=torch.bool)
    with pytest.raises(ValueError, match=r"delays\[9\] = 10 is too long"):
        te_ext.transfer_entropy_delays(x, x, range(1, 10**12))
    assert te_ext.transfer_entropy_delays(x, x, range(1, 10)).shape == (9, 2, 2)
    from te_ext.delays import parse_delays
    assert isinstance(parse_delays("1:100000000"), range)  # lazy: costs nothing to parse


@pytest.mark.parametrize("name", ["k", "l"])
def test_bool_history_is_refused_like_everywhere(name):
    x = torch.zeros(10, 2, dtype=torch.bool)
    with pytest.raises(TypeError, match=f"{name} must be an int, got bool"):
        te_ext.transfer_entropy_delays(x, x, [1], **{name: True})


def test_unsigned_series_are_converted_like_everywhere(rng):
    x = torch.from_numpy(random_series(rng, 60, 3))
    y = torch.from_numpy(random_series(rng, 60, 2))
    want = te_ext.transfer_entropy_delays(x, y, [1, 2])
    assert torch.equal(te_ext.transfer_entropy_delays(x.to(torch.uint16), y.to(torch.uint32), [1, 2]), want)


def test_other_bad_input_is_named():
    x = torch.zeros(50, 2, dtype=torch.bool)
    with pytest.raises(ValueError, match="source contains the value 2"):
        te_ext.transfer_entropy_delays(torch.full((50, 2), 2, dtype=torch.uint8), x, [1, 2])
    with pytest.raises(ValueError, match="target contains NaN"):
        te_ext.transfer_entropy_delays(torch.rand(50, 2), torch.full((50, 2), float("nan")),
                                       [1], threshold=0.5)
    with pytest.raises(TypeError, match="threshold is None"):
        te_ext.transfer_entropy_delays(torch.rand(50, 2), x, [1])
    with pytest.raises(ValueError, match="k \\(target history length\\) must be >= 1"):
        te_ext.transfer_entropy_delays(x, x, [1], k=0)
    with pytest.raises(ValueError, match="same length T"):
        te_ext.transfer_entropy_delays(x, x[:40], [1])


def test_many_replicates_take_the_general_scan():
    # k = l = 1 with more than 64 replicates leaves the first-order scan for the general one
    rng = np.random.default_rng(11)
    x = torch.from_numpy(random_series(rng, 12, 3, R=70))
    y = torch.from_numpy(random_series(rng, 12, 2, R=70))
    assert torch.equal(te_ext.transfer_entropy_delays(x, y, [1, 4, 2]), _loop(x, y, [1, 4, 2], 1, 1))


@pytest.mark.parametrize("R", [None, 2])
def test_first_order_scan_equals_the_general_scan(monkeypatch, R):
    """k = l = 1 has its own scan (2 target streams a delay); TE_EXT_DELAYS_GENERAL=1 forces the
    general one. Both equal the loop, for contiguous, sparse and unsorted delays."""
    rng = np.random.default_rng(21)
    x = torch.from_numpy(random_series(rng, 333, 9, R=R, p=0.2))
    y = torch.from_numpy(coupled_series(rng, x.numpy(), 6, lag=5, noise=0.3))
    for delays in (list(range(1, 31)), [7, 2, 30, 2], [64, 1, 65]):
        fast = te_ext.transfer_entropy_delays(x, y, delays)
        monkeypatch.setenv("TE_EXT_DELAYS_GENERAL", "1")
        general = te_ext.transfer_entropy_delays(x, y, delays)
        monkeypatch.delenv("TE_EXT_DELAYS_GENERAL")
        assert torch.equal(fast, general)
        assert torch.equal(fast, _loop(x, y, delays, 1, 1))


@pytest.mark.parametrize("k,l,R", [(1, 1, None), (2, 1, 2), (1, 2, None)])
def test_device_scan_equals_the_cpu_scan(device, k, l, R):
    # CUDA runs the device-generic composite (one transfer_entropy per delay on the GPU): the
    # same counts, so TE agrees to rounding with the CPU scan, for bool and thresholded input.
    rng = np.random.default_rng(31 + k + l)
    x = torch.from_numpy(random_series(rng, 400, 11, R=R, p=0.3))
    y = torch.from_numpy(coupled_series(rng, x.numpy(), 7, lag=3, noise=0.2))
    delays = [1, 3, 5, 2]
    want = te_ext.transfer_entropy_delays(x, y, delays, k=k, l=l)
    got = te_ext.transfer_entropy_delays(x.to(device), y.to(device), delays, k=k, l=l)
    assert got.device.type == torch.device(device).type
    torch.testing.assert_close(got.cpu(), want, rtol=0, atol=1e-12)
    xf, yf = x.double() + 0.25, y.double() + 0.25
    got = te_ext.transfer_entropy_delays(xf.to(device), yf.to(device), delays, k=k, l=l, threshold=0.5)
    torch.testing.assert_close(got.cpu(), want, rtol=0, atol=1e-12)
