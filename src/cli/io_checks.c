/* io_checks.c - the files a command names, checked before any work, and
 * standard output checked at the end.
 *
 * An output that is also an input (the same path, a symlink to it, another
 * spelling such as dir/../q.npy, a hard link) would be destroyed by the run,
 * as would an input named like an output's temporary "<out>.tmp" (a stale
 * one is removed before writing). Both are refused before anything is read,
 * as are outputs that cannot be created, so a long run does not end in a
 * lost input or an unwritable result. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "ringattn/dist.h"
#include "ringattn/fileio.h"
#include "train_io.h"

/* The same path text is a clash even where ra_same_file cannot resolve it
 * (a directory that does not exist yet). */
static int same(const char *a, const char *b)
{
    return !strcmp(a, b) || ra_same_file(a, b);
}

static ra_status check_input(const char *cmd, const ra_cli_file *in)
{
    char what[96];
    snprintf(what, sizeof what, "%s: %s", cmd, in->opt);
    int fd;
    RA_TRY(ra_file_open_input(in->path, what, &fd, NULL)); /* refuses a FIFO without blocking */
    close(fd);
    return RA_OK;
}

static ra_status check_clashes(const char *cmd, const ra_cli_file *ins, int nin, const ra_cli_file *outs,
                               int nout)
{
    for (int o = 0; o < nout; o++) {
        if (!outs[o].path) continue;
        char tmp[PATH_MAX];
        int has_tmp = ra_tmp_name(tmp, sizeof tmp, outs[o].path);
        for (int i = 0; i < nin; i++) {
            if (!ins[i].path) continue;
            if (same(outs[o].path, ins[i].path))
                return RA_FAIL(RA_ERR_ARG, "%s: %s %s is the same file as the input %s %s; writing it would "
                                           "destroy the input: name another output file",
                               cmd, outs[o].opt, outs[o].path, ins[i].opt, ins[i].path);
            if (has_tmp && same(tmp, ins[i].path))
                return RA_FAIL(RA_ERR_ARG, "%s: the input %s %s is the temporary file '%s' of %s %s, which is "
                                           "replaced while writing it: rename the input or name another output",
                               cmd, ins[i].opt, ins[i].path, tmp, outs[o].opt, outs[o].path);
        }
        for (int p = 0; p < nout; p++) { /* one output would overwrite another */
            if (p == o || !outs[p].path) continue;
            if (p < o && same(outs[o].path, outs[p].path))
                return RA_FAIL(RA_ERR_ARG, "%s: %s %s and %s %s name the same file; give each output its "
                                           "own file", cmd, outs[p].opt, outs[p].path, outs[o].opt, outs[o].path);
            if (has_tmp && same(tmp, outs[p].path))
                return RA_FAIL(RA_ERR_ARG, "%s: %s %s is the temporary file '%s' of %s %s, which is replaced "
                                           "while writing it: give each output another name",
                               cmd, outs[p].opt, outs[p].path, tmp, outs[o].opt, outs[o].path);
        }
    }
    return RA_OK;
}

/* A leftover temporary's kind, when it is not a regular file: the write
 * unlinks a file, FIFO or link there (deleting it) and fails on a directory. */
static const char *tmp_kind(const struct stat *st)
{
    return S_ISDIR(st->st_mode)    ? " (a directory)"
           : S_ISFIFO(st->st_mode) ? " (a FIFO)"
           : S_ISLNK(st->st_mode)  ? " (a symbolic link)"
           : S_ISREG(st->st_mode)  ? ""
                                   : " (a special file)";
}

ra_status ra_check_leftover_tmps(const char *what, const char *const *paths, int n)
{
    char list[1024] = "";
    size_t len = 0;
    int found = 0, dirs = 0;
    struct stat st;
    for (int i = 0; i < n; i++) {
        char tmp[PATH_MAX];
        if (!paths[i] || !ra_tmp_name(tmp, sizeof tmp, paths[i]) || lstat(tmp, &st) != 0 || ra_file_held(tmp))
            continue; /* one being written is refused by name in ra_check_output_fresh */
        if (len < sizeof list)
            len += (size_t)snprintf(list + len, sizeof list - len, "%s%s%s", found ? ", " : "", tmp, tmp_kind(&st));
        found++;
        dirs += S_ISDIR(st.st_mode) != 0;
    }
    if (found < 2) return RA_OK; /* one: ra_check_output_fresh says it */
    return RA_FAIL(RA_ERR_ARG, "%s: %d temporaries of its outputs exist (%s); each output is written there first, "
                   "which would %s: remove them (a killed run's leftovers) or move them away", what, found, list,
                   dirs == found ? "fail on a directory"
                   : dirs        ? "delete them, or fail on a directory"
                                 : "delete them");
}

ra_status ra_check_output_fresh(const char *path, const char *what)
{
    struct stat st;
    char tmp[PATH_MAX], target[PATH_MAX];
    ra_dir_of(path, tmp, sizeof tmp);
    RA_TRY(ra_check_not_kernel_fs(path, tmp, what)); /* first: its directory's "does not exist" would mislead */
    if (lstat(path, &st) == 0 && S_ISLNK(st.st_mode)) {
        ssize_t n = readlink(path, target, sizeof target - 1);
        target[n > 0 ? n : 0] = '\0';
        return RA_FAIL(RA_ERR_ARG, "%s %s: is a symbolic link (to %s); the output replaces it atomically, which "
                                   "would replace the link, not write to its target: give the target's path, or "
                                   "remove the link first", what, path, target);
    }
    if (ra_same_file(path, "/proc/self/exe")) /* --trace ringattn, when ringattn.json was meant */
        return RA_FAIL(RA_ERR_ARG, "%s %s: is the ringattn program itself; give another file name", what, path);
    RA_TRY(ra_check_not_run_file(path, what)); /* a checkpoint, or a running train's directory */
    if (ra_file_held(path)) /* a running train's metrics file: replacing it lost the run's record */
        return RA_FAIL(RA_ERR_ARG, "%s %s: another process holds it locked (a training run writing its metrics "
                                   "there); give another file name", what, path);
    if (ra_tmp_name(tmp, sizeof tmp, path) && ra_file_held(tmp))
        return RA_FAIL(RA_ERR_ARG, "%s %s: another process is writing it now (its temporary %s is locked); wait "
                                   "for that run to end, or choose another output", what, path, tmp);
    if (ra_tmp_name(tmp, sizeof tmp, path) && lstat(tmp, &st) == 0)
        return RA_FAIL(RA_ERR_ARG, "%s %s: %s%s exists; the output is written there first, which would %s: "
                                   "remove it (a killed run's leftover) or move it away", what, path, tmp,
                       tmp_kind(&st), S_ISDIR(st.st_mode) ? "fail on a directory" : "delete it");
    return RA_OK;
}

ra_status ra_check_files(const char *cmd, const ra_cli_file *ins, int nin, const ra_cli_file *outs, int nout,
                         int probe)
{
    for (int i = 0; i < nin; i++)
        if (ins[i].path) RA_TRY(check_input(cmd, &ins[i]));
    RA_TRY(check_clashes(cmd, ins, nin, outs, nout));
    const char *paths[16] = { 0 };
    for (int o = 0; o < nout && o < 16; o++) paths[o] = outs[o].path;
    RA_TRY(ra_check_leftover_tmps(cmd, paths, nout < 16 ? nout : 16)); /* every leftover at once */
    for (int o = 0; o < nout; o++) {
        if (!outs[o].path) continue;
        /* "-" is standard output in many tools: here it would be a file named so */
        if (strcmp(outs[o].path, "-") == 0)
            return RA_FAIL(RA_ERR_ARG, "%s: %s -: would write a file named '-', not standard output; give ./- "
                           "for a file of that name", cmd, outs[o].opt);
        char what[96];
        snprintf(what, sizeof what, "%s: %s", cmd, outs[o].opt);
        RA_TRY(ra_check_output_fresh(outs[o].path, what));
        if (probe) RA_TRY(ra_check_output_path(outs[o].path, what));
    }
    return RA_OK;
}

ra_status ra_stdout_finish(const ra_cli *c)
{
    ra_status st = RA_OK;
    if (c->rank == 0) { /* only rank 0 prints results */
        errno = 0;
        int flushed = fflush(stdout) == 0;
        int e = errno;
        if (!flushed || ferror(stdout))
            st = RA_FAIL(RA_ERR_IO, "writing the results to standard output failed%s%s (a full disk or a "
                                    "closed pipe?): the printed results are incomplete",
                         e ? ": " : "", e ? strerror(e) : "");
    }
    return ra_agree(c->comm, st);
}

ra_status ra_cli_not_written(const char *cmd, const char *opt, const char *path, ra_status st)
{
    if (st == RA_OK || st == RA_ERR_PEER) return st;
    char why[RA_ERROR_MAX]; /* RA_FAIL writes the message it would read */
    snprintf(why, sizeof why, "%s", ra_last_error());
    return RA_FAIL(st, "%s: %s %s was not written: %s", cmd, opt, path, why);
}
