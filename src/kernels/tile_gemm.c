/* tile_gemm.c - S = Q K^T, acc += P V and acc += P^T V for the attention
 * tiles, AVX-512 or AVX2 register blocks without packing (tile_gemm.h says
 * why). Empty without either: attn.c then calls OpenBLAS. */
#include "isa_names.h" /* first: the names of a portable build's copies */
#include "tile_gemm.h"

#include <stddef.h>

#if RA_TILE_GEMM
#include <immintrin.h>

/* The vector unit: W floats a register. A register block holds ROWS rows
 * of NVB vectors (CB = W NVB output columns): 6 x 4 of the 32 AVX-512
 * registers, 6 x 2 of the 16 AVX2 ones, with the row's broadcast and the
 * loaded vectors beside them. */
#if defined(__AVX512F__)
typedef __m512 vf;
enum { W = 16, NVB = 4 };
#define VZERO() _mm512_setzero_ps()
#define VSET1(x) _mm512_set1_ps(x)
#define VLOAD(p) _mm512_loadu_ps(p)
#define VSTORE(p, v) _mm512_storeu_ps(p, v)
#define VFMA(a, b, c) _mm512_fmadd_ps(a, b, c)
#define VMUL(a, b) _mm512_mul_ps(a, b)
#define VADD(a, b) _mm512_add_ps(a, b)
#define VMAX(a, b) _mm512_max_ps(a, b)
#else /* AVX2 and FMA */
typedef __m256 vf;
enum { W = 8, NVB = 2 };
#define VZERO() _mm256_setzero_ps()
#define VSET1(x) _mm256_set1_ps(x)
#define VLOAD(p) _mm256_loadu_ps(p)
#define VSTORE(p, v) _mm256_storeu_ps(p, v)
#define VFMA(a, b, c) _mm256_fmadd_ps(a, b, c)
#define VMUL(a, b) _mm256_mul_ps(a, b)
#define VADD(a, b) _mm256_add_ps(a, b)
#define VMAX(a, b) _mm256_max_ps(a, b)
#endif

enum {
    ROWS = 6,      /* output rows per register block */
    CB = W * NVB,  /* output columns per register block: 64 (AVX-512), 16 (AVX2) */
    PANEL = 64,    /* key columns per K^T panel */
    PV_KB = 64,    /* keys per pass of acc += P V: 64 rows of V stay in L1 */
    LANES = 16,    /* ra_tile_qkt's lane maxima per row (tile_gemm.h) */
};

#define ALWAYS_INLINE static inline __attribute__((always_inline))

#if defined(__AVX512F__)
enum { TB = 16 }; /* the packing's transposed block: TB keys by TB dimensions */

/* r[i][c] -> r[c][i], 16 x 16: pairs within 128-bit lanes, then 64-bit
 * pairs, then the 4 x 4 transpose of the lanes themselves. */
static inline void transpose_block(__m512 r[16])
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
#else
enum { TB = 8 };

/* r[i][c] -> r[c][i], 8 x 8: pairs within each 128-bit half, then 64-bit
 * pairs (columns c and c + 4 of rows 0-3 or 4-7), then the halves. */
static inline void transpose_block(__m256 r[8])
{
    __m256 t[8], u[8];
    for (int i = 0; i < 8; i += 2) {
        t[i] = _mm256_unpacklo_ps(r[i], r[i + 1]);     /* r_i0 r_(i+1)0 r_i1 r_(i+1)1 per half */
        t[i + 1] = _mm256_unpackhi_ps(r[i], r[i + 1]); /* columns 2, 3 of each half */
    }
    for (int g = 0; g < 8; g += 4) { /* u[g + c], half H: rows g..g+3 of column 4 H + c */
        u[g] = _mm256_shuffle_ps(t[g], t[g + 2], 0x44);
        u[g + 1] = _mm256_shuffle_ps(t[g], t[g + 2], 0xEE);
        u[g + 2] = _mm256_shuffle_ps(t[g + 1], t[g + 3], 0x44);
        u[g + 3] = _mm256_shuffle_ps(t[g + 1], t[g + 3], 0xEE);
    }
    for (int c = 0; c < 4; c++) {
        r[c] = _mm256_permute2f128_ps(u[c], u[4 + c], 0x20);     /* low halves: column c */
        r[4 + c] = _mm256_permute2f128_ps(u[c], u[4 + c], 0x31); /* high halves: column 4 + c */
    }
}
#endif

void ra_tile_pack_kt(const float *k, int n, int D, float *kt)
{
    const int w = (n + 15) / 16 * 16;
    for (int j = 0; j < w; j += TB) { /* TB keys by TB dimensions at a time */
        const int p0 = j / PANEL * PANEL, pw = w - p0 < PANEL ? w - p0 : PANEL;
        float *dst = kt + (size_t)p0 * D + (j - p0);
        for (int d0 = 0; d0 < D; d0 += TB) {
            vf r[TB];
            for (int i = 0; i < TB; i++) r[i] = j + i < n ? VLOAD(k + (size_t)(j + i) * D + d0) : VZERO();
            transpose_block(r);
            for (int c = 0; c < TB; c++) VSTORE(dst + (size_t)(d0 + c) * pw, r[c]);
        }
    }
}

/* s[r][0 .. W NV) = scale * q[r] . the block's panel columns, r < R: R x NV
 * accumulators, one broadcast of q[r][d] per row and step d. With lanes
 * ([R][16]), each row's lane-wise maxima of what it stores too (vector v
 * covers lanes (W v) mod 16 onwards): set by the tile's first block
 * (first), raised by the others. */
ALWAYS_INLINE void qkt_block(const float *q, int D, const float *panel, int pw, float scale,
                             float *s, int lds, float *lanes, int first, const int R, const int NV)
{
    vf c[ROWS][NVB], b[NVB];
    for (int r = 0; r < R; r++)
        for (int v = 0; v < NV; v++) c[r][v] = VZERO();
    for (int d = 0; d < D; d++) {
        for (int v = 0; v < NV; v++) b[v] = VLOAD(panel + (size_t)d * pw + W * v);
        for (int r = 0; r < R; r++) {
            const vf a = VSET1(q[(size_t)r * D + d]);
            for (int v = 0; v < NV; v++) c[r][v] = VFMA(a, b[v], c[r][v]);
        }
    }
    const vf sc = VSET1(scale);
    for (int r = 0; r < R; r++)
        for (int v = 0; v < NV; v++) {
            c[r][v] = VMUL(c[r][v], sc);
            VSTORE(s + (size_t)r * lds + W * v, c[r][v]);
        }
    if (!lanes) return;
    for (int r = 0; r < R; r++) /* the softmax then needs no pass of its own for the row max */
        for (int g = 0; g < LANES; g += W) {
            vf t = VSET1(-__builtin_inff());
            /* the new value first, as ra_rowmax: a NaN logit is passed over (max returns its second operand) */
            for (int v = g / W; v < NV; v += LANES / W) t = VMAX(c[r][v], t);
            if (!first) t = VMAX(t, VLOAD(lanes + LANES * r + g));
            VSTORE(lanes + LANES * r + g, t);
        }
}

/* acc[r][0 .. W NV) += sum_{j < kb} A(r, j) v[j][0 .. W NV), r < R, where
 * A(r, j) is p[r][j], or p[j][r] when TA (P^T, dS^T of the backward). The
 * kb products are summed apart from acc, then added to it: each output's
 * rounding error grows with kb plus the number of passes, not with n. */
ALWAYS_INLINE void pv_block(const float *p, int ldp, int kb, const float *v, int D, float *acc,
                            const int R, const int NV, const int TA)
{
    vf c[ROWS][NVB], b[NVB];
    for (int r = 0; r < R; r++)
        for (int u = 0; u < NV; u++) c[r][u] = VZERO();
    for (int j = 0; j < kb; j++) {
        for (int u = 0; u < NV; u++) b[u] = VLOAD(v + (size_t)j * D + W * u);
        for (int r = 0; r < R; r++) {
            const vf a = VSET1(TA ? p[(size_t)j * ldp + r] : p[(size_t)r * ldp + j]);
            for (int u = 0; u < NV; u++) c[r][u] = VFMA(a, b[u], c[r][u]);
        }
    }
    for (int r = 0; r < R; r++)
        for (int u = 0; u < NV; u++) {
            float *a = acc + (size_t)r * D + W * u;
            VSTORE(a, VADD(VLOAD(a), c[r][u]));
        }
}

/* One instance per (rows, vectors): the loops above unroll into registers.
 * Blocks are whole multiples of 16 columns (tile_gemm.h), so AVX2 blocks
 * are always 2 vectors wide. */
_Static_assert(ROWS == 6, "FOR_SHAPES lists 1 to ROWS rows");
#if defined(__AVX512F__)
#define FOR_SHAPES(X) \
    X(1, 1) X(1, 2) X(1, 3) X(1, 4) X(2, 1) X(2, 2) X(2, 3) X(2, 4) \
    X(3, 1) X(3, 2) X(3, 3) X(3, 4) X(4, 1) X(4, 2) X(4, 3) X(4, 4) \
    X(5, 1) X(5, 2) X(5, 3) X(5, 4) X(6, 1) X(6, 2) X(6, 3) X(6, 4)
#else
_Static_assert(CB == 16, "AVX2 blocks are one 16-column group");
#define FOR_SHAPES(X) X(1, 2) X(2, 2) X(3, 2) X(4, 2) X(5, 2) X(6, 2)
#endif

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
    /* panel outer: its D x 64 floats stay in L1 while all m rows pass; then
     * rows, so a block's ROWS rows of q stay in L1 across the panel's
     * 16-column groups (AVX2: 4 of them; the other order read q from L2
     * once per group and ran the forward 1-2 % slower) */
    for (int p0 = 0; p0 < ncols; p0 += PANEL) {
        const int pw = w - p0 < PANEL ? w - p0 : PANEL;
        const int pc = ncols - p0 < PANEL ? ncols - p0 : PANEL; /* the panel's columns asked for */
        for (int r0 = 0; r0 < m; r0 += ROWS)
            for (int c0 = 0; c0 < pc; c0 += CB) {
                const int nv = (pc - c0 < CB ? pc - c0 : CB) / W;
                const float *panel = kt + (size_t)p0 * D + c0;
                qkt_any(m - r0 < ROWS ? m - r0 : ROWS, nv, q + (size_t)r0 * D, D, panel, pw, scale,
                        s + (size_t)r0 * lds + p0 + c0, lds, lanes ? lanes + (size_t)LANES * r0 : NULL,
                        p0 + c0 == 0);
            }
    }
}

/* acc += A V over m output rows and n keys, A(r, j) at p[r ldp + j], or at
 * p[j ldp + r] when ta */
static void pv_rows(const float *p, int m, int n, int ldp, int ta, const float *v, int D,
                    float *acc)
{
    /* keys ascending for every row: the same order of sums as one pass.
     * Column groups innermost, so a block's ROWS x PV_KB of A stays in L1
     * across the CB-column groups of the output (AVX2: 4 at D = 64), as
     * the PV_KB rows of v do: A is read from L2 once, not once per group
     * (0-5 % faster here, bitwise the same) */
    for (int j0 = 0; j0 < n; j0 += PV_KB) {
        const int kb = n - j0 < PV_KB ? n - j0 : PV_KB;
        for (int r0 = 0; r0 < m; r0 += ROWS) {
            const int R = m - r0 < ROWS ? m - r0 : ROWS;
            const float *p0 = ta ? p + (size_t)j0 * ldp + r0 : p + (size_t)r0 * ldp + j0;
            for (int d0 = 0; d0 < D; d0 += CB) {
                const int nv = (D - d0 < CB ? D - d0 : CB) / W;
                pv_any(R, nv, ta, p0, ldp, kb, v + (size_t)j0 * D + d0, D, acc + (size_t)r0 * D + d0);
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
