/* combiner_fixed.c - the combiner-fixed head (docs/design.md §5): full coverage at
 * O(L sqrt(L) D) with spans of s ~ sqrt(L) tokens.
 *
 * Query i attends directly to the keys of its own span (j <= i when causal)
 * and, through one summary each, to the other spans (earlier ones when
 * causal): kbar_g = max_j k_j, qbar_g = max_j q_j (elementwise), vbar_g =
 * sum_j softmax_j(a qbar_g . k_j) v_j over span g. One softmax covers the
 * direct logits and the summary logits, so the online softmax of attn.h
 * serves both: a block of direct keys, then a block of summaries.
 *
 * Distribution: the tokens are first moved (one all-to-all, head_move.h:
 * none when they are already there) so that every rank holds whole spans,
 * a contiguous range [g0, g1) of them;
 * every span's summary is then computed by the rank that holds it and
 * all-gathered (G summaries: O(sqrt(L) D) floats per head, far below the
 * L D a ring would move). In the backward, the gradients of the summaries
 * are summed over ranks and returned to the spans' owners, which push them
 * through the softmax of vbar and the max-pooling (to the arg-max element).
 *
 * Shapes, in span layout (n tokens on this rank): q, o, dout, dq
 * [B][H][n][D]; k, v, dk, dv [B][Hkv][n][D]; lse [B][H][n]; summaries
 * qbar, vbar, dvbar [B][H][G][D], kbar, dkbar [B][Hkv][G][D], slse [B][H][G]. */
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "colmax.h"
#include "head_move.h"
#include "ringattn/attn.h"
#include "ringattn/collective.h"
#include "ringattn/heads.h"
#include "ringattn/mem.h"
#include "ringattn/plan.h"
#include "ringattn/threads.h"
#include "ringattn/trace.h"

#ifdef _OPENMP
#include <omp.h>
#define THREAD_ID() omp_get_thread_num()
#else
#define THREAD_ID() 0
#endif

/* The backward's span loop runs in FIX_CHUNKS chunks of spans (fewer when
 * there are fewer spans), whatever the thread count: each chunk sums its
 * queries' summary gradients into its own partial dkbar, dvbar, and the
 * partials are added in chunk order - results independent of the threads.
 * Enough chunks that the last items handed out are short (balance). */
#define FIX_CHUNKS 16

typedef struct {
    ra_head base;
    ra_ring_opts o;
    MPI_Comm comm;
    int P, rank, s, G, g0, g1;
    int64_t *bounds;  /* [P+1] */
    ra_head_move M;   /* the caller's layout <-> span layout */
    int64_t n;        /* tokens held in span layout */
    int32_t *pos;     /* [n] their global positions */
    int32_t *zeros;   /* [G] positions for summary rows (unmasked) */
    int *gcount;      /* [2P] the summary all-gather's counts, then offsets */
    /* span layout, set by each call: the caller's tensors when M.same, else own[] */
    const float *q, *k, *v, *out, *lse, *dout;
    float *dq, *dk, *dv;
    float *own[HM_N]; /* the span layout's copies (planned when !M.same) */
    float *row;       /* [B][H][n] l (forward) or dl (backward) */
    float *qbar, *kbar, *vbar, *slse, *dkbar, *dvbar, *gather;
    float *pdkbar, *pdvbar; /* [chunks][B][Hkv|H][G][D] the chunks' partial summary gradients */
    void *mem;    /* the block holding every buffer above from pos on */
    float *scratch;   /* [nthr][ra_attn_scratch_floats(D)] one slice per thread */
    float *dqbar;     /* [nthr][D] per thread */
    int nthr;         /* threads the per-thread buffers are planned for */
    void *tmem;       /* the block of scratch and dqbar */
    double bytes; /* sent to other ranks by the last call (collective.h) */
} fixed_head;

static ra_status fixed_create(ra_head **out, const ra_head_opts *opts, MPI_Comm comm);

/* The per-thread buffers for ra_threads() threads: planned at creation and
 * planned again (larger) when ra_threads() has grown since; never shrunk. */
static ra_status thread_buffers(fixed_head *f)
{
    int T = ra_threads() > 0 ? ra_threads() : 1;
    if (f->tmem && T <= f->nthr) return RA_OK;
    ra_plan plan = RA_PLAN_INIT;
    RA_PLAN_ADD(&plan, f->scratch, (size_t)T * ra_attn_scratch_floats(f->o.D));
    RA_PLAN_ADD(&plan, f->dqbar, (size_t)T * f->o.D);
    void *old = f->tmem;
    f->tmem = NULL;
    ra_status st = ra_plan_alloc(&plan, &f->tmem, "combiner-fixed per-thread scratch");
    free(old);
    f->nthr = st == RA_OK ? T : 0;
    return st;
}

static float *thread_scratch(const fixed_head *f) { return f->scratch + (size_t)THREAD_ID() * ra_attn_scratch_floats(f->o.D); }

/* ---- summaries ----------------------------------------------------------------- */

static int span_len(const fixed_head *f, int g)
{
    int64_t e = (int64_t)(g + 1) * f->s;
    return (int)((e < f->o.L ? e : f->o.L) - (int64_t)g * f->s);
}

/* first local row of span g (a span this rank holds) */
static int64_t span_row(const fixed_head *f, int g) { return (int64_t)g * f->s - f->bounds[f->rank]; }

/* Move q, k, v to span layout and build every summary (all-gathered). */
static ra_status prepare(fixed_head *f, const float *q, const float *k, const float *v)
{
    const int64_t t_trace = RA_TRACE_T0();
    const ra_ring_opts *o = &f->o;
    const int D = o->D, Gq = o->H / o->Hkv, B = o->B;
    RA_TRY(ra_head_move_in(&f->M, q, f->own[HM_Q], B * o->H, D, &f->q));
    RA_TRY(ra_head_move_in(&f->M, k, f->own[HM_K], B * o->Hkv, D, &f->k));
    RA_TRY(ra_head_move_in(&f->M, v, f->own[HM_V], B * o->Hkv, D, &f->v));
    ra_attn_opts ao = { .D = D, .scale = o->scale, .causal = 0 };
    const size_t per_span = (size_t)B * (o->Hkv + o->H) * D;
    /* items (span, key head): each writes its span's summaries of its heads */
    const int64_t BK = (int64_t)B * o->Hkv, items = (int64_t)(f->g1 - f->g0) * BK;
    ra_blas_serial_begin();
#pragma omp parallel for num_threads(f->nthr) schedule(dynamic, 1) if (items > 1)
    for (int64_t it = 0; it < items; it++) {
        const int g = f->g0 + (int)(it / BK), bk0 = (int)(it % BK), b = bk0 / o->Hkv, kh = bk0 % o->Hkv;
        const int64_t r0 = span_row(f, g);
        const int len = span_len(f, g);
        float *pack = f->gather + (size_t)g * per_span; /* [B][Hkv][D] kbar, then [B][H][D] vbar */
        float *scratch = thread_scratch(f);
        ra_colmax(pack + (size_t)bk0 * D, f->k + ((size_t)bk0 * f->n + r0) * D, len, D);
        {
            for (int h = kh * Gq; h < (kh + 1) * Gq; h++) {
                size_t bh = (size_t)b * o->H + h, bk = (size_t)bk0;
                float *qb = f->qbar + (bh * f->G + g) * D, *vb = pack + ((size_t)B * o->Hkv + bh) * D;
                ra_colmax(qb, f->q + (bh * f->n + r0) * D, len, D);
                float m, l;
                ra_rows qr = { 1, f->zeros, NULL }, kr = { len, f->pos + r0, NULL };
                ra_attn_fwd_init(1, D, vb, &m, &l);
                ra_attn_fwd_block(&ao, &qr, qb, &kr, f->k + (bk * f->n + r0) * D,
                                  f->v + (bk * f->n + r0) * D, vb, &m, &l, scratch, NULL);
                ra_attn_fwd_finish(1, D, vb, &m, &l, f->slse + bh * f->G + g);
            }
        }
    }
    ra_blas_serial_end();
    /* every rank gets every span's summaries */
    RA_TRY(ra_allgatherv(MPI_IN_PLACE, 0, MPI_FLOAT, f->gather, f->gcount, f->gcount + f->P, MPI_FLOAT, f->comm,
                         "the all-gather of combiner-fixed summaries"));
    for (int g = 0; g < f->G; g++) { /* unpack to head-major summary arrays */
        const float *pack = f->gather + (size_t)g * per_span;
        for (int bk = 0; bk < B * o->Hkv; bk++)
            memcpy(f->kbar + ((size_t)bk * f->G + g) * D, pack + (size_t)bk * D, sizeof(float) * D);
        for (int bh = 0; bh < B * o->H; bh++)
            memcpy(f->vbar + ((size_t)bh * f->G + g) * D, pack + ((size_t)B * o->Hkv + bh) * D, sizeof(float) * D);
    }
    RA_TRACE_END("combiner", "summaries + all-gather", t_trace);
    return RA_OK;
}

/* The summary ranges span c may see: [0, c) and, bidirectional, (c, G). */
static int group_ranges(const fixed_head *f, int c, int lo[2], int hi[2])
{
    lo[0] = 0, hi[0] = c;
    if (f->o.causal) return 1;
    lo[1] = c + 1, hi[1] = f->G;
    return 2;
}

/* ---- forward --------------------------------------------------------------------- */

static ra_status fixed_forward(ra_head *hd, const float *q, const float *k, const float *v,
                               const int32_t *seg, float *o_out, float *lse_out)
{
    const int64_t t_trace = RA_TRACE_T0();
    fixed_head *f = (fixed_head *)hd;
    const ra_ring_opts *o = &f->o;
    const int D = o->D, Gq = o->H / o->Hkv;
    if (seg) return RA_FAIL(RA_ERR_ARG, "combiner-fixed: segment ids are not supported");
    const double bytes0 = ra_comm_bytes();
    RA_TRY(thread_buffers(f));
    RA_TRY(prepare(f, q, k, v));
    const ra_attn_opts direct = { .D = D, .scale = o->scale, .causal = o->causal };
    const ra_attn_opts groups = { .D = D, .scale = o->scale, .causal = 0 };
    float *out = ra_head_move_target(&f->M, o_out, f->own[HM_O]);
    float *lse = ra_head_move_target(&f->M, lse_out, f->own[HM_LSE]);
    /* items (span, query head): each writes its span's rows of its head;
     * the last spans (the most summaries when causal) go first */
    const int64_t BH = (int64_t)o->B * o->H, items = (int64_t)(f->g1 - f->g0) * BH;
    ra_blas_serial_begin();
#pragma omp parallel for num_threads(f->nthr) schedule(dynamic, 1) if (items > 1)
    for (int64_t it = items - 1; it >= 0; it--) {
        const int c = f->g0 + (int)(it / BH);
        const int64_t r0 = span_row(f, c);
        const int len = span_len(f, c);
        int lo[2], hi[2], nr = group_ranges(f, c, lo, hi);
        float *scratch = thread_scratch(f);
        const size_t bh = (size_t)(it % BH), bk = bh / o->H * o->Hkv + bh % o->H / Gq;
        float *acc = out + (bh * f->n + r0) * D, *m = lse + bh * f->n + r0, *l = f->row + bh * f->n + r0;
        const float *qc = f->q + (bh * f->n + r0) * D;
        ra_rows qr = { len, f->pos + r0, NULL }, kr = { len, f->pos + r0, NULL };
        ra_attn_fwd_init(len, D, acc, m, l);
        ra_attn_fwd_block(&direct, &qr, qc, &kr, f->k + (bk * f->n + r0) * D, f->v + (bk * f->n + r0) * D, acc, m,
                          l, scratch, NULL);
        for (int t = 0; t < nr; t++) {
            if (hi[t] <= lo[t]) continue;
            ra_rows gr = { hi[t] - lo[t], f->zeros, NULL };
            ra_attn_fwd_block(&groups, &qr, qc, &gr, f->kbar + (bk * f->G + lo[t]) * D,
                              f->vbar + (bh * f->G + lo[t]) * D, acc, m, l, scratch, NULL);
        }
        ra_attn_fwd_finish(len, D, acc, m, l, m);
    }
    ra_blas_serial_end();
    RA_TRY(ra_head_move_out(&f->M, out, o_out, o->B * o->H, D));
    RA_TRY(ra_head_move_out(&f->M, lse, lse_out, o->B * o->H, 1));
    f->bytes = ra_comm_bytes() - bytes0;
    RA_TRACE_END("combiner", "combiner-fixed forward", t_trace);
    return RA_OK;
}

/* ---- backward -------------------------------------------------------------------- */

/* dx[argmax_j x[j][d]][d] += dbar[d]: the max-pooling's backward (the first
 * arg-max, found row by row as x is stored) */
static void argmax_add(float *dx, const float *x, const float *dbar, int rows, int D)
{
    int best[D];
    float top[D];
    for (int d = 0; d < D; d++) best[d] = 0, top[d] = x[d];
    for (int r = 1; r < rows; r++)
        for (int d = 0; d < D; d++)
            if (x[(size_t)r * D + d] > top[d]) top[d] = x[(size_t)r * D + d], best[d] = r;
    for (int d = 0; d < D; d++) dx[(size_t)best[d] * D + d] += dbar[d];
}

static ra_status fixed_backward(ra_head *hd, const float *q, const float *k, const float *v,
                                const int32_t *seg, const float *o_in, const float *lse_in,
                                const float *dout, float *dq, float *dk, float *dv)
{
    const int64_t t_trace = RA_TRACE_T0();
    fixed_head *f = (fixed_head *)hd;
    const ra_ring_opts *o = &f->o;
    const int D = o->D, Gq = o->H / o->Hkv, B = o->B;
    if (seg) return RA_FAIL(RA_ERR_ARG, "combiner-fixed: segment ids are not supported");
    RA_TRY(thread_buffers(f));
    const double bytes0 = ra_comm_bytes();
    RA_TRY(prepare(f, q, k, v));
    RA_TRY(ra_head_move_in(&f->M, o_in, f->own[HM_O], B * o->H, D, &f->out));
    RA_TRY(ra_head_move_in(&f->M, lse_in, f->own[HM_LSE], B * o->H, 1, &f->lse));
    RA_TRY(ra_head_move_in(&f->M, dout, f->own[HM_DOUT], B * o->H, D, &f->dout));
    f->dq = ra_head_move_target(&f->M, dq, f->own[HM_DQ]);
    f->dk = ra_head_move_target(&f->M, dk, f->own[HM_DK]);
    f->dv = ra_head_move_target(&f->M, dv, f->own[HM_DV]);
    const size_t sk = (size_t)B * o->Hkv * f->G * D, sq = (size_t)B * o->H * f->G * D;
    const int nspan = f->g1 - f->g0, K = nspan < FIX_CHUNKS ? nspan : FIX_CHUNKS;
    const ra_attn_opts direct = { .D = D, .scale = o->scale, .causal = o->causal };
    const ra_attn_opts groups = { .D = D, .scale = o->scale, .causal = 0 };
    /* items (chunk of spans, key head): the chunk's spans in order, each with
     * the key head's G query heads in order; an item zeroes, then writes, dq,
     * dk, dv of its spans' rows and its chunk's partial summary gradients
     * only. Causal chunks grow with the span index: the last chunk goes first,
     * so that the threads finish together. */
    const int64_t BK = (int64_t)B * o->Hkv, items = (int64_t)K * BK;
    ra_blas_serial_begin();
#pragma omp parallel for num_threads(f->nthr) schedule(dynamic, 1) if (items > 1)
    for (int64_t it = items - 1; it >= 0; it--) {
        const int ch = (int)(it / BK), bk0 = (int)(it % BK), b = bk0 / o->Hkv, kh = bk0 % o->Hkv;
        const size_t bk = (size_t)bk0;
        float *scratch = thread_scratch(f), *pdk = f->pdkbar + sk * ch, *pdv = f->pdvbar + sq * ch;
        const int c0 = f->g0 + nspan * ch / K, c1 = f->g0 + nspan * (ch + 1) / K;
        const int64_t a = span_row(f, c0), e = c1 < f->g1 ? span_row(f, c1) : f->n; /* the chunk's rows */
        memset(pdk + bk * f->G * D, 0, sizeof(float) * f->G * D);
        memset(f->dk + (bk * f->n + a) * D, 0, sizeof(float) * (e - a) * D);
        memset(f->dv + (bk * f->n + a) * D, 0, sizeof(float) * (e - a) * D);
        for (int h = kh * Gq; h < (kh + 1) * Gq; h++) {
            const size_t bh = (size_t)b * o->H + h;
            memset(pdv + bh * f->G * D, 0, sizeof(float) * f->G * D);
            memset(f->dq + (bh * f->n + a) * D, 0, sizeof(float) * (e - a) * D);
            ra_attn_bwd_rowdot((int)(e - a), D, f->out + (bh * f->n + a) * D, f->dout + (bh * f->n + a) * D,
                               f->row + bh * f->n + a);
        }
        for (int c = c0; c < c1; c++) {
            const int64_t r0 = span_row(f, c);
            const int len = span_len(f, c);
            int lo[2], hi[2], nr = group_ranges(f, c, lo, hi);
            for (int h = kh * Gq; h < (kh + 1) * Gq; h++) {
                const size_t bh = (size_t)b * o->H + h;
                const size_t qo = (bh * f->n + r0) * D, ko = (bk * f->n + r0) * D;
                const float *lse = f->lse + bh * f->n + r0, *dl = f->row + bh * f->n + r0;
                ra_rows qr = { len, f->pos + r0, NULL }, kr = { len, f->pos + r0, NULL };
                ra_attn_bwd_block(&direct, &qr, f->q + qo, f->dout + qo, lse, dl, &kr, f->k + ko, f->v + ko,
                                  f->dq + qo, f->dk + ko, f->dv + ko, scratch, NULL);
                for (int t = 0; t < nr; t++) {
                    if (hi[t] <= lo[t]) continue;
                    ra_rows gr = { hi[t] - lo[t], f->zeros, NULL };
                    ra_attn_bwd_block(&groups, &qr, f->q + qo, f->dout + qo, lse, dl, &gr,
                                      f->kbar + (bk * f->G + lo[t]) * D, f->vbar + (bh * f->G + lo[t]) * D,
                                      f->dq + qo, pdk + (bk * f->G + lo[t]) * D, pdv + (bh * f->G + lo[t]) * D,
                                      scratch, NULL);
                }
            }
        }
    }
    /* the chunks' partials, added in chunk order */
#pragma omp parallel for num_threads(f->nthr) schedule(dynamic, 4096)
    for (size_t i = 0; i < sk + sq; i++) {
        const float *p = i < sk ? f->pdkbar + i : f->pdvbar + (i - sk);
        const size_t stride = i < sk ? sk : sq;
        float s = 0.0f;
        for (int ch = 0; ch < K; ch++) s += p[stride * ch];
        (i < sk ? f->dkbar : f->dvbar)[i < sk ? i : i - sk] = s;
    }
    ra_blas_serial_end();
    /* the summaries' gradients, summed over every rank's queries */
    RA_TRY(ra_allreduce_named(MPI_IN_PLACE, f->dkbar, (int)((size_t)B * o->Hkv * f->G * D), MPI_FLOAT, MPI_SUM,
                              f->comm, "the sum of combiner-fixed key-summary gradients"));
    RA_TRY(ra_allreduce_named(MPI_IN_PLACE, f->dvbar, (int)((size_t)B * o->H * f->G * D), MPI_FLOAT, MPI_SUM,
                              f->comm, "the sum of combiner-fixed value-summary gradients"));
    /* back through each owned span's summaries to its tokens; items (span,
     * key head), as the loop above: an item writes its span's rows only */
    const int64_t items2 = (int64_t)nspan * BK;
    ra_blas_serial_begin();
#pragma omp parallel for num_threads(f->nthr) schedule(dynamic, 1) if (items2 > 1)
    for (int64_t it = 0; it < items2; it++) {
        const int g = f->g0 + (int)(it / BK), bk0 = (int)(it % BK), b = bk0 / o->Hkv, kh = bk0 % o->Hkv;
        const int64_t r0 = span_row(f, g);
        const int len = span_len(f, g);
        float *scratch = thread_scratch(f);
        const size_t bk = (size_t)bk0, ko = (bk * f->n + r0) * D;
        argmax_add(f->dk + ko, f->k + ko, f->dkbar + (bk * f->G + g) * D, len, D);
        for (int h = kh * Gq; h < (kh + 1) * Gq; h++) {
            const size_t bh = (size_t)b * o->H + h;
            const float *qb = f->qbar + (bh * f->G + g) * D, *vb = f->vbar + (bh * f->G + g) * D;
            const float *dvb = f->dvbar + (bh * f->G + g) * D;
            float *dqbar = f->dqbar + (size_t)THREAD_ID() * D, dl;
            memset(dqbar, 0, sizeof(float) * D);
            ra_attn_bwd_rowdot(1, D, vb, dvb, &dl);
            ra_rows qr = { 1, f->zeros, NULL }, kr = { len, f->pos + r0, NULL };
            ra_attn_bwd_block(&groups, &qr, qb, dvb, f->slse + bh * f->G + g, &dl, &kr, f->k + ko, f->v + ko,
                              dqbar, f->dk + ko, f->dv + ko, scratch, NULL);
            argmax_add(f->dq + (bh * f->n + r0) * D, f->q + (bh * f->n + r0) * D, dqbar, len, D);
        }
    }
    ra_blas_serial_end();
    RA_TRY(ra_head_move_out(&f->M, f->dq, dq, B * o->H, D));
    RA_TRY(ra_head_move_out(&f->M, f->dk, dk, B * o->Hkv, D));
    RA_TRY(ra_head_move_out(&f->M, f->dv, dv, B * o->Hkv, D));
    f->bytes = ra_comm_bytes() - bytes0;
    RA_TRACE_END("combiner", "combiner-fixed backward", t_trace);
    return RA_OK;
}

static double fixed_wait(const ra_head *hd)
{
    (void)hd;
    return 0.0; /* collectives only; their time is part of the step */
}

static double fixed_bytes(const ra_head *hd) { return ((const fixed_head *)hd)->bytes; }

static void fixed_destroy(ra_head *hd)
{
    fixed_head *f = (fixed_head *)hd;
    if (!f) return;
    ra_head_move_free(&f->M);
    free(f->bounds);
    free(f->mem);
    free(f->tmem);
    free(f);
}

const ra_head_kind ra_head_combiner_fixed = {
    .name = "combiner-fixed",
    .create = fixed_create,
    .forward = fixed_forward,
    .backward = fixed_backward,
    .wait_seconds = fixed_wait,
    .bytes_sent = fixed_bytes,
    .destroy = fixed_destroy,
};

static ra_status fixed_setup(fixed_head *f, const ra_head_opts *opts, MPI_Comm comm)
{
    f->o = opts->ring;
    ra_ring_opts *o = &f->o;
    if (o->scale == 0.0f) o->scale = 1.0f / sqrtf((float)o->D);
    f->comm = comm;
    MPI_Comm_size(comm, &f->P);
    MPI_Comm_rank(comm, &f->rank);
    if (o->H % o->Hkv != 0) return RA_FAIL(RA_ERR_SHAPE, "combiner-fixed: Hkv %d must divide H %d", o->Hkv, o->H);
    if (o->L < 1) return RA_FAIL(RA_ERR_ARG, "combiner-fixed: L = %lld must be >= 1", (long long)o->L);
    int span = opts->layer ? opts->layer->span : 0;
    if (span < 0) return RA_FAIL(RA_ERR_ARG, "combiner-fixed: span %d must be >= 1 (0: automatic)", span);
    f->s = span > 0 ? span : (int)ceil(sqrt((double)o->L));
    if (f->s > o->L) f->s = (int)o->L;
    f->G = (int)((o->L + f->s - 1) / f->s);
    /* whole spans per rank: spans [G r / P, G (r+1) / P) */
    RA_TRY(ra_alloc(&f->bounds, sizeof(int64_t) * (f->P + 1), "span bounds"));
    for (int r = 0; r <= f->P; r++) {
        int64_t t = (int64_t)((int64_t)f->G * r / f->P) * f->s;
        f->bounds[r] = t < o->L ? t : o->L;
    }
    f->g0 = (int)((int64_t)f->G * f->rank / f->P);
    f->g1 = (int)((int64_t)f->G * (f->rank + 1) / f->P);
    RA_TRY(ra_relayout_create(&f->M.R, o->layout, o->L, f->bounds, comm));
    RA_TRY(ra_head_move_init(&f->M));
    f->n = f->M.R.Lr_dst;
    const size_t B = o->B, D = o->D, nq = B * o->H * f->n * D, nk = B * o->Hkv * f->n * D;
    const size_t nr = B * o->H * f->n, sq = B * o->H * f->G * D, sk = B * o->Hkv * f->G * D;
    ra_plan plan = RA_PLAN_INIT;
    RA_PLAN_ADD(&plan, f->pos, (size_t)f->n);
    RA_PLAN_ADD(&plan, f->zeros, (size_t)f->G);
    RA_PLAN_ADD(&plan, f->gcount, 2 * (size_t)f->P);
    for (int t = 0; t < HM_N; t++) RA_PLAN_ADD(&plan, f->own[t], ra_head_move_floats(&f->M, t, nq, nk, nr));
    RA_PLAN_ADD(&plan, f->row, nr);
    RA_PLAN_ADD(&plan, f->qbar, sq);
    RA_PLAN_ADD(&plan, f->vbar, sq);
    RA_PLAN_ADD(&plan, f->dvbar, sq);
    RA_PLAN_ADD(&plan, f->kbar, sk);
    RA_PLAN_ADD(&plan, f->dkbar, sk);
    RA_PLAN_ADD(&plan, f->slse, B * o->H * f->G);
    RA_PLAN_ADD(&plan, f->gather, (size_t)f->G * B * (o->H + o->Hkv) * D);
    const size_t K = (size_t)(f->g1 - f->g0 < FIX_CHUNKS ? f->g1 - f->g0 : FIX_CHUNKS);
    RA_PLAN_ADD(&plan, f->pdkbar, K * sk);
    RA_PLAN_ADD(&plan, f->pdvbar, K * sq);
    RA_TRY(ra_plan_calloc(&plan, &f->mem, "combiner-fixed buffers"));
    RA_TRY(thread_buffers(f)); /* scratch, dqbar: for ra_threads() threads */
    for (int64_t i = 0; i < f->n; i++) f->pos[i] = (int32_t)(f->bounds[f->rank] + i);
    /* the all-gather's counts and offsets: rank r holds spans [G r / P, G (r+1) / P) */
    const size_t per_span = B * (o->Hkv + o->H) * D;
    for (int r = 0; r < f->P; r++) {
        int64_t a = (int64_t)f->G * r / f->P, e = (int64_t)f->G * (r + 1) / f->P;
        if ((e - a) * per_span > INT_MAX || e * per_span > INT_MAX)
            return RA_FAIL(RA_ERR_ARG, "combiner-fixed: %lld summary floats exceed MPI's int counts",
                           (long long)(e * per_span));
        f->gcount[r] = (int)((e - a) * per_span);
        f->gcount[f->P + r] = (int)(a * per_span);
    }
    return RA_OK;
}

static ra_status fixed_create(ra_head **out, const ra_head_opts *opts, MPI_Comm comm)
{
    fixed_head *f = calloc(1, sizeof *f);
    if (!f) return RA_FAIL(RA_ERR_NOMEM, "out of memory for a combiner-fixed head");
    f->base.kind = &ra_head_combiner_fixed;
    ra_status st = fixed_setup(f, opts, comm);
    if (st != RA_OK) {
        fixed_destroy(&f->base);
        return st;
    }
    *out = &f->base;
    return RA_OK;
}
