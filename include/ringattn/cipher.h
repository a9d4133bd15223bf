/* cipher.h - Bit Cipher codes (J. R. Williams et al., 2023-2024): a
 * deterministic b-bit code for every token, most frequent tokens first.
 *
 * Codes are written as bit strings, position 0 leftmost (the integer's bit
 * b-1). They come in order of increasing popcount: the b one-hot codes from
 * position 0 to b-1 (1000, 0100, 0010, 0001 for b = 4); then level k from
 * level k-1 by walking level k-1 in reverse and, for position j from b-1
 * down to 0, adding each unused code p | (position j) where p lacks it
 * (b = 4: 0011, 0101, 1001, 0110, 1010, 1100, ...). Token of frequency rank
 * r (most frequent 0; ties by smaller token) gets code r. A code's vector is
 * its bits divided by its popcount. */
#ifndef RINGATTN_CIPHER_H
#define RINGATTN_CIPHER_H

#include <stdint.h>

#include "ringattn/status.h"

/* floor(log2 V) + 1, or b when b is larger (0: automatic): ra_code_bits of tokens.h. */
int ra_cipher_bits(int V, int b);
/* The first n codes in order (n <= 2^b - 1, b <= 30). */
ra_status ra_cipher_codes(int b, int n, uint32_t *codes);
/* For each token: its frequency rank and its code. counts [V]. */
ra_status ra_cipher_assign(const int64_t *counts, int V, int b, int *rank, uint32_t *code);
/* The bit string of code (b characters + NUL) into buf. */
const char *ra_cipher_string(uint32_t code, int b, char *buf);

#endif
