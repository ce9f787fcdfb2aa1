/* test_wbmap.c - the write-back map of a batch (store/wbmap.h): a row reads back what the
 * batch last wrote or read, tables (tags) with equal keys stay apart, dirty rows are
 * written once in LMDB's key order and become clean, a failed write-back stops and keeps
 * the rest dirty, and a clear forgets everything, also after growing past many chunks. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "store/wbmap.h"

static const wb_entry *get(wbmap *m, uint8_t tag, const char *key) { return wbmap_get(m, tag, key, strlen(key)); }

static void set(wbmap *m, uint8_t tag, const char *key, int state, const char *val) {
    wbmap_set(m, tag, key, strlen(key), state, val, val ? strlen(val) : 0);
}

static void test_reads_back_the_last_state(void **state) {
    (void)state;
    wbmap *m = wbmap_new();
    assert_null(get(m, 1, "k"));
    set(m, 1, "k", WB_PRESENT, "v0");
    set(m, 2, "k", WB_ABSENT, NULL); /* same key, other table */
    assert_int_equal(wbmap_dirty(m), 0);

    const wb_entry *e = get(m, 1, "k");
    assert_non_null(e);
    assert_int_equal(e->state, WB_PRESENT);
    assert_memory_equal(e->val, "v0", 2);
    assert_int_equal(get(m, 2, "k")->state, WB_ABSENT);

    set(m, 1, "k", WB_PUT, "a much longer value than the first one, past the minimum room");
    e = get(m, 1, "k");
    assert_int_equal(e->state, WB_PUT);
    assert_int_equal(e->vlen, strlen("a much longer value than the first one, past the minimum room"));
    assert_memory_equal(e->val, "a much longer", 13);
    assert_int_equal(wbmap_dirty(m), 1);
    set(m, 1, "k", WB_DEL, NULL);
    assert_int_equal(get(m, 1, "k")->state, WB_DEL);
    assert_int_equal(get(m, 1, "k")->vlen, 0);
    assert_int_equal(wbmap_dirty(m), 1); /* still one dirty row */
    set(m, 2, "k", WB_PUT, "x");
    assert_int_equal(wbmap_dirty(m), 2);
    wbmap_free(m);
}

typedef struct seen {
    char rows[16][32];
    int n, fail_at;
} seen;

static int record(void *ctx, const wb_entry *e) {
    seen *s = ctx;
    if (s->n == s->fail_at) return -7;
    snprintf(s->rows[s->n++], sizeof s->rows[0], "%u:%.*s:%s", e->tag, (int)e->klen, (const char *)e->key,
             e->state == WB_PUT ? "put" : "del");
    return 0;
}

static void test_flush_in_key_order_then_clean(void **state) {
    (void)state;
    wbmap *m = wbmap_new();
    set(m, 3, "b", WB_PUT, "1");
    set(m, 3, "ab", WB_DEL, NULL);
    set(m, 3, "a", WB_PUT, "2"); /* a prefix sorts first */
    set(m, 1, "z", WB_PUT, "3"); /* a lower table first */
    set(m, 3, "clean", WB_PRESENT, "4");
    set(m, 3, "gone", WB_ABSENT, NULL);
    seen s = {.fail_at = -1};
    assert_int_equal(wbmap_flush(m, record, &s), 0);
    assert_int_equal(s.n, 4);
    assert_string_equal(s.rows[0], "1:z:put");
    assert_string_equal(s.rows[1], "3:a:put");
    assert_string_equal(s.rows[2], "3:ab:del");
    assert_string_equal(s.rows[3], "3:b:put");
    assert_int_equal(wbmap_dirty(m), 0);
    assert_int_equal(get(m, 3, "a")->state, WB_PRESENT);
    assert_memory_equal(get(m, 3, "a")->val, "2", 1);
    assert_int_equal(get(m, 3, "ab")->state, WB_ABSENT);

    seen again = {.fail_at = -1};
    assert_int_equal(wbmap_flush(m, record, &again), 0);
    assert_int_equal(again.n, 0); /* written once */
    wbmap_free(m);
}

static void test_failed_write_back_keeps_the_rest_dirty(void **state) {
    (void)state;
    wbmap *m = wbmap_new();
    set(m, 1, "a", WB_PUT, "1");
    set(m, 1, "b", WB_PUT, "2");
    set(m, 1, "c", WB_DEL, NULL);
    seen s = {.fail_at = 1};
    assert_int_equal(wbmap_flush(m, record, &s), -7);
    assert_int_equal(s.n, 1);
    assert_int_equal(wbmap_dirty(m), 2);
    assert_int_equal(get(m, 1, "a")->state, WB_PRESENT);
    assert_int_equal(get(m, 1, "b")->state, WB_PUT);
    wbmap_free(m);
}

static void test_clear_forgets_after_growth(void **state) {
    (void)state;
    wbmap *m = wbmap_new();
    char key[128], val[64];
    for (int round = 0; round < 3; round++) {
        for (int i = 0; i < 20000; i++) { /* past the first table and many 64 KiB chunks */
            snprintf(key, sizeof key, "%0100d", i);
            snprintf(val, sizeof val, "r%d-v%d", round, i);
            set(m, (uint8_t)(i & 1), key, WB_PUT, val);
        }
        assert_int_equal(wbmap_dirty(m), 20000);
        for (int i = 0; i < 20000; i += 997) {
            snprintf(key, sizeof key, "%0100d", i);
            snprintf(val, sizeof val, "r%d-v%d", round, i);
            const wb_entry *e = get(m, (uint8_t)(i & 1), key);
            assert_non_null(e);
            assert_int_equal(e->vlen, strlen(val));
            assert_memory_equal(e->val, val, e->vlen);
            assert_null(get(m, (uint8_t)!(i & 1), key));
        }
        wbmap_clear(m);
        assert_int_equal(wbmap_dirty(m), 0);
        snprintf(key, sizeof key, "%0100d", 5);
        assert_null(get(m, 1, key));
    }
    wbmap_free(m);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reads_back_the_last_state),
        cmocka_unit_test(test_flush_in_key_order_then_clean),
        cmocka_unit_test(test_failed_write_back_keeps_the_rest_dirty),
        cmocka_unit_test(test_clear_forgets_after_growth),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
