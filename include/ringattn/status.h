/* status.h - error codes and the error-relay convention.
 *
 * Library functions return ra_status. On failure they record one message
 * saying what was wrong and where (file name, option, tensor, rank) with
 * RA_FAIL, and callers pass the failure up unchanged with RA_TRY:
 *
 *     RA_TRY(ra_npy_open(&f, "q.npy"));
 *     if (n < 1) return RA_FAIL(RA_ERR_ARG, "--iters must be >= 1, got %d", n);
 *
 * The command line prints ra_last_error() and exits non-zero. */
#ifndef RINGATTN_STATUS_H
#define RINGATTN_STATUS_H

#include <stddef.h>

/* The longest error message kept (two paths of PATH_MAX and the reason fit);
 * a buffer that copies ra_last_error() to build on it has this size too. */
#define RA_ERROR_MAX 10240

typedef enum {
    RA_OK = 0,
    RA_ERR_ARG,      /* bad command-line option or argument value */
    RA_ERR_IO,       /* open/read/write failed */
    RA_ERR_FORMAT,   /* a file is not what it claims (npy header, dtype...) */
    RA_ERR_SHAPE,    /* array shapes do not agree */
    RA_ERR_NOMEM,    /* allocation failed */
    RA_ERR_MPI,      /* an MPI call failed or another rank failed */
    RA_ERR_INTERNAL, /* a bug: an invariant did not hold */
    RA_ERR_PEER,     /* another rank failed and reported why; stay quiet */
    RA_ERR_NUMERIC,  /* a loss or gradient is NaN or infinite */
} ra_status;

/* Record an error message (printf-style) and return code. The message is kept
 * per thread until the next ra_fail. file/line name the source location. */
ra_status ra_fail(ra_status code, const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
#define RA_FAIL(code, ...) ra_fail((code), __FILE__, __LINE__, __VA_ARGS__)

/* Pass a failure up to the caller unchanged. */
#define RA_TRY(expr)                                                          \
    do {                                                                      \
        ra_status ra_try_s_ = (expr);                                         \
        if (ra_try_s_ != RA_OK) return ra_try_s_;                             \
    } while (0)

const char *ra_last_error(void);       /* "" when none */
const char *ra_last_error_where(void); /* "src/core/npy.c:120" */
const char *ra_status_name(ra_status s);
void ra_clear_error(void);
/* A user's value (an environment variable, a name from a file) as an
 * error message shows it: at most max bytes, each byte outside printable
 * ASCII as '?' (no stray escape or newline in the error line), "..." when
 * cut. out holds at least max + 4 bytes. Returns out. */
const char *ra_shown(char *out, const char *in, size_t max);

/* For bugs only: print file:line, the failed condition and a hint, abort. */
#define RA_ASSERT(cond, hint)                                                 \
    do {                                                                      \
        if (!(cond)) ra_assert_fail(__FILE__, __LINE__, #cond, (hint));       \
    } while (0)
_Noreturn void ra_assert_fail(const char *file, int line, const char *cond, const char *hint);

#endif
