#!/usr/bin/env bash
# test_plan.sh RINGATTN MPIRUN SOURCE_ROOT - `ringattn plan`: the table and
# the choice line for a config; --save-rates / --rates round trip; --attn
# (full head and the Combiners); a projection with its CSV; long.ini's
# projection to 4096 ranks within 30 s; bad inputs (-n 0, --dp not dividing -n
# or above run.dp's range, a missing or garbage rates file, a config that fails
# validation) exit non-zero with one message naming the option; validate_plan.sh refuses bad
# REPS, ROUNDS, L, L2, PPN, CLUSTER, SHAPE, CALIBRATE and a missing build directory
# before any work.
set -u
SRC=$3
. "$(dirname "$0")/lib_cli.sh" "$1" "$2"
CFG="$SRC/configs/bench.ini"

# plan_ok DESC N ARGS...: exits 0, the table header, >= 1 row, one choice line.
plan_ok() {
    local desc=$1 n=$2 why=''
    shift 2
    mpi "$n" plan "$@"
    why+=$(status $?)
    grep -qE '^layout +chunk +nc +compute_ms +comm_ms +wait_ms +balance +MiB/rank +step_ms' out ||
        why+="no table header; "
    [ "$(grep -cE '^(contiguous|zigzag|striped) ' out)" -ge 1 ] || why+="no table row; "
    [ "$(grep -c '^choice: layout=' out)" -eq 1 ] || why+="not one choice line; "
    grep -q '^choice: .*step .* ms; ' out || why+="the choice gives no reason; "
    why+=$(partials)
    report "$desc" "$why"
}

plan_ok "plan -n 2: table and choice (default rates)" 1 --config "$CFG" -n 2
grep -q 'rates: defaults' out
report "without --calibrate or --rates the output says the defaults are used" "$([ $? -eq 0 ] || echo 'no defaults note')"
# contiguous vs zigzag on a causal model at P = 4: zigzag wins on balance
plan_ok "plan -n 4 --dp 2" 1 --config "$CFG" -n 4 --dp 2 --set train.batch=2
# the config's run.dp is the plan's (it planned dp = 1 whatever the config said)
plan_ok "plan -n 4 with run.dp = 2 in the config" 1 --config "$CFG" -n 4 --set train.batch=2 --set run.dp=2
report "... plans 2 rings of 2 ranks" "$(grep -q '^# plan: .*P=4 (dp=2: 2 ranks per ring)' out || grep -m1 '^# plan' out)"
plan_ok "plan -n 4 (long context)" 1 --config "$SRC/configs/long.ini" -n 4 --link-gbps 25 --link-latency-us 10
grep -q '^choice: layout=zigzag' out
report "long.ini at P = 4: zigzag chosen" "$([ $? -eq 0 ] || grep choice out)"
# compute_ms is the busiest rank's (causal contiguous: the last rank's, above
# zigzag's; it showed the lightest rank's), and the reason names the larger
# part of the gap (striped against zigzag: tile work, not the 1.5 ms of waits)
plan_ok "plan 10m.ini -n 2" 1 --config "$SRC/configs/10m.ini" -n 2
why=""
ccont=$(awk '$1 == "contiguous" { print $4; exit }' out) czig=$(awk '$1 == "zigzag" { print $4; exit }' out)
awk -v a="$ccont" -v b="$czig" 'BEGIN { exit !(a > b) }' || why+="contiguous compute $ccont <= zigzag's $czig; "
grep -q '^choice: layout=zigzag.*striped is [0-9.]*x slower (more tile work' out || why+="$(grep choice out); "
report "... compute_ms of the busiest rank; the choice's reason is the larger part of the gap" "$why"

# calibration (short) on 2 ranks, saved, read back
mpi 2 plan --config "$CFG" -n 2 --calibrate --save-rates rates.ini --threads 1
why=$(status $?)
for k in threads sgemm_gflops attn_fwd_gflops attn_bwd_gflops mem_gbs shm_gbps shm_latency_us row_fwd_pairs row_bwd_pairs; do
    grep -q "^$k = " rates.ini || why+="rates.ini lacks $k; "
done
grep -q '^# rates: calibrated here (kernels, a ping-pong in the node; link: defaults, one node)' out ||
    why+="one node: $(grep '^# rates' out); "
report "--calibrate --save-rates on 2 ranks (one node: the shm rates measured, the link's the defaults)" "$why"
# a 128K vocabulary: its LM head's product is timed at most 8192 wide (the
# whole 256 x 131072 weight squared would be 70 GB)
mpi 1 plan --config "$CFG" -n 1 --calibrate --threads 1 --set model.vocab=131072
why=$(status $?)
grep -qE '^predicted: step_ms=[0-9.]+' out || why+="no prediction; "
report "--calibrate with model.vocab = 131072 (bounded calibration matrices)" "$why"
# every rank reads --config: one rank failing to read it fails every rank at once (the
# others went on to a collective), and a rank that read another config is named
t0=$(date +%s)
OMPI_MCA_odls_base_sigkill_timeout=0 timeout 60 "$MPIRUN" --oversubscribe -n 1 "$RA" plan --config "$CFG" -n 2 : \
    -n 1 "$RA" plan --config nosuch.ini -n 2 >out 2>err </dev/null
rc=$?
why=""
[ "$rc" -eq 1 ] || why+="exit status $rc; "
[ $(($(date +%s) - t0)) -le 20 ] || why+="took $(($(date +%s) - t0)) s; "
grep -q 'plan: config nosuch.ini: cannot open' err || why+="message: $(grep -m1 error err); "
report "MPMD plan whose rank 1 cannot read its config: exit 1 at once, named" "$why"
OMPI_MCA_odls_base_sigkill_timeout=0 timeout 60 "$MPIRUN" --oversubscribe -n 1 "$RA" plan --config "$CFG" -n 2 : \
    -n 1 "$RA" plan --config "$CFG" -n 2 --set train.batch=64 >out 2>err </dev/null
rc=$?
why=""
[ "$rc" -eq 1 ] || why+="exit status $rc; "
grep -q "plan: --config .*: rank 1 read a different config than rank 0 .*differing: train.batch" err ||
    why+="message: $(grep -m1 error err); "
report "MPMD plan with another --set on rank 1: refused naming the rank and the key" "$why"
# 2 ranks x 1 thread on one core (taskset; no binding by the launcher or by ringattn, which
# binds to the node's cores otherwise): on any machine the kernel timings ran about half the
# time, and the calibration says its rates are those of shared cores
taskset -c 0 timeout "$TMO" "$MPIRUN" --oversubscribe --bind-to none -n 2 "$RA" --no-bind plan --config "$CFG" \
    -n 2 --calibrate --threads 1 >out 2>err </dev/null
why=$(status $?)
share=$(sed -nE "s/^ringattn: warning: plan --calibrate: rank [01]'s 1 thread\(s\) ran only ([0-9]+)% of the time .*shared cores.*/\1/p" err)
[ -n "$share" ] && [ "$share" -le 75 ] || why+="no shared-cores warning below 75 %: $(grep -c calibrate err) line(s); "
report "--calibrate on 2 ranks sharing one core warns that the cores were shared (${share:-?} %)" "$why"
plan_ok "--rates reads the saved file" 1 --config "$CFG" -n 2 --rates rates.ini
grep -q 'rates: --rates file' out
report "--rates named in the output" "$([ $? -eq 0 ] || echo 'source not said')"

mpi 1 plan --attn -n 2 -L 4096 --causal --layout zigzag
why=$(status $?)
grep -qE '^predicted: fwd_ms=[0-9.]+ bwd_ms=[0-9.]+' out || why+="no prediction line; "
report "--attn predicts one head call" "$why"
# B x Hkv = 2^32 and 2^31 (each option in range): an int product wrapped to 0
# (SIGFPE) and to a negative count (negative times)
for b in 65536 32768; do
    mpi 1 plan --attn -n 2 -L 2 -H 65536 --B $b
    why=$(status $?)
    grep -qE '^predicted: fwd_ms=[0-9.]+ bwd_ms=[0-9.]+ fwd_wait_ms=[0-9.]+ bwd_wait_ms=[0-9.]+' out ||
        why+="no prediction line of non-negative times: $(grep predicted out); "
    report "--attn -H 65536 --B $b: times finite and non-negative" "$why"
done

mpi 1 plan --config "$CFG" --project weak --profile eth25 --max-p 64 --csv proj.csv
why=$(status $?)
[ "$(grep -cE '^ +[0-9]+ +[0-9]+ (contiguous|zigzag|striped)' out)" -eq 7 ] || why+="not 7 projection rows (P=1..64); "
[ "$(wc -l <proj.csv)" -eq 8 ] || why+="proj.csv has not 1 + 7 lines; "
report "--project weak --max-p 64 --csv" "$why"
# --csv onto a full disk: named with plan and the option (it said only "x.csv.tmp:
# write failed"), the old file kept (root only: a small tmpfs)
mkdir -p fullp
if [ "$(id -u)" = 0 ] && mount -t tmpfs -o size=8k tmpfs fullp 2>/dev/null; then
    echo keep >fullp/x.csv
    head -c 8192 /dev/zero >fullp/filler 2>/dev/null
    mpi 1 plan --config "$CFG" --project weak --profile eth25 --max-p 64 --csv fullp/x.csv
    rc=$?
    why=""
    [ "$rc" -eq 1 ] || why+="exit $rc; "
    grep -q '^ringattn: error: plan: --csv fullp/x.csv was not written: ' err || why+="$(grep -m1 error err); "
    [ "$(cat fullp/x.csv)" = keep ] || why+="the old x.csv changed; "
    [ -e fullp/x.csv.tmp ] && why+="x.csv.tmp left; "
    umount fullp
    report "--csv onto a full disk: 'plan: --csv F was not written', the old file kept" "$why"
fi

# the long-context projection to 4096 ranks: the tile counts are sums, so it
# takes about a second (it ran past 100 s when they were walks)
TMO=30 mpi 1 plan --config "$SRC/configs/long.ini" --project weak --profile eth25 --max-p 4096
why=$(status $?)
[ "$(grep -cE '^ +[0-9]+ +[0-9]+ (contiguous|zigzag|striped)' out)" -eq 13 ] || why+="not 13 projection rows (P=1..4096); "
report "--project weak long.ini --max-p 4096 within 30 s" "$why"

# the Combiners: a prediction each (logsparse bidirectional refused)
for h in combiner-fixed combiner-axial combiner-logsparse; do
    mpi 1 plan --attn -n 2 -L 4096 --causal --head $h
    why=$(status $?)
    grep -qE '^predicted: fwd_ms=[0-9.]+ bwd_ms=[0-9.]+' out || why+="no prediction line; "
    report "--attn --head $h" "$why"
done
fails "combiner-logsparse bidirectional refused" 1 'logsparse' 'causal' -- plan --attn -n 1 -L 4096 --head combiner-logsparse

# ---- refused -------------------------------------------------------------------
printf 'this is not a rates file\n' >garbage.ini
printf '[model]\ndim = 100\nheads = 3\n' >badcfg.ini
fails "-n 0 refused" 1 '-n' -- plan --config "$CFG" -n 0
fails "--dp not dividing -n refused" 1 '--dp 3' 'divide' -- plan --config "$CFG" -n 4 --dp 3
# --dp takes run.dp's range from the schema: above it, the first refusal names the
# config's limit (it said [1, 16777216], then run.dp's 1 to 1048576 refused it later)
fails "--dp above run.dp's range refused naming 1048576" 1 "plan: --dp: 1048577 is out of range \\[1, 1048576\\]" -- \
    plan --config "$CFG" -n 2097154 --dp 1048577
# whole digits past a long: out of range too (it said "is not an integer")
fails "--dp 99999999999999999999 refused as out of range" 1 \
    "plan: --dp: 99999999999999999999 is out of range \\[1, 1048576\\]" -- plan -n 4 --dp 99999999999999999999
# --dp is run.dp: a batch train would refuse was planned (tokens_per_s printed, exit 0)
fails "--dp 2 with train.batch = 1: refused as train refuses it" 1 \
    'plan: train.batch = 1 is not divisible by run.dp = 2' -- plan --config "$CFG" -n 4 --dp 2
fails "--dp and --set run.dp: refused" 1 'plan: --dp and --set run.dp both give' -- \
    plan --config "$CFG" -n 4 --dp 2 --set run.dp=2 --set train.batch=2
fails "plan --attn --dp: refused (the header said -n, the numbers were -n/dp's)" 1 'plan --attn takes no --dp' -- \
    plan --attn -n 4 -L 4K --dp 2
mpi 1 plan --config "$CFG" -n 1 --project weak --profile eth25 --max-p 4 --set run.dp=2 --set train.batch=2
report "--project with the config's run.dp: said not to be used" "$(status $?)$(grep -q "^# the config's run.dp = 2 is not used" out || echo 'no note')"
fails "run.dp not dividing -n: refused naming run.dp" 1 'plan: run.dp = 2 does not divide -n 3' -- \
    plan --config "$CFG" -n 3 --set run.dp=2 --set train.batch=2
fails "-n above data.seq_len: the cost model's refusal names plan" 1 'plan: cost model: data.seq_len = [0-9]+ is shorter than the 1048577 ranks' \
    -- plan --config "$CFG" -n 1048577
fails "missing rates file refused" 1 'rates' 'nope.ini' -- plan --config "$CFG" -n 2 --rates nope.ini
fails "garbage rates file refused" 1 'rates' 'garbage.ini' -- plan --config "$CFG" -n 2 --rates garbage.ini
# a bad value: plan named, the value as written (it said "ringattn: error: --rates ...
# (got ' 0')"); --max-p without --project was ignored, exit 0
grep -v '^row_fwd_pairs' rates.ini >zero.ini && echo 'row_fwd_pairs = 0' >>zero.ini
fails "a rates value of 0: plan, file, line, key, the value" 1 \
    "error: plan: --rates zero.ini:[0-9]+: row_fwd_pairs needs a number from 1e-06 to 1e\+12 \(got '0'\)" -- \
    plan --config "$CFG" -n 2 --rates zero.ini
# strtod's hex floats were taken (0x10 = 16), where -n 0x10 and config floats refuse them
grep -v '^row_fwd_pairs' rates.ini >hex.ini && echo 'row_fwd_pairs = 0x10' >>hex.ini
fails "a hex rates value refused" 1 "hex.ini:[0-9]+: row_fwd_pairs needs a number .*\(got '0x10'\)" -- \
    plan --config "$CFG" -n 2 --rates hex.ini
fails "--link-gbps 0x10 refused" 1 "plan: --link-gbps: need a number from .*\(got '0x10'\)" -- \
    plan --config "$CFG" -n 2 --link-gbps 0x10
fails "--max-p without --project refused" 1 'plan: --max-p needs --project' -- plan --config "$CFG" -n 2 --max-p 8
# a whole number too large said so (it said "needs a whole number" of 99999999999)
grep -v '^threads' rates.ini >bigt.ini && echo 'threads = 99999999999' >>bigt.ini
fails "a rates threads too large: the range and the value" 1 \
    "bigt.ini:[0-9]+: threads needs a whole number from 1 to 1048576 \(got '99999999999'\)" -- \
    plan --config "$CFG" -n 2 --rates bigt.ini
# threads = 0 or 1.5: the same whole-number range (0 was told 1e-06 to 1e+12)
for v in 0 1.5 -2; do
    grep -v '^threads' rates.ini >bigt.ini && echo "threads = $v" >>bigt.ini
    fails "rates threads = $v: the whole-number range" 1 \
        "bigt.ini:[0-9]+: threads needs a whole number from 1 to 1048576 \(got '$v'\)" -- \
        plan --config "$CFG" -n 2 --rates bigt.ini
done
# -L takes K, M, G as bench's -b and gen's --L do ("'16K' is not an integer")
mpi 1 plan --attn -n 2 -L 16K --causal
why=$(status $?)
grep -q 'L=16384' out || why+="not L = 16384: $(grep -m1 '# attn' out); "
report "plan --attn -L 16K is 16384 tokens" "$why"
fails "a config that fails validation refused" 1 'badcfg.ini|heads|dim' -- plan --config badcfg.ini -n 2
fails "--project without --profile refused" 1 '--profile' -- plan --config "$CFG" --project weak
fails "unknown profile refused" 1 '--profile' 'wifi' -- plan --config "$CFG" --project weak --profile wifi
fails "-n missing refused" 1 '-n' -- plan --config "$CFG"
# the projection picks layout, chunk, grid and link itself: these were ignored, exit 0
PROJ=(plan --config "$CFG" -n 1 --project weak --profile eth25 --max-p 4)
fails "--project with --attn refused" 1 "plan: --project does not take --attn" -- "${PROJ[@]}" --attn -L 1024
fails "--project with --layout refused" 1 "plan: --project does not take --layout" -- "${PROJ[@]}" --layout zigzag
fails "--project with --chunk refused" 1 "plan: --project does not take --chunk" -- "${PROJ[@]}" --chunk 64
fails "--project with --ranks-per-node refused" 1 "does not take --ranks-per-node" -- "${PROJ[@]}" --ranks-per-node 1
fails "--project with --link-gbps refused" 1 "the profile gives the link" -- "${PROJ[@]}" --link-gbps 10
fails "--ranks-per-node above -n refused" 1 "--ranks-per-node 4 is more than -n 2" -- \
    plan --config "$CFG" -n 2 --ranks-per-node 4
# each mode's sizes are its own (a config's plan took -L 64K --head combiner-fixed, printed L = 32)
fails "-L with --config refused" 1 "plan: -L describes --attn's head call" -- plan --config "$CFG" -n 4 -L 64K
fails "--head with --config refused" 1 "plan: --head describes --attn's head call" -- \
    plan --config "$CFG" -n 4 --head combiner-fixed
fails "--attn with --set refused" 1 "plan --attn takes no --set" -- plan --attn -n 2 -L 1K --set model.dim=64
fails "--attn with --config refused" 1 "plan --attn takes no --config" -- plan --attn -n 2 -L 1K --config "$CFG"
# option errors start with the command, as the others do (it said "--project: ..." alone)
fails "--project x refused, named by plan" 1 "error: plan: --project: expected weak or strong \(got 'x'\)" -- \
    plan --config "$CFG" --project x
fails "-H x refused, named by plan" 1 "error: plan: -H: 'x' is not an integer" -- plan --attn -n 2 -L 64 -H x
fails "--csv without --project refused (it wrote nothing and exited 0)" 1 "--csv needs --project" -- plan --config "$CFG" -n 2 --csv x.csv
# --profile is the projection's link only: without --project it was ignored, exit 0
fails "--profile without --project refused" 1 "error: plan: --profile needs --project" -- \
    plan --config "$CFG" -n 2 --profile ib100
# the config's and --set's errors name plan (they said "--set 'model.dimm=8': ..." alone)
fails "a --set error names plan" 1 "error: plan: --set 'model\.dimm=8': " -- plan --config "$CFG" -n 2 --set model.dimm=8
fails "a missing --config names plan" 1 "error: plan: config nosuch\.ini: cannot open" -- plan --config nosuch.ini -n 2
fails "--link-gbps 1e-300 refused (it printed 300-digit times)" 1 "--link-gbps: need a number from 1e-06 to 1e\\+12" -- plan --config "$CFG" -n 2 --link-gbps 1e-300
# outputs: never an input, never a directory, checked before any work
cp "$CFG" mine.ini
mkdir -p adir
fails "--csv naming the --config file refused" 1 '--csv' 'mine.ini' -- \
    plan --config mine.ini --project weak --profile eth25 --max-p 4 --csv mine.ini
cmp -s "$CFG" mine.ini
report "... and the config is unchanged" "$([ $? -eq 0 ] || echo 'mine.ini changed')"
fails "--save-rates naming the --config file refused" 1 '--save-rates' 'mine.ini' -- \
    plan --config mine.ini -n 1 --calibrate --save-rates mine.ini
fails "--save-rates naming a directory refused" 1 '--save-rates' 'adir' -- \
    plan --config "$CFG" -n 1 --calibrate --save-rates adir
ln -sf mine.ini linkcfg.ini
fails "--save-rates naming a symlink to the --config file refused" 1 '--save-rates' 'linkcfg.ini' -- \
    plan --config mine.ini -n 1 --calibrate --save-rates linkcfg.ini
cmp -s "$CFG" mine.ini
report "... and the config is unchanged" "$([ $? -eq 0 ] || echo 'mine.ini changed')"
mkfifo wfifo.ini
TMO=20 fails "--save-rates naming a FIFO refused at once" 1 'wfifo.ini' 'FIFO' -- \
    plan --config "$CFG" -n 1 --calibrate --save-rates wfifo.ini
fails "--save-rates in /proc refused as /proc (not 'No such file')" 1 'plan: --save-rates /proc/self/r.ini: is in /proc or /sys' -- \
    plan --config "$CFG" -n 1 --calibrate --save-rates /proc/self/r.ini
mkfifo rfifo.ini
TMO=20 fails "--rates naming a FIFO refused at once" 1 'rfifo.ini' 'FIFO' -- plan --config "$CFG" -n 2 --rates rfifo.ini
fails "--csv in a missing directory refused" 1 '--csv' 'nodir' -- \
    plan --config "$CFG" --project weak --profile eth25 --max-p 4 --csv nodir/p.csv
fails "--max-p beyond its range refused" 1 '--max-p' -- \
    plan --config "$CFG" --project weak --profile eth25 --max-p 99999999999

# scripts/bench/validate_plan.sh refuses bad counts and a missing build before any work
VP="$SRC/scripts/bench/validate_plan.sh"
BUILD_DIR=$(dirname "$(dirname "$RA")")
# vp_refused DESC PATTERN [VAR=VALUE...] -- ARGS...: validate_plan.sh refused (exit 2) before
# any work: the message matches PATTERN, no table printed
vp_refused() {
    local desc=$1 pat=$2 envs=() why=''
    shift 2
    while [ "$1" != -- ]; do envs+=("$1"); shift; done
    shift
    env ${envs[@]+"${envs[@]}"} bash "$VP" "$@" >out 2>err
    rc=$?
    [ "$rc" -eq 2 ] || why+="exit status $rc; "
    grep -q -- "$pat" err || why+="message: $(head -1 err); "
    [ -s out ] && why+="printed a table; "
    report "$desc" "$why"
}
for bad in "ROUNDS=0" "ROUNDS=x" "REPS=-1" "L=99999999999" "PPN=0" "CLUSTER=9" "CLUSTER=1" "SHAPE=fast" "CALIBRATE=never"; do
    vp_refused "validate_plan.sh with $bad: refused, naming it" "validate_plan.sh: ${bad%%=*} = " "$bad" -- "$BUILD_DIR"
done
vp_refused "validate_plan.sh with a missing build directory: refused, naming the path" \
    "no ringattn at $T/nobuild/src/ringattn" -- "$T/nobuild"
# a measurement that fails (here: out of memory) stops it with the error, exit 1 (it printed zeros, exit 0)
REPS=1 L=9999999 L2=9999999 timeout 300 bash "$VP" "$BUILD_DIR" >out 2>err
rc=$?
why=""
[ "$rc" -eq 1 ] || why+="exit status $rc; "
grep -qE "validate_plan.sh: bench attn -n 1 -L 9999999 .* failed: .*(out of memory|needs at least .* GiB)" err || why+="message: $(tail -1 err); "
grep -qE ' 0\.00 ' out && why+="printed a row of zeros; "
report "validate_plan.sh whose benchmark fails: exit 1, naming it and its error" "$why"
# extra arguments were ignored (exit 0 with the run)
vp_refused "validate_plan.sh BUILD junk: extra argument refused" "usage: validate_plan.sh \[BUILD_DIR\].*junk" \
    -- "$BUILD_DIR" junk

# scripts/bench/project_plan.sh: every input checked before a file is written,
# outputs replaced only once all are made (a garbage rates file emptied
# times.txt and the first table, then failed)
PP="$SRC/scripts/bench/project_plan.sh"
BD=$BUILD_DIR
mkdir -p pp/out elsewhere
keep_outputs() { echo keep >pp/out/times.txt; echo keep >pp/out/10m_weak_ib100.txt; }
kept() { # why the old outputs are not as they were, or nothing
    [ "$(cat pp/out/times.txt pp/out/10m_weak_ib100.txt 2>&1)" = "$(printf 'keep\nkeep')" ] || echo "old outputs changed; "
    [ "$(ls -A pp/out | wc -l)" -eq 2 ] || echo "left in out: $(ls -A pp/out | tr '\n' ' '); "
    [ ! -e pp/out.png ] || echo "wrote out.png; "
}
# pp_refused DESC STATUS PATTERN [VAR=VALUE...] -- ARGS...: run in pp/, refused
# with STATUS, the message matching PATTERN, the old outputs untouched
pp_refused() {
    local desc=$1 want=$2 pat=$3 envs=() why=''
    shift 3
    while [ "$1" != -- ]; do envs+=("$1"); shift; done
    shift
    keep_outputs
    LAST="project_plan.sh $*"
    (cd pp && env ${envs[@]+"${envs[@]}"} timeout 60 bash "$PP" "$@") >out 2>err
    rc=$?
    [ "$rc" -eq "$want" ] || why+="exit status $rc, expected $want; "
    grep -qE -- "$pat" err || why+="message lacks /$pat/; "
    why+=$(kept)
    report "$desc" "$why"
}
printf 'garbage\n' >pp/bad.txt
pp_refused "project_plan.sh with a garbage rates file: exit 1, old outputs intact" 1 "bad.txt:1: expected 'key = value'" \
    -- bad.txt "$BD" out
pp_refused "project_plan.sh with an extra argument refused" 2 'usage: project_plan.sh .*extra' -- "$T/rates.ini" "$BD" out extra
pp_refused "project_plan.sh without RATES refused" 2 'usage: project_plan.sh' --
pp_refused "project_plan.sh with a missing rates file refused" 1 "rates file '.*/nope.ini' not found" -- nope.ini "$BD" out
pp_refused "project_plan.sh with a missing build refused" 1 'nobuild/src/ringattn not built' -- "$T/rates.ini" nobuild out
for bad in MAX_P=0 MAX_P=x MAX_P=2000000 MAX_P=08; do
    pp_refused "project_plan.sh with $bad refused" 2 "MAX_P = '${bad#MAX_P=}'" "$bad" -- "$T/rates.ini" "$BD" out
done
pp_refused "project_plan.sh with PYTHON not a program refused" 2 "PYTHON = '/nope/python'" PYTHON=/nope/python \
    -- "$T/rates.ini" "$BD" out
pp_refused "project_plan.sh naming an output as RATES refused" 1 'would be overwritten' -- out/times.txt "$BD" out
mkfifo pp/fifo.ini
pp_refused "project_plan.sh with a FIFO as RATES: refused at once" 1 "rates file '.*/fifo.ini' not found \(or not a readable file\)" \
    -- fifo.ini "$BD" out
# a stand-in for python3 with matplotlib: plot_plan.py writes its -o file and says so, as
# plot_plan.py does (or fails: PLOT_FAIL)
{
    echo '#!/bin/bash'
    echo 'case "$1" in'
    echo '-c) exit 0 ;;'
    echo '*plot_plan.py)'
    echo '    [ -z "${PLOT_FAIL:-}" ] || { echo "plot failed" >&2; exit 1; }'
    echo '    while [ $# -gt 1 ] && [ "$1" != -o ]; do shift; done'
    echo '    echo png >"$2"; echo "wrote $2"; exit 0 ;;'
    echo 'esac'
    echo 'exec python3 "$@"'
} >fakepy
chmod +x fakepy
pp_refused "project_plan.sh whose last step (the plot) fails: old outputs intact, nothing left behind" 1 'plot failed' \
    PYTHON="$T/fakepy" PLOT_FAIL=1 MAX_P=4 -- "$T/rates.ini" "$BD" out
# an OUT_DIR it cannot write (a read-only tmpfs): exit 1 before any table, the old ones kept
mkdir pp/rofs
if mount -t tmpfs -o size=1m tmpfs pp/rofs 2>/dev/null; then
    mkdir pp/rofs/out && echo keep >pp/rofs/out/times.txt && mount -o remount,ro pp/rofs
    (cd pp && PYTHON="$T/fakepy" MAX_P=4 timeout 60 bash "$PP" "$T/rates.ini" "$BD" rofs/out) >out 2>err
    rc=$?
    why=""
    [ "$rc" -eq 1 ] || why+="exit status $rc; "
    grep -q 'Read-only file system' err || why+="message: $(head -1 err); "
    [ "$(cat pp/rofs/out/times.txt)" = keep ] || why+="times.txt changed; "
    report "project_plan.sh into a read-only OUT_DIR: exit 1, said, the old outputs kept" "$why"
    umount pp/rofs
else
    echo "skip: project_plan.sh into a read-only OUT_DIR (cannot mount a tmpfs here)"
fi
# from another directory (the configs are the repository's), relative paths the caller's
keep_outputs
(cd elsewhere && PYTHON="$T/fakepy" MAX_P=4 timeout 120 bash "$PP" ../rates.ini "$BD" ../pp/out) >out 2>err
rc=$?
# shellcheck disable=SC2034 # shown by report on a failure
LAST="(cd elsewhere && project_plan.sh ../rates.ini BUILD ../pp/out)"
why=$(status $rc)
[ "$(ls pp/out/*_*_*.txt | wc -l)" -eq 12 ] || why+="not 12 tables; "
[ "$(ls pp/out/*.csv | wc -l)" -eq 12 ] || why+="not 12 CSVs; "
[ "$(wc -l <pp/out/times.txt)" -eq 12 ] || why+="times.txt has not 12 lines; "
[ "$(grep -c '^| ' pp/out/summary.md)" -eq 13 ] || why+="summary.md has not 1 + 12 rows; "
grep -qE '^ +4 ' pp/out/10m_weak_ib100.txt || why+="no P=4 row in 10m_weak_ib100.txt; "
[ -s pp/out.png ] || why+="no plot pp/out.png; "
left=$(find pp/out -mindepth 1 -name '.*')
[ -z "$left" ] || why+="left behind: $left; "
[ -z "$(ls -A elsewhere)" ] || why+="wrote in the current directory: $(ls -A elsewhere); "
# plot_plan.py's "wrote" line named the temporary directory, gone by the end
grep -q '\.project_plan\.' out && why+="names a temporary path: $(grep '\.project_plan\.' out); "
tail -1 out | grep -q "the plot .*/pp/out\.png$" || why+="the last line does not name the plot .../pp/out.png: $(tail -1 out); "
report "project_plan.sh from another directory, MAX_P=4: 12 tables and CSVs, times, summary, plot" "$why"

finish
