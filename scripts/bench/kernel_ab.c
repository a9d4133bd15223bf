/* kernel_ab.c - two builds of the attention kernels (A: the tree's, B: a
 * changed copy) timed in one process, call by call, on one core.
 *
 * Built and run by kernel_ab.sh, which compiles src/kernels/attn.c and
 * tile_gemm.c twice with -DRA_ISA_SUFFIX=_ab_a and _ab_b (isa_names.h
 * renames their functions), so both copies link side by side. A machine
 * whose speed drifts by 10-40 % within minutes cannot compare two binaries
 * run one after the other; here each round times A and B back to back (the
 * order alternating), and the median of the rounds' time ratios B/A is the
 * figure. The outputs of the last round are compared: B must equal A
 * within the tests' tolerances (O 1e-5, LSE 1e-4 normalised; dQ, dK, dV
 * 1e-4), or the program exits 1 (--no-check: a deliberately wrong B, to
 * bound what a change could gain).
 *
 *   kernel_ab [-L 4096] [-H 4] [-D 64] [-r 31] [--causal] [--bwd] [--no-check]
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ringattn/attn.h"

/* one copy's entry points (attn.h's, with the copy's suffix) */
#define COPY_DECLS(S)                                                                                          \
    size_t ra_attn_scratch_floats##S(int D);                                                                   \
    void ra_attn_fwd_init##S(int nq, int D, float *acc, float *m, float *l);                                   \
    void ra_attn_fwd_block##S(const ra_attn_opts *o, const ra_rows *qr, const float *q, const ra_rows *kr,     \
                              const float *k, const float *v, float *acc, float *m, float *l, float *scratch, \
                              const ra_poll *poll);                                                            \
    void ra_attn_fwd_finish##S(int nq, int D, float *acc, const float *m, const float *l, float *lse);         \
    void ra_attn_bwd_rowdot##S(int nq, int D, const float *o, const float *dout, float *dl);                   \
    void ra_attn_bwd_block##S(const ra_attn_opts *o, const ra_rows *qr, const float *q, const float *dout,     \
                              const float *lse, const float *dl, const ra_rows *kr, const float *k,           \
                              const float *v, float *dq, float *dk, float *dv, float *scratch,                \
                              const ra_poll *poll);
COPY_DECLS(_ab_a)
COPY_DECLS(_ab_b)

typedef struct {
    size_t (*scratch_floats)(int);
    void (*fwd_init)(int, int, float *, float *, float *);
    void (*fwd_block)(const ra_attn_opts *, const ra_rows *, const float *, const ra_rows *, const float *,
                      const float *, float *, float *, float *, float *, const ra_poll *);
    void (*fwd_finish)(int, int, float *, const float *, const float *, float *);
    void (*bwd_rowdot)(int, int, const float *, const float *, float *);
    void (*bwd_block)(const ra_attn_opts *, const ra_rows *, const float *, const float *, const float *,
                      const float *, const ra_rows *, const float *, const float *, float *, float *, float *,
                      float *, const ra_poll *);
} copy_fns;
#define COPY(S) { ra_attn_scratch_floats##S, ra_attn_fwd_init##S, ra_attn_fwd_block##S, \
                  ra_attn_fwd_finish##S, ra_attn_bwd_rowdot##S, ra_attn_bwd_block##S }
static const copy_fns copies[2] = { COPY(_ab_a), COPY(_ab_b) };

/* Per copy, all heads: [H][L][D] tensors, [H][L] rows. */
typedef struct {
    float *o, *m, *l, *lse, *dl, *dq, *dk, *dv;
} outputs;

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static void *alloc_or_die(size_t bytes)
{
    void *p = aligned_alloc(64, (bytes + 63) / 64 * 64);
    if (!p) {
        fprintf(stderr, "kernel_ab: out of memory for %zu bytes (try a smaller -L)\n", bytes);
        exit(2);
    }
    memset(p, 0, bytes);
    return p;
}

static int cmp_double(const void *a, const void *b)
{
    const double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* max |a - b| / max |b| over n values (NaN anywhere: infinity) */
static double norm_err(const float *a, const float *b, size_t n)
{
    double e = 0, top = 0;
    for (size_t i = 0; i < n; i++) {
        const double d = fabs((double)a[i] - b[i]);
        if (d != d) return INFINITY;
        if (d > e) e = d;
        if (fabs((double)b[i]) > top) top = fabs((double)b[i]);
    }
    return top > 0 ? e / top : e;
}

typedef struct {
    int L, H, D, rounds, causal, bwd, check;
} ab_args;

static int parse_int(const char *flag, const char *s, int lo, int hi)
{
    char *end;
    long v = strtol(s ? s : "", &end, 10);
    if (!s || *end || end == s || v < lo || v > hi) {
        fprintf(stderr, "kernel_ab: %s needs a whole number from %d to %d (got '%s')\n", flag, lo, hi,
                s ? s : "");
        exit(2);
    }
    return (int)v;
}

static ab_args parse(int argc, char **argv)
{
    ab_args a = { .L = 4096, .H = 4, .D = 64, .rounds = 31, .check = 1 };
    for (int i = 1; i < argc; i++) {
        const char *f = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(f, "-L")) a.L = parse_int(f, v, 16, 1 << 16), i++;
        else if (!strcmp(f, "-H")) a.H = parse_int(f, v, 1, 64), i++;
        else if (!strcmp(f, "-D")) a.D = parse_int(f, v, 1, 256), i++;
        else if (!strcmp(f, "-r")) a.rounds = parse_int(f, v, 2, 100000), i++;
        else if (!strcmp(f, "--causal")) a.causal = 1;
        else if (!strcmp(f, "--bwd")) a.bwd = 1;
        else if (!strcmp(f, "--no-check")) a.check = 0;
        else {
            fprintf(stderr, "kernel_ab: unknown option '%s' (usage: kernel_ab [-L N] [-H N] [-D N] [-r N] "
                            "[--causal] [--bwd] [--no-check])\n", f);
            exit(2);
        }
    }
    return a;
}

int main(int argc, char **argv)
{
    const ab_args a = parse(argc, argv);
    const int L = a.L, H = a.H, D = a.D;
    const size_t n = (size_t)L * D, nt = n * H, nr = (size_t)L * H;
    /* 4 inputs and 4 outputs of [H][L][D] per copy: refused before any
     * allocation past what a benchmark machine holds (the pages would be
     * touched: the OOM killer, not an error) */
    const double need = 4.0 * (4 + 2 * 4) * (double)nt + 4.0 * 2 * 4 * (double)nr;
    if (need > 8.0 * (1 << 30)) {
        fprintf(stderr, "kernel_ab: -L %d -H %d -D %d need %.1f GiB; at most 8 (give a smaller -L or -H)\n", L, H, D,
                need / (1 << 30));
        return 2;
    }
    float *q = alloc_or_die(4 * nt), *k = alloc_or_die(4 * nt), *v = alloc_or_die(4 * nt);
    float *dout = alloc_or_die(4 * nt);
    int32_t *pos = alloc_or_die(4 * (size_t)L);
    for (int i = 0; i < L; i++) pos[i] = i;
    unsigned x = 12345; /* a fixed LCG: both copies see the same inputs in every run */
    float *ins[4] = { q, k, v, dout };
    for (int t = 0; t < 4; t++)
        for (size_t i = 0; i < nt; i++) {
            x = x * 1664525u + 1013904223u;
            ins[t][i] = (float)(x >> 8) / 16777216.0f - 0.5f;
        }
    outputs out[2];
    size_t sf = 0;
    for (int c = 0; c < 2; c++) {
        outputs *o = &out[c];
        o->o = alloc_or_die(4 * nt), o->dq = alloc_or_die(4 * nt), o->dk = alloc_or_die(4 * nt);
        o->dv = alloc_or_die(4 * nt);
        o->m = alloc_or_die(4 * nr), o->l = alloc_or_die(4 * nr), o->lse = alloc_or_die(4 * nr);
        o->dl = alloc_or_die(4 * nr);
        if (copies[c].scratch_floats(D) > sf) sf = copies[c].scratch_floats(D);
    }
    float *scratch = alloc_or_die(4 * sf);
    const ra_attn_opts opt = { .D = D, .scale = 1.0f / sqrtf((float)D), .causal = a.causal, .threads = 1 };
    const ra_rows rows = { L, pos, NULL };
    double *ratio = malloc(sizeof(double) * (size_t)a.rounds), tsum[2] = { 0, 0 };
    if (!ratio) return 2;
    /* round 0 warms both copies up and is not counted */
    for (int it = 0; it <= a.rounds; it++) {
        double t[2];
        for (int turn = 0; turn < 2; turn++) {
            const int c = (it & 1) ? 1 - turn : turn; /* alternate who goes first */
            const copy_fns *f = &copies[c];
            outputs *o = &out[c];
            double t0 = 0;
            for (int h = 0; h < H; h++) {
                const size_t to = (size_t)h * n, ro = (size_t)h * L;
                if (!a.bwd && h == 0) t0 = now();
                f->fwd_init(L, D, o->o + to, o->m + ro, o->l + ro);
                f->fwd_block(&opt, &rows, q + to, &rows, k + to, v + to, o->o + to, o->m + ro, o->l + ro, scratch,
                             NULL);
                f->fwd_finish(L, D, o->o + to, o->m + ro, o->l + ro, o->lse + ro);
            }
            if (a.bwd) {
                t0 = now();
                memset(o->dq, 0, 4 * nt), memset(o->dk, 0, 4 * nt), memset(o->dv, 0, 4 * nt);
                for (int h = 0; h < H; h++) {
                    const size_t to = (size_t)h * n, ro = (size_t)h * L;
                    f->bwd_rowdot(L, D, o->o + to, dout + to, o->dl + ro);
                    f->bwd_block(&opt, &rows, q + to, dout + to, o->lse + ro, o->dl + ro, &rows, k + to, v + to,
                                 o->dq + to, o->dk + to, o->dv + to, scratch, NULL);
                }
            }
            t[c] = now() - t0;
        }
        if (it > 0) ratio[it - 1] = t[1] / t[0], tsum[0] += t[0], tsum[1] += t[1];
    }
    qsort(ratio, (size_t)a.rounds, sizeof(double), cmp_double);
    const double flop = (a.bwd ? 10.0 : 4.0) * H * (double)L * L * D * (a.causal ? 0.5 : 1.0) * a.rounds;
    const double e_o = norm_err(out[1].o, out[0].o, nt), e_lse = norm_err(out[1].lse, out[0].lse, nr);
    double e_g = 0;
    if (a.bwd) {
        const float *gb[3] = { out[1].dq, out[1].dk, out[1].dv }, *ga[3] = { out[0].dq, out[0].dk, out[0].dv };
        for (int g = 0; g < 3; g++) e_g = fmax(e_g, norm_err(gb[g], ga[g], nt));
    }
    const int ok = e_o <= 1e-5 && e_lse <= 1e-4 && e_g <= 1e-4;
    printf("%-4s %6s %3s %3s %6s %7s %9s %9s %8s %8s %8s %9s %9s %9s %6s\n", "dir", "L", "H", "D", "causal",
           "rounds", "A_GFLOP/s", "B_GFLOP/s", "B/A_med", "B/A_q1", "B/A_q3", "err_O", "err_LSE", "err_grad",
           "check");
    printf("%-4s %6d %3d %3d %6d %7d %9.2f %9.2f %8.4f %8.4f %8.4f %9.2e %9.2e %9.2e %6s\n", a.bwd ? "bwd" : "fwd", L,
           H, D, a.causal, a.rounds, flop / tsum[0] * 1e-9, flop / tsum[1] * 1e-9, ratio[(a.rounds - 1) / 2],
           ratio[(a.rounds - 1) / 4], ratio[3 * (a.rounds - 1) / 4], e_o, e_lse, e_g,
           !a.check ? "-" : ok ? "OK" : "FAIL");
    return a.check && !ok ? 1 : 0;
}
