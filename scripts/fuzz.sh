#!/usr/bin/env bash
# Builds the libFuzzer targets (clang, ASan + UBSan) and runs each for a
# bounded time over its seed corpus (fuzz/corpus/<target>) and the crash
# regressions kept in fuzz/regressions/<target>. A crash fails the script and
# leaves its input in build-fuzz/.
#   scripts/fuzz.sh [seconds per target, default 60]
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-60}"
CC=clang CXX=clang++ cmake -S . -B build-fuzz -DHISTOCNN_FUZZ=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build-fuzz -j"$(nproc)"
for target in grade_csv safetensors model_spec image tiff model_file study_results; do
  work="build-fuzz/corpus-$target"
  mkdir -p "$work"
  inputs=("$work" "fuzz/corpus/$target")
  [[ -d "fuzz/regressions/$target" ]] && inputs+=("fuzz/regressions/$target")
  echo "fuzz: $target for ${seconds}s"
  (cd build-fuzz && ./fuzz/fuzz_$target -max_total_time="$seconds" -rss_limit_mb=4096 -malloc_limit_mb=4096 \
    -max_len=65536 -print_final_stats=1 "${inputs[@]/#/../}" 2>&1 | tail -n 12)
done
