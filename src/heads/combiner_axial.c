/* combiner_axial.c - the combiner-axial head (docs/design.md §5): the sequence as a
 * grid of rows of m tokens, O(L sqrt(L) D) with m ~ sqrt(L).
 *
 * Query i = (r, c) attends directly to its own row (c' <= c when causal) and,
 * through one summary each, to column c of the other rows (earlier rows when
 * causal): khat_t = sum rho_t(c') k_(r',c'), vhat_t = sum rho_t(c') v_(r',c')
 * for t = (r', c), where rho_t is the softmax of a q_t . k over t's whole
 * row. One softmax covers both parts.
 *
 * Distribution: one all-to-all (head_move.h: none when the tokens are
 * already there) puts whole rows on each rank (row layout):
 * the direct part and every summary are local there. A second all-to-all
 * moves the queries and the summaries to a column-major layout (whole
 * columns per rank), where the column part is ordinary attention of a
 * column's queries over the column's summaries with a strict causal mask
 * (query position 2r, summary position 2r'+1). The column part's online-
 * softmax state (acc, m, l) moves back to the row layout and merges with the
 * direct part's. The backward retraces the same path. Communication is
 * O(L D / P) per rank and layer: every summary crosses once.
 *
 * Shapes: row layout (n tokens): q, o, dout, dq, khat, vhat, dkhat, dvhat,
 * acc [B][H][n][D], k, v, dk, dv [B][Hkv][n][D], row vectors [B][H][n];
 * column layout (nc tokens): qc, kc (khat), vc (vhat), doc, dqc, dkc, dvc,
 * accc [B][H][nc][D], row vectors [B][H][nc]. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

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

typedef struct {
    int64_t L, m, R, lr; /* length, row length, rows, length of the last row */
} grid;

typedef struct {
    ra_head base;
    ra_ring_opts o;
    MPI_Comm comm;
    int P, rank;
    grid g;
    int64_t *rb, *cb;      /* [P+1] row-layout token bounds, column-layout key bounds */
    int64_t c0, c1;        /* columns held in the column layout */
    ra_head_move in, rc;   /* user <-> rows; rows <-> columns */
    int64_t n, nc;
    int32_t *pos, *qpc, *kpc; /* row layout positions; column layout: 2r and 2r+1 */
    /* row layout, set by each call: the caller's tensors when in.same, else own[] */
    const float *q, *k, *v, *out, *lse, *dout;
    float *dq, *dk, *dv;
    float *own[HM_N];      /* the row layout's copies (planned when !in.same) */
    float *l, *khat, *vhat, *rs, *dkhat, *dvhat;
    float *qc, *kc, *vc, *accc, *mc, *lc, *doc, *dqc, *dkc, *dvc, *rec;
    float *scratch;        /* [nthr][ra_attn_scratch_floats(D)] one slice per thread */
    float *rowbuf;         /* [nthr][2 m] a row's m and l (summaries) or dl (backward), per thread */
    int nthr;              /* threads the per-thread buffers are planned for */
    void *tmem;            /* the block of scratch and rowbuf */
    void *mem, *bmem;      /* blocks: the forward's buffers; the backward's (first backward) */
    double bytes;
} axial_head;

static ra_status axial_create(ra_head **out, const ra_head_opts *opts, MPI_Comm comm);
static ra_status backward_buffers(axial_head *f);

/* The per-thread buffers for ra_threads() threads: planned at creation and
 * planned again (larger) when ra_threads() has grown since; never shrunk. */
static ra_status thread_buffers(axial_head *f)
{
    int T = ra_threads() > 0 ? ra_threads() : 1;
    if (f->tmem && T <= f->nthr) return RA_OK;
    ra_plan plan = RA_PLAN_INIT;
    RA_PLAN_ADD(&plan, f->scratch, (size_t)T * ra_attn_scratch_floats(f->o.D));
    RA_PLAN_ADD(&plan, f->rowbuf, (size_t)T * 2 * (size_t)f->g.m);
    void *old = f->tmem;
    f->tmem = NULL;
    ra_status st = ra_plan_alloc(&plan, &f->tmem, "combiner-axial per-thread scratch");
    free(old);
    f->nthr = st == RA_OK ? T : 0;
    return st;
}

static float *thread_scratch(const axial_head *f, int t) { return f->scratch + (size_t)t * ra_attn_scratch_floats(f->o.D); }
static float *thread_row(const axial_head *f, int t) { return f->rowbuf + (size_t)t * 2 * (size_t)f->g.m; }

/* column-major key of token t: all earlier columns, then the row */
static int64_t colstart(const grid *g, int64_t c) { return c * g->R - (c > g->lr ? c - g->lr : 0); }
static int64_t col_rows(const grid *g, int64_t c) { return c < g->lr ? g->R : g->R - 1; }
static int64_t col_key(int64_t t, const void *ctx)
{
    const grid *g = ctx;
    return colstart(g, t % g->m) + t / g->m;
}

/* ---- row layout: summaries and the direct part ------------------------------------- */

/* Row r of the grid as this rank holds it: first held token a, length len. */
typedef struct {
    int64_t a;
    int len;
} held_row;

/* The rows this rank holds: [own_rows_begin, own_rows_end). */
static int64_t own_rows_begin(const axial_head *f) { return f->rb[f->rank] / f->g.m; }
static int64_t own_rows_end(const axial_head *f) { return (f->rb[f->rank + 1] + f->g.m - 1) / f->g.m; }

static held_row own_row(const axial_head *f, int64_t r)
{
    int64_t e = (r + 1) * f->g.m;
    return (held_row){ .a = r * f->g.m - f->rb[f->rank], .len = (int)((e < f->g.L ? e : f->g.L) - r * f->g.m) };
}

/* One held row of one query head: bh (and its key head bk) index the
 * [B*H] / [B*Hkv] planes, a is the row's first held token, len its length,
 * rr its rows for the kernels; scratch and buf are the calling thread's. */
typedef struct {
    size_t bh, bk;
    int64_t a;
    int len;
    ra_rows rr;
    float *scratch, *buf;
} row_head;

typedef void (*row_fn)(axial_head *f, const row_head *x, void *ctx);

/* Run fn over every held row and every query head. The work items - a
 * row and a key head with its G query heads, in head order - run in
 * parallel on f->nthr threads: an item writes only its row of its heads
 * (q-head planes, and the key head's plane that no other item touches), so
 * the results do not depend on the thread count. */
static void for_rows(axial_head *f, row_fn fn, void *ctx)
{
    const ra_ring_opts *o = &f->o;
    const int G = o->H / o->Hkv;
    const int64_t r0 = own_rows_begin(f), nrows = own_rows_end(f) - r0, BK = (int64_t)o->B * o->Hkv;
    const int64_t items = nrows * BK;
    ra_blas_serial_begin();
#pragma omp parallel for num_threads(f->nthr) schedule(dynamic, 1) if (items > 1)
    for (int64_t it = 0; it < items; it++) {
        const held_row row = own_row(f, r0 + it / BK);
        const int b = (int)(it % BK / o->Hkv), kh = (int)(it % o->Hkv);
        const int t = THREAD_ID();
        for (int h = kh * G; h < (kh + 1) * G; h++) {
            row_head x = { .bh = (size_t)b * o->H + h, .bk = (size_t)b * o->Hkv + kh, .a = row.a,
                           .len = row.len, .rr = { row.len, f->pos + row.a, NULL },
                           .scratch = thread_scratch(f, t), .buf = thread_row(f, t) };
            fn(f, &x, ctx);
        }
    }
    ra_blas_serial_end();
}

static void summary_row(axial_head *f, const row_head *x, void *ctx)
{
    (void)ctx;
    const int D = f->o.D, len = x->len;
    const ra_attn_opts ao = { .D = D, .scale = f->o.scale, .causal = 0 };
    float *ml = x->buf; /* scratch m, l of one row */
    const size_t qo = (x->bh * f->n + x->a) * D, ko = (x->bk * f->n + x->a) * D;
    const float *q = f->q + qo, *k = f->k + ko, *v = f->v + ko;
    float *kh = f->khat + qo, *vh = f->vhat + qo, *rs = f->rs + x->bh * f->n + x->a;
    ra_attn_fwd_init(len, D, vh, ml, ml + len);
    ra_attn_fwd_block(&ao, &x->rr, q, &x->rr, k, v, vh, ml, ml + len, x->scratch, NULL);
    ra_attn_fwd_finish(len, D, vh, ml, ml + len, rs);
    ra_attn_fwd_init(len, D, kh, ml, ml + len);
    ra_attn_fwd_block(&ao, &x->rr, q, &x->rr, k, k, kh, ml, ml + len, x->scratch, NULL);
    ra_attn_fwd_finish(len, D, kh, ml, ml + len, ml); /* same lse as rs */
}

/* khat, vhat and the row softmax's lse rs of every held token */
static void summaries(axial_head *f) { for_rows(f, summary_row, NULL); }

/* ---- column layout ------------------------------------------------------------------- */

/* Column c's local range [a, a + rows) in the column layout. */
static int64_t col_first(const axial_head *f, int64_t c) { return colstart(&f->g, c) - f->cb[f->rank]; }

/* One held column of one head: tokens [t, t + rows) of the column layout's
 * [B*H][nc] (queries and summaries alike), and one or two passes: the
 * summaries before the query's row and, bidirectional, after it (positions
 * mirrored: query 2(R'-1-r), summary 2(R'-1-r')+1). */
typedef struct {
    size_t t;
    int rows, passes;
    ra_rows qr[2], kr[2];
    float *scratch;
} col_item;

typedef void (*col_fn)(axial_head *f, const col_item *x);

/* Run fn over every held column and head. The items (column, head) run in
 * parallel on f->nthr threads: an item writes only its column of its
 * head's plane, so the results do not depend on the thread count. */
static void for_columns(axial_head *f, col_fn fn)
{
    const ra_ring_opts *o = &f->o;
    const int32_t *mq = f->kpc + f->nc, *mk = f->kpc + 2 * f->nc; /* mirrored positions */
    const int64_t BH = (int64_t)o->B * o->H, items = (f->c1 - f->c0) * BH;
    ra_blas_serial_begin();
#pragma omp parallel for num_threads(f->nthr) schedule(dynamic, 1) if (items > 1)
    for (int64_t it = 0; it < items; it++) {
        const int64_t a = col_first(f, f->c0 + it / BH);
        const int rows = (int)col_rows(&f->g, f->c0 + it / BH);
        col_item x = { .t = (size_t)(it % BH) * f->nc + a, .rows = rows, .passes = o->causal ? 1 : 2,
                       .qr = { { rows, f->qpc + a, NULL }, { rows, mq + a, NULL } },
                       .kr = { { rows, f->kpc + a, NULL }, { rows, mk + a, NULL } },
                       .scratch = thread_scratch(f, THREAD_ID()) };
        fn(f, &x);
    }
    ra_blas_serial_end();
}

/* The column part of the forward, then its state as records {m, l, acc}
 * for the move back to the row layout. */
static void col_forward(axial_head *f, const col_item *x)
{
    const int D = f->o.D;
    const ra_attn_opts ao = { .D = D, .scale = f->o.scale, .causal = 1 };
    float *acc = f->accc + x->t * D, *m = f->mc + x->t, *l = f->lc + x->t;
    ra_attn_fwd_init(x->rows, D, acc, m, l);
    for (int p = 0; p < x->passes; p++)
        ra_attn_fwd_block(&ao, &x->qr[p], f->qc + x->t * D, &x->kr[p], f->kc + x->t * D, f->vc + x->t * D, acc, m,
                          l, x->scratch, NULL);
    for (int i = 0; i < x->rows; i++) {
        float *r = f->rec + (x->t + i) * (D + 2);
        r[0] = m[i], r[1] = l[i];
        memcpy(r + 2, acc + (size_t)i * D, sizeof(float) * D);
    }
}

static void col_backward(axial_head *f, const col_item *x)
{
    const int D = f->o.D;
    const ra_attn_opts ao = { .D = D, .scale = f->o.scale, .causal = 1 };
    const size_t at = x->t * D;
    float *g[] = { f->dqc + at, f->dkc + at, f->dvc + at };
    for (int i = 0; i < 3; i++) memset(g[i], 0, sizeof(float) * x->rows * D);
    for (int p = 0; p < x->passes; p++)
        ra_attn_bwd_block(&ao, &x->qr[p], f->qc + at, f->doc + at, f->mc + x->t, f->lc + x->t, &x->kr[p], f->kc + at,
                          f->vc + at, g[0], g[1], g[2], x->scratch, NULL);
}

/* ---- forward ------------------------------------------------------------------------ */

static ra_status to_rows(axial_head *f, const float *q, const float *k, const float *v)
{
    const int64_t t_trace = RA_TRACE_T0();
    const ra_ring_opts *o = &f->o;
    RA_TRY(ra_head_move_in(&f->in, q, f->own[HM_Q], o->B * o->H, o->D, &f->q));
    RA_TRY(ra_head_move_in(&f->in, k, f->own[HM_K], o->B * o->Hkv, o->D, &f->k));
    RA_TRY(ra_head_move_in(&f->in, v, f->own[HM_V], o->B * o->Hkv, o->D, &f->v));
    summaries(f);
    const int BH = o->B * o->H;
    RA_TRY(ra_head_move_run(&f->rc, f->q, f->qc, BH, o->D, 1));
    RA_TRY(ra_head_move_run(&f->rc, f->khat, f->kc, BH, o->D, 1));
    RA_TRY(ra_head_move_run(&f->rc, f->vhat, f->vc, BH, o->D, 1));
    RA_TRACE_END("combiner", "to rows + summaries", t_trace);
    return RA_OK;
}

/* The forward's results in the row layout, and the column part's records. */
typedef struct {
    float *out, *lse;  /* [BH][n][D], [BH][n] */
    const float *grp;  /* [BH][n][D+2] */
} direct_out;

/* The direct part of one row (its own tokens, causal or not), merged with
 * the column part's record and finished into out and lse. */
static void direct_row(axial_head *f, const row_head *x, void *ctx)
{
    const direct_out *r = ctx;
    const float *grp = r->grp;
    const int D = f->o.D, len = x->len;
    const ra_attn_opts direct = { .D = D, .scale = f->o.scale, .causal = f->o.causal };
    const size_t bh = x->bh, bk = x->bk, a = (size_t)x->a;
    float *acc = r->out + (bh * f->n + a) * D, *m = r->lse + bh * f->n + a, *l = f->l + bh * f->n + a;
    ra_attn_fwd_init(len, D, acc, m, l);
    ra_attn_fwd_block(&direct, &x->rr, f->q + (bh * f->n + a) * D, &x->rr, f->k + (bk * f->n + a) * D,
                      f->v + (bk * f->n + a) * D, acc, m, l, x->scratch, NULL);
    for (int i = 0; i < len; i++) {
        const float *gr = grp + (bh * f->n + a + i) * (D + 2);
        float mm = gr[0] > m[i] ? gr[0] : m[i];
        if (mm == -INFINITY) continue;
        float sa = expf(m[i] - mm), sb = expf(gr[0] - mm);
        for (int d = 0; d < D; d++) acc[(size_t)i * D + d] = acc[(size_t)i * D + d] * sa + gr[2 + d] * sb;
        l[i] = l[i] * sa + gr[1] * sb;
        m[i] = mm;
    }
    ra_attn_fwd_finish(len, D, acc, m, l, m);
}

static ra_status axial_forward(ra_head *hd, const float *q, const float *k, const float *v, const int32_t *seg,
                               float *o_out, float *lse_out)
{
    const int64_t t_trace = RA_TRACE_T0();
    axial_head *f = (axial_head *)hd;
    const ra_ring_opts *o = &f->o;
    const int D = o->D, BH = o->B * o->H;
    if (seg) return RA_FAIL(RA_ERR_ARG, "combiner-axial: segment ids are not supported");
    RA_TRY(thread_buffers(f));
    const double bytes0 = ra_comm_bytes();
    RA_TRY(to_rows(f, q, k, v));
    /* column part in the column layout; its records {m, l, acc} move back */
    for_columns(f, col_forward);
    const float *grp = f->rec + (size_t)BH * f->nc * (D + 2); /* [BH][n][D+2] */
    RA_TRY(ra_head_move_run(&f->rc, f->rec, (float *)grp, BH, D + 2, 0));
    /* direct part in the row layout, then merge the two states and finish */
    direct_out r = { .out = ra_head_move_target(&f->in, o_out, f->own[HM_O]),
                     .lse = ra_head_move_target(&f->in, lse_out, f->own[HM_LSE]), .grp = grp };
    for_rows(f, direct_row, &r);
    RA_TRY(ra_head_move_out(&f->in, r.out, o_out, BH, D));
    RA_TRY(ra_head_move_out(&f->in, r.lse, lse_out, BH, 1));
    f->bytes = ra_comm_bytes() - bytes0;
    RA_TRACE_END("combiner", "combiner-axial forward", t_trace);
    return RA_OK;
}

/* ---- backward ----------------------------------------------------------------------- */

/* The backward of one row: its direct part, then the summaries' row
 * softmax (vhat = rho V and khat = rho K share rho = softmax(a q K^T)). */
static void backward_row(axial_head *f, const row_head *x, void *ctx)
{
    (void)ctx;
    const int D = f->o.D, len = x->len;
    const ra_attn_opts direct = { .D = D, .scale = f->o.scale, .causal = f->o.causal };
    const ra_attn_opts rowsm = { .D = D, .scale = f->o.scale, .causal = 0 };
    float *dl2 = x->buf; /* [len] scratch */
    const ra_rows *rr = &x->rr;
    const size_t qo = (x->bh * f->n + x->a) * D, ko = (x->bk * f->n + x->a) * D, ro = x->bh * f->n + x->a;
    ra_attn_bwd_block(&direct, rr, f->q + qo, f->dout + qo, f->lse + ro, f->l + ro, rr, f->k + ko, f->v + ko,
                      f->dq + qo, f->dk + ko, f->dv + ko, x->scratch, NULL);
    ra_attn_bwd_rowdot(len, D, f->vhat + qo, f->dvhat + qo, dl2);
    ra_attn_bwd_block(&rowsm, rr, f->q + qo, f->dvhat + qo, f->rs + ro, dl2, rr, f->k + ko, f->v + ko, f->dq + qo,
                      f->dk + ko, f->dv + ko, x->scratch, NULL);
    ra_attn_bwd_rowdot(len, D, f->khat + qo, f->dkhat + qo, dl2);
    ra_attn_bwd_block(&rowsm, rr, f->q + qo, f->dkhat + qo, f->rs + ro, dl2, rr, f->k + ko, f->k + ko, f->dq + qo,
                      f->dk + ko, f->dk + ko, x->scratch, NULL);
}

static ra_status axial_backward(ra_head *hd, const float *q, const float *k, const float *v, const int32_t *seg,
                                const float *o_in, const float *lse_in, const float *dout, float *dq, float *dk,
                                float *dv)
{
    const int64_t t_trace = RA_TRACE_T0();
    axial_head *f = (axial_head *)hd;
    const ra_ring_opts *o = &f->o;
    const int D = o->D, BH = o->B * o->H, BK = o->B * o->Hkv;
    if (seg) return RA_FAIL(RA_ERR_ARG, "combiner-axial: segment ids are not supported");
    RA_TRY(backward_buffers(f));
    RA_TRY(thread_buffers(f));
    const double bytes0 = ra_comm_bytes();
    RA_TRY(to_rows(f, q, k, v));
    RA_TRY(ra_head_move_in(&f->in, o_in, f->own[HM_O], BH, D, &f->out));
    RA_TRY(ra_head_move_in(&f->in, lse_in, f->own[HM_LSE], BH, 1, &f->lse));
    RA_TRY(ra_head_move_in(&f->in, dout, f->own[HM_DOUT], BH, D, &f->dout));
    f->dq = ra_head_move_target(&f->in, dq, f->own[HM_DQ]);
    f->dk = ra_head_move_target(&f->in, dk, f->own[HM_DK]);
    f->dv = ra_head_move_target(&f->in, dv, f->own[HM_DV]);
    const int64_t rows = (int64_t)BH * f->n; /* dl = rowsum(dO * O), into l */
#pragma omp parallel for num_threads(f->nthr) schedule(dynamic, 2048) if (rows * D >= 32768)
    for (int64_t i = 0; i < rows; i++) ra_attn_bwd_rowdot(1, D, f->out + i * D, f->dout + i * D, f->l + i);
    ra_head_zero(f->dk, (size_t)BK * f->n * D);
    ra_head_zero(f->dv, (size_t)BK * f->n * D);
    /* column part: lse and dl go to the column layout with dO */
    RA_TRY(ra_head_move_run(&f->rc, f->dout, f->doc, BH, D, 1));
    RA_TRY(ra_head_move_run(&f->rc, f->lse, f->mc, BH, 1, 1));
    RA_TRY(ra_head_move_run(&f->rc, f->l, f->lc, BH, 1, 1));
    for_columns(f, col_backward);
    RA_TRY(ra_head_move_run(&f->rc, f->dqc, f->dq, BH, D, 0)); /* dq starts as the column part's */
    RA_TRY(ra_head_move_run(&f->rc, f->dkc, f->dkhat, BH, D, 0));
    RA_TRY(ra_head_move_run(&f->rc, f->dvc, f->dvhat, BH, D, 0));
    /* direct part and the summaries' row softmax, in the row layout */
    for_rows(f, backward_row, NULL);
    RA_TRY(ra_head_move_out(&f->in, f->dq, dq, BH, D));
    RA_TRY(ra_head_move_out(&f->in, f->dk, dk, BK, D));
    RA_TRY(ra_head_move_out(&f->in, f->dv, dv, BK, D));
    f->bytes = ra_comm_bytes() - bytes0;
    RA_TRACE_END("combiner", "combiner-axial backward", t_trace);
    return RA_OK;
}

static double axial_wait(const ra_head *hd)
{
    (void)hd;
    return 0.0;
}

static double axial_bytes(const ra_head *hd) { return ((const axial_head *)hd)->bytes; }

static void axial_destroy(ra_head *hd)
{
    axial_head *f = (axial_head *)hd;
    if (!f) return;
    ra_head_move_free(&f->in);
    ra_head_move_free(&f->rc);
    free(f->rb);
    free(f->mem);
    free(f->bmem);
    free(f->tmem);
    free(f);
}

const ra_head_kind ra_head_combiner_axial = {
    .name = "combiner-axial",
    .create = axial_create,
    .forward = axial_forward,
    .backward = axial_backward,
    .wait_seconds = axial_wait,
    .bytes_sent = axial_bytes,
    .destroy = axial_destroy,
};

static ra_status axial_setup(axial_head *f, const ra_head_opts *opts, MPI_Comm comm)
{
    f->o = opts->ring;
    ra_ring_opts *o = &f->o;
    if (o->scale == 0.0f) o->scale = 1.0f / sqrtf((float)o->D);
    if (o->H % o->Hkv) return RA_FAIL(RA_ERR_SHAPE, "combiner-axial: Hkv %d must divide H %d", o->Hkv, o->H);
    f->comm = comm;
    MPI_Comm_size(comm, &f->P);
    MPI_Comm_rank(comm, &f->rank);
    if (o->L < 1) return RA_FAIL(RA_ERR_ARG, "combiner-axial: L = %lld must be >= 1", (long long)o->L);
    int row = opts->layer ? opts->layer->row : 0;
    if (row < 0) return RA_FAIL(RA_ERR_ARG, "combiner-axial: row %d must be >= 1 (0: automatic)", row);
    grid *g = &f->g;
    g->L = o->L;
    g->m = row > 0 ? row : (int64_t)ceil(sqrt((double)o->L));
    if (g->m > g->L) g->m = g->L;
    g->R = (g->L + g->m - 1) / g->m;
    g->lr = g->L - (g->R - 1) * g->m;
    /* whole rows per rank, then whole columns per rank */
    RA_TRY(ra_alloc(&f->rb, sizeof(int64_t) * 2 * (f->P + 1), "axial bounds"));
    f->cb = f->rb + f->P + 1;
    for (int r = 0; r <= f->P; r++) {
        int64_t t = (g->R * r / f->P) * g->m;
        f->rb[r] = t < g->L ? t : g->L;
        f->cb[r] = colstart(g, g->m * r / f->P);
    }
    f->c0 = g->m * f->rank / f->P;
    f->c1 = g->m * (f->rank + 1) / f->P;
    RA_TRY(ra_relayout_create(&f->in.R, o->layout, o->L, f->rb, comm));
    RA_TRY(ra_head_move_init(&f->in));
    RA_TRY(ra_relayout_create_perm(&f->rc.R, o->L, f->rb, f->cb, col_key, &f->g, comm));
    RA_TRY(ra_head_move_init(&f->rc));
    f->n = f->in.R.Lr_dst;
    f->nc = f->rc.R.Lr_dst;
    /* the forward's buffers (row layout: n tokens; column layout: nc) */
    const size_t B = o->B, D = o->D, BH = B * o->H, BK = B * o->Hkv;
    const size_t nq = BH * f->n * D, nk = BK * f->n * D, nr = BH * f->n, cq = BH * f->nc * D, cr = BH * f->nc;
    const size_t nrec = BH * (size_t)(f->nc + f->n) * (D + 2);
    ra_plan plan = RA_PLAN_INIT;
    RA_PLAN_ADD(&plan, f->pos, (size_t)f->n);
    RA_PLAN_ADD(&plan, f->qpc, (size_t)f->nc);
    RA_PLAN_ADD(&plan, f->kpc, 3 * (size_t)f->nc); /* plain, then mirrored query and summary positions */
    for (int t = HM_Q; t <= HM_LSE; t++) RA_PLAN_ADD(&plan, f->own[t], ra_head_move_floats(&f->in, t, nq, nk, nr));
    float **col_q[] = { &f->qc, &f->kc, &f->vc, &f->accc };
    RA_PLAN_ADD(&plan, f->khat, nq);
    RA_PLAN_ADD(&plan, f->vhat, nq);
    RA_PLAN_ADD(&plan, f->l, nr);
    RA_PLAN_ADD(&plan, f->rs, nr);
    for (int i = 0; i < 4; i++) ra_plan_add(&plan, (void **)col_q[i], cq, sizeof(float));
    RA_PLAN_ADD(&plan, f->mc, cr);
    RA_PLAN_ADD(&plan, f->lc, cr);
    /* records {m, l, acc} of the column part: [BH][nc] sent, [BH][n] received */
    RA_PLAN_ADD(&plan, f->rec, nrec);
    RA_TRY(ra_plan_alloc(&plan, &f->mem, "combiner-axial buffers"));
    RA_TRY(thread_buffers(f)); /* scratch, rowbuf: for ra_threads() threads */
    f->dvc = f->accc; /* the forward's state is dead in the backward */
    for (int64_t i = 0; i < f->n; i++) f->pos[i] = (int32_t)(f->rb[f->rank] + i);
    /* column layout positions: plain (2r, 2r+1) and mirrored for later rows */
    for (int64_t c = f->c0; c < f->c1; c++) {
        int64_t a = col_first(f, c), rows = col_rows(g, c);
        for (int64_t r = 0; r < rows; r++) {
            f->qpc[a + r] = (int32_t)(2 * r);
            f->kpc[a + r] = (int32_t)(2 * r + 1);
            f->kpc[f->nc + a + r] = (int32_t)(2 * (rows - 1 - r));          /* mirrored query */
            f->kpc[2 * f->nc + a + r] = (int32_t)(2 * (rows - 1 - r) + 1);  /* mirrored summary */
        }
    }
    return RA_OK;
}

/* The backward's buffers, allocated by the first backward: a forward-only
 * run (inference, the long-context showcase) never pays for them. */
static ra_status backward_buffers(axial_head *f)
{
    if (f->bmem) return RA_OK;
    const ra_ring_opts *o = &f->o;
    const size_t D = o->D, BH = (size_t)o->B * o->H, BK = (size_t)o->B * o->Hkv;
    const size_t nq = BH * f->n * D, nk = BK * f->n * D, nr = BH * f->n, cq = BH * f->nc * D;
    ra_plan plan = RA_PLAN_INIT;
    for (int t = HM_DOUT; t <= HM_DV; t++) RA_PLAN_ADD(&plan, f->own[t], ra_head_move_floats(&f->in, t, nq, nk, nr));
    RA_PLAN_ADD(&plan, f->dkhat, nq);
    RA_PLAN_ADD(&plan, f->dvhat, nq);
    float **col_q[] = { &f->doc, &f->dqc, &f->dkc };
    for (int i = 0; i < 3; i++) ra_plan_add(&plan, (void **)col_q[i], cq, sizeof(float));
    RA_TRY(ra_plan_alloc(&plan, &f->bmem, "combiner-axial gradients"));
    return RA_OK;
}

static ra_status axial_create(ra_head **out, const ra_head_opts *opts, MPI_Comm comm)
{
    axial_head *f = calloc(1, sizeof *f);
    if (!f) return RA_FAIL(RA_ERR_NOMEM, "out of memory for a combiner-axial head");
    f->base.kind = &ra_head_combiner_axial;
    ra_status st = axial_setup(f, opts, comm);
    if (st != RA_OK) {
        axial_destroy(&f->base);
        return st;
    }
    *out = &f->base;
    return RA_OK;
}
