#!/usr/bin/env bash
# Two histocnn CPU configurations on the same epoch, in interleaved rounds
# (A, B, A, B, ...), so a neighbour's load falls on both alike: per-variant
# medians and the ratio of medians. Each variant is a set of bench_epoch
# flags, e.g. our max-pool kernels against oneDNN's:
#
#   bench/cpu_ab.sh OUT THREADS SIZE BATCH ROUNDS NAME_A "FLAGS_A" NAME_B "FLAGS_B"
#   bench/cpu_ab.sh docs/results/cpu-pool-kernels/fp32 2 200 50 5 \
#     histocnn-pool "" onednn-pool "--onednn-pool"
#
# Writes OUT/NAME.ROUND.json (bench_epoch's record of each epoch) and
# OUT/summary.md / summary.json; where both variants' flags have
# --profile-layers, each layer's median ms a step too. Two builds instead
# of two flag sets (a change without a switch): CPU_AB_BENCH_A / CPU_AB_BENCH_B name each
# variant's bench_epoch (default build/bench/bench_epoch), e.g. one built from
# the commit before the change in a worktree.
set -euo pipefail
cd "$(dirname "$0")/.."
bench_a=${CPU_AB_BENCH_A:-build/bench/bench_epoch}; bench_b=${CPU_AB_BENCH_B:-build/bench/bench_epoch}
invocation="bench/cpu_ab.sh $(printf "%q " "$@")"
[[ $bench_a == build/bench/bench_epoch && $bench_b == build/bench/bench_epoch ]] ||
  invocation="CPU_AB_BENCH_A=$bench_a CPU_AB_BENCH_B=$bench_b $invocation"
out=${1:?output folder}; threads=${2:?threads}; size=${3:?size}; batch=${4:?batch}
rounds=${5:?rounds}; name_a=${6:?name A}; flags_a=${7?flags A}; name_b=${8:?name B}
flags_b=${9?flags B}
for b in "$bench_a" "$bench_b"; do
  [[ -x $b ]] || { echo "cpu_ab: $b is not an executable bench_epoch (scripts/build.sh builds build/bench/bench_epoch)" >&2; exit 2; }
done
mkdir -p "$out"
load_before=$(cut -d' ' -f1 /proc/loadavg)
run() {  # NAME ROUND FLAGS BINARY
  # shellcheck disable=SC2086  # FLAGS is a list of flags
  "$4" --threads "$threads" --sizes "$size" --batches "$batch" --repeats 1 \
    $3 --json "$out/$1.$2.json" > "$out/$1.$2.txt"
}
for ((r = 1; r <= rounds; ++r)); do
  run "$name_a" "$r" "$flags_a" "$bench_a"
  run "$name_b" "$r" "$flags_b" "$bench_b"
  # The epoch's row (size, batch, seconds, ...): --profile-layers prints more after it.
  epoch_of() { awk -v size="$size" '$1 == size { print $3; exit }' "$out/$1.$r.txt"; }
  echo "round $r/$rounds: $(epoch_of "$name_a") s ($name_a), $(epoch_of "$name_b") s ($name_b)"
done
load_after=$(cut -d' ' -f1 /proc/loadavg)
/usr/bin/python3 - "$out" "$rounds" "$invocation" "$load_before" "$load_after" \
  "$name_a" "$flags_a" "$name_b" "$flags_b" <<'PY'
import datetime, json, statistics, subprocess, sys
out, rounds, command, before, after, a, fa, b, fb = sys.argv[1:10]
rounds = int(rounds)
med = statistics.median
records = {n: [json.load(open(f"{out}/{n}.{r}.json")) for r in range(1, rounds + 1)]
           for n in (a, b)}
seconds = {n: [rec["points"][0]["epoch_seconds"] for rec in records[n]] for n in (a, b)}
sgemm = [g for n in (a, b) for rec in records[n] for g in rec["sgemm_gflops_all"]]
# With --profile-layers in both variants: each layer's median over the rounds,
# steadier than the epochs on a shared machine (a neighbour's burst lands on
# a few layers of one round, not on every layer's median).
def layer_medians(name):
    runs = [rec["points"][0].get("layer_ms_per_step") for rec in records[name]]
    return {k: med([run.get(k, 0.0) for run in runs]) for k in runs[0]} if all(runs) else None
layers = {n: layer_medians(n) for n in (a, b)}
cpu = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
model = next((l.split(":", 1)[1].strip() for l in cpu.splitlines() if l.startswith("Model name")), "?")
first = records[a][0]
summary = {"date": datetime.datetime.utcnow().isoformat(timespec="seconds") + "Z",
           "command": command, "cpu": model, "threads": first["threads"],
           "precision": first["precision"], "flags": {a: fa, b: fb}, "rounds": rounds,
           "load_before": float(before), "load_after": float(after), "seconds": seconds,
           "medians": {n: med(v) for n, v in seconds.items()},
           "ratio_of_medians": med(seconds[b]) / med(seconds[a]),
           "round_ratios": [sb / sa for sa, sb in zip(seconds[a], seconds[b])],
           "sgemm_gflops_all": sgemm}
if layers[a] and layers[b]:
    summary["layer_ms_per_step_medians"] = layers
json.dump(summary, open(f"{out}/summary.json", "w"), indent=2)
lines = [f"# {a} vs {b}", "", f"Date {summary['date']}; CPU {model}; command `{command}`.",
         f"Load average before/after: {before} / {after}. {rounds} interleaved rounds, one epoch "
         "each after a warm-up.", "", f"| round | {a} s | {b} s |", "|---|---|---|"]
lines[-2:] = [f"| round | {a} s | {b} s | {b} / {a} |", "|---|---|---|---|"]
lines += [f"| {r + 1} | {seconds[a][r]:.3f} | {seconds[b][r]:.3f} | {ratio:.2f} |"
          for r, ratio in enumerate(summary["round_ratios"])]
lines += ["", f"* medians: {a} **{med(seconds[a]):.3f} s**, {b} **{med(seconds[b]):.3f} s**: "
          f"{b} / {a} = **{summary['ratio_of_medians']:.2f}x** (per round "
          f"{min(summary['round_ratios']):.2f}-{max(summary['round_ratios']):.2f}, median "
          f"{med(summary['round_ratios']):.2f})",
          f"* sgemm during the rounds: {min(sgemm):.1f}-{max(sgemm):.1f} GFLOP/s"]
if layers[a] and layers[b]:
    la, lb = layers[a], layers[b]
    lines += ["", f"Per layer, ms a step (medians of the {rounds} rounds):", "",
              f"| layer | {a} | {b} | {b} / {a} |", "|---|---|---|---|"]
    for k in sorted(set(la) | set(lb), key=lambda k: -max(la.get(k, 0.0), lb.get(k, 0.0))):
        ta, tb = la.get(k, 0.0), lb.get(k, 0.0)
        ratio = f"{tb / ta:.2f}" if ta > 0 else "-"
        lines.append(f"| {k} | {ta:.2f} | {tb:.2f} | {ratio} |")
open(f"{out}/summary.md", "w").write("\n".join(lines) + "\n")
print("\n".join(lines))
PY
