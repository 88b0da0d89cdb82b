#!/usr/bin/env bash
# Installs everything longctx needs on Debian 12 (run as root), then configures and builds it.
#   ./setup.sh            install packages, build into ./build
#   SKIP_APT=1 ./setup.sh build only
set -euo pipefail
BUILD_DIR=${BUILD_DIR:-build}
BUILD_TYPE=${BUILD_TYPE:-RelWithDebInfo}
PACKAGES=(
  build-essential cmake pkg-config git
  openmpi-bin libopenmpi-dev                 # MPI
  libarchive-dev libxxhash-dev libzstd-dev   # inputs, hashing, compression
  libjson-c-dev libutf8proc-dev              # JSON, Unicode tables
  libcairo2-dev                              # plots (SVG and PNG)
  libscalapack-openmpi-dev libopenblas-dev   # linear algebra
  clang clang-format zstd libarchive-tools   # fuzzing, formatting, tools
  python3-numpy sentencepiece python3-sentencepiece   # independent references in tests
  slurm-wlm munge                            # the Slurm tests run a real single-node Slurm
)
cd "$(dirname "$0")"
if [ "${SKIP_APT:-0}" != 1 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${PACKAGES[@]}" >/dev/null
fi
cmake -S . -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE="$BUILD_TYPE" ${CMAKE_ARGS:-} >/dev/null
cmake --build "$BUILD_DIR" -j "$(nproc)"
