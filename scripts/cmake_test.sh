#!/usr/bin/env bash
# Builds the op sources with CMake against the venv's libtorch and runs the C++
# tests through ctest. torch's CUDA build needs its CUDA pieces located even
# for this CPU-only target: the toolkit, an arch list and the wheel's nvrtc.
set -euo pipefail
cd "$(dirname "$0")/.."
PYBIN=.venv/bin/python
prefix=$($PYBIN -c 'import torch; print(torch.utils.cmake_prefix_path)')
args=(-DCMAKE_PREFIX_PATH="$prefix")
if [ "$($PYBIN -c 'import torch; print(torch.version.cuda is not None)')" = True ]; then
  export TORCH_CUDA_ARCH_LIST=${TORCH_CUDA_ARCH_LIST:-"8.0;9.0"}
  cuda_home=${CUDA_HOME:-/usr/local/cuda}
  nvrtc=$($PYBIN - <<'PY'
import glob, os
try:
    import nvidia
    hits = [h for p in nvidia.__path__ for h in glob.glob(os.path.join(p, "*", "lib", "libnvrtc.so*"))]
    print(sorted(h for h in hits if "builtins" not in h and ".alt." not in h)[0])
except Exception:
    print("")
PY
)
  args+=(-DCUDA_TOOLKIT_ROOT_DIR="$cuda_home" -DCMAKE_CUDA_COMPILER="$cuda_home/bin/nvcc")
  [ -n "$nvrtc" ] && args+=(-DCUDA_nvrtc_LIBRARY="$nvrtc")
fi
cmake -S . -B build/cmake -G Ninja "${args[@]}" >build/cmake.log 2>&1 || { cat build/cmake.log; exit 1; }
cmake --build build/cmake -j"${MAX_JOBS:-2}" >>build/cmake.log 2>&1 || { cat build/cmake.log; exit 1; }
ctest --test-dir build/cmake --output-on-failure
