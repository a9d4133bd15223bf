/* test_layers.c - the layer kernels (layers.h) against float64 references
 * written here from the formulas (no code shared with the library).
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
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* fork, waitpid, dup2 for the assertion test */
#endif
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "ringattn/layers.h"
#include "ringattn/rng.h"

enum { FD_MAX = 256 };
#define TOL_FWD 1e-5
#define TOL_BWD 1e-4
#define TOL_REF_FD 1e-6
#define TOL_LIB_FD 1e-2
#define TOL_ACC 1e-6
#define GELU_K0 0.7978845608028654 /* sqrt(2/pi) */
#define GELU_K1 0.044715

/* ---- small helpers ------------------------------------------------------- */

static float *frand(uint64_t seed, size_t n, float amp, float off)
{
    float *x = malloc((n ? n : 1) * sizeof *x);
    assert_non_null(x);
    for (size_t i = 0; i < n; i++) x[i] = off + amp * ra_rand_uniform(seed, i);
    return x;
}

static float *fzeros(size_t n)
{
    float *x = calloc(n ? n : 1, sizeof *x);
    assert_non_null(x);
    return x;
}

static double *dzeros(size_t n)
{
    double *x = calloc(n ? n : 1, sizeof *x);
    assert_non_null(x);
    return x;
}

static double *todbl(const float *x, size_t n)
{
    double *d = dzeros(n);
    for (size_t i = 0; i < n; i++) d[i] = x[i];
    return d;
}

static float *fdup(const float *x, size_t n)
{
    float *y = fzeros(n);
    memcpy(y, x, n * sizeof *x);
    return y;
}

/* max|x - ref| / max|ref| (absolute when ref is all zero) */
static double nerr(const float *x, const double *ref, size_t n)
{
    double num = 0.0, den = 0.0;
    for (size_t i = 0; i < n; i++) {
        num = fmax(num, fabs((double)x[i] - ref[i]));
        den = fmax(den, fabs(ref[i]));
        if (!isfinite(x[i])) return INFINITY;
    }
    return den > 0.0 ? num / den : num;
}

static double wsum_f(const float *y, const float *w, size_t n)
{
    double s = 0.0;
    for (size_t i = 0; i < n; i++) s += (double)y[i] * w[i];
    return s;
}

static double wsum_d(const double *y, const double *w, size_t n)
{
    double s = 0.0;
    for (size_t i = 0; i < n; i++) s += y[i] * w[i];
    return s;
}

static size_t fd_stride(size_t n) { return n <= FD_MAX ? 1 : (n + FD_MAX - 1) / FD_MAX; }

typedef double (*loss_fn)(void *ctx);

/* (a): max|fd - g| / max|g| of the float64 loss over (a subset of) x */
static double fd_ref(double *x, size_t n, const double *g, loss_fn f, void *ctx)
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
static double fd_lib(float *x, size_t n, const float *g, loss_fn f, void *ctx)
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
static double acc_err(const float *acc, const float *pre, const float *fresh, size_t n)
{
    double *want = dzeros(n);
    for (size_t i = 0; i < n; i++) want[i] = (double)pre[i] + fresh[i];
    double e = nerr(acc, want, n);
    free(want);
    return e;
}

static void check(const char *what, double err, double tol)
{
    if (!(err <= tol)) printf("  FAIL %s: %.3e > %.1e\n", what, err, tol);
    assert_true(err <= tol);
}

/* ---- RMSNorm -------------------------------------------------------------- */

static void ref_rms_fwd(double *y, double *r, const double *x, const double *g, int N, int C,
                        double eps)
{
    for (int i = 0; i < N; i++) {
        const double *xi = x + (size_t)i * C;
        double ss = 0.0;
        for (int j = 0; j < C; j++) ss += xi[j] * xi[j];
        double ri = 1.0 / sqrt(ss / C + eps);
        if (r) r[i] = ri;
        for (int j = 0; j < C; j++) y[(size_t)i * C + j] = xi[j] * ri * g[j];
    }
}

/* dx_k = r (g_k dy_k - x_k r^2 mean(g dy x)), dg_j = sum_rows dy_j x_j r; += */
static void ref_rms_bwd(double *dx, double *dg, const double *dy, const double *x,
                        const double *g, int N, int C, double eps)
{
    for (int i = 0; i < N; i++) {
        const double *xi = x + (size_t)i * C, *dyi = dy + (size_t)i * C;
        double ss = 0.0, dot = 0.0;
        for (int j = 0; j < C; j++) ss += xi[j] * xi[j];
        double r = 1.0 / sqrt(ss / C + eps);
        for (int j = 0; j < C; j++) dot += g[j] * dyi[j] * xi[j];
        for (int j = 0; j < C; j++) {
            dx[(size_t)i * C + j] += r * (g[j] * dyi[j] - xi[j] * r * r * dot / C);
            dg[j] += dyi[j] * xi[j] * r;
        }
    }
}

typedef struct {
    int N, C;
    float eps;
    float *x, *g, *w, *y, *rstd;
    double *xd, *gd, *wd, *yd;
} rms_ctx;

static double rms_loss_ref(void *p)
{
    rms_ctx *c = p;
    ref_rms_fwd(c->yd, NULL, c->xd, c->gd, c->N, c->C, c->eps);
    return wsum_d(c->yd, c->wd, (size_t)c->N * c->C);
}

static double rms_loss_lib(void *p)
{
    rms_ctx *c = p;
    ra_rmsnorm_forward(c->y, c->rstd, c->x, c->g, c->N, c->C, c->eps);
    return wsum_f(c->y, c->w, (size_t)c->N * c->C);
}

/* zero_row: row 1 is all zeros (rstd = 1/sqrt(eps)); the float FD (d) is
 * skipped for it, since its step 1e-2 is larger than the scale sqrt(C eps)
 * on which the function bends there. */
static void rms_case(int N, int C, uint64_t seed, int zero_row)
{
    size_t nx = (size_t)N * C;
    rms_ctx c = {.N = N, .C = C, .eps = 1e-5f};
    c.x = frand(seed, nx, 2.0f, 0.0f);
    if (zero_row) memset(c.x + C, 0, sizeof(float) * C);
    c.g = frand(seed + 1, C, 0.5f, 1.0f);
    c.w = frand(seed + 2, nx, 1.0f, 0.0f);
    c.y = fzeros(nx), c.rstd = fzeros(N);
    c.xd = todbl(c.x, nx), c.gd = todbl(c.g, C), c.wd = todbl(c.w, nx), c.yd = dzeros(nx);

    /* (b) forward */
    double *yr = dzeros(nx), *rr = dzeros(N);
    ref_rms_fwd(yr, rr, c.xd, c.gd, N, C, c.eps);
    ra_rmsnorm_forward(c.y, c.rstd, c.x, c.g, N, C, c.eps);
    double ey = nerr(c.y, yr, nx), er = nerr(c.rstd, rr, N);
    check("rms y", ey, TOL_FWD);
    check("rms rstd", er, TOL_FWD);

    /* (a) reference backward against its own FD */
    double *dxr = dzeros(nx), *dgr = dzeros(C);
    ref_rms_bwd(dxr, dgr, c.wd, c.xd, c.gd, N, C, c.eps);
    double fa = fmax(fd_ref(c.xd, nx, dxr, rms_loss_ref, &c),
                     fd_ref(c.gd, C, dgr, rms_loss_ref, &c));
    check("rms ref fd", fa, TOL_REF_FD);

    /* (c) library backward */
    float *dx = fzeros(nx), *dg = fzeros(C);
    ra_rmsnorm_backward(dx, dg, c.w, c.x, c.g, c.rstd, N, C);
    double edx = nerr(dx, dxr, nx), edg = nerr(dg, dgr, C);
    check("rms dx", edx, TOL_BWD);
    check("rms dg", edg, TOL_BWD);

    /* accumulation, and dx = NULL */
    float *px = frand(seed + 3, nx, 1.0f, 0.0f), *pg = frand(seed + 4, C, 1.0f, 0.0f);
    float *ax = fdup(px, nx), *ag = fdup(pg, C);
    ra_rmsnorm_backward(ax, ag, c.w, c.x, c.g, c.rstd, N, C);
    check("rms dx +=", acc_err(ax, px, dx, nx), TOL_ACC);
    check("rms dg +=", acc_err(ag, pg, dg, C), TOL_ACC);
    float *g2 = fzeros(C);
    ra_rmsnorm_backward(NULL, g2, c.w, c.x, c.g, c.rstd, N, C);
    assert_memory_equal(g2, dg, sizeof(float) * C);

    /* (d) library backward against FD of the library forward */
    double fdx = 0.0, fdg = 0.0;
    if (!zero_row) {
        fdx = fd_lib(c.x, nx, dx, rms_loss_lib, &c);
        fdg = fd_lib(c.g, C, dg, rms_loss_lib, &c);
        check("rms lib fd dx", fdx, TOL_LIB_FD);
        check("rms lib fd dg", fdg, TOL_LIB_FD);
    }
    printf("  rmsnorm N=%d C=%d%s: y %.1e rstd %.1e | ref fd %.1e | dx %.1e dg %.1e | "
           "lib fd dx %.1e dg %.1e%s\n", N, C, zero_row ? " (zero row)" : "", ey, er, fa, edx,
           edg, fdx, fdg, zero_row ? " (skipped)" : "");

    free(c.x), free(c.g), free(c.w), free(c.y), free(c.rstd);
    free(c.xd), free(c.gd), free(c.wd), free(c.yd), free(yr), free(rr), free(dxr), free(dgr);
    free(dx), free(dg), free(px), free(pg), free(ax), free(ag), free(g2);
}

static void test_rmsnorm(void **state)
{
    (void)state;
    rms_case(1, 8, 100, 0);
    rms_case(7, 64, 110, 0);
    rms_case(33, 100, 120, 0);
    rms_case(5, 300, 130, 0); /* more than one strip of dg columns */
    rms_case(3, 64, 140, 1);
}

/* ---- linear --------------------------------------------------------------- */

typedef struct {
    int N, I, O;
    float *x, *W, *w, *y;
    double *xd, *Wd, *wd, *yd;
} lin_ctx;

static void ref_lin_fwd(double *y, const double *x, const double *W, int N, int I, int O)
{
    for (int n = 0; n < N; n++)
        for (int o = 0; o < O; o++) {
            double s = 0.0;
            for (int i = 0; i < I; i++) s += x[(size_t)n * I + i] * W[(size_t)i * O + o];
            y[(size_t)n * O + o] = s;
        }
}

static double lin_loss_ref(void *p)
{
    lin_ctx *c = p;
    ref_lin_fwd(c->yd, c->xd, c->Wd, c->N, c->I, c->O);
    return wsum_d(c->yd, c->wd, (size_t)c->N * c->O);
}

static double lin_loss_lib(void *p)
{
    lin_ctx *c = p;
    ra_linear_forward(c->y, c->x, c->W, c->N, c->I, c->O);
    return wsum_f(c->y, c->w, (size_t)c->N * c->O);
}

static void lin_case(int N, int I, int O, uint64_t seed)
{
    size_t nx = (size_t)N * I, nW = (size_t)I * O, ny = (size_t)N * O;
    lin_ctx c = {.N = N, .I = I, .O = O};
    c.x = frand(seed, nx, 1.0f, 0.0f), c.W = frand(seed + 1, nW, 1.0f, 0.0f);
    c.w = frand(seed + 2, ny, 1.0f, 0.0f), c.y = fzeros(ny);
    c.xd = todbl(c.x, nx), c.Wd = todbl(c.W, nW), c.wd = todbl(c.w, ny), c.yd = dzeros(ny);

    double *yr = dzeros(ny);
    ref_lin_fwd(yr, c.xd, c.Wd, N, I, O);
    ra_linear_forward(c.y, c.x, c.W, N, I, O);
    double ey = nerr(c.y, yr, ny);
    check("linear y", ey, TOL_FWD);

    /* reference backward: dx = dy W^T, dW = x^T dy */
    double *dxr = dzeros(nx), *dWr = dzeros(nW);
    for (int n = 0; n < N; n++)
        for (int i = 0; i < I; i++)
            for (int o = 0; o < O; o++) {
                dxr[(size_t)n * I + i] += c.wd[(size_t)n * O + o] * c.Wd[(size_t)i * O + o];
                dWr[(size_t)i * O + o] += c.xd[(size_t)n * I + i] * c.wd[(size_t)n * O + o];
            }
    double fa = fmax(fd_ref(c.xd, nx, dxr, lin_loss_ref, &c),
                     fd_ref(c.Wd, nW, dWr, lin_loss_ref, &c));
    check("linear ref fd", fa, TOL_REF_FD);

    float *dx = fzeros(nx), *dW = fzeros(nW);
    ra_linear_backward(dx, dW, c.w, c.x, c.W, N, I, O);
    double edx = nerr(dx, dxr, nx), edW = nerr(dW, dWr, nW);
    check("linear dx", edx, TOL_BWD);
    check("linear dW", edW, TOL_BWD);

    /* accumulation (beta = 1), and dx = NULL */
    float *px = frand(seed + 3, nx, 1.0f, 0.0f), *pW = frand(seed + 4, nW, 1.0f, 0.0f);
    float *ax = fdup(px, nx), *aW = fdup(pW, nW);
    ra_linear_backward(ax, aW, c.w, c.x, c.W, N, I, O);
    check("linear dx +=", acc_err(ax, px, dx, nx), TOL_ACC);
    check("linear dW +=", acc_err(aW, pW, dW, nW), TOL_ACC);
    float *W2 = fzeros(nW);
    ra_linear_backward(NULL, W2, c.w, c.x, c.W, N, I, O);
    check("linear dW (dx NULL)", nerr(W2, dWr, nW), TOL_BWD);
    assert_memory_equal(W2, dW, sizeof(float) * nW); /* the same sgemm call */

    double fdx = fd_lib(c.x, nx, dx, lin_loss_lib, &c), fdW = fd_lib(c.W, nW, dW, lin_loss_lib, &c);
    check("linear lib fd dx", fdx, TOL_LIB_FD);
    check("linear lib fd dW", fdW, TOL_LIB_FD);
    printf("  linear N=%d I=%d O=%d: y %.1e | ref fd %.1e | dx %.1e dW %.1e | lib fd dx %.1e dW "
           "%.1e\n", N, I, O, ey, fa, edx, edW, fdx, fdW);

    free(c.x), free(c.W), free(c.w), free(c.y), free(c.xd), free(c.Wd), free(c.wd), free(c.yd);
    free(yr), free(dxr), free(dWr), free(dx), free(dW), free(px), free(pW), free(ax), free(aW);
    free(W2);
}

static void test_linear(void **state)
{
    (void)state;
    lin_case(1, 8, 8, 200);
    lin_case(7, 64, 33, 210);
    lin_case(33, 100, 64, 220);
    lin_case(33, 8, 100, 230);
}

/* ---- RoPE ----------------------------------------------------------------- */

/* out = R(sign * angle) x on [nh][n][D], angle = pos[t] theta^(-2i/D) */
static void ref_rope(double *out, const double *x, int nh, int n, int D, const int32_t *pos,
                     double theta, double sign)
{
    for (int h = 0; h < nh; h++)
        for (int t = 0; t < n; t++)
            for (int i = 0; i < D / 2; i++) {
                double a = sign * (double)pos[t] * pow(theta, -2.0 * i / D);
                size_t k = ((size_t)h * n + t) * D + 2 * i;
                out[k] = x[k] * cos(a) - x[k + 1] * sin(a);
                out[k + 1] = x[k] * sin(a) + x[k + 1] * cos(a);
            }
}

typedef struct {
    int nh, n, D;
    const int32_t *pos;
    float theta;
    float *x, *out, *w;
    double *xd, *outd, *wd;
} rope_ctx;

static double rope_loss_ref(void *p)
{
    rope_ctx *c = p;
    ref_rope(c->outd, c->xd, c->nh, c->n, c->D, c->pos, c->theta, 1.0);
    return wsum_d(c->outd, c->wd, (size_t)c->nh * c->n * c->D);
}

static double rope_loss_lib(void *p)
{
    rope_ctx *c = p;
    size_t nx = (size_t)c->nh * c->n * c->D;
    memcpy(c->out, c->x, nx * sizeof(float));
    ra_rope_forward(c->out, c->nh, c->n, c->D, c->pos, c->theta);
    return wsum_f(c->out, c->w, nx);
}

static void rope_case(int nh, int n, int D, const int32_t *pos, float theta, uint64_t seed)
{
    size_t nx = (size_t)nh * n * D;
    rope_ctx c = {.nh = nh, .n = n, .D = D, .pos = pos, .theta = theta};
    c.x = frand(seed, nx, 1.0f, 0.0f), c.w = frand(seed + 1, nx, 1.0f, 0.0f), c.out = fzeros(nx);
    c.xd = todbl(c.x, nx), c.wd = todbl(c.w, nx), c.outd = dzeros(nx);

    double *yr = dzeros(nx);
    ref_rope(yr, c.xd, nh, n, D, pos, theta, 1.0);
    rope_loss_lib(&c);
    double ey = nerr(c.out, yr, nx);
    check("rope y", ey, TOL_FWD);

    /* backward = rotation by the opposite angle (in place, not accumulated) */
    double *dxr = dzeros(nx);
    ref_rope(dxr, c.wd, nh, n, D, pos, theta, -1.0);
    double fa = fd_ref(c.xd, nx, dxr, rope_loss_ref, &c);
    check("rope ref fd", fa, TOL_REF_FD);
    float *dx = fdup(c.w, nx);
    ra_rope_backward(dx, nh, n, D, pos, theta);
    double edx = nerr(dx, dxr, nx);
    check("rope dx", edx, TOL_BWD);

    /* forward then backward gives x back */
    float *rt = fdup(c.x, nx);
    ra_rope_forward(rt, nh, n, D, pos, theta);
    ra_rope_backward(rt, nh, n, D, pos, theta);
    double ert = nerr(rt, c.xd, nx);
    check("rope round trip", ert, TOL_ACC);

    double fdx = fd_lib(c.x, nx, dx, rope_loss_lib, &c);
    check("rope lib fd", fdx, TOL_LIB_FD);
    printf("  rope nh=%d n=%d D=%d pos<=%d: y %.1e | ref fd %.1e | dx %.1e | round trip %.1e | "
           "lib fd %.1e\n", nh, n, D, pos[n - 1] > pos[0] ? pos[n - 1] : pos[0], ey, fa, edx, ert,
           fdx);
    free(c.x), free(c.w), free(c.out), free(c.xd), free(c.wd), free(c.outd), free(yr), free(dxr);
    free(dx), free(rt);
}

static void test_rope(void **state)
{
    (void)state;
    const int32_t p1[1] = {4000000};
    rope_case(1, 1, 16, p1, 10000.0f, 300);
    const int32_t p7[7] = {0, 1, 2, 123456, 3999999, 4000000, 4194303};
    rope_case(3, 7, 64, p7, 10000.0f, 310);
    rope_case(2, 7, 16, p7, 500000.0f, 320);
    rope_case(4, 7, 2, p7, 10000.0f, 325);
    /* 33 x 32 = 1056 pairs: crosses the 1024-pair cos/sin chunk mid-row */
    int32_t p33[33];
    for (int t = 0; t < 33; t++) p33[t] = 3999000 + 127 * t;
    rope_case(2, 33, 64, p33, 10000.0f, 330);
}

/* Independent of the formula's transcription: <R(p) q, R(p') k> depends only
 * on p - p', so the score at positions (4M + 5, 4M + 2) must equal the one at
 * (5, 2). A float angle at 4M would be off by ~0.25 rad and fail this. */
static void test_rope_relative(void **state)
{
    (void)state;
    enum { D = 64 };
    float *q = frand(400, D, 1.0f, 0.0f), *k = frand(401, D, 1.0f, 0.0f);
    const int32_t base[2] = {0, 4000000};
    double sc[2];
    for (int b = 0; b < 2; b++) {
        float qq[D], kk[D];
        memcpy(qq, q, sizeof qq), memcpy(kk, k, sizeof kk);
        int32_t pq = base[b] + 5, pk = base[b] + 2;
        ra_rope_forward(qq, 1, 1, D, &pq, 10000.0f);
        ra_rope_forward(kk, 1, 1, D, &pk, 10000.0f);
        sc[b] = wsum_f(qq, kk, D);
    }
    double nq = sqrt(wsum_f(q, q, D)), nk = sqrt(wsum_f(k, k, D));
    double e = fabs(sc[0] - sc[1]) / (nq * nk);
    printf("  rope relative position at 4M: |s(4M) - s(0)| / (|q||k|) = %.1e\n", e);
    check("rope relative", e, TOL_FWD);
    free(q), free(k);
}

/* ---- SwiGLU and GELU ------------------------------------------------------ */

static double ref_sigmoid(double z) { return 1.0 / (1.0 + exp(-z)); }

static double ref_gelu(double a)
{
    return 0.5 * a * (1.0 + tanh(GELU_K0 * (a + GELU_K1 * a * a * a)));
}

/* derivative from the tanh form (the library uses the sigmoid form) */
static double ref_gelu_d(double a)
{
    double t = tanh(GELU_K0 * (a + GELU_K1 * a * a * a));
    return 0.5 * (1.0 + t) + 0.5 * a * (1.0 - t * t) * GELU_K0 * (1.0 + 3.0 * GELU_K1 * a * a);
}

typedef struct {
    size_t n;
    float *a, *b, *w, *u;
    double *ad, *bd, *wd;
} ew_ctx;

static double swiglu_loss_ref(void *p)
{
    ew_ctx *c = p;
    double s = 0.0;
    for (size_t i = 0; i < c->n; i++) s += c->ad[i] * ref_sigmoid(c->ad[i]) * c->bd[i] * c->wd[i];
    return s;
}

static double swiglu_loss_lib(void *p)
{
    ew_ctx *c = p;
    ra_swiglu_forward(c->u, c->a, c->b, c->n);
    return wsum_f(c->u, c->w, c->n);
}

static double gelu_loss_ref(void *p)
{
    ew_ctx *c = p;
    double s = 0.0;
    for (size_t i = 0; i < c->n; i++) s += ref_gelu(c->ad[i]) * c->wd[i];
    return s;
}

static double gelu_loss_lib(void *p)
{
    ew_ctx *c = p;
    ra_gelu_forward(c->u, c->a, c->n);
    return wsum_f(c->u, c->w, c->n);
}

static ew_ctx ew_make(size_t n, uint64_t seed, float amp)
{
    ew_ctx c = {.n = n};
    c.a = frand(seed, n, amp, 0.0f), c.b = frand(seed + 1, n, 1.0f, 0.0f);
    c.w = frand(seed + 2, n, 1.0f, 0.0f), c.u = fzeros(n);
    c.ad = todbl(c.a, n), c.bd = todbl(c.b, n), c.wd = todbl(c.w, n);
    return c;
}

static void ew_free(ew_ctx *c)
{
    free(c->a), free(c->b), free(c->w), free(c->u), free(c->ad), free(c->bd), free(c->wd);
}

static void swiglu_case(size_t n, uint64_t seed)
{
    ew_ctx c = ew_make(n, seed, 6.0f);
    double *ur = dzeros(n), *dar = dzeros(n), *dbr = dzeros(n);
    for (size_t i = 0; i < n; i++) {
        double a = c.ad[i], s = ref_sigmoid(a);
        ur[i] = a * s * c.bd[i];
        dar[i] = c.wd[i] * c.bd[i] * s * (1.0 + a * (1.0 - s));
        dbr[i] = c.wd[i] * a * s;
    }
    swiglu_loss_lib(&c);
    double eu = nerr(c.u, ur, n);
    check("swiglu u", eu, TOL_FWD);
    double fa = fmax(fd_ref(c.ad, n, dar, swiglu_loss_ref, &c),
                     fd_ref(c.bd, n, dbr, swiglu_loss_ref, &c));
    check("swiglu ref fd", fa, TOL_REF_FD);

    float *da = fzeros(n), *db = fzeros(n);
    ra_swiglu_backward(da, db, c.w, c.a, c.b, n);
    double eda = nerr(da, dar, n), edb = nerr(db, dbr, n);
    check("swiglu da", eda, TOL_BWD);
    check("swiglu db", edb, TOL_BWD);

    float *pa = frand(seed + 3, n, 1.0f, 0.0f), *pb = frand(seed + 4, n, 1.0f, 0.0f);
    float *aa = fdup(pa, n), *ab = fdup(pb, n);
    ra_swiglu_backward(aa, ab, c.w, c.a, c.b, n);
    check("swiglu da +=", acc_err(aa, pa, da, n), TOL_ACC);
    check("swiglu db +=", acc_err(ab, pb, db, n), TOL_ACC);

    double fda = fd_lib(c.a, n, da, swiglu_loss_lib, &c);
    double fdb = fd_lib(c.b, n, db, swiglu_loss_lib, &c);
    check("swiglu lib fd da", fda, TOL_LIB_FD);
    check("swiglu lib fd db", fdb, TOL_LIB_FD);
    printf("  swiglu n=%zu: u %.1e | ref fd %.1e | da %.1e db %.1e | lib fd da %.1e db %.1e\n", n,
           eu, fa, eda, edb, fda, fdb);
    ew_free(&c);
    free(ur), free(dar), free(dbr), free(da), free(db), free(pa), free(pb), free(aa), free(ab);
}

static void gelu_case(size_t n, uint64_t seed)
{
    ew_ctx c = ew_make(n, seed, 5.0f);
    double *yr = dzeros(n), *dar = dzeros(n);
    for (size_t i = 0; i < n; i++) {
        yr[i] = ref_gelu(c.ad[i]);
        dar[i] = c.wd[i] * ref_gelu_d(c.ad[i]);
    }
    gelu_loss_lib(&c);
    double ey = nerr(c.u, yr, n);
    check("gelu y", ey, TOL_FWD);
    double fa = fd_ref(c.ad, n, dar, gelu_loss_ref, &c);
    check("gelu ref fd", fa, TOL_REF_FD);

    float *da = fzeros(n);
    ra_gelu_backward(da, c.w, c.a, n);
    double eda = nerr(da, dar, n);
    check("gelu da", eda, TOL_BWD);

    float *pa = frand(seed + 3, n, 1.0f, 0.0f), *aa = fdup(pa, n);
    ra_gelu_backward(aa, c.w, c.a, n);
    check("gelu da +=", acc_err(aa, pa, da, n), TOL_ACC);

    double fda = fd_lib(c.a, n, da, gelu_loss_lib, &c);
    check("gelu lib fd", fda, TOL_LIB_FD);
    printf("  gelu n=%zu: y %.1e | ref fd %.1e | da %.1e | lib fd %.1e\n", n, ey, fa, eda, fda);
    ew_free(&c);
    free(yr), free(dar), free(da), free(pa), free(aa);
}

static void test_swiglu(void **state)
{
    (void)state;
    const size_t ns[] = {1, 7, 33, 64, 100};
    for (int i = 0; i < 5; i++) swiglu_case(ns[i], 500 + 10 * (uint64_t)i);
}

static void test_gelu(void **state)
{
    (void)state;
    const size_t ns[] = {1, 7, 33, 64, 100};
    for (int i = 0; i < 5; i++) gelu_case(ns[i], 600 + 10 * (uint64_t)i);
}

/* Saturated inputs, elementwise: |x - ref| <= 1e-5 |ref| + 1e-30 (the
 * absolute floor admits the float flush of values below ~1e-37, where
 * exp(-87) underflows), and everything finite. */
static void test_elementwise_extremes(void **state)
{
    (void)state;
    static const float av[] = {-1e30f, -1e4f, -100.0f, -88.5f, -87.0f, -30.0f, -10.0f, -1e-20f,
                               0.0f,   1e-20f, 10.0f,  30.0f,  87.0f,  88.5f,  100.0f, 1e4f,
                               1e30f};
    enum { n = sizeof av / sizeof av[0] };
    float b[n], du[n], u[n], y[n], da[n], db[n], dg[n];
    for (int i = 0; i < n; i++) b[i] = 0.75f, du[i] = -1.25f, da[i] = db[i] = dg[i] = 0.0f;
    ra_swiglu_forward(u, av, b, n);
    ra_swiglu_backward(da, db, du, av, b, n);
    ra_gelu_forward(y, av, n);
    ra_gelu_backward(dg, du, av, n);
    double worst = 0.0;
    for (int i = 0; i < n; i++) {
        double a = av[i], s = ref_sigmoid(a);
        double want[5] = {a * s * b[i], du[i] * b[i] * s * (1.0 + a * (1.0 - s)), du[i] * a * s,
                          ref_gelu(a), du[i] * ref_gelu_d(a)};
        const float got[5] = {u[i], da[i], db[i], y[i], dg[i]};
        for (int k = 0; k < 5; k++) {
            assert_true(isfinite(got[k]));
            double e = fabs(got[k] - want[k]) / (fabs(want[k]) + 1e-25);
            if (fabs(got[k] - want[k]) > 1e-5 * fabs(want[k]) + 1e-30) {
                printf("  FAIL extreme a=%g quantity %d: got %.9g want %.9g\n", a, k, got[k],
                       want[k]);
                fail();
            }
            if (fabs(want[k]) > 1e-30) worst = fmax(worst, e);
        }
    }
    printf("  swiglu/gelu extremes (|a| up to 1e30): worst relative error %.1e\n", worst);
}

/* ---- embedding ------------------------------------------------------------ */

typedef struct {
    int N, C;
    const int32_t *tok;
    float *E, *w, *x;
    double *Ed, *wd;
} emb_ctx;

static double emb_loss_ref(void *p)
{
    emb_ctx *c = p;
    double s = 0.0;
    for (int i = 0; i < c->N; i++)
        for (int j = 0; j < c->C; j++)
            s += c->Ed[(size_t)c->tok[i] * c->C + j] * c->wd[(size_t)i * c->C + j];
    return s;
}

static double emb_loss_lib(void *p)
{
    emb_ctx *c = p;
    ra_embed_forward(c->x, c->tok, c->E, c->N, c->C);
    return wsum_f(c->x, c->w, (size_t)c->N * c->C);
}

static void embed_case(int N, int C, int V, uint64_t seed)
{
    size_t nx = (size_t)N * C, nE = (size_t)V * C;
    int32_t *tok = malloc(sizeof(int32_t) * N);
    assert_non_null(tok);
    for (int i = 0; i < N; i++) tok[i] = (7 * i + 3) % V; /* repeats once N > V */
    emb_ctx c = {.N = N, .C = C, .tok = tok};
    c.E = frand(seed, nE, 1.0f, 0.0f), c.w = frand(seed + 1, nx, 1.0f, 0.0f), c.x = fzeros(nx);
    c.Ed = todbl(c.E, nE), c.wd = todbl(c.w, nx);

    ra_embed_forward(c.x, tok, c.E, N, C);
    for (int i = 0; i < N; i++)
        assert_memory_equal(c.x + (size_t)i * C, c.E + (size_t)tok[i] * C, sizeof(float) * C);

    double *dEr = dzeros(nE);
    for (int i = 0; i < N; i++)
        for (int j = 0; j < C; j++) dEr[(size_t)tok[i] * C + j] += c.wd[(size_t)i * C + j];
    double fa = fd_ref(c.Ed, nE, dEr, emb_loss_ref, &c);
    check("embed ref fd", fa, TOL_REF_FD);
    float *dE = fzeros(nE);
    ra_embed_backward(dE, tok, c.w, N, C);
    double edE = nerr(dE, dEr, nE);
    check("embed dE", edE, TOL_BWD);
    float *pE = frand(seed + 2, nE, 1.0f, 0.0f), *aE = fdup(pE, nE);
    ra_embed_backward(aE, tok, c.w, N, C);
    check("embed dE +=", acc_err(aE, pE, dE, nE), TOL_ACC);
    double fdE = fd_lib(c.E, nE, dE, emb_loss_lib, &c);
    check("embed lib fd", fdE, TOL_LIB_FD);
    printf("  embed N=%d C=%d V=%d: x exact | ref fd %.1e | dE %.1e | lib fd %.1e\n", N, C, V, fa,
           edE, fdE);
    free(tok), free(c.E), free(c.w), free(c.x), free(c.Ed), free(c.wd), free(dEr), free(dE);
    free(pE), free(aE);
}

static void test_embed(void **state)
{
    (void)state;
    embed_case(1, 8, 11, 700);
    embed_case(7, 64, 11, 710);
    embed_case(33, 100, 11, 720);
}

/* ---- cross-entropy -------------------------------------------------------- */

/* sum of -log softmax[tgt] over counted rows; d (may be NULL) = scale (p -
 * onehot), 0 on ignored rows; argmax = first index of the row max */
static double ref_xent(double *d, const double *l, const int32_t *tgt, int N, int V,
                       double scale, int64_t *count, int64_t *correct)
{
    double loss = 0.0;
    int64_t cnt = 0, ok = 0;
    for (int i = 0; i < N; i++) {
        const double *li = l + (size_t)i * V;
        double *di = d ? d + (size_t)i * V : NULL;
        if (tgt[i] < 0) {
            if (di) memset(di, 0, sizeof(double) * V);
            continue;
        }
        int am = 0;
        for (int j = 1; j < V; j++)
            if (li[j] > li[am]) am = j;
        double m = li[am], s = 0.0;
        for (int j = 0; j < V; j++) s += exp(li[j] - m);
        loss += m + log(s) - li[tgt[i]];
        cnt++;
        ok += am == tgt[i];
        if (di) {
            for (int j = 0; j < V; j++) di[j] = scale * exp(li[j] - m) / s;
            di[tgt[i]] -= scale;
        }
    }
    if (count) *count = cnt;
    if (correct) *correct = ok;
    return loss;
}

typedef struct {
    int N, V;
    const int32_t *tgt;
    float scale;
    float *l;
    double *ld;
} xent_ctx;

static double xent_loss_ref(void *p)
{
    xent_ctx *c = p;
    return c->scale * ref_xent(NULL, c->ld, c->tgt, c->N, c->V, c->scale, NULL, NULL);
}

static double xent_loss_lib(void *p)
{
    xent_ctx *c = p;
    int64_t cnt;
    return c->scale * ra_xent(NULL, c->l, c->tgt, c->N, c->V, c->scale, &cnt, NULL);
}

/* amp: logit amplitude (1e4 for the extreme case, where the FD checks are
 * skipped: the loss is piecewise linear at that scale and a step of 1e-2 on
 * 1e4 is below float resolution). boost: rows whose target logit gets +5, so
 * the argmax count is not trivially 0. */
static void xent_case(int N, int V, const int32_t *tgt, float amp, uint64_t seed)
{
    size_t nl = (size_t)N * V;
    xent_ctx c = {.N = N, .V = V, .tgt = tgt};
    c.l = frand(seed, nl, amp, 0.0f);
    if (amp >= 1e3f) /* extreme: every logit is exactly +-amp */
        for (size_t i = 0; i < nl; i++) c.l[i] = c.l[i] >= 0 ? amp : -amp;
    for (int i = 0; i < N; i += 3)
        if (tgt[i] >= 0 && amp < 1e3f) c.l[(size_t)i * V + tgt[i]] += 5.0f;
    c.ld = todbl(c.l, nl);
    int64_t rc, rk;
    double lr = ref_xent(NULL, c.ld, tgt, N, V, 1.0, &rc, NULL);
    c.scale = rc > 0 ? 1.0f / (float)rc : 1.0f;
    double *dr = dzeros(nl);
    ref_xent(dr, c.ld, tgt, N, V, c.scale, NULL, &rk);

    float *d = frand(seed + 1, nl, 7.0f, 0.0f); /* garbage: must be overwritten */
    int64_t cnt = -1, ok = -1, cnt2 = -1;
    double ll = ra_xent(d, c.l, tgt, N, V, c.scale, &cnt, &ok);
    double ll2 = ra_xent(NULL, c.l, tgt, N, V, c.scale, &cnt2, NULL);
    assert_int_equal(cnt, rc);
    assert_int_equal(cnt2, rc);
    assert_int_equal(ok, rk);
    assert_true(isfinite(ll));
    assert_true(ll == ll2);
    double el = fabs(ll - lr) / fmax(1.0, fabs(lr));
    check("xent loss", el, 1e-6);
    double ed = nerr(d, dr, nl);
    check("xent dlogits", ed, TOL_BWD);
    for (int i = 0; i < N; i++)
        if (tgt[i] < 0)
            for (int j = 0; j < V; j++) assert_true(d[(size_t)i * V + j] == 0.0f);

    double fa = 0.0, fdl = 0.0;
    if (amp < 1e3f) {
        fa = fd_ref(c.ld, nl, dr, xent_loss_ref, &c);
        check("xent ref fd", fa, TOL_REF_FD);
        fdl = fd_lib(c.l, nl, d, xent_loss_lib, &c);
        check("xent lib fd", fdl, TOL_LIB_FD);
    }
    printf("  xent N=%d V=%d amp=%g: count %lld correct %lld loss %.6g rel err %.1e | "
           "dlogits %.1e | ref fd %.1e | lib fd %.1e\n", N, V, amp, (long long)cnt, (long long)ok,
           ll, el, ed, fa, fdl);
    free(c.l), free(c.ld), free(dr), free(d);
}

static void test_xent(void **state)
{
    (void)state;
    int32_t t7[7] = {3, -1, 99, 0, 50, -1, 17};
    xent_case(7, 100, t7, 3.0f, 800);
    int32_t t33[33];
    for (int i = 0; i < 33; i++) t33[i] = (5 * i + 1) % 33;
    xent_case(33, 33, t33, 2.0f, 810);
    int32_t t1[1] = {0};
    xent_case(1, 1, t1, 1.0f, 820); /* V = 1: loss 0, gradient 0 */
    int32_t t8[7] = {7, 0, 1, 2, 3, 4, 5};
    xent_case(7, 8, t8, 4.0f, 830);
    /* a wide row: several vectors plus a tail, sums in double over 5003 */
    int32_t tw[3] = {5002, -1, 17};
    xent_case(3, 5003, tw, 3.0f, 840);
}

static void test_xent_extreme(void **state)
{
    (void)state;
    int32_t t[5] = {0, 36, 5, -1, 20};
    xent_case(5, 37, t, 1e4f, 900);
}

static void test_xent_all_ignored(void **state)
{
    (void)state;
    enum { N = 5, V = 10 };
    int32_t t[N] = {-1, -1, -1, -1, -1};
    float *l = frand(950, N * V, 3.0f, 0.0f), d[N * V];
    for (int i = 0; i < N * V; i++) d[i] = 7.0f;
    int64_t cnt = -1, ok = -1;
    double loss = ra_xent(d, l, t, N, V, 1.0f, &cnt, &ok);
    assert_true(loss == 0.0);
    assert_int_equal(cnt, 0);
    assert_int_equal(ok, 0);
    for (int i = 0; i < N * V; i++) assert_true(d[i] == 0.0f);
    free(l);
}

/* tgt >= V is a caller bug: RA_ASSERT aborts (checked in a child process) */
static void test_xent_bad_target_aborts(void **state)
{
    (void)state;
    float l[4] = {0.0f, 1.0f, 2.0f, 3.0f};
    int32_t t[1] = {4};
    fflush(stdout);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int fd = open("/dev/null", O_WRONLY);
        if (fd >= 0) dup2(fd, 2);
        int64_t cnt;
        ra_xent(NULL, l, t, 1, 4, 1.0f, &cnt, NULL);
        _exit(0); /* not reached when the assertion fires */
    }
    int st = 0;
    assert_true(waitpid(pid, &st, 0) == pid);
    assert_true(WIFSIGNALED(st) && WTERMSIG(st) == SIGABRT);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rmsnorm),
        cmocka_unit_test(test_linear),
        cmocka_unit_test(test_rope),
        cmocka_unit_test(test_rope_relative),
        cmocka_unit_test(test_swiglu),
        cmocka_unit_test(test_gelu),
        cmocka_unit_test(test_elementwise_extremes),
        cmocka_unit_test(test_embed),
        cmocka_unit_test(test_xent),
        cmocka_unit_test(test_xent_extreme),
        cmocka_unit_test(test_xent_all_ignored),
        cmocka_unit_test(test_xent_bad_target_aborts),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
