#!/usr/bin/env bash
# test_cli.sh RINGATTN MPIRUN - end-to-end tests of the ringattn command line.
set -u
RA=$1
MPIRUN=$2
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
pass=0
fail=0
ok() { pass=$((pass + 1)); echo "ok: $1"; }
bad() { fail=$((fail + 1)); echo "FAIL: $1"; }

"$RA" --help | grep -q "ringattn" && ok "--help" || bad "--help"

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
