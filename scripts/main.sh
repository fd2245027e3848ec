#!/usr/bin/env bash
# The main job: install, build, write the embedded synthetic GlaS-like dataset
# and train the paper's CNN on it with patient-grouped validation (CPU, all cores).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
# Only the program the job runs (the tests and benchmarks are scripts/test.sh's).
scripts/build.sh -DHISTOCNN_UNITY=ON --target histocnn
data=${DATA:-data/synthetic}
[[ -f "$data/Grade.csv" ]] || ./build/histocnn synth -o "$data" --images 60 --seed 1
./build/histocnn train --data "$data" --size 64 --batch 50 --epochs 8 --flips --rotations \
  --folds 5 --fold 0 -o runs/main --force "$@"
./build/histocnn eval --data "$data" --folds 5 --fold 0 -m runs/main/model.safetensors \
  -o runs/main/eval.json
