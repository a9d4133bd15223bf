/* status.c - per-thread last-error message. */
#include "ringattn/status.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

static _Thread_local char last_msg[RA_ERROR_MAX];
static _Thread_local char last_where[128];

ra_status ra_fail(ra_status code, const char *file, int line, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(last_msg, sizeof last_msg, fmt, ap);
    va_end(ap);
    snprintf(last_where, sizeof last_where, "%s:%d", file, line);
    return code;
}

const char *ra_last_error(void) { return last_msg; }
const char *ra_last_error_where(void) { return last_where; }
void ra_clear_error(void) { last_msg[0] = last_where[0] = '\0'; }

const char *ra_status_name(ra_status s)
{
    switch (s) {
    case RA_OK: return "ok";
    case RA_ERR_ARG: return "bad argument";
    case RA_ERR_IO: return "I/O error";
    case RA_ERR_FORMAT: return "bad file format";
    case RA_ERR_SHAPE: return "shape mismatch";
    case RA_ERR_NOMEM: return "out of memory";
    case RA_ERR_MPI: return "MPI error";
    case RA_ERR_INTERNAL: return "internal error";
    case RA_ERR_PEER: return "another rank failed";
    case RA_ERR_NUMERIC: return "non-finite value";
    }
    return "unknown status";
}

const char *ra_shown(char *out, const char *in, size_t max)
{
    size_t n = 0;
    for (; in[n] && n < max; n++) {
        const unsigned char ch = (unsigned char)in[n];
        out[n] = ch >= 0x20 && ch < 0x7F ? (char)ch : '?';
    }
    snprintf(out + n, 4, "%s", in[n] ? "..." : "");
    return out;
}

void ra_assert_fail(const char *file, int line, const char *cond, const char *hint)
{
    fprintf(stderr, "ringattn: internal error at %s:%d: %s (%s)\n", file, line, cond, hint);
    abort();
}
