/* test_layers.c - the layer kernels RMSNorm, linear and RoPE (layers.h)
 * against float64 references written here from the formulas, by the method
 * of layers_helpers.h: reference against its own finite differences,
 * library forward and backward against the reference, accumulation, and
 * library backward against finite differences of the library forward.
 * SwiGLU and GELU: test_layers_ffn.c; embedding and cross-entropy:
 * test_layers_embed_xent.c. test_threads repeats the method on calls
 * large enough to be threaded, at 1, 2, 3 and 4 threads (bitwise equality
 * across thread counts: test_threads_layers.c). */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "ringattn/layers.h"
#include "ringattn/threads.h"
#include "layers_helpers.h"

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

/* Above the kernels' threading threshold (32768 floats), at 1-4 threads:
 * N = 129 rows of C = 300 (two dg strips are split unevenly over threads,
 * plus a partial strip), RoPE over 4160 pairs (5 cos/sin chunks, a partial
 * one last). */
static void test_threads(void **state)
{
    /* under valgrind (RA_TEST_WRAPPER is its setup) the 1-4 thread sweep on
     * threaded sizes takes minutes; it runs natively and under asan */
    if (getenv("RA_TEST_WRAPPER")) skip();
    (void)state;
    int32_t p130[130];
    for (int t = 0; t < 130; t++) p130[t] = 3999000 + 37 * t;
    for (int nt = 1; nt <= 4; nt++) {
        ra_threads_set(nt);
        printf("  %d thread(s)\n", nt);
        rms_case(129, 300, 150 + (uint64_t)nt, 0);
        rope_case(4, 130, 64, p130, 10000.0f, 340 + (uint64_t)nt);
    }
    ra_threads_set(1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_threads),
        cmocka_unit_test(test_rmsnorm),
        cmocka_unit_test(test_linear),
        cmocka_unit_test(test_rope),
        cmocka_unit_test(test_rope_relative),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
