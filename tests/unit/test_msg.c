/* test_msg.c - reference-counted messages and person-channel ids (src/core/msg.c):
 * msg_new copies every string (the source may be freed), refcounting across threads,
 * the fake id of spec §5.3 against independently computed CRC32s, and msg_person_peer. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>

#include "core/msg.h"

/* ---- msg_new / refcounting ----------------------------------------------------------- */

static mp_str heap_str(const char *s, size_t n) {
    char *p = mp_malloc(n ? n : 1);
    memcpy(p, s, n);
    return (mp_str){p, (uint32_t)n};
}

static void test_msg_new_copies_strings(void **state) {
    (void)state;
    /* every string on the heap, freed and scribbled over after msg_new: under ASan any
     * view that still points at the source is a use-after-free */
    const char payload_bytes[] = {'p', 0, 'a', 'y', 0, 'l'}; /* binary payload with NULs */
    msg_fields f = {0};
    f.message_id = -1234567890123LL;
    f.seq = 42;
    f.timestamp = 1700000000u;
    f.expire = 3600;
    f.flags = 0x0B;
    f.setting = 0x18;
    f.channel_type = CHANNEL_GROUP;
    f.channel_id = heap_str("group-1", 7);
    f.from_uid = heap_str("alice", 5);
    f.client_msg_no = heap_str("cmn-xyz", 7);
    f.topic = heap_str("topic/a", 7);
    f.payload = heap_str(payload_bytes, sizeof payload_bytes);

    mp_msg *m = msg_new(&f);
    assert_non_null(m);
    assert_int_equal(atomic_load(&m->refs), 1);

    mp_str *srcs[] = {&f.channel_id, &f.from_uid, &f.client_msg_no, &f.topic, &f.payload};
    for (size_t i = 0; i < MP_ARRAY_LEN(srcs); i++) {
        memset((char *)srcs[i]->p, '#', srcs[i]->len);
        free((char *)srcs[i]->p);
    }

    assert_int_equal(m->f.message_id, -1234567890123LL);
    assert_int_equal(m->f.seq, 42);
    assert_int_equal(m->f.timestamp, 1700000000u);
    assert_int_equal(m->f.expire, 3600);
    assert_int_equal(m->f.flags, 0x0B);
    assert_int_equal(m->f.setting, 0x18);
    assert_int_equal(m->f.channel_type, CHANNEL_GROUP);
    assert_true(mp_str_eq_c(m->f.channel_id, "group-1"));
    assert_true(mp_str_eq_c(m->f.from_uid, "alice"));
    assert_true(mp_str_eq_c(m->f.client_msg_no, "cmn-xyz"));
    assert_true(mp_str_eq_c(m->f.topic, "topic/a"));
    assert_int_equal(m->f.payload.len, sizeof payload_bytes);
    assert_memory_equal(m->f.payload.p, payload_bytes, sizeof payload_bytes);

    /* the views point into the message's own allocation */
    const char *lo = m->data, *hi = m->data + 7 + 5 + 7 + 7 + sizeof payload_bytes;
    mp_str *own[] = {&m->f.channel_id, &m->f.from_uid, &m->f.client_msg_no, &m->f.topic, &m->f.payload};
    for (size_t i = 0; i < MP_ARRAY_LEN(own); i++) {
        assert_true(own[i]->p >= lo);
        assert_true(own[i]->p + own[i]->len <= hi);
    }
    msg_unref(m);
}

static void test_msg_new_empty_strings(void **state) {
    (void)state;
    msg_fields f = {0};
    f.channel_type = CHANNEL_PERSON;
    f.channel_id = MP_STR("a@b");
    f.from_uid = MP_STR("a");
    /* client_msg_no, topic, payload empty (p may be NULL) */
    mp_msg *m = msg_new(&f);
    assert_true(mp_str_eq_c(m->f.channel_id, "a@b"));
    assert_true(mp_str_eq_c(m->f.from_uid, "a"));
    assert_int_equal(m->f.client_msg_no.len, 0);
    assert_int_equal(m->f.topic.len, 0);
    assert_int_equal(m->f.payload.len, 0);
    msg_unref(m);
    msg_unref(NULL); /* NULL is a no-op */
}

static void test_msg_refcount(void **state) {
    (void)state;
    msg_fields f = {0};
    f.channel_id = MP_STR("c");
    f.from_uid = MP_STR("u");
    f.payload = MP_STR("hello");
    mp_msg *m = msg_new(&f);
    assert_ptr_equal(msg_ref(m), m);
    assert_ptr_equal(msg_ref(m), m);
    assert_int_equal(atomic_load(&m->refs), 3);
    msg_unref(m);
    msg_unref(m);
    assert_int_equal(atomic_load(&m->refs), 1);
    assert_true(mp_str_eq_c(m->f.payload, "hello")); /* still alive */
    msg_unref(m); /* freed here: ASan/LSan would flag a double free or a leak */
}

enum { THREADS = 4, REFS_PER_THREAD = 20000 };

static atomic_int g_bad_reads;

static void *unref_many(void *arg) {
    mp_msg *m = arg;
    for (int i = 0; i < REFS_PER_THREAD; i++) {
        /* readable while we hold a reference (no cmocka asserts off the test thread) */
        if (!mp_str_eq_c(m->f.payload, "hello")) atomic_fetch_add(&g_bad_reads, 1);
        msg_unref(m);
    }
    return NULL;
}

/* References taken on one thread and dropped concurrently on others (the fan-out pattern):
 * exactly one free, no use after free (ASan), no leak (LSan). */
static void test_msg_refcount_threads(void **state) {
    (void)state;
    msg_fields f = {0};
    f.channel_id = MP_STR("c");
    f.from_uid = MP_STR("u");
    f.payload = MP_STR("hello");
    mp_msg *m = msg_new(&f);
    for (int i = 0; i < THREADS * REFS_PER_THREAD; i++) msg_ref(m);
    assert_int_equal(atomic_load(&m->refs), THREADS * REFS_PER_THREAD + 1);
    pthread_t t[THREADS];
    for (int i = 0; i < THREADS; i++) pthread_create(&t[i], NULL, unref_many, m);
    for (int i = 0; i < THREADS; i++) pthread_join(t[i], NULL);
    assert_int_equal(atomic_load(&g_bad_reads), 0);
    assert_int_equal(atomic_load(&m->refs), 1);
    msg_unref(m);
}

/* ---- person fake id (spec §5.3) ------------------------------------------------------ */

/* Expected values computed independently with Python's zlib.crc32 (CRC-32/IEEE):
 *   python3 -c "import zlib; print(hex(zlib.crc32(b'u1')))"   etc.
 *   crc('u1')     = 0x424f9f76   crc('u2')     = 0xdb46cecc  -> "u2@u1"
 *   crc('alice')  = 0x278ebc47   crc('bob')    = 0xf5cbb140  -> "bob@alice"
 *   crc('a')      = 0xe8b7be43   crc('b')      = 0x71beeff9  -> "a@b"
 *   crc('user10') = 0xef562bdf   crc('user2')  = 0x1558d4ef  -> "user10@user2"
 *   crc('tom')    = 0x7ddf7313   crc('jerry')  = 0x7afdf112  -> "tom@jerry"
 * The larger CRC goes first (compared as unsigned 32-bit), whatever the argument order. */
typedef struct fake_case {
    const char *a, *b, *want;
} fake_case;

static const fake_case fake_cases[] = {
    {"u1", "u2", "u2@u1"},
    {"alice", "bob", "bob@alice"},
    {"a", "b", "a@b"},
    {"user10", "user2", "user10@user2"},
    {"tom", "jerry", "tom@jerry"},
};

static mp_str fake_of(const char *a, const char *b, char *out) {
    mp_str sa = mp_str_c(a), sb = mp_str_c(b);
    uint32_t n = msg_person_fake_id(sa, sb, out);
    assert_int_equal(n, sa.len + sb.len + 1);
    return (mp_str){out, n};
}

static void test_fake_id_known_crcs(void **state) {
    (void)state;
    for (size_t i = 0; i < MP_ARRAY_LEN(fake_cases); i++) {
        const fake_case *c = &fake_cases[i];
        char out[64];
        mp_str got = fake_of(c->a, c->b, out);
        if (!mp_str_eq_c(got, c->want)) fail_msg("fake(%s,%s) = %.*s, want %s", c->a, c->b, (int)got.len, got.p, c->want);
        got = fake_of(c->b, c->a, out); /* symmetric */
        if (!mp_str_eq_c(got, c->want)) fail_msg("fake(%s,%s) = %.*s, want %s", c->b, c->a, (int)got.len, got.p, c->want);
    }
}

static void test_fake_id_self_chat(void **state) {
    (void)state;
    char out[64];
    assert_true(mp_str_eq_c(fake_of("a", "a", out), "a@a"));
    assert_true(mp_str_eq_c(fake_of("alice", "alice", out), "alice@alice"));
}

static void test_fake_id_crc_tie(void **state) {
    (void)state;
    /* crc('plumless') == crc('buckeroo') == 0x4ddb0c25 (zlib.crc32): a tie. The header
     * documents "on a tie b goes first" (spec §5.3: the second argument goes first). */
    char out[64];
    assert_true(mp_str_eq_c(fake_of("plumless", "buckeroo", out), "buckeroo@plumless"));
    assert_true(mp_str_eq_c(fake_of("buckeroo", "plumless", out), "plumless@buckeroo"));
}

static void test_fake_id_no_overrun(void **state) {
    (void)state;
    /* out needs exactly a.len + b.len + 1 bytes: an exact-size heap buffer catches overruns */
    const char *a = "user10", *b = "user2";
    size_t need = strlen(a) + strlen(b) + 1;
    char *out = mp_malloc(need);
    uint32_t n = msg_person_fake_id(mp_str_c(a), mp_str_c(b), out);
    assert_int_equal(n, need);
    assert_memory_equal(out, "user10@user2", need);
    free(out);
}

static void test_person_peer(void **state) {
    (void)state;
    for (size_t i = 0; i < MP_ARRAY_LEN(fake_cases); i++) {
        const fake_case *c = &fake_cases[i];
        char out[64];
        mp_str id = fake_of(c->a, c->b, out);
        mp_str pa = msg_person_peer(id, mp_str_c(c->a));
        mp_str pb = msg_person_peer(id, mp_str_c(c->b));
        if (!mp_str_eq_c(pa, c->b)) fail_msg("peer(%s, %s) = %.*s", c->want, c->a, (int)pa.len, pa.p);
        if (!mp_str_eq_c(pb, c->a)) fail_msg("peer(%s, %s) = %.*s", c->want, c->b, (int)pb.len, pb.p);
    }
    char out[64];
    /* self chat: the peer of a@a is a */
    assert_true(mp_str_eq_c(msg_person_peer(fake_of("a", "a", out), MP_STR("a")), "a"));
    /* the peer is a view into the fake id, not a copy */
    mp_str id = MP_STR("bob@alice");
    mp_str p = msg_person_peer(id, MP_STR("bob"));
    assert_ptr_equal(p.p, id.p + 4);
    assert_true(mp_str_eq_c(p, "alice"));
    p = msg_person_peer(id, MP_STR("alice"));
    assert_ptr_equal(p.p, id.p);
    assert_true(mp_str_eq_c(p, "bob"));
    /* uids that are prefixes of each other */
    assert_true(mp_str_eq_c(msg_person_peer(MP_STR("ab@a"), MP_STR("a")), "ab"));
    assert_true(mp_str_eq_c(msg_person_peer(MP_STR("ab@a"), MP_STR("ab")), "a"));
    /* system uid as sender */
    assert_true(mp_str_eq_c(msg_person_peer(MP_STR("u1@" MP_SYSTEM_UID), MP_STR(MP_SYSTEM_UID)), "u1"));
    /* not a fake id: returned unchanged */
    assert_true(mp_str_eq_c(msg_person_peer(MP_STR("plain"), MP_STR("x")), "plain"));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_msg_new_copies_strings),
        cmocka_unit_test(test_msg_new_empty_strings),
        cmocka_unit_test(test_msg_refcount),
        cmocka_unit_test(test_msg_refcount_threads),
        cmocka_unit_test(test_fake_id_known_crcs),
        cmocka_unit_test(test_fake_id_self_chat),
        cmocka_unit_test(test_fake_id_crc_tie),
        cmocka_unit_test(test_fake_id_no_overrun),
        cmocka_unit_test(test_person_peer),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
