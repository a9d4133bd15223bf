/* test_tmpdir.c - the temporary-directory fixture of tests/common/tmpdir.h:
 * two directories are distinct and empty; removal takes nested files and
 * directories with it; a symbolic link inside is removed, never followed
 * (its target outside survives); removing a missing directory fails. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "tmpdir.h"

static int exists(const char *path)
{
    struct stat st;
    return lstat(path, &st) == 0;
}

static void write_file(const char *path)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    assert_int_equal(fputs("x\n", f) >= 0, 1);
    assert_int_equal(fclose(f), 0);
}

static void test_make_is_fresh(void **state)
{
    (void)state;
    char a[TMPDIR_CAP], b[TMPDIR_CAP];
    assert_int_equal(tmpdir_make(a, "test_tmpdir"), 0);
    assert_int_equal(tmpdir_make(b, "test_tmpdir"), 0);
    assert_string_not_equal(a, b);
    assert_non_null(strstr(a, "/test_tmpdir."));
    struct stat st;
    assert_int_equal(stat(a, &st), 0);
    assert_true(S_ISDIR(st.st_mode));
    assert_int_equal(rmdir(a), 0); /* empty: rmdir succeeds */
    assert_int_equal(tmpdir_remove(b), 0);
    assert_false(exists(b));
}

static void test_remove_recursive_no_follow(void **state)
{
    (void)state;
    char dir[TMPDIR_CAP], outside[TMPDIR_CAP], p[TMPDIR_CAP], q[TMPDIR_CAP];
    assert_int_equal(tmpdir_make(dir, "test_tmpdir"), 0);
    assert_int_equal(tmpdir_make(outside, "test_tmpdir_outside"), 0);
    write_file(tmpdir_path(p, outside, "keep"));
    write_file(tmpdir_path(p, dir, "a"));
    assert_int_equal(mkdir(tmpdir_path(p, dir, "sub"), 0700), 0);
    assert_int_equal(mkdir(tmpdir_path(p, dir, "sub/deeper"), 0700), 0);
    write_file(tmpdir_path(p, dir, "sub/deeper/b"));
    assert_int_equal(symlink(outside, tmpdir_path(p, dir, "sub/link")), 0);
    assert_int_equal(tmpdir_remove(dir), 0);
    assert_false(exists(dir));
    assert_true(exists(tmpdir_path(q, outside, "keep"))); /* the link was not followed */
    assert_int_equal(tmpdir_remove(outside), 0);
    assert_false(exists(outside));
    assert_int_not_equal(tmpdir_remove(dir), 0); /* already gone */
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_make_is_fresh),
                                       cmocka_unit_test(test_remove_recursive_no_follow)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
