/* main.c - the ringattn program: MPI start-up, subcommand dispatch, and the
 * one place where a failed status becomes a message and an exit code. */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "cli.h"
#include "ringattn/dist.h"
#include "ringattn/fileio.h"
#include "ringattn/isa.h"
#include "ringattn/threads.h"

static const char *usage =
    "ringattn - exact sequence-parallel attention over a ring of MPI ranks\n"
    "\n"
    "usage: [mpirun -n P] ringattn COMMAND [options]\n"
    "\n"
    "commands:\n"
    "  attn      attention of Q, K, V .npy files over the ring (forward, and\n"
    "            backward with --dout); each rank reads and writes only its slab\n"
    "  gen       write random Q, K, V, dO (and segment ids) .npy files\n"
    "  compare   compare two .npy files: max |A - B| / max |B|\n"
    "  train     train a transformer on the ring (recall task, bytes or token ids)\n"
    "  eval      loss, bits per byte (or token) and accuracy of a checkpoint\n"
    "  diag      condition number of every layer's head outputs of a checkpoint\n"
    "  cipher    Bit Cipher codes of the bytes of a file, by frequency\n"
    "  generate  sample from a checkpoint; the KV cache stays sharded over ranks\n"
    "  export    a checkpoint as a Hugging Face Llama model (safetensors + config.json)\n"
    "  import    a Hugging Face Llama model as a checkpoint\n"
    "  bench     benchmarks: 'ringattn bench attn|train|reduce --help'\n"
    "  plan      predict a config's step time, waits and memory per rank for each\n"
    "            layout and chunk; calibrate; project to clusters\n"
    "\n"
    "Run 'ringattn COMMAND --help' for the options of a command.\n"
    "Global options (anywhere on the line):\n"
    "  --verbose   print where every rank runs: host, cores, bound PUs, threads\n"
    "  --no-bind   do not bind ranks to cores (keep the launcher's binding)\n"
    "\n"
    "Only rank 0 prints results; errors name the file or option at fault and\n"
    "every rank exits with status 1 (train stopped by a signal: 75, resumable).\n";

/* OpenBLAS maps a GEMM buffer of 128 MiB for each of its threads as it
 * loads (its constructor, before main), and when a mapping fails it tries
 * again forever: under `ulimit -v 300000` on 2 cores the process spun at
 * 100 % before main. Its OpenMP build (0.3.21) takes one per configured
 * core, or per OMP_NUM_THREADS thread if fewer (measured with strace: a
 * rank bound to one core and OPENBLAS_NUM_THREADS change nothing). The
 * executable's preinit functions run before any library's constructor:
 * this one maps and releases that space and 96 MiB more first (with less,
 * Open MPI's MPI_Init failed or crashed: 310 to 340 MB there, singleton),
 * and without it ends the process with a message. Nothing that could run
 * is refused: a run needs its threads' pool buffers on top (256 MiB more
 * there; the later buffers: src/core/threads.c). */
static void blas_load_space(int argc, char **argv, char **envp)
{
    (void)argc, (void)argv;
    long n = sysconf(_SC_NPROCESSORS_CONF);
    const char *omp = NULL; /* from envp: getenv has no environment yet this early (it returned NULL) */
    for (char **e = envp; e && *e; e++)
        if (strncmp(*e, "OMP_NUM_THREADS=", 16) == 0) omp = *e + 16;
    const long k = omp ? atol(omp) : 0; /* "4,2": the first level */
    if (n < 1) n = 1;
    if (k > 0 && k < n) n = k;
    if (ra_blas_space_for(n, (size_t)96 << 20)) return;
    const size_t bytes = (size_t)n * RA_BLAS_BUFFER_BYTES;
    struct rlimit as;
    char limit[48] = "none set: the system's memory";
    if (getrlimit(RLIMIT_AS, &as) == 0 && as.rlim_cur != RLIM_INFINITY)
        snprintf(limit, sizeof limit, "%llu MiB, ulimit -v", (unsigned long long)(as.rlim_cur >> 20));
    char msg[640];
    const int len = snprintf(msg, sizeof msg,
                             "ringattn: error: OpenBLAS maps a GEMM buffer of 128 MiB for each of its %ld thread%s as "
                             "it loads (%zu MiB of address space, mostly never touched), and this process cannot "
                             "map that and 96 MiB more for MPI's start-up (limit: %s): raise the limit, or set "
                             "OMP_NUM_THREADS to fewer threads\n", n, n == 1 ? "" : "s", bytes >> 20, limit);
    if (write(STDERR_FILENO, msg, len > 0 && len < (int)sizeof msg ? (size_t)len : sizeof msg - 1) < 0) _exit(1);
    _exit(1);
}
typedef void (*preinit_fn)(int, char **, char **);
__attribute__((section(".preinit_array"), used)) static const preinit_fn preinit_blas_load_space = blas_load_space;

/* A launcher variable's whole number (digits only, below 2^31), or -1:
 * atoi read "99999999999" as 1215752191. */
static long count_of(const char *v)
{
    char *end;
    errno = 0;
    const long x = strtol(v, &end, 10);
    return *v >= '0' && *v <= '9' && !*end && !errno && x <= INT_MAX ? x : -1;
}

/* The launcher's rank before MPI_Init, so --help prints once under mpirun.
 * A rank counts only beside its launcher's task count and below it: a
 * SLURM_PROCID=1 left in a shell made every message before MPI_Init
 * silent (the help too, exit 0). */
static int env_rank(void)
{
    const char *vars[][2] = { { "OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE" },
                              { "SLURM_PROCID", "SLURM_NTASKS" },
                              { "PMI_RANK", "PMI_SIZE" } };
    for (size_t i = 0; i < sizeof vars / sizeof *vars; i++) {
        const char *r = getenv(vars[i][0]), *n = getenv(vars[i][1]);
        if (!r || !n) continue;
        const long rank = count_of(r), size = count_of(n);
        return rank >= 0 && rank < size ? (int)rank : 0;
    }
    return 0;
}

/* Progress and results go to stdout; a full disk or a closed pipe there
 * must not pass for success. (Rank 0 prints; errors go to stderr.) */
static ra_status stdout_written(void)
{
    errno = 0;
    int flushed = fflush(stdout) == 0;
    if (flushed && !ferror(stdout)) return RA_OK;
    return RA_FAIL(RA_ERR_IO, "writing to standard output failed%s%s: progress or result lines were lost",
                   flushed ? "" : ": ", flushed ? "" : strerror(errno));
}

/* OpenBLAS chose its kernels when it was loaded, before main; kernels the
 * CPU runs three times faster (threads.h: ra_blas_better_kernels) take a new
 * process image with OPENBLAS_CORETYPE set. The same pid, arguments and
 * environment, before MPI_Init: launchers see one process. RINGATTN_BLAS_CHOSE
 * keeps OpenBLAS's own choice for the start lines (and stops a second try). */
static void rerun_with_better_blas(char **argv)
{
    const char *better = ra_blas_better_kernels(), *preload = getenv("LD_PRELOAD");
    if (!better || getenv("RINGATTN_BLAS_CHOSE")) return;
    if (preload && strstr(preload, "vgpreload")) return; /* under valgrind: the new image would escape it */
    if (setenv("RINGATTN_BLAS_CHOSE", ra_blas_kernels(), 1) || setenv("OPENBLAS_CORETYPE", better, 1)) return;
    execv("/proc/self/exe", argv);
    unsetenv("OPENBLAS_CORETYPE"); /* no /proc: run on as loaded; args.c warns */
}

static int by_string(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* Every rank must run the same command with the same options (values may
 * differ: a path to each node's copy; those that change results are
 * compared by the command). Ranks given another command, --resume on some
 * and --config on others, --trace, --lse or --causal on some only, waited
 * for each other in different collectives until run.timeout, or forever.
 * --set and --threads are left out: the config they make is compared, and
 * threads may differ. Collective. */
static ra_status same_command_line(const ra_cli *c, int argc, char **argv)
{
    const char **names = malloc(sizeof *names * (size_t)(argc + 1));
    size_t cap = 64;
    for (int i = 0; i < argc; i++) cap += strlen(argv[i]) + 16;
    char *text = malloc(cap);
    ra_status st = ra_agree(c->comm, names && text ? RA_OK : RA_FAIL(RA_ERR_NOMEM, "out of memory"));
    if (st != RA_OK) {
        free(names), free(text);
        return st;
    }
    int n = 0;
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        const int lng = a[0] == '-' && a[1] == '-' && a[2], shrt = a[0] == '-' && isalpha((unsigned char)a[1]);
        if ((lng || shrt) && strncmp(a, "--set", 5) != 0 && strncmp(a, "--threads", 9) != 0) names[n++] = a;
    }
    qsort(names, (size_t)n, sizeof *names, by_string);
    size_t len = (size_t)snprintf(text, cap, "command = %s\n--no-bind = %s\n--verbose = %s\n", argv[1],
                                  c->no_bind ? "given" : "not given", c->verbose ? "given" : "not given");
    len += (size_t)snprintf(text + len, cap - len, "options =");
    for (int i = 0; i < n; i++) /* "--trace=x" and "--trace x": the name */
        len += (size_t)snprintf(text + len, cap - len, " %.*s", (int)strcspn(names[i], "="), names[i]);
    snprintf(text + len, cap - len, "\n");
    st = ra_same_on_ranks(c, argv[1], "was given another command or other options",
                          "ranks that run different commands or options wait for each other forever; give every "
                          "rank the same (values such as paths may differ)", text);
    free(names), free(text);
    return st;
}

int main(int argc, char **argv)
{
    rerun_with_better_blas(argv);
    /* global options, anywhere on the line (no command has options of these names) */
    int verbose = 0, no_bind = 0, n = 1;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--verbose")) verbose = 1;
        else if (!strcmp(argv[i], "--no-bind")) no_bind = 1;
        else if (!strncmp(argv[i], "--verbose=", 10) || !strncmp(argv[i], "--no-bind=", 10)) {
            if (env_rank() == 0) /* a flag: "--no-bind=1" read as a command said "unknown command" */
                fprintf(stderr, "ringattn: error: %.9s takes no value (got '%s')\n", argv[i], argv[i]);
            return 1;
        } else argv[n++] = argv[i];
    }
    argc = n;
    argv[argc] = NULL;

    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") ||
        !strcmp(argv[1], "help")) {
        if (env_rank() == 0) fputs(usage, argc < 2 ? stderr : stdout);
        return argc < 2 ? 1 : 0;
    }
    if (!strcmp(argv[1], "--version")) {
        if (env_rank() == 0) printf("ringattn 0.1.0\n");
        return 0;
    }
    struct {
        const char *name;
        ra_status (*run)(ra_cli *, int, char **);
    } cmds[] = {
        { "attn", ra_cmd_attn },
        { "gen", ra_cmd_gen },
        { "compare", ra_cmd_compare },
        { "bench", ra_cmd_bench },
        { "train", ra_cmd_train },
        { "eval", ra_cmd_eval },
        { "diag", ra_cmd_diag },
        { "cipher", ra_cmd_cipher },
        { "generate", ra_cmd_generate },
        { "export", ra_cmd_export },
        { "import", ra_cmd_import },
        { "plan", ra_cmd_plan },
    };
    ra_status (*run)(ra_cli *, int, char **) = NULL;
    for (size_t i = 0; i < sizeof cmds / sizeof *cmds; i++)
        if (!strcmp(argv[1], cmds[i].name)) run = cmds[i].run;
    if (!run) {
        if (env_rank() == 0)
            fprintf(stderr, "ringattn: error: unknown command '%s' (try ringattn --help)\n", argv[1]);
        return 1;
    }

    /* FUNNELED: OpenMP threads compute, only the main thread calls MPI
     * (it polls the ring between its own tiles) */
    int provided = MPI_THREAD_SINGLE;
    MPI_Init_thread(&argc, &argv, MPI_THREAD_FUNNELED, &provided);
    ra_atomic_cleanup_on_signals(); /* after MPI's own handlers: a killed command leaves no <out>.tmp */
    ra_cli c = { .comm = MPI_COMM_WORLD, .verbose = verbose, .no_bind = no_bind };
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    MPI_Comm_rank(c.comm, &c.rank);
    MPI_Comm_size(c.comm, &c.size);
    ra_watchdog_init(c.comm);

    /* on every rank: the hosts of a job may differ in what their CPUs run */
    const char *isa_problem = ra_kernel_isa_problem(), *wait_problem = ra_wait_mode_problem();
    ra_status st = isa_problem    ? RA_FAIL(RA_ERR_ARG, "%s", isa_problem)
                   : wait_problem ? RA_FAIL(RA_ERR_ARG, "%s", wait_problem)
                                  : RA_OK;
    st = ra_agree(c.comm, st);
    if (st == RA_OK) st = same_command_line(&c, argc, argv);
    if (st == RA_OK) st = ra_llama_given_advice(run(&c, argc - 1, argv + 1), argc - 1, argv + 1);
    if (st == RA_OK && c.rank == 0) st = stdout_written();
    if (st != RA_OK && st != RA_ERR_PEER) {
        if (c.rank == 0) fprintf(stderr, "ringattn: error: %s\n", ra_last_error());
        else fprintf(stderr, "[rank %d/%d] ringattn: error: %s\n", c.rank, c.size, ra_last_error());
        fflush(stderr);
    }
    MPI_Finalize();
    return st == RA_OK ? c.exit_code : 1;
}
