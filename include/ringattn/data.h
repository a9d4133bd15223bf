/* data.h - training and held-out sequences, each rank reading only the
 * tokens at its own positions (layout-aware).
 *
 * Sources (config [data] source):
 *   file   - any file read as bytes; the last val_fraction is held out.
 *            Sequence idx of a split starts at a pseudo-random offset drawn
 *            from (seed, split, idx); tokens are bytes off+pos, targets
 *            bytes off+pos+1.
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
    RA_SPLIT_ALL = 2,   /* file source: consecutive windows covering the whole file;
                         * idx >= ra_data_windows is padding (token 0, every
                         * target -1: counted by nothing) */
};

typedef struct ra_data ra_data;

/* pos [Lr]: this rank's global positions (sorted), kept by reference.
 * File source: data.path must be a regular file (FIFOs, directories and
 * devices are refused without blocking) holding one sequence + 1 byte; with
 * data.val_fraction > 0 the training and the held-out part must each hold
 * one too. data.val_fraction = 0 holds nothing out (RA_SPLIT_ALL only:
 * eval --data). Every byte read is checked against model.vocab; a byte
 * outside it is an error naming the file and its offset. */
ra_status ra_data_open(ra_data **out, const ra_config *cfg, const int32_t *pos, int64_t Lr);
void ra_data_close(ra_data *d);
/* tok, tgt [B][Lr] for sequences idx0 .. idx0+B-1 of split. */
ra_status ra_data_batch(ra_data *d, int split, uint64_t idx0, int B, int32_t *tok, int32_t *tgt);
/* File source: how many consecutive windows RA_SPLIT_ALL has (0 for recall). */
int64_t ra_data_windows(const ra_data *d);
/* Counted targets per sequence over the whole sequence (all ranks). */
int64_t ra_data_targets_per_seq(const ra_data *d);

/* Corpus statistics (warm starts): calls visit(ctx, tok, n, lo, hi) on runs
 * of consecutive training tokens; tok[lo, hi) are this rank's centres, the
 * rest is up to `margin` tokens of context either side. file: the training
 * part (never the held-out tail) cut into `size` equal shares, read in
 * pieces; recall: whole training sequences idx = rank, rank + size, ... <
 * nseq. Every training token is a centre on exactly one rank, so sums over
 * ranks do not depend on size. */
typedef ra_status (*ra_data_visit)(void *ctx, const int32_t *tok, int64_t n, int64_t lo, int64_t hi);
ra_status ra_data_scan(ra_data *d, int rank, int size, int margin, uint64_t nseq, ra_data_visit visit,
                       void *ctx);

/* The recall alphabet (RA_RECALL_PAIR, RA_RECALL_KEY, ...) is in tokens.h. */

#endif
