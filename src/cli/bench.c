/* bench.c - shared benchmark harness and the `ringattn bench` dispatcher. */
#include "bench.h"

#include <cblas.h>
#include <stdlib.h>
#include <string.h>

#include "ringattn/dist.h"
#include "ringattn/mem.h"
#include "ringattn/threads.h"

const char *ra_bench_sweep_help =
    "sweep (uniform across benchmarks):\n"
    "  -b N   first size (K, M, G suffixes: x1024)      -e N   last size\n"
    "  -f F   multiply the size by F each step (>= 2)   -n N   timed iterations\n"
    "  -w N   warm-up iterations                        -c 0|1 check results\n"
    "  -t N[,N...]  threads per rank; a list is a sweep, each size timed at each count\n"
    "         with the speed-up over the first (default: the rank's count, as train)\n";

/* "-t 1,2,4": ascending or not, each 1..4096, at most RA_BENCH_MAX_THREADS. */
static ra_status thread_list(ra_bench_sweep *s, const char *val)
{
    char buf[256];
    if (strlen(val) >= sizeof buf) return RA_FAIL(RA_ERR_ARG, "-t: list too long: '%.40s...'", val);
    strcpy(buf, val);
    const size_t n0 = strlen(val);
    if (n0 == 0 || val[0] == ',' || val[n0 - 1] == ',' || strstr(val, ",,")) /* strtok would skip the gap */
        return RA_FAIL(RA_ERR_ARG, "-t: '%.40s' has an empty item; give counts separated by single commas, "
                       "such as 1,2", val);
    s->nthreads = 0, s->threads = 0;
    for (char *save = NULL, *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        if (s->nthreads == RA_BENCH_MAX_THREADS)
            return RA_FAIL(RA_ERR_ARG, "-t: at most %d thread counts", RA_BENCH_MAX_THREADS);
        int n;
        RA_TRY(ra_arg_int("-t", tok, 1, 4096, &n));
        s->thread_list[s->nthreads++] = n;
        if (n > s->threads) s->threads = n;
    }
    if (s->nthreads == 0) return RA_FAIL(RA_ERR_ARG, "-t: give one thread count or a list such as 1,2");
    return RA_OK;
}

void ra_bench_threads(const ra_cli *c, ra_bench_sweep *s)
{
    int n = ra_set_threads(c, s->threads, "-t");
    if (s->nthreads == 0) s->thread_list[s->nthreads++] = s->threads = n;
}

const char *ra_bench_threads_text(const ra_bench_sweep *s, char *buf, size_t cap)
{
    size_t at = 0;
    buf[0] = '\0';
    for (int i = 0; i < s->nthreads && at < cap; i++)
        at += (size_t)snprintf(buf + at, cap - at, i ? ",%d" : "%d", s->thread_list[i]);
    return buf;
}

static ra_status sweep_value(ra_bench_sweep *s, int opt, const char *val)
{
    switch (opt) {
    case 'b': return ra_arg_size("-b", val, 1, &s->begin);
    case 'e': return ra_arg_size("-e", val, 1, &s->end);
    case 'f': return ra_arg_int("-f", val, 2, 1024, &s->factor);
    case 'n': return ra_arg_int("-n", val, 1, 1000000, &s->iters);
    case 'w': return ra_arg_int("-w", val, 0, 1000000, &s->warmup);
    case 'c': s->check_given = 1; return ra_arg_int("-c", val, 0, 1, &s->check);
    default: return thread_list(s, val); /* 't' */
    }
}

int ra_bench_sweep_opt(const char *cmd, ra_bench_sweep *s, int opt, const char *val, ra_status *st)
{
    if (opt <= 0 || opt >= 128 || !strchr("befnwct", opt)) return 0; /* long options' codes are >= 256 */
    *st = sweep_value(s, opt, val);
    if (*st != RA_OK) { /* the message names the flag; say whose */
        char why[512];
        snprintf(why, sizeof why, "%s", ra_last_error());
        *st = RA_FAIL(*st, "%s: %s", cmd, why);
    }
    return 1;
}

ra_status ra_bench_sweep_check(const char *cmd, const ra_bench_sweep *s)
{
    if (s->end < s->begin)
        return RA_FAIL(RA_ERR_ARG, "%s: -e %lld is smaller than -b %lld", cmd, (long long)s->end,
                       (long long)s->begin);
    return RA_OK;
}

double ra_median(double *x, int n)
{
    for (int i = 1; i < n; i++) /* insertion sort: n is small */
        for (int j = i; j > 0 && x[j] < x[j - 1]; j--) {
            double t = x[j];
            x[j] = x[j - 1];
            x[j - 1] = t;
        }
    return n % 2 ? x[n / 2] : 0.5 * (x[n / 2 - 1] + x[n / 2]);
}

ra_status ra_sgemm_ref_open(ra_sgemm_ref *r)
{
    const size_t n = RA_SGEMM_REF_N;
    *r = (ra_sgemm_ref){ 0 };
    ra_status st = ra_alloc(&r->a, sizeof(float) * n * n, "sgemm reference A");
    if (st == RA_OK) st = ra_alloc(&r->b, sizeof(float) * n * n, "sgemm reference B");
    if (st == RA_OK) st = ra_alloc(&r->c, sizeof(float) * n * n, "sgemm reference C");
    if (st != RA_OK) {
        ra_sgemm_ref_close(r);
        return st;
    }
    for (size_t i = 0; i < n * n; i++) r->a[i] = r->b[i] = (float)(i % 17) * 0.01f;
    return RA_OK;
}

double ra_sgemm_ref_call(ra_sgemm_ref *r)
{
    const int n = RA_SGEMM_REF_N;
    ra_blas_serial_begin(); /* the single-thread sgemm rate */
    double t0 = ra_now();
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1, r->a, n, r->b, n, 0, r->c, n);
    double t = ra_now() - t0;
    ra_blas_serial_end();
    return 2.0 * n * n * n / t * 1e-9;
}

void ra_sgemm_ref_close(ra_sgemm_ref *r)
{
    free(r->a);
    free(r->b);
    free(r->c);
    *r = (ra_sgemm_ref){ 0 };
}

ra_status ra_bench_sgemm_gflops(const ra_cli *c, double *gflops)
{
    double rate = 0;
    RA_TRY(ra_barrier(c->comm, "the start of the sgemm reference"));
    ra_sgemm_ref r;
    if (c->rank == 0 && ra_sgemm_ref_open(&r) == RA_OK) {
        double g[5];
        ra_sgemm_ref_call(&r); /* warm-up */
        for (int i = 0; i < 5; i++) g[i] = ra_sgemm_ref_call(&r);
        rate = ra_median(g, 5);
        ra_sgemm_ref_close(&r);
    }
    *gflops = rate;
    return ra_bcast(gflops, 1, MPI_DOUBLE, 0, c->comm, "the sgemm reference rate");
}

ra_status ra_bench_cores_used(const ra_cli *c, int threads, int *cores)
{
    MPI_Comm node;
    RA_MPI_TRY(MPI_Comm_split_type(c->comm, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &node),
               "MPI_Comm_split_type (the ranks of this node)");
    int nrank, sum = 0, mine = 0;
    MPI_Comm_rank(node, &nrank);
    ra_status st = ra_allreduce_named(&threads, &sum, 1, MPI_INT, MPI_SUM, node, "the threads of this node");
    if (nrank == 0) {
        int have = ra_node_cores();
        mine = sum < have ? sum : have;
    }
    MPI_Comm_free(&node);
    RA_TRY(st);
    return ra_allreduce_named(&mine, cores, 1, MPI_INT, MPI_SUM, c->comm, "the cores in use");
}

/* MemAvailable of this machine in bytes, or -1. */
static double mem_available(void)
{
    FILE *f = fopen("/proc/meminfo", "r");
    if (!f) return -1;
    char line[256];
    double kb = -1;
    while (kb < 0 && fgets(line, sizeof line, f))
        if (sscanf(line, "MemAvailable: %lf kB", &kb) != 1) kb = -1;
    fclose(f);
    return kb < 0 ? -1 : kb * 1024;
}

ra_status ra_bench_fits_node(const ra_cli *c, double bytes, const char *what)
{
    MPI_Comm node;
    RA_MPI_TRY(MPI_Comm_split_type(c->comm, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &node),
               "MPI_Comm_split_type (the ranks of this node)");
    int nrank, nsize;
    MPI_Comm_rank(node, &nrank);
    MPI_Comm_size(node, &nsize);
    double sum = 0;
    ra_status st = ra_allreduce_named(&bytes, &sum, 1, MPI_DOUBLE, MPI_SUM, node, "the memory this node needs");
    MPI_Comm_free(&node);
    RA_TRY(st);
    const double have = mem_available();
    if (nrank == 0 && have > 0 && sum > have)
        st = RA_FAIL(RA_ERR_NOMEM, "%s needs at least %.1f GiB per rank, %.1f GiB for the %d rank(s) on this node, "
                                   "which has %.1f GiB available: choose a smaller size or more nodes",
                     what, bytes / 1073741824.0, sum / 1073741824.0, nsize, have / 1073741824.0);
    return ra_agree(c->comm, st);
}

ra_status ra_bench_across(const ra_cli *c, double x, ra_stat3 *out)
{
    RA_TRY(ra_allreduce_named(&x, &out->min, 1, MPI_DOUBLE, MPI_MIN, c->comm, "a benchmark figure's minimum"));
    RA_TRY(ra_allreduce_named(&x, &out->max, 1, MPI_DOUBLE, MPI_MAX, c->comm, "a benchmark figure's maximum"));
    RA_TRY(ra_allreduce_named(&x, &out->avg, 1, MPI_DOUBLE, MPI_SUM, c->comm, "a benchmark figure's average"));
    out->avg /= c->size;
    return RA_OK;
}

ra_status ra_cmd_bench(ra_cli *c, int argc, char **argv)
{
    if (argc >= 2 && !strcmp(argv[1], "attn")) return ra_bench_attn(c, argc - 1, argv + 1);
    if (argc >= 2 && !strcmp(argv[1], "train")) return ra_bench_train(c, argc - 1, argv + 1);
    if (argc >= 2 && !strcmp(argv[1], "reduce")) return ra_bench_reduce(c, argc - 1, argv + 1);
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        ra_say(c, "usage: [mpirun -n P] ringattn bench attn|train|reduce [options]   (see --help of each)\n");
        return ra_agree(c->comm,
                        argc < 2 ? RA_FAIL(RA_ERR_ARG, "bench: which benchmark? (attn, train or reduce)") : RA_OK);
    }
    return ra_agree(c->comm,
                    RA_FAIL(RA_ERR_ARG, "bench: unknown benchmark '%s' (expected attn, train or reduce)", argv[1]));
}
