/* llama.h - export a checkpoint as a Hugging Face Llama model (safetensors +
 * config.json) and import one back (docs/design.md §14). Single-process:
 * no MPI call; the CLI runs it on rank 0.
 *
 * Export writes DIR/model.safetensors (float32, Llama tensor names, weights
 * [out][in], the rows of W_q and W_k of every head permuted from ringattn's
 * interleaved RoPE pairs (2i, 2i+1) to Llama's half-split pairs
 * (i, i + D/2)) and DIR/config.json (LlamaForCausalLM). A config with no
 * Llama equivalent (GELU FFN, a Combiner head, a preconditioner) is
 * refused naming the layer and the key.
 *
 * Import reads DIR/config.json and DIR/model.safetensors (or the sharded
 * index; F32, F16 or BF16), refuses what ringattn cannot compute exactly
 * (rope_scaling, biases, another activation, tensors missing, extra or of
 * the wrong shape, non-finite weights) naming the key or tensor, and writes
 * a checkpoint at step 0 (zero AdamW moments) that eval, diag, generate and
 * train --resume load on any number of ranks. Export then import gives the
 * parameters back bit for bit.
 *
 *     RA_TRY(ra_llama_export("ck/last.ckpt", "hf", &info));
 *     RA_TRY(ra_llama_import("hf", "imported.ckpt", sets, nsets, &info));
 */
#ifndef RINGATTN_LLAMA_H
#define RINGATTN_LLAMA_H

#include <stdint.h>

#include "ringattn/config.h"
#include "ringattn/status.h"

typedef struct {
    int64_t params;    /* parameter values converted */
    int tensors;       /* tensors written (export) or read (import) */
    int files;         /* safetensors files read (import) */
    char dtypes[32];   /* dtypes read, e.g. "BF16" or "F32+BF16" (import) */
    char source[600];  /* what was read: the checkpoint, or the safetensors file or index */
    char ignored[512]; /* config.json keys that do not change the function (import), comma-separated */
} ra_llama_info;

/* The config has a Llama equivalent: SwiGLU FFN, every layer a full head
 * without a preconditioner. Otherwise RA_ERR_ARG naming the layer and key. */
ra_status ra_llama_check(const ra_config *cfg);

/* Export checkpoint ckpt (a file) into directory dir (created when
 * missing; its parent must exist). */
ra_status ra_llama_export(const char *ckpt, const char *dir, ra_llama_info *info);

/* The ringattn config of dir/config.json: the model keys from it, the
 * defaults for the rest, then the nsets "section.key=value" overrides
 * (train, data and run keys, and model.ffn_block; a model key is refused),
 * finished. */
ra_status ra_llama_config(const char *dir, const char *const *sets, int nsets, ra_config *cfg,
                          ra_llama_info *info);

/* Import dir into the checkpoint ckpt (written atomically). */
ra_status ra_llama_import(const char *dir, const char *ckpt, const char *const *sets, int nsets,
                          ra_llama_info *info);

/* Tensors of cfg's Llama model: 2 + 9 per layer, + 1 when the head is untied. */
int ra_llama_tensors(const ra_config *cfg);

#endif
