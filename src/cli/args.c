/* args.c - option values and rank-0 printing for the subcommands. */
#include <cblas.h>
#include <errno.h>
#include <float.h>
#include <getopt.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cli.h"
#include "ringattn/dist.h"
#include "ringattn/names.h"
#include "ringattn/threads.h"

ra_status ra_arg_long(const char *opt, const char *val, long lo, long hi, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(val, &end, 10);
    if (errno == ERANGE && end != val && !*end) /* whole digits past long: a range, not a spelling, to name */
        return RA_FAIL(RA_ERR_ARG, "%s: %s is out of range [%ld, %ld]", opt, val, lo, hi);
    if (errno || end == val || *end)
        return RA_FAIL(RA_ERR_ARG, "%s: '%s' is not an integer", opt, val);
    if (v < lo || v > hi)
        return RA_FAIL(RA_ERR_ARG, "%s: %ld is out of range [%ld, %ld]", opt, v, lo, hi);
    *out = v;
    return RA_OK;
}

ra_status ra_arg_int(const char *opt, const char *val, int lo, int hi, int *out)
{
    long v = 0;
    RA_TRY(ra_arg_long(opt, val, lo, hi, &v));
    *out = (int)v;
    return RA_OK;
}

ra_status ra_arg_size(const char *opt, const char *val, int64_t lo, int64_t *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(val, &end, 10);
    if (errno || end == val) return RA_FAIL(RA_ERR_ARG, "%s: '%s' is not a size", opt, val);
    long long mult = 1;
    if (*end == 'K' || *end == 'k') mult = 1024LL, end++;
    else if (*end == 'M' || *end == 'm') mult = 1024LL * 1024, end++;
    else if (*end == 'G' || *end == 'g') mult = 1024LL * 1024 * 1024, end++;
    if (*end) return RA_FAIL(RA_ERR_ARG, "%s: '%s' is not a size (digits with an optional K, M or G)", opt, val);
    if (v < lo || v > INT32_MAX / mult)
        return RA_FAIL(RA_ERR_ARG, "%s: %s is out of range [%lld, 2^31-1]", opt, val, (long long)lo);
    *out = v * mult;
    return RA_OK;
}

ra_status ra_arg_float(const char *opt, const char *val, float *out)
{
    char *end;
    errno = 0;
    double v = strtod(val, &end);
    /* 1e-400: a number, too small for a double (strtod says ERANGE and gives 0 or a subnormal) */
    if (errno == ERANGE && end != val && !*end && fabs(v) <= DBL_MIN)
        return RA_FAIL(RA_ERR_ARG, "%s: '%s' is below the smallest number (it underflows to 0): give 0 for zero",
                       opt, val);
    if (errno || end == val || *end || !isfinite(v))
        return RA_FAIL(RA_ERR_ARG, "%s: '%s' is not a finite number", opt, val);
    if (val[strspn(val, " \t+-0123456789.eE")] != '\0') /* strtod's hex (0x10), as config floats refuse it */
        return RA_FAIL(RA_ERR_ARG, "%s: '%s' is not a decimal number", opt, val);
    *out = (float)v;
    return RA_OK;
}

ra_status ra_arg_path(const char *opt, const char *val, char *dst, size_t cap)
{
    const size_t n = strlen(val);
    if (n >= cap) /* a silent cut would write somewhere else */
        return RA_FAIL(RA_ERR_ARG, "%s: the path is %zu bytes long; at most %zu are allowed", opt, n, cap - 1);
    for (const char *c = val; *c; c++) /* the config text saved in checkpoints holds it on one line */
        if ((unsigned char)*c < 0x20 && *c != '\t')
            return RA_FAIL(RA_ERR_ARG, "%s: the path contains control character 0x%02x", opt,
                           (unsigned)(unsigned char)*c);
    memcpy(dst, val, n + 1);
    return RA_OK;
}

/* The options seen in this parse, by getopt's code, with their first value. */
#define SEEN_MAX 64
typedef struct {
    int code;
    const char *value;
} seen_option;
static seen_option g_seen[SEEN_MAX];
static int g_nseen;
static char g_twice[512]; /* RA_OPT_TWICE's message (a repeat, or a value that is an option), after "cmd: " */
/* The argument of the last getopt call, and the parse's long options:
 * argv[optind - 1] is not it inside a bundle of short options ("-checkpoint"
 * named the command) nor before an option's separate value ("ck") */
static const char *g_arg;
static const struct option *g_opts;

static void option_name(char *buf, size_t n, int code, const struct option *opts)
{
    for (const struct option *o = opts; o && o->name; o++)
        if (!o->flag && o->val == code) {
            snprintf(buf, n, "--%s", o->name);
            return;
        }
    snprintf(buf, n, "-%c", code > 0 && code < 128 ? code : '?');
}

/* The argument a getopt_long call that started at index from worked on:
 * argv[from] when it is an option (a bundle stays there until its last
 * letter), else the first option after the arguments it moved past. */
static const char *option_at(int argc, char **argv, int from)
{
    for (int i = from; i < argc; i++)
        if (argv[i][0] == '-' && argv[i][1]) return argv[i];
    return NULL;
}

static const char *one_dash_long(const char *arg, size_t min_len);

int ra_getopt(int argc, char **argv, const char *shortopts, const struct option *opts)
{
    if (optind <= 1) g_nseen = 0; /* a new parse */
    const int from = optind;
    g_opts = opts;
    /* a long option typed with one dash ("-causal", "-trace x"): getopt
     * would read its letters as short options, "-c" with the value "ausal" */
    g_arg = option_at(argc, argv, from);
    if (g_arg && one_dash_long(g_arg, 2)) { /* "-L 8" may be a short option with its value */
        optind++;
        return '?';
    }
    const int code = getopt_long(argc, argv, shortopts, opts, NULL);
    /* -h only alone: "-hostile" printed the help and exited 0 */
    if (code == 'h' && g_arg && strcmp(g_arg, "-h") != 0 && strncmp(g_arg, "--", 2) != 0) return '?';
    if (code == -1 || code == '?' || code == ':' || !optarg) return code;
    char name[64];
    option_name(name, sizeof name, code, opts);
    if (optarg[0] == '-' && optarg[1] == '-') /* "--metrics --trace": the value is the next option */
        for (const struct option *o = opts; o && o->name; o++) {
            const size_t n = strlen(o->name);
            if (strncmp(optarg + 2, o->name, n) == 0 && (optarg[2 + n] == '\0' || optarg[2 + n] == '=')) {
                snprintf(g_twice, sizeof g_twice, "%s needs a value, but is followed by the option %.100s (a file "
                                                  "named so: ./%.100s)", name, optarg, optarg);
                return RA_OPT_TWICE;
            }
        }
    if (strcmp(name, "--set") == 0) return code;
    for (int i = 0; i < g_nseen; i++)
        if (g_seen[i].code == code) {
            snprintf(g_twice, sizeof g_twice, "%s is given twice ('%.200s', then '%.200s'); give it once", name,
                     g_seen[i].value, optarg);
            return RA_OPT_TWICE;
        }
    if (g_nseen < SEEN_MAX) g_seen[g_nseen++] = (seen_option){ code, optarg };
    return code;
}

/* main.c's options of every command */
static const struct option global_opts[] = { { "verbose", no_argument, 0, 0 }, { "no-bind", no_argument, 0, 0 },
                                             { 0, 0, 0, 0 } };

/* The parse's long option (or a global one) named by arg after `dashes`
 * dashes, up to an '=', or NULL. */
static const struct option *long_named(const char *arg, int dashes)
{
    const char *name = arg + dashes;
    const size_t n = strcspn(name, "=");
    for (int g = 0; g < 2; g++)
        for (const struct option *o = g ? global_opts : g_opts; o && o->name; o++)
            if (strlen(o->name) == n && strncmp(name, o->name, n) == 0) return o;
    return NULL;
}

/* "-checkpoint" for --checkpoint (one dash: getopt reads the letters -c -h ...):
 * the long option meant, at least min_len letters, or NULL. */
static const char *one_dash_long(const char *arg, size_t min_len)
{
    if (!arg || arg[0] != '-' || arg[1] == '-' || !arg[1]) return NULL;
    const struct option *o = long_named(arg, 1);
    return o && strlen(o->name) >= min_len ? o->name : NULL;
}

ra_status ra_arg_unknown(const char *cmd, int c, const char *arg)
{
    if (c == RA_OPT_TWICE) return RA_FAIL(RA_ERR_ARG, "%s: %s", cmd, g_twice);
    if (g_arg) arg = g_arg;
    if (c == ':' || c == '?') {
        const char *meant = one_dash_long(arg, 1);
        if (meant)
            return RA_FAIL(RA_ERR_ARG, "%s: unknown option '%s': did you mean --%s? (see ringattn %s --help)", cmd,
                           arg, meant, cmd);
        /* a known option without its value (at the end of the line), or a
         * flag given one: say which, not "unknown" */
        const struct option *o = arg && arg[0] == '-' && arg[1] == '-' ? long_named(arg, 2) : NULL;
        if (o && o->has_arg == required_argument && !strchr(arg, '='))
            return RA_FAIL(RA_ERR_ARG, "%s: %s needs a value (see ringattn %s --help)", cmd, arg, cmd);
        if (o && o->has_arg == no_argument && strchr(arg, '='))
            return RA_FAIL(RA_ERR_ARG, "%s: --%s takes no value (got '%s'; see ringattn %s --help)", cmd, o->name,
                           arg, cmd);
        if (c == ':' && arg && arg[0] == '-' && arg[1] != '-')
            return RA_FAIL(RA_ERR_ARG, "%s: -%c needs a value (see ringattn %s --help)", cmd, optopt, cmd);
        /* eval, diag, generate, export: the model's config is the checkpoint's */
        const int from_ckpt = !strcmp(cmd, "eval") || !strcmp(cmd, "diag") || !strcmp(cmd, "generate") ||
                              !strcmp(cmd, "export");
        if (from_ckpt && arg && strncmp(arg, "--config", 8) == 0 && (arg[8] == '\0' || arg[8] == '='))
            return RA_FAIL(RA_ERR_ARG, "%s: --config is not an option here: the checkpoint holds the config%s (see "
                           "ringattn %s --help)", cmd,
                           strcmp(cmd, "export") ? "; change keys with --set SECTION.KEY=VALUE" : "", cmd);
        return RA_FAIL(RA_ERR_ARG, "%s: unknown option '%s' (see ringattn %s --help)", cmd, arg ? arg : "?", cmd);
    }
    return RA_FAIL(RA_ERR_ARG, "%s: unexpected option '%s' (see ringattn %s --help)", cmd,
                   arg ? arg : "?", cmd);
}

ra_status ra_arg_cmd(const char *cmd, ra_status st)
{
    const char *msg = ra_last_error();
    const size_t n = strlen(cmd);
    if (st == RA_OK || (strncmp(msg, cmd, n) == 0 && (msg[n] == ':' || msg[n] == ' '))) return st;
    char why[RA_ERROR_MAX]; /* RA_FAIL writes the message it would read */
    snprintf(why, sizeof why, "%s", msg);
    return RA_FAIL(st, "%s: %s", cmd, why);
}

ra_status ra_check_head_params(const char *cmd, const ra_layer_config *l, int causal)
{
    if (l->head_id == RA_HEAD_COMBINER_LOGSPARSE && !causal)
        return RA_FAIL(RA_ERR_ARG, "%s: --head combiner-logsparse: causal only (its groups tile [0, i)): add --causal",
                       cmd);
    if (l->span && l->head_id != RA_HEAD_COMBINER_FIXED)
        return RA_FAIL(RA_ERR_ARG, "%s: --span is combiner-fixed's; --head %s has none", cmd, ra_head_words[l->head_id]);
    if (l->row && l->head_id != RA_HEAD_COMBINER_AXIAL)
        return RA_FAIL(RA_ERR_ARG, "%s: --row is combiner-axial's; --head %s has none", cmd, ra_head_words[l->head_id]);
    return RA_OK;
}

ra_status ra_arg_rest(const char *cmd, int argc, char **argv)
{
    if (optind >= argc) return RA_OK;
    return RA_FAIL(RA_ERR_ARG, "%s: unexpected argument '%s' (every input is given by an option; see ringattn %s --help)",
                   cmd, argv[optind], cmd);
}

void ra_say(const ra_cli *c, const char *fmt, ...)
{
    if (c->rank != 0) return;
    va_list ap;
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    fflush(stdout);
}

static char threads_origin[160] = "default";

const char *ra_blas_desc(void)
{
    static char desc[160];
    const char *chose = getenv("RINGATTN_BLAS_CHOSE"), *type = getenv("OPENBLAS_CORETYPE");
    if (chose && type && strcmp(chose, ra_blas_kernels()) != 0)
        snprintf(desc, sizeof desc, "%s %s (OPENBLAS_CORETYPE set by ringattn: OpenBLAS chose %s)",
                 ra_blas_threading(), ra_blas_kernels(), chose);
    else
        snprintf(desc, sizeof desc, "%s %s", ra_blas_threading(), ra_blas_kernels());
    return desc;
}

const char *ra_threads_origin(void) { return threads_origin; }

/* A positive count from an environment variable, or 0 ("4" or "4,2": the
 * first level, as OpenMP reads OMP_NUM_THREADS). warn: a value that is set
 * but no such count is said (by rank 0) to be ignored, not passed over in
 * silence (OMP_NUM_THREADS=5000 ran with the cores' count, unsaid). */
static int env_count(const ra_cli *c, const char *name, int warn)
{
    const char *v = getenv(name);
    if (!v || !*v) return 0;
    char *end;
    errno = 0;
    long n = strtol(v, &end, 10);
    if (n > 0 && n <= 4096 && errno == 0 && end != v && (*end == '\0' || *end == ','))
        return (int)n;
    if (warn && c->rank == 0)
        fprintf(stderr, "ringattn: warning: %s=%.40s is not a thread count in [1, 4096]: ignored\n", name, v);
    return 0;
}

int ra_set_threads(const ra_cli *c, int n, const char *given_by)
{
    const char *origin = given_by;
    if (n <= 0 && (n = env_count(c, "OMP_NUM_THREADS", 1)) > 0) origin = "OMP_NUM_THREADS";
    if (n <= 0 && (n = env_count(c, "SLURM_CPUS_PER_TASK", 1)) > 0) origin = "SLURM_CPUS_PER_TASK";
    ra_placement p;
    ra_place(c->comm, !c->no_bind, n, &p);
    if (n <= 0) origin = p.oversubscribed ? "oversubscribed: 1 per rank" : "the rank's cores, hwloc";
    ra_threads_set(p.threads); /* OpenMP regions, and OpenBLAS unless OPENBLAS_NUM_THREADS is set */
    /* OPENBLAS_NUM_THREADS is the user's: OpenBLAS keeps it, and the start
     * lines say so with the origin */
    const int blas = env_count(c, "OPENBLAS_NUM_THREADS", 0); /* OpenBLAS reads it itself */
    if (blas > 0 && blas != p.threads)
        snprintf(threads_origin, sizeof threads_origin, "%s; OpenBLAS %d, OPENBLAS_NUM_THREADS", origin, blas);
    else
        snprintf(threads_origin, sizeof threads_origin, "%s", origin);
    /* The pthreads OpenBLAS's idle threads spin while OpenMP regions run and
     * the reverse (docs/design.md §10); passive OpenMP waiting halves the harm. */
    const char *wait = getenv("OMP_WAIT_POLICY");
    if (p.threads > 1 && p.local_rank == 0 && strcmp(ra_blas_threading(), "pthreads") == 0 &&
        !(wait && strcasecmp(wait, "passive") == 0))
        fprintf(stderr, "ringattn: warning: the loaded OpenBLAS is its pthreads build: its threads compete with the "
                        "rank's %d OpenMP threads (a training step measured 0.8x of one thread); build with "
                        "-Dopenblas=openmp (Debian: libopenblas-openmp-dev) or set OMP_WAIT_POLICY=passive\n",
                p.threads);
    const char *better = ra_blas_better_kernels();
    if (better && p.local_rank == 0)
        fprintf(stderr, "ringattn: warning: OpenBLAS runs its generic %s kernels on a CPU that has %s: sgemm at about a "
                        "third of its speed; set OPENBLAS_CORETYPE=%s\n",
                ra_blas_kernels(), strcmp(better, "SkylakeX") ? "AVX2" : "AVX-512", better);
    const char *policy = getenv("OMPI_MCA_hwloc_base_binding_policy");
    if (policy && strcmp(policy, "none") && p.node_cores < p.hw_cores && p.local_rank == 0) /* maybe a habit */
        fprintf(stderr, "ringattn: note: %s: mpirun --bind-to %s gave this node's %d rank%s %d of its %d cores, and "
                        "ringattn keeps to them (mpirun --bind-to none: all %d)\n",
                p.host, policy, p.local_ranks, p.local_ranks == 1 ? "" : "s", p.node_cores, p.hw_cores, p.hw_cores);
    if (p.oversubscribed && p.local_rank == 0)
        fprintf(stderr, "ringattn: warning: %s: %d ranks on %d cores (oversubscribed): ranks are not bound to cores, "
                        "%d thread%s each%s%s%s\n",
                p.host, p.local_ranks, p.node_cores, p.threads, p.threads == 1 ? "" : "s", n > 0 ? " (" : "",
                n > 0 ? origin : "", n > 0 ? ")" : "");
    else if ((long)p.threads * p.local_ranks > p.node_cores && p.local_rank == 0)
        fprintf(stderr, "ringattn: warning: %s: %d rank%s x %d threads (%s) on %d cores: the threads time-share "
                        "the cores (%d thread%s a rank would fill them)\n",
                p.host, p.local_ranks, p.local_ranks == 1 ? "" : "s", p.threads, origin, p.node_cores,
                p.node_cores / p.local_ranks > 0 ? p.node_cores / p.local_ranks : 1,
                p.node_cores / p.local_ranks > 1 ? "s" : "");
    if (c->verbose) { /* one line per rank, in rank order, from rank 0 */
        char line[512], *all = NULL;
        if (p.oversubscribed)
            snprintf(line, sizeof line, "placement: rank %d/%d on %s (local %d/%d, %d core%s): not bound, %d thread%s",
                     c->rank, c->size, p.host, p.local_rank, p.local_ranks, p.node_cores, p.node_cores == 1 ? "" : "s",
                     p.threads,
                     p.threads == 1 ? "" : "s");
        else
            snprintf(line, sizeof line,
                     "placement: rank %d/%d on %s (local %d/%d, %d core%s): cores %d-%d, %s %s, %d thread%s", c->rank,
                     c->size, p.host, p.local_rank, p.local_ranks, p.node_cores, p.node_cores == 1 ? "" : "s",
                     p.first_core,
                     p.last_core, p.bound ? "bound to PUs" : "not bound (--no-bind), PUs",
                     p.cpus, p.threads, p.threads == 1 ? "" : "s");
        const size_t at = strlen(line);
        snprintf(line + at, sizeof line - at, ", waits %s", p.wait_rest ? "rest" : "poll");
        if (c->rank == 0) all = malloc(sizeof line * (size_t)c->size);
        ra_status st = ra_gather(line, sizeof line, MPI_CHAR, all, sizeof line, MPI_CHAR, 0, c->comm,
                                 "the placement lines");
        if (st != RA_OK) ra_agree(c->comm, st); /* the transport failed: reported, the job ends */
        for (int r = 0; all && r < c->size; r++) printf("%s\n", all + sizeof line * (size_t)r);
        fflush(stdout);
        free(all);
    }
    return p.threads;
}
