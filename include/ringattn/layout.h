/* layout.h - which global tokens each rank owns (docs/design.md §3).
 *
 *   contiguous: rank r owns [floor(r*L/P), floor((r+1)*L/P)).
 *   zigzag:     L cut into 2P chunks (chunk c = [floor(c*L/2P), floor((c+1)*L/2P)));
 *               rank r owns chunk r then chunk 2P-1-r. Balances causal work.
 *   striped:    token i belongs to rank i mod P.
 * Local order is increasing global index in every layout. */
#ifndef RINGATTN_LAYOUT_H
#define RINGATTN_LAYOUT_H

#include <stdint.h>

#include "ringattn/names.h" /* ra_layout */
#include "ringattn/status.h"

ra_status ra_layout_parse(const char *name, ra_layout *out); /* error names the value */
const char *ra_layout_name(ra_layout lay);

/* Number of tokens rank r owns. */
int64_t ra_layout_count(ra_layout lay, int64_t L, int P, int r);
/* Global index of rank r's local token k (0 <= k < count). */
int64_t ra_layout_global(ra_layout lay, int64_t L, int P, int r, int64_t k);
/* Tokens of rank r's first chunk, local tokens [0, n): zigzag, chunk r
 * (empty when L < 2P leaves it so; chunk 2P-1-r follows it locally);
 * contiguous, all its tokens; striped, 1 (all at P = 1; 0 if it owns none).
 * The ring splits zigzag pieces there (docs/design.md §4.1). */
int64_t ra_layout_first_chunk(ra_layout lay, int64_t L, int P, int r);
/* Fill pos[0..count) with the global indices of rank r's tokens. */
void ra_layout_positions(ra_layout lay, int64_t L, int P, int r, int32_t *pos);

#endif
