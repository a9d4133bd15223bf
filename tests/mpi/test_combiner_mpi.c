/* test_combiner_mpi.c - the Combiner heads (heads.h: "combiner-fixed",
 * "combiner-axial", "combiner-logsparse") over MPI_COMM_WORLD against
 *   (a) the same head on MPI_COMM_SELF (one rank, whole sequence), and
 *   (b) the float64 reference of docs/design.md §5 (tests/common/ref_combiner.c):
 *       forward O and LSE always; dQ, dK, dV against the reference's
 *       central-difference gradients (ref_comb_backward_fd_at, step 1e-6 in
 *       double) in the cases marked fd (small sizes only: FD costs one head
 *       forward per input entry). Each rank differentiates only its own slab.
 * Kinds that ra_head_find does not know are skipped (and listed); with every
 * kind skipped the test passes.
 *
 * Every rank generates the WHOLE inputs of a case deterministically with
 * ra_rand_uniform, computes the single-rank result and the reference, then
 * runs the head on its own slab (the global indices of ra_layout_positions)
 * and compares its rows of O, LSE, dQ, dK, dV.
 *
 * Tolerances (docs/design.md §2: float32 with float32-or-better softmax statistics):
 *   O        max over local rows |x - ref| / max over the whole tensor |ref|  <= 1e-5
 *   lse      |x - ref| / max(1, |ref|)                                         <= 1e-4
 *   dQ,dK,dV normalised as O (whole local slab, incl. all of dK, dV)          <= 1e-4
 *            (dQ, dK normaliser floored at 1e-2 * a * max|dO_i| * max|v_j| *
 *            max|k| (resp. |q|), as in test_ring_mpi.c: where the true dQ, dK
 *            vanish - L = 1 - float32 leaves rounding of that size.)
 * The FD reference is exact to ~1e-8 except at an entry whose +-1e-6
 * perturbation crosses an arg-max switch of the max-pooling; the reference
 * counts such entries ("kinks"), which are printed (expected 0 with random
 * inputs).
 * Every case also calls forward + backward a second time on the same head
 * (buffers reused, outputs refilled with NaN) and checks it against the
 * single-rank result; whether it was bitwise identical is reported.
 * combiner-logsparse is causal only: creating it with causal = 0 must fail
 * with RA_ERR_ARG and a message that says "causal".
 *
 * The cases run under tests/common/mpi_harness.h: MH_CHECK prints file:line,
 * rank and the numbers; every rank agrees on each case's verdict; rank 0
 * prints one line per case and "N passed, M failed" (cases); the exit code
 * is non-zero on any failure.
 *
 *   mpirun --oversubscribe -n 3 ./test_combiner_mpi
 */
#include <math.h>
#include <mpi.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mpi_harness.h"
#include "ref_attn.h"
#include "ref_combiner.h"
#include "ringattn/config.h"
#include "ringattn/heads.h"
#include "ringattn/layout.h"
#include "ringattn/rng.h"
#include "ringattn/status.h"

#define TOL_O 1e-5
#define TOL_LSE 1e-4
#define TOL_GRAD 1e-4

static int g_rank, g_P;
static const char *g_case = ""; /* the current case's name, for messages */
static int g_repeat_diff; /* cases where a second call was not bitwise identical */

enum { K_FIXED, K_AXIAL, K_LOGSPARSE, NKINDS };
static const char *const kind_names[NKINDS] = {"combiner-fixed", "combiner-axial",
                                               "combiner-logsparse"};
static const ref_comb_kind ref_kinds[NKINDS] = {REF_COMB_FIXED, REF_COMB_AXIAL,
                                                REF_COMB_LOGSPARSE};

typedef struct {
    int kind;     /* K_* */
    int64_t L;    /* < 0: depends on P, see resolve_L */
    int B, H, Hkv, D;
    int causal;
    ra_layout layout;
    int chunk;
    int param;    /* span (fixed) / row (axial); 0: automatic; < 0: see resolve_param */
    float scale;  /* 0: 1/sqrt(D) */
    int fd;       /* gradients also against the reference's finite differences */
} tcase;

/* L values that depend on P: LP0 = P, LP1 = P + 1 */
#define LP0 (-1)
#define LP1 (-2)
/* span / row values that depend on L: PEQ = L, PBIG = L + 7 */
#define PEQ (-1)
#define PBIG (-2)

static int64_t resolve_L(int64_t L, int P)
{
    if (L == LP0) return P;
    if (L == LP1) return P + 1;
    return L;
}

/* the value given to the head (0 stays 0: automatic) */
static int resolve_param(int param, int64_t L)
{
    if (param == PEQ) return (int)L;
    if (param == PBIG) return (int)L + 7;
    return param;
}

#define CO RA_LAYOUT_CONTIGUOUS
#define ZZ RA_LAYOUT_ZIGZAG
#define ST RA_LAYOUT_STRIPED

static const tcase cases[] = {
    /* ---- combiner-fixed ---- */
    /* every layout x causal / bidirectional; L = 37 = 7*5 + 2: partial last span */
    {.kind = K_FIXED, .L = 37, .B = 1, .H = 2, .Hkv = 2, .D = 8, .causal = 1, .layout = CO, .param = 5, .fd = 1},
    {.kind = K_FIXED, .L = 37, .B = 1, .H = 2, .Hkv = 2, .D = 8, .causal = 0, .layout = CO, .param = 5, .fd = 1},
    {.kind = K_FIXED, .L = 37, .B = 1, .H = 2, .Hkv = 2, .D = 8, .causal = 1, .layout = ZZ, .param = 5, .fd = 1},
    {.kind = K_FIXED, .L = 37, .B = 1, .H = 2, .Hkv = 2, .D = 8, .causal = 0, .layout = ZZ, .param = 5, .fd = 1},
    {.kind = K_FIXED, .L = 37, .B = 1, .H = 2, .Hkv = 2, .D = 8, .causal = 1, .layout = ST, .param = 5, .fd = 1},
    {.kind = K_FIXED, .L = 37, .B = 1, .H = 2, .Hkv = 2, .D = 8, .causal = 0, .layout = ST, .param = 5, .fd = 1},
    /* automatic span ceil(sqrt(L)): 7 for L = 37, 8 for L = 50 */
    {.kind = K_FIXED, .L = 37, .B = 1, .H = 2, .Hkv = 2, .D = 8, .causal = 1, .layout = ZZ, .fd = 1},
    {.kind = K_FIXED, .L = 50, .B = 1, .H = 2, .Hkv = 1, .D = 8, .causal = 0, .layout = ST, .fd = 1},
    /* span 1 (every group one token) and span >= L (no groups: full attention) */
    {.kind = K_FIXED, .L = 37, .B = 1, .H = 2, .Hkv = 2, .D = 8, .causal = 1, .layout = CO, .param = 1, .fd = 1},
    {.kind = K_FIXED, .L = 37, .B = 1, .H = 2, .Hkv = 2, .D = 8, .causal = 0, .layout = ZZ, .param = 1, .fd = 1},
    {.kind = K_FIXED, .L = 37, .B = 1, .H = 2, .Hkv = 2, .D = 8, .causal = 1, .layout = ZZ, .param = PEQ, .fd = 1},
    {.kind = K_FIXED, .L = 37, .B = 1, .H = 2, .Hkv = 2, .D = 8, .causal = 0, .layout = ST, .param = PBIG, .fd = 1},
    /* span 20 > a rank's block (P >= 2), partial last span of 17 */
    {.kind = K_FIXED, .L = 37, .B = 1, .H = 2, .Hkv = 2, .D = 8, .causal = 1, .layout = CO, .param = 20, .fd = 1},
    {.kind = K_FIXED, .L = 37, .B = 1, .H = 2, .Hkv = 2, .D = 8, .causal = 0, .layout = ZZ, .param = 20, .fd = 1},
    {.kind = K_FIXED, .L = 37, .B = 1, .H = 2, .Hkv = 2, .D = 8, .causal = 1, .layout = ST, .param = 13, .fd = 1},
    /* GQA */
    {.kind = K_FIXED, .L = 45, .B = 1, .H = 4, .Hkv = 2, .D = 8, .causal = 1, .layout = ZZ, .param = 6, .fd = 1},
    {.kind = K_FIXED, .L = 45, .B = 1, .H = 4, .Hkv = 2, .D = 8, .causal = 0, .layout = CO, .param = 4, .fd = 1},
    /* the smallest lengths */
    {.kind = K_FIXED, .L = 1, .B = 1, .H = 1, .Hkv = 1, .D = 8, .causal = 1, .layout = ZZ, .fd = 1},
    {.kind = K_FIXED, .L = LP0, .B = 1, .H = 2, .Hkv = 2, .D = 8, .causal = 1, .layout = ZZ, .param = 2, .fd = 1},
    {.kind = K_FIXED, .L = LP1, .B = 1, .H = 2, .Hkv = 2, .D = 8, .causal = 0, .layout = ST, .param = 3, .fd = 1},
    {.kind = K_FIXED, .L = LP1, .B = 1, .H = 2, .Hkv = 1, .D = 8, .causal = 1, .layout = CO, .param = 2, .fd = 1},
    /* explicit scale, tiny chunk */
    {.kind = K_FIXED, .L = 37, .B = 1, .H = 2, .Hkv = 2, .D = 8, .causal = 1, .layout = ST, .chunk = 3, .param = 6, .scale = 0.3f, .fd = 1},
    {.kind = K_FIXED, .L = 40, .B = 2, .H = 2, .Hkv = 2, .D = 4, .causal = 0, .layout = CO, .chunk = 3, .param = 9, .fd = 1},
    /* longer: span (3) far below a rank's block; MQA; B = 2 (forward vs reference,
     * backward vs single rank only) */
    {.kind = K_FIXED, .L = 200, .B = 2, .H = 2, .Hkv = 2, .D = 16, .causal = 1, .layout = ZZ, .param = 3, .fd = 0},
    {.kind = K_FIXED, .L = 200, .B = 1, .H = 4, .Hkv = 2, .D = 16, .causal = 0, .layout = ST, .fd = 0},
    {.kind = K_FIXED, .L = 129, .B = 1, .H = 4, .Hkv = 1, .D = 16, .causal = 1, .layout = CO, .chunk = 5, .param = 16, .fd = 0},
    {.kind = K_FIXED, .L = 150, .B = 1, .H = 2, .Hkv = 2, .D = 16, .causal = 0, .layout = ZZ, .param = 1, .fd = 0},
    {.kind = K_FIXED, .L = 150, .B = 1, .H = 2, .Hkv = 2, .D = 16, .causal = 1, .layout = ST, .param = PBIG, .fd = 0},
    /* peaked softmaxes (scale 1: logits up to ~+-30) and a wide head */
    {.kind = K_FIXED, .L = 30, .B = 1, .H = 2, .Hkv = 2, .D = 8, .causal = 1, .layout = ST, .param = 4, .scale = 1.0f, .fd = 1},
    {.kind = K_FIXED, .L = 64, .B = 1, .H = 2, .Hkv = 2, .D = 8, .causal = 1, .layout = ZZ, .param = 8, .fd = 1},
    {.kind = K_FIXED, .L = 100, .B = 1, .H = 2, .Hkv = 1, .D = 64, .causal = 0, .layout = ZZ, .fd = 0},
    /* ---- combiner-axial ---- */
    /* L = 37 = 6*6 + 1: partial last row of one token */
    {.kind = K_AXIAL, .L = 37, .B = 1, .H = 2, .Hkv = 2, .D = 8, .causal = 1, .layout = CO, .param = 6, .fd = 1},
    {.kind = K_AXIAL, .L = 37, .B = 1, .H = 2, .Hkv = 2, .D = 8, .causal = 0, .layout = CO, .param = 6, .fd = 1},
    {.kind = K_AXIAL, .L = 37, .B = 1, .H = 2, .Hkv = 2, .D = 8, .causal = 1, .layout = ZZ, .param = 6, .fd = 1},
    {.kind = K_AXIAL, .L = 37, .B = 1, .H = 2, .Hkv = 2, .D = 8, .causal = 0, .layout = ZZ, .param = 6, .fd = 1},
    {.kind = K_AXIAL, .L = 37, .B = 1, .H = 2, .Hkv = 2, .D = 8, .causal = 1, .layout = ST, .param = 6, .fd = 1},
    {.kind = K_AXIAL, .L = 37, .B = 1, .H = 2, .Hkv = 2, .D = 8, .causal = 0, .layout = ST, .param = 6, .fd = 1},
    {.kind = K_AXIAL, .L = 37, .B = 1, .H = 2, .Hkv = 2, .D = 8, .causal = 1, .layout = ZZ, .fd = 1},
    {.kind = K_AXIAL, .L = 37, .B = 1, .H = 2, .Hkv = 2, .D = 8, .causal = 0, .layout = CO, .param = 1, .fd = 1},
    {.kind = K_AXIAL, .L = 37, .B = 1, .H = 2, .Hkv = 2, .D = 8, .causal = 1, .layout = ST, .param = PEQ, .fd = 1},
    {.kind = K_AXIAL, .L = 37, .B = 1, .H = 2, .Hkv = 2, .D = 8, .causal = 0, .layout = ZZ, .param = PBIG, .fd = 1},
    {.kind = K_AXIAL, .L = 37, .B = 1, .H = 2, .Hkv = 2, .D = 8, .causal = 1, .layout = CO, .param = 20, .fd = 1},
    {.kind = K_AXIAL, .L = 45, .B = 1, .H = 4, .Hkv = 2, .D = 8, .causal = 1, .layout = ZZ, .param = 7, .fd = 1},
    {.kind = K_AXIAL, .L = 45, .B = 1, .H = 4, .Hkv = 2, .D = 8, .causal = 0, .layout = ST, .param = 4, .fd = 1},
    {.kind = K_AXIAL, .L = 1, .B = 1, .H = 1, .Hkv = 1, .D = 8, .causal = 0, .layout = CO, .fd = 1},
    {.kind = K_AXIAL, .L = LP0, .B = 1, .H = 2, .Hkv = 2, .D = 8, .causal = 1, .layout = ZZ, .param = 2, .fd = 1},
    {.kind = K_AXIAL, .L = LP1, .B = 1, .H = 2, .Hkv = 2, .D = 8, .causal = 0, .layout = ST, .param = 3, .fd = 1},
    {.kind = K_AXIAL, .L = LP1, .B = 1, .H = 2, .Hkv = 1, .D = 8, .causal = 1, .layout = CO, .param = 2, .fd = 1},
    {.kind = K_AXIAL, .L = 37, .B = 1, .H = 2, .Hkv = 2, .D = 8, .causal = 0, .layout = ST, .chunk = 3, .param = 5, .scale = 0.3f, .fd = 1},
    {.kind = K_AXIAL, .L = 200, .B = 2, .H = 2, .Hkv = 2, .D = 16, .causal = 1, .layout = ZZ, .param = 13, .fd = 0},
    {.kind = K_AXIAL, .L = 200, .B = 1, .H = 4, .Hkv = 1, .D = 16, .causal = 0, .layout = CO, .chunk = 5, .fd = 0},
    {.kind = K_AXIAL, .L = 129, .B = 1, .H = 4, .Hkv = 2, .D = 16, .causal = 1, .layout = ST, .param = 3, .fd = 0},
    {.kind = K_AXIAL, .L = 30, .B = 1, .H = 2, .Hkv = 2, .D = 8, .causal = 0, .layout = ZZ, .param = 4, .scale = 1.0f, .fd = 1},
    {.kind = K_AXIAL, .L = 64, .B = 1, .H = 2, .Hkv = 2, .D = 8, .causal = 0, .layout = ST, .param = 8, .fd = 1},
    {.kind = K_AXIAL, .L = 100, .B = 1, .H = 2, .Hkv = 1, .D = 64, .causal = 1, .layout = CO, .fd = 0},
    /* ---- combiner-logsparse (causal only) ---- */
    {.kind = K_LOGSPARSE, .L = 37, .B = 1, .H = 2, .Hkv = 2, .D = 8, .causal = 1, .layout = CO, .fd = 1},
    {.kind = K_LOGSPARSE, .L = 37, .B = 1, .H = 2, .Hkv = 2, .D = 8, .causal = 1, .layout = ZZ, .fd = 1},
    {.kind = K_LOGSPARSE, .L = 37, .B = 1, .H = 2, .Hkv = 2, .D = 8, .causal = 1, .layout = ST, .fd = 1},
    {.kind = K_LOGSPARSE, .L = 32, .B = 1, .H = 4, .Hkv = 2, .D = 8, .causal = 1, .layout = ZZ, .fd = 1},
    {.kind = K_LOGSPARSE, .L = 33, .B = 1, .H = 4, .Hkv = 1, .D = 8, .causal = 1, .layout = CO, .chunk = 3, .scale = 0.3f, .fd = 1},
    {.kind = K_LOGSPARSE, .L = 1, .B = 1, .H = 1, .Hkv = 1, .D = 8, .causal = 1, .layout = ST, .fd = 1},
    {.kind = K_LOGSPARSE, .L = LP0, .B = 1, .H = 2, .Hkv = 2, .D = 8, .causal = 1, .layout = ZZ, .fd = 1},
    {.kind = K_LOGSPARSE, .L = LP1, .B = 1, .H = 2, .Hkv = 2, .D = 8, .causal = 1, .layout = ST, .fd = 1},
    {.kind = K_LOGSPARSE, .L = 200, .B = 2, .H = 2, .Hkv = 2, .D = 16, .causal = 1, .layout = ZZ, .fd = 0},
    {.kind = K_LOGSPARSE, .L = 129, .B = 1, .H = 4, .Hkv = 1, .D = 16, .causal = 1, .layout = ST, .chunk = 5, .fd = 0},
    {.kind = K_LOGSPARSE, .L = 128, .B = 1, .H = 2, .Hkv = 2, .D = 16, .causal = 1, .layout = CO, .fd = 0},
    {.kind = K_LOGSPARSE, .L = 30, .B = 1, .H = 2, .Hkv = 2, .D = 8, .causal = 1, .layout = CO, .scale = 1.0f, .fd = 1},
    {.kind = K_LOGSPARSE, .L = 64, .B = 1, .H = 2, .Hkv = 2, .D = 8, .causal = 1, .layout = ZZ, .fd = 1},
    {.kind = K_LOGSPARSE, .L = 100, .B = 1, .H = 2, .Hkv = 1, .D = 64, .causal = 1, .layout = ST, .fd = 0},
};

static float *gen(uint64_t seed, size_t n, float amp)
{
    float *x = mh_xmalloc(n * sizeof *x);
    for (size_t i = 0; i < n; i++) x[i] = amp * ra_rand_uniform(seed, i);
    return x;
}

/* rows [B][Hh][L][D] -> local slab [B][Hh][Lr][D] */
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

typedef struct {
    double o, lse, dq, dk, dv;
} errs;

/* Forward: the local slab of o, lse against whole-sequence results ro, rl. */
static void compare_fwd(const char *what, const tcase *c, int64_t L, int64_t Lr,
                        const int32_t *pos, const float *o, const float *lse, const double *ro,
                        const double *rl, errs *e)
{
    const int B = c->B, H = c->H, D = c->D;
    size_t nqw = (size_t)B * H * L * D, nql = (size_t)B * H * Lr * D, nll = (size_t)B * H * Lr;
    double *so = mh_xmalloc(nql * sizeof(double)), *sl = mh_xmalloc(nll * sizeof(double));
    slab_d(so, ro, B, H, L, Lr, D, pos);
    slab_d(sl, rl, B, H, L, Lr, 1, pos);
    size_t w;
    e->o = slab_err(o, so, nql, ref_max_abs_d(ro, nqw), 0.0, &w);
    if (!(e->o <= TOL_O)) print_worst(what, "O", o, so, w, e->o, TOL_O, H, Lr, D, pos);
    e->lse = ref_lse_err_f(lse, sl, nll, &w);
    if (!(e->lse <= TOL_LSE)) print_worst(what, "lse", lse, sl, w, e->lse, TOL_LSE, H, Lr, 1, pos);
    free(so), free(sl);
}

/* Backward: the local slabs against whole-size rq, rk, rv (only the entries
 * at this rank's positions are read); wq, wk, wv: max |ref| over the whole
 * tensors (all ranks). */
static void compare_bwd(const char *what, const tcase *c, int64_t L, int64_t Lr,
                        const int32_t *pos, const float *dq, const float *dk, const float *dv,
                        const double *rq, const double *rk, const double *rv, double wq,
                        double wk, double wv, double fq, double fk, errs *e)
{
    const int B = c->B, H = c->H, Hkv = c->Hkv, D = c->D;
    size_t nql = (size_t)B * H * Lr * D, nkl = (size_t)B * Hkv * Lr * D;
    double *sq = mh_xmalloc(nql * sizeof(double)), *sk = mh_xmalloc(nkl * sizeof(double));
    double *sv = mh_xmalloc(nkl * sizeof(double));
    slab_d(sq, rq, B, H, L, Lr, D, pos);
    slab_d(sk, rk, B, Hkv, L, Lr, D, pos);
    slab_d(sv, rv, B, Hkv, L, Lr, D, pos);
    size_t w;
    e->dq = slab_err(dq, sq, nql, wq, fq, &w);
    if (!(e->dq <= TOL_GRAD)) print_worst(what, "dQ", dq, sq, w, e->dq, TOL_GRAD, H, Lr, D, pos);
    e->dk = slab_err(dk, sk, nkl, wk, fk, &w);
    if (!(e->dk <= TOL_GRAD)) print_worst(what, "dK", dk, sk, w, e->dk, TOL_GRAD, Hkv, Lr, D, pos);
    e->dv = slab_err(dv, sv, nkl, wv, 0.0, &w);
    if (!(e->dv <= TOL_GRAD)) print_worst(what, "dV", dv, sv, w, e->dv, TOL_GRAD, Hkv, Lr, D, pos);
    free(sq), free(sk), free(sv);
}

typedef struct {
    errs ref, single, fd, repeat;
    double seconds, bytes;
    int kinks;
    long long lr_min, lr_max;
} result;

static ra_layer_config layer_for(int kind, int param)
{
    ra_config cfg;
    ra_config_defaults(&cfg);
    ra_layer_config l = cfg.layer[0];
    snprintf(l.head, sizeof l.head, "%s", kind_names[kind]);
    if (kind == K_FIXED) l.span = param;
    if (kind == K_AXIAL) l.row = param;
    return l;
}

/* Returns 1 if the case ran (0 if skipped because L < P). */
static int run_case(int ci, const tcase *c, const ra_head_kind *hk, result *res)
{
    const int P = g_P, r = g_rank;
    const int64_t L = resolve_L(c->L, P);
    if (L < P) return 0;
    const int B = c->B, H = c->H, Hkv = c->Hkv, D = c->D;
    const size_t nq = (size_t)B * H * L * D, nk = (size_t)B * Hkv * L * D, nl = (size_t)B * H * L;
    const uint64_t seed = 5000 + 16 * (uint64_t)ci;
    const int param = resolve_param(c->param, L);
    const int eff = param > 0 ? param : ref_comb_auto_len((int)L); /* what the reference uses */

    float *q = gen(seed + 1, nq, 2.0f), *k = gen(seed + 2, nk, 2.0f);
    float *v = gen(seed + 3, nk, 1.0f), *dout = gen(seed + 4, nq, 1.0f);
    ra_layer_config layer = layer_for(c->kind, param);
    ra_head_opts opts = {.ring = {.B = B, .H = H, .Hkv = Hkv, .D = D, .L = L, .scale = c->scale,
                                  .causal = c->causal, .layout = c->layout, .chunk = c->chunk},
                         .layer = &layer};
    const double a = c->scale ? (double)c->scale : 1.0 / sqrt((double)D);

    /* float64 reference forward on the whole sequence */
    ref_comb_cfg rc = {.B = B, .H = H, .Hkv = Hkv, .L = (int)L, .D = D, .causal = c->causal,
                       .scale = a, .kind = ref_kinds[c->kind],
                       .span = c->kind == K_FIXED ? eff : 0,
                       .row = c->kind == K_AXIAL ? eff : 0};
    double *qd = ref_widen(q, nq), *kd = ref_widen(k, nk), *vd = ref_widen(v, nk);
    double *gd = ref_widen(dout, nq);
    double *ro = ref_zalloc(nq), *rl = ref_zalloc(nl);
    ref_comb_forward(&rc, qd, kd, vd, ro, rl);
    double t_vm = a * max_row_norm_f(dout, (size_t)B * H * L, D) *
                  max_row_norm_f(v, (size_t)B * Hkv * L, D);
    double fq = 1e-2 * t_vm * ref_max_abs_f(k, nk), fk = 1e-2 * t_vm * ref_max_abs_f(q, nq);

    /* single rank: the same head on MPI_COMM_SELF */
    float *o1 = mh_xmalloc(nq * sizeof(float)), *l1 = mh_xmalloc(nl * sizeof(float));
    float *dq1 = mh_xmalloc(nq * sizeof(float)), *dk1 = mh_xmalloc(nk * sizeof(float));
    float *dv1 = mh_xmalloc(nk * sizeof(float));
    int ok1 = 0;
    {
        ra_head *h1 = NULL;
        ra_status s = hk->create(&h1, &opts, MPI_COMM_SELF);
        MH_CHECK(s == RA_OK, "%s create(MPI_COMM_SELF): %s (%s)", hk->name, ra_last_error(),
              ra_last_error_where());
        if (s == RA_OK) {
            s = hk->forward(h1, q, k, v, NULL, o1, l1);
            MH_CHECK(s == RA_OK, "single-rank forward: %s (%s)", ra_last_error(),
                  ra_last_error_where());
            if (s == RA_OK) {
                s = hk->backward(h1, q, k, v, NULL, o1, l1, dout, dq1, dk1, dv1);
                MH_CHECK(s == RA_OK, "single-rank backward: %s (%s)", ra_last_error(),
                      ra_last_error_where());
            }
            hk->destroy(h1);
            ok1 = s == RA_OK;
        }
    }
    double *w1[5] = {NULL};
    if (ok1) {
        w1[0] = ref_widen(o1, nq), w1[1] = ref_widen(l1, nl);
        w1[2] = ref_widen(dq1, nq), w1[3] = ref_widen(dk1, nk), w1[4] = ref_widen(dv1, nk);
    }

    /* this rank's tokens */
    const int64_t Lr = ra_layout_count(c->layout, L, P, r);
    int32_t *pos = mh_xmalloc((size_t)(Lr + 1) * sizeof *pos);
    ra_layout_positions(c->layout, L, P, r, pos);
    {
        long long lr = Lr;
        MPI_Allreduce(&lr, &res->lr_min, 1, MPI_LONG_LONG, MPI_MIN, MPI_COMM_WORLD);
        MPI_Allreduce(&lr, &res->lr_max, 1, MPI_LONG_LONG, MPI_MAX, MPI_COMM_WORLD);
    }

    /* FD gradients of the reference at this rank's positions (every rank
     * takes part in the max reductions, fd or not, in the same order) */
    double *fdq = NULL, *fdk = NULL, *fdv = NULL, fdmax[3] = {0, 0, 0};
    if (c->fd) {
        fdq = ref_zalloc(nq), fdk = ref_zalloc(nk), fdv = ref_zalloc(nk);
        int kinks = ref_comb_backward_fd_at(&rc, qd, kd, vd, gd, (int)Lr, pos, fdq, fdk, fdv);
        double m[3] = {ref_max_abs_d(fdq, nq), ref_max_abs_d(fdk, nk), ref_max_abs_d(fdv, nk)};
        MPI_Allreduce(m, fdmax, 3, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
        MPI_Allreduce(&kinks, &res->kinks, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
    }
    free(qd), free(kd), free(vd), free(gd);

    /* the head on MPI_COMM_WORLD; stop together if creation fails anywhere */
    ra_head *hw = NULL;
    ra_status s = hk->create(&hw, &opts, MPI_COMM_WORLD);
    MH_CHECK(s == RA_OK, "%s create(MPI_COMM_WORLD): %s (%s)", hk->name, ra_last_error(),
          ra_last_error_where());
    int created = s == RA_OK, all_created;
    MPI_Allreduce(&created, &all_created, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
    if (!all_created) {
        if (created) hk->destroy(hw);
        goto out;
    }

    size_t nql = (size_t)B * H * Lr * D, nkl = (size_t)B * Hkv * Lr * D, nll = (size_t)B * H * Lr;
    float *ql = mh_xmalloc(nql * sizeof(float)), *kl = mh_xmalloc(nkl * sizeof(float));
    float *vl = mh_xmalloc(nkl * sizeof(float)), *gl = mh_xmalloc(nql * sizeof(float));
    float *ol = mh_xmalloc(nql * sizeof(float)), *ll = mh_xmalloc(nll * sizeof(float));
    float *dql = mh_xmalloc(nql * sizeof(float)), *dkl = mh_xmalloc(nkl * sizeof(float));
    float *dvl = mh_xmalloc(nkl * sizeof(float));
    slab_f(ql, q, B, H, L, Lr, D, pos);
    slab_f(kl, k, B, Hkv, L, Lr, D, pos);
    slab_f(vl, v, B, Hkv, L, Lr, D, pos);
    slab_f(gl, dout, B, H, L, Lr, D, pos);

    for (int rep = 0; rep < 2; rep++) {
        /* garbage in the outputs: the head must overwrite every value */
        float *keep = NULL;
        if (rep == 1) {
            keep = mh_xmalloc((2 * nql + 2 * nkl + nll) * sizeof(float));
            memcpy(keep, ol, nql * sizeof(float));
            memcpy(keep + nql, dql, nql * sizeof(float));
            memcpy(keep + 2 * nql, dkl, nkl * sizeof(float));
            memcpy(keep + 2 * nql + nkl, dvl, nkl * sizeof(float));
            memcpy(keep + 2 * nql + 2 * nkl, ll, nll * sizeof(float));
        }
        for (size_t i = 0; i < nql; i++) ol[i] = dql[i] = NAN;
        for (size_t i = 0; i < nkl; i++) dkl[i] = dvl[i] = NAN;
        for (size_t i = 0; i < nll; i++) ll[i] = NAN;
        MPI_Barrier(MPI_COMM_WORLD);
        double t0 = MPI_Wtime(), bytes = 0.0;
        s = hk->forward(hw, ql, kl, vl, NULL, ol, ll);
        MH_CHECK(s == RA_OK, "%sforward: %s (%s)", rep ? "repeated " : "", ra_last_error(),
              ra_last_error_where());
        if (s == RA_OK && hk->bytes_sent) bytes += hk->bytes_sent(hw);
        if (s == RA_OK) {
            s = hk->backward(hw, ql, kl, vl, NULL, ol, ll, gl, dql, dkl, dvl);
            MH_CHECK(s == RA_OK, "%sbackward: %s (%s)", rep ? "repeated " : "", ra_last_error(),
                  ra_last_error_where());
            if (s == RA_OK && hk->bytes_sent) bytes += hk->bytes_sent(hw);
        }
        if (rep == 0) res->seconds = MPI_Wtime() - t0, res->bytes = bytes;
        int ok_here = s == RA_OK, ok_all;
        MPI_Allreduce(&ok_here, &ok_all, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
        if (ok_here) {
            size_t nonfin = ref_count_nonfinite_f(ol, nql) + ref_count_nonfinite_f(dql, nql) +
                            ref_count_nonfinite_f(dkl, nkl) + ref_count_nonfinite_f(dvl, nkl) +
                            ref_count_nonfinite_f(ll, nll);
            MH_CHECK(nonfin == 0, "%zu NaN/inf values in the outputs (every row sees itself)",
                  nonfin);
        }
        /* whole-tensor maxima of the single-rank gradients (same on every rank) */
        double wq = ok1 ? ref_max_abs_d(w1[2], nq) : 0, wk = ok1 ? ref_max_abs_d(w1[3], nk) : 0;
        double wv = ok1 ? ref_max_abs_d(w1[4], nk) : 0;
        if (rep == 0) {
            if (ok_here) {
                compare_fwd("vs reference", c, L, Lr, pos, ol, ll, ro, rl, &res->ref);
                MH_CHECK(res->ref.o <= TOL_O, "O vs reference %.3e", res->ref.o);
                MH_CHECK(res->ref.lse <= TOL_LSE, "lse vs reference %.3e", res->ref.lse);
                if (c->fd) {
                    compare_bwd("vs reference FD", c, L, Lr, pos, dql, dkl, dvl, fdq, fdk, fdv,
                                fdmax[0], fdmax[1], fdmax[2], fq, fk, &res->fd);
                    MH_CHECK(res->fd.dq <= TOL_GRAD, "dQ vs reference FD %.3e (kinks %d)",
                          res->fd.dq, res->kinks);
                    MH_CHECK(res->fd.dk <= TOL_GRAD, "dK vs reference FD %.3e (kinks %d)",
                          res->fd.dk, res->kinks);
                    MH_CHECK(res->fd.dv <= TOL_GRAD, "dV vs reference FD %.3e (kinks %d)",
                          res->fd.dv, res->kinks);
                }
                if (ok1) {
                    compare_fwd("vs single rank", c, L, Lr, pos, ol, ll, w1[0], w1[1],
                                &res->single);
                    compare_bwd("vs single rank", c, L, Lr, pos, dql, dkl, dvl, w1[2], w1[3],
                                w1[4], wq, wk, wv, fq, fk, &res->single);
                    MH_CHECK(res->single.o <= TOL_O, "O vs single rank %.3e", res->single.o);
                    MH_CHECK(res->single.lse <= TOL_LSE, "lse vs single rank %.3e",
                          res->single.lse);
                    MH_CHECK(res->single.dq <= TOL_GRAD, "dQ vs single rank %.3e", res->single.dq);
                    MH_CHECK(res->single.dk <= TOL_GRAD, "dK vs single rank %.3e", res->single.dk);
                    MH_CHECK(res->single.dv <= TOL_GRAD, "dV vs single rank %.3e", res->single.dv);
                }
            }
        } else {
            if (ok_here && ok1) {
                errs *e2 = &res->repeat;
                compare_fwd("repeat vs single rank", c, L, Lr, pos, ol, ll, w1[0], w1[1], e2);
                compare_bwd("repeat vs single rank", c, L, Lr, pos, dql, dkl, dvl, w1[2], w1[3],
                            w1[4], wq, wk, wv, fq, fk, e2);
                MH_CHECK(e2->o <= TOL_O && e2->lse <= TOL_LSE && e2->dq <= TOL_GRAD &&
                          e2->dk <= TOL_GRAD && e2->dv <= TOL_GRAD,
                      "second call on the same head vs single rank: O %.3e lse %.3e dQ %.3e "
                      "dK %.3e dV %.3e",
                      e2->o, e2->lse, e2->dq, e2->dk, e2->dv);
            }
            if (ok_here)
                g_repeat_diff += memcmp(keep, ol, nql * sizeof(float)) != 0 ||
                                 memcmp(keep + nql, dql, nql * sizeof(float)) != 0 ||
                                 memcmp(keep + 2 * nql, dkl, nkl * sizeof(float)) != 0 ||
                                 memcmp(keep + 2 * nql + nkl, dvl, nkl * sizeof(float)) != 0 ||
                                 memcmp(keep + 2 * nql + 2 * nkl, ll, nll * sizeof(float)) != 0;
            free(keep);
        }
        if (!ok_all) break;
    }
    hk->destroy(hw);
    free(ql), free(kl), free(vl), free(gl), free(ol), free(ll), free(dql), free(dkl), free(dvl);

out:
    free(q), free(k), free(v), free(dout), free(pos);
    free(ro), free(rl), free(fdq), free(fdk), free(fdv);
    free(o1), free(l1), free(dq1), free(dk1), free(dv1);
    for (int t = 0; t < 5; t++) free(w1[t]);
    return 1;
}

/* combiner-logsparse with causal = 0 must be refused: RA_ERR_ARG, "causal". */
static void logsparse_bidir_refused(const ra_head_kind *hk)
{
    ra_layer_config layer = layer_for(K_LOGSPARSE, 0);
    ra_head_opts opts = {.ring = {.B = 1, .H = 2, .Hkv = 2, .D = 8, .L = 37, .scale = 0,
                                  .causal = 0, .layout = RA_LAYOUT_CONTIGUOUS, .chunk = 0},
                         .layer = &layer};
    ra_clear_error();
    ra_head *h = NULL;
    ra_status s = hk->create(&h, &opts, MPI_COMM_WORLD);
    MH_CHECK(s == RA_ERR_ARG, "combiner-logsparse with causal = 0 returned %s (%s), expected "
                           "RA_ERR_ARG",
          ra_status_name(s), ra_last_error());
    if (s != RA_OK)
        MH_CHECK(strstr(ra_last_error(), "causal") != NULL,
              "the error for causal = 0 does not say \"causal\": '%s'", ra_last_error());
    else
        hk->destroy(h);
}

static const ra_head_kind *g_kinds[NKINDS]; /* NULL: not in the registry */

static void case_name(char *buf, size_t cap, const void *arg, const mh_ctx *ctx)
{
    const tcase *c = arg;
    const int64_t L = resolve_L(c->L, ctx->P);
    const int param = resolve_param(c->param, L);
    char pbuf[48] = "";
    if (c->kind != K_LOGSPARSE) {
        if (param > 0)
            snprintf(pbuf, sizeof pbuf, " %s=%d", c->kind == K_FIXED ? "span" : "row", param);
        else
            snprintf(pbuf, sizeof pbuf, " %s=auto(%d)", c->kind == K_FIXED ? "span" : "row",
                     ref_comb_auto_len((int)L));
    }
    snprintf(buf, cap, "#%d %s L=%lld B=%d H=%d Hkv=%d D=%d %s %s%s chunk=%d scale=%g%s",
             ctx->index, kind_names[c->kind], (long long)L, c->B, c->H, c->Hkv, c->D,
             ra_layout_name(c->layout), c->causal ? "causal" : "bidir", pbuf, c->chunk,
             (double)c->scale, c->fd ? " fd" : "");
}

/* One case on every rank; the note: its errors, max over ranks. */
static mh_outcome run(const void *arg, const mh_ctx *ctx)
{
    const tcase *c = arg;
    const ra_head_kind *hk = g_kinds[c->kind];
    g_case = ctx->name;
    if (!hk) {
        mh_note("%s is not in the registry", kind_names[c->kind]);
        return MH_SKIPPED;
    }
    result res;
    memset(&res, 0, sizeof res);
    if (!run_case(ctx->index, c, hk, &res)) {
        mh_note("L < P");
        return MH_SKIPPED;
    }
    double e[14] = {res.ref.o, res.ref.lse, res.fd.dq, res.fd.dk, res.fd.dv, res.single.o,
                    res.single.lse, res.single.dq, res.single.dk, res.single.dv,
                    res.seconds, 0, 0, 0};
    double emax[14];
    MPI_Allreduce(e, emax, 14, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
    double bytes = 0.0;
    MPI_Allreduce(&res.bytes, &bytes, 1, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
    char fdbuf[64] = "";
    if (c->fd)
        snprintf(fdbuf, sizeof fdbuf, " FD %.1e %.1e %.1e (kinks %d)", emax[2], emax[3],
                 emax[4], res.kinks);
    mh_note("ref %.1e %.1e%s | single %.1e %.1e %.1e %.1e %.1e | Lr %lld..%lld | %.0f bytes | "
            "%.3f s",
            emax[0], emax[1], fdbuf, emax[5], emax[6], emax[7], emax[8], emax[9], res.lr_min,
            res.lr_max, bytes, emax[10]);
    return MH_RAN;
}

static mh_outcome run_logsparse_refused(const void *arg, const mh_ctx *ctx)
{
    g_case = ctx->name;
    logsparse_bidir_refused(arg);
    return MH_RAN;
}

int main(int argc, char **argv)
{
    mh_init(&argc, &argv, "test_combiner_mpi");
    g_rank = mh_rank(), g_P = mh_size();
    const size_t ncases = sizeof cases / sizeof cases[0];
    char skipped_kinds[128] = "";
    for (int t = 0; t < NKINDS; t++) {
        g_kinds[t] = ra_head_find(kind_names[t]);
        if (!g_kinds[t]) {
            if (skipped_kinds[0]) strncat(skipped_kinds, ", ", sizeof skipped_kinds - strlen(skipped_kinds) - 1);
            strncat(skipped_kinds, kind_names[t], sizeof skipped_kinds - strlen(skipped_kinds) - 1);
        }
    }
    if (g_rank == 0) {
        printf("test_combiner_mpi: P=%d, %zu cases; heads known: %s\n", g_P, ncases,
               ra_head_names());
        if (skipped_kinds[0]) printf("test_combiner_mpi: skipped kinds (not in the registry): %s\n",
                                     skipped_kinds);
        printf("  errors are max over ranks: ref O lse [FD dQ dK dV] | single O lse dQ dK dV\n");
    }
    if (g_kinds[K_LOGSPARSE])
        mh_run_case("combiner-logsparse causal=0 refused", run_logsparse_refused,
                    g_kinds[K_LOGSPARSE], -1);
    mh_run_table(&(mh_table){.cases = cases, .count = ncases, .size = sizeof cases[0],
                             .name = case_name, .run = run});
    int repeat_diff = 0;
    MPI_Allreduce(&g_repeat_diff, &repeat_diff, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
    if (g_rank == 0)
        printf("test_combiner_mpi: a second call on the same head was bitwise identical in %s "
               "(informational)\n",
               repeat_diff ? "not every case" : "every case");
    return mh_finish();
}
