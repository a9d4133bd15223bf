/* softmax_op.c - an MPI reduction that merges online-softmax records.
 *
 * A record {m, l, acc[D]} describes attention of one query over some set of
 * keys: m the largest logit, l = sum exp(logit - m), acc = sum exp(logit - m)
 * v. Two records of disjoint key sets merge into the record of their union,
 * exactly as the ring merges blocks; the operation is associative and
 * commutative, so MPI_Allreduce may combine ranks in any order. */
#include <math.h>

#include "ringattn/dist.h"

static void merge(void *in, void *inout, int *len, MPI_Datatype *dt)
{
    int bytes;
    MPI_Type_size(*dt, &bytes);
    const int D = bytes / (int)sizeof(float) - 2;
    float *x = in, *y = inout; /* y = merge(x, y) */
    for (int r = 0; r < *len; r++, x += D + 2, y += D + 2) {
        float m = x[0] > y[0] ? x[0] : y[0];
        if (m == -INFINITY) continue; /* neither side saw a key */
        float sx = expf(x[0] - m), sy = expf(y[0] - m);
        y[1] = x[1] * sx + y[1] * sy;
        for (int d = 0; d < D; d++) y[2 + d] = x[2 + d] * sx + y[2 + d] * sy;
        y[0] = m;
    }
}

ra_status ra_softmax_op_create(int D, MPI_Datatype *rec, MPI_Op *op)
{
    *rec = MPI_DATATYPE_NULL;
    *op = MPI_OP_NULL;
    if (MPI_Type_contiguous(D + 2, MPI_FLOAT, rec) != MPI_SUCCESS || MPI_Type_commit(rec) != MPI_SUCCESS ||
        MPI_Op_create(merge, 1, op) != MPI_SUCCESS)
        return RA_FAIL(RA_ERR_MPI, "cannot create the online-softmax reduction (D = %d)", D);
    return RA_OK;
}

void ra_softmax_op_free(MPI_Datatype *rec, MPI_Op *op)
{
    if (*op != MPI_OP_NULL) MPI_Op_free(op);
    if (*rec != MPI_DATATYPE_NULL) MPI_Type_free(rec);
}
