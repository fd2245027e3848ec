#!/usr/bin/env python3
"""Summarises an A/B stage of gpu-check.sh: FOLDER/{A,B}.r<N>.json, two
variants of `histocnn bench --device cuda` run in interleaved rounds ->
FOLDER/B-vs-A.md: per point, each variant's median epoch over the rounds,
the ratio B / A, and what each conv layer and direction took in B's runs
(a graph API engine, our kernel, or the legacy algorithm).

    python3 bench/gpu_ab_report.py OUT/graph              # legacy vs graph (--cudnn-graph)
    python3 bench/gpu_ab_report.py OUT/layout first last  # --channels-last
    python3 bench/gpu_ab_report.py OUT/input staged pinned  # A: --staged-batches
    python3 bench/gpu_ab_report.py OUT/input-bytes-fp32 floats bytes  # A: --float-batches
    python3 bench/gpu_ab_report.py OUT/algos heuristics timed  # --cudnn-benchmark
    python3 bench/gpu_ab_report.py OUT/conv1 plain routes  # A: --plain-conv1
    python3 bench/gpu_ab_report.py OUT/wgrad-fp32 cudnn routes  # A: --cudnn-later-wgrad
    python3 bench/gpu_ab_report.py OUT/dgrad-fp32 cudnndata routes  # A: --cudnn-later-dgrad
    python3 bench/gpu_ab_report.py OUT/kernels-fp32 cudnnconvs routes  # A: all three

Below the table, each point's peak device memory (median over the rounds)
for both variants, where the records have it.
"""
import glob
import json
import os
import re
import statistics
import sys

TITLES = {
    ("legacy", "graph"): ("cuDNN's graph API against the legacy calls", "--cudnn-graph"),
    ("first", "last"): ("Channels last (NHWC) against channels first (NCHW)", "--channels-last"),
    ("staged", "pinned"): ("Batches in the step's page-locked memory against staged ones",
                           "--staged-batches for staged"),
    ("floats", "bytes"): ("Images sent as bytes and tables, expanded on the GPU, against floats",
                          "--float-batches for floats"),
    ("heuristics", "timed"): ("cuDNN's algorithms timed against its heuristics",
                              "--cudnn-benchmark for timed"),
    ("plain", "routes"): ("conv1's own routes (fused forward, weight gradient from the pooled "
                          "gradient, timed) against cuDNN's forward and the direct kernel",
                          "--plain-conv1 for plain"),
    ("cudnn", "routes"): ("The later conv blocks' weight gradients from the pooled gradient "
                          "(timed against cuDNN's algorithm) against cuDNN's algorithm",
                          "--cudnn-later-wgrad for cudnn"),
    ("cudnndata", "routes"): ("The later conv blocks' data gradients from the pooled gradient "
                              "(timed against cuDNN's algorithm) against cuDNN's algorithm",
                              "--cudnn-later-dgrad for cudnndata"),
    ("cudnnconvs", "routes"): ("All our convolution kernels' routes (each timed against cuDNN) "
                               "against cuDNN's convolutions in every block",
                               "--plain-conv1 --cudnn-later-wgrad --cudnn-later-dgrad for "
                               "cudnnconvs"),
}


def load(folder, names):
    runs = {}
    pattern = r"(" + "|".join(map(re.escape, names)) + r")\.r(\d+)\.json$"
    for path in sorted(glob.glob(os.path.join(folder, "*.r*.json"))):
        m = re.match(pattern, os.path.basename(path))
        if m:
            with open(path) as f:
                runs.setdefault(m.group(1), []).append(json.load(f))
    return runs


def epochs(rounds):
    """{(size, batch): [epoch seconds per round]}; a point that failed in
    every round is there with no seconds (its row says so)."""
    by_point = {}
    for doc in rounds:
        for p in doc.get("points", []):
            seconds = by_point.setdefault((p["size"], p["batch"]), [])
            if "error" not in p:
                seconds.append(p["epoch_seconds"])
    return by_point


def seconds(median):
    return "failed" if median is None else f"{median:.4f}"


def failures(name, rounds):
    """One line per failed point of one variant's rounds: where and why."""
    return [f"* {name}, round {r}, {p['size']} px batch {p['batch']}: {p['error']}"
            for r, doc in enumerate(rounds, 1)
            for p in doc.get("points", []) if "error" in p]


def layer_choices(layer):
    """What one conv layer's directions took: the graph API's record where
    there is one, else the legacy algorithms."""
    graph = layer.get("graph", {})
    if graph:
        return [(d, f"engine {r['engine']}" if isinstance(r, dict) else str(r).split(":")[0])
                for d, r in graph.items()]
    return [(d, str(layer[d])) for d in ("forward", "backward_data", "backward_filter")
            if d in layer]


def input_route(point):
    """How a point's batches reached the GPU, and what the loader made it wait."""
    route = point.get("backend", {}).get("input_batches")
    if not route:
        return []
    # Records before 2026-12-07 sent every batch as floats and have no count.
    as_bytes = (f", {route['sent_as_bytes']} as bytes" if "sent_as_bytes" in route else "")
    return [f"{route.get('sent_by_dma_from_the_loader', 0)} batches by DMA from the loader, "
            f"{route.get('copied_to_staging_first', 0)} staged{as_bytes}; "
            f"loader wait {point.get('data_wait_seconds', 0):.4f} s"]


def engines(rounds):
    """{(size, batch): "conv1 forward: engine 12; ...; N batches by DMA ..."}
    from the runs' records."""
    out = {}
    for doc in rounds:
        for p in doc.get("points", []):
            parts = [f"{layer.get('layer', '?')} {d}: {took}"
                     for layer in p.get("backend", {}).get("algorithms", [])
                     for d, took in layer_choices(layer)] + input_route(p)
            if parts:
                out[(p["size"], p["batch"])] = "; ".join(parts)
    return out


def peaks(rounds):
    """{(size, batch): median peak MB over the rounds} of the points that
    recorded one."""
    by_point = {}
    for doc in rounds:
        for p in doc.get("points", []):
            if "peak_memory_bytes" in p and "error" not in p:
                by_point.setdefault((p["size"], p["batch"]), []).append(p["peak_memory_bytes"])
    return {k: statistics.median(v) / 1e6 for k, v in by_point.items()}


def peak_table(a_name, b_name, a_peaks, b_peaks):
    points = sorted(set(a_peaks) | set(b_peaks))
    if not points:
        return []
    mb = lambda v: "—" if v is None else f"{v:.1f}"
    lines = ["", f"Peak device memory, MB (median over the rounds):", "",
             f"| size | batch | {a_name} | {b_name} |", "|---|---|---|---|"]
    for point in points:
        lines.append(f"| {point[0]} | {point[1]} | {mb(a_peaks.get(point))} | "
                     f"{mb(b_peaks.get(point))} |")
    return lines


def main():
    if len(sys.argv) not in (2, 4):
        sys.exit("usage: gpu_ab_report.py FOLDER [A B]  (default: legacy graph)")
    folder = sys.argv[1]
    a_name, b_name = sys.argv[2:4] if len(sys.argv) == 4 else ("legacy", "graph")
    runs = load(folder, (a_name, b_name))
    if not runs.get(a_name) or not runs.get(b_name):
        sys.exit(f"gpu_ab_report: {folder} needs {a_name}.r*.json and {b_name}.r*.json")
    a, b = epochs(runs[a_name]), epochs(runs[b_name])
    chosen = engines(runs[b_name])
    title, flag = TITLES.get((a_name, b_name), (f"{b_name} against {a_name}", b_name))
    lines = [f"# {title}", "",
             f"`histocnn bench --device cuda --allocator plan --cuda-graphs [{flag}]`, "
             f"rounds interleaved (gpu-check.sh). Epoch of 1851 crops, seconds: median over "
             f"the rounds; ratio = {b_name} / {a_name} (< 1: {b_name} is faster).", "",
             f"| size | batch | {a_name} | {b_name} | ratio | rounds | what the {b_name} runs took |",
             "|---|---|---|---|---|---|---|"]
    for point in sorted(set(a) | set(b)):
        ta, tb = a.get(point), b.get(point)
        ma = statistics.median(ta) if ta else None
        mb = statistics.median(tb) if tb else None
        ratio = f"{mb / ma:.2f}" if ma and mb else "—"
        lines.append(f"| {point[0]} | {point[1]} | {seconds(ma)} | {seconds(mb)} | {ratio} | "
                     f"{len(ta or [])}/{len(tb or [])} | {chosen.get(point, '')} |")
    lines += peak_table(a_name, b_name, peaks(runs[a_name]), peaks(runs[b_name]))
    failed = failures(a_name, runs[a_name]) + failures(b_name, runs[b_name])
    if failed:
        lines += ["", "Failed runs (their points count fewer rounds):", ""] + failed
    path = os.path.join(folder, f"{b_name}-vs-{a_name}.md")
    with open(path + ".tmp", "w") as f:
        f.write("\n".join(lines) + "\n")
    os.replace(path + ".tmp", path)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
