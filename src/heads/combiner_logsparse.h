/* combiner_logsparse.h - what the combiner-logsparse head's two files share:
 * its state, its blocks and their slots (combiner_logsparse.c computes,
 * combiner_logsparse_setup.c plans, creates and frees; docs/design.md §5). */
#ifndef RINGATTN_COMBINER_LOGSPARSE_H
#define RINGATTN_COMBINER_LOGSPARSE_H

#include <mpi.h>
#include <stdint.h>

#include "head_move.h"
#include "ringattn/heads.h"

#define MAX_LEVELS 40

typedef struct {
    int l;
    int64_t b;
} block;

typedef struct {
    ra_head base;
    ra_ring_opts o;
    MPI_Comm comm;
    int P, rank, nl;
    int64_t *bounds, a, e, n;
    ra_head_move M;    /* the caller's layout <-> contiguous ranges */
    int64_t lo[MAX_LEVELS], hi[MAX_LEVELS], off[MAX_LEVELS]; /* slots of level l: blocks [lo, hi) */
    int64_t S;         /* slots */
    block *cand;       /* [C] blocks reduced over ranks */
    int C;
    int64_t *cand_slot; /* [C] my slot for it, or -1 */
    /* contiguous ranges, set by each call: the caller's tensors when M.same, else own[] */
    const float *q, *k, *v, *out, *lse, *dout;
    float *dq, *dk, *dv;
    float *own[HM_N];  /* the ranges' copies (planned when !M.same) */
    float *qbar, *kbar, *vbar, *slse, *dkbar, *dvbar;
    /* shared summaries (the candidates), reduced over ranks: */
    float *cmax;       /* [C][B][H + Hkv][D] maxima qbar, kbar (backward: their gradients) */
    float *crec;       /* [C][B][H] online-softmax records of vbar, D + 2 floats each */
    float *cdq;        /* [C][B][H][D] backward: partial query-summary gradients */
    float *cmax2;      /* [C][B][H + Hkv][D] backward: the maxima, recomputed */
    int64_t *idx;      /* [C][B][H + Hkv][D] arg-max indices */
    float *dl;         /* [B][H][n] backward: rowsum(dO * O) */
    void *mem;         /* the block holding cand_slot and every buffer above */
    MPI_Op merge;
    MPI_Datatype rec;
    double bytes;
} ls_head;

/* ---- blocks -------------------------------------------------------------------- */

static inline int64_t blk_start(block k) { return k.b << k.l; }
static inline int64_t blk_end(block k) { return (k.b + 1) << k.l; }

static inline int64_t slot_of(const ls_head *f, int l, int64_t b)
{
    if (b < f->lo[l] || b >= f->hi[l]) return -1;
    return f->off[l] + (b - f->lo[l]);
}

/* blocks rank r's queries need at level l: [lo, hi) */
static inline void needed(int64_t a, int64_t e, int l, int64_t *lo, int64_t *hi)
{
    *lo = (a >> l) - 1 < 0 ? 0 : (a >> l) - 1;
    *hi = e > a ? ((e - 1) >> l) : *lo;
    if (*hi < *lo) *hi = *lo;
}

static inline int cmp_block(const void *x, const void *y)
{
    const block *p = x, *q = y;
    if (p->l != q->l) return p->l - q->l;
    return p->b < q->b ? -1 : p->b > q->b;
}

ra_status ra_ls_forward(ra_head *hd, const float *q, const float *k, const float *v, const int32_t *seg,
                        float *out, float *lse);
ra_status ra_ls_backward(ra_head *hd, const float *q, const float *k, const float *v, const int32_t *seg,
                         const float *out, const float *lse, const float *dout, float *dq, float *dk, float *dv);

#endif
