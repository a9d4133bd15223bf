/* test_checkpoint.c - unit tests for checkpoints (src/model/checkpoint.c):
 * valid checkpoints saved and loaded bit for bit (the documented layout
 * decoded independently, peek, overwrite, a stale .tmp after a crash) and
 * saves that fail (missing directory, bad arguments, a write cut short)
 * leaving the previous file as it was; streamed saves and range loads
 * (sharded optimizer states). Refused files (corrupt, crafted,
 * mismatched): test_checkpoint_refused.c. Helpers, the fixture and the
 * independent decoder: checkpoint_helpers.h. */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "ringattn/checkpoint.h"
#include "checkpoint_helpers.h"
#include "tmpdir.h"

static int group_setup(void **state) { return fixture_make(state, "test_checkpoint"); }

/* ---- valid checkpoints ------------------------------------------------- */

static void test_roundtrip(void **state)
{
    char p[TMPDIR_CAP], t[TMPDIR_CAP + 8];
    tmp(state, p, sizeof p, "rt.ckpt");
    model a, b;
    model_init(&a, 7);
    assert_int_equal(ra_ckpt_save(p, config_a, &a.st, a.t, 3), RA_OK);
    assert_false(exists(tmp_name(t, sizeof t, p)));

    sentinel_init(&b);
    char *cfg = NULL;
    ra_status s = ra_ckpt_load(p, &cfg, &b.st, b.t, 3);
    if (s != RA_OK) fail_msg("load: %s", ra_last_error());
    assert_memory_equal(b.p, a.p, sizeof a.p);
    assert_memory_equal(b.m, a.m, sizeof a.m);
    assert_int_equal(((unsigned char *)b.v)[0], SENT); /* 0 values: nothing written */
    assert_memory_equal(&b.st, &a.st, sizeof a.st);
    assert_non_null(cfg);
    assert_string_equal(cfg, config_a);
    free(cfg);

    /* the documented layout, checksum and alignment, decoded independently */
    size_t n;
    layout L;
    unsigned char *f = read_file(p, &n);
    decode(f, n, &L);
    assert_int_equal(L.n, 3);
    assert_int_equal(L.config_len, strlen(config_a));
    assert_memory_equal(f + L.config_off, config_a, L.config_len);
    assert_int_equal(le(f + L.state_off, 8), a.st.step);
    assert_int_equal(le(f + L.state_off + 48, 8), a.st.extra[3]);
    for (unsigned i = 0; i < 3; i++) {
        assert_int_equal(L.data_off[i] % 64, 0);
        assert_int_equal(L.count[i], a.t[i].count);
        if (a.t[i].count) assert_memory_equal(f + L.data_off[i], a.t[i].data, a.t[i].count * 4);
    }
    free(f);

    /* config and state are optional outputs; a NULL config saves as "" */
    assert_int_equal(ra_ckpt_load(p, NULL, NULL, b.t, 3), RA_OK);
    assert_int_equal(ra_ckpt_save(p, NULL, &a.st, a.t, 3), RA_OK);
    assert_int_equal(ra_ckpt_load(p, &cfg, NULL, b.t, 3), RA_OK);
    assert_string_equal(cfg, "");
    free(cfg);
    unlink(p);
}

static void test_no_tensors_and_max_name(void **state)
{
    char p[TMPDIR_CAP];
    tmp(state, p, sizeof p, "empty.ckpt");
    ra_ckpt_state st = {1, 2, 3, {4, 5, 6, 7}}, got;
    assert_int_equal(ra_ckpt_save(p, "x", &st, NULL, 0), RA_OK);
    size_t n;
    unsigned char *f = read_file(p, &n);
    assert_int_equal(n, 28 + 1 + 56 + 4 + 8);
    free(f);
    assert_int_equal(ra_ckpt_load(p, NULL, &got, NULL, 0), RA_OK);
    assert_memory_equal(&got, &st, sizeof st);

    char name[256];
    memset(name, 'w', 255);
    name[255] = '\0';
    float v[3] = {1, 2, 3}, w[3] = {0};
    ra_ckpt_tensor t = {name, v, 3}, u = {name, w, 3};
    assert_int_equal(ra_ckpt_save(p, "x", &st, &t, 1), RA_OK);
    assert_int_equal(ra_ckpt_load(p, NULL, NULL, &u, 1), RA_OK);
    assert_memory_equal(w, v, sizeof v);
    unlink(p);
}

static void test_peek(void **state)
{
    char p[TMPDIR_CAP];
    tmp(state, p, sizeof p, "peek.ckpt");
    model a;
    model_init(&a, 3);
    assert_int_equal(ra_ckpt_save(p, config_a, &a.st, a.t, 3), RA_OK);
    char *cfg = NULL;
    ra_ckpt_state st;
    memset(&st, 0, sizeof st);
    assert_int_equal(ra_ckpt_peek(p, &cfg, &st), RA_OK);
    assert_string_equal(cfg, config_a);
    assert_memory_equal(&st, &a.st, sizeof st);
    free(cfg);
    assert_int_equal(ra_ckpt_peek(p, NULL, NULL), RA_OK);
    unlink(p);
}

/* ra_ckpt_peek_state: the header's state (the history id in extra[0]
 * included) without the checksum pass, so a flipped value byte still
 * reads; a truncated file does not (its length is checked). */
static void test_peek_state(void **state)
{
    char p[TMPDIR_CAP];
    tmp(state, p, sizeof p, "peekstate.ckpt");
    model a;
    model_init(&a, 3);
    a.st.extra[RA_CKPT_HISTORY] = 0x0123456789abcdefull;
    assert_int_equal(ra_ckpt_save(p, config_a, &a.st, a.t, 3), RA_OK);
    ra_ckpt_state st;
    memset(&st, 0xff, sizeof st);
    assert_int_equal(ra_ckpt_peek_state(p, &st), RA_OK);
    assert_memory_equal(&st, &a.st, sizeof st);
    struct stat sb;
    assert_int_equal(stat(p, &sb), 0);
    FILE *f = fopen(p, "r+b"); /* a value byte near the end: the checksum fails, the header reads */
    assert_non_null(f);
    assert_int_equal(fseek(f, (long)sb.st_size - 12, SEEK_SET), 0);
    assert_int_equal(fputc(0x5a, f), 0x5a);
    assert_int_equal(fclose(f), 0);
    assert_int_not_equal(ra_ckpt_peek(p, NULL, NULL), RA_OK);
    memset(&st, 0, sizeof st);
    assert_int_equal(ra_ckpt_peek_state(p, &st), RA_OK);
    assert_true(st.extra[RA_CKPT_HISTORY] == 0x0123456789abcdefull);
    assert_int_equal(truncate(p, sb.st_size - 100), 0);
    assert_int_not_equal(ra_ckpt_peek_state(p, &st), RA_OK);
    assert_non_null(strstr(ra_last_error(), "truncated"));
    unlink(p);
}

/* ra_ckpt_is_one: what outputs refuse to replace. A saved checkpoint and a
 * file holding only its 8 magic bytes are one; 7 of them, another file, a
 * FIFO, a directory and a missing path are not (and the FIFO's open does
 * not block). */
static void test_is_one(void **state)
{
    char p[TMPDIR_CAP], q[TMPDIR_CAP];
    tmp(state, p, sizeof p, "isone.ckpt");
    model a;
    model_init(&a, 1);
    assert_int_equal(ra_ckpt_save(p, config_a, &a.st, a.t, 1), RA_OK);
    assert_int_equal(ra_ckpt_is_one(p), 1);
    tmp(state, q, sizeof q, "isone.magic");
    write_file(q, "RACKPT\r\n", 8);
    assert_int_equal(ra_ckpt_is_one(q), 1);
    write_file(q, "RACKPT\r", 7);
    assert_int_equal(ra_ckpt_is_one(q), 0);
    write_file(q, "{\"step\": 1}\n", 12);
    assert_int_equal(ra_ckpt_is_one(q), 0);
    unlink(q);
    assert_int_equal(ra_ckpt_is_one(q), 0); /* missing */
    assert_int_equal(mkfifo(q, 0600), 0);
    assert_int_equal(ra_ckpt_is_one(q), 0);
    unlink(q);
    tmp(state, q, sizeof q, "");
    assert_int_equal(ra_ckpt_is_one(q), 0); /* the directory */
    unlink(p);
}

/* The names train gives its checkpoints, exactly: the newest of a
 * directory is found among them only (a .tmp, last.ckpt and step-5.ckpt
 * without its zeros are other names). Names, not files: a directory so
 * named counts, as it would block the run writing that step. */
static void test_newest_step(void **state)
{
    assert_int_equal(ra_ckpt_step_of("step-00000005.ckpt"), 5);
    assert_int_equal(ra_ckpt_step_of("step-5.ckpt"), -1);
    assert_int_equal(ra_ckpt_step_of("step-00000005.ckpt.tmp"), -1);
    assert_int_equal(ra_ckpt_step_of("step--0000001.ckpt"), -1);
    assert_int_equal(ra_ckpt_step_of("last.ckpt"), -1);
    char d[TMPDIR_CAP], p[TMPDIR_CAP], name[300];
    tmp(state, d, sizeof d, "");
    assert_int_equal(ra_ckpt_newest_step(d, name, sizeof name), -1);
    assert_string_equal(name, "");
    const char *files[] = { "step-00000010.ckpt", "step-00000002.ckpt", "step-00000099.ckpt.tmp", "step-500.ckpt",
                            "last.ckpt" };
    for (size_t i = 0; i < sizeof files / sizeof *files; i++) {
        tmp(state, p, sizeof p, files[i]);
        write_file(p, "x", 1);
    }
    tmp(state, p, sizeof p, "step-00000011.ckpt");
    assert_int_equal(mkdir(p, 0700), 0);
    assert_int_equal(ra_ckpt_newest_step(d, name, sizeof name), 11);
    assert_string_equal(name, "step-00000011.ckpt");
    rmdir(p);
    assert_int_equal(ra_ckpt_newest_step(d, name, sizeof name), 10);
    assert_string_equal(name, "step-00000010.ckpt");
    tmp(state, p, sizeof p, "nosuch");
    assert_int_equal(ra_ckpt_newest_step(p, name, sizeof name), -1);
}

static void test_overwrite(void **state)
{
    char p[TMPDIR_CAP], t[TMPDIR_CAP + 8];
    tmp(state, p, sizeof p, "ow.ckpt");
    tmp_name(t, sizeof t, p);
    save_model(p, config_a, 1);
    /* a different config length, state and values, and different sizes */
    float big[2000], back[2000];
    for (int i = 0; i < 2000; i++) big[i] = (float)i / 3.0f;
    ra_ckpt_state st = {999, 5, 6, {0, 0, 0, 0}}, got;
    ra_ckpt_tensor tb[1] = {{"params", big, 2000}}, tr[1] = {{"params", back, 2000}};
    assert_int_equal(ra_ckpt_save(p, "[model]\nd_model = 128\n", &st, tb, 1), RA_OK);
    assert_false(exists(t));
    char *cfg = NULL;
    assert_int_equal(ra_ckpt_load(p, &cfg, &got, tr, 1), RA_OK);
    assert_string_equal(cfg, "[model]\nd_model = 128\n");
    assert_memory_equal(back, big, sizeof big);
    assert_memory_equal(&got, &st, sizeof st);
    free(cfg);
    /* the old tensor list no longer fits */
    expect_refused(p, RA_ERR_SHAPE, "'params' has 2000 values, the model needs 1000");
    unlink(p);
}

/* ---- save failures ----------------------------------------------------- */

static void test_missing_directory(void **state)
{
    char d[TMPDIR_CAP], p[TMPDIR_CAP], t[TMPDIR_CAP + 8];
    tmp(state, d, sizeof d, "nodir");
    tmpdir_path(p, d, "step-10.ckpt");
    model a;
    model_init(&a, 1);
    ra_clear_error();
    assert_error(ra_ckpt_save(p, config_a, &a.st, a.t, 3), RA_ERR_IO, tmp_name(t, sizeof t, p), "cannot create");
    assert_error(RA_ERR_IO, RA_ERR_IO, d, "does not exist");
    assert_false(exists(t));
    assert_false(exists(d)); /* not created here */
}

static void test_long_name_rejected(void **state)
{
    char p[TMPDIR_CAP];
    tmp(state, p, sizeof p, "name.ckpt");
    save_model(p, config_a, 1);
    size_t n0;
    unsigned char *before = read_file(p, &n0);
    char name[257];
    memset(name, 'q', 256);
    name[256] = '\0';
    float v = 1;
    ra_ckpt_tensor tt[2] = {{"params", &v, 1}, {name, &v, 1}};
    ra_ckpt_state st = {0};
    ra_clear_error();
    assert_error(ra_ckpt_save(p, "", &st, tt, 2), RA_ERR_ARG, p, "256 bytes long, at most 255");
    assert_kept(p, before, n0);
    unlink(p);
}

static void test_save_bad_args(void **state)
{
    char p[TMPDIR_CAP], t[TMPDIR_CAP + 8];
    tmp(state, p, sizeof p, "args.ckpt");
    ra_ckpt_state st = {0};
    float v = 1;
    ra_ckpt_tensor null_data = {"params", NULL, 5}, no_name = {"", &v, 1};
    assert_error(ra_ckpt_save(p, "", NULL, NULL, 0), RA_ERR_ARG, p, "NULL state");
    assert_error(ra_ckpt_save(p, "", &st, NULL, -1), RA_ERR_ARG, p, "expected >= 0");
    assert_error(ra_ckpt_save(p, "", &st, NULL, 2), RA_ERR_ARG, p, "NULL tensor list");
    assert_error(ra_ckpt_save(p, "", &st, &null_data, 1), RA_ERR_ARG, p, "NULL data");
    assert_error(ra_ckpt_save(p, "", &st, &no_name, 1), RA_ERR_ARG, p, "no name");
    assert_error(ra_ckpt_save("", "", &st, NULL, 0), RA_ERR_ARG, NULL, "empty checkpoint path");
    assert_false(exists(p));
    assert_false(exists(tmp_name(t, sizeof t, p)));
}

/* A write that fails midway (file size limit -> EFBIG) removes the .tmp
 * and leaves the previous checkpoint byte for byte. */
static void test_write_failure(void **state)
{
    char p[TMPDIR_CAP], t[TMPDIR_CAP + 8];
    tmp(state, p, sizeof p, "full.ckpt");
    tmp_name(t, sizeof t, p);
    save_model(p, config_a, 1);
    size_t n0;
    unsigned char *before = read_file(p, &n0);

    static float big[4096];
    ra_ckpt_tensor tb = {"params", big, 4096};
    ra_ckpt_state st = {0};
    struct rlimit old, lim;
    assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
    lim = old;
    lim.rlim_cur = 8192;
    void (*prev)(int) = signal(SIGXFSZ, SIG_IGN);
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);
    ra_clear_error();
    ra_status s = ra_ckpt_save(p, config_a, &st, &tb, 1);
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);
    signal(SIGXFSZ, prev);
    assert_error(s, RA_ERR_IO, t, "write failed");
    assert_error(s, RA_ERR_IO, t, "File too large");
    assert_kept(p, before, n0);
    model md;
    model_init(&md, 1);
    assert_int_equal(ra_ckpt_load(p, NULL, NULL, md.t, 3), RA_OK);
    unlink(p);
}

/* A writer died mid-write: a stale garbage .tmp next to a good file. */
static void test_stale_tmp_after_crash(void **state)
{
    char p[TMPDIR_CAP], t[TMPDIR_CAP + 8];
    tmp(state, p, sizeof p, "crash.ckpt");
    tmp_name(t, sizeof t, p);
    save_model(p, config_a, 1);
    unsigned char junk[5000];
    for (size_t i = 0; i < sizeof junk; i++) junk[i] = (unsigned char)(i * 31 + 7);
    memcpy(junk, "RACKPT\r\n", 8); /* even a plausible prefix */
    write_file(t, junk, sizeof junk);

    model want, got;
    model_init(&want, 1);
    sentinel_init(&got);
    ra_status s = ra_ckpt_load(p, NULL, &got.st, got.t, 3);
    if (s != RA_OK) fail_msg("load next to a stale .tmp: %s", ra_last_error());
    assert_memory_equal(got.p, want.p, sizeof want.p);
    assert_memory_equal(&got.st, &want.st, sizeof want.st);

    save_model(p, "[new]\n", 2);
    assert_false(exists(t));
    model_init(&want, 2);
    char *cfg = NULL;
    assert_int_equal(ra_ckpt_load(p, &cfg, &got.st, got.t, 3), RA_OK);
    assert_string_equal(cfg, "[new]\n");
    assert_memory_equal(got.p, want.p, sizeof want.p);
    assert_memory_equal(&got.st, &want.st, sizeof want.st);
    free(cfg);

    /* a stale .tmp that is a symlink is removed, never followed: the save
     * succeeds and the link's target keeps its bytes */
    char target[TMPDIR_CAP];
    tmp(state, target, sizeof target, "victim");
    write_file(target, "keep", 4);
    assert_int_equal(symlink(target, t), 0);
    ra_clear_error();
    assert_int_equal(ra_ckpt_save(p, "", &want.st, want.t, 3), RA_OK);
    assert_false(exists(t));
    size_t vn;
    unsigned char *v = read_file(target, &vn);
    assert_int_equal(vn, 4);
    assert_memory_equal(v, "keep", 4);
    free(v);
    unlink(target);
    assert_int_equal(ra_ckpt_load(p, NULL, NULL, got.t, 3), RA_OK);
    unlink(p);
}


/* ---- streamed saves and range loads (sharded optimizer states) ---------- */

enum { BIG = 600001 }; /* three 1 MiB chunks and a bit: the chunking shows */

typedef struct {
    const float *src;  /* the whole tensor the callback serves */
    uint64_t next;     /* the next value expected: chunks come in order */
    int calls, fail_at; /* fail_at: the call that fails (0: none) */
} feeder;

static ra_status feed(void *ctx, int tensor, uint64_t at, float *dst, size_t n)
{
    feeder *f = ctx;
    assert_int_equal(tensor, 1);
    assert_int_equal(at, f->next); /* in order, no gaps, no overlap */
    assert_true(n >= 1 && n <= 262144);
    if (++f->calls == f->fail_at) return RA_FAIL(RA_ERR_PEER, "feeder: rank 3 is gone");
    memcpy(dst, f->src + at, n * sizeof(float));
    f->next += n;
    return RA_OK;
}

static float *big_values(uint32_t seed)
{
    float *x = malloc(sizeof(float) * BIG);
    assert_non_null(x);
    for (int i = 0; i < BIG; i++) x[i] = (float)(i % 9973) * 0.5f - (float)seed;
    return x;
}

/* A tensor pulled through the callback gives the very file ra_ckpt_save
 * writes from memory. */
static void test_stream_equals_save(void **state)
{
    char a[TMPDIR_CAP], b[TMPDIR_CAP];
    tmp(state, a, sizeof a, "direct.ckpt");
    tmp(state, b, sizeof b, "stream.ckpt");
    float *x = big_values(1), p[3] = { 1, 2, 3 };
    const ra_ckpt_state st = { .step = 7, .seed = 9 };
    const ra_ckpt_tensor direct[2] = { { "params", p, 3 }, { "adam_m", x, BIG } };
    const ra_ckpt_tensor pulled[2] = { { "params", p, 3 }, { "adam_m", NULL, BIG } };
    assert_int_equal(ra_ckpt_save(a, config_a, &st, direct, 2), RA_OK);
    feeder f = { x, 0, 0, 0 };
    ra_status s = ra_ckpt_save_stream(b, config_a, &st, pulled, 2, feed, &f);
    if (s != RA_OK) fail_msg("stream save: %s", ra_last_error());
    assert_int_equal(f.next, BIG);
    assert_int_equal(f.calls, 3);
    size_t na, nb;
    unsigned char *fa = read_file(a, &na), *fb = read_file(b, &nb);
    assert_int_equal(na, nb);
    assert_memory_equal(fa, fb, na);
    free(fa), free(fb), free(x);
    /* without a source, NULL data is still an argument error */
    assert_error(ra_ckpt_save(a, config_a, &st, pulled, 2), RA_ERR_ARG, a, "NULL data");
    unlink(a), unlink(b);
}

/* A source that fails mid-way (a lost rank) aborts the save: the previous
 * file stays as it was, no temporary is left. */
static void test_stream_failure_keeps_old(void **state)
{
    char p[TMPDIR_CAP];
    tmp(state, p, sizeof p, "keep.ckpt");
    save_model(p, config_a, 3);
    size_t n0;
    unsigned char *before = read_file(p, &n0);
    float *x = big_values(2);
    const ra_ckpt_state st = { .step = 8 };
    const ra_ckpt_tensor pulled[2] = { { "params", x, 5 }, { "adam_m", NULL, BIG } };
    feeder f = { x, 0, 0, 2 };
    assert_error(ra_ckpt_save_stream(p, config_a, &st, pulled, 2, feed, &f), RA_ERR_PEER, NULL, "rank 3 is gone");
    assert_kept(p, before, n0);
    free(x);
    unlink(p);
}

/* A range load copies exactly its values and nothing around them; a range
 * outside the tensor is refused before anything is read. */
static void test_load_range(void **state)
{
    char p[TMPDIR_CAP];
    tmp(state, p, sizeof p, "range.ckpt");
    float *x = big_values(4), pa[3] = { 4, 5, 6 };
    const ra_ckpt_state st = { .step = 11 };
    const ra_ckpt_tensor t[2] = { { "params", pa, 3 }, { "adam_m", x, BIG } };
    assert_int_equal(ra_ckpt_save(p, config_a, &st, t, 2), RA_OK);
    const uint64_t lo = 262143, hi = 400003; /* across a chunk boundary, unaligned */
    float *got = malloc(sizeof(float) * (hi - lo + 2)), q[3] = { 0, 0, 0 };
    assert_non_null(got);
    memset(got, SENT, sizeof(float) * (hi - lo + 2));
    const ra_ckpt_tensor in[2] = { { "params", q, 3 }, { "adam_m", got + 1, BIG } };
    const ra_ckpt_range r[2] = { { 0, 3 }, { lo, hi } };
    ra_ckpt_state back = { 0 };
    ra_status s = ra_ckpt_load_range(p, NULL, &back, in, r, 2);
    if (s != RA_OK) fail_msg("range load: %s", ra_last_error());
    assert_memory_equal(q, pa, sizeof pa);
    assert_memory_equal(got + 1, x + lo, sizeof(float) * (hi - lo));
    assert_int_equal(((unsigned char *)got)[0], SENT);
    assert_int_equal(((unsigned char *)(got + 1 + (hi - lo)))[0], SENT);
    assert_int_equal(back.step, 11);
    const ra_ckpt_range bad[2] = { { 0, 3 }, { lo, BIG + 1 } };
    assert_error(ra_ckpt_load_range(p, NULL, NULL, in, bad, 2), RA_ERR_ARG, p, "not inside");
    /* the count is the whole tensor's, as the file's: a shard's length is refused */
    const ra_ckpt_tensor shard[2] = { { "params", q, 3 }, { "adam_m", got + 1, hi - lo } };
    const ra_ckpt_range r2[2] = { { 0, 3 }, { 0, hi - lo } };
    assert_error(ra_ckpt_load_range(p, NULL, NULL, shard, r2, 2), RA_ERR_SHAPE, p, "adam_m");
    free(got), free(x);
    unlink(p);
}

/* peek and load hand out the file's stored CRC-64 (its last 8 bytes, little-
 * endian), what the ranks compare to know they read the same checkpoint:
 * the same for both reads, another for a file with other values. */
static void test_sum_identifies_content(void **state)
{
    char a[TMPDIR_CAP], b[TMPDIR_CAP];
    tmp(state, a, sizeof a, "sum_a.ckpt");
    tmp(state, b, sizeof b, "sum_b.ckpt");
    save_model(a, config_a, 1);
    save_model(b, config_a, 2);
    size_t n;
    unsigned char *fa = read_file(a, &n);
    uint64_t stored = 0;
    for (int i = 7; i >= 0; i--) stored = stored << 8 | fa[n - 8 + (size_t)i];
    free(fa);
    uint64_t peeked = 0, loaded = 0, other = 0;
    assert_int_equal(ra_ckpt_peek_sum(a, NULL, NULL, &peeked), RA_OK);
    model md;
    sentinel_init(&md);
    ra_status s = ra_ckpt_load_range_sum(a, NULL, &md.st, md.t, NULL, 3, &loaded);
    if (s != RA_OK) fail_msg("load: %s", ra_last_error());
    assert_true(peeked == stored);
    assert_true(loaded == stored);
    assert_int_equal(ra_ckpt_peek_sum(b, NULL, NULL, &other), RA_OK);
    assert_true(other != stored);
    unlink(a), unlink(b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip),
        cmocka_unit_test(test_no_tensors_and_max_name),
        cmocka_unit_test(test_peek),
        cmocka_unit_test(test_peek_state),
        cmocka_unit_test(test_is_one),
        cmocka_unit_test(test_newest_step),
        cmocka_unit_test(test_overwrite),
        cmocka_unit_test(test_missing_directory),
        cmocka_unit_test(test_long_name_rejected),
        cmocka_unit_test(test_save_bad_args),
        cmocka_unit_test(test_write_failure),
        cmocka_unit_test(test_stale_tmp_after_crash),
        cmocka_unit_test(test_stream_equals_save),
        cmocka_unit_test(test_stream_failure_keeps_old),
        cmocka_unit_test(test_load_range),
        cmocka_unit_test(test_sum_identifies_content),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
