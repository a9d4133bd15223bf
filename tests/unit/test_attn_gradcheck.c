/* test_attn_gradcheck.c - finite-difference checks of attention gradients.
 *
 * (a) The float64 reference (tests/common/ref_attn.c): its backward against
 *     central differences of its own forward, loss = sum(O * W) with random W,
 *     for q, k and v, bidirectional / causal / segments / GQA (H=4, Hkv=2),
 *     and rows that see no key. Step h = 1e-5 in double: truncation error
 *     ~h^2 and cancellation ~1e-16/h keep the FD error near 1e-10, so the
 *     tolerance is 1e-6 relative (max |fd - g| / max |g|). A closed-form
 *     small case pins the forward itself.
 * (b) The float32 library kernels (attn.h): their backward against central
 *     differences of the float32 library forward (loss summed in double from
 *     the float O), step h = 1e-2 on inputs of size ~1. Tolerance 2e-2 on the
 *     gradient vector (||fd - g||_2 / ||g||_2): each forward carries float32
 *     rounding (~1e-7 relative per O entry, ~1e-6 absolute on the loss),
 *     which the difference quotient amplifies by 1/(2h) = 50, plus the O(h^2)
 *     truncation term (~1e-4 relative); 2e-2 leaves a wide margin for both
 *     while still catching any wrong term (those show up as O(1) errors).
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "ref_attn.h"
#include "ringattn/attn.h"
#include "ringattn/rng.h"

/* ---- small helpers ------------------------------------------------------- */

static double *rand_d(uint64_t seed, size_t n, double amp)
{
    double *x = ref_zalloc(n);
    for (size_t i = 0; i < n; i++) x[i] = amp * (double)ra_rand_uniform(seed, i);
    return x;
}

static float *rand_f(uint64_t seed, size_t n, float amp)
{
    float *x = malloc((n ? n : 1) * sizeof *x);
    assert_non_null(x);
    for (size_t i = 0; i < n; i++) x[i] = amp * ra_rand_uniform(seed, i);
    return x;
}

static double dot_d(const double *a, const double *b, size_t n)
{
    double s = 0.0;
    for (size_t i = 0; i < n; i++) s += a[i] * b[i];
    return s;
}

/* ---- (a) the reference against its own finite differences ---------------- */

static double ref_loss(const ref_attn_cfg *c, const double *q, const double *k, const double *v,
                       const double *w, double *o, double *lse)
{
    ref_attn_forward(c, q, k, v, o, lse);
    return dot_d(o, w, (size_t)c->B * c->H * c->L * c->D);
}

/* max |fd - g| / max |g| over one input array x of n entries */
static double fd_check_ref(const ref_attn_cfg *c, double *q, double *k, double *v, const double *w,
                           double *x, const double *g, size_t n, const char *name)
{
    const double h = 1e-5;
    size_t no = (size_t)c->B * c->H * c->L * c->D;
    double *o = ref_zalloc(no), *lse = ref_zalloc((size_t)c->B * c->H * c->L);
    double max_err = 0.0, max_g = ref_max_abs_d(g, n);
    for (size_t i = 0; i < n; i++) {
        double x0 = x[i];
        x[i] = x0 + h;
        double lp = ref_loss(c, q, k, v, w, o, lse);
        x[i] = x0 - h;
        double lm = ref_loss(c, q, k, v, w, o, lse);
        x[i] = x0;
        double fd = (lp - lm) / (2 * h);
        double e = fabs(fd - g[i]);
        if (!(e <= max_err)) max_err = e;
    }
    free(o);
    free(lse);
    double rel = max_err / (max_g > 1e-30 ? max_g : 1e-30);
    printf("  ref %-2s B=%d H=%d Hkv=%d L=%d D=%d causal=%d seg=%s: max|fd-g|=%.3e max|g|=%.3e "
           "rel=%.3e\n",
           name, c->B, c->H, c->Hkv, c->L, c->D, c->causal, c->seg ? "yes" : "no", max_err, max_g,
           rel);
    return rel;
}

static void ref_gradcheck_case(int B, int H, int Hkv, int L, int D, int causal, int use_seg,
                               uint64_t seed)
{
    size_t nq = (size_t)B * H * L * D, nk = (size_t)B * Hkv * L * D;
    double *q = rand_d(seed + 1, nq, 1.0), *k = rand_d(seed + 2, nk, 1.0);
    double *v = rand_d(seed + 3, nk, 1.0), *w = rand_d(seed + 4, nq, 1.0);
    int32_t *seg = NULL;
    if (use_seg) {
        /* packed sequences of uneven length, different per batch row */
        seg = malloc((size_t)B * L * sizeof *seg);
        assert_non_null(seg);
        for (int b = 0; b < B; b++)
            for (int i = 0; i < L; i++) seg[b * L + i] = (i < 3 + b) ? 0 : (i < L - 2 ? 1 : 2);
    }
    ref_attn_cfg c = {.B = B, .H = H, .Hkv = Hkv, .L = L, .D = D, .causal = causal,
                      .scale = 1.0 / sqrt((double)D), .seg = seg};
    double *dq = ref_zalloc(nq), *dk = ref_zalloc(nk), *dv = ref_zalloc(nk);
    ref_attn_backward(&c, q, k, v, w, dq, dk, dv);
    assert_true(fd_check_ref(&c, q, k, v, w, q, dq, nq, "dq") <= 1e-6);
    assert_true(fd_check_ref(&c, q, k, v, w, k, dk, nk, "dk") <= 1e-6);
    assert_true(fd_check_ref(&c, q, k, v, w, v, dv, nk, "dv") <= 1e-6);
    free(q), free(k), free(v), free(w), free(dq), free(dk), free(dv), free(seg);
}

static void test_ref_gradcheck_bidir(void **state)
{
    (void)state;
    ref_gradcheck_case(1, 1, 1, 9, 5, 0, 0, 100);
}

static void test_ref_gradcheck_causal(void **state)
{
    (void)state;
    ref_gradcheck_case(1, 2, 2, 11, 4, 1, 0, 200);
}

static void test_ref_gradcheck_gqa_seg_causal(void **state)
{
    (void)state;
    ref_gradcheck_case(2, 4, 2, 10, 4, 1, 1, 300);
}

static void test_ref_gradcheck_mqa_seg_bidir(void **state)
{
    (void)state;
    ref_gradcheck_case(2, 4, 1, 9, 3, 0, 1, 400);
}

/* Explicit rows (ref_head_*): causal with queries placed before some keys and
 * a segment with no keys, so some rows see nothing; those must have o = 0,
 * lse = -inf and zero gradients, and the FD check must still hold. */
static void test_ref_gradcheck_masked_rows(void **state)
{
    (void)state;
    enum { NQ = 7, NK = 8, D = 4 };
    int32_t qpos[NQ] = {0, 1, 5, 9, 12, 14, 20};
    int32_t qseg[NQ] = {1, 1, 1, 2, 7, 2, 1};   /* seg 7 has no key */
    int32_t kpos[NK] = {3, 4, 5, 8, 9, 13, 2, 19}; /* not sorted on purpose */
    int32_t kseg[NK] = {1, 1, 1, 2, 2, 2, 1, 1};
    double *q = rand_d(501, NQ * D, 1.0), *k = rand_d(502, NK * D, 1.0);
    double *v = rand_d(503, NK * D, 1.0), *w = rand_d(504, NQ * D, 1.0);
    double o[NQ * D], lse[NQ], o2[NQ * D], lse2[NQ];
    double dq[NQ * D] = {0}, dk[NK * D] = {0}, dv[NK * D] = {0};
    const double a = 0.7;
    ref_head_forward(NQ, qpos, qseg, q, NK, kpos, kseg, k, v, D, a, 1, o, lse);
    ref_head_backward(NQ, qpos, qseg, q, NK, kpos, kseg, k, v, D, a, 1, w, dq, dk, dv);
    /* rows 0 and 1 (positions 0, 1: every key of segment 1 is at position >= 2)
     * and row 4 (segment 7 has no key) see no key */
    int masked[NQ] = {1, 1, 0, 0, 1, 0, 0};
    for (int i = 0; i < NQ; i++) {
        if (masked[i]) {
            assert_true(isinf(lse[i]) && lse[i] < 0);
            for (int d = 0; d < D; d++) {
                assert_true(o[i * D + d] == 0.0);
                assert_true(dq[i * D + d] == 0.0);
            }
        } else {
            assert_true(isfinite(lse[i]));
        }
    }
    double *xs[3] = {q, k, v};
    double *gs[3] = {dq, dk, dv};
    size_t ns[3] = {NQ * D, NK * D, NK * D};
    const double h = 1e-5;
    for (int t = 0; t < 3; t++) {
        double max_err = 0.0, max_g = ref_max_abs_d(gs[t], ns[t]);
        for (size_t i = 0; i < ns[t]; i++) {
            double x0 = xs[t][i];
            xs[t][i] = x0 + h;
            ref_head_forward(NQ, qpos, qseg, q, NK, kpos, kseg, k, v, D, a, 1, o2, lse2);
            double lp = dot_d(o2, w, NQ * D);
            xs[t][i] = x0 - h;
            ref_head_forward(NQ, qpos, qseg, q, NK, kpos, kseg, k, v, D, a, 1, o2, lse2);
            double lm = dot_d(o2, w, NQ * D);
            xs[t][i] = x0;
            double e = fabs((lp - lm) / (2 * h) - gs[t][i]);
            if (!(e <= max_err)) max_err = e;
        }
        printf("  ref masked-rows grad %d: max|fd-g|=%.3e max|g|=%.3e\n", t, max_err, max_g);
        assert_true(max_g > 0.0);
        assert_true(max_err / max_g <= 1e-6);
    }
    free(q), free(k), free(v), free(w);
}

/* Closed form: D = 1, scale 1, q = 1, keys 0 and ln 2 give p = (1/3, 2/3),
 * lse = ln 3. Causal: query 0 sees key 0 only. Also checks the GQA mapping
 * (two query heads share kv head 0) and the segment mask. */
static void test_ref_forward_closed_form(void **state)
{
    (void)state;
    const double ln2 = log(2.0);
    double q[2 * 2] = {1, 1, 1, 1}; /* [H=2][L=2][D=1] */
    double k[2] = {0, ln2};         /* [Hkv=1][L=2][D=1] */
    double v[2] = {3, -6};
    double o[4], lse[4];
    ref_attn_cfg c = {.B = 1, .H = 2, .Hkv = 1, .L = 2, .D = 1, .causal = 0, .scale = 1.0};
    ref_attn_forward(&c, q, k, v, o, lse);
    for (int h = 0; h < 2; h++)
        for (int i = 0; i < 2; i++) {
            assert_true(fabs(o[h * 2 + i] - (3.0 / 3 - 2.0 * 6 / 3)) < 1e-14);
            assert_true(fabs(lse[h * 2 + i] - log(3.0)) < 1e-14);
        }
    c.causal = 1;
    ref_attn_forward(&c, q, k, v, o, lse);
    assert_true(fabs(o[0] - 3.0) < 1e-14 && fabs(lse[0]) < 1e-14);
    assert_true(fabs(o[1] - (-3.0)) < 1e-14 && fabs(lse[1] - log(3.0)) < 1e-14);
    int32_t seg[2] = {4, 5};
    c.causal = 0;
    c.seg = seg;
    ref_attn_forward(&c, q, k, v, o, lse);
    assert_true(fabs(o[0] - 3.0) < 1e-14 && fabs(lse[0]) < 1e-14);
    assert_true(fabs(o[1] + 6.0) < 1e-14 && fabs(lse[1] - ln2) < 1e-14);
    /* stability: logits of 1e5 must not overflow */
    double kb[2] = {1e5, 1e5 + ln2};
    c.seg = NULL;
    ref_attn_forward(&c, q, kb, v, o, lse);
    assert_true(fabs(o[0] - (-3.0)) < 1e-9 && fabs(lse[0] - (1e5 + log(3.0))) < 1e-9);
}

/* ---- (b) the float32 library kernels ------------------------------------ */

typedef struct {
    int nq, nk, D, causal;
    float scale;
    const int32_t *qpos, *qseg, *kpos, *kseg;
    int nsplit; /* key blocks: [0, s1), [s1, s2), [s2, nk) */
    int s1, s2;
} lib_case;

static float *alloc_scratch(int D)
{
    size_t n = ra_attn_scratch_floats(D);
    size_t bytes = ((n ? n : 1) * sizeof(float) + 63) / 64 * 64;
    float *s = aligned_alloc(64, bytes);
    assert_non_null(s);
    return s;
}

static void lib_blocks(const lib_case *c, int *starts, int *ends)
{
    starts[0] = 0, ends[0] = c->s1;
    starts[1] = c->s1, ends[1] = c->s2;
    starts[2] = c->s2, ends[2] = c->nk;
}

static void lib_forward(const lib_case *c, const float *q, const float *k, const float *v,
                        float *o, float *m, float *l, float *lse, float *scratch)
{
    ra_attn_opts opt = {.D = c->D, .scale = c->scale, .causal = c->causal};
    ra_rows qr = {.n = c->nq, .pos = c->qpos, .seg = c->qseg};
    int st[3], en[3];
    lib_blocks(c, st, en);
    ra_attn_fwd_init(c->nq, c->D, o, m, l);
    for (int b = 0; b < 3; b++) {
        if (en[b] <= st[b]) continue;
        ra_rows kr = {.n = en[b] - st[b], .pos = c->kpos + st[b],
                      .seg = c->kseg ? c->kseg + st[b] : NULL};
        ra_attn_fwd_block(&opt, &qr, q, &kr, k + (size_t)st[b] * c->D, v + (size_t)st[b] * c->D,
                          o, m, l, scratch, NULL);
    }
    ra_attn_fwd_finish(c->nq, c->D, o, m, l, lse);
}

static void lib_backward(const lib_case *c, const float *q, const float *k, const float *v,
                         const float *o, const float *lse, const float *dout, float *dq,
                         float *dk, float *dv, float *scratch)
{
    ra_attn_opts opt = {.D = c->D, .scale = c->scale, .causal = c->causal};
    ra_rows qr = {.n = c->nq, .pos = c->qpos, .seg = c->qseg};
    float *dl = malloc((size_t)c->nq * sizeof *dl);
    assert_non_null(dl);
    ra_attn_bwd_rowdot(c->nq, c->D, o, dout, dl);
    int st[3], en[3];
    lib_blocks(c, st, en);
    for (int b = 2; b >= 0; b--) { /* reverse order on purpose */
        if (en[b] <= st[b]) continue;
        ra_rows kr = {.n = en[b] - st[b], .pos = c->kpos + st[b],
                      .seg = c->kseg ? c->kseg + st[b] : NULL};
        size_t off = (size_t)st[b] * c->D;
        ra_attn_bwd_block(&opt, &qr, q, dout, lse, dl, &kr, k + off, v + off, dq, dk + off,
                          dv + off, scratch, NULL);
    }
    free(dl);
}

static void lib_gradcheck(const lib_case *c, uint64_t seed)
{
    const int D = c->D;
    size_t nqd = (size_t)c->nq * D, nkd = (size_t)c->nk * D;
    float *q = rand_f(seed + 1, nqd, 1.0f), *k = rand_f(seed + 2, nkd, 1.0f);
    float *v = rand_f(seed + 3, nkd, 1.0f), *w = rand_f(seed + 4, nqd, 1.0f);
    float *o = malloc(nqd * sizeof *o), *m = malloc(c->nq * sizeof *m);
    float *l = malloc(c->nq * sizeof *l), *lse = malloc(c->nq * sizeof *lse);
    float *dq = calloc(nqd, sizeof *dq), *dk = calloc(nkd, sizeof *dk);
    float *dv = calloc(nkd, sizeof *dv);
    assert_true(o && m && l && lse && dq && dk && dv);
    float *scratch = alloc_scratch(D);

    lib_forward(c, q, k, v, o, m, l, lse, scratch);
    lib_backward(c, q, k, v, o, lse, w, dq, dk, dv, scratch);

    float *xs[3] = {q, k, v};
    float *gs[3] = {dq, dk, dv};
    size_t ns[3] = {nqd, nkd, nkd};
    const char *names[3] = {"dq", "dk", "dv"};
    const float h = 1e-2f;
    for (int t = 0; t < 3; t++) {
        double num = 0.0, den = 0.0;
        for (size_t i = 0; i < ns[t]; i++) {
            float x0 = xs[t][i];
            xs[t][i] = x0 + h;
            double hp = (double)xs[t][i] - (double)x0; /* the step actually taken */
            lib_forward(c, q, k, v, o, m, l, lse, scratch);
            double lp = 0.0;
            for (size_t j = 0; j < nqd; j++) lp += (double)o[j] * (double)w[j];
            xs[t][i] = x0 - h;
            double hm = (double)x0 - (double)xs[t][i];
            lib_forward(c, q, k, v, o, m, l, lse, scratch);
            double lm = 0.0;
            for (size_t j = 0; j < nqd; j++) lm += (double)o[j] * (double)w[j];
            xs[t][i] = x0;
            double fd = (lp - lm) / (hp + hm);
            double e = fd - (double)gs[t][i];
            num += e * e;
            den += (double)gs[t][i] * gs[t][i];
        }
        double rel = sqrt(num) / (den > 0 ? sqrt(den) : 1e-30);
        printf("  lib %s nq=%d nk=%d D=%d causal=%d seg=%s: ||fd-g||/||g|| = %.3e (||g||=%.3e)\n",
               names[t], c->nq, c->nk, D, c->causal, c->qseg ? "yes" : "no", rel, sqrt(den));
        assert_true(den > 0.0);
        assert_true(rel <= 2e-2);
    }
    assert_int_equal(ref_count_nonfinite_f(dq, nqd), 0);
    assert_int_equal(ref_count_nonfinite_f(dk, nkd), 0);
    assert_int_equal(ref_count_nonfinite_f(dv, nkd), 0);
    free(q), free(k), free(v), free(w), free(o), free(m), free(l), free(lse);
    free(dq), free(dk), free(dv), free(scratch);
}

static void test_lib_gradcheck_bidir(void **state)
{
    (void)state;
    enum { N = 13 };
    int32_t pos[N];
    for (int i = 0; i < N; i++) pos[i] = i;
    lib_case c = {.nq = N, .nk = N, .D = 8, .causal = 0, .scale = 1.0f / sqrtf(8.0f),
                  .qpos = pos, .kpos = pos, .s1 = 4, .s2 = 9};
    lib_gradcheck(&c, 1000);
}

static void test_lib_gradcheck_causal_seg_masked(void **state)
{
    (void)state;
    /* queries at global positions 10..21, keys at 0..5 and 14..23 (as if a
     * remote rank held them); segments make query row 0 (pos 10, seg 3) and
     * the row in seg 9 see nothing. */
    enum { NQ = 12, NK = 16 };
    int32_t qpos[NQ], qseg[NQ], kpos[NK], kseg[NK];
    for (int i = 0; i < NQ; i++) {
        qpos[i] = 10 + i;
        qseg[i] = (i == 0) ? 3 : (i == 5 ? 9 : (i < 7 ? 1 : 2));
    }
    for (int j = 0; j < NK; j++) {
        kpos[j] = j < 6 ? j : 8 + j;
        kseg[j] = (kpos[j] < 16) ? 1 : 2;
    }
    lib_case c = {.nq = NQ, .nk = NK, .D = 8, .causal = 1, .scale = 0.5f, .qpos = qpos,
                  .qseg = qseg, .kpos = kpos, .kseg = kseg, .s1 = 5, .s2 = 11};
    lib_gradcheck(&c, 2000);
}

static void test_lib_gradcheck_single_query(void **state)
{
    (void)state;
    int32_t qpos[1] = {6}, kpos[7];
    for (int j = 0; j < 7; j++) kpos[j] = j;
    lib_case c = {.nq = 1, .nk = 7, .D = 16, .causal = 1, .scale = 0.25f, .qpos = qpos,
                  .kpos = kpos, .s1 = 1, .s2 = 3};
    lib_gradcheck(&c, 3000);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ref_forward_closed_form),
        cmocka_unit_test(test_ref_gradcheck_bidir),
        cmocka_unit_test(test_ref_gradcheck_causal),
        cmocka_unit_test(test_ref_gradcheck_gqa_seg_causal),
        cmocka_unit_test(test_ref_gradcheck_mqa_seg_bidir),
        cmocka_unit_test(test_ref_gradcheck_masked_rows),
        cmocka_unit_test(test_lib_gradcheck_bidir),
        cmocka_unit_test(test_lib_gradcheck_causal_seg_masked),
        cmocka_unit_test(test_lib_gradcheck_single_query),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
