/* dispatch.c - the public names of the kernel functions in a portable
 * build: each calls the copy of attn.c, layers.c or combiner_logsparse.c
 * compiled for the x86-64 level chosen at the first call (ringattn/isa.h;
 * the names: isa_names.h). In a build with one copy (-Dnative=true, or not
 * x86-64) only ra_kernel_isa and ra_kernel_isa_problem are here. */
#include "ringattn/isa.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "heads/combiner_logsparse.h"
#include "ringattn/attn.h"
#include "ringattn/layers.h"
#include "ringattn/status.h"

static char g_problem[256];

/* RINGATTN_ISA, when set and not empty */
static const char *requested(void)
{
    const char *want = getenv("RINGATTN_ISA");
    return want && *want ? want : NULL;
}

/* want as a message shows it: 64 bytes at most (ra_shown) */
static const char *shown(const char *want)
{
    static char buf[64 + 4];
    return ra_shown(buf, want, 64);
}

#if !RA_KERNEL_DISPATCH

const char *ra_kernel_isa(void) { return RA_KERNEL_BUILD; }

const char *ra_kernel_isa_problem(void)
{
    const char *want = requested();
    if (!want) return NULL;
    snprintf(g_problem, sizeof g_problem,
             "RINGATTN_ISA=%s: this build has one copy of its kernels (%s); "
             "a build with -Dnative=false on x86-64 chooses among x86-64, x86-64-v3 and x86-64-v4",
             shown(want), RA_KERNEL_BUILD);
    return g_problem;
}

#else

/* Every function the kernel files export, with its parameters and the
 * call's arguments: X(return type, name, (parameters), (arguments)). The
 * definitions below must match the public headers (the compiler checks). */
#define VALUE_KERNELS(X)                                                                            \
    X(size_t, ra_attn_scratch_floats, (int D), (D))                                                \
    X(size_t, ra_attn_scratch_floats_threads, (int D, int threads), (D, threads))                  \
    X(double, ra_attn_flops_fwd, (double B, double H, double L, double D, int causal),            \
      (B, H, L, D, causal))                                                                         \
    X(double, ra_attn_flops_bwd, (double B, double H, double L, double D, int causal),            \
      (B, H, L, D, causal))                                                                         \
    X(double, ra_xent,                                                                              \
      (float *dlogits, const float *logits, const int32_t *tgt, int N, int V, float scale,        \
       int64_t *count, int64_t *correct),                                                           \
      (dlogits, logits, tgt, N, V, scale, count, correct))                                          \
    X(double, ra_kappa_from_gram, (const double *G, int D, double *sigma_max, double *sigma_min), \
      (G, D, sigma_max, sigma_min))                                                                 \
    X(ra_status, ra_ls_forward,                                                                     \
      (ra_head *hd, const float *q, const float *k, const float *v, const int32_t *seg, float *out, \
       float *lse),                                                                                 \
      (hd, q, k, v, seg, out, lse))                                                                 \
    X(ra_status, ra_ls_backward,                                                                    \
      (ra_head *hd, const float *q, const float *k, const float *v, const int32_t *seg,            \
       const float *out, const float *lse, const float *dout, float *dq, float *dk, float *dv),    \
      (hd, q, k, v, seg, out, lse, dout, dq, dk, dv))

#define VOID_KERNELS(X)                                                                             \
    X(void, ra_attn_fwd_init, (int nq, int D, float *acc, float *m, float *l), (nq, D, acc, m, l)) \
    X(void, ra_attn_fwd_block,                                                                      \
      (const ra_attn_opts *opt, const ra_rows *qr, const float *q, const ra_rows *kr,              \
       const float *k, const float *v, float *acc, float *m, float *l, float *scratch,             \
       const ra_poll *poll),                                                                        \
      (opt, qr, q, kr, k, v, acc, m, l, scratch, poll))                                             \
    X(void, ra_attn_fwd_finish, (int nq, int D, float *acc, const float *m, const float *l, float *lse), \
      (nq, D, acc, m, l, lse))                                                                      \
    X(void, ra_attn_bwd_rowdot, (int nq, int D, const float *o, const float *dout, float *dl),     \
      (nq, D, o, dout, dl))                                                                         \
    X(void, ra_attn_bwd_block,                                                                      \
      (const ra_attn_opts *opt, const ra_rows *qr, const float *q, const float *dout,              \
       const float *lse, const float *dl, const ra_rows *kr, const float *k, const float *v,       \
       float *dq, float *dk, float *dv, float *scratch, const ra_poll *poll),                      \
      (opt, qr, q, dout, lse, dl, kr, k, v, dq, dk, dv, scratch, poll))                             \
    X(void, ra_attn_bwd_block_split,                                                                \
      (const ra_attn_opts *opt, const ra_rows *qr, const float *q, const float *dout,              \
       const float *lse_hi, const float *lse_lo, const float *dl, const ra_rows *kr,               \
       const float *k, const float *v, float *dq, float *dk, float *dv, float *scratch,            \
       const ra_poll *poll),                                                                        \
      (opt, qr, q, dout, lse_hi, lse_lo, dl, kr, k, v, dq, dk, dv, scratch, poll))                  \
    X(void, ra_rmsnorm_forward, (float *y, float *rstd, const float *x, const float *g, int N, int C, float eps), \
      (y, rstd, x, g, N, C, eps))                                                                   \
    X(void, ra_rmsnorm_backward,                                                                    \
      (float *dx, float *dg, const float *dy, const float *x, const float *g, const float *rstd,  \
       int N, int C),                                                                               \
      (dx, dg, dy, x, g, rstd, N, C))                                                               \
    X(void, ra_linear_forward, (float *y, const float *x, const float *w, int N, int n_in, int n_out), \
      (y, x, w, N, n_in, n_out))                                                                    \
    X(void, ra_linear_backward,                                                                     \
      (float *dx, float *dw, const float *dy, const float *x, const float *w, int N, int n_in,    \
       int n_out),                                                                                  \
      (dx, dw, dy, x, w, N, n_in, n_out))                                                           \
    X(void, ra_rope_forward, (float *x, int nh, int n, int D, const int32_t *pos, float theta),     \
      (x, nh, n, D, pos, theta))                                                                    \
    X(void, ra_rope_backward, (float *dx, int nh, int n, int D, const int32_t *pos, float theta),  \
      (dx, nh, n, D, pos, theta))                                                                   \
    X(void, ra_swiglu_forward, (float *u, const float *a, const float *b, size_t n), (u, a, b, n)) \
    X(void, ra_swiglu_backward,                                                                     \
      (float *da, float *db, const float *du, const float *a, const float *b, size_t n),          \
      (da, db, du, a, b, n))                                                                        \
    X(void, ra_gelu_forward, (float *y, const float *a, size_t n), (y, a, n))                      \
    X(void, ra_gelu_backward, (float *da, const float *dy, const float *a, size_t n), (da, dy, a, n)) \
    X(void, ra_embed_forward, (float *x, const int32_t *tok, const float *E, int N, int C),        \
      (x, tok, E, N, C))                                                                            \
    X(void, ra_embed_backward, (float *dE, const int32_t *tok, const float *dx, int N, int C),     \
      (dE, tok, dx, N, C))                                                                          \
    X(void, ra_xent_rows,                                                                           \
      (float *dlogits, const float *logits, const int32_t *tgt, int N, int V, float scale,        \
       double *loss, int64_t *count, int64_t *correct),                                             \
      (dlogits, logits, tgt, N, V, scale, loss, count, correct))                                    \
    X(void, ra_rownorm_forward, (float *o, float *norm, int N, int D, float eps), (o, norm, N, D, eps)) \
    X(void, ra_rownorm_backward,                                                                    \
      (float *dot, const float *ot, const float *norm, int N, int D, float eps, int full),        \
      (dot, ot, norm, N, D, eps, full))                                                             \
    X(void, ra_gram_accumulate, (double *G, const float *o, int N, int D), (G, o, N, D))

/* One copy of the kernels: a pointer per function. */
typedef struct {
    const char *name;
    int (*runs)(void); /* 1 when this CPU (and OS) can run it */
#define FIELD(ret, fn, params, args) ret(*fn) params;
    VALUE_KERNELS(FIELD) VOID_KERNELS(FIELD)
#undef FIELD
} kernel_set;

/* The copies src/meson.build compiled, their names suffixed (isa_names.h) */
#define DECLARE(ret, fn, params, args) ret fn##_x86_64 params;
VALUE_KERNELS(DECLARE) VOID_KERNELS(DECLARE)
#undef DECLARE
#if RA_HAVE_X86_64_V3
#define DECLARE(ret, fn, params, args) ret fn##_x86_64_v3 params;
VALUE_KERNELS(DECLARE) VOID_KERNELS(DECLARE)
#undef DECLARE
#endif
#if RA_HAVE_X86_64_V4
#define DECLARE(ret, fn, params, args) ret fn##_x86_64_v4 params;
VALUE_KERNELS(DECLARE) VOID_KERNELS(DECLARE)
#undef DECLARE
#endif

/* libgcc's (and compiler-rt's) CPU flags include the OS's support: AVX
 * and AVX-512 count only when the kernel saves their registers. The
 * features named are the ones each level's -march lets the compiler use
 * that a CPU of the previous level may lack. */
static int runs_x86_64(void) { return 1; }

static int runs_x86_64_v3(void)
{
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx") && __builtin_cpu_supports("avx2") &&
           __builtin_cpu_supports("fma") && __builtin_cpu_supports("bmi") &&
           __builtin_cpu_supports("bmi2");
}

static int runs_x86_64_v4(void)
{
    return runs_x86_64_v3() && __builtin_cpu_supports("avx512f") &&
           __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512cd") &&
           __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl");
}

static const kernel_set levels[] = {
#define SET(level, label)                                                      \
    { .name = label, .runs = runs_##level,                                     \
      VALUE_KERNELS(ENTRY_##level) VOID_KERNELS(ENTRY_##level) },
#define ENTRY_x86_64(ret, fn, params, args) .fn = fn##_x86_64,
    SET(x86_64, "x86-64")
#if RA_HAVE_X86_64_V3
#define ENTRY_x86_64_v3(ret, fn, params, args) .fn = fn##_x86_64_v3,
    SET(x86_64_v3, "x86-64-v3")
#endif
#if RA_HAVE_X86_64_V4
#define ENTRY_x86_64_v4(ret, fn, params, args) .fn = fn##_x86_64_v4,
    SET(x86_64_v4, "x86-64-v4")
#endif
#undef SET
};
enum { NLEVELS = sizeof levels / sizeof levels[0] };

static const kernel_set *g_set;
static pthread_once_t g_once = PTHREAD_ONCE_INIT;

/* The best level the CPU runs, unless RINGATTN_ISA names one it runs. */
static void choose(void)
{
    const kernel_set *best = &levels[0];
    for (int i = 1; i < NLEVELS; i++)
        if (levels[i].runs()) best = &levels[i];
    g_set = best;
    const char *want = requested();
    if (!want) return;
    for (int i = 0; i < NLEVELS; i++) {
        if (strcmp(want, levels[i].name) != 0) continue;
        if (levels[i].runs()) g_set = &levels[i];
        else
            snprintf(g_problem, sizeof g_problem,
                     "RINGATTN_ISA=%s: this CPU cannot run it (it runs up to %s)", want, best->name);
        return;
    }
    char have[64] = "";
    for (int i = 0; i < NLEVELS; i++)
        snprintf(have + strlen(have), sizeof have - strlen(have), "%s%s", i ? ", " : "", levels[i].name);
    snprintf(g_problem, sizeof g_problem, "RINGATTN_ISA=%s: not a level of this build (%s)", shown(want), have);
}

static const kernel_set *kernels(void)
{
    pthread_once(&g_once, choose);
    return g_set;
}

const char *ra_kernel_isa(void) { return kernels()->name; }

const char *ra_kernel_isa_problem(void) { return kernels(), g_problem[0] ? g_problem : NULL; }

#define FORWARD_VALUE(ret, fn, params, args) \
    ret fn params { return kernels()->fn args; }
#define FORWARD_VOID(ret, fn, params, args) \
    ret fn params { kernels()->fn args; }
VALUE_KERNELS(FORWARD_VALUE)
VOID_KERNELS(FORWARD_VOID)

#endif
