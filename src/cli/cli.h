/* cli.h - what the subcommands of the ringattn program share. */
#ifndef RINGATTN_CLI_H
#define RINGATTN_CLI_H

#include <mpi.h>
#include <stdint.h>

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

/* Option values, each error naming the option and the value. */
ra_status ra_arg_long(const char *opt, const char *val, long lo, long hi, long *out);
ra_status ra_arg_int(const char *opt, const char *val, int lo, int hi, int *out);
/* integer with optional K/M/G suffix (x1024) */
ra_status ra_arg_size(const char *opt, const char *val, int64_t lo, int64_t *out);
ra_status ra_arg_float(const char *opt, const char *val, float *out);
/* getopt's complaint about argv[optind-1], as an error for subcommand cmd */
ra_status ra_arg_unknown(const char *cmd, int optopt_c, const char *arg);

/* Print on rank 0 only (progress and results). */
void ra_say(const ra_cli *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Place this rank (ra_place: its share of the node's cores, bound unless
 * --no-bind), warn when the node is oversubscribed, print the placement of
 * every rank with --verbose, and set OpenBLAS threads: n > 0 as given, else
 * the cores the rank owns. Collective. Returns the thread count. */
int ra_set_threads(const ra_cli *c, int n);

#endif
