#!/usr/bin/env bash
# local-slurm.sh {start|stop|status} - a real single-node Slurm on this machine,
# for trying the batch scripts of scripts/slurm/ and for tests/slurm/. As root.
#
#   start   install what is missing (Debian: slurmctld slurmd slurm-client munge
#           slurm-wlm-basic-plugins libpmix-dev), write /etc/slurm/slurm.conf and
#           cgroup.conf (this host only, `hostname -s`, on 127.0.0.1), start munged,
#           slurmctld and slurmd, and wait until `sinfo` shows the node idle.
#           Idempotent: what already runs with the same configuration is kept.
#   stop    `scontrol shutdown` (slurmctld and slurmd), then munged; waits for them.
#   status  the daemons' pids and `sinfo`.
#
# Environment:
#   LOCAL_SLURM_CPUS   CPUs the node declares, 1 to 4096 (default: the core count, at
#                      least 4, so 4 ranks fit on a 2-core machine; slurmd is told to
#                      trust the configuration: SlurmdParameters=config_overrides)
#   LOCAL_SLURM_STATE  state, spool and log directory (default /var/lib/ringattn-slurm;
#                      an absolute path of letters, digits and . _ - /)
# Both are checked, and extra arguments refused (exit 2), before anything is done.
#
# Slurm 22.05 in a container or VM without systemd managing cgroups needs
# ProctrackType=proctrack/linuxproc and TaskPlugin=task/none (below). Jobs run as
# root here, so Open MPI needs OMPI_ALLOW_RUN_AS_ROOT(_CONFIRM)=1: the batch
# scripts set them when they run as root.
set -euo pipefail

CONF_DIR=/etc/slurm
CONF=$CONF_DIR/slurm.conf
MARK="# written by ringattn scripts/slurm/local-slurm.sh"
STATE=${LOCAL_SLURM_STATE:-/var/lib/ringattn-slurm}
HOST=$(hostname -s)
PLUGINS=/usr/lib/x86_64-linux-gnu/slurm-wlm
MUNGE_PID=/run/munge/munged.pid

die() { echo "local-slurm: $*" >&2; exit 1; }
say() { echo "local-slurm: $*"; }
usage() { echo "usage: $0 {start|stop|status}${1:+ ($1)}" >&2; exit 2; }
# the command, alone, before anything else (a second word was ignored)
case "${1:-}" in
start | stop | status) ;;
*) usage ;;
esac
[ $# -eq 1 ] || usage "extra argument(s): ${*:2}"
# LOCAL_SLURM_CPUS and LOCAL_SLURM_STATE go into slurm.conf as written: a value
# that is not a count (or holds a newline) would make a broken or altered config
if [ -n "${LOCAL_SLURM_CPUS:-}" ] && ! [[ $LOCAL_SLURM_CPUS =~ ^[1-9][0-9]{0,3}$ && $LOCAL_SLURM_CPUS -le 4096 ]]; then
    echo "local-slurm: LOCAL_SLURM_CPUS = '$LOCAL_SLURM_CPUS' is not a whole number from 1 to 4096" >&2
    exit 2
fi
[[ $STATE =~ ^/[A-Za-z0-9._/-]*$ ]] ||
    { echo "local-slurm: LOCAL_SLURM_STATE = '$STATE': an absolute path of letters, digits and . _ - /" >&2; exit 2; }
[ "$(id -u)" -eq 0 ] || die "must run as root (it installs packages and starts daemons)"

alive() { # PIDFILE: true when the pid in it is a live process
    [ -s "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null
}

install() {
    local need=""
    command -v slurmctld >/dev/null || need+=" slurmctld"
    command -v slurmd >/dev/null || need+=" slurmd"
    command -v sbatch >/dev/null || need+=" slurm-client"
    command -v munged >/dev/null || need+=" munge"
    # srun --mpi=pmix: the plugin is in slurm-wlm-basic-plugins and dlopens libpmix.so
    # (the unversioned name: libpmix-dev, already there with libopenmpi-dev)
    [ -e "$PLUGINS/mpi_pmix_v4.so" ] || need+=" slurm-wlm-basic-plugins"
    dpkg-query -W -f='${Status}' libpmix-dev 2>/dev/null | grep -q 'ok installed' || need+=" libpmix-dev"
    [ -z "$need" ] && return 0
    say "installing$need"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    # shellcheck disable=SC2086
    apt-get install -y -qq --no-install-recommends $need >/dev/null
}

write_config() { # prints "changed" when slurm.conf or cgroup.conf changed
    local cpus mem
    cpus=$(nproc)
    [ "$cpus" -lt 4 ] && cpus=4
    cpus=${LOCAL_SLURM_CPUS:-$cpus}
    mem=$(awk '/^MemTotal:/ { printf "%d", $2 / 1024 * 0.9 }' /proc/meminfo)
    if [ -e "$CONF" ] && ! grep -qF "$MARK" "$CONF"; then
        die "$CONF exists and was not written by this script; not touching it"
    fi
    mkdir -p "$CONF_DIR" "$STATE/ctld" "$STATE/d" "$STATE/log"
    cat >"$CONF.new" <<EOF
$MARK
# A single-node cluster on $HOST; every daemon talks over 127.0.0.1.
ClusterName=ringattn-local
SlurmctldHost=$HOST(127.0.0.1)
# daemons as root: one user everywhere, no ownership of the state directories to manage
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
# job credentials live 10 s instead of 120: this is also how long a requeued job
# waits before it may start again (tests/slurm requeues a job and waits for it)
AuthInfo=cred_expire=10
# no mail on this machine
MailProg=/bin/true
StateSaveLocation=$STATE/ctld
SlurmdSpoolDir=$STATE/d
SlurmctldPidFile=$STATE/slurmctld.pid
SlurmdPidFile=$STATE/slurmd.pid
SlurmctldLogFile=$STATE/log/slurmctld.log
SlurmdLogFile=$STATE/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
# no systemd-managed cgroups here: track a job's processes through /proc, no binding
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
# srun without --mpi: none (the batch scripts pass --mpi=pmix)
MpiDefault=none
SchedulerType=sched/backfill
# CPUs are plain slots: the node declares $cpus whatever the real core count
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SlurmdParameters=config_overrides
# a node that was down comes back by itself when its slurmd registers
ReturnToService=2
# batch jobs may requeue themselves (scontrol requeue; the training script does)
JobRequeue=1
# seconds between SIGTERM and SIGKILL when a job is cancelled or preempted
KillWait=30
# finished jobs stay visible in scontrol for 5 minutes (there is no accounting)
MinJobAge=300
NodeName=$HOST NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem State=UNKNOWN
# jobs in 'urgent' preempt those in 'local': SIGTERM (then SIGKILL after KillWait)
# and back to the queue, as on a cluster with preemption (try it, docs/slurm.md)
PreemptType=preempt/partition_prio
PreemptMode=REQUEUE
PartitionName=local Nodes=$HOST Default=YES MaxTime=INFINITE State=UP PriorityTier=1
PartitionName=urgent Nodes=$HOST MaxTime=INFINITE State=UP PriorityTier=2
EOF
    cat >"$CONF_DIR/cgroup.conf.new" <<EOF
$MARK
# Unused by this configuration (proctrack/linuxproc, task/none); present so that
# nothing probes for a cgroup setup the container does not have.
CgroupPlugin=autodetect
EOF
    local changed=""
    for f in "$CONF" "$CONF_DIR/cgroup.conf"; do
        if cmp -s "$f.new" "$f"; then rm -f "$f.new"; else mv "$f.new" "$f"; changed=changed; fi
    done
    echo "$changed"
}

start_munge() {
    if alive "$MUNGE_PID"; then return 0; fi
    if [ ! -s /etc/munge/munge.key ]; then
        say "creating /etc/munge/munge.key"
        mungekey --create --keyfile=/etc/munge/munge.key
    fi
    chown munge:munge /etc/munge /etc/munge/munge.key
    chmod 0700 /etc/munge
    chmod 0400 /etc/munge/munge.key
    mkdir -p /run/munge /var/lib/munge /var/log/munge
    chown munge:munge /run/munge /var/lib/munge /var/log/munge
    chmod 0755 /run/munge
    runuser -u munge -- /usr/sbin/munged
    for _ in $(seq 50); do munge -n 2>/dev/null | unmunge >/dev/null 2>&1 && return 0; sleep 0.1; done
    die "munged does not answer (see /var/log/munge/munged.log)"
}

node_state() { sinfo -h -n "$HOST" -o %T 2>/dev/null | head -1; }

start() {
    install
    local changed
    changed=$(write_config)
    start_munge
    if [ -n "$changed" ] && { alive "$STATE/slurmctld.pid" || alive "$STATE/slurmd.pid"; }; then
        say "configuration changed: restarting the daemons"
        stop_slurm
    fi
    if ! alive "$STATE/slurmctld.pid"; then
        slurmctld -f "$CONF"
    fi
    if ! alive "$STATE/slurmd.pid"; then
        slurmd -f "$CONF"
    fi
    local st=""
    for i in $(seq 120); do
        st=$(node_state)
        case "$st" in
        idle | mixed | allocated) break ;;
        down* | drain*)
            # a node left down by an earlier run (or an unclean stop)
            if [ $((i % 5)) -eq 1 ]; then scontrol update nodename="$HOST" state=resume 2>/dev/null || true; fi
            ;;
        esac
        sleep 0.5
    done
    case "$st" in
    idle | mixed | allocated) say "node $HOST $st ($(sinfo -h -n "$HOST" -o %c) CPUs); logs in $STATE/log" ;;
    *) die "node $HOST is '${st:-unknown}' after 60 s; see $STATE/log/slurmctld.log and slurmd.log" ;;
    esac
}

wait_gone() { # PID...: wait up to 30 s for the processes to exit
    local p
    for _ in $(seq 300); do
        for p in "$@"; do kill -0 "$p" 2>/dev/null && break; p=""; done
        [ -z "$p" ] && return 0
        sleep 0.1
    done
    return 1
}

stop_slurm() {
    local pids=()
    alive "$STATE/slurmctld.pid" && pids+=("$(cat "$STATE/slurmctld.pid")")
    alive "$STATE/slurmd.pid" && pids+=("$(cat "$STATE/slurmd.pid")")
    [ ${#pids[@]} -eq 0 ] && return 0
    scontrol shutdown >/dev/null 2>&1 || true
    if ! wait_gone "${pids[@]}"; then
        say "daemons still running after 30 s: SIGTERM to ${pids[*]}"
        kill "${pids[@]}" 2>/dev/null || true
        wait_gone "${pids[@]}" || die "could not stop ${pids[*]}"
    fi
}

stop() {
    if [ -e "$CONF" ] && ! grep -qF "$MARK" "$CONF"; then
        die "$CONF was not written by this script; not stopping that Slurm"
    fi
    stop_slurm
    if alive "$MUNGE_PID"; then
        local p
        p=$(cat "$MUNGE_PID")
        kill "$p"
        wait_gone "$p" || die "munged ($p) did not stop"
    fi
    say "stopped"
}

status() {
    local d
    for d in slurmctld slurmd; do
        if alive "$STATE/$d.pid"; then echo "$d: running (pid $(cat "$STATE/$d.pid"))"; else echo "$d: stopped"; fi
    done
    if alive "$MUNGE_PID"; then echo "munged: running (pid $(cat "$MUNGE_PID"))"; else echo "munged: stopped"; fi
    if alive "$STATE/slurmctld.pid"; then sinfo; squeue; else return 3; fi
}

case "$1" in
start) start ;;
stop) stop ;;
status) status ;;
esac
