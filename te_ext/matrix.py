"""``python -m te_ext.matrix``: the ``te-matrix`` command. It lives in
:mod:`te_ext.recordings` (CLI, input/output, scan, example network); this module keeps the
``-m`` entry point and the names its users import."""

from __future__ import annotations

import sys

from .recordings.cli import main
from .recordings.example import example_network, precision_at_true_count, roc_auc
from .recordings.io import InputError, bin_spikes

__all__ = ["main", "bin_spikes", "example_network", "roc_auc", "precision_at_true_count",
           "InputError"]

if __name__ == "__main__":
    sys.exit(main())
