/* costmodel.c - the planner's cost model (costmodel.h, docs/planner.md):
 * rates, tile counts, the ring (full attention) and a training step; the
 * Combiner heads are in costmodel_combiner.c. Pure: no MPI. The ring's step
 * structure, piece sizes and tile grid follow src/heads/ring_attn.c and
 * src/kernels/attn.c; memory comes from the real plans (ra_model_plan_bytes,
 * ra_plan for the heads' buffers). */
#include "ringattn/costmodel.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "costmodel_internal.h"
#include "ringattn/attn.h"
#include "ringattn/layout.h"
#include "ringattn/model.h"
#include "ringattn/plan.h"
#include "ringattn/reduce_scatter.h"
#include "ringattn/ring.h"

/* attn.c's tiles (FWD_TQ, FWD_TK, BWD_TQ, BWD_TK, FWD_SUB) and the rank
 * sample (SAMPLE), shared with costmodel_combiner.c: costmodel_internal.h. */
/* Time per pair of the forward's groups of FWD_SUB rows over that of a
 * 256 x 512 tile (the calibrated rate): their products are 16 rows, not
 * 256. Measured as a causal square block's time against a bidirectional
 * one of the same size (n = 512-4096, one thread, medians 1.2-1.25 on the
 * AMD EPYC guest; docs/planner.md). */
#define FWD_SUB_COST 1.2
/* A zigzag piece at P > 1 is two ranges of the owner's rows (early and late
 * tokens). 1: the kernels would get the piece as one key block, so a key
 * tile could hold both ranges and the backward compute its masked half too;
 * 0: one key block per range, as ring_attn.c's group_heads calls them. */
enum { PIECE_ONE_BLOCK = 0 };
/* The backward's last partial goes out in min(TAIL_PARTS, B*Hkv) messages as
 * it is computed (ring_attn.c): the last one's transfer is exposed. */
enum { TAIL_PARTS = 4 };

/* ---- rates ------------------------------------------------------------------ */

void ra_cm_default_rates(ra_cm_rates *r)
{
    *r = (ra_cm_rates){ .sgemm_gflops = 60, .attn_fwd_gflops = 30, .attn_bwd_gflops = 20, .mem_gbs = 8,
                        .link_gbps = 100, .link_lat_us = 2, .shm_gbps = 40, .shm_lat_us = 1, .threads = 2,
                        .calibrated = 0 };
}

typedef struct {
    const char *key;
    size_t off;
    int is_int, optional;
} rate_key;

static const rate_key keys[] = {
    { "threads", offsetof(ra_cm_rates, threads), 1, 0 },
    { "sgemm_gflops", offsetof(ra_cm_rates, sgemm_gflops), 0, 0 },
    { "attn_fwd_gflops", offsetof(ra_cm_rates, attn_fwd_gflops), 0, 0 },
    { "attn_bwd_gflops", offsetof(ra_cm_rates, attn_bwd_gflops), 0, 0 },
    { "mem_gbs", offsetof(ra_cm_rates, mem_gbs), 0, 0 },
    { "link_gbps", offsetof(ra_cm_rates, link_gbps), 0, 0 },
    { "link_latency_us", offsetof(ra_cm_rates, link_lat_us), 0, 0 },
    { "shm_gbps", offsetof(ra_cm_rates, shm_gbps), 0, 0 },
    { "shm_latency_us", offsetof(ra_cm_rates, shm_lat_us), 0, 0 },
    { "layer_pass_gbs", offsetof(ra_cm_rates, layer_pass_gbs), 0, 1 },
    { "fixed_op_gflops", offsetof(ra_cm_rates, fixed_op_gflops), 0, 1 },
    { "axial_op_gflops", offsetof(ra_cm_rates, axial_op_gflops), 0, 1 },
    { "logsparse_op_gflops", offsetof(ra_cm_rates, logsparse_op_gflops), 0, 1 },
    { "row_fwd_pairs", offsetof(ra_cm_rates, row_fwd_pairs), 0, 1 },
    { "row_bwd_pairs", offsetof(ra_cm_rates, row_bwd_pairs), 0, 1 },
    { "link_cpu_s_per_gb", offsetof(ra_cm_rates, link_cpu_s_per_gb), 0, 1 },
};
enum { NKEYS = sizeof keys / sizeof *keys };

ra_status ra_cm_rates_parse(ra_cm_rates *out, const char *text, const char *name)
{
    ra_cm_rates r;
    ra_cm_default_rates(&r);
    int seen[NKEYS] = { 0 }, line = 0;
    for (const char *p = text; *p;) {
        const char *e = strchr(p, '\n');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        line++;
        char buf[256];
        if (n >= sizeof buf) return RA_FAIL(RA_ERR_FORMAT, "%s:%d: line too long for a rates file", name, line);
        memcpy(buf, p, n);
        buf[n] = 0;
        p += n + (e != NULL);
        char *h = strchr(buf, '#');
        if (h) *h = 0;
        char *s = buf;
        while (*s == ' ' || *s == '\t' || *s == '\r') s++;
        if (!*s) continue;
        char *eq = strchr(s, '=');
        if (!eq) return RA_FAIL(RA_ERR_FORMAT, "%s:%d: expected 'key = value' in a rates file", name, line);
        char *ke = eq;
        while (ke > s && (ke[-1] == ' ' || ke[-1] == '\t')) ke--;
        *ke = 0;
        int k = -1;
        for (int i = 0; i < NKEYS; i++)
            if (!strcmp(s, keys[i].key)) k = i;
        if (k < 0) return RA_FAIL(RA_ERR_FORMAT, "%s:%d: unknown key '%.40s' in a rates file", name, line, s);
        if (seen[k]) return RA_FAIL(RA_ERR_FORMAT, "%s:%d: key '%s' given twice", name, line, keys[k].key);
        seen[k] = 1;
        char *v = eq + 1, *end;
        while (*v == ' ' || *v == '\t') v++; /* the value as written, in the message */
        double x = strtod(v, &end);
        while (*end == ' ' || *end == '\t' || *end == '\r') end++;
        const size_t digits = strspn(v, "+-0123456789.eE"); /* decimal: strtod's hex (0x10) refused */
        const int number = end != v && !*end &&
                           (v[digits] == '\0' || v[digits] == ' ' || v[digits] == '\t' || v[digits] == '\r');
        if (keys[k].is_int) { /* threads = 0 was told the doubles' range, 1e-06 to 1e+12 */
            if (!number || !(x >= 1) || x != floor(x) || x > 1 << 20)
                return RA_FAIL(RA_ERR_FORMAT, "%s:%d: %s needs a whole number from 1 to %d (got '%.40s')", name,
                               line, keys[k].key, 1 << 20, v);
            *(int *)((char *)&r + keys[k].off) = (int)x;
        } else {
            if (!number || !(x >= RA_CM_VALUE_MIN && x <= RA_CM_VALUE_MAX)) /* NaN fails too */
                return RA_FAIL(RA_ERR_FORMAT, "%s:%d: %s needs a number from %g to %g (got '%.40s')", name, line,
                               keys[k].key, RA_CM_VALUE_MIN, RA_CM_VALUE_MAX, v);
            *(double *)((char *)&r + keys[k].off) = x;
        }
    }
    for (int i = 0; i < NKEYS; i++)
        if (!seen[i] && !keys[i].optional)
            return RA_FAIL(RA_ERR_FORMAT, "%s: the rates file lacks '%s'", name, keys[i].key);
    r.calibrated = 1;
    *out = r;
    return RA_OK;
}

int ra_cm_rates_text(const ra_cm_rates *r, char *out, size_t cap)
{
    size_t n = 0;
    int w = snprintf(out, cap, "# ringattn plan rates (per rank at `threads` threads)\n");
    for (int i = 0; i < NKEYS && w >= 0; i++) {
        n += (size_t)w;
        w = 0;
        if (keys[i].optional && *(const double *)((const char *)r + keys[i].off) <= 0) continue; /* not set */
        if (keys[i].is_int) w = snprintf(out + (n < cap ? n : cap), n < cap ? cap - n : 0, "%s = %d\n",
                                         keys[i].key, *(const int *)((const char *)r + keys[i].off));
        else w = snprintf(out + (n < cap ? n : cap), n < cap ? cap - n : 0, "%s = %.6g\n", keys[i].key,
                          *(const double *)((const char *)r + keys[i].off));
    }
    return w < 0 ? w : (int)(n + (size_t)w);
}

/* ---- helpers ---------------------------------------------------------------- */

int ra_cm_ring_size(const ra_cm_setup *s) { return s->dp > 1 ? s->P / s->dp : s->P; }

/* Does the ring run inside one node (shared memory)? */
static int ring_in_node(const ra_cm_setup *s)
{
    const int P = ra_cm_ring_size(s), rpn = s->ranks_per_node > 0 ? s->ranks_per_node : s->P;
    return P <= rpn && s->P <= rpn;
}

double ra_cm_transfer_s(const ra_cm_setup *s, const ra_cm_rates *r, double bytes)
{
    const int one_node = ring_in_node(s);
    const double gbps = one_node ? r->shm_gbps : r->link_gbps, lat = one_node ? r->shm_lat_us : r->link_lat_us;
    return bytes * 8.0 / (gbps * 1e9) + lat * 1e-6;
}

/* The compute a rank loses to one ring transfer of `bytes` across nodes,
 * sent to one neighbour while the same comes from the other: with one rank
 * a node both go through its TCP stack, with more a node's edge ranks carry
 * one of the two (0 inside a node: shared memory costs no more than the
 * copies the model already has). */
static double link_cpu_s(const ra_cm_setup *s, const ra_cm_rates *r, double bytes)
{
    if (ring_in_node(s) || r->link_cpu_s_per_gb <= 0) return 0;
    return (s->ranks_per_node == 1 ? 2 : 1) * bytes * 1e-9 * r->link_cpu_s_per_gb;
}

/* Same for a collective over all s->P ranks (the gradient all-reduce). */
static double world_link(const ra_cm_setup *s, const ra_cm_rates *r, double *lat)
{
    const int rpn = s->ranks_per_node > 0 ? s->ranks_per_node : s->P;
    const int one_node = s->P <= rpn;
    *lat = (one_node ? r->shm_lat_us : r->link_lat_us) * 1e-6;
    return (one_node ? r->shm_gbps : r->link_gbps) * 1e9 / 8.0; /* bytes/s */
}

void ra_cm_ring_pieces(int64_t L, int P, ra_layout layout, int chunk_opt, int *nc, int *chunk_out)
{
    int64_t maxL = 0;
    for (int q = 0; q < P; q++) {
        int64_t c = ra_layout_count(layout, L, P, q);
        if (c > maxL) maxL = c;
    }
    if (maxL < 1) maxL = 1;
    int64_t chunk = chunk_opt > 0 ? chunk_opt : (P == 1 ? maxL : (maxL + 7) / 8);
    if (chunk_opt == 0 && chunk < 512) chunk = 512;
    if (chunk > maxL) chunk = maxL;
    *nc = (int)((maxL + chunk - 1) / chunk);
    *chunk_out = (int)((maxL + *nc - 1) / *nc);
}

/* ---- pieces and their tile pairs ---------------------------------------------- */

ra_cm_piece ra_cm_piece_rows(ra_layout lay, int64_t L, int P, int nc, int o, int k)
{
    const int64_t Lo = ra_layout_count(lay, L, P, o);
    ra_cm_piece pc = { { 0, 0 }, { 0, 0 } };
    if (lay == RA_LAYOUT_ZIGZAG && P > 1) { /* half early, half late tokens */
        const int64_t S = (int64_t)(o + 1) * L / (2 * (int64_t)P) - (int64_t)o * L / (2 * (int64_t)P);
        pc.first[0] = (int64_t)k * S / nc;
        pc.n[0] = (int64_t)(k + 1) * S / nc - pc.first[0];
        pc.first[1] = S + (int64_t)k * (Lo - S) / nc;
        pc.n[1] = S + (int64_t)(k + 1) * (Lo - S) / nc - pc.first[1];
    } else {
        pc.first[0] = (int64_t)k * Lo / nc;
        pc.n[0] = (int64_t)(k + 1) * Lo / nc - pc.first[0];
    }
    return pc;
}

/* The owner's local row of key j (0 <= j < n[0] + n[1]) of a piece. */
static int64_t piece_row(const ra_cm_piece *pc, int64_t j)
{
    return j < pc->n[0] ? pc->first[0] + j : pc->first[1] + (j - pc->n[0]);
}

/* The first local row of rank r whose global position is >= x (the count
 * of rank r's tokens when none is): the inverse of ra_layout_global, which
 * rises with the local index in every layout. O(1). */
static int64_t first_at_or_after(ra_layout lay, int64_t L, int P, int r, int64_t x)
{
    const int64_t n = ra_layout_count(lay, L, P, r);
    int64_t f = 0;
    switch (lay) {
    case RA_LAYOUT_CONTIGUOUS: f = x - (int64_t)r * L / P; break;
    case RA_LAYOUT_STRIPED: f = x <= r ? 0 : (x - r + P - 1) / P; break;
    case RA_LAYOUT_ZIGZAG: { /* chunk r = [a0, a1), then chunk 2P-1-r = [b0, b1) */
        const int64_t P2 = 2 * (int64_t)P, c2 = P2 - 1 - r;
        const int64_t a0 = r * L / P2, a1 = (r + 1) * L / P2, b0 = c2 * L / P2;
        f = x <= a1 ? x - a0 : (a1 - a0) + (x > b0 ? x - b0 : 0);
        break;
    }
    }
    return f < 0 ? 0 : f > n ? n : f;
}

/* Keys of rows [a, a+n) of rank kr at global positions <= x. O(1). */
static int64_t keys_le(ra_layout lay, int64_t L, int P, int kr, int64_t a, int64_t n, int64_t x)
{
    const int64_t f = first_at_or_after(lay, L, P, kr, x + 1) - a;
    return f < 0 ? 0 : f > n ? n : f;
}

/* The tiles attn.c computes for query rows [qa, qa+qn) of rank qr against
 * piece pc of rank kr (tq x tk tiles from the first row and key; causal: a
 * tile whose first key follows its last query is skipped, one whose last key
 * precedes its first query is full, the rest partial), in (query, key) pairs:
 *   full:     the full tiles (all pairs when bidirectional)
 *   part:     the partial tiles, whole
 *   part_sub: the partial tiles as the forward computes them (sub > 0): per
 *             group of sub rows, the keys up to the group's last query.
 * Sums, not walks (ra_cm_tile_pairs_walk is the walk):
 *   full + part: per key tile, the query tiles from the one holding the
 *             first row at or after its first key; full: those from the
 *             first tile starting at or after its last key. O(key tiles).
 *   full + part_sub: the groups cut the keys the same way whatever the key
 *             tiles, so it is the sum over groups of rows x keys at or before
 *             the group's last query: per range of the piece, groups before
 *             its first key add 0, groups past its last add all of it, the
 *             groups between are summed. O(query groups inside the span).
 * sub divides tq (attn.c: 64 | 256), so the groups are every sub rows. */
ra_cm_tiles ra_cm_tile_pairs_range(ra_layout lay, int64_t L, int P, int qr, int64_t qa, int64_t qn, int kr,
                                   const ra_cm_piece *pc, int causal, int tq, int tk, int sub)
{
    ra_cm_tiles t = { 0, 0, 0 };
    const int64_t kn = pc->n[0] + pc->n[1];
    if (qn <= 0 || kn <= 0) return t;
    if (!causal) {
        t.full = (double)qn * kn;
        return t;
    }
    double seen = 0; /* full + part */
    for (int64_t j = 0; j < kn; j += tk) {
        const int64_t nj = kn - j < tk ? kn - j : tk;
        const int64_t kmin = ra_layout_global(lay, L, P, kr, piece_row(pc, j));
        const int64_t kmax = ra_layout_global(lay, L, P, kr, piece_row(pc, j + nj - 1));
        const int64_t f = first_at_or_after(lay, L, P, qr, kmin) - qa;  /* first query row seeing it */
        const int64_t ff = first_at_or_after(lay, L, P, qr, kmax) - qa; /* first row seeing all of it */
        if (f < qn) seen += (double)nj * (double)(qn - (f <= 0 ? 0 : f / tq * tq));
        const int64_t from = ff <= 0 ? 0 : (ff + tq - 1) / tq * tq; /* the first tile starting there */
        if (from < qn) t.full += (double)nj * (double)(qn - from);
    }
    t.part = seen - t.full;
    if (sub <= 0) {
        t.part_sub = t.part;
        return t;
    }
    double groups = 0; /* full + part_sub */
    for (int i = 0; i < 2; i++) {
        const int64_t a = pc->first[i], n = pc->n[i];
        if (n <= 0) continue;
        const int64_t lo = ra_layout_global(lay, L, P, kr, a), hi = ra_layout_global(lay, L, P, kr, a + n - 1);
        const int64_t flo = first_at_or_after(lay, L, P, qr, lo) - qa; /* first row seeing a key */
        if (flo >= qn) continue;
        const int64_t fhi = first_at_or_after(lay, L, P, qr, hi) - qa; /* first row seeing all */
        const int64_t g0 = flo <= 0 ? 0 : flo / sub, g1 = fhi >= qn ? (qn + sub - 1) / sub : fhi <= 0 ? 0 : fhi / sub;
        if (g1 * sub < qn) groups += (double)n * (double)(qn - g1 * sub);
        for (int64_t g = g0; g < g1; g++) {
            const int64_t end = (g + 1) * sub < qn ? (g + 1) * sub : qn;
            const int64_t qmax = ra_layout_global(lay, L, P, qr, qa + end - 1);
            groups += (double)(end - g * sub) * (double)keys_le(lay, L, P, kr, a, n, qmax);
        }
    }
    t.part_sub = groups - t.full;
    return t;
}

/* The same counts as attn.c walks the tiles: every (query tile, key tile),
 * its kind from the position ranges, a partial tile's groups of sub rows
 * by counting the keys each group's last query sees. The tests' reference. */
static ra_cm_tiles tile_pairs_walk(ra_layout lay, int64_t L, int P, int qr, int64_t qa, int64_t qn, int kr,
                                   const ra_cm_piece *pc, int causal, int tq, int tk, int sub)
{
    ra_cm_tiles t = { 0, 0, 0 };
    const int64_t kn = pc->n[0] + pc->n[1];
    for (int64_t i = 0; i < qn && kn > 0; i += tq) {
        const int64_t ni = qn - i < tq ? qn - i : tq;
        const int64_t qmin = ra_layout_global(lay, L, P, qr, qa + i);
        const int64_t qmax = ra_layout_global(lay, L, P, qr, qa + i + ni - 1);
        for (int64_t j = 0; j < kn; j += tk) {
            const int64_t nj = kn - j < tk ? kn - j : tk;
            const int64_t kmin = ra_layout_global(lay, L, P, kr, piece_row(pc, j));
            const int64_t kmax = ra_layout_global(lay, L, P, kr, piece_row(pc, j + nj - 1));
            if (causal && kmin > qmax) continue; /* empty */
            if (!causal || kmax <= qmin) {       /* full */
                t.full += (double)ni * nj;
                continue;
            }
            t.part += (double)ni * nj;
            for (int64_t g = 0; g < ni; g += sub > 0 ? sub : ni) {
                const int64_t b = sub > 0 && ni - g > sub ? sub : ni - g;
                const int64_t gmax = ra_layout_global(lay, L, P, qr, qa + i + g + b - 1);
                int64_t vis = 0;
                for (int64_t x = j; x < j + nj; x++) vis += ra_layout_global(lay, L, P, kr, piece_row(pc, x)) <= gmax;
                t.part_sub += (double)b * (double)(sub > 0 ? vis : nj);
            }
        }
    }
    return t;
}

ra_cm_tiles ra_cm_tile_pairs(ra_layout lay, int64_t L, int P, int r, int o, const ra_cm_piece *pc, int causal,
                             int tq, int tk, int sub)
{
    return ra_cm_tile_pairs_range(lay, L, P, r, 0, ra_layout_count(lay, L, P, r), o, pc, causal, tq, tk, sub);
}

ra_cm_tiles ra_cm_tile_pairs_walk(ra_layout lay, int64_t L, int P, int r, int o, const ra_cm_piece *pc, int causal,
                                  int tq, int tk, int sub)
{
    return tile_pairs_walk(lay, L, P, r, 0, ra_layout_count(lay, L, P, r), o, pc, causal, tq, tk, sub);
}

/* Forward and backward tile work in pair equivalents at the calibrated
 * (256 x 512 tile) rate: the forward's partial tiles run as groups of 64
 * rows whose two sgemms are smaller and slower per pair (FWD_SUB_COST). */
double ra_cm_fwd_pairs(ra_cm_tiles t) { return t.full + FWD_SUB_COST * t.part_sub; }
double ra_cm_bwd_pairs(ra_cm_tiles t) { return t.full + t.part; }

/* Ranks (or ring distances) to evaluate and the weight of each. */
int ra_cm_sample_set(int P, int first, int *idx, double *w)
{
    int n = P - first;
    if (n <= 0) return 0;
    if (n <= SAMPLE) {
        for (int i = 0; i < n; i++) idx[i] = first + i, w[i] = 1;
        return n;
    }
    for (int i = 0; i < SAMPLE; i++) {
        idx[i] = first + (int)((int64_t)i * (n - 1) / (SAMPLE - 1));
        w[i] = (double)n / SAMPLE;
    }
    return SAMPLE;
}

static size_t ring_head_bytes(const ra_cm_attn *a, int P, int64_t Lr, int chunk, int threads)
{
    /* the plan of ra_ring_create and the first backward (ring_attn.c) */
    ra_plan plan = RA_PLAN_INIT;
    int32_t *i32;
    float *f;
    const size_t rows = (size_t)a->B * a->H * Lr;
    const size_t piece = 2 * (size_t)a->B * a->Hkv * chunk * a->D + (size_t)a->B * chunk;
    const size_t dkv = 2 * (size_t)a->B * a->Hkv * chunk * a->D;
    RA_PLAN_ADD(&plan, i32, (size_t)Lr);
    RA_PLAN_ADD(&plan, i32, (size_t)chunk);
    for (int i = 0; i < 3; i++) RA_PLAN_ADD(&plan, f, rows);
    if (P > 1) {
        for (int i = 0; i < RA_RING_PIECE_BUFFERS; i++) RA_PLAN_ADD(&plan, f, piece);
        for (int i = 0; i < RA_RING_DKV_BUFFERS; i++) RA_PLAN_ADD(&plan, f, dkv);
    }
    size_t per = (ra_attn_scratch_floats(a->D) + 15) / 16 * 16, sf = ra_attn_scratch_floats_threads(a->D, threads);
    if (sf < per * (size_t)threads) sf = per * (size_t)threads;
    RA_PLAN_ADD(&plan, f, sf);
    size_t total = plan.total + sizeof(int64_t) * (size_t)P;
    ra_plan_discard(&plan);
    (void)i32, (void)f;
    return total;
}

/* ---- the ring (full attention) ----------------------------------------------- */

/* Sums over the ring's steps: step time, transfer time, and per sampled
 * rank its waits and compute. */
typedef struct {
    double Tf, Tb, xf, xb, imb;
    double *waitf, *waitb, *tot;
    int nr;
} step_sum;

/* A step (or two, as one: then per rank c1 + c2) of weight w: its times Tf,
 * Tb and transfers xf, xb; mf, mb the busiest rank's compute; per rank the
 * compute c1f/c1b (+ c2f/c2b when not NULL). */
static void add_step(step_sum *A, double w, double Tf, double Tb, double xf, double xb, double mf, double mb,
                     const double *c1f, const double *c1b, const double *c2f, const double *c2b)
{
    A->Tf += w * Tf, A->Tb += w * Tb, A->xf += w * xf, A->xb += w * xb;
    double worst = 0; /* the imbalance of this step, on the rank that waits the most for it */
    for (int i = 0; i < A->nr; i++) {
        const double f = c1f[i] + (c2f ? c2f[i] : 0), b = c1b[i] + (c2b ? c2b[i] : 0);
        A->waitf[i] += w * (Tf - f);
        A->waitb[i] += w * (Tb - b);
        A->tot[i] += w * (f + b);
        if ((mf - f) + (mb - b) > worst) worst = (mf - f) + (mb - b);
    }
    A->imb += w * worst;
}

static ra_status ring_time(const ra_cm_attn *a, const ra_cm_setup *s, const ra_cm_rates *rt, ra_cm_attn_cost *c)
{
    const int P = ra_cm_ring_size(s);
    const int64_t L = a->L;
    const ra_layout lay = s->layout;
    int nc, chunk;
    ra_cm_ring_pieces(L, P, lay, s->chunk, &nc, &chunk);
    c->nc = nc, c->chunk = chunk, c->steps = P * nc;
    int *rk = malloc(sizeof(int) * 2 * (SAMPLE + 2));
    double *rw = malloc(sizeof(double) * 2 * (SAMPLE + 2));
    double *fw = malloc(sizeof(double) * (SAMPLE + 2) * 2);
    if (!rk || !rw || !fw) {
        free(rk), free(rw), free(fw);
        return RA_FAIL(RA_ERR_NOMEM, "cost model: out of memory");
    }
    int *tk = rk + SAMPLE + 2;
    double *tw = rw + SAMPLE + 2, *waitf = fw, *waitb = fw + SAMPLE + 2;
    const int nr = ra_cm_sample_set(P, 0, rk, rw);
    int nt = 0;
    tk[nt] = 0, tw[nt++] = 1; /* own pieces */
    nt += ra_cm_sample_set(P, 1, tk + 1, tw + 1);
    const double ff = 4.0 * a->D * a->B * a->H / (rt->attn_fwd_gflops * 1e9);
    const double fb = 10.0 * a->D * a->B * a->H / (rt->attn_bwd_gflops * 1e9);
    const double memr = rt->mem_gbs * 1e9;
    const double kvb = 2.0 * a->B * a->Hkv * chunk * a->D * 4; /* one piece's K and V */
    for (int i = 0; i < nr; i++) waitf[i] = waitb[i] = 0;
    /* per sampled rank: this step's compute (cf, cb), that of a step whose
     * successor's piece went ahead (pf, pb), the totals */
    double *cf = malloc(sizeof(double) * 4 * nr), *tot = calloc(nr, sizeof(double));
    if (!cf || !tot) {
        free(rk), free(rw), free(fw), free(cf), free(tot);
        return RA_FAIL(RA_ERR_NOMEM, "cost model: out of memory");
    }
    double *cb = cf + nr, *pf = cb + nr, *pb = pf + nr;
    step_sum A = { .nr = nr, .waitf = waitf, .waitb = waitb, .tot = tot };
    /* ring_attn.c's schedule: a held piece moves on during the step that
     * computes it (t = 1..P-2, and the first own piece); every later own piece
     * goes ahead, during the step before (t = P-1) and its own; in the
     * backward a partial moves during the step after the one that computed
     * it (none after t = 0) */
    const double x_kv = P > 1 ? ra_cm_transfer_s(s, rt, kvb) : 0, x_dkv = x_kv; /* dK, dV: K, V's bytes */
    const double cpu_kv = P > 1 ? link_cpu_s(s, rt, kvb) : 0;
    double pmf = 0, pmb = 0, pxd = 0, pw = 0;
    int pending = 0;
    for (int k = 0; k < nc; k++)
        for (int ti = 0; ti < nt; ti++) { /* t = 0 first: it closes the pair the last round's t = P-1 opened */
            const int t = tk[ti];
            /* the transfers that end with this step, and whether own piece k+1 goes ahead now */
            const double xd = P > 1 && (t >= 2 || (t == 0 && k > 0)) ? x_dkv : 0;
            const double xk = P > 1 && t < P - 1 && (t > 0 || k == 0) ? x_kv : 0;
            const int ahead = P > 1 && t == P - 1 && k < nc - 1;
            /* the TCP work of the step's transfers, on the cores that compute */
            const double cpu_f = xk > 0 || ahead ? cpu_kv : 0, cpu_b = cpu_f + (xd > 0 ? cpu_kv : 0);
            double mf = 0, mb = 0;
            for (int i = 0; i < nr; i++) {
                const int r = rk[i], o = ((r - t) % P + P) % P;
                const ra_cm_piece pc = ra_cm_piece_rows(lay, L, P, nc, o, k);
                const int64_t kn = pc.n[0] + pc.n[1];
                double af = 0, ab = 0;
                if (PIECE_ONE_BLOCK) {
                    af = ra_cm_fwd_pairs(ra_cm_tile_pairs(lay, L, P, r, o, &pc, a->causal, FWD_TQ, FWD_TK, FWD_SUB));
                    ab = ra_cm_bwd_pairs(ra_cm_tile_pairs(lay, L, P, r, o, &pc, a->causal, BWD_TQ, BWD_TK, 0));
                } else {
                    for (int h = 0; h < 2; h++) {
                        if (pc.n[h] == 0) continue;
                        const ra_cm_piece half = { { pc.first[h], 0 }, { pc.n[h], 0 } };
                        af += ra_cm_fwd_pairs(
                            ra_cm_tile_pairs(lay, L, P, r, o, &half, a->causal, FWD_TQ, FWD_TK, FWD_SUB));
                        ab += ra_cm_bwd_pairs(ra_cm_tile_pairs(lay, L, P, r, o, &half, a->causal, BWD_TQ, BWD_TK, 0));
                    }
                }
                cf[i] = af * ff + cpu_f;
                /* the backward's passes over the piece's partial: zero, add, pack */
                const double pb_ = 2.0 * a->B * a->Hkv * kn * a->D * 4;
                /* (an own split piece runs in a partial too, added home after) */
                cb[i] = ab * fb + (t == 0 && pc.n[1] == 0 ? 2 * pb_ : 4 * pb_) / memr + cpu_b;
                if (cf[i] > mf) mf = cf[i];
                if (cb[i] > mb) mb = cb[i];
            }
            if (ahead) {
                memcpy(pf, cf, sizeof(double) * nr), memcpy(pb, cb, sizeof(double) * nr);
                pmf = mf, pmb = mb, pxd = xd, pw = tw[ti], pending = 1;
                continue;
            }
            if (pending && t == 0) { /* the pair: t = P-1 of round k-1 and t = 0 of round k */
                add_step(&A, 1, fmax(pmf + mf, x_kv), fmax(fmax(pmb, pxd) + fmax(mb, xd), pxd + xd + x_kv), x_kv,
                         x_kv + pxd + xd, pmf + mf, pmb + mb, pf, pb, cf, cb);
                if (pw > 1) /* a sampled distance: the rest of its weight, alone */
                    add_step(&A, pw - 1, pmf, fmax(pmb, pxd), 0, pxd, pmf, pmb, pf, pb, NULL, NULL);
                pending = 0;
                continue;
            }
            add_step(&A, tw[ti], fmax(mf, xk), fmax(mb, xk + xd), xk, xk + xd, mf, mb, cf, cb, NULL, NULL);
        }
    double Tf = A.Tf, Tb = A.Tb, xf = A.xf, xb = A.xb, imb = A.imb, sumc = 0;
    /* the calls' own passes: forward init/finish over acc, m, l; backward
     * rowdot, zeroing dq/dk/dv, split_lse (largest rank) */
    int64_t Lmax = 0;
    for (int i = 0; i < nr; i++) {
        int64_t x = ra_layout_count(lay, L, P, rk[i]);
        if (x > Lmax) Lmax = x;
    }
    const double q = (double)a->B * a->H * Lmax * a->D * 4, kv = (double)a->B * a->Hkv * Lmax * a->D * 4;
    double wmax_tail = 0;
    Tf += 3 * q / memr;
    Tb += (3 * q + 2 * kv) / memr;
    if (P > 1) { /* the last part of the last partial, after every rank's compute */
        /* int64: B and Hkv may each be 65536 (an int product wrapped to 0) */
        const int64_t groups = (int64_t)a->B * a->Hkv, parts = groups < TAIL_PARTS ? groups : TAIL_PARTS;
        const double tail = ra_cm_transfer_s(s, rt, kvb * ((double)(groups - (parts - 1) * groups / parts) / groups));
        Tb += tail;
        xb += x_dkv; /* the whole last partial moves; only its last part is exposed */
        wmax_tail = tail;
    }
    /* the most any rank waits; the least: the busiest rank's (its compute is
     * the call's time less that) */
    double wmaxf = 0, wmaxb = 0, wminf = INFINITY, wminb = INFINITY, cmax = 0, csum = 0, wsum = 0;
    for (int i = 0; i < nr; i++) {
        if (waitf[i] > wmaxf) wmaxf = waitf[i];
        if (waitb[i] > wmaxb) wmaxb = waitb[i];
        if (waitf[i] < wminf) wminf = waitf[i];
        if (waitb[i] < wminb) wminb = waitb[i];
        if (tot[i] > cmax) cmax = tot[i];
        csum += rw[i] * tot[i], wsum += rw[i];
    }
    wmaxb += wmax_tail; /* every rank waits for its last partial */
    wminb += wmax_tail;
    sumc = csum / (wsum > 0 ? wsum : 1);
    c->fwd_s = Tf, c->bwd_s = Tb;
    c->fwd_wait_s = wmaxf, c->bwd_wait_s = wmaxb;
    c->fwd_comm_s = xf, c->bwd_comm_s = xb;
    c->fwd_compute_s = Tf - wminf, c->bwd_compute_s = Tb - wminb; /* (Tf - wmaxf was the lightest rank's) */
    c->imbalance_s = imb;
    c->balance = cmax > 0 ? sumc / cmax : 1;
    c->bytes_sent = P > 1 ? (double)(P - 1) * nc * kvb * 3 : 0; /* K, V forward; K, V and dK, dV backward */
    /* the piece buffers hold the longest piece (ring_attn.c): a split zigzag
     * piece may be one token over ceil(maxL / nc) */
    int longest = chunk;
    for (int o = 0; o < P && lay == RA_LAYOUT_ZIGZAG && P > 1; o++)
        for (int k = 0; k < nc; k++) {
            const ra_cm_piece pc = ra_cm_piece_rows(lay, L, P, nc, o, k);
            if (pc.n[0] + pc.n[1] > longest) longest = (int)(pc.n[0] + pc.n[1]);
        }
    c->head_bytes = ring_head_bytes(a, P, Lmax, longest, rt->threads);
    free(rk), free(rw), free(fw), free(cf), free(tot);
    return RA_OK;
}

ra_status ra_cm_attn_time(const ra_cm_attn *a, const ra_cm_setup *s, const ra_cm_rates *r, ra_cm_attn_cost *out)
{
    *out = (ra_cm_attn_cost){ 0 };
    if (s->P < 1) return RA_FAIL(RA_ERR_ARG, "cost model: -n %d: need at least one rank", s->P);
    if (s->dp > 1 && s->P % s->dp)
        return RA_FAIL(RA_ERR_ARG, "cost model: --dp %d does not divide -n %d", s->dp, s->P);
    if (a->B < 1 || a->H < 1 || a->Hkv < 1 || a->D < 1 || a->H % a->Hkv || a->L < 1)
        return RA_FAIL(RA_ERR_ARG, "cost model: bad shape B=%d H=%d Hkv=%d D=%d L=%lld", a->B, a->H, a->Hkv, a->D,
                       (long long)a->L);
    if (!(r->attn_fwd_gflops > 0 && r->attn_bwd_gflops > 0 && r->mem_gbs > 0 && r->sgemm_gflops > 0 &&
          r->link_gbps > 0 && r->shm_gbps > 0 && r->threads > 0))
        return RA_FAIL(RA_ERR_ARG, "cost model: every rate must be positive");
    if (a->head == RA_HEAD_FULL) return ring_time(a, s, r, out);
    return ra_cm_combiner_time(a, s, r, out);
}

/* ---- a training step ------------------------------------------------------------- */

ra_status ra_cm_train_check(const ra_config *cfg, const ra_cm_setup *s)
{
    if (s->P < 1) return RA_FAIL(RA_ERR_ARG, "cost model: -n %d: need at least one rank", s->P);
    const int dp = s->dp > 1 ? s->dp : 1;
    if (s->P % dp) return RA_FAIL(RA_ERR_ARG, "cost model: --dp %d does not divide -n %d", dp, s->P);
    if (cfg->seq_len < s->P / dp)
        return RA_FAIL(RA_ERR_ARG, "cost model: data.seq_len = %d is shorter than the %d ranks of a ring",
                       cfg->seq_len, s->P / dp);
    return RA_OK;
}

ra_status ra_cm_train_time(const ra_config *cfg, const ra_cm_setup *s, const ra_cm_rates *r, ra_cm_train *out)
{
    *out = (ra_cm_train){ 0 };
    RA_TRY(ra_cm_train_check(cfg, s));
    const int dp = s->dp > 1 ? s->dp : 1;
    const int P = s->P / dp;
    const int per_ring = (cfg->batch + dp - 1) / dp;
    const int micro = (per_ring + cfg->accum - 1) / cfg->accum;
    ra_config c = *cfg;
    c.layout_id = s->layout;
    c.chunk = s->chunk;
    /* the real plan, on the ranks with the most tokens */
    int64_t Lmax = 0;
    int rmax = 0;
    for (int q = 0; q < P; q++) {
        int64_t n = ra_layout_count(s->layout, cfg->seq_len, P, q);
        if (n > Lmax) Lmax = n, rmax = q;
    }
    size_t plan_bytes = 0, np = 0;
    RA_TRY(ra_model_plan_bytes(&c, micro, P, rmax, &plan_bytes, &np));
    const double N = (double)micro * Lmax, C = cfg->dim, H = cfg->heads, Hkv = cfg->kv_heads, D = cfg->head_dim;
    const double F = cfg->ffn_dim, V = cfg->vocab, HD = H * D, KD = Hkv * D;
    const double ffn_m = cfg->ffn_id == RA_FFN_SWIGLU ? 3 : 2;
    const double gemm = 1.0 / (r->sgemm_gflops * 1e9), memr = 1.0 / (r->mem_gbs * 1e9);
    const double passr = r->layer_pass_gbs > 0 ? 1.0 / (r->layer_pass_gbs * 1e9) : memr;
    /* per layer: projections and FFN (forward 2 FLOPs per MAC; backward 2x,
     * plus the FFN's recomputed forward) */
    const double lf = 2 * N * (C * HD + 2 * C * KD + HD * C + ffn_m * C * F);
    const double lb = 2 * lf + 2 * N * ffn_m * C * F * (ffn_m - 1) / ffn_m;
    /* memory-bound passes per layer (bytes): copies, norms, RoPE, head-major
     * moves, residuals, the FFN's gates; the backward about twice */
    const double ef = 4 * N * (14 * C + 6 * HD + 6 * KD + 3 * F);
    const double eb = 4 * N * (30 * C + 12 * HD + 12 * KD + 9 * F);
    double head_f = 0, head_b = 0, waits = 0, busy_waits = 0, ring_x = 0, bal_w = 0, bal_n = 0, hbytes = 0;
    for (int l = 0; l < cfg->layers; l++) {
        const ra_layer_config *lc = &cfg->layer[l];
        ra_cm_attn a = { .B = micro, .H = cfg->heads, .Hkv = cfg->kv_heads, .D = cfg->head_dim, .L = cfg->seq_len,
                         .causal = 1, .head = lc->head_id, .span = lc->span, .row = lc->row };
        ra_cm_setup ss = *s;
        static ra_cm_attn_cost ac; /* layers with the same head cost the same: computed once */
        int same = l > 0 && lc->head_id == cfg->layer[l - 1].head_id && lc->span == cfg->layer[l - 1].span &&
                   lc->row == cfg->layer[l - 1].row;
        if (!same) RA_TRY(ra_cm_attn_time(&a, &ss, r, &ac));
        head_f += ac.fwd_s, head_b += ac.bwd_s;
        waits += ac.fwd_wait_s + ac.bwd_wait_s;
        busy_waits += ac.fwd_s - ac.fwd_compute_s + ac.bwd_s - ac.bwd_compute_s; /* the busiest rank's */
        ring_x += ac.fwd_comm_s + ac.bwd_comm_s;
        if (lc->head_id == RA_HEAD_FULL) bal_w += ac.balance, bal_n++;
        hbytes += (double)ac.head_bytes;
    }
    const double L_ = cfg->layers;
    const double lm = 2 * N * C * V; /* LM head forward; backward 2x */
    const double fwd = L_ * (lf * gemm + ef * passr) + lm * gemm + 4 * N * (3 * C + 2 * V) * passr;
    const double bwd = L_ * (lb * gemm + eb * passr) + 2 * lm * gemm + 4 * N * (6 * C + 2 * V) * passr;
    const double micro_s = fwd + bwd + head_f + head_b;
    double lat, bw = world_link(s, r, &lat);
    const double gbytes = (double)np * 4;
    const double ar = s->P > 1 ? 2.0 * (s->P - 1) / s->P * gbytes / bw + 2.0 * (s->P - 1) * lat : 0;
    /* AdamW state: every parameter's (replicated), or a 1/P shard of them
     * (train.shard_optimizer, P > 1: ZeRO-1, design.md §16); the reduction
     * then is a reduce-scatter plus an all-gather, the allreduce's volume */
    const int sharded = cfg->shard_optimizer && s->P > 1;
    const double own = sharded ? ceil((double)np / s->P) : (double)np;
    const double opt = 9.0 * own * 4 * memr;
    out->allreduce_s = ar;
    out->optim_s = opt;
    out->attn_fwd_s = cfg->accum * head_f, out->attn_bwd_s = cfg->accum * head_b;
    out->step_s = cfg->accum * micro_s + ar + opt;
    out->wait_s = cfg->accum * waits;
    out->comm_s = cfg->accum * ring_x + ar;
    /* the busiest rank's: the step less its own waits (the most any rank
     * waits, wait_s, is the lightest rank's under causal imbalance) */
    out->compute_s = out->step_s - cfg->accum * busy_waits - ar;
    out->balance = bal_n > 0 ? bal_w / bal_n : 1;
    out->model_plan_bytes = plan_bytes;
    out->nparams = np;
    /* AdamW moments (2 floats per parameter) and its decay mask (1 byte) of
     * the parameters the rank updates, plus, sharded, the summed gradient of
     * its shard (4 bytes): 9n replicated, 13n/P sharded; the gradient
     * reduce-scatter's receive buffers, two rounds of the other ranks'
     * parts of the rank's shard or (replicated) of its part of the
     * all-reduce (4 min(2, P-1) n/P, reduce_scatter.h: ra_rs_bytes); the
     * session's token buffers */
    const double optim_bytes = sharded ? 13 * own : 9 * own;
    out->reduce_bytes = ra_rs_bytes(s->P, (size_t)ceil((double)np / s->P));
    out->sharded = sharded;
    out->bytes_per_rank = plan_bytes + (size_t)hbytes + (size_t)optim_bytes + out->reduce_bytes + sizeof(int32_t) * 2 * (size_t)micro * (Lmax + 1);
    out->tokens = (int64_t)cfg->batch * cfg->seq_len;
    /* ra_model_flops' count: 6 per parameter-token matmul, attention 3x its causal forward */
    const double matmul = L_ * (C * HD * 2 + C * KD * 2 + ffn_m * C * F) + C * V;
    out->flops = 6.0 * matmul * out->tokens + 3.0 * L_ * 4.0 * H * D * (double)cfg->seq_len * cfg->seq_len * 0.5 * cfg->batch;
    return RA_OK;
}
