/* cmd_generate.c - `ringattn generate`: sampling with a KV cache that stays
 * sharded by sequence position across ranks.
 *
 * The prompt is run through the ring forward once (prefill), which leaves
 * every rank the keys/values of its own prompt tokens. Each new token is
 * then computed on every rank (its embedding, projections and FFN are
 * replicated); its key/value is stored only by rank (position mod P); its
 * query attends to each rank's local cache, and the partial results
 * (running max m, sum l, weighted values acc) are merged across ranks by
 * MPI_Allreduce with a user-defined online-softmax operator. No rank ever
 * holds more than its share of the context.
 *
 * Shapes: cache k, v per layer [Hkv][cap][D]; a partial per head is one
 * record {m, l, acc[D]}. */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ringattn/dist.h"
#include "ringattn/layers.h"
#include "ringattn/mem.h"
#include "ringattn/rng.h"
#include "session.h"

static const char *help =
    "usage: mpirun -n P ringattn generate --checkpoint CKPT|DIR (--prompt TEXT | --prompt-file F)\n"
    "                                     [--tokens 64] [--temperature 1.0] [--top-k 0] [--seed 1]\n"
    "\n"
    "Samples --tokens bytes after the prompt and prints prompt + continuation on\n"
    "rank 0. --temperature 0 is greedy; --top-k K samples among the K most likely\n"
    "bytes (0: all). The KV cache is sharded: rank r keeps the keys and values of\n"
    "its prompt tokens and of new positions t with t mod P = r.\n";

/* ---- decoder state ------------------------------------------------------------- */

typedef struct {
    const ra_config *cfg;
    const float *w;           /* parameters */
    const ra_param_layout *lay;
    int P, rank, C, H, Hkv, D, F, V, nl;
    int64_t cap, n;           /* cache capacity and fill (same for every layer) */
    int32_t *cpos;            /* [cap] global positions in the cache */
    float *ck, *cv;           /* [nl][Hkv][cap][D] */
    float *x, *h, *q, *k, *v, *o, *y, *a, *b, *u, *logits, *rec, *rstd; /* one-token scratch */
    float *mem;
    MPI_Op op;
    MPI_Datatype rec_type;
} decoder;

static ra_status decoder_init(decoder *d, const ra_config *cfg, const float *w,
                              const ra_param_layout *lay, MPI_Comm comm, int64_t cap)
{
    *d = (decoder){ .cfg = cfg, .w = w, .lay = lay, .C = cfg->dim, .H = cfg->heads,
                    .Hkv = cfg->kv_heads, .D = cfg->head_dim, .F = cfg->ffn_dim, .V = cfg->vocab,
                    .nl = cfg->layers, .cap = cap, .op = MPI_OP_NULL, .rec_type = MPI_DATATYPE_NULL };
    MPI_Comm_size(comm, &d->P);
    MPI_Comm_rank(comm, &d->rank);
    const size_t kv = (size_t)d->nl * d->Hkv * cap * d->D, HD = (size_t)d->H * d->D;
    const size_t one = 2 * (size_t)d->C + 4 * HD + (size_t)d->C + 3 * (size_t)d->F + (size_t)d->V +
                       (size_t)d->H * (d->D + 2) + 1 + (size_t)d->H;
    RA_TRY(ra_alloc(&d->mem, sizeof(float) * (2 * kv + one + 64), "the KV cache"));
    RA_TRY(ra_alloc(&d->cpos, sizeof(int32_t) * cap, "cache positions"));
    float *p = d->mem;
    d->ck = p, p += kv;
    d->cv = p, p += kv;
    d->x = p, p += d->C;
    d->h = p, p += d->C;
    d->q = p, p += HD;
    d->k = p, p += HD;
    d->v = p, p += HD;
    d->o = p, p += HD;
    d->y = p, p += d->C;
    d->a = p, p += d->F;
    d->b = p, p += d->F;
    d->u = p, p += d->F;
    d->logits = p, p += d->V;
    d->rec = p, p += (size_t)d->H * (d->D + 2);
    d->rstd = p;
    return ra_softmax_op_create(d->D, &d->rec_type, &d->op);
}

static void decoder_free(decoder *d)
{
    ra_softmax_op_free(&d->rec_type, &d->op);
    free(d->mem);
    free(d->cpos);
}

static float *cache_row(const decoder *d, float *base, int l, int g, int64_t j)
{
    return base + (((size_t)l * d->Hkv + g) * d->cap + j) * d->D;
}

/* Copy the prefill's local keys/values (B = 1) into the cache. */
static void decoder_fill(decoder *d, ra_model *m)
{
    const int64_t Lr = ra_model_local_len(m);
    const int32_t *pos = ra_model_positions(m);
    for (int l = 0; l < d->nl; l++) {
        const float *k, *v;
        ra_model_kv(m, l, &k, &v);
        for (int g = 0; g < d->Hkv; g++) {
            memcpy(cache_row(d, d->ck, l, g, 0), k + (size_t)g * Lr * d->D, sizeof(float) * Lr * d->D);
            memcpy(cache_row(d, d->cv, l, g, 0), v + (size_t)g * Lr * d->D, sizeof(float) * Lr * d->D);
        }
    }
    memcpy(d->cpos, pos, sizeof(int32_t) * Lr);
    d->n = Lr;
}

/* One token at global position t through every layer; logits in d->logits. */
static ra_status decoder_step(decoder *d, int32_t token, int32_t t, MPI_Comm comm)
{
    const ra_param_layout *lay = d->lay;
    const float *w = d->w;
    const int C = d->C, HD = d->H * d->D, KD = d->Hkv * d->D, G = d->H / d->Hkv;
    const float scale = 1.0f / sqrtf((float)d->D), eps = d->cfg->norm_eps;
    const int mine = t % d->P == d->rank;
    if (mine && d->n == d->cap) return RA_FAIL(RA_ERR_INTERNAL, "KV cache full at position %d", t);
    ra_embed_forward(d->x, &token, w + lay->emb, 1, C);
    for (int l = 0; l < d->nl; l++) {
        const ra_layer_params *p = &lay->layer[l];
        ra_rmsnorm_forward(d->h, d->rstd, d->x, w + p->attn_norm, 1, C, eps);
        ra_linear_forward(d->q, d->h, w + p->wq, 1, C, HD);
        ra_linear_forward(d->k, d->h, w + p->wk, 1, C, KD);
        ra_linear_forward(d->v, d->h, w + p->wv, 1, C, KD);
        if (!strcmp(d->cfg->layer[l].precond, "spectral")) { /* W + lambda I, as in training */
            const float lam = d->cfg->layer[l].precond_lambda;
            for (int j = 0; j < C; j++) {
                if (j < HD) d->q[j] += lam * d->h[j];
                if (j < KD) d->k[j] += lam * d->h[j], d->v[j] += lam * d->h[j];
            }
        }
        ra_rope_forward(d->q, d->H, 1, d->D, &t, d->cfg->rope_theta);
        ra_rope_forward(d->k, d->Hkv, 1, d->D, &t, d->cfg->rope_theta);
        if (mine)
            for (int g = 0; g < d->Hkv; g++) {
                memcpy(cache_row(d, d->ck, l, g, d->n), d->k + (size_t)g * d->D, sizeof(float) * d->D);
                memcpy(cache_row(d, d->cv, l, g, d->n), d->v + (size_t)g * d->D, sizeof(float) * d->D);
            }
        const int64_t n = d->n + mine;
        for (int hh = 0; hh < d->H; hh++) { /* this rank's partial softmax per head */
            float *r = d->rec + (size_t)hh * (d->D + 2), *acc = r + 2;
            const float *qh = d->q + (size_t)hh * d->D;
            float m = -INFINITY, sum = 0;
            memset(acc, 0, sizeof(float) * d->D);
            for (int64_t j = 0; j < n; j++) {
                const float *kj = cache_row(d, d->ck, l, hh / G, j), *vj = cache_row(d, d->cv, l, hh / G, j);
                float s = 0;
                for (int e = 0; e < d->D; e++) s += qh[e] * kj[e];
                s *= scale;
                if (s > m) { /* rescale what we have */
                    float f = expf(m - s);
                    sum *= f;
                    for (int e = 0; e < d->D; e++) acc[e] *= f;
                    m = s;
                }
                float pj = expf(s - m);
                sum += pj;
                for (int e = 0; e < d->D; e++) acc[e] += pj * vj[e];
            }
            r[0] = m, r[1] = sum;
        }
        int rc = ra_allreduce(MPI_IN_PLACE, d->rec, d->H, d->rec_type, d->op, comm);
        if (rc != MPI_SUCCESS) return RA_FAIL(RA_ERR_MPI, "rank %d: online-softmax reduction failed", d->rank);
        for (int hh = 0; hh < d->H; hh++) {
            const float *r = d->rec + (size_t)hh * (d->D + 2);
            for (int e = 0; e < d->D; e++) d->o[(size_t)hh * d->D + e] = r[1] > 0 ? r[2 + e] / r[1] : 0.0f;
        }
        if (!strcmp(d->cfg->layer[l].precond, "rownorm")) /* each head's output row, as in training */
            ra_rownorm_forward(d->o, d->rstd + 1, d->H, d->D, d->cfg->layer[l].precond_eps);
        ra_linear_forward(d->y, d->o, w + p->wo, 1, HD, C);
        for (int i = 0; i < C; i++) d->x[i] += d->y[i];
        ra_rmsnorm_forward(d->h, d->rstd, d->x, w + p->ffn_norm, 1, C, eps);
        ra_linear_forward(d->a, d->h, w + p->w1, 1, C, d->F);
        if (p->w3 != p->w1) {
            ra_linear_forward(d->b, d->h, w + p->w3, 1, C, d->F);
            ra_swiglu_forward(d->u, d->a, d->b, (size_t)d->F);
        } else {
            ra_gelu_forward(d->u, d->a, (size_t)d->F);
        }
        ra_linear_forward(d->y, d->u, w + p->w2, 1, d->F, C);
        for (int i = 0; i < C; i++) d->x[i] += d->y[i];
    }
    if (mine) d->cpos[d->n++] = t;
    ra_rmsnorm_forward(d->h, d->rstd, d->x, w + lay->final_norm, 1, C, eps);
    if (lay->lm_head == lay->emb) /* tied: logits = h E^T */
        for (int vv = 0; vv < d->V; vv++) {
            const float *e = w + lay->emb + (size_t)vv * C;
            float s = 0;
            for (int i = 0; i < C; i++) s += d->h[i] * e[i];
            d->logits[vv] = s;
        }
    else
        ra_linear_forward(d->logits, d->h, w + lay->lm_head, 1, C, d->V);
    return RA_OK;
}

/* ---- sampling ------------------------------------------------------------------ */

static int32_t sample(const float *logits, int V, float temp, int topk, uint64_t seed, uint64_t i)
{
    int best = 0;
    for (int v = 1; v < V; v++)
        if (logits[v] > logits[best]) best = v;
    if (temp <= 0) return best;
    /* the k-th largest logit is the cut */
    float cut = -INFINITY;
    if (topk > 0 && topk < V) {
        float hi = INFINITY;
        for (int r = 0; r < topk; r++) {
            float nx = -INFINITY;
            for (int v = 0; v < V; v++)
                if (logits[v] < hi && logits[v] > nx) nx = logits[v];
            hi = cut = nx;
        }
    }
    double z = 0;
    for (int v = 0; v < V; v++)
        if (logits[v] >= cut) z += exp((logits[v] - logits[best]) / temp);
    double u = (ra_rand_uniform(seed, i) * 0.5 + 0.5) * z, acc = 0;
    for (int v = 0; v < V; v++) {
        if (logits[v] < cut) continue;
        acc += exp((logits[v] - logits[best]) / temp);
        if (acc >= u) return v;
    }
    return best;
}

/* ---- the command ---------------------------------------------------------------- */

static ra_status read_prompt(const char *path, char **out, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) return RA_FAIL(RA_ERR_IO, "--prompt-file %s: cannot open: %s", path, strerror(errno));
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    while (buf) {
        n += fread(buf + n, 1, cap - n, f);
        if (n < cap) break;
        char *nb = realloc(buf, cap *= 2);
        if (!nb) free(buf);
        buf = nb;
    }
    int err = ferror(f);
    fclose(f);
    if (!buf) return RA_FAIL(RA_ERR_NOMEM, "--prompt-file %s: out of memory", path);
    if (err) {
        free(buf);
        return RA_FAIL(RA_ERR_IO, "--prompt-file %s: read error", path);
    }
    *out = buf;
    *len = n;
    return RA_OK;
}

typedef struct {
    ra_session_args s;
    const char *ckpt, *prompt, *prompt_file;
    int tokens, topk, seed;
    float temp;
} gen_args;

static ra_status parse(int argc, char **argv, gen_args *a, int *want_help)
{
    static const struct option opts[] = {
        { "checkpoint", required_argument, 0, 'k' }, { "prompt", required_argument, 0, 'p' },
        { "prompt-file", required_argument, 0, 'f' }, { "tokens", required_argument, 0, 'n' },
        { "temperature", required_argument, 0, 't' }, { "top-k", required_argument, 0, 'K' },
        { "seed", required_argument, 0, 's' },       { "set", required_argument, 0, 'S' },
        { "threads", required_argument, 0, 'T' },    { "help", no_argument, 0, 'h' },
        { 0, 0, 0, 0 },
    };
    *a = (gen_args){ .tokens = 64, .temp = 1.0f, .seed = 1 };
    ra_status st = RA_OK;
    int o;
    opterr = 0;
    optind = 1;
    while ((o = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        if (ra_session_opt(&a->s, o, optarg, &st)) {
            RA_TRY(st);
            continue;
        }
        switch (o) {
        case 'k': a->ckpt = optarg; break;
        case 'p': a->prompt = optarg; break;
        case 'f': a->prompt_file = optarg; break;
        case 'n': RA_TRY(ra_arg_int("--tokens", optarg, 0, 1 << 24, &a->tokens)); break;
        case 't':
            RA_TRY(ra_arg_float("--temperature", optarg, &a->temp));
            if (a->temp < 0) return RA_FAIL(RA_ERR_ARG, "--temperature: must be >= 0");
            break;
        case 'K': RA_TRY(ra_arg_int("--top-k", optarg, 0, 1 << 20, &a->topk)); break;
        case 's': RA_TRY(ra_arg_int("--seed", optarg, 0, 1 << 30, &a->seed)); break;
        case 'h': *want_help = 1; return RA_OK;
        default: return ra_arg_unknown("generate", o, argv[optind - 1]);
        }
    }
    if (!a->ckpt) return RA_FAIL(RA_ERR_ARG, "generate: --checkpoint is required");
    if (!!a->prompt == !!a->prompt_file)
        return RA_FAIL(RA_ERR_ARG, "generate: give exactly one of --prompt and --prompt-file");
    if (a->prompt && !a->prompt[0]) return RA_FAIL(RA_ERR_ARG, "generate: --prompt is empty");
    return RA_OK;
}

static ra_status run(const ra_cli *c, const gen_args *a, const char *path, const int32_t *prompt,
                     int64_t Lp, ra_session *s, decoder *d, int32_t *out)
{
    ra_config cfg;
    RA_TRY(ra_session_config(c, &a->s, path, &cfg));
    ra_set_threads(c, a->s.threads ? a->s.threads : cfg.threads);
    for (int64_t i = 0; i < Lp; i++)
        if (prompt[i] >= cfg.vocab)
            return ra_agree(c->comm, RA_FAIL(RA_ERR_ARG, "prompt byte %d at offset %lld is outside the model's vocabulary of %d",
                                             prompt[i], (long long)i, cfg.vocab));
    for (int l = 0; l < cfg.layers; l++) /* the decoder attends the way the full head does */
        if (strcmp(cfg.layer[l].head, "full"))
            return ra_agree(c->comm, RA_FAIL(RA_ERR_ARG, "generate: layer %d uses head %s; decoding supports full heads only",
                                             l, cfg.layer[l].head));
    int prefill = Lp >= c->size ? (int)Lp : 0; /* the ring needs a token per rank */
    ra_config pcfg = cfg;
    pcfg.seq_len = prefill ? prefill : c->size;
    snprintf(pcfg.source, sizeof pcfg.source, "recall"); /* the prompt is the data */
    pcfg.source_id = RA_SOURCE_RECALL; /* data.c reads the enum */
    RA_TRY(ra_session_open(c, s, &pcfg, 1, 0));
    RA_TRY(ra_session_load(c, s, path, 0, NULL));
    int64_t Lr = ra_model_local_len(s->model);
    int64_t cap = Lr + (Lp + a->tokens) / c->size + 2;
    RA_TRY(ra_agree(c->comm, decoder_init(d, &cfg, ra_model_params(s->model), ra_model_layout(s->model),
                                          c->comm, cap)));
    int64_t next = 0; /* prompt tokens already in the cache */
    if (prefill) {
        const int32_t *pos = ra_model_positions(s->model);
        for (int64_t i = 0; i < Lr; i++) {
            s->tok[i] = prompt[pos[i]];
            s->tgt[i] = -1;
        }
        ra_batch_stats bs;
        RA_TRY(ra_agree(c->comm, ra_model_step(s->model, s->tok, s->tgt, 0, 0.0f, 0, &bs)));
        decoder_fill(d, s->model);
        /* the last prompt position's logits, from the rank that owns it */
        memset(d->logits, 0, sizeof(float) * cfg.vocab);
        for (int64_t i = 0; i < Lr; i++)
            if (pos[i] == Lp - 1)
                memcpy(d->logits, ra_model_logits(s->model) + (size_t)i * cfg.vocab, sizeof(float) * cfg.vocab);
        ra_allreduce(MPI_IN_PLACE, d->logits, cfg.vocab, MPI_FLOAT, MPI_SUM, c->comm);
        next = Lp;
    } else {
        d->n = 0;
    }
    for (; next < Lp; next++) /* short prompts: token by token */
        RA_TRY(ra_agree(c->comm, decoder_step(d, prompt[next], (int32_t)next, c->comm)));
    for (int i = 0; i < a->tokens; i++) {
        out[i] = sample(d->logits, cfg.vocab, a->temp, a->topk, (uint64_t)a->seed, (uint64_t)i);
        if (i + 1 < a->tokens)
            RA_TRY(ra_agree(c->comm, decoder_step(d, out[i], (int32_t)(Lp + i), c->comm)));
    }
    return RA_OK;
}

ra_status ra_cmd_generate(ra_cli *c, int argc, char **argv)
{
    gen_args a;
    int want_help = 0;
    RA_TRY(ra_agree(c->comm, parse(argc, argv, &a, &want_help)));
    if (want_help) {
        ra_say(c, "%s\n%s", help, ra_session_help);
        return RA_OK;
    }
    char *text = NULL;
    size_t len = 0;
    ra_status st = RA_OK;
    if (a.prompt_file) {
        st = read_prompt(a.prompt_file, &text, &len);
        if (st == RA_OK && len == 0) st = RA_FAIL(RA_ERR_ARG, "--prompt-file %s is empty", a.prompt_file);
    } else {
        len = strlen(a.prompt);
    }
    const char *chars = a.prompt_file ? text : a.prompt;
    int32_t *prompt = NULL, *out = NULL;
    if (st == RA_OK) st = ra_alloc(&prompt, sizeof(int32_t) * (len + (size_t)a.tokens + 1), "the prompt");
    RA_TRY(ra_agree(c->comm, st));
    for (size_t i = 0; i < len; i++) prompt[i] = (unsigned char)chars[i];
    out = prompt + len;

    char path[RA_PATH_MAX + 32];
    ra_ckpt_resolve(path, sizeof path, a.ckpt);
    ra_session s = { 0 };
    decoder d = { .op = MPI_OP_NULL, .rec_type = MPI_DATATYPE_NULL };
    st = run(c, &a, path, prompt, (int64_t)len, &s, &d, out);
    if (st == RA_OK && c->rank == 0) {
        fwrite(chars, 1, len, stdout);
        for (int i = 0; i < a.tokens; i++) putchar(out[i]);
        putchar('\n');
        fflush(stdout);
    }
    decoder_free(&d);
    ra_session_close(&s);
    free(prompt);
    free(text);
    return st;
}
