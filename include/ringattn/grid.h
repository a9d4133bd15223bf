/* grid.h - the data x context grid (docs/design.md §16): P ranks as dp
 * data-parallel groups, each a ring (context parallelism) of cp = P/dp
 * ranks, and the shards of the optimizer state over all P ranks.
 *
 * Ring order: ranks sorted by (node, world rank), where a node is the set
 * of ranks MPI_Comm_split_type(SHARED) puts together and nodes are ordered
 * by their lowest world rank; ring g is the g-th block of cp ranks of that
 * order. So the ranks of a node are consecutive in a ring and a ring
 * crosses each node boundary at most once.
 *
 *     ra_grid g;
 *     RA_TRY(ra_grid_create(MPI_COMM_WORLD, cfg.dp, &g));  // collective
 *     ra_model_create(&m, &cfg, micro, g.ring);                // heads on the ring
 *     ...
 *     ra_grid_free(&g);
 */
#ifndef RINGATTN_GRID_H
#define RINGATTN_GRID_H

#include <mpi.h>
#include <stddef.h>

#include "ringattn/status.h"

typedef struct {
    MPI_Comm world;  /* every rank (not owned) */
    MPI_Comm ring;   /* this rank's context-parallel ring (owned) */
    int P, rank;     /* world size and rank */
    int dp, group;   /* data-parallel groups, this rank's group */
    int cp, pos;     /* ranks per ring, this rank's position in it */
    int node;        /* this rank's node: its lowest world rank */
} ra_grid;

/* Collective over world. dp must divide P (else an error naming run.dp and
 * P on every rank, and no communicator is left behind). */
ra_status ra_grid_create(MPI_Comm world, int dp, ra_grid *g);
/* The same check alone, local: RA_OK when dp divides P, else that error
 * (a command says it before the config's checks of train.batch against
 * run.dp, which a wrong run.dp would otherwise trip first). */
ra_status ra_grid_check(int P, int dp);
void ra_grid_free(ra_grid *g);
/* "grid: rank R on HOST | dp group G/dp | ring position p/cp", one line per
 * rank in world order, printed by world rank 0. Collective. */
ra_status ra_grid_print(const ra_grid *g);

/* This rank's node: the lowest rank of comm on it (MPI_Comm_split_type
 * SHARED). Collective over comm. */
ra_status ra_node_id(MPI_Comm comm, int *node);

/* Shard r of n values over P ranks: [n r / P, n (r + 1) / P) (need not
 * divide; sizes differ by at most one). */
size_t ra_shard_lo(size_t n, int P, int r);

#endif
