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

#include "ringattn/decode.h"
#include "ringattn/dist.h"
#include "ringattn/fileio.h"
#include "ringattn/mem.h"
#include "ringattn/rng.h"
#include "session.h"

/* A prompt is at most this long (and at most the model's data.seq_len). */
#define PROMPT_MAX_BYTES ((size_t)16 << 20)

static const char *help =
    "usage: mpirun -n P ringattn generate --checkpoint CKPT|DIR (--prompt TEXT | --prompt-file F)\n"
    "                                     [--tokens 64] [--temperature 1.0] [--top-k 0] [--seed 1]\n"
    "                                     [--out FILE]\n"
    "\n"
    "Samples --tokens bytes after the prompt and prints prompt + continuation on\n"
    "rank 0 (--out FILE: writes them to FILE instead, atomically; checked before\n"
    "any work, and a failed write is an error even under mpirun). --temperature 0 is greedy; --top-k K samples among the K most likely\n"
    "bytes (0: all). The KV cache is sharded: rank r keeps the keys and values of\n"
    "its prompt tokens and of new positions t with t mod P = r. The prompt is at\n"
    "most the model's data.seq_len bytes (--prompt-file: a regular file); every\n"
    "layer must use the full head.\n";

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

typedef struct {
    ra_session_args s;
    const char *ckpt, *prompt, *prompt_file, *out;
    int tokens, topk, seed;
    float temp;
} gen_args;

static ra_status parse(int argc, char **argv, gen_args *a, int *want_help)
{
    static const struct option opts[] = {
        { "checkpoint", required_argument, 0, 'k' }, { "prompt", required_argument, 0, 'p' },
        { "prompt-file", required_argument, 0, 'f' }, { "tokens", required_argument, 0, 'n' },
        { "temperature", required_argument, 0, 't' }, { "top-k", required_argument, 0, 'K' },
        { "seed", required_argument, 0, 's' },       { "set", required_argument, 0, 'S' },
        { "threads", required_argument, 0, 'T' },    { "help", no_argument, 0, 'h' },
        { "out", required_argument, 0, 'o' },        { 0, 0, 0, 0 },
    };
    *a = (gen_args){ .tokens = 64, .temp = 1.0f, .seed = 1 };
    ra_status st = RA_OK;
    int o;
    opterr = 0;
    optind = 1;
    while ((o = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        if (ra_session_opt(&a->s, o, optarg, &st)) {
            RA_TRY(st);
            continue;
        }
        switch (o) {
        case 'k': a->ckpt = optarg; break;
        case 'p': a->prompt = optarg; break;
        case 'f': a->prompt_file = optarg; break;
        case 'o': a->out = optarg; break;
        case 'n': RA_TRY(ra_arg_int("--tokens", optarg, 0, 1 << 24, &a->tokens)); break;
        case 't':
            RA_TRY(ra_arg_float("--temperature", optarg, &a->temp));
            if (!(a->temp >= 0) || isinf(a->temp))
                return RA_FAIL(RA_ERR_ARG, "--temperature: must be finite and >= 0, got %s", optarg);
            break;
        case 'K': RA_TRY(ra_arg_int("--top-k", optarg, 0, 1 << 20, &a->topk)); break;
        case 's': RA_TRY(ra_arg_int("--seed", optarg, 0, 1 << 30, &a->seed)); break;
        case 'h': *want_help = 1; return RA_OK;
        default: return ra_arg_unknown("generate", o, argv[optind - 1]);
        }
    }
    if (!a->ckpt) return RA_FAIL(RA_ERR_ARG, "generate: --checkpoint is required");
    if (!!a->prompt == !!a->prompt_file)
        return RA_FAIL(RA_ERR_ARG, "generate: give exactly one of --prompt and --prompt-file");
    if (a->prompt && !a->prompt[0]) return RA_FAIL(RA_ERR_ARG, "generate: --prompt is empty");
    return RA_OK;
}

/* --out before any work: a place a file can be created, and not an input. */
static ra_status check_out(const gen_args *a)
{
    if (!a->out) return RA_OK;
    RA_TRY(ra_check_output_path(a->out, "--out"));
    char path[RA_PATH_MAX + 32];
    ra_ckpt_resolve(path, sizeof path, a->ckpt);
    if (ra_same_file(a->out, path) || ra_same_file(a->out, a->ckpt))
        return RA_FAIL(RA_ERR_ARG, "--out %s is the checkpoint %s: choose another file", a->out, a->ckpt);
    if (a->prompt_file && ra_same_file(a->out, a->prompt_file))
        return RA_FAIL(RA_ERR_ARG, "--out %s is the --prompt-file: choose another file", a->out);
    return RA_OK;
}

/* Fill the decoder with the prompt: one ring forward when every rank gets a
 * token (the model's seq_len is the prompt's length), else token by token. */
static ra_status prefill(const ra_cli *c, ra_session *s, ra_decoder *d, const int32_t *prompt, int64_t Lp)
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
    RA_TRY(ra_agree(c->comm, ra_model_step(s->model, s->tok, s->tgt, 0, 0.0f, 0, &bs)));
    return ra_decoder_prefill(d, s->model);
}

static ra_status run(const ra_cli *c, const gen_args *a, const char *path, const int32_t *prompt, int64_t Lp,
                     ra_session *s, ra_decoder **d, int32_t *out)
{
    ra_config cfg;
    RA_TRY(ra_session_config(c, &a->s, path, &cfg));
    ra_set_threads(c, a->s.threads ? a->s.threads : cfg.threads, a->s.threads ? "--threads" : "run.threads");
    if (Lp > cfg.seq_len)
        return ra_agree(c->comm, RA_FAIL(RA_ERR_ARG, "the prompt of %lld bytes is longer than the model's "
                                                     "data.seq_len of %d",
                                         (long long)Lp, cfg.seq_len));
    for (int64_t i = 0; i < Lp; i++)
        if (prompt[i] >= cfg.vocab)
            return ra_agree(c->comm, RA_FAIL(RA_ERR_ARG, "prompt byte %d at offset %lld is outside the model's vocabulary of %d",
                                             prompt[i], (long long)i, cfg.vocab));
    ra_config pcfg = cfg; /* the model runs the prompt once: its length, one sequence */
    pcfg.seq_len = Lp >= c->size ? (int)Lp : c->size;
    snprintf(pcfg.source, sizeof pcfg.source, "%s", ra_source_words[RA_SOURCE_RECALL]); /* the prompt is the data */
    pcfg.source_id = RA_SOURCE_RECALL;
    RA_TRY(ra_session_open(c, s, &pcfg, 1, 0));
    RA_TRY(ra_session_load(c, s, path, 0, NULL));
    RA_TRY(ra_agree(c->comm, ra_decoder_create(d, &cfg, ra_model_params(s->model), ra_model_layout(s->model),
                                               c->comm, Lp + a->tokens)));
    RA_TRY(prefill(c, s, *d, prompt, Lp));
    for (int i = 0; i < a->tokens; i++) {
        out[i] = sample(ra_decoder_logits(*d), cfg.vocab, a->temp, a->topk, (uint64_t)a->seed, (uint64_t)i);
        if (i + 1 < a->tokens) RA_TRY(ra_agree(c->comm, ra_decoder_step(*d, out[i])));
    }
    return RA_OK;
}

/* Rank 0 prints prompt + continuation, or writes them to --out atomically;
 * a failed write (a full disk, a closed pipe) is an error, not a silent
 * truncation. */
static ra_status emit_text(const char *file, const char *chars, size_t len, const int32_t *out, int n)
{
    char *buf = malloc(len + (size_t)n + 1);
    if (!buf) return RA_FAIL(RA_ERR_NOMEM, "generate: out of memory for the text");
    memcpy(buf, chars, len);
    for (int i = 0; i < n; i++) buf[len + (size_t)i] = (char)out[i];
    buf[len + (size_t)n] = '\n';
    ra_status st = RA_OK;
    if (file) {
        st = ra_write_file_atomic(file, buf, len + (size_t)n + 1);
    } else if (fwrite(buf, 1, len + (size_t)n + 1, stdout) != len + (size_t)n + 1 || fflush(stdout) != 0 ||
               ferror(stdout)) {
        st = RA_FAIL(RA_ERR_IO, "generate: writing the text to standard output failed: %s", strerror(errno));
    }
    free(buf);
    return st;
}

ra_status ra_cmd_generate(ra_cli *c, int argc, char **argv)
{
    gen_args a;
    int want_help = 0;
    RA_TRY(ra_agree(c->comm, parse(argc, argv, &a, &want_help)));
    if (want_help) {
        ra_say(c, "%s\n%s", help, ra_session_help);
        return RA_OK;
    }
    RA_TRY(ra_agree(c->comm, c->rank == 0 ? check_out(&a) : RA_OK));
    char *text = NULL;
    size_t len = 0;
    ra_status st = RA_OK;
    if (a.prompt_file) {
        st = ra_file_read_all(a.prompt_file, "--prompt-file", PROMPT_MAX_BYTES, &text, &len);
        if (st == RA_OK && len == 0) st = RA_FAIL(RA_ERR_ARG, "--prompt-file %s is empty", a.prompt_file);
    } else {
        len = strlen(a.prompt);
        if (len > PROMPT_MAX_BYTES)
            st = RA_FAIL(RA_ERR_ARG, "--prompt: %zu bytes is over the prompt limit of %zu bytes", len,
                         PROMPT_MAX_BYTES);
    }
    const char *chars = a.prompt_file ? text : a.prompt;
    int32_t *prompt = NULL, *out = NULL;
    if (st == RA_OK) st = ra_alloc(&prompt, sizeof(int32_t) * (len + (size_t)a.tokens + 1), "the prompt");
    if (st != RA_OK) free(text);
    RA_TRY(ra_agree(c->comm, st));
    for (size_t i = 0; i < len; i++) prompt[i] = (unsigned char)chars[i];
    out = prompt + len;

    char path[RA_PATH_MAX + 32];
    ra_ckpt_resolve(path, sizeof path, a.ckpt);
    ra_session s = { 0 };
    ra_decoder *d = NULL;
    st = run(c, &a, path, prompt, (int64_t)len, &s, &d, out);
    if (st == RA_OK) st = ra_agree(c->comm, c->rank == 0 ? emit_text(a.out, chars, len, out, a.tokens) : RA_OK);
    ra_decoder_destroy(d);
    ra_session_close(&s);
    free(prompt);
    free(text);
    return st;
}
