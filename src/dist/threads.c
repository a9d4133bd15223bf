/* threads.c - where a rank runs (hwloc): its share of the node's cores, the
 * binding to them, and the OpenBLAS threads that fill them.
 *
 * The node's cores are the ones the launcher gave its ranks: the union of
 * the ranks' CPU bindings at start (mpirun --cpu-set, --bind-to, taskset or
 * numactl around mpirun --bind-to none, a singleton under taskset, Slurm's
 * task binding), except after Open MPI's default binding (no --bind-to or
 * --cpu-set: one core a rank for np <= 2), which says nothing about what
 * the job may use: then every core hwloc shows (a cgroup's, under Slurm).
 * The R ranks of a node split those C cores in contiguous blocks (local
 * rank i gets cores i*C/R .. (i+1)*C/R - 1) and bind the whole process -
 * OpenBLAS's threads included - to those cores' hardware threads, so that
 * ranks never compete for a core and threads stay near their memory. With
 * more ranks than cores nothing is bound (the scheduler shares the cores
 * better than a fixed placement) and each rank runs one thread. */
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

static hwloc_obj_type_t core_type(hwloc_topology_t topo)
{
    return hwloc_get_nbobjs_by_type(topo, HWLOC_OBJ_CORE) > 0 ? HWLOC_OBJ_CORE : HWLOC_OBJ_PU;
}

static int count_cores(hwloc_topology_t topo)
{
    int n = hwloc_get_nbobjs_by_type(topo, core_type(topo));
    return n < 1 ? 1 : n;
}

static int g_placed_cores; /* the last ra_place's node_cores (0: none yet) */

/* RINGATTN_WAIT, how waiting ranks pass the time: "rest" where the cores
 * are shared in a way ringattn cannot see (other jobs on the node, or
 * several jobs at once), "poll" to keep polling even on shared cores,
 * "auto" or unset: rest when the node has more ranks than cores.
 * 1 rest, 0 poll, -1 auto, -2 none of these. */
static int wait_mode(void)
{
    const char *v = getenv("RINGATTN_WAIT");
    if (!v || !*v || !strcmp(v, "auto")) return -1;
    if (!strcmp(v, "rest")) return 1;
    if (!strcmp(v, "poll")) return 0;
    return -2;
}

const char *ra_wait_mode_problem(void)
{
    static char msg[200];
    if (wait_mode() != -2) return NULL;
    char shown[40 + 4];
    snprintf(msg, sizeof msg, "RINGATTN_WAIT='%s' is not auto, rest or poll (how a waiting rank passes the time)",
             ra_shown(shown, getenv("RINGATTN_WAIT"), 40));
    return msg;
}

int ra_node_cores(void)
{
    if (g_placed_cores > 0) return g_placed_cores; /* the launcher's cores, as placed */
    hwloc_topology_t topo = load_topology();
    if (!topo) return 1;
    int n = count_cores(topo);
    hwloc_topology_destroy(topo);
    return n;
}

/* Open MPI bound the ranks by its own default policy: no --bind-to (the
 * policy variable) and no --cpu-set, yet bound at launch. */
static int default_binding(void)
{
    const char *bound = getenv("OMPI_MCA_orte_bound_at_launch");
    return bound && !strcmp(bound, "1") && !getenv("OMPI_MCA_hwloc_base_binding_policy") &&
           !getenv("OMPI_MCA_hwloc_base_cpu_set");
}

/* The PUs the launcher gave this node's ranks: the union of their bindings
 * at start (collective over node), or NULL for every core hwloc shows. */
static hwloc_bitmap_t launcher_pus(hwloc_topology_t topo, MPI_Comm node)
{
    const int use = !default_binding();
    hwloc_bitmap_t set = hwloc_bitmap_alloc();
    const int last = hwloc_bitmap_last(hwloc_topology_get_complete_cpuset(topo));
    const unsigned nr = last < 0 ? 1 : (unsigned)last / (8 * sizeof(unsigned long)) + 1;
    unsigned long *words = calloc(nr, sizeof *words);
    int ok = set && words && hwloc_get_cpubind(topo, set, HWLOC_CPUBIND_PROCESS) == 0 &&
             hwloc_bitmap_to_ulongs(set, nr, words) == 0;
    int all_ok = 0; /* every rank of the node, or none, uses the union */
    if (MPI_Allreduce(&ok, &all_ok, 1, MPI_INT, MPI_LAND, node) != MPI_SUCCESS) all_ok = 0;
    if (all_ok && MPI_Allreduce(MPI_IN_PLACE, words, (int)nr, MPI_UNSIGNED_LONG, MPI_BOR, node) != MPI_SUCCESS)
        all_ok = 0;
    if (all_ok) hwloc_bitmap_from_ulongs(set, nr, words);
    free(words);
    if (!use || !all_ok || !set || !hwloc_bitmap_intersects(set, hwloc_topology_get_allowed_cpuset(topo))) {
        if (set) hwloc_bitmap_free(set);
        return NULL;
    }
    return set;
}

void ra_place(MPI_Comm comm, int bind, int threads, ra_placement *p)
{
    memset(p, 0, sizeof *p);
    if (gethostname(p->host, sizeof p->host) != 0) snprintf(p->host, sizeof p->host, "?");
    p->host[sizeof p->host - 1] = '\0';
    MPI_Comm node = MPI_COMM_NULL;
    p->local_rank = 0, p->local_ranks = 1;
    if (MPI_Comm_split_type(comm, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &node) == MPI_SUCCESS) {
        MPI_Comm_rank(node, &p->local_rank);
        MPI_Comm_size(node, &p->local_ranks);
    }
    hwloc_topology_t topo = load_topology();
    hwloc_bitmap_t given = topo && node != MPI_COMM_NULL ? launcher_pus(topo, node) : NULL;
    if (node != MPI_COMM_NULL) MPI_Comm_free(&node);
    /* the cores to split: those holding a PU the launcher gave (all without one) */
    const hwloc_obj_type_t type = topo ? core_type(topo) : HWLOC_OBJ_CORE;
    const int all = topo ? count_cores(topo) : 1;
    int *usable = malloc(sizeof(int) * (size_t)all), n = 0;
    for (int i = 0; topo && usable && i < all; i++) {
        hwloc_obj_t core = hwloc_get_obj_by_type(topo, type, (unsigned)i);
        if (core && (!given || hwloc_bitmap_intersects(core->cpuset, given))) usable[n++] = i;
    }
    p->node_cores = n > 0 ? n : 1;
    p->hw_cores = all;
    g_placed_cores = p->node_cores;
    p->oversubscribed = p->local_ranks > p->node_cores;
    const int mode = wait_mode();
    p->wait_rest = mode >= 0 ? mode : p->oversubscribed;
    ra_set_wait_rest(p->wait_rest);
    snprintf(p->cpus, sizeof p->cpus, "any");
    int first = 0; /* this rank's first core among the usable ones */
    if (!p->oversubscribed) {
        first = p->local_rank * p->node_cores / p->local_ranks;
        p->cores = (p->local_rank + 1) * p->node_cores / p->local_ranks - first;
        p->first_core = usable && n > 0 ? usable[first] : first;
        p->last_core = usable && n > 0 ? usable[first + p->cores - 1] : first + p->cores - 1;
    } else {
        p->first_core = p->last_core = -1, p->cores = 0;
    }
    if (topo && usable && n > 0 && bind && !p->oversubscribed) {
        hwloc_bitmap_t set = hwloc_bitmap_alloc(), pus = hwloc_bitmap_alloc();
        for (int i = 0; i < p->cores; i++) {
            hwloc_obj_t core = hwloc_get_obj_by_type(topo, type, (unsigned)usable[first + i]);
            if (!core) continue;
            hwloc_bitmap_copy(pus, core->cpuset);
            if (given) hwloc_bitmap_and(pus, pus, given); /* a core's PUs the launcher gave */
            hwloc_bitmap_or(set, set, pus);
        }
        /* the process: OpenBLAS's threads already exist and must follow */
        p->bound = hwloc_set_cpubind(topo, set, HWLOC_CPUBIND_PROCESS) == 0;
        if (p->bound) hwloc_bitmap_list_snprintf(p->cpus, sizeof p->cpus, set);
        hwloc_bitmap_free(set);
        hwloc_bitmap_free(pus);
    }
    free(usable);
    if (given) hwloc_bitmap_free(given);
    if (topo) hwloc_topology_destroy(topo);
    p->threads = threads > 0 ? threads : p->cores > 0 ? p->cores : 1;
}
