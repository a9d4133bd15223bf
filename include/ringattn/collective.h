/* collective.h - every collective and wait of ringattn, in one place.
 *
 * Each collective is started non-blocking and finished by ra_waitall
 * (dist.h), so a dead or hung peer ends the job after the peer timeout with
 * a message that names what was awaited and the ranks that do not answer,
 * instead of hanging every rank. Each also adds the bytes this rank
 * contributes to a per-process counter, which heads and benchmarks read
 * before and after a call to report their traffic:
 *
 *     double b0 = ra_comm_bytes();
 *     RA_TRY(ra_allreduce_named(MPI_IN_PLACE, g, n, MPI_FLOAT, MPI_SUM, comm, "summary gradients"));
 *     sent += ra_comm_bytes() - b0;
 *
 * `what` names the operation in timeout and error messages. Failures return
 * RA_ERR_MPI with a message naming what, the rank and MPI's error string.
 *
 * Bytes counted (nothing on a communicator of one rank): allreduce
 * 2 (P-1)/P of the buffer (rounded down) (what a bandwidth-optimal reduction sends per
 * rank); allgatherv the rank's own part once per other rank; alltoallv the
 * parts for other ranks; bcast the buffer once per other rank at the root;
 * gather the part at every rank but the root; barrier nothing; ring
 * transfers (ring_comm) the payload sent. */
#ifndef RINGATTN_COLLECTIVE_H
#define RINGATTN_COLLECTIVE_H

#include <mpi.h>

#include "ringattn/status.h"

/* Bytes this process has contributed to collectives and ring transfers. */
double ra_comm_bytes(void);
/* Count bytes sent outside these wrappers (the ring's point-to-point sends). */
void ra_comm_add_bytes(double bytes);

/* Rank r of comm as a rank of MPI_COMM_WORLD, the numbering that messages
 * use (mpirun's, the grid printout's): a ring of a data x context grid
 * numbers its ranks apart. r itself when it has none there. Collective-free
 * but not free: call it once per peer, when the communicator is set up. */
int ra_world_rank(MPI_Comm comm, int r);

/* An MPI error code as an RA_ERR_MPI failure naming what and the rank. */
ra_status ra_mpi_fail(int code, const char *what, const char *file, int line);
#define RA_MPI_TRY(call, what)                                                \
    do {                                                                      \
        int ra_mpi_rc_ = (call);                                              \
        if (ra_mpi_rc_ != MPI_SUCCESS)                                        \
            return ra_mpi_fail(ra_mpi_rc_, (what), __FILE__, __LINE__);       \
    } while (0)

/* Finish n requests under the peer timeout (ra_waitall); peer: the awaited
 * rank of MPI_COMM_WORLD (ra_world_rank), < 0: a collective of all ranks. */
ra_status ra_wait(int n, MPI_Request *req, const char *what, int peer);

/* Start an allreduce; finish it with ra_wait (overlap it with work). */
ra_status ra_iallreduce(const void *send, void *recv, int n, MPI_Datatype type, MPI_Op op, MPI_Comm comm,
                        MPI_Request *req, const char *what);

/* Blocking forms: start, then ra_wait. */
ra_status ra_allreduce_named(const void *send, void *recv, int n, MPI_Datatype type, MPI_Op op, MPI_Comm comm,
                             const char *what);
/* ra_allreduce_named with what = "a reduction over all ranks". */
ra_status ra_allreduce(const void *send, void *recv, int n, MPI_Datatype type, MPI_Op op, MPI_Comm comm);
ra_status ra_allgatherv(const void *send, int scount, MPI_Datatype stype, void *recv, const int *rcounts,
                        const int *displs, MPI_Datatype rtype, MPI_Comm comm, const char *what);
ra_status ra_alltoallv(const void *send, const int *scounts, const int *sdispls, MPI_Datatype stype, void *recv,
                       const int *rcounts, const int *rdispls, MPI_Datatype rtype, MPI_Comm comm,
                       const char *what);
ra_status ra_bcast(void *buf, int n, MPI_Datatype type, int root, MPI_Comm comm, const char *what);
ra_status ra_gather(const void *send, int scount, MPI_Datatype stype, void *recv, int rcount, MPI_Datatype rtype,
                    int root, MPI_Comm comm, const char *what);
ra_status ra_barrier(MPI_Comm comm, const char *what);

#endif
