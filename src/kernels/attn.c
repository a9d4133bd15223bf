/* attn.c - attention tiles on OpenBLAS: one block of queries against one
 * block of keys, forward with the online softmax and backward (docs/design.md §4).
 *
 * Shapes per (batch, head): q, dout, acc, dq [nq][D]; k, v, dk, dv [nk][D];
 * m, l, lse, dl [nq]. Queries are cut into tiles of TQ rows and keys into
 * tiles of TK columns; the logits of one tile S [tq][tk] come from one sgemm,
 * the softmax update is a vector loop per row, and S then feeds the next
 * sgemm. A tile whose mask is empty is skipped before any arithmetic. */
#include "isa_names.h" /* first: the names of a portable build's copies */
#include "ringattn/attn.h"

#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "ringattn/threads.h"
#include "tile_gemm.h"
#include "vmath.h"

enum {
    FWD_TQ = RA_ATTN_FWD_TQ, FWD_TK = RA_ATTN_FWD_TK, /* S tile 512 KiB: fits L2; measured best */
    FWD_SUB = RA_ATTN_FWD_SUB,  /* row groups of the causal diagonal tiles (12-16 measured best) */
    FWD_CHUNK = 16,             /* query tiles per packing of a key tile */
    BWD_TQ = RA_ATTN_BWD_TQ, BWD_TK = RA_ATTN_BWD_TK, /* two tiles (P and dP) of 128 KiB */
    MAX_TILE = FWD_TQ * FWD_TK > BWD_TQ * BWD_TK ? FWD_TQ * FWD_TK : BWD_TQ * BWD_TK,
};

/* Floats of one thread's scratch (a multiple of 16: 64-byte aligned): two
 * tiles, then, when the AVX-512 products run (tile_gemm.h), the packed K^T
 * and V^T of one key tile. The forward uses the first tile for S; the
 * backward both tiles, or a chunk's P and dS when threaded. */
#define TILES_SCRATCH (2 * (size_t)MAX_TILE)
_Static_assert(FWD_TK == BWD_TK, "one packed key tile serves both directions");

static size_t thread_scratch(int D)
{
#if RA_TILE_GEMM
    return TILES_SCRATCH + (ra_tile_gemm_ok(D) ? 2 * (size_t)ra_tile_kt_floats(BWD_TK, D) : 0);
#else
    (void)D;
    return TILES_SCRATCH;
#endif
}

/* the packed K^T (then V^T) of a thread's scratch, NULL without the kernels */
static float *packed_kt(float *thread_scratch_start, int D)
{
    return ra_tile_gemm_ok(D) ? thread_scratch_start + TILES_SCRATCH : NULL;
}

size_t ra_attn_scratch_floats(int D)
{
    return ra_attn_scratch_floats_threads(D, 1);
}

size_t ra_attn_scratch_floats_threads(int D, int threads)
{
    return (size_t)(threads > 1 ? threads : 1) * thread_scratch(D) + 64;
}

/* Threads for a block with `work` independent tiles: what the scratch is
 * sized for and ra_threads() allow, one inside a parallel region (OpenBLAS
 * and the poll are the main thread's). */
static int block_threads(const ra_attn_opts *o, int work)
{
    int n = o->threads < ra_threads() ? o->threads : ra_threads();
    if (n > work) n = work;
    if (n <= 1 || omp_in_parallel()) return 1;
    return n;
}

double ra_attn_flops_fwd(double B, double H, double L, double D, int causal)
{
    return 4.0 * B * H * L * L * D * (causal ? 0.5 : 1.0);
}

double ra_attn_flops_bwd(double B, double H, double L, double D, int causal)
{
    return 10.0 * B * H * L * L * D * (causal ? 0.5 : 1.0);
}

/* ---- masks ---------------------------------------------------------------- */

/* What a tile of the mask looks like, from position and segment ranges. */
typedef enum { TILE_EMPTY, TILE_FULL, TILE_PARTIAL } tile_kind;

typedef struct {
    int32_t pmin, pmax, smin, smax;
} range;

static range rows_range(const ra_rows *r, int a, int b)
{
    range g = { INT32_MAX, INT32_MIN, INT32_MAX, INT32_MIN };
    for (int i = a; i < b; i++) {
        if (r->pos[i] < g.pmin) g.pmin = r->pos[i];
        if (r->pos[i] > g.pmax) g.pmax = r->pos[i];
        if (r->seg) {
            if (r->seg[i] < g.smin) g.smin = r->seg[i];
            if (r->seg[i] > g.smax) g.smax = r->seg[i];
        }
    }
    return g;
}

static tile_kind classify(const ra_attn_opts *o, int segs, range q, range k)
{
    if (o->causal && k.pmin > q.pmax) return TILE_EMPTY;
    if (segs && (k.smax < q.smin || k.smin > q.smax)) return TILE_EMPTY;
    int full = (!o->causal || k.pmax <= q.pmin);
    if (segs) full = full && q.smin == q.smax && k.smin == k.smax && q.smin == k.smin;
    return full ? TILE_FULL : TILE_PARTIAL;
}

static int is_sorted(const int32_t *p, int n)
{
    for (int i = 1; i < n; i++)
        if (p[i] < p[i - 1]) return 0;
    return 1;
}

/* number of kpos[0..n) that are <= x, kpos sorted */
static int count_le(const int32_t *kpos, int n, int32_t x)
{
    int lo = 0, hi = n;
    while (lo < hi) {
        int mid = (lo + hi) / 2;
        if (kpos[mid] <= x) lo = mid + 1;
        else hi = mid;
    }
    return lo;
}

/* Apply the mask to row s[0..tk) of query i against keys j0..j0+tk: masked
 * entries become -inf. Returns the length of the prefix that may hold
 * visible keys (entries past it are all masked and left untouched). */
static int mask_row(const ra_attn_opts *o, float *s, int tk, int32_t qpos, const int32_t *qseg_i,
                    const int32_t *kpos, const int32_t *kseg, int sorted)
{
    int n = tk;
    if (o->causal) {
        if (sorted) {
            n = count_le(kpos, tk, qpos);
        } else {
            for (int j = 0; j < tk; j++)
                if (kpos[j] > qpos) s[j] = -INFINITY;
        }
    }
    if (qseg_i) {
        int32_t sg = *qseg_i;
        for (int j = 0; j < n; j++)
            if (kseg[j] != sg) s[j] = -INFINITY;
    }
    return n;
}

/* ---- packed key tiles ----------------------------------------------------- */

/* Key tile j0..j0+tk of a block as the AVX-512 products read it: K^T (and,
 * for the backward's dP = dO V^T, V^T) packed into buf at the key tile's
 * first non-empty tile, so an all-empty key tile costs nothing. Without the
 * kernels buf is NULL and the products read k and v through OpenBLAS. */
typedef struct {
    float *buf;           /* K^T, then V^T; NULL without the kernels */
    const float *kt, *vt; /* set once packed */
    int j0, tk;
} packed_keys;

/* K^T (and V^T when v) of the tile into pk->buf, once */
static void pack_keys(packed_keys *pk, const float *k, const float *v, int D)
{
#if RA_TILE_GEMM
    if (pk->buf && !pk->kt) {
        ra_tile_pack_kt(k + (size_t)pk->j0 * D, pk->tk, D, pk->buf);
        pk->kt = pk->buf;
        if (v) {
            float *vt = pk->buf + ra_tile_kt_floats(BWD_TK, D);
            ra_tile_pack_kt(v + (size_t)pk->j0 * D, pk->tk, D, vt);
            pk->vt = vt;
        }
    }
#else
    (void)pk, (void)k, (void)v, (void)D;
#endif
}

/* the row stride of a tile of logits against the first tk keys: the
 * kernels write whole vectors */
static int keys_ld(const packed_keys *pk, int tk) { return pk->buf ? (tk + 15) / 16 * 16 : tk; }

/* ---- forward -------------------------------------------------------------- */

void ra_attn_fwd_init(int nq, int D, float *acc, float *m, float *l)
{
    memset(acc, 0, sizeof(float) * (size_t)nq * D);
    for (int i = 0; i < nq; i++) {
        m[i] = -INFINITY;
        l[i] = 0.0f;
    }
}

/* Fold one tile of exp'd logits into the running (m, l, acc) of its rows.
 * s [tq][lds] holds masked logits in its first tk columns on entry and
 * P = exp(s - m_new) there on exit. lanes: NULL, or each row's 16 lane
 * maxima from the Q K^T kernel (a full tile, tk = lds), whose largest is
 * the row max: the same value as a pass over the row, without the pass. */
static void fwd_softmax_tile(const ra_attn_opts *o, tile_kind kind, float *s, int lds, int tq,
                             int tk, const int32_t *qpos, const int32_t *qseg, const int32_t *kpos,
                             const int32_t *kseg, int sorted, const float *lanes, float *acc, float *m,
                             float *l)
{
    const int D = o->D;
    for (int i = 0; i < tq; i++) {
        float *row = s + (size_t)i * lds;
        int n = tk;
        if (kind == TILE_PARTIAL)
            n = mask_row(o, row, tk, qpos[i], qseg ? qseg + i : NULL, kpos, kseg, sorted);
        float mt = lanes ? ra_rowmax(lanes + (size_t)16 * i, 16) : ra_rowmax(row, n);
        if (mt == -INFINITY) { /* nothing visible in this tile for row i */
            memset(row, 0, sizeof(float) * tk);
            continue;
        }
        float m_new = mt > m[i] ? mt : m[i];
        float alpha = ra_exp1_neg(m[i] - m_new); /* 0 when m[i] = -inf */
        /* a full tile has no -inf: the unmasked exp (ra_vexp_tile) */
        float sum = kind == TILE_PARTIAL ? ra_exp_shift_sum(row, n, m_new, 1)
                                         : ra_exp_shift_sum(row, n, m_new, 0);
        if (n < tk) memset(row + n, 0, sizeof(float) * (tk - n));
        l[i] = l[i] * alpha + sum;
        m[i] = m_new;
        if (alpha != 1.0f) {
            float *a = acc + (size_t)i * D;
            for (int d = 0; d < D; d++) a[d] *= alpha;
        }
    }
}

/* Rows i0..i0+tq against the first tk <= pk->tk keys of key tile pk->j0: S,
 * the softmax update, acc += P V. */
static void fwd_tile(const ra_attn_opts *o, tile_kind kind, int sorted, const ra_rows *qr,
                     const float *q, const ra_rows *kr, const float *k, const float *v,
                     const packed_keys *pk, float *acc, float *m, float *l, float *s, int i0,
                     int tq, int tk)
{
    const int D = o->D, j0 = pk->j0;
    const int segs = qr->seg != NULL && kr->seg != NULL;
    const float *qi = q + (size_t)i0 * D, *kj = k + (size_t)j0 * D, *vj = v + (size_t)j0 * D;
    float *ai = acc + (size_t)i0 * D;
    const int lds = keys_ld(pk, tk);
    float *lanes = NULL; /* a full tile without padding columns: its row maxima from the kernel */
#if RA_TILE_GEMM
    if (pk->kt && kind == TILE_FULL && lds == tk) lanes = s + MAX_TILE; /* the forward's unused tile */
    if (pk->kt) ra_tile_qkt(qi, tq, D, pk->kt, pk->tk, lds, o->scale, s, lds, lanes);
#endif
    if (!pk->kt)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, tq, tk, D, o->scale, qi, D, kj, D,
                    0.0f, s, lds);
    fwd_softmax_tile(o, kind, s, lds, tq, tk, qr->pos + i0, segs ? qr->seg + i0 : NULL,
                     kr->pos + j0, segs ? kr->seg + j0 : NULL, sorted, lanes, ai, m + i0, l + i0);
#if RA_TILE_GEMM
    if (pk->kt) {
        ra_tile_pv(s, tq, tk, lds, vj, D, ai);
        return;
    }
#endif
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, tq, D, tk, 1.0f, s, lds, vj, D, 1.0f,
                ai, D);
}

/* The query tiles c, c + nch, c + 2 nch, ... below ntiles (a chunk) against
 * every key tile of the block, key tiles outer: one packing of a key tile
 * serves the whole chunk. Each row still meets the key tiles in ascending
 * order, so its sums do not depend on the chunking. s is the thread's
 * scratch (S, then the packed K^T). */
static void fwd_qchunk(const ra_attn_opts *o, const ra_rows *qr, const float *q, const ra_rows *kr,
                       const float *k, const float *v, float *acc, float *m, float *l, float *s,
                       const ra_poll *poll, int c, int nch, int ntiles)
{
    const int nq = qr->n, nk = kr->n;
    const int segs = qr->seg != NULL && kr->seg != NULL;
    for (int j0 = 0; j0 < nk; j0 += FWD_TK) {
        const int tk = nk - j0 < FWD_TK ? nk - j0 : FWD_TK;
        const range rk = rows_range(kr, j0, j0 + tk);
        packed_keys pk = { .buf = packed_kt(s, o->D), .j0 = j0, .tk = tk };
        for (int t = c; t < ntiles; t += nch) {
            const int i0 = t * FWD_TQ, tq = nq - i0 < FWD_TQ ? nq - i0 : FWD_TQ;
            const range rq = rows_range(qr, i0, i0 + tq);
            tile_kind kind = classify(o, segs, rq, rk);
            if (kind == TILE_EMPTY) continue;
            pack_keys(&pk, k, NULL, o->D);
            int sorted = kind == TILE_PARTIAL && is_sorted(kr->pos + j0, tk);
            if (sorted && o->causal) {
                /* causal, sorted keys: each group of FWD_SUB rows stops at the
                 * last key its latest query sees (the keys past it are masked
                 * for all its rows); a group that sees none is skipped */
                for (int a = 0; a < tq; a += FWD_SUB) {
                    int b = tq - a < FWD_SUB ? tq - a : FWD_SUB;
                    int tkb = count_le(kr->pos + j0, tk, rows_range(qr, i0 + a, i0 + a + b).pmax);
                    if (tkb > 0)
                        fwd_tile(o, kind, sorted, qr, q, kr, k, v, &pk, acc, m, l, s, i0 + a, b, tkb);
                }
            } else {
                fwd_tile(o, kind, sorted, qr, q, kr, k, v, &pk, acc, m, l, s, i0, tq, tk);
            }
            if (poll) poll->fn(poll->ctx);
        }
    }
}

/* Every query row belongs to one tile and every tile to one chunk, which one
 * thread runs exactly as a single thread would: bitwise the same for any
 * count. Chunks of up to FWD_CHUNK tiles, fewer when that would leave
 * threads idle. Causal work grows with the tile index, so a chunk takes
 * tiles strided across the block and the heaviest chunks go first. */
void ra_attn_fwd_block(const ra_attn_opts *o, const ra_rows *qr, const float *q,
                       const ra_rows *kr, const float *k, const float *v,
                       float *acc, float *m, float *l, float *scratch, const ra_poll *poll)
{
    const int ntiles = (qr->n + FWD_TQ - 1) / FWD_TQ;
    const int nt = block_threads(o, ntiles);
    int per = nt == 1 ? FWD_CHUNK : ntiles / (2 * nt);
    per = per < 1 ? 1 : per > FWD_CHUNK ? FWD_CHUNK : per;
    const int nch = (ntiles + per - 1) / per;
    const int top = !omp_in_parallel();
    if (top) ra_blas_serial_begin(); /* OpenBLAS threads would change the sums */
    if (nt == 1) {
        for (int c = nch - 1; c >= 0; c--)
            fwd_qchunk(o, qr, q, kr, k, v, acc, m, l, scratch, poll, c, nch, ntiles);
        if (top) ra_blas_serial_end();
        return;
    }
    atomic_int finished;
    atomic_init(&finished, 0);
#pragma omp parallel num_threads(nt)
    {
        const int me = omp_get_thread_num(), team = omp_get_num_threads();
        float *s = scratch + (size_t)me * thread_scratch(o->D);
        const ra_poll *pl = me == 0 ? poll : NULL;
#pragma omp for schedule(dynamic, 1) nowait
        for (int c = nch - 1; c >= 0; c--)
            fwd_qchunk(o, qr, q, kr, k, v, acc, m, l, s, pl, c, nch, ntiles);
        /* thread 0 keeps the transfers moving until the others are done */
        atomic_fetch_add_explicit(&finished, 1, memory_order_acq_rel);
        if (pl)
            while (atomic_load_explicit(&finished, memory_order_acquire) < team) {
                pl->fn(pl->ctx);
                sched_yield();
            }
    }
    ra_blas_serial_end();
}

void ra_attn_fwd_finish(int nq, int D, float *acc, const float *m, const float *l, float *lse)
{
    for (int i = 0; i < nq; i++) {
        float *a = acc + (size_t)i * D;
        if (l[i] > 0.0f) {
            float inv = 1.0f / l[i];
            for (int d = 0; d < D; d++) a[d] *= inv;
            lse[i] = m[i] + logf(l[i]);
        } else { /* the row saw no key at all */
            memset(a, 0, sizeof(float) * D);
            lse[i] = -INFINITY;
        }
    }
}

/* ---- backward ------------------------------------------------------------- */

void ra_attn_bwd_rowdot(int nq, int D, const float *o, const float *dout, float *dl)
{
    for (int i = 0; i < nq; i++) {
        const float *a = o + (size_t)i * D, *b = dout + (size_t)i * D;
        float s = 0.0f;
        for (int d = 0; d < D; d++) s += a[d] * b[d];
        dl[i] = s;
    }
}

/* p [tq][ldp]: masked logits in, P = exp(S - lse) out (0 where masked),
 * in the first tk columns. */
static void bwd_probs_tile(const ra_attn_opts *o, tile_kind kind, float *p, int ldp, int tq,
                           int tk, const int32_t *qpos, const int32_t *qseg, const int32_t *kpos,
                           const int32_t *kseg, int sorted, const float *lse, const float *lse_lo)
{
    for (int i = 0; i < tq; i++) {
        float *row = p + (size_t)i * ldp;
        if (lse[i] == -INFINITY) { /* row sees no key anywhere */
            memset(row, 0, sizeof(float) * tk);
            continue;
        }
        int n = tk;
        if (kind == TILE_PARTIAL)
            n = mask_row(o, row, tk, qpos[i], qseg ? qseg + i : NULL, kpos, kseg, sorted);
        const float lo = lse_lo ? lse_lo[i] : 0.0f;
        if (kind == TILE_PARTIAL) ra_exp_shift2(row, n, lse[i], lo, 1);
        else ra_exp_shift2(row, n, lse[i], lo, 0);
        if (n < tk) memset(row + n, 0, sizeof(float) * (tk - n));
    }
}

/* dp [tq][ldp]: dO V^T in, dS = a P * (dP - dl) out (the scale of both
 * of dS's products, dQ += dS K and dK += dS^T Q, applied once here). */
static void bwd_dscores_tile(float *dp, const float *p, int ldp, int tq, int tk, const float *dl,
                             float a)
{
    for (int i = 0; i < tq; i++) {
        float *d = dp + (size_t)i * ldp;
        const float *pr = p + (size_t)i * ldp;
        const float di = dl[i];
        for (int j = 0; j < tk; j++) d[j] = a * (pr[j] * (d[j] - di));
    }
}

void ra_attn_bwd_block(const ra_attn_opts *o, const ra_rows *qr, const float *q,
                       const float *dout, const float *lse, const float *dl,
                       const ra_rows *kr, const float *k, const float *v,
                       float *dq, float *dk, float *dv, float *scratch, const ra_poll *poll)
{
    ra_attn_bwd_block_split(o, qr, q, dout, lse, NULL, dl, kr, k, v, dq, dk, dv, scratch, poll);
}

/* One (query tile, key tile) of the backward: P and dS into p and dp, dQ
 * added; dV and dK are added by bwd_tile_dkv, which the threaded backward
 * calls in query-tile order. Returns 0 when the tile is empty. With the
 * AVX-512 products, pk packs the key tile's K^T and V^T at its first
 * non-empty tile, and p and dp have rows padded to 16 columns. */
typedef struct {
    const ra_attn_opts *o;
    const ra_rows *qr, *kr;
    const float *q, *dout, *lse, *lse_lo, *dl, *k, *v;
    float *dq, *dk, *dv;
    int segs;
} bwd_ctx;

static int tile_rows(int n, int i0, int t) { return n - i0 < t ? n - i0 : t; }

static int bwd_tile_pdq(const bwd_ctx *c, packed_keys *pk, int i0, int j0, float *p, float *dp)
{
    const ra_attn_opts *o = c->o;
    const int D = o->D;
    const int tq = tile_rows(c->qr->n, i0, BWD_TQ), tk = tile_rows(c->kr->n, j0, BWD_TK);
    tile_kind kind = classify(o, c->segs, rows_range(c->qr, i0, i0 + tq), rows_range(c->kr, j0, j0 + tk));
    if (kind == TILE_EMPTY) return 0;
    pack_keys(pk, c->k, c->v, D);
    int sorted = is_sorted(c->kr->pos + j0, tk);
    const float *qt = c->q + (size_t)i0 * D, *dot = c->dout + (size_t)i0 * D;
    const float *kt = c->k + (size_t)j0 * D, *vt = c->v + (size_t)j0 * D;
    float *dq = c->dq + (size_t)i0 * D;
    const int ldp = keys_ld(pk, tk);
    /* P = exp(a Q K^T - lse) */
#if RA_TILE_GEMM
    if (pk->kt) ra_tile_qkt(qt, tq, D, pk->kt, tk, ldp, o->scale, p, ldp, NULL);
#endif
    if (!pk->kt)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, tq, tk, D, o->scale, qt, D, kt, D, 0.0f, p, ldp);
    bwd_probs_tile(o, kind, p, ldp, tq, tk, c->qr->pos + i0, c->segs ? c->qr->seg + i0 : NULL,
                   c->kr->pos + j0, c->segs ? c->kr->seg + j0 : NULL, sorted, c->lse + i0,
                   c->lse_lo ? c->lse_lo + i0 : NULL);
    /* dP = dO V^T, then dS = a P * (dP - dl) */
#if RA_TILE_GEMM
    if (pk->vt) ra_tile_qkt(dot, tq, D, pk->vt, tk, ldp, 1.0f, dp, ldp, NULL);
#endif
    if (!pk->vt)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, tq, tk, D, 1.0f, dot, D, vt, D, 0.0f, dp, ldp);
    bwd_dscores_tile(dp, p, ldp, tq, tk, c->dl + i0, o->scale);
    /* dQ += dS K */
#if RA_TILE_GEMM
    if (pk->kt) {
        ra_tile_pv(dp, tq, tk, ldp, kt, D, dq);
        return 1;
    }
#endif
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, tq, D, tk, 1.0f, dp, ldp, kt, D, 1.0f, dq, D);
    return 1;
}

/* dV += P^T dO ; dK += dS^T Q */
static void bwd_tile_dkv(const bwd_ctx *c, const packed_keys *pk, int i0, int j0, const float *p,
                         const float *dp)
{
    const int D = c->o->D;
    const int tq = tile_rows(c->qr->n, i0, BWD_TQ), tk = tile_rows(c->kr->n, j0, BWD_TK);
    const int ldp = keys_ld(pk, tk);
    const float *dot = c->dout + (size_t)i0 * D, *qt = c->q + (size_t)i0 * D;
    float *dv = c->dv + (size_t)j0 * D, *dk = c->dk + (size_t)j0 * D;
#if RA_TILE_GEMM
    if (pk->kt) {
        ra_tile_ptv(p, tk, tq, ldp, dot, D, dv);
        ra_tile_ptv(dp, tk, tq, ldp, qt, D, dk);
        return;
    }
#endif
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, tk, D, tq, 1.0f, p, ldp, dot, D, 1.0f, dv, D);
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, tk, D, tq, 1.0f, dp, ldp, qt, D, 1.0f, dk, D);
}

/* Threads own chunks of BWD_CHUNK query tiles, round robin (causal work
 * grows with the tile index), and run a chunk key tile by key tile: first
 * P, dS and dQ of every query tile of the chunk (dQ rows are the owner's
 * alone), then, once turn[jt] is the chunk's first query tile, the chunk's
 * parts of dK/dV in query-tile order, so they sum in the order of one
 * thread. Every wait is for a smaller query tile: no deadlock. Threads
 * pipeline along the key tiles, one key tile apart. */
enum { BWD_CHUNK = 4 };
_Static_assert(2 * BWD_CHUNK * BWD_TQ * BWD_TK <= 2 * MAX_TILE, "a chunk's P and dS fit a thread's scratch");

/* turn [nkt + 1]: the last counts the threads that are done. */
static void bwd_threaded(const bwd_ctx *c, int nt, float *scratch, const ra_poll *poll,
                         atomic_int *turn)
{
    const int nqt = (c->qr->n + BWD_TQ - 1) / BWD_TQ, nkt = (c->kr->n + BWD_TK - 1) / BWD_TK;
    const int nch = (nqt + BWD_CHUNK - 1) / BWD_CHUNK;
    const size_t tile = (size_t)BWD_TQ * BWD_TK;
    atomic_int *finished = &turn[nkt];
    for (int j = 0; j <= nkt; j++) atomic_init(&turn[j], 0);
#pragma omp parallel num_threads(nt)
    {
        const int me = omp_get_thread_num(), team = omp_get_num_threads();
        float *mine = scratch + (size_t)me * thread_scratch(c->o->D); /* P, dS of tile r at 2r, 2r+1 */
        float *kvbuf = packed_kt(mine, c->o->D);
        const ra_poll *pl = me == 0 ? poll : NULL;
        int any[BWD_CHUNK];
        for (int ch = me; ch < nch; ch += team) {
            const int q0 = ch * BWD_CHUNK, q1 = q0 + BWD_CHUNK < nqt ? q0 + BWD_CHUNK : nqt;
            for (int jt = 0; jt < nkt; jt++) {
                int some = 0;
                packed_keys pk = { .buf = kvbuf, .j0 = jt * BWD_TK, .tk = tile_rows(c->kr->n, jt * BWD_TK, BWD_TK) };
                for (int qt = q0; qt < q1; qt++) {
                    float *p = mine + 2 * (size_t)(qt - q0) * tile;
                    some |= any[qt - q0] = bwd_tile_pdq(c, &pk, qt * BWD_TQ, jt * BWD_TK, p, p + tile);
                }
                if (atomic_load_explicit(&turn[jt], memory_order_acquire) != q0) {
                    if (pl) pl->fn(pl->ctx);
                    for (int spin = 0; atomic_load_explicit(&turn[jt], memory_order_acquire) != q0; spin++)
                        if (spin > 64) sched_yield();
                }
                for (int qt = q0; qt < q1; qt++) {
                    const float *p = mine + 2 * (size_t)(qt - q0) * tile;
                    if (any[qt - q0]) bwd_tile_dkv(c, &pk, qt * BWD_TQ, jt * BWD_TK, p, p + tile);
                }
                atomic_store_explicit(&turn[jt], q1, memory_order_release);
                if (some && pl) pl->fn(pl->ctx);
            }
        }
        /* thread 0 keeps the transfers moving until the others are done */
        atomic_fetch_add_explicit(finished, 1, memory_order_acq_rel);
        if (pl)
            while (atomic_load_explicit(finished, memory_order_acquire) < team) {
                pl->fn(pl->ctx);
                sched_yield();
            }
    }
}

void ra_attn_bwd_block_split(const ra_attn_opts *o, const ra_rows *qr, const float *q,
                             const float *dout, const float *lse, const float *lse_lo,
                             const float *dl, const ra_rows *kr, const float *k, const float *v,
                             float *dq, float *dk, float *dv, float *scratch, const ra_poll *poll)
{
    const bwd_ctx c = { .o = o, .qr = qr, .kr = kr, .q = q, .dout = dout, .lse = lse,
                        .lse_lo = lse_lo, .dl = dl, .k = k, .v = v, .dq = dq, .dk = dk, .dv = dv,
                        .segs = qr->seg != NULL && kr->seg != NULL };
    const int nqt = (qr->n + BWD_TQ - 1) / BWD_TQ, nkt = (kr->n + BWD_TK - 1) / BWD_TK;
    int nt = block_threads(o, (nqt + BWD_CHUNK - 1) / BWD_CHUNK);
    atomic_int *turn = nt > 1 && nkt > 0 ? malloc(sizeof(atomic_int) * ((size_t)nkt + 1)) : NULL;
    const int top = !omp_in_parallel();
    if (top) ra_blas_serial_begin(); /* OpenBLAS threads would change the sums */
    if (turn) {
        bwd_threaded(&c, nt, scratch, poll, turn);
        free(turn);
    } else { /* one thread: key tiles outer, so a key tile's K, V, dK, dV stay in cache */
        float *p = scratch, *dp = scratch + (size_t)MAX_TILE;
        for (int j0 = 0; j0 < kr->n; j0 += BWD_TK) {
            packed_keys pk = { .buf = packed_kt(scratch, o->D), .j0 = j0, .tk = tile_rows(kr->n, j0, BWD_TK) };
            for (int i0 = 0; i0 < qr->n; i0 += BWD_TQ) {
                if (!bwd_tile_pdq(&c, &pk, i0, j0, p, dp)) continue;
                bwd_tile_dkv(&c, &pk, i0, j0, p, dp);
                if (poll) poll->fn(poll->ctx);
            }
        }
    }
    if (top) ra_blas_serial_end();
}
