#!/usr/bin/env python3
"""Fitting the temperatures on single views or on TTA predictions (what eval
serves when the recipe says --eval-tta), judged on eval's TTA predictions.

    tta_calibration.py RUN [RUN ...]

Needs, per fold F of each RUN (folders of scripts/cross_validate.sh):
  RUN/foldF/raw.crops.csv          eval --no-calibration (16 crops, TTA: what eval scores)
  RUN/foldF/val-no-tta.crops.csv   eval --no-calibration --no-tta --crops-per-image 8
  RUN/foldF/val-tta.crops.csv      eval --no-calibration --tta --crops-per-image 8
(the last two are the validation crops training fits on: same seed, same
count). Prints, per run:
  fold-fitted   the temperatures fitted on the whole validation fold, as
                training does (in cross-validation that fold is the held-out
                one, so this is what eval reports: optimistic); the
                single-view fit must reproduce the T in metrics.json
  cross-fitted  fitted on half the fold's patients, scored on the other half
                (both ways): no prediction scored by a fit that saw it
and the expected calibration error (10 bins) of the top grade ("conf") and
of P(malignant) ("binary"), per crop and per image, pooled over the folds.
"""
import csv, json, math, os, sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import calibration as C  # noqa: E402

MALIGNANT = [False, False, True, True, True]


def load(path):
    rows = list(csv.DictReader(open(path)))
    names = [k[2:] for k in rows[0] if k.startswith("p_") and k != "p_malignant"]
    return (rows, [[C.clog(float(r["p_" + n])) for n in names] for r in rows],
            [names.index(r["class"]) for r in rows])


def report(label, scored):
    meta = [(image, y) for image, y, _ in scored]
    probs = [p for _, _, p in scored]
    ys = [y for _, y, _ in scored]
    ip, iy = C.images(meta, probs)
    print(f"  {label:26s} conf ECE crop {C.ece(C.conf_pairs(probs, ys)):.3f} "
          f"image {C.ece(C.conf_pairs(ip, iy)):.3f} | binary ECE crop "
          f"{C.ece(C.bin_pairs(probs, ys, MALIGNANT)):.3f} image "
          f"{C.ece(C.bin_pairs(ip, iy, MALIGNANT)):.3f}")


def fold_fitted(run):
    scored = {"raw": [], "fitted on single views": [], "fitted on TTA": []}
    for f in range(json.load(open(f"{run}/cv_summary.json"))["folds"]):
        last = json.load(open(f"{run}/fold{f}/metrics.json"))["history"][-1]
        _, single, ys = load(f"{run}/fold{f}/val-no-tta.crops.csv")
        _, tta, _ = load(f"{run}/fold{f}/val-tta.crops.csv")
        fits = {"raw": (1.0, 1.0), "fitted on single views": C.fit_grouped(single, ys, MALIGNANT),
                "fitted on TTA": C.fit_grouped(tta, ys, MALIGNANT)}
        stored = fits["fitted on single views"]
        assert abs(stored[0] - last["temperature"]) < 1e-3 * stored[0], (f, stored, last)
        print(f"  fold {f}: single views T {stored[0]:.2f}, within {stored[1]:.2f} "
              f"(metrics.json: {last['temperature']:.2f}); TTA T "
              f"{fits['fitted on TTA'][0]:.2f}, within {fits['fitted on TTA'][1]:.2f}")
        rows, logs, eys = load(f"{run}/fold{f}/raw.crops.csv")
        for name, t in fits.items():
            scored[name] += [(rows[i]["image"], eys[i], C.grouped(logs[i], MALIGNANT, *t))
                             for i in range(len(rows))]
    for name, s in scored.items():
        report(name, s)


def cross_fitted(run):
    scored = {"raw": [], "fitted on single views": [], "fitted on TTA": []}
    for f in range(json.load(open(f"{run}/cv_summary.json"))["folds"]):
        rows, logs, ys = load(f"{run}/fold{f}/raw.crops.csv")
        vrows, single, vys = load(f"{run}/fold{f}/val-no-tta.crops.csv")
        _, tta, _ = load(f"{run}/fold{f}/val-tta.crops.csv")
        patients = sorted({r["patient"] for r in rows})
        halves = [set(patients[0::2]), set(patients[1::2])]
        for h in (0, 1):
            fit = [i for i, r in enumerate(vrows) if r["patient"] in halves[h]]
            apply = [i for i, r in enumerate(rows) if r["patient"] in halves[1 - h]]
            if not fit or not apply:
                continue
            y = [vys[i] for i in fit]
            fits = {"raw": (1.0, 1.0),
                    "fitted on single views": C.fit_grouped([single[i] for i in fit], y, MALIGNANT),
                    "fitted on TTA": C.fit_grouped([tta[i] for i in fit], y, MALIGNANT)}
            for name, t in fits.items():
                scored[name] += [(rows[i]["image"], ys[i], C.grouped(logs[i], MALIGNANT, *t))
                                 for i in apply]
    for name, s in scored.items():
        report(name, s)


if __name__ == "__main__":
    for run in sys.argv[1:]:
        print(f"{run}, fold-fitted:")
        fold_fitted(run)
        print(f"{run}, cross-fitted:")
        cross_fitted(run)
