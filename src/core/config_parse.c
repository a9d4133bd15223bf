/* config_parse.c - INI text: sections, "key = value" lines, comments and
 * quotes (ra_config_parse), and config files (ra_config_load).
 *
 * Decisions:
 * - [layers] sets a key in every layer; [layer.N] sets it in layer N and wins
 *   over [layers] whatever the order of the sections in one text (the parser
 *   remembers which layer keys each [layer.N] set).
 * - A key set twice in one section is an error, also when the section header
 *   appears twice; the message names both lines.
 * - Comments start with # or ; at the start of a line or after whitespace,
 *   so "a#b" is a value. A value may be double-quoted to keep #, ; or outer
 *   spaces; inside quotes \" and \\ are escapes, other backslashes are kept.
 * - A UTF-8 byte-order mark at the start of the text is skipped (editors on
 *   Windows write one); one anywhere else outside a comment (two files
 *   joined with cat, a pasted value) is refused by name, since a terminal
 *   shows it as nothing.
 * - layer_given records [layer.N] so that finish, after every override, can
 *   refuse a layer beyond model.layers.
 * - Parsing works on a copy: on error *cfg is unchanged. */
#include "config_schema.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ringattn/fileio.h"

#define FILE_MAX_BYTES (16 << 20) /* a config is text; this catches wrong files */

typedef struct {
    ra_config *cfg;
    int line;
    char where[WHERE_MAX];
    int sec, layer;                                    /* current section */
    int line_of[RA_CFG_MAX_KEYS];                      /* where each key was set, 0: not yet */
    int layer_line_of[RA_MAX_LAYERS + 1][RA_CFG_MAX_LAYER_KEYS]; /* [RA_MAX_LAYERS]: [layers] */
    uint32_t explicit[RA_MAX_LAYERS];                  /* bit k: [layer.N] set layer_keys[k] */
    int said;                                          /* section headers and assignments read */
    const char *raw;                                   /* the line being read, as read */
    size_t raw_len;
} parser;

static bool comment_start(char ch) { return ch == '#' || ch == ';'; }

/* A byte-order mark in a header's name, a key or a value, as parsed (in a
 * comment it is text): inside them it shows as nothing ('unknown key x',
 * 'no file x'). Refused naming its byte in the line as read. The parsed
 * pieces are checked, not the raw line, so that what counts as a comment
 * is the parser's own rule (a scan of the line misread '"#' inside an
 * unquoted value as a comment, and the value kept a mark its canonical
 * text then refused). */
static ra_status no_bom(const parser *p, const char *piece)
{
    if (!strstr(piece, UTF8_BOM)) return RA_OK;
    const char *at = memmem(p->raw, p->raw_len, UTF8_BOM, 3);
    return RA_FAIL(RA_ERR_ARG, "%s: byte %d of the line is a byte-order mark (U+FEFF, bytes EF BB BF), which a "
                   "terminal shows as nothing; remove it", p->where, at ? (int)(at - p->raw) + 1 : 0);
}

/* "[name]" possibly followed by a comment. */
static ra_status parse_header(parser *p, char *t)
{
    char *close = strchr(t, ']');
    if (!close)
        return RA_FAIL(RA_ERR_ARG, "%s: section header '%.100s' has no closing ']'", p->where, t);
    *close = '\0';
    char *rest = ra_cfg_trim(close + 1), *name = ra_cfg_trim(t + 1);
    RA_TRY(no_bom(p, name));
    if (*rest && !comment_start(*rest))
        return RA_FAIL(RA_ERR_ARG, "%s: unexpected '%.100s' after section header [%.100s]", p->where,
                       rest, name);
    int found = ra_cfg_find_section(name, &p->sec, &p->layer);
    if (found != 1) {
        p->sec = SEC_NONE;
        return ra_cfg_unknown_section(p->where, name, found, p->layer);
    }
    if (p->sec == SEC_LAYER) ra_cfg_mark_layer(p->cfg, p->layer, p->where);
    return RA_OK;
}

/* The value after '=', unquoted and without its comment; edits v in place.
 * blank_before: whitespace precedes v (so a leading '#' starts a comment). */
static ra_status parse_value(const parser *p, const char *qual, char *v, bool blank_before,
                             char **out)
{
    if (*v != '"') {
        for (char *c = v; *c; c++)
            if (comment_start(*c) && (c > v ? ra_cfg_is_blank(c[-1]) : blank_before)) {
                *c = '\0';
                break;
            }
        *out = ra_cfg_trim(v);
        return RA_OK;
    }
    char *w = v, *r = v + 1;
    for (;; r++) {
        if (*r == '\0')
            return RA_FAIL(RA_ERR_ARG, "%s: %s: unterminated quote (the value needs a closing \")",
                           p->where, qual);
        if (*r == '\\' && (r[1] == '"' || r[1] == '\\')) {
            *w++ = *++r;
            continue;
        }
        if (*r == '"') break;
        *w++ = *r;
    }
    *w = '\0';
    char *rest = ra_cfg_trim(r + 1);
    if (*rest && !comment_start(*rest))
        return RA_FAIL(RA_ERR_ARG, "%s: %s: unexpected '%.100s' after the closing quote", p->where,
                       qual, rest);
    *out = v;
    return RA_OK;
}

/* Refuse a key set twice in one section; remember where it was set. */
static ra_status check_duplicate(parser *p, const key_spec *k, const char *key)
{
    int *slot;
    if (p->sec == SEC_LAYERS || p->sec == SEC_LAYER)
        slot = &p->layer_line_of[p->sec == SEC_LAYERS ? RA_MAX_LAYERS : p->layer][k - ra_cfg_layer_keys];
    else
        slot = &p->line_of[k - ra_cfg_keys];
    if (*slot) {
        char qual[QUAL_MAX];
        ra_cfg_qualify(qual, sizeof qual, p->sec, p->layer, key);
        return RA_FAIL(RA_ERR_ARG, "%s: %s is set twice (first at line %d); remove one", p->where, qual,
                       *slot);
    }
    *slot = p->line;
    return RA_OK;
}

static ra_status parse_assignment(parser *p, char *t)
{
    char *eq = strchr(t, '=');
    for (char *c = t + 1; *c && (!eq || c < eq); c++) /* a comment before '=' hides it */
        if (comment_start(*c) && ra_cfg_is_blank(c[-1])) {
            *c = '\0';
            eq = NULL;
            break;
        }
    if (!eq)
        return RA_FAIL(RA_ERR_ARG, "%s: missing '=' in '%.100s' (expected key = value)", p->where,
                       ra_cfg_trim(t));
    *eq = '\0';
    char *key = ra_cfg_trim(t);
    RA_TRY(no_bom(p, key));
    if (!*key)
        return RA_FAIL(RA_ERR_ARG, "%s: empty key before '=' (expected key = value)", p->where);
    if (p->sec == SEC_NONE)
        return RA_FAIL(RA_ERR_ARG, "%s: key '%.100s' comes before any [section]", p->where, key);
    const key_spec *k = ra_cfg_find_key(p->sec, key);
    if (!k) return ra_cfg_unknown_key(p->where, p->sec, p->layer, key);
    RA_TRY(check_duplicate(p, k, key));
    char qual[QUAL_MAX], *v = eq + 1, *value = NULL;
    ra_cfg_qualify(qual, sizeof qual, p->sec, p->layer, k->name);
    bool blank_before = ra_cfg_is_blank(*v);
    while (ra_cfg_is_blank(*v)) v++;
    RA_TRY(parse_value(p, qual, v, blank_before, &value));
    RA_TRY(no_bom(p, value));
    return ra_cfg_apply(p->cfg, p->sec, p->layer, k, value, p->where, p->explicit);
}

static ra_status parse_line(parser *p, char *buf)
{
    char *t = ra_cfg_trim(buf);
    if (strncmp(t, UTF8_BOM, 3) == 0)
        return RA_FAIL(RA_ERR_ARG, "%s: the line starts with a byte-order mark (U+FEFF, bytes EF BB BF), which only "
                       "the very start of the file may have (were two files joined?); remove it", p->where);
    if (!*t || comment_start(*t)) return RA_OK;
    p->said++;
    if (*t == '[') return parse_header(p, t);
    return parse_assignment(p, t);
}

/* file: a config file (one that sets nothing is refused: a file of old Mac
 * line endings, whose first line is a comment, read as one comment) */
static ra_status parse_into(ra_config *cfg, const char *text, const char *name, int file)
{
    parser *p = calloc(1, sizeof *p);
    char *buf = malloc(LINE_MAX_CHARS + 1);
    ra_status st = RA_OK;
    if (!p || !buf) {
        st = RA_FAIL(RA_ERR_NOMEM, "%s: out of memory for the config parser", name);
        goto done;
    }
    p->cfg = cfg;
    p->sec = SEC_NONE;
    if (strncmp(text, UTF8_BOM, 3) == 0) text += 3; /* not part of the first line's text */
    for (const char *s = text; *s && st == RA_OK;) {
        const char *nl = strchr(s, '\n');
        size_t n = nl ? (size_t)(nl - s) : strlen(s);
        size_t m = n > 0 && s[n - 1] == '\r' ? n - 1 : n;
        p->line++;
        snprintf(p->where, sizeof p->where, "%.250s:%d", name, p->line);
        if (m > LINE_MAX_CHARS) {
            st = RA_FAIL(RA_ERR_ARG, "%s: line is %zu characters long (at most %d); it starts '%.40s'",
                         p->where, m, LINE_MAX_CHARS, s);
            break;
        }
        const char *cr = memchr(s, '\r', m);
        if (cr) { /* lines end in \n or \r\n; a lone \r would hide the rest of the line */
            st = RA_FAIL(RA_ERR_ARG, "%s: a carriage return inside the line (at column %d): lines end with a "
                         "newline (or CR LF); a file with old Mac line endings (CR alone) reads as one line: "
                         "convert it (tr '\\r' '\\n')", p->where, (int)(cr - s) + 1);
            break;
        }
        memcpy(buf, s, m);
        buf[m] = '\0';
        p->raw = s, p->raw_len = m;
        st = parse_line(p, buf);
        s += nl ? n + 1 : n;
    }
    if (st == RA_OK && file && !p->said)
        st = RA_FAIL(RA_ERR_ARG, "%s: sets nothing (empty, or comments only); leave out --config for the built-in "
                     "defaults", name);
done:
    free(buf);
    free(p);
    return st;
}

ra_status ra_config_parse(ra_config *cfg, const char *text, const char *name)
{
    ra_config *tmp = malloc(sizeof *tmp);
    if (!tmp) return RA_FAIL(RA_ERR_NOMEM, "%s: out of memory for the config", name);
    memcpy(tmp, cfg, sizeof *tmp); /* memcpy keeps the padding bytes too */
    ra_status st = parse_into(tmp, text, name, 0);
    if (st == RA_OK) ra_cfg_commit(cfg, tmp);
    free(tmp);
    return st;
}

/* Whole file as a NUL-terminated string; refuses what is not a regular file
 * (without blocking on a FIFO), a file over FILE_MAX_BYTES, and NUL bytes
 * (not text). */
static ra_status read_text(const char *path, char **out)
{
    size_t n;
    RA_TRY(ra_file_read_all(path, "config", FILE_MAX_BYTES, out, &n));
    const char *nul = memchr(*out, '\0', n);
    if (!nul) return RA_OK;
    int line = 1;
    for (const char *c = *out; c < nul; c++) line += *c == '\n';
    const long long off = (long long)(nul - *out);
    free(*out);
    *out = NULL;
    return RA_FAIL(RA_ERR_FORMAT, "%s:%d: contains a NUL byte at offset %lld; a config is text", path, line, off);
}

ra_status ra_config_load(ra_config *cfg, const char *path)
{
    char *text;
    RA_TRY(read_text(path, &text));
    ra_config *tmp = malloc(sizeof *tmp);
    if (!tmp) {
        free(text);
        return RA_FAIL(RA_ERR_NOMEM, "out of memory for the config of %s", path);
    }
    ra_config_defaults(tmp);
    ra_status st = parse_into(tmp, text, path, 1);
    if (st == RA_OK) ra_cfg_commit(cfg, tmp);
    free(tmp);
    free(text);
    return st;
}
