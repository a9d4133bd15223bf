/* stop_notice.h - one rank's "stop" reaching every rank while they work apart.
 *
 * Ranks that work a long time without any collective (the warm start's
 * counting, warm.c) cannot learn from a reduction that one of them was asked
 * to stop or failed: they would finish their whole share first, while the
 * rank that stopped waits for them, past run.timeout. A notice is a
 * point-to-point message on a private communicator: the rank that stops
 * sends it to every other rank, and the others test for it between pieces
 * of their work.
 *
 *     ra_stop_notice n;
 *     RA_TRY(ra_stop_notice_open(&n, comm));            // collective
 *     ra_status st = RA_OK;
 *     for (piece = 0; st == RA_OK && piece < pieces; piece++) {
 *         if (ra_stop_notice_heard(&n)) break;          // another rank stopped
 *         st = work(piece);
 *         if (st != RA_OK) ra_stop_notice_send(&n);     // tell the others
 *     }
 *     ra_status cs = ra_stop_notice_close(&n);          // collective: nothing left in flight
 *
 * Every notice sent is received before close returns (close counts them over
 * all ranks), so no message is left pending on any communicator. The
 * private communicator costs one MPI_Comm_dup per open: meant for phases of
 * seconds, not for every step. */
#ifndef RINGATTN_STOP_NOTICE_H
#define RINGATTN_STOP_NOTICE_H

#include <mpi.h>

#include "ringattn/status.h"

typedef struct {
    MPI_Comm comm;      /* a duplicate of the work's communicator; NULL at P = 1 */
    MPI_Request recv;   /* the receive posted for a notice from any rank */
    MPI_Request *sends; /* [P-1], once this rank sent */
    int P, sent, got; /* sent: 0/1; got: notices received */
    int inbox, message;
    ra_status err; /* an MPI failure while sending or testing: close returns it */
} ra_stop_notice;

/* Collective over comm. */
ra_status ra_stop_notice_open(ra_stop_notice *n, MPI_Comm comm);
/* Tell every other rank to stop (once; later calls do nothing). */
void ra_stop_notice_send(ra_stop_notice *n);
/* 1 when this rank sent a notice or another rank's notice has arrived
 * (also after an MPI failure here, which close reports). Never blocks. */
int ra_stop_notice_heard(ra_stop_notice *n);
/* Collective: receives every notice still on its way, frees everything.
 * *any (may be NULL): 1 when any rank sent a notice. */
ra_status ra_stop_notice_close(ra_stop_notice *n, int *any);

#endif
