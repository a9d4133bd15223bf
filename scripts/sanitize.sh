#!/usr/bin/env bash
# sanitize.sh [asan|valgrind|all] - the unit and mpi suites under
# AddressSanitizer + UndefinedBehaviorSanitizer and/or valgrind (CI runs
# "all"). Sets up the build dirs when missing, builds, runs
# `meson test --setup asan|valgrind`, prints one summary line per checker and
# a total, and exits non-zero on any failure. See docs/fuzzing.md.
#
#   build-asan  gcc -Db_sanitize=address,undefined -Db_lundef=false, -O2 -g
#   build-vg    gcc -Dnative=false (valgrind 3.19 cannot decode AVX-512), -O2 -g
#
# The mpi tests are the slow part; to fit CI (about 6 minutes on 2 cores) the
# defaults run a subset, and these variables widen it:
#   SAN_ASAN_MAX_RANKS=3        asan: mpi tests of at most this many ranks
#   SAN_VG_MAX_RANKS=2          valgrind: the same
#   SAN_VG_MPI="warm model_sweep"  valgrind: which mpi test families to run
#                               ("ring combiner warm model_sweep" for all: ~10 min more)
# The asan run includes every mpi family (model_sweep too: the model at odd
# shapes, every head, preconditioner and layout, training and decoding).
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1

mode=${1:-all}
case "$mode" in
  asan|valgrind|all) ;;
  *) echo "usage: $0 [asan|valgrind|all]" >&2; exit 2 ;;
esac
bash scripts/install-deps.sh >/dev/null || exit 1
if [ "$mode" != asan ] && ! command -v valgrind >/dev/null 2>&1; then
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -q && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q valgrind || exit 1
fi
. scripts/env.sh

asan_build=${RINGATTN_ASAN_BUILD:-build-asan}
vg_build=${RINGATTN_VG_BUILD:-build-vg}
asan_max=${SAN_ASAN_MAX_RANKS:-3}
vg_max=${SAN_VG_MAX_RANKS:-2}
vg_mpi=${SAN_VG_MPI:-warm model_sweep}

summary=()
failed=0

# count KEY LOG: the number meson test printed for "KEY:" (0 if none).
count() { awk -v k="$1" -F: '$1 == k { gsub(/ /, "", $2); n = $2 } END { print n + 0 }' "$2"; }

# setup_build DIR MESON-OPTIONS...: configure once, then build everything.
setup_build() {
  local dir=$1
  shift
  if [ ! -f "$dir/build.ninja" ]; then
    meson setup "$dir" "$@" >/dev/null || { echo "sanitize.sh: meson setup $dir failed" >&2; return 1; }
  fi
  ninja -C "$dir" >/dev/null || { ninja -C "$dir"; return 1; }
}

# run_checker NAME BUILD-DIR SETUP-ARGS... -- MESON-TEST-ARGS...
run_checker() {
  local name=$1 dir=$2 t0=$SECONDS log
  shift 2
  log=$(mktemp)
  meson test -C "$dir" --no-rebuild --print-errorlogs --num-processes 2 "$@" >"$log" 2>&1
  local rc=$?
  grep -E '^ *[0-9]+/[0-9]+ ' "$log"
  [ "$rc" -ne 0 ] && grep -v -E '^ *[0-9]+/[0-9]+ ' "$log" | tail -60
  local ok fail skip secs=$((SECONDS - t0))
  ok=$(count Ok "$log")
  fail=$(($(count Fail "$log") + $(count Timeout "$log") + $(count "Unexpected Pass" "$log")))
  skip=$(count Skipped "$log")
  [ "$rc" -ne 0 ] && [ "$fail" -eq 0 ] && fail=1 # meson failed before testing
  [ "$rc" -ne 0 ] && failed=1
  summary+=("$(printf '%-8s %3d passed, %d failed, %2d skipped in %dm%02ds' "$name" "$ok" "$fail" "$skip" \
    $((secs / 60)) $((secs % 60)))")
  rm -f "$log"
}

if [ "$mode" != valgrind ]; then
  t0=$SECONDS
  if CC=${SAN_CC:-gcc} setup_build "$asan_build" -Dbuildtype=debugoptimized \
      -Db_sanitize=address,undefined -Db_lundef=false; then
    echo "sanitize.sh: $asan_build built in $((SECONDS - t0)) s; asan: unit, mpi P <= $asan_max"
    RA_TEST_MAX_RANKS=$asan_max run_checker asan "$asan_build" --setup asan --suite unit --suite mpi
  else
    failed=1
    summary+=("asan     build failed")
  fi
fi

if [ "$mode" != asan ]; then
  t0=$SECONDS
  if setup_build "$vg_build" -Dnative=false -Dbuildtype=debugoptimized; then
    native=$(meson introspect --buildoptions "$vg_build" |
      python3 -c 'import json,sys; print([o["value"] for o in json.load(sys.stdin) if o["name"] == "native"][0])')
    if [ "$native" != "False" ]; then
      echo "sanitize.sh: $vg_build has native=true; valgrind 3.19 cannot run AVX-512 code:" \
        "meson configure $vg_build -Dnative=false" >&2
      exit 1
    fi
    # unit tests, plus the chosen mpi families (test names are exact)
    names=()
    while IFS= read -r t; do
      names+=("$t")
    done < <(meson test -C "$vg_build" --no-rebuild --list --suite unit 2>/dev/null | sed -n 's|^[^ ]* / ||p' |
             grep -v -x -e test_attn_threads -e test_threads_layers)
    # (the thread sweeps at 1-4 threads take many minutes under valgrind;
    # they run natively and under asan)
    while IFS= read -r t; do
      for fam in $vg_mpi; do
        case "$t" in "$fam P="*) names+=("$t") ;; esac
      done
    done < <(meson test -C "$vg_build" --no-rebuild --list --suite mpi 2>/dev/null | sed -n 's|^[^ ]* / ||p')
    echo "sanitize.sh: $vg_build built in $((SECONDS - t0)) s; valgrind: unit, mpi ($vg_mpi) P <= $vg_max"
    RA_TEST_MAX_RANKS=$vg_max run_checker valgrind "$vg_build" --setup valgrind "${names[@]}"
  else
    failed=1
    summary+=("valgrind build failed")
  fi
fi

echo "---- sanitize.sh $mode ----"
printf '%s\n' "${summary[@]}"
if [ "$failed" -ne 0 ]; then
  echo "sanitize: FAILED"
else
  echo "sanitize: all passed"
fi
exit "$failed"
