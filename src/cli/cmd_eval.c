/* cmd_eval.c - `ringattn eval`: loss and bits per byte (token) of a checkpoint
 * on a byte or token file (consecutive windows covering it) or on its own
 * held-out data. */
#include <getopt.h>
#include <stdint.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ringattn/dist.h"
#include "session.h"

static const char *help =
    "usage: mpirun -n P ringattn eval --checkpoint CKPT|DIR [--data FILE] [--batches N]\n"
    "                                 [--set SEC.KEY=VAL]... [--threads N]\n"
    "\n"
    "Without --data: the checkpoint's own held-out data (for the recall task,\n"
    "held-out sequences and recall accuracy). With --data FILE: consecutive\n"
    "windows of seq_len tokens covering FILE (at most --batches batches of\n"
    "train.batch windows, cut to FILE's windows when it holds fewer; default\n"
    "all): its token ids when the model was trained on data.source = tokens,\n"
    "FILE is a .npy or llm.c shard (by its magic), or --set\n"
    "data.dtype=uint16|uint32|npy|llmc is given (a flat file of ids for an\n"
    "imported model), else its bytes. Prints loss (nats/token), bits per byte\n"
    "(bits per token for token ids) and accuracy (argmax == next token).\n"
    "One ring of all P ranks, whatever grid trained the model; --set run.dp=N\n"
    "evaluates with N data-parallel groups of P/N ranks instead (each takes\n"
    "train.batch/N windows of every batch; N divides train.batch, whatever\n"
    "train.accum): the same loss, faster when the sequence is short for P ranks.\n";

static ra_status run_eval(ra_cli *c, int argc, char **argv, int diag);

static const char *diag_help =
    "usage: mpirun -n P ringattn diag --checkpoint CKPT|DIR [--data FILE] [--set SEC.KEY=VAL]... [--threads N]\n"
    "\n"
    "Runs one batch (held-out, or the first train.batch windows of FILE, at most\n"
    "all of them) through the model and prints, per layer and head, kappa =\n"
    "sigma_max / sigma_min of the head's output (after its preconditioner) over\n"
    "all rows of the batch, from the D x D Gram matrix summed over ranks.\n";

ra_status ra_cmd_eval(ra_cli *c, int argc, char **argv) { return run_eval(c, argc, argv, 0); }

/* `ringattn diag`: the condition number of every layer's head outputs on one
 * held-out batch (or the first windows of --data FILE). */
ra_status ra_cmd_diag(ra_cli *c, int argc, char **argv) { return run_eval(c, argc, argv, 1); }

/* --data FILE's windows, counted before the model is sized (counting needs
 * no positions). Collective. */
static ra_status count_windows(const ra_cli *c, const ra_config *cfg, int64_t *windows)
{
    ra_data *d = NULL;
    ra_status st = ra_data_open_as(&d, cfg, NULL, 0, "--data");
    *windows = st == RA_OK ? ra_data_windows(d) : 0;
    ra_data_close(d);
    return ra_agree(c->comm, st);
}

/* A batch of more windows than FILE holds computed padding rows that count
 * nothing (train.batch = 100000 on 52 windows: 8.7 GB, 30 s). It shrinks to
 * the windows, each group an equal share, in micro-batches no larger than
 * the config's (train.accum bounds the memory): every window is still
 * evaluated once, so the loss is the same. */
static void fit_batch(ra_config *cfg, int64_t windows)
{
    if (windows < 1 || cfg->batch <= windows) return;
    const int dp = cfg->dp, micro = cfg->batch / dp / cfg->accum;
    const int64_t share = (windows + dp - 1) / dp; /* windows per group */
    const int m = share < micro ? (int)share : micro;
    cfg->accum = (int)((share + m - 1) / m);
    cfg->batch = m * cfg->accum * dp;
}

static ra_status run_eval(ra_cli *c, int argc, char **argv, int diag)
{
    static const struct option opts[] = {
        { "checkpoint", required_argument, 0, 'k' }, { "data", required_argument, 0, 'd' },
        { "batches", required_argument, 0, 'b' },    { "set", required_argument, 0, 'S' },
        { "threads", required_argument, 0, 'T' },    { "help", no_argument, 0, 'h' },
        { 0, 0, 0, 0 },
    };
    ra_session_args sa = { 0 };
    const char *ckpt = NULL, *data = NULL;
    int batches = 0, o;
    ra_status st = RA_OK;
    const char *cmd = diag ? "diag" : "eval";
    opterr = 0;
    optind = 1;
    while (st == RA_OK && (o = ra_getopt(argc, argv, ":h", opts)) != -1) {
        if (ra_session_opt(&sa, o, optarg, &st)) continue;
        switch (o) {
        case 'k': ckpt = optarg; break;
        case 'd': data = optarg; break;
        case 'b': /* diag reads one batch: a count would be ignored */
            st = diag ? RA_FAIL(RA_ERR_ARG, "diag: --batches is eval's option: diag reads one batch")
                      : ra_arg_int("--batches", optarg, 1, 1 << 30, &batches);
            break;
        case 'h':
            ra_say(c, "%s\n%s", diag ? diag_help : help, ra_session_ckpt_help);
            return RA_OK;
        default: st = ra_arg_unknown(cmd, o, argv[optind - 1]);
        }
    }
    st = ra_arg_cmd(cmd, st);
    if (st == RA_OK) st = ra_arg_rest(cmd, argc, argv);
    if (st == RA_OK && !ckpt) st = RA_FAIL(RA_ERR_ARG, "%s: --checkpoint is required", cmd);
    ra_config cfg;
    if (st == RA_OK && data && !data[0]) st = RA_FAIL(RA_ERR_ARG, "%s: --data is an empty path", cmd);
    if (st == RA_OK && data && strlen(data) >= sizeof cfg.path)
        st = RA_FAIL(RA_ERR_ARG, "%s: --data path is longer than %zu bytes", cmd, sizeof cfg.path - 1);
    RA_TRY(ra_agree(c->comm, st));

    char path[RA_PATH_MAX + 32];
    ra_ckpt_resolve(path, sizeof path, ckpt);
    sa.data = data; /* applied before the config is checked (session.c) */
    sa.no_grad = !diag; /* diag keeps one ring whatever run.dp says */
    sa.grid_ranks = !diag && ra_session_sets_key(&sa, "run.dp") ? c->size : 0; /* else one ring (below) */
    RA_TRY(ra_arg_cmd(cmd, ra_session_config(c, &sa, path, &cfg))); /* --set's errors name the command */
    /* not in the config: a rank given another count evaluated other batches and waited for the rest */
    char given[48] = "--batches = unset\n";
    if (batches) snprintf(given, sizeof given, "--batches = %d\n", batches);
    RA_TRY(ra_same_options(c, cmd, given));
    /* one ring of every rank, whatever grid trained the model, unless
     * --set run.dp=N asks for N data-parallel groups (eval: each group takes
     * its share of every batch); diag's Gram matrices are one ring's */
    if (diag || !ra_session_sets_key(&sa, "run.dp")) cfg.dp = 1;
    ra_set_threads(c, sa.threads ? sa.threads : cfg.threads, sa.threads ? "--threads" : "run.threads");
    ra_session s = { .grid.ring = MPI_COMM_NULL }; /* closed whether or not it opened */
    int64_t windows = 0;
    /* FILE's errors name the command and --data, the option the user typed */
    st = data ? ra_arg_cmd(cmd, count_windows(c, &cfg, &windows)) : RA_OK;
    fit_batch(&cfg, windows);
    if (st == RA_OK)
        st = ra_arg_cmd(cmd, ra_session_open(c, &s, &cfg, cfg.batch / cfg.dp / cfg.accum, 0, data ? "--data" : NULL));
    if (st == RA_OK) st = ra_arg_cmd(cmd, ra_session_load(c, &s, path, 0, NULL)); /* named, as the options' errors */
    ra_eval_result r = { 0 };
    int split = data ? RA_SPLIT_ALL : RA_SPLIT_VAL;
    if (st == RA_OK && diag) batches = 1;
    if (st == RA_OK) {
        int n = batches ? batches : cfg.eval_batches;
        if (data) {
            /* ceil: the last batch may be short, padded with windows that count nothing */
            int64_t all = (ra_data_windows(s.data) + cfg.batch - 1) / cfg.batch;
            if (!batches && all > INT32_MAX)
                st = RA_FAIL(RA_ERR_ARG, "eval: %s has %lld batches of %d windows; evaluate at most %d with "
                             "--batches", data, (long long)all, cfg.batch, (int)INT32_MAX);
            n = batches && batches < all ? batches : (int)all;
        }
        if (st == RA_OK) st = ra_arg_cmd(cmd, ra_session_eval(c, &s, split, n, NULL, &r));
    }
    if (st == RA_OK && diag) {
        double *k = malloc(sizeof(double) * cfg.layers * cfg.heads);
        st = k ? ra_model_kappa_over(s.model, c->comm, k) : RA_FAIL(RA_ERR_NOMEM, "diag: out of memory");
        if (st == RA_OK) {
            ra_say(c, "diag: %s | %s preconditioned heads | kappa of each head's output on one batch\n", path,
                   cfg.layer[0].precond);
            ra_say(c, "%6s %5s %10s %14s\n", "layer", "head", "precond", "kappa");
            int inf = 0;
            for (int l = 0; l < cfg.layers; l++)
                for (int h = 0; h < cfg.heads; h++) {
                    ra_say(c, "%6d %5d %10s %14.6g\n", l, h, cfg.layer[l].precond, k[l * cfg.heads + h]);
                    inf += isinf(k[l * cfg.heads + h]) != 0;
                }
            if (inf) /* said, not left to read as a broken model */
                ra_say(c, "# inf: the head's output is rank-deficient on this batch (%lld rows of head_dim = %d "
                          "columns: fewer rows than columns, or repeated rows, make it so)\n",
                       (long long)cfg.batch * cfg.seq_len, cfg.head_dim);
        }
        free(k);
    } else if (st == RA_OK)
        ra_say(c, "eval: %s on %s | loss %.4f | %s %.4f | accuracy %.2f%% | %lld targets\n", path,
               data ? data
                    : cfg.source_id == RA_SOURCE_FILE   ? "held-out bytes"
                    : cfg.source_id == RA_SOURCE_TOKENS ? "held-out tokens"
                                                        : "held-out recall sequences",
               r.loss, cfg.source_id == RA_SOURCE_TOKENS ? "bits/token" : "bpb", r.bpb, 100 * r.accuracy,
               (long long)r.count);
    ra_session_close(&s);
    return st;
}
