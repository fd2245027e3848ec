#!/usr/bin/env python3
"""Macenko's and Vahadane's stain estimates on real images, side by side.

    python3 bench/stain_estimates.py GLAS_DIR OUT [--histocnn BIN] [--rounds 3]

For every image in GLAS_DIR (*.bmp|png|jpg|tif, masks left out) it asks
`histocnn stain --method M` for the H and E vectors of the whole image and of
its left and right halves (written as PNG under OUT/halves/), and prints, per
method:
  * halves: the angle between the two halves' estimates of each stain, the
    same tissue and staining, so ideally 0 (how reproducible the estimate is);
  * spread: the angle of each image's estimate from the median over all
    images (one lab and scanner, so a small spread is expected; a large one
    is the estimate wandering, or the images differing);
  * seconds: wall time of one `histocnn stain` over every whole image, in
    interleaved rounds (macenko, vahadane, macenko, ...), median; decoding is
    the same in both, so the difference over the image count is the
    estimate's own cost.
The halves need Pillow (python3-pil); everything else is the standard library.
Writes OUT/stain-estimates.json with every number.
"""
import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import time

METHODS = ["macenko", "vahadane"]


def images_in(folder):
    names = sorted(n for n in os.listdir(folder)
                   if n.lower().endswith((".bmp", ".png", ".jpg", ".jpeg", ".tif", ".tiff"))
                   and "_anno" not in n)
    return [os.path.join(folder, n) for n in names]


def estimates(binary, method, paths):
    """{path: (h, e)} from one `histocnn stain` run, and its wall seconds."""
    start = time.monotonic()
    out = subprocess.run([binary, "stain", "--method", method] + paths, check=True,
                         capture_output=True, text=True).stdout
    seconds = time.monotonic() - start
    rows = {}
    for line in out.splitlines()[1:]:
        fields = line.rsplit(",", 8)
        v = [float(x) for x in fields[1:7]]
        rows[fields[0]] = (v[0:3], v[3:6])
    return rows, seconds


def degrees(a, b):
    dot = sum(x * y for x, y in zip(a, b))
    na, nb = math.sqrt(sum(x * x for x in a)), math.sqrt(sum(x * x for x in b))
    return math.degrees(math.acos(max(-1.0, min(1.0, dot / (na * nb)))))


def halves_of(paths, folder):
    from PIL import Image  # only this step needs Pillow
    os.makedirs(folder, exist_ok=True)
    left, right = [], []
    for p in paths:
        im = Image.open(p).convert("RGB")
        w, h = im.size
        stem = os.path.splitext(os.path.basename(p))[0]
        for side, box, names in (("L", (0, 0, w // 2, h), left), ("R", (w // 2, 0, w, h), right)):
            name = os.path.join(folder, f"{stem}.{side}.png")
            im.crop(box).save(name)
            names.append(name)
    return left, right


def summary(values):
    values = sorted(values)
    p90 = values[min(len(values) - 1, int(math.ceil(0.9 * len(values))) - 1)]
    return {"median": statistics.median(values), "p90": p90, "max": values[-1]}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("data")
    ap.add_argument("out")
    ap.add_argument("--histocnn", default=os.path.join(os.path.dirname(__file__), "..", "build",
                                                       "histocnn"))
    ap.add_argument("--rounds", type=int, default=3)
    a = ap.parse_args()
    paths = images_in(a.data)
    if not paths:
        sys.exit(f"stain_estimates: {a.data}: no images")
    left, right = halves_of(paths, os.path.join(a.out, "halves"))
    result = {"images": len(paths), "rounds": a.rounds, "methods": {}}
    seconds = {m: [] for m in METHODS}
    whole = {}
    for _ in range(a.rounds):
        for m in METHODS:
            whole[m], s = estimates(a.histocnn, m, paths)
            seconds[m].append(s)
    for m in METHODS:
        halves, _ = estimates(a.histocnn, m, left + right)
        r = {"seconds": seconds[m], "seconds_median": statistics.median(seconds[m])}
        for k, stain in enumerate(["h", "e"]):
            pairs = [degrees(halves[l][k], halves[rr][k]) for l, rr in zip(left, right)]
            median_vec = [statistics.median(whole[m][p][k][c] for p in paths) for c in range(3)]
            r[stain + "_halves_degrees"] = summary(pairs)
            r[stain + "_spread_degrees"] = summary([degrees(whole[m][p][k], median_vec)
                                                    for p in paths])
            r[stain + "_median_vector"] = median_vec
        result["methods"][m] = r
    extra = (result["methods"]["vahadane"]["seconds_median"] -
             result["methods"]["macenko"]["seconds_median"]) / len(paths)
    result["vahadane_extra_ms_per_image"] = 1000 * extra
    with open(os.path.join(a.out, "stain-estimates.json"), "w") as f:
        json.dump(result, f, indent=1)
    print(f"{len(paths)} images, {a.rounds} interleaved rounds\n")
    print("| method | H halves, median / p90 / max deg | E halves | H spread, median / p90 "
          "| E spread | seconds (median) |")
    print("|---|---|---|---|---|---|")
    for m in METHODS:
        r = result["methods"][m]
        f = lambda s: f"{s['median']:.2f} / {s['p90']:.2f} / {s['max']:.2f}"
        g = lambda s: f"{s['median']:.2f} / {s['p90']:.2f}"
        print(f"| {m} | {f(r['h_halves_degrees'])} | {f(r['e_halves_degrees'])} | "
              f"{g(r['h_spread_degrees'])} | {g(r['e_spread_degrees'])} | "
              f"{r['seconds_median']:.2f} |")
    print(f"\nVahadane's extra cost: {1000 * extra:.0f} ms per image")


if __name__ == "__main__":
    main()
