/* threads.c - the rank's thread count for OpenMP regions and OpenBLAS. */
#include "ringattn/threads.h"

#include <cblas.h>
#include <omp.h>

static int nthreads = 1;
static int serial_depth; /* ra_blas_serial_begin nesting, main thread only */

void ra_threads_set(int n)
{
    nthreads = n > 0 ? n : 1;
    omp_set_num_threads(nthreads);
    if (serial_depth == 0) openblas_set_num_threads(nthreads);
}

int ra_threads(void) { return nthreads; }

void ra_blas_serial_begin(void)
{
    if (serial_depth++ == 0 && nthreads > 1) openblas_set_num_threads(1);
}

void ra_blas_serial_end(void)
{
    if (--serial_depth == 0 && nthreads > 1) openblas_set_num_threads(nthreads);
}
