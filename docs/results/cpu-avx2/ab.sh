#!/bin/bash
# A/B of two bench_epoch builds on an AVX2 CPU (the study's synthetic tissue
# crops, 1851 a epoch), interleaved rounds: old, new, old, new, ...
#   ab.sh OUT ROUNDS OLD_BENCH_EPOCH NEW_BENCH_EPOCH THREADS:BATCH...
out=$1; rounds=$2; old=$3; new=$4; shift 4
mkdir -p "$out"
for spec in "$@"; do
  t=${spec%:*}; b=${spec#*:}
  for r in $(seq 1 "$rounds"); do
    for v in old new; do
      bin=$old; [[ $v == new ]] && bin=$new
      "$bin" --threads "$t" --sizes 200 --batches "$b" --repeats 1 --profile-layers \
        --json "$out/$v-t$t-b$b.r$r.json" > "$out/$v-t$t-b$b.r$r.txt" 2>&1
      echo "$v t$t b$b r$r $(awk '$1 == 200 { print $3 " s" }' "$out/$v-t$t-b$b.r$r.txt") load $(cut -d' ' -f1 /proc/loadavg)"
    done
  done
done
