/* ref_combiner.c - naive float64 reference for the Combiner heads (see
 * ref_combiner.h). Everything in double, one query row at a time, stable
 * softmaxes (maximum subtracted). Deliberately simple: the structure of every
 * query is an explicit list; the only economy is that a group shared by
 * several queries has its summary computed once per head evaluation. */
#include "ref_combiner.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void *xmalloc(size_t bytes)
{
    void *p = malloc(bytes ? bytes : 1);
    if (!p) {
        fprintf(stderr, "ref_combiner: out of memory (%zu bytes)\n", bytes);
        abort();
    }
    return p;
}

#define FAIL(...)                                                                       \
    do {                                                                                \
        fprintf(stderr, "ref_combiner: %s:%d: ", __FILE__, __LINE__);                   \
        fprintf(stderr, __VA_ARGS__);                                                   \
        fprintf(stderr, "\n");                                                          \
        abort();                                                                        \
    } while (0)

static const char *kind_name(ref_comb_kind k)
{
    switch (k) {
    case REF_COMB_FIXED: return "combiner-fixed";
    case REF_COMB_AXIAL: return "combiner-axial";
    case REF_COMB_LOGSPARSE: return "combiner-logsparse";
    }
    return "?";
}

static void check_cfg(const ref_comb_cfg *c)
{
    if (c->B <= 0 || c->H <= 0 || c->Hkv <= 0 || c->H % c->Hkv != 0 || c->L < 0 || c->D <= 0)
        FAIL("bad shape B=%d H=%d Hkv=%d L=%d D=%d", c->B, c->H, c->Hkv, c->L, c->D);
    switch (c->kind) {
    case REF_COMB_FIXED:
        if (c->span < 1) FAIL("combiner-fixed needs span >= 1, got %d", c->span);
        break;
    case REF_COMB_AXIAL:
        if (c->row < 1) FAIL("combiner-axial needs row >= 1, got %d", c->row);
        break;
    case REF_COMB_LOGSPARSE:
        if (!c->causal) FAIL("combiner-logsparse is causal only (causal = 0 given)");
        break;
    default:
        FAIL("unknown kind %d", (int)c->kind);
    }
}

int ref_comb_auto_len(int L)
{
    int s = 1;
    while ((long long)s * s < L) s++;
    return s;
}

static int imin(int a, int b) { return a < b ? a : b; }

/* ---- structure of one query ------------------------------------------------ */

int ref_comb_structure(const ref_comb_cfg *c, int i, int *direct, ref_comb_group *groups,
                       int *ngroups)
{
    check_cfg(c);
    const int L = c->L;
    if (i < 0 || i >= L) FAIL("query %d outside [0, %d)", i, L);
    int nd = 0, ng = 0;
    switch (c->kind) {
    case REF_COMB_FIXED: {
        const int s = c->span, si = i / s, nspans = (L + s - 1) / s;
        for (int j = si * s; j < imin(L, (si + 1) * s); j++)
            if (!c->causal || j <= i) direct[nd++] = j;
        for (int g = 0; g < nspans; g++) {
            if (g == si || (c->causal && g > si)) continue;
            groups[ng++] = (ref_comb_group){g * s, imin(L, (g + 1) * s), -1};
        }
        break;
    }
    case REF_COMB_AXIAL: {
        const int m = c->row, r = i / m, col = i % m, nrows = (L + m - 1) / m;
        for (int j = r * m; j < imin(L, (r + 1) * m); j++)
            if (!c->causal || j <= i) direct[nd++] = j;
        for (int rr = 0; rr < nrows; rr++) {
            if (rr == r || (c->causal && rr > r)) continue;
            int t = rr * m + col;
            if (t >= L) continue; /* column col does not exist in (partial) row rr */
            groups[ng++] = (ref_comb_group){rr * m, imin(L, (rr + 1) * m), t};
        }
        break;
    }
    case REF_COMB_LOGSPARSE:
        direct[nd++] = i;
        for (int l = 0; l < 31 && (i >> l) > 0; l++) {
            if (!((i >> l) & 1)) continue;
            int b = i >> l;
            groups[ng++] = (ref_comb_group){(b - 1) << l, b << l, -1};
        }
        break;
    }
    *ngroups = ng;

    /* consistency of the structure with the definitions */
    int *cnt = xmalloc((size_t)(L ? L : 1) * sizeof *cnt);
    memset(cnt, 0, (size_t)L * sizeof *cnt);
    for (int x = 0; x < nd; x++) {
        if (direct[x] < 0 || direct[x] >= L || (x && direct[x] <= direct[x - 1]))
            FAIL("%s query %d: bad direct list", kind_name(c->kind), i);
        cnt[direct[x]]++;
    }
    for (int g = 0; g < ng; g++) {
        const ref_comb_group *G = &groups[g];
        if (G->lo < 0 || G->hi > L || G->lo >= G->hi)
            FAIL("%s query %d: empty or out-of-range group [%d, %d)", kind_name(c->kind), i,
                 G->lo, G->hi);
        if (G->t >= 0 && (G->t < G->lo || G->t >= G->hi))
            FAIL("%s query %d: row summary position %d outside its row [%d, %d)",
                 kind_name(c->kind), i, G->t, G->lo, G->hi);
        for (int j = G->lo; j < G->hi; j++) cnt[j]++;
    }
    for (int j = 0; j < L; j++) {
        int allowed = !c->causal || j <= i;
        int ok = c->kind == REF_COMB_AXIAL ? (cnt[j] <= allowed) : (cnt[j] == allowed);
        if (!ok)
            FAIL("%s L=%d span=%d row=%d causal=%d: query %d covers key %d %d times "
                 "(allowed %d)%s",
                 kind_name(c->kind), L, c->span, c->row, c->causal, i, j, cnt[j], allowed,
                 c->kind == REF_COMB_LOGSPARSE ? ": the groups do not tile [0, i)" : "");
    }
    free(cnt);
    return nd;
}

/* ---- plan: the structure of every query, built once per call ----------------
 * Each row keeps its explicit direct list and its groups; a group that several
 * queries share (same keys [lo, hi), same t) is stored once in a table of
 * distinct groups, so its summary is computed once per head evaluation (the
 * summary is a function of the group alone; this only saves time). */

typedef struct {
    int nd, ng;
    int *direct;
    int *gid;          /* [ng] indices into plan.groups */
} qrow;

typedef struct {
    int L, maxd, maxg;
    qrow *rows;
    int ngroups, cap;
    ref_comb_group *groups; /* the distinct groups */
    int *hash, hcap;        /* open addressing: index into groups or -1 */
} plan;

static unsigned group_hash(const ref_comb_group *g)
{
    unsigned h = (unsigned)g->lo * 2654435761u;
    h ^= (unsigned)g->hi * 2246822519u;
    h ^= (unsigned)(g->t + 1) * 3266489917u;
    return h ^ (h >> 15);
}

static void plan_rehash(plan *p)
{
    free(p->hash);
    p->hcap = 16;
    while (p->hcap < 2 * p->cap) p->hcap *= 2;
    p->hash = xmalloc((size_t)p->hcap * sizeof *p->hash);
    for (int x = 0; x < p->hcap; x++) p->hash[x] = -1;
    for (int n = 0; n < p->ngroups; n++) {
        unsigned x = group_hash(&p->groups[n]) & (unsigned)(p->hcap - 1);
        while (p->hash[x] >= 0) x = (x + 1) & (unsigned)(p->hcap - 1);
        p->hash[x] = n;
    }
}

static int plan_group_id(plan *p, const ref_comb_group *g)
{
    unsigned x = group_hash(g) & (unsigned)(p->hcap - 1);
    for (; p->hash[x] >= 0; x = (x + 1) & (unsigned)(p->hcap - 1)) {
        const ref_comb_group *h = &p->groups[p->hash[x]];
        if (h->lo == g->lo && h->hi == g->hi && h->t == g->t) return p->hash[x];
    }
    if (p->ngroups == p->cap) {
        p->cap *= 2;
        ref_comb_group *grown = realloc(p->groups, (size_t)p->cap * sizeof *grown);
        if (!grown) FAIL("out of memory for %d groups", p->cap);
        p->groups = grown;
        p->groups[p->ngroups++] = *g;
        plan_rehash(p);
        return p->ngroups - 1;
    }
    p->groups[p->ngroups] = *g;
    p->hash[x] = p->ngroups;
    return p->ngroups++;
}

static plan plan_build(const ref_comb_cfg *c)
{
    check_cfg(c);
    plan p = {.L = c->L, .cap = 64};
    p.groups = xmalloc((size_t)p.cap * sizeof *p.groups);
    plan_rehash(&p);
    p.rows = xmalloc((size_t)(c->L ? c->L : 1) * sizeof *p.rows);
    int *d = xmalloc((size_t)(c->L ? c->L : 1) * sizeof *d);
    ref_comb_group *g = xmalloc((size_t)(c->L ? c->L : 1) * sizeof *g);
    for (int i = 0; i < c->L; i++) {
        qrow *r = &p.rows[i];
        r->nd = ref_comb_structure(c, i, d, g, &r->ng);
        r->direct = xmalloc((size_t)(r->nd ? r->nd : 1) * sizeof *r->direct);
        r->gid = xmalloc((size_t)(r->ng ? r->ng : 1) * sizeof *r->gid);
        memcpy(r->direct, d, (size_t)r->nd * sizeof *d);
        for (int x = 0; x < r->ng; x++) r->gid[x] = plan_group_id(&p, &g[x]);
        if (r->nd > p.maxd) p.maxd = r->nd;
        if (r->ng > p.maxg) p.maxg = r->ng;
    }
    free(d), free(g);
    return p;
}

static void plan_free(plan *p)
{
    for (int i = 0; i < p->L; i++) free(p->rows[i].direct), free(p->rows[i].gid);
    free(p->rows), free(p->groups), free(p->hash);
}

/* ---- one (batch, query head) -------------------------------------------- */

static double dot(const double *x, const double *y, int D)
{
    double s = 0.0;
    for (int d = 0; d < D; d++) s += x[d] * y[d];
    return s;
}

/* Summary (kbar, vbar) of group G. qh [L][D] (query head), kh, vh [L][D] (its
 * kv head). w: scratch of hi - lo doubles, qbar: scratch of D doubles. */
static void group_summary(const ref_comb_group *G, const double *qh, const double *kh,
                          const double *vh, int D, double a, double *kbar, double *vbar,
                          double *qbar, double *w)
{
    const double *qs; /* the query vector that weights the group's keys */
    if (G->t < 0) {
        /* max-pooling (fixed, logsparse): qbar = max q, kbar = max k */
        for (int d = 0; d < D; d++) qbar[d] = kbar[d] = -INFINITY;
        for (int j = G->lo; j < G->hi; j++)
            for (int d = 0; d < D; d++) {
                if (qh[(size_t)j * D + d] > qbar[d]) qbar[d] = qh[(size_t)j * D + d];
                if (kh[(size_t)j * D + d] > kbar[d]) kbar[d] = kh[(size_t)j * D + d];
            }
        qs = qbar;
    } else {
        qs = qh + (size_t)G->t * D; /* axial: q_t of the row's position t */
    }
    /* softmax over the group's keys, weighted sum of its values (and keys) */
    double m = -INFINITY, z = 0.0;
    for (int j = G->lo; j < G->hi; j++) {
        w[j - G->lo] = a * dot(qs, kh + (size_t)j * D, D);
        if (w[j - G->lo] > m) m = w[j - G->lo];
    }
    for (int j = G->lo; j < G->hi; j++) z += w[j - G->lo] = exp(w[j - G->lo] - m);
    for (int d = 0; d < D; d++) vbar[d] = 0.0;
    if (G->t >= 0)
        for (int d = 0; d < D; d++) kbar[d] = 0.0;
    for (int j = G->lo; j < G->hi; j++) {
        double rho = w[j - G->lo] / z;
        for (int d = 0; d < D; d++) vbar[d] += rho * vh[(size_t)j * D + d];
        if (G->t >= 0)
            for (int d = 0; d < D; d++) kbar[d] += rho * kh[(size_t)j * D + d];
    }
}

typedef struct {
    double *logit, *kbar, *vbar, *qbar, *w;
} scratch;

static scratch scratch_alloc(const plan *p, int D)
{
    scratch s;
    size_t n = (size_t)p->maxd + (size_t)p->maxg + 1;
    s.logit = xmalloc(n * sizeof(double));
    s.kbar = xmalloc(((size_t)p->ngroups + 1) * D * sizeof(double));
    s.vbar = xmalloc(((size_t)p->ngroups + 1) * D * sizeof(double));
    s.qbar = xmalloc((size_t)D * sizeof(double));
    s.w = xmalloc(((size_t)p->L + 1) * sizeof(double));
    return s;
}

static void scratch_free(scratch *s)
{
    free(s->logit), free(s->kbar), free(s->vbar), free(s->qbar), free(s->w);
}

/* o [L][D], lse [L] of one head. If dout is given, returns sum(o * dout). */
static double head_forward(const plan *p, scratch *s, const double *qh, const double *kh,
                           const double *vh, int D, double a, double *o, double *lse,
                           const double *dout)
{
    /* every distinct group's summary, from its definition */
    for (int g = 0; g < p->ngroups; g++)
        group_summary(&p->groups[g], qh, kh, vh, D, a, s->kbar + (size_t)g * D,
                      s->vbar + (size_t)g * D, s->qbar, s->w);
    double loss = 0.0;
    for (int i = 0; i < p->L; i++) {
        const qrow *r = &p->rows[i];
        const double *qi = qh + (size_t)i * D;
        double *oi = o + (size_t)i * D;
        /* one joint softmax: direct keys, then group summaries */
        int n = r->nd + r->ng;
        double m = -INFINITY;
        for (int x = 0; x < r->nd; x++) s->logit[x] = a * dot(qi, kh + (size_t)r->direct[x] * D, D);
        for (int x = 0; x < r->ng; x++)
            s->logit[r->nd + x] = a * dot(qi, s->kbar + (size_t)r->gid[x] * D, D);
        for (int x = 0; x < n; x++)
            if (s->logit[x] > m) m = s->logit[x];
        for (int d = 0; d < D; d++) oi[d] = 0.0;
        if (n == 0) {
            lse[i] = -INFINITY;
            continue;
        }
        double z = 0.0;
        for (int x = 0; x < n; x++) z += s->logit[x] = exp(s->logit[x] - m);
        for (int x = 0; x < n; x++) {
            const double *val = x < r->nd ? vh + (size_t)r->direct[x] * D
                                          : s->vbar + (size_t)r->gid[x - r->nd] * D;
            double pr = s->logit[x] / z;
            for (int d = 0; d < D; d++) oi[d] += pr * val[d];
        }
        lse[i] = m + log(z);
        if (dout) loss += dot(oi, dout + (size_t)i * D, D);
    }
    return loss;
}

void ref_comb_forward(const ref_comb_cfg *c, const double *q, const double *k, const double *v,
                      double *o, double *lse)
{
    plan p = plan_build(c);
    scratch s = scratch_alloc(&p, c->D);
    const int L = c->L, D = c->D, G = c->H / c->Hkv;
    for (int b = 0; b < c->B; b++)
        for (int h = 0; h < c->H; h++) {
            size_t qo = ((size_t)b * c->H + h) * (size_t)L;
            size_t ko = ((size_t)b * c->Hkv + h / G) * (size_t)L;
            head_forward(&p, &s, q + qo * D, k + ko * D, v + ko * D, D, c->scale, o + qo * D,
                         lse + qo, NULL);
        }
    scratch_free(&s);
    plan_free(&p);
}

/* ---- finite differences ---------------------------------------------------- */

typedef struct {
    const ref_comb_cfg *c;
    plan p;
    scratch s;
    double *q, *k, *v; /* modifiable copies */
    const double *dout;
    double *o, *lse;   /* one head's scratch output */
} fdctx;

static double head_loss(fdctx *x, int b, int h)
{
    const ref_comb_cfg *c = x->c;
    const int L = c->L, D = c->D, G = c->H / c->Hkv;
    size_t qo = ((size_t)b * c->H + h) * (size_t)L;
    size_t ko = ((size_t)b * c->Hkv + h / G) * (size_t)L;
    return head_forward(&x->p, &x->s, x->q + qo * D, x->k + ko * D, x->v + ko * D, D, c->scale,
                        x->o, x->lse, x->dout + qo * D);
}

/* Loss of the heads entry x[idx] can influence: query head h0 only (qkv=0)
 * or every query head of kv head h0 (qkv=1). */
static double part_loss(fdctx *x, int b, int h0, int kvside)
{
    if (!kvside) return head_loss(x, b, h0);
    const int G = x->c->H / x->c->Hkv;
    double l = 0.0;
    for (int h = h0 * G; h < (h0 + 1) * G; h++) l += head_loss(x, b, h);
    return l;
}

static int fd_entry(fdctx *x, double *arr, size_t idx, int b, int h0, int kvside, double f0,
                    double *out)
{
    const double hstep = REF_COMB_FD_STEP;
    double x0 = arr[idx];
    arr[idx] = x0 + hstep;
    double fp = part_loss(x, b, h0, kvside);
    arr[idx] = x0 - hstep;
    double fm = part_loss(x, b, h0, kvside);
    arr[idx] = x0;
    double g = (fp - fm) / (2 * hstep);
    *out = g;
    double dp = (fp - f0) / hstep, dm = (f0 - fm) / hstep;
    return fabs(dp - dm) > 1e-4 * (fabs(g) > 1.0 ? fabs(g) : 1.0);
}

int ref_comb_backward_fd_at(const ref_comb_cfg *c, const double *q, const double *k,
                            const double *v, const double *dout, int npos, const int32_t *pos,
                            double *dq, double *dk, double *dv)
{
    const int B = c->B, H = c->H, Hkv = c->Hkv, L = c->L, D = c->D, G = H / Hkv;
    const size_t nq = (size_t)B * H * L * D, nk = (size_t)B * Hkv * L * D;
    memset(dq, 0, nq * sizeof *dq);
    memset(dk, 0, nk * sizeof *dk);
    memset(dv, 0, nk * sizeof *dv);
    fdctx x = {.c = c, .dout = dout};
    x.p = plan_build(c);
    x.s = scratch_alloc(&x.p, D);
    x.q = xmalloc(nq * sizeof(double));
    x.k = xmalloc(nk * sizeof(double));
    x.v = xmalloc(nk * sizeof(double));
    memcpy(x.q, q, nq * sizeof(double));
    memcpy(x.k, k, nk * sizeof(double));
    memcpy(x.v, v, nk * sizeof(double));
    x.o = xmalloc(((size_t)L * D + 1) * sizeof(double));
    x.lse = xmalloc(((size_t)L + 1) * sizeof(double));
    /* unperturbed loss of every head, for the kink test */
    double *f0 = xmalloc(((size_t)B * H + 1) * sizeof(double));
    for (int b = 0; b < B; b++)
        for (int h = 0; h < H; h++) f0[b * H + h] = head_loss(&x, b, h);
    int kinks = 0;
    for (int n = 0; n < npos; n++) {
        const int p = pos[n];
        if (p < 0 || p >= L) FAIL("fd position %d outside [0, %d)", p, L);
        for (int b = 0; b < B; b++) {
            for (int h = 0; h < H; h++) {
                size_t base = (((size_t)b * H + h) * L + p) * D;
                for (int d = 0; d < D; d++)
                    kinks += fd_entry(&x, x.q, base + d, b, h, 0, f0[b * H + h], &dq[base + d]);
            }
            for (int g = 0; g < Hkv; g++) {
                double fg = 0.0;
                for (int h = g * G; h < (g + 1) * G; h++) fg += f0[b * H + h];
                size_t base = (((size_t)b * Hkv + g) * L + p) * D;
                for (int d = 0; d < D; d++) {
                    kinks += fd_entry(&x, x.k, base + d, b, g, 1, fg, &dk[base + d]);
                    kinks += fd_entry(&x, x.v, base + d, b, g, 1, fg, &dv[base + d]);
                }
            }
        }
    }
    free(f0), free(x.o), free(x.lse), free(x.q), free(x.k), free(x.v);
    scratch_free(&x.s);
    plan_free(&x.p);
    return kinks;
}

void ref_comb_backward_fd(const ref_comb_cfg *c, const double *q, const double *k,
                          const double *v, const double *dout, double *dq, double *dk,
                          double *dv)
{
    int32_t *pos = xmalloc((size_t)(c->L ? c->L : 1) * sizeof *pos);
    for (int i = 0; i < c->L; i++) pos[i] = i;
    ref_comb_backward_fd_at(c, q, k, v, dout, c->L, pos, dq, dk, dv);
    free(pos);
}
