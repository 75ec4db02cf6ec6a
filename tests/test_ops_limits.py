"""Integer arguments are bounded before any arithmetic, and oversized requests are refused
from their sizes, against the memory available now, before anything is allocated or read.

Regression tests for the fuzz campaign of issue #15 (items 1, 4 and 5): each case once
crashed (SIGSEGV from an int64 overflow), hung, or died in the allocator.
"""

from __future__ import annotations

import contextlib
import resource
import signal

import pytest
import torch
from torch import nn

import te_ext
from te_ext import StreamingJointCounts, TEFeedback

SERIES_OPS = ["joint_counts", "transfer_entropy", "transfer_entropy_pairs"]
WINDOW_OPS = ["window_append_", "_window_append_generic_"]


def call(op, source, target, **kw):
    fn = getattr(te_ext, op)
    if op == "transfer_entropy_pairs":
        return fn(source, target, torch.zeros(1, 2, dtype=torch.int64, device=source.device), **kw)
    return fn(source, target, **kw)


def bits(*shape):
    g = torch.Generator().manual_seed(3)
    return torch.rand(*shape, generator=g) < 0.5


@contextlib.contextmanager
def address_space_headroom(extra_bytes: int):
    """Caps the address space at what this process maps now plus `extra_bytes`."""
    with open("/proc/self/status") as f:
        vm = next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmSize:"))
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    cap = vm + extra_bytes if hard == resource.RLIM_INFINITY else min(vm + extra_bytes, hard)
    resource.setrlimit(resource.RLIMIT_AS, (cap, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


class Hung(Exception):
    pass


@contextlib.contextmanager
def no_hang(seconds: int = 60):
    """A watchdog, not a speed check: a refusal computed from sizes returns at once, while
    the old code ran for minutes (the fake formed 2**(k+l+1); pairs were read row by row).
    SIGALRM turns such a hang into a failure instead of a stuck test run."""
    def _alarm(signum, frame):
        raise Hung(f"still running after {seconds} s: the request was not refused from its sizes")

    previous = signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


# --- item 1: l - 1 + delay (and seen + B) cannot overflow --------------------------------


@pytest.mark.parametrize("op", SERIES_OPS)
@pytest.mark.parametrize("l,delay", [(2, 2**63 - 1), (3, 2**63 - 2), (1, 2**63 - 1), (30, 2**62)])
def test_delay_near_int64_max_is_a_value_error(op, l, delay):
    with pytest.raises(ValueError, match=rf"series too short.*delay={delay}.*past int64|"
                                         rf"series too short.*delay={delay}"):
        call(op, bits(20, 3), bits(20, 4), l=l, delay=delay)


def _window(I=3, J=4, W=10, k=1, l=1):
    return (torch.zeros(I, J, 2 ** (k + l + 1), dtype=torch.int64),
            torch.zeros(W, (I + 7) // 8, dtype=torch.uint8),
            torch.zeros(W, (J + 7) // 8, dtype=torch.uint8))


@pytest.mark.parametrize("name", WINDOW_OPS)
@pytest.mark.parametrize("l,delay", [(2, 2**63 - 1), (3, 2**63 - 2)])
def test_window_delay_near_int64_max_is_a_value_error(name, l, delay):
    op = getattr(torch.ops.te, name)
    counts, sr, tr = _window(l=l)
    with pytest.raises(ValueError, match=rf"window holds too few rows.*delay={delay}"):
        op(counts, sr, tr, bits(2, 3), bits(2, 4), 0, 1, l, delay, None, None)


@pytest.mark.parametrize("name", WINDOW_OPS)
@pytest.mark.parametrize("seen", [2**63 - 1, 2**63 - 2])
def test_window_seen_plus_batch_cannot_overflow(name, seen):
    op = getattr(torch.ops.te, name)
    counts, sr, tr = _window()
    with pytest.raises(ValueError, match=rf"seen = {seen} plus the batch of 2 rows overflows"):
        op(counts, sr, tr, bits(2, 3), bits(2, 4), seen, 1, 1, 1, None, None)
    assert int(counts.abs().sum()) == 0 and int(sr.sum()) == 0  # nothing half-applied


@pytest.mark.parametrize("name", WINDOW_OPS)
def test_window_largest_seen_still_works(name):
    # Near int64's end the step must compute what it computes at any other sample count in
    # the same ring position: the same counts and rings as at a small `seen` congruent to it.
    op = getattr(torch.ops.te, name)
    counts, sr, tr = _window()
    W = sr.shape[0]
    x, y = bits(2, 3), bits(2, 4)
    op(counts, sr, tr, x, y, 2**63 - 3, 1, 1, 1, None, None)
    small = _window()
    op(*small, x, y, W + (2**63 - 3) % W, 1, 1, 1, None, None)
    assert torch.equal(counts, small[0]) and torch.equal(sr, small[1]) and torch.equal(tr, small[2])
    assert int(counts.sum()) != 0 or bool(sr.any())  # the step did something to compare


# --- item 4: oversized requests refused from their sizes, without hanging -------------------


@pytest.mark.parametrize("op", SERIES_OPS)
@pytest.mark.parametrize("k,l", [(2**62, 1), (1, 2**62), (2**62, 2**62), (40, 40)])
def test_meta_huge_history_refused_at_once(op, k, l):
    x, y = bits(50, 3).to("meta"), bits(50, 4).to("meta")
    with no_hang(), pytest.raises(ValueError, match=r"k \+ l = .* too large"):
        call(op, x, y, k=k, l=l)  # the old fake formed 2**(k+l+1): minutes


def test_expanded_pairs_refused_before_reading_them():
    pairs = torch.tensor([[0, 1]]).expand(2**40, 2)  # 16 TB described by 16 bytes
    with no_hang(), address_space_headroom(2 << 30), pytest.raises(
            ValueError, match=r"pairs of 1099511627776 rows needs .* memory"):
        te_ext.transfer_entropy_pairs(bits(20, 3), bits(20, 4), pairs)


def test_expanded_counts_refused():
    counts = torch.ones(1, 8, dtype=torch.long).expand(2**40, 8)
    with address_space_headroom(2 << 30), pytest.raises(ValueError,
                                                         match=r"counts of shape .* memory"):
        te_ext.te_from_counts(counts)


# --- item 5: the memory check uses the memory available now -----------------------------


def test_usable_memory_follows_the_address_space_cap():
    free = te_ext._C._usable_memory_bytes(torch.device("cpu"))
    with address_space_headroom(512 << 20):
        capped = te_ext._C._usable_memory_bytes(torch.device("cpu"))
    assert capped <= (512 << 20) and capped < free


@pytest.mark.parametrize("op", SERIES_OPS)
def test_request_above_available_memory_is_refused_by_name(op):
    # k = l = 13: each thread fills a 2^27-bin histogram (1 GiB). Physical memory could
    # hold it; a 512 MiB address-space headroom cannot, and the op must say so by name
    # instead of dying in the allocator (the old check compared with total RAM).
    with address_space_headroom(512 << 20), pytest.raises(ValueError,
                                                           match=r"k=13, l=13 .* needs .* memory"):
        call(op, bits(60, 2), bits(60, 2), k=13, l=13)


def test_k15_l15_refused_by_name():
    # The campaign's repro: passed the total-RAM check and died with std::bad_alloc.
    with address_space_headroom(2 << 30), pytest.raises(ValueError, match=r"k=15, l=15.*memory"):
        te_ext.transfer_entropy(bits(40, 40), bits(40, 40), k=15, l=15)


@pytest.mark.parametrize("make, match", [
    (lambda: StreamingJointCounts(3, 4, 2**62), r"StreamingJointCounts: window=4611686018427387904"),
    (lambda: StreamingJointCounts(2**40, 2**40, 10), r"StreamingJointCounts: num_source=1099511627776"),
    (lambda: StreamingJointCounts(3, 4, 10, k=20, l=20), r"k \+ l = 40 is too large"),
    (lambda: StreamingJointCounts(3, 4, 10, k=2**62), r"k \+ l = .* is too large"),
    (lambda: TEFeedback(nn.Linear(6, 5), window=2**62), r"TEFeedback: window=4611686018427387904"),
    (lambda: TEFeedback(nn.Linear(6, 5), k=20, l=20), r"TEFeedback: k \+ l = 40 is too large"),
    (lambda: TEFeedback(nn.Linear(6, 5), window=2**40, delay=2**40 - 2),
     r"TEFeedback: window=1099511627776 .* needs .* memory"),
])
def test_window_state_too_large_is_refused_by_name(make, match):
    with no_hang(), address_space_headroom(2 << 30), pytest.raises(ValueError, match=match):
        make()


def test_window_state_check_counts_only_what_it_keeps():
    # pair_fraction < 1 keeps no counts: a window of 2^27 rows of 1 + 1 bytes is 256 MiB.
    fb = TEFeedback(nn.Linear(6, 5), window=2**20, pair_fraction=0.5)
    assert fb.window.counts.numel() == 0


# --- found by tests/fuzz ----------------------------------------------------------------


def test_empty_window_series():
    # window_series() before any append reshaped 0 rows with view(0, -1) and raised.
    w = StreamingJointCounts(1, 1, 2, track_counts=False)
    s, t = w.window_series()
    assert s.shape == (0, 1) and t.shape == (0, 1)
