#!/usr/bin/env bash
# Builds the relocatable package a cluster user untars and runs, no root, no
# install step, no LD_LIBRARY_PATH:
#
#   dist/histocnn-VERSION-linux-x86_64.tar.gz
#     bin/histocnn            launcher: finds cuDNN 9 + cuBLAS (below), runs the right build
#     libexec/histocnn        the CUDA build (RPATH $ORIGIN/../lib; cudart static)
#     libexec/histocnn-cpu    the CPU-only build, for nodes without cuDNN/cuBLAS
#     lib/                    oneDNN, OpenMP, libstdc++ and every other non-system library
#     share/dicom.dic         dcmtk's data dictionary (DICOM slides), for nodes without dcmtk
#     bench/                  gpu_side_by_side.sh and its PyTorch engine
#     gpu-check.sh            one visit to a GPU machine: self-test, memcheck, side by side, CPU scaling
#
# The CUDA driver, cuDNN and cuBLAS are not shipped (hundreds of MB, and the
# node's driver must match): the launcher takes them from HISTOCNN_CUDA_LIBS,
# the system's loader path, CUDA_HOME or /usr/local/cuda*, or an installed
# PyTorch's NVIDIA wheels (nvidia/cudnn/lib, nvidia/cublas/lib), in that order.
#
#   scripts/package.sh [OUTPUT_DIR]        (default dist/; PACKAGE_COMPRESSION=xz: .tar.xz)
# CUDA architectures: HISTOCNN_CUDA_ARCHITECTURES (default: CMake's, 75/80/90 + PTX).
set -euo pipefail
cd "$(dirname "$0")/.."
dist=$(mkdir -p "${1:-dist}" && cd "${1:-dist}" && pwd)
version=$(sed -n 's/^project(histocnn VERSION \([0-9.]*\).*/\1/p' CMakeLists.txt)
name="histocnn-$version-linux-x86_64"
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
root="$stage/$name"
mkdir -p "$root/bin" "$root/libexec" "$root/lib" "$root/share" "$root/bench"

launcher=()
if command -v ccache > /dev/null; then
  export CCACHE_BASEDIR="$PWD"
  launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache -DCMAKE_CUDA_COMPILER_LAUNCHER=ccache)
fi
build() {  # BUILD_DIR INSTALLED_NAME [cmake flags]
  local dir=$1 installed=$2; shift 2
  cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=Release -DHISTOCNN_RELOCATABLE=ON -DHISTOCNN_UNITY=ON \
    -DHISTOCNN_BENCHMARKS=OFF -DHISTOCNN_MPI=OFF "${launcher[@]}" "$@" > /dev/null
  cmake --build "$dir" -j"$(nproc)" --target histocnn > /dev/null
  cmake --install "$dir" --prefix "$stage/install-$installed" > /dev/null
  mv "$stage/install-$installed/bin/histocnn" "$root/libexec/$installed"
}
arch=()
[[ -n "${HISTOCNN_CUDA_ARCHITECTURES:-}" ]] && arch=(-DHISTOCNN_CUDA_ARCHITECTURES="$HISTOCNN_CUDA_ARCHITECTURES")
build "${PACKAGE_BUILD_DIR:-build-package}" histocnn "${arch[@]}"
build "${PACKAGE_BUILD_DIR:-build-package}-cpu" histocnn-cpu -DHISTOCNN_CUDA=OFF
readelf -d "$root/libexec/histocnn" | grep -q 'cudnn' ||
  echo "package: note: this build has no CUDA backend (no CUDA toolkit/cuDNN found)" >&2

# Every library the loader resolves that is neither the C library's family
# (always the node's own) nor the CUDA stack the launcher finds.
system='^(linux-vdso|ld-linux|libc|libm|libdl|librt|libpthread|libresolv|libutil)\.so'
cuda='^(libcuda|libcudnn|libcublas|libcublasLt|libnccl|libnvrtc|libcudart)[.-]'
for binary in "$root/libexec/histocnn" "$root/libexec/histocnn-cpu"; do
  ldd "$binary" | awk '/=> \// { print $1, $3 }' | while read -r soname path; do
    [[ $soname =~ $system || $soname =~ $cuda ]] && continue
    [[ -e "$root/lib/$soname" ]] || cp -L "$path" "$root/lib/$soname"
  done
done

# dcmtk reads its data dictionary from a file (src/data/dcmtk_setup.h).
cp /usr/share/libdcmtk17/dicom.dic "$root/share/dicom.dic"

# The CUDA libraries the launcher must find (none: a CPU-only package).
readelf -d "$root/libexec/histocnn" | sed -n 's/.*Shared library: \[\(.*\)\]/\1/p' |
  grep -E "$cuda" > "$root/libexec/cuda-libs.txt" || true
cp scripts/package-launcher.sh "$root/bin/histocnn"
chmod +x "$root/bin/histocnn"
cp bench/gpu_side_by_side.sh bench/pytorch_gpu_bench.py bench/pytorch_train.py \
  bench/gpu_side_by_side_report.py bench/gpu_ab_report.py bench/cpu_scaling_report.py \
  bench/gpu_accuracy_report.py "$root/bench/"
cp scripts/gpu-check.sh "$root/"
mkdir -p "$root/scripts"
cp scripts/gpu-study.sh scripts/cross_validate.sh "$root/scripts/"
git rev-parse --short=12 HEAD > "$root/REVISION" 2>/dev/null || echo unknown > "$root/REVISION"
cat > "$root/README.txt" <<TEXT
histocnn $version ($(cat "$root/REVISION")), relocatable build for x86-64 Linux.

  bin/histocnn --help
  bin/histocnn selftest --device cpu
  bin/histocnn selftest --device cuda       # on a GPU node
  bench/gpu_side_by_side.sh OUT             # histocnn vs PyTorch on this GPU (~5 min)
  ./gpu-check.sh OUT                        # self-test, memcheck, side by side, CPU scaling (~9 min)
  ./gpu-check.sh --pack A.tar.gz OUT        # the same, OUT's text results kept in A.tar.gz
  scripts/gpu-study.sh OUT [--sizes 200 ...] # the paper's study and its report (Figs. 3-6, t_cpu/t_gpu)

bin/histocnn finds cuDNN 9 and cuBLAS in HISTOCNN_CUDA_LIBS (folders, ':'
separated), the system's loader path, CUDA_HOME or /usr/local/cuda*, or an
installed PyTorch's NVIDIA wheels; without them it runs the CPU-only build
and says why when asked for --device cuda. HISTOCNN_VERBOSE=1 prints its choice.
TEXT
# PACKAGE_COMPRESSION=xz: a .tar.xz (xz -9e), 0.6x the gzip tarball (where a
# transfer limit counts: the GPU visit's 64 MiB carry holds it beside the
# GlaS images; docs/results/gpu-h200.md, "The next visit").
case "${PACKAGE_COMPRESSION:-gz}" in
  gz) suffix=tar.gz flag=-z ;;
  xz) suffix=tar.xz flag=-J ;;
  *) echo "package: PACKAGE_COMPRESSION must be gz or xz" >&2; exit 2 ;;
esac
XZ_OPT=${XZ_OPT:--9e} tar -C "$stage" -c "$flag" -f "$dist/$name.$suffix.tmp" "$name"
mv "$dist/$name.$suffix.tmp" "$dist/$name.$suffix"
echo "$dist/$name.$suffix ($(du -h "$dist/$name.$suffix" | cut -f1))"
