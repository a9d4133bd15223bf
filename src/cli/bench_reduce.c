/* bench_reduce.c - `ringattn bench reduce`: the gradient all-reduce of
 * training (ra_allsum, reduce_scatter.h: what the replicated optimizer
 * runs; the sharded one runs its reduce-scatter half)
 * against Open MPI's MPI_Allreduce and MPI_Iallreduce on the same buffer,
 * nccl-tests style: a sweep of sizes, the slowest rank's median time, the
 * bus bandwidth, and a check of every result against a float64 sum. */
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"
#include "ringattn/collective.h"
#include "ringattn/dist.h"
#include "ringattn/mem.h"
#include "ringattn/reduce_scatter.h"

static const char *help =
    "usage: [mpirun -n P] ringattn bench reduce [-b 1M] [-e 16M] [-f 4] [-n 5] [-w 1] [-c 1]\n"
    "\n"
    "Times the sum of a float array over the ranks, in place, every rank\n"
    "getting the whole sum, for each size of the sweep (bytes per rank, K, M, G\n"
    "suffixes), three ways:\n"
    "  ringattn        the gradients' sum in training: the pairwise reduce-scatter\n"
    "                  (src/dist/reduce_scatter.c, one slice) in place, then\n"
    "                  MPI_Allgatherv in place (design.md §16)\n"
    "  MPI_Allreduce   blocking, as Open MPI's coll component chooses (the only\n"
    "                  call here without the peer timeout: a stopped rank hangs it)\n"
    "  MPI_Iallreduce  non-blocking (libnbc in Open MPI 4.1), then a wait\n"
    "Columns per way: ms, the slowest rank's median over -n calls (each after a\n"
    "barrier; the buffer refilled before it), and busbw in GB/s, bytes x\n"
    "2 (P-1)/P / time: what each rank's link carries, comparable across P (the\n"
    "nccl-tests definition). check: OK when every way's result on every rank is\n"
    "within 1e-5 of the largest |sum| of a float64 sum computed here (-c 0: '-').\n"
    "Exit status 1 when a check fails.\n";

/* value i of rank r: small, mixed signs, so float sums round */
static float value(int r, size_t i) { return (float)(((double)((i * 7 + (size_t)r * 13) % 101) - 50.0) * 1e-3 * (r + 1)); }

static void fill(float *x, size_t n, int rank)
{
    for (size_t i = 0; i < n; i++) x[i] = value(rank, i);
}

/* The worst |x - float64 sum| over the ranks, relative to the largest |sum|. */
static ra_status check(const ra_cli *c, const float *x, size_t n, double *err)
{
    double worst = 0, top = 0;
    for (size_t i = 0; i < n; i++) {
        double ref = 0;
        for (int r = 0; r < c->size; r++) ref += value(r, i);
        top = fmax(top, fabs(ref));
        worst = fmax(worst, fabs((double)x[i] - ref));
    }
    double mine = worst / (top > 0 ? top : 1);
    return ra_allreduce_named(&mine, err, 1, MPI_DOUBLE, MPI_MAX, c->comm, "the bench's check");
}

enum { WAY_OWN, WAY_ALLREDUCE, WAY_IALLREDUCE, NWAYS };
static const char *way_name[NWAYS] = { "ringattn", "MPI_Allreduce", "MPI_Iallreduce" };
static const char *way_head[NWAYS] = { "ringattn", "Allreduce", "Iallreduce" }; /* the table's 10 columns */

typedef struct {
    size_t n;
    float *x;
    ra_allsum all; /* training's all-reduce (reduce_scatter.h) */
} reduce_ctx;

static ra_status one_call(const ra_cli *c, reduce_ctx *r, int way)
{
    if (way == WAY_OWN) {
        if (c->size == 1) return RA_OK;
        RA_TRY(ra_allsum_post(&r->all, r->x, 0, r->n));
        return ra_allsum_finish(&r->all, r->x);
    }
    if (way == WAY_ALLREDUCE) {
        RA_MPI_TRY(MPI_Allreduce(MPI_IN_PLACE, r->x, (int)r->n, MPI_FLOAT, MPI_SUM, c->comm),
                   "bench reduce: MPI_Allreduce"); /* the error named, not its number */
        return RA_OK;
    }
    return ra_allreduce_named(MPI_IN_PLACE, r->x, (int)r->n, MPI_FLOAT, MPI_SUM, c->comm, "bench reduce");
}

/* The slowest rank's median seconds of one way, and its check. */
static ra_status time_way(const ra_cli *c, const ra_bench_sweep *sw, reduce_ctx *r, int way, double *t, double *sec,
                          double *err)
{
    for (int it = -sw->warmup; it < sw->iters; it++) {
        fill(r->x, r->n, c->rank);
        RA_TRY(ra_barrier(c->comm, "bench reduce: the start of a call"));
        const double t0 = ra_now();
        RA_TRY(ra_agree(c->comm, one_call(c, r, way)));
        if (it >= 0) t[it] = ra_now() - t0;
    }
    ra_stat3 s;
    RA_TRY(ra_bench_across(c, ra_median(t, sw->iters), &s));
    *sec = s.max;
    *err = -1;
    return sw->check ? check(c, r->x, r->n, err) : RA_OK;
}

static ra_status run_size(const ra_cli *c, const ra_bench_sweep *sw, int64_t bytes, double *t, int *failed)
{
    const int P = c->size;
    reduce_ctx r = { .n = (size_t)bytes / sizeof(float) };
    ra_status st = ra_alloc(&r.x, sizeof(float) * r.n, "bench reduce: the buffer");
    if (st == RA_OK) st = ra_allsum_init(&r.all, c->comm, r.n, 1);
    st = ra_agree(c->comm, st);
    double sec[NWAYS], err[NWAYS];
    for (int w = 0; w < NWAYS && st == RA_OK; w++) st = time_way(c, sw, &r, w, t, &sec[w], &err[w]);
    if (st == RA_OK) {
        const double bus = (double)bytes * 2.0 * (P - 1) / P * 1e-9;
        int ok = 1;
        ra_say(c, " %12lld", (long long)bytes);
        for (int w = 0; w < NWAYS; w++) {
            ra_say(c, " %10.3f %7.2f", sec[w] * 1e3, sec[w] > 0 ? bus / sec[w] : 0.0);
            if (sw->check && !(err[w] <= 1e-5)) ok = 0;
        }
        ra_say(c, " %6s\n", !sw->check ? "-" : ok ? "OK" : "FAIL");
        if (!ok) {
            for (int w = 0; w < NWAYS; w++)
                ra_say(c, "# %s: error %.3e of the largest |sum| (limit 1e-5)\n", way_name[w], err[w]);
            *failed = 1;
        }
    }
    ra_allsum_free(&r.all);
    free(r.x);
    return st;
}

ra_status ra_bench_reduce(ra_cli *c, int argc, char **argv)
{
    static const struct option opts[] = { { "help", no_argument, 0, 'h' }, { 0, 0, 0, 0 } };
    ra_bench_sweep sw = { .begin = 1 << 20, .end = 16 << 20, .factor = 4, .iters = 5, .warmup = 1, .check = 1 };
    ra_status st = RA_OK;
    int o;
    opterr = 0;
    optind = 1;
    while (st == RA_OK && (o = ra_getopt(argc, argv, ":b:e:f:n:w:c:h", opts)) != -1) {
        if (ra_bench_sweep_opt("bench reduce", &sw, o, optarg, &st)) continue;
        if (o == 'h') {
            ra_say(c, "%s", help);
            return RA_OK;
        }
        st = ra_arg_unknown("bench reduce", o, argv[optind - 1]);
    }
    if (st == RA_OK) st = ra_arg_rest("bench reduce", argc, argv);
    if (st == RA_OK) st = ra_bench_sweep_check("bench reduce", &sw);
    /* each size a whole number of floats (-e below 2G: every count one int) */
    if (st == RA_OK && sw.begin % 4)
        st = RA_FAIL(RA_ERR_ARG, "bench reduce: -b %lld: sizes are bytes, a multiple of 4 (whole floats)",
                     (long long)sw.begin);
    RA_TRY(ra_agree(c->comm, st));
    int64_t last = sw.begin; /* the sweep's largest size */
    while (last <= sw.end / sw.factor) last *= sw.factor;
    /* the buffer, the all-reduce's receive buffer (P-1 shards of n/P) and
     * MPI's own temporary (measured: 2.6 GB resident at 1 GiB on 2 ranks):
     * -e 2G on a full node was an OOM kill, not an error */
    char what[96];
    snprintf(what, sizeof what, "bench reduce: -e %lld bytes", (long long)last);
    RA_TRY(ra_bench_fits_node(c, 3.0 * (double)last, what));
    double *t = NULL;
    RA_TRY(ra_agree(c->comm, ra_alloc(&t, sizeof(double) * (size_t)sw.iters, "bench reduce: timings")));
    ra_say(c, "# ringattn bench reduce: P=%d, float32 sum in place, n=%d w=%d, the slowest rank's median\n", c->size,
           sw.iters, sw.warmup);
    ra_say(c, "# %11s", "bytes");
    for (int w = 0; w < NWAYS; w++) ra_say(c, " %10s %7s", way_head[w], "busbw");
    ra_say(c, " %6s\n", "check");
    int failed = 0;
    for (int64_t b = sw.begin; b <= sw.end && st == RA_OK; b *= sw.factor) {
        st = run_size(c, &sw, b, t, &failed); /* a multiple of -b: whole floats */
        if (b > sw.end / sw.factor) break; /* the next size would pass -e (or overflow) */
    }
    free(t);
    if (st == RA_OK && failed) /* every rank knows (the errors are reduced); rank 0 says it */
        st = ra_agree(c->comm, c->rank == 0 ? RA_FAIL(RA_ERR_INTERNAL, "bench reduce: a result differs from the "
                                                                        "float64 sum")
                                            : RA_OK);
    return st;
}
