/* optim.h - AdamW with a warm-up + cosine learning-rate schedule and
 * global gradient-norm clipping (docs/design.md §7). Moments live in one allocation
 * beside the parameters; weight decay applies to matrices, not to norm gains. */
#ifndef RINGATTN_OPTIM_H
#define RINGATTN_OPTIM_H

#include <stddef.h>

#include "ringattn/config.h"
#include "ringattn/model.h"
#include "ringattn/status.h"

typedef struct {
    size_t lo, n;        /* the parameters [lo, lo + n) this optimizer updates */
    float *m, *v;        /* [n] first and second moments */
    unsigned char *decay; /* [n] 1 where weight decay applies */
} ra_adamw;

/* Every parameter (replicated optimizer). */
ra_status ra_adamw_create(ra_adamw *opt, const ra_param_layout *lay, int layers);
/* A shard: the parameters [lo, hi) of the layout (ZeRO-1, grid.h). */
ra_status ra_adamw_create_range(ra_adamw *opt, const ra_param_layout *lay, int layers, size_t lo, size_t hi);
void ra_adamw_free(ra_adamw *opt);
/* Learning rate at step (0-based): linear warm-up to lr over cfg->warmup
 * steps, then cosine decay to min_lr at cfg->steps. */
float ra_lr_at(const ra_config *cfg, int step);
/* L2 norm of g (accumulated in double, in fixed segments: the same result at
 * any thread count). */
double ra_grad_norm(const float *g, size_t n);
/* The sum of squares behind ra_grad_norm (a shard's part of the norm: sum
 * the shards' in double over the ranks, then sqrt). */
double ra_grad_sumsq(const float *g, size_t n);
/* One AdamW update of params, grads [opt->n] (the shard's: pass
 * params + opt->lo); step is 1-based (bias correction). grad_scale
 * multiplies the gradients first (clipping). */
void ra_adamw_step(ra_adamw *opt, float *params, const float *grads, float grad_scale, float lr,
                   const ra_config *cfg, int step);

#endif
