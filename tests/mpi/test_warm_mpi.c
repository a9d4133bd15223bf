/* test_warm_mpi.c - warm-start counts over MPI_COMM_WORLD (ra_warm_count,
 * ra_data_scan) against independent references:
 *   file   - a 2.5 MiB file (longer than a scan piece on every P, so piece
 *            and rank boundaries both fall inside it): occurrences, next-token
 *            and window counts over the training part, counted naively from
 *            the bytes; held-out bytes must not be counted. Exact equality.
 *   recall - the first nseq training sequences: world counts equal those of
 *            one rank counting alone (MPI_COMM_SELF). Exact equality.
 *   error  - a byte outside model.vocab is an error on every rank (no hang).
 *   stop   - a stop request on the last rank only stops every rank.
 * The cases run under tests/common/mpi_harness.h (every rank agrees on each
 * verdict; "N passed, M failed"; non-zero exit on any failure); the file
 * lives in a fresh temporary directory (tests/common/tmpdir.h), removed at
 * the end.
 *
 *   mpirun --oversubscribe -n 3 ./test_warm_mpi
 */
#include <mpi.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mpi_harness.h"
#include "ringattn/config.h"
#include "ringattn/data.h"
#include "ringattn/rng.h"
#include "ringattn/warm.h"
#include "tmpdir.h"

static int g_rank, g_P;

enum { V = 256, RADIUS = 3 };

/* Text-like bytes: mostly a small alphabet, some of everything. */
static unsigned char *make_bytes(int64_t n)
{
    unsigned char *b = malloc((size_t)n);
    for (int64_t i = 0; i < n; i++) {
        uint64_t r = ra_rand_u64(7, (uint64_t)i);
        b[i] = r % 8 ? (unsigned char)"etaoin shrdlu"[r / 8 % 13] : (unsigned char)(r / 8 % 256);
    }
    return b;
}

static int count_equal(const ra_warm_counts *got, const ra_warm_counts *want)
{
    size_t n = (size_t)V * (1 + 2 * (size_t)V);
    return memcmp(got->uni, want->uni, n * sizeof(int64_t)) == 0;
}

/* The byte file at path as training data (the default config otherwise);
 * NULL on failure (ra_last_error says why). */
static ra_data *open_bytes(const char *path, ra_config *cfg)
{
    ra_config_defaults(cfg);
    snprintf(cfg->source, sizeof cfg->source, "file");
    snprintf(cfg->path, sizeof cfg->path, "%s", path);
    static int32_t pos[1] = { 0 };
    ra_data *d = NULL;
    if (ra_config_finish(cfg) != RA_OK || ra_data_open(&d, cfg, pos, 1) != RA_OK) return NULL;
    return d;
}

static mh_outcome case_file(const void *arg, const mh_ctx *ctx)
{
    (void)ctx;
    const char *path = arg;
    const int64_t size = 5 * (INT64_C(1) << 19) + 17;
    unsigned char *bytes = make_bytes(size);
    if (g_rank == 0) {
        FILE *f = fopen(path, "wb");
        MH_CHECK(f && fwrite(bytes, 1, (size_t)size, f) == (size_t)size && fclose(f) == 0, "cannot write %s", path);
    }
    MPI_Barrier(MPI_COMM_WORLD);
    ra_config cfg;
    ra_data *d = open_bytes(path, &cfg);
    MH_CHECK(d, "open %s: %s", path, ra_last_error());
    if (!d) { /* on every rank alike: one file */
        free(bytes);
        return MH_RAN;
    }
    ra_warm_counts got;
    int stopped;
    MH_CHECK(ra_warm_count(d, V, RADIUS, 0, MPI_COMM_WORLD, &got, &stopped) == RA_OK && !stopped, "count");
    /* the reference: the training part [0, split_at) counted position by position */
    const int64_t split = (int64_t)((double)size * (1.0 - cfg.val_fraction));
    ra_warm_counts want = { .V = V, .radius = RADIUS, .uni = calloc((size_t)V * (1 + 2 * V), sizeof(int64_t)) };
    want.next = want.uni + V;
    want.win = want.next + (size_t)V * V;
    for (int64_t i = 0; i < split; i++) {
        want.uni[bytes[i]]++;
        if (i + 1 < split) want.next[bytes[i] * V + bytes[i + 1]]++;
        for (int64_t j = i - RADIUS; j <= i + RADIUS; j++)
            if (j >= 0 && j < split && j != i) want.win[bytes[i] * V + bytes[j]]++;
    }
    if (got.uni) MH_CHECK(count_equal(&got, &want), "file counts differ from the naive count of the training part");
    int64_t total = 0;
    for (int t = 0; got.uni && t < V; t++) total += got.uni[t];
    MH_CHECK(total == split, "counted %lld tokens, the training part has %lld", (long long)total, (long long)split);
    ra_warm_counts_free(&got);
    free(want.uni);
    ra_data_close(d);
    free(bytes);
    return MH_RAN;
}

static mh_outcome case_recall(const void *arg, const mh_ctx *ctx)
{
    (void)arg, (void)ctx;
    ra_config cfg;
    ra_config_defaults(&cfg);
    MH_CHECK(ra_config_finish(&cfg) == RA_OK, "config");
    int32_t pos[1] = { 0 };
    ra_data *d;
    MH_CHECK(ra_data_open(&d, &cfg, pos, 1) == RA_OK, "open recall");
    const uint64_t nseq = 37;
    ra_warm_counts world, self;
    int stopped;
    MH_CHECK(ra_warm_count(d, V, RADIUS, nseq, MPI_COMM_WORLD, &world, &stopped) == RA_OK && !stopped, "count on world");
    MH_CHECK(ra_warm_count(d, V, RADIUS, nseq, MPI_COMM_SELF, &self, &stopped) == RA_OK && !stopped, "count alone");
    if (world.uni && self.uni) MH_CHECK(count_equal(&world, &self), "recall counts on %d ranks differ from one rank", g_P);
    int64_t total = 0;
    for (int t = 0; self.uni && t < V; t++) total += self.uni[t];
    MH_CHECK(total == (int64_t)nseq * cfg.seq_len, "counted %lld tokens, expected %lld", (long long)total,
          (long long)nseq * cfg.seq_len);
    ra_warm_counts_free(&world);
    ra_warm_counts_free(&self);
    ra_data_close(d);
    return MH_RAN;
}

static mh_outcome case_bad_token(const void *arg, const mh_ctx *ctx)
{
    (void)ctx;
    const char *path = arg; /* written by case_file */
    ra_config cfg;
    ra_data *d = open_bytes(path, &cfg); /* bytes up to 255 */
    MH_CHECK(d, "open %s: %s", path, ra_last_error());
    if (!d) return MH_RAN; /* on every rank alike: one file */
    ra_warm_counts c;
    int stopped;
    ra_status st = ra_warm_count(d, 128, RADIUS, 0, MPI_COMM_WORLD, &c, &stopped);
    MH_CHECK(st != RA_OK && c.uni == NULL, "a byte above vocab 128 was accepted");
    if (st == RA_ERR_ARG) MH_CHECK(strstr(ra_last_error(), "outside model.vocab") != NULL, "message: %s", ra_last_error());
    ra_data_close(d);
    return MH_RAN;
}

/* A stop request on one rank only (the last; on rank 0 a lower one too):
 * every rank stops and returns RA_OK, no counts, the highest request. */
static mh_outcome case_stop_one_rank(const void *arg, const mh_ctx *ctx)
{
    (void)ctx;
    const char *path = arg; /* written by case_file */
    ra_config cfg;
    ra_data *d = open_bytes(path, &cfg);
    MH_CHECK(d, "open %s: %s", path, ra_last_error());
    if (!d) return MH_RAN; /* on every rank alike: one file */
    ra_warm_stop_request = g_rank == g_P - 1 ? 2 : g_rank == 0 ? 1 : 0;
    ra_warm_counts c;
    int stopped = -1;
    ra_status st = ra_warm_count(d, V, RADIUS, 0, MPI_COMM_WORLD, &c, &stopped);
    ra_warm_stop_request = 0;
    MH_CHECK(st == RA_OK, "a stop request on rank %d gave an error: %s", g_P - 1, ra_last_error());
    MH_CHECK(stopped == 2 && c.uni == NULL, "stopped = %d (expected 2), counts %s", stopped, c.uni ? "kept" : "freed");
    ra_warm_counts_free(&c);
    ra_data_close(d);
    return MH_RAN;
}

int main(int argc, char **argv)
{
    mh_init(&argc, &argv, "test_warm_mpi");
    g_rank = mh_rank(), g_P = mh_size();
    /* rank 0 makes the directory; every rank uses the same path */
    char dir[TMPDIR_CAP] = "", path[TMPDIR_CAP] = "";
    int made = g_rank == 0 ? tmpdir_make(dir, "test_warm_mpi") == 0 : 1;
    MPI_Bcast(&made, 1, MPI_INT, 0, MPI_COMM_WORLD);
    if (!made) MPI_Abort(MPI_COMM_WORLD, 1);
    MPI_Bcast(dir, TMPDIR_CAP, MPI_CHAR, 0, MPI_COMM_WORLD);
    tmpdir_path(path, dir, "bytes.txt");
    mh_run_case("file counts = naive count of the training part", case_file, path, 0);
    mh_run_case("recall counts = one rank's", case_recall, NULL, 1);
    mh_run_case("byte outside vocab: error on every rank", case_bad_token, path, 2);
    mh_run_case("stop request on the last rank: every rank stops", case_stop_one_rank, path, 3);
    MPI_Barrier(MPI_COMM_WORLD); /* every rank is done with the file */
    if (g_rank == 0 && tmpdir_remove(dir) != 0) fprintf(stderr, "test_warm_mpi: cannot remove %s\n", dir);
    return mh_finish();
}
