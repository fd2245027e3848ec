#!/usr/bin/env python3
"""The grade ablation's table: one row per cross-validation run.

    summarise.py RUN [RUN ...]              (folders written by scripts/cross_validate.sh)
    summarise.py --ensemble RUN RUN ...     (runs on the same folds, averaged)
    summarise.py --ece RUN ...              (pooled binary calibration error)
    summarise.py --by-patient RUN RUN ...   (grade errors per patient and grade, over runs)

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


# --- ensembles from runs on the same folds -------------------------------
# `summarise.py --ensemble RUN [RUN ...]`: every held-out image's class
# probabilities (and P(malignant)) averaged over the runs — the runs differ
# only in their seed, so their folds are the same and this is what `train
# --ensemble N` would score (each member's own temperature, the same eval
# crops) — then the pooled grade accuracy, macro-F1, kappa and binary
# accuracy and AUC.
def ensemble(runs):
    import csv
    names = json.load(open(f"{runs[0]}/cv_summary.json"))["classes"]["names"]
    k = len(names)
    tables = [{r["image"]: r for r in csv.DictReader(open(f"{run}/cv_images.csv"))} for run in runs]
    pairs, binary, expected = [], [], []
    for image, row in tables[0].items():
        assert all(t[image]["fold"] == row["fold"] for t in tables), "runs on other folds"
        p = [sum(float(t[image]["p_" + n]) for t in tables) / len(tables) for n in names]
        truth = names.index(row["class"])
        pairs.append((truth, max(range(k), key=lambda j: p[j])))
        # The grade of least expected squared distance (an ordinal decision).
        expected.append((truth, min(range(k), key=lambda j: sum(p[c] * (j - c) ** 2
                                                                 for c in range(k)))))
        p_mal = sum(float(t[image]["p_malignant"]) for t in tables) / len(tables)
        binary.append((p_mal, row["label"] == "malignant"))
    def confusion(decisions):
        m = [[0] * k for _ in range(k)]
        for t, p in decisions:
            m[t][p] += 1
        return m

    def quadratic_kappa(m):
        rows = [sum(r) for r in m]
        cols = [sum(m[i][j] for i in range(k)) for j in range(k)]
        w = lambda i, j: (i - j) ** 2 / (k - 1) ** 2
        return 1 - sum(w(i, j) * m[i][j] for i in range(k) for j in range(k)) / sum(
            w(i, j) * rows[i] * cols[j] / len(pairs) for i in range(k) for j in range(k))

    conf = confusion(pairs)
    n = len(pairs)
    rows = [sum(r) for r in conf]
    cols = [sum(conf[i][j] for i in range(k)) for j in range(k)]
    kappa = quadratic_kappa(conf)
    f1 = [2 * conf[c][c] / (rows[c] + cols[c]) for c in range(k) if rows[c] + cols[c]]
    pos = [p for p, y in binary if y]
    neg = [p for p, y in binary if not y]
    auc = sum((a > b) + 0.5 * (a == b) for a in pos for b in neg) / (len(pos) * len(neg))
    acc = sum((p >= 0.5) == y for p, y in binary) / n
    print(f"| ensemble of {len(runs)} ({', '.join(r.rstrip('/').split('/')[-1] for r in runs)}) "
          f"| | {sum(conf[i][i] for i in range(k)) / n:.3f} | {sum(f1) / len(f1):.3f} | "
          f"| {kappa:.3f} | {acc:.3f} | {auc:.3f} | |")
    print(f"\nexpected-cost decision instead of argmax: kappa "
          f"{quadratic_kappa(confusion(expected)):.3f}")
    print("\nconfusion (rows true, columns predicted):", names)
    for name, row in zip(names, conf):
        print(f"    {name:38s} {row}")


def table(runs):
    print("| run | grade acc (folds) | grade acc (pooled) | macro-F1 (pooled) | kappa (folds) "
          "| kappa (pooled) | binary image acc (pooled) | binary AUC (pooled) | s/fold |")
    print("|---|---|---|---|---|---|---|---|---|")
    for run in runs:
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


# `--ece RUN ...`: the expected calibration error (10 bins) of the binary
# view's P(malignant) over every held-out crop and image of the five folds
# (eval's own figure is per fold).
def pooled_ece(runs):
    import csv

    def ece(pairs, bins=10):
        total = 0.0
        for b in range(bins):
            sel = [(p, y) for p, y in pairs if min(int(p * bins), bins - 1) == b]
            if sel:
                gap = sum(y for _, y in sel) / len(sel) - sum(p for p, _ in sel) / len(sel)
                total += len(sel) / len(pairs) * abs(gap)
        return total

    for run in runs:
        folds = json.load(open(f"{run}/cv_summary.json"))["folds"]
        levels = {}
        for level in ("crops", "images"):
            pairs = [(float(r["p_malignant"]), r["label"] == "malignant")
                     for f in range(folds)
                     for r in csv.DictReader(open(f"{run}/fold{f}/eval.{level}.csv"))]
            levels[level] = ece(pairs)
        print(f"{run.rstrip('/').split('/')[-1]}: pooled P(malignant) ECE "
              f"{levels['crops']:.3f} per crop, {levels['images']:.3f} per image")


# `--by-patient RUN ...`: for every (grade, patient), how many of its
# held-out images got the wrong grade, summed over the runs, and how many
# were wrong in every run: whether errors follow the patients.
def by_patient(runs):
    import csv
    tables = [{r["image"]: r for r in csv.DictReader(open(f"{run}/cv_images.csv"))}
              for run in runs]
    cells = {}
    for image, row in tables[0].items():
        wrong = sum(t[image]["class"] != t[image]["predicted_class"] for t in tables)
        cell = cells.setdefault((row["class"], int(row["patient"])), [0, 0, 0])
        cell[0] += 1
        cell[1] += wrong
        cell[2] += wrong == len(runs)
    print(f"| grade | patient | images | wrong (of images x {len(runs)} runs) "
          "| wrong in every run |")
    print("|---|---|---|---|---|")
    for (grade, patient), (n, wrong, always) in sorted(cells.items()):
        print(f"| {grade} | {patient} | {n} | {wrong} / {n * len(runs)} | {always} |")
    total = sum(c[1] for c in cells.values())
    always = sum(c[2] for c in cells.values()) * len(runs)
    print(f"\n{total} wrong of {len(tables[0]) * len(runs)}; {always} of them on images "
          "wrong in every run")


if __name__ == "__main__":
    if sys.argv[1:2] == ["--ensemble"]:
        ensemble(sys.argv[2:])
    elif sys.argv[1:2] == ["--ece"]:
        pooled_ece(sys.argv[2:])
    elif sys.argv[1:2] == ["--by-patient"]:
        by_patient(sys.argv[2:])
    else:
        table(sys.argv[1:])
