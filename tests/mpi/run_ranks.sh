#!/bin/sh
# run_ranks.sh MPIRUN NP EXE [ARGS...] - the mpi suite's launcher:
#     MPIRUN --oversubscribe -n NP $RA_TEST_WRAPPER EXE ARGS...
# RA_TEST_WRAPPER (empty normally; set by `meson test --setup valgrind`, see
# tests/meson.build) goes in front of every rank, so a checker runs the ranks
# rather than mpirun. RA_TEST_MAX_RANKS=N skips (exit 77) tests of more than
# N ranks, for slow checkers.
mpirun=$1
np=$2
shift 2
if [ -n "${RA_TEST_MAX_RANKS:-}" ] && [ "$np" -gt "$RA_TEST_MAX_RANKS" ]; then
  echo "run_ranks.sh: skipped: $np ranks > RA_TEST_MAX_RANKS=$RA_TEST_MAX_RANKS"
  exit 77
fi
# RA_TEST_WRAPPER is split into words on purpose (a command and its options).
# shellcheck disable=SC2086
exec "$mpirun" --oversubscribe -n "$np" ${RA_TEST_WRAPPER:-} "$@"
