/* test_bench_hist.c - the bench's latency histogram: exact small values, bounded relative
 * error for large ones, quantiles, merge. (The bench itself is never asserted in tests;
 * this checks only the arithmetic its percentiles rest on.) */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>

#include "hist.h"

static void test_empty(void **state) {
    (void)state;
    hist *h = malloc(sizeof *h);
    hist_init(h);
    assert_int_equal(hist_quantile(h, 0.5), 0);
    assert_int_equal(h->count, 0);
    free(h);
}

static void test_small_values_exact(void **state) {
    (void)state;
    hist *h = malloc(sizeof *h);
    hist_init(h);
    for (uint64_t v = 1; v <= 20; v++) hist_record(h, v);
    assert_int_equal(hist_quantile(h, 0.5), 10);
    assert_int_equal(hist_quantile(h, 1.0), 20);
    assert_int_equal(hist_quantile(h, 0.05), 1);
    assert_int_equal(h->min, 1);
    assert_int_equal(h->max, 20);
    free(h);
}

static void test_relative_error(void **state) {
    (void)state;
    hist *h = malloc(sizeof *h);
    for (uint64_t v = 33; v < (1ull << 62); v = v * 7 / 3 + 11) {
        hist_init(h);
        hist_record(h, v);
        hist_record(h, v);
        hist_record(h, 1); /* min below, so the midpoint is not clamped to v */
        hist_record(h, UINT64_MAX / 2);
        uint64_t q = hist_quantile(h, 0.5);
        double err = q > v ? (double)(q - v) / (double)v : (double)(v - q) / (double)v;
        assert_true(err <= 1.0 / 32);
    }
    free(h);
}

static void test_quantiles_and_merge(void **state) {
    (void)state;
    hist *a = malloc(sizeof *a), *b = malloc(sizeof *b);
    hist_init(a);
    hist_init(b);
    for (uint64_t i = 1; i <= 1000; i++) hist_record(i % 2 ? a : b, i * 1000000); /* 1..1000 ms */
    hist_merge(a, b);
    assert_int_equal(a->count, 1000);
    assert_int_equal(a->min, 1000000);
    assert_int_equal(a->max, 1000000000);
    uint64_t p50 = hist_quantile(a, 0.5), p99 = hist_quantile(a, 0.99), p999 = hist_quantile(a, 0.999);
    assert_true(p50 >= 500000000 * 0.97 && p50 <= 500000000 * 1.03);
    assert_true(p99 >= 990000000 * 0.97 && p99 <= 990000000 * 1.03);
    assert_true(p999 >= 999000000 * 0.97 && p999 <= 1000000000);
    free(a);
    free(b);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_empty),
        cmocka_unit_test(test_small_values_exact),
        cmocka_unit_test(test_relative_error),
        cmocka_unit_test(test_quantiles_and_merge),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
