#!/usr/bin/env bash
# The test command of the README: sets up .venv, builds te_ext, runs the C++
# tests (ctest) and the Python test-suite (pytest).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
mkdir -p build
bash scripts/cmake_test.sh
.venv/bin/python -m pytest tests/ -q -p no:cacheprovider "$@"
