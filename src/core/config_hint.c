/* config_hint.c - sections by name, and the messages for unknown sections
 * and keys: where a key does live, or the closest known name ("did you
 * mean"), or the list of what is known. */
#include "config_schema.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The section name: see config_schema.h. */
int ra_cfg_find_section(const char *name, int *sec, int *layer)
{
    *layer = -1;
    for (int s = SEC_MODEL; s <= SEC_LAYERS; s++)
        if (strcmp(name, ra_cfg_section_names[s]) == 0) return *sec = s, 1;
    if (strncmp(name, "layer.", 6) != 0) return 0;
    const char *d = name + 6;
    if (*d < '0' || *d > '9' || strlen(d) > 9) return 0;
    for (const char *c = d; *c; c++)
        if (*c < '0' || *c > '9') return 0;
    long n = strtol(d, NULL, 10);
    *sec = SEC_LAYER;
    *layer = (int)n;
    return n < RA_MAX_LAYERS ? 1 : -1;
}

/* Edit distance, for "did you mean"; names longer than 63 are never close. */
static int distance(const char *a, const char *b)
{
    size_t na = strlen(a), nb = strlen(b);
    if (na > 63 || nb > 63) return 99;
    int row[64];
    for (size_t j = 0; j <= nb; j++) row[j] = (int)j;
    for (size_t i = 1; i <= na; i++) {
        int diag = row[0];
        row[0] = (int)i;
        for (size_t j = 1; j <= nb; j++) {
            int up = row[j];
            int best = diag + (a[i - 1] != b[j - 1]);
            if (up + 1 < best) best = up + 1;
            if (row[j - 1] + 1 < best) best = row[j - 1] + 1;
            row[j] = best;
            diag = up;
        }
    }
    return row[nb];
}

/* Close enough to suggest: at most 2 edits, and fewer than half the name
 * (so "foo" does not suggest "row"). */
static bool close_to(const char *typed, const char *known, int *best)
{
    int d = distance(typed, known);
    if (d > 2 || 2 * d >= (int)strlen(typed) || d >= *best) return false;
    *best = d;
    return true;
}

/* A hint for an unknown key in section sec: where the key does live, the
 * closest key of the section, or the section's keys. */
static void key_hint(char *out, size_t cap, int sec, const char *name)
{
    bool layered = sec == SEC_LAYERS || sec == SEC_LAYER;
    if (!layered && ra_cfg_find_key(SEC_LAYERS, name)) {
        snprintf(out, cap, "'%s' is a layer key: put it in [layers] or [layer.N]", name);
        return;
    }
    for (int s = SEC_MODEL; s <= SEC_RUN; s++)
        if (s != sec && ra_cfg_find_key(s, name)) {
            snprintf(out, cap, "'%s' belongs in [%s]", name, ra_cfg_section_names[s]);
            return;
        }
    const key_spec *best = NULL;
    int bestd = INT_MAX;
    size_t at = 0;
    out[0] = '\0';
    for (size_t i = 0; i < (layered ? ra_cfg_nlayer_keys : ra_cfg_nkeys); i++) {
        const key_spec *k = layered ? &ra_cfg_layer_keys[i] : &ra_cfg_keys[i];
        if (!layered && k->sec != sec) continue;
        if (close_to(name, k->name, &bestd)) best = k;
        if (at < cap) at += (size_t)snprintf(out + at, cap - at, "%s%s", at ? ", " : "keys: ", k->name);
    }
    if (best) snprintf(out, cap, "did you mean '%s'?", best->name);
}

ra_status ra_cfg_unknown_key(const char *where, int sec, int layer, const char *name)
{
    char hint[400];
    key_hint(hint, sizeof hint, sec, name);
    if (sec == SEC_LAYER)
        return RA_FAIL(RA_ERR_ARG, "%s: unknown key '%.100s' in [layer.%d]; %s", where, name, layer, hint);
    return RA_FAIL(RA_ERR_ARG, "%s: unknown key '%.100s' in [%s]; %s", where, name, ra_cfg_section_names[sec],
                   hint);
}

ra_status ra_cfg_unknown_section(const char *where, const char *name, int found, int layer)
{
    if (found < 0)
        return RA_FAIL(RA_ERR_ARG, "%s: unknown section [%.100s]: layers are numbered 0 to %d (got %d)",
                       where, name, RA_MAX_LAYERS - 1, layer);
    const char *best = NULL;
    int bestd = INT_MAX;
    for (int s = SEC_MODEL; s <= SEC_LAYERS; s++)
        if (close_to(name, ra_cfg_section_names[s], &bestd)) best = ra_cfg_section_names[s];
    if (!best && strncmp(name, "layer", 5) == 0) best = "layer.N";
    char hint[64] = "";
    if (best) snprintf(hint, sizeof hint, "did you mean [%s]? ", best);
    return RA_FAIL(RA_ERR_ARG,
                   "%s: unknown section [%.100s]; %ssections: model, layers, layer.N (N = 0 to %d), "
                   "train, data, run",
                   where, name, hint, RA_MAX_LAYERS - 1);
}
