/* test_combiner_threads.c - the Combiner heads give bitwise the same
 * results whatever the rank's thread count (threads.h).
 *
 * For each case (kind, causal, GQA, layout, span/row automatic) every rank
 * runs forward + backward on MPI_COMM_WORLD with ra_threads_set(1), then
 * with 2, 3 and 4 threads, and compares O, LSE, dQ, dK, dV bitwise
 * (memcmp) with the one-thread run. Two heads are used per case: one
 * created with 1 thread (its per-thread buffers are planned again when the
 * count grows) and one created with 4 threads (then run with fewer).
 * Exit status non-zero on any difference; rank 0 prints one line a case.
 *
 *   mpirun --oversubscribe -n 2 ./test_combiner_threads
 */
#include <mpi.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ringattn/heads.h"
#include "ringattn/layout.h"
#include "ringattn/rng.h"
#include "ringattn/threads.h"

typedef struct {
    const char *kind;
    int64_t L;
    int B, H, Hkv, D, causal;
    ra_layout layout;
} tcase;

static const tcase cases[] = {
    { "combiner-fixed", 300, 2, 4, 2, 16, 1, RA_LAYOUT_ZIGZAG },
    { "combiner-fixed", 257, 1, 4, 1, 16, 0, RA_LAYOUT_STRIPED },
    { "combiner-axial", 300, 2, 4, 2, 16, 1, RA_LAYOUT_ZIGZAG },
    { "combiner-axial", 257, 1, 4, 1, 16, 0, RA_LAYOUT_CONTIGUOUS },
    { "combiner-logsparse", 300, 2, 4, 2, 16, 1, RA_LAYOUT_ZIGZAG },
    { "combiner-logsparse", 1000, 1, 2, 1, 8, 1, RA_LAYOUT_STRIPED },
};

typedef struct {
    float *o, *lse, *dq, *dk, *dv;
    size_t nq, nk, nr;
} result;

static void fill(float *x, size_t n, uint64_t seed, int rank)
{
    for (size_t i = 0; i < n; i++) x[i] = 2.0f * ra_rand_uniform(seed + 1000u * (uint64_t)rank, i) - 1.0f;
}

/* forward + backward of h on this rank's inputs into r; 0 on success */
static int run(ra_head *h, const float *q, const float *k, const float *v, const float *dout, result *r)
{
    ra_status st = h->kind->forward(h, q, k, v, NULL, r->o, r->lse);
    if (st == RA_OK) st = h->kind->backward(h, q, k, v, NULL, r->o, r->lse, dout, r->dq, r->dk, r->dv);
    return st != RA_OK;
}

static int same(const result *a, const result *b)
{
    return !memcmp(a->o, b->o, sizeof(float) * a->nq) && !memcmp(a->lse, b->lse, sizeof(float) * a->nr) &&
           !memcmp(a->dq, b->dq, sizeof(float) * a->nq) && !memcmp(a->dk, b->dk, sizeof(float) * a->nk) &&
           !memcmp(a->dv, b->dv, sizeof(float) * a->nk);
}

static result alloc_result(size_t nq, size_t nk, size_t nr)
{
    result r = { .nq = nq, .nk = nk, .nr = nr };
    r.o = calloc(nq, sizeof(float)), r.dq = calloc(nq, sizeof(float)), r.lse = calloc(nr, sizeof(float));
    r.dk = calloc(nk, sizeof(float)), r.dv = calloc(nk, sizeof(float));
    return r;
}

static void free_result(result *r)
{
    free(r->o), free(r->lse), free(r->dq), free(r->dk), free(r->dv);
}

int main(int argc, char **argv)
{
    int provided, rank, P, failed = 0, skipped = 0;
    MPI_Init_thread(&argc, &argv, MPI_THREAD_FUNNELED, &provided);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &P);
    const int ncases = (int)(sizeof cases / sizeof cases[0]);
    for (int c = 0; c < ncases; c++) {
        const tcase *tc = &cases[c];
        const ra_head_kind *kind = ra_head_find(tc->kind);
        if (!kind) {
            skipped++;
            continue;
        }
        const int64_t Lr = ra_layout_count(tc->layout, tc->L, P, rank);
        const size_t nq = (size_t)tc->B * tc->H * Lr * tc->D, nk = (size_t)tc->B * tc->Hkv * Lr * tc->D;
        const size_t nr = (size_t)tc->B * tc->H * Lr;
        float *q = malloc(sizeof(float) * (nq + 1)), *k = malloc(sizeof(float) * (nk + 1));
        float *v = malloc(sizeof(float) * (nk + 1)), *dout = malloc(sizeof(float) * (nq + 1));
        fill(q, nq, 11 + c, rank), fill(k, nk, 23 + c, rank), fill(v, nk, 37 + c, rank), fill(dout, nq, 41 + c, rank);
        ra_head_opts opts = { .ring = { .B = tc->B, .H = tc->H, .Hkv = tc->Hkv, .D = tc->D, .L = tc->L,
                                        .causal = tc->causal, .layout = tc->layout },
                              .layer = NULL };
        result ref = alloc_result(nq, nk, nr), got = alloc_result(nq, nk, nr);
        ra_head *h1 = NULL, *h4 = NULL;
        int bad = 0;
        ra_threads_set(1);
        bad |= kind->create(&h1, &opts, MPI_COMM_WORLD) != RA_OK;
        ra_threads_set(4);
        bad |= kind->create(&h4, &opts, MPI_COMM_WORLD) != RA_OK;
        char diff[64] = "";
        if (!bad) {
            ra_threads_set(1);
            bad |= run(h1, q, k, v, dout, &ref);
            for (int T = 2; T <= 4 && !bad; T++) {
                ra_threads_set(T);
                for (int which = 0; which < 2 && !bad; which++) {
                    bad |= run(which ? h4 : h1, q, k, v, dout, &got);
                    if (!bad && !same(&ref, &got)) {
                        snprintf(diff, sizeof diff, " (differs at %d threads, head created with %d)", T,
                                 which ? 4 : 1);
                        bad = 1;
                    }
                }
            }
            ra_threads_set(1);
            bad |= run(h4, q, k, v, dout, &got) || !same(&ref, &got);
        }
        int any = 0;
        MPI_Allreduce(&bad, &any, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
        if (rank == 0)
            printf("%s %s L=%lld B=%d H=%d Hkv=%d D=%d %s %s: threads 1..4 %s%s\n", any ? "FAIL" : "ok  ", tc->kind,
                   (long long)tc->L, tc->B, tc->H, tc->Hkv, tc->D, tc->causal ? "causal" : "bidirectional",
                   ra_layout_name(tc->layout), any ? "not bitwise equal or failed" : "bitwise equal", diff);
        failed += any;
        if (h1) h1->kind->destroy(h1);
        if (h4) h4->kind->destroy(h4);
        free_result(&ref), free_result(&got);
        free(q), free(k), free(v), free(dout);
    }
    if (rank == 0)
        printf("test_combiner_threads: P=%d, %d passed, %d failed, %d skipped\n", P, ncases - failed - skipped, failed,
               skipped);
    MPI_Finalize();
    return failed ? 1 : 0;
}
