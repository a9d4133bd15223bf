/* attn.h - single-rank attention kernels: one block of queries against one
 * block of keys, forward (online softmax) and backward, on OpenBLAS sgemm.
 *
 * These are the tiles the ring is made of (docs/design.md §4). Shapes, per (batch,
 * head) pair: q, dout, acc, dq [nq][D]; k, v, dk, dv [nk][D]; m, l, lse, dl
 * [nq]. Query i may see key j when allowed(i, j): always if bidirectional,
 * kpos[j] <= qpos[i] if causal, and qseg[i] == kseg[j] when segment ids are
 * given. Positions are global token indices.
 *
 * Forward over any number of key blocks, in any order:
 *     ra_attn_fwd_init(nq, D, acc, m, l);
 *     for each key block: ra_attn_fwd_block(&opt, &qr, q, &kr, k, v, acc, m, l, scratch, NULL);
 *     ra_attn_fwd_finish(nq, D, acc, m, l, lse);    // acc now holds O
 * Backward, with lse from the forward:
 *     ra_attn_bwd_rowdot(nq, D, o, dout, dl);       // dl = rowsum(dO * O)
 *     for each key block: ra_attn_bwd_block(&opt, &qr, q, dout, lse, dl,
 *                                           &kr, k, v, dq, dk, dv, scratch, NULL);
 * dq, dk, dv accumulate (+=); zero them first. A query row that sees no key
 * gets O = 0, lse = -inf and zero gradients, never NaN.
 *
 * Threads (opts.threads > 1, scratch from ra_attn_scratch_floats_threads):
 * the forward shares out its query tiles (256 rows) among the threads; the
 * backward gives each thread chunks of 256 query rows (it owns their dQ
 * rows) and adds the chunk's part of each key tile's dK/dV when the previous
 * chunk has added its own, so they sum in query order. Every output element
 * sees the same operations in the same order as with one thread (OpenBLAS
 * runs single-threaded inside these functions, at any thread count):
 * results are bitwise identical for any number of threads. The poll is
 * called only by the calling thread (OpenMP thread 0), between its tiles
 * and while it waits for the other threads. */
#ifndef RINGATTN_ATTN_H
#define RINGATTN_ATTN_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    int D;        /* head dimension */
    float scale;  /* logit scale a, usually 1/sqrt(D) */
    int causal;   /* 1: key j visible to query i only if pos[j] <= pos[i] */
    int threads;  /* threads the scratch is sized for (ra_attn_scratch_floats_threads);
                   * 0 or 1: one. The block functions use min(threads, ra_threads())
                   * OpenMP threads, and one when called inside a parallel region. */
} ra_attn_opts;

/* The rows of one block: count, global positions, optional segment ids. */
typedef struct {
    int n;
    const int32_t *pos; /* [n] */
    const int32_t *seg; /* [n] or NULL (then no segment masking) */
} ra_rows;

/* The kernels' tiles, which the cost model (costmodel.c) counts with: the
 * forward's 256 query rows x 512 keys, a partial causal tile computed in
 * groups of 16 rows, each up to the last key its latest query sees; the
 * backward's 64 x 512, computed whole. */
enum {
    RA_ATTN_FWD_TQ = 256,
    RA_ATTN_FWD_TK = 512,
    RA_ATTN_FWD_SUB = 16,
    RA_ATTN_BWD_TQ = 64,
    RA_ATTN_BWD_TK = 512,
};

/* Called between tiles so that MPI transfers progress during compute. */
typedef struct {
    void (*fn)(void *ctx);
    void *ctx;
} ra_poll;

/* Floats of scratch the block functions need (64-byte aligned), for one
 * thread and for `threads` threads (opts.threads = threads). */
size_t ra_attn_scratch_floats(int D);
size_t ra_attn_scratch_floats_threads(int D, int threads);

void ra_attn_fwd_init(int nq, int D, float *acc, float *m, float *l);
void ra_attn_fwd_block(const ra_attn_opts *opt, const ra_rows *qr, const float *q,
                       const ra_rows *kr, const float *k, const float *v,
                       float *acc, float *m, float *l, float *scratch, const ra_poll *poll);
void ra_attn_fwd_finish(int nq, int D, float *acc, const float *m, const float *l, float *lse);

void ra_attn_bwd_rowdot(int nq, int D, const float *o, const float *dout, float *dl);
void ra_attn_bwd_block(const ra_attn_opts *opt, const ra_rows *qr, const float *q,
                       const float *dout, const float *lse, const float *dl,
                       const ra_rows *kr, const float *k, const float *v,
                       float *dq, float *dk, float *dv, float *scratch, const ra_poll *poll);

/* The same with the log-sum-exp given as two parts, lse = lse_hi + lse_lo,
 * so that P = exp((S - lse_hi) - lse_lo) keeps full float32 precision when
 * |lse| is large (lse_hi: the row max, lse_lo: log of the row sum, both from
 * the forward). lse_lo may be NULL (then it is 0). */
void ra_attn_bwd_block_split(const ra_attn_opts *opt, const ra_rows *qr, const float *q,
                             const float *dout, const float *lse_hi, const float *lse_lo,
                             const float *dl, const ra_rows *kr, const float *k, const float *v,
                             float *dq, float *dk, float *dv, float *scratch, const ra_poll *poll);

/* FLOP counts used for every GFLOP/s figure: 4*L^2*D per head forward and
 * 10*L^2*D backward for the full L x L problem, halved when causal (only the
 * lower triangle is computed), as FlashAttention reports them. */
double ra_attn_flops_fwd(double B, double H, double L, double D, int causal);
double ra_attn_flops_bwd(double B, double H, double L, double D, int causal);

#endif
