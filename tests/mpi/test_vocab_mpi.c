/* test_vocab_mpi.c - a 128K-token vocabulary: the LM head and the loss run
 * over chunks of rows (docs/design.md §7), so memory stays proportional to
 * the rank's block, and the chunking changes nothing but rounding.
 *
 * Cases (vocab 131072, dim 16, one layer, seq_len 128, micro-batch 1):
 *   chunks  - two AdamW steps and a forward-only evaluation on
 *             MPI_COMM_WORLD with the default chunks (32 rows at this
 *             vocabulary), with RINGATTN_LOGIT_ROWS=7 and with one chunk
 *             (RINGATTN_LOGIT_ROWS above N: the whole N x V logits, as
 *             before chunking), and the default on MPI_COMM_SELF (every
 *             rank computes the P = 1 reference itself). Every loss equals
 *             the one-chunk loss and the P = 1 loss within 1e-5 relative;
 *             the first step's summed gradients equal the one-chunk ones
 *             within 1e-5 of their largest value (the head's gradient is
 *             summed chunk by chunk instead of in one GEMM: float32
 *             rounding, observed ~1e-7); counted targets are equal.
 *             Tied and untied heads, zigzag and striped layouts.
 *   memory  - first, so the process's peak RSS is its own: one training
 *             step at seq_len 4096 on WORLD; each rank's peak RSS
 *             (getrusage) grows by less than half the N x V float logits
 *             that an unchunked head would hold (N = its tokens) over its
 *             RSS before the model (MPI's and a sanitizer's own memory
 *             apart); figures printed.
 *
 *   mpirun --oversubscribe -n 3 ./test_vocab_mpi
 */
#include <math.h>
#include <mpi.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "mpi_harness.h"
#include "ringattn/config.h"
#include "ringattn/model.h"
#include "ringattn/optim.h"
#include "ringattn/rng.h"

enum { V = 131072, STEPS = 2 };
static const double LOSS_TOL = 1e-5, GRAD_TOL = 1e-5;

typedef struct {
    const char *name, *layout;
    int tied, L;
} vcase;

static const vcase cases[] = {
    { "memory: one training step at L = 4096", "zigzag", 1, 4096 },
    { "chunks: tied head, zigzag", "zigzag", 1, 128 },
    { "chunks: untied head, striped", "striped", 0, 128 },
};

static void case_name(char *buf, size_t cap, const void *c, const mh_ctx *ctx)
{
    (void)ctx;
    snprintf(buf, cap, "%s", ((const vcase *)c)->name);
}

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

static ra_status make_config(ra_config *cfg, const vcase *c)
{
    ra_config_defaults(cfg);
    RA_TRY(set(cfg, "model.vocab=%d", V));
    RA_TRY(set(cfg, "model.dim=16"));
    RA_TRY(set(cfg, "model.layers=1"));
    RA_TRY(set(cfg, "model.heads=2"));
    RA_TRY(set(cfg, "model.tie_embeddings=%d", c->tied));
    RA_TRY(set(cfg, "data.seq_len=%d", c->L));
    RA_TRY(set(cfg, "run.layout=%s", c->layout));
    RA_TRY(set(cfg, "train.lr=0.01"));
    RA_TRY(set(cfg, "train.warmup=0"));
    return ra_config_finish(cfg);
}

/* Token at global position i, and its target (every 7th not counted). */
static int32_t token_at(uint64_t seed, int64_t i) { return (int32_t)(ra_rand_u64(seed, (uint64_t)i) % V); }

typedef struct {
    double loss[STEPS + 1];
    int64_t count[STEPS + 1];
    float *grad0; /* [nparams] the first step's summed gradients (when asked) */
} run_out;

/* STEPS AdamW steps and an evaluation of a fresh model on comm, with
 * RINGATTN_LOGIT_ROWS = rows (NULL: the default chunks). */
static ra_status train_eval(const ra_config *cfg, MPI_Comm comm, const char *rows, run_out *out, int keep_grad)
{
    if (rows) setenv("RINGATTN_LOGIT_ROWS", rows, 1);
    else unsetenv("RINGATTN_LOGIT_ROWS");
    ra_model *m = NULL;
    ra_status st = ra_model_create(&m, cfg, 1, comm);
    unsetenv("RINGATTN_LOGIT_ROWS");
    ra_adamw opt = { 0 };
    int have_opt = 0;
    int32_t *tok = NULL;
    if (st == RA_OK) st = ra_adamw_create(&opt, ra_model_layout(m), cfg->layers);
    have_opt = st == RA_OK;
    const int64_t Lr = m ? ra_model_local_len(m) : 0, L = cfg->seq_len;
    if (st == RA_OK) {
        ra_model_init(m, cfg->seed);
        tok = mh_xmalloc(sizeof(int32_t) * 2 * (size_t)(Lr + 1));
    }
    const int32_t *pos = m ? ra_model_positions(m) : NULL;
    for (int s = 0; s <= STEPS && st == RA_OK; s++) {
        const int train = s < STEPS;
        const uint64_t seed = 100 + (uint64_t)s;
        int32_t *tgt = tok + Lr;
        int64_t targets = 0;
        for (int64_t i = 0; i + 1 < L; i++) targets += i % 7 != 3;
        for (int64_t i = 0; i < Lr; i++) {
            tok[i] = token_at(seed, pos[i]);
            tgt[i] = pos[i] + 1 < L && pos[i] % 7 != 3 ? token_at(seed, pos[i] + 1) : -1;
        }
        ra_batch_stats bs;
        if (train) ra_model_zero_grads(m);
        st = ra_model_step(m, tok, tgt, train, (float)(1.0 / (double)targets), train, &bs);
        if (st == RA_OK && train) st = ra_model_wait_grads(m);
        if (st != RA_OK) break;
        double sums[2] = { bs.loss_sum, (double)bs.count }, g[2];
        MPI_Allreduce(sums, g, 2, MPI_DOUBLE, MPI_SUM, comm);
        out->loss[s] = g[0] / g[1];
        out->count[s] = (int64_t)g[1];
        if (!train) break;
        const size_t np = ra_model_nparams(m);
        if (s == 0 && keep_grad) {
            out->grad0 = mh_xmalloc(sizeof(float) * np);
            memcpy(out->grad0, ra_model_grads(m), sizeof(float) * np);
        }
        double gnorm = ra_grad_norm(ra_model_grads(m), np);
        float clip = cfg->clip > 0 && gnorm > cfg->clip ? (float)(cfg->clip / gnorm) : 1.0f;
        ra_adamw_step(&opt, ra_model_params(m), ra_model_grads(m), clip, cfg->lr, cfg, s + 1);
    }
    free(tok);
    if (have_opt) ra_adamw_free(&opt);
    ra_model_destroy(m);
    return st;
}

/* max |a - b| / max |b| */
static double norm_diff(const float *a, const float *b, size_t n)
{
    double d = 0, r = 0;
    for (size_t i = 0; i < n; i++) {
        d = fmax(d, fabs((double)a[i] - b[i]));
        r = fmax(r, fabs((double)b[i]));
    }
    return r > 0 ? d / r : d;
}

static double peak_rss_mib(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_maxrss / 1024.0; /* KiB on Linux */
}

/* resident now (Linux /proc/self/statm), 0 when unknown */
static double rss_mib(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    long long size = 0, res = 0;
    if (f) {
        if (fscanf(f, "%lld %lld", &size, &res) != 2) res = 0;
        fclose(f);
    }
    return (double)res * (double)sysconf(_SC_PAGESIZE) / (1024.0 * 1024.0);
}

static mh_outcome run_memory(const ra_config *cfg, const mh_ctx *ctx)
{
    const double before = rss_mib();
    ra_model *m = NULL;
    int32_t *tok = NULL;
    ra_status st = ra_model_create(&m, cfg, 1, MPI_COMM_WORLD);
    MH_CHECK(st == RA_OK, "model: %s", ra_last_error());
    const int64_t N = m ? ra_model_local_len(m) : 0;
    if (st == RA_OK) {
        ra_model_init(m, cfg->seed);
        ra_model_zero_grads(m);
        tok = mh_xmalloc(sizeof(int32_t) * 2 * (size_t)(N + 1));
        const int32_t *pos = ra_model_positions(m);
        for (int64_t i = 0; i < N; i++) {
            tok[i] = token_at(7, pos[i]);
            tok[N + i] = token_at(7, pos[i] + 1);
        }
        ra_batch_stats bs;
        st = ra_model_step(m, tok, tok + N, 1, (float)(1.0 / (double)cfg->seq_len), 1, &bs);
        if (st == RA_OK) st = ra_model_wait_grads(m);
        MH_CHECK(st == RA_OK, "training step: %s", ra_last_error());
    }
    free(tok);
    ra_model_destroy(m);
    const double peak = peak_rss_mib(), full = (double)N * V * sizeof(float) / (1024.0 * 1024.0);
    MH_CHECK(peak - before < full / 2,
             "peak RSS %.1f MiB, %.1f MiB above the %.1f MiB before the model: not below half of the %.1f MiB of "
             "unchunked logits", peak, peak - before, before, full);
    double mine[3] = { peak, peak - before, full }, worst[3];
    MPI_Allreduce(mine, worst, 3, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
    mh_note("P=%d: peak RSS %.1f MiB per rank (largest), %.1f MiB above the start; N x V logits would be %.1f MiB",
            ctx->P, worst[0], worst[1], worst[2]);
    return MH_RAN;
}

static mh_outcome run_case(const void *arg, const mh_ctx *ctx)
{
    const vcase *c = arg;
    ra_config cfg;
    ra_status st = make_config(&cfg, c);
    MH_CHECK(st == RA_OK, "config: %s", ra_last_error());
    if (st != RA_OK) return MH_RAN;
    if (c->L > 1024) return run_memory(&cfg, ctx);

    run_out def = { 0 }, one = { 0 }, seven = { 0 }, self = { 0 };
    st = train_eval(&cfg, MPI_COMM_WORLD, NULL, &def, 1);
    MH_CHECK(st == RA_OK, "default chunks: %s", ra_last_error());
    if (st == RA_OK) st = train_eval(&cfg, MPI_COMM_WORLD, "1000000000", &one, 1);
    MH_CHECK(st == RA_OK, "one chunk: %s", ra_last_error());
    if (st == RA_OK) st = train_eval(&cfg, MPI_COMM_WORLD, "7", &seven, 0);
    MH_CHECK(st == RA_OK, "chunks of 7 rows: %s", ra_last_error());
    if (st == RA_OK) { /* the one-rank reference, on rank 0 only (the others would repeat it on the same cores) */
        int ok = mh_rank() != 0 || (st = train_eval(&cfg, MPI_COMM_SELF, NULL, &self, 0)) == RA_OK;
        MH_CHECK(ok, "P = 1: %s", ra_last_error());
        MPI_Bcast(&ok, 1, MPI_INT, 0, MPI_COMM_WORLD);
        MPI_Bcast(self.loss, STEPS + 1, MPI_DOUBLE, 0, MPI_COMM_WORLD);
        MPI_Bcast(self.count, STEPS + 1, MPI_INT64_T, 0, MPI_COMM_WORLD);
        if (!ok) st = RA_ERR_INTERNAL;
    }
    double worst = 0, gerr = 0;
    int bitwise0 = 0;
    if (st == RA_OK) {
        const run_out *other[] = { &def, &seven, &self };
        const char *what[] = { "default chunks", "chunks of 7", "P = 1" };
        for (int s = 0; s <= STEPS; s++) {
            const double ref = one.loss[s];
            for (int k = 0; k < 3; k++) {
                const double rel = fabs(other[k]->loss[s] - ref) / fabs(ref);
                worst = fmax(worst, rel);
                MH_CHECK(rel <= LOSS_TOL, "%s: %s loss %.9f, one chunk %.9f (rel %.3g)", what[k],
                         s < STEPS ? "train" : "eval", other[k]->loss[s], ref, rel);
                MH_CHECK(other[k]->count[s] == one.count[s], "%s: %lld counted targets, one chunk %lld", what[k],
                         (long long)other[k]->count[s], (long long)one.count[s]);
            }
        }
        bitwise0 = def.loss[0] == one.loss[0];
        ra_param_layout lay;
        ra_model *m = NULL;
        if (ra_model_create(&m, &cfg, 1, MPI_COMM_SELF) == RA_OK) {
            lay = *ra_model_layout(m);
            gerr = norm_diff(def.grad0, one.grad0, lay.total);
            MH_CHECK(gerr <= GRAD_TOL, "first step's gradients: default chunks vs one chunk differ by %.3g", gerr);
        }
        ra_model_destroy(m);
    }
    free(def.grad0);
    free(one.grad0);
    double e[2] = { worst, gerr }, ew[2];
    MPI_Allreduce(e, ew, 2, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
    int bw = 0;
    MPI_Allreduce(&bitwise0, &bw, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
    mh_note("losses vs one chunk: max rel %.3g; first-step gradients %.3g; first loss bitwise %s", ew[0], ew[1],
            bw ? "equal" : "different");
    return MH_RAN;
}

int main(int argc, char **argv)
{
    mh_init(&argc, &argv, "test_vocab_mpi");
    mh_run_table(&(mh_table){ .cases = cases, .count = sizeof cases / sizeof cases[0], .size = sizeof cases[0],
                              .name = case_name, .run = run_case });
    return mh_finish();
}
