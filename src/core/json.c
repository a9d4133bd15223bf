/* json.c - the JSON reader and writer of json.h (docs/design.md §14).
 *
 * Decisions:
 * - One pass over the text. Every decoded string goes into one arena of
 *   len + 1 bytes, allocated up front: a string literal of r bytes (quotes
 *   included) decodes to at most r - 2 bytes plus a NUL, so the arena never
 *   grows and its pointers stay valid.
 * - Values are built on a stack; when a container closes, its children are
 *   copied to the end of one output array (contiguous, in file order) and
 *   the container keeps their first index; pointers are fixed up once the
 *   parse is over (the arrays grow by doubling, so indices, not pointers,
 *   are stored meanwhile). Recursion follows the nesting, at most
 *   RA_JSON_MAX_DEPTH deep; the node count is capped by max_nodes.
 * - Duplicate keys are found by sorting the keys of each object when it
 *   closes (n log n, never quadratic).
 * - Numbers follow the JSON grammar exactly and are converted with strtod
 *   (the C locale is never changed by ringattn); integers without fraction
 *   or exponent are also parsed exactly into int64 when they fit. */
#include "json.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NUM_MAX 400 /* characters of a number literal */

struct ra_json_doc {
    ra_json root;
    ra_json *nodes; /* every child, containers' children contiguous */
    char *arena;    /* decoded strings */
};

typedef struct {
    const char *s;
    size_t len, pos;
    const char *what;
    size_t max_nodes, count;
    char *arena;
    size_t used;
    ra_json *stack;
    size_t nstack, capstack;
    ra_json *out;
    size_t nout, capout;
    int depth;
} parser;

const char *ra_json_where(char *out, size_t cap, const char *text, size_t len, size_t offset)
{
    size_t line = 1, col = 1;
    if (offset > len) offset = len;
    for (size_t i = 0; i < offset; i++) {
        if (text[i] == '\n') line++, col = 1;
        else col++;
    }
    snprintf(out, cap, "line %zu, column %zu (byte %zu)", line, col, offset);
    return out;
}

static ra_status perr(const parser *p, size_t at, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static ra_status perr(const parser *p, size_t at, const char *fmt, ...)
{
    char msg[256], where[96];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    ra_json_where(where, sizeof where, p->s, p->len, at);
    return RA_FAIL(RA_ERR_FORMAT, "%s: invalid JSON at %s: %s", p->what, where, msg);
}

/* A character for messages: 'x', or its code. */
static const char *show_char(char *buf, size_t cap, unsigned char c)
{
    if (c >= 0x20 && c < 0x7f) snprintf(buf, cap, "'%c'", c);
    else if (c == 0) snprintf(buf, cap, "a NUL byte");
    else snprintf(buf, cap, "byte 0x%02x", c);
    return buf;
}

static void skip_ws(parser *p)
{
    while (p->pos < p->len) {
        char c = p->s[p->pos];
        if (c != ' ' && c != '\t' && c != '\n' && c != '\r') break;
        p->pos++;
    }
}

/* Length of the valid UTF-8 sequence at s (n bytes available), 0 if invalid. */
static size_t utf8_seq(const unsigned char *s, size_t n)
{
    unsigned c = s[0];
    if (c < 0x80) return 1;
    size_t k;
    unsigned cp, min;
    if (c >= 0xc2 && c <= 0xdf) k = 2, cp = c & 0x1f, min = 0x80;
    else if (c >= 0xe0 && c <= 0xef) k = 3, cp = c & 0x0f, min = 0x800;
    else if (c >= 0xf0 && c <= 0xf4) k = 4, cp = c & 0x07, min = 0x10000;
    else return 0;
    if (n < k) return 0;
    for (size_t i = 1; i < k; i++) {
        if ((s[i] & 0xc0) != 0x80) return 0;
        cp = cp << 6 | (s[i] & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return 0;
    return k;
}

int ra_json_utf8_valid(const char *s, size_t n)
{
    const unsigned char *u = (const unsigned char *)s;
    for (size_t i = 0; i < n;) {
        size_t k = utf8_seq(u + i, n - i);
        if (!k) return 0;
        i += k;
    }
    return 1;
}

static size_t put_utf8(char *d, unsigned cp)
{
    if (cp < 0x80) {
        d[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        d[0] = (char)(0xc0 | cp >> 6), d[1] = (char)(0x80 | (cp & 0x3f));
        return 2;
    }
    if (cp < 0x10000) {
        d[0] = (char)(0xe0 | cp >> 12), d[1] = (char)(0x80 | ((cp >> 6) & 0x3f)), d[2] = (char)(0x80 | (cp & 0x3f));
        return 3;
    }
    d[0] = (char)(0xf0 | cp >> 18), d[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
    d[2] = (char)(0x80 | ((cp >> 6) & 0x3f)), d[3] = (char)(0x80 | (cp & 0x3f));
    return 4;
}

/* Four hex digits at pos (after "\u"). */
static int hex4(const parser *p, size_t pos, unsigned *out)
{
    if (p->len - pos < 4) return 0;
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        char c = p->s[pos + i];
        v <<= 4;
        if (c >= '0' && c <= '9') v |= (unsigned)(c - '0');
        else if (c >= 'a' && c <= 'f') v |= (unsigned)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F') v |= (unsigned)(c - 'A' + 10);
        else return 0;
    }
    *out = v;
    return 1;
}

/* The string literal at pos (a '"'), decoded into the arena. */
static ra_status parse_string(parser *p, const char **out, size_t *outlen)
{
    const size_t start = p->pos;
    char *d = p->arena + p->used, *d0 = d;
    char cb[32];
    p->pos++;
    for (;;) {
        if (p->pos >= p->len) return perr(p, start, "unterminated string");
        unsigned char c = (unsigned char)p->s[p->pos];
        if (c == '"') {
            p->pos++;
            break;
        }
        if (c < 0x20)
            return perr(p, p->pos, "%s inside a string (control characters must be escaped)",
                        show_char(cb, sizeof cb, c));
        if (c == '\\') {
            if (p->pos + 1 >= p->len) return perr(p, start, "unterminated string");
            char e = p->s[p->pos + 1];
            const char *simple = strchr("\"\\/bfnrt", e);
            if (e && simple) {
                static const char repl[] = "\"\\/\b\f\n\r\t";
                *d++ = repl[simple - "\"\\/bfnrt"];
                p->pos += 2;
                continue;
            }
            if (e != 'u') return perr(p, p->pos, "invalid escape \\%s", show_char(cb, sizeof cb, (unsigned char)e));
            unsigned cp;
            if (!hex4(p, p->pos + 2, &cp)) return perr(p, p->pos, "\\u needs four hex digits");
            size_t esc = p->pos;
            p->pos += 6;
            if (cp >= 0xdc00 && cp <= 0xdfff) return perr(p, esc, "lone low surrogate \\u%04x", cp);
            if (cp >= 0xd800 && cp <= 0xdbff) {
                unsigned lo;
                if (p->len - p->pos < 6 || p->s[p->pos] != '\\' || p->s[p->pos + 1] != 'u' ||
                    !hex4(p, p->pos + 2, &lo) || lo < 0xdc00 || lo > 0xdfff)
                    return perr(p, esc, "high surrogate \\u%04x without a low surrogate after it", cp);
                cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
                p->pos += 6;
            }
            if (cp == 0) return perr(p, esc, "\\u0000 (a NUL character) inside a string");
            d += put_utf8(d, cp);
            continue;
        }
        size_t k = utf8_seq((const unsigned char *)p->s + p->pos, p->len - p->pos);
        if (!k) return perr(p, p->pos, "invalid UTF-8 inside a string");
        memcpy(d, p->s + p->pos, k);
        d += k;
        p->pos += k;
    }
    *d++ = '\0';
    *out = d0;
    *outlen = (size_t)(d - d0) - 1;
    p->used += (size_t)(d - d0);
    return RA_OK;
}

static ra_status parse_number(parser *p, ra_json *v)
{
    const size_t start = p->pos;
    const char *s = p->s;
    size_t i = p->pos;
    int integral = 1;
    if (i < p->len && s[i] == '-') i++;
    if (i < p->len && s[i] == '0') i++;
    else if (i < p->len && s[i] >= '1' && s[i] <= '9')
        while (i < p->len && s[i] >= '0' && s[i] <= '9') i++;
    else return perr(p, start, "invalid number (a digit must follow '-')");
    if (i < p->len && s[i] == '.') {
        integral = 0;
        i++;
        if (i >= p->len || s[i] < '0' || s[i] > '9') return perr(p, start, "invalid number (a digit must follow '.')");
        while (i < p->len && s[i] >= '0' && s[i] <= '9') i++;
    }
    if (i < p->len && (s[i] == 'e' || s[i] == 'E')) {
        integral = 0;
        i++;
        if (i < p->len && (s[i] == '+' || s[i] == '-')) i++;
        if (i >= p->len || s[i] < '0' || s[i] > '9')
            return perr(p, start, "invalid number (a digit must follow the exponent)");
        while (i < p->len && s[i] >= '0' && s[i] <= '9') i++;
    }
    if (i - start > NUM_MAX) return perr(p, start, "number of %zu characters (at most %d)", i - start, NUM_MAX);
    char buf[NUM_MAX + 1];
    memcpy(buf, s + start, i - start);
    buf[i - start] = '\0';
    double d = strtod(buf, NULL);
    if (!isfinite(d)) return perr(p, start, "number %.40s%s is out of range", buf, i - start > 40 ? "..." : "");
    v->type = RA_JSON_NUMBER;
    v->num = d;
    if (d == 0) /* 1e-400 reads as 0: say so rather than "= 0" (a nonzero digit before the exponent) */
        for (const char *q = buf; *q && *q != 'e' && *q != 'E'; q++) v->underflow |= *q >= '1' && *q <= '9';
    if (integral) {
        const char *q = buf;
        int neg = *q == '-';
        if (neg) q++;
        uint64_t acc = 0, lim = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
        int fits = 1;
        for (; *q; q++) {
            unsigned dgt = (unsigned)(*q - '0');
            if (acc > (lim - dgt) / 10) {
                fits = 0;
                break;
            }
            acc = acc * 10 + dgt;
        }
        if (fits) {
            v->is_int = 1;
            v->i = neg ? (acc == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)acc) : (int64_t)acc;
        }
    }
    p->pos = i;
    return RA_OK;
}

static ra_status push(parser *p, const ra_json *v)
{
    if (p->nstack == p->capstack) {
        size_t cap = p->capstack ? 2 * p->capstack : 64;
        ra_json *n = realloc(p->stack, cap * sizeof *n);
        if (!n) return RA_FAIL(RA_ERR_NOMEM, "%s: out of memory parsing JSON", p->what);
        p->stack = n, p->capstack = cap;
    }
    p->stack[p->nstack++] = *v;
    return RA_OK;
}

typedef struct {
    const char *key;
    size_t offset;
} key_at;

static int cmp_key(const void *a, const void *b)
{
    const key_at *x = a, *y = b;
    int c = strcmp(x->key, y->key);
    if (c) return c;
    return x->offset < y->offset ? -1 : x->offset > y->offset;
}

/* The children stack[base..] become v's: copied to the output array. */
static ra_status close_container(parser *p, ra_json *v, size_t base)
{
    size_t n = p->nstack - base;
    if (v->type == RA_JSON_OBJECT && n > 1) {
        key_at *k = malloc(n * sizeof *k);
        if (!k) return RA_FAIL(RA_ERR_NOMEM, "%s: out of memory parsing JSON", p->what);
        for (size_t j = 0; j < n; j++) k[j] = (key_at){ p->stack[base + j].key, p->stack[base + j].offset };
        qsort(k, n, sizeof *k, cmp_key);
        for (size_t j = 1; j < n; j++)
            if (!strcmp(k[j].key, k[j - 1].key)) {
                char key[80];
                snprintf(key, sizeof key, "%.64s%s", k[j].key, strlen(k[j].key) > 64 ? "..." : "");
                size_t at = k[j].offset;
                free(k);
                return perr(p, at, "key \"%s\" appears twice in one object", key);
            }
        free(k);
    }
    if (p->capout - p->nout < n) {
        size_t cap = p->capout ? p->capout : 64;
        while (cap - p->nout < n) cap *= 2;
        ra_json *o = realloc(p->out, cap * sizeof *o);
        if (!o) return RA_FAIL(RA_ERR_NOMEM, "%s: out of memory parsing JSON", p->what);
        p->out = o, p->capout = cap;
    }
    if (n) memcpy(p->out + p->nout, p->stack + base, n * sizeof *p->out);
    v->n = n;
    v->i = (int64_t)p->nout; /* the first child's index, fixed up at the end */
    p->nout += n;
    p->nstack = base;
    return RA_OK;
}

static ra_status parse_value(parser *p, ra_json *v);

static ra_status parse_container(parser *p, ra_json *v, int object)
{
    const char close = object ? '}' : ']';
    if (++p->depth > RA_JSON_MAX_DEPTH) return perr(p, p->pos, "nested deeper than %d levels", RA_JSON_MAX_DEPTH);
    v->type = object ? RA_JSON_OBJECT : RA_JSON_ARRAY;
    const size_t base = p->nstack;
    char cb[32];
    p->pos++;
    skip_ws(p);
    if (p->pos < p->len && p->s[p->pos] == close) {
        p->pos++;
    } else {
        for (;;) {
            ra_json c = { 0 };
            const char *key = NULL;
            if (object) {
                skip_ws(p);
                if (p->pos >= p->len) return perr(p, p->pos, "unexpected end inside an object");
                if (p->s[p->pos] != '"')
                    return perr(p, p->pos, "expected a string key, found %s",
                                show_char(cb, sizeof cb, (unsigned char)p->s[p->pos]));
                size_t kl, kat = p->pos;
                RA_TRY(parse_string(p, &key, &kl));
                skip_ws(p);
                if (p->pos >= p->len || p->s[p->pos] != ':')
                    return perr(p, p->pos < p->len ? p->pos : kat, "expected ':' after the key \"%.64s\"", key);
                p->pos++;
                RA_TRY(parse_value(p, &c));
                c.key = key;
                c.offset = kat;
            } else {
                RA_TRY(parse_value(p, &c));
            }
            RA_TRY(push(p, &c));
            skip_ws(p);
            if (p->pos >= p->len) return perr(p, p->pos, "unexpected end inside an %s", object ? "object" : "array");
            char d = p->s[p->pos];
            p->pos++;
            if (d == ',') continue;
            if (d == close) break;
            return perr(p, p->pos - 1, "expected ',' or '%c', found %s", close, show_char(cb, sizeof cb, (unsigned char)d));
        }
    }
    p->depth--;
    return close_container(p, v, base);
}

static ra_status parse_value(parser *p, ra_json *v)
{
    char cb[32];
    skip_ws(p);
    if (p->pos >= p->len) return perr(p, p->pos, "unexpected end of the text (a value is missing)");
    if (++p->count > p->max_nodes) return perr(p, p->pos, "more than %zu values", p->max_nodes);
    v->offset = p->pos;
    const char c = p->s[p->pos];
    switch (c) {
    case '{': return parse_container(p, v, 1);
    case '[': return parse_container(p, v, 0);
    case '"':
        v->type = RA_JSON_STRING;
        return parse_string(p, &v->str, &v->len);
    case 't':
    case 'f':
    case 'n': {
        const char *w = c == 't' ? "true" : c == 'f' ? "false" : "null";
        size_t n = strlen(w);
        if (p->len - p->pos < n || memcmp(p->s + p->pos, w, n) != 0)
            return perr(p, p->pos, "unexpected %s (not true, false or null)", show_char(cb, sizeof cb, (unsigned char)c));
        v->type = c == 'n' ? RA_JSON_NULL : RA_JSON_BOOL;
        v->boolean = c == 't';
        p->pos += n;
        return RA_OK;
    }
    default:
        if (c == '-' || (c >= '0' && c <= '9')) return parse_number(p, v);
        return perr(p, p->pos, "unexpected %s", show_char(cb, sizeof cb, (unsigned char)c));
    }
}

static void fixup(ra_json *v, ra_json *nodes)
{
    if (v->type == RA_JSON_ARRAY || v->type == RA_JSON_OBJECT) {
        v->kids = v->n ? nodes + v->i : NULL;
        v->i = 0;
    }
}

ra_status ra_json_parse(const char *text, size_t len, const char *what, size_t max_nodes, ra_json_doc **out)
{
    *out = NULL;
    if (len > SIZE_MAX / 2) return RA_FAIL(RA_ERR_ARG, "%s: JSON text too long", what);
    parser p = { .s = text, .len = len, .what = what, .max_nodes = max_nodes };
    ra_json_doc *doc = calloc(1, sizeof *doc);
    p.arena = malloc(len + 1);
    if (!doc || !p.arena) {
        free(doc);
        free(p.arena);
        return RA_FAIL(RA_ERR_NOMEM, "%s: out of memory for %zu bytes of JSON", what, len);
    }
    ra_status st = parse_value(&p, &doc->root);
    if (st == RA_OK) {
        skip_ws(&p);
        char cb[32];
        if (p.pos < p.len)
            st = perr(&p, p.pos, "%s after the value", show_char(cb, sizeof cb, (unsigned char)p.s[p.pos]));
    }
    free(p.stack);
    if (st != RA_OK) {
        free(p.out);
        free(p.arena);
        free(doc);
        return st;
    }
    doc->nodes = p.out;
    doc->arena = p.arena;
    fixup(&doc->root, p.out);
    for (size_t i = 0; i < p.nout; i++) fixup(&p.out[i], p.out);
    *out = doc;
    return RA_OK;
}

const ra_json *ra_json_root(const ra_json_doc *doc) { return &doc->root; }

void ra_json_free(ra_json_doc *doc)
{
    if (!doc) return;
    free(doc->nodes);
    free(doc->arena);
    free(doc);
}

const ra_json *ra_json_get(const ra_json *v, const char *key)
{
    if (!v || v->type != RA_JSON_OBJECT) return NULL;
    for (size_t i = 0; i < v->n; i++)
        if (!strcmp(v->kids[i].key, key)) return &v->kids[i];
    return NULL;
}

const char *ra_json_kind(const ra_json *v)
{
    static const char *const k[] = { "null", "a boolean", "a number", "a string", "an array", "an object" };
    return k[v->type];
}

/* ---- writing ---------------------------------------------------------------- */

static void reserve(ra_json_buf *b, size_t more)
{
    if (b->failed) return;
    if (b->cap - b->len > more) return;
    size_t cap = b->cap ? b->cap : 256;
    while (cap - b->len <= more) {
        if (cap > SIZE_MAX / 2) {
            b->failed = 1;
            return;
        }
        cap *= 2;
    }
    char *p = realloc(b->p, cap);
    if (!p) {
        b->failed = 1;
        return;
    }
    b->p = p, b->cap = cap;
}

static void put_n(ra_json_buf *b, const char *s, size_t n)
{
    reserve(b, n);
    if (b->failed) return;
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

void ra_json_put(ra_json_buf *b, const char *s) { put_n(b, s, strlen(s)); }

void ra_json_putf(ra_json_buf *b, const char *fmt, ...)
{
    char tmp[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof tmp) {
        b->failed = 1;
        return;
    }
    put_n(b, tmp, (size_t)n);
}

void ra_json_put_string(ra_json_buf *b, const char *s)
{
    put_n(b, "\"", 1);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"') put_n(b, "\\\"", 2);
        else if (c == '\\') put_n(b, "\\\\", 2);
        else if (c < 0x20) ra_json_putf(b, "\\u%04x", c);
        else put_n(b, s, 1);
    }
    put_n(b, "\"", 1);
}

void ra_json_put_float(ra_json_buf *b, float v)
{
    char t[48];
    if (v == truncf(v) && fabsf(v) < 1e15f) {
        snprintf(t, sizeof t, "%.1f", (double)v);
    } else {
        for (int prec = 1; prec <= 9; prec++) {
            snprintf(t, sizeof t, "%.*g", prec, (double)v);
            if (strtof(t, NULL) == v) break;
        }
    }
    ra_json_put(b, t);
}

void ra_json_buf_free(ra_json_buf *b)
{
    free(b->p);
    *b = (ra_json_buf){ 0 };
}
