/* data.c - byte files and the generated recall task, by rank slab. */
#include "ringattn/data.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ringattn/fileio.h"
#include "ringattn/rng.h"

struct ra_data {
    ra_config cfg;
    const int32_t *pos;
    int64_t Lr;
    int fd;                  /* file source */
    int64_t split_at, size;  /* train bytes [0, split_at), held out [split_at, size) */
    int32_t *keys, *vals;    /* recall scratch [recall_pairs] */
    int32_t *order;          /* [recall_keys] */
    int64_t *where;          /* [recall_pairs] positions of the pairs */
};

/* Each part a split reads must hold one sequence and its target: the
 * training and held-out parts when something is held out (training,
 * evaluation on held-out data); the whole file when nothing is (eval --data
 * sets data.val_fraction = 0). Checked when the data is opened, so a short
 * part is named before step 1, not at the final evaluation. */
static ra_status check_parts(const ra_data *d)
{
    const ra_config *c = &d->cfg;
    const int64_t need = (int64_t)c->seq_len + 1;
    if (d->size < need)
        return RA_FAIL(RA_ERR_ARG,
                       "data.path %s: %lld bytes are too few for one sequence of data.seq_len = %d (+1 for the "
                       "target)", c->path, (long long)d->size, c->seq_len);
    if (c->val_fraction <= 0) return RA_OK;
    const int64_t train = d->split_at, held = d->size - d->split_at;
    if (train < need || held < need)
        return RA_FAIL(RA_ERR_ARG,
                       "data.path %s: the %s part has %lld bytes (data.val_fraction = %g of %lld bytes); it needs "
                       "at least data.seq_len + 1 = %lld: use a longer file, a shorter data.seq_len, or %s "
                       "data.val_fraction",
                       c->path, train < need ? "training" : "held-out", (long long)(train < need ? train : held),
                       (double)c->val_fraction, (long long)d->size, (long long)need,
                       train < need ? "a smaller" : "a larger");
    return RA_OK;
}

ra_status ra_data_open(ra_data **out, const ra_config *cfg, const int32_t *pos, int64_t Lr)
{
    *out = NULL;
    ra_data *d = calloc(1, sizeof *d);
    if (!d) return RA_FAIL(RA_ERR_NOMEM, "out of memory for the data reader");
    *out = d;
    d->cfg = *cfg;
    d->pos = pos;
    d->Lr = Lr;
    d->fd = -1;
    if (cfg->source_id == RA_SOURCE_FILE) {
        /* refuses FIFOs, directories and devices without blocking on them */
        RA_TRY(ra_file_open_input(cfg->path, "data.path", &d->fd, &d->size));
        d->split_at = (int64_t)((double)d->size * (1.0 - cfg->val_fraction));
        RA_TRY(check_parts(d));
    } else {
        d->keys = calloc((size_t)cfg->recall_pairs * 2 + cfg->recall_keys, sizeof(int32_t));
        d->where = calloc((size_t)cfg->recall_pairs, sizeof(int64_t));
        if (!d->keys || !d->where) return RA_FAIL(RA_ERR_NOMEM, "out of memory for the recall task");
        d->vals = d->keys + cfg->recall_pairs;
        d->order = d->vals + cfg->recall_pairs;
    }
    return RA_OK;
}

void ra_data_close(ra_data *d)
{
    if (!d) return;
    if (d->fd >= 0) close(d->fd);
    free(d->keys);
    free(d->where);
    free(d);
}

int64_t ra_data_windows(const ra_data *d)
{
    return d->fd >= 0 ? (d->size - 1) / d->cfg.seq_len : 0;
}

int64_t ra_data_targets_per_seq(const ra_data *d)
{
    if (d->fd >= 0) return d->cfg.seq_len;
    return d->cfg.recall_queries;
}

/* ---- recall ------------------------------------------------------------------ */

static uint64_t stream(const ra_data *d, int split, uint64_t idx)
{
    return ra_rand_u64(d->cfg.seed * 2 + (uint64_t)split, idx);
}

/* The tokens at this rank's positions, and their targets (-1: not counted). */
static void recall_sequence(ra_data *d, uint64_t s, int32_t *tok, int32_t *tgt)
{
    const ra_config *c = &d->cfg;
    const int K = c->recall_keys, N = c->recall_pairs, Q = c->recall_queries;
    const int64_t L = c->seq_len, qstart = L - 2 * Q, span = qstart - 1; /* pairs in [0, span) */
    uint64_t draw = 0;
    for (int i = 0; i < K; i++) d->order[i] = i;
    for (int i = 0; i < N; i++) { /* keys without replacement, values with, distinct places */
        int j = i + (int)(ra_rand_u64(s, draw++) % (uint64_t)(K - i));
        int32_t t = d->order[i];
        d->order[i] = d->order[j];
        d->order[j] = t;
        d->keys[i] = d->order[i];
        d->vals[i] = (int32_t)(ra_rand_u64(s, draw++) % RA_RECALL_VALUES);
        int fresh;
        do {
            d->where[i] = (int64_t)(ra_rand_u64(s, draw++) % (uint64_t)span);
            fresh = 1;
            for (int k = 0; k < i; k++) fresh &= d->where[k] != d->where[i];
        } while (!fresh);
    }
    /* the queried pairs, with replacement: an answer says nothing about the next query */
    for (int i = 0; i < Q; i++) d->order[i] = (int32_t)(ra_rand_u64(s, draw++) % (uint64_t)N);
    for (int64_t i = 0; i < d->Lr; i++) {
        int64_t p = d->pos[i];
        int32_t token = RA_RECALL_FILL, target = -1;
        if (p < span) {
            for (int k = 0; k < N; k++)
                if (d->where[k] == p) token = RA_RECALL_PAIR(d->keys[k], d->vals[k]);
        } else if (p == span) {
            token = RA_RECALL_SEP;
        } else {
            int pair = d->order[(p - qstart) / 2];
            if ((p - qstart) % 2 == 0) {
                token = RA_RECALL_KEY(d->keys[pair]);
                target = RA_RECALL_VALUE(d->vals[pair]);
            } else {
                token = RA_RECALL_VALUE(d->vals[pair]);
            }
        }
        tok[i] = token;
        tgt[i] = target;
    }
}

/* ---- files ------------------------------------------------------------------- */

static ra_status read_at(const ra_data *d, int64_t off, unsigned char *buf, int64_t n)
{
    return ra_pread_full(d->fd, d->cfg.path, buf, (size_t)n, off);
}

/* Bytes buf[0, n) read at offset off must be token ids of the model; a
 * byte >= model.vocab would index past the embedding and the LM head. */
static ra_status check_vocab(const ra_data *d, const unsigned char *buf, int64_t n, int64_t off)
{
    const int V = d->cfg.vocab;
    if (V > UCHAR_MAX) return RA_OK; /* every byte is a token */
    for (int64_t j = 0; j < n; j++)
        if (buf[j] >= V)
            return RA_FAIL(RA_ERR_ARG,
                           "data.path %s: byte %d at offset %lld is outside the vocabulary [0, %d) of model.vocab "
                           "= %d; use a model.vocab above every byte of the file",
                           d->cfg.path, buf[j], (long long)(off + j), V, V);
    return RA_OK;
}

/* The training and held-out parts must each hold a sequence and its target
 * (check_parts has made sure of it when something is held out). */
static ra_status check_split(const ra_data *d, int split)
{
    int64_t len = split == RA_SPLIT_TRAIN ? d->split_at : d->size - d->split_at;
    if (split != RA_SPLIT_ALL && len < d->cfg.seq_len + 1)
        return RA_FAIL(RA_ERR_ARG,
                       "data.path %s: the %s part has %lld bytes (of %lld, data.val_fraction = %g); it needs "
                       "at least data.seq_len + 1 = %d",
                       d->cfg.path, split == RA_SPLIT_TRAIN ? "training" : "held-out", (long long)len,
                       (long long)d->size, d->cfg.val_fraction, d->cfg.seq_len + 1);
    return RA_OK;
}

static ra_status file_sequence(ra_data *d, int split, uint64_t idx, int32_t *tok, int32_t *tgt)
{
    const int64_t L = d->cfg.seq_len;
    RA_TRY(check_split(d, split));
    if (split == RA_SPLIT_ALL && idx >= (uint64_t)ra_data_windows(d)) {
        /* past the last window: padding that counts nothing, so a short last
         * batch evaluates each window once */
        for (int64_t i = 0; i < d->Lr; i++) tok[i] = 0, tgt[i] = -1;
        return RA_OK;
    }
    int64_t lo = split == RA_SPLIT_VAL ? d->split_at : 0;
    int64_t len = split == RA_SPLIT_TRAIN ? d->split_at : d->size - d->split_at;
    int64_t off = split == RA_SPLIT_ALL ? (int64_t)idx * L
                                        : lo + (int64_t)(stream(d, split, idx) % (uint64_t)(len - L));
    unsigned char buf[4096];
    int64_t i = 0;
    while (i < d->Lr) { /* runs of consecutive positions, one pread each (+1 byte: targets) */
        int64_t n = 1;
        while (i + n < d->Lr && d->pos[i + n] == d->pos[i] + n && n < (int64_t)sizeof buf - 1) n++;
        RA_TRY(read_at(d, off + d->pos[i], buf, n + 1));
        RA_TRY(check_vocab(d, buf, n + 1, off + d->pos[i]));
        for (int64_t j = 0; j < n; j++) {
            tok[i + j] = buf[j];
            tgt[i + j] = buf[j + 1];
        }
        i += n;
    }
    return RA_OK;
}

ra_status ra_data_batch(ra_data *d, int split, uint64_t idx0, int B, int32_t *tok, int32_t *tgt)
{
    for (int b = 0; b < B; b++) {
        int32_t *t = tok + (size_t)b * d->Lr, *g = tgt + (size_t)b * d->Lr;
        if (d->fd >= 0) RA_TRY(file_sequence(d, split, idx0 + (uint64_t)b, t, g));
        else recall_sequence(d, stream(d, split, idx0 + (uint64_t)b), t, g);
    }
    return RA_OK;
}

/* ---- corpus statistics --------------------------------------------------------- */

#define SCAN_PIECE ((int64_t)1 << 20) /* centres per file read */

static ra_status scan_file(ra_data *d, int rank, int size, int64_t margin, ra_data_visit visit, void *ctx)
{
    const int64_t n = d->split_at, a = n * rank / size, e = n * (rank + 1) / size;
    unsigned char *buf = malloc((size_t)(SCAN_PIECE + 2 * margin));
    int32_t *tok = malloc(sizeof(int32_t) * (size_t)(SCAN_PIECE + 2 * margin));
    ra_status st = buf && tok ? RA_OK : RA_FAIL(RA_ERR_NOMEM, "out of memory for the corpus scan");
    for (int64_t c0 = a; st == RA_OK && c0 < e; c0 += SCAN_PIECE) {
        const int64_t c1 = c0 + SCAN_PIECE < e ? c0 + SCAN_PIECE : e;
        const int64_t r0 = c0 - margin > 0 ? c0 - margin : 0, r1 = c1 + margin < n ? c1 + margin : n;
        st = read_at(d, r0, buf, r1 - r0);
        if (st == RA_OK) st = check_vocab(d, buf, r1 - r0, r0);
        for (int64_t i = 0; st == RA_OK && i < r1 - r0; i++) tok[i] = buf[i];
        if (st == RA_OK) st = visit(ctx, tok, r1 - r0, c0 - r0, c1 - r0);
    }
    free(buf);
    free(tok);
    return st;
}

static ra_status scan_recall(ra_data *d, int rank, int size, uint64_t nseq, ra_data_visit visit, void *ctx)
{
    const int64_t L = d->cfg.seq_len;
    int32_t *pos = malloc(sizeof(int32_t) * 3 * (size_t)L);
    if (!pos) return RA_FAIL(RA_ERR_NOMEM, "out of memory for the corpus scan");
    int32_t *tok = pos + L, *tgt = tok + L;
    for (int64_t i = 0; i < L; i++) pos[i] = (int32_t)i;
    const int32_t *own_pos = d->pos; /* the generator writes the positions d->pos lists */
    const int64_t own_Lr = d->Lr;
    d->pos = pos, d->Lr = L;
    ra_status st = RA_OK;
    for (uint64_t idx = (uint64_t)rank; st == RA_OK && idx < nseq; idx += (uint64_t)size) {
        recall_sequence(d, stream(d, RA_SPLIT_TRAIN, idx), tok, tgt);
        st = visit(ctx, tok, L, 0, L);
    }
    d->pos = own_pos, d->Lr = own_Lr;
    free(pos);
    return st;
}

ra_status ra_data_scan(ra_data *d, int rank, int size, int margin, uint64_t nseq, ra_data_visit visit,
                       void *ctx)
{
    if (d->fd >= 0) {
        RA_TRY(check_split(d, RA_SPLIT_TRAIN));
        return scan_file(d, rank, size, margin, visit, ctx);
    }
    return scan_recall(d, rank, size, nseq, visit, ctx);
}
