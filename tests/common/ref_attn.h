/* ref_attn.h - naive float64 reference attention for the tests.
 *
 * Written straight from the definitions in docs/design.md §4; it shares no code with
 * the library (it does not include attn.h and knows nothing about blocks,
 * online softmax or the ring). Everything is computed in double, one query
 * row at a time, with a stable softmax (the row maximum is subtracted).
 *
 * Inputs are double arrays; ref_widen() converts float32 test data (which is
 * exactly representable in double) so the reference sees the very same
 * numbers the library sees.
 *
 * Query i may see key j ("allowed"): always if bidirectional; kpos[j] <=
 * qpos[i] if causal; and, when segment ids are given, qseg[i] == kseg[j].
 * A query row that sees no key gets o = 0, lse = -INFINITY and contributes
 * nothing to any gradient (no NaN anywhere).
 *
 * Backward from the softmax Jacobian (not from the library's shortcut): for
 * a visible row i with probabilities p_j and dp_j = dout_i . v_j,
 *     ds_j = p_j (dp_j - sum_k p_k dp_k)
 *     dv_j += p_j dout_i,  dq_i += a sum_j ds_j k_j,  dk_j += a ds_j q_i.
 */
#ifndef RINGATTN_TESTS_REF_ATTN_H
#define RINGATTN_TESTS_REF_ATTN_H

#include <stddef.h>
#include <stdint.h>

/* ---- one head, explicit rows -------------------------------------------
 * q [nq][D], k, v [nk][D], o [nq][D], lse [nq], dout [nq][D],
 * dq [nq][D], dk, dv [nk][D]. qseg/kseg: segment masking applies only when
 * both are non-NULL. */

/* Overwrites o and lse. */
void ref_head_forward(int nq, const int32_t *qpos, const int32_t *qseg, const double *q,
                      int nk, const int32_t *kpos, const int32_t *kseg, const double *k,
                      const double *v, int D, double scale, int causal, double *o, double *lse);

/* Accumulates (+=) into dq, dk, dv (any of them may be NULL). */
void ref_head_backward(int nq, const int32_t *qpos, const int32_t *qseg, const double *q,
                       int nk, const int32_t *kpos, const int32_t *kseg, const double *k,
                       const double *v, int D, double scale, int causal, const double *dout,
                       double *dq, double *dk, double *dv);

/* ---- whole arrays --------------------------------------------------------
 * q, dout, o, dq [B][H][L][D]; k, v, dk, dv [B][Hkv][L][D]; lse [B][H][L];
 * seg [B][L] or NULL. Positions are the global indices 0..L-1. Query head h
 * uses kv head h / (H/Hkv); dk, dv sum over the query heads of a group. */
typedef struct {
    int B, H, Hkv, L, D;
    int causal;
    double scale;        /* the logit scale a (give 1/sqrt(D) explicitly) */
    const int32_t *seg;  /* [B][L] or NULL */
} ref_attn_cfg;

/* Overwrites o and lse. */
void ref_attn_forward(const ref_attn_cfg *c, const double *q, const double *k, const double *v,
                      double *o, double *lse);
/* Overwrites dq, dk, dv. */
void ref_attn_backward(const ref_attn_cfg *c, const double *q, const double *k, const double *v,
                       const double *dout, double *dq, double *dk, double *dv);

/* ---- helpers ------------------------------------------------------------- */

/* malloc'd copy of a float array as double (abort on allocation failure). */
double *ref_widen(const float *x, size_t n);
void ref_widen_into(double *dst, const float *src, size_t n);
/* malloc'd zero-filled doubles (abort on failure). */
double *ref_zalloc(size_t n);

/* Comparison of a result x against a reference ref, n values.
 *   max_err  = max |x - ref|            (INFINITY if any x is NaN/inf while ref is finite)
 *   max_ref  = max |ref|
 *   norm_err = max_err / max(max_ref, REF_TINY)
 *   worst    = index of max_err, nonfinite = count of non-finite x values. */
#define REF_TINY 1e-30
typedef struct {
    double max_err, max_ref, norm_err;
    size_t worst;
    size_t nonfinite;
} ref_cmp;

ref_cmp ref_compare_f(const float *x, const double *ref, size_t n);
ref_cmp ref_compare_d(const double *x, const double *ref, size_t n);
/* Same, but norm_err = max_err / max(max_ref, floor, REF_TINY): for tensors
 * whose true value may vanish while the float32 computation is a difference
 * of terms of size ~floor (e.g. dq, dk when a row sees a single key). */
ref_cmp ref_compare_f_floor(const float *x, const double *ref, size_t n, double floor);
double ref_max_abs_d(const double *x, size_t n);
double ref_max_abs_f(const float *x, size_t n);
/* Count of NaN / inf values (use for arrays that must be all finite). */
size_t ref_count_nonfinite_f(const float *x, size_t n);

/* Log-sum-exp comparison. Per element:
 *   both -inf                  -> 0
 *   exactly one -inf, or NaN   -> INFINITY (a failure at any tolerance)
 *   otherwise |x - ref| / max(1, |ref|)   (absolute for |ref| <= 1,
 *                                          relative above)
 * Returns the maximum; *worst (may be NULL) gets its index. */
double ref_lse_err_f(const float *x, const double *ref, size_t n, size_t *worst);
double ref_lse_err_d(const double *x, const double *ref, size_t n, size_t *worst);

#endif
