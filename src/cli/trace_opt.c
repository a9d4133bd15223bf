/* trace_opt.c - `--trace FILE` of attn, bench attn, train, bench train and
 * generate (docs/trace.md): started once the command's files are checked
 * (the path is one of its outputs there), written at the end whatever the
 * command's status, so a failed run still leaves what it recorded (or, if
 * that write fails, no file at all: fileio.h's atomic rename). */
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "ringattn/dist.h"
#include "ringattn/fileio.h"
#include "ringattn/trace.h"

const char *ra_trace_help =
    "  --trace FILE      write a timeline of every rank (Chrome trace JSON: open it in\n"
    "                    https://ui.perfetto.dev or plot it with scripts/plot_trace.py;\n"
    "                    docs/trace.md); checked before any work like every output\n";

enum { SYNC_ROUNDS = 16 };

static const char *g_path;
static char g_command[1024];
static char g_cmd[32]; /* "generate": its errors' prefix, as every other error of the command has */

ra_status ra_cli_trace_begin(const ra_cli *c, const char *path, const char *cmd, int argc, char **argv)
{
    g_path = NULL;
    if (!path) return RA_OK;
    snprintf(g_cmd, sizeof g_cmd, "%s", cmd);
    size_t n = (size_t)snprintf(g_command, sizeof g_command, "ringattn %s", cmd);
    for (int i = 1; i < argc && n < sizeof g_command; i++)
        n += (size_t)snprintf(g_command + n, sizeof g_command - n, " %s", argv[i]);
    /* RINGATTN_TRACE_EVENTS=N: the cap of events per rank (default 1M) */
    int64_t cap = 0;
    const char *env = getenv("RINGATTN_TRACE_EVENTS");
    if (env && *env) {
        char *end;
        errno = 0;
        long long v = strtoll(env, &end, 10);
        if (*end || errno || v < 1 || v > INT32_MAX) /* 1e20 was clamped to 2^63 and named as that */
            return ra_agree(c->comm, RA_FAIL(RA_ERR_ARG, "RINGATTN_TRACE_EVENTS=%s: need a whole number of events "
                                                         "from 1 to 2147483647", env));
        cap = v;
    }
    /* RINGATTN_TRACE_CHUNK=N: the gather's round in bytes (trace.h); a bad one
     * was ignored unsaid, where the cap above is refused */
    const char *chunk = getenv("RINGATTN_TRACE_CHUNK");
    if (chunk && *chunk) {
        char *end;
        errno = 0;
        long long v = strtoll(chunk, &end, 10);
        if (*end || errno || v < 1 || v > INT32_MAX)
            return ra_agree(c->comm, RA_FAIL(RA_ERR_ARG, "RINGATTN_TRACE_CHUNK=%s: need a whole number of bytes "
                                                         "from 1 to 2147483647", chunk));
    }
    RA_TRY(ra_trace_begin(c->comm, cap, SYNC_ROUNDS));
    g_path = path;
    return RA_OK;
}

/* ---- a stop signal, read at the command's next step ------------------------------ */

static int g_catching;                   /* stop signals marked (ra_cli_stopped reads them) */
static volatile sig_atomic_t g_stop_sig; /* the first stop signal, 0: none */
static int g_agreed_sig;                 /* the signal every rank agreed on, 0: none yet */

static void on_stop(int sig)
{
    if (!g_stop_sig) g_stop_sig = sig;
    if (sig == SIGINT) {
        ra_atomic_cleanup_on_signal(SIGINT); /* the second: quit at once, temporaries removed */
        static const char msg[] = "ringattn: SIGINT: stopping at the next step or token, keeping what ran; again: "
                                  "quit at once\n";
        if (write(STDERR_FILENO, msg, sizeof msg - 1) < 0) { /* nothing to do about it in a handler */ }
    }
}

void ra_cli_on_stop_signals(void (*handler)(int))
{
    struct sigaction sa = { 0 };
    sa.sa_handler = handler;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    sigaction(SIGUSR1, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sa.sa_flags = SA_RESTART | SA_RESETHAND; /* the second Ctrl-C: the default action */
    sigaction(SIGINT, &sa, NULL);
}

void ra_cli_trace_catch_stops(void)
{
    if (!g_path) return; /* no trace to save: a signal ends the command at once */
    g_catching = 1;
    ra_cli_on_stop_signals(on_stop);
}

void ra_cli_catch_stops(const char *cmd)
{
    snprintf(g_cmd, sizeof g_cmd, "%s", cmd);
    g_catching = 1;
    ra_cli_on_stop_signals(on_stop);
}

ra_status ra_cli_stopped(const ra_cli *c, const char *what)
{
    if (!g_catching) return RA_OK; /* no handlers: every rank alike (--trace is compared across ranks) */
    /* the ranks' signals agreed: a rank that sees it one step later stops at the same step */
    int sig = g_stop_sig;
    RA_TRY(ra_allreduce_named(MPI_IN_PLACE, &sig, 1, MPI_INT, MPI_MAX, c->comm, "the stop signals"));
    if (!sig) return RA_OK;
    g_agreed_sig = sig;
    if (c->rank != 0) return RA_ERR_PEER; /* agreed already: rank 0 says it, as ra_agree would have it */
    return RA_FAIL(RA_ERR_IO, "%s: stopped by %s %s", g_cmd,
                   sig == SIGTERM ? "SIGTERM" : sig == SIGINT ? "SIGINT" : "SIGUSR1", what);
}

int ra_cli_stop_signal(void) { return g_agreed_sig; }

/* A failed write said with the command and the option ("generate: --trace
 * t.json was not written: ..."); rank 0 writes and has the reason, the
 * others RA_ERR_PEER. */
static ra_status named(ra_status ws, const char *path) { return ra_cli_not_written(g_cmd, "--trace", path, ws); }

ra_status ra_cli_trace_end(const ra_cli *c, ra_status st)
{
    if (!g_path) return st;
    const char *path = g_path;
    g_path = NULL;
    char status[RA_ERROR_MAX + 32], saved[RA_ERROR_MAX];
    snprintf(saved, sizeof saved, "%s", ra_last_error());
    if (st == RA_OK) snprintf(status, sizeof status, "ok");
    else if (st == RA_ERR_PEER) snprintf(status, sizeof status, "failed on another rank");
    else snprintf(status, sizeof status, "failed: %s", saved);
    ra_status ws = named(ra_trace_write(c->comm, path, g_command, status), path);
    if (st == RA_OK) return ws;
    /* the command's own failure is the one to report */
    if (ws != RA_OK && ws != RA_ERR_PEER && c->rank == 0) fprintf(stderr, "ringattn: warning: %s\n", ra_last_error());
    if (st != RA_ERR_PEER) RA_FAIL(st, "%s", saved);
    return st;
}
