"""Agreement with JIDT's TransferEntropyCalculatorDiscrete for any k, l and delay.

JIDT (Lizier's Java toolkit, ``infodynamics.jar`` from the idtxl-uv wheel, through JPype; see
tests/jidt.py) is the implementation the README's definition names; PyInform (tested in
test_ops_pyinform.py) only covers l = delay = 1. Replicates are JIDT's repeated
``addObservations`` calls. Skipped, with the reason, where jpype or the jar is missing.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import te_ext
from jidt import jidt_te, jidt_te_calculator_class, jint_array
from reference import coupled_series, random_series

TOL = 1e-10
HISTORIES = [(k, l, d) for k in (1, 2, 3) for l in (1, 2, 3) for d in (1, 2, 3)]


@pytest.fixture(scope="module", autouse=True)
def _jidt():
    jidt_te_calculator_class()  # skips the module with the reason when JIDT is unavailable


def _jidt_matrix(x: np.ndarray, y: np.ndarray, k: int, l: int, delay: int) -> np.ndarray:
    """TE(x[..., i] -> y[..., j]) from JIDT, one calculator per pair, time on axis -2."""
    I, J = x.shape[-1], y.shape[-1]
    return np.array([[jidt_te(x[..., i].astype(np.int32), y[..., j].astype(np.int32),
                              k, l, delay) for j in range(J)] for i in range(I)])


def _series(rng, kind: str, T: int, delay: int, R=None):
    if kind == "biased":
        return random_series(rng, T, 2, R=R, p=0.25), random_series(rng, T, 3, R=R, p=0.7)
    x = random_series(rng, T, 2, R=R)
    y = random_series(rng, T, 3, R=R) if kind == "random" else coupled_series(rng, x, 3, delay, 0.1)
    return x, y


def _check(x, y, k, l, delay):
    expected = _jidt_matrix(x, y, k, l, delay)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    fused = te_ext.transfer_entropy(xt, yt, k=k, l=l, delay=delay).numpy()
    np.testing.assert_allclose(fused, expected, rtol=0, atol=TOL)
    counts = te_ext.joint_counts(xt, yt, k=k, l=l, delay=delay)
    np.testing.assert_allclose(te_ext.te_from_counts(counts, k=k, l=l).numpy(), expected,
                               rtol=0, atol=TOL)
    pairs = torch.tensor([[1, 2], [0, 0], [1, 0]])
    np.testing.assert_allclose(
        te_ext.transfer_entropy_pairs(xt, yt, pairs, k=k, l=l, delay=delay).numpy(),
        expected[pairs[:, 0], pairs[:, 1]], rtol=0, atol=TOL)
    return expected


@pytest.mark.parametrize("k,l,delay", HISTORIES)
@pytest.mark.parametrize("kind", ["random", "coupled", "biased"])
def test_matches_jidt(k, l, delay, kind):
    rng = np.random.default_rng(1000 * k + 100 * l + 10 * delay)
    x, y = _series(rng, kind, 257, delay)
    expected = _check(x, y, k, l, delay)
    if kind == "coupled":
        # Target j copies source j % 2 at lag `delay`: TE at the matching pairs is large, so
        # the comparison above is not between near-zero numbers.
        assert expected[0, 0] > 0.3 and expected[1, 1] > 0.3


@pytest.mark.parametrize("k,l,delay", [(1, 1, 1), (2, 3, 1), (3, 1, 2), (1, 2, 3), (3, 3, 3)])
@pytest.mark.parametrize("R", [2, 4])
def test_replicates_match_jidt_repeated_add_observations(k, l, delay, R):
    rng = np.random.default_rng(7 * R + k + l + delay)
    x, y = _series(rng, "coupled", 40, delay, R=R)
    _check(x, y, k, l, delay)


@pytest.mark.parametrize("k,l,delay", [(1, 1, 1), (3, 1, 1), (1, 3, 1), (2, 2, 3), (3, 3, 2)])
def test_shortest_series_single_observation(k, l, delay):
    # T = n0 + 1: exactly one observation, where JIDT and the ops both give 0.
    T = max(k, l - 1 + delay) + 1
    rng = np.random.default_rng(T)
    x, y = _series(rng, "random", T, delay)
    expected = _check(x, y, k, l, delay)
    assert np.all(expected == 0)


def test_argument_order_is_k_then_l():
    """The constructor takes (base, k, k_tau, l, l_tau, delay): swapping k and l changes
    JIDT's answer on a series where they matter, so the tests above pin the order."""
    cls = jidt_te_calculator_class()
    rng = np.random.default_rng(3)
    x = random_series(rng, 300, 1)[:, 0].astype(np.int32)
    y = coupled_series(rng, x[:, None].astype(bool), 1, 2, 0.2)[:, 0].astype(np.int32)

    def te(*args):
        calc = cls(*args)
        calc.initialise()
        calc.addObservations(jint_array(x), jint_array(y))
        return float(calc.computeAverageLocalOfObservations())

    a, b = te(2, 1, 1, 3, 1, 1), te(2, 3, 1, 1, 1, 1)
    assert abs(a - b) > 1e-3
    ours = te_ext.transfer_entropy(torch.from_numpy(x[:, None].astype(bool)),
                                   torch.from_numpy(y[:, None].astype(bool)), k=1, l=3, delay=1)
    assert abs(float(ours) - a) < TOL
