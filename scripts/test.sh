#!/usr/bin/env bash
# Installs, builds (warnings as errors, the CUDA backend too where the toolkit
# is found) and runs the whole test suite; builds the relocatable package and
# runs it from an empty folder; runs the whole suite again under
# AddressSanitizer + UndefinedBehaviorSanitizer; the concurrent parts (memory
# engine, slide scorer) under ThreadSanitizer; and the parsers under libFuzzer
# (FUZZ_SECONDS per target, default 30). Prints the time of each stage.
#
# Each build compiles only what its stage runs, in batches (HISTOCNN_UNITY),
# through ccache where installed; the sanitizer builds are -O1 -g1 (line
# numbers in reports, half the compile time of -O2 -g).
# SKIP_PACKAGE=1, SKIP_SANITIZERS=1, SKIP_FUZZ=1 leave a stage out.
set -euo pipefail
cd "$(dirname "$0")/.."
stage_times=()
stage_start=$SECONDS
stage() {  # NAME: the time since the previous stage ended
  stage_times+=("$(printf '%-30s %5d s' "$1" $((SECONDS - stage_start)))")
  stage_start=$SECONDS
}
report() {
  echo "test.sh: time per stage (total $((SECONDS / 60)) min $((SECONDS % 60)) s)"
  printf '  %s\n' "${stage_times[@]}"
}
trap report EXIT
jobs=$(nproc)
sanitizer_build=(-DHISTOCNN_WERROR=ON -DHISTOCNN_UNITY=ON -DHISTOCNN_BENCHMARKS=OFF
  -DHISTOCNN_CUDA=OFF -DHISTOCNN_MPI=OFF -DCMAKE_BUILD_TYPE=RelWithDebInfo
  "-DCMAKE_CXX_FLAGS_RELWITHDEBINFO=-O1 -g1 -DNDEBUG")

scripts/install-deps.sh
stage "install dependencies"

scripts/build.sh -DHISTOCNN_WERROR=ON -DHISTOCNN_UNITY=ON
stage "build (-Werror)"
(cd build && ctest --output-on-failure -j"$jobs")
stage "tests"

# The relocatable package, untarred into an empty folder and run as a cluster
# user would (scripts/package.sh, scripts/check-package.sh).
if [[ "${SKIP_PACKAGE:-0}" != 1 ]]; then
  scripts/package.sh dist
  scripts/check-package.sh dist/histocnn-*-linux-x86_64.tar.gz
  stage "package + check"
fi

if [[ "${SKIP_SANITIZERS:-0}" != 1 ]]; then
  BUILD_DIR=build-asan scripts/build.sh -DHISTOCNN_SANITIZE=ON "${sanitizer_build[@]}"
  stage "build (ASan+UBSan)"
  (cd build-asan && ASAN_OPTIONS=detect_leaks=1 LSAN_OPTIONS="suppressions=$PWD/../tests/lsan.supp" \
     ctest --output-on-failure -j"$jobs")
  stage "tests (ASan+UBSan)"
  BUILD_DIR=build-tsan scripts/build.sh -DHISTOCNN_TSAN=ON "${sanitizer_build[@]}" \
    --target histocnn_concurrency_tests
  stage "build (TSan)"
  tsan="halt_on_error=1 second_deadlock_stack=1"
  TSAN_OPTIONS="$tsan" build-tsan/tests/histocnn_concurrency_tests \
    --gtest_filter='PoolResource.*:StatisticsAdaptor.*:LimitAdaptor.*:LoggingAdaptor.*:StepMemory.*:MemoryPlan.*:MemoryEngine.*:ParallelFor.*:AddressRanges.*:SourcedAllocator.*'
  # oneDNN's OpenMP team (not instrumented) is kept to one thread so only
  # our own threads run: the read-ahead ring's, the scorer's, a slide
  # prepared (or its maps drawn) beside another's scoring, MIL's folds
  # trained at once, the batch loader's workers sharing a window (not its
  # OpenMP team's test: the team is oneDNN's uninstrumented runtime).
  OMP_NUM_THREADS=1 TSAN_OPTIONS="$tsan" build-tsan/tests/histocnn_concurrency_tests \
    --gtest_filter='ReadAhead.*:TileScorer.*:Slide.Thumbnail*:SlideOverlap.*:MilCohort.Cross*:Loader.*-Loader.Team*'
  stage "tests (TSan)"
fi

if [[ "${SKIP_FUZZ:-0}" != 1 ]]; then
  scripts/fuzz.sh "${FUZZ_SECONDS:-30}"
  stage "fuzzers"
fi
