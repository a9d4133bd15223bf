/* cmd_attn.c - `ringattn attn`: attention of .npy tensors over the ring.
 *
 * Every rank opens the headers, checks that the shapes agree, reads only the
 * rows of its own tokens, runs the ring forward (and backward with --dout),
 * and writes its rows of each output. Any failure on any rank is agreed on
 * collectively (ra_agree), reported once, and makes every rank exit 1. */
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "ringattn/attn.h"
#include "ringattn/dist.h"
#include "ringattn/mem.h"
#include "ringattn/heads.h"
#include "ringattn/layers.h"
#include "ringattn/ring.h"

static const char *help =
    "usage: mpirun -n P ringattn attn --q Q.npy --k K.npy --v V.npy --out O.npy [options]\n"
    "\n"
    "Exact softmax attention O = softmax(scale * Q K^T + mask) V, computed over\n"
    "a ring of P ranks; each rank reads and writes only its own tokens.\n"
    "\n"
    "inputs (float32 or float64 .npy, C order):\n"
    "  --q FILE          queries [H, L, D] or [B, H, L, D]\n"
    "  --k FILE, --v FILE  keys and values [Hkv, L, D] or [B, Hkv, L, D];\n"
    "                    Hkv divides H (GQA/MQA: query head h uses kv head h/(H/Hkv))\n"
    "  --segments FILE   int32/int64 segment ids [L] or [B, L]: a query sees only\n"
    "                    keys of its own segment (packed sequences)\n"
    "outputs (float32 .npy, written atomically):\n"
    "  --out FILE        O, shaped like Q\n"
    "  --lse FILE        log-sum-exp of each row's logits [H, L] or [B, H, L]\n"
    "                    (-inf for a row that sees no key; its O row is 0)\n"
    "gradients (all four together):\n"
    "  --dout FILE       dL/dO, shaped like Q; then also write\n"
    "  --dq FILE --dk FILE --dv FILE   dL/dQ (like Q), dL/dK and dL/dV (like K)\n"
    "options:\n"
    "  --head KIND       full: exact attention over the ring (default);\n"
    "                    combiner-fixed: direct keys in the query's span of --span\n"
    "                    tokens, every other span through one summary;\n"
    "                    combiner-logsparse (--causal only): itself directly and\n"
    "                    log2(L) aligned blocks through one summary each;\n"
    "                    combiner-axial: its row of --row tokens directly, its\n"
    "                    column in the other rows through one summary each\n"
    "  --span S          combiner-fixed span (default ceil(sqrt(L)))\n"
    "  --row M           combiner-axial row length (default ceil(sqrt(L)))\n"
    "  --precond rownorm the head's output rows become O_i / (||O_i|| + eps)\n"
    "  --precond-grad G  stop (the norm is a constant in the backward, default)\n"
    "                    or full (differentiate through the norm)\n"
    "  --precond-eps E   eps of rownorm (default 1e-6)\n"
    "  --kappa           print, per batch and head, the condition number of the\n"
    "                    output over the whole sequence: sigma_max / sigma_min of\n"
    "                    O [L, D], from the D x D Gram matrix summed over ranks\n"
    "  --causal          query i sees keys j <= i (global positions)\n"
    "  --scale S         logit scale (default 1/sqrt(D))\n"
    "  --layout NAME     contiguous | zigzag | striped: which tokens a rank owns\n"
    "                    (default zigzag for --head full with --causal, else contiguous)\n"
    "  --chunk N         tokens per ring message (default: automatic)\n"
    "  --threads N       OpenBLAS threads per rank (default: cores / ranks per node)\n"
    "  --help            this text\n"
    "\n"
    "Rank 0 prints one summary line: shapes, ranks, layout, seconds and GFLOP/s\n"
    "(4*B*H*L^2*D forward, 10*B*H*L^2*D backward, halved when causal).\n";

typedef struct {
    const char *q, *k, *v, *out, *lse, *seg, *dout, *dq, *dk, *dv;
    int causal, layout_set, chunk, threads, kappa;
    float scale;
    ra_layout layout;
    const char *head;
    ra_layer_config layer; /* span, row of Combiner heads */
} attn_args;

static ra_status parse(int argc, char **argv, attn_args *a, int *want_help)
{
    enum { O_Q = 256, O_K, O_V, O_OUT, O_LSE, O_SEG, O_DOUT, O_DQ, O_DK, O_DV, O_CAUSAL, O_SCALE,
           O_LAYOUT, O_CHUNK, O_THREADS, O_HELP, O_HEAD, O_SPAN, O_ROW, O_PRE, O_PREG, O_PREE, O_KAPPA };
    static const struct option opts[] = {
        { "q", required_argument, 0, O_Q },           { "k", required_argument, 0, O_K },
        { "v", required_argument, 0, O_V },           { "out", required_argument, 0, O_OUT },
        { "lse", required_argument, 0, O_LSE },       { "segments", required_argument, 0, O_SEG },
        { "dout", required_argument, 0, O_DOUT },     { "dq", required_argument, 0, O_DQ },
        { "dk", required_argument, 0, O_DK },         { "dv", required_argument, 0, O_DV },
        { "causal", no_argument, 0, O_CAUSAL },       { "scale", required_argument, 0, O_SCALE },
        { "layout", required_argument, 0, O_LAYOUT }, { "chunk", required_argument, 0, O_CHUNK },
        { "threads", required_argument, 0, O_THREADS }, { "help", no_argument, 0, O_HELP },
        { "head", required_argument, 0, O_HEAD },   { "span", required_argument, 0, O_SPAN },
        { "row", required_argument, 0, O_ROW },     { "precond", required_argument, 0, O_PRE },
        { "precond-grad", required_argument, 0, O_PREG }, { "precond-eps", required_argument, 0, O_PREE },
        { "kappa", no_argument, 0, O_KAPPA },
        { 0, 0, 0, 0 },
    };
    *a = (attn_args){ .head = "full", .layer = { .precond = "none", .precond_grad = "stop", .precond_eps = 1e-6f } };
    opterr = 0;
    optind = 1;
    int c;
    while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        switch (c) {
        case O_Q: a->q = optarg; break;
        case O_K: a->k = optarg; break;
        case O_V: a->v = optarg; break;
        case O_OUT: a->out = optarg; break;
        case O_LSE: a->lse = optarg; break;
        case O_SEG: a->seg = optarg; break;
        case O_DOUT: a->dout = optarg; break;
        case O_DQ: a->dq = optarg; break;
        case O_DK: a->dk = optarg; break;
        case O_DV: a->dv = optarg; break;
        case O_CAUSAL: a->causal = 1; break;
        case O_KAPPA: a->kappa = 1; break;
        case O_SCALE:
            RA_TRY(ra_arg_float("--scale", optarg, &a->scale));
            if (a->scale == 0.0f) return RA_FAIL(RA_ERR_ARG, "--scale: must not be 0");
            break;
        case O_LAYOUT:
            RA_TRY(ra_layout_parse(optarg, &a->layout));
            a->layout_set = 1;
            break;
        case O_CHUNK: RA_TRY(ra_arg_int("--chunk", optarg, 1, 1 << 30, &a->chunk)); break;
        case O_THREADS: RA_TRY(ra_arg_int("--threads", optarg, 1, 4096, &a->threads)); break;
        case O_HEAD:
            if (!ra_head_find(optarg))
                return RA_FAIL(RA_ERR_ARG, "--head: unknown head '%s' (known: %s)", optarg, ra_head_names());
            a->head = optarg;
            break;
        case O_SPAN: RA_TRY(ra_arg_int("--span", optarg, 1, INT32_MAX, &a->layer.span)); break;
        case O_ROW: RA_TRY(ra_arg_int("--row", optarg, 1, INT32_MAX, &a->layer.row)); break;
        case O_PRE:
            if (strcmp(optarg, "none") && strcmp(optarg, "rownorm"))
                return RA_FAIL(RA_ERR_ARG, "--precond: '%s' is not none or rownorm (spectral acts on a model's projections)", optarg);
            snprintf(a->layer.precond, sizeof a->layer.precond, "%s", optarg);
            break;
        case O_PREG:
            if (strcmp(optarg, "stop") && strcmp(optarg, "full"))
                return RA_FAIL(RA_ERR_ARG, "--precond-grad: '%s' is not stop or full", optarg);
            snprintf(a->layer.precond_grad, sizeof a->layer.precond_grad, "%s", optarg);
            break;
        case O_PREE:
            RA_TRY(ra_arg_float("--precond-eps", optarg, &a->layer.precond_eps));
            if (!(a->layer.precond_eps > 0)) return RA_FAIL(RA_ERR_ARG, "--precond-eps: must be > 0");
            break;
        case O_HELP: case 'h': *want_help = 1; return RA_OK;
        default: return ra_arg_unknown("attn", c, argv[optind - 1]);
        }
    }
    if (optind < argc)
        return RA_FAIL(RA_ERR_ARG, "attn: unexpected argument '%s' (see ringattn attn --help)",
                       argv[optind]);
    snprintf(a->layer.head, sizeof a->layer.head, "%s", a->head);
    /* the words are checked above; ra_head_create reads their ids (names.h) */
    a->layer.head_id = (ra_head_id)ra_name_find(ra_head_words, a->layer.head);
    a->layer.precond_id = (ra_precond_id)ra_name_find(ra_precond_words, a->layer.precond);
    a->layer.precond_grad_id = (ra_precond_grad_id)ra_name_find(ra_precond_grad_words, a->layer.precond_grad);
    if (!a->q || !a->k || !a->v || !a->out)
        return RA_FAIL(RA_ERR_ARG, "attn: --q, --k, --v and --out are required (missing %s)",
                       !a->q ? "--q" : !a->k ? "--k" : !a->v ? "--v" : "--out");
    int ngrad = !!a->dq + !!a->dk + !!a->dv;
    if (a->dout && ngrad != 3)
        return RA_FAIL(RA_ERR_ARG, "attn: --dout needs --dq, --dk and --dv (missing %s)",
                       !a->dq ? "--dq" : !a->dk ? "--dk" : "--dv");
    if (!a->dout && ngrad)
        return RA_FAIL(RA_ERR_ARG, "attn: --dq/--dk/--dv need --dout (the gradient of O)");
    const char *ins[][2] = { { "--q", a->q }, { "--k", a->k }, { "--v", a->v },
                             { "--segments", a->seg }, { "--dout", a->dout } };
    const char *outs[][2] = { { "--out", a->out }, { "--lse", a->lse }, { "--dq", a->dq },
                              { "--dk", a->dk }, { "--dv", a->dv } };
    for (int i = 0; i < 5; i++) {
        if (ins[i][1] && !ins[i][1][0]) return RA_FAIL(RA_ERR_ARG, "attn: %s: empty file name", ins[i][0]);
        if (outs[i][1] && !outs[i][1][0]) return RA_FAIL(RA_ERR_ARG, "attn: %s: empty file name", outs[i][0]);
        for (int j = 0; j < i; j++) /* one output would overwrite another */
            if (outs[i][1] && outs[j][1] && !strcmp(outs[i][1], outs[j][1]))
                return RA_FAIL(RA_ERR_ARG, "attn: %s and %s name the same file '%s'", outs[j][0],
                               outs[i][0], outs[i][1]);
    }
    /* zigzag balances the ring's causal work; a Combiner head works on whole
     * spans, which contiguous ranges already are (no all-to-all needed) */
    if (!a->layout_set)
        a->layout = a->causal && !strcmp(a->head, "full") ? RA_LAYOUT_ZIGZAG : RA_LAYOUT_CONTIGUOUS;
    return RA_OK;
}

/* ---- shapes --------------------------------------------------------------- */

typedef struct {
    int four_d, B, H, Hkv, D;
    int64_t L;
} attn_shape;

static ra_status need_float(const ra_npy *f, const char *what)
{
    if (f->dtype != RA_DT_F32 && f->dtype != RA_DT_F64)
        return RA_FAIL(RA_ERR_FORMAT, "%s: dtype %s is not supported for %s (need float32 or float64)",
                       f->path, ra_dtype_name(f->dtype), what);
    return RA_OK;
}

static ra_status same_shape(const ra_npy *f, const ra_npy *ref, const char *rule)
{
    int same = f->ndim == ref->ndim;
    for (int i = 0; same && i < f->ndim; i++) same = f->shape[i] == ref->shape[i];
    if (!same) {
        char a[96], b[96];
        return RA_FAIL(RA_ERR_SHAPE, "%s: shape %s must equal %s of %s, %s", f->path,
                       ra_shape_str(a, sizeof a, f->ndim, f->shape), rule, ref->path,
                       ra_shape_str(b, sizeof b, ref->ndim, ref->shape));
    }
    return RA_OK;
}

static ra_status check_shapes(const ra_npy *q, const ra_npy *k, const ra_npy *v, const ra_npy *seg,
                              const ra_npy *dout, int P, attn_shape *s)
{
    char a[96], b[96];
    RA_TRY(need_float(q, "Q"));
    RA_TRY(need_float(k, "K"));
    RA_TRY(need_float(v, "V"));
    if (q->ndim != 3 && q->ndim != 4)
        return RA_FAIL(RA_ERR_SHAPE, "%s: Q must be [H, L, D] or [B, H, L, D], got %s", q->path,
                       ra_shape_str(a, sizeof a, q->ndim, q->shape));
    const int o = q->ndim - 3;
    s->four_d = o;
    s->B = o ? (int)q->shape[0] : 1;
    s->H = (int)q->shape[o];
    s->L = q->shape[o + 1];
    s->D = (int)q->shape[o + 2];
    if (k->ndim != q->ndim)
        return RA_FAIL(RA_ERR_SHAPE, "%s: K has shape %s but Q %s has %d dimensions; K must be %s",
                       k->path, ra_shape_str(a, sizeof a, k->ndim, k->shape),
                       ra_shape_str(b, sizeof b, q->ndim, q->shape), q->ndim,
                       o ? "[B, Hkv, L, D]" : "[Hkv, L, D]");
    s->Hkv = (int)k->shape[o];
    if ((o && k->shape[0] != s->B) || k->shape[o + 1] != s->L || k->shape[o + 2] != s->D)
        return RA_FAIL(RA_ERR_SHAPE, "%s: K shape %s does not agree with Q %s (batch, L and D must match)",
                       k->path, ra_shape_str(a, sizeof a, k->ndim, k->shape),
                       ra_shape_str(b, sizeof b, q->ndim, q->shape));
    RA_TRY(same_shape(v, k, "the shape"));
    if (s->Hkv < 1 || s->H % s->Hkv != 0)
        return RA_FAIL(RA_ERR_SHAPE, "%s: %d key/value heads do not divide the %d query heads of %s",
                       k->path, s->Hkv, s->H, q->path);
    if (s->H < 1 || s->D < 1 || s->B < 1)
        return RA_FAIL(RA_ERR_SHAPE, "%s: empty dimension in %s", q->path,
                       ra_shape_str(a, sizeof a, q->ndim, q->shape));
    if (s->L < P)
        return RA_FAIL(RA_ERR_SHAPE, "%s: sequence length %lld is shorter than the number of ranks (%d)",
                       q->path, (long long)s->L, P);
    if (seg) {
        if (seg->dtype != RA_DT_I32 && seg->dtype != RA_DT_I64)
            return RA_FAIL(RA_ERR_FORMAT, "%s: segment ids must be int32 or int64, not %s", seg->path,
                           ra_dtype_name(seg->dtype));
        int ok = (seg->ndim == 1 && seg->shape[0] == s->L) ||
                 (seg->ndim == 2 && seg->shape[0] == s->B && seg->shape[1] == s->L);
        if (!ok)
            return RA_FAIL(RA_ERR_SHAPE, "%s: segment ids must be [L] or [B, L] = [%lld] or [%d, %lld], got %s",
                           seg->path, (long long)s->L, s->B, (long long)s->L,
                           ra_shape_str(a, sizeof a, seg->ndim, seg->shape));
    }
    if (dout) {
        RA_TRY(need_float(dout, "dO"));
        RA_TRY(same_shape(dout, q, "the shape"));
    }
    return RA_OK;
}

/* ---- the run ---------------------------------------------------------------- */

typedef struct {
    ra_npy q, k, v, seg, dout;
    float *buf; /* one allocation for every local tensor */
    float *lq, *lk, *lv, *lo, *llse, *ldo, *ldq, *ldk, *ldv;
    int32_t *lseg;
    ra_head *head;
    int64_t Lr;
} attn_state;

static ra_status open_inputs(const attn_args *a, attn_state *S)
{
    RA_TRY(ra_npy_open(&S->q, a->q));
    RA_TRY(ra_npy_open(&S->k, a->k));
    RA_TRY(ra_npy_open(&S->v, a->v));
    if (a->seg) RA_TRY(ra_npy_open(&S->seg, a->seg));
    if (a->dout) RA_TRY(ra_npy_open(&S->dout, a->dout));
    return RA_OK;
}

static ra_status read_inputs(const ra_cli *c, const attn_args *a, const attn_shape *s, attn_state *S)
{
    const int64_t Lr = S->Lr;
    const size_t nq = (size_t)s->B * s->H * Lr * s->D, nk = (size_t)s->B * s->Hkv * Lr * s->D;
    const size_t nrow = (size_t)s->B * s->H * Lr, nseg = (size_t)s->B * Lr;
    size_t total = 2 * nq + 2 * nk + nrow + (a->seg ? nseg : 0) + (a->dout ? 2 * nq + 2 * nk : 0);
    RA_TRY(ra_alloc(&S->buf, total * sizeof(float), "the local slabs of Q, K, V and outputs"));
    float *p = S->buf;
    S->lq = p, p += nq;
    S->lk = p, p += nk;
    S->lv = p, p += nk;
    S->lo = p, p += nq;
    S->llse = p, p += nrow;
    if (a->seg) S->lseg = (int32_t *)p, p += nseg;
    if (a->dout) {
        S->ldo = p, p += nq;
        S->ldq = p, p += nq;
        S->ldk = p, p += nk;
        S->ldv = p, p += nk;
    }
    ra_slab sq = { (int64_t)s->B * s->H, s->L, s->D, a->layout, c->size, c->rank };
    ra_slab sk = { (int64_t)s->B * s->Hkv, s->L, s->D, a->layout, c->size, c->rank };
    RA_TRY(ra_slab_read_f32(&S->q, &sq, S->lq));
    RA_TRY(ra_slab_read_f32(&S->k, &sk, S->lk));
    RA_TRY(ra_slab_read_f32(&S->v, &sk, S->lv));
    if (a->dout) RA_TRY(ra_slab_read_f32(&S->dout, &sq, S->ldo));
    if (a->seg) {
        ra_slab ss = { S->seg.ndim == 2 ? s->B : 1, s->L, 1, a->layout, c->size, c->rank };
        RA_TRY(ra_slab_read_i32(&S->seg, &ss, S->lseg));
        if (S->seg.ndim == 1) /* [L]: the same ids for every batch */
            for (int b = 1; b < s->B; b++) memcpy(S->lseg + (size_t)b * Lr, S->lseg, sizeof(int32_t) * Lr);
    }
    return RA_OK;
}

/* Every output appears, or none: all are written to .partial files first
 * and renamed together once all of them succeeded on every rank. */
static ra_status write_outputs(const ra_cli *c, const attn_args *a, const attn_shape *s,
                               attn_state *S)
{
    ra_slab sq = { (int64_t)s->B * s->H, s->L, s->D, a->layout, c->size, c->rank };
    ra_slab sk = { (int64_t)s->B * s->Hkv, s->L, s->D, a->layout, c->size, c->rank };
    ra_slab sl = { (int64_t)s->B * s->H, s->L, 1, a->layout, c->size, c->rank };
    struct {
        const char *path;
        int ndim;
        const int64_t *shape;
        const ra_slab *slab;
        const float *data;
    } outs[] = {
        { a->out, S->q.ndim, S->q.shape, &sq, S->lo },
        { a->lse, S->q.ndim - 1, S->q.shape, &sl, S->llse },
        { a->dq, S->q.ndim, S->q.shape, &sq, S->ldq },
        { a->dk, S->k.ndim, S->k.shape, &sk, S->ldk },
        { a->dv, S->k.ndim, S->k.shape, &sk, S->ldv },
    };
    const char *written[5];
    int n = 0;
    ra_status st = RA_OK;
    for (size_t i = 0; i < sizeof outs / sizeof *outs && st == RA_OK; i++) {
        if (!outs[i].path) continue;
        written[n++] = outs[i].path;
        st = ra_slab_write_partial(c->comm, outs[i].path, outs[i].ndim, outs[i].shape, outs[i].slab,
                                   outs[i].data);
    }
    return ra_outputs_finish(c->comm, written, n, st);
}

/* kappa(O) per (b, h) over the whole sequence: local Gram matrices summed. */
static ra_status print_kappa(const ra_cli *c, const attn_shape *s, const attn_state *S)
{
    const int D = s->D, BH = s->B * s->H;
    double *G = calloc((size_t)BH * D * D, sizeof(double));
    if (!G) return RA_FAIL(RA_ERR_NOMEM, "--kappa: out of memory for %d Gram matrices", BH);
    for (int bh = 0; bh < BH; bh++) ra_gram_accumulate(G + (size_t)bh * D * D, S->lo + (size_t)bh * S->Lr * D, (int)S->Lr, D);
    int rc = MPI_Allreduce(MPI_IN_PLACE, G, BH * D * D, MPI_DOUBLE, MPI_SUM, c->comm);
    if (rc == MPI_SUCCESS && c->rank == 0) {
        printf("kappa: %5s %5s %14s %14s %14s\n", "batch", "head", "kappa", "sigma_max", "sigma_min");
        for (int bh = 0; bh < BH; bh++) {
            double smax = 0, smin = 0, k = ra_kappa_from_gram(G + (size_t)bh * D * D, D, &smax, &smin);
            printf("kappa: %5d %5d %14.6g %14.6g %14.6g\n", bh / s->H, bh % s->H, k, smax, smin);
        }
        fflush(stdout);
    }
    free(G);
    if (rc != MPI_SUCCESS) return RA_FAIL(RA_ERR_MPI, "--kappa: reducing the Gram matrices failed");
    return RA_OK;
}

static double max_over_ranks(const ra_cli *c, double x)
{
    double m = x;
    MPI_Allreduce(&x, &m, 1, MPI_DOUBLE, MPI_MAX, c->comm);
    return m;
}

static ra_status run(ra_cli *c, const attn_args *a, attn_state *S)
{
    attn_shape s = { 0 };
    RA_TRY(ra_agree(c->comm, open_inputs(a, S)));
    RA_TRY(ra_agree(c->comm, check_shapes(&S->q, &S->k, &S->v, a->seg ? &S->seg : NULL,
                                          a->dout ? &S->dout : NULL, c->size, &s)));
    int threads = ra_set_threads(c, a->threads);
    ra_head_opts ho = { .ring = { .B = s.B, .H = s.H, .Hkv = s.Hkv, .D = s.D, .L = s.L, .scale = a->scale,
                                  .causal = a->causal, .layout = a->layout, .chunk = a->chunk },
                        .layer = &a->layer };
    RA_TRY(ra_agree(c->comm, ra_head_create(&S->head, &ho, c->comm)));
    const ra_head_kind *kind = S->head->kind;
    S->Lr = ra_layout_count(a->layout, s.L, c->size, c->rank);
    RA_TRY(ra_agree(c->comm, read_inputs(c, a, &s, S)));

    MPI_Barrier(c->comm);
    double t0 = ra_now();
    ra_status st = kind->forward(S->head, S->lq, S->lk, S->lv, S->lseg, S->lo, S->llse);
    double tf = ra_now() - t0, wf = kind->wait_seconds(S->head);
    RA_TRY(ra_agree(c->comm, st));
    tf = max_over_ranks(c, tf), wf = max_over_ranks(c, wf);
    double tb = 0, wb = 0;
    if (a->dout) {
        MPI_Barrier(c->comm);
        t0 = ra_now();
        st = kind->backward(S->head, S->lq, S->lk, S->lv, S->lseg, S->lo, S->llse, S->ldo, S->ldq, S->ldk,
                            S->ldv);
        tb = ra_now() - t0, wb = kind->wait_seconds(S->head);
        RA_TRY(ra_agree(c->comm, st));
        tb = max_over_ranks(c, tb), wb = max_over_ranks(c, wb);
    }
    RA_TRY(write_outputs(c, a, &s, S));
    if (a->kappa) RA_TRY(print_kappa(c, &s, S));

    double ff = ra_attn_flops_fwd(s.B, s.H, (double)s.L, s.D, a->causal);
    double fb = ra_attn_flops_bwd(s.B, s.H, (double)s.L, s.D, a->causal);
    ra_say(c, "attn: %s B=%d H=%d Hkv=%d L=%lld D=%d | P=%d %s %s threads=%d | forward %.4f s %.2f GFLOP/s (wait %.4f s)",
           a->head, s.B, s.H, s.Hkv, (long long)s.L, s.D, c->size, ra_layout_name(a->layout),
           a->causal ? "causal" : "bidirectional", threads, tf, ff / tf * 1e-9, wf);
    if (a->dout) ra_say(c, " | backward %.4f s %.2f GFLOP/s (wait %.4f s)", tb, fb / tb * 1e-9, wb);
    ra_say(c, "\n");
    return RA_OK;
}

ra_status ra_cmd_attn(ra_cli *c, int argc, char **argv)
{
    attn_args a;
    int want_help = 0;
    RA_TRY(ra_agree(c->comm, parse(argc, argv, &a, &want_help)));
    if (want_help) {
        ra_say(c, "%s", help);
        return RA_OK;
    }
    attn_state S = { .q.fd = -1, .k.fd = -1, .v.fd = -1, .seg.fd = -1, .dout.fd = -1 };
    ra_status st = run(c, &a, &S);
    if (S.head) S.head->kind->destroy(S.head);
    free(S.buf);
    ra_npy_close(&S.q);
    ra_npy_close(&S.k);
    ra_npy_close(&S.v);
    ra_npy_close(&S.seg);
    ra_npy_close(&S.dout);
    return st;
}
