/* cli.h - what the subcommands of the ringattn program share. */
#ifndef RINGATTN_CLI_H
#define RINGATTN_CLI_H

#include <mpi.h>
#include <stddef.h>
#include <stdint.h>

#include "ringattn/config.h"
#include "ringattn/layout.h"
#include "ringattn/status.h"

typedef struct {
    MPI_Comm comm;
    int rank, size;
    int exit_code; /* for a command that succeeded: 0, or RA_EXIT_STOPPED */
    int verbose;   /* --verbose: print each rank's placement */
    int no_bind;   /* --no-bind: leave the launcher's binding alone */
} ra_cli;

#define RA_EXIT_STOPPED 75 /* EX_TEMPFAIL: stopped by a signal, resumable */

/* Subcommands: parse argv (argv[0] is the subcommand name), run, return a
 * status; the caller prints the error and picks the exit code. */
ra_status ra_cmd_attn(ra_cli *c, int argc, char **argv);
ra_status ra_cmd_gen(ra_cli *c, int argc, char **argv);
ra_status ra_cmd_compare(ra_cli *c, int argc, char **argv);
ra_status ra_cmd_bench(ra_cli *c, int argc, char **argv);
ra_status ra_cmd_train(ra_cli *c, int argc, char **argv);
ra_status ra_cmd_eval(ra_cli *c, int argc, char **argv);
ra_status ra_cmd_diag(ra_cli *c, int argc, char **argv);
ra_status ra_cmd_cipher(ra_cli *c, int argc, char **argv);
ra_status ra_cmd_generate(ra_cli *c, int argc, char **argv);
ra_status ra_cmd_export(ra_cli *c, int argc, char **argv); /* cmd_llama.c */
ra_status ra_cmd_import(ra_cli *c, int argc, char **argv);
/* st, with the way to convert a Llama model (a directory with config.json
 * and safetensors, or one of its files) given as --checkpoint or --resume
 * in argv: such a failure said only "DIR/last.ckpt: cannot open" or "bad
 * magic". Otherwise st unchanged. */
ra_status ra_llama_given_advice(ra_status st, int argc, char **argv);
ra_status ra_cmd_plan(ra_cli *c, int argc, char **argv); /* cmd_plan.c */

/* Option values, each error naming the option and the value. */
ra_status ra_arg_long(const char *opt, const char *val, long lo, long hi, long *out);
ra_status ra_arg_int(const char *opt, const char *val, int lo, int hi, int *out);
/* integer with optional K/M/G suffix (x1024) */
ra_status ra_arg_size(const char *opt, const char *val, int64_t lo, int64_t *out);
ra_status ra_arg_float(const char *opt, const char *val, float *out);
/* a path into a config field of cap bytes: refused when it does not fit or
 * holds a control character (the rules of a string key, config_value.c) */
ra_status ra_arg_path(const char *opt, const char *val, char *dst, size_t cap);
/* getopt_long, and an option with a value given a second time returns
 * RA_OPT_TWICE (ra_arg_unknown words it): the last one winning silently
 * would run with a file or number the user did not mean. Only --set
 * repeats; a flag without a value may. So does a value that is one of the
 * command's long options ("--metrics --trace" wrote the metrics to a file
 * named --trace). Each parser sets optind = 1 first. */
#define RA_OPT_TWICE 0x10000
struct option;
int ra_getopt(int argc, char **argv, const char *shortopts, const struct option *opts);
/* getopt's complaint (or RA_OPT_TWICE's), as an error for subcommand cmd,
 * naming the argument the last ra_getopt call worked on (arg, argv[optind-1],
 * only when there was none); a long option typed with one dash
 * ("-checkpoint") gets "did you mean --checkpoint?" */
ra_status ra_arg_unknown(const char *cmd, int optopt_c, const char *arg);
/* st, an error of cmd's options, with its message starting "cmd: " (the
 * value checks above name only the option: "--chunk: 'x' is not an
 * integer"); a message that names cmd already, and RA_OK, pass unchanged. */
ra_status ra_arg_cmd(const char *cmd, ra_status st);
/* --span and --row given to a head that has no such parameter (they were
 * ignored): --span is combiner-fixed's, --row combiner-axial's; and
 * combiner-logsparse without --causal, before any input is read (its head
 * refuses it only when created). */
ra_status ra_check_head_params(const char *cmd, const ra_layer_config *l, int causal);
/* An argument left after cmd's options (getopt's optind) refused, naming
 * it: `eval --checkpoint ck data.txt` (a forgotten --data) scored the
 * checkpoint's own data and exited 0. */
ra_status ra_arg_rest(const char *cmd, int argc, char **argv);

/* What this rank runs with must be what rank 0 runs with (same.c): each
 * rank reads its config and checkpoint and parses its own options, and a
 * file replaced while they read it, or an MPMD launch giving some ranks
 * other options, made replicas diverge with exit 0. text: "key = value"
 * lines ("[sec]" lines name the keys after them "sec.key"; comments
 * ignored), compared by a 64-bit hash. source: where this rank got it
 * ("--config a.ini"). Collective. When a rank's text differs, every rank
 * fails, rank 0 with "SOURCE: rank R (given ITS SOURCE, when not rank 0's)
 * DID than rank 0 (WHY); differing: KEY (V0 on rank 0, VR on rank R), ..."
 * for the lowest such R (did: "read a different config"), the others
 * with RA_ERR_PEER. */
ra_status ra_same_on_ranks(const ra_cli *c, const char *source, const char *did, const char *why, const char *text);
/* 64-bit FNV-1a of n bytes: what ra_same_on_ranks compares, and a short
 * name for data too long to show (a prompt). */
uint64_t ra_hash64(const void *data, size_t n);
/* The same over pieces: h = RA_HASH64_START, then h = ra_hash64_more(h, ...)
 * for each piece in turn gives ra_hash64 of them joined. */
#define RA_HASH64_START 0xcbf29ce484222325ull
uint64_t ra_hash64_more(uint64_t h, const void *data, size_t n);
/* ra_same_on_ranks for a command's options that change its results and
 * are not in the config (text: "--opt = value" lines): "cmd: rank R was
 * given different options than rank 0 (an MPMD launch ...); differing: ..." */
ra_status ra_same_options(const ra_cli *c, const char *cmd, const char *text);

/* A file named on the command line: the option that named it ("--q") and
 * its path (NULL: not given, skipped). */
typedef struct {
    const char *opt, *path;
} ra_cli_file;

/* The files of command cmd, before any work (io_checks.c): every input is a
 * regular file (a FIFO or device is refused at once, without blocking); no
 * output is an input, by any spelling, symlink or hard link, nor has an
 * input as its temporary "<out>.tmp"; no two outputs are one file; every
 * output passes ra_check_output_fresh; with probe, a file can be created
 * at every output path. Errors name both options and the paths. Not
 * collective: run it on every rank, then agree. */
/* An output the atomic write may replace (what: the option): not in /proc
 * or /sys (ra_check_not_kernel_fs), not a symbolic link (the rename would
 * replace the link, not write to its target: /dev/stdout, a checkpoint
 * directory's last.ckpt), and no "<path>.tmp" there already, which the
 * write would delete (a user's file, or a killed run's leftover: the user
 * decides). */
ra_status ra_check_output_fresh(const char *path, const char *what);
/* Two or more of the outputs' "<path>.tmp" left over (a killed `gen`'s
 * four): all named in one refusal, not one per run. */
ra_status ra_check_leftover_tmps(const char *what, const char *const *paths, int n);
ra_status ra_check_files(const char *cmd, const ra_cli_file *ins, int nin, const ra_cli_file *outs, int nout,
                         int probe);
/* A failed write of an output said with the command and the option, as the
 * command's other errors are ("plan: --csv x.csv was not written: x.csv.tmp:
 * write failed ..."); st is returned as it is when RA_OK or RA_ERR_PEER (a
 * rank that did not write). */
ra_status ra_cli_not_written(const char *cmd, const char *opt, const char *path, ra_status st);
/* Collective, after the last result is printed: fails when writing
 * standard output on rank 0 failed (stdout on a full device, a closed
 * pipe), so lost results are not an exit status of 0. */
ra_status ra_stdout_finish(const ra_cli *c);

/* One input tensor of `attn` as this rank holds it: its rows
 * [outer][Lr][inner] of the file's [outer][L][inner] (nonfinite.c). */
typedef struct {
    const char *opt, *path; /* "--q", "q.npy" */
    const float *data;
    int ndim;               /* the file's shape, for the position in messages */
    const int64_t *shape;
    int64_t outer, inner;
} ra_finite_input;
/* Collective: count the NaN and Inf elements of n tensors over all ranks.
 * None: RA_OK. Otherwise an error (allow == 0) or a warning on rank 0
 * (allow != 0), giving per tensor the count and the first position in the
 * file; maxabs[n] gets each tensor's largest finite |x| over all ranks. */
ra_status ra_check_finite_inputs(const ra_cli *c, const ra_finite_input *t, int n, ra_layout layout, int64_t L,
                                 int allow, double *maxabs);
/* After it, with its maxabs[n] (the largest finite |x| of each tensor, over
 * all ranks; inf when some were not finite): t is Q, K, V and, n = 4, dO.
 * Refuses inputs whose logits or gradients could overflow float32 (the
 * same on every rank). */
ra_status ra_check_input_range(const ra_finite_input *t, int n, const double *maxabs, double scale, int64_t L);
/* "[b, h, l, d]": the index of element flat (C order) of an array of the
 * given shape, for messages; returns out. */
const char *ra_position_str(char *out, int cap, int64_t flat, int ndim, const int64_t *shape);

/* --trace FILE (trace_opt.c): its help line; begin after the command's
 * files are checked (path NULL: no trace; collective: clock offsets; cmd
 * and argv[1..] are recorded as the command line), end
 * with the command's status on every rank: the file is written (rank 0)
 * whatever st is; returns st, or the write's failure when st is RA_OK. */
extern const char *ra_trace_help;
ra_status ra_cli_trace_begin(const ra_cli *c, const char *path, const char *cmd, int argc, char **argv);
ra_status ra_cli_trace_end(const ra_cli *c, ra_status st);
/* Stop signals read between steps. ra_cli_trace_catch_stops (with a trace
 * begun) and ra_cli_catch_stops (always: generate, whose sampled tokens
 * are kept) make SIGTERM, SIGINT (once) and SIGUSR1 only mark a stop, which
 * the command's loop reads with ra_cli_stopped (collective and agreed, as
 * ra_agree returns: rank 0 gets "CMD: stopped by SIGTERM WHAT" when any rank
 * had one, the others RA_ERR_PEER; RA_OK when none) at its next step, so
 * what ran is kept: the trace written (bench attn, bench train, generate),
 * generate's tokens. Without either call the signals keep their actions
 * and the check is free (no collective). ra_cli_stop_signal: the signal
 * ra_cli_stopped agreed on (on every rank), 0 when none. */
void ra_cli_trace_catch_stops(void);
void ra_cli_catch_stops(const char *cmd);
/* handler for SIGUSR1, SIGTERM and SIGINT (SA_RESTART; SIGINT once: a
 * second one takes the default action), as train and the above install it. */
void ra_cli_on_stop_signals(void (*handler)(int));
ra_status ra_cli_stopped(const ra_cli *c, const char *what); /* collective */
int ra_cli_stop_signal(void);

/* Print on rank 0 only (progress and results). */
void ra_say(const ra_cli *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Place this rank (ra_place: its share of the node's cores, bound unless
 * --no-bind), warn when the node is oversubscribed, print the placement of
 * every rank with --verbose, and set the rank's threads (threads.h), the
 * first of: n > 0 (given_by names where: "--threads", "run.threads"),
 * OMP_NUM_THREADS, SLURM_CPUS_PER_TASK, the cores the rank owns (hwloc; 1
 * when oversubscribed). OPENBLAS_NUM_THREADS, when set, keeps the OpenBLAS
 * count (said once). Collective. Returns the thread count. */
int ra_set_threads(const ra_cli *c, int n, const char *given_by);
/* Where the last ra_set_threads count came from ("OMP_NUM_THREADS", ...). */
const char *ra_threads_origin(void);
/* "OpenMP SkylakeX": OpenBLAS's threading and kernels, for the start lines
 * (and, when main.c re-executed with OPENBLAS_CORETYPE, what OpenBLAS chose) */
const char *ra_blas_desc(void);

#endif
