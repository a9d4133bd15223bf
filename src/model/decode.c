/* decode.c - the sharded-KV-cache decoder (decode.h): one token at a time
 * through the model's own blocks (layer.c) with B = 1, Lr = 1.
 *
 * Shapes: cache k, v [nl][Hkv][cap][D] with cap this rank's share of the
 * capacity; one token's q [H][D], k, v [Hkv][D] (head-major and token-major
 * are the same for one token); a partial per head is one online-softmax
 * record {m, l, acc[D]}. */
#include "ringattn/decode.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "model_internal.h"
#include "ringattn/dist.h"
#include "ringattn/layers.h"
#include "ringattn/plan.h"

struct ra_decoder {
    ra_config cfg;
    ra_param_layout lay;
    ra_net net;
    MPI_Comm comm;
    int P, rank;
    int64_t capacity; /* positions of the whole sequence */
    int64_t cap, n;   /* this rank's cache slots and how many are filled */
    int64_t t;        /* positions so far (the next token's position) */
    float *ck, *cv;   /* [nl][Hkv][cap][D] */
    /* one token */
    float *x, *h, *rstd, *tok_buf, *q, *k, *v, *rec, *o, *norm, *cat, *x_mid, *h2, *rstd2, *hf, *rstdf, *logits;
    ra_ffn_scratch ffn;
    void *block; /* the one allocation behind every buffer above */
    MPI_Datatype rec_type;
    MPI_Op op;
};

static void plan_buffers(ra_decoder *d, ra_plan *plan)
{
    const ra_net *net = &d->net;
    const size_t C = net->C, HD = (size_t)net->H * net->D, KD = (size_t)net->Hkv * net->D;
    const size_t kv = (size_t)net->nl * KD * (size_t)d->cap;
    RA_PLAN_ADD(plan, d->ck, kv);
    RA_PLAN_ADD(plan, d->cv, kv);
    RA_PLAN_ADD(plan, d->x, C);
    RA_PLAN_ADD(plan, d->h, C);
    RA_PLAN_ADD(plan, d->rstd, 1);
    RA_PLAN_ADD(plan, d->tok_buf, HD > KD ? HD : KD);
    RA_PLAN_ADD(plan, d->q, HD);
    RA_PLAN_ADD(plan, d->k, KD);
    RA_PLAN_ADD(plan, d->v, KD);
    RA_PLAN_ADD(plan, d->rec, (size_t)net->H * (net->D + 2));
    RA_PLAN_ADD(plan, d->o, HD);
    RA_PLAN_ADD(plan, d->norm, (size_t)net->H);
    RA_PLAN_ADD(plan, d->cat, HD);
    RA_PLAN_ADD(plan, d->x_mid, C);
    RA_PLAN_ADD(plan, d->h2, C);
    RA_PLAN_ADD(plan, d->rstd2, 1);
    RA_PLAN_ADD(plan, d->hf, C);
    RA_PLAN_ADD(plan, d->rstdf, 1);
    RA_PLAN_ADD(plan, d->logits, (size_t)net->V);
    RA_PLAN_ADD(plan, d->ffn.a, (size_t)net->F); /* one token: a block of 1 */
    RA_PLAN_ADD(plan, d->ffn.b, (size_t)net->F);
    RA_PLAN_ADD(plan, d->ffn.u, (size_t)net->F);
}

ra_status ra_decoder_create(ra_decoder **out, const ra_config *cfg, const float *params,
                            const ra_param_layout *lay, MPI_Comm comm, int64_t capacity)
{
    *out = NULL;
    for (int l = 0; l < cfg->layers; l++) /* the decoder attends the way the full head does */
        if (cfg->layer[l].head_id != RA_HEAD_FULL)
            return RA_FAIL(RA_ERR_ARG, "decoding supports full heads only; layer %d uses head %s", l,
                           ra_head_words[cfg->layer[l].head_id]);
    if (capacity < 1 || capacity > INT32_MAX)
        return RA_FAIL(RA_ERR_ARG, "decoder: capacity of %lld positions (need 1 to %d)", (long long)capacity,
                       INT32_MAX);
    ra_decoder *d = calloc(1, sizeof *d);
    if (!d) return RA_FAIL(RA_ERR_NOMEM, "out of memory for the decoder");
    *out = d;
    d->cfg = *cfg;
    d->lay = *lay;
    d->comm = comm;
    d->rec_type = MPI_DATATYPE_NULL;
    d->op = MPI_OP_NULL;
    MPI_Comm_size(comm, &d->P);
    MPI_Comm_rank(comm, &d->rank);
    ra_net_init(&d->net, &d->cfg, &d->lay, params);
    d->capacity = capacity;
    /* This rank's share: a prefill in any layout gives it at most
     * ceil(Lp / P) + 1 tokens (zigzag: two chunks of at most ceil(Lp / 2P)),
     * new positions at most ceil((capacity - Lp) / P); both fit in this. */
    d->cap = capacity / d->P + 4;
    ra_plan plan = RA_PLAN_INIT;
    plan_buffers(d, &plan);
    ra_status st = ra_plan_calloc(&plan, &d->block, "the decoder's KV cache");
    if (st == RA_OK) st = ra_softmax_op_create(d->net.D, &d->rec_type, &d->op);
    if (st != RA_OK) {
        ra_decoder_destroy(d);
        *out = NULL;
    }
    return st;
}

void ra_decoder_destroy(ra_decoder *d)
{
    if (!d) return;
    ra_softmax_op_free(&d->rec_type, &d->op);
    free(d->block);
    free(d);
}

const float *ra_decoder_logits(const ra_decoder *d) { return d->logits; }
int64_t ra_decoder_len(const ra_decoder *d) { return d->t; }

/* Slot j of kv group g in layer l of a cache base. */
static float *cache_row(const ra_decoder *d, float *base, int l, int g, int64_t j)
{
    return base + (((size_t)l * d->net.Hkv + g) * d->cap + j) * d->net.D;
}

static ra_status prefill(ra_decoder *d, const ra_model *m)
{
    const ra_net *net = &d->net;
    if (d->t != 0) return RA_FAIL(RA_ERR_ARG, "decoder prefill: the decoder already holds %lld positions", (long long)d->t);
    if (m->B != 1) return RA_FAIL(RA_ERR_ARG, "decoder prefill: the model runs %d sequences at once (need 1)", m->B);
    if (m->net.C != net->C || m->net.nl != net->nl || m->net.Hkv != net->Hkv || m->net.D != net->D ||
        m->net.V != net->V)
        return RA_FAIL(RA_ERR_ARG, "decoder prefill: the model's shapes differ from the decoder's");
    if (m->L > d->capacity)
        return RA_FAIL(RA_ERR_ARG, "decoder prefill: a prompt of %lld tokens exceeds the capacity of %lld",
                       (long long)m->L, (long long)d->capacity);
    const int64_t Lr = m->Lr;
    if (Lr > d->cap) return RA_FAIL(RA_ERR_INTERNAL, "decoder prefill: %lld local tokens exceed %lld cache slots",
                                    (long long)Lr, (long long)d->cap);
    const size_t run = sizeof(float) * (size_t)Lr * net->D;
    for (int l = 0; l < net->nl; l++)
        for (int g = 0; g < net->Hkv; g++) { /* model k, v: [1][Hkv][Lr][D] */
            memcpy(cache_row(d, d->ck, l, g, 0), m->act[l].k + (size_t)g * Lr * net->D, run);
            memcpy(cache_row(d, d->cv, l, g, 0), m->act[l].v + (size_t)g * Lr * net->D, run);
        }
    d->n = Lr;
    return RA_OK;
}

ra_status ra_decoder_prefill(ra_decoder *d, const ra_model *m)
{
    RA_TRY(ra_agree(d->comm, prefill(d, m)));
    /* the last prompt position's logits, from the rank that owns it: that
     * one row through the LM head from the forward's final norm */
    memset(d->logits, 0, sizeof(float) * d->net.V);
    for (int64_t i = 0; i < m->Lr; i++)
        if (m->pos[i] == m->L - 1) ra_model_logits_rows(m, i, 1, d->logits);
    RA_TRY(ra_allreduce_named(MPI_IN_PLACE, d->logits, d->net.V, MPI_FLOAT, MPI_SUM, d->comm,
                              "decoder prefill: the last prompt position's logits"));
    d->t = m->L;
    return RA_OK;
}

/* This rank's online-softmax record per head of q [H][D] over the first n
 * cache slots of layer l, into rec [H][D + 2]. */
static void local_partial(ra_decoder *d, int l, int64_t n)
{
    const int D = d->net.D, G = d->net.H / d->net.Hkv;
    const float scale = 1.0f / sqrtf((float)D);
    for (int hh = 0; hh < d->net.H; hh++) {
        float *r = d->rec + (size_t)hh * (D + 2), *acc = r + 2;
        const float *qh = d->q + (size_t)hh * D;
        float mx = -INFINITY, sum = 0;
        memset(acc, 0, sizeof(float) * D);
        for (int64_t j = 0; j < n; j++) {
            const float *kj = cache_row(d, d->ck, l, hh / G, j), *vj = cache_row(d, d->cv, l, hh / G, j);
            float s = 0;
            for (int e = 0; e < D; e++) s += qh[e] * kj[e];
            s *= scale;
            if (s > mx) { /* rescale what we have */
                const float f = expf(mx - s);
                sum *= f;
                for (int e = 0; e < D; e++) acc[e] *= f;
                mx = s;
            }
            const float pj = expf(s - mx);
            sum += pj;
            for (int e = 0; e < D; e++) acc[e] += pj * vj[e];
        }
        r[0] = mx, r[1] = sum;
    }
}

/* Attention of the token's q over every rank's cache: o [H][D]. */
static ra_status attend(ra_decoder *d, int l, int64_t n)
{
    const int D = d->net.D;
    local_partial(d, l, n);
    RA_TRY(ra_allreduce_named(MPI_IN_PLACE, d->rec, d->net.H, d->rec_type, d->op, d->comm,
                              "decoder: the online-softmax records of the cache shards"));
    for (int hh = 0; hh < d->net.H; hh++) {
        const float *r = d->rec + (size_t)hh * (D + 2);
        for (int e = 0; e < D; e++) d->o[(size_t)hh * D + e] = r[1] > 0 ? r[2 + e] / r[1] : 0.0f;
    }
    const ra_layer_config *lc = &d->cfg.layer[l];
    if (lc->precond_id == RA_PRECOND_ROWNORM) /* each head's output row, as the training head does */
        ra_rownorm_forward(d->o, d->norm, d->net.H, D, lc->precond_eps);
    return RA_OK;
}

ra_status ra_decoder_step(ra_decoder *d, int32_t token)
{
    const ra_net *net = &d->net;
    const ra_param_layout *lay = &d->lay;
    /* the same checks on every rank, so a failure never splits a collective */
    if (d->t >= d->capacity)
        return RA_FAIL(RA_ERR_ARG, "decoder: position %lld is past the capacity of %lld", (long long)d->t,
                       (long long)d->capacity);
    if (token < 0 || token >= net->V)
        return RA_FAIL(RA_ERR_ARG, "decoder: token %d is outside the vocabulary [0, %d)", token, net->V);
    const int32_t t = (int32_t)d->t;
    const int mine = t % d->P == d->rank;
    RA_ASSERT(!mine || d->n < d->cap, "the decoder's cache share is too small for its capacity");
    ra_embed_forward(d->x, &token, net->w + lay->emb, 1, net->C);
    for (int l = 0; l < net->nl; l++) {
        ra_attn_in_forward(net, l, 1, 1, &t, d->x, d->h, d->rstd, d->tok_buf, d->q, d->k, d->v);
        if (mine)
            for (int g = 0; g < net->Hkv; g++) {
                memcpy(cache_row(d, d->ck, l, g, d->n), d->k + (size_t)g * net->D, sizeof(float) * net->D);
                memcpy(cache_row(d, d->cv, l, g, d->n), d->v + (size_t)g * net->D, sizeof(float) * net->D);
            }
        RA_TRY(attend(d, l, d->n + mine));
        ra_attn_out_forward(net, l, 1, 1, d->o, d->x, d->cat, d->x_mid);
        ra_ffn_forward(net, l, 1, d->x_mid, d->h2, d->rstd2, d->x, &d->ffn);
    }
    d->n += mine;
    d->t++;
    ra_logits_forward(net, 1, d->x, d->hf, d->rstdf, d->logits);
    return RA_OK;
}
