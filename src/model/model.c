/* model.c - the transformer over this rank's tokens: creation (every buffer
 * from one plan), the whole-model forward/backward, gradient reductions.
 * The blocks themselves are in layer.c, shared with the decoder.
 *
 * Shapes (model_internal.h): N = B * Lr token rows, token-major [B][Lr][...];
 * the heads work head-major. Memory is allocated once at creation:
 * parameters and gradients, saved activations per layer, and scratch shared
 * by all layers, all carved from one block planned with plan.h. */
#include "ringattn/model.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "model_internal.h"
#include "ringattn/collective.h"
#include "ringattn/dist.h"
#include "ringattn/layers.h"
#include "ringattn/layout.h"
#include "ringattn/mem.h"
#include "ringattn/plan.h"
#include "ringattn/trace.h"

/* ---- creation --------------------------------------------------------------- */

/* Rows per chunk of the LM head and the loss (docs/design.md §7): every row
 * when the N x V logits fit RA_LOGIT_BUDGET floats, else the largest
 * multiple of 16 rows whose logits do (16 at least, which is the budget
 * for every vocabulary up to 2^18). RINGATTN_LOGIT_ROWS=n (tests and
 * measurements) sets n rows instead; above N is one chunk. */
enum { RA_LOGIT_BUDGET = 1 << 22 };

static ra_status logit_rows(int64_t N, int V, int *R)
{
    int64_t r = (int64_t)RA_LOGIT_BUDGET / V;
    r = r < 16 ? 16 : r / 16 * 16;
    if (N * V <= RA_LOGIT_BUDGET) r = N;
    const char *env = getenv("RINGATTN_LOGIT_ROWS");
    if (env && *env) {
        char *end;
        errno = 0;
        long long v = strtoll(env, &end, 10);
        if (errno || *end || v < 1)
            return RA_FAIL(RA_ERR_ARG, "RINGATTN_LOGIT_ROWS=%s: need a whole number of rows >= 1", env);
        r = v;
    }
    if (r > N) r = N;
    *R = (int)(r > 0 ? r : 1); /* N = 0 (a rank without tokens): one unused row */
    return RA_OK;
}

/* Every buffer of the model, in one plan: the list gives both the total and
 * the pointers. An inference model has no gradients and no backward
 * scratch (their pointers stay NULL). */
static void plan_buffers(ra_model *m, ra_plan *plan)
{
    const int train = !m->inference;
    const ra_net *net = &m->net;
    const size_t N = (size_t)m->N, C = net->C, NQ = N * net->H * net->D, NK = N * net->Hkv * net->D;
    const size_t NR = N * net->H, FB = (size_t)net->blk * net->F;
    const size_t wide = (size_t)(net->H > net->Hkv ? net->H : net->Hkv) * net->D;
    RA_PLAN_ADD(plan, m->pos, (size_t)m->Lr);
    RA_PLAN_ADD(plan, m->params, m->lay.total);
    if (train) RA_PLAN_ADD(plan, m->grads, m->lay.total);
    for (int l = 0; l < net->nl; l++) {
        ra_layer_acts *t = &m->act[l];
        RA_PLAN_ADD(plan, t->x_in, N * C);
        RA_PLAN_ADD(plan, t->h1, N * C);
        RA_PLAN_ADD(plan, t->rstd1, N);
        RA_PLAN_ADD(plan, t->q, NQ);
        RA_PLAN_ADD(plan, t->k, NK);
        RA_PLAN_ADD(plan, t->v, NK);
        RA_PLAN_ADD(plan, t->o, NQ);
        RA_PLAN_ADD(plan, t->lse, NR);
        RA_PLAN_ADD(plan, t->x_mid, N * C);
        RA_PLAN_ADD(plan, t->h2, N * C);
        RA_PLAN_ADD(plan, t->rstd2, N);
    }
    RA_PLAN_ADD(plan, m->x_out, N * C);
    RA_PLAN_ADD(plan, m->hf, N * C);
    RA_PLAN_ADD(plan, m->rstdf, N);
    RA_PLAN_ADD(plan, m->logits, (size_t)m->R * net->V);
    RA_PLAN_ADD(plan, m->tok_buf, N * wide);
    RA_PLAN_ADD(plan, m->cat, NQ);
    RA_PLAN_ADD(plan, m->dx, N * C); /* the forward's residual stream too */
    RA_PLAN_ADD(plan, m->ffn.a, FB);
    RA_PLAN_ADD(plan, m->ffn.b, FB);
    RA_PLAN_ADD(plan, m->ffn.u, FB);
    if (!train) return;
    RA_PLAN_ADD(plan, m->dq, NQ);
    RA_PLAN_ADD(plan, m->dout, NQ);
    RA_PLAN_ADD(plan, m->dk, NK);
    RA_PLAN_ADD(plan, m->dv, NK);
    RA_PLAN_ADD(plan, m->dh, N * C);
    RA_PLAN_ADD(plan, m->ffn.d, FB);
    RA_PLAN_ADD(plan, m->ffn.e, FB);
}

ra_status ra_model_plan_bytes(const ra_config *cfg, int micro_batch, int P, int rank, size_t *bytes,
                              size_t *nparams)
{
    return ra_model_plan_bytes_as(cfg, micro_batch, P, rank, 0, bytes, nparams);
}

ra_status ra_model_plan_bytes_as(const ra_config *cfg, int micro_batch, int P, int rank, int inference,
                                 size_t *bytes, size_t *nparams)
{
    *bytes = 0;
    if (micro_batch < 1 || P < 1 || rank < 0 || rank >= P)
        return RA_FAIL(RA_ERR_ARG, "model plan: micro-batch %d, rank %d of %d", micro_batch, rank, P);
    ra_model *m = calloc(1, sizeof *m);
    if (!m) return RA_FAIL(RA_ERR_NOMEM, "out of memory for the model plan");
    m->cfg = *cfg;
    m->inference = inference;
    m->P = P, m->rank = rank, m->B = micro_batch, m->L = cfg->seq_len;
    m->Lr = ra_layout_count(cfg->layout_id, m->L, P, rank);
    m->N = (int64_t)m->B * m->Lr;
    ra_param_plan(&m->lay, &m->cfg);
    ra_net_init(&m->net, &m->cfg, &m->lay, NULL);
    ra_status st = logit_rows(m->N, m->net.V, &m->R);
    if (st == RA_OK) { /* the same list ra_model_create allocates */
        ra_plan plan = RA_PLAN_INIT;
        plan_buffers(m, &plan);
        if (plan.overflow || plan.nomem) st = RA_FAIL(RA_ERR_NOMEM, "model plan: the sizes overflow");
        *bytes = plan.total;
        ra_plan_discard(&plan);
    }
    if (nparams) *nparams = m->lay.total;
    free(m);
    return st;
}

static ra_status create(ra_model **out, const ra_config *cfg, int micro_batch, MPI_Comm comm, int inference)
{
    *out = NULL;
    ra_model *m = calloc(1, sizeof *m);
    if (!m) return RA_FAIL(RA_ERR_NOMEM, "out of memory for the model");
    *out = m;
    m->cfg = *cfg;
    m->inference = inference;
    m->comm = m->gcomm = comm;
    MPI_Comm_size(comm, &m->P);
    MPI_Comm_rank(comm, &m->rank);
    m->gP = m->P, m->grank = m->rank;
    m->B = micro_batch;
    m->L = cfg->seq_len;
    m->overlap_reduce = cfg->overlap_reduce;
    if (micro_batch < 1) return RA_FAIL(RA_ERR_ARG, "model: micro-batch of %d sequences (need >= 1)", micro_batch);
    if (m->L < m->P)
        return RA_FAIL(RA_ERR_ARG, "data.seq_len = %lld is shorter than the %d ranks of a ring, which share each "
                       "sequence; a longer seq_len, or run.dp > 1 (data-parallel rings of fewer ranks)",
                       (long long)m->L, m->P);
    const ra_layout layout = cfg->layout_id;
    m->Lr = ra_layout_count(layout, m->L, m->P, m->rank);
    m->N = (int64_t)m->B * m->Lr;
    if (m->N > INT32_MAX)
        return RA_FAIL(RA_ERR_ARG, "model: %lld token rows on rank %d exceed the kernels' int range",
                       (long long)m->N, m->rank);
    ra_param_plan(&m->lay, &m->cfg);
    ra_net_init(&m->net, &m->cfg, &m->lay, NULL);
    RA_TRY(logit_rows(m->N, m->net.V, &m->R));

    ra_plan plan = RA_PLAN_INIT;
    plan_buffers(m, &plan);
    RA_TRY(ra_plan_alloc(&plan, &m->block, inference ? "the model's parameters and activations"
                                                     : "the model's parameters, gradients and activations"));
    m->net.w = m->params;
    ra_layout_positions(layout, m->L, m->P, m->rank, m->pos);

    for (int l = 0; l < m->net.nl; l++) {
        ra_head_opts ho = { .ring = { .B = m->B, .H = m->net.H, .Hkv = m->net.Hkv, .D = m->net.D, .L = m->L,
                                      .causal = 1, .layout = layout, .chunk = cfg->chunk },
                            .layer = &m->cfg.layer[l] };
        RA_TRY(ra_head_create(&m->head[l], &ho, comm));
    }
    return RA_OK;
}

ra_status ra_model_create(ra_model **out, const ra_config *cfg, int micro_batch, MPI_Comm comm)
{
    return create(out, cfg, micro_batch, comm, 0);
}

ra_status ra_model_create_inference(ra_model **out, const ra_config *cfg, int micro_batch, MPI_Comm comm)
{
    return create(out, cfg, micro_batch, comm, 1);
}

void ra_model_destroy(ra_model *m)
{
    if (!m) return;
    for (int l = 0; l < m->net.nl; l++)
        if (m->head[l]) m->head[l]->kind->destroy(m->head[l]);
    free(m->block);
    ra_rs_free(&m->rs);
    ra_allsum_free(&m->all);
    free(m);
}

ra_status ra_model_set_reduction(ra_model *m, MPI_Comm gcomm, const size_t *bounds, float *shard_grads)
{
    if (m->nreq) return RA_FAIL(RA_ERR_INTERNAL, "model: reduction changed with %d reductions in flight", m->nreq);
    m->gcomm = gcomm;
    MPI_Comm_size(gcomm, &m->gP);
    MPI_Comm_rank(gcomm, &m->grank);
    m->shard = bounds;
    m->gshard = shard_grads;
    ra_rs_free(&m->rs);
    ra_allsum_free(&m->all);
    if (!bounds) return RA_OK; /* replicated: set up at the first reduction (inference never reduces) */
    if (bounds[0] != 0 || bounds[m->gP] != m->lay.total)
        return RA_FAIL(RA_ERR_INTERNAL, "model: shard bounds cover [%zu, %zu), the model has %zu parameters",
                       bounds[0], bounds[m->gP], m->lay.total);
    /* the padding between tensors that no slice covers (train.overlap_reduce
     * posts the embedding's V C floats, not its rounding) sums to 0, not to
     * whatever the buffer held: the gradient norm reads every float */
    memset(shard_grads, 0, sizeof(float) * (bounds[m->grank + 1] - bounds[m->grank]));
    return m->gP > 1 ? ra_rs_init(&m->rs, gcomm, bounds, RA_MAX_LAYERS + 2) : RA_OK;
}

const ra_param_layout *ra_model_layout(const ra_model *m) { return &m->lay; }
float *ra_model_params(ra_model *m) { return m->params; }
float *ra_model_grads(ra_model *m) { return m->grads; }
size_t ra_model_nparams(const ra_model *m) { return m->lay.total; }
int64_t ra_model_local_len(const ra_model *m) { return m->Lr; }
const int32_t *ra_model_positions(const ra_model *m) { return m->pos; }

void ra_model_logits_rows(const ra_model *m, int64_t row, int n, float *out)
{
    ra_lm_head_forward(&m->net, n, m->hf + (size_t)row * m->net.C, out);
}

ra_status ra_model_kappa(ra_model *m, double *kappa) { return ra_model_kappa_over(m, m->comm, kappa); }

ra_status ra_model_kappa_over(ra_model *m, MPI_Comm comm, double *kappa)
{
    const int D = m->net.D, H = m->net.H, nl = m->net.nl;
    double *G = calloc((size_t)nl * H * D * D, sizeof(double));
    if (!G) return RA_FAIL(RA_ERR_NOMEM, "kappa: out of memory");
    for (int l = 0; l < nl; l++)
        for (int b = 0; b < m->B; b++)
            for (int h = 0; h < H; h++)
                ra_gram_accumulate(G + ((size_t)l * H + h) * D * D, m->act[l].o + (((size_t)b * H + h) * m->Lr) * D,
                                   (int)m->Lr, D);
    ra_status st = ra_allreduce_named(MPI_IN_PLACE, G, nl * H * D * D, MPI_DOUBLE, MPI_SUM, comm,
                                      "kappa: the Gram matrices of the head outputs");
    for (int i = 0; st == RA_OK && i < nl * H; i++) {
        double smax, smin;
        kappa[i] = ra_kappa_from_gram(G + (size_t)i * D * D, D, &smax, &smin);
    }
    free(G);
    return st;
}

void ra_model_kv(const ra_model *m, int l, const float **k, const float **v)
{
    *k = m->act[l].k;
    *v = m->act[l].v;
}

double ra_model_flops(const ra_model *m, int B)
{
    const ra_net *n = &m->net;
    const double C = n->C, HD = (double)n->H * n->D, KD = (double)n->Hkv * n->D, F = n->F;
    double ffn = m->cfg.ffn_id == RA_FFN_SWIGLU ? 3 * C * F : 2 * C * F;
    double matmul = n->nl * (C * HD * 2 + C * KD * 2 + ffn) + C * n->V;
    double tokens = (double)B * m->L;
    double attn = n->nl * 4.0 * n->H * n->D * (double)m->L * m->L * 0.5 * B; /* causal fwd */
    return 6.0 * matmul * tokens + 3.0 * attn;
}

/* ---- one layer ----------------------------------------------------------------- */

/* x [N][C] -> x_out [N][C], saving what the backward needs in act[l]. */
static ra_status layer_forward(ra_model *m, int l, const float *x, float *x_out)
{
    const ra_net *net = &m->net;
    ra_layer_acts *t = &m->act[l];
    const int64_t t0 = RA_TRACE_T0();
    memcpy(t->x_in, x, sizeof(float) * m->N * net->C);
    ra_attn_in_forward(net, l, m->B, m->Lr, m->pos, t->x_in, t->h1, t->rstd1, m->tok_buf, t->q, t->k, t->v);
    ra_head *hd = m->head[l];
    RA_TRY(hd->kind->forward(hd, t->q, t->k, t->v, NULL, t->o, t->lse));
    m->wait += hd->kind->wait_seconds(hd);
    ra_attn_out_forward(net, l, m->B, m->Lr, t->o, t->x_in, m->cat, t->x_mid);
    ra_ffn_forward(net, l, (int)m->N, t->x_mid, t->h2, t->rstd2, x_out, &m->ffn);
    RA_TRACE_END1("model", "layer forward", t0, "layer", l);
    return RA_OK;
}

/* dx [N][C]: gradient of the layer's output on entry, of its input on exit. */
static ra_status layer_backward(ra_model *m, int l, float *dx)
{
    const ra_net *net = &m->net;
    ra_layer_acts *t = &m->act[l];
    const int64_t t0 = RA_TRACE_T0();
    ra_ffn_backward(net, m->grads, l, (int)m->N, t->x_mid, t->h2, t->rstd2, dx, m->dh, &m->ffn);
    /* dx is now the gradient at x_mid; the residual passes it on */
    ra_attn_out_backward(net, m->grads, l, m->B, m->Lr, t->o, dx, m->cat, m->tok_buf, m->dout);
    ra_head *hd = m->head[l];
    RA_TRY(hd->kind->backward(hd, t->q, t->k, t->v, NULL, t->o, t->lse, m->dout, m->dq, m->dk, m->dv));
    m->wait += hd->kind->wait_seconds(hd);
    ra_attn_in_backward(net, m->grads, l, m->B, m->Lr, m->pos, t->x_in, t->h1, t->rstd1, m->dq, m->dk, m->dv,
                        m->tok_buf, m->dh, dx);
    RA_TRACE_END1("model", "layer backward", t0, "layer", l);
    return RA_OK;
}

/* ---- whole model ------------------------------------------------------------- */

/* Start summing gradients [begin, end) over ranks; layer for the trace
 * (-1: final norm and head, -2: embedding, -3: every parameter). */
static ra_status reduce_slice(ra_model *m, size_t begin, size_t end, int layer)
{
    if (m->gP == 1 && m->shard && end > begin) /* one shard of everything: the sum is the rank's own */
        memcpy(m->gshard + begin, m->grads + begin, sizeof(float) * (end - begin));
    if (m->gP == 1 || end <= begin) return RA_OK;
    /* each owner gets its part of the slice (reduce_scatter.h), summed at the wait */
    if (m->shard) RA_TRY(ra_rs_post(&m->rs, m->grads, begin, end));
    else {
        if (!m->all.bounds) RA_TRY(ra_allsum_init(&m->all, m->gcomm, m->lay.total, RA_MAX_LAYERS + 2));
        RA_TRY(ra_allsum_post(&m->all, m->grads, begin, end));
    }
    if (ra_trace_on) {
        m->req_t0[m->nreq] = ra_trace_clock();
        m->req_bytes[m->nreq] = (int64_t)((end - begin) * sizeof(float));
        m->req_layer[m->nreq] = layer;
    }
    m->nreq++;
    return RA_OK;
}

/* The wait just done on the main track, and each reduction from its post
 * to the wait's end on the reductions' track. */
static void trace_reductions(const ra_model *m, int64_t t0)
{
    const int64_t t1 = ra_trace_clock();
    const char *keys[2] = { "bytes", "layer" };
    for (int i = 0; i < m->nreq; i++) {
        const int64_t vals[2] = { m->req_bytes[i], m->req_layer[i] };
        ra_trace_span(RA_TRACE_TID_REDUCE, "reduce", "grad allreduce", m->req_t0[i], t1, 2, keys, vals);
    }
    const char *k = "requests";
    const int64_t v = m->nreq;
    ra_trace_span(RA_TRACE_TID_MAIN, "wait", "grad wait", t0, t1, 1, &k, &v);
}

ra_status ra_model_wait_grads(ra_model *m)
{
    if (m->nreq == 0) return RA_OK;
    double t0 = ra_now();
    const int64_t tt = RA_TRACE_T0();
    ra_status st = m->shard ? ra_rs_finish(&m->rs, m->grads, m->gshard) : ra_allsum_finish(&m->all, m->grads);
    m->wait += ra_now() - t0;
    if (ra_trace_on) trace_reductions(m, tt);
    m->nreq = 0;
    return st;
}

void ra_model_set_layer_check(ra_model *m, ra_model_layer_check check, void *ctx)
{
    m->layer_check = check;
    m->layer_check_ctx = ctx;
}

ra_status ra_model_step(ra_model *m, const int32_t *tok, const int32_t *tgt, int backward, float grad_scale,
                        int reduce, ra_batch_stats *stats)
{
    const ra_net *net = &m->net;
    const int N = (int)m->N, C = net->C, V = net->V;
    const ra_param_layout *p = &m->lay;
    m->wait = 0;
    if (backward && m->inference)
        return RA_FAIL(RA_ERR_INTERNAL, "model: a backward on a model created for inference (no gradients)");
    for (int i = 0; i < N; i++)
        if (tok[i] < 0 || tok[i] >= V)
            return RA_FAIL(RA_ERR_ARG, "token %d at row %d is outside the vocabulary [0, %d)", tok[i], i, V);

    float *x = m->dx; /* the residual stream, carried layer to layer */
    const int64_t tf = RA_TRACE_T0();
    ra_embed_forward(x, tok, net->w + p->emb, N, C);
    for (int l = 0; l < net->nl; l++) {
        if (l > 0 && m->layer_check) RA_TRY(m->layer_check(m->layer_check_ctx, l));
        RA_TRY(layer_forward(m, l, x, m->x_out));
        memcpy(x, m->x_out, sizeof(float) * N * C);
    }
    /* final norm, then the LM head and the loss over chunks of R rows: a
     * chunk's logits become its dlogits in place, give their rows' dhf and
     * add to the head's gradient before the next chunk overwrites them */
    const int64_t th = RA_TRACE_T0();
    ra_final_norm_forward(net, N, m->x_out, m->hf, m->rstdf);
    if (backward) memset(m->dh, 0, sizeof(float) * N * C);
    double loss = 0.0;
    int64_t count = 0, correct = 0;
    for (int r0 = 0; r0 < N; r0 += m->R) {
        const int n = N - r0 < m->R ? N - r0 : m->R;
        const float *hf = m->hf + (size_t)r0 * C;
        ra_lm_head_forward(net, n, hf, m->logits);
        ra_xent_rows(backward ? m->logits : NULL, m->logits, tgt + r0, n, V, grad_scale, &loss, &count, &correct);
        if (backward) ra_lm_head_backward(net, m->grads, n, hf, m->logits, m->dh + (size_t)r0 * C);
    }
    RA_TRACE_END2("model", backward ? "lm head + loss (fwd+bwd)" : "lm head + loss", th, "rows", N, "vocab", V);
    RA_TRACE_END1("model", "forward + loss", tf, "rows", N);
    stats->loss_sum = loss, stats->count = count, stats->correct = correct;
    if (!backward) {
        stats->wait_seconds = m->wait;
        return RA_OK;
    }

    float *dx = m->dx;
    const int64_t tb = RA_TRACE_T0();
    ra_final_norm_backward(net, m->grads, N, m->x_out, m->rstdf, m->dh, dx);
    /* The reductions. By default one, of every parameter, after the
     * backward, when the ring is done with the link (2 hosts at 1 Gbit/s:
     * the step 17 % shorter) and in one message per owner, not one per
     * slice (P - 1 a step, however many layers: latency at many ranks).
     * With train.overlap_reduce, in slices, each started as soon as it is
     * final, sharing the link with the ring backward of the layers below:
     * the final norm (and untied head), each layer, the embedding (with a
     * tied head's gradient) last. */
    const int early = reduce && m->overlap_reduce, late = reduce && !m->overlap_reduce;
    if (early) RA_TRY(reduce_slice(m, p->final_norm, p->total, -1));
    for (int l = net->nl - 1; l >= 0; l--) {
        RA_TRY(layer_backward(m, l, dx));
        if (early) RA_TRY(reduce_slice(m, p->layer[l].begin, p->layer[l].end, l));
    }
    ra_embed_backward(m->grads + p->emb, tok, dx, N, C);
    if (late) RA_TRY(reduce_slice(m, 0, p->total, -3)); /* with the padding between tensors (never read) */
    if (early) RA_TRY(reduce_slice(m, p->emb, p->emb + (size_t)V * C, -2));
    RA_TRACE_END1("model", "model backward", tb, "rows", N);
    stats->wait_seconds = m->wait;
    return RA_OK;
}
