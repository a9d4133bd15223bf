/* test_config_docs.c - the key tables of docs/config-keys.md and README.md
 * against the schema the parser reads (src/core/config_schema.c): every key
 * has a row in each, with its type, default and allowed values as the
 * schema gives them, and no row names a key the schema lacks. The meaning
 * column is prose and is not compared. The tables drifted by hand before
 * (a range of 1 to 8 where the parser allows 65536; data.dtype and
 * data.val_path missing from README). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "../../src/core/config_schema.h"

#define ROW_MAX 1024

static const char *type_word(key_type t)
{
    switch (t) {
    case T_INT: case T_U64: return "int";
    case T_FLOAT: return "float";
    case T_BOOL: return "bool";
    case T_STRING: return "string";
    case T_ENUM: return "enum";
    }
    return "?";
}

/* The "allowed" column: "a to b", "[a, b)", the words, or the string's capacity. */
static void allowed_of(const key_spec *k, char *out, size_t cap)
{
    switch (k->type) {
    case T_INT: snprintf(out, cap, "%.0f to %.0f", k->min, k->max); return;
    case T_U64: snprintf(out, cap, "0 to %" PRIu64, UINT64_MAX); return;
    case T_FLOAT:
        snprintf(out, cap, "%c%g, %g%c", k->flags & OPEN_MIN ? '(' : '[', k->min, k->max,
                 k->flags & OPEN_MAX ? ')' : ']');
        return;
    case T_BOOL: snprintf(out, cap, "true, false, yes, no, 1, 0"); return;
    case T_STRING: snprintf(out, cap, "text of at most %zu bytes", k->size - 1); return;
    case T_ENUM: {
        size_t at = 0;
        out[0] = '\0';
        for (const char *const *w = k->words; *w && at < cap; w++)
            at += (size_t)snprintf(out + at, cap - at, "%s%s", w == k->words ? "" : ", ", *w);
        return;
    }
    }
}

/* The row's first five cells as the schema gives them (meaning excluded). */
static void expected_row(const key_spec *k, const void *defaults, char *out, size_t cap)
{
    char def[512], allowed[512];
    ra_cfg_format_value(k, defaults, def, sizeof def);
    allowed_of(k, allowed, sizeof allowed);
    const char *sec = k->sec == SEC_LAYERS ? "[layers], [layer.N]" : NULL;
    char secbuf[32];
    if (!sec) snprintf(secbuf, sizeof secbuf, "[%s]", ra_cfg_section_names[k->sec]), sec = secbuf;
    snprintf(out, cap, "| %s | `%s` | %s | `%s` | %s |", sec, k->name, type_word(k->type), def, allowed);
}

static char *read_doc(const char *name)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/../%s", CONFIG_DIR, name);
    FILE *f = fopen(path, "rb");
    if (!f) fail_msg("%s: cannot open", path);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    rewind(f);
    char *text = malloc((size_t)n + 1);
    assert_non_null(text);
    assert_int_equal(fread(text, 1, (size_t)n, f), (size_t)n);
    text[n] = '\0';
    fclose(f);
    return text;
}

/* Every schema key's row starts as expected; returns the number of errors. */
static int check_rows(const char *doc, const char *text, const key_spec *keys, size_t n, const void *defaults)
{
    int bad = 0;
    for (size_t i = 0; i < n; i++) {
        char want[ROW_MAX], prefix[128];
        expected_row(&keys[i], defaults, want, sizeof want);
        const char *sec_end = strstr(want, " | `");
        snprintf(prefix, sizeof prefix, "\n%.*s | `%s` |", (int)(sec_end - want), want, keys[i].name);
        const char *at = strstr(text, prefix);
        if (!at) {
            print_error("%s: no row for %s (expected '%s meaning |')\n", doc, keys[i].name, want);
            bad++;
        } else if (strncmp(at + 1, want, strlen(want)) != 0) {
            const char *eol = strchr(at + 1, '\n');
            print_error("%s: row of %s is\n  %.*s\nexpected it to start\n  %s\n", doc, keys[i].name,
                        (int)(eol ? eol - at - 1 : 200), at + 1, want);
            bad++;
        }
    }
    return bad;
}

/* Rows naming a key the schema does not have (a removed or renamed key). */
static int check_no_stale_rows(const char *doc, const char *text)
{
    int bad = 0;
    for (const char *at = strstr(text, "\n| ["); at; at = strstr(at + 1, "\n| [")) {
        const char *name = strstr(at, " | `"), *eol = strchr(at + 1, '\n');
        if (!name || (eol && name > eol)) continue;
        name += 4;
        const char *end = strchr(name, '`');
        char key[64];
        snprintf(key, sizeof key, "%.*s", (int)(end - name), name);
        int found = 0;
        for (size_t i = 0; i < ra_cfg_nkeys && !found; i++) found = !strcmp(ra_cfg_keys[i].name, key);
        for (size_t i = 0; i < ra_cfg_nlayer_keys && !found; i++) found = !strcmp(ra_cfg_layer_keys[i].name, key);
        if (!found) {
            print_error("%s: a row names '%s', which the schema does not have\n", doc, key);
            bad++;
        }
    }
    return bad;
}

static void test_tables_match_schema(void **state)
{
    (void)state;
    ra_config *defaults = malloc(sizeof *defaults);
    assert_non_null(defaults);
    ra_config_defaults(defaults);
    const char *docs[] = { "docs/config-keys.md", "README.md" };
    int bad = 0;
    for (int d = 0; d < 2; d++) {
        char *text = read_doc(docs[d]);
        bad += check_rows(docs[d], text, ra_cfg_keys, ra_cfg_nkeys, defaults);
        bad += check_rows(docs[d], text, ra_cfg_layer_keys, ra_cfg_nlayer_keys, &defaults->layer[0]);
        bad += check_no_stale_rows(docs[d], text);
        free(text);
    }
    free(defaults);
    if (bad) fail_msg("%d config table rows differ from the schema", bad);
}

int main(void)
{
    const struct CMUnitTest tests[] = { cmocka_unit_test(test_tables_match_schema) };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
