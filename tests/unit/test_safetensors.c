/* test_safetensors.c - unit tests of the safetensors reader and writer
 * (src/core/safetensors.c, its JSON parser src/core/json.c; docs/design.md §14):
 * - the writer's files read back (values, shapes, order, metadata, the
 *   8-byte aligned header padded with spaces, scalars and empty tensors)
 *   and it refuses bad specs without leaving a file;
 * - F16 and BF16 to float32 against hand-computed bit patterns (normal,
 *   subnormal, signed zero, infinities, NaN payloads), directly and through
 *   a file;
 * - every refusal of a crafted file, each naming the file and the tensor
 *   or key: header length (short file, past the end, absurd, tiny), JSON
 *   (syntax, NUL, bad UTF-8, lone surrogate, \u0000, nesting, duplicate
 *   keys, trailing bytes), entries (not an object, unknown or missing keys,
 *   dtype unknown, unsupported or not a string, shapes negative, fractional,
 *   too many dimensions, overflowing), sizes against data_offsets, offsets
 *   past the data, overlapping, leaving a gap or trailing bytes, empty
 *   names, bad metadata, non-regular files, a file replaced after opening;
 * - sharded models: the index and its shards, and each way they can
 *   disagree or point outside the directory. */
#include "checkpoint_helpers.h"

#include <math.h>
#include <unistd.h>

#include "ringattn/safetensors.h"

static int group_setup(void **state) { return fixture_make(state, "test_safetensors"); }

/* A safetensors file: header text (its length prefixed) then data_len bytes
 * (data, or a pattern when data is NULL). */
static void put_st(const char *path, const char *header, const void *data, size_t data_len)
{
    size_t n = strlen(header);
    unsigned char *b = malloc(8 + n + data_len + 1);
    assert_non_null(b);
    for (int i = 0; i < 8; i++) b[i] = (unsigned char)((uint64_t)n >> (8 * i));
    memcpy(b + 8, header, n);
    for (size_t i = 0; i < data_len; i++) b[8 + n + i] = data ? ((const unsigned char *)data)[i] : (unsigned char)i;
    write_file(path, b, 8 + n + data_len);
    free(b);
}

/* ra_st_open(path) fails with code and a message naming path and every word. */
static void refused(const char *path, ra_status code, const char *w1, const char *w2)
{
    ra_st *st = (ra_st *)path;
    ra_clear_error();
    ra_status got = ra_st_open(&st, path);
    assert_null(st);
    assert_error(got, code, path, w1);
    if (w2) assert_error(got, code, path, w2);
}

/* One header, refused. */
static void refused_header(void **state, const char *header, size_t data_len, const char *w1, const char *w2)
{
    char p[TMPDIR_CAP];
    tmp(state, p, sizeof p, "bad.safetensors");
    put_st(p, header, NULL, data_len);
    refused(p, RA_ERR_FORMAT, w1, w2);
    unlink(p);
}

static uint32_t bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

/* ---- conversions -------------------------------------------------------------- */

static const struct {
    uint16_t h;
    uint32_t f; /* expected float32 bits */
} f16_cases[] = {
    { 0x0000, 0x00000000 }, /* +0 */
    { 0x8000, 0x80000000 }, /* -0 */
    { 0x3c00, 0x3f800000 }, /* 1 */
    { 0xc000, 0xc0000000 }, /* -2 */
    { 0x3555, 0x3eaaa000 }, /* 0.333251953125 */
    { 0x7bff, 0x477fe000 }, /* 65504, the largest */
    { 0x0400, 0x38800000 }, /* 2^-14, the smallest normal */
    { 0x0001, 0x33800000 }, /* 2^-24, the smallest subnormal */
    { 0x03ff, 0x387fc000 }, /* 1023 * 2^-24, the largest subnormal */
    { 0x8001, 0xb3800000 }, /* -2^-24 */
    { 0x0155, 0x37aa8000 }, /* 341 * 2^-24 */
    { 0x7c00, 0x7f800000 }, /* +inf */
    { 0xfc00, 0xff800000 }, /* -inf */
    { 0x7e00, 0x7fc00000 }, /* quiet NaN */
    { 0x7c01, 0x7f802000 }, /* signalling NaN, payload 1 kept */
    { 0xfe55, 0xffcaa000 }, /* negative NaN with payload */
};

static const struct {
    uint16_t b;
    uint32_t f;
} bf16_cases[] = {
    { 0x3f80, 0x3f800000 }, /* 1 */
    { 0xc040, 0xc0400000 }, /* -3 */
    { 0x4049, 0x40490000 }, /* 3.140625 */
    { 0x0001, 0x00010000 }, /* a float32 subnormal */
    { 0x8000, 0x80000000 }, /* -0 */
    { 0x7f7f, 0x7f7f0000 }, /* the largest */
    { 0x7f80, 0x7f800000 }, /* +inf */
    { 0xff80, 0xff800000 }, /* -inf */
    { 0x7fc1, 0x7fc10000 }, /* NaN with payload */
};

#define NF16 (sizeof f16_cases / sizeof *f16_cases)
#define NBF16 (sizeof bf16_cases / sizeof *bf16_cases)

static void test_conversions(void **state)
{
    (void)state;
    for (size_t i = 0; i < NF16; i++) {
        float f = ra_st_f16_to_f32(f16_cases[i].h);
        if (bits(f) != f16_cases[i].f)
            fail_msg("F16 0x%04x -> 0x%08x, expected 0x%08x", f16_cases[i].h, bits(f), f16_cases[i].f);
    }
    for (size_t i = 0; i < NBF16; i++) {
        float f = ra_st_bf16_to_f32(bf16_cases[i].b);
        if (bits(f) != bf16_cases[i].f)
            fail_msg("BF16 0x%04x -> 0x%08x, expected 0x%08x", bf16_cases[i].b, bits(f), bf16_cases[i].f);
    }
    /* spot values as numbers too */
    assert_true(ra_st_f16_to_f32(0x0001) == 0x1p-24f);
    assert_true(ra_st_f16_to_f32(0x03ff) == 1023 * 0x1p-24f);
    assert_true(ra_st_f16_to_f32(0x3555) == 0.333251953125f);
    assert_true(isinf(ra_st_f16_to_f32(0xfc00)) && ra_st_f16_to_f32(0xfc00) < 0);
    assert_true(isnan(ra_st_f16_to_f32(0x7c01)));
    /* every finite F16 is exact: back to F16 by scaling is the identity on the value */
    for (uint32_t h = 0; h < 0x7c00; h++) {
        float f = ra_st_f16_to_f32((uint16_t)h);
        uint32_t e = h >> 10, m = h & 0x3ff;
        double want = e ? ldexp(1.0 + m / 1024.0, (int)e - 15) : ldexp((double)m, -24);
        if ((double)f != want) fail_msg("F16 0x%04x -> %.10g, expected %.10g", h, (double)f, want);
    }
}

/* F16 and BF16 tensors of the hand cases, through a file. */
static void test_conversions_file(void **state)
{
    char p[TMPDIR_CAP], hdr[512];
    tmp(state, p, sizeof p, "half.safetensors");
    uint16_t data[NF16 + NBF16];
    for (size_t i = 0; i < NF16; i++) data[i] = f16_cases[i].h;
    for (size_t i = 0; i < NBF16; i++) data[NF16 + i] = bf16_cases[i].b;
    snprintf(hdr, sizeof hdr,
             "{\"h\": {\"dtype\": \"F16\", \"shape\": [%zu], \"data_offsets\": [0, %zu]},"
             " \"b\": {\"dtype\": \"BF16\", \"shape\": [1, %zu], \"data_offsets\": [%zu, %zu]}}",
             NF16, 2 * NF16, NBF16, 2 * NF16, 2 * (NF16 + NBF16));
    put_st(p, hdr, data, sizeof data);
    ra_st *st;
    assert_int_equal(ra_st_open(&st, p), RA_OK);
    const ra_st_tensor *h = ra_st_find(st, "h"), *b = ra_st_find(st, "b");
    assert_non_null(h);
    assert_non_null(b);
    assert_int_equal(h->dtype, RA_ST_F16);
    assert_int_equal(b->dtype, RA_ST_BF16);
    assert_int_equal(b->ndim, 2);
    assert_int_equal(b->count, (int64_t)NBF16);
    float out[NF16 + NBF16];
    assert_int_equal(ra_st_read(st, h, out), RA_OK);
    for (size_t i = 0; i < NF16; i++) assert_int_equal(bits(out[i]), f16_cases[i].f);
    assert_int_equal(ra_st_read(st, b, out), RA_OK);
    for (size_t i = 0; i < NBF16; i++) assert_int_equal(bits(out[i]), bf16_cases[i].f);
    ra_st_close(st);
    unlink(p);
}

/* ---- the writer ---------------------------------------------------------------- */

static void test_write_read(void **state)
{
    char p[TMPDIR_CAP], t[TMPDIR_CAP];
    tmp(state, p, sizeof p, "w.safetensors");
    float a[6] = { 1, -2, 3.5f, 0x1p-149f, -0.0f, 1e30f }, s = 7, e = 0;
    const ra_st_spec spec[] = {
        { "zeta.weight", 2, { 2, 3 } }, { "alpha \"quoted\"\\", 0, { 0 } }, { "empty", 2, { 0, 5 } },
        { "caf\xc3\xa9", 1, { 1 } },
    };
    static const char *const meta[] = { "format", "pt", "note", "line\nbreak" };
    ra_st_writer *w;
    assert_int_equal(ra_st_write_begin(&w, p, spec, 4, meta, 2), RA_OK);
    assert_int_equal(ra_st_write_next(w, a), RA_OK);
    assert_int_equal(ra_st_write_next(w, &s), RA_OK);
    assert_int_equal(ra_st_write_next(w, NULL), RA_OK); /* no values */
    assert_int_equal(ra_st_write_next(w, &e), RA_OK);
    assert_int_equal(ra_st_write_end(w, RA_OK), RA_OK);
    assert_false(exists(tmp_name(t, sizeof t, p)));
    size_t n;
    unsigned char *b = read_file(p, &n);
    uint64_t hl = 0;
    for (int i = 7; i >= 0; i--) hl = hl << 8 | b[i];
    assert_int_equal((8 + hl) % 8, 0);
    assert_int_equal(n, 8 + hl + 4 * 8);
    assert_int_equal(b[8], '{');
    size_t last = 8 + hl - 1;
    while (b[last] == ' ') last--;
    assert_int_equal(b[last], '}');
    free(b);
    ra_st *st;
    assert_int_equal(ra_st_open(&st, p), RA_OK);
    assert_int_equal(ra_st_count(st), 4);
    /* sorted by name */
    assert_string_equal(ra_st_tensor_at(st, 0)->name, "alpha \"quoted\"\\");
    assert_string_equal(ra_st_tensor_at(st, 1)->name, "caf\xc3\xa9");
    assert_string_equal(ra_st_tensor_at(st, 3)->name, "zeta.weight");
    assert_string_equal(ra_st_metadata(st, "format"), "pt");
    assert_string_equal(ra_st_metadata(st, "note"), "line\nbreak");
    assert_null(ra_st_metadata(st, "absent"));
    const ra_st_tensor *z = ra_st_find(st, "zeta.weight");
    assert_int_equal(z->ndim, 2);
    assert_int_equal(z->shape[0], 2);
    assert_int_equal(z->shape[1], 3);
    float r[6];
    assert_int_equal(ra_st_read(st, z, r), RA_OK);
    assert_memory_equal(r, a, sizeof a);
    const ra_st_tensor *sc = ra_st_find(st, "alpha \"quoted\"\\");
    assert_int_equal(sc->ndim, 0);
    assert_int_equal(sc->count, 1);
    assert_int_equal(ra_st_read(st, sc, r), RA_OK);
    assert_true(r[0] == 7.0f);
    assert_int_equal(ra_st_find(st, "empty")->count, 0);
    assert_int_equal(ra_st_read(st, ra_st_find(st, "empty"), r), RA_OK);
    assert_null(ra_st_find(st, "nope"));
    ra_st_close(st);
    unlink(p);
}

static void test_writer_refuses(void **state)
{
    char p[TMPDIR_CAP], t[TMPDIR_CAP];
    tmp(state, p, sizeof p, "wbad.safetensors");
    ra_st_writer *w = (ra_st_writer *)p;
    const ra_st_spec dup[] = { { "a", 1, { 1 } }, { "a", 1, { 2 } } };
    assert_error(ra_st_write_begin(&w, p, dup, 2, NULL, 0), RA_ERR_ARG, p, "\"a\" given twice");
    assert_null(w);
    const ra_st_spec empty[] = { { "", 1, { 1 } } };
    assert_error(ra_st_write_begin(&w, p, empty, 1, NULL, 0), RA_ERR_ARG, p, "has no name");
    const ra_st_spec utf[] = { { "bad\xff", 1, { 1 } } };
    assert_error(ra_st_write_begin(&w, p, utf, 1, NULL, 0), RA_ERR_ARG, p, "not valid UTF-8");
    const ra_st_spec meta[] = { { "__metadata__", 1, { 1 } } };
    assert_error(ra_st_write_begin(&w, p, meta, 1, NULL, 0), RA_ERR_ARG, p, "not a tensor name");
    const ra_st_spec neg[] = { { "n", 2, { 3, -1 } } };
    assert_error(ra_st_write_begin(&w, p, neg, 1, NULL, 0), RA_ERR_ARG, p, "negative");
    assert_false(exists(p));
    /* an unfinished file is not committed */
    const ra_st_spec two[] = { { "a", 1, { 1 } }, { "b", 1, { 1 } } };
    float v = 1;
    assert_int_equal(ra_st_write_begin(&w, p, two, 2, NULL, 0), RA_OK);
    assert_int_equal(ra_st_write_next(w, &v), RA_OK);
    assert_error(ra_st_write_end(w, RA_OK), RA_ERR_ARG, p, "1 of 2 tensors written");
    assert_false(exists(p));
    assert_false(exists(tmp_name(t, sizeof t, p)));
}

/* ---- refused files ---------------------------------------------------------------- */

static void test_header_length(void **state)
{
    char p[TMPDIR_CAP];
    tmp(state, p, sizeof p, "len.safetensors");
    write_file(p, "\x02\0\0", 3);
    refused(p, RA_ERR_FORMAT, "3 bytes, too short", NULL);
    unsigned char b[16] = { 100, 0, 0, 0, 0, 0, 0, 0, '{', '}' };
    write_file(p, b, 10);
    refused(p, RA_ERR_FORMAT, "header length 100 runs past the end of the file (10 bytes)", NULL);
    unsigned char big[16] = { 0, 0, 0, 0, 0, 0, 0, 0x80, '{', '}' };
    write_file(p, big, 10);
    refused(p, RA_ERR_FORMAT, "header length 9223372036854775808 is absurd", NULL);
    unsigned char cap[16] = { 0x01, 0xe1, 0xf5, 0x05, 0, 0, 0, 0, '{', '}' }; /* 100000001 */
    write_file(p, cap, 10);
    refused(p, RA_ERR_FORMAT, "is absurd (at most 100000000 bytes)", NULL);
    unsigned char one[16] = { 1, 0, 0, 0, 0, 0, 0, 0, '{' };
    write_file(p, one, 9);
    refused(p, RA_ERR_FORMAT, "header length 1 is too short", NULL);
    unlink(p);
}

static void test_bad_json(void **state)
{
    refused_header(state, "{\"a\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0, 4]}", 4,
                   "invalid JSON", "unexpected end inside an object");
    refused_header(state, "{\"a\" {}}", 0, "invalid JSON at line 1, column 6 (byte 5)", "expected ':'");
    refused_header(state, "{\"a\": [1, 2,]}", 0, "invalid JSON", "unexpected ']'");
    refused_header(state, "{} x", 0, "invalid JSON", "'x' after the value");
    refused_header(state, "[]", 0, "the header is an array, not an object", NULL);
    refused_header(state, "{\"a\": 01}", 0, "invalid JSON", "expected ',' or '}', found '1'");
    refused_header(state, "{\"a\": 1e999}", 0, "invalid JSON", "out of range");
    refused_header(state, "{\"a\": -}", 0, "invalid JSON", "a digit must follow '-'");
    refused_header(state, "{\"a\": tru}", 0, "invalid JSON", "not true, false or null");
    refused_header(state, "{\"a\x01\": 1}", 0, "invalid JSON", "byte 0x01 inside a string");
    refused_header(state, "{\"a\\q\": 1}", 0, "invalid JSON", "invalid escape \\'q'");
    refused_header(state, "{\"\xc0\xaf\": 1}", 0, "invalid JSON", "invalid UTF-8");
    refused_header(state, "{\"\xed\xa0\x80\": 1}", 0, "invalid JSON", "invalid UTF-8"); /* an encoded surrogate */
    refused_header(state, "{\"\\ud800x\": 1}", 0, "invalid JSON", "without a low surrogate");
    refused_header(state, "{\"\\udc00\": 1}", 0, "invalid JSON", "lone low surrogate");
    refused_header(state, "{\"a\\u0000b\": 1}", 0, "invalid JSON", "NUL character");
    refused_header(state, "{\"a\\u12\": 1}", 0, "invalid JSON", "four hex digits");
    refused_header(state, "{\"a\": 1, \"b\": 2, \"a\": 3}", 0, "invalid JSON at line 1, column 18",
                   "key \"a\" appears twice");
    /* a NUL byte in the header */
    char p[TMPDIR_CAP];
    tmp(state, p, sizeof p, "nul.safetensors");
    unsigned char nul[16] = { 4, 0, 0, 0, 0, 0, 0, 0, '{', 0, '}', ' ' };
    write_file(p, nul, 12);
    refused(p, RA_ERR_FORMAT, "invalid JSON", "a NUL byte");
    /* nesting deeper than 64 */
    char deep[400] = "{\"__metadata__\": ";
    for (int i = 0; i < 70; i++) strcat(deep, "[");
    for (int i = 0; i < 70; i++) strcat(deep, "]");
    strcat(deep, "}");
    refused_header(state, deep, 0, "invalid JSON", "nested deeper than 64 levels");
}

static void test_bad_entries(void **state)
{
    refused_header(state, "{\"w\": \"F32\"}", 0, "tensor \"w\" is a string, not an object", NULL);
    refused_header(state, "{\"w\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0, 4], \"x\": 1}}", 4,
                   "tensor \"w\": unknown key \"x\"", NULL);
    refused_header(state, "{\"w\": {\"dtype\": \"F32\", \"data_offsets\": [0, 4]}}", 4, "tensor \"w\" has no \"shape\"",
                   NULL);
    refused_header(state, "{\"w\": {\"shape\": [1], \"data_offsets\": [0, 4]}}", 4, "tensor \"w\" has no \"dtype\"",
                   NULL);
    refused_header(state, "{\"w\": {\"dtype\": \"F32\", \"shape\": [1]}}", 4, "tensor \"w\" has no \"data_offsets\"",
                   NULL);
    refused_header(state, "{\"w\": {\"dtype\": \"F128\", \"shape\": [1], \"data_offsets\": [0, 16]}}", 16,
                   "tensor \"w\": unknown dtype \"F128\"", NULL);
    refused_header(state, "{\"w\": {\"dtype\": \"I64\", \"shape\": [1], \"data_offsets\": [0, 8]}}", 8,
                   "tensor \"w\": dtype I64 is not supported", NULL);
    refused_header(state, "{\"w\": {\"dtype\": 4, \"shape\": [1], \"data_offsets\": [0, 4]}}", 4,
                   "tensor \"w\": dtype is a number, not a string", NULL);
    refused_header(state, "{\"w\": {\"dtype\": \"F32\", \"shape\": 1, \"data_offsets\": [0, 4]}}", 4,
                   "tensor \"w\": shape is a number, not an array", NULL);
    refused_header(state, "{\"w\": {\"dtype\": \"F32\", \"shape\": [2, -1], \"data_offsets\": [0, 4]}}", 4,
                   "tensor \"w\": shape dimension 1 is not a non-negative integer", NULL);
    refused_header(state, "{\"w\": {\"dtype\": \"F32\", \"shape\": [1.5], \"data_offsets\": [0, 4]}}", 4,
                   "shape dimension 0 is not a non-negative integer", NULL);
    refused_header(state, "{\"w\": {\"dtype\": \"F32\", \"shape\": [1,1,1,1,1,1,1,1,1], \"data_offsets\": [0, 4]}}", 4,
                   "tensor \"w\": shape has 9 dimensions (at most 8)", NULL);
    refused_header(state,
                   "{\"w\": {\"dtype\": \"F32\", \"shape\": [1099511627776, 1099511627776], \"data_offsets\": [0, 4]}}",
                   4, "tensor \"w\": shape [1099511627776, 1099511627776] has more than 2^63 elements", NULL);
    refused_header(state, "{\"w\": {\"dtype\": \"F32\", \"shape\": [4611686018427387904], \"data_offsets\": [0, 4]}}",
                   4, "tensor \"w\": shape [4611686018427387904] of F32 is larger than any file", NULL);
    refused_header(state, "{\"w\": {\"dtype\": \"F32\", \"shape\": [2, 3], \"data_offsets\": [0, 20]}}", 20,
                   "tensor \"w\": shape [2, 3] of F32 needs 24 bytes, but data_offsets [0, 20] hold 20", NULL);
    refused_header(state, "{\"w\": {\"dtype\": \"BF16\", \"shape\": [3], \"data_offsets\": [0, 12]}}", 12,
                   "shape [3] of BF16 needs 6 bytes", NULL);
    refused_header(state, "{\"w\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0]}}", 4,
                   "tensor \"w\": data_offsets must be [BEGIN, END]", NULL);
    refused_header(state, "{\"w\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [-4, 0]}}", 4,
                   "data_offsets must be [BEGIN, END]", NULL);
    refused_header(state, "{\"w\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0, 4.0]}}", 4,
                   "data_offsets must be [BEGIN, END]", NULL);
    refused_header(state, "{\"w\": {\"dtype\": \"F32\", \"shape\": [0], \"data_offsets\": [8, 4]}}", 8,
                   "tensor \"w\": data_offsets [8, 4] end before they begin", NULL);
    refused_header(state, "{\"w\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [0, 8]}}", 4,
                   "tensor \"w\": data_offsets [0, 8] run past the end of the data (4 bytes after the header)", NULL);
    refused_header(state, "{\"\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0, 4]}}", 4,
                   "a tensor has an empty name", NULL);
    refused_header(state, "{\"__metadata__\": {\"a\": 1}}", 0, "__metadata__ key \"a\" is a number, not a string",
                   NULL);
    refused_header(state, "{\"__metadata__\": []}", 0, "__metadata__ is an array, not an object", NULL);
}

static void test_bad_offsets(void **state)
{
    const char *a = "\"a\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [0, 8]}";
    char h[512];
    snprintf(h, sizeof h, "{%s, \"b\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [4, 12]}}", a);
    refused_header(state, h, 12, "tensor \"b\" (data_offsets [4, 12]) overlaps tensor \"a\"", NULL);
    snprintf(h, sizeof h, "{%s, \"b\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [0, 8]}}", a);
    refused_header(state, h, 8, "overlaps tensor", NULL);
    snprintf(h, sizeof h, "{%s, \"b\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [12, 20]}}", a);
    refused_header(state, h, 20, "bytes [8, 12) of the data belong to no tensor (a gap before tensor \"b\")", NULL);
    snprintf(h, sizeof h, "{\"b\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [4, 12]}}");
    refused_header(state, h, 12, "bytes [0, 4) of the data belong to no tensor", NULL);
    snprintf(h, sizeof h, "{%s}", a);
    refused_header(state, h, 11, "3 bytes after the last tensor (\"a\") belong to no tensor", NULL);
    refused_header(state, "{}", 5, "5 bytes of data but no tensor", NULL);
    /* accepted: zero-sized tensors anywhere, in any order of the header */
    char p[TMPDIR_CAP];
    tmp(state, p, sizeof p, "ok.safetensors");
    snprintf(h, sizeof h,
             "{\"z\": {\"dtype\": \"F16\", \"shape\": [0, 4], \"data_offsets\": [8, 8]}, %s, "
             "\"e\": {\"dtype\": \"BF16\", \"shape\": [3, 0], \"data_offsets\": [0, 0]}}", a);
    put_st(p, h, NULL, 8);
    ra_st *st;
    assert_int_equal(ra_st_open(&st, p), RA_OK);
    assert_int_equal(ra_st_count(st), 3);
    ra_st_close(st);
    put_st(p, "{}   ", NULL, 0);
    assert_int_equal(ra_st_open(&st, p), RA_OK);
    assert_int_equal(ra_st_count(st), 0);
    ra_st_close(st);
    unlink(p);
}

static void test_names_decoded(void **state)
{
    char p[TMPDIR_CAP];
    tmp(state, p, sizeof p, "names.safetensors");
    put_st(p, "{\"caf\\u00e9 \\ud83d\\ude00\\n\\/\": {\"dtype\": \"F32\", \"shape\": [], \"data_offsets\": [0, 4]}}",
           NULL, 4);
    ra_st *st;
    assert_int_equal(ra_st_open(&st, p), RA_OK);
    assert_string_equal(ra_st_tensor_at(st, 0)->name, "caf\xc3\xa9 \xf0\x9f\x98\x80\n/");
    ra_st_close(st);
    unlink(p);
}

static void test_not_a_file(void **state)
{
    char p[TMPDIR_CAP];
    tmp(state, p, sizeof p, "fifo.safetensors");
    assert_int_equal(mkfifo(p, 0600), 0);
    refused(p, RA_ERR_IO, "is a FIFO", NULL);
    unlink(p);
    tmp(state, p, sizeof p, "dir.safetensors");
    assert_int_equal(mkdir(p, 0700), 0);
    refused(p, RA_ERR_IO, "directory", NULL);
    rmdir(p);
    tmp(state, p, sizeof p, "absent.safetensors");
    refused(p, RA_ERR_IO, "cannot open", NULL);
}

static void test_replaced_after_open(void **state)
{
    char p[TMPDIR_CAP], q[TMPDIR_CAP];
    tmp(state, p, sizeof p, "r.safetensors");
    tmp(state, q, sizeof q, "r2.safetensors");
    const char *h = "{\"w\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0, 4]}}";
    put_st(p, h, NULL, 4);
    ra_st *st;
    assert_int_equal(ra_st_open(&st, p), RA_OK);
    put_st(q, h, NULL, 4);
    assert_int_equal(rename(q, p), 0);
    float v;
    assert_error(ra_st_read(st, ra_st_find(st, "w"), &v), RA_ERR_IO, p, "changed since it was opened");
    ra_st_close(st);
    unlink(p);
}

/* ---- sharded models ---------------------------------------------------------------- */

static void shard(const char *dir, const char *file, const char *names)
{
    /* one F32 scalar per comma-separated name */
    char path[TMPDIR_CAP + 64], h[1024] = "{", nm[64];
    int k = 0;
    for (const char *s = names; *s;) {
        const char *e = strchr(s, ',');
        size_t n = e ? (size_t)(e - s) : strlen(s);
        snprintf(nm, sizeof nm, "%.*s", (int)n, s);
        snprintf(h + strlen(h), sizeof h - strlen(h), "%s\"%s\": {\"dtype\": \"F32\", \"shape\": [], "
                 "\"data_offsets\": [%d, %d]}", k ? ", " : "", nm, 4 * k, 4 * k + 4);
        k++;
        s += n + (e ? 1 : 0);
    }
    strcat(h, "}");
    snprintf(path, sizeof path, "%s/%s", dir, file);
    float v[16];
    for (int i = 0; i < 16; i++) v[i] = (float)i;
    put_st(path, h, v, 4 * (size_t)k);
}

static void index_file(const char *dir, const char *text)
{
    char path[TMPDIR_CAP + 64];
    snprintf(path, sizeof path, "%s/model.safetensors.index.json", dir);
    write_file(path, text, strlen(text));
}

static void dir_refused(const char *dir, ra_status code, const char *w1, const char *w2)
{
    ra_st *st = (ra_st *)dir;
    ra_clear_error();
    ra_status got = ra_st_open_dir(&st, dir);
    assert_null(st);
    assert_error(got, code, dir, w1);
    if (w2) assert_error(got, code, dir, w2);
}

static void test_sharded(void **state)
{
    char d[TMPDIR_CAP];
    tmp(state, d, sizeof d, "sharded");
    assert_int_equal(mkdir(d, 0700), 0);
    dir_refused(d, RA_ERR_IO, "holds neither model.safetensors nor model.safetensors.index.json", NULL);
    shard(d, "s1.safetensors", "a,b");
    shard(d, "s2.safetensors", "c");
    index_file(d, "{\"metadata\": {\"total_size\": 12}, \"weight_map\": {\"a\": \"s1.safetensors\", "
                  "\"c\": \"s2.safetensors\", \"b\": \"s1.safetensors\"}}");
    ra_st *st;
    assert_int_equal(ra_st_open_dir(&st, d), RA_OK);
    assert_int_equal(ra_st_count(st), 3);
    assert_int_equal(ra_st_files(st), 2);
    assert_non_null(strstr(ra_st_source(st), "(2 shards)"));
    float v;
    const ra_st_tensor *c = ra_st_find(st, "c");
    assert_non_null(c);
    assert_non_null(strstr(ra_st_file_path(st, c->file), "s2.safetensors"));
    assert_int_equal(ra_st_read(st, c, &v), RA_OK);
    assert_true(v == 0.0f);
    assert_int_equal(ra_st_read(st, ra_st_find(st, "b"), &v), RA_OK);
    assert_true(v == 1.0f);
    ra_st_close(st);

    index_file(d, "{\"weight_map\": {\"a\": \"s1.safetensors\", \"b\": \"s1.safetensors\", \"c\": \"../s2.safetensors\"}}");
    dir_refused(d, RA_ERR_FORMAT, "weight_map[\"c\"] = \"../s2.safetensors\" contains a path separator", NULL);
    index_file(d, "{\"weight_map\": {\"a\": \"/etc/passwd\"}}");
    dir_refused(d, RA_ERR_FORMAT, "contains a path separator", NULL);
    index_file(d, "{\"weight_map\": {\"a\": \"..\"}}");
    dir_refused(d, RA_ERR_FORMAT, "\"..\" is not a file name", NULL);
    index_file(d, "{\"weight_map\": {\"a\": \"\"}}");
    dir_refused(d, RA_ERR_FORMAT, "is empty", NULL);
    index_file(d, "{\"weight_map\": {\"a\": 3}}");
    dir_refused(d, RA_ERR_FORMAT, "weight_map[\"a\"] is a number, not a file name", NULL);
    index_file(d, "{\"weight_map\": {}}");
    dir_refused(d, RA_ERR_FORMAT, "weight_map is empty", NULL);
    index_file(d, "{\"metadata\": {}}");
    dir_refused(d, RA_ERR_FORMAT, "no \"weight_map\"", NULL);
    index_file(d, "{\"weight_map\": []}");
    dir_refused(d, RA_ERR_FORMAT, "weight_map is an array, not an object", NULL);
    index_file(d, "{\"weight_map\": {\"a\": \"s1.safetensors\", \"a\": \"s1.safetensors\"}}");
    dir_refused(d, RA_ERR_FORMAT, "key \"a\" appears twice", NULL);
    /* the map and the shards disagree */
    index_file(d, "{\"weight_map\": {\"a\": \"s1.safetensors\", \"b\": \"s1.safetensors\", \"c\": \"s1.safetensors\"}}");
    dir_refused(d, RA_ERR_FORMAT, "maps tensor \"c\" to s1.safetensors, which does not hold it", NULL);
    index_file(d, "{\"weight_map\": {\"a\": \"s1.safetensors\", \"b\": \"s2.safetensors\", \"c\": \"s2.safetensors\"}}");
    dir_refused(d, RA_ERR_FORMAT, "maps tensor \"b\" to s2.safetensors, but it is in", NULL);
    index_file(d, "{\"weight_map\": {\"a\": \"s1.safetensors\", \"c\": \"s2.safetensors\"}}");
    dir_refused(d, RA_ERR_FORMAT, "holds tensor \"b\", which", "does not map");
    index_file(d, "{\"weight_map\": {\"a\": \"s1.safetensors\", \"b\": \"s1.safetensors\", \"c\": \"s3.safetensors\"}}");
    dir_refused(d, RA_ERR_IO, "s3.safetensors: cannot open", NULL);
    shard(d, "s3.safetensors", "c,b");
    index_file(d, "{\"weight_map\": {\"a\": \"s1.safetensors\", \"b\": \"s1.safetensors\", \"c\": \"s3.safetensors\"}}");
    dir_refused(d, RA_ERR_FORMAT, "tensor \"b\" is in both", NULL);
    index_file(d, "{\"weight_map\": ");
    dir_refused(d, RA_ERR_FORMAT, "invalid JSON", NULL);
    /* model.safetensors wins over the index, as in transformers */
    shard(d, "model.safetensors", "only");
    assert_int_equal(ra_st_open_dir(&st, d), RA_OK);
    assert_int_equal(ra_st_count(st), 1);
    assert_int_equal(ra_st_files(st), 1);
    ra_st_close(st);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_conversions),      cmocka_unit_test(test_conversions_file),
        cmocka_unit_test(test_write_read),       cmocka_unit_test(test_writer_refuses),
        cmocka_unit_test(test_header_length),    cmocka_unit_test(test_bad_json),
        cmocka_unit_test(test_bad_entries),      cmocka_unit_test(test_bad_offsets),
        cmocka_unit_test(test_names_decoded),    cmocka_unit_test(test_not_a_file),
        cmocka_unit_test(test_replaced_after_open), cmocka_unit_test(test_sharded),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
