/* decode.h - token-by-token decoding with a KV cache that stays sharded by
 * sequence position across ranks (docs/design.md §9).
 *
 * A forward of the model over the prompt (micro-batch 1, data.seq_len = the
 * prompt's length) leaves every rank the keys and values of its own prompt
 * tokens; ra_decoder_prefill takes them over. Each new token is then run on
 * every rank through the same layer code as training (one token is n = 1);
 * its key/value is kept only by rank (position mod P); its query attends to
 * each rank's local cache, and the partial results (running max, sum,
 * weighted values) are merged by MPI_Allreduce with the online-softmax
 * operator (dist.h), under the peer timeout. No rank ever holds more than
 * its share of the context. Every call is collective.
 *
 *     ra_decoder *d;
 *     RA_TRY(ra_decoder_create(&d, &cfg, ra_model_params(m), ra_model_layout(m), comm, Lp + n));
 *     RA_TRY(ra_model_step(m, tok, tgt, 0, 0.0f, 0, &bs));  // forward over the prompt
 *     RA_TRY(ra_decoder_prefill(d, m));
 *     for (...) { next = argmax(ra_decoder_logits(d)); RA_TRY(ra_decoder_step(d, next)); }
 *     ra_decoder_destroy(d);
 *
 * Decoding supports the full head (any preconditioner); a layer with a
 * Combiner head is refused at creation. */
#ifndef RINGATTN_DECODE_H
#define RINGATTN_DECODE_H

#include <mpi.h>
#include <stdint.h>

#include "ringattn/config.h"
#include "ringattn/model.h"
#include "ringattn/status.h"

typedef struct ra_decoder ra_decoder;

/* A decoder for sequences of at most capacity positions (prompt + new
 * tokens), reading the parameters params (laid out as lay, for cfg) - they
 * are not copied. Collective. */
ra_status ra_decoder_create(ra_decoder **out, const ra_config *cfg, const float *params,
                            const ra_param_layout *lay, MPI_Comm comm, int64_t capacity);
void ra_decoder_destroy(ra_decoder *d);

/* After a forward of m (micro-batch 1, same parameters) over a prompt of
 * data.seq_len tokens: take its keys and values into the cache and the
 * logits of its last position as the next-token logits. The decoder must be
 * empty. Collective. */
ra_status ra_decoder_prefill(ra_decoder *d, const ra_model *m);

/* Append token at position ra_decoder_len(d) and compute the logits of the
 * position after it. Collective; every rank passes the same token. */
ra_status ra_decoder_step(ra_decoder *d, int32_t token);

/* Next-token logits [V] (the same on every rank); zeros before any token. */
const float *ra_decoder_logits(const ra_decoder *d);
/* Positions in the sequence so far. */
int64_t ra_decoder_len(const ra_decoder *d);

#endif
