/* test_watchdog_mpi.c - the peer watchdog's verdicts (dist.h, watchdog.c),
 * on 2 ranks with run.timeout = 1 s:
 *   working   rank 0 works for 2.5 s outside any wait, calling
 *             ra_watchdog_working every 20 ms, then sends; rank 1's wait
 *             for it must outlast two timeouts and complete;
 *   late      rank 0 sleeps 1.6 s (answering nothing), then joins the
 *             barrier rank 1 has waited in since the start: rank 0 answers
 *             "waiting" from the next wait, so every rank answers and none
 *             works, yet the barrier completes, and rank 1 must see that
 *             instead of calling a deadlock;
 * run with --rest, the same with ra_set_wait_rest(1) (ranks that share
 * cores sleep in long waits), and rank 1 must use under a quarter of a core
 * while it waits in the working case (spinning, it used all of one; resting,
 * 4 %);
 * and, run with --deadlock (meson: should_fail), both ranks wait for a
 * message nobody sends: the job must end (MPI_Abort, non-zero) rather than
 * hang past meson's timeout. Exit status 1 when a check fails. */
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "ringattn/dist.h"
#include "ringattn/mem.h"

static int failures;
static int resting; /* --rest */

/* CPU seconds this process has used (all its threads) */
static double cpu_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

#define CHECK(cond, ...)                                                                     \
    do {                                                                                     \
        if (!(cond)) {                                                                       \
            fprintf(stderr, "%s:%d: check failed: %s: ", __FILE__, __LINE__, #cond);         \
            fprintf(stderr, __VA_ARGS__);                                                    \
            fprintf(stderr, "\n");                                                           \
            failures++;                                                                      \
        }                                                                                    \
    } while (0)

static void barrier(const char *what)
{
    MPI_Request r;
    MPI_Ibarrier(MPI_COMM_WORLD, &r);
    CHECK(ra_waitall(1, &r, what, -1) == MPI_SUCCESS, "%s", what);
}

static void working_case(int rank)
{
    int token = 7;
    const double t0 = ra_now();
    if (rank == 0) {
        while (ra_now() - t0 < 2.5) {
            usleep(20000);
            ra_watchdog_working();
        }
        MPI_Send(&token, 1, MPI_INT, 1, 11, MPI_COMM_WORLD);
    } else {
        MPI_Request r;
        token = 0;
        const double c0 = cpu_now();
        MPI_Irecv(&token, 1, MPI_INT, 0, 11, MPI_COMM_WORLD, &r);
        CHECK(ra_waitall(1, &r, "the working rank's message", 0) == MPI_SUCCESS, "wait");
        const double waited = ra_now() - t0, cpu = cpu_now() - c0;
        CHECK(token == 7 && waited >= 2.4, "token %d after %.2f s", token, waited);
        if (resting) CHECK(cpu < 0.25 * waited, "a resting wait used %.2f s of CPU in %.2f s", cpu, waited);
        printf("  working: rank 1 waited %.2f s under run.timeout = 1 s and got the message (%s: %.0f %% of a core)\n",
               waited, resting ? "resting" : "polling", 100 * cpu / waited);
    }
    barrier("after the working case");
}

static void late_case(int rank)
{
    const double t0 = ra_now();
    if (rank == 0) usleep(1600000);
    barrier("the late rank's barrier");
    if (rank == 1) printf("  late: the barrier completed after %.2f s\n", ra_now() - t0);
    barrier("after the late case");
}

static void deadlock_case(int rank)
{
    int x = 0;
    MPI_Request r;
    MPI_Irecv(&x, 1, MPI_INT, 1 - rank, 12, MPI_COMM_WORLD, &r); /* nobody sends */
    ra_waitall(1, &r, "a message nobody sends", 1 - rank);
    fprintf(stderr, "rank %d: a wait for a message nobody sends returned\n", rank);
}

int main(int argc, char **argv)
{
    MPI_Init(&argc, &argv);
    int rank, size;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    if (size != 2) {
        if (rank == 0) fprintf(stderr, "test_watchdog_mpi: needs 2 ranks, not %d\n", size);
        MPI_Finalize();
        return 2;
    }
    ra_watchdog_init(MPI_COMM_WORLD);
    ra_set_peer_timeout(1.0);
    if (argc > 1 && strcmp(argv[1], "--deadlock") == 0) {
        deadlock_case(rank);
        MPI_Finalize();
        return 0; /* not reached: the watchdog ends the job */
    }
    resting = argc > 1 && strcmp(argv[1], "--rest") == 0;
    ra_set_wait_rest(resting);
    working_case(rank);
    late_case(rank);
    int all = 0;
    MPI_Allreduce(&failures, &all, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
    if (rank == 0) printf("watchdog: %s\n", all ? "FAILED" : "ok");
    MPI_Finalize();
    return all ? 1 : 0;
}
