/* bench_attn.c - `ringattn bench attn`: ring attention forward and backward
 * over a sweep of sequence lengths.
 *
 * Inputs are generated per rank from the counter-based generator, so no rank
 * ever holds more than its own tokens. With -c 1, sampled query rows of O,
 * LSE and dQ are checked against a float64 reference that regenerates every
 * key and value it needs; a failed check makes the exit status non-zero. */
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"
#include "ringattn/attn.h"
#include "ringattn/dist.h"
#include "ringattn/mem.h"
#include "ringattn/heads.h"
#include "ringattn/isa.h"
#include "ringattn/ring.h"
#include "ringattn/rng.h"
#include "ringattn/threads.h"
#include "ringattn/trace.h"

static const char *help =
    "usage: [mpirun -n P] ringattn bench attn [-b 1K] [-e 8K] [-f 2] [-n 5] [-w 1] [-c 1]\n"
    "                                          [-t N] [-H 4] [-D 64] [--Hkv H] [--B 1]\n"
    "                                          [--causal] [--layout NAME] [--chunk N]\n"
    "                                          [--forward-only] [--head KIND] [--span S] [--row M]\n"
    "                                          [--no-comm] [--trace FILE]\n"
    "\n"
    "Times the ring forward and backward for each L of the sweep and prints one\n"
    "row per L. Columns:\n"
    "  L               global sequence length\n"
    "  fwd_ms min max  each rank's median time per call: the average over ranks,\n"
    "  (bwd likewise)  then the minimum and the maximum over ranks\n"
    "  GFLOP/s         FLOPs (4*B*H*L^2*D forward, 10*B*H*L^2*D backward, halved\n"
    "                  when causal) over the slowest rank's median time\n"
    "  %sgemm          GFLOP/s as a percent of the single-thread OpenBLAS sgemm rate\n"
    "                  (1024^3: the median of 3 calls before the row's warm-up and\n"
    "                  3 after its timed calls, its '# sgemm' line) times the cores\n"
    "                  in use\n"
    "  wait_ms         median time blocked on ring transfers (max over ranks)\n"
    "  MiB_sent        bytes a rank sent to other ranks per forward + backward\n"
    "                  (max over ranks): the ring moves about L*D per head, a\n"
    "                  combiner-fixed head about L*D/P plus its summaries\n"
    "  peak_MiB        peak resident memory of a rank (max over ranks)\n"
    "  err_O err_dQ    error of sampled rows vs a float64 reference, over the largest\n"
    "                  reference value (dQ: at least 1e-2)\n"
    "  check           OK / FAIL (O <= 1e-5, LSE <= 1e-4, dQ <= 1e-4) or - without -c\n"
    "                  (the sampled check is for --head full; the tests check the others)\n"
    "GFLOP/s of a Combiner head uses the same full-attention count (an equivalent\n"
    "rate); compare its times with full's to see the saving.\n"
    "--no-comm skips the ring transfers (each rank gets its own pieces back): the\n"
    "same tile work without communication, to compare step times against (no\n"
    "check: the results are wrong by design; use it without --causal, where\n"
    "every tile is computed either way).\n"
    "--trace FILE records every iteration, warm-up included (docs/trace.md).\n";

typedef struct {
    ra_bench_sweep sw;
    int B, H, Hkv, D, causal, chunk, fwd_only, no_comm;
    const char *check_note; /* why a -c 1 given checks nothing, or NULL */
    const char *trace;
    ra_layout layout;
    ra_layer_config layer; /* head_id, span, row */
} bench_args;

enum { S_Q = 0, S_K = 1, S_V = 2, S_DO = 3 };

static ra_status parse(int argc, char **argv, bench_args *a, int *want_help)
{
    enum { O_HKV = 256, O_B, O_CAUSAL, O_LAYOUT, O_CHUNK, O_FWD, O_HELP, O_HEAD, O_SPAN, O_ROW, O_NOCOMM, O_TRACE };
    static const struct option opts[] = {
        { "Hkv", required_argument, 0, O_HKV },     { "B", required_argument, 0, O_B },
        { "causal", no_argument, 0, O_CAUSAL },     { "layout", required_argument, 0, O_LAYOUT },
        { "chunk", required_argument, 0, O_CHUNK }, { "forward-only", no_argument, 0, O_FWD },
        { "help", no_argument, 0, O_HELP },         { "head", required_argument, 0, O_HEAD },
        { "span", required_argument, 0, O_SPAN },   { "row", required_argument, 0, O_ROW },
        { "no-comm", no_argument, 0, O_NOCOMM },   { "trace", required_argument, 0, O_TRACE },
        { 0, 0, 0, 0 },
    };
    *a = (bench_args){ .sw = { .begin = 1024, .end = 8192, .factor = 2, .iters = 5, .warmup = 1, .check = 1 }, .B = 1, .H = 4, .D = 64,
                       .layer = { .head = "full", .head_id = RA_HEAD_FULL } };
    int layout_set = 0, c;
    ra_status st = RA_OK;
    opterr = 0;
    optind = 1;
    while ((c = ra_getopt(argc, argv, ":b:e:f:n:w:c:t:H:D:h", opts)) != -1) {
        if (ra_bench_sweep_opt("bench attn", &a->sw, c, optarg, &st)) {
            RA_TRY(st);
            continue;
        }
        switch (c) {
        case 'H': RA_TRY(ra_arg_int("-H", optarg, 1, 1 << 16, &a->H)); break;
        case 'D': RA_TRY(ra_arg_int("-D", optarg, 1, 1 << 16, &a->D)); break;
        case O_HKV: RA_TRY(ra_arg_int("--Hkv", optarg, 1, 1 << 16, &a->Hkv)); break;
        case O_B: RA_TRY(ra_arg_int("--B", optarg, 1, 1 << 16, &a->B)); break;
        case O_CAUSAL: a->causal = 1; break;
        case O_LAYOUT: RA_TRY(ra_layout_parse(optarg, &a->layout)); layout_set = 1; break;
        case O_CHUNK: RA_TRY(ra_arg_int("--chunk", optarg, 1, 1 << 30, &a->chunk)); break;
        case O_FWD: a->fwd_only = 1; break;
        case O_NOCOMM: a->no_comm = 1; break;
        case O_TRACE:
            if (!optarg[0]) return RA_FAIL(RA_ERR_ARG, "bench attn: --trace: empty file name");
            a->trace = optarg;
            break;
        case O_HEAD: {
            int id = ra_name_find(ra_head_words, optarg);
            if (id < 0) return RA_FAIL(RA_ERR_ARG, "--head: unknown head '%s' (known: %s)", optarg, ra_head_names());
            a->layer.head_id = (ra_head_id)id;
            snprintf(a->layer.head, sizeof a->layer.head, "%s", ra_head_words[id]);
            break;
        }
        case O_SPAN: RA_TRY(ra_arg_int("--span", optarg, 1, INT32_MAX, &a->layer.span)); break;
        case O_ROW: RA_TRY(ra_arg_int("--row", optarg, 1, INT32_MAX, &a->layer.row)); break;
        case 'h': case O_HELP: *want_help = 1; return RA_OK;
        default: return ra_arg_unknown("bench attn", c, argv[optind - 1]);
        }
    }
    if (optind < argc)
        return RA_FAIL(RA_ERR_ARG, "bench attn: unexpected argument '%s'", argv[optind]);
    RA_TRY(ra_check_head_params("bench attn", &a->layer, a->causal)); /* before the sgemm reference and the table */
    if (!a->Hkv) a->Hkv = a->H;
    if (a->H % a->Hkv) return RA_FAIL(RA_ERR_ARG, "bench attn: --Hkv %d must divide -H %d", a->Hkv, a->H);
    if (!layout_set) /* as attn: zigzag only pays for the ring head */
        a->layout = a->causal && a->layer.head_id == RA_HEAD_FULL ? RA_LAYOUT_ZIGZAG : RA_LAYOUT_CONTIGUOUS;
    /* -c 1 given where nothing is checked: said, not dropped unseen */
    if (a->sw.check_given && a->sw.check && (a->no_comm || a->layer.head_id != RA_HEAD_FULL))
        a->check_note = a->no_comm ? "--no-comm gives wrong results by design" : "the sampled check is --head full's "
                                                                               "(the tests check the Combiners)";
    if (a->no_comm) a->sw.check = 0; /* wrong results by design */
    if (a->sw.check && a->layer.head_id == RA_HEAD_FULL && a->D > 1024) /* found after the first row's timed iterations */
        return RA_FAIL(RA_ERR_ARG, "bench attn: -c 1 checks D <= 1024 (got -D %d): give -c 0 to time larger heads",
                       a->D);
    return ra_bench_sweep_check("bench attn", &a->sw);
}

/* ---- inputs and the float64 check ---------------------------------------- */

/* element (bh, global row i, d) of generated tensor `which` */
static float gen(uint64_t which, int64_t bh, int64_t L, int64_t i, int D, int d)
{
    return ra_rand_uniform(1000 + which, (uint64_t)((bh * L + i) * D + d));
}

static void fill(float *x, uint64_t which, int64_t nbh, int64_t L, const int32_t *pos, int64_t Lr, int D)
{
    for (int64_t bh = 0; bh < nbh; bh++)
        for (int64_t i = 0; i < Lr; i++)
            for (int d = 0; d < D; d++) x[(bh * Lr + i) * D + d] = gen(which, bh, L, pos[i], D, d);
}

typedef struct {
    double o_err, o_ref, lse_err, dq_err, dq_ref;
} check_acc;

/* Reference for one query row (batch b, head h, global row gi). */
static void check_row(const bench_args *a, int64_t L, float scale, int b, int h, int64_t gi,
                      const float *o, float lse, const float *dq, double *s, check_acc *acc)
{
    const int D = a->D, g = h / (a->H / a->Hkv);
    const int64_t qbh = (int64_t)b * a->H + h, kbh = (int64_t)b * a->Hkv + g;
    double q[1024], dout[1024], oref[1024], dqref[1024];
    for (int d = 0; d < D; d++) {
        q[d] = gen(S_Q, qbh, L, gi, D, d);
        dout[d] = gen(S_DO, qbh, L, gi, D, d);
        oref[d] = dqref[d] = 0;
    }
    int64_t n = a->causal ? gi + 1 : L;
    double m = -INFINITY, l = 0;
    for (int64_t j = 0; j < n; j++) {
        double dot = 0;
        for (int d = 0; d < D; d++) dot += q[d] * gen(S_K, kbh, L, j, D, d);
        s[j] = scale * dot;
        if (s[j] > m) m = s[j];
    }
    for (int64_t j = 0; j < n; j++) l += exp(s[j] - m);
    for (int64_t j = 0; j < n; j++) {
        double p = exp(s[j] - m) / l;
        for (int d = 0; d < D; d++) oref[d] += p * gen(S_V, kbh, L, j, D, d);
    }
    double dl = 0;
    for (int d = 0; d < D; d++) dl += dout[d] * oref[d];
    if (dq) {
        for (int64_t j = 0; j < n; j++) {
            double p = exp(s[j] - m) / l, dp = 0;
            for (int d = 0; d < D; d++) dp += dout[d] * gen(S_V, kbh, L, j, D, d);
            double ds = p * (dp - dl) * scale;
            for (int d = 0; d < D; d++) dqref[d] += ds * gen(S_K, kbh, L, j, D, d);
        }
    }
    for (int d = 0; d < D; d++) {
        acc->o_err = fmax(acc->o_err, fabs(o[d] - oref[d]));
        acc->o_ref = fmax(acc->o_ref, fabs(oref[d]));
        if (dq) {
            acc->dq_err = fmax(acc->dq_err, fabs(dq[d] - dqref[d]));
            acc->dq_ref = fmax(acc->dq_ref, fabs(dqref[d]));
        }
    }
    double lref = m + log(l);
    acc->lse_err = fmax(acc->lse_err, fabs(lse - lref) / fmax(1.0, fabs(lref)));
}

/* ---- one size --------------------------------------------------------------- */

typedef struct {
    double fwd[3], bwd[3];   /* min avg max over ranks of each rank's median */
    double fwd_wait, bwd_wait, peak, mib_sent;
    double sgemm;            /* GFLOP/s: median of the reference calls around the row */
    double err_o, err_dq, err_lse;
    int ok;
} row_result;

/* ref: the sgemm reference on rank 0, NULL on the others: REF_CALLS calls
 * before the warm-up and as many after the timed iterations (between them,
 * its 12 MiB would evict the head's data and slow a short call by 5 %) */
enum { REF_CALLS = 3 };
static ra_status run_size(const ra_cli *c, const bench_args *a, ra_sgemm_ref *ref, int64_t L,
                          row_result *res)
{
    ra_head_opts ho = { .ring = { .B = a->B, .H = a->H, .Hkv = a->Hkv, .D = a->D, .L = L,
                                  .causal = a->causal, .layout = a->layout, .chunk = a->chunk },
                        .layer = &a->layer };
    const ra_head_kind *kind = ra_head_kind_of(a->layer.head_id);
    ra_head *head = NULL;
    float *buf = NULL;
    int32_t *pos = NULL;
    double *times = NULL, *s = NULL;
    ra_status st = kind->create(&head, &ho, c->comm);
    const int64_t Lr = ra_layout_count(a->layout, L, c->size, c->rank);
    const size_t nq = (size_t)a->B * a->H * Lr * a->D, nk = (size_t)a->B * a->Hkv * Lr * a->D;
    const size_t nrow = (size_t)a->B * a->H * Lr;
    const int bwd = !a->fwd_only;
    if (st == RA_OK)
        st = ra_alloc(&buf, sizeof(float) * (nq * (bwd ? 4 : 2) + nk * (bwd ? 4 : 2) + nrow),
                      "benchmark tensors");
    if (st == RA_OK) st = ra_alloc(&pos, sizeof(int32_t) * (Lr + 1), "positions");
    if (st == RA_OK) st = ra_alloc(&times, sizeof(double) * 5 * a->sw.iters, "timings");
    st = ra_agree(c->comm, st);
    if (st != RA_OK) goto out;

    float *q = buf, *k = q + nq, *v = k + nk, *o = v + nk, *lse = o + nq;
    float *dout = lse + nrow, *dq = dout + nq, *dk = dq + nq, *dv = dk + nk;
    ra_layout_positions(a->layout, L, c->size, c->rank, pos);
    fill(q, S_Q, (int64_t)a->B * a->H, L, pos, Lr, a->D);
    fill(k, S_K, (int64_t)a->B * a->Hkv, L, pos, Lr, a->D);
    fill(v, S_V, (int64_t)a->B * a->Hkv, L, pos, Lr, a->D);
    if (bwd) fill(dout, S_DO, (int64_t)a->B * a->H, L, pos, Lr, a->D);

    double *tf = times, *wf = times + a->sw.iters, *tb = wf + a->sw.iters, *wb = tb + a->sw.iters;
    double *sent = wb + a->sw.iters, sg[2 * REF_CALLS] = { 0 };
    for (int i = 0; ref && i < REF_CALLS; i++) sg[i] = ra_sgemm_ref_call(ref); /* the others wait at the barrier */
    for (int it = -a->sw.warmup; it < a->sw.iters && st == RA_OK; it++) {
        char at[64]; /* a stop signal, read between calls (with --trace) */
        snprintf(at, sizeof at, "at L = %lld", (long long)L);
        if ((st = ra_cli_stopped(c, at)) != RA_OK) break;
        st = ra_barrier(c->comm, "the start of a timed forward");
        if (st != RA_OK) break;
        double t0 = ra_now();
        const int64_t tfw = RA_TRACE_T0();
        st = kind->forward(head, q, k, v, NULL, o, lse);
        RA_TRACE_END2("bench", "bench forward", tfw, "iter", it, "L", L);
        double t1 = ra_now(), w1 = kind->wait_seconds(head), b1 = kind->bytes_sent(head), t2 = t1, w2 = 0, b2 = 0;
        if (st == RA_OK && bwd) {
            st = ra_barrier(c->comm, "the start of a timed backward");
            if (st != RA_OK) break;
            t1 = ra_now();
            const int64_t tb = RA_TRACE_T0();
            st = kind->backward(head, q, k, v, NULL, o, lse, dout, dq, dk, dv);
            RA_TRACE_END2("bench", "bench backward", tb, "iter", it, "L", L);
            t2 = ra_now(), w2 = kind->wait_seconds(head), b2 = kind->bytes_sent(head);
        }
        if (it >= 0) {
            tf[it] = (bwd ? t1 : t2) - t0, wf[it] = w1;
            tb[it] = bwd ? t2 - t1 : 0, wb[it] = w2;
            sent[it] = b1 + b2;
        }
    }
    for (int i = REF_CALLS; ref && st == RA_OK && i < 2 * REF_CALLS; i++) sg[i] = ra_sgemm_ref_call(ref);
    st = ra_agree(c->comm, st);
    if (st != RA_OK) goto out;
    ra_stat3 f3, b3, x3;
    if (st == RA_OK) st = ra_bench_across(c, ra_median(tf, a->sw.iters), &f3);
    if (st == RA_OK) st = ra_bench_across(c, ra_median(tb, a->sw.iters), &b3);
    if (st != RA_OK) goto out;
    memcpy(res->fwd, &f3, sizeof f3);
    memcpy(res->bwd, &b3, sizeof b3);
    if ((st = ra_bench_across(c, ra_median(wf, a->sw.iters), &x3)) != RA_OK) goto out;
    res->fwd_wait = x3.max;
    if ((st = ra_bench_across(c, ra_median(wb, a->sw.iters), &x3)) != RA_OK) goto out;
    res->bwd_wait = x3.max;
    /* the attention's peak: rank 0 holds the sgemm reference's matrices too */
    if ((st = ra_bench_across(c, ra_peak_rss_bytes() - (ref ? ra_sgemm_ref_bytes() : 0), &x3)) != RA_OK)
        goto out;
    res->peak = x3.max;
    if ((st = ra_bench_across(c, ra_median(sent, a->sw.iters), &x3)) != RA_OK) goto out;
    res->mib_sent = x3.max / (1024.0 * 1024.0);
    if ((st = ra_bench_across(c, ra_median(sg, 2 * REF_CALLS), &x3)) != RA_OK) goto out;
    res->sgemm = x3.max;

    res->ok = 1;
    res->err_o = res->err_dq = res->err_lse = NAN;
    if (a->sw.check && a->layer.head_id == RA_HEAD_FULL) {
        st = ra_agree(c->comm, ra_alloc(&s, sizeof(double) * L, "reference logits"));
        if (st != RA_OK) goto out;
        check_acc acc = { 0 };
        const int samples = 4; /* query rows per rank, spread over heads and tokens */
        const float scale = 1.0f / sqrtf((float)a->D);
        for (int t = 0; t < samples && Lr > 0; t++) { /* a rank may own no token */
            int64_t bh = (int64_t)(ra_rand_u64(7, (uint64_t)(c->rank * samples + t)) % (a->B * a->H));
            int64_t i = t == 0 ? 0 : t == 1 ? Lr - 1 : (int64_t)(ra_rand_u64(8, c->rank * samples + t) % Lr);
            int b = (int)(bh / a->H), h = (int)(bh % a->H);
            size_t at = ((size_t)bh * Lr + i) * a->D;
            check_row(a, L, scale, b, h, pos[i], o + at, lse[bh * Lr + i], bwd ? dq + at : NULL, s, &acc);
        }
        double e[4] = { acc.o_err, acc.o_ref, acc.dq_err, acc.dq_ref }, g[4];
        st = ra_allreduce_named(e, g, 4, MPI_DOUBLE, MPI_MAX, c->comm, "the check's errors");
        if (st == RA_OK)
            st = ra_allreduce_named(&acc.lse_err, &res->err_lse, 1, MPI_DOUBLE, MPI_MAX, c->comm, "the check's lse error");
        if (st != RA_OK) goto out;
        res->err_o = g[0] / fmax(g[1], 1e-30);
        /* dQ is 0 where a row sees one key (L = 1): below 1e-2 the error is absolute */
        res->err_dq = bwd ? g[2] / fmax(g[3], 1e-2) : 0;
        res->ok = res->err_o <= 1e-5 && res->err_lse <= 1e-4 && res->err_dq <= 1e-4;
    }
out:
    free(s);
    free(times);
    free(pos);
    free(buf);
    if (head) kind->destroy(head);
    return st;
}

static ra_status run(ra_cli *c, const bench_args *ap);
static ra_status run_rows(ra_cli *c, const bench_args *ap, double sg, const int *cores,
                          ra_sgemm_ref *ref);

ra_status ra_bench_attn(ra_cli *c, int argc, char **argv)
{
    bench_args a;
    int want_help = 0;
    RA_TRY(ra_agree(c->comm, ra_arg_cmd("bench attn", parse(argc, argv, &a, &want_help))));
    ra_ring_set_loopback(a.no_comm);
    if (want_help) {
        ra_say(c, "%s\n%s", help, ra_bench_sweep_help);
        return RA_OK;
    }
    if (a.check_note && c->rank == 0)
        fprintf(stderr, "ringattn: note: bench attn: -c 1 checks nothing here: %s (the check column shows -)\n",
                a.check_note);
    const ra_cli_file out[] = { { "--trace", a.trace } };
    RA_TRY(ra_agree(c->comm, ra_check_files("bench attn", NULL, 0, out, 1, c->rank == 0)));
    RA_TRY(ra_cli_trace_begin(c, a.trace, "bench attn", argc, argv));
    ra_cli_trace_catch_stops(); /* with a trace: a stop signal ends at the next call, the trace written */
    return ra_cli_trace_end(c, run(c, &a));
}

/* The bytes of the tensors run_size allocates for L on this rank (the
 * head's ring buffers come on top: a lower bound of what L needs). */
static double tensor_bytes(const ra_cli *c, const bench_args *a, int64_t L)
{
    const double Lr = (double)ra_layout_count(a->layout, L, c->size, c->rank);
    const double nq = (double)a->B * a->H * Lr * a->D, nk = (double)a->B * a->Hkv * Lr * a->D;
    const int k = a->fwd_only ? 2 : 4;
    return sizeof(float) * (nq * k + nk * k + (double)a->B * a->H * Lr);
}

static ra_status run(ra_cli *c, const bench_args *ap)
{
    bench_args a = *ap;
    int64_t last = a.sw.begin; /* the sweep's largest L, as run_rows steps */
    while (last <= a.sw.end / a.sw.factor && last * a.sw.factor <= a.sw.end) last *= a.sw.factor;
    char what[96];
    snprintf(what, sizeof what, "bench attn: L = %lld", (long long)last);
    RA_TRY(ra_bench_fits_node(c, tensor_bytes(c, &a, last), what));
    ra_bench_threads(c, &a.sw);
    double sg;
    int cores[RA_BENCH_MAX_THREADS];
    RA_TRY(ra_bench_sgemm_gflops(c, &sg));
    for (int i = 0; i < a.sw.nthreads; i++) RA_TRY(ra_bench_cores_used(c, a.sw.thread_list[i], &cores[i]));
    ra_sgemm_ref ref = { 0 };
    RA_TRY(ra_agree(c->comm, c->rank == 0 ? ra_sgemm_ref_open(&ref) : RA_OK));
    ra_status st = run_rows(c, &a, sg, cores, c->rank == 0 ? &ref : NULL);
    ra_sgemm_ref_close(&ref);
    return st;
}

static ra_status run_rows(ra_cli *c, const bench_args *ap, double sg, const int *cores,
                          ra_sgemm_ref *ref)
{
    const bench_args a = *ap;
    char thr[RA_BENCH_MAX_THREADS * 6];
    char chunk[24] = "auto";
    if (a.chunk) snprintf(chunk, sizeof chunk, "%d", a.chunk);
    ra_say(c, "# ringattn bench attn: head=%s P=%d B=%d H=%d Hkv=%d D=%d %s layout=%s chunk=%s threads/rank=%s (%s) OpenBLAS=%s kernels=%s\n",
           ra_head_words[a.layer.head_id], c->size, a.B, a.H, a.Hkv, a.D, a.causal ? "causal" : "bidirectional",
           ra_layout_name(a.layout), chunk, ra_bench_threads_text(&a.sw, thr, sizeof thr),
           ra_threads_origin(),
           ra_blas_desc(), ra_kernel_isa());
    ra_say(c, "# sgemm 1024^3 single thread: %.1f GFLOP/s at the start; %%sgemm = GFLOP/s / (sgemm x cores in use), "
              "sgemm: the median of 3 such calls before the row's warm-up and 3 after its timed iterations (its '# sgemm' line); "
              "thr: threads per rank; speedup: fwd+bwd time at the first thr of -t / at thr, same run\n", sg);
    ra_say(c, "#%9s %9s %9s %9s %8s %6s %8s  %9s %9s %9s %8s %6s %8s %9s %9s %9s %9s %4s %7s %6s\n", "L",
           "fwd_ms", "min", "max", "GFLOP/s", "%sgemm", "wait_ms", "bwd_ms", "min", "max", "GFLOP/s",
           "%sgemm", "wait_ms", "MiB_sent", "peak_MiB", "err_O", "err_dQ", "thr", "speedup", "check");
    int failures = 0;
    double base = 0; /* fwd+bwd seconds at the first thread count of this size */
    for (int64_t L = a.sw.begin; L <= a.sw.end; L *= a.sw.factor) {
        for (int ti = 0; ti < a.sw.nthreads; ti++) {
            ra_threads_set(a.sw.thread_list[ti]);
            RA_TRY(ra_agree(c->comm, ra_arg_cmd("bench attn", ra_blas_claim()))); /* threads.h */
            row_result r;
            RA_TRY(run_size(c, &a, ref, L, &r)); /* L < P too: ranks without tokens relay */
            const double sgr = r.sgemm;
            const double both = r.fwd[2] + (a.fwd_only ? 0 : r.bwd[2]);
            if (ti == 0) base = both;
            const int ncores = cores[ti];
            double ff = ra_attn_flops_fwd(a.B, a.H, (double)L, a.D, a.causal) / r.fwd[2] * 1e-9;
            double fb = a.fwd_only ? 0 : ra_attn_flops_bwd(a.B, a.H, (double)L, a.D, a.causal) / r.bwd[2] * 1e-9;
            char eo[16] = "-", ed[16] = "-";
            int checked = a.sw.check && a.layer.head_id == RA_HEAD_FULL;
            if (checked) {
                snprintf(eo, sizeof eo, "%.2e", r.err_o);
                if (!a.fwd_only) snprintf(ed, sizeof ed, "%.2e", r.err_dq); /* no dQ computed */
            }
            ra_say(c, " %9lld %9.3f %9.3f %9.3f %8.2f %6.1f %8.3f  %9.3f %9.3f %9.3f %8.2f %6.1f %8.3f %9.2f %9.1f %9s %9s %4d %7.2f %6s\n",
                   (long long)L, r.fwd[1] * 1e3, r.fwd[0] * 1e3, r.fwd[2] * 1e3, ff, 100 * ff / (sgr * ncores),
                   r.fwd_wait * 1e3, r.bwd[1] * 1e3, r.bwd[0] * 1e3, r.bwd[2] * 1e3, fb,
                   100 * fb / (sgr * ncores), r.bwd_wait * 1e3, r.mib_sent, r.peak / (1024.0 * 1024.0), eo, ed,
                   a.sw.thread_list[ti], base / both, checked ? (r.ok ? "OK" : "FAIL") : "-");
            ra_say(c, "# sgemm during L=%lld thr=%d: %.1f GFLOP/s\n", (long long)L, a.sw.thread_list[ti], sgr);
            failures += !r.ok;
        }
        if (L > INT64_MAX / a.sw.factor) break;
    }
    if (failures)
        return ra_agree(c->comm, RA_FAIL(RA_ERR_INTERNAL, "bench attn: %d size(s) failed the check", failures));
    return RA_OK;
}
