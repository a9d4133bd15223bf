/* ring_attn.c - exact attention over a ring of ranks (docs/design.md §4).
 *
 * Each rank's keys/values are cut into nc pieces of at most `chunk` tokens.
 * A piece is one range of local rows, except in the zigzag layout (P > 1),
 * where piece k takes the k-th slice of each of the rank's two chunks: every
 * piece then holds early and late tokens alike, so at every ring step every
 * rank does the same causal work (docs/design.md §4.1) and no rank waits for
 * a neighbour still busy with a heavier piece.
 * Pieces travel the ring as a systolic stream: at step s (s = 0 .. P*nc-1)
 * rank r holds piece k = s / P of rank o = (r - s mod P) mod P. When
 * s mod P == 0 the piece is r's own (injected from its local arrays);
 * otherwise it arrived from the left during step s-1. Each step posts the
 * send of the held piece and the receive of the next one before computing,
 * so transfers hide behind the tiles (MPI_Test between tiles).
 * A rank's own piece goes one step ahead: at the step before (s mod P ==
 * P-1, when its link to the right is otherwise idle) it is packed and sent,
 * and its right neighbour posts the receive, so the transfer has two steps
 * of compute to hide behind (at P = 2 every other step is one of these).
 * Three piece buffers exist however long the sequence (the held one, the
 * next, and the one after next): memory per rank stays that of its own
 * block plus 3 pieces.
 *
 * Backward runs the same stream. The dK/dV partial sums of a piece follow it
 * one step behind: rank r adds its contribution to the partial it gets from
 * the left and passes it on; after P-1 hops the sum returns to the owner,
 * which adds it to its own contribution. K, V, dK, dV thus travel together.
 * The last hop goes ahead (sent and received ahead, completed a wait later):
 * the owner needs it only in its dK/dV, so the ranks may drift a step
 * further apart (at P = 2 every partial is a last hop). Four partial
 * buffers: three outgoing (step s sends from s % 3), one incoming.
 *
 * Shapes (this file): q, o, dout, dq [B][H][Lr][D]; k, v, dk, dv
 * [B][Hkv][Lr][D]; seg [B][Lr]; lse [B][H][Lr]; a piece buffer holds
 * k, v [B][Hkv][n][D] then seg [B][n]; a dkv buffer, group-major, per
 * (sequence, kv head) its dk rows then its dv rows: [B*Hkv][2][n][D]. */
#include "ringattn/ring.h"

#include <math.h>
#include <omp.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "ringattn/attn.h"
#include "ringattn/mem.h"
#include "ringattn/plan.h"
#include "ringattn/threads.h"
#include "ringattn/trace.h"

#include "dist/ring_comm.h"

enum { TAG_KV = 11, TAG_DKV = 12 };

struct ra_ring {
    ra_ring_opts o;
    ra_ring_comm comm;
    int P, r;
    int64_t Lr;
    int64_t *counts;   /* [P] tokens per rank */
    int nc;            /* pieces per rank */
    int chunk;         /* max tokens per piece, over every rank's pieces */
    int64_t *split;    /* [P] where each rank's pieces split (zigzag: its early chunk; else all) */
    int32_t *pos;      /* [Lr] global index of each local token */
    int32_t *kpos;     /* [chunk] positions of the held piece */
    float *rowstat;    /* [B][H][Lr] l (forward) or dl (backward) */
    float *row_max;    /* [B][H][Lr] forward's running max m, then the backward's lse_hi */
    float *row_logl;   /* [B][H][Lr] forward's log(l), then the backward's lse_lo */
    int have_stats;    /* row_max/row_logl hold the last forward's statistics */
    float *scratch;    /* kernel tiles, for `threads` threads */
    int threads;       /* the most ra_threads() the scratch is sized for */
    void *smem;        /* the scratch's block, regrown when ra_threads() rises */
    size_t smem_bytes;
    float *slot[RA_RING_PIECE_BUFFERS]; /* piece buffers (P > 1): step s holds slot[s % 3] */
    float *dkv[RA_RING_DKV_BUFFERS]; /* backward (P > 1): three outgoing partials (step s: s % 3), one incoming */
    void *mem, *bmem;  /* blocks: every buffer from pos on; dkv (first backward) */
    size_t dkv_floats;
    size_t bytes;      /* allocated by the ring */
    ra_ring_stats stats;
};

/* The owner's local rows of a piece: rows [at[0], at[0] + n[0]) then
 * [at[1], at[1] + n[1]) (n[1] = 0 unless the piece is split). Global
 * positions increase through both, so the kernels see sorted keys. */
typedef struct {
    int64_t at[2];
    int n[2];
} piece_rows;

/* One held piece, wherever it lives. */
typedef struct {
    int origin, index; /* owner rank and piece number */
    piece_rows rows;   /* where it lies in the owner's local arrays */
    int n;             /* tokens */
    const float *k, *v;
    size_t kv_stride;  /* floats between (b, g) blocks */
    const int32_t *seg;
    size_t seg_stride;
} piece;

/* Piece index of rank origin: slice index (of nc) of its local rows [0, S)
 * and of [S, count), S = split[origin] (count unless zigzag at P > 1). */
static piece_rows rows_of(const ra_ring *R, int origin, int index)
{
    const int64_t L = R->counts[origin], S = R->split[origin], nc = R->nc;
    const int64_t a0 = index * S / nc, a1 = S + index * (L - S) / nc;
    return (piece_rows){ .at = { a0, a1 },
                         .n = { (int)((index + 1) * S / nc - a0), (int)(S + (index + 1) * (L - S) / nc - a1) } };
}

static int piece_len(const ra_ring *R, int origin, int index)
{
    const piece_rows pr = rows_of(R, origin, index);
    return pr.n[0] + pr.n[1];
}


static size_t piece_bytes(const ra_ring *R, int n, int with_seg)
{
    const ra_ring_opts *o = &R->o;
    size_t fl = 2 * (size_t)o->B * o->Hkv * n * o->D;
    return (fl + (with_seg ? (size_t)o->B * n : 0)) * sizeof(float);
}

static size_t dkv_bytes(const ra_ring *R, int n)
{
    return 2 * (size_t)R->o.B * R->o.Hkv * n * R->o.D * sizeof(float);
}

static ra_status check_opts(const ra_ring_opts *o, int P)
{
    if (o->B < 1 || o->H < 1 || o->Hkv < 1 || o->D < 1)
        return RA_FAIL(RA_ERR_ARG, "ring: B, H, Hkv and D must be >= 1 (got %d, %d, %d, %d)", o->B,
                       o->H, o->Hkv, o->D);
    if (o->H % o->Hkv != 0)
        return RA_FAIL(RA_ERR_SHAPE, "ring: key/value heads (%d) must divide query heads (%d)",
                       o->Hkv, o->H);
    (void)P; /* ranks may own no token (L < P, or zigzag's 2P chunks): they relay pieces */
    if (o->L < 1) return RA_FAIL(RA_ERR_ARG, "ring: sequence length %lld must be >= 1", (long long)o->L);
    if (o->L > INT32_MAX)
        return RA_FAIL(RA_ERR_ARG, "ring: sequence length %lld exceeds 2^31-1", (long long)o->L);
    if (o->chunk < 0) return RA_FAIL(RA_ERR_ARG, "ring: chunk must be >= 0 (0 = automatic)");
    return RA_OK;
}

/* Allocate a planned block and count its bytes. */
static ra_status ring_alloc(ra_ring *R, ra_plan *plan, void *block, const char *what)
{
    const size_t total = plan->total;
    RA_TRY(ra_plan_alloc(plan, block, what));
    R->bytes += total;
    return RA_OK;
}

/* Kernel scratch for ra_threads() threads in one kernel call, or one slice
 * per thread when the threads take (sequence, head) groups (each_head); its
 * own block, so that a library user who raises ra_threads() after creating
 * the ring gets every thread (the block is regrown at the next call). */
static ra_status ring_scratch(ra_ring *R)
{
    const int nt = ra_threads();
    if (R->smem && nt <= R->threads) return RA_OK;
    free(R->smem);
    R->smem = NULL;
    R->bytes -= R->smem_bytes;
    const size_t per = (ra_attn_scratch_floats(R->o.D) + 15) / 16 * 16;
    size_t sf = ra_attn_scratch_floats_threads(R->o.D, nt);
    if (sf < per * (size_t)nt) sf = per * (size_t)nt;
    ra_plan plan = RA_PLAN_INIT;
    RA_PLAN_ADD(&plan, R->scratch, sf);
    R->smem_bytes = plan.total;
    RA_TRY(ring_alloc(R, &plan, &R->smem, "ring kernel scratch"));
    R->threads = nt;
    return RA_OK;
}

ra_status ra_ring_create(ra_ring **out, const ra_ring_opts *opts, MPI_Comm comm)
{
    *out = NULL;
    int P;
    MPI_Comm_size(comm, &P);
    RA_TRY(check_opts(opts, P));
    ra_ring *R = calloc(1, sizeof *R);
    if (!R) return RA_FAIL(RA_ERR_NOMEM, "out of memory for the ring");
    R->o = *opts;
    if (R->o.scale == 0.0f) R->o.scale = 1.0f / sqrtf((float)R->o.D);
    ra_status st = ra_ring_comm_init(&R->comm, comm);
    if (st != RA_OK) {
        free(R);
        return st;
    }
    R->P = P;
    R->r = R->comm.rank;
    *out = R; /* from here on, ra_ring_destroy cleans up a partial ring */

    const ra_ring_opts *o = &R->o;
    RA_TRY(ra_alloc(&R->counts, sizeof(int64_t) * 2 * P, "ring counts"));
    R->bytes += sizeof(int64_t) * 2 * P;
    R->split = R->counts + P;
    const int two = o->layout == RA_LAYOUT_ZIGZAG && P > 1; /* split pieces */
    int64_t maxL = 0;
    for (int q = 0; q < P; q++) {
        R->counts[q] = ra_layout_count(o->layout, o->L, P, q);
        R->split[q] = two ? ra_layout_first_chunk(o->layout, o->L, P, q) : R->counts[q];
        if (R->counts[q] > maxL) maxL = R->counts[q];
    }
    R->Lr = R->counts[R->r];
    /* Pieces: one per rank alone; otherwise about an eighth of a block, so
     * the three piece buffers cost 3/8 of the local K/V, but no smaller
     * than 512 tokens, where the tiles stay efficient. */
    int64_t chunk = o->chunk > 0 ? o->chunk : (P == 1 ? maxL : (maxL + 7) / 8);
    if (o->chunk == 0 && chunk < 512) chunk = 512;
    if (chunk > maxL) chunk = maxL;
    R->nc = (int)((maxL + chunk - 1) / chunk);
    R->chunk = 0; /* the longest piece: a split one may be 1 over maxL / nc */
    for (int q = 0; q < P; q++)
        for (int i = 0; i < R->nc; i++) {
            const int n = piece_len(R, q, i);
            if (n > R->chunk) R->chunk = n;
        }

    const size_t rows = (size_t)o->B * o->H * R->Lr;
    const size_t piece_floats = piece_bytes(R, R->chunk, 1) / sizeof(float);
    R->dkv_floats = dkv_bytes(R, R->chunk) / sizeof(float);
    ra_plan plan = RA_PLAN_INIT;
    RA_PLAN_ADD(&plan, R->pos, (size_t)R->Lr);
    RA_PLAN_ADD(&plan, R->kpos, (size_t)R->chunk);
    RA_PLAN_ADD(&plan, R->rowstat, rows);
    RA_PLAN_ADD(&plan, R->row_max, rows);
    RA_PLAN_ADD(&plan, R->row_logl, rows);
    RA_TRY(ring_scratch(R));
    if (P > 1) /* the three piece buffers */
        for (int i = 0; i < RA_RING_PIECE_BUFFERS; i++) RA_PLAN_ADD(&plan, R->slot[i], piece_floats);
    RA_TRY(ring_alloc(R, &plan, &R->mem, "ring buffers"));
    ra_layout_positions(o->layout, o->L, P, R->r, R->pos);
    return RA_OK;
}

void ra_ring_destroy(ra_ring *R)
{
    if (!R) return;
    free(R->counts);
    free(R->mem);
    free(R->bmem);
    free(R->smem);
    ra_ring_comm_free(&R->comm);
    free(R);
}

int64_t ra_ring_local_len(const ra_ring *R) { return R->Lr; }
const int32_t *ra_ring_positions(const ra_ring *R) { return R->pos; }
const ra_ring_opts *ra_ring_get_opts(const ra_ring *R) { return &R->o; }
ra_ring_stats ra_ring_last_stats(const ra_ring *R) { return R->stats; }
size_t ra_ring_buffer_bytes(const ra_ring *R) { return R->bytes; }

/* ---- pieces --------------------------------------------------------------- */

/* Own and one range: a view into the local arrays (no copy). */
static int own_view(const piece *p, int t) { return t == 0 && p->rows.n[1] == 0; }

/* The piece held at step s: a view into the local arrays, or in buf (where
 * post_pieces packed our own split piece, or it arrived from the left). */
static piece held_piece(const ra_ring *R, int s, const float *k, const float *v,
                        const int32_t *seg, const float *buf)
{
    const ra_ring_opts *o = &R->o;
    piece p;
    int t = s % R->P;
    p.origin = (R->r - t + R->P) % R->P;
    p.index = s / R->P;
    p.rows = rows_of(R, p.origin, p.index);
    p.n = p.rows.n[0] + p.rows.n[1];
    if (own_view(&p, t)) {
        const int64_t first = p.rows.at[0];
        p.k = k + first * o->D;
        p.v = v + first * o->D;
        p.kv_stride = (size_t)R->Lr * o->D;
        p.seg = seg ? seg + first : NULL;
        p.seg_stride = (size_t)R->Lr;
    } else {
        size_t blk = (size_t)o->B * o->Hkv * p.n * o->D;
        p.k = buf;
        p.v = buf + blk;
        p.kv_stride = (size_t)p.n * o->D;
        p.seg = seg ? (const int32_t *)(buf + 2 * blk) : NULL;
        p.seg_stride = (size_t)p.n;
    }
    return p;
}

/* Copy this rank's piece index into buf in wire order: k, v [B][Hkv][n][D],
 * seg [B][n], each piece row after the other (both of a split piece's ranges). */
static void pack_own(const ra_ring *R, int index, const float *k, const float *v,
                     const int32_t *seg, float *buf)
{
    const ra_ring_opts *o = &R->o;
    const piece_rows pr = rows_of(R, R->r, index);
    const int n = pr.n[0] + pr.n[1];
    const size_t blk = (size_t)o->B * o->Hkv * n * o->D;
    int32_t *sd = (int32_t *)(buf + 2 * blk);
    for (int i = 0, to = 0; i < 2; to += pr.n[i], i++) {
        if (pr.n[i] == 0) continue;
        const size_t rowb = (size_t)pr.n[i] * o->D * sizeof(float);
        for (int bg = 0; bg < o->B * o->Hkv; bg++) {
            const size_t src = ((size_t)bg * R->Lr + pr.at[i]) * o->D, dst = ((size_t)bg * n + to) * o->D;
            memcpy(buf + dst, k + src, rowb);
            memcpy(buf + blk + dst, v + src, rowb);
        }
        if (seg)
            for (int b = 0; b < o->B; b++)
                memcpy(sd + (size_t)b * n + to, seg + (size_t)b * R->Lr + pr.at[i], sizeof(int32_t) * pr.n[i]);
    }
}

static void piece_positions(const ra_ring *R, const piece *p)
{
    for (int i = 0, to = 0; i < 2; to += p->rows.n[i], i++)
        for (int j = 0; j < p->rows.n[i]; j++)
            R->kpos[to + j] =
                (int32_t)ra_layout_global(R->o.layout, R->o.L, R->P, p->origin, p->rows.at[i] + j);
}

/* What the forward and the backward of one piece share: the kernel options,
 * the poll that keeps transfers moving between tiles, the key positions. */
typedef struct {
    ra_attn_opts ao;
    ra_poll poll;
    const ra_poll *use_poll; /* &poll, or NULL: no transfers, or not the main thread */
    float *scratch;          /* this thread's kernel scratch */
    int G;                   /* query heads per key/value head */
} piece_work;

/* 0 when the piece adds nothing here (no keys, or no queries on this rank). */
static int piece_begin(ra_ring *R, const piece *p, piece_work *w)
{
    const ra_ring_opts *o = &R->o;
    *w = (piece_work){ .ao = { .D = o->D, .scale = o->scale, .causal = o->causal,
                               .threads = ra_threads() },
                       .poll = { ra_ring_comm_poll, &R->comm }, .G = o->H / o->Hkv };
    w->use_poll = R->P > 1 ? &w->poll : NULL;
    w->scratch = R->scratch;
    if (p->n == 0 || R->Lr == 0) return 0;
    piece_positions(R, p);
    return 1;
}

/* Call fn for every (sequence, query head) of this rank against piece p,
 * with the query and key rows of that sequence, the head indexes, and koff,
 * the piece row where the key rows kr start. */
typedef void (*head_fn)(const ra_ring *R, const piece *p, const piece_work *w, const ra_rows *qr,
                        const ra_rows *kr, int koff, size_t qh, size_t kh, void *ctx);

/* Threads for each_head to share out (sequence, key/value head) groups, or
 * 1 to leave the threads to the kernels. Groups are coarse (no waiting
 * between threads, each kernel's key tiles stay in its thread's cache), so
 * they are preferred when they divide evenly or are plenty; the kernels
 * split query tiles when there are few groups (e.g. one sequence of one
 * key/value head). Either way every output element sees the same operations
 * in the same order as with one thread: bitwise the same results. */
static int group_threads(int groups)
{
    const int nt = ra_threads(); /* ring_scratch sized the scratch for it */
    if (nt <= 1 || omp_in_parallel() || groups < nt) return 1;
    return groups % nt == 0 || groups >= 4 * nt ? nt : 1;
}

static void group_heads(ra_ring *R, const piece *p, const int32_t *seg, head_fn fn, void *ctx,
                        const piece_work *w, int g)
{
    const ra_ring_opts *o = &R->o;
    const int b = g / o->Hkv, kh = g % o->Hkv;
    ra_rows qr = { (int)R->Lr, R->pos, seg ? seg + (size_t)b * R->Lr : NULL };
    /* a split piece's two ranges as two key blocks: no key tile straddles
     * them, so the causal mask empties or trims tiles as it would for whole
     * ranges (a straddling tile would compute the late half for early queries) */
    for (int i = 0, koff = 0; i < 2; koff += p->rows.n[i], i++) {
        if (p->rows.n[i] == 0) continue;
        ra_rows kr = { p->rows.n[i], R->kpos + koff,
                       seg ? p->seg + (size_t)b * p->seg_stride + koff : NULL };
        for (int h = kh * w->G; h < (kh + 1) * w->G; h++)
            fn(R, p, w, &qr, &kr, koff, (size_t)b * o->H + h, (size_t)b * o->Hkv + kh, ctx);
    }
}

/* fn for the (sequence, key/value head) groups [g0, g1) of piece p. */
static void group_range(ra_ring *R, const piece *p, const int32_t *seg, head_fn fn, void *ctx,
                        int g0, int g1)
{
    const ra_ring_opts *o = &R->o;
    piece_work w;
    if (!piece_begin(R, p, &w)) return;
    const int nt = group_threads(g1 - g0);
    if (nt == 1) { /* one group after the other (the kernels may thread) */
        for (int g = g0; g < g1; g++) group_heads(R, p, seg, fn, ctx, &w, g);
        return;
    }
    /* The query heads of one key/value head stay in one thread, in order:
     * they add into the same dK/dV. */
    const size_t per = (ra_attn_scratch_floats(o->D) + 15) / 16 * 16;
    atomic_int finished;
    atomic_init(&finished, 0);
    ra_blas_serial_begin();
#pragma omp parallel num_threads(nt)
    {
        const int me = omp_get_thread_num(), team = omp_get_num_threads();
        piece_work mine = w;
        mine.ao.threads = 1;
        mine.scratch = R->scratch + (size_t)me * per;
        mine.use_poll = me == 0 ? w.use_poll : NULL;
        if (mine.use_poll) mine.use_poll = &mine.poll;
#pragma omp for schedule(dynamic, 1) nowait
        for (int g = g0; g < g1; g++) group_heads(R, p, seg, fn, ctx, &mine, g);
        /* thread 0 keeps the transfers moving until the others are done */
        atomic_fetch_add_explicit(&finished, 1, memory_order_acq_rel);
        if (mine.use_poll)
            while (atomic_load_explicit(&finished, memory_order_acquire) < team) {
                mine.use_poll->fn(mine.use_poll->ctx);
                sched_yield();
            }
    }
    ra_blas_serial_end();
}

static void each_head(ra_ring *R, const piece *p, const int32_t *seg, head_fn fn, void *ctx)
{
    group_range(R, p, seg, fn, ctx, 0, R->o.B * R->o.Hkv);
}

/* Wire bytes of the piece held at step s. */
static size_t step_bytes(const ra_ring *R, int s, const int32_t *seg)
{
    const int t = s % R->P;
    return piece_bytes(R, piece_len(R, (R->r - t + R->P) % R->P, s / R->P), seg != NULL);
}

/* Post this step's transfers: the held piece to the right (unless the right
 * neighbour owns it) and the next piece from the left (unless it is ours).
 * At t = 0 both went ahead, at the step before (s > 0); at t = P-1 the next
 * own piece goes ahead: packed into the next step's buffer and sent, and the
 * receive for the step after next posted (the left neighbour's own piece). */
static ra_status post_pieces(ra_ring *R, int s, int nsteps, const float *k, const float *v,
                             const int32_t *seg)
{
    const int P = R->P, t = s % P;
    if (P == 1) return RA_OK;
    float *cur = R->slot[s % 3], *next = R->slot[(s + 1) % 3], *after = R->slot[(s + 2) % 3];
    if (t == 0 && s == 0) pack_own(R, 0, k, v, seg, cur);
    if (t < P - 1 && (t > 0 || s == 0)) RA_TRY(ra_ring_comm_send(&R->comm, cur, step_bytes(R, s, seg), TAG_KV));
    if (s + 1 < nsteps && (s + 1) % P != 0 && (t > 0 || s == 0))
        RA_TRY(ra_ring_comm_recv(&R->comm, next, step_bytes(R, s + 1, seg), TAG_KV));
    if (t == P - 1 && s + 1 < nsteps) {
        pack_own(R, (s + 1) / P, k, v, seg, next);
        RA_TRY(ra_ring_comm_send_ahead(&R->comm, next, step_bytes(R, s + 1, seg), TAG_KV, RA_TRACE_TID_SEND_AHEAD));
        if (s + 2 < nsteps)
            RA_TRY(ra_ring_comm_recv_ahead(&R->comm, after, step_bytes(R, s + 2, seg), TAG_KV, RA_TRACE_TID_RECV_AHEAD));
    }
    return RA_OK;
}

/* ---- forward -------------------------------------------------------------- */

typedef struct {
    const float *q;
    float *acc, *m, *l;
} fwd_args;

static void forward_head(const ra_ring *R, const piece *p, const piece_work *w, const ra_rows *qr,
                         const ra_rows *kr, int koff, size_t qh, size_t kh, void *ctx)
{
    const fwd_args *a = ctx;
    const size_t qoff = qh * R->Lr * R->o.D, kv = kh * p->kv_stride + (size_t)koff * R->o.D;
    ra_attn_fwd_block(&w->ao, qr, a->q + qoff, kr, p->k + kv, p->v + kv,
                      a->acc + qoff, a->m + qh * R->Lr, a->l + qh * R->Lr, w->scratch,
                      w->use_poll);
}

static void forward_piece(ra_ring *R, const piece *p, const float *q, const int32_t *seg,
                          float *acc, float *m, float *l)
{
    fwd_args a = { q, acc, m, l };
    each_head(R, p, seg, forward_head, &a);
}

static void begin_stats(ra_ring *R)
{
    R->comm.wait_seconds = 0;
    R->comm.bytes_sent = 0;
    R->stats = (ra_ring_stats){ .seconds = -ra_now() };
}

static void end_stats(ra_ring *R, int steps)
{
    R->stats.seconds += ra_now();
    R->stats.wait_seconds = R->comm.wait_seconds;
    R->stats.bytes_sent = R->comm.bytes_sent;
    R->stats.steps = steps;
}

ra_status ra_ring_forward(ra_ring *R, const float *q, const float *k, const float *v,
                          const int32_t *seg, float *o_out, float *lse)
{
    const ra_ring_opts *o = &R->o;
    const size_t rows = (size_t)o->B * o->H;
    float *m = R->row_max, *l = R->rowstat;
    RA_TRY(ring_scratch(R));
    begin_stats(R);
    R->have_stats = 0;
    for (size_t bh = 0; bh < rows; bh++)
        ra_attn_fwd_init((int)R->Lr, o->D, o_out + bh * R->Lr * o->D, m + bh * R->Lr,
                         l + bh * R->Lr);
    const int nsteps = R->P * R->nc;
    const int64_t tr = RA_TRACE_T0();
    for (int s = 0; s < nsteps; s++) {
        RA_TRY(post_pieces(R, s, nsteps, k, v, seg));
        piece p = held_piece(R, s, k, v, seg, R->slot[s % 3]);
        const int64_t ts = RA_TRACE_T0();
        forward_piece(R, &p, q, seg, o_out, m, l);
        RA_TRACE_END3("attn", "fwd step", ts, "step", s, "origin", p.origin, "tokens", p.n);
        RA_TRY(ra_ring_comm_wait(&R->comm));
    }
    RA_TRACE_END2("attn", "ring forward", tr, "steps", nsteps, "tokens", R->Lr);
    for (size_t bh = 0; bh < rows; bh++)
        ra_attn_fwd_finish((int)R->Lr, o->D, o_out + bh * R->Lr * o->D, m + bh * R->Lr,
                           l + bh * R->Lr, lse + bh * R->Lr);
    for (size_t i = 0; i < rows * R->Lr; i++) R->row_logl[i] = l[i] > 0.0f ? logf(l[i]) : 0.0f;
    R->have_stats = 1;
    end_stats(R, nsteps);
    return RA_OK;
}

/* ---- backward ------------------------------------------------------------- */

/* Add this rank's gradient for piece p into dk/dv (views with stride). */
typedef struct {
    const float *q, *dout, *dl;
    float *dq, *dk, *dv;
    size_t dstride;
} bwd_args;

static void backward_head(const ra_ring *R, const piece *p, const piece_work *w, const ra_rows *qr,
                          const ra_rows *kr, int koff, size_t qh, size_t kh, void *ctx)
{
    const bwd_args *a = ctx;
    const size_t qoff = qh * R->Lr * R->o.D, kv = kh * p->kv_stride + (size_t)koff * R->o.D;
    const size_t dkv = kh * a->dstride + (size_t)koff * R->o.D;
    ra_attn_bwd_block_split(&w->ao, qr, a->q + qoff, a->dout + qoff, R->row_max + qh * R->Lr,
                            R->row_logl + qh * R->Lr, a->dl + qh * R->Lr, kr, p->k + kv, p->v + kv,
                            a->dq + qoff, a->dk + dkv, a->dv + dkv, w->scratch, w->use_poll);
}

/* Groups [g0, g1) of piece p into dk, dv (group g's rows at g * dstride). */
static void backward_piece(ra_ring *R, const piece *p, const float *q, const int32_t *seg,
                           const float *dout, const float *dl, float *dq,
                           float *dk, float *dv, size_t dstride, int g0, int g1)
{
    bwd_args a = { q, dout, dl, dq, dk, dv, dstride };
    group_range(R, p, seg, backward_head, &a, g0, g1);
}

/* The backward's P = exp((S - hi) - lo) with hi + lo = lse. Where lse is
 * exactly what the last forward returned, hi/lo are its max and log-sum, so
 * P keeps full precision even when |lse| ~ 1e4 (where float32 lse alone is
 * off by up to 2^-11, i.e. 5e-4 in P); elsewhere hi = lse, lo = 0. */
static void split_lse(ra_ring *R, const float *lse)
{
    size_t n = (size_t)R->o.B * R->o.H * R->Lr;
    for (size_t i = 0; i < n; i++) {
        int same = R->have_stats && R->row_max[i] + R->row_logl[i] == lse[i];
        if (!same) {
            R->row_max[i] = lse[i];
            R->row_logl[i] = 0.0f;
        }
    }
    R->have_stats = 0; /* row_max/row_logl now belong to this backward */
}

/* dk/dv rows of own piece index += the partial in buf, group-major
 * [B*Hkv][2][n][D] (per group its dK rows, then its dV rows; the rows in
 * pack_own's order). */
static void add_returned(const ra_ring *R, int index, const float *buf, float *dk, float *dv)
{
    const ra_ring_opts *o = &R->o;
    const piece_rows pr = rows_of(R, R->r, index);
    const int n = pr.n[0] + pr.n[1];
    for (int i = 0, to = 0; i < 2; to += pr.n[i], i++) {
        const size_t len = (size_t)pr.n[i] * o->D;
        for (int bg = 0; bg < o->B * o->Hkv; bg++) {
            const size_t at = ((size_t)bg * R->Lr + pr.at[i]) * o->D, from = ((size_t)2 * bg * n + to) * o->D;
            float *dkr = dk + at, *dvr = dv + at;
            const float *pk = buf + from, *pv = buf + from + (size_t)n * o->D;
            for (size_t e = 0; e < len; e++) {
                dkr[e] += pk[e];
                dvr[e] += pv[e];
            }
        }
    }
}

/* The last step's partial is the backward's last message, and its owner
 * (the right neighbour) can only wait for it. So it goes out in up to
 * TAIL_PARTS messages, each (sequence, kv head) group range as soon as it is
 * computed: only the last part's transfer is left exposed. The owner posts
 * the matching receives (tail_recv) early in its own last step, while it
 * computes: a part above the eager limit moves only once its receive is
 * posted (rendezvous), so receives posted after the step left the whole
 * partial exposed (8-10 ms of 1 MiB at 1 Gbit/s, seen in a trace). */
enum { TAIL_PARTS = 4 };

static int tail_parts(const ra_ring *R)
{
    const int64_t groups = (int64_t)R->o.B * R->o.Hkv; /* each up to 65536: no int product */
    return groups < TAIL_PARTS ? (int)groups : TAIL_PARTS;
}

/* First group of tail part j (j = 0 .. tail_parts). */
static int tail_group(const ra_ring *R, int j) { return j * (R->o.B * R->o.Hkv) / tail_parts(R); }

/* Own piece nc-1's partial coming home in tail parts, into buf. */
static ra_status tail_recv(ra_ring *R, float *buf)
{
    const size_t per_group = 2 * (size_t)piece_len(R, R->r, R->nc - 1) * R->o.D;
    for (int j = 0; j < tail_parts(R); j++) {
        const int g0 = tail_group(R, j), g1 = tail_group(R, j + 1);
        RA_TRY(ra_ring_comm_recv(&R->comm, buf + g0 * per_group, (size_t)(g1 - g0) * per_group * sizeof(float),
                                 TAG_DKV));
    }
    return RA_OK;
}

/* Last step (t = P-1): backward of piece p into part, group-major
 * [B*Hkv][2][n][D], plus the incoming partial (t >= 2), sent by parts. The
 * first wait completes the incoming partial and the sends still in flight,
 * which frees home for our own last piece's partial: its receives are
 * posted there and then. At P = 2 that wait also completes the partial of
 * own piece `back` (>= 0) coming home into incoming, added to dk/dv then.
 * The final wait completes the receives and the parts' sends. */
static ra_status backward_tail(ra_ring *R, const piece *p, int t, const float *q, const int32_t *seg,
                               const float *dout, const float *dl, float *dq, float *part,
                               const float *incoming, float *home, int back, float *dk, float *dv)
{
    const size_t nd = (size_t)p->n * R->o.D, per_group = 2 * nd;
    if (per_group) memset(part, 0, sizeof(float) * per_group * R->o.B * R->o.Hkv);
    for (int j = 0; j < tail_parts(R); j++) {
        const int g0 = tail_group(R, j), g1 = tail_group(R, j + 1);
        backward_piece(R, p, q, seg, dout, dl, dq, part, part + nd, per_group, g0, g1);
        if (j == 0) {
            RA_TRY(ra_ring_comm_wait(&R->comm));
            if (back >= 0) add_returned(R, back, incoming, dk, dv);
            RA_TRY(tail_recv(R, home));
        }
        float *from = part + g0 * per_group;
        const size_t count = (size_t)(g1 - g0) * per_group;
        if (t >= 2)
            for (size_t i = 0; i < count; i++) from[i] += incoming[g0 * per_group + i];
        RA_TRY(ra_ring_comm_send(&R->comm, from, count * sizeof(float), TAG_DKV));
    }
    return RA_OK;
}

ra_status ra_ring_backward(ra_ring *R, const float *q, const float *k, const float *v,
                           const int32_t *seg, const float *o_in, const float *lse,
                           const float *dout, float *dq, float *dk, float *dv)
{
    const ra_ring_opts *o = &R->o;
    const int P = R->P;
    const size_t rows = (size_t)o->B * o->H;
    float *dl = R->rowstat;
    RA_TRY(ring_scratch(R));
    if (P > 1 && !R->bmem) { /* first backward: the partial-sum buffers */
        ra_plan plan = RA_PLAN_INIT;
        for (int i = 0; i < RA_RING_DKV_BUFFERS; i++) RA_PLAN_ADD(&plan, R->dkv[i], R->dkv_floats);
        RA_TRY(ring_alloc(R, &plan, &R->bmem, "dK/dV partial buffers"));
    }
    begin_stats(R);
    split_lse(R, lse);
    if (R->Lr > 0) { /* a rank without tokens may have been given no arrays */
        memset(dq, 0, sizeof(float) * rows * R->Lr * o->D);
        memset(dk, 0, sizeof(float) * o->B * o->Hkv * R->Lr * o->D);
        memset(dv, 0, sizeof(float) * o->B * o->Hkv * R->Lr * o->D);
    }
    for (size_t bh = 0; bh < rows; bh++)
        ra_attn_bwd_rowdot((int)R->Lr, o->D, o_in + bh * R->Lr * o->D, dout + bh * R->Lr * o->D,
                           dl + bh * R->Lr);
    const int nsteps = P * R->nc, groups = o->B * o->Hkv;
    float *incoming = P > 1 ? R->dkv[RA_RING_DKV_BUFFERS - 1] : NULL;
    int back = -1; /* own piece whose partial is coming home into incoming */
    const int64_t tr = RA_TRACE_T0();
    for (int s = 0; s < nsteps; s++) {
        const int t = s % P;
        float *part = P > 1 ? R->dkv[s % 3] : NULL;
        RA_TRY(post_pieces(R, s, nsteps, k, v, seg));
        piece p = held_piece(R, s, k, v, seg, R->slot[s % 3]);
        /* The left neighbour's message this step: the running partial of the
         * held piece (t >= 2), needed at the step's end to be passed on, or
         * our own previous piece's partial coming home (t == 0), needed only
         * in dk/dv: received ahead, completed by the wait after next (the
         * end of step t = 1) and added then, so the neighbour may finish its
         * last hop a step later without this rank waiting for it. */
        if (P > 1 && t >= 2) RA_TRY(ra_ring_comm_recv(&R->comm, incoming, dkv_bytes(R, p.n), TAG_DKV));
        if (P > 1 && t == 0 && s > 0) {
            back = p.index - 1;
            RA_TRY(ra_ring_comm_recv_ahead(&R->comm, incoming, dkv_bytes(R, piece_len(R, R->r, back)), TAG_DKV,
                                           RA_TRACE_TID_DKV_RECV_AHEAD));
        }
        const int64_t ts = RA_TRACE_T0();
        if (P > 1 && s == nsteps - 1) { /* t = P-1: sent in parts as computed */
            RA_TRY(backward_tail(R, &p, t, q, seg, dout, dl, dq, part, incoming, R->dkv[(s + 1) % 3],
                                 t == 1 ? back : -1, dk, dv));
            RA_TRACE_END3("attn", "bwd step", ts, "step", s, "origin", p.origin, "tokens", p.n);
            break;
        }
        if (own_view(&p, t)) { /* straight into our dK/dV rows */
            const int64_t first = p.rows.at[0];
            backward_piece(R, &p, q, seg, dout, dl, dq, dk + first * o->D,
                           dv + first * o->D, (size_t)R->Lr * o->D, 0, groups);
        } else { /* into a partial: passed on, or (own split piece) added home */
            const size_t nd = (size_t)p.n * o->D;
            if (nd) memset(part, 0, sizeof(float) * 2 * nd * groups);
            backward_piece(R, &p, q, seg, dout, dl, dq, part, part + nd, 2 * nd, 0, groups);
            if (t == 0) add_returned(R, p.index, part, dk, dv);
        }
        RA_TRACE_END3("attn", "bwd step", ts, "step", s, "origin", p.origin, "tokens", p.n);
        RA_TRY(ra_ring_comm_wait(&R->comm));
        if (t == 1 && back >= 0) {
            add_returned(R, back, incoming, dk, dv);
            back = -1;
        }
        if (t != 0) {
            size_t n2 = 2 * (size_t)o->B * o->Hkv * p.n * o->D;
            if (t >= 2)
                for (size_t i = 0; i < n2; i++) part[i] += incoming[i];
            /* the last hop (to the owner, which receives it ahead) stays in
             * flight until the wait after next: part's buffer comes round
             * again three steps on */
            if (t == P - 1)
                RA_TRY(ra_ring_comm_send_ahead(&R->comm, part, dkv_bytes(R, p.n), TAG_DKV,
                                               RA_TRACE_TID_DKV_SEND_AHEAD));
            else
                RA_TRY(ra_ring_comm_send(&R->comm, part, dkv_bytes(R, p.n), TAG_DKV));
        }
    }
    if (P > 1) { /* the last own piece comes home (and the tail's sends complete) */
        RA_TRY(ra_ring_comm_wait(&R->comm));
        add_returned(R, R->nc - 1, R->dkv[nsteps % 3], dk, dv); /* backward_tail's home */
    }
    RA_TRACE_END2("attn", "ring backward", tr, "steps", nsteps, "tokens", R->Lr);
    end_stats(R, nsteps);
    return RA_OK;
}
