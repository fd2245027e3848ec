#!/usr/bin/env bash
# `histocnn mil` before and after its folds, final model and attention maps
# ran in parallel (docs/results/slide-mil.md): the same cohort, interleaved
# rounds (old, new, old, new, ...), wall seconds per run, and whether the two
# wrote the same predictions and model bytes.
# Usage: bench/mil_parallel.sh OLD_HISTOCNN NEW_HISTOCNN COHORT LABELS OUT [ROUNDS] [NEW_FLAGS]
set -euo pipefail
old=$(realpath "$1") new=$(realpath "$2") cohort=$3 labels=$4 out=$5 rounds=${6:-3}
new_flags=${7:-}
mkdir -p "$out"
for r in $(seq 1 "$rounds"); do
  for which in old new; do
    bin=$old flags=""
    [ $which = new ] && bin=$new flags=$new_flags
    rm -rf "$out/$which"
    s=$(date +%s.%N)
    # shellcheck disable=SC2086
    "$bin" mil "$cohort" --slide-labels "$labels" -o "$out/$which" $flags > "$out/$which.log" 2>&1
    echo "$r $which $(echo "$(date +%s.%N) - $s" | bc)"
  done
done | tee "$out/times.txt"
cmp "$out/old/mil-predictions.csv" "$out/new/mil-predictions.csv" && echo "predictions: identical"
cmp "$out/old/mil.safetensors" "$out/new/mil.safetensors" && echo "model: identical"
