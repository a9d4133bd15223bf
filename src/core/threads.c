/* threads.c - the rank's thread count for OpenMP regions and OpenBLAS. */
#include "ringattn/threads.h"

#include <cblas.h>
#include <dlfcn.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

static int nthreads = 1;
static int blas_threads = 1; /* OpenBLAS outside serial regions */
static int serial_depth;     /* ra_blas_serial_begin nesting, main thread only */

/* OpenBLAS (0.3.21, OpenMP build) gives each of its threads a GEMM buffer
 * of 128 MiB of address space (when it loads, and when its thread count is
 * raised), and keeps a pool of such buffers for the threads that call it:
 * one for each call in progress (a GEMM on all threads from one caller, or
 * a serial GEMM from each of ours in a parallel region). When mapping a
 * buffer fails, OpenBLAS tries again forever: a rank spun at 100 % of a
 * core under `ulimit -v` (an eval of a 100M-parameter model hung with
 * 1.1 GB, failed cleanly with 1.0 and ran with 1.2; --threads 16 hung in
 * openblas_set_num_threads with 2 GB; vm.overcommit_memory = 2 fails
 * mappings alike). So every buffer OpenBLAS will map is tried first here,
 * mapped and released: a thread count without the space is not given to
 * OpenBLAS (ra_threads_set), and ra_blas_claim fills the pool before the
 * model's buffers; both report too little as an error by name. Running out
 * later is then one of our own allocations, which fail by name too. */
static int blas_buffers;  /* OpenBLAS threads with a buffer: the most it has had (0: not read yet) */
static int blas_short_of; /* a thread count refused for want of space (0: none) */
static int pool_claimed;  /* pool buffers ra_blas_claim made OpenBLAS take */

int ra_blas_space_for(long n, size_t extra)
{
    /* one mapping per buffer, as OpenBLAS maps them: one large one can be
     * refused by the kernel's overcommit heuristic (more than RAM + swap)
     * where the buffers are not */
    enum { MAX_PROBE = 4096 };
    void *held[MAX_PROBE + 1];
    if (n > MAX_PROBE) n = MAX_PROBE;
    int got = 0, ok = 1;
    for (long i = 0; ok && i <= n; i++) {
        const size_t bytes = i < n ? RA_BLAS_BUFFER_BYTES : extra;
        if (!bytes) continue;
        void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED) ok = 0;
        else held[got++] = p;
    }
    for (int i = 0; i < got; i++) munmap(held[i], i < n ? RA_BLAS_BUFFER_BYTES : extra);
    return ok;
}

/* The build's MAX_THREADS (OpenBLAS caps its thread count there), 0 when
 * its configuration does not say. */
static int blas_max_threads(void)
{
    const char *at = strstr(openblas_get_config(), "MAX_THREADS=");
    return at ? atoi(at + strlen("MAX_THREADS=")) : 0;
}

/* pool: the buffers of the threads that call OpenBLAS, else of its own */
static ra_status no_space(int pool, int threads, int buffers)
{
    char who[64];
    if (threads == 1) snprintf(who, sizeof who, pool ? "the thread that calls it" : "its thread");
    else snprintf(who, sizeof who, pool ? "each of the %d threads that call it at once" : "each of its %d threads",
                  threads);
    return RA_FAIL(RA_ERR_NOMEM, "OpenBLAS needs a GEMM buffer for %s: %d MiB more of address space (mostly "
                   "never touched), and the process cannot map them: raise the memory limit (ulimit -v, a "
                   "scheduler's virtual-memory limit) or run fewer threads a rank (--threads; bench: -t)", who,
                   buffers * 128);
}

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
    if (!blas_buffers) blas_buffers = openblas_get_num_threads(); /* what it loaded with */
    blas_short_of = 0;
    const int max = blas_max_threads(), buffers = max > 0 && blas_threads > max ? max : blas_threads;
    if (buffers > blas_buffers) {
        if (ra_blas_space_for(buffers - blas_buffers, 0)) blas_buffers = buffers;
        else blas_short_of = buffers, blas_threads = blas_buffers; /* ra_blas_claim says so */
    }
    omp_set_num_threads(nthreads);
    if (serial_depth == 0) openblas_set_num_threads(blas_threads);
}

/* The pool's slots: 2 x MAX_THREADS of the build, at least 50 (OpenBLAS
 * 0.3.21's NUM_BUFFERS); its threads' buffers take some. Asking for more
 * prints "Program is Terminated ... too many memory regions" and returns
 * NULL (seen with --threads 1100). */
static int pool_slots(void)
{
    const int max = blas_max_threads();
    return max > 25 ? 2 * max : 50;
}

ra_status ra_blas_claim(void)
{
    if (blas_short_of) return no_space(0, blas_short_of, blas_short_of - blas_buffers);
    int want = nthreads; /* one per caller at once */
    const int room = pool_slots() - blas_buffers - 1;
    if (want > room) want = room;
    if (want > RA_BLAS_CLAIM_MAX) want = RA_BLAS_CLAIM_MAX;
    if (want <= pool_claimed) return RA_OK;
    void *(*pool_alloc)(int) = (void *(*)(int))dlsym(RTLD_DEFAULT, "blas_memory_alloc");
    void (*pool_free)(void *) = (void (*)(void *))dlsym(RTLD_DEFAULT, "blas_memory_free");
    if (!pool_alloc || !pool_free) return RA_OK; /* not OpenBLAS's pool: nothing to claim */
    if (!ra_blas_space_for(want - pool_claimed, 0))
        return no_space(1, want, want - pool_claimed);
    void *held[RA_BLAS_CLAIM_MAX];
    int got = 0;
    while (got < want && (held[got] = pool_alloc(0)) != NULL) got++;
    for (int i = got - 1; i >= 0; i--) pool_free(held[i]);
    pool_claimed = got;
    return RA_OK;
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
