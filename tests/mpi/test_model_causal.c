/* test_model_causal.c - the whole causal model never sees the future: for
 * every head kind (full, combiner-fixed, -axial, -logsparse, and a layer mix)
 * and every layout, on MPI_COMM_WORLD, changing the token at position t
 * leaves the logits at every position before t unchanged, and changes them
 * at t (the check can fail both ways).
 *
 * A leak of one token into earlier positions (a summary that includes a
 * later block, a mask one off, a piece sent to the wrong rank) moves those
 * logits by about 1e-2 here; the tolerance is 1e-6 normalised (max |diff| /
 * max |logit|). The test also counts how many positions stayed bitwise
 * equal, which a correct implementation gives everywhere (masked terms are
 * exact zeros), and prints it.
 *
 * One case per (heads, layout) through the shared MPI case harness
 * (tests/common/mpi_harness.h); each case notes its bitwise count.
 *
 *   mpirun --oversubscribe -n 3 ./test_model_causal
 */
#include <math.h>
#include <mpi.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mpi_harness.h"
#include "ringattn/config.h"
#include "ringattn/model.h"
#include "ringattn/rng.h"

/* L = 41: prime, never divisible by P > 1; V: the recall task's vocabulary (config check) */
enum { L = 41, V = 256 };
static const double LEAK_TOL = 1e-6;

static ra_status set(ra_config *cfg, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static ra_status set(ra_config *cfg, const char *fmt, ...)
{
    char buf[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    return ra_config_set(cfg, buf, "test");
}

static ra_status make_config(ra_config *cfg, const char *head0, const char *head1, const char *layout)
{
    ra_config_defaults(cfg);
    RA_TRY(set(cfg, "model.vocab=%d", V));
    RA_TRY(set(cfg, "model.layers=2"));
    RA_TRY(set(cfg, "model.dim=24"));
    RA_TRY(set(cfg, "model.heads=4"));
    RA_TRY(set(cfg, "model.kv_heads=2"));
    RA_TRY(set(cfg, "layer.0.head=%s", head0));
    RA_TRY(set(cfg, "layer.1.head=%s", head1));
    RA_TRY(set(cfg, "data.seq_len=%d", L));
    RA_TRY(set(cfg, "run.layout=%s", layout));
    RA_TRY(set(cfg, "train.warmup=0"));
    return ra_config_finish(cfg);
}

/* The logits of all L positions [L][V] on every rank, from a forward of the
 * global sequence seq [L]: each rank fills its own rows, the rest are zero,
 * and the sum over ranks is exact (x + 0 = x). */
static ra_status forward_all(ra_model *m, const int32_t *seq, float *logits)
{
    const int64_t Lr = ra_model_local_len(m);
    const int32_t *pos = ra_model_positions(m);
    int32_t *tok = malloc(sizeof(int32_t) * 2 * (size_t)(Lr > 0 ? Lr : 1)), *tgt = tok + Lr;
    float *mine = calloc((size_t)L * V, sizeof(float));
    ra_status st = tok && mine ? RA_OK : RA_FAIL(RA_ERR_NOMEM, "test logits");
    if (st == RA_OK) {
        for (int64_t i = 0; i < Lr; i++) tok[i] = seq[pos[i]], tgt[i] = -1;
        ra_batch_stats bs;
        st = ra_model_step(m, tok, tgt, 0, 0.0f, 0, &bs);
    }
    if (st == RA_OK) {
        for (int64_t i = 0; i < Lr; i++) ra_model_logits_rows(m, i, 1, mine + (size_t)pos[i] * V);
        MPI_Allreduce(mine, logits, L * V, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
    }
    free(tok);
    free(mine);
    return st;
}

/* max |a - b| / max |b| over n values; *same: bitwise equal */
static double norm_diff(const float *a, const float *b, int n, int *same)
{
    double d = 0, r = 0;
    *same = memcmp(a, b, sizeof(float) * (size_t)n) == 0;
    for (int i = 0; i < n; i++) {
        d = fmax(d, fabs((double)a[i] - b[i]));
        r = fmax(r, fabs((double)b[i]));
    }
    return r > 0 ? d / r : d;
}

typedef struct {
    const char *head0, *head1, *layout;
} ccase;

#define CASES_FOR(layout)                                                                                   \
    { "full", "full", layout }, { "combiner-fixed", "combiner-fixed", layout },                             \
        { "combiner-axial", "combiner-axial", layout }, { "combiner-logsparse", "combiner-logsparse", layout }, \
        { "combiner-axial", "full", layout }
static const ccase cases[] = { CASES_FOR("contiguous"), CASES_FOR("zigzag"), CASES_FOR("striped") };

static void case_name(char *buf, size_t cap, const void *arg, const mh_ctx *ctx)
{
    const ccase *c = arg;
    snprintf(buf, cap, "%s/%s %s P=%d", c->head0, c->head1, c->layout, ctx->P);
}

static mh_outcome run_case(const void *arg, const mh_ctx *ctx)
{
    (void)ctx;
    const ccase *c = arg;
    ra_config cfg;
    ra_model *m = NULL;
    int32_t seq[L], alt[L];
    long rows = 0, bitwise = 0;
    float *base = mh_xmalloc(sizeof(float) * L * V), *moved = mh_xmalloc(sizeof(float) * L * V);
    ra_status st = make_config(&cfg, c->head0, c->head1, c->layout);
    MH_CHECK(st == RA_OK, "config: %s", ra_last_error());
    if (st == RA_OK) st = ra_model_create(&m, &cfg, 1, MPI_COMM_WORLD);
    MH_CHECK(st == RA_OK, "model: %s", ra_last_error());
    if (st == RA_OK) {
        ra_model_init(m, 1234);
        for (int i = 0; i < L; i++) seq[i] = (int32_t)(ra_rand_u64(77, (uint64_t)i) % V);
        st = forward_all(m, seq, base);
        MH_CHECK(st == RA_OK, "forward: %s", ra_last_error());
    }
    const int ts[] = { 1, L / 3, L / 2, L - 1 };
    for (size_t k = 0; k < sizeof ts / sizeof ts[0] && st == RA_OK; k++) {
        const int t = ts[k];
        memcpy(alt, seq, sizeof seq);
        alt[t] = (seq[t] + 1 + (int32_t)k) % V;
        st = forward_all(m, alt, moved);
        MH_CHECK(st == RA_OK, "forward with token %d changed: %s", t, ra_last_error());
        if (st != RA_OK) break;
        double worst = 0;
        int worst_at = -1, same;
        for (int i = 0; i < t; i++) {
            double e = norm_diff(moved + (size_t)i * V, base + (size_t)i * V, V, &same);
            rows++, bitwise += same;
            if (e > worst) worst = e, worst_at = i;
        }
        MH_CHECK(worst <= LEAK_TOL, "changing token %d moved the logits at earlier position %d by %.3g", t, worst_at,
                 worst);
        double at_t = norm_diff(moved + (size_t)t * V, base + (size_t)t * V, V, &same);
        MH_CHECK(at_t > 1e-4, "changing token %d left its own logits unchanged (%.3g): the check sees nothing", t,
                 at_t);
    }
    /* every rank holds every position's logits: the counts agree without a reduction */
    mh_note("%ld of %ld earlier positions bitwise unchanged", bitwise, rows);
    free(base);
    free(moved);
    ra_model_destroy(m);
    return MH_RAN;
}

int main(int argc, char **argv)
{
    mh_init(&argc, &argv, "test_model_causal");
    mh_run_table(&(mh_table){ .cases = cases, .count = sizeof cases / sizeof cases[0], .size = sizeof cases[0],
                              .name = case_name, .run = run_case });
    return mh_finish();
}
