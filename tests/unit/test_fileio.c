/* test_fileio.c - the file-I/O module: non-regular inputs refused without
 * blocking, size caps, atomic outputs that replace (never follow) a final
 * symlink and leave the old file on failure, sets of outputs renamed
 * together, clash detection, output checks, and a temporary another
 * process is writing neither taken nor removed. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "ringattn/fileio.h"
#include "tmpdir.h"

static char dir[TMPDIR_CAP];

static int setup(void **state)
{
    (void)state;
    return tmpdir_make(dir, "test_fileio");
}

static int teardown(void **state)
{
    (void)state;
    return tmpdir_remove(dir);
}

static void path_in(char *out, const char *name) { tmpdir_path(out, dir, name); }

static void write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static char *slurp(const char *path)
{
    static char buf[4096];
    FILE *f = fopen(path, "r");
    if (!f) return NULL;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    return buf;
}

static void test_refuses_non_regular(void **state)
{
    (void)state;
    char fifo[TMPDIR_CAP];
    path_in(fifo, "pipe");
    assert_int_equal(mkfifo(fifo, 0600), 0);
    int fd;
    int64_t size;
    /* would block forever without O_NONBLOCK: the test itself would hang */
    assert_int_equal(ra_file_open_input(fifo, "--q", &fd, &size), RA_ERR_IO);
    assert_non_null(strstr(ra_last_error(), "FIFO"));
    assert_non_null(strstr(ra_last_error(), "--q"));
    assert_int_equal(ra_file_open_input(dir, "config", &fd, &size), RA_ERR_IO);
    assert_non_null(strstr(ra_last_error(), "is a directory"));
    assert_int_equal(ra_file_open_input("/dev/zero", "prompt", &fd, &size), RA_ERR_IO);
    assert_non_null(strstr(ra_last_error(), "character device"));
    assert_int_equal(ra_file_open_input("", "data.path", &fd, &size), RA_ERR_ARG);
}

static void test_read_all_cap(void **state)
{
    (void)state;
    char p[TMPDIR_CAP];
    path_in(p, "small.txt");
    write_text(p, "hello world");
    char *text;
    size_t len;
    assert_int_equal(ra_file_read_all(p, "config", 64, &text, &len), RA_OK);
    assert_int_equal(len, 11);
    assert_string_equal(text, "hello world");
    free(text);
    assert_int_equal(ra_file_read_all(p, "config", 10, &text, &len), RA_ERR_ARG);
    assert_non_null(strstr(ra_last_error(), "11 bytes"));
    assert_null(text);
}

static void test_pread_short(void **state)
{
    (void)state;
    char p[TMPDIR_CAP];
    path_in(p, "short.bin");
    write_text(p, "abc");
    int fd = open(p, O_RDONLY);
    char buf[8];
    assert_int_equal(ra_pread_full(fd, p, buf, 3, 0), RA_OK);
    assert_memory_equal(buf, "abc", 3);
    assert_int_equal(ra_pread_full(fd, p, buf, 4, 0), RA_ERR_FORMAT);
    assert_non_null(strstr(ra_last_error(), "1 bytes short"));
    /* a read far past the end (a file cut while in use): where it ends, not where the read was */
    assert_int_equal(ra_pread_full(fd, p, buf, 2, 1000), RA_ERR_FORMAT);
    assert_non_null(strstr(ra_last_error(), "file ends at offset 3, before the 2 bytes wanted at offset 1000"));
    close(fd);
}

static void test_atomic_replaces_symlink(void **state)
{
    (void)state;
    char target[TMPDIR_CAP], link[TMPDIR_CAP];
    path_in(target, "precious.txt");
    path_in(link, "out.txt");
    write_text(target, "keep me");
    assert_int_equal(symlink(target, link), 0);
    assert_int_equal(ra_write_file_atomic(link, "new", 3), RA_OK);
    assert_string_equal(slurp(target), "keep me"); /* the link's target untouched */
    assert_string_equal(slurp(link), "new");
    struct stat st;
    assert_int_equal(lstat(link, &st), 0);
    assert_true(S_ISREG(st.st_mode)); /* the link itself was replaced */
}

static void test_atomic_tmp_symlink_not_followed(void **state)
{
    (void)state;
    char target[TMPDIR_CAP], out[TMPDIR_CAP], tmp[TMPDIR_CAP + 8];
    path_in(target, "victim.txt");
    path_in(out, "result.txt");
    write_text(target, "victim");
    snprintf(tmp, sizeof tmp, "%s" RA_TMP_SUFFIX, out);
    assert_int_equal(symlink(target, tmp), 0); /* a planted stale .tmp link */
    assert_int_equal(ra_write_file_atomic(out, "x", 1), RA_OK);
    assert_string_equal(slurp(target), "victim");
    assert_string_equal(slurp(out), "x");
}

static void test_atomic_failure_keeps_old(void **state)
{
    (void)state;
    char out[TMPDIR_CAP];
    path_in(out, "kept.txt");
    write_text(out, "old");
    int fd;
    assert_int_equal(ra_atomic_create(out, &fd), RA_OK);
    assert_int_equal(write(fd, "partial", 7), 7);
    assert_int_equal(ra_atomic_finish(out, fd, RA_ERR_IO), RA_ERR_IO);
    assert_string_equal(slurp(out), "old");
    char tmp[TMPDIR_CAP + 8];
    snprintf(tmp, sizeof tmp, "%s" RA_TMP_SUFFIX, out);
    assert_int_equal(access(tmp, F_OK), -1); /* no temporary left behind */
    assert_int_equal(ra_write_file_atomic("/dev/full/x", "a", 1) != RA_OK, 1);
}

/* Two processes writing one output: while one holds its "<path>.tmp" (from
 * ra_atomic_create until the rename), the other is refused, and its abort
 * does not remove the holder's temporary; the holder's commit then lands
 * whole, and a temporary left by an ended process is taken as stale. */
static void test_atomic_tmp_in_use(void **state)
{
    (void)state;
    char out[TMPDIR_CAP], tmp[TMPDIR_CAP + 8];
    path_in(out, "shared.txt");
    snprintf(tmp, sizeof tmp, "%s" RA_TMP_SUFFIX, out);
    int go[2], ready[2];
    assert_int_equal(pipe(go), 0);
    assert_int_equal(pipe(ready), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) { /* the holder: create, write, wait for the word, commit */
        int fd;
        char c;
        if (ra_atomic_create(out, &fd) != RA_OK || write(fd, "holder", 6) != 6) _exit(2);
        if (ra_file_sync_close(fd, tmp) != RA_OK) _exit(3); /* closed: the lock must outlive fd */
        if (write(ready[1], "r", 1) != 1 || read(go[0], &c, 1) != 1) _exit(4);
        _exit(ra_atomic_commit(out) == RA_OK ? 0 : 5);
    }
    char c;
    assert_int_equal(read(ready[0], &c, 1), 1);
    int fd = -1;
    assert_int_equal(ra_atomic_create(out, &fd), RA_ERR_IO);
    assert_int_equal(fd, -1);
    assert_non_null(strstr(ra_last_error(), "another process is writing it now"));
    ra_atomic_abort(out); /* what an error path runs: not the holder's file */
    assert_string_equal(slurp(tmp), "holder");
    assert_int_equal(write(go[1], "g", 1), 1);
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    assert_string_equal(slurp(out), "holder");
    close(go[0]), close(go[1]), close(ready[0]), close(ready[1]);
    /* a temporary nobody holds (a killed run's) is stale: replaced */
    write_text(tmp, "stale");
    assert_int_equal(ra_write_file_atomic(out, "next", 4), RA_OK);
    assert_string_equal(slurp(out), "next");
    assert_int_equal(access(tmp, F_OK), -1);
}

/* A set of outputs: staged files are invisible until all are renamed; a
 * failure renames none and leaves no .tmp. */
static void test_staged_set(void **state)
{
    (void)state;
    char a[TMPDIR_CAP], b[TMPDIR_CAP], ta[TMPDIR_CAP + 8], tb[TMPDIR_CAP + 8];
    path_in(a, "set_a.txt");
    path_in(b, "set_b.txt");
    snprintf(ta, sizeof ta, "%s" RA_TMP_SUFFIX, a);
    snprintf(tb, sizeof tb, "%s" RA_TMP_SUFFIX, b);
    write_text(a, "old a");
    write_text(b, "old b");
    const char *const both[] = { a, b };
    /* the second output failed: neither path changes, no .tmp is left */
    assert_int_equal(ra_write_file_staged(a, "new a", 5), RA_OK);
    assert_string_equal(slurp(a), "old a");
    assert_int_equal(access(ta, F_OK), 0);
    assert_int_equal(ra_atomic_commit_all(both, 2, RA_ERR_IO), RA_ERR_IO);
    assert_string_equal(slurp(a), "old a");
    assert_string_equal(slurp(b), "old b");
    assert_int_equal(access(ta, F_OK), -1);
    assert_int_equal(access(tb, F_OK), -1);
    /* both staged: both renamed together */
    assert_int_equal(ra_write_file_staged(a, "new a", 5), RA_OK);
    assert_int_equal(ra_write_file_staged(b, "new b", 5), RA_OK);
    assert_string_equal(slurp(b), "old b");
    assert_int_equal(ra_atomic_commit_all(both, 2, RA_OK), RA_OK);
    assert_string_equal(slurp(a), "new a");
    assert_string_equal(slurp(b), "new b");
    /* a rename that fails (the second was never staged): no .tmp is left */
    assert_int_equal(ra_write_file_staged(a, "third", 5), RA_OK);
    assert_int_not_equal(ra_atomic_commit_all(both, 2, RA_OK), RA_OK);
    assert_int_equal(access(ta, F_OK), -1);
    assert_string_equal(slurp(b), "new b");
    /* a staging write that fails removes its .tmp */
    assert_int_not_equal(ra_write_file_staged("/dev/full/x", "a", 1), RA_OK);
}

static void test_same_file(void **state)
{
    (void)state;
    char a[TMPDIR_CAP], b[TMPDIR_CAP], c[TMPDIR_CAP], rel[TMPDIR_CAP + 16];
    path_in(a, "a.npy");
    path_in(b, "b.npy");
    path_in(c, "alias.npy");
    write_text(a, "a");
    assert_int_equal(symlink(a, c), 0);
    assert_true(ra_same_file(a, c));
    assert_false(ra_same_file(a, b));
    snprintf(rel, sizeof rel, "%s/./b.npy", dir);
    assert_true(ra_same_file(b, rel)); /* neither exists: same place */
    assert_false(ra_same_file(a, ""));
}

static void test_output_checks(void **state)
{
    (void)state;
    char p[TMPDIR_CAP], sub[TMPDIR_CAP], file[TMPDIR_CAP];
    path_in(p, "missing/out.npy");
    assert_int_equal(ra_check_output_path(p, "--out"), RA_ERR_IO);
    assert_non_null(strstr(ra_last_error(), "does not exist"));
    assert_int_equal(ra_check_output_path(dir, "--out"), RA_ERR_ARG);
    assert_int_equal(ra_check_output_path("", "--out"), RA_ERR_ARG);
    path_in(p, "ok.npy");
    assert_int_equal(ra_check_output_path(p, "--out"), RA_OK);
    assert_int_equal(access(p, F_OK), -1); /* the check leaves nothing */
    path_in(sub, "ck");
    assert_int_equal(ra_prepare_output_dir(sub, "--checkpoint-dir"), RA_OK);
    assert_int_equal(ra_prepare_output_dir(sub, "--checkpoint-dir"), RA_OK);
    path_in(file, "plain");
    write_text(file, "x");
    assert_int_equal(ra_prepare_output_dir(file, "--checkpoint-dir"), RA_ERR_IO);
    assert_non_null(strstr(ra_last_error(), "not a directory"));
    path_in(p, "no/such/dir");
    assert_int_equal(ra_prepare_output_dir(p, "--checkpoint-dir"), RA_ERR_IO);
    assert_non_null(strstr(ra_last_error(), "parent"));
    assert_int_equal(ra_prepare_output_dir("", "--checkpoint-dir"), RA_ERR_ARG);
    assert_int_equal(ra_prepare_output_dir("/proc/ringattn-ck", "--checkpoint-dir"), RA_ERR_IO);
    assert_non_null(strstr(ra_last_error(), "--checkpoint-dir /proc/ringattn-ck: is in /proc or /sys"));
    /* /proc and /sys refused as such, not as a missing or unwritable directory */
    assert_int_equal(ra_check_output_path("/proc/ringattn-x/out.npy", "--out"), RA_ERR_IO);
    assert_non_null(strstr(ra_last_error(), "--out /proc/ringattn-x/out.npy: is in /proc or /sys"));
    assert_int_equal(ra_check_output_path("/proc/self/out.npy", "--out"), RA_ERR_IO);
    assert_non_null(strstr(ra_last_error(), "is in /proc or /sys"));
    assert_true(ra_dir_on_kernel_fs("/proc/ringattn-x/y"));
    assert_false(ra_dir_on_kernel_fs(dir));
    assert_false(ra_dir_on_kernel_fs("/proc/self/cwd")); /* a link out of /proc: the file system it names */
    /* /dev: root made directories and checkpoints among the devices; /dev/shm is for files */
    assert_int_equal(ra_prepare_output_dir("/dev/ringattn-ck", "--checkpoint-dir"), RA_ERR_IO);
    assert_non_null(strstr(ra_last_error(), "--checkpoint-dir /dev/ringattn-ck: is in /dev, among the device files"));
    assert_int_equal(ra_check_output_path("/dev/ringattn-x.npy", "--out"), RA_ERR_IO);
    assert_non_null(strstr(ra_last_error(), "is in /dev"));
    assert_int_equal(ra_dir_on_kernel_fs("/dev"), 2);
    assert_int_equal(ra_dir_on_kernel_fs("/dev/ringattn-x/y"), 2);
    struct stat shm;
    if (stat("/dev/shm", &shm) == 0) assert_int_equal(ra_dir_on_kernel_fs("/dev/shm/ringattn-x"), 0);
    assert_int_equal(ra_dir_on_kernel_fs("/proc/ringattn-x/y"), 1);
}

/* A directory that is there but cannot be reached is said so, not "does not
 * exist" (it was: /proc/1/cwd as root without CAP_SYS_PTRACE): a mode-000
 * parent for a user; /proc/1/cwd where it is refused; else skipped. */
static void test_output_dir_unreachable(void **state)
{
    (void)state;
    char locked[TMPDIR_CAP], sub[TMPDIR_CAP], out[TMPDIR_CAP + 16], want[3 * TMPDIR_CAP + 64];
    struct stat sb;
    path_in(locked, "locked");
    path_in(sub, "locked/sub");
    assert_int_equal(mkdir(locked, 0755), 0);
    assert_int_equal(mkdir(sub, 0755), 0);
    assert_int_equal(chmod(locked, 0), 0);
    const char *dir = stat(sub, &sb) != 0 && errno == EACCES                  ? sub
                      : stat("/proc/1/cwd", &sb) != 0 && errno == EACCES ? "/proc/1/cwd"
                                                                          : NULL;
    ra_status st = RA_OK;
    if (dir) {
        snprintf(out, sizeof out, "%s/o.npy", dir);
        st = ra_check_output_path(out, "--out");
        snprintf(want, sizeof want, "--out %s: cannot access directory '%s': Permission denied", out, dir);
    }
    assert_int_equal(chmod(locked, 0755), 0); /* before any assertion: the teardown removes it */
    if (!dir) skip(); /* root that may read every directory */
    assert_int_equal(st, RA_ERR_IO);
    assert_string_equal(ra_last_error(), want);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_refuses_non_regular),
        cmocka_unit_test(test_read_all_cap),
        cmocka_unit_test(test_pread_short),
        cmocka_unit_test(test_atomic_replaces_symlink),
        cmocka_unit_test(test_atomic_tmp_symlink_not_followed),
        cmocka_unit_test(test_atomic_failure_keeps_old),
        cmocka_unit_test(test_atomic_tmp_in_use),
        cmocka_unit_test(test_staged_set),
        cmocka_unit_test(test_same_file),
        cmocka_unit_test(test_output_checks),
        cmocka_unit_test(test_output_dir_unreachable),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
