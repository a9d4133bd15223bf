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
# Compiled copies are kept in BUILD/kernel_ab-cache (the last 20; safe to
# remove). Prints one table row: both rates, the median and quartiles of the rounds'
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
# A copy's objects are kept in BUILD/kernel_ab-cache under a hash of what
# they are made of (the copy's kernel files, every header of the tree, the
# compiler and its flags): the next run with the same copy links them
# instead of compiling again (A, and an unchanged B, are the same each run).
# The 20 entries used last are kept.
CACHE=$BUILD/kernel_ab-cache
HEADERS=$(find "$SRC/include" "$SRC/src" -name '*.h' -print0 | LC_ALL=C sort -z | xargs -0 cat | sha256sum | cut -c1-64)
COMPILER=$(gcc --version | head -1)
objects() { # DIR SUFFIX OUT-PREFIX: DIR's attn.c and tile_gemm.c as OUT-PREFIX{attn,tile_gemm}.o
    local dir=$1 suffix=$2 out=$3 key f
    key=$( { cat "$dir"/*; echo "$HEADERS $COMPILER ${CFLAGS[*]} $suffix"; } | sha256sum | cut -c1-32)
    if [ ! -f "$CACHE/$key/done" ]; then
        local tmp
        if ! { mkdir -p "$CACHE" && tmp=$(mktemp -d "$CACHE/.new.XXXXXX"); } 2>/dev/null; then
            # a build directory this user cannot write: compile without keeping
            for f in attn tile_gemm; do cc -DRA_ISA_SUFFIX="$suffix" -c "$dir/$f.c" -o "$out$f.o"; done
            return
        fi
        for f in attn tile_gemm; do cc -DRA_ISA_SUFFIX="$suffix" -c "$dir/$f.c" -o "$tmp/$f.o"; done
        touch "$tmp/done"
        # (another run may have made it meanwhile: keep theirs)
        mv -T "$tmp" "$CACHE/$key" 2>/dev/null || rm -rf "$tmp"
    fi
    touch "$CACHE/$key"
    for f in attn tile_gemm; do cp "$CACHE/$key/$f.o" "$out$f.o"; done
}
objects "$SRC/src/kernels" _ab_a "$T/a_"
objects "$T/b" _ab_b "$T/b_"
# the 20 entries used last, and no half-made one of a run stopped an hour ago;
# only names this script makes (32 hex digits): a cache that is a symlink to
# some other directory keeps everything else in it
if [ -d "$CACHE" ]; then
    # shellcheck disable=SC2012
    ls -t "$CACHE" | grep -xE '[0-9a-f]{32}' | tail -n +21 | while read -r old; do rm -rf "${CACHE:?}/$old"; done
    find "$CACHE" -maxdepth 1 -name '.new.*' -mmin +60 -exec rm -rf {} + 2>/dev/null || true
fi
cc "$SRC/scripts/bench/kernel_ab.c" "$T"/a_*.o "$T"/b_*.o "$LIB" "${LIBS[@]}" -Wl,-rpath,"$BLAS_DIR" -o "$T/kernel_ab"
echo "# kernel_ab: A = $SRC/src/kernels, B = A with $n file(s) of $CHANGED; core $CPU; B/A < 1: B faster"
taskset -c "$CPU" "$T/kernel_ab" "$@"
