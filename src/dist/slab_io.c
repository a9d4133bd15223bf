/* slab_io.c - a rank's rows of a sequence tensor, read from and written to
 * .npy files with positioned I/O, run by run. Outputs go to "<path>.tmp"
 * and are renamed when every rank wrote its rows (npy.h, fileio.h). */
#include <stdio.h>

#include "ringattn/dist.h"

/* Call fn for each run of consecutive global rows of this rank:
 * local rows [k, k+n) are global rows [g, g+n). */
typedef ra_status (*run_fn)(void *ctx, int64_t k, int64_t g, int64_t n);

static ra_status for_each_run(const ra_slab *s, run_fn fn, void *ctx)
{
    int64_t Lr = ra_layout_count(s->layout, s->L, s->P, s->rank);
    int64_t k = 0;
    while (k < Lr) {
        int64_t g = ra_layout_global(s->layout, s->L, s->P, s->rank, k), n = 1;
        while (k + n < Lr && ra_layout_global(s->layout, s->L, s->P, s->rank, k + n) == g + n) n++;
        RA_TRY(fn(ctx, k, g, n));
        k += n;
    }
    return RA_OK;
}

typedef struct {
    const ra_npy *f;
    const ra_slab *s;
    int64_t Lr;
    void *buf;
    int write;
    int ints;
} io_ctx;

static ra_status move_run(void *p, int64_t k, int64_t g, int64_t n)
{
    io_ctx *c = p;
    const ra_slab *s = c->s;
    for (int64_t o = 0; o < s->outer; o++) {
        int64_t file_at = (o * s->L + g) * s->inner, mem_at = (o * c->Lr + k) * s->inner;
        int64_t cnt = n * s->inner;
        if (c->write) RA_TRY(ra_npy_write_f32(c->f, file_at, cnt, (const float *)c->buf + mem_at));
        else if (c->ints) RA_TRY(ra_npy_read_i32(c->f, file_at, cnt, (int32_t *)c->buf + mem_at));
        else RA_TRY(ra_npy_read_f32(c->f, file_at, cnt, (float *)c->buf + mem_at));
    }
    return RA_OK;
}

static ra_status slab_io(const ra_npy *f, const ra_slab *s, void *buf, int write, int ints)
{
    if (f->count != s->outer * s->L * s->inner)
        return RA_FAIL(RA_ERR_INTERNAL, "%s: %lld elements, slab view expects %lld", f->path,
                       (long long)f->count, (long long)(s->outer * s->L * s->inner));
    io_ctx c = { f, s, ra_layout_count(s->layout, s->L, s->P, s->rank), buf, write, ints };
    return for_each_run(s, move_run, &c);
}

ra_status ra_slab_read_f32(const ra_npy *f, const ra_slab *s, float *dst)
{
    return slab_io(f, s, dst, 0, 0);
}

ra_status ra_slab_read_i32(const ra_npy *f, const ra_slab *s, int32_t *dst)
{
    return slab_io(f, s, dst, 0, 1);
}

ra_status ra_slab_write_partial(MPI_Comm comm, const char *path, int ndim, const int64_t *shape,
                                const ra_slab *s, const float *src)
{
    int rank;
    MPI_Comm_rank(comm, &rank);
    ra_npy f = { .fd = -1 };
    ra_status st = rank == 0 ? ra_npy_create_f32(&f, path, ndim, shape) : RA_OK;
    st = ra_agree(comm, st);
    if (st == RA_OK && rank != 0) st = ra_npy_open_partial(&f, path, ndim, shape);
    if (st == RA_OK) st = slab_io(&f, s, (void *)src, 1, 0);
    if (f.fd >= 0) {
        ra_status cs = ra_npy_sync_close(&f);
        if (st == RA_OK) st = cs;
    }
    return ra_agree(comm, st);
}

ra_status ra_outputs_finish(MPI_Comm comm, const char *const *paths, int n, ra_status st)
{
    int rank;
    MPI_Comm_rank(comm, &rank);
    st = ra_agree(comm, st);
    if (rank == 0) {
        int i = 0;
        for (; st == RA_OK && i < n; i++) st = ra_npy_commit(paths[i]);
        for (; i < n; i++) ra_npy_abort(paths[i]); /* a commit failed: drop the rest */
        if (st != RA_OK) /* nothing committed yet when the writes failed */
            for (int j = 0; j < n; j++) ra_npy_abort(paths[j]);
    }
    return ra_agree(comm, st);
}

ra_status ra_slab_save_f32(MPI_Comm comm, const char *path, int ndim, const int64_t *shape,
                           const ra_slab *s, const float *src)
{
    ra_status st = ra_slab_write_partial(comm, path, ndim, shape, s, src);
    return ra_outputs_finish(comm, &path, 1, st);
}
