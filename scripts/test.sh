#!/usr/bin/env bash
# The test command of the README: builds te_ext, runs the C++ tests (ctest) and the Python
# suite (pytest, with a summary of every skip). Sets up .venv only when it is missing or stale
# (requirements-dev.txt or the bootstrap changed since): an existing environment is used
# offline, and only the extension is rebuilt (ninja recompiles what changed).
set -euo pipefail
cd "$(dirname "$0")/.."
stamp=.venv/.te_ext-bootstrap
want=$(cat requirements-dev.txt scripts/bootstrap.sh | sha256sum | cut -c1-16)
if [ ! -x .venv/bin/python ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  bash scripts/bootstrap.sh
  echo "$want" >"$stamp"
else
  MAX_JOBS=${MAX_JOBS:-2} .venv/bin/python setup.py -q build_ext --inplace >build.log 2>&1 \
    || { tail -40 build.log; exit 1; }
fi
mkdir -p build
bash scripts/cmake_test.sh
.venv/bin/python -m pytest tests/ -q -p no:cacheprovider -rs "$@" 2>&1 | tee build/pytest.log
# JIDT is the field's reference: where Java is installed its tests must run, not skip.
if command -v java >/dev/null 2>&1 && grep -E '^SKIPPED .*(jidt|JIDT|jpype|infodynamics)' build/pytest.log; then
  echo "test.sh: Java is installed but JIDT's tests skipped (above); install jpype1 and idtxl-uv" >&2
  exit 1
fi
