#!/usr/bin/env bash
# The paper's GPU study in one command, on a machine with an NVIDIA GPU:
#   sizes 32..200 x batches 10..150 x
#   histocnn on cuda with each allocator: direct (cudaMalloc per tensor = the
#     paper's cnmem 0), pool (cnmem 1), async (cudaMallocAsync), plan (one
#     arena), plan+graphs (the step as a CUDA graph);
#   PyTorch on the same GPU (eager, its caching allocator) where torch.cuda is
#     importable; the CPU rows at 1..16 threads (those this machine has), each
#     thread count's cores measured first (`histocnn ceilings`: sgemm, memory
#     triad), so that the report reads the CPU scaling against theirs;
# then the report: the paper's Figs. 3-6, the t_cpu / t_gpu table and the CPU
# scaling table.
#
#   scripts/gpu-study.sh [OUTPUT] [extra `histocnn study` flags, e.g. --data /path/to/glas]
#
# It first runs `histocnn selftest --device cuda`: a GPU that fails it is not
# measured. Without a GPU the CUDA points are recorded as not run, with the
# reason, and the CPU rows and the report are still made. Resumable: run it
# again after an interruption. Environment: THREADS (default 1,2,4,8,16),
# ALLOCATORS, ENGINES (default histocnn,pytorch), SKIP_BUILD=1 and
# HISTOCNN=path to use an existing binary. From the relocatable package
# (scripts/package.sh ships it as scripts/gpu-study.sh) it builds nothing and
# runs the package's bin/histocnn.
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-runs/gpu-study}"
shift || true
packaged=0
[[ -x bin/histocnn && ! -f CMakeLists.txt ]] && packaged=1
if [[ "${SKIP_BUILD:-0}" != 1 && $packaged == 0 ]]; then
  scripts/install-deps.sh --bench
  scripts/build.sh
fi
default_histocnn=build/histocnn
[[ $packaged == 1 ]] && default_histocnn=bin/histocnn
histocnn="${HISTOCNN:-$default_histocnn}"

if "$histocnn" selftest --device cuda >"${TMPDIR:-/tmp}/histocnn-selftest.$$" 2>&1; then
  echo "self-test on the GPU: PASS"
else
  status=$?
  cat "${TMPDIR:-/tmp}/histocnn-selftest.$$"
  if grep -q "FAIL" "${TMPDIR:-/tmp}/histocnn-selftest.$$"; then
    rm -f "${TMPDIR:-/tmp}/histocnn-selftest.$$"
    echo "gpu-study: the self-test failed on this GPU; not measuring it" >&2
    exit "$status"
  fi
  echo "gpu-study: no usable GPU here: the CUDA points will be recorded as not run"
fi
rm -f "${TMPDIR:-/tmp}/histocnn-selftest.$$"

# CPU thread counts this machine can honour.
cores=$(nproc)
threads=""
IFS=, read -ra wanted <<<"${THREADS:-1,2,4,8,16}"
for t in "${wanted[@]}"; do
  if ((t <= cores)); then threads+="${threads:+,}$t"; fi
done

"$histocnn" study -o "$out" --devices cpu,cuda --threads "$threads" \
  --allocators "${ALLOCATORS:-direct,pool,async,plan,plan+graphs}" \
  --engines "${ENGINES:-histocnn,pytorch}" --ceilings --no-report "$@"
"$histocnn" report "$out"
echo "gpu-study: report in $out/report/report.html"
