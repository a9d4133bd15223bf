/* test_config_checks.c - unit tests for a configuration once read
 * (src/core/config_*.c): the derived values and consistency checks of
 * finish, sizes refused in 64 bits, the canonical-text round trip, and the
 * presets in configs/. Reading (syntax, parse errors, files, --set) is in
 * test_config.c. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "ringattn/config.h"
#include "config_helpers.h"

#ifndef CONFIG_DIR
#define CONFIG_DIR "configs"
#endif

/* ---- helpers --------------------------------------------------------- */

/* Defaults, then each --set, then finish must fail naming n1 and n2; the
 * config is unchanged by the failed finish. */
static void expect_finish_error(const char *const *sets, const char *n1, const char *n2)
{
    ra_config *c = new_defaults(), *before = malloc(sizeof *c);
    assert_non_null(before);
    for (int i = 0; sets[i]; i++)
        if (ra_config_set(c, sets[i], "--set") != RA_OK) fail_msg("set %s: %s", sets[i], ra_last_error());
    memcpy(before, c, sizeof *c);
    ra_status st = ra_config_finish(c);
    if (st != RA_ERR_ARG) fail_msg("%s: expected RA_ERR_ARG from finish, got %d", sets[0], st);
    if (n1) assert_contains(ra_last_error(), n1);
    if (n2) assert_contains(ra_last_error(), n2);
    assert_memory_equal(c, before, sizeof *c);
    free(c);
    free(before);
}

/* ---- finish ----------------------------------------------------------- */

static void test_finish_derived(void **state)
{
    (void)state;
    ra_config *c = new_defaults();
    finish_ok(c);
    assert_int_equal(c->kv_heads, 4);
    assert_int_equal(c->head_dim, 16);
    assert_int_equal(c->ffn_dim, 176); /* 8*64/3 = 170 -> 176 */
    assert_int_equal(c->ffn_block, 256);
    assert_true(c->layer_given == 3);
    ra_config *again = malloc(sizeof *again);
    assert_non_null(again);
    memcpy(again, c, sizeof *c);
    finish_ok(again); /* idempotent */
    assert_memory_equal(again, c, sizeof *c);
    free(again);
    free(c);

    struct { const char *ffn; int dim, ffn_dim; } cases[] = {
        {"swiglu", 384, 1024}, {"swiglu", 32, 88}, {"swiglu", 256, 688}, {"swiglu", 104, 280},
        {"gelu", 64, 256},     {"gelu", 384, 1536},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        c = new_defaults();
        char a[64];
        snprintf(a, sizeof a, "model.ffn=%s", cases[i].ffn);
        set_ok(c, a);
        snprintf(a, sizeof a, "model.dim=%d", cases[i].dim);
        set_ok(c, a);
        finish_ok(c);
        assert_int_equal(c->ffn_dim, cases[i].ffn_dim);
        assert_int_equal(c->ffn_dim % 8, 0);
        free(c);
    }

    /* explicit values are kept; grouped-query heads */
    c = new_defaults();
    parse_ok(c, "[model]\ndim = 96\nheads = 6\nkv_heads = 2\nhead_dim = 24\nffn_dim = 100\nffn_block = 64\n");
    finish_ok(c);
    assert_int_equal(c->kv_heads, 2);
    assert_int_equal(c->head_dim, 24);
    assert_int_equal(c->ffn_dim, 100);
    assert_int_equal(c->ffn_block, 64);
    free(c);

    /* layers beyond model.layers return to the defaults ([layers] reached them) */
    c = new_defaults();
    parse_ok(c, "[layers]\nprecond = rownorm\n");
    assert_string_equal(c->layer[40].precond, "rownorm");
    finish_ok(c);
    assert_string_equal(c->layer[1].precond, "rownorm");
    assert_string_equal(c->layer[2].precond, "none");
    assert_string_equal(c->layer[40].precond, "none");
    free(c);

    /* all 64 layers */
    c = new_defaults();
    set_ok(c, "model.layers=64");
    set_ok(c, "layer.63.span=2");
    finish_ok(c);
    assert_true(c->layer_given == UINT64_MAX);
    free(c);
}

#define SETS(...) ((const char *const[]){__VA_ARGS__, NULL})

/* ra_config_finish_model: every check but the data's (generate reads no data) */
static void test_finish_model(void **state)
{
    (void)state;
    static const char *const data_only[][3] = { { "data.seq_len=4", NULL }, { "data.source=file", NULL },
                                                 { "data.recall_keys=3", NULL },
                                                 { "data.seq_len=1073741824", NULL } }; /* x train.batch */
    for (size_t i = 0; i < sizeof data_only / sizeof *data_only; i++) {
        ra_config *c = new_defaults(), *d = new_defaults();
        for (int k = 0; data_only[i][k]; k++) {
            assert_int_equal(ra_config_set(c, data_only[i][k], "--set"), RA_OK);
            assert_int_equal(ra_config_set(d, data_only[i][k], "--set"), RA_OK);
        }
        assert_int_equal(ra_config_finish(c), RA_ERR_ARG); /* refused with the data's checks */
        if (ra_config_finish_model(d) != RA_OK) fail_msg("%s: %s", data_only[i][0], ra_last_error());
        assert_int_equal(d->head_dim, 16); /* derived as ra_config_finish derives */
        free(c);
        free(d);
    }
    /* the model's checks still apply */
    ra_config *c = new_defaults();
    assert_int_equal(ra_config_set(c, "model.kv_heads=3", "--set"), RA_OK);
    assert_int_equal(ra_config_finish_model(c), RA_ERR_ARG);
    assert_contains(ra_last_error(), "model.kv_heads = 3");
    free(c);
}

static void test_finish_errors(void **state)
{
    (void)state;
    expect_finish_error(SETS("model.kv_heads=3"), "model.heads = 4 is not divisible by model.kv_heads = 3",
                        NULL);
    expect_finish_error(SETS("model.kv_heads=8"), "model.heads = 4", "model.kv_heads = 8");
    expect_finish_error(SETS("model.heads=3"), "model.dim = 64 is not divisible by model.heads = 3", NULL);
    expect_finish_error(SETS("model.head_dim=15"), "model.head_dim = 15", "even");
    expect_finish_error(SETS("model.dim=48", "model.heads=16"), "model.head_dim = 3", "even");
    expect_finish_error(SETS("train.batch=16", "train.accum=3"),
                        "train.batch = 16 is not divisible by train.accum = 3", NULL);
    /* the grid: each of run.dp groups takes batch / dp sequences in accum micro-batches */
    expect_finish_error(SETS("train.batch=10", "run.dp=4"), "train.batch = 10 is not divisible by run.dp = 4", NULL);
    expect_finish_error(SETS("train.batch=12", "run.dp=2", "train.accum=4"), "train.accum = 4",
                        "run.dp x train.accum = 8");
    /* the advice counts train.accum; it was "a multiple of run.dp" (9 fails again) */
    expect_finish_error(SETS("train.batch=8", "run.dp=3", "train.accum=2"), "is not divisible by run.dp = 3",
                        "a multiple of run.dp x train.accum = 6");
    expect_finish_error(SETS("train.batch=8", "run.dp=3"), "is not divisible by run.dp = 3",
                        "make train.batch a multiple of run.dp");
    /* a multiple beyond train.batch's range: lower them, not "make train.batch a multiple of 2097152" */
    expect_finish_error(SETS("train.batch=1048576", "run.dp=2", "train.accum=1048576"),
                        "lower train.accum or run.dp", "run.dp x train.accum = 2097152, and is at most 1048576");
    expect_finish_error(SETS("train.min_lr=0.01"), "train.min_lr = 0.01", "train.lr = 0.003");
    expect_finish_error(SETS("train.steps=10"), "train.warmup = 20", "train.steps = 10");
    expect_finish_error(SETS("data.source=file"), "data.source = file", "data.path");
    expect_finish_error(SETS("data.source=file", "data.path=x", "data.val_fraction=0"),
                        "data.val_fraction", NULL);
    expect_finish_error(SETS("data.seq_len=20"), "data.seq_len = 20", "21");
    expect_finish_error(SETS("data.recall_keys=3"), "data.recall_pairs = 4", "data.recall_keys = 3");
    expect_finish_error(SETS("data.recall_keys=9"), "data.recall_keys = 9", "at most 8");
    expect_finish_error(SETS("model.vocab=200"), "data.recall_keys = 8", "model.vocab = 200");
    expect_finish_error(SETS("model.vocab=255"), "model.vocab = 255", ">= 256");
    expect_finish_error(SETS("layer.5.span=3"), "--set 'layer.5.span=3': layer 5 is beyond", "model.layers = 2");
    expect_finish_error(SETS("layer.2.precond=rownorm", "model.layers=2"),
                        "--set 'layer.2.precond=rownorm': layer 2 is beyond", NULL);
    /* warm starts: the explicit head needs non-negative features and its own matrix */
    expect_finish_error(SETS("model.head_init=explicit", "model.tie_embeddings=0"), "model.head_init = explicit",
                        "model.embed_init = bitcipher or cooc");
    expect_finish_error(SETS("model.head_init=explicit", "model.embed_init=cooc"), "model.head_init = explicit",
                        "model.tie_embeddings = 0");
    expect_finish_error(SETS("model.embed_init=bitcipher", "model.warm_bits=8"), "model.warm_bits = 8",
                        "at least 9");
    expect_finish_error(SETS("model.embed_init=bitcipher", "model.dim=8", "model.heads=2"), "9 code bits",
                        "model.dim = 8");
    expect_finish_error(SETS("model.embed_init=cooc", "model.vocab=5000"), "model.vocab = 5000", "4096");
    /* a timeout shorter than the watchdog's answer window named a healthy rank lost:
     * refused by ra_config_check_run, not by finish (a checkpoint storing one loads) */
    ra_config *t = new_defaults();
    set_ok(t, "run.timeout=0.0001");
    finish_ok(t);
    assert_int_equal(ra_config_check_run(t, "the checkpoint ck/last.ckpt"), RA_ERR_ARG);
    assert_contains(ra_last_error(), "run.timeout = 9.99999975e-05, from the checkpoint ck/last.ckpt: give 0");
    assert_contains(ra_last_error(), "--set run.timeout=");
    set_ok(t, "run.timeout=0.9999999"); /* printed as stored, not rounded to a 1 that looks allowed */
    assert_int_equal(ra_config_check_run(t, NULL), RA_ERR_ARG);
    assert_contains(ra_last_error(), "run.timeout = 0.999999881: give 0");
    set_ok(t, "run.timeout=1");
    assert_int_equal(ra_config_check_run(t, NULL), RA_OK);
    set_ok(t, "run.timeout=0");
    assert_int_equal(ra_config_check_run(t, NULL), RA_OK);
    free(t);

    /* the recall limits themselves are accepted */
    ra_config *c = new_defaults();
    set_ok(c, "data.recall_keys=8");
    set_ok(c, "data.seq_len=21");
    finish_ok(c);
    free(c);
    /* ... and the file source does not need them */
    c = new_defaults();
    parse_ok(c, "[data]\nsource = file\npath = x\nseq_len = 8\nrecall_keys = 1000\n");
    finish_ok(c);
    free(c);

    /* [layer.N] of a text beyond model.layers: the highest such section is
     * named by file:line (its first header), and a later model.layers
     * override can make it valid */
    c = new_defaults();
    parse_ok(c, "[layer.3]\nspan = 4\n[layer.5]\nrow = 2\n[layer.4]\n[layer.5]\nspan = 2\n[model]\nlayers = 3\n");
    assert_int_equal(ra_config_finish(c), RA_ERR_ARG);
    assert_contains(ra_last_error(), "t.ini:3: layer 5 is beyond model.layers = 3 (layers are 0 to 2)");
    set_ok(c, "model.layers=6");
    finish_ok(c);
    assert_int_equal(c->layer[3].span, 4);
    assert_int_equal(c->layer[5].span, 2);
    assert_string_equal(c->layer_given_at, ""); /* finished configs compare equal */
    /* ... an override beyond them is named as given; one within them is not */
    set_ok(c, "layer.2.span=8");
    set_ok(c, "layer.9.span=4");
    set_ok(c, "layer.7.span=4");
    assert_int_equal(ra_config_finish(c), RA_ERR_ARG);
    assert_contains(ra_last_error(), "--set 'layer.9.span=4': layer 9 is beyond model.layers = 6");
    free(c);
    /* a place is kept only while its layer is beyond model.layers (the
     * round trip below needs a parsed text within them to leave none); a
     * later model.layers below it gets the message without a place */
    c = new_defaults();
    parse_ok(c, "[model]\nlayers = 6\n[layer.5]\nspan = 2\n");
    assert_string_equal(c->layer_given_at, "");
    set_ok(c, "model.layers=2");
    assert_int_equal(ra_config_finish(c), RA_ERR_ARG);
    assert_contains(ra_last_error(), "[layer.5] configures layer 5, but model.layers = 2");
    free(c);

    /* values written by code, not text, are checked against the schema */
    c = new_defaults();
    c->dim = 0;
    assert_int_equal(ra_config_finish(c), RA_ERR_ARG);
    assert_contains(ra_last_error(), "model.dim");
    assert_contains(ra_last_error(), "1 to 65536");
    ra_config_defaults(c);
    strcpy(c->layer[1].head, "mystery");
    assert_int_equal(ra_config_finish(c), RA_ERR_ARG);
    assert_contains(ra_last_error(), "layer.1.head");
    ra_config_defaults(c);
    c->lr = INFINITY;
    assert_int_equal(ra_config_finish(c), RA_ERR_ARG);
    assert_contains(ra_last_error(), "train.lr");
    free(c);
}

/* ---- canonical text ---------------------------------------------------- */

/* finished a -> text -> defaults + parse == a, byte for byte; and again. */
static void assert_round_trip(const ra_config *a)
{
    char *text = ra_config_text(a);
    assert_non_null(text);
    ra_config *b = new_defaults();
    if (ra_config_parse(b, text, "canonical") != RA_OK) fail_msg("%s\n%s", ra_last_error(), text);
    assert_memory_equal(a, b, sizeof *a);
    finish_ok(b);
    assert_memory_equal(a, b, sizeof *a);
    char *text2 = ra_config_text(b);
    assert_non_null(text2);
    assert_string_equal(text, text2);
    free(text);
    free(text2);
    free(b);
}

static void test_round_trip(void **state)
{
    (void)state;
    ra_config *a = new_defaults();
    finish_ok(a);
    assert_round_trip(a);

    /* awkward values: floats without short decimals, extremes, strings that
     * need quotes and escapes, per-layer differences */
    ra_config_defaults(a);
    parse_ok(a, full_file);
    set_ok(a, "train.lr=0.1");
    set_ok(a, "train.min_lr=0.0333333333");
    set_ok(a, "model.init_std=1.17549435e-38");
    set_ok(a, "model.rope_theta=1e12");
    set_ok(a, "model.norm_eps=3.40282347e-20");
    set_ok(a, "train.beta2=0.99999994");
    set_ok(a, "layer.0.precond_lambda=123456.789");
    set_ok(a, "layer.1.precond_lambda=0.000001");
    set_ok(a, "data.path=\" lead and trail \"");
    set_ok(a, "run.checkpoint_dir=a \"quoted\" \\dir\\ # ; x");
    set_ok(a, "run.metrics=\"\\\"start\"");
    finish_ok(a);
    assert_round_trip(a);

    char *text = ra_config_text(a);
    assert_non_null(text);
    assert_contains(text, "[layer.2]");
    assert_true(strstr(text, "[layer.3]") == NULL);
    assert_true(strstr(text, "[layers]") == NULL);
    assert_contains(text, "lr = 0.1 "); /* shortest exact form */
    assert_contains(text, "rope_theta = 1e+12");
    assert_contains(text, "seed = 18446744073709551615");
    assert_contains(text, "path = \" lead and trail \"");
    assert_contains(text, "# model width C"); /* descriptions as comments */
    free(text);

    /* all 64 layers, each different */
    ra_config_defaults(a);
    set_ok(a, "model.layers=64");
    for (int n = 0; n < 64; n++) {
        char s[64];
        snprintf(s, sizeof s, "layer.%d.span=%d", n, n * 3);
        set_ok(a, s);
        snprintf(s, sizeof s, "layer.%d.precond_eps=%g", n, 1e-3 / (n + 1));
        set_ok(a, s);
    }
    finish_ok(a);
    assert_round_trip(a);
    free(a);
}

/* ---- presets ----------------------------------------------------------- */

static ra_config *load_preset(const char *name)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", CONFIG_DIR, name);
    ra_config *c = malloc(sizeof *c);
    assert_non_null(c);
    if (ra_config_load(c, path) != RA_OK) fail_msg("%s: %s", name, ra_last_error());
    finish_ok(c);
    assert_round_trip(c);
    return c;
}

/* Parameter count as the model lays it out (src/model/model.c). */
static long long params(const ra_config *c)
{
    long long C = c->dim, HD = (long long)c->heads * c->head_dim, KD = (long long)c->kv_heads * c->head_dim;
    long long F = c->ffn_dim, V = c->vocab;
    long long ffn = (strcmp(c->ffn, "swiglu") == 0 ? 3 : 2) * C * F;
    long long layer = 2 * C + C * HD + 2 * C * KD + HD * C + ffn;
    return V * C + c->layers * layer + C + (c->tie_embeddings ? 0 : C * V);
}

/* Sizes are computed in 64 bits and refused, naming the keys, beyond what
 * the model counts in int; the bounds themselves are accepted. */
static void test_sizes(void **state)
{
    (void)state;
    /* 2 * recall_queries overflowed int (a crash before this check) */
    expect_finish_error(SETS("data.recall_queries=1073741824"), "data.recall_queries",
                        "4 + 2 * 1073741824 + 1 = 2147483653");
    expect_finish_error(SETS("data.recall_queries=1073741824", "data.seq_len=1073741824"), "data.seq_len",
                        "2147483653");

    /* parameters: dim 8192, 2 layers fit; 3 layers exceed 2^31 - 1, and the
     * message gives the count of the test's own formula (params above) */
    ra_config *c = new_defaults();
    set_ok(c, "model.dim=8192");
    set_ok(c, "model.layers=2");
    finish_ok(c);
    const long long two = params(c), outer = (long long)c->vocab * c->dim + c->dim;
    assert_true(two <= 2147483647LL);
    const long long three = outer + (two - outer) / 2 * 3;
    assert_true(three > 2147483647LL);
    char want[64];
    snprintf(want, sizeof want, "the model has %lld parameters", three);
    expect_finish_error(SETS("model.dim=8192", "model.layers=3"), want, "model.layers = 3");
    expect_finish_error(SETS("model.dim=65536", "model.vocab=65536", "model.heads=64"), "parameters",
                        "model.vocab = 65536");
    free(c);

    /* micro-batch tokens: 2^20 x 4096 = 2^32 refused, 2^19 x 4096 = 2^31 too; 2^30 accepted */
    expect_finish_error(SETS("train.batch=1048576", "data.seq_len=4096"), "train.batch / train.accum",
                        "4294967296 tokens");
    expect_finish_error(SETS("train.batch=1048576", "train.accum=2", "data.seq_len=4096"),
                        "data.seq_len = 4096", "2147483648 tokens");
    /* a micro-batch holds one sequence per group at least: then no train.accum helps,
     * and the advice says what does (it was "raise train.accum", refused next) */
    expect_finish_error(SETS("train.batch=2", "run.dp=2", "data.seq_len=1073741824"), "2147483648 tokens",
                        "with run.dp = 2 it holds at least 2 sequences (one per data-parallel group): shorten "
                        "data.seq_len to at most 1073741823, or lower run.dp");
    expect_finish_error(SETS("train.batch=8", "train.accum=2", "run.dp=2", "data.seq_len=536870912"),
                        "raise train.accum (train.batch stays a multiple of run.dp x train.accum)", NULL);
    c = new_defaults();
    set_ok(c, "train.batch=1048576");
    set_ok(c, "train.accum=4");
    set_ok(c, "data.seq_len=4096");
    finish_ok(c);
    free(c);

    /* FFN blocks: 2^30 tokens of F = 176 refused; 2^23 accepted */
    expect_finish_error(SETS("model.ffn_block=1073741824"), "model.ffn_block = 1073741824", "model.ffn_dim = 176");
    c = new_defaults();
    set_ok(c, "model.ffn_block=8388608");
    finish_ok(c);
    free(c);
}

static void test_presets(void **state)
{
    (void)state;
    ra_config *c = load_preset("tiny.ini");
    assert_int_equal(c->dim, 32);
    assert_int_equal(c->layers, 2);
    assert_int_equal(c->heads, 2);
    assert_int_equal(c->seq_len, 32);
    assert_int_equal(c->steps, 20);
    assert_int_equal(c->batch, 4);
    assert_int_equal(c->recall_keys, 8);
    assert_int_equal(c->recall_pairs, 4);
    assert_int_equal(c->recall_queries, 4);
    assert_int_equal(c->eval_every, 10);
    assert_int_equal(c->eval_batches, 2);
    free(c);

    /* recall.ini spells out the defaults */
    c = load_preset("recall.ini");
    ra_config *d = new_defaults();
    finish_ok(d);
    assert_memory_equal(c, d, sizeof *c);
    free(d);
    free(c);

    c = load_preset("10m.ini");
    assert_int_equal(c->dim, 384);
    assert_int_equal(c->layers, 6);
    assert_int_equal(c->head_dim, 64);
    assert_int_equal(c->seq_len, 8192);
    assert_string_equal(c->source, "file");
    assert_int_equal(params(c), 10720128); /* the figure in the preset's comment */
    free(c);

    c = load_preset("long.ini");
    assert_int_equal(c->seq_len, 65536);
    assert_int_equal(c->dim, 256);
    assert_int_equal(c->layers, 4);
    assert_string_equal(c->layout, "zigzag");
    assert_int_equal(params(c), 3229952);
    free(c);

    c = load_preset("bench.ini");
    assert_int_equal(c->seq_len, 2048);
    assert_int_equal(params(c), 3229952); /* the figure in the preset's comment */
    free(c);

    c = load_preset("mixed.ini");
    assert_string_equal(c->layer[0].head, "full");
    assert_string_equal(c->layer[1].head, "combiner-fixed");
    assert_int_equal(c->layer[1].span, 8);
    free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_finish_derived),
        cmocka_unit_test(test_finish_errors),
        cmocka_unit_test(test_finish_model),
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_sizes),
        cmocka_unit_test(test_presets),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
