/* test_ratelimit.c - token buckets (src/net/ratelimit.c): burst, refill rate, the cap, a
 * clock that goes back; the per-IP table: separate buckets per address, IPv4 vs IPv6
 * lengths, rate 0 = off, and a flood of distinct addresses that neither grows memory nor
 * makes a known address lose more than its own tokens. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "net/ratelimit.h"

static void test_bucket(void **state) {
    (void)state;
    rl_bucket b;
    rl_bucket_fill(&b, 1000, 3);
    for (int i = 0; i < 3; i++) assert_int_equal(rl_take(&b, 1000, 10, 3), 1); /* the burst */
    assert_int_equal(rl_take(&b, 1000, 10, 3), 0);
    assert_int_equal(rl_take(&b, 1099, 10, 3), 0); /* 10/s: one token per 100 ms */
    assert_int_equal(rl_take(&b, 1100, 10, 3), 1);
    assert_int_equal(rl_take(&b, 1100, 10, 3), 0);
    assert_int_equal(rl_take(&b, 900, 10, 3), 0);  /* time going back adds nothing */
    /* a long pause refills only up to the burst */
    int n = 0;
    while (rl_take(&b, 100000, 10, 3)) n++;
    assert_int_equal(n, 3);
    /* fractional refill accumulates: 3/s, 334 ms per token */
    rl_bucket_fill(&b, 0, 1);
    assert_int_equal(rl_take(&b, 0, 3, 1), 1);
    assert_int_equal(rl_take(&b, 200, 3, 1), 0);
    assert_int_equal(rl_take(&b, 334, 3, 1), 1);
}

static void test_ip_table(void **state) {
    (void)state;
    const uint8_t a[4] = {10, 0, 0, 1}, b[4] = {10, 0, 0, 2};
    uint8_t v6[16] = {0x20, 0x01, 0x0d, 0xb8};
    memcpy(v6 + 12, a, 4); /* same trailing bytes as a, another address */
    for (int i = 0; i < 2; i++) assert_int_equal(rl_ip_allow(a, 4, 5000, 1, 2), 1);
    assert_int_equal(rl_ip_allow(a, 4, 5000, 1, 2), 0);
    assert_int_equal(rl_ip_allow(b, 4, 5000, 1, 2), 1); /* its own bucket */
    assert_int_equal(rl_ip_allow(v6, 16, 5000, 1, 2), 1);
    assert_int_equal(rl_ip_allow(a, 4, 5000, 0, 0), 1); /* rate 0: off */
    assert_int_equal(rl_ip_allow(a, 0, 5000, 1, 2), 1); /* no address: not limited */
    assert_int_equal(rl_ip_allow(a, 4, 6000, 1, 2), 1); /* refilled */
    assert_int_equal(rl_ip_allow(a, 4, 6000, 1, 2), 0);
    /* A flood of distinct addresses: the table stays fixed, every one is allowed once. */
    for (uint32_t i = 0; i < 200000; i++) {
        uint8_t x[4] = {(uint8_t)(i >> 24) | 0x80, (uint8_t)(i >> 16), (uint8_t)(i >> 8), (uint8_t)i};
        assert_int_equal(rl_ip_allow(x, 4, 6000, 1, 2), 1);
    }
    /* a is either remembered (empty) or forgotten (full): never more than the burst */
    int n = 0;
    while (n < 10 && rl_ip_allow(a, 4, 6000, 1, 2)) n++;
    assert_true(n <= 2);
    rl_ip_free();
    assert_int_equal(rl_ip_allow(a, 4, 6000, 1, 2), 1); /* a fresh table after free */
    rl_ip_free();
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bucket),
        cmocka_unit_test(test_ip_table),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
