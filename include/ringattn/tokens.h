/* tokens.h - token ids that the config checks against model.vocab before
 * any model or data exists: the recall task's alphabet (data.h generates
 * it) and the width of a Bit Cipher code (cipher.h assigns the codes).
 * Core and MPI-free, so the config parser needs nothing from model/. */
#ifndef RINGATTN_TOKENS_H
#define RINGATTN_TOKENS_H

#include <stdint.h>

/* The recall task's alphabet: a pair is the byte 128 + 16 key + value; a
 * query is the key as a letter, its answer the value as a letter. */
#define RA_RECALL_VALUES 16
#define RA_RECALL_MAX_KEYS 8
#define RA_RECALL_PAIR(k, v) ((int32_t)128 + RA_RECALL_VALUES * (k) + (v))
#define RA_RECALL_KEY(k) ((int32_t)'A' + (k))
#define RA_RECALL_VALUE(v) ((int32_t)'a' + (v))
#define RA_RECALL_FILL ((int32_t)'.')
#define RA_RECALL_SEP ((int32_t)'|')

/* Bits of a code for V tokens: floor(log2 V) + 1, or b when b is larger
 * (b = 0: automatic). V >= 1; the loop runs at most 31 times for any int. */
static inline int ra_code_bits(int V, int b)
{
    int need = 1;
    while (need < 31 && (INT64_C(1) << need) <= V) need++;
    return b > need ? b : need;
}

#endif
