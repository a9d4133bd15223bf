/* test_checkpoint.c - unit tests for checkpoints (src/model/checkpoint.c).
 *
 * Files live in a mkdtemp directory under /tmp that the group teardown
 * removes. The file layout is decoded here independently of the library
 * (including a bitwise CRC-64/XZ), so the documented format is checked and
 * corrupt files with a valid checksum can be crafted. */
#include <dirent.h>
#include <errno.h>
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

/* ---- fixture and helpers --------------------------------------------- */

typedef struct {
    char dir[64];
} fixture;

static void remove_tree(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *e;
    char p[512];
    while ((e = readdir(d)) != NULL) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        struct stat st;
        if (lstat(p, &st) == 0 && S_ISDIR(st.st_mode)) remove_tree(p);
        else unlink(p);
    }
    closedir(d);
    rmdir(dir);
}

static int group_setup(void **state)
{
    fixture *fx = calloc(1, sizeof *fx);
    if (!fx) return -1;
    strcpy(fx->dir, "/tmp/test_ckpt_XXXXXX");
    if (!mkdtemp(fx->dir)) {
        free(fx);
        return -1;
    }
    *state = fx;
    return 0;
}

static int group_teardown(void **state)
{
    fixture *fx = *state;
    remove_tree(fx->dir);
    struct stat st;
    int rc = stat(fx->dir, &st) == 0 ? -1 : 0;
    free(fx);
    return rc;
}

static const char *tmp(void **state, char *out, size_t cap, const char *name)
{
    const fixture *fx = *state;
    snprintf(out, cap, "%s/%s", fx->dir, name);
    return out;
}

static const char *tmp_name(char *out, size_t cap, const char *path)
{
    snprintf(out, cap, "%s.tmp", path);
    return out;
}

static int exists(const char *path)
{
    struct stat st;
    return lstat(path, &st) == 0;
}

static void write_file(const char *path, const void *bytes, size_t n)
{
    FILE *fp = fopen(path, "wb");
    assert_non_null(fp);
    if (n) assert_int_equal(fwrite(bytes, 1, n, fp), n);
    assert_int_equal(fclose(fp), 0);
}

/* Whole file into a malloc'd buffer. */
static unsigned char *read_file(const char *path, size_t *n)
{
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    unsigned char *buf = malloc((size_t)st.st_size + 1);
    assert_non_null(buf);
    FILE *fp = fopen(path, "rb");
    assert_non_null(fp);
    *n = fread(buf, 1, (size_t)st.st_size, fp);
    assert_int_equal(*n, (size_t)st.st_size);
    fclose(fp);
    return buf;
}

static void assert_error(ra_status got, ra_status want, const char *path, const char *word)
{
    const char *msg = ra_last_error();
    if (got != want)
        fail_msg("status %d (%s), expected %d (%s); message: %s", got, ra_status_name(got), want,
                 ra_status_name(want), msg);
    if (path && !strstr(msg, path)) fail_msg("message \"%s\" does not name \"%s\"", msg, path);
    if (!strstr(msg, word)) fail_msg("message \"%s\" lacks \"%s\"", msg, word);
}

/* ---- the format, decoded independently ------------------------------- */

static uint64_t crc64_ref(const unsigned char *p, size_t n)
{
    uint64_t r = UINT64_MAX;
    for (size_t i = 0; i < n; i++) {
        r ^= p[i];
        for (int b = 0; b < 8; b++) r = (r & 1) ? (r >> 1) ^ 0xC96C5795D7870F42ull : r >> 1;
    }
    return ~r;
}

static uint64_t le(const unsigned char *p, int bytes)
{
    uint64_t v = 0;
    for (int i = bytes - 1; i >= 0; i--) v = v << 8 | p[i];
    return v;
}

static void put_le(unsigned char *p, uint64_t v, int bytes)
{
    for (int i = 0; i < bytes; i++) p[i] = (unsigned char)(v >> (8 * i));
}

#define MAXT 8
typedef struct {
    size_t config_off, config_len, state_off, n_off;
    unsigned n;
    size_t entry_off[MAXT], data_off[MAXT];
    uint64_t count[MAXT];
    size_t end; /* checksum offset */
} layout;

/* Decode a well-formed file, asserting the documented layout. */
static void decode(const unsigned char *b, size_t n, layout *L)
{
    memset(L, 0, sizeof *L);
    assert_true(n >= 96);
    assert_memory_equal(b, "RACKPT\r\n", 8);
    assert_int_equal(le(b + 8, 4), 1);
    assert_int_equal(le(b + 12, 4), 0);
    assert_int_equal(le(b + 16, 8), n);
    L->config_off = 28;
    L->config_len = (size_t)le(b + 24, 4);
    L->state_off = 28 + L->config_len;
    L->n_off = L->state_off + 56;
    L->n = (unsigned)le(b + L->n_off, 4);
    assert_true(L->n <= MAXT);
    size_t off = L->n_off + 4;
    for (unsigned i = 0; i < L->n; i++) {
        L->entry_off[i] = off;
        size_t nl = (size_t)le(b + off, 2);
        L->count[i] = le(b + off + 2 + nl, 8);
        off += 2 + nl + 8;
        while (off % 64) assert_int_equal(b[off++], 0);
        L->data_off[i] = off;
        off += (size_t)L->count[i] * 4;
    }
    L->end = off;
    assert_int_equal(off + 8, n);
    assert_int_equal(le(b + off, 8), crc64_ref(b, off));
}

/* Store a valid checksum again after editing the bytes. */
static void reseal(unsigned char *b, size_t n)
{
    put_le(b + n - 8, crc64_ref(b, n - 8), 8);
}

/* ---- a model ----------------------------------------------------------- */

#define N0 1000
#define SENT 0xA5

static const char *config_a = "[model]\nd_model = 64\nlayers = 2\n\n[train]\nlr = 3e-4\n";

typedef struct {
    float p[N0], m[1], v[1];
    ra_ckpt_tensor t[3];
    ra_ckpt_state st;
} model;

/* Deterministic values covering every bit pattern class: NaN payloads,
 * infinities, -0, subnormals. */
static void model_init(model *md, uint32_t seed)
{
    uint32_t x = seed * 2654435761u + 1;
    for (int i = 0; i < N0; i++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        memcpy(&md->p[i], &x, 4);
    }
    const uint32_t special[6] = {0x7fc00001u, 0xff800000u, 0x80000000u, 0x00000001u, 0x7fa00000u, 0x7f800000u};
    for (int i = 0; i < 6; i++) memcpy(&md->p[i * 7], &special[i], 4);
    md->m[0] = -1.5f * (float)seed;
    md->v[0] = 0;
    md->t[0] = (ra_ckpt_tensor){"params", md->p, N0};
    md->t[1] = (ra_ckpt_tensor){"adam_m", md->m, 1};
    md->t[2] = (ra_ckpt_tensor){"adam_v", md->v, 0};
    md->st = (ra_ckpt_state){100u * seed, 0xDEADBEEFCAFEF00Dull + seed, 123456789012345ull,
                             {UINT64_MAX, 0, 1ull << 63, seed}};
}

/* A model of the same shape whose buffers and state hold a sentinel. */
static void sentinel_init(model *md)
{
    memset(md, SENT, sizeof *md);
    md->t[0] = (ra_ckpt_tensor){"params", md->p, N0};
    md->t[1] = (ra_ckpt_tensor){"adam_m", md->m, 1};
    md->t[2] = (ra_ckpt_tensor){"adam_v", md->v, 0};
}

static void assert_untouched(const model *md)
{
    const unsigned char *b = (const unsigned char *)md->p;
    for (size_t i = 0; i < sizeof md->p + sizeof md->m + sizeof md->v; i++)
        if (b[i] != SENT) fail_msg("caller's tensor byte %zu changed after a refused load", i);
    const unsigned char *s = (const unsigned char *)&md->st;
    for (size_t i = 0; i < sizeof md->st; i++)
        if (s[i] != SENT) fail_msg("caller's state byte %zu changed after a refused load", i);
}

static void save_model(const char *path, const char *config, uint32_t seed)
{
    model md;
    model_init(&md, seed);
    ra_status s = ra_ckpt_save(path, config, &md.st, md.t, 3);
    if (s != RA_OK) fail_msg("save %s: %s", path, ra_last_error());
}

/* load and peek must both refuse path with code and word (load with the
 * standard tensor list), leaving sentinels untouched and no config. */
static void expect_refused(const char *path, ra_status code, const char *word)
{
    model md;
    sentinel_init(&md);
    char *cfg = (char *)&md; /* anything non-NULL */
    ra_clear_error();
    assert_error(ra_ckpt_load(path, &cfg, &md.st, md.t, 3), code, path, word);
    assert_null(cfg);
    assert_untouched(&md);
    if (code == RA_ERR_SHAPE) return; /* peek does not see the tensor list */
    cfg = (char *)&md;
    ra_clear_error();
    assert_error(ra_ckpt_peek(path, &cfg, &md.st), code, path, word);
    assert_null(cfg);
    assert_untouched(&md);
}

/* Save a good checkpoint at name and return its bytes. */
static unsigned char *good_file(void **state, char *path, size_t cap, const char *name, size_t *n, layout *L)
{
    tmp(state, path, cap, name);
    save_model(path, config_a, 1);
    unsigned char *b = read_file(path, n);
    decode(b, *n, L);
    return b;
}

/* ---- valid checkpoints ------------------------------------------------- */

static void test_roundtrip(void **state)
{
    char p[512], t[600];
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
    char p[512];
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
    char p[512];
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

static void test_overwrite(void **state)
{
    char p[512], t[600];
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
    char d[512], p[600], t[700];
    tmp(state, d, sizeof d, "nodir");
    snprintf(p, sizeof p, "%s/step-10.ckpt", d);
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
    char p[512], t[600];
    tmp(state, p, sizeof p, "name.ckpt");
    save_model(p, config_a, 1);
    size_t n0, n1;
    unsigned char *before = read_file(p, &n0);
    char name[257];
    memset(name, 'q', 256);
    name[256] = '\0';
    float v = 1;
    ra_ckpt_tensor tt[2] = {{"params", &v, 1}, {name, &v, 1}};
    ra_ckpt_state st = {0};
    ra_clear_error();
    assert_error(ra_ckpt_save(p, "", &st, tt, 2), RA_ERR_ARG, p, "256 bytes long, at most 255");
    assert_false(exists(tmp_name(t, sizeof t, p)));
    unsigned char *after = read_file(p, &n1);
    assert_int_equal(n0, n1);
    assert_memory_equal(before, after, n0);
    free(before);
    free(after);
    unlink(p);
}

static void test_save_bad_args(void **state)
{
    char p[512], t[600];
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
    char p[512], t[600];
    tmp(state, p, sizeof p, "full.ckpt");
    tmp_name(t, sizeof t, p);
    save_model(p, config_a, 1);
    size_t n0, n1;
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
    assert_false(exists(t));
    unsigned char *after = read_file(p, &n1);
    assert_int_equal(n0, n1);
    assert_memory_equal(before, after, n0);
    free(before);
    free(after);
    model md;
    model_init(&md, 1);
    assert_int_equal(ra_ckpt_load(p, NULL, NULL, md.t, 3), RA_OK);
    unlink(p);
}

/* A writer died mid-write: a stale garbage .tmp next to a good file. */
static void test_stale_tmp_after_crash(void **state)
{
    char p[512], t[600];
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
    char target[600];
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

/* ---- refused files ----------------------------------------------------- */

static void test_flipped_data_byte(void **state)
{
    char p[512];
    size_t n;
    layout L;
    unsigned char *b = good_file(state, p, sizeof p, "flip.ckpt", &n, &L);
    unsigned char *c = malloc(n);
    assert_non_null(c);
    size_t mid = L.data_off[0] + (size_t)L.count[0] * 2; /* middle of 'params' */
    const size_t spots[] = {mid, L.data_off[1], L.data_off[0], L.end - 1};
    for (size_t k = 0; k < sizeof spots / sizeof spots[0]; k++) {
        memcpy(c, b, n);
        c[spots[k]] ^= 0x01;
        write_file(p, c, n);
        expect_refused(p, RA_ERR_FORMAT, "checksum mismatch: the file is corrupt");
    }
    free(b);
    free(c);
    unlink(p);
}

static void test_flipped_header_byte(void **state)
{
    char p[512];
    size_t n;
    layout L;
    unsigned char *b = good_file(state, p, sizeof p, "hdr.ckpt", &n, &L);
    unsigned char *c = malloc(n);
    assert_non_null(c);
    struct {
        size_t at;
        ra_status code;
        const char *word;
    } cases[] = {
        {24, RA_ERR_FORMAT, "checksum mismatch"},                 /* config_len */
        {L.config_off + 3, RA_ERR_FORMAT, "checksum mismatch"},   /* config text */
        {L.state_off, RA_ERR_FORMAT, "checksum mismatch"},        /* step */
        {L.state_off + 55, RA_ERR_FORMAT, "checksum mismatch"},   /* extra[3] */
        {L.n_off, RA_ERR_FORMAT, "checksum mismatch"},            /* n_tensors */
        {L.entry_off[1], RA_ERR_FORMAT, "checksum mismatch"},     /* name_len */
        {L.entry_off[0] + 4, RA_ERR_FORMAT, "checksum mismatch"}, /* name */
        {L.data_off[0] - 5, RA_ERR_FORMAT, "checksum mismatch"},  /* padding */
        {L.end + 3, RA_ERR_FORMAT, "checksum mismatch"},          /* the checksum */
        {12, RA_ERR_FORMAT, "unsupported flags"},                 /* flags */
        {16, RA_ERR_FORMAT, "header says"},                       /* total_len */
        {17, RA_ERR_FORMAT, "header says"},
        {23, RA_ERR_FORMAT, "truncated: header says"},
        {3, RA_ERR_FORMAT, "not a ringattn checkpoint (bad magic"},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        memcpy(c, b, n);
        c[cases[k].at] ^= 0x10;
        write_file(p, c, n);
        expect_refused(p, cases[k].code, cases[k].word);
    }
    free(b);
    free(c);
    unlink(p);
}

static void test_truncated(void **state)
{
    char p[512];
    size_t n;
    layout L;
    unsigned char *b = good_file(state, p, sizeof p, "trunc.ckpt", &n, &L);
    const size_t lens[] = {0, 7, 8, 11, 20, 27, 28, 60, n / 2, L.data_off[0], n - 8, n - 1};
    for (size_t k = 0; k < sizeof lens / sizeof lens[0]; k++) {
        write_file(p, b, lens[k]);
        expect_refused(p, RA_ERR_FORMAT, "truncated");
    }
    write_file(p, b, n / 2);
    char want[128];
    snprintf(want, sizeof want, "truncated: header says %zu bytes, file has %zu", n, n / 2);
    expect_refused(p, RA_ERR_FORMAT, want);
    free(b);
    unlink(p);
}

static void test_bad_magic(void **state)
{
    char p[512];
    tmp(state, p, sizeof p, "magic.ckpt");
    const char *text = "[model]\nd_model = 64\nthis is a config, not a checkpoint\n"
                       "........................................................\n";
    write_file(p, text, strlen(text));
    expect_refused(p, RA_ERR_FORMAT, "not a ringattn checkpoint (bad magic");
    write_file(p, "RACK", 4); /* short and wrong is still wrong */
    expect_refused(p, RA_ERR_FORMAT, "truncated");
    write_file(p, "RACX", 4);
    expect_refused(p, RA_ERR_FORMAT, "bad magic");
    /* a .npy file */
    write_file(p, "\x93NUMPY\x01\x00", 8);
    expect_refused(p, RA_ERR_FORMAT, "bad magic");
    unlink(p);
}

static void test_future_version(void **state)
{
    char p[512];
    size_t n;
    layout L;
    unsigned char *b = good_file(state, p, sizeof p, "ver.ckpt", &n, &L);
    put_le(b + 8, 2, 4);
    reseal(b, n);
    write_file(p, b, n);
    expect_refused(p, RA_ERR_FORMAT, "unsupported version 2, this build reads 1");
    put_le(b + 8, 0, 4);
    write_file(p, b, n);
    expect_refused(p, RA_ERR_FORMAT, "unsupported version 0");
    free(b);
    unlink(p);
}

static void test_appended_garbage(void **state)
{
    char p[512];
    size_t n;
    layout L;
    unsigned char *b = good_file(state, p, sizeof p, "app.ckpt", &n, &L);
    unsigned char *c = malloc(n + 100);
    assert_non_null(c);
    memcpy(c, b, n);
    memset(c + n, 'Z', 100);
    write_file(p, c, n + 1);
    char want[128];
    snprintf(want, sizeof want, "length mismatch: header says %zu bytes, file has %zu", n, n + 1);
    expect_refused(p, RA_ERR_FORMAT, want);
    write_file(p, c, n + 100);
    expect_refused(p, RA_ERR_FORMAT, "length mismatch");
    free(b);
    free(c);
    unlink(p);
}

/* Valid checksum, impossible structure: every length is bounds-checked. */
static void test_crafted_structure(void **state)
{
    char p[512];
    size_t n;
    layout L;
    unsigned char *b = good_file(state, p, sizeof p, "craft.ckpt", &n, &L);
    const size_t count0 = L.entry_off[0] + 2 + 6; /* count of 'params' */
    assert_true(L.data_off[0] - (count0 + 8) >= 8);  /* room for the padding cases */
    unsigned char *c = malloc(n);
    assert_non_null(c);
    struct {
        size_t at;
        int bytes;
        uint64_t value;
        const char *word;
    } cases[] = {
        {24, 4, 0xFFFFFFFFu, "config length 4294967295 runs past the end"},
        {24, 4, n, "config length"},
        {24, 4, 5, "bad structure"},                     /* shifts everything */
        {L.n_off, 4, 0xFFFFFFFFu, "past the end of the data"},
        {L.n_off, 4, 4, "past the end of the data"},
        {L.n_off, 4, 2, "stray bytes"},
        {L.n_off, 4, 0, "stray bytes"},
        {L.entry_off[0], 2, 0, "name length 0"},
        {L.entry_off[0], 2, 256, "name length 256"},
        {L.entry_off[0], 2, 0xFFFF, "name length 65535"},
        {count0, 8, UINT64_MAX, "'params' claims 18446744073709551615 values"},
        {count0, 8, UINT64_MAX / 4 + 1, "past the end"}, /* count * 4 wraps to 0 */
        {count0, 8, 1u << 30, "past the end"},
        {L.data_off[0] - 1, 1, 7, "nonzero padding byte 0x07"},
        {L.entry_off[2] + 2 + 6, 8, 1, "'adam_v' claims 1 values"},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        memcpy(c, b, n);
        put_le(c + cases[k].at, cases[k].value, cases[k].bytes);
        reseal(c, n);
        write_file(p, c, n);
        expect_refused(p, RA_ERR_FORMAT, cases[k].word);
    }
    /* a NUL inside the config text */
    memcpy(c, b, n);
    c[L.config_off + 2] = 0;
    reseal(c, n);
    write_file(p, c, n);
    expect_refused(p, RA_ERR_FORMAT, "NUL");
    /* the smallest total_len that matches the real size but is below minimum */
    unsigned char tiny[40] = {0};
    memcpy(tiny, b, 28);
    put_le(tiny + 16, sizeof tiny, 8);
    write_file(p, tiny, sizeof tiny);
    expect_refused(p, RA_ERR_FORMAT, "at least 96");
    free(b);
    free(c);
    unlink(p);
}

static void test_mismatched_tensor_list(void **state)
{
    char p[512];
    tmp(state, p, sizeof p, "list.ckpt");
    save_model(p, config_a, 1);
    model md;

    sentinel_init(&md);
    md.t[1].name = "adam_mom";
    ra_clear_error();
    assert_error(ra_ckpt_load(p, NULL, &md.st, md.t, 3), RA_ERR_SHAPE, p, "'adam_m' in the file, the model needs 'adam_mom'");
    md.t[1].name = "adam_m";
    assert_untouched(&md); /* tensor 0 matched, yet nothing was copied */

    md.t[0].count = 1200;
    assert_error(ra_ckpt_load(p, NULL, &md.st, md.t, 3), RA_ERR_SHAPE, p,
                 "tensor 'params' has 1000 values, the model needs 1200: was it written for another config?");
    md.t[0].count = N0;
    assert_untouched(&md);

    md.t[2].count = 1;
    assert_error(ra_ckpt_load(p, NULL, &md.st, md.t, 3), RA_ERR_SHAPE, p, "'adam_v' has 0 values, the model needs 1");
    md.t[2].count = 0;
    assert_untouched(&md);

    assert_error(ra_ckpt_load(p, NULL, &md.st, md.t, 2), RA_ERR_SHAPE, p,
                 "file has 3 tensors, the model needs 2: unexpected tensor 'adam_v'");
    assert_untouched(&md);

    float extra = 5;
    ra_ckpt_tensor four[4] = {md.t[0], md.t[1], md.t[2], {"ema", &extra, 1}};
    assert_error(ra_ckpt_load(p, NULL, &md.st, four, 4), RA_ERR_SHAPE, p,
                 "file has 3 tensors, the model needs 4: tensor 'ema' is missing");
    assert_true(extra == 5);
    assert_untouched(&md);

    ra_ckpt_tensor swapped[3] = {md.t[1], md.t[0], md.t[2]};
    assert_error(ra_ckpt_load(p, NULL, &md.st, swapped, 3), RA_ERR_SHAPE, p, "tensor 0 is 'params' in the file");
    assert_untouched(&md);

    assert_error(ra_ckpt_load(p, NULL, &md.st, NULL, 0), RA_ERR_SHAPE, p, "unexpected tensor 'params'");
    assert_untouched(&md);
    unlink(p);
}

static void test_not_a_file(void **state)
{
    char p[512];
    const fixture *fx = *state;
    expect_refused(fx->dir, RA_ERR_IO, "is a directory, not a regular file");
    tmp(state, p, sizeof p, "absent.ckpt");
    expect_refused(p, RA_ERR_IO, "cannot open: No such file or directory");
    /* a FIFO with no writer: refused at once by name, never waited on */
    tmp(state, p, sizeof p, "fifo.ckpt");
    assert_int_equal(mkfifo(p, 0600), 0);
    expect_refused(p, RA_ERR_IO, "is a FIFO");
    unlink(p);
    tmp(state, p, sizeof p, "absent.ckpt");
    model md;
    sentinel_init(&md);
    md.t[0].data = NULL;
    assert_error(ra_ckpt_load(p, NULL, NULL, md.t, 3), RA_ERR_ARG, p, "NULL data");
    assert_error(ra_ckpt_load(p, NULL, NULL, md.t, -2), RA_ERR_ARG, p, "expected >= 0");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip),
        cmocka_unit_test(test_no_tensors_and_max_name),
        cmocka_unit_test(test_peek),
        cmocka_unit_test(test_overwrite),
        cmocka_unit_test(test_missing_directory),
        cmocka_unit_test(test_long_name_rejected),
        cmocka_unit_test(test_save_bad_args),
        cmocka_unit_test(test_write_failure),
        cmocka_unit_test(test_stale_tmp_after_crash),
        cmocka_unit_test(test_flipped_data_byte),
        cmocka_unit_test(test_flipped_header_byte),
        cmocka_unit_test(test_truncated),
        cmocka_unit_test(test_bad_magic),
        cmocka_unit_test(test_future_version),
        cmocka_unit_test(test_appended_garbage),
        cmocka_unit_test(test_crafted_structure),
        cmocka_unit_test(test_mismatched_tensor_list),
        cmocka_unit_test(test_not_a_file),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
