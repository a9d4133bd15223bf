/* precond_rownorm.c - the rownorm preconditioner (docs/design.md §6) as a wrapper
 * around any head: the head's output rows O_i become O_i / (||O_i|| + eps).
 *
 * The wrapper keeps the raw output and the row norms of its last forward:
 * the backward needs the raw O for the inner head (its dl = rowsum(dO O)),
 * and recovering it from the normalised rows would lose precision. The
 * gradient goes through the norm (precond_grad = full) or treats it as a
 * constant (stop). LSE is the inner head's. Shapes: o [B][H][Lr][D]. */
#include <stdlib.h>
#include <string.h>

#include "ringattn/heads.h"
#include "ringattn/layers.h"
#include "ringattn/layout.h"
#include "ringattn/mem.h"
#include "ringattn/plan.h"

typedef struct {
    ra_head base;
    ra_head *inner;
    int full;
    float eps;
    size_t rows, D;
    float *raw, *norm, *grad; /* [rows][D], [rows], [rows][D] */
    void *mem;                /* the block holding them */
} rownorm_head;

static ra_status rn_forward(ra_head *h, const float *q, const float *k, const float *v, const int32_t *seg,
                            float *o, float *lse)
{
    rownorm_head *w = (rownorm_head *)h;
    RA_TRY(w->inner->kind->forward(w->inner, q, k, v, seg, o, lse));
    if (w->rows) memcpy(w->raw, o, sizeof(float) * w->rows * w->D); /* a rank may own no token */
    ra_rownorm_forward(o, w->norm, (int)w->rows, (int)w->D, w->eps);
    return RA_OK;
}

static ra_status rn_backward(ra_head *h, const float *q, const float *k, const float *v, const int32_t *seg,
                             const float *o, const float *lse, const float *dout, float *dq, float *dk, float *dv)
{
    rownorm_head *w = (rownorm_head *)h;
    if (w->rows) memcpy(w->grad, dout, sizeof(float) * w->rows * w->D);
    ra_rownorm_backward(w->grad, o, w->norm, (int)w->rows, (int)w->D, w->eps, w->full);
    return w->inner->kind->backward(w->inner, q, k, v, seg, w->raw, lse, w->grad, dq, dk, dv);
}

static double rn_wait(const ra_head *h) { return ((const rownorm_head *)h)->inner->kind->wait_seconds(((const rownorm_head *)h)->inner); }
static double rn_bytes(const ra_head *h) { return ((const rownorm_head *)h)->inner->kind->bytes_sent(((const rownorm_head *)h)->inner); }

static void rn_destroy(ra_head *h)
{
    rownorm_head *w = (rownorm_head *)h;
    if (!w) return;
    if (w->inner) w->inner->kind->destroy(w->inner);
    free(w->mem);
    free(w);
}

static const ra_head_kind rownorm_kind = {
    .name = "rownorm",
    .create = NULL, /* made by ra_head_create around another head */
    .forward = rn_forward,
    .backward = rn_backward,
    .wait_seconds = rn_wait,
    .bytes_sent = rn_bytes,
    .destroy = rn_destroy,
};

ra_status ra_precond_rownorm_wrap(ra_head **out, ra_head *inner, const ra_head_opts *opts, MPI_Comm comm)
{
    int P, r;
    MPI_Comm_size(comm, &P);
    MPI_Comm_rank(comm, &r);
    rownorm_head *w = calloc(1, sizeof *w);
    if (!w) {
        inner->kind->destroy(inner);
        return RA_FAIL(RA_ERR_NOMEM, "out of memory for a rownorm preconditioner");
    }
    w->base.kind = &rownorm_kind;
    w->inner = inner;
    w->full = opts->layer && opts->layer->precond_grad_id == RA_PRECOND_GRAD_FULL;
    w->eps = opts->layer ? opts->layer->precond_eps : 1e-6f;
    w->D = (size_t)opts->ring.D;
    w->rows = (size_t)opts->ring.B * opts->ring.H * ra_layout_count(opts->ring.layout, opts->ring.L, P, r);
    ra_plan plan = RA_PLAN_INIT;
    RA_PLAN_ADD(&plan, w->raw, w->rows * w->D);
    RA_PLAN_ADD(&plan, w->grad, w->rows * w->D);
    RA_PLAN_ADD(&plan, w->norm, w->rows);
    ra_status st = ra_plan_alloc(&plan, &w->mem, "rownorm buffers");
    if (st != RA_OK) {
        rn_destroy(&w->base);
        return st;
    }
    *out = &w->base;
    return RA_OK;
}
