/* test_tiny_mpi.c - every head at sequences so short that some ranks own no
 * token (L < P, and L < 2P where zigzag cuts the sequence into 2P chunks),
 * forward and backward, against the same head on one rank.
 *
 * Each rank builds the whole q, k, v, dO (same values everywhere), runs the
 * head on MPI_COMM_SELF (P = 1: the reference) and on MPI_COMM_WORLD with
 * its own tokens, and compares O, LSE, dQ, dK, dV at its tokens' global
 * positions. Tolerance: 2e-5 of max(1, largest reference value) - the two
 * runs differ only in the order of float32 sums (observed ~1e-7). A rank
 * without tokens must still take part in every collective and return.
 * Heads are made by ra_head_create from a resolved layer config, so the
 * registry's ids and the rownorm wrapper are exercised too; a layer whose
 * words and ids disagree must be refused. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mpi_harness.h"
#include "ringattn/config.h"
#include "ringattn/dist.h"
#include "ringattn/heads.h"
#include "ringattn/layout.h"

#define TOL 2e-5

static int g_rank, g_P, g_fail;

#define CHECK(cond, ...)                                                                   \
    do {                                                                                   \
        if (!(cond)) {                                                                     \
            g_fail++;                                                                      \
            fprintf(stderr, "[rank %d/%d] FAIL %s:%d: ", g_rank, g_P, __FILE__, __LINE__); \
            fprintf(stderr, __VA_ARGS__);                                                  \
            fputc('\n', stderr);                                                           \
        }                                                                                  \
    } while (0)

static void *xcalloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size);
    if (!p) {
        fprintf(stderr, "test_tiny_mpi: out of memory\n");
        MPI_Abort(MPI_COMM_WORLD, 2);
    }
    return p;
}

/* deterministic values in [-1, 1) (splitmix64) */
static float value(uint64_t seed, uint64_t i)
{
    uint64_t z = seed * 0x9E3779B97F4A7C15ull + i + 1;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    return (float)((double)(z >> 11) / 9007199254740992.0 * 2.0 - 1.0);
}

typedef struct {
    int nbh, D; /* rows [nbh][L][D] */
    float *q, *k, *v, *dout, *o, *lse, *dq, *dk, *dv;
} io;

typedef struct {
    int B, H, Hkv, D;
    int64_t L;
    int causal;
    ra_layout layout;
    ra_head_id head;
    ra_precond_id precond;
} tcase;

static void io_alloc(io *t, const tcase *c, int64_t n)
{
    const size_t nq = (size_t)c->B * c->H * n * c->D, nk = (size_t)c->B * c->Hkv * n * c->D;
    t->q = xcalloc(nq, sizeof(float)), t->o = xcalloc(nq, sizeof(float));
    t->dout = xcalloc(nq, sizeof(float)), t->dq = xcalloc(nq, sizeof(float));
    t->k = xcalloc(nk, sizeof(float)), t->v = xcalloc(nk, sizeof(float));
    t->dk = xcalloc(nk, sizeof(float)), t->dv = xcalloc(nk, sizeof(float));
    t->lse = xcalloc((size_t)c->B * c->H * n, sizeof(float));
}

static void io_free(io *t)
{
    free(t->q), free(t->o), free(t->dout), free(t->dq);
    free(t->k), free(t->v), free(t->dk), free(t->dv), free(t->lse);
}

/* dst [nbh][n][w] = rows pos[] of src [nbh][L][w] */
static void take(float *dst, const float *src, int nbh, int64_t L, const int32_t *pos, int64_t n, int w)
{
    for (int bh = 0; bh < nbh; bh++)
        for (int64_t i = 0; i < n; i++)
            memcpy(dst + ((size_t)bh * n + i) * w, src + ((size_t)bh * L + pos[i]) * w, sizeof(float) * w);
}

/* largest |ref| over the whole tensor, and largest |x - ref| at this rank's rows */
static double rel_err(const float *x, const float *ref, int nbh, int64_t L, const int32_t *pos, int64_t n, int w)
{
    double big = 1.0, err = 0.0;
    for (size_t i = 0; i < (size_t)nbh * L * w; i++) big = fmax(big, fabs(ref[i]));
    for (int bh = 0; bh < nbh; bh++)
        for (int64_t i = 0; i < n; i++)
            for (int d = 0; d < w; d++) {
                double a = x[((size_t)bh * n + i) * w + d], b = ref[((size_t)bh * L + pos[i]) * w + d];
                err = fmax(err, isfinite(a) ? fabs(a - b) : INFINITY);
            }
    return err / big;
}

static ra_layer_config layer_for(const tcase *c)
{
    ra_config cfg;
    ra_config_defaults(&cfg);
    ra_layer_config l = cfg.layer[0];
    snprintf(l.head, sizeof l.head, "%s", ra_head_words[c->head]);
    snprintf(l.precond, sizeof l.precond, "%s", ra_precond_words[c->precond]);
    l.head_id = c->head;
    l.precond_id = c->precond;
    l.precond_grad_id = RA_PRECOND_GRAD_FULL;
    snprintf(l.precond_grad, sizeof l.precond_grad, "%s", ra_precond_grad_words[RA_PRECOND_GRAD_FULL]);
    return l;
}

/* Create on comm, forward and backward; collective over comm. */
static ra_status run_head(const tcase *c, MPI_Comm comm, io *t, double *bytes, double *counted)
{
    ra_layer_config layer = layer_for(c);
    ra_head_opts opts = { .ring = { .B = c->B, .H = c->H, .Hkv = c->Hkv, .D = c->D, .L = c->L,
                                    .causal = c->causal, .layout = c->layout },
                          .layer = &layer };
    ra_head *h = NULL;
    ra_status made = ra_agree(comm, ra_head_create(&h, &opts, comm));
    if (made != RA_OK) {
        if (h) h->kind->destroy(h);
        return made;
    }
    const double b0 = ra_comm_bytes();
    ra_status st = h->kind->forward(h, t->q, t->k, t->v, NULL, t->o, t->lse);
    *bytes = st == RA_OK ? h->kind->bytes_sent(h) : 0;
    if (st == RA_OK) st = h->kind->backward(h, t->q, t->k, t->v, NULL, t->o, t->lse, t->dout, t->dq, t->dk, t->dv);
    if (st == RA_OK) *bytes += h->kind->bytes_sent(h);
    *counted = ra_comm_bytes() - b0;
    h->kind->destroy(h);
    return ra_agree(comm, st);
}

static void run_case(const tcase *c)
{
    const int64_t L = c->L;
    const int nq = c->B * c->H, nk = c->B * c->Hkv;
    char name[160];
    snprintf(name, sizeof name, "%s%s L=%lld %s %s", ra_head_words[c->head],
             c->precond == RA_PRECOND_ROWNORM ? "+rownorm" : "", (long long)L, ra_layout_name(c->layout),
             c->causal ? "causal" : "bidir");
    /* the whole problem, identical on every rank, and the one-rank run */
    io all, one;
    io_alloc(&all, c, L);
    const uint64_t seed = 100 + (uint64_t)L * 16 + (uint64_t)c->head * 4 + (uint64_t)c->causal;
    for (size_t i = 0; i < (size_t)nq * L * c->D; i++)
        all.q[i] = 2 * value(seed, i), all.dout[i] = value(seed + 1, i);
    for (size_t i = 0; i < (size_t)nk * L * c->D; i++) all.k[i] = 2 * value(seed + 2, i), all.v[i] = value(seed + 3, i);
    double b1, c1;
    ra_status s1 = run_head(c, MPI_COMM_SELF, &all, &b1, &c1);
    CHECK(s1 == RA_OK, "%s: one rank: %s", name, ra_last_error());
    CHECK(b1 == 0 && c1 == 0, "%s: one rank sent %.0f bytes (counted %.0f)", name, b1, c1);
    /* this rank's tokens; a zero-token rank gets zero-length (but valid) arrays */
    const int64_t n = ra_layout_count(c->layout, L, g_P, g_rank);
    int32_t *pos = xcalloc((size_t)n, sizeof(int32_t));
    ra_layout_positions(c->layout, L, g_P, g_rank, pos);
    io_alloc(&one, c, n);
    take(one.q, all.q, nq, L, pos, n, c->D);
    take(one.dout, all.dout, nq, L, pos, n, c->D);
    take(one.k, all.k, nk, L, pos, n, c->D);
    take(one.v, all.v, nk, L, pos, n, c->D);
    double bytes, counted;
    ra_status sp = run_head(c, MPI_COMM_WORLD, &one, &bytes, &counted);
    CHECK(sp == RA_OK, "%s: %d ranks (this one owns %lld tokens): %s", name, g_P, (long long)n, ra_last_error());
    if (s1 == RA_OK && sp == RA_OK) {
        double e[5] = { rel_err(one.o, all.o, nq, L, pos, n, c->D), rel_err(one.lse, all.lse, nq, L, pos, n, 1),
                        rel_err(one.dq, all.dq, nq, L, pos, n, c->D), rel_err(one.dk, all.dk, nk, L, pos, n, c->D),
                        rel_err(one.dv, all.dv, nk, L, pos, n, c->D) };
        static const char *what[5] = { "O", "LSE", "dQ", "dK", "dV" };
        for (int i = 0; i < 5; i++)
            CHECK(e[i] <= TOL, "%s: %s differs from one rank by %.3e (rank owns %lld tokens)", name, what[i], e[i],
                  (long long)n);
        /* a head reports what the wrappers counted for it (collectives and ring) */
        CHECK(bytes == counted, "%s: bytes_sent %.0f but the wrappers counted %.0f", name, bytes, counted);
    }
    free(pos);
    io_free(&all);
    io_free(&one);
}

/* A layer whose head word and id disagree is refused, not silently run. */
static void unresolved_refused(void)
{
    tcase c = { .B = 1, .H = 2, .Hkv = 1, .D = 4, .L = 8, .head = RA_HEAD_COMBINER_FIXED };
    ra_layer_config layer = layer_for(&c);
    layer.head_id = RA_HEAD_FULL; /* the word says combiner-fixed */
    ra_head_opts opts = { .ring = { .B = 1, .H = 2, .Hkv = 1, .D = 4, .L = 8 }, .layer = &layer };
    ra_head *h = NULL;
    ra_status st = ra_head_create(&h, &opts, MPI_COMM_WORLD);
    CHECK(st != RA_OK && h == NULL, "a layer with head 'combiner-fixed' and head_id full was accepted");
    CHECK(st == RA_OK || strstr(ra_last_error(), "combiner-fixed"), "message does not name the head: %s",
          ra_last_error());
    if (h) h->kind->destroy(h);
}

int main(int argc, char **argv)
{
    int provided = MPI_THREAD_SINGLE;
    MPI_Init_thread(&argc, &argv, MPI_THREAD_FUNNELED, &provided);
    mh_threads_from_env();
    MPI_Comm_rank(MPI_COMM_WORLD, &g_rank);
    MPI_Comm_size(MPI_COMM_WORLD, &g_P);
    ra_watchdog_init(MPI_COMM_WORLD);
    ra_set_peer_timeout(60.0);
    /* lengths with empty ranks: below P, and below 2P (zigzag) */
    int64_t Ls[8];
    int nL = 0;
    const int64_t want[] = { 1, 2, 3, g_P - 1, g_P + 1, 2 * g_P - 1 };
    for (size_t i = 0; i < sizeof want / sizeof *want; i++) {
        int dup = want[i] < 1;
        for (int j = 0; j < nL; j++) dup |= Ls[j] == want[i];
        if (!dup) Ls[nL++] = want[i];
    }
    int cases = 0;
    for (int h = RA_HEAD_FULL; h <= RA_HEAD_COMBINER_AXIAL; h++)
        for (int lay = RA_LAYOUT_CONTIGUOUS; lay <= RA_LAYOUT_STRIPED; lay++)
            for (int causal = 0; causal <= 1; causal++)
                for (int pre = RA_PRECOND_NONE; pre <= RA_PRECOND_ROWNORM; pre++)
                    for (int i = 0; i < nL; i++) {
                        if (h == RA_HEAD_COMBINER_LOGSPARSE && !causal) continue; /* causal only */
                        if (pre == RA_PRECOND_ROWNORM && !causal) continue;       /* enough cases */
                        tcase c = { .B = 1, .H = 2, .Hkv = 1, .D = 4, .L = Ls[i], .causal = causal,
                                    .layout = (ra_layout)lay, .head = (ra_head_id)h, .precond = (ra_precond_id)pre };
                        if (h == RA_HEAD_FULL && i == 0) c.B = 2, c.D = 3; /* odd sizes too */
                        run_case(&c);
                        cases++;
                    }
    unresolved_refused();
    int fails = 0;
    MPI_Allreduce(&g_fail, &fails, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
    if (g_rank == 0) printf("test_tiny_mpi: P=%d, %d cases (L = 1 to %d), %d failures\n", g_P, cases,
                            2 * g_P - 1 > 3 ? 2 * g_P - 1 : 3, fails);
    MPI_Finalize();
    return fails ? 1 : 0;
}
