#!/usr/bin/env bash
# Configures and builds histocnn into build/ (BUILD_DIR overrides): extra
# -D flags go to CMake, `--target NAME` (repeatable) builds only those targets.
# Uses ccache where it is installed (Debian: ccache).
set -euo pipefail
cd "$(dirname "$0")/.."
cmake_flags=() targets=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --target) targets+=(--target "${2:?--target NAME}"); shift ;;
    *) cmake_flags+=("$1") ;;
  esac
  shift
done
if command -v ccache > /dev/null; then
  export CCACHE_BASEDIR="$PWD"  # build folders share what compiles alike
  cmake_flags+=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache -DCMAKE_CUDA_COMPILER_LAUNCHER=ccache)
fi
cmake -S . -B "${BUILD_DIR:-build}" -DCMAKE_BUILD_TYPE=Release "${cmake_flags[@]}" >/dev/null
cmake --build "${BUILD_DIR:-build}" -j"$(nproc)" "${targets[@]}"
