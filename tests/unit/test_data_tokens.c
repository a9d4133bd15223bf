/* test_data_tokens.c - unit tests for the token sources of src/model/data.c
 * (data.source = tokens, data.val_path): every reader - flat uint16 and
 * uint32, .npy of <u2 <u4 <i4 <i8, llm.c shards of both versions - gives the
 * ids this file wrote, at whatever positions a rank owns; data.val_path is
 * the held-out split; and every refusal (truncated, empty, FIFO, directory,
 * a header the dtype does not match, a shape or dtype .npy cannot hold ids
 * in, llm.c counts that disagree with the size, ids outside model.vocab
 * named by file and element, val_path = path) says what is wrong; the corpus
 * scan of warm starts covers the training tokens once. The
 * references are the arrays written here, never the reader's output. */
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

#include "ringattn/config.h"
#include "ringattn/data.h"
#include "tmpdir.h"

#define L 16
#define N 200   /* tokens per file: (N - 1) / L = 12 windows */
#define BIGV 262144

static char dir[TMPDIR_CAP];

static int setup(void **state)
{
    (void)state;
    return tmpdir_make(dir, "test_data_tokens");
}

static int teardown(void **state)
{
    (void)state;
    return tmpdir_remove(dir);
}

static void assert_contains(const char *hay, const char *needle)
{
    if (!strstr(hay, needle)) fail_msg("expected \"%s\" in the message \"%s\"", needle, hay);
}

/* ---- writing files ------------------------------------------------------------ */

static const char *path_of(const char *name)
{
    static char p[TMPDIR_CAP];
    return tmpdir_path(p, dir, name);
}

static void write_bytes(const char *name, const void *data, size_t n, int append)
{
    FILE *fp = fopen(path_of(name), append ? "ab" : "wb");
    assert_non_null(fp);
    if (n) assert_int_equal(fwrite(data, 1, n, fp), n);
    assert_int_equal(fclose(fp), 0);
}

/* v as an esize-byte little-endian integer at out */
static void put_le(unsigned char *out, int64_t v, int esize)
{
    for (int b = 0; b < esize; b++) out[b] = (unsigned char)((uint64_t)v >> (8 * b));
}

/* A flat file of ids, esize bytes each, after `header` bytes of head. */
static void write_ids(const char *name, const void *head, size_t header, const int64_t *ids, int64_t n, int esize)
{
    unsigned char *buf = malloc(header + (size_t)n * (size_t)esize + 1);
    assert_non_null(buf);
    if (header) memcpy(buf, head, header);
    for (int64_t i = 0; i < n; i++) put_le(buf + header + i * esize, ids[i], esize);
    write_bytes(name, buf, header + (size_t)n * (size_t)esize, 0);
    free(buf);
}

/* A .npy version 1.0 of the given descr and shape text, 128-byte header. */
static void write_npy(const char *name, const char *descr, const char *shape, const int64_t *ids, int64_t n,
                      int esize)
{
    char head[128];
    char dict[160];
    int len = snprintf(dict, sizeof dict, "{'descr': '%s', 'fortran_order': False, 'shape': %s, }", descr, shape);
    if (len <= 0 || len > 117) fail_msg("test setup: header dict too long");
    memcpy(head, "\x93NUMPY\x01\x00", 8);
    head[8] = 128 - 10, head[9] = 0;
    memset(head + 10, ' ', 118);
    memcpy(head + 10, dict, (size_t)len < 117 ? (size_t)len : 117);
    head[127] = '\n';
    write_ids(name, head, sizeof head, ids, n, esize);
}

/* An llm.c shard: magic, version, count (as given), then ids. */
static void write_llmc(const char *name, uint32_t magic, uint32_t version, int64_t count, const int64_t *ids,
                       int64_t n, int esize)
{
    unsigned char head[1024] = { 0 };
    put_le(head, magic, 4);
    put_le(head + 4, version, 4);
    put_le(head + 8, count, 4);
    write_ids(name, head, sizeof head, ids, n, esize);
}

/* The ids of every test file: a pattern over [0, V) without short periods. */
static int64_t id_at(int64_t i, int64_t V) { return (i * 7919 + i / 3) % V; }

static int64_t *ids_for(int64_t n, int64_t V)
{
    int64_t *ids = malloc(sizeof(int64_t) * (size_t)n);
    assert_non_null(ids);
    for (int64_t i = 0; i < n; i++) ids[i] = id_at(i, V);
    return ids;
}

/* src into a path field of cap bytes (the test's paths always fit). */
static void set_path(char *dst, size_t cap, const char *src)
{
    size_t n = strlen(src);
    assert_true(n < cap);
    memcpy(dst, src, n + 1);
}

/* ---- configs and reading ------------------------------------------------------ */

/* A finished tokens config over path; vocab set after finish (the schema's
 * model.vocab bound belongs to the model, not to the reader). */
static void tok_config(ra_config *c, const char *path, const char *dtype, int vocab, const char *val_fraction)
{
    char s[RA_PATH_MAX + 32];
    ra_config_defaults(c);
    const char *sets[] = { "data.source=tokens", "data.seq_len=16", "data.val_fraction=0.1" };
    for (size_t i = 0; i < sizeof sets / sizeof sets[0]; i++) assert_int_equal(ra_config_set(c, sets[i], "t"), RA_OK);
    snprintf(s, sizeof s, "data.path=%s", path);
    assert_int_equal(ra_config_set(c, s, "t"), RA_OK);
    snprintf(s, sizeof s, "data.dtype=%s", dtype);
    assert_int_equal(ra_config_set(c, s, "t"), RA_OK);
    if (ra_config_finish(c) != RA_OK) fail_msg("%s", ra_last_error());
    c->vocab = vocab;
    c->val_fraction = strtof(val_fraction, NULL); /* as eval --data sets it after finish */
}

/* Every window of RA_SPLIT_ALL, read at a few position sets (a whole rank,
 * and scattered runs as zigzag and striped layouts give), equals the ids. */
static void check_all_windows(const ra_config *c, const int64_t *ids, int64_t n)
{
    static const int32_t whole[L] = { 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15 };
    static const int32_t runs[] = { 0, 1, 5, 6, 7, 15 };
    static const int32_t stripes[] = { 1, 3, 5, 7, 9, 11, 13, 15 };
    const struct {
        const int32_t *pos;
        int64_t Lr;
    } sets[] = { { whole, L }, { runs, 6 }, { stripes, 8 } };
    for (size_t k = 0; k < sizeof sets / sizeof sets[0]; k++) {
        ra_data *d;
        if (ra_data_open(&d, c, sets[k].pos, sets[k].Lr) != RA_OK) fail_msg("%s", ra_last_error());
        assert_int_equal(ra_data_windows(d), (n - 1) / L);
        int32_t tok[L], tgt[L];
        for (int64_t w = 0; w < (n - 1) / L; w++) {
            if (ra_data_batch(d, RA_SPLIT_ALL, (uint64_t)w, 1, tok, tgt) != RA_OK) fail_msg("%s", ra_last_error());
            for (int64_t i = 0; i < sets[k].Lr; i++) {
                const int64_t at = w * L + sets[k].pos[i];
                if (tok[i] != ids[at] || tgt[i] != ids[at + 1])
                    fail_msg("set %zu window %lld position %d: read %d -> %d, wrote %lld -> %lld", k, (long long)w,
                             sets[k].pos[i], tok[i], tgt[i], (long long)ids[at], (long long)ids[at + 1]);
            }
        }
        ra_data_close(d);
    }
}

/* ra_data_open on c must fail with code, the message holding every want. */
static void open_fails(const ra_config *c, ra_status code, const char *want1, const char *want2)
{
    int32_t pos = 0;
    ra_data *d = NULL;
    ra_status st = ra_data_open(&d, c, &pos, 1);
    ra_data_close(d);
    if (st != code) fail_msg("expected status %d, got %d: %s", code, st, ra_last_error());
    assert_contains(ra_last_error(), want1);
    if (want2) assert_contains(ra_last_error(), want2);
}

/* ---- the readers ---------------------------------------------------------------- */

static void test_flat_uint16(void **state)
{
    (void)state;
    ra_config *c = malloc(sizeof *c);
    int64_t *ids = ids_for(N, 50257);
    write_ids("train.bin", NULL, 0, ids, N, 2);
    tok_config(c, path_of("train.bin"), "uint16", 50257, "0");
    check_all_windows(c, ids, N);
    free(ids);
    /* the whole uint16 range with a vocabulary of 65536 */
    ids = ids_for(N, 65536);
    ids[7] = 65535;
    write_ids("full16.bin", NULL, 0, ids, N, 2);
    tok_config(c, path_of("full16.bin"), "uint16", 65536, "0");
    check_all_windows(c, ids, N);
    free(ids);
    free(c);
}

static void test_flat_uint32(void **state)
{
    (void)state;
    ra_config *c = malloc(sizeof *c);
    int64_t *ids = ids_for(N, BIGV);
    ids[3] = BIGV - 1; /* the largest id of the largest vocabulary */
    write_ids("train32.bin", NULL, 0, ids, N, 4);
    tok_config(c, path_of("train32.bin"), "uint32", BIGV, "0");
    check_all_windows(c, ids, N);
    free(ids);
    free(c);
}

static void test_npy(void **state)
{
    (void)state;
    ra_config *c = malloc(sizeof *c);
    const struct {
        const char *descr;
        int esize;
        int64_t V;
    } kinds[] = { { "<u2", 2, 65536 }, { "<u4", 4, BIGV }, { "<i4", 4, BIGV }, { "<i8", 8, BIGV }, { "=u2", 2, 300 } };
    for (size_t k = 0; k < sizeof kinds / sizeof kinds[0]; k++) {
        int64_t *ids = ids_for(N, kinds[k].V);
        char shape[32];
        snprintf(shape, sizeof shape, "(%d,)", N);
        write_npy("t.npy", kinds[k].descr, shape, ids, N, kinds[k].esize);
        tok_config(c, path_of("t.npy"), "auto", (int)kinds[k].V, "0");
        check_all_windows(c, ids, N);
        tok_config(c, path_of("t.npy"), "npy", (int)kinds[k].V, "0");
        check_all_windows(c, ids, N);
        free(ids);
    }
    free(c);
}

static void test_llmc(void **state)
{
    (void)state;
    ra_config *c = malloc(sizeof *c);
    int64_t *ids = ids_for(N, 50257);
    write_llmc("shard_000.bin", 20240520u, 1, N, ids, N, 2);
    tok_config(c, path_of("shard_000.bin"), "auto", 50257, "0");
    check_all_windows(c, ids, N);
    tok_config(c, path_of("shard_000.bin"), "llmc", 50257, "0");
    check_all_windows(c, ids, N);
    free(ids);
    ids = ids_for(N, 128256); /* Llama 3's uint32 shards */
    write_llmc("llama.bin", 20240801u, 7, N, ids, N, 4);
    tok_config(c, path_of("llama.bin"), "auto", 128256, "0");
    check_all_windows(c, ids, N);
    free(ids);
    free(c);
}

/* The token file API on its own: kinds, counts, a read across chunks. */
static void test_token_file_api(void **state)
{
    (void)state;
    const int64_t n = 20000; /* more than one 16 KiB read */
    int64_t *ids = ids_for(n, 60000);
    write_ids("api.bin", NULL, 0, ids, n, 2);
    ra_token_file f;
    if (ra_token_file_open(&f, path_of("api.bin"), "--prompt-tokens", RA_TOKEN_U16) != RA_OK)
        fail_msg("%s", ra_last_error());
    assert_int_equal(f.count, n);
    assert_int_equal(f.esize, 2);
    assert_string_equal(f.kind, "uint16");
    int32_t *got = malloc(sizeof(int32_t) * (size_t)n);
    assert_non_null(got);
    assert_int_equal(ra_token_file_read(&f, 3, n - 3, 60000, got), RA_OK);
    for (int64_t i = 3; i < n; i++) assert_int_equal(got[i - 3], ids[i]);
    /* past the end: a caller's bug, refused */
    assert_int_equal(ra_token_file_read(&f, n - 1, 2, 60000, got), RA_ERR_INTERNAL);
    ra_token_file_close(&f);
    ra_token_file_close(&f); /* twice is safe */
    free(got);
    free(ids);
}

/* data.val_path: all of data.path trains, the other file is held out. */
static void test_val_path(void **state)
{
    (void)state;
    ra_config *c = malloc(sizeof *c);
    int64_t train[N], val[L + 1];
    for (int64_t i = 0; i < N; i++) train[i] = 2 * (i % 500);       /* even ids */
    for (int64_t i = 0; i < L + 1; i++) val[i] = 2 * (i % 500) + 1; /* odd ids */
    write_ids("tr.bin", NULL, 0, train, N, 2);
    write_ids("va.bin", NULL, 0, val, L + 1, 2);
    tok_config(c, path_of("tr.bin"), "uint16", 1000, "0.1");
    set_path(c->val_path, sizeof c->val_path, path_of("va.bin"));
    int32_t pos[L];
    for (int i = 0; i < L; i++) pos[i] = i;
    ra_data *d;
    if (ra_data_open(&d, c, pos, L) != RA_OK) fail_msg("%s", ra_last_error());
    int32_t tok[4 * L], tgt[4 * L];
    /* held out: va.bin has one window, at offset 0 */
    assert_int_equal(ra_data_batch(d, RA_SPLIT_VAL, 0, 4, tok, tgt), RA_OK);
    for (int b = 0; b < 4; b++)
        for (int i = 0; i < L; i++) {
            assert_int_equal(tok[b * L + i], val[i]);
            assert_int_equal(tgt[b * L + i], val[i + 1]);
        }
    /* training: windows of all of tr.bin (val_fraction does not cut it), even ids only */
    int64_t last = 0;
    for (uint64_t idx = 0; idx < 64; idx++) {
        assert_int_equal(ra_data_batch(d, RA_SPLIT_TRAIN, idx, 1, tok, tgt), RA_OK);
        for (int i = 0; i < L; i++) assert_int_equal(tok[i] % 2, 0);
        int64_t off = -1;
        for (int64_t o = 0; o + L < N && off < 0; o++)
            if (train[o] == tok[0] && train[o + 1] == tok[1] && train[o + 2] == tok[2]) off = o;
        assert_true(off >= 0);
        if (off > last) last = off;
    }
    assert_true(last >= (int64_t)(0.9 * N) - L); /* the tail of tr.bin trains too */
    ra_data_close(d);

    /* a held-out file shorter than one sequence */
    write_ids("va_short.bin", NULL, 0, val, L, 2);
    set_path(c->val_path, sizeof c->val_path, path_of("va_short.bin"));
    open_fails(c, RA_ERR_ARG, "data.val_path", "16 tokens are too few for one held-out sequence");
    /* the same file under another name, and a hard link to it */
    char other[TMPDIR_CAP], link_path[TMPDIR_CAP];
    set_path(other, sizeof other - 16, dir);
    strcat(other, "/./tr.bin");
    set_path(c->val_path, sizeof c->val_path, other);
    open_fails(c, RA_ERR_ARG, "is the same file as data.path", NULL);
    tmpdir_path(link_path, dir, "tr_link.bin");
    assert_int_equal(link(path_of("tr.bin"), link_path), 0);
    set_path(c->val_path, sizeof c->val_path, link_path);
    open_fails(c, RA_ERR_ARG, "is the same file as data.path", NULL);
    /* byte files take a val_path too */
    snprintf(c->source, sizeof c->source, "file");
    c->source_id = RA_SOURCE_FILE;
    c->dtype_id = RA_TOKEN_AUTO;
    c->vocab = 256;
    set_path(c->val_path, sizeof c->val_path, path_of("va.bin"));
    unsigned char vbytes[2 * (L + 1)];
    for (int64_t i = 0; i < L + 1; i++) put_le(vbytes + 2 * i, val[i], 2);
    if (ra_data_open(&d, c, pos, L) != RA_OK) fail_msg("%s", ra_last_error());
    for (uint64_t idx = 0; idx < 8; idx++) {
        assert_int_equal(ra_data_batch(d, RA_SPLIT_VAL, idx, 1, tok, tgt), RA_OK);
        int found = 0;
        for (int o = 0; o + L < (int)sizeof vbytes && !found; o++) {
            found = 1;
            for (int i = 0; i < L; i++) found &= tok[i] == vbytes[o + i] && tgt[i] == vbytes[o + i + 1];
        }
        assert_true(found);
    }
    ra_data_close(d);
    free(c);
}

/* ra_data_scan over a token file: at any number of shares, every training
 * token (never a held-out one) is a centre exactly once, with its own id. */
typedef struct {
    const int64_t *ids;
    int64_t next, margin; /* the next centre expected */
    int bad;
} scan_ctx;

static ra_status visit(void *ctx, const int32_t *tok, int64_t n, int64_t lo, int64_t hi)
{
    scan_ctx *c = ctx;
    const int64_t first = c->next - lo; /* element of tok[0] */
    for (int64_t i = 0; i < n; i++) c->bad += tok[i] != c->ids[first + i];
    c->bad += lo > c->margin || first < 0;
    c->next += hi - lo;
    return RA_OK;
}

static void test_scan(void **state)
{
    (void)state;
    ra_config *c = malloc(sizeof *c);
    int64_t *ids = ids_for(N, 3000);
    write_ids("scan.bin", NULL, 0, ids, N, 2);
    tok_config(c, path_of("scan.bin"), "uint16", 3000, "0.25");
    const int64_t train = (int64_t)((double)N * (1.0 - (double)0.25f));
    int32_t pos = 0;
    for (int size = 1; size <= 3; size++) {
        scan_ctx ctx = { ids, 0, 2, 0 };
        for (int rank = 0; rank < size; rank++) {
            ra_data *d;
            assert_int_equal(ra_data_open(&d, c, &pos, 1), RA_OK);
            ctx.next = train * rank / size;
            if (ra_data_scan(d, rank, size, 2, 0, visit, &ctx) != RA_OK) fail_msg("%s", ra_last_error());
            assert_int_equal(ctx.next, train * (rank + 1) / size);
            ra_data_close(d);
        }
        assert_int_equal(ctx.bad, 0);
    }
    free(ids);
    free(c);
}

/* ---- refusals ------------------------------------------------------------------- */

static void test_vocab_by_element(void **state)
{
    (void)state;
    ra_config *c = malloc(sizeof *c);
    int64_t *ids = ids_for(N, 1000);
    const int64_t bad_at = 50;
    ids[bad_at] = 1500;
    write_ids("bad16.bin", NULL, 0, ids, N, 2);
    tok_config(c, path_of("bad16.bin"), "uint16", 1000, "0");
    int errors = 0;
    for (int w = 0; w < (N - 1) / L; w++)
        for (int32_t p = 0; p < L; p++) {
            ra_data *d;
            int32_t tok, tgt;
            assert_int_equal(ra_data_open(&d, c, &p, 1), RA_OK);
            const int64_t at = (int64_t)w * L + p;
            ra_status st = ra_data_batch(d, RA_SPLIT_ALL, (uint64_t)w, 1, &tok, &tgt);
            if (at == bad_at || at + 1 == bad_at) {
                assert_int_equal(st, RA_ERR_ARG);
                assert_contains(ra_last_error(), "data.path");
                assert_contains(ra_last_error(), path_of("bad16.bin"));
                assert_contains(ra_last_error(),
                                "token 1500 at element 50 (uint16, byte offset 100) is outside the vocabulary [0, 1000)");
                errors++;
            } else {
                if (st != RA_OK) fail_msg("window %d position %d: %s", w, p, ra_last_error());
                assert_int_equal(tok, ids[at]);
            }
            ra_data_close(d);
        }
    assert_int_equal(errors, 2); /* as the token of one position and the target of the one before */
    /* the largest uint32 and a negative int32 .npy id, named by element */
    ids[bad_at] = 4294967295LL;
    write_ids("bad32.bin", NULL, 0, ids, N, 4);
    tok_config(c, path_of("bad32.bin"), "uint32", BIGV, "0");
    int32_t pos[L], tok[L], tgt[L];
    for (int i = 0; i < L; i++) pos[i] = i;
    ra_data *d;
    assert_int_equal(ra_data_open(&d, c, pos, L), RA_OK);
    assert_int_equal(ra_data_batch(d, RA_SPLIT_ALL, bad_at / L, 1, tok, tgt), RA_ERR_ARG);
    assert_contains(ra_last_error(), "token 4294967295 at element 50 (uint32, byte offset 200)");
    ra_data_close(d);
    ids[bad_at] = -3;
    char shape[32];
    snprintf(shape, sizeof shape, "(%d,)", N);
    write_npy("neg.npy", "<i4", shape, ids, N, 4);
    tok_config(c, path_of("neg.npy"), "auto", 1000, "0");
    assert_int_equal(ra_data_open(&d, c, pos, L), RA_OK);
    assert_int_equal(ra_data_batch(d, RA_SPLIT_ALL, bad_at / L, 1, tok, tgt), RA_ERR_ARG);
    assert_contains(ra_last_error(), "token -3 at element 50 (.npy int32, byte offset 328)");
    ra_data_close(d);
    ids[bad_at] = (int64_t)1 << 40;
    write_npy("big.npy", "<i8", shape, ids, N, 8);
    tok_config(c, path_of("big.npy"), "npy", BIGV, "0");
    assert_int_equal(ra_data_open(&d, c, pos, L), RA_OK);
    assert_int_equal(ra_data_batch(d, RA_SPLIT_ALL, bad_at / L, 1, tok, tgt), RA_ERR_ARG);
    assert_contains(ra_last_error(), "token 1099511627776 at element 50 (.npy int64");
    ra_data_close(d);
    free(ids);
    free(c);
}

static void test_refused_files(void **state)
{
    (void)state;
    ra_config *c = malloc(sizeof *c);
    int64_t *ids = ids_for(N, 1000);
    char shape[32];
    /* truncated flat files */
    write_ids("odd.bin", NULL, 0, ids, N, 2);
    write_bytes("odd.bin", "x", 1, 1);
    tok_config(c, path_of("odd.bin"), "uint16", 1000, "0");
    open_fails(c, RA_ERR_FORMAT, "401 bytes is not a whole number of uint16 token ids (2 bytes each)", "truncated");
    write_ids("odd32.bin", NULL, 0, ids, N, 2); /* 400 bytes: fine as uint16, 100 uint32 */
    write_bytes("odd32.bin", "xy", 2, 1);
    tok_config(c, path_of("odd32.bin"), "uint32", 1000, "0");
    open_fails(c, RA_ERR_FORMAT, "402 bytes is not a whole number of uint32 token ids (4 bytes each)", NULL);
    /* empty */
    write_bytes("empty.bin", NULL, 0, 0);
    tok_config(c, path_of("empty.bin"), "uint16", 1000, "0");
    open_fails(c, RA_ERR_FORMAT, "is empty", "data.path");
    /* too short for a window */
    write_ids("short.bin", NULL, 0, ids, L, 2);
    tok_config(c, path_of("short.bin"), "uint16", 1000, "0");
    open_fails(c, RA_ERR_ARG, "16 tokens are too few for one sequence of data.seq_len = 16", NULL);
    /* held-out tail too short */
    write_ids("tail.bin", NULL, 0, ids, 100, 2);
    tok_config(c, path_of("tail.bin"), "uint16", 1000, "0.1");
    open_fails(c, RA_ERR_ARG, "the held-out part has 11 tokens (data.val_fraction = 0.1 of 100 tokens)", NULL);
    /* a FIFO and a directory, refused without blocking */
    char fifo[TMPDIR_CAP];
    tmpdir_path(fifo, dir, "fifo");
    assert_int_equal(mkfifo(fifo, 0600), 0);
    tok_config(c, fifo, "uint16", 1000, "0");
    open_fails(c, RA_ERR_IO, "is a FIFO", NULL);
    tok_config(c, dir, "auto", 1000, "0");
    open_fails(c, RA_ERR_IO, "is a directory", NULL);
    /* auto on a flat file: no header to go by */
    write_ids("flat.bin", NULL, 0, ids, N, 2);
    tok_config(c, path_of("flat.bin"), "auto", 1000, "0");
    open_fails(c, RA_ERR_FORMAT, "neither a .npy file nor an llm.c shard", "set data.dtype = uint16");
    tok_config(c, path_of("flat.bin"), "npy", 1000, "0");
    open_fails(c, RA_ERR_FORMAT, "data.dtype = npy, but the file does not start with the .npy magic", NULL);
    tok_config(c, path_of("flat.bin"), "llmc", 1000, "0");
    open_fails(c, RA_ERR_FORMAT, "not an llm.c shard: header[0] is", NULL);
    /* a flat dtype on a file with a header */
    snprintf(shape, sizeof shape, "(%d,)", N);
    write_npy("h.npy", "<u2", shape, ids, N, 2);
    tok_config(c, path_of("h.npy"), "uint16", 1000, "0");
    open_fails(c, RA_ERR_FORMAT, "starts with the .npy magic, but data.dtype = uint16", "set data.dtype = auto (or npy)");
    write_llmc("h_llmc.bin", 20240520u, 1, N, ids, N, 2);
    tok_config(c, path_of("h_llmc.bin"), "uint32", 1000, "0");
    open_fails(c, RA_ERR_FORMAT, "starts with the llm.c magic, but data.dtype = uint32", NULL);
    /* .npy that cannot hold token ids */
    write_npy("f.npy", "<f4", shape, ids, N, 4);
    tok_config(c, path_of("f.npy"), "auto", 1000, "0");
    open_fails(c, RA_ERR_FORMAT, "dtype float32 is not an integer type", NULL);
    write_npy("2d.npy", "<u2", "(10, 20)", ids, N, 2);
    tok_config(c, path_of("2d.npy"), "auto", 1000, "0");
    open_fails(c, RA_ERR_FORMAT, "must be 1-D; it has shape [10, 20]", NULL);
    write_npy("trunc.npy", "<u2", "(300,)", ids, N, 2);
    tok_config(c, path_of("trunc.npy"), "auto", 1000, "0");
    open_fails(c, RA_ERR_FORMAT, "data.path", "truncated: header promises 600 bytes");
    write_npy("none.npy", "<u2", "(0,)", ids, 0, 2);
    tok_config(c, path_of("none.npy"), "auto", 1000, "0");
    open_fails(c, RA_ERR_ARG, "0 tokens are too few", NULL);
    write_npy("u8.npy", "<u8", shape, ids, N, 8);
    tok_config(c, path_of("u8.npy"), "auto", 1000, "0");
    open_fails(c, RA_ERR_FORMAT, "unsupported dtype '<u8'", NULL);
    /* llm.c shards whose header disagrees with the file */
    write_llmc("l_trunc.bin", 20240520u, 1, N + 5, ids, N, 2);
    tok_config(c, path_of("l_trunc.bin"), "auto", 1000, "0");
    open_fails(c, RA_ERR_FORMAT, "the llm.c header says 205 tokens (header[2]) of 2 bytes, 1434 bytes with the header",
               "the file has 1424 bytes: truncated");
    write_llmc("l_long.bin", 20240520u, 1, N - 5, ids, N, 2);
    tok_config(c, path_of("l_long.bin"), "auto", 1000, "0");
    open_fails(c, RA_ERR_FORMAT, "says 195 tokens", "bytes after the tokens");
    write_llmc("l_ver.bin", 20240520u, 2, N, ids, N, 2);
    tok_config(c, path_of("l_ver.bin"), "auto", 1000, "0");
    open_fails(c, RA_ERR_FORMAT, "llm.c shard version 2 (header[1]); with magic 20240520 it must be 1", NULL);
    write_llmc("l_zero.bin", 20240801u, 7, 0, ids, 0, 4);
    tok_config(c, path_of("l_zero.bin"), "llmc", 1000, "0");
    open_fails(c, RA_ERR_FORMAT, "the llm.c header says 0 tokens (header[2]); the shard holds none", NULL);
    unsigned char head[8];
    put_le(head, 20240520u, 4);
    put_le(head + 4, 1, 4);
    write_bytes("l_head.bin", head, sizeof head, 0);
    tok_config(c, path_of("l_head.bin"), "auto", 1000, "0");
    open_fails(c, RA_ERR_FORMAT, "truncated: 8 bytes, shorter than the llm.c header of 1024 bytes", NULL);
    free(ids);
    free(c);
}

/* Config checks of the keys themselves (ra_config_finish). */
static void test_config_keys(void **state)
{
    (void)state;
    ra_config *c = malloc(sizeof *c);
    const struct {
        const char *sets[4];
        const char *want;
    } cases[] = {
        { { "data.source=tokens" }, "data.source = tokens needs data.path" },
        { { "data.source=tokens", "data.path=a.bin", "data.val_fraction=0" },
          "needs data.val_fraction > 0 (the held-out part) or data.val_path" },
        { { "data.source=file", "data.path=a.txt", "data.dtype=uint16" }, "data.dtype = uint16 is for data.source = tokens" },
        { { "data.source=tokens", "data.path=a.bin", "data.val_path=a.bin" }, "data.val_path = a.bin is data.path" },
        { { "data.dtype=int8" }, "data.dtype" },
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        ra_config_defaults(c);
        ra_status st = RA_OK;
        for (int i = 0; i < 4 && cases[k].sets[i] && st == RA_OK; i++) st = ra_config_set(c, cases[k].sets[i], "t");
        if (st == RA_OK) st = ra_config_finish(c);
        if (st == RA_OK) fail_msg("case %zu was accepted", k);
        assert_contains(ra_last_error(), cases[k].want);
    }
    /* accepted: val_path with val_fraction 0; every dtype word; the canonical text round trip */
    ra_config_defaults(c);
    const char *ok[] = { "data.source=tokens", "data.path=tr.bin", "data.val_path=va.bin", "data.val_fraction=0",
                         "data.dtype=llmc", "model.vocab=50257" };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) assert_int_equal(ra_config_set(c, ok[i], "t"), RA_OK);
    if (ra_config_finish(c) != RA_OK) fail_msg("%s", ra_last_error());
    assert_int_equal(c->source_id, RA_SOURCE_TOKENS);
    assert_int_equal(c->dtype_id, RA_TOKEN_LLMC);
    char *text = ra_config_text(c);
    assert_non_null(text);
    assert_contains(text, "dtype = llmc");
    assert_contains(text, "val_path = va.bin");
    ra_config *back = malloc(sizeof *back);
    ra_config_defaults(back);
    assert_int_equal(ra_config_parse(back, text, "text"), RA_OK);
    assert_int_equal(ra_config_finish(back), RA_OK);
    assert_memory_equal(c, back, sizeof *c);
    free(text);
    free(back);
    free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_flat_uint16),  cmocka_unit_test(test_flat_uint32),
        cmocka_unit_test(test_npy),          cmocka_unit_test(test_llmc),
        cmocka_unit_test(test_token_file_api), cmocka_unit_test(test_val_path),
        cmocka_unit_test(test_vocab_by_element), cmocka_unit_test(test_refused_files),
        cmocka_unit_test(test_scan),         cmocka_unit_test(test_config_keys),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
