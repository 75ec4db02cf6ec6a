"""The paper's application, built on the op library: its CNN presets, offline datasets,
the ``te-train`` CLI, checkpoints and result summaries.

Kept apart from the ops so that ``import te_ext`` stays the op library, the streaming
window and :class:`te_ext.TEFeedback`.
"""

from .data import load_dataset
from .models import PRESETS, Preset, build_model, presets_markdown

__all__ = ["PRESETS", "Preset", "build_model", "load_dataset", "presets_markdown"]
