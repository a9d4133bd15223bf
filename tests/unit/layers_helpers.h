/* layers_helpers.h - what the layer-kernel tests share (test_layers.c:
 * RMSNorm, linear, RoPE; test_layers_ffn.c: SwiGLU, GELU;
 * test_layers_embed_xent.c: embedding, cross-entropy): buffers, error
 * norms, finite differences and the tolerances of the method below. The
 * float64 references are written in each test from the formulas (no code
 * shared with the library).
 *
 * For every kernel, with loss L = sum(out * W) for a random W (xent: its own
 * scaled loss):
 *   (a) the float64 reference backward against central differences of the
 *       float64 reference forward, step h = 1e-5 * max(1, |x|): truncation
 *       ~h^2 and cancellation ~1e-16/h keep the FD error near 1e-10, so the
 *       tolerance is 1e-6 normalised (max|fd - g| / max|g|);
 *   (b) the float32 library forward against the reference forward,
 *       normalised error max|x - ref| / max|ref| <= 1e-5;
 *   (c) the library backward against the (now validated) reference
 *       backward, normalised error <= 1e-4;
 *   (d) the library backward against central differences of the float32
 *       library forward (loss summed in double from the float outputs), step
 *       1e-2 on inputs of size ~1, tolerance 1e-2 on the gradient vector
 *       (||fd - g||_2 / ||g||_2): each forward output carries float32
 *       rounding (~6e-8 relative), which the quotient amplifies by 1/(2h) =
 *       50, plus the O(h^2) truncation term (~1e-4 relative); 1e-2 leaves a
 *       wide margin for both, while a wrong or missing term shows up as an
 *       O(1) error. This checks the library against itself, independently
 *       of the reference.
 * Vectors longer than FD_MAX are finite-differenced on an evenly strided
 * subset of FD_MAX entries, to keep the test well under 2 s.
 * Backward functions accumulate: each is also called on pre-filled gradient
 * buffers P, and must give P + (the fresh gradient), within float rounding.
 * Inputs come from ra_rand_uniform (deterministic).
 */
#ifndef TESTS_UNIT_LAYERS_HELPERS_H
#define TESTS_UNIT_LAYERS_HELPERS_H

#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "ringattn/rng.h"

enum { FD_MAX = 256 };
#define TOL_FWD 1e-5
#define TOL_BWD 1e-4
#define TOL_REF_FD 1e-6
#define TOL_LIB_FD 1e-2
#define TOL_ACC 1e-6

/* ---- small helpers ------------------------------------------------------- */

static inline float *frand(uint64_t seed, size_t n, float amp, float off)
{
    float *x = malloc((n ? n : 1) * sizeof *x);
    assert_non_null(x);
    for (size_t i = 0; i < n; i++) x[i] = off + amp * ra_rand_uniform(seed, i);
    return x;
}

static inline float *fzeros(size_t n)
{
    float *x = calloc(n ? n : 1, sizeof *x);
    assert_non_null(x);
    return x;
}

static inline double *dzeros(size_t n)
{
    double *x = calloc(n ? n : 1, sizeof *x);
    assert_non_null(x);
    return x;
}

static inline double *todbl(const float *x, size_t n)
{
    double *d = dzeros(n);
    for (size_t i = 0; i < n; i++) d[i] = x[i];
    return d;
}

static inline float *fdup(const float *x, size_t n)
{
    float *y = fzeros(n);
    memcpy(y, x, n * sizeof *x);
    return y;
}

/* max|x - ref| / max|ref| (absolute when ref is all zero) */
static inline double nerr(const float *x, const double *ref, size_t n)
{
    double num = 0.0, den = 0.0;
    for (size_t i = 0; i < n; i++) {
        num = fmax(num, fabs((double)x[i] - ref[i]));
        den = fmax(den, fabs(ref[i]));
        if (!isfinite(x[i])) return INFINITY;
    }
    return den > 0.0 ? num / den : num;
}

static inline double wsum_f(const float *y, const float *w, size_t n)
{
    double s = 0.0;
    for (size_t i = 0; i < n; i++) s += (double)y[i] * w[i];
    return s;
}

static inline double wsum_d(const double *y, const double *w, size_t n)
{
    double s = 0.0;
    for (size_t i = 0; i < n; i++) s += y[i] * w[i];
    return s;
}

static inline size_t fd_stride(size_t n) { return n <= FD_MAX ? 1 : (n + FD_MAX - 1) / FD_MAX; }

typedef double (*loss_fn)(void *ctx);

/* (a): max|fd - g| / max|g| of the float64 loss over (a subset of) x */
static inline double fd_ref(double *x, size_t n, const double *g, loss_fn f, void *ctx)
{
    double num = 0.0, den = 0.0;
    for (size_t i = 0; i < n; i++) den = fmax(den, fabs(g[i]));
    for (size_t i = 0; i < n; i += fd_stride(n)) {
        double x0 = x[i], h = 1e-5 * fmax(1.0, fabs(x0));
        x[i] = x0 + h;
        double lp = f(ctx);
        x[i] = x0 - h;
        double lm = f(ctx);
        x[i] = x0;
        num = fmax(num, fabs((lp - lm) / (2.0 * h) - g[i]));
    }
    return den > 0.0 ? num / den : num;
}

/* (d): ||fd - g|| / ||g|| of the float32 library loss over (a subset of) x */
static inline double fd_lib(float *x, size_t n, const float *g, loss_fn f, void *ctx)
{
    const float h = 1e-2f;
    double num = 0.0, den = 0.0;
    for (size_t i = 0; i < n; i += fd_stride(n)) {
        float x0 = x[i];
        x[i] = x0 + h;
        double hp = (double)x[i] - x0; /* the step actually taken */
        double lp = f(ctx);
        x[i] = x0 - h;
        double hm = (double)x0 - x[i];
        double lm = f(ctx);
        x[i] = x0;
        double e = (lp - lm) / (hp + hm) - g[i];
        num += e * e;
        den += (double)g[i] * g[i];
    }
    return den > 0.0 ? sqrt(num / den) : sqrt(num);
}

/* acc must equal pre + fresh within float rounding of the one addition */
static inline double acc_err(const float *acc, const float *pre, const float *fresh, size_t n)
{
    double *want = dzeros(n);
    for (size_t i = 0; i < n; i++) want[i] = (double)pre[i] + fresh[i];
    double e = nerr(acc, want, n);
    free(want);
    return e;
}

static inline void check(const char *what, double err, double tol)
{
    if (!(err <= tol)) printf("  FAIL %s: %.3e > %.1e\n", what, err, tol);
    assert_true(err <= tol);
}

#endif
