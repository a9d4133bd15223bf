/* layers.h - single-rank kernels of the transformer's layers, forward and
 * backward, on OpenBLAS (docs/design.md §7). Rows are tokens: x [N][C].
 *
 * Conventions: forward functions overwrite their outputs; backward functions
 * ACCUMULATE (+=) into both input gradients (dx) and parameter gradients
 * (dg, dw, dE), so residual branches and repeated blocks just add up; zero
 * gradients before a step. Any dx may be NULL when not needed.
 *
 *     ra_rmsnorm_forward(h, rstd, x, g, N, C, 1e-5f);
 *     ra_linear_forward(q, h, wq, N, C, H * D);
 *     ...
 *     ra_linear_backward(dh, dwq, dq, h, wq, N, C, H * D);
 *     ra_rmsnorm_backward(dx, dg, dh, x, g, rstd, N, C);
 */
#ifndef RINGATTN_LAYERS_H
#define RINGATTN_LAYERS_H

#include <stddef.h>
#include <stdint.h>

/* RMSNorm: y = x / sqrt(mean(x^2) + eps) * g. rstd [N] saves 1/sqrt(...). */
void ra_rmsnorm_forward(float *y, float *rstd, const float *x, const float *g, int N, int C,
                        float eps);
void ra_rmsnorm_backward(float *dx, float *dg, const float *dy, const float *x, const float *g,
                         const float *rstd, int N, int C);

/* y [N][n_out] = x [N][n_in] W [n_in][n_out] (sgemm). */
void ra_linear_forward(float *y, const float *x, const float *w, int N, int n_in, int n_out);
/* dx [N][n_in] += dy W^T; dw [n_in][n_out] += x^T dy. */
void ra_linear_backward(float *dx, float *dw, const float *dy, const float *x, const float *w,
                        int N, int n_in, int n_out);

/* Rotary position embedding, in place on x [nh][n][D] (D even): for each
 * pair (2i, 2i+1) rotate by angle pos[t] * theta^(-2i/D). Backward rotates
 * the gradient by the opposite angle (in place, dx = R^T dy). */
void ra_rope_forward(float *x, int nh, int n, int D, const int32_t *pos, float theta);
void ra_rope_backward(float *dx, int nh, int n, int D, const int32_t *pos, float theta);

/* SwiGLU: u = silu(a) * b elementwise over n values. */
void ra_swiglu_forward(float *u, const float *a, const float *b, size_t n);
void ra_swiglu_backward(float *da, float *db, const float *du, const float *a, const float *b,
                        size_t n);
/* GELU (tanh approximation): y = 0.5 a (1 + tanh(sqrt(2/pi) (a + 0.044715 a^3))). */
void ra_gelu_forward(float *y, const float *a, size_t n);
void ra_gelu_backward(float *da, const float *dy, const float *a, size_t n);

/* x [N][C] = E [V][C] rows of tok [N]; dE += scatter of dx. */
void ra_embed_forward(float *x, const int32_t *tok, const float *E, int N, int C);
void ra_embed_backward(float *dE, const int32_t *tok, const float *dx, int N, int C);

/* Cross-entropy of logits [N][V] against targets tgt [N] (-1: ignored).
 * Returns the SUM over counted rows of -log softmax(logits)[tgt] (double),
 * sets *count to the number of counted rows, and when dlogits is not NULL
 * writes (overwrites) dlogits = scale * (softmax - onehot(tgt)) for counted
 * rows and 0 for ignored rows; dlogits may be logits itself (in place).
 * Optionally (correct != NULL) counts rows whose argmax equals the target. */
double ra_xent(float *dlogits, const float *logits, const int32_t *tgt, int N, int V, float scale,
               int64_t *count, int64_t *correct);
/* The same over a chunk of rows, continuing running totals: *loss += each
 * counted row's -log p in row order, *count and *correct (either may be
 * NULL) += the chunk's. Chunks of rows called in order give bitwise the
 * loss of one ra_xent over all of them (docs/design.md §7: the LM head and
 * the loss run over row chunks). */
void ra_xent_rows(float *dlogits, const float *logits, const int32_t *tgt, int N, int V, float scale,
                  double *loss, int64_t *count, int64_t *correct);

/* Row-norm preconditioner (docs/design.md §6) of a head output o [N][D], in place:
 * o_i <- o_i / (n_i + eps), n_i = ||o_i||_2 saved in norm [N]. Backward,
 * from the preconditioned output ot and its gradient dot, overwrites dot with
 * the gradient of the raw output: dot_i / (n_i + eps) (full = 0: the norm
 * treated as a constant), minus ot_i (ot_i . dot_i) / n_i (full = 1; no
 * second term where n_i = 0). */
void ra_rownorm_forward(float *o, float *norm, int N, int D, float eps);
void ra_rownorm_backward(float *dot, const float *ot, const float *norm, int N, int D, float eps, int full);

/* Conditioning diagnostic (docs/design.md §6): G [D][D] += O^T O for rows o [N][D]
 * (double accumulation; sum G over ranks for a distributed sequence), then
 * the singular values of O from G's eigenvalues (LAPACK dsyev):
 * kappa = sigma_max / sigma_min, infinite when sigma_min is at most
 * 2^-24 sigma_max (float32's rounding: O is singular at its precision). */
void ra_gram_accumulate(double *G, const float *o, int N, int D);
double ra_kappa_from_gram(const double *G, int D, double *sigma_max, double *sigma_min);

#endif
