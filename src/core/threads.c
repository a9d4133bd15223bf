/* threads.c - the rank's thread count for OpenMP regions and OpenBLAS. */
#include "ringattn/threads.h"

#include <cblas.h>
#include <omp.h>
#include <stdlib.h>

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
