/* bench.h - the harness shared by `ringattn bench ...` (nccl-tests style):
 * uniform sweep flags, a reference sgemm rate measured in the same run,
 * timings combined across ranks, and a fixed-width table. */
#ifndef RINGATTN_BENCH_H
#define RINGATTN_BENCH_H

#include <stdint.h>

#include "cli.h"

#define RA_BENCH_MAX_THREADS 16

typedef struct {
    int64_t begin, end;  /* -b, -e: sweep of the size (K/M/G suffixes) */
    int factor;          /* -f: multiply the size by this each step */
    int iters, warmup;   /* -n, -w */
    int check;           /* -c: compare against a float64 reference */
    int check_given;     /* -c was on the line (not the default) */
    int threads;         /* -t: the largest of the list (0: the rank's default) */
    int nthreads;        /* -t 1,2,4: a sweep of thread counts, each row timed in the same run */
    int thread_list[RA_BENCH_MAX_THREADS];
} ra_bench_sweep;

typedef struct {
    double min, avg, max;
} ra_stat3;

/* Handle one of the uniform flags -b -e -f -n -w -c -t (returns 1 when opt
 * was one of them, 0 otherwise; errors in *st). */
int ra_bench_sweep_opt(const char *cmd, ra_bench_sweep *s, int opt, const char *val, ra_status *st);
ra_status ra_bench_sweep_check(const char *cmd, const ra_bench_sweep *s);
/* Place the rank with the largest thread count of the sweep (or its default
 * when -t was not given, which then becomes the one-entry list). */
void ra_bench_threads(const ra_cli *c, ra_bench_sweep *s);
/* The thread counts of the sweep, "1,2" (a header names every row's, not
 * only the largest), into buf; returns buf. */
const char *ra_bench_threads_text(const ra_bench_sweep *s, char *buf, size_t cap);
extern const char *ra_bench_sweep_help;

/* The sgemm reference: one single-thread sgemm at M = N = K = 1024 on
 * buffers kept for the run, timed call by call. This machine's rate moves
 * by up to 1.6x within a second, so a benchmark that wants a ratio times
 * calls just before and after its own timed iterations. */
enum { RA_SGEMM_REF_N = 1024 };
typedef struct {
    float *a, *b, *c;
} ra_sgemm_ref;
ra_status ra_sgemm_ref_open(ra_sgemm_ref *r);
double ra_sgemm_ref_call(ra_sgemm_ref *r); /* GFLOP/s of one call */
void ra_sgemm_ref_close(ra_sgemm_ref *r);  /* also after a failed open */
/* what an open reference holds resident (three n x n matrices) */
static inline double ra_sgemm_ref_bytes(void) { return 3.0 * sizeof(float) * RA_SGEMM_REF_N * RA_SGEMM_REF_N; }

/* Collective, like the two below. Single-thread sgemm GFLOP/s, median of 5
 * calls after one, measured on rank 0 while the others wait; broadcast. */
ra_status ra_bench_sgemm_gflops(const ra_cli *c, double *gflops);
/* Cores the run really has: per node min(sum of threads, hwloc cores). */
ra_status ra_bench_cores_used(const ra_cli *c, int threads, int *cores);
/* Minimum, average and maximum of x over the ranks. */
ra_status ra_bench_across(const ra_cli *c, double x, ra_stat3 *out);
/* Collective: refuses (naming what) when the bytes each rank needs, summed
 * over the ranks of a node, exceed that node's MemAvailable (/proc/meminfo;
 * no check where it cannot be read): one rank's allocation fits, so
 * nothing fails until the node's ranks together fill it and the OOM killer
 * ends the job minutes later. */
ra_status ra_bench_fits_node(const ra_cli *c, double bytes, const char *what);
double ra_median(double *x, int n);

ra_status ra_bench_attn(ra_cli *c, int argc, char **argv);
ra_status ra_bench_train(ra_cli *c, int argc, char **argv);
ra_status ra_bench_reduce(ra_cli *c, int argc, char **argv);

#endif
