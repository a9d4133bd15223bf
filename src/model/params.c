/* params.c - where each parameter tensor lives in the one parameter array,
 * and its deterministic initialisation.
 *
 * The layout is a plan of offsets (in floats) rather than pointers, because
 * the same offsets index the parameters, the gradients, the AdamW moments
 * and the checkpoint; every tensor starts on a 64-byte boundary and the
 * total includes the padding, so the sum is never made by hand. */
#include <math.h>
#include <string.h>

#include "model_internal.h"
#include "ringattn/rng.h"

/* The next tensor of n floats: its offset; *at moves past it, rounded up to
 * 16 floats (64 bytes). */
static size_t take(size_t *at, size_t n)
{
    size_t off = *at;
    *at += (n + 15) / 16 * 16;
    return off;
}

void ra_param_plan(ra_param_layout *p, const ra_config *cfg)
{
    size_t at = 0;
    const size_t C = cfg->dim, HD = (size_t)cfg->heads * cfg->head_dim, KD = (size_t)cfg->kv_heads * cfg->head_dim;
    const size_t F = cfg->ffn_dim, V = cfg->vocab;
    memset(p, 0, sizeof *p);
    p->emb = take(&at, V * C);
    for (int l = 0; l < cfg->layers; l++) {
        ra_layer_params *q = &p->layer[l];
        q->begin = at;
        q->attn_norm = take(&at, C);
        q->wq = take(&at, C * HD);
        q->wk = take(&at, C * KD);
        q->wv = take(&at, C * KD);
        q->wo = take(&at, HD * C);
        q->ffn_norm = take(&at, C);
        q->w1 = take(&at, C * F);
        q->w3 = cfg->ffn_id == RA_FFN_SWIGLU ? take(&at, C * F) : q->w1; /* gelu: no W3 */
        q->w2 = take(&at, F * C);
        q->end = at;
    }
    p->final_norm = take(&at, C);
    p->lm_head = cfg->tie_embeddings ? p->emb : take(&at, C * V);
    p->total = at;
}

/* N(0, std) from the counter-based generator: value i of stream seed. */
static float normal(uint64_t seed, uint64_t i, float std)
{
    double u1 = ((double)(ra_rand_u64(seed, 2 * i) >> 11) + 0.5) * 0x1p-53;
    double u2 = (double)(ra_rand_u64(seed, 2 * i + 1) >> 11) * 0x1p-53;
    return (float)(std * sqrt(-2.0 * log(u1)) * cos(2.0 * M_PI * u2));
}

/* Value i of the tensor at offset is draw offset + i (the same on every rank). */
static void fill_normal(float *w, size_t n, uint64_t seed, size_t offset, float std)
{
    for (size_t i = 0; i < n; i++) w[i] = normal(seed, offset + i, std);
}

void ra_model_init(ra_model *m, uint64_t seed)
{
    const ra_param_layout *p = &m->lay;
    const ra_net *net = &m->net;
    float *w = m->params;
    const float std = m->cfg.init_std, out_std = std / sqrtf(2.0f * net->nl);
    const size_t C = net->C, HD = (size_t)net->H * net->D, KD = (size_t)net->Hkv * net->D, F = net->F;
    memset(w, 0, sizeof(float) * p->total);
    fill_normal(w + p->emb, (size_t)net->V * C, seed, p->emb, std);
    for (int l = 0; l < net->nl; l++) {
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
    if (p->lm_head != p->emb) fill_normal(w + p->lm_head, C * (size_t)net->V, seed, p->lm_head, std);
}

void ra_model_zero_grads(ra_model *m)
{
    if (m->grads) memset(m->grads, 0, sizeof(float) * m->lay.total); /* an inference model has none */
}
