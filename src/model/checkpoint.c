/* checkpoint.c - one-file checkpoints (docs/design.md §8.3): atomic save, verified load.
 *
 * File format, version 1. All integers little-endian; offsets in bytes.
 *
 *     0   magic       8 bytes  "RACKPT\r\n"
 *     8   version     u32      1
 *     12  flags       u32      0 (no flags defined; others are refused)
 *     16  total_len   u64      size of the whole file, checksum included
 *     24  config_len  u32      then config_len bytes of config text (no NUL)
 *     ..  state       7 x u64  step, seed, data_pos, extra[0..3] (extra[0]:
 *                              train's history id, extra[1]: data.path's
 *                              size + 1, extra[2]: a hash of its bytes;
 *                              0 when unknown)
 *     ..  n_tensors   u32
 *     then n_tensors times:
 *         name_len    u16      1..255
 *         name        name_len bytes (no terminator)
 *         count       u64      number of float32 values
 *         padding     zero bytes up to the next multiple of 64 (file offset)
 *         values      count x float32 (IEEE 754, little-endian)
 *     total_len-8 checksum u64 CRC-64/XZ of bytes [0, total_len - 8)
 *
 * The checksum is CRC-64/XZ (a.k.a. CRC-64/GO-ECMA): ECMA-182 polynomial
 * 0x42F0E1EBA9EA3693 in reflected form 0xC96C5795D7870F42, initial value
 * and final xor all ones; its check value for "123456789" is
 * 0x995DC9BBDF1939FA. It detects every burst error up to 64 bits and runs
 * several times faster than byte-wise FNV-1a with slicing-by-8, which
 * matters for checkpoints of hundreds of MB.
 *
 * Decisions:
 * - Save streams the file through one fixed 1 MiB buffer, checksumming as
 *   it goes; total_len is computed from the arguments first, so the header
 *   is written once. The temporary file, its creation (a stale one, even a
 *   symlink, is removed and never followed), the rename and the directory
 *   fsync are fileio.h's, with its one policy for every file ringattn
 *   writes. Saving to one path from two processes at once is not supported.
 * - Load opens with ra_file_open_input: a FIFO or directory given as a
 *   checkpoint is refused by name, never read or waited on.
 * - Load checks, in order: magic, version, flags, total_len against the real
 *   file size, the checksum over the whole file (pass 1), the structure
 *   (every length bounded by total_len, overflow-safe, padding zero, no
 *   stray bytes before the checksum), then the tensor list against the
 *   caller's. Only then (pass 2) are values read into the caller's tensors
 *   and the state and config handed out. An I/O error during pass 2 itself
 *   (the disk failing between passes) can still leave tensors partly
 *   written; the error says so.
 * - The only allocations on load are the fixed I/O buffer and the config
 *   text, whose length is bounded by total_len, itself equal to the real
 *   file size.
 * - Error codes: RA_ERR_IO for system calls, RA_ERR_FORMAT for files that
 *   are not valid checkpoints, RA_ERR_SHAPE when a valid checkpoint does not
 *   match the caller's tensor list, RA_ERR_ARG for bad arguments. */
#include "ringattn/checkpoint.h"

#include "ringattn/fileio.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

/* Values are moved without byte swaps. */
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "checkpoint.c assumes a little-endian host"
#endif
_Static_assert(sizeof(off_t) >= 8, "build with -D_FILE_OFFSET_BITS=64");
_Static_assert(sizeof(float) == 4, "float must be IEEE 754 binary32");

#define CK_MAGIC "RACKPT\r\n"
#define CK_MAGIC_LEN 8
#define CK_VERSION 1u
#define CK_ALIGN 64u
#define CK_MAX_NAME 255u
#define CK_HEAD 28u                   /* magic, version, flags, total_len, config_len */
#define CK_STATE_WORDS 7u
#define CK_STATE_BYTES (CK_STATE_WORDS * 8u)
#define CK_SUM_BYTES 8u
#define CK_MIN_FILE (CK_HEAD + CK_STATE_BYTES + 4u + CK_SUM_BYTES)
#define CK_BUF_BYTES (1u << 20)
#define CK_PATH_MAX 4096
#define CRC64_POLY 0xC96C5795D7870F42ull /* ECMA-182, reflected */

/* ---- CRC-64/XZ, slicing-by-8 ----------------------------------------- */

typedef struct {
    uint64_t t[8][256];
} crc_table;

static void crc_init(crc_table *c)
{
    for (unsigned i = 0; i < 256; i++) {
        uint64_t r = i;
        for (int b = 0; b < 8; b++) r = (r & 1) ? (r >> 1) ^ CRC64_POLY : r >> 1;
        c->t[0][i] = r;
    }
    for (unsigned i = 0; i < 256; i++)
        for (int k = 1; k < 8; k++) c->t[k][i] = (c->t[k - 1][i] >> 8) ^ c->t[0][c->t[k - 1][i] & 0xFF];
}

/* Feed n bytes into the running register (start at ~0, finish with ~reg). */
static uint64_t crc_update(const crc_table *c, uint64_t reg, const void *data, size_t n)
{
    const unsigned char *p = data;
    while (n >= 8) {
        uint64_t v;
        memcpy(&v, p, 8);
        v ^= reg;
        reg = c->t[7][v & 0xFF] ^ c->t[6][(v >> 8) & 0xFF] ^ c->t[5][(v >> 16) & 0xFF] ^
              c->t[4][(v >> 24) & 0xFF] ^ c->t[3][(v >> 32) & 0xFF] ^ c->t[2][(v >> 40) & 0xFF] ^
              c->t[1][(v >> 48) & 0xFF] ^ c->t[0][v >> 56];
        p += 8;
        n -= 8;
    }
    while (n--) reg = c->t[0][(reg ^ *p++) & 0xFF] ^ (reg >> 8);
    return reg;
}

/* One fixed-size allocation per save or load: the table and the I/O buffer. */
typedef struct {
    crc_table crc;
    unsigned char buf[CK_BUF_BYTES];
} scratch;

static ra_status scratch_new(const char *path, scratch **out)
{
    *out = malloc(sizeof **out);
    if (!*out) return RA_FAIL(RA_ERR_NOMEM, "%s: cannot allocate the %zu-byte checkpoint I/O buffer", path,
                              sizeof **out);
    crc_init(&(*out)->crc);
    return RA_OK;
}

/* ---- little-endian fields -------------------------------------------- */

static void put_u16(unsigned char *p, uint16_t v)
{
    p[0] = (unsigned char)v;
    p[1] = (unsigned char)(v >> 8);
}

static void put_u32(unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++) p[i] = (unsigned char)(v >> (8 * i));
}

static void put_u64(unsigned char *p, uint64_t v)
{
    for (int i = 0; i < 8; i++) p[i] = (unsigned char)(v >> (8 * i));
}

static uint16_t get_u16(const unsigned char *p) { return (uint16_t)(p[0] | p[1] << 8); }

static uint32_t get_u32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t get_u64(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = v << 8 | p[i];
    return v;
}

static uint64_t align_up(uint64_t off) { return (off + CK_ALIGN - 1) / CK_ALIGN * CK_ALIGN; }

static void state_words(const ra_ckpt_state *s, uint64_t w[CK_STATE_WORDS])
{
    w[0] = s->step;
    w[1] = s->seed;
    w[2] = s->data_pos;
    for (int i = 0; i < 4; i++) w[3 + i] = s->extra[i];
}

/* A name read from a file, made safe to print. */
static const char *printable(char *out, const char *in, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)in[i];
        out[i] = ch >= 0x20 && ch < 0x7F ? (char)ch : '?';
    }
    out[n] = '\0';
    return out;
}

/* ---- save ------------------------------------------------------------ */

/* Buffered, checksummed sequential writer. */
typedef struct {
    int fd;
    const char *path; /* the .tmp name */
    scratch *s;
    size_t len;       /* bytes waiting in s->buf */
    uint64_t off;     /* file offset of s->buf[0] */
    uint64_t reg;     /* CRC register over everything put so far */
    ra_ckpt_source src; /* pulls tensors without data (ra_ckpt_save_stream) */
    void *ctx;
    float *chunk;     /* [CK_BUF_BYTES / 4] what src fills */
    uint64_t synced;  /* file offset up to which fdatasync has run */
} writer;

/* fdatasync every CK_SYNC_BYTES while writing: the final fsync then flushes
 * at most that much, so no single call outlasts the watchdog's answer
 * window (a rank inside fsync cannot answer "working"; 64 MiB takes under a
 * second even on a 100 MB/s disk). */
#define CK_SYNC_BYTES (64u << 20)

static ra_status w_flush(writer *w)
{
    if (w->len == 0) return RA_OK;
    RA_TRY(ra_pwrite_full(w->fd, w->path, w->s->buf, w->len, w->off));
    w->off += w->len;
    w->len = 0;
    if (w->off - w->synced >= CK_SYNC_BYTES) {
        if (fdatasync(w->fd) != 0)
            return RA_FAIL(RA_ERR_IO, "%s: fdatasync failed: %s", w->path, strerror(errno));
        w->synced = w->off;
    }
    /* the other ranks may wait for this write longer than run.timeout (a
     * 60 GB model at 500 MB/s): tell any that ask that rank 0 works */
    ra_file_progress();
    return RA_OK;
}

static ra_status w_put_raw(writer *w, const void *data, size_t n)
{
    const unsigned char *p = data;
    while (n > 0) {
        size_t k = CK_BUF_BYTES - w->len;
        if (k > n) k = n;
        memcpy(w->s->buf + w->len, p, k);
        w->len += k;
        p += k;
        n -= k;
        if (w->len == CK_BUF_BYTES) RA_TRY(w_flush(w));
    }
    return RA_OK;
}

static ra_status w_put(writer *w, const void *data, size_t n)
{
    w->reg = crc_update(&w->s->crc, w->reg, data, n);
    return w_put_raw(w, data, n);
}

static uint64_t w_pos(const writer *w) { return w->off + w->len; }

/* Argument checks; computes the exact file size. */
static ra_status check_save_args(const char *path, const char *config_text, const ra_ckpt_state *state,
                                 const ra_ckpt_tensor *tensors, int n, int streamed, uint64_t *total)
{
    if (!path || !path[0]) return RA_FAIL(RA_ERR_ARG, "empty checkpoint path");
    size_t plen = strlen(path);
    if (plen + sizeof RA_TMP_SUFFIX > CK_PATH_MAX)
        return RA_FAIL(RA_ERR_ARG, "%.100s...: checkpoint path longer than %zu bytes", path,
                       CK_PATH_MAX - sizeof RA_TMP_SUFFIX);
    if (path[plen - 1] == '/')
        return RA_FAIL(RA_ERR_ARG, "%s: checkpoint path names a directory; expected a file name", path);
    if (!state) return RA_FAIL(RA_ERR_ARG, "%s: NULL state", path);
    if (state->step > RA_CKPT_MAX_STEP)
        return RA_FAIL(RA_ERR_ARG, "%s: step %" PRIu64 " is beyond any run (at most %d)", path, state->step,
                       RA_CKPT_MAX_STEP);
    if (n < 0) return RA_FAIL(RA_ERR_ARG, "%s: tensor count %d, expected >= 0", path, n);
    if (n > 0 && !tensors) return RA_FAIL(RA_ERR_ARG, "%s: NULL tensor list for %d tensors", path, n);
    size_t clen = config_text ? strlen(config_text) : 0;
    if (clen > UINT32_MAX)
        return RA_FAIL(RA_ERR_ARG, "%s: config text of %zu bytes exceeds the %" PRIu32 "-byte limit", path, clen,
                       UINT32_MAX);
    uint64_t off = CK_HEAD + (uint64_t)clen + CK_STATE_BYTES + 4;
    for (int i = 0; i < n; i++) {
        const ra_ckpt_tensor *t = &tensors[i];
        if (!t->name || !t->name[0]) return RA_FAIL(RA_ERR_ARG, "%s: tensor %d has no name", path, i);
        size_t nl = strlen(t->name);
        if (nl > CK_MAX_NAME)
            return RA_FAIL(RA_ERR_ARG, "%s: tensor %d name '%.40s...' is %zu bytes long, at most %u allowed", path, i,
                           t->name, nl, CK_MAX_NAME);
        if (t->count > 0 && !t->data && !streamed)
            return RA_FAIL(RA_ERR_ARG, "%s: tensor '%s' has NULL data for %" PRIu64 " values", path, t->name,
                           t->count);
        off = align_up(off + 2 + nl + 8);
        if (off > (uint64_t)INT64_MAX - CK_SUM_BYTES || t->count > ((uint64_t)INT64_MAX - CK_SUM_BYTES - off) / 4)
            return RA_FAIL(RA_ERR_ARG, "%s: tensor '%s' has %" PRIu64 " values, too many for one file", path,
                           t->name, t->count);
        off += t->count * 4;
    }
    *total = off + CK_SUM_BYTES;
    return RA_OK;
}

static ra_status write_content(writer *w, const char *config_text, const ra_ckpt_state *state,
                               const ra_ckpt_tensor *tensors, int n, uint64_t total)
{
    static const unsigned char zeros[CK_ALIGN];
    size_t clen = config_text ? strlen(config_text) : 0;
    unsigned char head[CK_HEAD];
    memcpy(head, CK_MAGIC, CK_MAGIC_LEN);
    put_u32(head + 8, CK_VERSION);
    put_u32(head + 12, 0);
    put_u64(head + 16, total);
    put_u32(head + 24, (uint32_t)clen);
    RA_TRY(w_put(w, head, sizeof head));
    RA_TRY(w_put(w, config_text ? config_text : "", clen));

    uint64_t words[CK_STATE_WORDS];
    unsigned char st[CK_STATE_BYTES + 4];
    state_words(state, words);
    for (unsigned i = 0; i < CK_STATE_WORDS; i++) put_u64(st + 8 * i, words[i]);
    put_u32(st + CK_STATE_BYTES, (uint32_t)n);
    RA_TRY(w_put(w, st, sizeof st));

    for (int i = 0; i < n; i++) {
        const ra_ckpt_tensor *t = &tensors[i];
        size_t nl = strlen(t->name);
        unsigned char th[2 + CK_MAX_NAME + 8];
        put_u16(th, (uint16_t)nl);
        memcpy(th + 2, t->name, nl);
        put_u64(th + 2 + nl, t->count);
        RA_TRY(w_put(w, th, 2 + nl + 8));
        uint64_t pad = align_up(w_pos(w)) - w_pos(w);
        RA_TRY(w_put(w, zeros, (size_t)pad));
        /* in slices, so the size_t product cannot overflow on any host */
        const float *src = t->data;
        for (uint64_t done = 0; done < t->count;) {
            uint64_t k = t->count - done;
            if (k > CK_BUF_BYTES / 4) k = CK_BUF_BYTES / 4;
            if (!src) RA_TRY(w->src(w->ctx, i, done, w->chunk, (size_t)k)); /* streamed */
            RA_TRY(w_put(w, src ? src + done : w->chunk, (size_t)k * 4));
            done += k;
        }
    }
    unsigned char sum[CK_SUM_BYTES];
    put_u64(sum, ~w->reg);
    RA_TRY(w_put_raw(w, sum, sizeof sum));
    RA_TRY(w_flush(w));
    if (w->off != total)
        return RA_FAIL(RA_ERR_INTERNAL, "%s: wrote %" PRIu64 " bytes, the layout says %" PRIu64, w->path, w->off,
                       total);
    return RA_OK;
}

/* An open failure for the .tmp file; a missing directory is named. */
ra_status ra_ckpt_save_stream(const char *path, const char *config_text, const ra_ckpt_state *state,
                              const ra_ckpt_tensor *tensors, int n, ra_ckpt_source src, void *ctx)
{
    uint64_t total = 0;
    RA_TRY(check_save_args(path, config_text, state, tensors, n, src != NULL, &total));
    char tmp[CK_PATH_MAX];
    ra_tmp_name(tmp, sizeof tmp, path);
    scratch *s = NULL;
    RA_TRY(scratch_new(tmp, &s));
    float *chunk = NULL;
    if (src && !(chunk = malloc(CK_BUF_BYTES))) {
        free(s);
        return RA_FAIL(RA_ERR_NOMEM, "%s: cannot allocate the %u-byte chunk of streamed values", tmp, CK_BUF_BYTES);
    }
    int fd;
    ra_status st = ra_atomic_create(path, &fd);
    if (st != RA_OK) {
        free(s);
        free(chunk);
        return st;
    }
    writer w = {fd, tmp, s, 0, 0, UINT64_MAX, src, ctx, chunk, 0};
    st = write_content(&w, config_text, state, tensors, n, total);
    free(s);
    free(chunk);
    return ra_atomic_finish(path, fd, st); /* sync, rename, fsync the directory; or remove the .tmp */
}

ra_status ra_ckpt_save(const char *path, const char *config_text, const ra_ckpt_state *state,
                       const ra_ckpt_tensor *tensors, int n)
{
    return ra_ckpt_save_stream(path, config_text, state, tensors, n, NULL, NULL);
}

/* ---- load ------------------------------------------------------------ */

typedef struct {
    int fd;
    const char *path;
    uint64_t total;        /* total_len, equal to the file size */
    uint64_t end;          /* total - 8: where the checksum starts */
    uint32_t config_len;   /* config text at CK_HEAD */
    uint64_t state[CK_STATE_WORDS];
    uint32_t n_tensors;
    uint64_t tensors_off;  /* first tensor entry */
    uint64_t sum;          /* the stored CRC-64, once verified */
} ckfile;

typedef struct {
    char name[CK_MAX_NAME + 1]; /* as stored, NUL added */
    size_t name_len;
    uint64_t count;
    uint64_t data_off;
} entry;

int ra_ckpt_is_one(const char *path)
{
    struct stat st; /* only a regular file is opened: no device or FIFO is touched */
    if (stat(path, &st) != 0 || !S_ISREG(st.st_mode)) return 0;
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC); /* O_NONBLOCK: swapped for a FIFO since */
    if (fd < 0) return 0;
    char h[CK_MAGIC_LEN];
    int one = fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && read(fd, h, sizeof h) == (ssize_t)sizeof h &&
              memcmp(h, CK_MAGIC, CK_MAGIC_LEN) == 0;
    close(fd);
    return one;
}

/* Magic, version, flags and total_len against the real size. */
static ra_status check_head(ckfile *f, uint64_t size)
{
    unsigned char h[CK_HEAD] = {0};
    size_t have = size < CK_HEAD ? (size_t)size : CK_HEAD;
    RA_TRY(ra_pread_full(f->fd, f->path, h, have, 0));
    size_t m = have < CK_MAGIC_LEN ? have : CK_MAGIC_LEN;
    if (memcmp(h, CK_MAGIC, m) != 0)
        return RA_FAIL(RA_ERR_FORMAT, "%s: not a ringattn checkpoint (bad magic; expected \"RACKPT\\r\\n\" at byte 0)",
                       f->path);
    if (have < 12)
        return RA_FAIL(RA_ERR_FORMAT, "%s: truncated: file has %" PRIu64 " bytes, a checkpoint has at least %u",
                       f->path, size, CK_MIN_FILE);
    uint32_t version = get_u32(h + 8);
    if (version != CK_VERSION)
        return RA_FAIL(RA_ERR_FORMAT, "%s: unsupported version %" PRIu32 ", this build reads %u", f->path, version,
                       CK_VERSION);
    if (have < CK_HEAD)
        return RA_FAIL(RA_ERR_FORMAT, "%s: truncated: file has %" PRIu64 " bytes, a checkpoint has at least %u",
                       f->path, size, CK_MIN_FILE);
    uint32_t flags = get_u32(h + 12);
    if (flags != 0)
        return RA_FAIL(RA_ERR_FORMAT, "%s: unsupported flags 0x%08" PRIx32 " (version %u defines none)", f->path,
                       flags, CK_VERSION);
    f->total = get_u64(h + 16);
    if (f->total > size)
        return RA_FAIL(RA_ERR_FORMAT, "%s: truncated: header says %" PRIu64 " bytes, file has %" PRIu64, f->path,
                       f->total, size);
    if (f->total < size)
        return RA_FAIL(RA_ERR_FORMAT, "%s: length mismatch: header says %" PRIu64 " bytes, file has %" PRIu64
                       " (bytes appended after the checksum?)", f->path, f->total, size);
    if (f->total < CK_MIN_FILE)
        return RA_FAIL(RA_ERR_FORMAT, "%s: bad structure: header says %" PRIu64 " bytes, a checkpoint has at least %u",
                       f->path, f->total, CK_MIN_FILE);
    f->end = f->total - CK_SUM_BYTES;
    f->config_len = get_u32(h + 24);
    return RA_OK;
}

/* Pass 1: CRC of [0, end) against the stored value. */
static ra_status check_sum(ckfile *f, scratch *s)
{
    uint64_t reg = UINT64_MAX;
    for (uint64_t off = 0; off < f->end;) {
        size_t k = f->end - off < CK_BUF_BYTES ? (size_t)(f->end - off) : CK_BUF_BYTES;
        RA_TRY(ra_pread_full(f->fd, f->path, s->buf, k, off));
        reg = crc_update(&s->crc, reg, s->buf, k);
        off += k;
    }
    unsigned char b[CK_SUM_BYTES];
    RA_TRY(ra_pread_full(f->fd, f->path, b, sizeof b, f->end));
    uint64_t stored = get_u64(b), got = ~reg;
    if (stored != got)
        return RA_FAIL(RA_ERR_FORMAT, "%s: checksum mismatch: the file is corrupt (stored CRC-64 %016" PRIx64
                       ", computed %016" PRIx64 ")", f->path, stored, got);
    f->sum = stored;
    return RA_OK;
}

/* Read the config text (bounded by end) into a new string; no NUL inside. */
static ra_status read_config(ckfile *f, char **out)
{
    uint64_t after = (uint64_t)CK_HEAD + f->config_len + CK_STATE_BYTES + 4;
    if (after > f->end)
        return RA_FAIL(RA_ERR_FORMAT, "%s: bad structure: config length %" PRIu32 " runs past the end of the data (%"
                       PRIu64 " bytes)", f->path, f->config_len, f->end);
    char *text = malloc((size_t)f->config_len + 1);
    if (!text)
        return RA_FAIL(RA_ERR_NOMEM, "%s: cannot allocate %" PRIu32 " bytes for the config text", f->path,
                       f->config_len);
    ra_status st = ra_pread_full(f->fd, f->path, text, f->config_len, CK_HEAD);
    if (st == RA_OK && memchr(text, '\0', f->config_len))
        st = RA_FAIL(RA_ERR_FORMAT, "%s: bad structure: config text contains a NUL byte", f->path);
    if (st != RA_OK) {
        free(text);
        return st;
    }
    text[f->config_len] = '\0';
    unsigned char st_buf[CK_STATE_BYTES + 4];
    uint64_t at = (uint64_t)CK_HEAD + f->config_len;
    st = ra_pread_full(f->fd, f->path, st_buf, sizeof st_buf, at);
    if (st != RA_OK) {
        free(text);
        return st;
    }
    for (unsigned i = 0; i < CK_STATE_WORDS; i++) f->state[i] = get_u64(st_buf + 8 * i);
    f->n_tensors = get_u32(st_buf + CK_STATE_BYTES);
    f->tensors_off = after;
    *out = text;
    return RA_OK;
}

/* Parse the entry of tensor i at *off, bounds-checked against end; on
 * success *off is the offset just past its values. */
static ra_status next_entry(const ckfile *f, uint64_t *off, uint32_t i, entry *e)
{
    uint64_t at = *off;
    unsigned char b[CK_ALIGN];
    if (f->end - at < 2)
        return RA_FAIL(RA_ERR_FORMAT, "%s: bad structure: tensor %" PRIu32 " of %" PRIu32
                       " starts at byte %" PRIu64 ", past the end of the data (%" PRIu64 " bytes)",
                       f->path, i, f->n_tensors, at, f->end);
    RA_TRY(ra_pread_full(f->fd, f->path, b, 2, at));
    e->name_len = get_u16(b);
    if (e->name_len < 1 || e->name_len > CK_MAX_NAME)
        return RA_FAIL(RA_ERR_FORMAT, "%s: bad structure: tensor %" PRIu32 " name length %zu at byte %" PRIu64
                       ", expected 1..%u", f->path, i, e->name_len, at, CK_MAX_NAME);
    if (f->end - at - 2 < e->name_len + 8)
        return RA_FAIL(RA_ERR_FORMAT, "%s: bad structure: tensor %" PRIu32 " header at byte %" PRIu64
                       " runs past the end of the data (%" PRIu64 " bytes)", f->path, i, at, f->end);
    RA_TRY(ra_pread_full(f->fd, f->path, e->name, e->name_len, at + 2));
    e->name[e->name_len] = '\0';
    RA_TRY(ra_pread_full(f->fd, f->path, b, 8, at + 2 + e->name_len));
    e->count = get_u64(b);
    uint64_t hend = at + 2 + e->name_len + 8;
    e->data_off = align_up(hend);
    char shown[CK_MAX_NAME + 1];
    if (e->data_off > f->end || e->count > (f->end - e->data_off) / 4)
        return RA_FAIL(RA_ERR_FORMAT, "%s: bad structure: tensor '%s' claims %" PRIu64 " values at byte %" PRIu64
                       ", past the end of the data (%" PRIu64 " bytes)", f->path,
                       printable(shown, e->name, e->name_len), e->count, e->data_off, f->end);
    size_t pad = (size_t)(e->data_off - hend);
    RA_TRY(ra_pread_full(f->fd, f->path, b, pad, hend));
    for (size_t k = 0; k < pad; k++)
        if (b[k] != 0)
            return RA_FAIL(RA_ERR_FORMAT, "%s: bad structure: nonzero padding byte 0x%02x at byte %" PRIu64
                           " before tensor '%s'", f->path, b[k], hend + k, printable(shown, e->name, e->name_len));
    *off = e->data_off + e->count * 4;
    return RA_OK;
}

long ra_ckpt_step_of(const char *name)
{
    int n;
    char back[64];
    if (sscanf(name, "step-%d.ckpt", &n) != 1 || n < 0) return -1;
    snprintf(back, sizeof back, "step-%08d.ckpt", n);
    return strcmp(back, name) == 0 ? n : -1;
}

long ra_ckpt_newest_step(const char *dir, char *name, size_t cap)
{
    long best = -1;
    if (cap) name[0] = '\0';
    DIR *d = opendir(dir);
    if (!d) return -1;
    for (struct dirent *e; (e = readdir(d)) != NULL;) {
        const long n = ra_ckpt_step_of(e->d_name);
        if (n > best) best = n, snprintf(name, cap, "%s", e->d_name);
    }
    closedir(d);
    return best;
}

/* A DIR/last.ckpt that cannot be opened (missing, or a link to a removed
 * file: a directory copied without its link, say) while DIR holds
 * step-N.ckpt files: the message names the newest, for the user to give. */
static ra_status name_newest_step(const char *path, ra_status st)
{
    const char *slash = strrchr(path, '/');
    if (strcmp(slash ? slash + 1 : path, "last.ckpt") != 0) return st;
    char dir[CK_PATH_MAX], name[300];
    ra_dir_of(path, dir, sizeof dir);
    if (ra_ckpt_newest_step(dir, name, sizeof name) < 0) return st;
    char why[RA_ERROR_MAX];
    snprintf(why, sizeof why, "%s", ra_last_error());
    return RA_FAIL(st, "%s; %s holds %s (the newest step): give that file", why, dir, name);
}

/* Every check short of the caller's tensor list; on success the file stays
 * open in f->fd and *config holds the config text. */
static ra_status verify(const char *path, ckfile *f, char **config)
{
    memset(f, 0, sizeof *f);
    f->path = path;
    *config = NULL;
    if (!path || !path[0]) return RA_FAIL(RA_ERR_ARG, "empty checkpoint path");
    int64_t size = 0;
    ra_status st = ra_file_open_input(path, "checkpoint", &f->fd, &size);
    if (st != RA_OK) return name_newest_step(path, st);
    st = check_head(f, (uint64_t)size);
    if (st == RA_OK) {
        scratch *s = NULL;
        st = scratch_new(path, &s);
        if (st == RA_OK) st = check_sum(f, s);
        free(s);
    }
    if (st == RA_OK) st = read_config(f, config);
    uint64_t off = f->tensors_off;
    entry e;
    for (uint32_t i = 0; st == RA_OK && i < f->n_tensors; i++) st = next_entry(f, &off, i, &e);
    if (st == RA_OK && off != f->end)
        st = RA_FAIL(RA_ERR_FORMAT, "%s: bad structure: %" PRIu64 " stray bytes between the last of %" PRIu32
                     " tensors and the checksum", path, f->end - off, f->n_tensors);
    if (st == RA_OK && f->state[0] > RA_CKPT_MAX_STEP) /* sound structure under a good checksum: written so */
        st = RA_FAIL(RA_ERR_FORMAT, "%s: the checkpoint's step %" PRIu64 " is beyond any run (train.steps is at "
                     "most %d): the file was changed", path, f->state[0], RA_CKPT_MAX_STEP);
    if (st != RA_OK) {
        free(*config);
        *config = NULL;
        close(f->fd);
        f->fd = -1;
    }
    return st;
}

static void hand_out(const ckfile *f, char *config, char **config_text, ra_ckpt_state *state)
{
    if (state) {
        state->step = f->state[0];
        state->seed = f->state[1];
        state->data_pos = f->state[2];
        for (int i = 0; i < 4; i++) state->extra[i] = f->state[3 + i];
    }
    if (config_text) *config_text = config;
    else free(config);
}

/* The file's tensor list against the caller's: same n, names, counts, order. */
static ra_status match_tensors(const ckfile *f, const ra_ckpt_tensor *tensors, int n)
{
    uint64_t off = f->tensors_off;
    entry e;
    char shown[CK_MAX_NAME + 1];
    uint32_t common = (uint64_t)n < f->n_tensors ? (uint32_t)n : f->n_tensors;
    for (uint32_t i = 0; i < common; i++) {
        const ra_ckpt_tensor *t = &tensors[i];
        RA_TRY(next_entry(f, &off, i, &e));
        if (strlen(t->name) != e.name_len || memcmp(t->name, e.name, e.name_len) != 0)
            return RA_FAIL(RA_ERR_SHAPE, "%s: tensor %" PRIu32 " is '%s' in the file, the model needs '%s' there: "
                           "was it written for another model or optimizer?", f->path, i,
                           printable(shown, e.name, e.name_len), t->name);
        if (e.count != t->count)
            return RA_FAIL(RA_ERR_SHAPE, "%s: tensor '%s' has %" PRIu64 " values, the model needs %" PRIu64
                           ": was it written for another config?", f->path, t->name, e.count, t->count);
    }
    if ((uint64_t)n > f->n_tensors)
        return RA_FAIL(RA_ERR_SHAPE, "%s: file has %" PRIu32 " tensors, the model needs %d: tensor '%s' is missing",
                       f->path, f->n_tensors, n, tensors[common].name);
    if ((uint64_t)n < f->n_tensors) {
        RA_TRY(next_entry(f, &off, common, &e));
        return RA_FAIL(RA_ERR_SHAPE, "%s: file has %" PRIu32 " tensors, the model needs %d: unexpected tensor '%s'",
                       f->path, f->n_tensors, n, printable(shown, e.name, e.name_len));
    }
    return RA_OK;
}

/* Pass 2: values [lo, hi) of each tensor (ranges NULL: all) into the caller's tensors. */
static ra_status read_values(const ckfile *f, const ra_ckpt_tensor *tensors, const ra_ckpt_range *ranges, int n)
{
    uint64_t off = f->tensors_off;
    entry e;
    for (int i = 0; i < n; i++) {
        RA_TRY(next_entry(f, &off, (uint32_t)i, &e));
        float *dst = tensors[i].data;
        const uint64_t lo = ranges ? ranges[i].lo : 0, len = (ranges ? ranges[i].hi : e.count) - lo;
        for (uint64_t done = 0; done < len;) {
            uint64_t k = len - done;
            if (k > ((uint64_t)1 << 28)) k = (uint64_t)1 << 28; /* 1 GiB per call */
            ra_status st = ra_pread_full(f->fd, f->path, dst + done, (size_t)k * 4, e.data_off + (lo + done) * 4);
            if (st != RA_OK) {
                char why[512];
                snprintf(why, sizeof why, "%s", ra_last_error());
                return RA_FAIL(st, "%s (while loading tensor '%s'; the caller's tensors may be partly overwritten)",
                               why, tensors[i].name);
            }
            done += k;
        }
    }
    return RA_OK;
}

static ra_status check_load_args(const char *path, const ra_ckpt_tensor *tensors, const ra_ckpt_range *ranges,
                                 int n)
{
    const char *p = path && path[0] ? path : "(no path)";
    if (n < 0) return RA_FAIL(RA_ERR_ARG, "%s: tensor count %d, expected >= 0", p, n);
    if (n > 0 && !tensors) return RA_FAIL(RA_ERR_ARG, "%s: NULL tensor list for %d tensors", p, n);
    for (int i = 0; i < n; i++) {
        if (!tensors[i].name) return RA_FAIL(RA_ERR_ARG, "%s: tensor %d has no name", p, i);
        if (ranges && (ranges[i].lo > ranges[i].hi || ranges[i].hi > tensors[i].count))
            return RA_FAIL(RA_ERR_ARG, "%s: tensor '%s': range [%" PRIu64 ", %" PRIu64 ") is not inside its %" PRIu64
                           " values", p, tensors[i].name, ranges[i].lo, ranges[i].hi, tensors[i].count);
        if (tensors[i].count > 0 && !tensors[i].data)
            return RA_FAIL(RA_ERR_ARG, "%s: tensor '%s' has NULL data for %" PRIu64 " values", p, tensors[i].name,
                           tensors[i].count);
    }
    return RA_OK;
}

ra_status ra_ckpt_load(const char *path, char **config_text, ra_ckpt_state *state,
                       const ra_ckpt_tensor *tensors, int n)
{
    return ra_ckpt_load_range(path, config_text, state, tensors, NULL, n);
}

ra_status ra_ckpt_load_range(const char *path, char **config_text, ra_ckpt_state *state,
                             const ra_ckpt_tensor *tensors, const ra_ckpt_range *ranges, int n)
{
    return ra_ckpt_load_range_sum(path, config_text, state, tensors, ranges, n, NULL);
}

ra_status ra_ckpt_load_range_sum(const char *path, char **config_text, ra_ckpt_state *state,
                                 const ra_ckpt_tensor *tensors, const ra_ckpt_range *ranges, int n, uint64_t *sum)
{
    if (config_text) *config_text = NULL;
    RA_TRY(check_load_args(path, tensors, ranges, n));
    ckfile f;
    char *config = NULL;
    RA_TRY(verify(path, &f, &config));
    ra_status st = match_tensors(&f, tensors, n);
    if (st == RA_OK) st = read_values(&f, tensors, ranges, n);
    close(f.fd);
    if (st != RA_OK) {
        free(config);
        return st;
    }
    hand_out(&f, config, config_text, state);
    if (sum) *sum = f.sum;
    return RA_OK;
}

ra_status ra_ckpt_peek_state(const char *path, ra_ckpt_state *state)
{
    ckfile f;
    memset(&f, 0, sizeof f);
    f.path = path;
    int64_t size = 0;
    RA_TRY(ra_file_open_input(path, "checkpoint", &f.fd, &size));
    char *config = NULL;
    ra_status st = check_head(&f, (uint64_t)size);
    if (st == RA_OK) st = read_config(&f, &config); /* bounded by the header's lengths; no checksum */
    close(f.fd);
    if (st == RA_OK) hand_out(&f, config, NULL, state);
    return st;
}

ra_status ra_ckpt_peek(const char *path, char **config_text, ra_ckpt_state *state)
{
    return ra_ckpt_peek_sum(path, config_text, state, NULL);
}

ra_status ra_ckpt_peek_sum(const char *path, char **config_text, ra_ckpt_state *state, uint64_t *sum)
{
    if (config_text) *config_text = NULL;
    ckfile f;
    char *config = NULL;
    RA_TRY(verify(path, &f, &config));
    close(f.fd);
    hand_out(&f, config, config_text, state);
    if (sum) *sum = f.sum;
    return RA_OK;
}
