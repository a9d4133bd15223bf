/* config_check.c - ra_config_finish: every field against its schema row,
 * derived values (kv_heads, head_dim, ffn_dim, ffn_block), consistency
 * between keys, and sizes.
 *
 * Decisions:
 * - finish works on a copy: on error *cfg is unchanged.
 * - It refuses a [layer.N] beyond model.layers, then marks exactly the
 *   layers < model.layers and resets the unused slots to the defaults
 *   ([layers] reaches all RA_MAX_LAYERS), so a finished config equals the
 *   parse of its canonical text byte for byte.
 * - The recall check follows the alphabet of tokens.h (a pair is one byte,
 *   RA_RECALL_PAIR(key, value)): at most RA_RECALL_MAX_KEYS keys, and the
 *   largest pair byte must be in the vocabulary.
 * - Sizes are computed in 64 bits. The model counts its rows (micro-batch
 *   tokens of a rank) and its parameter slices in int, and every rank holds
 *   every parameter; so a micro-batch of more than INT32_MAX tokens, a model
 *   of more than RA_MAX_PARAMS floats or an FFN block of more than INT32_MAX
 *   floats is refused here, naming the keys, instead of overflowing later.
 *   Buffers that depend on the number of ranks are checked when allocated. */
#include "config_schema.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ringattn/tokens.h"

/* Parameters a rank holds: with their gradient and two AdamW moments that
 * is 16 bytes each, 32 GiB at this bound. */
#define RA_MAX_PARAMS INT64_C(2147483647)

/* Every field against its schema row: catches values set by code, not text. */
static ra_status check_field(const key_spec *k, const void *base, int sec, int layer)
{
    char qual[QUAL_MAX], v[RA_PATH_MAX + 8];
    ra_cfg_qualify(qual, sizeof qual, sec, layer, k->name);
    const char *p = (const char *)base + k->offset;
    switch (k->type) {
    case T_INT:
        if (ra_cfg_in_range(k, *(const int *)p)) return RA_OK;
        break;
    case T_FLOAT:
        if (isfinite(*(const float *)p) && ra_cfg_in_range(k, *(const float *)p)) return RA_OK;
        break;
    case T_BOOL:
        if (*(const int *)p == 0 || *(const int *)p == 1) return RA_OK;
        break;
    case T_U64: return RA_OK;
    case T_STRING:
        if (memchr(p, '\0', k->size)) return RA_OK;
        return RA_FAIL(RA_ERR_ARG, "%s is not terminated within its %zu bytes", qual, k->size);
    case T_ENUM:
        if (memchr(p, '\0', k->size) && ra_cfg_in_words(k->words, p)) return RA_OK;
        if (!memchr(p, '\0', k->size))
            return RA_FAIL(RA_ERR_ARG, "%s is not terminated within its %zu bytes", qual, k->size);
        break;
    }
    ra_cfg_format_value(k, base, v, sizeof v);
    return ra_cfg_bad_value("config", qual, k, v, "is not allowed");
}

static ra_status check_ranges(const ra_config *cfg)
{
    for (size_t i = 0; i < ra_cfg_nkeys; i++) RA_TRY(check_field(&ra_cfg_keys[i], cfg, ra_cfg_keys[i].sec, -1));
    for (int n = 0; n < cfg->layers; n++)
        for (size_t i = 0; i < ra_cfg_nlayer_keys; i++)
            RA_TRY(check_field(&ra_cfg_layer_keys[i], &cfg->layer[n], SEC_LAYER, n));
    return RA_OK;
}

static ra_status derive_model(ra_config *c)
{
    if (c->kv_heads == 0) c->kv_heads = c->heads;
    if (c->kv_heads > c->heads || c->heads % c->kv_heads != 0)
        return RA_FAIL(RA_ERR_ARG, "model.heads = %d is not divisible by model.kv_heads = %d", c->heads,
                       c->kv_heads);
    if (c->head_dim == 0) {
        if (c->dim % c->heads != 0)
            return RA_FAIL(RA_ERR_ARG,
                           "model.dim = %d is not divisible by model.heads = %d (or set model.head_dim)",
                           c->dim, c->heads);
        c->head_dim = c->dim / c->heads;
    }
    if (c->head_dim % 2 != 0)
        return RA_FAIL(RA_ERR_ARG, "model.head_dim = %d must be even (RoPE rotates pairs)", c->head_dim);
    if (c->ffn_dim == 0)
        c->ffn_dim = c->ffn_id == RA_FFN_GELU ? 4 * c->dim : (8 * c->dim / 3 + 7) / 8 * 8;
    if (c->ffn_block == 0) c->ffn_block = 256;
    return RA_OK;
}

/* What makes train.batch fit run.dp groups of train.accum micro-batches: a
 * multiple of dp x accum, unless that is beyond train.batch's range. */
static void batch_advice(const ra_config *c, char *out, size_t cap)
{
    const long long need = (long long)c->dp * c->accum;
    if (need > RA_MAX_BATCH)
        snprintf(out, cap, "lower train.accum or run.dp (train.batch must be a multiple of run.dp x train.accum = "
                 "%lld, and is at most %d)", need, RA_MAX_BATCH);
    else if (c->accum > 1)
        snprintf(out, cap, "make train.batch a multiple of run.dp x train.accum = %lld", need);
    else
        snprintf(out, cap, "make train.batch a multiple of run.dp");
}

static ra_status check_train(const ra_config *c)
{
    if (c->batch % c->accum != 0)
        return RA_FAIL(RA_ERR_ARG, "train.batch = %d is not divisible by train.accum = %d", c->batch,
                       c->accum);
    /* each of the dp groups takes batch / dp sequences, in accum micro-batches */
    char advice[200];
    batch_advice(c, advice, sizeof advice);
    if (c->batch % c->dp != 0)
        return RA_FAIL(RA_ERR_ARG, "train.batch = %d is not divisible by run.dp = %d (each data-parallel group "
                       "takes batch / dp sequences): %s", c->batch, c->dp, advice);
    if (c->batch / c->dp % c->accum != 0)
        return RA_FAIL(RA_ERR_ARG, "train.batch / run.dp = %d / %d = %d sequences per group is not divisible by "
                       "train.accum = %d: %s", c->batch, c->dp, c->batch / c->dp, c->accum, advice);
    if (c->min_lr > c->lr)
        return RA_FAIL(RA_ERR_ARG, "train.min_lr = %g is above train.lr = %g", (double)c->min_lr,
                       (double)c->lr);
    if (c->warmup > c->steps)
        return RA_FAIL(RA_ERR_ARG, "train.warmup = %d is more than train.steps = %d", c->warmup,
                       c->steps);
    return RA_OK;
}

static ra_status check_recall_alphabet(const ra_config *c)
{
    if (c->recall_keys > RA_RECALL_MAX_KEYS)
        return RA_FAIL(RA_ERR_ARG,
                       "data.recall_keys = %d: the recall task has at most %d keys (a pair is one byte: "
                       "128 + %d * key + value)", c->recall_keys, RA_RECALL_MAX_KEYS, RA_RECALL_VALUES);
    int32_t top = RA_RECALL_PAIR(c->recall_keys - 1, RA_RECALL_VALUES - 1);
    if (top >= c->vocab)
        return RA_FAIL(RA_ERR_ARG,
                       "model.vocab = %d is too small for the recall task with data.recall_keys = %d: "
                       "its tokens go up to %d, so model.vocab must be >= %d", c->vocab, c->recall_keys,
                       (int)top, (int)top + 1);
    return RA_OK;
}

/* file and tokens: the data file, and a held-out part (the tail of it, or
 * a file of its own). The files themselves are checked when the data is
 * opened (data.h): kind, size, header, the same file twice. */
static ra_status check_files(const ra_config *c)
{
    const char *src = c->source;
    if (!c->path[0]) return RA_FAIL(RA_ERR_ARG, "data.source = %s needs data.path", src);
    if (c->source_id == RA_SOURCE_FILE && c->dtype_id != RA_TOKEN_AUTO)
        return RA_FAIL(RA_ERR_ARG,
                       "data.dtype = %s is for data.source = tokens; data.source = file reads data.path as "
                       "bytes (set data.source = tokens for a file of token ids)", c->dtype);
    if (c->val_path[0]) {
        if (strcmp(c->val_path, c->path) == 0)
            return RA_FAIL(RA_ERR_ARG,
                           "data.val_path = %s is data.path: the held-out data must be another file (or leave "
                           "data.val_path empty to hold out the last data.val_fraction of data.path)",
                           c->val_path);
        return RA_OK;
    }
    if (c->val_fraction <= 0)
        return RA_FAIL(RA_ERR_ARG,
                       "data.source = %s needs data.val_fraction > 0 (the held-out part) or data.val_path; got %g",
                       src, (double)c->val_fraction);
    return RA_OK;
}

static ra_status check_data(const ra_config *c)
{
    if (c->source_id == RA_SOURCE_FILE || c->source_id == RA_SOURCE_TOKENS) return check_files(c);
    const int K = c->recall_keys, N = c->recall_pairs, Q = c->recall_queries;
    if (N > K)
        return RA_FAIL(RA_ERR_ARG,
                       "data.recall_pairs = %d is more than data.recall_keys = %d (keys in a sequence "
                       "are distinct)", N, K);
    const int64_t need = (int64_t)N + 2 * (int64_t)Q + 1; /* 2 * Q overflows int for Q >= 2^30 */
    if (need > c->seq_len)
        return RA_FAIL(RA_ERR_ARG,
                       "data.seq_len = %d is too short for the recall task: data.recall_pairs + "
                       "2 * data.recall_queries + 1 = %d + 2 * %d + 1 = %lld tokens",
                       c->seq_len, N, Q, (long long)need);
    return check_recall_alphabet(c);
}

/* Warm starts need non-negative features (the head takes log counts) and a
 * head of its own; the code's b bits go into the first b of C dimensions. */
static ra_status check_warm(const ra_config *c)
{
    const bool warm_embed = c->embed_init_id != RA_EMBED_INIT_RANDOM;
    const bool explicit_head = c->head_init_id == RA_HEAD_INIT_EXPLICIT;
    if (explicit_head && !warm_embed)
        return RA_FAIL(RA_ERR_ARG, "model.head_init = explicit needs non-negative token features: set "
                                   "model.embed_init = bitcipher or cooc");
    if (explicit_head && c->tie_embeddings)
        return RA_FAIL(RA_ERR_ARG, "model.head_init = explicit sets the LM head apart from the embedding: "
                                   "set model.tie_embeddings = 0");
    if (!warm_embed) return RA_OK;
    const int need = ra_code_bits(c->vocab, 0), b = ra_code_bits(c->vocab, c->warm_bits);
    if (c->warm_bits && c->warm_bits < need)
        return RA_FAIL(RA_ERR_ARG, "model.warm_bits = %d: model.vocab = %d needs at least %d bits",
                       c->warm_bits, c->vocab, need);
    if (b > c->dim)
        return RA_FAIL(RA_ERR_ARG, "model.embed_init = %s puts %d code bits into the embedding, but "
                                   "model.dim = %d", c->embed_init, b, c->dim);
    if (c->vocab > RA_WARM_MAX_VOCAB)
        return RA_FAIL(RA_ERR_ARG, "model.embed_init = %s counts vocab x vocab pairs; model.vocab = %d "
                                   "is above the %d it supports", c->embed_init, c->vocab, RA_WARM_MAX_VOCAB);
    return RA_OK;
}

/* Parameter count as the model lays it out (src/model/model.c): embedding,
 * per layer two norms, W_Q, W_K, W_V, W_O and the FFN, the final norm, and
 * an untied LM head. In 64 bits: every factor is below 2^21. */
static int64_t param_count(const ra_config *c)
{
    const int64_t C = c->dim, V = c->vocab, F = c->ffn_dim;
    const int64_t HD = (int64_t)c->heads * c->head_dim, KD = (int64_t)c->kv_heads * c->head_dim;
    const int64_t ffn = (c->ffn_id == RA_FFN_SWIGLU ? 3 : 2) * C * F;
    const int64_t layer = 2 * C + C * HD + 2 * C * KD + HD * C + ffn;
    return V * C + c->layers * layer + C + (c->tie_embeddings ? 0 : C * V);
}

static ra_status check_sizes(const ra_config *c, int with_data)
{
    const int64_t params = param_count(c);
    if (params > RA_MAX_PARAMS)
        return RA_FAIL(RA_ERR_ARG,
                       "the model has %lld parameters (model.vocab = %d, model.dim = %d, model.layers = %d, "
                       "model.heads = %d, model.kv_heads = %d, model.head_dim = %d, model.ffn_dim = %d); every "
                       "rank holds them all, and at most %lld are supported: make the model smaller",
                       (long long)params, c->vocab, c->dim, c->layers, c->heads, c->kv_heads, c->head_dim,
                       c->ffn_dim, (long long)RA_MAX_PARAMS);
    const int micro = with_data ? c->batch / c->accum : 1; /* without data (generate): one sequence */
    const int64_t tokens = (int64_t)micro * c->seq_len;
    /* a micro-batch holds at least one sequence per data-parallel group */
    char advice[200];
    if ((int64_t)c->dp * c->seq_len > INT32_MAX)
        snprintf(advice, sizeof advice, "with run.dp = %d it holds at least %d sequences (one per data-parallel "
                 "group): shorten data.seq_len to at most %d, or lower run.dp", c->dp, c->dp, INT32_MAX / c->dp);
    else
        snprintf(advice, sizeof advice, "lower train.batch, raise train.accum%s or shorten data.seq_len",
                 c->dp > 1 ? " (train.batch stays a multiple of run.dp x train.accum)" : "");
    if (tokens > INT32_MAX)
        return RA_FAIL(RA_ERR_ARG,
                       "a micro-batch of train.batch / train.accum = %d / %d sequences (every data-parallel "
                       "group's together) of data.seq_len = %d has %lld tokens; at most %d are supported: %s",
                       c->batch, c->accum, c->seq_len, (long long)tokens, (int)INT32_MAX, advice);
    const int64_t block = (int64_t)c->ffn_block * c->ffn_dim;
    if (block > INT32_MAX)
        return RA_FAIL(RA_ERR_ARG,
                       "model.ffn_block = %d tokens of model.ffn_dim = %d make FFN blocks of %lld floats; at "
                       "most %d are supported: lower model.ffn_block",
                       c->ffn_block, c->ffn_dim, (long long)block, (int)INT32_MAX);
    return RA_OK;
}

/* A rank waiting longer than run.timeout asks the others whether they are
 * there and gives them seconds to answer; below a second a healthy job
 * (a rank busy a moment outside its poll loops) was named lost. Not part
 * of ra_config_finish: a checkpoint that stores such a value (older builds
 * took it) must still load, and --set must be able to change it. */
ra_status ra_config_check_run(const ra_config *c, const char *from)
{
    if (c->timeout > 0 && c->timeout < 1)
        return RA_FAIL(RA_ERR_ARG, "run.timeout = %.9g%s%s: give 0 (wait forever) or at least 1 second, e.g. --set "
                       "run.timeout=120 (a rank busy in a step answers the others' checks within seconds, not "
                       "microseconds)", (double)c->timeout, from ? ", from " : "", from ? from : "");
    return RA_OK;
}

static ra_status finish(ra_config *cfg, int with_data)
{
    RA_TRY(check_ranges(cfg));
    if (cfg->layers < RA_MAX_LAYERS && cfg->layer_given >> cfg->layers) {
        int n = 63 - __builtin_clzll(cfg->layer_given); /* the highest: layer_given_at names it */
        if (cfg->layer_given_at[0])
            return RA_FAIL(RA_ERR_ARG, "%s: layer %d is beyond model.layers = %d (layers are 0 to %d): raise "
                           "model.layers or remove it", cfg->layer_given_at, n, cfg->layers, cfg->layers - 1);
        return RA_FAIL(RA_ERR_ARG, "[layer.%d] configures layer %d, but model.layers = %d (layers are 0 to %d)", n,
                       n, cfg->layers, cfg->layers - 1);
    }
    ra_config *c = malloc(sizeof *c);
    if (!c) return RA_FAIL(RA_ERR_NOMEM, "out of memory for the config");
    memcpy(c, cfg, sizeof *c);
    ra_cfg_resolve_ids(c);
    ra_status st = derive_model(c);
    if (st == RA_OK) st = check_train(c);
    if (st == RA_OK && with_data) st = check_data(c);
    if (st == RA_OK) st = check_warm(c);
    if (st == RA_OK) st = check_sizes(c, with_data);
    if (st == RA_OK) {
        for (int n = c->layers; n < RA_MAX_LAYERS; n++) ra_cfg_layer_defaults(&c->layer[n]);
        ra_cfg_resolve_ids(c);
        c->layer_given = c->layers >= 64 ? UINT64_MAX : (UINT64_C(1) << c->layers) - 1;
        memset(c->layer_given_at, 0, sizeof c->layer_given_at);
        memcpy(cfg, c, sizeof *cfg);
    }
    free(c);
    return st;
}

ra_status ra_config_finish(ra_config *cfg) { return finish(cfg, 1); }

ra_status ra_config_finish_model(ra_config *cfg) { return finish(cfg, 0); }
