/* layers.c - single-rank kernels of the transformer's layers (docs/design.md §7):
 * RMSNorm, linear (sgemm), RoPE, SwiGLU, GELU, embedding, cross-entropy.
 *
 * Shapes: x, y, dx, dy [N][C]; g, dg [C]; rstd [N]; linear x [N][I],
 * w [I][O], y [N][O]; RoPE x [nh][n][D], pos [n]; embedding E [V][C],
 * tok [N]; logits, dlogits [N][V], tgt [N].
 *
 * Forward functions overwrite their outputs. Backward functions ACCUMULATE
 * (+=) into every gradient they write: dx, dg, dw, dE and also da, db of the
 * elementwise SwiGLU / GELU, so that branches sharing an input just add up.
 * Two exceptions, both per the header: ra_rope_backward rotates its buffer in
 * place, and ra_xent overwrites dlogits.
 *
 * Precision: storage and elementwise math in float32; the reductions that
 * span a whole row or column (RMSNorm sums of squares and dot products, its
 * dg over rows, the softmax sum and the loss of ra_xent) accumulate in
 * double, which costs little next to the memory traffic and keeps the error
 * independent of C, N and V. RoPE angles and their cos/sin are computed in
 * double: at position 4M a float angle would be off by a quarter radian.
 *
 * Threads (include/ringattn/threads.h): every kernel below splits its rows,
 * column strips, pair chunks or element blocks over ra_threads() OpenMP
 * threads once a call touches PAR_MIN floats or more (smaller calls, and
 * calls made inside a parallel region, stay serial). The work items are
 * fixed by the shapes, never by the thread count, and every sum is taken
 * inside one item or over items in index order, so each result is bitwise
 * the same at any thread count (and the same as the serial code):
 * RMSNorm's dg is summed down all rows by column strips, the embedding
 * gradient is scattered by the thread owning the vocabulary row, and the
 * cross-entropy loss is the in-order sum of per-row losses (continued
 * across calls by ra_xent_rows, so row chunks sum as one call). */
#include "isa_names.h" /* first: the names of a portable build's copies */
#include "ringattn/layers.h"

#include <cblas.h>
#include <math.h>
#include <omp.h>
#undef I /* complex.h's imaginary unit, pulled in by OpenBLAS's cblas.h: the
          * linear layer's input width is called I */
#include <stdlib.h>
#include <string.h>

#include "ringattn/status.h"
#include "ringattn/threads.h"
#include "vmath.h"

/* Below this many floats of work a call runs on the calling thread alone:
 * forking a team costs a few microseconds. */
enum { PAR_MIN = 32768 };

/* threads for a call touching `work` floats: 1 when small or nested */
static inline int par_threads(size_t work)
{
    if (work < PAR_MIN || omp_in_parallel()) return 1;
    return ra_threads();
}

/* 8 floats widened to 8 doubles, for lane-wise double accumulation */
typedef float ra_vf8 __attribute__((vector_size(32)));
typedef double ra_vd8 __attribute__((vector_size(64)));

static inline ra_vd8 widen8(const float *p)
{
    ra_vf8 v;
    memcpy(&v, p, sizeof v);
    return __builtin_convertvector(v, ra_vd8);
}

static inline double hsum8(ra_vd8 v)
{
    double s = 0.0;
    for (int i = 0; i < 8; i++) s += v[i];
    return s;
}

/* first m < RA_VW values of p, the rest of the lanes set to fill */
static inline ra_vf load_tail(const float *p, size_t m, float fill)
{
    float t[RA_VW];
    for (size_t i = 0; i < RA_VW; i++) t[i] = i < m ? p[i] : fill;
    return ra_vload(t);
}

static inline void store_tail(float *p, ra_vf v, size_t m)
{
    float t[RA_VW];
    ra_vstore(t, v);
    memcpy(p, t, m * sizeof *p);
}

/* ---- RMSNorm -------------------------------------------------------------- */

/* sum of a[j] * b[j] (c[j] too when c is not NULL), in double */
static double dot_d(const float *a, const float *b, const float *c, int n)
{
    ra_vd8 acc = {0};
    int j = 0;
    if (c) {
        for (; j + 8 <= n; j += 8) acc += widen8(a + j) * widen8(b + j) * widen8(c + j);
    } else {
        for (; j + 8 <= n; j += 8) acc += widen8(a + j) * widen8(b + j);
    }
    double s = hsum8(acc);
    for (; j < n; j++) s += (double)a[j] * b[j] * (c ? (double)c[j] : 1.0);
    return s;
}

/* rstd may be NULL (inference: nothing to save for a backward). */
void ra_rmsnorm_forward(float *y, float *rstd, const float *x, const float *g, int N, int C,
                        float eps)
{
    const int nt = par_threads((size_t)N * C);
#pragma omp parallel for num_threads(nt) schedule(static) if (nt > 1)
    for (int i = 0; i < N; i++) {
        const float *xi = x + (size_t)i * C;
        float *yi = y + (size_t)i * C;
        double ms = dot_d(xi, xi, NULL, C) / C;
        float r = (float)(1.0 / sqrt(ms + (double)eps));
        if (rstd) rstd[i] = r;
        for (int j = 0; j < C; j++) yi[j] = xi[j] * r * g[j];
    }
}

/* With r = rstd, y_j = x_j r g_j and dr/dx_k = -r^3 x_k / C:
 *   dx_k = r (g_k dy_k - x_k r^2 mean_j(g_j dy_j x_j)),
 *   dg_j = sum over rows of dy_j x_j r.
 * The saved float r is used, so the backward matches the forward that ran.
 * dx and dg may each be NULL. */
enum { DG_COLS = 32 }; /* columns of dg summed at once in double (one strip per work item) */

void ra_rmsnorm_backward(float *dx, float *dg, const float *dy, const float *x, const float *g,
                         const float *rstd, int N, int C)
{
    const int nt = par_threads((size_t)N * C);
    if (dx) {
#pragma omp parallel for num_threads(nt) schedule(static) if (nt > 1)
        for (int i = 0; i < N; i++) {
            const float *xi = x + (size_t)i * C, *dyi = dy + (size_t)i * C;
            float *dxi = dx + (size_t)i * C;
            float r = rstd[i];
            float k = (float)((double)r * r * dot_d(g, dyi, xi, C) / C);
            for (int j = 0; j < C; j++) dxi[j] += r * (g[j] * dyi[j] - xi[j] * k);
        }
    }
    if (dg) {
        /* a strip of columns at a time, down all the rows: the sum over N
         * rows stays in double without a heap buffer, and each column is
         * summed by one thread in row order (the same at any thread count) */
        const int strips = (C + DG_COLS - 1) / DG_COLS;
#pragma omp parallel for num_threads(nt) schedule(static) if (nt > 1 && strips > 1)
        for (int s = 0; s < strips; s++) {
            double acc[DG_COLS];
            int j0 = s * DG_COLS;
            int w = C - j0 < DG_COLS ? C - j0 : DG_COLS;
            for (int j = 0; j < w; j++) acc[j] = 0.0;
            for (int i = 0; i < N; i++) {
                const float *xi = x + (size_t)i * C + j0, *dyi = dy + (size_t)i * C + j0;
                double r = rstd[i];
                for (int j = 0; j < w; j++) acc[j] += (double)(dyi[j] * xi[j]) * r;
            }
            for (int j = 0; j < w; j++) dg[j0 + j] += (float)acc[j];
        }
    }
}

/* ---- linear --------------------------------------------------------------- */

void ra_linear_forward(float *y, const float *x, const float *w, int N, int I, int O)
{
    if (N <= 0 || O <= 0) return;
    if (I <= 0) { /* empty sum; BLAS would reject lda = 0 */
        memset(y, 0, sizeof(float) * (size_t)N * O);
        return;
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, O, I, 1.0f, x, I, w, O, 0.0f, y, O);
}

/* dx may be NULL (first layer, frozen input); dw may be NULL (frozen w). */
void ra_linear_backward(float *dx, float *dw, const float *dy, const float *x, const float *w,
                        int N, int I, int O)
{
    if (N <= 0 || I <= 0 || O <= 0) return; /* nothing to add */
    if (dx)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, I, O, 1.0f, dy, O, w, O, 1.0f,
                    dx, I);
    if (dw)
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, I, O, N, 1.0f, x, I, dy, O, 1.0f,
                    dw, O);
}

/* ---- RoPE ----------------------------------------------------------------- */

enum {
    ROPE_CHUNK = 1024, /* (t, i) pairs whose cos/sin are computed at once: 8 KiB */
    ROPE_FREQ = 512,   /* frequencies cached per call; beyond that (D > 1024) pow */
};

/* Rotate every pair by sign * angle. Pair i of row t of head h sits at flat
 * pair index h*n*D/2 + t*D/2 + i, so a chunk of flat indices k = t*D/2 + i is
 * the same for every head: cos/sin are computed once per chunk (in double,
 * from a double angle) and applied to all nh heads. */
static void rope_apply(float *x, int nh, int n, int D, const int32_t *pos, float theta,
                       float sign)
{
    RA_ASSERT(D > 0 && D % 2 == 0, "RoPE needs an even head dimension D");
    const int half = D / 2;
    const size_t npairs = (size_t)n * half;
    const double lt = log((double)theta);
    double freq[ROPE_FREQ];
    for (int i = 0; i < half && i < ROPE_FREQ; i++) freq[i] = exp(-2.0 * i / D * lt);
    const long chunks = (long)((npairs + ROPE_CHUNK - 1) / ROPE_CHUNK);
    const int nt = par_threads(npairs * 2 * (size_t)nh);
#pragma omp parallel for num_threads(nt) schedule(static) if (nt > 1 && chunks > 1)
    for (long c = 0; c < chunks; c++) {
        float cs[ROPE_CHUNK], sn[ROPE_CHUNK];
        size_t k0 = (size_t)c * ROPE_CHUNK;
        size_t m = npairs - k0 < ROPE_CHUNK ? npairs - k0 : ROPE_CHUNK;
        size_t t = k0 / half;
        int i = (int)(k0 % half);
        for (size_t k = 0; k < m; k++) {
            double f = i < ROPE_FREQ ? freq[i] : exp(-2.0 * i / D * lt);
            double a = (double)pos[t] * f;
            cs[k] = (float)cos(a);
            sn[k] = sign * (float)sin(a);
            if (++i == half) i = 0, t++;
        }
        for (int h = 0; h < nh; h++) {
            float *p = x + ((size_t)h * npairs + k0) * 2;
            for (size_t k = 0; k < m; k++) {
                float x0 = p[2 * k], x1 = p[2 * k + 1];
                p[2 * k] = x0 * cs[k] - x1 * sn[k];
                p[2 * k + 1] = x0 * sn[k] + x1 * cs[k];
            }
        }
    }
}

void ra_rope_forward(float *x, int nh, int n, int D, const int32_t *pos, float theta)
{
    rope_apply(x, nh, n, D, pos, theta, 1.0f);
}

/* R is orthogonal, so dx = R^T dy is the rotation by the opposite angle. */
void ra_rope_backward(float *dx, int nh, int n, int D, const int32_t *pos, float theta)
{
    rope_apply(dx, nh, n, D, pos, theta, -1.0f);
}

/* ---- SwiGLU and GELU ------------------------------------------------------ */

/* s = sigmoid(z) and sc = 1 - s, both from e = exp(-|z|) so neither is the
 * difference of two numbers near 1 (each keeps its relative accuracy). */
static inline void sigmoid2(ra_vf z, ra_vf *s, ra_vf *sc)
{
    ra_vi pos = z >= ra_vsplat(0.0f);
    ra_vf e = ra_vexp(ra_vselect(pos, -z, z));
    ra_vf r = ra_vsplat(1.0f) / (ra_vsplat(1.0f) + e);
    *s = ra_vselect(pos, r, e * r);
    *sc = ra_vselect(pos, e * r, r);
}

static inline ra_vf swiglu_f(ra_vf a, ra_vf b)
{
    ra_vf s, sc;
    sigmoid2(a, &s, &sc);
    return a * s * b;
}

/* da += du b s (1 + a (1 - s)), db += du silu(a) */
static inline void swiglu_b(ra_vf a, ra_vf b, ra_vf du, ra_vf *da, ra_vf *db)
{
    ra_vf s, sc;
    sigmoid2(a, &s, &sc);
    *da += du * b * s * (ra_vsplat(1.0f) + a * sc);
    *db += du * a * s;
}

/* Elementwise kernels run over blocks of EW_BLOCK values (a multiple of
 * RA_VW, so only the last block has a tail): lanes are independent, so the
 * split changes nothing in the results. */
enum { EW_BLOCK = 8192 };

#define EW_PARALLEL(n, call)                                                              \
    do {                                                                                  \
        const size_t n_ = (n), nb_ = (n_ + EW_BLOCK - 1) / EW_BLOCK;                      \
        const int nt_ = par_threads(n_);                                                  \
        if (nt_ <= 1 || nb_ <= 1) {                                                       \
            const size_t j0 = 0, m = n_;                                                  \
            call;                                                                         \
        } else {                                                                          \
            _Pragma("omp parallel for num_threads(nt_) schedule(static)")                 \
            for (size_t b_ = 0; b_ < nb_; b_++) {                                         \
                const size_t j0 = b_ * EW_BLOCK, m = n_ - j0 < EW_BLOCK ? n_ - j0 : EW_BLOCK; \
                call;                                                                     \
            }                                                                             \
        }                                                                                 \
    } while (0)

static void swiglu_fwd_range(float *u, const float *a, const float *b, size_t n)
{
    size_t j = 0;
    for (; j + RA_VW <= n; j += RA_VW) ra_vstore(u + j, swiglu_f(ra_vload(a + j), ra_vload(b + j)));
    if (j < n) {
        size_t m = n - j;
        store_tail(u + j, swiglu_f(load_tail(a + j, m, 0.0f), load_tail(b + j, m, 0.0f)), m);
    }
}

static void swiglu_bwd_range(float *da, float *db, const float *du, const float *a,
                             const float *b, size_t n)
{
    size_t j = 0;
    for (; j + RA_VW <= n; j += RA_VW) {
        ra_vf va = ra_vload(da + j), vb = ra_vload(db + j);
        swiglu_b(ra_vload(a + j), ra_vload(b + j), ra_vload(du + j), &va, &vb);
        ra_vstore(da + j, va);
        ra_vstore(db + j, vb);
    }
    if (j < n) {
        size_t m = n - j;
        ra_vf va = load_tail(da + j, m, 0.0f), vb = load_tail(db + j, m, 0.0f);
        swiglu_b(load_tail(a + j, m, 0.0f), load_tail(b + j, m, 0.0f),
                 load_tail(du + j, m, 0.0f), &va, &vb);
        store_tail(da + j, va, m);
        store_tail(db + j, vb, m);
    }
}

/* GELU via 0.5 (1 + tanh(u)) = sigmoid(2u) and 1 - tanh(u)^2 = 4 s (1 - s):
 *   y = a s,  dy/da = s + 2 a s (1 - s) K0 (1 + 3 K1 a^2),  s = sigmoid(2u),
 *   u = K0 (a + K1 a^3).
 * Beyond |a| = 1e3 the sigmoid is exactly 0 or 1 in float, so a is clamped
 * inside u and the polynomial: a^2 cannot overflow into inf * 0 = NaN. */
#define GELU_K0 0.7978845608028654f /* sqrt(2/pi) */
#define GELU_K1 0.044715f

static inline ra_vf gelu_clamp(ra_vf a)
{
    a = ra_vselect(a > ra_vsplat(1e3f), ra_vsplat(1e3f), a);
    return ra_vselect(a < ra_vsplat(-1e3f), ra_vsplat(-1e3f), a);
}

static inline ra_vf gelu_f(ra_vf a)
{
    ra_vf c = gelu_clamp(a), s, sc;
    sigmoid2(c * (ra_vsplat(2.0f * GELU_K0) + ra_vsplat(2.0f * GELU_K0 * GELU_K1) * c * c), &s,
             &sc);
    return a * s;
}

static inline ra_vf gelu_b(ra_vf a, ra_vf dy)
{
    ra_vf c = gelu_clamp(a), s, sc, c2 = c * c;
    sigmoid2(c * (ra_vsplat(2.0f * GELU_K0) + ra_vsplat(2.0f * GELU_K0 * GELU_K1) * c2), &s, &sc);
    ra_vf poly = ra_vsplat(2.0f * GELU_K0) + ra_vsplat(6.0f * GELU_K0 * GELU_K1) * c2;
    return dy * (s + c * (s * sc) * poly);
}

static void gelu_fwd_range(float *y, const float *a, size_t n)
{
    size_t j = 0;
    for (; j + RA_VW <= n; j += RA_VW) ra_vstore(y + j, gelu_f(ra_vload(a + j)));
    if (j < n) store_tail(y + j, gelu_f(load_tail(a + j, n - j, 0.0f)), n - j);
}

static void gelu_bwd_range(float *da, const float *dy, const float *a, size_t n)
{
    size_t j = 0;
    for (; j + RA_VW <= n; j += RA_VW)
        ra_vstore(da + j, ra_vload(da + j) + gelu_b(ra_vload(a + j), ra_vload(dy + j)));
    if (j < n) {
        size_t m = n - j;
        ra_vf d = load_tail(da + j, m, 0.0f) +
                  gelu_b(load_tail(a + j, m, 0.0f), load_tail(dy + j, m, 0.0f));
        store_tail(da + j, d, m);
    }
}

void ra_swiglu_forward(float *u, const float *a, const float *b, size_t n)
{
    EW_PARALLEL(n, swiglu_fwd_range(u + j0, a + j0, b + j0, m));
}

/* accumulates into da and db */
void ra_swiglu_backward(float *da, float *db, const float *du, const float *a, const float *b,
                        size_t n)
{
    EW_PARALLEL(n, swiglu_bwd_range(da + j0, db + j0, du + j0, a + j0, b + j0, m));
}

void ra_gelu_forward(float *y, const float *a, size_t n)
{
    EW_PARALLEL(n, gelu_fwd_range(y + j0, a + j0, m));
}

/* accumulates into da */
void ra_gelu_backward(float *da, const float *dy, const float *a, size_t n)
{
    EW_PARALLEL(n, gelu_bwd_range(da + j0, dy + j0, a + j0, m));
}

/* ---- embedding ------------------------------------------------------------ */

/* The vocabulary size is not passed, so only tok >= 0 can be checked here. */
void ra_embed_forward(float *x, const int32_t *tok, const float *E, int N, int C)
{
    for (int i = 0; i < N; i++) RA_ASSERT(tok[i] >= 0, "token id must be >= 0");
    const int nt = par_threads((size_t)N * C);
#pragma omp parallel for num_threads(nt) schedule(static) if (nt > 1)
    for (int i = 0; i < N; i++) {
        memcpy(x + (size_t)i * C, E + (size_t)tok[i] * C, sizeof(float) * (size_t)C);
    }
}

/* accumulates into dE; repeated tokens add up. Threaded, thread t of T owns
 * the vocabulary rows v with v % T == t and adds the tokens of its rows in
 * token order: no two threads write a row, and each row's sum has the
 * serial order. */
static void embed_add(float *dE, const int32_t *tok, const float *dx, int N, int C, int T, int t)
{
    for (int i = 0; i < N; i++) {
        if (tok[i] % T != t) continue;
        float *e = dE + (size_t)tok[i] * C;
        const float *d = dx + (size_t)i * C;
        for (int j = 0; j < C; j++) e[j] += d[j];
    }
}

void ra_embed_backward(float *dE, const int32_t *tok, const float *dx, int N, int C)
{
    for (int i = 0; i < N; i++) RA_ASSERT(tok[i] >= 0, "token id must be >= 0");
    const int nt = par_threads((size_t)N * C);
    if (nt <= 1) {
        embed_add(dE, tok, dx, N, C, 1, 0);
        return;
    }
#pragma omp parallel num_threads(nt)
    embed_add(dE, tok, dx, N, C, omp_get_num_threads(), omp_get_thread_num());
}

/* ---- cross-entropy -------------------------------------------------------- */

/* sum over j of exp(l[j] - m), in double; also stores the exps in e when e
 * is not NULL. m is the row max, so every exp is in (0, 1] and the max
 * contributes exactly 1: the sum is >= 1 and its log finite. */
static double exp_sum(float *e, const float *l, int V, float m)
{
    const ra_vf vm = ra_vsplat(m);
    ra_vd8 acc = {0};
    int j = 0;
    for (; j + RA_VW <= V; j += RA_VW) {
        ra_vf v = ra_vexp(ra_vload(l + j) - vm);
        if (e) ra_vstore(e + j, v);
#if RA_VW == 16
        ra_vf8 lo, hi;
        memcpy(&lo, &v, sizeof lo);
        memcpy(&hi, (char *)&v + sizeof lo, sizeof hi);
        acc += __builtin_convertvector(lo, ra_vd8) + __builtin_convertvector(hi, ra_vd8);
#else
        _Static_assert(RA_VW == 8, "vmath.h's vectors: 8 or 16 floats");
        acc += __builtin_convertvector(v, ra_vd8);
#endif
    }
    double s = hsum8(acc);
    if (j < V) { /* -inf padding: exp gives exactly 0 */
        size_t m_ = (size_t)(V - j);
        ra_vf v = ra_vexp(load_tail(l + j, m_, -INFINITY) - vm);
        if (e) store_tail(e + j, v, m_);
        for (int i = 0; i < RA_VW; i++) s += v[i];
    }
    return s;
}

/* -log p[t] of row i (writing its dlogits row when d is not NULL) and
 * whether its argmax is t; -1 for an ignored row (a loss is >= 0). */
static double xent_row(float *d, const float *l, int32_t t, int V, float scale, int *hit)
{
    *hit = 0;
    if (t < 0) {
        if (d) memset(d, 0, sizeof(float) * (size_t)V);
        return -1.0;
    }
    /* read what we need of the row first: dlogits may alias logits */
    float m = ra_rowmax(l, V), lt = l[t];
    int am = 0;
    while (am < V - 1 && l[am] != m) am++;
    double sum = exp_sum(d, l, V, m);
    if (d) {
        float f = (float)((double)scale / sum);
        for (int j = 0; j < V; j++) d[j] *= f;
        d[t] -= scale;
    }
    *hit = am == t;
    return log(sum) - ((double)lt - (double)m);
}

/* Any negative target marks an ignored row; tgt >= V is a caller bug. The
 * argmax is the first index holding the row max. Threaded, the rows' losses
 * are kept and summed in row order afterwards: the same sum as the serial
 * loop, at any thread count. The running *loss goes on from its value on
 * entry, so row chunks called in order sum exactly as one call. */
void ra_xent_rows(float *dlogits, const float *logits, const int32_t *tgt, int N, int V, float scale,
                  double *loss_io, int64_t *count, int64_t *correct)
{
    for (int i = 0; i < N; i++) RA_ASSERT(tgt[i] < V, "target id must be < V (vocabulary size)");
    double loss = *loss_io;
    int64_t cnt = 0, ok = 0;
    int nt = par_threads((size_t)N * V);
    double *rl = nt > 1 ? malloc(sizeof(double) * (size_t)N) : NULL;
    if (!rl) nt = 1; /* out of memory for the row losses: serial */
    if (nt <= 1) {
        for (int i = 0; i < N; i++) {
            int hit;
            double r = xent_row(dlogits ? dlogits + (size_t)i * V : NULL, logits + (size_t)i * V,
                                tgt[i], V, scale, &hit);
            if (r < 0) continue;
            loss += r; /* -log p[t] */
            cnt++;
            ok += hit;
        }
    } else {
#pragma omp parallel for num_threads(nt) schedule(static) reduction(+ : ok)
        for (int i = 0; i < N; i++) {
            int hit;
            rl[i] = xent_row(dlogits ? dlogits + (size_t)i * V : NULL, logits + (size_t)i * V,
                             tgt[i], V, scale, &hit);
            ok += hit;
        }
        for (int i = 0; i < N; i++) {
            if (rl[i] < 0) continue;
            loss += rl[i];
            cnt++;
        }
        free(rl);
    }
    *loss_io = loss;
    if (count) *count += cnt;
    if (correct) *correct += ok;
}

double ra_xent(float *dlogits, const float *logits, const int32_t *tgt, int N, int V, float scale,
               int64_t *count, int64_t *correct)
{
    double loss = 0.0;
    int64_t cnt = 0, ok = 0;
    ra_xent_rows(dlogits, logits, tgt, N, V, scale, &loss, &cnt, &ok);
    if (count) *count = cnt;
    if (correct) *correct = ok;
    return loss;
}

/* ---- row-norm preconditioner ---------------------------------------------- */

void ra_rownorm_forward(float *o, float *norm, int N, int D, float eps)
{
    const int nt = par_threads((size_t)N * D);
#pragma omp parallel for num_threads(nt) schedule(static) if (nt > 1)
    for (int i = 0; i < N; i++) {
        float *r = o + (size_t)i * D;
        double s = 0.0;
        for (int d = 0; d < D; d++) s += (double)r[d] * r[d];
        float n = (float)sqrt(s), inv = 1.0f / (n + eps);
        norm[i] = n;
        for (int d = 0; d < D; d++) r[d] *= inv;
    }
}

void ra_rownorm_backward(float *dot, const float *ot, const float *norm, int N, int D, float eps, int full)
{
    const int nt = par_threads((size_t)N * D);
#pragma omp parallel for num_threads(nt) schedule(static) if (nt > 1)
    for (int i = 0; i < N; i++) {
        float *g = dot + (size_t)i * D;
        const float *t = ot + (size_t)i * D;
        double proj = 0.0;
        if (full && norm[i] > 0.0f)
            for (int d = 0; d < D; d++) proj += (double)t[d] * g[d];
        float inv = 1.0f / (norm[i] + eps), c = full && norm[i] > 0.0f ? (float)(proj / norm[i]) : 0.0f;
        for (int d = 0; d < D; d++) g[d] = g[d] * inv - t[d] * c;
    }
}

/* ---- conditioning diagnostic ----------------------------------------------- */

void dsyev_(const char *jobz, const char *uplo, const int *n, double *a, const int *lda, double *w,
            double *work, const int *lwork, int *info);

void ra_gram_accumulate(double *G, const float *o, int N, int D)
{
    for (int i = 0; i < N; i++) {
        const float *r = o + (size_t)i * D;
        for (int a = 0; a < D; a++) {
            double x = r[a];
            for (int b = 0; b <= a; b++) G[(size_t)a * D + b] += x * r[b];
        }
    }
    for (int a = 0; a < D; a++) /* mirror the lower triangle we summed */
        for (int b = a + 1; b < D; b++) G[(size_t)a * D + b] = G[(size_t)b * D + a];
}

double ra_kappa_from_gram(const double *G, int D, double *sigma_max, double *sigma_min)
{
    double *a = malloc(sizeof(double) * ((size_t)D * D + D + 66 * (size_t)D + 64));
    if (!a) return NAN;
    double *w = a + (size_t)D * D, *work = w + D;
    memcpy(a, G, sizeof(double) * D * D);
    int n = D, lwork = 66 * D + 64, info = 0;
    dsyev_("N", "U", &n, a, &n, w, work, &lwork, &info);
    double lo = w[0] > 0 ? w[0] : 0, hi = w[D - 1] > 0 ? w[D - 1] : 0;
    free(a);
    if (info != 0) return NAN;
    *sigma_max = sqrt(hi);
    *sigma_min = sqrt(lo);
    /* sigma_min below 2^-24 sigma_max is rounding: a float32 O that close
     * to singular is singular, and the value left would be noise (a
     * rank-deficient O gave inf at one rank, 1e8 at two) */
    return lo > hi * 0x1p-48 ? sqrt(hi / lo) : INFINITY;
}
