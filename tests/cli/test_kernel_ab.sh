#!/usr/bin/env bash
# test_kernel_ab.sh RINGATTN MPIRUN - scripts/bench/kernel_ab.sh: bad
# arguments refused by name (exit 2) before anything is built (sizes that
# need over 8 GiB before any allocation); an unchanged
# copy B runs forward and backward, prints its row and passes its check
# (outputs bitwise A's: the same code); a B whose softmax rescale is off by
# 0.1 % fails the check (exit 1, FAIL) and passes with --no-check (exit 0);
# an object cache that is a file, a dangling symlink, a FIFO, a link to an
# unwritable directory or to a folder of other files is left alone.
set -u
# before lib_cli.sh moves into its temporary directory
AB=$(cd "$(dirname "$0")/../../scripts/bench" && pwd)/kernel_ab.sh
KERNELS=$(cd "$(dirname "$0")/../../src/kernels" && pwd)
. "$(dirname "$0")/lib_cli.sh" "$1" "$2"
BUILD=$(dirname "$(dirname "$RA")") # the build tree of RA (BUILD/src/ringattn)

mkdir same wrong empty
cp "$KERNELS/attn.c" same/
sed 's/float alpha = ra_exp1_neg(m\[i\] - m_new);/float alpha = 1.001f * ra_exp1_neg(m[i] - m_new);/' \
    "$KERNELS/attn.c" >wrong/attn.c
report "the wrong copy differs from the tree's" "$(cmp -s "$KERNELS/attn.c" wrong/attn.c && echo "sed changed nothing")"

# refused: ARGS... | a word the message must hold
for c in "|give the folder" "nosuchdir|is not a folder" "empty|holds no files" "-B nosuchbuild same|nosuchbuild/src/libringattn.a" \
         "--cpu x same|not a core number" "--cpu 9999 same|not a core number this process may use" "same -L x|-L needs" "same -L 65536 -H 64 -D 256|at most 8" "same --bogus|unknown option"; do
    args=${c%%|*} word=${c#*|}
    # shellcheck disable=SC2086
    timeout 120 bash "$AB" -B "$BUILD" $args >out 2>err </dev/null
    rc=$?
    report "kernel_ab.sh $args: refused naming it" \
        "$([ "$rc" -eq 2 ] || echo "exit $rc, want 2; ")$(grep -qF -- "$word" err || echo "no '$word' in: $(head -1 err)")"
done

# row ARGS...: run, then check the exit code and the row's check column
row() { # WANT_RC WANT_CHECK ARGS...
    local want_rc=$1 want_check=$2
    shift 2
    timeout 300 bash "$AB" -B "$BUILD" "$@" >out 2>err </dev/null
    local rc=$? why=""
    [ "$rc" -eq "$want_rc" ] || why+="exit $rc, want $want_rc: $(tail -2 err); "
    awk -v c="$want_check" '$1 ~ /^(fwd|bwd)$/ && $NF == c && $9 > 0 { f = 1 } END { exit !f }' out ||
        why+="no row with check $want_check and a ratio: $(tail -1 out); "
    echo "$why"
}
report "an unchanged copy, forward: OK, exit 0" "$(row 0 OK same -L 512 -H 2 -r 3)"
report "an unchanged copy, causal backward: OK, exit 0" "$(row 0 OK same -L 512 -H 2 -r 3 --causal --bwd)"
why=$(row 1 FAIL wrong -L 1024 -H 2 -r 3) # two key tiles: the rescale runs
awk '$1 == "fwd" && $10 + 0 > 1e-5 { f = 1 } END { exit !f }' out || why+="err_O not above 1e-5: $(tail -1 out); "
report "a copy 0.1 % off: FAIL, exit 1, err_O above 1e-5" "$why"
report "a copy 0.1 % off with --no-check: exit 0" "$(row 0 - wrong -L 1024 -H 2 -r 3 --no-check)"
# the object cache (BUILD/kernel_ab-cache) where it cannot be a folder: a
# file, a dangling symlink, a FIFO. Each run compiles without keeping, prints
# its row, and leaves the thing as it was. (A build tree of its own: the
# library linked in, so the real build's cache is not touched.)
mkdir -p fake/src && ln -s "$BUILD/src/libringattn.a" fake/src/libringattn.a
echo keep >cachefile
mkdir other && for i in $(seq 25); do echo "$i" >"other/keep$i"; done # (not hex: the cache's own names are)
for kind in file symlink fifo unwritable other; do
    rm -rf fake/kernel_ab-cache
    case $kind in
    file) cp cachefile fake/kernel_ab-cache ;;
    symlink) ln -s "$T/nowhere/cache" fake/kernel_ab-cache ;;
    fifo) mkfifo fake/kernel_ab-cache ;;
    unwritable) ln -s /proc/self fake/kernel_ab-cache ;; # a directory even root cannot write in
    other) ln -s "$T/other" fake/kernel_ab-cache ;;       # a folder of someone else's files
    esac
    why=$(BUILD=$T/fake row 0 OK same -L 256 -H 1 -r 2)
    report "kernel_ab-cache ($kind): runs, the cache or what it points to left as it was" "$why$(
        case $kind in
        file) cmp -s cachefile fake/kernel_ab-cache || echo 'the file changed' ;;
        symlink) [ -L fake/kernel_ab-cache ] && [ ! -e "$T/nowhere" ] || echo 'the link or its target changed' ;;
        fifo) [ -p fake/kernel_ab-cache ] || echo 'the FIFO is gone' ;;
        unwritable) [ "$(readlink fake/kernel_ab-cache)" = /proc/self ] || echo 'the link changed' ;;
        other) [ "$(ls other | grep -c '^keep')" -eq 25 ] || echo "the folder's files: $(ls other | grep -c '^keep') of 25 left" ;;
        esac)"
done
finish
