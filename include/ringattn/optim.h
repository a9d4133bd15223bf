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
    size_t n;
    float *m, *v;        /* [n] first and second moments */
    unsigned char *decay; /* [n] 1 where weight decay applies */
} ra_adamw;

ra_status ra_adamw_create(ra_adamw *opt, const ra_param_layout *lay, int layers);
void ra_adamw_free(ra_adamw *opt);
/* Learning rate at step (0-based): linear warm-up to lr over cfg->warmup
 * steps, then cosine decay to min_lr at cfg->steps. */
float ra_lr_at(const ra_config *cfg, int step);
/* L2 norm of g (accumulated in double, in fixed segments: the same result at
 * any thread count). */
double ra_grad_norm(const float *g, size_t n);
/* One AdamW update; step is 1-based (bias correction). grad_scale multiplies
 * the gradients first (clipping). */
void ra_adamw_step(ra_adamw *opt, float *params, const float *grads, float grad_scale, float lr,
                   const ra_config *cfg, int step);

#endif
