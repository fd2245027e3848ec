#!/usr/bin/env python3
"""Accuracy per training precision (issue 18, item 4): each precision's image
accuracy within 1 point of fp32's in the GlaS cross-validation.

    gpu_accuracy_report.py DIR

DIR holds one folder per precision (fp32, tf32, bf16), each as
scripts/cross_validate.sh writes it: foldF/eval.json (and foldF/train_seconds)
per fold. A stage cut short leaves some folds without eval.json: the means are
taken over the folds every precision finished, and the table says which.
Prints markdown."""
import json
import os
import statistics
import sys

LEVELS = (("per_image", "image"), ("per_crop", "crop"), ("per_patient", "patient"))
TOLERANCE = 0.01  # one point of image accuracy


def folds_of(folder):
    """{fold: (eval report, train seconds or None)} of the folds that finished."""
    found = {}
    for name in sorted(os.listdir(folder)):
        if not name.startswith("fold") or not name[4:].isdigit():
            continue
        path = os.path.join(folder, name, "eval.json")
        if not os.path.isfile(path):
            continue
        with open(path) as f:
            report = json.load(f)
        seconds = None
        timing = os.path.join(folder, name, "train_seconds")
        if os.path.isfile(timing):
            with open(timing) as f:
                seconds = int(f.read().strip() or 0)
        found[int(name[4:])] = (report, seconds)
    return found


def mean_of(folds, common, level, metric):
    values = [folds[k][0][level][metric] for k in common]
    values = [v for v in values if v is not None]
    return statistics.mean(values) if values else None


def fmt(value):
    return "n/a" if value is None else f"{value:.3f}"


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    root = sys.argv[1]
    if not os.path.isdir(root):
        print(f"gpu_accuracy_report: {root}: no such folder of results", file=sys.stderr)
        return 1
    order = ["fp32", "tf32", "bf16"]
    present = [p for p in order if os.path.isdir(os.path.join(root, p))]
    present += sorted(p for p in os.listdir(root)
                      if os.path.isdir(os.path.join(root, p)) and p not in order)
    runs = {p: folds_of(os.path.join(root, p)) for p in present}
    runs = {p: f for p, f in runs.items() if f}
    print("# Accuracy per training precision (GlaS, patient-grouped cross-validation)\n")
    if not runs:
        print("No precision finished a fold: nothing to compare.")
        return 1
    common = sorted(set.intersection(*(set(f) for f in runs.values())))
    print(f"Folds every precision finished: {', '.join(map(str, common)) or 'none'} "
          f"(per precision: " +
          "; ".join(f"{p} {', '.join(map(str, sorted(f)))}" for p, f in runs.items()) + ").")
    print("Means over those folds; eval as `cross_validate.sh` runs it (the model's "
          "recorded recipe).\n")
    print("| precision | image accuracy | image balanced acc. | image AUC | crop accuracy | "
          "patient accuracy | train s per fold |")
    print("|---|---|---|---|---|---|---|")
    means = {}
    for p, folds in runs.items():
        means[p] = mean_of(folds, common, "per_image", "accuracy")
        seconds = [folds[k][1] for k in common if folds[k][1] is not None]
        print(f"| {p} | {fmt(means[p])} | "
              f"{fmt(mean_of(folds, common, 'per_image', 'balanced_accuracy'))} | "
              f"{fmt(mean_of(folds, common, 'per_image', 'auc'))} | "
              f"{fmt(mean_of(folds, common, 'per_crop', 'accuracy'))} | "
              f"{fmt(mean_of(folds, common, 'per_patient', 'accuracy'))} | "
              f"{', '.join(map(str, seconds)) or 'n/a'} |")
    print()
    print("Per fold, image accuracy: " + "; ".join(
        f"{p} " + ", ".join(fmt(runs[p][k][0]['per_image']['accuracy']) for k in common)
        for p in runs) + ".\n")
    if "fp32" not in means or means["fp32"] is None:
        print("No fp32 run to compare with: no verdict.")
        return 0
    for p in runs:
        if p == "fp32" or means[p] is None:
            continue
        gap = means[p] - means["fp32"]
        verdict = "within" if abs(gap) <= TOLERANCE + 1e-12 else "**outside**"
        print(f"- {p}: image accuracy {gap * 100:+.1f} points from fp32's: {verdict} "
              f"the 1-point bound (issue 18, item 4), over {len(common)} folds.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
