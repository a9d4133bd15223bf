/* combiner_logsparse.c - the combiner-logsparse head (docs/design.md §5), causal
 * only: O(L log L D). Query i attends to itself directly and, for each
 * level l with bit l of i set, to one summary of the aligned block
 * [(b-1) 2^l, b 2^l), b = i >> l: qbar, kbar = elementwise max of q, k over
 * the block, vbar = sum_j softmax_j(a qbar . k_j) v_j. These blocks tile
 * [0, i) exactly; one softmax covers the 1 + popcount(i) logits.
 *
 * Distribution: tokens move (head_move.h) to contiguous ranges [a, e). Most
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
 * [B][Hkv][n][D]; per summary slot s: qbar, vbar, dvbar [B][H][S][D],
 * kbar, dkbar [B][Hkv][S][D], slse [B][H][S]. */
#include "kernels/isa_names.h" /* first: the names of a portable build's copies */

#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "colmax.h"
#include "head_move.h"
#include "rowvec.h"
#include "ringattn/collective.h"
#include "ringattn/dist.h"
#include "ringattn/heads.h"
#include "ringattn/mem.h"
#include "ringattn/plan.h"
#include "ringattn/threads.h"
#include "ringattn/trace.h"

#include "combiner_logsparse.h"


/* ---- blocks (the helpers shared with setup: combiner_logsparse.h) ---------- */

/* Is block k reduced over ranks (in the candidate list)? Then the local
 * passes leave it alone: other ranks' queries contribute to it too. */
static int is_candidate(const ls_head *f, block k)
{
    return f->C > 0 && bsearch(&k, f->cand, (size_t)f->C, sizeof(block), cmp_block) != NULL;
}

/* The parallel loops over slots. Blocks below level LOW (under 2^LOW
 * tokens: most of the slots) go by chunks of 2^LOW tokens: one item does
 * every such block inside its chunk, level by level, while the chunk's
 * rows stay in cache (and neighbouring slots, whose slse share cache
 * lines, stay on one thread). A block of a higher level is an item of its
 * own. Items are (chunk or block, key head). */
#define LOW 8

/* Every loop hands out its items dynamically - in runs of QUERY_CHUNK for
 * the per-query loops: a thread that another process holds up for a while
 * does not keep the others waiting at the end. */
#define QUERY_CHUNK 512

typedef struct {
    int l;
    int64_t s0, s1; /* slots [s0, s1) of level l */
} slot_run;

typedef void (*slot_fn)(ls_head *f, int l, int64_t s, size_t bk);

static int low_levels(const ls_head *f) { return f->nl < LOW ? f->nl : LOW; }

/* The slots of level l (< LOW) in chunk j: tokens [j 2^LOW, (j+1) 2^LOW). */
static slot_run chunk_slots(const ls_head *f, int64_t j, int l)
{
    int64_t b0 = (j << LOW) >> l, b1 = ((j + 1) << LOW) >> l;
    b0 = b0 > f->lo[l] ? b0 : f->lo[l];
    b1 = b1 < f->hi[l] ? b1 : f->hi[l];
    return (slot_run){ l, f->off[l] + b0 - f->lo[l], f->off[l] + (b1 > b0 ? b1 : b0) - f->lo[l] };
}

/* The chunks holding a low-level slot: [*j0, *j1). */
static void chunk_range(const ls_head *f, int64_t *j0, int64_t *j1)
{
    *j0 = INT64_MAX, *j1 = 0;
    for (int l = 0; l < low_levels(f); l++) {
        if (f->hi[l] <= f->lo[l]) continue;
        const int64_t a = (f->lo[l] << l) >> LOW, e = ((f->hi[l] << l) + ((int64_t)1 << LOW) - 1) >> LOW;
        *j0 = a < *j0 ? a : *j0;
        *j1 = e > *j1 ? e : *j1;
    }
    if (*j0 > *j1) *j0 = *j1;
}

/* fn on every low-level slot of chunk j, level by level */
static void chunk_visit(ls_head *f, int64_t j, size_t bk, slot_fn fn)
{
    for (int l = 0; l < low_levels(f); l++) {
        const slot_run u = chunk_slots(f, j, l);
        for (int64_t s = u.s0; s < u.s1; s++) fn(f, l, s, bk);
    }
}

/* The slots of levels LOW and up, the top level first: first[i] is the
 * first of level nl-1-i; returns their number. */
static int64_t high_slots(const ls_head *f, int64_t first[MAX_LEVELS + 1])
{
    first[0] = 0;
    for (int i = 0; i < f->nl; i++) {
        const int l = f->nl - 1 - i;
        first[i + 1] = first[i] + (l >= LOW ? f->hi[l] - f->lo[l] : 0);
    }
    return first[f->nl];
}

/* fn once on every (slot, key head), in no particular order: the high
 * slots top level first (the biggest blocks start early, so the threads
 * finish together), then the chunks. */
static void for_slots(ls_head *f, slot_fn fn)
{
    int64_t first[MAX_LEVELS + 1], j0, j1;
    const int64_t BK = (int64_t)f->o.B * f->o.Hkv, high = high_slots(f, first);
    chunk_range(f, &j0, &j1);
    const int64_t items = (high + j1 - j0) * BK;
#pragma omp parallel for num_threads(ra_threads()) schedule(dynamic, 1) if (items > 1)
    for (int64_t it = 0; it < items; it++) {
        const int64_t u = it / BK;
        const size_t bk = (size_t)(it % BK);
        if (u >= high) {
            chunk_visit(f, j0 + u - high, bk, fn);
            continue;
        }
        int i = 0;
        while (u >= first[i + 1]) i++;
        const int l = f->nl - 1 - i;
        fn(f, l, f->off[l] + (u - first[i]), bk);
    }
}

/* The same in level order for every token: the chunks (levels below
 * LOW), then each higher level - its blocks have disjoint rows - in turn. */
static void for_slots_by_level(ls_head *f, slot_fn fn)
{
    int64_t j0, j1;
    const int64_t BK = (int64_t)f->o.B * f->o.Hkv;
    chunk_range(f, &j0, &j1);
#pragma omp parallel for num_threads(ra_threads()) schedule(dynamic, 1) if ((j1 - j0) * BK > 1)
    for (int64_t it = 0; it < (j1 - j0) * BK; it++) chunk_visit(f, j0 + it / BK, (size_t)(it % BK), fn);
    for (int l = LOW; l < f->nl; l++) {
        const int64_t items = (f->hi[l] - f->lo[l]) * BK;
#pragma omp parallel for num_threads(ra_threads()) schedule(dynamic, 1) if (items > 1)
        for (int64_t it = 0; it < items; it++) fn(f, l, f->off[l] + it / BK, (size_t)(it % BK));
    }
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

/* The summaries' one-query attention over a block runs as direct loops,
 * not on the sgemm kernels of attn.h: a 1 x len GEMM costs more in
 * OpenBLAS's per-call overhead and packing than its arithmetic. The logits
 * go CHUNK rows at a time through the online softmax. */
#define CHUNK 64

/* vbar's online-softmax record of qb over rows [r0, r1): rec = {m, l, acc[D]} */
static void vbar_partial(ls_head *f, const float *qb, size_t bk, int64_t r0, int64_t r1, float *rec)
{
    const int D = f->o.D;
    float acc[D], m = -INFINITY, l = 0.0f; /* on the stack: rec may share a cache line with another thread's */
    memset(acc, 0, sizeof(float) * D);
    for (int64_t j0 = r0; j0 < r1; j0 += CHUNK) {
        const int n = (int)(r1 - j0 < CHUNK ? r1 - j0 : CHUNK);
        const float *k = f->k + (bk * f->n + j0) * D, *v = f->v + (bk * f->n + j0) * D;
        float z[CHUNK], top = -INFINITY;
        for (int j = 0; j < n; j++) {
            z[j] = f->o.scale * ra_row_dot(qb, k + (size_t)j * D, D);
            top = z[j] > top ? z[j] : top;
        }
        if (top > m) { /* rescale what the earlier chunks summed */
            const float alpha = expf(m - top);
            for (int d = 0; d < D; d++) acc[d] *= alpha;
            l *= alpha;
            m = top;
        }
        for (int j = 0; j < n; j++) {
            float p = expf(z[j] - m);
            l += p;
            for (int d = 0; d < D; d++) acc[d] += p * v[(size_t)j * D + d];
        }
    }
    rec[0] = m, rec[1] = l;
    memcpy(rec + 2, acc, sizeof(float) * D);
}

static void finish_record(const float *rec, int D, float *vb, float *lse)
{
    for (int d = 0; d < D; d++) vb[d] = rec[1] > 0 ? rec[2 + d] / rec[1] : 0.0f;
    *lse = rec[1] > 0 ? rec[0] + logf(rec[1]) : -INFINITY;
}

/* The summaries of slot s (level l) for key head bk and its G query heads,
 * unless the block is a candidate (reduced over ranks, below). */
static void local_summary(ls_head *f, int l, int64_t s, size_t bk)
{
    const int D = f->o.D, H = f->o.H, Hkv = f->o.Hkv, G = H / Hkv;
    const block k = { l, f->lo[l] + (s - f->off[l]) };
    if (is_candidate(f, k)) return;
    float rec[D + 2];
    int64_t r0, r1;
    rows_of(f, k, &r0, &r1);
    colmax(f->kbar + (bk * f->S + s) * D, f->k + bk * f->n * D, r0, r1, D);
    for (int h = (int)(bk % Hkv) * G; h < (int)(bk % Hkv + 1) * G; h++) {
        const size_t bh = bk / Hkv * H + h;
        float *qb = f->qbar + (bh * f->S + s) * D;
        colmax(qb, f->q + bh * f->n * D, r0, r1, D);
        vbar_partial(f, qb, bk, r0, r1, rec);
        finish_record(rec, D, f->vbar + (bh * f->S + s) * D, f->slse + bh * f->S + s);
    }
}

static ra_status summaries(ls_head *f)
{
    const int64_t t_trace = RA_TRACE_T0();
    const ra_ring_opts *o = &f->o;
    const int D = o->D, B = o->B, H = o->H, Hkv = o->Hkv, G = H / Hkv;
    for_slots(f, local_summary); /* each (slot, key head) writes its own summaries */
    RA_TRACE_END("combiner", "local summaries", t_trace);
    if (f->C == 0) return RA_OK;
    const int64_t t_cand = RA_TRACE_T0();
    /* candidates: partial maxima, reduced */
    const size_t per = (size_t)B * (H + Hkv) * D;
    float *mx = f->cmax;
#pragma omp parallel for num_threads(ra_threads()) schedule(dynamic, 1) if (f->C > 1)
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
#pragma omp parallel for num_threads(ra_threads()) schedule(dynamic, 1) if (items > 1)
    for (int64_t it = 0; it < items; it++) {
        const int c = (int)(it / BH), bb = (int)(it % BH / H), h = (int)(it % H);
        int64_t r0, r1;
        rows_of(f, f->cand[c], &r0, &r1);
        const float *qb = mx + (size_t)c * per + ((size_t)bb * H + h) * D;
        vbar_partial(f, qb, (size_t)bb * Hkv + h / G, r0, r1, recs + (((size_t)c * B + bb) * H + h) * (D + 2));
    }
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
    RA_TRACE_END("combiner", "shared summaries", t_cand);
    return RA_OK;
}

/* ---- per query ----------------------------------------------------------------------- */

/* logits of local query i (head bh, kv head bk): [self, groups...]; slots in sl */
static int logits(const ls_head *f, size_t bh, size_t bk, int64_t i, float *z, int64_t *sl)
{
    const int D = f->o.D;
    const float a = f->o.scale, *qi = f->q + (bh * f->n + i) * D;
    const int64_t g = f->a + i;
    int n = 0;
    z[n] = a * ra_row_dot(qi, f->k + (bk * f->n + i) * D, D);
    sl[n++] = -1;
    for (int l = 0; l < f->nl; l++)
        if ((g >> l) & 1) {
            int64_t s = slot_of(f, l, (g >> l) - 1);
            z[n] = a * ra_row_dot(qi, f->kbar + (bk * f->S + s) * D, D);
            sl[n++] = s;
        }
    return n;
}

static ra_status ls_prepare(ls_head *f, const float *q, const float *k, const float *v)
{
    const ra_ring_opts *o = &f->o;
    RA_TRY(ra_head_move_in(&f->M, q, f->own[HM_Q], o->B * o->H, o->D, &f->q));
    RA_TRY(ra_head_move_in(&f->M, k, f->own[HM_K], o->B * o->Hkv, o->D, &f->k));
    RA_TRY(ra_head_move_in(&f->M, v, f->own[HM_V], o->B * o->Hkv, o->D, &f->v));
    return summaries(f);
}

ra_status ra_ls_forward(ra_head *hd, const float *q, const float *k, const float *v, const int32_t *seg,
                            float *o_out, float *lse_out)
{
    const int64_t t_trace = RA_TRACE_T0();
    ls_head *f = (ls_head *)hd;
    const ra_ring_opts *o = &f->o;
    const int D = o->D, G = o->H / o->Hkv;
    if (seg) return RA_FAIL(RA_ERR_ARG, "combiner-logsparse: segment ids are not supported");
    const double bytes0 = ra_comm_bytes();
    RA_TRY(ls_prepare(f, q, k, v));
    float *out = ra_head_move_target(&f->M, o_out, f->own[HM_O]);
    float *lse = ra_head_move_target(&f->M, lse_out, f->own[HM_LSE]);
    /* every (head, query) on its own: in parallel */
    const int64_t BH = (int64_t)o->B * o->H;
#pragma omp parallel for collapse(2) num_threads(ra_threads()) schedule(dynamic, QUERY_CHUNK)
    for (int64_t x = 0; x < BH; x++)
        for (int64_t i = 0; i < f->n; i++) {
            const size_t bh = (size_t)x, bk = bh / o->H * o->Hkv + bh % o->H / G;
            float z[MAX_LEVELS + 1];
            int64_t sl[MAX_LEVELS + 1];
            int n = logits(f, bh, bk, i, z, sl);
            float m = z[0], sum = 0, *oi = out + (bh * f->n + i) * D;
            for (int t = 1; t < n; t++) m = z[t] > m ? z[t] : m;
            memset(oi, 0, sizeof(float) * D);
            for (int t = 0; t < n; t++) {
                float p = expf(z[t] - m);
                const float *val = sl[t] < 0 ? f->v + (bk * f->n + i) * D : f->vbar + (bh * f->S + sl[t]) * D;
                for (int d = 0; d < D; d++) oi[d] += p * val[d];
                sum += p;
            }
            for (int d = 0; d < D; d++) oi[d] /= sum;
            lse[bh * f->n + i] = m + logf(sum);
        }
    RA_TRY(ra_head_move_out(&f->M, out, o_out, o->B * o->H, D));
    RA_TRY(ra_head_move_out(&f->M, lse, lse_out, o->B * o->H, 1));
    f->bytes = ra_comm_bytes() - bytes0;
    RA_TRACE_END("combiner", "combiner-logsparse forward", t_trace);
    return RA_OK;
}

/* ---- backward ---------------------------------------------------------------------- */

/* d(vbar) of block blk over my rows -> dk, dv of the rows, and dqbar (+=) */
static void vbar_backward(ls_head *f, block blk, size_t bk, const float *qb, const float *vb,
                          float lse, const float *dvb, float *dqb)
{
    const int D = f->o.D;
    int64_t r0, r1;
    rows_of(f, blk, &r0, &r1);
    if (r1 <= r0) return;
    const float a = f->o.scale, dl = ra_row_dot(vb, dvb, D);
    const float *k = f->k + (bk * f->n + r0) * D, *v = f->v + (bk * f->n + r0) * D;
    float *dk = f->dk + (bk * f->n + r0) * D, *dv = f->dv + (bk * f->n + r0) * D;
    for (int64_t j = 0; j < r1 - r0; j++) { /* direct, as vbar_partial */
        const float *kj = k + j * D, *vj = v + j * D;
        float p = expf(a * ra_row_dot(qb, kj, D) - lse), ds = p * (ra_row_dot(dvb, vj, D) - dl);
        for (int d = 0; d < D; d++) {
            dqb[d] += a * ds * kj[d];
            dk[j * D + d] += a * ds * qb[d];
            dv[j * D + d] += p * dvb[d];
        }
    }
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

/* argmax_index with target = colmax of the same rows (a local block's
 * summary), found in one pass over the rows as x is stored: the running
 * maximum moves to row r exactly when row r is the first to hold it. */
static void local_argmax(const ls_head *f, block k, const float *x, int64_t *out)
{
    const int D = f->o.D;
    int64_t r0, r1;
    rows_of(f, k, &r0, &r1);
    float top[D];
    int at[D]; /* row - r0, or -1 while the column has shown nothing above -inf */
    for (int d = 0; d < D; d++) top[d] = -INFINITY, at[d] = -1;
    for (int64_t r = r0; r < r1; r++) {
        const float *xr = x + r * D;
        const int i = (int)(r - r0);
        for (int d = 0; d < D; d++)
            if (xr[d] > top[d]) top[d] = xr[d], at[d] = i;
    }
    for (int d = 0; d < D; d++) out[d] = f->a + r0 + at[d];
    float none[D]; /* columns of -inf (or NaN) only: the first -inf, as argmax_index */
    for (int d = 0; d < D; d++) none[d] = -INFINITY;
    for (int d = 0; d < D; d++)
        if (at[d] < 0) {
            argmax_index(f, k, x, none, out);
            for (int e = 0; e < D; e++)
                if (at[e] >= 0) out[e] = f->a + r0 + at[e];
            break;
        }
}

static void add_at(ls_head *f, float *dx, const int64_t *idx, const float *dbar)
{
    const int D = f->o.D;
    for (int d = 0; d < D; d++)
        if (idx[d] >= f->a && idx[d] < f->e) dx[(idx[d] - f->a) * D + d] += dbar[d];
}

/* Slot s (level l), key head bk, unless a candidate: its G query heads in
 * order, each through vbar's softmax and qbar's max-pooling, then kbar's
 * max-pooling. */
static void local_block_backward(ls_head *f, int l, int64_t s, size_t bk)
{
    const int D = f->o.D, H = f->o.H, Hkv = f->o.Hkv, G = H / Hkv;
    const block kb = { l, f->lo[l] + (s - f->off[l]) };
    if (is_candidate(f, kb)) return;
    int64_t idx[D];
    float dqb[D];
    for (int h = (int)(bk % Hkv) * G; h < (int)(bk % Hkv + 1) * G; h++) {
        const size_t bh = bk / Hkv * H + h, at = bh * f->S + s;
        memset(dqb, 0, sizeof(float) * D);
        vbar_backward(f, kb, bk, f->qbar + at * D, f->vbar + at * D, f->slse[at], f->dvbar + at * D, dqb);
        local_argmax(f, kb, f->q + bh * f->n * D, idx);
        add_at(f, f->dq + bh * f->n * D, idx, dqb);
    }
    local_argmax(f, kb, f->k + bk * f->n * D, idx);
    add_at(f, f->dk + bk * f->n * D, idx, f->dkbar + (bk * f->S + s) * D);
}

/* The summary gradients dkbar, dvbar of slot s at level l, key head bk (and its G query heads). */
static void slot_gradients(ls_head *f, int l, int64_t s, size_t bk)
{
    const int D = f->o.D, H = f->o.H, Hkv = f->o.Hkv, G = H / Hkv;
    const float a = f->o.scale;
    const int64_t b = f->lo[l] + (s - f->off[l]);
    const float *kk = f->kbar + (bk * f->S + s) * D;
    float *dkk = f->dkbar + (bk * f->S + s) * D;
    memset(dkk, 0, sizeof(float) * D);
    for (int h = (int)(bk % Hkv) * G; h < (int)(bk % Hkv + 1) * G; h++)
        memset(f->dvbar + ((bk / Hkv * H + h) * f->S + s) * D, 0, sizeof(float) * D);
    if (!((b + 1) & 1)) return;
    int64_t g0 = (b + 1) << l, g1 = (b + 2) << l;
    if (g0 < f->a) g0 = f->a;
    if (g1 > f->e) g1 = f->e;
    for (int h = (int)(bk % Hkv) * G; h < (int)(bk % Hkv + 1) * G; h++) {
        const size_t bh = bk / Hkv * H + h;
        const float *vv = f->vbar + (bh * f->S + s) * D;
        float *dvv = f->dvbar + (bh * f->S + s) * D;
        for (int64_t i = g0 - f->a; i < g1 - f->a; i++) {
            const float *qi = f->q + (bh * f->n + i) * D, *doi = f->dout + (bh * f->n + i) * D;
            float z = a * ra_row_dot(qi, kk, D), p = expf(z - f->lse[bh * f->n + i]);
            float ds = p * (ra_row_dot(doi, vv, D) - f->dl[bh * f->n + i]);
            for (int d = 0; d < D; d++) {
                dkk[d] += a * ds * qi[d];
                dvv[d] += p * doi[d];
            }
        }
    }
}

ra_status ra_ls_backward(ra_head *hd, const float *q, const float *k, const float *v, const int32_t *seg,
                             const float *o_in, const float *lse_in, const float *dout, float *dq, float *dk,
                             float *dv)
{
    const int64_t t_trace = RA_TRACE_T0();
    ls_head *f = (ls_head *)hd;
    const ra_ring_opts *o = &f->o;
    const int D = o->D, B = o->B, H = o->H, Hkv = o->Hkv, G = H / Hkv;
    const float a = o->scale;
    if (seg) return RA_FAIL(RA_ERR_ARG, "combiner-logsparse: segment ids are not supported");
    const double bytes0 = ra_comm_bytes();
    RA_TRY(ls_prepare(f, q, k, v));
    RA_TRY(ra_head_move_in(&f->M, o_in, f->own[HM_O], B * H, D, &f->out));
    RA_TRY(ra_head_move_in(&f->M, lse_in, f->own[HM_LSE], B * H, 1, &f->lse));
    RA_TRY(ra_head_move_in(&f->M, dout, f->own[HM_DOUT], B * H, D, &f->dout));
    f->dq = ra_head_move_target(&f->M, dq, f->own[HM_DQ]);
    f->dk = ra_head_move_target(&f->M, dk, f->own[HM_DK]);
    f->dv = ra_head_move_target(&f->M, dv, f->own[HM_DV]);
    /* per query: dq, and dk, dv of its own row; items (key head, query)
     * with the key head's G query heads in order zero, then write, only
     * their row */
    const int64_t BK = (int64_t)B * Hkv, t_query = RA_TRACE_T0();
#pragma omp parallel for collapse(2) num_threads(ra_threads()) schedule(dynamic, QUERY_CHUNK)
    for (int64_t x = 0; x < BK; x++)
        for (int64_t i = 0; i < f->n; i++) {
            const size_t bk = (size_t)x;
            float z[MAX_LEVELS + 1];
            int64_t sl[MAX_LEVELS + 1];
            memset(f->dk + (bk * f->n + i) * D, 0, sizeof(float) * D);
            memset(f->dv + (bk * f->n + i) * D, 0, sizeof(float) * D);
            for (int h = (int)(bk % Hkv) * G; h < (int)(bk % Hkv + 1) * G; h++) {
                const size_t bh = bk / Hkv * H + h;
                int n = logits(f, bh, bk, i, z, sl);
                const float *qi = f->q + (bh * f->n + i) * D, *doi = f->dout + (bh * f->n + i) * D;
                float lse = f->lse[bh * f->n + i], dl = ra_row_dot(f->out + (bh * f->n + i) * D, doi, D);
                float *dqi = f->dq + (bh * f->n + i) * D;
                memset(dqi, 0, sizeof(float) * D);
                f->dl[bh * f->n + i] = dl;
                for (int t = 0; t < n; t++) {
                    float p = expf(z[t] - lse);
                    const float *kk, *vv;
                    if (sl[t] < 0)
                        kk = f->k + (bk * f->n + i) * D, vv = f->v + (bk * f->n + i) * D;
                    else
                        kk = f->kbar + (bk * f->S + sl[t]) * D, vv = f->vbar + (bh * f->S + sl[t]) * D;
                    float ds = p * (ra_row_dot(doi, vv, D) - dl);
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
     * query order; each (slot, key head) with the G query heads in order */
    RA_TRACE_END("combiner", "query gradients", t_query);
    const int64_t t_slot = RA_TRACE_T0();
    for_slots(f, slot_gradients);
    RA_TRACE_END("combiner", "summary gradients", t_slot);
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
    /* local blocks: everything is here; a token's levels in order */
    const int64_t t_block = RA_TRACE_T0();
    for_slots_by_level(f, local_block_backward);
    RA_TRACE_END("combiner", "local blocks backward", t_block);
    if (f->C) { /* candidates: my part of each, with the summed gradients */
        const int64_t t_cand = RA_TRACE_T0();
        float *dqb = f->cdq;
        memset(dqb, 0, sizeof(float) * f->C * B * H * D);
        float *qbar = f->cmax2; /* then kbar: the candidates' maxima */
        /* the candidates' qbar, kbar, vbar, slse are not all in my slots: recompute them */
#pragma omp parallel for num_threads(ra_threads()) schedule(dynamic, 1) if (f->C > 1)
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
#pragma omp parallel for num_threads(ra_threads()) schedule(dynamic, 1) if (citems > 1)
        for (int64_t it = 0; it < citems; it++) {
            const int c = (int)(it / BH), bb = (int)(it % BH / H), h = (int)(it % H);
            int64_t r0, r1;
            rows_of(f, f->cand[c], &r0, &r1);
            vbar_partial(f, qbar + (size_t)c * per + ((size_t)bb * H + h) * D, (size_t)bb * Hkv + h / G, r0, r1,
                         recs + (((size_t)c * B + bb) * H + h) * (D + 2));
        }
        RA_TRY(ra_allreduce_named(MPI_IN_PLACE, recs, f->C * B * H, f->rec, f->merge, f->comm,
                                  "the merge of combiner-logsparse summary softmax records (backward)"));
        /* the candidates are sorted by level, and a level's blocks have
         * disjoint rows: level by level, items (candidate, key head) in
         * parallel, each with its G query heads in order */
        for (int c0 = 0, c1; c0 < f->C; c0 = c1) {
            for (c1 = c0; c1 < f->C && f->cand[c1].l == f->cand[c0].l;) c1++;
            const int64_t litems = (int64_t)(c1 - c0) * BK;
#pragma omp parallel for num_threads(ra_threads()) schedule(dynamic, 1) if (litems > 1)
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
        RA_TRY(ra_allreduce_named(MPI_IN_PLACE, dqb, (int)((size_t)f->C * B * H * D), MPI_FLOAT, MPI_SUM, f->comm,
                                  "the sum of combiner-logsparse query-summary gradients"));
        /* the max-pooling: the first global arg-max gets the gradient */
#pragma omp parallel for num_threads(ra_threads()) schedule(dynamic, 1) if (f->C > 1)
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
        RA_TRACE_END("combiner", "shared blocks backward", t_cand);
    }
    RA_TRY(ra_head_move_out(&f->M, f->dq, dq, B * H, D));
    RA_TRY(ra_head_move_out(&f->M, f->dk, dk, B * Hkv, D));
    RA_TRY(ra_head_move_out(&f->M, f->dv, dv, B * Hkv, D));
    f->bytes = ra_comm_bytes() - bytes0;
    RA_TRACE_END("combiner", "combiner-logsparse backward", t_trace);
    return RA_OK;
}
