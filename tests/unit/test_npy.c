/* test_npy.c - unit tests for the .npy reader/writer (src/core/npy.c).
 *
 * Every file is built byte by byte here (no python/numpy needed) inside a
 * tmpdir.h directory that the group teardown removes. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "ringattn/npy.h"
#include "tmpdir.h"

/* ---- fixture and helpers --------------------------------------------- */

typedef struct {
    char dir[TMPDIR_CAP];
} fixture;

static int group_setup(void **state)
{
    fixture *fx = calloc(1, sizeof *fx);
    if (!fx || tmpdir_make(fx->dir, "test_npy") != 0) {
        free(fx);
        return -1;
    }
    *state = fx;
    return 0;
}

static int group_teardown(void **state)
{
    fixture *fx = *state;
    int rc = tmpdir_remove(fx->dir);
    free(fx);
    return rc;
}

/* dir/name into out[cap], cap >= TMPDIR_CAP */
static const char *tmp(void **state, char *out, size_t cap, const char *name)
{
    const fixture *fx = *state;
    assert_true(cap >= TMPDIR_CAP);
    return tmpdir_path(out, fx->dir, name);
}

static void write_file(const char *path, const void *bytes, size_t n)
{
    FILE *fp = fopen(path, "wb");
    assert_non_null(fp);
    if (n) assert_int_equal(fwrite(bytes, 1, n, fp), n);
    assert_int_equal(fclose(fp), 0);
}

static size_t read_whole(const char *path, unsigned char *buf, size_t cap)
{
    FILE *fp = fopen(path, "rb");
    assert_non_null(fp);
    size_t n = fread(buf, 1, cap, fp);
    fclose(fp);
    return n;
}

static int exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

/* Preamble for version major.minor with header length hlen, then the exact
 * header bytes hdr and the data. */
static void write_npy_raw(const char *path, int major, int minor, const char *hdr, size_t hlen,
                          const void *data, size_t nbytes)
{
    size_t pre = major == 1 ? 10 : 12;
    unsigned char *buf = malloc(pre + hlen + nbytes + 1);
    assert_non_null(buf);
    memcpy(buf, "\x93NUMPY", 6);
    buf[6] = (unsigned char)major;
    buf[7] = (unsigned char)minor;
    buf[8] = (unsigned char)(hlen & 0xFF);
    buf[9] = (unsigned char)((hlen >> 8) & 0xFF);
    if (pre == 12) {
        buf[10] = (unsigned char)((hlen >> 16) & 0xFF);
        buf[11] = (unsigned char)((hlen >> 24) & 0xFF);
    }
    memcpy(buf + pre, hdr, hlen);
    if (nbytes) memcpy(buf + pre + hlen, data, nbytes);
    write_file(path, buf, pre + hlen + nbytes);
    free(buf);
}

/* The dict padded with spaces and '\n' to a 64-byte boundary, as numpy does. */
static void write_npy(const char *path, int major, const char *dict, const void *data, size_t nbytes)
{
    size_t pre = major == 1 ? 10 : 12, dlen = strlen(dict);
    size_t total = pre + dlen + 1;
    total += (64 - total % 64) % 64;
    size_t hlen = total - pre;
    char *hdr = malloc(hlen);
    assert_non_null(hdr);
    memcpy(hdr, dict, dlen);
    memset(hdr + dlen, ' ', hlen - dlen);
    hdr[hlen - 1] = '\n';
    write_npy_raw(path, major, 0, hdr, hlen, data, nbytes);
    free(hdr);
}

static void assert_error(ra_status got, ra_status want, const char *path, const char *word)
{
    const char *msg = ra_last_error();
    if (got != want)
        fail_msg("status %d (%s), expected %d (%s); message: %s", got, ra_status_name(got), want,
                 ra_status_name(want), msg);
    if (!strstr(msg, path)) fail_msg("message \"%s\" does not name \"%s\"", msg, path);
    if (!strstr(msg, word)) fail_msg("message \"%s\" lacks \"%s\"", msg, word);
}

/* ra_npy_open must fail with code and a message naming path and word. */
static void expect_open_error(const char *path, ra_status code, const char *word)
{
    ra_npy f;
    ra_clear_error();
    assert_error(ra_npy_open(&f, path), code, path, word);
    assert_int_equal(f.fd, -1);
}

static const float six[6] = {1.0f, -2.5f, 3.25f, 0.0f, 1e-3f, 7.0f};

/* ---- reading valid files --------------------------------------------- */

static void test_roundtrip_f32(void **state)
{
    char p[TMPDIR_CAP];
    tmp(state, p, sizeof p, "rt.npy");
    const int64_t shape[3] = {2, 3, 4};
    float data[24], *back = NULL;
    for (int i = 0; i < 24; i++) data[i] = (float)i * 0.5f - 3.0f;
    assert_int_equal(ra_npy_save_f32(p, 3, shape, data), RA_OK);
    ra_npy info;
    assert_int_equal(ra_npy_load_f32(p, &info, &back), RA_OK);
    assert_int_equal(info.ndim, 3);
    assert_int_equal(info.shape[0], 2);
    assert_int_equal(info.shape[1], 3);
    assert_int_equal(info.shape[2], 4);
    assert_int_equal(info.count, 24);
    assert_int_equal(info.dtype, RA_DT_F32);
    assert_int_equal(info.data_offset % 64, 0);
    assert_int_equal(info.fd, -1);
    assert_memory_equal(back, data, sizeof data);
    free(back);
    char part[TMPDIR_CAP + 8];
    snprintf(part, sizeof part, "%s.tmp", p);
    assert_false(exists(part));
    unlink(p);
}

/* The exact bytes np.save writes for a (2, 3) float32 array. */
static size_t numpy_2x3_bytes(unsigned char *buf)
{
    const char *dict = "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }";
    memcpy(buf, "\x93NUMPY\x01\x00\x76\x00", 10);
    memset(buf + 10, ' ', 118);
    memcpy(buf + 10, dict, strlen(dict));
    buf[127] = '\n';
    memcpy(buf + 128, six, sizeof six);
    return 128 + sizeof six;
}

static void test_numpy_v1_file(void **state)
{
    char p[TMPDIR_CAP], q[TMPDIR_CAP];
    tmp(state, p, sizeof p, "numpy.npy");
    tmp(state, q, sizeof q, "ours.npy");
    unsigned char want[256], got[512];
    size_t n = numpy_2x3_bytes(want);
    write_file(p, want, n);

    ra_npy f;
    assert_int_equal(ra_npy_open(&f, p), RA_OK);
    assert_int_equal(f.ndim, 2);
    assert_int_equal(f.shape[0], 2);
    assert_int_equal(f.shape[1], 3);
    assert_int_equal(f.data_offset, 128);
    assert_int_equal(f.dtype, RA_DT_F32);
    float back[6];
    assert_int_equal(ra_npy_read_f32(&f, 0, 6, back), RA_OK);
    assert_memory_equal(back, six, sizeof six);
    ra_npy_close(&f);
    assert_int_equal(f.fd, -1);
    ra_npy_close(&f); /* twice is harmless */

    /* our writer produces numpy's bytes exactly */
    const int64_t shape[2] = {2, 3};
    assert_int_equal(ra_npy_save_f32(q, 2, shape, six), RA_OK);
    assert_int_equal(read_whole(q, got, sizeof got), n);
    assert_memory_equal(got, want, n);
    unlink(p);
    unlink(q);
}

static void test_v2_header(void **state)
{
    char p[TMPDIR_CAP];
    tmp(state, p, sizeof p, "v2.npy");
    write_npy(p, 2, "{'descr': '<f4', 'fortran_order': False, 'shape': (6,), }", six, sizeof six);
    ra_npy f;
    assert_int_equal(ra_npy_open(&f, p), RA_OK);
    assert_int_equal(f.data_offset, 128); /* 12 + 58 + 1 rounded up to 64 */
    assert_int_equal(f.ndim, 1);
    assert_int_equal(f.count, 6);
    float back[6];
    assert_int_equal(ra_npy_read_f32(&f, 0, 6, back), RA_OK);
    assert_memory_equal(back, six, sizeof six);
    ra_npy_close(&f);
    unlink(p);
}

static void test_v3_header(void **state)
{
    char p[TMPDIR_CAP];
    tmp(state, p, sizeof p, "v3.npy");
    const int32_t v[4] = {5, -7, 2147483647, -2147483647 - 1};
    write_npy(p, 3, "{'descr': '<i4', 'fortran_order': False, 'shape': (2, 2), }", v, sizeof v);
    ra_npy f;
    assert_int_equal(ra_npy_open(&f, p), RA_OK);
    assert_int_equal(f.dtype, RA_DT_I32);
    int32_t back[4];
    assert_int_equal(ra_npy_read_i32(&f, 0, 4, back), RA_OK);
    assert_memory_equal(back, v, sizeof v);
    ra_npy_close(&f);
    unlink(p);
}

/* More elements than one conversion chunk, read whole and across a chunk edge. */
static void test_f64_to_f32(void **state)
{
    char p[TMPDIR_CAP];
    tmp(state, p, sizeof p, "f64.npy");
    enum { N = 10000 };
    double *d = malloc(N * sizeof *d);
    float *back = malloc(N * sizeof *back);
    assert_non_null(d);
    assert_non_null(back);
    for (int i = 0; i < N; i++) d[i] = (i - 5000) * 0.1 + 1e-9;
    write_npy(p, 1, "{'descr': '<f8', 'fortran_order': False, 'shape': (100, 100), }", d, N * sizeof *d);
    ra_npy f;
    assert_int_equal(ra_npy_open(&f, p), RA_OK);
    assert_int_equal(f.dtype, RA_DT_F64);
    assert_int_equal(ra_npy_read_f32(&f, 0, N, back), RA_OK);
    for (int i = 0; i < N; i++) assert_true(back[i] == (float)d[i]);
    assert_int_equal(ra_npy_read_f32(&f, 4000, 300, back), RA_OK);
    for (int i = 0; i < 300; i++) assert_true(back[i] == (float)d[4000 + i]);
    ra_npy_close(&f);

    float *all = NULL;
    assert_int_equal(ra_npy_load_f32(p, NULL, &all), RA_OK);
    assert_true(all[9999] == (float)d[9999]);
    free(all);

    /* as float64 (compare): the file's values exactly, also beyond float32's range */
    double *wide = malloc(N * sizeof *wide);
    assert_non_null(wide);
    d[7] = 1e39, d[8] = -5e38;
    write_npy(p, 1, "{'descr': '<f8', 'fortran_order': False, 'shape': (100, 100), }", d, N * sizeof *d);
    assert_int_equal(ra_npy_open(&f, p), RA_OK);
    assert_int_equal(ra_npy_read_f64(&f, 0, N, wide), RA_OK);
    assert_memory_equal(wide, d, N * sizeof *d);
    assert_int_equal(ra_npy_read_f64(&f, 9990, 10, wide), RA_OK);
    assert_true(wide[9] == d[9999]);
    assert_int_not_equal(ra_npy_read_f64(&f, 9995, 10, wide), RA_OK); /* past the end */
    ra_npy_close(&f);
    free(wide);
    free(d);
    free(back);
    unlink(p);
}

/* float32 widened to float64 exactly, across the reader's 32 KiB chunks */
static void test_f32_as_f64(void **state)
{
    char p[TMPDIR_CAP], q[TMPDIR_CAP];
    tmp(state, p, sizeof p, "f32wide.npy");
    tmp(state, q, sizeof q, "i32wide.npy");
    enum { N = 20001 };
    float *x = malloc(N * sizeof *x);
    double *w = malloc(N * sizeof *w);
    assert_non_null(x);
    assert_non_null(w);
    for (int i = 0; i < N; i++) x[i] = (float)(i * 0.37) - 3.0e38f * (i == N - 1);
    const int64_t shape[1] = {N};
    assert_int_equal(ra_npy_save_f32(p, 1, shape, x), RA_OK);
    ra_npy f;
    assert_int_equal(ra_npy_open(&f, p), RA_OK);
    assert_int_equal(ra_npy_read_f64(&f, 0, N, w), RA_OK);
    for (int i = 0; i < N; i++) assert_true(w[i] == (double)x[i]);
    ra_npy_close(&f);
    const int32_t v[3] = {1, 2, 3};
    const int64_t s3[1] = {3};
    assert_int_equal(ra_npy_save_i32(q, 1, s3, v), RA_OK);
    assert_int_equal(ra_npy_open(&f, q), RA_OK);
    assert_error(ra_npy_read_f64(&f, 0, 3, w), RA_ERR_FORMAT, q, "dtype is int32");
    ra_npy_close(&f);
    free(x);
    free(w);
    unlink(p);
    unlink(q);
}

static void test_i64_to_i32(void **state)
{
    char p[TMPDIR_CAP], q[TMPDIR_CAP];
    tmp(state, p, sizeof p, "i64.npy");
    tmp(state, q, sizeof q, "i64big.npy");
    const int64_t v[4] = {0, -1, INT32_MAX, INT32_MIN};
    write_npy(p, 1, "{'descr': '<i8', 'fortran_order': False, 'shape': (4,), }", v, sizeof v);
    ra_npy f;
    int32_t back[8];
    assert_int_equal(ra_npy_open(&f, p), RA_OK);
    assert_int_equal(ra_npy_read_i32(&f, 0, 4, back), RA_OK);
    for (int i = 0; i < 4; i++) assert_int_equal(back[i], v[i]);
    ra_npy_close(&f);

    const int64_t big[8] = {1, 2, 3, 4, 5, 3000000000LL, 7, 8};
    write_npy(q, 1, "{'descr': '<i8', 'fortran_order': False, 'shape': (8,), }", big, sizeof big);
    assert_int_equal(ra_npy_open(&f, q), RA_OK);
    assert_error(ra_npy_read_i32(&f, 0, 8, back), RA_ERR_FORMAT, q, "element 5 ");
    assert_non_null(strstr(ra_last_error(), "3000000000"));
    assert_int_equal(ra_npy_read_i32(&f, 0, 5, back), RA_OK); /* the part before it is fine */
    assert_int_equal(ra_npy_read_i32(&f, 6, 2, back), RA_OK);
    assert_int_equal(back[1], 8);
    ra_npy_close(&f);
    unlink(p);
    unlink(q);
}

static void test_i32_save_and_wrong_kind(void **state)
{
    char p[TMPDIR_CAP], q[TMPDIR_CAP];
    tmp(state, p, sizeof p, "i32.npy");
    tmp(state, q, sizeof q, "f32.npy");
    const int64_t shape[1] = {3};
    const int32_t v[3] = {10, -20, 30};
    assert_int_equal(ra_npy_save_i32(p, 1, shape, v), RA_OK);
    ra_npy f;
    assert_int_equal(ra_npy_open(&f, p), RA_OK);
    assert_int_equal(f.dtype, RA_DT_I32);
    int32_t back[3];
    float fb[3];
    assert_int_equal(ra_npy_read_i32(&f, 0, 3, back), RA_OK);
    assert_memory_equal(back, v, sizeof v);
    assert_error(ra_npy_read_f32(&f, 0, 3, fb), RA_ERR_FORMAT, p, "dtype is int32");
    ra_npy_close(&f);
    float *all = NULL;
    assert_error(ra_npy_load_f32(p, NULL, &all), RA_ERR_FORMAT, p, "'<i4'");
    assert_null(all);

    assert_int_equal(ra_npy_save_f32(q, 1, shape, six), RA_OK);
    assert_int_equal(ra_npy_open(&f, q), RA_OK);
    assert_error(ra_npy_read_i32(&f, 0, 3, back), RA_ERR_FORMAT, q, "dtype is float32");
    ra_npy_close(&f);
    unlink(p);
    unlink(q);
}

static void test_subrange(void **state)
{
    char p[TMPDIR_CAP];
    tmp(state, p, sizeof p, "range.npy");
    float data[1000], back[200];
    for (int i = 0; i < 1000; i++) data[i] = (float)i;
    const int64_t shape[3] = {10, 10, 10};
    assert_int_equal(ra_npy_save_f32(p, 3, shape, data), RA_OK);
    ra_npy f;
    assert_int_equal(ra_npy_open(&f, p), RA_OK);
    assert_int_equal(ra_npy_read_f32(&f, 333, 123, back), RA_OK);
    assert_memory_equal(back, data + 333, 123 * sizeof(float));
    assert_int_equal(ra_npy_read_f32(&f, 999, 1, back), RA_OK);
    assert_true(back[0] == 999.0f);
    assert_int_equal(ra_npy_read_f32(&f, 1000, 0, back), RA_OK);
    assert_error(ra_npy_read_f32(&f, 990, 11, back), RA_ERR_ARG, p, "outside");
    assert_error(ra_npy_read_f32(&f, -1, 2, back), RA_ERR_ARG, p, "outside");
    assert_error(ra_npy_read_f32(&f, 0, INT64_MAX, back), RA_ERR_ARG, p, "outside");
    ra_npy_close(&f);
    assert_error(ra_npy_read_f32(&f, 0, 1, back), RA_ERR_ARG, p, "not open");
    unlink(p);
}

static void test_key_orders_and_spacing(void **state)
{
    static const char *const dicts[] = {
        "{'shape': (2, 3), 'fortran_order': False, 'descr': '<f4'}",
        "{ 'fortran_order' :False,'descr':'<f4' ,  'shape':( 2,3, ) , }",
        "{\"descr\": \"<f4\", \"fortran_order\": False, \"shape\": (2, 3)}",
        "{'descr': '=f4', 'shape': (2L, 3L), 'fortran_order': False, }",
        "{'descr':'<f4','fortran_order':False,'shape':(2,3)}",
    };
    char p[TMPDIR_CAP];
    tmp(state, p, sizeof p, "keys.npy");
    for (size_t k = 0; k < sizeof dicts / sizeof dicts[0]; k++) {
        write_npy(p, 1, dicts[k], six, sizeof six);
        ra_npy f;
        if (ra_npy_open(&f, p) != RA_OK) fail_msg("dict %zu rejected: %s", k, ra_last_error());
        assert_int_equal(f.ndim, 2);
        assert_int_equal(f.shape[0], 2);
        assert_int_equal(f.shape[1], 3);
        float back[6];
        assert_int_equal(ra_npy_read_f32(&f, 0, 6, back), RA_OK);
        assert_memory_equal(back, six, sizeof six);
        ra_npy_close(&f);
    }
    /* no alignment padding at all: just the dict and '\n' */
    const char *h = "{'descr': '<f4', 'fortran_order': False, 'shape': (6,)}\n";
    write_npy_raw(p, 1, 0, h, strlen(h), six, sizeof six);
    ra_npy f;
    assert_int_equal(ra_npy_open(&f, p), RA_OK);
    assert_int_equal(f.data_offset, 10 + (int64_t)strlen(h));
    ra_npy_close(&f);
    unlink(p);
}

static void test_0d_and_1d_shapes(void **state)
{
    char p[TMPDIR_CAP];
    tmp(state, p, sizeof p, "shapes.npy");
    const double one = 2.5;
    write_npy(p, 1, "{'descr': '<f8', 'fortran_order': False, 'shape': (), }", &one, sizeof one);
    ra_npy f;
    float x = 0;
    assert_int_equal(ra_npy_open(&f, p), RA_OK);
    assert_int_equal(f.ndim, 0);
    assert_int_equal(f.count, 1);
    assert_int_equal(ra_npy_read_f32(&f, 0, 1, &x), RA_OK);
    assert_true(x == 2.5f);
    ra_npy_close(&f);

    write_npy(p, 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (5,), }", six, 5 * sizeof(float));
    assert_int_equal(ra_npy_open(&f, p), RA_OK);
    assert_int_equal(f.ndim, 1);
    assert_int_equal(f.count, 5);
    ra_npy_close(&f);

    write_npy(p, 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (3, 0), }", NULL, 0);
    assert_int_equal(ra_npy_open(&f, p), RA_OK);
    assert_int_equal(f.count, 0);
    assert_int_equal(ra_npy_read_f32(&f, 0, 0, NULL), RA_OK);
    ra_npy_close(&f);

    /* 0-d through the writer */
    float *back = NULL;
    ra_npy info;
    assert_int_equal(ra_npy_save_f32(p, 0, NULL, six + 2), RA_OK);
    assert_int_equal(ra_npy_load_f32(p, &info, &back), RA_OK);
    assert_int_equal(info.ndim, 0);
    assert_int_equal(info.count, 1);
    assert_true(back[0] == six[2]);
    free(back);
    unlink(p);
}

/* A zero extent makes an empty array, and its other extents still obey
 * numpy's rule: their byte count fits in int64 (numpy 1.24 makes
 * np.zeros((2**61 - 1, 0), 'f4') and refuses (2**61, 0) and (0, 2**60, 2)
 * as too big; np.load refuses such headers too). Both sides of the limit,
 * for float32 and float64, with the zero first, last and between; a huge
 * extent before the zero was once refused as "too many elements", and
 * later accepted past numpy's limit (fuzz_npy: (2^63-1, 3, 0)). */
static void test_zero_extent_with_huge_ones(void **state)
{
    static const char *const empty[] = {
        "{'descr': '<f4', 'fortran_order': False, 'shape': (2305843009213693951, 0), }",
        "{'descr': '<f8', 'fortran_order': False, 'shape': (0, 1152921504606846975), }",
        "{'descr': '<f4', 'fortran_order': False, 'shape': (1073741824, 0, 2147483647), }",
    };
    static const char *const too_big[] = {
        "{'descr': '<f4', 'fortran_order': False, 'shape': (2305843009213693952, 0), }",
        "{'descr': '<f8', 'fortran_order': False, 'shape': (0, 1152921504606846976), }",
        "{'descr': '<f4', 'fortran_order': False, 'shape': (0, 1152921504606846976, 2), }",
        "{'descr': '<f8', 'fortran_order': False, 'shape': (9223372036854775807, 3, 0, 1, 1), }",
        "{'descr': '<f4', 'fortran_order': False, 'shape': (4611686018427387904, 4611686018427387904, 0), }",
    };
    char p[TMPDIR_CAP];
    tmp(state, p, sizeof p, "zero_extent.npy");
    for (size_t k = 0; k < sizeof empty / sizeof empty[0]; k++) {
        write_npy(p, 1, empty[k], NULL, 0);
        ra_npy f;
        ra_status s = ra_npy_open(&f, p);
        if (s != RA_OK) fail_msg("case %zu (%s): status %d, message \"%s\"", k, empty[k], s, ra_last_error());
        assert_int_equal(f.count, 0);
        assert_int_equal(ra_npy_read_f32(&f, 0, 0, NULL), RA_OK);
        ra_npy_close(&f);
    }
    for (size_t k = 0; k < sizeof too_big / sizeof too_big[0]; k++) {
        write_npy(p, 1, too_big[k], NULL, 0);
        expect_open_error(p, RA_ERR_FORMAT, "is empty, but the byte count of its non-zero extents overflows int64");
    }
    write_npy(p, 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (4611686018427387904, 4), }", NULL, 0);
    expect_open_error(p, RA_ERR_FORMAT, "too many elements");
    unlink(p);
}

/* Bytes after the data are accepted (np.save can append arrays to one file). */
static void test_trailing_bytes_accepted(void **state)
{
    char p[TMPDIR_CAP];
    tmp(state, p, sizeof p, "trail.npy");
    float data[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    write_npy(p, 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (6,), }", data, sizeof data);
    ra_npy f;
    assert_int_equal(ra_npy_open(&f, p), RA_OK);
    assert_int_equal(f.count, 6);
    ra_npy_close(&f);
    unlink(p);
}

/* ---- rejected files -------------------------------------------------- */

static void test_bad_magic(void **state)
{
    char p[TMPDIR_CAP];
    tmp(state, p, sizeof p, "magic.npy");
    unsigned char buf[256];
    size_t n = numpy_2x3_bytes(buf);
    buf[5] = 'Z';
    write_file(p, buf, n);
    expect_open_error(p, RA_ERR_FORMAT, "not a .npy file (bad magic");
    write_file(p, "PK\x03", 3);
    expect_open_error(p, RA_ERR_FORMAT, "bad magic");
    write_file(p, "", 0);
    expect_open_error(p, RA_ERR_FORMAT, "bad magic");
    unlink(p);
}

static void test_bad_version(void **state)
{
    char p[TMPDIR_CAP];
    tmp(state, p, sizeof p, "version.npy");
    const char *h = "{'descr': '<f4', 'fortran_order': False, 'shape': (6,), }\n";
    write_npy_raw(p, 4, 0, h, strlen(h), six, sizeof six);
    expect_open_error(p, RA_ERR_FORMAT, "version 4.0");
    write_npy_raw(p, 1, 1, h, strlen(h), six, sizeof six);
    expect_open_error(p, RA_ERR_FORMAT, "version 1.1");
    write_npy_raw(p, 0, 0, h, strlen(h), six, sizeof six);
    expect_open_error(p, RA_ERR_FORMAT, "version 0.0");
    write_file(p, "\x93NUMPY\x01\x00\x40", 9);
    expect_open_error(p, RA_ERR_FORMAT, "preamble");
    write_file(p, "\x93NUMPY\x02", 7);
    expect_open_error(p, RA_ERR_FORMAT, "truncated");
    unlink(p);
}

static void test_fortran_order(void **state)
{
    char p[TMPDIR_CAP];
    tmp(state, p, sizeof p, "fortran.npy");
    write_npy(p, 1, "{'descr': '<f4', 'fortran_order': True, 'shape': (2, 3), }", six, sizeof six);
    expect_open_error(p, RA_ERR_FORMAT, "Fortran-ordered arrays are not supported");
    assert_non_null(strstr(ra_last_error(), "np.ascontiguousarray"));
    unlink(p);
}

static void test_unsupported_dtypes(void **state)
{
    static const struct { const char *descr, *word; } cases[] = {
        {"<f2", "'<f2'"}, {">f4", "big-endian"}, {">i8", "'>i8'"}, {"<c8", "'<c8'"},
        {"|f4", "'|f4'"}, {"<u8", "'<u8'"}, {"|b1", "'|b1'"}, {"f4", "dtype 'f4'"},
    };
    char p[TMPDIR_CAP], dict[160];
    tmp(state, p, sizeof p, "dtype.npy");
    unsigned char zeros[64] = {0};
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        snprintf(dict, sizeof dict, "{'descr': '%s', 'fortran_order': False, 'shape': (2, 3), }", cases[k].descr);
        write_npy(p, 1, dict, zeros, sizeof zeros);
        expect_open_error(p, RA_ERR_FORMAT, cases[k].word);
        assert_non_null(strstr(ra_last_error(), "unsupported dtype"));
        assert_non_null(strstr(ra_last_error(), "'<f4'")); /* lists what is supported */
    }
    write_npy(p, 1, "{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (2,), }", zeros, 8);
    expect_open_error(p, RA_ERR_FORMAT, "structured");
    unlink(p);
}

static void test_malformed_headers(void **state)
{
    static const struct { const char *dict, *word; } cases[] = {
        {"'descr': '<f4', 'fortran_order': False, 'shape': (6,), }", "'{'"},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (6,), ", "end of header"},
        {"{'descr': '<f4', 'fortran_order': False}", "'shape' is missing"},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (6,), 'x': 1}", "unexpected key 'x'"},
        {"{'descr': '<f4', 'descr': '<f4', 'fortran_order': False, 'shape': (6,)}", "twice"},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (6)}", "not a tuple"},
        {"{'descr': '<f4', 'fortran_order': 0, 'shape': (6,)}", "True or False"},
        {"{'descr': '<f4, 'fortran_order': False, 'shape': (6,)}", "malformed"},
        {"{'descr': '<f4' 'fortran_order': False, 'shape': (6,)}", "',' or '}'"},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (6,)} x", "padding"},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (2 3)}", "',' or ')'"},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (a,)}", "integer"},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': [6]}", "'('"},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (-3,)}", "negative dimension -3"},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (1,1,1,1,1,1,1,1,1)}", "more than 8 dimensions"},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999999999999,)}", "overflows"},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (4611686018427387904, 4)}", "overflows"},
    };
    char p[TMPDIR_CAP];
    tmp(state, p, sizeof p, "malformed.npy");
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        write_npy(p, 1, cases[k].dict, six, sizeof six);
        ra_npy f;
        ra_clear_error();
        ra_status s = ra_npy_open(&f, p);
        if (s != RA_ERR_FORMAT || !strstr(ra_last_error(), p) || !strstr(ra_last_error(), cases[k].word))
            fail_msg("case %zu (%s): status %d, message \"%s\", wanted \"%s\"", k, cases[k].dict, s,
                     ra_last_error(), cases[k].word);
    }
    /* a key's raw bytes are escaped: the message reaches a terminal (it held the byte 0xe9 itself) */
    write_npy(p, 1, "{'descr': '<u2', 'fortran_order': False, 'shape': (8,), '\xe9': 1, }", six, sizeof six);
    expect_open_error(p, RA_ERR_FORMAT, "unexpected key '\\xe9'");
    for (const unsigned char *m = (const unsigned char *)ra_last_error(); *m; m++)
        if (*m >= 0x80) fail_msg("byte 0x%02x in \"%s\"", *m, ra_last_error());
    /* no newline at the end of the header */
    const char *h = "{'descr': '<f4', 'fortran_order': False, 'shape': (6,)}    ";
    write_npy_raw(p, 1, 0, h, strlen(h), six, sizeof six);
    expect_open_error(p, RA_ERR_FORMAT, "newline");
    /* a NUL byte inside the header */
    char nul[64];
    const char *d = "{'descr': '<f4', 'fortran_order': False, 'shape': (6,)}";
    memset(nul, ' ', sizeof nul);
    memcpy(nul, d, strlen(d));
    nul[strlen(d)] = '\0';
    nul[63] = '\n';
    write_npy_raw(p, 1, 0, nul, 64, six, sizeof six);
    expect_open_error(p, RA_ERR_FORMAT, "0x00");
    unlink(p);
}

static void test_truncated(void **state)
{
    char p[TMPDIR_CAP];
    tmp(state, p, sizeof p, "trunc.npy");
    float data[15] = {0};
    write_npy(p, 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (4, 4), }", data, sizeof data);
    expect_open_error(p, RA_ERR_FORMAT, "truncated: header promises 64 bytes of data after offset 128, file has 188");

    /* header length runs past the end of the file */
    unsigned char buf[200];
    memset(buf, ' ', sizeof buf);
    memcpy(buf, "\x93NUMPY\x01\x00\xe8\x03", 10); /* 1000-byte header */
    write_file(p, buf, sizeof buf);
    expect_open_error(p, RA_ERR_FORMAT, "header length 1000");
    unlink(p);

    char missing[TMPDIR_CAP];
    tmp(state, missing, sizeof missing, "no_such.npy");
    expect_open_error(missing, RA_ERR_IO, "cannot open");
}

/* Inputs that are not regular files are refused by name at once: a FIFO
 * with no writer would block a plain open() forever, a directory would give
 * a confusing read error. */
static void test_fifo_and_directory_refused(void **state)
{
    char p[TMPDIR_CAP];
    tmp(state, p, sizeof p, "fifo.npy");
    assert_int_equal(mkfifo(p, 0600), 0);
    expect_open_error(p, RA_ERR_IO, "is a FIFO");
    unlink(p);
    tmp(state, p, sizeof p, "dir.npy");
    assert_int_equal(mkdir(p, 0700), 0);
    expect_open_error(p, RA_ERR_IO, "is a directory");
    rmdir(p);
}

/* A stale "<path>.tmp" that is a symlink is replaced, never followed: the
 * file it points to keeps its bytes. */
static void test_stale_tmp_symlink_not_followed(void **state)
{
    char p[TMPDIR_CAP], part[TMPDIR_CAP + 8], victim[TMPDIR_CAP];
    tmp(state, p, sizeof p, "out2.npy");
    tmp(state, victim, sizeof victim, "victim.bin");
    snprintf(part, sizeof part, "%s.tmp", p);
    write_file(victim, "keep", 4);
    assert_int_equal(symlink(victim, part), 0);
    const int64_t shape[1] = {3};
    const float v[3] = {1, 2, 3};
    assert_int_equal(ra_npy_save_f32(p, 1, shape, v), RA_OK);
    struct stat st;
    assert_int_equal(stat(victim, &st), 0);
    assert_int_equal(st.st_size, 4);
    assert_false(exists(part));
    unlink(p);
    unlink(victim);
}

/* ---- writing --------------------------------------------------------- */

static void test_partial_workflow(void **state)
{
    char p[TMPDIR_CAP], part[TMPDIR_CAP + 8];
    tmp(state, p, sizeof p, "out.npy");
    snprintf(part, sizeof part, "%s.tmp", p);
    const int64_t shape[2] = {3, 4};
    float rows[12];
    for (int i = 0; i < 12; i++) rows[i] = (float)(i * i) - 0.5f;

    ra_npy a, b;
    assert_int_equal(ra_npy_create_f32(&a, p, 2, shape), RA_OK);
    assert_true(exists(part));
    assert_false(exists(p));
    assert_non_null(strstr(a.path, ".tmp"));
    /* a second writer (another process in real use) opens the same partial */
    assert_int_equal(ra_npy_open_partial(&b, p, 2, shape), RA_OK);
    assert_int_equal(b.data_offset, a.data_offset);
    assert_int_equal(ra_npy_write_f32(&b, 8, 4, rows + 8), RA_OK);
    assert_int_equal(ra_npy_write_f32(&a, 0, 8, rows), RA_OK);
    assert_error(ra_npy_write_f32(&a, 10, 4, rows), RA_ERR_ARG, part, "outside");
    assert_int_equal(ra_npy_sync_close(&a), RA_OK);
    assert_int_equal(ra_npy_sync_close(&b), RA_OK);
    assert_int_equal(a.fd, -1);
    assert_error(ra_npy_sync_close(&a), RA_ERR_ARG, part, "not open");
    assert_false(exists(p));
    assert_int_equal(ra_npy_commit(p), RA_OK);
    assert_false(exists(part));

    ra_npy f;
    float back[12];
    assert_int_equal(ra_npy_open(&f, p), RA_OK);
    assert_int_equal(f.count, 12);
    assert_int_equal(f.data_offset, 128);
    assert_int_equal(ra_npy_read_f32(&f, 0, 12, back), RA_OK);
    assert_memory_equal(back, rows, sizeof rows);
    ra_npy_close(&f);

    /* committing again: the partial is gone, message names both files */
    assert_error(ra_npy_commit(p), RA_ERR_IO, part, "rename");
    assert_non_null(strstr(ra_last_error(), " to "));
    unlink(p);
}

static void test_abort_removes_partial(void **state)
{
    char p[TMPDIR_CAP], part[TMPDIR_CAP + 8];
    tmp(state, p, sizeof p, "aborted.npy");
    snprintf(part, sizeof part, "%s.tmp", p);
    const int64_t shape[1] = {100};
    ra_npy a;
    assert_int_equal(ra_npy_create_f32(&a, p, 1, shape), RA_OK);
    assert_int_equal(ra_npy_sync_close(&a), RA_OK);
    assert_true(exists(part));
    ra_fail(RA_ERR_IO, "here", 1, "the original error");
    ra_npy_abort(p);
    assert_false(exists(part));
    assert_false(exists(p));
    ra_npy_abort(p); /* nothing left: still quiet */
    assert_string_equal(ra_last_error(), "the original error");
}

static void test_open_partial_mismatch(void **state)
{
    char p[TMPDIR_CAP], part[TMPDIR_CAP + 8];
    tmp(state, p, sizeof p, "mismatch.npy");
    snprintf(part, sizeof part, "%s.tmp", p);
    const int64_t shape[2] = {3, 4}, other[2] = {4, 3}, flat[1] = {12};
    ra_npy a, b;
    assert_int_equal(ra_npy_create_f32(&a, p, 2, shape), RA_OK);
    assert_error(ra_npy_open_partial(&b, p, 2, other), RA_ERR_SHAPE, part, "[3, 4], expected [4, 3]");
    assert_int_equal(b.fd, -1);
    assert_error(ra_npy_open_partial(&b, p, 1, flat), RA_ERR_SHAPE, part, "expected [12]");
    assert_int_equal(ra_npy_sync_close(&a), RA_OK);
    ra_npy_abort(p);

    char missing[TMPDIR_CAP];
    tmp(state, missing, sizeof missing, "never.npy");
    assert_error(ra_npy_open_partial(&b, missing, 2, shape), RA_ERR_IO, "never.npy.tmp", "cannot open");

    /* a partial of the wrong dtype */
    const int32_t v[12] = {0};
    write_npy(part, 1, "{'descr': '<i4', 'fortran_order': False, 'shape': (3, 4), }", v, sizeof v);
    assert_error(ra_npy_open_partial(&b, p, 2, shape), RA_ERR_FORMAT, part, "expected float32");
    unlink(part);

    const int64_t bad[1] = {-1};
    assert_error(ra_npy_create_f32(&a, p, 1, bad), RA_ERR_ARG, part, "expected >= 0");
    assert_error(ra_npy_create_f32(&a, p, RA_NPY_MAX_DIMS + 1, shape), RA_ERR_ARG, part, "ndim");
    /* the writers keep numpy's size rule too: an empty shape past it is refused
     * before any file is made; at the limit it writes a header-only array */
    const int64_t past[2] = {INT64_C(1) << 61, 0}, limit[2] = {(INT64_C(1) << 61) - 1, 0};
    const char *const big = "is empty, but the byte count of its non-zero extents overflows int64";
    assert_error(ra_npy_create_f32(&a, p, 2, past), RA_ERR_ARG, part, big);
    assert_error(ra_npy_save_f32(p, 2, past, NULL), RA_ERR_ARG, part, big);
    assert_error(ra_npy_save_i32(p, 2, past, NULL), RA_ERR_ARG, part, big);
    assert_false(exists(part));
    assert_false(exists(p));
    assert_int_equal(ra_npy_save_f32(p, 2, limit, NULL), RA_OK);
    assert_int_equal(ra_npy_open(&b, p), RA_OK);
    assert_int_equal(b.count, 0);
    assert_true(b.shape[0] == limit[0] && b.shape[1] == 0);
    ra_npy_close(&b);
    unlink(p);
}

/* ---- small things ---------------------------------------------------- */

static void test_shape_str(void **state)
{
    (void)state;
    char buf[64];
    const int64_t s[3] = {4, 128, 64};
    assert_string_equal(ra_shape_str(buf, sizeof buf, 3, s), "[4, 128, 64]");
    assert_string_equal(ra_shape_str(buf, sizeof buf, 0, NULL), "[]");
    assert_string_equal(ra_shape_str(buf, sizeof buf, 1, s), "[4]");
    assert_string_equal(ra_shape_str(buf, 8, 3, s), "[4, ...");
    assert_string_equal(ra_shape_str(buf, 12, 3, s), "[4, 128,...");
    assert_string_equal(ra_shape_str(buf, 13, 3, s), "[4, 128, 64]");
    assert_string_equal(ra_shape_str(buf, 1, 3, s), "");
    assert_string_equal(ra_shape_str(buf, 0, 3, s), "");
}

static void test_dtype_names_and_zeroed_close(void **state)
{
    (void)state;
    assert_string_equal(ra_dtype_name(RA_DT_F32), "float32");
    assert_string_equal(ra_dtype_name(RA_DT_I64), "int64");
    assert_int_equal(ra_dtype_size(RA_DT_F64), 8);
    assert_int_equal(ra_dtype_size(RA_DT_I32), 4);
    /* a zeroed handle has fd 0; closing it must not close stdin */
    struct stat st;
    int had_stdin = fstat(0, &st) == 0;
    ra_npy z;
    memset(&z, 0, sizeof z);
    ra_npy_close(&z);
    assert_int_equal(z.fd, -1);
    assert_int_equal(fstat(0, &st) == 0, had_stdin);
    ra_npy_close(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip_f32),
        cmocka_unit_test(test_numpy_v1_file),
        cmocka_unit_test(test_v2_header),
        cmocka_unit_test(test_v3_header),
        cmocka_unit_test(test_f64_to_f32),
        cmocka_unit_test(test_f32_as_f64),
        cmocka_unit_test(test_i64_to_i32),
        cmocka_unit_test(test_i32_save_and_wrong_kind),
        cmocka_unit_test(test_subrange),
        cmocka_unit_test(test_key_orders_and_spacing),
        cmocka_unit_test(test_0d_and_1d_shapes),
        cmocka_unit_test(test_zero_extent_with_huge_ones),
        cmocka_unit_test(test_trailing_bytes_accepted),
        cmocka_unit_test(test_bad_magic),
        cmocka_unit_test(test_bad_version),
        cmocka_unit_test(test_fortran_order),
        cmocka_unit_test(test_unsupported_dtypes),
        cmocka_unit_test(test_malformed_headers),
        cmocka_unit_test(test_truncated),
        cmocka_unit_test(test_fifo_and_directory_refused),
        cmocka_unit_test(test_stale_tmp_symlink_not_followed),
        cmocka_unit_test(test_partial_workflow),
        cmocka_unit_test(test_abort_removes_partial),
        cmocka_unit_test(test_open_partial_mismatch),
        cmocka_unit_test(test_shape_str),
        cmocka_unit_test(test_dtype_names_and_zeroed_close),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
