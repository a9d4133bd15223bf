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
 * Gather: each rank's packed size and start first (int64), then rank 0
 * takes one rank's bytes at a time (messages of at most `chunk` bytes, so
 * no int count overflows), unpacks them and writes that rank's events
 * before it takes the next: its memory holds its own events and one other
 * rank's, whatever P. The trace's own traffic goes on a duplicate
 * communicator and is not counted in ra_comm_bytes (the figures the
 * commands print). */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ringattn/collective.h"
#include "ringattn/dist.h"
#include "ringattn/trace.h"

enum { TAG_PING = 71, TAG_PONG = 72, TAG_RESULT = 73, TAG_EVENTS = 74 };

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

/* Bytes per message: at most INT_MAX (an int count). */
static int64_t chunk_bytes(void)
{
    int64_t c = (int64_t)64 << 20;
    const char *env = getenv("RINGATTN_TRACE_CHUNK"); /* tests: many small messages */
    if (env && *env) {
        char *end;
        long long v = strtoll(env, &end, 10);
        if (!*end && v >= 1) c = v;
    }
    return c > INT_MAX ? INT_MAX : c;
}

/* A rank other than 0: its packed bytes to rank 0 in messages of <= chunk
 * bytes, which rank 0 takes when it comes to this rank. */
static ra_status send_bytes(const uint8_t *mine, int64_t len, int64_t chunk)
{
    const int64_t n = (len + chunk - 1) / chunk;
    if (n == 0) return RA_OK;
    MPI_Request *req = malloc(sizeof *req * (size_t)n);
    if (!req) return RA_FAIL(RA_ERR_NOMEM, "trace: out of memory for %lld sends", (long long)n);
    ra_status st = RA_OK;
    int64_t posted = 0;
    for (; posted < n && st == RA_OK; posted++) {
        const int64_t at = posted * chunk, k = len - at < chunk ? len - at : chunk;
        const int rc = MPI_Isend(mine + at, (int)k, MPI_BYTE, 0, TAG_EVENTS, g_comm, &req[posted]);
        if (rc != MPI_SUCCESS) st = ra_mpi_fail(rc, "MPI_Isend (the trace events)", __FILE__, __LINE__);
    }
    if (st != RA_OK) posted--; /* the failed one was not posted */
    const ra_status ws = ra_wait((int)posted, req, "trace: sending the events to rank 0", 0);
    free(req);
    return st != RA_OK ? st : ws;
}

/* Rank 0: rank r's len packed bytes, malloc'd into *bytes when keep (and
 * memory allows), else received into *scratch (made on first need, of
 * `piece` bytes: the largest message) and dropped, so that the sender is
 * not left waiting. */
static ra_status recv_bytes(int r, int64_t len, int64_t chunk, int64_t piece, int keep, uint8_t **scratch,
                            uint8_t **bytes)
{
    *bytes = keep && len > 0 ? malloc((size_t)len) : NULL;
    if (len > 0 && !*bytes && !*scratch && !(*scratch = malloc((size_t)piece)))
        return RA_FAIL(RA_ERR_NOMEM, "trace: out of memory for a receive buffer of %lld bytes", (long long)piece);
    ra_status st = RA_OK;
    for (int64_t at = 0; at < len && st == RA_OK; at += chunk) {
        const int64_t k = len - at < chunk ? len - at : chunk;
        MPI_Request req;
        const int rc = MPI_Irecv(*bytes ? *bytes + at : *scratch, (int)k, MPI_BYTE, r, TAG_EVENTS, g_comm, &req);
        st = rc != MPI_SUCCESS ? ra_mpi_fail(rc, "MPI_Irecv (the trace events)", __FILE__, __LINE__)
                               : ra_wait(1, &req, "trace: receiving the events", r);
    }
    if (st == RA_OK && keep && len > 0 && !*bytes)
        st = RA_FAIL(RA_ERR_NOMEM, "trace: out of memory for the %lld bytes of rank %d's events", (long long)len, r);
    return st;
}

/* Rank 0: every rank's events into path, one rank at a time (rank r's
 * packed bytes, then unpacked, never two ranks' at once: rank 0's memory
 * does not grow with P). A rank whose bytes are missing (it could not
 * pack them) appears with its number and no events. Every rank's bytes are
 * received whatever fails, so that no sender waits for rank 0 forever. */
static ra_status write_ranks(const char *path, int P, const uint8_t *mine, const int64_t *info, int64_t chunk,
                             const char *command, const char *status)
{
    int64_t base = INT64_MAX, most = 1;
    for (int r = 0; r < P; r++) {
        base = info[2 * r + 1] < base ? info[2 * r + 1] : base;
        most = info[2 * r] > most ? info[2 * r] : most;
    }
    uint8_t *scratch = NULL;
    ra_trace_json *w = NULL;
    ra_status st = ra_trace_json_open(path, base, &w);
    ra_status rs = RA_OK; /* the receives: a lost rank ends them */
    for (int r = 0; r < P && rs == RA_OK; r++) {
        const int64_t len = info[2 * r];
        uint8_t *bytes = NULL;
        if (r > 0) {
            rs = recv_bytes(r, len, chunk, most < chunk ? most : chunk, st == RA_OK, &scratch, &bytes);
            if (st == RA_OK) st = rs;
        }
        if (st == RA_OK) {
            ra_trace_rank one = { 0 };
            char what[64];
            snprintf(what, sizeof what, "the trace events of rank %d", r);
            if (len > 0) st = ra_trace_unpack(r ? bytes : mine, (size_t)len, what, &one);
            else snprintf(one.meta.host, sizeof one.meta.host, "events lost: out of memory");
            one.meta.rank = r;
            if (st == RA_OK) st = ra_trace_json_rank(w, &one, r);
            ra_trace_rank_free(&one);
        }
        free(bytes);
    }
    free(scratch);
    st = ra_trace_json_close(w, command, status, st);
    return st != RA_OK ? st : rs;
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
    /* {packed bytes, start on rank 0's clock} of every rank to rank 0: the
     * file's time base is the earliest start, known before any rank's
     * events are written */
    int64_t my[2] = { (int64_t)len, g_t0 - g_offset };
    if (len > 0) {
        ra_trace_rank self = { 0 };
        if (ra_trace_unpack(mine, len, "this rank's trace events", &self) == RA_OK) my[1] = ra_trace_rank_start(&self);
        ra_trace_rank_free(&self);
    }
    int64_t *info = rank == 0 ? calloc((size_t)P * 2, sizeof *info) : NULL;
    ra_status st = rank == 0 && !info ? RA_FAIL(RA_ERR_NOMEM, "trace: out of memory for %d sizes", P) : RA_OK;
    MPI_Request req;
    ra_status gs = coll(MPI_Igather(my, 2, MPI_INT64_T, info, 2, MPI_INT64_T, 0, g_comm, &req), &req,
                        "MPI_Igather (the sizes of the trace events)");
    if (st == RA_OK) st = gs;
    const int64_t chunk = chunk_bytes();
    if (gs == RA_OK && rank > 0) st = send_bytes(mine, my[0], chunk);
    if (gs == RA_OK && rank == 0 && info) st = write_ranks(path, P, mine, info, chunk, command, status);
    free(mine);
    free(info);
    st = ra_agree(g_comm, st);
    MPI_Comm_free(&g_comm);
    g_comm = MPI_COMM_NULL;
    return st;
}
