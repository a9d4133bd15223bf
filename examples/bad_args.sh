#!/bin/sh
# bad_args.sh MPIRUN EXAMPLE - the example's bad arguments are usage errors:
# exit 2 and one line naming the argument, before any work (a bad layout ran
# to "= inf FAIL", and 'abc' ran L = 0).
# every rank exits 2 on its own: no 1 s grace from mpirun per run (SIGTERM,
# then SIGKILL) for ranks already gone (28 s of this test's 29 under asan)
export OMPI_MCA_odls_base_sigkill_timeout=0
mpirun=$1
exe=$2
fail=0
check() { # WANT ARGS...: the example on 2 ranks exits 2, stderr holds WANT, no result line
    want=$1
    shift
    "$mpirun" --oversubscribe -n 2 "$exe" "$@" >out.$$ 2>err.$$ </dev/null
    rc=$?
    if [ "$rc" -ne 2 ] || ! grep -q -- "$want" err.$$ || grep -q 'FAIL\|OK' out.$$; then
        echo "FAIL: ring_attention $*: exit $rc, stderr: $(head -c 300 err.$$), stdout: $(head -c 200 out.$$)"
        fail=1
    else
        echo "ok: ring_attention $*: exit 2, '$want'"
    fi
    rm -f out.$$ err.$$
}
check "layout 'diagonal' is not contiguous, zigzag or striped" 100 diagonal
check "L 'abc' is not a whole number" abc
check "L '0' is not a whole number" 0
check "L '99999999999999999999' is not a whole number" 99999999999999999999
check "unexpected argument 'x'" 100 zigzag x
exit $fail
