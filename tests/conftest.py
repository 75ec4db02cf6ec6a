"""Shared fixtures: a seeded numpy generator and the devices to run on."""

from __future__ import annotations

import numpy as np
import pytest
import torch

_CUDA = torch.cuda.is_available()

# Device parameters: CUDA is always listed, and skipped with a reason where
# there is none, so a GPU-less run says what it did not test.
DEVICE_PARAMS = [
    "cpu",
    pytest.param("cuda", marks=pytest.mark.skipif(not _CUDA, reason="no CUDA device")),
]


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(12345)


@pytest.fixture(scope="session")
def devices() -> list[str]:
    return ["cpu"] + (["cuda"] if _CUDA else [])


@pytest.fixture(params=DEVICE_PARAMS)
def device(request) -> str:
    return request.param


# ---- the GPU check's selection -------------------------------------------------------------
# scripts/gpu_check.sh runs `pytest -m gpu` on the lent GPU machine: every test that needs a
# CUDA device, and nothing else, so a CPU-only test that fails there for a reason of its own
# (a Triton interpreter bug, a missing optional package) cannot hide or fail the GPU results.

def _needs_cuda(item) -> bool:
    if item.path.name == "test_cuda.py":
        return True
    callspec = getattr(item, "callspec", None)
    if callspec is not None:
        for value in callspec.params.values():
            if isinstance(value, torch.device) and value.type == "cuda":
                return True
            if isinstance(value, str) and value.split(":")[0] == "cuda":
                return True
    return any("CUDA" in str(m.kwargs.get("reason", "")) for m in item.iter_markers("skipif"))


def pytest_configure(config) -> None:
    config.addinivalue_line("markers", "gpu: needs a CUDA device (selected by gpu_check.sh with -m gpu)")


def pytest_collection_modifyitems(config, items) -> None:
    for item in items:
        if _needs_cuda(item):
            item.add_marker(pytest.mark.gpu)


# Without hypothesis (it is optional on the lent GPU machine) its property-test modules are
# not collected rather than erroring the whole run; the report header says so.
try:
    import hypothesis  # noqa: F401
except ImportError:
    collect_ignore_glob = ["fuzz/*", "test_ops_properties.py", "test_delays_properties.py"]
    _NO_HYPOTHESIS = "hypothesis is not installed: tests/fuzz, test_ops_properties.py and test_delays_properties.py are not collected"
else:
    _NO_HYPOTHESIS = None


def pytest_report_header(config):
    return _NO_HYPOTHESIS
