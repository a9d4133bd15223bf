/* cmd_plan.c - `ringattn plan`: the cost model (costmodel.h) for a config
 * at P ranks: candidate layouts and chunks, the choice, calibration of the
 * rates on this machine, projections to large clusters (docs/planner.md). */
#include <cblas.h>
#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "ringattn/attn.h"
#include "ringattn/costmodel.h"
#include "ringattn/dist.h"
#include "ringattn/fileio.h"
#include "ringattn/grid.h"
#include "ringattn/heads.h"
#include "ringattn/mem.h"
#include "ringattn/model.h"
#include "ringattn/threads.h"

static const char *help =
    "usage: ringattn plan --config FILE -n P [--dp N] [--layout L] [--chunk C] [--threads T]\n"
    "                     [--link-gbps X] [--link-latency-us Y] [--ranks-per-node R]\n"
    "                     [--calibrate [--save-rates FILE] | --rates FILE] [--set SEC.KEY=VAL]...\n"
    "                     [--project weak|strong --profile ib100|eth25|eth1 [--max-p 4096] [--csv FILE]]\n"
    "       ringattn plan --attn -n P -L N [-H 4] [-D 64] [--Hkv H] [--B 1] [--causal] [--head KIND]\n"
    "                     [--span S] [--row M] [--layout L] [--chunk C] [rates options]\n"
    "\n"
    "Predicts a training step of the config on P ranks (P/dp per ring) for every\n"
    "candidate layout x chunk: compute_ms (busiest rank), comm_ms (ring transfers +\n"
    "gradient all-reduce), wait_ms (imbalance + exposed transfers), balance (mean\n"
    "rank work / busiest), MiB/rank (the model's plan + head buffers + AdamW) and\n"
    "step_ms, then a 'choice:' line with the reason. Rates: --calibrate times the\n"
    "kernels here (under mpirun, a ping-pong from rank 0 to the next rank of its\n"
    "node and one to the first rank of another node: the shm and link rates), --rates\n"
    "reads a saved file, otherwise documented defaults (said in the output).\n"
    "--ranks-per-node: ranks sharing a node's shared memory (default: all P; 1\n"
    "when --link-gbps/--link-latency-us is given; under --calibrate across nodes,\n"
    "rank 0's node's ranks). --project: step time, tokens/s,\n"
    "comm share and memory for P = 1, 2, 4, ... max-p nodes of 64 cores (weak: L/P\n"
    "fixed at the config's L; strong: L fixed). --attn: one head call as 'bench attn'\n"
    "runs it (predicted fwd/bwd ms and waits). See docs/planner.md.\n";

typedef struct {
    const char *config, *rates, *save_rates, *csv, *profile;
    const char *sets[32];
    int nsets;
    int P, dp, chunk, chunk_set, threads, rpn, calibrate, project, max_p, attn;
    int layout_set;
    ra_layout layout;
    double link_gbps, link_lat;
    ra_cm_attn a;
} plan_args;

enum { PROJ_NONE, PROJ_WEAK, PROJ_STRONG };

static ra_status positive(const char *opt, const char *v, double *out)
{
    char *end;
    double x = strtod(v, &end);
    if (end == v || *end || !isfinite(x) || x <= 0)
        return RA_FAIL(RA_ERR_ARG, "%s: need a positive number (got '%s')", opt, v);
    *out = x;
    return RA_OK;
}

static ra_status parse(int argc, char **argv, plan_args *a, int *want_help)
{
    enum { O_CONFIG = 256, O_DP, O_LINK, O_LAT, O_CAL, O_RATES, O_SAVE, O_LAYOUT, O_CHUNK, O_THREADS, O_PROJECT,
           O_MAXP, O_PROFILE, O_CSV, O_RPN, O_ATTN, O_HKV, O_B, O_CAUSAL, O_HEAD, O_SPAN, O_ROW, O_SET, O_HELP };
    static const struct option opts[] = {
        { "config", required_argument, 0, O_CONFIG },  { "dp", required_argument, 0, O_DP },
        { "link-gbps", required_argument, 0, O_LINK }, { "link-latency-us", required_argument, 0, O_LAT },
        { "calibrate", no_argument, 0, O_CAL },        { "rates", required_argument, 0, O_RATES },
        { "save-rates", required_argument, 0, O_SAVE }, { "layout", required_argument, 0, O_LAYOUT },
        { "chunk", required_argument, 0, O_CHUNK },    { "threads", required_argument, 0, O_THREADS },
        { "project", required_argument, 0, O_PROJECT }, { "max-p", required_argument, 0, O_MAXP },
        { "profile", required_argument, 0, O_PROFILE }, { "csv", required_argument, 0, O_CSV },
        { "ranks-per-node", required_argument, 0, O_RPN }, { "attn", no_argument, 0, O_ATTN },
        { "Hkv", required_argument, 0, O_HKV },        { "B", required_argument, 0, O_B },
        { "causal", no_argument, 0, O_CAUSAL },        { "head", required_argument, 0, O_HEAD },
        { "span", required_argument, 0, O_SPAN },      { "row", required_argument, 0, O_ROW },
        { "set", required_argument, 0, O_SET },        { "help", no_argument, 0, O_HELP },
        { 0, 0, 0, 0 },
    };
    *a = (plan_args){ .dp = 1, .max_p = 4096, .a = { .B = 1, .H = 4, .D = 64, .head = RA_HEAD_FULL } };
    int n_set = 0, c;
    long L = 0;
    opterr = 0;
    optind = 1;
    while ((c = getopt_long(argc, argv, ":n:L:H:D:h", opts, NULL)) != -1) {
        switch (c) {
        case 'n': RA_TRY(ra_arg_int("-n", optarg, 1, 1 << 24, &a->P)); n_set = 1; break;
        case 'L': RA_TRY(ra_arg_long("-L", optarg, 1, INT32_MAX, &L)); a->a.L = L; break;
        case 'H': RA_TRY(ra_arg_int("-H", optarg, 1, 1 << 16, &a->a.H)); break;
        case 'D': RA_TRY(ra_arg_int("-D", optarg, 1, 1 << 16, &a->a.D)); break;
        case O_HKV: RA_TRY(ra_arg_int("--Hkv", optarg, 1, 1 << 16, &a->a.Hkv)); break;
        case O_B: RA_TRY(ra_arg_int("--B", optarg, 1, 1 << 16, &a->a.B)); break;
        case O_CAUSAL: a->a.causal = 1; break;
        case O_SPAN: RA_TRY(ra_arg_int("--span", optarg, 1, INT32_MAX, &a->a.span)); break;
        case O_ROW: RA_TRY(ra_arg_int("--row", optarg, 1, INT32_MAX, &a->a.row)); break;
        case O_HEAD: {
            int id = ra_name_find(ra_head_words, optarg);
            if (id < 0) return RA_FAIL(RA_ERR_ARG, "--head: unknown head '%s'", optarg);
            a->a.head = (ra_head_id)id;
            break;
        }
        case O_ATTN: a->attn = 1; break;
        case O_CONFIG: a->config = optarg; break;
        case O_SET:
            if (a->nsets == 32) return RA_FAIL(RA_ERR_ARG, "--set: at most 32");
            a->sets[a->nsets++] = optarg;
            break;
        case O_DP: RA_TRY(ra_arg_int("--dp", optarg, 1, 1 << 24, &a->dp)); break;
        case O_LINK: RA_TRY(positive("--link-gbps", optarg, &a->link_gbps)); break;
        case O_LAT: RA_TRY(positive("--link-latency-us", optarg, &a->link_lat)); break;
        case O_CAL: a->calibrate = 1; break;
        case O_RATES: a->rates = optarg; break;
        case O_SAVE: a->save_rates = optarg; break;
        case O_LAYOUT: RA_TRY(ra_layout_parse(optarg, &a->layout)); a->layout_set = 1; break;
        case O_CHUNK: RA_TRY(ra_arg_int("--chunk", optarg, 1, 1 << 30, &a->chunk)); a->chunk_set = 1; break;
        case O_THREADS: RA_TRY(ra_arg_int("--threads", optarg, 1, 4096, &a->threads)); break;
        case O_RPN: RA_TRY(ra_arg_int("--ranks-per-node", optarg, 1, 1 << 24, &a->rpn)); break;
        case O_PROJECT:
            if (!strcmp(optarg, "weak")) a->project = PROJ_WEAK;
            else if (!strcmp(optarg, "strong")) a->project = PROJ_STRONG;
            else return RA_FAIL(RA_ERR_ARG, "--project: expected weak or strong (got '%s')", optarg);
            break;
        case O_MAXP: RA_TRY(ra_arg_int("--max-p", optarg, 1, 1 << 20, &a->max_p)); break;
        case O_PROFILE: a->profile = optarg; break;
        case O_CSV: a->csv = optarg; break;
        case 'h': case O_HELP: *want_help = 1; return RA_OK;
        default: return ra_arg_unknown("plan", c, argv[optind - 1]);
        }
    }
    if (optind < argc) return RA_FAIL(RA_ERR_ARG, "plan: unexpected argument '%s'", argv[optind]);
    if (!n_set && !a->project) return RA_FAIL(RA_ERR_ARG, "plan: -n P (the ranks to plan for) is required");
    if (!n_set) a->P = 1;
    if (a->P % a->dp)
        return RA_FAIL(RA_ERR_ARG, "--dp %d does not divide -n %d (P/dp ranks per ring)", a->dp, a->P);
    if (a->calibrate && a->rates) return RA_FAIL(RA_ERR_ARG, "plan: --calibrate and --rates exclude each other");
    if (a->save_rates && !a->calibrate) return RA_FAIL(RA_ERR_ARG, "--save-rates needs --calibrate");
    if (a->attn) {
        if (!a->a.L) return RA_FAIL(RA_ERR_ARG, "plan --attn: -L N (the sequence length) is required");
        if (!a->a.Hkv) a->a.Hkv = a->a.H;
        if (a->a.H % a->a.Hkv) return RA_FAIL(RA_ERR_ARG, "--Hkv %d must divide -H %d", a->a.Hkv, a->a.H);
        if (a->a.head == RA_HEAD_COMBINER_LOGSPARSE && !a->a.causal)
            return RA_FAIL(RA_ERR_ARG, "--head combiner-logsparse is causal only: add --causal");
        if (!a->layout_set) /* as bench attn */
            a->layout = a->a.causal && a->a.head == RA_HEAD_FULL ? RA_LAYOUT_ZIGZAG : RA_LAYOUT_CONTIGUOUS;
    } else if (!a->config) {
        return RA_FAIL(RA_ERR_ARG, "plan: --config FILE is required (or --attn for one head call)");
    }
    if (a->project && !a->profile)
        return RA_FAIL(RA_ERR_ARG, "--project needs --profile (ib100, eth25 or eth1)");
    if (a->profile && strcmp(a->profile, "ib100") && strcmp(a->profile, "eth25") && strcmp(a->profile, "eth1"))
        return RA_FAIL(RA_ERR_ARG, "--profile: unknown profile '%s' (ib100, eth25 or eth1)", a->profile);
    return RA_OK;
}

/* ---- calibration ----------------------------------------------------------------- */

static double now(void) { return ra_now(); }

/* Repeat fn until min_s passed (at least 3 times); the median of 5 batches. */
typedef void (*bench_fn)(void *ctx);
static double time_it(bench_fn fn, void *ctx, double min_s)
{
    fn(ctx); /* warm-up */
    int reps = 1;
    double t0 = now();
    fn(ctx);
    double one = now() - t0;
    if (one > 0) reps = (int)(min_s / 5 / one) + 1;
    double t[5];
    for (int b = 0; b < 5; b++) {
        t0 = now();
        for (int i = 0; i < reps; i++) fn(ctx);
        t[b] = (now() - t0) / reps;
    }
    for (int i = 1; i < 5; i++)
        for (int j = i; j > 0 && t[j] < t[j - 1]; j--) {
            double x = t[j];
            t[j] = t[j - 1], t[j - 1] = x;
        }
    return t[2];
}

/* One of a layer's three products of a weight [K][N] with M token rows:
 * forward Y = X W, backward dX = dY W^T and dW = X^T dY. */
typedef struct {
    int M, N, K, pass; /* 0 forward, 1 dX, 2 dW */
    float *a, *b, *c;
} gemm_ctx;
static void run_gemm(void *p)
{
    gemm_ctx *g = p;
    if (g->pass == 0)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, g->M, g->N, g->K, 1, g->a, g->K, g->b, g->N, 0, g->c,
                    g->N);
    else if (g->pass == 1)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, g->M, g->K, g->N, 1, g->a, g->N, g->b, g->N, 0, g->c,
                    g->K);
    else
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, g->K, g->N, g->M, 1, g->a, g->K, g->c, g->N, 0, g->b,
                    g->N);
}

typedef struct {
    int nq, nk, D, nt, bwd;
    float *q, *k, *v, *o, *m, *l, *lse, *dl, *dq, *dk, *dv, *scratch;
    size_t per;
} attn_ctx;
static void run_attn(void *p)
{
    attn_ctx *x = p;
    ra_blas_serial_begin();
#pragma omp parallel for num_threads(x->nt) schedule(static, 1)
    for (int h = 0; h < x->nt; h++) { /* one head per thread, as the ring shares out heads */
        ra_attn_opts ao = { .D = x->D, .scale = 1.0f / sqrtf((float)x->D), .causal = 0, .threads = 1 };
        ra_rows qr = { x->nq, NULL, NULL }, kr = { x->nk, NULL, NULL };
        int32_t *pos = (int32_t *)(x->scratch + (size_t)h * x->per);
        float *sc = x->scratch + (size_t)h * x->per + 4096;
        for (int i = 0; i < 4096; i++) pos[i] = i;
        qr.pos = pos, kr.pos = pos;
        const size_t qo = (size_t)h * x->nq * x->D, ko = (size_t)h * x->nk * x->D;
        if (!x->bwd) {
            ra_attn_fwd_init(x->nq, x->D, x->o + qo, x->m + (size_t)h * x->nq, x->l + (size_t)h * x->nq);
            ra_attn_fwd_block(&ao, &qr, x->q + qo, &kr, x->k + ko, x->v + ko, x->o + qo, x->m + (size_t)h * x->nq,
                              x->l + (size_t)h * x->nq, sc, NULL);
        } else {
            ra_attn_bwd_block(&ao, &qr, x->q + qo, x->o + qo, x->lse + (size_t)h * x->nq, x->dl + (size_t)h * x->nq,
                              &kr, x->k + ko, x->v + ko, x->dq + qo, x->dk + ko, x->dv + ko, sc, NULL);
        }
    }
    ra_blas_serial_end();
}

typedef struct {
    size_t n;
    float *a, *b;
    int nt;
} mem_ctx;
static void run_mem(void *p)
{
    mem_ctx *x = p;
    float *a = x->a;
    const float *b = x->b;
    const long n = (long)x->n;
#pragma omp parallel for num_threads(x->nt) schedule(static)
    for (long i = 0; i < n; i++) a[i] = 0.999f * a[i] + b[i];
}

/* Latency (8 bytes, 2000 round trips) and bandwidth (4 MiB, 20) between
 * rank 0 and rank peer; every rank of comm calls it and gets the result. */
static ra_status ping_pong(const ra_cli *c, int peer, double *lat_us, double *gbps)
{
    const int big_n = 4 << 20, in_pair = c->rank == 0 || c->rank == peer;
    char *pb = in_pair ? malloc(big_n) : NULL;
    int ok = !in_pair || pb != NULL, all = 0;
    ra_status as = ra_allreduce_named(&ok, &all, 1, MPI_INT, MPI_MIN, c->comm, "the ping-pong buffers");
    if (as != RA_OK || !all) {
        free(pb);
        return as != RA_OK ? as : RA_FAIL(RA_ERR_NOMEM, "calibration: out of memory for the ping-pong");
    }
    if (pb) memset(pb, 1, big_n);
    double lat = 0, bw = 0;
    for (int pass = 0; pass < 2; pass++) {
        const int sz = pass ? big_n : 8, reps = pass ? 20 : 2000;
        ra_status ps = ra_barrier(c->comm, "the ping-pong");
        double t0 = now();
        /* non-blocking under the peer timeout (collective.h): a dead peer is named, not waited on */
        const int other = c->rank == 0 ? peer : 0;
        for (int i = 0; i < reps && in_pair && ps == RA_OK; i++) {
            MPI_Request rq;
            for (int turn = 0; turn < 2 && ps == RA_OK; turn++) {
                if ((turn == 0) == (c->rank == 0)) MPI_Isend(pb, sz, MPI_CHAR, other, 7, c->comm, &rq);
                else MPI_Irecv(pb, sz, MPI_CHAR, other, 7, c->comm, &rq);
                ps = ra_wait(1, &rq, "the calibration ping-pong", other);
            }
        }
        ps = ra_agree(c->comm, ps); /* the other ranks learn that the pair failed */
        if (ps != RA_OK) {
            free(pb);
            return ps;
        }
        double half = (now() - t0) / reps / 2;
        if (pass == 0) lat = half;
        else bw = sz / fmax(half - lat, 1e-9);
    }
    free(pb);
    double lb[2] = { lat, bw };
    RA_TRY(ra_bcast(lb, 2, MPI_DOUBLE, 0, c->comm, "the ping-pong result"));
    *lat_us = lb[0] * 1e6;
    *gbps = lb[1] * 8e-9;
    return RA_OK;
}

/* ---- a layer's passes, fitted on a real training step -------------------------- */

typedef struct {
    ra_model *m;
    const int32_t *tok, *tgt;
    float scale;
    ra_status st;
} step_ctx;
static void run_step(void *p)
{
    step_ctx *x = p;
    ra_model_zero_grads(x->m);
    ra_batch_stats bs;
    if (x->st == RA_OK) x->st = ra_model_step(x->m, x->tok, x->tgt, 1, x->scale, 0, &bs);
}

/* The model's forward + backward of cfg at P = 1 under rates r (no optimizer). */
static ra_status predict_fb(const ra_config *cfg, const ra_cm_rates *r, double *s)
{
    ra_cm_setup one = { .P = 1, .dp = 1, .ranks_per_node = 1, .layout = cfg->layout_id, .chunk = 0 };
    ra_cm_train t;
    RA_TRY(ra_cm_train_time(cfg, &one, r, &t));
    *s = t.step_s - t.optim_s - t.allreduce_s;
    return RA_OK;
}

/* layer_pass_gbs: a training step of one layer of the config (full head,
 * 1024 tokens, vocabulary at most 4096) on this rank alone, timed; the
 * model's prediction of it with the passes free leaves the passes' time,
 * and their modelled bytes over it is the rate. The passes are norms, RoPE,
 * gates and moves, each with its own arithmetic: a streaming pass over 64
 * MiB (mem_gbs) runs them 2-4x too fast. Left 0 (mem_gbs is used) when the
 * one-layer model would take over 1 GiB, its step over 0.25 s (it is timed
 * 7 times), or the fit is not meaningful. *why says which. */
static ra_status fit_layer_passes(const ra_config *cfg, ra_cm_rates *r, const char **why)
{
    *why = NULL;
    r->layer_pass_gbs = 0;
    ra_config one = *cfg;
    one.layers = 1;
    one.layer[0].head_id = RA_HEAD_FULL;
    one.layer[0].precond_id = RA_PRECOND_NONE;
    if (one.seq_len > 1024) one.seq_len = 1024;
    if (one.vocab > 4096) one.vocab = 4096;
    one.batch = 1, one.accum = 1;
    size_t bytes = 0, np = 0;
    RA_TRY(ra_model_plan_bytes(&one, 1, 1, 0, &bytes, &np));
    if (bytes > ((size_t)1 << 30)) {
        *why = "one layer of the model needs over 1 GiB";
        return RA_OK;
    }
    ra_cm_rates q = *r;
    double t_free, t_one;
    q.layer_pass_gbs = 1e12; /* passes free */
    RA_TRY(predict_fb(&one, &q, &t_free));
    if (t_free > 0.25) { /* timed 7 times: the calibration stays a few seconds */
        *why = "one layer's step would take over 0.25 s";
        return RA_OK;
    }
    q.layer_pass_gbs = 1; /* 1 GB/s: the passes' bytes in ns */
    RA_TRY(predict_fb(&one, &q, &t_one));
    ra_model *m = NULL;
    RA_TRY(ra_model_create(&m, &one, 1, MPI_COMM_SELF));
    ra_model_init(m, 1);
    const int N = one.seq_len;
    int32_t *tok = malloc(sizeof(int32_t) * 2 * (size_t)N);
    if (!tok) {
        ra_model_destroy(m);
        return RA_FAIL(RA_ERR_NOMEM, "calibration: out of memory for %d tokens", N);
    }
    for (int i = 0; i < N; i++) tok[i] = (int32_t)((i * 7919) % one.vocab), tok[N + i] = tok[i] ? tok[i] - 1 : 0;
    step_ctx x = { m, tok, tok + N, 1.0f / N, RA_OK };
    const double t = time_it(run_step, &x, 0.3);
    ra_model_destroy(m);
    free(tok);
    RA_TRY(x.st);
    const double pass_s_at_1 = t_one - t_free, left = t - t_free;
    if (pass_s_at_1 <= 0 || left < 0.02 * t) {
        *why = "the step left no time for the passes";
        return RA_OK;
    }
    r->layer_pass_gbs = pass_s_at_1 / left;
    if (r->layer_pass_gbs > r->mem_gbs) r->layer_pass_gbs = r->mem_gbs; /* never faster than streaming */
    return RA_OK;
}

/* ---- the Combiners' scalar loops, fitted on calls of the heads ------------------- */

typedef struct {
    const ra_head_kind *kind;
    ra_head *h;
    float *q, *k, *v, *o, *lse, *dout, *dq, *dk, *dv;
    ra_status st;
} head_ctx;
static void run_head(void *p)
{
    head_ctx *x = p;
    if (x->st == RA_OK) x->st = x->kind->forward(x->h, x->q, x->k, x->v, NULL, x->o, x->lse);
    if (x->st == RA_OK)
        x->st = x->kind->backward(x->h, x->q, x->k, x->v, NULL, x->o, x->lse, x->dout, x->dq, x->dk, x->dv);
}

/* One forward + backward of head a on one rank, timed (seconds). */
static ra_status time_head(const ra_cm_attn *a, double *t)
{
    ra_layer_config lc = { .head_id = a->head };
    snprintf(lc.head, sizeof lc.head, "%s", ra_head_words[a->head]);
    ra_head_opts ho = { .ring = { .B = a->B, .H = a->H, .Hkv = a->Hkv, .D = a->D, .L = a->L, .causal = a->causal,
                                  .layout = RA_LAYOUT_CONTIGUOUS },
                        .layer = &lc };
    head_ctx x = { .kind = ra_head_kind_of(a->head) };
    const size_t nq = (size_t)a->B * a->H * a->L * a->D, nk = (size_t)a->B * a->Hkv * a->L * a->D;
    const size_t nrow = (size_t)a->B * a->H * a->L, tot = 4 * nq + 4 * nk + nrow;
    float *buf = NULL;
    RA_TRY(ra_alloc(&buf, sizeof(float) * tot, "calibration head tensors"));
    for (size_t i = 0; i < tot; i++) buf[i] = (float)((i * 7919) % 1000) * 1e-3f - 0.5f;
    x.q = buf, x.k = x.q + nq, x.v = x.k + nk, x.o = x.v + nk, x.lse = x.o + nq;
    x.dout = x.lse + nrow, x.dq = x.dout + nq, x.dk = x.dq + nq, x.dv = x.dk + nk;
    ra_status st = x.kind->create(&x.h, &ho, MPI_COMM_SELF);
    if (st == RA_OK) {
        *t = time_it(run_head, &x, 0.3);
        st = x.st;
    }
    if (x.h) x.kind->destroy(x.h);
    free(buf);
    return st;
}

/* The head's forward + backward as the model prices it on one rank. */
static ra_status predict_head(const ra_cm_attn *a, const ra_cm_rates *r, double *s)
{
    ra_cm_setup one = { .P = 1, .dp = 1, .ranks_per_node = 1, .layout = RA_LAYOUT_CONTIGUOUS, .chunk = 0 };
    ra_cm_attn_cost c;
    RA_TRY(ra_cm_attn_time(a, &one, r, &c));
    *s = c.fwd_s + c.bwd_s;
    return RA_OK;
}

/* fixed_op_gflops, axial_op_gflops, logsparse_op_gflops: a causal call of
 * each Combiner (L = 4096, the given B H Hkv D) on this rank alone, timed;
 * the model's price of it with the scalar loops free leaves their time, and
 * their FLOPs (OP_* counts, costmodel_combiner.c) over it is the head's
 * rate. The loops' mix differs by head (arg-max scans, gathers far apart,
 * expf), so one share of sgemm cannot price all three. Fitted only where
 * the loops are a third of the call or more (combiner-logsparse: its
 * summaries and logits are all loops), and only for a call priced under
 * 0.25 s with at most 256 MiB of tensors that the model and the head
 * accept; the others keep 0: 0.72 of sgemm. */
static const ra_head_id combiner_ids[3] = { RA_HEAD_COMBINER_FIXED, RA_HEAD_COMBINER_AXIAL,
                                            RA_HEAD_COMBINER_LOGSPARSE };
static double *op_rate(ra_cm_rates *r, int i)
{
    return i == 0 ? &r->fixed_op_gflops : i == 1 ? &r->axial_op_gflops : &r->logsparse_op_gflops;
}

static void fit_combiner_ops(int B, int H, int Hkv, int D, ra_cm_rates *r)
{
    for (int i = 0; i < 3; i++) {
        ra_cm_attn a = { .B = B, .H = H, .Hkv = Hkv, .D = D, .L = 4096, .causal = 1, .head = combiner_ids[i] };
        double t = 0, t_free = 0, t_one = 0, t_dflt = 0;
        *op_rate(r, i) = 0;
        ra_cm_rates q = *r;
        /* a head the model or the code refuses at these shapes keeps the
         * default: the calibration is not the place to fail for it */
        if (predict_head(&a, &q, &t_dflt) != RA_OK) continue; /* at 0.72 of sgemm */
        *op_rate(&q, i) = 1e12; /* the loops free */
        if (predict_head(&a, &q, &t_free) != RA_OK) continue;
        *op_rate(&q, i) = 1; /* 1 GFLOP/s: their GFLOPs in seconds */
        if (predict_head(&a, &q, &t_one) != RA_OK) continue;
        /* only where the loops are a third of the call or more (fitted on a
         * small share, the call's noise would set the rate), and where the
         * call is small enough to time 7 times in a calibration of seconds */
        const double tensors = 4.0 * 4 * (double)a.B * a.L * a.D * (a.H + a.Hkv);
        if (t_dflt - t_free < t_dflt / 3 || t_dflt > 0.25 || tensors > 256.0 * 1048576) continue;
        if (time_head(&a, &t) != RA_OK) continue;
        const double gflop = t_one - t_free, left = t - t_free;
        if (gflop > 0 && left >= t / 3) *op_rate(r, i) = gflop / left;
    }
}

/* Times the kernels on every rank at once and the links from rank 0;
 * *node_ranks: the ranks on rank 0's node when another node was reached
 * (the link measured), else 0. */
static ra_status calibrate(const ra_cli *c, const plan_args *pa, const ra_config *cfg, ra_cm_rates *r,
                           int *node_ranks)
{
    const int nt = ra_threads();
    ra_status st = RA_OK;
    *r = (ra_cm_rates){ .threads = nt, .calibrated = 1 };
    ra_cm_default_rates(r);
    r->threads = nt, r->calibrated = 1;
    /* sgemm at the model's shapes (the first 1024 token rows) */
    int C = cfg ? cfg->dim : 256, F = cfg ? cfg->ffn_dim : 688, V = cfg ? cfg->vocab : 256;
    int HD = cfg ? cfg->heads * cfg->head_dim : pa->a.H * pa->a.D, KD = cfg ? cfg->kv_heads * cfg->head_dim : HD;
    int D = cfg ? cfg->head_dim : pa->a.D;
    const int M = 1024;
    int shapes[5][2] = { { C, HD + 2 * KD }, { HD, C }, { C, 2 * F }, { F, C }, { C, V } };
    /* [K][N] per weight, each side at most 8192: the rate of a wider product
     * is the same, and a 128K vocabulary's would not fit (K N floats) */
    int big = 1;
    size_t wmax = 1;
    for (int s = 0; s < 5; s++) {
        for (int j = 0; j < 2; j++) {
            if (shapes[s][j] > 8192) shapes[s][j] = 8192;
            if (shapes[s][j] > big) big = shapes[s][j];
        }
        if ((size_t)shapes[s][0] * shapes[s][1] > wmax) wmax = (size_t)shapes[s][0] * shapes[s][1];
    }
    float *buf = NULL;
    const size_t gfl = (size_t)M * big * 2 + wmax; /* X or dY, Y or dX (M x big each), W or dW */
    st = ra_alloc(&buf, sizeof(float) * gfl, "calibration matrices");
    if (st == RA_OK) {
        for (size_t i = 0; i < gfl; i++) buf[i] = (float)(i % 13) * 0.01f;
        double fl = 0, tt = 0;
        for (int s = 0; s < 5; s++) {
            float *A = buf, *Cc = buf + (size_t)M * big, *B = Cc + (size_t)M * big;
            /* the three products in a step's proportions: a third each */
            for (int pass = 0; pass < 3; pass++) {
                gemm_ctx gg = { M, shapes[s][1], shapes[s][0], pass, A, B, Cc };
                double t = time_it(run_gemm, &gg, 0.05);
                fl += 2.0 * M * shapes[s][1] * shapes[s][0], tt += t;
            }
        }
        if (st == RA_OK) r->sgemm_gflops = fl / tt * 1e-9;
    }
    free(buf);
    buf = NULL;
    /* attention tiles: one head per thread, 1024 queries x 1024 keys, unmasked */
    const int nq = 1024, nk = 1024;
    attn_ctx x = { .nq = nq, .nk = nk, .D = D, .nt = nt };
    x.per = 4096 + (ra_attn_scratch_floats(D) + 15) / 16 * 16;
    const size_t qf = (size_t)nt * nq * D, kf = (size_t)nt * nk * D, rf = (size_t)nt * nq;
    const size_t tot = 3 * qf + 5 * kf + 4 * rf + (size_t)nt * x.per + qf;
    if (st == RA_OK) st = ra_alloc(&buf, sizeof(float) * tot, "calibration tiles");
    if (st == RA_OK) {
        float *p = buf;
        for (size_t i = 0; i < tot; i++) buf[i] = (float)((i * 7919) % 1000) * 1e-3f - 0.5f;
        x.q = p, p += qf;
        x.o = p, p += qf;
        x.dq = p, p += qf;
        p += qf;
        x.k = p, p += kf;
        x.v = p, p += kf;
        x.dk = p, p += kf;
        x.dv = p, p += kf;
        p += kf;
        x.m = p, p += rf;
        x.l = p, p += rf;
        x.lse = p, p += rf;
        x.dl = p, p += rf;
        x.scratch = p;
        x.bwd = 0;
        double tf = time_it(run_attn, &x, 0.3);
        for (size_t i = 0; i < rf; i++) x.lse[i] = 8.0f, x.dl[i] = 0.1f;
        x.bwd = 1;
        double tb = time_it(run_attn, &x, 0.3);
        r->attn_fwd_gflops = 4.0 * D * nq * nk * nt / tf * 1e-9;
        r->attn_bwd_gflops = 10.0 * D * nq * nk * nt / tb * 1e-9;
    }
    free(buf);
    buf = NULL;
    /* a memory-bound pass: 3 x 4 bytes per element over 2 x 64 MiB */
    const size_t n = (size_t)16 << 20;
    if (st == RA_OK) st = ra_alloc(&buf, sizeof(float) * 2 * n, "calibration pass");
    if (st == RA_OK) {
        for (size_t i = 0; i < 2 * n; i++) buf[i] = 1e-3f;
        mem_ctx mc = { n, buf, buf + n, nt };
        double t = time_it(run_mem, &mc, 0.3);
        r->mem_gbs = 12.0 * n / t * 1e-9;
    }
    free(buf);
    buf = NULL;
    st = ra_agree(c->comm, st);
    if (st != RA_OK) return st;
    /* every rank timed at once (shared caches and memory, as in a run): the slowest */
    double v[4] = { r->sgemm_gflops, r->attn_fwd_gflops, r->attn_bwd_gflops, r->mem_gbs }, w[4];
    RA_TRY(ra_allreduce_named(v, w, 4, MPI_DOUBLE, MPI_MIN, c->comm, "the calibrated rates"));
    r->sgemm_gflops = w[0], r->attn_fwd_gflops = w[1], r->attn_bwd_gflops = w[2], r->mem_gbs = w[3];
    /* the Combiners' loops on calls of the heads, priced with those rates */
    const int hB = cfg ? 1 : pa->a.B, hH = cfg ? cfg->heads : pa->a.H, hKv = cfg ? cfg->kv_heads : pa->a.Hkv;
    fit_combiner_ops(hB, hH, hKv, D, r);
    double ops[3], opw[3];
    for (int i = 0; i < 3; i++) ops[i] = *op_rate(r, i) > 0 ? *op_rate(r, i) : 1e300; /* unfitted: not the min */
    RA_TRY(ra_allreduce_named(ops, opw, 3, MPI_DOUBLE, MPI_MIN, c->comm, "the Combiners' loop rates"));
    for (int i = 0; i < 3; i++) *op_rate(r, i) = opw[i] < 1e300 ? opw[i] : 0;
    /* then a training step of one layer, priced with those rates */
    const char *why = "no config (--attn)";
    if (cfg) st = fit_layer_passes(cfg, r, &why);
    RA_TRY(ra_agree(c->comm, st));
    double lp = r->layer_pass_gbs > 0 ? r->layer_pass_gbs : 1e300, lpw;
    RA_TRY(ra_allreduce_named(&lp, &lpw, 1, MPI_DOUBLE, MPI_MIN, c->comm, "the layer passes' rate"));
    r->layer_pass_gbs = lpw < 1e300 ? lpw : 0;
    if (r->layer_pass_gbs == 0 && c->rank == 0 && cfg)
        fprintf(stderr, "ringattn: plan --calibrate: layer passes at the streaming rate (%s)\n", why);
    /* ping-pongs from rank 0: to the next rank of its node (the shared-memory
     * rates) and to the first rank of another node (the link rates) */
    int node, mine[2], peer[2];
    RA_TRY(ra_node_id(c->comm, &node));
    mine[0] = node == 0 && c->rank > 0 ? c->rank : INT_MAX; /* rank 0's node is node 0 */
    mine[1] = node != 0 ? c->rank : INT_MAX;
    RA_TRY(ra_allreduce_named(mine, peer, 2, MPI_INT, MPI_MIN, c->comm, "the ping-pong peers"));
    const int on_node0 = node == 0;
    RA_TRY(ra_allreduce_named(&on_node0, node_ranks, 1, MPI_INT, MPI_SUM, c->comm, "the ranks of rank 0's node"));
    if (peer[0] != INT_MAX) RA_TRY(ping_pong(c, peer[0], &r->shm_lat_us, &r->shm_gbps));
    if (peer[1] != INT_MAX) RA_TRY(ping_pong(c, peer[1], &r->link_lat_us, &r->link_gbps));
    else *node_ranks = 0; /* one node: nothing measured across nodes */
    return RA_OK;
}

/* ---- output ------------------------------------------------------------------------ */

static void profile_link(const char *name, double *gbps, double *lat)
{
    if (!strcmp(name, "ib100")) *gbps = 100, *lat = 2;
    else if (!strcmp(name, "eth25")) *gbps = 25, *lat = 10;
    else *gbps = 1, *lat = 50;
}
enum { CORES_PER_NODE = 64 };

typedef struct {
    ra_layout layout;
    int chunk; /* option value: 0 auto */
    ra_cm_train t;
    int nc, eff_chunk;
} candidate;

static ra_status candidates(const ra_config *cfg, const ra_cm_setup *base, const ra_cm_rates *r, const plan_args *pa,
                            candidate *out, int cap, int *n)
{
    *n = 0;
    const int P = base->P / (base->dp > 1 ? base->dp : 1);
    for (int lay = 0; lay < 3; lay++) {
        if (pa && pa->layout_set && (int)pa->layout != lay) continue;
        int chunks[16], nch = 0;
        if (pa && pa->chunk_set) chunks[nch++] = pa->chunk;
        else {
            chunks[nch++] = 0;
            if (P > 1)
                for (int c = 512; c <= cfg->seq_len && nch < 16; c *= 2) chunks[nch++] = c;
        }
        int seen[16], ns = 0;
        for (int i = 0; i < nch && *n < cap; i++) {
            ra_cm_setup s = *base;
            s.layout = (ra_layout)lay, s.chunk = chunks[i];
            int nc, ch;
            ra_cm_ring_pieces(cfg->seq_len, P, s.layout, s.chunk, &nc, &ch);
            int dup = 0;
            for (int j = 0; j < ns; j++) dup |= seen[j] == ch;
            if (dup) continue;
            seen[ns++] = ch;
            candidate *c = &out[(*n)++];
            c->layout = s.layout, c->chunk = chunks[i], c->nc = nc, c->eff_chunk = ch;
            RA_TRY(ra_cm_train_time(cfg, &s, r, &c->t));
        }
    }
    return RA_OK;
}

static int best_of(const candidate *c, int n)
{
    int b = 0;
    for (int i = 1; i < n; i++)
        if (c[i].t.step_s < c[b].t.step_s * (1 - 1e-9) ||
            (fabs(c[i].t.step_s - c[b].t.step_s) <= 1e-9 * c[b].t.step_s && c[i].t.bytes_per_rank < c[b].t.bytes_per_rank))
            b = i;
    return b;
}

static void say_choice(const ra_cli *c, const candidate *cs, int n, int b)
{
    const candidate *w = &cs[b];
    /* the best of another layout, to say what the choice avoids */
    int o = -1;
    for (int i = 0; i < n; i++)
        if (cs[i].layout != w->layout && (o < 0 || cs[i].t.step_s < cs[o].t.step_s)) o = i;
    char why[256];
    if (o < 0) {
        snprintf(why, sizeof why, "the only layout considered");
    } else {
        const candidate *x = &cs[o];
        const double ratio = x->t.step_s / w->t.step_s;
        const char *cause = x->t.balance < w->t.balance - 0.02 ? "causal imbalance"
                            : x->t.wait_s > w->t.wait_s + 1e-4 ? "exposed transfers"
                            : x->t.compute_s > w->t.compute_s * 1.01 ? "more tile work (partial tiles)"
                                                                     : "no difference beyond noise";
        snprintf(why, sizeof why, "%s is %.2fx slower (%s: balance %.2f vs %.2f, wait %.1f vs %.1f ms)",
                 ra_layout_name(x->layout), ratio, cause, x->t.balance, w->t.balance, x->t.wait_s * 1e3,
                 w->t.wait_s * 1e3);
    }
    /* the chunk: among this layout's chunks */
    char cwhy[160] = "";
    int worst = -1;
    for (int i = 0; i < n; i++)
        if (cs[i].layout == w->layout && i != b && (worst < 0 || cs[i].t.step_s > cs[worst].t.step_s)) worst = i;
    if (worst >= 0)
        snprintf(cwhy, sizeof cwhy, "; chunk %d beats chunk %d by %.1f%%", w->eff_chunk, cs[worst].eff_chunk,
                 100 * (cs[worst].t.step_s / w->t.step_s - 1));
    ra_say(c, "choice: layout=%s chunk=%s%d: step %.1f ms; %s%s\n", ra_layout_name(w->layout),
           w->chunk ? "" : "auto=", w->eff_chunk, w->t.step_s * 1e3, why, cwhy);
}

static void table(const ra_cli *c, const candidate *cs, int n)
{
    ra_say(c, "%-11s %8s %4s %11s %9s %9s %8s %9s %10s\n", "layout", "chunk", "nc", "compute_ms", "comm_ms", "wait_ms",
           "balance", "MiB/rank", "step_ms");
    for (int i = 0; i < n; i++) {
        char ch[24];
        snprintf(ch, sizeof ch, "%s%d", cs[i].chunk ? "" : "a", cs[i].eff_chunk);
        ra_say(c, "%-11s %8s %4d %11.2f %9.2f %9.2f %8.3f %9.1f %10.2f\n", ra_layout_name(cs[i].layout), ch, cs[i].nc,
               cs[i].t.compute_s * 1e3, cs[i].t.comm_s * 1e3, cs[i].t.wait_s * 1e3, cs[i].t.balance,
               cs[i].t.bytes_per_rank / 1048576.0, cs[i].t.step_s * 1e3);
    }
}

static ra_status project(const ra_cli *c, const plan_args *pa, const ra_config *cfg0, const ra_cm_rates *calib)
{
    ra_cm_rates r = *calib;
    const double per_core = (double)CORES_PER_NODE / calib->threads; /* linear in cores (docs/planner.md) */
    r.sgemm_gflops *= per_core, r.attn_fwd_gflops *= per_core, r.attn_bwd_gflops *= per_core;
    r.mem_gbs *= per_core > 8 ? 8 : per_core; /* memory bandwidth: at most 8x one socket's share */
    r.threads = CORES_PER_NODE;
    profile_link(pa->profile, &r.link_gbps, &r.link_lat_us);
    const char *mode = pa->project == PROJ_WEAK ? "weak" : "strong";
    FILE *csv = NULL;
    char *csv_text = NULL;
    size_t csv_len = 0;
    if (pa->csv && c->rank == 0) {
        csv = open_memstream(&csv_text, &csv_len); /* written atomically at the end */
        if (!csv) return RA_FAIL(RA_ERR_NOMEM, "--csv %s: out of memory", pa->csv);
        fprintf(csv, "profile,mode,config,P,L,layout,chunk,step_ms,tokens_per_s,comm_share,mib_per_rank\n");
    }
    ra_say(c, "# projection: %s scaling, profile %s (%.0f Gbit/s, %.0f us), one rank per node of %d cores, rates "
              "per core from %s x %d\n", mode, pa->profile, r.link_gbps, r.link_lat_us, CORES_PER_NODE,
           calib->calibrated ? "calibration" : "the defaults", CORES_PER_NODE);
    ra_say(c, "%8s %11s %-11s %7s %12s %14s %7s %10s\n", "P", "L", "layout", "chunk", "step_ms", "tokens/s", "comm%",
           "MiB/rank");
    ra_status st = RA_OK;
    for (int64_t P = 1; P <= pa->max_p && st == RA_OK; P *= 2) {
        ra_config cfg = *cfg0;
        int64_t L = pa->project == PROJ_WEAK ? (int64_t)cfg0->seq_len * P : cfg0->seq_len;
        if (L > INT32_MAX || L < P) {
            ra_say(c, "%8lld %11lld (stops: %s)\n", (long long)P, (long long)L,
                   L < P ? "fewer tokens than ranks" : "L over 2^31-1");
            break;
        }
        cfg.seq_len = (int)L;
        ra_cm_setup s = { .P = (int)P, .dp = 1, .ranks_per_node = 1, .layout = cfg.layout_id, .chunk = 0 };
        candidate cs[48];
        int n;
        plan_args only = { .layout_set = 0, .chunk_set = 1, .chunk = 0 };
        only.chunk_set = 0;
        /* auto chunk only (the projection is about scaling, not tuning) */
        n = 0;
        for (int lay = 0; lay < 3 && st == RA_OK; lay++) {
            ra_cm_setup s2 = s;
            s2.layout = (ra_layout)lay;
            candidate *cc = &cs[n++];
            cc->layout = s2.layout, cc->chunk = 0;
            ra_cm_ring_pieces(L, (int)P, s2.layout, 0, &cc->nc, &cc->eff_chunk);
            st = ra_cm_train_time(&cfg, &s2, &r, &cc->t);
        }
        (void)only;
        if (st != RA_OK) break;
        int b = best_of(cs, n);
        const ra_cm_train *t = &cs[b].t;
        const double tps = t->tokens / t->step_s, share = 100 * (t->wait_s + t->allreduce_s) / t->step_s;
        ra_say(c, "%8lld %11lld %-11s %7d %12.2f %14.1f %7.1f %10.1f\n", (long long)P, (long long)L,
               ra_layout_name(cs[b].layout), cs[b].eff_chunk, t->step_s * 1e3, tps, share,
               t->bytes_per_rank / 1048576.0);
        if (csv)
            fprintf(csv, "%s,%s,%s,%lld,%lld,%s,%d,%.6g,%.6g,%.4f,%.3f\n", pa->profile, mode, pa->config, (long long)P,
                    (long long)L, ra_layout_name(cs[b].layout), cs[b].eff_chunk, t->step_s * 1e3, tps, share / 100,
                    t->bytes_per_rank / 1048576.0);
    }
    if (csv) {
        if (fclose(csv) != 0 && st == RA_OK) st = RA_FAIL(RA_ERR_NOMEM, "--csv %s: out of memory", pa->csv);
        if (st == RA_OK) st = ra_write_file_atomic(pa->csv, csv_text, csv_len);
        free(csv_text);
    }
    return st;
}

static ra_status write_rates(const char *path, const ra_cm_rates *r)
{
    char text[1024];
    int n = ra_cm_rates_text(r, text, sizeof text);
    if (n < 0 || (size_t)n >= sizeof text) return RA_FAIL(RA_ERR_INTERNAL, "--save-rates: the rates text does not fit");
    return ra_write_file_atomic(path, text, (size_t)n); /* "<path>.tmp", then renamed */
}

static ra_status run(ra_cli *c, plan_args *pa)
{
    ra_config cfg;
    int have_cfg = 0;
    if (pa->config) {
        RA_TRY(ra_config_load(&cfg, pa->config));
        for (int i = 0; i < pa->nsets; i++) RA_TRY(ra_config_set(&cfg, pa->sets[i], "--set"));
        RA_TRY(ra_config_finish(&cfg));
        have_cfg = 1;
        if (!pa->layout_set) pa->layout = cfg.layout_id;
    }
    /* calibration measures on the rank's cores: placed and bound the way the
     * commands it predicts are (a rank mpirun bound to one core would time
     * two threads on it); otherwise --threads only scales the rates */
    /* the outputs before any work: not an input, a place a file can be made */
    const ra_cli_file ins[] = { { "--config", pa->config }, { "--rates", pa->rates } };
    const ra_cli_file outs[] = { { "--save-rates", pa->save_rates }, { "--csv", pa->csv } };
    RA_TRY(ra_agree(c->comm, ra_check_files("plan", ins, 2, outs, 2, c->rank == 0)));
    if (pa->calibrate || !pa->threads) ra_set_threads(c, pa->threads, "--threads");
    else ra_threads_set(pa->threads);
    ra_cm_rates r;
    const char *source = "defaults (docs/planner.md; --calibrate to measure this machine)";
    int calib_rpn = 0; /* ranks on rank 0's node when the calibration reached another node */
    if (pa->rates) {
        char *text = NULL;
        size_t len;
        RA_TRY(ra_file_read_all(pa->rates, "--rates file", 1 << 16, &text, &len));
        if (strlen(text) != len) {
            free(text);
            return RA_FAIL(RA_ERR_FORMAT, "--rates %s: the file holds NUL bytes", pa->rates);
        }
        char name[512];
        snprintf(name, sizeof name, "--rates %s", pa->rates);
        ra_status st = ra_cm_rates_parse(&r, text, name);
        free(text);
        RA_TRY(st);
        source = "--rates file";
    } else if (pa->calibrate) {
        RA_TRY(calibrate(c, pa, have_cfg ? &cfg : NULL, &r, &calib_rpn));
        source = c->size < 2      ? "calibrated here (kernels; links: defaults, no second rank)"
                 : calib_rpn == 0 ? "calibrated here (kernels, a ping-pong in the node; link: defaults, one node)"
                 : calib_rpn == 1 ? "calibrated here (kernels, a ping-pong across nodes; shm: defaults, one rank a node)"
                                  : "calibrated here (kernels, ping-pongs in the node and across nodes)";
        if (pa->save_rates && c->rank == 0) RA_TRY(write_rates(pa->save_rates, &r));
    } else {
        ra_cm_default_rates(&r);
    }
    if (pa->threads && pa->threads != r.threads) { /* linear in threads (docs/planner.md) */
        const double k = (double)pa->threads / r.threads;
        r.sgemm_gflops *= k, r.attn_fwd_gflops *= k, r.attn_bwd_gflops *= k;
        r.threads = pa->threads;
    }
    if (pa->link_gbps > 0) r.link_gbps = pa->link_gbps;
    if (pa->link_lat > 0) r.link_lat_us = pa->link_lat;
    const int rpn = pa->rpn                                ? pa->rpn
                    : (pa->link_gbps > 0 || pa->link_lat > 0) ? 1
                    : calib_rpn > 0                           ? calib_rpn /* as the calibration's ranks sat */
                                                              : pa->P;
    ra_say(c, "# rates: %s: sgemm %.1f GFLOP/s, attention %.1f fwd / %.1f bwd GFLOP/s, passes %.1f GB/s, "
              "shm %.1f Gbit/s %.2f us, link %.1f Gbit/s %.1f us, %d thread(s)/rank\n", source, r.sgemm_gflops,
           r.attn_fwd_gflops, r.attn_bwd_gflops, r.mem_gbs, r.shm_gbps, r.shm_lat_us, r.link_gbps, r.link_lat_us,
           r.threads);
    if (pa->calibrate && pa->save_rates) ra_say(c, "# rates saved to %s\n", pa->save_rates);
    ra_cm_setup s = { .P = pa->P, .dp = pa->dp, .ranks_per_node = rpn, .layout = pa->layout, .chunk = pa->chunk };
    if (pa->attn) {
        ra_cm_attn_cost ac;
        RA_TRY(ra_cm_attn_time(&pa->a, &s, &r, &ac));
        ra_say(c, "# attn: head=%s P=%d L=%lld B=%d H=%d Hkv=%d D=%d %s layout=%s chunk=%d nc=%d ranks/node=%d\n",
               ra_head_words[pa->a.head], pa->P, (long long)pa->a.L, pa->a.B, pa->a.H, pa->a.Hkv, pa->a.D,
               pa->a.causal ? "causal" : "bidirectional", ra_layout_name(s.layout), ac.chunk, ac.nc, rpn);
        ra_say(c, "predicted: fwd_ms=%.3f bwd_ms=%.3f fwd_wait_ms=%.3f bwd_wait_ms=%.3f balance=%.3f "
                  "imbalance_ms=%.3f MiB_sent=%.2f head_MiB=%.2f\n", ac.fwd_s * 1e3, ac.bwd_s * 1e3,
               ac.fwd_wait_s * 1e3, ac.bwd_wait_s * 1e3, ac.balance, ac.imbalance_s * 1e3, ac.bytes_sent / 1048576.0,
               ac.head_bytes / 1048576.0);
        return RA_OK;
    }
    if (pa->project) return project(c, pa, &cfg, &r);
    candidate cs[64];
    int n;
    RA_TRY(candidates(&cfg, &s, &r, pa, cs, 64, &n));
    ra_say(c, "# plan: %s, P=%d (dp=%d: %d ranks per ring), L=%d, batch %d (accum %d), %d layers, %zu parameters, "
              "optimizer %s, %d rank(s) per node\n", pa->config, pa->P, pa->dp, pa->P / pa->dp, cfg.seq_len, cfg.batch,
           cfg.accum, cfg.layers, cs[0].t.nparams, cs[0].t.sharded ? "sharded" : "replicated", rpn);
    table(c, cs, n);
    int b = best_of(cs, n);
    ra_say(c, "predicted: step_ms=%.3f attn_fwd_ms=%.3f attn_bwd_ms=%.3f allreduce_ms=%.3f tokens_per_s=%.1f\n",
           cs[b].t.step_s * 1e3, cs[b].t.attn_fwd_s * 1e3, cs[b].t.attn_bwd_s * 1e3, cs[b].t.allreduce_s * 1e3,
           cs[b].t.tokens / cs[b].t.step_s);
    say_choice(c, cs, n, b);
    return RA_OK;
}

ra_status ra_cmd_plan(ra_cli *c, int argc, char **argv)
{
    plan_args pa;
    int want_help = 0;
    RA_TRY(ra_agree(c->comm, parse(argc, argv, &pa, &want_help)));
    if (want_help) {
        ra_say(c, "%s", help);
        return RA_OK;
    }
    return ra_agree(c->comm, run(c, &pa));
}
