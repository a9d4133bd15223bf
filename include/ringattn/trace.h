/* trace.h - a timeline of what each rank did, for Perfetto / chrome://tracing
 * (docs/trace.md).
 *
 * A per-process recorder of complete spans ("X": name, category, start,
 * duration, up to RA_TRACE_MAX_ARGS integer arguments such as bytes and
 * peer), instant events and counters, in memory, bounded: at most `cap`
 * events (blocks of RA_TRACE_BLOCK allocated as needed); what does not fit
 * is counted as dropped, never grown, never a crash. Only the thread that
 * called ra_trace_begin records (the MPI main thread: every span is outside
 * or around the OpenMP regions); calls from other threads are counted and
 * ignored. Off (the default), a span costs one predictable branch at each
 * end on the global ra_trace_on:
 *
 *     int64_t t0 = RA_TRACE_T0();
 *     ... work ...
 *     RA_TRACE_END2("attn", "fwd step", t0, "step", s, "tokens", n);
 *
 * Names, categories and argument keys must be string literals (or strings
 * that live until the trace is written): events keep their pointers until
 * they are interned into a small per-rank table (at most RA_TRACE_MAX_NAMES
 * distinct strings; past it events are dropped).
 *
 * At the end of a command ra_trace_write (src/dist/trace_sync.c) packs each
 * rank's events (ra_trace_pack), gathers them to rank 0, and rank 0 writes
 * one Chrome trace JSON file atomically (ra_trace_json_write). The clock
 * offset of every rank against rank 0 is estimated by ra_trace_begin. */
#ifndef RINGATTN_TRACE_H
#define RINGATTN_TRACE_H

#include <mpi.h>
#include <stddef.h>
#include <stdint.h>

#include "ringattn/status.h"

enum {
    RA_TRACE_MAX_ARGS = 3,
    RA_TRACE_MAX_NAMES = 1024,       /* distinct names + categories + keys per rank */
    RA_TRACE_NAME_MAX = 63,          /* bytes of one interned string (longer: cut) */
    RA_TRACE_BLOCK = 1 << 14,        /* events per allocation */
    RA_TRACE_DEFAULT_CAP = 1 << 20,  /* events per rank */
};

/* Tracks (Chrome "tid") of a rank: thread 0 records compute and waits; the
 * transfers and reductions, which overlap it, go on tracks of their own
 * (the ring's transfers posted a step ahead on four more, pieces and dK/dV
 * partials apart: they outlast a step, so on one track with the others
 * their spans would not nest). */
enum { RA_TRACE_TID_MAIN = 0, RA_TRACE_TID_SEND = 1, RA_TRACE_TID_RECV = 2, RA_TRACE_TID_REDUCE = 3,
       RA_TRACE_TID_SEND_AHEAD = 4, RA_TRACE_TID_RECV_AHEAD = 5, RA_TRACE_TID_DKV_SEND_AHEAD = 6,
       RA_TRACE_TID_DKV_RECV_AHEAD = 7, RA_TRACE_NTRACKS = 8 };

enum { RA_TRACE_SPAN = 'X', RA_TRACE_INSTANT = 'i', RA_TRACE_COUNTER = 'C' };

/* Non-zero while this process records. Read it through the macros. */
extern int ra_trace_on;

/* Monotonic nanoseconds (CLOCK_MONOTONIC). */
int64_t ra_trace_clock(void);

/* Start (0 when tracing is off). */
#define RA_TRACE_T0() (ra_trace_on ? ra_trace_clock() : (int64_t)0)

/* One recorded event as kept in memory. */
typedef struct {
    int64_t ts, dur;                     /* ns, this rank's clock; dur 0 for 'i' and 'C' */
    int64_t val[RA_TRACE_MAX_ARGS];      /* argument values; a counter's value in val[0] */
    const char *name, *cat;
    const char *key[RA_TRACE_MAX_ARGS];  /* NULL: no such argument */
    uint8_t type, tid;
} ra_trace_event;

/* Record a span [t0, now] on track tid; nargs of keys/vals. Use the macros. */
void ra_trace_span(int tid, const char *cat, const char *name, int64_t t0, int64_t t1, int nargs,
                   const char *const *keys, const int64_t *vals);
void ra_trace_end0(const char *cat, const char *name, int64_t t0);
void ra_trace_end1(const char *cat, const char *name, int64_t t0, const char *k0, int64_t v0);
void ra_trace_end2(const char *cat, const char *name, int64_t t0, const char *k0, int64_t v0, const char *k1,
                   int64_t v1);
void ra_trace_end3(const char *cat, const char *name, int64_t t0, const char *k0, int64_t v0, const char *k1,
                   int64_t v1, const char *k2, int64_t v2);
void ra_trace_instant(const char *cat, const char *name);
void ra_trace_counter(const char *cat, const char *name, int64_t value);

#define RA_TRACE_END(cat, name, t0) do { if (ra_trace_on) ra_trace_end0((cat), (name), (t0)); } while (0)
#define RA_TRACE_END1(cat, name, t0, k0, v0)                                                  \
    do { if (ra_trace_on) ra_trace_end1((cat), (name), (t0), (k0), (int64_t)(v0)); } while (0)
#define RA_TRACE_END2(cat, name, t0, k0, v0, k1, v1)                                          \
    do { if (ra_trace_on) ra_trace_end2((cat), (name), (t0), (k0), (int64_t)(v0), (k1), (int64_t)(v1)); } while (0)
#define RA_TRACE_END3(cat, name, t0, k0, v0, k1, v1, k2, v2)                                  \
    do {                                                                                      \
        if (ra_trace_on)                                                                      \
            ra_trace_end3((cat), (name), (t0), (k0), (int64_t)(v0), (k1), (int64_t)(v1), (k2), \
                          (int64_t)(v2));                                                     \
    } while (0)
#define RA_TRACE_INSTANT(cat, name) do { if (ra_trace_on) ra_trace_instant((cat), (name)); } while (0)
#define RA_TRACE_COUNTER(cat, name, v) do { if (ra_trace_on) ra_trace_counter((cat), (name), (int64_t)(v)); } while (0)

/* ---- the recorder (src/core/trace.c, no MPI) -------------------------------- */

/* Start recording on the calling thread with room for cap events (0:
 * RA_TRACE_DEFAULT_CAP); forgets what an earlier recording held. */
ra_status ra_trace_start_local(int64_t cap);
/* Stop recording (events are kept until ra_trace_reset). */
void ra_trace_stop(void);
/* Free every event and forget the counts. */
void ra_trace_reset(void);
int64_t ra_trace_count(void);          /* events held */
int64_t ra_trace_dropped(void);        /* events that did not fit (cap, names table, memory) */
int64_t ra_trace_foreign(void);        /* calls from threads other than the recording one */
/* Event i (0 <= i < ra_trace_count()), in recording order. */
const ra_trace_event *ra_trace_get(int64_t i);

/* What a rank contributes to the file besides its events. */
typedef struct {
    int rank;
    char host[64];
    int64_t offset_ns; /* this rank's clock minus rank 0's (estimated) */
    int64_t rtt_ns;    /* round trip of the sample that gave offset_ns (0 on rank 0) */
    int64_t t0_ns;     /* this rank's clock when the trace began */
    int64_t dropped, foreign;
} ra_trace_rank_meta;

/* The compact binary form of this process's events (gathered to rank 0):
 * a header with meta, the interned strings, fixed-size event records.
 * *buf is malloc'd, *len its bytes. */
ra_status ra_trace_pack(const ra_trace_rank_meta *meta, uint8_t **buf, size_t *len);

/* One rank's events back from ra_trace_pack's bytes (which must stay alive:
 * names point into them). Errors name `what` and the byte at fault. */
typedef struct {
    ra_trace_rank_meta meta;
    int64_t n;
    ra_trace_event *ev; /* [n], malloc'd */
} ra_trace_rank;
ra_status ra_trace_unpack(const uint8_t *buf, size_t len, const char *what, ra_trace_rank *out);
void ra_trace_rank_free(ra_trace_rank *r);

/* ---- the file (src/core/trace_json.c, no MPI) ------------------------------- */

/* Chrome trace event JSON of nranks ranks into path, atomically (fileio.h):
 * {"traceEvents": [...], "displayTimeUnit": "ms", "otherData": {...}}.
 * Times are microseconds since rank 0's start, each rank's events shifted
 * by -offset_ns and sorted by (track, start, longest first). command and
 * status (NULL: "ok") go into otherData. */
ra_status ra_trace_json_write(const char *path, const ra_trace_rank *ranks, int nranks, const char *command,
                              const char *status);
/* The same one rank at a time, so that only one rank's events need be in
 * memory: open with base, the earliest ra_trace_rank_start of all ranks;
 * add each rank in turn (pid: its rank); close writes otherData and, with
 * st == RA_OK, renames the file into place (otherwise removes it; returns
 * the first failure). */
typedef struct ra_trace_json ra_trace_json;
int64_t ra_trace_rank_start(const ra_trace_rank *r); /* its t0 or earliest event on rank 0's clock */
ra_status ra_trace_json_open(const char *path, int64_t base, ra_trace_json **w);
ra_status ra_trace_json_rank(ra_trace_json *w, const ra_trace_rank *r, int pid);
ra_status ra_trace_json_close(ra_trace_json *w, const char *command, const char *status, ra_status st);
/* s as the inside of a JSON string (quotes, backslashes, control
 * characters escaped; bytes >= 0x80 kept, invalid UTF-8 as U+FFFD) into
 * out; returns the length written (out always NUL-terminated). */
size_t ra_trace_json_escape(char *out, size_t cap, const char *s);

/* ---- across ranks (src/dist/trace_sync.c) ---------------------------------- */

/* Collective: estimate every rank's clock offset against rank 0 (ping-pong,
 * `rounds` rounds per rank, the minimum round trip kept), then start
 * recording (cap events per rank, 0: default). */
ra_status ra_trace_begin(MPI_Comm comm, int64_t cap, int rounds);
/* Collective: stop, send every rank's events to rank 0 and write path
 * there; status as for ra_trace_json_write. Returns rank 0's result on
 * every rank. Frees the events. Rank 0 takes one rank's events at a time
 * (its memory does not grow with P), in messages of at most
 * RINGATTN_TRACE_CHUNK bytes (default 64 MiB; int counts never overflow). */
ra_status ra_trace_write(MPI_Comm comm, const char *path, const char *command, const char *status);
/* This rank's offset and round trip from the last ra_trace_begin. */
void ra_trace_sync_result(int64_t *offset_ns, int64_t *rtt_ns);

#endif
