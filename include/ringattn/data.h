/* data.h - training and held-out sequences, each rank reading only the
 * tokens at its own positions (layout-aware).
 *
 * Sources (config [data] source):
 *   file   - any file read as bytes; the last val_fraction is held out (or
 *            data.val_path is). Sequence idx of a split starts at a
 *            pseudo-random offset drawn from (seed, split, idx); tokens are
 *            bytes off+pos, targets bytes off+pos+1.
 *   tokens - the same over a file of token ids (ra_token_file below):
 *            elements instead of bytes.
 *   recall - a generated long-context recall task: recall_pairs key-value
 *            pairs, one byte each (RA_RECALL_PAIR), scattered through
 *            filler; a separator; then recall_queries keys (letters 'A'..),
 *            each followed by its value (letters 'a'..). The answers are the
 *            only counted targets, and they can only be found by attending
 *            back to the pair (and so across rank boundaries). Queries pick
 *            pairs with replacement, so earlier answers give nothing away.
 *            Chance is 1/16.
 * Sequence idx depends only on (seed, split, idx): the same data whatever
 * the number of ranks or the layout. */
#ifndef RINGATTN_DATA_H
#define RINGATTN_DATA_H

#include <stdint.h>

#include "ringattn/config.h"
#include "ringattn/status.h"
#include "ringattn/tokens.h"

enum {
    RA_SPLIT_TRAIN = 0, /* random windows of the training part */
    RA_SPLIT_VAL = 1,   /* random windows of the held-out part */
    RA_SPLIT_ALL = 2,   /* file, tokens: consecutive windows covering data.path;
                         * idx >= ra_data_windows is padding (token 0, every
                         * target -1: counted by nothing) */
};

/* A file of token ids, read by element with positioned reads (never whole).
 * Forms (data.dtype, ra_token_dtype_id in names.h):
 *   uint16, uint32 - a flat little-endian file (uint16: nanoGPT's train.bin);
 *                    its size must be a whole number of elements
 *   npy            - a 1-D .npy of <u2, <u4, <i4 or <i8 (npy.h's header
 *                    parser); int32/int64 values must be >= 0
 *   llmc           - an llm.c shard: 256 int32 header (header[0] magic
 *                    20240520, header[1] version 1: uint16 tokens; or magic
 *                    20240801, version 7: uint32 tokens; header[2] the token
 *                    count), then the tokens; the size must be exactly
 *                    1024 + count * element size
 *   auto           - npy or llmc by the magic at byte 0 (any file name); a
 *                    file with neither is refused (a flat file says nothing
 *                    of its element size: set uint16 or uint32)
 * A flat dtype refuses a file that starts with the .npy magic or the llm.c
 * magic and version (it would read the header as tokens). Every file must be
 * a regular file (fileio.h) holding at least one token. */
typedef struct {
    char path[RA_PATH_MAX];
    const char *what;  /* its role in messages: "data.path", "data.val_path", "--prompt-tokens" */
    const char *dtype_opt; /* what set the element type, in messages: "data.dtype", "--prompt-dtype" */
    int fd;            /* -1 when closed */
    int64_t offset;    /* bytes before element 0 */
    int64_t count;     /* elements */
    int esize;         /* bytes per element: 1 (bytes), 2, 4 or 8 */
    int is_signed;     /* .npy int32 / int64 */
    char kind[48];     /* "bytes", "uint16", ".npy int64", "llm.c shard (uint16)", ... */
} ra_token_file;

ra_status ra_token_file_open(ra_token_file *f, const char *path, const char *what, ra_token_dtype_id dtype);
/* The same, with the option that gave dtype named in messages (ra_token_file_open: "data.dtype"). */
ra_status ra_token_file_open_as(ra_token_file *f, const char *path, const char *what, ra_token_dtype_id dtype,
                                const char *dtype_opt);
/* Elements [first, first + n) into dst, each checked to be in [0, vocab): the
 * first outside is an error naming what, the file, the value and its element
 * (for a byte file: "byte B at offset O"). */
ra_status ra_token_file_read(const ra_token_file *f, int64_t first, int64_t n, int vocab, int32_t *dst);
void ra_token_file_close(ra_token_file *f); /* safe on a closed one */
/* 1 when the file at path starts with the .npy or an llm.c shard's magic
 * (a file of token ids that data.dtype = auto reads), 0 otherwise or when
 * it cannot be read (the open that follows reports why). */
int ra_token_file_has_magic(const char *path);

typedef struct ra_data ra_data;

/* pos [Lr]: this rank's global positions (sorted), kept by reference.
 * File and tokens: data.path (and data.val_path, when set) must be regular
 * files (FIFOs, directories and devices are refused without blocking)
 * holding one sequence + 1 element each; data.val_path must not be
 * data.path (ra_same_file). Without data.val_path, data.val_fraction > 0
 * holds out the last part of data.path, and the training and the held-out
 * part must each hold one sequence + 1 too; data.val_fraction = 0 holds
 * nothing out (RA_SPLIT_ALL only: eval --data). Every element read is
 * checked against model.vocab; one outside it is an error naming the file
 * and its offset (bytes) or element (tokens). */
ra_status ra_data_open(ra_data **out, const ra_config *cfg, const int32_t *pos, int64_t Lr);
/* The same, naming data.path's file path_what in messages: "--data" when
 * the user gave it so (eval --data FILE), not a config key they never set. */
ra_status ra_data_open_as(ra_data **out, const ra_config *cfg, const int32_t *pos, int64_t Lr, const char *path_what);
void ra_data_close(ra_data *d);
/* tok, tgt [B][Lr] for sequences idx0 .. idx0+B-1 of split. */
ra_status ra_data_batch(ra_data *d, int split, uint64_t idx0, int B, int32_t *tok, int32_t *tgt);
/* File and tokens: how many consecutive windows RA_SPLIT_ALL has (0 for recall). */
int64_t ra_data_windows(const ra_data *d);
/* Counted targets per sequence over the whole sequence (all ranks). */
int64_t ra_data_targets_per_seq(const ra_data *d);

/* Corpus statistics (warm starts): calls visit(ctx, tok, n, lo, hi) on runs
 * of consecutive training tokens; tok[lo, hi) are this rank's centres, the
 * rest is up to `margin` tokens of context either side. file, tokens: the
 * training part (never the held-out data) cut into `size` equal shares, read in
 * pieces; recall: whole training sequences idx = rank, rank + size, ... <
 * nseq. Every training token is a centre on exactly one rank, so sums over
 * ranks do not depend on size. */
typedef ra_status (*ra_data_visit)(void *ctx, const int32_t *tok, int64_t n, int64_t lo, int64_t hi);
ra_status ra_data_scan(ra_data *d, int rank, int size, int margin, uint64_t nseq, ra_data_visit visit,
                       void *ctx);

/* The recall alphabet (RA_RECALL_PAIR, RA_RECALL_KEY, ...) is in tokens.h. */

#endif
