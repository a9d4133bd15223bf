/* model.h - the decoder-only transformer on the ring (docs/design.md §7).
 *
 * x = embed(tokens); each layer: x += attn(rmsnorm(x)); x += ffn(rmsnorm(x));
 * logits = rmsnorm(x) W_out (W_out = E^T when tied); loss = mean
 * cross-entropy over the counted targets of all ranks, the logits and the
 * loss computed over chunks of rows so that no N x V array is ever held. Attention is the
 * layer's head (heads.h) over this rank's tokens, with RoPE on global
 * positions; the FFN (SwiGLU or GELU) runs over blocks of ffn_block tokens
 * and recomputes its inner activations in the backward, so its memory does
 * not grow with the sequence (Blockwise Parallel Transformer).
 *
 * Parameters are replicated on every rank, stored in one float array whose
 * layout ra_param_layout describes. Gradients are summed over ranks by a
 * non-blocking pairwise reduce-scatter (reduce_scatter.h) onto the shard
 * owners (sharded optimizer states: ra_model_set_reduction) or onto equal
 * parts, then all-gathered (replicated), started after the backward (the ring is then
 * done with the link) or, with train.overlap_reduce, each layer's as soon
 * as its backward is done. Every buffer
 * (parameters, gradients, activations, scratch) is carved from one block
 * planned at creation (plan.h). Decoding token by token: decode.h.
 *
 *     ra_model *m;
 *     RA_TRY(ra_model_create(&m, &cfg, micro_batch, MPI_COMM_WORLD));
 *     ra_model_init(m, cfg.seed);
 *     ra_model_zero_grads(m);
 *     RA_TRY(ra_model_step(m, tok, tgt, 1, 1.0f / total_targets, 1, &bs));
 *     RA_TRY(ra_model_wait_grads(m));           // grads now summed over ranks
 */
#ifndef RINGATTN_MODEL_H
#define RINGATTN_MODEL_H

#include <mpi.h>
#include <stddef.h>
#include <stdint.h>

#include "ringattn/config.h"
#include "ringattn/status.h"

typedef struct {
    size_t attn_norm, wq, wk, wv, wo, ffn_norm, w1, w3, w2; /* offsets; w3 unused for gelu */
    size_t begin, end;                                      /* the layer's slice */
} ra_layer_params;

typedef struct {
    size_t emb;        /* [V][C] */
    size_t final_norm; /* [C] */
    size_t lm_head;    /* [C][V], or == emb when tied */
    ra_layer_params layer[RA_MAX_LAYERS];
    size_t total;
} ra_param_layout;

typedef struct {
    double loss_sum;  /* this rank's sum of -log p over counted targets */
    int64_t count;    /* counted targets on this rank */
    int64_t correct;  /* argmax == target */
    double wait_seconds; /* blocked on ring transfers and gradient reductions */
} ra_batch_stats;

typedef struct ra_model ra_model;

/* micro_batch: sequences per forward/backward call. */
ra_status ra_model_create(ra_model **out, const ra_config *cfg, int micro_batch, MPI_Comm comm);
void ra_model_destroy(ra_model *m);
/* The same model without what only training needs: no gradients (as many
 * floats as the parameters) and no backward scratch, for eval and generate.
 * ra_model_step refuses a backward on it; ra_model_grads is NULL. */
ra_status ra_model_create_inference(ra_model **out, const ra_config *cfg, int micro_batch, MPI_Comm comm);
/* Bytes of the block ra_model_create would allocate on rank `rank` of P
 * (its one plan: parameters, gradients, activations, scratch; not the
 * heads' own buffers), and the parameter count. Pure: no MPI, no
 * allocation of the block (the cost model, costmodel.h, reads it). */
ra_status ra_model_plan_bytes(const ra_config *cfg, int micro_batch, int P, int rank, size_t *bytes,
                              size_t *nparams);
/* The same for ra_model_create_inference when inference is 1. */
ra_status ra_model_plan_bytes_as(const ra_config *cfg, int micro_batch, int P, int rank, int inference,
                                 size_t *bytes, size_t *nparams);

const ra_param_layout *ra_model_layout(const ra_model *m);
float *ra_model_params(ra_model *m);
float *ra_model_grads(ra_model *m);
size_t ra_model_nparams(const ra_model *m);
int64_t ra_model_local_len(const ra_model *m);        /* Lr */
const int32_t *ra_model_positions(const ra_model *m); /* [Lr] global positions */
/* Model FLOPs of one forward+backward over B sequences of length L
 * (6 per parameter-token for the matmuls, attention 3x its forward). */
double ra_model_flops(const ra_model *m, int B);

/* Deterministic initialisation from seed (identical on every rank). */
void ra_model_init(ra_model *m, uint64_t seed);
void ra_model_zero_grads(ra_model *m);

/* One micro-batch: tok, tgt [micro_batch][Lr] (tgt -1: not counted).
 * With backward, gradients += d(grad_scale * loss_sum); with reduce, the
 * gradient reductions over ranks are started during the backward (finish
 * them with ra_model_wait_grads before reading the gradients). */
ra_status ra_model_step(ra_model *m, const int32_t *tok, const int32_t *tgt, int backward,
                        float grad_scale, int reduce, ra_batch_stats *stats);
ra_status ra_model_wait_grads(ra_model *m);

/* A check ra_model_step runs before each layer's forward after the first
 * (NULL: none): a command reads its stop signal there during one long
 * forward (generate's prompt). Its error ends the step; it must be
 * collective when it communicates (every rank runs the same layers). */
typedef ra_status (*ra_model_layer_check)(void *ctx, int layer);
void ra_model_set_layer_check(ra_model *m, ra_model_layer_check check, void *ctx);

/* Where the gradients are summed (default: over the model's comm, every
 * rank getting the whole sum in its gradients). gcomm: all the ranks whose
 * gradients add up (a grid: every rank of every ring). bounds [gP + 1]
 * (NULL: all-reduce, replicated: a reduce-scatter onto equal parts, in
 * place, then an all-gather; its buffers are allocated at the first
 * reduction, so a model that never reduces has none): ZeRO-1, each slice's reduction becomes a
 * reduce-scatter onto the shard owners (reduce_scatter.h), so rank r of gcomm receives
 * only the sum over [bounds[r], bounds[r + 1]) of the parameters, into
 * shard_grads [bounds[r + 1] - bounds[r]] (zeroed here); its own gradient
 * array keeps its local contribution. bounds and shard_grads must outlive the model. */
ra_status ra_model_set_reduction(ra_model *m, MPI_Comm gcomm, const size_t *bounds, float *shard_grads);

/* After a forward: this rank's keys (after RoPE) and values of layer l,
 * [micro_batch][Hkv][Lr][D] - a decoder's KV cache starts from them
 * (ra_decoder_prefill, decode.h). */
void ra_model_kv(const ra_model *m, int l, const float **k, const float **v);

/* Condition number of each layer's head outputs in the last forward (after
 * the preconditioner): kappa[l * H + h] over every row of every sequence of
 * the micro-batch, from Gram matrices summed over the model's ranks.
 * Collective. ra_model_kappa_over sums over comm instead: every rank of a
 * grid (run.dp rings), whose rings each hold a share of the batch. */
ra_status ra_model_kappa(ra_model *m, double *kappa);
ra_status ra_model_kappa_over(ra_model *m, MPI_Comm comm, double *kappa);

/* Logits out [n][V] of this rank's rows row .. row + n - 1 (of the
 * [micro_batch][Lr] rows) in the last ra_model_step, recomputed from the
 * final norm it kept: a step holds only one chunk of logits at a time
 * (docs/design.md §7), so ask for the rows you need. Valid until the next
 * step, with the parameters of that step. */
void ra_model_logits_rows(const ra_model *m, int64_t row, int n, float *out);

#endif
