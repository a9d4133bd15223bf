/* rowvec.h - the one-row vector loops of combiner-logsparse's per-query and
 * per-block work (docs/design.md §5): a dot product in a fixed order (16
 * partial sums, then a fixed tree), so that it vectorizes without
 * reassociating float additions behind the code's back. */
#ifndef RINGATTN_ROWVEC_H
#define RINGATTN_ROWVEC_H

#include "kernels/vmath.h"

/* sum_d x[d] y[d] */
static inline float ra_row_dot(const float *x, const float *y, int D)
{
    ra_vf acc = ra_vsplat(0.0f);
    int d = 0;
    for (; d + RA_VW <= D; d += RA_VW) acc += ra_vload(x + d) * ra_vload(y + d);
    float s[RA_VW];
    for (int i = 0; i < RA_VW; i++) s[i] = acc[i];
    for (int w = RA_VW / 2; w > 0; w /= 2)
        for (int i = 0; i < w; i++) s[i] += s[i + w];
    for (; d < D; d++) s[0] += x[d] * y[d];
    return s[0];
}

#endif
