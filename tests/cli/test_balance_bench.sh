#!/usr/bin/env bash
# test_balance_bench.sh RINGATTN MPIRUN - scripts/bench/balance_bench.sh:
# every bad option refused by name (exit 2) before anything runs, a layout
# ringattn does not know fails the run (exit 1, ringattn's message), and a
# small real run prints a row per layout and round, the spread row and the
# medians, every share within [0, 100] %. A stand-in ringattn whose ranks
# differ (mean 10 ms, slowest 20 ms, wait 15 ms) checks the share's
# denominator: wait_ms is a max over ranks, so it is divided by the max
# column (75 %), not by fwd_ms, the mean (150 %). The script writes
# nothing but its own temporary directory.
set -u
# before lib_cli.sh moves into its temporary directory
BB=$(cd "$(dirname "$0")/../../scripts/bench" && pwd)/balance_bench.sh
. "$(dirname "$0")/lib_cli.sh" "$1" "$2"
RINGATTN_BUILD=$(dirname "$(dirname "$RA")") # the build tree of RA (BUILD/src/ringattn)
export RINGATTN_BUILD

# refused: OPTIONS... | a word the message must hold
for c in "-r x|r must be" "-r 0|r must be" "-n 99999|n must be" "-P -1|P must be" "-w|-w needs a value" \
         "-b 0|-b must be" "-b 16Q|-b must be" "--layouts zigzag;ls|--layouts must be" \
         "--cluster 9|--cluster takes" "--cluster|--cluster needs a value" "--ppn 0|ppn must be" \
         "--bogus|unknown option '--bogus'"; do
    opts=${c%%|*} word=${c#*|}
    # shellcheck disable=SC2086
    timeout 30 bash "$BB" $opts >out 2>err </dev/null
    rc=$?
    why=""
    [ "$rc" -eq 2 ] || why+="exit $rc, want 2; "
    grep -qF -- "$word" err || why+="no '$word' in: $(head -1 err); "
    [ -s out ] && why+="printed results: $(head -1 out); "
    report "balance_bench $opts: refused" "$why"
done

timeout 120 bash "$BB" -b 1K -n 1 -w 0 -r 1 -P 2 --layouts zigzag,nolayout >out 2>err </dev/null
rc=$?
report "balance_bench with an unknown layout: the run fails (exit 1) with ringattn's message" \
    "$([ "$rc" -eq 1 ] || echo "exit $rc; "; grep -q 'nolayout' err || echo "no 'nolayout' in: $(tail -2 err)")"

before=$(ls -A | grep -vxE 'out|err')
timeout 300 bash "$BB" -b 1K -n 1 -w 0 -r 2 -P 2 >out 2>err </dev/null
rc=$?
why=""
[ "$rc" -eq 0 ] || why+="exit $rc: $(tail -3 err); "
for lay in zigzag striped spread; do
    [ "$(awk -v l="$lay" '$1 ~ /^[12]$/ && $2 == l' out | wc -l)" -eq 2 ] || why+="not 2 rows of $lay; "
    awk -v l="$lay" '$1 == "med" && $2 == l && $6 >= 0 && $6 <= 100 && $10 >= 0 && $10 <= 100 { f = 1 } END { exit !f }' out ||
        why+="no median row of $lay with shares in [0, 100]; "
done
# every row, rounds and medians: a share is wait / the phase's time, at most 100 %
bad_rows=$(awk '$1 ~ /^([0-9]+|med)$/ && !($6 >= 0 && $6 <= 100 && $10 >= 0 && $10 <= 100)' out)
[ -z "$bad_rows" ] || why+="shares outside [0, 100]: $bad_rows; "
[ "$(ls -A | grep -vxE 'out|err')" = "$before" ] || why+="files left in the working directory: $(ls -A | tr '\n' ' '); "
report "balance_bench -b 1K -r 2 at P = 2: rows per layout and round, spread and medians" "$why"

# a stand-in build: every run prints one bench attn row with ranks apart
# (L fwd_ms min max GFLOP/s %sgemm wait_ms bwd_ms min max GFLOP/s %sgemm wait_ms ...)
mkdir -p fake/src
cat >fake/src/ringattn <<'EOF'
#!/bin/sh
echo "# ringattn bench attn: head=full (a stand-in)"
echo "  1024 10.000 2.000 20.000 1 1 15.000  10.000 2.000 20.000 1 1 15.000 1 20 - - 1 1.00 -"
EOF
chmod +x fake/src/ringattn
RINGATTN_BUILD=$PWD/fake timeout 60 bash "$BB" -b 1K -n 1 -w 0 -r 1 -P 2 >out 2>err </dev/null
rc=$?
why=""
[ "$rc" -eq 0 ] || why+="exit $rc: $(tail -3 err); "
awk '$2 == "zigzag" && $4 == 20.0 && $5 == 15.00 && $6 == 75.0 && $8 == 20.0 && $10 == 75.0 { f = 1 } END { exit !f }' out ||
    why+="no zigzag row '20.0 15.00 75.0 | 20.0 15.00 75.0': $(grep zigzag out | head -1); "
awk '$2 == "spread" && $4 == 20.0 && $6 == 90.0 { f = 1 } END { exit !f }' out || why+="no spread row of 90 %; "
rm -rf fake
report "balance_bench's share: wait_ms (max over ranks) / the slowest rank's time, 75 %, not / the mean, 150 %" "$why"

finish
