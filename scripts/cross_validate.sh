#!/usr/bin/env bash
# Patient-grouped k-fold cross-validation: trains one model per fold, evaluates
# it on the held-out patients, and summarises mean and spread per level.
#   scripts/cross_validate.sh DATA OUT [K] [extra train flags...]
# e.g. scripts/cross_validate.sh ../shared/data/glas-train runs/glas-cv 4 --size 64 --epochs 15
set -euo pipefail
cd "$(dirname "$0")/.."
data=${1:?data folder}; out=${2:?output folder}; k=${3:-5}; shift 3 || true
bin=${HISTOCNN:-./build/histocnn}  # another binary, e.g. a copy kept for a long run
mkdir -p "$out"
for ((fold = 0; fold < k; fold++)); do
  "$bin" train --data "$data" --folds "$k" --fold "$fold" -o "$out/fold$fold" --no-progress "$@" \
    | tee "$out/fold$fold.log"
  "$bin" eval --data "$data" --folds "$k" --fold "$fold" -m "$out/fold$fold/model.safetensors" \
    -o "$out/fold$fold/eval.json"
done
/usr/bin/python3 - "$out" "$k" <<'PY'
import json, statistics, sys
out, k = sys.argv[1], int(sys.argv[2])
reports = [json.load(open(f"{out}/fold{f}/eval.json")) for f in range(k)]
summary = {}
for level in ("per_crop", "per_image", "per_patient"):
    summary[level] = {}
    for metric in ("accuracy", "balanced_accuracy", "auc"):
        values = [r[level][metric] for r in reports if r[level][metric] is not None]
        summary[level][metric] = {"mean": statistics.mean(values) if values else None,
                                  "stdev": statistics.stdev(values) if len(values) > 1 else 0.0,
                                  "folds": values}
json.dump(summary, open(f"{out}/cv_summary.json", "w"), indent=2)
for level, metrics in summary.items():
    print(f"{level:12s} " + "  ".join(
        f"{m} {v['mean']:.3f}±{v['stdev']:.3f}" if v["mean"] is not None else f"{m} n/a"
        for m, v in metrics.items()))
PY
