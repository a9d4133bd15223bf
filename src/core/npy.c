/* npy.c - NumPy .npy files: strict header parsing, slab reads with
 * conversion to float32/int32, and atomic float32 writes via "<path>.tmp".
 * Every open, read, write, commit and directory fsync goes through fileio.h.
 *
 * Decisions:
 * - Bytes after the data are accepted. np.save called twice on one open file
 *   handle concatenates arrays and np.load returns the first, so such files
 *   are legitimate; our own writer sizes files exactly (ftruncate).
 * - The header must end in '\n' (the format spec requires it); inside the
 *   dict any Python whitespace is allowed. Keys may use ' or " quotes;
 *   unknown or repeated keys are errors, as in numpy.
 * - Shapes may carry Python 2 'L' suffixes (numpy strips them when reading
 *   1.0/2.0 files written by Python 2).
 * - Headers over 1 MiB are refused: no valid header for the dtypes we read
 *   comes close, and it bounds the one allocation that depends on the file.
 * - Handles opened for writing carry the "<path>.tmp" name in f->path, since
 *   that is the file their errors are about.
 * - Inputs are opened with ra_file_open_input: a FIFO, directory or device
 *   given as a .npy file is refused by name at once, never read or waited on. */
#include "ringattn/npy.h"

#include "ringattn/fileio.h"

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

/* Data is moved without byte swaps, so '<' and '=' must mean the same. */
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "npy.c assumes a little-endian host"
#endif
_Static_assert(sizeof(off_t) >= 8, "build with -D_FILE_OFFSET_BITS=64");

#define NPY_MAGIC "\x93NUMPY"
#define NPY_MAGIC_LEN 6
#define NPY_ALIGN 64          /* numpy aligns the data to 64 bytes */
#define NPY_GROWTH_DIGITS 21  /* numpy's spare room for the first dim */
#define NPY_MAX_HEADER (1 << 20)
#define NPY_CHUNK_BYTES 32768 /* conversion buffer, on the stack */
#define NPY_SUPPORTED                                                         \
    "supported: float32 '<f4', float64 '<f8', int32 '<i4', int64 '<i8', "     \
    "uint16 '<u2', uint32 '<u4' (little-endian)"

/* ---- dtypes ---------------------------------------------------------- */

const char *ra_dtype_name(ra_dtype dt)
{
    switch (dt) {
    case RA_DT_F32: return "float32";
    case RA_DT_F64: return "float64";
    case RA_DT_I32: return "int32";
    case RA_DT_I64: return "int64";
    case RA_DT_U16: return "uint16";
    case RA_DT_U32: return "uint32";
    }
    return "unknown";
}

int ra_dtype_size(ra_dtype dt)
{
    switch (dt) {
    case RA_DT_U16: return 2;
    case RA_DT_F32: case RA_DT_I32: case RA_DT_U32: return 4;
    case RA_DT_F64: case RA_DT_I64: return 8;
    }
    return 0;
}

static const char *dtype_descr(ra_dtype dt)
{
    switch (dt) {
    case RA_DT_F32: return "<f4";
    case RA_DT_F64: return "<f8";
    case RA_DT_I32: return "<i4";
    case RA_DT_I64: return "<i8";
    case RA_DT_U16: return "<u2";
    case RA_DT_U32: return "<u4";
    }
    return "?";
}

/* s for a message: bytes outside printable ASCII as \xNN (a header's raw
 * bytes would reach the terminal as they are); returns buf. */
static const char *show(char *buf, size_t cap, const char *s)
{
    size_t at = 0;
    buf[0] = '\0';
    for (const unsigned char *p = (const unsigned char *)s; *p && at + 5 <= cap; p++)
        at += (size_t)snprintf(buf + at, cap - at, *p >= 0x20 && *p < 0x7f ? "%c" : "\\x%02x", *p);
    return buf;
}

/* Map a descr string to a dtype; '<' and '=' (native, i.e. little-endian
 * here) are accepted, '|' only suits 1-byte types, '>' is big-endian. */
static ra_status parse_descr(const char *path, const char *d, ra_dtype *dt)
{
    static const struct { const char *code; ra_dtype dt; } known[] = {
        {"f4", RA_DT_F32}, {"f8", RA_DT_F64}, {"i4", RA_DT_I32}, {"i8", RA_DT_I64},
        {"u2", RA_DT_U16}, {"u4", RA_DT_U32},
    };
    char order = d[0], shown[4 * 32];
    bool has_order = order == '<' || order == '>' || order == '|' || order == '=';
    const char *code = has_order ? d + 1 : d;
    for (size_t k = 0; k < sizeof known / sizeof known[0]; k++) {
        if (strcmp(code, known[k].code) != 0) continue;
        if (order == '<' || order == '=') {
            *dt = known[k].dt;
            return RA_OK;
        }
        if (order == '>')
            return RA_FAIL(RA_ERR_FORMAT,
                           "%s: unsupported dtype '%s' (big-endian %s); " NPY_SUPPORTED
                           "; convert with arr.astype('<%s')",
                           path, show(shown, sizeof shown, d), ra_dtype_name(known[k].dt), code);
        return RA_FAIL(RA_ERR_FORMAT,
                       "%s: unsupported dtype '%s' (no byte order for a multi-byte "
                       "type); " NPY_SUPPORTED, path, show(shown, sizeof shown, d));
    }
    return RA_FAIL(RA_ERR_FORMAT, "%s: unsupported dtype '%s'; " NPY_SUPPORTED, path, show(shown, sizeof shown, d));
}

/* ---- header parsing -------------------------------------------------- */

typedef struct {
    const char *path;
    const char *s; /* header text after the length field; not NUL-terminated */
    size_t n, i;
    size_t base;   /* file offset of s[0], for messages */
} cursor;

typedef struct {
    char descr[32];
    bool fortran;
    int ndim;
    int64_t shape[RA_NPY_MAX_DIMS];
} header;

static ra_status expected(const cursor *c, const char *what)
{
    if (c->i >= c->n)
        return RA_FAIL(RA_ERR_FORMAT,
                       "%s: malformed .npy header: expected %s at byte %zu, found end of header",
                       c->path, what, c->base + c->i);
    unsigned char ch = (unsigned char)c->s[c->i];
    if (ch >= 0x20 && ch < 0x7f)
        return RA_FAIL(RA_ERR_FORMAT, "%s: malformed .npy header: expected %s at byte %zu, found '%c'",
                       c->path, what, c->base + c->i, ch);
    return RA_FAIL(RA_ERR_FORMAT, "%s: malformed .npy header: expected %s at byte %zu, found byte 0x%02x",
                   c->path, what, c->base + c->i, ch);
}

static void skip_ws(cursor *c)
{
    while (c->i < c->n) {
        char ch = c->s[c->i];
        if (ch != ' ' && ch != '\t' && ch != '\r' && ch != '\n') break;
        c->i++;
    }
}

/* Skip whitespace, then consume ch if it is next. */
static bool eat(cursor *c, char ch)
{
    skip_ws(c);
    if (c->i < c->n && c->s[c->i] == ch) {
        c->i++;
        return true;
    }
    return false;
}

/* A quoted Python string without escapes (keys and dtype codes need none). */
static ra_status parse_string(cursor *c, char *out, size_t outsz, const char *what)
{
    skip_ws(c);
    if (c->i >= c->n || (c->s[c->i] != '\'' && c->s[c->i] != '"')) return expected(c, what);
    char q = c->s[c->i++];
    size_t len = 0;
    while (c->i < c->n && c->s[c->i] != q) {
        char ch = c->s[c->i];
        if (ch == '\\' || ch == '\n' || ch == '\0' || len + 1 >= outsz)
            return expected(c, "a short string without escapes");
        out[len++] = ch;
        c->i++;
    }
    if (c->i >= c->n) return expected(c, "a closing quote");
    c->i++;
    out[len] = '\0';
    return RA_OK;
}

/* A Python int literal: optional '-', digits, optional Python 2 'L'. */
static ra_status parse_int(cursor *c, int64_t *v)
{
    skip_ws(c);
    bool neg = c->i < c->n && c->s[c->i] == '-';
    if (neg) c->i++;
    if (c->i >= c->n || c->s[c->i] < '0' || c->s[c->i] > '9') return expected(c, "a dimension (integer)");
    int64_t x = 0;
    while (c->i < c->n && c->s[c->i] >= '0' && c->s[c->i] <= '9') {
        int d = c->s[c->i++] - '0';
        if (x > (INT64_MAX - d) / 10)
            return RA_FAIL(RA_ERR_FORMAT, "%s: malformed .npy header: dimension at byte %zu overflows int64",
                           c->path, c->base + c->i);
        x = x * 10 + d;
    }
    if (c->i < c->n && (c->s[c->i] == 'L' || c->s[c->i] == 'l')) c->i++;
    *v = neg ? -x : x;
    return RA_OK;
}

static ra_status parse_bool(cursor *c, bool *v)
{
    skip_ws(c);
    const char *rest = c->s + c->i;
    size_t left = c->n - c->i;
    if (left >= 4 && memcmp(rest, "True", 4) == 0) *v = true, c->i += 4;
    else if (left >= 5 && memcmp(rest, "False", 5) == 0) *v = false, c->i += 5;
    else return expected(c, "True or False for 'fortran_order'");
    return RA_OK;
}

/* "()", "(5,)", "(2, 3)" or "(2, 3,)"; "(5)" is an int, not a tuple. */
static ra_status parse_shape(cursor *c, header *h)
{
    if (!eat(c, '(')) return expected(c, "'(' to open the shape tuple");
    h->ndim = 0;
    if (eat(c, ')')) return RA_OK;
    for (;;) {
        int64_t v = 0;
        RA_TRY(parse_int(c, &v));
        if (v < 0)
            return RA_FAIL(RA_ERR_FORMAT, "%s: negative dimension %" PRId64 " in shape; expected sizes >= 0",
                           c->path, v);
        if (h->ndim == RA_NPY_MAX_DIMS)
            return RA_FAIL(RA_ERR_FORMAT, "%s: shape has more than %d dimensions (at most %d supported)",
                           c->path, RA_NPY_MAX_DIMS, RA_NPY_MAX_DIMS);
        h->shape[h->ndim++] = v;
        if (eat(c, ')')) break;
        if (!eat(c, ',')) return expected(c, "',' or ')' in the shape tuple");
        if (eat(c, ')')) return RA_OK;
    }
    if (h->ndim == 1)
        return RA_FAIL(RA_ERR_FORMAT,
                       "%s: malformed .npy header: shape (%" PRId64 ") is not a tuple; expected (%" PRId64 ",)",
                       c->path, h->shape[0], h->shape[0]);
    return RA_OK;
}

static ra_status parse_value(cursor *c, int key, header *h)
{
    if (key == 1) return parse_bool(c, &h->fortran);
    if (key == 2) return parse_shape(c, h);
    skip_ws(c);
    if (c->i < c->n && c->s[c->i] == '[')
        return RA_FAIL(RA_ERR_FORMAT, "%s: unsupported dtype (a structured dtype, descr is a list); " NPY_SUPPORTED,
                       c->path);
    return parse_string(c, h->descr, sizeof h->descr, "a quoted dtype for 'descr'");
}

/* The dict: keys 'descr', 'fortran_order', 'shape' once each, any order,
 * optional trailing comma, then whitespace up to the final newline. */
static ra_status parse_dict(cursor *c, header *h)
{
    static const char *const keys[3] = {"descr", "fortran_order", "shape"};
    bool seen[3] = {false, false, false};
    if (c->n == 0 || c->s[c->n - 1] != '\n')
        return RA_FAIL(RA_ERR_FORMAT, "%s: malformed .npy header: it does not end with a newline", c->path);
    if (!eat(c, '{')) return expected(c, "'{' to open the header dict");
    while (!eat(c, '}')) {
        char key[32];
        RA_TRY(parse_string(c, key, sizeof key, "a quoted key or '}'"));
        int k = 0;
        while (k < 3 && strcmp(key, keys[k]) != 0) k++;
        char shown[4 * sizeof key];
        if (k == 3)
            return RA_FAIL(RA_ERR_FORMAT,
                           "%s: malformed .npy header: unexpected key '%s' (expected 'descr', 'fortran_order', 'shape')",
                           c->path, show(shown, sizeof shown, key));
        if (seen[k]) return RA_FAIL(RA_ERR_FORMAT, "%s: malformed .npy header: key '%s' appears twice", c->path, key);
        seen[k] = true;
        if (!eat(c, ':')) return expected(c, "':' after a key");
        RA_TRY(parse_value(c, k, h));
        if (eat(c, ',')) continue;
        if (!eat(c, '}')) return expected(c, "',' or '}' after a value");
        break;
    }
    for (int k = 0; k < 3; k++)
        if (!seen[k])
            return RA_FAIL(RA_ERR_FORMAT, "%s: malformed .npy header: key '%s' is missing", c->path, keys[k]);
    skip_ws(c);
    if (c->i != c->n) return expected(c, "only padding after the header dict");
    return RA_OK;
}

/* Product of the shape, refusing what numpy refuses: the byte count of the
 * non-zero extents must fit in int64 even when a zero extent makes the
 * array empty (numpy 1.24: np.zeros((2**61 - 1, 0), 'f4') is made,
 * (2**61, 0) is "too big"; np.load refuses such a header the same way). */
static ra_status shape_count(const char *path, ra_status code, int ndim, const int64_t *shape,
                             int itemsize, int64_t *count)
{
    int empty = 0;
    for (int d = 0; d < ndim; d++) empty |= shape[d] == 0;
    int64_t n = 1;
    for (int d = 0; d < ndim; d++) {
        if (shape[d] == 0) continue;
        if (n > INT64_MAX / itemsize / shape[d]) {
            char buf[256];
            ra_shape_str(buf, sizeof buf, ndim, shape);
            if (empty)
                return RA_FAIL(code, "%s: shape %s is empty, but the byte count of its non-zero extents overflows "
                               "int64 (numpy refuses it as too big)", path, buf);
            return RA_FAIL(code, "%s: shape %s has too many elements (byte count overflows int64)", path, buf);
        }
        n *= shape[d];
    }
    *count = empty ? 0 : n;
    return RA_OK;
}

/* Magic, version and header length; sets *hlen and f->data_offset. */
static ra_status read_preamble(ra_npy *f, int64_t size, uint32_t *hlen)
{
    unsigned char pre[12] = {0};
    RA_TRY(ra_pread_full(f->fd, f->path, pre, (size_t)(size < 12 ? size : 12), 0));
    if (size < NPY_MAGIC_LEN || memcmp(pre, NPY_MAGIC, NPY_MAGIC_LEN) != 0)
        return RA_FAIL(RA_ERR_FORMAT, "%s: not a .npy file (bad magic; expected \"\\x93NUMPY\" at byte 0)",
                       f->path);
    if (size < 8)
        return RA_FAIL(RA_ERR_FORMAT, "%s: truncated: file ends inside the preamble (file has %" PRId64 " bytes)",
                       f->path, size);
    int major = pre[6], minor = pre[7];
    if (major < 1 || major > 3 || minor != 0)
        return RA_FAIL(RA_ERR_FORMAT, "%s: unsupported .npy format version %d.%d (expected 1.0, 2.0 or 3.0)",
                       f->path, major, minor);
    int prelen = major == 1 ? 10 : 12; /* 1.0: uint16 length; 2.0/3.0: uint32 */
    if (size < prelen)
        return RA_FAIL(RA_ERR_FORMAT, "%s: truncated: file ends inside the preamble (file has %" PRId64
                       " bytes, version %d.0 needs %d)", f->path, size, major, prelen);
    *hlen = (uint32_t)pre[8] | (uint32_t)pre[9] << 8;
    if (major > 1) *hlen |= (uint32_t)pre[10] << 16 | (uint32_t)pre[11] << 24;
    f->data_offset = prelen + (int64_t)*hlen;
    if (f->data_offset > size)
        return RA_FAIL(RA_ERR_FORMAT, "%s: truncated: header length %" PRIu32 " runs to byte %" PRId64
                       ", file has %" PRId64 " bytes", f->path, *hlen, f->data_offset, size);
    if (*hlen > NPY_MAX_HEADER)
        return RA_FAIL(RA_ERR_FORMAT, "%s: header of %" PRIu32 " bytes exceeds the %d-byte limit",
                       f->path, *hlen, NPY_MAX_HEADER);
    return RA_OK;
}

/* Fill f from its header text and check the dtype and order it declares. */
static ra_status parse_header(ra_npy *f, const char *text, uint32_t hlen)
{
    cursor c = {f->path, text, hlen, 0, (size_t)(f->data_offset - hlen)};
    header h;
    memset(&h, 0, sizeof h);
    RA_TRY(parse_dict(&c, &h));
    RA_TRY(parse_descr(f->path, h.descr, &f->dtype));
    if (h.fortran)
        return RA_FAIL(RA_ERR_FORMAT, "%s: Fortran-ordered arrays are not supported; save with np.ascontiguousarray",
                       f->path);
    f->ndim = h.ndim;
    memcpy(f->shape, h.shape, sizeof f->shape);
    return shape_count(f->path, RA_ERR_FORMAT, f->ndim, f->shape, ra_dtype_size(f->dtype), &f->count);
}

static ra_status read_header(ra_npy *f)
{
    struct stat st;
    if (fstat(f->fd, &st) != 0)
        return RA_FAIL(RA_ERR_IO, "%s: cannot stat: %s", f->path, strerror(errno));
    if (!S_ISREG(st.st_mode)) return RA_FAIL(RA_ERR_IO, "%s: not a regular file", f->path);
    int64_t size = (int64_t)st.st_size;
    uint32_t hlen = 0;
    RA_TRY(read_preamble(f, size, &hlen));
    char *text = malloc(hlen ? hlen : 1);
    if (!text) return RA_FAIL(RA_ERR_NOMEM, "%s: cannot allocate %" PRIu32 " bytes for the header", f->path, hlen);
    ra_status s = ra_pread_full(f->fd, f->path, text, hlen, f->data_offset - hlen);
    if (s == RA_OK) s = parse_header(f, text, hlen);
    free(text);
    RA_TRY(s);
    int64_t need = f->count * ra_dtype_size(f->dtype);
    if (need > size - f->data_offset)
        return RA_FAIL(RA_ERR_FORMAT, "%s: truncated: header promises %" PRId64 " bytes of data after offset %"
                       PRId64 ", file has %" PRId64 " bytes", f->path, need, f->data_offset, size);
    return RA_OK;
}

/* ---- open / close ---------------------------------------------------- */

/* Reset f and record the name; a non-empty path marks fd as ours (a zeroed
 * ra_npy has fd 0, which ra_npy_close must not close). */
static ra_status init_handle(ra_npy *f, const char *path)
{
    memset(f, 0, sizeof *f);
    f->fd = -1;
    if (!path || !path[0]) return RA_FAIL(RA_ERR_ARG, "empty .npy path");
    if (strlen(path) >= sizeof f->path)
        return RA_FAIL(RA_ERR_ARG, "%.100s...: path longer than %zu bytes", path, sizeof f->path - 1);
    strcpy(f->path, path);
    return RA_OK;
}

/* The temporary name "<path>.tmp" (fileio.h), refusing empty or long paths. */
static ra_status tmp_name(char *out, size_t cap, const char *path)
{
    if (!ra_tmp_name(out, cap, path))
        return RA_FAIL(RA_ERR_ARG, "%.100s: path empty or too long for a " RA_TMP_SUFFIX " name", path ? path : "(null)");
    return RA_OK;
}

ra_status ra_npy_open(ra_npy *f, const char *path)
{
    RA_TRY(init_handle(f, path));
    /* a FIFO, directory or device is refused by name, without blocking */
    RA_TRY(ra_file_open_input(path, ".npy file", &f->fd, NULL));
    ra_status s = read_header(f);
    if (s != RA_OK) ra_npy_close(f);
    return s;
}

void ra_npy_close(ra_npy *f)
{
    if (!f) return;
    if (f->fd >= 0 && f->path[0]) close(f->fd);
    f->fd = -1;
}

/* ---- reading --------------------------------------------------------- */

static ra_status check_range(const ra_npy *f, int64_t first, int64_t count, const void *buf)
{
    if (f->fd < 0) return RA_FAIL(RA_ERR_ARG, "%s: file is not open", f->path);
    if (first < 0 || count < 0 || first > f->count || count > f->count - first)
        return RA_FAIL(RA_ERR_ARG, "%s: range first=%" PRId64 " count=%" PRId64 " is outside the array of %" PRId64
                       " elements", f->path, first, count, f->count);
    if (count > 0 && !buf) return RA_FAIL(RA_ERR_ARG, "%s: NULL buffer for %" PRId64 " elements", f->path, count);
    return RA_OK;
}

static int64_t elem_offset(const ra_npy *f, int64_t i)
{
    return f->data_offset + i * ra_dtype_size(f->dtype);
}

/* Narrow n wide (8-byte) elements read at element index at into dst[0..n). */
typedef ra_status (*narrow_fn)(const ra_npy *f, const void *wide, int64_t at, int64_t n, void *dst);

static ra_status f64_to_f32(const ra_npy *f, const void *wide, int64_t at, int64_t n, void *dst)
{
    (void)f, (void)at;
    const double *w = wide;
    float *d = dst;
    /* values beyond float range become +-inf, as numpy's astype does */
    for (int64_t i = 0; i < n; i++) d[i] = (float)w[i];
    return RA_OK;
}

static ra_status i64_to_i32(const ra_npy *f, const void *wide, int64_t at, int64_t n, void *dst)
{
    const int64_t *w = wide;
    int32_t *d = dst;
    for (int64_t i = 0; i < n; i++) {
        if (w[i] < INT32_MIN || w[i] > INT32_MAX)
            return RA_FAIL(RA_ERR_FORMAT, "%s: element %" PRId64 " is %" PRId64 ", outside the int32 range of the int64 file",
                           f->path, at + i, w[i]);
        d[i] = (int32_t)w[i];
    }
    return RA_OK;
}

/* count elements from first into dst (4-byte elements): read directly when
 * the file holds the native dtype, chunk by chunk through narrow when it
 * holds the wide one, refused otherwise (want names what is accepted). */
static ra_status read_as(const ra_npy *f, int64_t first, int64_t count, void *dst, ra_dtype native, ra_dtype wide,
                         narrow_fn narrow, const char *want)
{
    RA_TRY(check_range(f, first, count, dst));
    if (f->dtype == native) return ra_pread_full(f->fd, f->path, dst, (size_t)count * 4, elem_offset(f, first));
    if (f->dtype != wide)
        return RA_FAIL(RA_ERR_FORMAT, "%s: dtype is %s ('%s'), expected %s", f->path, ra_dtype_name(f->dtype),
                       dtype_descr(f->dtype), want);
    uint64_t buf[NPY_CHUNK_BYTES / sizeof(uint64_t)];
    const int64_t chunk = (int64_t)(sizeof buf / sizeof buf[0]);
    for (int64_t done = 0; done < count;) {
        int64_t n = count - done < chunk ? count - done : chunk;
        RA_TRY(ra_pread_full(f->fd, f->path, buf, (size_t)n * sizeof buf[0], elem_offset(f, first + done)));
        RA_TRY(narrow(f, buf, first + done, n, (char *)dst + (size_t)done * 4));
        done += n;
    }
    return RA_OK;
}

ra_status ra_npy_read_f32(const ra_npy *f, int64_t first, int64_t count, float *dst)
{
    return read_as(f, first, count, dst, RA_DT_F32, RA_DT_F64, f64_to_f32, "float32 or float64 to read as float32");
}

ra_status ra_npy_read_f64(const ra_npy *f, int64_t first, int64_t count, double *dst)
{
    RA_TRY(check_range(f, first, count, dst));
    if (f->dtype == RA_DT_F64) return ra_pread_full(f->fd, f->path, dst, (size_t)count * 8, elem_offset(f, first));
    if (f->dtype != RA_DT_F32)
        return RA_FAIL(RA_ERR_FORMAT, "%s: dtype is %s ('%s'), expected float32 or float64 to read as float64",
                       f->path, ra_dtype_name(f->dtype), dtype_descr(f->dtype));
    float buf[NPY_CHUNK_BYTES / sizeof(float)];
    const int64_t chunk = (int64_t)(sizeof buf / sizeof buf[0]);
    for (int64_t done = 0; done < count;) {
        int64_t n = count - done < chunk ? count - done : chunk;
        RA_TRY(ra_pread_full(f->fd, f->path, buf, (size_t)n * 4, elem_offset(f, first + done)));
        for (int64_t i = 0; i < n; i++) dst[done + i] = buf[i]; /* exact */
        done += n;
    }
    return RA_OK;
}

ra_status ra_npy_read_i32(const ra_npy *f, int64_t first, int64_t count, int32_t *dst)
{
    return read_as(f, first, count, dst, RA_DT_I32, RA_DT_I64, i64_to_i32, "int32 or int64 to read as int32");
}

/* ---- writing --------------------------------------------------------- */

/* numpy's repr of a shape tuple: "()", "(5,)", "(2, 3)". */
static void shape_tuple(char *buf, size_t cap, int ndim, const int64_t *shape)
{
    size_t len = (size_t)snprintf(buf, cap, "(");
    for (int d = 0; d < ndim && len < cap; d++)
        len += (size_t)snprintf(buf + len, cap - len, "%s%" PRId64, d ? ", " : "", shape[d]);
    if (len < cap) snprintf(buf + len, cap - len, ndim == 1 ? ",)" : ")");
}

/* The header np.save writes (byte for byte, numpy >= 1.24): the dict, spare
 * spaces for growing the first dim, padding so the data starts on a 64-byte
 * boundary, and '\n'. With <= 8 dims it is < 512 bytes, so version 1.0
 * always suffices (numpy moves to 2.0 only past 65535 bytes). */
static size_t build_header(char *buf, size_t cap, ra_dtype dt, int ndim, const int64_t *shape)
{
    char tuple[RA_NPY_MAX_DIMS * 22 + 4], first[24];
    shape_tuple(tuple, sizeof tuple, ndim, shape);
    int growth = 0;
    if (ndim > 0) growth = NPY_GROWTH_DIGITS - snprintf(first, sizeof first, "%" PRId64, shape[0]);
    char dict[sizeof tuple + 64];
    int dlen = snprintf(dict, sizeof dict, "{'descr': '%s', 'fortran_order': False, 'shape': %s, }",
                        dtype_descr(dt), tuple);
    size_t body = (size_t)dlen + (size_t)growth + 1;
    size_t total = 10 + body + (NPY_ALIGN - (10 + body) % NPY_ALIGN);
    RA_ASSERT(total <= cap && total - 10 <= 0xFFFF, "a header of <= 8 dims fits version 1.0");
    memcpy(buf, NPY_MAGIC "\x01\x00", 8);
    buf[8] = (char)((total - 10) & 0xFF);
    buf[9] = (char)((total - 10) >> 8);
    memcpy(buf + 10, dict, (size_t)dlen);
    memset(buf + 10 + dlen, ' ', total - 11 - (size_t)dlen);
    buf[total - 1] = '\n';
    return total;
}

static ra_status check_new_shape(const char *path, int ndim, const int64_t *shape)
{
    if (ndim < 0 || ndim > RA_NPY_MAX_DIMS)
        return RA_FAIL(RA_ERR_ARG, "%s: ndim %d out of range 0..%d", path, ndim, RA_NPY_MAX_DIMS);
    if (ndim > 0 && !shape) return RA_FAIL(RA_ERR_ARG, "%s: NULL shape for ndim %d", path, ndim);
    for (int d = 0; d < ndim; d++)
        if (shape[d] < 0)
            return RA_FAIL(RA_ERR_ARG, "%s: dimension %d is %" PRId64 ", expected >= 0", path, d, shape[d]);
    return RA_OK;
}

static ra_status ftruncate_retry(const ra_npy *f, int64_t size)
{
    int r;
    while ((r = ftruncate(f->fd, (off_t)size)) != 0 && errno == EINTR) {}
    if (r != 0)
        return RA_FAIL(RA_ERR_IO, "%s: cannot size to %" PRId64 " bytes: %s", f->path, size, strerror(errno));
    return RA_OK;
}

/* Header and full size, on an fd already open for f->path. */
static ra_status write_layout(ra_npy *f)
{
    char hdr[512];
    size_t hlen = build_header(hdr, sizeof hdr, f->dtype, f->ndim, f->shape);
    f->data_offset = (int64_t)hlen;
    RA_TRY(ra_pwrite_full(f->fd, f->path, hdr, hlen, 0));
    return ftruncate_retry(f, f->data_offset + f->count * ra_dtype_size(f->dtype));
}

/* A closed handle named "<path>.tmp", for a new array of the given shape. */
static ra_status tmp_handle(ra_npy *f, const char *path, int ndim, const int64_t *shape)
{
    char part[sizeof f->path];
    memset(f, 0, sizeof *f);
    f->fd = -1;
    RA_TRY(tmp_name(part, sizeof part, path));
    RA_TRY(init_handle(f, part));
    return check_new_shape(f->path, ndim, shape);
}

static ra_status create_tmp(ra_npy *f, const char *path, ra_dtype dt, int ndim, const int64_t *shape)
{
    RA_TRY(tmp_handle(f, path, ndim, shape));
    f->dtype = dt;
    f->ndim = ndim;
    if (ndim > 0) memcpy(f->shape, shape, (size_t)ndim * sizeof *shape);
    RA_TRY(shape_count(f->path, RA_ERR_ARG, ndim, f->shape, ra_dtype_size(dt), &f->count));
    RA_TRY(ra_atomic_create(path, &f->fd));
    ra_status s = write_layout(f);
    if (s != RA_OK) {
        ra_npy_close(f);
        ra_atomic_abort(path);
    }
    return s;
}

ra_status ra_npy_create_f32(ra_npy *f, const char *path, int ndim, const int64_t *shape)
{
    return create_tmp(f, path, RA_DT_F32, ndim, shape);
}

ra_status ra_npy_open_partial(ra_npy *f, const char *path, int ndim, const int64_t *shape)
{
    RA_TRY(tmp_handle(f, path, ndim, shape));
    RA_TRY(ra_atomic_open_tmp(path, &f->fd));
    ra_status s = read_header(f);
    char want[256], got[256];
    if (s == RA_OK && f->dtype != RA_DT_F32)
        s = RA_FAIL(RA_ERR_FORMAT, "%s: dtype is %s ('%s'), expected float32 ('<f4')", f->path,
                    ra_dtype_name(f->dtype), dtype_descr(f->dtype));
    if (s == RA_OK && (f->ndim != ndim || (ndim > 0 && memcmp(f->shape, shape, (size_t)ndim * sizeof *shape))))
        s = RA_FAIL(RA_ERR_SHAPE, "%s: header shape %s, expected %s", f->path,
                    ra_shape_str(got, sizeof got, f->ndim, f->shape), ra_shape_str(want, sizeof want, ndim, shape));
    if (s != RA_OK) ra_npy_close(f);
    return s;
}

static ra_status write_raw(const ra_npy *f, int64_t first, int64_t count, const void *src)
{
    RA_TRY(check_range(f, first, count, src));
    return ra_pwrite_full(f->fd, f->path, src, (size_t)count * (size_t)ra_dtype_size(f->dtype), elem_offset(f, first));
}

ra_status ra_npy_write_f32(const ra_npy *f, int64_t first, int64_t count, const float *src)
{
    if (f->dtype != RA_DT_F32)
        return RA_FAIL(RA_ERR_ARG, "%s: dtype is %s, cannot write float32", f->path, ra_dtype_name(f->dtype));
    return write_raw(f, first, count, src);
}

ra_status ra_npy_sync_close(ra_npy *f)
{
    if (f->fd < 0) return RA_FAIL(RA_ERR_ARG, "%s: file is not open", f->path);
    int fd = f->fd;
    f->fd = -1;
    return ra_file_sync_close(fd, f->path);
}

ra_status ra_npy_commit(const char *path)
{
    return ra_atomic_commit(path);
}

void ra_npy_abort(const char *path)
{
    ra_atomic_abort(path); /* quiet: must not overwrite the error being reported */
}

/* ---- whole arrays ---------------------------------------------------- */

/* The whole array at "<path>.tmp", synced (removed on failure); renamed
 * over path too when commit. */
static ra_status save_array(const char *path, ra_dtype dt, int ndim, const int64_t *shape, const void *data,
                            int commit)
{
    ra_npy f;
    RA_TRY(create_tmp(&f, path, dt, ndim, shape));
    ra_status s = write_raw(&f, 0, f.count, data);
    if (s == RA_OK) s = ra_npy_sync_close(&f);
    else ra_npy_close(&f);
    if (s == RA_OK && commit) s = ra_npy_commit(path);
    if (s != RA_OK) ra_npy_abort(path);
    return s;
}

ra_status ra_npy_stage_i32(const char *path, int ndim, const int64_t *shape, const int32_t *data)
{
    return save_array(path, RA_DT_I32, ndim, shape, data, 0);
}

ra_status ra_npy_save_f32(const char *path, int ndim, const int64_t *shape, const float *data)
{
    return save_array(path, RA_DT_F32, ndim, shape, data, 1);
}

ra_status ra_npy_save_i32(const char *path, int ndim, const int64_t *shape, const int32_t *data)
{
    return save_array(path, RA_DT_I32, ndim, shape, data, 1);
}

ra_status ra_npy_load_f32(const char *path, ra_npy *info, float **out)
{
    if (!out) return RA_FAIL(RA_ERR_ARG, "%s: NULL output pointer", path ? path : "(null)");
    *out = NULL;
    ra_npy f;
    RA_TRY(ra_npy_open(&f, path));
    if ((uint64_t)f.count > SIZE_MAX / sizeof(float)) {
        ra_npy_close(&f);
        return RA_FAIL(RA_ERR_NOMEM, "%s: %" PRId64 " elements do not fit in memory", f.path, f.count);
    }
    float *buf = malloc(f.count > 0 ? (size_t)f.count * sizeof(float) : 1);
    if (!buf) {
        ra_npy_close(&f);
        return RA_FAIL(RA_ERR_NOMEM, "%s: cannot allocate %" PRId64 " floats", f.path, f.count);
    }
    ra_status s = ra_npy_read_f32(&f, 0, f.count, buf);
    ra_npy_close(&f);
    if (s != RA_OK) {
        free(buf);
        return s;
    }
    if (info) *info = f;
    *out = buf;
    return RA_OK;
}

/* ---- messages -------------------------------------------------------- */

const char *ra_shape_str(char *buf, int buflen, int ndim, const int64_t *shape)
{
    if (!buf || buflen <= 0) return "";
    size_t cap = (size_t)buflen, len = (size_t)snprintf(buf, cap, "[");
    if (ndim > 0 && !shape) ndim = 0;
    for (int d = 0; d < ndim && len < cap; d++)
        len += (size_t)snprintf(buf + len, cap - len, "%s%" PRId64, d ? ", " : "", shape[d]);
    if (len < cap) len += (size_t)snprintf(buf + len, cap - len, "]");
    /* mark a cut-off rendering so it is not mistaken for a shorter shape */
    if (len >= cap && cap >= 4) memcpy(buf + cap - 4, "...", 4);
    return buf;
}
