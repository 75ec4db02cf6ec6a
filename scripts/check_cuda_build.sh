#!/usr/bin/env bash
# After a FORCE_CUDA=1 build: the module imports on this GPU-less machine,
# reports CUDA compiled in, still runs the CPU ops, and carries sm_80 and
# sm_90 cubins (cuobjdump from the triton wheel; the toolkit here has none).
set -euo pipefail
cd "$(dirname "$0")/.."
.venv/bin/python - <<'PY'
import torch, te_ext
info = te_ext.build_info()
assert info["cuda"] is True, f"expected a CUDA build, got {info}"
x = torch.rand(100, 3) > 0.5
assert te_ext.transfer_entropy(x, torch.roll(x, 1, 0)).shape == (3, 3)
print("CUDA build imports; CPU ops run; CUDA device available:", torch.cuda.is_available())
PY
cuobjdump=$(.venv/bin/python -c 'import os, triton; print(os.path.join(os.path.dirname(triton.__file__), "backends/nvidia/bin/cuobjdump"))' 2>/dev/null || true)
so=$(ls te_ext/_C*.so)
if [ -x "$cuobjdump" ]; then
  elves=$("$cuobjdump" --list-elf "$so")
  for arch in ${TE_EXT_EXPECT_ARCHS:-sm_80 sm_90}; do
    grep -q "$arch" <<<"$elves" || { echo "no $arch cubin in $so"; echo "$elves"; exit 1; }
  done
  echo "cubins: $(grep -o 'sm_[0-9]*' <<<"$elves" | sort -u | tr '\n' ' ')"
else
  echo "cuobjdump not found; skipped the cubin check"
fi
