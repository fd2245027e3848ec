#!/usr/bin/env bash
# A slide-level attention MIL model end to end on synthetic slides
# (docs/results/slide-mil.md): a tile model trained on the synthetic GlaS-like
# images, 16 slides (odd: benign tissue; even: each piece half malignant),
# two per patient, scored with --features, then `histocnn mil`; and the cost
# of --features, interleaved with plain scoring on 4 of the slides.
# Usage: bench/slide_mil_demo.sh HISTOCNN OUT
set -euo pipefail
H=$(realpath "$1")
mkdir -p "$2" && cd "$2"
"$H" synth -o data --images 60 --seed 4 > synth.log 2>&1
"$H" train --data data --size 32 --crop 128 --batch 20 --epochs 6 --threads 2 --no-progress \
  --seed 3 -o model > train.log 2>&1
echo "slide,label,patient" > labels.csv
for i in $(seq 1 16); do
  if [ $((i % 2)) = 0 ]; then t=mixed; l=malignant; else t=benign; l=benign; fi
  "$H" synth --slide slides/s$i.tif --slide-size 6000x4000 --slide-tissue $t --seed $i > /dev/null
  echo "s$i.tif,$l,P$(((i + 1) / 2))" >> labels.csv
done
"$H" slide model/model.safetensors slides/ --features --threads 2 --no-progress \
  --slide-labels labels.csv -o cohort > slide.log 2>&1
"$H" mil cohort --slide-labels labels.csv -o mil --folds 4 | tee mil.log
# Attention on the tiles the tile model calls malignant, per held-out slide.
python3 - <<'PY' | tee attention.txt
import csv, glob
for f in sorted(glob.glob('mil/attention/*.csv')):
    rows = list(csv.DictReader(open(f)))
    hi = [r for r in rows if float(r['p_malignant']) >= 0.5]
    print('%s: %d tiles, P >= 0.5 on %.2f of them, holding %.2f of the attention'
          % (f.split('/')[-1][:-4], len(rows), len(hi) / len(rows),
             sum(float(r['attention']) for r in hi)))
PY
# --features against plain scoring, interleaved, 3 rounds.
S="slides/s1.tif slides/s2.tif slides/s3.tif slides/s4.tif"
for r in 1 2 3; do
  for mode in plain features; do
    f=""; [ $mode = features ] && f="--features"
    s=$(date +%s.%N)
    "$H" slide model/model.safetensors $S $f --threads 2 --no-progress --restart \
      -o cost-$mode > /dev/null 2>&1
    echo "$r $mode $(echo "$(date +%s.%N) - $s" | bc)"
  done
done | tee cost.txt
