/* fileio.h - the one way ringattn reads and writes files.
 *
 * Inputs are opened with ra_file_open_input, which refuses anything but a
 * regular file (a FIFO would block forever, /dev/zero never ends, a
 * directory gives a confusing "read error") without blocking on it.
 * Outputs appear atomically: written to "<path>.tmp" (a stale one, even a
 * symlink, is removed first and the new one created O_EXCL|O_NOFOLLOW, so
 * nothing there redirects the write; it is flock'ed until its rename, and
 * one another process holds is refused, not taken), fsync'd, renamed
 * over path (a symlink at path is replaced, never followed; a regular file
 * replaced passes its permission bits on), then the directory is fsync'd.
 * A failed write leaves path as it was.
 *
 *     char *text; size_t len;
 *     RA_TRY(ra_file_read_all("cfg.ini", "config", 16 << 20, &text, &len));
 *
 *     int fd;
 *     RA_TRY(ra_atomic_create("out.bin", &fd));
 *     ra_status st = ra_pwrite_full(fd, "out.bin.tmp", buf, n, 0);
 *     st = ra_atomic_finish("out.bin", fd, st);   // commit on RA_OK, else remove
 *
 * Directory fsync policy (one for every file): EINVAL and ENOTSUP (a
 * filesystem that cannot sync directories) are ignored; any other failure
 * is an error saying the file may not survive a crash. */
#ifndef RINGATTN_FILEIO_H
#define RINGATTN_FILEIO_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "ringattn/status.h"

#define RA_TMP_SUFFIX ".tmp" /* the one temporary-file name: "<path>.tmp" */

/* Open path read-only; what names the role in messages ("data.path",
 * "--q", "config"). Refuses non-regular files by name ("is a FIFO", "is a
 * directory", "is a character device") without blocking. *size: bytes. */
ra_status ra_file_open_input(const char *path, const char *what, int *fd, int64_t *size);

/* The whole file, NUL-terminated (malloc'd into *text), refused when larger
 * than cap bytes (the message gives both). */
ra_status ra_file_read_all(const char *path, const char *what, size_t cap, char **text, size_t *len);

/* Positioned read/write of exactly n bytes, retrying after EINTR and short
 * transfers; errors name path and the offset. Reading past the end is an
 * error ("file ends at ..."). */
ra_status ra_pread_full(int fd, const char *path, void *buf, size_t n, int64_t off);
ra_status ra_pwrite_full(int fd, const char *path, const void *buf, size_t n, int64_t off);
/* write() of exactly n bytes at the file position (streams, appends). */
ra_status ra_write_full(int fd, const char *path, const void *buf, size_t n);

/* "<path>.tmp" into out; 0 when path is empty or too long. */
int ra_tmp_name(char *out, size_t cap, const char *path);

/* Whether another process holds an flock on the regular file path (a
 * temporary being written, a training run's metrics file); anything else
 * (a link, a FIFO, a device) is not opened: not held. A file system
 * without flock cannot tell: not held. */
int ra_file_held(const char *path);
/* flock(fd, LOCK_EX | LOCK_NB) retried for 0.5 s while it would block:
 * ra_file_held's probes hold a shared lock for microseconds. 0, or -1 with
 * errno (EWOULDBLOCK: another process holds it). */
int ra_flock_ex(int fd);

/* Create "<path>.tmp" for writing (a stale one removed first, the new one
 * O_EXCL|O_NOFOLLOW; a directory at path refused); a missing or unwritable
 * directory is named. ra_atomic_open_tmp opens the same file, already
 * created by another rank, without creating it. */
ra_status ra_atomic_create(const char *path, int *fd);
ra_status ra_atomic_open_tmp(const char *path, int *fd);
/* fsync and close fd (always closed); errors name the file. */
ra_status ra_file_sync_close(int fd, const char *name);
/* Rename "<path>.tmp" over path and fsync the directory. */
ra_status ra_atomic_commit(const char *path);
/* Remove "<path>.tmp" if this process created it (quietly: it runs while
 * another error is reported); never another process's. */
void ra_atomic_abort(const char *path);
/* With st == RA_OK: sync, close and commit; otherwise close and abort.
 * Returns the first failure (st itself when it was one). */
ra_status ra_atomic_finish(const char *path, int fd, ra_status st);
/* The whole of data into path, atomically. */
ra_status ra_write_file_atomic(const char *path, const void *data, size_t len);

/* Outputs that must appear together (a model's weights and its config):
 * each is staged, complete and synced at "<path>.tmp", and only when all
 * were is each renamed over its path, so a failure (a full disk) leaves
 * every path as it was. ra_atomic_stage: with st == RA_OK sync and close
 * fd, otherwise close it and remove the .tmp. ra_write_file_staged: the
 * whole of data staged. ra_atomic_commit_all: with st == RA_OK rename each
 * .tmp over its path; on any failure (st, or a rename) remove the .tmp
 * files left. Returns the first failure. */
ra_status ra_atomic_stage(const char *path, int fd, ra_status st);
ra_status ra_write_file_staged(const char *path, const void *data, size_t len);
ra_status ra_atomic_commit_all(const char *const *paths, int n, ra_status st);

/* The temporaries this process created (ra_atomic_create) and has not yet
 * renamed or removed are removed when SIGINT, SIGTERM or SIGHUP ends it
 * (then the signal's default action): a killed `gen` left gigabytes of
 * q.npy.tmp. Installed once at start; a command with its own handlers
 * (train's clean stop) replaces them for its signals. */
void ra_atomic_cleanup_on_signals(void);
/* The same for one signal; async-signal-safe (a stop handler arms it for a
 * second Ctrl-C, which then quits at once without leaving its temporaries). */
void ra_atomic_cleanup_on_signal(int sig);
/* A directory this process made for its outputs: a signal that ends the
 * process removes it too, when its temporaries were all that was in it
 * (`gen --dir new` killed left new/ empty). NULL forgets it. */
void ra_atomic_cleanup_dir(const char *dir);

/* fsync the directory holding path (the policy above). */
ra_status ra_sync_parent_dir(const char *path);

/* A directory's trailing slashes dropped ("ck/" is "ck", "/" stays), so
 * names joined to it and messages show "ck/last.ckpt", not "ck//last.ckpt". */
void ra_trim_slashes(char *path);
/* dir "/" name into out, dir's trailing slashes dropped; 0 when it does not fit. */
int ra_join_path(char *out, size_t cap, const char *dir, const char *name);

/* Canonical form of a path that may not exist: realpath of the path, or of
 * its directory plus its last component; 0 when neither resolves. */
int ra_canonical_path(const char *path, char *out, size_t cap);
/* The form in which ranks compare a path they were each given: canonical
 * (one file by any spelling), but as given when it does not resolve or
 * resolves into /proc (/proc/self/... is each rank's own pid: the ranks
 * would differ on one command line). Returns out. */
const char *ra_path_for_ranks(const char *path, char *out, size_t cap);

/* Directory part of path ("." when none) into out. */
void ra_dir_of(const char *path, char *out, size_t cap);

/* 1 when a and b are the same file: both exist with the same device and
 * inode, or neither exists and they resolve to the same place. Outputs
 * compared with every input before any work refuse clashes. */
int ra_same_file(const char *a, const char *b);

/* An output file can be created at path: path is not empty, not a
 * directory, device, FIFO or socket (a symlink is allowed: the atomic
 * rename replaces it), its directory exists and a file can be created there (probed,
 * so a read-only filesystem is caught). what names the option. */
ra_status ra_check_output_path(const char *path, const char *what);
/* 1 when files made in dir would be on /proc or /sys (dir, or its nearest
 * existing ancestor, is there; symlinks followed: /proc/self/cwd is not),
 * the file systems ra_file_open_input refuses as inputs; 2 when they would
 * be in /dev outside /dev/shm (root can make files among the devices, in
 * memory); 0 otherwise. ra_check_not_kernel_fs refuses both. */
int ra_dir_on_kernel_fs(const char *dir);
/* An output at path, made in dir (its directory, or path itself for a
 * directory of outputs), refused on /proc or /sys naming what and path:
 * there "does not exist" or "permission denied" would mislead. Checked by
 * ra_check_output_path and ra_prepare_output_dir. */
ra_status ra_check_not_kernel_fs(const char *path, const char *dir, const char *what);
/* A directory to write files into: created when missing (its parent must
 * exist), refused when it is "-" (not standard output: give ./-), not a
 * directory, or a file cannot be created in it (probed) or it in its
 * parent (both said as "cannot create files in directory ..."). */
ra_status ra_prepare_output_dir(const char *dir, const char *what);

/* Long file work (a checkpoint's writes) calls ra_file_progress() after
 * each MiB; it runs the hook set here, if any. The peer watchdog sets one
 * that tells waiting ranks this rank is working (ra_watchdog_working,
 * dist.h), so this layer needs no MPI. */
void ra_file_set_progress_hook(void (*hook)(void));
void ra_file_progress(void);

/* "a directory", "a FIFO (named pipe)", "a symbolic link", ... for an
 * lstat mode: what a message calls a file of that kind. */
const char *ra_file_kind(mode_t mode);

#endif
