/* threads.c - the rank's thread count for OpenMP regions and OpenBLAS. */
#include "ringattn/threads.h"

#include <cblas.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

static int nthreads = 1;
static int blas_threads = 1; /* OpenBLAS outside serial regions */
static int serial_depth;     /* ra_blas_serial_begin nesting, main thread only */

/* OPENBLAS_NUM_THREADS is the user's choice for OpenBLAS: kept, never
 * silently replaced by the rank's count. */
static int blas_from_env(void)
{
    const char *v = getenv("OPENBLAS_NUM_THREADS");
    int n = v ? atoi(v) : 0;
    return n > 0 ? n : 0;
}

void ra_threads_set(int n)
{
    nthreads = n > 0 ? n : 1;
    blas_threads = blas_from_env() ? blas_from_env() : nthreads;
    omp_set_num_threads(nthreads);
    if (serial_depth == 0) openblas_set_num_threads(blas_threads);
}

int ra_threads(void) { return nthreads; }

void ra_blas_serial_begin(void)
{
    if (serial_depth++ == 0 && blas_threads > 1) openblas_set_num_threads(1);
}

void ra_blas_serial_end(void)
{
    if (--serial_depth == 0 && blas_threads > 1) openblas_set_num_threads(blas_threads);
}

const char *ra_blas_threading(void)
{
    switch (openblas_get_parallel()) { /* 0 sequential, 1 pthreads, 2 OpenMP */
    case 1: return "pthreads";
    case 2: return "OpenMP";
    default: return "sequential";
    }
}

const char *ra_blas_kernels(void) { return openblas_get_corename(); }

const char *ra_blas_better_kernels(void)
{
    /* OpenBLAS's kernel sets without AVX2: its fallbacks for unknown CPUs
     * (Prescott for Intel, Barcelona and Opteron for AMD) and older ones */
    static const char *const pre_avx2[] = { "Prescott", "Core2", "Penryn", "Dunnington", "Nehalem", "Atom",
                                            "Sandybridge", "Opteron", "Opteron_SSE3", "Barcelona", "Bobcat",
                                            "Bulldozer", "Piledriver" };
    if (getenv("OPENBLAS_CORETYPE") || !strstr(openblas_get_config(), "DYNAMIC_ARCH")) return NULL;
    const char *now = openblas_get_corename();
    int generic = 0;
    for (size_t i = 0; i < sizeof pre_avx2 / sizeof *pre_avx2; i++)
        if (strcmp(now, pre_avx2[i]) == 0) generic = 1;
    if (!generic) return NULL;
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
    /* these also check that the OS saves the vector state (XCR0) */
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq"))
        return "SkylakeX";
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return "Haswell";
#endif
    return NULL;
}
