#!/usr/bin/env python3
"""Calibration of a five-grade cross-validation run, judged honestly: within
each fold's held-out patients a calibration is fitted on half the patients
and applied to the other half (and the other way round), so no prediction is
scored with a calibration fitted on itself. It compares, on the same raw
predictions:

  raw      the network's softmax, untouched
  single   one temperature for every class (softmax(log p / T)), with the
           guards histocnn had before grouping: declined when it raises the
           confidence calibration error or the binary view's
  grouped  histocnn's grouped fit (train/temperature.cpp): T for the
           benign/malignant log-odds, T_within for the grades within each
           side, each with its own guard
  image    grouped, then a third temperature fitted on images: each image's
           P(malignant) (the mean of its crops' grouped probabilities) has
           its log-odds divided by T_image, fitted like T (same search, same
           guards) on the fitting half's images; the grades within each
           side keep their proportions. Crops are left as grouped.

  calibration.py [--fold-fitted] RUN [MALIGNANT_FLAGS]

--fold-fitted fits on the whole held-out fold and applies to it (what eval
reports after cross_validate.sh: optimistic) instead of cross-fitting.

Reads RUN/foldF/raw.crops.csv (eval --no-calibration -o raw.json) for F =
0..4. MALIGNANT_FLAGS: one 0/1 per class, default 00111 (the GlaS grades).
Prints the expected calibration error (10 bins) of the top class's
probability ("confidence") and of P(malignant) ("binary"), per crop and per
image (the mean of its crops' probabilities), pooled over the folds.
"""
import csv, math, os, sys

LO, HI = math.log(0.05), math.log(20)


def ece(pairs, bins=10):
    sums = [[0, 0.0, 0.0] for _ in range(bins)]
    for p, y in pairs:
        b = min(int(p * bins), bins - 1)
        sums[b][0] += 1; sums[b][1] += p; sums[b][2] += y
    return sum(abs(s[2] - s[1]) for s in sums if s[0]) / len(pairs)


def clog(p):
    return max(math.log(p), -200) if p > 0 else -200


def lse(xs):
    m = max(xs)
    return m + math.log(sum(math.exp(x - m) for x in xs))


def softmax(logs, t):
    s = lse([l / t for l in logs])
    return [math.exp(l / t - s) for l in logs]


def search(count, nll, ece_of):
    """histocnn's search_temperature: golden section on log T, then the guards."""
    if count == 0:
        return 1.0
    r = (math.sqrt(5) - 1) / 2
    lo, hi = LO, HI
    a, b = hi - r * (hi - lo), lo + r * (hi - lo)
    fa, fb = nll(math.exp(a)), nll(math.exp(b))
    for _ in range(80):
        if hi - lo <= 1e-7:
            break
        if fa <= fb:
            hi, b, fb = b, a, fa
            a = hi - r * (hi - lo); fa = nll(math.exp(a))
        else:
            lo, a, fa = a, b, fb
            b = lo + r * (hi - lo); fb = nll(math.exp(b))
    t = math.exp((lo + hi) / 2)
    if t <= 0.05 * 1.001:
        return 1.0
    return t if nll(t) < nll(1.0) and ece_of(t) <= ece_of(1.0) else 1.0


def side_logodds(logs, mal):
    m = lse([l for l, f in zip(logs, mal) if f]); b = lse([l for l, f in zip(logs, mal) if not f])
    return max(-200, min(200, m - b))


def grouped(logs, mal, tb, tw):
    z = side_logodds(logs, mal) / tb
    side = {True: -math.log1p(math.exp(-z)) if z > -30 else z,
            False: -math.log1p(math.exp(z)) if z < 30 else -z}
    norm = {f: lse([l / tw for l, g in zip(logs, mal) if g == f]) for f in (True, False)}
    return [math.exp(side[f] + l / tw - norm[f]) for l, f in zip(logs, mal)]


def fit_binary(z, yb):
    """fit_temperature: T on log-odds z against 0/1 labels, with its guards."""
    def nll(t):
        s = 0.0
        for zi, yi in zip(z, yb):
            v = zi / t if yi else -zi / t
            s += math.log1p(math.exp(-v)) if v > -30 else -v
        return s / len(z)
    return search(len(z), nll, lambda t: ece([(1 / (1 + math.exp(-zi / t)), yi)
                                              for zi, yi in zip(z, yb)]))


def image_tempered(p, mal, t):
    """An image's class probabilities with its benign/malignant log-odds / t."""
    pm = sum(x for x, f in zip(p, mal) if f)
    pm = min(max(pm, 1e-300), 1 - 1e-16)
    q = 1 / (1 + math.exp(-max(-200, min(200, math.log(pm / (1 - pm)))) / t))
    return [x * (q / pm if f else (1 - q) / (1 - pm)) for x, f in zip(p, mal)]


def conf_pairs(probs, ys):
    return [(max(p), 1 if p.index(max(p)) == y else 0) for p, y in zip(probs, ys)]


def bin_pairs(probs, ys, mal):
    return [(sum(x for x, f in zip(p, mal) if f), 1 if mal[y] else 0) for p, y in zip(probs, ys)]


def fit_single(rows, ys, mal):
    nll = lambda t: sum(lse([l / t for l in r]) - r[y] / t for r, y in zip(rows, ys)) / len(rows)
    conf = lambda t: ece(conf_pairs([softmax(r, t) for r in rows], ys))
    t = search(len(rows), nll, conf)
    binary = lambda t: ece(bin_pairs([softmax(r, t) for r in rows], ys, mal))
    return t if t == 1.0 or binary(t) <= binary(1.0) else 1.0


def fit_grouped(rows, ys, mal):
    tb = fit_binary([side_logodds(r, mal) for r in rows], [1 if mal[y] else 0 for y in ys])
    within, wy = [], []
    for r, y in zip(rows, ys):
        idx = [k for k in range(len(r)) if mal[k] == mal[y]]
        if len(idx) >= 2:
            within.append([r[k] for k in idx]); wy.append(idx.index(y))
    nll_w = lambda t: sum(lse([l / t for l in r]) - r[y] / t for r, y in zip(within, wy)) / len(within)
    conf = lambda t: ece(conf_pairs([grouped(r, mal, tb, t) for r in rows], ys))
    return tb, search(len(within), nll_w, conf)


def images(meta, probs):
    groups = {}
    for (image, y), p in zip(meta, probs):
        groups.setdefault(image, [y, []])[1].append(p)
    return ([[sum(c) / len(v[1]) for c in zip(*v[1])] for v in groups.values()],
            [v[0] for v in groups.values()])


def image_temperature(meta, probs, mal):
    """T_image fitted on the images of (meta, probs): their mean P(malignant)."""
    ip, iy = images(meta, probs)
    z = [side_logodds([clog(x) for x in p], mal) for p in ip]
    return fit_binary(z, [1 if mal[y] else 0 for y in iy])


def calibrate_fold(rows, logs, ys, mal, fold_fitted, fits, fold):
    """Each method's crop probabilities and each crop's T_image (None: not scored)."""
    patients = sorted({r["patient"] for r in rows})
    halves = ([set(patients)] * 2 if fold_fitted
              else [set(patients[0::2]), set(patients[1::2])])
    out = {m: [None] * len(rows) for m in ("raw", "single", "grouped")}
    t_image = [None] * len(rows)
    for h in ((0,) if fold_fitted else (0, 1)):
        fit_on = [i for i, r in enumerate(rows) if r["patient"] in halves[h]]
        apply_to = [i for i, r in enumerate(rows) if r["patient"] in halves[1 - h]]
        if not fit_on or not apply_to:
            continue
        rs, yy = [logs[i] for i in fit_on], [ys[i] for i in fit_on]
        t = fit_single(rs, yy, mal)
        tb, tw = fit_grouped(rs, yy, mal)
        ti = image_temperature([(rows[i]["image"], ys[i]) for i in fit_on],
                               [grouped(logs[i], mal, tb, tw) for i in fit_on], mal)
        fits.append((fold, h, t, tb, tw, ti))
        for i in apply_to:
            out["raw"][i] = [math.exp(l) for l in logs[i]]
            out["single"][i] = softmax(logs[i], t)
            out["grouped"][i] = grouped(logs[i], mal, tb, tw)
            t_image[i] = ti
    out["image"] = out["grouped"]
    return out, t_image


def main():
    args = sys.argv[1:]
    fold_fitted = args[:1] == ["--fold-fitted"]
    args = args[1:] if fold_fitted else args
    run = args[0]
    mal = [c == "1" for c in (args[1] if len(args) > 1 else "00111")]
    methods = ("raw", "single", "grouped", "image")
    pooled = {m: {"crop": ([], []), "image": ([], [])} for m in methods}
    fits = []
    fold = 0
    while os.path.exists(f"{run}/fold{fold}/raw.crops.csv"):
        rows = list(csv.DictReader(open(f"{run}/fold{fold}/raw.crops.csv")))
        names = [k[2:] for k in rows[0] if k.startswith("p_") and k != "p_malignant"]
        assert len(names) == len(mal), f"{len(names)} classes but {len(mal)} flags"
        logs = [[clog(float(r["p_" + n])) for n in names] for r in rows]
        ys = [names.index(r["class"]) for r in rows]
        out, t_image = calibrate_fold(rows, logs, ys, mal, fold_fitted, fits, fold)
        keep = [i for i in range(len(rows)) if out["raw"][i] is not None]
        meta = [(rows[i]["image"], ys[i]) for i in keep]
        image_t = {rows[i]["image"]: t_image[i] for i in keep}
        for m in methods:
            probs = [out[m][i] for i in keep]
            pooled[m]["crop"][0].extend(probs); pooled[m]["crop"][1].extend(ys[i] for i in keep)
            ip, iy = images(meta, probs)
            if m == "image":  # images() keeps first-seen order: the same as image_t's
                ip = [image_tempered(p, mal, t) for p, t in zip(ip, image_t.values())]
            pooled[m]["image"][0].extend(ip); pooled[m]["image"][1].extend(iy)
        fold += 1
    print("fits (fold, half fitted on, single T, grouped T, T_within, T_image):")
    for f in fits:
        print("  fold %d half %d: single %.2f | grouped %.2f, within %.2f | image %.2f" % f)
    print()
    print("| calibration | confidence ECE per crop | per image | binary ECE per crop | per image | grade accuracy per image |")
    print("|---|---|---|---|---|---|")
    for m in methods:
        cp, cy = pooled[m]["crop"]; ip, iy = pooled[m]["image"]
        acc = sum(p.index(max(p)) == y for p, y in zip(ip, iy)) / len(iy)
        print(f"| {m} | {ece(conf_pairs(cp, cy)):.3f} | {ece(conf_pairs(ip, iy)):.3f} | "
              f"{ece(bin_pairs(cp, cy, mal)):.3f} | {ece(bin_pairs(ip, iy, mal)):.3f} | {acc:.3f} |")


if __name__ == "__main__":
    main()
