/* costmodel_internal.h - what the cost model's two files share: attn.c's
 * tile shapes, the rank sample and the tile counts (costmodel.c: rates,
 * tiles, the ring, a training step; costmodel_combiner.c: the Combiner
 * heads). Internal: not installed. */
#ifndef RINGATTN_COSTMODEL_INTERNAL_H
#define RINGATTN_COSTMODEL_INTERNAL_H

#include <stdint.h>

#include "ringattn/attn.h"
#include "ringattn/costmodel.h"

/* attn.c's tiles (attn.h): forward 256 query rows x 512 keys, a partial
 * causal tile in groups of FWD_SUB rows, each up to the last key its last
 * query sees; backward 64 x 512, computed whole. (A copy of 64 here, after
 * the kernel went to groups of 16, over-counted the Combiners' small
 * causal blocks.) */
enum {
    FWD_TQ = RA_ATTN_FWD_TQ,
    FWD_TK = RA_ATTN_FWD_TK,
    FWD_SUB = RA_ATTN_FWD_SUB,
    BWD_TQ = RA_ATTN_BWD_TQ,
    BWD_TK = RA_ATTN_BWD_TK,
};
/* Above this many ranks the per-step maxima are taken over a sample of
 * ranks and ring distances (every step's pattern repeats with the distance). */
enum { SAMPLE = 48 };

/* ---- costmodel.c ---- */

/* Ranks of one ring: P / dp. */
int ra_cm_ring_size(const ra_cm_setup *s);
/* Ranks (or ring distances) first..P-1 to evaluate, at most SAMPLE of them,
 * into idx and the weight of each into w; returns how many. */
int ra_cm_sample_set(int P, int first, int *idx, double *w);
/* ra_cm_tile_pairs for query rows [qa, qa+qn) of rank qr against piece pc
 * of rank kr. */
ra_cm_tiles ra_cm_tile_pairs_range(ra_layout lay, int64_t L, int P, int qr, int64_t qa, int64_t qn, int kr,
                                   const ra_cm_piece *pc, int causal, int tq, int tk, int sub);
/* Forward and backward tile work in pairs at the calibrated tile rate. */
double ra_cm_fwd_pairs(ra_cm_tiles t);
double ra_cm_bwd_pairs(ra_cm_tiles t);

/* ---- costmodel_combiner.c ---- */

/* ra_cm_attn_time of a Combiner head (a->head != RA_HEAD_FULL), its
 * arguments checked. */
ra_status ra_cm_combiner_time(const ra_cm_attn *a, const ra_cm_setup *s, const ra_cm_rates *rt, ra_cm_attn_cost *c);

#endif
