/* names.c - the word lists of names.h, in enum order. */
#include "ringattn/names.h"

#include <stdio.h>
#include <string.h>

const char *const ra_head_words[] = {"full", "combiner-fixed", "combiner-logsparse", "combiner-axial", NULL};
const char *const ra_precond_words[] = {"none", "rownorm", "spectral", NULL};
const char *const ra_precond_grad_words[] = {"stop", "full", NULL};
const char *const ra_ffn_words[] = {"swiglu", "gelu", NULL};
const char *const ra_source_words[] = {"recall", "file", "tokens", NULL};
const char *const ra_token_dtype_words[] = {"auto", "uint16", "uint32", "npy", "llmc", NULL};
const char *const ra_layout_words[] = {"contiguous", "zigzag", "striped", NULL};
const char *const ra_embed_init_words[] = {"random", "bitcipher", "cooc", NULL};
const char *const ra_head_init_words[] = {"random", "explicit", NULL};
const char *const ra_nonfinite_words[] = {"stop", "skip", NULL};

int ra_name_find(const char *const *words, const char *word)
{
    for (int i = 0; words[i]; i++)
        if (strcmp(words[i], word) == 0) return i;
    return -1;
}

const char *ra_name_list(const char *const *words, char *out, size_t cap)
{
    size_t n = 0;
    int count = 0;
    while (words[count]) count++;
    if (cap) out[0] = '\0';
    for (int i = 0; i < count && n < cap; i++) {
        const char *sep = i == 0 ? "" : i == count - 1 ? " or " : ", ";
        int w = snprintf(out + n, cap - n, "%s%s", sep, words[i]);
        if (w < 0) break;
        n += (size_t)w;
    }
    return out;
}
