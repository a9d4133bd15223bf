/* colmax.h - the Combiner heads' max-pooling summary (docs/design.md §5), shared by
 * combiner-fixed and combiner-logsparse. */
#ifndef RINGATTN_COLMAX_H
#define RINGATTN_COLMAX_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>

/* out[d] = max over rows r of x[r][d]; x [rows][D] (rows 0: -inf). */
static inline void ra_colmax(float *out, const float *x, int64_t rows, int D)
{
    for (int d = 0; d < D; d++) out[d] = -INFINITY;
    for (int64_t r = 0; r < rows; r++)
        for (int d = 0; d < D; d++)
            if (x[(size_t)r * D + d] > out[d]) out[d] = x[(size_t)r * D + d];
}

#endif
