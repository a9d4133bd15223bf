/* session.c - config, model, data and evaluation for train, eval, generate. */
#include "session.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "ringattn/dist.h"
#include "ringattn/fileio.h"
#include "ringattn/mem.h"
#include "ringattn/reduce_scatter.h"
#include "ringattn/threads.h"
#include "ringattn/trace.h"

#define SET_AND_THREADS                                                                                     \
    "  --set SEC.KEY=VAL   override one key, e.g. --set train.steps=20 (repeatable)\n"                          \
    "  --threads N         threads per rank (default: OMP_NUM_THREADS, SLURM_CPUS_PER_TASK, else the rank's cores)\n"
const char *ra_session_help =
    "configuration:\n"
    "  --config FILE       INI file (configs/*.ini); default: the built-in recall model\n" SET_AND_THREADS;
const char *ra_session_ckpt_help = "configuration (the checkpoint's; --set changes a key):\n" SET_AND_THREADS;

int ra_session_opt(ra_session_args *a, int opt, const char *val, ra_status *st)
{
    switch (opt) {
    case 'C': a->config = val; return 1;
    case 'S':
        if (a->nsets == RA_MAX_SETS) *st = RA_FAIL(RA_ERR_ARG, "--set: at most %d overrides", RA_MAX_SETS);
        else a->sets[a->nsets++] = val;
        return 1;
    case 'T': *st = ra_arg_int("--threads", val, 1, 4096, &a->threads); return 1;
    }
    return 0;
}

int ra_session_sets_key(const ra_session_args *a, const char *key)
{
    const size_t n = strlen(key);
    for (int i = 0; i < a->nsets; i++) {
        const char *t = a->sets[i];
        while (*t == ' ' || *t == '\t') t++; /* as ra_config_set trims the key */
        if (strncmp(t, key, n) != 0) continue;
        for (t += n; *t == ' ' || *t == '\t'; t++) {}
        if (*t == '=') return 1;
    }
    return 0;
}

void ra_ckpt_resolve(char *out, size_t n, const char *path)
{
    struct stat st;
    if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) ra_join_path(out, n, path, "last.ckpt");
    else snprintf(out, n, "%s", path);
}

/* A key of the checkpoint's model that the effective config changes. */
static ra_status model_changed(const char *ckpt, const char *key, const char *was, const char *now)
{
    return RA_FAIL(RA_ERR_ARG, "%s: --set changes %s of the checkpoint's model (%s there, %s now): a checkpoint "
                   "loads only into the model it was written for; drop that --set (or train a new model without "
                   "a checkpoint)", ckpt, key, was, now);
}

static ra_status same_int(const char *ckpt, const char *key, long was, long now)
{
    char a[32], b[32];
    if (was == now) return RA_OK;
    snprintf(a, sizeof a, "%ld", was), snprintf(b, sizeof b, "%ld", now);
    return model_changed(ckpt, key, a, b);
}

static ra_status same_flt(const char *ckpt, const char *key, double was, double now)
{
    char a[32], b[32];
    if (was == now) return RA_OK;
    snprintf(a, sizeof a, "%g", was), snprintf(b, sizeof b, "%g", now);
    return model_changed(ckpt, key, a, b);
}

static ra_status same_word(const char *ckpt, const char *key, const char *const *words, int was, int now)
{
    return was == now ? RA_OK : model_changed(ckpt, key, words[was], words[now]);
}

/* "layer.N.key" into buf. */
static const char *layer_key(char *buf, size_t cap, int l, const char *key)
{
    snprintf(buf, cap, "layer.%d.%s", l, key);
    return buf;
}

/* The keys that define the function the checkpoint's tensors compute: the
 * shapes, and what the layers do with them. Run, train and data keys, the
 * FFN block size (how, not what, is computed) and the init keys (used only
 * by a fresh run) may change. */
static ra_status same_model(const char *ckpt, const ra_config *ck, const ra_config *now)
{
    RA_TRY(same_int(ckpt, "model.vocab", ck->vocab, now->vocab));
    RA_TRY(same_int(ckpt, "model.dim", ck->dim, now->dim));
    RA_TRY(same_int(ckpt, "model.layers", ck->layers, now->layers));
    RA_TRY(same_int(ckpt, "model.heads", ck->heads, now->heads));
    RA_TRY(same_int(ckpt, "model.kv_heads", ck->kv_heads, now->kv_heads));
    RA_TRY(same_int(ckpt, "model.head_dim", ck->head_dim, now->head_dim));
    RA_TRY(same_word(ckpt, "model.ffn", ra_ffn_words, ck->ffn_id, now->ffn_id));
    RA_TRY(same_int(ckpt, "model.ffn_dim", ck->ffn_dim, now->ffn_dim));
    RA_TRY(same_int(ckpt, "model.tie_embeddings", ck->tie_embeddings, now->tie_embeddings));
    RA_TRY(same_flt(ckpt, "model.rope_theta", ck->rope_theta, now->rope_theta));
    RA_TRY(same_flt(ckpt, "model.norm_eps", ck->norm_eps, now->norm_eps));
    char k[64];
    for (int l = 0; l < ck->layers; l++) {
        const ra_layer_config *a = &ck->layer[l], *b = &now->layer[l];
        RA_TRY(same_word(ckpt, layer_key(k, sizeof k, l, "head"), ra_head_words, a->head_id, b->head_id));
        RA_TRY(same_int(ckpt, layer_key(k, sizeof k, l, "span"), a->span, b->span));
        RA_TRY(same_int(ckpt, layer_key(k, sizeof k, l, "row"), a->row, b->row));
        RA_TRY(same_word(ckpt, layer_key(k, sizeof k, l, "precond"), ra_precond_words, a->precond_id, b->precond_id));
        RA_TRY(same_word(ckpt, layer_key(k, sizeof k, l, "precond_grad"), ra_precond_grad_words, a->precond_grad_id,
                         b->precond_grad_id));
        RA_TRY(same_flt(ckpt, layer_key(k, sizeof k, l, "precond_eps"), a->precond_eps, b->precond_eps));
        RA_TRY(same_flt(ckpt, layer_key(k, sizeof k, l, "precond_lambda"), a->precond_lambda, b->precond_lambda));
    }
    return RA_OK;
}

/* The config with the --set values failed its checks (st): when one of
 * them changes the checkpoint's model, that is the refusal to give (a
 * --set model.vocab=100 was refused for the recall task's vocabulary, not
 * for changing the model). The --set values are applied to a copy of the
 * finished stored config, so derived keys keep the checkpoint's values. */
static ra_status model_set_first(const ra_session_args *a, const char *ckpt, const ra_config *stored, ra_status st)
{
    char why[RA_ERROR_MAX];
    snprintf(why, sizeof why, "%s", ra_last_error());
    ra_config *probe = malloc(sizeof *probe);
    if (!probe) return RA_FAIL(st, "%s", why);
    *probe = *stored;
    for (int i = 0; i < a->nsets; i++) (void)ra_config_set(probe, a->sets[i], "--set");
    const ra_status ms = same_model(ckpt, stored, probe);
    free(probe);
    return ms != RA_OK ? ms : RA_FAIL(st, "%s", why);
}

/* --data FILE: its token ids when the model reads token ids, a data.dtype
 * is given (e.g. an imported model: --set data.dtype=uint16) or FILE is a
 * .npy or an llm.c shard (by its magic); else its bytes (a .npy read as
 * bytes scored its header), and its bytes whatever its magic when the user
 * said so (as_bytes: --set data.source=file). All of FILE, nothing held out
 * (data.h). */
static void use_data(ra_config *cfg, const char *data, int as_bytes)
{
    if (!as_bytes && cfg->source_id != RA_SOURCE_TOKENS &&
        (cfg->dtype_id != RA_TOKEN_AUTO || ra_token_file_has_magic(data))) {
        snprintf(cfg->source, sizeof cfg->source, "%s", ra_source_words[RA_SOURCE_TOKENS]);
        cfg->source_id = RA_SOURCE_TOKENS;
    } else if (cfg->source_id != RA_SOURCE_TOKENS) {
        snprintf(cfg->source, sizeof cfg->source, "%s", ra_source_words[RA_SOURCE_FILE]);
        cfg->source_id = RA_SOURCE_FILE;
        snprintf(cfg->dtype, sizeof cfg->dtype, "%s", ra_token_dtype_words[RA_TOKEN_AUTO]);
        cfg->dtype_id = RA_TOKEN_AUTO;
    }
    snprintf(cfg->path, sizeof cfg->path, "%s", data);
    cfg->val_path[0] = '\0';
}

/* Finish the config with --data applied first, so that the checks see the
 * data that is read (not a recall model's task, nor a data.source set
 * without a path). The check asks for a held-out part, as training needs
 * one: any passes it, and none is kept after it (data.val_fraction = 0). */
static ra_status finish(ra_config *cfg, const ra_session_args *a, int as_bytes)
{
    const char *data = a->data;
    if (a->no_data) return ra_config_finish_model(cfg); /* generate: data.seq_len is no task's length */
    if (!data) return ra_config_finish(cfg);
    use_data(cfg, data, as_bytes);
    if (!(cfg->val_fraction > 0)) cfg->val_fraction = 0.5f;
    RA_TRY(ra_config_finish(cfg));
    cfg->val_fraction = 0;
    return RA_OK;
}

/* --set data.source=file given: FILE's bytes, not its token ids */
static int bytes_asked(const ra_session_args *a, const ra_config *cfg)
{
    return cfg->source_id == RA_SOURCE_FILE && ra_session_sets_key(a, "data.source");
}

/* eval --data FILE is the data, all of it: a --set naming other data was
 * dropped unseen (--set data.source=recall scored FILE, exit 0). */
static ra_status data_not_contradicted(const ra_session_args *a, const ra_config *cfg)
{
    if (!a->data) return RA_OK;
    if (ra_session_sets_key(a, "data.source") && cfg->source_id == RA_SOURCE_RECALL)
        return RA_FAIL(RA_ERR_ARG, "--set data.source=recall contradicts --data %s: the recall task reads no file; "
                       "drop one of them", a->data);
    if (bytes_asked(a, cfg) && ra_session_sets_key(a, "data.dtype") &&
        cfg->dtype_id != RA_TOKEN_AUTO) /* it was dropped unseen */
        return RA_FAIL(RA_ERR_ARG, "--set data.dtype=%s contradicts --set data.source=file: --data %s is read as "
                       "bytes; drop one of them", cfg->dtype, a->data);
    static const char *const keys[] = { "data.path", "data.val_path" };
    for (int i = 0; i < 2; i++)
        if (ra_session_sets_key(a, keys[i]))
            return RA_FAIL(RA_ERR_ARG, "--set %s contradicts --data %s: --data names the file, all of it "
                           "evaluated; drop the --set", keys[i], a->data);
    return RA_OK;
}

/* --set data.source=file reads bytes: a token checkpoint's data.dtype (the
 * element type of its files) is not the user's, and made the file tokens
 * or an error, unless data.dtype=auto was given too. */
static void drop_checkpoint_dtype(const ra_session_args *a, ra_config *cfg)
{
    if (!bytes_asked(a, cfg) || ra_session_sets_key(a, "data.dtype")) return;
    snprintf(cfg->dtype, sizeof cfg->dtype, "%s", ra_token_dtype_words[RA_TOKEN_AUTO]);
    cfg->dtype_id = RA_TOKEN_AUTO;
}

/* eval accumulates no gradients: train.accum only bounds its micro-batch
 * (memory), and --set run.dp=N needs only to split each batch's windows
 * (train.batch: changing it changes what is evaluated) among the N groups.
 * train.accum is refit to the fewest micro-batches, of at most the
 * config's size, that split a group's share (train.batch 12, train.accum 2,
 * run.dp 4: 3 windows a group, one micro-batch of 3 <= 6), so that the
 * training check (batch a multiple of dp x accum) passes. */
static ra_status fit_no_grad(const ra_session_args *a, ra_config *cfg)
{
    if (!a->no_grad || !ra_session_sets_key(a, "run.dp") || cfg->dp <= 1 || cfg->batch % cfg->accum)
        return RA_OK; /* batch % accum: the config check names it */
    if (cfg->batch % cfg->dp)
        return RA_FAIL(RA_ERR_ARG, "run.dp = %d does not divide train.batch = %d: each of the %d groups takes an "
                       "equal share of a batch's windows; give a run.dp that divides %d (train.batch sets which "
                       "windows are evaluated)", cfg->dp, cfg->batch, cfg->dp, cfg->batch);
    const int per = cfg->batch / cfg->dp, micro = cfg->batch / cfg->accum;
    int k = (per + micro - 1) / micro;
    while (per % k) k++;
    cfg->accum = k;
    return RA_OK;
}

/* What a rank read of the checkpoint: its state and stored CRC-64. */
typedef struct {
    ra_ckpt_state state;
    uint64_t sum;
    char metrics[RA_PATH_MAX]; /* its run.metrics as stored, before --set */
    char ckdir[RA_PATH_MAX];   /* its run.checkpoint_dir as stored */
} ckpt_read;

static ra_status build_config(const ra_session_args *a, const char *ckpt, ra_config *cfg, ckpt_read *got)
{
    ra_config_defaults(cfg);
    if (ckpt) {
        if (a->config)
            return RA_FAIL(RA_ERR_ARG, "--config %s cannot be used with the checkpoint %s: the checkpoint holds the "
                           "config; change keys with --set", a->config, ckpt);
        char *text = NULL;
        RA_TRY(ra_ckpt_peek_sum(ckpt, &text, &got->state, &got->sum));
        ra_status st = ra_config_parse(cfg, text, ckpt);
        free(text);
        RA_TRY(st);
    } else if (a->config) {
        RA_TRY(ra_config_load(cfg, a->config));
    }
    if (!ckpt) {
        for (int i = 0; i < a->nsets; i++) RA_TRY(ra_config_set(cfg, a->sets[i], "--set"));
        if (a->grid_ranks > 0) RA_TRY(ra_grid_check(a->grid_ranks, cfg->dp));
        RA_TRY(data_not_contradicted(a, cfg));
        RA_TRY(fit_no_grad(a, cfg));
        return finish(cfg, a, bytes_asked(a, cfg));
    }
    ra_config *stored = malloc(sizeof *stored); /* ra_config is large: not on the stack twice */
    if (!stored) return RA_FAIL(RA_ERR_NOMEM, "out of memory for the checkpoint's config");
    *stored = *cfg;
    snprintf(got->metrics, sizeof got->metrics, "%s", stored->metrics);
    snprintf(got->ckdir, sizeof got->ckdir, "%s", stored->checkpoint_dir);
    ra_status st = ra_config_finish(stored);
    for (int i = 0; st == RA_OK && i < a->nsets; i++) st = ra_config_set(cfg, a->sets[i], "--set");
    if (st == RA_OK && a->grid_ranks > 0) {
        st = ra_grid_check(a->grid_ranks, cfg->dp);
        if (st != RA_OK && !ra_session_sets_key(a, "run.dp")) { /* said where this run.dp comes from */
            char why[RA_ERROR_MAX];
            snprintf(why, sizeof why, "%s", ra_last_error());
            st = RA_FAIL(st, "%s; that run.dp is the checkpoint's, which a resumed run keeps unless --set run.dp "
                         "changes it", why);
        }
    }
    if (st == RA_OK) st = data_not_contradicted(a, cfg);
    if (st == RA_OK) drop_checkpoint_dtype(a, cfg);
    if (st == RA_OK) st = fit_no_grad(a, cfg);
    if (st == RA_OK) st = finish(cfg, a, bytes_asked(a, cfg));
    if (st == RA_OK) st = same_model(ckpt, stored, cfg);
    else st = model_set_first(a, ckpt, stored, st);
    free(stored);
    return st;
}

/* The checkpoint this rank read (step, CRC) against rank 0's: a file
 * replaced while the ranks read it (a running job's last.ckpt), or MPMD
 * ranks given different ones, loaded other weights on some ranks. */
static ra_status same_checkpoint(const ra_cli *c, const char *path, const ra_ckpt_state *state, uint64_t sum)
{
    char text[96];
    snprintf(text, sizeof text, "step = %" PRIu64 "\nCRC-64 = %016" PRIx64 "\n", state->step, sum);
    return ra_same_on_ranks(c, path, "loaded a different checkpoint",
                            "the file changed while the ranks read it, or the ranks were given different "
                            "checkpoints; give every rank the same file, unchanging while the job starts", text);
}

/* The config as the ranks compare it: the canonical text (every key, as
 * used) but run.threads, the rank's own share of its node (as --threads):
 * it sets how fast a rank computes, not what the run computes; its paths
 * resolved (ra_canonical_path). NULL: out of memory. */
static char *compared_text(const ra_config *cfg)
{
    ra_config *t = malloc(sizeof *t); /* ra_config is large: not on the stack twice */
    if (!t) return NULL;
    *t = *cfg;
    t->threads = 0;
    /* a path by another spelling ("./x", a symlinked directory) is the same
     * file; /proc/self/... is compared as given, and its reader or output
     * check refuses it by name */
    char *const paths[] = { t->path, t->val_path, t->checkpoint_dir, t->metrics };
    for (size_t i = 0; i < sizeof paths / sizeof *paths; i++) {
        char real[PATH_MAX];
        if (paths[i][0] && strlen(ra_path_for_ranks(paths[i], real, sizeof real)) < RA_PATH_MAX)
            strcpy(paths[i], real);
    }
    char *text = ra_config_text(t);
    free(t);
    return text;
}

/* The final config (file or checkpoint, --set, --data) against rank 0's. */
static ra_status same_config(const ra_cli *c, const ra_session_args *a, const char *ckpt, const ra_config *cfg)
{
    char *text = compared_text(cfg);
    ra_status made = ra_agree(c->comm, text ? RA_OK : RA_FAIL(RA_ERR_NOMEM, "out of memory for the config's text"));
    if (made != RA_OK) {
        free(text);
        return made;
    }
    char source[RA_PATH_MAX + 32];
    if (a->config) snprintf(source, sizeof source, "--config %s", a->config);
    else if (ckpt) snprintf(source, sizeof source, "the config of %s", ckpt);
    else snprintf(source, sizeof source, "the built-in config");
    const char *why = a->config ? "the file changed while the ranks read it, or the ranks were given different "
                                  "options; give every rank the same options and a file that does not change "
                                  "while the job starts"
                                : "the ranks were given different options (an MPMD launch); give every rank the same";
    ra_status st = ra_same_on_ranks(c, source, "read a different config", why, text);
    free(text);
    return st;
}

/* A rank whose config is built waits for the others under its run.timeout
 * (the checkpoint's, or --set's), not the default: a peer stuck reading the
 * checkpoint (a hung file system) is named after run.timeout. Then every
 * rank must have read the same checkpoint and ended with the same config. */
static ra_status agree_config(const ra_cli *c, ra_status built, const ra_session_args *a, const char *ckpt,
                              const ckpt_read *got, const ra_config *cfg)
{
    if (built == RA_OK) ra_set_peer_timeout(cfg->timeout);
    RA_TRY(ra_agree(c->comm, built));
    if (ckpt) RA_TRY(same_checkpoint(c, ckpt, &got->state, got->sum));
    return same_config(c, a, ckpt, cfg);
}

/* build_config, then run.timeout on the config the command runs with:
 * --set can mend a value a checkpoint stores */
static ra_status build_checked(const ra_session_args *a, const char *ckpt, ra_config *cfg, ckpt_read *got)
{
    if (a->threads && ra_session_sets_key(a, "run.threads")) /* one would win unsaid */
        return RA_FAIL(RA_ERR_ARG, "--threads and --set run.threads both give the thread count; give one");
    RA_TRY(build_config(a, ckpt, cfg, got));
    char from[RA_PATH_MAX + 32] = "";
    if (!ra_session_sets_key(a, "run.timeout") && (ckpt || a->config))
        snprintf(from, sizeof from, "%s %s", ckpt ? "the checkpoint" : "--config", ckpt ? ckpt : a->config);
    return ra_config_check_run(cfg, from[0] ? from : NULL);
}

ra_status ra_session_config(const ra_cli *c, const ra_session_args *a, const char *ckpt,
                            ra_config *cfg)
{
    ckpt_read got = { 0 };
    return agree_config(c, build_checked(a, ckpt, cfg, &got), a, ckpt, &got, cfg);
}

ra_status ra_session_config_state(const ra_cli *c, const ra_session_args *a, const char *ckpt,
                                  ra_config *cfg, ra_ckpt_state *state, char *stored_metrics, char *stored_ckdir)
{
    ckpt_read got = { 0 };
    ra_status st = agree_config(c, build_checked(a, ckpt, cfg, &got), a, ckpt, &got, cfg);
    *state = got.state;
    if (stored_metrics) memcpy(stored_metrics, got.metrics, sizeof got.metrics);
    if (stored_ckdir) memcpy(stored_ckdir, got.ckdir, sizeof got.ckdir);
    return st;
}

/* Shard bounds, the shard's optimizer and summed gradient, and the
 * model's reduction onto the owners. */
static ra_status open_shards(const ra_cli *c, ra_session *s)
{
    const size_t n = ra_model_nparams(s->model);
    const int P = c->size;
    s->sharded = s->cfg.shard_optimizer && P > 1;
    s->lo = 0, s->hi = n;
    if (s->sharded) {
        RA_TRY(ra_alloc(&s->bounds, sizeof(size_t) * (P + 1), "shard bounds"));
        for (int r = 0; r <= P; r++) s->bounds[r] = ra_shard_lo(n, P, r);
        s->lo = s->bounds[c->rank], s->hi = s->bounds[c->rank + 1];
        RA_TRY(ra_parts_fit(s->bounds, P, "the parameter shards")); /* before the first step, not at its end */
        RA_TRY(ra_alloc(&s->gsum, sizeof(float) * (s->hi - s->lo) + 64, "the summed gradient shard"));
    } else {
        s->gsum = ra_model_grads(s->model);
    }
    RA_TRY(ra_adamw_create_range(&s->opt, ra_model_layout(s->model), s->cfg.layers, s->lo, s->hi));
    return ra_model_set_reduction(s->model, c->comm, s->bounds, s->sharded ? s->gsum : NULL);
}

static ra_status open_all(const ra_cli *c, ra_session *s, const ra_config *cfg, int micro,
                          int with_optim, const char *data_what)
{
    s->cfg = *cfg;
    s->micro = micro;
    ra_set_peer_timeout(cfg->timeout);
    RA_TRY(ra_grid_create(c->comm, cfg->dp, &s->grid));
    if (with_optim && c->verbose) RA_TRY(ra_grid_print(&s->grid));
    RA_TRY(ra_blas_claim()); /* before the model: a memory limit then fails by name, never spins in OpenBLAS */
    /* without an optimizer (eval, generate) no gradients: half the memory of the parameters less */
    RA_TRY((with_optim ? ra_model_create : ra_model_create_inference)(&s->model, cfg, micro, s->grid.ring));
    int64_t Lr = ra_model_local_len(s->model);
    if (with_optim) RA_TRY(open_shards(c, s));
    RA_TRY(ra_data_open_as(&s->data, cfg, ra_model_positions(s->model), Lr, data_what ? data_what : "data.path"));
    RA_TRY(ra_alloc(&s->tok, sizeof(int32_t) * 2 * (size_t)micro * (Lr + 1), "token batch"));
    s->tgt = s->tok + (size_t)micro * (Lr + 1);
    ra_model_init(s->model, cfg->seed);
    return RA_OK;
}

ra_status ra_session_open(const ra_cli *c, ra_session *s, const ra_config *cfg, int micro,
                          int with_optim, const char *data_what)
{
    *s = (ra_session){ .grid.ring = MPI_COMM_NULL };
    return ra_agree(c->comm, open_all(c, s, cfg, micro, with_optim, data_what));
}

void ra_session_close(ra_session *s)
{
    ra_model_destroy(s->model);
    ra_adamw_free(&s->opt);
    ra_data_close(s->data);
    free(s->tok);
    if (s->sharded) free(s->gsum);
    free(s->bounds);
    ra_grid_free(&s->grid);
    *s = (ra_session){ .grid.ring = MPI_COMM_NULL };
}

int ra_session_tensors(ra_session *s, ra_ckpt_tensor *t, int with_optim)
{
    uint64_t n = ra_model_nparams(s->model);
    t[0] = (ra_ckpt_tensor){ "params", ra_model_params(s->model), n };
    if (!with_optim) return 1;
    t[1] = (ra_ckpt_tensor){ "adam_m", s->opt.m, n };
    t[2] = (ra_ckpt_tensor){ "adam_v", s->opt.v, n };
    return 3;
}

void ra_session_param_where(const ra_session *s, size_t i, char *buf, size_t n)
{
    const ra_param_layout *p = ra_model_layout(s->model);
    for (int l = 0; l < s->cfg.layers; l++)
        if (i >= p->layer[l].begin && i < p->layer[l].end) {
            snprintf(buf, n, "layer %d (%s)", l, i >= p->layer[l].ffn_norm ? "feed-forward" : "attention");
            return;
        }
    const size_t V = (size_t)s->cfg.vocab, C = (size_t)s->cfg.dim;
    if (i >= p->emb && i < p->emb + V * C) snprintf(buf, n, "the embedding");
    else if (i >= p->final_norm && i < p->final_norm + C) snprintf(buf, n, "the final norm");
    else snprintf(buf, n, "the LM head");
}

/* Every rank holds the whole parameters after a load: each finds the same. */
static ra_status check_params_finite(const ra_session *s, const char *path)
{
    const float *w = ra_model_params(s->model);
    const size_t n = ra_model_nparams(s->model);
    for (size_t i = 0; i < n; i++)
        if (!isfinite(w[i])) {
            char where[64];
            ra_session_param_where(s, i, where, sizeof where);
            return RA_FAIL(RA_ERR_NUMERIC,
                           "%s: parameter %zu (%s) is %s: the checkpoint's weights are not all finite, so nothing "
                           "it computes would be; use an earlier checkpoint (training never saves such weights: "
                           "this file was changed or damaged)", path, i, where, isnan(w[i]) ? "NaN" : "infinite");
        }
    return RA_OK;
}

/* The AdamW moments this rank holds (its shard when sharded, from index
 * lo): a NaN or infinity there turns the parameters non-finite at the
 * first update, and training would save them. */
static ra_status check_moments_finite(const ra_session *s, const char *path)
{
    const size_t n = s->sharded ? s->hi - s->lo : ra_model_nparams(s->model), at = s->sharded ? s->lo : 0;
    const float *mv[2] = { s->opt.m, s->opt.v };
    for (int k = 0; k < 2; k++)
        for (size_t i = 0; i < n; i++)
            if (!isfinite(mv[k][i]) || (k == 1 && mv[k][i] < 0))
                return RA_FAIL(RA_ERR_NUMERIC, "%s: AdamW's %s[%zu] is %g: the checkpoint's optimizer state is not "
                               "valid, so training from it would turn the weights non-finite; use an earlier "
                               "checkpoint (training never saves such moments: this file was changed or damaged)",
                               path, k ? "adam_v" : "adam_m", at + i, (double)mv[k][i]);
    return RA_OK;
}

/* Read the checkpoint into the session's tensors (the whole parameters;
 * the moments whole, or this rank's shard when sharded, or none of their
 * values when the session has no optimizer: eval, generate); *sum: the
 * file's CRC-64. */
static ra_status load_tensors(ra_session *s, const char *path, int with_optim, ra_ckpt_state *st, uint64_t *sum)
{
    ra_ckpt_tensor t[3];
    ra_session_tensors(s, t, 1); /* params, adam_m, adam_v: every checkpoint holds the three */
    const uint64_t np = t[0].count;
    if (with_optim && !s->sharded) {
        RA_TRY(ra_ckpt_load_range_sum(path, NULL, st, t, NULL, 3, sum));
        RA_TRY(check_params_finite(s, path));
        return check_moments_finite(s, path);
    }
    /* the file always holds the moments: their names and counts are
     * checked, and without an optimizer none of their values is read (a
     * scratch copy of both took twice the parameters' memory on every rank) */
    float none = 0;
    if (!with_optim) {
        t[1] = (ra_ckpt_tensor){ "adam_m", &none, np };
        t[2] = (ra_ckpt_tensor){ "adam_v", &none, np };
    }
    const uint64_t lo = with_optim ? s->lo : 0, hi = with_optim ? s->hi : 0;
    const ra_ckpt_range r[3] = { { 0, np }, { lo, hi }, { lo, hi } };
    RA_TRY(ra_ckpt_load_range_sum(path, NULL, st, t, r, 3, sum));
    RA_TRY(check_params_finite(s, path));
    return with_optim ? check_moments_finite(s, path) : RA_OK;
}

ra_status ra_session_load(const ra_cli *c, ra_session *s, const char *path, int with_optim,
                          ra_ckpt_state *state)
{
    ra_ckpt_state st = { 0 };
    uint64_t sum = 0;
    ra_status rs = ra_agree(c->comm, load_tensors(s, path, with_optim, &st, &sum));
    if (state) *state = st;
    RA_TRY(rs);
    /* again: the config's read was earlier, and the file may have been
     * replaced since on some ranks */
    return same_checkpoint(c, path, &st, sum);
}

ra_status ra_session_eval(const ra_cli *c, ra_session *s, int split, int batches,
                          const volatile sig_atomic_t *stop, ra_eval_result *r)
{
    double loss = 0;
    int64_t cnt[2] = { 0, 0 };
    const int per = s->cfg.batch / s->grid.dp; /* this group's sequences of each batch */
    const int64_t t0 = RA_TRACE_T0();
    r->stopped = 0;
    for (int b = 0; b < batches; b++)
        for (int a = 0; a < per / s->micro; a++) {
            if (stop) { /* one int a micro-batch: the signalled rank tells the others */
                int mine = *stop;
                RA_TRY(ra_allreduce_named(&mine, &r->stopped, 1, MPI_INT, MPI_MAX, c->comm, "the stop requests"));
                if (r->stopped) {
                    RA_TRACE_END1("eval", "evaluation (stopped)", t0, "batches", b);
                    return RA_OK;
                }
            }
            uint64_t idx = ra_session_seq(s, (uint64_t)b, a);
            ra_status st = ra_data_batch(s->data, split, idx, s->micro, s->tok, s->tgt);
            RA_TRY(ra_agree(c->comm, st));
            ra_batch_stats bs;
            RA_TRY(ra_agree(c->comm, ra_model_step(s->model, s->tok, s->tgt, 0, 0.0f, 0, &bs)));
            loss += bs.loss_sum;
            cnt[0] += bs.count;
            cnt[1] += bs.correct;
        }
    double gl = 0;
    int64_t gc[2];
    RA_TRY(ra_allreduce_named(&loss, &gl, 1, MPI_DOUBLE, MPI_SUM, c->comm, "the evaluation loss"));
    RA_TRY(ra_allreduce_named(cnt, gc, 2, MPI_INT64_T, MPI_SUM, c->comm, "the evaluation counts"));
    RA_TRACE_END1("eval", "evaluation", t0, "batches", batches);
    r->count = gc[0];
    r->loss = gc[0] ? gl / (double)gc[0] : NAN;
    r->bpb = r->loss / log(2.0); /* byte-level tokens: nats per byte -> bits per byte */
    r->accuracy = gc[0] ? (double)gc[1] / (double)gc[0] : NAN;
    return RA_OK;
}

uint64_t ra_session_seq(const ra_session *s, uint64_t step, int a)
{
    const uint64_t per = (uint64_t)(s->cfg.batch / s->grid.dp);
    return step * (uint64_t)s->cfg.batch + (uint64_t)s->grid.group * per + (uint64_t)a * (uint64_t)s->micro;
}

/* ---- the optimizer step over the shards -------------------------------------- */

ra_status ra_session_grad_norm(const ra_cli *c, ra_session *s, double *norm)
{
    if (!s->sharded) { /* every rank has the whole sum: the same norm everywhere, no reduction */
        *norm = ra_grad_norm(s->gsum, s->hi - s->lo);
        return RA_OK;
    }
    double mine = ra_grad_sumsq(s->gsum, s->hi - s->lo), all = 0;
    RA_TRY(ra_allreduce_named(&mine, &all, 1, MPI_DOUBLE, MPI_SUM, c->comm, "the gradient norm over the shards"));
    *norm = sqrt(all);
    return RA_OK;
}

ra_status ra_session_adamw(const ra_cli *c, ra_session *s, float clip, float lr, int step)
{
    float *params = ra_model_params(s->model);
    ra_adamw_step(&s->opt, params + s->lo, s->gsum, clip, lr, &s->cfg, step);
    if (!s->sharded) return RA_OK;
    return ra_agree(c->comm, ra_allgather_parts(params, s->bounds, c->comm, "the updated parameter shards"));
}

ra_status ra_session_first_nonfinite(const ra_cli *c, ra_session *s, size_t *index)
{
    const size_t n = s->hi - s->lo;
    size_t i = 0;
    while (i < n && isfinite(s->gsum[i])) i++;
    uint64_t mine = i < n ? (uint64_t)(s->lo + i) : UINT64_MAX, first = mine;
    if (s->sharded)
        RA_TRY(ra_allreduce_named(&mine, &first, 1, MPI_UINT64_T, MPI_MIN, c->comm,
                                  "the first non-finite gradient"));
    *index = first == UINT64_MAX ? SIZE_MAX : (size_t)first;
    return RA_OK;
}

float *ra_session_summed_grad(ra_session *s, size_t i)
{
    return i >= s->lo && i < s->hi ? s->gsum + (i - s->lo) : NULL;
}
