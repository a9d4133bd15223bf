/* session.h - what train, eval and generate share: a config from a file or
 * a checkpoint plus --set overrides, the model, the data, and evaluation. */
#ifndef RINGATTN_SESSION_H
#define RINGATTN_SESSION_H

#include <signal.h>

#include "cli.h"
#include "ringattn/checkpoint.h"
#include "ringattn/config.h"
#include "ringattn/data.h"
#include "ringattn/grid.h"
#include "ringattn/model.h"
#include "ringattn/optim.h"

#define RA_MAX_SETS 64

typedef struct {
    const char *config;   /* --config FILE (NULL: built-in defaults) */
    const char *sets[RA_MAX_SETS];
    int nsets;
    int threads;
    const char *data;     /* eval's --data FILE: the data, read whole (NULL: the config's) */
    int no_data;          /* generate: reads no data, so the data's checks do not apply (a recall
                           * model's task length against --set data.seq_len) */
    int no_grad;          /* eval: no gradients accumulate, so --set run.dp needs only to divide
                           * train.batch; train.accum is refit to it (session.c) */
    int grid_ranks;       /* > 0: the command runs run.dp rings over this many ranks, and a run.dp
                           * that does not divide them is said before the config's other checks */
} ra_session_args;

/* On a grid (run.dp > 1: train, and eval when told) the model lives on this rank's ring
 * and the gradients are summed over every rank. With sharded optimizer
 * states (train.shard_optimizer, P > 1) rank r holds the AdamW moments and
 * the summed gradient of the parameters [lo, hi) = [n r / P, n (r+1) / P)
 * only; the parameters themselves stay whole on every rank. */
typedef struct {
    ra_config cfg;
    ra_grid grid;         /* the rings: cfg.dp groups */
    ra_model *model;
    ra_adamw opt;         /* over [lo, hi) */
    ra_data *data;
    int micro;            /* sequences per forward/backward */
    int32_t *tok, *tgt;   /* [micro][Lr] */
    int sharded;          /* optimizer states sharded over the P ranks */
    size_t *bounds;       /* [P + 1] shard bounds (sharded) */
    size_t lo, hi;        /* this rank's shard ([0, n) unsharded) */
    float *gsum;          /* [hi - lo] summed gradient of the shard (unsharded: the model's gradients) */
    uint64_t history;     /* train's history id, written in its checkpoints (checkpoint.h); 0 elsewhere */
    uint64_t data_bytes;  /* train: data.path's size + 1 at the start, written in its checkpoints; 0 elsewhere */
    uint64_t data_sample; /* train: the hash of data.path's bytes at the start (RA_CKPT_DATA_SAMPLE); 0 elsewhere */
} ra_session;

/* --config/--set/--threads: returns 1 if opt was one of them. */
int ra_session_opt(ra_session_args *a, int opt, const char *val, ra_status *st);
extern const char *ra_session_help;
/* The same without --config, for commands whose config is a checkpoint's. */
extern const char *ra_session_ckpt_help;

/* Build the config: defaults, then the checkpoint's stored config (when
 * ckpt != NULL) or --config, then every --set, then --data (a->data: FILE
 * replaces data.source, data.path and the held-out split; a --set of
 * data.path or data.val_path, or of data.source to recall, contradicts it
 * and is refused); finish and check. Collective.
 * With a checkpoint, --config is an error (the checkpoint holds the config)
 * and a --set that changes the model (its shapes, FFN kind, RoPE, norms,
 * a layer's head kind or preconditioner) is refused naming the key: the
 * tensors would load into a different function. --set data.source=file
 * (without a data.dtype of its own) drops the checkpoint's data.dtype, and
 * --data FILE is then read as bytes whatever its magic.
 * Then the ranks compare what they built (same.c): the checkpoint's step
 * and CRC-64, and the config's canonical text without run.threads; a rank
 * that differs (a file replaced while the ranks read it, an MPMD launch
 * with other options) is refused on every rank, rank 0 naming it and the
 * keys. */
ra_status ra_session_config(const ra_cli *c, const ra_session_args *a, const char *ckpt,
                            ra_config *cfg);
/* The same, also handing out the checkpoint's state (step, seed, history
 * id) and, when not NULL (RA_PATH_MAX bytes each), its run.metrics and
 * run.checkpoint_dir as stored, before --set ("" without a checkpoint). */
ra_status ra_session_config_state(const ra_cli *c, const ra_session_args *a, const char *ckpt,
                                  ra_config *cfg, ra_ckpt_state *state, char *stored_metrics, char *stored_ckdir);
/* 1 when one of the --set overrides assigns key ("run.dp"). */
int ra_session_sets_key(const ra_session_args *a, const char *key);
/* Model (micro-batch sequences), optimizer (with_optim), data. Collective.
 * The grid has cfg->dp rings (eval and generate set cfg->dp = 1 unless
 * told otherwise); with_optim (training) also shards the optimizer as
 * cfg->shard_optimizer says. data_what names the data file in messages
 * (NULL: "data.path"; eval --data FILE: "--data"). */
ra_status ra_session_open(const ra_cli *c, ra_session *s, const ra_config *cfg, int micro,
                          int with_optim, const char *data_what);
void ra_session_close(ra_session *s);
/* Checkpoint tensors of the session: params [, adam_m, adam_v]. */
int ra_session_tensors(ra_session *s, ra_ckpt_tensor *t, int with_optim);
/* Load a checkpoint (every rank reads and verifies it; a sharded session
 * copies only its shard of the moments). Parameters that are not all
 * finite (a crafted or damaged file: training never saves them) are
 * refused, naming the first and its block. A rank that read another file
 * (step, CRC-64) than rank 0 is refused by name. Collective. */
ra_status ra_session_load(const ra_cli *c, ra_session *s, const char *path, int with_optim,
                          ra_ckpt_state *state);

typedef struct {
    double loss, bpb, accuracy; /* mean loss (nats), bits per byte, argmax accuracy */
    int64_t count;
    int stopped; /* > 0: the stop flag's largest value over the ranks ended it (the figures mean nothing) */
} ra_eval_result;

/* After the step's gradients are summed: the global gradient norm (the
 * shards' sums of squares in double, summed over the ranks). Collective. */
ra_status ra_session_grad_norm(const ra_cli *c, ra_session *s, double *norm);
/* AdamW on this rank's shard, then (sharded) the parameters all-gathered
 * from their owners. Collective. */
ra_status ra_session_adamw(const ra_cli *c, ra_session *s, float clip, float lr, int step);
/* The lowest index of a non-finite summed gradient over all ranks
 * (SIZE_MAX: none). Collective. */
ra_status ra_session_first_nonfinite(const ra_cli *c, ra_session *s, size_t *index);
/* Which block parameter i belongs to ("layer 2 (attention)", "the
 * embedding"), into buf. */
void ra_session_param_where(const ra_session *s, size_t i, char *buf, size_t n);
/* This rank's copy of summed gradient i, NULL when another rank owns it. */
float *ra_session_summed_grad(ra_session *s, size_t i);
/* First sequence of micro-batch a of step (or eval batch) `step` for this
 * rank's group: the group's batch / dp sequences follow the groups before. */
uint64_t ra_session_seq(const ra_session *s, uint64_t step, int a);

/* Mean loss over `batches` batches of cfg.batch held-out sequences (split
 * over the data-parallel groups). stop: NULL, or a flag a signal handler
 * raises (train's stop request); before each micro-batch the ranks agree
 * on its largest value, and a non-zero one ends the evaluation at once
 * with r->stopped set, so a preempted run does not wait for a long one. */
ra_status ra_session_eval(const ra_cli *c, ra_session *s, int split, int batches,
                          const volatile sig_atomic_t *stop, ra_eval_result *r);
/* A checkpoint path: DIR -> DIR/last.ckpt; a file as given. */
void ra_ckpt_resolve(char *out, size_t n, const char *path);

#endif
