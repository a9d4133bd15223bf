/* cmd_train.c - `ringattn train`: AdamW training of the ring transformer,
 * with evaluation, checkpoints, progress lines and JSON-lines metrics.
 *
 * Deterministic: the data of step s and the initial parameters depend only
 * on the seed, so a run gives the same losses whatever the number of ranks
 * and the layout (up to float32 summation order), and N steps + --resume +
 * N steps gives the same parameters as 2N steps. */
#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <sys/stat.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ringattn/checkpoint.h"
#include "ringattn/dist.h"
#include "ringattn/fileio.h"
#include "ringattn/isa.h"
#include "ringattn/warm.h"
#include "ringattn/mem.h"
#include "ringattn/threads.h"
#include "ringattn/trace.h"
#include "train_io.h"

static const char *help =
    "usage: mpirun -n P ringattn train [--config FILE] [--set SEC.KEY=VAL]...\n"
    "                                  [--resume CKPT|DIR] [--metrics FILE] [--checkpoint-dir DIR]\n"
    "                                  [--trace FILE] [--threads N]\n"
    "\n"
    "Trains the model of the config on its data ([data] source = recall: the\n"
    "built-in long-context recall task; file: any file read as bytes; tokens: a\n"
    "file of token ids - data.dtype uint16/uint32 flat, npy, llm.c shard - with\n"
    "data.val_path for held-out ids; scripts/data/tokenize_corpus.py makes them).\n"
    "Rank 0 prints one line per train.log_every steps:\n"
    "  step S/N | loss | lr | tok/s (all ranks) | eta | comm (share of step time\n"
    "  blocked on ring transfers and gradient reductions)\n"
    "and an eval line every train.eval_every steps and at the end (held-out\n"
    "loss, bits per byte, accuracy of the argmax at counted targets, and the\n"
    "largest kappa of any head's output).\n"
    "\n"
    "  --resume CKPT|DIR   continue from a checkpoint (DIR: DIR/last.ckpt) exactly\n"
    "  --metrics FILE      JSON lines: step, loss, lr, tokens_per_s, comm_share,\n"
    "                      grad_norm, accuracy; eval_loss, eval_bpb, eval_accuracy\n"
    "                      and kappa (per layer and head) when evaluated\n"
    "  --checkpoint-dir D  where step-N.ckpt and last.ckpt go (run.checkpoint_dir;\n"
    "                      resumed: the directory of the checkpoint, unless given)\n"
    "%s"
    "\n"
    "Grid (docs/design.md §16): run.dp = N makes the P ranks N data-parallel\n"
    "groups, each a ring of P/N ranks over its share of the batch (N divides P;\n"
    "train.batch a multiple of N x train.accum); train.shard_optimizer = true\n"
    "(default) keeps the AdamW moments of 1/P of the parameters on each rank.\n"
    "--verbose prints each rank's dp group and ring position. A checkpoint\n"
    "resumes at any P, run.dp and sharding.\n"
    "\n"
    "One run at a time writes into a checkpoint directory (DIR/.ringattn.lock);\n"
    "partial checkpoints (*.ckpt.tmp) a killed run left there are removed.\n"
    "A fresh run refuses a checkpoint directory that already holds checkpoints;\n"
    "--resume takes the config from the checkpoint (--config is an error there;\n"
    "--set may change any key but the model's). Directory, metrics file and\n"
    "trace are checked before step 1: neither file may be the checkpoint\n"
    "directory, and the trace's directory must exist already (the checkpoint\n"
    "directory is made after that check; the metrics may go into it).\n"
    "\n"
    "SIGUSR1, SIGTERM or SIGINT (Ctrl-C; a second one quits at once) to any rank\n"
    "(Slurm preemption: --signal=B:USR1@120):\n"
    "every rank finishes its step (or stops the warm start), a checkpoint is\n"
    "written if a step ran, and the run exits with status 75 (EX_TEMPFAIL) if\n"
    "steps remain; --resume DIR continues it.\n";

typedef struct {
    ra_session_args s;
    const char *resume, *metrics, *ckdir, *trace;
} train_args;

static ra_status parse(int argc, char **argv, train_args *a, int *want_help)
{
    static const struct option opts[] = {
        { "config", required_argument, 0, 'C' },  { "set", required_argument, 0, 'S' },
        { "threads", required_argument, 0, 'T' }, { "resume", required_argument, 0, 'R' },
        { "metrics", required_argument, 0, 'M' }, { "checkpoint-dir", required_argument, 0, 'K' },
        { "help", no_argument, 0, 'h' },          { "trace", required_argument, 0, 'X' },
        { 0, 0, 0, 0 },
    };
    *a = (train_args){ 0 };
    ra_status st = RA_OK;
    int c;
    opterr = 0;
    optind = 1;
    while ((c = ra_getopt(argc, argv, ":h", opts)) != -1) {
        if (ra_session_opt(&a->s, c, optarg, &st)) {
            RA_TRY(st);
            continue;
        }
        switch (c) {
        case 'R': a->resume = optarg; break;
        case 'M': a->metrics = optarg; break;
        case 'K': a->ckdir = optarg; break;
        case 'X':
            if (!optarg[0]) return RA_FAIL(RA_ERR_ARG, "train: --trace: empty file name");
            a->trace = optarg;
            break;
        case 'h': *want_help = 1; return RA_OK;
        default: return ra_arg_unknown("train", c, argv[optind - 1]);
        }
    }
    if (optind < argc) return RA_FAIL(RA_ERR_ARG, "train: unexpected argument '%s'", argv[optind]);
    if (a->resume && a->s.config)
        return RA_FAIL(RA_ERR_ARG, "--config cannot be used with --resume: the checkpoint holds the config; change "
                       "keys with --set");
    return RA_OK;
}

/* ---- checkpoints ------------------------------------------------------------ */

/* The step of the newest checkpoint written or resumed from (-1: none), and
 * of the newest this run wrote (-1: none). */
static int last_good_step = -1, written_step = -1;

/* What a failed checkpoint of step left to resume from, looked at (rank
 * 0), not assumed: the directory may be gone, or its last.ckpt may not
 * have moved although step-N.ckpt was written whole (no inode left for
 * the link). */
static void left_to_resume(char *out, size_t cap, const char *dir, int step)
{
    char last[RA_PATH_MAX + 32], file[RA_PATH_MAX + 32], target[64];
    struct stat st;
    if (!ra_train_dir_still_locked(dir)) {
        if (last_good_step < 0) snprintf(out, cap, "no checkpoint of this run was written");
        else snprintf(out, cap, "this run's last checkpoint was of step %d, in the directory that was there",
                      last_good_step);
        return;
    }
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
        snprintf(out, cap, "the directory %s is gone: no checkpoint is left there", dir);
        return;
    }
    snprintf(file, sizeof file, "%s/step-%08d.ckpt", dir, step);
    if (stat(file, &st) == 0 && S_ISREG(st.st_mode)) {
        snprintf(out, cap, "%s itself was written whole, only last.ckpt was not moved to it: --resume %s continues "
                 "from it", file, dir);
        return;
    }
    snprintf(last, sizeof last, "%s/last.ckpt", dir);
    const ssize_t n = readlink(last, target, sizeof target - 1);
    if (n > 0 && stat(last, &st) == 0) {
        target[n] = '\0';
        snprintf(out, cap, "the last good checkpoint is still %s (step %ld)", last, ra_ckpt_step_of(target));
    } else {
        snprintf(out, cap, "no checkpoint of this run is in %s", dir);
    }
}

static ra_status checkpoint(const ra_cli *c, ra_session *s, const char *dir, int step)
{
    const int64_t t0 = RA_TRACE_T0();
    /* rank 0 writes; shard owners stream theirs to it; its errors name the command, as the options' do */
    ra_status st = ra_arg_cmd("train", ra_train_save(c, s, dir, step));
    RA_TRACE_END1("io", "checkpoint write", t0, "step", step);
    if (st != RA_OK) { /* a full or unwritable directory: the atomic write left the old files alone */
        char why[RA_ERROR_MAX], left[RA_PATH_MAX + 256];
        snprintf(why, sizeof why, "%s", ra_last_error());
        left_to_resume(left, sizeof left, dir, step);
        st = RA_FAIL(st, "%s; %s", why, left);
    }
    RA_TRY(ra_agree(c->comm, st));
    last_good_step = written_step = step;
    ra_say(c, "checkpoint: %s/step-%08d.ckpt\n", dir, step);
    return RA_OK;
}

/* ---- stopping on a signal --------------------------------------------------------- */

/* SIGUSR1, SIGINT and SIGTERM only set a flag. The step's count reduction
 * carries it to every rank (any rank signalled stops all); at the end of
 * that step the run checkpoints and stops, so a preempted job loses no
 * finished step. SIGINT (Ctrl-C in a terminal) does so once: a second one
 * ends the process at once, as without the handler. The stronger request
 * wins: SIGTERM says the job is ending (a preemption sends it to the ranks
 * and SIGUSR1 through the batch script at about the same time).
 * ra_warm_stop_request holds these levels too. */
enum { STOP_NONE, STOP_USR1, STOP_INT, STOP_TERM };
static volatile sig_atomic_t stop_level;

static int level_of(int sig) { return sig == SIGTERM ? STOP_TERM : sig == SIGINT ? STOP_INT : STOP_USR1; }
static const char *level_name(int level)
{
    return level == STOP_TERM ? "SIGTERM" : level == STOP_INT ? "SIGINT" : "SIGUSR1";
}

static void on_stop_signal(int sig)
{
    const int level = level_of(sig);
    if (level > stop_level) stop_level = level;
    /* a warm start in progress stops within a second on every rank */
    if (level > ra_warm_stop_request) ra_warm_stop_request = level;
    if (sig == SIGINT) {
        ra_atomic_cleanup_on_signal(SIGINT); /* the second: quit at once, temporaries removed */
        static const char msg[] = "ringattn: SIGINT: stopping cleanly (after this step, with a checkpoint, if a step "
                                  "ran); again: quit at once\n";
        if (write(STDERR_FILENO, msg, sizeof msg - 1) < 0) { /* nothing to do about it in a handler */ }
    }
}


/* ---- non-finite losses and gradients --------------------------------------------- */

/* Which parameter block holds the first non-finite summed gradient (the
 * shards searched on their owners). Collective. */
static ra_status nonfinite_where(const ra_cli *c, ra_session *s, char *buf, size_t n)
{
    size_t i;
    RA_TRY(ra_session_first_nonfinite(c, s, &i));
    if (i == SIZE_MAX) snprintf(buf, n, "none (the loss alone)");
    else ra_session_param_where(s, i, buf, n);
    return RA_OK;
}

/* Fault injection for the tests (README "When things go wrong", NaN or Inf): RINGATTN_INJECT_NAN=STEP:LAYER
 * puts a NaN into the summed gradient of layer LAYER at step STEP (on
 * every rank that holds it), as a numerical blow-up would. */
static void inject_fault(ra_session *s, int step)
{
    const char *spec = getenv("RINGATTN_INJECT_NAN");
    int at, layer;
    if (!spec || sscanf(spec, "%d:%d", &at, &layer) != 2 || at != step || layer < 0 || layer >= s->cfg.layers)
        return;
    float *g = ra_session_summed_grad(s, ra_model_layout(s->model)->layer[layer].w1); /* its owner's copy */
    if (g) *g = NAN;
}

/* ---- the loop ------------------------------------------------------------------ */

static void fmt_time(char *buf, size_t n, double s)
{
    if (!isfinite(s) || s < 0) snprintf(buf, n, "?");
    else if (s < 60) snprintf(buf, n, "%.0fs", s);
    else if (s < 3600) snprintf(buf, n, "%dm%02ds", (int)s / 60, (int)s % 60);
    else snprintf(buf, n, "%dh%02dm", (int)s / 3600, ((int)s % 3600) / 60);
}

/* A number for JSON: non-finite values (no counted target) become null. */
static const char *json_num(char *buf, size_t n, double x)
{
    if (isfinite(x)) snprintf(buf, n, "%.9g", x);
    else snprintf(buf, n, "null");
    return buf;
}

/* kappa of every layer and head on the last evaluated micro-batch of every
 * ring (the Gram matrices summed over all ranks: with train.accum = 1 the
 * whole last batch, one rank's value for any run.dp): metrics "kappa"
 * [[layer 0 heads], ...] and the largest on the eval line */
static ra_status report_kappa(const ra_cli *c, ra_session *s, ra_metrics *metrics, double *kmax)
{
    const int nl = s->cfg.layers, H = s->cfg.heads;
    double *k = malloc(sizeof(double) * nl * H);
    if (!k) return RA_FAIL(RA_ERR_NOMEM, "kappa: out of memory");
    ra_status st = ra_model_kappa_over(s->model, c->comm, k);
    *kmax = 0;
    if (st == RA_OK) ra_metrics_printf(metrics, ", \"kappa\": [");
    for (int l = 0; st == RA_OK && l < nl; l++) {
        ra_metrics_printf(metrics, "%s[", l ? ", " : "");
        for (int h = 0; h < H; h++) {
            double x = k[l * H + h];
            if (x > *kmax) *kmax = x;
            if (isfinite(x)) ra_metrics_printf(metrics, "%s%.6g", h ? ", " : "", x);
            else ra_metrics_printf(metrics, "%snull", h ? ", " : "");
        }
        ra_metrics_printf(metrics, "]");
    }
    if (st == RA_OK) ra_metrics_printf(metrics, "]");
    free(k);
    return st;
}

/* The evaluation after `step` steps, reported; *stopped: a stop request
 * (STOP_*) ended it unreported, 0 when it finished. Collective. */
static ra_status eval_and_report(const ra_cli *c, ra_session *s, int step, ra_metrics *metrics, int *stopped)
{
    ra_eval_result r;
    RA_TRY(ra_arg_cmd("train", ra_session_eval(c, s, RA_SPLIT_VAL, s->cfg.eval_batches, &stop_level, &r)));
    *stopped = r.stopped;
    if (r.stopped) return RA_OK;
    char a[32], b[32], c2[32];
    ra_metrics_printf(metrics, "{\"step\": %d, \"eval_loss\": %s, \"eval_bpb\": %s, \"eval_accuracy\": %s", step,
                      json_num(a, sizeof a, r.loss), json_num(b, sizeof b, r.bpb),
                      json_num(c2, sizeof c2, r.accuracy));
    double kmax = 0;
    RA_TRY(report_kappa(c, s, metrics, &kmax));
    ra_metrics_printf(metrics, "}\n");
    /* a token's bits are not a byte's: said as eval says them */
    ra_say(c, "eval  step %d | loss %.4f | %s %.4f | accuracy %.2f%% (%lld targets, held out) | kappa max %.3g\n",
           step, r.loss, s->cfg.source_id == RA_SOURCE_TOKENS ? "bits/token" : "bpb", r.bpb, 100 * r.accuracy,
           (long long)r.count, kmax);
    return RA_OK;
}

/* Stop on a non-finite loss or gradient (train.nonfinite = stop): the
 * parameters and moments are still those after step `step`, so they are
 * checkpointed first (unless that checkpoint exists) and the message names
 * the file. Collective: every rank takes the same decision. */
static ra_status stop_nonfinite(const ra_cli *c, ra_session *s, const char *ckdir, int step, double gl,
                                double gnorm, int64_t count)
{
    char where[96];
    RA_TRY(nonfinite_where(c, s, where, sizeof where));
    if (written_step != step) RA_TRY(checkpoint(c, s, ckdir, step));
    if (c->rank) return ra_agree(c->comm, RA_ERR_PEER); /* every rank knows; rank 0 says it */
    const double ml = count ? gl / (double)count : gl;
    return ra_agree(c->comm, RA_FAIL(RA_ERR_NUMERIC,
                                     "step %d: %s is not finite (loss %g, gradient norm %g; first non-finite "
                                     "gradient: %s); the parameters after step %d are kept in %s/step-%08d.ckpt "
                                     "(--resume %s continues from there). Lower train.lr, or set "
                                     "train.nonfinite = skip",
                                     step + 1, isfinite(gl) ? "the gradient" : "the loss", ml, gnorm, where, step,
                                     ckdir, step, ckdir));
}

/* A metrics write failed (rank 0; the step's reduction told every rank):
 * the finished steps are checkpointed, then the run stops with the error. */
static ra_status stop_metrics(const ra_cli *c, ra_session *s, const ra_metrics *m, const char *ckdir, int step,
                              int start)
{
    if (step > start && written_step != step) RA_TRY(checkpoint(c, s, ckdir, step));
    if (c->rank) return ra_agree(c->comm, RA_ERR_PEER);
    char why[RA_ERROR_MAX];
    ra_metrics_error(m);
    snprintf(why, sizeof why, "%s", ra_last_error());
    if (last_good_step < 0) return ra_agree(c->comm, RA_FAIL(RA_ERR_IO, "%s", why));
    return ra_agree(c->comm, RA_FAIL(RA_ERR_IO, "%s; the parameters after step %d are in %s/last.ckpt (--resume %s "
                                     "continues; give --metrics a file with room)", why, last_good_step, ckdir,
                                     ckdir));
}

/* A run stopped by an error every rank agreed on (st: the data of a step
 * or of an evaluation turned out bad, hours in): the `step` finished steps
 * are checkpointed first, unless they already are or there are none, and
 * the reporting rank's message names that checkpoint. Collective. */
static ra_status keep_finished(const ra_cli *c, ra_session *s, const char *ckdir, int step, int start, ra_status st)
{
    if (st == RA_OK || step <= start || written_step == step) return st;
    char why[RA_ERROR_MAX];
    snprintf(why, sizeof why, "%s", ra_last_error());
    RA_TRY(checkpoint(c, s, ckdir, step));
    if (st == RA_ERR_PEER) return st; /* another rank reports it */
    return RA_FAIL(st, "%s; the parameters after step %d are kept in %s/step-%08d.ckpt (--resume %s continues "
                   "from there)", why, step, ckdir, step, ckdir);
}

/* A stop request after `done` steps: they are checkpointed (unless they
 * are already) and the run ends with RA_EXIT_STOPPED. in_eval: it ended
 * the evaluation that followed them. */
static ra_status stopped_after(ra_cli *c, ra_session *s, const char *ckdir, int done, int level, int in_eval)
{
    ra_status st = written_step == done ? RA_OK : checkpoint(c, s, ckdir, done);
    if (st != RA_OK && st != RA_ERR_PEER) { /* the reporting rank says why the run ended too */
        char why[1280];
        snprintf(why, sizeof why, "%s", ra_last_error());
        return RA_FAIL(st, "%s (the run was stopping on signal %s after step %d)", why, level_name(level), done);
    }
    RA_TRY(st);
    ra_say(c, "stopped by signal %s %s step %d of %d; continue with --resume %s\n", level_name(level),
           in_eval ? "during the evaluation after" : "after", done, s->cfg.steps, ckdir);
    c->exit_code = RA_EXIT_STOPPED;
    return RA_OK;
}

static ra_status train(ra_cli *c, ra_session *s, int start, const char *ckdir, ra_metrics *metrics)
{
    const ra_config *cfg = &s->cfg;
    const int accum = cfg->accum;
    const double targets = (double)cfg->batch * ra_data_targets_per_seq(s->data);
    double t_start = ra_now();
    int ev_stop = 0; /* a stop request that ended an evaluation */
    if (start == 0 && cfg->eval_every > 0) RA_TRY(eval_and_report(c, s, 0, metrics, &ev_stop)); /* the starting point */
    if (ev_stop) {
        ra_say(c, "stopped by signal %s during the evaluation before step 1: no step ran, so no checkpoint was "
                  "written; run the same command again to start over\n", level_name(ev_stop));
        c->exit_code = RA_EXIT_STOPPED;
        return RA_OK;
    }
    for (int step = start; step < cfg->steps; step++) {
        double t0 = ra_now(), wait = 0, loss = 0;
        const int64_t tstep = RA_TRACE_T0();
        int64_t cnt[6] = { 0, 0, 0, 0, 0, 0 };
        ra_model_zero_grads(s->model);
        for (int a = 0; a < accum; a++) {
            uint64_t idx = ra_session_seq(s, (uint64_t)step, a); /* this group's share of the batch */
            /* named, as preflight's errors: an id past model.vocab is seen only here */
            ra_status ds = ra_data_batch(s->data, RA_SPLIT_TRAIN, idx, s->micro, s->tok, s->tgt);
            ds = ra_agree(c->comm, ra_arg_cmd("train", ds));
            if (ds != RA_OK) return keep_finished(c, s, ckdir, step, start, ds); /* no update of this step yet */
            ra_batch_stats bs;
            ra_status st = ra_model_step(s->model, s->tok, s->tgt, 1, (float)(1.0 / targets), a == accum - 1, &bs);
            if (st == RA_OK && a == accum - 1) st = ra_model_wait_grads(s->model);
            RA_TRY(ra_agree(c->comm, st));
            wait += bs.wait_seconds;
            loss += bs.loss_sum;
            cnt[0] += bs.count;
            cnt[1] += bs.correct;
        }
        inject_fault(s, step + 1);
        double gl;
        /* counted targets, correct, ranks signalled SIGUSR1, SIGTERM, a
         * failed metrics write (rank 0), ranks signalled SIGINT: one
         * reduction carries them all */
        int64_t gc[6];
        cnt[2] = stop_level == STOP_USR1, cnt[3] = stop_level == STOP_TERM, cnt[4] = ra_metrics_failed(metrics);
        cnt[5] = stop_level == STOP_INT;
        RA_TRY(ra_allreduce_named(&loss, &gl, 1, MPI_DOUBLE, MPI_SUM, c->comm, "the step's loss"));
        RA_TRY(ra_allreduce_named(cnt, gc, 6, MPI_INT64_T, MPI_SUM, c->comm, "the step's counts and stop flags"));
        if (gc[4]) return stop_metrics(c, s, metrics, ckdir, step, start);
        double gnorm;
        RA_TRY(ra_session_grad_norm(c, s, &gnorm)); /* the same on every rank */
        float lr = ra_lr_at(cfg, step);
        if (!isfinite(gl) || !isfinite(gnorm)) { /* the same decision on every rank */
            if (cfg->nonfinite_id != RA_NONFINITE_SKIP) return stop_nonfinite(c, s, ckdir, step, gl, gnorm, gc[0]);
            char where[96];
            RA_TRY(nonfinite_where(c, s, where, sizeof where));
            ra_say(c, "step %d: non-finite %s (first non-finite gradient: %s): step skipped, parameters "
                      "unchanged\n", step + 1, isfinite(gl) ? "gradient" : "loss", where);
        } else {
            float clip = cfg->clip > 0 && gnorm > cfg->clip ? (float)(cfg->clip / gnorm) : 1.0f;
            RA_TRY(ra_session_adamw(c, s, clip, lr, step + 1));
        }
        RA_TRACE_END1("train", "train step", tstep, "step", step + 1);
        double dt = ra_now() - t0, mean = gc[0] ? gl / (double)gc[0] : NAN;
        double tps = (double)cfg->batch * cfg->seq_len / dt, share = wait / dt;
        int done = step + 1;
        char a[32], b[32], g[32];
        ra_metrics_printf(metrics,
                          "{\"step\": %d, \"loss\": %s, \"lr\": %.9g, \"tokens_per_s\": %.6g, \"comm_share\": %.4f, "
                          "\"grad_norm\": %s, \"accuracy\": %s}\n",
                          done, json_num(a, sizeof a, mean), lr, tps, share,
                          json_num(g, sizeof g, gnorm), /* a skipped non-finite step's: null, not nan */
                          json_num(b, sizeof b, gc[0] ? (double)gc[1] / (double)gc[0] : NAN));
        if (done % cfg->log_every == 0 || done == cfg->steps || done == start + 1) {
            char eta[32];
            fmt_time(eta, sizeof eta, (ra_now() - t_start) / (done - start) * (cfg->steps - done));
            ra_say(c, "step %d/%d | loss %.4f | lr %.2e | %.0f tok/s | eta %s | comm %.0f%%\n", done,
                   cfg->steps, mean, lr, tps, eta, 100 * share);
        }
        const int signalled = gc[3] ? STOP_TERM : gc[5] ? STOP_INT : gc[2] ? STOP_USR1 : 0;
        if (!signalled && cfg->eval_every > 0 && done % cfg->eval_every == 0 && done != cfg->steps)
            RA_TRY(keep_finished(c, s, ckdir, done, start, eval_and_report(c, s, done, metrics, &ev_stop)));
        int late = 0; /* a stop request that came during this periodic checkpoint: it is the stop's */
        if (!signalled && !ev_stop && cfg->checkpoint_every > 0 && done % cfg->checkpoint_every == 0 &&
            done != cfg->steps) {
            RA_TRY(checkpoint(c, s, ckdir, done));
            const int mine = stop_level;
            RA_TRY(ra_allreduce_named(&mine, &late, 1, MPI_INT, MPI_MAX, c->comm, "the stop requests"));
        }
        ra_metrics_flush(metrics); /* a failure stops the run at the next step's reduction */
        if ((signalled || ev_stop || late) && done < cfg->steps)
            return stopped_after(c, s, ckdir, done, signalled ? signalled : ev_stop ? ev_stop : late, ev_stop != 0);
    }
    /* checkpointed before the final evaluation: a rank lost in it (killed,
     * stopped past run.timeout) loses none of the run's steps */
    RA_TRY(checkpoint(c, s, ckdir, cfg->steps));
    ra_status est = eval_and_report(c, s, cfg->steps, metrics, &ev_stop);
    if (est != RA_OK && est != RA_ERR_PEER) {
        char why[RA_ERROR_MAX];
        snprintf(why, sizeof why, "%s", ra_last_error());
        return RA_FAIL(est, "%s; the %d steps are done and kept in %s/step-%08d.ckpt (ringattn eval --checkpoint %s "
                       "evaluates them)", why, cfg->steps, ckdir, cfg->steps, ckdir);
    }
    RA_TRY(est);
    if (ev_stop) /* every step is done and kept: nothing for a requeued job to do, so exit 0 */
        ra_say(c, "stopped by signal %s during the final evaluation: the %d steps are done and checkpointed; "
                  "ringattn eval --checkpoint %s evaluates them\n", level_name(ev_stop), cfg->steps, ckdir);
    return RA_OK;
}

/* A fresh run's embedding and head from corpus statistics, as the config
 * asks. *stopped: the strongest stop request (STOP_*) that ended it
 * before it finished on any rank (every rank stops), 0 when it finished. */
static ra_status warm_start(const ra_cli *c, ra_session *s, int *stopped)
{
    const ra_config *cfg = &s->cfg;
    *stopped = 0;
    if (cfg->embed_init_id == RA_EMBED_INIT_RANDOM && cfg->head_init_id == RA_HEAD_INIT_RANDOM) return RA_OK;
    ra_warm_info w;
    double t0 = ra_now();
    /* said first: counting a large file takes seconds to minutes before any other line */
    ra_say(c, "warm start: counting the training tokens (embedding %s, head %s)\n", cfg->embed_init, cfg->head_init);
    RA_TRY(ra_agree(c->comm, ra_warm_start(s->model, s->data, cfg, c->comm, &w)));
    if (w.stopped) {
        *stopped = w.stopped; /* a STOP_ level */
        return RA_OK;
    }
    ra_say(c, "warm start: embedding %s (%d bits) | head %s", cfg->embed_init, w.bits, cfg->head_init);
    if (w.K > 0) ra_say(c, " (K = %.4g)", w.K);
    ra_say(c, " | %lld training tokens counted, %d distinct | %.2f s\n", (long long)w.tokens, w.distinct,
           ra_now() - t0);
    return RA_OK;
}

/* Where the session comes from: a fresh start (warm start as configured)
 * or a checkpoint. *start: steps already done; *stopped: a stop signal
 * ended the warm start. */
static ra_status begin(ra_cli *c, ra_session *s, const char *resume, int *start, int *stopped)
{
    *start = 0;
    *stopped = 0;
    if (!resume) return warm_start(c, s, stopped);
    ra_ckpt_state state;
    RA_TRY(ra_arg_cmd("train", ra_session_load(c, s, resume, 1, &state))); /* named, as the options' errors */
    *start = (int)state.step;
    ra_say(c, "resumed from %s at step %d\n", resume, *start);
    last_good_step = *start;
    return RA_OK;
}

/* p without its trailing slashes ("ck/" is ck) into out. */
static const char *bare(const char *p, char *out, size_t cap)
{
    size_t n = strlen(p);
    while (n > 1 && p[n - 1] == '/') n--;
    snprintf(out, cap, "%.*s", (int)n, p);
    return out;
}

/* path names dir (the checkpoint directory), by any spelling, whether it
 * exists or not. */
static int is_dir_named(const char *path, const char *dir)
{
    char a[RA_PATH_MAX], b[RA_PATH_MAX];
    bare(path, a, sizeof a), bare(dir, b, sizeof b);
    return !strcmp(a, b) || ra_same_file(a, b);
}

/* An output named like the checkpoint directory, refused before the run
 * makes it: a --trace there trained every step, then was lost at the end. */
static ra_status not_ckdir(const char *opt, const char *path, const char *ckopt, const char *ckdir)
{
    if (!path || !path[0] || !is_dir_named(path, ckdir)) return RA_OK;
    return RA_FAIL(RA_ERR_ARG, "%s %s: is the checkpoint directory (%s %s); give a file name", opt, path, ckopt,
                   ckdir);
}

/* --trace DIR/FILE where DIR is the checkpoint directory not made yet: the
 * trace is checked (probed) before the directory is made, so it must exist.
 * The metrics may go there: they are checked after it is made. */
static ra_status trace_dir_made(const char *trace, const char *ckopt, const char *ckdir)
{
    char dir[RA_PATH_MAX];
    struct stat st;
    ra_dir_of(trace, dir, sizeof dir);
    if (stat(dir, &st) == 0 || !is_dir_named(dir, ckdir)) return RA_OK;
    return RA_FAIL(RA_ERR_ARG, "--trace %s: its directory '%s' is the checkpoint directory (%s), which does not "
                   "exist yet: the trace's directory must exist before the run (train makes the checkpoint "
                   "directory only after checking its outputs); create it first, or write the trace elsewhere",
                   trace, dir, ckopt);
}

/* The metrics file and --trace: neither is the checkpoint directory, nor
 * one of the run's inputs, nor named like one's temporary file, nor the
 * other (or its temporary file); --trace creatable (the metrics are probed
 * once the checkpoint directory they may be in is made) and not a
 * checkpoint name. */
static ra_status check_outputs(const ra_cli *c, const train_args *a, const ra_config *cfg, const char *resume)
{
    const int data = cfg->source_id != RA_SOURCE_RECALL;
    const char *ckopt = a->ckdir ? "--checkpoint-dir" : "run.checkpoint_dir";
    const ra_cli_file ins[] = { { "--config", a->s.config }, { "--resume", a->resume ? resume : NULL },
                                { "data.path", data ? cfg->path : NULL },
                                { "data.val_path", data && cfg->val_path[0] ? cfg->val_path : NULL } };
    const ra_cli_file outs[] = { { a->metrics ? "--metrics" : "run.metrics", cfg->metrics[0] ? cfg->metrics : NULL },
                                 { "--trace", a->trace } };
    for (int o = 0; o < 2; o++) RA_TRY(not_ckdir(outs[o].opt, outs[o].path, ckopt, cfg->checkpoint_dir));
    if (a->trace) RA_TRY(trace_dir_made(a->trace, ckopt, cfg->checkpoint_dir));
    RA_TRY(ra_check_files("train", ins, 4, outs, 2, 0));
    if (!a->trace) return RA_OK;
    if (c->rank == 0) RA_TRY(ra_check_output_path(a->trace, "train: --trace"));
    RA_TRY(ra_check_not_checkpoint(a->trace, "--trace", cfg->checkpoint_dir, "the trace"));
    char from[RA_PATH_MAX];
    if (resume) ra_dir_of(resume, from, sizeof from);
    return resume ? ra_check_not_checkpoint(a->trace, "--trace", from, "the trace") : RA_OK;
}

static ra_status run(ra_cli *c, train_args *a, int argc, char **argv);

ra_status ra_cmd_train(ra_cli *c, int argc, char **argv)
{
    train_args a;
    int want_help = 0;
    RA_TRY(ra_agree(c->comm, ra_arg_cmd("train", parse(argc, argv, &a, &want_help))));
    if (want_help) {
        ra_say(c, help, ra_trace_help);
        ra_say(c, "\n%s", ra_session_help);
        return RA_OK;
    }
    return ra_cli_trace_end(c, run(c, &a, argc, argv));
}

/* The checkpoint directory and metrics file as the options left them,
 * resolved, against rank 0's: --checkpoint-dir and --metrics come after
 * the config's comparison, and an MPMD launch's other values were ignored
 * for rank 0's, exit 0 (their --set forms were refused). Collective. */
static ra_status same_outputs(const ra_cli *c, const ra_config *cfg)
{
    char dir[PATH_MAX], metrics[PATH_MAX], text[2 * PATH_MAX + 64];
    snprintf(text, sizeof text, "--checkpoint-dir = %s\n--metrics = %s\n",
             ra_path_for_ranks(cfg->checkpoint_dir, dir, sizeof dir),
             !cfg->metrics[0] ? "(none)" : ra_path_for_ranks(cfg->metrics, metrics, sizeof metrics));
    return ra_same_options(c, "train", text);
}

#define DATA_SAMPLE_BLOCK (64 * 1024)
#define DATA_SAMPLE_BLOCKS 256 /* 16 MiB read at most, whatever the file's size */

/* RA_CKPT_DATA_SAMPLE of the open file fd of size bytes: the hash of all
 * its bytes when it has at most DATA_SAMPLE_BLOCKS blocks, else of
 * DATA_SAMPLE_BLOCKS blocks spread evenly from its first byte to its last
 * (a shuffle or a retokenization changes every block; one edited byte may
 * fall between them). 0 when a read fails (unknown: nothing is compared). */
static uint64_t data_sample(int fd, const char *path, int64_t size)
{
    char *buf = malloc(DATA_SAMPLE_BLOCK);
    if (!buf) return 0;
    const uint64_t n = (uint64_t)size, b = DATA_SAMPLE_BLOCK, last = DATA_SAMPLE_BLOCKS - 1;
    const int whole = n <= b * DATA_SAMPLE_BLOCKS;
    const uint64_t blocks = whole ? (n + b - 1) / b : DATA_SAMPLE_BLOCKS;
    uint64_t h = RA_HASH64_START;
    int read_all = 1;
    for (uint64_t i = 0; i < blocks && read_all; i++) {
        /* spread: block i starts at (n - b) * i / last, without overflow */
        const uint64_t off = whole ? i * b : (n - b) / last * i + (n - b) % last * i / last;
        const size_t len = (size_t)(n - off < b ? n - off : b);
        read_all = ra_pread_full(fd, path, buf, len, (int64_t)off) == RA_OK;
        if (read_all) h = ra_hash64_more(h, buf, len);
    }
    free(buf);
    if (!read_all) return 0; /* unknown */
    return h ? h : 1;        /* 0 means unknown */
}

/* data.path's size (plus one; 0 for the recall task) and data_sample's
 * hash of its bytes at the run's start, for its checkpoints
 * (RA_CKPT_DATA_BYTES, RA_CKPT_DATA_SAMPLE). A resume whose checkpoint
 * recorded another size, or the same size and another hash, is warned: the
 * file changed since, so the batches from here are not the ones the run
 * would have read. Collective. */
static ra_status note_data(const ra_cli *c, const ra_config *cfg, const ra_ckpt_state *from, ra_session *s)
{
    uint64_t got[2] = { 0, 0 }; /* size + 1, hash */
    int fd;
    int64_t size;
    if (c->rank == 0 && cfg->source_id != RA_SOURCE_RECALL &&
        ra_file_open_input(cfg->path, "data.path", &fd, &size) == RA_OK) {
        got[0] = (uint64_t)size + 1;
        got[1] = data_sample(fd, cfg->path, size);
        close(fd);
    }
    RA_TRY(ra_bcast(got, 2, MPI_UINT64_T, 0, c->comm, "the size and hash of data.path"));
    s->data_bytes = got[0];
    s->data_sample = got[1];
    const uint64_t was = from ? from->extra[RA_CKPT_DATA_BYTES] : 0;
    const uint64_t was_sample = from ? from->extra[RA_CKPT_DATA_SAMPLE] : 0;
    if (c->rank != 0 || !was || !got[0]) return RA_OK;
    if (was != got[0])
        fprintf(stderr, "ringattn: warning: train: data.path %s holds %llu bytes, %llu when the checkpoint was "
                "written: the data changed since, so the steps from here read other batches than the run would "
                "have (--resume continues exactly only on the same data)\n", cfg->path,
                (unsigned long long)(got[0] - 1), (unsigned long long)(was - 1));
    else if (was_sample && got[1] && was_sample != got[1])
        fprintf(stderr, "ringattn: warning: train: data.path %s holds other bytes than when the checkpoint was "
                "written (the same size, %llu bytes: shuffled or rewritten?), so the steps from here read other "
                "batches than the run would have (--resume continues exactly only on the same data)\n", cfg->path,
                (unsigned long long)(got[0] - 1));
    return RA_OK;
}

static ra_status run(ra_cli *c, train_args *ap, int argc, char **argv)
{
    train_args a = *ap;
    ra_cli_on_stop_signals(on_stop_signal);
    char resume[RA_PATH_MAX + 32];
    if (a.resume) ra_ckpt_resolve(resume, sizeof resume, a.resume);
    if (a.resume) RA_TRY(ra_train_resume_source(c, a.resume, a.ckdir, resume, sizeof resume));
    ra_config cfg;
    ra_ckpt_state from;
    char stored[RA_PATH_MAX], stored_ckdir[RA_PATH_MAX]; /* the checkpoint's own run.metrics and directory */
    /* the config's and --set's errors name the command, as the options' do */
    a.s.grid_ranks = c->size;
    RA_TRY(ra_arg_cmd("train", ra_session_config_state(c, &a.s, a.resume ? resume : NULL, &cfg, &from, stored,
                                                       stored_ckdir)));
    ra_status ps = a.resume ? ra_train_step_as_named(resume, from.step) : RA_OK;
    /* an option and --set of its key: one would win unsaid (as an option given twice, refused) */
    if (a.metrics && ra_session_sets_key(&a.s, "run.metrics"))
        ps = RA_FAIL(RA_ERR_ARG, "--metrics and --set run.metrics both name the metrics file; give one");
    if (ps == RA_OK && a.ckdir && ra_session_sets_key(&a.s, "run.checkpoint_dir"))
        ps = RA_FAIL(RA_ERR_ARG, "--checkpoint-dir and --set run.checkpoint_dir both name the checkpoint directory; "
                     "give one");
    if (ps == RA_OK && a.metrics) ps = ra_arg_path("--metrics", a.metrics, cfg.metrics, sizeof cfg.metrics);
    if (ps == RA_OK && a.ckdir) ps = ra_arg_path("--checkpoint-dir", a.ckdir, cfg.checkpoint_dir, sizeof cfg.checkpoint_dir);
    /* a resumed run continues beside its checkpoint: the stored
     * run.checkpoint_dir may be relative to where the first run started,
     * and a resume from elsewhere split the history into a new directory */
    if (ps == RA_OK && a.resume && !a.ckdir && !ra_session_sets_key(&a.s, "run.checkpoint_dir")) {
        char dir[RA_PATH_MAX];
        ra_dir_of(resume, dir, sizeof dir);
        ps = ra_arg_path("--resume", dir, cfg.checkpoint_dir, sizeof cfg.checkpoint_dir);
    }
    RA_TRY(ra_agree(c->comm, ra_arg_cmd("train", ps)));
    ra_trim_slashes(cfg.checkpoint_dir); /* "ck/": files and messages say ck/last.ckpt */
    RA_TRY(same_outputs(c, &cfg));
    const int metrics_given = a.metrics || ra_session_sets_key(&a.s, "run.metrics");
    RA_TRY(ra_train_resume_metrics(c, metrics_given ? (a.metrics ? "--metrics" : "run.metrics") : NULL, &cfg,
                                   a.resume ? resume : NULL, &from, stored, stored_ckdir));
    /* run.timeout from here: a rank 0 hung in the preflight's file system
     * calls (a dead NFS server) is named after it, not the default 120 s */
    ra_set_peer_timeout(cfg.timeout);
    const ra_train_files files = {
        .config = a.s.config,
        .resume = a.resume ? resume : NULL,
        .resume_step = (int)from.step,
        .ckdir_opt = a.ckdir ? "--checkpoint-dir" : "run.checkpoint_dir",
        .metrics_opt = a.metrics ? "--metrics" : "run.metrics",
    };
    /* the outputs against the inputs, then the checkpoint directory (made,
     * locked): a refusal leaves nothing behind */
    RA_TRY(ra_agree(c->comm, ra_arg_cmd("train", check_outputs(c, &a, &cfg, a.resume ? resume : NULL))));
    RA_TRY(ra_train_preflight(c, &cfg, &files)); /* before any work */
    RA_TRY(ra_cli_trace_begin(c, a.trace, "train", argc, argv));
    int threads = ra_set_threads(c, a.s.threads ? a.s.threads : cfg.threads, a.s.threads ? "--threads" : "run.threads");

    uint64_t history = 0;
    RA_TRY(ra_train_history_id(c, a.resume ? resume : NULL, &cfg, &from, &history));
    ra_session s;
    ra_status st = ra_arg_cmd("train", ra_session_open(c, &s, &cfg, cfg.batch / cfg.dp / cfg.accum, 1, NULL));
    s.history = history;
    /* a data.path (or source) given anew on resume is the user's choice: nothing to warn of */
    const int data_anew = ra_session_sets_key(&a.s, "data.path") || ra_session_sets_key(&a.s, "data.source");
    if (st == RA_OK) st = note_data(c, &cfg, a.resume && !data_anew ? &from : NULL, &s);
    int start = 0, stopped = 0;
    if (st == RA_OK) st = begin(c, &s, a.resume ? resume : NULL, &start, &stopped);
    if (st == RA_OK && stopped) {
        ra_say(c, "stopped by signal %s during the warm start, before step 1: no step ran, so no checkpoint "
                  "was written; run the same command again to start over\n",
               level_name(stopped));
        c->exit_code = RA_EXIT_STOPPED;
        ra_session_close(&s);
        ra_train_unmake_dir(c, &cfg);
        return RA_OK;
    }
    ra_metrics m, *metrics = NULL;
    if (st == RA_OK && c->rank == 0 && cfg.metrics[0]) {
        st = ra_metrics_open(&m, cfg.metrics, a.resume != NULL, start);
        if (st == RA_OK) metrics = &m;
    }
    st = ra_agree(c->comm, st);
    if (st == RA_OK) {
        ra_say(c, "train: %zu parameters | %d layer%s, dim %d, heads %d/%d, head dim %d, ffn %s %d | "
                  "L=%d batch %d (x%d accum) | P=%d = dp %d x cp %d %s, optimizer %s | threads %d (%s), OpenBLAS %s, kernels %s | "
                  "data %s\n",
               ra_model_nparams(s.model), cfg.layers, cfg.layers == 1 ? "" : "s", cfg.dim, cfg.heads, cfg.kv_heads, cfg.head_dim,
               cfg.ffn, cfg.ffn_dim, cfg.seq_len, cfg.batch, cfg.accum, c->size, s.grid.dp, s.grid.cp, cfg.layout,
               s.sharded ? "sharded" : "replicated", threads,
               ra_threads_origin(), ra_blas_desc(), ra_kernel_isa(), cfg.source_id != RA_SOURCE_RECALL ? cfg.path : "recall task");
        st = train(c, &s, start, cfg.checkpoint_dir, metrics);
    }
    /* the metrics are complete only when every line reached the file */
    ra_status ms = ra_metrics_close(metrics, st != RA_OK);
    if (st == RA_OK) st = ra_agree(c->comm, ms);
    struct stat mst; /* a fresh run that ended before step 1 leaves no empty metrics file it made */
    if (metrics && !a.resume && last_good_step < 0 && stat(cfg.metrics, &mst) == 0 && S_ISREG(mst.st_mode) &&
        mst.st_size == 0)
        (void)unlink(cfg.metrics);
    ra_session_close(&s);
    /* a failed run, or one stopped before step 1: kept when a checkpoint (or the metrics) is in it */
    if (st != RA_OK || last_good_step < 0) ra_train_unmake_dir(c, &cfg);
    return st;
}
