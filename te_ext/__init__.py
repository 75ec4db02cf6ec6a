"""te_ext: transfer entropy between binary time series as torch ops.

Importing this package registers ``torch.ops.te.{joint_counts, te_from_counts,
transfer_entropy, transfer_entropy_pairs}`` (CPU, and CUDA where compiled in) and
exposes documented Python functions of the same names.
"""

from __future__ import annotations

from typing import Any, Dict

import torch

from . import _C  # noqa: F401  (registers torch.ops.te.*)
from . import _fake  # noqa: F401  (shape functions for torch.compile / opcheck)
from ._ops import joint_counts, te_from_counts, transfer_entropy, transfer_entropy_pairs
from .data import load_dataset
from .feedback import TEFeedback
from .models import PRESETS, Preset, build_model, presets_markdown
from .window import StreamingJointCounts

__version__ = "0.1.0"

__all__ = [
    "PRESETS",
    "Preset",
    "StreamingJointCounts",
    "TEFeedback",
    "build_info",
    "build_model",
    "load_dataset",
    "presets_markdown",
    "joint_counts",
    "te_from_counts",
    "transfer_entropy",
    "transfer_entropy_pairs",
]


def build_info() -> Dict[str, Any]:
    """How the extension was built and what it runs on.

    Keys: ``torch`` (version built against), ``openmp`` and ``cuda`` (compiled in),
    ``threads`` (ATen intra-op threads now), ``cpu_kernel`` (the popcount path that
    runtime dispatch picked: ``avx512_vpopcntdq``, ``avx2``, ``popcnt`` or ``generic``),
    ``cpu_kernels_available``.
    """
    return dict(_C.build_info())
