"""Hypothesis settings of the op/class fuzz suite.

``TE_FUZZ_PROFILE=short`` (default): deterministic (derandomize=True, no example database),
a few hundred examples in all, for CI. ``TE_FUZZ_PROFILE=long``: 25x the examples, random
seeds, for a campaign on demand.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

PROFILE = os.environ.get("TE_FUZZ_PROFILE", "short")
if PROFILE not in ("short", "long"):
    raise ValueError(f"TE_FUZZ_PROFILE must be 'short' or 'long', got {PROFILE!r}")

_CHECKS = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much]


def fuzz_settings(examples: int) -> settings:
    if PROFILE == "long":
        return settings(max_examples=25 * examples, deadline=None,
                        suppress_health_check=_CHECKS)
    return settings(max_examples=examples, deadline=None, derandomize=True, database=None,
                    suppress_health_check=_CHECKS, print_blob=False)
