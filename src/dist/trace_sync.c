/* trace_sync.c - the MPI half of trace.h: each rank's clock offset against
 * rank 0 at the start, and the gather of every rank's events to rank 0,
 * which writes the file, at the end.
 *
 * Offsets: rank 0 sends its clock t_send to rank r, r answers with its own
 * clock t_remote on receipt, rank 0 reads t_back; rtt = t_back - t_send and
 * offset = t_remote - (t_send + rtt / 2), from the round with the smallest
 * rtt (the least queueing, so the midpoint is the most trustworthy; the
 * error is at most rtt / 2). Rank 0 keeps the table and sends each rank its
 * own entry.
 *
 * Gather: packed sizes first (int64), then rounds of MPI_Gatherv of at most
 * `chunk` bytes per rank, chunk <= INT_MAX / P so that no count or
 * displacement overflows int however many events a rank holds. The trace's
 * own traffic goes on a duplicate communicator and is not counted in
 * ra_comm_bytes (the figures the commands print). */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ringattn/collective.h"
#include "ringattn/dist.h"
#include "ringattn/trace.h"

enum { TAG_PING = 71, TAG_PONG = 72, TAG_RESULT = 73 };

static MPI_Comm g_comm = MPI_COMM_NULL;
static int64_t g_offset, g_rtt, g_t0;

void ra_trace_sync_result(int64_t *offset_ns, int64_t *rtt_ns)
{
    *offset_ns = g_offset;
    *rtt_ns = g_rtt;
}

/* Point-to-point under the peer timeout. */
static ra_status xfer(void *buf, int n, int peer, int tag, int send, const char *what)
{
    MPI_Request req;
    int rc = send ? MPI_Isend(buf, n, MPI_INT64_T, peer, tag, g_comm, &req)
                  : MPI_Irecv(buf, n, MPI_INT64_T, peer, tag, g_comm, &req);
    if (rc != MPI_SUCCESS) return ra_mpi_fail(rc, what, __FILE__, __LINE__);
    return ra_wait(1, &req, what, peer);
}

/* Rank 0's side against rank r: the best of `rounds` round trips. */
static ra_status ping(int r, int rounds, int64_t result[2])
{
    int64_t best_rtt = INT64_MAX, best_off = 0;
    for (int i = 0; i < rounds; i++) {
        int64_t t_send = ra_trace_clock(), t_remote = 0;
        RA_TRY(xfer(&t_send, 1, r, TAG_PING, 1, "trace clock sync: ping"));
        RA_TRY(xfer(&t_remote, 1, r, TAG_PONG, 0, "trace clock sync: pong"));
        const int64_t rtt = ra_trace_clock() - t_send;
        if (rtt < best_rtt) best_rtt = rtt, best_off = t_remote - (t_send + rtt / 2);
    }
    result[0] = best_off, result[1] = best_rtt;
    return xfer(result, 2, r, TAG_RESULT, 1, "trace clock sync: the offset");
}

static ra_status pong(int rounds, int64_t result[2])
{
    for (int i = 0; i < rounds; i++) {
        int64_t t;
        RA_TRY(xfer(&t, 1, 0, TAG_PING, 0, "trace clock sync: ping"));
        t = ra_trace_clock();
        RA_TRY(xfer(&t, 1, 0, TAG_PONG, 1, "trace clock sync: pong"));
    }
    return xfer(result, 2, 0, TAG_RESULT, 0, "trace clock sync: the offset");
}

ra_status ra_trace_begin(MPI_Comm comm, int64_t cap, int rounds)
{
    if (rounds < 1) rounds = 1;
    if (g_comm != MPI_COMM_NULL) MPI_Comm_free(&g_comm);
    RA_MPI_TRY(MPI_Comm_dup(comm, &g_comm), "MPI_Comm_dup (the trace's communicator)");
    RA_MPI_TRY(MPI_Comm_set_errhandler(g_comm, MPI_ERRORS_RETURN), "MPI_Comm_set_errhandler (trace)");
    int rank, P;
    MPI_Comm_rank(g_comm, &rank);
    MPI_Comm_size(g_comm, &P);
    int64_t result[2] = { 0, 0 };
    ra_status st = RA_OK;
    if (rank == 0)
        for (int r = 1; r < P && st == RA_OK; r++) st = ping(r, rounds, result);
    else
        st = pong(rounds, result);
    g_offset = rank == 0 ? 0 : result[0];
    g_rtt = rank == 0 ? 0 : result[1];
    if (st == RA_OK) st = ra_trace_start_local(cap);
    st = ra_agree(g_comm, st);
    if (st != RA_OK) { /* no trace: ra_trace_write has nothing to do */
        ra_trace_reset();
        MPI_Comm_free(&g_comm);
        g_comm = MPI_COMM_NULL;
        return st;
    }
    g_t0 = ra_trace_clock();
    return RA_OK;
}

/* ---- the gather -------------------------------------------------------------- */

static ra_status coll(int rc, MPI_Request *req, const char *what)
{
    if (rc != MPI_SUCCESS) return ra_mpi_fail(rc, what, __FILE__, __LINE__);
    return ra_wait(1, req, what, -1);
}

static int64_t chunk_bytes(int P)
{
    int64_t c = (int64_t)64 << 20;
    const char *env = getenv("RINGATTN_TRACE_CHUNK"); /* tests: many small rounds */
    if (env && *env) {
        char *end;
        long long v = strtoll(env, &end, 10);
        if (!*end && v >= 1) c = v;
    }
    if (c > INT_MAX / P) c = INT_MAX / P;
    return c;
}

/* Rank 0's buffers for the rounds: every rank's bytes, and one round. */
typedef struct {
    uint8_t **bufs;  /* [P] sizes[r] bytes each */
    uint8_t *round;  /* [P * chunk] */
    int *counts, *displs;
} gather_bufs;

static void free_bufs(gather_bufs *b, int P)
{
    for (int r = 0; b->bufs && r < P; r++) free(b->bufs[r]);
    free(b->bufs), free(b->round), free(b->counts), free(b->displs);
}

/* Rank 0, before the rounds are announced (a failure here means none). */
static ra_status alloc_bufs(gather_bufs *b, int P, const int64_t *sizes, int64_t chunk)
{
    b->bufs = calloc((size_t)P, sizeof *b->bufs);
    b->round = malloc((size_t)(chunk * P));
    b->counts = calloc((size_t)P, sizeof *b->counts);
    b->displs = calloc((size_t)P, sizeof *b->displs);
    if (!b->bufs || !b->round || !b->counts || !b->displs)
        return RA_FAIL(RA_ERR_NOMEM, "trace: out of memory for a gather round of %lld bytes", (long long)chunk * P);
    for (int r = 0; r < P; r++)
        if (sizes[r] > 0 && !(b->bufs[r] = malloc((size_t)sizes[r])))
            return RA_FAIL(RA_ERR_NOMEM, "trace: out of memory for the %lld bytes of rank %d's events",
                           (long long)sizes[r], r);
    return RA_OK;
}

/* Every rank's packed bytes to rank 0 in `rounds` rounds of <= chunk bytes. */
static ra_status gather_rounds(int rank, int P, const uint8_t *mine, int64_t mylen, const int64_t *sizes,
                               gather_bufs *b, int64_t chunk, int64_t rounds)
{
    ra_status st = RA_OK;
    for (int64_t k = 0; k < rounds && st == RA_OK; k++) {
        const int64_t at = k * chunk;
        const int n = mylen > at ? (int)(mylen - at < chunk ? mylen - at : chunk) : 0;
        if (rank == 0)
            for (int r = 0, d = 0; r < P; r++) {
                b->counts[r] = sizes[r] > at ? (int)(sizes[r] - at < chunk ? sizes[r] - at : chunk) : 0;
                b->displs[r] = d;
                d += b->counts[r];
            }
        MPI_Request req;
        st = coll(MPI_Igatherv(n ? mine + at : NULL, n, MPI_BYTE, b->round, b->counts, b->displs, MPI_BYTE, 0,
                               g_comm, &req),
                  &req, "MPI_Igatherv (the trace events)");
        if (st == RA_OK && rank == 0)
            for (int r = 0; r < P; r++)
                if (b->counts[r]) memcpy(b->bufs[r] + at, b->round + b->displs[r], (size_t)b->counts[r]);
    }
    return st;
}

/* Rank 0: unpack and write. A rank whose bytes are missing (it could not
 * pack them) appears with its number and no events. */
static ra_status write_file(const char *path, int P, uint8_t **bufs, const int64_t *sizes, const char *command,
                            const char *status)
{
    ra_trace_rank *ranks = calloc((size_t)P, sizeof *ranks);
    if (!ranks) return RA_FAIL(RA_ERR_NOMEM, "trace: out of memory for %d ranks", P);
    ra_status st = RA_OK;
    for (int r = 0; r < P && st == RA_OK; r++) {
        char what[64];
        snprintf(what, sizeof what, "the trace events of rank %d", r);
        if (sizes[r] > 0) st = ra_trace_unpack(bufs[r], (size_t)sizes[r], what, &ranks[r]);
        else snprintf(ranks[r].meta.host, sizeof ranks[r].meta.host, "events lost: out of memory");
        ranks[r].meta.rank = r;
    }
    if (st == RA_OK) st = ra_trace_json_write(path, ranks, P, command, status);
    for (int r = 0; r < P; r++) ra_trace_rank_free(&ranks[r]);
    free(ranks);
    return st;
}

ra_status ra_trace_write(MPI_Comm comm, const char *path, const char *command, const char *status)
{
    (void)comm; /* the duplicate made by ra_trace_begin carries the traffic */
    if (g_comm == MPI_COMM_NULL) return RA_OK;
    ra_trace_stop();
    int rank, P;
    MPI_Comm_rank(g_comm, &rank);
    MPI_Comm_size(g_comm, &P);
    ra_trace_rank_meta meta = { .rank = rank, .offset_ns = g_offset, .rtt_ns = g_rtt, .t0_ns = g_t0,
                                .dropped = ra_trace_dropped(), .foreign = ra_trace_foreign() };
    if (gethostname(meta.host, sizeof meta.host) != 0) snprintf(meta.host, sizeof meta.host, "?");
    meta.host[sizeof meta.host - 1] = '\0';
    uint8_t *mine = NULL;
    size_t len = 0;
    if (ra_trace_pack(&meta, &mine, &len) != RA_OK) len = 0; /* rank 0 shows the rank without events */
    ra_trace_reset();
    int64_t mylen = (int64_t)len, *sizes = rank == 0 ? calloc((size_t)P, sizeof *sizes) : NULL;
    ra_status st = rank == 0 && !sizes ? RA_FAIL(RA_ERR_NOMEM, "trace: out of memory for %d sizes", P) : RA_OK;
    MPI_Request req;
    ra_status gs = coll(MPI_Igather(&mylen, 1, MPI_INT64_T, sizes, 1, MPI_INT64_T, 0, g_comm, &req), &req,
                        "MPI_Igather (the sizes of the trace events)");
    if (st == RA_OK) st = gs;
    /* rank 0 allocates everything, then announces {rounds, chunk} (0 rounds: none) */
    int64_t plan[2] = { 0, 1 };
    gather_bufs b = { 0 };
    if (rank == 0 && st == RA_OK) {
        int64_t most = 1;
        for (int r = 0; r < P; r++) most = sizes[r] > most ? sizes[r] : most;
        const int64_t chunk = most < chunk_bytes(P) ? most : chunk_bytes(P);
        plan[0] = (most + chunk - 1) / chunk, plan[1] = chunk;
        st = alloc_bufs(&b, P, sizes, chunk);
        if (st != RA_OK) plan[0] = 0;
    }
    if (gs == RA_OK)
        gs = coll(MPI_Ibcast(plan, 2, MPI_INT64_T, 0, g_comm, &req), &req, "MPI_Ibcast (the trace's rounds)");
    if (gs == RA_OK) gs = gather_rounds(rank, P, mine, mylen, sizes, &b, plan[1], plan[0]);
    if (st == RA_OK) st = gs;
    free(mine);
    if (rank == 0 && st == RA_OK) st = write_file(path, P, b.bufs, sizes, command, status);
    free_bufs(&b, P);
    free(sizes);
    st = ra_agree(g_comm, st);
    MPI_Comm_free(&g_comm);
    g_comm = MPI_COMM_NULL;
    return st;
}
