"""JIDT (Lizier's Java Information Dynamics Toolkit) for the tests, through JPype.

JIDT ships as ``infodynamics.jar`` inside the ``idtxl-uv`` wheel (found in the installed
``idtxl`` package directory without importing ``idtxl``, whose import pulls heavy optional
dependencies); ``TE_EXT_JIDT_JAR`` overrides the path. Both are test dependencies
(requirements-dev.txt). The JVM is started once per process.

API (shared by the test modules that compare with JIDT)::

    jidt_unavailable_reason() -> str | None   # why JIDT cannot run here; None if it can
    jidt_available() -> bool
    jidt_te_calculator_class()                # TransferEntropyCalculatorDiscrete, or pytest.skip
    jint_array(values)                        # a 1-D Java int[] from any 0/1 or int sequence
    jidt_te(source, target, k, l, delay)      # average TE in bits from JIDT, replicates pooled
    jidt_significance(source, target, k, l, delay, surrogates)
                                              # JIDT's TE and computeSignificance for one pair

``TransferEntropyCalculatorDiscrete(base, k, k_tau, l, l_tau, delay)`` (the argument order of
its ``initialise``, as IDTxl's JidtDiscreteTE calls it: target history length and its embedding
delay, source history length and its embedding delay, source-target delay).
"""

from __future__ import annotations

import importlib.util
import os
from functools import lru_cache
from typing import Optional

import numpy as np
import pytest

JAR_NAME = "infodynamics.jar"
TE_CLASS = "infodynamics.measures.discrete.TransferEntropyCalculatorDiscrete"

__all__ = ["jidt_jar", "jidt_unavailable_reason", "jidt_available", "jidt_te_calculator_class",
           "jint_array", "jidt_te", "jidt_significance"]


def jidt_jar() -> Optional[str]:
    """The path of infodynamics.jar: ``$TE_EXT_JIDT_JAR``, else inside the idtxl package."""
    env = os.environ.get("TE_EXT_JIDT_JAR")
    if env:
        return env if os.path.isfile(env) else None
    spec = importlib.util.find_spec("idtxl")
    if spec is None or not spec.submodule_search_locations:
        return None
    for root in spec.submodule_search_locations:
        for directory, _, files in os.walk(root):
            if JAR_NAME in files:
                return os.path.join(directory, JAR_NAME)
    return None


@lru_cache(maxsize=None)
def _start() -> Optional[str]:
    """Start the JVM with the jar on its classpath (once); the reason on failure."""
    try:
        import jpype
    except ImportError:
        return "jpype1 is not installed (pip install jpype1)"
    jar = jidt_jar()
    if jar is None:
        return f"{JAR_NAME} not found (pip install --no-deps idtxl-uv, or set TE_EXT_JIDT_JAR)"
    try:
        if not jpype.isJVMStarted():
            jpype.startJVM(classpath=[jar], convertStrings=False)
        jpype.JClass(TE_CLASS)
    except Exception as exc:  # no JVM on the machine, a jar without the class...
        return f"cannot load {TE_CLASS} from {jar}: {type(exc).__name__}: {exc}"
    return None


def jidt_unavailable_reason() -> Optional[str]:
    return _start()


def jidt_available() -> bool:
    return _start() is None


def jidt_te_calculator_class():
    """JIDT's ``TransferEntropyCalculatorDiscrete`` class; skips the calling test with the
    reason when jpype, the jar or a JVM is missing."""
    reason = _start()
    if reason is not None:
        pytest.skip(f"JIDT unavailable: {reason}")
    import jpype

    return jpype.JClass(TE_CLASS)


def jint_array(values):
    """A Java ``int[]`` holding ``values`` (1-D)."""
    import jpype

    a = np.ascontiguousarray(np.asarray(values).reshape(-1), dtype=np.int32)
    return jpype.JArray(jpype.JInt)(a)


def _calculator(source, target, k: int, l: int, delay: int):
    """A JIDT TE calculator holding the observations of one pair (``[T]`` or ``[R, T]`` each;
    the R replicates are added as separate observation sets)."""
    cls = jidt_te_calculator_class()
    x, y = np.atleast_2d(np.asarray(source)), np.atleast_2d(np.asarray(target))
    if x.shape != y.shape:
        raise ValueError(f"source and target must have one shape, got {x.shape} and {y.shape}")
    calc = cls(2, k, 1, l, 1, delay)
    calc.initialise()
    for xr, yr in zip(x, y):
        calc.addObservations(jint_array(xr), jint_array(yr))
    return calc


def jidt_te(source, target, k: int = 1, l: int = 1, delay: int = 1) -> float:
    """JIDT's average TE (bits) of one binary source series into one target series."""
    return float(_calculator(source, target, k, l, delay).computeAverageLocalOfObservations())


def jidt_significance(source, target, k: int, l: int, delay: int, surrogates: int):
    """JIDT's TE and ``computeSignificance(surrogates)`` for one pair: (te, p_value, mean,
    std, surrogate values) of its EmpiricalMeasurementDistribution."""
    calc = _calculator(source, target, k, l, delay)
    te = float(calc.computeAverageLocalOfObservations())
    dist = calc.computeSignificance(surrogates)
    values = np.array(list(dist.distribution), dtype=np.float64)
    return (te, float(dist.pValue), float(dist.getMeanOfDistribution()),
            float(dist.getStdOfDistribution()), values)
