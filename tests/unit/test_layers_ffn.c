/* test_layers_ffn.c - the FFN activations SwiGLU and GELU (layers.h)
 * against float64 references written here from the formulas, by the method
 * of layers_helpers.h, and at saturated inputs (|a| up to 1e30). The other
 * kernels: test_layers.c, test_layers_embed_xent.c. */
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

#define GELU_K0 0.7978845608028654 /* sqrt(2/pi) */
#define GELU_K1 0.044715

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

/* Above the threading threshold (32768 values; blocks of 8192, the last
 * partial with a vector tail), at 1-4 threads. */
static void test_threads(void **state)
{
    /* under valgrind (RA_TEST_WRAPPER is its setup) the 1-4 thread sweep on
     * threaded sizes takes minutes; it runs natively and under asan */
    if (getenv("RA_TEST_WRAPPER")) skip();
    (void)state;
    for (int nt = 1; nt <= 4; nt++) {
        ra_threads_set(nt);
        printf("  %d thread(s)\n", nt);
        swiglu_case(40005, 550 + (uint64_t)nt);
        gelu_case(40005, 650 + (uint64_t)nt);
    }
    ra_threads_set(1);
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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_swiglu),
        cmocka_unit_test(test_threads),
        cmocka_unit_test(test_gelu),
        cmocka_unit_test(test_elementwise_extremes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
