/* test_tile_gemm.c - the attention tile products (src/kernels/tile_gemm.h)
 * against naive float64 sums.
 *
 * For every head dimension the kernels take (D = 16 .. 256) and row and key
 * counts around the register block (6 rows) and the panel (64 keys),
 * including 1 and counts that are not multiples of 16:
 *   qkt  normalised error max|S - Sref| / max|Sref|          <= D * 2^-24
 *        (a sum of D float32 products with FMA: one rounding per term)
 *   pv   the same for acc = acc0 + P V, acc0 prefilled       <= 64 * 2^-24
 *        (the kernel sums at most 64 products before adding them to acc)
 *   ptv  the same for acc = acc0 + P^T V                       <= 64 * 2^-24
 *   pack_kt  K^T exactly (a copy), zero in the padding columns
 * and no write outside the rows, columns and strides asked for (guard
 * values around S and acc). Skipped on a build with neither AVX-512 nor
 * AVX2 + FMA, where attn.c uses OpenBLAS instead. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "../../src/kernels/tile_gemm.h"
#include "ringattn/rng.h"

#if RA_TILE_GEMM

static const float GUARD = 12345.0f;

static float *rand_f(uint64_t seed, size_t n)
{
    float *x = malloc(sizeof(float) * (n ? n : 1));
    assert_non_null(x);
    for (size_t i = 0; i < n; i++) x[i] = 2.0f * ra_rand_uniform(seed, i) - 1.0f;
    return x;
}

static float *filled(size_t n, float v)
{
    float *x = malloc(sizeof(float) * n);
    assert_non_null(x);
    for (size_t i = 0; i < n; i++) x[i] = v;
    return x;
}

static const int Ds[] = { 16, 32, 48, 64, 80, 128, 256 };
static const int Ns[] = { 1, 15, 16, 17, 63, 64, 65, 100, 512 };
static const int Ms[] = { 1, 5, 6, 7, 13, 64 };
#define COUNT(a) (int)(sizeof(a) / sizeof((a)[0]))

/* kt as ra_tile_pack_kt promises: panel p at kt + 64 p D, [D][width] */
static float kt_at(const float *kt, int n, int D, int j, int d)
{
    const int w = (n + 15) / 16 * 16, p0 = j / 64 * 64, pw = w - p0 < 64 ? w - p0 : 64;
    return kt[(size_t)p0 * D + (size_t)d * pw + (j - p0)];
}

static void test_pack_kt(void **state)
{
    (void)state;
    for (int a = 0; a < COUNT(Ds); a++)
        for (int b = 0; b < COUNT(Ns); b++) {
            const int D = Ds[a], n = Ns[b];
            const long nkt = ra_tile_kt_floats(n, D);
            float *k = rand_f(10 + a * 16 + b, (size_t)n * D), *kt = filled((size_t)nkt + 64, GUARD);
            ra_tile_pack_kt(k, n, D, kt);
            const int w = (n + 15) / 16 * 16;
            for (int j = 0; j < w; j++)
                for (int d = 0; d < D; d++)
                    assert_true(kt_at(kt, n, D, j, d) == (j < n ? k[(size_t)j * D + d] : 0.0f));
            for (int g = 0; g < 64; g++) assert_true(kt[nkt + g] == GUARD);
            free(k), free(kt);
        }
}

static void test_qkt(void **state)
{
    (void)state;
    double worst = 0;
    for (int a = 0; a < COUNT(Ds); a++)
        for (int b = 0; b < COUNT(Ns); b++)
            for (int c = 0; c < COUNT(Ms); c++) {
                const int D = Ds[a], n = Ns[b], m = Ms[c];
                const int w = (n + 15) / 16 * 16;
                /* all columns, and a prefix as the causal row groups ask */
                const int cols[2] = { w, w > 16 ? w - 16 : w };
                for (int t = 0; t < 2; t++) {
                    const int ncols = cols[t], lds = ncols + 16; /* a gap past each row */
                    float *q = rand_f(100 + a, (size_t)m * D), *k = rand_f(200 + b, (size_t)n * D);
                    float *kt = filled((size_t)ra_tile_kt_floats(n, D), GUARD);
                    float *s = filled((size_t)m * lds + 64, GUARD);
                    const float scale = 0.125f;
                    ra_tile_pack_kt(k, n, D, kt);
                    /* the row maxima by lane, on every other shape (both ways covered) */
                    float *lanes = (a + b + c) % 2 ? filled((size_t)m * 16 + 64, GUARD) : NULL;
                    ra_tile_qkt(q, m, D, kt, n, ncols, scale, s, lds, lanes);
                    if (lanes) { /* exactly the max of what the row holds in that lane */
                        for (int r = 0; r < m; r++)
                            for (int ln = 0; ln < 16; ln++) {
                                float want = -INFINITY;
                                for (int j = ln; j < ncols; j += 16) want = fmaxf(want, s[(size_t)r * lds + j]);
                                if (lanes[(size_t)r * 16 + ln] != want)
                                    fail_msg("qkt D=%d n=%d m=%d ncols=%d: row %d lane %d max %g, the row says %g", D,
                                             n, m, ncols, r, ln, lanes[(size_t)r * 16 + ln], want);
                            }
                        for (int g = 0; g < 64; g++) assert_true(lanes[(size_t)m * 16 + g] == GUARD);
                        free(lanes);
                    }
                    double err = 0, ref = 0;
                    for (int r = 0; r < m; r++)
                        for (int j = 0; j < lds; j++) {
                            const float got = s[(size_t)r * lds + j];
                            if (j >= ncols) { /* never written */
                                assert_true(got == GUARD);
                                continue;
                            }
                            double x = 0;
                            if (j < n)
                                for (int d = 0; d < D; d++)
                                    x += (double)q[(size_t)r * D + d] * k[(size_t)j * D + d];
                            x *= scale;
                            err = fmax(err, fabs(got - x));
                            ref = fmax(ref, fabs(x));
                        }
                    for (int g = 0; g < 64; g++) assert_true(s[(size_t)m * lds + g] == GUARD);
                    const double e = err / fmax(ref, 1e-30), tol = D * 0x1p-24;
                    if (e > tol)
                        fail_msg("qkt D=%d n=%d m=%d ncols=%d: normalised error %.3e > %.3e", D, n, m,
                                 ncols, e, tol);
                    worst = fmax(worst, e / tol);
                    free(q), free(k), free(kt), free(s);
                }
            }
    printf("  qkt: worst normalised error %.2f of its tolerance over %d shapes\n", worst,
           2 * COUNT(Ds) * COUNT(Ns) * COUNT(Ms));
}

/* acc = acc0 + A V with A(r, j) = p[r][j] (pv) or p[j][r] (ptv) */
static void pv_case(int ta)
{
    const char *name = ta ? "ptv" : "pv";
    double worst = 0;
    for (int a = 0; a < COUNT(Ds); a++)
        for (int b = 0; b < COUNT(Ns); b++)
            for (int c = 0; c < COUNT(Ms); c++) {
                const int D = Ds[a], n = Ns[b], m = Ms[c];
                /* a row stride that is no multiple of 16, past the columns read */
                const int ldp = (ta ? m : n) + 5, prow = ta ? n : m;
                float *p = rand_f(300 + b + 50 * ta, (size_t)prow * ldp), *v = rand_f(400 + a, (size_t)n * D);
                float *acc0 = rand_f(500 + c, (size_t)m * D);
                float *acc = malloc(sizeof(float) * ((size_t)m * D + 64));
                assert_non_null(acc);
                memcpy(acc, acc0, sizeof(float) * (size_t)m * D);
                for (int g = 0; g < 64; g++) acc[(size_t)m * D + g] = GUARD;
                if (ta)
                    ra_tile_ptv(p, m, n, ldp, v, D, acc);
                else
                    ra_tile_pv(p, m, n, ldp, v, D, acc);
                double err = 0, ref = 0;
                for (int r = 0; r < m; r++)
                    for (int d = 0; d < D; d++) {
                        double x = acc0[(size_t)r * D + d];
                        for (int j = 0; j < n; j++) {
                            const float pa = ta ? p[(size_t)j * ldp + r] : p[(size_t)r * ldp + j];
                            x += (double)pa * v[(size_t)j * D + d];
                        }
                        err = fmax(err, fabs(acc[(size_t)r * D + d] - x));
                        ref = fmax(ref, fabs(x));
                    }
                for (int g = 0; g < 64; g++) assert_true(acc[(size_t)m * D + g] == GUARD);
                const double e = err / fmax(ref, 1e-30);
                if (e > 64 * 0x1p-24)
                    fail_msg("%s D=%d n=%d m=%d: normalised error %.3e > 64 * 2^-24", name, D, n, m, e);
                worst = fmax(worst, e);
                free(p), free(v), free(acc0), free(acc);
            }
    printf("  %s: worst normalised error %.3e over %d shapes (tolerance 64 * 2^-24 = 3.8e-6)\n", name,
           worst, COUNT(Ds) * COUNT(Ns) * COUNT(Ms));
}

static void test_pv(void **state)
{
    (void)state;
    pv_case(0);
}

static void test_ptv(void **state)
{
    (void)state;
    pv_case(1);
}

/* The kernels' domain: D a positive multiple of 16 up to the maximum. */
static void test_domain(void **state)
{
    (void)state;
    assert_true(ra_tile_gemm_ok(16) && ra_tile_gemm_ok(64) && ra_tile_gemm_ok(RA_TILE_GEMM_MAX_D));
    assert_false(ra_tile_gemm_ok(0) || ra_tile_gemm_ok(8) || ra_tile_gemm_ok(72));
    assert_false(ra_tile_gemm_ok(RA_TILE_GEMM_MAX_D + 16) || ra_tile_gemm_ok(-16));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pack_kt),
        cmocka_unit_test(test_qkt),
        cmocka_unit_test(test_pv),
        cmocka_unit_test(test_ptv),
        cmocka_unit_test(test_domain),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

#else

static void test_no_avx512(void **state)
{
    (void)state;
    assert_false(ra_tile_gemm_ok(64)); /* attn.c takes the OpenBLAS path */
    skip();
}

int main(void)
{
    const struct CMUnitTest tests[] = { cmocka_unit_test(test_no_avx512) };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

#endif
