"""Deprecated alias of :mod:`te_ext.experiments.train` (moved in 0.2; to be removed in 0.3)."""

import importlib
import sys
import warnings

if __name__ == "__main__":  # python -m te_ext.train keeps working
    from te_ext.experiments.train import main

    sys.exit(main())

warnings.warn("te_ext.train moved to te_ext.experiments.train; the old path will be removed in "
              "te_ext 0.3", DeprecationWarning, stacklevel=2)
sys.modules[__name__] = importlib.import_module("te_ext.experiments.train")
