/* test_threads_layers.c - the threaded element-wise and row-wise kernels
 * (layers.h) and the optimizer (optim.h) give BITWISE the same results at
 * 2, 3 and 4 threads as at 1 thread, on calls large enough to be threaded
 * (32768 floats or more) with sizes that split unevenly: every work item
 * (row, dg column strip, RoPE chunk, element block, vocabulary row, norm
 * segment) is fixed by the shapes and every sum is taken in a fixed order.
 * The accuracy of each kernel at 1-4 threads against float64 references is
 * tested in test_layers*.c; here the rownorm kernels, the gradient norm and
 * AdamW, which have no threaded case there, are also checked against float64
 * references (forward 1e-6 normalised, backward 1e-5, norm 1e-12 relative,
 * AdamW 1e-6 normalised). */
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
#include "ringattn/optim.h"
#include "ringattn/rng.h"
#include "ringattn/threads.h"

enum { MAXT = 4 };

static float *frnd(uint64_t seed, size_t n, float amp, float off)
{
    float *x = malloc((n ? n : 1) * sizeof *x);
    assert_non_null(x);
    for (size_t i = 0; i < n; i++) x[i] = off + amp * ra_rand_uniform(seed, i);
    return x;
}

static float *fcopy(const float *x, size_t n)
{
    float *y = malloc((n ? n : 1) * sizeof *y);
    assert_non_null(y);
    memcpy(y, x, n * sizeof *y);
    return y;
}

/* the bytes of out at nt threads equal those at 1 thread */
static void same(const char *what, int nt, const float *one, const float *out, size_t n)
{
    if (memcmp(one, out, n * sizeof *out) != 0) {
        size_t i = 0;
        while (one[i] == out[i]) i++;
        printf("  %s: %d threads differ from 1 at %zu: %.9g vs %.9g\n", what, nt, i, out[i], one[i]);
        fail();
    }
}

/* Every kernel, one call each on fresh copies of the same inputs; the
 * outputs at 1 thread are kept in `ref`, the later ones compared to them. */
typedef struct {
    float *y, *rstd, *dx, *dg, *rope, *ropeb, *u, *da, *db, *ge, *gda, *emb, *dE, *dl, *rn, *nrm,
        *rnb;
    double loss;
    int64_t cnt, ok;
} outs;

enum { N = 129, C = 300, NH = 4, L = 130, D = 64, NE = 40005, NT = 300, V = 11, XN = 70, XV = 501 };

static void run_all(outs *o, int nt)
{
    ra_threads_set(nt);
    const size_t nx = (size_t)N * C;
    float *x = frnd(1, nx, 1.0f, 0.0f), *g = frnd(2, C, 0.5f, 1.0f), *dy = frnd(3, nx, 1.0f, 0.0f);
    o->y = malloc(nx * sizeof(float)), o->rstd = malloc(N * sizeof(float));
    ra_rmsnorm_forward(o->y, o->rstd, x, g, N, C, 1e-5f);
    o->dx = frnd(4, nx, 0.1f, 0.0f), o->dg = frnd(5, C, 0.1f, 0.0f);
    ra_rmsnorm_backward(o->dx, o->dg, dy, x, g, o->rstd, N, C);

    int32_t pos[L];
    for (int t = 0; t < L; t++) pos[t] = 3999000 + 37 * t;
    o->rope = frnd(6, (size_t)NH * L * D, 1.0f, 0.0f);
    o->ropeb = fcopy(o->rope, (size_t)NH * L * D);
    ra_rope_forward(o->rope, NH, L, D, pos, 10000.0f);
    ra_rope_backward(o->ropeb, NH, L, D, pos, 500000.0f);

    float *a = frnd(7, NE, 4.0f, 0.0f), *b = frnd(8, NE, 2.0f, 0.0f), *du = frnd(9, NE, 1.0f, 0.0f);
    o->u = malloc(NE * sizeof(float)), o->ge = malloc(NE * sizeof(float));
    ra_swiglu_forward(o->u, a, b, NE);
    o->da = frnd(10, NE, 0.1f, 0.0f), o->db = frnd(11, NE, 0.1f, 0.0f), o->gda = frnd(12, NE, 0.1f, 0.0f);
    ra_swiglu_backward(o->da, o->db, du, a, b, NE);
    ra_gelu_forward(o->ge, a, NE);
    ra_gelu_backward(o->gda, du, a, NE);

    int32_t tok[NT];
    for (int i = 0; i < NT; i++) tok[i] = (7 * i + i / 13) % V;
    float *E = frnd(13, (size_t)V * 120, 1.0f, 0.0f), *dxe = frnd(14, (size_t)NT * 120, 1.0f, 0.0f);
    o->emb = malloc((size_t)NT * 120 * sizeof(float));
    ra_embed_forward(o->emb, tok, E, NT, 120);
    o->dE = frnd(15, (size_t)V * 120, 0.1f, 0.0f);
    ra_embed_backward(o->dE, tok, dxe, NT, 120);

    int32_t tgt[XN];
    for (int i = 0; i < XN; i++) tgt[i] = i % 9 == 4 ? -1 : (37 * i + 3) % XV;
    float *lg = frnd(16, (size_t)XN * XV, 3.0f, 0.0f);
    o->dl = malloc((size_t)XN * XV * sizeof(float));
    o->loss = ra_xent(o->dl, lg, tgt, XN, XV, 0.25f, &o->cnt, &o->ok);

    o->rn = frnd(17, nx, 1.0f, 0.0f), o->nrm = malloc(N * sizeof(float));
    ra_rownorm_forward(o->rn, o->nrm, N, C, 1e-6f);
    o->rnb = frnd(18, nx, 1.0f, 0.0f);
    ra_rownorm_backward(o->rnb, o->rn, o->nrm, N, C, 1e-6f, 1);
    free(x), free(g), free(dy), free(a), free(b), free(du), free(E), free(dxe), free(lg);
    ra_threads_set(1);
}

static void free_all(outs *o)
{
    float **f[] = {&o->y, &o->rstd, &o->dx, &o->dg, &o->rope, &o->ropeb, &o->u, &o->da, &o->db,
                   &o->ge, &o->gda, &o->emb, &o->dE, &o->dl, &o->rn, &o->nrm, &o->rnb};
    for (size_t i = 0; i < sizeof f / sizeof *f; i++) free(*f[i]);
}

static void test_layers_bitwise(void **state)
{
    (void)state;
    const size_t nx = (size_t)N * C, nr = (size_t)NH * L * D;
    outs one, o;
    run_all(&one, 1);
    for (int nt = 2; nt <= MAXT; nt++) {
        run_all(&o, nt);
        same("rmsnorm y", nt, one.y, o.y, nx);
        same("rmsnorm rstd", nt, one.rstd, o.rstd, N);
        same("rmsnorm dx", nt, one.dx, o.dx, nx);
        same("rmsnorm dg", nt, one.dg, o.dg, C);
        same("rope forward", nt, one.rope, o.rope, nr);
        same("rope backward", nt, one.ropeb, o.ropeb, nr);
        same("swiglu u", nt, one.u, o.u, NE);
        same("swiglu da", nt, one.da, o.da, NE);
        same("swiglu db", nt, one.db, o.db, NE);
        same("gelu y", nt, one.ge, o.ge, NE);
        same("gelu da", nt, one.gda, o.gda, NE);
        same("embed x", nt, one.emb, o.emb, (size_t)NT * 120);
        same("embed dE", nt, one.dE, o.dE, (size_t)V * 120);
        same("xent dlogits", nt, one.dl, o.dl, (size_t)XN * XV);
        assert_memory_equal(&one.loss, &o.loss, sizeof o.loss);
        assert_int_equal(one.cnt, o.cnt);
        assert_int_equal(one.ok, o.ok);
        same("rownorm forward", nt, one.rn, o.rn, nx);
        same("rownorm norm", nt, one.nrm, o.nrm, N);
        same("rownorm backward", nt, one.rnb, o.rnb, nx);
        printf("  %d threads: every output bitwise equal to 1 thread\n", nt);
        free_all(&o);
    }
    free_all(&one);
}

/* rownorm above the threshold at 1-4 threads against float64: forward and
 * the stop-gradient backward dO = dOt / (n + eps). */
static void test_rownorm_reference(void **state)
{
    (void)state;
    const size_t nx = (size_t)N * C;
    const float eps = 1e-3f;
    for (int nt = 1; nt <= MAXT; nt++) {
        ra_threads_set(nt);
        float *o = frnd(20, nx, 1.0f, 0.0f), *x = fcopy(o, nx), *nrm = malloc(N * sizeof(float));
        float *gr = frnd(21, nx, 1.0f, 0.0f), *w = fcopy(gr, nx);
        ra_rownorm_forward(o, nrm, N, C, eps);
        ra_rownorm_backward(gr, o, nrm, N, C, eps, 0);
        double ef = 0, mf = 0, eb = 0, mb = 0;
        for (int i = 0; i < N; i++) {
            double s = 0;
            for (int d = 0; d < C; d++) s += (double)x[i * C + d] * x[i * C + d];
            double n = sqrt(s);
            for (int d = 0; d < C; d++) {
                double rf = x[i * C + d] / (n + eps), rb = w[i * C + d] / (n + eps);
                ef = fmax(ef, fabs(o[i * C + d] - rf)), mf = fmax(mf, fabs(rf));
                eb = fmax(eb, fabs(gr[i * C + d] - rb)), mb = fmax(mb, fabs(rb));
            }
        }
        printf("  rownorm %d threads: forward %.2e backward %.2e\n", nt, ef / mf, eb / mb);
        assert_true(ef / mf <= 1e-6);
        assert_true(eb / mb <= 1e-5);
        free(o), free(x), free(nrm), free(gr), free(w);
    }
    ra_threads_set(1);
}

/* The gradient norm: against a float64 sum (1e-12 relative) and bitwise the
 * same at 1-4 threads, at sizes above and below the threshold; AdamW
 * against a float64 transcription of the update (1e-6 normalised) and
 * bitwise the same at 1-4 threads. */
static void test_optim(void **state)
{
    (void)state;
    const size_t sizes[] = {0, 1, 255, 257, 40005, 1000003};
    for (size_t k = 0; k < sizeof sizes / sizeof *sizes; k++) {
        size_t n = sizes[k];
        float *g = frnd(30 + k, n, 2.0f, 0.1f);
        double ref = 0;
        for (size_t i = 0; i < n; i++) ref += (double)g[i] * g[i];
        ref = sqrt(ref);
        double one = 0;
        for (int nt = 1; nt <= MAXT; nt++) {
            ra_threads_set(nt);
            double v = ra_grad_norm(g, n);
            if (nt == 1) one = v;
            assert_true(fabs(v - ref) <= 1e-12 * ref);
            assert_memory_equal(&v, &one, sizeof v);
        }
        free(g);
    }
    ra_threads_set(1);

    ra_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.beta1 = 0.9f, cfg.beta2 = 0.95f, cfg.adam_eps = 1e-8f, cfg.weight_decay = 0.1f;
    const size_t n = 40005;
    float *g = frnd(40, n, 1.0f, 0.0f), *p0 = frnd(41, n, 1.0f, 0.0f), *m0 = frnd(42, n, 0.01f, 0.0f);
    float *v0 = frnd(43, n, 0.001f, 0.001f), *p1 = NULL, *m1 = NULL, *v1 = NULL;
    unsigned char *decay = malloc(n);
    for (size_t i = 0; i < n; i++) decay[i] = i % 3 != 0;
    const float lr = 1e-3f, scale = 0.5f;
    const int step = 7;
    for (int nt = 1; nt <= MAXT; nt++) {
        ra_threads_set(nt);
        float *p = fcopy(p0, n), *mv = malloc(2 * n * sizeof(float));
        memcpy(mv, m0, n * sizeof(float)), memcpy(mv + n, v0, n * sizeof(float));
        ra_adamw opt = {.n = n, .m = mv, .v = mv + n, .decay = decay};
        ra_adamw_step(&opt, p, g, scale, lr, &cfg, step);
        if (nt == 1) {
            double e = 0, mx = 0;
            double c1 = 1.0 / (1.0 - pow(0.9f, step)), c2 = 1.0 / (1.0 - pow(0.95f, step));
            for (size_t i = 0; i < n; i++) {
                double gi = (double)g[i] * scale;
                double m = 0.9f * (double)m0[i] + (1 - (double)0.9f) * gi;
                double v = 0.95f * (double)v0[i] + (1 - (double)0.95f) * gi * gi;
                double u = m * c1 / (sqrt(v * c2) + 1e-8f) + (decay[i] ? 0.1f * (double)p0[i] : 0);
                double r = p0[i] - (double)lr * u;
                e = fmax(e, fabs(p[i] - r)), mx = fmax(mx, fabs(r));
            }
            printf("  adamw: 1 thread vs float64 %.2e\n", e / mx);
            assert_true(e / mx <= 1e-6);
            p1 = p, m1 = mv, v1 = mv + n;
            continue;
        }
        same("adamw params", nt, p1, p, n);
        same("adamw m", nt, m1, mv, n);
        same("adamw v", nt, v1, mv + n, n);
        free(p), free(mv);
    }
    ra_threads_set(1);
    free(g), free(p0), free(m0), free(v0), free(p1), free(m1), free(decay);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_layers_bitwise),
        cmocka_unit_test(test_rownorm_reference),
        cmocka_unit_test(test_optim),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
