#!/usr/bin/env bash
# histocnn and PyTorch, same model, same shapes, same threads, one run.
#   bench/side_by_side.sh OUT_DIR THREADS SIZES BATCHES REPEATS
# e.g. bench/side_by_side.sh docs/results/cpu-2core 2 200 50 3
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:?output folder}; threads=${2:-2}; sizes=${3:-200}; batches=${4:-50}; repeats=${5:-3}
mkdir -p "$out"
{
  echo "date: $(date -u +%FT%TZ)"
  echo "cpu: $(lscpu | sed -n 's/^Model name: *//p') ($(nproc) cores visible)"
  echo "command: bench/side_by_side.sh $*"
} > "$out/machine.txt"
./build/bench/bench_epoch --threads "$threads" --sizes "$sizes" --batches "$batches" \
  --repeats "$repeats" --json "$out/histocnn.json" | tee "$out/histocnn.txt"
taskset -c "0-$((threads - 1))" /usr/bin/python3 bench/pytorch_epoch.py --threads "$threads" \
  --sizes "$sizes" --batches "$batches" --repeats "$repeats" --json "$out/pytorch.json" | tee "$out/pytorch.txt"
