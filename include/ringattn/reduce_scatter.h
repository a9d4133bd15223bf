/* reduce_scatter.h - a float sum reduce-scattered onto shard owners by
 * pairwise exchange, in slices posted one after another and finished
 * together (the gradients, design.md §16).
 *
 *     ra_rs rs;                                    // bounds[P + 1]: rank r owns [bounds[r], bounds[r + 1])
 *     RA_TRY(ra_rs_init(&rs, comm, bounds, 8));    // at most 8 slices between finishes
 *     RA_TRY(ra_rs_post(&rs, grads, begin, end));  // each slice of grads as soon as it is final
 *     RA_TRY(ra_rs_finish(&rs, grads, shard));     // shard[i] = sum over ranks of grads[bounds[rank] + i]
 *     ra_rs_free(&rs);                             //   for every i some posted slice covered
 *
 * Why not MPI_Ireduce_scatter: Open MPI's libnbc reduces every slice whole
 * onto rank 0 (a binomial tree: log2 P full slices into rank 0), then sends
 * each rank its part from there, and does each round's sum only when the
 * caller polls. Here each rank sends every owner its part of the slice
 * directly: (P-1)/P of a slice each way per rank, no rank a hotspot.
 * The owner takes the parts in P - 1 rounds, round k from rank - k (so in
 * each round every rank receives from one and sends to another), adding
 * each to the sum as it comes: own part first, then rank - 1, rank - 2, ...
 * That order is fixed, so the sum does not depend on arrival order, and
 * the same for any slicing (an owner's element is always summed alike).
 * The first two rounds' receives are posted with each slice; later rounds'
 * at the finish, each into the buffer its round two before freed.
 * Memory: min(2, P - 1) x the rank's shard; the sends read grads, which
 * must not change until the finish. */
#ifndef RINGATTN_REDUCE_SCATTER_H
#define RINGATTN_REDUCE_SCATTER_H

#include <mpi.h>
#include <stddef.h>

#include "ringattn/status.h"

typedef struct {
    MPI_Comm comm;
    int P, rank, max_slices;
    const size_t *bounds; /* [P + 1] */
    size_t own;           /* bounds[rank + 1] - bounds[rank] */
    float *recv;          /* [min(2, P - 1)][own]: round k's parts of this rank's shard in buffer (k - 1) % 2 */
    MPI_Request *req;     /* [max_slices + P] the sends */
    MPI_Request *rreq;    /* [2][max_slices] the receives of the two rounds in flight */
    int nreq, nposts, nslices; /* sends; slices posted; those that meet this rank's shard */
    size_t (*posted)[2];  /* [max_slices] the slices posted, [begin, end) */
    size_t (*covered)[2]; /* [max_slices] the shard's ranges the posted slices cover */
    int *world;           /* [P] comm's ranks in MPI_COMM_WORLD, for the timeout message */
} ra_rs;

/* bounds must outlive rs and rise from 0; fails naming the buffers when they
 * cannot be allocated, and naming the rank when a part of bounds is over
 * INT_MAX floats (one MPI message each). */
ra_status ra_rs_init(ra_rs *rs, MPI_Comm comm, const size_t *bounds, int max_slices);
/* Start the exchange of grads[begin, end): inside [0, bounds[P]) (any
 * size: one message per owner's part), not overlapping a slice posted since the last finish,
 * and posted in the same order on every rank. */
ra_status ra_rs_post(ra_rs *rs, const float *grads, size_t begin, size_t end);
/* Wait for every posted slice (under the peer timeout) and sum into shard:
 * a buffer of its own or this rank's range of grads itself (in place, as
 * an all-reduce's first half does); the receive buffer is scratch after. */
ra_status ra_rs_finish(ra_rs *rs, const float *grads, float *shard);
/* Bytes the receive buffer takes: for the memory plan before ra_rs_init. */
size_t ra_rs_bytes(int P, size_t own);
void ra_rs_free(ra_rs *rs);

/* The all-reduce built on it (the replicated optimizer's gradients, `bench
 * reduce`): x[0, n) summed over the ranks in place, every rank getting the
 * whole sum. Equal parts [floor(n r / P), floor(n (r+1) / P)) (the sharded
 * optimizer's shards, so both sum bit for bit alike) are reduce-scattered
 * in place, then MPI_Allgatherv in place gives everyone every part.
 *
 *     ra_allsum s;
 *     RA_TRY(ra_allsum_init(&s, comm, n, 8));
 *     RA_TRY(ra_allsum_post(&s, x, begin, end));   // slices, as ra_rs_post
 *     RA_TRY(ra_allsum_finish(&s, x));             // x = the sum wherever a slice was posted */
typedef struct {
    ra_rs rs;
    size_t *bounds; /* [P + 1] the parts */
} ra_allsum;

/* Fails naming what could not be allocated, or a part or offset over
 * INT_MAX floats (ra_parts_fit); s is then empty (ra_allsum_free is
 * harmless, bounds NULL). */
ra_status ra_allsum_init(ra_allsum *s, MPI_Comm comm, size_t n, int max_slices);
ra_status ra_allsum_post(ra_allsum *s, const float *x, size_t begin, size_t end);
ra_status ra_allsum_finish(ra_allsum *s, float *x);
void ra_allsum_free(ra_allsum *s);

/* Whether parts bounds[0..P] (rank r's [bounds[r], bounds[r+1])) can be
 * all-gathered: MPI counts and offsets are ints, so a part or an offset over
 * INT_MAX floats fails naming `what` and the rank. More ranks shrink the
 * parts but not the offsets: more than INT_MAX floats in all cannot be. */
ra_status ra_parts_fit(const size_t *bounds, int P, const char *what);

/* x's parts all-gathered in place: every rank gets x[bounds[r],
 * bounds[r+1]) from rank r (the sharded optimizer's parameters, ra_allsum's
 * sums). Checks ra_parts_fit first, on every rank alike. */
ra_status ra_allgather_parts(float *x, const size_t *bounds, MPI_Comm comm, const char *what);

#endif
