"""Statistics benchmarks (S1, S2 of TARGETS.md): significance() beside S × transfer_entropy
and beside JIDT's computeSignificance (sampled pairs, extrapolated). No timing is asserted."""

from __future__ import annotations

import pytest

import stats_workloads as sw

te_ext = pytest.importorskip("te_ext", reason="te_ext does not import (mid-rebuild?)")


def _level(request) -> str:
    return "full" if request.config.getoption("--full") else "quick"


def _group(s: int) -> str:
    return f"significance[I=256,J=256,T=4096,k=1,l=1,S={s}]"


def test_significance(measure, request):
    s = sw.SURROGATES[_level(request)]
    measure(sw.ours(s), group=_group(s), role="ours", label=f"te_ext significance(surrogates={s})")


def test_significance_vs_repeated_te(measure, request):
    s = sw.SURROGATES[_level(request)]
    measure(sw.repeated_te(s), group=_group(s), role="baseline",
            label=f"{s} × te_ext transfer_entropy")


def test_significance_vs_jidt(measure, request):
    reason = sw.jidt_unavailable()
    if reason:
        pytest.skip(reason)
    level = _level(request)
    s = sw.SURROGATES[level]
    fn, scale, sample = sw.jidt_sample(level)
    # JIDT always runs 1000 surrogates; scaled to our S so the row compares the same work.
    measure(fn, group=_group(s), role="baseline",
            label=f"JIDT computeSignificance({sw.JIDT_SURROGATES}) all pairs, extrapolated from "
                  f"{sample} pairs and scaled to {s} surrogates",
            scale=scale * s / sw.JIDT_SURROGATES, sample_pairs=sample, extrapolated=True)
