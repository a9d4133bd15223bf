#!/usr/bin/env bash
# kernel_ab.sh [-B BUILD] [--cpu N] CHANGED_DIR [kernel_ab options...]
#
# Times a change to the attention kernels against the tree's, both in one
# process (scripts/bench/kernel_ab.c says why and how). CHANGED_DIR holds
# changed copies of any files of src/kernels (attn.c, tile_gemm.c,
# vmath.h, ...); the files it lacks come from the tree. Copy B is the tree's
# src/kernels overlaid with them, copy A the tree's as it is. Both are
# compiled with -O3 -march=native, linked with BUILD's libringattn.a
# (default: build), and run pinned to core N (default: the last core).
# Options after CHANGED_DIR go to the program:
#   -L 4096 -H 4 -D 64   sequence length, heads, head dimension
#   -r 31                rounds (each times A and B back to back)
#   --causal --bwd       causal; time the backward (after each copy's forward)
#   --no-check           B may differ from A (a deliberately wrong B, to bound
#                        what a change could gain)
# Prints one table row: both rates, the median and quartiles of the rounds'
# time ratios B/A (below 1: B is faster), B's outputs against A's. Exit 1
# when B's outputs differ beyond the tests' tolerances (without --no-check),
# 2 on bad arguments or a failed build.
set -eu
SRC=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=build
CPU=$(($(nproc) - 1))
while [ $# -gt 0 ]; do
    case $1 in
    -B) BUILD=${2:?kernel_ab.sh: -B needs a build directory}; shift 2 ;;
    --cpu) CPU=${2:?kernel_ab.sh: --cpu needs a core number}; shift 2 ;;
    *) break ;;
    esac
done
[ $# -ge 1 ] || { echo "kernel_ab.sh: give the folder of changed kernel files (kernel_ab.sh [-B BUILD] [--cpu N] DIR [options])" >&2; exit 2; }
CHANGED=$1
shift
[ -d "$CHANGED" ] || { echo "kernel_ab.sh: $CHANGED is not a folder (give one that holds changed copies of src/kernels files)" >&2; exit 2; }
[[ $CPU =~ ^[0-9]{1,4}$ ]] && [ "$CPU" -lt "$(nproc)" ] ||
    { echo "kernel_ab.sh: --cpu '$CPU' is not a core number this process may use (0 to $(($(nproc) - 1)))" >&2; exit 2; }
case $BUILD in /*) ;; *) BUILD=$PWD/$BUILD ;; esac
LIB=$BUILD/src/libringattn.a
[ -f "$LIB" ] || { echo "kernel_ab.sh: no $LIB (build first: bash scripts/build.sh, or give -B BUILD)" >&2; exit 2; }
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
mkdir "$T/b"
cp "$SRC"/src/kernels/* "$T/b/"
n=0
for f in "$CHANGED"/*; do
    [ -f "$f" ] || continue
    cp "$f" "$T/b/"
    n=$((n + 1))
done
[ "$n" -gt 0 ] || { echo "kernel_ab.sh: $CHANGED holds no files" >&2; exit 2; }
# the flags of the project's default build (src/meson.build, meson.build)
CFLAGS=(-std=c11 -O3 -march=native -fopenmp -D_GNU_SOURCE -DNDEBUG -Wall -Wextra -I"$SRC/src" -I"$SRC/include"
    $(pkg-config --cflags openblas))
LIBS=($(pkg-config --libs openblas ompi-c hwloc) -lm)
BLAS_DIR=$(pkg-config --variable=libdir openblas)
cc() { gcc "${CFLAGS[@]}" "$@" || { echo "kernel_ab.sh: the build failed (above)" >&2; exit 2; }; }
for f in attn tile_gemm; do
    cc -DRA_ISA_SUFFIX=_ab_a -c "$SRC/src/kernels/$f.c" -o "$T/a_$f.o"
    cc -DRA_ISA_SUFFIX=_ab_b -c "$T/b/$f.c" -o "$T/b_$f.o"
done
cc "$SRC/scripts/bench/kernel_ab.c" "$T"/a_*.o "$T"/b_*.o "$LIB" "${LIBS[@]}" -Wl,-rpath,"$BLAS_DIR" -o "$T/kernel_ab"
echo "# kernel_ab: A = $SRC/src/kernels, B = A with $n file(s) of $CHANGED; core $CPU; B/A < 1: B faster"
taskset -c "$CPU" "$T/kernel_ab" "$@"
