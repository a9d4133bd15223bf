/* tmpdir.h - a fresh temporary directory for a test, removed with all it
 * holds at the end, so tests never collide with each other (meson runs
 * them in parallel) or with files left by an earlier run.
 *
 *     char dir[TMPDIR_CAP], path[TMPDIR_CAP];
 *     if (tmpdir_make(dir, "test_checkpoint") != 0) fail...;
 *     tmpdir_path(path, dir, "model.ckpt");
 *     ...
 *     tmpdir_remove(dir);
 *
 * The directory is under $TMPDIR (default /tmp), named PREFIX.XXXXXX.
 * Not collective: with MPI, make it on one rank and broadcast the name. */
#ifndef TESTS_TMPDIR_H
#define TESTS_TMPDIR_H

#define TMPDIR_CAP 4096

/* Create the directory; its path into dir[TMPDIR_CAP]. 0 or -1 (errno set,
 * a message on stderr). */
int tmpdir_make(char *dir, const char *prefix);
/* dir/name into out[TMPDIR_CAP]; returns out (aborts if it does not fit). */
char *tmpdir_path(char *out, const char *dir, const char *name);
/* Remove dir and everything under it (symbolic links are removed, never
 * followed). 0 or -1 (a message on stderr). */
int tmpdir_remove(const char *dir);

#endif
