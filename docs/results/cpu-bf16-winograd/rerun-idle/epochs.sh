#!/bin/bash
# Interleaved epochs at 200 px, batch 50, 2 threads: OLD = bench_epoch built at
# e676761 (session start's bf16 with --onednn-forward; then with the bf16
# Winograd forward alone), NEW = at fb4d49c (bf16, fp32).
OLD=$1 NEW=$2 OUT=$3 ROUNDS=${4:-3}
run() { "$1" --threads 2 --sizes 200 --batches 50 --repeats 1 "${@:3}" --json "$OUT/$2.json" > /dev/null; }
for r in $(seq 1 "$ROUNDS"); do
  run "$OLD" start-bf16.$r --precision bf16 --onednn-forward
  run "$OLD" winograd-only-bf16.$r --precision bf16
  run "$NEW" new-bf16.$r --precision bf16
  run "$NEW" new-fp32.$r --precision fp32
done
