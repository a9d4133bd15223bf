/* ref_attn.c - naive float64 reference attention (see ref_attn.h). */
#include "ref_attn.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void *xmalloc(size_t bytes)
{
    void *p = malloc(bytes ? bytes : 1);
    if (!p) {
        fprintf(stderr, "ref_attn: out of memory (%zu bytes)\n", bytes);
        abort();
    }
    return p;
}

double *ref_zalloc(size_t n)
{
    double *p = xmalloc(n * sizeof *p);
    memset(p, 0, n * sizeof *p);
    return p;
}

void ref_widen_into(double *dst, const float *src, size_t n)
{
    for (size_t i = 0; i < n; i++) dst[i] = (double)src[i];
}

double *ref_widen(const float *x, size_t n)
{
    double *p = xmalloc(n * sizeof *p);
    ref_widen_into(p, x, n);
    return p;
}

static int allowed(int causal, int32_t qp, int32_t kp, const int32_t *qseg,
                   const int32_t *kseg, int i, int j)
{
    if (causal && kp > qp) return 0;
    if (qseg && kseg && qseg[i] != kseg[j]) return 0;
    return 1;
}

static double dot(const double *a, const double *b, int D)
{
    double s = 0.0;
    for (int d = 0; d < D; d++) s += a[d] * b[d];
    return s;
}

/* Softmax probabilities of query row i over the keys: p[j] = 0 for a key the
 * row may not see. Returns the number of visible keys; *lse_out = log of the
 * softmax denominator (natural log), -INFINITY when none is visible. */
static int row_probs(int i, int32_t qp, const int32_t *qseg, const double *qi, int nk,
                     const int32_t *kpos, const int32_t *kseg, const double *k, int D,
                     double scale, int causal, double *p, double *lse_out)
{
    int nvis = 0;
    double m = -INFINITY;
    for (int j = 0; j < nk; j++) {
        if (allowed(causal, qp, kpos[j], qseg, kseg, i, j)) {
            p[j] = scale * dot(qi, k + (size_t)j * D, D); /* the logit for now */
            if (p[j] > m) m = p[j];
            nvis++;
        }
    }
    if (nvis == 0) {
        for (int j = 0; j < nk; j++) p[j] = 0.0;
        *lse_out = -INFINITY;
        return 0;
    }
    double z = 0.0;
    for (int j = 0; j < nk; j++) {
        if (allowed(causal, qp, kpos[j], qseg, kseg, i, j)) {
            p[j] = exp(p[j] - m);
            z += p[j];
        } else {
            p[j] = 0.0;
        }
    }
    for (int j = 0; j < nk; j++) p[j] /= z;
    *lse_out = m + log(z);
    return nvis;
}

void ref_head_forward(int nq, const int32_t *qpos, const int32_t *qseg, const double *q,
                      int nk, const int32_t *kpos, const int32_t *kseg, const double *k,
                      const double *v, int D, double scale, int causal, double *o, double *lse)
{
    double *p = xmalloc((size_t)(nk > 0 ? nk : 1) * sizeof *p);
    for (int i = 0; i < nq; i++) {
        double *oi = o + (size_t)i * D;
        double l;
        int nvis = row_probs(i, qpos[i], qseg, q + (size_t)i * D, nk, kpos, kseg, k, D, scale,
                             causal, p, &l);
        lse[i] = l;
        for (int d = 0; d < D; d++) oi[d] = 0.0;
        if (nvis == 0) continue;
        for (int j = 0; j < nk; j++) {
            if (p[j] == 0.0) continue;
            const double *vj = v + (size_t)j * D;
            for (int d = 0; d < D; d++) oi[d] += p[j] * vj[d];
        }
    }
    free(p);
}

void ref_head_backward(int nq, const int32_t *qpos, const int32_t *qseg, const double *q,
                       int nk, const int32_t *kpos, const int32_t *kseg, const double *k,
                       const double *v, int D, double scale, int causal, const double *dout,
                       double *dq, double *dk, double *dv)
{
    double *p = xmalloc((size_t)(nk > 0 ? nk : 1) * sizeof *p);
    double *dp = xmalloc((size_t)(nk > 0 ? nk : 1) * sizeof *dp);
    for (int i = 0; i < nq; i++) {
        const double *qi = q + (size_t)i * D;
        const double *gi = dout + (size_t)i * D;
        double l;
        int nvis = row_probs(i, qpos[i], qseg, qi, nk, kpos, kseg, k, D, scale, causal, p, &l);
        if (nvis == 0) continue; /* no key seen: no gradient at all */
        double pdp = 0.0; /* sum_k p_k dp_k */
        for (int j = 0; j < nk; j++) {
            dp[j] = dot(gi, v + (size_t)j * D, D);
            pdp += p[j] * dp[j];
        }
        for (int j = 0; j < nk; j++) {
            if (!allowed(causal, qpos[i], kpos[j], qseg, kseg, i, j)) continue;
            double ds = p[j] * (dp[j] - pdp);
            if (dv) {
                double *dvj = dv + (size_t)j * D;
                for (int d = 0; d < D; d++) dvj[d] += p[j] * gi[d];
            }
            if (dq) {
                const double *kj = k + (size_t)j * D;
                double *dqi = dq + (size_t)i * D;
                for (int d = 0; d < D; d++) dqi[d] += scale * ds * kj[d];
            }
            if (dk) {
                double *dkj = dk + (size_t)j * D;
                for (int d = 0; d < D; d++) dkj[d] += scale * ds * qi[d];
            }
        }
    }
    free(dp);
    free(p);
}

/* ---- whole arrays -------------------------------------------------------- */

static int32_t *iota(int L)
{
    int32_t *pos = xmalloc((size_t)(L > 0 ? L : 1) * sizeof *pos);
    for (int i = 0; i < L; i++) pos[i] = i;
    return pos;
}

static void check_cfg(const ref_attn_cfg *c)
{
    if (c->H <= 0 || c->Hkv <= 0 || c->H % c->Hkv != 0 || c->L < 0 || c->D <= 0 || c->B <= 0) {
        fprintf(stderr, "ref_attn: bad shape B=%d H=%d Hkv=%d L=%d D=%d\n", c->B, c->H, c->Hkv,
                c->L, c->D);
        abort();
    }
}

void ref_attn_forward(const ref_attn_cfg *c, const double *q, const double *k, const double *v,
                      double *o, double *lse)
{
    check_cfg(c);
    const int B = c->B, H = c->H, Hkv = c->Hkv, L = c->L, D = c->D, G = H / Hkv;
    int32_t *pos = iota(L);
    for (int b = 0; b < B; b++) {
        const int32_t *seg = c->seg ? c->seg + (size_t)b * L : NULL;
        for (int h = 0; h < H; h++) {
            size_t qo = ((size_t)b * H + h) * (size_t)L;
            size_t ko = ((size_t)b * Hkv + h / G) * (size_t)L;
            ref_head_forward(L, pos, seg, q + qo * D, L, pos, seg, k + ko * D, v + ko * D, D,
                             c->scale, c->causal, o + qo * D, lse + qo);
        }
    }
    free(pos);
}

void ref_attn_backward(const ref_attn_cfg *c, const double *q, const double *k, const double *v,
                       const double *dout, double *dq, double *dk, double *dv)
{
    check_cfg(c);
    const int B = c->B, H = c->H, Hkv = c->Hkv, L = c->L, D = c->D, G = H / Hkv;
    memset(dq, 0, (size_t)B * H * L * D * sizeof *dq);
    memset(dk, 0, (size_t)B * Hkv * L * D * sizeof *dk);
    memset(dv, 0, (size_t)B * Hkv * L * D * sizeof *dv);
    int32_t *pos = iota(L);
    for (int b = 0; b < B; b++) {
        const int32_t *seg = c->seg ? c->seg + (size_t)b * L : NULL;
        for (int h = 0; h < H; h++) {
            size_t qo = ((size_t)b * H + h) * (size_t)L;
            size_t ko = ((size_t)b * Hkv + h / G) * (size_t)L;
            ref_head_backward(L, pos, seg, q + qo * D, L, pos, seg, k + ko * D, v + ko * D, D,
                              c->scale, c->causal, dout + qo * D, dq + qo * D, dk + ko * D,
                              dv + ko * D);
        }
    }
    free(pos);
}

/* ---- comparisons --------------------------------------------------------- */

static void cmp_step(ref_cmp *r, size_t i, double x, double ref)
{
    double e;
    if (!isfinite(x)) {
        r->nonfinite++;
        e = (x == ref) ? 0.0 : INFINITY; /* equal infinities count as equal */
    } else {
        e = fabs(x - ref);
    }
    if (e > r->max_err) {
        r->max_err = e;
        r->worst = i;
    }
    double a = fabs(ref);
    if (a > r->max_ref) r->max_ref = a;
}

static void cmp_finish(ref_cmp *r)
{
    double den = r->max_ref > REF_TINY ? r->max_ref : REF_TINY;
    r->norm_err = r->max_err / den;
}

ref_cmp ref_compare_f(const float *x, const double *ref, size_t n)
{
    ref_cmp r = {0};
    for (size_t i = 0; i < n; i++) cmp_step(&r, i, (double)x[i], ref[i]);
    cmp_finish(&r);
    return r;
}

ref_cmp ref_compare_f_floor(const float *x, const double *ref, size_t n, double floor)
{
    ref_cmp r = ref_compare_f(x, ref, n);
    double den = r.max_ref > floor ? r.max_ref : floor;
    if (den < REF_TINY) den = REF_TINY;
    r.norm_err = r.max_err / den;
    return r;
}

ref_cmp ref_compare_d(const double *x, const double *ref, size_t n)
{
    ref_cmp r = {0};
    for (size_t i = 0; i < n; i++) cmp_step(&r, i, x[i], ref[i]);
    cmp_finish(&r);
    return r;
}

double ref_max_abs_d(const double *x, size_t n)
{
    double m = 0.0;
    for (size_t i = 0; i < n; i++) {
        double a = fabs(x[i]);
        if (!(a <= m)) m = a; /* NaN propagates */
    }
    return m;
}

double ref_max_abs_f(const float *x, size_t n)
{
    double m = 0.0;
    for (size_t i = 0; i < n; i++) {
        double a = fabs((double)x[i]);
        if (!(a <= m)) m = a;
    }
    return m;
}

size_t ref_count_nonfinite_f(const float *x, size_t n)
{
    size_t c = 0;
    for (size_t i = 0; i < n; i++) c += !isfinite(x[i]);
    return c;
}

static double lse_elem_err(double x, double ref)
{
    if (isnan(x) || isnan(ref)) return INFINITY;
    if (isinf(x) || isinf(ref)) return (x == ref) ? 0.0 : INFINITY;
    double den = fabs(ref) > 1.0 ? fabs(ref) : 1.0;
    return fabs(x - ref) / den;
}

double ref_lse_err_f(const float *x, const double *ref, size_t n, size_t *worst)
{
    double m = 0.0;
    size_t w = 0;
    for (size_t i = 0; i < n; i++) {
        double e = lse_elem_err((double)x[i], ref[i]);
        if (e > m) {
            m = e;
            w = i;
        }
    }
    if (worst) *worst = w;
    return m;
}

double ref_lse_err_d(const double *x, const double *ref, size_t n, size_t *worst)
{
    double m = 0.0;
    size_t w = 0;
    for (size_t i = 0; i < n; i++) {
        double e = lse_elem_err(x[i], ref[i]);
        if (e > m) {
            m = e;
            w = i;
        }
    }
    if (worst) *worst = w;
    return m;
}
