/* test_map.c - the open-addressing hash map (src/common/map.c): put/get/del/replace,
 * tombstone reuse and regrowth with many keys, binary keys (NUL bytes, empty key), the
 * u64 helpers, foreach (count and early stop) and map_free's value callback. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>

#include "common/map.h"

/* Distinct non-NULL values without allocating: addresses inside a static array. */
static char vals[100000];
#define V(i) ((void *)&vals[(i)])

static size_t key_of(int i, char *buf) { return (size_t)snprintf(buf, 32, "key-%d", i); }

static void test_put_get_del_replace(void **state) {
    (void)state;
    mp_map *m = map_new();
    assert_int_equal(map_count(m), 0);
    assert_null(map_get(m, "a", 1));
    assert_null(map_del(m, "a", 1));

    assert_null(map_put(m, "a", 1, V(1)));
    assert_null(map_put(m, "b", 1, V(2)));
    assert_int_equal(map_count(m), 2);
    assert_ptr_equal(map_get(m, "a", 1), V(1));
    assert_ptr_equal(map_get(m, "b", 1), V(2));

    /* replace returns the previous value and does not change the count */
    assert_ptr_equal(map_put(m, "a", 1, V(3)), V(1));
    assert_int_equal(map_count(m), 2);
    assert_ptr_equal(map_get(m, "a", 1), V(3));

    /* a prefix / extension of a key is a different key */
    assert_null(map_get(m, "ab", 2));
    assert_null(map_get(m, "", 0));

    assert_ptr_equal(map_del(m, "a", 1), V(3));
    assert_int_equal(map_count(m), 1);
    assert_null(map_get(m, "a", 1));
    assert_null(map_del(m, "a", 1)); /* second delete: absent */
    assert_ptr_equal(map_get(m, "b", 1), V(2));

    /* re-insert after delete (reuses the tombstone path) */
    assert_null(map_put(m, "a", 1, V(4)));
    assert_ptr_equal(map_get(m, "a", 1), V(4));
    assert_int_equal(map_count(m), 2);
    map_free(m, NULL);
}

static void test_key_is_copied(void **state) {
    (void)state;
    mp_map *m = map_new();
    char key[16];
    strcpy(key, "volatile");
    map_put(m, key, strlen(key), V(7));
    memset(key, 'X', sizeof key); /* the caller's buffer changes: the map keeps its copy */
    assert_null(map_get(m, key, 8));
    assert_ptr_equal(map_get(m, "volatile", 8), V(7));
    map_free(m, NULL);
}

static void test_binary_keys(void **state) {
    (void)state;
    mp_map *m = map_new();
    const char k1[] = {'a', 0, 'b'};
    const char k2[] = {'a', 0, 'c'};
    const char k3[] = {'a', 0};
    const char k4[] = {0};
    const char k5[] = {0, 0};
    map_put(m, k1, sizeof k1, V(1));
    map_put(m, k2, sizeof k2, V(2));
    map_put(m, k3, sizeof k3, V(3));
    map_put(m, k4, sizeof k4, V(4));
    map_put(m, k5, sizeof k5, V(5));
    map_put(m, "a", 1, V(6));
    map_put(m, "", 0, V(7)); /* the empty key is a valid key */
    assert_int_equal(map_count(m), 7);
    assert_ptr_equal(map_get(m, k1, sizeof k1), V(1));
    assert_ptr_equal(map_get(m, k2, sizeof k2), V(2));
    assert_ptr_equal(map_get(m, k3, sizeof k3), V(3));
    assert_ptr_equal(map_get(m, k4, sizeof k4), V(4));
    assert_ptr_equal(map_get(m, k5, sizeof k5), V(5));
    assert_ptr_equal(map_get(m, "a", 1), V(6));
    assert_ptr_equal(map_get(m, "", 0), V(7));
    /* strlen-based lookups would collapse these; memcmp with the length must not */
    assert_ptr_equal(map_del(m, k3, sizeof k3), V(3));
    assert_ptr_equal(map_get(m, "a", 1), V(6));
    assert_ptr_equal(map_get(m, k1, sizeof k1), V(1));
    assert_ptr_equal(map_del(m, "", 0), V(7));
    assert_ptr_equal(map_get(m, k4, sizeof k4), V(4));
    assert_int_equal(map_count(m), 5);
    map_free(m, NULL);
}

static void test_many_keys_growth(void **state) {
    (void)state;
    enum { N = 50000 };
    mp_map *m = map_new();
    char k[32];
    for (int i = 0; i < N; i++) assert_null(map_put(m, k, key_of(i, k), V(i)));
    assert_int_equal(map_count(m), N);
    for (int i = 0; i < N; i++) assert_ptr_equal(map_get(m, k, key_of(i, k)), V(i));
    assert_null(map_get(m, k, key_of(N, k)));

    /* delete every odd key: leaves tombstones in probe chains of the even ones */
    for (int i = 1; i < N; i += 2) assert_ptr_equal(map_del(m, k, key_of(i, k)), V(i));
    assert_int_equal(map_count(m), N / 2);
    for (int i = 0; i < N; i++) {
        void *v = map_get(m, k, key_of(i, k));
        if (i % 2) assert_null(v);
        else assert_ptr_equal(v, V(i));
    }
    /* re-insert the odd ones with new values */
    for (int i = 1; i < N; i += 2) assert_null(map_put(m, k, key_of(i, k), V(N - i)));
    assert_int_equal(map_count(m), N);
    for (int i = 0; i < N; i++) assert_ptr_equal(map_get(m, k, key_of(i, k)), (i % 2) ? V(N - i) : V(i));
    map_free(m, NULL);
}

/* Insert/delete churn with a small live set: without tombstone purging the table would fill
 * with tombstones and lookups of absent keys would never find an empty slot (infinite loop). */
static void test_tombstone_churn(void **state) {
    (void)state;
    mp_map *m = map_new();
    char k[32];
    for (int round = 0; round < 20000; round++) {
        size_t n = key_of(round, k);
        assert_null(map_put(m, k, n, V(round % 1000)));
        if (round >= 5) {
            size_t n2 = key_of(round - 5, k);
            assert_ptr_equal(map_del(m, k, n2), V((round - 5) % 1000));
        }
        /* absent-key lookups must terminate */
        assert_null(map_get(m, "absent", 6));
        assert_int_equal(map_count(m), round >= 5 ? 5 : (size_t)round + 1);
    }
    for (int i = 20000 - 5; i < 20000; i++) assert_ptr_equal(map_get(m, k, key_of(i, k)), V(i % 1000));
    map_free(m, NULL);
}

static void test_u64_helpers(void **state) {
    (void)state;
    mp_map *m = map_new();
    const uint64_t keys[] = {0, 1, 255, 256, UINT64_MAX, 1ull << 56, (1ull << 56) | 1, 0x0100000000000000ull + 42};
    for (size_t i = 0; i < MP_ARRAY_LEN(keys); i++) assert_null(map_put_u64(m, keys[i], V(i + 1)));
    assert_int_equal(map_count(m), MP_ARRAY_LEN(keys));
    for (size_t i = 0; i < MP_ARRAY_LEN(keys); i++) assert_ptr_equal(map_get_u64(m, keys[i]), V(i + 1));
    assert_null(map_get_u64(m, 2));
    /* the u64 helpers are byte keys of length 8: the same bytes through map_get agree */
    uint64_t k = 255;
    assert_ptr_equal(map_get(m, &k, sizeof k), V(3));
    assert_ptr_equal(map_put_u64(m, 255, V(99)), V(3));
    assert_ptr_equal(map_del_u64(m, 255), V(99));
    assert_null(map_get_u64(m, 255));
    assert_null(map_del_u64(m, 255));
    for (uint64_t i = 1000; i < 11000; i++) map_put_u64(m, i, V(i));
    for (uint64_t i = 1000; i < 11000; i++) assert_ptr_equal(map_get_u64(m, i), V(i));
    assert_int_equal(map_count(m), MP_ARRAY_LEN(keys) - 1 + 10000);
    map_free(m, NULL);
}

typedef struct visit {
    size_t count;
    uintptr_t sum;
    size_t stop_after;
} visit;

static int count_cb(void *ctx, const void *key, size_t klen, void *val) {
    visit *v = ctx;
    char buf[32];
    int i = (int)((char *)val - vals);
    /* every visited entry is a live one with its own key */
    size_t n = key_of(i, buf);
    assert_int_equal(klen, n);
    assert_memory_equal(key, buf, n);
    v->count++;
    v->sum += (uintptr_t)i;
    return v->stop_after && v->count >= v->stop_after;
}

static void test_foreach(void **state) {
    (void)state;
    mp_map *m = map_new();
    visit v = {0};
    map_foreach(m, count_cb, &v);
    assert_int_equal(v.count, 0);
    char k[32];
    uintptr_t want = 0;
    for (int i = 0; i < 1000; i++) map_put(m, k, key_of(i, k), V(i));
    for (int i = 0; i < 1000; i += 3) map_del(m, k, key_of(i, k)); /* tombstones are skipped */
    size_t live = 0;
    for (int i = 0; i < 1000; i++)
        if (i % 3) {
            want += (uintptr_t)i;
            live++;
        }
    map_foreach(m, count_cb, &v);
    assert_int_equal(v.count, live);
    assert_int_equal(map_count(m), live);
    assert_int_equal(v.sum, want);
    /* nonzero from the callback stops the walk */
    visit s = {0, 0, 10};
    map_foreach(m, count_cb, &s);
    assert_int_equal(s.count, 10);
    map_free(m, NULL);
}

static int g_freed;
static void count_free(void *p) {
    g_freed++;
    free(p);
}

static void test_free_values(void **state) {
    (void)state;
    mp_map *m = map_new();
    char k[32];
    for (int i = 0; i < 100; i++) map_put(m, k, key_of(i, k), mp_malloc(8));
    for (int i = 0; i < 100; i += 2) free(map_del(m, k, key_of(i, k))); /* deleted values are the caller's */
    g_freed = 0;
    map_free(m, count_free); /* called once per live value only */
    assert_int_equal(g_freed, 50);
    map_free(NULL, count_free); /* NULL is fine */
}

static void test_hash(void **state) {
    (void)state;
    /* 0 and 1 are reserved slot markers: the hash never returns them */
    assert_true(mp_hash("", 0) >= 2);
    for (int i = 0; i < 100000; i++) {
        uint64_t h = mp_hash(&i, sizeof i);
        assert_true(h >= 2);
    }
    assert_int_equal(mp_hash("abc", 3), mp_hash("abc", 3));
    assert_true(mp_hash("abc", 3) != mp_hash("abd", 3));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_put_get_del_replace),
        cmocka_unit_test(test_key_is_copied),
        cmocka_unit_test(test_binary_keys),
        cmocka_unit_test(test_many_keys_growth),
        cmocka_unit_test(test_tombstone_churn),
        cmocka_unit_test(test_u64_helpers),
        cmocka_unit_test(test_foreach),
        cmocka_unit_test(test_free_values),
        cmocka_unit_test(test_hash),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
