#!/bin/bash
# A/B of two histocnn builds on `train` (the study's synthetic tissue), interleaved rounds.
out=$1; rounds=$2; shift 2
D=$(ls -d ~/.cache/histocnn/synthetic-g2-seed1-60x4-775x522-train-png/)
for spec in "$@"; do
  t=${spec%:*}; b=${spec#*:}
  for r in $(seq 1 $rounds); do
    for v in old new; do
      /tmp/histocnn-$v train --data $D --split all --folds 0 --size 200 --crop 256 --batch $b \
        --epochs 2 --threads $t --profile-layers --no-progress --no-checkpoint -o /tmp/ab-run --force > /dev/null 2>&1
      cp /tmp/ab-run/metrics.json $out/$v-t$t-b$b.r$r.json
      echo "$v t$t b$b r$r $(python3 -c "import json;m=json.load(open('$out/$v-t$t-b$b.r$r.json'));print([round(e['seconds'],3) for e in m['history']])")"
    done
  done
done
