/* args.c - option values and rank-0 printing for the subcommands. */
#include <cblas.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "cli.h"
#include "ringattn/dist.h"

ra_status ra_arg_long(const char *opt, const char *val, long lo, long hi, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(val, &end, 10);
    if (errno || end == val || *end)
        return RA_FAIL(RA_ERR_ARG, "%s: '%s' is not an integer", opt, val);
    if (v < lo || v > hi)
        return RA_FAIL(RA_ERR_ARG, "%s: %ld is out of range [%ld, %ld]", opt, v, lo, hi);
    *out = v;
    return RA_OK;
}

ra_status ra_arg_int(const char *opt, const char *val, int lo, int hi, int *out)
{
    long v = 0;
    RA_TRY(ra_arg_long(opt, val, lo, hi, &v));
    *out = (int)v;
    return RA_OK;
}

ra_status ra_arg_size(const char *opt, const char *val, int64_t lo, int64_t *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(val, &end, 10);
    if (errno || end == val) return RA_FAIL(RA_ERR_ARG, "%s: '%s' is not a size", opt, val);
    long long mult = 1;
    if (*end == 'K' || *end == 'k') mult = 1024LL, end++;
    else if (*end == 'M' || *end == 'm') mult = 1024LL * 1024, end++;
    else if (*end == 'G' || *end == 'g') mult = 1024LL * 1024 * 1024, end++;
    if (*end) return RA_FAIL(RA_ERR_ARG, "%s: '%s' is not a size (digits with an optional K, M or G)", opt, val);
    if (v < lo || v > INT32_MAX / mult)
        return RA_FAIL(RA_ERR_ARG, "%s: %s is out of range [%lld, 2^31-1]", opt, val, (long long)lo);
    *out = v * mult;
    return RA_OK;
}

ra_status ra_arg_float(const char *opt, const char *val, float *out)
{
    char *end;
    errno = 0;
    double v = strtod(val, &end);
    if (errno || end == val || *end || !isfinite(v))
        return RA_FAIL(RA_ERR_ARG, "%s: '%s' is not a finite number", opt, val);
    *out = (float)v;
    return RA_OK;
}

ra_status ra_arg_unknown(const char *cmd, int c, const char *arg)
{
    if (c == ':' || c == '?') {
        return RA_FAIL(RA_ERR_ARG, "%s: unknown option or missing value in '%s' (see ringattn %s --help)",
                       cmd, arg ? arg : "?", cmd);
    }
    return RA_FAIL(RA_ERR_ARG, "%s: unexpected option '%s' (see ringattn %s --help)", cmd,
                   arg ? arg : "?", cmd);
}

void ra_say(const ra_cli *c, const char *fmt, ...)
{
    if (c->rank != 0) return;
    va_list ap;
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    fflush(stdout);
}

int ra_set_threads(const ra_cli *c, int n)
{
    if (n <= 0) n = ra_default_threads(c->comm);
    openblas_set_num_threads(n);
    return n;
}
