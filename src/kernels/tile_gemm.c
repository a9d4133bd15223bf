/* tile_gemm.c - S = Q K^T, acc += P V and acc += P^T V for the attention
 * tiles, AVX-512 register blocks without packing (tile_gemm.h says why). Empty
 * without AVX-512: attn.c then calls OpenBLAS. */
#include "tile_gemm.h"

#include <stddef.h>

#if RA_TILE_GEMM
#include <immintrin.h>

enum {
    ROWS = 6,     /* output rows per register block: 6 x 4 accumulators */
    PANEL = 64,   /* key columns per K^T panel: 4 vectors */
    PV_KB = 64,   /* keys per pass of acc += P V: 64 rows of V stay in L1 */
};

#define ALWAYS_INLINE static inline __attribute__((always_inline))

/* r[i][c] -> r[c][i], 16 x 16: pairs within 128-bit lanes, then 64-bit
 * pairs, then the 4 x 4 transpose of the lanes themselves. */
static inline void transpose16(__m512 r[16])
{
    __m512 t[16], u[16];
    for (int i = 0; i < 16; i += 2) {
        t[i] = _mm512_unpacklo_ps(r[i], r[i + 1]);     /* r_i0 r_(i+1)0 r_i1 r_(i+1)1 per lane */
        t[i + 1] = _mm512_unpackhi_ps(r[i], r[i + 1]); /* columns 2, 3 of each lane */
    }
    for (int g = 0; g < 16; g += 4) { /* u[g + c], lane L: rows g..g+3 of column 4 L + c */
        u[g] = _mm512_shuffle_ps(t[g], t[g + 2], 0x44);
        u[g + 1] = _mm512_shuffle_ps(t[g], t[g + 2], 0xEE);
        u[g + 2] = _mm512_shuffle_ps(t[g + 1], t[g + 3], 0x44);
        u[g + 3] = _mm512_shuffle_ps(t[g + 1], t[g + 3], 0xEE);
    }
    for (int c = 0; c < 4; c++) { /* column 4 L + c: lane L of u[c], u[4 + c], u[8 + c], u[12 + c] */
        __m512 v0 = _mm512_shuffle_f32x4(u[c], u[4 + c], 0x88);     /* lanes 0, 2 of each */
        __m512 v1 = _mm512_shuffle_f32x4(u[c], u[4 + c], 0xDD);     /* lanes 1, 3 */
        __m512 v2 = _mm512_shuffle_f32x4(u[8 + c], u[12 + c], 0x88);
        __m512 v3 = _mm512_shuffle_f32x4(u[8 + c], u[12 + c], 0xDD);
        r[c] = _mm512_shuffle_f32x4(v0, v2, 0x88);      /* L = 0 */
        r[4 + c] = _mm512_shuffle_f32x4(v1, v3, 0x88);  /* L = 1 */
        r[8 + c] = _mm512_shuffle_f32x4(v0, v2, 0xDD);  /* L = 2 */
        r[12 + c] = _mm512_shuffle_f32x4(v1, v3, 0xDD); /* L = 3 */
    }
}

void ra_tile_pack_kt(const float *k, int n, int D, float *kt)
{
    const int w = (n + 15) / 16 * 16;
    for (int j = 0; j < w; j += 16) { /* 16 keys by 16 dimensions at a time */
        const int p0 = j / PANEL * PANEL, pw = w - p0 < PANEL ? w - p0 : PANEL;
        float *dst = kt + (size_t)p0 * D + (j - p0);
        for (int d0 = 0; d0 < D; d0 += 16) {
            __m512 r[16];
            for (int i = 0; i < 16; i++)
                r[i] = j + i < n ? _mm512_loadu_ps(k + (size_t)(j + i) * D + d0) : _mm512_setzero_ps();
            transpose16(r);
            for (int c = 0; c < 16; c++) _mm512_storeu_ps(dst + (size_t)(d0 + c) * pw, r[c]);
        }
    }
}

/* s[r][0 .. 16 NV) = scale * q[r] . panel columns, r < R: R x NV
 * accumulators, one broadcast of q[r][d] per row and step d. With lanes
 * ([R][16]), each row's lane-wise maxima of what it stores too: set by the
 * first panel (first), raised by the others. */
ALWAYS_INLINE void qkt_block(const float *q, int D, const float *panel, int pw, float scale,
                             float *s, int lds, float *lanes, int first, const int R, const int NV)
{
    __m512 c[ROWS][4], b[4];
    for (int r = 0; r < R; r++)
        for (int v = 0; v < NV; v++) c[r][v] = _mm512_setzero_ps();
    for (int d = 0; d < D; d++) {
        for (int v = 0; v < NV; v++) b[v] = _mm512_loadu_ps(panel + (size_t)d * pw + 16 * v);
        for (int r = 0; r < R; r++) {
            const __m512 a = _mm512_set1_ps(q[(size_t)r * D + d]);
            for (int v = 0; v < NV; v++) c[r][v] = _mm512_fmadd_ps(a, b[v], c[r][v]);
        }
    }
    const __m512 sc = _mm512_set1_ps(scale);
    for (int r = 0; r < R; r++)
        for (int v = 0; v < NV; v++) {
            c[r][v] = _mm512_mul_ps(c[r][v], sc);
            _mm512_storeu_ps(s + (size_t)r * lds + 16 * v, c[r][v]);
        }
    if (!lanes) return;
    for (int r = 0; r < R; r++) { /* the softmax then needs no pass of its own for the row max */
        __m512 t = _mm512_set1_ps(-__builtin_inff());
        /* the new value first, as ra_rowmax: a NaN logit is passed over (max returns its second operand) */
        for (int v = 0; v < NV; v++) t = _mm512_max_ps(c[r][v], t);
        if (!first) t = _mm512_max_ps(t, _mm512_loadu_ps(lanes + 16 * r));
        _mm512_storeu_ps(lanes + 16 * r, t);
    }
}

/* acc[r][0 .. 16 NV) += sum_{j < kb} A(r, j) v[j][0 .. 16 NV), r < R, where
 * A(r, j) is p[r][j], or p[j][r] when TA (P^T, dS^T of the backward). The
 * kb products are summed apart from acc, then added to it: each output's
 * rounding error grows with kb plus the number of passes, not with n. */
ALWAYS_INLINE void pv_block(const float *p, int ldp, int kb, const float *v, int D, float *acc,
                            const int R, const int NV, const int TA)
{
    __m512 c[ROWS][4], b[4];
    for (int r = 0; r < R; r++)
        for (int u = 0; u < NV; u++) c[r][u] = _mm512_setzero_ps();
    for (int j = 0; j < kb; j++) {
        for (int u = 0; u < NV; u++) b[u] = _mm512_loadu_ps(v + (size_t)j * D + 16 * u);
        for (int r = 0; r < R; r++) {
            const __m512 a = _mm512_set1_ps(TA ? p[(size_t)j * ldp + r] : p[(size_t)r * ldp + j]);
            for (int u = 0; u < NV; u++) c[r][u] = _mm512_fmadd_ps(a, b[u], c[r][u]);
        }
    }
    for (int r = 0; r < R; r++)
        for (int u = 0; u < NV; u++) {
            float *a = acc + (size_t)r * D + 16 * u;
            _mm512_storeu_ps(a, _mm512_add_ps(_mm512_loadu_ps(a), c[r][u]));
        }
}

/* One instance per (rows, vectors): the loops above unroll into registers. */
_Static_assert(ROWS == 6, "FOR_SHAPES lists 1 to ROWS rows");
#define FOR_SHAPES(X) \
    X(1, 1) X(1, 2) X(1, 3) X(1, 4) X(2, 1) X(2, 2) X(2, 3) X(2, 4) \
    X(3, 1) X(3, 2) X(3, 3) X(3, 4) X(4, 1) X(4, 2) X(4, 3) X(4, 4) \
    X(5, 1) X(5, 2) X(5, 3) X(5, 4) X(6, 1) X(6, 2) X(6, 3) X(6, 4)

static void qkt_any(int R, int NV, const float *q, int D, const float *panel, int pw, float scale,
                    float *s, int lds, float *lanes, int first)
{
    switch (R * 8 + NV) {
#define QKT_CASE(r, nv) \
    case r * 8 + nv: qkt_block(q, D, panel, pw, scale, s, lds, lanes, first, r, nv); break;
        FOR_SHAPES(QKT_CASE)
#undef QKT_CASE
    default: __builtin_unreachable();
    }
}

/* acc += A V for one register block; A transposed when ta (P^T, dS^T) */
static void pv_any(int R, int NV, int ta, const float *p, int ldp, int kb, const float *v, int D,
                   float *acc)
{
    switch (R * 8 + NV) {
#define PV_CASE(r, nv)                                         \
    case r * 8 + nv:                                           \
        if (ta) pv_block(p, ldp, kb, v, D, acc, r, nv, 1);     \
        else pv_block(p, ldp, kb, v, D, acc, r, nv, 0);        \
        break;
        FOR_SHAPES(PV_CASE)
#undef PV_CASE
    default: __builtin_unreachable();
    }
}

void ra_tile_qkt(const float *q, int m, int D, const float *kt, int nk, int ncols, float scale,
                 float *s, int lds, float *lanes)
{
    const int w = (nk + 15) / 16 * 16;
    /* panel outer: its D x 64 floats stay in L1 while all m rows pass */
    for (int p0 = 0; p0 < ncols; p0 += PANEL) {
        const int pw = w - p0 < PANEL ? w - p0 : PANEL;
        const int nv = (ncols - p0 < PANEL ? ncols - p0 : PANEL) / 16;
        const float *panel = kt + (size_t)p0 * D;
        for (int r0 = 0; r0 < m; r0 += ROWS)
            qkt_any(m - r0 < ROWS ? m - r0 : ROWS, nv, q + (size_t)r0 * D, D, panel, pw, scale,
                    s + (size_t)r0 * lds + p0, lds, lanes ? lanes + (size_t)16 * r0 : NULL, p0 == 0);
    }
}

/* acc += A V over m output rows and n keys, A(r, j) at p[r ldp + j], or at
 * p[j ldp + r] when ta */
static void pv_rows(const float *p, int m, int n, int ldp, int ta, const float *v, int D,
                    float *acc)
{
    for (int d0 = 0; d0 < D; d0 += PANEL) {
        const int nv = (D - d0 < PANEL ? D - d0 : PANEL) / 16;
        /* keys ascending for every row: the same order of sums as one pass */
        for (int j0 = 0; j0 < n; j0 += PV_KB) {
            const int kb = n - j0 < PV_KB ? n - j0 : PV_KB;
            for (int r0 = 0; r0 < m; r0 += ROWS) {
                const int R = m - r0 < ROWS ? m - r0 : ROWS;
                const float *v0 = v + (size_t)j0 * D + d0;
                float *a0 = acc + (size_t)r0 * D + d0;
                const float *p0 = ta ? p + (size_t)j0 * ldp + r0 : p + (size_t)r0 * ldp + j0;
                pv_any(R, nv, ta, p0, ldp, kb, v0, D, a0);
            }
        }
    }
}

void ra_tile_pv(const float *p, int m, int n, int ldp, const float *v, int D, float *acc)
{
    pv_rows(p, m, n, ldp, 0, v, D, acc);
}

void ra_tile_ptv(const float *p, int m, int n, int ldp, const float *v, int D, float *acc)
{
    pv_rows(p, m, n, ldp, 1, v, D, acc);
}

#endif /* RA_TILE_GEMM */
