#!/usr/bin/env bash
# test_hostile_attn.sh RINGATTN MPIRUN - hostile input to attn, gen and compare.
#
#   1. outputs that would destroy an input or another output: the same path,
#      a symlink, a hard link, a ../ spelling, an input named like an
#      output's temporary "<out>.tmp" - refused before any work, every input
#      byte-for-byte unchanged (checksums before and after);
#   2. output paths: a symlink output, or one whose "<out>.tmp" exists, is
#      refused (link, target and file kept); a replaced file keeps its mode;
#      a missing output directory is found before the inputs are read; gen
#      checks its directory first;
#   3. a FIFO as an input fails at once, naming it (no hang);
#   4. NaN and Inf in Q, K, V, dO: an error with the count and the first
#      position, summed over ranks; --allow-nonfinite computes with a warning;
#   5. --scale / --precond-eps / --tol beyond float32 or 0 (a negative --tol
#      refused, -0 taken as 0);
#   6. compare: different shapes of one size, non-float dtypes, NaN,
#      float64 values beyond float32's range, an all-zero reference B;
#   7. results printed to a full device (/dev/full) exit non-zero; gen
#      onto a full disk leaves the set of files it replaces whole; a trace
#      that cannot be written says which command and --trace;
#   8. --trace FILE (attn, bench attn, train, generate): the same checks as
#      every output - an input, a symlink to one, another output, a
#      directory, a FIFO, a missing or read-only directory - refused before
#      any work, inputs unchanged, no trace written; train's --trace and
#      --metrics never the checkpoint directory, made yet or not.
#
# Every run is under `timeout` (lib_cli.sh), with 1 and 2 ranks where the
# ranks matter. Prints "ok: ..." / "FAIL: ..." and "N passed, M failed".
set -u
if [ $# -ne 2 ]; then
    echo "usage: $0 RINGATTN MPIRUN" >&2
    exit 2
fi
. "$(dirname "$0")/lib_cli.sh" "$@"
# a second directory, outside the one partials() sweeps for *.tmp files
X=$(mktemp -d)
trap 'main_shell || exit; for m in "$T/fulldir" "$T/rodir"; do mountpoint -q "$m" && umount "$m"; done; rm -rf "$T" "$X"' EXIT

# npy_f32 FILE SHAPE VALUES...: a float32 .npy file (v1.0, 128-byte header);
# VALUES are the little-endian bytes of each element as 8 hex digits.
npy_f32() {
    local f=$1 shape=$2 v s=
    shift 2
    printf '\x93NUMPY\x01\x00\x76\x00%-117s\n' "{'descr': '<f4', 'fortran_order': False, 'shape': $shape, }" >"$f"
    for v in "$@"; do s+="\\x${v:0:2}\\x${v:2:2}\\x${v:4:2}\\x${v:6:2}"; done
    printf '%b' "$s" >>"$f"
}
# poke FILE INDEX BYTES: set float32 element INDEX of a 128-byte-header file.
poke() { printf '%b' "$3" | dd of="$1" bs=1 seek=$((128 + 4 * $2)) conv=notrunc status=none; }
NAN='\x00\x00\xc0\x7f'
INF='\x00\x00\x80\x7f'

# unchanged DESC SUMS FILE...: the files still have the checksums SUMS.
unchanged() {
    local desc=$1 before=$2
    shift 2
    expect "$desc" "modified: $(diff <(echo "$before") <(sums "$@") | grep '^>' | tr '\n' ' ')" \
        [ "$before" = "$(sums "$@")" ]
}

# full_stdout DESC PATTERN ARGS...: ringattn ARGS without mpirun, stdout on
# /dev/full: must exit 1 (not hang) with PATTERN on stderr.
full_stdout() {
    local desc=$1 pat=$2 rc why=
    shift 2
    LAST="ringattn $* >/dev/full"
    OMPI_MCA_ess_singleton_isolated=1 timeout "$TMO" "$RA" "$@" >/dev/full 2>err </dev/null
    rc=$?
    : >out
    [ $rc -eq 1 ] || why+="exit status $rc, expected 1; "
    grep -qiE -- "$pat" err || why+="stderr lacks /$pat/; "
    report "$desc" "$why"
}

mpi 2 gen --dir A --H 2 --L 16 --D 8 --seed 7
report "gen A: H=2 L=16 D=8 on 2 ranks" "$(status $?)"
QKV=(--q A/q.npy --k A/k.npy --v A/v.npy)
GRAD=(--dout A/dout.npy --dq dq.npy --dk dk.npy --dv dv.npy)
mpi 1 attn "${QKV[@]}" --out ref.o.npy
report "reference run (P=1)" "$(status $?)"

# ---- 1. outputs that clash with inputs or with each other ---------------------

ln -s A/q.npy qlink.npy
ln A/v.npy vhard.npy
INPUTS=(A/q.npy A/k.npy A/v.npy A/dout.npy vhard.npy)
before=$(sums "${INPUTS[@]}")
for n in 1 2; do
    fails "--out is the --q file (P=$n)" $n "--out" "--q" "A/q.npy" "same file" "destroy" -- \
        attn "${QKV[@]}" --out A/q.npy
    fails "--out is a symlink to the --q file (P=$n)" $n "--out qlink.npy" "--q A/q.npy" "same file" -- \
        attn "${QKV[@]}" --out qlink.npy
    fails "--lse spelled ./A/../A/k.npy is the --k file (P=$n)" $n "--lse ./A/../A/k.npy" "--k A/k.npy" -- \
        attn "${QKV[@]}" --out o.npy --lse ./A/../A/k.npy
    fails "--dv is a hard link to the --v file (P=$n)" $n "--dv vhard.npy" "--v A/v.npy" "same file" -- \
        attn "${QKV[@]}" --out o.npy "${GRAD[@]:0:6}" --dv vhard.npy
    fails "--dq is the --dout file (P=$n)" $n "--dq" "--dout" "A/dout.npy" -- \
        attn "${QKV[@]}" --out o.npy --dout A/dout.npy --dq ./A/dout.npy --dk dk.npy --dv dv.npy
    fails "--lse spelled ./o.npy is --out o.npy (P=$n)" $n "--out o.npy" "--lse ./o.npy" "same file" -- \
        attn "${QKV[@]}" --out o.npy --lse ./o.npy
    fails "--dk spelled A/../dq.npy is --dq dq.npy (P=$n)" $n "--dq dq.npy" "--dk" "same file" -- \
        attn "${QKV[@]}" --out o.npy --dout A/dout.npy --dq dq.npy --dk A/../dq.npy --dv dv.npy
done
cp A/q.npy "$X/o.npy.tmp"
before_x=$(sums "$X/o.npy.tmp")
fails "an input named like the --out temporary <out>.tmp" 2 "--q" "temporary" "o.npy.tmp" -- \
    attn --q "$X/o.npy.tmp" --k A/k.npy --v A/v.npy --out "$X/o.npy"
unchanged "the input named <out>.tmp is unchanged" "$before_x" "$X/o.npy.tmp"
unchanged "every input is byte-for-byte unchanged after the refused runs" "$before" "${INPUTS[@]}"
expect "the symlink qlink.npy is still a symlink to A/q.npy" "qlink.npy was replaced" \
    [ "$(readlink qlink.npy)" = A/q.npy ]
expect "refused runs create no output" "o.npy, dq.npy, dk.npy or dv.npy exists" absent o.npy dq.npy dk.npy dv.npy

# ---- 2. output paths -----------------------------------------------------------

printf 'unrelated, precious\n' >unrelated.txt
ln -s unrelated.txt olink.npy
before=$(sums unrelated.txt)
# the atomic rename would replace the link itself (--out /dev/stdout replaced the
# machine's /dev/stdout): refused, naming the target
fails "--out is a symlink to an unrelated file (P=2)" 2 "--out olink.npy: is a symbolic link \(to unrelated.txt\)" \
    "give the target's path" -- attn "${QKV[@]}" --out olink.npy
unchanged "the symlink's unrelated target keeps its content" "$before" unrelated.txt
expect "the symlink --out is still the symlink" "olink.npy was replaced" [ -L olink.npy ]
# a file named like the output's temporary: the write would delete it
# (in $X: fails() counts any .tmp in the work directory as left behind)
printf 'mine\n' >"$X/o2.npy.tmp"
fails "--out whose <out>.tmp exists (P=2)" 2 "--out $X/o2.npy: $X/o2.npy.tmp exists" "remove it" -- \
    attn "${QKV[@]}" --out "$X/o2.npy"
expect "the user's o2.npy.tmp is kept" "o2.npy.tmp changed" [ "$(cat "$X/o2.npy.tmp")" = mine ]
rm -f "$X/o2.npy.tmp"
# a directory there: the write would fail on it, not delete it; a FIFO is named as one
mkdir "$X/o2.npy.tmp"
fails "--out whose <out>.tmp is a directory (P=2)" 2 "--out $X/o2.npy: $X/o2.npy.tmp \(a directory\) exists" \
    "which would fail on a directory" -- attn "${QKV[@]}" --out "$X/o2.npy"
rmdir "$X/o2.npy.tmp"
mkfifo "$X/o2.npy.tmp"
fails "--out whose <out>.tmp is a FIFO (P=2)" 2 "--out $X/o2.npy: $X/o2.npy.tmp \(a FIFO\) exists" \
    "which would delete it" -- attn "${QKV[@]}" --out "$X/o2.npy"
expect "the FIFO is kept" "o2.npy.tmp is no FIFO" [ -p "$X/o2.npy.tmp" ]
rm -f "$X/o2.npy.tmp"
# a replaced output keeps its permission bits (a private file stays private)
printf 'old\n' >priv.npy && chmod 600 priv.npy
attn_ok "--out onto an existing 0600 file (P=2)" 2 "${QKV[@]}" --out priv.npy
expect "... it is replaced and stays 0600" "mode $(stat -c %a priv.npy)" [ "$(stat -c %a priv.npy)" = 600 ]
compare priv.npy ref.o.npy
report "... and holds the attention output" "$(status $?)"

cp A/k.npy trunc.npy && truncate -s -5 trunc.npy
for n in 1 2; do
    fails "--out in a missing directory is found before the inputs are read (P=$n)" $n "--out nodir/o.npy" \
        "does not exist" -- attn --q A/q.npy --k trunc.npy --v A/v.npy --out nodir/o.npy
done
cp A/q.npy keep.npy
before=$(sums keep.npy)
fails "--dv in a missing directory, found before any work (P=2)" 2 "--dv nodir/dv.npy" "does not exist" -- \
    attn "${QKV[@]}" --out keep.npy --dout A/dout.npy --dq dq.npy --dk dk.npy --dv nodir/dv.npy
unchanged "an existing --out is unchanged when another output cannot be written" "$before" keep.npy
touch afile
fails "gen --dir names a file" 2 "--dir afile" "not a directory" -- gen --dir afile --L 16
fails "gen --dir in a missing parent" 2 "--dir nodir/sub" "parent" -- gen --dir nodir/sub --L 16
# a gen killed while it writes leaves no <out>.tmp (a 2 GiB q.npy.tmp was left): SIGTERM and
# SIGHUP once q.npy.tmp exists (SIGINT: a background job ignores it); the signal still ends it
for sig in TERM HUP; do
    rm -rf gsig
    OMPI_MCA_ess_singleton_isolated=1 "$RA" gen --dir gsig --L 2M >/dev/null 2>&1 </dev/null &
    gp=$!
    # (up to 60 s: under the suite's load generating the 2 GiB slab took over 10)
    for _ in $(seq 1200); do [ -e gsig/q.npy.tmp ] && break; sleep 0.05; done
    seen=$([ -e gsig/q.npy.tmp ] && echo 1)
    kill -$sig $gp
    wait $gp
    rc=$?
    why=""
    [ -n "$seen" ] || why+="q.npy.tmp never appeared; "
    [ "$rc" -eq $((128 + $(kill -l $sig))) ] || why+="exit status $rc; "
    left=$(ls gsig 2>/dev/null | grep '\.tmp$')
    [ -z "$left" ] || why+="left: $left; "
    [ ! -e gsig ] || why+="the --dir it made is left; "
    report "gen killed by SIG$sig while writing: no .tmp and no --dir left, the signal's status" "$why"
done
# a --dir that was there stays, with the files that were in it
mkdir -p gsig && echo keep >gsig/mine.txt
OMPI_MCA_ess_singleton_isolated=1 "$RA" gen --dir gsig --L 2M >/dev/null 2>&1 </dev/null &
gp=$!
for _ in $(seq 200); do [ -e gsig/q.npy.tmp ] && break; sleep 0.05; done
kill -TERM $gp
wait $gp
why=""
[ "$(cat gsig/mine.txt 2>/dev/null)" = keep ] || why+="gsig/mine.txt is gone; "
left=$(ls gsig 2>/dev/null | grep -v '^mine\.txt$')
[ -z "$left" ] || why+="left: $left; "
report "gen killed in a --dir that was there: the dir and its file stay, no .tmp" "$why"
rm -rf gsig
mkdir G && mkdir G/k.npy
fails "gen: an output in --dir is a directory (G/k.npy)" 2 "G/k.npy" "directory" -- gen --dir G --L 16
expect "gen wrote nothing before finding G/k.npy" "G/q.npy was written" absent G/q.npy

# ---- 3. FIFOs as inputs -----------------------------------------------------------

mkfifo fifo.npy
for n in 1 2; do
    TMO=20 fails "a FIFO as --q fails at once (P=$n)" $n "--q fifo.npy" "FIFO" -- \
        attn --q fifo.npy --k A/k.npy --v A/v.npy --out o.npy
done
TMO=20 fails "a FIFO as --segments fails at once" 2 "--segments fifo.npy" "FIFO" -- \
    attn "${QKV[@]}" --out o.npy --segments fifo.npy
TMO=20 fails "compare with a FIFO fails at once" 1 "fifo.npy" "FIFO" -- compare fifo.npy A/q.npy

# ---- 4. NaN and Inf in the inputs ---------------------------------------------------

# [H=2, L=16, D=8], flat index (h*16 + l)*8 + d. With 2 contiguous ranks,
# rank 1 owns l = 8..15: the NaN of vnan.npy is on rank 1 only.
cp A/k.npy knan.npy && poke knan.npy 16 "$INF" && poke knan.npy 227 "$NAN" # [0, 2, 0] and [1, 12, 3]
cp A/v.npy vnan.npy && poke vnan.npy 227 "$NAN"
cp A/dout.npy dnan.npy && poke dnan.npy 5 "$NAN"
for n in 1 2; do
    fails "Inf and NaN in K: an error with the count and the first position (P=$n)" $n "non-finite" \
        "--k knan.npy has 2, the first at \[0, 2, 0\]" "--allow-nonfinite" -- \
        attn --q A/q.npy --k knan.npy --v A/v.npy --out o.npy
done
fails "NaN on the last rank only, counted over the ranks (P=2 zigzag)" 2 "--v vnan.npy has 1, the first at \[1, 12, 3\]" -- \
    attn --q A/q.npy --k A/k.npy --v vnan.npy --out o.npy --layout zigzag
fails "NaN in K and V: both named (P=2 striped)" 2 "--k knan.npy has 2" "--v vnan.npy has 1" -- \
    attn --q A/q.npy --k knan.npy --v vnan.npy --out o.npy --layout striped
fails "NaN in dO (P=2)" 2 "--dout dnan.npy has 1, the first at \[0, 0, 5\]" -- \
    attn "${QKV[@]}" --out o.npy --dout dnan.npy --dq dq.npy --dk dk.npy --dv dv.npy
expect "a refused NaN run writes no output" "o.npy or dq.npy exists" absent o.npy dq.npy
for n in 1 2; do
    mpi $n attn --q A/q.npy --k A/k.npy --v vnan.npy --out o$n.npy --allow-nonfinite
    rc=$?
    why=$(status $rc)
    c=$(grep -c '^ringattn: warning: attn: non-finite' err)
    [ "$c" -eq 1 ] || why+="$c non-finite warnings, expected one (rank 0); "
    grep -q -- '--v vnan.npy has 1, the first at \[1, 12, 3\]' err || why+="warning lacks the count and position; "
    grep -q '^attn: ' out || why+="no summary; "
    [ -f o$n.npy ] || why+="no output; "
    report "--allow-nonfinite computes with a warning giving the count (P=$n)" "$why"
done

# ---- 5. numbers beyond float32 ------------------------------------------------------

# finite inputs whose logits overflow: Q of 3e38 gave O = 0 and LSE = -inf ("sees no key"), exit 0
BIG='\xe6\xb1\x61\x7f' # 3.0e38
cp A/q.npy qbig.npy && poke qbig.npy 0 "$BIG"
for n in 1 2; do
    fails "a finite Q whose logits overflow float32: refused, naming Q and K (P=$n)" $n \
        "the logits could overflow float32" "max \|Q\| from --q qbig.npy" -- attn --q qbig.npy --k A/k.npy --v A/v.npy --out o.npy
done
cp A/dout.npy dbig.npy && poke dbig.npy 5 "$BIG"
fails "a finite dO whose gradients overflow: refused (P=2)" 2 "the gradients could overflow float32" "--dout dbig.npy" -- \
    attn "${QKV[@]}" --out o.npy --dout dbig.npy --dq dq.npy --dk dk.npy --dv dv.npy
expect "a refused overflow run writes no output" "o.npy or dq.npy exists" absent o.npy dq.npy

for n in 1 2; do
    fails "--scale 1e39 (inf in float32) (P=$n)" $n "--scale" "1e39" "float32" -- attn "${QKV[@]}" --out o.npy --scale 1e39
done
fails "--scale 1e-50 (0 in float32)" 2 "--scale" "1e-50" "is 0" -- attn "${QKV[@]}" --out o.npy --scale 1e-50
fails "--scale -1e39" 1 "--scale" "-1e39" "float32" -- attn "${QKV[@]}" --out o.npy --scale -1e39
fails "--precond-eps 1e39" 1 "--precond-eps" "1e39" -- attn "${QKV[@]}" --out o.npy --precond rownorm --precond-eps 1e39
fails "--head unknown names the known heads" 2 "--head" "frob" "combiner-fixed" -- attn "${QKV[@]}" --out o.npy --head frob
fails "--precond spectral is refused for attn" 1 "--precond" "spectral" -- attn "${QKV[@]}" --out o.npy --precond spectral
fails "compare --tol 1e39 (would pass anything)" 1 "--tol" "1e39" -- compare A/q.npy A/q.npy --tol 1e39
fails "compare --tol -1" 1 "--tol" "-1" -- compare A/q.npy A/q.npy --tol -1
# -1e-50 is -0 in float32 but negative (it said "is 0 in float32"); -0 is 0 (it printed "tol -0.0e+00")
fails "compare --tol -1e-50: refused as negative" 1 "compare: --tol: -1e-50 must be >= 0" -- \
    compare A/q.npy A/q.npy --tol -1e-50
# 1e-400 is a number too small for a double, not "not a finite number"
fails "compare --tol 1e-400: said to underflow" 1 "compare: --tol: '1e-400' is below the smallest number" -- \
    compare A/q.npy A/q.npy --tol 1e-400
LAST="ringattn compare A/q.npy A/q.npy --tol -0"
OMPI_MCA_ess_singleton_isolated=1 timeout "$TMO" "$RA" compare A/q.npy A/q.npy --tol -0 >out 2>err </dev/null
report "compare --tol -0 is a tolerance of 0, printed so" \
    "$(status $?)$(grep -q '(tol 0\.0e+00) OK$' out || echo "no '(tol 0.0e+00) OK' line")"

# ---- 6. compare: shapes, dtypes, NaN ---------------------------------------------------

vals=()
for ((i = 0; i < 32; i++)); do vals+=(0000803f); done # 1.0
npy_f32 s48.npy "(4, 8)" "${vals[@]}"
npy_f32 s84.npy "(8, 4)" "${vals[@]}"
npy_f32 s32.npy "(32,)" "${vals[@]}"
npy_i64 i32.npy "(4, 8)" $(seq 1 32)
cp s48.npy n48.npy && poke n48.npy 13 "$NAN" # [1, 5]
for n in 1 2; do
    fails "compare [4, 8] with [8, 4] (P=$n)" $n "s48.npy" "s84.npy" "\[4, 8\]" "\[8, 4\]" "shape" -- compare s48.npy s84.npy
done
fails "compare [32] with [4, 8]" 1 "\[32\]" "\[4, 8\]" "shape" -- compare s32.npy s48.npy
fails "compare an int64 array" 1 "i32.npy" "int64" "float" -- compare s48.npy i32.npy
fails "compare with a NaN in A names the position" 1 "NaN at \[1, 5\]" "n48.npy" -- compare n48.npy s48.npy
fails "compare with a NaN in B (the reference)" 2 "NaN at \[1, 5\]" -- compare s48.npy n48.npy
fails "compare of an array with NaN with itself" 1 "NaN at \[1, 5\]" -- compare n48.npy n48.npy
compare s48.npy s48.npy
report "compare of equal arrays still says OK" "$(status $?)$(grep -q 'OK$' out || echo 'no OK line')"
# float64 beyond float32's range: compared in float64, not both made +inf
# npy_f64 FILE SHAPE VALUES...: VALUES the little-endian bytes of each as 16 hex digits
npy_f64() {
    local f=$1 shape=$2 v s=
    shift 2
    printf '\x93NUMPY\x01\x00\x76\x00%-117s\n' "{'descr': '<f8', 'fortran_order': False, 'shape': $shape, }" >"$f"
    for v in "$@"; do for i in 0 2 4 6 8 10 12 14; do s+="\\x${v:$i:2}"; done; done
    printf '%b' "$s" >>"$f"
}
npy_f64 big1.npy "(2,)" 1d4a9cf487820748 000000000000f03f # 1e39, 1
npy_f64 big2.npy "(2,)" 1d4a9cf48782f747 000000000000f03f # 5e38, 1
npy_f32 big3.npy "(2,)" e6b1617f 0000803f                  # 3e38 (float32), 1
fails "compare float64 arrays that differ beyond float32's range (1e39 vs 5e38)" 1 \
    "big1.npy differs from big2.npy by 1.000e\+00" -- compare big1.npy big2.npy
fails "compare float64 5e38 with float32 3e38" 1 "big2.npy differs from big3.npy by 6.667e-01" -- compare big2.npy big3.npy
compare big3.npy big3.npy
report "compare of a float32 array near its largest value with itself: OK" "$(status $?)$(grep -q 'OK$' out || echo 'no OK line')"
# B all zeros (max|B| = 0): the error was divided by 1, so 1e-30 against zeros passed, and
# ones passed --tol 1. Any difference is an infinite error now; zeros against zeros none.
npy_f32 z4.npy "(4,)" 00000000 00000000 00000000 00000000
npy_f32 t4.npy "(4,)" 00000000 6042a20d 00000000 00000000 # 1e-30 at [1]
npy_f32 o4.npy "(4,)" 0000803f 0000803f 0000803f 0000803f
fails "compare 1e-30 against an all-zero B: an infinite error, said why" 1 \
    "t4.npy differs from z4.npy by inf > 1.0e-05 \(largest difference at \[1\]\)" \
    "max\|B\| = 0 \(over B's finite elements\): any difference is an infinite normalised error" -- compare t4.npy z4.npy
fails "compare ones against an all-zero B with --tol 1: an infinite error" 1 "o4.npy differs from z4.npy by inf" \
    "max\|B\| = 0" -- compare o4.npy z4.npy --tol 1
compare t4.npy z4.npy
why=$(grep -q 'normalised error = inf (tol 1.0e-05) FAIL$' out || echo "t4 vs z4: $(cat out); ")
compare z4.npy z4.npy
why+=$(status $?)$(grep -q 'normalised error = 0.000e+00 (tol 1.0e-05) OK$' out || echo "z4 vs z4: $(cat out)")
report "compare's line against an all-zero B: 'inf ... FAIL' for a difference, '0 ... OK' for zeros" "$why"

# ---- 8. --trace paths ------------------------------------------------------------------

ln -s A/k.npy klink.json
mkdir tdir
mkfifo tfifo.json
cp A/q.npy keepq.npy
before=$(sums "${INPUTS[@]}" keepq.npy)
for n in 1 2; do
    fails "--trace is the --q file (P=$n)" $n "--trace A/q.npy" "--q" "same file" -- \
        attn "${QKV[@]}" --out o.npy --trace A/q.npy
    fails "--trace is a symlink to the --k file (P=$n)" $n "--trace klink.json" "--k A/k.npy" "same file" -- \
        attn "${QKV[@]}" --out o.npy --trace klink.json
    fails "--trace names a directory (P=$n)" $n "--trace tdir" "directory" -- attn "${QKV[@]}" --out o.npy --trace tdir
    TMO=20 fails "--trace names a FIFO, refused at once (P=$n)" $n "--trace tfifo.json" "FIFO" -- \
        attn "${QKV[@]}" --out o.npy --trace tfifo.json
done
fails "--trace is the --out file" 2 "--out keepq.npy" "--trace \./keepq\.npy" "same file" -- \
    attn "${QKV[@]}" --out keepq.npy --trace ./keepq.npy
fails "--trace in a missing directory" 2 "--trace nodir/t.json" "does not exist" -- \
    attn "${QKV[@]}" --out o.npy --trace nodir/t.json
fails "bench attn --trace names a directory" 2 "bench attn: --trace tdir" "directory" -- \
    bench attn -b 16 -e 16 --trace tdir
fails "bench train --trace is its --config file" 1 "--trace" "--config" "same file" -- \
    bench train --config keepq.npy --trace keepq.npy
# train: --trace the checkpoint directory it has not made yet trained every step, then lost the
# trace ("ckt: is a directory", without "train:"); refused before step 1 now, made or not, as is
# --metrics
TR=(train --set train.steps=2 --set train.warmup=0 --set train.eval_every=0)
fails "train --trace is the checkpoint directory, not made yet" 2 \
    "error: train: --trace ckt: is the checkpoint directory \(--checkpoint-dir ckt\); give a file name" -- \
    "${TR[@]}" --checkpoint-dir ckt --trace ckt
report "... before step 1, and the directory is not left behind" \
    "$(grep -q '^step' out && echo 'a step ran; ')$([ ! -e ckt ] || echo 'ckt was made')"
fails "train --metrics spelled ./ckt/ is the checkpoint directory, not made yet" 2 \
    "error: train: --metrics \./ckt/: is the checkpoint directory \(--checkpoint-dir ckt\)" -- \
    "${TR[@]}" --checkpoint-dir ckt --metrics ./ckt/
mkdir ckt
fails "train --trace is the checkpoint directory, made" 2 "error: train: --trace \./ckt: is the checkpoint directory" -- \
    "${TR[@]}" --checkpoint-dir ckt --trace ./ckt
rmdir ckt
# a trace inside the checkpoint directory not made yet: refused (it is checked before the directory
# is made), saying so (it said only "directory 'ckt' does not exist; create it first")
fails "train --trace in the checkpoint directory not made yet: refused, saying why" 2 \
    "error: train: --trace ckt/t.json: its directory 'ckt' is the checkpoint directory" \
    "the trace's directory must exist before the run" -- "${TR[@]}" --checkpoint-dir ckt --trace ckt/t.json
# the metrics may go there (checked once it is made): with a --trace elsewhere they were refused
mpi 2 "${TR[@]}" --checkpoint-dir ckm --metrics ckm/m.jsonl --trace tm.json
report "train --metrics in the checkpoint directory it makes, with --trace elsewhere: runs" \
    "$(status $?)$([ -s ckm/m.jsonl ] && [ -s tm.json ] || echo 'no metrics or no trace written')"
# an unwritable directory: root writes through permissions, so a read-only tmpfs
mkdir -p rodir
if [ "$(id -u)" -ne 0 ]; then
    chmod 555 rodir
    fails "--trace in an unwritable directory" 2 "--trace rodir/t.json" "cannot create" -- \
        attn "${QKV[@]}" --out o.npy --trace rodir/t.json
    chmod 755 rodir
elif mount -t tmpfs -o ro,size=1m tmpfs rodir 2>mnt.err; then
    fails "--trace in an unwritable (read-only) directory" 2 "--trace rodir/t.json" "cannot create" -- \
        attn "${QKV[@]}" --out o.npy --trace rodir/t.json
    umount rodir
else
    report "--trace in an unwritable directory" "cannot mount a read-only tmpfs: $(cat mnt.err)"
fi
unchanged "every input is unchanged after the refused --trace runs" "$before" "${INPUTS[@]}" keepq.npy
expect "the refused --trace runs wrote no output" "o.npy or a trace exists" absent o.npy nodir rodir/t.json
still_there() { [ -p tfifo.json ] && [ -d tdir ] && [ -L klink.json ]; }
expect "the FIFO, directory and symlink named by --trace are still there" "one was replaced" still_there

# ---- 7. results to a full device ---------------------------------------------------------

full_stdout "attn with stdout on /dev/full exits 1" "standard output" attn "${QKV[@]}" --out full.o.npy
full_stdout "compare with stdout on /dev/full exits 1" "standard output" compare s48.npy s48.npy
full_stdout "gen with stdout on /dev/full exits 1" "standard output" gen --dir F --H 2 --L 16 --D 8

# gen onto a full disk: its files appear together or not at all. The first
# set fits; the second set's q.npy fits too (hard links hold the first
# set's pages), its k.npy does not: the first set must stay whole.
mkdir -p fulldir
if mount -t tmpfs -o size=2m tmpfs fulldir 2>mnt.err; then
    for n in 1 2; do
        rm -rf fulldir/g fulldir/keep_* fulldir/filler
        timeout "$TMO" "$MPIRUN" --oversubscribe -n $n "$RA" gen --dir fulldir/g --H 2 --L 1024 --D 32 --seed 1 --segments 2 \
            >out 2>err </dev/null || bad "gen of the first set on $n rank(s): $(tail -1 err)"
        for f in q k v dout seg; do ln fulldir/g/$f.npy fulldir/keep_$f; done
        before=$(sums fulldir/g/*.npy)
        free=$(($(stat -f -c '%a * %S' fulldir)))
        need=$((($(stat -c %s fulldir/g/q.npy) + 4095) / 4096 * 4096))
        head -c $((free > need ? free - need : 0)) /dev/zero >fulldir/filler
        fails "gen onto a full disk (P=$n): an error naming the file" $n "k.npy" "No space left" -- \
            gen --dir fulldir/g --H 2 --L 1024 --D 32 --seed 2 --segments 2
        unchanged "... and the first set is whole: q, k, v, dout, seg all from seed 1 (P=$n)" "$before" fulldir/g/*.npy
        expect "... and no .tmp file is left (P=$n)" "$(ls fulldir/g)" [ -z "$(ls fulldir/g | grep tmp)" ]
    done
    # a trace that cannot be written at the end: the error names the command and --trace, as its
    # other errors do (it said "fulldir/t.json.tmp: write failed: ..." alone)
    mpi 1 train --set train.steps=1 --set train.warmup=0 --set train.eval_every=0 --checkpoint-dir gck ||
        bad "train a checkpoint for generate: $(tail -1 err)"
    rm -rf fulldir/g fulldir/keep_* fulldir/filler
    head -c $(($(stat -f -c '%a * %S' fulldir))) /dev/zero >fulldir/filler
    # bench attn: a trace whose rank 0 part alone fills more than the writer's buffer fails while
    # rank 0 writes its own events: rank 1's bytes are still taken (and dropped), so rank 1 does
    # not wait for rank 0 forever (the command would stall until run.timeout, past TMO)
    for run in "attn|attn ${QKV[*]} --out tf.o.npy" "generate|generate --checkpoint gck --prompt ab --tokens 2" \
        "train|train --set train.steps=1 --set train.warmup=0 --set train.eval_every=0 --checkpoint-dir tck" \
        "bench attn|bench attn -b 1K -e 1K -n 60 -w 0 -c 0 --causal -t 1"; do
        cmd=${run%%|*}
        # shellcheck disable=SC2086 # the arguments are split into words on purpose
        mpi 2 ${run#*|} --trace fulldir/t.json
        rc=$?
        why=""
        [ $rc -ne 0 ] && [ $rc -ne 124 ] || why+="exit status $rc; "
        grep -q "^ringattn: error: $cmd: --trace fulldir/t.json was not written: fulldir/t.json.tmp: .*No space left" err ||
            why+="no '$cmd: --trace fulldir/t.json was not written' error: $(grep -m1 error err); "
        [ "$(ls fulldir)" = filler ] || why+="left in fulldir: $(ls fulldir | tr '\n' ' '); "
        report "$cmd --trace onto a full disk (P=2): the error names $cmd and --trace, no wait, no file left" "$why"
    done
    # generate --out onto a full disk: the tokens are not lost, standard output has them
    mpi 2 generate --checkpoint gck --prompt ab --tokens 5 --temperature 0 --out fulldir/o.txt
    rc=$?
    why=""
    [ $rc -eq 1 ] || why+="exit status $rc; "
    grep -q "^ringattn: error: generate: --out fulldir/o.txt was not written (fulldir/o.txt.tmp: .*No space left on device): standard output has the prompt and the tokens sampled instead$" err ||
        why+="message: $(grep -m1 error err); "
    [ "$(head -c 2 out)" = ab ] && [ "$(wc -c <out)" -eq 8 ] || why+="standard output: $(od -c out | head -2 | tr '\n' ' '); "
    [ "$(ls fulldir)" = filler ] || why+="left in fulldir: $(ls fulldir | tr '\n' ' '); "
    report "generate --out onto a full disk (P=2): the error says so, standard output has the prompt and 5 tokens" "$why"
    umount fulldir
else
    bad "gen onto a full disk: cannot mount a tmpfs: $(cat mnt.err)"
fi

finish
