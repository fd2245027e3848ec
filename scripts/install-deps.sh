#!/usr/bin/env bash
# Installs histocnn's build and test dependencies from Debian 12's packages.
#   scripts/install-deps.sh          build + tests
#   scripts/install-deps.sh --bench  also PyTorch (the side-by-side benchmark, the study's PyTorch engine)
set -euo pipefail
packages=(cmake g++ make pkg-config libdnnl-dev libstb-dev libcli11-dev nlohmann-json3-dev
          libgtest-dev libbenchmark-dev libtomlplusplus-dev gnuplot-nox clang libclang-rt-14-dev
          libopenmpi-dev openmpi-bin libopenslide-dev libtiff-dev libpng-dev libpugixml-dev libvips-tools ccache python3
          libdcmtk-dev libjpeg62-turbo-dev libopenjp2-7-dev python3-pydicom)
if [[ "${1:-}" == "--bench" ]]; then
  packages+=(python3-torch)
fi
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [[ ${#missing[@]} -gt 0 ]]; then
  sudo=""
  [[ $(id -u) -ne 0 ]] && sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi
