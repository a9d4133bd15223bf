/* config_set.c - one override "section.key=value" (also "layers.KEY=V" and
 * "layer.N.KEY=V"), as --set gives it. Overrides apply in order: --set
 * layers.KEY=V sets every layer, including ones a [layer.N] set. The value
 * may be quoted as in files, so shell-quoted values work. On error *cfg is
 * unchanged. */
#include "config_schema.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Split "sec.key" at the last dot; known section, known key. */
static ra_status resolve_override(const char *where, char *lhs, int *sec, int *layer,
                                  const key_spec **k)
{
    char *dot = strrchr(lhs, '.');
    if (!dot || dot == lhs) {
        char hint[160] = "";
        for (int s = SEC_MODEL; s <= SEC_LAYERS; s++)
            if (ra_cfg_find_key(s, lhs)) {
                snprintf(hint, sizeof hint, "; did you mean %s.%s?", ra_cfg_section_names[s], lhs);
                break;
            }
        return RA_FAIL(RA_ERR_ARG,
                       "%s: '%.100s' names no section (expected section.key=value, e.g. model.dim=64)%s",
                       where, lhs, hint);
    }
    *dot = '\0';
    const char *name = dot + 1;
    int found = ra_cfg_find_section(lhs, sec, layer);
    if (found != 1) return ra_cfg_unknown_section(where, lhs, found, *layer);
    if (!(*k = ra_cfg_find_key(*sec, name))) return ra_cfg_unknown_key(where, *sec, *layer, name);
    return RA_OK;
}

ra_status ra_config_set(ra_config *cfg, const char *assignment, const char *origin)
{
    char where[WHERE_MAX];
    snprintf(where, sizeof where, "%.60s '%.200s'", origin, assignment);
    size_t n = strlen(assignment);
    if (n > LINE_MAX_CHARS)
        return RA_FAIL(RA_ERR_ARG, "%s: longer than %d characters", where, LINE_MAX_CHARS);
    const char *bom = strstr(assignment, UTF8_BOM);
    if (bom) /* pasted from a file that starts with one: it shows as nothing */
        return RA_FAIL(RA_ERR_ARG, "%.60s: byte %d of '%.200s' is a byte-order mark (U+FEFF, bytes EF BB BF), which a "
                       "terminal shows as nothing; remove it", origin, (int)(bom - assignment) + 1, assignment);
    char buf[LINE_MAX_CHARS + 1];
    memcpy(buf, assignment, n + 1);
    char *eq = strchr(buf, '=');
    if (!eq) return RA_FAIL(RA_ERR_ARG, "%s: missing '=' (expected section.key=value)", where);
    *eq = '\0';
    char *lhs = ra_cfg_trim(buf), *v = ra_cfg_trim(eq + 1);
    if (!*lhs) return RA_FAIL(RA_ERR_ARG, "%s: empty key before '=' (expected section.key=value)", where);
    int sec, layer;
    const key_spec *k;
    RA_TRY(resolve_override(where, lhs, &sec, &layer, &k));
    if (*v == '"') { /* the same quoting as in files, so shell-quoted values work */
        size_t m = strlen(v);
        char qual[QUAL_MAX];
        ra_cfg_qualify(qual, sizeof qual, sec, layer, k->name);
        if (m < 2 || v[m - 1] != '"')
            return RA_FAIL(RA_ERR_ARG, "%s: %s: unterminated quote (the value needs a closing \")",
                           where, qual);
        v[m - 1] = '\0';
        v++;
        char *w = v;
        for (char *r = v; *r; r++) {
            if (*r == '\\' && (r[1] == '"' || r[1] == '\\')) r++;
            *w++ = *r;
        }
        *w = '\0';
    }
    ra_config *tmp = malloc(sizeof *tmp);
    if (!tmp) return RA_FAIL(RA_ERR_NOMEM, "%s: out of memory", where);
    memcpy(tmp, cfg, sizeof *tmp);
    ra_status st = ra_cfg_apply(tmp, sec, layer, k, v, where, NULL);
    if (st == RA_OK) ra_cfg_commit(cfg, tmp);
    free(tmp);
    return st;
}
