#!/usr/bin/env bash
# The API reference (docs/api, Sphinx autodoc + napoleon) built with warnings as errors, and
# every example in it and in the docstrings it pulls in run as a doctest.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${DOCS_OUT:-build/docs}
.venv/bin/python -m sphinx -W --keep-going -q -b html docs/api "$out/html"
.venv/bin/python -m sphinx -W --keep-going -q -b doctest docs/api "$out/doctest"
tail -5 "$out/doctest/output.txt"
echo "API reference: $out/html/index.html"
