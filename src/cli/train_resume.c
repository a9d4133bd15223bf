/* train_resume.c - which checkpoint `train --resume` reads and what the
 * resumed run may touch (docs/design.md §8.3, §8.6): the newest-step rule
 * and the history ids that bound it, the file chosen once by rank 0, a
 * step file that must hold its step, the history id of the run's own
 * checkpoints, and whose metrics file a resume may cut and append to. */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ringattn/checkpoint.h"
#include "ringattn/dist.h"
#include "ringattn/fileio.h"
#include "train_io.h"

/* The file name path stands for: its own, or, for a last.ckpt link, its
 * target's (into buf). NULL for a last.ckpt that is not a readable link. */
static const char *step_name(const char *path, char *buf, size_t cap)
{
    const char *slash = strrchr(path, '/'), *name = slash ? slash + 1 : path;
    if (strcmp(name, "last.ckpt") != 0) return name;
    const ssize_t n = readlink(path, buf, cap - 1);
    if (n <= 0) return NULL;
    buf[n] = '\0';
    slash = strrchr(buf, '/');
    return slash ? slash + 1 : buf;
}

/* --resume DIR whose last.ckpt links to an older step than DIR's newest
 * step-N.ckpt: a job killed between writing step-N.ckpt and moving
 * last.ckpt (a node lost; Slurm requeues with --resume DIR, and the resume
 * was refused). DIR's step files are one history (a resume that would fork
 * it is refused), so the newest is where the run was: resume from it, said.
 * Unless the two files' history ids (checkpoint.h) say they are two runs' (a
 * file copied in from another run's directory): that is refused, naming
 * both, rather than resuming another model here and writing its metrics.
 * A last.ckpt given by name, missing or not a link is left to the checks. */
static ra_status resume_newest(const ra_cli *c, const char *dir, char *resume, size_t cap)
{
    struct stat st;
    char target[300], newest[300], path[RA_PATH_MAX + 320];
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) return RA_OK;
    const ssize_t n = readlink(resume, target, sizeof target - 1);
    if (n <= 0) return RA_OK;
    target[n] = '\0';
    const long linked = ra_ckpt_step_of(target); /* -1: not a step name of DIR's own */
    if (linked < 0 || ra_ckpt_newest_step(dir, newest, sizeof newest) <= linked) return RA_OK;
    ra_ckpt_state a = { 0 }, b = { 0 }; /* unreadable: the load below says why */
    ra_join_path(path, sizeof path, dir, target);
    const int ra = ra_ckpt_peek_state(path, &a) == RA_OK;
    /* the newest checked whole (its checksum too): a corrupt body under a
     * sound header was chosen and then refused with no advice */
    ra_join_path(path, sizeof path, dir, newest);
    const int rb = ra_ckpt_peek(path, NULL, &b) == RA_OK;
    const uint64_t ha = a.extra[RA_CKPT_HISTORY], hb = b.extra[RA_CKPT_HISTORY];
    if (ra && !rb) return RA_OK; /* the newest cannot be resumed: the checks of the directory say so */
    if (ra && rb && ha && hb && ha != hb)
        return RA_FAIL(RA_ERR_ARG, "train: %s points at step %ld, but %s also holds %s, of another training run (the "
                       "two files' history ids differ: copied in from another run's directory?); resuming would "
                       "mix two runs in one directory: move the other run's files away, or resume from one of "
                       "them by name into a new --checkpoint-dir", resume, linked, dir, newest);
    ra_say(c, "train: %s points at step %ld, but %s holds %s: resuming from the newest (a run stopped before it "
              "moved last.ckpt)\n", resume, linked, dir, newest);
    ra_join_path(resume, cap, dir, newest);
    return RA_OK;
}

/* --resume DIR (or DIR/last.ckpt) where no checkpoint is yet, beside the
 * lock file of a run that writes there: it has not written its first
 * checkpoint (or stopped before it). Said so, with the run the lock file
 * names, rather than "last.ckpt: cannot open". */
static ra_status no_checkpoint_yet(const char *given, const char *named, const char *dir)
{
    struct stat st;
    char lock[RA_PATH_MAX + 32], newest[300], who[128] = "";
    if (lstat(named, &st) == 0 || stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) return RA_OK;
    if (ra_ckpt_newest_step(dir, newest, sizeof newest) >= 0) return RA_OK;
    ra_join_path(lock, sizeof lock, dir, RA_CKPT_LOCK_NAME);
    if (lstat(lock, &st) != 0 || !S_ISREG(st.st_mode)) return RA_OK;
    FILE *f = fopen(lock, "r");
    if (f) {
        if (!fgets(who, sizeof who, f)) who[0] = '\0';
        fclose(f);
    }
    who[strcspn(who, "\n")] = '\0';
    return RA_FAIL(RA_ERR_ARG, "train: --resume %s: %s holds no checkpoint yet, only the lock file of a run that "
                   "writes checkpoints there (%s): it has not written its first (train.checkpoint_every), or "
                   "stopped before; wait for one, or start without --resume", given, dir,
                   who[0] ? who : "holder unknown");
}

/* A branch (--resume SRC, SRC/last.ckpt, into another --checkpoint-dir)
 * may read a live run's directory, whose last.ckpt moves at every
 * checkpoint: ranks that each followed the link read different steps and
 * were refused ("rank 2 loaded a different checkpoint than rank 0", 9 of
 * 12 tries at P = 4). Rank 0 follows it once; every rank reads that step
 * file. (A resume in its own directory has no live writer: the lock.) */
static void pin_branch_source(const char *ckdir, char *resume, size_t cap)
{
    char target[300], dir[RA_PATH_MAX];
    const char *slash = strrchr(resume, '/'), *name = slash ? slash + 1 : resume;
    if (!ckdir || strcmp(name, "last.ckpt") != 0 || !ra_train_is_branch(resume, ckdir)) return;
    const char *to = step_name(resume, target, sizeof target);
    if (!to || ra_ckpt_step_of(to) < 0) return; /* not a step file beside it: read as given */
    ra_dir_of(resume, dir, sizeof dir);
    ra_join_path(resume, cap, dir, to);
}

ra_status ra_train_resume_source(const ra_cli *c, const char *given, const char *ckdir, char *resume, size_t cap)
{
    /* first, every rank's --resume against rank 0's (an MPMD launch): the
     * choice below would otherwise hide another rank's other checkpoint.
     * DIR as DIR/last.ckpt, the link itself not followed: one file by any
     * spelling */
    char canon[PATH_MAX], named[RA_PATH_MAX + 32], dir[RA_PATH_MAX], text[PATH_MAX + RA_PATH_MAX + 64];
    ra_ckpt_resolve(named, sizeof named, given);
    ra_dir_of(named, dir, sizeof dir);
    const char *base = strrchr(named, '/') ? strrchr(named, '/') + 1 : named;
    snprintf(text, sizeof text, "--resume = %s/%s\n", ra_path_for_ranks(dir, canon, sizeof canon), base);
    RA_TRY(ra_same_options(c, "train", text));
    ra_status st = RA_OK;
    if (c->rank == 0) {
        st = no_checkpoint_yet(given, named, dir);
        if (st == RA_OK) st = resume_newest(c, given, resume, cap);
        if (st == RA_OK) pin_branch_source(ckdir, resume, cap);
    }
    RA_TRY(ra_agree(c->comm, st));
    return ra_bcast(resume, (int)cap, MPI_CHAR, 0, c->comm, "the checkpoint to resume from");
}

ra_status ra_train_step_as_named(const char *resume, uint64_t step)
{
    char target[300];
    const char *name = step_name(resume, target, sizeof target);
    const long named = name ? ra_ckpt_step_of(name) : -1;
    if (named < 0 || (uint64_t)named == step) return RA_OK;
    return RA_FAIL(RA_ERR_ARG, "train: --resume %s: %s holds step %llu, not %ld (renamed, or copied over another "
                   "name): move it out of the directory (renaming it could replace the real step-%08llu.ckpt)",
                   resume, name, (unsigned long long)step, named, (unsigned long long)step);
}

ra_status ra_train_history_id(const ra_cli *c, const char *resume, const ra_config *cfg, const ra_ckpt_state *from,
                              uint64_t *id)
{
    uint64_t h = 0;
    ra_status st = RA_OK;
    if (c->rank == 0) {
        const int own = resume && !ra_train_is_branch(resume, cfg->checkpoint_dir);
        if (own) h = from->extra[RA_CKPT_HISTORY];
        char *text = h ? NULL : ra_train_config_text(cfg);
        if (!h && !text) st = RA_FAIL(RA_ERR_NOMEM, "train: out of memory for the config text");
        if (text) {
            h = ra_hash64(text, strlen(text));
            if (resume) h ^= ra_hash64(from, sizeof *from) * 0x9E3779B97F4A7C15ull;
            free(text);
        }
        if (!h) h = 1;
    }
    RA_TRY(ra_agree(c->comm, st));
    RA_TRY(ra_bcast(&h, 1, MPI_UINT64_T, 0, c->comm, "the history id"));
    *id = h;
    return RA_OK;
}

/* 1 when the checkpoint resumed from may not be in its run's own directory
 * (cp -r ckA ckB; --resume ckB, from any working directory; or the
 * directory moved), so its metrics file is not this resume's to cut: the
 * run.checkpoint_dir it stores (absolute when the run had metrics,
 * train_io.c) is not the directory it is in. A relative one (files of
 * older builds) counts only when it resolves from here to another
 * directory whose last.ckpt has the same history id: the original. */
static int resumed_copy(const char *resume, const char *stored_ckdir, uint64_t history)
{
    char dir[RA_PATH_MAX], last[RA_PATH_MAX + 32];
    struct stat st;
    ra_dir_of(resume, dir, sizeof dir);
    if (!stored_ckdir[0]) return 0;
    if (stored_ckdir[0] == '/') return !ra_same_file(stored_ckdir, dir);
    if (stat(stored_ckdir, &st) != 0 || !S_ISDIR(st.st_mode) || ra_same_file(stored_ckdir, dir)) return 0;
    ra_ckpt_state other = { 0 };
    ra_join_path(last, sizeof last, stored_ckdir, "last.ckpt");
    return history && ra_ckpt_peek_state(last, &other) == RA_OK && other.extra[RA_CKPT_HISTORY] == history;
}

ra_status ra_train_resume_metrics(const ra_cli *c, const char *given, ra_config *cfg, const char *resume,
                                  const ra_ckpt_state *from, const char *stored, const char *stored_ckdir)
{
    if (!resume || !cfg->metrics[0]) return RA_OK;
    const int64_t step = (int64_t)from->step;
    int mine = 0, verdict; /* 1: the inherited file dropped (2: from a copy); 3: the given one refused */
    if (c->rank == 0) {
        const int branch = ra_train_is_branch(resume, cfg->checkpoint_dir);
        const int copy = !branch && resumed_copy(resume, stored_ckdir, from->extra[RA_CKPT_HISTORY]);
        const int own = !branch && !copy && stored[0] && ra_same_file(cfg->metrics, stored);
        if (!given && (branch || copy)) mine = branch ? 1 : 2;
        else if (given && !own && !ra_file_held(cfg->metrics) && ra_metrics_steps_after(cfg->metrics, step))
            mine = 3; /* (a live run's file: the preflight says so) */
    }
    RA_TRY(ra_allreduce_named(&mine, &verdict, 1, MPI_INT, MPI_MAX, c->comm, "the metrics check"));
    if (verdict == 3 && c->rank != 0) return RA_ERR_PEER; /* agreed: rank 0 says it, once */
    if (verdict == 3)
        return RA_FAIL(RA_ERR_ARG, "train: %s %s: holds steps after %lld of another run (not the metrics of %s in "
                       "its own directory), which appending would cut; give another file name for this run's "
                       "metrics", given, cfg->metrics, (long long)step, resume);
    if (verdict == 1)
        ra_say(c, "train: not writing to %s, the metrics of the run resumed from (this run writes its checkpoints "
                  "into %s): no metrics for this run; give --metrics FILE for them\n", cfg->metrics,
               cfg->checkpoint_dir);
    if (verdict == 2)
        ra_say(c, "train: not writing to %s, the metrics of the run in %s: %s is a copy of that run's directory, or "
                  "it moved (its checkpoints say they were written in %s): no metrics for this run; give --metrics "
                  "FILE for them\n", cfg->metrics, stored_ckdir, cfg->checkpoint_dir, stored_ckdir);
    if (verdict == 1 || verdict == 2) cfg->metrics[0] = '\0';
    return RA_OK;
}
