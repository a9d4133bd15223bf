/* test_data.c - unit tests for the file reader of src/model/data.c: bytes
 * outside model.vocab are reported with the file and the offset by a reader
 * whose positions read them (as a token or as a target), and only by such
 * a reader; windows past the last of RA_SPLIT_ALL are padding that counts
 * nothing; short training or held-out parts and non-regular files are
 * refused when the data is opened. References are computed here from the
 * file's bytes, not by the reader. */
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

#define L 32
#define SIZE 100 /* (SIZE - 1) / L = 3 windows */
#define BAD_AT 50
#define BAD 200

static char dir[TMPDIR_CAP];

static int setup(void **state)
{
    (void)state;
    return tmpdir_make(dir, "test_data");
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

/* The file's bytes: 'a' + i % 26, and BAD at BAD_AT. */
static unsigned char byte_at(int64_t i) { return i == BAD_AT ? BAD : (unsigned char)('a' + i % 26); }

static const char *write_file(const char *name, int64_t n, char *path, size_t cap)
{
    (void)cap; /* callers pass TMPDIR_CAP buffers */
    tmpdir_path(path, dir, name);
    FILE *fp = fopen(path, "wb");
    assert_non_null(fp);
    for (int64_t i = 0; i < n; i++) fputc(byte_at(i), fp);
    assert_int_equal(fclose(fp), 0);
    return path;
}

/* A finished file-source config; val_fraction 0: the whole file (eval --data). */
static void file_config(ra_config *c, const char *path, int vocab, const char *val_fraction)
{
    char s[RA_PATH_MAX + 32];
    ra_config_defaults(c);
    const char *sets[] = {"data.source=file", "data.seq_len=32", "data.val_fraction=0.1"};
    for (size_t i = 0; i < sizeof sets / sizeof sets[0]; i++)
        assert_int_equal(ra_config_set(c, sets[i], "t"), RA_OK);
    snprintf(s, sizeof s, "data.path=%s", path);
    assert_int_equal(ra_config_set(c, s, "t"), RA_OK);
    snprintf(s, sizeof s, "model.vocab=%d", vocab);
    assert_int_equal(ra_config_set(c, s, "t"), RA_OK);
    if (ra_config_finish(c) != RA_OK) fail_msg("%s", ra_last_error());
    c->val_fraction = strtof(val_fraction, NULL); /* as eval --data sets it after finish */
}

/* Every single position p of window w: an error exactly when the token
 * (byte w*L + p) or the target (byte w*L + p + 1) is BAD_AT, naming it. */
static void test_vocab_by_position(void **state)
{
    (void)state;
    char path[TMPDIR_CAP];
    ra_config *c = malloc(sizeof *c);
    assert_non_null(c);
    write_file("bad.bin", SIZE, path, sizeof path);
    file_config(c, path, 128, "0");
    int errors = 0;
    for (int w = 0; w < 3; w++)
        for (int32_t p = 0; p < L; p++) {
            ra_data *d;
            int32_t tok, tgt;
            assert_int_equal(ra_data_open(&d, c, &p, 1), RA_OK);
            assert_int_equal(ra_data_windows(d), (SIZE - 1) / L);
            const int64_t at = (int64_t)w * L + p;
            const int reads_bad = at == BAD_AT || at + 1 == BAD_AT;
            ra_status st = ra_data_batch(d, RA_SPLIT_ALL, (uint64_t)w, 1, &tok, &tgt);
            if (reads_bad) {
                assert_int_equal(st, RA_ERR_ARG);
                assert_contains(ra_last_error(), path);
                assert_contains(ra_last_error(), "byte 200 at offset 50 is outside the vocabulary [0, 128)");
                errors++;
            } else {
                if (st != RA_OK) fail_msg("window %d position %d: %s", w, p, ra_last_error());
                assert_int_equal(tok, byte_at(at));
                assert_int_equal(tgt, byte_at(at + 1));
            }
            ra_data_close(d);
        }
    assert_int_equal(errors, 2); /* offset 50 as the token of position 18 and the target of 17 */

    /* a vocabulary of bytes reads the same byte as a token */
    file_config(c, path, 256, "0");
    int32_t pos = BAD_AT - L, tok, tgt;
    ra_data *d;
    assert_int_equal(ra_data_open(&d, c, &pos, 1), RA_OK);
    assert_int_equal(ra_data_batch(d, RA_SPLIT_ALL, 1, 1, &tok, &tgt), RA_OK);
    assert_int_equal(tok, BAD);
    ra_data_close(d);
    free(c);
}

/* RA_SPLIT_ALL past the last window: token 0, no counted target; windows
 * before it are the file's bytes (a batch straddling the end). */
static void test_padding_windows(void **state)
{
    (void)state;
    char path[TMPDIR_CAP];
    ra_config *c = malloc(sizeof *c);
    assert_non_null(c);
    write_file("bad.bin", SIZE, path, sizeof path);
    file_config(c, path, 256, "0");
    int32_t pos[L];
    for (int i = 0; i < L; i++) pos[i] = i;
    ra_data *d;
    assert_int_equal(ra_data_open(&d, c, pos, L), RA_OK);
    int32_t tok[3 * L], tgt[3 * L];
    assert_int_equal(ra_data_batch(d, RA_SPLIT_ALL, 2, 3, tok, tgt), RA_OK); /* windows 2, 3, 4 */
    int counted = 0;
    for (int i = 0; i < 3 * L; i++) counted += tgt[i] >= 0;
    assert_int_equal(counted, L); /* window 2 only */
    for (int i = 0; i < L; i++) {
        assert_int_equal(tok[i], byte_at(2 * L + i));
        assert_int_equal(tgt[i], byte_at(2 * L + i + 1));
    }
    for (int i = L; i < 3 * L; i++) {
        assert_int_equal(tok[i], 0);
        assert_int_equal(tgt[i], -1);
    }
    ra_data_close(d);
    free(c);
}

/* Parts too short for one window, and files that are not regular, are
 * refused by ra_data_open itself. */
static void test_open_refuses(void **state)
{
    (void)state;
    char path[TMPDIR_CAP], want[160];
    ra_config *c = malloc(sizeof *c);
    assert_non_null(c);
    int32_t pos = 0;
    ra_data *d = NULL;
    /* 100 bytes, 0.1 held out: the reader's own split rule, computed here */
    write_file("short.bin", 100, path, sizeof path);
    file_config(c, path, 256, "0.1");
    const int64_t held = 100 - (int64_t)(100.0 * (1.0 - (double)0.1f));
    assert_true(held < L + 1);
    assert_int_equal(ra_data_open(&d, c, &pos, 1), RA_ERR_ARG);
    ra_data_close(d);
    snprintf(want, sizeof want, "the held-out part has %lld bytes (data.val_fraction = 0.1 of 100 bytes)",
             (long long)held);
    assert_contains(ra_last_error(), want);
    assert_contains(ra_last_error(), "data.seq_len + 1 = 33");
    /* 0.9 held out: 10 training bytes */
    file_config(c, path, 256, "0.9");
    assert_int_equal(ra_data_open(&d, c, &pos, 1), RA_ERR_ARG);
    ra_data_close(d);
    assert_contains(ra_last_error(), "the training part has");
    assert_contains(ra_last_error(), "data.val_fraction = 0.9");
    /* nothing held out: one window is enough */
    file_config(c, path, 256, "0");
    assert_int_equal(ra_data_open(&d, c, &pos, 1), RA_OK);
    assert_int_equal(ra_data_windows(d), 3);
    ra_data_close(d);
    /* fewer bytes than one window */
    write_file("short.bin", L, path, sizeof path);
    file_config(c, path, 256, "0");
    assert_int_equal(ra_data_open(&d, c, &pos, 1), RA_ERR_ARG);
    ra_data_close(d);
    assert_contains(ra_last_error(), "32 bytes are too few for one sequence of data.seq_len = 32");
    write_file("one.bin", 1, path, sizeof path); /* it said "1 bytes are" */
    file_config(c, path, 256, "0");
    assert_int_equal(ra_data_open(&d, c, &pos, 1), RA_ERR_ARG);
    ra_data_close(d);
    assert_contains(ra_last_error(), "1 byte is too few for one sequence");
    /* a FIFO without a writer: refused at once */
    tmpdir_path(path, dir, "fifo");
    assert_int_equal(mkfifo(path, 0600), 0);
    file_config(c, path, 256, "0");
    assert_int_equal(ra_data_open(&d, c, &pos, 1), RA_ERR_IO);
    ra_data_close(d);
    assert_contains(ra_last_error(), "is a FIFO");
    /* a directory */
    file_config(c, dir, 256, "0");
    assert_int_equal(ra_data_open(&d, c, &pos, 1), RA_ERR_IO);
    ra_data_close(d);
    assert_contains(ra_last_error(), "is a directory");
    free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_vocab_by_position),
        cmocka_unit_test(test_padding_windows),
        cmocka_unit_test(test_open_refuses),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
