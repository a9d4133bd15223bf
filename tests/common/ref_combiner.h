/* ref_combiner.h - naive float64 reference for the Combiner heads (docs/design.md §5).
 *
 * Written straight from the definitions; it shares no code with the library
 * (nor with ref_attn.c). For every query i of every (batch, query head) it
 * builds the explicit list of direct keys j and of groups, computes each
 * group's summary (kbar_g, vbar_g) from the definition, then takes ONE
 * softmax over
 *     [a*q_i.k_j for the direct j] ++ [a*q_i.kbar_g for the groups g]
 * and returns o_i = sum_j p_j v_j + sum_g p_g vbar_g, lse_i = log of that
 * joint softmax denominator (natural log). A query that sees nothing gets
 * o_i = 0 and lse_i = -INFINITY (cannot happen for these heads: every query
 * sees itself directly, but it is handled).
 *
 * Heads (a = scale, max-pooling is elementwise over D, L may be any length):
 *
 * REF_COMB_FIXED, span s: span(i) = i div s; a last partial span is allowed.
 *   direct: j with span(j) == span(i) (and j <= i when causal).
 *   groups: spans g < span(i) (causal) or g != span(i) (bidirectional), each
 *     over its whole span (no causal mask inside a summary; for causal every
 *     summarised span lies entirely in the past anyway):
 *       qbar_g = max_{j in g} q_j      (query head h)
 *       kbar_g = max_{j in g} k_j      (kv head h / (H/Hkv))
 *       vbar_g = sum_{j in g} softmax_j(a*qbar_g.k_j) v_j
 *     so vbar_g (and the output) is per query head under GQA.
 *
 * REF_COMB_AXIAL, row length m: row(i) = i div m, col(i) = i mod m.
 *   direct for i = (r, c): j in row r, with col(j) <= c when causal.
 *   groups: every row r' < r (causal) or r' != r (bidirectional) whose
 *     column c exists (t = r'*m + c < L); key khat_t, value vhat_t with
 *       rho_t(c') = softmax over every existing c' of row r' of a*q_t.k_(r',c')
 *       khat_t = sum rho_t(c') k_(r',c'),  vhat_t = sum rho_t(c') v_(r',c')
 *     (t's own whole row, regardless of causality; q_t of query head h, k, v
 *     of its kv head, so khat/vhat are per query head).
 *
 * REF_COMB_LOGSPARSE (causal only; causal = 0 aborts): direct {i}; for each
 *   level l >= 0 with bit l of i set, the group is the aligned block
 *   [(b-1)*2^l, b*2^l) with b = i div 2^l; summary qbar = max q, kbar = max k,
 *   vbar = softmax_j(a*qbar.k_j) v_j over the block.
 *
 * Internal consistency checks (always on, abort with a message): for fixed
 * and logsparse, direct keys and group blocks cover exactly the keys i may
 * see ([0, i] causal, [0, L) bidirectional), each once; in particular the
 * logsparse groups of i tile [0, i). For axial, direct keys and the rows of
 * the groups are disjoint and within the allowed keys.
 *
 * Arrays as in ref_attn.h: q, dout, o, dq [B][H][L][D]; k, v, dk, dv
 * [B][Hkv][L][D]; lse [B][H][L]. Query head h uses kv head h / (H/Hkv).
 */
#ifndef RINGATTN_TESTS_REF_COMBINER_H
#define RINGATTN_TESTS_REF_COMBINER_H

#include <stdint.h>

typedef enum { REF_COMB_FIXED, REF_COMB_AXIAL, REF_COMB_LOGSPARSE } ref_comb_kind;

typedef struct {
    int B, H, Hkv, L, D;
    int causal;
    double scale;       /* the logit scale a (give 1/sqrt(D) explicitly) */
    ref_comb_kind kind;
    int span;           /* fixed: span s >= 1 (resolve "automatic" before) */
    int row;            /* axial: row length m >= 1 */
} ref_comb_cfg;

/* Overwrites o and lse. */
void ref_comb_forward(const ref_comb_cfg *c, const double *q, const double *k, const double *v,
                      double *o, double *lse);

/* Gradients of loss = sum(o * dout) by central differences of
 * ref_comb_forward, step REF_COMB_FD_STEP, every input entry: for small sizes
 * only (cost ~ inputs x one head's forward). Overwrites dq, dk, dv.
 *
 * Accuracy: the heads are smooth except where max-pooling switches its
 * arg-max (a tie between two entries of one dimension inside one group).
 * With random inputs ties are measure-zero; away from them the error is
 * truncation ~h^2 |f'''| (~1e-12) plus cancellation ~1e-16 |loss_head| / h
 * (~1e-9 .. 1e-8 for the sizes of the tests). Only if the +-h perturbation
 * of one entry crosses an arg-max switch (the entry is within h of the
 * runner-up of its group and dimension) is that one entry's value wrong;
 * ref_comb_backward_fd_at counts such kinks (see below). */
#define REF_COMB_FD_STEP 1e-6
void ref_comb_backward_fd(const ref_comb_cfg *c, const double *q, const double *k,
                          const double *v, const double *dout, double *dq, double *dk,
                          double *dv);

/* Same, but only the entries of the npos token positions pos[] (every batch
 * row, head and d) are computed; every other entry of dq, dk, dv is set to 0.
 * (A multi-rank test differentiates only its own slab.) Only the
 * (batch, query head) pairs an entry can influence are re-evaluated, which
 * is exact: the other terms of the loss are bitwise identical on both sides.
 * Returns the number of entries where the one-sided differences disagree
 * like a kink (|d+ - d-| > 1e-4 * max(1, |d|)): a perturbation crossed an
 * arg-max switch of max-pooling and that entry's FD value is unreliable.
 * With random inputs this is expected to be 0. */
int ref_comb_backward_fd_at(const ref_comb_cfg *c, const double *q, const double *k,
                            const double *v, const double *dout, int npos, const int32_t *pos,
                            double *dq, double *dk, double *dv);

/* The explicit structure of query i (for tests and messages).
 * direct[0..return) gets the direct keys in increasing order; groups[0..*ngroups)
 * the groups: keys [lo, hi) summarised; t < 0: max-pooled summary (fixed,
 * logsparse); t >= 0: axial row summary seen from position t (in [lo, hi)).
 * direct and groups must have room for L entries each. */
typedef struct {
    int lo, hi;
    int t;
} ref_comb_group;
int ref_comb_structure(const ref_comb_cfg *c, int i, int *direct, ref_comb_group *groups,
                       int *ngroups);

/* ceil(sqrt(L)) (the heads' automatic span / row length), >= 1. */
int ref_comb_auto_len(int L);

#endif
