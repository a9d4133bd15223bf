/* tile_gemm.h - the products of the attention tiles, S = Q K^T, acc += P V
 * and acc += P^T V, written for AVX-512 and AVX2 without OpenBLAS's packing
 * (docs/design.md §4.1 "Tile products").
 *
 * At D = 64 each product of a tile does only 64 multiply-adds per element
 * it writes or packs, so OpenBLAS's copies of both operands and its zeroing
 * of C (beta = 0) took a fifth of the forward. Here the rows of V (and of
 * dO, K, Q in the backward) are already the vectors a kernel needs, the
 * rows of Q and P are read one scalar at a time (broadcast), and only K
 * (and V for dP = dO V^T) is rearranged: once per key tile, into column
 * panels of K^T that stay in L1 while the query rows stream past them.
 * Each kernel holds a block of its output in registers: 6 x 64 in 24 of
 * AVX-512's, 6 x 16 in 12 of AVX2's. The sums run in a fixed order per
 * output (the same with either unit), so the result does not depend on the
 * thread count.
 *
 * Usable when ra_tile_gemm_ok(D): an AVX-512 build, or an AVX2 build with
 * FMA (AMD Zen, Intel Haswell to Alder Lake), and D a multiple of 16 up to
 * RA_TILE_GEMM_MAX_D. Elsewhere attn.c calls cblas_sgemm. */
#ifndef RINGATTN_TILE_GEMM_H
#define RINGATTN_TILE_GEMM_H

#if defined(__AVX512F__) || (defined(__AVX2__) && defined(__FMA__))
#define RA_TILE_GEMM 1
#else
#define RA_TILE_GEMM 0
#endif

enum { RA_TILE_GEMM_MAX_D = 256 };

/* 1 when the kernels below run for head dimension D on this build */
static inline int ra_tile_gemm_ok(int D)
{
    return RA_TILE_GEMM && D > 0 && D % 16 == 0 && D <= RA_TILE_GEMM_MAX_D;
}

#if RA_TILE_GEMM

/* Floats ra_tile_pack_kt writes for n keys: D x (n rounded up to 16). */
static inline long ra_tile_kt_floats(int n, int D) { return (long)((n + 15) / 16 * 16) * D; }

/* k [n][D] -> kt as panels of 64 key columns (the last one narrower, a
 * multiple of 16, zero past key n); panel p is [D][width] at kt + 64 p D. */
void ra_tile_pack_kt(const float *k, int n, int D, float *kt);

/* s[r][j] = scale * sum_d q[r][d] k[j][d] for r < m and j < ncols, with
 * ncols a multiple of 16 not above kt's width; q [m][D], s rows lds apart.
 * kt from ra_tile_pack_kt of nk keys. lanes: NULL, or [m][16] that receives
 * lane c's maximum of s[r][c + 16 i] over i (row r's maximum is the
 * largest of its 16; columns past nk count, as zeros). */
void ra_tile_qkt(const float *q, int m, int D, const float *kt, int nk, int ncols, float scale,
                 float *s, int lds, float *lanes);

/* acc[r][d] += sum_{j < n} p[r][j] v[j][d] for r < m, d < D; p rows ldp
 * apart, v [n][D], acc [m][D]. */
void ra_tile_pv(const float *p, int m, int n, int ldp, const float *v, int D, float *acc);

/* acc[r][d] += sum_{j < n} p[j][r] v[j][d] for r < m, d < D: the same with
 * p transposed (the backward's dV += P^T dO and dK += dS^T Q); p rows ldp
 * apart, holding m columns. */
void ra_tile_ptv(const float *p, int m, int n, int ldp, const float *v, int D, float *acc);

#endif /* RA_TILE_GEMM */
#endif
