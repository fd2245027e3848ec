#!/usr/bin/env bash
# Builds the libFuzzer targets (clang, ASan + UBSan) and runs each for a
# bounded time over its seed corpus (fuzz/corpus/<target>) and the crash
# regressions kept in fuzz/regressions/<target>; one line per target ("N runs
# in S s, no crash"). A crash fails the script, prints libFuzzer's report and
# leaves its input in build-fuzz/.
#   scripts/fuzz.sh [seconds per target, default 60]
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-60}"
launcher=()
command -v ccache > /dev/null && launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
CC=clang CXX=clang++ cmake -S . -B build-fuzz -DHISTOCNN_FUZZ=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  "${launcher[@]}" > /dev/null
cmake --build build-fuzz -j"$(nproc)" > /dev/null
for target in grade_csv slide_labels annotations safetensors model_spec image tiff slide model_file \
              study_results dicom; do
  work="build-fuzz/corpus-$target"
  mkdir -p "$work"
  inputs=("$work" "fuzz/corpus/$target")
  [[ -d "fuzz/regressions/$target" ]] && inputs+=("fuzz/regressions/$target")
  log="build-fuzz/fuzz-$target.log"
  dict=()
  [[ -f "fuzz/dict/$target.dict" ]] && dict=(-dict="../fuzz/dict/$target.dict")
  max_len=65536
  [[ $target == slide ]] && max_len=262144  # the .svs seed (level, thumbnail) is 190 KB
  if ! (cd build-fuzz && ./fuzz/fuzz_$target -max_total_time="$seconds" -rss_limit_mb=4096 \
          -malloc_limit_mb=4096 -max_len="$max_len" -print_final_stats=1 "${dict[@]}" \
          "${inputs[@]/#/../}" \
          > "../$log" 2>&1); then
    tail -n 40 "$log"
    echo "fuzz: $target CRASHED (input and report in build-fuzz/, log $log)" >&2
    exit 1
  fi
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
  echo "fuzz: $target: ${runs:-?} runs in ${seconds} s, no crash"
done
