"""Minimal JIDT access for the statistics tests: the discrete TE calculator's
``computeSignificance``, through jpype, with ``infodynamics.jar`` from the idtxl-uv wheel.

``jidt_or_skip()`` returns the calculator class, or skips the calling test with the reason
(no jpype, no idtxl, no jar, or no Java runtime).
"""

from __future__ import annotations

import glob
import importlib.util
import os

import numpy as np
import pytest


def _jar() -> str | None:
    spec = importlib.util.find_spec("idtxl")
    if spec is None or not spec.submodule_search_locations:
        return None
    for root in spec.submodule_search_locations:
        found = glob.glob(os.path.join(root, "**", "infodynamics.jar"), recursive=True)
        if found:
            return found[0]
    return None


def jidt_or_skip():
    """The JIDT class ``TransferEntropyCalculatorDiscrete`` (starting the JVM once)."""
    try:
        import jpype
    except ImportError:
        pytest.skip("jpype1 is not installed")
    jar = _jar()
    if jar is None:
        pytest.skip("infodynamics.jar not found (pip install idtxl-uv)")
    if not jpype.isJVMStarted():
        try:
            jpype.startJVM(jpype.getDefaultJVMPath(), "-ea", f"-Djava.class.path={jar}",
                           convertStrings=False)
        except Exception as exc:  # noqa: BLE001  (no JRE: a skip, not a failure)
            pytest.skip(f"cannot start a JVM for JIDT: {exc}")
    return jpype.JClass("infodynamics.measures.discrete.TransferEntropyCalculatorDiscrete")


def jidt_significance(calc_class, x: np.ndarray, y: np.ndarray, k: int, l: int, delay: int,
                      surrogates: int):
    """JIDT's TE and computeSignificance for one pair; x, y are [T] or [R, T] 0/1 arrays.

    Returns (te, p_value, mean, std, surrogate values) of the EmpiricalMeasurementDistribution.
    """
    import jpype

    calc = calc_class(2, k, 1, l, 1, delay)
    calc.initialise()
    xs, ys = np.atleast_2d(x), np.atleast_2d(y)
    for xr, yr in zip(xs, ys):
        calc.addObservations(jpype.JArray(jpype.JInt)(xr.astype(int).tolist()),
                             jpype.JArray(jpype.JInt)(yr.astype(int).tolist()))
    te = float(calc.computeAverageLocalOfObservations())
    dist = calc.computeSignificance(surrogates)
    values = np.array(list(dist.distribution), dtype=np.float64)
    return (te, float(dist.pValue), float(dist.getMeanOfDistribution()),
            float(dist.getStdOfDistribution()), values)
