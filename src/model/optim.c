/* optim.c - AdamW, learning-rate schedule, gradient norm.
 *
 * Threads: the AdamW update is elementwise and the gradient norm a sum of
 * NORM_SEGS fixed segments (their bounds depend on n only) added in order,
 * so both are split over ra_threads() OpenMP threads for large n and give
 * bitwise the same result at any thread count. */
#include "ringattn/optim.h"

#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "ringattn/mem.h"
#include "ringattn/threads.h"
#include "ringattn/trace.h"

enum {
    PAR_MIN = 32768,  /* below this many values a call stays on one thread */
    NORM_SEGS = 256,  /* segments of the gradient norm's sum */
    ADAM_BLOCK = 8192 /* values per AdamW work item */
};

static int par_threads(size_t work)
{
    if (work < PAR_MIN || omp_in_parallel()) return 1;
    return ra_threads();
}

/* Parameters [at, at + n) decay: the part of them inside [lo, lo + len). */
static void mark_in(unsigned char *d, size_t lo, size_t len, size_t at, size_t n)
{
    size_t a = at > lo ? at : lo, b = at + n < lo + len ? at + n : lo + len;
    if (b > a) memset(d + (a - lo), 1, b - a);
}
#define mark(d_, at_, len_) mark_in(d_, opt->lo, opt->n, at_, len_)

ra_status ra_adamw_create(ra_adamw *opt, const ra_param_layout *lay, int layers)
{
    return ra_adamw_create_range(opt, lay, layers, 0, lay->total);
}

ra_status ra_adamw_create_range(ra_adamw *opt, const ra_param_layout *lay, int layers, size_t lo, size_t hi)
{
    *opt = (ra_adamw){ .lo = lo, .n = hi - lo };
    if (lo > hi || hi > lay->total)
        return RA_FAIL(RA_ERR_INTERNAL, "AdamW shard [%zu, %zu) of %zu parameters", lo, hi, lay->total);
    RA_TRY(ra_alloc(&opt->m, sizeof(float) * 2 * opt->n + 64, "AdamW moments")); /* + 64: n may be 0 */
    opt->v = opt->m + opt->n;
    memset(opt->m, 0, sizeof(float) * 2 * opt->n);
    RA_TRY(ra_alloc(&opt->decay, opt->n + 64, "weight-decay mask"));
    memset(opt->decay, 0, opt->n);
    /* matrices decay; norm gains (and alignment padding) do not */
    mark(opt->decay, lay->emb, lay->layer[0].begin - lay->emb);
    for (int l = 0; l < layers; l++) {
        const ra_layer_params *p = &lay->layer[l];
        mark(opt->decay, p->wq, p->ffn_norm - p->wq);   /* wq wk wv wo */
        mark(opt->decay, p->w1, p->end - p->w1);        /* w1 (w3) w2 */
    }
    if (lay->lm_head != lay->emb) mark(opt->decay, lay->lm_head, lay->total - lay->lm_head);
    return RA_OK;
}
#undef mark

void ra_adamw_free(ra_adamw *opt)
{
    free(opt->m);
    free(opt->decay);
    *opt = (ra_adamw){ 0 };
}

float ra_lr_at(const ra_config *cfg, int step)
{
    if (step < cfg->warmup) return cfg->lr * (float)(step + 1) / (float)cfg->warmup;
    int span = cfg->steps - cfg->warmup;
    if (span <= 0) return cfg->lr;
    double t = (double)(step - cfg->warmup) / span;
    if (t > 1) t = 1;
    return (float)(cfg->min_lr + 0.5 * (cfg->lr - cfg->min_lr) * (1.0 + cos(M_PI * t)));
}

/* Segment k holds [k n / NORM_SEGS, (k + 1) n / NORM_SEGS): each segment's
 * squares are summed in order in double, then the segments in order. */
double ra_grad_norm(const float *g, size_t n) { return sqrt(ra_grad_sumsq(g, n)); }

double ra_grad_sumsq(const float *g, size_t n)
{
    double part[NORM_SEGS];
    const int nt = par_threads(n);
#pragma omp parallel for num_threads(nt) schedule(static) if (nt > 1)
    for (int k = 0; k < NORM_SEGS; k++) {
        size_t a = (size_t)((unsigned __int128)n * k / NORM_SEGS);
        size_t b = (size_t)((unsigned __int128)n * (k + 1) / NORM_SEGS);
        double s = 0;
        for (size_t i = a; i < b; i++) s += (double)g[i] * g[i];
        part[k] = s;
    }
    double s = 0;
    for (int k = 0; k < NORM_SEGS; k++) s += part[k];
    return s;
}

void ra_adamw_step(ra_adamw *opt, float *params, const float *grads, float grad_scale, float lr,
                   const ra_config *cfg, int step)
{
    const float b1 = cfg->beta1, b2 = cfg->beta2, eps = cfg->adam_eps, wd = cfg->weight_decay;
    const float c1 = 1.0f / (1.0f - powf(b1, (float)step)), c2 = 1.0f / (1.0f - powf(b2, (float)step));
    const size_t n = opt->n, nb = (n + ADAM_BLOCK - 1) / ADAM_BLOCK;
    const int nt = par_threads(n);
    const int64_t t0 = RA_TRACE_T0();
#pragma omp parallel for num_threads(nt) schedule(static) if (nt > 1)
    for (size_t blk = 0; blk < nb; blk++) {
        const size_t end = (blk + 1) * ADAM_BLOCK < n ? (blk + 1) * ADAM_BLOCK : n;
        for (size_t i = blk * ADAM_BLOCK; i < end; i++) {
            float g = grads[i] * grad_scale;
            float m = opt->m[i] = b1 * opt->m[i] + (1.0f - b1) * g;
            float v = opt->v[i] = b2 * opt->v[i] + (1.0f - b2) * g * g;
            float upd = (m * c1) / (sqrtf(v * c2) + eps);
            if (opt->decay[i]) upd += wd * params[i];
            params[i] -= lr * upd;
        }
    }
    RA_TRACE_END2("optim", "adamw step", t0, "params", n, "step", step);
}
