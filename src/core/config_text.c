/* config_text.c - the canonical INI text of a config: every key, as used,
 * with its description as a comment. Checkpoints store it; for a finished
 * config, defaults + parsing it back gives an identical struct (memcmp). */
#include "config_schema.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TEXT_COMMENT_COL 32 /* column of the descriptions in the text */
typedef struct {
    char *p;
    size_t n, cap;
    bool oom;
} sbuf;

__attribute__((format(printf, 2, 3))) static void sb_printf(sbuf *b, const char *fmt, ...)
{
    for (;;) {
        if (b->oom) return;
        va_list ap;
        va_start(ap, fmt);
        int w = vsnprintf(b->p ? b->p + b->n : NULL, b->p ? b->cap - b->n : 0, fmt, ap);
        va_end(ap);
        if (w < 0) {
            b->oom = true;
            return;
        }
        if (b->p && b->n + (size_t)w < b->cap) {
            b->n += (size_t)w;
            return;
        }
        size_t cap = b->cap ? b->cap : 4096;
        while (cap <= b->n + (size_t)w) cap *= 2;
        char *grown = realloc(b->p, cap);
        if (!grown) {
            b->oom = true;
            return;
        }
        b->p = grown;
        b->cap = cap;
    }
}

/* "key = value", then the description as a comment when asked. */
static void write_key(sbuf *b, const key_spec *k, const void *base, bool comment)
{
    char v[2 * RA_PATH_MAX + 4];
    ra_cfg_format_value(k, base, v, sizeof v);
    int w = (int)(strlen(k->name) + 3 + strlen(v));
    if (!comment) {
        sb_printf(b, "%s = %s\n", k->name, v);
        return;
    }
    int pad = w < TEXT_COMMENT_COL ? TEXT_COMMENT_COL - w : 2;
    sb_printf(b, "%s = %s%*s# %s\n", k->name, v, pad, "", k->desc);
}

static void write_section(sbuf *b, const ra_config *cfg, int sec)
{
    sb_printf(b, "\n[%s]\n", ra_cfg_section_names[sec]);
    for (size_t i = 0; i < ra_cfg_nkeys; i++)
        if (ra_cfg_keys[i].sec == sec) write_key(b, &ra_cfg_keys[i], cfg, true);
}

char *ra_config_text(const ra_config *cfg)
{
    sbuf b = {0};
    sb_printf(&b, "# ringattn configuration: every key, as used\n");
    write_section(&b, cfg, SEC_MODEL);
    int nl = cfg->layers < 0 ? 0 : cfg->layers > RA_MAX_LAYERS ? RA_MAX_LAYERS : cfg->layers;
    for (int n = 0; n < nl; n++) {
        sb_printf(&b, "\n[layer.%d]\n", n);
        for (size_t i = 0; i < ra_cfg_nlayer_keys; i++)
            write_key(&b, &ra_cfg_layer_keys[i], &cfg->layer[n], n == 0);
    }
    write_section(&b, cfg, SEC_TRAIN);
    write_section(&b, cfg, SEC_DATA);
    write_section(&b, cfg, SEC_RUN);
    if (b.oom) {
        free(b.p);
        return NULL;
    }
    return b.p;
}
