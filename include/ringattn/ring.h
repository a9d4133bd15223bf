/* ring.h - exact attention over a ring of MPI ranks (docs/design.md §4).
 *
 * Every rank owns Lr tokens of a length-L sequence (see layout.h) and holds
 * q [B][H][Lr][D], k, v [B][Hkv][Lr][D], optional segment ids seg [B][Lr].
 * Key/value blocks circulate around the ring in pieces of at most `chunk`
 * tokens, double-buffered and non-blocking, while each rank attends its
 * queries to the piece it holds. The result equals single-rank attention
 * over the whole sequence to float32 round-off, for any P and layout.
 *
 *     ra_ring_opts o = { .B = 1, .H = 4, .Hkv = 4, .D = 64, .L = 8192,
 *                        .causal = 1, .layout = RA_LAYOUT_ZIGZAG };
 *     ra_ring *ring;
 *     RA_TRY(ra_ring_create(&ring, &o, MPI_COMM_WORLD));
 *     int64_t Lr = ra_ring_local_len(ring);       // this rank's tokens
 *     RA_TRY(ra_ring_forward(ring, q, k, v, NULL, o_out, lse));
 *     RA_TRY(ra_ring_backward(ring, q, k, v, NULL, o_out, lse, dout, dq, dk, dv));
 *     ra_ring_destroy(ring);
 */
#ifndef RINGATTN_RING_H
#define RINGATTN_RING_H

#include <mpi.h>
#include <stdint.h>

#include "ringattn/layout.h"
#include "ringattn/status.h"

/* Buffers of a ring at P > 1, each of one piece (at most `chunk` tokens):
 * K, V (and segment ids) of the held, next and after-next pieces; and, from
 * the first backward on, dK, dV partials: three outgoing, one incoming
 * (ring_attn.c; the cost model's memory uses the same counts). */
enum { RA_RING_PIECE_BUFFERS = 3, RA_RING_DKV_BUFFERS = 4 };

typedef struct {
    int B, H, Hkv, D;  /* batch, query heads, key/value heads (divides H), head dim */
    int64_t L;         /* global sequence length >= 1; a rank may own no token */
    float scale;       /* 0: 1/sqrt(D) */
    int causal;
    ra_layout layout;
    int chunk;         /* max tokens per ring message; 0: automatic */
} ra_ring_opts;

typedef struct {
    double seconds;       /* wall time of the last call */
    double wait_seconds;  /* time blocked in MPI_Wait* for ring transfers */
    double bytes_sent;    /* ring payload bytes this rank sent */
    int steps;            /* ring steps (pieces processed) */
} ra_ring_stats;

typedef struct ra_ring ra_ring;

ra_status ra_ring_create(ra_ring **out, const ra_ring_opts *opts, MPI_Comm comm);
void ra_ring_destroy(ra_ring *ring);

int64_t ra_ring_local_len(const ra_ring *ring);        /* Lr */
const int32_t *ra_ring_positions(const ra_ring *ring); /* [Lr] global indices */
const ra_ring_opts *ra_ring_get_opts(const ra_ring *ring);

/* o [B][H][Lr][D], lse [B][H][Lr]. seg may be NULL. */
ra_status ra_ring_forward(ra_ring *ring, const float *q, const float *k, const float *v,
                          const int32_t *seg, float *o, float *lse);
/* Overwrites dq [B][H][Lr][D], dk, dv [B][Hkv][Lr][D]. o, lse from forward. */
ra_status ra_ring_backward(ra_ring *ring, const float *q, const float *k, const float *v,
                           const int32_t *seg, const float *o, const float *lse,
                           const float *dout, float *dq, float *dk, float *dv);

ra_ring_stats ra_ring_last_stats(const ra_ring *ring);
/* Bytes of buffers the ring allocated (scratch and ring pieces). */
size_t ra_ring_buffer_bytes(const ra_ring *ring);

/* Benchmark only (`bench attn --no-comm`): from now on ring transfers are
 * skipped in this process - each rank gets its own piece back in place of
 * its neighbour's - so a run does the same tile work with no communication.
 * Results are wrong; with causal masking the tiles differ too. */
void ra_ring_set_loopback(int on);

#endif
