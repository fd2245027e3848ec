#!/usr/bin/env bash
# Installs, builds (warnings as errors, the CUDA backend too where the toolkit
# is found) and runs the whole test suite; then again under AddressSanitizer +
# UndefinedBehaviorSanitizer; then the memory engine's concurrency tests under
# ThreadSanitizer with the slide scorer; then the parsers under libFuzzer (FUZZ_SECONDS per target).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
stage_times=()
stage() {  # NAME: the time since the previous stage ended
  stage_times+=("$(printf '%-28s %4d s' "$1" $((SECONDS - ${stage_start:-0})))")
  stage_start=$SECONDS
}
stage_start=$SECONDS
scripts/build.sh -DHISTOCNN_WERROR=ON
stage "build (-Werror)"
(cd build && ctest --output-on-failure -j"$(nproc)")
stage "tests"
# The relocatable package, untarred into an empty folder and run as a cluster
# user would (scripts/package.sh, scripts/check-package.sh).
if [[ "${SKIP_PACKAGE:-0}" != 1 ]]; then
  scripts/package.sh dist
  scripts/check-package.sh dist/histocnn-*-linux-x86_64.tar.gz
  stage "package + check"
fi
if [[ "${SKIP_SANITIZERS:-0}" != 1 ]]; then
  BUILD_DIR=build-asan scripts/build.sh -DHISTOCNN_WERROR=ON -DHISTOCNN_SANITIZE=ON \
    -DHISTOCNN_BENCHMARKS=OFF -DHISTOCNN_CUDA=OFF -DHISTOCNN_MPI=OFF -DCMAKE_BUILD_TYPE=RelWithDebInfo
  (cd build-asan && ASAN_OPTIONS=detect_leaks=1 LSAN_OPTIONS="suppressions=$PWD/../tests/lsan.supp" \
     ctest --output-on-failure -j"$(nproc)")
  # The pool, adaptors and step memory are shared between threads (the loader,
  # the trainer, CUDA callbacks): their concurrency tests mean something only here.
  BUILD_DIR=build-tsan scripts/build.sh -DHISTOCNN_WERROR=ON -DHISTOCNN_TSAN=ON \
    -DHISTOCNN_BENCHMARKS=OFF -DHISTOCNN_CUDA=OFF -DHISTOCNN_MPI=OFF -DCMAKE_BUILD_TYPE=RelWithDebInfo
  TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1" build-tsan/tests/histocnn_tests \
    --gtest_filter='PoolResource.*:StatisticsAdaptor.*:LimitAdaptor.*:LoggingAdaptor.*:StepMemory.*:MemoryPlan.*:MemoryEngine.*'
  # The slide scorer's readers and device hand batches over a ring; oneDNN's
  # OpenMP team (not instrumented) is kept to one thread so only ours run.
  OMP_NUM_THREADS=1 TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1" \
    build-tsan/tests/histocnn_tests --gtest_filter='TileScorer.*:Slide.Thumbnail*'
  stage "sanitizers"
fi
if [[ "${SKIP_FUZZ:-0}" != 1 ]]; then
  scripts/fuzz.sh "${FUZZ_SECONDS:-60}"
  stage "fuzzers"
fi
echo "test.sh: time per stage"
printf '  %s\n' "${stage_times[@]}"
