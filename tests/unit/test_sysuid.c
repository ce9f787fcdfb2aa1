/* test_sysuid.c - the system account set (src/core/sysuid.c): the built-in uid always
 * counts, add/remove (repeats, unknown uids, prefixes), loading from the store (which
 * replaces what was there), and readers on other threads while a writer changes the set. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <ftw.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>

#include "core/msg.h"
#include "core/sysuid.h"
#include "store/store.h"

#define S(lit) MP_STR(lit)

static void test_builtin_and_add_remove(void **state) {
    (void)state;
    sysuid_free();
    assert_true(sysuid_is(S(MP_SYSTEM_UID)));
    assert_false(sysuid_is(S("bot")));
    assert_false(sysuid_is(S("")));

    mp_str two[] = {S("bot"), S("admin")};
    sysuid_add(two, 2);
    sysuid_add(two, 1); /* a repeat keeps one entry */
    assert_true(sysuid_is(S("bot")));
    assert_true(sysuid_is(S("admin")));
    assert_false(sysuid_is(S("bo")));   /* a prefix is another uid */
    assert_false(sysuid_is(S("bots")));

    mp_str gone[] = {S("bot"), S("never-added")};
    sysuid_remove(gone, 2);
    assert_false(sysuid_is(S("bot")));
    assert_true(sysuid_is(S("admin")));
    sysuid_remove(&two[1], 1);
    assert_false(sysuid_is(S("admin")));
    assert_true(sysuid_is(S(MP_SYSTEM_UID))); /* the built-in uid cannot be removed */
    sysuid_free();
}

/* ---- loading from the store ------------------------------------------------------------ */

typedef struct waiter {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int done, status;
} waiter;

static void on_done(void *arg, int status) {
    waiter *w = arg;
    pthread_mutex_lock(&w->mu);
    w->done = 1;
    w->status = status;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

static int write_uids(store_wtxn *t, void *arg) {
    (void)arg;
    int rc = store_txn_set_sysuid(t, S("stored-1"), 1);
    if (rc == MP_OK) rc = store_txn_set_sysuid(t, S("stored-2"), 1);
    if (rc == MP_OK) rc = store_txn_set_sysuid(t, S("stored-2"), 0);
    if (rc == MP_OK) rc = store_txn_set_sysuid(t, S("stored-3"), 1);
    return rc;
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static void test_load_from_store(void **state) {
    (void)state;
    char root[] = "/tmp/magpie-sysuid-XXXXXX";
    assert_non_null(mkdtemp(root));
    store_options o = {.dir = root};
    store *s = NULL;
    assert_int_equal(store_open(&o, &s), MP_OK);

    assert_int_equal(sysuid_load(s), MP_OK); /* an empty store: only the built-in uid */
    assert_false(sysuid_is(S("stored-1")));

    waiter w = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0};
    assert_int_equal(store_submit(s, write_uids, on_done, &w), MP_OK);
    pthread_mutex_lock(&w.mu);
    while (!w.done) pthread_cond_wait(&w.cv, &w.mu);
    pthread_mutex_unlock(&w.mu);
    assert_int_equal(w.status, MP_OK);

    mp_str cached = S("cache-only");
    sysuid_add(&cached, 1);
    assert_int_equal(sysuid_load(s), MP_OK);
    assert_true(sysuid_is(S("stored-1")));
    assert_false(sysuid_is(S("stored-2"))); /* removed in the store */
    assert_true(sysuid_is(S("stored-3")));
    assert_false(sysuid_is(cached)); /* loading replaces the set */

    sysuid_free();
    assert_false(sysuid_is(S("stored-1")));
    store_close(s);
    nftw(root, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* ---- threads ------------------------------------------------------------------------------ */

static atomic_int g_stop;

static void *reader(void *arg) {
    (void)arg;
    long hits = 0;
    while (!atomic_load(&g_stop)) {
        if (!sysuid_is(S("steady"))) return (void *)-1L; /* never removed: always visible */
        hits += sysuid_is(S("flapping"));
    }
    return (void *)hits;
}

static void test_concurrent_readers(void **state) {
    (void)state;
    mp_str steady = S("steady"), flapping = S("flapping");
    sysuid_add(&steady, 1);
    pthread_t t[3];
    for (int i = 0; i < 3; i++) assert_int_equal(pthread_create(&t[i], NULL, reader, NULL), 0);
    char name[32];
    for (int i = 0; i < 20000; i++) {
        if (i % 2) sysuid_remove(&flapping, 1);
        else sysuid_add(&flapping, 1);
        snprintf(name, sizeof name, "churn-%d", i % 500); /* growth and tombstones */
        mp_str c = mp_str_c(name);
        if (i % 3) sysuid_add(&c, 1);
        else sysuid_remove(&c, 1);
    }
    atomic_store(&g_stop, 1);
    for (int i = 0; i < 3; i++) {
        void *r;
        pthread_join(t[i], &r);
        assert_true((long)r >= 0);
    }
    assert_true(sysuid_is(steady));
    sysuid_free();
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_builtin_and_add_remove),
        cmocka_unit_test(test_load_from_store),
        cmocka_unit_test(test_concurrent_readers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
