/* test_ref_combiner.c - sanity tests of the float64 Combiner reference
 * (tests/common/ref_combiner.c) itself, before it judges the library.
 *
 * Special cases where a Combiner head must reduce to full attention
 * (tests/common/ref_attn.c, an independent implementation):
 *   (a) combiner-fixed with span s >= L: one span, no groups.
 *   (b) combiner-fixed with span 1: every group is one token j whose summary
 *       is the token itself (qbar = q_j, kbar = k_j, softmax over one key:
 *       vbar = v_j), so the joint softmax is exactly the attention softmax.
 *       Causal and bidirectional.
 *   (c) combiner-logsparse: the groups of every i tile [0, i) with aligned
 *       power-of-two blocks (also asserted inside the reference); L = 1 is
 *       attention to itself, L = 2 is full causal attention (the only group
 *       of i = 1 is the single token 0).
 *   (d) combiner-axial with m >= L (one row, no groups) and with m = 1 (each
 *       group a one-token row: khat = k_t, vhat = v_t).
 *   (e) ref_comb_backward_fd against ref_attn_backward (analytic) in the cases
 *       above, within 1e-6 relative (max |fd - g| / max |g|); no kinks.
 *   (f) hand-computed tiny cases (L = 4, D = 1): fixed span 2 causal (and
 *       logsparse on the same numbers), axial m = 2 causal; derivations in the
 *       comments.
 * Plus: causality (future inputs never change past rows), GQA (H = 4,
 * Hkv = 2 equals each query head run alone with its kv head), the heads are
 * not trivially full attention in general, and ref_comb_backward_fd_at on a
 * subset of positions equals the full FD there and is zero elsewhere, and
 * the FD kink counter reports an arg-max switch inside the step.
 *
 *   gcc -std=c11 -D_GNU_SOURCE -O2 -Wall -Wextra -Werror -Iinclude -Itests/common \
 *       tests/common/ref_attn.c tests/common/ref_combiner.c \
 *       tests/unit/test_ref_combiner.c -lcmocka -lm -o /tmp/trc && /tmp/trc
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
#include "ref_combiner.h"

/* ---- helpers (no library code: this test links only the references) ------- */

/* splitmix64 of (seed, i) -> uniform in [-1, 1) */
static double urand(uint64_t seed, uint64_t i)
{
    uint64_t z = seed * 0x9E3779B97F4A7C15ull + i + 0x632BE59BD9B4E019ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    return (double)(z >> 11) * 0x1.0p-52 - 1.0;
}

static double *rand_d(uint64_t seed, size_t n, double amp)
{
    double *x = ref_zalloc(n);
    for (size_t i = 0; i < n; i++) x[i] = amp * urand(seed, i);
    return x;
}

typedef struct {
    int B, H, Hkv, L, D;
    size_t nq, nk, nl;
    double *q, *k, *v, *w; /* w: dout */
} inputs;

static inputs make_inputs(int B, int H, int Hkv, int L, int D, uint64_t seed)
{
    inputs in = {B, H, Hkv, L, D, (size_t)B * H * L * D, (size_t)B * Hkv * L * D,
                 (size_t)B * H * L, NULL, NULL, NULL, NULL};
    in.q = rand_d(seed + 1, in.nq, 2.0);
    in.k = rand_d(seed + 2, in.nk, 2.0);
    in.v = rand_d(seed + 3, in.nk, 1.0);
    in.w = rand_d(seed + 4, in.nq, 1.0);
    return in;
}

static void free_inputs(inputs *in) { free(in->q), free(in->k), free(in->v), free(in->w); }

static ref_comb_cfg comb_cfg(const inputs *in, int causal, ref_comb_kind kind, int span, int row)
{
    ref_comb_cfg c = {.B = in->B, .H = in->H, .Hkv = in->Hkv, .L = in->L, .D = in->D,
                      .causal = causal, .scale = 1.0 / sqrt((double)in->D), .kind = kind,
                      .span = span, .row = row};
    return c;
}

static double max_abs_diff(const double *x, const double *y, size_t n)
{
    double m = 0.0;
    for (size_t i = 0; i < n; i++) {
        double e = fabs(x[i] - y[i]);
        if (!(e <= m)) m = e; /* NaN propagates */
    }
    return m;
}

/* forward of the combiner == full attention (o within 1e-12 of max|o|, lse within 1e-12) */
static void expect_equals_full(const inputs *in, const ref_comb_cfg *c, const char *what)
{
    ref_attn_cfg ac = {.B = in->B, .H = in->H, .Hkv = in->Hkv, .L = in->L, .D = in->D,
                       .causal = c->causal, .scale = c->scale, .seg = NULL};
    double *o = ref_zalloc(in->nq), *l = ref_zalloc(in->nl);
    double *fo = ref_zalloc(in->nq), *fl = ref_zalloc(in->nl);
    ref_comb_forward(c, in->q, in->k, in->v, o, l);
    ref_attn_forward(&ac, in->q, in->k, in->v, fo, fl);
    double eo = max_abs_diff(o, fo, in->nq) / ref_max_abs_d(fo, in->nq);
    double el = max_abs_diff(l, fl, in->nl);
    printf("  %-40s L=%d H=%d Hkv=%d causal=%d: |o-full|/max %.2e, |lse-full| %.2e\n", what,
           in->L, in->H, in->Hkv, c->causal, eo, el);
    assert_true(eo <= 1e-12);
    assert_true(el <= 1e-12);
    free(o), free(l), free(fo), free(fl);
}

/* (e): FD gradients of the combiner == analytic gradients of full attention */
static void expect_fd_equals_full_grad(const inputs *in, const ref_comb_cfg *c, const char *what)
{
    ref_attn_cfg ac = {.B = in->B, .H = in->H, .Hkv = in->Hkv, .L = in->L, .D = in->D,
                       .causal = c->causal, .scale = c->scale, .seg = NULL};
    double *dq = ref_zalloc(in->nq), *dk = ref_zalloc(in->nk), *dv = ref_zalloc(in->nk);
    double *gq = ref_zalloc(in->nq), *gk = ref_zalloc(in->nk), *gv = ref_zalloc(in->nk);
    int32_t *pos = malloc((size_t)in->L * sizeof *pos);
    assert_non_null(pos);
    for (int i = 0; i < in->L; i++) pos[i] = i;
    int kinks = ref_comb_backward_fd_at(c, in->q, in->k, in->v, in->w, in->L, pos, dq, dk, dv);
    ref_attn_backward(&ac, in->q, in->k, in->v, in->w, gq, gk, gv);
    double eq = max_abs_diff(dq, gq, in->nq) / ref_max_abs_d(gq, in->nq);
    double ek = max_abs_diff(dk, gk, in->nk) / ref_max_abs_d(gk, in->nk);
    double ev = max_abs_diff(dv, gv, in->nk) / ref_max_abs_d(gv, in->nk);
    printf("  %-40s L=%d H=%d Hkv=%d causal=%d: fd vs analytic dq %.2e dk %.2e dv %.2e, "
           "kinks %d\n",
           what, in->L, in->H, in->Hkv, c->causal, eq, ek, ev, kinks);
    assert_int_equal(kinks, 0);
    assert_true(eq <= 1e-6);
    assert_true(ek <= 1e-6);
    assert_true(ev <= 1e-6);
    /* the plain entry point gives the same numbers */
    double *dq2 = ref_zalloc(in->nq), *dk2 = ref_zalloc(in->nk), *dv2 = ref_zalloc(in->nk);
    ref_comb_backward_fd(c, in->q, in->k, in->v, in->w, dq2, dk2, dv2);
    assert_true(max_abs_diff(dq, dq2, in->nq) == 0.0);
    assert_true(max_abs_diff(dk, dk2, in->nk) == 0.0);
    assert_true(max_abs_diff(dv, dv2, in->nk) == 0.0);
    free(dq), free(dk), free(dv), free(gq), free(gk), free(gv), free(dq2), free(dk2), free(dv2);
    free(pos);
}

/* ---- (a) fixed, span >= L ------------------------------------------------- */

static void test_fixed_span_ge_L_is_full(void **state)
{
    (void)state;
    inputs in = make_inputs(2, 4, 2, 11, 5, 100);
    for (int causal = 0; causal <= 1; causal++) {
        ref_comb_cfg c = comb_cfg(&in, causal, REF_COMB_FIXED, in.L, 0);
        expect_equals_full(&in, &c, "(a) fixed span = L");
        c.span = in.L + 6;
        expect_equals_full(&in, &c, "(a) fixed span = L + 6");
    }
    free_inputs(&in);
}

/* ---- (b) fixed, span 1 -------------------------------------------------------- */

static void test_fixed_span1_is_full(void **state)
{
    (void)state;
    inputs in = make_inputs(1, 4, 2, 13, 4, 200);
    for (int causal = 1; causal >= 0; causal--) {
        ref_comb_cfg c = comb_cfg(&in, causal, REF_COMB_FIXED, 1, 0);
        expect_equals_full(&in, &c, "(b) fixed span 1");
    }
    /* and the structure is what (b) says: direct {i}, one single-token group per j */
    ref_comb_cfg c = comb_cfg(&in, 1, REF_COMB_FIXED, 1, 0);
    int direct[13], ng;
    ref_comb_group g[13];
    for (int i = 0; i < in.L; i++) {
        int nd = ref_comb_structure(&c, i, direct, g, &ng);
        assert_int_equal(nd, 1);
        assert_int_equal(direct[0], i);
        assert_int_equal(ng, i);
        for (int x = 0; x < ng; x++) {
            assert_int_equal(g[x].lo, x);
            assert_int_equal(g[x].hi, x + 1);
            assert_true(g[x].t < 0);
        }
    }
    free_inputs(&in);
}

/* ---- (c) logsparse ---------------------------------------------------------- */

static void test_logsparse_tiling(void **state)
{
    (void)state;
    enum { LMAX = 130 };
    int direct[LMAX], ng;
    ref_comb_group g[LMAX];
    for (int L = 1; L <= LMAX; L += (L < 20 ? 1 : 37)) {
        ref_comb_cfg c = {.B = 1, .H = 1, .Hkv = 1, .L = L, .D = 1, .causal = 1, .scale = 1.0,
                          .kind = REF_COMB_LOGSPARSE};
        for (int i = 0; i < L; i++) {
            int nd = ref_comb_structure(&c, i, direct, g, &ng); /* asserts the tiling */
            assert_int_equal(nd, 1);
            assert_int_equal(direct[0], i);
            int bits = 0;
            for (int b = i; b; b >>= 1) bits += b & 1;
            assert_int_equal(ng, bits); /* one group per set bit */
            /* groups by increasing level: descending, adjacent, aligned blocks of
             * 2^l that end where the previous one starts and finish at 0 */
            int end = i, prev_size = 0;
            for (int x = 0; x < ng; x++) {
                int size = g[x].hi - g[x].lo;
                assert_true(size > prev_size && (size & (size - 1)) == 0);
                assert_int_equal(g[x].lo % size, 0);
                assert_int_equal(g[x].hi, end);
                assert_true(g[x].t < 0);
                end = g[x].lo;
                prev_size = size;
            }
            assert_int_equal(end, 0);
        }
    }
    printf("  (c) logsparse groups tile [0, i) for every i, L = 1..%d\n", LMAX);
}

static void test_logsparse_small_is_full(void **state)
{
    (void)state;
    for (int L = 1; L <= 2; L++) {
        inputs in = make_inputs(1, 2, 1, L, 3, 300 + L);
        ref_comb_cfg c = comb_cfg(&in, 1, REF_COMB_LOGSPARSE, 0, 0);
        expect_equals_full(&in, &c, L == 1 ? "(c) logsparse L = 1" : "(c) logsparse L = 2");
        if (L == 1) { /* attention to itself: o = v_0, lse = a q_0.k_0 */
            double o[6], l[2];
            ref_comb_forward(&c, in.q, in.k, in.v, o, l);
            for (int h = 0; h < 2; h++) {
                double s = 0.0;
                for (int d = 0; d < 3; d++) s += in.q[h * 3 + d] * in.k[d];
                assert_true(fabs(l[h] - c.scale * s) <= 1e-15);
                for (int d = 0; d < 3; d++) assert_true(o[h * 3 + d] == in.v[d]);
            }
        }
        free_inputs(&in);
    }
}

/* ---- (d) axial ------------------------------------------------------------ */

static void test_axial_one_row_is_full(void **state)
{
    (void)state;
    inputs in = make_inputs(2, 2, 2, 10, 4, 400);
    for (int causal = 0; causal <= 1; causal++) {
        ref_comb_cfg c = comb_cfg(&in, causal, REF_COMB_AXIAL, 0, in.L);
        expect_equals_full(&in, &c, "(d) axial m = L");
        c.row = in.L + 3;
        expect_equals_full(&in, &c, "(d) axial m = L + 3");
        c.row = 1;
        expect_equals_full(&in, &c, "(d) axial m = 1");
    }
    free_inputs(&in);
}

/* ---- (e) FD against analytic full-attention gradients --------------------- */

static void test_fd_vs_full_attention(void **state)
{
    (void)state;
    inputs in = make_inputs(1, 4, 2, 9, 3, 500);
    for (int causal = 0; causal <= 1; causal++) {
        ref_comb_cfg c = comb_cfg(&in, causal, REF_COMB_FIXED, in.L + 1, 0);
        expect_fd_equals_full_grad(&in, &c, "(e) fixed span > L");
        c.span = 1; /* the max-pooling path with one-token groups */
        expect_fd_equals_full_grad(&in, &c, "(e) fixed span 1");
        c = comb_cfg(&in, causal, REF_COMB_AXIAL, 0, 1); /* the row-summary path */
        expect_fd_equals_full_grad(&in, &c, "(e) axial m = 1");
    }
    free_inputs(&in);
}

/* ---- (f) hand-computed cases ---------------------------------------------- */

/* combiner-fixed, L = 4, D = 1, span 2, causal, scale a = 1:
 *   q = [1/2, -1, 1, 2], k = [ln2, 0, 0, ln2], v = [3, 6, 0, 12]; spans {0,1}, {2,3}.
 *   i = 0: direct {0}:      o = v0 = 3, lse = q0 k0 = ln2 / 2.
 *   i = 1: direct {0, 1}:   logits -ln2, 0 -> weights 1/2, 1 (sum 3/2):
 *                           o = (3/2 + 6) / (3/2) = 5, lse = ln(3/2).
 *   summary of span 0: qbar = max(1/2, -1) = 1/2, kbar = max(ln2, 0) = ln2,
 *     vbar = softmax(qbar k0, qbar k1) . (3, 6): weights sqrt2, 1:
 *     vbar = (3 sqrt2 + 6) / (sqrt2 + 1) = 3 sqrt2 (sqrt2 + 1) / (sqrt2 + 1) = 3 sqrt2.
 *   i = 2: direct {2}: logit q2 k2 = 0 (weight 1); group: q2 kbar = ln2 (weight 2):
 *                           o = (0 + 2 * 3 sqrt2) / 3 = 2 sqrt2, lse = ln3.
 *   i = 3: direct {2, 3}: logits 0, 2 ln2 (weights 1, 4); group 2 ln2 (weight 4):
 *                           o = (0 + 4*12 + 4 * 3 sqrt2) / 9 = (16 + 4 sqrt2) / 3,
 *                           lse = ln9.
 * combiner-logsparse on the same numbers gives the same result: i = 1 has
 *   direct {1} and the group [0, 1) = token 0 (full attention over {0, 1});
 *   i = 2 has direct {2} and the group [0, 2) (the span-0 summary above);
 *   i = 3 has direct {3}, the group [2, 3) (token 2: logit 0, value 0) and
 *   [0, 2): logits 2 ln2, 0, 2 ln2 - the same three terms as fixed i = 3.
 *
 * combiner-axial, L = 4, D = 1, m = 2, causal, a = 1; rows {0,1}, {2,3}:
 *   q = [0, ln3, 2 ln2, 4 ln2 / 3], k = [0, 1, 0, 3/2], v = [4, 8, 2, 6].
 *   i = 0: o = 4, lse = 0.
 *   i = 1: logits q1 k0 = 0, q1 k1 = ln3 -> (1/4, 3/4): o = (4 + 24)/4 = 7, lse = ln4.
 *   row summaries of row 0: t = 0 (q0 = 0): rho = (1/2, 1/2),
 *     khat_0 = 1/2, vhat_0 = 6; t = 1 (q1 = ln3): rho = (1/4, 3/4),
 *     khat_1 = 3/4, vhat_1 = (4 + 24)/4 = 7.
 *   i = 2 = (1, 0): direct {2}: q2 k2 = 0 (1); group khat_0: q2/2 = ln2 (2):
 *     o = (2 + 2*6)/3 = 14/3, lse = ln3.
 *   i = 3 = (1, 1): direct {2, 3}: 0 (1), q3 k3 = 2 ln2 (4); group khat_1:
 *     (3/4) q3 = ln2 (2): o = (2 + 4*6 + 2*7)/7 = 40/7, lse = ln7.
 */
static void test_hand_cases(void **state)
{
    (void)state;
    const double ln2 = log(2.0), ln3 = log(3.0), r2 = sqrt(2.0);
    {
        double q[4] = {0.5, -1.0, 1.0, 2.0}, k[4] = {ln2, 0.0, 0.0, ln2};
        double v[4] = {3.0, 6.0, 0.0, 12.0}, o[4], l[4];
        const double eo[4] = {3.0, 5.0, 2.0 * r2, (16.0 + 4.0 * r2) / 3.0};
        const double el[4] = {ln2 / 2.0, log(1.5), ln3, log(9.0)};
        ref_comb_cfg c = {.B = 1, .H = 1, .Hkv = 1, .L = 4, .D = 1, .causal = 1, .scale = 1.0,
                          .kind = REF_COMB_FIXED, .span = 2};
        for (int kind = 0; kind < 2; kind++) {
            c.kind = kind ? REF_COMB_LOGSPARSE : REF_COMB_FIXED;
            ref_comb_forward(&c, q, k, v, o, l);
            for (int i = 0; i < 4; i++) {
                printf("  (f) %s i=%d: o %.15g (hand %.15g), lse %.15g (hand %.15g)\n",
                       kind ? "logsparse" : "fixed s=2", i, o[i], eo[i], l[i], el[i]);
                assert_true(fabs(o[i] - eo[i]) <= 1e-13);
                assert_true(fabs(l[i] - el[i]) <= 1e-13);
            }
        }
    }
    {
        double q[4] = {0.0, ln3, 2.0 * ln2, 4.0 * ln2 / 3.0}, k[4] = {0.0, 1.0, 0.0, 1.5};
        double v[4] = {4.0, 8.0, 2.0, 6.0}, o[4], l[4];
        const double eo[4] = {4.0, 7.0, 14.0 / 3.0, 40.0 / 7.0};
        const double el[4] = {0.0, log(4.0), ln3, log(7.0)};
        ref_comb_cfg c = {.B = 1, .H = 1, .Hkv = 1, .L = 4, .D = 1, .causal = 1, .scale = 1.0,
                          .kind = REF_COMB_AXIAL, .row = 2};
        ref_comb_forward(&c, q, k, v, o, l);
        for (int i = 0; i < 4; i++) {
            printf("  (f) axial m=2 i=%d: o %.15g (hand %.15g), lse %.15g (hand %.15g)\n", i,
                   o[i], eo[i], l[i], el[i]);
            assert_true(fabs(o[i] - eo[i]) <= 1e-13);
            assert_true(fabs(l[i] - el[i]) <= 1e-13);
        }
    }
}

/* ---- extras --------------------------------------------------------------- */

/* Causal heads: changing every input at positions > p leaves rows <= p
 * bitwise unchanged. */
static void test_causality(void **state)
{
    (void)state;
    inputs in = make_inputs(1, 2, 1, 23, 4, 600);
    const ref_comb_kind kinds[3] = {REF_COMB_FIXED, REF_COMB_AXIAL, REF_COMB_LOGSPARSE};
    for (int t = 0; t < 3; t++) {
        ref_comb_cfg c = comb_cfg(&in, 1, kinds[t], 5, 4);
        for (int p = 0; p < in.L; p += 6) {
            double *q2 = ref_zalloc(in.nq), *k2 = ref_zalloc(in.nk), *v2 = ref_zalloc(in.nk);
            memcpy(q2, in.q, in.nq * sizeof(double));
            memcpy(k2, in.k, in.nk * sizeof(double));
            memcpy(v2, in.v, in.nk * sizeof(double));
            for (size_t x = 0; x < in.nq; x++)
                if ((int)(x / in.D % in.L) > p) q2[x] = 3.0 * urand(601, x);
            for (size_t x = 0; x < in.nk; x++)
                if ((int)(x / in.D % in.L) > p) k2[x] = 3.0 * urand(602, x), v2[x] = urand(603, x);
            double *o = ref_zalloc(in.nq), *l = ref_zalloc(in.nl);
            double *o2 = ref_zalloc(in.nq), *l2 = ref_zalloc(in.nl);
            ref_comb_forward(&c, in.q, in.k, in.v, o, l);
            ref_comb_forward(&c, q2, k2, v2, o2, l2);
            int changed_past = 0, changed_future = 0;
            for (size_t x = 0; x < in.nq; x++) {
                int i = (int)(x / in.D % in.L);
                if (i <= p) changed_past += o[x] != o2[x] || l[x / in.D] != l2[x / in.D];
                else changed_future += o[x] != o2[x];
            }
            assert_int_equal(changed_past, 0);
            if (p < in.L - 1) assert_true(changed_future > 0);
            free(q2), free(k2), free(v2), free(o), free(l), free(o2), free(l2);
        }
    }
    printf("  causality: rows <= p independent of inputs > p (fixed, axial, logsparse)\n");
    free_inputs(&in);
}

/* GQA: H = 4, Hkv = 2 equals each query head h run alone (H = Hkv = 1) with kv
 * head h / 2, for every kind; and each kind differs from full attention here. */
static void test_gqa_and_nontrivial(void **state)
{
    (void)state;
    inputs in = make_inputs(2, 4, 2, 17, 3, 700);
    const ref_comb_kind kinds[3] = {REF_COMB_FIXED, REF_COMB_AXIAL, REF_COMB_LOGSPARSE};
    const int L = in.L, D = in.D;
    for (int t = 0; t < 3; t++)
        for (int causal = 1; causal >= (kinds[t] == REF_COMB_LOGSPARSE ? 1 : 0); causal--) {
            ref_comb_cfg c = comb_cfg(&in, causal, kinds[t], 4, 5);
            double *o = ref_zalloc(in.nq), *l = ref_zalloc(in.nl);
            ref_comb_forward(&c, in.q, in.k, in.v, o, l);
            ref_comb_cfg c1 = c;
            c1.B = 1, c1.H = 1, c1.Hkv = 1;
            double *o1 = ref_zalloc((size_t)L * D), *l1 = ref_zalloc((size_t)L);
            for (int b = 0; b < in.B; b++)
                for (int h = 0; h < in.H; h++) {
                    size_t qo = ((size_t)b * in.H + h) * L, ko = ((size_t)b * in.Hkv + h / 2) * L;
                    ref_comb_forward(&c1, in.q + qo * D, in.k + ko * D, in.v + ko * D, o1, l1);
                    assert_true(max_abs_diff(o1, o + qo * D, (size_t)L * D) == 0.0);
                    assert_true(max_abs_diff(l1, l + qo, (size_t)L) == 0.0);
                }
            ref_attn_cfg ac = {.B = in.B, .H = in.H, .Hkv = in.Hkv, .L = L, .D = D,
                               .causal = causal, .scale = c.scale, .seg = NULL};
            double *fo = ref_zalloc(in.nq), *fl = ref_zalloc(in.nl);
            ref_attn_forward(&ac, in.q, in.k, in.v, fo, fl);
            double diff = max_abs_diff(o, fo, in.nq) / ref_max_abs_d(fo, in.nq);
            printf("  GQA per-head identical; kind %d causal=%d differs from full by %.2e\n",
                   (int)kinds[t], causal, diff);
            assert_true(diff > 1e-3);
            free(o), free(l), free(o1), free(l1), free(fo), free(fl);
        }
    free_inputs(&in);
}

/* ref_comb_backward_fd_at on a subset == full FD on that subset, 0 elsewhere;
 * no kinks on random inputs; every input gets some gradient. */
static void test_fd_subset(void **state)
{
    (void)state;
    inputs in = make_inputs(1, 4, 2, 12, 3, 800);
    const int32_t sub[3] = {0, 5, 11};
    const ref_comb_kind kinds[3] = {REF_COMB_FIXED, REF_COMB_AXIAL, REF_COMB_LOGSPARSE};
    for (int t = 0; t < 3; t++) {
        ref_comb_cfg c = comb_cfg(&in, t == 2 ? 1 : (t & 1), kinds[t], 5, 5);
        double *dq = ref_zalloc(in.nq), *dk = ref_zalloc(in.nk), *dv = ref_zalloc(in.nk);
        double *sq = ref_zalloc(in.nq), *sk = ref_zalloc(in.nk), *sv = ref_zalloc(in.nk);
        ref_comb_backward_fd(&c, in.q, in.k, in.v, in.w, dq, dk, dv);
        int kinks = ref_comb_backward_fd_at(&c, in.q, in.k, in.v, in.w, 3, sub, sq, sk, sv);
        assert_int_equal(kinks, 0);
        for (size_t x = 0; x < in.nq; x++) {
            int i = (int)(x / in.D % in.L), in_sub = i == 0 || i == 5 || i == 11;
            assert_true(sq[x] == (in_sub ? dq[x] : 0.0));
        }
        for (size_t x = 0; x < in.nk; x++) {
            int i = (int)(x / in.D % in.L), in_sub = i == 0 || i == 5 || i == 11;
            assert_true(sk[x] == (in_sub ? dk[x] : 0.0));
            assert_true(sv[x] == (in_sub ? dv[x] : 0.0));
        }
        /* every input gets some gradient (full coverage): no all-zero position */
        double gmax = ref_max_abs_d(dq, in.nq);
        assert_true(gmax > 0.0 && ref_max_abs_d(dk, in.nk) > 0.0 && ref_max_abs_d(dv, in.nk) > 0.0);
        printf("  fd subset kind %d causal=%d: identical to full FD; max|dq| %.3f\n",
               (int)kinds[t], c.causal, gmax);
        free(dq), free(dk), free(dv), free(sq), free(sk), free(sv);
    }
    free_inputs(&in);
}

/* The kink detector: two q entries of one span and dimension within the FD
 * step of each other (an arg-max switch inside +-h) must be reported; the
 * same inputs with the tie pulled apart report none. */
static void test_fd_kink_detection(void **state)
{
    (void)state;
    inputs in = make_inputs(1, 1, 1, 6, 2, 900);
    ref_comb_cfg c = comb_cfg(&in, 1, REF_COMB_FIXED, 3, 0);
    double *dq = ref_zalloc(in.nq), *dk = ref_zalloc(in.nk), *dv = ref_zalloc(in.nk);
    int32_t pos0 = 0;
    in.q[0] = 0.9, in.q[2] = 0.5; /* span 0, d = 0: q_0 is the clear max */
    int clean = ref_comb_backward_fd_at(&c, in.q, in.k, in.v, in.w, 1, &pos0, dq, dk, dv);
    in.q[2] = 0.9 + 0.3 * REF_COMB_FD_STEP; /* q_1[0] just above q_0[0]: q_0 + h crosses */
    int kinked = ref_comb_backward_fd_at(&c, in.q, in.k, in.v, in.w, 1, &pos0, dq, dk, dv);
    printf("  kink detection: %d kinks apart, %d with a near-tie inside the step\n", clean,
           kinked);
    assert_int_equal(clean, 0);
    assert_true(kinked >= 1);
    free(dq), free(dk), free(dv);
    free_inputs(&in);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fixed_span_ge_L_is_full),
        cmocka_unit_test(test_fixed_span1_is_full),
        cmocka_unit_test(test_logsparse_tiling),
        cmocka_unit_test(test_logsparse_small_is_full),
        cmocka_unit_test(test_axial_one_row_is_full),
        cmocka_unit_test(test_fd_vs_full_attention),
        cmocka_unit_test(test_hand_cases),
        cmocka_unit_test(test_causality),
        cmocka_unit_test(test_gqa_and_nontrivial),
        cmocka_unit_test(test_fd_subset),
        cmocka_unit_test(test_fd_kink_detection),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
