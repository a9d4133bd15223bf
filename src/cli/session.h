/* session.h - what train, eval and generate share: a config from a file or
 * a checkpoint plus --set overrides, the model, the data, and evaluation. */
#ifndef RINGATTN_SESSION_H
#define RINGATTN_SESSION_H

#include "cli.h"
#include "ringattn/checkpoint.h"
#include "ringattn/config.h"
#include "ringattn/data.h"
#include "ringattn/model.h"
#include "ringattn/optim.h"

#define RA_MAX_SETS 64

typedef struct {
    const char *config;   /* --config FILE (NULL: built-in defaults) */
    const char *sets[RA_MAX_SETS];
    int nsets;
    int threads;
} ra_session_args;

typedef struct {
    ra_config cfg;
    ra_model *model;
    ra_adamw opt;
    ra_data *data;
    int micro;            /* sequences per forward/backward */
    int32_t *tok, *tgt;   /* [micro][Lr] */
} ra_session;

/* --config/--set/--threads: returns 1 if opt was one of them. */
int ra_session_opt(ra_session_args *a, int opt, const char *val, ra_status *st);
extern const char *ra_session_help;

/* Build the config: defaults, then the checkpoint's stored config (when
 * ckpt != NULL) or --config, then every --set; finish and check. Collective.
 * With a checkpoint, --config is an error (the checkpoint holds the config)
 * and a --set that changes the model (its shapes, FFN kind, RoPE, norms,
 * a layer's head kind or preconditioner) is refused naming the key: the
 * tensors would load into a different function. */
ra_status ra_session_config(const ra_cli *c, const ra_session_args *a, const char *ckpt,
                            ra_config *cfg);
/* The same, also handing out the checkpoint's state (step, seed). */
ra_status ra_session_config_state(const ra_cli *c, const ra_session_args *a, const char *ckpt,
                                  ra_config *cfg, ra_ckpt_state *state);
/* Model (micro-batch sequences), optimizer (with_optim), data. Collective. */
ra_status ra_session_open(const ra_cli *c, ra_session *s, const ra_config *cfg, int micro,
                          int with_optim);
void ra_session_close(ra_session *s);
/* Checkpoint tensors of the session: params [, adam_m, adam_v]. */
int ra_session_tensors(ra_session *s, ra_ckpt_tensor *t, int with_optim);
/* Load a checkpoint (every rank reads and verifies it). Collective. */
ra_status ra_session_load(const ra_cli *c, ra_session *s, const char *path, int with_optim,
                          ra_ckpt_state *state);

typedef struct {
    double loss, bpb, accuracy; /* mean loss (nats), bits per byte, argmax accuracy */
    int64_t count;
} ra_eval_result;

/* Mean loss over `batches` batches of cfg.batch held-out sequences. */
ra_status ra_session_eval(const ra_cli *c, ra_session *s, int split, int batches,
                          ra_eval_result *r);
/* A checkpoint path: DIR -> DIR/last.ckpt; a file as given. */
void ra_ckpt_resolve(char *out, size_t n, const char *path);

#endif
