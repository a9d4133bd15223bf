/* cmd_generate.c - `ringattn generate`: argument parsing, the prompt, and
 * sampling. Decoding itself (the sharded KV cache, one token through the
 * model's layers) is the library's: decode.h.
 *
 * The prompt is run through the ring forward once (prefill) when it has at
 * least one token per rank; shorter prompts go through the decoder token by
 * token. */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ringattn/data.h"
#include "ringattn/decode.h"
#include "ringattn/dist.h"
#include "ringattn/fileio.h"
#include "ringattn/mem.h"
#include "ringattn/rng.h"
#include "ringattn/trace.h"
#include "session.h"
#include "train_io.h"

/* A prompt is at most this long (and at most the model's data.seq_len). */
#define PROMPT_MAX_BYTES ((size_t)16 << 20)

static const char *help =
    "usage: mpirun -n P ringattn generate --checkpoint CKPT|DIR\n"
    "                                     (--prompt TEXT | --prompt-file F | --prompt-tokens FILE|LIST)\n"
    "                                     [--tokens 64] [--temperature 1.0] [--top-k 0] [--seed 1]\n"
    "                                     [--prompt-dtype auto] [--output-format text|ids] [--out FILE]\n"
    "                                     [--trace FILE]\n"
    "\n"
    "Samples --tokens tokens after the prompt and prints prompt + continuation and\n"
    "a newline on rank 0, each token as soon as it is sampled (--out FILE: writes\n"
    "them to FILE instead, atomically at the end; checked before any work, and a\n"
    "failed write is an error even under mpirun). --temperature 0\n"
    "is greedy; --top-k K samples among the K most likely tokens (0, or K at least model.vocab: all).\n"
    "SIGTERM, SIGUSR1 or a Ctrl-C stops after the prompt or the current token and\n"
    "keeps what was sampled (--out is written with it), exit status 1; a second\n"
    "Ctrl-C quits at once.\n"
    "\n"
    "Prompts: --prompt TEXT and --prompt-file F (a regular file) are bytes.\n"
    "--prompt-tokens takes token ids: a LIST such as \"1,2,3\" or \"1 2 3\" (digits,\n"
    "commas and spaces only; a file whose name is all digits is ./NAME), or a FILE:\n"
    "a .npy or llm.c shard (found by their headers), a text file of ids separated\n"
    "by commas or whitespace, or a flat binary file with --prompt-dtype uint16 or\n"
    "uint32 (--prompt-dtype: auto, uint16, uint32, npy, llmc or text; for a\n"
    "--prompt-tokens FILE only, refused with any other prompt). Every id\n"
    "must be below model.vocab.\n"
    "\n"
    "--output-format text prints one byte per token (the default when model.vocab\n"
    "<= 256); ids prints the ids on one line, space separated (the default for\n"
    "larger vocabularies; scripts/data/detokenize.py turns them into text).\n"
    "\n"
    "The KV cache is sharded: rank r keeps the keys and values of its prompt\n"
    "tokens and of new positions t with t mod P = r. The prompt is at most the\n"
    "model's data.seq_len tokens; every layer must use the full head. Decoding\n"
    "past data.seq_len runs (RoPE positions beyond training) with a warning.\n"
    "--trace FILE: a timeline of the prefill and of every decoded token (docs/trace.md).\n";

/* ---- sampling ------------------------------------------------------------------ */

static int32_t sample(const float *logits, int V, float temp, int topk, uint64_t seed, uint64_t i)
{
    int best = 0;
    for (int v = 1; v < V; v++)
        if (logits[v] > logits[best]) best = v;
    if (temp <= 0) return best;
    /* the k-th largest logit is the cut */
    float cut = -INFINITY;
    if (topk > 0 && topk < V) {
        float hi = INFINITY;
        for (int r = 0; r < topk; r++) {
            float nx = -INFINITY;
            for (int v = 0; v < V; v++)
                if (logits[v] < hi && logits[v] > nx) nx = logits[v];
            hi = cut = nx;
        }
    }
    double z = 0;
    for (int v = 0; v < V; v++)
        if (logits[v] >= cut) z += exp((logits[v] - logits[best]) / temp);
    double u = (ra_rand_uniform(seed, i) * 0.5 + 0.5) * z, acc = 0;
    for (int v = 0; v < V; v++) {
        if (logits[v] < cut) continue;
        acc += exp((logits[v] - logits[best]) / temp);
        if (acc >= u) return v;
    }
    return best;
}

/* ---- the command ---------------------------------------------------------------- */

enum { OUT_AUTO, OUT_TEXT, OUT_IDS };
enum { PROMPT_TEXT_IDS = -1 }; /* --prompt-dtype text, beside ra_token_dtype_id */

typedef struct {
    ra_session_args s;
    const char *ckpt, *prompt, *prompt_file, *prompt_tokens, *out, *trace;
    int tokens, topk, seed;
    int prompt_dtype;         /* ra_token_dtype_id or PROMPT_TEXT_IDS */
    const char *dtype_given;  /* --prompt-dtype's value (NULL: not given) */
    int format;       /* OUT_* */
    float temp;
} gen_args;

#define ID_SEPS ", \t\n\r" /* between the ids of a --prompt-tokens LIST */

static int is_sep(char ch) { return ch && strchr(ID_SEPS, ch); }

/* A list of token ids: digits, separated by commas and whitespace. */
static int is_id_list(const char *t, size_t n)
{
    int digits = 0;
    for (size_t i = 0; i < n; i++) {
        if (t[i] >= '0' && t[i] <= '9') digits = 1;
        else if (!is_sep(t[i])) return 0;
    }
    return digits;
}

/* A value meant as a LIST that is_id_list refuses ("-1", "1,-2", "+5",
 * "0x10"): told so when no such file exists, not "cannot open". */
static int looks_like_ids(const char *t)
{
    return (*t >= '0' && *t <= '9') || *t == '+' || *t == '-' || strchr(t, ',');
}

/* Where such a value stops being a LIST: the byte of its first character
 * that is no digit nor separator, and the position of the id it is in
 * (0-based, as the vocabulary check counts them). */
static size_t first_non_id(const char *t, int *pos)
{
    size_t i = 0;
    *pos = -1;
    for (; t[i] && ((t[i] >= '0' && t[i] <= '9') || is_sep(t[i])); i++)
        if (!is_sep(t[i]) && (i == 0 || is_sep(t[i - 1]))) ++*pos;
    if (i == 0 || is_sep(t[i - 1])) ++*pos; /* it starts an id of its own */
    return i;
}

/* --prompt-dtype: a token file's dtype, or text */
static ra_status parse_dtype(const char *val, gen_args *a)
{
    a->dtype_given = val;
    if (strcmp(val, "text") == 0) {
        a->prompt_dtype = PROMPT_TEXT_IDS;
        return RA_OK;
    }
    if ((a->prompt_dtype = ra_name_find(ra_token_dtype_words, val)) >= 0) return RA_OK;
    const char *words[16]; /* the dtypes and text, for one list ("..., llmc or text", not "... or llmc or text") */
    int n = 0;
    for (; n < 14 && ra_token_dtype_words[n]; n++) words[n] = ra_token_dtype_words[n];
    words[n] = "text", words[n + 1] = NULL;
    char w[160];
    return RA_FAIL(RA_ERR_ARG, "--prompt-dtype: '%s' is not one of %s", val, ra_name_list(words, w, sizeof w));
}

/* --prompt-dtype says how --prompt-tokens FILE is read; with any other
 * prompt it was ignored unseen (--prompt and --prompt-file are bytes). */
static ra_status dtype_applies(const gen_args *a)
{
    if (!a->dtype_given) return RA_OK;
    const char *t = a->prompt_tokens;
    if (t && !is_id_list(t, strlen(t))) return RA_OK;
    if (t)
        return RA_FAIL(RA_ERR_ARG, "generate: --prompt-dtype %s is for a --prompt-tokens FILE, but --prompt-tokens "
                       "'%s' is a list of ids (a file named with digits only: ./NAME); drop --prompt-dtype",
                       a->dtype_given, t);
    return RA_FAIL(RA_ERR_ARG, "generate: --prompt-dtype %s is for a --prompt-tokens FILE, but %s gives the prompt "
                   "as bytes; drop --prompt-dtype (or give token ids with --prompt-tokens)", a->dtype_given,
                   a->prompt ? "--prompt" : "--prompt-file");
}

static ra_status parse(int argc, char **argv, gen_args *a, int *want_help)
{
    static const struct option opts[] = {
        { "checkpoint", required_argument, 0, 'k' }, { "prompt", required_argument, 0, 'p' },
        { "prompt-file", required_argument, 0, 'f' }, { "tokens", required_argument, 0, 'n' },
        { "temperature", required_argument, 0, 't' }, { "top-k", required_argument, 0, 'K' },
        { "seed", required_argument, 0, 's' },       { "set", required_argument, 0, 'S' },
        { "threads", required_argument, 0, 'T' },    { "help", no_argument, 0, 'h' },
        { "out", required_argument, 0, 'o' },        { "prompt-tokens", required_argument, 0, 'P' },
        { "prompt-dtype", required_argument, 0, 'D' }, { "output-format", required_argument, 0, 'F' },
        { "trace", required_argument, 0, 'X' },
        { 0, 0, 0, 0 },
    };
    *a = (gen_args){ .tokens = 64, .temp = 1.0f, .seed = 1, .prompt_dtype = RA_TOKEN_AUTO, .format = OUT_AUTO };
    ra_status st = RA_OK;
    int o;
    opterr = 0;
    optind = 1;
    while ((o = ra_getopt(argc, argv, ":h", opts)) != -1) {
        if (ra_session_opt(&a->s, o, optarg, &st)) {
            RA_TRY(st);
            continue;
        }
        switch (o) {
        case 'k': a->ckpt = optarg; break;
        case 'p': a->prompt = optarg; break;
        case 'f': a->prompt_file = optarg; break;
        case 'P': a->prompt_tokens = optarg; break;
        case 'o': a->out = optarg; break;
        case 'X':
            if (!optarg[0]) return RA_FAIL(RA_ERR_ARG, "generate: --trace: empty file name");
            a->trace = optarg;
            break;
        case 'n': RA_TRY(ra_arg_int("--tokens", optarg, 0, 1 << 24, &a->tokens)); break;
        case 't':
            RA_TRY(ra_arg_float("--temperature", optarg, &a->temp));
            if (!(a->temp >= 0) || isinf(a->temp))
                return RA_FAIL(RA_ERR_ARG, "--temperature: must be >= 0 and finite in float32 (at most 3.4e38), "
                                           "got %s", optarg);
            break;
        case 'K': RA_TRY(ra_arg_int("--top-k", optarg, 0, 1 << 20, &a->topk)); break;
        case 's': RA_TRY(ra_arg_int("--seed", optarg, 0, 1 << 30, &a->seed)); break;
        case 'D': RA_TRY(parse_dtype(optarg, a)); break;
        case 'F':
            if (strcmp(optarg, "text") == 0) a->format = OUT_TEXT;
            else if (strcmp(optarg, "ids") == 0) a->format = OUT_IDS;
            else return RA_FAIL(RA_ERR_ARG, "--output-format: '%s' is not text or ids", optarg);
            break;
        case 'h': *want_help = 1; return RA_OK;
        default: return ra_arg_unknown("generate", o, argv[optind - 1]);
        }
    }
    RA_TRY(ra_arg_rest("generate", argc, argv));
    if (!a->ckpt) return RA_FAIL(RA_ERR_ARG, "generate: --checkpoint is required");
    if (!!a->prompt + !!a->prompt_file + !!a->prompt_tokens != 1)
        return RA_FAIL(RA_ERR_ARG, "generate: give exactly one of --prompt, --prompt-file and --prompt-tokens");
    if (a->prompt && !a->prompt[0]) return RA_FAIL(RA_ERR_ARG, "generate: --prompt is empty");
    if (a->prompt_tokens && !a->prompt_tokens[0]) return RA_FAIL(RA_ERR_ARG, "generate: --prompt-tokens is empty");
    if (a->prompt_tokens && !a->prompt_tokens[strspn(a->prompt_tokens, ID_SEPS)]) /* a LIST without ids, not a file */
        return RA_FAIL(RA_ERR_ARG, "generate: --prompt-tokens '%s': no token ids in the list (a LIST such as \"1,2,3\")",
                       a->prompt_tokens);
    return dtype_applies(a);
}

/* --out and --trace before any work: places a file can be created, no
 * input nor an input's temporary name, not each other, no checkpoint name. */
static ra_status check_out(const gen_args *a)
{
    char path[RA_PATH_MAX + 32], dir[RA_PATH_MAX];
    ra_ckpt_resolve(path, sizeof path, a->ckpt);
    ra_dir_of(path, dir, sizeof dir);
    const int digits = a->prompt_tokens && is_id_list(a->prompt_tokens, strlen(a->prompt_tokens)); /* a LIST, not a file */
    if (a->prompt_tokens && !digits && looks_like_ids(a->prompt_tokens) && access(a->prompt_tokens, F_OK) != 0) {
        const int err = errno;
        int pos;
        const size_t at = first_non_id(a->prompt_tokens, &pos);
        const unsigned char ch = (unsigned char)a->prompt_tokens[at];
        char shown[8];
        snprintf(shown, sizeof shown, ch > ' ' && ch < 0x7f ? "'%c'" : "\\x%02x", ch);
        return RA_FAIL(RA_ERR_ARG, "generate: --prompt-tokens '%s' is neither a list of non-negative decimal ids "
                       "separated by commas or spaces (such as 1,2,3: %s at byte %zu, in the id at position %d, is no "
                       "digit) nor a readable file (%s)", a->prompt_tokens, shown, at, pos, strerror(err));
    }
    const ra_cli_file ins[] = { { "--checkpoint", path }, { "--prompt-file", a->prompt_file },
                                { "--prompt-tokens", digits ? NULL : a->prompt_tokens } };
    const ra_cli_file outs[] = { { "--out", a->out }, { "--trace", a->trace } };
    RA_TRY(ra_check_files("generate", ins, 3, outs, 2, a->trace != NULL));
    if (a->trace) RA_TRY(ra_check_not_checkpoint(a->trace, "--trace", dir, "the trace"));
    if (!a->out) return RA_OK;
    RA_TRY(ra_check_output_path(a->out, "--out"));
    if (ra_same_file(a->out, path) || ra_same_file(a->out, a->ckpt))
        return RA_FAIL(RA_ERR_ARG, "--out %s is the checkpoint %s: choose another file", a->out, a->ckpt);
    RA_TRY(ra_check_not_checkpoint(a->out, "--out", dir, "the output"));
    if (a->prompt_file && ra_same_file(a->out, a->prompt_file))
        return RA_FAIL(RA_ERR_ARG, "--out %s is the --prompt-file: choose another file", a->out);
    if (a->prompt_tokens && ra_same_file(a->out, a->prompt_tokens))
        return RA_FAIL(RA_ERR_ARG, "--out %s is the --prompt-tokens file: choose another file", a->out);
    return RA_OK;
}

/* ---- the prompt ----------------------------------------------------------------- */


/* The ids of a list (is_id_list) into *out (malloc'd), each below vocab and
 * at most max of them, no item empty (a trailing comma is fine); what names
 * the source. */
/* After "longer than the model's data.seq_len of M": how to run it anyway */
#define SEQ_LEN_HINT "; --set data.seq_len=%lld (or more) runs it, though text past the positions the model was " \
                     "trained on may degrade"

static ra_status parse_ids(const char *t, size_t n, const char *what, int vocab, int64_t max, int32_t **out,
                           int64_t *count)
{
    int64_t k = 0, cap = 0;
    for (size_t i = 0; i < n; i++) k += (t[i] >= '0' && t[i] <= '9') && (i == 0 || is_sep(t[i - 1]));
    if (k > max) return RA_FAIL(RA_ERR_ARG, "the prompt of %lld tokens is longer than the model's data.seq_len of %lld"
                                SEQ_LEN_HINT, (long long)k, (long long)max, (long long)k);
    cap = k;
    int32_t *ids = malloc(sizeof(int32_t) * (size_t)(cap ? cap : 1));
    if (!ids) return RA_FAIL(RA_ERR_NOMEM, "%s: out of memory for %lld token ids", what, (long long)cap);
    k = 0;
    int after_comma = 1; /* a comma here would leave an empty item ("1,,2", ",1"): a lost id? */
    for (size_t i = 0; i < n;) {
        if (t[i] == ',' && after_comma) {
            free(ids);
            return RA_FAIL(RA_ERR_ARG, "%s: an empty item before the comma at byte %zu (ids are separated by one "
                                       "comma and/or whitespace)", what, i);
        }
        if (is_sep(t[i])) {
            after_comma |= t[i] == ',';
            i++;
            continue;
        }
        after_comma = 0;
        int64_t v = 0;
        size_t j = i;
        for (; j < n && t[j] >= '0' && t[j] <= '9'; j++)
            if (v <= vocab) v = v * 10 + (t[j] - '0'); /* past vocab it stays past it */
        if (v >= vocab) {
            free(ids);
            return RA_FAIL(RA_ERR_ARG,
                           "%s: token %.*s at position %lld is outside the model's vocabulary [0, %d) (model.vocab = %d)",
                           what, (int)(j - i > 24 ? 24 : j - i), t + i, (long long)k, vocab, vocab);
        }
        ids[k++] = (int32_t)v;
        i = j;
    }
    *out = ids;
    *count = k;
    return RA_OK;
}

/* --prompt-tokens FILE: a token file (data.h) or a text file of ids. */
static ra_status read_token_prompt(const gen_args *a, const ra_config *cfg, int32_t **out, int64_t *count)
{
    const char *path = a->prompt_tokens, *what = "--prompt-tokens";
    int dtype = a->prompt_dtype;
    if (dtype == RA_TOKEN_AUTO) { /* a header says what it is; else text, or refused */
        int fd;
        int64_t size;
        unsigned char h[8] = { 0 };
        RA_TRY(ra_file_open_input(path, what, &fd, &size));
        ra_status st = ra_pread_full(fd, path, h, (size_t)(size < 8 ? size : 8), 0);
        close(fd);
        RA_TRY(st);
        const uint32_t m = (uint32_t)h[0] | (uint32_t)h[1] << 8 | (uint32_t)h[2] << 16 | (uint32_t)h[3] << 24;
        if (!(size >= 6 && memcmp(h, "\x93NUMPY", 6) == 0) && !(size >= 4 && (m == 20240520u || m == 20240801u)))
            dtype = PROMPT_TEXT_IDS;
    }
    if (dtype == PROMPT_TEXT_IDS) {
        char *text = NULL;
        size_t len = 0;
        RA_TRY(ra_file_read_all(path, what, PROMPT_MAX_BYTES, &text, &len));
        ra_status st = RA_OK;
        if (!is_id_list(text, len))
            st = RA_FAIL(RA_ERR_ARG,
                         "%s %s: not a list of token ids (digits separated by commas or whitespace), a .npy file or "
                         "an llm.c shard; for a flat binary file give --prompt-dtype uint16 or uint32",
                         what, path);
        char label[RA_PATH_MAX + 32];
        snprintf(label, sizeof label, "%s %s", what, path);
        if (st == RA_OK) st = parse_ids(text, len, label, cfg->vocab, cfg->seq_len, out, count);
        free(text);
        return st;
    }
    ra_token_file f;
    RA_TRY(ra_token_file_open_as(&f, path, what, (ra_token_dtype_id)dtype, "--prompt-dtype"));
    ra_status st = RA_OK;
    if (f.count > cfg->seq_len)
        st = RA_FAIL(RA_ERR_ARG, "%s %s: the prompt of %lld tokens is longer than the model's data.seq_len of %d"
                     SEQ_LEN_HINT, what, path, (long long)f.count, cfg->seq_len, (long long)f.count);
    int32_t *ids = NULL;
    if (st == RA_OK) {
        ids = malloc(sizeof(int32_t) * (size_t)f.count);
        if (!ids) st = RA_FAIL(RA_ERR_NOMEM, "%s %s: out of memory", what, path);
    }
    if (st == RA_OK) st = ra_token_file_read(&f, 0, f.count, cfg->vocab, ids);
    ra_token_file_close(&f);
    if (st != RA_OK) {
        free(ids);
        return st;
    }
    *out = ids;
    *count = f.count;
    return RA_OK;
}

/* The prompt as token ids (malloc'd, room for the new tokens after it). */
static ra_status read_prompt(const gen_args *a, const ra_config *cfg, int32_t **out, int64_t *count)
{
    int32_t *ids = NULL;
    int64_t n = 0;
    if (a->prompt_tokens) {
        const char *t = a->prompt_tokens;
        if (is_id_list(t, strlen(t))) /* a list; a file name of digits only is given as ./NAME */
            RA_TRY(parse_ids(t, strlen(t), "--prompt-tokens", cfg->vocab, cfg->seq_len, &ids, &n));
        else
            RA_TRY(read_token_prompt(a, cfg, &ids, &n));
        if (n == 0) {
            free(ids);
            return RA_FAIL(RA_ERR_ARG, "--prompt-tokens %s: no token ids", t);
        }
    } else {
        char *text = NULL;
        size_t len;
        if (a->prompt_file) {
            RA_TRY(ra_file_read_all(a->prompt_file, "--prompt-file", PROMPT_MAX_BYTES, &text, &len));
            if (len == 0) {
                free(text);
                return RA_FAIL(RA_ERR_ARG, "--prompt-file %s is empty", a->prompt_file);
            }
        } else {
            len = strlen(a->prompt);
            if (len > PROMPT_MAX_BYTES)
                return RA_FAIL(RA_ERR_ARG, "--prompt: %zu bytes is over the prompt limit of %zu bytes", len,
                               PROMPT_MAX_BYTES);
        }
        const char *chars = a->prompt_file ? text : a->prompt;
        ids = malloc(sizeof(int32_t) * (len ? len : 1));
        if (!ids) {
            free(text);
            return RA_FAIL(RA_ERR_NOMEM, "generate: out of memory for the prompt");
        }
        for (size_t i = 0; i < len; i++) ids[i] = (unsigned char)chars[i];
        free(text);
        n = (int64_t)len;
        if (n > cfg->seq_len) {
            free(ids);
            return RA_FAIL(RA_ERR_ARG, "the prompt of %lld bytes is longer than the model's data.seq_len of %d"
                           SEQ_LEN_HINT, (long long)n, cfg->seq_len, (long long)n);
        }
        for (int64_t i = 0; i < n; i++)
            if (ids[i] >= cfg->vocab) {
                int32_t b = ids[i];
                free(ids);
                return RA_FAIL(RA_ERR_ARG, "prompt byte %d at offset %lld is outside the model's vocabulary of %d",
                               b, (long long)i, cfg->vocab);
            }
    }
    int32_t *all = realloc(ids, sizeof(int32_t) * ((size_t)n + (size_t)a->tokens + 1));
    if (!all) {
        free(ids);
        return RA_FAIL(RA_ERR_NOMEM, "generate: out of memory for the prompt and %d new tokens", a->tokens);
    }
    *out = all;
    *count = n;
    return RA_OK;
}

/* ---- decoding ------------------------------------------------------------------- */

/* A stop signal read between the layers of the prompt's forward: a long
 * prompt's one forward was the span a first Ctrl-C could not end. */
typedef struct {
    const ra_cli *c;
    int layers, tokens;
} prefill_stop;
static ra_status stop_between_layers(void *ctx, int layer)
{
    const prefill_stop *p = ctx;
    char at[96];
    snprintf(at, sizeof at, "during the prompt, before layer %d of %d (0 of %d tokens)", layer + 1, p->layers,
             p->tokens);
    return ra_cli_stopped(p->c, at);
}

/* Fill the decoder with the prompt: one ring forward when every rank gets a
 * token (the model's seq_len is the prompt's length), else token by token. */
static ra_status prefill(const ra_cli *c, ra_session *s, ra_decoder *d, const int32_t *prompt, int64_t Lp, int tokens)
{
    if (Lp < c->size) {
        for (int64_t i = 0; i < Lp; i++) RA_TRY(ra_agree(c->comm, ra_decoder_step(d, prompt[i])));
        return RA_OK;
    }
    const int64_t Lr = ra_model_local_len(s->model);
    const int32_t *pos = ra_model_positions(s->model);
    for (int64_t i = 0; i < Lr; i++) {
        s->tok[i] = prompt[pos[i]];
        s->tgt[i] = -1;
    }
    ra_batch_stats bs;
    prefill_stop stop = { c, s->cfg.layers, tokens };
    ra_model_set_layer_check(s->model, stop_between_layers, &stop);
    const ra_status st = ra_model_step(s->model, s->tok, s->tgt, 0, 0.0f, 0, &bs);
    ra_model_set_layer_check(s->model, NULL, NULL);
    RA_TRY(ra_agree(c->comm, st));
    return ra_decoder_prefill(d, s->model);
}

/* Rank 0's standard output as the tokens come (no --out): the prompt, then
 * each token once sampled, flushed, so a long run shows its text and one
 * ended early keeps what it printed. A failed write sticks (st) and stops
 * every rank at the next token. */
typedef struct {
    int on, ids;
    int64_t n;     /* tokens printed */
    ra_status st;
} stream;

/* what was printed, flushed; a failure sticks */
static ra_status stream_flush(stream *o)
{
    if (fflush(stdout) != 0 || ferror(stdout))
        o->st = RA_FAIL(RA_ERR_IO, "generate: writing the %s to standard output failed: %s", o->ids ? "ids" : "text",
                        strerror(errno));
    return o->st;
}

static ra_status stream_put(stream *o, const int32_t *tok, int64_t n)
{
    if (!o->on || o->st != RA_OK) return o->st;
    for (int64_t i = 0; i < n; i++, o->n++)
        if (o->ids) printf(o->n ? " %d" : "%d", (int)tok[i]);
        else putchar((unsigned char)tok[i]);
    return stream_flush(o);
}

/* the newline that ends the output */
static ra_status stream_end(stream *o)
{
    if (!o->on || o->st != RA_OK) return o->st;
    putchar('\n'); /* a failure sets the error flag stream_flush reads */
    return stream_flush(o);
}

/* The prompt, then a->tokens sampled into out; *done counts them, so a run
 * a stop signal ends (ra_cli_stopped, read between the prompt's layers,
 * after the prefill and after each token) keeps what it sampled. */
static ra_status run(const ra_cli *c, const gen_args *a, const char *path, const ra_config *cfg,
                     const int32_t *prompt, int64_t Lp, ra_session *s, ra_decoder **d, int32_t *out, stream *o,
                     int *done)
{
    ra_config pcfg = *cfg; /* the model runs the prompt once: its length, one sequence */
    pcfg.seq_len = Lp >= c->size ? (int)Lp : c->size;
    snprintf(pcfg.source, sizeof pcfg.source, "%s", ra_source_words[RA_SOURCE_RECALL]); /* the prompt is the data */
    pcfg.source_id = RA_SOURCE_RECALL;
    pcfg.dp = 1; /* one sequence: one ring of every rank */
    RA_TRY(ra_arg_cmd("generate", ra_session_open(c, s, &pcfg, 1, 0, NULL)));
    RA_TRY(ra_arg_cmd("generate", ra_session_load(c, s, path, 0, NULL))); /* named, as the options' errors */
    char who[RA_PATH_MAX + 32]; /* its refusals are the checkpoint's model's (a Combiner layer) */
    snprintf(who, sizeof who, "generate: --checkpoint %s", a->ckpt);
    RA_TRY(ra_agree(c->comm, ra_arg_cmd(who, ra_decoder_create(d, cfg, ra_model_params(s->model),
                                                               ra_model_layout(s->model), c->comm, Lp + a->tokens))));
    const int64_t tp = RA_TRACE_T0();
    const ra_status shown = c->rank == 0 ? stream_put(o, prompt, Lp) : RA_OK;
    RA_TRY(prefill(c, s, *d, prompt, Lp, a->tokens));
    RA_TRY(ra_agree(c->comm, shown));
    RA_TRACE_END1("decode", "prefill", tp, "tokens", Lp);
    char at[64];
    snprintf(at, sizeof at, "after the prompt, 0 of %d tokens", a->tokens);
    RA_TRY(ra_cli_stopped(c, at)); /* a signal during the prefill's last layer or the decoder's fill */
    for (int i = 0; i < a->tokens; i++) {
        out[i] = sample(ra_decoder_logits(*d), cfg->vocab, a->temp, a->topk, (uint64_t)a->seed, (uint64_t)i);
        *done = i + 1;
        const ra_status w = c->rank == 0 ? stream_put(o, out + i, 1) : RA_OK;
        const int64_t ts = RA_TRACE_T0();
        /* every rank steps (the step is collective), then all stop on rank 0's failed write */
        const ra_status ds = i + 1 < a->tokens ? ra_decoder_step(*d, out[i]) : RA_OK;
        snprintf(at, sizeof at, "after %d of %d tokens", i + 1, a->tokens);
        RA_TRY(ra_agree(c->comm, w != RA_OK ? w : ds));
        RA_TRY(ra_cli_stopped(c, at));
        RA_TRACE_END1("decode", "decode token", ts, "position", Lp + i);
    }
    return RA_OK;
}

/* Rank 0 writes prompt + continuation - bytes (text), or the ids on one
 * line, space separated - and a newline to --out atomically (standard
 * output streams them: stream); a failed write (a full disk) is an error,
 * not a silent truncation. */
static ra_status emit(const char *file, int ids, const int32_t *tok, int64_t n)
{
    const size_t cap = ids ? (size_t)n * 11 + 2 : (size_t)n + 2;
    char *buf = malloc(cap);
    if (!buf) return RA_FAIL(RA_ERR_NOMEM, "generate: out of memory for the output");
    size_t len = 0;
    for (int64_t i = 0; i < n; i++) {
        if (ids) len += (size_t)snprintf(buf + len, cap - len, i ? " %d" : "%d", (int)tok[i]);
        else buf[len++] = (char)tok[i];
    }
    buf[len++] = '\n';
    ra_status st = ra_write_file_atomic(file, buf, len);
    free(buf);
    return st;
}

/* The options that change what is generated, and the prompt each rank
 * read, against rank 0's: every rank samples each token itself, so a rank
 * given another --seed or prompt (an MPMD launch; a prompt file replaced
 * while the ranks read it) stepped the model with other tokens than the
 * rest. Collective. */
static ra_status same_options(const ra_cli *c, const gen_args *a, const int32_t *prompt, int64_t Lp)
{
    char text[256];
    snprintf(text, sizeof text,
             "--tokens = %d\n--temperature = %.9g\n--top-k = %d\n--seed = %d\nprompt = %lld tokens of hash %016llx\n",
             a->tokens, (double)a->temp, a->topk, a->seed, (long long)Lp,
             (unsigned long long)ra_hash64(prompt, sizeof(int32_t) * (size_t)Lp));
    return ra_same_options(c, "generate", text);
}

/* --out could not be written (w, its cause in ra_last_error): the prompt
 * and the n - Lp tokens sampled go to standard output instead, and the
 * error says so, after what when given (a stop's message). Rank 0. */
static ra_status out_failed(const gen_args *a, ra_status w, const char *what, int ids, const int32_t *tok,
                            int64_t n)
{
    char cause[RA_ERROR_MAX]; /* ra_last_error is the buffer RA_FAIL writes: copied first */
    snprintf(cause, sizeof cause, "%s", ra_last_error());
    stream o2 = { .on = 1, .ids = ids };
    const ra_status p = stream_put(&o2, tok, n) == RA_OK ? stream_end(&o2) : o2.st;
    return RA_FAIL(w, "%s%s--out %s was not written (%s)%s", what ? what : "generate: ", what ? "; " : "", a->out,
                   cause, p == RA_OK ? ": standard output has the prompt and the tokens sampled instead" : "");
}

/* A stop signal ended the run after done tokens (rank 0): keep them - --out
 * written with the prompt and those tokens (atomically, as a whole run's),
 * or standard output's line ended - and add where they are to the stop's
 * message. */
static ra_status keep_stopped(const gen_args *a, stream *o, int ids, const int32_t *prompt, int64_t Lp, int done)
{
    char why[RA_ERROR_MAX];
    snprintf(why, sizeof why, "%s", ra_last_error());
    if (!a->out) {
        if (stream_end(o) != RA_OK) return o->st;
        return RA_FAIL(RA_ERR_IO, "%s (standard output has the prompt and the %d tokens sampled)", why, done);
    }
    const ra_status w = emit(a->out, ids, prompt, Lp + done);
    if (w == RA_OK) return RA_FAIL(RA_ERR_IO, "%s; --out %s holds the prompt and the %d tokens sampled", why, a->out, done);
    return out_failed(a, w, why, ids, prompt, Lp + done); /* not lost: on standard output */
}

static ra_status generate(ra_cli *c, const gen_args *a);

ra_status ra_cmd_generate(ra_cli *c, int argc, char **argv)
{
    gen_args a;
    int want_help = 0;
    RA_TRY(ra_agree(c->comm, ra_arg_cmd("generate", parse(argc, argv, &a, &want_help))));
    if (want_help) {
        ra_say(c, "%s\n%s", help, ra_session_ckpt_help);
        return RA_OK;
    }
    RA_TRY(ra_agree(c->comm, c->rank == 0 ? ra_arg_cmd("generate", check_out(&a)) : RA_OK));
    RA_TRY(ra_cli_trace_begin(c, a.trace, "generate", argc, argv));
    ra_cli_catch_stops("generate"); /* a stop signal ends at the next token: what was sampled is kept */
    return ra_cli_trace_end(c, generate(c, &a));
}

static ra_status generate(ra_cli *c, const gen_args *ap)
{
    gen_args a = *ap;
    char path[RA_PATH_MAX + 32];
    ra_ckpt_resolve(path, sizeof path, a.ckpt);
    ra_config cfg;
    a.s.no_data = 1; /* a recall model's task length does not bound --set data.seq_len */
    RA_TRY(ra_arg_cmd("generate", ra_session_config(c, &a.s, path, &cfg))); /* --set's errors name the command */
    ra_set_threads(c, a.s.threads ? a.s.threads : cfg.threads, a.s.threads ? "--threads" : "run.threads");
    /* byte vocabularies print text; larger ones print ids */
    const int ids = a.format == OUT_IDS || (a.format == OUT_AUTO && cfg.vocab > 256);
    ra_status st = RA_OK;
    if (!ids && cfg.vocab > 256)
        st = RA_FAIL(RA_ERR_ARG, "generate: --output-format text prints one byte per token, but model.vocab = %d "
                                 "is not a byte vocabulary (at most 256): use --output-format ids", cfg.vocab);
    int32_t *prompt = NULL;
    int64_t Lp = 0;
    if (st == RA_OK) st = ra_arg_cmd("generate", read_prompt(&a, &cfg, &prompt, &Lp));
    st = ra_agree(c->comm, st);
    if (st == RA_OK) st = same_options(c, &a, prompt, Lp);
    if (st != RA_OK) {
        free(prompt);
        return st;
    }
    if (c->rank == 0 && Lp + a.tokens > cfg.seq_len) /* runs, as longer contexts may, but not unsaid */
        fprintf(stderr, "ringattn: warning: generate: the prompt's %lld tokens and --tokens %d reach position "
                "%lld, past the model's data.seq_len of %d: it never trained on positions beyond it, and text "
                "there may degrade\n", (long long)Lp, a.tokens, (long long)(Lp + a.tokens), cfg.seq_len);
    int32_t *out = prompt + Lp;
    ra_session s = { 0 };
    ra_decoder *d = NULL;
    stream o = { .on = c->rank == 0 && !a.out, .ids = ids };
    int done = 0;
    st = run(c, &a, path, &cfg, prompt, Lp, &s, &d, out, &o, &done);
    if (st != RA_OK && ra_cli_stop_signal() && c->rank == 0) st = keep_stopped(&a, &o, ids, prompt, Lp, done);
    if (st == RA_OK && a.out) {
        ra_status w = c->rank == 0 ? emit(a.out, ids, prompt, Lp + a.tokens) : RA_OK;
        if (w != RA_OK) w = out_failed(&a, w, NULL, ids, prompt, Lp + a.tokens); /* not lost: on standard output */
        st = ra_agree(c->comm, w);
    }
    if (st == RA_OK && !a.out) st = ra_agree(c->comm, c->rank == 0 ? stream_end(&o) : RA_OK);
    ra_decoder_destroy(d);
    ra_session_close(&s);
    free(prompt);
    return st;
}
