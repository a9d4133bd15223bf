/* config.c - model and run configuration: defaults, INI parsing, --set
 * overrides, derived values and consistency checks, canonical text (DESIGN §8).
 *
 * Every key is one row of a schema table (section, name, type, offset, range
 * or allowed words, description). The parser, the overrides, the range checks
 * in finish and the canonical text all read that table, so a new key is one
 * row plus its default.
 *
 * Decisions:
 * - [layers] sets a key in every layer; [layer.N] sets it in layer N and wins
 *   over [layers] whatever the order of the sections in one text (the parser
 *   remembers which layer keys each [layer.N] set). Overrides apply in order:
 *   --set layers.KEY=V sets every layer, including ones a [layer.N] set.
 * - A key set twice in one section is an error, also when the section header
 *   appears twice; the message names both lines.
 * - Comments start with # or ; at the start of a line or after whitespace,
 *   so "a#b" is a value. A value may be double-quoted to keep #, ; or outer
 *   spaces; inside quotes \" and \\ are escapes, other backslashes are kept.
 * - Parsing, overrides and finish work on a copy: on error *cfg is unchanged.
 * - layer_given records [layer.N] so that finish, after every override, can
 *   refuse a layer beyond model.layers. finish then marks exactly the layers
 *   < model.layers and resets the unused slots to the defaults ([layers]
 *   reaches all RA_MAX_LAYERS), so a finished config equals the parse of its
 *   canonical text byte for byte.
 * - Floats are written with the fewest digits (at most 9, which always
 *   suffice) that read back to the same float: "0.003", not "0.00300000003".
 * - The recall check follows the alphabet of data.h (a pair is one byte,
 *   RA_RECALL_PAIR(key, value)): at most RA_RECALL_MAX_KEYS keys, and the
 *   largest pair byte must be in the vocabulary.
 * - Enum words come from names.h (MPI-free), the one list the head registry
 *   and the command line read too; finish resolves them to the *_id fields. */
#include "ringattn/config.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "ringattn/cipher.h"
#include "ringattn/data.h"

_Static_assert(RA_MAX_LAYERS <= 64, "layer_given is a 64-bit mask");

#define LINE_MAX_CHARS 4096       /* longer lines are refused, not split */
#define FILE_MAX_BYTES (16 << 20) /* a config is text; this catches wrong files */
#define WHERE_MAX 320             /* "file:line" or "--set 'a=b'" */
#define QUAL_MAX 96               /* "layer.63.precond_lambda" */
#define TEXT_COMMENT_COL 32       /* column of the descriptions in the text */

/* The allowed words of every enum key come from names.h. */
#define head_kinds ra_head_words
#define ffn_kinds ra_ffn_words
#define sources ra_source_words
#define layouts ra_layout_words
#define preconds ra_precond_words
#define precond_grads ra_precond_grad_words
#define embed_inits ra_embed_init_words
#define head_inits ra_head_init_words
#define nonfinite_policies ra_nonfinite_words

/* ---- schema ---------------------------------------------------------- */

typedef enum { T_INT, T_U64, T_FLOAT, T_BOOL, T_STRING, T_ENUM } key_type;

enum { SEC_NONE = -1, SEC_MODEL, SEC_TRAIN, SEC_DATA, SEC_RUN, SEC_LAYERS, SEC_LAYER };
static const char *const section_names[] = {"model", "train", "data", "run", "layers", "layer.N"};

enum { OPEN_MIN = 1, OPEN_MAX = 2 }; /* float bounds excluded from the range */

typedef struct {
    int sec;           /* SEC_MODEL..SEC_RUN; SEC_LAYERS for layer keys */
    const char *name;
    key_type type;
    size_t offset;     /* into ra_config, or ra_layer_config for layer keys */
    size_t size;       /* of the field (strings: capacity with the NUL) */
    double min, max;   /* numbers, inclusive unless flags say otherwise */
    int flags;
    const char *const *words; /* enums */
    const char *desc;
} key_spec;

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
static const key_spec keys[] = {
    K_INT(SEC_MODEL, C, vocab, 2, 65536, "vocabulary size (256: bytes)"),
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
    K_INT(SEC_TRAIN, C, batch, 1, 1 << 20, "sequences per optimizer step"),
    K_INT(SEC_TRAIN, C, accum, 1, 1 << 20, "micro-batches per step (divides batch)"),
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

    K_ENUM(SEC_DATA, C, source, sources,
           "recall: generated key-value recall task; file: the bytes of data.path"),
    K_STR(SEC_DATA, C, path, "file source: any file, read as bytes"),
    K_INT(SEC_DATA, C, seq_len, 2, BIG, "sequence length L in tokens"),
    K_FLT(SEC_DATA, C, val_fraction, 0, 1, OPEN_MAX, "file source: fraction at the end held out"),
    K_INT(SEC_DATA, C, recall_keys, 1, 65536, "recall: distinct keys (at most 8; values: 16)"),
    K_INT(SEC_DATA, C, recall_pairs, 1, BIG, "recall: key-value pairs per sequence"),
    K_INT(SEC_DATA, C, recall_queries, 1, BIG, "recall: queries per sequence, each of a random pair"),

    K_ENUM(SEC_RUN, C, layout, layouts, "which tokens each rank owns"),
    K_INT(SEC_RUN, C, chunk, 0, BIG, "ring chunk in tokens (0: automatic)"),
    K_INT(SEC_RUN, C, threads, 0, 4096, "OpenBLAS threads per rank (0: automatic)"),
    K_FLT(SEC_RUN, C, timeout, 0, 1e6, 0,
          "seconds a rank waits for another before naming it lost and ending the job (0: forever)"),
    K_STR(SEC_RUN, C, checkpoint_dir, "directory for checkpoints"),
    K_STR(SEC_RUN, C, metrics, "JSON-lines metrics file (empty: none)"),
};

/* [layers] and [layer.N]; offsets into ra_layer_config. */
static const key_spec layer_keys[] = {
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

#define NKEYS (sizeof keys / sizeof keys[0])
#define NLAYER_KEYS (sizeof layer_keys / sizeof layer_keys[0])
_Static_assert(NLAYER_KEYS <= 32, "explicit-key masks are 32-bit");

/* ---- defaults -------------------------------------------------------- */

static void layer_defaults(ra_layer_config *l)
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

static void resolve_ids(ra_config *c);

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
    for (int n = 0; n < RA_MAX_LAYERS; n++) layer_defaults(&cfg->layer[n]);
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

    strcpy(cfg->source, "recall");
    cfg->path[0] = '\0';
    cfg->seq_len = 64;
    cfg->val_fraction = 0.1f;
    cfg->recall_keys = 8;
    cfg->recall_pairs = 4;
    cfg->recall_queries = 8;

    strcpy(cfg->layout, "zigzag");
    cfg->chunk = 0;
    cfg->threads = 0;
    cfg->timeout = 120.0f;
    strcpy(cfg->checkpoint_dir, "checkpoints");
    cfg->metrics[0] = '\0';
    resolve_ids(cfg);
}

/* ---- schema helpers -------------------------------------------------- */

static bool is_blank(char ch) { return ch == ' ' || ch == '\t' || ch == '\r' || ch == '\n'; }

static char *trim(char *s)
{
    while (is_blank(*s)) s++;
    size_t n = strlen(s);
    while (n > 0 && is_blank(s[n - 1])) s[--n] = '\0';
    return s;
}

static const key_spec *find_key(int sec, const char *name)
{
    if (sec == SEC_LAYERS || sec == SEC_LAYER) {
        for (size_t i = 0; i < NLAYER_KEYS; i++)
            if (strcmp(layer_keys[i].name, name) == 0) return &layer_keys[i];
        return NULL;
    }
    for (size_t i = 0; i < NKEYS; i++)
        if (keys[i].sec == sec && strcmp(keys[i].name, name) == 0) return &keys[i];
    return NULL;
}

/* "model.dim", "layers.head", "layer.3.head" */
static void qualify(char *out, size_t cap, int sec, int layer, const char *name)
{
    if (sec == SEC_LAYER)
        snprintf(out, cap, "layer.%d.%s", layer, name);
    else
        snprintf(out, cap, "%s.%s", section_names[sec], name);
}

static void join_words(char *out, size_t cap, const char *const *w)
{
    size_t at = 0;
    out[0] = '\0';
    for (int i = 0; w[i] && at < cap; i++)
        at += (size_t)snprintf(out + at, cap - at, "%s%s", i ? ", " : "", w[i]);
}

/* What a key accepts, for messages and the key table. */
static void describe_allowed(const key_spec *k, char *out, size_t cap)
{
    switch (k->type) {
    case T_INT: snprintf(out, cap, "%.0f to %.0f", k->min, k->max); return;
    case T_U64: snprintf(out, cap, "0 to %" PRIu64, UINT64_MAX); return;
    case T_FLOAT:
        snprintf(out, cap, "%c%g, %g%c", (k->flags & OPEN_MIN) ? '(' : '[', k->min, k->max,
                 (k->flags & OPEN_MAX) ? ')' : ']');
        return;
    case T_BOOL: snprintf(out, cap, "true, false, yes, no, 1, 0"); return;
    case T_STRING: snprintf(out, cap, "text of at most %zu bytes", k->size - 1); return;
    case T_ENUM: join_words(out, cap, k->words); return;
    }
    snprintf(out, cap, "?");
}

static bool in_range(const key_spec *k, double v)
{
    bool lo = (k->flags & OPEN_MIN) ? v > k->min : v >= k->min;
    bool hi = (k->flags & OPEN_MAX) ? v < k->max : v <= k->max;
    return lo && hi;
}

static bool in_words(const char *const *w, const char *s)
{
    for (int i = 0; w[i]; i++)
        if (strcmp(w[i], s) == 0) return true;
    return false;
}

/* Shortest %.Ng (N <= 9) that reads back as the same float; whole numbers
 * below 1e9 without an exponent ("10000", not "1e+04"). */
static void format_float(char *out, size_t cap, float f)
{
    if (f > -1e9f && f < 1e9f && (float)(int64_t)f == f) { /* NaN fails the range */
        snprintf(out, cap, "%.0f", (double)f);
        return;
    }
    for (int digits = 1; digits <= 9; digits++) {
        snprintf(out, cap, "%.*g", digits, (double)f);
        if (strtof(out, NULL) == f) return;
    }
    snprintf(out, cap, "%.9g", (double)f);
}

/* Strings are quoted when a bare value would not read back the same. */
static bool needs_quotes(const char *s)
{
    size_t n = strlen(s);
    return n == 0 || s[0] == '"' || is_blank(s[0]) || is_blank(s[n - 1]) ||
           strpbrk(s, "#;") != NULL;
}

/* The value as the canonical text writes it. */
static void format_value(const key_spec *k, const void *base, char *out, size_t cap)
{
    const char *p = (const char *)base + k->offset;
    switch (k->type) {
    case T_INT: snprintf(out, cap, "%d", *(const int *)p); return;
    case T_U64: snprintf(out, cap, "%" PRIu64, *(const uint64_t *)p); return;
    case T_FLOAT: format_float(out, cap, *(const float *)p); return;
    case T_BOOL: snprintf(out, cap, "%s", *(const int *)p ? "true" : "false"); return;
    case T_ENUM: snprintf(out, cap, "%s", p); return;
    case T_STRING:
        if (!needs_quotes(p)) {
            snprintf(out, cap, "%s", p);
            return;
        }
        size_t at = 0;
        if (cap < 3) return;
        out[at++] = '"';
        for (; *p && at + 3 < cap; p++) {
            if (*p == '"' || *p == '\\') out[at++] = '\\';
            out[at++] = *p;
        }
        out[at++] = '"';
        out[at] = '\0';
        return;
    }
}

/* ---- values ---------------------------------------------------------- */

static ra_status bad_value(const char *where, const char *qual, const key_spec *k, const char *v,
                           const char *problem)
{
    char allowed[256];
    describe_allowed(k, allowed, sizeof allowed);
    return RA_FAIL(RA_ERR_ARG, "%s: %s = '%.200s' %s (allowed: %s%s)", where, qual, v, problem,
                   k->type == T_FLOAT ? "a number in " : "", allowed);
}

static ra_status parse_int(const char *where, const char *qual, const key_spec *k, const char *v,
                           int *out)
{
    char *end;
    errno = 0;
    long long x = strtoll(v, &end, 10);
    if (end == v || *end != '\0') return bad_value(where, qual, k, v, "is not an integer");
    if (errno == ERANGE || !in_range(k, (double)x)) return bad_value(where, qual, k, v, "is out of range");
    *out = (int)x;
    return RA_OK;
}

static ra_status parse_u64(const char *where, const char *qual, const key_spec *k, const char *v,
                           uint64_t *out)
{
    char *end;
    errno = 0;
    unsigned long long x = strtoull(v, &end, 10);
    /* strtoull would wrap "-1" around */
    if (end == v || *end != '\0' || strchr(v, '-'))
        return bad_value(where, qual, k, v, "is not a non-negative integer");
    if (errno == ERANGE) return bad_value(where, qual, k, v, "is out of range");
    *out = (uint64_t)x;
    return RA_OK;
}

static ra_status parse_float(const char *where, const char *qual, const key_spec *k, const char *v,
                             float *out)
{
    char *end;
    float x = strtof(v, &end); /* strtof, not strtod: no double rounding */
    if (end == v || *end != '\0') return bad_value(where, qual, k, v, "is not a number");
    if (!isfinite(x) || !in_range(k, x)) return bad_value(where, qual, k, v, "is out of range");
    *out = x;
    return RA_OK;
}

static ra_status parse_bool(const char *where, const char *qual, const key_spec *k, const char *v,
                            int *out)
{
    static const char *const yes[] = {"true", "yes", "1"}, *const no[] = {"false", "no", "0"};
    for (int i = 0; i < 3; i++) {
        if (strcasecmp(v, yes[i]) == 0) return *out = 1, RA_OK;
        if (strcasecmp(v, no[i]) == 0) return *out = 0, RA_OK;
    }
    return bad_value(where, qual, k, v, "is not a boolean");
}

static ra_status parse_string(const char *where, const char *qual, const key_spec *k, const char *v,
                              char *out)
{
    size_t n = strlen(v);
    if (n >= k->size)
        return RA_FAIL(RA_ERR_ARG, "%s: %s is %zu bytes long; at most %zu are allowed", where, qual,
                       n, k->size - 1);
    for (const char *c = v; *c; c++)
        if ((unsigned char)*c < 0x20 && *c != '\t')
            return RA_FAIL(RA_ERR_ARG, "%s: %s contains control character 0x%02x", where, qual,
                           (unsigned)(unsigned char)*c);
    strncpy(out, v, k->size); /* zero the tail: no stale bytes of a longer old value (memcmp) */
    return RA_OK;
}

/* Parse v and store it in the field of k inside base. */
static ra_status set_field(const key_spec *k, void *base, const char *v, const char *where,
                           const char *qual)
{
    char *p = (char *)base + k->offset;
    switch (k->type) {
    case T_INT: return parse_int(where, qual, k, v, (int *)p);
    case T_U64: return parse_u64(where, qual, k, v, (uint64_t *)p);
    case T_FLOAT: return parse_float(where, qual, k, v, (float *)p);
    case T_BOOL: return parse_bool(where, qual, k, v, (int *)p);
    case T_STRING: return parse_string(where, qual, k, v, p);
    case T_ENUM:
        if (!in_words(k->words, v)) return bad_value(where, qual, k, v, "is not allowed");
        strncpy(p, v, k->size); /* every word fits: RA_NAME_MAX; zero the tail, as strings */
        return RA_OK;
    }
    return RA_FAIL(RA_ERR_INTERNAL, "%s: %s has no type", where, qual);
}

/* Store one key. [layers] skips the layers whose key a [layer.N] of the same
 * text set (explicit, NULL outside a parse). */
static ra_status apply(ra_config *cfg, int sec, int layer, const key_spec *k, const char *v,
                       const char *where, uint32_t *explicit)
{
    char qual[QUAL_MAX];
    qualify(qual, sizeof qual, sec, layer, k->name);
    if (sec != SEC_LAYERS && sec != SEC_LAYER) return set_field(k, cfg, v, where, qual);
    uint32_t bit = UINT32_C(1) << (k - layer_keys);
    if (sec == SEC_LAYERS) {
        ra_layer_config one;
        layer_defaults(&one);
        RA_TRY(set_field(k, &one, v, where, qual));
        for (int n = 0; n < RA_MAX_LAYERS; n++) {
            if (explicit && (explicit[n] & bit)) continue;
            memcpy((char *)&cfg->layer[n] + k->offset, (char *)&one + k->offset, k->size);
        }
        return RA_OK;
    }
    RA_TRY(set_field(k, &cfg->layer[layer], v, where, qual));
    if (explicit) explicit[layer] |= bit;
    cfg->layer_given |= UINT64_C(1) << layer;
    return RA_OK;
}

/* ---- names: sections and suggestions --------------------------------- */

/* 1: known, 0: unknown, -1: "layer.N" with N out of range (*layer = N or -1). */
static int find_section(const char *name, int *sec, int *layer)
{
    *layer = -1;
    for (int s = SEC_MODEL; s <= SEC_LAYERS; s++)
        if (strcmp(name, section_names[s]) == 0) return *sec = s, 1;
    if (strncmp(name, "layer.", 6) != 0) return 0;
    const char *d = name + 6;
    if (*d < '0' || *d > '9' || strlen(d) > 9) return 0;
    for (const char *c = d; *c; c++)
        if (*c < '0' || *c > '9') return 0;
    long n = strtol(d, NULL, 10);
    *sec = SEC_LAYER;
    *layer = (int)n;
    return n < RA_MAX_LAYERS ? 1 : -1;
}

/* Edit distance, for "did you mean"; names longer than 63 are never close. */
static int distance(const char *a, const char *b)
{
    size_t na = strlen(a), nb = strlen(b);
    if (na > 63 || nb > 63) return 99;
    int row[64];
    for (size_t j = 0; j <= nb; j++) row[j] = (int)j;
    for (size_t i = 1; i <= na; i++) {
        int diag = row[0];
        row[0] = (int)i;
        for (size_t j = 1; j <= nb; j++) {
            int up = row[j];
            int best = diag + (a[i - 1] != b[j - 1]);
            if (up + 1 < best) best = up + 1;
            if (row[j - 1] + 1 < best) best = row[j - 1] + 1;
            row[j] = best;
            diag = up;
        }
    }
    return row[nb];
}

/* Close enough to suggest: at most 2 edits, and fewer than half the name
 * (so "foo" does not suggest "row"). */
static bool close_to(const char *typed, const char *known, int *best)
{
    int d = distance(typed, known);
    if (d > 2 || 2 * d >= (int)strlen(typed) || d >= *best) return false;
    *best = d;
    return true;
}

/* A hint for an unknown key in section sec: where the key does live, the
 * closest key of the section, or the section's keys. */
static void key_hint(char *out, size_t cap, int sec, const char *name)
{
    bool layered = sec == SEC_LAYERS || sec == SEC_LAYER;
    if (!layered && find_key(SEC_LAYERS, name)) {
        snprintf(out, cap, "'%s' is a layer key: put it in [layers] or [layer.N]", name);
        return;
    }
    for (int s = SEC_MODEL; s <= SEC_RUN; s++)
        if (s != sec && find_key(s, name)) {
            snprintf(out, cap, "'%s' belongs in [%s]", name, section_names[s]);
            return;
        }
    const key_spec *best = NULL;
    int bestd = INT_MAX;
    size_t at = 0;
    out[0] = '\0';
    for (size_t i = 0; i < (layered ? NLAYER_KEYS : NKEYS); i++) {
        const key_spec *k = layered ? &layer_keys[i] : &keys[i];
        if (!layered && k->sec != sec) continue;
        if (close_to(name, k->name, &bestd)) best = k;
        if (at < cap) at += (size_t)snprintf(out + at, cap - at, "%s%s", at ? ", " : "keys: ", k->name);
    }
    if (best) snprintf(out, cap, "did you mean '%s'?", best->name);
}

static ra_status unknown_key(const char *where, int sec, int layer, const char *name)
{
    char hint[400];
    key_hint(hint, sizeof hint, sec, name);
    if (sec == SEC_LAYER)
        return RA_FAIL(RA_ERR_ARG, "%s: unknown key '%.100s' in [layer.%d]; %s", where, name, layer, hint);
    return RA_FAIL(RA_ERR_ARG, "%s: unknown key '%.100s' in [%s]; %s", where, name, section_names[sec],
                   hint);
}

static ra_status unknown_section(const char *where, const char *name, int found, int layer)
{
    if (found < 0)
        return RA_FAIL(RA_ERR_ARG, "%s: unknown section [%.100s]: layers are numbered 0 to %d (got %d)",
                       where, name, RA_MAX_LAYERS - 1, layer);
    const char *best = NULL;
    int bestd = INT_MAX;
    for (int s = SEC_MODEL; s <= SEC_LAYERS; s++)
        if (close_to(name, section_names[s], &bestd)) best = section_names[s];
    if (!best && strncmp(name, "layer", 5) == 0) best = "layer.N";
    char hint[64] = "";
    if (best) snprintf(hint, sizeof hint, "did you mean [%s]? ", best);
    return RA_FAIL(RA_ERR_ARG,
                   "%s: unknown section [%.100s]; %ssections: model, layers, layer.N (N = 0 to %d), "
                   "train, data, run",
                   where, name, hint, RA_MAX_LAYERS - 1);
}

/* ---- INI text -------------------------------------------------------- */

typedef struct {
    ra_config *cfg;
    int line;
    char where[WHERE_MAX];
    int sec, layer;                                /* current section */
    int line_of[NKEYS];                            /* where each key was set, 0: not yet */
    int layer_line_of[RA_MAX_LAYERS + 1][NLAYER_KEYS]; /* [RA_MAX_LAYERS]: [layers] */
    uint32_t explicit[RA_MAX_LAYERS];              /* bit k: [layer.N] set layer_keys[k] */
} parser;

static bool comment_start(char ch) { return ch == '#' || ch == ';'; }

/* "[name]" possibly followed by a comment. */
static ra_status parse_header(parser *p, char *t)
{
    char *close = strchr(t, ']');
    if (!close)
        return RA_FAIL(RA_ERR_ARG, "%s: section header '%.100s' has no closing ']'", p->where, t);
    *close = '\0';
    char *rest = trim(close + 1), *name = trim(t + 1);
    if (*rest && !comment_start(*rest))
        return RA_FAIL(RA_ERR_ARG, "%s: unexpected '%.100s' after section header [%.100s]", p->where,
                       rest, name);
    int found = find_section(name, &p->sec, &p->layer);
    if (found != 1) {
        p->sec = SEC_NONE;
        return unknown_section(p->where, name, found, p->layer);
    }
    if (p->sec == SEC_LAYER) p->cfg->layer_given |= UINT64_C(1) << p->layer;
    return RA_OK;
}

/* The value after '=', unquoted and without its comment; edits v in place.
 * blank_before: whitespace precedes v (so a leading '#' starts a comment). */
static ra_status parse_value(const parser *p, const char *qual, char *v, bool blank_before,
                             char **out)
{
    if (*v != '"') {
        for (char *c = v; *c; c++)
            if (comment_start(*c) && (c > v ? is_blank(c[-1]) : blank_before)) {
                *c = '\0';
                break;
            }
        *out = trim(v);
        return RA_OK;
    }
    char *w = v, *r = v + 1;
    for (;; r++) {
        if (*r == '\0')
            return RA_FAIL(RA_ERR_ARG, "%s: %s: unterminated quote (the value needs a closing \")",
                           p->where, qual);
        if (*r == '\\' && (r[1] == '"' || r[1] == '\\')) {
            *w++ = *++r;
            continue;
        }
        if (*r == '"') break;
        *w++ = *r;
    }
    *w = '\0';
    char *rest = trim(r + 1);
    if (*rest && !comment_start(*rest))
        return RA_FAIL(RA_ERR_ARG, "%s: %s: unexpected '%.100s' after the closing quote", p->where,
                       qual, rest);
    *out = v;
    return RA_OK;
}

/* Refuse a key set twice in one section; remember where it was set. */
static ra_status check_duplicate(parser *p, const key_spec *k, const char *key)
{
    int *slot;
    if (p->sec == SEC_LAYERS || p->sec == SEC_LAYER)
        slot = &p->layer_line_of[p->sec == SEC_LAYERS ? RA_MAX_LAYERS : p->layer][k - layer_keys];
    else
        slot = &p->line_of[k - keys];
    if (*slot) {
        char qual[QUAL_MAX];
        qualify(qual, sizeof qual, p->sec, p->layer, key);
        return RA_FAIL(RA_ERR_ARG, "%s: %s is set twice (first at line %d); remove one", p->where, qual,
                       *slot);
    }
    *slot = p->line;
    return RA_OK;
}

static ra_status parse_assignment(parser *p, char *t)
{
    char *eq = strchr(t, '=');
    for (char *c = t + 1; *c && (!eq || c < eq); c++) /* a comment before '=' hides it */
        if (comment_start(*c) && is_blank(c[-1])) {
            *c = '\0';
            eq = NULL;
            break;
        }
    if (!eq)
        return RA_FAIL(RA_ERR_ARG, "%s: missing '=' in '%.100s' (expected key = value)", p->where,
                       trim(t));
    *eq = '\0';
    char *key = trim(t);
    if (!*key)
        return RA_FAIL(RA_ERR_ARG, "%s: empty key before '=' (expected key = value)", p->where);
    if (p->sec == SEC_NONE)
        return RA_FAIL(RA_ERR_ARG, "%s: key '%.100s' comes before any [section]", p->where, key);
    const key_spec *k = find_key(p->sec, key);
    if (!k) return unknown_key(p->where, p->sec, p->layer, key);
    RA_TRY(check_duplicate(p, k, key));
    char qual[QUAL_MAX], *v = eq + 1, *value = NULL;
    qualify(qual, sizeof qual, p->sec, p->layer, k->name);
    bool blank_before = is_blank(*v);
    while (is_blank(*v)) v++;
    RA_TRY(parse_value(p, qual, v, blank_before, &value));
    return apply(p->cfg, p->sec, p->layer, k, value, p->where, p->explicit);
}

static ra_status parse_line(parser *p, char *buf)
{
    char *t = trim(buf);
    if (!*t || comment_start(*t)) return RA_OK;
    if (*t == '[') return parse_header(p, t);
    return parse_assignment(p, t);
}

static ra_status parse_into(ra_config *cfg, const char *text, const char *name)
{
    parser *p = calloc(1, sizeof *p);
    char *buf = malloc(LINE_MAX_CHARS + 1);
    ra_status st = RA_OK;
    if (!p || !buf) {
        st = RA_FAIL(RA_ERR_NOMEM, "%s: out of memory for the config parser", name);
        goto done;
    }
    p->cfg = cfg;
    p->sec = SEC_NONE;
    for (const char *s = text; *s && st == RA_OK;) {
        const char *nl = strchr(s, '\n');
        size_t n = nl ? (size_t)(nl - s) : strlen(s);
        size_t m = n > 0 && s[n - 1] == '\r' ? n - 1 : n;
        p->line++;
        snprintf(p->where, sizeof p->where, "%.250s:%d", name, p->line);
        if (m > LINE_MAX_CHARS) {
            st = RA_FAIL(RA_ERR_ARG, "%s: line is %zu characters long (at most %d); it starts '%.40s'",
                         p->where, m, LINE_MAX_CHARS, s);
            break;
        }
        memcpy(buf, s, m);
        buf[m] = '\0';
        st = parse_line(p, buf);
        s += nl ? n + 1 : n;
    }
done:
    free(buf);
    free(p);
    return st;
}

ra_status ra_config_parse(ra_config *cfg, const char *text, const char *name)
{
    ra_config *tmp = malloc(sizeof *tmp);
    if (!tmp) return RA_FAIL(RA_ERR_NOMEM, "%s: out of memory for the config", name);
    memcpy(tmp, cfg, sizeof *tmp); /* memcpy keeps the padding bytes too */
    ra_status st = parse_into(tmp, text, name);
    if (st == RA_OK) resolve_ids(tmp), memcpy(cfg, tmp, sizeof *cfg);
    free(tmp);
    return st;
}

/* Whole file as a NUL-terminated string; refuses NUL bytes (not text). */
static ra_status read_text(const char *path, char **out)
{
    *out = NULL;
    FILE *fp = fopen(path, "rb");
    if (!fp) return RA_FAIL(RA_ERR_IO, "cannot open config %s: %s", path, strerror(errno));
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap + 1);
    ra_status st = RA_OK;
    while (buf) {
        n += fread(buf + n, 1, cap - n, fp);
        if (ferror(fp)) {
            st = RA_FAIL(RA_ERR_IO, "cannot read config %s: %s", path, strerror(errno));
            break;
        }
        if (n < cap) break; /* end of file */
        if (cap >= FILE_MAX_BYTES) {
            st = RA_FAIL(RA_ERR_FORMAT, "config %s is larger than %d bytes; is it really a config?",
                         path, FILE_MAX_BYTES);
            break;
        }
        char *grown = realloc(buf, cap * 2 + 1);
        if (!grown) free(buf);
        buf = grown;
        cap *= 2;
    }
    fclose(fp);
    if (!buf) return RA_FAIL(RA_ERR_NOMEM, "out of memory reading config %s", path);
    if (st == RA_OK && memchr(buf, '\0', n)) {
        int line = 1;
        for (const char *c = buf; *c; c++) line += *c == '\n';
        st = RA_FAIL(RA_ERR_FORMAT, "%s:%d: contains a NUL byte; a config is text", path, line);
    }
    if (st != RA_OK) {
        free(buf);
        return st;
    }
    buf[n] = '\0';
    *out = buf;
    return RA_OK;
}

ra_status ra_config_load(ra_config *cfg, const char *path)
{
    char *text;
    RA_TRY(read_text(path, &text));
    ra_config *tmp = malloc(sizeof *tmp);
    if (!tmp) {
        free(text);
        return RA_FAIL(RA_ERR_NOMEM, "out of memory for the config of %s", path);
    }
    ra_config_defaults(tmp);
    ra_status st = parse_into(tmp, text, path);
    if (st == RA_OK) resolve_ids(tmp), memcpy(cfg, tmp, sizeof *cfg);
    free(tmp);
    free(text);
    return st;
}

/* ---- overrides ------------------------------------------------------- */

/* Split "sec.key" at the last dot; known section, known key. */
static ra_status resolve_override(const char *where, char *lhs, int *sec, int *layer,
                                  const key_spec **k)
{
    char *dot = strrchr(lhs, '.');
    if (!dot || dot == lhs) {
        char hint[160] = "";
        for (int s = SEC_MODEL; s <= SEC_LAYERS; s++)
            if (find_key(s, lhs)) {
                snprintf(hint, sizeof hint, "; did you mean %s.%s?", section_names[s], lhs);
                break;
            }
        return RA_FAIL(RA_ERR_ARG,
                       "%s: '%.100s' names no section (expected section.key=value, e.g. model.dim=64)%s",
                       where, lhs, hint);
    }
    *dot = '\0';
    const char *name = dot + 1;
    int found = find_section(lhs, sec, layer);
    if (found != 1) return unknown_section(where, lhs, found, *layer);
    if (!(*k = find_key(*sec, name))) return unknown_key(where, *sec, *layer, name);
    return RA_OK;
}

ra_status ra_config_set(ra_config *cfg, const char *assignment, const char *origin)
{
    char where[WHERE_MAX];
    snprintf(where, sizeof where, "%.60s '%.200s'", origin, assignment);
    size_t n = strlen(assignment);
    if (n > LINE_MAX_CHARS)
        return RA_FAIL(RA_ERR_ARG, "%s: longer than %d characters", where, LINE_MAX_CHARS);
    char buf[LINE_MAX_CHARS + 1];
    memcpy(buf, assignment, n + 1);
    char *eq = strchr(buf, '=');
    if (!eq) return RA_FAIL(RA_ERR_ARG, "%s: missing '=' (expected section.key=value)", where);
    *eq = '\0';
    char *lhs = trim(buf), *v = trim(eq + 1);
    if (!*lhs) return RA_FAIL(RA_ERR_ARG, "%s: empty key before '=' (expected section.key=value)", where);
    int sec, layer;
    const key_spec *k;
    RA_TRY(resolve_override(where, lhs, &sec, &layer, &k));
    if (*v == '"') { /* the same quoting as in files, so shell-quoted values work */
        size_t m = strlen(v);
        char qual[QUAL_MAX];
        qualify(qual, sizeof qual, sec, layer, k->name);
        if (m < 2 || v[m - 1] != '"')
            return RA_FAIL(RA_ERR_ARG, "%s: %s: unterminated quote (the value needs a closing \")",
                           where, qual);
        v[m - 1] = '\0';
        v++;
        char *w = v;
        for (char *r = v; *r; r++) {
            if (*r == '\\' && (r[1] == '"' || r[1] == '\\')) r++;
            *w++ = *r;
        }
        *w = '\0';
    }
    ra_config *tmp = malloc(sizeof *tmp);
    if (!tmp) return RA_FAIL(RA_ERR_NOMEM, "%s: out of memory", where);
    memcpy(tmp, cfg, sizeof *tmp);
    ra_status st = apply(tmp, sec, layer, k, v, where, NULL);
    if (st == RA_OK) resolve_ids(tmp), memcpy(cfg, tmp, sizeof *cfg);
    free(tmp);
    return st;
}

/* ---- derived values and consistency ----------------------------------- */

/* Every field against its schema row: catches values set by code, not text. */
static ra_status check_field(const key_spec *k, const void *base, int sec, int layer)
{
    char qual[QUAL_MAX], v[RA_PATH_MAX + 8];
    qualify(qual, sizeof qual, sec, layer, k->name);
    const char *p = (const char *)base + k->offset;
    switch (k->type) {
    case T_INT:
        if (in_range(k, *(const int *)p)) return RA_OK;
        break;
    case T_FLOAT:
        if (isfinite(*(const float *)p) && in_range(k, *(const float *)p)) return RA_OK;
        break;
    case T_BOOL:
        if (*(const int *)p == 0 || *(const int *)p == 1) return RA_OK;
        break;
    case T_U64: return RA_OK;
    case T_STRING:
        if (memchr(p, '\0', k->size)) return RA_OK;
        return RA_FAIL(RA_ERR_ARG, "%s is not terminated within its %zu bytes", qual, k->size);
    case T_ENUM:
        if (memchr(p, '\0', k->size) && in_words(k->words, p)) return RA_OK;
        if (!memchr(p, '\0', k->size))
            return RA_FAIL(RA_ERR_ARG, "%s is not terminated within its %zu bytes", qual, k->size);
        break;
    }
    format_value(k, base, v, sizeof v);
    return bad_value("config", qual, k, v, "is not allowed");
}

static ra_status check_ranges(const ra_config *cfg)
{
    for (size_t i = 0; i < NKEYS; i++) RA_TRY(check_field(&keys[i], cfg, keys[i].sec, -1));
    for (int n = 0; n < cfg->layers; n++)
        for (size_t i = 0; i < NLAYER_KEYS; i++)
            RA_TRY(check_field(&layer_keys[i], &cfg->layer[n], SEC_LAYER, n));
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

static ra_status check_train(const ra_config *c)
{
    if (c->batch % c->accum != 0)
        return RA_FAIL(RA_ERR_ARG, "train.batch = %d is not divisible by train.accum = %d", c->batch,
                       c->accum);
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

static ra_status check_data(const ra_config *c)
{
    if (c->source_id == RA_SOURCE_FILE) {
        if (!c->path[0]) return RA_FAIL(RA_ERR_ARG, "data.source = file needs data.path");
        if (c->val_fraction <= 0)
            return RA_FAIL(RA_ERR_ARG,
                           "data.source = file needs data.val_fraction > 0 (the held-out part); got %g",
                           (double)c->val_fraction);
        return RA_OK;
    }
    const int K = c->recall_keys, N = c->recall_pairs, Q = c->recall_queries;
    if (N > K)
        return RA_FAIL(RA_ERR_ARG,
                       "data.recall_pairs = %d is more than data.recall_keys = %d (keys in a sequence "
                       "are distinct)", N, K);
    if ((int64_t)N + 2 * Q + 1 > c->seq_len)
        return RA_FAIL(RA_ERR_ARG,
                       "data.seq_len = %d is too short for the recall task: recall_pairs + "
                       "2*recall_queries + 1 = %lld tokens", c->seq_len, (long long)N + 2 * Q + 1);
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
    const int need = ra_cipher_bits(c->vocab, 0), b = ra_cipher_bits(c->vocab, c->warm_bits);
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

/* The enum words as C enums (check_ranges has refused unknown words). */
static void resolve_ids(ra_config *c)
{
    c->ffn_id = (ra_ffn_id)ra_name_find(ra_ffn_words, c->ffn);
    c->embed_init_id = (ra_embed_init_id)ra_name_find(ra_embed_init_words, c->embed_init);
    c->head_init_id = (ra_head_init_id)ra_name_find(ra_head_init_words, c->head_init);
    c->nonfinite_id = (ra_nonfinite_id)ra_name_find(ra_nonfinite_words, c->nonfinite);
    c->source_id = (ra_source_id)ra_name_find(ra_source_words, c->source);
    c->layout_id = (ra_layout)ra_name_find(ra_layout_words, c->layout);
    for (int n = 0; n < RA_MAX_LAYERS; n++) {
        ra_layer_config *l = &c->layer[n];
        l->head_id = (ra_head_id)ra_name_find(ra_head_words, l->head);
        l->precond_id = (ra_precond_id)ra_name_find(ra_precond_words, l->precond);
        l->precond_grad_id = (ra_precond_grad_id)ra_name_find(ra_precond_grad_words, l->precond_grad);
    }
}

ra_status ra_config_finish(ra_config *cfg)
{
    RA_TRY(check_ranges(cfg));
    for (int n = cfg->layers; n < RA_MAX_LAYERS; n++)
        if (cfg->layer_given >> n & 1)
            return RA_FAIL(RA_ERR_ARG,
                           "[layer.%d] configures layer %d, but model.layers = %d (layers are 0 to %d)",
                           n, n, cfg->layers, cfg->layers - 1);
    ra_config *c = malloc(sizeof *c);
    if (!c) return RA_FAIL(RA_ERR_NOMEM, "out of memory for the config");
    memcpy(c, cfg, sizeof *c);
    resolve_ids(c);
    ra_status st = derive_model(c);
    if (st == RA_OK) st = check_train(c);
    if (st == RA_OK) st = check_data(c);
    if (st == RA_OK) st = check_warm(c);
    if (st == RA_OK) {
        for (int n = c->layers; n < RA_MAX_LAYERS; n++) layer_defaults(&c->layer[n]);
        resolve_ids(c);
        c->layer_given = c->layers >= 64 ? UINT64_MAX : (UINT64_C(1) << c->layers) - 1;
        memcpy(cfg, c, sizeof *cfg);
    }
    free(c);
    return st;
}

/* ---- canonical text --------------------------------------------------- */

typedef struct {
    char *p;
    size_t n, cap;
    bool oom;
} sbuf;

__attribute__((format(printf, 2, 3))) static void sb_printf(sbuf *b, const char *fmt, ...)
{
    for (;;) {
        if (b->oom) return;
        va_list ap;
        va_start(ap, fmt);
        int w = vsnprintf(b->p ? b->p + b->n : NULL, b->p ? b->cap - b->n : 0, fmt, ap);
        va_end(ap);
        if (w < 0) {
            b->oom = true;
            return;
        }
        if (b->p && b->n + (size_t)w < b->cap) {
            b->n += (size_t)w;
            return;
        }
        size_t cap = b->cap ? b->cap : 4096;
        while (cap <= b->n + (size_t)w) cap *= 2;
        char *grown = realloc(b->p, cap);
        if (!grown) {
            b->oom = true;
            return;
        }
        b->p = grown;
        b->cap = cap;
    }
}

/* "key = value", then the description as a comment when asked. */
static void write_key(sbuf *b, const key_spec *k, const void *base, bool comment)
{
    char v[2 * RA_PATH_MAX + 4];
    format_value(k, base, v, sizeof v);
    int w = (int)(strlen(k->name) + 3 + strlen(v));
    if (!comment) {
        sb_printf(b, "%s = %s\n", k->name, v);
        return;
    }
    int pad = w < TEXT_COMMENT_COL ? TEXT_COMMENT_COL - w : 2;
    sb_printf(b, "%s = %s%*s# %s\n", k->name, v, pad, "", k->desc);
}

static void write_section(sbuf *b, const ra_config *cfg, int sec)
{
    sb_printf(b, "\n[%s]\n", section_names[sec]);
    for (size_t i = 0; i < NKEYS; i++)
        if (keys[i].sec == sec) write_key(b, &keys[i], cfg, true);
}

char *ra_config_text(const ra_config *cfg)
{
    sbuf b = {0};
    sb_printf(&b, "# ringattn configuration: every key, as used\n");
    write_section(&b, cfg, SEC_MODEL);
    int nl = cfg->layers < 0 ? 0 : cfg->layers > RA_MAX_LAYERS ? RA_MAX_LAYERS : cfg->layers;
    for (int n = 0; n < nl; n++) {
        sb_printf(&b, "\n[layer.%d]\n", n);
        for (size_t i = 0; i < NLAYER_KEYS; i++) write_key(&b, &layer_keys[i], &cfg->layer[n], n == 0);
    }
    write_section(&b, cfg, SEC_TRAIN);
    write_section(&b, cfg, SEC_DATA);
    write_section(&b, cfg, SEC_RUN);
    if (b.oom) {
        free(b.p);
        return NULL;
    }
    return b.p;
}
