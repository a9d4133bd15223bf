/* test_collective_mpi.c - the collective wrappers (collective.h): each
 * moves the data its MPI counterpart does, adds the documented bytes to
 * ra_comm_bytes (computed here from the counts, independently), and turns an
 * MPI error into RA_ERR_MPI with a message that names the operation; the
 * pairwise reduce-scatter (reduce_scatter.h) against a float64 sum; stop
 * notices (stop_notice.h) reach every rank, once. */
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ringattn/collective.h"
#include "ringattn/dist.h"
#include "ringattn/reduce_scatter.h"
#include "ringattn/stop_notice.h"

static int g_rank, g_P, g_fail;

#define CHECK(cond, ...)                                                                   \
    do {                                                                                   \
        if (!(cond)) {                                                                     \
            g_fail++;                                                                      \
            fprintf(stderr, "[rank %d/%d] FAIL %s:%d: ", g_rank, g_P, __FILE__, __LINE__); \
            fprintf(stderr, __VA_ARGS__);                                                  \
            fputc('\n', stderr);                                                           \
        }                                                                                  \
    } while (0)

/* bytes counted by what ran since b0, against the expected figure */
static void expect_bytes(const char *what, double b0, double want)
{
    double got = ra_comm_bytes() - b0;
    CHECK(got == want, "%s: counted %.1f bytes, expected %.1f", what, got, want);
}

static void allreduce(void)
{
    enum { N = 7 };
    int x[N], y[N];
    for (int i = 0; i < N; i++) x[i] = g_rank + i;
    double b0 = ra_comm_bytes();
    CHECK(ra_allreduce_named(x, y, N, MPI_INT, MPI_SUM, MPI_COMM_WORLD, "test sum") == RA_OK, "allreduce: %s",
          ra_last_error());
    for (int i = 0; i < N; i++) CHECK(y[i] == g_P * (g_P - 1) / 2 + g_P * i, "allreduce: y[%d] = %d", i, y[i]);
    expect_bytes("allreduce", b0, (double)(2 * N * sizeof(int) * (size_t)(g_P - 1) / (size_t)g_P));
    /* non-blocking: started, work, then finished by ra_wait */
    MPI_Request req;
    double m = g_rank, top = -1;
    b0 = ra_comm_bytes();
    CHECK(ra_iallreduce(&m, &top, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD, &req, "test max") == RA_OK, "iallreduce");
    CHECK(ra_wait(1, &req, "test max", -1) == RA_OK, "iallreduce wait: %s", ra_last_error());
    CHECK(top == g_P - 1, "iallreduce: max %g", top);
    expect_bytes("iallreduce", b0, (double)(2 * sizeof(double) * (size_t)(g_P - 1) / (size_t)g_P));
}

static void allgatherv(void)
{
    int *cnt = calloc((size_t)2 * g_P, sizeof(int)), *dis = cnt + g_P, total = 0;
    for (int r = 0; r < g_P; r++) cnt[r] = r % 3, dis[r] = total, total += cnt[r]; /* rank 0 gives nothing */
    int *all = calloc((size_t)total + 1, sizeof(int)), mine[2] = { 10 * g_rank, 10 * g_rank + 1 };
    double b0 = ra_comm_bytes();
    CHECK(ra_allgatherv(mine, cnt[g_rank], MPI_INT, all, cnt, dis, MPI_INT, MPI_COMM_WORLD, "test gather") == RA_OK,
          "allgatherv: %s", ra_last_error());
    for (int r = 0; r < g_P; r++)
        for (int i = 0; i < cnt[r]; i++) CHECK(all[dis[r] + i] == 10 * r + i, "allgatherv: rank %d item %d", r, i);
    expect_bytes("allgatherv", b0, (double)cnt[g_rank] * sizeof(int) * (g_P - 1));
    /* in place: the rank's part is its slot of the receive buffer */
    memset(all, 0, sizeof(int) * (size_t)(total + 1));
    for (int i = 0; i < cnt[g_rank]; i++) all[dis[g_rank] + i] = 10 * g_rank + i;
    b0 = ra_comm_bytes();
    CHECK(ra_allgatherv(MPI_IN_PLACE, 0, MPI_INT, all, cnt, dis, MPI_INT, MPI_COMM_WORLD, "test gather") == RA_OK,
          "allgatherv in place: %s", ra_last_error());
    for (int r = 0; r < g_P; r++)
        for (int i = 0; i < cnt[r]; i++) CHECK(all[dis[r] + i] == 10 * r + i, "allgatherv in place: rank %d", r);
    expect_bytes("allgatherv in place", b0, (double)cnt[g_rank] * sizeof(int) * (g_P - 1));
    free(all);
    free(cnt);
}

static void alltoallv(void)
{
    /* rank s sends (s + d) % 3 floats, value 100 s + d, to rank d */
    int *c = calloc((size_t)4 * g_P, sizeof(int)), *sc = c, *sd = c + g_P, *rc = c + 2 * g_P, *rd = c + 3 * g_P;
    int ns = 0, nr = 0;
    double want = 0;
    for (int d = 0; d < g_P; d++) {
        sc[d] = (g_rank + d) % 3, sd[d] = ns, ns += sc[d];
        rc[d] = (d + g_rank) % 3, rd[d] = nr, nr += rc[d];
        if (d != g_rank) want += sc[d] * sizeof(float);
    }
    float *s = calloc((size_t)ns + 1, sizeof(float)), *r = calloc((size_t)nr + 2, sizeof(float));
    for (int d = 0; d < g_P; d++)
        for (int i = 0; i < sc[d]; i++) s[sd[d] + i] = (float)(100 * g_rank + d);
    double b0 = ra_comm_bytes();
    CHECK(ra_alltoallv(s, sc, sd, MPI_FLOAT, r + 1, rc, rd, MPI_FLOAT, MPI_COMM_WORLD, "test exchange") == RA_OK,
          "alltoallv: %s", ra_last_error());
    for (int src = 0; src < g_P; src++)
        for (int i = 0; i < rc[src]; i++)
            CHECK(r[1 + rd[src] + i] == (float)(100 * src + g_rank), "alltoallv: from rank %d got %g", src,
                  r[1 + rd[src] + i]);
    expect_bytes("alltoallv", b0, want);
    free(s);
    free(r);
    free(c);
}

static void bcast_gather_barrier(void)
{
    const int root = g_P - 1;
    double v[5] = { 0 };
    if (g_rank == root)
        for (int i = 0; i < 5; i++) v[i] = 1.5 * i;
    double b0 = ra_comm_bytes();
    CHECK(ra_bcast(v, 5, MPI_DOUBLE, root, MPI_COMM_WORLD, "test bcast") == RA_OK, "bcast: %s", ra_last_error());
    for (int i = 0; i < 5; i++) CHECK(v[i] == 1.5 * i, "bcast: v[%d] = %g", i, v[i]);
    expect_bytes("bcast", b0, g_rank == root ? 5.0 * sizeof(double) * (g_P - 1) : 0.0);
    char mine[3] = { 'a', (char)('0' + g_rank % 10), 'z' }, *all = g_rank == 0 ? calloc((size_t)3 * g_P, 1) : NULL;
    b0 = ra_comm_bytes();
    CHECK(ra_gather(mine, 3, MPI_CHAR, all, 3, MPI_CHAR, 0, MPI_COMM_WORLD, "test gather") == RA_OK, "gather: %s",
          ra_last_error());
    for (int r = 0; all && r < g_P; r++)
        CHECK(all[3 * r] == 'a' && all[3 * r + 1] == '0' + r % 10 && all[3 * r + 2] == 'z', "gather: rank %d", r);
    expect_bytes("gather", b0, g_rank == 0 ? 0.0 : 3.0);
    free(all);
    b0 = ra_comm_bytes();
    CHECK(ra_barrier(MPI_COMM_WORLD, "test barrier") == RA_OK, "barrier: %s", ra_last_error());
    expect_bytes("barrier", b0, 0.0);
}

/* An MPI error (a root that does not exist) comes back as RA_ERR_MPI with
 * what in the message, on a communicator whose errors return. */
/* The reduce-scatter: 1000 floats, uneven shards (rank 1's empty at P >= 3),
 * four slices posted out of order and one part of the range never posted,
 * a fifth slice, one past the end and one overlapping a posted one refused;
 * each owner's shard against the float64 sum of every rank's values
 * (computed here), within 1e-6 of the largest |sum|; the part not posted
 * keeps its sentinel; bytes = the floats sent to the other owners; then in
 * place, into the rank's own range of its values. */
static float rs_value(int r, size_t i) { return (float)((r + 1) * 0.001 * (double)(i % 97) - 0.01 * r); }
static void reduce_scatter(void)
{
    enum { N = 1000 };
    size_t bounds[65];
    if (g_P > 64) {
        CHECK(0, "reduce-scatter: the test's bounds hold 64 ranks, not %d", g_P);
        return;
    }
    bounds[0] = 0;
    for (int r = 0; r < g_P; r++) bounds[r + 1] = r == g_P - 1 ? N : (r == 1 && g_P >= 3) ? bounds[r] : (size_t)(r + 1) * N / g_P;
    float g[N], shard[N];
    for (size_t i = 0; i < N; i++) g[i] = rs_value(g_rank, i);
    const size_t lo = bounds[g_rank], own = bounds[g_rank + 1] - lo;
    for (size_t i = 0; i < own; i++) shard[i] = -999.0f;
    ra_rs rs;
    CHECK(ra_rs_init(&rs, MPI_COMM_WORLD, bounds, 4) == RA_OK, "rs init: %s", ra_last_error());
    const size_t sl[4][2] = { { 137, 500 }, { 0, 137 }, { 900, 1000 }, { 500, 501 } }; /* [501, 900) not posted */
    double b0 = ra_comm_bytes(), sent = 0;
    for (int s = 0; s < 4; s++) {
        CHECK(ra_rs_post(&rs, g, sl[s][0], sl[s][1]) == RA_OK, "rs post %d: %s", s, ra_last_error());
        for (int q = 0; q < g_P; q++) {
            size_t a = sl[s][0] > bounds[q] ? sl[s][0] : bounds[q], b = sl[s][1] < bounds[q + 1] ? sl[s][1] : bounds[q + 1];
            if (q != g_rank && b > a) sent += 4.0 * (double)(b - a);
        }
    }
    CHECK(ra_rs_post(&rs, g, 0, 1) == RA_ERR_INTERNAL, "a fifth slice of four was not refused");
    CHECK(ra_rs_finish(&rs, g, shard) == RA_OK, "rs finish: %s", ra_last_error());
    expect_bytes("reduce-scatter", b0, sent);
    double worst = 0, top = 0;
    for (size_t i = 0; i < own; i++) {
        const size_t k = lo + i;
        if (k >= 501 && k < 900) {
            CHECK(shard[i] == -999.0f, "rs: element %zu outside every slice was written", k);
            continue;
        }
        double ref = 0;
        for (int r = 0; r < g_P; r++) ref += rs_value(r, k);
        if (fabs(ref) > top) top = fabs(ref);
        if (fabs(shard[i] - ref) > worst) worst = fabs(shard[i] - ref);
    }
    CHECK(worst <= 1e-6 * (top > 1 ? top : 1), "rs: off by %g (largest |sum| %g)", worst, top);
    /* a slice past the end, and one overlapping a posted slice, are refused
     * before anything is sent; the handle is reusable after a finish */
    CHECK(ra_rs_post(&rs, g, 0, N + 1) == RA_ERR_INTERNAL, "a slice past the end was not refused");
    CHECK(ra_rs_post(&rs, g, 0, N) == RA_OK, "rs reuse: %s", ra_last_error());
    b0 = ra_comm_bytes();
    CHECK(ra_rs_post(&rs, g, 10, 20) == RA_ERR_INTERNAL && strstr(ra_last_error(), "overlaps"),
          "a slice overlapping a posted one was not refused: %s", ra_last_error());
    expect_bytes("a refused slice", b0, 0);
    CHECK(ra_rs_finish(&rs, g, shard) == RA_OK, "rs reuse finish: %s", ra_last_error());
    for (size_t i = 0; i < own; i++) {
        double ref = 0;
        for (int r = 0; r < g_P; r++) ref += rs_value(r, lo + i);
        CHECK(fabs(shard[i] - ref) <= 1e-6, "rs reuse: element %zu is %g, expected %g", lo + i, shard[i], ref);
    }
    /* in place (the replicated all-reduce's first half): the sum lands in
     * the rank's own range of g, bit for bit the sum above, in two slices;
     * every other element of g keeps this rank's value */
    CHECK(ra_rs_post(&rs, g, 600, N) == RA_OK && ra_rs_post(&rs, g, 0, 600) == RA_OK, "rs in place: %s",
          ra_last_error());
    CHECK(ra_rs_finish(&rs, g, g + lo) == RA_OK, "rs in place finish: %s", ra_last_error());
    for (size_t i = 0; i < own; i++)
        CHECK(memcmp(&g[lo + i], &shard[i], sizeof(float)) == 0, "rs in place: element %zu is %.9g, not %.9g",
              lo + i, g[lo + i], shard[i]);
    for (size_t i = 0; i < N; i++)
        if (i < lo || i >= lo + own)
            CHECK(g[i] == rs_value(g_rank, i), "rs in place: element %zu outside the shard changed", i);
    ra_rs_free(&rs);
    /* a part over INT_MAX floats (one MPI message each) is refused at the
     * start, naming the rank, on every rank, before anything is allocated */
    size_t big[65];
    for (int r = 0; r <= g_P; r++) big[r] = r == 0 ? 0 : (size_t)INT_MAX + 1 + (size_t)r;
    memset(&rs, 0, sizeof rs);
    CHECK(ra_rs_init(&rs, MPI_COMM_WORLD, big, 4) == RA_ERR_ARG && strstr(ra_last_error(), "rank 0's part"),
          "a part over INT_MAX was not refused: %s", ra_last_error());
    CHECK(rs.recv == NULL && rs.req == NULL && rs.rreq == NULL, "a refused reduce-scatter allocated its buffers");
    ra_rs_free(&rs);
}

/* The all-reduce on it (ra_allsum): 1001 floats in two slices, every rank
 * the whole float64 sum within 1e-6; bit for bit the same on every rank;
 * an n whose part is over INT_MAX floats refused, leaving it empty. */
static void allsum(void)
{
    enum { N = 1001 };
    float x[N];
    for (size_t i = 0; i < N; i++) x[i] = rs_value(g_rank, i);
    ra_allsum s;
    CHECK(ra_allsum_init(&s, MPI_COMM_WORLD, N, 2) == RA_OK, "allsum init: %s", ra_last_error());
    CHECK(ra_allsum_post(&s, x, 400, N) == RA_OK && ra_allsum_post(&s, x, 0, 400) == RA_OK, "allsum post: %s",
          ra_last_error());
    CHECK(ra_allsum_finish(&s, x) == RA_OK, "allsum finish: %s", ra_last_error());
    for (size_t i = 0; i < N; i++) {
        double ref = 0;
        for (int r = 0; r < g_P; r++) ref += rs_value(r, i);
        CHECK(fabs(x[i] - ref) <= 1e-6, "allsum: element %zu is %g, expected %g", i, x[i], ref);
    }
    float x0[N];
    memcpy(x0, x, sizeof x);
    MPI_Bcast(x0, N, MPI_FLOAT, 0, MPI_COMM_WORLD);
    CHECK(memcmp(x0, x, sizeof x) == 0, "allsum: the ranks' sums differ");
    ra_allsum_free(&s);
    CHECK(ra_allsum_init(&s, MPI_COMM_WORLD, ((size_t)INT_MAX + 1) * (size_t)g_P, 2) == RA_ERR_ARG &&
              strstr(ra_last_error(), "INT_MAX") && s.bounds == NULL && s.rs.recv == NULL,
          "allsum: parts over INT_MAX were not refused: %s", ra_last_error());
    ra_allsum_free(&s);
    /* parts of 2^30 floats fit one MPI count, but from P = 3 on rank 2's
     * offset, 2^31, does not: refused at init, before the reduce-scatter's
     * buffers (8 GiB here) are allocated, and by the all-gather before it
     * sends anything (x is never touched: a one-float buffer) */
    const size_t part = (size_t)INT_MAX / 2 + 1;
    size_t bounds[65];
    for (int r = 0; r <= g_P; r++) bounds[r] = part * (size_t)r;
    const ra_status want = g_P >= 3 ? RA_ERR_ARG : RA_OK;
    CHECK(ra_parts_fit(bounds, g_P, "test parts") == want, "parts of 2^30 at P = %d: %s", g_P, ra_last_error());
    if (g_P >= 3) {
        CHECK(strstr(ra_last_error(), "rank 2's part") && strstr(ra_last_error(), "test parts"),
              "the offset's refusal does not name rank 2 and the data: %s", ra_last_error());
        CHECK(ra_allsum_init(&s, MPI_COMM_WORLD, part * (size_t)g_P, 2) == RA_ERR_ARG && s.bounds == NULL &&
                  s.rs.recv == NULL,
              "allsum: an offset over INT_MAX was not refused before allocating: %s", ra_last_error());
        ra_allsum_free(&s);
        float one = 7.0f;
        CHECK(ra_allgather_parts(&one, bounds, MPI_COMM_WORLD, "test parts") == RA_ERR_ARG && one == 7.0f,
              "all-gather: an offset over INT_MAX was not refused: %s", ra_last_error());
    }
}

static void error_named(void)
{
    MPI_Comm comm;
    MPI_Comm_dup(MPI_COMM_WORLD, &comm);
    MPI_Comm_set_errhandler(comm, MPI_ERRORS_RETURN);
    int x = 0;
    ra_status st = ra_bcast(&x, 1, MPI_INT, g_P + 5, comm, "the test's bad broadcast");
    CHECK(st == RA_ERR_MPI, "a bad root gave status %d", (int)st);
    CHECK(st != RA_ERR_MPI || strstr(ra_last_error(), "the test's bad broadcast"), "message does not name it: %s",
          ra_last_error());
    MPI_Comm_free(&comm);
}

/* Stop notices (stop_notice.h), for four sets of senders: none, the last
 * rank, every rank (each sending twice: still one notice), the even ranks.
 * Every rank polls as work would: it hears a notice within 10 s exactly
 * when some rank sent one (none in 0.1 s otherwise), close agrees on
 * whether any rank sent, and leaves nothing for the next round (a notice
 * counted twice or left behind would hang close or be heard a round late). */
static void stop_notices(void)
{
    for (int round = 0; round < 4; round++) {
        const int sends = round == 1 ? g_rank == g_P - 1 : round == 2 ? 1 : round == 3 ? g_rank % 2 == 0 : 0;
        const int anyone = round > 0;
        ra_stop_notice n;
        CHECK(ra_stop_notice_open(&n, MPI_COMM_WORLD) == RA_OK, "stop notice: open: %s", ra_last_error());
        if (sends) ra_stop_notice_send(&n);
        if (sends && round == 2) ra_stop_notice_send(&n);
        const double t0 = MPI_Wtime(), limit = anyone ? 10.0 : 0.1;
        int heard = ra_stop_notice_heard(&n);
        while (!heard && MPI_Wtime() - t0 < limit) heard = ra_stop_notice_heard(&n);
        CHECK(heard == anyone, "stop notice round %d: heard %d, expected %d", round, heard, anyone);
        int any = -1;
        CHECK(ra_stop_notice_close(&n, &any) == RA_OK, "stop notice round %d: close: %s", round, ra_last_error());
        CHECK(any == anyone, "stop notice round %d: close says any = %d, expected %d", round, any, anyone);
    }
}

int main(int argc, char **argv)
{
    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &g_rank);
    MPI_Comm_size(MPI_COMM_WORLD, &g_P);
    ra_watchdog_init(MPI_COMM_WORLD);
    ra_set_peer_timeout(60.0);
    allreduce();
    allgatherv();
    alltoallv();
    bcast_gather_barrier();
    reduce_scatter();
    allsum();
    error_named();
    stop_notices();
    int fails = 0;
    MPI_Allreduce(&g_fail, &fails, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
    if (g_rank == 0) printf("test_collective_mpi: P=%d: %d failures\n", g_P, fails);
    MPI_Finalize();
    return fails ? 1 : 0;
}
