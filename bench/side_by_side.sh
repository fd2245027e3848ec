#!/usr/bin/env bash
# histocnn and PyTorch on the same epoch (the paper's CNN, 1851 examples, same
# shapes, same cores; histocnn on the study's synthetic tissue crops, since
# its pooled gradients' work follows the content, PyTorch on random pixels,
# which its dense kernels take as long as any), measured in interleaved
# rounds — ours, PyTorch NCHW,
# PyTorch channels-last, ours, ... — so a neighbour's load falls on both
# engines alike. Reports per-engine medians and the ratio of medians; the
# sgemm ceiling is the best of every sgemm run taken during the rounds.
#
#   bench/side_by_side.sh OUT THREADS SIZE BATCH [ROUNDS] [--force] [--precision bf16]
#   e.g. bench/side_by_side.sh docs/results/side-by-side-200x50 2 200 50 3
#
# --precision bf16 runs, per round: histocnn fp32, histocnn --precision bf16,
# and PyTorch under CPU autocast to bfloat16 (NCHW and channels-last); it
# reports bf16's speed-up over our fp32 and the ratio to PyTorch's bf16.
#
# PyTorch runs with glibc's allocator told to keep freed memory
# (MALLOC_MMAP_MAX_=0, MALLOC_TRIM_THRESHOLD_ huge): by default each
# activation is a fresh mmap whose pages fault in every step, which on some
# VMs costs more than the arithmetic (the development VM of 2026-11-27:
# 134 s per epoch by default, ~23 s kept). It is what jemalloc/tcmalloc give
# PyTorch users; TORCH_MALLOC=default measures PyTorch as installed.
#
# Refuses to start while the machine is busy (1-minute load average above
# LOAD_LIMIT, default 0.5 per core asked for); --force measures anyway and
# says so in the record. Needs python3-torch (scripts/install-deps.sh --bench).
set -euo pipefail
cd "$(dirname "$0")/.."
invocation="bench/side_by_side.sh $*"
force=0
precision=fp32
args=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --force) force=1 ;;
    --precision) precision=${2:?--precision fp32|bf16}; shift ;;
    *) args+=("$1") ;;
  esac
  shift
done
[[ $precision == fp32 || $precision == bf16 ]] || { echo "side_by_side: --precision $precision: fp32 or bf16" >&2; exit 2; }
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
# The engines of a round, in order (each writes $out/NAME.ROUND.json with one point).
if [[ $precision == fp32 ]]; then
  engines=(histocnn pytorch-nchw pytorch-channels_last)
else
  engines=(histocnn histocnn-bf16 pytorch-bf16-nchw pytorch-bf16-channels_last)
fi
ours() {  # NAME ROUND PRECISION
  ./build/bench/bench_epoch --threads "$threads" --sizes "$size" --batches "$batch" --repeats 1 \
    --precision "$3" --json "$out/$1.$2.json" > "$out/$1.$2.txt"
}
malloc_env=(MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=1099511627776)
[[ "${TORCH_MALLOC:-kept}" == default ]] && malloc_env=()
theirs() {  # NAME ROUND LAYOUT AUTOCAST
  env "${malloc_env[@]}" taskset -c "0-$((threads - 1))" /usr/bin/python3 bench/pytorch_epoch.py --threads "$threads" \
    --sizes "$size" --batches "$batch" --repeats 1 --layouts "$3" --autocast "$4" \
    --json "$out/$1.$2.json" > "$out/$1.$2.txt"
}
for ((r = 1; r <= rounds; ++r)); do
  line="round $r/$rounds:"
  for e in "${engines[@]}"; do
    case "$e" in
      histocnn) ours "$e" "$r" fp32 ;;
      histocnn-bf16) ours "$e" "$r" bf16 ;;
      pytorch-nchw) theirs "$e" "$r" nchw none ;;
      pytorch-channels_last) theirs "$e" "$r" channels_last none ;;
      pytorch-bf16-nchw) theirs "$e" "$r" nchw bf16 ;;
      pytorch-bf16-channels_last) theirs "$e" "$r" channels_last bf16 ;;
    esac
    line+=" $e $(/usr/bin/python3 -c 'import json,sys; print("%.3f s" % json.load(open(sys.argv[1]))["points"][0]["epoch_seconds"])' "$out/$e.$r.json"),"
  done
  echo "${line%,}"
done
load_after=$(cut -d' ' -f1 /proc/loadavg)
/usr/bin/python3 - "$out" "$rounds" "$threads" "$size" "$batch" "$load_before" "$load_after" \
  "$force" "$busy" "$invocation" "$precision" "${TORCH_MALLOC:-kept}" "${engines[@]}" <<'PY'
import json, statistics, subprocess, sys, datetime
out, rounds, threads, size, batch, before, after, force, busy, command, precision, malloc = sys.argv[1:13]
engines = sys.argv[13:]
rounds = int(rounds)
med = statistics.median
load = lambda name, r: json.load(open(f"{out}/{name}.{r}.json"))
seconds = {e: [load(e, r)["points"][0]["epoch_seconds"] for r in range(1, rounds + 1)]
           for e in engines}
ours = seconds["histocnn"]
sgemm = [g for e in engines if e.startswith("histocnn")
         for r in range(1, rounds + 1) for g in load(e, r)["sgemm_gflops_all"]]
gflop = load("histocnn", 1)["points"][0]["gflops"] * ours[0]  # FLOPs of the epoch
theirs = [e for e in engines if e.startswith("pytorch")]
best_theirs = min(theirs, key=lambda e: med(seconds[e]))
mine = "histocnn-bf16" if precision == "bf16" else "histocnn"
ceiling = max(sgemm)
cpu = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
model = next((l.split(":", 1)[1].strip() for l in cpu.splitlines() if l.startswith("Model name")), "?")
summary = {
    "date": datetime.datetime.utcnow().isoformat(timespec="seconds") + "Z", "command": command,
    "cpu": model, "threads": int(threads), "size": int(size), "batch": int(batch),
    "precision": precision, "rounds": rounds, "load_before": float(before),
    "load_after": float(after), "forced_while_busy": bool(int(force) and int(busy)),
    "seconds": seconds, "medians": {e: med(v) for e, v in seconds.items()},
    "histocnn_median": med(seconds[mine]), "pytorch_best": best_theirs,
    "pytorch_median": med(seconds[best_theirs]),
    "ratio_of_medians": med(seconds[best_theirs]) / med(seconds[mine]),
    "sgemm_gflops_best": ceiling, "sgemm_gflops_all": sgemm,
    "epoch_gflop": gflop, "histocnn_fp32_fraction_of_sgemm": gflop / med(ours) / ceiling,
    "floor_seconds_at_sgemm": gflop / ceiling,
}
if precision == "bf16":
    summary["bf16_speedup_over_fp32"] = med(ours) / med(seconds["histocnn-bf16"])
json.dump(summary, open(f"{out}/summary.json", "w"), indent=2)
lines = [
    f"# histocnn vs PyTorch ({precision}), {size}x{size}, batch {batch}, {threads} threads",
    "", f"Date {summary['date']}; CPU {model}; command `{command}`.",
    f"Load average before/after: {before} / {after}" +
    (" — **measured while busy (--force)**" if summary["forced_while_busy"] else "") + ".",
    f"{rounds} interleaved rounds ({', '.join(engines)}), one epoch of "
    "1851 examples each after a warm-up. PyTorch's glibc allocator: "
    + ("freed memory kept (MALLOC_MMAP_MAX_=0, MALLOC_TRIM_THRESHOLD_=1 TiB)" if malloc == "kept"
       else "as installed") + ".", "",
    "| round | " + " | ".join(f"{e} s" for e in engines) + " |",
    "|---|" + "---|" * len(engines)]
for r in range(rounds):
    lines.append(f"| {r + 1} | " + " | ".join(f"{seconds[e][r]:.3f}" for e in engines) + " |")
lines += ["", f"* median: {mine} **{med(seconds[mine]):.3f} s**, {best_theirs} "
          f"**{med(seconds[best_theirs]):.3f} s**: ratio of medians **{summary['ratio_of_medians']:.2f}x**"]
if precision == "bf16":
    lines.append(f"* bf16 over our fp32 (median {med(ours):.3f} s): "
                 f"**{summary['bf16_speedup_over_fp32']:.2f}x**")
lines += [f"* sgemm ceiling (best of {len(sgemm)} runs in this measurement): {ceiling:.1f} GFLOP/s "
          f"(runs ranged {min(sgemm):.1f}-{ceiling:.1f})",
          f"* epoch FLOPs {gflop:.0f} GFLOP (counted as direct convolutions; Winograd does "
          f"fewer): histocnn fp32 at "
          f"{100 * summary['histocnn_fp32_fraction_of_sgemm']:.1f} % of the fp32 ceiling; direct "
          f"convolutions at the ceiling would take {summary['floor_seconds_at_sgemm']:.2f} s"]
open(f"{out}/summary.md", "w").write("\n".join(lines) + "\n")
print("\n".join(lines))
PY
