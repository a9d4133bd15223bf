/* config_schema.h - private to src/core/config_*.c: the schema table that
 * the parser, the overrides, the checks and the canonical text all read.
 *
 * Every key is one row (section, name, type, offset, range or allowed
 * words, description), so a new key is one row plus its default.
 *
 *   config_schema.c  the rows, the defaults, resolving words to enums
 *   config_value.c   one value: parse into a field, format from a field
 *   config_hint.c    sections by name; "did you mean" for unknown names
 *   config_parse.c   INI text and files (ra_config_parse, ra_config_load)
 *   config_set.c     --set overrides (ra_config_set)
 *   config_check.c   derived values and consistency (ra_config_finish)
 *   config_text.c    the canonical text (ra_config_text) */
#ifndef RINGATTN_CONFIG_SCHEMA_H
#define RINGATTN_CONFIG_SCHEMA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ringattn/config.h"

#define LINE_MAX_CHARS 4096 /* longer lines are refused, not split */
#define WHERE_MAX RA_CFG_WHERE_MAX
#define QUAL_MAX 96         /* "layer.63.precond_lambda" */

typedef enum { T_INT, T_U64, T_FLOAT, T_BOOL, T_STRING, T_ENUM } key_type;

enum { SEC_NONE = -1, SEC_MODEL, SEC_TRAIN, SEC_DATA, SEC_RUN, SEC_LAYERS, SEC_LAYER };
extern const char *const ra_cfg_section_names[]; /* indexed by SEC_* (SEC_LAYER: "layer.N") */

enum { OPEN_MIN = 1, OPEN_MAX = 2 }; /* float bounds excluded from the range */

typedef struct {
    int sec;           /* SEC_MODEL..SEC_RUN; SEC_LAYERS for layer keys */
    const char *name;
    key_type type;
    size_t offset;     /* into ra_config, or ra_layer_config for layer keys */
    size_t size;       /* of the field (strings: capacity with the NUL) */
    double min, max;   /* numbers, inclusive unless flags say otherwise */
    int flags;
    const char *const *words; /* enums */
    const char *desc;
} key_spec;

/* [model], [train], [data], [run] in the order of the canonical text; and
 * the keys of [layers] / [layer.N] (offsets into ra_layer_config). */
extern const key_spec ra_cfg_keys[];
extern const size_t ra_cfg_nkeys;
extern const key_spec ra_cfg_layer_keys[];
extern const size_t ra_cfg_nlayer_keys;
#define RA_CFG_MAX_KEYS 64       /* bound of ra_cfg_nkeys (parser bookkeeping) */
#define RA_CFG_MAX_LAYER_KEYS 32 /* explicit-key masks are 32-bit */

/* config_schema.c */
void ra_cfg_layer_defaults(ra_layer_config *l);
void ra_cfg_resolve_ids(ra_config *c); /* the enum words as C enums */
const key_spec *ra_cfg_find_key(int sec, const char *name); /* NULL: unknown */
/* "model.dim", "layers.head", "layer.3.head" */
void ra_cfg_qualify(char *out, size_t cap, int sec, int layer, const char *name);
bool ra_cfg_in_range(const key_spec *k, double v);
bool ra_cfg_in_words(const char *const *w, const char *s);

/* config_value.c */
bool ra_cfg_is_blank(char ch);
char *ra_cfg_trim(char *s);
/* A UTF-8 byte-order mark: skipped at the start of a file, refused elsewhere. */
#define UTF8_BOM "\xEF\xBB\xBF"
/* The value as the canonical text writes it. */
void ra_cfg_format_value(const key_spec *k, const void *base, char *out, size_t cap);
/* "WHERE: QUAL = 'V' PROBLEM (allowed: ...)" */
ra_status ra_cfg_bad_value(const char *where, const char *qual, const key_spec *k, const char *v,
                           const char *problem);
/* Mark layer as configured where (layer_given, layer_given_at). */
void ra_cfg_mark_layer(ra_config *cfg, int layer, const char *where);
/* tmp (a parse's or an override's copy) into cfg: ids resolved,
 * layer_given_at kept only while its layer is beyond model.layers. */
void ra_cfg_commit(ra_config *cfg, ra_config *tmp);
/* Store value v of key k (section sec, layer for SEC_LAYER) in cfg.
 * [layers] skips the layers whose key a [layer.N] of the same text set
 * (explicit: bit k of explicit[N]; NULL outside a parse). */
ra_status ra_cfg_apply(ra_config *cfg, int sec, int layer, const key_spec *k, const char *v,
                       const char *where, uint32_t *explicit);

/* config_hint.c */
/* 1: known, 0: unknown, -1: "layer.N" with N out of range (*layer = N or -1). */
int ra_cfg_find_section(const char *name, int *sec, int *layer);
ra_status ra_cfg_unknown_key(const char *where, int sec, int layer, const char *name);
ra_status ra_cfg_unknown_section(const char *where, const char *name, int found, int layer);

#endif
