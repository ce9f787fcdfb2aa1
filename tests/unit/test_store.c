/* test_store.c - the LMDB store: records, indexes, scans, sets, conversations, and the
 * group-commit writer (nested-txn isolation, done-after-commit, batching, concurrency,
 * close drain, reopen, map growth, interval sync). Every test uses a fresh temp dir.
 * Assertions run on the test thread only: writer-thread callbacks just record. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <ftw.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"
#include "store/store.h"

/* ---- fixture --------------------------------------------------------------------- */

typedef struct fx {
    char root[64];
    char dir[128];
    store *s;
} fx;

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static store *open_at(const char *dir, int sync_mode, uint64_t map_size) {
    store_options o = {.dir = dir, .sync_mode = sync_mode, .sync_interval_ms = 20, .map_size = map_size};
    store *s = NULL;
    assert_int_equal(store_open(&o, &s), MP_OK);
    assert_non_null(s);
    return s;
}

static int fx_setup(void **state) {
    fx *f = calloc(1, sizeof *f);
    strcpy(f->root, "/tmp/magpie-store-XXXXXX");
    if (!mkdtemp(f->root)) return -1;
    snprintf(f->dir, sizeof f->dir, "%s/data/lmdb", f->root); /* exercises mkdir -p */
    f->s = open_at(f->dir, STORE_SYNC_ALWAYS, 0);
    *state = f;
    return 0;
}

static int fx_teardown(void **state) {
    fx *f = *state;
    if (f->s) store_close(f->s);
    nftw(f->root, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    free(f);
    return 0;
}

static void reopen(fx *f, int sync_mode, uint64_t map_size) {
    store_close(f->s);
    f->s = open_at(f->dir, sync_mode, map_size);
}

/* ---- synchronous op runner ---------------------------------------------------------- */

typedef struct call {
    store_write_fn fn;
    void *arg;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int fired;
    int status;
} call;

static int call_fn(store_wtxn *t, void *a) {
    call *c = a;
    return c->fn(t, c->arg);
}

static void call_done(void *a, int status) {
    call *c = a;
    pthread_mutex_lock(&c->mu);
    c->status = status;
    c->fired = 1;
    pthread_cond_signal(&c->cv);
    pthread_mutex_unlock(&c->mu);
}

static void call_wait(call *c) {
    pthread_mutex_lock(&c->mu);
    while (!c->fired) pthread_cond_wait(&c->cv, &c->mu);
    pthread_mutex_unlock(&c->mu);
}

/* Submit fn(arg) and wait for its done; returns the op status. */
static int run(store *s, store_write_fn fn, void *arg) {
    call c = {.fn = fn, .arg = arg, .mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};
    assert_int_equal(store_submit(s, fn ? call_fn : NULL, call_done, &c), MP_OK);
    call_wait(&c);
    return c.status;
}

/* ---- write helpers ----------------------------------------------------------------- */

static msg_fields mkmsg(uint8_t type, const char *id, uint64_t seq, int64_t mid, const char *cmn, const char *payload) {
    msg_fields f;
    memset(&f, 0, sizeof f);
    f.message_id = mid;
    f.seq = seq;
    f.timestamp = 1700000000u + (uint32_t)seq;
    f.expire = 0;
    f.flags = 0x02;
    f.setting = 0x10;
    f.channel_type = type;
    f.channel_id = mp_str_c(id);
    f.from_uid = MP_STR("sender");
    f.client_msg_no = mp_str_c(cmn ? cmn : "");
    f.topic = MP_STR("");
    f.payload = mp_str_c(payload ? payload : "hello");
    return f;
}

static int fn_append(store_wtxn *t, void *a) { return store_txn_append_message(t, a); }

static int append(store *s, uint8_t type, const char *id, uint64_t seq, int64_t mid, const char *cmn,
                  const char *payload) {
    msg_fields f = mkmsg(type, id, seq, mid, cmn, payload);
    return run(s, fn_append, &f);
}

static void append_range(store *s, uint8_t type, const char *id, uint64_t from, uint64_t to) {
    for (uint64_t q = from; q <= to; q++) assert_int_equal(append(s, type, id, q, (int64_t)(type * 1000000 + q), NULL, NULL), MP_OK);
}

typedef struct set_arg {
    int set;
    uint8_t type;
    const char *id;
    const char *uid; /* NULL: clear */
    int present;
} set_arg;

static int fn_set(store_wtxn *t, void *a) {
    set_arg *x = a;
    if (!x->uid) return store_txn_clear_set(t, x->set, x->type, mp_str_c(x->id));
    return store_txn_set_member(t, x->set, x->type, mp_str_c(x->id), mp_str_c(x->uid), x->present);
}

static int set_member(store *s, int set, uint8_t type, const char *id, const char *uid, int present) {
    set_arg x = {set, type, id, uid, present};
    return run(s, fn_set, &x);
}

typedef struct info_arg {
    uint8_t type;
    const char *id;
    store_channel_info info;
} info_arg;

static int fn_info(store_wtxn *t, void *a) {
    info_arg *x = a;
    return store_txn_put_channel_info(t, x->type, mp_str_c(x->id), &x->info);
}

typedef struct conv_arg {
    const char *uid;
    uint8_t type;
    const char *id;
    store_conv c;
    int del;
} conv_arg;

static int fn_conv(store_wtxn *t, void *a) {
    conv_arg *x = a;
    if (x->del) return store_txn_del_conv(t, mp_str_c(x->uid), x->type, mp_str_c(x->id));
    return store_txn_put_conv(t, mp_str_c(x->uid), x->type, mp_str_c(x->id), &x->c);
}

static int put_conv(store *s, const char *uid, uint8_t type, const char *id, uint64_t readed) {
    conv_arg x = {uid, type, id, {0, readed, 0, 111, 222}, 0};
    return run(s, fn_conv, &x);
}

typedef struct sys_arg {
    const char *uid;
    int present;
} sys_arg;

static int fn_sys(store_wtxn *t, void *a) {
    sys_arg *x = a;
    return store_txn_set_sysuid(t, mp_str_c(x->uid), x->present);
}

/* ---- read helpers -------------------------------------------------------------------- */

static store_rtxn *rbegin(store *s) {
    store_rtxn *r = NULL;
    assert_int_equal(store_rtxn_begin(s, &r), MP_OK);
    return r;
}

typedef struct seqs {
    uint64_t v[4096];
    size_t n;
    size_t stop_after; /* 0: never */
    int bad;           /* a record did not match its own seq/channel */
    const char *want_id;
} seqs;

static int collect_seq(void *ctx, const msg_fields *m) {
    seqs *c = ctx;
    if (c->want_id && !mp_str_eq_c(m->channel_id, c->want_id)) c->bad = 1;
    if (c->n < MP_ARRAY_LEN(c->v)) c->v[c->n] = m->seq;
    c->n++;
    return c->stop_after && c->n >= c->stop_after;
}

static void scan(store *s, uint8_t type, const char *id, uint64_t lo, uint64_t hi, int rev, size_t limit, seqs *out) {
    memset(out, 0, sizeof *out);
    out->want_id = id;
    store_rtxn *r = rbegin(s);
    assert_int_equal(store_scan_messages(r, type, mp_str_c(id), lo, hi, rev, limit, collect_seq, out), MP_OK);
    store_rtxn_end(r);
    assert_false(out->bad);
}

static void expect_seqs(const seqs *c, uint64_t first, uint64_t count, int step) {
    assert_int_equal(c->n, count);
    for (uint64_t i = 0; i < count; i++) assert_int_equal(c->v[i], (uint64_t)((int64_t)first + step * (int64_t)i));
}

typedef struct uids {
    char v[64][32];
    size_t n;
} uids;

static int collect_uid(void *ctx, mp_str uid) {
    uids *u = ctx;
    if (u->n < 64) snprintf(u->v[u->n], sizeof u->v[0], "%.*s", (int)uid.len, uid.p);
    u->n++;
    return 0;
}

static uint64_t last_seq(store *s, uint8_t type, const char *id) {
    store_rtxn *r = rbegin(s);
    uint64_t q = 99;
    assert_int_equal(store_get_last_seq(r, type, mp_str_c(id), &q), MP_OK);
    store_rtxn_end(r);
    return q;
}

static uint64_t set_count(store *s, int set, uint8_t type, const char *id) {
    store_rtxn *r = rbegin(s);
    uint64_t n = 99;
    assert_int_equal(store_set_count(r, set, type, mp_str_c(id), &n), MP_OK);
    store_rtxn_end(r);
    return n;
}

static int contains(store *s, int set, uint8_t type, const char *id, const char *uid) {
    store_rtxn *r = rbegin(s);
    int v = store_set_contains(r, set, type, mp_str_c(id), mp_str_c(uid));
    store_rtxn_end(r);
    return v;
}

/* ---- codec ----------------------------------------------------------------------- */

static void roundtrip(const msg_fields *f) {
    size_t n = store_msg_encoded_size(f);
    uint8_t *buf = malloc(n + 1);
    store_msg_encode(f, buf);
    msg_fields g;
    assert_int_equal(store_msg_decode(buf, n, &g), MP_OK);
    assert_true(g.message_id == f->message_id);
    assert_int_equal(g.seq, f->seq);
    assert_int_equal(g.timestamp, f->timestamp);
    assert_int_equal(g.expire, f->expire);
    assert_int_equal(g.flags, f->flags);
    assert_int_equal(g.setting, f->setting);
    assert_int_equal(g.channel_type, f->channel_type);
    assert_true(mp_str_eq(g.channel_id, f->channel_id));
    assert_true(mp_str_eq(g.from_uid, f->from_uid));
    assert_true(mp_str_eq(g.client_msg_no, f->client_msg_no));
    assert_true(mp_str_eq(g.topic, f->topic));
    assert_true(mp_str_eq(g.payload, f->payload));
    /* truncations and trailing garbage are refused, never read past the end (each length is
     * copied to an exact-size allocation so ASan sees over-reads); every length for small
     * records, the start and the end of big ones */
    for (size_t i = 0; i < n; i = (n > 4096 && i == 2048) ? n - 2048 : i + 1) {
        uint8_t *t = malloc(i ? i : 1);
        memcpy(t, buf, i);
        assert_int_equal(store_msg_decode(t, i, &g), MP_EPROTO);
        free(t);
    }
    buf[n] = 0;
    assert_int_equal(store_msg_decode(buf, n + 1, &g), MP_EPROTO);
    buf[0] = 99;
    assert_int_equal(store_msg_decode(buf, n, &g), MP_EPROTO);
    free(buf);
}

static void test_codec(void **state) {
    (void)state;
    msg_fields empty;
    memset(&empty, 0, sizeof empty);
    roundtrip(&empty);

    msg_fields f = mkmsg(CHANNEL_GROUP, "g1", 42, -123456789012345LL, "cmn-1", "payload");
    f.expire = 0xffffffffu;
    f.topic = MP_STR("news");
    roundtrip(&f);

    size_t big = 200000;
    char *p = malloc(big);
    for (size_t i = 0; i < big; i++) p[i] = (char)(i * 7);
    f.payload = (mp_str){p, (uint32_t)big};
    f.topic = (mp_str){p, 300};        /* two-byte length */
    f.from_uid = (mp_str){p, 127};     /* largest one-byte length */
    f.client_msg_no = (mp_str){p, 128}; /* smallest two-byte length */
    f.channel_id = (mp_str){p, 20000};
    f.message_id = INT64_MAX;
    f.seq = UINT64_MAX;
    roundtrip(&f);
    free(p);

    assert_int_equal(store_msg_decode(NULL, 0, &f), MP_EPROTO);
}

/* ---- messages ---------------------------------------------------------------------- */

static void test_append_get_scan(void **state) {
    fx *x = *state;
    store *s = x->s;
    append_range(s, CHANNEL_GROUP, "g1", 1, 20);
    append_range(s, CHANNEL_GROUP, "g10", 1, 5);
    append_range(s, CHANNEL_GROUP, "g", 1, 3);
    append_range(s, CHANNEL_PERSON, "g1", 1, 2);

    store_rtxn *r = rbegin(s);
    msg_fields m;
    assert_int_equal(store_get_message(r, CHANNEL_GROUP, MP_STR("g1"), 7, &m), MP_OK);
    assert_int_equal(m.seq, 7);
    assert_int_equal(m.channel_type, CHANNEL_GROUP);
    assert_true(mp_str_eq_c(m.channel_id, "g1"));
    assert_true(mp_str_eq_c(m.from_uid, "sender"));
    assert_true(mp_str_eq_c(m.payload, "hello"));
    assert_int_equal(m.timestamp, 1700000007u);
    assert_int_equal(m.flags, 0x02);
    assert_int_equal(m.setting, 0x10);
    assert_int_equal(store_get_message(r, CHANNEL_GROUP, MP_STR("g1"), 21, &m), MP_ENOTFOUND);
    assert_int_equal(store_get_message(r, CHANNEL_GROUP, MP_STR("g1"), 0, &m), MP_ENOTFOUND);
    assert_int_equal(store_get_message(r, CHANNEL_GROUP, MP_STR("nope"), 1, &m), MP_ENOTFOUND);
    store_rtxn_end(r);

    seqs c;
    scan(s, CHANNEL_GROUP, "g1", 0, UINT64_MAX, 0, 0, &c);
    expect_seqs(&c, 1, 20, 1);
    scan(s, CHANNEL_GROUP, "g1", 5, 9, 0, 0, &c);
    expect_seqs(&c, 5, 5, 1);
    scan(s, CHANNEL_GROUP, "g1", 0, UINT64_MAX, 1, 0, &c);
    expect_seqs(&c, 20, 20, -1);
    scan(s, CHANNEL_GROUP, "g1", 5, 9, 1, 0, &c);
    expect_seqs(&c, 9, 5, -1);
    scan(s, CHANNEL_GROUP, "g1", 1, 100, 1, 0, &c); /* hi past the end */
    expect_seqs(&c, 20, 20, -1);
    scan(s, CHANNEL_GROUP, "g1", 4, UINT64_MAX, 0, 3, &c);
    expect_seqs(&c, 4, 3, 1);
    scan(s, CHANNEL_GROUP, "g1", 0, UINT64_MAX, 1, 3, &c);
    expect_seqs(&c, 20, 3, -1);
    scan(s, CHANNEL_GROUP, "g1", 7, 7, 0, 0, &c);
    expect_seqs(&c, 7, 1, 1);
    scan(s, CHANNEL_GROUP, "g1", 7, 7, 1, 0, &c);
    expect_seqs(&c, 7, 1, 1);
    scan(s, CHANNEL_GROUP, "g1", 9, 5, 0, 0, &c); /* lo > hi */
    assert_int_equal(c.n, 0);
    scan(s, CHANNEL_GROUP, "g1", 21, UINT64_MAX, 0, 0, &c);
    assert_int_equal(c.n, 0);
    scan(s, CHANNEL_GROUP, "g1", 0, 0, 1, 0, &c);
    assert_int_equal(c.n, 0);
    scan(s, CHANNEL_GROUP, "empty", 0, UINT64_MAX, 0, 0, &c);
    assert_int_equal(c.n, 0);
    scan(s, CHANNEL_GROUP, "empty", 0, UINT64_MAX, 1, 0, &c);
    assert_int_equal(c.n, 0);

    /* early stop from the callback */
    memset(&c, 0, sizeof c);
    c.stop_after = 2;
    r = rbegin(s);
    assert_int_equal(store_scan_messages(r, CHANNEL_GROUP, MP_STR("g1"), 10, UINT64_MAX, 0, 0, collect_seq, &c), MP_OK);
    expect_seqs(&c, 10, 2, 1);
    memset(&c, 0, sizeof c);
    c.stop_after = 2;
    assert_int_equal(store_scan_messages(r, CHANNEL_GROUP, MP_STR("g1"), 0, 10, 1, 0, collect_seq, &c), MP_OK);
    expect_seqs(&c, 10, 2, -1);
    store_rtxn_end(r);

    /* neighbours with a common prefix or another type stay separate */
    scan(s, CHANNEL_GROUP, "g10", 0, UINT64_MAX, 0, 0, &c);
    expect_seqs(&c, 1, 5, 1);
    scan(s, CHANNEL_GROUP, "g10", 0, UINT64_MAX, 1, 0, &c);
    expect_seqs(&c, 5, 5, -1);
    scan(s, CHANNEL_GROUP, "g", 0, UINT64_MAX, 1, 0, &c);
    expect_seqs(&c, 3, 3, -1);
    scan(s, CHANNEL_PERSON, "g1", 0, UINT64_MAX, 0, 0, &c);
    expect_seqs(&c, 1, 2, 1);
}

static void test_seq_contiguity(void **state) {
    fx *x = *state;
    store *s = x->s;
    assert_int_equal(last_seq(s, CHANNEL_GROUP, "g"), 0);
    assert_int_equal(append(s, CHANNEL_GROUP, "g", 2, 1, "c2", NULL), MP_EINVAL);
    assert_int_equal(append(s, CHANNEL_GROUP, "g", 0, 1, "c0", NULL), MP_EINVAL);
    assert_int_equal(append(s, CHANNEL_GROUP, "g", 1, 1, "c1", NULL), MP_OK);
    assert_int_equal(append(s, CHANNEL_GROUP, "g", 1, 2, "c1b", NULL), MP_EINVAL);
    assert_int_equal(append(s, CHANNEL_GROUP, "g", 3, 3, "c3", NULL), MP_EINVAL);
    assert_int_equal(last_seq(s, CHANNEL_GROUP, "g"), 1);

    store_rtxn *r = rbegin(s);
    msg_fields m;
    assert_int_equal(store_get_message(r, CHANNEL_GROUP, MP_STR("g"), 3, &m), MP_ENOTFOUND);
    assert_int_equal(store_get_message_by_id(r, 3, &m), MP_ENOTFOUND);
    assert_int_equal(store_get_message_by_client_msg_no(r, CHANNEL_GROUP, MP_STR("g"), MP_STR("c3"), &m), MP_ENOTFOUND);
    assert_int_equal(store_get_message_by_client_msg_no(r, CHANNEL_GROUP, MP_STR("g"), MP_STR("c1b"), &m), MP_ENOTFOUND);
    assert_int_equal(store_get_message_by_id(r, 1, &m), MP_OK);
    assert_int_equal(m.seq, 1);
    store_rtxn_end(r);

    assert_int_equal(append(s, CHANNEL_GROUP, "g", 2, 2, NULL, NULL), MP_OK);
    assert_int_equal(last_seq(s, CHANNEL_GROUP, "g"), 2);
    assert_int_equal(last_seq(s, CHANNEL_GROUP, "other"), 0);
}

typedef struct lastseq_arg {
    uint64_t seen;
    int rc;
} lastseq_arg;

static int fn_read_last(store_wtxn *t, void *a) {
    lastseq_arg *x = a;
    x->rc = store_txn_get_last_seq(t, CHANNEL_GROUP, MP_STR("g"), &x->seen);
    return MP_OK;
}

static void test_last_seq_in_txn(void **state) {
    fx *x = *state;
    lastseq_arg a = {99, -1};
    assert_int_equal(run(x->s, fn_read_last, &a), MP_OK);
    assert_int_equal(a.rc, MP_OK);
    assert_int_equal(a.seen, 0);
    append_range(x->s, CHANNEL_GROUP, "g", 1, 4);
    assert_int_equal(run(x->s, fn_read_last, &a), MP_OK);
    assert_int_equal(a.seen, 4);
}

/* The msg_id index is appended at its end while ids grow and takes a plain insert for an
 * id below the newest: every id must be found either way, across many leaves. */
static void test_msgid_order(void **state) {
    fx *x = *state;
    store *s = x->s;
    uint64_t seq = 0;
    for (int64_t id = 1000; id < 4000; id++) /* growing: several full leaves */
        assert_int_equal(append(s, CHANNEL_GROUP, "g1", ++seq, id, NULL, NULL), MP_OK);
    const int64_t late[] = {2500, 999, -5, 3999, 10000, 9000, 10001};
    for (size_t i = 0; i < sizeof late / sizeof late[0]; i++) /* below the newest, then growing again */
        assert_int_equal(append(s, CHANNEL_GROUP, "g2", i + 1, late[i], NULL, NULL), MP_OK);

    store_rtxn *r = rbegin(s);
    msg_fields m;
    for (int64_t id = 1000; id < 4000; id++) {
        if (id == 2500 || id == 3999) continue; /* given again to g2: the later one wins */
        assert_int_equal(store_get_message_by_id(r, id, &m), MP_OK);
        assert_int_equal(m.message_id, id);
        assert_int_equal(m.seq, (uint64_t)(id - 999));
        assert_true(mp_str_eq_c(m.channel_id, "g1"));
    }
    for (size_t i = 0; i < sizeof late / sizeof late[0]; i++) {
        assert_int_equal(store_get_message_by_id(r, late[i], &m), MP_OK);
        assert_int_equal(m.seq, i + 1);
        assert_true(mp_str_eq_c(m.channel_id, "g2"));
    }
    assert_int_equal(store_get_message_by_id(r, 4000, &m), MP_ENOTFOUND);
    store_rtxn_end(r);
}

static void test_lookups(void **state) {
    fx *x = *state;
    store *s = x->s;
    assert_int_equal(append(s, CHANNEL_GROUP, "g1", 1, 5001, "aaa", "one"), MP_OK);
    assert_int_equal(append(s, CHANNEL_GROUP, "g1", 2, -7, "", "two"), MP_OK);     /* no client_msg_no */
    assert_int_equal(append(s, CHANNEL_GROUP, "g1", 3, 5003, "aaa", "three"), MP_OK); /* same number again */
    assert_int_equal(append(s, CHANNEL_GROUP, "g2", 1, 6001, "aaa", "other"), MP_OK);

    store_rtxn *r = rbegin(s);
    msg_fields m;
    assert_int_equal(store_get_message_by_id(r, 5001, &m), MP_OK);
    assert_int_equal(m.seq, 1);
    assert_true(mp_str_eq_c(m.payload, "one"));
    assert_int_equal(store_get_message_by_id(r, -7, &m), MP_OK);
    assert_int_equal(m.seq, 2);
    assert_int_equal(m.message_id, -7);
    assert_int_equal(store_get_message_by_id(r, 6001, &m), MP_OK);
    assert_true(mp_str_eq_c(m.channel_id, "g2"));
    assert_int_equal(store_get_message_by_id(r, 5002, &m), MP_ENOTFOUND);

    /* last writer wins per channel */
    assert_int_equal(store_get_message_by_client_msg_no(r, CHANNEL_GROUP, MP_STR("g1"), MP_STR("aaa"), &m), MP_OK);
    assert_int_equal(m.seq, 3);
    assert_true(mp_str_eq_c(m.payload, "three"));
    assert_int_equal(store_get_message_by_client_msg_no(r, CHANNEL_GROUP, MP_STR("g2"), MP_STR("aaa"), &m), MP_OK);
    assert_true(mp_str_eq_c(m.payload, "other"));
    assert_int_equal(store_get_message_by_client_msg_no(r, CHANNEL_GROUP, MP_STR("g1"), MP_STR(""), &m), MP_ENOTFOUND);
    assert_int_equal(store_get_message_by_client_msg_no(r, CHANNEL_GROUP, MP_STR("g1"), MP_STR("aa"), &m), MP_ENOTFOUND);
    assert_int_equal(store_get_message_by_client_msg_no(r, CHANNEL_GROUP, MP_STR("g3"), MP_STR("aaa"), &m), MP_ENOTFOUND);
    assert_int_equal(store_get_message_by_client_msg_no(r, CHANNEL_PERSON, MP_STR("g1"), MP_STR("aaa"), &m), MP_ENOTFOUND);
    store_rtxn_end(r);
}

static void test_key_limits(void **state) {
    fx *x = *state;
    store *s = x->s;
    char big[600];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = 0;
    assert_int_equal(append(s, CHANNEL_GROUP, big, 1, 1, NULL, NULL), MP_ETOOBIG);
    char mid[400];
    memset(mid, 'y', sizeof mid - 1);
    mid[sizeof mid - 1] = 0;
    /* the message key fits, the client_msg_no key does not: nothing is written */
    assert_int_equal(append(s, CHANNEL_GROUP, mid, 1, 1, mid, NULL), MP_ETOOBIG);
    assert_int_equal(last_seq(s, CHANNEL_GROUP, mid), 0);
    assert_int_equal(append(s, CHANNEL_GROUP, mid, 1, 1, "ok", NULL), MP_OK);
    assert_int_equal(set_member(s, STORE_SUBSCRIBERS, CHANNEL_GROUP, mid, mid, 1), MP_ETOOBIG);
    assert_int_equal(set_member(s, STORE_SUBSCRIBERS, CHANNEL_GROUP, mid, mid, 0), MP_OK);
    assert_int_equal(contains(s, STORE_SUBSCRIBERS, CHANNEL_GROUP, mid, mid), 0);
    assert_int_equal(set_member(s, 7, CHANNEL_GROUP, "g", "u", 1), MP_EINVAL);
    sys_arg sa = {"", 1};
    assert_int_equal(run(s, fn_sys, &sa), MP_EINVAL);
}

/* ---- metadata ------------------------------------------------------------------------ */

typedef struct info_read {
    int rc;
    store_channel_info info;
} info_read;

static int fn_info_read(store_wtxn *t, void *a) {
    info_read *x = a;
    x->rc = store_txn_get_channel_info(t, CHANNEL_GROUP, MP_STR("g1"), &x->info);
    return MP_OK;
}

static void test_channel_info(void **state) {
    fx *x = *state;
    store *s = x->s;
    store_rtxn *r = rbegin(s);
    store_channel_info got;
    assert_int_equal(store_get_channel_info(r, CHANNEL_GROUP, MP_STR("g1"), &got), MP_ENOTFOUND);
    store_rtxn_end(r);

    info_arg a = {CHANNEL_GROUP, "g1", {1, 0, 1, 1, 0, 1700000000123ull, UINT64_MAX}};
    assert_int_equal(run(s, fn_info, &a), MP_OK);
    r = rbegin(s);
    assert_int_equal(store_get_channel_info(r, CHANNEL_GROUP, MP_STR("g1"), &got), MP_OK);
    assert_int_equal(got.ban, 1);
    assert_int_equal(got.disband, 0);
    assert_int_equal(got.send_ban, 1);
    assert_int_equal(got.large, 1);
    assert_int_equal(got.allow_stranger, 0);
    assert_int_equal(got.created_ms, 1700000000123ull);
    assert_true(got.updated_ms == UINT64_MAX);
    assert_int_equal(store_get_channel_info(r, CHANNEL_PERSON, MP_STR("g1"), &got), MP_ENOTFOUND);
    assert_int_equal(store_get_channel_info(r, CHANNEL_GROUP, MP_STR("g10"), &got), MP_ENOTFOUND);
    store_rtxn_end(r);

    a.info = (store_channel_info){0, 1, 0, 0, 1, 5, 6};
    assert_int_equal(run(s, fn_info, &a), MP_OK);
    info_read ir = {-1, {0}};
    assert_int_equal(run(s, fn_info_read, &ir), MP_OK);
    assert_int_equal(ir.rc, MP_OK);
    assert_int_equal(ir.info.disband, 1);
    assert_int_equal(ir.info.ban, 0);
    assert_int_equal(ir.info.allow_stranger, 1);
    assert_int_equal(ir.info.created_ms, 5);
    assert_int_equal(ir.info.updated_ms, 6);
}

static void test_sets(void **state) {
    fx *x = *state;
    store *s = x->s;
    const char *members[] = {"u3", "u1", "u2", "u10"};
    for (size_t i = 0; i < 4; i++) assert_int_equal(set_member(s, STORE_SUBSCRIBERS, CHANNEL_GROUP, "g1", members[i], 1), MP_OK);
    assert_int_equal(set_member(s, STORE_SUBSCRIBERS, CHANNEL_GROUP, "g1", "u1", 1), MP_OK); /* again */
    assert_int_equal(set_member(s, STORE_SUBSCRIBERS, CHANNEL_GROUP, "g10", "u1", 1), MP_OK);
    assert_int_equal(set_member(s, STORE_SUBSCRIBERS, CHANNEL_GROUP, "g", "u9", 1), MP_OK);
    assert_int_equal(set_member(s, STORE_BLACKLIST, CHANNEL_GROUP, "g1", "bad", 1), MP_OK);
    assert_int_equal(set_member(s, STORE_WHITELIST, CHANNEL_GROUP, "g1", "good", 1), MP_OK);

    assert_int_equal(set_count(s, STORE_SUBSCRIBERS, CHANNEL_GROUP, "g1"), 4);
    assert_int_equal(set_count(s, STORE_SUBSCRIBERS, CHANNEL_GROUP, "g10"), 1);
    assert_int_equal(set_count(s, STORE_SUBSCRIBERS, CHANNEL_GROUP, "g"), 1);
    assert_int_equal(set_count(s, STORE_SUBSCRIBERS, CHANNEL_PERSON, "g1"), 0);
    assert_int_equal(set_count(s, STORE_BLACKLIST, CHANNEL_GROUP, "g1"), 1);
    assert_int_equal(set_count(s, STORE_WHITELIST, CHANNEL_GROUP, "g1"), 1);
    assert_int_equal(contains(s, STORE_SUBSCRIBERS, CHANNEL_GROUP, "g1", "u10"), 1);
    assert_int_equal(contains(s, STORE_SUBSCRIBERS, CHANNEL_GROUP, "g1", "u4"), 0);
    assert_int_equal(contains(s, STORE_SUBSCRIBERS, CHANNEL_GROUP, "g1", "bad"), 0);
    assert_int_equal(contains(s, STORE_BLACKLIST, CHANNEL_GROUP, "g1", "bad"), 1);
    assert_int_equal(contains(s, STORE_WHITELIST, CHANNEL_GROUP, "g1", "bad"), 0);
    assert_int_equal(contains(s, STORE_SUBSCRIBERS, CHANNEL_GROUP, "g", "u1"), 0);

    uids u = {0};
    store_rtxn *r = rbegin(s);
    assert_int_equal(store_scan_set(r, STORE_SUBSCRIBERS, CHANNEL_GROUP, MP_STR("g1"), collect_uid, &u), MP_OK);
    store_rtxn_end(r);
    assert_int_equal(u.n, 4);
    assert_string_equal(u.v[0], "u1"); /* byte order */
    assert_string_equal(u.v[1], "u10");
    assert_string_equal(u.v[2], "u2");
    assert_string_equal(u.v[3], "u3");

    assert_int_equal(set_member(s, STORE_SUBSCRIBERS, CHANNEL_GROUP, "g1", "u2", 0), MP_OK);
    assert_int_equal(set_member(s, STORE_SUBSCRIBERS, CHANNEL_GROUP, "g1", "absent", 0), MP_OK);
    assert_int_equal(set_count(s, STORE_SUBSCRIBERS, CHANNEL_GROUP, "g1"), 3);
    assert_int_equal(contains(s, STORE_SUBSCRIBERS, CHANNEL_GROUP, "g1", "u2"), 0);

    assert_int_equal(set_member(s, STORE_SUBSCRIBERS, CHANNEL_GROUP, "g1", NULL, 0), MP_OK); /* clear */
    assert_int_equal(set_count(s, STORE_SUBSCRIBERS, CHANNEL_GROUP, "g1"), 0);
    assert_int_equal(set_count(s, STORE_SUBSCRIBERS, CHANNEL_GROUP, "g10"), 1);
    assert_int_equal(set_count(s, STORE_SUBSCRIBERS, CHANNEL_GROUP, "g"), 1);
    assert_int_equal(set_count(s, STORE_BLACKLIST, CHANNEL_GROUP, "g1"), 1);
    assert_int_equal(set_member(s, STORE_SUBSCRIBERS, CHANNEL_GROUP, "g1", NULL, 0), MP_OK); /* clear empty */
}

/* Clearing a set that spans many pages leaves its neighbours alone. */
typedef struct bulk_arg {
    const char *id;
    int n;
} bulk_arg;

static int fn_bulk_members(store_wtxn *t, void *a) {
    bulk_arg *b = a;
    char uid[32];
    for (int i = 0; i < b->n; i++) {
        int len = snprintf(uid, sizeof uid, "member-%06d", i);
        int rc = store_txn_set_member(t, STORE_SUBSCRIBERS, CHANNEL_GROUP, mp_str_c(b->id), (mp_str){uid, (uint32_t)len}, 1);
        if (rc) return rc;
    }
    return MP_OK;
}

static void test_clear_large_set(void **state) {
    fx *x = *state;
    store *s = x->s;
    bulk_arg a = {"big", 5000}, lo = {"bif", 10}, hi = {"bih", 10};
    assert_int_equal(run(s, fn_bulk_members, &lo), MP_OK);
    assert_int_equal(run(s, fn_bulk_members, &a), MP_OK);
    assert_int_equal(run(s, fn_bulk_members, &hi), MP_OK);
    assert_int_equal(set_count(s, STORE_SUBSCRIBERS, CHANNEL_GROUP, "big"), 5000);
    assert_int_equal(set_member(s, STORE_SUBSCRIBERS, CHANNEL_GROUP, "big", NULL, 0), MP_OK);
    assert_int_equal(set_count(s, STORE_SUBSCRIBERS, CHANNEL_GROUP, "big"), 0);
    assert_int_equal(set_count(s, STORE_SUBSCRIBERS, CHANNEL_GROUP, "bif"), 10);
    assert_int_equal(set_count(s, STORE_SUBSCRIBERS, CHANNEL_GROUP, "bih"), 10);
}

/* Reads inside a write op see the op's own and earlier (uncommitted) changes. */
typedef struct txn_read_arg {
    uids u;
    int has_a, has_z;
} txn_read_arg;

static int fn_txn_reads(store_wtxn *t, void *a) {
    txn_read_arg *x = a;
    int rc = store_txn_set_member(t, STORE_SUBSCRIBERS, CHANNEL_GROUP, MP_STR("g"), MP_STR("b"), 1);
    if (rc) return rc;
    x->has_a = store_txn_set_contains(t, STORE_SUBSCRIBERS, CHANNEL_GROUP, MP_STR("g"), MP_STR("a"));
    x->has_z = store_txn_set_contains(t, STORE_SUBSCRIBERS, CHANNEL_GROUP, MP_STR("g"), MP_STR("z"));
    return store_txn_scan_set(t, STORE_SUBSCRIBERS, CHANNEL_GROUP, MP_STR("g"), collect_uid, &x->u);
}

static void test_txn_set_reads(void **state) {
    fx *x = *state;
    assert_int_equal(set_member(x->s, STORE_SUBSCRIBERS, CHANNEL_GROUP, "g", "a", 1), MP_OK);
    txn_read_arg a;
    memset(&a, 0, sizeof a);
    assert_int_equal(run(x->s, fn_txn_reads, &a), MP_OK);
    assert_int_equal(a.has_a, 1);
    assert_int_equal(a.has_z, 0);
    assert_int_equal(a.u.n, 2);
    assert_string_equal(a.u.v[0], "a");
    assert_string_equal(a.u.v[1], "b");
}

typedef struct dev_arg {
    const char *uid;
    uint8_t flag;
    const char *token;
    uint8_t level;
} dev_arg;

static int fn_dev(store_wtxn *t, void *a) {
    dev_arg *d = a;
    return store_txn_put_device(t, mp_str_c(d->uid), d->flag, mp_str_c(d->token), d->level);
}

static void expect_device(store *s, const char *uid, uint8_t flag, const char *token, uint8_t level) {
    store_rtxn *r = rbegin(s);
    store_device d;
    int rc = store_get_device(r, mp_str_c(uid), flag, &d);
    if (!token) {
        assert_int_equal(rc, MP_ENOTFOUND);
    } else {
        assert_int_equal(rc, MP_OK);
        assert_true(mp_str_eq_c(d.token, token));
        assert_int_equal(d.level, level);
    }
    store_rtxn_end(r);
}

static void test_devices(void **state) {
    fx *x = *state;
    store *s = x->s;
    dev_arg a[] = {{"u1", 0, "tok-app", 1}, {"u1", 1, "tok-web", 0}, {"u12", 0, "", 1}};
    for (size_t i = 0; i < MP_ARRAY_LEN(a); i++) assert_int_equal(run(s, fn_dev, &a[i]), MP_OK);
    expect_device(s, "u1", 0, "tok-app", 1);
    expect_device(s, "u1", 1, "tok-web", 0);
    expect_device(s, "u12", 0, "", 1);
    expect_device(s, "u1", 2, NULL, 0);
    expect_device(s, "u", 0, NULL, 0);
    dev_arg b = {"u1", 0, "tok-new", 0};
    assert_int_equal(run(s, fn_dev, &b), MP_OK);
    expect_device(s, "u1", 0, "tok-new", 0);
}

typedef struct conv_seen {
    int n;
    char ids[8][32];
    uint8_t types[8];
    uint64_t readed[8];
} conv_seen;

static int collect_conv(void *ctx, uint8_t type, mp_str id, const store_conv *c) {
    conv_seen *cs = ctx;
    if (cs->n < 8) {
        snprintf(cs->ids[cs->n], sizeof cs->ids[0], "%.*s", (int)id.len, id.p);
        cs->types[cs->n] = type;
        cs->readed[cs->n] = c->readed_to_seq;
    }
    cs->n++;
    return 0;
}

static conv_seen scan_convs(store *s, const char *uid) {
    conv_seen cs;
    memset(&cs, 0, sizeof cs);
    store_rtxn *r = rbegin(s);
    assert_int_equal(store_scan_convs(r, mp_str_c(uid), collect_conv, &cs), MP_OK);
    store_rtxn_end(r);
    return cs;
}

typedef struct conv_txn_read {
    int rc;
    store_conv c;
} conv_txn_read;

static int fn_conv_read(store_wtxn *t, void *a) {
    conv_txn_read *x = a;
    x->rc = store_txn_get_conv(t, MP_STR("a"), CHANNEL_GROUP, MP_STR("g1"), &x->c);
    return MP_OK;
}

static void test_conversations(void **state) {
    fx *x = *state;
    store *s = x->s;
    assert_int_equal(put_conv(s, "a", CHANNEL_GROUP, "g1", 5), MP_OK);
    assert_int_equal(put_conv(s, "a", CHANNEL_PERSON, "b@a", 6), MP_OK);
    assert_int_equal(put_conv(s, "ab", CHANNEL_GROUP, "g1", 7), MP_OK);
    assert_int_equal(put_conv(s, "", CHANNEL_GROUP, "g1", 8), MP_OK);

    conv_seen cs = scan_convs(s, "a");
    assert_int_equal(cs.n, 2);
    assert_int_equal(cs.types[0], CHANNEL_PERSON); /* channel key order: type first */
    assert_string_equal(cs.ids[0], "b@a");
    assert_int_equal(cs.readed[0], 6);
    assert_int_equal(cs.types[1], CHANNEL_GROUP);
    assert_string_equal(cs.ids[1], "g1");
    assert_int_equal(cs.readed[1], 5);
    cs = scan_convs(s, "ab");
    assert_int_equal(cs.n, 1);
    assert_int_equal(cs.readed[0], 7);
    cs = scan_convs(s, "");
    assert_int_equal(cs.n, 1);
    cs = scan_convs(s, "nobody");
    assert_int_equal(cs.n, 0);

    store_rtxn *r = rbegin(s);
    store_conv c;
    assert_int_equal(store_get_conv(r, MP_STR("a"), CHANNEL_GROUP, MP_STR("g1"), &c), MP_OK);
    assert_int_equal(c.readed_to_seq, 5);
    assert_int_equal(c.created_at_ns, 111);
    assert_int_equal(c.updated_at_ns, 222);
    assert_int_equal(store_get_conv(r, MP_STR("a"), CHANNEL_GROUP, MP_STR("g2"), &c), MP_ENOTFOUND);
    store_rtxn_end(r);

    conv_txn_read tr = {-1, {0}};
    assert_int_equal(run(s, fn_conv_read, &tr), MP_OK);
    assert_int_equal(tr.rc, MP_OK);
    assert_int_equal(tr.c.readed_to_seq, 5);

    conv_arg d = {"a", CHANNEL_GROUP, "g1", {0}, 1};
    assert_int_equal(run(s, fn_conv, &d), MP_OK);
    assert_int_equal(run(s, fn_conv, &d), MP_OK); /* absent is fine */
    r = rbegin(s);
    assert_int_equal(store_get_conv(r, MP_STR("a"), CHANNEL_GROUP, MP_STR("g1"), &c), MP_ENOTFOUND);
    assert_int_equal(store_get_conv(r, MP_STR("ab"), CHANNEL_GROUP, MP_STR("g1"), &c), MP_OK);
    store_rtxn_end(r);
    cs = scan_convs(s, "a");
    assert_int_equal(cs.n, 1);
    assert_string_equal(cs.ids[0], "b@a");
}

static void test_sysuids(void **state) {
    fx *x = *state;
    store *s = x->s;
    sys_arg a[] = {{"s2", 1}, {"s1", 1}, {"s10", 1}, {"s1", 0}, {"absent", 0}};
    for (size_t i = 0; i < MP_ARRAY_LEN(a); i++) assert_int_equal(run(s, fn_sys, &a[i]), MP_OK);
    uids u = {0};
    store_rtxn *r = rbegin(s);
    assert_int_equal(store_scan_sysuids(r, collect_uid, &u), MP_OK);
    store_rtxn_end(r);
    assert_int_equal(u.n, 2);
    assert_string_equal(u.v[0], "s10");
    assert_string_equal(u.v[1], "s2");
}

typedef struct chan_seen {
    int n;
    uint8_t types[16];
    char ids[16][16];
} chan_seen;

static int collect_chan(void *ctx, uint8_t type, mp_str id) {
    chan_seen *c = ctx;
    if (c->n < 16) {
        c->types[c->n] = type;
        snprintf(c->ids[c->n], sizeof c->ids[0], "%.*s", (int)id.len, id.p);
    }
    c->n++;
    return 0;
}

static void test_scan_channels(void **state) {
    fx *x = *state;
    store *s = x->s;
    info_arg a = {CHANNEL_GROUP, "info-only", {0}};
    assert_int_equal(run(s, fn_info, &a), MP_OK);
    info_arg b = {CHANNEL_GROUP, "both", {0}};
    assert_int_equal(run(s, fn_info, &b), MP_OK);
    append_range(s, CHANNEL_GROUP, "both", 1, 2);
    append_range(s, CHANNEL_GROUP, "msgs-only", 1, 1);
    append_range(s, CHANNEL_PERSON, "a@b", 1, 1);
    info_arg c = {CHANNEL_COMMUNITY, "z", {0}};
    assert_int_equal(run(s, fn_info, &c), MP_OK);

    chan_seen cs;
    memset(&cs, 0, sizeof cs);
    store_rtxn *r = rbegin(s);
    assert_int_equal(store_scan_channels(r, collect_chan, &cs), MP_OK);
    store_rtxn_end(r);
    /* key order: type, then id length, then id bytes */
    assert_int_equal(cs.n, 5);
    assert_int_equal(cs.types[0], CHANNEL_PERSON);
    assert_string_equal(cs.ids[0], "a@b");
    assert_string_equal(cs.ids[1], "both");
    assert_string_equal(cs.ids[2], "info-only");
    assert_string_equal(cs.ids[3], "msgs-only");
    assert_int_equal(cs.types[4], CHANNEL_COMMUNITY);
    assert_string_equal(cs.ids[4], "z");
}

/* ---- writer ----------------------------------------------------------------------- */

/* An op that holds the writer until released, so later submissions pile up into one batch. */
typedef struct gate {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int entered, released;
} gate;

static int fn_gate(store_wtxn *t, void *a) {
    (void)t;
    gate *g = a;
    pthread_mutex_lock(&g->mu);
    g->entered = 1;
    pthread_cond_broadcast(&g->cv);
    while (!g->released) pthread_cond_wait(&g->cv, &g->mu);
    pthread_mutex_unlock(&g->mu);
    return MP_OK;
}

static void gate_wait_entered(gate *g) {
    pthread_mutex_lock(&g->mu);
    while (!g->entered) pthread_cond_wait(&g->cv, &g->mu);
    pthread_mutex_unlock(&g->mu);
}

static void gate_release(gate *g) {
    pthread_mutex_lock(&g->mu);
    g->released = 1;
    pthread_cond_broadcast(&g->cv);
    pthread_mutex_unlock(&g->mu);
}

static int fn_write_then_fail(store_wtxn *t, void *a) {
    (void)a;
    int rc = store_txn_set_member(t, STORE_SUBSCRIBERS, CHANNEL_GROUP, MP_STR("g"), MP_STR("zzz"), 1);
    if (rc) return rc;
    rc = store_txn_set_sysuid(t, MP_STR("ghost"), 1);
    return rc ? rc : MP_EPERM;
}

static int fn_add_sys(store_wtxn *t, void *a) { return store_txn_set_sysuid(t, mp_str_c(a), 1); }

static void test_failing_op_isolated(void **state) {
    fx *x = *state;
    store *s = x->s;
    gate g = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0};
    call cg = {.fn = fn_gate, .arg = &g, .mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};
    assert_int_equal(store_submit(s, call_fn, call_done, &cg), MP_OK);
    gate_wait_entered(&g);

    store_stats before;
    store_get_stats(s, &before);
    msg_fields m1 = mkmsg(CHANNEL_GROUP, "x", 1, 11, "n1", NULL);
    msg_fields m2 = mkmsg(CHANNEL_GROUP, "x", 2, 12, "n2", NULL); /* sees m1 uncommitted */
    msg_fields bad = mkmsg(CHANNEL_GROUP, "x", 5, 15, "n5", NULL);
    call c[6];
    store_write_fn fns[6] = {fn_append, fn_write_then_fail, fn_append, fn_append, fn_add_sys, NULL};
    void *args[6] = {&m1, NULL, &bad, &m2, "kept", NULL};
    for (int i = 0; i < 6; i++) {
        c[i] = (call){.fn = fns[i], .arg = args[i], .mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};
        assert_int_equal(store_submit(s, fns[i] ? call_fn : NULL, call_done, &c[i]), MP_OK);
    }
    store_stats queued;
    store_get_stats(s, &queued);
    assert_int_equal(queued.queued, 6);
    gate_release(&g);
    for (int i = 0; i < 6; i++) call_wait(&c[i]);
    call_wait(&cg);

    assert_int_equal(cg.status, MP_OK);
    assert_int_equal(c[0].status, MP_OK);
    assert_int_equal(c[1].status, MP_EPERM);
    assert_int_equal(c[2].status, MP_EINVAL);
    assert_int_equal(c[3].status, MP_OK);
    assert_int_equal(c[4].status, MP_OK);
    assert_int_equal(c[5].status, MP_OK);

    store_stats after;
    store_get_stats(s, &after);
    assert_int_equal(after.commits - before.commits, 2); /* the gate's batch, then all six together */
    /* the six ran flat first; the failures made the writer redo them op by op */
    assert_int_equal(after.nested_reruns - before.nested_reruns, 1);
    assert_true(after.largest_batch >= 6);
    assert_int_equal(after.queued, 0);
    assert_int_equal(after.completed, after.submitted);

    assert_int_equal(last_seq(s, CHANNEL_GROUP, "x"), 2);
    assert_int_equal(contains(s, STORE_SUBSCRIBERS, CHANNEL_GROUP, "g", "zzz"), 0);
    uids u = {0};
    store_rtxn *r = rbegin(s);
    assert_int_equal(store_scan_sysuids(r, collect_uid, &u), MP_OK);
    msg_fields m;
    assert_int_equal(store_get_message_by_client_msg_no(r, CHANNEL_GROUP, MP_STR("x"), MP_STR("n5"), &m), MP_ENOTFOUND);
    assert_int_equal(store_get_message_by_id(r, 12, &m), MP_OK);
    store_rtxn_end(r);
    assert_int_equal(u.n, 1);
    assert_string_equal(u.v[0], "kept");
}

/* Run fns[i](args[i]) as one batch: a gate holds the writer while they queue. */
static void run_as_one_batch(store *s, int n, store_write_fn *fns, void **args, int *status) {
    gate g = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0};
    call cg = {.fn = fn_gate, .arg = &g, .mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};
    assert_int_equal(store_submit(s, call_fn, call_done, &cg), MP_OK);
    gate_wait_entered(&g);
    call c[8];
    assert_true(n <= 8);
    for (int i = 0; i < n; i++) {
        c[i] = (call){.fn = fns[i], .arg = args[i], .mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};
        assert_int_equal(store_submit(s, call_fn, call_done, &c[i]), MP_OK);
    }
    gate_release(&g);
    call_wait(&cg);
    for (int i = 0; i < n; i++) {
        call_wait(&c[i]);
        status[i] = c[i].status;
    }
}

typedef struct conv_step {
    const char *uid;
    int read_rc;        /* what reading (uid, g) gave first */
    uint64_t read_seq;
    uint64_t put;       /* then: 0 = delete, else put readed_to_seq */
    int fail;           /* then return MP_EPERM */
} conv_step;

static int fn_conv_step(store_wtxn *t, void *a) {
    conv_step *x = a;
    store_conv c = {0, 0, 0, 1, 2};
    x->read_rc = store_txn_get_conv(t, mp_str_c(x->uid), CHANNEL_GROUP, MP_STR("g"), &c);
    x->read_seq = c.readed_to_seq;
    int rc = x->put ? store_txn_put_conv(t, mp_str_c(x->uid), CHANNEL_GROUP, MP_STR("g"), &(store_conv){0, x->put, 0, 1, 2})
                    : store_txn_del_conv(t, mp_str_c(x->uid), CHANNEL_GROUP, MP_STR("g"));
    return rc ? rc : x->fail ? MP_EPERM : MP_OK;
}

static uint64_t conv_seq(store *s, const char *uid) {
    store_rtxn *r = rbegin(s);
    store_conv c;
    int rc = store_get_conv(r, mp_str_c(uid), CHANNEL_GROUP, MP_STR("g"), &c);
    store_rtxn_end(r);
    return rc == MP_OK ? c.readed_to_seq : 0;
}

/* A batch keeps the last seqs and conversations it writes in memory and writes each row
 * once before its commit: later ops of the batch read what earlier ones wrote or deleted,
 * the commit has the final rows, and an op that fails takes its writes with it. */
static void test_batch_reads_its_own_rows(void **state) {
    fx *x = *state;
    store *s = x->s;
    assert_int_equal(put_conv(s, "b", CHANNEL_GROUP, "g", 3), MP_OK);
    store_stats before;
    store_get_stats(s, &before);

    msg_fields m1 = mkmsg(CHANNEL_GROUP, "g", 1, 21, "w1", NULL), m2 = mkmsg(CHANNEL_GROUP, "g", 2, 22, "w2", NULL);
    lastseq_arg mid = {99, -1};
    conv_step a1 = {"a", -1, 0, 5, 0}, b1 = {"b", -1, 0, 0, 0}, a2 = {"a", -1, 0, 9, 0}, b2 = {"b", -1, 0, 4, 0};
    store_write_fn fns[7] = {fn_append, fn_conv_step, fn_conv_step, fn_read_last, fn_append, fn_conv_step, fn_conv_step};
    void *args[7] = {&m1, &a1, &b1, &mid, &m2, &a2, &b2};
    int st[7];
    run_as_one_batch(s, 7, fns, args, st);
    for (int i = 0; i < 7; i++) assert_int_equal(st[i], MP_OK);
    assert_int_equal(a1.read_rc, MP_ENOTFOUND);
    assert_int_equal(b1.read_rc, MP_OK); /* from LMDB, before it was deleted here */
    assert_int_equal(b1.read_seq, 3);
    assert_int_equal(mid.seen, 1);       /* m1's seq, not yet committed */
    assert_int_equal(a2.read_rc, MP_OK); /* a1's put */
    assert_int_equal(a2.read_seq, 5);
    assert_int_equal(b2.read_rc, MP_ENOTFOUND); /* b1's delete */
    assert_int_equal(conv_seq(s, "a"), 9);
    assert_int_equal(conv_seq(s, "b"), 4);
    assert_int_equal(last_seq(s, CHANNEL_GROUP, "g"), 2);

    /* a failing op's rows never reach LMDB; the others' do */
    msg_fields m3 = mkmsg(CHANNEL_GROUP, "g", 3, 23, "w3", NULL), m4 = mkmsg(CHANNEL_GROUP, "g", 4, 24, "w4", NULL);
    conv_step c1 = {"c", -1, 0, 7, 1}, a3 = {"a", -1, 0, 0, 0}, c2 = {"c", -1, 0, 8, 0};
    store_write_fn fns2[5] = {fn_append, fn_conv_step, fn_conv_step, fn_append, fn_conv_step};
    void *args2[5] = {&m3, &c1, &a3, &m4, &c2};
    run_as_one_batch(s, 5, fns2, args2, st);
    assert_int_equal(st[0], MP_OK);
    assert_int_equal(st[1], MP_EPERM);
    assert_int_equal(st[2], MP_OK);
    assert_int_equal(st[3], MP_OK);
    assert_int_equal(st[4], MP_OK);
    assert_int_equal(c2.read_rc, MP_ENOTFOUND); /* c1 failed: its put is gone */
    assert_int_equal(conv_seq(s, "a"), 0);
    assert_int_equal(conv_seq(s, "c"), 8);
    assert_int_equal(last_seq(s, CHANNEL_GROUP, "g"), 4);
    store_stats after;
    store_get_stats(s, &after);
    assert_int_equal(after.nested_reruns - before.nested_reruns, 1); /* only the second batch */
}

/* done runs after the commit: a brand-new read txn opened inside done sees the data. */
typedef struct visible {
    store *s;
    msg_fields f;
    call c;
    int found;
    uint64_t last;
} visible;

static int fn_vis_append(store_wtxn *t, void *a) { return store_txn_append_message(t, &((visible *)a)->f); }

static void done_check_visible(void *a, int status) {
    visible *v = a;
    store_rtxn *r = NULL;
    if (store_rtxn_begin(v->s, &r) == MP_OK) {
        msg_fields m;
        v->found = store_get_message(r, CHANNEL_GROUP, MP_STR("vis"), v->f.seq, &m) == MP_OK;
        store_get_last_seq(r, CHANNEL_GROUP, MP_STR("vis"), &v->last);
        store_rtxn_end(r);
    }
    call_done(&v->c, status);
}

static void test_done_after_commit(void **state) {
    fx *x = *state;
    visible v[50];
    for (int i = 0; i < 50; i++) {
        v[i] = (visible){.s = x->s, .f = mkmsg(CHANNEL_GROUP, "vis", (uint64_t)i + 1, i + 1, NULL, NULL),
                         .c = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER}};
        assert_int_equal(store_submit(x->s, fn_vis_append, done_check_visible, &v[i]), MP_OK);
    }
    for (int i = 0; i < 50; i++) {
        call_wait(&v[i].c);
        assert_int_equal(v[i].c.status, MP_OK);
        assert_true(v[i].found);
        assert_true(v[i].last >= (uint64_t)i + 1);
    }
    /* a barrier completes after everything before it */
    assert_int_equal(run(x->s, NULL, NULL), MP_OK);
}

/* Many submitting threads, each appending to its own channel, plus a reader that checks
 * every snapshot is contiguous. */
#define N_THREADS 6
#define N_PER_THREAD 400

typedef struct conc {
    store *s;
    atomic_int done;
    atomic_int failed;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    atomic_int stop_reader;
    atomic_int reader_bad;
    atomic_int reader_scans;
} conc;

typedef struct conc_op {
    conc *c;
    msg_fields f;
    char id[16];
    char uid[16];
} conc_op;

static int fn_conc(store_wtxn *t, void *a) {
    conc_op *o = a;
    int rc = store_txn_append_message(t, &o->f);
    if (rc) return rc;
    return store_txn_set_member(t, STORE_SUBSCRIBERS, CHANNEL_GROUP, o->f.channel_id, mp_str_c(o->uid), 1);
}

static void done_conc(void *a, int status) {
    conc_op *o = a;
    conc *c = o->c;
    if (status != MP_OK) atomic_fetch_add(&c->failed, 1);
    free(o);
    pthread_mutex_lock(&c->mu);
    atomic_fetch_add(&c->done, 1);
    pthread_cond_signal(&c->cv);
    pthread_mutex_unlock(&c->mu);
}

typedef struct conc_thread {
    conc *c;
    int idx;
} conc_thread;

static void *submitter(void *a) {
    conc_thread *t = a;
    for (int i = 0; i < N_PER_THREAD; i++) {
        conc_op *o = calloc(1, sizeof *o);
        o->c = t->c;
        snprintf(o->id, sizeof o->id, "t%d", t->idx);
        snprintf(o->uid, sizeof o->uid, "u%05d", i);
        o->f = mkmsg(CHANNEL_GROUP, o->id, (uint64_t)i + 1, (int64_t)t->idx * 100000 + i, NULL, "x");
        o->f.channel_id = mp_str_c(o->id);
        if (store_submit(t->c->s, fn_conc, done_conc, o) != MP_OK) {
            atomic_fetch_add(&t->c->failed, 1);
            free(o);
        }
    }
    return NULL;
}

static int check_contig(void *ctx, const msg_fields *m) {
    uint64_t *next = ctx;
    if (m->seq != *next) return 1;
    (*next)++;
    return 0;
}

static void *reader(void *a) {
    conc *c = a;
    while (!atomic_load(&c->stop_reader)) {
        for (int t = 0; t < N_THREADS; t++) {
            store_rtxn *r;
            if (store_rtxn_begin(c->s, &r) != MP_OK) {
                atomic_store(&c->reader_bad, 1);
                return NULL;
            }
            char id[16];
            snprintf(id, sizeof id, "t%d", t);
            uint64_t last = 0, next = 1, members = 0;
            store_get_last_seq(r, CHANNEL_GROUP, mp_str_c(id), &last);
            store_scan_messages(r, CHANNEL_GROUP, mp_str_c(id), 0, UINT64_MAX, 0, 0, check_contig, &next);
            store_set_count(r, STORE_SUBSCRIBERS, CHANNEL_GROUP, mp_str_c(id), &members);
            if (next != last + 1 || members != last) atomic_store(&c->reader_bad, 1);
            store_rtxn_end(r);
        }
        atomic_fetch_add(&c->reader_scans, 1);
    }
    return NULL;
}

static void test_concurrent_submitters(void **state) {
    fx *x = *state;
    conc c = {.s = x->s, .mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};
    pthread_t rd, th[N_THREADS];
    conc_thread ct[N_THREADS];
    assert_int_equal(pthread_create(&rd, NULL, reader, &c), 0);
    for (int i = 0; i < N_THREADS; i++) {
        ct[i] = (conc_thread){&c, i};
        assert_int_equal(pthread_create(&th[i], NULL, submitter, &ct[i]), 0);
    }
    for (int i = 0; i < N_THREADS; i++) pthread_join(th[i], NULL);
    pthread_mutex_lock(&c.mu);
    while (atomic_load(&c.done) + atomic_load(&c.failed) < N_THREADS * N_PER_THREAD && atomic_load(&c.failed) == 0)
        pthread_cond_wait(&c.cv, &c.mu);
    pthread_mutex_unlock(&c.mu);
    atomic_store(&c.stop_reader, 1);
    pthread_join(rd, NULL);

    assert_int_equal(atomic_load(&c.failed), 0);
    assert_int_equal(atomic_load(&c.done), N_THREADS * N_PER_THREAD);
    assert_int_equal(atomic_load(&c.reader_bad), 0);
    assert_true(atomic_load(&c.reader_scans) > 0);
    for (int t = 0; t < N_THREADS; t++) {
        char id[16];
        snprintf(id, sizeof id, "t%d", t);
        assert_int_equal(last_seq(x->s, CHANNEL_GROUP, id), N_PER_THREAD);
        assert_int_equal(set_count(x->s, STORE_SUBSCRIBERS, CHANNEL_GROUP, id), N_PER_THREAD);
        seqs sq;
        scan(x->s, CHANNEL_GROUP, id, 0, UINT64_MAX, 0, 0, &sq);
        expect_seqs(&sq, 1, N_PER_THREAD, 1);
    }
    store_stats st;
    store_get_stats(x->s, &st);
    assert_true(st.commits < (uint64_t)N_THREADS * N_PER_THREAD); /* group commit batched */
    assert_int_equal(st.completed, st.submitted);
    assert_int_equal(st.commit_failures, 0);
    assert_int_equal(st.nested_reruns, 0); /* nothing failed: every batch ran flat */
}

/* ---- lifecycle ------------------------------------------------------------------- */

typedef struct counter {
    atomic_int n;
    atomic_int bad;
} counter;

typedef struct count_op {
    counter *k;
    msg_fields f;
} count_op;

static int fn_count_op(store_wtxn *t, void *a) { return store_txn_append_message(t, &((count_op *)a)->f); }

static void done_count(void *a, int status) {
    count_op *o = a;
    if (status != MP_OK) atomic_fetch_add(&o->k->bad, 1);
    atomic_fetch_add(&o->k->n, 1);
}

static void test_close_drains(void **state) {
    fx *x = *state;
    enum { N = 2000 };
    counter k = {0, 0};
    count_op *ops = calloc(N, sizeof *ops);
    for (int i = 0; i < N; i++) {
        ops[i] = (count_op){&k, mkmsg(CHANNEL_GROUP, "drain", (uint64_t)i + 1, i + 1, NULL, NULL)};
        assert_int_equal(store_submit(x->s, fn_count_op, done_count, &ops[i]), MP_OK);
    }
    store_close(x->s); /* returns only after every done ran */
    x->s = NULL;
    assert_int_equal(atomic_load(&k.n), N);
    assert_int_equal(atomic_load(&k.bad), 0);
    free(ops);
    x->s = open_at(x->dir, STORE_SYNC_ALWAYS, 0);
    assert_int_equal(last_seq(x->s, CHANNEL_GROUP, "drain"), N);
}

static void test_reopen(void **state) {
    fx *x = *state;
    store *s = x->s;
    append_range(s, CHANNEL_GROUP, "g1", 1, 10);
    assert_int_equal(append(s, CHANNEL_PERSON, "a@b", 1, 777, "cm", "hi"), MP_OK);
    info_arg ia = {CHANNEL_GROUP, "g1", {1, 0, 0, 1, 0, 10, 20}};
    assert_int_equal(run(s, fn_info, &ia), MP_OK);
    assert_int_equal(set_member(s, STORE_BLACKLIST, CHANNEL_GROUP, "g1", "bad", 1), MP_OK);
    assert_int_equal(put_conv(s, "a", CHANNEL_PERSON, "a@b", 1), MP_OK);
    dev_arg d = {"a", 1, "tok", 1};
    assert_int_equal(run(s, fn_dev, &d), MP_OK);
    sys_arg sa = {"sys", 1};
    assert_int_equal(run(s, fn_sys, &sa), MP_OK);

    reopen(x, STORE_SYNC_ALWAYS, 0);
    s = x->s;
    seqs c;
    scan(s, CHANNEL_GROUP, "g1", 0, UINT64_MAX, 0, 0, &c);
    expect_seqs(&c, 1, 10, 1);
    assert_int_equal(last_seq(s, CHANNEL_GROUP, "g1"), 10);
    assert_int_equal(contains(s, STORE_BLACKLIST, CHANNEL_GROUP, "g1", "bad"), 1);
    expect_device(s, "a", 1, "tok", 1);
    store_rtxn *r = rbegin(s);
    msg_fields m;
    assert_int_equal(store_get_message_by_id(r, 777, &m), MP_OK);
    assert_true(mp_str_eq_c(m.payload, "hi"));
    assert_int_equal(store_get_message_by_client_msg_no(r, CHANNEL_PERSON, MP_STR("a@b"), MP_STR("cm"), &m), MP_OK);
    store_channel_info info;
    assert_int_equal(store_get_channel_info(r, CHANNEL_GROUP, MP_STR("g1"), &info), MP_OK);
    assert_int_equal(info.updated_ms, 20);
    store_conv cv;
    assert_int_equal(store_get_conv(r, MP_STR("a"), CHANNEL_PERSON, MP_STR("a@b"), &cv), MP_OK);
    uids u = {0};
    assert_int_equal(store_scan_sysuids(r, collect_uid, &u), MP_OK);
    assert_int_equal(u.n, 1);
    store_rtxn_end(r);
    /* appends continue from the stored last seq */
    assert_int_equal(append(s, CHANNEL_GROUP, "g1", 11, 11, NULL, NULL), MP_OK);
}

/* A tiny map fills up; the writer grows it and re-runs the batch, while a read txn held
 * across the growth keeps valid views (the writer waits for it). */
static void test_map_growth(void **state) {
    fx *x = *state;
    reopen(x, STORE_SYNC_ALWAYS, 1 << 20);
    store *s = x->s;
    assert_int_equal(append(s, CHANNEL_GROUP, "first", 1, 1, NULL, "anchor-payload"), MP_OK);
    store_rtxn *held = rbegin(s);
    msg_fields anchor;
    assert_int_equal(store_get_message(held, CHANNEL_GROUP, MP_STR("first"), 1, &anchor), MP_OK);

    enum { N = 600, PAYLOAD = 8000 };
    char *payload = malloc(PAYLOAD + 1);
    memset(payload, 'p', PAYLOAD);
    payload[PAYLOAD] = 0;
    counter k = {0, 0};
    count_op *ops = calloc(N, sizeof *ops);
    for (int i = 0; i < N; i++) {
        ops[i] = (count_op){&k, mkmsg(CHANNEL_GROUP, "big", (uint64_t)i + 1, 1000 + i, NULL, payload)};
        assert_int_equal(store_submit(s, fn_count_op, done_count, &ops[i]), MP_OK);
    }
    usleep(200 * 1000);
    assert_true(mp_str_eq_c(anchor.payload, "anchor-payload")); /* view still valid */
    store_rtxn_end(held);
    assert_int_equal(run(s, NULL, NULL), MP_OK); /* barrier */
    assert_int_equal(atomic_load(&k.n), N);
    assert_int_equal(atomic_load(&k.bad), 0);
    store_stats st;
    store_get_stats(s, &st);
    assert_true(st.map_resizes >= 1);
    assert_true(st.map_size > (1u << 20));
    assert_int_equal(last_seq(s, CHANNEL_GROUP, "big"), N);
    store_rtxn *r = rbegin(s);
    msg_fields m;
    assert_int_equal(store_get_message(r, CHANNEL_GROUP, MP_STR("big"), N, &m), MP_OK);
    assert_int_equal(m.payload.len, PAYLOAD);
    store_rtxn_end(r);
    free(ops);
    free(payload);

    reopen(x, STORE_SYNC_ALWAYS, 1 << 20); /* a smaller requested map still opens the data */
    assert_int_equal(last_seq(x->s, CHANNEL_GROUP, "big"), N);
}

static void test_interval_sync(void **state) {
    fx *x = *state;
    reopen(x, STORE_SYNC_INTERVAL, 0);
    append_range(x->s, CHANNEL_GROUP, "iv", 1, 5);
    store_stats st;
    for (int i = 0; i < 100; i++) {
        store_get_stats(x->s, &st);
        if (st.syncs > 0) break;
        usleep(10 * 1000);
    }
    assert_true(st.syncs > 0);
    append_range(x->s, CHANNEL_GROUP, "iv", 6, 7);
    reopen(x, STORE_SYNC_ALWAYS, 0);
    assert_int_equal(last_seq(x->s, CHANNEL_GROUP, "iv"), 7);
}

static void test_open_errors(void **state) {
    fx *x = *state;
    store *s = (store *)1;
    store_options o = {.dir = ""};
    assert_int_equal(store_open(&o, &s), MP_EINVAL);
    assert_null(s);
    char file[160];
    snprintf(file, sizeof file, "%s/plainfile", x->root);
    FILE *fp = fopen(file, "w");
    assert_non_null(fp);
    fclose(fp);
    char under[200];
    snprintf(under, sizeof under, "%s/sub", file);
    o.dir = under;
    assert_int_equal(store_open(&o, &s), MP_EIO);
    o.dir = x->dir;
    o.sync_mode = 9;
    assert_int_equal(store_open(&o, &s), MP_EINVAL);
}

int main(void) {
    mp_log_set_level(MP_LOG_ERROR + 1); /* expected failures (bad dirs) would log */
#define T(fn) cmocka_unit_test_setup_teardown(fn, fx_setup, fx_teardown)
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_codec),
        T(test_append_get_scan),
        T(test_seq_contiguity),
        T(test_last_seq_in_txn),
        T(test_lookups),
        T(test_msgid_order),
        T(test_key_limits),
        T(test_channel_info),
        T(test_sets),
        T(test_clear_large_set),
        T(test_txn_set_reads),
        T(test_devices),
        T(test_conversations),
        T(test_sysuids),
        T(test_scan_channels),
        T(test_failing_op_isolated),
        T(test_batch_reads_its_own_rows),
        T(test_done_after_commit),
        T(test_concurrent_submitters),
        T(test_close_drains),
        T(test_reopen),
        T(test_map_growth),
        T(test_interval_sync),
        T(test_open_errors),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
