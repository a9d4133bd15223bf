/* safetensors.c - the safetensors reader and writer of safetensors.h
 * (docs/design.md §14).
 *
 * Decisions:
 * - The header is read whole (at most RA_ST_MAX_HEADER bytes, and never
 *   more than the file holds) and parsed by json.c with at most
 *   ST_MAX_NODES values; every tensor entry must have exactly the keys
 *   dtype, shape and data_offsets, so a typo is an error, not a default.
 * - Offsets are checked after sorting the entries by (begin, end): they
 *   must start at 0, each begin must equal the previous end, and the last
 *   end must be the end of the file (the reference implementation's rule:
 *   no holes, no overlap, no trailing bytes). Sizes are checked in 64 bits
 *   with overflow tests before any multiplication.
 * - No file stays open: ra_st_read reopens the file, checks that it is the
 *   same (device, inode, size) and reads with positioned reads, so a model
 *   of thousands of shards needs one descriptor at a time.
 * - F32 data are read straight into the caller's buffer (the host is
 *   little-endian); F16 and BF16 go through a 1 MiB buffer. The
 *   conversions are exact: BF16 is the upper half of an F32, F16 maps
 *   sign, exponent and mantissa (subnormals m * 2^-24, which is exact in
 *   float32; infinities; NaN payloads shifted into the F32 mantissa).
 * - Sharded models: the index's file names are plain names in the index's
 *   directory (no '/', '\', "." or ".."), each shard is opened once, and
 *   the weight map and the shards must agree exactly. */
#include "ringattn/safetensors.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "json.h"
#include "ringattn/fileio.h"

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "safetensors.c assumes a little-endian host"
#endif
_Static_assert(sizeof(float) == 4, "float must be IEEE 754 binary32");

#define ST_MAX_NODES ((size_t)4 << 20) /* JSON values in one header */
#define ST_INDEX_CAP ((size_t)64 << 20)
#define ST_BUF (1u << 20)
#define ST_NAME_SHOW 200 /* characters of a name in messages */

typedef struct {
    char *path;
    dev_t dev;
    ino_t ino;
    int64_t size;
    uint64_t data_start; /* 8 + header length */
} st_file;

struct ra_st {
    int nfiles;
    st_file *files;
    int n, cap;
    ra_st_tensor *t; /* sorted by name once complete */
    char **meta;     /* key, value pairs of file 0 */
    int nmeta;
    char source[512];
};

static const struct {
    const char *name;
    int size;        /* bytes per element */
    int supported;   /* read as float32 */
    ra_st_dtype id;
} dtypes[] = {
    { "F32", 4, 1, RA_ST_F32 },  { "F16", 2, 1, RA_ST_F16 },  { "BF16", 2, 1, RA_ST_BF16 },
    { "F64", 8, 0, 0 },          { "I64", 8, 0, 0 },          { "U64", 8, 0, 0 },
    { "I32", 4, 0, 0 },          { "U32", 4, 0, 0 },          { "I16", 2, 0, 0 },
    { "U16", 2, 0, 0 },          { "I8", 1, 0, 0 },           { "U8", 1, 0, 0 },
    { "BOOL", 1, 0, 0 },         { "F8_E4M3", 1, 0, 0 },      { "F8_E5M2", 1, 0, 0 },
};

const char *ra_st_dtype_name(ra_st_dtype d) { return d == RA_ST_F32 ? "F32" : d == RA_ST_F16 ? "F16" : "BF16"; }

float ra_st_bf16_to_f32(uint16_t b)
{
    uint32_t u = (uint32_t)b << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

float ra_st_f16_to_f32(uint16_t h)
{
    const uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    const uint32_t e = (h >> 10) & 0x1fu, m = h & 0x3ffu;
    uint32_t u;
    if (e == 0x1f) {
        u = sign | 0x7f800000u | m << 13; /* infinity, or NaN with its payload */
    } else if (e != 0) {
        u = sign | (e + 112u) << 23 | m << 13; /* rebias 15 -> 127 */
    } else {
        float f = (float)m * 0x1p-24f; /* zero or subnormal: exact */
        memcpy(&u, &f, 4);
        u |= sign;
    }
    float f;
    memcpy(&f, &u, 4);
    return f;
}

/* ---- reading one file's header ------------------------------------------------ */

static ra_status grow(ra_st *st)
{
    if (st->n < st->cap) return RA_OK;
    if (st->cap > (1 << 28)) return RA_FAIL(RA_ERR_FORMAT, "%s: too many tensors", st->source);
    int cap = st->cap ? 2 * st->cap : 64;
    ra_st_tensor *t = realloc(st->t, (size_t)cap * sizeof *t);
    if (!t) return RA_FAIL(RA_ERR_NOMEM, "%s: out of memory for the tensor list", st->source);
    st->t = t, st->cap = cap;
    return RA_OK;
}

/* "[2, 3]" into out */
static const char *shape_str(char *out, size_t cap, int ndim, const int64_t *shape)
{
    size_t at = (size_t)snprintf(out, cap, "[");
    for (int d = 0; d < ndim && at < cap; d++)
        at += (size_t)snprintf(out + at, cap - at, "%s%" PRId64, d ? ", " : "", shape[d]);
    if (at < cap) snprintf(out + at, cap - at, "]");
    return out;
}

/* A non-negative JSON integer. */
static int nonneg_int(const ra_json *v) { return v->type == RA_JSON_NUMBER && v->is_int && v->i >= 0; }

static ra_status parse_entry(ra_st *st, int file, const char *path, const ra_json *e, uint64_t data_len)
{
    const char *name = e->key;
    if (!name[0]) return RA_FAIL(RA_ERR_FORMAT, "%s: a tensor has an empty name", path);
    if (e->type != RA_JSON_OBJECT)
        return RA_FAIL(RA_ERR_FORMAT, "%s: tensor \"%.*s\" is %s, not an object {dtype, shape, data_offsets}", path,
                       ST_NAME_SHOW, name, ra_json_kind(e));
    const ra_json *dt = NULL, *shape = NULL, *offs = NULL;
    for (size_t i = 0; i < e->n; i++) {
        const ra_json *k = &e->kids[i];
        if (!strcmp(k->key, "dtype")) dt = k;
        else if (!strcmp(k->key, "shape")) shape = k;
        else if (!strcmp(k->key, "data_offsets")) offs = k;
        else
            return RA_FAIL(RA_ERR_FORMAT, "%s: tensor \"%.*s\": unknown key \"%.64s\" (a tensor has dtype, shape "
                           "and data_offsets)", path, ST_NAME_SHOW, name, k->key);
    }
    const char *missing = !dt ? "dtype" : !shape ? "shape" : !offs ? "data_offsets" : NULL;
    if (missing) return RA_FAIL(RA_ERR_FORMAT, "%s: tensor \"%.*s\" has no \"%s\"", path, ST_NAME_SHOW, name, missing);
    if (dt->type != RA_JSON_STRING)
        return RA_FAIL(RA_ERR_FORMAT, "%s: tensor \"%.*s\": dtype is %s, not a string", path, ST_NAME_SHOW, name,
                       ra_json_kind(dt));
    int di = -1;
    for (size_t i = 0; i < sizeof dtypes / sizeof *dtypes; i++)
        if (!strcmp(dt->str, dtypes[i].name)) di = (int)i;
    if (di < 0)
        return RA_FAIL(RA_ERR_FORMAT, "%s: tensor \"%.*s\": unknown dtype \"%.32s\"", path, ST_NAME_SHOW, name,
                       dt->str);
    if (!dtypes[di].supported)
        return RA_FAIL(RA_ERR_FORMAT, "%s: tensor \"%.*s\": dtype %s is not supported (F32, F16 and BF16 are)", path,
                       ST_NAME_SHOW, name, dtypes[di].name);
    if (shape->type != RA_JSON_ARRAY)
        return RA_FAIL(RA_ERR_FORMAT, "%s: tensor \"%.*s\": shape is %s, not an array", path, ST_NAME_SHOW, name,
                       ra_json_kind(shape));
    if (shape->n > RA_ST_MAX_DIMS)
        return RA_FAIL(RA_ERR_FORMAT, "%s: tensor \"%.*s\": shape has %zu dimensions (at most %d)", path, ST_NAME_SHOW,
                       name, shape->n, RA_ST_MAX_DIMS);
    ra_st_tensor t = { .name = name, .dtype = dtypes[di].id, .ndim = (int)shape->n, .count = 1, .file = file };
    for (size_t d = 0; d < shape->n; d++) {
        const ra_json *s = &shape->kids[d];
        if (!nonneg_int(s))
            return RA_FAIL(RA_ERR_FORMAT, "%s: tensor \"%.*s\": shape dimension %zu is not a non-negative integer",
                           path, ST_NAME_SHOW, name, d);
        t.shape[d] = s->i;
    }
    for (int d = 0; d < t.ndim; d++) {
        if (t.shape[d] == 0) {
            t.count = 0;
            break;
        }
    }
    for (int d = 0; d < t.ndim && t.count; d++) {
        if (t.count > INT64_MAX / t.shape[d]) {
            char sb[256];
            return RA_FAIL(RA_ERR_FORMAT, "%s: tensor \"%.*s\": shape %s has more than 2^63 elements", path,
                           ST_NAME_SHOW, name, shape_str(sb, sizeof sb, t.ndim, t.shape));
        }
        t.count *= t.shape[d];
    }
    const int esz = dtypes[di].size;
    if (offs->type != RA_JSON_ARRAY || offs->n != 2 || !nonneg_int(&offs->kids[0]) || !nonneg_int(&offs->kids[1]))
        return RA_FAIL(RA_ERR_FORMAT, "%s: tensor \"%.*s\": data_offsets must be [BEGIN, END], two non-negative "
                       "integers", path, ST_NAME_SHOW, name);
    t.begin = (uint64_t)offs->kids[0].i;
    t.end = (uint64_t)offs->kids[1].i;
    if (t.end < t.begin)
        return RA_FAIL(RA_ERR_FORMAT, "%s: tensor \"%.*s\": data_offsets [%" PRIu64 ", %" PRIu64 "] end before they "
                       "begin", path, ST_NAME_SHOW, name, t.begin, t.end);
    char sb[256];
    if ((uint64_t)t.count > UINT64_MAX / (uint64_t)esz || t.end - t.begin != (uint64_t)t.count * (uint64_t)esz) {
        if ((uint64_t)t.count > UINT64_MAX / (uint64_t)esz)
            return RA_FAIL(RA_ERR_FORMAT, "%s: tensor \"%.*s\": shape %s of %s is larger than any file", path,
                           ST_NAME_SHOW, name, shape_str(sb, sizeof sb, t.ndim, t.shape), dtypes[di].name);
        return RA_FAIL(RA_ERR_FORMAT, "%s: tensor \"%.*s\": shape %s of %s needs %" PRIu64 " bytes, but data_offsets "
                       "[%" PRIu64 ", %" PRIu64 "] hold %" PRIu64, path, ST_NAME_SHOW, name,
                       shape_str(sb, sizeof sb, t.ndim, t.shape), dtypes[di].name, (uint64_t)t.count * (uint64_t)esz,
                       t.begin, t.end, t.end - t.begin);
    }
    if (t.end > data_len)
        return RA_FAIL(RA_ERR_FORMAT, "%s: tensor \"%.*s\": data_offsets [%" PRIu64 ", %" PRIu64 "] run past the "
                       "end of the data (%" PRIu64 " bytes after the header)", path, ST_NAME_SHOW, name, t.begin,
                       t.end, data_len);
    RA_TRY(grow(st));
    st->t[st->n++] = t;
    return RA_OK;
}

static int cmp_offset(const void *a, const void *b)
{
    const ra_st_tensor *x = *(const ra_st_tensor *const *)a, *y = *(const ra_st_tensor *const *)b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    if (x->end != y->end) return x->end < y->end ? -1 : 1;
    return strcmp(x->name, y->name);
}

/* The tensors [first, st->n) of one file tile its data_len bytes exactly. */
static ra_status check_tiling(const ra_st *st, int first, const char *path, uint64_t data_len)
{
    const int n = st->n - first;
    if (n == 0) {
        if (data_len)
            return RA_FAIL(RA_ERR_FORMAT, "%s: %" PRIu64 " bytes of data but no tensor", path, data_len);
        return RA_OK;
    }
    const ra_st_tensor **o = malloc((size_t)n * sizeof *o);
    if (!o) return RA_FAIL(RA_ERR_NOMEM, "%s: out of memory checking offsets", path);
    for (int i = 0; i < n; i++) o[i] = &st->t[first + i];
    qsort(o, (size_t)n, sizeof *o, cmp_offset);
    uint64_t at = 0;
    const char *prev = NULL;
    ra_status rs = RA_OK;
    for (int i = 0; i < n && rs == RA_OK; i++) {
        if (o[i]->begin > at)
            rs = RA_FAIL(RA_ERR_FORMAT, "%s: bytes [%" PRIu64 ", %" PRIu64 ") of the data belong to no tensor (a gap "
                         "before tensor \"%.*s\")", path, at, o[i]->begin, ST_NAME_SHOW, o[i]->name);
        else if (o[i]->begin < at)
            rs = RA_FAIL(RA_ERR_FORMAT, "%s: tensor \"%.*s\" (data_offsets [%" PRIu64 ", %" PRIu64 "]) overlaps "
                         "tensor \"%.*s\"", path, ST_NAME_SHOW, o[i]->name, o[i]->begin, o[i]->end, ST_NAME_SHOW,
                         prev);
        if (o[i]->end > at || !prev) prev = o[i]->name;
        at = o[i]->end;
    }
    if (rs == RA_OK && at != data_len)
        rs = RA_FAIL(RA_ERR_FORMAT, "%s: %" PRIu64 " bytes after the last tensor (\"%.*s\") belong to no tensor", path,
                     data_len - at, ST_NAME_SHOW, o[n - 1]->name);
    free(o);
    return rs;
}

static ra_status read_metadata(ra_st *st, const char *path, const ra_json *m, int keep)
{
    if (m->type != RA_JSON_OBJECT)
        return RA_FAIL(RA_ERR_FORMAT, "%s: __metadata__ is %s, not an object of strings", path, ra_json_kind(m));
    for (size_t i = 0; i < m->n; i++)
        if (m->kids[i].type != RA_JSON_STRING)
            return RA_FAIL(RA_ERR_FORMAT, "%s: __metadata__ key \"%.64s\" is %s, not a string", path, m->kids[i].key,
                           ra_json_kind(&m->kids[i]));
    if (!keep || !m->n) return RA_OK;
    st->meta = calloc(2 * m->n, sizeof *st->meta);
    if (!st->meta) return RA_FAIL(RA_ERR_NOMEM, "%s: out of memory", path);
    st->nmeta = (int)m->n;
    for (size_t i = 0; i < m->n; i++) {
        st->meta[2 * i] = strdup(m->kids[i].key);
        st->meta[2 * i + 1] = strdup(m->kids[i].str);
        if (!st->meta[2 * i] || !st->meta[2 * i + 1]) return RA_FAIL(RA_ERR_NOMEM, "%s: out of memory", path);
    }
    return RA_OK;
}

/* Names of a file's tensors are copied out of the JSON document. */
static ra_status own_names(ra_st *st, int first, const char *path)
{
    for (int i = first; i < st->n; i++) {
        char *copy = strdup(st->t[i].name);
        if (!copy) {
            for (int j = first; j < i; j++) free((char *)st->t[j].name);
            return RA_FAIL(RA_ERR_NOMEM, "%s: out of memory for tensor names", path);
        }
        st->t[i].name = copy;
    }
    return RA_OK;
}

static ra_status add_file(ra_st *st, const char *path)
{
    st_file *f = realloc(st->files, (size_t)(st->nfiles + 1) * sizeof *f);
    if (!f) return RA_FAIL(RA_ERR_NOMEM, "out of memory");
    st->files = f;
    f = &st->files[st->nfiles];
    *f = (st_file){ .path = strdup(path) };
    if (!f->path) return RA_FAIL(RA_ERR_NOMEM, "out of memory");
    st->nfiles++;
    return RA_OK;
}

/* Parse file number k (already added) and append its tensors. */
static ra_status parse_file(ra_st *st, int k)
{
    st_file *f = &st->files[k];
    const char *path = f->path;
    int fd;
    int64_t size;
    RA_TRY(ra_file_open_input(path, "safetensors file", &fd, &size));
    struct stat sb;
    ra_status rs = RA_OK;
    char *hdr = NULL;
    uint64_t n = 0;
    if (fstat(fd, &sb) != 0) rs = RA_FAIL(RA_ERR_IO, "%s: cannot stat", path);
    else f->dev = sb.st_dev, f->ino = sb.st_ino, f->size = size;
    if (rs == RA_OK && size < 8)
        rs = RA_FAIL(RA_ERR_FORMAT, "%s: %lld bytes, too short for a safetensors file (an 8-byte header length "
                     "comes first)", path, (long long)size);
    unsigned char len8[8];
    if (rs == RA_OK) rs = ra_pread_full(fd, path, len8, 8, 0);
    if (rs == RA_OK) {
        for (int i = 7; i >= 0; i--) n = n << 8 | len8[i];
        if (n > RA_ST_MAX_HEADER)
            rs = RA_FAIL(RA_ERR_FORMAT, "%s: header length %" PRIu64 " is absurd (at most %u bytes): not a "
                         "safetensors file?", path, n, RA_ST_MAX_HEADER);
        else if (n > (uint64_t)size - 8)
            rs = RA_FAIL(RA_ERR_FORMAT, "%s: header length %" PRIu64 " runs past the end of the file (%lld bytes): "
                         "truncated, or not a safetensors file", path, n, (long long)size);
        else if (n < 2)
            rs = RA_FAIL(RA_ERR_FORMAT, "%s: header length %" PRIu64 " is too short for a JSON object", path, n);
    }
    if (rs == RA_OK && !(hdr = malloc(n ? n : 1)))
        rs = RA_FAIL(RA_ERR_NOMEM, "%s: out of memory for a %" PRIu64 "-byte header", path, n);
    if (rs == RA_OK) rs = ra_pread_full(fd, path, hdr, n, 8);
    close(fd);
    if (rs != RA_OK) {
        free(hdr);
        return rs;
    }
    f->data_start = 8 + n;
    const uint64_t data_len = (uint64_t)size - 8 - n;
    char what[600];
    snprintf(what, sizeof what, "%s: header", path);
    ra_json_doc *doc;
    rs = ra_json_parse(hdr, n, what, ST_MAX_NODES, &doc);
    free(hdr);
    RA_TRY(rs);
    const ra_json *root = ra_json_root(doc);
    const int first = st->n;
    if (root->type != RA_JSON_OBJECT)
        rs = RA_FAIL(RA_ERR_FORMAT, "%s: the header is %s, not an object", path, ra_json_kind(root));
    for (size_t i = 0; rs == RA_OK && i < root->n; i++) {
        const ra_json *e = &root->kids[i];
        if (!strcmp(e->key, "__metadata__")) rs = read_metadata(st, path, e, k == 0);
        else rs = parse_entry(st, k, path, e, data_len);
    }
    if (rs == RA_OK) rs = check_tiling(st, first, path, data_len);
    if (rs == RA_OK) rs = own_names(st, first, path);
    if (rs != RA_OK) st->n = first; /* their names were the document's (or freed by own_names) */
    ra_json_free(doc);
    return rs;
}

static int cmp_name(const void *a, const void *b)
{
    const ra_st_tensor *x = a, *y = b;
    return strcmp(x->name, y->name);
}

/* Sort by name; a name twice (in two shards) is an error. */
static ra_status finish_set(ra_st *st)
{
    if (st->n > 1) qsort(st->t, (size_t)st->n, sizeof *st->t, cmp_name);
    for (int i = 1; i < st->n; i++)
        if (!strcmp(st->t[i].name, st->t[i - 1].name))
            return RA_FAIL(RA_ERR_FORMAT, "%s: tensor \"%.*s\" is in both %s and %s", st->source, ST_NAME_SHOW,
                           st->t[i].name, st->files[st->t[i - 1].file].path, st->files[st->t[i].file].path);
    return RA_OK;
}

ra_status ra_st_open(ra_st **out, const char *path)
{
    *out = NULL;
    ra_st *st = calloc(1, sizeof *st);
    if (!st) return RA_FAIL(RA_ERR_NOMEM, "out of memory");
    snprintf(st->source, sizeof st->source, "%.500s", path);
    ra_status rs = add_file(st, path);
    if (rs == RA_OK) rs = parse_file(st, 0);
    if (rs == RA_OK) rs = finish_set(st);
    if (rs != RA_OK) {
        ra_st_close(st);
        return rs;
    }
    *out = st;
    return RA_OK;
}

/* ---- sharded models ----------------------------------------------------------- */

typedef struct {
    const char *name, *file;
} map_entry;

static int cmp_map(const void *a, const void *b) { return strcmp(((const map_entry *)a)->name, ((const map_entry *)b)->name); }
static int cmp_str(const void *a, const void *b) { return strcmp(*(const char *const *)a, *(const char *const *)b); }

/* A shard's name: a plain file name in the index's directory. */
static ra_status check_shard_name(const char *index, const char *tensor, const char *file)
{
    const char *why = NULL;
    if (!file[0]) why = "is empty";
    else if (strlen(file) > 255) why = "is longer than 255 bytes";
    else if (strchr(file, '/') || strchr(file, '\\')) why = "contains a path separator";
    else if (!strcmp(file, ".") || !strcmp(file, "..")) why = "is not a file name";
    if (why)
        return RA_FAIL(RA_ERR_FORMAT, "%s: weight_map[\"%.*s\"] = \"%.64s\" %s: shards must be files in the index's "
                       "own directory", index, ST_NAME_SHOW, tensor, file, why);
    return RA_OK;
}

static ra_status open_index(ra_st *st, const char *dir, const char *index)
{
    char *text;
    size_t len;
    RA_TRY(ra_file_read_all(index, "safetensors index", ST_INDEX_CAP, &text, &len));
    ra_json_doc *doc;
    ra_status rs = ra_json_parse(text, len, index, ST_MAX_NODES, &doc);
    free(text);
    RA_TRY(rs);
    const ra_json *root = ra_json_root(doc), *wm = ra_json_get(root, "weight_map");
    map_entry *map = NULL;
    const char **files = NULL;
    size_t n = 0, nf = 0;
    if (root->type != RA_JSON_OBJECT)
        rs = RA_FAIL(RA_ERR_FORMAT, "%s: the index is %s, not an object", index, ra_json_kind(root));
    else if (!wm)
        rs = RA_FAIL(RA_ERR_FORMAT, "%s: no \"weight_map\" (the map of tensor names to shard files)", index);
    else if (wm->type != RA_JSON_OBJECT)
        rs = RA_FAIL(RA_ERR_FORMAT, "%s: weight_map is %s, not an object", index, ra_json_kind(wm));
    if (rs == RA_OK) {
        n = wm->n;
        map = malloc((n ? n : 1) * sizeof *map);
        files = malloc((n ? n : 1) * sizeof *files);
        if (!map || !files) rs = RA_FAIL(RA_ERR_NOMEM, "%s: out of memory", index);
    }
    for (size_t i = 0; rs == RA_OK && i < n; i++) {
        const ra_json *e = &wm->kids[i];
        if (e->type != RA_JSON_STRING)
            rs = RA_FAIL(RA_ERR_FORMAT, "%s: weight_map[\"%.*s\"] is %s, not a file name", index, ST_NAME_SHOW, e->key,
                         ra_json_kind(e));
        else rs = check_shard_name(index, e->key, e->str);
        if (rs == RA_OK) map[i] = (map_entry){ e->key, e->str }, files[i] = e->str;
    }
    if (rs == RA_OK && n == 0) rs = RA_FAIL(RA_ERR_FORMAT, "%s: weight_map is empty", index);
    if (rs == RA_OK) {
        qsort(map, n, sizeof *map, cmp_map);
        qsort(files, n, sizeof *files, cmp_str);
        for (size_t i = 0; i < n; i++)
            if (!nf || strcmp(files[i], files[nf - 1])) files[nf++] = files[i];
    }
    /* every shard once, in name order */
    char path[4200];
    for (size_t i = 0; rs == RA_OK && i < nf; i++) {
        ra_join_path(path, sizeof path, dir, files[i]);
        rs = add_file(st, path);
        if (rs == RA_OK) rs = parse_file(st, (int)i);
    }
    if (rs == RA_OK) rs = finish_set(st);
    /* the map and the shards agree: every mapped tensor is in its shard, every tensor is mapped */
    for (size_t i = 0; rs == RA_OK && i < n; i++) {
        const ra_st_tensor *t = ra_st_find(st, map[i].name);
        if (!t)
            rs = RA_FAIL(RA_ERR_FORMAT, "%s: maps tensor \"%.*s\" to %s, which does not hold it", index, ST_NAME_SHOW,
                         map[i].name, map[i].file);
        else if (strcmp(strrchr(st->files[t->file].path, '/') + 1, map[i].file))
            rs = RA_FAIL(RA_ERR_FORMAT, "%s: maps tensor \"%.*s\" to %s, but it is in %s", index, ST_NAME_SHOW,
                         map[i].name, map[i].file, st->files[t->file].path);
    }
    if (rs == RA_OK && (size_t)st->n != n) {
        for (int i = 0; i < st->n; i++) {
            map_entry key = { st->t[i].name, NULL };
            if (!bsearch(&key, map, n, sizeof *map, cmp_map)) {
                rs = RA_FAIL(RA_ERR_FORMAT, "%s holds tensor \"%.*s\", which %s does not map", st->files[st->t[i].file].path,
                             ST_NAME_SHOW, st->t[i].name, index);
                break;
            }
        }
    }
    if (rs == RA_OK) snprintf(st->source, sizeof st->source, "%.480s (%zu shard%s)", index, nf, nf == 1 ? "" : "s");
    free(map);
    free(files);
    ra_json_free(doc);
    return rs;
}

ra_status ra_st_open_dir(ra_st **out, const char *dir)
{
    *out = NULL;
    char one[4200], index[4200];
    if (!ra_join_path(one, sizeof one, dir, RA_ST_FILE_NAME) ||
        !ra_join_path(index, sizeof index, dir, RA_ST_INDEX_NAME))
        return RA_FAIL(RA_ERR_ARG, "%.200s: path too long", dir);
    struct stat sb;
    /* a name that is there (lstat) but cannot be followed, a dangling symbolic
     * link, is opened to be named with its reason, not called absent */
    if (stat(one, &sb) == 0 || lstat(one, &sb) == 0) return ra_st_open(out, one);
    if (stat(index, &sb) != 0 && lstat(index, &sb) != 0) {
        if (stat(dir, &sb) != 0 || !S_ISDIR(sb.st_mode))
            return RA_FAIL(RA_ERR_IO, "%s: not a directory (a model directory holds %s or %s)", dir, RA_ST_FILE_NAME,
                           RA_ST_INDEX_NAME);
        return RA_FAIL(RA_ERR_IO, "%s: holds neither %s nor %s", dir, RA_ST_FILE_NAME, RA_ST_INDEX_NAME);
    }
    ra_st *st = calloc(1, sizeof *st);
    if (!st) return RA_FAIL(RA_ERR_NOMEM, "out of memory");
    snprintf(st->source, sizeof st->source, "%.500s", index);
    ra_status rs = open_index(st, dir, index);
    if (rs != RA_OK) {
        ra_st_close(st);
        return rs;
    }
    *out = st;
    return RA_OK;
}

void ra_st_close(ra_st *st)
{
    if (!st) return;
    for (int i = 0; i < st->n; i++) free((char *)st->t[i].name);
    free(st->t);
    for (int i = 0; i < st->nfiles; i++) free(st->files[i].path);
    free(st->files);
    for (int i = 0; i < 2 * st->nmeta; i++) free(st->meta[i]);
    free(st->meta);
    free(st);
}

int ra_st_count(const ra_st *st) { return st->n; }
const ra_st_tensor *ra_st_tensor_at(const ra_st *st, int i) { return i >= 0 && i < st->n ? &st->t[i] : NULL; }
int ra_st_files(const ra_st *st) { return st->nfiles; }
const char *ra_st_file_path(const ra_st *st, int file) { return file >= 0 && file < st->nfiles ? st->files[file].path : NULL; }
const char *ra_st_source(const ra_st *st) { return st->source; }

const ra_st_tensor *ra_st_find(const ra_st *st, const char *name)
{
    ra_st_tensor key = { .name = name };
    return st->n ? bsearch(&key, st->t, (size_t)st->n, sizeof *st->t, cmp_name) : NULL;
}

const char *ra_st_metadata(const ra_st *st, const char *key)
{
    for (int i = 0; i < st->nmeta; i++)
        if (st->meta[2 * i] && !strcmp(st->meta[2 * i], key)) return st->meta[2 * i + 1];
    return NULL;
}

ra_status ra_st_read(const ra_st *st, const ra_st_tensor *t, float *out)
{
    if (!t || t->file < 0 || t->file >= st->nfiles) return RA_FAIL(RA_ERR_ARG, "ra_st_read: no such tensor");
    const st_file *f = &st->files[t->file];
    int fd;
    int64_t size;
    RA_TRY(ra_file_open_input(f->path, "safetensors file", &fd, &size));
    struct stat sb;
    ra_status rs = RA_OK;
    if (fstat(fd, &sb) != 0 || sb.st_dev != f->dev || sb.st_ino != f->ino || size != f->size)
        rs = RA_FAIL(RA_ERR_IO, "%s: the file changed since it was opened (tensor \"%.*s\")", f->path, ST_NAME_SHOW,
                     t->name);
    const uint64_t off = f->data_start + t->begin, bytes = t->end - t->begin;
    if (rs == RA_OK && (off > INT64_MAX || bytes > SIZE_MAX))
        rs = RA_FAIL(RA_ERR_FORMAT, "%s: tensor \"%.*s\" is too large", f->path, ST_NAME_SHOW, t->name);
    if (rs == RA_OK && t->dtype == RA_ST_F32) {
        rs = ra_pread_full(fd, f->path, out, (size_t)bytes, (int64_t)off);
    } else if (rs == RA_OK) {
        uint16_t *buf = malloc(ST_BUF);
        if (!buf) rs = RA_FAIL(RA_ERR_NOMEM, "%s: out of memory", f->path);
        const size_t per = ST_BUF / sizeof *buf;
        for (int64_t i = 0; rs == RA_OK && i < t->count; i += (int64_t)per) {
            size_t m = t->count - i < (int64_t)per ? (size_t)(t->count - i) : per;
            rs = ra_pread_full(fd, f->path, buf, m * 2, (int64_t)off + 2 * i);
            if (rs != RA_OK) break;
            if (t->dtype == RA_ST_F16)
                for (size_t j = 0; j < m; j++) out[i + (int64_t)j] = ra_st_f16_to_f32(buf[j]);
            else
                for (size_t j = 0; j < m; j++) out[i + (int64_t)j] = ra_st_bf16_to_f32(buf[j]);
        }
        free(buf);
    }
    close(fd);
    return rs;
}

/* ---- writing ------------------------------------------------------------------- */

struct ra_st_writer {
    char *path;
    int fd;
    int n, next;
    int64_t *count;
    uint64_t at; /* file offset of the next tensor */
};

static int cmp_cstr(const void *a, const void *b) { return strcmp(*(const char *const *)a, *(const char *const *)b); }

static ra_status check_specs(const char *path, const ra_st_spec *t, int n, int64_t *count)
{
    for (int i = 0; i < n; i++) {
        const char *name = t[i].name;
        if (!name || !name[0]) return RA_FAIL(RA_ERR_ARG, "%s: tensor %d has no name", path, i);
        if (!ra_json_utf8_valid(name, strlen(name)))
            return RA_FAIL(RA_ERR_ARG, "%s: tensor name \"%.*s\" is not valid UTF-8", path, ST_NAME_SHOW, name);
        if (!strcmp(name, "__metadata__")) return RA_FAIL(RA_ERR_ARG, "%s: \"__metadata__\" is not a tensor name", path);
        if (t[i].ndim < 0 || t[i].ndim > RA_ST_MAX_DIMS)
            return RA_FAIL(RA_ERR_ARG, "%s: tensor \"%.*s\" has %d dimensions (0 to %d)", path, ST_NAME_SHOW, name,
                           t[i].ndim, RA_ST_MAX_DIMS);
        int64_t c = 1;
        for (int d = 0; d < t[i].ndim; d++) {
            if (t[i].shape[d] < 0)
                return RA_FAIL(RA_ERR_ARG, "%s: tensor \"%.*s\": dimension %d is negative", path, ST_NAME_SHOW, name, d);
            if (t[i].shape[d] && c > INT64_MAX / 4 / t[i].shape[d])
                return RA_FAIL(RA_ERR_ARG, "%s: tensor \"%.*s\" is too large", path, ST_NAME_SHOW, name);
            c *= t[i].shape[d];
        }
        count[i] = c;
    }
    const char **names = malloc((size_t)(n ? n : 1) * sizeof *names);
    if (!names) return RA_FAIL(RA_ERR_NOMEM, "%s: out of memory", path);
    for (int i = 0; i < n; i++) names[i] = t[i].name;
    qsort(names, (size_t)n, sizeof *names, cmp_cstr);
    ra_status rs = RA_OK;
    for (int i = 1; i < n; i++)
        if (!strcmp(names[i], names[i - 1])) {
            rs = RA_FAIL(RA_ERR_ARG, "%s: tensor \"%.*s\" given twice", path, ST_NAME_SHOW, names[i]);
            break;
        }
    free(names);
    return rs;
}

ra_status ra_st_write_begin(ra_st_writer **out, const char *path, const ra_st_spec *t, int n,
                            const char *const *meta, int nmeta)
{
    *out = NULL;
    if (n < 0 || nmeta < 0) return RA_FAIL(RA_ERR_ARG, "%s: negative tensor or metadata count", path);
    int64_t *count = malloc((size_t)(n ? n : 1) * sizeof *count);
    if (!count) return RA_FAIL(RA_ERR_NOMEM, "%s: out of memory", path);
    ra_status rs = check_specs(path, t, n, count);
    for (int i = 0; rs == RA_OK && i < 2 * nmeta; i++)
        if (!meta[i] || !ra_json_utf8_valid(meta[i], strlen(meta[i])))
            rs = RA_FAIL(RA_ERR_ARG, "%s: metadata string %d is missing or not valid UTF-8", path, i);
    ra_json_buf b = { 0 };
    uint64_t off = 0;
    if (rs == RA_OK) {
        ra_json_put(&b, "{");
        if (nmeta) {
            ra_json_put(&b, "\"__metadata__\":{");
            for (int i = 0; i < nmeta; i++) {
                if (i) ra_json_put(&b, ",");
                ra_json_put_string(&b, meta[2 * i]);
                ra_json_put(&b, ":");
                ra_json_put_string(&b, meta[2 * i + 1]);
            }
            ra_json_put(&b, "}");
        }
        for (int i = 0; i < n; i++) {
            if (i || nmeta) ra_json_put(&b, ",");
            ra_json_put_string(&b, t[i].name);
            ra_json_put(&b, ":{\"dtype\":\"F32\",\"shape\":[");
            for (int d = 0; d < t[i].ndim; d++) ra_json_putf(&b, "%s%" PRId64, d ? "," : "", t[i].shape[d]);
            uint64_t bytes = 4 * (uint64_t)count[i];
            if (off > UINT64_MAX / 2 - bytes) {
                rs = RA_FAIL(RA_ERR_ARG, "%s: the tensors are too large for one file", path);
                break;
            }
            ra_json_putf(&b, "],\"data_offsets\":[%" PRIu64 ",%" PRIu64 "]}", off, off + bytes);
            off += bytes;
        }
        ra_json_put(&b, "}");
        while (!b.failed && (8 + b.len) % 8) ra_json_put(&b, " ");
        if (rs == RA_OK && b.failed) rs = RA_FAIL(RA_ERR_NOMEM, "%s: out of memory for the header", path);
        if (rs == RA_OK && b.len > RA_ST_MAX_HEADER)
            rs = RA_FAIL(RA_ERR_ARG, "%s: the header would have %zu bytes (at most %u)", path, b.len, RA_ST_MAX_HEADER);
    }
    ra_st_writer *w = NULL;
    if (rs == RA_OK) {
        w = calloc(1, sizeof *w);
        if (w) w->path = strdup(path);
        if (!w || !w->path) rs = RA_FAIL(RA_ERR_NOMEM, "%s: out of memory", path);
    }
    if (rs != RA_OK) {
        if (w) free(w->path);
        free(w);
        free(count);
        ra_json_buf_free(&b);
        return rs;
    }
    w->n = n, w->count = count, w->fd = -1;
    rs = ra_atomic_create(path, &w->fd);
    if (rs != RA_OK) {
        free(w->path);
        free(w);
        free(count);
        ra_json_buf_free(&b);
        return rs;
    }
    char tmp[4200];
    ra_tmp_name(tmp, sizeof tmp, path);
    unsigned char len8[8];
    for (int i = 0; i < 8; i++) len8[i] = (unsigned char)((uint64_t)b.len >> (8 * i));
    rs = ra_pwrite_full(w->fd, tmp, len8, 8, 0);
    if (rs == RA_OK) rs = ra_pwrite_full(w->fd, tmp, b.p, b.len, 8);
    w->at = 8 + b.len;
    ra_json_buf_free(&b);
    if (rs != RA_OK) return ra_st_write_end(w, rs);
    *out = w;
    return RA_OK;
}

ra_status ra_st_write_next(ra_st_writer *w, const float *data)
{
    if (w->next >= w->n) return RA_FAIL(RA_ERR_ARG, "%s: all %d tensors are already written", w->path, w->n);
    char tmp[4200];
    ra_tmp_name(tmp, sizeof tmp, w->path);
    const size_t bytes = 4 * (size_t)w->count[w->next];
    if (bytes) RA_TRY(ra_pwrite_full(w->fd, tmp, data, bytes, (int64_t)w->at));
    w->at += bytes;
    w->next++;
    return RA_OK;
}

/* Close w: staged (the file complete at "<path>.tmp") or, when commit,
 * renamed over its path; on failure the .tmp is removed. */
static ra_status write_close(ra_st_writer *w, ra_status st, int commit)
{
    if (!w) return st;
    if (st == RA_OK && w->next != w->n)
        st = RA_FAIL(RA_ERR_ARG, "%s: %d of %d tensors written", w->path, w->next, w->n);
    st = commit ? ra_atomic_finish(w->path, w->fd, st) : ra_atomic_stage(w->path, w->fd, st);
    free(w->path);
    free(w->count);
    free(w);
    return st;
}

ra_status ra_st_write_end(ra_st_writer *w, ra_status st) { return write_close(w, st, 1); }

ra_status ra_st_write_stage(ra_st_writer *w, ra_status st) { return write_close(w, st, 0); }
