/* fuzz_safetensors.c - libFuzzer harness for the safetensors reader
 * (safetensors.h: ra_st_open, ra_st_open_dir, ra_st_read) and the JSON
 * parser behind it (src/core/json.c).
 *
 * Each input is tried up to three ways:
 * - as a file (into a memfd opened through /proc/self/fd/N): the header
 *   length checks, and everything behind them when the length is right;
 * - split at its first NUL byte into header text and data, with a correct
 *   8-byte length put in front (a random mutation of the length field
 *   almost never stays consistent, so this reaches the JSON parser and the
 *   entry and offset checks with every mutation of the text);
 * - when the header text mentions "weight_map", as
 *   model.safetensors.index.json of a scratch directory that holds two
 *   valid shards, a.safetensors (tensors "x", "y") and b.safetensors ("z").
 * Properties, each an abort:
 * - a failed open hands out no reader and leaves a message;
 * - an accepted file's tensors, checked independently of the reader: names
 *   unique and sorted, found by ra_st_find; END - BEGIN equals the element
 *   count (the shape's product) times the dtype size; sorted by offset they
 *   tile the data exactly;
 * - every tensor reads, and its values equal the file's bytes converted by
 *   an independent F16/BF16 decoder (bit for bit, NaNs included);
 * - an accepted index maps every tensor to a shard in the directory. */
#include <math.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ringattn/safetensors.h"
#include "ringattn/status.h"

#define MAX_INPUT (1 << 20)

static int mem_fd = -1;
static char mem_path[64];
static char dir[64];

static void fail(const char *what)
{
    fprintf(stderr, "fuzz_safetensors: %s\n", what);
    abort();
}

static void put_input(const uint8_t *data, size_t size)
{
    if (mem_fd < 0) {
        mem_fd = memfd_create("fuzz.safetensors", MFD_CLOEXEC);
        if (mem_fd < 0) fail("memfd_create failed");
        snprintf(mem_path, sizeof mem_path, "/proc/self/fd/%d", mem_fd);
    }
    if (ftruncate(mem_fd, 0) != 0) fail("ftruncate failed");
    for (size_t done = 0; done < size;) {
        ssize_t w = pwrite(mem_fd, data + done, size - done, (off_t)done);
        if (w <= 0) fail("pwrite failed");
        done += (size_t)w;
    }
}

static void put_file(const char *path, const void *data, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (!f || (n && fwrite(data, 1, n, f) != n) || fclose(f) != 0) fail("cannot write a scratch file");
}

static void remove_dir(void)
{
    static const char *const names[] = { "a.safetensors", "b.safetensors", "model.safetensors.index.json" };
    char path[128];
    for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        unlink(path);
    }
    rmdir(dir);
}

/* The scratch directory with its two shards, made once, removed at exit. */
static void make_dir(void)
{
    if (dir[0]) return;
    const char *t = getenv("TMPDIR");
    snprintf(dir, sizeof dir, "%.40s/fuzz_safetensors.XXXXXX", t && t[0] && strlen(t) < 40 ? t : "/tmp");
    if (!mkdtemp(dir)) fail("mkdtemp failed");
    atexit(remove_dir);
    static const char ha[] = "{\"x\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                             "\"y\":{\"dtype\":\"BF16\",\"shape\":[],\"data_offsets\":[8,10]}}";
    static const char hb[] = "{\"z\":{\"dtype\":\"F16\",\"shape\":[1,1],\"data_offsets\":[0,2]}}";
    uint8_t buf[256];
    char path[128];
    const struct {
        const char *name, *h;
        size_t hn, dn;
    } shards[] = { { "a.safetensors", ha, sizeof ha - 1, 10 }, { "b.safetensors", hb, sizeof hb - 1, 2 } };
    for (int s = 0; s < 2; s++) {
        uint64_t n = shards[s].hn;
        for (int i = 0; i < 8; i++) buf[i] = (uint8_t)(n >> (8 * i));
        memcpy(buf + 8, shards[s].h, n);
        for (size_t i = 0; i < shards[s].dn; i++) buf[8 + n + i] = (uint8_t)(0x3c + i);
        snprintf(path, sizeof path, "%s/%s", dir, shards[s].name);
        put_file(path, buf, 8 + n + shards[s].dn);
    }
}

static float ref_f16(uint16_t h)
{
    uint32_t sign = (uint32_t)(h >> 15) << 31, e = (h >> 10) & 31, m = h & 1023, u;
    if (e == 31) u = sign | 0xff << 23 | m << 13;
    else if (e) u = sign | (e - 15 + 127) << 23 | m << 13;
    else if (!m) u = sign;
    else { /* normalise the subnormal by hand */
        int k = 0;
        while (!(m & 0x400)) m <<= 1, k++;
        u = sign | (uint32_t)(127 - 15 - k + 1) << 23 | (m & 1023) << 13;
    }
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static float ref_bf16(uint16_t b)
{
    uint32_t u = (uint32_t)b << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static int cmp_t(const void *a, const void *b)
{
    const ra_st_tensor *x = *(const ra_st_tensor *const *)a, *y = *(const ra_st_tensor *const *)b;
    return x->begin < y->begin ? -1 : x->begin > y->begin ? 1 : x->end < y->end ? -1 : x->end > y->end;
}

/* An accepted one-file reader against the file's bytes (size bytes, the
 * data after 8 + header length). */
static void check_accepted(const ra_st *st, const uint8_t *file, size_t size)
{
    uint64_t hl = 0;
    for (int i = 7; i >= 0; i--) hl = hl << 8 | file[i];
    if (hl > size - 8) fail("accepted a header length past the end");
    const uint64_t data_len = size - 8 - hl;
    const uint8_t *data = file + 8 + hl;
    const int n = ra_st_count(st);
    const ra_st_tensor **by_off = malloc(sizeof *by_off * (size_t)(n ? n : 1));
    if (!by_off) abort();
    for (int i = 0; i < n; i++) {
        const ra_st_tensor *t = ra_st_tensor_at(st, i);
        if (!t || !t->name || !t->name[0]) fail("tensor without a name");
        if (i && strcmp(ra_st_tensor_at(st, i - 1)->name, t->name) >= 0) fail("names not sorted or not unique");
        if (ra_st_find(st, t->name) != t) fail("ra_st_find misses a tensor");
        if (t->ndim < 0 || t->ndim > RA_ST_MAX_DIMS) fail("bad ndim");
        uint64_t count = 1;
        bool zero = false;
        for (int d = 0; d < t->ndim; d++) {
            if (t->shape[d] < 0) fail("negative dimension");
            if (!t->shape[d]) zero = true;
        }
        for (int d = 0; d < t->ndim && !zero; d++) {
            if (count > UINT64_MAX / (uint64_t)t->shape[d]) fail("accepted an overflowing shape");
            count *= (uint64_t)t->shape[d];
        }
        if (zero) count = 0;
        if ((uint64_t)t->count != count) fail("count is not the shape's product");
        const uint64_t esz = t->dtype == RA_ST_F32 ? 4 : 2;
        if (t->end < t->begin || t->end - t->begin != count * esz) fail("END - BEGIN != count x dtype size");
        if (t->end > data_len) fail("tensor past the data");
        by_off[i] = t;
    }
    qsort(by_off, (size_t)n, sizeof *by_off, cmp_t);
    uint64_t at = 0;
    for (int i = 0; i < n; i++) {
        if (by_off[i]->begin != at) fail("accepted a gap or an overlap");
        at = by_off[i]->end;
    }
    if (at != data_len) fail("accepted bytes that belong to no tensor");
    free(by_off);
    for (int i = 0; i < n; i++) {
        const ra_st_tensor *t = ra_st_tensor_at(st, i);
        float *v = malloc(sizeof(float) * (size_t)(t->count + 1));
        if (!v) abort();
        if (ra_st_read(st, t, v) != RA_OK) fail("an accepted tensor does not read");
        const uint8_t *p = data + t->begin;
        for (int64_t k = 0; k < t->count; k++) {
            float want;
            if (t->dtype == RA_ST_F32) memcpy(&want, p + 4 * k, 4);
            else {
                uint16_t h = (uint16_t)(p[2 * k] | p[2 * k + 1] << 8);
                want = t->dtype == RA_ST_F16 ? ref_f16(h) : ref_bf16(h);
            }
            if (memcmp(&want, &v[k], 4) != 0) fail("a value differs from the file's bytes");
        }
        free(v);
    }
}

static void try_file(const uint8_t *file, size_t size)
{
    put_input(file, size);
    ra_st *st = (ra_st *)mem_path;
    ra_clear_error();
    if (ra_st_open(&st, mem_path) != RA_OK) {
        if (st) fail("a failed open handed out a reader");
        if (!ra_last_error()[0]) fail("a failed open left no message");
        return;
    }
    check_accepted(st, file, size);
    ra_st_close(st);
}

static void try_index(const uint8_t *text, size_t n)
{
    make_dir();
    char path[128];
    snprintf(path, sizeof path, "%s/model.safetensors.index.json", dir);
    put_file(path, text, n);
    ra_st *st = (ra_st *)path;
    ra_clear_error();
    if (ra_st_open_dir(&st, dir) != RA_OK) {
        if (st) fail("a failed index handed out a reader");
        if (!ra_last_error()[0]) fail("a failed index left no message");
        return;
    }
    float v[4];
    for (int i = 0; i < ra_st_count(st); i++) {
        const ra_st_tensor *t = ra_st_tensor_at(st, i);
        const char *f = ra_st_file_path(st, t->file);
        if (!f || strncmp(f, dir, strlen(dir)) || strchr(f + strlen(dir) + 1, '/')) fail("a shard outside the directory");
        if (t->count > 4 || ra_st_read(st, t, v) != RA_OK) fail("a shard's tensor does not read");
    }
    ra_st_close(st);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > MAX_INPUT) return -1;
    try_file(data, size);
    /* header text up to the first NUL, then the data, with a right length */
    const uint8_t *nul = memchr(data, 0, size);
    const size_t hn = nul ? (size_t)(nul - data) : size, dn = nul ? size - hn - 1 : 0;
    uint8_t *f = malloc(8 + hn + dn + 1);
    if (!f) abort();
    for (int i = 0; i < 8; i++) f[i] = (uint8_t)((uint64_t)hn >> (8 * i));
    memcpy(f + 8, data, hn);
    if (dn) memcpy(f + 8 + hn, nul + 1, dn);
    if (8 + hn + dn != size || memcmp(f, data, size) != 0) try_file(f, 8 + hn + dn);
    free(f);
    if (memmem(data, hn, "weight_map", 10)) try_index(data, hn);
    return 0;
}
