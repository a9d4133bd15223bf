/* mem.h - 64-byte aligned allocation, wall clock, peak memory. */
#ifndef RINGATTN_MEM_H
#define RINGATTN_MEM_H

#include <stddef.h>

#include "ringattn/status.h"

/* Allocate bytes (64-byte aligned, not zeroed) into *out; what names the
 * buffer in the error message. Free with free(). */
ra_status ra_alloc(void *out, size_t bytes, const char *what);
double ra_now(void);                 /* monotonic seconds */
double ra_peak_rss_bytes(void);      /* this process's peak resident set */

#endif
