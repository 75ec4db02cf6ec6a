#!/usr/bin/env bash
# Keeps the no-nvcc path alive: builds a CPU-only wheel (TE_EXT_CPU_ONLY=1),
# installs it into a scratch directory and checks the ops run and that
# build_info() says CUDA is not compiled in.
set -euo pipefail
cd "$(dirname "$0")/.."
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
# A clean copy of the sources, so no object or .so of the CUDA build is reused.
mkdir -p "$scratch/src"
tar --exclude='*.so' --exclude='__pycache__' -cf - setup.py pyproject.toml csrc te_ext scripts/check_libstdcxx.sh | tar -xf - -C "$scratch/src"
(cd "$scratch/src" && TE_EXT_CPU_ONLY=1 MAX_JOBS=${MAX_JOBS:-2} "$OLDPWD/.venv/bin/python" -m pip wheel -q \
  --no-build-isolation --no-deps -w "$scratch/wheel" .)
.venv/bin/python -m pip install -q --no-deps --target "$scratch/site" "$scratch"/wheel/te_ext-*.whl
cd "$scratch"
PYTHONPATH="$scratch/site" "$OLDPWD/.venv/bin/python" - <<'PY'
import torch, te_ext
info = te_ext.build_info()
assert te_ext.__file__.startswith(__import__("os").getcwd()), te_ext.__file__
assert info["cuda"] is False, info
x = torch.rand(200, 5) > 0.5
y = torch.roll(x, 1, 0)
te = te_ext.transfer_entropy(x, y)
assert te.shape == (5, 5) and bool((te.diagonal() > 0.9).all()), te
print("CPU-only build OK:", info)
PY
