/* train_metrics.c - the metrics file of `ringattn train` (train_io.h): a
 * JSON line per step, appended; a resume cuts the steps after its
 * checkpoint. Every write goes through fileio.h. */
#include "train_io.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ringattn/fileio.h"

/* The step of a metrics line ({"step": N, ...}), or -1 for another line. */
static int64_t line_step(const char *line)
{
    long long s;
    return sscanf(line, "{\"step\": %lld", &s) == 1 ? (int64_t)s : -1;
}

int ra_metrics_steps_after(const char *path, int64_t step)
{
    struct stat st; /* a regular file only (the preflight names the rest): a device is not opened */
    if (lstat(path, &st) != 0 || !S_ISREG(st.st_mode)) return 0;
    int fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) return 0;
    FILE *f = fstat(fd, &st) == 0 && S_ISREG(st.st_mode) ? fdopen(fd, "r") : NULL;
    if (!f) {
        close(fd);
        return 0;
    }
    char *line = NULL;
    size_t cap = 0;
    int later = 0;
    while (!later && getline(&line, &cap, f) > 0) later = line_step(line) > step;
    free(line);
    fclose(f);
    return later;
}



/* path rewritten (atomically) without the lines of steps after keep_after,
 * when it has any: a run killed after its last checkpoint logged them, and
 * the resumed run logs those steps again; or a last line cut short. */
static ra_status drop_later_steps(const char *path, int64_t keep_after)
{
    int in;
    int64_t size;
    RA_TRY(ra_file_open_input(path, "--metrics (to append to)", &in, &size));
    FILE *f = fdopen(in, "r");
    if (!f) {
        close(in);
        return RA_FAIL(RA_ERR_IO, "--metrics %s: cannot read: %s", path, strerror(errno));
    }
    char *line = NULL;
    size_t cap = 0;
    int later = 0;
    ssize_t n;
    /* a last line without its newline is a record cut short (a full disk,
     * a kill): appending to it made two unreadable lines */
    while (!later && (n = getline(&line, &cap, f)) > 0) later = line_step(line) > keep_after || line[n - 1] != '\n';
    ra_status st = RA_OK;
    if (later) {
        int out;
        char tmp[RA_PATH_MAX + 8];
        ra_tmp_name(tmp, sizeof tmp, path);
        st = ra_atomic_create(path, &out);
        rewind(f);
        while (st == RA_OK && (n = getline(&line, &cap, f)) > 0)
            if (line_step(line) <= keep_after && line[n - 1] == '\n') st = ra_write_full(out, tmp, line, (size_t)n);
        if (st == RA_OK && ferror(f)) st = RA_FAIL(RA_ERR_IO, "--metrics %s: read error", path);
        if (out >= 0) st = ra_atomic_finish(path, out, st);
    }
    free(line);
    fclose(f);
    return st;
}

ra_status ra_metrics_open(ra_metrics *m, const char *path, int append, int64_t keep_after)
{
    m->fd = -1;
    m->len = 0;
    m->failed = 0;
    m->why[0] = '\0';
    snprintf(m->path, sizeof m->path, "%s", path);
    struct stat ls;
    if (append && lstat(path, &ls) == 0 && S_ISREG(ls.st_mode)) {
        RA_TRY(drop_later_steps(path, keep_after));
        m->fd = open(path, O_WRONLY | O_APPEND | O_NOFOLLOW | O_CLOEXEC);
        if (m->fd < 0) return RA_FAIL(RA_ERR_IO, "--metrics %s: cannot open to append: %s", path, strerror(errno));
        if (ra_flock_ex(m->fd) != 0 && errno == EWOULDBLOCK) { /* (taken since the preflight) */
            close(m->fd), m->fd = -1;
            return RA_FAIL(RA_ERR_IO, "--metrics %s: another run is writing its metrics there now (it holds the "
                           "file locked)", path);
        }
        return RA_OK;
    }
    /* a new file (a symlink was refused before step 1, ra_check_files):
     * created under the temporary name, renamed at once, then written
     * through the same descriptor, which keeps the temporary's lock */
    int fd;
    RA_TRY(ra_atomic_create(path, &fd));
    ra_status st = ra_atomic_commit(path);
    if (st != RA_OK) {
        close(fd);
        ra_atomic_abort(path);
        return st;
    }
    m->fd = fd;
    return RA_OK;
}

static void metrics_fail(ra_metrics *m)
{
    m->failed = 1;
    snprintf(m->why, sizeof m->why, "%s", ra_last_error());
}

void ra_metrics_flush(ra_metrics *m)
{
    if (!m || m->failed || m->len == 0) return;
    if (ra_write_full(m->fd, m->path, m->buf, m->len) != RA_OK) metrics_fail(m);
    m->len = 0;
}

void ra_metrics_printf(ra_metrics *m, const char *fmt, ...)
{
    if (!m || m->failed) return;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0) return;
    if ((size_t)n >= sizeof m->buf - m->len) ra_metrics_flush(m);
    if (m->failed) return;
    char *dst = m->buf + m->len, *big = NULL;
    if ((size_t)n >= sizeof m->buf) { /* longer than the buffer (kappa of a large model): on its own */
        big = malloc((size_t)n + 1);
        if (!big) {
            RA_FAIL(RA_ERR_NOMEM, "%s: out of memory for a metrics line of %d bytes", m->path, n);
            metrics_fail(m);
            return;
        }
        dst = big;
    }
    va_start(ap, fmt);
    vsnprintf(dst, (size_t)n + 1, fmt, ap);
    va_end(ap);
    if (!big) {
        m->len += (size_t)n;
        return;
    }
    if (ra_write_full(m->fd, m->path, big, (size_t)n) != RA_OK) metrics_fail(m);
    free(big);
}

int ra_metrics_failed(const ra_metrics *m) { return m && m->failed; }

ra_status ra_metrics_error(const ra_metrics *m)
{
    if (!ra_metrics_failed(m)) return RA_OK;
    return RA_FAIL(RA_ERR_IO, "%s (the metrics file is incomplete)", m->why);
}

ra_status ra_metrics_close(ra_metrics *m, int quiet)
{
    if (!m || m->fd < 0) return RA_OK;
    int fd = m->fd;
    m->fd = -1;
    if (quiet) { /* another error is being reported: keep its message */
        if (!m->failed && m->len && write(fd, m->buf, m->len) < 0) { /* best effort: the lines so far */ }
        close(fd);
        return RA_OK;
    }
    m->fd = fd;
    ra_metrics_flush(m);
    m->fd = -1;
    if (m->failed) {
        close(fd);
        return ra_metrics_error(m);
    }
    return ra_file_sync_close(fd, m->path);
}
