/* layer.c - the transformer's blocks, each a forward/backward pair over any
 * number of tokens: the model runs them over its N = B * Lr tokens, the
 * decoder over one (model_internal.h has the shapes). */
#include <cblas.h>
#include <omp.h>
#include <string.h>

#include "model_internal.h"
#include "ringattn/layers.h"
#include "ringattn/threads.h"

/* y += x over n floats (the residual adds); elementwise, so threaded over
 * ra_threads() for large n with results independent of the thread count */
static void add_into(float *y, const float *x, size_t n)
{
    const int nt = n >= 32768 && !omp_in_parallel() ? ra_threads() : 1;
#pragma omp parallel for num_threads(nt) schedule(static) if (nt > 1)
    for (size_t i = 0; i < n; i++) y[i] += x[i];
}

void ra_net_init(ra_net *net, const ra_config *cfg, const ra_param_layout *lay, const float *w)
{
    *net = (ra_net){ .cfg = cfg, .lay = lay, .w = w, .C = cfg->dim, .H = cfg->heads, .Hkv = cfg->kv_heads,
                     .D = cfg->head_dim, .F = cfg->ffn_dim, .V = cfg->vocab, .nl = cfg->layers,
                     .blk = cfg->ffn_block };
}

/* ---- layout transforms ------------------------------------------------------- */

/* threads for a layout move of n floats: memory-bound, so one team only
 * when the copy is large (2 MiB at L = 2048, C = 256) */
static int move_threads(size_t n) { return n >= 32768 && !omp_in_parallel() ? ra_threads() : 1; }

/* [B][Lr][nh][D] -> [B][nh][Lr][D]; rows (tokens) shared out over threads */
static void tok_to_head(float *dst, const float *src, int B, int64_t Lr, int nh, int D)
{
    const int nt = move_threads((size_t)B * Lr * nh * D);
    for (int b = 0; b < B; b++) {
#pragma omp parallel for num_threads(nt) schedule(static) if (nt > 1)
        for (int64_t i = 0; i < Lr; i++)
            for (int h = 0; h < nh; h++)
                memcpy(dst + (((size_t)b * nh + h) * Lr + i) * D, src + (((size_t)b * Lr + i) * nh + h) * D,
                       sizeof(float) * D);
    }
}

/* [B][nh][Lr][D] -> [B][Lr][nh][D] */
static void head_to_tok(float *dst, const float *src, int B, int64_t Lr, int nh, int D)
{
    const int nt = move_threads((size_t)B * Lr * nh * D);
    for (int b = 0; b < B; b++) {
#pragma omp parallel for num_threads(nt) schedule(static) if (nt > 1)
        for (int64_t i = 0; i < Lr; i++)
            for (int h = 0; h < nh; h++)
                memcpy(dst + (((size_t)b * Lr + i) * nh + h) * D, src + (((size_t)b * nh + h) * Lr + i) * D,
                       sizeof(float) * D);
    }
}

/* ---- attention input: rmsnorm, Q/K/V projections, RoPE ------------------------ */

/* The spectral preconditioner (docs/design.md §6) uses W_Q, W_K, W_V as W + lambda I
 * (I: ones on the diagonal of the [C][out] matrix): y += lambda x on the
 * first min(C, out) columns, and in the backward dx += lambda dy there. */
static float spectral_lambda(const ra_net *net, int l)
{
    const ra_layer_config *lc = &net->cfg->layer[l];
    return lc->precond_id == RA_PRECOND_SPECTRAL ? lc->precond_lambda : 0.0f;
}

/* y [N][out] = h [N][C] W (+ lambda h) */
static void proj_forward(float *y, const float *h, const float *w, int N, int C, int out, float lam)
{
    ra_linear_forward(y, h, w, N, C, out);
    if (lam == 0.0f) return;
    const int n = C < out ? C : out;
    for (int i = 0; i < N; i++)
        for (int j = 0; j < n; j++) y[(size_t)i * out + j] += lam * h[(size_t)i * C + j];
}

/* dh += dy (W + lambda I)^T; dW += h^T dy */
static void proj_backward(float *dh, float *dw, const float *dy, const float *h, const float *w, int N, int C,
                          int out, float lam)
{
    ra_linear_backward(dh, dw, dy, h, w, N, C, out);
    if (lam == 0.0f) return;
    const int n = C < out ? C : out;
    for (int i = 0; i < N; i++)
        for (int j = 0; j < n; j++) dh[(size_t)i * C + j] += lam * dy[(size_t)i * out + j];
}

/* RoPE over x [B][nh][Lr][D] (each sequence at the same positions). */
static void rope(const ra_net *net, float *x, int B, int64_t Lr, int nh, const int32_t *pos, int backward)
{
    for (int b = 0; b < B; b++) {
        float *xb = x + (size_t)b * nh * Lr * net->D;
        if (backward) ra_rope_backward(xb, nh, (int)Lr, net->D, pos, net->cfg->rope_theta);
        else ra_rope_forward(xb, nh, (int)Lr, net->D, pos, net->cfg->rope_theta);
    }
}

void ra_attn_in_forward(const ra_net *net, int l, int B, int64_t Lr, const int32_t *pos, const float *x,
                        float *h, float *rstd, float *tok_buf, float *q, float *k, float *v)
{
    const ra_layer_params *p = &net->lay->layer[l];
    const float *w = net->w;
    const int N = (int)(B * Lr), C = net->C, HD = net->H * net->D, KD = net->Hkv * net->D;
    const float lam = spectral_lambda(net, l);
    ra_rmsnorm_forward(h, rstd, x, w + p->attn_norm, N, C, net->cfg->norm_eps);
    proj_forward(tok_buf, h, w + p->wq, N, C, HD, lam);
    tok_to_head(q, tok_buf, B, Lr, net->H, net->D);
    proj_forward(tok_buf, h, w + p->wk, N, C, KD, lam);
    tok_to_head(k, tok_buf, B, Lr, net->Hkv, net->D);
    proj_forward(tok_buf, h, w + p->wv, N, C, KD, lam);
    tok_to_head(v, tok_buf, B, Lr, net->Hkv, net->D);
    rope(net, q, B, Lr, net->H, pos, 0);
    rope(net, k, B, Lr, net->Hkv, pos, 0);
}

void ra_attn_in_backward(const ra_net *net, float *grads, int l, int B, int64_t Lr, const int32_t *pos,
                         const float *x, const float *h, const float *rstd, float *dq, float *dk,
                         float *dv, float *tok_buf, float *dh, float *dx)
{
    const ra_layer_params *p = &net->lay->layer[l];
    const float *w = net->w;
    const int N = (int)(B * Lr), C = net->C, HD = net->H * net->D, KD = net->Hkv * net->D;
    const float lam = spectral_lambda(net, l);
    rope(net, dq, B, Lr, net->H, pos, 1);
    rope(net, dk, B, Lr, net->Hkv, pos, 1);
    memset(dh, 0, sizeof(float) * N * C);
    head_to_tok(tok_buf, dq, B, Lr, net->H, net->D);
    proj_backward(dh, grads + p->wq, tok_buf, h, w + p->wq, N, C, HD, lam);
    head_to_tok(tok_buf, dk, B, Lr, net->Hkv, net->D);
    proj_backward(dh, grads + p->wk, tok_buf, h, w + p->wk, N, C, KD, lam);
    head_to_tok(tok_buf, dv, B, Lr, net->Hkv, net->D);
    proj_backward(dh, grads + p->wv, tok_buf, h, w + p->wv, N, C, KD, lam);
    ra_rmsnorm_backward(dx, grads + p->attn_norm, dh, x, w + p->attn_norm, rstd, N, C);
}

/* ---- attention output: Wo and the residual ------------------------------------- */

void ra_attn_out_forward(const ra_net *net, int l, int B, int64_t Lr, const float *o, const float *x_in,
                         float *cat, float *x_mid)
{
    const ra_layer_params *p = &net->lay->layer[l];
    const int N = (int)(B * Lr), C = net->C, HD = net->H * net->D;
    head_to_tok(cat, o, B, Lr, net->H, net->D);
    ra_linear_forward(x_mid, cat, net->w + p->wo, N, HD, C);
    add_into(x_mid, x_in, (size_t)N * C);
}

void ra_attn_out_backward(const ra_net *net, float *grads, int l, int B, int64_t Lr, const float *o,
                          const float *dy, float *cat, float *dcat, float *dout)
{
    const ra_layer_params *p = &net->lay->layer[l];
    const int N = (int)(B * Lr), C = net->C, HD = net->H * net->D;
    memset(dcat, 0, sizeof(float) * N * HD);
    head_to_tok(cat, o, B, Lr, net->H, net->D); /* the concat the forward fed to Wo */
    ra_linear_backward(dcat, grads + p->wo, dy, cat, net->w + p->wo, N, HD, C);
    tok_to_head(dout, dcat, B, Lr, net->H, net->D);
}

/* ---- FFN (SwiGLU or GELU), blockwise ------------------------------------------- */

/* u [n][F] = act(h W1 [, h W3]); a (and b) kept for the backward */
static void ffn_inner(const ra_net *net, const ra_layer_params *p, const float *h, int n, const ra_ffn_scratch *s)
{
    const float *w = net->w;
    ra_linear_forward(s->a, h, w + p->w1, n, net->C, net->F);
    if (net->cfg->ffn_id == RA_FFN_SWIGLU) {
        ra_linear_forward(s->b, h, w + p->w3, n, net->C, net->F);
        ra_swiglu_forward(s->u, s->a, s->b, (size_t)n * net->F);
    } else {
        ra_gelu_forward(s->u, s->a, (size_t)n * net->F);
    }
}

void ra_ffn_forward(const ra_net *net, int l, int N, const float *x_mid, float *h, float *rstd, float *y,
                    const ra_ffn_scratch *s)
{
    const ra_layer_params *p = &net->lay->layer[l];
    const int C = net->C;
    ra_rmsnorm_forward(h, rstd, x_mid, net->w + p->ffn_norm, N, C, net->cfg->norm_eps);
    for (int r0 = 0; r0 < N; r0 += net->blk) {
        const int n = N - r0 < net->blk ? N - r0 : net->blk;
        float *yb = y + (size_t)r0 * C;
        ffn_inner(net, p, h + (size_t)r0 * C, n, s);
        ra_linear_forward(yb, s->u, net->w + p->w2, n, net->F, C);
        add_into(yb, x_mid + (size_t)r0 * C, (size_t)n * C);
    }
}

void ra_ffn_backward(const ra_net *net, float *grads, int l, int N, const float *x_mid, const float *h,
                     const float *rstd, float *dx, float *dh, const ra_ffn_scratch *s)
{
    const ra_layer_params *p = &net->lay->layer[l];
    const float *w = net->w;
    const int C = net->C, F = net->F, swiglu = net->cfg->ffn_id == RA_FFN_SWIGLU;
    memset(dh, 0, sizeof(float) * N * C);
    for (int r0 = 0; r0 < N; r0 += net->blk) {
        const int n = N - r0 < net->blk ? N - r0 : net->blk;
        const float *hb = h + (size_t)r0 * C, *dy = dx + (size_t)r0 * C;
        float *dhb = dh + (size_t)r0 * C;
        ffn_inner(net, p, hb, n, s);
        float *du = s->d, *da = s->u, *db = s->e; /* u is not needed after dU */
        memset(du, 0, sizeof(float) * n * F);
        ra_linear_backward(du, grads + p->w2, dy, s->u, w + p->w2, n, F, C); /* dU = dY W2^T */
        memset(da, 0, sizeof(float) * n * F);
        if (swiglu) {
            memset(db, 0, sizeof(float) * n * F);
            ra_swiglu_backward(da, db, du, s->a, s->b, (size_t)n * F);
            ra_linear_backward(dhb, grads + p->w3, db, hb, w + p->w3, n, C, F);
        } else {
            ra_gelu_backward(da, du, s->a, (size_t)n * F);
        }
        ra_linear_backward(dhb, grads + p->w1, da, hb, w + p->w1, n, C, F);
    }
    /* dx keeps the residual's share and gains the norm's */
    ra_rmsnorm_backward(dx, grads + p->ffn_norm, dh, x_mid, w + p->ffn_norm, rstd, N, C);
}

/* ---- final norm and logits ------------------------------------------------------ */

void ra_final_norm_forward(const ra_net *net, int N, const float *x, float *hf, float *rstd)
{
    ra_rmsnorm_forward(hf, rstd, x, net->w + net->lay->final_norm, N, net->C, net->cfg->norm_eps);
}

void ra_final_norm_backward(const ra_net *net, float *grads, int N, const float *x, const float *rstd,
                            const float *dh, float *dx)
{
    const ra_param_layout *p = net->lay;
    memset(dx, 0, sizeof(float) * N * net->C);
    ra_rmsnorm_backward(dx, grads + p->final_norm, dh, x, net->w + p->final_norm, rstd, N, net->C);
}

void ra_lm_head_forward(const ra_net *net, int n, const float *hf, float *logits)
{
    const ra_param_layout *p = net->lay;
    const float *w = net->w;
    const int C = net->C, V = net->V;
    if (p->lm_head == p->emb) /* tied: logits = hf E^T */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, V, C, 1.0f, hf, C, w + p->emb, C, 0.0f, logits,
                    V);
    else
        ra_linear_forward(logits, hf, w + p->lm_head, n, C, V);
}

void ra_lm_head_backward(const ra_net *net, float *grads, int n, const float *hf, const float *dlogits,
                         float *dh)
{
    const ra_param_layout *p = net->lay;
    const float *w = net->w;
    const int C = net->C, V = net->V;
    if (p->lm_head == p->emb) { /* dhf += dlogits E ; dE += dlogits^T hf */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, C, V, 1.0f, dlogits, V, w + p->emb, C, 1.0f,
                    dh, C);
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, V, C, n, 1.0f, dlogits, V, hf, C, 1.0f,
                    grads + p->emb, C);
    } else {
        ra_linear_backward(dh, grads + p->lm_head, dlogits, hf, w + p->lm_head, n, C, V);
    }
}

void ra_logits_forward(const ra_net *net, int N, const float *x, float *hf, float *rstd, float *logits)
{
    ra_final_norm_forward(net, N, x, hf, rstd);
    ra_lm_head_forward(net, N, hf, logits);
}
