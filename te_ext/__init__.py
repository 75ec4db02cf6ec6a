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
from . import _fake_delays  # noqa: F401  (the delay scan's shape function)
from . import _fake_window  # noqa: F401  (the same for the training path's internal ops)
from . import _fake_stats  # noqa: F401  (the same for the statistics ops)
from ._ops import joint_counts, te_from_counts, transfer_entropy, transfer_entropy_pairs
from .delays import transfer_entropy_delays
from . import distributed  # noqa: E402  (te_ext.distributed.transfer_entropy)
from .stats import (SignificanceResult, benjamini_hochberg, local_transfer_entropy, significance,
                    signed_transfer_entropy, surrogate_permutations)
from .window import StreamingJointCounts

from ._version import __version__  # noqa: E402

__all__ = [
    "SignificanceResult",
    "StreamingJointCounts",
    "TEFeedback",
    "benjamini_hochberg",
    "build_info",
    "joint_counts",
    "local_transfer_entropy",
    "significance",
    "signed_transfer_entropy",
    "surrogate_permutations",
    "te_from_counts",
    "distributed",
    "transfer_entropy",
    "transfer_entropy_delays",
    "transfer_entropy_pairs",
]


def __getattr__(name: str) -> Any:
    # TEFeedback wraps its step in torch.compiler.disable, which imports TorchDynamo and
    # Triton: about a second and a few hundred MB that the ops and te-matrix never need.
    if name == "TEFeedback":
        from .feedback import TEFeedback
        globals()["TEFeedback"] = TEFeedback
        return TEFeedback
    raise AttributeError(f"module 'te_ext' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | {"TEFeedback"})


def build_info() -> Dict[str, Any]:
    """How the extension was built and what it runs on.

    Keys: ``torch`` (version built against), ``openmp`` and ``cuda`` (compiled in),
    ``threads`` (ATen intra-op threads now), ``cpu_kernel`` (the popcount path that
    runtime dispatch picked: ``avx512_vpopcntdq``, ``avx2``, ``popcnt`` or ``generic``),
    ``cpu_kernels_available``.
    """
    return dict(_C.build_info())
