#!/usr/bin/env bash
# histocnn and PyTorch on one GPU, the same epochs (the paper's CNN, 1851 crops)
# over {32, 64, 128, 200} x {10, 50, 150}, in interleaved rounds — per round:
# histocnn fp32, PyTorch fp32 (TF32 off), histocnn tf32, PyTorch tf32 (its
# default), histocnn bf16, PyTorch bf16 autocast [, PyTorch torch.compile
# fp32] — each engine
# one process over the whole grid (histocnn on the study's synthetic tissue
# crops, `bench --pixels tissue`; PyTorch on random pixels, which its dense
# kernels take as long as any). Then one profiled histocnn epoch (an event
# per operation) at 200x200 batch 50, and the summary:
# OUT/gpu-side-by-side-<gpu>.md with the medians, the ratios, the measured
# memory and the distance from the arithmetic floor.
#
#   bench/gpu_side_by_side.sh OUT [--rounds N] [--sizes 32,64,128,200]
#                             [--batches 10,50,150] [--compile] [--time-limit SECONDS]
#                             [--histocnn-flags "FLAGS"]
#
# --histocnn-flags: added to every histocnn run (e.g. "--channels-last" once
# gpu-check.sh's layout stage shows it wins; the report's command line and
# each raw JSON record them).
#
# Runs from the source tree (build/histocnn) or from the relocatable package
# (bin/histocnn beside bench/); HISTOCNN=path and PYTHON=path override. Needs
# only the NVIDIA driver, the CUDA libraries the package finds (cuDNN 9,
# cuBLAS) and PyTorch with CUDA. Each engine run is bounded (--time-limit,
# default 100 s) so the whole stays within about 5 minutes with 2 rounds.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
invocation="bench/gpu_side_by_side.sh $*"
out=${1:?usage: bench/gpu_side_by_side.sh OUT [--rounds N] [--sizes ..] [--batches ..] [--compile]}
shift
rounds=2 sizes=32,64,128,200 batches=10,50,150 compile=0 limit=100 extra=""
while [[ $# -gt 0 ]]; do
  case "$1" in
    --rounds) rounds=${2:?}; shift ;;
    --sizes) sizes=${2:?}; shift ;;
    --batches) batches=${2:?}; shift ;;
    --compile) compile=1 ;;
    --time-limit) limit=${2:?}; shift ;;
    --histocnn-flags) extra=${2?}; shift ;;
    *) echo "gpu_side_by_side: unknown option $1" >&2; exit 2 ;;
  esac
  shift
done
if [[ -n "${HISTOCNN:-}" ]]; then histocnn=$HISTOCNN
elif [[ -x "$here/../bin/histocnn" ]]; then histocnn="$here/../bin/histocnn"
else histocnn="$here/../build/histocnn"; fi
python=${PYTHON:-python3}
[[ -x "$histocnn" ]] || { echo "gpu_side_by_side: $histocnn not found (HISTOCNN=...)" >&2; exit 2; }
mkdir -p "$out/raw"
gpu=$("$python" -c 'import torch; print(torch.cuda.get_device_name(0))' 2>/dev/null ||
      nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1 || echo GPU)
driver=$(nvidia-smi --query-gpu=driver_version --format=csv,noheader 2>/dev/null | head -1 || echo "?")
machine="$gpu (driver $driver), $(nproc) CPU cores, $(date -u +%Y-%m-%d)"
echo "gpu_side_by_side: $machine; $rounds rounds over sizes $sizes x batches $batches"

grid=(--sizes "$sizes" --batches "$batches")
ours() {  # NAME ROUND PRECISION [extra flags]
  local name=$1 round=$2 precision=$3; shift 3
  timeout "$limit" "$histocnn" bench --device cuda "${grid[@]}" --precision "$precision" \
    --allocator plan --cuda-graphs --json "$out/raw/$name.$round.json" $extra "$@" \
    > "$out/raw/$name.$round.log" 2>&1 || echo "  $name round $round failed: $(tail -1 "$out/raw/$name.$round.log")"
}
theirs() {  # NAME ROUND PRECISION [extra flags]
  local name=$1 round=$2 precision=$3; shift 3
  timeout "$limit" "$python" "$here/pytorch_gpu_bench.py" "${grid[@]}" --precision "$precision" \
    --json "$out/raw/$name.$round.json" "$@" \
    > "$out/raw/$name.$round.log" 2>&1 || echo "  $name round $round failed: $(tail -1 "$out/raw/$name.$round.log")"
}
start=$SECONDS
for ((r = 1; r <= rounds; r++)); do
  echo "round $r"
  ours histocnn-fp32 "$r" fp32
  theirs pytorch-fp32 "$r" fp32
  ours histocnn-tf32 "$r" tf32
  theirs pytorch-tf32 "$r" tf32
  ours histocnn-bf16 "$r" bf16
  theirs pytorch-bf16 "$r" bf16
  if ((compile)); then theirs pytorch-compile-fp32 "$r" fp32 --compile; fi
  echo "  $((SECONDS - start)) s so far"
done
# Where the time goes: one eager epoch with an event per operation.
timeout "$limit" "$histocnn" bench --device cuda --sizes 200 --batches 50 --warmup 1 --epochs 1 \
  --profile-layers --json "$out/raw/histocnn-profile.1.json" $extra \
  > "$out/raw/histocnn-profile.log" 2>&1 ||
  echo "  profile failed: $(tail -1 "$out/raw/histocnn-profile.log")"
"$python" "$here/gpu_side_by_side_report.py" "$out" --gpu "$gpu" --machine "$machine" \
  --invocation "$invocation"
echo "gpu_side_by_side: done in $((SECONDS - start)) s"
