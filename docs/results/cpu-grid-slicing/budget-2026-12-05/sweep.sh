#!/usr/bin/env bash
# Interleaved slice-budget sweep: bench_epoch at 200 px, 2 threads.
set -euo pipefail
cd /work/main
out=$1; rounds=$2; shift 2
mkdir -p "$out"
for ((r = 1; r <= rounds; ++r)); do
  for b in 50 10; do
    for kb in "$@"; do
      build/bench/bench_epoch --threads 2 --sizes 200 --batches $b --repeats 1 --slice-kb $kb \
        --profile-layers --json "$out/b$b-kb$kb.$r.json" > "$out/b$b-kb$kb.$r.txt"
      echo "r$r b$b kb$kb $(tail -1 "$out/b$b-kb$kb.$r.txt")"
    done
  done
done
