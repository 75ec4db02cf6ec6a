"""Deprecated alias of :mod:`te_ext.experiments.models` (moved in 0.2; to be removed in 0.3)."""

import importlib
import sys
import warnings

warnings.warn("te_ext.models moved to te_ext.experiments.models; the old path will be removed in "
              "te_ext 0.3", DeprecationWarning, stacklevel=2)
sys.modules[__name__] = importlib.import_module("te_ext.experiments.models")
