/* names.h - the one list of every word a config or option may name, and
 * the C enum each word resolves to. MPI-free: the config parser, the head
 * registry and the command line all read these tables, so a new head kind
 * or preconditioner is one enum value plus one word here.
 *
 *     int id = ra_name_find(ra_head_words, "combiner-axial");  // RA_HEAD_COMBINER_AXIAL
 *     printf("%s\n", ra_head_words[RA_HEAD_FULL]);              // "full"
 *
 * Each table is indexed by its enum and ends with NULL. */
#ifndef RINGATTN_NAMES_H
#define RINGATTN_NAMES_H

#include <stddef.h>

typedef enum { RA_HEAD_FULL, RA_HEAD_COMBINER_FIXED, RA_HEAD_COMBINER_LOGSPARSE, RA_HEAD_COMBINER_AXIAL } ra_head_id;
typedef enum { RA_PRECOND_NONE, RA_PRECOND_ROWNORM, RA_PRECOND_SPECTRAL } ra_precond_id;
typedef enum { RA_PRECOND_GRAD_STOP, RA_PRECOND_GRAD_FULL } ra_precond_grad_id;
typedef enum { RA_FFN_SWIGLU, RA_FFN_GELU } ra_ffn_id;
typedef enum { RA_SOURCE_RECALL, RA_SOURCE_FILE, RA_SOURCE_TOKENS } ra_source_id;
/* data.dtype of a token file (data.h): auto (a .npy or llm.c header), flat
 * little-endian uint16 or uint32, or a header that must be there */
typedef enum { RA_TOKEN_AUTO, RA_TOKEN_U16, RA_TOKEN_U32, RA_TOKEN_NPY, RA_TOKEN_LLMC } ra_token_dtype_id;
typedef enum { RA_LAYOUT_CONTIGUOUS, RA_LAYOUT_ZIGZAG, RA_LAYOUT_STRIPED } ra_layout;
typedef enum { RA_EMBED_INIT_RANDOM, RA_EMBED_INIT_BITCIPHER, RA_EMBED_INIT_COOC } ra_embed_init_id;
typedef enum { RA_HEAD_INIT_RANDOM, RA_HEAD_INIT_EXPLICIT } ra_head_init_id;
typedef enum { RA_NONFINITE_STOP, RA_NONFINITE_SKIP } ra_nonfinite_id;

extern const char *const ra_head_words[];          /* "full", "combiner-fixed", ... */
extern const char *const ra_precond_words[];       /* "none", "rownorm", "spectral" */
extern const char *const ra_precond_grad_words[];  /* "stop", "full" */
extern const char *const ra_ffn_words[];           /* "swiglu", "gelu" */
extern const char *const ra_source_words[];        /* "recall", "file", "tokens" */
extern const char *const ra_token_dtype_words[];   /* "auto", "uint16", "uint32", "npy", "llmc" */
extern const char *const ra_layout_words[];        /* "contiguous", "zigzag", "striped" */
extern const char *const ra_embed_init_words[];    /* "random", "bitcipher", "cooc" */
extern const char *const ra_head_init_words[];     /* "random", "explicit" */
extern const char *const ra_nonfinite_words[];     /* "stop", "skip" */

/* Index of word in the NULL-terminated table, or -1. */
int ra_name_find(const char *const *words, const char *word);
/* "a, b or c" into out (for messages); returns out. */
const char *ra_name_list(const char *const *words, char *out, size_t cap);

#endif
