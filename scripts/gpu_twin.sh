#!/usr/bin/env bash
# make gpu-twin: the GPU machine's software rebuilt on this CPU machine, and every GPU-path check that
# needs no GPU run against it (issue 20). The lent GPU machine has Python 3.12, torch 2.11.0 (CUDA 13.0
# build), triton 3.6.0, torchvision 0.26.0, numpy 2.x, nvcc 13.0, ninja, timm, transformers, no network.
#
# Steps (each one's pass/fail, seconds and count go to benchmarks/results/gpu_twin/summary.json, its
# output to benchmarks/results/gpu_twin/gpu_twin.log):
#   venv          the stack in a venv ($GPU_TWIN_DIR, default ~/.cache/fastsegadv/gpu-twin)
#   build         the extension for sm_90 (CUDA_HOME found by setup.py), in the tree beside the CPU build
#   cuda_keys     every op with a .cu kernel is registered for the CUDA dispatch key
#   triton_compile every Triton launch compiled for sm_90 under 3.6, with the register and spill report
#                 (benchmarks/results/triton_resources/sm_90_triton_<v>_compile_only.md); fails on a spill
#   cpu_suite     the CPU test suite under torch 2.11 / Triton 3.6's interpreter, graph capture included
#   capture_newest graph capture on the newest torch release (GPU_TWIN_NEWEST=0 skips it)
#   gpu_check     scripts/gpu_check.py --stand-in: every stage's command, selection, limit, kill and result
#                 writing, against a stand-in that reports a GPU
# Idempotent: a second run reuses the venv and the build. ~30 min on 2 cores with a warm pip cache
# (the extension build alone is ~15 min cold).
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
TWIN=${GPU_TWIN_DIR:-$HOME/.cache/fastsegadv/gpu-twin}
NEWEST=${GPU_TWIN_NEWEST:-1}
RES=$ROOT/benchmarks/results/gpu_twin
mkdir -p "$RES" "$TWIN"
LOG=$RES/gpu_twin.log
: > "$LOG"
STEPS=$TWIN/steps.jsonl
: > "$STEPS"
export PIP_CONSTRAINT=  # the machine-wide cap (torch <= 2.14.1) must not pick versions for the twin
export PIP_DISABLE_PIP_VERSION_CHECK=1

find_python() {  # find_python 3.12: a python3.12 that runs (pyenv's versions, PATH, /usr/local/bin)
  local v=$1 p
  # a pyenv shim on PATH exists even where that version is not active: try the real binaries first
  for p in "$HOME/.pyenv/versions/$v"*/bin/"python$v" "python$v" "/usr/local/bin/python$v"; do
    if command -v "$p" >/dev/null 2>&1 && "$p" -c "import sys" >/dev/null 2>&1; then command -v "$p"; return 0; fi
  done
  return 1
}

# step NAME COUNT_CMD -- CMD...: runs CMD with its output in the log; COUNT is read from the file
# $TWIN/count (the step writes it) when there is one.
step() {
  local name=$1; shift
  local t0=$SECONDS rc
  rm -f "$TWIN/count"
  echo "===== $name: $*" >> "$LOG"
  echo "[gpu-twin] $name ..."
  "$@" >> "$LOG" 2>&1
  rc=$?
  local count=null
  [ -s "$TWIN/count" ] && count=$(cat "$TWIN/count")
  local status=passed
  [ $rc -eq 0 ] || status="failed (exit $rc)"
  echo "===== $name: $status" >> "$LOG"
  echo "[gpu-twin] $name: $status ($((SECONDS - t0)) s)"
  printf '{"step": "%s", "status": "%s", "seconds": %d, "count": %s}\n' \
    "$name" "$status" $((SECONDS - t0)) "$count" >> "$STEPS"
  return $rc
}

make_venv() {
  local py
  py=$(find_python 3.12) || { echo "no python3.12 found (pyenv install 3.12 or apt install python3.12)"; return 1; }
  [ -x "$TWIN/venv/bin/python" ] || "$py" -m venv "$TWIN/venv" || return 1
  local V=$TWIN/venv/bin/python
  if ! "$V" -c "import torch, triton, torchvision, sys; sys.exit(0 if (torch.__version__, triton.__version__, torchvision.__version__) == ('2.11.0+cu130', '3.6.0', '0.26.0+cu130') else 1)" 2>/dev/null; then
    "$V" -m pip install -q --upgrade pip setuptools wheel || return 1
    "$V" -m pip install -q torch==2.11.0 triton==3.6.0 torchvision==0.26.0 || return 1
  fi
  "$V" -m pip install -q numpy pytest pytest-benchmark ninja scipy transformers timm tqdm matplotlib \
    scikit-learn pillow pyyaml segmentation-models-pytorch || return 1
  "$V" -m pip install -q --no-deps cospgd torchattacks || return 1  # the peers, as CI installs them
  "$V" -c "import torch, triton, numpy; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'triton', triton.__version__, 'numpy', numpy.__version__)" \
    | tee "$TWIN/versions.txt"
  "$V" -c "import torch, sys; sys.exit(0 if torch.version.cuda and torch.version.cuda.startswith('13.0') else 1)" \
    || { echo "torch in the twin is not the CUDA 13.0 build"; return 1; }
}

build_extension() {
  local V=$TWIN/venv/bin/python
  # editable install: the extension lands in the tree as _C.cpython-312-*.so beside the CPU build's
  TORCH_CUDA_ARCH_LIST=9.0 MAX_JOBS=${MAX_JOBS:-$(nproc)} FASTSEGADV_PORTABLE=1 \
    "$V" -m pip install --no-build-isolation --no-deps -e . || return 1
  ls "$ROOT"/fastsegadv/_C.cpython-312*.so
}

cuda_keys() {
  "$TWIN/venv/bin/python" scripts/gpu_twin_checks.py cuda-keys --count-file "$TWIN/count"
}

triton_compile() {
  local V=$TWIN/venv/bin/python tv
  tv=$("$V" -c "import triton; print(triton.__version__)")
  local report=benchmarks/results/triton_resources/sm_90_triton_${tv}_compile_only.md
  TRITON_INTERPRET=0 "$V" tests/ops/triton_gpu_compile.py --arch 90 --resources "$report" \
    --json "$TWIN/triton.json" --workers "$(nproc)" --fail-on-spill
  local rc=$?
  "$V" scripts/gpu_twin_checks.py count-launches "$TWIN/triton.json" --count-file "$TWIN/count" || return 1
  return "$rc"
}

cpu_suite() {
  # the whole CPU suite under the GPU machine's torch and Triton (with segmentation-models-pytorch and timm,
  # which CI's CPU torch cannot have); the Triton compile is its own step. The speed guard is CI's: its
  # bounds are for the -march=native CPU kernels, and this build is the portable one sent to the GPU machine.
  TRITON_INTERPRET=1 "$TWIN/venv/bin/python" -m pytest -q -p no:cacheprovider tests \
    --deselect tests/ops/test_triton_gpu_compile.py::test_every_triton_kernel_compiles_for_sm90_without_spills \
    --ignore tests/ops/test_speed_guard.py \
    | tee "$TWIN/suite.txt"
  local rc=${PIPESTATUS[0]}
  "$TWIN/venv/bin/python" scripts/gpu_twin_checks.py count-pytest "$TWIN/suite.txt" --count-file "$TWIN/count"
  return "$rc"
}

capture_newest() {
  # the newest torch release on the package index, in its own Python 3.13 venv, with the CPU extension
  # built for it (FASTSEGADV_NO_CUDA=1: the CUDA half is the twin's), and the graph-capture tests
  local N=$TWIN/newest py
  py=$(find_python 3.13) || { echo "no python3.13 found"; return 1; }
  [ -x "$N/bin/python" ] || "$py" -m venv "$N" || return 1
  # PIP_CONFIG_FILE=/dev/null: a machine-wide pip.conf may cap torch (here: a constraints file, <= 2.14.1)
  PIP_CONFIG_FILE=/dev/null "$N/bin/python" -m pip install -q --upgrade pip setuptools wheel || return 1
  PIP_CONFIG_FILE=/dev/null "$N/bin/python" -m pip install -q --upgrade torch numpy pytest scipy ninja || return 1
  "$N/bin/python" -c "import torch, triton; print('newest torch', torch.__version__, 'triton', triton.__version__)" \
    | tee "$TWIN/newest_versions.txt"
  FASTSEGADV_NO_CUDA=1 FASTSEGADV_PORTABLE=1 MAX_JOBS=$(nproc) "$N/bin/python" -m pip install -q \
    --no-build-isolation --no-deps -e . || return 1
  TRITON_INTERPRET=1 "$N/bin/python" -m pytest -q -p no:cacheprovider tests/attacks/test_graph_capture.py \
    | tee "$TWIN/newest.txt"
  local rc=${PIPESTATUS[0]}
  "$N/bin/python" scripts/gpu_twin_checks.py count-pytest "$TWIN/newest.txt" --count-file "$TWIN/count"
  return "$rc"
}

gpu_check_stand_in() {
  local V=$TWIN/venv/bin/python out=$TWIN/gpu_check_out rc=0
  rm -rf "$out" "$out"2
  # part 1 as on the GPU machine; a short limit on fused_loss (its CPU run is long) shows a kill of the
  # whole process group and the summary written after it. Part 2 with a short limit on bf16_strength.
  "$V" scripts/gpu_check.py "$out" --stand-in --limit fused_loss=20
  "$V" scripts/gpu_twin_checks.py check-stand-in "$out" --expect-killed fused_loss --count-file "$TWIN/count" || rc=1
  cp "$out/summary.json" "$RES/gpu_check_stand_in_part1.json"
  "$V" scripts/gpu_check.py "$out"2 --stand-in --part 2 --limit bf16_strength=20
  "$V" scripts/gpu_twin_checks.py check-stand-in "$out"2 --count-file "$TWIN/count2" || rc=1
  cp "$out"2/summary.json "$RES/gpu_check_stand_in_part2.json"
  return $rc
}

T0=$SECONDS
step venv make_venv || { echo "venv failed: see $LOG"; }
if [ -x "$TWIN/venv/bin/python" ]; then
  step build build_extension
  step cuda_keys cuda_keys
  step triton_compile triton_compile
  step cpu_suite cpu_suite
  [ "$NEWEST" = 1 ] && step capture_newest capture_newest
  step gpu_check gpu_check_stand_in
fi
PY=python3
[ -x "$TWIN/venv/bin/python" ] && PY=$TWIN/venv/bin/python
"$PY" scripts/gpu_twin_checks.py summary "$STEPS" "$RES/summary.json" --versions "$TWIN/versions.txt" \
  --seconds $((SECONDS - T0))
