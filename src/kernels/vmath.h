/* vmath.h - the few vector loops of the attention tiles: row max, exp with
 * sum, scaling. Written with GCC vector extensions (16 floats), which the
 * compiler lowers to AVX-512, AVX2 or SSE as the target allows; tails are
 * scalar. exp is a Cody-Waite reduction plus a degree-7 polynomial: relative
 * error below 2 ulp on [-87, 88]; exp(x) = 0 below -87 and for -inf. */
#ifndef RINGATTN_VMATH_H
#define RINGATTN_VMATH_H

#include <math.h>
#include <stdint.h>
#include <string.h>

typedef float ra_vf __attribute__((vector_size(64)));
typedef int32_t ra_vi __attribute__((vector_size(64)));
#define RA_VW 16

static inline ra_vf ra_vload(const float *p) { ra_vf v; memcpy(&v, p, sizeof v); return v; }
static inline void ra_vstore(float *p, ra_vf v) { memcpy(p, &v, sizeof v); }
static inline ra_vf ra_vsplat(float x) { return (ra_vf){0} + x; }
/* mask ? a : b, mask lanes all ones or all zeros */
static inline ra_vf ra_vselect(ra_vi mask, ra_vf a, ra_vf b)
{
    return (ra_vf)(((ra_vi)a & mask) | ((ra_vi)b & ~mask));
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

/* max of x[0..n), -inf when n == 0 */
static inline float ra_rowmax(const float *x, int n)
{
    float m = -INFINITY;
    int j = 0;
    if (n >= RA_VW) {
        ra_vf vm = ra_vload(x);
        for (j = RA_VW; j + RA_VW <= n; j += RA_VW) {
            ra_vf v = ra_vload(x + j);
            vm = ra_vselect(v > vm, v, vm);
        }
        for (int i = 0; i < RA_VW; i++) m = vm[i] > m ? vm[i] : m;
    }
    for (; j < n; j++) m = x[j] > m ? x[j] : m;
    return m;
}

/* x[j] = exp(x[j] - shift) for j < n; returns the sum (in float32). */
static inline float ra_exp_shift_sum(float *x, int n, float shift)
{
    ra_vf vs = ra_vsplat(shift), acc = ra_vsplat(0.0f);
    int j = 0;
    for (; j + RA_VW <= n; j += RA_VW) {
        ra_vf e = ra_vexp(ra_vload(x + j) - vs);
        ra_vstore(x + j, e);
        acc += e;
    }
    float sum = 0.0f;
    for (int i = 0; i < RA_VW; i++) sum += acc[i];
    for (; j < n; j++) {
        ra_vf e = ra_vexp(ra_vsplat(x[j] - shift));
        x[j] = e[0];
        sum += e[0];
    }
    return sum;
}

/* x[j] = exp((x[j] - hi) - lo) for j < n: two-part shift, no sum. */
static inline void ra_exp_shift2(float *x, int n, float hi, float lo)
{
    ra_vf vh = ra_vsplat(hi), vl = ra_vsplat(lo);
    int j = 0;
    for (; j + RA_VW <= n; j += RA_VW) ra_vstore(x + j, ra_vexp((ra_vload(x + j) - vh) - vl));
    for (; j < n; j++) x[j] = ra_vexp(ra_vsplat((x[j] - hi) - lo))[0];
}

/* scalar exp with the same accuracy and edge rules */
static inline float ra_exp1(float x) { return ra_vexp(ra_vsplat(x))[0]; }

#endif
