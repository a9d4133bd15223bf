/* relayout.c - one all-to-all that moves a tensor between a token layout and
 * caller-chosen contiguous ranges of tokens. */
#include "ringattn/relayout.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "ringattn/collective.h"
#include "ringattn/mem.h"
#include "ringattn/plan.h"

static int owner_of(const int64_t *bounds, int P, int64_t g)
{
    int lo = 0, hi = P - 1; /* the last r with bounds[r] <= g (skipping empty ranges) */
    while (lo < hi) {
        int mid = (lo + hi + 1) / 2;
        if (bounds[mid] <= g) lo = mid;
        else hi = mid - 1;
    }
    while (lo < P - 1 && bounds[lo + 1] <= g) lo++;
    return lo;
}

/* The token maps and per-rank counts, in one block (counts zeroed). */
static ra_status plan_maps(ra_relayout *R)
{
    ra_plan plan = RA_PLAN_INIT;
    RA_PLAN_ADD(&plan, R->dst_rank, (size_t)R->Lr_src);
    RA_PLAN_ADD(&plan, R->src_rank, (size_t)R->Lr_dst);
    RA_PLAN_ADD(&plan, R->src_of, (size_t)R->Lr_dst);
    RA_PLAN_ADD(&plan, R->tok_src, (size_t)R->P);
    RA_PLAN_ADD(&plan, R->tok_dst, (size_t)R->P);
    return ra_plan_calloc(&plan, &R->maps, "relayout maps");
}

ra_status ra_relayout_create(ra_relayout *R, ra_layout layout, int64_t L, const int64_t *bounds,
                             MPI_Comm comm)
{
    *R = (ra_relayout){ .comm = comm, .L = L, .layout = layout };
    MPI_Comm_size(comm, &R->P);
    MPI_Comm_rank(comm, &R->rank);
    const int P = R->P, me = R->rank;
    R->Lr_src = ra_layout_count(layout, L, P, me);
    R->dst0 = bounds[me];
    R->Lr_dst = bounds[me + 1] - bounds[me];
    RA_TRY(plan_maps(R));
    for (int64_t k = 0; k < R->Lr_src; k++) {
        int d = owner_of(bounds, P, ra_layout_global(layout, L, P, me, k));
        R->dst_rank[k] = d;
        R->tok_src[d]++;
    }
    /* what arrives, in the order each source packs it (its local order) */
    for (int s = 0; s < P; s++) {
        int64_t n = ra_layout_count(layout, L, P, s);
        for (int64_t k = 0; k < n; k++) {
            int64_t g = ra_layout_global(layout, L, P, s, k);
            if (g < bounds[me] || g >= bounds[me + 1]) continue;
            R->src_rank[g - R->dst0] = s;
            R->src_of[g - R->dst0] = R->tok_dst[s]++;
        }
    }
    return RA_OK;
}

ra_status ra_relayout_create_perm(ra_relayout *R, int64_t L, const int64_t *src_bounds,
                                  const int64_t *dst_bounds, int64_t (*key)(int64_t t, const void *ctx),
                                  const void *ctx, MPI_Comm comm)
{
    *R = (ra_relayout){ .comm = comm, .L = L };
    MPI_Comm_size(comm, &R->P);
    MPI_Comm_rank(comm, &R->rank);
    const int P = R->P, me = R->rank;
    R->Lr_src = src_bounds[me + 1] - src_bounds[me];
    R->dst0 = dst_bounds[me];
    R->Lr_dst = dst_bounds[me + 1] - dst_bounds[me];
    RA_TRY(plan_maps(R));
    for (int64_t k = 0; k < R->Lr_src; k++) {
        int d = owner_of(dst_bounds, P, key(src_bounds[me] + k, ctx));
        R->dst_rank[k] = d;
        R->tok_src[d]++;
    }
    for (int s = 0; s < P; s++) /* each source packs in its own (increasing t) order */
        for (int64_t t = src_bounds[s]; t < src_bounds[s + 1]; t++) {
            int64_t v = key(t, ctx);
            if (v < dst_bounds[me] || v >= dst_bounds[me + 1]) continue;
            R->src_rank[v - R->dst0] = s;
            R->src_of[v - R->dst0] = R->tok_dst[s]++;
        }
    return RA_OK;
}

void ra_relayout_free(ra_relayout *R)
{
    free(R->maps);
    free(R->buf);
    *R = (ra_relayout){ 0 };
}

static ra_status counts(const int64_t *tok, int P, int64_t per_tok, int *cnt, int *dis)
{
    int64_t at = 0;
    for (int r = 0; r < P; r++) {
        int64_t c = tok[r] * per_tok;
        if (c > INT_MAX || at > INT_MAX)
            return RA_FAIL(RA_ERR_ARG, "relayout: %lld floats for one rank exceed MPI's int counts",
                           (long long)c);
        cnt[r] = (int)c;
        dis[r] = (int)at;
        at += c;
    }
    return RA_OK;
}

ra_status ra_relayout_move(ra_relayout *R, const float *src, float *dst, int nbh, int w, int forward)
{
    const int P = R->P;
    const int64_t per = (int64_t)nbh * w;
    const int64_t n_out = forward ? R->Lr_src : R->Lr_dst, n_in = forward ? R->Lr_dst : R->Lr_src;
    /* The send part takes at least one float, so the two parts never share
     * an address: Open MPI's non-blocking all-to-all reads sendbuf ==
     * recvbuf as in place, a different exchange that deadlocks the others. */
    const size_t send_floats = n_out * per > 0 ? (size_t)(n_out * per) : 1;
    size_t need = send_floats + (size_t)n_in * per;
    if (need > R->buf_floats) {
        free(R->buf);
        R->buf = NULL;
        RA_TRY(ra_alloc(&R->buf, sizeof(float) * need, "relayout buffers"));
        R->buf_floats = need;
    }
    float *sbuf = R->buf, *rbuf = R->buf + send_floats;
    int *c = malloc(sizeof(int) * 4 * P);
    if (!c) return RA_FAIL(RA_ERR_NOMEM, "relayout: out of memory");
    int *scnt = c, *sdis = c + P, *rcnt = c + 2 * P, *rdis = c + 3 * P;
    const int64_t *tok_out = forward ? R->tok_src : R->tok_dst, *tok_in = forward ? R->tok_dst : R->tok_src;
    ra_status st = counts(tok_out, P, per, scnt, sdis);
    if (st == RA_OK) st = counts(tok_in, P, per, rcnt, rdis);
    if (st == RA_OK) {
        /* pack: token by token in local order, all (b, h) rows of a token together */
        int64_t *fill = calloc((size_t)P, sizeof(int64_t));
        if (!fill) st = RA_FAIL(RA_ERR_NOMEM, "relayout: out of memory");
        for (int64_t k = 0; st == RA_OK && k < n_out; k++) {
            int to = forward ? R->dst_rank[k] : R->src_rank[k];
            int64_t slot = forward ? fill[to]++ : R->src_of[k];
            float *p = sbuf + sdis[to] + slot * per;
            for (int bh = 0; bh < nbh; bh++) memcpy(p + (size_t)bh * w, src + ((size_t)bh * n_out + k) * w, sizeof(float) * w);
        }
        free(fill);
    }
    if (st == RA_OK)
        st = ra_alltoallv(sbuf, scnt, sdis, MPI_FLOAT, rbuf, rcnt, rdis, MPI_FLOAT, R->comm,
                          "the all-to-all of a relayout");
    if (st == RA_OK) {
        int64_t *fill = calloc((size_t)P, sizeof(int64_t));
        if (!fill) st = RA_FAIL(RA_ERR_NOMEM, "relayout: out of memory");
        for (int64_t k = 0; st == RA_OK && k < n_in; k++) {
            int from = forward ? R->src_rank[k] : R->dst_rank[k];
            int64_t slot = forward ? R->src_of[k] : fill[from]++;
            const float *p = rbuf + rdis[from] + slot * per;
            for (int bh = 0; bh < nbh; bh++) memcpy(dst + ((size_t)bh * n_in + k) * w, p + (size_t)bh * w, sizeof(float) * w);
        }
        free(fill);
    }
    free(c);
    return st;
}
