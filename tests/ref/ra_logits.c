/* ra_logits.c - the logits a checkpoint gives a token sequence, from the
 * library's public API, for tests/cli/test_llama.sh to compare with the
 * float64 Llama reference (tests/ref/llama_ref.py).
 *
 *   mpirun -n P ra_logits forward CKPT TOKENS OUT   the ring forward (ra_model_step)
 *   mpirun -n P ra_logits decode  CKPT TOKENS OUT   the decoder, token by token (decode.h)
 *   ra_logits params CKPT OUT                       the parameter array as stored
 *
 * TOKENS: whitespace-separated token ids. OUT: raw little-endian float32,
 * [n][V] logits (row t: the next-token logits after token t), or the
 * parameters. The model runs at data.seq_len = n, micro-batch 1, with the
 * checkpoint's layout (zigzag by default); rank 0 gathers the rows of every
 * rank by global position and writes OUT. Exit status 1 on any error. */
#include <mpi.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ringattn/checkpoint.h"
#include "ringattn/config.h"
#include "ringattn/decode.h"
#include "ringattn/dist.h"
#include "ringattn/model.h"

static int g_rank;

static void die(const char *what)
{
    fprintf(stderr, "ra_logits: rank %d: %s: %s\n", g_rank, what, ra_last_error());
    MPI_Abort(MPI_COMM_WORLD, 1);
    exit(1);
}

static int32_t *read_tokens(const char *path, int *n)
{
    FILE *f = fopen(path, "r");
    if (!f) return NULL;
    int cap = 64, k = 0;
    int32_t *t = malloc(sizeof *t * cap);
    long v;
    while (t && fscanf(f, "%ld", &v) == 1) {
        if (k == cap) t = realloc(t, sizeof *t * (size_t)(cap *= 2));
        if (t) t[k++] = (int32_t)v;
    }
    fclose(f);
    *n = k;
    return t;
}

static void write_out(const char *path, const float *x, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(x, sizeof *x, n, f) != n || fclose(f) != 0) {
        fprintf(stderr, "ra_logits: cannot write %s\n", path);
        MPI_Abort(MPI_COMM_WORLD, 1);
    }
}

int main(int argc, char **argv)
{
    int provided, P;
    MPI_Init_thread(&argc, &argv, MPI_THREAD_FUNNELED, &provided);
    MPI_Comm_rank(MPI_COMM_WORLD, &g_rank);
    MPI_Comm_size(MPI_COMM_WORLD, &P);
    ra_watchdog_init(MPI_COMM_WORLD);
    const int params_only = argc == 4 && !strcmp(argv[1], "params");
    if (!params_only && (argc != 5 || (strcmp(argv[1], "forward") && strcmp(argv[1], "decode")))) {
        if (g_rank == 0) fprintf(stderr, "usage: ra_logits forward|decode CKPT TOKENS OUT | params CKPT OUT\n");
        MPI_Finalize();
        return 2;
    }
    const char *ckpt = argv[2], *out = argv[params_only ? 3 : 4];
    int n = 2;
    int32_t *tok = NULL;
    if (!params_only) {
        tok = read_tokens(argv[3], &n);
        if (!tok || n < 1 || (!strcmp(argv[1], "forward") && n < P)) {
            fprintf(stderr, "ra_logits: %s: no tokens, or fewer than the %d ranks\n", argv[3], P);
            MPI_Abort(MPI_COMM_WORLD, 1);
        }
    }
    char *text = NULL, set[64];
    ra_ckpt_state state;
    ra_config cfg;
    if (ra_ckpt_peek(ckpt, &text, &state) != RA_OK) die("peek");
    ra_config_defaults(&cfg);
    if (ra_config_parse(&cfg, text, ckpt) != RA_OK) die("config");
    free(text);
    snprintf(set, sizeof set, "data.seq_len=%d", n > P ? n : P);
    if (ra_config_set(&cfg, set, "ra_logits") != RA_OK || ra_config_set(&cfg, "data.source=file", "ra_logits") ||
        ra_config_set(&cfg, "data.path=unused", "ra_logits") || ra_config_set(&cfg, "train.batch=1", "ra_logits") ||
        ra_config_set(&cfg, "train.accum=1", "ra_logits") || ra_config_finish(&cfg) != RA_OK)
        die("config");
    ra_model *m;
    if (ra_model_create(&m, &cfg, 1, MPI_COMM_WORLD) != RA_OK) die("model");
    const size_t np = ra_model_nparams(m);
    float *scratch = malloc(sizeof(float) * np);
    ra_ckpt_tensor t[3] = { { "params", ra_model_params(m), np }, { "adam_m", scratch, np }, { "adam_v", scratch, np } };
    if (ra_ckpt_load(ckpt, NULL, &state, t, 3) != RA_OK) die("load");
    free(scratch);
    if (params_only) {
        if (g_rank == 0) write_out(out, ra_model_params(m), np);
        ra_model_destroy(m);
        MPI_Finalize();
        return 0;
    }
    const int V = cfg.vocab;
    float *all = g_rank == 0 ? malloc(sizeof(float) * (size_t)n * V) : NULL;
    if (!strcmp(argv[1], "forward")) {
        const int64_t Lr = ra_model_local_len(m);
        const int32_t *pos = ra_model_positions(m);
        int32_t *lt = malloc(sizeof(int32_t) * (size_t)(Lr + 1) * 2), *tg = lt + Lr + 1;
        for (int64_t i = 0; i < Lr; i++) lt[i] = tok[pos[i]], tg[i] = -1;
        ra_batch_stats bs;
        if (ra_model_step(m, lt, tg, 0, 0.0f, 0, &bs) != RA_OK) die("forward");
        /* a test program may hold this rank's Lr x V logits at once */
        float *lg = malloc(sizeof(float) * ((size_t)Lr * V + 1));
        ra_model_logits_rows(m, 0, (int)Lr, lg);
        /* rank 0 gathers (positions, rows) of every rank */
        int cnt = (int)Lr, *cnts = malloc(sizeof(int) * P), *displ = malloc(sizeof(int) * P);
        MPI_Gather(&cnt, 1, MPI_INT, cnts, 1, MPI_INT, 0, MPI_COMM_WORLD);
        int total = 0;
        for (int r = 0; g_rank == 0 && r < P; r++) displ[r] = total, total += cnts[r];
        int32_t *gpos = g_rank == 0 ? malloc(sizeof(int32_t) * (size_t)(total + 1)) : NULL;
        MPI_Gatherv(pos, cnt, MPI_INT32_T, gpos, cnts, displ, MPI_INT32_T, 0, MPI_COMM_WORLD);
        for (int r = 0; g_rank == 0 && r < P; r++) cnts[r] *= V, displ[r] *= V;
        float *rows = g_rank == 0 ? malloc(sizeof(float) * ((size_t)total * V + 1)) : NULL;
        MPI_Gatherv(lg, cnt * V, MPI_FLOAT, rows, cnts, displ, MPI_FLOAT, 0, MPI_COMM_WORLD);
        for (int i = 0; g_rank == 0 && i < total; i++)
            memcpy(all + (size_t)gpos[i] * V, rows + (size_t)i * V, sizeof(float) * V);
        free(rows);
        free(gpos);
        free(cnts);
        free(displ);
        free(lt);
        free(lg);
    } else {
        ra_decoder *d;
        if (ra_decoder_create(&d, &cfg, ra_model_params(m), ra_model_layout(m), MPI_COMM_WORLD, n) != RA_OK)
            die("decoder");
        for (int i = 0; i < n; i++) {
            if (ra_decoder_step(d, tok[i]) != RA_OK) die("decode");
            if (g_rank == 0) memcpy(all + (size_t)i * V, ra_decoder_logits(d), sizeof(float) * V);
        }
        ra_decoder_destroy(d);
    }
    if (g_rank == 0) write_out(out, all, (size_t)n * V);
    free(all);
    free(tok);
    ra_model_destroy(m);
    MPI_Finalize();
    return 0;
}
