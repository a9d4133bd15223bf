/* threads.c - where a rank runs (hwloc): its share of the node's cores, the
 * binding to them, and the OpenBLAS threads that fill them.
 *
 * The R ranks of a node split its C cores in contiguous blocks (local rank i
 * gets cores i*C/R .. (i+1)*C/R - 1) and bind the whole process - OpenBLAS's
 * threads included - to those cores' hardware threads, so that ranks never
 * compete for a core and threads stay near their memory. With more ranks
 * than cores nothing is bound (the scheduler shares the cores better than a
 * fixed placement) and each rank runs one thread. */
#include <hwloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ringattn/dist.h"

static hwloc_topology_t load_topology(void)
{
    hwloc_topology_t topo;
    if (hwloc_topology_init(&topo) != 0) return NULL;
    if (hwloc_topology_load(topo) != 0) {
        hwloc_topology_destroy(topo);
        return NULL;
    }
    return topo;
}

static int count_cores(hwloc_topology_t topo)
{
    int n = hwloc_get_nbobjs_by_type(topo, HWLOC_OBJ_CORE);
    if (n < 1) n = hwloc_get_nbobjs_by_type(topo, HWLOC_OBJ_PU);
    return n < 1 ? 1 : n;
}

int ra_node_cores(void)
{
    hwloc_topology_t topo = load_topology();
    if (!topo) return 1;
    int n = count_cores(topo);
    hwloc_topology_destroy(topo);
    return n;
}

static void node_rank(MPI_Comm comm, int *local_rank, int *local_size)
{
    MPI_Comm node;
    *local_rank = 0, *local_size = 1;
    if (MPI_Comm_split_type(comm, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &node) == MPI_SUCCESS) {
        MPI_Comm_rank(node, local_rank);
        MPI_Comm_size(node, local_size);
        MPI_Comm_free(&node);
    }
}

void ra_place(MPI_Comm comm, int bind, int threads, ra_placement *p)
{
    memset(p, 0, sizeof *p);
    if (gethostname(p->host, sizeof p->host) != 0) snprintf(p->host, sizeof p->host, "?");
    p->host[sizeof p->host - 1] = '\0';
    node_rank(comm, &p->local_rank, &p->local_ranks);
    hwloc_topology_t topo = load_topology();
    p->node_cores = topo ? count_cores(topo) : 1;
    p->oversubscribed = p->local_ranks > p->node_cores;
    snprintf(p->cpus, sizeof p->cpus, "any");
    if (!p->oversubscribed) {
        p->first_core = p->local_rank * p->node_cores / p->local_ranks;
        p->cores = (p->local_rank + 1) * p->node_cores / p->local_ranks - p->first_core;
    } else {
        p->first_core = -1, p->cores = 0;
    }
    if (topo && bind && !p->oversubscribed) {
        hwloc_bitmap_t set = hwloc_bitmap_alloc();
        const hwloc_obj_type_t type =
            hwloc_get_nbobjs_by_type(topo, HWLOC_OBJ_CORE) > 0 ? HWLOC_OBJ_CORE : HWLOC_OBJ_PU;
        for (int i = 0; i < p->cores; i++) {
            hwloc_obj_t core = hwloc_get_obj_by_type(topo, type, (unsigned)(p->first_core + i));
            if (core) hwloc_bitmap_or(set, set, core->cpuset);
        }
        /* the process: OpenBLAS's threads already exist and must follow */
        p->bound = hwloc_set_cpubind(topo, set, HWLOC_CPUBIND_PROCESS) == 0;
        if (p->bound) hwloc_bitmap_list_snprintf(p->cpus, sizeof p->cpus, set);
        hwloc_bitmap_free(set);
    }
    if (topo) hwloc_topology_destroy(topo);
    p->threads = threads > 0 ? threads : p->cores > 0 ? p->cores : 1;
}
