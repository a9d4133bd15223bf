/* layout.c - which global tokens a rank owns: contiguous, zigzag, striped. */
#include "ringattn/layout.h"

#include <string.h>

ra_status ra_layout_parse(const char *name, ra_layout *out)
{
    int id = ra_name_find(ra_layout_words, name);
    char list[64];
    if (id < 0)
        return RA_FAIL(RA_ERR_ARG, "--layout: unknown layout '%s' (expected %s)", name,
                       ra_name_list(ra_layout_words, list, sizeof list));
    *out = (ra_layout)id;
    return RA_OK;
}

const char *ra_layout_name(ra_layout lay)
{
    return (unsigned)lay <= RA_LAYOUT_STRIPED ? ra_layout_words[lay] : "?";
}

static int64_t cut(int64_t L, int64_t n, int64_t c) { return c * L / n; }

int64_t ra_layout_count(ra_layout lay, int64_t L, int P, int r)
{
    switch (lay) {
    case RA_LAYOUT_CONTIGUOUS: return cut(L, P, r + 1) - cut(L, P, r);
    case RA_LAYOUT_ZIGZAG: {
        int64_t c2 = 2 * (int64_t)P - 1 - r;
        return cut(L, 2 * P, r + 1) - cut(L, 2 * P, r) + cut(L, 2 * P, c2 + 1) - cut(L, 2 * P, c2);
    }
    case RA_LAYOUT_STRIPED: return L / P + (r < L % P ? 1 : 0);
    }
    return 0;
}

int64_t ra_layout_global(ra_layout lay, int64_t L, int P, int r, int64_t k)
{
    switch (lay) {
    case RA_LAYOUT_CONTIGUOUS: return cut(L, P, r) + k;
    case RA_LAYOUT_ZIGZAG: {
        int64_t first = cut(L, 2 * P, r + 1) - cut(L, 2 * P, r);
        if (k < first) return cut(L, 2 * P, r) + k;
        return cut(L, 2 * P, 2 * (int64_t)P - 1 - r) + (k - first);
    }
    case RA_LAYOUT_STRIPED: return (int64_t)r + k * P;
    }
    return -1;
}

int64_t ra_layout_first_chunk(ra_layout lay, int64_t L, int P, int r)
{
    switch (lay) {
    case RA_LAYOUT_CONTIGUOUS: return ra_layout_count(lay, L, P, r);
    case RA_LAYOUT_ZIGZAG: return cut(L, 2 * P, r + 1) - cut(L, 2 * P, r);
    case RA_LAYOUT_STRIPED: {
        const int64_t n = ra_layout_count(lay, L, P, r);
        return P == 1 || n == 0 ? n : 1;
    }
    }
    return 0;
}

void ra_layout_positions(ra_layout lay, int64_t L, int P, int r, int32_t *pos)
{
    int64_t n = ra_layout_count(lay, L, P, r);
    for (int64_t k = 0; k < n; k++) pos[k] = (int32_t)ra_layout_global(lay, L, P, r, k);
}
