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
    "(B is the reference; equal infinities count as equal, NaN as infinitely\n"
    "wrong). Exits 1 when the normalised error exceeds T (default 1e-5).\n";

static ra_status compare(const char *pa, const char *pb, float tol, double *err)
{
    ra_npy a = { .fd = -1 }, b = { .fd = -1 };
    float *x = NULL;
    ra_status st = ra_npy_open(&a, pa);
    if (st == RA_OK) st = ra_npy_open(&b, pb);
    if (st == RA_OK && a.count != b.count) {
        char s1[96], s2[96];
        st = RA_FAIL(RA_ERR_SHAPE, "compare: %s has shape %s but %s has %s", pa,
                     ra_shape_str(s1, sizeof s1, a.ndim, a.shape), pb,
                     ra_shape_str(s2, sizeof s2, b.ndim, b.shape));
    }
    const int64_t blk = 1 << 20;
    if (st == RA_OK) st = ra_alloc(&x, sizeof(float) * 2 * blk, "compare buffers");
    double dmax = 0, rmax = 0;
    for (int64_t i = 0; st == RA_OK && i < a.count; i += blk) {
        int64_t n = a.count - i < blk ? a.count - i : blk;
        st = ra_npy_read_f32(&a, i, n, x);
        if (st == RA_OK) st = ra_npy_read_f32(&b, i, n, x + blk);
        for (int64_t j = 0; st == RA_OK && j < n; j++) {
            double u = x[j], v = x[blk + j];
            double d = (u == v) ? 0.0 : fabs(u - v);
            if (isnan(d)) d = INFINITY;
            if (d > dmax) dmax = d;
            if (isfinite(v) && fabs(v) > rmax) rmax = fabs(v);
        }
    }
    if (st == RA_OK) {
        *err = dmax / (rmax > 0 ? rmax : 1.0);
        printf("compare: %s vs %s: max|A-B| = %.3e, max|B| = %.3e, normalised error = %.3e (tol %.1e) %s\n",
               pa, pb, dmax, rmax, *err, tol, *err <= tol ? "OK" : "FAIL");
        if (!(*err <= tol))
            st = RA_FAIL(RA_ERR_ARG, "compare: %s differs from %s by %.3e > %.1e", pa, pb, *err, tol);
    }
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
    while (st == RA_OK && (o = getopt_long(argc, argv, ":", opts, NULL)) != -1) {
        if (o == 't') st = ra_arg_float("--tol", optarg, &tol);
        else if (o == 'h') { ra_say(c, "%s", help); return RA_OK; }
        else st = ra_arg_unknown("compare", o, argv[optind - 1]);
    }
    if (st == RA_OK && argc - optind != 2)
        st = RA_FAIL(RA_ERR_ARG, "compare: needs two .npy files (see ringattn compare --help)");
    double err = 0;
    if (st == RA_OK && c->rank == 0) st = compare(argv[optind], argv[optind + 1], tol, &err);
    return ra_agree(c->comm, st);
}
