/* test_trace.c - the trace recorder (trace.h) without MPI: spans, instants
 * and counters as recorded, the cap and the dropped count, calls from other
 * threads ignored, JSON escaping of names, the binary pack/unpack round trip
 * and its refusal of damaged bytes, and the written file parsed back with
 * the library's strict JSON reader. */
#include <math.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/json.h"
#include "ringattn/fileio.h"
#include "ringattn/trace.h"
#include "tmpdir.h"

static char dir[TMPDIR_CAP];

static int setup(void **state)
{
    (void)state;
    return tmpdir_make(dir, "test_trace");
}

static int teardown(void **state)
{
    (void)state;
    ra_trace_reset();
    return tmpdir_remove(dir);
}

static void test_spans_recorded(void **state)
{
    (void)state;
    assert_int_equal(ra_trace_start_local(0), RA_OK);
    int64_t t0 = RA_TRACE_T0();
    assert_true(t0 > 0);
    RA_TRACE_END("cat", "zero", t0);
    RA_TRACE_END1("cat", "one", t0, "bytes", 123);
    RA_TRACE_END2("cat", "two", t0, "bytes", 4, "peer", 1);
    RA_TRACE_END3("cat", "three", t0, "a", -1, "b", 2, "c", 3);
    RA_TRACE_INSTANT("mark", "here");
    RA_TRACE_COUNTER("ctr", "loss", 42);
    const char *k[2] = { "bytes", "peer" };
    const int64_t v[2] = { 4096, 2 };
    ra_trace_span(RA_TRACE_TID_SEND, "comm", "ring send", t0, t0 + 1000, 2, k, v);
    assert_int_equal(ra_trace_count(), 7);
    assert_int_equal(ra_trace_dropped(), 0);
    const ra_trace_event *e = ra_trace_get(0);
    assert_string_equal(e->name, "zero");
    assert_int_equal(e->type, RA_TRACE_SPAN);
    assert_true(e->ts == t0 && e->dur >= 0);
    assert_null(e->key[0]);
    e = ra_trace_get(2);
    assert_string_equal(e->key[1], "peer");
    assert_int_equal(e->val[0], 4);
    e = ra_trace_get(3);
    assert_int_equal(e->val[0], -1);
    assert_int_equal(e->val[2], 3);
    assert_int_equal(ra_trace_get(4)->type, RA_TRACE_INSTANT);
    e = ra_trace_get(5);
    assert_int_equal(e->type, RA_TRACE_COUNTER);
    assert_int_equal(e->val[0], 42);
    e = ra_trace_get(6);
    assert_int_equal(e->tid, RA_TRACE_TID_SEND);
    assert_int_equal(e->dur, 1000);
    assert_null(ra_trace_get(7));
    /* stopped: nothing more is recorded, nor counted as dropped */
    ra_trace_stop();
    RA_TRACE_END("cat", "late", t0);
    assert_int_equal(ra_trace_count(), 7);
    assert_int_equal(ra_trace_dropped(), 0);
    assert_int_equal(RA_TRACE_T0(), 0);
    ra_trace_reset();
    assert_int_equal(ra_trace_count(), 0);
}

static void test_cap_counts_dropped(void **state)
{
    (void)state;
    assert_int_equal(ra_trace_start_local(5), RA_OK);
    for (int i = 0; i < 8; i++) RA_TRACE_END1("cat", "span", RA_TRACE_T0(), "i", i);
    assert_int_equal(ra_trace_count(), 5);
    assert_int_equal(ra_trace_dropped(), 3);
    assert_int_equal(ra_trace_get(4)->val[0], 4); /* the first five are kept */
    /* more than one block: blocks allocated as needed, all kept */
    const int64_t n = RA_TRACE_BLOCK + 7;
    assert_int_equal(ra_trace_start_local(n), RA_OK);
    for (int64_t i = 0; i < n + 2; i++) RA_TRACE_END1("cat", "span", 0, "i", i);
    assert_int_equal(ra_trace_count(), n);
    assert_int_equal(ra_trace_dropped(), 2);
    assert_int_equal(ra_trace_get(n - 1)->val[0], n - 1);
    assert_int_equal(ra_trace_get(RA_TRACE_BLOCK)->val[0], RA_TRACE_BLOCK);
    assert_int_not_equal(ra_trace_start_local(-1), RA_OK);
    ra_trace_reset();
}

static void *record_from_thread(void *arg)
{
    (void)arg;
    RA_TRACE_END("cat", "from another thread", RA_TRACE_T0());
    return NULL;
}

static void test_other_threads_ignored(void **state)
{
    (void)state;
    assert_int_equal(ra_trace_start_local(0), RA_OK);
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, record_from_thread, NULL), 0);
    pthread_join(t, NULL);
    assert_int_equal(ra_trace_count(), 0);
    assert_int_equal(ra_trace_foreign(), 1);
    ra_trace_reset();
}

static void test_json_escape(void **state)
{
    (void)state;
    char out[128];
    ra_trace_json_escape(out, sizeof out, "a\"b\\c\nd\te\x01");
    assert_string_equal(out, "a\\\"b\\\\c\\nd\\te\\u0001");
    /* valid UTF-8 kept, an invalid byte (and an overlong form) as U+FFFD */
    ra_trace_json_escape(out, sizeof out, "caf\xc3\xa9 \xff \xc0\xaf");
    assert_string_equal(out, "caf\xc3\xa9 \xef\xbf\xbd \xef\xbf\xbd\xef\xbf\xbd");
    /* cut at a whole character, always terminated */
    size_t n = ra_trace_json_escape(out, 6, "ab\"cdef");
    assert_string_equal(out, "ab\\\"c");
    assert_int_equal(n, 5);
    n = ra_trace_json_escape(out, 4, "ab\"c");
    assert_string_equal(out, "ab");
    assert_int_equal(n, 2);
}

/* Record a few events with awkward names; pack them as rank 3. */
static void record_and_pack(uint8_t **buf, size_t *len)
{
    assert_int_equal(ra_trace_start_local(0), RA_OK);
    RA_TRACE_END2("comm", "name \"quoted\" \\ back", 1000, "bytes", (int64_t)1 << 40, "peer", 2);
    const char *k = "bytes";
    const int64_t v = 77;
    ra_trace_span(RA_TRACE_TID_RECV, "comm", "ring recv", 5000, 9000, 1, &k, &v);
    RA_TRACE_INSTANT("mark", "caf\xc3\xa9\x01");
    RA_TRACE_COUNTER("ctr", "loss", -5);
    ra_trace_stop();
    ra_trace_rank_meta meta = { .rank = 3, .offset_ns = -1234, .rtt_ns = 5678, .t0_ns = 900, .dropped = 2,
                                .foreign = 1 };
    snprintf(meta.host, sizeof meta.host, "node\"7");
    assert_int_equal(ra_trace_pack(&meta, buf, len), RA_OK);
}

static void test_pack_round_trip(void **state)
{
    (void)state;
    uint8_t *buf;
    size_t len;
    record_and_pack(&buf, &len);
    ra_trace_rank r;
    assert_int_equal(ra_trace_unpack(buf, len, "rank 3", &r), RA_OK);
    assert_int_equal(r.n, ra_trace_count());
    assert_int_equal(r.meta.rank, 3);
    assert_int_equal(r.meta.offset_ns, -1234);
    assert_int_equal(r.meta.rtt_ns, 5678);
    assert_int_equal(r.meta.t0_ns, 900);
    assert_int_equal(r.meta.dropped, 2);
    assert_int_equal(r.meta.foreign, 1);
    assert_string_equal(r.meta.host, "node\"7");
    for (int64_t i = 0; i < r.n; i++) {
        const ra_trace_event *a = ra_trace_get(i), *b = &r.ev[i];
        assert_string_equal(a->name, b->name);
        assert_string_equal(a->cat, b->cat);
        assert_int_equal(a->ts, b->ts);
        assert_int_equal(a->dur, b->dur);
        assert_int_equal(a->type, b->type);
        assert_int_equal(a->tid, b->tid);
        for (int k = 0; k < RA_TRACE_MAX_ARGS; k++) {
            assert_int_equal(!a->key[k], !b->key[k]);
            if (a->key[k]) {
                assert_string_equal(a->key[k], b->key[k]);
                assert_int_equal(a->val[k], b->val[k]);
            }
        }
    }
    assert_int_equal(r.ev[0].val[0], (int64_t)1 << 40);
    ra_trace_rank_free(&r);
    /* damaged bytes are refused, never read past */
    ra_trace_rank bad;
    assert_int_equal(ra_trace_unpack(buf, len - 1, "short", &bad), RA_ERR_FORMAT);
    assert_int_equal(ra_trace_unpack(buf, 10, "header", &bad), RA_ERR_FORMAT);
    buf[0] ^= 0xff;
    assert_int_equal(ra_trace_unpack(buf, len, "magic", &bad), RA_ERR_FORMAT);
    buf[0] ^= 0xff;
    uint8_t *copy = malloc(len);
    memcpy(copy, buf, len);
    memset(copy + len - 8, 0xff, 8); /* the last event's name/cat/key indexes and track */
    assert_int_equal(ra_trace_unpack(copy, len, "indexes", &bad), RA_ERR_FORMAT);
    assert_non_null(strstr(ra_last_error(), "indexes"));
    free(copy);
    free(buf);
    ra_trace_reset();
}

/* More distinct names than the table holds: the rest are dropped, counted. */
static void test_names_table_full(void **state)
{
    (void)state;
    enum { N = RA_TRACE_MAX_NAMES + 10 };
    static char names[N][16];
    assert_int_equal(ra_trace_start_local(0), RA_OK);
    for (int i = 0; i < N; i++) {
        snprintf(names[i], sizeof names[i], "n%d", i);
        RA_TRACE_END("c", names[i], 0);
    }
    ra_trace_stop();
    ra_trace_rank_meta meta = { .rank = 0 };
    uint8_t *buf;
    size_t len;
    assert_int_equal(ra_trace_pack(&meta, &buf, &len), RA_OK);
    ra_trace_rank r;
    assert_int_equal(ra_trace_unpack(buf, len, "full", &r), RA_OK);
    /* "c" and RA_TRACE_MAX_NAMES - 1 names fit */
    assert_int_equal(r.n, RA_TRACE_MAX_NAMES - 1);
    assert_int_equal(r.meta.dropped, N - (RA_TRACE_MAX_NAMES - 1));
    ra_trace_rank_free(&r);
    free(buf);
    ra_trace_reset();
}

static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *t = malloc((size_t)n + 1);
    assert_int_equal(fread(t, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    t[n] = '\0';
    *len = (size_t)n;
    return t;
}

static const ra_json *find_event(const ra_json *evs, const char *name, int pid)
{
    for (size_t i = 0; i < evs->n; i++) {
        const ra_json *e = &evs->kids[i], *n = ra_json_get(e, "name"), *p = ra_json_get(e, "pid");
        if (n && p && !strcmp(n->str, name) && p->i == pid) return e;
    }
    return NULL;
}

static void test_json_file(void **state)
{
    (void)state;
    uint8_t *buf;
    size_t len;
    record_and_pack(&buf, &len);
    ra_trace_rank ranks[2];
    assert_int_equal(ra_trace_unpack(buf, len, "r0", &ranks[0]), RA_OK);
    assert_int_equal(ra_trace_unpack(buf, len, "r1", &ranks[1]), RA_OK);
    ranks[0].meta.offset_ns = 0;
    char path[TMPDIR_CAP], tmp[TMPDIR_CAP + 8];
    tmpdir_path(path, dir, "trace.json");
    assert_int_equal(ra_trace_json_write(path, ranks, 2, "ringattn \"attn\" --trace x", "failed: a \\ b"), RA_OK);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    assert_int_not_equal(access(tmp, F_OK), 0); /* renamed, nothing left behind */
    size_t n;
    char *text = slurp(path, &n);
    ra_json_doc *doc;
    assert_int_equal(ra_json_parse(text, n, "trace.json", 1 << 20, &doc), RA_OK);
    const ra_json *root = ra_json_root(doc), *evs = ra_json_get(root, "traceEvents");
    assert_non_null(evs);
    assert_string_equal(ra_json_get(root, "displayTimeUnit")->str, "ms");
    const ra_json *other = ra_json_get(root, "otherData");
    assert_string_equal(ra_json_get(other, "command")->str, "ringattn \"attn\" --trace x");
    assert_string_equal(ra_json_get(other, "status")->str, "failed: a \\ b");
    const ra_json *rk = ra_json_get(other, "ranks");
    assert_int_equal(rk->n, 2);
    assert_int_equal(ra_json_get(&rk->kids[1], "dropped_events")->i, 2);
    for (int pid = 0; pid < 2; pid++) {
        const ra_json *pn = find_event(evs, "process_name", pid);
        assert_non_null(pn);
        char want[64];
        snprintf(want, sizeof want, "rank %d (node\"7)", pid);
        assert_string_equal(ra_json_get(ra_json_get(pn, "args"), "name")->str, want);
        const ra_json *q = find_event(evs, "name \"quoted\" \\ back", pid);
        assert_non_null(q);
        assert_int_equal(ra_json_get(ra_json_get(q, "args"), "bytes")->i, (int64_t)1 << 40);
        assert_non_null(find_event(evs, "caf\xc3\xa9\x01", pid)); /* the control character round-trips */
        const ra_json *recv = find_event(evs, "ring recv", pid);
        assert_int_equal(ra_json_get(recv, "tid")->i, RA_TRACE_TID_RECV);
        assert_true(ra_json_get(recv, "dur")->num == 4.0); /* 4000 ns */
    }
    /* rank 1's clock is 1234 ns behind: its events sit 1.234 us later; the
     * base is the earliest start on rank 0's clock (rank 0's t0 = 900 ns) */
    const ra_json *r0 = find_event(evs, "ring recv", 0), *r1 = find_event(evs, "ring recv", 1);
    assert_true(fabs(ra_json_get(r0, "ts")->num - 4.1) < 1e-9);
    assert_true(fabs(ra_json_get(r1, "ts")->num - (4.1 + 1.234)) < 1e-9);
    ra_json_free(doc);
    free(text);
    /* a directory at the path: refused, nothing written */
    char sub[TMPDIR_CAP];
    tmpdir_path(sub, dir, "adir");
    assert_int_equal(mkdir(sub, 0700), 0);
    assert_int_not_equal(ra_trace_json_write(sub, ranks, 2, "x", NULL), RA_OK);
    ra_trace_rank_free(&ranks[0]);
    ra_trace_rank_free(&ranks[1]);
    free(buf);
    ra_trace_reset();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_spans_recorded),
        cmocka_unit_test(test_cap_counts_dropped),
        cmocka_unit_test(test_other_threads_ignored),
        cmocka_unit_test(test_json_escape),
        cmocka_unit_test(test_pack_round_trip),
        cmocka_unit_test(test_names_table_full),
        cmocka_unit_test(test_json_file),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
