/* reduce_scatter.c - the pairwise reduce-scatter of reduce_scatter.h. */
#include "ringattn/reduce_scatter.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "ringattn/collective.h"
#include "ringattn/grid.h"
#include "ringattn/mem.h"

enum { TAG_RS = 4101 }; /* on the caller's communicator: no other message uses it */

/* Receive buffers: the two rounds in flight (one at P = 2). */
static int nbuf(int P) { return P > 2 ? 2 : P - 1; }

size_t ra_rs_bytes(int P, size_t own) { return P > 1 ? sizeof(float) * (size_t)nbuf(P) * own : 0; }

ra_status ra_rs_init(ra_rs *rs, MPI_Comm comm, const size_t *bounds, int max_slices)
{
    memset(rs, 0, sizeof *rs);
    rs->comm = comm, rs->bounds = bounds, rs->max_slices = max_slices;
    MPI_Comm_size(comm, &rs->P);
    MPI_Comm_rank(comm, &rs->rank);
    rs->own = bounds[rs->rank + 1] - bounds[rs->rank];
    /* a message carries at most one owner's part: every shard must fit one */
    for (int q = 0; q < rs->P; q++)
        if (bounds[q + 1] - bounds[q] > INT_MAX)
            return RA_FAIL(RA_ERR_ARG, "reduce-scatter: rank %d's part of %zu floats is over one MPI message's "
                           "INT_MAX: use more ranks", ra_world_rank(comm, q), bounds[q + 1] - bounds[q]);
    /* disjoint slices (ra_rs_post refuses overlaps) meet at most max_slices +
     * P - 1 (slice, shard) pairs: the sends; a round's receives: one a slice */
    const size_t nreq = (size_t)max_slices + (size_t)rs->P;
    if (nreq > INT_MAX) return RA_FAIL(RA_ERR_ARG, "reduce-scatter: %zu requests", nreq);
    ra_status st = ra_alloc(&rs->req, sizeof(MPI_Request) * nreq, "reduce-scatter requests");
    if (st == RA_OK) st = ra_alloc(&rs->rreq, sizeof(MPI_Request) * 2 * (size_t)max_slices, "reduce-scatter receives");
    if (st == RA_OK) st = ra_alloc(&rs->covered, sizeof *rs->covered * (size_t)max_slices, "reduce-scatter ranges");
    if (st == RA_OK) st = ra_alloc(&rs->posted, sizeof *rs->posted * (size_t)max_slices, "reduce-scatter slices");
    if (st == RA_OK) st = ra_alloc(&rs->world, sizeof(int) * (size_t)rs->P, "reduce-scatter ranks");
    for (int q = 0; st == RA_OK && q < rs->P; q++) rs->world[q] = ra_world_rank(comm, q);
    if (st == RA_OK && rs->P > 1 && rs->own > 0)
        st = ra_alloc(&rs->recv, ra_rs_bytes(rs->P, rs->own), "reduce-scatter receive buffer");
    if (st != RA_OK) ra_rs_free(rs);
    return st;
}

void ra_rs_free(ra_rs *rs)
{
    free(rs->req), free(rs->rreq), free(rs->covered), free(rs->posted), free(rs->recv), free(rs->world);
    rs->req = NULL, rs->rreq = NULL, rs->covered = NULL, rs->posted = NULL, rs->recv = NULL, rs->world = NULL;
}

static ra_status post_recv(ra_rs *rs, int k, int s);

/* The part of [begin, end) rank q owns: [*a, *b), empty when *b <= *a. */
static void part(const ra_rs *rs, int q, size_t begin, size_t end, size_t *a, size_t *b)
{
    *a = begin > rs->bounds[q] ? begin : rs->bounds[q];
    *b = end < rs->bounds[q + 1] ? end : rs->bounds[q + 1];
}

ra_status ra_rs_post(ra_rs *rs, const float *grads, size_t begin, size_t end)
{
    if (rs->nposts >= rs->max_slices)
        return RA_FAIL(RA_ERR_INTERNAL, "reduce-scatter: more than %d slices before a finish", rs->max_slices);
    if (end < begin || end > rs->bounds[rs->P])
        return RA_FAIL(RA_ERR_INTERNAL, "reduce-scatter: slice [%zu, %zu) outside [0, %zu)", begin, end,
                       rs->bounds[rs->P]);
    /* overlapping slices would receive twice into one place (erroneous in
     * MPI) and outgrow the requests planned for disjoint ones */
    for (int s = 0; s < rs->nposts; s++)
        if (begin < rs->posted[s][1] && rs->posted[s][0] < end)
            return RA_FAIL(RA_ERR_INTERNAL, "reduce-scatter: slice [%zu, %zu) overlaps [%zu, %zu), posted before",
                           begin, end, rs->posted[s][0], rs->posted[s][1]);
    rs->posted[rs->nposts][0] = begin, rs->posted[rs->nposts][1] = end;
    const size_t lo = rs->bounds[rs->rank];
    size_t a, b;
    for (int k = 1; k < rs->P; k++) { /* every owner its part, starting at the next rank: no owner gets all first */
        const int q = (rs->rank + k) % rs->P;
        part(rs, q, begin, end, &a, &b);
        if (b <= a) continue;
        RA_MPI_TRY(MPI_Isend(grads + a, (int)(b - a), MPI_FLOAT, q, TAG_RS, rs->comm, &rs->req[rs->nreq]),
                   "gradient reduce-scatter: a send");
        rs->nreq++;
        ra_comm_add_bytes(sizeof(float) * (double)(b - a));
    }
    rs->nposts++;
    part(rs, rs->rank, begin, end, &a, &b);
    if (b <= a) return RA_OK;
    rs->covered[rs->nslices][0] = a - lo, rs->covered[rs->nslices][1] = b - lo;
    rs->nslices++;
    for (int k = 1; k <= nbuf(rs->P); k++) /* the first rounds' receives now: they can arrive during the caller's work */
        RA_TRY(post_recv(rs, k, rs->nslices - 1));
    return RA_OK;
}

/* Round k's receive of covered range s: from rank - k, into buffer (k - 1) % 2. */
static ra_status post_recv(ra_rs *rs, int k, int s)
{
    const int src = (rs->rank - k + rs->P) % rs->P, buf = (k - 1) % 2;
    const size_t a = rs->covered[s][0], n = rs->covered[s][1] - a;
    RA_MPI_TRY(MPI_Irecv(rs->recv + (size_t)buf * rs->own + a, (int)n, MPI_FLOAT, src, TAG_RS, rs->comm,
                         &rs->rreq[(size_t)buf * rs->max_slices + s]),
               "gradient reduce-scatter: a receive");
    return RA_OK;
}

ra_status ra_rs_finish(ra_rs *rs, const float *grads, float *shard)
{
    const float *mine = grads + rs->bounds[rs->rank];
    ra_status st = RA_OK;
    /* own part first (in place: already there) */
    for (int s = 0; s < rs->nslices; s++) {
        const size_t a = rs->covered[s][0], n = rs->covered[s][1] - a;
        if (shard + a != mine + a) memcpy(shard + a, mine + a, sizeof(float) * n);
    }
    /* then round k's, from rank - k, as each round completes; its buffer
     * then takes round k + 2 */
    for (int k = 1; k < rs->P && st == RA_OK; k++) {
        const int buf = (k - 1) % 2;
        st = ra_wait(rs->nslices, rs->rreq + (size_t)buf * rs->max_slices, "gradient reduce-scatter",
                     rs->world[(rs->rank - k + rs->P) % rs->P]);
        for (int s = 0; s < rs->nslices && st == RA_OK; s++) {
            const size_t a = rs->covered[s][0], n = rs->covered[s][1] - a;
            const float *in = rs->recv + (size_t)buf * rs->own + a;
            float *out = shard + a;
            for (size_t i = 0; i < n; i++) out[i] += in[i];
        }
        for (int s = 0; s < rs->nslices && st == RA_OK && k + 2 < rs->P; s++) st = post_recv(rs, k + 2, s);
    }
    if (st == RA_OK) st = ra_wait(rs->nreq, rs->req, "gradient reduce-scatter", -1); /* failed: the job ends */
    rs->nreq = 0;
    rs->nslices = rs->nposts = 0;
    return st;
}

/* ---- the all-reduce: reduce-scatter in place, then all-gather ------------- */

void ra_allsum_free(ra_allsum *s)
{
    ra_rs_free(&s->rs);
    free(s->bounds);
    s->bounds = NULL;
}

ra_status ra_parts_fit(const size_t *bounds, int P, const char *what)
{
    for (int r = 0; r < P; r++)
        if (bounds[r + 1] - bounds[r] > (size_t)INT_MAX || bounds[r] > (size_t)INT_MAX)
            return RA_FAIL(RA_ERR_ARG, "%s: rank %d's part [%zu, %zu) is over INT_MAX floats, the largest MPI count "
                           "or offset (more ranks shrink the parts, not the offsets: at most INT_MAX floats in all)",
                           what, r, bounds[r], bounds[r + 1]);
    return RA_OK;
}

ra_status ra_allsum_init(ra_allsum *s, MPI_Comm comm, size_t n, int max_slices)
{
    memset(s, 0, sizeof *s);
    int P;
    MPI_Comm_size(comm, &P);
    ra_status st = ra_alloc(&s->bounds, sizeof(size_t) * (size_t)(P + 1), "the all-reduce's parts");
    if (st == RA_OK) {
        for (int r = 0; r <= P; r++) s->bounds[r] = ra_shard_lo(n, P, r);
        st = ra_parts_fit(s->bounds, P, "the gradients' all-reduce"); /* before ra_rs_init allocates */
    }
    if (st == RA_OK) st = ra_rs_init(&s->rs, comm, s->bounds, max_slices);
    if (st != RA_OK) ra_allsum_free(s);
    return st;
}

ra_status ra_allsum_post(ra_allsum *s, const float *x, size_t begin, size_t end)
{
    return ra_rs_post(&s->rs, x, begin, end);
}

ra_status ra_allsum_finish(ra_allsum *s, float *x)
{
    ra_rs *rs = &s->rs;
    RA_TRY(ra_rs_finish(rs, x, x + s->bounds[rs->rank])); /* each part summed in place on its owner */
    return ra_allgather_parts(x, s->bounds, rs->comm, "the summed parts");
}

ra_status ra_allgather_parts(float *x, const size_t *bounds, MPI_Comm comm, const char *what)
{
    int P;
    MPI_Comm_size(comm, &P);
    RA_TRY(ra_parts_fit(bounds, P, what)); /* the same bounds on every rank: all fail alike */
    int *cnt = malloc(sizeof(int) * 2 * (size_t)P); /* counts, then offsets */
    if (!cnt) return RA_FAIL(RA_ERR_NOMEM, "%s: out of memory for the all-gather's %d counts", what, P);
    for (int r = 0; r < P; r++) cnt[r] = (int)(bounds[r + 1] - bounds[r]), cnt[P + r] = (int)bounds[r];
    ra_status st = ra_allgatherv(MPI_IN_PLACE, 0, MPI_FLOAT, x, cnt, cnt + P, MPI_FLOAT, comm, what);
    free(cnt);
    return st;
}
