/* collective.c - collectives under the peer timeout, with byte counts
 * (collective.h). */
#include "ringattn/collective.h"

#include <stdint.h>
#include <stdio.h>

#include "ringattn/dist.h"
#include "ringattn/trace.h"

/* Contributed by this process (collective.h); whole bytes, so that the
 * difference of two readings is exact however large the total grows. */
static uint64_t g_bytes;

double ra_comm_bytes(void) { return (double)g_bytes; }
void ra_comm_add_bytes(double bytes) { g_bytes += (uint64_t)bytes; }

int ra_world_rank(MPI_Comm comm, int r)
{
    MPI_Group g, w;
    int out = MPI_UNDEFINED;
    if (MPI_Comm_group(comm, &g) != MPI_SUCCESS) return r;
    if (MPI_Comm_group(MPI_COMM_WORLD, &w) == MPI_SUCCESS) {
        if (MPI_Group_translate_ranks(g, 1, &r, w, &out) != MPI_SUCCESS) out = MPI_UNDEFINED;
        MPI_Group_free(&w);
    }
    MPI_Group_free(&g);
    return out == MPI_UNDEFINED ? r : out;
}

ra_status ra_mpi_fail(int code, const char *what, const char *file, int line)
{
    char msg[MPI_MAX_ERROR_STRING];
    int len = 0;
    if (MPI_Error_string(code, msg, &len) != MPI_SUCCESS) len = 0;
    msg[len] = '\0';
    int rank = -1;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    return ra_fail(RA_ERR_MPI, file, line, "rank %d: %s failed: %s", rank, what, msg);
}

ra_status ra_wait(int n, MPI_Request *req, const char *what, int peer)
{
    int rc = ra_waitall(n, req, what, peer);
    if (rc != MPI_SUCCESS) {
        char w[160];
        snprintf(w, sizeof w, "waiting for %s", what);
        return ra_mpi_fail(rc, w, __FILE__, __LINE__);
    }
    return RA_OK;
}

static uint64_t type_bytes(MPI_Datatype type, int n)
{
    int size = 0;
    if (MPI_Type_size(type, &size) != MPI_SUCCESS || n < 0) size = 0;
    return (uint64_t)n * (uint64_t)size;
}

static int comm_size(MPI_Comm comm)
{
    int P = 1;
    MPI_Comm_size(comm, &P);
    return P;
}

/* MPI call `call` failed with rc when starting the collective `what`:
 * "rank R: call (what) failed: MPI's message". */
static ra_status start_failed(int rc, const char *call, const char *what)
{
    char w[160];
    snprintf(w, sizeof w, "%s (%s)", call, what);
    return ra_mpi_fail(rc, w, __FILE__, __LINE__);
}

/* A collective started at t0 (RA_TRACE_T0): on success wait for it, else
 * report the start. The timeline shows the blocking collectives by name,
 * with the time a rank waited for the others in them. */
static ra_status finish(int rc, MPI_Request *req, const char *call, const char *what, int64_t t0)
{
    if (rc != MPI_SUCCESS) return start_failed(rc, call, what);
    RA_TRY(ra_wait(1, req, what, -1));
    RA_TRACE_END("collective", what, t0);
    return RA_OK;
}

ra_status ra_iallreduce(const void *send, void *recv, int n, MPI_Datatype type, MPI_Op op, MPI_Comm comm,
                        MPI_Request *req, const char *what)
{
    const int P = comm_size(comm);
    int rc = MPI_Iallreduce(send, recv, n, type, op, comm, req);
    if (rc != MPI_SUCCESS) return start_failed(rc, "MPI_Iallreduce", what);
    g_bytes += 2 * type_bytes(type, n) * (uint64_t)(P - 1) / (uint64_t)P;
    return RA_OK;
}

ra_status ra_allreduce_named(const void *send, void *recv, int n, MPI_Datatype type, MPI_Op op, MPI_Comm comm,
                             const char *what)
{
    const int64_t t0 = RA_TRACE_T0();
    MPI_Request req;
    RA_TRY(ra_iallreduce(send, recv, n, type, op, comm, &req, what));
    RA_TRY(ra_wait(1, &req, what, -1));
    RA_TRACE_END1("collective", what, t0, "bytes", (int64_t)type_bytes(type, n)); /* as finish() */
    return RA_OK;
}

ra_status ra_allreduce(const void *send, void *recv, int n, MPI_Datatype type, MPI_Op op, MPI_Comm comm)
{
    return ra_allreduce_named(send, recv, n, type, op, comm, "a reduction over all ranks");
}

ra_status ra_allgatherv(const void *send, int scount, MPI_Datatype stype, void *recv, const int *rcounts,
                        const int *displs, MPI_Datatype rtype, MPI_Comm comm, const char *what)
{
    const int64_t t0 = RA_TRACE_T0();
    int P = comm_size(comm), me = 0;
    MPI_Comm_rank(comm, &me);
    MPI_Request req;
    int rc = MPI_Iallgatherv(send, scount, stype, recv, rcounts, displs, rtype, comm, &req);
    /* in place, the rank's part is its slot of recv */
    uint64_t mine = send == MPI_IN_PLACE ? type_bytes(rtype, rcounts[me]) : type_bytes(stype, scount);
    if (rc == MPI_SUCCESS) g_bytes += mine * (uint64_t)(P - 1);
    return finish(rc, &req, "MPI_Iallgatherv", what, t0);
}

ra_status ra_alltoallv(const void *send, const int *scounts, const int *sdispls, MPI_Datatype stype, void *recv,
                       const int *rcounts, const int *rdispls, MPI_Datatype rtype, MPI_Comm comm,
                       const char *what)
{
    const int64_t t0 = RA_TRACE_T0();
    int P = comm_size(comm), me = 0;
    MPI_Comm_rank(comm, &me);
    MPI_Request req;
    int rc = MPI_Ialltoallv(send, scounts, sdispls, stype, recv, rcounts, rdispls, rtype, comm, &req);
    if (rc == MPI_SUCCESS)
        for (int r = 0; r < P; r++)
            if (r != me) g_bytes += type_bytes(stype, scounts[r]);
    return finish(rc, &req, "MPI_Ialltoallv", what, t0);
}

ra_status ra_bcast(void *buf, int n, MPI_Datatype type, int root, MPI_Comm comm, const char *what)
{
    const int64_t t0 = RA_TRACE_T0();
    int P = comm_size(comm), me = 0;
    MPI_Comm_rank(comm, &me);
    MPI_Request req;
    int rc = MPI_Ibcast(buf, n, type, root, comm, &req);
    if (rc == MPI_SUCCESS && me == root) g_bytes += type_bytes(type, n) * (uint64_t)(P - 1);
    return finish(rc, &req, "MPI_Ibcast", what, t0);
}

ra_status ra_gather(const void *send, int scount, MPI_Datatype stype, void *recv, int rcount, MPI_Datatype rtype,
                    int root, MPI_Comm comm, const char *what)
{
    const int64_t t0 = RA_TRACE_T0();
    int me = 0;
    MPI_Comm_rank(comm, &me);
    MPI_Request req;
    int rc = MPI_Igather(send, scount, stype, recv, rcount, rtype, root, comm, &req);
    if (rc == MPI_SUCCESS && me != root) g_bytes += type_bytes(stype, scount);
    return finish(rc, &req, "MPI_Igather", what, t0);
}

ra_status ra_barrier(MPI_Comm comm, const char *what)
{
    const int64_t t0 = RA_TRACE_T0();
    MPI_Request req;
    return finish(MPI_Ibarrier(comm, &req), &req, "MPI_Ibarrier", what, t0);
}
