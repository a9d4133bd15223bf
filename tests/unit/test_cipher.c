/* test_cipher.c - the Bit Cipher assignment order, checked by hand. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "ringattn/cipher.h"

static void test_order_b4(void **s)
{
    (void)s;
    /* the example, then the 3-bit level built the same way by hand:
     * walk 1100, 1010, 0110, 1001, 0101, 0011 and add positions 3..0 */
    const char *want[15] = { "1000", "0100", "0010", "0001", "0011", "0101", "1001", "0110", "1010", "1100",
                             "1101", "1110", "1011", "0111", "1111" };
    uint32_t c[15];
    char buf[8];
    assert_int_equal(ra_cipher_codes(4, 15, c), RA_OK);
    for (int i = 0; i < 15; i++) assert_string_equal(ra_cipher_string(c[i], 4, buf), want[i]);
    assert_int_not_equal(ra_cipher_codes(4, 16, c), RA_OK); /* 15 non-zero codes only */
}

static void test_levels_and_uniqueness(void **s)
{
    (void)s;
    enum { B = 9, N = 511 };
    uint32_t c[N];
    assert_int_equal(ra_cipher_codes(B, N, c), RA_OK);
    static unsigned char seen[1 << B];
    memset(seen, 0, sizeof seen);
    int prev = 1;
    for (int i = 0; i < N; i++) {
        int pc = __builtin_popcount(c[i]);
        assert_true(pc >= prev); /* increasing popcount */
        prev = pc;
        assert_false(seen[c[i]]);
        seen[c[i]] = 1;
    }
    assert_int_equal(ra_cipher_bits(256, 0), 9);
    assert_int_equal(ra_cipher_bits(255, 0), 8);
    assert_int_equal(ra_cipher_bits(256, 12), 12);
}

static void test_assign_by_frequency(void **s)
{
    (void)s;
    const int64_t counts[6] = { 5, 9, 0, 9, 1, 7 }; /* ranks: 1 (9), 3 (9), 5, 0, 4, 2 */
    int rank[6];
    uint32_t code[6];
    char buf[8];
    assert_int_equal(ra_cipher_assign(counts, 6, 3, rank, code), RA_OK);
    const int want_rank[6] = { 3, 0, 5, 1, 4, 2 };
    const char *want_code[6] = { "011", "100", "110", "010", "101", "001" };
    for (int t = 0; t < 6; t++) {
        assert_int_equal(rank[t], want_rank[t]);
        assert_string_equal(ra_cipher_string(code[t], 3, buf), want_code[t]);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = { cmocka_unit_test(test_order_b4), cmocka_unit_test(test_levels_and_uniqueness),
                                        cmocka_unit_test(test_assign_by_frequency) };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
