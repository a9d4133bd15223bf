/* head_full.c - the `full` head: exact attention over the ring (ring.h). */
#include <stdlib.h>

#include "ringattn/heads.h"

typedef struct {
    ra_head base;
    ra_ring *ring;
} full_head;

static ra_status full_create(ra_head **out, const ra_head_opts *opts, MPI_Comm comm);

static ra_status full_forward(ra_head *h, const float *q, const float *k, const float *v,
                              const int32_t *seg, float *o, float *lse)
{
    return ra_ring_forward(((full_head *)h)->ring, q, k, v, seg, o, lse);
}

static ra_status full_backward(ra_head *h, const float *q, const float *k, const float *v,
                               const int32_t *seg, const float *o, const float *lse,
                               const float *dout, float *dq, float *dk, float *dv)
{
    return ra_ring_backward(((full_head *)h)->ring, q, k, v, seg, o, lse, dout, dq, dk, dv);
}

static double full_wait(const ra_head *h)
{
    return ra_ring_last_stats(((const full_head *)h)->ring).wait_seconds;
}

static double full_bytes(const ra_head *h)
{
    return ra_ring_last_stats(((const full_head *)h)->ring).bytes_sent;
}

static void full_destroy(ra_head *h)
{
    if (!h) return;
    ra_ring_destroy(((full_head *)h)->ring);
    free(h);
}

const ra_head_kind ra_head_full = {
    .name = "full",
    .create = full_create,
    .forward = full_forward,
    .backward = full_backward,
    .wait_seconds = full_wait,
    .bytes_sent = full_bytes,
    .destroy = full_destroy,
};

static ra_status full_create(ra_head **out, const ra_head_opts *opts, MPI_Comm comm)
{
    full_head *h = calloc(1, sizeof *h);
    if (!h) return RA_FAIL(RA_ERR_NOMEM, "out of memory for a full attention head");
    h->base.kind = &ra_head_full;
    ra_status st = ra_ring_create(&h->ring, &opts->ring, comm);
    if (st != RA_OK) {
        full_destroy(&h->base);
        return st;
    }
    *out = &h->base;
    return RA_OK;
}
