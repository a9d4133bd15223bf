/* test_attn_kernels.c - the single-rank attention tiles (attn.h) against the
 * float64 reference (tests/common/ref_attn.c).
 *
 * Each case is one (batch, head): nq query rows and nk key rows with global
 * positions and optional segment ids. The keys reach the kernels as SEVERAL
 * uneven blocks, once in natural order and once shuffled (the online softmax
 * must not care about block order), in both the forward and the backward.
 *
 * Tolerances (float32 kernels vs float64 reference):
 *   O        normalised error  max|O - Oref| / max|Oref|        <= 1e-5
 *   lse      |lse - ref| / max(1, |ref|) (abs below 1, rel above) <= 1e-4,
 *            and -inf exactly where the reference row sees no key
 *   dq,dk,dv normalised error                                   <= 1e-4
 *            (dq, dk normalised by max(max|ref|, a floor): see grad_floors)
 * One stated exception, the extreme-logit case with |lse| ~ 1e4: the
 * backward recomputes P = exp(a q.k - lse) from the float32 lse, whose own
 * rounding is up to |lse| * 2^-24 absolute (~6e-4 at 1e4), so every P and
 * hence every gradient carries that relative error. There the gradient bound
 * is 1e-4 + 4 * max|lse| * 2^-24 (about 2.5e-3 at |lse| = 10240); O and lse
 * keep their normal tolerances. A companion case with the same huge logits
 * but |lse| <= ~10 keeps the full 1e-4 gradient tolerance.
 * Rows that see no key: O row exactly 0, lse = -inf, dq row exactly 0;
 * keys no query sees: dk, dv rows exactly 0; no NaN/inf anywhere else.
 * Inputs come from ra_rand_uniform (deterministic).
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

#include "../../src/kernels/vmath.h"
#include "ref_attn.h"
#include "ringattn/attn.h"
#include "ringattn/rng.h"

#define TOL_O 1e-5
#define TOL_LSE 1e-4
#define TOL_GRAD 1e-4
#define MAXB 8

/* ---- helpers -------------------------------------------------------------- */

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

static int32_t *iota_from(int n, int32_t start)
{
    int32_t *p = xcalloc((size_t)n, sizeof *p);
    for (int i = 0; i < n; i++) p[i] = start + i;
    return p;
}

static float *alloc_scratch(int D)
{
    size_t n = ra_attn_scratch_floats(D);
    size_t bytes = ((n ? n : 1) * sizeof(float) + 63) / 64 * 64;
    float *s = aligned_alloc(64, bytes);
    assert_non_null(s);
    for (size_t i = 0; i < n; i++) s[i] = NAN; /* the kernels must not read stale scratch */
    return s;
}

static int visible(int causal, int32_t qp, int32_t kp, const int32_t *qseg, const int32_t *kseg,
                   int i, int j)
{
    if (causal && kp > qp) return 0;
    if (qseg && kseg && qseg[i] != kseg[j]) return 0;
    return 1;
}

/* ---- one case ------------------------------------------------------------- */

typedef struct {
    const char *name;
    int nq, nk, D, causal;
    float scale; /* 0: 1/sqrt(D) */
    const int32_t *qpos, *qseg, *kpos, *kseg;
    const float *q, *k, *v, *dout; /* [nq][D], [nk][D], [nk][D], [nq][D] */
    int nb;                        /* number of key blocks (<= MAXB) */
    double grad_tol;               /* 0: TOL_GRAD */
    const ra_poll *poll;
} kcase;

typedef struct {
    float *o, *lse, *dq, *dk, *dv;
} kres;

static void kres_alloc(kres *r, const kcase *c)
{
    r->o = xcalloc((size_t)c->nq * c->D, sizeof(float));
    r->lse = xcalloc((size_t)c->nq, sizeof(float));
    r->dq = xcalloc((size_t)c->nq * c->D, sizeof(float));
    r->dk = xcalloc((size_t)c->nk * c->D, sizeof(float));
    r->dv = xcalloc((size_t)c->nk * c->D, sizeof(float));
}

static void kres_free(kres *r)
{
    free(r->o), free(r->lse), free(r->dq), free(r->dk), free(r->dv);
}

/* Uneven block boundaries with weights 2, 5, 3, 2, 5, 3, ...; empty blocks
 * dropped. Returns the number of blocks; bound[0..n] are the cut points. */
static int make_blocks(int nk, int nb, int *bound)
{
    int w[MAXB], tot = 0;
    for (int b = 0; b < nb; b++) tot += w[b] = (b % 3 == 0) ? 2 : (b % 3 == 1 ? 5 : 3);
    int n = 0, cum = 0;
    bound[0] = 0;
    for (int b = 0; b < nb; b++) {
        cum += w[b];
        int e = (int)((long)nk * cum / tot);
        if (e > bound[n]) bound[++n] = e;
    }
    return n;
}

/* Run forward and backward through the kernels with the key blocks visited in
 * order perm[] (forward) and perm2[] (backward). dq, dk, dv accumulate into
 * whatever r holds. */
static void run_lib(const kcase *c, kres *r, int nblk, const int *bound, const int *perm,
                    const int *perm2)
{
    const int D = c->D, nq = c->nq;
    ra_attn_opts opt = {.D = D, .scale = c->scale ? c->scale : 1.0f / sqrtf((float)D),
                        .causal = c->causal};
    ra_rows qr = {.n = nq, .pos = c->qpos, .seg = c->qseg};
    float *m = xcalloc((size_t)nq, sizeof *m), *l = xcalloc((size_t)nq, sizeof *l);
    float *dl = xcalloc((size_t)nq, sizeof *dl);
    float *scratch = alloc_scratch(D);

    ra_attn_fwd_init(nq, D, r->o, m, l);
    for (int t = 0; t < nblk; t++) {
        int b = perm[t], s = bound[b], e = bound[b + 1];
        ra_rows kr = {.n = e - s, .pos = c->kpos + s, .seg = c->kseg ? c->kseg + s : NULL};
        ra_attn_fwd_block(&opt, &qr, c->q, &kr, c->k + (size_t)s * D, c->v + (size_t)s * D, r->o,
                          m, l, scratch, c->poll);
    }
    ra_attn_fwd_finish(nq, D, r->o, m, l, r->lse);

    ra_attn_bwd_rowdot(nq, D, r->o, c->dout, dl);
    for (int t = 0; t < nblk; t++) {
        int b = perm2[t], s = bound[b], e = bound[b + 1];
        ra_rows kr = {.n = e - s, .pos = c->kpos + s, .seg = c->kseg ? c->kseg + s : NULL};
        size_t off = (size_t)s * D;
        ra_attn_bwd_block(&opt, &qr, c->q, c->dout, r->lse, dl, &kr, c->k + off, c->v + off,
                          r->dq, r->dk + off, r->dv + off, scratch, c->poll);
    }
    free(m), free(l), free(dl), free(scratch);
}

typedef struct {
    double *o, *lse, *dq, *dk, *dv;
} refres;

static void run_ref(const kcase *c, refres *R)
{
    const int D = c->D;
    size_t nqd = (size_t)c->nq * D, nkd = (size_t)c->nk * D;
    double a = c->scale ? (double)c->scale : (double)(1.0f / sqrtf((float)D));
    double *q = ref_widen(c->q, nqd), *k = ref_widen(c->k, nkd), *v = ref_widen(c->v, nkd);
    double *g = ref_widen(c->dout, nqd);
    R->o = ref_zalloc(nqd), R->lse = ref_zalloc((size_t)c->nq);
    R->dq = ref_zalloc(nqd), R->dk = ref_zalloc(nkd), R->dv = ref_zalloc(nkd);
    ref_head_forward(c->nq, c->qpos, c->qseg, q, c->nk, c->kpos, c->kseg, k, v, D, a, c->causal,
                     R->o, R->lse);
    ref_head_backward(c->nq, c->qpos, c->qseg, q, c->nk, c->kpos, c->kseg, k, v, D, a, c->causal,
                      g, R->dq, R->dk, R->dv);
    free(q), free(k), free(v), free(g);
}

static void refres_free(refres *R)
{
    free(R->o), free(R->lse), free(R->dq), free(R->dk), free(R->dv);
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

/* Normaliser floors for dq and dk. dS = P (dP - Dl) is a difference of
 * float32 terms of size |dO_i| |v_j|; when the true dq, dk vanish (e.g. a row
 * that sees exactly one key: P = 1 and dP = Dl exactly) the float32 result is
 * rounding noise of that size times a |k| (resp. a |q|), and a max|ref| of 0
 * would make any noise an infinite "error". The floor is 1e-2 of that term
 * size, so ordinary cases (max|ref| well above it) are not affected. */
static void grad_floors(const kcase *c, double *fq, double *fk)
{
    double a = c->scale ? (double)c->scale : (double)(1.0f / sqrtf((float)c->D));
    double t = a * max_row_norm(c->dout, c->nq, c->D) * max_row_norm(c->v, c->nk, c->D);
    *fq = 1e-2 * t * ref_max_abs_f(c->k, (size_t)c->nk * c->D);
    *fk = 1e-2 * t * ref_max_abs_f(c->q, (size_t)c->nq * c->D);
}

/* Compare one library result with the reference; returns the number of
 * failed checks (each printed). */
static int compare(const kcase *c, const kres *r, const refres *R, const char *tag)
{
    const int D = c->D;
    size_t nqd = (size_t)c->nq * D, nkd = (size_t)c->nk * D;
    double gtol = c->grad_tol > 0 ? c->grad_tol : TOL_GRAD;
    int fails = 0;
    size_t wl;
    ref_cmp co = ref_compare_f(r->o, R->o, nqd);
    double el = ref_lse_err_f(r->lse, R->lse, (size_t)c->nq, &wl);
    double fq, fk;
    grad_floors(c, &fq, &fk);
    ref_cmp cq = ref_compare_f_floor(r->dq, R->dq, nqd, fq);
    ref_cmp ck = ref_compare_f_floor(r->dk, R->dk, nkd, fk);
    ref_cmp cv = ref_compare_f(r->dv, R->dv, nkd);
    int bad = !(co.norm_err <= TOL_O) || !(el <= TOL_LSE) || !(cq.norm_err <= gtol) ||
              !(ck.norm_err <= gtol) || !(cv.norm_err <= gtol);
    printf("  %-34s %-9s nq=%-4d nk=%-4d D=%-3d causal=%d seg=%s | O %.2e lse %.2e dq %.2e "
           "dk %.2e dv %.2e%s\n",
           c->name, tag, c->nq, c->nk, D, c->causal, c->qseg ? "y" : "n", co.norm_err, el,
           cq.norm_err, ck.norm_err, cv.norm_err, bad ? "  <-- FAIL" : "");
    if (!(co.norm_err <= TOL_O)) {
        fails++;
        printf("    O: worst [row %zu][d %zu] lib %.9g ref %.9g (max|ref| %.3e)\n", co.worst / D,
               co.worst % D, (double)r->o[co.worst], R->o[co.worst], co.max_ref);
    }
    if (!(el <= TOL_LSE)) {
        fails++;
        printf("    lse: worst row %zu lib %.9g ref %.9g\n", wl, (double)r->lse[wl], R->lse[wl]);
    }
    const ref_cmp *cg[3] = {&cq, &ck, &cv};
    const float *xg[3] = {r->dq, r->dk, r->dv};
    const double *rg[3] = {R->dq, R->dk, R->dv};
    const char *ng[3] = {"dq", "dk", "dv"};
    for (int t = 0; t < 3; t++) {
        if (!(cg[t]->norm_err <= gtol)) {
            fails++;
            size_t w = cg[t]->worst;
            printf("    %s: worst [row %zu][d %zu] lib %.9g ref %.9g (max|ref| %.3e, tol %.1e)\n",
                   ng[t], w / D, w % D, (double)xg[t][w], rg[t][w], cg[t]->max_ref, gtol);
        }
    }
    /* exact zeros and finiteness */
    size_t nonfin = ref_count_nonfinite_f(r->o, nqd) + ref_count_nonfinite_f(r->dq, nqd) +
                    ref_count_nonfinite_f(r->dk, nkd) + ref_count_nonfinite_f(r->dv, nkd);
    for (int i = 0; i < c->nq; i++) {
        if (isnan(r->lse[i]) || (isinf(r->lse[i]) && r->lse[i] > 0)) nonfin++;
    }
    if (nonfin) {
        fails++;
        printf("    %zu non-finite values in O/lse/dq/dk/dv\n", nonfin);
    }
    int zero_bad = 0;
    for (int i = 0; i < c->nq; i++) {
        if (!isinf(R->lse[i])) continue; /* reference row sees no key */
        for (int d = 0; d < D; d++)
            if (r->o[(size_t)i * D + d] != 0.0f || r->dq[(size_t)i * D + d] != 0.0f) zero_bad++;
    }
    for (int j = 0; j < c->nk; j++) {
        int seen = 0;
        for (int i = 0; i < c->nq && !seen; i++)
            seen = visible(c->causal, c->qpos[i], c->kpos[j], c->qseg, c->kseg, i, j);
        if (seen) continue;
        for (int d = 0; d < D; d++)
            if (r->dk[(size_t)j * D + d] != 0.0f || r->dv[(size_t)j * D + d] != 0.0f) zero_bad++;
    }
    if (zero_bad) {
        fails++;
        printf("    %d values not exactly 0 in rows/keys that see nothing\n", zero_bad);
    }
    return fails;
}

/* Reference once; library with the keys in blocks, natural order, then
 * shuffled orders. Asserts after printing everything. */
static void check_case(const kcase *c)
{
    refres R;
    run_ref(c, &R);
    int bound[MAXB + 1];
    int nblk = make_blocks(c->nk, c->nb > 0 ? c->nb : 3, bound);
    int natural[MAXB], shuffled[MAXB], reversed[MAXB];
    for (int b = 0; b < nblk; b++) natural[b] = b, reversed[b] = nblk - 1 - b;
    /* a fixed shuffle: rotate by one and swap pairs, e.g. 3 blocks -> 2 0 1 */
    for (int b = 0; b < nblk; b++) shuffled[b] = (b + nblk - 1) % nblk;
    for (int b = 1; b + 1 < nblk; b += 2) {
        int t = shuffled[b];
        shuffled[b] = shuffled[b + 1];
        shuffled[b + 1] = t;
    }
    int fails = 0;
    kres r1, r2;
    kres_alloc(&r1, c);
    run_lib(c, &r1, nblk, bound, natural, natural);
    fails += compare(c, &r1, &R, "natural");
    kres_alloc(&r2, c);
    run_lib(c, &r2, nblk, bound, shuffled, reversed);
    fails += compare(c, &r2, &R, "shuffled");
    kres_free(&r1);
    kres_free(&r2);
    refres_free(&R);
    assert_int_equal(fails, 0);
}

/* Inputs of a plain case: positions 0..nk-1 for keys, queries at qstart.. */
typedef struct {
    float *q, *k, *v, *g;
    int32_t *qpos, *kpos, *qseg, *kseg;
} kdata;

static void kdata_rand(kdata *x, int nq, int nk, int D, uint64_t seed, float amp)
{
    x->q = rand_f(seed * 16 + 1, (size_t)nq * D, amp);
    x->k = rand_f(seed * 16 + 2, (size_t)nk * D, amp);
    x->v = rand_f(seed * 16 + 3, (size_t)nk * D, 1.0f);
    x->g = rand_f(seed * 16 + 4, (size_t)nq * D, 1.0f);
    x->qpos = x->kpos = x->qseg = x->kseg = NULL;
}

static void kdata_free(kdata *x)
{
    free(x->q), free(x->k), free(x->v), free(x->g);
    free(x->qpos), free(x->kpos), free(x->qseg), free(x->kseg);
}

static kcase case_of(const char *name, const kdata *x, int nq, int nk, int D, int causal)
{
    kcase c = {.name = name, .nq = nq, .nk = nk, .D = D, .causal = causal, .qpos = x->qpos,
               .qseg = x->qseg, .kpos = x->kpos, .kseg = x->kseg, .q = x->q, .k = x->k,
               .v = x->v, .dout = x->g, .nb = 3};
    return c;
}

/* ---- tests ---------------------------------------------------------------- */

static const int self_sizes[][2] = {{1, 8}, {7, 16}, {33, 64}, {100, 128}, {257, 8}, {300, 64},
                                    {129, 16}, {65, 128}};

static void self_sizes_test(int causal)
{
    for (size_t t = 0; t < sizeof self_sizes / sizeof self_sizes[0]; t++) {
        int L = self_sizes[t][0], D = self_sizes[t][1];
        kdata x;
        kdata_rand(&x, L, L, D, 10 + t + 100 * causal, 2.0f);
        x.qpos = iota_from(L, 0);
        x.kpos = iota_from(L, 0);
        kcase c = case_of(causal ? "self causal" : "self bidirectional", &x, L, L, D, causal);
        c.nb = (t % 2) ? 3 : 5;
        check_case(&c);
        kdata_free(&x);
    }
}

static void test_bidirectional_sizes(void **state)
{
    (void)state;
    self_sizes_test(0);
}

static void test_causal_sizes(void **state)
{
    (void)state;
    self_sizes_test(1);
}

/* Queries and keys at different global positions, as a ring rank sees a
 * remote block: nq != nk, causal masks that cut through blocks, strided
 * (striped-layout) positions, a single key, and many blocks. */
static void test_cross_blocks(void **state)
{
    (void)state;
    struct {
        int nq, nk, D, qstart, qstride, kstart, kstride, causal, nb;
    } cs[] = {
        {33, 257, 64, 100, 1, 0, 1, 1, 3},   /* queries in the middle of the keys */
        {33, 257, 64, 100, 1, 0, 1, 0, 3},
        {7, 300, 16, 3, 41, 0, 1, 1, 4},     /* striped queries 3, 44, 85, ... */
        {300, 1, 8, 0, 1, 150, 1, 1, 1},     /* one key: rows before it see nothing */
        {100, 257, 128, 1, 3, 0, 2, 1, 8},   /* both strided, 8 blocks */
        {257, 100, 16, 0, 1, 120, 1, 1, 7},  /* keys after half the queries */
        {1, 300, 128, 299, 1, 0, 1, 1, 3},   /* one query sees every key */
    };
    for (size_t t = 0; t < sizeof cs / sizeof cs[0]; t++) {
        kdata x;
        kdata_rand(&x, cs[t].nq, cs[t].nk, cs[t].D, 200 + t, 2.0f);
        x.qpos = xcalloc((size_t)cs[t].nq, sizeof(int32_t));
        x.kpos = xcalloc((size_t)cs[t].nk, sizeof(int32_t));
        for (int i = 0; i < cs[t].nq; i++) x.qpos[i] = cs[t].qstart + i * cs[t].qstride;
        for (int j = 0; j < cs[t].nk; j++) x.kpos[j] = cs[t].kstart + j * cs[t].kstride;
        kcase c = case_of("cross blocks", &x, cs[t].nq, cs[t].nk, cs[t].D, cs[t].causal);
        c.nb = cs[t].nb;
        check_case(&c);
        kdata_free(&x);
    }
}

/* Keys given in a non-monotone position order (a block need not be sorted). */
static void test_unsorted_key_positions(void **state)
{
    (void)state;
    const int nq = 100, nk = 150, D = 16;
    for (int causal = 0; causal <= 1; causal++) {
        kdata x;
        kdata_rand(&x, nq, nk, D, 250 + causal, 2.0f);
        x.qpos = iota_from(nq, 25);
        x.kpos = xcalloc((size_t)nk, sizeof(int32_t));
        for (int j = 0; j < nk; j++) x.kpos[j] = (int32_t)((j * 37) % nk); /* a permutation */
        kcase c = case_of("unsorted key positions", &x, nq, nk, D, causal);
        check_case(&c);
        kdata_free(&x);
    }
}

/* Packed sequences: 3 segments of uneven length with ids 0, 1, 2; the same
 * with non-sorted ids (7, 2, 5); and ids scattered at random (0..2). */
static void test_segments(void **state)
{
    (void)state;
    const int L = 257;
    const int cuts[2] = {40, 190};
    for (int kind = 0; kind < 3; kind++) {
        for (int causal = 0; causal <= 1; causal++) {
            int D = kind == 1 ? 64 : 16;
            kdata x;
            kdata_rand(&x, L, L, D, 300 + kind * 2 + causal, 2.0f);
            x.qpos = iota_from(L, 0);
            x.kpos = iota_from(L, 0);
            x.qseg = xcalloc((size_t)L, sizeof(int32_t));
            x.kseg = xcalloc((size_t)L, sizeof(int32_t));
            const int32_t ids[3][3] = {{0, 1, 2}, {7, 2, 5}, {0, 1, 2}};
            for (int i = 0; i < L; i++) {
                int s = i < cuts[0] ? 0 : (i < cuts[1] ? 1 : 2);
                if (kind == 2) s = (int)(ra_rand_u64(333, (uint64_t)i) % 3);
                x.qseg[i] = x.kseg[i] = ids[kind][s];
            }
            const char *names[3] = {"segments sorted ids", "segments ids 7,2,5",
                                    "segments scattered ids"};
            kcase c = case_of(names[kind], &x, L, L, D, causal);
            c.nb = 3 + kind;
            check_case(&c);
            kdata_free(&x);
        }
    }
}

/* Rows that see no key at all. */
static void test_fully_masked(void **state)
{
    (void)state;
    /* (a) causal, every query before every key: everything masked */
    {
        const int nq = 33, nk = 100, D = 16;
        kdata x;
        kdata_rand(&x, nq, nk, D, 400, 2.0f);
        x.qpos = iota_from(nq, 0);
        x.kpos = iota_from(nk, 40);
        kcase c = case_of("all masked (causal)", &x, nq, nk, D, 1);
        check_case(&c);
        kdata_free(&x);
    }
    /* (b) bidirectional, no segment shared between queries and keys */
    {
        const int nq = 7, nk = 33, D = 8;
        kdata x;
        kdata_rand(&x, nq, nk, D, 401, 2.0f);
        x.qpos = iota_from(nq, 0);
        x.kpos = iota_from(nk, 0);
        x.qseg = xcalloc((size_t)nq, sizeof(int32_t));
        x.kseg = xcalloc((size_t)nk, sizeof(int32_t));
        for (int i = 0; i < nq; i++) x.qseg[i] = 5 + (i % 2);
        for (int j = 0; j < nk; j++) x.kseg[j] = j % 3;
        kcase c = case_of("all masked (segments)", &x, nq, nk, D, 0);
        check_case(&c);
        kdata_free(&x);
    }
    /* (c) some rows masked: causal queries 0..299 against keys 150..449, and
     * a segment (id 9) that has no key; the blocks in shuffled order make
     * rows see nothing in early blocks and keys in later ones */
    for (int causal = 0; causal <= 1; causal++) {
        const int nq = 300, nk = 300, D = 64;
        kdata x;
        kdata_rand(&x, nq, nk, D, 402 + causal, 2.0f);
        x.qpos = iota_from(nq, 0);
        x.kpos = iota_from(nk, 150);
        x.qseg = xcalloc((size_t)nq, sizeof(int32_t));
        x.kseg = xcalloc((size_t)nk, sizeof(int32_t));
        for (int i = 0; i < nq; i++) x.qseg[i] = (i % 10 == 3) ? 9 : (i < 200 ? 1 : 2);
        for (int j = 0; j < nk; j++) x.kseg[j] = x.kpos[j] < 200 ? 1 : 2;
        kcase c = case_of("some rows masked", &x, nq, nk, D, causal);
        c.nb = 5;
        check_case(&c);
        kdata_free(&x);
    }
}

/* Extreme logits with exactly representable inputs (the float32 GEMM is then
 * exact). D = 16: columns 0..7 hold +-32 in q (sign per row, sigma_i) and
 * +-32 in k (sign per key, tau_j), columns 8..15 hold values in {-1, -0.5, 0,
 * 0.5, 1}. q.k = 8192 sigma_i tau_j + x with x a multiple of 0.25 in [-8, 8];
 * with scale 1.25 the logits are +-10240 + 1.25 x, all exact in float32.
 * Every row sees logits near +10240 and near -10240 (exp(-20480) underflows),
 * and in segment 1 all keys have tau = +1 so its sigma = -1 rows only see
 * logits near -10240 (lse ~ -1e4). The first variant is the general one
 * (|lse| ~ 1e4: gradients get the lse-rounding bound, see the top comment);
 * the second gives the huge logits only to keys a row cannot use (|lse| of
 * order 10), so the full gradient tolerance applies. */
static void extreme_case(int causal, int variant)
{
    const int nq = 100, nk = 130, D = 16;
    kdata x;
    kdata_rand(&x, nq, nk, D, 500 + causal + 2 * variant, 1.0f);
    for (int i = 0; i < nq; i++) {
        int sigma = (ra_rand_u64(501, (uint64_t)i) & 1) ? 1 : -1;
        for (int d = 0; d < D; d++) {
            float val;
            if (d < 8) val = 32.0f * (float)sigma;
            else val = 0.5f * (float)((int)(ra_rand_u64(502, (uint64_t)(i * D + d)) % 5) - 2);
            x.q[(size_t)i * D + d] = val;
        }
    }
    x.qpos = iota_from(nq, 30);
    x.kpos = iota_from(nk, 0);
    x.qseg = xcalloc((size_t)nq, sizeof(int32_t));
    x.kseg = xcalloc((size_t)nk, sizeof(int32_t));
    for (int i = 0; i < nq; i++) x.qseg[i] = x.qpos[i] < 70 ? 1 : 2;
    for (int j = 0; j < nk; j++) {
        x.kseg[j] = x.kpos[j] < 70 ? 1 : 2;
        int tau = (x.kseg[j] == 1) ? 1 : ((ra_rand_u64(503, (uint64_t)j) & 1) ? 1 : -1);
        for (int d = 0; d < D; d++) {
            float val;
            if (d < 8) val = 32.0f * (float)tau;
            else val = 0.5f * (float)((int)(ra_rand_u64(504, (uint64_t)(j * D + d)) % 5) - 2);
            x.k[(size_t)j * D + d] = val;
        }
    }
    if (variant == 1) {
        /* q big columns all +32, k big columns -32: every logit is about
         * -10240 except for the keys whose big columns are 0 (every 4th), which
         * give logits of a few units; the row max is one of those. */
        for (int i = 0; i < nq; i++)
            for (int d = 0; d < 8; d++) x.q[(size_t)i * D + d] = 32.0f;
        for (int j = 0; j < nk; j++)
            for (int d = 0; d < 8; d++) x.k[(size_t)j * D + d] = (j % 4 == 0) ? 0.0f : -32.0f;
        free(x.qseg), free(x.kseg);
        x.qseg = x.kseg = NULL; /* every row sees key 0 (position 0) */
    }
    kcase c = case_of(variant ? "extreme logits, lse small" : "extreme logits, lse ~1e4", &x, nq,
                      nk, D, causal);
    c.scale = 1.25f;
    c.nb = 4;
    if (variant == 0) {
        /* the lse-rounding bound of the top comment, from the reference lse */
        refres R;
        run_ref(&c, &R);
        double ml = 0.0;
        for (int i = 0; i < nq; i++)
            if (isfinite(R.lse[i]) && fabs(R.lse[i]) > ml) ml = fabs(R.lse[i]);
        refres_free(&R);
        assert_true(ml > 5000.0); /* the case really is extreme */
        c.grad_tol = TOL_GRAD + 4.0 * ml * ldexp(1.0, -24);
    }
    check_case(&c);
    kdata_free(&x);
}

static void test_extreme_logits(void **state)
{
    (void)state;
    for (int causal = 0; causal <= 1; causal++)
        for (int variant = 0; variant <= 1; variant++) extreme_case(causal, variant);
}

/* ra_attn_scratch_floats: positive, and enough for any nq/nk at that D: run
 * big blocks with a guard zone after exactly that many floats. */
static void test_scratch_size(void **state)
{
    (void)state;
    const int Ds[4] = {8, 16, 64, 128};
    for (int t = 0; t < 4; t++) assert_true(ra_attn_scratch_floats(Ds[t]) > 0);
    const int D = 128, nq = 300, nk = 1100, GUARD = 4096;
    size_t ns = ra_attn_scratch_floats(D);
    size_t bytes = ((ns + GUARD) * sizeof(float) + 63) / 64 * 64;
    float *scratch = aligned_alloc(64, bytes);
    assert_non_null(scratch);
    for (size_t i = 0; i < ns; i++) scratch[i] = NAN;
    for (size_t i = ns; i < ns + GUARD; i++) scratch[i] = 12345.0f;
    kdata x;
    kdata_rand(&x, nq, nk, D, 600, 2.0f);
    x.qpos = iota_from(nq, 800);
    x.kpos = iota_from(nk, 0);
    float *o = xcalloc((size_t)nq * D, sizeof(float)), *m = xcalloc(nq, sizeof(float));
    float *l = xcalloc(nq, sizeof(float)), *lse = xcalloc(nq, sizeof(float));
    float *dl = xcalloc(nq, sizeof(float)), *dq = xcalloc((size_t)nq * D, sizeof(float));
    float *dk = xcalloc((size_t)nk * D, sizeof(float)), *dv = xcalloc((size_t)nk * D, sizeof(float));
    for (int causal = 0; causal <= 1; causal++) {
        ra_attn_opts opt = {.D = D, .scale = 0.125f, .causal = causal};
        ra_rows qr = {.n = nq, .pos = x.qpos, .seg = NULL};
        ra_rows kr = {.n = nk, .pos = x.kpos, .seg = NULL};
        ra_attn_fwd_init(nq, D, o, m, l);
        ra_attn_fwd_block(&opt, &qr, x.q, &kr, x.k, x.v, o, m, l, scratch, NULL);
        ra_attn_fwd_finish(nq, D, o, m, l, lse);
        ra_attn_bwd_rowdot(nq, D, o, x.g, dl);
        ra_attn_bwd_block(&opt, &qr, x.q, x.g, lse, dl, &kr, x.k, x.v, dq, dk, dv, scratch, NULL);
        size_t touched = 0;
        for (size_t i = ns; i < ns + GUARD; i++) touched += scratch[i] != 12345.0f;
        printf("  scratch D=%d: %zu floats, causal=%d, guard values overwritten: %zu\n", D, ns,
               causal, touched);
        assert_int_equal(touched, 0);
        assert_int_equal(ref_count_nonfinite_f(o, (size_t)nq * D), 0);
        assert_int_equal(ref_count_nonfinite_f(dk, (size_t)nk * D), 0);
    }
    free(o), free(m), free(l), free(lse), free(dl), free(dq), free(dk), free(dv), free(scratch);
    kdata_free(&x);
}

/* dq, dk, dv accumulate (+=): run the backward on pre-filled gradients and
 * check result = prefill + reference gradient. */
static void test_backward_accumulates(void **state)
{
    (void)state;
    const int nq = 100, nk = 257, D = 64;
    kdata x;
    kdata_rand(&x, nq, nk, D, 700, 2.0f);
    x.qpos = iota_from(nq, 157);
    x.kpos = iota_from(nk, 0);
    kcase c = case_of("accumulate", &x, nq, nk, D, 1);
    refres R;
    run_ref(&c, &R);
    kres r;
    kres_alloc(&r, &c);
    size_t nqd = (size_t)nq * D, nkd = (size_t)nk * D;
    float *p0q = rand_f(701, nqd, 0.5f), *p0k = rand_f(702, nkd, 0.5f);
    float *p0v = rand_f(703, nkd, 0.5f);
    memcpy(r.dq, p0q, nqd * sizeof(float));
    memcpy(r.dk, p0k, nkd * sizeof(float));
    memcpy(r.dv, p0v, nkd * sizeof(float));
    int bound[MAXB + 1];
    int nblk = make_blocks(nk, 3, bound);
    int order[3] = {1, 2, 0};
    run_lib(&c, &r, nblk, bound, order, order);
    const float *xs[3] = {r.dq, r.dk, r.dv}, *p0[3] = {p0q, p0k, p0v};
    const double *rs[3] = {R.dq, R.dk, R.dv};
    size_t ns[3] = {nqd, nkd, nkd};
    for (int t = 0; t < 3; t++) {
        double max_err = 0.0, max_ref = ref_max_abs_d(rs[t], ns[t]);
        for (size_t i = 0; i < ns[t]; i++) {
            double e = fabs((double)xs[t][i] - ((double)p0[t][i] + rs[t][i]));
            if (!(e <= max_err)) max_err = e;
        }
        printf("  accumulate grad %d: max|x - (x0 + ref)| / max|ref| = %.2e\n", t,
               max_err / max_ref);
        assert_true(max_ref > 0.0);
        assert_true(max_err / max_ref <= TOL_GRAD);
    }
    free(p0q), free(p0k), free(p0v);
    kres_free(&r);
    refres_free(&R);
    kdata_free(&x);
}

/* The poll callback: called between tiles of a multi-tile problem, and it
 * does not change any result. */
static void count_poll(void *ctx) { (*(int *)ctx)++; }

static void test_poll_callback(void **state)
{
    (void)state;
    const int nq = 300, nk = 1100, D = 16;
    kdata x;
    kdata_rand(&x, nq, nk, D, 800, 2.0f);
    x.qpos = iota_from(nq, 0);
    x.kpos = iota_from(nk, 0);
    int calls = 0;
    ra_poll poll = {.fn = count_poll, .ctx = &calls};
    kcase c = case_of("poll", &x, nq, nk, D, 0);
    c.poll = &poll;
    c.nb = 1;
    check_case(&c); /* two runs (forward + backward each) */
    printf("  poll called %d times\n", calls);
    assert_true(calls >= 4);
    kdata_free(&x);
}

/* Whole multi-head arrays through the per-(batch, head) kernels, GQA (H = 4,
 * Hkv = 2) with segments: dk, dv of a kv head accumulate over its query
 * heads. Compared with ref_attn_forward/backward on whole arrays. */
static void test_gqa_whole_arrays(void **state)
{
    (void)state;
    const int B = 2, H = 4, Hkv = 2, L = 100, D = 16, G = H / Hkv;
    for (int causal = 0; causal <= 1; causal++) {
        size_t nq = (size_t)B * H * L * D, nk = (size_t)B * Hkv * L * D;
        float *q = rand_f(900 + causal, nq, 2.0f), *k = rand_f(910 + causal, nk, 2.0f);
        float *v = rand_f(920 + causal, nk, 1.0f), *g = rand_f(930 + causal, nq, 1.0f);
        int32_t *seg = xcalloc((size_t)B * L, sizeof(int32_t));
        for (int b = 0; b < B; b++)
            for (int i = 0; i < L; i++) seg[b * L + i] = i < 30 + 20 * b ? 4 : (i < 77 ? 1 : 3);
        int32_t *pos = iota_from(L, 0);
        float *o = xcalloc(nq, sizeof(float)), *lse = xcalloc((size_t)B * H * L, sizeof(float));
        float *dq = xcalloc(nq, sizeof(float)), *dk = xcalloc(nk, sizeof(float));
        float *dv = xcalloc(nk, sizeof(float)), *m = xcalloc(L, sizeof(float));
        float *l = xcalloc(L, sizeof(float)), *dl = xcalloc(L, sizeof(float));
        float *scratch = alloc_scratch(D);
        int bound[MAXB + 1];
        int nblk = make_blocks(L, 3, bound);
        ra_attn_opts opt = {.D = D, .scale = 1.0f / sqrtf((float)D), .causal = causal};
        for (int b = 0; b < B; b++)
            for (int h = 0; h < H; h++) {
                size_t qo = (((size_t)b * H + h) * L) * D, ko = (((size_t)b * Hkv + h / G) * L) * D;
                ra_rows qr = {.n = L, .pos = pos, .seg = seg + b * L};
                ra_attn_fwd_init(L, D, o + qo, m, l);
                for (int t = nblk - 1; t >= 0; t--) {
                    int s = bound[t], e = bound[t + 1];
                    ra_rows kr = {.n = e - s, .pos = pos + s, .seg = seg + b * L + s};
                    ra_attn_fwd_block(&opt, &qr, q + qo, &kr, k + ko + (size_t)s * D,
                                      v + ko + (size_t)s * D, o + qo, m, l, scratch, NULL);
                }
                ra_attn_fwd_finish(L, D, o + qo, m, l, lse + qo / D);
                ra_attn_bwd_rowdot(L, D, o + qo, g + qo, dl);
                for (int t = 0; t < nblk; t++) {
                    int s = bound[t], e = bound[t + 1];
                    ra_rows kr = {.n = e - s, .pos = pos + s, .seg = seg + b * L + s};
                    size_t off = ko + (size_t)s * D;
                    ra_attn_bwd_block(&opt, &qr, q + qo, g + qo, lse + qo / D, dl, &kr, k + off,
                                      v + off, dq + qo, dk + off, dv + off, scratch, NULL);
                }
            }
        ref_attn_cfg cfg = {.B = B, .H = H, .Hkv = Hkv, .L = L, .D = D, .causal = causal,
                            .scale = (double)(1.0f / sqrtf((float)D)), .seg = seg};
        double *qd = ref_widen(q, nq), *kd = ref_widen(k, nk), *vd = ref_widen(v, nk);
        double *gd = ref_widen(g, nq);
        double *ro = ref_zalloc(nq), *rl = ref_zalloc((size_t)B * H * L);
        double *rq = ref_zalloc(nq), *rk = ref_zalloc(nk), *rv = ref_zalloc(nk);
        ref_attn_forward(&cfg, qd, kd, vd, ro, rl);
        ref_attn_backward(&cfg, qd, kd, vd, gd, rq, rk, rv);
        ref_cmp co = ref_compare_f(o, ro, nq), cq = ref_compare_f(dq, rq, nq);
        ref_cmp ck = ref_compare_f(dk, rk, nk), cv = ref_compare_f(dv, rv, nk);
        double el = ref_lse_err_f(lse, rl, (size_t)B * H * L, NULL);
        printf("  gqa B=%d H=%d Hkv=%d L=%d D=%d causal=%d seg: O %.2e lse %.2e dq %.2e dk %.2e "
               "dv %.2e\n",
               B, H, Hkv, L, D, causal, co.norm_err, el, cq.norm_err, ck.norm_err, cv.norm_err);
        assert_true(co.norm_err <= TOL_O);
        assert_true(el <= TOL_LSE);
        assert_true(cq.norm_err <= TOL_GRAD);
        assert_true(ck.norm_err <= TOL_GRAD);
        assert_true(cv.norm_err <= TOL_GRAD);
        free(q), free(k), free(v), free(g), free(seg), free(pos), free(o), free(lse);
        free(dq), free(dk), free(dv), free(m), free(l), free(dl), free(scratch);
        free(qd), free(kd), free(vd), free(gd), free(ro), free(rl), free(rq), free(rk), free(rv);
    }
}

/* ---- vector helpers (src/kernels/vmath.h) -------------------------------- */

/* The exps of the tiles against exp() in float64 of the same float32
 * argument: relative error <= TOL_VEXP (2 ulp) on [-86, 0] and a little
 * above 0 (ra_vexp_tile, through ra_exp1_neg, ra_exp_shift_sum and
 * ra_exp_shift2, plus 1.34e-8 |arg| from log2 e's rounding to float32;
 * below -86 exactly 0 when masked, else at most exp(-86)). ra_rowmax exactly the scalar max; the sum of ra_exp_shift_sum
 * within TOL_VSUM of the float64 sum of its own outputs. Row lengths 0..70
 * and 511..515 (tails that are not a multiple of the vector width), rows
 * with -inf entries, all--inf rows, and logits of magnitude up to 1e4 (most
 * of a row underflows) and 3e38 (rowmax). */
#define TOL_VEXP (2.0 * 0x1p-23)
#define TOL_VSUM 4e-6
/* ln 2 |log2 e - (float)log2 e| = 1.335e-8: ra_vexp_tile's y log2 e */
#define TOL_VEXP_L2E 1.34e-8

/* what an exp may return for arg (masked: exactly 0 below -86) */
static void check_exp_rule(float got, float arg, int masked)
{
    if (arg < -86.0f) { /* also -inf */
        if (masked ? got != 0.0f : !(got >= 0.0f && got <= (1.0 + TOL_VEXP + 86.0 * TOL_VEXP_L2E) * exp(-86.0))) {
            fprintf(stderr, "exp(%.9g) (masked %d): got %.9g\n", (double)arg, masked, (double)got);
            fail();
        }
        return;
    }
    double ref = exp((double)arg);
    double tol = TOL_VEXP + TOL_VEXP_L2E * fabs((double)arg);
    if (fabs((double)got - ref) > tol * ref) {
        fprintf(stderr, "exp(%.9g) (masked %d): got %.9g, want %.9g\n", (double)arg, masked, (double)got, ref);
        fail();
    }
}


/* ra_vexp_tile over a sweep and the edges, both rules */
static void check_vexp_tile(void)
{
    static const float edges[] = {0.0f, -0.0f, 1e-30f, 1e-6f, -1e-30f, -1e-6f, -0.34657359f, 0.5f, -0.5f,
                                  -1.0f, -85.99f, -86.0f, -86.01f, -87.0f, -100.0f, -1e30f, -INFINITY};
    for (int masked = 0; masked < 2; masked++) {
        for (int i = 0; i < (int)(sizeof edges / sizeof edges[0]); i++)
            check_exp_rule(ra_vexp_tile(ra_vsplat(edges[i]), masked)[0], edges[i], masked);
        for (int i = 0; i <= 200000; i++) {
            float x = -86.0f + 86.001f * (float)i / 200000.0f; /* up to +1e-3 */
            check_exp_rule(ra_vexp_tile(ra_vsplat(x), masked)[0], x, masked);
        }
        assert_true(ra_vexp_tile(ra_vsplat(0.0f), masked)[0] == 1.0f); /* the row max's weight */
        assert_true(isnan(ra_vexp_tile(ra_vsplat(NAN), masked)[0]));
    }
}

static void test_vmath_helpers(void **state)
{
    (void)state;
    /* ra_vexp_tile by both rules; ra_exp1_neg (the rescale) is its masked
     * one, lane 0 */
    check_vexp_tile();
    static const float rescale[] = {0.0f, -1e-6f, -1.0f, -86.0f, -86.01f, -1e30f, -INFINITY};
    for (int i = 0; i < (int)(sizeof rescale / sizeof rescale[0]); i++)
        check_exp_rule(ra_exp1_neg(rescale[i]), rescale[i], 1);

    float *x = xcalloc(600, sizeof(float)), *y = xcalloc(600, sizeof(float));
    int lens[80], nl = 0;
    for (int n = 0; n <= 70; n++) lens[nl++] = n;
    for (int n = 511; n <= 515; n++) lens[nl++] = n;
    for (int kind = 0; kind < 5; kind++) {
        for (int t = 0; t < nl; t++) {
            int n = lens[t];
            for (int j = 0; j < n; j++) {
                float u = ra_rand_uniform(900 + kind, (uint64_t)(t * 1000 + j)); /* [-1, 1) */
                switch (kind) {
                case 0: x[j] = 8.0f * u; break;                              /* ordinary logits */
                case 1: x[j] = 1e4f * u; break;                              /* most underflow */
                case 2: x[j] = (j % 3 == 1) ? -INFINITY : 4.0f * u; break;   /* masked entries */
                case 3: x[j] = -INFINITY; break;                             /* all masked */
                default: x[j] = 3e38f * u; break;                            /* huge (max only) */
                }
            }
            float m = -INFINITY;
            for (int j = 0; j < n; j++) m = x[j] > m ? x[j] : m;
            assert_true(ra_rowmax(x, n) == m || (m == 0.0f && ra_rowmax(x, n) == 0.0f));
            if (kind == 4) continue;
            /* the shift is the row max, or 1.5 for an all -inf (or empty) row */
            float sh = m == -INFINITY ? 1.5f : m;
            for (int masked = 0; masked < 2; masked++) {
                memcpy(y, x, sizeof(float) * (size_t)n);
                y[n] = 12345.0f; /* past the row: untouched */
                float sum = masked ? ra_exp_shift_sum(y, n, sh, 1) : ra_exp_shift_sum(y, n, sh, 0);
                assert_true(y[n] == 12345.0f);
                double ref = 0.0;
                for (int j = 0; j < n; j++) {
                    check_exp_rule(y[j], x[j] - sh, masked);
                    ref += y[j];
                }
                assert_true(fabs((double)sum - ref) <= TOL_VSUM * ref);
            }
            /* two-part shift: exp((x - hi) - lo) */
            float lo = 0.75f;
            for (int masked = 0; masked < 2; masked++) {
                memcpy(y, x, sizeof(float) * (size_t)n);
                if (masked) ra_exp_shift2(y, n, sh, lo, 1);
                else ra_exp_shift2(y, n, sh, lo, 0);
                assert_true(y[n] == 12345.0f);
                for (int j = 0; j < n; j++) check_exp_rule(y[j], (x[j] - sh) - lo, masked);
            }
        }
    }
    /* ra_exp_shift2 clamps its argument at 88: an lse below the logits
     * gives large finite values, as ra_vexp would */
    for (int masked = 0; masked < 2; masked++) {
        for (int j = 0; j < 20; j++) x[j] = 100.0f + (float)j;
        if (masked) ra_exp_shift2(x, 20, 0.0f, 0.0f, 1);
        else ra_exp_shift2(x, 20, 0.0f, 0.0f, 0);
        for (int j = 0; j < 20; j++) assert_true(isfinite(x[j]) && x[j] > 1e38f);
    }
    free(x), free(y);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bidirectional_sizes),
        cmocka_unit_test(test_causal_sizes),
        cmocka_unit_test(test_cross_blocks),
        cmocka_unit_test(test_unsorted_key_positions),
        cmocka_unit_test(test_segments),
        cmocka_unit_test(test_fully_masked),
        cmocka_unit_test(test_extreme_logits),
        cmocka_unit_test(test_scratch_size),
        cmocka_unit_test(test_backward_accumulates),
        cmocka_unit_test(test_poll_callback),
        cmocka_unit_test(test_gqa_whole_arrays),
        cmocka_unit_test(test_vmath_helpers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
