/* cipher.c - Bit Cipher code assignment (see cipher.h for the rule). */
#include "ringattn/cipher.h"

#include <stdlib.h>
#include <string.h>

#include "ringattn/tokens.h"

int ra_cipher_bits(int V, int b) { return ra_code_bits(V, b); } /* the config checks the same formula */

ra_status ra_cipher_codes(int b, int n, uint32_t *codes)
{
    if (b < 1 || b > 30) return RA_FAIL(RA_ERR_ARG, "cipher: %d bits is outside [1, 30]", b);
    if (n < 0 || (uint64_t)n > ((uint64_t)1 << b) - 1)
        return RA_FAIL(RA_ERR_ARG, "cipher: %d codes do not fit in %d bits (at most %lu)", n, b,
                       (unsigned long)(((uint64_t)1 << b) - 1));
    unsigned char *used = calloc((size_t)1 << b, 1);
    if (!used) return RA_FAIL(RA_ERR_NOMEM, "cipher: out of memory for %d bits", b);
    int have = 0, level_start = 0;
    for (int j = 0; j < b && have < n; j++) { /* one-hot, position 0 first */
        uint32_t c = 1u << (b - 1 - j);
        used[c] = 1;
        codes[have++] = c;
    }
    int level_end = have < b ? have : b;
    while (have < n) { /* level k from level k-1, walked in reverse */
        int next_start = have;
        for (int i = level_end - 1; i >= level_start && have < n; i--) {
            uint32_t p = codes[i];
            for (int j = b - 1; j >= 0 && have < n; j--) {
                uint32_t bit = 1u << (b - 1 - j), c = p | bit;
                if (!(p & bit) && !used[c]) {
                    used[c] = 1;
                    codes[have++] = c;
                }
            }
        }
        level_start = next_start;
        level_end = have;
        if (level_end == level_start) break; /* cannot happen while n <= 2^b - 1 */
    }
    free(used);
    return RA_OK;
}

typedef struct {
    int64_t count;
    int token;
} by_count;

static int cmp_count(const void *x, const void *y)
{
    const by_count *a = x, *b = y;
    if (a->count != b->count) return a->count > b->count ? -1 : 1;
    return a->token - b->token;
}

ra_status ra_cipher_assign(const int64_t *counts, int V, int b, int *rank, uint32_t *code)
{
    by_count *order = malloc(sizeof(by_count) * (size_t)V);
    uint32_t *codes = malloc(sizeof(uint32_t) * (size_t)V);
    ra_status st = order && codes ? ra_cipher_codes(b, V, codes) : RA_FAIL(RA_ERR_NOMEM, "cipher: out of memory");
    if (st == RA_OK) {
        for (int t = 0; t < V; t++) order[t] = (by_count){ counts[t], t };
        qsort(order, (size_t)V, sizeof *order, cmp_count);
        for (int r = 0; r < V; r++) {
            rank[order[r].token] = r;
            code[order[r].token] = codes[r];
        }
    }
    free(order);
    free(codes);
    return st;
}

const char *ra_cipher_string(uint32_t code, int b, char *buf)
{
    for (int j = 0; j < b; j++) buf[j] = (code >> (b - 1 - j)) & 1 ? '1' : '0';
    buf[b] = '\0';
    return buf;
}
