/* combiner_logsparse.c - the combiner-logsparse head (docs/design.md §5), causal
 * only: O(L log L D). Query i attends to itself directly and, for each
 * level l with bit l of i set, to one summary of the aligned block
 * [(b-1) 2^l, b 2^l), b = i >> l: qbar, kbar = elementwise max of q, k over
 * the block, vbar = sum_j softmax_j(a qbar . k_j) v_j. These blocks tile
 * [0, i) exactly; one softmax covers the 1 + popcount(i) logits.
 *
 * Distribution: tokens move (relayout.h) to contiguous ranges [a, e). Most
 * blocks a rank's queries need lie inside its own range and are computed
 * locally; the others - per level at most the block that crosses a, and the
 * one just before it - form a short list, the same on every rank (at most
 * 2 P log L blocks), whose summaries are reduced over ranks from partials
 * (max, then online-softmax records), and whose gradients are summed over
 * ranks and pushed back to the tokens by each rank for its part (the max's
 * gradient goes to the arg-max element, found with a MIN reduction of
 * indices). Communication: O(L D / P) for the move plus O(P log L H D).
 *
 * Shapes (n tokens held): q, o, dout, dq [B][H][n][D]; k, v, dk, dv
 * [B][Hkv][n][D]; per summary slot s: qbar, vbar, dqbar, dvbar [B][H][S][D],
 * kbar, dkbar [B][Hkv][S][D], slse [B][H][S]. */
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "colmax.h"
#include "ringattn/attn.h"
#include "ringattn/collective.h"
#include "ringattn/dist.h"
#include "ringattn/heads.h"
#include "ringattn/mem.h"
#include "ringattn/plan.h"
#include "ringattn/relayout.h"
#include "ringattn/threads.h"

#ifdef _OPENMP
#include <omp.h>
#define THREAD_ID() omp_get_thread_num()
#else
#define THREAD_ID() 0
#endif

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
    ra_relayout R;
    int64_t lo[MAX_LEVELS], hi[MAX_LEVELS], off[MAX_LEVELS]; /* slots of level l: blocks [lo, hi) */
    int64_t S;         /* slots */
    block *cand;       /* [C] blocks reduced over ranks */
    int C;
    int64_t *cand_slot; /* [C] my slot for it, or -1 */
    float *q, *k, *v, *out, *lse, *dout, *dq, *dk, *dv;
    float *qbar, *kbar, *vbar, *slse, *dqbar, *dkbar, *dvbar;
    /* shared summaries (the candidates), reduced over ranks: */
    float *cmax;       /* [C][B][H + Hkv][D] maxima qbar, kbar (backward: their gradients) */
    float *crec;       /* [C][B][H] online-softmax records of vbar, D + 2 floats each */
    float *cdq;        /* [C][B][H][D] backward: partial query-summary gradients */
    float *cmax2;      /* [C][B][H + Hkv][D] backward: the maxima, recomputed */
    int64_t *idx;      /* [C][B][H + Hkv][D] arg-max indices */
    float *dl;         /* [B][H][n] backward: rowsum(dO * O) */
    float *scratch;    /* [nthr][ra_attn_scratch_floats(D)] one slice per thread */
    float *rec1;       /* [nthr][D + 2] one local record per thread */
    int nthr;          /* threads the per-thread buffers are planned for */
    void *tmem;        /* the block of scratch and rec1 */
    int32_t *pos;      /* [n] */
    void *mem;         /* the block holding cand_slot and every buffer above */
    MPI_Op merge;
    MPI_Datatype rec;
    double bytes;
} ls_head;

static ra_status ls_create(ra_head **out, const ra_head_opts *opts, MPI_Comm comm);

/* The per-thread buffers for ra_threads() threads: planned at creation and
 * planned again (larger) when ra_threads() has grown since; never shrunk. */
static ra_status thread_buffers(ls_head *f)
{
    int T = ra_threads() > 0 ? ra_threads() : 1;
    if (f->tmem && T <= f->nthr) return RA_OK;
    ra_plan plan = RA_PLAN_INIT;
    RA_PLAN_ADD(&plan, f->scratch, (size_t)T * ra_attn_scratch_floats(f->o.D));
    RA_PLAN_ADD(&plan, f->rec1, (size_t)T * (f->o.D + 2));
    void *old = f->tmem;
    f->tmem = NULL;
    ra_status st = ra_plan_alloc(&plan, &f->tmem, "combiner-logsparse per-thread scratch");
    free(old);
    f->nthr = st == RA_OK ? T : 0;
    return st;
}

static float *thread_scratch(const ls_head *f) { return f->scratch + (size_t)THREAD_ID() * ra_attn_scratch_floats(f->o.D); }
static float *thread_rec(const ls_head *f) { return f->rec1 + (size_t)THREAD_ID() * (f->o.D + 2); }

/* ---- blocks -------------------------------------------------------------------- */

static int64_t blk_start(block k) { return k.b << k.l; }
static int64_t blk_end(block k) { return (k.b + 1) << k.l; }

static int64_t slot_of(const ls_head *f, int l, int64_t b)
{
    if (b < f->lo[l] || b >= f->hi[l]) return -1;
    return f->off[l] + (b - f->lo[l]);
}

/* blocks rank r's queries need at level l: [lo, hi) */
static void needed(int64_t a, int64_t e, int l, int64_t *lo, int64_t *hi)
{
    *lo = (a >> l) - 1 < 0 ? 0 : (a >> l) - 1;
    *hi = e > a ? ((e - 1) >> l) : *lo;
    if (*hi < *lo) *hi = *lo;
}

static int cmp_block(const void *x, const void *y)
{
    const block *p = x, *q = y;
    if (p->l != q->l) return p->l - q->l;
    return p->b < q->b ? -1 : p->b > q->b;
}

/* Is block k reduced over ranks (in the candidate list)? Then the local
 * passes leave it alone: other ranks' queries contribute to it too. */
static int is_candidate(const ls_head *f, block k)
{
    return f->C > 0 && bsearch(&k, f->cand, (size_t)f->C, sizeof(block), cmp_block) != NULL;
}

/* ---- summaries ------------------------------------------------------------------- */

/* this rank's rows of block k: local [r0, r1) */
static void rows_of(const ls_head *f, block k, int64_t *r0, int64_t *r1)
{
    int64_t s = blk_start(k) > f->a ? blk_start(k) : f->a, t = blk_end(k) < f->e ? blk_end(k) : f->e;
    *r0 = s - f->a;
    *r1 = t > s ? t - f->a : s - f->a;
}

/* the column max of rows [r0, r1) of x [.][D] */
static void colmax(float *out, const float *x, int64_t r0, int64_t r1, int D)
{
    ra_colmax(out, x + r0 * D, r1 - r0, D);
}

/* Blocks of at most SMALL_BLOCK rows (the low levels: most of the blocks)
 * take a direct one-query loop instead of the sgemm kernels of attn.h: a
 * 1 x len GEMM per block costs more in OpenBLAS's per-call overhead (and,
 * threaded, its allocation lock) than its arithmetic. */
#define SMALL_BLOCK 64

static float dotf(const float *x, const float *y, int D)
{
    float s = 0;
    for (int d = 0; d < D; d++) s += x[d] * y[d];
    return s;
}

/* vbar's online-softmax record of qb over rows [r0, r1): rec = {m, l, acc[D]} */
static void vbar_partial(ls_head *f, const float *qb, size_t bk, int64_t r0, int64_t r1, float *rec)
{
    const int D = f->o.D;
    ra_attn_opts ao = { .D = D, .scale = f->o.scale, .causal = 0 };
    ra_attn_fwd_init(1, D, rec + 2, rec, rec + 1);
    if (r1 <= r0) return;
    if (r1 - r0 <= SMALL_BLOCK) {
        const float *k = f->k + (bk * f->n + r0) * D, *v = f->v + (bk * f->n + r0) * D;
        const int n = (int)(r1 - r0);
        float z[SMALL_BLOCK], m = -INFINITY, l = 0.0f;
        for (int j = 0; j < n; j++) {
            z[j] = f->o.scale * dotf(qb, k + (size_t)j * D, D);
            m = z[j] > m ? z[j] : m;
        }
        for (int j = 0; j < n; j++) {
            float p = expf(z[j] - m);
            l += p;
            for (int d = 0; d < D; d++) rec[2 + d] += p * v[(size_t)j * D + d];
        }
        rec[0] = m, rec[1] = l;
        return;
    }
    ra_rows qr = { 1, f->pos, NULL }, kr = { (int)(r1 - r0), f->pos + r0, NULL };
    ra_attn_fwd_block(&ao, &qr, qb, &kr, f->k + (bk * f->n + r0) * D, f->v + (bk * f->n + r0) * D, rec + 2,
                      rec, rec + 1, thread_scratch(f), NULL);
}

static void finish_record(const float *rec, int D, float *vb, float *lse)
{
    for (int d = 0; d < D; d++) vb[d] = rec[1] > 0 ? rec[2 + d] / rec[1] : 0.0f;
    *lse = rec[1] > 0 ? rec[0] + logf(rec[1]) : -INFINITY;
}

static ra_status summaries(ls_head *f)
{
    const ra_ring_opts *o = &f->o;
    const int D = o->D, B = o->B, H = o->H, Hkv = o->Hkv, G = H / Hkv;
    /* local blocks: every slot not in the candidate list; the slots run in
     * parallel (each writes its own summaries) */
    ra_blas_serial_begin();
#pragma omp parallel for num_threads(f->nthr) schedule(dynamic, 1) if (f->S > 1)
    for (int64_t s = 0; s < f->S; s++) {
        {
            int l = 0;
            while (s >= f->off[l] + (f->hi[l] - f->lo[l])) l++;
            const int64_t b = f->lo[l] + (s - f->off[l]);
            block k = { l, b };
            if (is_candidate(f, k)) continue;
            float *rec = thread_rec(f);
            int64_t r0, r1;
            rows_of(f, k, &r0, &r1);
            for (int bb = 0; bb < B; bb++) {
                for (int kh = 0; kh < Hkv; kh++) {
                    size_t bk = (size_t)bb * Hkv + kh;
                    colmax(f->kbar + (bk * f->S + s) * D, f->k + bk * f->n * D, r0, r1, D);
                }
                for (int h = 0; h < H; h++) {
                    size_t bh = (size_t)bb * H + h, bk = (size_t)bb * Hkv + h / G;
                    float *qb = f->qbar + (bh * f->S + s) * D;
                    colmax(qb, f->q + bh * f->n * D, r0, r1, D);
                    vbar_partial(f, qb, bk, r0, r1, rec);
                    finish_record(rec, D, f->vbar + (bh * f->S + s) * D, f->slse + bh * f->S + s);
                }
            }
        }
    }
    ra_blas_serial_end();
    if (f->C == 0) return RA_OK;
    /* candidates: partial maxima, reduced */
    const size_t per = (size_t)B * (H + Hkv) * D;
    float *mx = f->cmax;
#pragma omp parallel for num_threads(f->nthr) schedule(dynamic, 1) if (f->C > 1)
    for (int c = 0; c < f->C; c++) {
        int64_t r0, r1;
        rows_of(f, f->cand[c], &r0, &r1);
        float *p = mx + (size_t)c * per;
        for (int bb = 0; bb < B; bb++) {
            for (int h = 0; h < H; h++)
                colmax(p + ((size_t)bb * H + h) * D, f->q + ((size_t)bb * H + h) * f->n * D, r0, r1, D);
            for (int kh = 0; kh < Hkv; kh++)
                colmax(p + ((size_t)B * H + (size_t)bb * Hkv + kh) * D, f->k + ((size_t)bb * Hkv + kh) * f->n * D,
                       r0, r1, D);
        }
    }
    RA_TRY(ra_allreduce_named(MPI_IN_PLACE, mx, (int)((size_t)f->C * per), MPI_FLOAT, MPI_MAX, f->comm,
                              "the max of combiner-logsparse shared summaries"));
    /* then partial softmax records of vbar, merged */
    float *recs = f->crec;
    const int64_t BH = (int64_t)B * H, items = (int64_t)f->C * BH;
    ra_blas_serial_begin();
#pragma omp parallel for num_threads(f->nthr) schedule(dynamic, 1) if (items > 1)
    for (int64_t it = 0; it < items; it++) {
        const int c = (int)(it / BH), bb = (int)(it % BH / H), h = (int)(it % H);
        int64_t r0, r1;
        rows_of(f, f->cand[c], &r0, &r1);
        const float *qb = mx + (size_t)c * per + ((size_t)bb * H + h) * D;
        vbar_partial(f, qb, (size_t)bb * Hkv + h / G, r0, r1, recs + (((size_t)c * B + bb) * H + h) * (D + 2));
    }
    ra_blas_serial_end();
    RA_TRY(ra_allreduce_named(MPI_IN_PLACE, recs, f->C * B * H, f->rec, f->merge, f->comm,
                              "the merge of combiner-logsparse summary softmax records"));
    for (int c = 0; c < f->C; c++) {
        int64_t s = f->cand_slot[c];
        if (s < 0) continue;
        for (int bb = 0; bb < B; bb++) {
            for (int h = 0; h < H; h++) {
                size_t bh = (size_t)bb * H + h;
                memcpy(f->qbar + (bh * f->S + s) * D, mx + (size_t)c * per + bh * D, sizeof(float) * D);
                finish_record(recs + (((size_t)c * B + bb) * H + h) * (D + 2), D, f->vbar + (bh * f->S + s) * D,
                              f->slse + bh * f->S + s);
            }
            for (int kh = 0; kh < Hkv; kh++) {
                size_t bk = (size_t)bb * Hkv + kh;
                memcpy(f->kbar + (bk * f->S + s) * D, mx + (size_t)c * per + ((size_t)B * H + bk) * D,
                       sizeof(float) * D);
            }
        }
    }
    return RA_OK;
}

/* ---- per query ----------------------------------------------------------------------- */

static float dot(const float *x, const float *y, int D)
{
    float s = 0;
    for (int d = 0; d < D; d++) s += x[d] * y[d];
    return s;
}

/* logits of local query i (head bh, kv head bk): [self, groups...]; slots in sl */
static int logits(const ls_head *f, size_t bh, size_t bk, int64_t i, float *z, int64_t *sl)
{
    const int D = f->o.D;
    const float a = f->o.scale, *qi = f->q + (bh * f->n + i) * D;
    const int64_t g = f->a + i;
    int n = 0;
    z[n] = a * dot(qi, f->k + (bk * f->n + i) * D, D);
    sl[n++] = -1;
    for (int l = 0; l < f->nl; l++)
        if ((g >> l) & 1) {
            int64_t s = slot_of(f, l, (g >> l) - 1);
            z[n] = a * dot(qi, f->kbar + (bk * f->S + s) * D, D);
            sl[n++] = s;
        }
    return n;
}

static ra_status ls_prepare(ls_head *f, const float *q, const float *k, const float *v)
{
    const ra_ring_opts *o = &f->o;
    RA_TRY(ra_relayout_move(&f->R, q, f->q, o->B * o->H, o->D, 1));
    RA_TRY(ra_relayout_move(&f->R, k, f->k, o->B * o->Hkv, o->D, 1));
    RA_TRY(ra_relayout_move(&f->R, v, f->v, o->B * o->Hkv, o->D, 1));
    return summaries(f);
}

static ra_status ls_forward(ra_head *hd, const float *q, const float *k, const float *v, const int32_t *seg,
                            float *o_out, float *lse_out)
{
    ls_head *f = (ls_head *)hd;
    const ra_ring_opts *o = &f->o;
    const int D = o->D, G = o->H / o->Hkv;
    if (seg) return RA_FAIL(RA_ERR_ARG, "combiner-logsparse: segment ids are not supported");
    const double bytes0 = ra_comm_bytes();
    RA_TRY(thread_buffers(f));
    RA_TRY(ls_prepare(f, q, k, v));
    /* every (head, query) on its own: in parallel */
    const int64_t BH = (int64_t)o->B * o->H;
#pragma omp parallel for collapse(2) num_threads(f->nthr) schedule(static)
    for (int64_t x = 0; x < BH; x++)
        for (int64_t i = 0; i < f->n; i++) {
            {
                const size_t bh = (size_t)x, bk = bh / o->H * o->Hkv + bh % o->H / G;
                float z[MAX_LEVELS + 1];
                int64_t sl[MAX_LEVELS + 1];
                int n = logits(f, bh, bk, i, z, sl);
                float m = z[0], sum = 0, *oi = f->out + (bh * f->n + i) * D;
                for (int t = 1; t < n; t++) m = z[t] > m ? z[t] : m;
                memset(oi, 0, sizeof(float) * D);
                for (int t = 0; t < n; t++) {
                    float p = expf(z[t] - m);
                    const float *val = sl[t] < 0 ? f->v + (bk * f->n + i) * D : f->vbar + (bh * f->S + sl[t]) * D;
                    for (int d = 0; d < D; d++) oi[d] += p * val[d];
                    sum += p;
                }
                for (int d = 0; d < D; d++) oi[d] /= sum;
                f->lse[bh * f->n + i] = m + logf(sum);
            }
        }
    RA_TRY(ra_relayout_move(&f->R, f->out, o_out, o->B * o->H, D, 0));
    RA_TRY(ra_relayout_move(&f->R, f->lse, lse_out, o->B * o->H, 1, 0));
    f->bytes = ra_comm_bytes() - bytes0;
    return RA_OK;
}

/* ---- backward ---------------------------------------------------------------------- */

/* d(vbar) of block k over my rows -> dk, dv of the rows, and dqbar (+=) */
static void vbar_backward(ls_head *f, block k, size_t bk, const float *qb, const float *vb,
                          float lse, const float *dvb, float *dqb)
{
    const int D = f->o.D;
    int64_t r0, r1;
    rows_of(f, k, &r0, &r1);
    if (r1 <= r0) return;
    float dl;
    ra_attn_bwd_rowdot(1, D, vb, dvb, &dl);
    if (r1 - r0 <= SMALL_BLOCK) { /* direct, as vbar_partial */
        const float a = f->o.scale;
        const float *k = f->k + (bk * f->n + r0) * D, *v = f->v + (bk * f->n + r0) * D;
        float *dk = f->dk + (bk * f->n + r0) * D, *dv = f->dv + (bk * f->n + r0) * D;
        for (int64_t j = 0; j < r1 - r0; j++) {
            const float *kj = k + j * D, *vj = v + j * D;
            float p = expf(a * dotf(qb, kj, D) - lse), ds = p * (dotf(dvb, vj, D) - dl);
            for (int d = 0; d < D; d++) {
                dqb[d] += a * ds * kj[d];
                dk[j * D + d] += a * ds * qb[d];
                dv[j * D + d] += p * dvb[d];
            }
        }
        return;
    }
    ra_attn_opts ao = { .D = D, .scale = f->o.scale, .causal = 0 };
    ra_rows qr = { 1, f->pos, NULL }, kr = { (int)(r1 - r0), f->pos + r0, NULL };
    ra_attn_bwd_block(&ao, &qr, qb, dvb, &lse, &dl, &kr, f->k + (bk * f->n + r0) * D, f->v + (bk * f->n + r0) * D,
                      dqb, f->dk + (bk * f->n + r0) * D, f->dv + (bk * f->n + r0) * D, thread_scratch(f), NULL);
}

/* first global row of block k in my part where x[.][d] == target[d], else INT64_MAX */
static void argmax_index(const ls_head *f, block k, const float *x, const float *target, int64_t *out)
{
    const int D = f->o.D;
    int64_t r0, r1;
    rows_of(f, k, &r0, &r1);
    for (int d = 0; d < D; d++) {
        out[d] = INT64_MAX;
        for (int64_t r = r0; r < r1; r++)
            if (x[r * D + d] == target[d]) {
                out[d] = f->a + r;
                break;
            }
    }
}

static void add_at(ls_head *f, float *dx, const int64_t *idx, const float *dbar)
{
    const int D = f->o.D;
    for (int d = 0; d < D; d++)
        if (idx[d] >= f->a && idx[d] < f->e) dx[(idx[d] - f->a) * D + d] += dbar[d];
}

static ra_status ls_backward(ra_head *hd, const float *q, const float *k, const float *v, const int32_t *seg,
                             const float *o_in, const float *lse_in, const float *dout, float *dq, float *dk,
                             float *dv)
{
    ls_head *f = (ls_head *)hd;
    const ra_ring_opts *o = &f->o;
    const int D = o->D, B = o->B, H = o->H, Hkv = o->Hkv, G = H / Hkv;
    const float a = o->scale;
    if (seg) return RA_FAIL(RA_ERR_ARG, "combiner-logsparse: segment ids are not supported");
    RA_TRY(thread_buffers(f));
    const double bytes0 = ra_comm_bytes();
    RA_TRY(ls_prepare(f, q, k, v));
    RA_TRY(ra_relayout_move(&f->R, o_in, f->out, B * H, D, 1));
    RA_TRY(ra_relayout_move(&f->R, lse_in, f->lse, B * H, 1, 1));
    RA_TRY(ra_relayout_move(&f->R, dout, f->dout, B * H, D, 1));
    memset(f->dq, 0, sizeof(float) * B * H * f->n * D);
    memset(f->dk, 0, sizeof(float) * B * Hkv * f->n * D);
    memset(f->dv, 0, sizeof(float) * B * Hkv * f->n * D);
    memset(f->dqbar, 0, sizeof(float) * B * H * f->S * D);
    memset(f->dvbar, 0, sizeof(float) * B * H * f->S * D);
    memset(f->dkbar, 0, sizeof(float) * B * Hkv * f->S * D);
    /* per query: dq, and dk, dv of its own row; items (key head, query)
     * with the key head's G query heads in order write only their row */
    const int64_t BK = (int64_t)B * Hkv;
#pragma omp parallel for collapse(2) num_threads(f->nthr) schedule(static)
    for (int64_t x = 0; x < BK; x++)
        for (int64_t i = 0; i < f->n; i++) {
            const size_t bk = (size_t)x;
            float z[MAX_LEVELS + 1];
            int64_t sl[MAX_LEVELS + 1];
            for (int h = (int)(bk % Hkv) * G; h < (int)(bk % Hkv + 1) * G; h++) {
                const size_t bh = bk / Hkv * H + h;
                int n = logits(f, bh, bk, i, z, sl);
                const float *qi = f->q + (bh * f->n + i) * D, *doi = f->dout + (bh * f->n + i) * D;
                float lse = f->lse[bh * f->n + i], dl = dot(f->out + (bh * f->n + i) * D, doi, D);
                float *dqi = f->dq + (bh * f->n + i) * D;
                f->dl[bh * f->n + i] = dl;
                for (int t = 0; t < n; t++) {
                    float p = expf(z[t] - lse);
                    const float *kk, *vv;
                    if (sl[t] < 0)
                        kk = f->k + (bk * f->n + i) * D, vv = f->v + (bk * f->n + i) * D;
                    else
                        kk = f->kbar + (bk * f->S + sl[t]) * D, vv = f->vbar + (bh * f->S + sl[t]) * D;
                    float ds = p * (dot(doi, vv, D) - dl);
                    for (int d = 0; d < D; d++) dqi[d] += a * ds * kk[d];
                    if (sl[t] < 0) {
                        float *dkk = f->dk + (bk * f->n + i) * D, *dvv = f->dv + (bk * f->n + i) * D;
                        for (int d = 0; d < D; d++) {
                            dkk[d] += a * ds * qi[d];
                            dvv[d] += p * doi[d];
                        }
                    }
                }
            }
        }
    /* per summary slot: its gradients from the queries that see it (slot
     * (l, b) serves the queries of block b + 1 at level l, b + 1 odd), in
     * query order; items (slot, key head) with the G query heads in order */
    const int64_t items = f->S * BK;
#pragma omp parallel for num_threads(f->nthr) schedule(dynamic, 1) if (items > 1)
    for (int64_t it = 0; it < items; it++) {
        const int64_t s = it / BK;
        const size_t bk = (size_t)(it % BK);
        int l = 0;
        while (s >= f->off[l] + (f->hi[l] - f->lo[l])) l++;
        const int64_t b = f->lo[l] + (s - f->off[l]);
        if (!((b + 1) & 1)) continue;
        int64_t g0 = (b + 1) << l, g1 = (b + 2) << l;
        if (g0 < f->a) g0 = f->a;
        if (g1 > f->e) g1 = f->e;
        const float *kk = f->kbar + (bk * f->S + s) * D;
        float *dkk = f->dkbar + (bk * f->S + s) * D;
        for (int h = (int)(bk % Hkv) * G; h < (int)(bk % Hkv + 1) * G; h++) {
            const size_t bh = bk / Hkv * H + h;
            const float *vv = f->vbar + (bh * f->S + s) * D;
            float *dvv = f->dvbar + (bh * f->S + s) * D;
            for (int64_t i = g0 - f->a; i < g1 - f->a; i++) {
                const float *qi = f->q + (bh * f->n + i) * D, *doi = f->dout + (bh * f->n + i) * D;
                float z = a * dot(qi, kk, D), p = expf(z - f->lse[bh * f->n + i]);
                float ds = p * (dot(doi, vv, D) - f->dl[bh * f->n + i]);
                for (int d = 0; d < D; d++) {
                    dkk[d] += a * ds * qi[d];
                    dvv[d] += p * doi[d];
                }
            }
        }
    }
    /* candidate summaries: their gradients summed over every rank's queries */
    const size_t per = (size_t)B * (H + Hkv) * D;
    float *g = f->cmax;
    if (f->C) {
        memset(g, 0, sizeof(float) * f->C * per);
        for (int c = 0; c < f->C; c++) {
            int64_t s = f->cand_slot[c];
            if (s < 0) continue;
            for (size_t bh = 0; bh < (size_t)B * H; bh++)
                memcpy(g + c * per + bh * D, f->dvbar + (bh * f->S + s) * D, sizeof(float) * D);
            for (size_t bk = 0; bk < (size_t)B * Hkv; bk++)
                memcpy(g + c * per + ((size_t)B * H + bk) * D, f->dkbar + (bk * f->S + s) * D, sizeof(float) * D);
        }
        RA_TRY(ra_allreduce_named(MPI_IN_PLACE, g, (int)((size_t)f->C * per), MPI_FLOAT, MPI_SUM, f->comm,
                                  "the sum of combiner-logsparse summary gradients"));
    }
    /* local blocks: everything is here. Level by level: a level's blocks
     * have disjoint rows, so its items (block, key head) run in parallel,
     * each with its G query heads in order, then the key head's arg-max */
    ra_blas_serial_begin();
    for (int l = 0; l < f->nl; l++) {
        const int64_t nb = f->hi[l] - f->lo[l];
#pragma omp parallel for num_threads(f->nthr) schedule(dynamic, 1) if (nb * BK > 1)
        for (int64_t it = 0; it < nb * BK; it++) {
            const int64_t b = f->lo[l] + it / BK;
            const int bb = (int)(it % BK / Hkv), kh0 = (int)(it % Hkv);
            block kb = { l, b };
            if (is_candidate(f, kb)) continue;
            int64_t s = slot_of(f, l, b), idx[D];
            {
                for (int h = kh0 * G; h < (kh0 + 1) * G; h++) {
                    size_t bh = (size_t)bb * H + h, bk = (size_t)bb * Hkv + h / G;
                    float *dqb = f->dqbar + (bh * f->S + s) * D;
                    vbar_backward(f, kb, bk, f->qbar + (bh * f->S + s) * D, f->vbar + (bh * f->S + s) * D,
                                  f->slse[bh * f->S + s], f->dvbar + (bh * f->S + s) * D, dqb);
                    argmax_index(f, kb, f->q + bh * f->n * D, f->qbar + (bh * f->S + s) * D, idx);
                    add_at(f, f->dq + bh * f->n * D, idx, dqb);
                }
                {
                    size_t bk = (size_t)bb * Hkv + kh0;
                    argmax_index(f, kb, f->k + bk * f->n * D, f->kbar + (bk * f->S + s) * D, idx);
                    add_at(f, f->dk + bk * f->n * D, idx, f->dkbar + (bk * f->S + s) * D);
                }
            }
        }
    }
    ra_blas_serial_end();
    if (f->C) { /* candidates: my part of each, with the summed gradients */
        float *dqb = f->cdq;
        memset(dqb, 0, sizeof(float) * f->C * B * H * D);
        float *qbar = f->cmax2; /* then kbar: the candidates' maxima */
        /* the candidates' qbar, kbar, vbar, slse are not all in my slots: recompute them */
#pragma omp parallel for num_threads(f->nthr) schedule(dynamic, 1) if (f->C > 1)
        for (int c = 0; c < f->C; c++) {
            int64_t r0, r1;
            rows_of(f, f->cand[c], &r0, &r1);
            float *p = qbar + (size_t)c * per;
            for (size_t bh = 0; bh < (size_t)B * H; bh++) colmax(p + bh * D, f->q + bh * f->n * D, r0, r1, D);
            for (size_t bk = 0; bk < (size_t)B * Hkv; bk++)
                colmax(p + ((size_t)B * H + bk) * D, f->k + bk * f->n * D, r0, r1, D);
        }
        RA_TRY(ra_allreduce_named(MPI_IN_PLACE, qbar, (int)((size_t)f->C * per), MPI_FLOAT, MPI_MAX, f->comm,
                                  "the max of combiner-logsparse shared summaries (backward)"));
        float *recs = f->crec;
        const int64_t BH = (int64_t)B * H, citems = (int64_t)f->C * BH;
        ra_blas_serial_begin();
#pragma omp parallel for num_threads(f->nthr) schedule(dynamic, 1) if (citems > 1)
        for (int64_t it = 0; it < citems; it++) {
            const int c = (int)(it / BH), bb = (int)(it % BH / H), h = (int)(it % H);
            int64_t r0, r1;
            rows_of(f, f->cand[c], &r0, &r1);
            vbar_partial(f, qbar + (size_t)c * per + ((size_t)bb * H + h) * D, (size_t)bb * Hkv + h / G, r0, r1,
                         recs + (((size_t)c * B + bb) * H + h) * (D + 2));
        }
        ra_blas_serial_end();
        RA_TRY(ra_allreduce_named(MPI_IN_PLACE, recs, f->C * B * H, f->rec, f->merge, f->comm,
                                  "the merge of combiner-logsparse summary softmax records (backward)"));
        /* the candidates are sorted by level, and a level's blocks have
         * disjoint rows: level by level, items (candidate, key head) in
         * parallel, each with its G query heads in order */
        ra_blas_serial_begin();
        for (int c0 = 0, c1; c0 < f->C; c0 = c1) {
            for (c1 = c0; c1 < f->C && f->cand[c1].l == f->cand[c0].l;) c1++;
            const int64_t litems = (int64_t)(c1 - c0) * BK;
#pragma omp parallel for num_threads(f->nthr) schedule(dynamic, 1) if (litems > 1)
            for (int64_t it = 0; it < litems; it++) {
                const int c = c0 + (int)(it / BK), bb = (int)(it % BK / Hkv), kh = (int)(it % Hkv);
                float vb[D];
                for (int h = kh * G; h < (kh + 1) * G; h++) {
                    size_t bh = (size_t)bb * H + h;
                    float lse;
                    finish_record(recs + (((size_t)c * B + bb) * H + h) * (D + 2), D, vb, &lse);
                    vbar_backward(f, f->cand[c], (size_t)bb * Hkv + h / G, qbar + (size_t)c * per + bh * D, vb, lse,
                                  g + (size_t)c * per + bh * D, dqb + ((size_t)c * B * H + bh) * D);
                }
            }
        }
        ra_blas_serial_end();
        RA_TRY(ra_allreduce_named(MPI_IN_PLACE, dqb, (int)((size_t)f->C * B * H * D), MPI_FLOAT, MPI_SUM, f->comm,
                                  "the sum of combiner-logsparse query-summary gradients"));
        /* the max-pooling: the first global arg-max gets the gradient */
#pragma omp parallel for num_threads(f->nthr) schedule(dynamic, 1) if (f->C > 1)
        for (int c = 0; c < f->C; c++) {
            int64_t *ix = f->idx + (size_t)c * per;
            for (size_t bh = 0; bh < (size_t)B * H; bh++)
                argmax_index(f, f->cand[c], f->q + bh * f->n * D, qbar + (size_t)c * per + bh * D, ix + bh * D);
            for (size_t bk = 0; bk < (size_t)B * Hkv; bk++)
                argmax_index(f, f->cand[c], f->k + bk * f->n * D, qbar + (size_t)c * per + ((size_t)B * H + bk) * D,
                             ix + ((size_t)B * H + bk) * D);
        }
        RA_TRY(ra_allreduce_named(MPI_IN_PLACE, f->idx, (int)((size_t)f->C * per), MPI_INT64_T, MPI_MIN, f->comm,
                                  "the first arg-max of combiner-logsparse shared summaries"));
        for (int c = 0; c < f->C; c++) {
            const int64_t *ix = f->idx + (size_t)c * per;
            for (size_t bh = 0; bh < (size_t)B * H; bh++)
                add_at(f, f->dq + bh * f->n * D, ix + bh * D, dqb + ((size_t)c * B * H + bh) * D);
            for (size_t bk = 0; bk < (size_t)B * Hkv; bk++)
                add_at(f, f->dk + bk * f->n * D, ix + ((size_t)B * H + bk) * D, g + (size_t)c * per + ((size_t)B * H + bk) * D);
        }
    }
    RA_TRY(ra_relayout_move(&f->R, f->dq, dq, B * H, D, 0));
    RA_TRY(ra_relayout_move(&f->R, f->dk, dk, B * Hkv, D, 0));
    RA_TRY(ra_relayout_move(&f->R, f->dv, dv, B * Hkv, D, 0));
    f->bytes = ra_comm_bytes() - bytes0;
    return RA_OK;
}

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
    ra_relayout_free(&f->R);
    free(f->bounds);
    free(f->cand);
    free(f->mem);
    free(f->tmem);
    free(f);
}

const ra_head_kind ra_head_combiner_logsparse = {
    .name = "combiner-logsparse",
    .create = ls_create,
    .forward = ls_forward,
    .backward = ls_backward,
    .wait_seconds = ls_wait,
    .bytes_sent = ls_bytes,
    .destroy = ls_destroy,
};

static ra_status ls_setup(ls_head *f, const ra_head_opts *opts, MPI_Comm comm)
{
    f->o = opts->ring;
    ra_ring_opts *o = &f->o;
    if (!o->causal)
        return RA_FAIL(RA_ERR_ARG, "combiner-logsparse is causal only (its groups tile [0, i)): add --causal");
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
    RA_TRY(ra_relayout_create(&f->R, o->layout, o->L, f->bounds, comm));
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
    RA_PLAN_ADD(&plan, f->pos, (size_t)f->n);
    RA_PLAN_ADD(&plan, f->idx, C * per);
    float **tok_q[] = { &f->q, &f->out, &f->dout, &f->dq }, **tok_k[] = { &f->k, &f->v, &f->dk, &f->dv };
    float **sum_q[] = { &f->qbar, &f->vbar, &f->dqbar, &f->dvbar };
    for (int i = 0; i < 4; i++) ra_plan_add(&plan, (void **)tok_q[i], nq, sizeof(float));
    for (int i = 0; i < 4; i++) ra_plan_add(&plan, (void **)tok_k[i], nk, sizeof(float));
    RA_PLAN_ADD(&plan, f->lse, nr);
    for (int i = 0; i < 4; i++) ra_plan_add(&plan, (void **)sum_q[i], sq, sizeof(float));
    RA_PLAN_ADD(&plan, f->kbar, sk);
    RA_PLAN_ADD(&plan, f->dkbar, sk);
    RA_PLAN_ADD(&plan, f->slse, B * o->H * f->S);
    RA_PLAN_ADD(&plan, f->cmax, C * per);
    RA_PLAN_ADD(&plan, f->crec, C * B * o->H * (D + 2));
    RA_PLAN_ADD(&plan, f->cdq, C * B * o->H * D);
    RA_PLAN_ADD(&plan, f->cmax2, C * per);
    RA_PLAN_ADD(&plan, f->dl, nr);
    RA_TRY(ra_plan_alloc(&plan, &f->mem, "combiner-logsparse buffers"));
    RA_TRY(thread_buffers(f)); /* scratch, rec1: for ra_threads() threads */
    for (int c = 0; c < f->C; c++) f->cand_slot[c] = slot_of(f, f->cand[c].l, f->cand[c].b);
    for (int64_t i = 0; i < f->n; i++) f->pos[i] = (int32_t)(f->a + i);
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
