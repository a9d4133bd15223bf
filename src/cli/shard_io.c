/* shard_io.c - rank 0 writes a sharded session's checkpoint, pulling the
 * moments of the other ranks (shard_io.h).
 *
 * Protocol on the world communicator, driven by rank 0's writer: for each
 * piece [a, a + k) of a moment tensor that rank r owns, rank 0 sends r the
 * request {tensor, a, k} (tag REQ) and receives the k values (tag DATA).
 * Rank r serves requests until it has sent both of its moment shards; a
 * request with k = 0 means rank 0 stopped early (a failed write), so no rank
 * waits for requests that will never come. Every wait is under the peer
 * timeout (ra_wait), so a dead rank ends the job instead of hanging it. */
#include "shard_io.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "ringattn/collective.h"
#include "ringattn/dist.h"

enum { TAG_REQ = 7301, TAG_DATA = 7302 };
enum { T_PARAMS = 0, T_M = 1, T_V = 2 }; /* tensor order of ra_session_tensors */

typedef struct {
    const ra_cli *c;
    ra_session *s;
    uint64_t *left; /* [P] values each rank has still to send */
} puller;

static const float *moment(const ra_session *s, int tensor) { return tensor == T_M ? s->opt.m : s->opt.v; }

/* Rank 0's ra_ckpt_source: values [at, at + n) of a moment tensor. */
static ra_status pull(void *ctx, int tensor, uint64_t at, float *dst, size_t n)
{
    puller *p = ctx;
    const ra_session *s = p->s;
    if (tensor != T_M && tensor != T_V) return RA_FAIL(RA_ERR_INTERNAL, "checkpoint: tensor %d is not a moment", tensor);
    for (int r = 0; r < p->c->size; r++) {
        const uint64_t lo = s->bounds[r], hi = s->bounds[r + 1];
        const uint64_t a = at > lo ? at : lo, b = at + n < hi ? at + n : hi;
        if (b <= a) continue;
        float *out = dst + (a - at);
        if (r == 0) {
            memcpy(out, moment(s, tensor) + (a - lo), sizeof(float) * (b - a));
            continue;
        }
        uint64_t req[3] = { (uint64_t)tensor, a, b - a };
        MPI_Request rq[2];
        RA_MPI_TRY(MPI_Isend(req, 3, MPI_UINT64_T, r, TAG_REQ, p->c->comm, &rq[0]), "checkpoint: a shard request");
        RA_MPI_TRY(MPI_Irecv(out, (int)(b - a), MPI_FLOAT, r, TAG_DATA, p->c->comm, &rq[1]),
                   "checkpoint: receiving a shard of the moments");
        RA_TRY(ra_wait(2, rq, "checkpoint: a shard of the optimizer moments", r));
        p->left[r] -= b - a;
    }
    return RA_OK;
}

/* Rank 0 gave up (or finished early): release every rank still serving. */
static ra_status release(const puller *p)
{
    ra_status st = RA_OK;
    for (int r = 1; r < p->c->size; r++) {
        if (!p->left[r]) continue;
        uint64_t stop[3] = { 0, 0, 0 };
        MPI_Request rq;
        int rc = MPI_Isend(stop, 3, MPI_UINT64_T, r, TAG_REQ, p->c->comm, &rq);
        ra_status rs = rc == MPI_SUCCESS ? ra_wait(1, &rq, "checkpoint: releasing a shard owner", r)
                                         : ra_mpi_fail(rc, "checkpoint: releasing a shard owner", __FILE__, __LINE__);
        if (st == RA_OK) st = rs;
    }
    return st;
}

/* Rank r != 0: answer requests until both moment shards were sent. */
static ra_status serve(const ra_cli *c, const ra_session *s)
{
    uint64_t left = 2 * (uint64_t)(s->hi - s->lo);
    while (left > 0) {
        uint64_t req[3];
        MPI_Request rq;
        RA_MPI_TRY(MPI_Irecv(req, 3, MPI_UINT64_T, 0, TAG_REQ, c->comm, &rq), "checkpoint: awaiting a shard request");
        RA_TRY(ra_wait(1, &rq, "checkpoint: rank 0's request for a shard", 0));
        if (req[2] == 0) return RA_OK; /* rank 0 stopped; it reports why */
        if ((req[0] != T_M && req[0] != T_V) || req[1] < s->lo || req[1] >= s->hi || req[2] > s->hi - req[1] ||
            req[2] > left)
            return RA_FAIL(RA_ERR_INTERNAL, "rank %d: checkpoint request for tensor %" PRIu64 " [%" PRIu64 ", +%" PRIu64
                           ") outside its shard [%zu, %zu)", c->rank, req[0], req[1], req[2], s->lo, s->hi);
        RA_MPI_TRY(MPI_Isend(moment(s, (int)req[0]) + (req[1] - s->lo), (int)req[2], MPI_FLOAT, 0, TAG_DATA, c->comm,
                             &rq),
                   "checkpoint: sending a shard of the moments");
        RA_TRY(ra_wait(1, &rq, "checkpoint: sending a shard of the optimizer moments to rank 0", 0));
        left -= req[2];
    }
    return RA_OK;
}

ra_status ra_shard_save(const ra_cli *c, ra_session *s, const char *path, const char *config_text,
                        const ra_ckpt_state *state)
{
    if (c->rank != 0) return serve(c, s);
    const uint64_t np = ra_model_nparams(s->model);
    puller p = { c, s, calloc((size_t)c->size, sizeof(uint64_t)) };
    if (!p.left) return RA_FAIL(RA_ERR_NOMEM, "checkpoint: out of memory for %d shard counters", c->size);
    for (int r = 1; r < c->size; r++) p.left[r] = 2 * (s->bounds[r + 1] - s->bounds[r]);
    /* the parameters are whole on rank 0; the moments come through pull */
    const ra_ckpt_tensor t[3] = { { "params", ra_model_params(s->model), np }, { "adam_m", NULL, np },
                                  { "adam_v", NULL, np } };
    ra_status st = config_text ? ra_ckpt_save_stream(path, config_text, state, t, 3, pull, &p)
                               : RA_FAIL(RA_ERR_NOMEM, "%s: out of memory for the config text", path);
    ra_status rs = release(&p);
    free(p.left);
    return st != RA_OK ? st : rs;
}
