/* ring_attention.c - exact attention over a sequence split across MPI ranks.
 *
 * What it shows: the smallest complete use of the public API (ring.h,
 * layout.h, rng.h, status.h). A sequence of L tokens is split over the P
 * ranks of MPI_COMM_WORLD by a layout (zigzag by default: rank r owns
 * chunks r and 2P-1-r of 2P, which balances causal work). Each rank holds
 * only the queries, keys and values of its own tokens; ra_ring_forward
 * passes the key/value blocks around the ring of ranks while every rank
 * attends its queries to the block it holds, so no rank ever has the whole
 * sequence. The result is the same as attention over the whole sequence.
 *
 * How it checks itself: the inputs are a pure function of (seed, global
 * index) (ra_rand_uniform), so every rank can also build the WHOLE q, k, v
 * and compute plain causal softmax attention in float64 with three loops.
 * Each rank compares its rows of the ring's output with the rows of that
 * reference at its tokens' global indices (ra_layout_global). The error is
 *
 *     max over all ranks, rows, dims |o_ring - o_ref| / max |o_ref|
 *
 * and the program exits non-zero when it exceeds 1e-5 (the ring keeps
 * float32 data with exact online-softmax merging, so about 1e-7 is usual).
 *
 *     mpirun -n 4 ./ring_attention                 # L = 1000, zigzag
 *     mpirun -n 3 ./ring_attention 4097 striped    # L, layout
 *     (a bad argument: one line naming it, exit 2)
 *
 * Build against an installed copy:
 *     cc ring_attention.c $(pkg-config --cflags --libs ringattn) -o ring_attention
 */
#include <errno.h>
#include <math.h>
#include <mpi.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include <ringattn/layout.h>
#include <ringattn/ring.h>
#include <ringattn/rng.h>
#include <ringattn/status.h>

#define TOLERANCE 1e-5

enum { H = 2, D = 32 }; /* query heads (= key/value heads here), head dim */

/* Element [h][i][d] of a whole [H][L][D] input tensor, the same on every rank. */
static float input(uint64_t seed, int64_t L, int h, int64_t i, int d)
{
    return ra_rand_uniform(seed, ((uint64_t)h * (uint64_t)L + (uint64_t)i) * D + (uint64_t)d);
}

/* Causal softmax attention in float64 for global query row i of head h:
 * out[d] = sum_{j <= i} softmax_j(a q_i . k_j) v_j[d]. */
static void reference_row(int64_t L, int h, int64_t i, double *out)
{
    const double a = 1.0 / sqrt((double)D);
    double *s = malloc((size_t)(i + 1) * sizeof *s), m = -INFINITY, l = 0.0;
    for (int64_t j = 0; j <= i; j++) {
        double dot = 0.0;
        for (int d = 0; d < D; d++) dot += (double)input(1, L, h, i, d) * input(2, L, h, j, d);
        s[j] = a * dot;
        if (s[j] > m) m = s[j];
    }
    for (int d = 0; d < D; d++) out[d] = 0.0;
    for (int64_t j = 0; j <= i; j++) {
        double p = exp(s[j] - m);
        l += p;
        for (int d = 0; d < D; d++) out[d] += p * input(3, L, h, j, d);
    }
    for (int d = 0; d < D; d++) out[d] /= l;
    free(s);
}

/* Runs the ring on this rank's tokens; *err = this rank's max |o - ref|,
 * *ref_max = this rank's max |ref| (both reduced over ranks by main). */
static ra_status run(int64_t L, ra_layout layout, double *err, double *ref_max)
{
    ra_ring_opts opts = {.B = 1, .H = H, .Hkv = H, .D = D, .L = L, .causal = 1, .layout = layout};
    ra_ring *ring;
    RA_TRY(ra_ring_create(&ring, &opts, MPI_COMM_WORLD));
    int rank, P;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &P);

    /* this rank's slab: q, k, v, o [H][Lr][D], lse [H][Lr] */
    const int64_t Lr = ra_ring_local_len(ring);
    const size_t n = (size_t)H * (size_t)Lr * D;
    float *q = malloc(n * sizeof *q + 1), *k = malloc(n * sizeof *k + 1);
    float *v = malloc(n * sizeof *v + 1), *o = malloc(n * sizeof *o + 1);
    float *lse = malloc((size_t)H * (size_t)Lr * sizeof *lse + 1);
    if (!q || !k || !v || !o || !lse) {
        free(q), free(k), free(v), free(o), free(lse);
        ra_ring_destroy(ring);
        return RA_FAIL(RA_ERR_NOMEM, "rank %d: slab of %lld tokens", rank, (long long)Lr);
    }
    for (int h = 0; h < H; h++)
        for (int64_t t = 0; t < Lr; t++) {
            int64_t i = ra_layout_global(layout, L, P, rank, t); /* the token's global index */
            for (int d = 0; d < D; d++) {
                size_t at = ((size_t)h * (size_t)Lr + (size_t)t) * D + (size_t)d;
                q[at] = input(1, L, h, i, d);
                k[at] = input(2, L, h, i, d);
                v[at] = input(3, L, h, i, d);
            }
        }

    ra_status s = ra_ring_forward(ring, q, k, v, NULL, o, lse);

    *err = *ref_max = 0.0;
    double ref[D];
    for (int h = 0; s == RA_OK && h < H; h++)
        for (int64_t t = 0; t < Lr; t++) {
            reference_row(L, h, ra_layout_global(layout, L, P, rank, t), ref);
            for (int d = 0; d < D; d++) {
                double e = fabs(o[((size_t)h * (size_t)Lr + (size_t)t) * D + (size_t)d] - ref[d]);
                if (!(e <= *err)) *err = e; /* NaN counts as an error */
                if (fabs(ref[d]) > *ref_max) *ref_max = fabs(ref[d]);
            }
        }
    free(q), free(k), free(v), free(o), free(lse);
    ra_ring_destroy(ring);
    return s;
}

int main(int argc, char **argv)
{
    MPI_Init(&argc, &argv);
    int rank, P;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &P);

    /* the arguments, before any work: a bad one is a usage error (exit 2) */
    int64_t L = 1000;
    ra_layout layout = RA_LAYOUT_ZIGZAG;
    char *end = NULL, bad[160] = "";
    errno = 0;
    if (argc > 1) L = strtoll(argv[1], &end, 10);
    if (argc > 3)
        snprintf(bad, sizeof bad, "unexpected argument '%.40s'", argv[3]);
    else if (argc > 1 && (end == argv[1] || *end || errno || L < 1 || L > INT32_MAX))
        snprintf(bad, sizeof bad, "L '%.40s' is not a whole number in [1, 2147483647]", argv[1]);
    else if (argc > 2 && ra_layout_parse(argv[2], &layout) != RA_OK)
        snprintf(bad, sizeof bad, "layout '%.40s' is not contiguous, zigzag or striped", argv[2]);
    if (bad[0]) {
        if (rank == 0) fprintf(stderr, "ring_attention: %s (usage: ring_attention [L] [contiguous|zigzag|striped])\n", bad);
        MPI_Finalize();
        return 2;
    }
    double err = INFINITY, ref_max = 0.0;
    ra_status s = run(L, layout, &err, &ref_max);
    if (s != RA_OK) fprintf(stderr, "[rank %d/%d] ring_attention: %s\n", rank, P, ra_last_error());

    /* every rank agrees on the verdict */
    double e[2] = {s == RA_OK ? err : INFINITY, ref_max}, all[2];
    MPI_Allreduce(e, all, 2, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
    const double rel = all[0] / (all[1] > 0.0 ? all[1] : 1.0);
    const int ok = rel <= TOLERANCE;
    if (rank == 0)
        printf("ring_attention: L=%lld P=%d %s causal: max |o - ref| / max |ref| = %.2e "
               "(tolerance %.0e): %s\n",
               (long long)L, P, ra_layout_name(layout), rel, TOLERANCE, ok ? "ok" : "FAIL");
    MPI_Finalize();
    return ok ? 0 : 1;
}
