/* grid.c - the data x context grid: node-aware ring order, the rings, and
 * the grid printout (grid.h). */
#include "ringattn/grid.h"

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "ringattn/collective.h"
#include "ringattn/dist.h"

size_t ra_shard_lo(size_t n, int P, int r) { return (size_t)((unsigned __int128)n * (unsigned)r / (unsigned)P); }

static int by_node_rank(const void *a, const void *b)
{
    const int *x = a, *y = b;
    if (x[0] != y[0]) return x[0] < y[0] ? -1 : 1;
    return x[1] < y[1] ? -1 : x[1] > y[1];
}

ra_status ra_node_id(MPI_Comm world, int *node)
{
    int rank;
    MPI_Comm_rank(world, &rank);
    MPI_Comm shm;
    RA_MPI_TRY(MPI_Comm_split_type(world, MPI_COMM_TYPE_SHARED, rank, MPI_INFO_NULL, &shm),
               "MPI_Comm_split_type (the ranks of this node)");
    ra_status st = ra_allreduce_named(&rank, node, 1, MPI_INT, MPI_MIN, shm, "the node's lowest rank");
    MPI_Comm_free(&shm);
    return st;
}

/* Position of this rank in the (node, rank) order. Collective. */
static ra_status order_pos(const ra_grid *g, int *pos)
{
    int mine[2] = { g->node, g->rank }, *all = malloc(sizeof(int) * 4 * (size_t)g->P);
    ra_status st = all ? RA_OK : RA_FAIL(RA_ERR_NOMEM, "grid: out of memory for %d ranks", g->P);
    st = ra_agree(g->world, st);
    if (st != RA_OK) {
        free(all);
        return st;
    }
    int *counts = all + 2 * g->P, *displs = counts + g->P;
    for (int r = 0; r < g->P; r++) counts[r] = 2, displs[r] = 2 * r;
    st = ra_allgatherv(mine, 2, MPI_INT, all, counts, displs, MPI_INT, g->world, "the ranks' nodes");
    if (st == RA_OK) {
        qsort(all, (size_t)g->P, sizeof(int) * 2, by_node_rank);
        for (int i = 0; i < g->P; i++)
            if (all[2 * i + 1] == g->rank) *pos = i;
    }
    free(all);
    return st;
}

ra_status ra_grid_check(int P, int dp)
{
    if (dp >= 1 && P % dp == 0) return RA_OK;
    return RA_FAIL(RA_ERR_ARG, "run.dp = %d does not divide the %d ranks (P = %d): each of the dp data-parallel "
                   "groups is a ring of P / dp ranks; run on a multiple of %d ranks or set run.dp to a divisor "
                   "of %d (--set run.dp=1: one ring of all the ranks)", dp, P, P, dp, P);
}

ra_status ra_grid_create(MPI_Comm world, int dp, ra_grid *g)
{
    *g = (ra_grid){ .world = world, .ring = MPI_COMM_NULL, .dp = dp };
    MPI_Comm_size(world, &g->P);
    MPI_Comm_rank(world, &g->rank);
    RA_TRY(ra_grid_check(g->P, dp));
    g->cp = g->P / dp;
    RA_TRY(ra_node_id(world, &g->node));
    int order = 0;
    RA_TRY(order_pos(g, &order));
    g->group = order / g->cp;
    g->pos = order % g->cp;
    RA_MPI_TRY(MPI_Comm_split(world, g->group, g->pos, &g->ring), "MPI_Comm_split (the data-parallel rings)");
    return RA_OK;
}

void ra_grid_free(ra_grid *g)
{
    if (g->ring != MPI_COMM_NULL) MPI_Comm_free(&g->ring);
    g->ring = MPI_COMM_NULL;
}

ra_status ra_grid_print(const ra_grid *g)
{
    enum { LINE = 192 };
    char line[LINE], host[64] = "?", *all = NULL;
    gethostname(host, sizeof host - 1);
    host[sizeof host - 1] = '\0';
    snprintf(line, sizeof line, "grid: rank %d/%d on %s (node of rank %d) | dp group %d/%d | ring position %d/%d",
             g->rank, g->P, host, g->node, g->group, g->dp, g->pos, g->cp);
    if (g->rank == 0) all = malloc((size_t)LINE * (size_t)g->P);
    ra_status st = ra_agree(g->world, g->rank == 0 && !all ? RA_FAIL(RA_ERR_NOMEM, "grid: out of memory for "
                                                                     "the lines of %d ranks", g->P) : RA_OK);
    if (st != RA_OK) return st;
    st = ra_gather(line, LINE, MPI_CHAR, all, LINE, MPI_CHAR, 0, g->world, "the grid lines");
    for (int r = 0; st == RA_OK && all && r < g->P; r++) printf("%s\n", all + (size_t)LINE * (size_t)r);
    fflush(stdout);
    free(all);
    return st;
}
