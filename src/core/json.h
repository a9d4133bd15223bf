/* json.h - a small JSON reader and string writer for files nobody should
 * trust: safetensors headers and Hugging Face config.json files (docs/design.md
 * §14). Internal to the library (src/core/safetensors.c, src/model/llama.c).
 *
 * The parser (RFC 8259) builds a read-only tree and refuses, each with an
 * error naming `what`, the line, column and byte: a NUL byte, invalid UTF-8,
 * control characters and lone surrogates in strings, "\u0000", numbers
 * outside double range or longer than 400 characters, nesting deeper than
 * RA_JSON_MAX_DEPTH, more than max_nodes values, a key given twice in one
 * object, and anything but whitespace after the value. Memory is bounded by
 * the input length and max_nodes. No recursion deeper than the depth limit.
 *
 *     ra_json_doc *doc;
 *     RA_TRY(ra_json_parse(text, len, "config.json", 1 << 16, &doc));
 *     const ra_json *v = ra_json_get(ra_json_root(doc), "hidden_size");
 *     ra_json_free(doc);
 */
#ifndef RINGATTN_JSON_H
#define RINGATTN_JSON_H

#include <stddef.h>
#include <stdint.h>

#include "ringattn/status.h"

#define RA_JSON_MAX_DEPTH 64

typedef enum { RA_JSON_NULL, RA_JSON_BOOL, RA_JSON_NUMBER, RA_JSON_STRING, RA_JSON_ARRAY, RA_JSON_OBJECT } ra_json_type;

typedef struct ra_json ra_json;
struct ra_json {
    ra_json_type type;
    int boolean;          /* RA_JSON_BOOL */
    int is_int;           /* RA_JSON_NUMBER written as an integer (no fraction, no exponent) within int64 */
    int64_t i;            /* its value when is_int */
    double num;           /* RA_JSON_NUMBER (finite) */
    int underflow;        /* RA_JSON_NUMBER written with a nonzero digit that reads as 0 (below double's range) */
    const char *str;      /* RA_JSON_STRING: UTF-8, NUL-terminated, no NUL inside */
    size_t len;           /* its length in bytes */
    const char *key;      /* member of an object: its key (NUL-terminated), else NULL */
    size_t n;             /* RA_JSON_ARRAY, RA_JSON_OBJECT: number of children */
    const ra_json *kids;  /* the children, in file order */
    size_t offset;        /* byte offset of the value in the text (for messages) */
};

typedef struct ra_json_doc ra_json_doc;

/* Parse len bytes of text (need not be NUL-terminated). what names the text
 * in messages ("m/config.json"). RA_ERR_FORMAT for bad JSON, RA_ERR_NOMEM. */
ra_status ra_json_parse(const char *text, size_t len, const char *what, size_t max_nodes, ra_json_doc **out);
const ra_json *ra_json_root(const ra_json_doc *doc);
void ra_json_free(ra_json_doc *doc);

/* Member key of an object (NULL when absent or v is not an object). */
const ra_json *ra_json_get(const ra_json *v, const char *key);
/* "null", "a boolean", "a number", "a string", "an array", "an object" */
const char *ra_json_kind(const ra_json *v);
/* "line L, column C (byte B)" of offset in text, into out; returns out. */
const char *ra_json_where(char *out, size_t cap, const char *text, size_t len, size_t offset);

/* 1 when the n bytes are valid UTF-8 (no overlong forms, surrogates or
 * code points above U+10FFFF). */
int ra_json_utf8_valid(const char *s, size_t n);

/* A growing text buffer for writing JSON. */
typedef struct {
    char *p;
    size_t len, cap;
    int failed; /* an allocation failed: the text is incomplete */
} ra_json_buf;
void ra_json_put(ra_json_buf *b, const char *s);
void ra_json_putf(ra_json_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* s as a JSON string literal, quotes included (", \ and control characters escaped). */
void ra_json_put_string(ra_json_buf *b, const char *s);
/* A float32 value as the shortest decimal that reads back to it (finite;
 * integers keep a ".0", so readers see a float). */
void ra_json_put_float(ra_json_buf *b, float v);
void ra_json_buf_free(ra_json_buf *b);

#endif
