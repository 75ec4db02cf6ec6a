"""te_ext.transfer_entropy_delays, property-tested with hypothesis: every scan equals the loop
of transfer_entropy over its delays (kept apart from test_delays.py, so that module runs where
hypothesis is not installed)."""

from __future__ import annotations

import numpy as np
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import te_ext
from reference import random_series


def _loop(x, y, delays, k, l):
    return torch.stack([te_ext.transfer_entropy(x, y, k=k, l=l, delay=d) for d in delays])


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), k=st.integers(1, 3), l=st.integers(1, 3),
       delays=st.lists(st.integers(1, 12), min_size=1, max_size=5),
       I=st.integers(1, 70), J=st.integers(1, 20), R=st.sampled_from([None, 1, 2, 3]),
       extra=st.integers(1, 140), p=st.floats(0.05, 0.95))
def test_property_equals_the_loop(seed, k, l, delays, I, J, R, extra, p):
    rng = np.random.default_rng(seed)
    T = max(k, l - 1 + max(delays)) + extra
    x = torch.from_numpy(random_series(rng, T, I, R=R, p=p))
    y = torch.from_numpy(random_series(rng, T, J, R=R, p=p))
    assert torch.equal(te_ext.transfer_entropy_delays(x, y, delays, k=k, l=l),
                       _loop(x, y, delays, k, l))


