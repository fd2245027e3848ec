#!/usr/bin/env python3
"""Summarises a bench/gpu_side_by_side.sh run: OUT/raw/<engine>.<round>.json ->
OUT/gpu-side-by-side-<gpu>.md (and .json): per point, the median over rounds
of each engine's epoch, the ratio of medians histocnn / PyTorch in the same
precision, the measured memory high-water marks, the issue's targets, and how
far histocnn is from the arithmetic floor.

    python3 bench/gpu_side_by_side_report.py OUT [--invocation "..."]
"""
import argparse
import glob
import json
import os
import re
import statistics

# Dense fp32 (FMA) peak, FLOP/s, of GPUs we know (vendor figures, SXM parts).
FP32_PEAK = {"H200": 67e12, "H100": 67e12, "A100": 19.5e12, "L40S": 91.6e12, "A10": 31.2e12}


def training_flops(size):
    """FLOPs of one example's training step through the paper's CNN:
    forward, the data gradient (not for conv1) and the weight gradient."""
    flops, c, s = 0.0, 3, size
    for i, filters in enumerate((32, 32, 64)):
        out = s - 2
        fwd = 2.0 * filters * out * out * c * 9
        flops += fwd * (2 if i == 0 else 3)
        c, s = filters, out // 2
    dense = 2.0 * (64 * s * s) * 64 + 2.0 * 64 * 2
    return flops + 3 * dense


def load(out):
    runs = {}
    for path in sorted(glob.glob(os.path.join(out, "raw", "*.json"))):
        m = re.match(r"(.+)\.(\d+)\.json$", os.path.basename(path))
        if not m or m.group(1) == "histocnn-profile":
            continue
        with open(path) as f:
            doc = json.load(f)
        doc["_round"] = int(m.group(2))
        runs.setdefault(m.group(1), []).append(doc)
    return runs


def examples_per_epoch(runs):
    """The one example count every run timed (histocnn's and PyTorch's JSONs
    both record it); exits naming two files that disagree: their ratios
    would compare different work."""
    seen = {}
    for name, rounds in runs.items():
        for doc in rounds:
            if "examples" in doc:
                seen.setdefault(doc["examples"], f"{name}.{doc['_round']}.json")
    if len(seen) > 1:
        (a, fa), (b, fb) = list(seen.items())[:2]
        raise SystemExit(f"gpu_side_by_side_report: {fa} timed {a} examples per epoch, "
                         f"{fb} {b}: not the same work")
    return next(iter(seen), 1851)


def median_or_none(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def medians(rounds):
    """{(size, batch): (median epoch seconds over rounds, median peak bytes, rounds,
    median device growth bytes or None)}."""
    by_point = {}
    for doc in rounds:
        for p in doc["points"]:
            if "error" not in p:
                by_point.setdefault((p["size"], p["batch"]), []).append(p)
    return {k: (statistics.median(q["epoch_seconds"] for q in v),
                statistics.median(q.get("peak_memory_bytes", 0) for q in v), len(v),
                median_or_none(q.get("device_growth_bytes") for q in v))
            for k, v in by_point.items()}


def gpu_busy(rounds, examples):
    """{(size, batch): (median epoch s, median GPU-busy s, median loader wait s or
    None)}: GPU-busy is the step's event-timed phases times the epoch's steps,
    so epoch - busy is what the GPU waited for the host (the loader, staging)."""
    by_point = {}
    for doc in rounds:
        for p in doc["points"]:
            if "error" in p or "per_step" not in p:
                continue
            ps, n = p["per_step"], p.get("examples_trained", examples)
            steps = -(-n // p["batch"])
            busy = (ps["forward_ms"] + ps["backward_ms"] + ps["update_ms"]) * steps / 1e3
            by_point.setdefault((p["size"], p["batch"]), []).append(
                (p["epoch_seconds"], busy, p.get("data_wait_seconds")))
    return {k: (statistics.median(x[0] for x in v), statistics.median(x[1] for x in v),
                median_or_none(x[2] for x in v)) for k, v in by_point.items()}


def busy_section(runs, examples):
    lines = ["", "## Where histocnn's epoch goes: the GPU busy, or waiting for the host", "",
             "GPU busy = the step's event-timed phases (input copy, forward, backward, update) "
             "x the epoch's steps; the rest of the epoch the GPU waited for the host. Loader "
             "wait: what the host waited for its batches (— where not recorded).", "",
             "| size | batch | precision | epoch s | GPU busy s | busy share | loader wait s |",
             "|---|---|---|---|---|---|---|"]
    rows = []
    for prec in ("fp32", "tf32", "bf16"):
        rounds = [d for d in runs.get(f"histocnn-{prec}", []) if d.get("device", "cuda") == "cuda"]
        for (size, batch), (epoch, busy, wait) in gpu_busy(rounds, examples).items():
            rows.append((size, batch, prec, epoch, busy, wait))
    if not rows:
        return []
    order = {"fp32": 0, "tf32": 1, "bf16": 2}
    for size, batch, prec, epoch, busy, wait in sorted(rows, key=lambda r: (r[0], r[1], order[r[2]])):
        lines.append(f"| {size} | {batch} | {prec} | {epoch:.3f} | {busy:.3f} | "
                     f"{busy / epoch:.2f} | {fmt(wait)} |")
    return lines


def contest_text(times):
    """A contest's record as 'name 0.123, name failed: why' (ms on scratch)."""
    parts = []
    for name, value in times.items():
        if isinstance(value, bool):
            continue
        if isinstance(value, (int, float)):
            parts.append(f"{name} {value:.3f}")
        else:
            parts.append(f"{name} {str(value)[:120]}")
    return ", ".join(parts).replace("|", "/")


# (direction, what it took, its route among ours and cuDNN's, its contest) in
# the CUDA step's metrics.json (backend.algorithms[k]).
ROUTE_KEYS = (("forward", "forward", "forward_route", "forward_ms"),
              ("weight gradient", "backward_filter", "backward_filter_route", "backward_filter_ms"),
              ("data gradient", "backward_data", "backward_data_route", "backward_data_ms"))


def routes_section(algos):
    """What each conv layer and direction took, and the contest that chose it:
    every contender's time on scratch when the step was built, a variant the
    GPU refused as 'failed', the later blocks' pairs of gradient routes."""
    lines = ["", "What each conv layer took, and the contest that chose it (ms on scratch buffers "
             "when the step was built; each pair of the later blocks' gradient routes with the "
             "pool backward it needs):", "", "| layer | direction | took | contest |", "|---|---|---|---|"]
    for x in algos:
        for direction, took_key, route_key, times_key in ROUTE_KEYS:
            if took_key not in x:
                continue
            took = str(x[took_key]) + (f" ({x[route_key]})" if route_key in x else "")
            lines.append(f"| {x.get('layer')} | {direction} | {took} | "
                         f"{contest_text(x.get(times_key, {}))} |")
        if "later_gradients_ms" in x:
            pair = f"{x.get('backward_filter_route')}+{x.get('backward_data_route')}"
            lines.append(f"| {x.get('layer')} | both gradients (weight+data) | {pair} | "
                         f"{contest_text(x['later_gradients_ms'])} |")
    return lines


def fmt(x, digits=3):
    return "—" if x is None else f"{x:.{digits}f}"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--invocation", default="")
    ap.add_argument("--gpu", default="GPU")
    ap.add_argument("--machine", default="")
    a = ap.parse_args()
    runs = load(a.out)
    if not runs:
        raise SystemExit(f"gpu_side_by_side_report: no ENGINE.ROUND.json in {a.out}/raw")
    examples = examples_per_epoch(runs)
    table = {name: medians(rounds) for name, rounds in runs.items()}
    points = sorted({k for t in table.values() for k in t})
    pairs = [("fp32", "histocnn-fp32", "pytorch-fp32", 0.7),
             ("tf32", "histocnn-tf32", "pytorch-tf32", 0.8),
             ("bf16", "histocnn-bf16", "pytorch-bf16", 0.8)]
    peak = next((v for k, v in FP32_PEAK.items() if k in a.gpu), None)
    lines = [f"# histocnn and PyTorch side by side on one {a.gpu}", "",
             f"Machine: {a.machine or a.gpu}. Command: `{a.invocation}`.", "",
             f"Epoch of {examples} crops"
             + (" (the paper's count)" if examples == 1851 else "")
             + ", seconds: each engine's median over the "
             "rounds (each round's value is itself the median of its timed epochs). Rounds "
             "interleave the engines. Ratio = histocnn / PyTorch in the same precision "
             "(< 1: histocnn faster); the issue's targets: <= 0.7 in fp32 (TF32 off on both "
             "sides), <= 0.8 in tf32 and bf16.", ""]
    devices = sorted({doc.get("device", "cuda") for name, rounds in runs.items()
                      if name.startswith("histocnn") for doc in rounds} - {"cuda"})
    if devices:
        lines += [f"**histocnn ran on {', '.join(devices)}, not on a GPU**: these are not GPU "
                  "numbers.", ""]
    header = "| size | batch |"
    rule = "|---|---|"
    for prec, ours, theirs, target in pairs:
        header += f" histocnn {prec} | PyTorch {prec} | ratio |"
        rule += "---|---|---|"
    extra = [n for n in sorted(table) if n.startswith("pytorch-compile")]
    for n in extra:  # torch.compile: fp32, against histocnn fp32
        header += f" {n} | histocnn fp32 / {n} |"
        rule += "---|---|"
    header += " peak MB histocnn / PyTorch (fp32) | device MB histocnn / PyTorch (fp32) |"
    rule += "---|---|"
    lines += [header, rule]
    summary = {"points": [], "gpu": a.gpu, "invocation": a.invocation}
    for size, batch in points:
        row = f"| {size} | {batch} |"
        record = {"size": size, "batch": batch}
        for prec, ours, theirs, target in pairs:
            o = table.get(ours, {}).get((size, batch))
            t = table.get(theirs, {}).get((size, batch))
            ratio = o[0] / t[0] if o and t else None
            flag = "" if ratio is None else (" ✓" if ratio <= target else " ✗")
            row += f" {fmt(o and o[0])} | {fmt(t and t[0])} | {fmt(ratio, 2)}{flag} |"
            record[prec] = {"histocnn": o and o[0], "pytorch": t and t[0], "ratio": ratio,
                            "target": target}
        for n in extra:
            c = table[n].get((size, batch))
            o = table.get("histocnn-fp32", {}).get((size, batch))
            ratio = o[0] / c[0] if o and c else None
            row += f" {fmt(c and c[0])} | {fmt(ratio, 2)} |"
            record[n] = {"seconds": c and c[0], "histocnn_fp32_ratio": ratio}
        o = table.get("histocnn-fp32", {}).get((size, batch))
        t = table.get("pytorch-fp32", {}).get((size, batch))
        row += f" {fmt(o and o[1] / 1e6, 0)} / {fmt(t and t[1] / 1e6, 0)} |"
        record["peak_bytes"] = {"histocnn": o and o[1], "pytorch": t and t[1]}
        og, tg = o and o[3], t and t[3]
        row += (f" {fmt(og if og is None else og / 1e6, 0)} /"
                f" {fmt(tg if tg is None else tg / 1e6, 0)} |")
        record["device_growth_bytes"] = {"histocnn": og, "pytorch": tg}
        lines.append(row)
        summary["points"].append(record)
    most = max(len(rounds) for rounds in runs.values())
    short = [f"{name} {len(rounds)} of {most}" for name, rounds in sorted(runs.items())
             if len(rounds) < most]
    lines += ["", "Peak: the allocator's high-water mark (histocnn's resource chain; "
              "PyTorch's max_memory_allocated). Device: cudaMemGetInfo's growth over the "
              "point, the libraries' workspaces and PyTorch's cache included."]
    if short:
        lines += ["", "Fewer rounds (a run failed or was cut off; its log in raw/ says why): "
                  + ", ".join(short) + "."]
    lines += ["", "histocnn bf16 did not run (its column stays empty): see raw/histocnn-bf16.*.log."
              if "histocnn-bf16" not in table else
              "bf16 on both sides: histocnn keeps the conv blocks' maps, their gradients and "
              "the weights the convolutions read in bf16 and the dense layers in fp32 (TF32); "
              "PyTorch's autocast runs the dense layers in bf16 too."]
    if peak:
        lines += ["", f"## Distance from the floor ({a.gpu}: {peak / 1e12:.1f} TFLOP/s fp32 FMA)",
                  "", "| size | batch | histocnn fp32 epoch | arithmetic floor | x floor |",
                  "|---|---|---|---|---|"]
        for size, batch in points:
            o = table.get("histocnn-fp32", {}).get((size, batch))
            floor = examples * training_flops(size) / peak
            if o:
                lines.append(f"| {size} | {batch} | {o[0]:.4f} | {floor:.4f} | {o[0] / floor:.1f} |")
    lines += busy_section(runs, examples)
    prof = glob.glob(os.path.join(a.out, "raw", "histocnn-profile.*.json"))
    if prof:
        with open(sorted(prof)[-1]) as f:
            doc = json.load(f)
        for p in doc["points"]:
            if "error" in p:
                continue
            ps = p["per_step"]
            lines += ["", f"## Where histocnn's step goes ({p['size']}x{p['size']}, batch {p['batch']}, "
                      "fp32, eager with an event per operation)", "",
                      f"forward {ps['forward_ms']:.3f} ms, backward {ps['backward_ms']:.3f} ms, "
                      f"update {ps['update_ms']:.3f} ms, allocator {ps['allocator_ms']:.3f} ms per step", "",
                      "| layer | ms per step |", "|---|---|"]
            for name, ms in sorted(ps["layer_ms"].items(), key=lambda kv: -kv[1]):
                lines.append(f"| {name} | {ms:.3f} |")
            algos = p.get("backend", {}).get("algorithms", [])
            if algos:
                lines += routes_section(algos)
    name = re.sub(r"[^A-Za-z0-9]+", "-", a.gpu).strip("-").lower() or "gpu"
    md = os.path.join(a.out, f"gpu-side-by-side-{name}.md")
    with open(md + ".tmp", "w") as f:
        f.write("\n".join(lines) + "\n")
    os.replace(md + ".tmp", md)
    with open(os.path.join(a.out, "summary.json"), "w") as f:
        json.dump(summary, f, indent=1)
    print(f"wrote {md}")


if __name__ == "__main__":
    main()
