/* test_ring_mpi.c - ring attention over MPI_COMM_WORLD against (a) the same
 * ring on MPI_COMM_SELF (one rank, whole sequence) and (b) the float64
 * reference (tests/common/ref_attn.c).
 *
 * Every rank generates the WHOLE inputs of a case deterministically with
 * ra_rand_uniform, computes the single-rank result and the reference, then
 * runs the ring on its own slab (the global indices of ra_layout_positions)
 * and compares its rows of O, LSE, dQ, dK, dV with both.
 *
 * Tolerances (vs single-rank and vs reference alike):
 *   O        max over local rows |x - ref| / max over the whole tensor |ref|  <= 1e-5
 *   lse      |x - ref| / max(1, |ref|)                                         <= 1e-4
 *   dQ,dK,dV normalised as O (whole local slab, incl. all of dK, dV)          <= 1e-4
 *            (dQ, dK normaliser floored at 1e-2 * a * max|dO_i| * max|v_j| *
 *            max|k| (resp. |q|): when the true dQ, dK vanish - L = 1, one
 *            visible key - float32 leaves rounding of that size.)
 * Every case also calls forward + backward a second time on the same ring
 * (buffers reused) and checks that result against the reference too.
 * Also checked: ra_ring_local_len / ra_ring_positions against the layout
 * formulas of docs/design.md §3 computed here independently, that the layouts
 * partition [0, L) across the ranks, no NaN/inf, and bytes moved when P > 1.
 *
 * The cases run under tests/common/mpi_harness.h: MH_CHECK prints file:line,
 * rank and the numbers; every rank agrees on each case's verdict; rank 0
 * prints one line per case and "N passed, M failed" (cases); the exit code
 * is non-zero on any failure.
 *
 *   mpirun --oversubscribe -n 3 ./test_ring_mpi
 */
#include <math.h>
#include <mpi.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mpi_harness.h"
#include "ref_attn.h"
#include "ringattn/layout.h"
#include "ringattn/ring.h"
#include "ringattn/rng.h"
#include "ringattn/status.h"

#define TOL_O 1e-5
#define TOL_LSE 1e-4
#define TOL_GRAD 1e-4

static int g_rank, g_P;
static const char *g_case = ""; /* the current case's name, for messages */
static long long g_lr_min, g_lr_max; /* tokens per rank in the current case */
static int g_repeat_diff; /* cases where a second call was not bitwise identical */

/* seg kinds */
enum { SEG_NONE, SEG_PACKED, SEG_UNSORTED };

typedef struct {
    int64_t L;    /* < 0: -L is an offset from P (L = P + (-L) - 1), see resolve_L */
    int B, H, Hkv, D;
    int causal;
    ra_layout layout;
    int chunk;
    float scale;  /* 0: 1/sqrt(D) */
    int seg;
    int extreme;  /* q, k small integers (exact in float32) and logits up to ~1e4 */
} tcase;

/* L values that depend on P: LP0 = P, LP1 = P + 1 */
#define LP0 (-1)
#define LP1 (-2)

static int64_t resolve_L(int64_t L, int P)
{
    if (L == LP0) return P;
    if (L == LP1) return P + 1;
    return L;
}

static const tcase cases[] = {
    /* every layout x causal / bidirectional, L = 37 (odd, not divisible by P, 2P) */
    {.L = 37, .B = 1, .H = 2, .Hkv = 2, .D = 16, .causal = 0, .layout = RA_LAYOUT_CONTIGUOUS},
    {.L = 37, .B = 1, .H = 2, .Hkv = 2, .D = 16, .causal = 1, .layout = RA_LAYOUT_CONTIGUOUS},
    {.L = 37, .B = 1, .H = 2, .Hkv = 2, .D = 16, .causal = 0, .layout = RA_LAYOUT_ZIGZAG},
    {.L = 37, .B = 1, .H = 2, .Hkv = 2, .D = 16, .causal = 1, .layout = RA_LAYOUT_ZIGZAG},
    {.L = 37, .B = 1, .H = 2, .Hkv = 2, .D = 16, .causal = 0, .layout = RA_LAYOUT_STRIPED},
    {.L = 37, .B = 1, .H = 2, .Hkv = 2, .D = 16, .causal = 1, .layout = RA_LAYOUT_STRIPED},
    /* the smallest lengths: L = 1 (P = 1 only), L = P, L = P + 1 */
    {.L = 1, .B = 1, .H = 1, .Hkv = 1, .D = 8, .causal = 1, .layout = RA_LAYOUT_ZIGZAG},
    {.L = 1, .B = 1, .H = 1, .Hkv = 1, .D = 8, .causal = 0, .layout = RA_LAYOUT_CONTIGUOUS},
    {.L = LP0, .B = 1, .H = 2, .Hkv = 1, .D = 8, .causal = 1, .layout = RA_LAYOUT_CONTIGUOUS},
    {.L = LP0, .B = 1, .H = 2, .Hkv = 2, .D = 8, .causal = 1, .layout = RA_LAYOUT_ZIGZAG},
    {.L = LP0, .B = 1, .H = 2, .Hkv = 2, .D = 8, .causal = 0, .layout = RA_LAYOUT_STRIPED},
    {.L = LP1, .B = 1, .H = 2, .Hkv = 2, .D = 8, .causal = 1, .layout = RA_LAYOUT_ZIGZAG},
    {.L = LP1, .B = 1, .H = 2, .Hkv = 2, .D = 8, .causal = 1, .layout = RA_LAYOUT_STRIPED},
    {.L = LP1, .B = 1, .H = 2, .Hkv = 2, .D = 8, .causal = 0, .layout = RA_LAYOUT_CONTIGUOUS},
    /* GQA and MQA */
    {.L = 64, .B = 1, .H = 4, .Hkv = 2, .D = 32, .causal = 1, .layout = RA_LAYOUT_ZIGZAG},
    {.L = 64, .B = 1, .H = 4, .Hkv = 2, .D = 32, .causal = 0, .layout = RA_LAYOUT_STRIPED},
    {.L = 129, .B = 1, .H = 4, .Hkv = 1, .D = 16, .causal = 0, .layout = RA_LAYOUT_CONTIGUOUS},
    {.L = 129, .B = 1, .H = 4, .Hkv = 1, .D = 16, .causal = 1, .layout = RA_LAYOUT_ZIGZAG},
    /* B = 2, packed sequences crossing rank boundaries */
    {.L = 200, .B = 2, .H = 2, .Hkv = 2, .D = 16, .causal = 1, .layout = RA_LAYOUT_ZIGZAG, .seg = SEG_PACKED},
    {.L = 200, .B = 2, .H = 2, .Hkv = 1, .D = 16, .causal = 0, .layout = RA_LAYOUT_CONTIGUOUS, .seg = SEG_PACKED},
    {.L = 129, .B = 2, .H = 4, .Hkv = 2, .D = 8, .causal = 1, .layout = RA_LAYOUT_STRIPED, .seg = SEG_PACKED},
    {.L = 129, .B = 2, .H = 2, .Hkv = 2, .D = 16, .causal = 1, .layout = RA_LAYOUT_CONTIGUOUS, .seg = SEG_UNSORTED},
    {.L = 129, .B = 2, .H = 2, .Hkv = 2, .D = 16, .causal = 0, .layout = RA_LAYOUT_ZIGZAG, .seg = SEG_UNSORTED},
    /* tiny chunks: many ring pieces, uneven piece counts */
    {.L = 64, .B = 1, .H = 2, .Hkv = 2, .D = 16, .causal = 1, .layout = RA_LAYOUT_CONTIGUOUS, .chunk = 3},
    {.L = 37, .B = 1, .H = 2, .Hkv = 2, .D = 16, .causal = 0, .layout = RA_LAYOUT_STRIPED, .chunk = 3},
    {.L = 200, .B = 2, .H = 4, .Hkv = 2, .D = 8, .causal = 1, .layout = RA_LAYOUT_ZIGZAG, .chunk = 5, .seg = SEG_PACKED},
    {.L = 129, .B = 1, .H = 2, .Hkv = 1, .D = 16, .causal = 1, .layout = RA_LAYOUT_STRIPED, .chunk = 5},
    /* the backward's last partial goes out in 4 parts of uneven group counts
     * (B*Hkv = 6: 1, 2, 1, 2 groups); 9 groups: 2, 2, 2, 3 */
    {.L = 150, .B = 3, .H = 4, .Hkv = 2, .D = 8, .causal = 1, .layout = RA_LAYOUT_ZIGZAG, .chunk = 11, .seg = SEG_PACKED},
    {.L = 77, .B = 3, .H = 3, .Hkv = 3, .D = 8, .causal = 0, .layout = RA_LAYOUT_CONTIGUOUS, .chunk = 6},
    /* explicit scale */
    {.L = 129, .B = 1, .H = 2, .Hkv = 2, .D = 16, .causal = 1, .layout = RA_LAYOUT_CONTIGUOUS, .scale = 0.3f},
    {.L = 100, .B = 1, .H = 2, .Hkv = 2, .D = 64, .causal = 1, .layout = RA_LAYOUT_ZIGZAG, .chunk = 7, .scale = 0.05f, .seg = SEG_PACKED},
    /* wider heads */
    {.L = 100, .B = 1, .H = 1, .Hkv = 1, .D = 64, .causal = 1, .layout = RA_LAYOUT_ZIGZAG},
    {.L = 64, .B = 1, .H = 1, .Hkv = 1, .D = 128, .causal = 0, .layout = RA_LAYOUT_STRIPED},
    /* longer sequences */
    {.L = 1000, .B = 1, .H = 2, .Hkv = 2, .D = 16, .causal = 1, .layout = RA_LAYOUT_ZIGZAG},
    {.L = 1000, .B = 1, .H = 2, .Hkv = 1, .D = 8, .causal = 0, .layout = RA_LAYOUT_STRIPED},
    {.L = 1000, .B = 1, .H = 1, .Hkv = 1, .D = 16, .causal = 1, .layout = RA_LAYOUT_CONTIGUOUS, .chunk = 64, .seg = SEG_PACKED},
    /* extreme logits (|score| up to ~1e4, |lse| ~ 1e4): the backward must use
     * the forward's exact row statistics, not the rounded float32 lse */
    {.L = 97, .B = 1, .H = 2, .Hkv = 2, .D = 16, .causal = 1, .layout = RA_LAYOUT_ZIGZAG, .scale = 80.0f, .extreme = 1},
    {.L = 97, .B = 1, .H = 2, .Hkv = 1, .D = 16, .causal = 0, .layout = RA_LAYOUT_STRIPED, .chunk = 5, .scale = 80.0f, .seg = SEG_PACKED, .extreme = 1},
};

static float *gen(uint64_t seed, size_t n, float amp)
{
    float *x = mh_xmalloc(n * sizeof *x);
    for (size_t i = 0; i < n; i++) x[i] = amp * ra_rand_uniform(seed, i);
    return x;
}

/* The layout of docs/design.md §3, written here independently of layout.c. */
static int64_t expect_positions(ra_layout lay, int64_t L, int P, int r, int32_t *pos)
{
    int64_t n = 0;
    switch (lay) {
    case RA_LAYOUT_CONTIGUOUS:
        for (int64_t i = r * L / P; i < (r + 1) * L / P; i++) pos[n++] = (int32_t)i;
        break;
    case RA_LAYOUT_ZIGZAG: {
        int64_t c2 = 2 * (int64_t)P - 1 - r;
        for (int64_t i = r * L / (2 * P); i < (r + 1) * L / (2 * P); i++) pos[n++] = (int32_t)i;
        for (int64_t i = c2 * L / (2 * P); i < (c2 + 1) * L / (2 * P); i++)
            pos[n++] = (int32_t)i;
        break;
    }
    case RA_LAYOUT_STRIPED:
        for (int64_t i = r; i < L; i += P) pos[n++] = (int32_t)i;
        break;
    }
    return n;
}

/* rows [B][Hh][L][D] -> local slab [B][Hh][Lr][D] (float) */
static void slab_f(float *dst, const float *src, int B, int Hh, int64_t L, int64_t Lr, int D,
                   const int32_t *pos)
{
    for (int b = 0; b < B; b++)
        for (int h = 0; h < Hh; h++)
            for (int64_t i = 0; i < Lr; i++)
                memcpy(dst + (((size_t)b * Hh + h) * Lr + i) * D,
                       src + (((size_t)b * Hh + h) * L + pos[i]) * D, sizeof(float) * D);
}

static void slab_d(double *dst, const double *src, int B, int Hh, int64_t L, int64_t Lr, int D,
                   const int32_t *pos)
{
    for (int b = 0; b < B; b++)
        for (int h = 0; h < Hh; h++)
            for (int64_t i = 0; i < Lr; i++)
                memcpy(dst + (((size_t)b * Hh + h) * Lr + i) * D,
                       src + (((size_t)b * Hh + h) * L + pos[i]) * D, sizeof(double) * D);
}

static double max_row_norm_f(const float *x, size_t rows, int D)
{
    double m = 0.0;
    for (size_t i = 0; i < rows; i++) {
        double s = 0.0;
        for (int d = 0; d < D; d++) s += (double)x[i * D + d] * x[i * D + d];
        if (s > m) m = s;
    }
    return sqrt(m);
}

/* local slab x (float) vs reference slab (double); normalised by the whole
 * tensor's max|ref| (given), floored */
static double slab_err(const float *x, const double *ref, size_t n, double whole_max,
                       double floor, size_t *worst)
{
    ref_cmp c = ref_compare_f(x, ref, n);
    double den = whole_max > floor ? whole_max : floor;
    if (den < REF_TINY) den = REF_TINY;
    if (worst) *worst = c.worst;
    return c.max_err / den;
}

typedef struct {
    double o, lse, dq, dk, dv;
} errs;

/* x, ref: local slab [B][Hh][Lr][D] (D = 1 for lse); worst: flat index */
static void print_worst(const char *what, const char *tensor, const float *x, const double *ref,
                        size_t worst, double err, double tol, int Hh, int64_t Lr, int D,
                        const int32_t *pos)
{
    size_t d = worst % D, i = (worst / D) % (size_t)Lr, bh = worst / D / (size_t)Lr;
    fprintf(stderr,
            "    [rank %d/%d] case '%s' %s %s: error %.3e > %.1e at [b %zu][h %zu][local %zu = "
            "global %d][d %zu]: got %.9g, expected %.9g\n",
            g_rank, g_P, g_case, what, tensor, err, tol, bh / Hh, bh % Hh, i, (int)pos[i], d,
            (double)x[worst], ref[worst]);
}

/* Compare the ring's local slab with a whole-sequence result (ref*, double). */
static errs compare_slab(const char *what, const tcase *c, int64_t L, int64_t Lr,
                         const int32_t *pos, const float *o, const float *lse, const float *dq,
                         const float *dk, const float *dv, const double *ro, const double *rl,
                         const double *rq, const double *rk, const double *rv, double fq,
                         double fk)
{
    const int B = c->B, H = c->H, Hkv = c->Hkv, D = c->D;
    size_t nqw = (size_t)B * H * L * D, nkw = (size_t)B * Hkv * L * D;
    size_t nql = (size_t)B * H * Lr * D, nkl = (size_t)B * Hkv * Lr * D;
    double *so = mh_xmalloc(nql * sizeof(double)), *sq = mh_xmalloc(nql * sizeof(double));
    double *sk = mh_xmalloc(nkl * sizeof(double)), *sv = mh_xmalloc(nkl * sizeof(double));
    double *sl = mh_xmalloc((size_t)B * H * Lr * sizeof(double));
    slab_d(so, ro, B, H, L, Lr, D, pos);
    slab_d(sq, rq, B, H, L, Lr, D, pos);
    slab_d(sk, rk, B, Hkv, L, Lr, D, pos);
    slab_d(sv, rv, B, Hkv, L, Lr, D, pos);
    slab_d(sl, rl, B, H, L, Lr, 1, pos);
    errs e;
    size_t w;
    e.o = slab_err(o, so, nql, ref_max_abs_d(ro, nqw), 0.0, &w);
    if (!(e.o <= TOL_O)) print_worst(what, "O", o, so, w, e.o, TOL_O, H, Lr, D, pos);
    e.lse = ref_lse_err_f(lse, sl, (size_t)B * H * Lr, &w);
    if (!(e.lse <= TOL_LSE)) print_worst(what, "lse", lse, sl, w, e.lse, TOL_LSE, H, Lr, 1, pos);
    e.dq = slab_err(dq, sq, nql, ref_max_abs_d(rq, nqw), fq, &w);
    if (!(e.dq <= TOL_GRAD)) print_worst(what, "dQ", dq, sq, w, e.dq, TOL_GRAD, H, Lr, D, pos);
    e.dk = slab_err(dk, sk, nkl, ref_max_abs_d(rk, nkw), fk, &w);
    if (!(e.dk <= TOL_GRAD)) print_worst(what, "dK", dk, sk, w, e.dk, TOL_GRAD, Hkv, Lr, D, pos);
    e.dv = slab_err(dv, sv, nkl, ref_max_abs_d(rv, nkw), 0.0, &w);
    if (!(e.dv <= TOL_GRAD)) print_worst(what, "dV", dv, sv, w, e.dv, TOL_GRAD, Hkv, Lr, D, pos);
    free(so), free(sq), free(sk), free(sv), free(sl);
    return e;
}

/* Returns 1 if the case ran (0 if skipped because L < P). */
static int run_case(int ci, const tcase *c, errs *vs_single, errs *vs_ref, double *seconds)
{
    const int P = g_P, r = g_rank;
    const int64_t L = resolve_L(c->L, P);
    if (L < P) return 0;
    const int B = c->B, H = c->H, Hkv = c->Hkv, D = c->D;
    const size_t nq = (size_t)B * H * L * D, nk = (size_t)B * Hkv * L * D;
    const uint64_t seed = 1000 + 16 * (uint64_t)ci;

    /* whole inputs, identical on every rank */
    float *q = gen(seed + 1, nq, 2.0f), *k = gen(seed + 2, nk, 2.0f);
    float *v = gen(seed + 3, nk, 1.0f), *dout = gen(seed + 4, nq, 1.0f);
    if (c->extreme) { /* q in [-8, 8], k in {-1, 0, 1}: logits exact multiples of the
                         scale (80), up to ~1e4, with many exact ties, so that lse = m +
                         log(ties) is not representable near 1e4 */
        for (size_t i = 0; i < nq; i++) q[i] = roundf(4.0f * q[i]);
        for (size_t i = 0; i < nk; i++) k[i] = roundf(0.6f * k[i]);
    }
    int32_t *seg = NULL;
    if (c->seg != SEG_NONE) {
        seg = mh_xmalloc((size_t)B * L * sizeof *seg);
        for (int b = 0; b < B; b++) {
            /* uneven packed sequences; cut points differ per batch row */
            int64_t c1 = L / 5 + b * 3, c2 = (3 * L) / 5 + b, c3 = L - L / 8;
            for (int64_t i = 0; i < L; i++) {
                int s = i < c1 ? 0 : (i < c2 ? 1 : (i < c3 ? 2 : 3));
                if (c->seg == SEG_UNSORTED) {
                    static const int32_t ids[4] = {5, 1, 3, 0}; /* not increasing */
                    s = ids[s];
                    if (ra_rand_u64(seed + 5, (uint64_t)(b * L + i)) % 7 == 0) s = 1; /* scattered */
                }
                seg[(size_t)b * L + i] = s;
            }
        }
    }
    ra_ring_opts opts = {.B = B, .H = H, .Hkv = Hkv, .D = D, .L = L, .scale = c->scale,
                         .causal = c->causal, .layout = c->layout, .chunk = c->chunk};
    const double a = c->scale ? (double)c->scale : 1.0 / sqrt((double)D);

    /* float64 reference on the whole sequence */
    ref_attn_cfg rc = {.B = B, .H = H, .Hkv = Hkv, .L = (int)L, .D = D, .causal = c->causal,
                       .scale = a, .seg = seg};
    double *qd = ref_widen(q, nq), *kd = ref_widen(k, nk), *vd = ref_widen(v, nk);
    double *gd = ref_widen(dout, nq);
    double *ro = ref_zalloc(nq), *rl = ref_zalloc((size_t)B * H * L);
    double *rq = ref_zalloc(nq), *rk = ref_zalloc(nk), *rv = ref_zalloc(nk);
    ref_attn_forward(&rc, qd, kd, vd, ro, rl);
    ref_attn_backward(&rc, qd, kd, vd, gd, rq, rk, rv);
    free(qd), free(kd), free(vd), free(gd);
    double t_vm = a * max_row_norm_f(dout, (size_t)B * H * L, D) *
                  max_row_norm_f(v, (size_t)B * Hkv * L, D);
    double fq = 1e-2 * t_vm * ref_max_abs_f(k, nk), fk = 1e-2 * t_vm * ref_max_abs_f(q, nq);

    /* single rank: the same ring on MPI_COMM_SELF */
    float *o1 = mh_xmalloc(nq * sizeof(float)), *l1 = mh_xmalloc((size_t)B * H * L * sizeof(float));
    float *dq1 = mh_xmalloc(nq * sizeof(float)), *dk1 = mh_xmalloc(nk * sizeof(float));
    float *dv1 = mh_xmalloc(nk * sizeof(float));
    int ok1 = 1;
    {
        ra_ring *ring1 = NULL;
        ra_status s = ra_ring_create(&ring1, &opts, MPI_COMM_SELF);
        MH_CHECK(s == RA_OK, "ra_ring_create(MPI_COMM_SELF): %s (%s)", ra_last_error(),
              ra_last_error_where());
        if (s == RA_OK) {
            MH_CHECK(ra_ring_local_len(ring1) == L, "P=1 local len %lld, L %lld",
                  (long long)ra_ring_local_len(ring1), (long long)L);
            s = ra_ring_forward(ring1, q, k, v, seg, o1, l1);
            MH_CHECK(s == RA_OK, "single-rank forward: %s (%s)", ra_last_error(),
                  ra_last_error_where());
            if (s == RA_OK) {
                s = ra_ring_backward(ring1, q, k, v, seg, o1, l1, dout, dq1, dk1, dv1);
                MH_CHECK(s == RA_OK, "single-rank backward: %s (%s)", ra_last_error(),
                      ra_last_error_where());
            }
            ra_ring_destroy(ring1);
        }
        ok1 = s == RA_OK;
    }

    /* the ring on MPI_COMM_WORLD; stop together if creation fails anywhere */
    ra_ring *ring = NULL;
    ra_status s = ra_ring_create(&ring, &opts, MPI_COMM_WORLD);
    MH_CHECK(s == RA_OK, "ra_ring_create(MPI_COMM_WORLD): %s (%s)", ra_last_error(),
          ra_last_error_where());
    int created = s == RA_OK, all_created;
    MPI_Allreduce(&created, &all_created, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
    if (!all_created) {
        if (ring) ra_ring_destroy(ring);
        goto out_inputs;
    }

    /* layout: ours, from the formulas, must match the library's */
    int64_t Lr = ra_ring_local_len(ring);
    int32_t *pos = mh_xmalloc((size_t)(L + 1) * sizeof *pos);
    int32_t *expect = mh_xmalloc((size_t)(L + 1) * sizeof *expect);
    int64_t nexp = expect_positions(c->layout, L, P, r, expect);
    MH_CHECK(Lr == nexp, "local len %lld, layout %s expects %lld (L=%lld P=%d)", (long long)Lr,
          ra_layout_name(c->layout), (long long)nexp, (long long)L, P);
    MH_CHECK(ra_layout_count(c->layout, L, P, r) == nexp, "ra_layout_count %lld, expected %lld",
          (long long)ra_layout_count(c->layout, L, P, r), (long long)nexp);
    /* Lr may be 0: zigzag with L a little above P leaves some ranks without
     * tokens (e.g. P = 4, L = 5: rank 2), and the ring must still work. */
    if (Lr != nexp || Lr < 0 || Lr > L) {
        /* cannot compare rows; keep every rank in step through the collectives */
        Lr = -1;
    } else {
        ra_layout_positions(c->layout, L, P, r, pos);
        const int32_t *rp = ra_ring_positions(ring);
        int bad_pos = 0;
        for (int64_t i = 0; i < Lr; i++) bad_pos += pos[i] != expect[i] || rp[i] != expect[i];
        MH_CHECK(bad_pos == 0, "%d positions differ from the layout formula (layout %s L=%lld)",
              bad_pos, ra_layout_name(c->layout), (long long)L);
        memcpy(pos, expect, (size_t)Lr * sizeof *pos);
    }
    {
        /* the ranks' tokens partition [0, L) */
        int *cover = calloc((size_t)L, sizeof *cover), *all = calloc((size_t)L, sizeof *all);
        for (int64_t i = 0; i < nexp; i++) cover[expect[i]]++;
        MPI_Allreduce(cover, all, (int)L, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
        int64_t badc = 0;
        for (int64_t i = 0; i < L; i++) badc += all[i] != 1;
        MH_CHECK(badc == 0, "%lld global indices not owned by exactly one rank", (long long)badc);
        free(cover), free(all);
    }
    int lr_ok = Lr >= 0, all_lr_ok;
    MPI_Allreduce(&lr_ok, &all_lr_ok, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
    {
        long long lr = Lr, mn, mx;
        MPI_Allreduce(&lr, &mn, 1, MPI_LONG_LONG, MPI_MIN, MPI_COMM_WORLD);
        MPI_Allreduce(&lr, &mx, 1, MPI_LONG_LONG, MPI_MAX, MPI_COMM_WORLD);
        g_lr_min = mn, g_lr_max = mx;
    }
    if (!all_lr_ok) {
        ra_ring_destroy(ring);
        free(pos), free(expect);
        goto out_inputs;
    }

    /* local slabs */
    size_t nql = (size_t)B * H * Lr * D, nkl = (size_t)B * Hkv * Lr * D;
    float *ql = mh_xmalloc(nql * sizeof(float)), *kl = mh_xmalloc(nkl * sizeof(float));
    float *vl = mh_xmalloc(nkl * sizeof(float)), *gl = mh_xmalloc(nql * sizeof(float));
    float *ol = mh_xmalloc(nql * sizeof(float)), *ll = mh_xmalloc((size_t)B * H * Lr * sizeof(float));
    float *dql = mh_xmalloc(nql * sizeof(float)), *dkl = mh_xmalloc(nkl * sizeof(float));
    float *dvl = mh_xmalloc(nkl * sizeof(float));
    int32_t *segl = NULL;
    slab_f(ql, q, B, H, L, Lr, D, pos);
    slab_f(kl, k, B, Hkv, L, Lr, D, pos);
    slab_f(vl, v, B, Hkv, L, Lr, D, pos);
    slab_f(gl, dout, B, H, L, Lr, D, pos);
    if (seg) {
        segl = mh_xmalloc((size_t)B * Lr * sizeof *segl);
        for (int b = 0; b < B; b++)
            for (int64_t i = 0; i < Lr; i++) segl[(size_t)b * Lr + i] = seg[(size_t)b * L + pos[i]];
    }
    /* garbage in the outputs: the ring must overwrite every value */
    for (size_t i = 0; i < nql; i++) ol[i] = dql[i] = NAN;
    for (size_t i = 0; i < nkl; i++) dkl[i] = dvl[i] = NAN;
    for (size_t i = 0; i < (size_t)B * H * Lr; i++) ll[i] = NAN;

    MPI_Barrier(MPI_COMM_WORLD);
    double t0 = MPI_Wtime();
    s = ra_ring_forward(ring, ql, kl, vl, segl, ol, ll);
    MH_CHECK(s == RA_OK, "ra_ring_forward: %s (%s)", ra_last_error(), ra_last_error_where());
    ra_ring_stats st_f = ra_ring_last_stats(ring);
    if (s == RA_OK) {
        s = ra_ring_backward(ring, ql, kl, vl, segl, ol, ll, gl, dql, dkl, dvl);
        MH_CHECK(s == RA_OK, "ra_ring_backward: %s (%s)", ra_last_error(), ra_last_error_where());
    }
    *seconds = MPI_Wtime() - t0;
    ra_ring_stats st_b = ra_ring_last_stats(ring);
    if (P > 1) {
        MH_CHECK(st_f.bytes_sent > 0 && st_b.bytes_sent > 0,
              "no ring bytes sent at P=%d (forward %.0f, backward %.0f)", P, st_f.bytes_sent,
              st_b.bytes_sent);
    }
    if (s == RA_OK) {
        size_t nonfin = ref_count_nonfinite_f(ol, nql) + ref_count_nonfinite_f(dql, nql) +
                        ref_count_nonfinite_f(dkl, nkl) + ref_count_nonfinite_f(dvl, nkl) +
                        ref_count_nonfinite_f(ll, (size_t)B * H * Lr);
        MH_CHECK(nonfin == 0, "%zu NaN/inf values in the ring outputs (every row sees itself)",
              nonfin);
        *vs_ref = compare_slab("vs reference", c, L, Lr, pos, ol, ll, dql, dkl, dvl, ro, rl, rq,
                               rk, rv, fq, fk);
        MH_CHECK(vs_ref->o <= TOL_O, "O vs reference %.3e", vs_ref->o);
        MH_CHECK(vs_ref->lse <= TOL_LSE, "lse vs reference %.3e", vs_ref->lse);
        /* extreme logits: 1e-5, so that a backward using the rounded float32 LSE
         * (3e-5 here) fails; the exact row statistics give about 5e-7 */
        const double tg = c->extreme ? 1e-5 : TOL_GRAD;
        MH_CHECK(vs_ref->dq <= tg, "dQ vs reference %.3e", vs_ref->dq);
        MH_CHECK(vs_ref->dk <= tg, "dK vs reference %.3e", vs_ref->dk);
        MH_CHECK(vs_ref->dv <= tg, "dV vs reference %.3e", vs_ref->dv);
        if (ok1) {
            double *w[5];
            w[0] = ref_widen(o1, nq), w[1] = ref_widen(l1, (size_t)B * H * L);
            w[2] = ref_widen(dq1, nq), w[3] = ref_widen(dk1, nk), w[4] = ref_widen(dv1, nk);
            *vs_single = compare_slab("vs single rank", c, L, Lr, pos, ol, ll, dql, dkl, dvl,
                                      w[0], w[1], w[2], w[3], w[4], fq, fk);
            MH_CHECK(vs_single->o <= TOL_O, "O vs single rank %.3e", vs_single->o);
            MH_CHECK(vs_single->lse <= TOL_LSE, "lse vs single rank %.3e", vs_single->lse);
            MH_CHECK(vs_single->dq <= TOL_GRAD, "dQ vs single rank %.3e", vs_single->dq);
            MH_CHECK(vs_single->dk <= TOL_GRAD, "dK vs single rank %.3e", vs_single->dk);
            MH_CHECK(vs_single->dv <= TOL_GRAD, "dV vs single rank %.3e", vs_single->dv);
            for (int t = 0; t < 5; t++) free(w[t]);
        }
    }
    /* The same ring object again (buffers reused, outputs refilled with NaN):
     * the results must again match the reference; report whether they are
     * bitwise identical to the first call. All ranks decide together. */
    int ok_here = s == RA_OK, ok_all;
    MPI_Allreduce(&ok_here, &ok_all, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
    if (ok_all) {
        size_t nl = (size_t)B * H * Lr;
        float *keep = mh_xmalloc((2 * nql + 2 * nkl + nl) * sizeof(float));
        memcpy(keep, ol, nql * sizeof(float));
        memcpy(keep + nql, dql, nql * sizeof(float));
        memcpy(keep + 2 * nql, dkl, nkl * sizeof(float));
        memcpy(keep + 2 * nql + nkl, dvl, nkl * sizeof(float));
        memcpy(keep + 2 * nql + 2 * nkl, ll, nl * sizeof(float));
        for (size_t i = 0; i < nql; i++) ol[i] = dql[i] = NAN;
        for (size_t i = 0; i < nkl; i++) dkl[i] = dvl[i] = NAN;
        for (size_t i = 0; i < nl; i++) ll[i] = NAN;
        s = ra_ring_forward(ring, ql, kl, vl, segl, ol, ll);
        MH_CHECK(s == RA_OK, "repeated ra_ring_forward: %s (%s)", ra_last_error(),
              ra_last_error_where());
        if (s == RA_OK) {
            s = ra_ring_backward(ring, ql, kl, vl, segl, ol, ll, gl, dql, dkl, dvl);
            MH_CHECK(s == RA_OK, "repeated ra_ring_backward: %s (%s)", ra_last_error(),
                  ra_last_error_where());
        }
        if (s == RA_OK) {
            errs e2 = compare_slab("repeat vs reference", c, L, Lr, pos, ol, ll, dql, dkl, dvl,
                                   ro, rl, rq, rk, rv, fq, fk);
            MH_CHECK(e2.o <= TOL_O && e2.lse <= TOL_LSE && e2.dq <= TOL_GRAD &&
                      e2.dk <= TOL_GRAD && e2.dv <= TOL_GRAD,
                  "second call on the same ring: O %.3e lse %.3e dQ %.3e dK %.3e dV %.3e", e2.o,
                  e2.lse, e2.dq, e2.dk, e2.dv);
            g_repeat_diff += memcmp(keep, ol, nql * sizeof(float)) != 0 ||
                             memcmp(keep + nql, dql, nql * sizeof(float)) != 0 ||
                             memcmp(keep + 2 * nql, dkl, nkl * sizeof(float)) != 0 ||
                             memcmp(keep + 2 * nql + nkl, dvl, nkl * sizeof(float)) != 0 ||
                             memcmp(keep + 2 * nql + 2 * nkl, ll, nl * sizeof(float)) != 0;
        }
        free(keep);
    }
    ra_ring_destroy(ring);
    free(ql), free(kl), free(vl), free(gl), free(ol), free(ll), free(dql), free(dkl), free(dvl);
    free(segl), free(pos), free(expect);

out_inputs:
    free(q), free(k), free(v), free(dout), free(seg);
    free(ro), free(rl), free(rq), free(rk), free(rv);
    free(o1), free(l1), free(dq1), free(dk1), free(dv1);
    return 1;
}

static void case_name(char *buf, size_t cap, const void *arg, const mh_ctx *ctx)
{
    const tcase *c = arg;
    snprintf(buf, cap, "#%d L=%lld B=%d H=%d Hkv=%d D=%d %s %s chunk=%d scale=%g seg=%s",
             ctx->index, (long long)resolve_L(c->L, ctx->P), c->B, c->H, c->Hkv, c->D,
             ra_layout_name(c->layout), c->causal ? "causal" : "bidir", c->chunk,
             (double)c->scale,
             c->seg == SEG_NONE ? "none" : (c->seg == SEG_PACKED ? "packed" : "unsorted"));
}

/* One case on every rank; the note: its errors, max over ranks. */
static mh_outcome run(const void *arg, const mh_ctx *ctx)
{
    g_case = ctx->name;
    errs vs_single = {0}, vs_ref = {0};
    g_lr_min = g_lr_max = -1;
    double secs = 0.0;
    if (!run_case(ctx->index, arg, &vs_single, &vs_ref, &secs)) {
        mh_note("L < P");
        return MH_SKIPPED;
    }
    double e[11] = {vs_ref.o, vs_ref.lse, vs_ref.dq, vs_ref.dk, vs_ref.dv, vs_single.o,
                    vs_single.lse, vs_single.dq, vs_single.dk, vs_single.dv, secs};
    double emax[11];
    MPI_Allreduce(e, emax, 11, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
    mh_note("ref %.1e %.1e %.1e %.1e %.1e | single %.1e %.1e %.1e %.1e %.1e | Lr %lld..%lld | "
            "%.3f s",
            emax[0], emax[1], emax[2], emax[3], emax[4], emax[5], emax[6], emax[7], emax[8],
            emax[9], g_lr_min, g_lr_max, emax[10]);
    return MH_RAN;
}

int main(int argc, char **argv)
{
    mh_init(&argc, &argv, "test_ring_mpi");
    g_rank = mh_rank(), g_P = mh_size();
    const size_t ncases = sizeof cases / sizeof cases[0];
    if (g_rank == 0)
        printf("test_ring_mpi: P=%d, %zu cases; errors are max over ranks "
               "(O/lse/dQ/dK/dV, vs reference | vs single rank)\n",
               g_P, ncases);
    mh_run_table(&(mh_table){.cases = cases, .count = ncases, .size = sizeof cases[0],
                             .name = case_name, .run = run});
    int repeat_diff = 0;
    MPI_Allreduce(&g_repeat_diff, &repeat_diff, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
    if (g_rank == 0)
        printf("test_ring_mpi: a second call on the same ring was bitwise identical in %s "
               "(informational)\n",
               repeat_diff ? "not every case" : "every case");
    return mh_finish();
}
