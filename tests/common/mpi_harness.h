/* mpi_harness.h - the one way multi-rank tests (tests/mpi/) run their cases.
 *
 * A test is a table of cases and a function that runs one case on every
 * rank of MPI_COMM_WORLD. Inside it, MH_CHECK records a failure on this
 * rank with file:line, rank, case and the numbers; after the case the
 * failures are summed over the ranks, so every rank agrees on the verdict
 * even when only one rank saw the problem. Rank 0 prints one line per case
 *
 *       ok   NAME            (or FAIL / skip)
 *           NOTE             (optional detail, see mh_note)
 *
 * and mh_finish prints the closing lines of every test program
 *
 *     PROG: P=4, 3.2 s, 1 skipped
 *     12 passed, 1 failed
 *
 * and returns the exit status: non-zero on any failed case.
 *
 *     static mh_outcome run_case(const void *arg, const mh_ctx *ctx) {
 *         const tcase *c = arg;
 *         if (c->L < ctx->P) return MH_SKIPPED;
 *         MH_CHECK(err <= 1e-5, "O vs reference %.3e", err);
 *         return MH_RAN;
 *     }
 *     int main(int argc, char **argv) {
 *         mh_init(&argc, &argv, "test_x_mpi");
 *         mh_run_table(&(mh_table){.cases = cases, .count = N, .size = sizeof cases[0],
 *                                  .name = case_name, .run = run_case});
 *         return mh_finish();
 *     }
 *
 * The run function must make the same collective calls on every rank,
 * whatever its checks find (decide together with an MPI_Allreduce before
 * leaving early). */
#ifndef TESTS_MPI_HARNESS_H
#define TESTS_MPI_HARNESS_H

#include <stddef.h>

typedef enum { MH_RAN, MH_SKIPPED } mh_outcome;

typedef struct {
    int rank, P;      /* this rank in MPI_COMM_WORLD, and the number of ranks */
    int index;        /* the case's index in its table (seeds derive from it) */
    const char *name; /* the case's name */
} mh_ctx;

typedef mh_outcome (*mh_run_fn)(const void *arg, const mh_ctx *ctx);

typedef struct {
    const void *cases;  /* the table: count entries of size bytes */
    size_t count, size;
    /* the case's name into buf (may depend on P, e.g. L = P + 1) */
    void (*name)(char *buf, size_t cap, const void *c, const mh_ctx *ctx);
    mh_run_fn run;
} mh_table;

/* MPI_Init; prog names the program in the closing line. */
void mh_init(int *argc, char ***argv, const char *prog);
/* RA_TEST_THREADS=N in the environment: N threads per rank (threads.h), so
 * the MPI suites also run with threads; mh_init calls it. */
void mh_threads_from_env(void);
int mh_rank(void);
int mh_size(void);

/* One case: run(arg) on every rank, then the verdict agreed over ranks. */
void mh_run_case(const char *name, mh_run_fn run, const void *arg, int index);
/* Every case of a table, in order. */
void mh_run_table(const mh_table *t);

/* The detail line printed under the current case's verdict (rank 0's text;
 * call it on every rank after the case's reductions), or, for a skipped
 * case, the reason. */
void mh_note(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Record a failure of the current case on this rank (use MH_CHECK). */
void mh_fail(const char *file, int line, const char *cond, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
#define MH_CHECK(cond, ...)                                                   \
    do {                                                                      \
        if (!(cond)) mh_fail(__FILE__, __LINE__, #cond, __VA_ARGS__);         \
    } while (0)

/* malloc that never returns NULL: out of memory aborts every rank. */
void *mh_xmalloc(size_t bytes);

/* Closing lines on rank 0, MPI_Finalize; the exit status for main. */
int mh_finish(void);

#endif
