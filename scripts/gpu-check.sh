#!/usr/bin/env bash
# One visit to a GPU machine, from the relocatable package (scripts/package.sh
# copies this script to its root) or a source tree with build/histocnn:
#
#   gpu-check.sh [--pack ARCHIVE] OUT [STAGE ...]
#                                    stages (default: all, in this order):
#     selftest   histocnn selftest --device cuda (fp32 and bf16 rows), a
#                five-grade network with smoothed labels, and the step through
#                cuDNN's graph API (--cudnn-graph)                         (~70 s)
#     memcheck   compute-sanitizer memcheck over a short CUDA training, fp32
#                and bf16, and over a small self-test (every route of conv1's
#                own kernels forced once)                                  (~120 s)
#     oom        batch 1800 at 200 px under --gpu-mem-limit 4GB: the report (~10 s)
#     sbs        bench/gpu_side_by_side.sh, 2 rounds                      (~300 s)
#     cpu        the 200x200 epoch at batches 50 and 10 on 16/8/4/2/1 threads,
#                two epochs each in one process (the first cold: page faults
#                of a fresh process; the second warm), with per-layer
#                profiles (issue 20's table), then on every core the defaults
#                against the levers one at a time (Winograd, slices, conv1,
#                loader threads, pooling), 2 rounds; bench/cpu_scaling_report.py
#                summarises both in OUT/cpu-scaling.md, with the paper's
#                Fig. 6 (t_cpu / t_gpu) when stage sbs ran in the same OUT (~300 s)
#   and on request (not in "all"):
#     graph      --cudnn-graph against the legacy cuDNN calls: 128 and 200 px,
#                batches 50 and 150, 2 interleaved rounds                  (~80 s)
#     layout     --channels-last: the self-test (fp32 and bf16 rows), then
#                channels last against first in bf16 and tf32 (the tensor-core
#                precisions), 128 and 200 px, batches 50 and 150, and the
#                accurate preset's network in bf16 at 64 px, 2 interleaved
#                rounds each                                               (~280 s)
#     input      the images sent as bytes and lookup tables, expanded on the
#                GPU (the default since 2026-12-07), against floats made by
#                the loader (--float-batches), bf16 and fp32, 128 and 200 px,
#                batches 50 and 150; then the loader's batches in the step's
#                page-locked memory (DMA from them) against ordinary memory
#                copied into pinned staging (--staged-batches), bf16 and fp32,
#                128 and 200 px, batch 150; 2 interleaved rounds each   (~120 s)
#     conv1      conv1's own routes (fused forward + pool, weight gradient from
#                the pooled gradient, as timed when the step is built) against
#                cuDNN's forward and the direct kernel (--plain-conv1): fp32 at
#                128 and 200 px, batches 10, 50, 150; bf16 at 200 px, batches
#                50 and 150; 2 interleaved rounds, epochs and peak memory  (~90 s)
#     wgrad      the later conv blocks' weight gradients by our kernel from the
#                pooled gradient (as timed when the step is built) against
#                cuDNN's algorithm (--cudnn-later-wgrad): fp32 at 128 and 200
#                px, batches 10, 50, 150; bf16 at 200 px, batches 50 and 150;
#                2 interleaved rounds, epochs and peak memory            (~90 s)
#     dgrad      the later conv blocks' data gradients by our kernel from the
#                pooled gradient (as timed when the step is built) against
#                cuDNN's algorithm (--cudnn-later-dgrad): fp32 at 128 and 200
#                px, batches 10, 50, 150; bf16 at 200 px, batches 50 and 150;
#                2 interleaved rounds, epochs and peak memory            (~90 s)
#     kernels    all our convolution kernels' routes at once (conv1's, and the
#                later blocks' weight and data gradients) against cuDNN's
#                convolutions in every block (--plain-conv1 --cudnn-later-wgrad
#                --cudnn-later-dgrad); the grid of conv1 and wgrad      (~90 s)
#     algos      cuDNN's algorithms timed (--cudnn-benchmark) against its
#                heuristics, fp32, 128 and 200 px, batches 50 and 150, 2
#                interleaved rounds; each JSON names the algorithms        (~60 s)
#     study      scripts/gpu-study.sh itself on a grid a visit can hold: 200 px,
#                batches 10 and 50, 2 interleaved rounds of the CPU at
#                16/8/4/2/1 threads (each count's cores measured first:
#                `histocnn ceilings`) and the GPU with the pool and
#                plan+graphs allocators, histocnn only (the side by side has
#                PyTorch). Its report's CPU scaling table is issue 20's
#                measurement (1 to 16 threads in one interleaved run, beside
#                the cores' own sgemm), its t_cpu / t_gpu table the paper's
#                Fig. 6 from one run of the study                     (~320 s)
#     accuracy   issue 18's item 4: the GlaS patient-grouped 5-fold
#                cross-validation (scripts/cross_validate.sh) with
#                --preset accurate trained on the GPU in fp32, bf16 and tf32,
#                each precision's image accuracy against fp32's (1 point);
#                bench/gpu_accuracy_report.py writes OUT/accuracy.md. Needs
#                the GlaS train folder in HISTOCNN_GLAS_DIR (skipped without);
#                ACCURACY_FLAGS, ACCURACY_FOLDS and ACCURACY_PRECISIONS
#                replace "--preset accurate", 5 and "fp32 bf16 tf32"  (~180 s)
#     levers     the CPU step's three newest levers (onednnwgrad, onednndgrad,
#                onednnfwd of the cpu stage) against the defaults, alone (~80 s)
#     compile    PyTorch's torch.compile (fp32, default mode) beside histocnn and
#                PyTorch eager at the side by side's large points (128 and 200
#                px, batches 50 and 150), 1 round: issue 18's item 7, "and
#                torch.compile where it works" (a compile that fails or runs
#                past 300 s is recorded and the report goes on)  (~200 s, a guess)
#     slide      a 50,000 x 50,000 synthetic slide (synth --slide), a 64-px model,
#                then `histocnn slide` on cuda and cpu, 2 interleaved rounds;
#                summary.json has tiles/s, reader and device seconds   (~240 s;
#                without gnuplot the maps are their overlays and scripts)
# Every stage writes under OUT and is bounded by a timeout; a failed stage is
# reported and the next one runs. Prints the time of each stage at the end.
#
# --pack ARCHIVE: keep ARCHIVE (a .tar.gz outside OUT) holding OUT's results
# — its text files (.md .txt .log .json .jsonl .csv .spec), each under 4 MiB, not
# the synthetic images — rewritten atomically every 20 s and after each
# stage. The device tool returns at most 8 files from $OUT, none more than
# two folders down, and a call cut short by its time limit returns what is
# there: so run with OUT outside $OUT and ARCHIVE in it (the results come
# back as one file, at most 20 s stale however the call ends).
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
usage="usage: gpu-check.sh [--pack ARCHIVE] OUT [selftest memcheck oom sbs cpu graph layout input conv1 wgrad dgrad kernels algos study accuracy levers compile slide]"
archive=""
if [[ "${1:-}" == "--pack" ]]; then
  archive=${2:?$usage}
  shift 2
fi
out=${1:?$usage}
shift
stages=("$@")
[[ ${#stages[@]} -eq 0 ]] && stages=(selftest memcheck oom sbs cpu)
if [[ -x "$here/bin/histocnn" ]]; then histocnn="$here/bin/histocnn"; bench="$here/bench"
else histocnn="$here/../build/histocnn"; bench="$here/../bench"; fi
histocnn=${HISTOCNN:-$histocnn}  # a stand-in (tests)
mkdir -p "$out"
data="$out/synthetic"
summary=()
pack() {  # OUT's results into $archive, whole or not at all
  [[ -n "$archive" ]] || return 0
  local part="$archive.part.$BASHPID"
  (cd "$out" && find . -path ./synthetic -prune -o -type f -size -4194304c \( -name '*.md' \
      -o -name '*.txt' -o -name '*.log' -o -name '*.json' -o -name '*.jsonl' -o -name '*.csv' \
      -o -name '*.spec' \) \
      -print0 | tar czf "$part" --null -T -) && mv -f "$part" "$archive"
}
if [[ -n "$archive" ]]; then
  case "$(realpath -m "$archive")/" in
    "$(realpath -m "$out")"/*) echo "gpu-check: --pack $archive must be outside $out" >&2; exit 2 ;;
  esac
  mkdir -p "$(dirname "$archive")"
  # The loop's sleep dies with it: an orphaned sleep would hold the call open.
  ( trap 'kill $nap 2>/dev/null; exit 0' TERM
    while :; do sleep 20 & nap=$!; wait $nap; pack; done ) > /dev/null 2>&1 < /dev/null &
  packer=$!
  trap 'kill $packer 2>/dev/null; pack' EXIT
fi
run_stage() {  # NAME LIMIT_SECONDS COMMAND...
  local name=$1 limit=$2; shift 2
  local start=$SECONDS
  echo "== $name" | tee -a "$out/gpu-check.log"
  timeout "$limit" "$@" >> "$out/$name.txt" 2>&1
  local rc=$?
  summary+=("$(printf '%-9s rc %3d  %4d s' "$name" "$rc" $((SECONDS - start)))")
  tail -5 "$out/$name.txt" | tee -a "$out/gpu-check.log"
  pack
}
write_accurate_spec() {  # the accurate preset's network -> OUT/accurate.spec
  printf 'conv 32 kernel=3 pool=2 pad=same bn\nconv 64 kernel=3 pool=2 pad=same bn\nconv 128 kernel=3 pool=2 pad=same bn\nconv 128 kernel=3 pool=2 pad=same bn\ngap\ndense 64\ndropout 0.5\ndense 2\n' > "$out/accurate.spec"
}
ab_stage() {  # NAME A A_FLAG B B_FLAG COMMON_FLAGS: 2 interleaved rounds, then the report
  local name=$1 a=$2 a_flag=$3 b=$4 b_flag=$5 common=$6 start=$SECONDS
  mkdir -p "$out/$name"
  for round in 1 2; do
    for variant in "$a" "$b"; do
      local flag=$a_flag; [[ $variant == "$b" ]] && flag=$b_flag
      timeout 100 "$histocnn" bench --device cuda --allocator plan --cuda-graphs $common $flag \
        --json "$out/$name/$variant.r$round.json" >> "$out/$name.txt" 2>&1 ||
        echo "$name: $variant round $round failed" | tee -a "$out/$name.txt"
    done
    pack
  done
  python3 "$bench/gpu_ab_report.py" "$out/$name" "$a" "$b" >> "$out/$name.txt" 2>&1 ||
    echo "$name: no report (see $name.txt)"
  summary+=("$(printf '%-9s %4d s' "$name" $((SECONDS - start)))")
}
cpu_levers() {  # FOLDER LOG VARIANT...: on every core, 2 interleaved rounds of each variant
  # (issue 20: what held 16 cores to 4.5x?):
  #   now        the defaults (fused conv1, Winograd conv2/conv3, slices scaled with the team)
  #   direct     direct conv2/conv3 (no Winograd)
  #   onednnwgrad conv2's/conv3's weight gradients by oneDNN's Winograd instead of ours
  #              from the pooled gradient (split over output channels, not images:
  #              batch 10's backward scaled least, cpu-scaling-16core.md)
  #   onednndgrad their data gradients by oneDNN's Winograd (after a pool backward)
  #              instead of ours from the pooled gradient (cpu-pooled-dgrad.md)
  #   onednnfwd  their forward by oneDNN's Winograd (then our pool) instead of our
  #              Winograd conv+ReLU+pool kernel (cpu-winograd-pool.md)
  #   slices4m   the fixed 4 MiB slices of before (2-image slices of conv2)
  #   before     that, oneDNN's conv1 (sliced to 1 image) and direct convolutions: the
  #              configuration of 00fdd17
  #   workers    threads - 1 loader threads beside the compute threads (the default until
  #              2026-12-02; now the OpenMP team prepares each batch: cpu-loader.md)
  #   onednnpool oneDNN's pooling and conv1
  local folder=$1 log=$2 round variant flag; shift 2
  mkdir -p "$folder"
  for round in 1 2; do
    for variant in "$@"; do
      case $variant in
        now) flag=() ;;
        direct) flag=(--direct-conv) ;;
        onednnwgrad) flag=(--onednn-wgrad) ;;
        onednndgrad) flag=(--onednn-dgrad) ;;
        onednnfwd) flag=(--onednn-forward) ;;
        slices4m) flag=(--slice-kb 4096) ;;
        before) flag=(--slice-kb 4096 --onednn-conv1 --direct-conv --onednn-wgrad --onednn-dgrad --onednn-forward) ;;
        workers) flag=(--loader-workers "$(( $(nproc) - 1 ))") ;;
        onednnpool) flag=(--onednn-pool) ;;
        *) echo "gpu-check: unknown lever $variant" >&2; continue ;;
      esac
      timeout 100 "$histocnn" bench --device cpu --sizes 200 --batches 50,10 \
        --threads "$(nproc)" --warmup 0 --epochs 2 --profile-layers "${flag[@]}" \
        --json "$folder/$variant.r$round.json" >> "$log" 2>&1 ||
        echo "cpu: $variant, round $round failed" | tee -a "$log"
    done
    pack
  done
}
{
  date -u; nvidia-smi 2>&1 | head -15; nproc; "$histocnn" --help | head -1
  cat "$here/REVISION" 2>/dev/null
  # What 16 "cores" are (issue 20): SMT siblings, NUMA nodes, a CPU quota.
  lscpu 2>&1 | head -30
  echo "cpu0 siblings: $(cat /sys/devices/system/cpu/cpu0/topology/thread_siblings_list 2>&1)"
  echo "cgroup cpu.max: $(cat /sys/fs/cgroup/cpu.max 2>&1)"
  echo "NUMA nodes: $(ls -d /sys/devices/system/node/node* 2>/dev/null | wc -l)"
  free -m
} > "$out/machine.txt" 2>&1

for stage in "${stages[@]}"; do
  case "$stage" in
    selftest)
      run_stage selftest 120 "$histocnn" selftest --device cuda
      # A five-grade network with the ordinal loss: the K-class loss kernel.
      run_stage selftest-grades 60 "$histocnn" selftest --device cuda --classes 5 --size 48 \
        --batch 12 --label-smoothing 0.2 --smooth-to neighbours
      # The convolutions through cuDNN's graph API (opt-in --cudnn-graph).
      run_stage selftest-graph 120 "$histocnn" selftest --device cuda --cudnn-graph ;;
    graph)
      # cuDNN's graph API against the legacy calls: the same epochs, interleaved;
      # metrics in each JSON's points (and which engine each layer took).
      ab_stage graph legacy "" graph --cudnn-graph "--sizes 128,200 --batches 50,150" ;;
    layout)
      # Channels last against first where tensor cores run (bf16, tf32).
      run_stage selftest-nhwc 120 "$histocnn" selftest --device cuda --channels-last
      grid="--sizes 128,200 --batches 50,150"
      ab_stage layout-bf16 first "" last --channels-last "$grid --precision bf16"
      ab_stage layout-tf32 first "" last --channels-last "$grid --precision tf32"
      # The accurate preset's network (batch norm, gap) at its 64 px.
      write_accurate_spec
      ab_stage layout-accurate-bf16 first "" last --channels-last \
        "--sizes 64 --batches 50,150 --precision bf16 --model $out/accurate.spec" ;;
    input)
      # What crosses PCIe: bytes and tables (a quarter of the floats' bytes).
      ab_stage input-bytes-bf16 floats --float-batches bytes "" "--sizes 128,200 --batches 50,150 --precision bf16"
      ab_stage input-bytes-fp32 floats --float-batches bytes "" "--sizes 128,200 --batches 50,150"
      # Where the batches start: the step's page-locked buffers, or staged.
      ab_stage input-bf16 staged --staged-batches pinned "" "--sizes 128,200 --batches 150 --precision bf16"
      ab_stage input-fp32 staged --staged-batches pinned "" "--sizes 128,200 --batches 150" ;;
    conv1)
      # conv1's own routes (fused forward, weight gradient from the pooled
      # gradient; each timed against cuDNN when the step is built) against
      # cuDNN's forward and the direct kernel: epochs and peak memory.
      ab_stage conv1-fp32 plain --plain-conv1 routes "" "--sizes 128,200 --batches 10,50,150"
      ab_stage conv1-bf16 plain --plain-conv1 routes "" "--sizes 200 --batches 50,150 --precision bf16" ;;
    wgrad)
      # conv2's and conv3's weight gradients from the pooled gradient (each
      # timed against cuDNN when the step is built) against cuDNN's.
      ab_stage wgrad-fp32 cudnn --cudnn-later-wgrad routes "" "--sizes 128,200 --batches 10,50,150"
      ab_stage wgrad-bf16 cudnn --cudnn-later-wgrad routes "" "--sizes 200 --batches 50,150 --precision bf16" ;;
    dgrad)
      # conv2's and conv3's data gradients from the pooled gradient (each
      # timed against cuDNN when the step is built; with the weight gradients
      # from it too, no conv-output gradient at all) against cuDNN's.
      ab_stage dgrad-fp32 cudnndata --cudnn-later-dgrad routes "" "--sizes 128,200 --batches 10,50,150"
      ab_stage dgrad-bf16 cudnndata --cudnn-later-dgrad routes "" "--sizes 200 --batches 50,150 --precision bf16" ;;
    kernels)
      # All our kernels' routes together (conv1's fused forward and pooled
      # weight gradient, the later blocks' weight and data gradients from the
      # pooled gradient; each timed against cuDNN when the step is built)
      # against cuDNN's convolutions in every block: what they give at once.
      ab_stage kernels-fp32 cudnnconvs "--plain-conv1 --cudnn-later-wgrad --cudnn-later-dgrad" \
        routes "" "--sizes 128,200 --batches 10,50,150"
      ab_stage kernels-bf16 cudnnconvs "--plain-conv1 --cudnn-later-wgrad --cudnn-later-dgrad" \
        routes "" "--sizes 200 --batches 50,150 --precision bf16" ;;
    algos)
      # The fp32 points the side by side lost (2026-12-04): timed algorithms?
      ab_stage algos heuristics "" timed --cudnn-benchmark "--sizes 128,200 --batches 50,150" ;;
    memcheck)
      [[ -d "$data" ]] || "$histocnn" synth -o "$data" --images 24 --seed 1 > /dev/null
      run_stage memcheck 240 compute-sanitizer --tool memcheck --error-exitcode 9 \
        "$histocnn" train --data "$data" --device cuda --size 64 --batch 20 --epochs 1 \
        --crops-benign 60 --crops-malignant 60 --no-selftest --no-progress -o "$out/memcheck-run"
      # The bf16 step (its own kernels' instantiations, the casts, the weight
      # copy, batch norm) on the accurate preset's network.
      write_accurate_spec
      run_stage memcheck-bf16 180 compute-sanitizer --tool memcheck --error-exitcode 9 \
        "$histocnn" train --data "$data" --device cuda --size 64 --batch 20 --epochs 1 \
        --precision bf16 --model "$out/accurate.spec" --crops-benign 60 --crops-malignant 60 \
        --no-selftest --no-progress -o "$out/memcheck-bf16-run"
      # Every route of our kernels (conv1's, the later blocks' weight and data
      # gradients), each forced once by the self-test
      # (training runs only the ones that win their contests).
      run_stage memcheck-selftest 300 compute-sanitizer --tool memcheck --error-exitcode 9 \
        "$histocnn" selftest --device cuda --size 48 --batch 6 --steps 1 ;;
    oom)
      [[ -d "$data" ]] || "$histocnn" synth -o "$data" --images 24 --seed 1 > /dev/null
      run_stage oom 120 "$histocnn" train --data "$data" --device cuda --size 200 --batch 1800 \
        --gpu-mem-limit 4GB --allocator pool --epochs 1 --no-progress -o "$out/oom-run" ;;
    sbs) run_stage sbs 420 "$bench/gpu_side_by_side.sh" "$out/side-by-side" --rounds 2 ;;
    compile)
      run_stage compile 540 "$bench/gpu_side_by_side.sh" "$out/compile" --rounds 1 \
        --sizes 128,200 --batches 50,150 --compile --time-limit 300 ;;
    study)
      # Issue 20's measurement and Fig. 6 from one run of the study script, as a
      # user runs it: every thread count and allocator of a batch in turn, twice.
      # Cut short, the batches whose rounds ended are in study/results.jsonl
      # (packed): `histocnn report` makes the tables from it anywhere.
      study_script="$here/scripts/gpu-study.sh"
      [[ -x $study_script ]] || study_script="$here/gpu-study.sh"  # the source tree's scripts/
      run_stage study 540 env SKIP_BUILD=1 HISTOCNN="$histocnn" THREADS=16,8,4,2,1 \
        ALLOCATORS=pool,plan+graphs ENGINES=histocnn "$study_script" "$(realpath -m "$out")/study" \
        --sizes 200 --batches 10,50 --epochs 1 --warmup 1 --rounds 2 ;;
    cpu)
      # Two epochs per process: the first pays the fresh process's page faults
      # (the issue's 4.5x was measured on first epochs: --warmup 0), the
      # second is the steady state. epoch_seconds_all holds both. --ceilings:
      # sgemm GFLOP/s and memory bandwidth on the same cores, first.
      mkdir -p "$out/cpu-scaling"
      start=$SECONDS
      for t in 16 8 4 2 1; do
        (( t <= $(nproc) )) || continue
        timeout 150 "$histocnn" bench --device cpu --sizes 200 --batches 50,10 --threads "$t" \
          --warmup 0 --epochs 2 --profile-layers --ceilings --json "$out/cpu-scaling/t$t.json" \
          >> "$out/cpu.txt" 2>&1 || echo "cpu: $t threads failed" | tee -a "$out/cpu.txt"
      done
      cpu_levers "$out/cpu-scaling" "$out/cpu.txt" now onednnwgrad onednndgrad onednnfwd direct \
        slices4m before workers onednnpool
      # With the side by side in the same OUT (stage sbs): the paper's Fig. 6 too.
      fig6=(); [[ -d "$out/side-by-side/raw" ]] && fig6=(--gpu "$out/side-by-side/raw")
      python3 "$bench/cpu_scaling_report.py" "$out/cpu-scaling" "${fig6[@]}" \
        > "$out/cpu-scaling.md" 2>&1 ||
        echo "cpu: the report failed (cpu-scaling.md says why)" | tee -a "$out/cpu.txt"
      summary+=("$(printf '%-9s %4d s' cpu $((SECONDS - start)))") ;;
    accuracy)
      # Each training precision's accuracy in the GlaS cross-validation
      # (issue 18, item 4), the recipe measured on the CPU in glas-cv.md.
      glas=${HISTOCNN_GLAS_DIR:-}
      if [[ -z $glas || ! -f $glas/Grade.csv ]]; then
        echo "accuracy: skipped: HISTOCNN_GLAS_DIR='$glas' holds no GlaS folder (Grade.csv)" |
          tee -a "$out/gpu-check.log"
        summary+=("accuracy  skipped (no GlaS folder)")
        continue
      fi
      cv_script="$here/scripts/cross_validate.sh"
      [[ -x $cv_script ]] || cv_script="$here/cross_validate.sh"  # the source tree's scripts/
      read -r -a accuracy_flags <<< "${ACCURACY_FLAGS:---preset accurate}"
      for precision in ${ACCURACY_PRECISIONS:-fp32 bf16 tf32}; do
        run_stage "accuracy-$precision" 300 env HISTOCNN="$histocnn" "$cv_script" "$glas" \
          "$out/accuracy/$precision" "${ACCURACY_FOLDS:-5}" "${accuracy_flags[@]}" \
          --device cuda --precision "$precision" --no-selftest
        python3 "$bench/gpu_accuracy_report.py" "$out/accuracy" > "$out/accuracy.md" 2>&1
      done ;;
    levers)
      # The defaults against the CPU step's three newest levers alone (measured on no
      # 16-core machine yet), for a visit whose thread sweep comes from the study stage.
      start=$SECONDS
      cpu_levers "$out/cpu-levers" "$out/levers.txt" now onednnwgrad onednndgrad onednnfwd
      python3 "$bench/cpu_scaling_report.py" "$out/cpu-levers" > "$out/cpu-levers.md" 2>&1 ||
        echo "levers: the report failed (cpu-levers.md says why)" | tee -a "$out/levers.txt"
      summary+=("$(printf '%-9s %4d s' levers $((SECONDS - start)))") ;;
    slide)
      # Without gnuplot (the GPU image of 2026-12-04 had none) histocnn slide
      # writes each map's overlay and script, warns once, and scores as ever.
      [[ -d "$data" ]] || "$histocnn" synth -o "$data" --images 24 --seed 1 > /dev/null
      run_stage slide-make 300 "$histocnn" synth --slide "$out/wsi.tif" \
        --slide-size 50000x50000 --pieces 4
      run_stage slide-model 120 "$histocnn" train --data "$data" --device cuda --size 64 \
        --crop 256 --batch 50 --epochs 3 --no-selftest --no-progress -o "$out/slide-model"
      readers=$(( $(nproc) > 2 ? $(nproc) - 2 : 1 ))
      for round in 1 2; do
        for dev in cuda cpu; do
          run_stage "slide-$dev-r$round" 300 "$histocnn" slide "$out/slide-model/model.safetensors" \
            "$out/wsi.tif" -o "$out/slide-$dev-r$round" --device "$dev" --readers "$readers" \
            --batch 256 --no-progress
          grep -h '"tiles_per_s"\|"read_s"\|"infer_s"\|"wait_s"' \
            "$out/slide-$dev-r$round/wsi/summary.json" >> "$out/slide.txt" 2>&1
        done
      done ;;
    *) echo "gpu-check: unknown stage $stage" >&2 ;;
  esac
done
echo "gpu-check: stages"
printf '  %s\n' "${summary[@]}" | tee -a "$out/gpu-check.log"
