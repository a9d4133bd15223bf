#!/usr/bin/env bash
# test_cli.sh RINGATTN MPIRUN - end-to-end tests of the ringattn command line.
#
# Runs ringattn under MPIRUN the way a user would:
#   1. gen + attn at P=1 and P=3 in every layout, causal and not, with --lse
#      and gradients, 3-D and 4-D, GQA, segment ids, L not divisible by P;
#      every output of a P=3 run is checked against P=1 with `compare`;
#   2. malformed or mismatched .npy inputs (an empty one with a huge
#      extent too);  3. bad options (generate's --prompt-dtype without a
#      --prompt-tokens FILE among them);
#   4. output safety (no clobbered --out, no *.tmp left behind);
#   5. --help of each command;  6. `bench attn` and `bench train` smoke runs.
#
# Every invocation runs under `timeout`, so a hang is a failure (124), not a
# stuck CI job. Failing cases run each rank through a small wrapper that
# records that rank's own exit status and then exits 0: the test sees that
# EVERY rank failed (mpirun's status only says that some rank did), and a
# rank left hanging is not hidden by mpirun killing the job.
#
# Prints "ok: ..." / "FAIL: ..." lines and "N passed, M failed"; the exit
# status is non-zero on any failure; VERBOSE=1 also shows the command and
# output of passing cases. Standalone: tests/cli/test_cli.sh
# build/src/ringattn mpirun (Open MPI; the run-as-root and oversubscribe
# variables are set in lib_cli.sh, with the helpers, as in meson's test
# environment). Hostile inputs (clashing outputs, NaN, FIFOs, a full
# stdout) are in test_hostile_attn.sh.
set -u
if [ $# -ne 2 ]; then
    echo "usage: $0 RINGATTN MPIRUN" >&2
    exit 2
fi
ROOT=$(cd "$(dirname "$0")/../.." && pwd) # before lib_cli.sh moves into its temporary directory
. "$(dirname "$0")/lib_cli.sh" "$@"

# ---- 1. success paths -------------------------------------------------------

mkdir A B res bad  # A3 is left to gen, which creates its --dir
# A: 3-D [H=2, L=37, D=16] (37 is not a multiple of 3)
mpi 2 gen --dir A --H 2 --L 37 --D 16 --seed 3
rc=$?
c=$(grep -c '^gen: wrote' out)
report "gen 3-D H=2 L=37 D=16 on 2 ranks" "$(status $rc)$([ "$c" -eq 1 ] || echo "gen line printed $c times, expected once")"
# gen writes the same bytes whatever the number of ranks
mpi 3 gen --dir A3 --H 2 --L 37 --D 16 --seed 3
rc=$?
why=$(status $rc)
for x in q k v dout; do cmp -s "A/$x.npy" "A3/$x.npy" || why+="$x.npy differs between P=2 and P=3; "; done
[ "$(header A/q.npy)" = "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 37, 16), }" ] ||
    why+="unexpected q.npy header: $(header A/q.npy); "
report "gen output is independent of the number of ranks" "$why"
# B: 4-D [B=2, H=4, L=41, D=16], GQA Hkv=2, 3 segments per sequence
mpi 2 gen --dir B --B 2 --H 4 --Hkv 2 --L 41 --D 16 --segments 3 --seed 5
rc=$?
why=$(status $rc)
[ "$(header B/k.npy)" = "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 2, 41, 16), }" ] ||
    why+="unexpected k.npy header: $(header B/k.npy); "
[ "$(header B/seg.npy)" = "{'descr': '<i4', 'fortran_order': False, 'shape': (2, 41), }" ] ||
    why+="unexpected seg.npy header: $(header B/seg.npy); "
report "gen 4-D B=2 H=4 Hkv=2 L=41 --segments 3" "$why"
# S: int64 segment ids [L] for A, segments that are not runs of tokens
seg=()
for ((i = 0; i < 37; i++)); do seg+=($(((i / 5) % 3))); done
npy_i64 S.npy "(37,)" "${seg[@]}"

for causal in "" --causal; do
    cn=${causal:+causal}
    cn=${cn:-bidirectional}
    full "attn 3-D P=1 $cn" "A$cn" 1 default A $causal
    # every output is shaped like its input
    why=
    [ "$(header "res/A$cn-1-default.o.npy")" = "$(header A/q.npy)" ] || why+="O header $(header "res/A$cn-1-default.o.npy"); "
    [ "$(header "res/A$cn-1-default.dq.npy")" = "$(header A/q.npy)" ] || why+="dQ header; "
    [ "$(header "res/A$cn-1-default.dk.npy")" = "$(header A/k.npy)" ] || why+="dK header; "
    [ "$(header "res/A$cn-1-default.dv.npy")" = "$(header A/v.npy)" ] || why+="dV header; "
    [ "$(header "res/A$cn-1-default.lse.npy")" = "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 37), }" ] ||
        why+="LSE header $(header "res/A$cn-1-default.lse.npy"); "
    report "attn 3-D $cn: O, dQ like Q; dK, dV like K; LSE [H, L]" "$why"
    for lay in contiguous zigzag striped; do
        full "attn 3-D P=3 $lay $cn" "A$cn" 3 $lay A $causal
        match "attn 3-D P=3 $lay $cn: O LSE dQ dK dV equal P=1" "res/A$cn-3-$lay" "res/A$cn-1-default"
    done

    full "attn 4-D GQA segments P=1 $cn" "B$cn" 1 default B --segments B/seg.npy $causal
    expect "attn 4-D $cn: LSE is [B, H, L]" "LSE header $(header "res/B$cn-1-default.lse.npy")" \
        [ "$(header "res/B$cn-1-default.lse.npy")" = "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 4, 41), }" ]
    for lay in contiguous zigzag striped; do
        full "attn 4-D GQA segments P=3 $lay $cn" "B$cn" 3 $lay B --segments B/seg.npy $causal
        match "attn 4-D GQA segments P=3 $lay $cn: O LSE dQ dK dV equal P=1" "res/B$cn-3-$lay" "res/B$cn-1-default"
    done
done

# int64 segment ids [L], shared by the heads
full "attn int64 segments [L] P=1 causal" Scausal 1 default A --segments S.npy --causal
full "attn int64 segments [L] P=3 striped causal" Scausal 3 striped A --segments S.npy --causal
match "attn int64 segments [L] P=3 striped causal: equal P=1" res/Scausal-3-striped res/Scausal-1-default
full "attn int64 segments [L] P=1" Sbi 1 default A --segments S.npy
full "attn int64 segments [L] P=3 zigzag" Sbi 3 zigzag A --segments S.npy
match "attn int64 segments [L] P=3 zigzag: equal P=1" res/Sbi-3-zigzag res/Sbi-1-default

# the masks matter, and compare notices a difference
why=
compare res/Acausal-1-default.o.npy res/Abidirectional-1-default.o.npy
rc=$?
[ $rc -eq 1 ] || why+="causal vs bidirectional O: compare exited $rc, expected 1; "
grep -q 'differs' err || why+="no 'differs' message on stderr; "
grep -q 'FAIL$' out || why+="compare line does not end in FAIL; "
compare res/Scausal-1-default.o.npy res/Acausal-1-default.o.npy
rc=$?
[ $rc -eq 1 ] || why+="with vs without segments: compare exited $rc, expected 1; "
report "compare exits 1 when causal, bidirectional and segmented results differ" "$why"

# forward only, default layout (zigzag when causal), no --lse
attn_ok "attn P=3 causal forward only" 3 --q A/q.npy --k A/k.npy --v A/v.npy --out res/fwd.o.npy --causal
expect "attn --causal defaults to the zigzag layout" "summary: $(head -1 out)" grep -q 'P=3 zigzag causal' out
match "attn P=3 causal forward only: O equals P=1" res/fwd res/Acausal-1-default o
# --scale and a small --chunk
attn_ok "attn P=1 --scale 0.3" 1 --q A/q.npy --k A/k.npy --v A/v.npy --out res/sc1.o.npy --lse res/sc1.lse.npy --scale 0.3
attn_ok "attn P=3 --scale 0.3 --chunk 4 striped" 3 --q A/q.npy --k A/k.npy --v A/v.npy \
    --out res/sc3.o.npy --lse res/sc3.lse.npy --scale 0.3 --chunk 4 --layout striped
match "attn P=3 --scale 0.3 --chunk 4: O and LSE equal P=1" res/sc3 res/sc1 "o lse"

# ---- 2. .npy errors ----------------------------------------------------------

cp A/q.npy bad/magic.npy && printf 'X' | dd of=bad/magic.npy bs=1 conv=notrunc status=none
: >bad/empty.npy
cp A/v.npy bad/fortran.npy && patch bad/fortran.npy "False" "True "
cp A/q.npy bad/f2.npy && patch bad/f2.npy "<f4" "<f2"
cp A/k.npy bad/bigend.npy && patch bad/bigend.npy "<f4" ">f4"
cp A/q.npy bad/int.npy && patch bad/int.npy "<f4" "<i4"
cp A/k.npy bad/trunc.npy && truncate -s -5 bad/trunc.npy
cp A/v.npy bad/half.npy && truncate -s 2000 bad/half.npy
cp A/k.npy bad/k36.npy && patch bad/k36.npy "37," "36,"
cp A/v.npy bad/v1.npy && patch bad/v1.npy "(2," "(1,"
cp A/q.npy bad/q1.npy && patch bad/q1.npy "(2," "(1,"
cp A/dout.npy bad/dout36.npy && patch bad/dout36.npy "37," "36,"
cp B/seg.npy bad/segf4.npy && patch bad/segf4.npy "<i4" "<f4"
big=("${seg[@]}")
big[20]=4294967296 # outside int32: striped over 3 ranks, token 20 is rank 2's, 36 rank 0's
big[36]=-4294967296
npy_i64 bad/segbig.npy "(37,)" "${big[@]}"
QKV=(--q A/q.npy --k A/k.npy --v A/v.npy)

fails "wrong magic" 2 "bad/magic.npy" "magic" -- attn --q bad/magic.npy --k A/k.npy --v A/v.npy --out o.npy
fails "wrong magic (P=1)" 1 "bad/magic.npy" "magic" -- attn --q A/q.npy --k bad/magic.npy --v A/v.npy --out o.npy
fails "empty file" 2 "bad/empty.npy" "magic|empty|truncated" -- attn --q A/q.npy --k bad/empty.npy --v A/v.npy --out o.npy
fails "Fortran order" 2 "bad/fortran.npy" "fortran" -- attn --q A/q.npy --k A/k.npy --v bad/fortran.npy --out o.npy
fails "dtype <f2" 2 "bad/f2.npy" "dtype" "f2" -- attn --q bad/f2.npy --k A/k.npy --v A/v.npy --out o.npy
fails "dtype >f4 (big-endian)" 2 "bad/bigend.npy" "dtype" "big-endian|>f4" -- attn --q A/q.npy --k bad/bigend.npy --v A/v.npy --out o.npy
fails "int32 file as --q" 2 "bad/int.npy" "int32" "float" -- attn --q bad/int.npy --k A/k.npy --v A/v.npy --out o.npy
fails "truncated data" 2 "bad/trunc.npy" "truncated" -- attn --q A/q.npy --k bad/trunc.npy --v A/v.npy --out o.npy
fails "truncated data (P=3)" 3 "bad/half.npy" "truncated" -- attn --q A/q.npy --k A/k.npy --v bad/half.npy --out o.npy
fails "K with a different L" 2 "bad/k36.npy" "agree|match|differ" -- attn --q A/q.npy --k bad/k36.npy --v A/v.npy --out o.npy
fails "V shaped unlike K" 2 "bad/v1.npy" "shape" -- attn --q A/q.npy --k A/k.npy --v bad/v1.npy --out o.npy
fails "Hkv does not divide H" 2 "A/k.npy|bad/q1.npy" "divide" -- attn --q bad/q1.npy --k A/k.npy --v A/v.npy --out o.npy
fails "4-D K with 3-D Q" 2 "B/k.npy" "dimension" -- attn --q A/q.npy --k B/k.npy --v B/v.npy --out o.npy
fails "dout shaped unlike Q" 2 "bad/dout36.npy" "shape" -- attn "${QKV[@]}" --out o.npy \
    --dout bad/dout36.npy --dq dq.npy --dk dk.npy --dv dv.npy
# named by the command and option, as the other input errors (it said "B/seg.npy: segment ids ...")
fails "segments of the wrong length" 2 "error: attn: --segments B/seg.npy: segment ids must be" -- \
    attn "${QKV[@]}" --out o.npy --segments B/seg.npy
fails "float32 segments" 2 "error: attn: --segments bad/segf4.npy" "int32|int64" -- \
    attn --q B/q.npy --k B/k.npy --v B/v.npy --out o.npy --segments bad/segf4.npy
# a head's refusal names --head (it said "combiner-logsparse is causal only ...")
fails "combiner-logsparse without --causal" 2 \
    "error: attn: --head combiner-logsparse: causal only \(its groups tile \[0, i\)\): add --causal" -- \
    attn "${QKV[@]}" --out o.npy --head combiner-logsparse
# the first element out of range is named whatever P and the layout (each rank named its own first)
fails "int64 segment ids out of int32 range (P=1): the first named" 1 "bad/segbig.npy: element 20 is 4294967296" \
    "int32" -- attn "${QKV[@]}" --out o.npy --segments bad/segbig.npy
fails "int64 segment ids out of int32 range (P=3 striped): the same first named" 3 \
    "bad/segbig.npy: element 20 is 4294967296" -- attn "${QKV[@]}" --out o.npy --segments bad/segbig.npy \
    --layout striped
fails "missing file" 2 "nosuch.npy" "no such file|cannot open" -- attn --q A/q.npy --k A/k.npy --v nosuch.npy --out o.npy
fails "missing file (P=1)" 1 "nosuch.npy" "no such file|cannot open" -- attn --q nosuch.npy --k A/k.npy --v A/v.npy --out o.npy
fails "directory as a file" 2 "res: " "regular file|directory" -- attn --q A/q.npy --k res --v A/v.npy --out o.npy
# an empty array with a huge extent (numpy makes np.zeros((2**40, 2, 0))): empty, not "too many
# elements", and its 2^40 heads are not read as an int (they were 0)
printf '\x93NUMPY\x01\x00\x76\x00%-117s\n' "{'descr': '<f4', 'fortran_order': False, 'shape': (1099511627776, 2, 0), }" \
    >bad/huge0.npy
fails "an empty Q of shape [2^40, 2, 0]: an empty dimension" 2 \
    "bad/huge0.npy: empty dimension in \[1099511627776, 2, 0\]" -- \
    attn --q bad/huge0.npy --k bad/huge0.npy --v bad/huge0.npy --out o.npy
# past numpy's limit (the non-zero extents' bytes overflow int64: np.load refuses it as too big)
printf '\x93NUMPY\x01\x00\x76\x00%-117s\n' "{'descr': '<f4', 'fortran_order': False, 'shape': (4611686018427387904, 2, 0), }" \
    >bad/huge0big.npy
fails "an empty Q of shape [2^62, 2, 0]: too big, as numpy says" 2 \
    "bad/huge0big.npy: shape \[4611686018427387904, 2, 0\] is empty, but the byte count of its non-zero extents overflows int64" -- \
    attn --q bad/huge0big.npy --k bad/huge0big.npy --v bad/huge0big.npy --out o.npy

# ---- 3. option errors --------------------------------------------------------

mkdir L2
mpi 2 gen --dir L2 --H 2 --L 2 --D 16
report "gen L=2 on 2 ranks" "$(status $?)"

# a set without segments replaces one with them: the old seg.npy goes too (it stayed,
# and attn --segments read it beside the new q, k, v: a shape error or wrong masks)
mpi 2 gen --dir SG --H 2 --L 32 --D 16 --segments 3 && mpi 2 gen --dir SG --H 2 --L 16 --D 16
why=$(status $?)
[ -e SG/seg.npy ] && why+="the earlier set's seg.npy stayed; "
grep -q '^gen: removed SG/seg.npy, the segments of the set replaced' out || why+="not said: $(cat out); "
report "gen without --segments over a set with them: the old seg.npy removed, said" "$why"
mkdir SG/seg.npy
fails "... a directory where seg.npy was: refused by kind, kept" 1 "gen: --dir SG: SG/seg.npy is a directory" -- \
    gen --dir SG --H 2 --L 16 --D 16
report "... the directory kept" "$([ -d SG/seg.npy ] || echo removed)"
rmdir SG/seg.npy && mkfifo SG/seg.npy
TMO=20 fails "... a FIFO there: refused by kind at once, kept" 1 "gen: --dir SG: SG/seg.npy is a FIFO" -- \
    gen --dir SG --H 2 --L 16 --D 16
report "... the FIFO kept" "$([ -p SG/seg.npy ] || echo removed)"
# a link there: the link goes, never its target
rm -f SG/seg.npy && echo keep >segtarget && ln -s ../segtarget SG/seg.npy
mpi 1 gen --dir SG --H 2 --L 16 --D 16
report "... a link there: the link removed, its target kept" \
    "$(status $?)$([ -e SG/seg.npy ] || [ -L SG/seg.npy ] && echo 'link left; ')$([ "$(cat segtarget)" = keep ] || echo 'target changed')"
# one that cannot be removed (a file mounted over it: EBUSY): the new set stands, a warning
# names it (root only)
if [ "$(id -u)" = 0 ] && touch SG/seg.npy && mount --bind segtarget SG/seg.npy 2>/dev/null; then
    mpi 1 gen --dir SG --H 2 --L 16 --D 16
    why=$(status $?)
    grep -q "warning: gen: SG/seg.npy is an earlier set's segments and could not be removed" err ||
        why+="no warning: $(head -c 200 err); "
    umount SG/seg.npy
    report "... one that cannot be removed: the set written, a warning naming it" "$why"
fi
rm -rf SG segtarget

fails "missing --q" 2 "--q" "required|missing" -- attn --k A/k.npy --v A/v.npy --out o.npy
fails "missing --out (P=3)" 3 "--out" "required|missing" -- attn "${QKV[@]}"
fails "unknown option" 2 "--frobnicate" "unknown" -- attn "${QKV[@]}" --out o.npy --frobnicate
fails "option without its value" 2 "--scale" "needs a value" -- attn "${QKV[@]}" --out o.npy --scale
fails "stray argument" 2 "stray.npy" "unexpected" -- attn "${QKV[@]}" --out o.npy stray.npy
# "-" is not standard output here: refused (it wrote a file named "-")
fails "--out -: refused, not a file named '-'" 2 "attn: --out -: would write a file named '-', not standard output" -- \
    attn "${QKV[@]}" --out -
report "... and no file '-' written" "$([ ! -e ./- ] || echo "a file '-' exists")"
# so is a directory given as "-" (gen --dir - made a directory named "-"), before it is made
fails "gen --dir -: refused, not a directory named '-'" 2 \
    "error: gen: --dir -: would write into a directory named '-', not to standard output; give \./- " -- gen --dir - --L 8
report "... exit status 1 on every rank, and no '-' made" \
    "$(for r in rc/*; do [ "$(<"$r")" = 1 ] || echo "${r#rc/} exited $(<"$r"); "; done
       [ ! -e ./- ] || echo "'-' exists")"
fails "--out followed by another option" 2 "attn: --out needs a value, but is followed by the option --lse" -- \
    attn "${QKV[@]}" --out --lse l.npy
fails "--out ending in /" 2 "--out o.npy/: ends with '/'; give a file name" -- attn "${QKV[@]}" --out o.npy/
# /proc and /sys files say size 0, then have content: refused, not read as empty
fails "a /proc file as an input" 1 "--data /proc/self/status: is a /proc or /sys file" -- cipher --data /proc/self/status
# an option with a value given twice: refused (the last one winning would be unseen);
# --set repeats (in order, the last value of a key wins), a flag may
fails "--out given twice" 2 "--out is given twice \('o\.npy', then 'p\.npy'\); give it once" -- \
    attn "${QKV[@]}" --out o.npy --out p.npy
printf '[train]\nsteps = 1\n' >one.ini
fails "--config given twice (train)" 1 "train: --config is given twice \('one\.ini', then 'one\.ini'\)" -- \
    train --config one.ini --config one.ini
fails "-n given twice (bench attn, short form)" 1 "bench attn: -n is given twice \('2', then '3'\)" -- \
    bench attn -n 2 -n3
mpi 2 attn "${QKV[@]}" --out twice.npy --causal --causal
report "a flag given twice is fine (--causal --causal)" "$(status $?)"
fails "unknown --layout" 2 "layout" "diagonal" -- attn "${QKV[@]}" --out o.npy --layout diagonal
fails "--scale not a number" 2 "--scale" "abc" "number" -- attn "${QKV[@]}" --out o.npy --scale abc
fails "--scale 0" 2 "--scale" "0" -- attn "${QKV[@]}" --out o.npy --scale 0
fails "--chunk 0" 2 "--chunk" "range" -- attn "${QKV[@]}" --out o.npy --chunk 0
fails "--dout without --dq" 2 "--dout" "--dq" -- attn "${QKV[@]}" --out o.npy --dout A/dout.npy --dk dk.npy --dv dv.npy
fails "--dq without --dout" 2 "--dq" "--dout" -- attn "${QKV[@]}" --out o.npy --dq dq.npy
fails "empty --out" 2 "--out" -- attn "${QKV[@]}" --out ""
fails "empty --q" 2 "--q" "empty" -- attn --q "" --k A/k.npy --v A/v.npy --out o.npy
fails "--out and --lse the same file" 2 "--out" "--lse" "same file" -- attn "${QKV[@]}" --out o.npy --lse o.npy
fails "--dk and --dv the same file" 2 "--dk" "--dv" "same file" -- attn "${QKV[@]}" --out o.npy --dout A/dout.npy --dq dq.npy --dk g.npy --dv g.npy
fails "L shorter than the ranks (L=2, P=3)" 3 "L2/q.npy" "shorter|ranks" -- attn --q L2/q.npy --k L2/k.npy --v L2/v.npy --out o.npy
fails "unknown command" 2 "frobnicate" "unknown command" -- frobnicate --q A/q.npy
fails "gen without --dir" 2 "error: gen: --dir is required" -- gen --L 64
fails "gen L shorter than the ranks (P=3)" 3 "--L" "ranks" -- gen --dir L2 --L 2
fails "gen --Hkv not dividing --H" 2 "--Hkv" "divide" -- gen --dir L2 --L 8 --H 4 --Hkv 3
fails "compare with one file" 2 "compare" "two" -- compare A/q.npy
fails "compare of different shapes" 2 "B/q.npy" "shape" -- compare A/q.npy B/q.npy
fails "bench: unknown benchmark" 2 "frob" "unknown" -- bench frob
fails "bench attn -b not a size" 2 "bench attn: -b" "size" -- bench attn -b abc -e 128 -n 1 -w 0 -c 0 -H 2 -D 16
fails "bench attn -e smaller than -b" 2 "bench attn: -e 128 is smaller than -b 256" -- bench attn -b 256 -e 128 -n 1 -w 0 -c 0 -H 2 -D 16
# a sweep whose largest L cannot fit: refused before the first row, not after hours of
# smaller rows (1K .. 1G) or when the OOM killer ends the job
fails "bench attn: a sweep up to L = 1G refused up front" 1 "bench attn: L = 1073741824 needs at least" \
    "GiB available" -- bench attn -b 1K -e 1G -n 1 -w 0 -c 0
# two ranks of one node, each needing 3/4 of the memory available: each rank's
# allocation alone would succeed; together they are refused
avail_kb=$(awk '/^MemAvailable:/ { print $2 }' /proc/meminfo)
if [ -n "$avail_kb" ]; then
    # bench attn's tensors at H=4, D=64, causal: about 8208 bytes per token of the rank
    L=$((avail_kb * 1024 * 3 / 4 / 8208 * 2))
    fails "bench attn: two ranks that together exceed the node's memory refused" 2 \
        "needs at least .* GiB for the 2 rank\(s\) on this node" -- bench attn -b "$L" -e "$L" -n 1 -w 0 -c 0
fi
# --trace naming the program itself (a copy here): refused, the program intact
cp "$RA" racopy
timeout 60 ./racopy bench attn -b 1K -e 1K -n 1 -w 0 -c 0 -H 2 -D 16 --trace racopy >out 2>err </dev/null
rc=$?
report "--trace naming the ringattn program refused, the program intact" \
    "$([ $rc -eq 1 ] && grep -q 'is the ringattn program itself' err && cmp -s racopy "$RA" || echo "exit $rc: $(cat err)")"
rm -f racopy
# -c 1 checks D <= 1024: refused with the options (it ran the first row's iterations first)
fails "bench attn -D 1025 with the check: refused before any row" 1 "bench attn: -c 1 checks D <= 1024 \(got -D 1025\)" \
    -- bench attn -D 1025 -H 1 -b 16 -e 16 -n 1 -w 0
mpi 1 bench attn -b 64 -e 64 -n 1 -w 0 -H 2 -D 16 --forward-only
report "bench attn --forward-only: err_O checked, err_dQ '-' (no dQ computed)" "$(status $?)$(awk '/^ +64 / {
    if ($(NF-4) == "-" || $(NF-3) != "-" || $NF != "OK") print "row: " $0 }' out)$(grep -cE '^ +64 ' out | grep -qx 1 || echo 'no row')"
fails "attn --scale 0x1p-3 (a hex float) refused" 1 "attn: --scale: '0x1p-3' is not a decimal number" -- \
    attn --q A/q.npy --k A/k.npy --v A/v.npy --out hexs.npy --scale 0x1p-3
fails "bench attn -t 0 (a thread count out of range)" 2 "-t" -- bench attn -t 1,0 -b 64 -e 64 -n 1 -w 0 -c 0
fails "bench attn -t 1,,2 (an empty item; was skipped)" 2 "-t" "empty item" -- bench attn -t 1,,2 -b 64 -e 64 -n 1 -w 0 -c 0
fails "bench attn -t with 17 thread counts" 1 "-t" "at most 16" -- bench attn -t 1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1 -b 64 -e 64
fails "bench attn -t with an empty list" 1 "-t" -- bench attn -t , -b 64 -e 64
# a bad option value is named after the command, as every other error is (it said
# "--precond: unknown value ..." alone)
fails "attn --precond x: attn names it" 2 "error: attn: --precond: unknown value 'x' \(known: " -- \
    attn "${QKV[@]}" --out o.npy --precond x
fails "attn --chunk x: attn names it" 1 "error: attn: --chunk: 'x' is not an integer" -- attn "${QKV[@]}" --out o.npy --chunk x
fails "gen --L x: gen names it" 1 "error: gen: --L: 'x' is not a size" -- gen --dir L3 --L x
fails "compare --tol -1: compare names it" 1 "error: compare: --tol: -1 must be >= 0" -- compare --tol -1 A/q.npy A/q.npy
fails "cipher --bits 2: cipher names it" 1 "error: cipher: --bits 2: 256 byte values need at least" -- \
    cipher --data A/q.npy --bits 2
fails "bench attn -H x: bench attn names it" 1 "error: bench attn: -H: 'x' is not an integer" -- bench attn -H x
fails "bench attn --head x: bench attn names it" 1 "error: bench attn: --head: unknown head 'x'" -- bench attn --head x
fails "bench train --set beyond 64: bench train names it" 1 "error: bench train: --set: at most 64" -- \
    bench train $(for i in $(seq 65); do printf -- '--set train.steps=1 '; done)
# --set's and the files' errors name the command too (they said "--set 'x.y=1': ...",
# "config nosuch.ini: ...", "--data nosuch.bin: ..." alone)
fails "bench train --set x.y=1: bench train names it" 1 "error: bench train: --set 'x\.y=1': unknown section" -- \
    bench train --set x.y=1
fails "bench train --config missing: bench train names it" 1 "error: bench train: config nosuch\.ini: cannot open" -- \
    bench train --config nosuch.ini
fails "cipher --data missing: cipher names it" 1 "error: cipher: --data nosuch\.bin: cannot open" -- cipher --data nosuch.bin
fails "cipher --data a directory: cipher names it" 2 "error: cipher: --data res: is a directory" -- cipher --data res
: >empty.bin # 256 counts of 0 and codes by ties alone were printed, exit 0
fails "cipher of an empty file: refused on every rank" 2 "error: cipher: --data empty.bin: the file is empty" -- \
    cipher --data empty.bin
# a long option with one dash is read as short options -c -h -e ...: the argument
# typed is named, with the option meant (it said "... missing value in 'eval'")
fails "eval -checkpoint: names '-checkpoint' and suggests --checkpoint" 1 \
    "error: eval: unknown option '-checkpoint': did you mean --checkpoint\?" -- eval -checkpoint ck
fails "gen -L 8: names '-L' and suggests --L" 1 "error: gen: unknown option '-L': did you mean --L\?" -- gen --dir L3 -L 8
fails "eval --checkpoint ck -x: names '-x'" 1 "error: eval: unknown option '-x'" -- \
    eval --checkpoint ck -x
# --config where the checkpoint is the config: said so (it was "unknown option")
for cmd in eval generate diag; do
    fails "$cmd --config: the checkpoint holds the config, --set changes keys" 1 \
        "error: $cmd: --config is not an option here: the checkpoint holds the config; change keys with --set" -- \
        $cmd --checkpoint ck --config c.ini
done
fails "export --config=c.ini: the checkpoint holds the config (no --set advice)" 1 \
    "error: export: --config is not an option here: the checkpoint holds the config \(see" -- \
    export --checkpoint ck --config=c.ini --out x
# a word starting -h is not the help (-hostile printed it and exited 0); a long option
# with one dash is caught before getopt reads its letters ("-c: 'ausal' is not an
# integer"); the global options are suggested too; a known option at the end without
# its value needs one (it was "unknown"), a flag given one takes none
fails "train -hostile: refused, not the help" 1 "error: train: unknown option '-hostile'" -- train -hostile
fails "bench reduce -hello: refused, not the help" 1 "error: bench reduce: unknown option '-hello'" -- \
    bench reduce -hello
fails "bench attn -head full: suggests --head" 1 "error: bench attn: unknown option '-head': did you mean --head\?" -- \
    bench attn -head full -b 1K -e 1K
fails "bench attn -causal: suggests --causal" 1 "error: bench attn: unknown option '-causal': did you mean --causal\?" -- \
    bench attn -causal
fails "plan -Hkv 2: suggests --Hkv" 1 "error: plan: unknown option '-Hkv': did you mean --Hkv\?" -- \
    plan --attn -n 1 -Hkv 2
fails "eval -verbose: suggests the global --verbose" 1 "error: eval: unknown option '-verbose': did you mean --verbose\?" -- \
    eval --checkpoint ck -verbose
fails "eval --batches at the end: needs a value" 1 "error: eval: --batches needs a value" -- eval --checkpoint ck --batches
fails "bench train -t at the end: needs a value" 1 "error: bench train: -t needs a value" -- bench train -t
fails "bench attn --causal=1: takes no value" 1 "error: bench attn: --causal takes no value" -- bench attn --causal=1
# an option of the other command names the option, not its value (it said "unexpected option 'ck'")
fails "import --checkpoint: names the option" 1 "error: import: unexpected option '--checkpoint'" -- \
    import --checkpoint ck --out x.ckpt
# gen names the one required option that is missing (it said "--dir and --L are required")
fails "gen --dir without --L: names --L alone" 1 "error: gen: --L is required" -- gen --dir L3
fails "gen without --dir or --L: names both" 1 "error: gen: --dir and --L are required" -- gen --H 2
# a size beyond the machine's memory is refused before anything is made (it asked
# malloc for 1 TiB, said so without "gen:", and left the empty directory)
fails "gen --L 1G --H 64 (16 TiB): refused up front" 1 "error: gen: --L 1073741824: q alone is" -- gen --dir gbig --L 1G --H 64
report "gen --L 1G --H 64 leaves no directory" "$([ ! -e gbig ] || echo 'gbig was made')"
# ... and into an existing directory: refused, the directory and its files kept
sha256sum A/*.npy >A.sums
fails "gen --L 1G --H 64 into A: refused" 1 "error: gen: --L 1073741824: q alone is" -- gen --dir A --L 1G --H 64
report "... A and its files kept" "$(sha256sum -c --quiet A.sums 2>&1)"
# --dir a FIFO, a file, a missing parent; an output in it a symlink: refused, nothing written
mkfifo gfifo && echo plain >gplain && mkdir -p gsym && echo keep >gtarget && ln -sf ../gtarget gsym/q.npy
TMO=20 fails "gen --dir a FIFO: refused at once" 1 "error: gen: --dir gfifo: exists and is not a directory" -- \
    gen --dir gfifo --L 8
fails "gen --dir a file: refused" 1 "error: gen: --dir gplain: exists and is not a directory" -- gen --dir gplain --L 8
fails "gen --dir with a missing parent: refused, nothing made" 1 "gen: --dir gnope/sub: cannot create it: its parent" -- \
    gen --dir gnope/sub --L 8
fails "gen with q.npy a symlink: refused" 1 "error: gen: output gsym/q.npy: is a symbolic link" -- gen --dir gsym --L 8
ln -s gnowhere gdang
fails "gen --dir a dangling symlink: named as one, nothing made" 1 \
    "error: gen: --dir gdang: it is a symbolic link to gnowhere, which does not exist" -- gen --dir gdang --L 8
[ -L gdang ] && [ ! -e gnowhere ] || bad "gen --dir a dangling symlink changed it or made its target"
report "... its target and the others untouched" \
    "$([ "$(cat gtarget)" = keep ] && [ "$(cat gplain)" = plain ] && [ -p gfifo ] && [ ! -e gnope ] &&
       [ "$(ls gsym)" = q.npy ] || echo "changed: $(cat gtarget gplain; ls gsym)")"

# without the wrapper: mpirun itself reports the failure (and does not hang)
mpi 2 attn --q A/q.npy --k bad/trunc.npy --v A/v.npy --out o.npy
rc=$?
report "mpirun exits non-zero when the ranks fail" "$(case $rc in 0) echo "mpirun exited 0" ;; 124) echo "timed out" ;; esac)"

# ---- 4. output safety ----------------------------------------------------------

printf 'precious, not an .npy file\n' >keep.ref
cp keep.ref keep.npy
fails "failed run (truncated K) with an existing --out" 2 "bad/trunc.npy" "truncated" -- \
    attn --q A/q.npy --k bad/trunc.npy --v A/v.npy --out keep.npy
expect "failed run leaves an existing --out byte-for-byte unchanged" "keep.npy was modified" cmp -s keep.npy keep.ref
fails "--out in a missing directory" 2 "nodir/o.npy" "does not exist" -- attn "${QKV[@]}" --out nodir/o.npy
fails "--out in a missing directory (P=3, with gradients)" 3 "nodir/o.npy" "does not exist" -- attn "${QKV[@]}" \
    --out nodir/o.npy --dout A/dout.npy --dq dq.npy --dk dk.npy --dv dv.npy
expect "failed run writes no output" "nodir/, dq.npy, dk.npy or dv.npy was created" absent nodir dq.npy dk.npy dv.npy
mkdir outdir && touch outdir/inside
fails "--out names an existing directory" 2 "outdir" "directory" -- attn "${QKV[@]}" --out outdir
expect "--out directory is left alone" "outdir/inside is gone" [ -f outdir/inside ]
cp keep.ref keep.npy
fails "unwritable --dq with an existing --out" 2 "nodir/dq.npy" "does not exist" -- attn "${QKV[@]}" \
    --out keep.npy --dout A/dout.npy --dq nodir/dq.npy --dk dk.npy --dv dv.npy
expect "failed run (unwritable --dq) leaves an existing --out unchanged" "keep.npy was replaced although the run failed" \
    cmp -s keep.npy keep.ref
# an output in /proc or /sys is refused as such (it said "directory '/proc/x' does not
# exist; create it first", or "cannot create files in '/proc/self': No such file")
fails "--out in a missing /proc directory" 2 "error: attn: --out /proc/x/o.npy: is in /proc or /sys" -- \
    attn "${QKV[@]}" --out /proc/x/o.npy
fails "--out in /proc/self" 2 "error: attn: --out /proc/self/o.npy: is in /proc or /sys" -- \
    attn "${QKV[@]}" --out /proc/self/o.npy
ln -sfn /proc/self lnproc
fails "--out in a directory that is a symlink into /proc" 2 "error: attn: --out lnproc/o.npy: is in /proc or /sys" -- \
    attn "${QKV[@]}" --out lnproc/o.npy
if [ "$(stat -f -c %T /sys 2>/dev/null)" = sysfs ]; then
    fails "--lse in /sys" 2 "error: attn: --lse /sys/l.npy: is in /proc or /sys" -- attn "${QKV[@]}" --out o.npy --lse /sys/l.npy
    fails "gen --dir in /sys" 1 "error: gen: --dir /sys/ra-gen: is in /proc or /sys" -- gen --dir /sys/ra-gen --L 8
fi
# a directory that is there but cannot be reached is not "missing" (it said
# "directory '/proc/1/cwd' does not exist; create it first"): a mode-000
# directory for a user, another process's /proc/PID/cwd for a root without
# CAP_SYS_PTRACE; skipped where neither is refused
mkdir -p locked/sub && chmod 000 locked
noacc=
if ! stat locked/sub >/dev/null 2>&1; then noacc=locked/sub
elif ! stat /proc/1/cwd/ >/dev/null 2>&1 && [ -e /proc/1 ]; then noacc=/proc/1/cwd
fi
if [ -n "$noacc" ]; then
    fails "--out in a directory that cannot be accessed: said so, not 'does not exist'" 1 \
        "error: attn: --out $noacc/o\.npy: cannot access directory '$noacc': permission denied" -- \
        attn "${QKV[@]}" --out "$noacc/o.npy"
else
    echo "skip: no inaccessible directory here (root with CAP_SYS_PTRACE)"
fi
chmod 755 locked
attn_ok "--out through /proc/self/cwd (a link to the work directory) is fine" 1 "${QKV[@]}" --out /proc/self/cwd/cwd.npy
expect "... and wrote cwd.npy" "no cwd.npy" [ -f cwd.npy ]

# ---- 5. --help -----------------------------------------------------------------

for cmd in "" attn gen compare bench "bench attn" "bench reduce"; do
    # shellcheck disable=SC2086 # cmd is split into words on purpose
    mpi 2 $cmd --help
    rc=$?
    why=$(status $rc)
    c=$(grep -c '^usage:' out)
    [ "$c" -eq 1 ] || why+="usage printed $c times, expected once; "
    grep -v "^ringattn: warning: .*oversubscribed" err | grep -q . && why+="unexpected stderr; "
    report "ringattn${cmd:+ $cmd} --help under mpirun -n 2" "$why"
done
# every command that answers --help is listed in the top-level help (plan was not)
"$RA" --help >top 2>&1
why=""
for cmd in attn gen compare train eval diag cipher generate export import bench plan; do
    "$RA" "$cmd" --help >/dev/null 2>&1 || why+="$cmd --help failed; "
    grep -q "^  $cmd " top || why+="$cmd not in ringattn --help; "
done
report "ringattn --help lists every command" "$why"
# a launcher's rank variable left in a shell, without its task count (or at or past it),
# made the help and the top-level errors silent: it needs both, within range
for env in "SLURM_PROCID=1" "OMPI_COMM_WORLD_RANK=1" "PMI_RANK=1" "SLURM_PROCID=3 SLURM_NTASKS=2" \
    "SLURM_PROCID=1 SLURM_NTASKS=99999999999" "SLURM_PROCID=99999999999 SLURM_NTASKS=2"; do
    # shellcheck disable=SC2086 # env is split into assignments on purpose
    env $env "$RA" --help >out 2>err
    rc=$?
    report "$env ringattn --help (no launcher): the help, exit 0" "$(status $rc)$(grep -q '^usage:' out || echo 'no usage; ')"
    # shellcheck disable=SC2086
    env $env "$RA" bogus >out 2>err
    report "$env ringattn bogus (no launcher): the error is said" "$(grep -q "unknown command 'bogus'" err || echo 'nothing on stderr')"
done
env OMPI_COMM_WORLD_RANK=1 OMPI_COMM_WORLD_SIZE=2 "$RA" --help >out 2>err
report "rank 1 of 2 (OMPI_COMM_WORLD_RANK, _SIZE): the help is rank 0's" "$([ ! -s out ] || echo 'rank 1 printed it')"
# -h alone is the help of every command (gen, compare and bench said "unknown option '-h'", exit 1)
for cmd in attn gen compare bench "bench attn" train eval generate plan; do
    # shellcheck disable=SC2086 # cmd is split into words on purpose
    mpi 1 $cmd -h
    rc=$?
    report "ringattn $cmd -h: the help, exit 0" "$(status $rc)$(grep -q '^usage:' out || echo 'no usage; ')"
done
fails "--no-bind=1: a flag takes no value (it said 'unknown command')" 1 "--no-bind takes no value \(got '--no-bind=1'\)" -- \
    --no-bind=1 train
fails "attn --precond: the values it takes (it listed spectral, which it refuses)" 1 "known: none or rownorm\)" -- \
    attn --q A/q.npy --k A/k.npy --v A/v.npy --out o.npy --precond foo
# options the head or preconditioner does not have were ignored, exit 0
fails "attn --span with --head full: refused" 1 "attn: --span is combiner-fixed's; --head full has none" -- \
    attn --q A/q.npy --k A/k.npy --v A/v.npy --out o.npy --span 5
fails "attn --row with --head combiner-fixed: refused" 1 "attn: --row is combiner-axial's; --head combiner-fixed has none" -- \
    attn --q A/q.npy --k A/k.npy --v A/v.npy --out o.npy --head combiner-fixed --row 5
fails "attn --precond-eps without --precond rownorm: refused" 1 "--precond-grad and --precond-eps are rownorm's" -- \
    attn --q A/q.npy --k A/k.npy --v A/v.npy --out o.npy --precond-eps 5
fails "bench attn --span with --head full: refused" 1 "bench attn: --span is combiner-fixed's" -- \
    bench attn -b 64 -e 64 --span 5
fails "compare --tol 1e-50 (0 in float32): refused" 1 "--tol: 1e-50 is 0 in float32" -- compare A/q.npy A/q.npy --tol 1e-50
# --prompt-dtype says how a --prompt-tokens FILE is read: with a LIST, --prompt or --prompt-file it
# was ignored unseen (exit 0). Refused naming both options; its values in one list (it said
# "... npy or llmc or text")
mpi 1 train --set train.steps=1 --set train.warmup=0 --set train.eval_every=0 --checkpoint-dir gck ||
    bad "train a checkpoint for generate: $(tail -1 err)"
printf 'abc' >prompt.txt
fails "generate --prompt-tokens LIST with --prompt-dtype: refused" 1 \
    "error: generate: --prompt-dtype uint16 is for a --prompt-tokens FILE, but --prompt-tokens '1,2' is a list of ids" -- \
    generate --checkpoint gck --tokens 2 --prompt-tokens 1,2 --prompt-dtype uint16
fails "generate --prompt with --prompt-dtype: refused" 1 \
    "error: generate: --prompt-dtype uint16 is for a --prompt-tokens FILE, but --prompt gives the prompt as bytes" -- \
    generate --checkpoint gck --tokens 2 --prompt abc --prompt-dtype uint16
fails "generate --prompt-file with --prompt-dtype: refused" 1 \
    "error: generate: --prompt-dtype text is for a --prompt-tokens FILE, but --prompt-file gives the prompt as bytes" -- \
    generate --checkpoint gck --tokens 2 --prompt-file prompt.txt --prompt-dtype text
fails "generate --prompt-dtype bogus: the values in one list" 1 \
    "error: generate: --prompt-dtype: 'bogus' is not one of auto, uint16, uint32, npy, llmc or text$" -- \
    generate --checkpoint gck --tokens 2 --prompt-tokens prompt.txt --prompt-dtype bogus

# ---- 6. bench attn smoke -----------------------------------------------------

mpi 2 bench attn -b 64 -e 128 -n 1 -w 0 -c 1 -H 2 -D 16
rc=$?
why=$(status $rc)
rows=$(grep -v '^#' out)
[ "$(echo "$rows" | awk '{print $1}' | tr '\n' ' ')" = "64 128 " ] || why+="expected rows for L=64 and L=128; "
echo "$rows" | awk '$NF != "OK" { exit 1 }' || why+="a row does not end in OK; "
c=$(grep -c '^# ringattn bench attn' out)
[ "$c" -eq 1 ] || why+="title printed $c times, expected once; "
grep -v "^ringattn: warning: .*oversubscribed" err | grep -q . && why+="unexpected stderr; "
report "bench attn -b 64 -e 128 on 2 ranks: rows OK" "$why"
# -t 1,2: the header names every count the rows run with (it said threads/rank=2)
mpi 2 bench attn -b 64 -e 64 -n 1 -w 0 -c 0 -H 2 -D 16 -t 1,2
report "bench attn -t 1,2: the header says threads/rank=1,2" \
    "$(status $?)$(grep -q '^# ringattn bench attn: .* threads/rank=1,2 (-t' out || grep -m1 '^#' out)"
# --chunk's value in the header (it said chunk=set); -c 1 given where nothing is
# checked (--no-comm, a Combiner head): a note, not dropped unseen
mpi 2 bench attn -b 64 -e 64 -n 1 -w 0 -c 1 -H 2 -D 16 --chunk 16 --no-comm
why=$(status $?)
grep -q '^# ringattn bench attn: .* chunk=16 ' out || why+="$(grep -m1 '^#' out); "
grep -q '^ringattn: note: bench attn: -c 1 checks nothing here: --no-comm' err || why+="no note: $(head -c 200 err); "
report "bench attn --chunk 16 -c 1 --no-comm: chunk=16 in the header, a note that nothing is checked" "$why"
mpi 2 bench attn -b 64 -e 64 -n 1 -w 0 -H 2 -D 16 --no-comm
report "... without -c (the default): no note" "$(status $?)$(grep -m1 'note: bench attn' err)"
# combiner-logsparse without --causal: refused before any work (the sgemm line and
# the table's header came first), naming bench attn and --head
fails "bench attn --head combiner-logsparse without --causal: refused first" 2 \
    "^ringattn: error: bench attn: --head combiner-logsparse: causal only" -- \
    bench attn -b 64 -e 64 -n 1 -w 0 -H 2 -D 16 --head combiner-logsparse
report "... before the sgemm reference" "$(grep -m1 '^#' out)"
# more threads than the node's cores were taken without a word (run.threads=4096 too)
many=$(( $(nproc) * 2 ))
mpi 1 attn "${QKV[@]}" --out thr.npy --threads "$many"
why=$(status $?)
grep -q "^ringattn: warning: .*1 rank x $many threads (--threads) on [0-9]* cores: the threads time-share" err ||
    why+="no warning: $(head -c 300 err); "
report "--threads twice the cores: a warning that they time-share the cores" "$why"
# OMP_NUM_THREADS that is no thread count: said to be ignored (5000 ran with the cores' count unsaid)
OMP_NUM_THREADS=5000 mpi 1 attn "${QKV[@]}" --out thr.npy
why=$(status $?)
grep -q "^ringattn: warning: OMP_NUM_THREADS=5000 is not a thread count in \[1, 4096\]: ignored" err ||
    why+="no warning: $(head -c 300 err); "
report "OMP_NUM_THREADS=5000: a warning that it is ignored" "$why"

# bench train (the built-in model): a row per thread count, each followed by
# the sgemm rate measured around it, and MFU = GFLOP/s over that rate times
# the cores in use (1 rank: the row's thread count, at most the cores)
mpi 1 bench train -n 1 -w 0 -t 1,2
why=$(status $?)
grep -q '^# bench train: .*, threads/rank 1,2 (-t' out || why+="header: $(grep -m1 '^# bench train' out); "
python3 - out >chk 2>&1 <<'PY' || why+="$(tr '\n' ' ' <chk)"
import os, re, sys
lines = open(sys.argv[1]).read().splitlines()
rows = [i for i, l in enumerate(lines) if re.match(r"^ +[0-9]", l)]
assert len(rows) == 2, f"{len(rows)} rows, expected 2"
for i, thr in zip(rows, (1, 2)):
    f = lines[i].split()
    m = re.match(r"^# sgemm during thr=(\d+): ([0-9.]+) GFLOP/s \(([0-9.]+) before the steps, ([0-9.]+) after\)$",
                 lines[i + 1])
    assert m and int(m.group(1)) == thr == int(f[6]), f"after row {f}: {lines[i + 1]!r}"
    sg, before, after = float(m.group(2)), float(m.group(3)), float(m.group(4))
    assert sg > 0 and abs(sg - (before + after) / 2) <= 0.1, f"sgemm {sg} is not the mean of {before} and {after}"
    cores = min(thr, len(os.sched_getaffinity(0)))
    want = 100 * float(f[2]) / (sg * cores)
    assert abs(float(f[3]) - want) <= 0.1 + 0.01 * want, f"MFU {f[3]}, expected {want:.1f} from the row's sgemm"
assert lines[-1].startswith("ringattn: tokens_per_s="), f"last line {lines[-1]!r}"
PY
report "bench train -t 1,2: MFU against the sgemm measured around each row" "$why"

# bench reduce: a row per size, each way's result checked against a float64
# sum (the bench's own check; its failure path is bench_reduce.c's exit
# status), busbw = bytes x 2 (P-1)/P / time; bad sizes refused
mpi 3 bench reduce -b 4K -e 64K -f 4 -n 2 -w 1
why=$(status $?)
python3 - out >chk 2>&1 <<'PY' || why+="$(tr '\n' ' ' <chk)"
import re, sys
rows = [l.split() for l in open(sys.argv[1]) if re.match(r"^ +[0-9]", l)]
assert [int(r[0]) for r in rows] == [4096, 16384, 65536], f"sizes {[r[0] for r in rows]}"
for r in rows:
    assert r[-1] == "OK" and len(r) == 8, f"row {r}"
    for ms, bw in ((float(r[1]), float(r[2])), (float(r[3]), float(r[4])), (float(r[5]), float(r[6]))):
        want = int(r[0]) * 2 * 2 / 3 / (ms * 1e-3) * 1e-9 if ms > 0 else 0
        assert abs(bw - want) <= 0.01 + 0.05 * want, f"busbw {bw}, expected {want:.2f} in {r}"
PY
report "bench reduce on 3 ranks: three sizes, every way checked OK, busbw from the times" "$why"
fails "bench reduce -b not a whole number of floats" 1 "multiple of 4" -- bench reduce -b 6 -e 6
fails "bench reduce -e past 2G" 1 "-e" "out of range" -- bench reduce -b 4 -e 4G
# a sweep the node's memory cannot hold is refused before any buffer (it was an OOM
# kill): 2 ranks x 3 x 2 GiB where the node has less than 12 GiB available, else 8
# ranks (48 GiB); a node with more is not tested
avail=$(awk '/^MemAvailable:/ { print int($2 / 1048576) }' /proc/meminfo)
if [ "${avail:-99}" -lt 12 ]; then
    fails "bench reduce larger than the node's memory: refused naming sizes" 2 \
        "bench reduce: -e 2147483644 bytes needs at least 6.0 GiB per rank, 12.0 GiB for the 2 rank" -- \
        bench reduce -b 2147483644 -e 2147483644
elif [ "$avail" -lt 48 ]; then
    mpi 8 bench reduce -b 2147483644 -e 2147483644 -n 1 -w 0
    report "bench reduce larger than the node's memory (8 ranks x 6 GiB): refused" "$([ $? -eq 1 ] &&
        grep -q 'needs at least 6.0 GiB per rank, 48.0 GiB for the 8 rank' err || echo "$(grep -m1 error err)")"
fi
# an argument left after the options is refused, naming it: `eval --checkpoint
# ck data.txt` (a forgotten --data) scored the checkpoint's own data, exit 0
for cmd in eval diag cipher generate gen "bench train" "bench reduce"; do
    # shellcheck disable=SC2086
    fails "$cmd with a stray argument: refused, naming it" 1 "$cmd: unexpected argument 'stray.txt'" -- \
        $cmd stray.txt
done

# ---- 7. placement: cores split among ranks, bound, reported; oversubscription warned --

small=(bench attn -b 64 -e 64 -n 1 -w 0 -c 0 -H 2 -D 16)
export RINGATTN_WAIT=auto # what a user's run gets (lib_cli.sh sets rest); back to rest below
mpi 1 "${small[@]}" --verbose
cores=$(grep -o '^placement: rank 0/1 on [^ ]* (local 0/1, [0-9]* cores*' out | grep -o '[0-9]* cores*' | awk '{print $1}')
why=""
[ -n "$cores" ] || why+="no placement line: $(head -2 out); "
cores=${cores:-1}
grep -q "^placement: rank 0/1 .*: cores 0-$((cores - 1)), bound to PUs" out || why+="one rank not bound to all cores: $(grep placement out); "
report "--verbose, 1 rank: bound to all $cores cores" "$why"
if [ "$cores" -ge 2 ]; then
    mpi 2 "${small[@]}" --verbose
    why=""
    [ "$(grep -c '^placement: rank [01]/2 .*bound to PUs' out)" -eq 2 ] || why+="$(grep placement out); "
    [ "$(grep -o 'cores [0-9]*-[0-9]*' out | sort -u | wc -l)" -eq 2 ] || why+="the ranks share cores; "
    grep -q 'warning' err && why+="warned: $(cat err); "
    report "--verbose, 2 ranks on $cores cores: disjoint cores, bound, no warning" "$why"
fi
mpi $((cores + 1)) "${small[@]}" --verbose -t 1
why=""
[ "$(grep -c "^ringattn: warning: .*: $((cores + 1)) ranks on $cores cores (oversubscribed)" err)" -eq 1 ] ||
    why+="expected one oversubscription warning: $(cat err); "
[ "$(grep -c 'not bound, 1 thread, waits rest$' out)" -eq $((cores + 1)) ] || why+="$(grep placement out); "
report "$((cores + 1)) ranks on $cores cores: one warning, not bound, 1 thread each, waits rest" "$why"
RINGATTN_WAIT=poll mpi $((cores + 1)) "${small[@]}" --verbose -t 1
why=""
[ "$(grep -c 'not bound, 1 thread, waits poll$' out)" -eq $((cores + 1)) ] || why+="$(grep placement out); "
report "RINGATTN_WAIT=poll: oversubscribed ranks poll" "$why"
mpi 1 "${small[@]}" --verbose -t 3
grep -q 'bound to PUs .*, 3 threads, waits poll$' out
report "-t 3 overrides the thread count; a rank with its own cores polls" "$([ $? -eq 0 ] || grep placement out)"
RINGATTN_WAIT=rest mpi 1 "${small[@]}" --verbose
grep -q 'bound to PUs .*, waits rest$' out
report "RINGATTN_WAIT=rest: a rank with its own cores rests" "$([ $? -eq 0 ] || grep placement out)"
for v in bogus Rest " rest" "rest,poll"; do
    RINGATTN_WAIT=$v fails "RINGATTN_WAIT='$v': refused, naming it" 2 "RINGATTN_WAIT='$v' is not auto, rest or poll" -- \
        "${small[@]}"
done
# a huge value, and one with a newline and an escape: one line, 40 bytes, '?' for the rest
RINGATTN_WAIT=$(head -c 100000 /dev/zero | tr '\0' w) fails "RINGATTN_WAIT of 100000 bytes refused" 2 \
    "RINGATTN_WAIT='w{40}\.\.\.' is not" -- "${small[@]}"
RINGATTN_WAIT=$'rest\n\033[2J' fails "RINGATTN_WAIT with a newline and an escape: one line" 2 \
    "RINGATTN_WAIT='rest\?\?\[2J' is not" -- "${small[@]}"
# a bad value on one rank only (rank 1): that rank names it, every rank ends (status 1, which
# wrap.sh records: mpirun itself exits 0), no hang
rm -rf rc && mkdir rc
LAST="mpirun -n 1 ringattn ... : -n 1 env RINGATTN_WAIT=bad ringattn ..."
launch 1 bash "$T/wrap.sh" "$T/rc" "$RA" "${small[@]}" : -n 1 env RINGATTN_WAIT=bad bash "$T/wrap.sh" "$T/rc" \
    "$RA" "${small[@]}" >out 2>err </dev/null
rc=$?
why=""
[ "$rc" -eq 124 ] && why+="timed out after ${TMO}s (a rank hung); "
for r in 0 1; do [ "$(cat "rc/$r" 2>/dev/null)" = 1 ] || why+="rank $r exited '$(cat "rc/$r" 2>/dev/null)', expected 1; "; done
[ "$(grep -c "^\[rank 1/2\] ringattn: error: RINGATTN_WAIT='bad' is not auto, rest or poll" err)" -eq 1 ] ||
    why+="rank 1 did not name it once: $(grep -m2 ringattn err); "
report "RINGATTN_WAIT=bad on rank 1 only: rank 1 names it, both ranks exit 1" "$why"
mpi 1 "${small[@]}" --verbose --no-bind
grep -q 'not bound (--no-bind)' out
report "--no-bind leaves the binding alone" "$([ $? -eq 0 ] || grep placement out)"
# the cores the launcher gave are the ones split: mpirun --cpu-set, taskset around
# --bind-to none, and a singleton under taskset (all three bound to every core of the node)
last=$((cores - 1))
if [ "$cores" -ge 2 ]; then
    OMPI_MCA_odls_base_sigkill_timeout=0 timeout "$TMO" "$MPIRUN" --cpu-set "$last" -n 1 "$RA" "${small[@]}" --verbose \
        >out 2>err </dev/null
    report "mpirun --cpu-set $last: the rank keeps PU $last (1 core, 1 thread)" \
        "$(status $?)$(grep -q "(local 0/1, 1 core): cores [0-9]*-[0-9]*, bound to PUs $last, 1 thread, waits poll$" out || grep placement out)"
    taskset -c "$last" timeout "$TMO" "$MPIRUN" --bind-to none -n 1 "$RA" "${small[@]}" --verbose >out 2>err </dev/null
    report "taskset -c $last mpirun --bind-to none: the rank keeps PU $last" \
        "$(status $?)$(grep -q "1 core): cores [0-9]*-[0-9]*, bound to PUs $last, 1 thread, waits poll$" out || grep placement out)"
    taskset -c "$last" timeout "$TMO" "$RA" "${small[@]}" --verbose >out 2>err </dev/null
    report "taskset -c $last ringattn (no launcher): keeps PU $last" \
        "$(status $?)$(grep -q "1 core): cores [0-9]*-[0-9]*, bound to PUs $last, 1 thread, waits poll$" out || grep placement out)"
    OMPI_MCA_odls_base_sigkill_timeout=0 timeout "$TMO" "$MPIRUN" --bind-to core -n 1 "$RA" "${small[@]}" --verbose \
        >out 2>err </dev/null
    report "mpirun --bind-to core -n 1: one core, and a note that --bind-to none gives all $cores" \
        "$(status $?)$(grep -q '1 core): cores [0-9]*-[0-9]*, bound to PUs [0-9]*, 1 thread, waits poll$' out || grep placement out)$(
        grep -q "note: .*mpirun --bind-to core gave this node's 1 rank 1 of its $cores cores, and ringattn keeps to them" err || cat err)"
fi
export RINGATTN_WAIT=rest

# RINGATTN_ISA (include/ringattn/isa.h): a level this build cannot run is
# refused on every rank, reported once, before any work; empty means unset.
RINGATTN_ISA=bogus fails "RINGATTN_ISA=bogus refused" 2 "RINGATTN_ISA=bogus" "level|one copy" -- "${small[@]}"
# a huge value, and one with a newline and an escape: refused, the message
# one line, the value cut at 64 bytes, non-printable bytes as '?'
long=$(head -c 100000 /dev/zero | tr '\0' v)
RINGATTN_ISA=$long fails "RINGATTN_ISA of 100000 bytes refused" 2 "RINGATTN_ISA=v{64}\.\.\.:" -- "${small[@]}"
RINGATTN_ISA=$'x86\n\033[2Jv3' fails "RINGATTN_ISA with a newline and an escape: one line" 2 \
    "RINGATTN_ISA=x86\?\?\[2Jv3:" -- "${small[@]}"
RINGATTN_ISA= mpi 2 "${small[@]}"
rc=$?
isa=$(sed -n 's/^# ringattn bench attn: .* kernels=\([^ ]*\)$/\1/p' out)
report "RINGATTN_ISA empty: runs, start line names the kernels ($isa)" \
    "$(status $rc)$([ -n "$isa" ] || echo "no kernels= on the start line: $(head -1 out)")"
case $isa in
native | generic) # one copy: any level refused, naming the build
    RINGATTN_ISA=x86-64 fails "RINGATTN_ISA=x86-64 in a build with one copy" 2 "RINGATTN_ISA=x86-64" "one copy" \
        -- "${small[@]}" ;;
x86-64*) # a portable build: the baseline runs, named on the start line
    RINGATTN_ISA=x86-64 mpi 2 "${small[@]}"
    rc=$?
    report "RINGATTN_ISA=x86-64 runs the baseline copy" \
        "$(status $rc)$(grep -q ' kernels=x86-64$' out || head -1 out)" ;;
esac

# MPMD launches whose ranks were given other values: attn's --scale gave a wrong O with exit 0,
# gen's --seed a mix of both seeds under one header; both refused naming the value
mpmd2() { # ARGS0... -- ARGS1...: one mpirun, rank 0 and rank 1 given each
    local a=()
    while [ "$1" != "--" ]; do a+=("$1"); shift; done
    shift
    OMPI_MCA_odls_base_sigkill_timeout=0 timeout "$TMO" "$MPIRUN" --oversubscribe -n 1 "$RA" "${a[@]}" : \
        -n 1 "$RA" "$@" >out 2>err </dev/null
}
mpmd2 attn "${QKV[@]}" --out mp.npy --scale 0.1 -- attn "${QKV[@]}" --out mp.npy --scale 0.2
rc=$?
report "MPMD attn with another --scale on rank 1: refused naming it" "$([ $rc -eq 1 ] &&
    grep -q 'attn: rank 1 was given different options than rank 0 .*differing: --scale' err && [ ! -e mp.npy ] ||
    echo "exit $rc: $(grep -m1 error err)")"
mpmd2 attn "${QKV[@]}" --out mp.npy -- attn "${QKV[@]}" --out mp.npy --causal
rc=$?
report "MPMD attn with --causal on rank 1 only: refused naming the options" "$([ $rc -eq 1 ] &&
    grep -q 'attn: rank 1 was given another command or other options .*--causal' err || echo "exit $rc: $(grep -m1 error err)")"
mpmd2 gen --dir mpg --L 64 --seed 1 -- gen --dir mpg --L 64 --seed 2
rc=$?
report "MPMD gen with another --seed on rank 1: refused naming it, nothing written" "$([ $rc -eq 1 ] &&
    grep -q 'gen: rank 1 was given different options than rank 0 .*differing: --seed (1 on rank 0, 2 on rank 1)' err &&
    [ ! -e mpg ] || echo "exit $rc: $(grep -m1 error err)")"
printf aaaa >ca.bin && printf bbbbbbbb >cb.bin
mpmd2 cipher --data ca.bin -- cipher --data cb.bin
rc=$?
report "MPMD cipher of two files: refused naming both (it counted a share of each, exit 0)" "$([ $rc -eq 1 ] &&
    grep -q 'cipher: rank 1 was given different options than rank 0 .*differing: --data (.*/ca.bin on rank 0, .*/cb.bin on rank 1)' err ||
    echo "exit $rc: $(grep -m1 error err)")"
mpmd2 cipher --data ca.bin -- cipher --data ./ca.bin
report "MPMD cipher of one file by two spellings: runs" "$(status $?)$(grep -q '^97 4 ' out || echo "no count of 4 a's: $(sed -n 99p out)")"
# an output whose temporary another process is writing (holds locked): said so, not
# "remove it (a killed run's leftover)", which would break that writer
touch held.npy.tmp
flock held.npy.tmp sleep 30 &
hp=$!
sleep 0.3
mpi 1 attn "${QKV[@]}" --out held.npy
rc=$?
report "an output another process is writing: refused, said, its temporary left to it" "$([ $rc -eq 1 ] &&
    grep -q -- '--out held.npy: another process is writing it now' err && [ -e held.npy.tmp ] && [ ! -e held.npy ] ||
    echo "exit $rc: $(grep -m1 error err)")"
kill "$hp" 2>/dev/null
wait "$hp" 2>/dev/null
rm -f held.npy.tmp
# a --dir too long for its outputs' temporaries: refused up front with the limit (it
# failed late with the message cut at 1 KiB, its reason lost); one at the limit whose
# name is too long for the file system keeps its reason; "d2//" is said as d2/
long=$(head -c 1011 /dev/zero | tr '\0' g)
fails "gen --dir of 1011 bytes: refused with the limit" 1 "gen: --dir g{60}\.\.\.: the path is 1011 bytes long; at most 1010" -- \
    gen --dir "$long" --L 8
fails "gen --dir of 1010 bytes (one name past NAME_MAX): the reason kept" 1 "gen: --dir g{1010}: File name too long" -- \
    gen --dir "${long:1}" --L 8
mpi 1 gen --dir d2// --L 8
report "gen --dir d2//: said as d2/{q,k,v,dout}.npy" "$(status $?)$(grep -q '^gen: wrote d2/{q,k,v,dout}.npy ' out || cat out)"
# a killed gen leaves up to five temporaries: one refusal names them all, not one per run
mkdir leftovers
touch leftovers/q.npy.tmp leftovers/v.npy.tmp leftovers/dout.npy.tmp
sums leftovers/* >before.sum
mpi 1 gen --dir leftovers --L 64
rc=$?
report "gen over a killed gen's three temporaries: all three named in one refusal, kept" "$([ $rc -eq 1 ] &&
    grep -q 'gen: --dir leftovers: 3 temporaries of its outputs exist (leftovers/q.npy.tmp, leftovers/v.npy.tmp, leftovers/dout.npy.tmp)' err &&
    sums leftovers/* | cmp -s - before.sum && [ ! -e leftovers/q.npy ] || echo "exit $rc: $(grep -m1 error err)")"
# a directory among them: said as one, and that the write would fail there
mkdir leftovers/k.npy.tmp
mpi 1 gen --dir leftovers --L 64
rc=$?
report "gen over leftover temporaries, one a directory: named as one, 'delete them, or fail on a directory'" "$([ $rc -eq 1 ] &&
    grep -q 'leftovers/k.npy.tmp (a directory), leftovers/v.npy.tmp.*which would delete them, or fail on a directory' err &&
    [ -d leftovers/k.npy.tmp ] || echo "exit $rc: $(grep -m1 error err)")"

# ---- scripts/test.sh: a bad RINGATTN_TEST_JOBS refused before anything is installed or built ----
# (apt-get, dpkg-query, meson and ninja are stubs that fail here: a check that
# let one through could not install or build from inside the suite)
mkdir stubs
for tool in apt-get dpkg-query meson ninja sudo; do printf '#!/bin/sh\nexit 97\n' >"stubs/$tool"; done
chmod +x stubs/*
for jobs in abc 0 -2 ' 3' 3x 07 99999 "$(printf '3\n4')"; do
    RINGATTN_TEST_JOBS=$jobs PATH="$T/stubs:$PATH" timeout 20 bash "$ROOT/scripts/test.sh" --quick >out 2>err
    rc=$?
    shown=$(printf '%s' "$jobs" | head -c 40)
    report "scripts/test.sh with RINGATTN_TEST_JOBS='$(printf '%q' "$jobs")': refused, exit 2, before installing" "$(
        [ $rc -eq 2 ] || echo "exit $rc; "
        grep -qF "RINGATTN_TEST_JOBS='$shown' is not a count of tests at a time (1 to 9999)" err ||
            echo "message: $(head -c 300 err)")"
done
# a good count passes the check and reaches install-deps.sh, which fails on the stubs
RINGATTN_TEST_JOBS=2 PATH="$T/stubs:$PATH" timeout 20 bash "$ROOT/scripts/test.sh" --quick >out 2>err
rc=$?
report "scripts/test.sh with RINGATTN_TEST_JOBS=2: accepted (stops at the stubbed install)" "$(
    [ $rc -eq 1 ] || echo "exit $rc; "
    grep -q 'is not a count' err && echo "refused: $(head -c 200 err)")"

finish
