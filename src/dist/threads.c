/* threads.c - how many OpenBLAS threads a rank should use (hwloc). */
#include <hwloc.h>

#include "ringattn/dist.h"

int ra_node_cores(void)
{
    hwloc_topology_t topo;
    if (hwloc_topology_init(&topo) != 0) return 1;
    int n = 1;
    if (hwloc_topology_load(topo) == 0) {
        n = hwloc_get_nbobjs_by_type(topo, HWLOC_OBJ_CORE);
        if (n < 1) n = hwloc_get_nbobjs_by_type(topo, HWLOC_OBJ_PU);
    }
    hwloc_topology_destroy(topo);
    return n < 1 ? 1 : n;
}

int ra_default_threads(MPI_Comm comm)
{
    MPI_Comm node;
    int local = 1;
    if (MPI_Comm_split_type(comm, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &node) == MPI_SUCCESS) {
        MPI_Comm_size(node, &local);
        MPI_Comm_free(&node);
    }
    int t = ra_node_cores() / local;
    return t < 1 ? 1 : t;
}
