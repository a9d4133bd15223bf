/* checkpoint_helpers.h - what test_checkpoint.c (saving and loading
 * valid checkpoints, save failures) and test_checkpoint_refused.c (corrupt,
 * crafted and mismatched files refused) share.
 *
 * Files live in a tmpdir.h directory that the group teardown removes. The
 * file layout is decoded here independently of the library (including a
 * bitwise CRC-64/XZ), so the documented format is checked and corrupt
 * files with a valid checksum can be crafted. */
#ifndef TESTS_UNIT_CHECKPOINT_HELPERS_H
#define TESTS_UNIT_CHECKPOINT_HELPERS_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cmocka.h>

#include "ringattn/checkpoint.h"
#include "tmpdir.h"

/* ---- fixture and helpers --------------------------------------------- */

typedef struct {
    char dir[TMPDIR_CAP];
} fixture;

/* The group setup of each test program: a fresh tmpdir.h directory named
 * prefix.XXXXXX. */
static inline int fixture_make(void **state, const char *prefix)
{
    fixture *fx = calloc(1, sizeof *fx);
    if (!fx || tmpdir_make(fx->dir, prefix) != 0) {
        free(fx);
        return -1;
    }
    *state = fx;
    return 0;
}

/* The group teardown: the directory and all it holds are removed. */
static inline int group_teardown(void **state)
{
    fixture *fx = *state;
    int rc = tmpdir_remove(fx->dir);
    free(fx);
    return rc;
}

/* dir/name into out[cap], cap >= TMPDIR_CAP */
static inline const char *tmp(void **state, char *out, size_t cap, const char *name)
{
    const fixture *fx = *state;
    assert_true(cap >= TMPDIR_CAP);
    return tmpdir_path(out, fx->dir, name);
}

/* path.tmp into out[cap]: the name a save writes first */
static inline const char *tmp_name(char *out, size_t cap, const char *path)
{
    int n = snprintf(out, cap, "%s.tmp", path);
    assert_true(n >= 0 && (size_t)n < cap);
    return out;
}

static inline int exists(const char *path)
{
    struct stat st;
    return lstat(path, &st) == 0;
}

static inline void write_file(const char *path, const void *bytes, size_t n)
{
    FILE *fp = fopen(path, "wb");
    assert_non_null(fp);
    if (n) assert_int_equal(fwrite(bytes, 1, n, fp), n);
    assert_int_equal(fclose(fp), 0);
}

/* Whole file into a malloc'd buffer. */
static inline unsigned char *read_file(const char *path, size_t *n)
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

/* A refused or failed save left path as it was: exactly the n bytes of
 * before (read_file's, freed here), and no path.tmp. */
static inline void assert_kept(const char *path, unsigned char *before, size_t n)
{
    char t[TMPDIR_CAP + 8];
    size_t n1;
    unsigned char *after = read_file(path, &n1);
    assert_int_equal(n1, n);
    assert_memory_equal(before, after, n);
    assert_false(exists(tmp_name(t, sizeof t, path)));
    free(before);
    free(after);
}

static inline void assert_error(ra_status got, ra_status want, const char *path, const char *word)
{
    const char *msg = ra_last_error();
    if (got != want)
        fail_msg("status %d (%s), expected %d (%s); message: %s", got, ra_status_name(got), want,
                 ra_status_name(want), msg);
    if (path && !strstr(msg, path)) fail_msg("message \"%s\" does not name \"%s\"", msg, path);
    if (!strstr(msg, word)) fail_msg("message \"%s\" lacks \"%s\"", msg, word);
}

/* ---- the format, decoded independently ------------------------------- */

static inline uint64_t crc64_ref(const unsigned char *p, size_t n)
{
    uint64_t r = UINT64_MAX;
    for (size_t i = 0; i < n; i++) {
        r ^= p[i];
        for (int b = 0; b < 8; b++) r = (r & 1) ? (r >> 1) ^ 0xC96C5795D7870F42ull : r >> 1;
    }
    return ~r;
}

static inline uint64_t le(const unsigned char *p, int bytes)
{
    uint64_t v = 0;
    for (int i = bytes - 1; i >= 0; i--) v = v << 8 | p[i];
    return v;
}

static inline void put_le(unsigned char *p, uint64_t v, int bytes)
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
static inline void decode(const unsigned char *b, size_t n, layout *L)
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
static inline void reseal(unsigned char *b, size_t n)
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
static inline void model_init(model *md, uint32_t seed)
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
static inline void sentinel_init(model *md)
{
    memset(md, SENT, sizeof *md);
    md->t[0] = (ra_ckpt_tensor){"params", md->p, N0};
    md->t[1] = (ra_ckpt_tensor){"adam_m", md->m, 1};
    md->t[2] = (ra_ckpt_tensor){"adam_v", md->v, 0};
}

static inline void assert_untouched(const model *md)
{
    const unsigned char *b = (const unsigned char *)md->p;
    for (size_t i = 0; i < sizeof md->p + sizeof md->m + sizeof md->v; i++)
        if (b[i] != SENT) fail_msg("caller's tensor byte %zu changed after a refused load", i);
    const unsigned char *s = (const unsigned char *)&md->st;
    for (size_t i = 0; i < sizeof md->st; i++)
        if (s[i] != SENT) fail_msg("caller's state byte %zu changed after a refused load", i);
}

static inline void save_model(const char *path, const char *config, uint32_t seed)
{
    model md;
    model_init(&md, seed);
    ra_status s = ra_ckpt_save(path, config, &md.st, md.t, 3);
    if (s != RA_OK) fail_msg("save %s: %s", path, ra_last_error());
}

/* load and peek must both refuse path with code and word (load with the
 * standard tensor list), leaving sentinels untouched and no config. */
static inline void expect_refused(const char *path, ra_status code, const char *word)
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
static inline unsigned char *good_file(void **state, char *path, size_t cap, const char *name, size_t *n, layout *L)
{
    tmp(state, path, cap, name);
    save_model(path, config_a, 1);
    unsigned char *b = read_file(path, n);
    decode(b, *n, L);
    return b;
}

#endif
