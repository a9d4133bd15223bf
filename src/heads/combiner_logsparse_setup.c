/* combiner_logsparse_setup.c - the combiner-logsparse head's life: which
 * blocks each rank keeps and which are reduced over ranks (the candidates),
 * one plan for every buffer, creation and destruction. The computation is
 * in combiner_logsparse.c. */
#include <math.h>
#include <stdlib.h>

#include "combiner_logsparse.h"
#include "ringattn/dist.h"
#include "ringattn/relayout.h"
#include "ringattn/layout.h"
#include "ringattn/mem.h"
#include "ringattn/plan.h"

static ra_status ls_create(ra_head **out, const ra_head_opts *opts, MPI_Comm comm);

static double ls_wait(const ra_head *hd)
{
    (void)hd;
    return 0.0;
}

static double ls_bytes(const ra_head *hd) { return ((const ls_head *)hd)->bytes; }

static void ls_destroy(ra_head *hd)
{
    ls_head *f = (ls_head *)hd;
    if (!f) return;
    ra_softmax_op_free(&f->rec, &f->merge);
    ra_head_move_free(&f->M);
    free(f->bounds);
    free(f->cand);
    free(f->mem);
    free(f);
}

const ra_head_kind ra_head_combiner_logsparse = {
    .name = "combiner-logsparse",
    .create = ls_create,
    .forward = ra_ls_forward,
    .backward = ra_ls_backward,
    .wait_seconds = ls_wait,
    .bytes_sent = ls_bytes,
    .destroy = ls_destroy,
};

static ra_status ls_setup(ls_head *f, const ra_head_opts *opts, MPI_Comm comm)
{
    f->o = opts->ring;
    ra_ring_opts *o = &f->o;
    if (!o->causal)
        return RA_FAIL(RA_ERR_ARG, "combiner-logsparse: causal only (its groups tile [0, i)): add --causal");
    if (o->scale == 0.0f) o->scale = 1.0f / sqrtf((float)o->D);
    if (o->H % o->Hkv) return RA_FAIL(RA_ERR_SHAPE, "combiner-logsparse: Hkv %d must divide H %d", o->Hkv, o->H);
    f->comm = comm;
    MPI_Comm_size(comm, &f->P);
    MPI_Comm_rank(comm, &f->rank);
    if (o->L < 1) return RA_FAIL(RA_ERR_ARG, "combiner-logsparse: L = %lld must be >= 1", (long long)o->L);
    RA_TRY(ra_alloc(&f->bounds, sizeof(int64_t) * (f->P + 1), "bounds"));
    for (int r = 0; r <= f->P; r++) f->bounds[r] = ra_layout_global(RA_LAYOUT_CONTIGUOUS, o->L, f->P, r, 0);
    f->bounds[f->P] = o->L;
    f->a = f->bounds[f->rank], f->e = f->bounds[f->rank + 1], f->n = f->e - f->a;
    RA_TRY(ra_relayout_create(&f->M.R, o->layout, o->L, f->bounds, comm));
    RA_TRY(ra_head_move_init(&f->M));
    f->nl = 0;
    while (f->nl < MAX_LEVELS && ((int64_t)1 << f->nl) < o->L) f->nl++;
    f->S = 0;
    for (int l = 0; l < f->nl; l++) {
        needed(f->a, f->e, l, &f->lo[l], &f->hi[l]);
        f->off[l] = f->S;
        f->S += f->hi[l] - f->lo[l];
    }
    /* candidates: per rank and level, the blocks it needs that are not inside its range */
    RA_TRY(ra_alloc(&f->cand, sizeof(block) * (2 * (size_t)f->P * f->nl + 1), "candidate blocks"));
    f->C = 0;
    for (int r = 0; r < f->P; r++)
        for (int l = 0; l < f->nl; l++) {
            int64_t lo, hi, a = f->bounds[r], e = f->bounds[r + 1];
            needed(a, e, l, &lo, &hi);
            for (int64_t b = lo; b < hi && b <= (a >> l); b++) {
                block k = { l, b };
                if (blk_start(k) < a || blk_end(k) > e) f->cand[f->C++] = k;
            }
        }
    qsort(f->cand, (size_t)f->C, sizeof(block), cmp_block);
    int u = 0;
    for (int c = 0; c < f->C; c++)
        if (u == 0 || cmp_block(&f->cand[c], &f->cand[u - 1]) != 0) f->cand[u++] = f->cand[c];
    f->C = u;
    const size_t B = o->B, D = o->D, nq = B * o->H * f->n * D, nk = B * o->Hkv * f->n * D, nr = B * o->H * f->n;
    const size_t sq = B * o->H * f->S * D, sk = B * o->Hkv * f->S * D, per = B * (o->H + o->Hkv) * D;
    const size_t C = (size_t)f->C;
    ra_plan plan = RA_PLAN_INIT;
    RA_PLAN_ADD(&plan, f->cand_slot, C);
    RA_PLAN_ADD(&plan, f->idx, C * per);
    for (int t = 0; t < HM_N; t++) RA_PLAN_ADD(&plan, f->own[t], ra_head_move_floats(&f->M, t, nq, nk, nr));
    RA_PLAN_ADD(&plan, f->qbar, sq);
    RA_PLAN_ADD(&plan, f->vbar, sq);
    RA_PLAN_ADD(&plan, f->dvbar, sq);
    RA_PLAN_ADD(&plan, f->kbar, sk);
    RA_PLAN_ADD(&plan, f->dkbar, sk);
    RA_PLAN_ADD(&plan, f->slse, B * o->H * f->S);
    RA_PLAN_ADD(&plan, f->cmax, C * per);
    RA_PLAN_ADD(&plan, f->crec, C * B * o->H * (D + 2));
    RA_PLAN_ADD(&plan, f->cdq, C * B * o->H * D);
    RA_PLAN_ADD(&plan, f->cmax2, C * per);
    RA_PLAN_ADD(&plan, f->dl, nr);
    RA_TRY(ra_plan_alloc(&plan, &f->mem, "combiner-logsparse buffers"));
    for (int c = 0; c < f->C; c++) f->cand_slot[c] = slot_of(f, f->cand[c].l, f->cand[c].b);
    return ra_softmax_op_create(o->D, &f->rec, &f->merge);
}

static ra_status ls_create(ra_head **out, const ra_head_opts *opts, MPI_Comm comm)
{
    ls_head *f = calloc(1, sizeof *f);
    if (!f) return RA_FAIL(RA_ERR_NOMEM, "out of memory for a combiner-logsparse head");
    f->base.kind = &ra_head_combiner_logsparse;
    f->merge = MPI_OP_NULL;
    f->rec = MPI_DATATYPE_NULL;
    ra_status st = ls_setup(f, opts, comm);
    if (st != RA_OK) {
        ls_destroy(&f->base);
        return st;
    }
    *out = &f->base;
    return RA_OK;
}
