#!/usr/bin/env python3
"""Summarises gpu-check.sh's "graph" stage: OUT/graph/{legacy,graph}.r<N>.json
(`histocnn bench --cudnn-graph` or not, interleaved rounds) ->
OUT/graph/graph-vs-legacy.md: per point, each API's median epoch over the
rounds, the ratio graph / legacy, and which engine or legacy algorithm each
conv layer and direction took in the graph runs.

    python3 bench/graph_ab_report.py OUT/graph
"""
import glob
import json
import os
import re
import statistics
import sys


def load(folder):
    runs = {}
    for path in sorted(glob.glob(os.path.join(folder, "*.r*.json"))):
        m = re.match(r"(legacy|graph)\.r(\d+)\.json$", os.path.basename(path))
        if m:
            with open(path) as f:
                runs.setdefault(m.group(1), []).append(json.load(f))
    return runs


def epochs(rounds):
    """{(size, batch): [epoch seconds per round]}, failed points left out."""
    by_point = {}
    for doc in rounds:
        for p in doc.get("points", []):
            if "error" not in p:
                by_point.setdefault((p["size"], p["batch"]), []).append(p["epoch_seconds"])
    return by_point


def engines(rounds):
    """{(size, batch): "conv1 fwd: engine 12; ..."} from the graph runs' records."""
    out = {}
    for doc in rounds:
        for p in doc.get("points", []):
            parts = []
            for layer in p.get("backend", {}).get("algorithms", []):
                for direction, record in layer.get("graph", {}).items():
                    took = (f"engine {record['engine']}" if isinstance(record, dict)
                            else str(record).split(":")[0])
                    parts.append(f"{layer.get('layer', '?')} {direction}: {took}")
            if parts:
                out[(p["size"], p["batch"])] = "; ".join(parts)
    return out


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: graph_ab_report.py OUT/graph")
    folder = sys.argv[1]
    runs = load(folder)
    if not runs.get("legacy") or not runs.get("graph"):
        sys.exit(f"graph_ab_report: {folder} needs legacy.r*.json and graph.r*.json")
    legacy, graph = epochs(runs["legacy"]), epochs(runs["graph"])
    chosen = engines(runs["graph"])
    lines = ["# cuDNN's graph API against the legacy calls", "",
             "`histocnn bench --device cuda --allocator plan --cuda-graphs [--cudnn-graph]`, "
             "rounds interleaved (gpu-check.sh, stage graph). Epoch of 1851 crops, seconds: "
             "median over the rounds; ratio = graph / legacy (< 1: the graph API is faster).", "",
             "| size | batch | legacy | graph | ratio | rounds | what the graph runs took |",
             "|---|---|---|---|---|---|---|"]
    for point in sorted(set(legacy) | set(graph)):
        a, b = legacy.get(point), graph.get(point)
        ma = statistics.median(a) if a else None
        mb = statistics.median(b) if b else None
        ratio = f"{mb / ma:.2f}" if ma and mb else "—"
        lines.append(f"| {point[0]} | {point[1]} | {ma if ma is None else f'{ma:.4f}'} | "
                     f"{mb if mb is None else f'{mb:.4f}'} | {ratio} | "
                     f"{len(a or [])}/{len(b or [])} | {chosen.get(point, '')} |")
    path = os.path.join(folder, "graph-vs-legacy.md")
    with open(path + ".tmp", "w") as f:
        f.write("\n".join(lines) + "\n")
    os.replace(path + ".tmp", path)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
