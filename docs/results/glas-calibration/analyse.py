#!/usr/bin/env python3
"""Calibration of a cross-validation run (scripts/cross_validate.sh), judged
honestly: within each fold's held-out patients, a temperature is fitted on
half the patients and applied to the other half (and the other way round),
so no prediction is scored with a temperature fitted on itself.

  analyse.py CV_FOLDER K

Reads CV_FOLDER/foldF/raw.crops.csv (eval --no-calibration -o raw.json) and
CV_FOLDER/foldF/eval.json (with the temperature the training fitted on the
whole held-out fold: optimistic). Prints a Markdown table.
"""
import csv, math, sys, json

def ece(pairs, bins=10):
    total = len(pairs)
    if total == 0:
        return float("nan")
    sums = [[0, 0.0, 0.0] for _ in range(bins)]
    for p, y in pairs:
        b = min(int(p * bins), bins - 1)
        sums[b][0] += 1; sums[b][1] += p; sums[b][2] += y
    return sum(abs(s[2] - s[1]) for s in sums if s[0]) / total

def logit(p):
    p = min(max(p, 1e-7), 1 - 1e-7)
    return math.log(p / (1 - p))

def nll(z, y, t):
    s = 0.0
    for zi, yi in zip(z, y):
        v = zi / t if yi else -zi / t
        s += math.log1p(math.exp(-v)) if v > -30 else -v
    return s / len(z)

def fit(z, y):
    lo, hi = math.log(0.05), math.log(20)
    r = (math.sqrt(5) - 1) / 2
    for _ in range(80):
        a, b = hi - r * (hi - lo), lo + r * (hi - lo)
        if nll(z, y, math.exp(a)) <= nll(z, y, math.exp(b)): hi = b
        else: lo = a
    t = math.exp((lo + hi) / 2)
    if t <= 0.05 * 1.001: return 1.0  # separated: left alone, as histocnn does
    return t if nll(z, y, t) < nll(z, y, 1.0) else 1.0

def temper(p, t):
    return 1 / (1 + math.exp(-logit(p) / t))

def images_of(rows, key):
    groups = {}
    for r in rows:
        groups.setdefault(r["image"], []).append((key(r), r["label"]))
    return [(sum(p for p, _ in v) / len(v), v[0][1]) for v in groups.values()]

folder, k = sys.argv[1], int(sys.argv[2])
print("| fold | T (whole fold) | crop ECE raw | crop ECE, T from the other half | image ECE raw | image ECE, T from the other half | accuracy (image) |")
print("|---|---|---|---|---|---|---|")
all_raw, all_cross, all_img_raw, all_img_cross = [], [], [], []
for f in range(k):
    rows = [dict(r, p=float(r["p_malignant"]), label=int(r["label"] == "malignant"))
            for r in csv.DictReader(open(f"{folder}/fold{f}/raw.crops.csv"))]
    patients = sorted({r["patient"] for r in rows})
    halves = [set(patients[0::2]), set(patients[1::2])]
    cross = {}
    for h in (0, 1):
        train = [r for r in rows if r["patient"] in halves[h]]
        t = fit([logit(r["p"]) for r in train], [r["label"] for r in train])
        for r in rows:
            if r["patient"] in halves[1 - h]:
                cross[id(r)] = temper(r["p"], t)
    raw = [(r["p"], r["label"]) for r in rows]
    crossed = [(cross[id(r)], r["label"]) for r in rows]
    img_raw = images_of(rows, lambda r: r["p"])
    img_cross = images_of(rows, lambda r: cross[id(r)])
    all_raw += raw; all_cross += crossed; all_img_raw += img_raw; all_img_cross += img_cross
    e = json.load(open(f"{folder}/fold{f}/eval.json"))
    t_whole = e.get("calibration", {}).get("temperatures", [1.0])[0]
    acc = e["per_image"]["accuracy"]
    print(f"| {f} | {t_whole:.2f} | {ece(raw):.3f} | {ece(crossed):.3f} | {ece(img_raw):.3f} | {ece(img_cross):.3f} | {acc:.3f} |")
print(f"| pooled | | {ece(all_raw):.3f} | {ece(all_cross):.3f} | {ece(all_img_raw):.3f} | {ece(all_img_cross):.3f} | |")
