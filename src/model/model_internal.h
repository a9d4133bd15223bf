/* model_internal.h - what the model's files share: the weights and shapes
 * every transformer block reads (ra_net), the model's state, and the
 * forward/backward pairs of the blocks (layer.c). Training runs them over
 * N = B * Lr tokens; the decoder (decode.c) runs the very same functions
 * on one token (B = 1, Lr = 1), so the two cannot drift apart.
 *
 * Shapes: C model width, H/Hkv heads, D head dim, F FFN width, V vocabulary.
 * Token-major rows [B][Lr][...]; the heads work head-major: q [B][H][Lr][D],
 * k, v [B][Hkv][Lr][D]. For one token both orders are the same array. */
#ifndef RINGATTN_MODEL_INTERNAL_H
#define RINGATTN_MODEL_INTERNAL_H

#include <mpi.h>
#include <stdint.h>

#include "ringattn/config.h"
#include "ringattn/heads.h"
#include "ringattn/model.h"
#include "ringattn/reduce_scatter.h"

/* Weights and shapes: everything a block needs besides its buffers. */
typedef struct {
    const ra_config *cfg;
    const ra_param_layout *lay;
    const float *w; /* parameters [lay->total] */
    int C, H, Hkv, D, F, V, nl, blk;
} ra_net;

/* The shapes of cfg, with weights w laid out as lay. */
void ra_net_init(ra_net *net, const ra_config *cfg, const ra_param_layout *lay, const float *w);
/* Parameter layout of cfg (params.c): offsets 64-byte aligned, total set. */
void ra_param_plan(ra_param_layout *lay, const ra_config *cfg);

/* Saved activations of one layer (for the backward). */
typedef struct {
    float *x_in;  /* [N][C] residual stream entering the layer */
    float *h1;    /* [N][C] rmsnorm(x_in) */
    float *rstd1; /* [N] */
    float *q;     /* [B][H][Lr][D] after RoPE */
    float *k, *v; /* [B][Hkv][Lr][D] (k after RoPE) */
    float *o;     /* [B][H][Lr][D] head output (after the rownorm preconditioner) */
    float *lse;   /* [B][H][Lr] */
    float *x_mid; /* [N][C] after the attention residual */
    float *h2;    /* [N][C] rmsnorm(x_mid) */
    float *rstd2; /* [N] */
} ra_layer_acts;

/* Scratch of the FFN: one block of at most blk tokens. */
typedef struct {
    float *a, *b, *u, *d, *e; /* [blk][F]: a = h W1, b = h W3, u = act(a, b); d, e gradients */
} ra_ffn_scratch;

struct ra_model {
    ra_config cfg;
    ra_net net;
    MPI_Comm comm;
    int P, rank, B;
    int inference;         /* created without gradients and backward scratch */
    ra_model_layer_check layer_check; /* before layers 1.. of a forward (ra_model_set_layer_check) */
    void *layer_check_ctx;
    int64_t L, Lr, N;
    int32_t *pos; /* [Lr] */
    ra_param_layout lay;
    float *params, *grads; /* [total] each */
    ra_head *head[RA_MAX_LAYERS];
    ra_layer_acts act[RA_MAX_LAYERS];
    /* scratch shared by the layers */
    float *x_out;          /* [N][C] final residual stream */
    float *hf, *rstdf;     /* [N][C], [N] final norm */
    int R;                 /* rows per chunk of the LM head and the loss (logit_rows) */
    float *logits;         /* [R][V] one chunk's logits, then its dlogits */
    float *tok_buf;        /* [N][max(H,Hkv)*D] token-major projections */
    float *cat;            /* [N][H*D] head outputs, token-major */
    float *dq, *dk, *dv, *dout; /* head-major gradients */
    float *dx, *dh;        /* [N][C] */
    ra_ffn_scratch ffn;
    void *block;           /* the one allocation behind every buffer above */
    int nreq;              /* slices posted since the last wait */
    int64_t req_t0[RA_MAX_LAYERS + 2], req_bytes[RA_MAX_LAYERS + 2]; /* trace: post time, size */
    int req_layer[RA_MAX_LAYERS + 2];                                /* trace: layer, -1 head, -2 embedding */
    /* gradient sums (ra_model_set_reduction): over gcomm; with shard
     * bounds, reduce-scattered onto the shard owners into gshard; without,
     * all-reduced (reduce_scatter.h: ra_allsum) */
    MPI_Comm gcomm;
    int gP, grank;
    const size_t *shard;   /* [gP + 1] bounds, NULL: all-reduce (replicated) */
    float *gshard;         /* [shard[grank + 1] - shard[grank]] */
    ra_rs rs;              /* sharded, gP > 1: the reduce-scatter onto the shards */
    ra_allsum all;         /* replicated, gP > 1: the all-reduce (set up at the first reduction) */
    int overlap_reduce;    /* train.overlap_reduce: post each layer's reduction as its backward ends */
    double wait;
};

/* ---- blocks (layer.c); forward overwrites outputs, backward accumulates ---- */

/* Attention input: h = rmsnorm(x) [N][C]; q, k, v = h W (+ lambda h for the
 * spectral preconditioner), head-major, RoPE on q and k at positions pos
 * [Lr]. tok_buf [N][max(H,Hkv)*D] is scratch. */
void ra_attn_in_forward(const ra_net *net, int l, int B, int64_t Lr, const int32_t *pos, const float *x,
                        float *h, float *rstd, float *tok_buf, float *q, float *k, float *v);
/* From dq, dk, dv (head-major, overwritten: RoPE undone in place) to dx
 * [N][C] += d(attention input); dh [N][C] is scratch. */
void ra_attn_in_backward(const ra_net *net, float *grads, int l, int B, int64_t Lr, const int32_t *pos,
                         const float *x, const float *h, const float *rstd, float *dq, float *dk,
                         float *dv, float *tok_buf, float *dh, float *dx);

/* Attention output: x_mid [N][C] = x_in + concat(o) Wo; o head-major [B][H][Lr][D];
 * cat [N][H*D] is scratch (the token-major concat). */
void ra_attn_out_forward(const ra_net *net, int l, int B, int64_t Lr, const float *o, const float *x_in,
                         float *cat, float *x_mid);
/* dout (head-major) = d(o) from dy = d(x_mid); dWo += cat^T dy (cat recomputed
 * from o); dcat [N][H*D] is scratch. The residual's dx is the caller's. */
void ra_attn_out_backward(const ra_net *net, float *grads, int l, int B, int64_t Lr, const float *o,
                          const float *dy, float *cat, float *dcat, float *dout);

/* FFN with its residual over N tokens, in blocks of net->blk:
 * h = rmsnorm(x_mid), y = x_mid + ffn(h). */
void ra_ffn_forward(const ra_net *net, int l, int N, const float *x_mid, float *h, float *rstd, float *y,
                    const ra_ffn_scratch *s);
/* dx: d(y) on entry, d(x_mid) on exit (residual included); the inner
 * activations are recomputed block by block. dh [N][C] is scratch. */
void ra_ffn_backward(const ra_net *net, float *grads, int l, int N, const float *x_mid, const float *h,
                     const float *rstd, float *dx, float *dh, const ra_ffn_scratch *s);

/* Final norm: hf [N][C] = rmsnorm(x), rstd [N] kept. Backward: dx [N][C]
 * = d(x) (overwritten) from dh = d(hf) [N][C]. */
void ra_final_norm_forward(const ra_net *net, int N, const float *x, float *hf, float *rstd);
void ra_final_norm_backward(const ra_net *net, float *grads, int N, const float *x, const float *rstd,
                            const float *dh, float *dx);
/* LM head over n rows (a chunk, docs/design.md §7): logits [n][V] = hf [n][C]
 * W_out (E^T when tied). Backward: dh [n][C] += dlogits W_out^T and the head's
 * gradient (the embedding's when tied) += hf^T dlogits. */
void ra_lm_head_forward(const ra_net *net, int n, const float *hf, float *logits);
void ra_lm_head_backward(const ra_net *net, float *grads, int n, const float *hf, const float *dlogits,
                         float *dh);
/* Both forwards over N rows: logits [N][V] (the decoder's one token). */
void ra_logits_forward(const ra_net *net, int N, const float *x, float *hf, float *rstd, float *logits);

#endif
