/* train_io.c - the checkpoint directory, checkpoints and last.ckpt of
 * `ringattn train` (train_io.h; the metrics file: train_metrics.c). Every
 * write goes through fileio.h: "<path>.tmp", one directory-fsync policy, full writes. */
#include "train_io.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ringattn/dist.h"
#include "ringattn/fileio.h"
#include "shard_io.h"

/* ---- checks before step 1 ------------------------------------------------------ */

/* "last.ckpt" or "step-*.ckpt": the names a run writes into its directory. */
static int is_checkpoint_name(const char *name)
{
    size_t n = strlen(name);
    if (strcmp(name, "last.ckpt") == 0) return 1;
    return n > 10 && strncmp(name, "step-", 5) == 0 && strcmp(name + n - 5, ".ckpt") == 0;
}

/* name without its RA_TMP_SUFFIX into out (cap bytes); 1 when it had one. */
static int strip_tmp(const char *name, char *out, size_t cap)
{
    snprintf(out, cap, "%s", name);
    size_t n = strlen(out), sl = strlen(RA_TMP_SUFFIX);
    if (n <= sl || strcmp(out + n - sl, RA_TMP_SUFFIX) != 0) return 0;
    out[n - sl] = '\0';
    return 1;
}

static ra_status check_steps(const ra_config *cfg, const ra_train_files *f)
{
    if (!f->resume || cfg->steps > f->resume_step) return RA_OK;
    if (f->resume_step == INT_MAX) /* no train.steps is larger */
        return RA_FAIL(RA_ERR_ARG, "--resume %s: the checkpoint is at step %d, the last a run can reach: nothing "
                       "to do", f->resume, f->resume_step);
    return RA_FAIL(RA_ERR_ARG, "--resume %s: the checkpoint is at step %d; train.steps = %d: nothing to do. Set "
                   "train.steps > %d (--set train.steps=N) to train further", f->resume, f->resume_step, cfg->steps,
                   f->resume_step);
}

/* The checkpoints in dir: every name a run writes (after < 0), or the
 * step-N.ckpt with N > after. Their count into *n, the first two names
 * into shown. */
static ra_status list_checkpoints(const char *dir, const char *opt, int after, char shown[2][280], int *n)
{
    DIR *d = opendir(dir);
    if (!d) return RA_FAIL(RA_ERR_IO, "%s %s: cannot list it: %s", opt, dir, strerror(errno));
    *n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (after < 0 ? is_checkpoint_name(e->d_name) : ra_ckpt_step_of(e->d_name) > after) {
            if (*n < 2) snprintf(shown[*n], sizeof shown[*n], "%.255s", e->d_name);
            (*n)++;
        }
    closedir(d);
    return RA_OK;
}

/* A fresh run must not replace the checkpoints of another run. */
static ra_status no_old_checkpoints(const char *dir, const char *opt)
{
    char shown[2][280];
    int n = 0;
    RA_TRY(list_checkpoints(dir, opt, -1, shown, &n));
    if (n == 0) return RA_OK;
    return RA_FAIL(RA_ERR_ARG, "%s %s already holds %d checkpoint file%s (%s%s%s%s): a new run would replace them. "
                   "Continue that run with --resume %s, choose another --checkpoint-dir, or remove them",
                   opt, dir, n, n > 1 ? "s" : "", shown[0], n > 1 ? ", " : "", n > 1 ? shown[1] : "",
                   n > 2 ? ", ..." : "", dir);
}

/* The run's input files (NULL where there is none), with how messages
 * name them. */
enum { RUN_INPUTS = 4 };
typedef struct {
    const char *path, *what;
} run_input;
static void run_inputs(const ra_config *cfg, const ra_train_files *f, run_input in[RUN_INPUTS])
{
    const int data = cfg->source_id != RA_SOURCE_RECALL;
    in[0] = (run_input){ f->config, "the --config file" };
    in[1] = (run_input){ f->resume, "the checkpoint resumed from" };
    in[2] = (run_input){ data ? cfg->path : NULL, "the training data (data.path)" };
    in[3] = (run_input){ data && cfg->val_path[0] ? cfg->val_path : NULL, "the held-out data (data.val_path)" };
}

/* Which of the run's input files path is ("the --config file", ...), or NULL. */
static const char *input_named(const ra_config *cfg, const ra_train_files *f, const char *path)
{
    run_input in[RUN_INPUTS];
    run_inputs(cfg, f, in);
    for (int i = 0; i < RUN_INPUTS; i++)
        if (in[i].path && ra_same_file(path, in[i].path)) return in[i].what;
    return NULL;
}

/* What the run would do to a file at path (an input, as named or as a
 * symlink resolves it) in the checkpoint directory, into said ("" when
 * nothing). */
static void written_as(const ra_config *cfg, int start, int resumed, const char *path, char *said, size_t cap)
{
    said[0] = '\0';
    char dir[RA_PATH_MAX], plain[RA_PATH_MAX];
    ra_dir_of(path, dir, sizeof dir);
    if (!ra_same_file(dir, cfg->checkpoint_dir)) return;
    const char *slash = strrchr(path, '/'), *base = slash ? slash + 1 : path;
    const int tmp = strip_tmp(base, plain, sizeof plain);
    const long n = ra_ckpt_step_of(plain);
    struct stat st;
    if (!strcmp(plain, RA_CKPT_LOCK_NAME))
        snprintf(said, cap, "the directory's lock file, which the run rewrites");
    else if (!strcmp(plain, "last.ckpt") && (tmp || !resumed))
        snprintf(said, cap, "a name the run replaces at every checkpoint");
    else if (!strcmp(plain, "last.ckpt") && lstat(path, &st) == 0 && !S_ISLNK(st.st_mode)) {
        /* a hard link of step-<start>.ckpt stays by that name: nothing is lost */
        char name[32], step[RA_PATH_MAX + 32];
        snprintf(name, sizeof name, "step-%08d.ckpt", start);
        ra_join_path(step, sizeof step, dir, name);
        if (!ra_same_file(path, step))
            snprintf(said, cap, "a file, not the link to a step-N.ckpt that the run replaces at every checkpoint "
                                "(rename it %s to keep it)", name);
    }
    else if (n > start && n <= cfg->steps && (tmp || !resumed))
        snprintf(said, cap, "a name the run writes at step %ld", n);
}

/* An input that lives in the checkpoint directory under a name the run
 * writes there would be destroyed: the lock file (rewritten at the start),
 * last.ckpt and its .tmp (replaced at every checkpoint), and step-N.ckpt
 * and its .tmp for a step N this run may reach (after the resumed step, up
 * to train.steps: a signal or a non-finite stop saves at any step). The
 * checkpoint resumed from may be its own step-N.ckpt, or last.ckpt when
 * that is a link. Each input is checked as named and as its symlinks
 * resolve (a link outside the directory to a file inside it). */
static ra_status inputs_not_written(const ra_config *cfg, const ra_train_files *f)
{
    run_input in[RUN_INPUTS];
    run_inputs(cfg, f, in);
    const int start = f->resume ? f->resume_step : 0;
    for (int i = 0; i < RUN_INPUTS; i++) {
        if (!in[i].path) continue;
        char real[PATH_MAX], said[160];
        const char *as[2] = { in[i].path, realpath(in[i].path, real) ? real : NULL };
        for (int k = 0; k < 2; k++) {
            if (!as[k]) continue;
            written_as(cfg, start, in[i].path == f->resume, as[k], said, sizeof said);
            if (said[0])
                return RA_FAIL(RA_ERR_ARG, "%s %s%s%s%s is %s in the checkpoint directory %s: the run would destroy "
                               "it. Move or copy it out of %s first, or choose another --checkpoint-dir", in[i].what,
                               in[i].path, k ? " (a link to " : "", k ? as[k] : "", k ? ")" : "", said,
                               cfg->checkpoint_dir, cfg->checkpoint_dir);
        }
    }
    return RA_OK;
}

/* Resumed into its own directory at step s: checkpoints of later steps
 * there belong to a history this run would replace, step by step. */
static ra_status no_later_checkpoints(const char *dir, const char *opt, int s)
{
    char shown[2][280], latest[280];
    int n = 0;
    RA_TRY(list_checkpoints(dir, opt, s, shown, &n));
    if (n == 0) return RA_OK;
    const long newest = ra_ckpt_newest_step(dir, latest, sizeof latest);
    /* the advice below names the newest: not when it cannot be resumed
     * (checked whole, its checksum too) */
    char path[RA_PATH_MAX + 300], why[RA_ERROR_MAX];
    ra_ckpt_state ls = { 0 };
    ra_join_path(path, sizeof path, dir, latest);
    if (ra_ckpt_peek(path, NULL, &ls) != RA_OK) {
        snprintf(why, sizeof why, "%s", ra_last_error());
        return RA_FAIL(RA_ERR_ARG, "%s %s holds %d checkpoint%s after step %d, the one resumed from, and the newest "
                       "cannot be resumed (%s): remove %s, or resume into another directory (--checkpoint-dir)",
                       opt, dir, n, n > 1 ? "s" : "", s, why, n > 1 ? "them" : "it");
    }
    if (ls.step != (uint64_t)newest)
        return RA_FAIL(RA_ERR_ARG, "%s %s holds %d checkpoint%s after step %d, the one resumed from, and the newest, "
                       "%s, holds step %llu (renamed, or copied over another name): remove %s, or resume into "
                       "another directory (--checkpoint-dir)", opt, dir, n, n > 1 ? "s" : "", s, latest,
                       (unsigned long long)ls.step, n > 1 ? "them" : "it");
    /* last.ckpt is moved after step-N.ckpt is written: a job killed between
     * the two leaves last.ckpt one checkpoint behind the newest */
    return RA_FAIL(RA_ERR_ARG, "%s %s holds %d checkpoint%s after step %d, the one resumed from (%s%s%s%s): this "
                   "run would replace %s with another history. Continue from the newest with --resume %s/%s, resume "
                   "into another directory (--checkpoint-dir), or remove %s", opt, dir, n, n > 1 ? "s" : "", s,
                   shown[0], n > 1 ? ", " : "", n > 1 ? shown[1] : "", n > 2 ? ", ..." : "", n > 1 ? "them" : "it",
                   dir, latest, n > 1 ? "them" : "it");
}

/* The directory a resumed checkpoint lives in (--resume DIR: DIR itself). */
static void resume_dir(const char *resume, char *out, size_t cap)
{
    struct stat st;
    if (stat(resume, &st) == 0 && S_ISDIR(st.st_mode)) snprintf(out, cap, "%s", resume);
    else ra_dir_of(resume, out, cap);
}

/* path is a file of dir that a run writes (a checkpoint name, a partial
 * one, or the lock), through a hard link: *name gets it. */
static int links_to_checkpoint(const char *path, const char *dir, char *name, size_t cap)
{
    DIR *d = opendir(dir);
    if (!d) return 0;
    struct dirent *e;
    int found = 0;
    while (!found && (e = readdir(d)) != NULL) {
        char plain[sizeof e->d_name], full[RA_PATH_MAX + 280];
        strip_tmp(e->d_name, plain, sizeof plain);
        if (!is_checkpoint_name(plain) && strcmp(plain, RA_CKPT_LOCK_NAME)) continue;
        snprintf(full, sizeof full, "%s/%s", dir, e->d_name);
        struct stat a, b; /* lstat: last.ckpt is a symlink; the file it names is listed too */
        found = lstat(full, &a) == 0 && stat(path, &b) == 0 && a.st_dev == b.st_dev && a.st_ino == b.st_ino;
        if (found) snprintf(name, cap, "%.255s", e->d_name);
    }
    closedir(d);
    return found;
}

/* Why an existing regular file is not this run's to write (NULL: it is):
 * it does not start as a metrics file does ({"step": N, ...}; a shorter
 * start of that too: a first record cut short), so it is a user's file,
 * which a fresh run would replace and a resume append to; or it cannot be
 * read to tell (the atomic replace would never open it: it replaced an
 * unreadable file unseen). */
static const char *foreign_metrics(const char *path)
{
    static const char start[] = "{\"step\": ";
    struct stat st;
    if (lstat(path, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size == 0) return NULL;
    int fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) return "cannot be read to check that it holds metrics";
    char head[sizeof start - 1];
    const ssize_t n = read(fd, head, sizeof head);
    close(fd);
    if (n < 0) return "cannot be read to check that it holds metrics";
    return n > 0 && memcmp(head, start, (size_t)n) != 0 ? "holds something other than metrics (it does not start "
                                                           "with {\"step\": ...)" : NULL;
}

int ra_train_is_branch(const char *resume, const char *ckdir)
{
    char from[PATH_MAX], real[PATH_MAX];
    /* where the checkpoint file is (DIR/last.ckpt may link into another directory) */
    if (realpath(resume, real)) ra_dir_of(real, from, sizeof from);
    else resume_dir(resume, from, sizeof from);
    return !ra_same_file(from, ckdir);
}

/* The metrics file: creatable, and none of the run's inputs or checkpoints
 * (by name, or a hard link to one in the checkpoint directory or the one
 * resumed from: appending to it would corrupt that checkpoint), nor a file
 * of something else. */
static ra_status check_metrics(const ra_config *cfg, const ra_train_files *f)
{
    const char *m = cfg->metrics, *opt = f->metrics_opt;
    if (!m[0]) return RA_OK;
    RA_TRY(ra_check_output_path(m, opt));
    const char *what = input_named(cfg, f, m);
    if (what) return RA_FAIL(RA_ERR_ARG, "%s %s: is %s; give another file name for the metrics", opt, m, what);
    RA_TRY(ra_check_not_checkpoint(m, opt, cfg->checkpoint_dir, "the metrics"));
    char from[RA_PATH_MAX], name[280];
    if (f->resume) resume_dir(f->resume, from, sizeof from);
    const char *dirs[2] = { cfg->checkpoint_dir, f->resume ? from : NULL };
    for (int i = 0; i < 2; i++)
        if (dirs[i] && links_to_checkpoint(m, dirs[i], name, sizeof name))
            return RA_FAIL(RA_ERR_ARG, "%s %s: is the file %s/%s (a hard link to it): appending the metrics would "
                           "corrupt it; give another file name for the metrics", opt, m, dirs[i], name);
    if (ra_file_held(m)) /* a live run's metrics: a fresh run replaced them, a resume cut them */
        return RA_FAIL(RA_ERR_ARG, "%s %s: another run is writing its metrics there now (it holds the file locked); "
                       "give another file name for the metrics", opt, m);
    const char *foreign = foreign_metrics(m);
    if (foreign)
        return RA_FAIL(RA_ERR_ARG, "%s %s: %s, which this run would %s; give another file name, or remove it", opt,
                       m, foreign, f->resume ? "append to" : "replace");
    return RA_OK;
}

ra_status ra_check_not_checkpoint(const char *path, const char *opt, const char *ckdir, const char *what)
{
    char dir[RA_PATH_MAX];
    const char *slash = strrchr(path, '/'), *base = slash ? slash + 1 : path;
    ra_dir_of(path, dir, sizeof dir);
    char tmp_base[RA_PATH_MAX];
    strip_tmp(base, tmp_base, sizeof tmp_base);
    if (!ra_same_file(dir, ckdir)) return RA_OK;
    if (is_checkpoint_name(tmp_base))
        return RA_FAIL(RA_ERR_ARG, "%s %s: is a checkpoint name in the checkpoint directory; give another file "
                       "name for %s", opt, path, what);
    if (strcmp(tmp_base, RA_CKPT_LOCK_NAME) == 0)
        return RA_FAIL(RA_ERR_ARG, "%s %s: is the checkpoint directory's lock file; give another file name for %s",
                       opt, path, what);
    return RA_OK;
}

/* One run at a time in a checkpoint directory: rank 0 holds an flock on
 * DIR/.ringattn.lock from here until its process ends (the kernel lets go
 * even on SIGKILL), so two runs cannot interleave their checkpoints and
 * last.ckpt. The file says who holds it, for the refusal. A file system
 * without locks (some NFS or Lustre mounts) gets a warning, not an error. */
static int lock_fd = -1;
static int made_lock; /* this run created the lock file */
static dev_t locked_dev; /* the directory locked, to tell a lock file removed from a directory replaced */
static ino_t locked_ino;

static ra_status lock_checkpoint_dir(const char *dir, const char *opt)
{
    if (lock_fd >= 0) return RA_OK;
    char path[RA_PATH_MAX + 32];
    snprintf(path, sizeof path, "%s/%s", dir, RA_CKPT_LOCK_NAME);
    /* made here, or a lock file an earlier run left (then it stays) */
    int fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK, 0644);
    made_lock = fd >= 0;
    if (fd < 0 && errno == EEXIST) fd = open(path, O_RDWR | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0 && errno == EACCES) /* another user's lock file in a shared directory: flock needs no write */
        fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0 && errno == ELOOP) /* O_NOFOLLOW met a link: not followed, and said so */
        return RA_FAIL(RA_ERR_IO, "%s %s: %s is a symbolic link, not a regular file; remove it (its target is "
                       "left alone)", opt, dir, RA_CKPT_LOCK_NAME);
    if (fd < 0)
        return RA_FAIL(RA_ERR_IO, "%s %s: cannot open its lock file %s: %s", opt, dir, RA_CKPT_LOCK_NAME,
                       strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return RA_FAIL(RA_ERR_IO, "%s %s: %s is not a regular file; remove it", opt, dir, RA_CKPT_LOCK_NAME);
    }
    if (ra_flock_ex(fd) != 0) {
        int err = errno;
        if (err == EWOULDBLOCK) {
            char who[128] = "";
            ssize_t n = pread(fd, who, sizeof who - 1, 0);
            who[n > 0 ? n : 0] = '\0';
            who[strcspn(who, "\n")] = '\0';
            close(fd);
            return RA_FAIL(RA_ERR_ARG, "%s %s: another ringattn run is writing checkpoints there (%s); wait for it "
                           "to end, or choose another --checkpoint-dir", opt, dir, who[0] ? who : "holder unknown");
        }
        close(fd);
        fprintf(stderr, "ringattn: warning: %s %s: cannot lock it (%s): a second run into it at the same time "
                "would not be refused\n", opt, dir, strerror(err));
        return RA_OK;
    }
    lock_fd = fd; /* held until the process ends */
    struct stat d;
    if (stat(dir, &d) == 0) locked_dev = d.st_dev, locked_ino = d.st_ino;
    return RA_OK;
}

/* The holder's name into the lock file, once the preflight passed: a run
 * refused there leaves a lock file that was there as it was. */
static void sign_lock(void)
{
    if (lock_fd < 0) return;
    char host[64] = "?", who[128];
    gethostname(host, sizeof host - 1);
    host[sizeof host - 1] = '\0';
    int n = snprintf(who, sizeof who, "pid %ld on %s\n", (long)getpid(), host);
    /* a failure here only loses the holder's name from a refusal */
    int said = ftruncate(lock_fd, 0) == 0 && pwrite(lock_fd, who, (size_t)n, 0) == n;
    (void)said;
}

ra_status ra_check_not_run_file(const char *path, const char *what)
{
    if (ra_ckpt_is_one(path))
        return RA_FAIL(RA_ERR_ARG, "%s %s: is a ringattn checkpoint; writing it would destroy it: name another "
                       "file, or remove it first", what, path);
    /* the directory of a run in progress: its lock is held (a shared lock
     * taken for an instant; the run keeps its exclusive one) */
    char dir[RA_PATH_MAX], lock[RA_PATH_MAX + 32];
    ra_dir_of(path, dir, sizeof dir);
    snprintf(lock, sizeof lock, "%s/%s", dir, RA_CKPT_LOCK_NAME);
    int fd = open(lock, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) return RA_OK;
    char who[128] = "";
    int held = flock(fd, LOCK_SH | LOCK_NB) != 0 && errno == EWOULDBLOCK;
    if (held) {
        ssize_t n = pread(fd, who, sizeof who - 1, 0);
        who[n > 0 ? n : 0] = '\0';
        who[strcspn(who, "\n")] = '\0';
    }
    close(fd); /* and with it the shared lock */
    if (held)
        return RA_FAIL(RA_ERR_ARG, "%s %s: is in the checkpoint directory of a training run in progress (%s); "
                       "wait for it to end, or name a file elsewhere", what, path, who[0] ? who : "holder unknown");
    return RA_OK;
}

/* With the directory locked no other run writes there: a checkpoint name
 * + ".tmp" is what a write cut short left (a killed job), as large as a
 * checkpoint. Removed, and said; unless it is one of the run's inputs (a
 * salvaged partial given to --resume, data named so). Only what a write
 * leaves: a regular step-N.ckpt.tmp, a symbolic link last.ckpt.tmp; any
 * other kind there (a user's link, FIFO or directory) is refused before
 * anything is removed. */
static ra_status remove_partials(const ra_config *cfg, const ra_train_files *f)
{
    const char *dir = cfg->checkpoint_dir, *opt = f->ckdir_opt;
    DIR *d = opendir(dir);
    if (!d) return RA_FAIL(RA_ERR_IO, "%s %s: cannot list it: %s", opt, dir, strerror(errno));
    ra_status st = RA_OK;
    for (int pass = 0; pass < 2 && st == RA_OK; pass++) { /* 0: every candidate's kind checked; 1: removed */
        rewinddir(d);
        for (struct dirent *e; st == RA_OK && (e = readdir(d)) != NULL;) {
            char base[sizeof e->d_name], path[RA_PATH_MAX + 256];
            if (!strip_tmp(e->d_name, base, sizeof base) || !is_checkpoint_name(base)) continue;
            snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
            if (input_named(cfg, f, path)) continue;
            const int link = strcmp(base, "last.ckpt") == 0; /* written as a link, renamed over last.ckpt */
            struct stat sb;
            if (pass == 0) {
                if (fstatat(dirfd(d), e->d_name, &sb, AT_SYMLINK_NOFOLLOW) == 0 &&
                    !(link ? S_ISLNK(sb.st_mode) : S_ISREG(sb.st_mode)))
                    st = RA_FAIL(RA_ERR_ARG, "%s %s: %s is %s, not what an interrupted checkpoint write leaves (%s), "
                                 "so nothing was removed: move it out of the directory", opt, dir, e->d_name,
                                 ra_file_kind(sb.st_mode), link ? "a symbolic link" : "a regular file");
            } else if (unlinkat(dirfd(d), e->d_name, 0) != 0) {
                st = RA_FAIL(RA_ERR_IO, "%s %s: cannot remove %s, left by an interrupted checkpoint write: %s", opt,
                             dir, e->d_name, strerror(errno));
            } else {
                printf("checkpoint: removed %s/%s, left by an interrupted write\n", dir, e->d_name);
            }
        }
    }
    closedir(d);
    fflush(stdout);
    return st;
}

/* A refused run leaves a checkpoint directory as it found it: the lock
 * file it made removed while still held (a lock file this run does not
 * hold is another run's, which may have made the directory at the same
 * moment; one it did not make was there: both left alone), then the
 * directory when the run made it, only if that left it empty. */
static void unmake_checkpoint_dir(const char *dir, int made_the_dir)
{
    if (lock_fd >= 0 && made_lock) {
        char path[RA_PATH_MAX + 32];
        snprintf(path, sizeof path, "%s/%s", dir, RA_CKPT_LOCK_NAME);
        (void)unlink(path);
        close(lock_fd), lock_fd = -1;
        made_lock = 0;
    }
    if (made_the_dir) (void)rmdir(dir);
}

static ra_status checks_in_dir(const ra_config *cfg, const ra_train_files *f)
{
    RA_TRY(inputs_not_written(cfg, f)); /* before the lock file is written */
    RA_TRY(lock_checkpoint_dir(cfg->checkpoint_dir, f->ckdir_opt));
    char from[RA_PATH_MAX];
    if (f->resume) resume_dir(f->resume, from, sizeof from);
    /* a fresh run, or a resumed one writing into another run's directory,
     * must find no checkpoints there; one resumed in its own directory no
     * checkpoints after its step */
    if (!f->resume || !ra_same_file(from, cfg->checkpoint_dir))
        RA_TRY(no_old_checkpoints(cfg->checkpoint_dir, f->ckdir_opt));
    else
        RA_TRY(no_later_checkpoints(cfg->checkpoint_dir, f->ckdir_opt, f->resume_step));
    RA_TRY(check_metrics(cfg, f));
    return remove_partials(cfg, f);
}

static int made_dir; /* the preflight made the checkpoint directory */

static ra_status preflight(const ra_config *cfg, const ra_train_files *f)
{
    RA_TRY(check_steps(cfg, f));
    struct stat st;
    const int existed = stat(cfg->checkpoint_dir, &st) == 0;
    RA_TRY(ra_prepare_output_dir(cfg->checkpoint_dir, f->ckdir_opt));
    ra_status s = checks_in_dir(cfg, f);
    if (s != RA_OK) unmake_checkpoint_dir(cfg->checkpoint_dir, !existed);
    else sign_lock();
    made_dir = s == RA_OK && !existed;
    return s;
}

/* Nothing in dir but its lock file (and . and ..). */
static int only_lock_in(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d) return 0;
    int other = 0;
    for (struct dirent *e; !other && (e = readdir(d));)
        other = strcmp(e->d_name, ".") && strcmp(e->d_name, "..") && strcmp(e->d_name, RA_CKPT_LOCK_NAME);
    closedir(d);
    return !other;
}

void ra_train_unmake_dir(const ra_cli *c, const ra_config *cfg)
{
    /* not when the path now leads elsewhere: another run's lock file would go */
    if (c->rank == 0 && ra_train_dir_still_locked(cfg->checkpoint_dir) && only_lock_in(cfg->checkpoint_dir))
        unmake_checkpoint_dir(cfg->checkpoint_dir, made_dir);
    made_dir = 0;
}

ra_status ra_train_preflight(const ra_cli *c, const ra_config *cfg, const ra_train_files *f)
{
    return ra_agree(c->comm, c->rank == 0 ? ra_arg_cmd("train", preflight(cfg, f)) : RA_OK);
}

/* ---- checkpoints --------------------------------------------------------------- */

/* p made absolute against the working directory, when it is relative and
 * the result fits (symlinks kept as given: not realpath) */
static void absolute(char *p, size_t cap)
{
    char cwd[RA_PATH_MAX], out[2 * RA_PATH_MAX];
    if (!p[0] || p[0] == '/' || !getcwd(cwd, sizeof cwd)) return;
    const char *rel = strncmp(p, "./", 2) == 0 ? p + 2 : p;
    const size_t n = (size_t)snprintf(out, sizeof out, "%s/%s", cwd, rel);
    if (n < cap) memcpy(p, out, n + 1);
}

/* The config text a checkpoint stores, with data.path, data.val_path and
 * run.metrics absolute (and, with metrics, run.checkpoint_dir): a resume
 * from another working directory reads and appends the files this run did
 * (relative, a resume elsewhere trained on that directory's corpus.bin,
 * exit 0, and split the metrics). */
char *ra_train_config_text(const ra_config *cfg)
{
    ra_config *k = malloc(sizeof *k);
    if (!k) return NULL;
    *k = *cfg;
    if (k->source_id != RA_SOURCE_RECALL) {
        absolute(k->path, sizeof k->path);
        absolute(k->val_path, sizeof k->val_path);
    }
    /* with metrics, the directory too: a resume tells the run's own
     * directory from a copy of it by this (train_resume.c resumed_copy) from
     * any working directory; without, nothing depends on it, and the same
     * command run in two directories writes bit-identical files */
    if (k->metrics[0]) absolute(k->checkpoint_dir, sizeof k->checkpoint_dir);
    absolute(k->metrics, sizeof k->metrics);
    char *text = ra_config_text(k);
    free(k);
    return text;
}

/* The checkpoint directory is still the one this run locked: its lock file
 * is the file rank 0 holds. A directory moved away and replaced (by a
 * symlink to another run's, which that run holds locked) would otherwise
 * take this run's checkpoints over the other's, both exiting 0. */
int ra_train_dir_still_locked(const char *dir)
{
    char path[RA_PATH_MAX + 32];
    snprintf(path, sizeof path, "%s/%s", dir, RA_CKPT_LOCK_NAME);
    struct stat held, there;
    return lock_fd < 0 || (fstat(lock_fd, &held) == 0 && stat(path, &there) == 0 && held.st_dev == there.st_dev &&
                           held.st_ino == there.st_ino);
}

/* Only the lock file was removed (rm DIR/.ringattn.lock; the directory is
 * the one locked): a new one is made and locked, said, and the run goes on
 * (it ended the run, losing every step since the last checkpoint). 0 when
 * it cannot be (another process made and holds one since). */
static int relock(const char *dir)
{
    char path[RA_PATH_MAX + 32];
    struct stat d;
    if (lock_fd < 0 || stat(dir, &d) != 0 || d.st_dev != locked_dev || d.st_ino != locked_ino) return 0;
    snprintf(path, sizeof path, "%s/%s", dir, RA_CKPT_LOCK_NAME);
    const int fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK, 0644);
    if (fd < 0) return 0;
    if (ra_flock_ex(fd) != 0) {
        close(fd);
        (void)unlink(path);
        return 0;
    }
    close(lock_fd);
    lock_fd = fd, made_lock = 1;
    sign_lock();
    fprintf(stderr, "ringattn: warning: train: %s/%s was removed while the run held it: made again and locked\n", dir,
            RA_CKPT_LOCK_NAME);
    return 1;
}

static ra_status check_still_locked(const char *dir, int step)
{
    if (ra_train_dir_still_locked(dir) || relock(dir)) return RA_OK;
    return RA_FAIL(RA_ERR_IO, "checkpoint directory %s: is no longer the directory this run locked at its start (it "
                   "was moved, removed or replaced: %s is not the lock this run holds); the checkpoint of step %d was "
                   "not written, so as not to write into another directory", dir, RA_CKPT_LOCK_NAME, step);
}

ra_status ra_train_save(const ra_cli *c, ra_session *s, const char *dir, int step)
{
    if (c->rank != 0 && !s->sharded) return RA_OK;
    const ra_status here = c->rank == 0 ? check_still_locked(dir, step) : RA_OK;
    RA_TRY(s->sharded ? ra_agree(c->comm, here) : here); /* every rank of a sharded save takes part */
    char path[RA_PATH_MAX + 64], last[RA_PATH_MAX + 64], link_tmp[RA_PATH_MAX + 80], name[64];
    snprintf(name, sizeof name, "step-%08d.ckpt", step);
    snprintf(path, sizeof path, "%s/%s", dir, name);
    char *text = ra_train_config_text(&s->cfg);
    ra_ckpt_state state = { .step = (uint64_t)step, .seed = s->cfg.seed, .extra[RA_CKPT_HISTORY] = s->history,
                            .extra[RA_CKPT_DATA_BYTES] = s->data_bytes,
                            .extra[RA_CKPT_DATA_SAMPLE] = s->data_sample };
    ra_status st;
    if (s->sharded) {
        st = ra_shard_save(c, s, path, text, &state); /* every rank takes part */
    } else if (!text) {
        st = RA_FAIL(RA_ERR_NOMEM, "out of memory for the config text");
    } else {
        ra_ckpt_tensor t[3];
        int n = ra_session_tensors(s, t, 1);
        st = ra_ckpt_save(path, text, &state, t, n);
    }
    free(text);
    RA_TRY(st);
    if (c->rank != 0) return RA_OK;
    /* last.ckpt -> step-N.ckpt: a new link under the one temporary name, renamed over it */
    snprintf(last, sizeof last, "%s/last.ckpt", dir);
    if (!ra_tmp_name(link_tmp, sizeof link_tmp, last)) return RA_FAIL(RA_ERR_ARG, "%s: path too long", last);
    (void)unlink(link_tmp);
    if (symlink(name, link_tmp) != 0)
        return RA_FAIL(RA_ERR_IO, "%s: cannot create the link to %s: %s", link_tmp, name, strerror(errno));
    return ra_atomic_commit(last);
}
