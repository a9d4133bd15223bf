#!/usr/bin/env bash
# netns-cluster.sh - a cluster of H "hosts" on one machine, built from Linux
# network and UTS namespaces, for running ringattn across hosts over TCP.
#
#   netns-cluster.sh up H              build hosts 1..H (1 <= H <= 8); idempotent
#   netns-cluster.sh down              remove every host, the bridge and the state
#   netns-cluster.sh status            list the hosts, addresses and link shaping
#   netns-cluster.sh run H [--ppn K] [--threads T] [--own-cores] -- ARGS...
#                                      mpirun ARGS across hosts 1..H, K slots each
#   netns-cluster.sh shape RATE DELAY  shape every host's link (e.g. 1gbit 0.5ms)
#   netns-cluster.sh shape off         remove the shaping
#
# What `up` builds (root only):
#   - a bridge ra-br0 in the root namespace, with no address: the root
#     namespace takes no part in the traffic, which stays between the hosts;
#   - per host i: a network namespace ra-host<i> with loopback up and one end
#     of a veth pair named eth0 carrying 10.213.0.(10+i)/24; the other end,
#     ra-veth<i>, is enslaved to the bridge;
#   - per host i: a persistent UTS namespace whose hostname is ra-host<i>
#     (/run/ringattn-netns/ra/uts/ra-host<i>), entered together with the network
#     namespace by scripts/cluster/netns-rsh;
#   - /run/ringattn-netns/ra/hosts (an /etc/hosts-style map of address and name)
#     and /etc/netns/ra-host<i>/hosts (the same map; `ip netns exec` mounts
#     it over /etc/hosts inside the host, so host names resolve there).
#
# `run` starts mpirun inside host 1 (network and hostname), so mpirun and every
# daemon talk over the bridge, never through the root namespace. Open MPI
# reaches the other hosts through scripts/cluster/netns-rsh (plm_rsh_agent),
# uses TCP only between processes (pml ob1 with btl tcp,self: no shared
# memory, not even between two ranks of one host), and only the cluster
# subnet for both the MPI traffic (btl_tcp_if_include) and its out-of-band channel
# (oob_tcp_if_include). Processes are not bound to cores (--bind-to none):
# every host sees the same physical cores. ARGS go to mpirun after these
# options: e.g. `run 2 --ppn 2 -- build/src/ringattn attn ...` runs 4 ranks;
# add -n, --map-by, -x as usual. --threads T exports OPENBLAS_NUM_THREADS=T.
# --own-cores gives each host its own slice of the machine's cores, like a
# real node: host i's processes (mpirun or the daemon, and their ranks) run
# under `taskset` on cores [(i-1)n/H, in/H) of the n online cores (H <= n),
# so no two hosts' ranks take turns on one core.
#
# `shape` puts a qdisc on both ends of every host's veth, so each direction
# of each host's link is limited (a full-duplex NIC): netem rate RATE delay
# DELAY when the kernel has netem; otherwise tbf rate RATE (the delay cannot
# be emulated without netem, and the script says so). It applies to the
# hosts up at the time: shape again after growing the cluster.
set -euo pipefail

# RA_CLUSTER (a short tag, default ra) names everything, so that two clusters
# can coexist (the test uses its own): namespaces TAG-host<i>, bridge TAG-br0,
# veths TAG-veth<i>, state /run/ringattn-netns/TAG; RA_CLUSTER_SUBNET (first
# three octets, default 10.213.0) gives the addresses.
TAG=${RA_CLUSTER:-ra}
[[ "$TAG" =~ ^[a-z][a-z0-9]{0,5}$ ]] || { echo "netns-cluster: RA_CLUSTER must be 1-6 lower-case letters/digits" >&2; exit 1; }
PREFIX=$TAG-host
BRIDGE=$TAG-br0
VETH=$TAG-veth
SUBNET=${RA_CLUSTER_SUBNET:-10.213.0}
STATE=/run/ringattn-netns/$TAG
export RA_CLUSTER=$TAG # for netns-rsh, called by mpirun and the daemons
# a cluster that is up keeps the subnet it was built with
if [ -f "$STATE/subnet" ]; then
    built=$(cat "$STATE/subnet")
    [ -z "${RA_CLUSTER_SUBNET:-}" ] || [ "$RA_CLUSTER_SUBNET" = "$built" ] ||
        { echo "netns-cluster: cluster $TAG is up on $built.0/24, not $RA_CLUSTER_SUBNET.0/24" >&2; exit 1; }
    SUBNET=$built
fi
[[ "$SUBNET" =~ ^(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])(\.(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])){2}$ ]] ||
    { echo "netns-cluster: RA_CLUSTER_SUBNET '$SUBNET': three octets of 0-255, e.g. 10.213.0" >&2; exit 1; }
MAXH=8
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

die() { echo "netns-cluster: $*" >&2; exit 1; }
# a command given the wrong words (extra ones were ignored, exit 0): its usage, exit 2
usage() { echo "netns-cluster: $1" >&2; echo "usage: netns-cluster.sh $2" >&2; exit 2; }
need_root() { [ "$(id -u)" -eq 0 ] || die "must run as root"; }
addr_of() { echo "$SUBNET.$((10 + $1))"; }
have_ns() { [ -e "/run/netns/$PREFIX$1" ]; }
hosts_up() { # the number of consecutive hosts 1..n that exist
    local n=0
    while [ $n -lt $MAXH ] && have_ns $((n + 1)); do n=$((n + 1)); done
    echo $n
}

write_hosts() { # H: the name map, in the state dir and per host under /etc/netns
    local h=$1 i map
    map=$(printf '127.0.0.1\tlocalhost\n'; for i in $(seq 1 "$h"); do printf '%s\t%s%s\n' "$(addr_of "$i")" "$PREFIX" "$i"; done)
    echo "$map" >"$STATE/hosts"
    for i in $(seq 1 "$h"); do
        mkdir -p "/etc/netns/$PREFIX$i"
        echo "$map" >"/etc/netns/$PREFIX$i/hosts"
    done
}

host_up() { # I: create host I if missing (every step checks first: idempotent)
    local i=$1 ns=$PREFIX$1 veth=$VETH$1 uts="$STATE/uts/$PREFIX$1"
    have_ns "$i" || ip netns add "$ns"
    ip netns exec "$ns" ip link set lo up
    if ! ip netns exec "$ns" ip link show eth0 >/dev/null 2>&1; then
        ip link del "$veth" 2>/dev/null || true
        ip link add "$veth" type veth peer name "$TAG-vpeer$i"
        ip link set "$TAG-vpeer$i" netns "$ns"
        ip netns exec "$ns" ip link set "$TAG-vpeer$i" name eth0
    fi
    ip link set "$veth" master "$BRIDGE"
    ip link set "$veth" up
    ip netns exec "$ns" ip addr replace "$(addr_of "$i")/24" dev eth0
    ip netns exec "$ns" ip link set eth0 up
    if ! mountpoint -q "$uts" 2>/dev/null; then
        mkdir -p "$STATE/uts"
        touch "$uts"
        unshare --uts="$uts" hostname "$ns"
    fi
}

cmd_up() {
    local h=${1:-}
    [ $# -le 1 ] || usage "up: extra argument(s): ${*:2}" "up H"
    [[ "$h" =~ ^[1-8]$ ]] || die "up H: H must be 1..$MAXH"
    need_root
    mkdir -p "$STATE"
    echo "$SUBNET" >"$STATE/subnet"
    if ! ip link show "$BRIDGE" >/dev/null 2>&1; then
        ip link add "$BRIDGE" type bridge
    fi
    # no address on the bridge: the root namespace is not a host
    ip link set "$BRIDGE" up
    local i
    for i in $(seq 1 "$h"); do host_up "$i"; done
    # hosts beyond H from an earlier `up` stay; the map covers all that exist
    write_hosts "$(hosts_up)"
    # with ping installed, check that host 1 reaches every host over the bridge
    if command -v ping >/dev/null; then
        for i in $(seq 2 "$h"); do
            ip netns exec "${PREFIX}1" ping -c 1 -W 2 "$(addr_of "$i")" >/dev/null ||
                die "host 1 cannot reach host $i ($(addr_of "$i"))"
        done
    fi
    echo "netns-cluster: $h host(s) up: $(for i in $(seq 1 "$h"); do printf '%s%s=%s ' "$PREFIX" "$i" "$(addr_of "$i")"; done)"
}

cmd_down() {
    [ $# -eq 0 ] || usage "down: extra argument(s): $*" "down"
    need_root
    local i
    for i in $(seq 1 $MAXH); do
        if [ -e "$STATE/uts/$PREFIX$i" ]; then
            umount "$STATE/uts/$PREFIX$i" 2>/dev/null || true
            rm -f "$STATE/uts/$PREFIX$i"
        fi
        ip netns del "$PREFIX$i" 2>/dev/null || true # takes its veth end with it
        ip link del "$VETH$i" 2>/dev/null || true
        rm -rf "/etc/netns/$PREFIX$i"
    done
    ip link del "$BRIDGE" 2>/dev/null || true
    rmdir /etc/netns 2>/dev/null || true
    rm -rf "$STATE"
    rmdir /run/ringattn-netns 2>/dev/null || true
}

cmd_status() {
    [ $# -eq 0 ] || usage "status: extra argument(s): $*" "status"
    local n i
    n=$(hosts_up)
    echo "hosts up: $n"
    for i in $(seq 1 "$n"); do
        printf '%s%s %s hostname=%s qdisc=%s\n' "$PREFIX" "$i" "$(addr_of "$i")" \
            "$("$HERE/netns-rsh" "$PREFIX$i" hostname 2>/dev/null || echo '?')" \
            "$(ip netns exec "$PREFIX$i" tc qdisc show dev eth0 | head -1)"
    done
}

cmd_shape() {
    local rate=${1:-} delay=${2:-} n i dev ns use_netem=1 burst
    # the words first, before root, the hosts or any qdisc: a bad rate was
    # otherwise blamed on the kernel ("no netem"), then failed in tbf
    if [ "$rate" = off ]; then
        [ $# -eq 1 ] || usage "shape off: extra argument(s): ${*:2}" "shape off"
    else
        [ $# -eq 2 ] || usage "shape: $# argument(s), expected RATE DELAY or off${3:+ (extra: ${*:3})}" "shape RATE DELAY | shape off"
        # the units tc_rate_bytes knows (tc's own names); a bare number is bit/s
        [[ "${rate,,}" =~ ^[0-9]+(\.[0-9]+)?(bit|kbit|mbit|gbit|tbit|bps|kbps|mbps|gbps)?$ ]] &&
            [[ "$rate" =~ [1-9] ]] ||
            usage "shape: RATE '$rate': a positive number with a unit (bit, kbit, mbit, gbit, tbit, bps, kbps, mbps, gbps), e.g. 1gbit" \
                "shape RATE DELAY (e.g. 1gbit 0.5ms)"
        [[ "$delay" =~ ^[0-9]+(\.[0-9]+)?(s|sec|secs|ms|msec|msecs|us|usec|usecs)?$ ]] ||
            usage "shape: DELAY '$delay': a number with a unit (s, ms, us), e.g. 0.5ms or 0ms" "shape RATE DELAY (e.g. 1gbit 0.5ms)"
    fi
    need_root
    n=$(hosts_up)
    [ "$n" -ge 1 ] || die "no hosts: run 'up H' first"
    if [ "$rate" = off ]; then
        for i in $(seq 1 "$n"); do
            tc qdisc del dev "$VETH$i" root 2>/dev/null || true
            ip netns exec "$PREFIX$i" tc qdisc del dev eth0 root 2>/dev/null || true
        done
        echo "netns-cluster: shaping removed"
        return
    fi
    # netem where the kernel has it (tried on host 1's eth0 first)
    if ! ip netns exec "${PREFIX}1" tc qdisc replace dev eth0 root netem rate "$rate" delay "$delay" limit 10000 2>/dev/null; then
        use_netem=0
        echo "netns-cluster: this kernel has no netem qdisc: applying tbf rate $rate; the delay $delay is NOT emulated" >&2
    fi
    # tbf bucket: 1 ms at the rate, at least 64 KiB (a GSO packet)
    burst=$(tc_rate_bytes "$rate")
    burst=$((burst / 1000))
    [ "$burst" -ge 65536 ] || burst=65536
    for i in $(seq 1 "$n"); do
        for side in root ns; do
            if [ $side = root ]; then ns=(); dev=$VETH$i; else ns=(ip netns exec "$PREFIX$i"); dev=eth0; fi
            if [ $use_netem = 1 ]; then
                "${ns[@]}" tc qdisc replace dev "$dev" root netem rate "$rate" delay "$delay" limit 10000
            else
                "${ns[@]}" tc qdisc replace dev "$dev" root tbf rate "$rate" burst "$burst" latency 50ms
            fi
        done
    done
    echo "netns-cluster: $n host link(s) shaped: $( [ $use_netem = 1 ] && echo "netem rate $rate delay $delay" || echo "tbf rate $rate burst $burst" ) (each direction)"
}

tc_rate_bytes() { # RATE in tc units (bit, kbit, mbit, gbit, bps, ...) -> bytes per second
    local r=${1,,} num unit
    num=${r%%[a-z]*}
    unit=${r#"$num"}
    awk -v n="$num" -v u="$unit" 'BEGIN {
        m["bit"] = 1/8; m["kbit"] = 1e3/8; m["mbit"] = 1e6/8; m["gbit"] = 1e9/8; m["tbit"] = 1e12/8
        m["bps"] = 1; m["kbps"] = 1e3; m["mbps"] = 1e6; m["gbps"] = 1e9; m[""] = 1/8
        if (!(u in m)) { print "bad rate unit " u > "/dev/stderr"; exit 1 }
        printf "%d\n", n * m[u] }'
}

cmd_run() {
    local h=${1:-} ppn=1 threads= own=0
    [[ "$h" =~ ^[1-8]$ ]] || die "run H [--ppn K] [--threads T] [--own-cores] -- ARGS"
    shift
    while [ $# -gt 0 ] && [ "$1" != -- ]; do
        case $1 in
            --ppn) [[ "${2:-}" =~ ^[1-9][0-9]{0,2}$ ]] || die "run --ppn: a rank count 1-999, got '${2:-}'"
                   ppn=$2; shift 2 ;;
            --threads) [[ "${2:-}" =~ ^[1-9][0-9]{0,2}$ ]] || die "run --threads: a thread count 1-999, got '${2:-}'"
                       threads=$2; shift 2 ;;
            --own-cores) own=1; shift ;;
            *) die "run: unknown option $1 (mpirun options go after --)" ;;
        esac
    done
    [ "${1:-}" = -- ] || die "run H [--ppn K] -- ARGS: missing --"
    shift
    need_root
    [ "$(hosts_up)" -ge "$h" ] || die "only $(hosts_up) host(s) up: run 'up $h' first"
    local hostfile i n pin=()
    n=$(nproc --all)
    [ "$own" = 0 ] || [ "$h" -le "$n" ] || die "run --own-cores: $h hosts but only $n cores (one core at least per host)"
    hostfile=$(mktemp "$STATE/hostfile.XXXXXX")
    for i in $(seq 1 "$h"); do echo "$PREFIX$i slots=$ppn" >>"$hostfile"; done
    # per host, the cores its processes may use (netns-rsh reads cpus/HOST)
    rm -rf "$STATE/cpus"
    if [ "$own" = 1 ]; then
        mkdir -p "$STATE/cpus"
        for i in $(seq 1 "$h"); do
            echo "$(((i - 1) * n / h))-$((i * n / h - 1))" >"$STATE/cpus/$PREFIX$i"
        done
        pin=(taskset -c "$(cat "$STATE/cpus/${PREFIX}1")")
    fi
    export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
    [ -z "$threads" ] || export OPENBLAS_NUM_THREADS="$threads"
    local rc=0
    ip netns exec "${PREFIX}1" nsenter --uts="$STATE/uts/${PREFIX}1" -- "${pin[@]}" mpirun \
        --hostfile "$hostfile" \
        --mca plm_rsh_agent "$HERE/netns-rsh" \
        --mca pml ob1 \
        --mca btl tcp,self \
        --mca btl_tcp_if_include "$SUBNET.0/24" \
        --mca oob_tcp_if_include "$SUBNET.0/24" \
        --bind-to none \
        "$@" || rc=$?
    rm -f "$hostfile"
    rm -rf "$STATE/cpus"
    return $rc
}

case ${1:-} in
    up) shift; cmd_up "$@" ;;
    down) shift; cmd_down "$@" ;;
    status) shift; cmd_status "$@" ;;
    shape) shift; cmd_shape "$@" ;;
    run) shift; cmd_run "$@" ;;
    *) sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
esac
