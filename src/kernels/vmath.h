/* vmath.h - the few vector loops of the attention tiles: row max, exp with
 * sum, scaling. Written with GCC vector extensions as wide as the target's
 * registers: 16 floats with AVX-512, 8 with AVX2 (a 16-float type there
 * took two registers per value and spilled them: the softmax ran at half
 * the speed), 16 in a plain build, which the compiler lowers as it can.
 * Tails are scalar or masked. exp is a Cody-Waite reduction plus a
 * polynomial: relative error below 2 ulp on [-87, 88]; exp(x) = 0 below
 * -87 and for -inf. The softmax of the attention tiles uses a cheaper one,
 * ra_vexp_tile (docs/design.md §4.1). */
#ifndef RINGATTN_VMATH_H
#define RINGATTN_VMATH_H

#include <math.h>
#include <stdint.h>
#include <string.h>
#if defined(__AVX512F__) || defined(__AVX2__) || defined(__FMA__)
#include <immintrin.h>
#endif

#if defined(__AVX512F__)
#define RA_VW 16
#elif defined(__AVX2__)
#define RA_VW 8
#else
#define RA_VW 16
#endif
typedef float ra_vf __attribute__((vector_size(RA_VW * 4)));
typedef int32_t ra_vi __attribute__((vector_size(RA_VW * 4)));
#define RA_V256 (RA_VW == 8) /* AVX2: the 256-bit intrinsics below */

static inline ra_vf ra_vload(const float *p) { ra_vf v; memcpy(&v, p, sizeof v); return v; }
static inline void ra_vstore(float *p, ra_vf v) { memcpy(p, &v, sizeof v); }
static inline ra_vf ra_vsplat(float x) { return (ra_vf){0} + x; }
/* mask ? a : b, mask lanes all ones or all zeros */
static inline ra_vf ra_vselect(ra_vi mask, ra_vf a, ra_vf b)
{
    return (ra_vf)(((ra_vi)a & mask) | ((ra_vi)b & ~mask));
}

/* a * b + c, fused (one rounding) where the target has FMA, else two
 * roundings. (-std=c11 turns off the compiler's own contraction.) */
static inline ra_vf ra_vfma(ra_vf a, ra_vf b, ra_vf c)
{
#if defined(__AVX512F__)
    return (ra_vf)_mm512_fmadd_ps((__m512)a, (__m512)b, (__m512)c);
#elif RA_V256 && defined(__FMA__)
    return (ra_vf)_mm256_fmadd_ps((__m256)a, (__m256)b, (__m256)c);
#elif defined(__FMA__)
    union { ra_vf v; __m256 h[2]; } ua = { a }, ub = { b }, uc = { c }, r;
    r.h[0] = _mm256_fmadd_ps(ua.h[0], ub.h[0], uc.h[0]);
    r.h[1] = _mm256_fmadd_ps(ua.h[1], ub.h[1], uc.h[1]);
    return r.v;
#else
    return a * b + c;
#endif
}

/* lane-wise max; either operand when they are equal (or one is NaN) */
static inline ra_vf ra_vmax(ra_vf a, ra_vf b)
{
#if defined(__AVX512F__)
    return (ra_vf)_mm512_max_ps((__m512)a, (__m512)b);
#elif RA_V256
    return (ra_vf)_mm256_max_ps((__m256)a, (__m256)b);
#else
    return ra_vselect(a > b, a, b);
#endif
}

static inline ra_vf ra_vmin(ra_vf a, ra_vf b)
{
#if defined(__AVX512F__)
    return (ra_vf)_mm512_min_ps((__m512)a, (__m512)b);
#elif RA_V256
    return (ra_vf)_mm256_min_ps((__m256)a, (__m256)b);
#else
    return ra_vselect(a < b, a, b);
#endif
}

static inline ra_vf ra_vexp(ra_vf x)
{
    const ra_vf magic = ra_vsplat(12582912.0f); /* 1.5 * 2^23: round to int */
    ra_vi dead = x < ra_vsplat(-87.0f);         /* includes -inf */
    x = ra_vselect(x > ra_vsplat(88.0f), ra_vsplat(88.0f), x);
    x = ra_vselect(dead, ra_vsplat(0.0f), x);
    ra_vf t = x * ra_vsplat(1.44269504088896341f) + magic;
    ra_vf n = t - magic;
    ra_vi ni = (ra_vi)t - (ra_vi)magic;
    ra_vf r = x - n * ra_vsplat(0.693359375f);  /* ln2 high part, exact */
    r = r - n * ra_vsplat(-2.12194440e-4f);     /* ln2 low part */
    ra_vf p = ra_vsplat(1.0f / 5040.0f);
    p = p * r + ra_vsplat(1.0f / 720.0f);
    p = p * r + ra_vsplat(1.0f / 120.0f);
    p = p * r + ra_vsplat(1.0f / 24.0f);
    p = p * r + ra_vsplat(1.0f / 6.0f);
    p = p * r + ra_vsplat(0.5f);
    p = p * r + ra_vsplat(1.0f);
    p = p * r + ra_vsplat(1.0f);
    ra_vi bits = (ra_vi)p + (ni << 23);
    return (ra_vf)(bits & ~dead);
}

/* exp(y) for the softmax of the attention tiles, y = logit - shift <= 88:
 * 2^(y log2 e) with n = round(y log2 e) and r = y log2 e - n each from one
 * fused multiply-add (|r| <= 1/2, no two-part ln 2: y log2 e is exact
 * inside the multiply-add), then a degree-6 polynomial for 2^r (minimax
 * for the relative error on |r| <= 1/2: 2.0e-9; 7.9e-8 evaluated in
 * float32; a build without FMA reduces as ra_vexp does). Two fused
 * multiply-adds fewer than a reduction in natural units (ra_vexp's), and
 * no mask when !masked: y is clamped at -86, so anything below gives
 * exp(-86) = 4.4e-38, which vanishes beside the row's maximum (exp 1) in
 * any float32 sum or product. masked: a tile
 * whose mask set -inf (and anything below -86) keeps exact zeros. NaN
 * stays NaN (max returns its second operand). */
static inline __attribute__((always_inline)) ra_vf ra_vexp_tile(ra_vf y, const int masked)
{
    const ra_vf magic = ra_vsplat(12582912.0f), l2e = ra_vsplat(1.44269504088896341f);
#if defined(__AVX512F__)
    /* AVX-512: p 2^n by vscalefps, where the integer form takes a shift and
     * an add, and the mask folded into it (zeroing) where the integer form
     * takes a compare and an and-not. Masked, no clamp: -inf lanes turn NaN
     * and are zeroed; "not less than" keeps NaN lanes NaN. */
    const __mmask16 live = masked ? _mm512_cmp_ps_mask((__m512)y, _mm512_set1_ps(-86.0f), _CMP_NLT_UQ) : 0xffff;
    if (!masked) y = ra_vmax(ra_vsplat(-86.0f), y);
#else
    const ra_vi dead = masked ? y < ra_vsplat(-86.0f) : (ra_vi){0};
    y = ra_vmax(ra_vsplat(-86.0f), y);
#endif
    ra_vf t = ra_vfma(y, l2e, magic); /* magic + n in the low bits */
    ra_vf n = t - magic;
#if defined(__FMA__) || defined(__AVX512F__)
    ra_vf r = ra_vfma(y, l2e, -n);
#else
    /* without a fused multiply-add y log2 e rounds (by 4e-6 at y = -86, a
     * relative error of 3e-6 in the result): reduce in natural units as
     * ra_vexp does (n ln 2 in two parts, the first exact), then scale */
    ra_vf r = ((y - n * ra_vsplat(0.693359375f)) - n * ra_vsplat(-2.12194440e-4f)) * l2e;
#endif
    ra_vf p = ra_vfma(ra_vsplat(1.535336196e-04f), r, ra_vsplat(1.339887502e-03f));
    p = ra_vfma(p, r, ra_vsplat(9.618436918e-03f));
    p = ra_vfma(p, r, ra_vsplat(5.550332367e-02f));
    p = ra_vfma(p, r, ra_vsplat(2.402264774e-01f));
    p = ra_vfma(p, r, ra_vsplat(6.931471825e-01f));
    p = ra_vfma(p, r, ra_vsplat(1.0f));
#if defined(__AVX512F__)
    return (ra_vf)_mm512_maskz_scalef_ps(live, (__m512)p, (__m512)n); /* exact: 2^n times p, normal */
#else
    /* the bits of t are those of magic plus n, and magic's low 9 bits are
     * 0: t << 23 is n << 23, the exponent to add */
    ra_vi e = (ra_vi)p + ((ra_vi)t << 23);
    return (ra_vf)(masked ? e & ~dead : e);
#endif
}

#if RA_V256
/* lanes below n all ones */
static inline __m256i ra_vmask256(int n)
{
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}
#endif

/* x[0..n) with the lanes from n on set to `fill`, 0 < n < RA_VW. With
 * AVX-512 or AVX2 a masked load (lanes past n are not read, so they cannot
 * fault) instead of a copy through a buffer: the causal diagonal's rows end
 * at every n. */
static inline ra_vf ra_vload_part(const float *x, int n, float fill)
{
#if defined(__AVX512F__)
    return (ra_vf)_mm512_mask_loadu_ps(_mm512_set1_ps(fill), (__mmask16)((1u << n) - 1), x);
#elif RA_V256
    const __m256i m = ra_vmask256(n);
    return (ra_vf)_mm256_blendv_ps(_mm256_set1_ps(fill), _mm256_maskload_ps(x, m), _mm256_castsi256_ps(m));
#else
    float b[RA_VW];
    for (int i = 0; i < RA_VW; i++) b[i] = fill;
    memcpy(b, x, sizeof(float) * (size_t)n);
    return ra_vload(b);
#endif
}

static inline void ra_vstore_part(float *x, int n, ra_vf v)
{
#if defined(__AVX512F__)
    _mm512_mask_storeu_ps(x, (__mmask16)((1u << n) - 1), (__m512)v);
#elif RA_V256
    _mm256_maskstore_ps(x, ra_vmask256(n), (__m256)v);
#else
    float b[RA_VW];
    ra_vstore(b, v);
    memcpy(x, b, sizeof(float) * (size_t)n);
#endif
}

/* The lanes of v folded by max and by sum: a tree of 4 steps with AVX-512
 * (a chain of 16 dependent steps took a tenth of the softmax's time), a
 * chain over the lanes elsewhere (8 with AVX2). */
static inline float ra_vhmax(ra_vf v)
{
#if defined(__AVX512F__)
    return _mm512_reduce_max_ps((__m512)v);
#else
    float m = -INFINITY;
    for (int i = 0; i < RA_VW; i++) m = v[i] > m ? v[i] : m;
    return m;
#endif
}

static inline float ra_vhsum(ra_vf v)
{
#if defined(__AVX512F__)
    return _mm512_reduce_add_ps((__m512)v);
#else
    float sum = 0.0f;
    for (int i = 0; i < RA_VW; i++) sum += v[i];
    return sum;
#endif
}

/* max of x[0..n), -inf when n == 0 */
static inline float ra_rowmax(const float *x, int n)
{
    ra_vf m0 = ra_vsplat(-INFINITY), m1 = m0, m2 = m0, m3 = m0;
    int j = 0;
    for (; j + 4 * RA_VW <= n; j += 4 * RA_VW) { /* four chains: max has a latency */
        m0 = ra_vmax(ra_vload(x + j), m0);
        m1 = ra_vmax(ra_vload(x + j + RA_VW), m1);
        m2 = ra_vmax(ra_vload(x + j + 2 * RA_VW), m2);
        m3 = ra_vmax(ra_vload(x + j + 3 * RA_VW), m3);
    }
    for (; j + RA_VW <= n; j += RA_VW) m0 = ra_vmax(ra_vload(x + j), m0);
    if (j < n) m1 = ra_vmax(ra_vload_part(x + j, n - j, -INFINITY), m1);
    m0 = ra_vmax(ra_vmax(m0, m1), ra_vmax(m2, m3));
    return ra_vhmax(m0);
}

/* x[j] = exp(x[j] - shift) for j < n, shift >= max x[j] (ra_vexp_tile;
 * masked: x may hold -inf, whose exp stays exactly 0); returns the sum (in
 * float32). */
static inline __attribute__((always_inline)) float ra_exp_shift_sum(float *x, int n, float shift,
                                                                    const int masked)
{
    ra_vf vs = ra_vsplat(shift), acc = ra_vsplat(0.0f);
    int j = 0;
    for (; j + RA_VW <= n; j += RA_VW) {
        ra_vf e = ra_vexp_tile(ra_vload(x + j) - vs, masked);
        ra_vstore(x + j, e);
        acc += e;
    }
    if (j < n) { /* the lanes past n hold -inf: exp 0 */
        ra_vf e = ra_vexp_tile(ra_vload_part(x + j, n - j, -INFINITY) - vs, 1);
        ra_vstore_part(x + j, n - j, e);
        acc += e;
    }
    return ra_vhsum(acc);
}

/* x[j] = exp((x[j] - hi) - lo) for j < n: two-part shift, no sum
 * (ra_vexp_tile; masked as for ra_exp_shift_sum). The argument is clamped
 * at 88, as ra_vexp would: an lse below the logits gives large values, not
 * garbage. */
static inline __attribute__((always_inline)) void ra_exp_shift2(float *x, int n, float hi, float lo,
                                                                const int masked)
{
    const ra_vf vh = ra_vsplat(hi), vl = ra_vsplat(lo), top = ra_vsplat(88.0f);
    int j = 0;
    for (; j + RA_VW <= n; j += RA_VW)
        ra_vstore(x + j, ra_vexp_tile(ra_vmin((ra_vload(x + j) - vh) - vl, top), masked));
    if (j < n) {
        ra_vf a = (ra_vload_part(x + j, n - j, -INFINITY) - vh) - vl;
        ra_vstore_part(x + j, n - j, ra_vexp_tile(ra_vmin(a, top), 1));
    }
}

/* scalar exp of x <= 0 (the rescale exp(m - m'), 0 for m = -inf), as a
 * tile with masked entries computes it */
static inline float ra_exp1_neg(float x) { return ra_vexp_tile(ra_vsplat(x), 1)[0]; }

/* scalar exp with the same accuracy and edge rules */
static inline float ra_exp1(float x) { return ra_vexp(ra_vsplat(x))[0]; }

#endif
