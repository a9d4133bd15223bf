/* test_checkpoint_refused.c - unit tests for checkpoints
 * (src/model/checkpoint.c) that must be refused, by load and by peek, with
 * the file named, a message saying why and the caller's buffers untouched:
 * flipped bytes, truncation, bad magic, a future version, appended
 * garbage, lengths crafted under a valid checksum, a step past any run, a tensor list that does
 * not match, and paths that are not regular files. Valid checkpoints and
 * save failures: test_checkpoint.c. Helpers, the fixture and the
 * independent decoder: checkpoint_helpers.h. */
#include <limits.h>
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

#include "ringattn/checkpoint.h"
#include "checkpoint_helpers.h"
#include "tmpdir.h"

static int group_setup(void **state) { return fixture_make(state, "test_checkpoint_refused"); }

/* ---- refused files ----------------------------------------------------- */

static void test_flipped_data_byte(void **state)
{
    char p[TMPDIR_CAP];
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
    char p[TMPDIR_CAP];
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
    char p[TMPDIR_CAP];
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
    char p[TMPDIR_CAP];
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
    char p[TMPDIR_CAP];
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

/* A step past INT_MAX was never written by train (its steps are an int):
 * a resealed file holding one is refused by every reader, and save refuses
 * to write one. INT_MAX itself is a step. */
static void test_step_beyond_any_run(void **state)
{
    char p[TMPDIR_CAP], q[TMPDIR_CAP];
    size_t n;
    layout L;
    unsigned char *b = good_file(state, p, sizeof p, "step.ckpt", &n, &L);
    put_le(b + L.state_off, (uint64_t)INT_MAX + 1, 8);
    reseal(b, n);
    write_file(p, b, n);
    expect_refused(p, RA_ERR_FORMAT, "the checkpoint's step 2147483648 is beyond any run");
    put_le(b + L.state_off, UINT64_MAX, 8);
    reseal(b, n);
    write_file(p, b, n);
    expect_refused(p, RA_ERR_FORMAT, "step 18446744073709551615 is beyond");
    put_le(b + L.state_off, INT_MAX, 8);
    reseal(b, n);
    write_file(p, b, n);
    ra_ckpt_state st;
    assert_int_equal(ra_ckpt_peek(p, NULL, &st), RA_OK);
    assert_int_equal(st.step, INT_MAX);
    free(b);

    model md;
    model_init(&md, 1);
    md.st.step = (uint64_t)INT_MAX + 1;
    tmp(state, q, sizeof q, "step-save.ckpt");
    assert_error(ra_ckpt_save(q, config_a, &md.st, md.t, 3), RA_ERR_ARG, q, "beyond any run");
    assert_false(exists(q));
    unlink(p);
}

static void test_appended_garbage(void **state)
{
    char p[TMPDIR_CAP];
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
    char p[TMPDIR_CAP];
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
    char p[TMPDIR_CAP];
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
    char p[TMPDIR_CAP];
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
        cmocka_unit_test(test_flipped_data_byte),
        cmocka_unit_test(test_flipped_header_byte),
        cmocka_unit_test(test_truncated),
        cmocka_unit_test(test_bad_magic),
        cmocka_unit_test(test_future_version),
        cmocka_unit_test(test_step_beyond_any_run),
        cmocka_unit_test(test_appended_garbage),
        cmocka_unit_test(test_crafted_structure),
        cmocka_unit_test(test_mismatched_tensor_list),
        cmocka_unit_test(test_not_a_file),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
