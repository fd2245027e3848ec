#!/usr/bin/env bash
# Data parallelism on one machine: N processes x 1 thread against 1 process x
# N threads, the same global batch and data, interleaved rounds (ours: one,
# many, one, many, ...). Reports the steady-state epoch (the last of 2) of each
# run and the medians.
#   bench/mpi_side_by_side.sh OUT_DIR [N=2] [SIZE=64] [BATCH=50] [ROUNDS=3]
set -euo pipefail
cd "$(dirname "$0")/.."
out="$1"; n="${2:-2}"; size="${3:-64}"; batch="${4:-50}"; rounds="${5:-3}"
bin=build/histocnn
mkdir -p "$out"
[[ -f "$out/data/Grade.csv" ]] || "$bin" synth -o "$out/data" --images 60 >/dev/null
args=(train --data "$out/data" --split all --folds 0 --size "$size" --batch "$batch" --epochs 2
      --no-progress)
epoch() { python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['history'][-1]['seconds'])" "$1/metrics.json"; }
for r in $(seq 1 "$rounds"); do
  "$bin" "${args[@]}" --threads "$n" -o "$out/one_$r" >/dev/null
  echo "round $r  1 process x $n threads: $(epoch "$out/one_$r") s/epoch"
  mpirun -np "$n" --oversubscribe --allow-run-as-root "$bin" "${args[@]}" --threads 1 \
    -o "$out/many_$r" >/dev/null
  echo "round $r  $n processes x 1 thread: $(epoch "$out/many_$r") s/epoch"
done
