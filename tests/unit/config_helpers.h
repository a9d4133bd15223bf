/* config_helpers.h - what test_config.c (parsing, --set) and
 * test_config_checks.c (finish, canonical text, presets) share: a config
 * of defaults off the stack, the parse/set/finish calls that must succeed,
 * message checks, and full_file, a text that sets every key once. */
#ifndef TESTS_UNIT_CONFIG_HELPERS_H
#define TESTS_UNIT_CONFIG_HELPERS_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "ringattn/config.h"

/* The configs are ~17 KB: keep them off the cmocka stack frames. */
static inline ra_config *new_defaults(void)
{
    ra_config *c = malloc(sizeof *c);
    assert_non_null(c);
    ra_config_defaults(c);
    return c;
}

static inline void assert_contains(const char *hay, const char *needle)
{
    if (!strstr(hay, needle)) fail_msg("expected \"%s\" in the message \"%s\"", needle, hay);
}

static inline void parse_ok(ra_config *c, const char *text)
{
    if (ra_config_parse(c, text, "t.ini") != RA_OK) fail_msg("%s\n-> %s", text, ra_last_error());
}

static inline void set_ok(ra_config *c, const char *a)
{
    if (ra_config_set(c, a, "--set") != RA_OK) fail_msg("%s -> %s", a, ra_last_error());
}

static inline void finish_ok(ra_config *c)
{
    if (ra_config_finish(c) != RA_OK) fail_msg("finish: %s", ra_last_error());
}

/* Every section and key, each away from its default (test_full_file loads
 * it, test_round_trip starts from it). */
static const char full_file[] =
    "# every section\n"
    "[model]\n"
    "vocab = 512\n"
    "dim = 96\n"
    "layers = 3\n"
    "heads = 6\n"
    "kv_heads = 2\n"
    "head_dim = 32\n"
    "ffn = gelu\n"
    "ffn_dim = 300\n"
    "ffn_block = 128\n"
    "tie_embeddings = no\n"
    "rope_theta = 500000\n"
    "norm_eps = 1e-6\n"
    "init_std = 0.01\n"
    "[layers]\n"
    "precond = rownorm\n"
    "precond_eps = 1e-5\n"
    "[layer.2]\n"
    "head = full\n"
    "span = 32\n"
    "row = 16\n"
    "precond = spectral\n"
    "precond_grad = full\n"
    "precond_lambda = 0.5\n"
    "[train]\n"
    "steps = 500\n"
    "batch = 8\n"
    "accum = 2\n"
    "lr = 1e-3\n"
    "min_lr = 1e-4\n"
    "warmup = 50\n"
    "weight_decay = 0.1\n"
    "beta1 = 0.8\n"
    "beta2 = 0.99\n"
    "adam_eps = 1e-7\n"
    "clip = 0.5\n"
    "seed = 18446744073709551615\n"
    "eval_every = 100\n"
    "eval_batches = 4\n"
    "checkpoint_every = 250\n"
    "log_every = 5\n"
    "[data]\n"
    "source = file\n"
    "path = data/input.txt\n"
    "seq_len = 1024\n"
    "val_fraction = 0.05\n"
    "recall_keys = 20\n"
    "recall_pairs = 10\n"
    "recall_queries = 5\n"
    "[run]\n"
    "layout = striped\n"
    "chunk = 128\n"
    "threads = 2\n"
    "checkpoint_dir = /scratch/ck\n"
    "metrics = m.jsonl\n";

#endif
