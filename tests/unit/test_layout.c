/* test_layout.c - the sequence layouts of layout.h against their definitions
 * (docs/design.md §3), for many L and P, including L < P and L not divisible
 * by 2P: the ranks' positions are a permutation of 0..L-1, each rank's in
 * increasing order, counts as the definitions give; and the first chunk
 * (ra_layout_first_chunk, where the ring splits zigzag pieces, §4.1) is a
 * run of consecutive positions: zigzag's exactly chunk r (possibly empty),
 * striped's and contiguous' the longest such run. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "ringattn/layout.h"

static const int64_t lens[] = { 1, 2, 3, 5, 7, 16, 37, 100, 129, 1000 };
static const int ranks[] = { 1, 2, 3, 4, 5, 8 };

/* Which rank owns global index i, straight from the definitions. */
static int owner(ra_layout lay, int64_t L, int P, int64_t i)
{
    switch (lay) {
    case RA_LAYOUT_CONTIGUOUS:
        for (int r = 0; r < P; r++)
            if (i < (int64_t)(r + 1) * L / P) return r;
        break;
    case RA_LAYOUT_ZIGZAG:
        for (int c = 0; c < 2 * P; c++)
            if (i < (int64_t)(c + 1) * L / (2 * P)) return c < P ? c : 2 * P - 1 - c;
        break;
    case RA_LAYOUT_STRIPED: return (int)(i % P);
    }
    return -1;
}

static void check_layout(ra_layout lay)
{
    for (size_t a = 0; a < sizeof lens / sizeof *lens; a++)
        for (size_t b = 0; b < sizeof ranks / sizeof *ranks; b++) {
            const int64_t L = lens[a];
            const int P = ranks[b];
            int *seen = calloc((size_t)L, sizeof *seen);
            int32_t *pos = malloc(sizeof *pos * (size_t)L);
            assert_non_null(seen);
            assert_non_null(pos);
            int64_t total = 0;
            for (int r = 0; r < P; r++) {
                const int64_t n = ra_layout_count(lay, L, P, r);
                int64_t expect = 0;
                for (int64_t i = 0; i < L; i++) expect += owner(lay, L, P, i) == r;
                assert_int_equal(n, expect);
                ra_layout_positions(lay, L, P, r, pos);
                for (int64_t k = 0; k < n; k++) {
                    assert_int_equal(owner(lay, L, P, pos[k]), r);
                    assert_int_equal(seen[pos[k]]++, 0);
                    if (k) assert_true(pos[k] > pos[k - 1]);
                    assert_int_equal(ra_layout_global(lay, L, P, r, k), pos[k]);
                }
                const int64_t S = ra_layout_first_chunk(lay, L, P, r);
                assert_true(S >= 0 && S <= n);
                if (lay != RA_LAYOUT_ZIGZAG) assert_true(n == 0 || S >= 1); /* zigzag's chunk r may be empty */
                for (int64_t k = 1; k < S; k++) assert_int_equal(pos[k], pos[k - 1] + 1);
                if (lay != RA_LAYOUT_ZIGZAG && S > 0 && S < n) assert_true(pos[S] != pos[S - 1] + 1);
                if (lay == RA_LAYOUT_ZIGZAG)
                    assert_int_equal(S, (int64_t)(r + 1) * L / (2 * P) - (int64_t)r * L / (2 * P));
                total += n;
            }
            assert_int_equal(total, L);
            free(seen);
            free(pos);
        }
}

static void test_contiguous(void **state)
{
    (void)state;
    check_layout(RA_LAYOUT_CONTIGUOUS);
}

static void test_zigzag(void **state)
{
    (void)state;
    check_layout(RA_LAYOUT_ZIGZAG);
}

static void test_striped(void **state)
{
    (void)state;
    check_layout(RA_LAYOUT_STRIPED);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_contiguous),
        cmocka_unit_test(test_zigzag),
        cmocka_unit_test(test_striped),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
