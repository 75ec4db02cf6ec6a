#!/usr/bin/env bash
# The GPU check, as two commands of under 600 s each on the lent machine (one H100/H200, no
# network, only $OUT comes back):
#
#   bash scripts/gpu_check.sh           # call 1: build, CUDA tests, bad inputs, G1/G2/G3 benchmarks
#   bash scripts/gpu_check.sh --fused   # call 2 (or GPU_CHECK_FUSED=1): the fused Triton kernel,
#                                       # reusing call 1's build (build/, te_ext/_C*.so, Triton's cache)
#   bash scripts/gpu_check.sh --dry-run [--fused]
#                                       # here, without a GPU: every stage's own logic end to end
#                                       # on the CPU (no build: uses the module already built; the
#                                       # fused stage under TRITON_INTERPRET=1 at tiny shapes)
#
# Stages (each guarded: a failure is recorded and the script goes on):
#   env         versions, which optional packages are missing, compilers, GPU
#   build       FORCE_CUDA build for this GPU's architecture from a clean build directory; the
#               system compiler /usr/bin/g++ first (its libstdc++ is the one torch loads), then
#               the default one on PATH; CC, CXX, LDSHARED and nvcc's -ccbin (torch passes $CC)
#               all name the same compiler; the log says which one was used and why
#   tests_gpu   every test that needs CUDA (pytest -m gpu, tests/conftest.py marks them), in
#               pytest-xdist workers when present (a crash takes one worker), else one process per file
#   tests_cpu   GPU_CHECK_CPU_TESTS=1 only: the CPU-only tests of the GPU-facing files, kept apart
#   bad_inputs  every bad input in its own process (scripts/gpu_bad_inputs.py): raised or crashed
#   bench       bench/gpu.py: G1, syncs per step, CUDA graph capture, G2/G3 kernels
#   fused       (--fused) scripts/gpu_bench_fused.py: exactness on the GPU, timings, dispatch table
#   tests_fused (--fused) the fused kernel's CUDA tests (tests/test_fused_triton.py -m gpu)
#
# Results: $GPU_CHECK_OUT, else $OUT (the device tool's folder), else bench/results. After
# every stage the summary <out>/gpu-<stamp>[-fused].{json,md} (with the end of every log) and
# the whole logs, <out>/gpu-<stamp>[-fused]-logs.tar.gz, are rewritten: three files a call (the
# device tool returns at most 8), and a call killed at its limit still returns what it measured. GPU_CHECK_BUDGET (seconds; default 300, 250 with
# --fused) is this call's own deadline: each stage's timeout is cut to what is left of it.
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
DRY=0
FUSED=${GPU_CHECK_FUSED:-0}
for arg in "$@"; do
  case "$arg" in
    --dry-run) DRY=1 ;;
    --fused) FUSED=1 ;;
    *) echo "gpu_check: unknown argument '$arg' (expected --dry-run and/or --fused)" >&2; exit 2 ;;
  esac
done
PY=${PYTHON:-$(command -v python3 || echo .venv/bin/python)}
[ -x .venv/bin/python ] && [ -z "${PYTHON:-}" ] && ! "$PY" -c 'import torch' 2>/dev/null && PY=.venv/bin/python
STAMP=$(date -u +%Y-%m-%d_%H%M%S)
NAME=gpu-$STAMP$([ "$FUSED" = 1 ] && echo -fused)
if [ -n "${GPU_CHECK_OUT:-}" ]; then RESULTS=$GPU_CHECK_OUT
elif [ -n "${OUT:-}" ]; then RESULTS=$OUT
elif [ $DRY = 1 ]; then RESULTS=$(mktemp -d)
else RESULTS=bench/results
fi
mkdir -p "$RESULTS"
RESULTS=$(cd "$RESULTS" && pwd)
LOGS=$(mktemp -d)/$NAME-logs
mkdir -p "$LOGS"
# Anything the caller put on PYTHONPATH stays on it, behind the repository, in every stage.
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
START=$(date +%s)
BUDGET=${GPU_CHECK_BUDGET:-$([ "$FUSED" = 1 ] && echo 250 || echo 300)}
[ $DRY = 1 ] && BUDGET=${GPU_CHECK_BUDGET:-900}
FAILED=0

report() {  # rewrite the summary and the logs' tarball from what the logs hold now
  "$PY" scripts/gpu_check_report.py "$LOGS" "$RESULTS/$NAME" "$(( $(date +%s) - START ))" >"$LOGS/report.txt" 2>&1 \
    || echo "gpu_check: the summary could not be written: $(tail -1 "$LOGS/report.txt")"
  tar czf "$RESULTS/$NAME-logs.tar.gz.tmp" -C "$(dirname "$LOGS")" "$NAME-logs" \
    && mv "$RESULTS/$NAME-logs.tar.gz.tmp" "$RESULTS/$NAME-logs.tar.gz"
}

stage() {  # stage NAME STATUS [DETAIL]
  echo "== gpu_check: $1: $2${3:+ ($3)}" | tee -a "$LOGS/stages.log"
  case "$2" in ok*|skipped*) ;; *) FAILED=1 ;; esac
  report
}

limit() {  # limit MAX: seconds a stage may take, cut to the call's deadline (20 s kept back)
  local left=$(( START + BUDGET - $(date +%s) - 20 ))
  [ "$left" -lt "$1" ] && echo "$left" || echo "$1"
}

has_time() {  # has_time NAME MIN: records the stage as skipped when fewer than MIN s are left
  if [ "$(limit "$2")" -lt "$2" ]; then
    stage "$1" "skipped" "out of time: $(( START + BUDGET - $(date +%s) )) s of the ${BUDGET} s budget left"
    return 1
  fi
}

# ---- env ------------------------------------------------------------------------------------
DEVICE=cuda
if [ $DRY = 1 ] || ! "$PY" -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)' 2>/dev/null; then
  DEVICE=cpu
fi
echo "gpu_check: python $PY, device $DEVICE, results in $RESULTS/$NAME.*, logs in $LOGS, budget ${BUDGET} s, dry-run $DRY"
{
  echo "date: $STAMP (UTC)"
  "$PY" - <<'PY'
import importlib, importlib.util, platform
print("python", platform.python_version())
for name in ("torch", "triton", "numpy", "pytest", "xdist", "hypothesis", "scipy", "sklearn", "pyinform"):
    if importlib.util.find_spec(name) is None:
        print(f"{name}: MISSING")
        continue
    try:
        mod = importlib.import_module(name)
        print(f"{name}: {getattr(mod, '__version__', '?')}")
    except Exception as exc:  # a broken install is worth a line, not a crash
        print(f"{name}: fails to import ({type(exc).__name__}: {exc})")
import torch
print("torch.version.cuda", torch.version.cuda, "|",
      torch.cuda.get_device_name() if torch.cuda.is_available() else "no GPU")
PY
  command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
  for c in $(printf '%s\n' "$(command -v g++)" /usr/bin/g++ /opt/gcc/bin/g++ | awk 'NF && !seen[$0]++'); do
    [ -x "$c" ] && echo "compiler $c: $("$c" --version | head -1)"
  done
  command -v nvcc >/dev/null && nvcc --version | tail -2 | head -1
  echo "nsys: $(command -v nsys || echo absent)"
} >"$LOGS/env.txt" 2>&1
cat "$LOGS/env.txt"
MISSING=$(grep -Eo '^(xdist|hypothesis|scipy|sklearn|pyinform): MISSING' "$LOGS/env.txt" | cut -d: -f1 | tr '\n' ' ')
stage env ok "${MISSING:+missing: ${MISSING% }; the tests that need them skip}"

# ---- build ----------------------------------------------------------------------------------
built_ok() {  # the module imports, has CUDA (or is the dry run's CPU build), and formats errors
  bash scripts/check_libstdcxx.sh && "$PY" - "$DEVICE" <<'PY'
import sys, torch, te_ext
info = te_ext.build_info()
print("build_info:", info)
assert sys.argv[1] == "cpu" or info["cuda"], "te_ext was built without CUDA"
x = torch.zeros(5, 2, dtype=torch.bool)
try:  # a message formatted in C++ must survive (a private libstdc++ crashes or empties it)
    torch.ops.te.joint_counts(x, x, 1, 1, 9, None)
    raise AssertionError("te.joint_counts accepted T = 5 with delay 9")
except ValueError as exc:
    assert "T = 5" in str(exc) and "delay=9" in str(exc), f"error message lost its text: {exc!r}"
    print("error messages: ok:", str(exc).splitlines()[0][:120])
PY
}

build_with() {  # build_with CXX_PATH WHY: one clean build with one compiler for CC, CXX, -ccbin, LDSHARED
  local cxx=$1 why=$2 cc arch
  cc=$(dirname "$cxx")/gcc
  [ -x "$cc" ] || cc=$cxx
  arch=$("$PY" -c 'import torch; c = torch.cuda.get_device_capability(); print(f"{c[0]}.{c[1]}")' 2>/dev/null || echo "9.0")
  {
    echo "gpu_check: building with $cxx ($("$cxx" --version | head -1)): $why"
    echo "gpu_check: CC=$cc CXX=$cxx LDSHARED='$cxx -shared' (nvcc -ccbin \$CC), TORCH_CUDA_ARCH_LIST=$arch, clean build directory"
  } >>"$LOGS/build.log"
  rm -rf build te_ext/_C*.so
  ( export CC="$cc" CXX="$cxx" LDSHARED="$cxx -shared"
    # Warnings stay warnings here: a compiler CI never ran must not cost the run (CI keeps -Werror).
    FORCE_CUDA=1 TE_EXT_WERROR=0 TORCH_CUDA_ARCH_LIST="$arch" CUDA_HOME=${CUDA_HOME:-/usr/local/cuda} \
      MAX_JOBS=${MAX_JOBS:-$(nproc)} timeout "$(limit 200)" "$PY" setup.py build_ext --inplace -q
  ) >>"$LOGS/build.log" 2>&1 && built_ok >>"$LOGS/build.log" 2>&1
}

if [ $DRY = 1 ]; then
  built_ok >"$LOGS/build.log" 2>&1 && stage build "skipped" "dry run: the module already built works" \
    || stage build FAILED "$(tail -3 "$LOGS/build.log" | tr '\n' ' ' | cut -c1-300)"
elif [ "$FUSED" = 1 ] && built_ok >"$LOGS/build.log" 2>&1; then
  stage build "ok (reused)" "call 1's build imports with CUDA: $(grep -m1 '^build_info' "$LOGS/build.log" | cut -c1-160)"
elif has_time build 60; then
  : >"$LOGS/build.log"
  done_with=""
  default_cxx=${CXX:-$(command -v g++ || command -v c++ || true)}
  if [ -x /usr/bin/g++ ] && build_with /usr/bin/g++ "the system compiler first: its libstdc++ is the shared one torch loads"; then
    done_with=/usr/bin/g++
  elif [ -n "$default_cxx" ] && [ "$default_cxx" != /usr/bin/g++ ] \
      && build_with "$default_cxx" "the default compiler on PATH$([ -x /usr/bin/g++ ] && echo ', after /usr/bin/g++ failed')"; then
    done_with=$default_cxx
  fi
  if [ -n "$done_with" ]; then
    stage build ok "with $done_with; $(grep -m1 '^build_info' "$LOGS/build.log" | cut -c1-160)"
  else
    stage build FAILED "$(grep -E 'error|Error|FAIL' "$LOGS/build.log" | head -3 | tr '\n' ' ' | cut -c1-400)"
  fi
fi

# ---- tests ----------------------------------------------------------------------------------
run_tests() {  # run_tests NAME MARK MAX FILES...
  local name=$1 mark=$2 max=$3 rc=0 files
  shift 3
  has_time "$name" 30 || return
  if "$PY" -c 'import xdist' 2>/dev/null && [ $DRY = 0 ]; then
    timeout "$(limit "$max")" "$PY" -m pytest "$@" -m "$mark" -q -p no:cacheprovider -n "${GPU_CHECK_WORKERS:-8}" -rfEs --continue-on-collection-errors >"$LOGS/$name.log" 2>&1
    rc=$?
  else  # one process per file: a crash takes one file down, not the run
    files=$("$PY" -m pytest "$@" -m "$mark" --collect-only -q -p no:cacheprovider 2>/dev/null | grep -Eo '^[^:]+\.py' | sort -u)
    : >"$LOGS/$name.log"
    for f in $files; do
      [ "$(limit "$max")" -ge 10 ] || { echo "gpu_check: out of time before $f" >>"$LOGS/$name.log"; rc=124; break; }
      timeout "$(limit "$max")" "$PY" -m pytest "$f" -m "$mark" -q -p no:cacheprovider -rfEs --continue-on-collection-errors >>"$LOGS/$name.log" 2>&1 || rc=$?
    done
  fi
  local summary
  summary=$(grep -E '[0-9]+ (passed|failed|error)' "$LOGS/$name.log" | tail -3 | tr '\n' ' ' | cut -c1-300)
  if [ $rc = 0 ]; then stage "$name" ok "$summary"
  elif [ $rc = 5 ]; then stage "$name" "skipped" "no test selected"
  else stage "$name" FAILED "rc $rc: $summary"
  fi
}

if [ "$FUSED" = 0 ]; then
  if [ $DRY = 1 ]; then  # a few files: the selection and the log handling, not the suite
    run_tests tests_gpu "gpu or not gpu" 300 tests/test_cuda.py tests/test_window.py
  else
    run_tests tests_gpu gpu 170 tests --ignore=tests/test_fused_triton.py  # Triton's: call 2
  fi
  if [ "${GPU_CHECK_CPU_TESTS:-0}" = 1 ]; then
    run_tests tests_cpu "not gpu" 150 tests/test_window.py tests/test_feedback.py tests/test_ops_errors.py tests/test_fused_triton.py
  else
    stage tests_cpu skipped "GPU_CHECK_CPU_TESTS=1 runs the CPU-only tests of the GPU-facing files"
  fi

  # ---- bad inputs, one process each -------------------------------------------------------
  if has_time bad_inputs 30; then
    # A dry run on a shared 2-core CPU pays a torch import per case with only 2 jobs: 21 s
    # when quiet, past 90 s under a concurrent build, so it gets a looser limit.
    timeout "$(limit "$([ $DRY = 1 ] && echo 300 || echo 90)")" "$PY" scripts/gpu_bad_inputs.py --device $DEVICE --jobs "$([ $DRY = 1 ] && echo 2 || echo 8)" \
      --json "$LOGS/bad_inputs.json" >"$LOGS/bad_inputs.log" 2>&1
    rc=$?
    [ $rc = 0 ] && stage bad_inputs ok "$(tail -1 "$LOGS/bad_inputs.log")" \
      || stage bad_inputs FAILED "rc $rc: $(tail -1 "$LOGS/bad_inputs.log")"
  fi

  # ---- benchmarks ---------------------------------------------------------------------------
  if has_time bench 40; then
    timeout "$(limit 200)" "$PY" bench/gpu.py --quick --device $DEVICE --json "$LOGS/bench.json" \
      --markdown "$LOGS/bench.md" >"$LOGS/bench.log" 2>&1
    rc=$?
    [ $rc = 0 ] && stage bench ok "$(grep -c 'met\*\*\|: met' "$LOGS/bench.md" 2>/dev/null) targets met" \
      || stage bench FAILED "rc $rc: $(tail -2 "$LOGS/bench.log" | tr '\n' ' ' | cut -c1-300)"
  fi
else
  # ---- the fused Triton kernel: exactness on the GPU, timings against torch._int_mm, the
  # dispatch table (gpu-heuristic-<stamp>.json beside the summary) --------------------------
  if has_time fused 60; then
    if [ $DRY = 1 ]; then
      TRITON_INTERPRET=1 timeout "$(limit 400)" "$PY" scripts/gpu_bench_fused.py --dry-run --out-dir "$LOGS" >"$LOGS/fused.log" 2>&1
    else
      timeout "$(limit 400)" "$PY" scripts/gpu_bench_fused.py --quick --out-dir "$LOGS" >"$LOGS/fused.log" 2>&1
    fi
    rc=$?
    [ $rc = 0 ] && stage fused ok "$(grep -m1 '^rules:' "$LOGS/fused.log" | cut -c1-200)" \
      || stage fused FAILED "rc $rc: $(tail -2 "$LOGS/fused.log" | tr '\n' ' ' | cut -c1-300)"
  fi
  # the fused kernel's own CUDA tests (Triton compiles each variant once; the cache is shared)
  [ $DRY = 0 ] && GPU_CHECK_WORKERS=4 run_tests tests_fused gpu 200 tests/test_fused_triton.py
fi

echo
echo "==== gpu_check summary ($(( $(date +%s) - START )) s of ${BUDGET}) ===="
cat "$LOGS/stages.log"
echo "written: $RESULTS/$NAME.json, $RESULTS/$NAME.md, $RESULTS/$NAME-logs.tar.gz"
exit $FAILED
