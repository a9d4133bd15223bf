#!/usr/bin/env bash
# install-deps.sh [--tests] - the Debian 12 packages ringattn builds and tests with
# (Slurm, for the slurm suite, is installed by scripts/slurm/local-slurm.sh).
# libopenblas-openmp-dev: the OpenMP build of OpenBLAS, which meson.build
# links (one thread pool per rank; see docs/design.md §10).
# Installs only what is missing (apt-get update first), as root or via sudo.
set -euo pipefail
pkgs=(build-essential pkg-config meson ninja-build openmpi-bin libopenmpi-dev
      libopenblas-dev libopenblas-openmp-dev libhwloc-dev libcmocka-dev)
# --tests: what the test suites need too - the fault tests (pgrep, strace), the
# namespace cluster (ip, tc), valgrind, clang with libFuzzer and OpenMP (libomp),
# the system Python with NumPy (the float64 Llama reference, tests/ref/),
# SentencePiece (scripts/data/; the cli test tokens is skipped without it) and
# matplotlib (the plot scripts; the cli test plots is skipped without it)
case "${1:-}:$#" in
  :0 | --tests:1) ;;
  *) echo "usage: install-deps.sh [--tests] (got: $*)" >&2; exit 2 ;;
esac
if [ "${1:-}" = "--tests" ]; then
  pkgs+=(procps iproute2 strace valgrind clang libclang-rt-14-dev libomp-dev python3 python3-numpy python3-sentencepiece
         python3-matplotlib)
fi
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all packages present"
  exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
echo "install-deps: installing ${missing[*]}"
$SUDO apt-get update -q
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q "${missing[@]}"
