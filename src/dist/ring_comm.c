/* ring_comm.c - non-blocking neighbour transfers for the ring. */
#include "dist/ring_comm.h"

#include <limits.h>
#include <stdio.h>
#include <string.h>

#include "ringattn/ring.h"

#include "ringattn/dist.h"
#include "ringattn/mem.h"
#include "ringattn/trace.h"

static int g_loopback; /* benchmark only: no transfers (ring.h) */

void ra_ring_set_loopback(int on) { g_loopback = on; }

ra_status ra_ring_comm_init(ra_ring_comm *c, MPI_Comm parent)
{
    *c = (ra_ring_comm){ .comm = MPI_COMM_NULL };
    RA_MPI_TRY(MPI_Comm_dup(parent, &c->comm), "MPI_Comm_dup");
    RA_MPI_TRY(MPI_Comm_set_errhandler(c->comm, MPI_ERRORS_RETURN), "MPI_Comm_set_errhandler");
    MPI_Comm_rank(c->comm, &c->rank);
    MPI_Comm_size(c->comm, &c->size);
    c->right = (c->rank + 1) % c->size;
    c->left = (c->rank + c->size - 1) % c->size;
    /* in a grid the ring numbers its ranks apart; messages name world ranks */
    c->right_world = ra_world_rank(c->comm, c->right);
    c->left_world = ra_world_rank(c->comm, c->left);
    return RA_OK;
}

void ra_ring_comm_free(ra_ring_comm *c)
{
    if (c->comm != MPI_COMM_NULL) MPI_Comm_free(&c->comm);
    c->comm = MPI_COMM_NULL;
}

/* Remember request i for the trace (cheap: one branch when off). */
static void note(ra_ring_comm *c, int i, size_t bytes, int tag, int send)
{
    c->info[i] = (ra_ring_req){ .t0 = RA_TRACE_T0(), .bytes = (int64_t)bytes, .tag = tag,
                                .send = (unsigned char)send };
}

static ra_status check_bytes(size_t bytes)
{
    if (bytes > (size_t)INT_MAX)
        return RA_FAIL(RA_ERR_ARG, "ring message of %zu bytes exceeds 2 GiB; use a smaller --chunk",
                       bytes);
    return RA_OK;
}

ra_status ra_ring_comm_send(ra_ring_comm *c, const void *buf, size_t bytes, int tag)
{
    RA_ASSERT(c->nreq < RA_RING_MAX_REQ, "too many ring requests in flight");
    RA_TRY(check_bytes(bytes));
    if (g_loopback) {
        c->lb_send = buf, c->lb_send_bytes = bytes;
        return RA_OK;
    }
    RA_MPI_TRY(MPI_Isend(buf, (int)bytes, MPI_BYTE, c->right, tag, c->comm, &c->req[c->nreq]),
               "MPI_Isend to the right neighbour");
    note(c, c->nreq, bytes, tag, 1);
    c->nreq++;
    c->bytes_sent += (double)bytes;
    ra_comm_add_bytes((double)bytes);
    return RA_OK;
}

ra_status ra_ring_comm_recv(ra_ring_comm *c, void *buf, size_t bytes, int tag)
{
    RA_ASSERT(c->nreq < RA_RING_MAX_REQ, "too many ring requests in flight");
    RA_TRY(check_bytes(bytes));
    if (g_loopback) {
        c->lb_recv = buf, c->lb_recv_bytes = bytes;
        return RA_OK;
    }
    RA_MPI_TRY(MPI_Irecv(buf, (int)bytes, MPI_BYTE, c->left, tag, c->comm, &c->req[c->nreq]),
               "MPI_Irecv from the left neighbour");
    note(c, c->nreq, bytes, tag, 0);
    c->nreq++;
    return RA_OK;
}

/* Mark the request just posted (none in loopback) to outlive the next wait. */
static ra_status keep_last(ra_ring_comm *c, int before, int track, ra_status st)
{
    if (st == RA_OK && c->nreq > before) {
        c->info[c->nreq - 1].keep = 1;
        c->info[c->nreq - 1].track = (unsigned char)track;
    }
    return st;
}

ra_status ra_ring_comm_send_ahead(ra_ring_comm *c, const void *buf, size_t bytes, int tag, int track)
{
    const int before = c->nreq;
    return keep_last(c, before, track, ra_ring_comm_send(c, buf, bytes, tag));
}

ra_status ra_ring_comm_recv_ahead(ra_ring_comm *c, void *buf, size_t bytes, int tag, int track)
{
    const int before = c->nreq;
    return keep_last(c, before, track, ra_ring_comm_recv(c, buf, bytes, tag));
}

void ra_ring_comm_poll(void *ctx)
{
    ra_ring_comm *c = ctx;
    int done;
    if (c->nreq > 0) MPI_Testall(c->nreq, c->req, &done, MPI_STATUSES_IGNORE);
}

/* The wait just done, and every transfer it completed (completion: the
 * wait's end, so the spans of one track nest). */
static void trace_wait(const ra_ring_comm *c, int n, int64_t t0)
{
    const int64_t t1 = ra_trace_clock();
    const char *keys[3] = { "bytes", "peer", "tag" };
    for (int i = 0; i < n; i++) {
        const ra_ring_req *q = &c->info[i];
        const int64_t vals[3] = { q->bytes, q->send ? c->right_world : c->left_world, q->tag };
        const int tid = q->keep ? q->track : q->send ? RA_TRACE_TID_SEND : RA_TRACE_TID_RECV;
        ra_trace_span(tid, "comm", q->send ? "ring send" : "ring recv", q->t0, t1, 3, keys, vals);
    }
    const char *k = "requests";
    const int64_t v = n;
    ra_trace_span(RA_TRACE_TID_MAIN, "wait", "ring wait", t0, t1, 1, &k, &v);
}

/* Move the requests posted ahead since the last wait (keep 1) behind the
 * others, in order, marked 2 (the next wait completes them); returns how
 * many come before them: the ones this wait completes. */
static int order_kept_last(ra_ring_comm *c)
{
    MPI_Request rq[RA_RING_MAX_REQ];
    ra_ring_req in[RA_RING_MAX_REQ];
    int n = 0, waited = 0;
    for (int pass = 0; pass < 2; pass++)
        for (int i = 0; i < c->nreq; i++)
            if ((c->info[i].keep == 1) == pass) {
                rq[n] = c->req[i], in[n] = c->info[i];
                if (pass) in[n].keep = 2;
                n++;
                waited += !pass;
            }
    memcpy(c->req, rq, sizeof(MPI_Request) * (size_t)n);
    memcpy(c->info, in, sizeof(ra_ring_req) * (size_t)n);
    return waited;
}

ra_status ra_ring_comm_wait(ra_ring_comm *c)
{
    if (c->lb_recv && c->lb_send) /* loopback: this rank's own piece comes back */
        memcpy(c->lb_recv, c->lb_send, c->lb_recv_bytes < c->lb_send_bytes ? c->lb_recv_bytes : c->lb_send_bytes);
    c->lb_send = NULL, c->lb_recv = NULL;
    const int n = order_kept_last(c);
    if (n == 0) return RA_OK;
    double t0 = ra_now();
    char what[96];
    snprintf(what, sizeof what, "ring transfer (from rank %d, to rank %d)", c->left_world, c->right_world);
    const int64_t tt = RA_TRACE_T0();
    ra_status st = ra_wait(n, c->req, what, c->left_world);
    c->wait_seconds += ra_now() - t0;
    if (ra_trace_on) trace_wait(c, n, tt);
    /* the requests kept for the next wait move to the front */
    memmove(c->req, c->req + n, sizeof(MPI_Request) * (size_t)(c->nreq - n));
    memmove(c->info, c->info + n, sizeof(ra_ring_req) * (size_t)(c->nreq - n));
    c->nreq -= n;
    return st;
}
