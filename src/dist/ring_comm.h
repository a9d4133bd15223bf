/* ring_comm.h - the transport under the ring: non-blocking sends to the
 * right neighbour and receives from the left, progressed between tiles and
 * completed once per ring step, with the time spent blocked recorded. */
#ifndef RINGATTN_RING_COMM_H
#define RINGATTN_RING_COMM_H

#include <mpi.h>
#include <stddef.h>
#include <stdint.h>

#include "ringattn/collective.h" /* RA_MPI_TRY */
#include "ringattn/status.h"

enum { RA_RING_MAX_REQ = 16 };

/* What the ring keeps of a posted request beside its MPI_Request. */
typedef struct {
    int64_t t0, bytes;   /* for the trace (trace.h): when it was posted, its size */
    int tag;
    unsigned char send;  /* 1: a send to the right, 0: a receive from the left */
    unsigned char keep;  /* posted ahead: 1 until the next wait, then 2 */
    unsigned char track; /* posted ahead: its trace track */
} ra_ring_req;

typedef struct {
    MPI_Comm comm;      /* private duplicate, errors returned, not fatal */
    int rank, size, left, right; /* in comm */
    int left_world, right_world;  /* the neighbours in MPI_COMM_WORLD, for messages and the trace */
    MPI_Request req[RA_RING_MAX_REQ]; /* apart: MPI waits on the array */
    int nreq;
    ra_ring_req info[RA_RING_MAX_REQ]; /* beside req[i] */
    double wait_seconds; /* accumulated time blocked in ra_ring_comm_wait */
    double bytes_sent;
    /* loopback (ra_ring_set_loopback): the last posted send and receive */
    const void *lb_send;
    void *lb_recv;
    size_t lb_send_bytes, lb_recv_bytes;
} ra_ring_comm;

ra_status ra_ring_comm_init(ra_ring_comm *c, MPI_Comm parent);
void ra_ring_comm_free(ra_ring_comm *c);
/* Post a send of bytes to the right neighbour / a receive from the left. */
ra_status ra_ring_comm_send(ra_ring_comm *c, const void *buf, size_t bytes, int tag);
ra_status ra_ring_comm_recv(ra_ring_comm *c, void *buf, size_t bytes, int tag);
/* The same, posted ahead: the next ra_ring_comm_wait leaves it in flight
 * (it keeps moving behind the next step's compute) and the one after that
 * completes it. track: its trace track (trace.h's *_AHEAD ones), one per
 * kind of transfer so that their spans nest. */
ra_status ra_ring_comm_send_ahead(ra_ring_comm *c, const void *buf, size_t bytes, int tag, int track);
ra_status ra_ring_comm_recv_ahead(ra_ring_comm *c, void *buf, size_t bytes, int tag, int track);
/* Let pending transfers progress (MPI_Testall); for ra_poll. */
void ra_ring_comm_poll(void *c);
/* Complete every posted request but those posted ahead since the last
 * wait. Traced: the time blocked ("ring wait" on
 * the main track) and each transfer from post to completion ("ring send" /
 * "ring recv" on tracks of their own: they overlap the compute). */
ra_status ra_ring_comm_wait(ra_ring_comm *c);

#endif
