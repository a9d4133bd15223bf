/* relayout.h - move a sequence tensor from one token layout to contiguous
 * ranges of global tokens chosen by the caller (and back), with one
 * all-to-all (ra_alltoallv, which counts its bytes): every token moves at most once, so a rank sends and
 * receives about its own share, (L/P) rows, never the whole sequence.
 *
 * Heads whose structure follows the sequence (Combiner spans) use it to work
 * on whole spans: bounds[r] .. bounds[r+1] are the global tokens rank r holds
 * after the move.
 *
 *     ra_relayout R;
 *     RA_TRY(ra_relayout_create(&R, RA_LAYOUT_STRIPED, L, bounds, comm));
 *     RA_TRY(ra_relayout_move(&R, q, q_spans, B * H, D, 1));   // to bounds
 *     ...
 *     RA_TRY(ra_relayout_move(&R, o_spans, o, B * H, D, 0));   // back
 *     ra_relayout_free(&R); */
#ifndef RINGATTN_RELAYOUT_H
#define RINGATTN_RELAYOUT_H

#include <mpi.h>
#include <stdint.h>

#include "ringattn/layout.h"
#include "ringattn/status.h"

typedef struct {
    MPI_Comm comm;
    int P, rank;
    int64_t L;
    ra_layout layout;
    int64_t Lr_src, Lr_dst; /* this rank's tokens before and after */
    int64_t dst0;           /* first global token held after the move */
    int64_t *src_of;        /* [Lr_dst] for each token held after: source rank, then its local index */
    int *src_rank;          /* [Lr_dst] */
    int *dst_rank;          /* [Lr_src] where each local token goes */
    int64_t *tok_src, *tok_dst; /* token counts per rank: [P] sent, [P] received */
    void *maps;             /* the block holding the maps and counts above */
    float *buf;             /* packing buffers, grown on demand */
    size_t buf_floats;
} ra_relayout;

/* bounds [P+1]: bounds[0] = 0 <= ... <= bounds[P] = L. Collective. */
ra_status ra_relayout_create(ra_relayout *R, ra_layout layout, int64_t L, const int64_t *bounds,
                             MPI_Comm comm);
/* Between two sets of contiguous ranges over different orders of the
 * tokens: rank r holds tokens src_bounds[r] .. src_bounds[r+1] (global
 * index t) before the move and keys dst_bounds[r] .. dst_bounds[r+1] after,
 * where a token's key is key(t, ctx) - a permutation of [0, L), e.g. the
 * column-major index of a row-major grid. Collective. */
ra_status ra_relayout_create_perm(ra_relayout *R, int64_t L, const int64_t *src_bounds,
                                  const int64_t *dst_bounds, int64_t (*key)(int64_t t, const void *ctx),
                                  const void *ctx, MPI_Comm comm);
void ra_relayout_free(ra_relayout *R);
/* forward = 1: src [nbh][Lr_src][w] (layout) -> dst [nbh][Lr_dst][w] (bounds);
 * forward = 0: the reverse. Collective. */
ra_status ra_relayout_move(ra_relayout *R, const float *src, float *dst, int nbh, int w, int forward);

#endif
