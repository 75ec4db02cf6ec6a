#!/usr/bin/env bash
# The release shape and the no-nvcc path in one check: `python -m build --sdist` makes the
# source distribution, a CPU-only wheel (TE_EXT_CPU_ONLY=1) is built from that sdist alone (so
# a file missing from MANIFEST.in fails here), installed into a fresh venv, and a smoke test
# runs there, outside the repository: the ops run and build_info() says CUDA is not compiled in.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
.venv/bin/python -m build --sdist --no-isolation --outdir "$scratch/dist" . >"$scratch/sdist.log" 2>&1 \
  || { tail -30 "$scratch/sdist.log"; exit 1; }
sdist=$(ls "$scratch"/dist/te_ext-*.tar.gz)
echo "sdist: $(basename "$sdist") ($(tar -tzf "$sdist" | wc -l) files)"
TE_EXT_CPU_ONLY=1 MAX_JOBS=${MAX_JOBS:-2} .venv/bin/python -m pip wheel -q --no-build-isolation \
  --no-deps -w "$scratch/wheel" "$sdist"
# A fresh venv; torch and numpy come from the development environment (no network needed).
python3 -m venv "$scratch/venv"
site=$(.venv/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
fresh=$("$scratch/venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
echo "$site" >"$fresh/dev-deps.pth"
"$scratch/venv/bin/python" -m pip install -q --no-deps --no-index "$scratch"/wheel/te_ext-*.whl
cd "$scratch"
"$scratch/venv/bin/python" - "$repo" <<'PY'
import os, sys
import torch, te_ext
assert not te_ext.__file__.startswith(sys.argv[1]), te_ext.__file__  # the installed copy
info = te_ext.build_info()
assert info["cuda"] is False, info
x = torch.rand(200, 5) > 0.5
y = torch.roll(x, 1, 0)
te = te_ext.transfer_entropy(x, y)
assert te.shape == (5, 5) and bool((te.diagonal() > 0.9).all()), te
scan = te_ext.transfer_entropy_delays(x, y, [1, 2])
assert torch.equal(scan[0], te), scan
print("sdist -> CPU-only wheel -> fresh venv OK:", te_ext.__version__, info)
PY
