/* test_model_sweep.c - the whole model over a sweep of small, awkward shapes
 * on MPI_COMM_WORLD, each against the same model on one rank.
 *
 * Cases: odd widths (17, 24, 33, 40), head_dim != dim / heads, GQA and MQA,
 * every head kind (full, combiner-fixed, -logsparse, -axial, mixed per
 * layer), every preconditioner (none, rownorm stop and full, spectral),
 * SwiGLU and GELU, tied and untied, every layout; seq_len and the FFN block
 * drawn from a fixed seed so seq_len is never divisible by P > 1.
 * Per case:
 *   train  - two AdamW steps (forward + backward + gradient reduction) and a
 *            forward-only evaluation: each loss equals the loss of the same
 *            model on MPI_COMM_SELF (every rank computes the P = 1 reference
 *            itself) within 1e-4 relative; the evaluation on an inference
 *            model (eval's: no gradients) equals it bit for bit.
 *   decode - (full heads) the trained weights decode greedily from a
 *            prompt prefilled by an inference model and from a short prompt fed token by token:
 *            after every token the decoder's logits equal the logits at that
 *            position of a one-rank forward over prompt + tokens within 1e-4
 *            normalised (max |diff| / max |ref|), and the greedy token equals
 *            the one-rank decoder's (unless the reference's top two logits
 *            are within 1e-4: a tie either may break). Combiner layers: the
 *            decoder refuses them, naming the layer.
 * No cmocka: failures are summed over ranks, rank 0 prints "N passed, M
 * failed" and the exit code is non-zero on any failure.
 *
 *   mpirun --oversubscribe -n 3 ./test_model_sweep
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
#include "ringattn/decode.h"
#include "ringattn/layers.h"
#include "ringattn/layout.h"
#include "ringattn/model.h"
#include "ringattn/optim.h"
#include "ringattn/rng.h"

static int g_rank, g_P, g_fail, g_checks;

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

/* A failed library call ends the case on every rank alike (the calls are
 * collective, and their failures are deterministic in the shapes). */
#define TRY_CASE(expr)                                                                \
    do {                                                                              \
        ra_status s_ = (expr);                                                        \
        CHECK(s_ == RA_OK, "%s: %s", #expr, ra_last_error());                         \
        if (s_ != RA_OK) goto done;                                                   \
    } while (0)

enum { B = 2, STEPS = 2, NTOK = 3 };
static const double LOSS_TOL = 1e-4, LOGIT_TOL = 1e-4;

typedef struct {
    const char *head0, *head1, *precond, *grad, *ffn, *layout;
    int tied, dim, heads, kv_heads, head_dim;
} sweep_case;

static const sweep_case cases[] = {
    /* head0              head1                 precond     grad    ffn       layout        tied dim H Hkv D */
    { "full", "full", "none", "stop", "swiglu", "contiguous", 1, 24, 4, 2, 6 },
    { "full", "full", "rownorm", "stop", "gelu", "zigzag", 0, 33, 3, 1, 8 },
    { "full", "full", "rownorm", "full", "swiglu", "striped", 0, 40, 4, 4, 6 },
    { "full", "full", "spectral", "stop", "gelu", "zigzag", 1, 17, 2, 1, 10 },
    { "full", "full", "spectral", "stop", "swiglu", "striped", 0, 33, 6, 2, 4 },
    { "combiner-fixed", "full", "none", "stop", "swiglu", "striped", 1, 24, 4, 2, 4 },
    { "combiner-logsparse", "combiner-logsparse", "rownorm", "full", "gelu", "contiguous", 0, 33, 2, 2, 6 },
    { "combiner-axial", "full", "spectral", "stop", "swiglu", "zigzag", 0, 40, 4, 1, 8 },
    { "full", "combiner-axial", "rownorm", "stop", "gelu", "striped", 1, 17, 3, 3, 4 },
};

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

static ra_status make_config(ra_config *cfg, const sweep_case *c, int L, int blk)
{
    ra_config_defaults(cfg);
    RA_TRY(set(cfg, "model.layers=2"));
    RA_TRY(set(cfg, "model.dim=%d", c->dim));
    RA_TRY(set(cfg, "model.heads=%d", c->heads));
    RA_TRY(set(cfg, "model.kv_heads=%d", c->kv_heads));
    RA_TRY(set(cfg, "model.head_dim=%d", c->head_dim));
    RA_TRY(set(cfg, "model.ffn=%s", c->ffn));
    RA_TRY(set(cfg, "model.ffn_block=%d", blk));
    RA_TRY(set(cfg, "model.tie_embeddings=%d", c->tied));
    RA_TRY(set(cfg, "layer.0.head=%s", c->head0));
    RA_TRY(set(cfg, "layer.1.head=%s", c->head1));
    RA_TRY(set(cfg, "layers.precond=%s", c->precond));
    RA_TRY(set(cfg, "layers.precond_grad=%s", c->grad));
    RA_TRY(set(cfg, "layers.precond_lambda=0.5"));
    RA_TRY(set(cfg, "data.seq_len=%d", L));
    RA_TRY(set(cfg, "data.recall_pairs=3"));
    RA_TRY(set(cfg, "data.recall_queries=2"));
    RA_TRY(set(cfg, "run.layout=%s", c->layout));
    RA_TRY(set(cfg, "train.lr=0.01"));
    RA_TRY(set(cfg, "train.warmup=0"));
    return ra_config_finish(cfg);
}

/* Tokens of sequence b at position i (and its target: the next token). */
static int32_t token_at(uint64_t seed, int b, int i, int V) { return (int32_t)(ra_rand_u64(seed, (uint64_t)b * 4096 + i) % (uint64_t)V); }

/* The model's local rows of B sequences: tok, tgt [B][Lr]. */
static void batch(const ra_model *m, int L, int V, uint64_t seed, int32_t *tok, int32_t *tgt)
{
    const int64_t Lr = ra_model_local_len(m);
    const int32_t *pos = ra_model_positions(m);
    for (int b = 0; b < B; b++)
        for (int64_t i = 0; i < Lr; i++) {
            tok[b * Lr + i] = token_at(seed, b, pos[i], V);
            tgt[b * Lr + i] = pos[i] + 1 < L && pos[i] % 5 != 2 ? token_at(seed, b, pos[i] + 1, V) : -1;
        }
}

/* Mean loss over the model's communicator of one micro-batch; with train,
 * an AdamW step too (the way cmd_train.c drives the library). */
static ra_status run_batch(ra_model *m, ra_adamw *opt, const ra_config *cfg, MPI_Comm comm, uint64_t seed,
                           int train, int step, double *loss)
{
    const int64_t Lr = ra_model_local_len(m);
    int32_t *tok = malloc(sizeof(int32_t) * 2 * B * (size_t)Lr), *tgt = tok + B * Lr;
    if (!tok) return RA_FAIL(RA_ERR_NOMEM, "test batch");
    batch(m, cfg->seq_len, cfg->vocab, seed, tok, tgt);
    /* targets over all ranks, counted from the whole sequences */
    int64_t targets = 0;
    for (int b = 0; b < B; b++)
        for (int i = 0; i + 1 < cfg->seq_len; i++) targets += i % 5 != 2;
    ra_batch_stats bs;
    if (train) ra_model_zero_grads(m);
    ra_status st = ra_model_step(m, tok, tgt, train, (float)(1.0 / (double)targets), train, &bs);
    if (st == RA_OK && train) st = ra_model_wait_grads(m);
    free(tok);
    RA_TRY(st);
    double sums[2] = { bs.loss_sum, (double)bs.count }, g[2];
    MPI_Allreduce(sums, g, 2, MPI_DOUBLE, MPI_SUM, comm);
    if (g[1] != (double)targets) return RA_FAIL(RA_ERR_INTERNAL, "counted %g targets, expected %lld", g[1], (long long)targets);
    *loss = g[0] / g[1];
    if (train) {
        const size_t np = ra_model_nparams(m);
        double gnorm = ra_grad_norm(ra_model_grads(m), np);
        float clip = cfg->clip > 0 && gnorm > cfg->clip ? (float)(cfg->clip / gnorm) : 1.0f;
        ra_adamw_step(opt, ra_model_params(m), ra_model_grads(m), clip, cfg->lr, cfg, step + 1);
    }
    return RA_OK;
}

/* Train STEPS steps then evaluate; losses [STEPS + 1]. */
static ra_status train_eval(const ra_config *cfg, MPI_Comm comm, double *losses, ra_model **out)
{
    RA_TRY(ra_model_create(out, cfg, B, comm));
    ra_model *m = *out;
    ra_model_init(m, cfg->seed);
    ra_adamw opt;
    RA_TRY(ra_adamw_create(&opt, ra_model_layout(m), cfg->layers));
    ra_status st = RA_OK;
    for (int s = 0; s < STEPS && st == RA_OK; s++) st = run_batch(m, &opt, cfg, comm, 100 + s, 1, s, &losses[s]);
    if (st == RA_OK) st = run_batch(m, &opt, cfg, comm, 999, 0, 0, &losses[STEPS]);
    ra_adamw_free(&opt);
    /* eval's model (no gradients): the same evaluation, bit for bit */
    ra_model *mi = NULL;
    double li = 0;
    if (st == RA_OK) st = ra_model_create_inference(&mi, cfg, B, comm);
    if (st == RA_OK) {
        memcpy(ra_model_params(mi), ra_model_params(m), sizeof(float) * ra_model_nparams(m));
        st = run_batch(mi, NULL, cfg, comm, 999, 0, 0, &li);
    }
    if (st == RA_OK && li != losses[STEPS])
        st = RA_FAIL(RA_ERR_INTERNAL, "eval loss %.17g on an inference model, %.17g on the training model", li,
                     losses[STEPS]);
    ra_model_destroy(mi);
    return st;
}

/* max |a - b| / max |b| over n values */
static double norm_diff(const float *a, const float *b, int n)
{
    double d = 0, r = 0;
    for (int i = 0; i < n; i++) {
        d = fmax(d, fabs((double)a[i] - b[i]));
        r = fmax(r, fabs((double)b[i]));
    }
    return r > 0 ? d / r : d;
}

static int argmax(const float *x, int n, double *gap)
{
    int best = 0;
    for (int i = 1; i < n; i++)
        if (x[i] > x[best]) best = i;
    double second = -INFINITY;
    for (int i = 0; i < n; i++)
        if (i != best && x[i] > second) second = x[i];
    *gap = x[best] - second;
    return best;
}

/* Logits [V] at the last of n positions of seq, from a one-rank forward
 * with the parameters params. */
static ra_status forward_last(const ra_config *cfg, const float *params, const int32_t *seq, int n, float *logits)
{
    ra_config c = *cfg;
    c.seq_len = n;
    c.layout_id = RA_LAYOUT_CONTIGUOUS;
    ra_model *m;
    ra_status st = ra_model_create(&m, &c, 1, MPI_COMM_SELF);
    int32_t *tgt = malloc(sizeof(int32_t) * n);
    if (st == RA_OK && !tgt) st = RA_FAIL(RA_ERR_NOMEM, "test targets");
    if (st == RA_OK) {
        memcpy(ra_model_params(m), params, sizeof(float) * ra_model_nparams(m));
        for (int i = 0; i < n; i++) tgt[i] = -1;
        ra_batch_stats bs;
        st = ra_model_step(m, seq, tgt, 0, 0.0f, 0, &bs);
    }
    if (st == RA_OK) ra_model_logits_rows(m, n - 1, 1, logits);
    free(tgt);
    ra_model_destroy(m);
    return st;
}

/* A decoder on comm over the prompt seq[0..Lp): prefilled through a model
 * forward when prefill, else token by token. */
static ra_status decoder_start(ra_decoder **d, const ra_config *cfg, const float *params, MPI_Comm comm,
                               const int32_t *seq, int Lp, int prefill, ra_model **pm)
{
    int P;
    MPI_Comm_size(comm, &P);
    ra_config c = *cfg; /* the prompt's model; seq_len does not change the parameter layout */
    c.seq_len = prefill || Lp >= P ? Lp : P;
    RA_TRY(ra_model_create_inference(pm, &c, 1, comm)); /* as generate prefills */
    ra_model *m = *pm;
    memcpy(ra_model_params(m), params, sizeof(float) * ra_model_nparams(m));
    RA_TRY(ra_decoder_create(d, cfg, ra_model_params(m), ra_model_layout(m), comm, Lp + NTOK));
    if (!prefill) {
        for (int i = 0; i < Lp; i++) RA_TRY(ra_decoder_step(*d, seq[i]));
        return RA_OK;
    }
    const int64_t Lr = ra_model_local_len(m);
    const int32_t *pos = ra_model_positions(m);
    int32_t *tok = malloc(sizeof(int32_t) * 2 * (size_t)Lr), *tgt = tok + Lr;
    if (!tok) return RA_FAIL(RA_ERR_NOMEM, "test prompt");
    for (int64_t i = 0; i < Lr; i++) tok[i] = seq[pos[i]], tgt[i] = -1;
    ra_batch_stats bs;
    ra_status st = ra_model_step(m, tok, tgt, 0, 0.0f, 0, &bs);
    free(tok);
    RA_TRY(st);
    return ra_decoder_prefill(*d, m);
}

/* Greedy decoding of NTOK tokens on WORLD from seq[0..Lp) against one-rank
 * forwards and a one-rank decoder. seq has room for Lp + NTOK tokens. */
static void check_decode(const char *name, const ra_config *cfg, const float *params, int32_t *seq, int Lp,
                         int prefill)
{
    const int V = cfg->vocab;
    ra_decoder *dw = NULL, *ds = NULL;
    ra_model *mw = NULL, *ms = NULL;
    float *ref = malloc(sizeof(float) * V);
    TRY_CASE(decoder_start(&dw, cfg, params, MPI_COMM_WORLD, seq, Lp, prefill, &mw));
    TRY_CASE(decoder_start(&ds, cfg, params, MPI_COMM_SELF, seq, Lp, prefill, &ms));
    for (int k = 0; k < NTOK; k++) {
        const int n = Lp + k; /* positions so far; logits predict position n */
        CHECK(ra_decoder_len(dw) == n, "%s: decoder at %lld positions, expected %d", name,
              (long long)ra_decoder_len(dw), n);
        TRY_CASE(forward_last(cfg, params, seq, n, ref));
        double e = norm_diff(ra_decoder_logits(dw), ref, V);
        CHECK(e <= LOGIT_TOL, "%s (%s prompt %d): decoder logits at position %d differ from the forward's by %.3g",
              name, prefill ? "prefilled" : "stepped", Lp, n - 1, e);
        double gap, gap1;
        int tok = argmax(ra_decoder_logits(dw), V, &gap), tok1 = argmax(ra_decoder_logits(ds), V, &gap1);
        CHECK(tok == tok1 || gap1 < LOGIT_TOL, "%s: greedy token %d at position %d, one rank gives %d", name, tok, n,
              tok1);
        seq[n] = tok; /* every rank decodes the same: logits are reduced */
        TRY_CASE(ra_decoder_step(dw, tok));
        TRY_CASE(ra_decoder_step(ds, tok));
    }
done:
    free(ref);
    ra_decoder_destroy(dw);
    ra_decoder_destroy(ds);
    ra_model_destroy(mw);
    ra_model_destroy(ms);
}

static void run_case(int ci, const sweep_case *c, uint64_t seed)
{
    static const int lens[] = { 13, 17, 19, 23 }; /* primes: never divisible by P = 2..4 */
    const int L = lens[ra_rand_u64(seed, 2 * ci) % 4], blk = 3 + (int)(ra_rand_u64(seed, 2 * ci + 1) % 6);
    char name[160];
    snprintf(name, sizeof name, "case %d (%s/%s %s-%s %s %s tied=%d dim %d H %d/%d D %d L %d blk %d)", ci, c->head0,
             c->head1, c->precond, c->grad, c->ffn, c->layout, c->tied, c->dim, c->heads, c->kv_heads, c->head_dim,
             L, blk);
    ra_config cfg;
    ra_model *mw = NULL, *ms = NULL;
    int32_t *seq = NULL;
    ra_decoder *d = NULL;
    TRY_CASE(make_config(&cfg, c, L, blk));
    double lw[STEPS + 1], ls[STEPS + 1];
    TRY_CASE(train_eval(&cfg, MPI_COMM_WORLD, lw, &mw));
    TRY_CASE(train_eval(&cfg, MPI_COMM_SELF, ls, &ms));
    for (int s = 0; s <= STEPS; s++)
        CHECK(fabs(lw[s] - ls[s]) <= LOSS_TOL * fabs(ls[s]),
              "%s: %s loss %.8f at P=%d, %.8f at P=1 (rel %.3g)", name, s < STEPS ? "train" : "eval", lw[s], g_P,
              ls[s], fabs(lw[s] - ls[s]) / fabs(ls[s]));
    if (cfg.layer[0].head_id != RA_HEAD_FULL || cfg.layer[1].head_id != RA_HEAD_FULL) {
        ra_status st = ra_decoder_create(&d, &cfg, ra_model_params(mw), ra_model_layout(mw), MPI_COMM_WORLD, L);
        CHECK(st == RA_ERR_ARG && strstr(ra_last_error(), "full heads only") && strstr(ra_last_error(), "combiner"),
              "%s: a decoder over a combiner layer: status %d, '%s'", name, (int)st, ra_last_error());
        goto done;
    }
    /* decode from the trained weights (the world model's; every rank has them) */
    seq = malloc(sizeof(int32_t) * (size_t)(L + NTOK));
    for (int i = 0; i < L; i++) seq[i] = token_at(777 + ci, 0, i, cfg.vocab);
    check_decode(name, &cfg, ra_model_params(mw), seq, L - 4, 1);
    check_decode(name, &cfg, ra_model_params(mw), seq, 2, 0);
done:
    free(seq);
    ra_decoder_destroy(d);
    ra_model_destroy(mw);
    ra_model_destroy(ms);
}

int main(int argc, char **argv)
{
    int provided = MPI_THREAD_SINGLE;
    MPI_Init_thread(&argc, &argv, MPI_THREAD_FUNNELED, &provided);
    mh_threads_from_env();
    MPI_Comm_rank(MPI_COMM_WORLD, &g_rank);
    MPI_Comm_size(MPI_COMM_WORLD, &g_P);
    const uint64_t seed = 20240611;
    for (int ci = 0; ci < (int)(sizeof cases / sizeof *cases); ci++) run_case(ci, &cases[ci], seed);
    int fails = 0, checks = 0;
    MPI_Allreduce(&g_fail, &fails, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
    MPI_Allreduce(&g_checks, &checks, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
    if (g_rank == 0) printf("test_model_sweep P=%d: %d passed, %d failed\n", g_P, checks - fails, fails);
    MPI_Finalize();
    return fails ? 1 : 0;
}
