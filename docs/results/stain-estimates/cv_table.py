#!/usr/bin/env python3
"""The cross-validation rows of stain-estimates.md from cv_summary.json files.

    python3 docs/results/stain-estimates/cv_table.py SUMMARY...
SUMMARY: a run folder of scripts/cross_validate.sh (its cv_summary.json) or
such a file; the row is named after the folder, or the file's first word.
"""
import json
import os
import sys

print("| run | image accuracy | folds | balanced | image AUC | crop accuracy "
      "| pooled image accuracy (95% CI) | patients | ECE crop / image |")
print("|---|---|---|---|---|---|---|---|---|")
for run in sys.argv[1:]:
    path = os.path.join(run, "cv_summary.json") if os.path.isdir(run) else run
    d = json.load(open(path))
    name = os.path.basename(run.rstrip("/")).split(".")[0]
    img, p = d["per_image"], d["pooled"]
    acc = p["per_image"]["accuracy"]
    folds = ", ".join(f"{x:.3f}" for x in img["accuracy"]["folds"])
    print(f"| {name} | **{img['accuracy']['mean']:.3f} ± "
          f"{img['accuracy']['stdev']:.3f}** | {folds} | {img['balanced_accuracy']['mean']:.3f} | "
          f"{img['auc']['mean']:.3f} | {d['per_crop']['accuracy']['mean']:.3f} | "
          f"{acc['value']:.3f} ({acc['ci95'][0]:.3f}-{acc['ci95'][1]:.3f}) | "
          f"{d['per_patient']['accuracy']['mean']:.3f} | "
          f"{p['calibration']['ece_per_crop']:.3f} / {p['calibration']['ece_per_image']:.3f} |")
