/* threads.h - the threads a rank computes with (OpenMP) and how OpenBLAS
 * composes with them.
 *
 * Every threaded loop of ringattn is an OpenMP region with ra_threads()
 * threads. Large GEMMs (projections, FFN, LM head) are issued from one
 * thread and let OpenBLAS use all of the rank's threads; small GEMMs issued
 * inside a parallel region (one attention tile each) must run
 * single-threaded, or the threads would oversubscribe the rank's cores:
 *
 *     ra_blas_serial_begin();            // OpenBLAS: one thread per call
 *     #pragma omp parallel for num_threads(ra_threads())
 *     for (int t = 0; t < tiles; t++) tile(t);   // each calls cblas_sgemm
 *     ra_blas_serial_end();              // back to ra_threads()
 *
 * ra_threads_set is called once at start-up (src/cli/args.c) with the count
 * chosen from --threads / run.threads, OMP_NUM_THREADS, SLURM_CPUS_PER_TASK
 * or the rank's cores; a library user may call it at any time outside a
 * parallel region. Default: 1. OPENBLAS_NUM_THREADS, when set, stays the
 * OpenBLAS count outside parallel regions (the user's choice is kept).
 *
 * ringattn links the OpenMP build of OpenBLAS (meson.build): its calls then
 * run on the same OpenMP threads as ringattn's loops. With the pthreads
 * build the two thread sets spin against each other on the same cores;
 * ra_blas_threading() says which build is loaded. */
#ifndef RINGATTN_THREADS_H
#define RINGATTN_THREADS_H

#include <stddef.h>

#include "ringattn/status.h"

/* Threads for ringattn's loops and for OpenBLAS outside parallel regions. */
void ra_threads_set(int n);
int ra_threads(void);

/* OpenBLAS single-threaded between begin and end (nesting counts). */
void ra_blas_serial_begin(void);
void ra_blas_serial_end(void);

/* Make OpenBLAS take now the GEMM buffers the current thread counts can
 * use at once (128 MiB of address space each, mostly never touched), so
 * that a memory limit met later fails one of ringattn's own allocations by
 * name: OpenBLAS itself retries a failed mapping forever. RA_ERR_NOMEM,
 * naming the size, when the address space is not there. Call it after
 * ra_threads_set and before large allocations; again after raising the
 * counts. At most RA_BLAS_CLAIM_MAX buffers, and what OpenBLAS's pool holds
 * beside its own threads' buffers (2 x its MAX_THREADS in all). */
#define RA_BLAS_CLAIM_MAX 1024
ra_status ra_blas_claim(void);
/* One OpenBLAS GEMM buffer's address space, with its malloc fallback's
 * alignment (OpenBLAS 0.3.21: 128 MiB). */
#define RA_BLAS_BUFFER_BYTES (((size_t)128 << 20) + 4096)
/* Whether n such buffers (at most 4096) and extra bytes more could be
 * mapped now: each mapped and released, as OpenBLAS maps them. Safe before
 * main (the program's preinit check, src/cli/main.c). */
int ra_blas_space_for(long n, size_t extra);

/* The loaded OpenBLAS's threading: "OpenMP", "pthreads" or "sequential". */
const char *ra_blas_threading(void);

/* The kernels OpenBLAS runs ("SkylakeX", "Haswell", "Prescott", ...). */
const char *ra_blas_kernels(void);

/* A DYNAMIC_ARCH OpenBLAS picks its kernels by CPU model when it loads, and
 * falls back to generic SSE3 ones ("Prescott") for a model it does not know:
 * OpenBLAS before 0.3.25 did so for any Intel model it did not list (its
 * issue #4267); Debian 12's 0.3.21 does so on Emerald Rapids (model 207),
 * where sgemm then runs at a third of its speed. This returns the kernels the
 * CPU's own feature flags allow instead ("SkylakeX" with AVX-512, "Haswell"
 * with AVX2 and FMA), or NULL when OpenBLAS's choice stands: it chose AVX2
 * kernels or better, OPENBLAS_CORETYPE is set (the user's choice), or the
 * library was built for a single core type. The choice only takes effect in
 * a new process with OPENBLAS_CORETYPE set (the ringattn program re-executes
 * itself: src/cli/main.c). */
const char *ra_blas_better_kernels(void);

#endif
