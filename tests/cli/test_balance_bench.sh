#!/usr/bin/env bash
# test_balance_bench.sh RINGATTN MPIRUN - scripts/bench/balance_bench.sh:
# every bad option refused by name (exit 2) before anything runs, a layout
# ringattn does not know fails the run (exit 1, ringattn's message), and a
# small real run prints a row per layout and round, the spread row and the
# medians. The script writes nothing but its own temporary directory.
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
[ "$(ls -A | grep -vxE 'out|err')" = "$before" ] || why+="files left in the working directory: $(ls -A | tr '\n' ' '); "
report "balance_bench -b 1K -r 2 at P = 2: rows per layout and round, spread and medians" "$why"

finish
