#!/usr/bin/python3
"""Writes Kather-sized class folders of synthetic tiles, to time histocnn at
that scale without the download (docs/results/class-folders-scale.md).

    bench/kather_like.py ROOT PER_CLASS VAL_PER_CLASS

ROOT/NCT-CRC-HE-100K/<class>/<class>-XXXXXXXX.tif (PER_CLASS tiles per class)
and ROOT/CRC-VAL-HE-7K/<class>/... (VAL_PER_CLASS): the nine tissue classes of
Kather et al. 2019, 224x224 uncompressed RGB TIFF as they ship. Each class is a
crop of its own noise texture, so the task is easy: this measures speed and
memory, not accuracy. Needs numpy and PIL (/usr/bin/python3 on Debian).
"""
import os
import string
import sys

import numpy as np
from PIL import Image

root = sys.argv[1]
per_class, val_per_class = int(sys.argv[2]), int(sys.argv[3])
classes = "ADI BACK DEB LYM MUC MUS NORM STR TUM".split()
rng = np.random.default_rng(7)
bases = {}
for ci, c in enumerate(classes):
    colour = np.array([180 + 8 * (ci % 4), 90 + 12 * ci, 160 - 6 * ci], np.float32)
    noise = rng.normal(0, 18 + 3 * ci, (512, 512, 3)).astype(np.float32)
    bases[c] = np.clip(colour + noise, 0, 255).astype(np.uint8)


def name():
    return "".join(rng.choice(list(string.ascii_uppercase), 8))


for split, n in (("NCT-CRC-HE-100K", per_class), ("CRC-VAL-HE-7K", val_per_class)):
    for c in classes:
        folder = os.path.join(root, split, c)
        os.makedirs(folder, exist_ok=True)
        for i in range(n):
            x, y = rng.integers(0, 512 - 224, 2)
            tile = bases[c][y:y + 224, x:x + 224]
            Image.fromarray(tile).save(os.path.join(folder, f"{c}-{name()}.tif"))
