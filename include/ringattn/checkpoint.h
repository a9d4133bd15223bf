/* checkpoint.h - one file per checkpoint (docs/design.md §8.3): magic + version
 * header, the config text, the step and RNG/data state, named float32
 * tensors (parameters, optimizer moments), and a checksum of everything.
 *
 * Writing goes to "<path>.tmp", is fsync'd, renamed over path, and the
 * directory fsync'd: a crash leaves either the old file or the new one.
 * Loading verifies the magic, version, sizes and checksum of the WHOLE file
 * before it copies a single value into the caller's tensors, so a corrupt,
 * truncated or mismatched checkpoint is refused and nothing is half-loaded.
 *
 *     ra_ckpt_tensor t[] = { { "params", params, n_params }, { "adam_m", m, n_params },
 *                            { "adam_v", v, n_params } };
 *     RA_TRY(ra_ckpt_save("ck/step-100.ckpt", cfg_text, &state, t, 3));
 *     RA_TRY(ra_ckpt_load("ck/step-100.ckpt", &text, &state, t, 3));
 */
#ifndef RINGATTN_CHECKPOINT_H
#define RINGATTN_CHECKPOINT_H

#include <limits.h>
#include <stddef.h>
#include <stdint.h>

#include "ringattn/status.h"

typedef struct {
    const char *name; /* <= 255 bytes */
    float *data;
    uint64_t count;   /* floats */
} ra_ckpt_tensor;

/* train counts its steps in an int: save refuses a larger step, and a file
 * holding one was changed, so every reader refuses it */
#define RA_CKPT_MAX_STEP INT_MAX

typedef struct {
    uint64_t step;      /* optimizer steps completed, at most RA_CKPT_MAX_STEP */
    uint64_t seed;      /* run seed */
    uint64_t data_pos;  /* data stream position (sequences consumed) */
    uint64_t extra[4];  /* saved and restored; extra[0]: the history id, extra[1]: the data's size,
                         * extra[2]: a hash of its bytes (below); extra[3] reserved */
} ra_ckpt_state;

/* extra[0] of train's checkpoints: a nonzero id made when a run starts
 * fresh or branches (resumes into another directory) from its config (and
 * the state branched from), kept by a resume in its own directory, so the
 * step files of one history share it and two runs started apart differ
 * (unless started by the same command in the same place; copies of one
 * directory keep it); 0 in files written before it existed and by import
 * (unknown). */
#define RA_CKPT_HISTORY 0
/* extra[1] of train's checkpoints: data.path's size in bytes plus one when
 * the run started, so that a resume can tell a data file that changed
 * since (a warning); 0 for the recall task, and in files written before it
 * existed and by import (unknown). */
#define RA_CKPT_DATA_BYTES 1
/* extra[2] of train's checkpoints: a 64-bit hash of data.path's bytes when
 * the run started (the whole file up to 16 MiB, else 256 blocks of 64 KiB
 * spread from its first byte to its last), so that a resume can tell a file
 * of the same size with other contents (shuffled, rewritten); 0 where
 * extra[1] is, and when the file could not be read. */
#define RA_CKPT_DATA_SAMPLE 2

/* Atomic write (see above). Errors name the path and the failing call. */
ra_status ra_ckpt_save(const char *path, const char *config_text, const ra_ckpt_state *state,
                       const ra_ckpt_tensor *tensors, int n);

/* ra_ckpt_save for values that are not in this process (optimizer shards
 * on other ranks): a tensor with data == NULL and count > 0 is pulled
 * through src in order, in chunks of at most 262144 values (1 MiB), into
 * a buffer of the writer's; src returns the values [at, at + n) of tensor
 * `tensor` into dst, or an error that aborts the save (the old file stays).
 * Same file, same atomicity. */
typedef ra_status (*ra_ckpt_source)(void *ctx, int tensor, uint64_t at, float *dst, size_t n);
ra_status ra_ckpt_save_stream(const char *path, const char *config_text, const ra_ckpt_state *state,
                              const ra_ckpt_tensor *tensors, int n, ra_ckpt_source src, void *ctx);

/* Verify, then load. *config_text (malloc'd, may be NULL if not wanted)
 * receives the stored config text. The file's tensors must match tensors[]
 * exactly in number, order, names and counts, else an error naming the
 * first mismatch (e.g. "ck.ckpt: tensor 'params' has 1000 values, the model
 * needs 1200: was it written for another config?"). */
ra_status ra_ckpt_load(const char *path, char **config_text, ra_ckpt_state *state,
                       const ra_ckpt_tensor *tensors, int n);

/* ra_ckpt_load that copies only the values [ranges[i].lo, ranges[i].hi) of
 * tensor i into tensors[i].data[0 .. hi - lo) (a rank's shard); counts
 * must still equal the file's (the whole tensor's length). ranges NULL:
 * everything. The whole file is verified first, as ra_ckpt_load does. */
typedef struct {
    uint64_t lo, hi;
} ra_ckpt_range;
ra_status ra_ckpt_load_range(const char *path, char **config_text, ra_ckpt_state *state,
                             const ra_ckpt_tensor *tensors, const ra_ckpt_range *ranges, int n);

/* The state only, from the header, without the checksum pass (a file
 * that is not verified: for choosing among files, never for loading). */
ra_status ra_ckpt_peek_state(const char *path, ra_ckpt_state *state);

/* Verify the whole file and return only its config text (malloc'd) and
 * state: what `generate` and `eval` need to build the model first. */
ra_status ra_ckpt_peek(const char *path, char **config_text, ra_ckpt_state *state);

/* ra_ckpt_load_range and ra_ckpt_peek that also give the file's stored
 * CRC-64 (verified against its bytes) in *sum: what identifies the content
 * that was read, so ranks that each read "the same" file can compare what
 * they got (a file replaced while they read it, different files given). */
ra_status ra_ckpt_load_range_sum(const char *path, char **config_text, ra_ckpt_state *state,
                                 const ra_ckpt_tensor *tensors, const ra_ckpt_range *ranges, int n, uint64_t *sum);
ra_status ra_ckpt_peek_sum(const char *path, char **config_text, ra_ckpt_state *state, uint64_t *sum);

/* 1 when path is a regular file that starts with a checkpoint's magic (a
 * checkpoint, or what is left of one): outputs refuse to replace it. */
int ra_ckpt_is_one(const char *path);
/* The step of a name train gives its checkpoints ("step-%08d.ckpt",
 * exactly), or -1 for any other name. */
long ra_ckpt_step_of(const char *name);
/* The step-%08d.ckpt of the largest step in dir into name (cap bytes; ""
 * when none); that step, or -1 when there is none or dir cannot be read. */
long ra_ckpt_newest_step(const char *dir, char *name, size_t cap);

#endif
