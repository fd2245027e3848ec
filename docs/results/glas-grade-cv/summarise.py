#!/usr/bin/env python3
"""The grade ablation's table: one row per cross-validation run.

    summarise.py RUN [RUN ...]   (folders written by scripts/cross_validate.sh)

For each run: five-grade image accuracy, macro-F1 and quadratic kappa (mean
and sd over the folds, and pooled over every held-out image with the
patient-bootstrap 95% interval), the binary view's pooled image accuracy and
AUC, and the training seconds per fold. Markdown on stdout.
"""
import json
import sys


def cell(v, digits=3):
    return "n/a" if v is None else f"{v:.{digits}f}"


def pooled(entry):
    ci = entry.get("ci95")
    text = cell(entry["value"])
    return text + (f" [{cell(ci[0])}, {cell(ci[1])}]" if ci else "")


print("| run | grade acc (folds) | grade acc (pooled) | macro-F1 (pooled) | kappa (folds) "
      "| kappa (pooled) | binary image acc (pooled) | binary AUC (pooled) | s/fold |")
print("|---|---|---|---|---|---|---|---|---|")
for run in sys.argv[1:]:
    s = json.load(open(f"{run}/cv_summary.json"))
    c = s["classes"]
    folds = lambda m: f"{cell(c['per_image'][m]['mean'])} ± {cell(c['per_image'][m]['stdev'])}"
    p = c["pooled_per_image"]
    b = s["pooled"]["per_image"]
    seconds = sum(s["train_seconds"]) / len(s["train_seconds"])
    print(f"| {run.rstrip('/').split('/')[-1]} | {folds('accuracy')} | {pooled(p['accuracy'])} "
          f"| {pooled(p['macro_f1'])} | {folds('quadratic_kappa')} "
          f"| {pooled(p['quadratic_kappa'])} | {pooled(b['accuracy'])} | {pooled(b['auc'])} "
          f"| {seconds:.0f} |")
