/* trace_json.c - every rank's events as one Chrome trace event JSON file
 * (trace.h), streamed through a buffer into "<path>.tmp" and renamed
 * (fileio.h), so a failed write never leaves a partial file at path.
 *
 * pid = rank, tid = track (trace.h); times are microseconds with ns
 * digits, since the earliest rank start mapped onto rank 0's clock
 * (t - offset_ns). Within a track events are sorted by start, the longer
 * first, so that enclosing spans come before what they enclose. */
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ringattn/fileio.h"
#include "ringattn/trace.h"

static const char *const track_names[RA_TRACE_NTRACKS] = { "main thread", "ring sends (post to completion)",
                                                           "ring receives (post to completion)",
                                                           "gradient reductions (post to completion)",
                                                           "ring sends posted a step ahead",
                                                           "ring receives posted a step ahead",
                                                           "dK/dV sends posted a step ahead",
                                                           "dK/dV receives posted a step ahead" };

/* ---- escaping -------------------------------------------------------------- */

/* Bytes of the valid UTF-8 sequence at s (1..4), or 0 when invalid. */
static int utf8_len(const unsigned char *s)
{
    const unsigned c = s[0];
    int n = c < 0x80 ? 1 : c >= 0xC2 && c <= 0xDF ? 2 : c >= 0xE0 && c <= 0xEF ? 3 : c >= 0xF0 && c <= 0xF4 ? 4 : 0;
    for (int i = 1; i < n; i++)
        if ((s[i] & 0xC0) != 0x80) return 0;
    if (n == 3 && ((c == 0xE0 && s[1] < 0xA0) || (c == 0xED && s[1] >= 0xA0))) return 0; /* overlong, surrogate */
    if (n == 4 && ((c == 0xF0 && s[1] < 0x90) || (c == 0xF4 && s[1] >= 0x90))) return 0; /* overlong, > U+10FFFF */
    return n;
}

size_t ra_trace_json_escape(char *out, size_t cap, const char *s)
{
    size_t o = 0;
    if (cap == 0) return 0;
    for (const unsigned char *p = (const unsigned char *)s; *p;) {
        char tmp[8];
        size_t n;
        int u = utf8_len(p);
        if (*p == '"' || *p == '\\') tmp[0] = '\\', tmp[1] = (char)*p, n = 2, u = 1;
        else if (*p == '\n') memcpy(tmp, "\\n", 2), n = 2;
        else if (*p == '\t') memcpy(tmp, "\\t", 2), n = 2;
        else if (*p < 0x20) n = (size_t)snprintf(tmp, sizeof tmp, "\\u%04x", *p);
        else if (u == 0) memcpy(tmp, "\xEF\xBF\xBD", 3), n = 3, u = 1; /* U+FFFD for an invalid byte */
        else memcpy(tmp, p, (size_t)u), n = (size_t)u;
        if (o + n >= cap) break; /* cut at a whole character */
        memcpy(out + o, tmp, n);
        o += n;
        p += u ? u : 1;
    }
    out[o] = '\0';
    return o;
}

/* ---- a buffered writer ------------------------------------------------------- */

struct ra_trace_json {
    int fd;
    char tmp[PATH_MAX];
    char buf[1 << 16];
    size_t n;
    ra_status st;
    char path[PATH_MAX];
    int64_t base; /* the earliest start of any rank on rank 0's clock */
    int first;    /* no event written yet */
    int nranks, cap;
    ra_trace_rank_meta *metas; /* [nranks]: the ranks written, for otherData */
    int64_t *counts;           /* [nranks]: their events */
};
typedef struct ra_trace_json writer;

static void flush(writer *w)
{
    if (w->st == RA_OK && w->n) w->st = ra_write_full(w->fd, w->tmp, w->buf, w->n);
    w->n = 0;
}

static void out(writer *w, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void out(writer *w, const char *fmt, ...)
{
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (n < 0) return;
    if ((size_t)n >= sizeof line) n = sizeof line - 1; /* lines are built from bounded parts */
    if (w->n + (size_t)n > sizeof w->buf) flush(w);
    memcpy(w->buf + w->n, line, (size_t)n);
    w->n += (size_t)n;
}

/* A string of any length, as is. */
static void raw(writer *w, const char *s)
{
    for (size_t n = strlen(s); n > 0;) {
        if (w->n == sizeof w->buf) flush(w);
        size_t k = sizeof w->buf - w->n < n ? sizeof w->buf - w->n : n;
        memcpy(w->buf + w->n, s, k);
        w->n += k, s += k, n -= k;
    }
}

/* ns as microseconds with three decimals ("12.345"); ns >= 0 here. */
static const char *us(char *b, size_t cap, int64_t ns)
{
    if (ns < 0) snprintf(b, cap, "-%" PRId64 ".%03" PRId64, -ns / 1000, -ns % 1000);
    else snprintf(b, cap, "%" PRId64 ".%03" PRId64, ns / 1000, ns % 1000);
    return b;
}

/* ---- events ---------------------------------------------------------------- */

static int by_track_time(const void *a, const void *b)
{
    const ra_trace_event *x = *(const ra_trace_event *const *)a, *y = *(const ra_trace_event *const *)b;
    if (x->tid != y->tid) return x->tid < y->tid ? -1 : 1;
    if (x->ts != y->ts) return x->ts < y->ts ? -1 : 1;
    if (x->dur != y->dur) return x->dur > y->dur ? -1 : 1; /* the enclosing span first */
    return x < y ? -1 : x > y; /* recording order: stable */
}

static void write_event(writer *w, int pid, const ra_trace_event *e, int64_t shift, int *first)
{
    char name[3 * RA_TRACE_NAME_MAX + 8], cat[3 * RA_TRACE_NAME_MAX + 8], ts[32], dur[32];
    ra_trace_json_escape(name, sizeof name, e->name);
    ra_trace_json_escape(cat, sizeof cat, e->cat);
    out(w, "%s\n{\"name\": \"%s\", \"cat\": \"%s\", \"ph\": \"%c\", \"pid\": %d, \"tid\": %d, \"ts\": %s",
        *first ? "" : ",", name, cat, e->type, pid, e->tid, us(ts, sizeof ts, e->ts - shift));
    *first = 0;
    if (e->type == RA_TRACE_SPAN) out(w, ", \"dur\": %s", us(dur, sizeof dur, e->dur));
    if (e->type == RA_TRACE_INSTANT) out(w, ", \"s\": \"t\"");
    int nargs = 0;
    for (int k = 0; k < RA_TRACE_MAX_ARGS; k++) {
        if (!e->key[k]) continue;
        char key[3 * RA_TRACE_NAME_MAX + 8];
        ra_trace_json_escape(key, sizeof key, e->key[k]);
        out(w, "%s\"%s\": %" PRId64, nargs++ ? ", " : ", \"args\": {", key, e->val[k]);
    }
    out(w, "%s}", nargs ? "}" : "");
}

static void write_meta_events(writer *w, const ra_trace_rank *r, int pid, const int *used, int *first)
{
    char host[3 * 64 + 8];
    ra_trace_json_escape(host, sizeof host, r->meta.host);
    out(w, "%s\n{\"name\": \"process_name\", \"ph\": \"M\", \"pid\": %d, \"tid\": 0, \"args\": {\"name\": "
           "\"rank %d (%s)\"}}", *first ? "" : ",", pid, pid, host);
    out(w, ",\n{\"name\": \"process_sort_index\", \"ph\": \"M\", \"pid\": %d, \"tid\": 0, \"args\": "
           "{\"sort_index\": %d}}", pid, pid);
    *first = 0;
    for (int t = 0; t < RA_TRACE_NTRACKS; t++) {
        if (!used[t] && t != RA_TRACE_TID_MAIN) continue;
        out(w, ",\n{\"name\": \"thread_name\", \"ph\": \"M\", \"pid\": %d, \"tid\": %d, \"args\": {\"name\": \"%s\"}}",
            pid, t, track_names[t]);
        out(w, ",\n{\"name\": \"thread_sort_index\", \"ph\": \"M\", \"pid\": %d, \"tid\": %d, \"args\": "
               "{\"sort_index\": %d}}", pid, t, t);
    }
}

/* One rank: sorted pointers to its events, then the events. */
static ra_status write_rank(writer *w, const ra_trace_rank *r, int pid, int64_t base, int *first)
{
    const ra_trace_event **order = r->n ? malloc(sizeof *order * (size_t)r->n) : NULL;
    if (r->n && !order)
        return RA_FAIL(RA_ERR_NOMEM, "trace: out of memory sorting the %lld events of rank %d", (long long)r->n, pid);
    int used[RA_TRACE_NTRACKS] = { 0 };
    for (int64_t i = 0; i < r->n; i++) order[i] = &r->ev[i], used[r->ev[i].tid] = 1;
    if (r->n) qsort(order, (size_t)r->n, sizeof *order, by_track_time);
    write_meta_events(w, r, pid, used, first);
    const int64_t shift = r->meta.offset_ns + base; /* rank clock -> rank 0 clock -> since base */
    for (int64_t i = 0; i < r->n; i++) write_event(w, pid, order[i], shift, first);
    free(order);
    return RA_OK;
}

static void write_other(writer *w, const char *command, const char *status)
{
    char cmd[3 * 1024 + 8], st[3 * 1024 + 8], a[32], b[32];
    ra_trace_json_escape(cmd, sizeof cmd, command ? command : "");
    ra_trace_json_escape(st, sizeof st, status ? status : "ok");
    out(w, "\n],\n\"displayTimeUnit\": \"ms\",\n\"otherData\": {\"generator\": \"ringattn\", \"version\": 1, "
           "\"clock\": \"CLOCK_MONOTONIC, shifted by each rank's offset to rank 0\", \"command\": \"");
    raw(w, cmd);
    out(w, "\", \"status\": \"");
    raw(w, st);
    out(w, "\", \"ranks\": [");
    for (int r = 0; r < w->nranks; r++) {
        const ra_trace_rank_meta *m = &w->metas[r];
        char host[3 * 64 + 8];
        ra_trace_json_escape(host, sizeof host, m->host);
        out(w, "%s\n  {\"rank\": %d, \"host\": \"%s\", \"clock_offset_us\": %s, \"rtt_us\": %s, \"events\": %" PRId64
               ", \"dropped_events\": %" PRId64 ", \"ignored_other_thread_events\": %" PRId64 "}",
            r ? "," : "", r, host, us(a, sizeof a, m->offset_ns), us(b, sizeof b, m->rtt_ns), w->counts[r], m->dropped,
            m->foreign);
    }
    out(w, "]}\n}\n");
}

int64_t ra_trace_rank_start(const ra_trace_rank *r)
{
    int64_t t = r->meta.t0_ns - r->meta.offset_ns;
    for (int64_t i = 0; i < r->n; i++)
        if (r->ev[i].ts - r->meta.offset_ns < t) t = r->ev[i].ts - r->meta.offset_ns;
    return t;
}

ra_status ra_trace_json_open(const char *path, int64_t base, ra_trace_json **wp)
{
    *wp = NULL;
    writer *w = calloc(1, sizeof *w);
    if (!w) return RA_FAIL(RA_ERR_NOMEM, "%s: out of memory for the trace writer", path);
    w->st = RA_OK, w->base = base, w->first = 1;
    if (!ra_tmp_name(w->tmp, sizeof w->tmp, path) || snprintf(w->path, sizeof w->path, "%s", path) >= (int)sizeof w->path) {
        free(w);
        return RA_FAIL(RA_ERR_ARG, "--trace: path '%.200s' is empty or too long", path);
    }
    ra_status st = ra_atomic_create(path, &w->fd);
    if (st != RA_OK) {
        free(w);
        return st;
    }
    out(w, "{\"traceEvents\": [");
    *wp = w;
    return RA_OK;
}

ra_status ra_trace_json_rank(ra_trace_json *w, const ra_trace_rank *r, int pid)
{
    if (w->nranks == w->cap) {
        const int cap = w->cap ? 2 * w->cap : 16;
        ra_trace_rank_meta *m = realloc(w->metas, sizeof *m * (size_t)cap);
        if (m) w->metas = m;
        int64_t *c = m ? realloc(w->counts, sizeof *c * (size_t)cap) : NULL;
        if (c) w->counts = c;
        if (!m || !c) return RA_FAIL(RA_ERR_NOMEM, "trace: out of memory for the list of %d ranks", cap);
        w->cap = cap;
    }
    w->metas[w->nranks] = r->meta;
    w->counts[w->nranks++] = r->n;
    RA_TRY(write_rank(w, r, pid, w->base, &w->first));
    return w->st;
}

ra_status ra_trace_json_close(ra_trace_json *w, const char *command, const char *status, ra_status st)
{
    if (!w) return st;
    if (st == RA_OK) write_other(w, command, status);
    flush(w);
    if (st == RA_OK) st = w->st;
    st = ra_atomic_finish(w->path, w->fd, st);
    free(w->metas);
    free(w->counts);
    free(w);
    return st;
}

ra_status ra_trace_json_write(const char *path, const ra_trace_rank *ranks, int nranks, const char *command,
                              const char *status)
{
    int64_t base = INT64_MAX;
    for (int r = 0; r < nranks; r++) {
        const int64_t t = ra_trace_rank_start(&ranks[r]);
        if (t < base) base = t;
    }
    ra_trace_json *w;
    RA_TRY(ra_trace_json_open(path, base, &w));
    ra_status st = RA_OK;
    for (int r = 0; r < nranks && st == RA_OK; r++) st = ra_trace_json_rank(w, &ranks[r], r);
    return ra_trace_json_close(w, command, status, st);
}
