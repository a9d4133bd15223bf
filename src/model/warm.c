/* warm.c - Bit Cipher embeddings and the closed-form LM head (warm.h). */
#include "ringattn/warm.h"

#include "ringattn/collective.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ringattn/stop_notice.h"
#include "ringattn/cipher.h"
#include "ringattn/dist.h"

/* ---- counting --------------------------------------------------------------- */

volatile sig_atomic_t ra_warm_stop_request;

/* Centres counted between two looks at the stop request, the other ranks'
 * notices and the watchdog: at radius 256, ~33M window counts, well under a
 * second, so a stop is quick and a waiting rank hears "working". */
#define CHECK_EVERY ((int64_t)1 << 16)

typedef struct {
    ra_warm_counts *c;
    ra_stop_notice notice; /* a rank that stops (signal or failure) tells the others */
    int stopped;           /* this rank stopped: a signal here, or another rank's notice */
} count_ctx;

static int should_stop(count_ctx *x)
{
    ra_watchdog_working(); /* ranks that finished their share wait for this one */
    if (ra_warm_stop_request) ra_stop_notice_send(&x->notice);
    x->stopped = ra_stop_notice_heard(&x->notice);
    return x->stopped;
}

static ra_status count_run(void *ctx, const int32_t *tok, int64_t n, int64_t lo, int64_t hi)
{
    count_ctx *x = ctx;
    ra_warm_counts *c = x->c;
    const int V = c->V, r = c->radius;
    if (should_stop(x)) return RA_ERR_PEER; /* stopped: no message, see ra_warm_count */
    for (int64_t i = 0; i < n; i++)
        if (tok[i] < 0 || tok[i] >= V)
            return RA_FAIL(RA_ERR_ARG, "warm start: token %d in the training data is outside model.vocab = %d",
                           (int)tok[i], V);
    for (int64_t i0 = lo; i0 < hi; i0 += CHECK_EVERY) {
        if (i0 > lo && should_stop(x)) return RA_ERR_PEER;
        const int64_t i1 = hi - i0 > CHECK_EVERY ? i0 + CHECK_EVERY : hi;
        for (int64_t i = i0; i < i1; i++) {
            const int t = tok[i];
            c->uni[t]++;
            if (i + 1 < n) c->next[(size_t)t * V + tok[i + 1]]++;
            int64_t *w = c->win + (size_t)t * V;
            for (int64_t j = i - r > 0 ? i - r : 0; j <= i + r && j < n; j++)
                if (j != i) w[tok[j]]++;
        }
    }
    return RA_OK;
}

void ra_warm_counts_free(ra_warm_counts *c)
{
    free(c->uni);
    *c = (ra_warm_counts){ .uni = NULL };
}

ra_status ra_warm_count(ra_data *d, int V, int radius, uint64_t nseq, MPI_Comm comm, ra_warm_counts *c,
                        int *stopped)
{
    int rank, size;
    MPI_Comm_rank(comm, &rank);
    MPI_Comm_size(comm, &size);
    *stopped = 0;
    const size_t n = (size_t)V * (1 + 2 * (size_t)V);
    *c = (ra_warm_counts){ .V = V, .radius = radius, .uni = calloc(n, sizeof(int64_t)) };
    count_ctx x = { .c = c };
    ra_status st = ra_stop_notice_open(&x.notice, comm); /* an MPI failure: ra_agree ends the job */
    if (st != RA_OK) {
        ra_warm_counts_free(c);
        return st;
    }
    if (!c->uni) st = RA_FAIL(RA_ERR_NOMEM, "out of memory for the warm-start counts");
    if (st == RA_OK) {
        c->next = c->uni + V;
        c->win = c->next + (size_t)V * V;
        st = ra_data_scan(d, rank, size, radius > 1 ? radius : 1, nseq, count_run, &x);
    }
    if (st != RA_OK && !x.stopped) ra_stop_notice_send(&x.notice); /* a failure: the others need not finish */
    ra_status cs = ra_stop_notice_close(&x.notice, NULL);
    /* every rank reaches the reductions, so a rank's error cannot leave the others waiting.
     * state: 0 ok, 1 stopped, 2 failed: the worst wins; request: the highest stop request */
    int mine[2] = { st == RA_OK ? 0 : st == RA_ERR_PEER && x.stopped ? 1 : 2, ra_warm_stop_request };
    int worst[2] = { 2, 0 };
    if (cs == RA_OK)
        cs = ra_allreduce_named(mine, worst, 2, MPI_INT, MPI_MAX, comm,
                                "warm start: whether every rank counted its data");
    if (cs == RA_OK && worst[0] == 0)
        cs = ra_allreduce_named(MPI_IN_PLACE, c->uni, (int)n, MPI_INT64_T, MPI_SUM, comm,
                                "warm start: the sum of the token counts");
    if (cs != RA_OK) {
        st = cs; /* the message names the reduction and the rank */
    } else if (worst[0] == 1) {
        ra_warm_counts_free(c); /* stopped: uni == NULL */
        *stopped = worst[1] > 0 ? worst[1] : 1;
        return RA_OK;
    } else if (st == RA_OK && worst[0]) {
        st = RA_FAIL(RA_ERR_PEER, "warm start: another rank failed to count its data");
    } else if (st == RA_ERR_PEER && x.stopped) { /* stopped by a failing rank's notice */
        st = RA_FAIL(RA_ERR_PEER, "warm start: another rank failed to count its data");
    }
    if (st != RA_OK) ra_warm_counts_free(c);
    return st;
}

/* ---- embeddings ------------------------------------------------------------- */

void ra_warm_cipher_vectors(const uint32_t *code, int V, int b, double *vec)
{
    for (int t = 0; t < V; t++) {
        const int k = __builtin_popcount(code[t]);
        for (int j = 0; j < b; j++) /* position j is bit b-1-j (cipher.h) */
            vec[(size_t)t * b + j] = (code[t] >> (b - 1 - j) & 1) ? 1.0 / k : 0.0;
    }
}

void ra_warm_cooc_vectors(const int64_t *win, const double *cv, int V, int b, double *vec)
{
    for (int t = 0; t < V; t++) {
        double *out = vec + (size_t)t * b, l1 = 0;
        memset(out, 0, sizeof(double) * (size_t)b);
        for (int u = 0; u < V; u++) {
            const int64_t n = win[(size_t)t * V + u];
            if (n)
                for (int j = 0; j < b; j++) out[j] += (double)n * cv[(size_t)u * b + j];
        }
        for (int j = 0; j < b; j++) l1 += out[j];
        for (int j = 0; j < b; j++) out[j] = l1 > 0 ? out[j] / l1 : cv[(size_t)t * b + j];
    }
}

/* ---- closed-form head ------------------------------------------------------- */

double ra_warm_head(const double *phi, const int64_t *next, int V, int C, double K, double smooth, float *W)
{
    if (K <= 0) { /* mean L1 norm of the features over the positions that have a next token */
        double mass = 0, n = 0;
        for (int t = 0; t < V; t++) {
            int64_t row = 0;
            for (int v = 0; v < V; v++) row += next[(size_t)t * V + v];
            double l1 = 0;
            for (int j = 0; j < C; j++) l1 += fabs(phi[(size_t)t * C + j]);
            mass += (double)row * l1;
            n += (double)row;
        }
        K = n > 0 && mass > 0 ? mass / n : 1.0;
    }
    double *F = malloc(sizeof(double) * (size_t)V);
    if (!F) return -1;
    for (int j = 0; j < C; j++) {
        double f = 0;
        for (int v = 0; v < V; v++) F[v] = smooth;
        for (int t = 0; t < V; t++) {
            const double p = phi[(size_t)t * C + j];
            if (p != 0)
                for (int v = 0; v < V; v++) F[v] += p * (double)next[(size_t)t * V + v];
        }
        for (int v = 0; v < V; v++) f += F[v];
        for (int v = 0; v < V; v++) W[(size_t)j * V + v] = (float)(log(F[v] / f) / K);
    }
    free(F);
    return K;
}

/* ---- into the model --------------------------------------------------------- */

/* Rows of E [V][C]: vec [V][b] in dimensions 0 .. b-1, zero after. */
static void place_embedding(float *E, const double *vec, int V, int C, int b)
{
    for (int t = 0; t < V; t++) {
        float *row = E + (size_t)t * C;
        memset(row, 0, sizeof(float) * (size_t)C);
        for (int j = 0; j < b; j++) row[j] = (float)vec[(size_t)t * b + j];
    }
}

/* phi [V][C] = rmsnorm(E[t]) * gain, in double as the head's input. */
static void head_features(const float *E, const float *gain, int V, int C, double eps, double *phi)
{
    for (int t = 0; t < V; t++) {
        const float *e = E + (size_t)t * C;
        double ss = 0;
        for (int j = 0; j < C; j++) ss += (double)e[j] * e[j];
        const double inv = 1.0 / sqrt(ss / C + eps);
        for (int j = 0; j < C; j++) phi[(size_t)t * C + j] = e[j] * inv * gain[j];
    }
}

static ra_status warm_local(ra_model *m, const ra_config *cfg, const ra_warm_counts *c, ra_warm_info *info)
{
    const int V = cfg->vocab, C = cfg->dim, b = ra_cipher_bits(V, cfg->warm_bits);
    int *rank = malloc(sizeof(int) * (size_t)V);
    uint32_t *code = malloc(sizeof(uint32_t) * (size_t)V);
    double *cv = malloc(sizeof(double) * (size_t)V * b), *vec = malloc(sizeof(double) * (size_t)V * b);
    double *phi = malloc(sizeof(double) * (size_t)V * C);
    ra_status st = rank && code && cv && vec && phi ? RA_OK : RA_FAIL(RA_ERR_NOMEM, "out of memory for the warm start");
    if (st == RA_OK) st = ra_cipher_assign(c->uni, V, b, rank, code);
    if (st == RA_OK) {
        const ra_param_layout *lay = ra_model_layout(m);
        float *w = ra_model_params(m);
        ra_warm_cipher_vectors(code, V, b, cv);
        if (cfg->embed_init_id == RA_EMBED_INIT_COOC) ra_warm_cooc_vectors(c->win, cv, V, b, vec);
        else memcpy(vec, cv, sizeof(double) * (size_t)V * b);
        place_embedding(w + lay->emb, vec, V, C, b);
        info->bits = b;
        if (cfg->head_init_id == RA_HEAD_INIT_EXPLICIT) {
            head_features(w + lay->emb, w + lay->final_norm, V, C, cfg->norm_eps, phi);
            info->K = ra_warm_head(phi, c->next, V, C, cfg->warm_k, cfg->warm_smooth, w + lay->lm_head);
            if (info->K < 0) st = RA_FAIL(RA_ERR_NOMEM, "out of memory for the explicit head");
        }
    }
    free(rank);
    free(code);
    free(cv);
    free(vec);
    free(phi);
    return st;
}

ra_status ra_warm_start(ra_model *m, ra_data *d, const ra_config *cfg, MPI_Comm comm, ra_warm_info *info)
{
    *info = (ra_warm_info){ 0 };
    if (cfg->embed_init_id == RA_EMBED_INIT_RANDOM && cfg->head_init_id == RA_HEAD_INIT_RANDOM) return RA_OK;
    ra_warm_counts c;
    int stopped;
    RA_TRY(ra_warm_count(d, cfg->vocab, cfg->warm_radius, (uint64_t)cfg->warm_seqs, comm, &c, &stopped));
    if (stopped) { /* by a stop request, on every rank */
        info->stopped = stopped;
        return RA_OK;
    }
    for (int t = 0; t < c.V; t++) {
        info->tokens += c.uni[t];
        info->distinct += c.uni[t] > 0;
    }
    ra_status st = warm_local(m, cfg, &c, info); /* same counts, same arithmetic: same on every rank */
    ra_warm_counts_free(&c);
    return st;
}
