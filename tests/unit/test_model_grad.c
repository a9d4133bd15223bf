/* test_model_grad.c - whole-model gradients against finite differences.
 *
 * A tiny model (2 layers, SwiGLU and GELU, tied and untied head, GQA) on one
 * rank: the backward's gradient is compared with central differences of the
 * float32 forward loss (accumulated in double), (a) along random directions
 * through every parameter at once and (b) for the largest single gradient
 * entries of every tensor kind. Tolerance 2e-2 relative: the forward runs in
 * float32, so a difference quotient with step h carries noise of about
 * eps32 * loss / h ~ 1e-4 on gradients of size ~1e-2..1. */
#include <math.h>
#include <mpi.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "ringattn/config.h"
#include "ringattn/model.h"
#include "ringattn/rng.h"

typedef struct {
    ra_config cfg;
    ra_model *m;
    int32_t *tok, *tgt;
    int B;
    int64_t Lr;
    float scale;
} fixture;

static double loss_at(fixture *f)
{
    ra_batch_stats bs;
    assert_int_equal(ra_model_step(f->m, f->tok, f->tgt, 0, 0.0f, 0, &bs), RA_OK);
    return bs.loss_sum * f->scale;
}

static void setup_model_pre(fixture *f, const char *ffn, int tied, int kv_heads, const char *precond, float lam)
{
    ra_config cfg;
    ra_config_defaults(&cfg);
    cfg.vocab = 150; /* >= the recall task's alphabet (config_finish checks it) */
    cfg.dim = 16;
    cfg.layers = 2;
    cfg.heads = 4;
    cfg.kv_heads = kv_heads;
    cfg.head_dim = 0;
    snprintf(cfg.ffn, sizeof cfg.ffn, "%s", ffn);
    cfg.ffn_dim = 0;
    cfg.ffn_block = 5; /* several FFN blocks, the last one partial */
    cfg.tie_embeddings = tied;
    cfg.seq_len = 11;
    cfg.batch = 2;
    cfg.accum = 1;
    cfg.init_std = 0.3f; /* large enough that every path carries gradient */
    cfg.recall_keys = cfg.recall_pairs = cfg.recall_queries = 1; /* fits 11 tokens and vocab 150 */
    snprintf(cfg.layout, sizeof cfg.layout, "contiguous");
    for (int l = 0; l < 2; l++) {
        snprintf(cfg.layer[l].precond, sizeof cfg.layer[l].precond, "%s", precond);
        cfg.layer[l].precond_lambda = lam;
        snprintf(cfg.layer[l].precond_grad, sizeof cfg.layer[l].precond_grad, "full");
    }
    ra_status st = ra_config_finish(&cfg);
    if (st != RA_OK) fprintf(stderr, "config: %s\n", ra_last_error());
    assert_int_equal(st, RA_OK);
    f->B = 2;
    f->cfg = cfg;
    assert_int_equal(ra_model_create(&f->m, &cfg, f->B, MPI_COMM_SELF), RA_OK);
    ra_model_init(f->m, 7);
    f->Lr = ra_model_local_len(f->m);
    f->tok = malloc(sizeof(int32_t) * f->B * f->Lr);
    f->tgt = malloc(sizeof(int32_t) * f->B * f->Lr);
    int counted = 0;
    for (int64_t i = 0; i < f->B * f->Lr; i++) {
        f->tok[i] = (int32_t)(ra_rand_u64(3, (uint64_t)i) % (uint64_t)cfg.vocab);
        f->tgt[i] = i % 4 == 3 ? -1 : (int32_t)(ra_rand_u64(4, (uint64_t)i) % (uint64_t)cfg.vocab);
        counted += f->tgt[i] >= 0;
    }
    f->scale = 1.0f / (float)counted;
}

static void check_model_pre(const char *ffn, int tied, int kv_heads, const char *precond, float lam)
{
    fixture f;
    setup_model_pre(&f, ffn, tied, kv_heads, precond, lam);
    const size_t n = ra_model_nparams(f.m);
    float *w = ra_model_params(f.m);
    ra_model_zero_grads(f.m);
    ra_batch_stats bs;
    assert_int_equal(ra_model_step(f.m, f.tok, f.tgt, 1, f.scale, 0, &bs), RA_OK);
    float *g = malloc(sizeof(float) * n);
    memcpy(g, ra_model_grads(f.m), sizeof(float) * n);
    for (size_t i = 0; i < n; i++) assert_false(isnan(g[i]));

    /* (a) directional derivatives through all parameters */
    float *w0 = malloc(sizeof(float) * n), *u = malloc(sizeof(float) * n);
    memcpy(w0, w, sizeof(float) * n);
    for (int dir = 0; dir < 3; dir++) {
        double gu = 0, un = 0;
        for (size_t i = 0; i < n; i++) {
            u[i] = ra_rand_uniform(100 + dir, i);
            gu += (double)g[i] * u[i];
            un += (double)u[i] * u[i];
        }
        const double h = 3e-4 / sqrt(un / n); /* small: the model is far from linear at 1e-3 */
        for (size_t i = 0; i < n; i++) w[i] = w0[i] + (float)(h * u[i]);
        double lp = loss_at(&f);
        for (size_t i = 0; i < n; i++) w[i] = w0[i] - (float)(h * u[i]);
        double lm = loss_at(&f);
        memcpy(w, w0, sizeof(float) * n);
        double fd = (lp - lm) / (2 * h), rel = fabs(fd - gu) / fmax(fabs(gu), 1e-6);
        printf("  %s tied=%d Hkv=%d direction %d: fd %.6e  backward %.6e  rel %.2e\n", ffn, tied,
               kv_heads, dir, fd, gu, rel);
        assert_true(rel < 2e-2);
    }

    /* (b) the largest entries of each tensor kind */
    const ra_param_layout *L = ra_model_layout(f.m);
    const ra_layer_params *p0 = &L->layer[0], *p1 = &L->layer[1];
    struct { const char *name; size_t at, len; } t[] = {
        { "emb", L->emb, p0->begin - L->emb },
        { "attn_norm", p1->attn_norm, p1->wq - p1->attn_norm },
        { "wq", p0->wq, p0->wk - p0->wq },
        { "wk", p0->wk, p0->wv - p0->wk },
        { "wv", p1->wv, p1->wo - p1->wv },
        { "wo", p0->wo, p0->ffn_norm - p0->wo },
        { "ffn_norm", p0->ffn_norm, p0->w1 - p0->ffn_norm },
        { "w1", p1->w1, (p1->w3 != p1->w1 ? p1->w3 : p1->w2) - p1->w1 },
        { "w2", p1->w2, p1->end - p1->w2 },
        { "final_norm", L->final_norm, 16 },
    };
    for (size_t k = 0; k < sizeof t / sizeof *t; k++) {
        size_t best = t[k].at;
        for (size_t i = t[k].at; i < t[k].at + t[k].len; i++)
            if (fabsf(g[i]) > fabsf(g[best])) best = i;
        const float h = 1e-2f;
        float keep = w[best];
        w[best] = keep + h;
        double lp = loss_at(&f);
        w[best] = keep - h;
        double lm = loss_at(&f);
        w[best] = keep;
        double fd = (lp - lm) / (2 * h), rel = fabs(fd - g[best]) / fmax(fabs(g[best]), 1e-6);
        printf("  %s tied=%d %-10s [%zu]: fd %.6e  backward %.6e  rel %.2e\n", ffn, tied, t[k].name,
               best, fd, g[best], rel);
        assert_true(fabs(g[best]) > 1e-5); /* the entry carries gradient */
        assert_true(rel < 2e-2);
    }
    free(g), free(w0), free(u), free(f.tok), free(f.tgt);
    ra_model_destroy(f.m);
}

static void check_model(const char *ffn, int tied, int kv_heads) { check_model_pre(ffn, tied, kv_heads, "none", 0); }

static void test_swiglu_tied(void **state) { (void)state; check_model("swiglu", 1, 4); }
static void test_rownorm_full(void **state) { (void)state; check_model_pre("swiglu", 1, 2, "rownorm", 0); }
static void test_spectral(void **state) { (void)state; check_model_pre("gelu", 0, 4, "spectral", 0.5f); }

/* spectral with lambda is, by definition, plain W + lambda I */
static void test_spectral_definition(void **state)
{
    (void)state;
    fixture a, b;
    const float lam = 0.7f;
    setup_model_pre(&a, "swiglu", 1, 4, "spectral", lam);
    setup_model_pre(&b, "swiglu", 1, 4, "none", 0);
    const size_t n = ra_model_nparams(a.m);
    float *wb = ra_model_params(b.m);
    memcpy(wb, ra_model_params(a.m), sizeof(float) * n);
    const ra_param_layout *L = ra_model_layout(b.m);
    const int C = 16, HD = 16, KD = 16; /* dim 16, 4 heads of 4, kv heads 4 */
    for (int l = 0; l < 2; l++)
        for (int j = 0; j < C; j++) {
            if (j < HD) wb[L->layer[l].wq + (size_t)j * HD + j] += lam;
            if (j < KD) wb[L->layer[l].wk + (size_t)j * KD + j] += lam, wb[L->layer[l].wv + (size_t)j * KD + j] += lam;
        }
    ra_batch_stats sa, sb;
    ra_model_zero_grads(a.m);
    ra_model_zero_grads(b.m);
    assert_int_equal(ra_model_step(a.m, a.tok, a.tgt, 1, a.scale, 0, &sa), RA_OK);
    assert_int_equal(ra_model_step(b.m, b.tok, b.tgt, 1, b.scale, 0, &sb), RA_OK);
    double rel = fabs(sa.loss_sum - sb.loss_sum) / fabs(sb.loss_sum), gmax = 0, gerr = 0;
    const float *ga = ra_model_grads(a.m), *gb = ra_model_grads(b.m);
    for (size_t i = 0; i < n; i++) {
        gmax = fmax(gmax, fabs(gb[i]));
        gerr = fmax(gerr, fabs(ga[i] - gb[i]));
    }
    printf("  spectral lambda %.1f vs W + lambda I: loss rel %.2e, gradients %.2e\n", lam, rel, gerr / gmax);
    assert_true(rel < 1e-5);
    assert_true(gerr / gmax < 1e-4);
    free(a.tok), free(a.tgt), free(b.tok), free(b.tgt);
    ra_model_destroy(a.m);
    ra_model_destroy(b.m);
}
/* eval's and generate's model (ra_model_create_inference): no gradients,
 * a block smaller by at least them, the same forward bit for bit, and a
 * backward refused by name */
static void test_inference_model(void **state)
{
    (void)state;
    fixture f;
    setup_model_pre(&f, "swiglu", 0, 2, "rownorm", 0);
    const size_t n = ra_model_nparams(f.m);
    ra_model *mi;
    assert_int_equal(ra_model_create_inference(&mi, &f.cfg, f.B, MPI_COMM_SELF), RA_OK);
    assert_int_equal(ra_model_nparams(mi), n);
    assert_null(ra_model_grads(mi));
    memcpy(ra_model_params(mi), ra_model_params(f.m), sizeof(float) * n);
    ra_batch_stats a, b;
    assert_int_equal(ra_model_step(f.m, f.tok, f.tgt, 0, 0.0f, 0, &a), RA_OK);
    assert_int_equal(ra_model_step(mi, f.tok, f.tgt, 0, 0.0f, 0, &b), RA_OK);
    assert_true(a.loss_sum == b.loss_sum);
    assert_true(a.count == b.count && a.correct == b.correct);
    float la[150], lb[150];
    ra_model_logits_rows(f.m, f.B * f.Lr - 1, 1, la);
    ra_model_logits_rows(mi, f.B * f.Lr - 1, 1, lb);
    assert_memory_equal(la, lb, sizeof la);
    ra_model_zero_grads(mi); /* nothing to zero */
    assert_int_equal(ra_model_step(mi, f.tok, f.tgt, 1, f.scale, 0, &b), RA_ERR_INTERNAL);
    assert_non_null(strstr(ra_last_error(), "inference"));
    size_t train_bytes, inference_bytes, np;
    assert_int_equal(ra_model_plan_bytes_as(&f.cfg, f.B, 1, 0, 0, &train_bytes, &np), RA_OK);
    assert_int_equal(ra_model_plan_bytes_as(&f.cfg, f.B, 1, 0, 1, &inference_bytes, &np), RA_OK);
    assert_true(inference_bytes + sizeof(float) * n <= train_bytes);
    ra_model_destroy(mi);
    ra_model_destroy(f.m);
    free(f.tok);
    free(f.tgt);
}

static void test_gelu_untied_gqa(void **state) { (void)state; check_model("gelu", 0, 2); }
static void test_swiglu_untied_mqa(void **state) { (void)state; check_model("swiglu", 0, 1); }

int main(int argc, char **argv)
{
    MPI_Init(&argc, &argv);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_swiglu_tied),
        cmocka_unit_test(test_gelu_untied_gqa),
        cmocka_unit_test(test_swiglu_untied_mqa),
        cmocka_unit_test(test_rownorm_full),
        cmocka_unit_test(test_spectral),
        cmocka_unit_test(test_spectral_definition),
        cmocka_unit_test(test_inference_model),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    MPI_Finalize();
    return rc;
}
