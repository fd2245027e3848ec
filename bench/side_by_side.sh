#!/usr/bin/env bash
# histocnn and PyTorch on the same epoch (the paper's CNN, 1851 examples, same
# shapes, same cores), measured in interleaved rounds — ours, PyTorch NCHW,
# PyTorch channels-last, ours, ... — so a neighbour's load falls on both
# engines alike. Reports per-engine medians and the ratio of medians; the
# sgemm ceiling is the best of every sgemm run taken during the rounds.
#
#   bench/side_by_side.sh OUT THREADS SIZE BATCH [ROUNDS] [--force]
#   e.g. bench/side_by_side.sh docs/results/side-by-side-200x50 2 200 50 3
#
# Refuses to start while the machine is busy (1-minute load average above
# LOAD_LIMIT, default 0.5 per core asked for); --force measures anyway and
# says so in the record. Needs python3-torch (scripts/install-deps.sh --bench).
set -euo pipefail
cd "$(dirname "$0")/.."
force=0
args=()
for a in "$@"; do [[ "$a" == "--force" ]] && force=1 || args+=("$a"); done
out=${args[0]:?output folder}; threads=${args[1]:-2}; size=${args[2]:-200}; batch=${args[3]:-50}
rounds=${args[4]:-3}
limit=${LOAD_LIMIT:-$(awk -v t="$threads" 'BEGIN { print 0.5 * t }')}
load_before=$(cut -d' ' -f1 /proc/loadavg)
busy=$(awk -v l="$load_before" -v m="$limit" 'BEGIN { print (l > m) ? 1 : 0 }')
if [[ $busy == 1 && $force == 0 ]]; then
  echo "side_by_side: the machine is busy (load average $load_before > $limit): not measuring." >&2
  echo "  Stop what runs (top), or pass --force to measure anyway (the record says so)." >&2
  exit 3
fi
[[ -x build/bench/bench_epoch ]] || { echo "side_by_side: build/bench/bench_epoch missing (scripts/build.sh)" >&2; exit 2; }
mkdir -p "$out"
for ((r = 1; r <= rounds; ++r)); do
  ./build/bench/bench_epoch --threads "$threads" --sizes "$size" --batches "$batch" --repeats 1 \
    --json "$out/histocnn.$r.json" > "$out/histocnn.$r.txt"
  for layout in nchw channels_last; do
    taskset -c "0-$((threads - 1))" /usr/bin/python3 bench/pytorch_epoch.py --threads "$threads" \
      --sizes "$size" --batches "$batch" --repeats 1 --layouts "$layout" \
      --json "$out/pytorch-$layout.$r.json" > "$out/pytorch-$layout.$r.txt"
  done
  /usr/bin/python3 -c 'import json, sys
o, r, n = sys.argv[1], sys.argv[2], sys.argv[3]
t = [json.load(open(o + "/" + f + "." + r + ".json"))["points"][0]["epoch_seconds"]
     for f in ("histocnn", "pytorch-nchw", "pytorch-channels_last")]
print("round %s/%s: histocnn %.3f s, pytorch nchw %.3f s, channels-last %.3f s" % (r, n, *t))' \
    "$out" "$r" "$rounds"
done
load_after=$(cut -d' ' -f1 /proc/loadavg)
/usr/bin/python3 - "$out" "$rounds" "$threads" "$size" "$batch" "$load_before" "$load_after" \
  "$force" "$busy" "bench/side_by_side.sh $*" <<'PY'
import json, statistics, subprocess, sys, datetime
out, rounds, threads, size, batch, before, after, force, busy, command = sys.argv[1:]
rounds = int(rounds)
load = lambda name, r: json.load(open(f"{out}/{name}.{r}.json"))
ours = [load("histocnn", r)["points"][0]["epoch_seconds"] for r in range(1, rounds + 1)]
sgemm = [g for r in range(1, rounds + 1) for g in load("histocnn", r)["sgemm_gflops_all"]]
torch = {l: [load(f"pytorch-{l}", r)["points"][0]["epoch_seconds"] for r in range(1, rounds + 1)]
         for l in ("nchw", "channels_last")}
gflop = load("histocnn", 1)["points"][0]["gflops"] * ours[0]  # FLOPs of the epoch
med = statistics.median
best_layout = min(torch, key=lambda l: med(torch[l]))
ceiling = max(sgemm)
cpu = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
model = next((l.split(":", 1)[1].strip() for l in cpu.splitlines() if l.startswith("Model name")), "?")
summary = {
    "date": datetime.datetime.utcnow().isoformat(timespec="seconds") + "Z", "command": command,
    "cpu": model, "threads": int(threads), "size": int(size), "batch": int(batch),
    "rounds": rounds, "load_before": float(before), "load_after": float(after),
    "forced_while_busy": bool(int(force) and int(busy)),
    "histocnn_seconds": ours, "pytorch_seconds": torch,
    "histocnn_median": med(ours), "pytorch_best_layout": best_layout,
    "pytorch_median": med(torch[best_layout]),
    "ratio_of_medians": med(torch[best_layout]) / med(ours),
    "sgemm_gflops_best": ceiling, "sgemm_gflops_all": sgemm,
    "epoch_gflop": gflop, "histocnn_fraction_of_sgemm": gflop / med(ours) / ceiling,
    "floor_seconds_at_sgemm": gflop / ceiling,
}
json.dump(summary, open(f"{out}/summary.json", "w"), indent=2)
lines = [
    f"# histocnn vs PyTorch, {size}x{size}, batch {batch}, {threads} threads",
    "", f"Date {summary['date']}; CPU {model}; command `{command}`.",
    f"Load average before/after: {before} / {after}" +
    (" — **measured while busy (--force)**" if summary["forced_while_busy"] else "") + ".",
    f"{rounds} interleaved rounds (histocnn, PyTorch NCHW, PyTorch channels-last), one epoch of "
    "1851 examples each after a warm-up.", "",
    "| round | histocnn s | PyTorch NCHW s | PyTorch channels-last s |", "|---|---|---|---|"]
for r in range(rounds):
    lines.append(f"| {r + 1} | {ours[r]:.3f} | {torch['nchw'][r]:.3f} | {torch['channels_last'][r]:.3f} |")
lines += ["", f"* median: histocnn **{med(ours):.3f} s**, PyTorch ({best_layout}) "
          f"**{med(torch[best_layout]):.3f} s**: ratio of medians **{summary['ratio_of_medians']:.2f}x**",
          f"* sgemm ceiling (best of {len(sgemm)} runs in this measurement): {ceiling:.1f} GFLOP/s "
          f"(runs ranged {min(sgemm):.1f}-{ceiling:.1f})",
          f"* epoch FLOPs {gflop:.0f} GFLOP: histocnn at {100 * summary['histocnn_fraction_of_sgemm']:.1f} % "
          f"of the ceiling; the floor at the ceiling is {summary['floor_seconds_at_sgemm']:.2f} s"]
open(f"{out}/summary.md", "w").write("\n".join(lines) + "\n")
print("\n".join(lines))
PY
