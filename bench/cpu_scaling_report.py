#!/usr/bin/env python3
"""Issue 20's tables from scripts/gpu-check.sh's cpu stage (standard library only).

    python3 bench/cpu_scaling_report.py OUT/cpu-scaling [--gpu SBS/raw] > cpu-scaling.md

Reads tT.json (one `histocnn bench --warmup 0 --epochs 2` process per thread
count T) and VARIANT.rR.json (the levers on every core, round R; gpu-check's levers
stage writes these alone, in a folder without tT.json). Each point holds two
epochs of one process: the first cold (a fresh process touches its memory for
the first time), the second warm. Prints the speed-up over one thread from
each, the cold epoch's extra seconds, the per-layer time of the warm epoch at
the most and fewest threads, and each lever's warm epoch (median over its
rounds) against the defaults'. Where tT.json holds "ceilings" (`bench
--ceilings`), also what those cores can do, sgemm GFLOP/s and memory
bandwidth, with the warm epoch's rate against the sgemm ceiling.

--gpu SBS/raw (bench/gpu_side_by_side.sh's raw folder, run on the same
machine): the paper's Fig. 6, t_cpu / t_gpu by CPU cores at 200 px, with
t_cpu the warm epoch here and t_gpu the median over the rounds of histocnn's
fp32 epoch there (plan + CUDA graphs), beside the paper's speed-ups, at the
thread sweep's input size (200 px in gpu-check).
"""
import json
import pathlib
import re
import statistics
import sys


def read(path):
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise SystemExit(f"{path}: not a `histocnn bench` record ({type(e).__name__}: {e})")


def points(path, data):
    """{batch: (cold s, warm s, per-step layer ms, GFLOP per epoch or None)} of one bench
    JSON (`data`, read from `path`)."""
    try:
        pts = [(p["batch"], p["epoch_seconds_all"], p.get("per_step", {}).get("layer_ms", {}),
                p.get("epoch_gflop")) for p in data["points"]]
    except (KeyError, TypeError) as e:
        raise SystemExit(f"{path}: not a `histocnn bench` record ({type(e).__name__}: {e})")
    out = {}
    for batch, epochs, layers, gflop in pts:
        if len(epochs) < 2:
            raise SystemExit(f"{path}: {len(epochs)} epoch(s); the report needs --epochs 2")
        out[batch] = (epochs[0], epochs[1], layers, gflop)
    return out


def ceilings_table(runs, ceilings):
    """Per thread count: what the cores can do (bench --ceilings), and the warm
    epoch's rate against it (convolutions counted as direct: Winograd can pass 100 %)."""
    threads = sorted(t for t in runs if t in ceilings)
    if not threads:
        return []
    batches = sorted({b for t in threads for b in runs[t]}, reverse=True)
    lines = ["| threads | sgemm GFLOP/s | memory triad GB/s | " + " | ".join(
        f"b{b} warm GFLOP/s | b{b} of sgemm" for b in batches) + " |",
        "|---|---|---|" + "---|" * (2 * len(batches))]
    for t in threads:
        sgemm, triad = ceilings[t]
        cells = [f"{sgemm:.0f}", f"{triad:.1f}"]
        for b in batches:
            point = runs[t].get(b)
            if point is None or not point[3]:
                cells += ["", ""]
                continue
            rate = point[3] / point[1]
            cells += [f"{rate:.0f}", f"{100 * rate / sgemm:.0f} %"]
        lines.append(f"| {t} | " + " | ".join(cells) + " |")
    return lines


def threads_word(t):
    return f"{t} thread" + ("" if t == 1 else "s")


def scaling_table(runs):
    threads = sorted(runs)
    batches = sorted({b for r in runs.values() for b in r}, reverse=True)
    lines = ["| threads | " + " | ".join(
        f"b{b} warm s | b{b} speed-up (warm) | b{b} cold s | b{b} speed-up (cold)" for b in batches
    ) + " |", "|---|" + "---|" * (4 * len(batches))]
    for t in threads:
        cells = []
        for b in batches:
            if b not in runs[t] or 1 not in runs or b not in runs[1]:
                cells += ["", "", "", ""]
                continue
            cold, warm = runs[t][b][:2]
            cold1, warm1 = runs[1][b][:2]
            cells += [f"{warm:.3f}", f"{warm1 / warm:.2f}x", f"{cold:.3f}", f"{cold1 / cold:.2f}x"]
        lines.append(f"| {t} | " + " | ".join(cells) + " |")
    return lines


def layer_table(runs, batch):
    ends = [t for t in (min(runs), max(runs)) if batch in runs[t]]
    if len(ends) < 2:
        return []
    layers = sorted(runs[ends[1]][batch][2], key=lambda k: -runs[ends[0]][batch][2].get(k, 0))
    if not layers:  # measured without --profile-layers
        return []
    lines = [f"| layer, batch {batch} | {threads_word(ends[0])}, ms/step"
             f" | {threads_word(ends[1])}, ms/step | speed-up |", "|---|---|---|---|"]
    for name in layers:
        a, b = runs[ends[0]][batch][2].get(name, 0.0), runs[ends[1]][batch][2][name]
        lines.append(f"| {name} | {a:.2f} | {b:.2f} | " + (f"{a / b:.1f}x |" if b > 0 else "|"))
    return lines


PAPER_SPEEDUP = {16: 4.49, 8: 5.00, 4: 7.58, 2: 11.97, 1: 16.19}  # GTX-980 over a Core i7


def gpu_epochs(folder, size):
    """{batch: median epoch s} of histocnn fp32 on the GPU at `size`, over the
    side by side's rounds (histocnn-fp32.R.json)."""
    files = sorted(folder.glob("histocnn-fp32.*.json"))
    if not files:
        raise SystemExit(f"{folder}: no histocnn-fp32.R.json (bench/gpu_side_by_side.sh's raw folder)")
    epochs = {}
    for path in files:
        try:
            pts = [(p["size"], p["batch"], p["epoch_seconds"]) for p in read(path)["points"]]
        except (KeyError, TypeError) as e:
            raise SystemExit(f"{path}: not a `histocnn bench` record ({type(e).__name__}: {e})")
        for s, b, seconds in pts:
            if s == size:
                epochs.setdefault(b, []).append(seconds)
    return {b: statistics.median(v) for b, v in epochs.items()}


def fig6_table(runs, gpu):
    """The paper's Fig. 6: t_cpu (warm, here) / t_gpu by cores, per batch both have."""
    batches = sorted({b for r in runs.values() for b in r} & set(gpu), reverse=True)
    if not batches:
        return []
    lines = ["| CPU cores | paper (GTX-980 / Core i7) | " + " | ".join(
        f"b{b}: t_cpu s | b{b}: t_cpu / t_gpu" for b in batches) + " |",
        "|---|---|" + "---|" * (2 * len(batches))]
    for cores in sorted(set(PAPER_SPEEDUP) | set(runs), reverse=True):
        cells = [f"{PAPER_SPEEDUP[cores]:.2f}" if cores in PAPER_SPEEDUP else ""]
        for b in batches:
            point = runs.get(cores, {}).get(b)
            cells += [f"{point[1]:.3f}", f"{point[1] / gpu[b]:.2f}"] if point else ["", ""]
        lines.append(f"| {cores} | " + " | ".join(cells) + " |")
    lines += ["", "t_gpu, s (median of the rounds): " + ", ".join(
        f"b{b} {gpu[b]:.3f}" for b in batches)]
    return lines


def main():
    args = sys.argv[1:]
    gpu_folder = None
    if "--gpu" in args:
        at = args.index("--gpu")
        if at + 1 >= len(args):
            raise SystemExit("--gpu: needs the side by side's raw folder")
        gpu_folder = pathlib.Path(args[at + 1])
        del args[at:at + 2]
    folder = pathlib.Path(args[0] if args else ".")
    runs, levers = {}, {}  # levers: {variant: {batch: [warm s of each round]}}
    ceilings = {}  # {threads: (sgemm GFLOP/s, triad GB/s)}
    sizes = set()  # the input sizes of the thread sweep (one: 200 in gpu-check)
    for path in sorted(folder.glob("*.json")):
        m = re.fullmatch(r"t(\d+)", path.stem)
        if m:
            data = read(path)
            runs[int(m.group(1))] = points(path, data)
            sizes.update(p.get("size") for p in data["points"])
            c = data.get("ceilings")
            if isinstance(c, dict) and "sgemm_gflops" in c and "triad_gbs" in c:
                ceilings[int(m.group(1))] = (c["sgemm_gflops"], c["triad_gbs"])
            continue
        variant = re.sub(r"\.r\d+$", "", path.stem)
        for b, (_, warm, *_) in points(path, read(path)).items():
            levers.setdefault(variant, {}).setdefault(b, []).append(warm)
    if not runs and not levers:
        raise SystemExit(f"{folder}: no tT.json or VARIANT.rR.json files")
    out = ["# CPU scaling (issue 20), from " + str(folder), ""]
    if runs:
        out += sweep_sections(folder, runs, ceilings, sizes, gpu_folder)
    elif gpu_folder is not None:
        raise SystemExit(f"{folder}: --gpu needs the thread sweep's tT.json files")
    out += lever_table(levers)
    print("\n".join(out))


def sweep_sections(folder, runs, ceilings, sizes, gpu_folder):
    """The thread sweep's tables (tT.json in `folder`), with Fig. 6 when `gpu_folder` is given."""
    out = ["Speed-up = the 1-thread epoch / the T-thread epoch, per kind of epoch.", ""]
    out += scaling_table(runs)
    out += ["", "Cold minus warm, seconds (what a fresh process pays once):", ""]
    for t in sorted(runs):
        out.append(f"* {threads_word(t)}: " + ", ".join(
            f"b{b} {c - w:+.3f}" for b, (c, w, *_) in sorted(runs[t].items(), reverse=True)))
    table = ceilings_table(runs, ceilings)
    if table:
        out += ["", "What the cores can do (`bench --ceilings`), and the warm epoch against it:",
                "", *table]
    for batch in (50, 10):
        table = layer_table(runs, batch)
        if table:
            out += ["", *table]
    if gpu_folder is not None:
        if len(sizes) != 1:
            raise SystemExit(f"{folder}: --gpu needs one input size in the tT.json, not {sizes}")
        size = sizes.pop()
        table = fig6_table(runs, gpu_epochs(gpu_folder, size))
        out += ["", f"The paper's Fig. 6 at {size} px: t_cpu (warm epoch, these cores) / t_gpu "
                "(histocnn fp32 on the GPU, plan + CUDA graphs, `--gpu " + str(gpu_folder) + "`):",
                "", *(table or [f"(no batch measured both here and in {gpu_folder} at {size} px)"])]
    return out


def lever_table(levers):
    """Each lever's warm epoch (median over its rounds) against the defaults' ("now")."""
    if "now" not in levers:
        return []
    out = ["", "Levers on every core: warm epochs, median over the rounds (ratio > 1: the "
           "defaults are faster):", "",
           "| variant | batch | rounds | warm s | / defaults |", "|---|---|---|---|---|"]
    for name, pts in sorted(levers.items()):
        for b, warms in sorted(pts.items(), reverse=True):
            warm = statistics.median(warms)
            base = statistics.median(levers["now"].get(b, [0]))
            out.append(f"| {name} | {b} | {len(warms)} | {warm:.3f} | "
                       + (f"{warm / base:.2f}x |" if base else "|"))
    return out


if __name__ == "__main__":
    main()
