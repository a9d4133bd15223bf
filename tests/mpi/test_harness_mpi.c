/* test_harness_mpi.c - tests/common/mpi_harness.h checks itself:
 *   - a table case sees its index, the rank and P, and its table entry;
 *   - a case skipped on every rank is a skip, not a failure;
 *   - mh_run_case runs a single function with its argument.
 * With --fail-on-last-rank one more case fails a check on the last rank
 * only: the program must then exit non-zero (meson: should_fail); rank 0,
 * which saw nothing wrong itself, prints FAIL for it.
 *
 *   mpirun --oversubscribe -n 3 ./test_harness_mpi [--fail-on-last-rank]
 */
#include <mpi.h>
#include <stdio.h>
#include <string.h>

#include "mpi_harness.h"

typedef struct {
    int value;
    int skip; /* return MH_SKIPPED */
} tcase;

static const tcase cases[] = {
    {.value = 10},
    {.value = 11, .skip = 1},
    {.value = 12},
};

static void case_name(char *buf, size_t cap, const void *arg, const mh_ctx *ctx)
{
    const tcase *c = arg;
    snprintf(buf, cap, "#%d value=%d P=%d", ctx->index, c->value, ctx->P);
}

static mh_outcome run_table_case(const void *arg, const mh_ctx *ctx)
{
    const tcase *c = arg;
    MH_CHECK(c->value == 10 + ctx->index, "entry %d has value %d", ctx->index, c->value);
    MH_CHECK(ctx->rank == mh_rank() && ctx->P == mh_size(), "ctx rank %d/%d, harness %d/%d",
             ctx->rank, ctx->P, mh_rank(), mh_size());
    MH_CHECK(strstr(ctx->name, "value=") != NULL, "name '%s'", ctx->name);
    int sum = 0, one = 1;
    MPI_Allreduce(&one, &sum, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
    MH_CHECK(sum == ctx->P, "collective inside a case: %d ranks answered of %d", sum, ctx->P);
    if (c->skip) {
        mh_note("skipped on purpose");
        return MH_SKIPPED;
    }
    mh_note("value %d", c->value);
    return MH_RAN;
}

static mh_outcome run_single(const void *arg, const mh_ctx *ctx)
{
    MH_CHECK(arg != NULL && *(const int *)arg == 42, "argument not passed through");
    MH_CHECK(ctx->index == 7, "index %d, expected 7", ctx->index);
    return MH_RAN;
}

static mh_outcome fail_on_last_rank(const void *arg, const mh_ctx *ctx)
{
    (void)arg;
    MH_CHECK(ctx->rank != ctx->P - 1, "deliberate failure on the last rank (%d)", ctx->rank);
    return MH_RAN;
}

int main(int argc, char **argv)
{
    mh_init(&argc, &argv, "test_harness_mpi");
    mh_run_table(&(mh_table){.cases = cases, .count = sizeof cases / sizeof cases[0],
                             .size = sizeof cases[0], .name = case_name, .run = run_table_case});
    const int answer = 42;
    mh_run_case("single case with an argument", run_single, &answer, 7);
    if (argc > 1 && strcmp(argv[1], "--fail-on-last-rank") == 0)
        mh_run_case("a check fails on the last rank only", fail_on_last_rank, NULL, 0);
    return mh_finish();
}
