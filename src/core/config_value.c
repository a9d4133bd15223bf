/* config_value.c - one value of a config key: parsed from text into its
 * field (range, words, length checked against the schema row), and
 * formatted from its field as the canonical text writes it.
 *
 * Floats are written with the fewest digits (at most 9, which always
 * suffice) that read back to the same float: "0.003", not "0.00300000003".
 * Strings are quoted when a bare value would not read back the same. */
#include "config_schema.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

bool ra_cfg_is_blank(char ch) { return ch == ' ' || ch == '\t' || ch == '\r' || ch == '\n'; }

char *ra_cfg_trim(char *s)
{
    while (ra_cfg_is_blank(*s)) s++;
    size_t n = strlen(s);
    while (n > 0 && ra_cfg_is_blank(s[n - 1])) s[--n] = '\0';
    return s;
}

static void join_words(char *out, size_t cap, const char *const *w)
{
    size_t at = 0;
    out[0] = '\0';
    for (int i = 0; w[i] && at < cap; i++)
        at += (size_t)snprintf(out + at, cap - at, "%s%s", i ? ", " : "", w[i]);
}

/* What a key accepts, for messages and the key table. */
static void describe_allowed(const key_spec *k, char *out, size_t cap)
{
    switch (k->type) {
    case T_INT: snprintf(out, cap, "%.0f to %.0f", k->min, k->max); return;
    case T_U64: snprintf(out, cap, "0 to %" PRIu64, UINT64_MAX); return;
    case T_FLOAT:
        snprintf(out, cap, "%c%g, %g%c", (k->flags & OPEN_MIN) ? '(' : '[', k->min, k->max,
                 (k->flags & OPEN_MAX) ? ')' : ']');
        return;
    case T_BOOL: snprintf(out, cap, "true, false, yes, no, 1, 0"); return;
    case T_STRING: snprintf(out, cap, "text of at most %zu bytes", k->size - 1); return;
    case T_ENUM: join_words(out, cap, k->words); return;
    }
    snprintf(out, cap, "?");
}

/* Shortest %.Ng (N <= 9) that reads back as the same float; whole numbers
 * below 1e9 without an exponent ("10000", not "1e+04"). */
static void format_float(char *out, size_t cap, float f)
{
    if (f > -1e9f && f < 1e9f && (float)(int64_t)f == f) { /* NaN fails the range */
        snprintf(out, cap, "%.0f", (double)f);
        return;
    }
    for (int digits = 1; digits <= 9; digits++) {
        snprintf(out, cap, "%.*g", digits, (double)f);
        if (strtof(out, NULL) == f) return;
    }
    snprintf(out, cap, "%.9g", (double)f);
}

/* Strings are quoted when a bare value would not read back the same. */
static bool needs_quotes(const char *s)
{
    size_t n = strlen(s);
    return n == 0 || s[0] == '"' || ra_cfg_is_blank(s[0]) || ra_cfg_is_blank(s[n - 1]) ||
           strpbrk(s, "#;") != NULL;
}

/* The value as the canonical text writes it. */
void ra_cfg_format_value(const key_spec *k, const void *base, char *out, size_t cap)
{
    const char *p = (const char *)base + k->offset;
    switch (k->type) {
    case T_INT: snprintf(out, cap, "%d", *(const int *)p); return;
    case T_U64: snprintf(out, cap, "%" PRIu64, *(const uint64_t *)p); return;
    case T_FLOAT: format_float(out, cap, *(const float *)p); return;
    case T_BOOL: snprintf(out, cap, "%s", *(const int *)p ? "true" : "false"); return;
    case T_ENUM: snprintf(out, cap, "%s", p); return;
    case T_STRING:
        if (!needs_quotes(p)) {
            snprintf(out, cap, "%s", p);
            return;
        }
        size_t at = 0;
        if (cap < 3) return;
        out[at++] = '"';
        for (; *p && at + 3 < cap; p++) {
            if (*p == '"' || *p == '\\') out[at++] = '\\';
            out[at++] = *p;
        }
        out[at++] = '"';
        out[at] = '\0';
        return;
    }
}

/* ---- values ---------------------------------------------------------- */

ra_status ra_cfg_bad_value(const char *where, const char *qual, const key_spec *k, const char *v,
                           const char *problem)
{
    char allowed[256];
    describe_allowed(k, allowed, sizeof allowed);
    return RA_FAIL(RA_ERR_ARG, "%s: %s = '%.200s' %s (allowed: %s%s)", where, qual, v, problem,
                   k->type == T_FLOAT ? "a number in " : "", allowed);
}

static ra_status parse_int(const char *where, const char *qual, const key_spec *k, const char *v,
                           int *out)
{
    char *end;
    errno = 0;
    long long x = strtoll(v, &end, 10);
    if (end == v || *end != '\0') return ra_cfg_bad_value(where, qual, k, v, "is not an integer");
    if (errno == ERANGE || !ra_cfg_in_range(k, (double)x))
        return ra_cfg_bad_value(where, qual, k, v, "is out of range");
    *out = (int)x;
    return RA_OK;
}

static ra_status parse_u64(const char *where, const char *qual, const key_spec *k, const char *v,
                           uint64_t *out)
{
    char *end;
    errno = 0;
    unsigned long long x = strtoull(v, &end, 10);
    /* strtoull would wrap "-1" around */
    if (end == v || *end != '\0' || strchr(v, '-'))
        return ra_cfg_bad_value(where, qual, k, v, "is not a non-negative integer");
    if (errno == ERANGE) return ra_cfg_bad_value(where, qual, k, v, "is out of range");
    *out = (uint64_t)x;
    return RA_OK;
}

static ra_status parse_float(const char *where, const char *qual, const key_spec *k, const char *v,
                             float *out)
{
    char *end;
    errno = 0;
    float x = strtof(v, &end); /* strtof, not strtod: no double rounding */
    if (end == v || *end != '\0') return ra_cfg_bad_value(where, qual, k, v, "is not a number");
    if (v[strspn(v, "+-0123456789.eE")] != '\0') /* strtof's hex (0x1p-9), as the integer keys refuse 0x10 */
        return ra_cfg_bad_value(where, qual, k, v, "is not a decimal number");
    if (x == 0) x = 0.0f; /* -0 is 0 (the canonical text showed "-0") */
    if (x == 0 && errno == ERANGE) /* 1e-400 was taken as 0 (run.timeout: wait forever) */
        return ra_cfg_bad_value(where, qual, k, v, "is below float32's smallest (1.4e-45), not 0");
    if (!isfinite(x) || !ra_cfg_in_range(k, x))
        return ra_cfg_bad_value(where, qual, k, v, "is out of range");
    *out = x;
    return RA_OK;
}

static ra_status parse_bool(const char *where, const char *qual, const key_spec *k, const char *v,
                            int *out)
{
    static const char *const yes[] = {"true", "yes", "1"}, *const no[] = {"false", "no", "0"};
    for (int i = 0; i < 3; i++) {
        if (strcasecmp(v, yes[i]) == 0) return *out = 1, RA_OK;
        if (strcasecmp(v, no[i]) == 0) return *out = 0, RA_OK;
    }
    return ra_cfg_bad_value(where, qual, k, v, "is not a boolean");
}

static ra_status parse_string(const char *where, const char *qual, const key_spec *k, const char *v,
                              char *out)
{
    size_t n = strlen(v);
    if (n >= k->size)
        return RA_FAIL(RA_ERR_ARG, "%s: %s is %zu bytes long; at most %zu are allowed", where, qual,
                       n, k->size - 1);
    for (const char *c = v; *c; c++)
        if ((unsigned char)*c < 0x20 && *c != '\t')
            return RA_FAIL(RA_ERR_ARG, "%s: %s contains control character 0x%02x", where, qual,
                           (unsigned)(unsigned char)*c);
    strncpy(out, v, k->size); /* zero the tail: no stale bytes of a longer old value (memcmp) */
    return RA_OK;
}

/* Parse v and store it in the field of k inside base. */
static ra_status set_field(const key_spec *k, void *base, const char *v, const char *where,
                           const char *qual)
{
    char *p = (char *)base + k->offset;
    switch (k->type) {
    case T_INT: return parse_int(where, qual, k, v, (int *)p);
    case T_U64: return parse_u64(where, qual, k, v, (uint64_t *)p);
    case T_FLOAT: return parse_float(where, qual, k, v, (float *)p);
    case T_BOOL: return parse_bool(where, qual, k, v, (int *)p);
    case T_STRING: return parse_string(where, qual, k, v, p);
    case T_ENUM:
        if (!ra_cfg_in_words(k->words, v)) return ra_cfg_bad_value(where, qual, k, v, "is not allowed");
        strncpy(p, v, k->size); /* every word fits: RA_NAME_MAX; zero the tail, as strings */
        return RA_OK;
    }
    return RA_FAIL(RA_ERR_INTERNAL, "%s: %s has no type", where, qual);
}

/* Store one key. [layers] skips the layers whose key a [layer.N] of the same
 * text set (explicit, NULL outside a parse). */
ra_status ra_cfg_apply(ra_config *cfg, int sec, int layer, const key_spec *k, const char *v,
                       const char *where, uint32_t *explicit)
{
    char qual[QUAL_MAX];
    ra_cfg_qualify(qual, sizeof qual, sec, layer, k->name);
    if (sec != SEC_LAYERS && sec != SEC_LAYER) return set_field(k, cfg, v, where, qual);
    uint32_t bit = UINT32_C(1) << (k - ra_cfg_layer_keys);
    if (sec == SEC_LAYERS) {
        ra_layer_config one;
        ra_cfg_layer_defaults(&one);
        RA_TRY(set_field(k, &one, v, where, qual));
        for (int n = 0; n < RA_MAX_LAYERS; n++) {
            if (explicit && (explicit[n] & bit)) continue;
            memcpy((char *)&cfg->layer[n] + k->offset, (char *)&one + k->offset, k->size);
        }
        return RA_OK;
    }
    RA_TRY(set_field(k, &cfg->layer[layer], v, where, qual));
    if (explicit) explicit[layer] |= bit;
    ra_cfg_mark_layer(cfg, layer, where);
    return RA_OK;
}

/* A parse's or an override's working copy into cfg: the words' ids
 * resolved, and a layer's place kept only while that layer is beyond
 * model.layers (finish then names it), else cleared, so that the canonical
 * text of a finished config parses back to the identical struct
 * (config.h). A later --set model.layers below it gets finish's message
 * without a place. */
void ra_cfg_commit(ra_config *cfg, ra_config *tmp)
{
    ra_cfg_resolve_ids(tmp);
    if (!(tmp->layers >= 0 && tmp->layers < RA_MAX_LAYERS && tmp->layer_given >> tmp->layers))
        memset(tmp->layer_given_at, 0, sizeof tmp->layer_given_at);
    memcpy(cfg, tmp, sizeof *cfg);
}

/* Only the highest layer's place is kept: when any configured layer is
 * beyond model.layers, the highest is, and one place is enough to fix. */
void ra_cfg_mark_layer(ra_config *cfg, int layer, const char *where)
{
    if (cfg->layer_given >> layer == 0) /* neither this layer nor a higher one yet */
        snprintf(cfg->layer_given_at, sizeof cfg->layer_given_at, "%s", where);
    cfg->layer_given |= UINT64_C(1) << layer;
}
