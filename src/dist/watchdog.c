/* watchdog.c - waits that give up on a lost peer (dist.h, ra_waitall).
 *
 * A launcher notices a rank that exits (mpirun and srun end the job at once),
 * but not one that hangs, is stopped, or sits behind a dead link: every other
 * rank would block in MPI_Waitall forever. So waits poll with MPI_Testall and,
 * after run.timeout seconds without completing, name what they waited for
 * and abort the job. */
#include <sched.h>
#include <stdio.h>

#include "ringattn/dist.h"
#include "ringattn/mem.h"

static double g_timeout = RA_DEFAULT_PEER_TIMEOUT;

void ra_set_peer_timeout(double seconds) { g_timeout = seconds; }
double ra_peer_timeout(void) { return g_timeout; }

int ra_waitall(int n, MPI_Request *req, const char *what, int peer)
{
    if (n <= 0) return MPI_SUCCESS;
    if (g_timeout <= 0) return MPI_Waitall(n, req, MPI_STATUSES_IGNORE);
    const double t0 = ra_now();
    for (unsigned spin = 0;; spin++) {
        int done = 0, rc = MPI_Testall(n, req, &done, MPI_STATUSES_IGNORE);
        if (rc != MPI_SUCCESS || done) return rc;
        if (spin % 64 == 63) {
            if (ra_now() - t0 > g_timeout) break;
            sched_yield(); /* oversubscribed ranks share cores */
        }
    }
    int rank = -1, size = 0;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    if (peer >= 0)
        fprintf(stderr,
                "[rank %d/%d] ringattn: error: %s: nothing from rank %d for %.0f s (run.timeout); rank %d has "
                "died, hangs or is unreachable - ending every rank\n",
                rank, size, what, peer, g_timeout, peer);
    else
        fprintf(stderr,
                "[rank %d/%d] ringattn: error: %s: not every rank arrived within %.0f s (run.timeout); a rank "
                "has died, hangs or is unreachable - ending every rank\n",
                rank, size, what, g_timeout);
    fflush(stderr);
    MPI_Abort(MPI_COMM_WORLD, 1);
    return MPI_ERR_OTHER; /* not reached */
}

int ra_allreduce(const void *send, void *recv, int n, MPI_Datatype type, MPI_Op op, MPI_Comm comm)
{
    MPI_Request req;
    int rc = MPI_Iallreduce(send, recv, n, type, op, comm, &req);
    return rc == MPI_SUCCESS ? ra_waitall(1, &req, "a reduction over all ranks", -1) : rc;
}
