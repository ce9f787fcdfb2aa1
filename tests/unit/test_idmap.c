/* test_idmap.c - the id -> pointer map (src/common/idmap.c) against a plain array as the
 * reference: random puts, replaces and deletes (deletion shifts entries back, so every
 * survivor must stay findable), growth, ids that collide in the low bits, foreach. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "common/idmap.h"

#define N 20000
static char vals[N + 1];
#define V(i) ((void *)&vals[(i)])

static uint64_t rng = 0x2545F4914F6CDD1Dull;
static uint64_t next(void) {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

/* Connection ids as conn.c makes them: (sequence << 6) | worker. */
static uint64_t id_of(size_t i) { return ((uint64_t)(i + 1) << 6) | (i % 3); }

static void test_against_reference(void **state) {
    (void)state;
    idmap *m = idmap_new();
    static int present[N];
    size_t count = 0;
    for (int round = 0; round < 400000; round++) {
        size_t i = next() % N;
        uint64_t id = id_of(i);
        switch (next() % 3) {
        case 0:
        case 1: { /* put (twice as often as delete, so the map fills and grows) */
            void *prev = idmap_put(m, id, V(i));
            assert_ptr_equal(prev, present[i] ? V(i) : NULL);
            if (!present[i]) count++;
            present[i] = 1;
            break;
        }
        default: {
            void *gone = idmap_del(m, id);
            assert_ptr_equal(gone, present[i] ? V(i) : NULL);
            if (present[i]) count--;
            present[i] = 0;
        }
        }
        assert_int_equal(idmap_count(m), count);
        if (round % 50000 == 0) /* every survivor findable, every absent id absent */
            for (size_t k = 0; k < N; k++) assert_ptr_equal(idmap_get(m, id_of(k)), present[k] ? V(k) : NULL);
    }
    for (size_t k = 0; k < N; k++) assert_ptr_equal(idmap_get(m, id_of(k)), present[k] ? V(k) : NULL);
    idmap_free(m);
}

static int count_cb(void *ctx, uint64_t id, void *val) {
    (void)id;
    (void)val;
    return ++*(int *)ctx == 5; /* stop after five */
}

static void test_replace_and_foreach(void **state) {
    (void)state;
    idmap *m = idmap_new();
    assert_null(idmap_get(m, 7));
    assert_null(idmap_get(m, 0)); /* 0 is never an id */
    assert_null(idmap_del(m, 7));
    assert_null(idmap_put(m, 7, V(1)));
    assert_ptr_equal(idmap_put(m, 7, V(2)), V(1));
    assert_int_equal(idmap_count(m), 1);
    assert_ptr_equal(idmap_get(m, 7), V(2));
    for (uint64_t id = 1; id <= 100; id++) idmap_put(m, id << 32, V(id)); /* equal low bits */
    for (uint64_t id = 1; id <= 100; id++) assert_ptr_equal(idmap_get(m, id << 32), V(id));
    int n = 0;
    idmap_foreach(m, count_cb, &n);
    assert_int_equal(n, 5);
    idmap_free(m);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_against_reference),
        cmocka_unit_test(test_replace_and_foreach),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
