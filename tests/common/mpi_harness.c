/* mpi_harness.c - see mpi_harness.h. */
#include "mpi_harness.h"

#include <mpi.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "ringattn/threads.h"

static struct {
    const char *prog;
    int rank, P;
    double t_start;
    int passed, failed, skipped;
    const char *case_name; /* current case, for failure messages */
    int fails;             /* failures of the current case on this rank */
    char note[512];
} g = {.prog = "test", .case_name = ""};

void mh_init(int *argc, char ***argv, const char *prog)
{
    int provided = MPI_THREAD_SINGLE; /* FUNNELED, as the program: threads compute, one calls MPI */
    MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided);
    MPI_Comm_rank(MPI_COMM_WORLD, &g.rank);
    MPI_Comm_size(MPI_COMM_WORLD, &g.P);
    g.prog = prog;
    g.t_start = MPI_Wtime();
    mh_threads_from_env();
}

void mh_threads_from_env(void)
{
    const char *t = getenv("RA_TEST_THREADS");
    if (t && atoi(t) > 0) ra_threads_set(atoi(t));
}

int mh_rank(void) { return g.rank; }
int mh_size(void) { return g.P; }

void mh_note(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(g.note, sizeof g.note, fmt, ap);
    va_end(ap);
}

void mh_fail(const char *file, int line, const char *cond, const char *fmt, ...)
{
    g.fails++;
    fprintf(stderr, "%s:%d: [rank %d/%d] case '%s': check failed: %s: ", file, line, g.rank, g.P,
            g.case_name, cond);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

void *mh_xmalloc(size_t bytes)
{
    void *p = malloc(bytes ? bytes : 1);
    if (!p) {
        fprintf(stderr, "[rank %d/%d] out of memory (%zu bytes)\n", g.rank, g.P, bytes);
        MPI_Abort(MPI_COMM_WORLD, 2);
    }
    return p;
}

void mh_run_case(const char *name, mh_run_fn run, const void *arg, int index)
{
    g.case_name = name;
    g.fails = 0;
    g.note[0] = '\0';
    mh_ctx ctx = {.rank = g.rank, .P = g.P, .index = index, .name = name};
    int skipped = run(arg, &ctx) == MH_SKIPPED;

    /* one verdict on every rank: any failure anywhere fails the case, and
     * ranks that disagree about skipping are a failure of the test itself */
    int mine[2] = {skipped, -skipped}, both[2], fails = 0;
    MPI_Allreduce(mine, both, 2, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
    if (both[0] != -both[1])
        MH_CHECK(both[0] == -both[1], "some ranks skipped the case and others ran it");
    MPI_Allreduce(&g.fails, &fails, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
    const char *verdict;
    if (fails) verdict = "FAIL", g.failed++;
    else if (skipped) verdict = "skip", g.skipped++;
    else verdict = "ok  ", g.passed++;
    if (g.rank == 0) {
        if (skipped && !fails)
            printf("  %s %s%s%s%s\n", verdict, name, g.note[0] ? " (" : "", g.note,
                   g.note[0] ? ")" : "");
        else
            printf("  %s %s%s%s\n", verdict, name, g.note[0] ? "\n      " : "", g.note);
        fflush(stdout);
    }
    g.case_name = "";
}

void mh_run_table(const mh_table *t)
{
    const char *base = t->cases;
    for (size_t i = 0; i < t->count; i++) {
        const void *c = base + i * t->size;
        char name[256];
        mh_ctx ctx = {.rank = g.rank, .P = g.P, .index = (int)i, .name = ""};
        t->name(name, sizeof name, c, &ctx);
        mh_run_case(name, t->run, c, (int)i);
    }
}

int mh_finish(void)
{
    int failed = 0;
    MPI_Allreduce(&g.failed, &failed, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
    if (g.rank == 0) {
        printf("%s: P=%d, %.1f s, %d skipped\n", g.prog, g.P, MPI_Wtime() - g.t_start, g.skipped);
        printf("%d passed, %d failed\n", g.passed, g.failed);
        fflush(stdout);
    }
    MPI_Finalize();
    return failed ? 1 : 0;
}
