/* train_io.h - what `ringattn train` writes, all checked before step 1:
 * the checkpoint directory, step-N.ckpt files with last.ckpt, and the
 * JSON-lines metrics file.
 *
 *     RA_TRY(ra_train_preflight(c, &cfg, &files));   // before any work
 *     ...
 *     RA_TRY(ra_agree(c->comm, ra_train_save(c, s, cfg.checkpoint_dir, step)));
 *
 * Metrics file: created as "<path>.tmp" (O_EXCL|O_NOFOLLOW) and renamed
 * over path at once, then appended through that descriptor. A symlink at
 * path is thus replaced, never followed, so its target is never modified;
 * on --resume its content is copied into the new regular file first. */
#ifndef RINGATTN_TRAIN_IO_H
#define RINGATTN_TRAIN_IO_H

#include "session.h"

typedef struct {
    const char *config;    /* --config FILE, or NULL */
    const char *resume;    /* the checkpoint resumed from (resolved), or NULL */
    int resume_step;       /* its step */
    const char *ckdir_opt; /* how the user named the directory: "--checkpoint-dir" or "run.checkpoint_dir" */
    const char *metrics_opt;
} ra_train_files;

/* The lock file of a checkpoint directory (held by the run writing there). */
#define RA_CKPT_LOCK_NAME ".ringattn.lock"

/* A resume from resume (a checkpoint file, links resolved) into ckdir,
 * another directory than the checkpoint's: a branch of that history. */
int ra_train_is_branch(const char *resume, const char *ckdir);
/* The regular file path holds metrics lines of steps after step. */
int ra_metrics_steps_after(const char *path, int64_t step);

/* Rank 0: dir still leads to the lock file this run holds (1 too when the
 * file system gave no lock); 0 when it was moved, removed or replaced. */
int ra_train_dir_still_locked(const char *dir);

/* Collective; rank 0 checks, every rank gets the verdict. In order:
 * --resume with train.steps not above the checkpoint's step; the
 * checkpoint directory (created when missing, refused when it cannot be:
 * missing parent, a file in its place, read-only, empty name; locked for
 * this run, refused while another run holds it); a fresh run into a
 * directory that already holds checkpoints; the metrics path (its
 * directory writable, not a device or directory, not any input or
 * checkpoint of the run). Then it removes the partial checkpoints
 * (step-N.ckpt.tmp, last.ckpt.tmp) an interrupted write left there. */
ra_status ra_train_preflight(const ra_cli *c, const ra_config *cfg, const ra_train_files *f);
/* A run that failed or stopped after the preflight (a checkpoint that
 * cannot be loaded, a signal in the warm start) leaves no checkpoint
 * directory the preflight made, as long as nothing but its lock file is in
 * it: rank 0 removes the lock file it holds, then the directory if empty. */
void ra_train_unmake_dir(const ra_cli *c, const ra_config *cfg);

/* An output that is a checkpoint (it starts with the magic) or lies in the
 * directory of a training run in progress (its lock held) is refused:
 * writing it would lose the run's work. Every output's check
 * (ra_check_output_fresh) asks this. */
ra_status ra_check_not_run_file(const char *path, const char *what);

/* An output (opt path, for `what`) named like a checkpoint (step-N.ckpt,
 * last.ckpt, or either + ".tmp") or like the lock file inside the
 * checkpoint directory ckdir is refused: writing it would replace a
 * checkpoint, or the lock. */
ra_status ra_check_not_checkpoint(const char *path, const char *opt, const char *ckdir, const char *what);

/* DIR/step-%08d.ckpt, then DIR/last.ckpt -> it (a symlink made as
 * "DIR/last.ckpt.tmp" and renamed), written by rank 0. Every rank calls
 * it: with sharded moments the owners stream their shards (shard_io.h).
 * Returns this rank's status; agree on it after. */
ra_status ra_train_save(const ra_cli *c, ra_session *s, const char *dir, int step);
/* The config text train's checkpoints store (malloc'd; NULL: out of
 * memory): file paths made absolute, so a run's files do not depend on
 * how its paths were spelled. */
char *ra_train_config_text(const ra_config *cfg);

/* The metrics writer; errors are sticky and reported by ra_metrics_failed and
 * ra_metrics_error. */
typedef struct {
    int fd;
    char path[RA_PATH_MAX];
    char buf[8192];
    size_t len;
    int failed;
    char why[768];
} ra_metrics;

/* Open (append: keep the existing lines, for --resume from step keep_after;
 * lines of later steps, which a run killed after that checkpoint wrote and
 * the resumed run writes again, are dropped first). Rank 0. */
ra_status ra_metrics_open(ra_metrics *m, const char *path, int append, int64_t keep_after);
/* printf into the buffer; m may be NULL (no metrics). */
void ra_metrics_printf(ra_metrics *m, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Write the buffered lines; a failure is kept in m. */
void ra_metrics_flush(ra_metrics *m);
/* 1 when a write has failed (NULL: 0). */
int ra_metrics_failed(const ra_metrics *m);
/* The failure as an error status (RA_OK when none). */
ra_status ra_metrics_error(const ra_metrics *m);
/* Flush, fsync, close; the first failure. quiet: another error is being
 * reported (write what is buffered, report nothing). m may be NULL. */
ra_status ra_metrics_close(ra_metrics *m, int quiet);

/* ---- --resume (train_resume.c) ------------------------------------------- */

/* The checkpoint --resume GIVEN reads (resume: ra_ckpt_resolve'd, cap
 * bytes), chosen once by rank 0 and sent to all, after every rank's
 * --resume is compared with rank 0's: DIR's newest step-N.ckpt when its
 * last.ckpt lags (refused when the two files' history ids differ), and for
 * a branch into ckdir (--checkpoint-dir, or NULL) last.ckpt's target
 * (a live run moves the link). Collective. */
ra_status ra_train_resume_source(const ra_cli *c, const char *given, const char *ckdir, char *resume, size_t cap);
/* A step-N.ckpt resumed (by name, or through last.ckpt) must hold step N:
 * the directory's rules read steps from names, and a renamed or copied
 * file misled them ("resumed from step-00000015.ckpt at step 20"). */
ra_status ra_train_step_as_named(const char *resume, uint64_t step);
/* The history id of this run's checkpoints (checkpoint.h): the resumed
 * checkpoint's when it continues in its own directory; else a hash of the
 * config text its checkpoints store, and for a branch of the state it
 * branches from. Not random: two runs of one command in one place give
 * bit-identical checkpoints (tested). It names where a history started:
 * copies of a directory share it. Rank 0's, sent to all. Collective. */
ra_status ra_train_history_id(const ra_cli *c, const char *resume, const ra_config *cfg, const ra_ckpt_state *from,
                              uint64_t *id);
/* A resumed run drops the metrics lines after its step before appending:
 * they are its own killed continuation's only in the checkpoint's own
 * metrics file (stored: its run.metrics) and directory. So a branch (a
 * resume into another directory) and a resume from a copy of the run's
 * directory, or a moved one, do not inherit that file (said; cfg->metrics
 * emptied), and a file given (given: "--metrics" or "run.metrics", NULL
 * when inherited) that holds later steps of another history is refused.
 * stored, stored_ckdir: the checkpoint's run.metrics and
 * run.checkpoint_dir as stored. Collective. */
ra_status ra_train_resume_metrics(const ra_cli *c, const char *given, ra_config *cfg, const char *resume,
                                  const ra_ckpt_state *from, const char *stored, const char *stored_ckdir);

#endif
