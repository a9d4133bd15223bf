/* stop_notice.c - one rank's "stop" reaching every rank while they work
 * apart (stop_notice.h). */
#include "ringattn/stop_notice.h"

#include <stdlib.h>

#include "ringattn/collective.h"

enum { TAG_STOP = 1 };

static void post_receive(ra_stop_notice *n)
{
    int rc = MPI_Irecv(&n->inbox, 1, MPI_INT, MPI_ANY_SOURCE, TAG_STOP, n->comm, &n->recv);
    if (rc != MPI_SUCCESS && n->err == RA_OK) n->err = ra_mpi_fail(rc, "MPI_Irecv (a stop notice)", __FILE__, __LINE__);
}

ra_status ra_stop_notice_open(ra_stop_notice *n, MPI_Comm comm)
{
    *n = (ra_stop_notice){ .comm = MPI_COMM_NULL, .recv = MPI_REQUEST_NULL, .message = 1 };
    MPI_Comm_size(comm, &n->P);
    if (n->P == 1) return RA_OK;
    RA_MPI_TRY(MPI_Comm_dup(comm, &n->comm), "MPI_Comm_dup (stop notices)");
    RA_MPI_TRY(MPI_Comm_set_errhandler(n->comm, MPI_ERRORS_RETURN), "MPI_Comm_set_errhandler (stop notices)");
    post_receive(n);
    return n->err;
}

void ra_stop_notice_send(ra_stop_notice *n)
{
    if (n->sent || n->P == 1) {
        n->sent = 1;
        return;
    }
    n->sent = 1;
    n->sends = malloc(sizeof(MPI_Request) * (size_t)(n->P - 1));
    if (!n->sends) {
        if (n->err == RA_OK) n->err = RA_FAIL(RA_ERR_NOMEM, "out of memory for the stop notices");
        n->sent = 0; /* nothing went out: close must not count it */
        return;
    }
    int me, k = 0;
    MPI_Comm_rank(n->comm, &me);
    for (int r = 0; r < n->P; r++) {
        if (r == me) continue;
        int rc = MPI_Isend(&n->message, 1, MPI_INT, r, TAG_STOP, n->comm, &n->sends[k]);
        if (rc != MPI_SUCCESS) { /* the transport failed: close reports it (ra_agree aborts the job) */
            if (n->err == RA_OK) n->err = ra_mpi_fail(rc, "MPI_Isend (a stop notice)", __FILE__, __LINE__);
            n->sends[k] = MPI_REQUEST_NULL;
        }
        k++;
    }
}

int ra_stop_notice_heard(ra_stop_notice *n)
{
    if (n->sent || n->got || n->err != RA_OK) return 1;
    if (n->P == 1) return 0;
    int flag = 0, rc = MPI_Test(&n->recv, &flag, MPI_STATUS_IGNORE);
    if (rc != MPI_SUCCESS) {
        n->err = ra_mpi_fail(rc, "MPI_Test (a stop notice)", __FILE__, __LINE__);
        return 1;
    }
    if (flag) n->got = 1; /* the request is MPI_REQUEST_NULL now; close receives the rest */
    return flag;
}

ra_status ra_stop_notice_close(ra_stop_notice *n, int *any)
{
    if (any) *any = n->sent;
    if (n->P == 1) return n->err;
    /* how many notices were sent to this rank: one from each rank that sent */
    int total = 0;
    ra_status st = ra_allreduce_named(&n->sent, &total, 1, MPI_INT, MPI_SUM, n->comm,
                                      "whether any rank sent a stop notice");
    if (any && st == RA_OK) *any = total > 0;
    const int expect = total - n->sent;
    if (st == RA_OK && n->got == 0 && n->recv != MPI_REQUEST_NULL) { /* a last test: it may have come */
        int flag = 0;
        if (MPI_Test(&n->recv, &flag, MPI_STATUS_IGNORE) == MPI_SUCCESS && flag) n->got = 1;
    }
    while (st == RA_OK && n->err == RA_OK && n->got < expect) {
        if (n->recv == MPI_REQUEST_NULL) post_receive(n);
        if (n->err == RA_OK) st = ra_wait(1, &n->recv, "a stop notice", -1);
        if (st == RA_OK) n->got++;
    }
    if (n->recv != MPI_REQUEST_NULL) { /* posted, and nothing more will come: take it back */
        MPI_Cancel(&n->recv);
        MPI_Wait(&n->recv, MPI_STATUS_IGNORE);
    }
    if (n->sends) {
        ra_status ss = ra_wait(n->P - 1, n->sends, "the stop notices sent", -1);
        if (st == RA_OK) st = ss;
    }
    free(n->sends);
    MPI_Comm_free(&n->comm);
    if (st == RA_OK) st = n->err;
    *n = (ra_stop_notice){ .comm = MPI_COMM_NULL, .recv = MPI_REQUEST_NULL };
    return st;
}
