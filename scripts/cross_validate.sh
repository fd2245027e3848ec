#!/usr/bin/env bash
# Patient-grouped k-fold cross-validation: trains one model per fold, evaluates
# it on the held-out patients, and summarises mean and spread per level.
#   scripts/cross_validate.sh DATA OUT [K] [train flags...] [-- eval flags...]
# e.g. scripts/cross_validate.sh ../shared/data/glas-train runs/glas-cv 5 --preset accurate -- --tta
#      (train flags such as --ensemble 3, --seed N or --fold-seed N apply to every fold;
#       eval reads each fold's model, an ensemble included, with its recorded recipe)
# Writes OUT/foldF/{model.safetensors,eval.json,eval.images.csv,eval.roc.png,...}
# (without gnuplot: no figures),
# OUT/cv_summary.json (mean, standard deviation and per-fold values per level;
# "pooled": every held-out image together, with patient-bootstrap 95% intervals,
# and the calibration error of P(malignant) per crop and image)
# and OUT/cv_images.csv (every held-out image's prediction, all folds).
set -euo pipefail
usage() { sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; }
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
# Without gnuplot (a GPU node's image often has none) eval -o would warn on
# every fold and keep each figure's script; the summary needs no figure.
if ! command -v gnuplot > /dev/null && [[ " ${eval_flags[*]} " != *" --no-figures "* ]]; then
  echo "cross_validate: gnuplot is not installed: each fold is evaluated with --no-figures" >&2
  eval_flags+=(--no-figures)
fi
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
# The summary needs only Python's standard library: the system's python3, or
# any (a GPU image may keep its only one in a virtual environment).
python=/usr/bin/python3
[[ -x $python ]] || python=python3
"$python" - "$out" "$k" <<'PY'
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
with open(f"{out}/cv_images.csv", "w") as csv:
    for f in range(k):
        lines = open(f"{out}/fold{f}/eval.images.csv").read().splitlines()
        if f == 0:
            csv.write("fold," + lines[0] + "\n")
        csv.writelines(f"{f},{line}\n" for line in lines[1:])

# Every held-out image of every fold pooled, with 95% intervals from the
# patient-level bootstrap (1000 resamples of the patients, each with all its
# images; a patient's score is the crop-weighted mean of its images').
import csv as csvmod, random
def metrics(preds):  # [(p_malignant, label)] -> accuracy, balanced accuracy, AUC (None: one class)
    right = [int((p >= 0.5) == bool(y)) for p, y in preds]
    pos = [p for p, y in preds if y]; neg = [p for p, y in preds if not y]
    acc = sum(right) / len(preds)
    if not pos or not neg:
        return acc, None, None
    sens = sum(p >= 0.5 for p in pos) / len(pos); spec = sum(p < 0.5 for p in neg) / len(neg)
    auc = sum((a > b) + 0.5 * (a == b) for a in pos for b in neg) / (len(pos) * len(neg))
    return acc, (sens + spec) / 2, auc
images = list(csvmod.DictReader(open(f"{out}/cv_images.csv")))
by_patient = {}
for r in images:
    by_patient.setdefault(r["patient"], []).append(
        (float(r["p_malignant"]), int(r["label"] == "malignant"), int(r["crops"])))
def patient_pred(rows):
    crops = sum(c for _, _, c in rows)
    return (sum(p * c for p, _, c in rows) / crops, int(2 * sum(y for _, y, _ in rows) > len(rows)))
def levels(patients):
    return {"per_image": metrics([(p, y) for rows in patients for p, y, _ in rows]),
            "per_patient": metrics([patient_pred(rows) for rows in patients])}
names = sorted(by_patient)
point = levels([by_patient[n] for n in names])
rng = random.Random(1)
draws = [levels([by_patient[rng.choice(names)] for _ in names]) for _ in range(1000)]
def interval(values):
    values = sorted(v for v in values if v is not None)
    if not values:
        return None
    def at(q):  # linear between order statistics, as numpy and histocnn eval
        pos = q * (len(values) - 1); lo = int(pos); hi = min(lo + 1, len(values) - 1)
        return values[lo] + (pos - lo) * (values[hi] - values[lo])
    return [at(0.025), at(0.975)]
summary["pooled"] = {"images": len(images), "patients": len(names), "bootstrap": 1000}
for level in ("per_image", "per_patient"):
    summary["pooled"][level] = {
        m: {"value": point[level][i], "ci95": interval([d[level][i] for d in draws])}
        for i, m in enumerate(("accuracy", "balanced_accuracy", "auc"))}
# The calibration of P(malignant) over every held-out crop and image: the
# expected calibration error (10 equal-width bins, as eval's per fold).
def ece(pairs, bins=10):
    sums = [[0, 0.0, 0] for _ in range(bins)]
    for p, y in pairs:
        b = min(int(p * bins), bins - 1)
        sums[b][0] += 1; sums[b][1] += p; sums[b][2] += y
    return sum(abs(s[2] - s[1]) for s in sums if s[0]) / len(pairs) if pairs else None
crop_pairs = [(float(r["p_malignant"]), int(r["label"] == "malignant")) for f in range(k)
              for r in csvmod.DictReader(open(f"{out}/fold{f}/eval.crops.csv"))]
summary["pooled"]["calibration"] = {
    "bins": 10, "ece_per_crop": ece(crop_pairs),
    "ece_per_image": ece([(float(r["p_malignant"]), int(r["label"] == "malignant")) for r in images])}
# More than two classes (a grade model): accuracy, macro-F1 and quadratic
# kappa per fold, and pooled per image with patient-bootstrap intervals.
if "classes" in reports[0]:
    names_k = reports[0]["classes"]["names"]; k = len(names_k)
    summary["classes"] = {"names": names_k}
    for level in ("per_image", "per_patient"):
        summary["classes"][level] = {}
        for metric in ("accuracy", "macro_f1", "quadratic_kappa"):
            values = [r["classes"][level][metric] for r in reports
                      if r["classes"][level][metric] is not None]
            summary["classes"][level][metric] = {
                "mean": statistics.mean(values) if values else None,
                "stdev": statistics.stdev(values) if len(values) > 1 else 0.0, "folds": values}
    index = {n: i for i, n in enumerate(names_k)}
    def class_metrics(pairs):  # [(true, predicted)] -> accuracy, macro-F1, quadratic kappa
        n = len(pairs); conf = [[0] * k for _ in range(k)]
        for t, p in pairs: conf[t][p] += 1
        acc = sum(conf[i][i] for i in range(k)) / n
        f1s = []
        for c in range(k):
            tp = conf[c][c]; pred = sum(conf[i][c] for i in range(k)); sup = sum(conf[c])
            if pred + sup: f1s.append(2 * tp / (pred + sup))
        rows = [sum(r) for r in conf]; cols = [sum(conf[i][j] for i in range(k)) for j in range(k)]
        w = lambda i, j: (i - j) ** 2 / (k - 1) ** 2
        obs = sum(w(i, j) * conf[i][j] for i in range(k) for j in range(k))
        exp = sum(w(i, j) * rows[i] * cols[j] / n for i in range(k) for j in range(k))
        return acc, sum(f1s) / len(f1s), (1 - obs / exp) if exp else None
    class_rows = {}
    for r in images:
        class_rows.setdefault(r["patient"], []).append((index[r["class"]], index[r["predicted_class"]]))
    point_k = class_metrics([p for n in names for p in class_rows[n]])
    draws_k = [class_metrics([p for _ in names for p in class_rows[rng.choice(names)]])
               for _ in range(1000)]
    summary["classes"]["pooled_per_image"] = {
        m: {"value": point_k[i], "ci95": interval([d[i] for d in draws_k])}
        for i, m in enumerate(("accuracy", "macro_f1", "quadratic_kappa"))}
json.dump(summary, open(f"{out}/cv_summary.json", "w"), indent=2)
for level in ("per_crop", "per_image", "per_patient"):
    print(f"{level:12s} " + "  ".join(
        f"{m} {v['mean']:.3f}±{v['stdev']:.3f}" if v["mean"] is not None else f"{m} n/a"
        for m, v in summary[level].items()) + "   (mean±sd over folds)")
for level in ("per_image", "per_patient"):
    cells = []
    for m, v in summary["pooled"][level].items():
        ci = v["ci95"]
        cells.append(f"{m} {v['value']:.3f} [{ci[0]:.3f}, {ci[1]:.3f}]" if v["value"] is not None
                     and ci else f"{m} n/a")
    print(f"{level:12s} " + "  ".join(cells) + "   (pooled, 95% patient bootstrap)")
cal = summary["pooled"]["calibration"]
print(f"calibration  P(malignant) ECE {cal['ece_per_crop']:.3f} per crop, "
      f"{cal['ece_per_image']:.3f} per image   (pooled; optimistic where a fold's "
      "temperature was fitted on its validation images, here its held-out ones)")
if "classes" in summary:
    c = summary["classes"]
    print(f"{len(c['names'])} classes:")
    for level in ("per_image", "per_patient"):
        print(f"{level:12s} " + "  ".join(
            f"{m} {v['mean']:.3f}±{v['stdev']:.3f}" if v["mean"] is not None else f"{m} n/a"
            for m, v in c[level].items()) + "   (mean±sd over folds)")
    print("per_image    " + "  ".join(
        f"{m} {v['value']:.3f} [{v['ci95'][0]:.3f}, {v['ci95'][1]:.3f}]"
        if v["value"] is not None and v["ci95"] else f"{m} n/a"
        for m, v in c["pooled_per_image"].items()) + "   (pooled, 95% patient bootstrap)")
PY
