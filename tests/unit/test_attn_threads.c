/* test_attn_threads.c - the attention tiles (attn.h) on 1, 2, 3 and 4
 * OpenMP threads.
 *
 * Every case runs forward (keys in several uneven blocks) and backward with
 * ra_threads_set(n), opts.threads = n and scratch for n threads (filled with
 * NaN), for n = 1..4, and checks
 *   - against the float64 reference (tests/common/ref_attn.c) with the
 *     tolerances of test_attn_kernels.c: O 1e-5, lse 1e-4, gradients 1e-4
 *     (dq, dk normalised with the same floors);
 *   - that O, lse, dq, dk, dv at n threads are BITWISE equal to 1 thread
 *     (each output element gets the same operations in the same order);
 *   - that the poll runs on the calling thread only (MPI is FUNNELED).
 * Also: the kernels called from inside a parallel region run on one thread
 * (one head per thread) and give the same bits; and the ring on one rank
 * (MPI_COMM_SELF), whose threads take whole (sequence, key/value head)
 * groups or leave them to the kernels, gives the same bits at 1-4 threads. */
#include <math.h>
#include <omp.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <mpi.h>

#include "ref_attn.h"
#include "ringattn/attn.h"
#include "ringattn/layout.h"
#include "ringattn/ring.h"
#include "ringattn/rng.h"
#include "ringattn/threads.h"

#define TOL_O 1e-5
#define TOL_LSE 1e-4
#define TOL_GRAD 1e-4
#define NB 3

static void *xcalloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size);
    assert_non_null(p);
    return p;
}

static float *rand_f(uint64_t seed, size_t n, float amp)
{
    float *x = xcalloc(n, sizeof *x);
    for (size_t i = 0; i < n; i++) x[i] = amp * ra_rand_uniform(seed, i);
    return x;
}

static float *alloc_scratch(int D, int threads)
{
    size_t n = ra_attn_scratch_floats_threads(D, threads);
    float *s = aligned_alloc(64, (n * sizeof(float) + 63) / 64 * 64);
    assert_non_null(s);
    for (size_t i = 0; i < n; i++) s[i] = NAN;
    return s;
}

/* ---- the poll: counts calls, flags any from another thread ------------- */

typedef struct {
    pthread_t main;
    long calls, foreign;
} poll_log;

static void poll_fn(void *ctx)
{
    poll_log *p = ctx;
    if (!pthread_equal(pthread_self(), p->main)) {
#pragma omp atomic
        p->foreign++;
        return;
    }
    p->calls++;
}

/* ---- one case ------------------------------------------------------------ */

typedef struct {
    const char *name;
    int nq, nk, D, causal, split; /* split: backward through ra_attn_bwd_block_split */
    int32_t *qpos, *kpos, *qseg, *kseg;
    float *q, *k, *v, *dout;
} tcase;

typedef struct {
    float *o, *lse, *dq, *dk, *dv;
} res;

static void res_alloc(res *r, const tcase *c)
{
    r->o = xcalloc((size_t)c->nq * c->D, sizeof(float));
    r->lse = xcalloc((size_t)c->nq, sizeof(float));
    r->dq = xcalloc((size_t)c->nq * c->D, sizeof(float));
    r->dk = xcalloc((size_t)c->nk * c->D, sizeof(float));
    r->dv = xcalloc((size_t)c->nk * c->D, sizeof(float));
}

static void res_free(res *r) { free(r->o), free(r->lse), free(r->dq), free(r->dk), free(r->dv); }

static void make_case(tcase *c, const char *name, int nq, int nk, int D, int causal, int segs,
                      int shuffle, int split, uint64_t seed)
{
    *c = (tcase){ .name = name, .nq = nq, .nk = nk, .D = D, .causal = causal, .split = split };
    c->qpos = xcalloc((size_t)nq, sizeof(int32_t));
    c->kpos = xcalloc((size_t)nk, sizeof(int32_t));
    /* queries: the last nq of nk positions (a later ring block sees all keys) */
    for (int i = 0; i < nq; i++) c->qpos[i] = nk - nq + i;
    for (int j = 0; j < nk; j++) c->kpos[j] = j;
    if (shuffle) /* a fixed permutation of the key positions */
        for (int j = nk - 1; j > 0; j--) {
            int r = (int)((ra_rand_uniform(seed + 7, (uint64_t)j) * 0.5f + 0.5f) * (float)j) % (j + 1);
            if (r < 0) r = 0;
            int32_t t = c->kpos[j];
            c->kpos[j] = c->kpos[r], c->kpos[r] = t;
        }
    if (segs) {
        c->qseg = xcalloc((size_t)nq, sizeof(int32_t));
        c->kseg = xcalloc((size_t)nk, sizeof(int32_t));
        for (int i = 0; i < nq; i++) c->qseg[i] = c->qpos[i] / 173;
        for (int j = 0; j < nk; j++) c->kseg[j] = c->kpos[j] / 173;
    }
    c->q = rand_f(seed, (size_t)nq * D, 1.0f);
    c->k = rand_f(seed + 1, (size_t)nk * D, 1.0f);
    c->v = rand_f(seed + 2, (size_t)nk * D, 1.0f);
    c->dout = rand_f(seed + 3, (size_t)nq * D, 1.0f);
}

static void free_case(tcase *c)
{
    free(c->qpos), free(c->kpos), free(c->qseg), free(c->kseg);
    free(c->q), free(c->k), free(c->v), free(c->dout);
}

/* Forward over NB uneven key blocks (visited last first), backward in
 * order; opts.threads = threads, scratch for that many. */
static void run_lib(const tcase *c, res *r, int threads, const ra_poll *poll)
{
    const int D = c->D, nq = c->nq;
    const int bound[NB + 1] = { 0, c->nk / 5, c->nk / 5 + (c->nk * 3) / 5, c->nk };
    ra_attn_opts opt = { .D = D, .scale = 1.0f / sqrtf((float)D), .causal = c->causal,
                         .threads = threads };
    ra_rows qr = { .n = nq, .pos = c->qpos, .seg = c->qseg };
    float *m = xcalloc((size_t)nq, sizeof *m), *l = xcalloc((size_t)nq, sizeof *l);
    float *dl = xcalloc((size_t)nq, sizeof *dl), *hi = xcalloc((size_t)nq, sizeof *hi);
    float *lo = xcalloc((size_t)nq, sizeof *lo);
    float *scratch = alloc_scratch(D, threads);
    ra_attn_fwd_init(nq, D, r->o, m, l);
    for (int b = NB - 1; b >= 0; b--) {
        int s = bound[b], e = bound[b + 1];
        ra_rows kr = { .n = e - s, .pos = c->kpos + s, .seg = c->kseg ? c->kseg + s : NULL };
        ra_attn_fwd_block(&opt, &qr, c->q, &kr, c->k + (size_t)s * D, c->v + (size_t)s * D, r->o,
                          m, l, scratch, poll);
    }
    for (int i = 0; i < nq; i++) hi[i] = l[i] > 0.0f ? m[i] : -INFINITY, lo[i] = l[i] > 0.0f ? logf(l[i]) : 0.0f;
    ra_attn_fwd_finish(nq, D, r->o, m, l, r->lse);
    ra_attn_bwd_rowdot(nq, D, r->o, c->dout, dl);
    for (int b = 0; b < NB; b++) {
        int s = bound[b], e = bound[b + 1];
        ra_rows kr = { .n = e - s, .pos = c->kpos + s, .seg = c->kseg ? c->kseg + s : NULL };
        size_t off = (size_t)s * D;
        if (c->split)
            ra_attn_bwd_block_split(&opt, &qr, c->q, c->dout, hi, lo, dl, &kr, c->k + off,
                                    c->v + off, r->dq, r->dk + off, r->dv + off, scratch, poll);
        else
            ra_attn_bwd_block(&opt, &qr, c->q, c->dout, r->lse, dl, &kr, c->k + off, c->v + off,
                              r->dq, r->dk + off, r->dv + off, scratch, poll);
    }
    free(m), free(l), free(dl), free(hi), free(lo), free(scratch);
}

static double max_row_norm(const float *x, int n, int D)
{
    double m = 0.0;
    for (int i = 0; i < n; i++) {
        double s = 0.0;
        for (int d = 0; d < D; d++) s += (double)x[(size_t)i * D + d] * x[(size_t)i * D + d];
        if (s > m) m = s;
    }
    return sqrt(m);
}

/* Against the float64 reference: the tolerances and floors of test_attn_kernels.c. */
static void check_ref(const tcase *c, const res *r, int threads)
{
    const int D = c->D;
    size_t nqd = (size_t)c->nq * D, nkd = (size_t)c->nk * D;
    double a = (double)(1.0f / sqrtf((float)D));
    double *q = ref_widen(c->q, nqd), *k = ref_widen(c->k, nkd), *v = ref_widen(c->v, nkd);
    double *g = ref_widen(c->dout, nqd);
    double *o = ref_zalloc(nqd), *lse = ref_zalloc((size_t)c->nq);
    double *dq = ref_zalloc(nqd), *dk = ref_zalloc(nkd), *dv = ref_zalloc(nkd);
    ref_head_forward(c->nq, c->qpos, c->qseg, q, c->nk, c->kpos, c->kseg, k, v, D, a, c->causal, o, lse);
    ref_head_backward(c->nq, c->qpos, c->qseg, q, c->nk, c->kpos, c->kseg, k, v, D, a, c->causal, g,
                      dq, dk, dv);
    double t = a * max_row_norm(c->dout, c->nq, D) * max_row_norm(c->v, c->nk, D);
    double fq = 1e-2 * t * ref_max_abs_f(c->k, nkd), fk = 1e-2 * t * ref_max_abs_f(c->q, nqd);
    ref_cmp co = ref_compare_f(r->o, o, nqd);
    double el = ref_lse_err_f(r->lse, lse, (size_t)c->nq, NULL);
    ref_cmp cq = ref_compare_f_floor(r->dq, dq, nqd, fq);
    ref_cmp ck = ref_compare_f_floor(r->dk, dk, nkd, fk);
    ref_cmp cv = ref_compare_f(r->dv, dv, nkd);
    printf("  %-22s threads=%d nq=%-5d nk=%-5d D=%-3d | O %.2e lse %.2e dq %.2e dk %.2e dv %.2e\n",
           c->name, threads, c->nq, c->nk, D, co.norm_err, el, cq.norm_err, ck.norm_err, cv.norm_err);
    assert_true(co.norm_err <= TOL_O);
    assert_true(el <= TOL_LSE);
    assert_true(cq.norm_err <= TOL_GRAD);
    assert_true(ck.norm_err <= TOL_GRAD);
    assert_true(cv.norm_err <= TOL_GRAD);
    free(q), free(k), free(v), free(g), free(o), free(lse), free(dq), free(dk), free(dv);
}

static void assert_same_bits(const float *a, const float *b, size_t n, const char *what)
{
    if (memcmp(a, b, n * sizeof(float)) != 0) {
        size_t i = 0;
        while (i < n && memcmp(a + i, b + i, sizeof(float)) == 0) i++;
        fail_msg("%s differs from 1 thread at %zu: %.9g vs %.9g", what, i, (double)a[i], (double)b[i]);
    }
}

static void same_bits(const tcase *c, const res *x, const res *one)
{
    size_t nqd = (size_t)c->nq * c->D, nkd = (size_t)c->nk * c->D;
    assert_same_bits(x->o, one->o, nqd, "O");
    assert_same_bits(x->lse, one->lse, (size_t)c->nq, "lse");
    assert_same_bits(x->dq, one->dq, nqd, "dq");
    assert_same_bits(x->dk, one->dk, nkd, "dk");
    assert_same_bits(x->dv, one->dv, nkd, "dv");
}

static void run_threads(tcase *c)
{
    res one;
    res_alloc(&one, c);
    for (int n = 1; n <= 4; n++) {
        ra_threads_set(n);
        res r;
        res_alloc(&r, c);
        poll_log pl = { .main = pthread_self() };
        ra_poll poll = { poll_fn, &pl };
        run_lib(c, n == 1 ? &one : &r, n, &poll);
        assert_int_equal(pl.foreign, 0);
        assert_true(pl.calls >= 1);
        check_ref(c, n == 1 ? &one : &r, n);
        if (n > 1) same_bits(c, &r, &one);
        res_free(&r);
    }
    ra_threads_set(1);
    res_free(&one);
}

static void test_bidirectional(void **state)
{
    (void)state;
    tcase c;
    make_case(&c, "bidirectional", 700, 1300, 64, 0, 0, 0, 0, 11);
    run_threads(&c);
    free_case(&c);
}

static void test_causal(void **state)
{
    (void)state;
    tcase c;
    make_case(&c, "causal", 1100, 1100, 64, 1, 0, 0, 0, 21);
    run_threads(&c);
    free_case(&c);
    make_case(&c, "causal later block", 333, 1500, 32, 1, 0, 0, 0, 22);
    run_threads(&c);
    free_case(&c);
}

static void test_segments_unsorted_split(void **state)
{
    (void)state;
    tcase c;
    make_case(&c, "causal segments", 900, 900, 64, 1, 1, 0, 0, 31);
    run_threads(&c);
    free_case(&c);
    make_case(&c, "causal unsorted keys", 600, 800, 64, 1, 0, 1, 0, 32);
    run_threads(&c);
    free_case(&c);
    make_case(&c, "causal split lse", 1000, 1000, 128, 1, 1, 0, 1, 33);
    run_threads(&c);
    free_case(&c);
    make_case(&c, "few rows", 70, 600, 64, 0, 0, 0, 1, 34);
    run_threads(&c);
    free_case(&c);
}

/* Inside a parallel region the kernels run on their caller's thread: one
 * head per thread, each with one thread's scratch, same bits as serial. */
static void test_inside_parallel_region(void **state)
{
    (void)state;
    enum { HEADS = 4 };
    tcase c[HEADS];
    res serial[HEADS], par[HEADS];
    for (int h = 0; h < HEADS; h++) {
        make_case(&c[h], "nested", 400, 700, 64, h % 2, 0, 0, 0, 41 + (uint64_t)h);
        res_alloc(&serial[h], &c[h]);
        res_alloc(&par[h], &c[h]);
        ra_threads_set(1);
        run_lib(&c[h], &serial[h], 1, NULL);
    }
    ra_threads_set(4);
    ra_blas_serial_begin();
#pragma omp parallel for num_threads(4) schedule(static, 1)
    for (int h = 0; h < HEADS; h++) run_lib(&c[h], &par[h], 1, NULL);
    ra_blas_serial_end();
    ra_threads_set(1);
    for (int h = 0; h < HEADS; h++) {
        same_bits(&c[h], &par[h], &serial[h]);
        res_free(&serial[h]), res_free(&par[h]), free_case(&c[h]);
    }
}

/* Scratch sized for fewer threads than ra_threads(): the kernels use only
 * what opts.threads allows. */
static void test_threads_capped_by_opts(void **state)
{
    (void)state;
    tcase c;
    make_case(&c, "capped", 500, 900, 64, 1, 0, 0, 0, 51);
    res one, r;
    res_alloc(&one, &c), res_alloc(&r, &c);
    ra_threads_set(1);
    run_lib(&c, &one, 1, NULL);
    ra_threads_set(4);
    run_lib(&c, &r, 2, NULL); /* scratch for 2, ra_threads() = 4 */
    ra_threads_set(1);
    same_bits(&c, &r, &one);
    res_free(&one), res_free(&r), free_case(&c);
}

/* The ring on one rank at 1-4 threads: forward and backward bitwise equal
 * to 1 thread, for shapes where each_head shares out groups (B*Hkv = 4 at
 * 2 and 4 threads) and where the kernels thread (3 threads; Hkv = 1). */
static void ring_case(int B, int H, int Hkv, int L, int D, int causal, int segs)
{
    ra_ring_opts opts = { .B = B, .H = H, .Hkv = Hkv, .D = D, .L = L, .causal = causal };
    assert_int_equal(ra_layout_parse("contiguous", &opts.layout), RA_OK);
    size_t nq = (size_t)B * H * L * D, nk = (size_t)B * Hkv * L * D, nl = (size_t)B * H * L;
    float *q = rand_f(61, nq, 1.0f), *k = rand_f(62, nk, 1.0f), *v = rand_f(63, nk, 1.0f);
    float *g = rand_f(64, nq, 1.0f);
    int32_t *seg = NULL;
    if (segs) {
        seg = xcalloc((size_t)B * L, sizeof *seg);
        for (int i = 0; i < B * L; i++) seg[i] = (i % L) / 300 + i / L;
    }
    float *out[4][5];
    for (int t = 0; t < 4; t++) {
        /* the count may change after creation: 3 threads on a ring made for
         * 4, 4 threads on one made for 1 (its scratch regrows) */
        ra_threads_set(t == 2 ? 4 : t == 3 ? 1 : t + 1);
        float *o = xcalloc(nq, 4), *lse = xcalloc(nl, 4), *dq = xcalloc(nq, 4);
        float *dk = xcalloc(nk, 4), *dv = xcalloc(nk, 4);
        ra_ring *ring = NULL;
        assert_int_equal(ra_ring_create(&ring, &opts, MPI_COMM_SELF), RA_OK);
        ra_threads_set(t + 1);
        assert_int_equal(ra_ring_forward(ring, q, k, v, seg, o, lse), RA_OK);
        assert_int_equal(ra_ring_backward(ring, q, k, v, seg, o, lse, g, dq, dk, dv), RA_OK);
        ra_ring_destroy(ring);
        out[t][0] = o, out[t][1] = lse, out[t][2] = dq, out[t][3] = dk, out[t][4] = dv;
        if (t > 0) {
            assert_same_bits(o, out[0][0], nq, "ring O");
            assert_same_bits(lse, out[0][1], nl, "ring lse");
            assert_same_bits(dq, out[0][2], nq, "ring dq");
            assert_same_bits(dk, out[0][3], nk, "ring dk");
            assert_same_bits(dv, out[0][4], nk, "ring dv");
        }
    }
    printf("  ring B=%d H=%d Hkv=%d L=%d D=%d causal=%d seg=%d: 2, 3, 4 threads bitwise = 1\n", B, H,
           Hkv, L, D, causal, segs);
    ra_threads_set(1);
    for (int t = 0; t < 4; t++)
        for (int i = 0; i < 5; i++) free(out[t][i]);
    free(q), free(k), free(v), free(g), free(seg);
}

static void test_ring_one_rank(void **state)
{
    (void)state;
    ring_case(1, 4, 4, 1100, 32, 1, 0);
    ring_case(2, 4, 2, 700, 64, 0, 1);
    ring_case(1, 4, 1, 1300, 64, 1, 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bidirectional),
        cmocka_unit_test(test_causal),
        cmocka_unit_test(test_segments_unsorted_split),
        cmocka_unit_test(test_inside_parallel_region),
        cmocka_unit_test(test_threads_capped_by_opts),
        cmocka_unit_test(test_ring_one_rank),
    };
    int provided;
    MPI_Init_thread(NULL, NULL, MPI_THREAD_FUNNELED, &provided);
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    MPI_Finalize();
    return rc;
}
