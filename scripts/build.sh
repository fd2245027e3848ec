#!/usr/bin/env bash
# Configures and builds histocnn into build/ (extra CMake flags pass through).
set -euo pipefail
cd "$(dirname "$0")/.."
cmake -S . -B "${BUILD_DIR:-build}" -DCMAKE_BUILD_TYPE=Release "$@" >/dev/null
cmake --build "${BUILD_DIR:-build}" -j"$(nproc)"
