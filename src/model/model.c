/* model.c - the transformer's forward and backward over this rank's tokens.
 *
 * Shapes (this file): N = B * Lr token rows, token-major [B][Lr][...];
 * C model width, H/Hkv heads, D head dim, F FFN width, V vocabulary.
 * The heads work head-major: q [B][H][Lr][D], k, v [B][Hkv][Lr][D].
 * Memory is allocated once at creation: parameters and gradients (one array
 * each), saved activations per layer, and scratch shared by all layers. */
#include "ringattn/model.h"

#include "ringattn/dist.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ringattn/heads.h"
#include "ringattn/layers.h"
#include "ringattn/layout.h"
#include "ringattn/mem.h"
#include "ringattn/rng.h"

typedef struct {
    float *x_in;  /* [N][C] residual stream entering the layer */
    float *h1;    /* [N][C] rmsnorm(x_in) */
    float *rstd1; /* [N] */
    float *q;     /* [B][H][Lr][D] after RoPE */
    float *k, *v; /* [B][Hkv][Lr][D] (k after RoPE) */
    float *o;     /* [B][H][Lr][D] head output */
    float *lse;   /* [B][H][Lr] */
    float *x_mid; /* [N][C] after the attention residual */
    float *h2;    /* [N][C] rmsnorm(x_mid) */
    float *rstd2; /* [N] */
} layer_acts;

struct ra_model {
    ra_config cfg;
    MPI_Comm comm;
    int P, rank, B, C, H, Hkv, D, F, V, nl, blk;
    int64_t L, Lr, N;
    int32_t *pos;          /* [Lr] */
    ra_param_layout lay;
    float *params, *grads; /* [total] each */
    ra_head *head[RA_MAX_LAYERS];
    layer_acts act[RA_MAX_LAYERS];
    float *acts;           /* one block behind act[] */
    /* scratch shared by the layers */
    float *x_out;          /* [N][C] final residual stream */
    float *hf, *rstdf;     /* [N][C], [N] final norm */
    float *logits;         /* [N][V], then dlogits */
    float *tok_buf;        /* [N][max(H,Hkv)*D] token-major projections */
    float *cat;            /* [N][H*D] head outputs, token-major */
    float *dq, *dk, *dv, *dout; /* head-major gradients */
    float *dx, *dh;        /* [N][C] */
    float *ffa, *ffb, *ffu, *ffd, *ffe; /* [blk][F] FFN block: a, b, u, dU, dB */
    float *scratch;        /* one allocation behind the scratch pointers */
    MPI_Request req[RA_MAX_LAYERS + 2];
    int nreq;
    double wait;
};

/* ---- parameters ------------------------------------------------------------ */

static size_t take(size_t *at, size_t n)
{
    size_t off = *at;
    *at += (n + 15) / 16 * 16; /* 64-byte aligned tensors */
    return off;
}

static void plan_params(ra_model *m)
{
    ra_param_layout *p = &m->lay;
    size_t at = 0;
    const size_t C = m->C, HD = (size_t)m->H * m->D, KD = (size_t)m->Hkv * m->D, F = m->F;
    p->emb = take(&at, (size_t)m->V * C);
    for (int l = 0; l < m->nl; l++) {
        ra_layer_params *q = &p->layer[l];
        q->begin = at;
        q->attn_norm = take(&at, C);
        q->wq = take(&at, C * HD);
        q->wk = take(&at, C * KD);
        q->wv = take(&at, C * KD);
        q->wo = take(&at, HD * C);
        q->ffn_norm = take(&at, C);
        q->w1 = take(&at, C * F);
        q->w3 = strcmp(m->cfg.ffn, "swiglu") == 0 ? take(&at, C * F) : q->w1;
        q->w2 = take(&at, F * C);
        q->end = at;
    }
    p->final_norm = take(&at, C);
    p->lm_head = m->cfg.tie_embeddings ? p->emb : take(&at, C * (size_t)m->V);
    p->total = at;
}

/* N(0, std) from the counter-based generator: value i of stream seed. */
static float normal(uint64_t seed, uint64_t i, float std)
{
    double u1 = ((double)(ra_rand_u64(seed, 2 * i) >> 11) + 0.5) * 0x1p-53;
    double u2 = (double)(ra_rand_u64(seed, 2 * i + 1) >> 11) * 0x1p-53;
    return (float)(std * sqrt(-2.0 * log(u1)) * cos(2.0 * M_PI * u2));
}

static void fill_normal(float *w, size_t n, uint64_t seed, size_t offset, float std)
{
    for (size_t i = 0; i < n; i++) w[i] = normal(seed, offset + i, std);
}

void ra_model_init(ra_model *m, uint64_t seed)
{
    const ra_param_layout *p = &m->lay;
    float *w = m->params;
    const float std = m->cfg.init_std, out_std = std / sqrtf(2.0f * m->nl);
    const size_t C = m->C, HD = (size_t)m->H * m->D, KD = (size_t)m->Hkv * m->D, F = m->F;
    memset(w, 0, sizeof(float) * p->total);
    fill_normal(w + p->emb, (size_t)m->V * C, seed, p->emb, std);
    for (int l = 0; l < m->nl; l++) {
        const ra_layer_params *q = &p->layer[l];
        for (size_t i = 0; i < C; i++) w[q->attn_norm + i] = w[q->ffn_norm + i] = 1.0f;
        fill_normal(w + q->wq, C * HD, seed, q->wq, std);
        fill_normal(w + q->wk, C * KD, seed, q->wk, std);
        fill_normal(w + q->wv, C * KD, seed, q->wv, std);
        fill_normal(w + q->wo, HD * C, seed, q->wo, out_std); /* residual branches scaled */
        fill_normal(w + q->w1, C * F, seed, q->w1, std);
        if (q->w3 != q->w1) fill_normal(w + q->w3, C * F, seed, q->w3, std);
        fill_normal(w + q->w2, F * C, seed, q->w2, out_std);
    }
    for (size_t i = 0; i < C; i++) w[p->final_norm + i] = 1.0f;
    if (p->lm_head != p->emb) fill_normal(w + p->lm_head, C * (size_t)m->V, seed, p->lm_head, std);
}

void ra_model_zero_grads(ra_model *m) { memset(m->grads, 0, sizeof(float) * m->lay.total); }

/* ---- creation --------------------------------------------------------------- */

ra_status ra_model_create(ra_model **out, const ra_config *cfg, int micro_batch, MPI_Comm comm)
{
    *out = NULL;
    ra_model *m = calloc(1, sizeof *m);
    if (!m) return RA_FAIL(RA_ERR_NOMEM, "out of memory for the model");
    *out = m;
    m->cfg = *cfg;
    m->comm = comm;
    MPI_Comm_size(comm, &m->P);
    MPI_Comm_rank(comm, &m->rank);
    m->B = micro_batch;
    m->C = cfg->dim, m->H = cfg->heads, m->Hkv = cfg->kv_heads, m->D = cfg->head_dim;
    m->F = cfg->ffn_dim, m->V = cfg->vocab, m->nl = cfg->layers, m->blk = cfg->ffn_block;
    m->L = cfg->seq_len;
    ra_layout layout;
    RA_TRY(ra_layout_parse(cfg->layout, &layout));
    if (m->L < m->P)
        return RA_FAIL(RA_ERR_ARG, "data.seq_len = %lld is shorter than the %d ranks", (long long)m->L,
                       m->P);
    m->Lr = ra_layout_count(layout, m->L, m->P, m->rank);
    m->N = (int64_t)m->B * m->Lr;
    RA_TRY(ra_alloc(&m->pos, sizeof(int32_t) * (m->Lr + 1), "positions"));
    ra_layout_positions(layout, m->L, m->P, m->rank, m->pos);

    plan_params(m);
    RA_TRY(ra_alloc(&m->params, sizeof(float) * m->lay.total, "parameters"));
    RA_TRY(ra_alloc(&m->grads, sizeof(float) * m->lay.total, "gradients"));

    for (int l = 0; l < m->nl; l++) {
        ra_head_opts ho = { .ring = { .B = m->B, .H = m->H, .Hkv = m->Hkv, .D = m->D, .L = m->L,
                                      .causal = 1, .layout = layout, .chunk = cfg->chunk },
                            .layer = &cfg->layer[l] };
        RA_TRY(ra_head_create(&m->head[l], &ho, comm));
    }

    /* saved activations: one allocation for all layers */
    const size_t N = (size_t)m->N, C = m->C, NQ = N * m->H * m->D, NK = N * m->Hkv * m->D;
    const size_t NR = N * m->H;
    const size_t per_layer = 4 * N * C + 2 * N + 2 * NQ + 2 * NK + NR + 6 * 16;
    RA_TRY(ra_alloc(&m->acts, sizeof(float) * per_layer * m->nl, "activations"));
    float *a = m->acts;
#define CARVE(ptr, n) (ptr = a, a += ((n) + 15) / 16 * 16)
    for (int l = 0; l < m->nl; l++) {
        layer_acts *t = &m->act[l];
        CARVE(t->x_in, N * C);
        CARVE(t->h1, N * C);
        CARVE(t->rstd1, N);
        CARVE(t->q, NQ);
        CARVE(t->k, NK);
        CARVE(t->v, NK);
        CARVE(t->o, NQ);
        CARVE(t->lse, NR);
        CARVE(t->x_mid, N * C);
        CARVE(t->h2, N * C);
        CARVE(t->rstd2, N);
    }
    const size_t HD = (size_t)(m->H > m->Hkv ? m->H : m->Hkv) * m->D, F = m->F, blk = m->blk;
    const size_t nscratch =
        4 * N * C + N + N * m->V + N * HD + 3 * NQ + 2 * NK + 5 * blk * F + 18 * 16;
    RA_TRY(ra_alloc(&m->scratch, sizeof(float) * nscratch, "scratch"));
    a = m->scratch;
    CARVE(m->x_out, N * C);
    CARVE(m->hf, N * C);
    CARVE(m->rstdf, N);
    CARVE(m->logits, N * m->V);
    CARVE(m->tok_buf, N * HD);
    CARVE(m->cat, NQ);
    CARVE(m->dq, NQ);
    CARVE(m->dout, NQ);
    CARVE(m->dk, NK);
    CARVE(m->dv, NK);
    CARVE(m->dx, N * C);
    CARVE(m->dh, N * C);
    CARVE(m->ffa, blk * F);
    CARVE(m->ffb, blk * F);
    CARVE(m->ffu, blk * F);
    CARVE(m->ffd, blk * F);
    CARVE(m->ffe, blk * F);
#undef CARVE
    return RA_OK;
}

void ra_model_destroy(ra_model *m)
{
    if (!m) return;
    for (int l = 0; l < m->nl; l++)
        if (m->head[l]) m->head[l]->kind->destroy(m->head[l]);
    free(m->pos);
    free(m->params);
    free(m->grads);
    free(m->acts);
    free(m->scratch);
    free(m);
}

const ra_param_layout *ra_model_layout(const ra_model *m) { return &m->lay; }
float *ra_model_params(ra_model *m) { return m->params; }
float *ra_model_grads(ra_model *m) { return m->grads; }
size_t ra_model_nparams(const ra_model *m) { return m->lay.total; }
int64_t ra_model_local_len(const ra_model *m) { return m->Lr; }
const int32_t *ra_model_positions(const ra_model *m) { return m->pos; }
const float *ra_model_logits(const ra_model *m) { return m->logits; }

ra_status ra_model_kappa(ra_model *m, double *kappa)
{
    const int D = m->D, H = m->H, nl = m->nl;
    double *G = calloc((size_t)nl * H * D * D, sizeof(double));
    if (!G) return RA_FAIL(RA_ERR_NOMEM, "kappa: out of memory");
    for (int l = 0; l < nl; l++)
        for (int b = 0; b < m->B; b++)
            for (int h = 0; h < H; h++)
                ra_gram_accumulate(G + ((size_t)l * H + h) * D * D, m->act[l].o + (((size_t)b * H + h) * m->Lr) * D,
                                   (int)m->Lr, D);
    int rc = ra_allreduce(MPI_IN_PLACE, G, nl * H * D * D, MPI_DOUBLE, MPI_SUM, m->comm);
    for (int i = 0; rc == MPI_SUCCESS && i < nl * H; i++) {
        double smax, smin;
        kappa[i] = ra_kappa_from_gram(G + (size_t)i * D * D, D, &smax, &smin);
    }
    free(G);
    if (rc != MPI_SUCCESS) return RA_FAIL(RA_ERR_MPI, "rank %d: kappa: reducing Gram matrices failed", m->rank);
    return RA_OK;
}

void ra_model_kv(const ra_model *m, int l, const float **k, const float **v)
{
    *k = m->act[l].k;
    *v = m->act[l].v;
}

double ra_model_flops(const ra_model *m, int B)
{
    const double C = m->C, HD = (double)m->H * m->D, KD = (double)m->Hkv * m->D, F = m->F;
    double ffn = strcmp(m->cfg.ffn, "swiglu") == 0 ? 3 * C * F : 2 * C * F;
    double matmul = m->nl * (C * HD * 2 + C * KD * 2 + ffn) + C * m->V;
    double tokens = (double)B * m->L;
    double attn = m->nl * 4.0 * m->H * m->D * (double)m->L * m->L * 0.5 * B; /* causal fwd */
    return 6.0 * matmul * tokens + 3.0 * attn;
}

/* ---- layout transforms ------------------------------------------------------- */

/* [B][Lr][nh][D] -> [B][nh][Lr][D] */
static void tok_to_head(float *dst, const float *src, int B, int64_t Lr, int nh, int D)
{
    for (int b = 0; b < B; b++)
        for (int64_t i = 0; i < Lr; i++)
            for (int h = 0; h < nh; h++)
                memcpy(dst + (((size_t)b * nh + h) * Lr + i) * D,
                       src + (((size_t)b * Lr + i) * nh + h) * D, sizeof(float) * D);
}

/* [B][nh][Lr][D] -> [B][Lr][nh][D] */
static void head_to_tok(float *dst, const float *src, int B, int64_t Lr, int nh, int D)
{
    for (int b = 0; b < B; b++)
        for (int h = 0; h < nh; h++)
            for (int64_t i = 0; i < Lr; i++)
                memcpy(dst + (((size_t)b * Lr + i) * nh + h) * D,
                       src + (((size_t)b * nh + h) * Lr + i) * D, sizeof(float) * D);
}

/* ---- one layer ----------------------------------------------------------------- */

/* The spectral preconditioner (DESIGN §6) uses W_Q, W_K, W_V as W + lambda I
 * (I: ones on the diagonal of the [C][out] matrix): y += lambda x on the
 * first min(C, out) columns, and in the backward dx += lambda dy there. */
static float spectral_lambda(const ra_model *m, int l)
{
    return strcmp(m->cfg.layer[l].precond, "spectral") ? 0.0f : m->cfg.layer[l].precond_lambda;
}

static void add_identity(float *y, const float *x, int N, int C, int out, float lam)
{
    if (lam == 0.0f) return;
    const int n = C < out ? C : out;
    for (int i = 0; i < N; i++)
        for (int j = 0; j < n; j++) y[(size_t)i * out + j] += lam * x[(size_t)i * C + j];
}

static void add_identity_grad(float *dx, const float *dy, int N, int C, int out, float lam)
{
    if (lam == 0.0f) return;
    const int n = C < out ? C : out;
    for (int i = 0; i < N; i++)
        for (int j = 0; j < n; j++) dx[(size_t)i * C + j] += lam * dy[(size_t)i * out + j];
}

static void rope_all(ra_model *m, float *x, int nh, int backward)
{
    for (int b = 0; b < m->B; b++) {
        float *xb = x + (size_t)b * nh * m->Lr * m->D;
        if (backward) ra_rope_backward(xb, nh, (int)m->Lr, m->D, m->pos, m->cfg.rope_theta);
        else ra_rope_forward(xb, nh, (int)m->Lr, m->D, m->pos, m->cfg.rope_theta);
    }
}

static void ffn_block_forward(ra_model *m, const ra_layer_params *p, const float *h, float *y, int n)
{
    const float *w = m->params;
    ra_linear_forward(m->ffa, h, w + p->w1, n, m->C, m->F);
    if (p->w3 != p->w1) {
        ra_linear_forward(m->ffb, h, w + p->w3, n, m->C, m->F);
        ra_swiglu_forward(m->ffu, m->ffa, m->ffb, (size_t)n * m->F);
    } else {
        ra_gelu_forward(m->ffu, m->ffa, (size_t)n * m->F);
    }
    ra_linear_forward(y, m->ffu, w + p->w2, n, m->F, m->C);
}

static ra_status layer_forward(ra_model *m, int l, const float *x, float *x_out)
{
    const ra_layer_params *p = &m->lay.layer[l];
    layer_acts *t = &m->act[l];
    const float *w = m->params;
    const int N = (int)m->N, C = m->C, HD = m->H * m->D, KD = m->Hkv * m->D;
    memcpy(t->x_in, x, sizeof(float) * N * C);
    ra_rmsnorm_forward(t->h1, t->rstd1, t->x_in, w + p->attn_norm, N, C, m->cfg.norm_eps);
    const float lam = spectral_lambda(m, l);
    ra_linear_forward(m->tok_buf, t->h1, w + p->wq, N, C, HD);
    add_identity(m->tok_buf, t->h1, N, C, HD, lam);
    tok_to_head(t->q, m->tok_buf, m->B, m->Lr, m->H, m->D);
    ra_linear_forward(m->tok_buf, t->h1, w + p->wk, N, C, KD);
    add_identity(m->tok_buf, t->h1, N, C, KD, lam);
    tok_to_head(t->k, m->tok_buf, m->B, m->Lr, m->Hkv, m->D);
    ra_linear_forward(m->tok_buf, t->h1, w + p->wv, N, C, KD);
    add_identity(m->tok_buf, t->h1, N, C, KD, lam);
    tok_to_head(t->v, m->tok_buf, m->B, m->Lr, m->Hkv, m->D);
    rope_all(m, t->q, m->H, 0);
    rope_all(m, t->k, m->Hkv, 0);
    ra_head *hd = m->head[l];
    RA_TRY(hd->kind->forward(hd, t->q, t->k, t->v, NULL, t->o, t->lse));
    m->wait += hd->kind->wait_seconds(hd);
    head_to_tok(m->tok_buf, t->o, m->B, m->Lr, m->H, m->D);
    ra_linear_forward(t->x_mid, m->tok_buf, w + p->wo, N, HD, C);
    for (size_t i = 0; i < (size_t)N * C; i++) t->x_mid[i] += t->x_in[i];
    ra_rmsnorm_forward(t->h2, t->rstd2, t->x_mid, w + p->ffn_norm, N, C, m->cfg.norm_eps);
    for (int r0 = 0; r0 < N; r0 += m->blk) { /* blockwise FFN */
        int n = N - r0 < m->blk ? N - r0 : m->blk;
        float *y = x_out + (size_t)r0 * C;
        ffn_block_forward(m, p, t->h2 + (size_t)r0 * C, y, n);
        for (size_t i = 0; i < (size_t)n * C; i++) y[i] += t->x_mid[(size_t)r0 * C + i];
    }
    return RA_OK;
}

/* dx: gradient of the layer's output on entry, of its input on exit. */
static ra_status layer_backward(ra_model *m, int l, float *dx)
{
    const ra_layer_params *p = &m->lay.layer[l];
    layer_acts *t = &m->act[l];
    const float *w = m->params;
    float *g = m->grads;
    const int N = (int)m->N, C = m->C, F = m->F, HD = m->H * m->D, KD = m->Hkv * m->D;
    const int swiglu = p->w3 != p->w1;

    /* FFN, block by block, recomputing a, b, u */
    memset(m->dh, 0, sizeof(float) * N * C);
    for (int r0 = 0; r0 < N; r0 += m->blk) {
        int n = N - r0 < m->blk ? N - r0 : m->blk;
        const float *h = t->h2 + (size_t)r0 * C, *dy = dx + (size_t)r0 * C;
        ra_linear_forward(m->ffa, h, w + p->w1, n, C, F);
        if (swiglu) {
            ra_linear_forward(m->ffb, h, w + p->w3, n, C, F);
            ra_swiglu_forward(m->ffu, m->ffa, m->ffb, (size_t)n * F);
        } else {
            ra_gelu_forward(m->ffu, m->ffa, (size_t)n * F);
        }
        float *du = m->ffd, *da = m->ffu, *db = m->ffe; /* u is not needed after dU */
        memset(du, 0, sizeof(float) * n * F);
        ra_linear_backward(du, g + p->w2, dy, m->ffu, w + p->w2, n, F, C); /* dU = dY W2^T */
        memset(da, 0, sizeof(float) * n * F);
        if (swiglu) {
            memset(db, 0, sizeof(float) * n * F);
            ra_swiglu_backward(da, db, du, m->ffa, m->ffb, (size_t)n * F);
            ra_linear_backward(m->dh + (size_t)r0 * C, g + p->w3, db, h, w + p->w3, n, C, F);
        } else {
            ra_gelu_backward(da, du, m->ffa, (size_t)n * F);
        }
        ra_linear_backward(m->dh + (size_t)r0 * C, g + p->w1, da, h, w + p->w1, n, C, F);
    }
    ra_rmsnorm_backward(dx, g + p->ffn_norm, m->dh, t->x_mid, w + p->ffn_norm, t->rstd2, N, C);

    /* attention: dx is now the gradient at x_mid; the residual passes it on */
    float *dcat = m->tok_buf;
    memset(dcat, 0, sizeof(float) * N * HD);
    head_to_tok(m->cat, t->o, m->B, m->Lr, m->H, m->D); /* the concat the forward fed to Wo */
    ra_linear_backward(dcat, g + p->wo, dx, m->cat, w + p->wo, N, HD, C);
    tok_to_head(m->dout, dcat, m->B, m->Lr, m->H, m->D);
    ra_head *hd = m->head[l];
    RA_TRY(hd->kind->backward(hd, t->q, t->k, t->v, NULL, t->o, t->lse, m->dout, m->dq, m->dk, m->dv));
    m->wait += hd->kind->wait_seconds(hd);
    rope_all(m, m->dq, m->H, 1);
    rope_all(m, m->dk, m->Hkv, 1);
    memset(m->dh, 0, sizeof(float) * N * C);
    const float lam = spectral_lambda(m, l);
    head_to_tok(m->tok_buf, m->dq, m->B, m->Lr, m->H, m->D);
    ra_linear_backward(m->dh, g + p->wq, m->tok_buf, t->h1, w + p->wq, N, C, HD);
    add_identity_grad(m->dh, m->tok_buf, N, C, HD, lam);
    head_to_tok(m->tok_buf, m->dk, m->B, m->Lr, m->Hkv, m->D);
    ra_linear_backward(m->dh, g + p->wk, m->tok_buf, t->h1, w + p->wk, N, C, KD);
    add_identity_grad(m->dh, m->tok_buf, N, C, KD, lam);
    head_to_tok(m->tok_buf, m->dv, m->B, m->Lr, m->Hkv, m->D);
    ra_linear_backward(m->dh, g + p->wv, m->tok_buf, t->h1, w + p->wv, N, C, KD);
    add_identity_grad(m->dh, m->tok_buf, N, C, KD, lam);
    ra_rmsnorm_backward(dx, g + p->attn_norm, m->dh, t->x_in, w + p->attn_norm, t->rstd1, N, C);
    return RA_OK;
}

/* ---- whole model ------------------------------------------------------------- */

static ra_status reduce_slice(ra_model *m, size_t begin, size_t end)
{
    if (m->P == 1 || end <= begin) return RA_OK;
    if (end - begin > (size_t)INT32_MAX)
        return RA_FAIL(RA_ERR_ARG, "a parameter slice of %zu floats is too large for one reduction",
                       end - begin);
    int rc = MPI_Iallreduce(MPI_IN_PLACE, m->grads + begin, (int)(end - begin), MPI_FLOAT, MPI_SUM,
                            m->comm, &m->req[m->nreq]);
    if (rc != MPI_SUCCESS) return RA_FAIL(RA_ERR_MPI, "rank %d: MPI_Iallreduce of gradients failed", m->rank);
    m->nreq++;
    return RA_OK;
}

ra_status ra_model_wait_grads(ra_model *m)
{
    if (m->nreq == 0) return RA_OK;
    double t0 = ra_now();
    int rc = ra_waitall(m->nreq, m->req, "gradient reduction", -1);
    m->wait += ra_now() - t0;
    m->nreq = 0;
    if (rc != MPI_SUCCESS) return RA_FAIL(RA_ERR_MPI, "rank %d: waiting for gradient reductions failed", m->rank);
    return RA_OK;
}

ra_status ra_model_step(ra_model *m, const int32_t *tok, const int32_t *tgt, int backward,
                        float grad_scale, int reduce, ra_batch_stats *stats)
{
    const int N = (int)m->N, C = m->C, V = m->V;
    const ra_param_layout *p = &m->lay;
    const float *w = m->params;
    const int tied = p->lm_head == p->emb;
    m->wait = 0;
    for (int i = 0; i < N; i++)
        if (tok[i] < 0 || tok[i] >= V)
            return RA_FAIL(RA_ERR_ARG, "token %d at row %d is outside the vocabulary [0, %d)", tok[i], i, V);

    float *x = m->dx; /* the residual stream, carried layer to layer */
    ra_embed_forward(x, tok, w + p->emb, N, C);
    for (int l = 0; l < m->nl; l++) {
        RA_TRY(layer_forward(m, l, x, m->x_out));
        memcpy(x, m->x_out, sizeof(float) * N * C);
    }
    ra_rmsnorm_forward(m->hf, m->rstdf, m->x_out, w + p->final_norm, N, C, m->cfg.norm_eps);
    if (tied) /* logits = hf E^T */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, V, C, 1.0f, m->hf, C, w + p->emb, C,
                    0.0f, m->logits, V);
    else
        ra_linear_forward(m->logits, m->hf, w + p->lm_head, N, C, V);
    int64_t count = 0, correct = 0;
    float *dlogits = backward ? m->logits : NULL; /* in place: logits are not needed after */
    double loss = ra_xent(dlogits, m->logits, tgt, N, V, grad_scale, &count, &correct);
    stats->loss_sum = loss, stats->count = count, stats->correct = correct;
    if (!backward) {
        stats->wait_seconds = m->wait;
        return RA_OK;
    }

    float *g = m->grads;
    float *dx = m->dx;
    memset(m->dh, 0, sizeof(float) * N * C);
    if (tied) { /* dhf = dlogits E ; dE += dlogits^T hf */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, C, V, 1.0f, dlogits, V, w + p->emb,
                    C, 0.0f, m->dh, C);
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, V, C, N, 1.0f, dlogits, V, m->hf, C,
                    1.0f, g + p->emb, C);
    } else {
        ra_linear_backward(m->dh, g + p->lm_head, dlogits, m->hf, w + p->lm_head, N, C, V);
    }
    memset(dx, 0, sizeof(float) * N * C);
    ra_rmsnorm_backward(dx, g + p->final_norm, m->dh, m->x_out, w + p->final_norm, m->rstdf, N, C);
    if (reduce) { /* final norm (and untied head) are done: start their reduction */
        RA_TRY(reduce_slice(m, p->final_norm, p->final_norm + ((C + 15) / 16 * 16)));
        if (!tied) RA_TRY(reduce_slice(m, p->lm_head, p->total));
    }
    for (int l = m->nl - 1; l >= 0; l--) {
        RA_TRY(layer_backward(m, l, dx));
        if (reduce) RA_TRY(reduce_slice(m, p->layer[l].begin, p->layer[l].end));
    }
    ra_embed_backward(g + p->emb, tok, dx, N, C);
    if (reduce) RA_TRY(reduce_slice(m, p->emb, p->emb + (size_t)V * C));
    stats->wait_seconds = m->wait;
    return RA_OK;
}
