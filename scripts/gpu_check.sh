#!/usr/bin/env bash
# The one-command GPU check (issue 10): on a machine with a GPU, torch and nvcc, and no
# network, in under 5 minutes:
#   1. builds te_ext in place for this GPU (FORCE_CUDA=1, TORCH_CUDA_ARCH_LIST from the
#      device), retrying with /usr/bin/g++ if the build, the libstdc++ check or the import fails;
#   2. runs every CUDA test in a way that survives a crash (pytest -n 8 with xdist, else one
#      process per test file);
#   3. runs each bad input in its own process (scripts/gpu_bad_inputs.py): raised or crashed;
#   4. benchmarks (bench/gpu.py --quick): G1 ratios, syncs per step, CUDA graph capture, kernels;
#   4b. with GPU_CHECK_FUSED=1, the fused Triton kernel's check and timings (gpu_bench_fused.py);
#   5. writes bench/results/gpu-<date>.json and .md and prints a summary.
# Every stage is guarded: a failing stage is recorded and the script goes on.
#
#   bash scripts/gpu_check.sh            # on the GPU machine
#   bash scripts/gpu_check.sh --dry-run  # here: no build (uses the built module), CPU device,
#                                        # results under /tmp; exercises the script's own logic
# Env: PYTHON (default: python3, or .venv/bin/python), GPU_CHECK_OUT (results directory),
#      GPU_CHECK_TESTS (test files; default: every file with CUDA tests, and the error tests).
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
DRY=0
[ "${1:-}" = "--dry-run" ] && DRY=1
PY=${PYTHON:-$(command -v python3 || echo .venv/bin/python)}
[ -x .venv/bin/python ] && [ -z "${PYTHON:-}" ] && ! "$PY" -c 'import torch' 2>/dev/null && PY=.venv/bin/python
STAMP=$(date -u +%Y-%m-%d_%H%M%S)
OUT=${GPU_CHECK_OUT:-$([ $DRY = 1 ] && mktemp -d || echo bench/results)}
WORK=$(mktemp -d)
mkdir -p "$OUT"
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
START=$(date +%s)
declare -A STAGE

stage() {  # stage NAME STATUS DETAIL
  STAGE[$1]="$2"
  echo "== gpu_check: $1: $2${3:+ ($3)}" | tee -a "$WORK/stages.log"
}

DEVICE=cuda
if [ $DRY = 1 ] || ! "$PY" -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)' 2>/dev/null; then
  DEVICE=cpu
fi
echo "gpu_check: python $PY, device $DEVICE, results in $OUT, dry-run $DRY"
"$PY" -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda,
  torch.cuda.get_device_name() if torch.cuda.is_available() else "no GPU")' 2>&1 | tee "$WORK/env.txt"
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader >>"$WORK/env.txt" 2>&1

# ---- 1. build ------------------------------------------------------------------------------
build() {  # build [CXX]
  local arch
  arch=$("$PY" -c 'import torch; c = torch.cuda.get_device_capability(); print(f"{c[0]}.{c[1]}")' 2>/dev/null || echo "9.0")
  echo "gpu_check: building for TORCH_CUDA_ARCH_LIST=$arch${1:+ with CXX=$1}"
  (
    [ -n "${1:-}" ] && export CXX="$1" LDSHARED="$1 -shared"
    FORCE_CUDA=1 TORCH_CUDA_ARCH_LIST="$arch" CUDA_HOME=${CUDA_HOME:-/usr/local/cuda} \
      MAX_JOBS=${MAX_JOBS:-$(nproc)} timeout 240 "$PY" setup.py build_ext --inplace -q
  ) >"$WORK/build.log" 2>&1 && bash scripts/check_libstdcxx.sh >>"$WORK/build.log" 2>&1 \
    && "$PY" -c 'import te_ext, torch; assert te_ext.build_info()["cuda"]; print(te_ext.build_info())' >>"$WORK/build.log" 2>&1
}
if [ $DRY = 1 ]; then
  stage build skipped "dry run: uses the module already built"
  bash scripts/check_libstdcxx.sh >"$WORK/build.log" 2>&1 && stage libstdcxx ok || stage libstdcxx FAILED "$(tail -3 "$WORK/build.log")"
elif build; then
  stage build ok "$(tail -1 "$WORK/build.log" | cut -c1-200)"
elif [ -x /usr/bin/g++ ] && { cp "$WORK/build.log" "$WORK/build-default.log"; build /usr/bin/g++; }; then
  stage build "ok with CXX=/usr/bin/g++" "the default compiler failed: $(grep -m1 -E 'FAIL|error|Error' "$WORK/build-default.log" | cut -c1-200)"
else
  stage build FAILED "$(tail -5 "$WORK/build.log" | tr '\n' ' ' | cut -c1-400)"
fi

# ---- 2. tests ------------------------------------------------------------------------------
TESTS=${GPU_CHECK_TESTS:-tests/test_cuda.py tests/test_window.py tests/test_feedback.py tests/test_libstdcxx.py tests/test_ops_errors.py tests/test_stats_surrogates.py tests/test_stats_local.py tests/test_delays.py tests/test_fused_triton.py}
if "$PY" -c 'import xdist' 2>/dev/null && [ $DRY = 0 ]; then
  timeout 300 "$PY" -m pytest $TESTS -q -p no:cacheprovider -n 8 -rs >"$WORK/tests.log" 2>&1
  rc=$?
else  # one process per file: a crash takes one file down, not the run
  rc=0
  for f in $TESTS; do
    timeout 200 "$PY" -m pytest "$f" -q -p no:cacheprovider -rs >>"$WORK/tests.log" 2>&1 || rc=$?
  done
fi
summary=$(grep -E '^(=+ )?[0-9]+ (passed|failed)|passed|failed|error' "$WORK/tests.log" | grep -E 'passed|failed' | tail -5 | tr '\n' ' ')
[ $rc = 0 ] && stage tests ok "$summary" || stage tests FAILED "rc $rc: $summary"

# ---- 3. bad inputs, one process each ---------------------------------------------------------
timeout 300 "$PY" scripts/gpu_bad_inputs.py --device $DEVICE --jobs "$([ $DRY = 1 ] && echo 2 || echo 8)" --json "$WORK/bad_inputs.json" >"$WORK/bad_inputs.log" 2>&1
rc=$?
[ $rc = 0 ] && stage bad_inputs ok "$(tail -1 "$WORK/bad_inputs.log")" || stage bad_inputs FAILED "rc $rc: $(tail -1 "$WORK/bad_inputs.log")"

# ---- 4. benchmarks -------------------------------------------------------------------------
timeout 240 "$PY" bench/gpu.py --quick --json "$WORK/bench.json" --markdown "$WORK/bench.md" >"$WORK/bench.log" 2>&1
rc=$?
[ $rc = 0 ] && stage bench ok "$(head -1 "$WORK/bench.log")" || stage bench FAILED "rc $rc: $(tail -2 "$WORK/bench.log" | tr '\n' ' ')"

# ---- 4b. the fused Triton kernel (opt-in: GPU_CHECK_FUSED=1; about 5 minutes, mostly Triton
# compiling its variants): exactness on the GPU, then timings against torch._int_mm, and the
# dispatch table bench/results/gpu-heuristic-<date>.json.
if [ "${GPU_CHECK_FUSED:-0}" = 1 ] && [ $DRY = 0 ]; then
  PYTHONPATH=$ROOT timeout 480 "$PY" scripts/gpu_bench_fused.py --quick --out-dir "$OUT" >"$WORK/fused.log" 2>&1
  rc=$?
  [ $rc = 0 ] && stage fused ok "$(tail -1 "$WORK/fused.log" | cut -c1-200)" || stage fused FAILED "rc $rc: $(tail -2 "$WORK/fused.log" | tr '\n' ' ' | cut -c1-300)"
else
  stage fused skipped "GPU_CHECK_FUSED=1 runs scripts/gpu_bench_fused.py --quick (about 5 minutes)"
fi

# ---- 5. results ----------------------------------------------------------------------------
"$PY" - "$WORK" "$OUT/gpu-$STAMP" "$(( $(date +%s) - START ))" <<'PY'
import json, os, sys
work, out, seconds = sys.argv[1], sys.argv[2], int(sys.argv[3])
def read(name, default=None):
    try:
        with open(os.path.join(work, name)) as fh:
            return json.load(fh) if name.endswith(".json") else fh.read()
    except OSError:
        return default
stages = [l.split(": ", 2)[1:] for l in (read("stages.log", "") or "").splitlines() if l.startswith("== gpu_check: ")]
result = {"seconds": seconds, "environment": read("env.txt", ""),
          "stages": {s[0]: s[1] for s in stages if len(s) == 2},
          "tests_tail": (read("tests.log", "") or "")[-4000:],
          "build_tail": (read("build.log", "") or "")[-2000:],
          "bad_inputs": read("bad_inputs.json"), "bench": read("bench.json")}
with open(out + ".json", "w") as fh:
    json.dump(result, fh, indent=2, default=str)
md = [f"# GPU check ({seconds} s)", "", "```", result["environment"].strip(), "```", "",
      "| stage | result |", "|---|---|"]
md += [f"| {k} | {v} |" for k, v in result["stages"].items()]
bad = result["bad_inputs"]
if bad:
    md += ["", f"Bad inputs ({bad['device']}, one process each): {bad['raised']} of {bad['cases']} "
           f"raised a Python exception, {bad['crashed']} crashed.", "",
           "| input | outcome |", "|---|---|"]
    md += [f"| {r['name']} | {r['outcome']} {r.get('type') or ''}: {r.get('message', '')} |"
           for r in bad["results"]]
bench_md = read("bench.md")
if bench_md:
    md += ["", bench_md]
elif result["bench"]:
    md += ["", f"Benchmarks: {result['bench']}"]
with open(out + ".md", "w") as fh:
    fh.write("\n".join(md) + "\n")
print("\n".join(md))
print(f"\nwritten: {out}.json, {out}.md")
PY
mkdir -p "$OUT/gpu-$STAMP-logs" && cp "$WORK"/*.log "$WORK"/*.txt "$OUT/gpu-$STAMP-logs/" 2>/dev/null || true

echo
echo "==== gpu_check summary ($(( $(date +%s) - START )) s) ===="
cat "$WORK/stages.log"
failed=0
for s in "${!STAGE[@]}"; do
  case "${STAGE[$s]}" in ok*|skipped*) ;; *) failed=1 ;; esac
done
exit $failed
