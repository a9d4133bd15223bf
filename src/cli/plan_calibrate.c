/* plan_calibrate.c - `ringattn plan --calibrate`: the rates of the cost
 * model (costmodel.h) measured on this machine: sgemm at the model's
 * shapes, the attention tiles, a memory pass, the Combiners' scalar loops
 * and a layer's passes fitted on real calls, and ping-pongs inside a node
 * and across nodes (docs/planner.md, "Calibration"). */
#include <cblas.h>
#include <limits.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench.h"
#include "cli.h"
#include "plan_calibrate.h"
#include "ringattn/attn.h"
#include "ringattn/costmodel.h"
#include "ringattn/dist.h"
#include "ringattn/grid.h"
#include "ringattn/heads.h"
#include "ringattn/mem.h"
#include "ringattn/model.h"
#include "ringattn/rng.h"
#include "ringattn/threads.h"

/* ---- calibration ----------------------------------------------------------------- */

static double now(void) { return ra_now(); }

/* CPU seconds of every thread of this process. */
static double cpu_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Repeat fn until min_s passed (at least 3 times); the median of 5 batches.
 * cpu_share, when not NULL: the CPU time the process got over the batches
 * per second per thread of the nt that fn keeps busy. Below 1 the threads
 * waited for their cores (other processes, or more threads than cores), so
 * the rates are those of a shared core. */
typedef void (*bench_fn)(void *ctx);
static double time_it(bench_fn fn, void *ctx, double min_s, int nt, double *cpu_share)
{
    fn(ctx); /* warm-up */
    int reps = 1;
    double t0 = now();
    fn(ctx);
    double one = now() - t0;
    if (one > 0) reps = (int)(min_s / 5 / one) + 1;
    double t[5], wall = 0;
    const double c0 = cpu_now();
    for (int b = 0; b < 5; b++) {
        t0 = now();
        for (int i = 0; i < reps; i++) fn(ctx);
        t[b] = (now() - t0) / reps;
        wall += t[b] * reps;
    }
    if (cpu_share) *cpu_share = wall > 0 ? (cpu_now() - c0) / (wall * nt) : 1;
    return ra_median(t, 5);
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
    int nq, nk, D, nt, bwd, reps; /* reps: calls per head (a small call repeated in cache) */
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
        if (!x->bwd) ra_attn_fwd_init(x->nq, x->D, x->o + qo, x->m + (size_t)h * x->nq, x->l + (size_t)h * x->nq);
        for (int rep = 0; rep < x->reps; rep++) {
            if (!x->bwd)
                ra_attn_fwd_block(&ao, &qr, x->q + qo, &kr, x->k + ko, x->v + ko, x->o + qo,
                                  x->m + (size_t)h * x->nq, x->l + (size_t)h * x->nq, sc, NULL);
            else
                ra_attn_bwd_block(&ao, &qr, x->q + qo, x->o + qo, x->lse + (size_t)h * x->nq,
                                  x->dl + (size_t)h * x->nq, &kr, x->k + ko, x->v + ko, x->dq + qo, x->dk + ko,
                                  x->dv + ko, sc, NULL);
        }
    }
    ra_blas_serial_end();
}

/* row_fwd_pairs, row_bwd_pairs: what a small kernel call costs beyond its
 * pairs, per (row, key tile), in pairs (costmodel_combiner.c's call_fwd and
 * call_bwd: the softmax's and the products' per-row work, which a block of
 * ROW_CALL rows does not amortize; the Combiners make such calls by the
 * thousand). A ROW_CALL x ROW_CALL block, bidirectional, called ROW_REPS
 * times on data in cache, against the 1024 x 1024 call of the rates on the
 * same buffers, the two timed by turns ROW_ROUNDS times: the median of the
 * rounds' ratios (the row cost is a few percent of the small call, below
 * the drift of rates timed apart). A fit outside [ROW_MIN, ROW_MAX] is
 * clamped: a small call is not cheaper per pair than the big one but for
 * noise. */
enum { ROW_CALL = 64, ROW_REPS = 32, ROW_ROUNDS = 7 };
#define ROW_MIN 0.1
#define ROW_MAX 1000.0
static double fit_row_cost(attn_ctx *big, int tk)
{
    attn_ctx s = *big;
    s.nq = s.nk = ROW_CALL, s.reps = ROW_REPS;
    double ratio[ROW_ROUNDS];
    for (int i = 0; i < ROW_ROUNDS; i++) {
        const double pair_s = time_it(run_attn, big, 0.02, big->nt, NULL) / ((double)big->nq * big->nk);
        const double call_s = time_it(run_attn, &s, 0.02, s.nt, NULL) / ROW_REPS;
        ratio[i] = call_s / pair_s; /* the small call in pairs of the big one */
    }
    const double n = ROW_CALL, row = (ra_median(ratio, ROW_ROUNDS) - n * n) / (n * ceil(n / tk));
    return fmin(ROW_MAX, fmax(ROW_MIN, row));
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

/* ---- the link's cost to the compute ------------------------------------------------ */

enum { CPU_PIECE = 1 << 20, CPU_TILE = 256, CPU_DEPTH = 2 };

static void cpu_tile(float *t)
{
    const int n = CPU_TILE;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1, t, n, t + n * n, n, 0, t + 2 * n * n, n);
}

/* Tiles per second while `rounds` pieces go each way between this rank and
 * other, CPU_DEPTH in flight, a test between tiles (as the ring runs); 0
 * rounds: quietly, for secs. *busy_s: how long. */
static ra_status tiles_per_s(float *tile, char *pb, int other, MPI_Comm comm, int rounds, double secs,
                             double *rate, double *busy_s)
{
    MPI_Request rq[2 * CPU_DEPTH];
    int active[CPU_DEPTH] = { 0 }, posted = 0, done = 0, n = 0;
    for (int d = 0; d < 2 * CPU_DEPTH; d++) rq[d] = MPI_REQUEST_NULL;
    for (int d = 0; d < CPU_DEPTH && posted < rounds; d++, posted++) {
        MPI_Irecv(pb + (size_t)(2 * d) * CPU_PIECE, CPU_PIECE, MPI_CHAR, other, 8, comm, &rq[2 * d]);
        MPI_Isend(pb + (size_t)(2 * d + 1) * CPU_PIECE, CPU_PIECE, MPI_CHAR, other, 8, comm, &rq[2 * d + 1]);
        active[d] = 1;
    }
    /* a peer that stopped: give up here, ra_wait below names it after its timeout */
    const double t0 = now(), deadline = 20 * secs + 10;
    while (rounds ? done < rounds : now() - t0 < secs) {
        cpu_tile(tile), n++;
        for (int d = 0; d < CPU_DEPTH; d++) {
            int flag = 0;
            if (!active[d]) continue;
            MPI_Testall(2, rq + 2 * d, &flag, MPI_STATUSES_IGNORE);
            if (!flag) continue;
            done++, active[d] = 0;
            if (posted < rounds) {
                MPI_Irecv(pb + (size_t)(2 * d) * CPU_PIECE, CPU_PIECE, MPI_CHAR, other, 8, comm, &rq[2 * d]);
                MPI_Isend(pb + (size_t)(2 * d + 1) * CPU_PIECE, CPU_PIECE, MPI_CHAR, other, 8, comm, &rq[2 * d + 1]);
                active[d] = 1, posted++;
            }
        }
        if (now() - t0 > deadline) break;
    }
    *busy_s = now() - t0;
    *rate = n / *busy_s;
    return ra_wait(2 * CPU_DEPTH, rq, "the link CPU calibration", other);
}

/* The compute a rank loses to TCP traffic across nodes (link_cpu_s_per_gb):
 * rank 0 and peer run sgemm tiles quietly, then while exchanging 1 MiB
 * pieces both ways for about as long; the tiles lost, over the bytes each
 * sent and received. The median of 3, the mean of the two ranks. */
static ra_status link_cpu(const ra_cli *c, int peer, double link_gbps, double *s_per_gb)
{
    const int in_pair = c->rank == 0 || c->rank == peer, other = c->rank == 0 ? peer : 0;
    const double secs = 0.15;
    int rounds = (int)fmin(256, fmax(8, secs * link_gbps * 1e9 / 8 / CPU_PIECE));
    float *tile = in_pair ? malloc(sizeof(float) * 3 * CPU_TILE * CPU_TILE) : NULL;
    char *pb = in_pair ? malloc((size_t)2 * CPU_DEPTH * CPU_PIECE) : NULL;
    int ok = !in_pair || (tile && pb), all = 0;
    ra_status st = ra_allreduce_named(&ok, &all, 1, MPI_INT, MPI_MIN, c->comm, "the link CPU buffers");
    if (st == RA_OK && !all) st = RA_FAIL(RA_ERR_NOMEM, "calibration: out of memory for the link CPU tiles");
    if (tile) for (int i = 0; i < 3 * CPU_TILE * CPU_TILE; i++) tile[i] = (float)(i % 17) * 0.01f;
    if (pb) memset(pb, 2, (size_t)2 * CPU_DEPTH * CPU_PIECE);
    double loss[3] = { 0, 0, 0 };
    for (int rep = 0; rep < 3 && st == RA_OK; rep++) {
        st = ra_barrier(c->comm, "the link CPU calibration");
        double quiet = 0, busy = 0, busy_s = 0, quiet_s = 0;
        if (st == RA_OK && in_pair) st = tiles_per_s(tile, pb, other, c->comm, 0, secs, &quiet, &quiet_s);
        if (st == RA_OK && in_pair) st = tiles_per_s(tile, pb, other, c->comm, rounds, secs, &busy, &busy_s);
        st = ra_agree(c->comm, st); /* the other ranks learn that the pair failed */
        if (st == RA_OK && in_pair && quiet > 0)
            loss[rep] = fmax(0, 1 - busy / quiet) * busy_s / (2.0 * rounds * CPU_PIECE * 1e-9);
    }
    free(tile), free(pb);
    RA_TRY(st);
    double mine = ra_median(loss, 3), sum = 0;
    RA_TRY(ra_allreduce_named(&mine, &sum, 1, MPI_DOUBLE, MPI_SUM, c->comm, "the link CPU cost"));
    *s_per_gb = sum / 2;
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
    const double t = time_it(run_step, &x, 0.3, 1, NULL);
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
    /* uniform in [-1, 1), as bench attn's: the loops' branches (a softmax's
     * new maximum, an arg-max's) follow the data, and a periodic pattern
     * took them so rarely that combiner-logsparse's forward ran 25 % faster
     * than on bench attn's tensors (its fitted rate 202 GFLOP/s, not 161) */
    for (size_t i = 0; i < tot; i++) buf[i] = ra_rand_uniform(77, i);
    x.q = buf, x.k = x.q + nq, x.v = x.k + nk, x.o = x.v + nk, x.lse = x.o + nq;
    x.dout = x.lse + nrow, x.dq = x.dout + nq, x.dk = x.dq + nq, x.dv = x.dk + nk;
    ra_status st = x.kind->create(&x.h, &ho, MPI_COMM_SELF);
    if (st == RA_OK) {
        *t = time_it(run_head, &x, 0.3, 1, NULL);
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

/* Warn (rank 0) when some rank's timing threads got less than SHARE_MIN of
 * their cores: calibrated on a busy or oversubscribed node, the rates are
 * low, and the plan of a run that will have whole cores is pessimistic. */
#define SHARE_MIN 0.85
static ra_status warn_shared_cores(const ra_cli *c, double share)
{
    struct {
        double share;
        int rank;
    } mine = { share, c->rank }, low;
    RA_TRY(ra_allreduce_named(&mine, &low, 1, MPI_DOUBLE_INT, MPI_MINLOC, c->comm, "the timings' CPU shares"));
    if (c->rank == 0 && low.share < SHARE_MIN)
        fprintf(stderr, "ringattn: warning: plan --calibrate: rank %d's %d thread(s) ran only %.0f%% of the time "
                "during the kernel timings (other processes on its cores, or more ranks x threads than cores): the "
                "rates are those of shared cores, up to %.1fx low for a run that has whole cores; calibrate on idle "
                "nodes with the run's ranks per node and --threads\n", low.rank, ra_threads(), 100 * low.share,
                1 / low.share);
    return RA_OK;
}

ra_status ra_plan_calibrate(const ra_cli *c, const ra_config *cfg, const ra_cm_attn *shape, ra_cm_rates *r,
                            int *node_ranks)
{
    const int nt = ra_threads();
    ra_status st = RA_OK;
    double share[3] = { 1, 1, 1 }; /* CPU per thread of the attention forward, backward, memory pass */
    ra_cm_default_rates(r);
    r->threads = nt, r->calibrated = 1;
    /* sgemm at the model's shapes (the first 1024 token rows) */
    int C = cfg ? cfg->dim : 256, F = cfg ? cfg->ffn_dim : 688, V = cfg ? cfg->vocab : 256;
    int HD = cfg ? cfg->heads * cfg->head_dim : shape->H * shape->D, KD = cfg ? cfg->kv_heads * cfg->head_dim : HD;
    int D = cfg ? cfg->head_dim : shape->D;
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
                double t = time_it(run_gemm, &gg, 0.05, 1, NULL);
                fl += 2.0 * M * shapes[s][1] * shapes[s][0], tt += t;
            }
        }
        if (st == RA_OK) r->sgemm_gflops = fl / tt * 1e-9;
    }
    free(buf);
    buf = NULL;
    /* attention tiles: one head per thread, 1024 queries x 1024 keys, unmasked */
    const int nq = 1024, nk = 1024;
    attn_ctx x = { .nq = nq, .nk = nk, .D = D, .nt = nt, .reps = 1 };
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
        double tf = time_it(run_attn, &x, 0.3, nt, &share[0]);
        for (size_t i = 0; i < rf; i++) x.lse[i] = 8.0f, x.dl[i] = 0.1f;
        r->row_fwd_pairs = fit_row_cost(&x, RA_ATTN_FWD_TK);
        x.bwd = 1;
        double tb = time_it(run_attn, &x, 0.3, nt, &share[1]);
        r->row_bwd_pairs = fit_row_cost(&x, RA_ATTN_BWD_TK);
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
        double t = time_it(run_mem, &mc, 0.3, nt, &share[2]);
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
    RA_TRY(warn_shared_cores(c, fmin(share[0], fmin(share[1], share[2]))));
    /* and the most any rank's small calls cost per row */
    double rc[2] = { r->row_fwd_pairs, r->row_bwd_pairs }, rcw[2];
    RA_TRY(ra_allreduce_named(rc, rcw, 2, MPI_DOUBLE, MPI_MAX, c->comm, "the small calls' row costs"));
    r->row_fwd_pairs = rcw[0], r->row_bwd_pairs = rcw[1];
    /* the Combiners' loops on calls of the heads, priced with those rates */
    const int hB = cfg ? 1 : shape->B, hH = cfg ? cfg->heads : shape->H, hKv = cfg ? cfg->kv_heads : shape->Hkv;
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
    if (peer[1] != INT_MAX) {
        RA_TRY(ping_pong(c, peer[1], &r->link_lat_us, &r->link_gbps));
        RA_TRY(link_cpu(c, peer[1], r->link_gbps, &r->link_cpu_s_per_gb));
    } else *node_ranks = 0; /* one node: nothing measured across nodes */
    return RA_OK;
}
