/* config.h - model and run configuration: INI files (docs/design.md §8.1).
 *
 *     ra_config cfg;
 *     RA_TRY(ra_config_load(&cfg, "configs/recall.ini"));       // defaults + file
 *     RA_TRY(ra_config_set(&cfg, "train.steps=20", "--set"));     // overrides
 *     RA_TRY(ra_config_finish(&cfg));                             // derived values + checks
 *
 * Sections: [model], [layers] (defaults for every layer), [layer.N] (layer N,
 * 0-based, overrides [layers]), [train], [data], [run]. Unknown sections and
 * keys, malformed lines and bad values are errors that name file:line. A
 * UTF-8 byte-order mark at the start is skipped. The canonical text
 * (ra_config_text) is what checkpoints store. The parser is core and
 * MPI-free (src/core/config_*.c; config_schema.h maps them). */
#ifndef RINGATTN_CONFIG_H
#define RINGATTN_CONFIG_H

#include <stdint.h>

#include "ringattn/names.h"
#include "ringattn/status.h"

#define RA_MAX_LAYERS 64
#define RA_MAX_BATCH (1 << 20) /* train.batch, train.accum and run.dp at most */
#define RA_NAME_MAX 64
#define RA_PATH_MAX 1024
#define RA_CFG_WHERE_MAX 320 /* "file:line" or "--set 'a=b'" in messages */
#define RA_WARM_MAX_VOCAB 4096 /* warm starts count vocab x vocab pairs */

typedef struct {
    char head[RA_NAME_MAX]; /* attention head kind: "full" (registry in heads.h) */
    int span;               /* combiner-fixed span (0: automatic) */
    int row;                /* combiner-axial row length (0: automatic) */
    char precond[RA_NAME_MAX];      /* "none" */
    char precond_grad[RA_NAME_MAX]; /* "stop" | "full" */
    float precond_eps;
    float precond_lambda;
    /* the words above resolved by ra_config_finish (names.h) */
    ra_head_id head_id;
    ra_precond_id precond_id;
    ra_precond_grad_id precond_grad_id;
} ra_layer_config;

typedef struct {
    /* [model] */
    int vocab;          /* 256: bytes */
    int dim;            /* C */
    int layers;
    int heads;          /* H */
    int kv_heads;       /* Hkv (0: = heads) */
    int head_dim;       /* D (0: dim / heads) */
    char ffn[RA_NAME_MAX]; /* "swiglu" | "gelu" */
    int ffn_dim;        /* F (0: 4*dim for gelu, multiple of 8 near 8/3*dim for swiglu) */
    int ffn_block;      /* tokens per FFN block (blockwise FFN, BPT); 0: 256 */
    int tie_embeddings; /* bool */
    float rope_theta;
    float norm_eps;
    float init_std;
    /* warm starts (warm.h) */
    char embed_init[RA_NAME_MAX]; /* "random" | "bitcipher" | "cooc" */
    char head_init[RA_NAME_MAX];  /* "random" | "explicit" */
    int warm_bits;      /* Bit Cipher bits b (0: floor(log2 vocab) + 1) */
    int warm_radius;    /* cooc: tokens either side counted as context */
    float warm_k;       /* explicit head: scale K (0: mean L1 norm of the features) */
    float warm_smooth;  /* explicit head: added to every feature-next-token count */
    int warm_seqs;      /* recall source: training sequences counted (file: all) */
    ra_layer_config layer[RA_MAX_LAYERS];
    /* Bit N: layer N was configured by a [layer.N] section or a layer.N.KEY
     * override; finish refuses N >= layers, then sets exactly the bits of
     * layers 0 .. layers-1 (the layers the canonical text describes). */
    uint64_t layer_given;
    /* Where the highest layer in layer_given was first configured ("file:line"
     * or "--set 'layer.N.key=v'"), kept while that layer is beyond
     * model.layers: what finish names. Empty otherwise, and after finish
     * (finished configs compare equal). */
    char layer_given_at[RA_CFG_WHERE_MAX];
    /* [train] */
    int steps;
    int batch;          /* sequences per optimizer step */
    int accum;          /* micro-batches per step (batch divisible by accum) */
    float lr, min_lr;
    int warmup;         /* steps of linear warm-up, then cosine to min_lr */
    float weight_decay, beta1, beta2, adam_eps;
    float clip;         /* global gradient-norm clip (0: off) */
    uint64_t seed;
    int eval_every;     /* steps between evaluations (0: only at the end) */
    int eval_batches;   /* held-out batches per evaluation */
    int checkpoint_every; /* steps between checkpoints (0: only at the end) */
    int log_every;      /* steps between progress lines */
    char nonfinite[RA_NAME_MAX]; /* NaN/Inf loss or gradient: "stop" | "skip" the step */
    int shard_optimizer; /* AdamW moments sharded over all P ranks (ZeRO-1); 0: replicated */
    int overlap_reduce;  /* 1: each layer's gradients summed during the backward of the layers below; 0 (the
                            default): all of them after the backward, off the ring's link (design.md §16) */
    /* [data] */
    char source[RA_NAME_MAX]; /* "recall" | "file" | "tokens" */
    char path[RA_PATH_MAX];   /* file: any file, read as bytes; tokens: a file of token ids */
    char dtype[RA_NAME_MAX];  /* tokens: "auto" | "uint16" | "uint32" | "npy" | "llmc" (data.h) */
    char val_path[RA_PATH_MAX]; /* file, tokens: the held-out data ("": the tail of path) */
    int seq_len;        /* L */
    float val_fraction; /* tail of the file held out (without val_path) */
    int recall_keys;    /* recall task: distinct keys (and values) */
    int recall_pairs;   /* key-value pairs per sequence */
    int recall_queries; /* queries per sequence */
    /* [run] */
    char layout[RA_NAME_MAX]; /* contiguous | zigzag | striped */
    int dp;             /* data-parallel groups, each a ring of P/dp ranks (grid.h) */
    int chunk;          /* ring chunk (0: automatic) */
    int threads;        /* OpenBLAS threads per rank (0: automatic) */
    float timeout;      /* seconds to wait for a peer rank before ending the job (0: forever) */
    char checkpoint_dir[RA_PATH_MAX];
    char metrics[RA_PATH_MAX]; /* JSON-lines file ("" : none) */
    /* the words above resolved by ra_config_finish (names.h); code tests
     * these, never the strings */
    ra_ffn_id ffn_id;
    ra_embed_init_id embed_init_id;
    ra_head_init_id head_init_id;
    ra_nonfinite_id nonfinite_id;
    ra_source_id source_id;
    ra_token_dtype_id dtype_id;
    ra_layout layout_id;
} ra_config;

/* Defaults for every key (a tiny recall model). */
void ra_config_defaults(ra_config *cfg);
/* Defaults, then the file (a regular file of at most 16 MiB of text: FIFOs,
 * directories and devices are refused at once). Errors name "file:line". */
ra_status ra_config_load(ra_config *cfg, const char *path);
/* Parse INI text (what a checkpoint stores); name is used in messages. */
ra_status ra_config_parse(ra_config *cfg, const char *text, const char *name);
/* One override "section.key=value" (also "layer.N.key=value");
 * origin names it in errors (e.g. "--set"). */
ra_status ra_config_set(ra_config *cfg, const char *assignment, const char *origin);
/* Fill derived values (kv_heads, head_dim, ffn_dim, ffn_block) and check
 * consistency (heads % kv_heads, dim, head_dim even, batch % accum, ...)
 * and sizes in 64 bits (parameters, micro-batch tokens, FFN block, recall
 * lengths), naming the keys. On error *cfg is unchanged. */
ra_status ra_config_finish(ra_config *cfg);
/* The same without the checks of the data and its task (the recall task's
 * lengths, data.path, train.batch sequences of data.seq_len in a
 * micro-batch: one sequence instead): for a command that reads no data,
 * such as generate, whose data.seq_len is only the context it warns past. */
ra_status ra_config_finish_model(ra_config *cfg);
/* run.timeout is 0 or at least 1 s; from (NULL or "the checkpoint X")
 * names where the value came from. Checked on the config a command runs
 * with, after every --set: a checkpoint storing 0.5 still loads. */
ra_status ra_config_check_run(const ra_config *cfg, const char *from);
/* The range [*lo, *hi] the schema allows an integer key ("run.dp") of
 * [model], [train], [data] or [run]: an option standing for a key checks
 * the key's own range. 0 for an unknown or non-integer key. */
int ra_config_int_range(const char *key, int *lo, int *hi);
/* Canonical INI text of every key (malloc'd; NUL-terminated; NULL when out
 * of memory). For a finished config, defaults + parsing it back gives an
 * identical struct (memcmp). */
char *ra_config_text(const ra_config *cfg);

#endif
