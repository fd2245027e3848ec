#!/usr/bin/env bash
# Installs, builds (warnings as errors, the CUDA backend too where the toolkit
# is found) and runs the whole test suite; then again under AddressSanitizer +
# UndefinedBehaviorSanitizer; then the memory engine's concurrency tests under
# ThreadSanitizer; then the parsers under libFuzzer (FUZZ_SECONDS per target).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/build.sh -DHISTOCNN_WERROR=ON
(cd build && ctest --output-on-failure -j"$(nproc)")
if [[ "${SKIP_SANITIZERS:-0}" != 1 ]]; then
  BUILD_DIR=build-asan scripts/build.sh -DHISTOCNN_WERROR=ON -DHISTOCNN_SANITIZE=ON \
    -DHISTOCNN_BENCHMARKS=OFF -DHISTOCNN_CUDA=OFF -DHISTOCNN_MPI=OFF -DCMAKE_BUILD_TYPE=RelWithDebInfo
  (cd build-asan && ASAN_OPTIONS=detect_leaks=1 ctest --output-on-failure -j"$(nproc)")
  # The pool, adaptors and step memory are shared between threads (the loader,
  # the trainer, CUDA callbacks): their concurrency tests mean something only here.
  BUILD_DIR=build-tsan scripts/build.sh -DHISTOCNN_WERROR=ON -DHISTOCNN_TSAN=ON \
    -DHISTOCNN_BENCHMARKS=OFF -DHISTOCNN_CUDA=OFF -DHISTOCNN_MPI=OFF -DCMAKE_BUILD_TYPE=RelWithDebInfo
  TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1" build-tsan/tests/histocnn_tests \
    --gtest_filter='PoolResource.*:StatisticsAdaptor.*:LimitAdaptor.*:LoggingAdaptor.*:StepMemory.*:MemoryPlan.*:MemoryEngine.*'
fi
if [[ "${SKIP_FUZZ:-0}" != 1 ]]; then
  scripts/fuzz.sh "${FUZZ_SECONDS:-60}"
fi
