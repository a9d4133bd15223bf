/* mem.c - aligned allocation, monotonic clock, peak resident memory. */
#include "ringattn/mem.h"

#include <stdlib.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <time.h>

enum { HUGE_PAGE = 2 << 20 };

ra_status ra_alloc(void *out, size_t bytes, const char *what)
{
    void *p = NULL;
    /* Large buffers ask for transparent huge pages: the first touch of a
     * buffer then faults once per 2 MiB instead of once per 4 KiB, which on
     * a virtual machine costs more than the arithmetic that follows. */
    size_t align = bytes >= HUGE_PAGE ? HUGE_PAGE : 64;
    size_t size = bytes >= HUGE_PAGE ? (bytes + HUGE_PAGE - 1) / HUGE_PAGE * HUGE_PAGE : (bytes ? bytes : 64);
    if (posix_memalign(&p, align, size) != 0)
        return RA_FAIL(RA_ERR_NOMEM, "out of memory allocating %zu bytes for %s", bytes, what);
    if (align == HUGE_PAGE) (void)madvise(p, size, MADV_HUGEPAGE); /* a hint; refusal is harmless */
    *(void **)out = p;
    return RA_OK;
}

double ra_now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

double ra_peak_rss_bytes(void)
{
    struct rusage u;
    getrusage(RUSAGE_SELF, &u);
    return (double)u.ru_maxrss * 1024.0; /* Linux reports KiB */
}
