/* test_costmodel.c - the planner's cost model (costmodel.h) on cases worked
 * out by hand. Rates are chosen so the numbers are round: attention 1
 * GFLOP/s forward and backward, memory-bound passes so fast (1e6 GB/s) that
 * they vanish below the tolerances, shared memory at the given Gbit/s. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "ringattn/config.h"
#include "ringattn/costmodel.h"
#include "ringattn/layout.h"
#include "ringattn/model.h"

static ra_cm_rates unit_rates(double shm_gbps)
{
    ra_cm_rates r;
    ra_cm_default_rates(&r);
    r.attn_fwd_gflops = r.attn_bwd_gflops = 1.0;
    r.sgemm_gflops = 1.0;
    r.mem_gbs = 1e6;
    r.shm_gbps = shm_gbps, r.shm_lat_us = 1.0;
    r.threads = 1;
    return r;
}

#define NEAR(a, b, tol) assert_true(fabs((a) - (b)) <= (tol) * fabs(b) + 1e-9)

/* Bidirectional, P = 2, L = 1024, B = H = Hkv = 1, D = 64, contiguous,
 * chunk 512: nc = 1, two steps. A step's tile work: 512 x 512 pairs x 4 D
 * = 67,108,864 FLOPs = 67.108864 ms at 1 GFLOP/s. A piece: K and V of
 * 512 x 64 floats = 262,144 bytes.
 * Compute-bound (shm 100 Gbit/s): transfer 0.021 ms + 1 us << 67 ms, so
 * forward = 2 x 67.108864 ms, no wait.
 * Transfer-bound (shm 0.01 Gbit/s): transfer = 262144 x 8 / 1e7 s
 * = 209.7152 ms + 1 us at step 0 (step 1 = P-1 posts no transfer):
 * forward = 209.7162 + 67.108864 ms; each rank waits 209.7162 - 67.108864. */
static void test_compute_and_transfer_bound(void **state)
{
    (void)state;
    ra_cm_attn a = { .B = 1, .H = 1, .Hkv = 1, .D = 64, .L = 1024, .causal = 0, .head = RA_HEAD_FULL };
    ra_cm_setup s = { .P = 2, .layout = RA_LAYOUT_CONTIGUOUS, .chunk = 512 };
    ra_cm_rates r = unit_rates(100);
    ra_cm_attn_cost c;
    assert_int_equal(ra_cm_attn_time(&a, &s, &r, &c), RA_OK);
    assert_int_equal(c.nc, 1);
    assert_int_equal(c.chunk, 512);
    assert_int_equal(c.steps, 2);
    NEAR(c.fwd_s, 2 * 0.067108864, 1e-4);
    assert_true(c.fwd_wait_s < 1e-6);
    NEAR(c.balance, 1.0, 1e-9);
    r = unit_rates(0.01);
    assert_int_equal(ra_cm_attn_time(&a, &s, &r, &c), RA_OK);
    const double x = 262144.0 * 8 / 1e7 + 1e-6;
    NEAR(c.fwd_s, x + 0.067108864, 1e-4);
    NEAR(c.fwd_wait_s, x - 0.067108864, 1e-4);
    /* the backward moves K/V at step 0 (the own piece's partial stays
     * home) and the dK/dV partial (another 262,144 bytes) after step 1 */
    NEAR(c.bwd_comm_s, 2 * x, 1e-6);
}

/* A rank's own piece goes one step ahead (ring_attn.c): bidirectional,
 * P = 2, L = 2048, chunk 512, so nc = 2 and four steps (t = 0, 1, 0, 1),
 * B = H = Hkv = 1, D = 64. A step's work: 1024 queries x 512 keys =
 * 524,288 pairs, c = 134.217728 ms forward (x 4 D FLOPs at 1 GFLOP/s) and
 * cb = 335.54432 ms backward (x 10 D). A piece (K, V or dK, dV): 262,144
 * bytes.
 * Forward at 0.01 Gbit/s (x = 209.7152 ms + 1 us): step 0 sends own piece
 * 0 and waits for it (x); own piece 1 goes at step 1 and has steps 1 and 2
 * to move (max(2c, x) = 2c); step 3 sends nothing: x + 3c = 612.369384 ms
 * (piece by piece, one step each: 2x + 2c = 687.86).
 * Backward at 0.001 Gbit/s (x = 2097.152 ms + 1 us): step 0 x; steps 1-2
 * move own piece 1's K, V and the partial of step 1 (2x > cb + x); step 3
 * cb; the last partial home after it (one (sequence, head) group: one
 * part, x): 4x + cb = 8724.15 ms. */
static void test_piece_goes_ahead(void **state)
{
    (void)state;
    ra_cm_attn a = { .B = 1, .H = 1, .Hkv = 1, .D = 64, .L = 2048, .causal = 0, .head = RA_HEAD_FULL };
    ra_cm_setup s = { .P = 2, .layout = RA_LAYOUT_CONTIGUOUS, .chunk = 512 };
    ra_cm_rates r = unit_rates(0.01);
    ra_cm_attn_cost c;
    assert_int_equal(ra_cm_attn_time(&a, &s, &r, &c), RA_OK);
    assert_int_equal(c.nc, 2);
    const double cf = 0.134217728, cb = 0.33554432, x = 262144.0 * 8 / 1e7 + 1e-6;
    NEAR(c.fwd_s, x + 3 * cf, 1e-5);
    NEAR(c.fwd_wait_s, x - cf, 1e-4);
    NEAR(c.fwd_comm_s, 2 * x, 1e-6);
    r = unit_rates(0.001);
    assert_int_equal(ra_cm_attn_time(&a, &s, &r, &c), RA_OK);
    const double xb = 262144.0 * 8 / 1e6 + 1e-6;
    NEAR(c.bwd_s, 4 * xb + cb, 1e-5);
    NEAR(c.bwd_comm_s, 4 * xb, 1e-6); /* K, V of two pieces, dK, dV of two */
}

/* TCP's work on the cores that compute (link_cpu_s_per_gb): the setup of
 * test_piece_goes_ahead across 2 nodes of one rank each, the link fast
 * (100 Gbit/s: transfers of 0.023 ms hide), 100 s of compute lost per GB
 * sent or received: a transfer costs its rank 2 x 262,144 bytes x 100 s/GB
 * = 52.4288 ms. Forward: own piece 0 at step 0, own piece 1 ahead at step
 * 1, nothing at steps 2 and 3: 4c + 2 x 52.4288 = 641.728512 ms. Backward:
 * K, V at steps 0 and 1 as forward, step 1's partial at step 2, step 3's
 * partial home after it (its tail is a transfer, 0.023 ms, not counted
 * here): 4cb + 3 x 52.4288 + 0.023 = 1499.487 ms. Inside one node the
 * link's CPU does not apply: 4c. */
static void test_link_cpu(void **state)
{
    (void)state;
    ra_cm_attn a = { .B = 1, .H = 1, .Hkv = 1, .D = 64, .L = 2048, .causal = 0, .head = RA_HEAD_FULL };
    ra_cm_setup s = { .P = 2, .ranks_per_node = 1, .layout = RA_LAYOUT_CONTIGUOUS, .chunk = 512 };
    ra_cm_rates r = unit_rates(100);
    r.link_gbps = 100, r.link_lat_us = 2, r.link_cpu_s_per_gb = 100;
    ra_cm_attn_cost c;
    assert_int_equal(ra_cm_attn_time(&a, &s, &r, &c), RA_OK);
    assert_int_equal(c.nc, 2);
    const double cf = 0.134217728, cb = 0.33554432, cpu = 2 * 262144 * 1e-9 * 100;
    NEAR(c.fwd_s, 4 * cf + 2 * cpu, 1e-5);
    assert_true(c.fwd_wait_s < 1e-5);
    NEAR(c.bwd_s, 4 * cb + 3 * cpu + 262144.0 * 8 / 1e11 + 2e-6, 1e-5);
    s.ranks_per_node = 2;
    assert_int_equal(ra_cm_attn_time(&a, &s, &r, &c), RA_OK);
    NEAR(c.fwd_s, 4 * cf, 1e-5);
    /* a rates file keeps it, and reads without it as 0 */
    char text[2048];
    s.ranks_per_node = 1;
    assert_true(ra_cm_rates_text(&r, text, sizeof text) < (int)sizeof text);
    assert_non_null(strstr(text, "link_cpu_s_per_gb = 100\n"));
    ra_cm_rates back;
    assert_int_equal(ra_cm_rates_parse(&back, text, "t.ini"), RA_OK);
    assert_true(back.link_cpu_s_per_gb == 100);
    r.link_cpu_s_per_gb = 0;
    assert_int_equal(ra_cm_rates_text(&r, text, sizeof text) < (int)sizeof text, 1);
    assert_null(strstr(text, "link_cpu"));
    assert_int_equal(ra_cm_rates_parse(&back, text, "t.ini"), RA_OK);
    assert_true(back.link_cpu_s_per_gb == 0);
    /* refused like every key: negative, NaN, huge, given twice */
    const char *bad[] = { "link_cpu_s_per_gb = -1\n", "link_cpu_s_per_gb = nan\n", "link_cpu_s_per_gb = 1e13\n",
                          "link_cpu_s_per_gb = 1\nlink_cpu_s_per_gb = 1\n" };
    for (int i = 0; i < 4; i++) {
        char t2[2304];
        snprintf(t2, sizeof t2, "%s%s", text, bad[i]);
        assert_int_equal(ra_cm_rates_parse(&back, t2, "t.ini"), RA_ERR_FORMAT);
    }
}

/* Causal, P = 2, L = 2048, one piece per rank (chunk 1024), D = 64, H = 1.
 * Forward tiles (attn.c): 256 query rows x 512 keys; a partial tile is
 * computed per group of 16 rows up to the last key the group's last row
 * sees, each such pair costing 1.2 pairs of a full tile (FWD_SUB_COST).
 * Own block (either layout, both ranks; relative positions): query tiles
 * [0,256) and [256,512) against key tile [0,512) are partial: 16 x (16 +
 * 32 + ... + 256) = 34,816 and 16 x (272 + 288 + ... + 512) = 100,352
 * pairs; query tiles [512,768), [768,1024) see key tile 0 full (131,072
 * each) and key tile [512,1024) partially (34,816, 100,352): 262,144 full
 * + 1.2 x 270,336 partial = 586,547.2 pairs.
 * contiguous, step 1: rank 1 holds rank 0's keys (all earlier): 1024 x 1024
 * = 1,048,576 pairs; rank 0 holds rank 1's (all later): 0. Forward =
 * (586,547.2 + 1,048,576) x 256 FLOPs at 1 GFLOP/s = 418.5915392 ms; rank 0
 * waits 268.435456 ms at step 1.
 * zigzag (chunks of 512: rank 0 = [0,512) + [1536,2048), rank 1 =
 * [512,1536)), step 1: rank 0's query tiles at 1536.. and 1792.. see both
 * of rank 1's key tiles (512.., 1024..) full, its first two none: 4 tiles;
 * rank 1's four query tiles see rank 0's first key tile (0..) full and not
 * the second (1536..): 4 tiles. 524,288 pairs each: forward = (586,547.2 +
 * 524,288) x 256 ns = 284.3738112 ms, balance 1, no wait. */
static void test_causal_imbalance_p2(void **state)
{
    (void)state;
    ra_cm_attn a = { .B = 1, .H = 1, .Hkv = 1, .D = 64, .L = 2048, .causal = 1, .head = RA_HEAD_FULL };
    ra_cm_setup s = { .P = 2, .layout = RA_LAYOUT_CONTIGUOUS, .chunk = 1024 };
    ra_cm_rates r = unit_rates(1000);
    ra_cm_attn_cost c, z;
    assert_int_equal(ra_cm_attn_time(&a, &s, &r, &c), RA_OK);
    NEAR(c.fwd_s, 0.4185915392, 1e-4);
    NEAR(c.fwd_wait_s, 0.268435456, 1e-3);
    /* the busiest rank, rank 1, computes the whole call (it was given as the
     * lightest's: 418.59 - 268.44 = 150.16 ms) */
    NEAR(c.fwd_compute_s, 0.4185915392, 1e-3);
    s.layout = RA_LAYOUT_ZIGZAG;
    assert_int_equal(ra_cm_attn_time(&a, &s, &r, &z), RA_OK);
    NEAR(z.fwd_s, 0.2843738112, 1e-4);
    assert_true(z.fwd_wait_s < 1e-4);
    NEAR(z.balance, 1.0, 1e-6);
    assert_true(c.balance < 0.8);
    assert_true(c.imbalance_s > 0.26);
}

/* Causal, P = 4, L = 4096, contiguous, chunk 1024 (one piece of 1024 per
 * rank). Rank r computes its own block (forward 586,547.2 pairs as above;
 * backward tiles 64 x 512 computed whole: query tiles 0-7 see one key
 * tile, 8-15 two: 24 tiles of 32,768 = 786,432) and r earlier blocks of
 * 1,048,576 pairs, at 256 ns a pair forward and 640 ns backward:
 *     work(r) = 256 x 586,547.2 + 640 x 786,432 + r x 896 x 1,048,576 ns
 *             = 653,472,563.2 + r x 939,524,096 ns
 * balance = mean / max = 2,062,758,707.2 / 3,472,044,851.2 = 0.594105.
 * Zigzag evens it out (>= 0.95). */
static void test_causal_imbalance_p4(void **state)
{
    (void)state;
    ra_cm_attn a = { .B = 1, .H = 1, .Hkv = 1, .D = 64, .L = 4096, .causal = 1, .head = RA_HEAD_FULL };
    ra_cm_setup s = { .P = 4, .layout = RA_LAYOUT_CONTIGUOUS, .chunk = 1024 };
    ra_cm_rates r = unit_rates(1000);
    ra_cm_attn_cost c, z;
    assert_int_equal(ra_cm_attn_time(&a, &s, &r, &c), RA_OK);
    NEAR(c.balance, 0.594105, 1e-5);
    s.layout = RA_LAYOUT_ZIGZAG;
    assert_int_equal(ra_cm_attn_time(&a, &s, &r, &z), RA_OK);
    assert_true(z.balance >= 0.95);
    assert_true(z.fwd_s < c.fwd_s);
    assert_true(z.fwd_wait_s < c.fwd_wait_s);
}

/* The automatic chunk of design §4.1: P = 1 one piece; P > 1 ceil(maxL/8)
 * but at least 512 and at most maxL. */
static void test_pieces(void **state)
{
    (void)state;
    int nc, ch;
    ra_cm_ring_pieces(8192, 1, RA_LAYOUT_ZIGZAG, 0, &nc, &ch);
    assert_int_equal(nc, 1), assert_int_equal(ch, 8192);
    ra_cm_ring_pieces(65536, 2, RA_LAYOUT_ZIGZAG, 0, &nc, &ch); /* maxL 32768: chunk 4096 */
    assert_int_equal(nc, 8), assert_int_equal(ch, 4096);
    ra_cm_ring_pieces(2048, 2, RA_LAYOUT_ZIGZAG, 0, &nc, &ch); /* 128 -> 512 */
    assert_int_equal(nc, 2), assert_int_equal(ch, 512);
    ra_cm_ring_pieces(1000, 4, RA_LAYOUT_CONTIGUOUS, 0, &nc, &ch); /* 250 < 512 -> maxL */
    assert_int_equal(nc, 1), assert_int_equal(ch, 250);
}

/* The O(key tiles) tile count against the walk over every (query tile,
 * key tile), for every (rank, owner, piece) of small rings: all layouts,
 * causal and bidirectional, attn.c's tiles and odd small ones (tiles that
 * straddle zigzag's two chunks and the two ranges of a zigzag piece). */
static void test_tile_pairs_fast_equals_walk(void **state)
{
    (void)state;
    const struct { int64_t L; int P, nc; } rings[] = { { 1000, 1, 1 }, { 1000, 3, 2 }, { 4096, 4, 3 },
                                                     { 5000, 5, 4 }, { 777, 2, 5 }, { 64, 8, 2 } };
    const int tiles[][3] = { /* tq, tk, sub (0: partial tiles whole; else sub divides tq) */
        { 256, 512, 64 }, { 64, 512, 0 }, { 7, 5, 0 }, { 6, 5, 3 }, { 16, 3, 4 }, { 15, 8, 5 }, { 1, 1, 0 } };
    int compared = 0, nonzero = 0, partial = 0;
    for (int lay = 0; lay < 3; lay++)
        for (size_t i = 0; i < sizeof rings / sizeof *rings; i++)
            for (int causal = 0; causal < 2; causal++)
                for (size_t t = 0; t < sizeof tiles / sizeof *tiles; t++)
                    for (int r = 0; r < rings[i].P; r++)
                        for (int o = 0; o < rings[i].P; o++)
                            for (int k = 0; k < rings[i].nc; k++) {
                                const int64_t L = rings[i].L;
                                const int P = rings[i].P, tq = tiles[t][0], tk = tiles[t][1], sub = tiles[t][2];
                                ra_cm_piece pc = ra_cm_piece_rows((ra_layout)lay, L, P, rings[i].nc, o, k);
                                ra_cm_tiles f = ra_cm_tile_pairs((ra_layout)lay, L, P, r, o, &pc, causal, tq, tk, sub);
                                ra_cm_tiles w = ra_cm_tile_pairs_walk((ra_layout)lay, L, P, r, o, &pc, causal, tq, tk,
                                                                      sub);
                                if (f.full != w.full || f.part != w.part || f.part_sub != w.part_sub)
                                    fail_msg("layout %d L=%lld P=%d nc=%d causal=%d tiles %dx%d sub %d rank %d owner "
                                             "%d piece %d: full/part/part_sub fast %.0f/%.0f/%.0f, walk "
                                             "%.0f/%.0f/%.0f", lay, (long long)L, P, rings[i].nc, causal, tq, tk, sub,
                                             r, o, k, f.full, f.part, f.part_sub, w.full, w.part, w.part_sub);
                                compared++, nonzero += w.full > 0, partial += w.part > 0;
                            }
    assert_int_equal(compared, 3 * 2 * 7 * (1 * 1 * 1 + 9 * 2 + 16 * 3 + 25 * 4 + 4 * 5 + 64 * 2));
    assert_true(nonzero > compared / 3);
    assert_true(partial > compared / 5);
}

/* Zigzag pieces at P > 1 (ring_attn.c): piece k of rank o is local rows
 * [k*S/nc, (k+1)*S/nc) and [S + k*(Lo-S)/nc, S + (k+1)*(Lo-S)/nc), S the
 * first chunk's tokens. Worked: L = 2048, P = 2, nc = 2; rank 0 owns global
 * [0,512) + [1536,2048) (S = 512): piece 1 = local [256,512) + [768,1024).
 * Other layouts and P = 1: one range [k*Lo/nc, (k+1)*Lo/nc). Every layout:
 * the pieces tile [0, Lo) in order; zigzag's two halves differ by <= 1. */
static void test_piece_rows(void **state)
{
    (void)state;
    ra_cm_piece pc = ra_cm_piece_rows(RA_LAYOUT_ZIGZAG, 2048, 2, 2, 0, 1);
    assert_int_equal(pc.first[0], 256), assert_int_equal(pc.n[0], 256);
    assert_int_equal(pc.first[1], 768), assert_int_equal(pc.n[1], 256);
    pc = ra_cm_piece_rows(RA_LAYOUT_ZIGZAG, 2048, 1, 2, 0, 1);
    assert_int_equal(pc.first[0], 1024), assert_int_equal(pc.n[0], 1024), assert_int_equal(pc.n[1], 0);
    pc = ra_cm_piece_rows(RA_LAYOUT_STRIPED, 1001, 2, 3, 0, 2); /* Lo = 501: [334, 501) */
    assert_int_equal(pc.first[0], 334), assert_int_equal(pc.n[0], 167), assert_int_equal(pc.n[1], 0);
    const int64_t Ls[] = { 2048, 1001, 77 };
    for (int lay = 0; lay < 3; lay++)
        for (int i = 0; i < 3; i++)
            for (int P = 1; P <= 6; P++)
                for (int nc = 1; nc <= 5; nc++)
                    for (int o = 0; o < P; o++) {
                        const int64_t Lo = ra_layout_count((ra_layout)lay, Ls[i], P, o);
                        int64_t next[2] = { 0, -1 }, total = 0;
                        for (int k = 0; k < nc; k++) {
                            pc = ra_cm_piece_rows((ra_layout)lay, Ls[i], P, nc, o, k);
                            if (k == 0) next[1] = pc.first[1]; /* S */
                            assert_int_equal(pc.first[0], next[0]);
                            next[0] += pc.n[0];
                            if (lay == RA_LAYOUT_ZIGZAG && P > 1) {
                                assert_int_equal(pc.first[1], next[1]);
                                next[1] += pc.n[1];
                                assert_true(llabs(pc.n[0] - pc.n[1]) <= 1);
                            } else {
                                assert_int_equal(pc.n[1], 0);
                            }
                            total += pc.n[0] + pc.n[1];
                        }
                        assert_int_equal(total, Lo);
                        if (lay == RA_LAYOUT_ZIGZAG && P > 1) { /* [0, S) then [S, Lo) */
                            const int64_t S = (int64_t)(o + 1) * Ls[i] / (2 * P) - (int64_t)o * Ls[i] / (2 * P);
                            assert_int_equal(next[0], S);
                            assert_int_equal(next[1], Lo);
                        }
                    }
}

/* combiner-fixed, P = 1, L = 16, spans of 4 (G = 4), B = H = Hkv = 1,
 * D = 64, causal, attention 1 GFLOP/s (a pair: 4 D = 256 FLOPs = 256 ns),
 * memory passes too fast to count. Per span g (len 4), in pairs:
 *   summary softmax, one row x 4 keys:   ONE_ROW_FWD 9.3 x 4       = 37.2
 *   direct 4 x 4 causal: one partial tile, one group of 4 rows seeing
 *     4 keys: 1.2 x 16 = 19.2, + the sgemm panel's 4 x (16 - 4) = 48,
 *     + ROW_FWD 15 x 4 rows x 1 key tile = 60:                    127.2
 *   summaries before it (g keys, none at g = 0): 4 g + 4 (16 - g) + 60
 *     = 124 for g = 1, 2, 3
 * Pairs: 4 x 37.2 + 4 x 127.2 + 3 x 124 = 1029.6 -> 263,577.6 ns. Loops,
 * in FLOPs at 0.72 GFLOP/s (OP_SHARE_OF_SGEMM of sgemm's 1 GFLOP/s):
 * max-pooling q and k OP_MAX 17 x 16 x 64 x 2 = 34,816, init and finish
 * OP_VEC 6 x 16 x 64 x 2 = 12,288: 47,104 FLOPs -> 65,422.2 ns.
 * Forward = 328,999.8 ns; no communication on one rank. */
static void test_combiner_fixed_worked(void **state)
{
    (void)state;
    ra_cm_attn a = { .B = 1, .H = 1, .Hkv = 1, .D = 64, .L = 16, .causal = 1, .head = RA_HEAD_COMBINER_FIXED,
                     .span = 4 };
    ra_cm_setup s = { .P = 1, .layout = RA_LAYOUT_CONTIGUOUS };
    ra_cm_rates r = unit_rates(100);
    ra_cm_attn_cost c;
    assert_int_equal(ra_cm_attn_time(&a, &s, &r, &c), RA_OK);
    NEAR(c.fwd_s, 328999.8e-9, 1e-4);
    assert_true(c.fwd_comm_s == 0 && c.bwd_comm_s == 0);
    assert_true(c.bwd_s > c.fwd_s);
    /* a calibrated row cost (rates row_fwd_pairs) replaces ROW_FWD: 15 is
     * the default's price; 10 takes 5 pairs from each of the 7 calls' 4
     * (row, key tile): 140 pairs, 35,840 ns */
    const double bwd = c.bwd_s;
    r.row_fwd_pairs = 15;
    assert_int_equal(ra_cm_attn_time(&a, &s, &r, &c), RA_OK);
    NEAR(c.fwd_s, 328999.8e-9, 1e-4);
    r.row_fwd_pairs = 10;
    assert_int_equal(ra_cm_attn_time(&a, &s, &r, &c), RA_OK);
    NEAR(c.fwd_s, 293159.8e-9, 1e-4);
    NEAR(c.bwd_s, bwd, 1e-12); /* the backward has its own (row_bwd_pairs) */
    r.row_bwd_pairs = 5 + 1e3, r.row_fwd_pairs = 0;
    assert_int_equal(ra_cm_attn_time(&a, &s, &r, &c), RA_OK);
    assert_true(c.bwd_s > bwd + 1e-6);
    NEAR(c.fwd_s, 328999.8e-9, 1e-4); /* 0: the default again */
    r.row_bwd_pairs = 0;
    /* logsparse is causal only */
    a.head = RA_HEAD_COMBINER_LOGSPARSE, a.causal = 0;
    assert_int_equal(ra_cm_attn_time(&a, &s, &r, &c), RA_ERR_ARG);
}

/* combiner-logsparse's rows per rank, row by row: rank r owns
 * [r L / P, (r + 1) L / P) and, at level l, computes the summaries of the
 * blocks [max(0, a / 2^l - 1), (e - 1) / 2^l) (combiner_logsparse.c's
 * needed()); a block it needs that is not inside its range, up to block
 * a / 2^l, is shared: every rank works on its own rows of it. */
static void logsparse_rows_by_row(int64_t L, int P, int nl, double *local, double *shared)
{
    double *loc = calloc((size_t)P, sizeof(double)), *sh = calloc((size_t)P, sizeof(double));
    char *is_shared = malloc((size_t)L + 1), *is_local = malloc((size_t)L + 1);
    assert_non_null(loc), assert_non_null(sh), assert_non_null(is_shared), assert_non_null(is_local);
    for (int l = 0; l < nl; l++) {
        memset(is_shared, 0, (size_t)L + 1), memset(is_local, 0, (size_t)L + 1);
        for (int r = 0; r < P; r++) {
            int64_t a = r * L / P, e = (r + 1) * L / P, lo = (a >> l) - 1 < 0 ? 0 : (a >> l) - 1;
            int64_t hi = e > a ? (e - 1) >> l : lo;
            for (int64_t b = lo; b < hi; b++) {
                int inside = (b << l) >= a && ((b + 1) << l) <= e;
                if (!inside && b <= (a >> l)) is_shared[b] = 1;
                if (inside) is_local[b] = 1;
            }
        }
        for (int64_t g = 0; g < L; g++) {
            int r = 0;
            while ((r + 1) * L / P <= g) r++;
            const int64_t b = g >> l;
            if (is_shared[b]) sh[r]++;
            else if (is_local[b]) loc[r]++;
        }
    }
    *local = *shared = 0;
    for (int r = 0; r < P; r++) {
        *local = loc[r] > *local ? loc[r] : *local;
        *shared = sh[r] > *shared ? sh[r] : *shared;
    }
    free(loc), free(sh), free(is_shared), free(is_local);
}

static void test_logsparse_rows(void **state)
{
    (void)state;
    double loc, sh;
    /* by hand: one rank, L = 4096, 12 levels: level l needs blocks
     * [0, 4095 / 2^l), 4096 - 2^l rows; 12 * 4096 - 4095 in all */
    assert_int_equal(ra_cm_logsparse_rows(4096, 1, 12, &loc, &sh), RA_OK);
    assert_true(loc == 45057 && sh == 0);
    /* two ranks: each needs 2048 - 2^l rows of its own at level l (20481 in
     * all); rank 1 also needs block 2048 / 2^l - 1 of each level, rows
     * [2048 - 2^l, 2048) of rank 0: 4095 shared rows */
    assert_int_equal(ra_cm_logsparse_rows(4096, 2, 12, &loc, &sh), RA_OK);
    assert_true(loc == 20481 && sh == 4095);
    /* the O(P) sweep against the row by row count, ranges of unequal sizes too */
    const int64_t Ls[] = { 7, 64, 100, 1000, 4096, 5000 };
    const int Ps[] = { 1, 2, 3, 4, 5, 8, 16 };
    for (size_t i = 0; i < sizeof Ls / sizeof *Ls; i++)
        for (size_t j = 0; j < sizeof Ps / sizeof *Ps; j++) {
            const int64_t L = Ls[i];
            const int P = Ps[j];
            if (P > L) continue;
            int nl = 0;
            while (((int64_t)1 << nl) < L) nl++;
            double want_loc, want_sh;
            logsparse_rows_by_row(L, P, nl, &want_loc, &want_sh);
            assert_int_equal(ra_cm_logsparse_rows(L, P, nl, &loc, &sh), RA_OK);
            if (loc != want_loc || sh != want_sh)
                fail_msg("L = %lld, P = %d: local %.0f shared %.0f, row by row %.0f and %.0f", (long long)L, P, loc,
                         sh, want_loc, want_sh);
        }
}

/* Memory per rank: the model's real plan (what ra_model_create allocates),
 * plus the heads' buffers and AdamW's 9 bytes per parameter. */
static void test_memory_is_the_plan(void **state)
{
    (void)state;
    ra_config cfg;
    assert_int_equal(ra_config_load(&cfg, CONFIG_DIR "/bench.ini"), RA_OK);
    assert_int_equal(ra_config_finish(&cfg), RA_OK);
    ra_cm_rates r = unit_rates(100);
    for (int P = 1; P <= 4; P *= 2) {
        ra_cm_setup s = { .P = P, .layout = RA_LAYOUT_ZIGZAG };
        ra_cm_train t;
        assert_int_equal(ra_cm_train_time(&cfg, &s, &r, &t), RA_OK);
        size_t bytes, np;
        assert_int_equal(ra_model_plan_bytes(&cfg, 1, P, 0, &bytes, &np), RA_OK);
        assert_true(t.model_plan_bytes == bytes);
        assert_true(t.nparams == np);
        assert_int_equal(np, 3229952); /* configs/bench.ini's comment */
        assert_true(t.bytes_per_rank > bytes + 9 * np);
        /* parameters and gradients alone: 2 x 4 bytes each */
        assert_true(bytes > 8 * np);
        assert_true(t.step_s > 0 && t.step_s >= t.compute_s);
    }
    /* sharded AdamW state (design.md §16): 13 bytes per parameter of the
     * rank's shard instead of 9 per parameter, the update on the shard
     * only; both (P > 1) with the reduce-scatter's receive buffers (4 bytes
     * per parameter of the shard, two rounds, one at P = 2) */
    for (int P = 1; P <= 8; P++) {
        ra_cm_setup s = { .P = P, .layout = RA_LAYOUT_ZIGZAG };
        ra_config rep = cfg, shd = cfg;
        rep.shard_optimizer = 0, shd.shard_optimizer = 1;
        ra_cm_train tr, ts;
        assert_int_equal(ra_cm_train_time(&rep, &s, &r, &tr), RA_OK);
        assert_int_equal(ra_cm_train_time(&shd, &s, &r, &ts), RA_OK);
        const size_t np = tr.nparams, own = (np + (size_t)P - 1) / (size_t)P;
        assert_int_equal(tr.sharded, 0);
        assert_int_equal(ts.sharded, P > 1);
        if (P == 1) {
            assert_true(ts.bytes_per_rank == tr.bytes_per_rank && ts.optim_s == tr.optim_s && tr.reduce_bytes == 0);
            continue;
        }
        /* both reduce-scatter the gradient: the same receive buffer */
        assert_true(tr.reduce_bytes == 4 * (P == 2 ? 1 : 2) * own && ts.reduce_bytes == tr.reduce_bytes);
        assert_true(tr.bytes_per_rank - ts.bytes_per_rank == 9 * np - 13 * own);
        assert_true(fabs(ts.optim_s * (double)np - tr.optim_s * (double)own) <= 1e-12 * tr.optim_s * (double)np);
        assert_true(fabs(ts.allreduce_s - tr.allreduce_s) <= 1e-12 * tr.allreduce_s);
    }
    ra_cm_setup bad = { .P = 4, .dp = 3, .layout = RA_LAYOUT_ZIGZAG };
    ra_cm_train t;
    assert_int_not_equal(ra_cm_train_time(&cfg, &bad, &r, &t), RA_OK);
}

static void test_rates_file(void **state)
{
    (void)state;
    ra_cm_rates r = unit_rates(3), back;
    char text[1024];
    assert_true(ra_cm_rates_text(&r, text, sizeof text) > 0);
    assert_int_equal(ra_cm_rates_parse(&back, text, "t"), RA_OK);
    NEAR(back.shm_gbps, 3.0, 1e-6);
    assert_int_equal(back.threads, 1);
    assert_int_equal(ra_cm_rates_parse(&back, "garbage\n", "t"), RA_ERR_FORMAT);
    assert_int_equal(ra_cm_rates_parse(&back, "threads = 2\n", "t"), RA_ERR_FORMAT); /* keys missing */
    char bad[1100];
    snprintf(bad, sizeof bad, "%ssgemm_gflops = nan\n", text);
    assert_int_equal(ra_cm_rates_parse(&back, bad, "t"), RA_ERR_FORMAT); /* twice, and nan */
    char *p = strstr(text, "mem_gbs");
    memcpy(p, "mem_gbX", 7);
    assert_int_equal(ra_cm_rates_parse(&back, text, "t"), RA_ERR_FORMAT); /* unknown key */
    /* layer_pass_gbs: written when set, read back; a file without it (saved
     * before it existed) still reads, as 0 (mem_gbs is used) */
    assert_null(strstr(text, "layer_pass_gbs"));
    NEAR(back.layer_pass_gbs, 0.0, 0);
    r.layer_pass_gbs = 7.5;
    assert_true(ra_cm_rates_text(&r, text, sizeof text) > 0);
    assert_non_null(strstr(text, "layer_pass_gbs = 7.5\n"));
    assert_int_equal(ra_cm_rates_parse(&back, text, "t"), RA_OK);
    NEAR(back.layer_pass_gbs, 7.5, 1e-9);
    snprintf(bad, sizeof bad, "%slayer_pass_gbs = -1\n", text);
    assert_int_equal(ra_cm_rates_parse(&back, bad, "t"), RA_ERR_FORMAT); /* twice, and negative */
    /* the Combiners' fitted loop rates: the same */
    NEAR(back.logsparse_op_gflops, 0.0, 0);
    r.logsparse_op_gflops = 80, r.fixed_op_gflops = 0;
    assert_true(ra_cm_rates_text(&r, text, sizeof text) > 0);
    assert_non_null(strstr(text, "logsparse_op_gflops = 80\n"));
    assert_null(strstr(text, "fixed_op_gflops"));
    assert_int_equal(ra_cm_rates_parse(&back, text, "t"), RA_OK);
    NEAR(back.logsparse_op_gflops, 80.0, 1e-9);
    NEAR(back.fixed_op_gflops, 0.0, 0);
    /* the small calls' row costs: the same */
    r.row_fwd_pairs = 12.5, r.row_bwd_pairs = 0.1;
    assert_true(ra_cm_rates_text(&r, text, sizeof text) > 0);
    assert_non_null(strstr(text, "row_fwd_pairs = 12.5\nrow_bwd_pairs = 0.1\n"));
    assert_int_equal(ra_cm_rates_parse(&back, text, "t"), RA_OK);
    NEAR(back.row_fwd_pairs, 12.5, 1e-9);
    NEAR(back.row_bwd_pairs, 0.1, 1e-9);
    snprintf(bad, sizeof bad, "%srow_fwd_pairs = 0\n", text);
    assert_int_equal(ra_cm_rates_parse(&back, bad, "t"), RA_ERR_FORMAT); /* twice, and 0 */
    r.row_fwd_pairs = r.row_bwd_pairs = 0;
    /* an optional key is checked like the others: a huge value, a NaN */
    r.logsparse_op_gflops = 0;
    assert_true(ra_cm_rates_text(&r, text, sizeof text) > 0);
    assert_int_equal(ra_cm_rates_parse(&back, text, "t"), RA_OK);
    snprintf(bad, sizeof bad, "%slogsparse_op_gflops = 1e13\n", text);
    assert_int_equal(ra_cm_rates_parse(&back, bad, "t"), RA_ERR_FORMAT);
    r.logsparse_op_gflops = 80;
    assert_true(ra_cm_rates_text(&r, text, sizeof text) > 0);
    char *lp = strstr(text, "logsparse_op_gflops = 80");
    assert_non_null(lp);
    memcpy(lp + strlen("logsparse_op_gflops = "), "na", 2); /* "na" then "\n": not a number */
    assert_int_equal(ra_cm_rates_parse(&back, text, "t"), RA_ERR_FORMAT);
}

/* A Combiner's scalar loops run at its fitted rate when there is one
 * (rates *_op_gflops), else at 0.72 of sgemm: only that head's price moves,
 * and its loop time scales as 1 / rate. */
static void test_combiner_op_rates(void **state)
{
    (void)state;
    ra_cm_rates r = unit_rates(100);
    r.sgemm_gflops = 100; /* loops at 72 GFLOP/s unless fitted */
    ra_cm_setup s = { .P = 1, .layout = RA_LAYOUT_CONTIGUOUS };
    ra_cm_attn ls = { .B = 1, .H = 4, .Hkv = 4, .D = 64, .L = 4096, .causal = 1,
                      .head = RA_HEAD_COMBINER_LOGSPARSE };
    ra_cm_attn fx = ls;
    fx.head = RA_HEAD_COMBINER_FIXED;
    ra_cm_attn_cost l0, l72, l36, lfree, f0, f1;
    assert_int_equal(ra_cm_attn_time(&ls, &s, &r, &l0), RA_OK);
    assert_int_equal(ra_cm_attn_time(&fx, &s, &r, &f0), RA_OK);
    r.logsparse_op_gflops = 72; /* the default's rate, now as a fit */
    assert_int_equal(ra_cm_attn_time(&ls, &s, &r, &l72), RA_OK);
    assert_int_equal(ra_cm_attn_time(&fx, &s, &r, &f1), RA_OK);
    NEAR(l72.fwd_s, l0.fwd_s, 1e-12);
    NEAR(l72.bwd_s, l0.bwd_s, 1e-12);
    NEAR(f1.fwd_s, f0.fwd_s, 1e-12); /* fixed keeps its price */
    r.logsparse_op_gflops = 36;
    assert_int_equal(ra_cm_attn_time(&ls, &s, &r, &l36), RA_OK);
    r.logsparse_op_gflops = 1e15;
    assert_int_equal(ra_cm_attn_time(&ls, &s, &r, &lfree), RA_OK);
    NEAR(l36.fwd_s + l36.bwd_s - (lfree.fwd_s + lfree.bwd_s), 2 * (l72.fwd_s + l72.bwd_s - (lfree.fwd_s + lfree.bwd_s)),
         1e-6);
    assert_true(l36.fwd_s > l72.fwd_s);
}

/* The layer's passes at layer_pass_gbs: bench.ini (N = 2048 rows, C = 256,
 * H D = Hkv D = 256, F = 688, V = 256, 4 layers) moves per layer
 * 4 N (14 C + 6 HD + 6 KD + 3 F) bytes forward and 4 N (30 C + 12 HD + 12 KD
 * + 9 F) backward, and 4 N (9 C + 4 V) around the LM head: 4 x (71,434,240
 * + 163,971,072) + 27,262,976 = 968,884,224 bytes, 0.968884224 s at 1 GB/s
 * more than with the passes free; unset, the streaming rate mem_gbs. */
static void test_layer_passes(void **state)
{
    (void)state;
    ra_config cfg;
    assert_int_equal(ra_config_load(&cfg, CONFIG_DIR "/bench.ini"), RA_OK);
    assert_int_equal(ra_config_finish(&cfg), RA_OK);
    ra_cm_rates r = unit_rates(100);
    ra_cm_setup s = { .P = 1, .layout = RA_LAYOUT_CONTIGUOUS };
    ra_cm_train free_, one, two, unset;
    r.layer_pass_gbs = 1e12;
    assert_int_equal(ra_cm_train_time(&cfg, &s, &r, &free_), RA_OK);
    r.layer_pass_gbs = 1;
    assert_int_equal(ra_cm_train_time(&cfg, &s, &r, &one), RA_OK);
    r.layer_pass_gbs = 2;
    assert_int_equal(ra_cm_train_time(&cfg, &s, &r, &two), RA_OK);
    NEAR(one.step_s - free_.step_s, 0.968884224, 1e-6);
    NEAR(two.step_s - free_.step_s, 0.968884224 / 2, 1e-6);
    r.layer_pass_gbs = 0, r.mem_gbs = 4;
    assert_int_equal(ra_cm_train_time(&cfg, &s, &r, &unset), RA_OK);
    r.layer_pass_gbs = 4;
    assert_int_equal(ra_cm_train_time(&cfg, &s, &r, &two), RA_OK);
    NEAR(unset.step_s, two.step_s, 1e-12);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_compute_and_transfer_bound),
        cmocka_unit_test(test_piece_goes_ahead),
        cmocka_unit_test(test_link_cpu),
        cmocka_unit_test(test_layer_passes),
        cmocka_unit_test(test_combiner_op_rates),
        cmocka_unit_test(test_causal_imbalance_p2),
        cmocka_unit_test(test_causal_imbalance_p4),
        cmocka_unit_test(test_pieces),
        cmocka_unit_test(test_piece_rows),
        cmocka_unit_test(test_tile_pairs_fast_equals_walk),
        cmocka_unit_test(test_combiner_fixed_worked),
        cmocka_unit_test(test_logsparse_rows),
        cmocka_unit_test(test_memory_is_the_plan),
        cmocka_unit_test(test_rates_file),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
