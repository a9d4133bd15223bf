/* nonfinite.c - NaN and Inf in the inputs of `attn`, counted over all ranks.
 *
 * A NaN or Inf in Q, K or V does not stop the kernels: it silently turns
 * outputs into zeros or NaN and LSE into +inf. So the inputs are counted
 * first (each rank over its own rows) and, unless allowed, the run stops
 * with the count per tensor and the first position in file order. */
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "ringattn/dist.h"

/* Count this rank's non-finite elements and the smallest global flat index
 * (C order in the file) of one, -1 for none; *maxabs: the largest finite |x|. */
static void scan(const ra_finite_input *t, ra_layout layout, int64_t L, const ra_cli *c, int64_t *count,
                 int64_t *first, double *maxabs)
{
    const int64_t Lr = ra_layout_count(layout, L, c->size, c->rank);
    *count = 0;
    *first = -1;
    *maxabs = 0;
    for (int64_t o = 0; o < t->outer; o++)
        for (int64_t r = 0; r < Lr; r++) {
            const float *row = t->data + (o * Lr + r) * t->inner;
            for (int64_t i = 0; i < t->inner; i++) {
                if (isfinite(row[i])) {
                    if (fabs(row[i]) > *maxabs) *maxabs = fabs(row[i]);
                    continue;
                }
                int64_t g = ra_layout_global(layout, L, c->size, c->rank, r);
                int64_t flat = (o * L + g) * t->inner + i;
                (*count)++;
                if (*first < 0 || flat < *first) *first = flat;
            }
        }
}

const char *ra_position_str(char *out, int cap, int64_t flat, int ndim, const int64_t *shape)
{
    int64_t idx[RA_NPY_MAX_DIMS];
    for (int d = ndim - 1; d >= 0; d--) {
        idx[d] = shape[d] ? flat % shape[d] : 0;
        flat = shape[d] ? flat / shape[d] : 0;
    }
    return ra_shape_str(out, cap, ndim, idx);
}

ra_status ra_check_finite_inputs(const ra_cli *c, const ra_finite_input *t, int n, ra_layout layout, int64_t L,
                                 int allow, double *maxabs)
{
    enum { MAXT = 8 };
    if (n > MAXT) return RA_FAIL(RA_ERR_ARG, "internal: %d tensors to check, at most %d", n, MAXT);
    int64_t count[MAXT], first[MAXT], total[MAXT], least[MAXT];
    double mine[MAXT];
    for (int i = 0; i < n; i++) {
        scan(&t[i], layout, L, c, &count[i], &first[i], &mine[i]);
        if (first[i] < 0) first[i] = INT64_MAX; /* none: loses the MIN */
    }
    RA_TRY(ra_allreduce_named(count, total, n, MPI_INT64_T, MPI_SUM, c->comm, "attn: the counts of non-finite inputs"));
    RA_TRY(ra_allreduce_named(first, least, n, MPI_INT64_T, MPI_MIN, c->comm,
                              "attn: the first non-finite input positions"));
    RA_TRY(ra_allreduce_named(mine, maxabs, n, MPI_DOUBLE, MPI_MAX, c->comm, "attn: the inputs' largest values"));
    char list[1024] = "";
    size_t len = 0;
    for (int i = 0; i < n && len < sizeof list; i++) {
        if (!total[i]) continue;
        char pos[160];
        ra_position_str(pos, sizeof pos, least[i], t[i].ndim, t[i].shape);
        len += (size_t)snprintf(list + len, sizeof list - len, "%s%s %s has %lld, the first at %s",
                                len ? "; " : "", t[i].opt, t[i].path, (long long)total[i], pos);
    }
    if (!len) return RA_OK;
    for (int i = 0; i < n; i++) maxabs[i] = INFINITY; /* computed anyway: no bound holds */
    if (!allow) /* every rank has the same counts: every rank fails alike */
        return RA_FAIL(RA_ERR_FORMAT, "attn: non-finite input elements (NaN or Inf; float64 values beyond the "
                                      "float32 range count too): %s. They would make the outputs NaN or zero; "
                                      "fix the inputs, or pass --allow-nonfinite to compute anyway", list);
    if (c->rank == 0) {
        fprintf(stderr, "ringattn: warning: attn: non-finite input elements (NaN or Inf): %s; computing anyway "
                        "(--allow-nonfinite)\n", list);
        fflush(stderr);
    }
    return RA_OK;
}

/* The largest |logit| is at most scale D max|Q| max|K|, and the softmax
 * takes differences of two (2x). The backward's dP = dO V^T and its row
 * term are at most D max|dO| max|V| each, dQ their difference times scale
 * max|K| (the probabilities of a row sum to 1), and dK and dV sums of up
 * to L rows. Loose bounds: they stop only inputs whose magnitudes could
 * overflow float32 somewhere, where the kernels would give zeros or NaN
 * (logits of inf make every probability 0: "a row that sees no key"). */
ra_status ra_check_input_range(const ra_finite_input *t, int n, const double *maxabs, double scale, int64_t L)
{
    const double D = (double)t[0].inner, q = maxabs[0], k = maxabs[1], v = maxabs[2], lim = FLT_MAX / 4;
    const double logit = 2 * fabs(scale) * D * q * k;
    if (!(logit <= lim))
        return RA_FAIL(RA_ERR_ARG, "attn: the logits could overflow float32: |scale| D max|Q| max|K| = %g x %g x "
                       "%g x %g = %g, over %g (max |Q| from %s %s, max |K| from %s %s); scale the inputs down, "
                       "or --scale", fabs(scale), D, q, k, logit / 2, lim / 2, t[0].opt, t[0].path, t[1].opt, t[1].path);
    if (n < 4) return RA_OK;
    const double o = maxabs[3], dp = 2 * D * o * v;
    const double worst = fmax(dp * fmax(1.0, fabs(scale) * k), (double)L * fmax(dp * fabs(scale) * q, o));
    if (!(worst <= lim))
        return RA_FAIL(RA_ERR_ARG, "attn: the gradients could overflow float32: with max |dO| = %g (%s %s), max |V| "
                       "= %g, max |Q| = %g, max |K| = %g, D = %g, L = %lld and |scale| = %g they reach up to %g, "
                       "over %g; scale the inputs down", o, t[3].opt, t[3].path, v, q, k, D, (long long)L,
                       fabs(scale), worst, lim);
    return RA_OK;
}
