/* agree.c - every rank learns whether any rank failed, and who reports it. */
#include <limits.h>
#include <stdio.h>

#include "ringattn/dist.h"

ra_status ra_agree(MPI_Comm comm, ra_status local)
{
    int rank, size, first;
    MPI_Comm_rank(comm, &rank);
    MPI_Comm_size(comm, &size);
    if (local == RA_ERR_MPI) {
        /* The transport itself failed: a collective could hang on a dead or
         * stuck peer, so report and take the whole job down now. */
        fprintf(stderr, "[rank %d/%d] ringattn: error: %s\n", rank, size, ra_last_error());
        fflush(stderr);
        MPI_Abort(comm, 1);
    }
    int mine = local == RA_OK ? INT_MAX : rank;
    if (local == RA_ERR_PEER) mine = INT_MAX - 1; /* a peer already reported */
    RA_TRY(ra_allreduce_named(&mine, &first, 1, MPI_INT, MPI_MIN, comm, "agreeing on errors"));
    if (first == INT_MAX) return RA_OK;
    if (first == rank) return local;
    return RA_ERR_PEER;
}
