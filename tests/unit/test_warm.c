/* test_warm.c - warm-start pieces against hand-computed values: cipher
 * vectors (bits / popcount, rows of L1 norm 1), co-occurrence vectors, and the
 * closed-form head reproducing a corpus's bigram distribution from one-hot
 * features (tolerance 1e-6 on probabilities). */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "ringattn/warm.h"

static void test_cipher_vectors(void **s)
{
    (void)s;
    const uint32_t code[3] = { 0x8, 0x3, 0xF }; /* 1000, 0011, 1111 */
    const double want[3][4] = { { 1, 0, 0, 0 }, { 0, 0, 0.5, 0.5 }, { 0.25, 0.25, 0.25, 0.25 } };
    double vec[12];
    ra_warm_cipher_vectors(code, 3, 4, vec);
    for (int t = 0; t < 3; t++) {
        double l1 = 0;
        for (int j = 0; j < 4; j++) {
            assert_true(vec[t * 4 + j] == want[t][j]);
            l1 += vec[t * 4 + j];
        }
        assert_true(fabs(l1 - 1) < 1e-15);
    }
}

static void test_cooc_vectors(void **s)
{
    (void)s;
    const double cv[6] = { 1, 0, 0, 1, 0.5, 0.5 };
    /* token 0 saw token 1 twice and token 2 twice; token 1 saw nothing; token 2 saw token 0 once */
    const int64_t win[9] = { 0, 2, 2, 0, 0, 0, 1, 0, 0 };
    double vec[6];
    ra_warm_cooc_vectors(win, cv, 3, 2, vec);
    const double want[6] = { 0.25, 0.75, 0, 1, 1, 0 }; /* (2*[0,1] + 2*[.5,.5]) / 4; cv[1]; [1,0] */
    for (int i = 0; i < 6; i++) assert_true(fabs(vec[i] - want[i]) < 1e-15);
}

enum { V = 6, C = 8 };

/* next-token counts of a small corpus over the alphabet "abcdr " */
static void corpus_bigrams(int64_t next[V * V])
{
    const char *text = "abracadabra abracadabra a bad cab a crab drab ", *alpha = "abcdr ";
    memset(next, 0, sizeof(int64_t) * V * V);
    for (const char *p = text; p[1]; p++) {
        int a = (int)(strchr(alpha, p[0]) - alpha), b = (int)(strchr(alpha, p[1]) - alpha);
        next[a * V + b]++;
    }
}

/* softmax over v of phi_t . W */
static void predict(const double *phi, const float *W, int t, double *p)
{
    double z[V], mx = -INFINITY, sum = 0;
    for (int v = 0; v < V; v++) {
        z[v] = 0;
        for (int j = 0; j < C; j++) z[v] += phi[t * C + j] * W[j * V + v];
        mx = fmax(mx, z[v]);
    }
    for (int v = 0; v < V; v++) sum += exp(z[v] - mx);
    for (int v = 0; v < V; v++) p[v] = exp(z[v] - mx) / sum;
}

static void test_head_reproduces_bigrams(void **s)
{
    (void)s;
    int64_t next[V * V];
    corpus_bigrams(next);
    const double scale = 2.5; /* phi(t) = scale * e_t, as rmsnorm makes of a one-hot row */
    double phi[V * C] = { 0 };
    for (int t = 0; t < V; t++) phi[t * C + t] = scale;
    float W[C * V];
    /* nearly no smoothing: the empirical distribution itself */
    double K = ra_warm_head(phi, next, V, C, 0, 1e-9, W);
    assert_true(fabs(K - scale) < 1e-12); /* the mean L1 norm */
    for (int t = 0; t < V; t++) {
        int64_t row = 0;
        for (int v = 0; v < V; v++) row += next[t * V + v];
        double p[V];
        predict(phi, W, t, p);
        for (int v = 0; v < V; v++) assert_true(fabs(p[v] - (double)next[t * V + v] / (double)row) < 1e-6);
    }
    /* smoothing a adds a / scale occurrences to every count */
    const double a = 0.5;
    ra_warm_head(phi, next, V, C, 0, a, W);
    for (int t = 0; t < V; t++) {
        int64_t row = 0;
        for (int v = 0; v < V; v++) row += next[t * V + v];
        double p[V];
        predict(phi, W, t, p);
        for (int v = 0; v < V; v++) {
            double want = ((double)next[t * V + v] + a / scale) / ((double)row + V * a / scale);
            assert_true(fabs(p[v] - want) < 1e-6);
        }
    }
    /* K = 2 * scale halves the logits: softmax gives p^(1/2), renormalised */
    ra_warm_head(phi, next, V, C, 2 * scale, 1e-9, W);
    for (int t = 0; t < V; t++) {
        double p[V], q[V], sum = 0;
        predict(phi, W, t, p);
        int64_t row = 0;
        for (int v = 0; v < V; v++) row += next[t * V + v];
        for (int v = 0; v < V; v++) sum += q[v] = sqrt(((double)next[t * V + v] + 1e-9 / scale) / (double)row);
        for (int v = 0; v < V; v++) assert_true(fabs(p[v] - q[v] / sum) < 1e-6);
    }
}

static void test_head_default_scale(void **s)
{
    (void)s;
    /* two tokens with features of L1 norm 1 and 3; token 0 precedes 3 tokens, token 1 one */
    const int64_t next[4] = { 2, 1, 1, 0 };
    const double phi[4] = { 1, 0, 1, 2 };
    float W[4];
    double K = ra_warm_head(phi, next, 2, 2, 0, 0.1, W);
    assert_true(fabs(K - (3 * 1 + 1 * 3) / 4.0) < 1e-12);
    /* row 0 of W: F = 0.1 + 1*[2,1] + 1*[1,0] = [3.1, 1.1] */
    assert_true(fabs(W[0] - log(3.1 / 4.2) / K) < 1e-6 && fabs(W[1] - log(1.1 / 4.2) / K) < 1e-6);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cipher_vectors),
        cmocka_unit_test(test_cooc_vectors),
        cmocka_unit_test(test_head_reproduces_bigrams),
        cmocka_unit_test(test_head_default_scale),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
