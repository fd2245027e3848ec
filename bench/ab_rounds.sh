#!/usr/bin/env bash
# Two histocnn binaries on the same command, in interleaved rounds (old, new,
# old, new, ...): wall seconds per run into OUT/times.txt, each run's output
# in OUT/old/ and OUT/new/ (the last round's kept) and its log beside them.
# In the command, @OUT@ stands for that run's output folder; NEW_ARGS (words)
# are appended to the new binary's command only (a flag the old one lacks).
# Usage: [NEW_ARGS=...] bench/ab_rounds.sh OLD_HISTOCNN NEW_HISTOCNN OUT ROUNDS COMMAND ARGS...
#   e.g. NEW_ARGS="--threads 2" bench/ab_rounds.sh old new ab 3 mil cohort \
#          --slide-labels l.csv -o @OUT@
set -euo pipefail
old=$(realpath "$1") new=$(realpath "$2") out=$3 rounds=$4
shift 4
mkdir -p "$out"
for r in $(seq 1 "$rounds"); do
  for which in old new; do
    bin=$old extra=()
    # shellcheck disable=SC2206
    [ $which = new ] && bin=$new extra=(${NEW_ARGS:-})
    rm -rf "${out:?}/$which"
    args=()
    for a in "$@"; do args+=("${a//@OUT@/$out/$which}"); done
    args+=("${extra[@]}")
    s=$(date +%s.%N)
    "$bin" "${args[@]}" > "$out/$which.log" 2>&1
    echo "$r $which $(echo "$(date +%s.%N) - $s" | bc)"
  done
done | tee "$out/times.txt"
