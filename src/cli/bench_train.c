/* bench_train.c - `ringattn bench train`: training throughput of a config
 * (forward, backward, gradient reduction and AdamW on random bytes), as
 * tokens/s and model FLOP utilisation against this machine's sgemm rate. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>

#include "bench.h"
#include "ringattn/dist.h"
#include "ringattn/isa.h"
#include "ringattn/mem.h"
#include "ringattn/rng.h"
#include "ringattn/threads.h"
#include "ringattn/trace.h"
#include "session.h"

static const char *help =
    "usage: [mpirun -n P] ringattn bench train [--config FILE] [--set SEC.KEY=VAL]...\n"
    "                                         [-n 5] [-w 1] [-t N[,N...]] [--trace FILE]\n"
    "\n"
    "Times -n training steps after -w warm-up steps of the config's model on\n"
    "random bytes (train.batch sequences of data.seq_len per step, all ranks).\n"
    "Columns: step_ms (median over steps, slowest rank), tokens/s, GFLOP/s of\n"
    "model FLOPs (6 per parameter and token for the matmuls plus 3x the causal\n"
    "attention forward), MFU = that over the single-thread sgemm rate (measured\n"
    "before and after the row's steps: its '# sgemm' line) times the cores in\n"
    "use, comm share, peak MiB per rank; with -t 1,2 one row per thread\n"
    "count and its speed-up over the first, timed in the same run. The last line\n"
    "is machine readable (the last row): ringattn: tokens_per_s=X mfu=Y\n"
    "--trace FILE records every step, warm-up included (docs/trace.md).\n"
    "--set run.dp=N times N data-parallel rings of P/N ranks (train.batch split\n"
    "over them); --set train.shard_optimizer=false the replicated AdamW moments.\n";

/* Time sw->iters training steps after sw->warmup ones: seconds and
 * seconds blocked on communication per step. Collective. */
static ra_status time_steps(const ra_cli *c, ra_session *s, const ra_config *cfg, const ra_bench_sweep *sw,
                            double *times, double *waits)
{
    const double scale = 1.0 / ((double)cfg->batch * cfg->seq_len);
    ra_status st = RA_OK;
    for (int it = -sw->warmup; it < sw->iters && st == RA_OK; it++) {
        /* a stop signal, read between steps (ra_cli_trace_catch_stops: only with --trace) */
        if ((st = ra_cli_stopped(c, "between steps")) != RA_OK) break;
        st = ra_barrier(c->comm, "the start of a timed step");
        if (st != RA_OK) break;
        double t0 = ra_now(), wait = 0;
        const int64_t ts = RA_TRACE_T0();
        ra_model_zero_grads(s->model);
        for (int a = 0; a < cfg->accum && st == RA_OK; a++) {
            ra_batch_stats bs;
            st = ra_model_step(s->model, s->tok, s->tgt, 1, (float)scale, a == cfg->accum - 1, &bs);
            if (st == RA_OK && a == cfg->accum - 1) st = ra_model_wait_grads(s->model);
            wait += bs.wait_seconds;
        }
        /* the shard's update and, sharded, the all-gather of the parameters */
        if (st == RA_OK) st = ra_session_adamw(c, s, 1.0f, cfg->lr, it + sw->warmup + 1);
        RA_TRACE_END1("train", "train step", ts, "iter", it);
        if (it >= 0) times[it] = ra_now() - t0, waits[it] = wait;
    }
    return ra_agree(c->comm, st);
}

static ra_status run(ra_cli *c, ra_bench_sweep *swp, ra_config *cfgp);

ra_status ra_bench_train(ra_cli *c, int argc, char **argv)
{
    static const struct option opts[] = {
        { "config", required_argument, 0, 'C' }, { "set", required_argument, 0, 'S' },
        { "help", no_argument, 0, 'h' },         { "trace", required_argument, 0, 'X' },
        { 0, 0, 0, 0 },
    };
    ra_session_args sa = { 0 };
    const char *trace = NULL;
    ra_bench_sweep sw = { .factor = 2, .iters = 5, .warmup = 1 };
    ra_status st = RA_OK;
    int o;
    opterr = 0;
    optind = 1;
    while (st == RA_OK && (o = ra_getopt(argc, argv, ":n:w:t:h", opts)) != -1) {
        if (ra_session_opt(&sa, o, optarg, &st) || ra_bench_sweep_opt("bench train", &sw, o, optarg, &st))
            continue;
        if (o == 'X') {
            trace = optarg;
            if (!optarg[0]) st = RA_FAIL(RA_ERR_ARG, "bench train: --trace: empty file name");
            continue;
        }
        if (o == 'h') {
            ra_say(c, "%s", help);
            return RA_OK;
        }
        st = ra_arg_unknown("bench train", o, argv[optind - 1]);
    }
    if (st == RA_OK) st = ra_arg_rest("bench train", argc, argv);
    RA_TRY(ra_agree(c->comm, ra_arg_cmd("bench train", st)));
    const ra_cli_file ins[] = { { "--config", sa.config } }, out[] = { { "--trace", trace } };
    RA_TRY(ra_agree(c->comm, trace ? ra_check_files("bench train", ins, 1, out, 1, c->rank == 0) : RA_OK));
    ra_config cfg;
    sa.grid_ranks = c->size;
    RA_TRY(ra_arg_cmd("bench train", ra_session_config(c, &sa, NULL, &cfg))); /* --config's, --set's errors */
    RA_TRY(ra_cli_trace_begin(c, trace, "bench train", argc, argv));
    ra_cli_trace_catch_stops(); /* with a trace: a stop signal ends at the next step, the trace written */
    return ra_cli_trace_end(c, run(c, &sw, &cfg));
}

static ra_status run(ra_cli *c, ra_bench_sweep *swp, ra_config *cfgp)
{
    ra_bench_sweep sw = *swp;
    ra_config cfg = *cfgp;
    ra_status st = RA_OK;
    snprintf(cfg.source, sizeof cfg.source, "recall"); /* no file: random bytes below */
    cfg.source_id = RA_SOURCE_RECALL; /* data.c reads the enum */
    ra_bench_threads(c, &sw);
    double sg;
    RA_TRY(ra_bench_sgemm_gflops(c, &sg));
    int cores[RA_BENCH_MAX_THREADS];
    for (int i = 0; i < sw.nthreads; i++) RA_TRY(ra_bench_cores_used(c, sw.thread_list[i], &cores[i]));

    ra_session s;
    const int micro = cfg.batch / cfg.dp / cfg.accum; /* each data-parallel group takes batch / dp */
    st = ra_arg_cmd("bench train", ra_session_open(c, &s, &cfg, micro, 1, NULL));
    double *times = NULL;
    if (st == RA_OK) st = ra_agree(c->comm, ra_alloc(&times, sizeof(double) * 2 * sw.iters, "timings"));
    if (st == RA_OK) {
        int64_t n = (int64_t)micro * ra_model_local_len(s.model);
        for (int64_t i = 0; i < n; i++) {
            s.tok[i] = (int32_t)(ra_rand_u64(11, (uint64_t)(c->rank * n + i)) % (uint64_t)cfg.vocab);
            s.tgt[i] = (int32_t)(ra_rand_u64(12, (uint64_t)(c->rank * n + i)) % (uint64_t)cfg.vocab);
        }
        char thr[RA_BENCH_MAX_THREADS * 6];
        ra_say(c, "# bench train: %zu parameters, %d layer%s, dim %d, heads %d/%d, ffn %s %d, L=%d, batch %d, P=%d "
                  "(dp %d x cp %d, optimizer %s), threads/rank %s (%s), OpenBLAS %s, kernels %s\n", ra_model_nparams(s.model),
               cfg.layers, cfg.layers == 1 ? "" : "s", cfg.dim, cfg.heads, cfg.kv_heads, cfg.ffn, cfg.ffn_dim, cfg.seq_len, cfg.batch, c->size,
               s.grid.dp, s.grid.cp, s.sharded ? "sharded" : "replicated", ra_bench_threads_text(&sw, thr, sizeof thr),
               ra_threads_origin(),
               ra_blas_desc(), ra_kernel_isa());
        ra_say(c, "# sgemm 1024^3 single thread: %.1f GFLOP/s at the start; MFU against the sgemm measured beside "
                  "each row (its '# sgemm' line) times the cores in use; speedup: step time at the first thr of -t / "
                  "at thr, same run\n", sg);
        ra_say(c, "#%11s %12s %10s %7s %7s %9s %4s %7s\n", "step_ms", "tokens/s", "GFLOP/s", "MFU%", "comm%",
               "peak_MiB", "thr", "speedup");
    }
    double base = 0, tps = 0, mfu = 0;
    for (int ti = 0; st == RA_OK && ti < sw.nthreads; ti++) {
        ra_threads_set(sw.thread_list[ti]);
        ra_stat3 t3, w3, p3;
        /* the machine drifts within minutes: MFU against the sgemm rate
         * around this row (the mean of the medians before and after) */
        double sg_before = 0, sg_after = 0;
        st = ra_agree(c->comm, ra_arg_cmd("bench train", ra_blas_claim())); /* threads.h */
        if (st == RA_OK) st = ra_bench_sgemm_gflops(c, &sg_before);
        if (st == RA_OK) st = time_steps(c, &s, &cfg, &sw, times, times + sw.iters);
        if (st == RA_OK) st = ra_bench_sgemm_gflops(c, &sg_after);
        if (st == RA_OK) st = ra_bench_across(c, ra_median(times, sw.iters), &t3);
        if (st == RA_OK) st = ra_bench_across(c, ra_median(times + sw.iters, sw.iters), &w3);
        if (st == RA_OK) st = ra_bench_across(c, ra_peak_rss_bytes(), &p3);
        if (st != RA_OK) break;
        if (ti == 0) base = t3.max;
        tps = (double)cfg.batch * cfg.seq_len / t3.max;
        const double flops = ra_model_flops(s.model, cfg.batch) / t3.max;
        const double sg_row = sg_before > 0 && sg_after > 0 ? (sg_before + sg_after) / 2 : sg;
        mfu = 100.0 * flops * 1e-9 / (sg_row * cores[ti]);
        ra_say(c, " %11.2f %12.1f %10.2f %7.1f %7.1f %9.1f %4d %7.2f\n", t3.max * 1e3, tps, flops * 1e-9, mfu,
               100 * w3.max / t3.max, p3.max / (1024.0 * 1024.0), sw.thread_list[ti], base / t3.max);
        ra_say(c, "# sgemm during thr=%d: %.1f GFLOP/s (%.1f before the steps, %.1f after)\n", sw.thread_list[ti],
               sg_row, sg_before, sg_after);
    }
    if (st == RA_OK) ra_say(c, "ringattn: tokens_per_s=%.3f mfu=%.2f\n", tps, mfu); /* the last row */
    free(times);
    ra_session_close(&s);
    return st;
}
