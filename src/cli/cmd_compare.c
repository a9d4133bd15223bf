/* cmd_compare.c - `ringattn compare A.npy B.npy`: the normalised error
 * max|A - B| / max|B| of two arrays of one shape, streamed in blocks. */
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "cli.h"
#include "ringattn/dist.h"
#include "ringattn/mem.h"
#include "ringattn/npy.h"

static const char *help =
    "usage: ringattn compare A.npy B.npy [--tol T]\n"
    "\n"
    "Prints max|A - B|, max|B| and the normalised error max|A - B| / max|B|\n"
    "(B is the reference; max|B| is over its finite elements; equal infinities\n"
    "count as equal; when max|B| = 0 it\n"
    "is 0 if A equals B and infinite otherwise). Exits 1 when the normalised\n"
    "error exceeds T (default 1e-5, finite and >= 0), when either array holds\n"
    "a NaN (the message gives the first position), or when the arrays differ\n"
    "in shape (the number of dimensions too) or are not float32 or float64.\n"
    "Values compare in float64 (a float32 value is exact there).\n";

static ra_status need_float(const ra_npy *f)
{
    if (f->dtype != RA_DT_F32 && f->dtype != RA_DT_F64)
        return RA_FAIL(RA_ERR_FORMAT, "compare: %s has dtype %s; compare reads float32 or float64 arrays", f->path,
                       ra_dtype_name(f->dtype));
    return RA_OK;
}

/* Same number of dimensions and the same extent in each: [4, 8] vs [8, 4]
 * or [32] vs [4, 8] hold as many elements but are not the same array. */
static ra_status same_shape(const ra_npy *a, const ra_npy *b)
{
    int same = a->ndim == b->ndim;
    for (int i = 0; same && i < a->ndim; i++) same = a->shape[i] == b->shape[i];
    if (same) return RA_OK;
    char s1[96], s2[96];
    return RA_FAIL(RA_ERR_SHAPE, "compare: %s has shape %s but %s has shape %s: arrays of different shapes do not "
                                 "compare", a->path, ra_shape_str(s1, sizeof s1, a->ndim, a->shape), b->path,
                   ra_shape_str(s2, sizeof s2, b->ndim, b->shape));
}

typedef struct {
    double dmax, rmax;    /* max|A - B| (NaN counts as inf), max finite |B| */
    int64_t at_max;       /* where |A - B| is largest (-1: nowhere) */
    int64_t first_nan;    /* first element with a NaN in A or B (-1: none) */
    double nan_a, nan_b;  /* the two values there */
} diff_stats;

static void accumulate(diff_stats *d, const double *x, const double *y, int64_t n, int64_t base)
{
    for (int64_t j = 0; j < n; j++) {
        double u = x[j], v = y[j], e;
        if (u == v) e = 0.0; /* equal infinities too */
        else if (isnan(u) || isnan(v)) {
            if (d->first_nan < 0) d->first_nan = base + j, d->nan_a = u, d->nan_b = v;
            e = INFINITY;
        } else e = fabs(u - v);
        if (e > d->dmax || d->at_max < 0) d->dmax = e, d->at_max = base + j;
        if (isfinite(v) && fabs(v) > d->rmax) d->rmax = fabs(v);
    }
}

/* max|A - B| / max|B|; B all zeros (max|B| = 0) scales nothing: A equal
 * to it is no error, any difference an infinite one (it divided by 1, so
 * 1e-30 against zeros passed any tolerance). */
static double normalised(const diff_stats *d)
{
    if (d->rmax > 0) return d->dmax / d->rmax;
    return d->dmax > 0 ? INFINITY : 0.0;
}

static ra_status verdict(const ra_npy *a, const ra_npy *b, const diff_stats *d, float tol)
{
    char pos[160];
    double err = normalised(d);
    int ok = d->first_nan < 0 && err <= tol;
    printf("compare: %s vs %s: max|A-B| = %.3e, max|B| = %.3e, normalised error = %.3e (tol %.1e) %s\n", a->path,
           b->path, d->dmax, d->rmax, err, tol, ok ? "OK" : "FAIL");
    if (d->first_nan >= 0)
        return RA_FAIL(RA_ERR_ARG, "compare: NaN at %s (element %lld): %s has %g, %s has %g",
                       ra_position_str(pos, sizeof pos, d->first_nan, a->ndim, a->shape), (long long)d->first_nan,
                       a->path, d->nan_a, b->path, d->nan_b);
    if (!ok)
        return RA_FAIL(RA_ERR_ARG, "compare: %s differs from %s by %.3e > %.1e (largest difference at %s)%s", a->path,
                       b->path, err, tol, ra_position_str(pos, sizeof pos, d->at_max, a->ndim, a->shape),
                       d->rmax > 0 ? "" : "; max|B| = 0 (over B's finite elements): any difference is an infinite "
                                          "normalised error");
    return RA_OK;
}

static ra_status compare(const char *pa, const char *pb, float tol)
{
    const ra_cli_file ins[] = { { "A", pa }, { "B", pb } };
    RA_TRY(ra_check_files("compare", ins, 2, NULL, 0, 0)); /* a FIFO would block the read */
    ra_npy a = { .fd = -1 }, b = { .fd = -1 };
    double *x = NULL;
    ra_status st = ra_npy_open(&a, pa);
    if (st == RA_OK) st = ra_npy_open(&b, pb);
    if (st == RA_OK) st = need_float(&a);
    if (st == RA_OK) st = need_float(&b);
    if (st == RA_OK) st = same_shape(&a, &b);
    const int64_t blk = 1 << 20;
    if (st == RA_OK) st = ra_alloc(&x, sizeof(double) * 2 * blk, "compare buffers");
    diff_stats d = { .at_max = -1, .first_nan = -1 };
    for (int64_t i = 0; st == RA_OK && i < a.count; i += blk) {
        int64_t n = a.count - i < blk ? a.count - i : blk;
        st = ra_npy_read_f64(&a, i, n, x);
        if (st == RA_OK) st = ra_npy_read_f64(&b, i, n, x + blk);
        if (st == RA_OK) accumulate(&d, x, x + blk, n, i);
    }
    if (st == RA_OK) st = verdict(&a, &b, &d, tol);
    free(x);
    ra_npy_close(&a);
    ra_npy_close(&b);
    return st;
}

ra_status ra_cmd_compare(ra_cli *c, int argc, char **argv)
{
    static const struct option opts[] = { { "tol", required_argument, 0, 't' },
                                          { "help", no_argument, 0, 'h' }, { 0, 0, 0, 0 } };
    float tol = 1e-5f;
    int o;
    ra_status st = RA_OK;
    opterr = 0;
    optind = 1;
    while (st == RA_OK && (o = ra_getopt(argc, argv, ":h", opts)) != -1) {
        if (o == 't') {
            st = ra_arg_float("--tol", optarg, &tol);
            /* an infinite tolerance (1e39 in float32) would pass anything; -1e-50 is negative, not 0 */
            if (st == RA_OK && (!isfinite(tol) || tol < 0 || strtod(optarg, NULL) < 0))
                st = RA_FAIL(RA_ERR_ARG, "--tol: %s must be >= 0 and finite in float32", optarg);
            if (tol == 0) tol = 0.0f; /* -0 is 0, and printed so (it printed "tol -0.0e+00") */
            /* 1e-50 is 0 in float32: an exact comparison nobody asked for */
            if (st == RA_OK && tol == 0 && strtod(optarg, NULL) != 0)
                st = RA_FAIL(RA_ERR_ARG, "--tol: %s is 0 in float32 (below 1.4e-45); give 0 for an exact "
                             "comparison, or a tolerance a float32 holds", optarg);
        } else if (o == 'h') {
            ra_say(c, "%s", help);
            return RA_OK;
        } else st = ra_arg_unknown("compare", o, argv[optind - 1]);
    }
    st = ra_arg_cmd("compare", st);
    if (st == RA_OK && argc - optind != 2)
        st = RA_FAIL(RA_ERR_ARG, "compare: needs two .npy files (see ringattn compare --help)");
    if (st == RA_OK && c->rank == 0) st = compare(argv[optind], argv[optind + 1], tol);
    RA_TRY(ra_agree(c->comm, st));
    return ra_stdout_finish(c);
}
