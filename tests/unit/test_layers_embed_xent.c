/* test_layers_embed_xent.c - the ends of the model (layers.h): the token
 * embedding and the cross-entropy loss (counts, argmax, ignored rows,
 * extreme logits, chunks of rows, a bad target aborts) against float64 references written
 * here from the formulas, by the method of layers_helpers.h. The other
 * kernels: test_layers.c, test_layers_ffn.c. */
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
#include "ringattn/threads.h"
#include "layers_helpers.h"

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

/* Above the threading threshold (32768 floats), at 1-4 threads: an
 * embedding gradient with repeated tokens (rows owned by token % threads),
 * cross-entropy with ignored rows (the loss summed over rows in order). */
static void test_threads(void **state)
{
    /* under valgrind (RA_TEST_WRAPPER is its setup) the 1-4 thread sweep on
     * threaded sizes takes minutes; it runs natively and under asan */
    if (getenv("RA_TEST_WRAPPER")) skip();
    (void)state;
    int32_t t70[70];
    for (int i = 0; i < 70; i++) t70[i] = i % 9 == 4 ? -1 : (37 * i + 3) % 501;
    for (int nt = 1; nt <= 4; nt++) {
        ra_threads_set(nt);
        printf("  %d thread(s)\n", nt);
        embed_case(300, 120, 11, 730 + (uint64_t)nt);
        xent_case(70, 501, t70, 3.0f, 850 + (uint64_t)nt);
    }
    ra_threads_set(1);
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

/* ra_xent_rows over chunks of rows, in order, continuing the running sums
 * (the model's LM head, docs/design.md §7): loss, counts and dlogits
 * bitwise those of one ra_xent, for chunks of 1, 7, 16 and 150 rows, at 1
 * and 3 threads (the threaded kernel keeps per-row losses). */
static void test_xent_chunks(void **state)
{
    (void)state;
    enum { N = 150, V = 701 };
    int32_t t[N];
    for (int i = 0; i < N; i++) t[i] = i % 11 == 5 ? -1 : (int32_t)((97 * i + 13) % V);
    float *l = frand(960, (size_t)N * V, 4.0f, 0.0f);
    float *d1 = malloc(sizeof(float) * N * V), *d2 = malloc(sizeof(float) * N * V);
    assert_non_null(d1);
    assert_non_null(d2);
    for (int nt = 1; nt <= 3; nt += 2) {
        ra_threads_set(nt);
        int64_t cnt1, ok1;
        const double loss1 = ra_xent(d1, l, t, N, V, 0.5f, &cnt1, &ok1);
        static const int rows[] = { 1, 7, 16, 150 };
        for (int k = 0; k < 4; k++) {
            double loss2 = 0.0;
            int64_t cnt2 = 0, ok2 = 0;
            for (int r0 = 0; r0 < N; r0 += rows[k]) {
                const int n = N - r0 < rows[k] ? N - r0 : rows[k];
                ra_xent_rows(d2 + (size_t)r0 * V, l + (size_t)r0 * V, t + r0, n, V, 0.5f, &loss2, &cnt2, &ok2);
            }
            assert_memory_equal(&loss1, &loss2, sizeof loss1);
            assert_int_equal(cnt1, cnt2);
            assert_int_equal(ok1, ok2);
            assert_memory_equal(d1, d2, sizeof(float) * N * V);
        }
    }
    ra_threads_set(1);
    free(l);
    free(d1);
    free(d2);
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
        cmocka_unit_test(test_embed),
        cmocka_unit_test(test_xent),
        cmocka_unit_test(test_threads),
        cmocka_unit_test(test_xent_extreme),
        cmocka_unit_test(test_xent_all_ignored),
        cmocka_unit_test(test_xent_chunks),
        cmocka_unit_test(test_xent_bad_target_aborts),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
