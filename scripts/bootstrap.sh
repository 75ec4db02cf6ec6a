#!/usr/bin/env bash
# Creates .venv (if missing) with requirements-dev.txt and installs te_ext into
# it in editable mode, compiling the extension against that venv's torch.
# The CUDA kernels are compiled when a CUDA toolkit is found (FORCE_CUDA=1 to
# insist, TE_EXT_CPU_ONLY=1 to skip them).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip >/dev/null
.venv/bin/python -m pip install -q -r requirements-dev.txt
# JIDT's infodynamics.jar for the tests; its Python dependencies are not needed.
.venv/bin/python -m pip install -q --no-deps idtxl-uv==1.6.1
export MAX_JOBS=${MAX_JOBS:-2}
.venv/bin/python -m pip install -q --no-build-isolation --no-deps -e .
.venv/bin/python -c "import te_ext; print('te_ext build:', te_ext.build_info())"
