/* isa.h - which copy of the kernels (attention tiles, layers) this process
 * runs.
 *
 *     printf("kernels: %s\n", ra_kernel_isa());   // e.g. "x86-64-v3"
 *
 * A default build compiles them for its build machine (-march=native):
 * "native". A portable build (meson setup -Dnative=false) on x86-64
 * compiles them three times, for x86-64 (SSE2), x86-64-v3 (AVX2, FMA) and
 * x86-64-v4 (AVX-512), and the first kernel call picks the best the CPU
 * runs, or the level the environment variable RINGATTN_ISA names (to
 * compare levels, or to stay below one). Elsewhere: "generic". The choice
 * is made once per process and never changes (the kernels' scratch sizes
 * depend on it). */
#ifndef RINGATTN_ISA_H
#define RINGATTN_ISA_H

/* "native", "generic", or the x86-64 level running. */
const char *ra_kernel_isa(void);

/* NULL, or why RINGATTN_ISA (set and not empty) cannot be followed: not a
 * level this build has, a level the CPU cannot run, or a build with one
 * copy of the kernels. The kernels then run the best level there is; the
 * ringattn program refuses to start. */
const char *ra_kernel_isa_problem(void);

#endif
