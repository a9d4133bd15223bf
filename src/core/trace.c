/* trace.c - the in-memory, bounded event recorder of trace.h and its compact
 * binary form (what rank 0 gathers). No MPI here.
 *
 * Events live in blocks of RA_TRACE_BLOCK, allocated on first use up to the
 * cap, so a short run costs one block and a long one never more than cap
 * events. Names are kept as pointers while recording (no copy, no lookup on
 * the hot path) and interned only by ra_trace_pack. */
#include "ringattn/trace.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int ra_trace_on;

static struct {
    ra_trace_event **blocks; /* [nblocks_max] of RA_TRACE_BLOCK events, NULL until used */
    int64_t nblocks_max, cap, n, dropped, foreign;
    pthread_t owner;         /* the only thread that records */
} g;

int64_t ra_trace_clock(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec;
}

void ra_trace_reset(void)
{
    ra_trace_on = 0;
    for (int64_t b = 0; g.blocks && b < g.nblocks_max; b++) free(g.blocks[b]);
    free(g.blocks);
    memset(&g, 0, sizeof g);
}

ra_status ra_trace_start_local(int64_t cap)
{
    ra_trace_reset();
    if (cap < 0) return RA_FAIL(RA_ERR_ARG, "trace: a cap of %lld events (need >= 0; 0: the default)", (long long)cap);
    g.cap = cap ? cap : RA_TRACE_DEFAULT_CAP;
    g.nblocks_max = (g.cap + RA_TRACE_BLOCK - 1) / RA_TRACE_BLOCK;
    g.blocks = calloc((size_t)g.nblocks_max, sizeof *g.blocks);
    if (!g.blocks) {
        g.cap = 0;
        return RA_FAIL(RA_ERR_NOMEM, "trace: out of memory for the index of %lld events", (long long)cap);
    }
    g.owner = pthread_self();
    ra_trace_on = 1;
    return RA_OK;
}

void ra_trace_stop(void) { ra_trace_on = 0; }
int64_t ra_trace_count(void) { return g.n; }
int64_t ra_trace_dropped(void) { return g.dropped; }
int64_t ra_trace_foreign(void) { return g.foreign; }

const ra_trace_event *ra_trace_get(int64_t i)
{
    if (i < 0 || i >= g.n) return NULL;
    return &g.blocks[i / RA_TRACE_BLOCK][i % RA_TRACE_BLOCK];
}

/* The next free slot, or NULL (counted): full, out of memory, other thread. */
static ra_trace_event *slot(void)
{
    if (!ra_trace_on) return NULL;
    if (!pthread_equal(pthread_self(), g.owner)) {
        __atomic_fetch_add(&g.foreign, 1, __ATOMIC_RELAXED); /* the one field other threads touch */
        return NULL;
    }
    if (g.n >= g.cap) {
        g.dropped++;
        return NULL;
    }
    const int64_t b = g.n / RA_TRACE_BLOCK;
    if (!g.blocks[b] && !(g.blocks[b] = malloc(sizeof(ra_trace_event) * RA_TRACE_BLOCK))) {
        g.dropped++;
        return NULL;
    }
    return &g.blocks[b][g.n++ % RA_TRACE_BLOCK];
}

static void put(int type, int tid, const char *cat, const char *name, int64_t ts, int64_t dur, int nargs,
                const char *const *keys, const int64_t *vals)
{
    ra_trace_event *e = slot();
    if (!e) return;
    *e = (ra_trace_event){ .ts = ts, .dur = dur < 0 ? 0 : dur, .name = name, .cat = cat, .type = (uint8_t)type,
                           .tid = (uint8_t)tid };
    for (int i = 0; i < nargs && i < RA_TRACE_MAX_ARGS; i++) e->key[i] = keys[i], e->val[i] = vals[i];
}

void ra_trace_span(int tid, const char *cat, const char *name, int64_t t0, int64_t t1, int nargs,
                   const char *const *keys, const int64_t *vals)
{
    if (tid < 0 || tid >= RA_TRACE_NTRACKS) tid = RA_TRACE_TID_MAIN;
    put(RA_TRACE_SPAN, tid, cat, name, t0, t1 - t0, nargs, keys, vals);
}

void ra_trace_end0(const char *cat, const char *name, int64_t t0)
{
    put(RA_TRACE_SPAN, RA_TRACE_TID_MAIN, cat, name, t0, ra_trace_clock() - t0, 0, NULL, NULL);
}

void ra_trace_end1(const char *cat, const char *name, int64_t t0, const char *k0, int64_t v0)
{
    put(RA_TRACE_SPAN, RA_TRACE_TID_MAIN, cat, name, t0, ra_trace_clock() - t0, 1, &k0, &v0);
}

void ra_trace_end2(const char *cat, const char *name, int64_t t0, const char *k0, int64_t v0, const char *k1,
                   int64_t v1)
{
    const char *k[2] = { k0, k1 };
    const int64_t v[2] = { v0, v1 };
    put(RA_TRACE_SPAN, RA_TRACE_TID_MAIN, cat, name, t0, ra_trace_clock() - t0, 2, k, v);
}

void ra_trace_end3(const char *cat, const char *name, int64_t t0, const char *k0, int64_t v0, const char *k1,
                   int64_t v1, const char *k2, int64_t v2)
{
    const char *k[3] = { k0, k1, k2 };
    const int64_t v[3] = { v0, v1, v2 };
    put(RA_TRACE_SPAN, RA_TRACE_TID_MAIN, cat, name, t0, ra_trace_clock() - t0, 3, k, v);
}

void ra_trace_instant(const char *cat, const char *name)
{
    put(RA_TRACE_INSTANT, RA_TRACE_TID_MAIN, cat, name, ra_trace_clock(), 0, 0, NULL, NULL);
}

void ra_trace_counter(const char *cat, const char *name, int64_t value)
{
    const char *k = name;
    put(RA_TRACE_COUNTER, RA_TRACE_TID_MAIN, cat, name, ra_trace_clock(), 0, 1, &k, &value);
}

/* ---- the binary form ----------------------------------------------------------
 * [header][nnames x RA_TRACE_NAME_MAX+1 bytes, NUL-padded][nevents x packed_event].
 * Native byte order: every rank of a job runs the same build. */

enum { PACK_MAGIC = 0x52545241 /* "ARTR" */, PACK_VERSION = 1, NAME_BYTES = RA_TRACE_NAME_MAX + 1 };
enum { NO_NAME = 0xffff };

typedef struct {
    uint32_t magic, version;
    int32_t rank;
    uint32_t nnames;
    int64_t nevents, offset_ns, rtt_ns, t0_ns, dropped, foreign;
    char host[64];
} packed_header;

typedef struct {
    int64_t ts, dur, val[RA_TRACE_MAX_ARGS];
    uint16_t name, cat, key[RA_TRACE_MAX_ARGS];
    uint8_t type, tid;
} packed_event;

/* Pointer -> index, open addressing; strings are interned by address. */
typedef struct {
    const char *ptr[2 * RA_TRACE_MAX_NAMES];
    uint16_t idx[2 * RA_TRACE_MAX_NAMES];
    const char *names[RA_TRACE_MAX_NAMES];
    int n;
} intern_table;

/* Index of s, or -1 when the table is full. */
static int intern(intern_table *t, const char *s)
{
    const size_t mask = 2 * RA_TRACE_MAX_NAMES - 1;
    size_t h = ((uintptr_t)s >> 3) * 0x9E3779B97F4A7C15u >> 20 & mask;
    while (t->ptr[h] && t->ptr[h] != s) h = (h + 1) & mask;
    if (t->ptr[h]) return t->idx[h];
    if (t->n == RA_TRACE_MAX_NAMES) return -1;
    t->ptr[h] = s, t->idx[h] = (uint16_t)t->n, t->names[t->n] = s;
    return t->n++;
}

/* The interned indexes of one event; 0 when the table overflowed. */
static int pack_event(intern_table *t, const ra_trace_event *e, packed_event *p)
{
    int name = intern(t, e->name ? e->name : "?"), cat = intern(t, e->cat ? e->cat : "?");
    if (name < 0 || cat < 0) return 0;
    memset(p, 0, sizeof *p); /* padding too: the bytes go over MPI */
    p->ts = e->ts, p->dur = e->dur, p->name = (uint16_t)name, p->cat = (uint16_t)cat;
    p->type = e->type, p->tid = e->tid;
    for (int i = 0; i < RA_TRACE_MAX_ARGS; i++) {
        p->val[i] = e->val[i];
        p->key[i] = NO_NAME;
        if (!e->key[i]) continue;
        int k = intern(t, e->key[i]);
        if (k < 0) return 0;
        p->key[i] = (uint16_t)k;
    }
    return 1;
}

ra_status ra_trace_pack(const ra_trace_rank_meta *meta, uint8_t **buf, size_t *len)
{
    *buf = NULL, *len = 0;
    intern_table *t = calloc(1, sizeof *t);
    packed_event *ev = g.n ? malloc(sizeof(packed_event) * (size_t)g.n) : NULL;
    if (!t || (g.n && !ev)) {
        free(t), free(ev);
        return RA_FAIL(RA_ERR_NOMEM, "trace: out of memory packing %lld events of rank %d", (long long)g.n,
                       meta->rank);
    }
    int64_t kept = 0, lost = 0;
    for (int64_t i = 0; i < g.n; i++) {
        if (pack_event(t, ra_trace_get(i), &ev[kept])) kept++;
        else lost++; /* more than RA_TRACE_MAX_NAMES distinct strings */
    }
    const size_t bytes = sizeof(packed_header) + (size_t)t->n * NAME_BYTES + sizeof(packed_event) * (size_t)kept;
    uint8_t *out = calloc(1, bytes);
    if (!out) {
        free(t), free(ev);
        return RA_FAIL(RA_ERR_NOMEM, "trace: out of memory for %zu bytes of rank %d's events", bytes, meta->rank);
    }
    packed_header h = { .magic = PACK_MAGIC, .version = PACK_VERSION, .rank = meta->rank, .nnames = (uint32_t)t->n,
                        .nevents = kept, .offset_ns = meta->offset_ns, .rtt_ns = meta->rtt_ns, .t0_ns = meta->t0_ns,
                        .dropped = meta->dropped + lost, .foreign = meta->foreign };
    snprintf(h.host, sizeof h.host, "%s", meta->host);
    memcpy(out, &h, sizeof h);
    uint8_t *p = out + sizeof h;
    for (int i = 0; i < t->n; i++, p += NAME_BYTES) strncpy((char *)p, t->names[i], RA_TRACE_NAME_MAX);
    if (kept) memcpy(p, ev, sizeof(packed_event) * (size_t)kept);
    free(t), free(ev);
    *buf = out, *len = bytes;
    return RA_OK;
}

void ra_trace_rank_free(ra_trace_rank *r)
{
    free(r->ev);
    r->ev = NULL, r->n = 0;
}

ra_status ra_trace_unpack(const uint8_t *buf, size_t len, const char *what, ra_trace_rank *out)
{
    *out = (ra_trace_rank){ 0 };
    packed_header h;
    if (len < sizeof h)
        return RA_FAIL(RA_ERR_FORMAT, "%s: %zu bytes, shorter than the %zu-byte header", what, len, sizeof h);
    memcpy(&h, buf, sizeof h);
    if (h.magic != PACK_MAGIC || h.version != PACK_VERSION)
        return RA_FAIL(RA_ERR_FORMAT, "%s: not trace events of this build (magic %#x version %u)", what, h.magic,
                       h.version);
    if (h.nnames > RA_TRACE_MAX_NAMES || h.nevents < 0 ||
        (uint64_t)h.nevents > (len - sizeof h) / sizeof(packed_event) ||
        len != sizeof h + (size_t)h.nnames * NAME_BYTES + (size_t)h.nevents * sizeof(packed_event))
        return RA_FAIL(RA_ERR_FORMAT, "%s: %u names and %lld events do not fill the %zu bytes received", what,
                       h.nnames, (long long)h.nevents, len);
    /* strings: NUL-terminated inside their slot (the last byte of each is 0) */
    const char *names = (const char *)buf + sizeof h;
    for (uint32_t i = 0; i < h.nnames; i++)
        if (names[(size_t)i * NAME_BYTES + RA_TRACE_NAME_MAX] != '\0')
            return RA_FAIL(RA_ERR_FORMAT, "%s: name %u is not terminated (byte %zu)", what, i,
                           sizeof h + (size_t)i * NAME_BYTES + RA_TRACE_NAME_MAX);
    out->meta = (ra_trace_rank_meta){ .rank = h.rank, .offset_ns = h.offset_ns, .rtt_ns = h.rtt_ns,
                                      .t0_ns = h.t0_ns, .dropped = h.dropped, .foreign = h.foreign };
    memcpy(out->meta.host, h.host, sizeof h.host);
    out->meta.host[sizeof out->meta.host - 1] = '\0';
    if (h.nevents && !(out->ev = malloc(sizeof(ra_trace_event) * (size_t)h.nevents)))
        return RA_FAIL(RA_ERR_NOMEM, "%s: out of memory for %lld events", what, (long long)h.nevents);
    const uint8_t *p = buf + sizeof h + (size_t)h.nnames * NAME_BYTES;
    for (int64_t i = 0; i < h.nevents; i++, p += sizeof(packed_event)) {
        packed_event pe;
        memcpy(&pe, p, sizeof pe);
        const size_t at = (size_t)(p - buf);
        int bad = pe.name >= h.nnames || pe.cat >= h.nnames || pe.tid >= RA_TRACE_NTRACKS || pe.dur < 0 ||
                  (pe.type != RA_TRACE_SPAN && pe.type != RA_TRACE_INSTANT && pe.type != RA_TRACE_COUNTER);
        for (int k = 0; k < RA_TRACE_MAX_ARGS; k++) bad |= pe.key[k] != NO_NAME && pe.key[k] >= h.nnames;
        if (bad) {
            ra_trace_rank_free(out);
            return RA_FAIL(RA_ERR_FORMAT, "%s: event %lld (byte %zu) is malformed", what, (long long)i, at);
        }
        ra_trace_event *e = &out->ev[i];
        *e = (ra_trace_event){ .ts = pe.ts, .dur = pe.dur, .name = names + (size_t)pe.name * NAME_BYTES,
                               .cat = names + (size_t)pe.cat * NAME_BYTES, .type = pe.type, .tid = pe.tid };
        for (int k = 0; k < RA_TRACE_MAX_ARGS; k++) {
            e->val[k] = pe.val[k];
            e->key[k] = pe.key[k] == NO_NAME ? NULL : names + (size_t)pe.key[k] * NAME_BYTES;
        }
    }
    out->n = h.nevents;
    return RA_OK;
}
