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
