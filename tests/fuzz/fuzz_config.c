/* fuzz_config.c - libFuzzer harness for the INI config parser (config.h).
 *
 * The input is config text. Parse it over the defaults; when that succeeds,
 * finish it; when that succeeds too, the canonical text must read back to
 * the identical struct (config.h promises memcmp equality), finishing the
 * read-back copy must change nothing, and the canonical text of the copy
 * must be the same text. Any difference is a bug: abort (libFuzzer saves the
 * input as a crash). Errors are the normal outcome and are ignored, except
 * that a failed parse or finish must leave the struct untouched.
 *
 * The input is also replayed as "--set" overrides, one per line, which
 * exercises the override path and its quoting. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ringattn/config.h"

#define MAX_INPUT (64 << 10) /* longer inputs add nothing the parser's line limit does not bound */

static void fail(const char *what, const char *text)
{
    fprintf(stderr, "fuzz_config: %s\n", what);
    if (text) fprintf(stderr, "--- canonical text ---\n%s\n---\n", text);
    abort();
}

/* Round trip of a finished config. */
static void check_round_trip(const ra_config *cfg)
{
    char *text = ra_config_text(cfg);
    if (!text) fail("ra_config_text returned NULL", NULL);
    ra_config *back = malloc(sizeof *back);
    if (!back) abort();
    ra_config_defaults(back);
    if (ra_config_parse(back, text, "canonical") != RA_OK) {
        fprintf(stderr, "error: %s\n", ra_last_error());
        fail("the canonical text of a finished config does not parse", text);
    }
    if (memcmp(back, cfg, sizeof *cfg) != 0) {
        const unsigned char *a = (const void *)cfg, *b = (const void *)back;
        size_t i = 0;
        while (a[i] == b[i]) i++;
        fprintf(stderr, "first difference at byte %zu of %zu (0x%02x vs 0x%02x after the read-back)\n", i,
                sizeof *cfg, a[i], b[i]);
        fail("parse(text(cfg)) != cfg", text);
    }
    if (ra_config_finish(back) != RA_OK) {
        fprintf(stderr, "error: %s\n", ra_last_error());
        fail("finish of the read-back config failed", text);
    }
    if (memcmp(back, cfg, sizeof *cfg) != 0) fail("finish is not idempotent", text);
    char *again = ra_config_text(back);
    if (!again || strcmp(again, text) != 0) fail("canonical text differs after a round trip", text);
    free(again);
    free(back);
    free(text);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > MAX_INPUT) return -1; /* not added to the corpus */
    char *text = malloc(size + 1);
    ra_config *cfg = malloc(sizeof *cfg), *before = malloc(sizeof *before);
    if (!text || !cfg || !before) abort();
    memcpy(text, data, size);
    text[size] = '\0';

    ra_config_defaults(cfg);
    memcpy(before, cfg, sizeof *cfg);
    if (ra_config_parse(cfg, text, "fuzz.ini") != RA_OK) {
        if (memcmp(before, cfg, sizeof *cfg) != 0) fail("a failed parse changed the config", NULL);
    } else {
        memcpy(before, cfg, sizeof *cfg);
        if (ra_config_finish(cfg) == RA_OK) check_round_trip(cfg);
        else if (memcmp(before, cfg, sizeof *cfg) != 0) fail("a failed finish changed the config", NULL);
    }

    /* The same lines as overrides, over the defaults; stop at the first error. */
    ra_config_defaults(cfg);
    int applied = 0;
    for (char *line = text, *next; line && *line; line = next) {
        next = strchr(line, '\n');
        if (next) *next++ = '\0';
        memcpy(before, cfg, sizeof *cfg);
        if (ra_config_set(cfg, line, "--set") != RA_OK) {
            if (memcmp(before, cfg, sizeof *cfg) != 0) fail("a failed override changed the config", NULL);
            break;
        }
        applied++;
    }
    if (applied > 0 && ra_config_finish(cfg) == RA_OK) check_round_trip(cfg);

    free(before);
    free(cfg);
    free(text);
    return 0;
}
