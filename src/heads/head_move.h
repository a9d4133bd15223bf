/* head_move.h - a Combiner head's moves between the caller's token layout and
 * its own (relayout.h), at the cost they need, and the zeroing of its
 * per-token buffers, on all of the rank's threads (docs/design.md §5, §10):
 * - nothing moves when every rank keeps its tokens in order (one rank and
 *   any layout, or contiguous ranges that are the caller's): the head works
 *   on the caller's tensors in place, no copy;
 * - on one rank a move is a local permutation: one copy, by all threads;
 * - otherwise ra_relayout_move (one all-to-all).
 *
 *     RA_TRY(ra_relayout_create(&M.R, layout, L, bounds, comm));
 *     RA_TRY(ra_head_move_init(&M));                          // collective
 *     const float *qs;
 *     RA_TRY(ra_head_move_in(&M, q, qbuf, B * H, D, &qs));     // qs: q or the head's qbuf
 *     float *os = ra_head_move_target(&M, o, obuf);            // o or the head's obuf
 *     ... compute os from qs ...
 *     RA_TRY(ra_head_move_out(&M, os, o, B * H, D));           // nothing if os == o
 *
 * The buffers a head passes are used only when !M.same (ra_head_move_floats). */
#ifndef RINGATTN_HEAD_MOVE_H
#define RINGATTN_HEAD_MOVE_H

#include <stddef.h>

#include "ringattn/relayout.h"
#include "ringattn/status.h"

typedef struct {
    ra_relayout R;
    int same; /* on every rank the head's layout is the caller's: nothing moves */
} ra_head_move;

/* After ra_relayout_create(_perm) of M->R: is it the identity on every rank? Collective. */
ra_status ra_head_move_init(ra_head_move *M);
void ra_head_move_free(ra_head_move *M);

/* The caller's tensors in a head's calls. A head keeps its own copies of
 * them in its layout (own[HM_Q] ...), used only when the layouts differ. */
enum { HM_Q, HM_K, HM_V, HM_O, HM_LSE, HM_DOUT, HM_DQ, HM_DK, HM_DV, HM_N };

/* Floats of the head's own copy of tensor t (0 when M->same): nq for Q, O,
 * dO, dQ; nk for K, V, dK, dV; nr for LSE. */
size_t ra_head_move_floats(const ra_head_move *M, int t, size_t nq, size_t nk, size_t nr);

/* ra_relayout_move between two of the head's buffers (one parallel copy on one rank). Collective. */
ra_status ra_head_move_run(ra_head_move *M, const float *src, float *dst, int nbh, int w, int forward);

/* The caller's src [nbh][Lr_src][w] in the head's layout: src itself when nothing moves, else moved into buf. */
ra_status ra_head_move_in(ra_head_move *M, const float *src, float *buf, int nbh, int w, const float **out);

/* Where to compute a tensor that goes back to the caller's dst: dst itself when nothing moves, else buf. */
static inline float *ra_head_move_target(const ra_head_move *M, float *dst, float *buf) { return M->same ? dst : buf; }

/* src (from ra_head_move_target) back to the caller's dst; nothing to do when src is dst. */
ra_status ra_head_move_out(ra_head_move *M, const float *src, float *dst, int nbh, int w);

/* x[0 .. n) = 0, on ra_threads() threads when n is large. */
void ra_head_zero(float *x, size_t n);

#endif
