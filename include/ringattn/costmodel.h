/* costmodel.h - predicted step times, waits, balance and memory of the ring
 * (docs/planner.md). Pure functions: no MPI, no allocation of model buffers.
 *
 * A ring call is P*nc steps (docs/design.md §4.1). Step s of rank r computes
 * the tiles of the piece it holds (the real tile grid of attn.c: 256x512
 * forward, 64x512 backward, a tile the causal mask empties skipped, a
 * partial one computed whole backward and by groups of 64 rows forward) at
 * the calibrated tile rate, while the next
 * piece (and in the backward the dK/dV partial) crosses one link:
 *     T(s) = max(max_r compute(r, s), transfer(s))
 *     wait(r) = sum_s T(s) - compute(r, s)   (imbalance + transfer waits)
 * A training step adds the projections, FFN and LM head (sgemm rate), the
 * memory-bound passes (bytes rate), the gradient all-reduce (ring:
 * 2(P-1)/P bytes over the link, 2(P-1) latencies) and AdamW.
 * Memory per rank is the model's real plan (ra_model_plan_bytes) plus the
 * heads' planned buffers plus the AdamW moments.
 *
 *     ra_cm_rates r; ra_cm_default_rates(&r);
 *     ra_cm_train t; RA_TRY(ra_cm_train_time(&cfg, &(ra_cm_setup){ .P = 4 }, &r, &t));
 */
#ifndef RINGATTN_COSTMODEL_H
#define RINGATTN_COSTMODEL_H

#include <stddef.h>
#include <stdint.h>

#include "ringattn/config.h"
#include "ringattn/names.h"
#include "ringattn/status.h"

/* Every rate, latency and cost a rates file or --link-gbps / --link-latency-us
 * gives lies in [RA_CM_VALUE_MIN, RA_CM_VALUE_MAX]: beyond, the model's times
 * are hundreds of digits long or zero, which no machine measures. */
#define RA_CM_VALUE_MIN 1e-6
#define RA_CM_VALUE_MAX 1e12

/* Rates of one rank at `threads` threads. */
typedef struct {
    double sgemm_gflops;    /* projections, FFN, LM head */
    double attn_fwd_gflops; /* attention tiles, 4*D FLOPs per computed (query, key) pair */
    double attn_bwd_gflops; /* 10*D FLOPs per pair */
    double mem_gbs;         /* memory-bound passes: GB/s of bytes read + written */
    double layer_pass_gbs;  /* a layer's passes (norms, RoPE, gates, moves) as the training
                               step runs them, fitted by calibration; 0: mem_gbs */
    double fixed_op_gflops, axial_op_gflops, logsparse_op_gflops; /* each Combiner's scalar loops
                               (docs/planner.md), fitted by calibration on a call of the head;
                               0: 0.72 of sgemm_gflops */
    double row_fwd_pairs, row_bwd_pairs; /* a small kernel call's cost per (row, key tile) beyond
                               its pairs, in pairs (the Combiners' many small blocks), fitted by
                               calibration on 64 x 64 calls; 0: 15 forward, 5 backward */
    double link_gbps;       /* between nodes: Gbit/s */
    double link_lat_us;     /* between nodes: one message's latency */
    double link_cpu_s_per_gb; /* compute a rank loses per GB it sends or receives across nodes
                               (TCP's copies, checksums and softirq on the cores that compute),
                               fitted by calibration; 0: none (a NIC that offloads, RDMA) */
    double shm_gbps;        /* between ranks of one node */
    double shm_lat_us;
    int threads;            /* threads per rank the compute rates hold for */
    int calibrated;         /* 0: the documented defaults */
} ra_cm_rates;

/* The documented defaults (docs/planner.md): a 2-core machine of ~2020. */
void ra_cm_default_rates(ra_cm_rates *r);
/* "key = value" lines (# comments) with every key of ra_cm_rates
 * (layer_pass_gbs, the *_op_gflops, row_*_pairs and link_cpu_s_per_gb may be left out:
 * files saved before they existed); errors
 * name the file, the line and the key. */
ra_status ra_cm_rates_parse(ra_cm_rates *r, const char *text, const char *name);
/* The same format; returns the length written (snprintf's). */
int ra_cm_rates_text(const ra_cm_rates *r, char *out, size_t cap);

/* Where P ranks run and how the sequence is laid out. */
typedef struct {
    int P;              /* ranks */
    int dp;             /* data-parallel replicas (0 or 1: one ring of P ranks) */
    int ranks_per_node; /* ranks sharing a node (shm); 0: all P on one node */
    ra_layout layout;
    int chunk;          /* run.chunk: 0 automatic (design §4.1) */
} ra_cm_setup;

/* One attention head call, as `bench attn` runs it. */
typedef struct {
    int B, H, Hkv, D;
    int64_t L;
    int causal;
    ra_head_id head;
    int span, row; /* Combiner parameters (0: ceil(sqrt(L))) */
} ra_cm_attn;

typedef struct {
    double fwd_s, bwd_s;              /* wall time of one forward, one backward */
    double fwd_compute_s, bwd_compute_s; /* busiest rank's compute */
    double fwd_comm_s, bwd_comm_s;    /* transfer time of all steps (hidden or not) */
    double fwd_wait_s, bwd_wait_s;    /* the most any rank waits */
    double imbalance_s;               /* of the waits: from uneven piece work (fwd + bwd) */
    double balance;                   /* mean over ranks of compute / the busiest's */
    double bytes_sent;                /* per rank, forward + backward */
    int nc, chunk, steps;             /* pieces per rank, tokens per piece, steps */
    size_t head_bytes;                /* the head's planned buffers on the largest rank */
} ra_cm_attn_cost;

ra_status ra_cm_attn_time(const ra_cm_attn *a, const ra_cm_setup *s, const ra_cm_rates *r,
                          ra_cm_attn_cost *out);

/* Seconds to move `bytes` once over the setup's ring link (shm when every
 * rank of the ring is on one node). */
double ra_cm_transfer_s(const ra_cm_setup *s, const ra_cm_rates *r, double bytes);

/* combiner-logsparse over L tokens, nl levels, P ranks each owning
 * [r L / P, (r + 1) L / P) (design §5): the most summary rows any rank
 * computes in the blocks it needs inside its own range (*local), and the
 * most rows any rank holds of the blocks shared across ranks (*shared, 0 at
 * P = 1). 32 bytes per rank of scratch: RA_ERR_NOMEM without them. */
ra_status ra_cm_logsparse_rows(int64_t L, int P, int nl, double *local, double *shared);

/* The automatic chunk and the piece count of the ring (design §4.1). */
void ra_cm_ring_pieces(int64_t L, int P, ra_layout layout, int chunk, int *nc, int *chunk_out);

/* The owner's local rows of piece k (0..nc-1) of rank o, as ring_attn.c cuts
 * them: one range [k*Lo/nc, (k+1)*Lo/nc) (contiguous, striped, P = 1), or
 * for zigzag at P > 1 two, half early and half late tokens:
 *     [k*S/nc, (k+1)*S/nc) and [S + k*(Lo-S)/nc, S + (k+1)*(Lo-S)/nc)
 * with Lo = rank o's tokens and S = its first zigzag chunk's. */
typedef struct {
    int64_t first[2], n[2]; /* local row of the first token, tokens; n[1] = 0: one range */
} ra_cm_piece;
ra_cm_piece ra_cm_piece_rows(ra_layout lay, int64_t L, int P, int nc, int o, int k);

/* The tiles attn.c computes for all rows of rank r against piece pc of
 * rank o (tq x tk tiles; causal: a tile whose first key follows its last
 * query skipped, one whose last key precedes its first query full, the rest
 * partial), in (query, key) pairs. The backward (64 x 512) computes partial
 * tiles whole; the forward (256 x 512, sub = 64) per group of sub rows up
 * to the keys the group's last query sees. sub divides tq; 0: no groups.
 * ra_cm_tile_pairs: sums in O(key tiles of the piece + query groups inside
 * its span); ra_cm_tile_pairs_walk: the same by visiting every tile and key
 * as attn.c does (the reference the tests compare with). */
typedef struct {
    double full;     /* full tiles (every pair when bidirectional) */
    double part;     /* partial tiles, whole */
    double part_sub; /* partial tiles by groups of sub rows (= part when sub = 0) */
} ra_cm_tiles;
ra_cm_tiles ra_cm_tile_pairs(ra_layout lay, int64_t L, int P, int r, int o, const ra_cm_piece *pc, int causal,
                             int tq, int tk, int sub);
ra_cm_tiles ra_cm_tile_pairs_walk(ra_layout lay, int64_t L, int P, int r, int o, const ra_cm_piece *pc, int causal,
                                  int tq, int tk, int sub);

/* One training step of a config (train.batch sequences, accum micro-batches). */
typedef struct {
    double step_s;          /* the whole optimizer step */
    double compute_s;       /* busiest rank: matmuls, tiles, passes, optimizer */
    double comm_s;          /* ring transfers (all of them) + gradient all-reduce */
    double wait_s;          /* ring waits (imbalance + exposed transfers) */
    double allreduce_s;     /* gradient all-reduce */
    double optim_s;         /* AdamW + gradient norm + zeroing */
    double attn_fwd_s, attn_bwd_s; /* all heads, all micro-batches */
    double balance;         /* of the full-attention layers (1 when none) */
    double flops;           /* model FLOPs of the step (ra_model_flops' count) */
    size_t bytes_per_rank;  /* model plan + heads + AdamW + reduction buffer, largest rank */
    size_t reduce_bytes;    /* the gradient reduce-scatter's receive buffers (P > 1): 4 min(2, P-1) ceil(n/P) */
    int sharded;            /* AdamW state sharded over the P ranks (train.shard_optimizer, P > 1) */
    size_t model_plan_bytes;
    size_t nparams;
    int64_t tokens;         /* per step, all ranks */
} ra_cm_train;

ra_status ra_cm_train_time(const ra_config *cfg, const ra_cm_setup *s, const ra_cm_rates *r, ra_cm_train *out);
/* The setup ra_cm_train_time refuses (no rank, dp not dividing P, a ring
 * longer than data.seq_len), checked alone: before anything is printed. */
ra_status ra_cm_train_check(const ra_config *cfg, const ra_cm_setup *s);

#endif
