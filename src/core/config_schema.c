/* config_schema.c - the schema table of every config key, the defaults,
 * and the enum words resolved to C enums (docs/design.md §8.1). See config_schema.h
 * for the map of the config_*.c files.
 *
 * Enum words come from names.h (MPI-free), the one list the head registry
 * and the command line read too; ra_cfg_resolve_ids fills the *_id fields. */
#include "config_schema.h"

#include <limits.h>
#include <stdio.h>
#include <string.h>

_Static_assert(RA_MAX_LAYERS <= 64, "layer_given is a 64-bit mask");

/* The allowed words of every enum key come from names.h. */
#define head_kinds ra_head_words
#define ffn_kinds ra_ffn_words
#define sources ra_source_words
#define token_dtypes ra_token_dtype_words
#define layouts ra_layout_words
#define preconds ra_precond_words
#define precond_grads ra_precond_grad_words
#define embed_inits ra_embed_init_words
#define head_inits ra_head_init_words
#define nonfinite_policies ra_nonfinite_words

const char *const ra_cfg_section_names[] = {"model", "train", "data", "run", "layers", "layer.N"};

/* The _Generic factor fails to compile when a row's type disagrees with
 * the field's declared type. */
#define FIELD(T, f) (((T *)0)->f)
#define SIZE_AS(T, f, ctype) (sizeof FIELD(T, f) * _Generic(FIELD(T, f), ctype: 1))
#define K_INT(S, T, f, lo, hi, d) {S, #f, T_INT, offsetof(T, f), SIZE_AS(T, f, int), lo, hi, 0, NULL, d}
#define K_BOOL(S, T, f, d) {S, #f, T_BOOL, offsetof(T, f), SIZE_AS(T, f, int), 0, 1, 0, NULL, d}
#define K_U64(S, T, f, d) {S, #f, T_U64, offsetof(T, f), SIZE_AS(T, f, uint64_t), 0, 0, 0, NULL, d}
#define K_FLT(S, T, f, lo, hi, fl, d)                                          \
    {S, #f, T_FLOAT, offsetof(T, f), SIZE_AS(T, f, float), lo, hi, fl, NULL, d}
#define K_STR(S, T, f, d) {S, #f, T_STRING, offsetof(T, f), SIZE_AS(T, f, char *), 0, 0, 0, NULL, d}
#define K_ENUM(S, T, f, w, d) {S, #f, T_ENUM, offsetof(T, f), SIZE_AS(T, f, char *), 0, 0, 0, w, d}

#define BIG 1073741824.0 /* 2^30: counts and lengths, far from int overflow */
#define C ra_config
#define LC ra_layer_config

/* [model], [train], [data], [run]: in the order of the canonical text. */
const key_spec ra_cfg_keys[] = {
    K_INT(SEC_MODEL, C, vocab, 2, 262144, "vocabulary size (256: bytes)"),
    K_INT(SEC_MODEL, C, dim, 1, 65536, "model width C"),
    K_INT(SEC_MODEL, C, layers, 1, RA_MAX_LAYERS, "number of transformer layers"),
    K_INT(SEC_MODEL, C, heads, 1, 4096, "query heads H"),
    K_INT(SEC_MODEL, C, kv_heads, 0, 4096, "key/value heads, dividing heads (0: = heads)"),
    K_INT(SEC_MODEL, C, head_dim, 0, 65536, "head width D, even for RoPE (0: dim / heads)"),
    K_ENUM(SEC_MODEL, C, ffn, ffn_kinds, "feed-forward network kind"),
    K_INT(SEC_MODEL, C, ffn_dim, 0, 1 << 20,
          "FFN width F (0: 4*dim for gelu, 8*dim/3 rounded up to a multiple of 8 for swiglu)"),
    K_INT(SEC_MODEL, C, ffn_block, 0, BIG, "tokens per block of the blockwise FFN (0: 256)"),
    K_BOOL(SEC_MODEL, C, tie_embeddings, "output projection shares the embedding matrix"),
    K_FLT(SEC_MODEL, C, rope_theta, 0, 1e12, OPEN_MIN, "RoPE base"),
    K_FLT(SEC_MODEL, C, norm_eps, 0, 1, OPEN_MIN, "RMSNorm epsilon"),
    K_FLT(SEC_MODEL, C, init_std, 0, 10, OPEN_MIN, "standard deviation of the initial weights"),
    K_ENUM(SEC_MODEL, C, embed_init, embed_inits,
           "embedding: random, bitcipher (Bit Cipher codes) or cooc (co-occurrence of codes)"),
    K_ENUM(SEC_MODEL, C, head_init, head_inits,
           "LM head: random, or explicit (closed form from next-token counts; untied)"),
    K_INT(SEC_MODEL, C, warm_bits, 0, 30, "Bit Cipher bits b, at most dim (0: floor(log2 vocab) + 1)"),
    K_INT(SEC_MODEL, C, warm_radius, 1, 4096, "cooc: context tokens counted on either side"),
    K_FLT(SEC_MODEL, C, warm_k, 0, 1e9, 0, "explicit head: scale K (0: mean L1 norm of the features)"),
    K_FLT(SEC_MODEL, C, warm_smooth, 0, 1e9, OPEN_MIN, "explicit head: added to every co-occurrence count"),
    K_INT(SEC_MODEL, C, warm_seqs, 1, BIG, "recall source: training sequences counted (file: all)"),

    K_INT(SEC_TRAIN, C, steps, 1, INT_MAX, "optimizer steps"),
    K_INT(SEC_TRAIN, C, batch, 1, RA_MAX_BATCH, "sequences per optimizer step"),
    K_INT(SEC_TRAIN, C, accum, 1, RA_MAX_BATCH, "micro-batches per step (divides batch)"),
    K_FLT(SEC_TRAIN, C, lr, 0, 10, 0, "peak learning rate"),
    K_FLT(SEC_TRAIN, C, min_lr, 0, 10, 0, "learning rate at the end of the cosine decay (<= lr)"),
    K_INT(SEC_TRAIN, C, warmup, 0, INT_MAX, "steps of linear warm-up (<= steps)"),
    K_FLT(SEC_TRAIN, C, weight_decay, 0, 10, 0, "AdamW decoupled weight decay"),
    K_FLT(SEC_TRAIN, C, beta1, 0, 1, OPEN_MAX, "AdamW decay of the first moment"),
    K_FLT(SEC_TRAIN, C, beta2, 0, 1, OPEN_MAX, "AdamW decay of the second moment"),
    K_FLT(SEC_TRAIN, C, adam_eps, 0, 1, OPEN_MIN, "AdamW epsilon"),
    K_FLT(SEC_TRAIN, C, clip, 0, 1e6, 0, "global gradient-norm clip (0: off)"),
    K_U64(SEC_TRAIN, C, seed, "seed of the initial weights and of the data"),
    K_INT(SEC_TRAIN, C, eval_every, 0, INT_MAX, "steps between evaluations (0: only at the end)"),
    K_INT(SEC_TRAIN, C, eval_batches, 1, 1 << 20, "held-out batches per evaluation"),
    K_INT(SEC_TRAIN, C, checkpoint_every, 0, INT_MAX,
          "steps between checkpoints (0: only at the end)"),
    K_INT(SEC_TRAIN, C, log_every, 1, INT_MAX, "steps between progress lines"),
    K_ENUM(SEC_TRAIN, C, nonfinite, nonfinite_policies,
           "NaN or Inf in the loss or gradients: stop (naming step and layer) or skip the step"),
    K_BOOL(SEC_TRAIN, C, shard_optimizer,
           "AdamW moments sharded over the ranks (ZeRO stage 1: each holds 1/P); false: replicated"),
    K_BOOL(SEC_TRAIN, C, overlap_reduce,
           "sum each layer's gradients over the ranks during the backward of the layers below; false: all in "
           "one reduction after the backward, when the ring no longer needs the link"),

    K_ENUM(SEC_DATA, C, source, sources,
           "recall: generated key-value recall task; file: the bytes of data.path; tokens: the token ids of "
           "data.path"),
    K_STR(SEC_DATA, C, path, "file: any file, read as bytes; tokens: a file of token ids (see data.dtype)"),
    K_ENUM(SEC_DATA, C, dtype, token_dtypes,
           "tokens: auto (a .npy or llm.c header), uint16 or uint32 (a flat little-endian file), npy, llmc"),
    K_STR(SEC_DATA, C, val_path,
          "file, tokens: held-out data in a file of its own, read as data.path is (empty: the tail of data.path)"),
    K_INT(SEC_DATA, C, seq_len, 2, BIG, "sequence length L in tokens"),
    K_FLT(SEC_DATA, C, val_fraction, 0, 1, OPEN_MAX,
          "file, tokens: fraction at the end of data.path held out (unused with data.val_path)"),
    K_INT(SEC_DATA, C, recall_keys, 1, 65536, "recall: distinct keys (at most 8; values: 16)"),
    K_INT(SEC_DATA, C, recall_pairs, 1, BIG, "recall: key-value pairs per sequence"),
    K_INT(SEC_DATA, C, recall_queries, 1, BIG, "recall: queries per sequence, each of a random pair"),

    K_ENUM(SEC_RUN, C, layout, layouts, "which tokens each rank owns"),
    K_INT(SEC_RUN, C, chunk, 0, BIG, "ring chunk in tokens (0: automatic)"),
    K_INT(SEC_RUN, C, threads, 0, 4096, "threads per rank (0: OMP_NUM_THREADS, SLURM_CPUS_PER_TASK, else the rank's cores)"),
    K_INT(SEC_RUN, C, dp, 1, RA_MAX_BATCH,
          "data-parallel groups: the P ranks form dp rings of P/dp ranks, the batch split over them (divides P)"),
    K_FLT(SEC_RUN, C, timeout, 0, 1e6, 0,
          "seconds a rank waits for another before naming it lost and ending the job (0: forever)"),
    K_STR(SEC_RUN, C, checkpoint_dir, "directory for checkpoints"),
    K_STR(SEC_RUN, C, metrics, "JSON-lines metrics file (empty: none)"),
};

/* [layers] and [layer.N]; offsets into ra_layer_config. */
const key_spec ra_cfg_layer_keys[] = {
    K_ENUM(SEC_LAYERS, LC, head, head_kinds, "attention head kind"),
    K_INT(SEC_LAYERS, LC, span, 0, BIG, "combiner-fixed span (0: automatic)"),
    K_INT(SEC_LAYERS, LC, row, 0, BIG, "combiner-axial row length (0: automatic)"),
    K_ENUM(SEC_LAYERS, LC, precond, preconds, "preconditioner of the head output"),
    K_ENUM(SEC_LAYERS, LC, precond_grad, precond_grads,
           "rownorm backward: stop treats the norm as a constant, full differentiates it"),
    K_FLT(SEC_LAYERS, LC, precond_eps, 0, 1, OPEN_MIN, "rownorm: O_i / (||O_i|| + eps)"),
    K_FLT(SEC_LAYERS, LC, precond_lambda, 0, 1e6, 0, "spectral: W_Q, W_K, W_V used as W + lambda*I"),
};

#undef C
#undef LC

const size_t ra_cfg_nkeys = sizeof ra_cfg_keys / sizeof ra_cfg_keys[0];
const size_t ra_cfg_nlayer_keys = sizeof ra_cfg_layer_keys / sizeof ra_cfg_layer_keys[0];
_Static_assert(sizeof ra_cfg_keys / sizeof ra_cfg_keys[0] <= RA_CFG_MAX_KEYS, "raise RA_CFG_MAX_KEYS");
_Static_assert(sizeof ra_cfg_layer_keys / sizeof ra_cfg_layer_keys[0] <= RA_CFG_MAX_LAYER_KEYS,
               "explicit-key masks are 32-bit");

/* ---- defaults -------------------------------------------------------- */

void ra_cfg_layer_defaults(ra_layer_config *l)
{
    memset(l, 0, sizeof *l);
    strcpy(l->head, "full");
    l->span = 0;
    l->row = 0;
    strcpy(l->precond, "none");
    strcpy(l->precond_grad, "stop");
    l->precond_eps = 1e-6f;
    l->precond_lambda = 0.0f;
}


void ra_config_defaults(ra_config *cfg)
{
    memset(cfg, 0, sizeof *cfg); /* padding too: configs are compared with memcmp */
    cfg->vocab = 256;
    cfg->dim = 64;
    cfg->layers = 2;
    cfg->heads = 4;
    cfg->kv_heads = 0;
    cfg->head_dim = 0;
    strcpy(cfg->ffn, "swiglu");
    cfg->ffn_dim = 0;
    cfg->ffn_block = 0;
    cfg->tie_embeddings = 1;
    cfg->rope_theta = 10000.0f;
    cfg->norm_eps = 1e-5f;
    cfg->init_std = 0.02f;
    strcpy(cfg->embed_init, "random");
    strcpy(cfg->head_init, "random");
    cfg->warm_bits = 0;
    cfg->warm_radius = 2;
    cfg->warm_k = 0.0f;
    cfg->warm_smooth = 0.1f;
    cfg->warm_seqs = 512;
    for (int n = 0; n < RA_MAX_LAYERS; n++) ra_cfg_layer_defaults(&cfg->layer[n]);
    cfg->layer_given = 0;

    cfg->steps = 2000;
    cfg->batch = 32;
    cfg->accum = 1;
    cfg->lr = 3e-3f;
    cfg->min_lr = 1e-3f;
    cfg->warmup = 20;
    cfg->weight_decay = 0.01f;
    cfg->beta1 = 0.9f;
    cfg->beta2 = 0.95f;
    cfg->adam_eps = 1e-8f;
    cfg->clip = 1.0f;
    cfg->seed = 1;
    cfg->eval_every = 200;
    cfg->eval_batches = 8;
    cfg->checkpoint_every = 0;
    cfg->log_every = 1;
    strcpy(cfg->nonfinite, "stop");
    cfg->shard_optimizer = 1;

    strcpy(cfg->source, "recall");
    cfg->path[0] = '\0';
    strcpy(cfg->dtype, "auto");
    cfg->val_path[0] = '\0';
    cfg->seq_len = 64;
    cfg->val_fraction = 0.1f;
    cfg->recall_keys = 8;
    cfg->recall_pairs = 4;
    cfg->recall_queries = 8;

    strcpy(cfg->layout, "zigzag");
    cfg->dp = 1;
    cfg->chunk = 0;
    cfg->threads = 0;
    cfg->timeout = 120.0f;
    strcpy(cfg->checkpoint_dir, "checkpoints");
    cfg->metrics[0] = '\0';
    ra_cfg_resolve_ids(cfg);
}

/* The enum words as C enums (finish has refused unknown words; before it,
 * an unknown word resolves to -1 and nothing reads it). */
void ra_cfg_resolve_ids(ra_config *c)
{
    c->ffn_id = (ra_ffn_id)ra_name_find(ra_ffn_words, c->ffn);
    c->embed_init_id = (ra_embed_init_id)ra_name_find(ra_embed_init_words, c->embed_init);
    c->head_init_id = (ra_head_init_id)ra_name_find(ra_head_init_words, c->head_init);
    c->nonfinite_id = (ra_nonfinite_id)ra_name_find(ra_nonfinite_words, c->nonfinite);
    c->source_id = (ra_source_id)ra_name_find(ra_source_words, c->source);
    c->dtype_id = (ra_token_dtype_id)ra_name_find(ra_token_dtype_words, c->dtype);
    c->layout_id = (ra_layout)ra_name_find(ra_layout_words, c->layout);
    for (int n = 0; n < RA_MAX_LAYERS; n++) {
        ra_layer_config *l = &c->layer[n];
        l->head_id = (ra_head_id)ra_name_find(ra_head_words, l->head);
        l->precond_id = (ra_precond_id)ra_name_find(ra_precond_words, l->precond);
        l->precond_grad_id = (ra_precond_grad_id)ra_name_find(ra_precond_grad_words, l->precond_grad);
    }
}


/* ---- lookups --------------------------------------------------------- */

const key_spec *ra_cfg_find_key(int sec, const char *name)
{
    if (sec == SEC_LAYERS || sec == SEC_LAYER) {
        for (size_t i = 0; i < ra_cfg_nlayer_keys; i++)
            if (strcmp(ra_cfg_layer_keys[i].name, name) == 0) return &ra_cfg_layer_keys[i];
        return NULL;
    }
    for (size_t i = 0; i < ra_cfg_nkeys; i++)
        if (ra_cfg_keys[i].sec == sec && strcmp(ra_cfg_keys[i].name, name) == 0) return &ra_cfg_keys[i];
    return NULL;
}

int ra_config_int_range(const char *key, int *lo, int *hi)
{
    const char *dot = strchr(key, '.');
    for (int sec = SEC_MODEL; dot && sec <= SEC_RUN; sec++) {
        if (strncmp(key, ra_cfg_section_names[sec], (size_t)(dot - key)) != 0 ||
            ra_cfg_section_names[sec][dot - key] != '\0')
            continue;
        const key_spec *k = ra_cfg_find_key(sec, dot + 1);
        if (!k || k->type != T_INT) return 0;
        *lo = (int)k->min, *hi = (int)k->max;
        return 1;
    }
    return 0;
}

void ra_cfg_qualify(char *out, size_t cap, int sec, int layer, const char *name)
{
    if (sec == SEC_LAYER)
        snprintf(out, cap, "layer.%d.%s", layer, name);
    else
        snprintf(out, cap, "%s.%s", ra_cfg_section_names[sec], name);
}

bool ra_cfg_in_range(const key_spec *k, double v)
{
    bool lo = (k->flags & OPEN_MIN) ? v > k->min : v >= k->min;
    bool hi = (k->flags & OPEN_MAX) ? v < k->max : v <= k->max;
    return lo && hi;
}

bool ra_cfg_in_words(const char *const *w, const char *s)
{
    for (int i = 0; w[i]; i++)
        if (strcmp(w[i], s) == 0) return true;
    return false;
}
