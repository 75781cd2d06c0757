#!/usr/bin/env bash
# Compile every csrc/cuda/*.cu with `nvcc -c` against torch's headers (no GPU needed; nothing is run).
# Skips with a message when nvcc is absent.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
NVCC=${NVCC:-$(command -v nvcc || true)}
if [ -z "$NVCC" ]; then echo "compile_cuda: nvcc not found, skipped"; exit 0; fi
TORCH=$("$PY" -c "import torch, os; print(os.path.dirname(torch.__file__))")
PYINC=$("$PY" -c "import sysconfig; print(sysconfig.get_paths()['include'])")
out=$(mktemp -d)
# A CPU build of torch ships the c10/cuda headers but not the one CMake generates for CUDA builds:
# provide it (as a CUDA build of torch has it) so the headers parse.
if [ ! -f "$TORCH/include/c10/cuda/impl/cuda_cmake_macros.h" ]; then
  mkdir -p "$out/shim/c10/cuda/impl"
  printf '#pragma once\n#define C10_CUDA_BUILD_SHARED_LIBS\n' > "$out/shim/c10/cuda/impl/cuda_cmake_macros.h"
fi
for f in csrc/cuda/*.cu; do
  echo "nvcc -c $f"
  "$NVCC" -c "$f" -o "$out/$(basename "$f").o" -std=c++20 -O3 --use_fast_math \
    -arch=sm_90 -I"$out/shim" -I"$TORCH/include" -I"$TORCH/include/torch/csrc/api/include" -I"$PYINC" \
    -D_GLIBCXX_USE_CXX11_ABI=1 -DTORCH_EXTENSION_NAME=_C -Xcompiler -fPIC
done
echo "compile_cuda: all .cu files compiled"
