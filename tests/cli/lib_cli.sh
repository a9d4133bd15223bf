# lib_cli.sh - what the ringattn command-line tests share (sourced by
# test_cli.sh, test_faults.sh, test_grid.sh and others, which check their
# arguments first).
#
# Needs RA (the ringattn program) and MPIRUN (absolute paths). Sets the
# Open MPI run-as-root and oversubscribe variables as meson's test
# environment does, moves into a fresh temporary directory (removed at
# exit), and defines the helpers below: ok/bad/report count and print
# "ok: ..." / "FAIL: ..." lines; mpi, fails, attn_ok and compare run
# ringattn under `timeout` (a hang is a failure, 124, not a stuck job);
# bg_start, rank_pid, wait_for and bg_finish run it in the background to
# kill or stop one of its ranks mid-run.
# Source it with the script's own arguments: . lib_cli.sh RINGATTN MPIRUN
abspath() { case $1 in /*) echo "$1" ;; */*) echo "$PWD/$1" ;; *) echo "$1" ;; esac; }
RA=$(abspath "$1")
MPIRUN=$(abspath "$2")

export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMPI_MCA_rmaps_base_oversubscribe=1
export OMPI_MCA_btl_vader_single_copy_mechanism=${OMPI_MCA_btl_vader_single_copy_mechanism:-none}
export OMPI_MCA_pml=${OMPI_MCA_pml:-ob1} # skip probing psm/ofi/ucx (tests/meson.build)
# A quarter less CPU per launch, nothing else changes (a refused 2-rank
# launch: 225 -> 170 ms): PMIx's hash store instead of the shared-memory
# store mpirun builds and clears (memset) for every job, and hwloc without
# its PCI discovery (mpirun read every device's config space; ringattn
# places ranks on cores only). Not in the mpi suite's environment, which
# the checkers' leak suppressions were written for (and it launches little).
export PMIX_MCA_gds=${PMIX_MCA_gds:-hash} HWLOC_COMPONENTS=${HWLOC_COMPONENTS:--pci,-linuxio}
# the tests run 3 at a time on the machine's cores: a waiting rank sleeps
# instead of spinning against the ranks of the other tests (README, Placement)
export RINGATTN_WAIT=${RINGATTN_WAIT:-rest}
export OPENBLAS_NUM_THREADS=${OPENBLAS_NUM_THREADS:-1}
TMO=${RINGATTN_TEST_TIMEOUT:-60} # seconds per invocation

T=$(mktemp -d)
# main_shell: true in the test's own shell only. A background subshell (a
# guard, `cmd &`) inherits the EXIT trap until its first command runs; one
# killed that early ran it and removed $T under the running test. Every
# EXIT trap here and in the tests starts with this check. Its pid is read
# from /proc: $BASHPID still holds the parent's in such a subshell.
main_shell() { local me _; read -r me _ </proc/self/stat; [ "$me" = "$$" ]; }
trap 'main_shell && rm -rf "$T"' EXIT
cd "$T" || exit 1
pass=0
fail=0
ok() { pass=$((pass + 1)); echo "ok: $1"; }
bad() { fail=$((fail + 1)); echo "FAIL: $1"; }

# ---- helpers -----------------------------------------------------------------

LAST=
# The last command and the start of its output, under a FAIL line.
show() {
    echo "    \$ $LAST"
    [ -s out ] && sed -n '1,6s/^/    stdout| /p' out
    [ -s err ] && sed -n '1,8s/^/    stderr| /p' err
    [ -n "${hung:-}" ] && echo "    still running at the limit, then killed; processes: $hung"
    return 0
}
# report DESC WHY: ok when WHY is empty, else FAIL with the reasons.
report() {
    if [ -z "$2" ]; then
        ok "$1"
        [ -n "${VERBOSE:-}" ] && show
    else
        bad "$1: ${2%; }"
        show
    fi
    hung=""
    return 0
}
# Any temporary output (*.tmp) anywhere under
# the work directory (removed once seen).
partials() {
    local p
    p=$(find . -name '*.tmp' | tr '\n' ' ')
    [ -n "$p" ] && { echo "left behind: $p; "; find . -name '*.tmp' -delete; }
    return 0
}
# status RC: why an invocation that had to succeed did not, or nothing.
status() {
    case $1 in
    0) ;;
    124) echo "timed out after ${TMO}s (hang); " ;;
    *) echo "exit status $1, expected 0; " ;;
    esac
}

# One rank: run the command, record its exit status in DIR/<rank>, exit 0 so
# that mpirun lets the other ranks finish on their own.
cat >wrap.sh <<'EOF'
d=$1
shift
r=${OMPI_COMM_WORLD_RANK:-${PMIX_RANK:-${PMI_RANK:-0}}}
"$@"
echo $? >"$d/$r"
exit 0
EOF

# launch N CMD...: CMD on N ranks under mpirun (one rank too: as an MPI
# singleton, without mpirun, it took a quarter of the CPU time, but once in
# CI, 3 tests at a time, one failed in MPI_Init_thread)
launch() {
    local n=$1
    shift
    # a refused run's ranks all exit 1 on their own: no 1-2 s grace (SIGTERM,
    # then SIGKILL) from mpirun for ranks that are already gone
    OMPI_MCA_odls_base_sigkill_timeout=0 timeout "$TMO" "$MPIRUN" --oversubscribe -n "$n" "$@"
}

# mpi N ARGS...: ringattn ARGS on N ranks; stdout in out, stderr in err.
mpi() {
    local n=$1
    shift
    LAST="mpirun -n $n ringattn $*"
    launch "$n" "$RA" "$@" >out 2>err </dev/null
}

# fails DESC N PATTERN... -- ARGS...: ringattn ARGS on N ranks must fail on
# every rank (non-zero status, not a signal, no hang), print exactly one
# ringattn line on stderr that matches every PATTERN (extended regex, case
# insensitive), print no summary, and leave no temporary file behind.
fails() {
    local desc=$1 n=$2 why='' pats=() r s c p
    shift 2
    while [ "$1" != "--" ]; do pats+=("$1"); shift; done
    shift
    LAST="mpirun -n $n ringattn $*"
    local try mrc
    # Under heavy load Open MPI 4.1 sometimes reports a rank that called
    # MPI_Init and MPI_Finalize as "exiting improperly" (its exit seen before
    # its finalize): one retry tells that race from a rank that really skips
    # MPI_Finalize, which fails both times.
    for try in 1 2; do
        rm -rf rc && mkdir rc
        launch "$n" bash "$T/wrap.sh" "$T/rc" "$RA" "$@" >out 2>err </dev/null
        mrc=$?
        [ $mrc -ne 0 ] && [ $mrc -ne 124 ] && grep -q 'exiting improperly' err || break
    done
    if [ $mrc -eq 124 ]; then
        why+="timed out after ${TMO}s (a rank hung); "
    elif [ $mrc -ne 0 ]; then
        why+="mpirun exited $mrc (a rank died?); "
    fi
    for ((r = 0; r < n; r++)); do
        if [ ! -s "rc/$r" ]; then
            [ $mrc -eq 124 ] || why+="rank $r recorded no exit status; "
            continue
        fi
        s=$(<"rc/$r")
        if [ "$s" -eq 0 ]; then why+="rank $r exited 0; "
        elif [ "$s" -ge 124 ]; then why+="rank $r exited $s (crash or signal); "
        fi
    done
    c=$(grep -v '^ringattn: warning: .*\(oversubscribed\|time-share the cores\)' err | grep -c 'ringattn')
    [ "$c" -eq 1 ] || why+="$c ringattn lines on stderr, expected the error reported once; "
    for p in "${pats[@]}"; do
        grep 'ringattn' err | grep -qiE -- "$p" || why+="message lacks /$p/; "
    done
    grep -q 'GFLOP/s' out && why+="summary printed despite the failure; "
    why+=$(partials)
    report "$desc" "$why"
}

# attn_ok DESC N ARGS...: `ringattn attn ARGS` on N ranks exits 0, prints no
# error, and prints one summary line (rank 0 only) with P=N and GFLOP/s
# (twice, forward and backward, with --dout).
attn_ok() {
    local desc=$1 n=$2 why='' c want=1
    shift 2
    case " $* " in *" --dout "*) want=2 ;; esac
    mpi "$n" attn "$@"
    why+=$(status $?)
    c=$(grep -c '^attn: ' out)
    [ "$c" -eq 1 ] || why+="summary printed $c times, expected once (rank 0); "
    grep '^attn: ' out | grep -q "| P=$n " || why+="summary lacks 'P=$n'; "
    c=$(grep '^attn: ' out | grep -o 'GFLOP/s' | wc -l)
    [ "$c" -eq $want ] || why+="summary has $c GFLOP/s figures, expected $want; "
    grep -v "^ringattn: warning: .*oversubscribed" err | grep -q . && why+="unexpected stderr; "
    why+=$(partials)
    report "$desc" "$why"
}

# compare A B: `ringattn compare A B --tol 1e-5` as a singleton (no mpirun).
compare() {
    LAST="ringattn compare $1 $2 --tol 1e-5"
    OMPI_MCA_ess_singleton_isolated=1 timeout "$TMO" "$RA" compare "$1" "$2" --tol 1e-5 >out 2>err </dev/null
}

# full DESC TAG N LAYOUT DIR [ARGS...]: attn on N ranks with --lse and the
# gradients; outputs res/TAG-N-LAYOUT.{o,lse,dq,dk,dv}.npy.
full() {
    local desc=$1 tag=$2 n=$3 lay=$4 d=$5 lo=()
    shift 5
    local p=res/$tag-$n-$lay
    [ "$lay" = default ] || lo=(--layout "$lay")
    attn_ok "$desc" "$n" --q "$d/q.npy" --k "$d/k.npy" --v "$d/v.npy" --out "$p.o.npy" \
        --lse "$p.lse.npy" --dout "$d/dout.npy" --dq "$p.dq.npy" --dk "$p.dk.npy" --dv "$p.dv.npy" \
        ${lo[@]+"${lo[@]}"} "$@"
}

# match DESC RUN REF [OUTPUTS]: each output of RUN equals that of REF within
# 1e-5 (ringattn compare exits 0).
match() {
    local desc=$1 run=$2 ref=$3 outs=${4:-o lse dq dk dv} x why='' rc
    for x in $outs; do
        compare "$run.$x.npy" "$ref.$x.npy"
        rc=$?
        [ $rc -eq 0 ] || why+="$x: compare exited $rc ($(head -c 200 err | tr '\n' ' ')); "
    done
    report "$desc" "$why"
}

# expect DESC WHY CMD...: ok when CMD succeeds, else FAIL because of WHY.
expect() {
    local desc=$1 why=$2
    shift 2
    if "$@"; then report "$desc" ""; else report "$desc" "$why"; fi
}
# absent FILE...: none of the files exists.
absent() {
    local f
    for f; do [ ! -e "$f" ] || return 1; done
}

# header FILE: the .npy header dict of a file written by ringattn.
header() { head -c 128 "$1" | tail -c +11 | tr -d '\n' | sed 's/ *$//'; }

# patch FILE OLD NEW: replace OLD by NEW (same length) in the 128-byte header.
patch() {
    local at
    at=$(head -c 128 "$1" | grep -aboF -- "$2" | head -1 | cut -d: -f1)
    if [ -z "$at" ] || [ ${#2} -ne ${#3} ]; then
        echo "test setup: cannot patch '$2' in $1" >&2
        return 1
    fi
    printf '%s' "$3" | dd of="$1" bs=1 seek="$at" conv=notrunc status=none
}

# npy_i64 FILE SHAPE VALUE...: an int64 .npy file (v1.0, 128-byte header).
npy_i64() {
    local f=$1 shape=$2 v i s=
    shift 2
    printf '\x93NUMPY\x01\x00\x76\x00%-117s\n' "{'descr': '<i8', 'fortran_order': False, 'shape': $shape, }" >"$f"
    for v in "$@"; do
        for i in 0 1 2 3 4 5 6 7; do s+=$(printf '\\x%02x' $(((v >> (8 * i)) & 255))); done
    done
    printf '%b' "$s" >>"$f"
}

# sums FILE...: one checksum line per file, to compare before and after.
sums() { cksum -- "$@" 2>&1; }

# ---- a run in the background: a rank killed or stopped mid-run ---------------

# bg_start N ARGS...: ringattn ARGS on N ranks in the background; stdout in
# out, stderr in err; sets mp (mpirun's pid)
bg_start() {
    local n=$1
    shift
    LAST="mpirun -n $n ringattn $*"
    # the background child truncates out and err only once it runs: a wait
    # that starts at once read the last command's output (a stop sent to an
    # mpirun still starting was lost, a run found "started" before it had)
    rm -f out err
    "$MPIRUN" --oversubscribe -n "$n" "$RA" "$@" >out 2>err </dev/null &
    mp=$!
    hung=""
}
# rank_pid R: the pid of rank R of the run started last (a child of its
# mpirun); looked for again for up to 10 s (once, under load, the first look
# found none), empty if never found
rank_pid() {
    local x i
    for ((i = 0; i < 20; i++)); do
        for x in $(pgrep -P "$mp"); do
            grep -qz "^OMPI_COMM_WORLD_RANK=$1\$" "/proc/$x/environ" 2>/dev/null && { echo "$x"; return; }
        done
        sleep 0.5
    done
}
# wait_for PATTERN FILE SECONDS: until FILE has a line matching PATTERN
wait_for() {
    local i
    for ((i = 0; i < $3 * 10; i++)); do grep -q "$1" "$2" 2>/dev/null && return 0; sleep 0.1; done
    return 1
}
# proc_state PID...: each process's state and its threads' wait channels
# ("1234 S(ep_poll,futex_wait_queue,0)"; 0: running), to say where a run hung
proc_state() {
    local p t st w
    for p; do
        st=$(awk '{ print $3 }' "/proc/$p/stat" 2>/dev/null) || { echo -n "$p gone; "; continue; }
        w=""
        for t in /proc/"$p"/task/*; do w+="${w:+,}$(cat "$t/wchan" 2>/dev/null)"; done
        echo -n "$p $st($w); "
    done
}
# bg_finish SECONDS: wait for the run started last; sets rc and secs (wall
# time from now); kills it after SECONDS, and then hung holds the states of
# mpirun and its ranks just before (show prints them under a FAIL line); its
# ranks are killed too (orphans spinning in a wait would load later tests)
bg_finish() {
    local t0=$(date +%s.%N)
    rm -f "$T/hung.state" "$T/hung.pids"
    (sleep "$1" && { pgrep -P "$mp" >"$T/hung.pids"; proc_state "$mp" $(cat "$T/hung.pids") >"$T/hung.state"
                     kill -9 "$mp" 2>/dev/null; }) &
    local guard=$!
    wait "$mp"
    rc=$?
    kill "$guard" 2>/dev/null
    wait "$guard" 2>/dev/null
    secs=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
    hung=$(cat "$T/hung.state" 2>/dev/null)
    [ -s "$T/hung.pids" ] && kill -9 $(cat "$T/hung.pids") 2>/dev/null
    rm -f "$T/hung.state" "$T/hung.pids"
}

# finish: the summary line; the status is non-zero on any failure.
finish() {
    echo "$pass passed, $fail failed"
    [ "$fail" -eq 0 ]
}
