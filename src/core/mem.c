/* mem.c - aligned allocation, monotonic clock, peak resident memory. */
#include "ringattn/mem.h"

#include <stdlib.h>
#include <sys/resource.h>
#include <time.h>

ra_status ra_alloc(void *out, size_t bytes, const char *what)
{
    void *p = NULL;
    if (posix_memalign(&p, 64, bytes ? bytes : 64) != 0)
        return RA_FAIL(RA_ERR_NOMEM, "out of memory allocating %zu bytes for %s", bytes, what);
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
