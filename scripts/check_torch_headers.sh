#!/usr/bin/env bash
# Compile every C++ and CUDA source of te_ext against the headers of another
# torch release, with the C++ standard that release's cpp_extension passes
# (-std=c++17 up to torch 2.13, -std=c++20 from 2.14), warnings as errors.
#
# Why: the lent GPU machines run torch 2.11 (C++17) while this project builds
# against 2.14 (C++20), and the README promises torch >= 2.4. A C++20-only
# construct would otherwise first fail on the GPU machine, inside its short
# time budget. Only the wheel is downloaded (pip download --no-deps, about
# 0.5-0.9 GB, cached); nothing is installed and torch is never imported.
#
#   bash scripts/check_torch_headers.sh [VERSION ...]   (default: 2.11.0)
#   CHECK_CUDA=0 bash scripts/check_torch_headers.sh     C++ sources only
#   TORCH_CUDA_ARCH=90                                   the one arch nvcc compiles for
#
# Exit status: 0 when every file of every version compiles, 1 otherwise.
set -euo pipefail
cd "$(dirname "$0")/.."
versions=("$@")
[ ${#versions[@]} -gt 0 ] || versions=(2.11.0)
cache=${TE_TORCH_HEADER_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/te_ext/torch-headers}
cuda_home=${CUDA_HOME:-/usr/local/cuda}
arch=${TORCH_CUDA_ARCH:-90}
python=${PYTHON:-python3}
pyinc=$("$python" -c 'import sysconfig; print(sysconfig.get_paths()["include"])')
check_cuda=${CHECK_CUDA:-1}
if [ "$check_cuda" = 1 ] && [ ! -x "$cuda_home/bin/nvcc" ]; then
  echo "check_torch_headers: no nvcc under $cuda_home; checking C++ sources only" >&2
  check_cuda=0
fi
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
failed=0

for v in "${versions[@]}"; do
  dir="$cache/$v"
  if [ ! -f "$dir/torch/version.py" ]; then
    mkdir -p "$dir"
    "$python" -m pip download "torch==$v" --no-deps -d "$dir/wheel" -q
    unzip -q -o "$dir"/wheel/torch-*.whl 'torch/include/*' 'torch/version.py' \
      'torch/utils/cpp_extension.py' -d "$dir"
    rm -rf "$dir/wheel"
  fi
  std=$(grep -o "common_cflags += \['-std=c++[0-9]*'" "$dir/torch/utils/cpp_extension.py" |
        grep -o 'c++[0-9]*' | head -n 1)
  [ -n "$std" ] || { echo "check_torch_headers: cannot tell torch $v's C++ standard" >&2; exit 1; }
  inc="$dir/torch/include"
  defs=(-DTE_WITH_CUDA=1 -DTORCH_API_INCLUDE_EXTENSION_H -DTORCH_EXTENSION_NAME=_C)
  isys=(-isystem "$inc" -isystem "$inc/torch/csrc/api/include" -isystem "$cuda_home/include"
        -isystem "$pyinc")
  echo "== torch $(sed -n "s/^__version__ = '\(.*\)'/\1/p" "$dir/torch/version.py"): -std=$std"
  for f in csrc/*.cpp csrc/cpu/*.cpp csrc/cuda/*.cpp; do
    [ -f "$f" ] || continue
    if log=$(g++ -std="$std" -fsyntax-only -fopenmp -Wall -Wextra -Werror "${defs[@]}" \
               "${isys[@]}" -Icsrc "$f" 2>&1); then
      echo "ok   $f"
    else
      echo "FAIL $f"; echo "$log" | grep -E "error|warning" | head -n 10; failed=1
    fi
  done
  [ "$check_cuda" = 1 ] || continue
  for f in csrc/cuda/*.cu; do
    [ -f "$f" ] || continue
    # The same flags as setup.py's nvcc line, plus torch's own CUDA defines.
    if log=$("$cuda_home/bin/nvcc" -std="$std" -O1 -Werror all-warnings \
               -Xcompiler -Wall,-Wextra,-Werror,-fPIC "${defs[@]}" "${isys[@]}" -Icsrc \
               -D__CUDA_NO_HALF_OPERATORS__ -D__CUDA_NO_HALF_CONVERSIONS__ \
               -D__CUDA_NO_BFLOAT16_CONVERSIONS__ -D__CUDA_NO_HALF2_OPERATORS__ \
               --expt-relaxed-constexpr -gencode="arch=compute_$arch,code=sm_$arch" \
               -c "$f" -o "$out/$(basename "$f").o" 2>&1); then
      echo "ok   $f"
    else
      echo "FAIL $f"; echo "$log" | grep -E "error|warning" | head -n 10; failed=1
    fi
  done
done
exit $failed
