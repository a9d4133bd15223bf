/* session.c - config, model, data and evaluation for train, eval, generate. */
#include "session.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "ringattn/dist.h"
#include "ringattn/mem.h"

const char *ra_session_help =
    "configuration:\n"
    "  --config FILE       INI file (configs/*.ini); default: the built-in recall model\n"
    "  --set SEC.KEY=VAL   override one key, e.g. --set train.steps=20 (repeatable)\n"
    "  --threads N         OpenBLAS threads per rank (default: cores / ranks per node)\n";

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

void ra_ckpt_resolve(char *out, size_t n, const char *path)
{
    struct stat st;
    if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) snprintf(out, n, "%s/last.ckpt", path);
    else snprintf(out, n, "%s", path);
}

static ra_status build_config(const ra_session_args *a, const char *ckpt, ra_config *cfg)
{
    ra_config_defaults(cfg);
    if (ckpt) {
        char *text = NULL;
        ra_ckpt_state state;
        RA_TRY(ra_ckpt_peek(ckpt, &text, &state));
        ra_status st = ra_config_parse(cfg, text, ckpt);
        free(text);
        RA_TRY(st);
    } else if (a->config) {
        RA_TRY(ra_config_load(cfg, a->config));
    }
    for (int i = 0; i < a->nsets; i++) RA_TRY(ra_config_set(cfg, a->sets[i], "--set"));
    return ra_config_finish(cfg);
}

ra_status ra_session_config(const ra_cli *c, const ra_session_args *a, const char *ckpt,
                            ra_config *cfg)
{
    return ra_agree(c->comm, build_config(a, ckpt, cfg));
}

static ra_status open_all(const ra_cli *c, ra_session *s, const ra_config *cfg, int micro,
                          int with_optim)
{
    s->cfg = *cfg;
    s->micro = micro;
    ra_set_peer_timeout(cfg->timeout);
    RA_TRY(ra_model_create(&s->model, cfg, micro, c->comm));
    int64_t Lr = ra_model_local_len(s->model);
    if (with_optim) RA_TRY(ra_adamw_create(&s->opt, ra_model_layout(s->model), cfg->layers));
    RA_TRY(ra_data_open(&s->data, cfg, ra_model_positions(s->model), Lr));
    RA_TRY(ra_alloc(&s->tok, sizeof(int32_t) * 2 * (size_t)micro * (Lr + 1), "token batch"));
    s->tgt = s->tok + (size_t)micro * (Lr + 1);
    ra_model_init(s->model, cfg->seed);
    return RA_OK;
}

ra_status ra_session_open(const ra_cli *c, ra_session *s, const ra_config *cfg, int micro,
                          int with_optim)
{
    *s = (ra_session){ 0 };
    return ra_agree(c->comm, open_all(c, s, cfg, micro, with_optim));
}

void ra_session_close(ra_session *s)
{
    ra_model_destroy(s->model);
    ra_adamw_free(&s->opt);
    ra_data_close(s->data);
    free(s->tok);
    *s = (ra_session){ 0 };
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

ra_status ra_session_load(const ra_cli *c, ra_session *s, const char *path, int with_optim,
                          ra_ckpt_state *state)
{
    ra_ckpt_tensor t[3];
    int n = ra_session_tensors(s, t, 1);
    ra_ckpt_state st = { 0 };
    /* the file always holds the optimizer moments; eval/generate load them
     * into a scratch copy only when they have no optimizer */
    float *scratch = NULL;
    ra_status rs = RA_OK;
    if (!with_optim) {
        rs = ra_alloc(&scratch, sizeof(float) * 2 * t[0].count + 64, "checkpoint moments");
        if (rs == RA_OK) {
            t[1] = (ra_ckpt_tensor){ "adam_m", scratch, t[0].count };
            t[2] = (ra_ckpt_tensor){ "adam_v", scratch + t[0].count, t[0].count };
        }
    }
    if (rs == RA_OK) rs = ra_ckpt_load(path, NULL, &st, t, n);
    free(scratch);
    if (state) *state = st;
    return ra_agree(c->comm, rs);
}

ra_status ra_session_eval(const ra_cli *c, ra_session *s, int split, int batches,
                          ra_eval_result *r)
{
    double loss = 0;
    int64_t cnt[2] = { 0, 0 };
    const int per = s->cfg.batch;
    for (int b = 0; b < batches; b++)
        for (int m0 = 0; m0 < per; m0 += s->micro) {
            uint64_t idx = (uint64_t)b * per + m0;
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
    ra_allreduce(&loss, &gl, 1, MPI_DOUBLE, MPI_SUM, c->comm);
    ra_allreduce(cnt, gc, 2, MPI_INT64_T, MPI_SUM, c->comm);
    r->count = gc[0];
    r->loss = gc[0] ? gl / (double)gc[0] : NAN;
    r->bpb = r->loss / log(2.0); /* byte-level tokens: nats per byte -> bits per byte */
    r->accuracy = gc[0] ? (double)gc[1] / (double)gc[0] : NAN;
    return RA_OK;
}
