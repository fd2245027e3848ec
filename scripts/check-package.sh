#!/usr/bin/env bash
# Checks the relocatable package as a cluster user would meet it: untarred into
# an empty folder, run with a bare environment (no LD_LIBRARY_PATH, no
# install step, no gnuplot on PATH, as on the GPU nodes' images):
#   * every library the builds load that is not the C library's family or the
#     CUDA stack resolves inside the package's lib/;
#   * bin/histocnn --help and selftest --device cpu pass;
#   * a DICOM slide is written and read with the package's own dcmtk
#     dictionary (dcmtk's default one made unreachable);
#   * the CPU-only build (forced) runs and --device cuda says why it cannot;
#   * scripts/gpu-study.sh runs from the package (its bin/histocnn, no build)
#     and writes a study and its report;
#   * gpu-check.sh's accuracy stage runs from the package (cross-validation
#     and its report; histocnn on the CPU behind the GPU flags);
#   * a slide is scored, its maps written as overlays and scripts;
#   * where a GPU is usable, selftest --device cuda passes.
#
#   scripts/check-package.sh dist/histocnn-VERSION-linux-x86_64.tar.gz (or .tar.xz)
set -euo pipefail
tarball=$(readlink -f "${1:?usage: scripts/check-package.sh TARBALL}")
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
tar -C "$work" -xf "$tarball"  # .tar.gz or .tar.xz
root=$(readlink -f "$(echo "$work"/histocnn-*)")
# A GPU node's image often has no gnuplot (the 2026-12-04 one had none): PATH
# is a folder of links to the system's programs but gnuplot.
path="$work/path"
mkdir -p "$path"
for dir in /usr/local/bin /usr/bin /bin; do
  for program in "$dir"/*; do
    name=${program##*/}
    [[ $name == gnuplot* || -e $path/$name || -L $path/$name ]] || ln -s "$program" "$path/$name"
  done
done
bare=(env -i HOME="$work" PATH="$path" TMPDIR="$work")
fail() { echo "check-package: $*" >&2; exit 1; }

system='^(linux-vdso|ld-linux|libc|libm|libdl|librt|libpthread|libresolv|libutil)\.so'
cuda='^(libcuda|libcudnn|libcublas|libcublasLt|libnccl|libnvrtc|libcudart)[.-]'
for binary in "$root/libexec/histocnn" "$root/libexec/histocnn-cpu"; do
  while read -r soname path; do
    [[ $soname =~ $system || $soname =~ $cuda ]] && continue
    path=$(readlink -f "$path")
    [[ $path == "$root/lib/"* ]] || fail "$(basename "$binary") loads $soname from $path, not from the package"
  done < <("${bare[@]}" ldd "$binary" | awk '/=>/ { print $1, $3 }')
done
echo "check-package: every non-system library comes from the package"

"${bare[@]}" "$root/bin/histocnn" --help | grep -q "Usage" || fail "--help printed no usage"
"${bare[@]}" "$root/bin/histocnn" selftest --device cpu > "$work/selftest.txt" 2>&1 ||
  { cat "$work/selftest.txt"; fail "selftest --device cpu failed"; }
grep -q "PASS" "$work/selftest.txt" || fail "selftest --device cpu printed no PASS"
echo "check-package: --help and selftest --device cpu pass from $(basename "$root")"

# A node without dcmtk: its dictionary is not where dcmtk looks.
nodict=("${bare[@]}" DCMDICTPATH="$work/no-such-dicom.dic")
"${nodict[@]}" "$root/bin/histocnn" synth --slide "$work/dicom/case" --slide-format dicom \
  --slide-size 1024x768 > "$work/dicom.txt" 2>&1 || { cat "$work/dicom.txt"; fail "synth --slide-format dicom failed"; }
printf 'slide,label\ncase,benign\n' > "$work/dicom-labels.csv"
"${nodict[@]}" "$root/bin/histocnn" tiles "$work/dicom" --slide-labels "$work/dicom-labels.csv" \
  -o "$work/dicom-tiles" > "$work/dicom.txt" 2>&1 || { cat "$work/dicom.txt"; fail "tiles from a DICOM slide failed"; }
grep -q "benign written" "$work/dicom.txt" || { cat "$work/dicom.txt"; fail "no tiles from the DICOM slide"; }
echo "check-package: a DICOM slide is written and read with the package's dictionary"

"${bare[@]}" HISTOCNN_FORCE_CPU=1 "$root/bin/histocnn" selftest --device cpu > /dev/null 2>&1 ||
  fail "the CPU-only build failed its self-test"
if "${bare[@]}" HISTOCNN_FORCE_CPU=1 "$root/bin/histocnn" selftest --device cuda > "$work/cuda.txt" 2>&1; then
  fail "the CPU-only build accepted --device cuda"
fi
grep -q "CPU-only build here: HISTOCNN_FORCE_CPU=1" "$work/cuda.txt" ||
  { cat "$work/cuda.txt"; fail "--device cuda in the CPU-only build did not say why"; }
echo "check-package: the CPU-only build runs and says why --device cuda cannot"

# The study script as a GPU node runs it from the package (a tiny grid; the
# CUDA points are recorded as not run where no GPU answers).
"${bare[@]}" THREADS=1 ENGINES=histocnn ALLOCATORS=plan "$root/scripts/gpu-study.sh" \
  "$work/study" --sizes 32 --batches 10 --epochs 1 --warmup 0 --crop 96 --crops-benign 20 \
  --crops-malignant 20 > "$work/study.txt" 2>&1 || { cat "$work/study.txt"; fail "scripts/gpu-study.sh failed"; }
grep -q '"status":"ok"' "$work/study/results.jsonl" && [[ -f $work/study/report/report.md ]] ||
  { cat "$work/study.txt"; fail "scripts/gpu-study.sh wrote no measurement or no report"; }
echo "check-package: scripts/gpu-study.sh runs from the package and writes its report"

# gpu-check.sh's accuracy stage from the package (its cross_validate.sh and
# report), with histocnn on the CPU behind the GPU flags where no GPU is.
cat > "$work/stand-in" <<STANDIN
#!/usr/bin/env bash
args=()
while [[ \$# -gt 0 ]]; do
  case "\$1" in --device) args+=(--device cpu); shift ;; --precision) shift ;; *) args+=("\$1") ;; esac
  shift
done
exec "$root/bin/histocnn" "\${args[@]}"
STANDIN
chmod +x "$work/stand-in"
"${bare[@]}" "$root/bin/histocnn" synth -o "$work/glas" --images 16 --seed 3 > /dev/null
"${bare[@]}" HISTOCNN="$work/stand-in" HISTOCNN_GLAS_DIR="$work/glas" ACCURACY_FOLDS=2 \
  ACCURACY_PRECISIONS=fp32 ACCURACY_FLAGS="--size 32 --crop 64 --epochs 1 --batch 8 \
  --crops-benign 10 --crops-malignant 10 --threads 1" "$root/gpu-check.sh" "$work/check" accuracy \
  > "$work/accuracy.txt" 2>&1 || true  # the report's check below says what went wrong
grep -q '| fp32 |' "$work/check/accuracy.md" ||
  { cat "$work/accuracy.txt" "$work/check/accuracy.md"; fail "gpu-check.sh accuracy wrote no report"; }
echo "check-package: gpu-check.sh's accuracy stage runs from the package and reports"

# A slide scored where gnuplot is missing: the scores, each map's overlay and
# its script (gpu-check.sh's slide stage on such an image).
"${bare[@]}" "$root/bin/histocnn" synth --slide "$work/wsi.tif" --slide-size 2000x1500 \
  --pieces 1 > /dev/null
"${bare[@]}" "$root/bin/histocnn" slide "$work/check/accuracy/fp32/fold0/model.safetensors" \
  "$work/wsi.tif" -o "$work/slides" --no-progress > "$work/slide.txt" 2>&1 ||
  { cat "$work/slide.txt"; fail "slide failed without gnuplot"; }
[[ -s $work/slides/wsi/tiles.csv && -s $work/slides/wsi/heatmap-overlay.png &&
   -s $work/slides/wsi/heatmap.png.gp ]] ||
  { cat "$work/slide.txt"; fail "slide without gnuplot wrote no scores or no map overlay"; }
echo "check-package: a slide is scored without gnuplot (its maps as overlays and scripts)"

if command -v nvidia-smi > /dev/null && nvidia-smi -L > /dev/null 2>&1; then
  "${bare[@]}" "$root/bin/histocnn" selftest --device cuda || fail "selftest --device cuda failed"
  echo "check-package: selftest --device cuda passes"
else
  echo "check-package: no GPU here: selftest --device cuda not run"
fi
