/* head_move.c - a Combiner head's moves between layouts (head_move.h). */
#include "head_move.h"

#include <mpi.h>
#include <string.h>

#include "ringattn/collective.h"
#include "ringattn/threads.h"

/* A copy or zeroing below this many floats is not worth waking the threads
 * for. The parts are handed out dynamically: a thread that another process
 * holds up does not keep the others waiting. */
#define PAR_FLOATS 32768

ra_status ra_head_move_init(ra_head_move *M)
{
    const ra_relayout *R = &M->R;
    int same = R->Lr_src == R->Lr_dst;
    for (int64_t k = 0; same && k < R->Lr_dst; k++) same = R->src_rank[k] == R->rank && R->src_of[k] == k;
    M->same = same;
    if (R->P == 1) return RA_OK;
    return ra_allreduce_named(MPI_IN_PLACE, &M->same, 1, MPI_INT, MPI_MIN, R->comm,
                              "whether a Combiner head's relayout moves any token");
}

void ra_head_move_free(ra_head_move *M) { ra_relayout_free(&M->R); }

size_t ra_head_move_floats(const ra_head_move *M, int t, size_t nq, size_t nk, size_t nr)
{
    if (M->same) return 0;
    return t == HM_LSE ? nr : t == HM_K || t == HM_V || t == HM_DK || t == HM_DV ? nk : nq;
}

/* One rank: token k of the head's layout is token src_of[k] of the
 * caller's. Every (row, token) is one memcpy with one writer, so the
 * threads split them freely. */
static void local_move(const ra_relayout *R, const float *src, float *dst, int nbh, int w, int forward)
{
    const int64_t n = R->Lr_dst, items = (int64_t)nbh * n;
    const size_t bytes = sizeof(float) * (size_t)w;
#pragma omp parallel for num_threads(ra_threads()) schedule(dynamic, 2048) if (items * w >= PAR_FLOATS)
    for (int64_t it = 0; it < items; it++) {
        const int64_t row = it / n * n, k = it % n, j = R->src_of[k];
        if (forward) memcpy(dst + (size_t)(row + k) * w, src + (size_t)(row + j) * w, bytes);
        else memcpy(dst + (size_t)(row + j) * w, src + (size_t)(row + k) * w, bytes);
    }
}

ra_status ra_head_move_run(ra_head_move *M, const float *src, float *dst, int nbh, int w, int forward)
{
    if (M->R.P > 1 && !M->same) return ra_relayout_move(&M->R, src, dst, nbh, w, forward);
    local_move(&M->R, src, dst, nbh, w, forward); /* same: src_of[k] == k, a plain copy */
    return RA_OK;
}

ra_status ra_head_move_in(ra_head_move *M, const float *src, float *buf, int nbh, int w, const float **out)
{
    *out = M->same ? src : buf;
    return M->same ? RA_OK : ra_head_move_run(M, src, buf, nbh, w, 1);
}

ra_status ra_head_move_out(ra_head_move *M, const float *src, float *dst, int nbh, int w)
{
    return src == dst ? RA_OK : ra_head_move_run(M, src, dst, nbh, w, 0);
}

void ra_head_zero(float *x, size_t n)
{
    const size_t chunk = PAR_FLOATS, chunks = (n + chunk - 1) / chunk;
#pragma omp parallel for num_threads(ra_threads()) schedule(dynamic, 1) if (chunks > 1)
    for (size_t c = 0; c < chunks; c++)
        memset(x + c * chunk, 0, sizeof(float) * (c + 1 < chunks ? chunk : n - c * chunk));
}
