/* dist.h - collective helpers: agreeing on failure, and reading/writing a
 * rank's slab of a sequence tensor in a .npy file.
 *
 * A sequence tensor is viewed as [outer][L][inner] (for q: outer = B*H,
 * inner = D; for segment ids: outer = B, inner = 1). Rank r moves only the
 * rows of its own tokens (layout.h), in runs of consecutive global rows. */
#ifndef RINGATTN_DIST_H
#define RINGATTN_DIST_H

#include <mpi.h>
#include <stdint.h>

#include "ringattn/collective.h"
#include "ringattn/layout.h"
#include "ringattn/npy.h"
#include "ringattn/status.h"

/* Collective: returns RA_OK when every rank passed RA_OK. Otherwise the
 * lowest failing rank gets its own status back (its message intact, to be
 * printed) and every other rank gets RA_ERR_PEER. Never hangs on a failure
 * that a rank returned from; all ranks must call it. An RA_ERR_MPI (the
 * transport failed) is printed and ends the job with MPI_Abort instead, since
 * a collective could wait forever on the peer that broke. */
ra_status ra_agree(MPI_Comm comm, ra_status local);

/* Peer timeout (seconds; 0: wait forever): how long a rank waits for
 * another before it declares it lost. train, eval and generate set it from
 * run.timeout. */
#define RA_DEFAULT_PEER_TIMEOUT 120.0
void ra_set_peer_timeout(double seconds);
double ra_peer_timeout(void);
/* MPI_Waitall that gives up after the peer timeout: it prints what it
 * waited for and the peer (a rank of MPI_COMM_WORLD, ra_world_rank;
 * peer < 0: a collective of all ranks) and ends
 * the job with MPI_Abort, since a dead or hung peer would otherwise hang
 * every rank; with ra_watchdog_init it names the ranks that do not answer,
 * and when all answer and one of them says it is working
 * (ra_watchdog_working), it waits another peer timeout instead.
 * Returns MPI_Waitall's code otherwise. */
int ra_waitall(int n, MPI_Request *req, const char *what, int peer);
/* Ranks that share cores (ra_place found more ranks than cores on the
 * node, or RINGATTN_WAIT=rest): a wait that has gone on for 100 us sleeps
 * between its polls instead of yielding, so the rank it waits for gets the
 * core (on: 1). */
void ra_set_wait_rest(int on);
/* RINGATTN_WAIT's value when it is not auto, rest, poll or empty: a message
 * naming it, else NULL (ra_place reads such a value as auto). */
const char *ra_wait_mode_problem(void);
/* Collective, once after MPI_Init: the channel on which a timed-out rank
 * asks the others whether they are alive (without it, the timeout message
 * names only the awaited peer). */
void ra_watchdog_init(MPI_Comm world);
/* From long work outside ra_waitall, every second or so: answers the
 * timed-out ranks' questions with "working", so their waits go on for
 * another run.timeout instead of ending the job. Does nothing before
 * ra_watchdog_init, which makes it the file progress hook (fileio.h) that
 * the checkpoint writer calls after each MiB. */
void ra_watchdog_working(void);
/* The collectives under this watchdog, with byte counts: collective.h. */

typedef struct {
    int64_t outer, L, inner; /* the [outer][L][inner] view */
    ra_layout layout;
    int P, rank;
} ra_slab;

/* dst/src [outer][Lr][inner], Lr = ra_layout_count(layout, L, P, rank). */
ra_status ra_slab_read_f32(const ra_npy *f, const ra_slab *s, float *dst);
ra_status ra_slab_read_i32(const ra_npy *f, const ra_slab *s, int32_t *dst);

/* Collective write of a float32 array of the given shape, each rank giving
 * its slab: rank 0 creates path.tmp, all ranks write their rows and
 * fsync, rank 0 renames it to path. On any failure the .tmp file is
 * removed and path is left as it was. */
ra_status ra_slab_save_f32(MPI_Comm comm, const char *path, int ndim, const int64_t *shape,
                           const ra_slab *s, const float *src);

/* The two halves of ra_slab_save_f32, for a set of outputs that must appear
 * together: write each to path.tmp, then ra_outputs_finish renames all
 * of them (rank 0) when st is RA_OK on every rank, or removes every .tmp
 * otherwise. Both collective. */
ra_status ra_slab_write_partial(MPI_Comm comm, const char *path, int ndim, const int64_t *shape,
                                const ra_slab *s, const float *src);
ra_status ra_outputs_finish(MPI_Comm comm, const char *const *paths, int n, ra_status st);

/* MPI_Allreduce of online-softmax records {m, l, acc[D]} (D + 2 floats
 * each): the record of the union of the ranks' key sets (softmax_op.c). */
ra_status ra_softmax_op_create(int D, MPI_Datatype *rec, MPI_Op *op);
void ra_softmax_op_free(MPI_Datatype *rec, MPI_Op *op);

/* hwloc: physical cores on this node. */
int ra_node_cores(void);

/* Where a rank runs (threads.c). */
typedef struct {
    char host[64];
    int local_rank, local_ranks; /* among the ranks of this node */
    int node_cores;              /* cores the launcher gave the node's ranks (hwloc; all after Open MPI's default binding) */
    int hw_cores;                /* every core hwloc shows on the node (a cgroup's under Slurm) */
    int first_core, last_core;   /* this rank's share: hwloc core indexes (-1: oversubscribed) */
    int cores;                   /* how many (0: oversubscribed; fewer than last - first + 1 when
                                  * the launcher's cores have gaps) */
    int oversubscribed;          /* local_ranks > node_cores: nothing is bound */
    int bound;                   /* the process is bound to its cores' PUs */
    char cpus[128];              /* the PUs (OS indexes) bound to, or "any" */
    int threads;                 /* OpenBLAS threads: the given count, else cores (>= 1) */
    int wait_rest;               /* waits sleep between polls (ra_set_wait_rest): oversubscribed, or
                                  * as RINGATTN_WAIT says */
} ra_placement;
/* Split this node's cores among its ranks and, when bind and not
 * oversubscribed, bind this process to its share. threads > 0 overrides
 * the thread count. Sets how waits pass the time (ra_set_wait_rest).
 * Collective. */
void ra_place(MPI_Comm comm, int bind, int threads, ra_placement *p);

#endif
