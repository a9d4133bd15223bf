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
 * No cmocka: failures are summed over ranks, rank 0 prints "N passed, M
 * failed" and the exit code is non-zero on any failure.
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

static int g_rank, g_P, g_fail, g_checks;
static long g_rows, g_bitwise;

#define CHECK(cond, ...)                                                              \
    do {                                                                              \
        g_checks++;                                                                   \
        if (!(cond)) {                                                                \
            g_fail++;                                                                 \
            fprintf(stderr, "%s:%d: rank %d: ", __FILE__, __LINE__, g_rank);          \
            fprintf(stderr, __VA_ARGS__);                                             \
            fputc('\n', stderr);                                                      \
        }                                                                             \
    } while (0)

#define TRY_CASE(expr)                                                                \
    do {                                                                              \
        ra_status s_ = (expr);                                                        \
        CHECK(s_ == RA_OK, "%s: %s", #expr, ra_last_error());                         \
        if (s_ != RA_OK) goto done;                                                   \
    } while (0)

enum { L = 41, V = 256 }; /* V: the recall task's default vocabulary (config check) */ /* 41: prime, never divisible by P > 1 */
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

static void run_case(const char *head0, const char *head1, const char *layout)
{
    char name[128];
    snprintf(name, sizeof name, "%s/%s %s P=%d", head0, head1, layout, g_P);
    ra_config cfg;
    ra_model *m = NULL;
    int32_t seq[L], alt[L];
    float *base = malloc(sizeof(float) * L * V), *moved = malloc(sizeof(float) * L * V);
    TRY_CASE(make_config(&cfg, head0, head1, layout));
    TRY_CASE(ra_model_create(&m, &cfg, 1, MPI_COMM_WORLD));
    ra_model_init(m, 1234);
    for (int i = 0; i < L; i++) seq[i] = (int32_t)(ra_rand_u64(77, (uint64_t)i) % V);
    TRY_CASE(forward_all(m, seq, base));
    const int ts[] = { 1, L / 3, L / 2, L - 1 };
    for (size_t k = 0; k < sizeof ts / sizeof ts[0]; k++) {
        const int t = ts[k];
        memcpy(alt, seq, sizeof seq);
        alt[t] = (seq[t] + 1 + (int32_t)k) % V;
        TRY_CASE(forward_all(m, alt, moved));
        double worst = 0;
        int worst_at = -1;
        for (int i = 0; i < t; i++) {
            int same;
            double e = norm_diff(moved + (size_t)i * V, base + (size_t)i * V, V, &same);
            g_rows++, g_bitwise += same;
            if (e > worst) worst = e, worst_at = i;
        }
        CHECK(worst <= LEAK_TOL, "%s: changing token %d moved the logits at earlier position %d by %.3g", name, t,
              worst_at, worst);
        int same;
        double at_t = norm_diff(moved + (size_t)t * V, base + (size_t)t * V, V, &same);
        CHECK(at_t > 1e-4, "%s: changing token %d left its own logits unchanged (%.3g): the check sees nothing",
              name, t, at_t);
    }
done:
    free(base);
    free(moved);
    ra_model_destroy(m);
}

int main(int argc, char **argv)
{
    int provided = MPI_THREAD_SINGLE;
    MPI_Init_thread(&argc, &argv, MPI_THREAD_FUNNELED, &provided);
    mh_threads_from_env();
    MPI_Comm_rank(MPI_COMM_WORLD, &g_rank);
    MPI_Comm_size(MPI_COMM_WORLD, &g_P);
    static const char *heads[] = { "full", "combiner-fixed", "combiner-axial", "combiner-logsparse" };
    static const char *layouts[] = { "contiguous", "zigzag", "striped" };
    for (size_t l = 0; l < sizeof layouts / sizeof layouts[0]; l++) {
        for (size_t h = 0; h < sizeof heads / sizeof heads[0]; h++) run_case(heads[h], heads[h], layouts[l]);
        run_case("combiner-axial", "full", layouts[l]);
    }
    long rows[2] = { g_rows, g_bitwise }, all[2];
    MPI_Reduce(rows, all, 2, MPI_LONG, MPI_SUM, 0, MPI_COMM_WORLD);
    int fails = 0, checks = 0;
    MPI_Allreduce(&g_fail, &fails, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
    MPI_Allreduce(&g_checks, &checks, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
    if (g_rank == 0) {
        printf("causal: %ld of %ld earlier positions bitwise unchanged\n", all[1], all[0]);
        printf("test_model_causal P=%d: %d passed, %d failed\n", g_P, checks - fails, fails);
    }
    MPI_Finalize();
    return fails ? 1 : 0;
}
