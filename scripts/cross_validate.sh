#!/usr/bin/env bash
# Patient-grouped k-fold cross-validation: trains one model per fold, evaluates
# it on the held-out patients, and summarises mean and spread per level.
#   scripts/cross_validate.sh DATA OUT [K] [train flags...] [-- eval flags...]
# e.g. scripts/cross_validate.sh ../shared/data/glas-train runs/glas-cv 5 --preset accurate -- --tta
#      (train flags such as --ensemble 3, --seed N or --fold-seed N apply to every fold;
#       eval reads each fold's model, an ensemble included, with its recorded recipe)
# Writes OUT/foldF/{model.safetensors,eval.json,eval.images.csv,eval.roc.png,...},
# OUT/cv_summary.json (mean, standard deviation and per-fold values per level)
# and OUT/cv_images.csv (every held-out image's prediction, all folds).
set -euo pipefail
usage() { sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'; }
if [[ "${1:-}" == "-h" || "${1:-}" == "--help" ]]; then usage; exit 0; fi
if [[ $# -lt 2 ]]; then usage >&2; exit 2; fi
# Paths are taken from where it is run; the binary from this checkout.
repo=$(cd "$(dirname "$0")/.." && pwd)
data=$1; out=$2; k=${3:-5}; shift $(( $# < 3 ? $# : 3 ))
[[ -f "$data/Grade.csv" ]] || { echo "cross_validate: $data: no Grade.csv (not a GlaS folder)" >&2; exit 2; }
[[ $k =~ ^[0-9]+$ && $k -ge 2 ]] || { echo "cross_validate: K must be an integer >= 2, got '$k'" >&2; exit 2; }
bin=${HISTOCNN:-$repo/build/histocnn}  # another binary, e.g. a copy kept for a long run
train_flags=(); eval_flags=()
while [[ $# -gt 0 && "$1" != "--" ]]; do train_flags+=("$1"); shift; done
[[ "${1:-}" == "--" ]] && shift
eval_flags=("$@")
mkdir -p "$out"
for ((fold = 0; fold < k; fold++)); do
  start=$SECONDS
  "$bin" train --data "$data" --folds "$k" --fold "$fold" -o "$out/fold$fold" --no-progress "${train_flags[@]}" \
    | tee "$out/fold$fold.log"
  echo $((SECONDS - start)) > "$out/fold$fold/train_seconds"
  # eval finds the fold the model held out (folds, fold and fold seed) in its recipe.
  "$bin" eval --data "$data" -m "$out/fold$fold/model.safetensors" \
    -o "$out/fold$fold/eval.json" "${eval_flags[@]}"
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
summary["folds"] = k
summary["train_seconds"] = [int(open(f"{out}/fold{f}/train_seconds").read()) for f in range(k)]
json.dump(summary, open(f"{out}/cv_summary.json", "w"), indent=2)
with open(f"{out}/cv_images.csv", "w") as csv:
    for f in range(k):
        lines = open(f"{out}/fold{f}/eval.images.csv").read().splitlines()
        if f == 0:
            csv.write("fold," + lines[0] + "\n")
        csv.writelines(f"{f},{line}\n" for line in lines[1:])
for level, metrics in summary.items():
    print(f"{level:12s} " + "  ".join(
        f"{m} {v['mean']:.3f}±{v['stdev']:.3f}" if v["mean"] is not None else f"{m} n/a"
        for m, v in metrics.items()) if isinstance(metrics, dict) else f"{level}: {metrics}")
PY
