/* fileio.c - regular-file inputs, full positioned I/O, atomic outputs. */
#include "ringattn/fileio.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/magic.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <time.h>
#include <unistd.h>

const char *ra_file_kind(mode_t m)
{
    if (S_ISREG(m)) return "a regular file";
    if (S_ISLNK(m)) return "a symbolic link";
    if (S_ISDIR(m)) return "a directory";
    if (S_ISFIFO(m)) return "a FIFO (named pipe)";
    if (S_ISCHR(m)) return "a character device";
    if (S_ISBLK(m)) return "a block device";
    if (S_ISSOCK(m)) return "a socket";
    return "not a regular file";
}

/* /proc and /sys: the kernel's interfaces, not files of data. */
static int kernel_fs(const struct statfs *fs)
{
    return fs->f_type == PROC_SUPER_MAGIC || fs->f_type == SYSFS_MAGIC;
}

/* /dev, the device files (devtmpfs: RAM, gone at reboot), but not the
 * shared-memory file system /dev/shm, which is for files. */
static int in_dev(const char *existing)
{
    char real[PATH_MAX];
    if (!realpath(existing, real)) return 0;
    if (strcmp(real, "/dev") != 0 && strncmp(real, "/dev/", 5) != 0) return 0;
    return strcmp(real, "/dev/shm") != 0 && strncmp(real, "/dev/shm/", 9) != 0;
}

int ra_dir_on_kernel_fs(const char *dir)
{
    char p[PATH_MAX], up[PATH_MAX];
    struct statfs fs;
    snprintf(p, sizeof p, "%s", dir);
    for (;;) { /* a missing directory lands on its nearest existing ancestor's file system */
        if (statfs(p, &fs) == 0) return kernel_fs(&fs) ? 1 : in_dev(p) ? 2 : 0;
        if (errno != ENOENT && errno != ENOTDIR) return 0;
        ra_dir_of(p, up, sizeof up);
        if (!strcmp(up, p)) return 0;
        snprintf(p, sizeof p, "%s", up);
    }
}

/* 1 when path is a symbolic link whose target does not exist, said into
 * buf (ENOENT alone reads as "the name is not there"). */
static int dangling_link(const char *path, char *buf, size_t cap)
{
    struct stat ls;
    char target[1024];
    ssize_t n;
    if (lstat(path, &ls) != 0 || !S_ISLNK(ls.st_mode) || stat(path, &ls) == 0 || errno != ENOENT ||
        (n = readlink(path, target, sizeof target - 1)) < 0)
        return 0;
    target[n] = '\0';
    snprintf(buf, cap, "it is a symbolic link to %s, which does not exist", target);
    return 1;
}

/* Why path cannot be opened: strerror(err), or that it is a dangling link. */
static const char *open_failure(const char *path, int err, char *buf, size_t cap)
{
    return err == ENOENT && dangling_link(path, buf, cap) ? buf : strerror(err);
}

ra_status ra_file_open_input(const char *path, const char *what, int *fd, int64_t *size)
{
    *fd = -1;
    if (!path || !path[0]) return RA_FAIL(RA_ERR_ARG, "%s: empty file name", what);
    /* O_NONBLOCK: opening a FIFO with no writer would otherwise block */
    int f = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (f < 0) {
        char why[1200];
        return RA_FAIL(RA_ERR_IO, "%s %s: cannot open: %s", what, path, open_failure(path, errno, why, sizeof why));
    }
    struct stat st;
    if (fstat(f, &st) != 0) {
        int e = errno;
        close(f);
        return RA_FAIL(RA_ERR_IO, "%s %s: cannot stat: %s", what, path, strerror(e));
    }
    if (!S_ISREG(st.st_mode)) {
        close(f);
        return RA_FAIL(RA_ERR_IO, "%s %s: is %s, not a regular file", what, path, ra_file_kind(st.st_mode));
    }
    /* /proc files say size 0 and then have content, /sys files 4096 and then
     * fewer bytes ("truncated?"): their sizes cannot be trusted */
    struct statfs fs;
    if (fstatfs(f, &fs) == 0 && kernel_fs(&fs)) {
        close(f);
        return RA_FAIL(RA_ERR_IO, "%s %s: is a /proc or /sys file, whose size is not known before it is read; copy "
                                  "it to a regular file first", what, path);
    }
    int fl = fcntl(f, F_GETFL);
    if (fl >= 0) (void)fcntl(f, F_SETFL, fl & ~O_NONBLOCK);
    *fd = f;
    if (size) *size = (int64_t)st.st_size;
    return RA_OK;
}

ra_status ra_file_read_all(const char *path, const char *what, size_t cap, char **text, size_t *len)
{
    *text = NULL;
    if (len) *len = 0;
    int fd;
    int64_t size;
    RA_TRY(ra_file_open_input(path, what, &fd, &size));
    if ((uint64_t)size > cap) {
        close(fd);
        return RA_FAIL(RA_ERR_ARG, "%s %s: %lld bytes, more than the %zu allowed", what, path, (long long)size, cap);
    }
    char *buf = malloc((size_t)size + 1);
    if (!buf) {
        close(fd);
        return RA_FAIL(RA_ERR_NOMEM, "%s %s: out of memory for %lld bytes", what, path, (long long)size);
    }
    ra_status st = ra_pread_full(fd, path, buf, (size_t)size, 0);
    close(fd);
    if (st != RA_OK) {
        free(buf);
        return st;
    }
    buf[size] = '\0';
    *text = buf;
    if (len) *len = (size_t)size;
    return RA_OK;
}

ra_status ra_pread_full(int fd, const char *path, void *buf, size_t n, int64_t off)
{
    char *p = buf;
    while (n > 0) {
        ssize_t r = pread(fd, p, n, (off_t)off);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) return RA_FAIL(RA_ERR_IO, "%s: read error at offset %lld: %s", path, (long long)off, strerror(errno));
        if (r == 0) { /* off is where reading stopped; the file may end well before (cut while in use) */
            struct stat st;
            if (fstat(fd, &st) == 0 && st.st_size < off)
                return RA_FAIL(RA_ERR_FORMAT, "%s: file ends at offset %lld, before the %zu bytes wanted at offset "
                               "%lld (truncated, or cut while in use?)", path, (long long)st.st_size, n,
                               (long long)off);
            return RA_FAIL(RA_ERR_FORMAT, "%s: file ends at offset %lld, %zu bytes short (truncated?)", path,
                           (long long)off, n);
        }
        p += r, off += r, n -= (size_t)r;
    }
    return RA_OK;
}

ra_status ra_pwrite_full(int fd, const char *path, const void *buf, size_t n, int64_t off)
{
    const char *p = buf;
    while (n > 0) {
        ssize_t r = pwrite(fd, p, n, (off_t)off);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0)
            return RA_FAIL(RA_ERR_IO, "%s: write failed at offset %lld: %s", path, (long long)off,
                           r < 0 ? strerror(errno) : "no progress");
        p += r, off += r, n -= (size_t)r;
    }
    return RA_OK;
}

ra_status ra_write_full(int fd, const char *path, const void *buf, size_t n)
{
    const char *p = buf;
    while (n > 0) {
        ssize_t r = write(fd, p, n);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) return RA_FAIL(RA_ERR_IO, "%s: write failed: %s", path, r < 0 ? strerror(errno) : "no progress");
        p += r, n -= (size_t)r;
    }
    return RA_OK;
}

int ra_tmp_name(char *out, size_t cap, const char *path)
{
    if (!path || !path[0]) return 0;
    int n = snprintf(out, cap, "%s" RA_TMP_SUFFIX, path);
    return n > 0 && (size_t)n < cap;
}

void ra_trim_slashes(char *path)
{
    size_t n = strlen(path);
    while (n > 1 && path[n - 1] == '/') path[--n] = '\0';
}

int ra_join_path(char *out, size_t cap, const char *dir, const char *name)
{
    size_t n = strlen(dir);
    while (n > 1 && dir[n - 1] == '/') n--;
    const char *sep = n == 1 && dir[0] == '/' ? "" : "/";
    const int w = snprintf(out, cap, "%.*s%s%s", (int)n, dir, sep, name);
    return w >= 0 && (size_t)w < cap;
}

void ra_dir_of(const char *path, char *out, size_t cap)
{
    const char *slash = strrchr(path, '/');
    if (!slash) snprintf(out, cap, ".");
    else if (slash == path) snprintf(out, cap, "/");
    else snprintf(out, cap, "%.*s", (int)(slash - path), path);
}

/* Why stat(dir) failed (errno e), for "PREFIX: why": "does not exist" only
 * when it does not; a directory that cannot be reached (EACCES: another
 * user's /proc/PID/cwd, a mode 000 parent) says so. */
static ra_status dir_failed(const char *prefix, const char *dir, int e)
{
    if (e == ENOENT)
        return RA_FAIL(RA_ERR_IO, "%s: directory '%s' does not exist; create it first", prefix, dir);
    return RA_FAIL(RA_ERR_IO, "%s: cannot access directory '%s': %s", prefix, dir, strerror(e));
}

/* Why a file could not be created in path's directory, naming the directory. */
static ra_status create_failed(const char *file, const char *path, int e)
{
    char dir[PATH_MAX], prefix[PATH_MAX + 32];
    struct stat st;
    ra_dir_of(path, dir, sizeof dir);
    snprintf(prefix, sizeof prefix, "%s: cannot create", file);
    if (stat(dir, &st) != 0) return dir_failed(prefix, dir, errno);
    if (!S_ISDIR(st.st_mode))
        return RA_FAIL(RA_ERR_IO, "%s: cannot create: '%s' is not a directory", file, dir);
    return RA_FAIL(RA_ERR_IO, "%s: cannot create: %s", file, strerror(e));
}

/* ---- the temporaries this process created ---------------------------------- */

/* Each is held with an flock (on a descriptor of its own, kept until the
 * rename or removal), so that another process writing the same output
 * sees it is in use instead of taking it for a stale one; a signal that
 * ends the process removes them. */
enum { TMP_SLOTS = 16 }; /* outputs in flight at once (a command writes at most 6) */
static char g_tmp_path[TMP_SLOTS][PATH_MAX];
static int g_tmp_lock[TMP_SLOTS];
static volatile sig_atomic_t g_tmp_used[TMP_SLOTS]; /* set after the path is written, cleared before reuse */

static int tmp_slot(const char *tmp)
{
    for (int i = 0; i < TMP_SLOTS; i++)
        if (g_tmp_used[i] && !strcmp(g_tmp_path[i], tmp)) return i;
    return -1;
}

static int tmp_track(const char *tmp, int lock_fd)
{
    for (int i = 0; i < TMP_SLOTS; i++)
        if (!g_tmp_used[i]) {
            snprintf(g_tmp_path[i], sizeof g_tmp_path[i], "%s", tmp);
            g_tmp_lock[i] = lock_fd;
            g_tmp_used[i] = 1;
            return 1;
        }
    return 0;
}

static void tmp_forget(const char *tmp)
{
    const int i = tmp_slot(tmp);
    if (i < 0) return;
    g_tmp_used[i] = 0;
    if (g_tmp_lock[i] >= 0) close(g_tmp_lock[i]); /* lets go of the lock */
}

static char g_made_dir[PATH_MAX];
static volatile sig_atomic_t g_made_dir_set;

void ra_atomic_cleanup_dir(const char *dir)
{
    g_made_dir_set = 0; /* cleared before the path changes */
    if (!dir || snprintf(g_made_dir, sizeof g_made_dir, "%s", dir) >= (int)sizeof g_made_dir) return;
    g_made_dir_set = 1;
}

static void on_ending_signal(int sig)
{
    for (int i = 0; i < TMP_SLOTS; i++)
        if (g_tmp_used[i]) (void)unlink(g_tmp_path[i]); /* async-signal-safe */
    if (g_made_dir_set) (void)rmdir(g_made_dir); /* only while empty: never a file of anyone's */
    raise(sig); /* SA_RESETHAND: the default action once this handler returns */
}

void ra_atomic_cleanup_on_signal(int sig)
{
    struct sigaction sa = { 0 }; /* sigaction is async-signal-safe: callable from a handler */
    sa.sa_handler = on_ending_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESETHAND;
    sigaction(sig, &sa, NULL);
}

void ra_atomic_cleanup_on_signals(void)
{
    struct sigaction sa = { 0 };
    sa.sa_handler = on_ending_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESETHAND;
    const int sigs[] = { SIGINT, SIGTERM, SIGHUP };
    for (size_t i = 0; i < sizeof sigs / sizeof *sigs; i++) {
        struct sigaction old;
        /* an ignored signal (nohup) stays ignored */
        if (sigaction(sigs[i], NULL, &old) == 0 && old.sa_handler != SIG_IGN) sigaction(sigs[i], &sa, NULL);
    }
}

/* "PATH: another process is writing it": tmp is held by another process. */
static ra_status tmp_busy(const char *path, const char *tmp)
{
    return RA_FAIL(RA_ERR_IO, "%s: another process is writing it now (its temporary %s is locked); wait for that "
                   "run to end, or choose another output", path, tmp);
}

int ra_flock_ex(int fd)
{
    for (int i = 0; i < 50; i++) { /* a probe's shared lock lasts microseconds: retried for 0.5 s */
        if (flock(fd, LOCK_EX | LOCK_NB) == 0) return 0;
        if (errno != EWOULDBLOCK) return -1;
        struct timespec ts = { 0, 10000000 };
        nanosleep(&ts, NULL);
    }
    errno = EWOULDBLOCK;
    return -1;
}

int ra_file_held(const char *path)
{
    struct stat st; /* only a regular file is opened: opening a device node can act on the device */
    if (lstat(path, &st) != 0 || !S_ISREG(st.st_mode)) return 0;
    int f = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    if (f < 0) return 0;
    /* shared: two probes at once do not see each other (an exclusive probe
     * made a rank of the same run refuse its own metrics file) */
    int held = flock(f, LOCK_SH | LOCK_NB) != 0 && errno == EWOULDBLOCK;
    close(f);
    return held;
}

ra_status ra_atomic_create(const char *path, int *fd)
{
    char tmp[PATH_MAX];
    *fd = -1;
    if (!ra_tmp_name(tmp, sizeof tmp, path))
        return RA_FAIL(RA_ERR_ARG, "output path '%.200s' is empty or too long", path ? path : "");
    struct stat st;
    if (stat(path, &st) == 0 && S_ISDIR(st.st_mode))
        return RA_FAIL(RA_ERR_ARG, "%s: is a directory; give a file name", path);
    if (tmp_slot(tmp) >= 0) return RA_FAIL(RA_ERR_ARG, "%s: is already being written by this command", path);
    if (ra_file_held(path)) /* a running train's metrics file: the rename would take its record */
        return RA_FAIL(RA_ERR_IO, "%s: another process holds it locked (a training run writing its metrics there); "
                       "give another file name", path);
    if (ra_file_held(tmp)) return tmp_busy(path, tmp); /* (one nobody holds: a killed run's) */
    /* a stale temporary (even a planted symlink) is removed, not followed */
    if (unlink(tmp) != 0 && errno != ENOENT) return create_failed(tmp, path, errno);
    int f = open(tmp, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC | O_NOFOLLOW, 0644);
    if (f < 0) return errno == EEXIST ? tmp_busy(path, tmp) : create_failed(tmp, path, errno);
    /* Locked, then checked to be still at tmp: another process that took it
     * for stale between the open and the lock has put its own there (and
     * holds it now), so this one gives way, removing nothing of its. */
    struct stat mine, there;
    if (ra_flock_ex(f) != 0 && errno == EWOULDBLOCK) {
        close(f);
        return tmp_busy(path, tmp);
    }
    if (fstat(f, &mine) != 0 || lstat(tmp, &there) != 0 || mine.st_dev != there.st_dev ||
        mine.st_ino != there.st_ino) {
        close(f);
        return tmp_busy(path, tmp);
    }
    const int lock_fd = fcntl(f, F_DUPFD_CLOEXEC, 0); /* the lock outlives fd's close (same open file) */
    if (!tmp_track(tmp, lock_fd)) {
        if (lock_fd >= 0) close(lock_fd);
        close(f);
        (void)unlink(tmp);
        return RA_FAIL(RA_ERR_ARG, "%s: more than %d outputs in flight at once", path, TMP_SLOTS);
    }
    *fd = f;
    return RA_OK;
}

ra_status ra_atomic_open_tmp(const char *path, int *fd)
{
    char tmp[PATH_MAX];
    *fd = -1;
    if (!ra_tmp_name(tmp, sizeof tmp, path))
        return RA_FAIL(RA_ERR_ARG, "output path '%.200s' is empty or too long", path ? path : "");
    /* read-write: the opener checks what the creator wrote (an .npy header) */
    int f = open(tmp, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
    if (f < 0) return RA_FAIL(RA_ERR_IO, "%s: cannot open: %s", tmp, strerror(errno));
    *fd = f;
    return RA_OK;
}

ra_status ra_file_sync_close(int fd, const char *name)
{
    if (fsync(fd) != 0) {
        int e = errno;
        close(fd);
        return RA_FAIL(RA_ERR_IO, "%s: fsync failed: %s", name, strerror(e));
    }
    /* no retry on EINTR: on Linux the fd is released either way */
    if (close(fd) != 0) return RA_FAIL(RA_ERR_IO, "%s: close failed: %s", name, strerror(errno));
    return RA_OK;
}

ra_status ra_sync_parent_dir(const char *path)
{
    char dir[PATH_MAX];
    ra_dir_of(path, dir, sizeof dir);
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return RA_FAIL(RA_ERR_IO, "%s: written, but directory '%s' cannot be opened for fsync: %s", path, dir,
                       strerror(errno));
    int r = fsync(fd), e = errno;
    close(fd);
    if (r != 0 && e != EINVAL && e != ENOTSUP)
        return RA_FAIL(RA_ERR_IO, "%s: written, but fsync of directory '%s' failed: %s (the file may not survive "
                       "a crash)", path, dir, strerror(e));
    return RA_OK;
}

ra_status ra_atomic_commit(const char *path)
{
    char tmp[PATH_MAX];
    if (!ra_tmp_name(tmp, sizeof tmp, path))
        return RA_FAIL(RA_ERR_ARG, "output path '%.200s' is empty or too long", path ? path : "");
    struct stat old;
    /* a replaced file keeps its permissions (a private 0600 file stays private) */
    if (lstat(path, &old) == 0 && S_ISREG(old.st_mode) && chmod(tmp, old.st_mode & 07777) != 0 && errno != ENOENT)
        return RA_FAIL(RA_ERR_IO, "cannot give %s the permissions of %s: %s", tmp, path, strerror(errno));
    if (rename(tmp, path) != 0) return RA_FAIL(RA_ERR_IO, "cannot rename %s to %s: %s", tmp, path, strerror(errno));
    tmp_forget(tmp);
    return ra_sync_parent_dir(path);
}

void ra_atomic_abort(const char *path)
{
    char tmp[PATH_MAX];
    if (ra_tmp_name(tmp, sizeof tmp, path) && tmp_slot(tmp) >= 0) { /* never another process's */
        (void)unlink(tmp);
        tmp_forget(tmp);
    }
}

ra_status ra_atomic_stage(const char *path, int fd, ra_status st)
{
    char tmp[PATH_MAX];
    if (!ra_tmp_name(tmp, sizeof tmp, path)) tmp[0] = '\0';
    if (st == RA_OK) st = ra_file_sync_close(fd, tmp);
    else close(fd);
    if (st != RA_OK) ra_atomic_abort(path);
    return st;
}

ra_status ra_atomic_finish(const char *path, int fd, ra_status st)
{
    st = ra_atomic_stage(path, fd, st);
    if (st == RA_OK) st = ra_atomic_commit(path);
    if (st != RA_OK) ra_atomic_abort(path);
    return st;
}

ra_status ra_atomic_commit_all(const char *const *paths, int n, ra_status st)
{
    /* no ending signal between the renames: its handler would remove the
     * .tmp files not renamed yet, leaving a new file beside an old one
     * unsaid; it is delivered once all are renamed */
    sigset_t ending, was;
    sigemptyset(&ending);
    sigaddset(&ending, SIGINT);
    sigaddset(&ending, SIGTERM);
    sigaddset(&ending, SIGHUP);
    sigprocmask(SIG_BLOCK, &ending, &was);
    int done = 0; /* renamed */
    while (st == RA_OK && done < n) {
        st = ra_atomic_commit(paths[done]);
        if (st == RA_OK) done++;
    }
    if (st != RA_OK) { /* the .tmp files not renamed yet (of those renamed, none is left) */
        for (int i = 0; i < n; i++) ra_atomic_abort(paths[i]);
        if (done > 0) { /* a later rename failed: say that the files no longer belong together */
            char why[RA_ERROR_MAX];
            snprintf(why, sizeof why, "%s", ra_last_error());
            st = done == 1 ? RA_FAIL(st, "%s; %s was already replaced, so the files no longer belong together: "
                                     "run the command again", why, paths[0])
                           : RA_FAIL(st, "%s; %s to %s were already replaced, so the files no longer belong "
                                     "together: run the command again", why, paths[0], paths[done - 1]);
        }
    }
    sigprocmask(SIG_SETMASK, &was, NULL);
    return st;
}

ra_status ra_write_file_staged(const char *path, const void *data, size_t len)
{
    int fd;
    RA_TRY(ra_atomic_create(path, &fd));
    char tmp[PATH_MAX];
    ra_tmp_name(tmp, sizeof tmp, path);
    return ra_atomic_stage(path, fd, ra_pwrite_full(fd, tmp, data, len, 0));
}

ra_status ra_write_file_atomic(const char *path, const void *data, size_t len)
{
    RA_TRY(ra_write_file_staged(path, data, len));
    ra_status st = ra_atomic_commit(path);
    if (st != RA_OK) ra_atomic_abort(path);
    return st;
}

int ra_canonical_path(const char *given, char *out, size_t cap)
{
    char path[PATH_MAX], dir[PATH_MAX], real[PATH_MAX];
    if (snprintf(path, sizeof path, "%s", given) >= (int)sizeof path) return 0;
    ra_trim_slashes(path); /* "ck/" not made yet: ck in its resolved directory */
    if (realpath(path, real)) return snprintf(out, cap, "%s", real) > 0;
    ra_dir_of(path, dir, sizeof dir);
    const char *slash = strrchr(path, '/');
    const char *base = slash ? slash + 1 : path;
    if (!realpath(dir, real)) return 0;
    return snprintf(out, cap, "%s/%s", real, base) > 0;
}

const char *ra_path_for_ranks(const char *given, char *out, size_t cap)
{
    char real[PATH_MAX];
    const int canon = ra_canonical_path(given, real, sizeof real) && strncmp(real, "/proc/", 6) != 0;
    snprintf(out, cap, "%s", canon ? real : given);
    return out;
}

int ra_same_file(const char *a, const char *b)
{
    if (!a || !b || !a[0] || !b[0]) return 0;
    struct stat sa, sb;
    int ea = stat(a, &sa) == 0, eb = stat(b, &sb) == 0;
    if (ea && eb) return sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
    char ca[PATH_MAX], cb[PATH_MAX];
    return ra_canonical_path(a, ca, sizeof ca) && ra_canonical_path(b, cb, sizeof cb) && strcmp(ca, cb) == 0;
}

/* Nothing can be made in dir (errno e) for the output what names (shown: its
 * path): one wording for a file's directory and a directory's parent. */
static ra_status cannot_create_in(const char *what, const char *shown, const char *dir, int e)
{
    return RA_FAIL(RA_ERR_IO, "%s %s: cannot create files in directory '%s': %s", what, shown, dir, strerror(e));
}

/* Create and remove a probe file in dir: catches read-only filesystems and
 * permissions (also for root, whom access() does not stop). */
static ra_status probe_dir(const char *dir, const char *what, const char *shown)
{
    char probe[PATH_MAX];
    snprintf(probe, sizeof probe, "%s/.ringattn-probe-%ld" RA_TMP_SUFFIX, dir, (long)getpid());
    int f = open(probe, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (f < 0) return cannot_create_in(what, shown, dir, errno);
    close(f);
    unlink(probe);
    return RA_OK;
}

ra_status ra_check_not_kernel_fs(const char *path, const char *dir, const char *what)
{
    const int where = ra_dir_on_kernel_fs(dir);
    if (!where) return RA_OK;
    struct stat st; /* an existing device or link (/dev/full, /dev/stdout) is named as such by the later checks */
    if (where == 2 && lstat(path, &st) == 0 && !S_ISDIR(st.st_mode)) return RA_OK;
    if (where == 2) /* root may make files there: among the devices, in memory, gone at reboot */
        return RA_FAIL(RA_ERR_IO, "%s %s: is in /dev, among the device files, not a place for outputs; give a "
                                  "path on a file system for files (/dev/shm is one)", what, path);
    return RA_FAIL(RA_ERR_IO, "%s %s: is in /proc or /sys, the kernel's interfaces, not a file system for "
                              "outputs; give a path on a regular file system", what, path);
}

ra_status ra_check_output_path(const char *path, const char *what)
{
    if (!path || !path[0]) return RA_FAIL(RA_ERR_ARG, "%s: empty file name", what);
    if (path[strlen(path) - 1] == '/') return RA_FAIL(RA_ERR_ARG, "%s %s: ends with '/'; give a file name", what, path);
    char tmp[PATH_MAX];
    if (!ra_tmp_name(tmp, sizeof tmp, path)) return RA_FAIL(RA_ERR_ARG, "%s: path too long", what);
    struct stat st;
    if (stat(path, &st) == 0 && S_ISDIR(st.st_mode))
        return RA_FAIL(RA_ERR_ARG, "%s %s: is a directory; give a file name", what, path);
    /* the atomic rename would replace a device node or FIFO (as root: even
     * /dev/null); a symlink is fine, it is replaced and never followed */
    if (lstat(path, &st) == 0 && !S_ISREG(st.st_mode) && !S_ISLNK(st.st_mode))
        return RA_FAIL(RA_ERR_ARG, "%s %s: is %s, not a regular file; give a file name", what, path,
                       ra_file_kind(st.st_mode));
    char dir[PATH_MAX];
    ra_dir_of(path, dir, sizeof dir);
    RA_TRY(ra_check_not_kernel_fs(path, dir, what));
    if (stat(dir, &st) != 0) {
        char prefix[2 * PATH_MAX];
        const int e = errno;
        snprintf(prefix, sizeof prefix, "%s %s", what, path);
        return dir_failed(prefix, dir, e);
    }
    if (!S_ISDIR(st.st_mode)) return RA_FAIL(RA_ERR_IO, "%s %s: '%s' is not a directory", what, path, dir);
    return probe_dir(dir, what, path);
}

ra_status ra_prepare_output_dir(const char *dir, const char *what)
{
    if (!dir || !dir[0]) return RA_FAIL(RA_ERR_ARG, "%s: empty directory name", what);
    /* "-" is standard output in many tools: here it would be a directory named so */
    if (strcmp(dir, "-") == 0)
        return RA_FAIL(RA_ERR_ARG, "%s -: would write into a directory named '-', not to standard output; give "
                       "./- for a directory of that name", what);
    RA_TRY(ra_check_not_kernel_fs(dir, dir, what));
    struct stat st;
    if (stat(dir, &st) != 0) {
        if (errno != ENOENT) return RA_FAIL(RA_ERR_IO, "%s %s: %s", what, dir, strerror(errno));
        const int e = mkdir(dir, 0755) != 0 ? errno : 0;
        /* another process that made it in between is not an error */
        if (e && !(e == EEXIST && stat(dir, &st) == 0 && S_ISDIR(st.st_mode))) {
            char parent[PATH_MAX], bare[PATH_MAX], why[1200];
            if (e == EEXIST && dangling_link(dir, why, sizeof why)) /* mkdir: "File exists" */
                return RA_FAIL(RA_ERR_IO, "%s %s: %s: create its target or give another directory", what, dir, why);
            /* "a/b/" is b in a: its trailing slashes are not a path step */
            size_t n = strlen(dir);
            while (n > 1 && dir[n - 1] == '/') n--;
            snprintf(bare, sizeof bare, "%.*s", (int)n, dir);
            ra_dir_of(bare, parent, sizeof parent);
            if (e == ENOENT)
                return RA_FAIL(RA_ERR_IO, "%s %s: cannot create it: its parent '%s' does not exist", what, dir,
                               parent);
            return cannot_create_in(what, dir, parent, e); /* the words --metrics there would get */
        }
        (void)ra_sync_parent_dir(dir);
    } else if (!S_ISDIR(st.st_mode)) {
        return RA_FAIL(RA_ERR_IO, "%s %s: exists and is not a directory", what, dir);
    }
    return probe_dir(dir, what, dir);
}

static void (*g_progress_hook)(void);

void ra_file_set_progress_hook(void (*hook)(void)) { g_progress_hook = hook; }

void ra_file_progress(void)
{
    if (g_progress_hook) g_progress_hook();
}
