/* test_grid_mpi.c - the grid (grid.h) and the sharded gradient reduction
 * (ra_model_set_reduction) at P ranks.
 *
 * grid: for every dp dividing P, ra_grid_create puts rank r (one node here,
 * so the (node, rank) order is the world order) in group r / cp at ring
 * position r % cp, its ring has cp ranks, and a dp that does not divide P is
 * refused on every rank naming run.dp.
 * reduce: a tiny model on each rank's ring, its group's sequences of one
 * batch, one backward step; the gradients summed over all P ranks, once by
 * allreduce (replicated) and once reduce-scattered onto shards of n / P
 * (uneven at P = 3: checked not to divide n), against the same
 * batch on one rank (MPI_COMM_SELF), with the reductions started after the
 * backward and during it (train.overlap_reduce). Tolerance 1e-5 of the reference's
 * largest |gradient| (summation order only; observed ~1e-8). Both sum
 * with the same pairwise reduce-scatter in one fixed order (the replicated one
 * in place, then all-gathered), so the shards and the replicated sums'
 * slices, after the backward or during it, must be equal bit for bit. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mpi_harness.h"
#include "ringattn/config.h"
#include "ringattn/grid.h"
#include "ringattn/model.h"

typedef struct {
    const char *name;
    int dp; /* 0: every divisor of P in turn (grid case); else the reduce case's dp, skipped unless it divides P */
} tcase;

static const tcase cases[] = {
    { "grid layout for every dp dividing P, refusal otherwise", 0 },
    { "reduce: dp 1", 1 },
    { "reduce: dp 2", 2 },
    { "reduce: dp 3", 3 },
};

static void case_name(char *buf, size_t cap, const void *c, const mh_ctx *ctx)
{
    (void)ctx;
    snprintf(buf, cap, "%s", ((const tcase *)c)->name);
}

static mh_outcome run_grid(const mh_ctx *ctx)
{
    for (int dp = 1; dp <= ctx->P; dp++) {
        if (ctx->P % dp) continue;
        ra_grid g;
        ra_status st = ra_grid_create(MPI_COMM_WORLD, dp, &g);
        MH_CHECK(st == RA_OK, "dp %d: %s", dp, ra_last_error());
        if (st != RA_OK) continue;
        const int cp = ctx->P / dp;
        int ring = 0;
        MPI_Comm_size(g.ring, &ring);
        MH_CHECK(g.cp == cp && ring == cp, "dp %d: ring of %d ranks (cp %d), expected %d", dp, ring, g.cp, cp);
        MH_CHECK(g.group == ctx->rank / cp && g.pos == ctx->rank % cp, "dp %d: group %d position %d, expected %d %d",
                 dp, g.group, g.pos, ctx->rank / cp, ctx->rank % cp);
        MH_CHECK(g.node == 0, "dp %d: node %d, expected 0 (one host)", dp, g.node);
        ra_grid_free(&g);
    }
    ra_grid g;
    ra_status st = ra_grid_create(MPI_COMM_WORLD, ctx->P + 1, &g);
    MH_CHECK(st == RA_ERR_ARG && strstr(ra_last_error(), "run.dp"), "dp = P + 1: status %d, '%s'", st,
             ra_last_error());
    return MH_RAN;
}

enum { B = 6, L = 24, SEED = 5 }; /* 6 sequences: divisible by dp 1, 2, 3 */

/* V x C = 5140 floats: the embedding ends 12 floats short of the next
 * tensor's 16-float boundary, padding the slices of train.overlap_reduce
 * do not cover */
static void tiny_config(ra_config *cfg)
{
    ra_config_defaults(cfg);
    cfg->vocab = 257, cfg->dim = 20, cfg->layers = 2, cfg->heads = 2, cfg->seq_len = L, cfg->batch = B;
    ra_status st = ra_config_finish(cfg);
    if (st != RA_OK) {
        fprintf(stderr, "test_grid_mpi: config: %s\n", ra_last_error());
        MPI_Abort(MPI_COMM_WORLD, 2);
    }
}

/* token j of sequence b: the same on every rank */
static int32_t token(int b, int j) { return (int32_t)((uint32_t)(b * 7919 + j * 104729 + SEED) % 47u); }

/* One backward step of the model over sequences [b0, b0 + nb) at its positions. */
static ra_status step(ra_model *m, int b0, int nb)
{
    const int64_t Lr = ra_model_local_len(m);
    const int32_t *pos = ra_model_positions(m);
    int32_t *tok = mh_xmalloc(sizeof(int32_t) * 2 * (size_t)(nb * Lr + 1)), *tgt = tok + nb * Lr + 1;
    for (int b = 0; b < nb; b++)
        for (int64_t i = 0; i < Lr; i++) {
            tok[b * Lr + i] = token(b0 + b, pos[i]);
            tgt[b * Lr + i] = pos[i] + 1 < L ? token(b0 + b, pos[i] + 1) : -1;
        }
    ra_batch_stats bs;
    ra_model_zero_grads(m);
    ra_status st = ra_model_step(m, tok, tgt, 1, 1.0f / (B * (L - 1)), 1, &bs);
    if (st == RA_OK) st = ra_model_wait_grads(m);
    free(tok);
    return st;
}

static mh_outcome run_reduce(const tcase *c, const mh_ctx *ctx)
{
    if (ctx->P % c->dp) {
        mh_note("dp %d does not divide P = %d", c->dp, ctx->P);
        return MH_SKIPPED;
    }
    ra_config cfg;
    tiny_config(&cfg);
    /* the reference: every sequence on one rank */
    ra_model *ref = NULL;
    MH_CHECK(ra_model_create(&ref, &cfg, B, MPI_COMM_SELF) == RA_OK, "reference: %s", ra_last_error());
    ra_model_init(ref, cfg.seed);
    MH_CHECK(step(ref, 0, B) == RA_OK, "reference step: %s", ra_last_error());
    const size_t n = ra_model_nparams(ref);
    const float *gr = ra_model_grads(ref);
    double gmax = 0;
    for (size_t i = 0; i < n; i++) gmax = fmax(gmax, fabs(gr[i]));

    ra_grid g;
    MH_CHECK(ra_grid_create(MPI_COMM_WORLD, c->dp, &g) == RA_OK, "grid: %s", ra_last_error());
    const int nb = B / c->dp;
    size_t *bounds = mh_xmalloc(sizeof(size_t) * (ctx->P + 1));
    for (int r = 0; r <= ctx->P; r++) bounds[r] = ra_shard_lo(n, ctx->P, r);
    const size_t lo = bounds[ctx->rank], hi = bounds[ctx->rank + 1];
    float *shard = mh_xmalloc(sizeof(float) * (hi - lo + 1)), *keep = mh_xmalloc(sizeof(float) * (hi - lo + 1));
    double err_rep = 0, err_shard = 0, err_pair = 0;
    /* replicated first (keep its slice), then sharded; the reductions after the
     * backward (the default), then each layer's during it (train.overlap_reduce) */
    for (int mode = 0; mode < 4; mode++) {
        const int sharded = mode & 1;
        cfg.overlap_reduce = mode >> 1;
        ra_model *m = NULL;
        MH_CHECK(ra_model_create(&m, &cfg, nb, g.ring) == RA_OK, "model: %s", ra_last_error());
        ra_model_init(m, cfg.seed);
        for (size_t i = 0; i < hi - lo; i++) shard[i] = 1e30f; /* set_reduction zeroes it: padding stays 0 */
        MH_CHECK(ra_model_set_reduction(m, MPI_COMM_WORLD, sharded ? bounds : NULL, sharded ? shard : NULL) == RA_OK,
                 "set_reduction: %s", ra_last_error());
        MH_CHECK(step(m, g.group * nb, nb) == RA_OK, "step: %s", ra_last_error());
        const float *gm = ra_model_grads(m);
        if (!sharded) {
            for (size_t i = 0; i < n; i++) err_rep = fmax(err_rep, fabs(gm[i] - gr[i]));
            if (mode == 0) memcpy(keep, gm + lo, sizeof(float) * (hi - lo));
            else
                for (size_t i = lo; i < hi; i++) err_pair = fmax(err_pair, fabs(gm[i] - keep[i - lo]));
        } else {
            for (size_t i = lo; i < hi; i++) {
                err_shard = fmax(err_shard, fabs(shard[i - lo] - gr[i]));
                err_pair = fmax(err_pair, fabs(shard[i - lo] - keep[i - lo]));
            }
        }
        ra_model_destroy(m);
    }
    double e[3] = { err_rep, err_shard, err_pair };
    MPI_Allreduce(MPI_IN_PLACE, e, 3, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
    const double tol = 1e-5 * gmax;
    MH_CHECK(e[0] <= tol, "allreduced gradients vs one rank: %.3e > %.3e", e[0], tol);
    MH_CHECK(e[1] <= tol, "reduce-scattered shards vs one rank: %.3e > %.3e", e[1], tol);
    MH_CHECK(e[2] == 0, "shards and replicated sums differ (by %.3e): the same reduce-scatter sums them", e[2]);
    /* every tensor starts on 16 floats, so n is a multiple of 16: P = 3 makes the uneven shards */
    MH_CHECK(ctx->P != 3 || n % 3 != 0, "n = %zu divides P = 3: the uneven shards test nothing", n);
    mh_note("dp %d x cp %d, %zu parameters in shards of %zu..%zu: max |diff| %.2e, %.2e, %.2e (of %.2e)", c->dp,
            g.cp, n, bounds[1] - bounds[0], bounds[ctx->P] - bounds[ctx->P - 1], e[0], e[1], e[2], gmax);
    free(shard);
    free(keep);
    free(bounds);
    ra_grid_free(&g);
    ra_model_destroy(ref);
    return MH_RAN;
}

static mh_outcome run_case(const void *arg, const mh_ctx *ctx)
{
    const tcase *c = arg;
    return c->dp == 0 ? run_grid(ctx) : run_reduce(c, ctx);
}

int main(int argc, char **argv)
{
    mh_init(&argc, &argv, "test_grid_mpi");
    mh_run_table(&(mh_table){ .cases = cases, .count = sizeof cases / sizeof cases[0], .size = sizeof cases[0],
                              .name = case_name, .run = run_case });
    return mh_finish();
}
