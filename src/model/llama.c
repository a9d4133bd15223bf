/* llama.c - export to and import from the Hugging Face Llama convention
 * (llama.h, docs/design.md §14).
 *
 * The name map (HF name, ringattn tensor, transform):
 *     model.embed_tokens.weight                  [V][C]  emb [V][C]           copy
 *     model.layers.N.input_layernorm.weight      [C]     attn_norm            copy
 *     model.layers.N.self_attn.q_proj.weight     [H D][C]   wq [C][H D]       transpose + RoPE rows
 *     model.layers.N.self_attn.k_proj.weight     [Hkv D][C] wk [C][Hkv D]     transpose + RoPE rows
 *     model.layers.N.self_attn.v_proj.weight     [Hkv D][C] wv [C][Hkv D]     transpose
 *     model.layers.N.self_attn.o_proj.weight     [C][H D]   wo [H D][C]       transpose
 *     model.layers.N.post_attention_layernorm.weight [C]   ffn_norm           copy
 *     model.layers.N.mlp.gate_proj.weight        [F][C]  w1 [C][F]            transpose
 *     model.layers.N.mlp.up_proj.weight          [F][C]  w3 [C][F]            transpose
 *     model.layers.N.mlp.down_proj.weight        [C][F]  w2 [F][C]            transpose
 *     model.norm.weight                          [C]     final_norm           copy
 *     lm_head.weight                             [V][C]  lm_head [C][V]       transpose (absent when tied)
 *
 * RoPE rows: ringattn rotates the pairs (2i, 2i+1) of each head's D values
 * by position * theta^(-2i/D) (src/kernels/layers.c); Llama rotates the
 * pairs (i, i + D/2) by the same angle (rotate_half). So row j of a head in
 * the HF matrix is ringattn's output column 2j (j < D/2) or 2(j - D/2) + 1
 * (j >= D/2) of that head. q.k sums over all D values of a head, so
 * permuting q and k alike leaves the logits unchanged, and each pair keeps
 * its frequency and rotation sense. v is not rotated and not permuted.
 *
 * Every transform only moves floats, so export then import is the identity
 * bit for bit. Memory: export holds the parameters and one scratch copy
 * for the checkpoint's two AdamW moments (both loaded into it) and one
 * tensor's transpose; import holds the parameters, one tensor as read and
 * one array of zeros that stands for both moments in the checkpoint. */
#include "ringattn/llama.h"

#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/json.h"
#include "model_internal.h"
#include "ringattn/checkpoint.h"
#include "ringattn/fileio.h"
#include "ringattn/safetensors.h"

#define CONFIG_CAP ((size_t)1 << 20) /* bytes of config.json */
#define CONFIG_NODES ((size_t)1 << 16)

typedef enum { X_COPY, X_T, X_ROPE } xform;

typedef struct {
    char name[80];
    xform x;
    size_t off;          /* in the parameter array */
    int ndim;            /* HF shape [rows] or [rows][cols] */
    int64_t rows, cols;  /* for X_T, X_ROPE: ringattn's matrix is [cols][rows] */
    int D;               /* X_ROPE: head width */
} entry;

int ra_llama_tensors(const ra_config *cfg) { return 2 + 9 * cfg->layers + (cfg->tie_embeddings ? 0 : 1); }

static void add(entry *e, int *n, xform x, size_t off, int ndim, int64_t rows, int64_t cols, int D, const char *fmt,
                int layer)
{
    entry *t = &e[(*n)++];
    *t = (entry){ .x = x, .off = off, .ndim = ndim, .rows = rows, .cols = cols, .D = D };
    snprintf(t->name, sizeof t->name, fmt, layer);
}

/* Every tensor of cfg in export order; e holds ra_llama_tensors(cfg). */
static int build(const ra_config *c, const ra_param_layout *p, entry *e)
{
    const int64_t C = c->dim, V = c->vocab, F = c->ffn_dim, D = c->head_dim;
    const int64_t HD = (int64_t)c->heads * D, KD = (int64_t)c->kv_heads * D;
    int n = 0;
    add(e, &n, X_COPY, p->emb, 2, V, C, 0, "model.embed_tokens.weight", 0);
    for (int l = 0; l < c->layers; l++) {
        const ra_layer_params *q = &p->layer[l];
        add(e, &n, X_COPY, q->attn_norm, 1, C, 0, 0, "model.layers.%d.input_layernorm.weight", l);
        add(e, &n, X_ROPE, q->wq, 2, HD, C, (int)D, "model.layers.%d.self_attn.q_proj.weight", l);
        add(e, &n, X_ROPE, q->wk, 2, KD, C, (int)D, "model.layers.%d.self_attn.k_proj.weight", l);
        add(e, &n, X_T, q->wv, 2, KD, C, 0, "model.layers.%d.self_attn.v_proj.weight", l);
        add(e, &n, X_T, q->wo, 2, C, HD, 0, "model.layers.%d.self_attn.o_proj.weight", l);
        add(e, &n, X_COPY, q->ffn_norm, 1, C, 0, 0, "model.layers.%d.post_attention_layernorm.weight", l);
        add(e, &n, X_T, q->w1, 2, F, C, 0, "model.layers.%d.mlp.gate_proj.weight", l);
        add(e, &n, X_T, q->w3, 2, F, C, 0, "model.layers.%d.mlp.up_proj.weight", l);
        add(e, &n, X_T, q->w2, 2, C, F, 0, "model.layers.%d.mlp.down_proj.weight", l);
    }
    add(e, &n, X_COPY, p->final_norm, 1, C, 0, 0, "model.norm.weight", 0);
    if (!c->tie_embeddings) add(e, &n, X_T, p->lm_head, 2, V, C, 0, "lm_head.weight", 0);
    return n;
}

static int64_t entry_count(const entry *e) { return e->ndim == 1 ? e->rows : e->rows * e->cols; }

/* ringattn's column of HF row o (the output index). */
static int64_t src_col(const entry *e, int64_t o)
{
    if (e->x != X_ROPE) return o;
    const int64_t D = e->D, h = o / D, j = o % D;
    return h * D + (j < D / 2 ? 2 * j : 2 * (j - D / 2) + 1);
}

enum { TB = 64 }; /* transpose block */

/* HF tensor out from ringattn's w (at e->off of the parameters). */
static void to_hf(const entry *e, const float *params, float *out)
{
    const float *w = params + e->off;
    if (e->x == X_COPY) {
        memcpy(out, w, sizeof(float) * (size_t)entry_count(e));
        return;
    }
    const int64_t O = e->rows, I = e->cols; /* w [I][O], out [O][I] */
    for (int64_t i0 = 0; i0 < I; i0 += TB) {
        const int64_t i1 = i0 + TB < I ? i0 + TB : I;
        for (int64_t o = 0; o < O; o++) {
            const int64_t c = src_col(e, o);
            for (int64_t i = i0; i < i1; i++) out[o * I + i] = w[i * O + c];
        }
    }
}

/* The inverse: ringattn's w from HF tensor in. */
static void from_hf(const entry *e, const float *in, float *params)
{
    float *w = params + e->off;
    if (e->x == X_COPY) {
        memcpy(w, in, sizeof(float) * (size_t)entry_count(e));
        return;
    }
    const int64_t O = e->rows, I = e->cols;
    for (int64_t i0 = 0; i0 < I; i0 += TB) {
        const int64_t i1 = i0 + TB < I ? i0 + TB : I;
        for (int64_t o = 0; o < O; o++) {
            const int64_t c = src_col(e, o);
            for (int64_t i = i0; i < i1; i++) w[i * O + c] = in[o * I + i];
        }
    }
}

/* ---- export --------------------------------------------------------------------- */

static ra_status check_cfg(const ra_config *c, const char *what)
{
    if (c->ffn_id != RA_FFN_SWIGLU)
        return RA_FAIL(RA_ERR_ARG, "%s: model.ffn = %s has no Llama equivalent (a Llama MLP is SwiGLU: gate_proj, "
                       "up_proj, down_proj); only model.ffn = swiglu exports", what, c->ffn);
    for (int l = 0; l < c->layers; l++) {
        const ra_layer_config *L = &c->layer[l];
        if (L->head_id != RA_HEAD_FULL)
            return RA_FAIL(RA_ERR_ARG, "%s: layer %d has a %s head (key layer.%d.head): Llama layers are full causal "
                           "attention; only head = full exports", what, l, L->head, l);
        if (L->precond_id != RA_PRECOND_NONE)
            return RA_FAIL(RA_ERR_ARG, "%s: layer %d has the %s preconditioner (key layer.%d.precond): Llama has no "
                           "equivalent; only precond = none exports", what, l, L->precond, l);
    }
    return RA_OK;
}

ra_status ra_llama_check(const ra_config *cfg) { return check_cfg(cfg, "the config"); }

static char *config_json(const ra_config *c)
{
    ra_json_buf b = { 0 };
    ra_json_put(&b, "{\n  \"architectures\": [\"LlamaForCausalLM\"],\n  \"model_type\": \"llama\",\n");
    ra_json_putf(&b, "  \"hidden_size\": %d,\n  \"intermediate_size\": %d,\n  \"num_hidden_layers\": %d,\n",
                 c->dim, c->ffn_dim, c->layers);
    ra_json_putf(&b, "  \"num_attention_heads\": %d,\n  \"num_key_value_heads\": %d,\n  \"head_dim\": %d,\n",
                 c->heads, c->kv_heads, c->head_dim);
    ra_json_put(&b, "  \"rms_norm_eps\": ");
    ra_json_put_float(&b, c->norm_eps);
    ra_json_put(&b, ",\n  \"rope_theta\": ");
    ra_json_put_float(&b, c->rope_theta);
    ra_json_putf(&b, ",\n  \"rope_scaling\": null,\n  \"vocab_size\": %d,\n  \"max_position_embeddings\": %d,\n",
                 c->vocab, c->seq_len);
    ra_json_putf(&b, "  \"hidden_act\": \"silu\",\n  \"tie_word_embeddings\": %s,\n",
                 c->tie_embeddings ? "true" : "false");
    ra_json_put(&b, "  \"attention_bias\": false,\n  \"attention_dropout\": 0.0,\n  \"mlp_bias\": false,\n"
                    "  \"pretraining_tp\": 1,\n  \"use_cache\": true,\n  \"torch_dtype\": \"float32\"\n}\n");
    if (b.failed) {
        ra_json_buf_free(&b);
        return NULL;
    }
    return b.p;
}

/* The checkpoint's finished config (malloc'd into *out). */
static ra_status ckpt_config(const char *ckpt, ra_config **out)
{
    char *text = NULL;
    ra_ckpt_state state;
    RA_TRY(ra_ckpt_peek(ckpt, &text, &state));
    ra_config *cfg = malloc(sizeof *cfg);
    ra_status st = cfg ? RA_OK : RA_FAIL(RA_ERR_NOMEM, "out of memory");
    if (st == RA_OK) {
        ra_config_defaults(cfg);
        st = ra_config_parse(cfg, text, ckpt);
    }
    if (st == RA_OK) st = ra_config_finish(cfg);
    free(text);
    if (st != RA_OK) {
        free(cfg);
        return st;
    }
    *out = cfg;
    return RA_OK;
}

/* RA_OK, or an error naming the first NaN or infinity of tensor e's
 * values buf (in the Llama layout) by its [row, column], in file `where`. */
static ra_status check_finite(const char *where, const entry *e, const float *buf)
{
    const int64_t n = entry_count(e);
    for (int64_t i = 0; i < n; i++)
        if (!isfinite(buf[i])) {
            char at[64];
            if (e->ndim == 2) snprintf(at, sizeof at, "[%" PRId64 ", %" PRId64 "]", i / e->cols, i % e->cols);
            else snprintf(at, sizeof at, "[%" PRId64 "]", i);
            return RA_FAIL(RA_ERR_NUMERIC, "%s: tensor \"%s\" holds %s at %s", where, e->name,
                           isnan(buf[i]) ? "a NaN" : "an infinity", at);
        }
    return RA_OK;
}

/* The tensors into "<path>.tmp", staged (ra_st_write_stage): the caller
 * commits it with config.json. A NaN or infinity in the parameters is
 * refused, naming the tensor: import would refuse the file. */
static ra_status write_tensors(const char *ckpt, const char *path, const entry *e, int n, const float *params,
                               ra_llama_info *info)
{
    ra_st_spec *spec = calloc((size_t)n, sizeof *spec);
    int64_t most = 1;
    for (int i = 0; i < n; i++) most = entry_count(&e[i]) > most ? entry_count(&e[i]) : most;
    float *buf = malloc(sizeof(float) * (size_t)most);
    if (!spec || !buf) {
        free(spec);
        free(buf);
        return RA_FAIL(RA_ERR_NOMEM, "%s: out of memory for %" PRId64 " floats", path, most);
    }
    for (int i = 0; i < n; i++)
        spec[i] = (ra_st_spec){ .name = e[i].name, .ndim = e[i].ndim, .shape = { e[i].rows, e[i].cols } };
    static const char *const meta[] = { "format", "pt" };
    ra_st_writer *w;
    ra_status st = ra_st_write_begin(&w, path, spec, n, meta, 1);
    for (int i = 0; st == RA_OK && i < n; i++) {
        to_hf(&e[i], params, buf);
        st = check_finite(ckpt, &e[i], buf);
        if (st == RA_OK) st = ra_st_write_next(w, buf);
        info->params += entry_count(&e[i]);
    }
    if (w) st = ra_st_write_stage(w, st);
    free(spec);
    free(buf);
    return st;
}

ra_status ra_llama_export(const char *ckpt, const char *dir, ra_llama_info *info)
{
    *info = (ra_llama_info){ 0 };
    snprintf(info->source, sizeof info->source, "%s", ckpt);
    ra_config *cfg;
    RA_TRY(ckpt_config(ckpt, &cfg));
    ra_status st = check_cfg(cfg, ckpt);
    ra_param_layout lay;
    ra_param_plan(&lay, cfg);
    float *params = NULL, *moments = NULL;
    entry *e = NULL;
    if (st == RA_OK) {
        params = malloc(sizeof(float) * lay.total);
        moments = malloc(sizeof(float) * lay.total);
        e = malloc(sizeof *e * (size_t)ra_llama_tensors(cfg));
        if (!params || !moments || !e)
            st = RA_FAIL(RA_ERR_NOMEM, "%s: out of memory for 2 x %zu floats", ckpt, lay.total);
    }
    if (st == RA_OK) {
        /* the moments are not exported: both go into one scratch array */
        ra_ckpt_tensor t[3] = { { "params", params, lay.total }, { "adam_m", moments, lay.total },
                                { "adam_v", moments, lay.total } };
        ra_ckpt_state state;
        st = ra_ckpt_load(ckpt, NULL, &state, t, 3);
    }
    free(moments);
    /* both files staged, then renamed together: a failure (a full disk)
     * leaves a model already in dir whole, never new weights beside an old
     * config.json */
    char st_path[RA_PATH_MAX + 64], cfg_path[RA_PATH_MAX + 64];
    if (st == RA_OK) st = ra_prepare_output_dir(dir, "--out");
    if (st == RA_OK && (!ra_join_path(st_path, sizeof st_path, dir, RA_ST_FILE_NAME) ||
                        !ra_join_path(cfg_path, sizeof cfg_path, dir, "config.json")))
        st = RA_FAIL(RA_ERR_ARG, "--out %.200s: path too long", dir);
    if (st == RA_OK) {
        const int n = build(cfg, &lay, e);
        info->tensors = n;
        st = write_tensors(ckpt, st_path, e, n, params, info);
    }
    if (st == RA_OK) {
        char *json = config_json(cfg);
        st = json ? ra_write_file_staged(cfg_path, json, strlen(json)) : RA_FAIL(RA_ERR_NOMEM, "out of memory");
        free(json);
        if (st != RA_OK) ra_atomic_abort(st_path);
    }
    if (st == RA_OK) {
        const char *const both[] = { st_path, cfg_path };
        st = ra_atomic_commit_all(both, 2, st);
    }
    free(params);
    free(e);
    free(cfg);
    return st;
}

/* ---- import: config.json --------------------------------------------------------- */

/* A key that is present and not null. */
static const ra_json *key_of(const ra_json *root, const char *key)
{
    const ra_json *v = ra_json_get(root, key);
    return v && v->type != RA_JSON_NULL ? v : NULL;
}

static ra_status get_int(const char *path, const ra_json *root, const char *key, int required, long dflt, long *out)
{
    const ra_json *v = key_of(root, key);
    if (!v) {
        if (required) return RA_FAIL(RA_ERR_FORMAT, "%s: \"%s\" is missing", path, key);
        *out = dflt;
        return RA_OK;
    }
    if (v->type != RA_JSON_NUMBER)
        return RA_FAIL(RA_ERR_FORMAT, "%s: \"%s\" is %s, not an integer", path, key, ra_json_kind(v));
    if (!v->is_int && (v->num < 1 || v->num > (1 << 30))) /* 2^63 is no fraction: out of int64 */
        return RA_FAIL(RA_ERR_FORMAT, "%s: \"%s\" = %.17g is out of range [1, 2^30]", path, key, v->num);
    if (!v->is_int)
        return RA_FAIL(RA_ERR_FORMAT, "%s: \"%s\" = %.17g is %s", path, key, v->num,
                       v->num == floor(v->num) ? "written with a fraction or exponent: write it as an integer"
                                               : "a fraction, not an integer");
    if (v->i < 1 || v->i > (1 << 30))
        return RA_FAIL(RA_ERR_FORMAT, "%s: \"%s\" = %" PRId64 " is out of range [1, 2^30]", path, key, v->i);
    *out = (long)v->i;
    return RA_OK;
}

static ra_status get_num(const char *path, const ra_json *root, const char *key, double dflt, double *out)
{
    const ra_json *v = key_of(root, key);
    if (!v) {
        *out = dflt;
        return RA_OK;
    }
    if (v->type != RA_JSON_NUMBER) return RA_FAIL(RA_ERR_FORMAT, "%s: \"%s\" is %s, not a number", path, key, ra_json_kind(v));
    /* ringattn keeps it in float32: a tiny value is named as such, not as 0 */
    if (signbit(v->num)) /* -1e-400 reads as -0: no "= -0" */
        return RA_FAIL(RA_ERR_FORMAT, "%s: \"%s\" is negative; it must be positive and finite in float32", path, key);
    if (v->underflow)
        return RA_FAIL(RA_ERR_FORMAT, "%s: \"%s\" is below even double's smallest positive number (it reads as "
                       "0); it must be positive in float32 (at least 1.4e-45)", path, key);
    if (v->num > 0 && (float)v->num == 0)
        return RA_FAIL(RA_ERR_FORMAT, "%s: \"%s\" = %g is below float32's smallest positive number (1.4e-45), "
                       "in which ringattn keeps it", path, key, v->num);
    if (!(v->num > 0) || !isfinite((float)v->num))
        return RA_FAIL(RA_ERR_FORMAT, "%s: \"%s\" = %g must be positive and finite in float32", path, key, v->num);
    *out = v->num;
    return RA_OK;
}

static ra_status get_bool(const char *path, const ra_json *root, const char *key, int dflt, int *out)
{
    const ra_json *v = key_of(root, key);
    if (!v) {
        *out = dflt;
        return RA_OK;
    }
    if (v->type != RA_JSON_BOOL) return RA_FAIL(RA_ERR_FORMAT, "%s: \"%s\" is %s, not true or false", path, key, ra_json_kind(v));
    *out = v->boolean;
    return RA_OK;
}

/* Keys of other model families that change the function; refused unless
 * absent, null, false or the neutral value given. */
static const struct {
    const char *key;
    double neutral; /* a number equal to it is fine; NAN: none */
} foreign[] = {
    { "sliding_window", NAN },        { "use_sliding_window", NAN },     { "partial_rotary_factor", 1.0 },
    { "attn_logit_softcapping", NAN }, { "final_logit_softcapping", NAN }, { "logits_scaling", 1.0 },
    { "logit_scale", 1.0 },           { "embedding_multiplier", 1.0 },   { "residual_multiplier", 1.0 },
    { "attention_multiplier", NAN },  { "qk_layernorm", NAN },           { "use_qk_norm", NAN },
    { "no_rope_layers", NAN },        { "layer_types", NAN },            { "mlp_only_layers", NAN },
    { "num_local_experts", NAN },     { "num_experts", NAN },            { "moe_intermediate_size", NAN },
};

/* Keys read, or known not to change the function. */
static const char *const known[] = {
    "architectures", "model_type", "hidden_size", "intermediate_size", "num_hidden_layers",
    "num_attention_heads", "num_key_value_heads", "head_dim", "rms_norm_eps", "rope_theta", "rope_scaling",
    "vocab_size", "max_position_embeddings", "hidden_act", "tie_word_embeddings", "attention_bias",
    "attention_dropout", "mlp_bias", "pretraining_tp", "use_cache", "torch_dtype", "initializer_range",
    "bos_token_id", "eos_token_id", "pad_token_id", "transformers_version", "_name_or_path",
};

static ra_status check_foreign(const char *path, const ra_json *root, ra_llama_info *info)
{
    for (size_t i = 0; i < root->n; i++) {
        const ra_json *v = &root->kids[i];
        int seen = 0;
        for (size_t k = 0; k < sizeof foreign / sizeof *foreign; k++) {
            if (strcmp(v->key, foreign[k].key)) continue;
            seen = 1;
            int neutral = v->type == RA_JSON_NULL || (v->type == RA_JSON_BOOL && !v->boolean) ||
                          (v->type == RA_JSON_NUMBER && v->num == foreign[k].neutral);
            if (!neutral)
                return RA_FAIL(RA_ERR_FORMAT, "%s: \"%s\" is set: that is not a Llama model ringattn can compute "
                               "exactly (only plain Llama: full attention, RoPE without scaling, SwiGLU MLP)", path,
                               v->key);
        }
        for (size_t k = 0; k < sizeof known / sizeof *known && !seen; k++) seen = !strcmp(v->key, known[k]);
        if (!seen) {
            size_t at = strlen(info->ignored);
            if (at + strlen(v->key) + 6 < sizeof info->ignored)
                snprintf(info->ignored + at, sizeof info->ignored - at, "%s%s", at ? ", " : "", v->key);
            else if (at + 5 < sizeof info->ignored && !strstr(info->ignored, "..."))
                snprintf(info->ignored + at, sizeof info->ignored - at, ", ...");
        }
    }
    return RA_OK;
}

/* Set a model key from config.json's jkey, whose value there reads
 * `given` (the config's check may see another: a float32 rounding). A
 * refusal names the file, the key and both values. */
static ra_status set_key(ra_config *cfg, const char *path, const char *jkey, const char *given, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
static ra_status set_key(ra_config *cfg, const char *path, const char *jkey, const char *given, const char *fmt, ...)
{
    char a[128];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(a, sizeof a, fmt, ap);
    va_end(ap);
    ra_status st = ra_config_set(cfg, a, "config.json");
    if (st == RA_OK) return RA_OK;
    char why[512];
    snprintf(why, sizeof why, "%s", ra_last_error());
    return RA_FAIL(st, "%s: \"%s\" = %s does not fit ringattn's model (%s)", path, jkey, given, why);
}

/* config.json's number as written (15 digits: a decimal of up to 15 reads back as written) */
static const char *num_text(char *buf, size_t cap, double x)
{
    snprintf(buf, cap, "%.15g", x);
    return buf;
}

/* The model keys of config.json into cfg (defaults already there). */
static ra_status model_from_json(const char *path, const ra_json *root, ra_config *cfg, ra_llama_info *info)
{
    if (root->type != RA_JSON_OBJECT) return RA_FAIL(RA_ERR_FORMAT, "%s: is %s, not an object", path, ra_json_kind(root));
    const ra_json *mt = key_of(root, "model_type"), *arch = key_of(root, "architectures");
    if (!mt) return RA_FAIL(RA_ERR_FORMAT, "%s: \"model_type\" is missing (a Llama config has \"llama\")", path);
    if (mt->type != RA_JSON_STRING || strcmp(mt->str, "llama"))
        return RA_FAIL(RA_ERR_FORMAT, "%s: \"model_type\" is %s%.40s%s, not \"llama\"", path,
                       mt->type == RA_JSON_STRING ? "\"" : ra_json_kind(mt), mt->type == RA_JSON_STRING ? mt->str : "",
                       mt->type == RA_JSON_STRING ? "\"" : "");
    if (arch) {
        int ok = arch->type == RA_JSON_ARRAY && arch->n > 0;
        for (size_t i = 0; ok && i < arch->n; i++)
            ok = arch->kids[i].type == RA_JSON_STRING && !strcmp(arch->kids[i].str, "LlamaForCausalLM");
        const int first_str = arch->type == RA_JSON_ARRAY && arch->n && arch->kids[0].type == RA_JSON_STRING;
        if (!ok)
            return RA_FAIL(RA_ERR_FORMAT, "%s: \"architectures\" must be [\"LlamaForCausalLM\"] (a causal language "
                           "model); got %s%s%.60s%s", path, ra_json_kind(arch), first_str ? " starting \"" : "",
                           first_str ? arch->kids[0].str : "", first_str ? "\"" : "");
    }
    RA_TRY(check_foreign(path, root, info));
    const ra_json *act = key_of(root, "hidden_act");
    if (act && (act->type != RA_JSON_STRING || (strcmp(act->str, "silu") && strcmp(act->str, "swish"))))
        return RA_FAIL(RA_ERR_FORMAT, "%s: \"hidden_act\" is %s%.40s%s: ringattn's SwiGLU uses silu", path,
                       act->type == RA_JSON_STRING ? "\"" : ra_json_kind(act), act->type == RA_JSON_STRING ? act->str : "",
                       act->type == RA_JSON_STRING ? "\"" : "");
    const ra_json *rs = key_of(root, "rope_scaling");
    if (rs)
        return RA_FAIL(RA_ERR_FORMAT, "%s: \"rope_scaling\" is not null: ringattn's RoPE has no scaling (linear, "
                       "dynamic, yarn, llama3); only rope_scaling = null imports", path);
    int ab = 0, mb = 0, tie = 0;
    RA_TRY(get_bool(path, root, "attention_bias", 0, &ab));
    RA_TRY(get_bool(path, root, "mlp_bias", 0, &mb));
    RA_TRY(get_bool(path, root, "tie_word_embeddings", 0, &tie));
    if (ab) return RA_FAIL(RA_ERR_FORMAT, "%s: \"attention_bias\" is true: ringattn's projections have no bias", path);
    if (mb) return RA_FAIL(RA_ERR_FORMAT, "%s: \"mlp_bias\" is true: ringattn's MLP has no bias", path);
    long C, F, L, H, Hkv, D, V;
    RA_TRY(get_int(path, root, "hidden_size", 1, 0, &C));
    RA_TRY(get_int(path, root, "intermediate_size", 1, 0, &F));
    RA_TRY(get_int(path, root, "num_hidden_layers", 1, 0, &L));
    RA_TRY(get_int(path, root, "num_attention_heads", 1, 0, &H));
    RA_TRY(get_int(path, root, "vocab_size", 1, 0, &V));
    RA_TRY(get_int(path, root, "num_key_value_heads", 0, H, &Hkv));
    if (!key_of(root, "head_dim") && C % H)
        return RA_FAIL(RA_ERR_FORMAT, "%s: hidden_size = %ld is not divisible by num_attention_heads = %ld and "
                       "\"head_dim\" is missing", path, C, H);
    RA_TRY(get_int(path, root, "head_dim", 0, C / H, &D));
    double eps, theta;
    RA_TRY(get_num(path, root, "rms_norm_eps", 1e-6, &eps));
    RA_TRY(get_num(path, root, "rope_theta", 10000.0, &theta));
    char g[40];
    RA_TRY(set_key(cfg, path, "vocab_size", num_text(g, sizeof g, V), "model.vocab=%ld", V));
    RA_TRY(set_key(cfg, path, "hidden_size", num_text(g, sizeof g, C), "model.dim=%ld", C));
    RA_TRY(set_key(cfg, path, "num_hidden_layers", num_text(g, sizeof g, L), "model.layers=%ld", L));
    RA_TRY(set_key(cfg, path, "num_attention_heads", num_text(g, sizeof g, H), "model.heads=%ld", H));
    RA_TRY(set_key(cfg, path, "num_key_value_heads", num_text(g, sizeof g, Hkv), "model.kv_heads=%ld", Hkv));
    RA_TRY(set_key(cfg, path, "head_dim", num_text(g, sizeof g, D), "model.head_dim=%ld", D));
    RA_TRY(set_key(cfg, path, "intermediate_size", num_text(g, sizeof g, F), "model.ffn_dim=%ld", F));
    RA_TRY(set_key(cfg, path, "hidden_act", "\"silu\"", "model.ffn=swiglu"));
    RA_TRY(set_key(cfg, path, "tie_word_embeddings", tie ? "true" : "false", "model.tie_embeddings=%d", tie));
    /* float32, as ringattn keeps them; %.9g reads back to the same float */
    RA_TRY(set_key(cfg, path, "rms_norm_eps", num_text(g, sizeof g, eps), "model.norm_eps=%.9g", (double)(float)eps));
    RA_TRY(set_key(cfg, path, "rope_theta", num_text(g, sizeof g, theta), "model.rope_theta=%.9g",
                   (double)(float)theta));
    /* the context the model was made for: generate's prompts may be that
     * long, and export writes it back (it became data.seq_len's default, 64) */
    long ctx;
    RA_TRY(get_int(path, root, "max_position_embeddings", 0, 0, &ctx));
    if (ctx) RA_TRY(set_key(cfg, path, "max_position_embeddings", num_text(g, sizeof g, ctx), "data.seq_len=%ld", ctx));
    if (H % Hkv)
        return RA_FAIL(RA_ERR_FORMAT, "%s: num_attention_heads = %ld is not divisible by num_key_value_heads = %ld",
                       path, H, Hkv);
    if (D % 2) return RA_FAIL(RA_ERR_FORMAT, "%s: head_dim = %ld is odd (RoPE rotates pairs)", path, D);
    return RA_OK;
}

ra_status ra_llama_config(const char *dir, const char *const *sets, int nsets, ra_config *cfg, ra_llama_info *info)
{
    char path[RA_PATH_MAX + 64];
    if (!ra_join_path(path, sizeof path, dir, "config.json"))
        return RA_FAIL(RA_ERR_ARG, "--from %.200s: path too long", dir);
    char *text;
    size_t len;
    RA_TRY(ra_file_read_all(path, "config.json", CONFIG_CAP, &text, &len));
    ra_json_doc *doc;
    ra_status st = ra_json_parse(text, len, path, CONFIG_NODES, &doc);
    free(text);
    RA_TRY(st);
    ra_config_defaults(cfg);
    st = model_from_json(path, ra_json_root(doc), cfg, info);
    ra_json_free(doc);
    for (int i = 0; st == RA_OK && i < nsets; i++) {
        const char *a = sets[i];
        int model = !strncmp(a, "model.", 6) && strncmp(a, "model.ffn_block=", 16);
        if (model || !strncmp(a, "layers.", 7) || !strncmp(a, "layer.", 6))
            st = RA_FAIL(RA_ERR_ARG, "--set %.200s: the model keys come from %s (only model.ffn_block and the train, "
                         "data and run keys may be set)", a, path);
        else st = ra_config_set(cfg, a, "--set");
    }
    if (st == RA_OK && (st = ra_config_finish(cfg)) != RA_OK) {
        char msg[RA_ERROR_MAX];
        snprintf(msg, sizeof msg, "%s", ra_last_error());
        st = RA_FAIL(st, "%s%s: %s (the data, train and run keys can be set with --set, e.g. --set data.source=file "
                     "--set data.path=FILE)", path, nsets ? " with the --set values" : "", msg);
    }
    return st;
}

/* ---- import: tensors ----------------------------------------------------------- */

static const char *shape_text(char *out, size_t cap, int ndim, const int64_t *s)
{
    if (ndim == 1) snprintf(out, cap, "[%" PRId64 "]", s[0]);
    else if (ndim == 2) snprintf(out, cap, "[%" PRId64 ", %" PRId64 "]", s[0], s[1]);
    else {
        size_t at = (size_t)snprintf(out, cap, "[");
        for (int d = 0; d < ndim && at < cap; d++)
            at += (size_t)snprintf(out + at, cap - at, "%s%" PRId64, d ? ", " : "", s[d]);
        if (at < cap) snprintf(out + at, cap - at, "]");
    }
    return out;
}

/* What config.json says about the shape of a tensor, for messages. */
static const char *shape_reason(const entry *e)
{
    if (strstr(e->name, "embed_tokens") || strstr(e->name, "lm_head")) return "vocab_size, hidden_size";
    if (strstr(e->name, "q_proj")) return "num_attention_heads x head_dim, hidden_size";
    if (strstr(e->name, "k_proj") || strstr(e->name, "v_proj")) return "num_key_value_heads x head_dim, hidden_size";
    if (strstr(e->name, "o_proj")) return "hidden_size, num_attention_heads x head_dim";
    if (strstr(e->name, "gate_proj") || strstr(e->name, "up_proj")) return "intermediate_size, hidden_size";
    if (strstr(e->name, "down_proj")) return "hidden_size, intermediate_size";
    return "hidden_size";
}

static ra_status read_entry(const ra_st *st, const entry *e, const ra_st_tensor *t, float *buf, uint32_t *dtypes)
{
    const int64_t want[2] = { e->rows, e->cols };
    int same = t->ndim == e->ndim;
    for (int d = 0; same && d < e->ndim; d++) same = t->shape[d] == want[d];
    if (!same) {
        char a[200], b[64];
        return RA_FAIL(RA_ERR_SHAPE, "%s: tensor \"%s\" has shape %s; config.json gives %s (%s)",
                       ra_st_file_path(st, t->file), e->name, shape_text(a, sizeof a, t->ndim, t->shape),
                       shape_text(b, sizeof b, e->ndim, want), shape_reason(e));
    }
    RA_TRY(ra_st_read(st, t, buf));
    *dtypes |= 1u << t->dtype;
    return check_finite(ra_st_file_path(st, t->file), e, buf);
}

static int is_inv_freq(const char *name)
{
    static const char tail[] = ".self_attn.rotary_emb.inv_freq";
    size_t n = strlen(name), k = sizeof tail - 1;
    return n > k && !strcmp(name + n - k, tail) && !strncmp(name, "model.layers.", 13);
}

static ra_status import_tensors(const char *dir, const ra_st *st, const ra_config *cfg, const ra_param_layout *lay,
                                float *params, ra_llama_info *info)
{
    const int n = ra_llama_tensors(cfg), nst = ra_st_count(st);
    entry *e = malloc(sizeof *e * (size_t)n);
    unsigned char *used = calloc((size_t)nst + 1, 1);
    int64_t most = (int64_t)cfg->vocab * cfg->dim; /* room for a tied model's lm_head too */
    ra_status rs = RA_OK;
    if (e && used) {
        build(cfg, lay, e);
        for (int i = 0; i < n; i++) most = entry_count(&e[i]) > most ? entry_count(&e[i]) : most;
    }
    float *buf = e && used ? malloc(sizeof(float) * (size_t)most) : NULL;
    if (!buf) rs = RA_FAIL(RA_ERR_NOMEM, "%s: out of memory", dir);
    uint32_t dtypes = 0;
    const ra_st_tensor *base = ra_st_tensor_at(st, 0);
    for (int i = 0; rs == RA_OK && i < n; i++) {
        const ra_st_tensor *t = ra_st_find(st, e[i].name);
        if (!t) {
            rs = RA_FAIL(RA_ERR_FORMAT, "%s: tensor \"%s\" is missing%s", ra_st_source(st), e[i].name,
                         strcmp(e[i].name, "lm_head.weight") ? "" : " (config.json: tie_word_embeddings is false)");
            break;
        }
        used[t - base] = 1;
        rs = read_entry(st, &e[i], t, buf, &dtypes);
        if (rs == RA_OK) from_hf(&e[i], buf, params), info->params += entry_count(&e[i]), info->tensors++;
    }
    /* a tied model may carry lm_head.weight, if it is the embedding */
    const ra_st_tensor *head = rs == RA_OK && cfg->tie_embeddings ? ra_st_find(st, "lm_head.weight") : NULL;
    if (head) {
        entry he = { .name = "lm_head.weight", .x = X_COPY, .ndim = 2, .rows = cfg->vocab, .cols = cfg->dim };
        used[head - base] = 1;
        rs = read_entry(st, &he, head, buf, &dtypes);
        if (rs == RA_OK && memcmp(buf, params + lay->emb, sizeof(float) * (size_t)entry_count(&he)))
            rs = RA_FAIL(RA_ERR_FORMAT, "%s: tensor \"lm_head.weight\" differs from \"model.embed_tokens.weight\", "
                         "but config.json says tie_word_embeddings = true", ra_st_source(st));
    }
    for (int i = 0; rs == RA_OK && i < nst; i++) {
        const ra_st_tensor *t = ra_st_tensor_at(st, i);
        if (used[i] || is_inv_freq(t->name)) continue;
        rs = RA_FAIL(RA_ERR_FORMAT, "%s: tensor \"%.200s\" is not part of the Llama model config.json describes "
                     "(%d layers%s): an extra tensor ringattn cannot represent", ra_st_file_path(st, t->file), t->name,
                     cfg->layers, cfg->tie_embeddings ? ", tied embeddings" : "");
    }
    if (rs == RA_OK) {
        static const char *const names[] = { "F32", "F16", "BF16" };
        for (int d = 0; d < 3; d++)
            if (dtypes & 1u << d) {
                size_t at = strlen(info->dtypes);
                snprintf(info->dtypes + at, sizeof info->dtypes - at, "%s%s", at ? "+" : "", names[d]);
            }
    }
    free(buf);
    free(used);
    free(e);
    return rs;
}

ra_status ra_llama_import(const char *dir, const char *ckpt, const char *const *sets, int nsets, ra_llama_info *info)
{
    *info = (ra_llama_info){ 0 };
    ra_config *cfg = malloc(sizeof *cfg);
    if (!cfg) return RA_FAIL(RA_ERR_NOMEM, "out of memory");
    ra_status rs = ra_llama_config(dir, sets, nsets, cfg, info);
    ra_st *st = NULL;
    if (rs == RA_OK) rs = ra_st_open_dir(&st, dir);
    if (rs == RA_OK) {
        snprintf(info->source, sizeof info->source, "%s", ra_st_source(st));
        info->files = ra_st_files(st);
    }
    /* the checkpoint must not replace a shard (it is written after they are read) */
    char tmp[RA_PATH_MAX + 64];
    const int has_tmp = ra_tmp_name(tmp, sizeof tmp, ckpt);
    for (int i = 0; rs == RA_OK && i < ra_st_files(st); i++) {
        const char *f = ra_st_file_path(st, i);
        if (!strcmp(f, ckpt) || ra_same_file(f, ckpt) || (has_tmp && ra_same_file(f, tmp)))
            rs = RA_FAIL(RA_ERR_ARG, "--out %s would replace %s, which the import reads: name another output file",
                         ckpt, f);
    }
    ra_param_layout lay = { 0 };
    float *params = NULL, *zeros = NULL;
    if (rs == RA_OK) {
        ra_param_plan(&lay, cfg);
        params = calloc(lay.total, sizeof(float)); /* padding between tensors stays 0, as ra_model_init leaves it */
        zeros = calloc(lay.total, sizeof(float));
        if (!params || !zeros) rs = RA_FAIL(RA_ERR_NOMEM, "out of memory for 2 x %zu floats", lay.total);
    }
    if (rs == RA_OK) rs = import_tensors(dir, st, cfg, &lay, params, info);
    char *text = rs == RA_OK ? ra_config_text(cfg) : NULL;
    if (rs == RA_OK && !text) rs = RA_FAIL(RA_ERR_NOMEM, "out of memory for the config text");
    if (rs == RA_OK) {
        const ra_ckpt_state state = { .step = 0, .seed = cfg->seed };
        const ra_ckpt_tensor t[3] = { { "params", params, lay.total }, { "adam_m", zeros, lay.total },
                                      { "adam_v", zeros, lay.total } };
        rs = ra_ckpt_save(ckpt, text, &state, t, 3);
    }
    free(text);
    free(params);
    free(zeros);
    ra_st_close(st);
    free(cfg);
    return rs;
}
