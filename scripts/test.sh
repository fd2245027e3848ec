#!/usr/bin/env bash
# Installs, builds (warnings as errors) and runs the whole test suite, then
# runs it again under AddressSanitizer + UndefinedBehaviorSanitizer.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/build.sh -DHISTOCNN_WERROR=ON
(cd build && ctest --output-on-failure -j"$(nproc)")
if [[ "${SKIP_SANITIZERS:-0}" != 1 ]]; then
  BUILD_DIR=build-asan scripts/build.sh -DHISTOCNN_WERROR=ON -DHISTOCNN_SANITIZE=ON \
    -DHISTOCNN_BENCHMARKS=OFF -DCMAKE_BUILD_TYPE=RelWithDebInfo
  (cd build-asan && ASAN_OPTIONS=detect_leaks=1 ctest --output-on-failure -j"$(nproc)")
fi
