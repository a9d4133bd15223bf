#!/usr/bin/env bash
# test_slurm.sh RINGATTN MPIRUN SOURCE_ROOT - the Slurm batch scripts on a real
# single-node Slurm (scripts/slurm/local-slurm.sh; as root, else skipped):
# a training job is interrupted mid-run with SIGUSR1 through its batch shell (as
# `#SBATCH --signal=B:USR1@120` would before the time limit), checkpoints,
# requeues itself and resumes, is then preempted by a job of a higher-priority
# partition (SIGTERM, requeued by Slurm) and resumes again, and ends with
# parameters bit-identical to an uninterrupted run; a job of 2 tasks then
# resumes its checkpoints (elastic resume). The benchmark script runs
# under srun --mpi=pmix and under mpirun. First, without Slurm and as any user,
# the scripts' argument checks (SLURM_TEST_SCRIPTS_ONLY=1: only those).
set -u
RA=$1
MPIRUN=$2
SRC=$3
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
export OMPI_MCA_btl_vader_single_copy_mechanism=none OPENBLAS_NUM_THREADS=1
# ranks that wait yield the core (the jobs get it through sbatch's --export=ALL):
# on a machine busy with other work, busy-polling ranks slow the run tenfold
export OMPI_MCA_mpi_yield_when_idle=1
export OMPI_MCA_pml=${OMPI_MCA_pml:-ob1} # skip probing psm/ofi/ucx (tests/meson.build)
LOCAL="$SRC/scripts/slurm/local-slurm.sh"
t_start=$(date +%s)
T=$(mktemp -d)
jobs_started=()
started_slurm=""
cleanup() {
    [ ${#jobs_started[@]} -gt 0 ] && scancel "${jobs_started[@]}" 2>/dev/null
    [ -n "$started_slurm" ] && bash "$LOCAL" stop >/dev/null
    rm -rf "$T"
}
trap cleanup EXIT
pass=0
fail=0
report() { # DESC WHY
    if [ -z "$2" ]; then pass=$((pass + 1)); echo "ok: $1"; else fail=$((fail + 1)); echo "FAIL: $1: $2"; fi
}
since() { echo "$(($(date +%s) - t_start)) s"; }
job_field() { scontrol show job "$1" 2>/dev/null | grep -o "\b$2=[^ ]*" | head -1 | cut -d= -f2; }
# wait_job JOBID SECONDS: until the job has left the queue for good (COMPLETED, FAILED, ...)
wait_job() {
    local s
    for _ in $(seq $(($2 * 5))); do
        s=$(job_field "$1" JobState)
        case "$s" in
        COMPLETED | FAILED | CANCELLED | TIMEOUT | NODE_FAIL | OUT_OF_MEMORY | BOOT_FAIL | DEADLINE) return 0 ;;
        esac
        sleep 0.2
    done
    return 1
}

# ---- the scripts' own checks, without Slurm (as any user) ------------------------------
# The batch scripts run under bash with a stand-in launcher (mpirun that runs its
# arguments once) and a stand-in ringattn (prints its arguments): the variables'
# words reach ringattn unglobbed, and bad variables are refused (exit 2) before
# any directory is made; local-slurm.sh refuses extra arguments and a bad
# LOCAL_SLURM_CPUS before doing anything. SLURM_TEST_SCRIPTS_ONLY=1 stops after these.
script_checks() {
    local d="$T/scripts" why rc a
    mkdir -p "$d/bin" "$d/run"
    printf '#!/bin/sh\nexec "$@"\n' >"$d/bin/mpirun"
    printf '#!/bin/sh\nfor a in "$@"; do echo "arg: $a"; done\n' >"$d/bin/fake-ra"
    chmod +x "$d/bin/mpirun" "$d/bin/fake-ra"
    printf '[model]\n' >"$d/run/c.ini"
    # sb SCRIPT VAR=VALUE...: the batch script in $d/run with those variables; out, err, rc
    sb() {
        local s=$1
        shift
        rm -rf "$d/run/out"
        (cd "$d/run" && env -u SLURM_TASKS_PER_NODE -u SLURM_JOB_ID PATH="$d/bin:$PATH" LAUNCHER=mpirun \
            RINGATTN="$d/bin/fake-ra" CONFIG=c.ini "$@" timeout 30 bash "$SRC/scripts/slurm/$s" \
            >"$d/out" 2>"$d/err" </dev/null)
        rc=$?
    }
    # refused SCRIPT DESC PATTERN VAR=VALUE...: exit 2, the message, no run directory made
    refused() {
        local s=$1 desc=$2 pat=$3
        shift 3
        sb "$s" "$@"
        why=""
        [ "$rc" -eq 2 ] || why+="exit status $rc, expected 2; "
        grep -qE -- "$pat" "$d/err" || why+="message: $(head -2 "$d/err" | tr '\n' ' '); "
        grep -q 'integer expression' "$d/err" && why+="a shell test failed on it; "
        [ ! -e "$d/run/out" ] || why+="made $(find "$d/run/out" | tail -1); "
        grep -q '^arg: ' "$d/out" && why+="ran ringattn; "
        report "$s: $desc" "$why"
    }
    # words that match file names here stay as written (set -f)
    touch "$d/run/train.steps=1" "$d/run/x1"
    sb train.sbatch SETS='train.steps=* train.log_every=?' TRAIN_ARGS='--threads [1] x*'
    why=""
    [ "$rc" -eq 0 ] || why+="exit status $rc; $(head -2 "$d/err"); "
    for a in 'train.steps=*' 'train.log_every=?' '[1]' 'x*'; do
        grep -qxF "arg: $a" "$d/out" || why+="'$a' did not reach ringattn as written; "
    done
    grep -qxF 'arg: train.steps=1' "$d/out" && why+="globbed to a file name; "
    report "train.sbatch: SETS and TRAIN_ARGS split into words, not globbed" "$why"
    # arg_after OPTION: the word the stand-in ringattn got after OPTION
    arg_after() { grep -A1 -xF "arg: $1" "$d/out" | sed -n '2s/^arg: //p'; }
    # outside Slurm each run has its own directory and its metrics in it (a shared
    # default resumed the previous run, and two CKPT_DIRs of one directory shared
    # ./metrics.jsonl, replacing a user's file of that name)
    echo notes >"$d/run/metrics.jsonl"
    sb train.sbatch
    c1=$(arg_after --checkpoint-dir) m1=$(arg_after --metrics)
    sleep 1
    sb train.sbatch
    c2=$(arg_after --checkpoint-dir)
    why=""
    [[ $c1 == out/local-*/checkpoints ]] && [ "$c1" != "$c2" ] || why+="checkpoint directories '$c1', '$c2'; "
    [ "$m1" = "$c1/metrics.jsonl" ] || why+="metrics '$m1'; "
    sb train.sbatch CKPT_DIR=runA
    [ "$(arg_after --metrics)" = runA/metrics.jsonl ] || why+="CKPT_DIR=runA: metrics '$(arg_after --metrics)'; "
    [ "$(cat "$d/run/metrics.jsonl")" = notes ] || why+="./metrics.jsonl changed; "
    report "train.sbatch outside Slurm: a directory per run, metrics inside CKPT_DIR" "$why"
    # resuming, a CONFIG given is not read: said
    mkdir -p "$d/run/ckr" && touch "$d/run/ckr/last.ckpt"
    sb train.sbatch CKPT_DIR=ckr
    why=""
    grep -q 'arg: --resume' "$d/out" || why+="did not resume; "
    grep -q 'CONFIG=c.ini is not read: the run resumes from ckr/last.ckpt' "$d/out" || why+="not said: $(head -1 "$d/out"); "
    report "train.sbatch: resuming, CONFIG is said to be not read" "$why"
    # a run that fails before writing anything leaves no directory the script made
    rm -rf "$d/run/out" "$d/run/pre"
    mkdir -p "$d/run/pre"
    sb train.sbatch RINGATTN=false CKPT_DIR=pre/a/b
    why=""
    [ "$rc" -eq 1 ] || why+="exit status $rc; "
    [ -d "$d/run/pre" ] && [ ! -e "$d/run/pre/a" ] || why+="left: $(find "$d/run/pre" | tr '\n' ' '); "
    sb train.sbatch RINGATTN=false
    [ ! -e "$d/run/out" ] || why+="left: $(find "$d/run/out" | tr '\n' ' '); "
    # a '..' in CKPT_DIR: the user's empty directory it names is kept, no directory is left
    mkdir -p "$d/run/usersempty"
    sb train.sbatch RINGATTN=false CKPT_DIR=zz/../usersempty
    [ -d "$d/run/usersempty" ] || why+="zz/../usersempty: the user's usersempty was removed; "
    [ ! -e "$d/run/zz" ] || why+="zz/../usersempty: zz left; "
    sb train.sbatch RINGATTN=false CKPT_DIR=zz/../new
    [ ! -e "$d/run/zz" ] && [ ! -e "$d/run/new" ] || why+="zz/../new: left $(ls "$d/run" | tr '\n' ' '); "
    report "train.sbatch: a failed run removes the empty directories it made, not the others" "$why"
    sb bench_attn.sbatch BENCH_ARGS='-b 1K x* ?1'
    why=""
    [ "$rc" -eq 0 ] || why+="exit status $rc; $(head -2 "$d/err"); "
    grep -qxF 'arg: x*' "$d/out" && grep -qxF 'arg: ?1' "$d/out" || why+="BENCH_ARGS globbed: $(grep -c x1 "$d/out") x1; "
    report "bench_attn.sbatch: BENCH_ARGS split into words, not globbed" "$why"
    # a job requeued after its training finished (preempted in its last seconds) resumed a
    # finished run: refused by ringattn (nothing to do), the job ended FAILED
    rm -rf "$d/run/ckdone"
    sb train.sbatch SLURM_JOB_ID=42 CKPT_DIR=ckdone
    why=""
    [ "$rc" -eq 0 ] && [ -e "$d/run/ckdone/.train-sbatch-finished-42" ] || why+="exit $rc, no marker; "
    sb train.sbatch SLURM_JOB_ID=42 SLURM_RESTART_COUNT=1 CKPT_DIR=ckdone
    [ "$rc" -eq 0 ] || why+="the restart: exit status $rc; "
    grep -q "job 42 (restart 1) finished its training in an earlier start .*: nothing to do" "$d/out" ||
        why+="the restart said: $(head -1 "$d/out"); "
    grep -q '^arg: ' "$d/out" && why+="the restart ran ringattn; "
    sb train.sbatch SLURM_JOB_ID=43 CKPT_DIR=ckdone
    grep -q '^arg: train' "$d/out" || why+="a new job (43) did not run ringattn: $(head -1 "$d/out"); "
    report "train.sbatch: a job requeued after it finished exits 0 without running; a new job runs" "$why"
    # the marker is made only as a new file (a link there would have been written through), and
    # only that counts (a directory, a link or a non-empty file so named would skip the training)
    echo keep >"$d/run/victim.txt"
    ln -sf ../victim.txt "$d/run/ckdone/.train-sbatch-finished-44"
    sb train.sbatch SLURM_JOB_ID=44 CKPT_DIR=ckdone
    why=""
    grep -q '^arg: train' "$d/out" || why+="a link as the marker skipped the training; "
    [ "$(cat "$d/run/victim.txt")" = keep ] || why+="written through the link; "
    grep -q "cannot create .*train-sbatch-finished-44" "$d/err" || why+="no warning: $(head -1 "$d/err"); "
    mkdir -p "$d/run/ckdone/.train-sbatch-finished-45"
    sb train.sbatch SLURM_JOB_ID=45 SLURM_RESTART_COUNT=1 CKPT_DIR=ckdone
    grep -q '^arg: train' "$d/out" || why+="a directory as the marker skipped the training; "
    echo data >"$d/run/ckdone/.train-sbatch-finished-46"
    sb train.sbatch SLURM_JOB_ID=46 SLURM_RESTART_COUNT=1 CKPT_DIR=ckdone
    grep -q '^arg: train' "$d/out" || why+="a non-empty file as the marker skipped the training; "
    report "train.sbatch: the marker is never written through a link; only the script's empty file counts" "$why"
    sb train.sbatch SLURM_TASKS_PER_NODE='2(x3),1'
    report "train.sbatch: SLURM_TASKS_PER_NODE=2(x3),1 taken" "$([ "$rc" -eq 0 ] || echo "exit status $rc; $(head -2 "$d/err")")"
    for s in train.sbatch bench_attn.sbatch; do
        for v in abc '' '-1' '(x2)'; do
            [ -z "$v" ] && continue # unset or empty: the default, 1
            refused $s "SLURM_TASKS_PER_NODE=$v refused" "SLURM_TASKS_PER_NODE = '\\(?$v" SLURM_TASKS_PER_NODE="$v"
        done
    done
    for v in yes 2 true ''; do
        [ -z "$v" ] && continue
        refused train.sbatch "REQUEUE=$v refused" "REQUEUE must be 1 or 0, not '$v'" REQUEUE="$v"
    done
    refused train.sbatch "a missing CONFIG refused before out/ is made" "CONFIG 'nosuch.ini' is not a readable file" CONFIG=nosuch.ini
    refused train.sbatch "CONFIG naming a directory refused" "CONFIG '\\.' is not a readable file" CONFIG=.
    refused train.sbatch "RINGATTN not a program refused" "RINGATTN '/nope/ringattn' is not a program" RINGATTN=/nope/ringattn
    refused bench_attn.sbatch "RINGATTN not a program refused" "RINGATTN '/nope/ringattn' is not a program" \
        RINGATTN=/nope/ringattn
    refused train.sbatch "LAUNCHER=ssh refused" "LAUNCHER must be srun or mpirun" LAUNCHER=ssh
    refused train.sbatch "LAUNCHER=srun outside a Slurm job refused" "LAUNCHER=srun needs a Slurm job" LAUNCHER=srun
    # local-slurm.sh: refused before the root check, an install or a daemon
    for a in "status garbage" "start now" "stop -f" "" "restart"; do
        # shellcheck disable=SC2086
        bash "$LOCAL" $a >"$d/out" 2>"$d/err"
        rc=$?
        why=""
        [ "$rc" -eq 2 ] || why+="exit status $rc; "
        grep -q 'usage: .*{start|stop|status}' "$d/err" || why+="message: $(head -1 "$d/err"); "
        [ -s "$d/out" ] && why+="printed: $(head -1 "$d/out"); "
        report "local-slurm.sh ${a:-(no command)}: refused with the usage" "$why"
    done
    for v in abc 0 4097 08 '4 x' $'4\nNodeName=evil'; do
        LOCAL_SLURM_CPUS=$v bash "$LOCAL" status >"$d/out" 2>"$d/err"
        rc=$?
        why=""
        [ "$rc" -eq 2 ] || why+="exit status $rc; "
        tr '\n' ' ' <"$d/err" | grep -q "LOCAL_SLURM_CPUS = '.*' is not a whole number from 1 to 4096" ||
            why+="message: $(head -1 "$d/err"); "
        report "local-slurm.sh with LOCAL_SLURM_CPUS='${v//$'\n'/\\n}' refused" "$why"
    done
    LOCAL_SLURM_STATE=relative bash "$LOCAL" status >"$d/out" 2>"$d/err"
    rc=$?
    report "local-slurm.sh with LOCAL_SLURM_STATE=relative refused" \
        "$([ "$rc" -eq 2 ] && grep -q 'LOCAL_SLURM_STATE' "$d/err" || echo "exit status $rc; $(head -1 "$d/err")")"
}
script_checks
if [ -n "${SLURM_TEST_SCRIPTS_ONLY:-}" ]; then
    echo "$pass passed, $fail failed (SLURM_TEST_SCRIPTS_ONLY: no Slurm)"
    [ "$fail" -eq 0 ]
    exit
fi
# the rest needs root: a failure above still fails the test
if [ "$(id -u)" -ne 0 ]; then
    [ "$fail" -eq 0 ] || { echo "$pass passed, $fail failed"; exit 1; }
    echo "skipped: needs root (installs and starts Slurm)"
    exit 77
fi

# ---- a single-node Slurm --------------------------------------------------------------
bash "$LOCAL" status >/dev/null 2>&1 || started_slurm=1
out=$(bash "$LOCAL" start 2>&1)
rc=$?
report "local Slurm started, node idle ($(since))" "$([ $rc -eq 0 ] || echo "$out")"
[ $rc -eq 0 ] || { echo "$pass passed, $fail failed"; exit 1; }

# ---- training: interrupted by SIGUSR1, requeued, resumed == uninterrupted --------------
# Both runs use the same relative checkpoint and metrics names in two working
# directories; the checkpoints store the metrics path absolute, so the final
# ones are compared after their config text.
P=4
STEPS=2000 # the stops at step 150 and 250 steps later leave 1500 to go: Slurm took 500 to preempt
export CONFIG="$SRC/configs/tiny.ini" CKPT_DIR=ck METRICS=metrics.jsonl RINGATTN="$RA"
export SETS="train.steps=$STEPS train.checkpoint_every=0 train.eval_every=0 train.log_every=10"
sets=()
for s in $SETS; do sets+=(--set "$s"); done
mkdir "$T/ref" "$T/job"
(cd "$T/ref" && timeout 120 "$MPIRUN" -n $P "$RA" train --checkpoint-dir ck --config "$CONFIG" \
    --metrics metrics.jsonl "${sets[@]}" >out 2>err </dev/null)
rc=$?
report "uninterrupted reference run, $STEPS steps on $P ranks (mpirun, $(since))" "$([ $rc -eq 0 ] || tail -3 "$T/ref/err")"

cd "$T/job" || exit 1
jid=$(sbatch --parsable -n $P --time=00:10:00 "$SRC/scripts/slurm/train.sbatch" 2>&1)
rc=$?
report "sbatch train.sbatch -n $P" "$([ $rc -eq 0 ] && [[ $jid =~ ^[0-9]+$ ]] || echo "$jid")"
[[ $jid =~ ^[0-9]+$ ]] && jobs_started+=("$jid")
OUT="$T/job/ringattn-train-$jid.out"
# wait_step RESTART MIN: the last step line the job printed in its run number
# RESTART, once it is at least MIN (120 s at most); prints it
wait_step() {
    local n=""
    for _ in $(seq 600); do
        n=$(awk -v r="$1" -v steps="$STEPS" '
            /^train.sbatch: job .* \(restart [0-9]+\)/ { run = ($0 ~ "[(]restart " r "[)]") }
            run && $1 == "step" { split($2, a, "/"); if (a[2] == steps) last = a[1] }
            END { print last }' "$OUT" 2>/dev/null)
        [ -n "$n" ] && [ "$n" -ge "$2" ] && break
        sleep 0.2
    done
    echo "$n"
}
# 1. mid-run, SIGUSR1 to the batch shell (what --signal=B:USR1@120 does before the
#    time limit): the script forwards it, ringattn checkpoints, the script requeues
seen=$(wait_step 0 150)
why=""
if [ -z "$seen" ] || [ "$seen" -lt 150 ] || [ "$seen" -ge "$STEPS" ]; then
    why="never saw a step line between 150 and $STEPS: $(tail -3 "$OUT" 2>&1)"
else
    scancel --signal=USR1 --batch "$jid" || why="scancel failed"
fi
report "job $jid running: SIGUSR1 to its batch shell at step $seen ($(since))" "$why"
# the step after which the job stopped on signal $1, once it says so
stopped_all() { sed -n "s/^stopped by signal $1 after step \([0-9]*\) of $STEPS.*/\1/p" "$OUT"; }
stopped_at() { stopped_all "$1" | head -1; }
stop1=""
for _ in $(seq 300); do
    stop1=$(stopped_at SIGUSR1)
    [ -n "$stop1" ] && break
    sleep 0.2
done
# 2. once it runs again (after AuthInfo cred_expire, 10 s) and is 250 steps further,
#    a job in the higher-priority partition preempts it: Slurm sends SIGTERM and
#    requeues it (PreemptMode=REQUEUE)
seen2=$(wait_step 1 $((${stop1:-$STEPS} + 250)))
why=""
uj=""
if [ -z "$stop1" ] || [ -z "$seen2" ] || [ "$seen2" -ge "$STEPS" ]; then
    why="no restart, or it finished already: stop ${stop1:-none}, then step ${seen2:-none}; $(tail -3 "$OUT" 2>&1)"
else
    uj=$(sbatch --parsable -p urgent -n $P -o urgent-%j.out --wrap 'echo urgent job ran' 2>&1)
    [[ $uj =~ ^[0-9]+$ ]] && jobs_started+=("$uj") || why="sbatch -p urgent: $uj"
fi
report "resumed run at step $seen2: preempted by a job in partition urgent ($(since))" "$why"
# 3. it resumes once more and finishes
wait_job "$jid" 150
state=$(job_field "$jid" JobState) restarts=$(job_field "$jid" Restarts) code=$(job_field "$jid" ExitCode)
report "job completed after two restarts ($(since))" \
    "$([ "$state" = COMPLETED ] && [ "$restarts" = 2 ] && [ "$code" = 0:0 ] ||
        echo "JobState=$state Restarts=$restarts ExitCode=$code; $(tail -5 "$OUT" 2>&1)")"
grep -q "urgent job ran" "urgent-$uj.out" 2>/dev/null
report "the preempting job ran" "$([ $? -eq 0 ] || echo "no output from job $uj")"
# Preemption signals the ranks (SIGTERM) and the batch shell, which forwards
# SIGUSR1: ringattn reports SIGTERM when a rank saw it before the stop, but
# the forwarded SIGUSR1 can stop the run first, so either name is right here.
stop2=$(stopped_at SIGTERM)
[ -n "$stop2" ] || stop2=$(stopped_all SIGUSR1 | sed -n 2p)
why=""
grep -q "train.sbatch: SIGUSR1 received" "$OUT" || why+="the batch shell did not see SIGUSR1; "
[ -n "$stop1" ] && [ "$stop1" -ge "$seen" ] && [ "$stop1" -lt "$STEPS" ] || why+="no 'stopped by signal SIGUSR1 after step N'; "
[ -e "ck/step-$(printf %08d "${stop1:-0}").ckpt" ] || why+="no checkpoint of step $stop1; "
grep -q "requeueing job $jid" "$OUT" || why+="did not requeue itself; "
report "SIGUSR1: stopped after step $stop1 with a checkpoint, requeued itself" "$why"
why=""
grep -q "CANCELLED AT .* DUE TO PREEMPTION" "$OUT" || why+="no preemption message; "
[ -n "$stop2" ] && [ "$stop2" -ge "$seen2" ] && [ "$stop2" -lt "$STEPS" ] || why+="no second 'stopped by signal SIGTERM|SIGUSR1 after step N'; "
[ -e "ck/step-$(printf %08d "${stop2:-0}").ckpt" ] || why+="no checkpoint of step $stop2; "
report "preemption (SIGTERM): stopped after step $stop2 with a checkpoint, requeued by Slurm" "$why"
why=""
grep -q "(restart 1) .*: resuming from ck/last.ckpt" "$OUT" || why+="the second start did not resume; "
grep -q "(restart 2) .*: resuming from ck/last.ckpt" "$OUT" || why+="the third start did not resume; "
grep -q "resumed from ck/last.ckpt at step $stop1\$" "$OUT" || why+="no 'resumed from ck/last.ckpt at step $stop1'; "
grep -q "resumed from ck/last.ckpt at step $stop2\$" "$OUT" || why+="no 'resumed from ck/last.ckpt at step $stop2'; "
grep -q "^step $STEPS/$STEPS" "$OUT" || why+="did not reach step $STEPS; "
report "resumed from steps $stop1 and $stop2 and finished" "$why"
why=""
final=ck/step-$(printf %08d $STEPS).ckpt
if [ ! -e "$final" ] || [ ! -e "$T/ref/$final" ]; then
    why="missing $final"
else
    # all but the config text (it holds the runs' absolute metrics paths and directories),
    # the history id (state extra[0]: a hash of that text) and the checksum: step, seed,
    # data position, the parameters and both moments (src/model/checkpoint.c's layout)
    after_config() {
        local o=$((28 + $(od -An -tu4 -j24 -N4 "$1")))
        { head -c $((o + 24)) "$1" | tail -c 24; tail -c +$((o + 33)) "$1" | head -c -8; }
    }
    cmp -s <(after_config "$final") <(after_config "$T/ref/$final") ||
        why="$final differs from the uninterrupted run's"
fi
report "final checkpoint bit-identical to the uninterrupted run (parameters, moments)" "$why"
losses() { grep -o '"loss": [^,]*' "$1"; }
n=$(losses metrics.jsonl | wc -l)
cmp -s <(losses metrics.jsonl) <(losses "$T/ref/metrics.jsonl")
report "metrics: $STEPS losses, appended across the restarts, equal to the uninterrupted run" \
    "$([ $? -eq 0 ] && [ "$n" -eq $STEPS ] || echo "$n loss lines, or they differ")"

# ---- elastic resume: the finished run continued by a job of 2 tasks ------------------
# train.sbatch gives the launcher no rank count, so a job with another task count
# resumes the same checkpoint directory on all of its tasks (docs/design.md §16);
# its losses equal those of the run continued on the old 4 ranks within 1e-4.
MORE=$((STEPS + 20))
(timeout 120 "$MPIRUN" -n $P "$RA" train --resume ck/step-$(printf %08d $STEPS).ckpt --set train.steps=$MORE \
    --checkpoint-dir "$T/ref/ck-more" --metrics "$T/ref/more.jsonl" >"$T/ref/more.out" 2>&1 </dev/null)
ej=$(SETS="$SETS train.steps=$MORE" METRICS=elastic.jsonl sbatch --parsable -n 2 --time=00:05:00 \
    "$SRC/scripts/slurm/train.sbatch" 2>&1)
[[ $ej =~ ^[0-9]+$ ]] && jobs_started+=("$ej")
wait_job "$ej" 120
state=$(job_field "$ej" JobState)
eout="$T/job/ringattn-train-$ej.out"
why=""
[ "$state" = COMPLETED ] || why+="JobState=$state; $(tail -3 "$eout" 2>&1); "
grep -q "2 ranks: resuming from ck/last.ckpt" "$eout" || why+="the job did not resume ck on 2 ranks; "
grep -q "resumed from ck/last.ckpt at step $STEPS\$" "$eout" || why+="no 'resumed ... at step $STEPS'; "
grep -q "| P=2 " "$eout" || why+="the run does not say P=2; "
why+=$(paste <(losses "$T/ref/more.jsonl" | awk '{print $2}') <(losses elastic.jsonl | awk '{print $2}') | awk '
    { n++; d = $1 - $2; if (d < 0) d = -d; r = d / ($1 < 0 ? -$1 : $1); if (r > m) m = r }
    END { if (n != 20) printf "%d loss lines, expected 20; ", n; else if (m > 1e-4) printf "losses differ by %.3g; ", m }')
report "elastic resume: a 2-task job continues the 4-rank run's checkpoints, 20 losses equal 4 ranks' within 1e-4 ($(since))" "$why"

# ---- the attention benchmark under both launchers --------------------------------------
export BENCH_ARGS="-b 1K -e 2K -n 1 -w 0 -c 1 --causal"
for launcher in srun mpirun; do
    bj=$(LAUNCHER=$launcher sbatch --parsable -n $P --time=00:05:00 "$SRC/scripts/slurm/bench_attn.sbatch" 2>&1)
    [[ $bj =~ ^[0-9]+$ ]] && jobs_started+=("$bj")
    wait_job "$bj" 60
    state=$(job_field "$bj" JobState)
    bout="$T/job/ringattn-bench-$bj.out"
    rows=$(grep -cE '^ +(1024|2048) .* OK$' "$bout" 2>/dev/null)
    report "bench_attn.sbatch with $launcher: $P ranks, 2 rows checked OK ($(since))" \
        "$([ "$state" = COMPLETED ] && [ "$rows" = 2 ] && grep -q "P=$P" "$bout" || echo "JobState=$state; $(tail -3 "$bout" 2>&1)")"
done

echo "total $(since)"
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
