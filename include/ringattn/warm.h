/* warm.h - warm starts (the Bit Cipher line of work, J. R. Williams et al.,
 * 2023-2024): an embedding and an LM head computed from corpus statistics,
 * set before training in place of random weights.
 *
 *     ra_model_init(m, cfg.seed);                       // random weights first
 *     ra_warm_info info;
 *     RA_TRY(ra_warm_start(m, data, &cfg, MPI_COMM_WORLD, &info));
 *
 * Statistics: every training token (data.h, ra_data_scan: the file's
 * training part, or the first model.warm_seqs recall sequences) is counted
 * once over all ranks - how often each token occurs, which token follows it,
 * and which tokens lie within model.warm_radius of it. The counts are
 * integers summed with MPI_Allreduce, and everything after is computed the
 * same way on every rank, so the weights do not depend on the number of ranks.
 *
 * Embedding (model.embed_init), b Bit Cipher bits (cipher.h):
 *   bitcipher  row t = the cipher vector of t (its code's bits / popcount,
 *              codes by frequency rank) in dimensions 0 .. b-1, and 0 in
 *              dimensions b .. C-1.
 *   cooc       row t = the sum of the cipher vectors of the tokens within
 *              warm_radius on either side of t (t's own position excluded),
 *              over all occurrences of t, divided by its L1 norm (so its
 *              entries sum to 1, like a cipher vector's); same placement. A
 *              token never seen keeps its cipher vector.
 *
 * Head (model.head_init = explicit): the features are what the head sees at
 * step 0 when the layers add nothing, phi(t) = rmsnorm(E[t]) * the final
 * norm's gain. With F[j][v] = warm_smooth + sum over training positions i
 * followed by token v of phi(x_i)[j], and f[j] = sum_v F[j][v]:
 *     W[j][v] = log(F[j][v] / f[j]) / K,
 * K = model.warm_k, or by default the mean L1 norm of phi over those
 * positions. With one-hot features phi(t) = s e_t (K = s), softmax(phi(t) W)
 * is exactly t's smoothed next-token distribution. */
#ifndef RINGATTN_WARM_H
#define RINGATTN_WARM_H

#include <mpi.h>
#include <signal.h>
#include <stdint.h>

#include "ringattn/config.h"
#include "ringattn/data.h"
#include "ringattn/model.h"
#include "ringattn/status.h"

typedef struct {
    int V, radius;
    int64_t *uni;  /* [V] occurrences */
    int64_t *next; /* [V][V] next[a][b]: b follows a */
    int64_t *win;  /* [V][V] win[t][u]: u within radius of t */
} ra_warm_counts;

typedef struct {
    int bits;       /* b */
    int64_t tokens; /* training tokens counted, all ranks */
    int distinct;   /* token values seen */
    double K;       /* the explicit head's scale (0: no explicit head) */
    int stopped;    /* > 0: ra_warm_stop_request ended it early (its highest value over the ranks);
                     * the model is untouched */
} ra_warm_info;

/* Set > 0 (by a signal handler, on any rank) to stop a warm start. Each rank
 * looks at it every 65536 counted positions; the rank that sees it tells the
 * others at once (stop_notice.h), so every rank stops within about a second
 * even when only one was signalled, and none waits for another past
 * run.timeout. ra_warm_count then returns RA_OK with c->uni == NULL and
 * *stopped = the highest value set on any rank; ra_warm_start RA_OK with
 * info->stopped = that value. A rank that fails (a token outside the
 * vocabulary) stops the others the same way; they return RA_ERR_PEER. */
extern volatile sig_atomic_t ra_warm_stop_request;

/* Count over this rank's share of the training data and sum over comm.
 * Collective. Free with ra_warm_counts_free. Stopped: *stopped > 0 and
 * c->uni == NULL. */
ra_status ra_warm_count(ra_data *d, int V, int radius, uint64_t nseq, MPI_Comm comm, ra_warm_counts *c,
                        int *stopped);
void ra_warm_counts_free(ra_warm_counts *c);

/* vec [V][b]: code bits / popcount. */
void ra_warm_cipher_vectors(const uint32_t *code, int V, int b, double *vec);
/* vec [V][b]: window sums of the cipher vectors cv [V][b], L1-normalised
 * (cv itself for tokens never seen). */
void ra_warm_cooc_vectors(const int64_t *win, const double *cv, int V, int b, double *vec);
/* W [C][V] from features phi [V][C] (non-negative) and next [V][V];
 * K <= 0: the mean L1 norm of phi over the counted positions. Returns K. */
double ra_warm_head(const double *phi, const int64_t *next, int V, int C, double K, double smooth, float *W);

/* Set the embedding and/or the LM head of m as cfg asks (after
 * ra_model_init; a no-op for embed_init = head_init = random). Collective. */
ra_status ra_warm_start(ra_model *m, ra_data *d, const ra_config *cfg, MPI_Comm comm, ra_warm_info *info);

#endif
