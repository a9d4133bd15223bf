/* test_rownorm.c - the rownorm preconditioner against a float64 reference
 * (forward, and the stop-gradient backward) and central differences of that
 * reference (the full backward). Tolerances: forward 1e-6 normalised (one
 * float32 rounding per value), backward 1e-5 normalised; the finite
 * differences run in double with step 1e-6 (error ~1e-9). */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>

#include <cmocka.h>

#include "ringattn/layers.h"
#include "ringattn/rng.h"

static void ref_forward(const double *o, double *ot, int N, int D, double eps)
{
    for (int i = 0; i < N; i++) {
        double s = 0;
        for (int d = 0; d < D; d++) s += o[i * D + d] * o[i * D + d];
        double n = sqrt(s);
        for (int d = 0; d < D; d++) ot[i * D + d] = o[i * D + d] / (n + eps);
    }
}

static double loss(const double *o, const double *w, int N, int D, double eps)
{
    double *ot = malloc(sizeof(double) * N * D), s = 0;
    ref_forward(o, ot, N, D, eps);
    for (int i = 0; i < N * D; i++) s += ot[i] * w[i];
    free(ot);
    return s;
}

static double nerr(const float *x, const double *ref, int n)
{
    double e = 0, m = 0;
    for (int i = 0; i < n; i++) {
        e = fmax(e, fabs(x[i] - ref[i]));
        m = fmax(m, fabs(ref[i]));
    }
    return e / (m > 0 ? m : 1);
}

static void check(int N, int D, float eps, int zero_row)
{
    float *o = malloc(sizeof(float) * N * D), *g = malloc(sizeof(float) * N * D), *norm = malloc(sizeof(float) * N);
    double *od = malloc(sizeof(double) * N * D), *w = malloc(sizeof(double) * N * D), *ref = malloc(sizeof(double) * N * D);
    for (int i = 0; i < N * D; i++) {
        o[i] = ra_rand_uniform(1, (uint64_t)i) * (1 + i % 5);
        w[i] = ra_rand_uniform(2, (uint64_t)i);
    }
    if (zero_row)
        for (int d = 0; d < D; d++) o[d] = 0; /* n = 0: no NaN, the full term vanishes */
    for (int i = 0; i < N * D; i++) od[i] = o[i];
    ref_forward(od, ref, N, D, eps);
    ra_rownorm_forward(o, norm, N, D, eps); /* o now holds the output */
    double ef = nerr(o, ref, N * D);
    for (int full = 0; full <= 1; full++) {
        for (int i = 0; i < N * D; i++) g[i] = (float)w[i];
        ra_rownorm_backward(g, o, norm, N, D, eps, full);
        if (!full) { /* dO = dOt / (n + eps) */
            for (int i = 0; i < N; i++) {
                double s = 0;
                for (int d = 0; d < D; d++) s += od[i * D + d] * od[i * D + d];
                for (int d = 0; d < D; d++) ref[i * D + d] = w[i * D + d] / (sqrt(s) + eps);
            }
        } else { /* central differences of sum(w * rownorm(o)) */
            for (int i = 0; i < N * D; i++) {
                double keep = od[i], h = 1e-6;
                od[i] = keep + h;
                double lp = loss(od, w, N, D, eps);
                od[i] = keep - h;
                double lm = loss(od, w, N, D, eps);
                od[i] = keep;
                ref[i] = (lp - lm) / (2 * h);
            }
            if (zero_row) /* not differentiable at 0: the defined value is the stop term */
                for (int d = 0; d < D; d++) ref[d] = w[d] / eps;
        }
        double eb = nerr(g, ref, N * D);
        printf("  rownorm N=%d D=%d eps=%g zero_row=%d %s: forward %.2e backward %.2e\n", N, D, eps, zero_row,
               full ? "full" : "stop", ef, eb);
        for (int i = 0; i < N * D; i++) assert_false(isnan(g[i]));
        assert_true(ef <= 1e-6);
        assert_true(eb <= 1e-5);
    }
    free(o), free(g), free(norm), free(od), free(w), free(ref);
}

static void test_sizes(void **s)
{
    (void)s;
    check(1, 8, 1e-6f, 0);
    check(7, 16, 1e-6f, 0);
    check(33, 64, 1e-3f, 0);
}

/* kappa from the Gram matrix against the singular values of O (LAPACK
 * dgesvd, a different algorithm), within 1e-3 relative as required. */
void dgesvd_(const char *jobu, const char *jobvt, const int *m, const int *n, double *a, const int *lda, double *s,
             double *u, const int *ldu, double *vt, const int *ldvt, double *work, const int *lwork, int *info);

static void test_kappa(void **st)
{
    (void)st;
    const int N = 60, D = 12;
    for (int scale = 0; scale < 3; scale++) {
        float *o = malloc(sizeof(float) * N * D);
        double *a = malloc(sizeof(double) * N * D), G[D * D], sv[D], work[1024];
        for (int i = 0; i < N; i++)
            for (int d = 0; d < D; d++) { /* columns of different sizes: kappa ~ 10^scale */
                o[i * D + d] = ra_rand_uniform(9 + scale, (uint64_t)(i * D + d)) * (float)pow(10.0, scale * d / (D - 1.0));
                a[d * N + i] = o[i * D + d]; /* column-major for LAPACK */
            }
        for (int i = 0; i < D * D; i++) G[i] = 0;
        ra_gram_accumulate(G, o, N / 2, D); /* two "ranks", summed */
        ra_gram_accumulate(G, o + (N / 2) * D, N - N / 2, D);
        double smax, smin, k = ra_kappa_from_gram(G, D, &smax, &smin);
        int m = N, n = D, lwork = 1024, info;
        dgesvd_("N", "N", &m, &n, a, &m, sv, NULL, &m, NULL, &n, work, &lwork, &info);
        assert_int_equal(info, 0);
        double ref = sv[0] / sv[D - 1];
        printf("  kappa: gram %.6g, svd %.6g, relative %.2e\n", k, ref, fabs(k - ref) / ref);
        assert_true(fabs(k - ref) / ref <= 1e-3);
        free(o), free(a);
    }
}

/* A rank-deficient O (column 3 = 2 x column 1) is infinite however its
 * rows are split over ranks: the Gram's smallest eigenvalue is rounding,
 * of either sign (it was inf at one rank and about 1e8 at two). */
static void test_kappa_singular(void **st)
{
    (void)st;
    const int N = 96, D = 8;
    float *o = malloc(sizeof(float) * N * D);
    for (int i = 0; i < N; i++)
        for (int d = 0; d < D; d++)
            o[i * D + d] = d == 3 ? 2 * o[i * D + 1] : ra_rand_uniform(5, (uint64_t)(i * D + d)) * 3.7f;
    for (int parts = 1; parts <= 8; parts++) {
        double G[8 * 8] = { 0 }, smax, smin;
        for (int p = 0; p < parts; p++) {
            const int a = N * p / parts, b = N * (p + 1) / parts;
            ra_gram_accumulate(G, o + (size_t)a * D, b - a, D);
        }
        const double k = ra_kappa_from_gram(G, D, &smax, &smin);
        if (!isinf(k)) fail_msg("%d parts: kappa %g, expected inf (sigma_min %g, sigma_max %g)", parts, k, smin, smax);
        assert_true(smax > 1);
    }
    o[5 * D + 3] += 0.5f; /* no longer singular: finite */
    double G[8 * 8] = { 0 }, smax, smin;
    ra_gram_accumulate(G, o, N, D);
    assert_true(isfinite(ra_kappa_from_gram(G, D, &smax, &smin)));
    free(o);
}

static void test_zero_row(void **s)
{
    (void)s;
    check(5, 16, 1e-2f, 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = { cmocka_unit_test(test_sizes), cmocka_unit_test(test_zero_row),
                                        cmocka_unit_test(test_kappa), cmocka_unit_test(test_kappa_singular) };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
