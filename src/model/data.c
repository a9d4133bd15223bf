/* data.c - byte files, token files and the generated recall task, by rank
 * slab.
 *
 * Decisions:
 * - A byte file (data.source = file) is a token file of 1-byte elements:
 *   one reader, one split rule, one vocabulary check for both sources; only
 *   the words of the messages differ (bytes and offsets, tokens and
 *   elements).
 * - data.dtype = auto detects only what a file says of itself (the .npy and
 *   llm.c magics); a flat file has no header, and guessing its element size
 *   would read uint32 ids as pairs of valid uint16 ids without any error.
 * - Token files are validated when opened (kind, size, header, count), the
 *   values when read: each rank checks the elements it reads, and the
 *   callers' agreement (ra_agree) stops every rank with the first bad one. */
#include "ringattn/data.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ringattn/checkpoint.h"
#include "ringattn/fileio.h"
#include "ringattn/npy.h"
#include "ringattn/rng.h"

#define RUN_MAX 4095 /* positions per read of a sequence (+1: the target) */

struct ra_data {
    ra_config cfg;
    const int32_t *pos;
    int64_t Lr;
    int nfiles;              /* 0: recall; 1: data.path; 2: data.path and data.val_path */
    ra_token_file file[2];   /* [0] data.path, [1] data.val_path */
    int64_t split_at;        /* training elements of file[0]: [0, split_at) */
    const char *unit;        /* "bytes" or "tokens", for messages */
    int32_t run[RUN_MAX + 1]; /* one run of positions and its last target */
    int32_t *keys, *vals;    /* recall scratch [recall_pairs] */
    int32_t *order;          /* [recall_keys] */
    int64_t *where;          /* [recall_pairs] positions of the pairs */
};

/* ---- token files ------------------------------------------------------------- */

#define NPY_MAGIC "\x93NUMPY"
#define LLMC_HEADER_BYTES 1024 /* 256 int32 */
#define LLMC_MAGIC_U16 20240520u /* version 1: uint16 tokens (GPT-2) */
#define LLMC_MAGIC_U32 20240801u /* version 7: uint32 tokens (Llama 3) */

static uint32_t le32(const unsigned char *b)
{
    return (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
}

static int is_llmc_magic(uint32_t m) { return m == LLMC_MAGIC_U16 || m == LLMC_MAGIC_U32; }

/* The version an llm.c magic goes with. */
static uint32_t llmc_version(uint32_t magic) { return magic == LLMC_MAGIC_U16 ? 1 : 7; }

void ra_token_file_close(ra_token_file *f)
{
    if (f && f->fd >= 0) close(f->fd);
    if (f) f->fd = -1;
}

/* A byte file (data.source = file): every byte is a token. */
static ra_status open_bytes(ra_token_file *f, const char *path, const char *what)
{
    RA_TRY(ra_file_open_input(path, what, &f->fd, &f->count));
    f->offset = 0;
    f->esize = 1;
    f->is_signed = 0;
    snprintf(f->kind, sizeof f->kind, "bytes");
    return RA_OK;
}

static ra_status open_flat(ra_token_file *f, int64_t size, int esize)
{
    if (size % esize != 0)
        return RA_FAIL(RA_ERR_FORMAT,
                       "%s %s: %lld bytes is not a whole number of uint%d token ids (%d bytes each): the file is "
                       "truncated, or %s is not its element type",
                       f->what, f->path, (long long)size, 8 * esize, esize, f->dtype_opt);
    f->offset = 0;
    f->count = size / esize;
    f->esize = esize;
    snprintf(f->kind, sizeof f->kind, "uint%d", 8 * esize);
    return RA_OK;
}

#define TOKEN_DTYPES "token ids are uint16, uint32, int32 or int64 ('<u2', '<u4', '<i4', '<i8')"

/* A 1-D .npy of integers, through npy.h's header parser. */
static ra_status open_npy(ra_token_file *f)
{
    ra_npy n;
    ra_status st = ra_npy_open(&n, f->path);
    if (st != RA_OK) {
        char why[512];
        snprintf(why, sizeof why, "%s", ra_last_error());
        /* npy's list of the dtypes it reads has floats: token ids take its integers */
        char *list = strstr(why, "; supported: ");
        if (list) snprintf(list, sizeof why - (size_t)(list - why), "; " TOKEN_DTYPES);
        /* eval's --data FILE may be bytes that only start like a .npy: say how to read them as such */
        const int bytes = st == RA_ERR_FORMAT && strcmp(f->what, "--data") == 0;
        return RA_FAIL(st, "%s %s%s", f->what, why, /* npy's message names the file */
                       bytes ? "; --set data.source=file reads the file as raw bytes" : "");
    }
    char shape[128];
    ra_shape_str(shape, sizeof shape, n.ndim, n.shape);
    if (n.ndim != 1)
        st = RA_FAIL(RA_ERR_FORMAT, "%s %s: a .npy of token ids must be 1-D; it has shape %s (save arr.reshape(-1))",
                     f->what, f->path, shape);
    else if (n.dtype == RA_DT_F32 || n.dtype == RA_DT_F64)
        st = RA_FAIL(RA_ERR_FORMAT, "%s %s: dtype %s is not an integer type; " TOKEN_DTYPES, f->what, f->path,
                     ra_dtype_name(n.dtype));
    if (st != RA_OK) {
        ra_npy_close(&n);
        return st;
    }
    f->fd = n.fd; /* the file is ours now */
    n.fd = -1;
    f->offset = n.data_offset;
    f->count = n.count;
    f->esize = ra_dtype_size(n.dtype);
    f->is_signed = n.dtype == RA_DT_I32 || n.dtype == RA_DT_I64;
    snprintf(f->kind, sizeof f->kind, ".npy %s", ra_dtype_name(n.dtype));
    return RA_OK;
}

/* An llm.c shard: the header, then exactly header[2] tokens. */
static ra_status open_llmc(ra_token_file *f, int64_t size)
{
    unsigned char h[12] = { 0 };
    RA_TRY(ra_pread_full(f->fd, f->path, h, (size_t)(size < 12 ? size : 12), 0));
    const uint32_t magic = le32(h), version = le32(h + 4);
    const int64_t ntok = (int32_t)le32(h + 8);
    if (size < 4 || !is_llmc_magic(magic))
        return RA_FAIL(RA_ERR_FORMAT,
                       "%s %s: not an llm.c shard: header[0] is %u, expected the magic %u (uint16 tokens) or %u "
                       "(uint32 tokens)", f->what, f->path, magic, LLMC_MAGIC_U16, LLMC_MAGIC_U32);
    if (size < LLMC_HEADER_BYTES)
        return RA_FAIL(RA_ERR_FORMAT, "%s %s: truncated: %lld bytes, shorter than the llm.c header of %d bytes",
                       f->what, f->path, (long long)size, LLMC_HEADER_BYTES);
    if (version != llmc_version(magic))
        return RA_FAIL(RA_ERR_FORMAT, "%s %s: llm.c shard version %u (header[1]); with magic %u it must be %u",
                       f->what, f->path, version, magic, llmc_version(magic));
    const int esize = magic == LLMC_MAGIC_U16 ? 2 : 4;
    if (ntok <= 0)
        return RA_FAIL(RA_ERR_FORMAT, "%s %s: the llm.c header says %lld tokens (header[2]); the shard holds none",
                       f->what, f->path, (long long)ntok);
    if (size != LLMC_HEADER_BYTES + ntok * esize)
        return RA_FAIL(RA_ERR_FORMAT,
                       "%s %s: the llm.c header says %lld tokens (header[2]) of %d bytes, %lld bytes with the header, "
                       "but the file has %lld bytes: %s", f->what, f->path, (long long)ntok, esize,
                       (long long)(LLMC_HEADER_BYTES + ntok * esize), (long long)size,
                       size < LLMC_HEADER_BYTES + ntok * esize ? "truncated" : "bytes after the tokens");
    f->offset = LLMC_HEADER_BYTES;
    f->count = ntok;
    f->esize = esize;
    snprintf(f->kind, sizeof f->kind, "llm.c shard (uint%d)", 8 * esize);
    return RA_OK;
}

static ra_status open_tokens(ra_token_file *f, ra_token_dtype_id dtype)
{
    int64_t size;
    RA_TRY(ra_file_open_input(f->path, f->what, &f->fd, &size));
    if (size == 0) return RA_FAIL(RA_ERR_FORMAT, "%s %s: is empty (no token ids)", f->what, f->path);
    unsigned char h[8] = {0};
    RA_TRY(ra_pread_full(f->fd, f->path, h, (size_t)(size < 8 ? size : 8), 0));
    const int npy = size >= 6 && memcmp(h, NPY_MAGIC, 6) == 0;
    const int llmc = size >= 4 && is_llmc_magic(le32(h));
    /* a checkpoint's bytes read as ids fail only at the first id past the
     * vocabulary, maybe at the run's final evaluation: named at once */
    if (size >= 8 && ra_ckpt_is_one(f->path))
        return RA_FAIL(RA_ERR_FORMAT, "%s %s: is a ringattn checkpoint, not token ids", f->what, f->path);
    switch (dtype) {
    case RA_TOKEN_AUTO:
        if (npy) return open_npy(f);
        if (llmc) return open_llmc(f, size);
        return RA_FAIL(RA_ERR_FORMAT,
                       "%s %s: neither a .npy file nor an llm.c shard (no magic at byte 0); a flat file of token ids "
                       "needs its element type: set %s = uint16 (nanoGPT's train.bin) or uint32",
                       f->what, f->path, f->dtype_opt);
    case RA_TOKEN_U16:
    case RA_TOKEN_U32: {
        const char *w = dtype == RA_TOKEN_U16 ? "uint16" : "uint32";
        if (npy || (llmc && size >= 8 && le32(h + 4) == llmc_version(le32(h))))
            return RA_FAIL(RA_ERR_FORMAT,
                           "%s %s: starts with the %s magic, but %s = %s would read the header as token ids: "
                           "set %s = auto (or %s)", f->what, f->path, npy ? ".npy" : "llm.c", f->dtype_opt, w,
                           f->dtype_opt, npy ? "npy" : "llmc");
        return open_flat(f, size, dtype == RA_TOKEN_U16 ? 2 : 4);
    }
    case RA_TOKEN_NPY:
        if (!npy)
            return RA_FAIL(RA_ERR_FORMAT, "%s %s: %s = npy, but the file does not start with the .npy magic "
                           "\"\\x93NUMPY\"", f->what, f->path, f->dtype_opt);
        return open_npy(f);
    case RA_TOKEN_LLMC: return open_llmc(f, size);
    }
    return RA_FAIL(RA_ERR_ARG, "%s %s: unknown %s %d", f->what, f->path, f->dtype_opt, (int)dtype);
}

int ra_token_file_has_magic(const char *path)
{
    int fd;
    int64_t size;
    if (ra_file_open_input(path, "--data", &fd, &size) != RA_OK) return 0;
    unsigned char h[8] = { 0 };
    const int ok = size >= 6 && ra_pread_full(fd, path, h, 8 < size ? 8 : (size_t)size, 0) == RA_OK;
    close(fd);
    return ok && (memcmp(h, NPY_MAGIC, 6) == 0 || is_llmc_magic(le32(h)));
}

ra_status ra_token_file_open(ra_token_file *f, const char *path, const char *what, ra_token_dtype_id dtype)
{
    return ra_token_file_open_as(f, path, what, dtype, "data.dtype");
}

ra_status ra_token_file_open_as(ra_token_file *f, const char *path, const char *what, ra_token_dtype_id dtype,
                                const char *dtype_opt)
{
    memset(f, 0, sizeof *f);
    f->fd = -1;
    f->what = what;
    f->dtype_opt = dtype_opt;
    if (!path || strlen(path) >= sizeof f->path)
        return RA_FAIL(RA_ERR_ARG, "%s: the path is missing or longer than %zu bytes", what, sizeof f->path - 1);
    snprintf(f->path, sizeof f->path, "%s", path);
    ra_status st = open_tokens(f, dtype);
    if (st != RA_OK) ra_token_file_close(f);
    return st;
}

/* Element j of raw (little-endian, f's element type), widened. */
static int64_t element(const ra_token_file *f, const unsigned char *raw, int64_t j)
{
    const unsigned char *b = raw + j * f->esize;
    switch (f->esize) {
    case 1: return b[0];
    case 2: return (int64_t)b[0] | (int64_t)b[1] << 8;
    case 4: return f->is_signed ? (int64_t)(int32_t)le32(b) : (int64_t)le32(b);
    default: return (int64_t)((uint64_t)le32(b) | (uint64_t)le32(b + 4) << 32);
    }
}

static ra_status outside(const ra_token_file *f, int64_t v, int64_t at, int vocab)
{
    if (strcmp(f->kind, "bytes") == 0)
        return RA_FAIL(RA_ERR_ARG,
                       "%s %s: byte %d at offset %lld is outside the vocabulary [0, %d) of model.vocab = %d; use a "
                       "model.vocab above every byte of the file",
                       f->what, f->path, (int)v, (long long)at, vocab, vocab);
    const int data = strncmp(f->what, "data.", 5) == 0; /* a training file: the config can change */
    return RA_FAIL(RA_ERR_ARG,
                   "%s %s: token %lld at element %lld (%s, byte offset %lld) is outside the vocabulary [0, %d) of "
                   "model.vocab = %d%s",
                   f->what, f->path, (long long)v, (long long)at, f->kind, (long long)(f->offset + at * f->esize),
                   vocab, vocab, data ? "; set model.vocab to the tokenizer's vocabulary size" : "");
}

ra_status ra_token_file_read(const ra_token_file *f, int64_t first, int64_t n, int vocab, int32_t *dst)
{
    if (f->fd < 0 || first < 0 || n < 0 || first > f->count || n > f->count - first)
        return RA_FAIL(RA_ERR_INTERNAL, "%s %s: elements [%lld, %lld) are outside the file's %lld", f->what, f->path,
                       (long long)first, (long long)(first + n), (long long)f->count);
    unsigned char raw[16384];
    const int64_t per = (int64_t)sizeof raw / f->esize;
    for (int64_t done = 0; done < n;) {
        const int64_t k = n - done < per ? n - done : per;
        RA_TRY(ra_pread_full(f->fd, f->path, raw, (size_t)(k * f->esize), f->offset + (first + done) * f->esize));
        for (int64_t j = 0; j < k; j++) {
            const int64_t v = element(f, raw, j);
            if (v < 0 || v >= vocab) return outside(f, v, first + done + j, vocab);
            dst[done + j] = (int32_t)v;
        }
        done += k;
    }
    return RA_OK;
}

/* ---- opening the data ---------------------------------------------------------- */

/* Each part a split reads must hold one sequence and its target: the
 * training and held-out parts when something is held out (training,
 * evaluation on held-out data); the whole file when nothing is (eval --data
 * sets data.val_fraction = 0). Checked when the data is opened, so a short
 * part is named before step 1, not at the final evaluation. */
/* "1 byte is" or "5 bytes are" (d->unit is plural). */
static const char *count_is(const ra_data *d, int64_t n, char *buf, size_t cap)
{
    const size_t u = strlen(d->unit);
    if (n == 1) snprintf(buf, cap, "1 %.*s is", (int)(u > 0 ? u - 1 : 0), d->unit);
    else snprintf(buf, cap, "%lld %s are", (long long)n, d->unit);
    return buf;
}

static ra_status check_parts(const ra_data *d)
{
    char is[48];
    const ra_config *c = &d->cfg;
    const int64_t need = (int64_t)c->seq_len + 1;
    const ra_token_file *a = &d->file[0], *v = &d->file[1];
    if (a->count < need)
        return RA_FAIL(RA_ERR_ARG,
                       "%s %s: %s too few for one sequence of data.seq_len = %d (+1 for the target)",
                       a->what, a->path, count_is(d, a->count, is, sizeof is), c->seq_len);
    if (d->nfiles == 2) {
        if (v->count < need)
            return RA_FAIL(RA_ERR_ARG,
                           "%s %s: %s too few for one held-out sequence of data.seq_len = %d (+1 for the "
                           "target)", v->what, v->path, count_is(d, v->count, is, sizeof is), c->seq_len);
        return RA_OK;
    }
    if (c->val_fraction <= 0) return RA_OK;
    const int64_t train = d->split_at, held = a->count - d->split_at;
    if (train < need || held < need)
        return RA_FAIL(RA_ERR_ARG,
                       "%s %s: the %s part has %lld %s (data.val_fraction = %g of %lld %s); it needs "
                       "at least data.seq_len + 1 = %lld: use a longer file, a shorter data.seq_len, %s "
                       "data.val_fraction or a data.val_path",
                       a->what, a->path, train < need ? "training" : "held-out",
                       (long long)(train < need ? train : held), d->unit, (double)c->val_fraction,
                       (long long)a->count, d->unit, (long long)need, train < need ? "a smaller" : "a larger");
    return RA_OK;
}

static ra_status open_file(const ra_config *cfg, ra_token_file *f, const char *path, const char *what)
{
    if (cfg->source_id == RA_SOURCE_TOKENS) return ra_token_file_open(f, path, what, cfg->dtype_id);
    memset(f, 0, sizeof *f);
    f->fd = -1;
    f->what = what;
    snprintf(f->path, sizeof f->path, "%s", path);
    return open_bytes(f, path, what);
}

static ra_status open_files(ra_data *d, const char *path_what)
{
    const ra_config *cfg = &d->cfg;
    d->unit = cfg->source_id == RA_SOURCE_TOKENS ? "tokens" : "bytes";
    /* refuses FIFOs, directories and devices without blocking on them */
    RA_TRY(open_file(cfg, &d->file[0], cfg->path, path_what));
    d->nfiles = 1;
    if (cfg->val_path[0]) {
        if (ra_same_file(cfg->path, cfg->val_path))
            return RA_FAIL(RA_ERR_ARG,
                           "data.val_path %s is the same file as data.path %s: the held-out data must be another "
                           "file (or leave data.val_path empty to hold out the last data.val_fraction)",
                           cfg->val_path, cfg->path);
        RA_TRY(open_file(cfg, &d->file[1], cfg->val_path, "data.val_path"));
        d->nfiles = 2;
        d->split_at = d->file[0].count; /* all of data.path trains */
    } else {
        d->split_at = (int64_t)((double)d->file[0].count * (1.0 - cfg->val_fraction));
    }
    return check_parts(d);
}

ra_status ra_data_open(ra_data **out, const ra_config *cfg, const int32_t *pos, int64_t Lr)
{
    return ra_data_open_as(out, cfg, pos, Lr, "data.path");
}

ra_status ra_data_open_as(ra_data **out, const ra_config *cfg, const int32_t *pos, int64_t Lr, const char *path_what)
{
    *out = NULL;
    ra_data *d = calloc(1, sizeof *d);
    if (!d) return RA_FAIL(RA_ERR_NOMEM, "out of memory for the data reader");
    *out = d;
    d->cfg = *cfg;
    d->pos = pos;
    d->Lr = Lr;
    d->file[0].fd = d->file[1].fd = -1;
    if (cfg->source_id == RA_SOURCE_FILE || cfg->source_id == RA_SOURCE_TOKENS) return open_files(d, path_what);
    d->keys = calloc((size_t)cfg->recall_pairs * 2 + cfg->recall_keys, sizeof(int32_t));
    d->where = calloc((size_t)cfg->recall_pairs, sizeof(int64_t));
    if (!d->keys || !d->where) return RA_FAIL(RA_ERR_NOMEM, "out of memory for the recall task");
    d->vals = d->keys + cfg->recall_pairs;
    d->order = d->vals + cfg->recall_pairs;
    return RA_OK;
}

void ra_data_close(ra_data *d)
{
    if (!d) return;
    ra_token_file_close(&d->file[0]);
    ra_token_file_close(&d->file[1]);
    free(d->keys);
    free(d->where);
    free(d);
}

int64_t ra_data_windows(const ra_data *d)
{
    return d->nfiles ? (d->file[0].count - 1) / d->cfg.seq_len : 0;
}

int64_t ra_data_targets_per_seq(const ra_data *d)
{
    if (d->nfiles) return d->cfg.seq_len;
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

/* The elements a split reads: [lo, lo + len) of file f. */
typedef struct {
    const ra_token_file *f;
    int64_t lo, len;
} part;

static part part_of(const ra_data *d, int split)
{
    const ra_token_file *a = &d->file[0];
    if (split == RA_SPLIT_TRAIN) return (part){ a, 0, d->split_at };
    if (split == RA_SPLIT_VAL)
        return d->nfiles == 2 ? (part){ &d->file[1], 0, d->file[1].count }
                              : (part){ a, d->split_at, a->count - d->split_at };
    return (part){ a, 0, a->count };
}

/* The training and held-out parts must each hold a sequence and its target
 * (check_parts has made sure of it when something is held out). */
static ra_status check_split(const ra_data *d, int split)
{
    const part p = part_of(d, split);
    if (split != RA_SPLIT_ALL && p.len < d->cfg.seq_len + 1)
        return RA_FAIL(RA_ERR_ARG,
                       "%s %s: the %s part has %lld %s (of %lld, data.val_fraction = %g); it needs "
                       "at least data.seq_len + 1 = %d",
                       p.f->what, p.f->path, split == RA_SPLIT_TRAIN ? "training" : "held-out", (long long)p.len,
                       d->unit, (long long)p.f->count, d->cfg.val_fraction, d->cfg.seq_len + 1);
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
    const part p = part_of(d, split);
    int64_t off = split == RA_SPLIT_ALL ? (int64_t)idx * L
                                        : p.lo + (int64_t)(stream(d, split, idx) % (uint64_t)(p.len - L));
    int64_t i = 0;
    while (i < d->Lr) { /* runs of consecutive positions, one read each (+1 element: targets) */
        int64_t n = 1;
        while (i + n < d->Lr && d->pos[i + n] == d->pos[i] + n && n < RUN_MAX) n++;
        RA_TRY(ra_token_file_read(p.f, off + d->pos[i], n + 1, d->cfg.vocab, d->run));
        for (int64_t j = 0; j < n; j++) {
            tok[i + j] = d->run[j];
            tgt[i + j] = d->run[j + 1];
        }
        i += n;
    }
    return RA_OK;
}

ra_status ra_data_batch(ra_data *d, int split, uint64_t idx0, int B, int32_t *tok, int32_t *tgt)
{
    for (int b = 0; b < B; b++) {
        int32_t *t = tok + (size_t)b * d->Lr, *g = tgt + (size_t)b * d->Lr;
        if (d->nfiles) RA_TRY(file_sequence(d, split, idx0 + (uint64_t)b, t, g));
        else recall_sequence(d, stream(d, split, idx0 + (uint64_t)b), t, g);
    }
    return RA_OK;
}

/* ---- corpus statistics --------------------------------------------------------- */

#define SCAN_PIECE ((int64_t)1 << 20) /* centres per file read */

static ra_status scan_file(ra_data *d, int rank, int size, int64_t margin, ra_data_visit visit, void *ctx)
{
    const int64_t n = d->split_at, a = n * rank / size, e = n * (rank + 1) / size;
    int32_t *tok = malloc(sizeof(int32_t) * (size_t)(SCAN_PIECE + 2 * margin));
    ra_status st = tok ? RA_OK : RA_FAIL(RA_ERR_NOMEM, "out of memory for the corpus scan");
    for (int64_t c0 = a; st == RA_OK && c0 < e; c0 += SCAN_PIECE) {
        const int64_t c1 = c0 + SCAN_PIECE < e ? c0 + SCAN_PIECE : e;
        const int64_t r0 = c0 - margin > 0 ? c0 - margin : 0, r1 = c1 + margin < n ? c1 + margin : n;
        st = ra_token_file_read(&d->file[0], r0, r1 - r0, d->cfg.vocab, tok);
        if (st == RA_OK) st = visit(ctx, tok, r1 - r0, c0 - r0, c1 - r0);
    }
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
    if (d->nfiles) {
        RA_TRY(check_split(d, RA_SPLIT_TRAIN));
        return scan_file(d, rank, size, margin, visit, ctx);
    }
    return scan_recall(d, rank, size, nseq, visit, ctx);
}
