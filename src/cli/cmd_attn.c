/* cmd_attn.c - `ringattn attn`: attention of .npy tensors over the ring.
 *
 * Every rank checks the files first (no output may destroy an input, every
 * output can be created), opens the headers, checks that the shapes agree,
 * reads only the rows of its own tokens, refuses NaN and Inf in them, runs
 * the ring forward (and backward with --dout), and writes its rows of each
 * output. Any failure on any rank is agreed on collectively (ra_agree),
 * reported once, and makes every rank exit 1. */
#include <float.h>
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
#include "ringattn/names.h"
#include "ringattn/ring.h"
#include "ringattn/threads.h"

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
    "  --segments FILE   int32/int64 segment ids [L] or [B, L] (int64 ids within the\n"
    "                    int32 range): a query sees only keys of its own segment\n"
    "                    (packed sequences)\n"
    "outputs (float32 .npy, written atomically; refused before any work when one\n"
    "would overwrite an input or another output, or cannot be created):\n"
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
    "  --scale S         logit scale (default 1/sqrt(D)); finite and non-zero in float32\n"
    "  --allow-nonfinite compute even when Q, K, V or dO hold NaN or Inf (a warning\n"
    "                    gives their count); by default that is an error\n"
    "  --layout NAME     contiguous | zigzag | striped: which tokens a rank owns\n"
    "                    (default zigzag for --head full with --causal, else contiguous)\n"
    "  --chunk N         tokens per ring message (default: automatic)\n"
    "  --threads N       threads per rank (default: OMP_NUM_THREADS, SLURM_CPUS_PER_TASK, else the rank's cores)\n"
    "%s"
    "  --help            this text\n"
    "\n"
    "Rank 0 prints one summary line: shapes, ranks, layout, seconds and GFLOP/s\n"
    "(4*B*H*L^2*D forward, 10*B*H*L^2*D backward, halved when causal).\n";

typedef struct {
    const char *q, *k, *v, *out, *lse, *seg, *dout, *dq, *dk, *dv, *trace;
    int causal, layout_set, chunk, threads, kappa, allow_nonfinite;
    float scale;
    ra_layout layout;
    ra_layer_config layer; /* head kind (word and id), span, row, preconditioner */
} attn_args;

/* A word of table words for option opt, resolved once to its enum. */
static ra_status word_arg(const char *opt, const char *val, const char *const *words, int *id, char *word,
                          size_t cap)
{
    *id = ra_name_find(words, val);
    if (*id < 0) {
        char list[256];
        return RA_FAIL(RA_ERR_ARG, "%s: unknown value '%s' (known: %s)", opt, val,
                       ra_name_list(words, list, sizeof list));
    }
    snprintf(word, cap, "%s", words[*id]);
    return RA_OK;
}

/* --scale multiplies every logit: inf (1e39 in float32) or 0 (1e-50) would
 * make every output row zero or NaN, so such a value is refused by name. */
static ra_status scale_arg(const char *val, float *scale)
{
    RA_TRY(ra_arg_float("--scale", val, scale));
    if (!isfinite(*scale))
        return RA_FAIL(RA_ERR_ARG, "--scale: %s is beyond the float32 range (|S| <= %g)", val, FLT_MAX);
    if (*scale == 0.0f)
        return RA_FAIL(RA_ERR_ARG, "--scale: %s is 0 in float32: every logit would be 0; give a non-zero scale",
                       val);
    return RA_OK;
}

static ra_status parse(int argc, char **argv, attn_args *a, int *want_help)
{
    enum { O_Q = 256, O_K, O_V, O_OUT, O_LSE, O_SEG, O_DOUT, O_DQ, O_DK, O_DV, O_CAUSAL, O_SCALE,
           O_LAYOUT, O_CHUNK, O_THREADS, O_HELP, O_HEAD, O_SPAN, O_ROW, O_PRE, O_PREG, O_PREE, O_KAPPA,
           O_NONFINITE, O_TRACE };
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
        { "kappa", no_argument, 0, O_KAPPA }, { "allow-nonfinite", no_argument, 0, O_NONFINITE },
        { "trace", required_argument, 0, O_TRACE },
        { 0, 0, 0, 0 },
    };
    *a = (attn_args){ .layer = { .head = "full", .precond = "none", .precond_grad = "stop", .precond_eps = 1e-6f,
                                 .head_id = RA_HEAD_FULL, .precond_id = RA_PRECOND_NONE,
                                 .precond_grad_id = RA_PRECOND_GRAD_STOP } };
    int id, precond_opt = 0; /* --precond-grad or --precond-eps given */
    opterr = 0;
    optind = 1;
    int c;
    while ((c = ra_getopt(argc, argv, ":h", opts)) != -1) {
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
        case O_TRACE: a->trace = optarg; break;
        case O_CAUSAL: a->causal = 1; break;
        case O_KAPPA: a->kappa = 1; break;
        case O_NONFINITE: a->allow_nonfinite = 1; break;
        case O_SCALE: RA_TRY(scale_arg(optarg, &a->scale)); break;
        case O_LAYOUT:
            RA_TRY(ra_layout_parse(optarg, &a->layout));
            a->layout_set = 1;
            break;
        case O_CHUNK: RA_TRY(ra_arg_int("--chunk", optarg, 1, 1 << 30, &a->chunk)); break;
        case O_THREADS: RA_TRY(ra_arg_int("--threads", optarg, 1, 4096, &a->threads)); break;
        case O_HEAD:
            RA_TRY(word_arg("--head", optarg, ra_head_words, &id, a->layer.head, sizeof a->layer.head));
            a->layer.head_id = (ra_head_id)id;
            break;
        case O_SPAN: RA_TRY(ra_arg_int("--span", optarg, 1, INT32_MAX, &a->layer.span)); break;
        case O_ROW: RA_TRY(ra_arg_int("--row", optarg, 1, INT32_MAX, &a->layer.row)); break;
        case O_PRE:
            if (!strcmp(optarg, "spectral"))
                return RA_FAIL(RA_ERR_ARG, "--precond: '%s' is not none or rownorm (spectral acts on a model's projections)", optarg);
            /* a head's own preconditioners: the names' first two (none, rownorm) */
            static const char *const head_preconds[] = { "none", "rownorm", NULL };
            _Static_assert(RA_PRECOND_NONE == 0 && RA_PRECOND_ROWNORM == 1, "head_preconds follows ra_precond_id");
            RA_TRY(word_arg("--precond", optarg, head_preconds, &id, a->layer.precond, sizeof a->layer.precond));
            a->layer.precond_id = (ra_precond_id)id;
            break;
        case O_PREG:
            RA_TRY(word_arg("--precond-grad", optarg, ra_precond_grad_words, &id, a->layer.precond_grad,
                            sizeof a->layer.precond_grad));
            a->layer.precond_grad_id = (ra_precond_grad_id)id;
            precond_opt = 1;
            break;
        case O_PREE:
            RA_TRY(ra_arg_float("--precond-eps", optarg, &a->layer.precond_eps));
            if (!(a->layer.precond_eps > 0) || !isfinite(a->layer.precond_eps))
                return RA_FAIL(RA_ERR_ARG, "--precond-eps: %s must be > 0 and finite in float32", optarg);
            precond_opt = 1;
            break;
        case O_HELP: case 'h': *want_help = 1; return RA_OK;
        default: return ra_arg_unknown("attn", c, argv[optind - 1]);
        }
    }
    if (optind < argc)
        return RA_FAIL(RA_ERR_ARG, "attn: unexpected argument '%s' (see ringattn attn --help)",
                       argv[optind]);
    RA_TRY(ra_check_head_params("attn", &a->layer, a->causal)); /* options that would be ignored */
    if (precond_opt && a->layer.precond_id == RA_PRECOND_NONE)
        return RA_FAIL(RA_ERR_ARG, "attn: --precond-grad and --precond-eps are rownorm's: give --precond rownorm");
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
                              { "--dk", a->dk }, { "--dv", a->dv }, { "--trace", a->trace } };
    if (a->trace && !a->trace[0]) return RA_FAIL(RA_ERR_ARG, "attn: --trace: empty file name");
    for (int i = 0; i < 5; i++) { /* clashes are checked on the files themselves (check_files) */
        if (ins[i][1] && !ins[i][1][0]) return RA_FAIL(RA_ERR_ARG, "attn: %s: empty file name", ins[i][0]);
        if (outs[i][1] && !outs[i][1][0]) return RA_FAIL(RA_ERR_ARG, "attn: %s: empty file name", outs[i][0]);
    }
    /* zigzag balances the ring's causal work; a Combiner head works on whole
     * spans, which contiguous ranges already are (no all-to-all needed) */
    if (!a->layout_set)
        a->layout = a->causal && a->layer.head_id == RA_HEAD_FULL ? RA_LAYOUT_ZIGZAG : RA_LAYOUT_CONTIGUOUS;
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
    if (q->count == 0) /* before the int casts below: [2^62, 2, 0] holds nothing, and 2^62 heads were 0 */
        return RA_FAIL(RA_ERR_SHAPE, "%s: empty dimension in %s", q->path, ra_shape_str(a, sizeof a, q->ndim, q->shape));
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
            return RA_FAIL(RA_ERR_FORMAT, "--segments %s: segment ids must be int32 or int64, not %s", seg->path,
                           ra_dtype_name(seg->dtype));
        int ok = (seg->ndim == 1 && seg->shape[0] == s->L) ||
                 (seg->ndim == 2 && seg->shape[0] == s->B && seg->shape[1] == s->L);
        if (!ok)
            return RA_FAIL(RA_ERR_SHAPE, "--segments %s: segment ids must be [L] or [B, L] = [%lld] or [%d, %lld], got %s",
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

/* Every rank checks the same paths (cheap stats) and the ranks agree; only
 * rank 0 probes the output directories, as only it creates the outputs. */
static ra_status check_files(const ra_cli *c, const attn_args *a)
{
    const ra_cli_file ins[] = { { "--q", a->q }, { "--k", a->k }, { "--v", a->v },
                                { "--segments", a->seg }, { "--dout", a->dout } };
    const ra_cli_file outs[] = { { "--out", a->out }, { "--lse", a->lse }, { "--dq", a->dq },
                                 { "--dk", a->dk }, { "--dv", a->dv }, { "--trace", a->trace } };
    return ra_check_files("attn", ins, 5, outs, 6, c->rank == 0);
}

static ra_status open_inputs(const attn_args *a, attn_state *S)
{
    RA_TRY(ra_npy_open(&S->q, a->q));
    RA_TRY(ra_npy_open(&S->k, a->k));
    RA_TRY(ra_npy_open(&S->v, a->v));
    if (a->seg) RA_TRY(ra_npy_open(&S->seg, a->seg));
    if (a->dout) RA_TRY(ra_npy_open(&S->dout, a->dout));
    return RA_OK;
}

/* int64 segment ids must fit int32: the whole file scanned (on rank 0, in
 * chunks), so the element named is the first out of range whatever P and
 * the layout (each rank's slab read named its own first). */
static ra_status check_segment_range(const ra_npy *seg)
{
    enum { CHUNK = 16384 };
    int32_t *buf = malloc(CHUNK * sizeof *buf);
    if (!buf) return RA_FAIL(RA_ERR_NOMEM, "%s: out of memory to check the segment ids", seg->path);
    ra_status st = RA_OK;
    for (int64_t at = 0; st == RA_OK && at < seg->count; at += CHUNK)
        st = ra_npy_read_i32(seg, at, seg->count - at < CHUNK ? seg->count - at : CHUNK, buf);
    free(buf);
    return st;
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

/* NaN or Inf in Q, K, V or dO, over all ranks, and magnitudes that would
 * overflow (nonfinite.c). */
static ra_status check_finite(const ra_cli *c, const attn_args *a, const attn_shape *s, const attn_state *S)
{
    const int64_t bh = (int64_t)s->B * s->H, bhkv = (int64_t)s->B * s->Hkv;
    const ra_finite_input t[] = {
        { "--q", a->q, S->lq, S->q.ndim, S->q.shape, bh, s->D },
        { "--k", a->k, S->lk, S->k.ndim, S->k.shape, bhkv, s->D },
        { "--v", a->v, S->lv, S->v.ndim, S->v.shape, bhkv, s->D },
        { "--dout", a->dout, S->ldo, S->dout.ndim, S->dout.shape, bh, s->D },
    };
    const int n = a->dout ? 4 : 3;
    double maxabs[4];
    RA_TRY(ra_check_finite_inputs(c, t, n, a->layout, s->L, a->allow_nonfinite, maxabs));
    if (isinf(maxabs[0])) return RA_OK; /* --allow-nonfinite: computed as asked */
    const double scale = a->scale != 0.0f ? a->scale : 1.0 / sqrt((double)s->D);
    return ra_check_input_range(t, n, maxabs, scale, s->L);
}

/* Every output appears, or none: all are written to temporary files first
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
    ra_status st = ra_allreduce_named(MPI_IN_PLACE, G, BH * D * D, MPI_DOUBLE, MPI_SUM, c->comm,
                                      "--kappa: the Gram matrices of the head outputs");
    if (st == RA_OK && c->rank == 0) {
        printf("kappa: %5s %5s %14s %14s %14s\n", "batch", "head", "kappa", "sigma_max", "sigma_min");
        for (int bh = 0; bh < BH; bh++) {
            double smax = 0, smin = 0, k = ra_kappa_from_gram(G + (size_t)bh * D * D, D, &smax, &smin);
            printf("kappa: %5d %5d %14.6g %14.6g %14.6g\n", bh / s->H, bh % s->H, k, smax, smin);
        }
        fflush(stdout);
    }
    free(G);
    return st;
}

/* The slowest rank's seconds and wait. */
static ra_status max_over_ranks(const ra_cli *c, double *seconds, double *wait)
{
    double mine[2] = { *seconds, *wait }, most[2];
    RA_TRY(ra_allreduce_named(mine, most, 2, MPI_DOUBLE, MPI_MAX, c->comm, "attn: the slowest rank's timings"));
    *seconds = most[0], *wait = most[1];
    return RA_OK;
}

/* A barrier under the peer timeout, so that every rank starts the clock
 * together (a dead rank ends the job instead of hanging it). */
static ra_status sync_ranks(const ra_cli *c) { return ra_barrier(c->comm, "attn: every rank before timing"); }

/* The values that change the result, against rank 0's (an MPMD launch
 * with another --scale gave a wrong O with exit 0). Collective. */
static ra_status same_attn_options(const ra_cli *c, const attn_args *a)
{
    const ra_layer_config *l = &a->layer;
    char text[1024];
    snprintf(text, sizeof text,
             "--causal = %d\n--scale = %.9g\n--layout = %s\n--chunk = %d\n--kappa = %d\n--allow-nonfinite = %d\n"
             "--head = %s\n--span = %d\n--row = %d\n--precond = %s\n--precond-grad = %s\n--precond-eps = %.9g\n"
             "--precond-lambda = %.9g\n",
             a->causal, a->scale, ra_layout_name(a->layout), a->chunk, a->kappa, a->allow_nonfinite, l->head,
             l->span, l->row, l->precond, l->precond_grad, l->precond_eps, l->precond_lambda);
    return ra_same_options(c, "attn", text);
}

/* A head's own errors start with its name ("combiner-logsparse: causal
 * only ..."): said as the option that chose it, others as the command's. */
static ra_status head_cmd(const char *head, ra_status st)
{
    const char *msg = ra_last_error();
    const size_t n = strlen(head);
    if (st == RA_OK || strncmp(msg, head, n) != 0 || msg[n] != ':') return ra_arg_cmd("attn", st);
    char why[RA_ERROR_MAX]; /* RA_FAIL writes the message it would read */
    snprintf(why, sizeof why, "%s", msg);
    return RA_FAIL(st, "attn: --head %s", why);
}

static ra_status run(ra_cli *c, const attn_args *a, attn_state *S, int argc, char **argv)
{
    attn_shape s = { 0 };
    RA_TRY(ra_agree(c->comm, check_files(c, a)));
    RA_TRY(same_attn_options(c, a));
    RA_TRY(ra_cli_trace_begin(c, a->trace, "attn", argc, argv));
    RA_TRY(ra_agree(c->comm, open_inputs(a, S)));
    RA_TRY(ra_agree(c->comm, ra_arg_cmd("attn", check_shapes(&S->q, &S->k, &S->v, a->seg ? &S->seg : NULL,
                                                             a->dout ? &S->dout : NULL, c->size, &s))));
    int threads = ra_set_threads(c, a->threads, "--threads");
    RA_TRY(ra_agree(c->comm, ra_arg_cmd("attn", ra_blas_claim()))); /* before the head's buffers (threads.h) */
    ra_head_opts ho = { .ring = { .B = s.B, .H = s.H, .Hkv = s.Hkv, .D = s.D, .L = s.L, .scale = a->scale,
                                  .causal = a->causal, .layout = a->layout, .chunk = a->chunk },
                        .layer = &a->layer };
    RA_TRY(ra_agree(c->comm, head_cmd(a->layer.head, ra_head_create(&S->head, &ho, c->comm))));
    const ra_head_kind *kind = S->head->kind;
    S->Lr = ra_layout_count(a->layout, s.L, c->size, c->rank);
    if (a->seg && S->seg.dtype == RA_DT_I64)
        RA_TRY(ra_agree(c->comm, c->rank == 0 ? ra_arg_cmd("attn", check_segment_range(&S->seg)) : RA_OK));
    RA_TRY(ra_agree(c->comm, ra_arg_cmd("attn", read_inputs(c, a, &s, S))));
    RA_TRY(ra_agree(c->comm, check_finite(c, a, &s, S)));

    RA_TRY(ra_agree(c->comm, sync_ranks(c)));
    double t0 = ra_now();
    ra_status st = kind->forward(S->head, S->lq, S->lk, S->lv, S->lseg, S->lo, S->llse);
    double tf = ra_now() - t0, wf = kind->wait_seconds(S->head);
    RA_TRY(ra_agree(c->comm, st));
    RA_TRY(ra_agree(c->comm, max_over_ranks(c, &tf, &wf)));
    double tb = 0, wb = 0;
    if (a->dout) {
        RA_TRY(ra_agree(c->comm, sync_ranks(c)));
        t0 = ra_now();
        st = kind->backward(S->head, S->lq, S->lk, S->lv, S->lseg, S->lo, S->llse, S->ldo, S->ldq, S->ldk,
                            S->ldv);
        tb = ra_now() - t0, wb = kind->wait_seconds(S->head);
        RA_TRY(ra_agree(c->comm, st));
        RA_TRY(ra_agree(c->comm, max_over_ranks(c, &tb, &wb)));
    }
    RA_TRY(write_outputs(c, a, &s, S));
    if (a->kappa) RA_TRY(ra_agree(c->comm, print_kappa(c, &s, S)));

    double ff = ra_attn_flops_fwd(s.B, s.H, (double)s.L, s.D, a->causal);
    double fb = ra_attn_flops_bwd(s.B, s.H, (double)s.L, s.D, a->causal);
    ra_say(c, "attn: %s B=%d H=%d Hkv=%d L=%lld D=%d | P=%d %s %s threads=%d | forward %.4f s %.2f GFLOP/s (wait %.4f s)",
           a->layer.head, s.B, s.H, s.Hkv, (long long)s.L, s.D, c->size, ra_layout_name(a->layout),
           a->causal ? "causal" : "bidirectional", threads, tf, ff / tf * 1e-9, wf);
    if (a->dout) ra_say(c, " | backward %.4f s %.2f GFLOP/s (wait %.4f s)", tb, fb / tb * 1e-9, wb);
    ra_say(c, "\n");
    return ra_stdout_finish(c);
}

ra_status ra_cmd_attn(ra_cli *c, int argc, char **argv)
{
    attn_args a;
    int want_help = 0;
    RA_TRY(ra_agree(c->comm, ra_arg_cmd("attn", parse(argc, argv, &a, &want_help))));
    if (want_help) {
        ra_say(c, help, ra_trace_help);
        return RA_OK;
    }
    attn_state S = { .q.fd = -1, .k.fd = -1, .v.fd = -1, .seg.fd = -1, .dout.fd = -1 };
    ra_status st = ra_cli_trace_end(c, run(c, &a, &S, argc, argv));
    if (S.head) S.head->kind->destroy(S.head);
    free(S.buf);
    ra_npy_close(&S.q);
    ra_npy_close(&S.k);
    ra_npy_close(&S.v);
    ra_npy_close(&S.seg);
    ra_npy_close(&S.dout);
    return st;
}
