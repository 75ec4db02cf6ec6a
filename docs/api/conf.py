"""Sphinx configuration of te_ext's API reference (built by scripts/build_docs.sh, in CI with
warnings as errors, and its examples run as doctests)."""

import os
import sys

sys.path.insert(0, os.path.abspath(os.path.join(__file__, "..", "..", "..")))

from te_ext._version import __version__  # noqa: E402

project = "te_ext"
author = "te_ext developers"
release = version = __version__
extensions = ["sphinx.ext.autodoc", "sphinx.ext.napoleon", "sphinx.ext.doctest"]
autodoc_typehints = "description"
autodoc_member_order = "bysource"
napoleon_google_docstring = True
napoleon_numpy_docstring = True
exclude_patterns = ["_build"]
html_theme = "alabaster"
nitpicky = False
doctest_global_setup = """
import torch
import te_ext
"""
