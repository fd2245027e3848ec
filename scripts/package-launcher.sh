#!/usr/bin/env bash
# bin/histocnn of the relocatable package (scripts/package.sh): runs
# libexec/histocnn with the CUDA libraries it needs put on the loader's path,
# or libexec/histocnn-cpu, saying why, where they cannot be found.
#
# Where it looks for each library libexec/cuda-libs.txt names (cuDNN 9,
# cuBLAS, cuBLASLt), first match wins:
#   1. HISTOCNN_CUDA_LIBS (folders, ':' separated)
#   2. LD_LIBRARY_PATH and the system's loader cache (ldconfig -p)
#   3. CUDA_HOME, then /usr/local/cuda*: lib64, lib, targets/x86_64-linux/lib
#   4. an installed PyTorch's NVIDIA wheels: <site-packages>/nvidia/*/lib
#      ($PYTHON or python3 tells where its site-packages are)
# HISTOCNN_VERBOSE=1 prints the choice; HISTOCNN_FORCE_CPU=1 takes the CPU build.
set -u
args=("$@")
here=$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/.." && pwd)
say() { [[ "${HISTOCNN_VERBOSE:-0}" == 1 ]] && echo "histocnn launcher: $*" >&2; return 0; }
run_cpu() {
  export HISTOCNN_CPU_ONLY_REASON="$1"
  say "CPU-only build: $1"
  exec -a "$0" "$here/libexec/histocnn-cpu" "${args[@]}"
}
needed=()
[[ -r "$here/libexec/cuda-libs.txt" ]] && mapfile -t needed < "$here/libexec/cuda-libs.txt"
if [[ ${#needed[@]} -eq 0 ]]; then
  run_cpu "this package was built without the CUDA backend"
fi
[[ "${HISTOCNN_FORCE_CPU:-0}" == 1 ]] && run_cpu "HISTOCNN_FORCE_CPU=1"


candidates=()
IFS=: read -ra given <<< "${HISTOCNN_CUDA_LIBS:-}"
candidates+=("${given[@]}")
IFS=: read -ra loader <<< "${LD_LIBRARY_PATH:-}"
candidates+=("${loader[@]}")
ldconfig=$(command -v ldconfig || echo /sbin/ldconfig)
if [[ -x "$ldconfig" ]]; then
  while read -r path; do candidates+=("$(dirname "$path")"); done < <(
    "$ldconfig" -p 2>/dev/null | awk -F'=> ' '/libcudnn|libcublas/ { print $2 }')
fi
for root in ${CUDA_HOME:+"$CUDA_HOME"} /usr/local/cuda /usr/local/cuda-*; do
  candidates+=("$root/lib64" "$root/lib" "$root/targets/x86_64-linux/lib")
done
wheel_dirs=()
python=${PYTHON:-python3}
if command -v "$python" > /dev/null 2>&1; then
  while read -r site; do
    for lib in "$site"/nvidia/*/lib; do [[ -d "$lib" ]] && wheel_dirs+=("$lib"); done
  done < <("$python" -c 'import site, sys
print("\n".join(dict.fromkeys(site.getsitepackages() + [site.getusersitepackages()] + sys.path)))' 2>/dev/null)
fi
candidates+=("${wheel_dirs[@]}")

path=""
missing=()
for soname in "${needed[@]}"; do
  found=""
  for dir in "${candidates[@]}"; do
    [[ -n "$dir" && -e "$dir/$soname" ]] && { found=$dir; break; }
  done
  if [[ -z "$found" ]]; then missing+=("$soname"); continue; fi
  say "$soname: $found"
  [[ ":$path:" == *":$found:"* ]] || path="${path:+$path:}$found"
done
if [[ ${#missing[@]} -gt 0 ]]; then
  run_cpu "${missing[*]} not found (HISTOCNN_CUDA_LIBS, the loader's path, CUDA_HOME, /usr/local/cuda*, PyTorch's nvidia wheels)"
fi
# A wheel's sibling folders (nvrtc, nvjitlink) hold what cuDNN loads at run
# time: with a library from a wheel, every nvidia/*/lib of its site-packages.
IFS=: read -ra chosen_dirs <<< "$path"
for chosen in "${chosen_dirs[@]}"; do
  nvidia=$(dirname "$(dirname "$chosen")")
  [[ $(basename "$nvidia") == nvidia ]] || continue
  for dir in "${wheel_dirs[@]}"; do
    [[ $dir == "$nvidia"/* && ":$path:" != *":$dir:"* ]] && path="$path:$dir"
  done
done
export LD_LIBRARY_PATH="$path${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
say "CUDA build, LD_LIBRARY_PATH=$LD_LIBRARY_PATH"
exec -a "$0" "$here/libexec/histocnn" "$@"
