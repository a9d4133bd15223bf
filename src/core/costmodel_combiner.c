/* costmodel_combiner.c - the planner's cost model of the Combiner heads
 * (costmodel.h, docs/planner.md): their kernel calls, scalar loops, layout
 * moves and collectives on the busiest rank. Pure: no MPI. The ring and
 * the tile counts are in costmodel.c (shared: costmodel_internal.h). */
#include <math.h>
#include <stdlib.h>

#include "costmodel_internal.h"
#include "ringattn/attn.h"
#include "ringattn/layout.h"

/* The most rows any sampled rank sends away when its layout's tokens move to
 * contiguous target ranges bounds(r) = [floor(r*L/P), floor((r+1)*L/P)). */
static double moved_rows(ra_layout lay, int64_t L, int P)
{
    if (P == 1 || lay == RA_LAYOUT_CONTIGUOUS) return 0;
    int idx[SAMPLE];
    double w[SAMPLE];
    int n = ra_cm_sample_set(P, 0, idx, w);
    double most = 0;
    for (int i = 0; i < n; i++) {
        const int r = idx[i];
        const int64_t Lr = ra_layout_count(lay, L, P, r), a = r * L / P, b = (r + 1) * L / P;
        int64_t out = 0;
        if (lay == RA_LAYOUT_ZIGZAG) { /* two contiguous chunks: count by intervals */
            for (int c2 = 0; c2 < 2; c2++) {
                int64_t ch = c2 ? 2 * (int64_t)P - 1 - r : r;
                int64_t lo = ch * L / (2 * P), hi = (ch + 1) * L / (2 * P);
                int64_t in_lo = lo > a ? lo : a, in_hi = hi < b ? hi : b;
                out += (hi - lo) - (in_hi > in_lo ? in_hi - in_lo : 0);
            }
        } else {
            for (int64_t k = 0; k < Lr; k++) {
                int64_t g = ra_layout_global(lay, L, P, r, k);
                out += g < a || g >= b;
            }
        }
        if (out > most) most = (double)out;
    }
    return most;
}

static double all_to_all_s(const ra_cm_setup *s, const ra_cm_rates *r, double bytes)
{
    const int P = ra_cm_ring_size(s);
    if (P == 1 || bytes <= 0) return 0;
    return ra_cm_transfer_s(s, r, bytes) + (P - 2) * ra_cm_transfer_s(s, r, 0);
}

/* The Combiners run many small kernel calls and scalar loops. Their costs,
 * from timing attn.c's blocks at the Combiners' shapes against the 256 x 512
 * tile of the calibration and from profiles of the heads (one thread, D = 64;
 * docs/planner.md "Model (assumptions)", design.md §15):
 *   a call of nq > 1 rows: its pairs (the forward's partial tiles by groups,
 *     FWD_SUB_COST in costmodel.c) + ROW_* pairs per (row, key tile): the
 *     softmax's and the sgemms' per-row work, which a 64-row block does not
 *     amortize;
 *   a one-row call (a summary's softmax over its span): ONE_ROW_* pairs per
 *     key: its sgemms are matrix-vector products;
 *   scalar loops, per element, in FLOPs at the calibrated attention forward
 *   rate (so they follow the machine's): OP_VEC a dot or axpy element on
 *   rows in cache, OP_MAX a max-pooling compare, OP_ARGMAX an arg-max scan's,
 *   OP_SCATTER an update of rows spread over memory, OP_GATHER a dot or axpy
 *   on rows gathered from far apart (cache misses), OP_EXP an expf. */
#define ROW_FWD 15.0 /* unless calibration fitted them (rates row_*_pairs) */
#define ROW_BWD 5.0
#define ONE_ROW_FWD 9.3
#define ONE_ROW_BWD 7.2
#define OP_VEC 6.0
#define OP_MAX 17.0
#define OP_ARGMAX 40.0
#define OP_SCATTER 24.0
#define OP_GATHER 31.0
#define OP_EXP 300.0
/* combiner-logsparse's per block and head bookkeeping outside the loops
 * above (records, the arg-max index arrays, add_at; the profile's own time
 * of local_summary and local_block_backward), forward and backward. */
#define OP_SLOT_FWD 2000.0
#define OP_SLOT_BWD 12000.0
/* A block's rows (a span's, a grid row's or column's q, k, v, accumulators)
 * come from memory in runs of a few KiB, at about a third of the streaming
 * pass's rate (no prefetch ramp): measured as the gap between a head's block
 * loop over its spans and the same calls on one span in cache. */
#define MEM_SMALL 3.0

/* The rate of the scalar loops' FLOPs (OP_*) as a share of the sgemm rate,
 * unless calibration fitted the head's own (rates *_op_gflops).
 * The OP_* counts were fitted against the attention forward's calibrated
 * rate when that was 0.72 of sgemm's (one thread, OpenBLAS tiles); the
 * AVX-512 tile kernels (tile_gemm.c) raised the attention's rate but not
 * these loops', so they follow sgemm at that share. */
#define OP_SHARE_OF_SGEMM 0.72

/* Seconds per unit of work on one rank: a pair forward and backward (one
 * head), a FLOP of the scalar loops' (OP_*), a byte of a memory pass. */
typedef struct {
    double fwd, bwd, op, byte, block; /* block: a byte of a block's rows (MEM_SMALL) */
    double row_fwd, row_bwd;          /* pairs per (row, key tile) of a call (ROW_*) */
} unit_s;

static unit_s units(const ra_cm_attn *a, const ra_cm_rates *rt)
{
    /* the head's own rate when calibration fitted one on a call of it */
    const double fit = a->head == RA_HEAD_COMBINER_FIXED   ? rt->fixed_op_gflops
                       : a->head == RA_HEAD_COMBINER_AXIAL ? rt->axial_op_gflops
                                                           : rt->logsparse_op_gflops;
    const double op = fit > 0 ? fit : OP_SHARE_OF_SGEMM * rt->sgemm_gflops;
    return (unit_s){ .fwd = 4.0 * a->D / (rt->attn_fwd_gflops * 1e9), .bwd = 10.0 * a->D / (rt->attn_bwd_gflops * 1e9),
                     .op = 1.0 / (op * 1e9), .byte = 1.0 / (rt->mem_gbs * 1e9),
                     .block = MEM_SMALL / (rt->mem_gbs * 1e9),
                     .row_fwd = rt->row_fwd_pairs > 0 ? rt->row_fwd_pairs : ROW_FWD,
                     .row_bwd = rt->row_bwd_pairs > 0 ? rt->row_bwd_pairs : ROW_BWD };
}

/* One forward (backward) kernel call of nq query rows against nk keys whose
 * tiles hold `pairs` pairs as the kernel computes them (ra_cm_fwd_pairs /
 * ra_cm_bwd_pairs). */
/* Keys an sgemm pays for: OpenBLAS's kernels work in 16-column panels, so a
 * block of nk keys costs ceil(nk / 16) panels (measured: 64 x 8 keys takes
 * longer than 64 x 16). */
static double panel_keys(double nk) { return ceil(nk / 16) * 16; }

static double call_fwd(const unit_s *u, double nq, double nk, double pairs)
{
    if (nq <= 0 || nk <= 0) return 0;
    if (nq < 2) return u->fwd * ONE_ROW_FWD * nk;
    return u->fwd * (pairs + nq * (panel_keys(nk) - nk) + u->row_fwd * nq * ceil(nk / FWD_TK));
}

static double call_bwd(const unit_s *u, double nq, double nk, double pairs)
{
    if (nq <= 0 || nk <= 0) return 0;
    if (nq < 2) return u->bwd * ONE_ROW_BWD * nk;
    return u->bwd * (pairs + nq * (panel_keys(nk) - nk) + u->row_bwd * nq * ceil(nk / BWD_TK));
}

/* Pairs of an n x n block (causal: key j seen by query i when j <= i + d,
 * d = 0 the diagonal, d = -1 strictly below it), forward and backward tiles. */
static double square_fwd(int64_t n, int causal, int strict)
{
    const ra_cm_piece pc = { { strict, 0 }, { n, 0 } }; /* keys one later: strict */
    return ra_cm_fwd_pairs(
        ra_cm_tile_pairs_range(RA_LAYOUT_CONTIGUOUS, n + 1, 1, 0, 0, n, 0, &pc, causal, FWD_TQ, FWD_TK, FWD_SUB));
}

static double square_bwd(int64_t n, int causal, int strict)
{
    const ra_cm_piece pc = { { strict, 0 }, { n, 0 } };
    return ra_cm_bwd_pairs(
        ra_cm_tile_pairs_range(RA_LAYOUT_CONTIGUOUS, n + 1, 1, 0, 0, n, 0, &pc, causal, BWD_TQ, BWD_TK, 0));
}

/* A head's costs on its busiest rank: compute (kernels, loops, copies) and
 * communication (all-to-all moves, collectives), forward and backward. */
typedef struct {
    double cf, cb; /* compute seconds */
    double xf, xb; /* communication seconds */
    double sent;   /* bytes this rank sends, forward + backward */
    double bytes;  /* the head's planned buffers */
} head_cost;

/* A move of `per_token` floats for each of n tokens between two layouts:
 * the copy (read + write; none when the layouts agree: `copy` 0) and,
 * across ranks, the all-to-all of the share `away` of the tokens. */
static void move(head_cost *h, int bwd, const ra_cm_setup *s, const ra_cm_rates *rt, const unit_s *u, double n,
                 double per_token, double away, int copy)
{
    const double bytes = 4.0 * n * per_token;
    const double t = copy ? 2 * bytes * u->byte : 0, x = all_to_all_s(s, rt, bytes * away);
    if (bwd) h->cb += t, h->xb += x;
    else h->cf += t, h->xf += x;
    h->sent += bytes * away;
}

/* Ring all-reduce (or all-gather, half of it) of `bytes` over the ring's ranks. */
static double allreduce_s(const ra_cm_setup *s, const ra_cm_rates *rt, double bytes, double half)
{
    const int P = ra_cm_ring_size(s);
    if (P == 1) return 0;
    return half * (2.0 * (P - 1) / P * bytes * 8.0 / ((P <= (s->ranks_per_node > 0 ? s->ranks_per_node : s->P)
                                                           ? rt->shm_gbps : rt->link_gbps) * 1e9) +
                   2.0 * (P - 1) * ra_cm_transfer_s(s, rt, 0));
}

/* combiner-fixed (combiner_fixed.c): spans of sp tokens; the last rank's
 * spans see the most summaries when causal. Per span and query head: the
 * summaries (max-pool q, k; a one-row softmax over the span), the direct
 * block (sp x sp) and the summary block (sp x earlier spans); the backward
 * the same blocks backward, the max-pool's arg-max scans, the summary
 * gradients summed over ranks. */
static void fixed_cost(const ra_cm_attn *a, const ra_cm_setup *s, const ra_cm_rates *rt, const unit_s *u, double away,
                       head_cost *h)
{
    const int P = ra_cm_ring_size(s);
    const int64_t L = a->L, sp = a->span > 0 ? (a->span < L ? a->span : L) : (int64_t)ceil(sqrt((double)L));
    const int64_t G = (L + sp - 1) / sp, g0 = G * (P - 1) / P, g1 = G; /* the last rank's spans */
    const double D = a->D, BH = (double)a->B * a->H, BK = (double)a->B * a->Hkv;
    const double n = (double)((g1 * sp < L ? g1 * sp : L) - g0 * sp); /* its tokens */
    double sum_f = 0, dir_f = 0, grp_f = 0, sum_b = 0, dir_b = 0, grp_b = 0;
    for (int64_t g = g0; g < g1; g++) {
        const int64_t len = (g + 1) * sp <= L ? sp : L - g * sp;
        const double seen = a->causal ? (double)g : (double)(G - 1); /* summaries */
        sum_f += call_fwd(u, 1, len, len);
        sum_b += call_bwd(u, 1, len, len);
        dir_f += call_fwd(u, len, len, square_fwd(len, a->causal, 0));
        dir_b += call_bwd(u, len, len, square_bwd(len, a->causal, 0));
        grp_f += call_fwd(u, len, seen, len * seen); /* bidirectional: two calls, ~ the same work */
        grp_b += call_bwd(u, len, seen, len * seen);
    }
    const double summ = (double)G * D * (BH + BK); /* kbar, vbar floats, all spans */
    /* prepare (forward and backward): max-pool q and k, the summaries'
     * softmaxes, the all-gather, unpacking */
    const double prep = BH * sum_f + u->op * OP_MAX * n * D * (BH + BK) + 2 * 4 * summ * u->byte;
    const double gather = allreduce_s(s, rt, 4 * summ, 0.5);
    /* the blocks read q, k, v and write acc of each span once (from memory) */
    h->cf += prep + BH * (dir_f + grp_f) + u->op * OP_VEC * n * BH * D * 2 /* init, finish */ +
             u->block * 4 * n * D * (2 * BH + 2 * BK);
    h->xf += gather;
    move(h, 0, s, rt, u, n, 2 * BH * D + 2 * BK * D + BH, away, away > 0); /* q, k, v in; o, lse out */
    /* backward: prepare again, zeroing, rowdot, the blocks, the chunks' partial
     * summary gradients summed, their all-reduce, the arg-max scans and the
     * summaries' one-row backward */
    const double K = (double)(g1 - g0 < 16 ? g1 - g0 : 16);
    h->cb += prep + BH * (dir_b + grp_b) + u->byte * 2 * 4 * n * D * (BH + 2 * BK) /* zeroing */ +
             u->op * OP_VEC * n * BH * 2 * D /* rowdot */ + u->op * OP_GATHER * K * summ /* the chunks' sums */ +
             BH * sum_b + u->op * OP_ARGMAX * n * D * (BH + BK) + u->block * 4 * n * D * (4 * BH + 2 * BK);
    h->xb += gather + allreduce_s(s, rt, 4 * summ, 1.0);
    move(h, 1, s, rt, u, n, 3 * BH * D + 2 * BK * D + BH, away, away > 0); /* o, lse, dout in; dq, dk, dv out */
    h->sent += 2 * 4 * summ * (P - 1) / P * 2;
    h->bytes = 4 * (n * D * (4 * BH + 4 * BK) + (double)G * D * (4 * BH + 2 * BK) + K * summ);
}

/* combiner-axial (combiner_axial.c): a grid of R rows of m tokens; a rank
 * holds whole rows, then whole columns. Forward: per row and query head two
 * m x m softmaxes (the summaries khat, vhat), the direct m x m block and the
 * merge with the column part; per column and head an R x R block (strictly
 * causal); q, khat, vhat to the columns, the records (m, l, acc) back.
 * Backward: the summaries again, per column an R x R block backward, per
 * row three m x m blocks backward; dout, lse, l to the columns, dq, dkhat,
 * dvhat back. */
static void axial_cost(const ra_cm_attn *a, const ra_cm_setup *s, const ra_cm_rates *rt, const unit_s *u, double away,
                       head_cost *h)
{
    const int P = ra_cm_ring_size(s);
    const int64_t L = a->L, m = a->row > 0 ? (a->row < L ? a->row : L) : (int64_t)ceil(sqrt((double)L));
    const int64_t R = (L + m - 1) / m;
    const double D = a->D, BH = (double)a->B * a->H, BK = (double)a->B * a->Hkv;
    const double rows = (double)((R + P - 1) / P), cols = (double)((m + P - 1) / P), n = rows * m;
    const double md = (double)m, Rd = (double)R;
    const double full_f = call_fwd(u, md, md, md * md), full_b = call_bwd(u, md, md, md * md);
    const double dir_f = call_fwd(u, md, md, square_fwd(m, a->causal, 0));
    const double dir_b = call_bwd(u, md, md, square_bwd(m, a->causal, 0));
    const int passes = a->causal ? 1 : 2; /* bidirectional: rows before and after */
    const double col_f = passes * call_fwd(u, Rd, Rd, square_fwd(R, 1, 1));
    const double col_b = passes * call_bwd(u, Rd, Rd, square_bwd(R, 1, 1));
    const double col_away = P > 1 ? (double)(P - 1) / P : 0; /* rows <-> columns: all but 1/P moves */
    /* summaries (forward and backward): two m x m softmaxes per row and head,
     * init and finish; then q, khat, vhat to the columns */
    const double summ = BH * rows * 2 * full_f + u->op * OP_VEC * n * BH * D * 4;
    /* the blocks' rows from memory: summaries q, k, v, khat, vhat; columns
     * q, khat, vhat, acc; direct q, k, v, acc (the records: a pass) */
    h->cf += summ + BH * cols * col_f + u->byte * 4 * 2 * n * BH * (D + 2) /* records */ +
             BH * rows * dir_f + u->op * n * BH * (OP_VEC * 3 * D + 2 * OP_EXP) /* merge */ +
             u->block * 4 * n * D * (11 * BH + 2 * BK);
    move(h, 0, s, rt, u, n, 3 * BH * D, col_away, 1);
    move(h, 0, s, rt, u, n, BH * (D + 2), col_away, 1);           /* records back */
    move(h, 0, s, rt, u, n, 2 * BH * D + 2 * BK * D + BH, away, away > 0); /* q, k, v in; o, lse out */
    h->cb += summ + BH * cols * col_b + BH * rows * (dir_b + 2 * full_b) + u->op * OP_VEC * n * BH * D * 6 +
             u->byte * 4 * n * D * (3 * BH + 2 * BK) /* zeroing */ +
             u->block * 4 * n * D * (5 * BH + 2 * BK + 7 * BH + 7 * BH); /* summaries, columns, rows */
    move(h, 1, s, rt, u, n, 3 * BH * D, col_away, 1);       /* q, khat, vhat again */
    move(h, 1, s, rt, u, n, BH * (D + 2), col_away, 1);     /* dout, lse, l */
    move(h, 1, s, rt, u, n, 3 * BH * D, col_away, 1);       /* dq, dkhat, dvhat back */
    move(h, 1, s, rt, u, n, 3 * BH * D + 2 * BK * D + BH, away, away > 0);
    h->bytes = 4 * n * D * (14 * BH + 4 * BK);
}

/* Queries g in [a, e) with bit l set. */
static double bit_count(int64_t a, int64_t e, int l)
{
    const int64_t w = (int64_t)1 << l;
    int64_t c[2];
    for (int i = 0; i < 2; i++) {
        const int64_t x = i ? e : a, r = x % (2 * w);
        c[i] = (x / (2 * w)) * w + (r > w ? r - w : 0);
    }
    return (double)(c[1] - c[0]);
}

/* combiner-logsparse's blocks at level l that the queries [a, e) need:
 * [*lo, *hi) (combiner_logsparse.h's needed()). */
static void ls_needed(int64_t a, int64_t e, int l, int64_t *lo, int64_t *hi)
{
    *lo = (a >> l) - 1 < 0 ? 0 : (a >> l) - 1;
    *hi = e > a && (e - 1) >> l > *lo ? (e - 1) >> l : *lo;
}

/* rank r's first token when ranks own [r L / P, (r + 1) L / P) */
static int64_t ls_start(int64_t L, int P, int64_t r) { return r * L / P; }

/* combiner-logsparse's summary rows (combiner_logsparse.c) on the busiest
 * rank, ranks r owning [r L / P, (r + 1) L / P): *local the most rows a rank
 * summarises in the blocks it needs that lie inside its range, *shared the
 * most rows a rank holds of the shared ("candidate") blocks, the blocks a
 * rank needs that are not inside its range. Every rank works on its rows of
 * every shared block between the head's all-reduces, so the two phases
 * take the busiest rank of each: rank 0, say, holds the rows that the other
 * ranks' high-level blocks summarise. O(P) per level. */
ra_status ra_cm_logsparse_rows(int64_t L, int P, int nl, double *local, double *shared)
{
    *local = *shared = 0;
    double *loc = calloc((size_t)P, sizeof(double)), *sh = calloc((size_t)P, sizeof(double));
    int64_t *cand = malloc(sizeof(int64_t) * (2 * (size_t)P + 1));
    if (!loc || !sh || !cand) {
        free(loc), free(sh), free(cand);
        return RA_FAIL(RA_ERR_NOMEM, "cost model: out of memory for combiner-logsparse's rows of %d ranks", P);
    }
    for (int l = 0; l < nl; l++) {
        const int64_t w = (int64_t)1 << l;
        int nc = 0; /* this level's shared blocks, ascending (rank by rank), once each */
        for (int r = 0; r < P; r++) {
            const int64_t a = ls_start(L, P, r), e = ls_start(L, P, r + 1);
            int64_t lo, hi;
            ls_needed(a, e, l, &lo, &hi);
            for (int64_t b = lo; b < hi && b <= (a >> l); b++) {
                const int64_t s0 = b << l, s1 = s0 + w < L ? s0 + w : L;
                if ((s0 < a || s1 > e) && (nc == 0 || cand[nc - 1] < b)) cand[nc++] = b;
            }
        }
        /* a shared block's rows, rank by rank: the blocks are disjoint and
         * ascending, so the first rank to look at only moves on */
        for (int c = 0, q0 = 0; c < nc; c++) {
            const int64_t s0 = cand[c] << l, s1 = s0 + w < L ? s0 + w : L;
            while (q0 < P && ls_start(L, P, q0 + 1) <= s0) q0++;
            for (int q = q0; q < P && ls_start(L, P, q) < s1; q++) {
                const int64_t qa = ls_start(L, P, q), qe = ls_start(L, P, q + 1);
                const int64_t x0 = qa > s0 ? qa : s0, x1 = qe < s1 ? qe : s1;
                if (x1 > x0) sh[q] += (double)(x1 - x0);
            }
        }
        /* the blocks a rank needs inside its range, [ceil(a / w), floor(e / w))
         * within [lo, hi), less the shared ones among them */
        for (int r = 0, c0 = 0; r < P; r++) {
            const int64_t a = ls_start(L, P, r), e = ls_start(L, P, r + 1);
            int64_t lo, hi;
            ls_needed(a, e, l, &lo, &hi);
            const int64_t b0 = ((a + w - 1) >> l) > lo ? (a + w - 1) >> l : lo, b1 = (e >> l) < hi ? e >> l : hi;
            if (b1 <= b0) continue;
            while (c0 < nc && cand[c0] < b0) c0++;
            int64_t inside = b1 - b0;
            for (int c = c0; c < nc && cand[c] < b1; c++) inside--;
            loc[r] += (double)(inside << l);
        }
    }
    for (int r = 0; r < P; r++) {
        *local = loc[r] > *local ? loc[r] : *local;
        *shared = sh[r] > *shared ? sh[r] : *shared;
    }
    free(loc), free(sh), free(cand);
    return RA_OK;
}

/* combiner-logsparse (combiner_logsparse.c), causal only: scalar loops, no
 * kernels. Per level l (blocks of 2^l tokens) the summaries of the blocks
 * this rank's queries need, over its rows of them: max-pool q and k, a
 * one-query softmax (dot, exp, axpy per row). Per query and head 1 +
 * (levels whose bit it has) logits: a dot and an axpy each. The backward:
 * the summaries again, per logit two dots and two axpys, the summary
 * gradients (per query of a block two dots, two axpys), the blocks'
 * backward (two dots, three axpys, the arg-max scans per row). Candidate
 * blocks (crossing ranks): all-reduces of O(P log L H D) floats. */
static ra_status logsparse_cost(const ra_cm_attn *a, const ra_cm_setup *s, const ra_cm_rates *rt, const unit_s *u,
                                double away, head_cost *h)
{
    const int P = ra_cm_ring_size(s);
    const int64_t L = a->L, A = L * (P - 1) / P, E = L; /* the last rank: the most levels' blocks */
    const double D = a->D, BH = (double)a->B * a->H, BK = (double)a->B * a->Hkv, G = BH / BK, n = (double)(E - A);
    int nl = 0;
    while (((int64_t)1 << nl) < L) nl++;
    double logit = n, slots = 0; /* logits per head, needed blocks */
    for (int l = 0; l < nl; l++) {
        int64_t lo, hi;
        ls_needed(A, E, l, &lo, &hi);
        slots += (double)(hi - lo);
        logit += bit_count(A, E, l);
    }
    double local, shared; /* summary rows of the busiest rank: its own blocks, then the shared ones */
    RA_TRY(ra_cm_logsparse_rows(L, P, nl, &local, &shared));
    const double rows = local + shared;
    /* the summaries: max-pool q and k, the one-query softmax (dot, exp, axpy) */
    const double row_summ = BH * (OP_MAX * (D + D / G) + OP_VEC * 2 * D + OP_EXP);
    const double summ = row_summ * rows + BH * slots * OP_SLOT_FWD;
    /* per query: logits against far-apart summaries, a weighted sum of theirs */
    h->cf += u->op * (summ + BH * logit * (OP_GATHER * 2 * D + OP_EXP) + BH * n * OP_VEC * D);
    h->cb += u->op * (summ + BH * logit * (OP_GATHER * 3 * D + OP_VEC * D + OP_EXP) /* logits, dS, dq */ +
                      BH * n * OP_VEC * 6 * D /* rowdot, self dk/dv */ +
                      BH * (logit - n) * (OP_VEC * 8 * D + OP_EXP) /* slot gradients */ +
                      BH * rows * (OP_SCATTER * 5 * D + OP_EXP + OP_ARGMAX * (D + D / G)) /* blocks backward */ +
                      row_summ * shared /* the shared blocks' summaries again */ + BH * slots * OP_SLOT_BWD);
    h->cb += u->byte * 2 * 4 * n * D * (BH + 2 * BK); /* zeroing dq, dk, dv */
    const double cand = P > 1 ? 2.0 * P * nl : 0, per = 4 * BH * (D + 2) + 4 * BK * D;
    h->xf += 2 * allreduce_s(s, rt, cand * per, 1.0);
    h->xb += 5 * allreduce_s(s, rt, cand * per, 1.0);
    move(h, 0, s, rt, u, n, 2 * BH * D + 2 * BK * D + BH, away, away > 0);
    move(h, 1, s, rt, u, n, 3 * BH * D + 2 * BK * D + BH, away, away > 0);
    h->bytes = 4 * (n * D * (6 * BH + 4 * BK) + 2 * (double)nl * (n / (nl > 0 ? nl : 1)) * D * BH);
    return RA_OK;
}

ra_status ra_cm_combiner_time(const ra_cm_attn *a, const ra_cm_setup *s, const ra_cm_rates *rt, ra_cm_attn_cost *c)
{
    const int P = ra_cm_ring_size(s);
    if (a->head == RA_HEAD_COMBINER_LOGSPARSE && !a->causal)
        return RA_FAIL(RA_ERR_ARG, "cost model: combiner-logsparse is causal only (bidirectional refused)");
    const unit_s u = units(a, rt);
    const int64_t Lr = (a->L + P - 1) / P;
    /* the share of a rank's tokens that its layout's move to contiguous ranges sends away */
    const double away = Lr > 0 ? moved_rows(s->layout, a->L, P) / (double)Lr : 0;
    head_cost h = { 0 };
    if (a->head == RA_HEAD_COMBINER_FIXED) fixed_cost(a, s, rt, &u, away, &h);
    else if (a->head == RA_HEAD_COMBINER_AXIAL) axial_cost(a, s, rt, &u, away, &h);
    else RA_TRY(logsparse_cost(a, s, rt, &u, away, &h));
    c->fwd_compute_s = h.cf, c->bwd_compute_s = h.cb;
    c->fwd_comm_s = h.xf, c->bwd_comm_s = h.xb;
    c->fwd_wait_s = h.xf, c->bwd_wait_s = h.xb; /* the moves and collectives block */
    c->fwd_s = h.cf + h.xf, c->bwd_s = h.cb + h.xb;
    c->balance = 1, c->imbalance_s = 0;
    c->bytes_sent = P > 1 ? h.sent : 0;
    c->nc = 1, c->chunk = (int)Lr, c->steps = 1;
    c->head_bytes = (size_t)h.bytes + (size_t)(ra_attn_scratch_floats_threads(a->D, rt->threads) * 4);
    return RA_OK;
}
