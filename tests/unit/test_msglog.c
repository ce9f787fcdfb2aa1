/* test_msglog.c - the message log (store/msglog.h) and the store's logged writes:
 * records come back in order across both files and a switch; a torn or corrupted tail ends
 * the replay there; a reused file's old records are not replayed; and, with a real process
 * that dies after its writes were logged but before LMDB had them, store_open re-applies
 * every acknowledged write once (and skips those LMDB already has). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <ftw.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/buf.h"
#include "common/log.h"
#include "store/msglog.h"
#include "store/store.h"

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
    (void)st, (void)flag, (void)ftw;
    return remove(path);
}

typedef struct fx {
    char dir[64];
} fx;

static int fx_setup(void **state) {
    fx *f = calloc(1, sizeof *f);
    strcpy(f->dir, "/tmp/magpie-msglog-XXXXXX");
    if (!mkdtemp(f->dir)) return -1;
    *state = f;
    return 0;
}

static int fx_teardown(void **state) {
    fx *f = *state;
    nftw(f->dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    free(f);
    return 0;
}

/* ---- the log files ------------------------------------------------------------------ */

typedef struct seen {
    int n;
    int vals[4096];
} seen;

static int collect(void *ctx, const uint8_t *rec, size_t len) {
    seen *s = ctx;
    assert_int_equal(len, 100);
    for (size_t i = 1; i < len; i++) assert_int_equal(rec[i], (uint8_t)(rec[0] + i));
    s->vals[s->n++] = rec[0];
    return MP_OK;
}

/* A 100-byte record carrying v (its bytes are checked on the way back). */
static void add_rec(mlog *l, int v) {
    uint8_t r[100];
    r[0] = (uint8_t)v;
    for (size_t i = 1; i < sizeof r; i++) r[i] = (uint8_t)(r[0] + i);
    mlog_add(l, r, sizeof r);
}

static mlog *open_log(const char *dir, uint64_t size) {
    mlog *l = NULL;
    assert_int_equal(mlog_open(dir, size, &l), MP_OK);
    return l;
}

static seen replay_all(const char *dir, uint64_t size) {
    mlog *l = open_log(dir, size);
    seen s = {0};
    assert_int_equal(mlog_replay(l, collect, &s), MP_OK);
    assert_int_equal(mlog_replayed(l), (uint64_t)s.n);
    mlog_close(l);
    return s;
}

static void test_records_come_back_in_order(void **state) {
    fx *f = *state;
    mlog *l = open_log(f->dir, 1 << 20);
    assert_int_equal(mlog_reset(l), MP_OK);
    for (int b = 0; b < 5; b++) {
        for (int i = 0; i < 10; i++) add_rec(l, b * 10 + i);
        assert_int_equal(mlog_flush(l), MP_OK);
    }
    add_rec(l, 99); /* added but never flushed: not in the file */
    mlog_close(l);
    seen s = replay_all(f->dir, 1 << 20);
    assert_int_equal(s.n, 50);
    for (int i = 0; i < 50; i++) assert_int_equal(s.vals[i], i);
}

static void test_torn_and_corrupt_tails_end_the_replay(void **state) {
    fx *f = *state;
    mlog *l = open_log(f->dir, 1 << 20);
    assert_int_equal(mlog_reset(l), MP_OK);
    for (int i = 0; i < 20; i++) add_rec(l, i);
    assert_int_equal(mlog_flush(l), MP_OK);
    mlog_close(l);
    char path[128];
    snprintf(path, sizeof path, "%s/msglog-0", f->dir);
    /* torn: the last record cut in the middle */
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(truncate(path, st.st_size - 50), 0);
    assert_int_equal(replay_all(f->dir, 1 << 20).n, 19);
    /* corrupt: one payload byte of record 10 flipped; records 10.. are not trusted */
    int fd = open(path, O_RDWR);
    uint8_t b;
    off_t at = 16 + 10 * 108 + 8 + 40;
    assert_int_equal(pread(fd, &b, 1, at), 1);
    b ^= 0x5a;
    assert_int_equal(pwrite(fd, &b, 1, at), 1);
    close(fd);
    assert_int_equal(replay_all(f->dir, 1 << 20).n, 10);
}

static void test_switch_keeps_order_and_drops_reused_records(void **state) {
    fx *f = *state;
    const uint64_t size = 16 + 10 * 108; /* ten records per file */
    mlog *l = open_log(f->dir, size);
    assert_int_equal(mlog_reset(l), MP_OK);
    int v = 0;
    for (int batch = 0; batch < 3; batch++) { /* 3 x 10 records: files 0, 1, then 0 again */
        if (mlog_switch_due(l, 10 * mlog_framed_size(100))) assert_int_equal(mlog_switch(l), MP_OK);
        for (int i = 0; i < 10; i++) add_rec(l, v++);
        assert_int_equal(mlog_flush(l), MP_OK);
    }
    /* file 0 was reused for records 20..29 after records 0..9; file 1 holds 10..19 */
    if (mlog_switch_due(l, 4 * mlog_framed_size(100))) assert_int_equal(mlog_switch(l), MP_OK);
    for (int i = 0; i < 4; i++) add_rec(l, v++); /* file 1 reused: 30..33, then 14..19 stale */
    assert_int_equal(mlog_flush(l), MP_OK);
    mlog_close(l);
    seen s = replay_all(f->dir, size);
    assert_int_equal(s.n, 14); /* 20..29 (older file), then 30..33: no stale record */
    for (int i = 0; i < 14; i++) assert_int_equal(s.vals[i], 20 + i);
}

static void test_reset_empties(void **state) {
    fx *f = *state;
    mlog *l = open_log(f->dir, 1 << 20);
    assert_int_equal(mlog_reset(l), MP_OK);
    for (int i = 0; i < 5; i++) add_rec(l, i);
    assert_int_equal(mlog_flush(l), MP_OK);
    assert_int_equal(mlog_reset(l), MP_OK);
    mlog_close(l);
    assert_int_equal(replay_all(f->dir, 1 << 20).n, 0);
}

/* ---- the store: a process dies between the log and LMDB ------------------------------- */

/* Records are 57 bytes framed. The N_COMMITTED first ones (57 KB) are committed to LMDB and
 * are more than one 48 KB log file holds, so the log switches files at least once. The rest
 * (34 KB) are logged while LMDB is stuck: the first switch among them is allowed (every
 * earlier record is in LMDB) and leaves an empty file that holds them all, so however the
 * log thread batches them it never has to wait for the stuck LMDB to switch again. */
#define N_COMMITTED 1000
#define N_MSGS 1600
#define LOG_FILE (48 << 10)
static const char CHANNEL[] = "g1";

static void make_msg(uint64_t seq, char *payload, msg_fields *m) {
    snprintf(payload, 32, "message %llu", (unsigned long long)seq);
    *m = (msg_fields){.kind = MSG_KIND_MESSAGE, .message_id = (int64_t)(1000 + seq), .seq = seq, .timestamp = 1,
                      .channel_type = 2, .channel_id = MP_STR(CHANNEL), .from_uid = MP_STR("u1"),
                      .payload = mp_str_c(payload)};
}

static int write_msg(store_wtxn *t, void *arg) {
    msg_fields m;
    char payload[32];
    make_msg((uint64_t)(uintptr_t)arg, payload, &m);
    return store_txn_append_message(t, &m);
}

/* The first LMDB write blocks forever: the log goes on, LMDB has nothing past seq 10. */
static atomic_int g_block_from;
static int write_msg_blocking(store_wtxn *t, void *arg) {
    if ((int)(uintptr_t)arg >= atomic_load(&g_block_from)) pause();
    return write_msg(t, arg);
}

static atomic_int g_logged;
static void on_logged(void *arg, int status) {
    (void)arg;
    if (status == MP_OK) atomic_fetch_add(&g_logged, 1);
}

static int replay_msg(store_wtxn *t, const uint8_t *rec, size_t len) {
    msg_fields m;
    if (store_msg_decode(rec, len, &m) != MP_OK) return MP_EPROTO;
    uint64_t last;
    int rc = store_txn_get_last_seq(t, m.channel_type, m.channel_id, &last);
    if (rc != MP_OK) return rc;
    if (m.seq <= last) return 0;
    rc = store_txn_append_message(t, &m);
    return rc == MP_OK ? 1 : rc;
}

static void submit_msg(store *s, uint64_t seq, store_write_fn fn) {
    msg_fields m;
    char payload[32];
    make_msg(seq, payload, &m);
    uint8_t rec[256];
    size_t n = store_msg_encoded_size(&m);
    store_msg_encode(&m, rec);
    assert_int_equal(store_submit_logged(s, rec, n, fn, on_logged, NULL, (void *)(uintptr_t)seq), MP_OK);
}

static atomic_int g_committed;
static void on_barrier(void *arg, int status) {
    (void)arg;
    if (status == MP_OK) atomic_store(&g_committed, 1);
}

/* Child: seqs 1..N_COMMITTED committed for sure, then the rest logged while LMDB is stuck;
 * exit without closing once every one was reported durable (what a SENDACK waits for). */
static void child_dies_after_logging(const char *dir) {
    store_options o = {.dir = dir, .sync_mode = STORE_SYNC_ALWAYS, .replay = replay_msg, .log_file_size = LOG_FILE};
    store *s;
    if (store_open(&o, &s) != MP_OK) _exit(3);
    atomic_store(&g_logged, 0);
    atomic_store(&g_committed, 0);
    atomic_store(&g_block_from, N_MSGS + 1);
    for (uint64_t q = 1; q <= N_COMMITTED; q++) submit_msg(s, q, write_msg);
    if (store_submit(s, NULL, on_barrier, NULL) != MP_OK) _exit(4);
    while (!atomic_load(&g_committed)) usleep(1000); /* seqs 1..N_COMMITTED are in LMDB */
    atomic_store(&g_block_from, N_COMMITTED + 1);
    for (uint64_t q = N_COMMITTED + 1; q <= N_MSGS; q++) submit_msg(s, q, write_msg_blocking);
    for (int i = 0; i < 60000 && atomic_load(&g_logged) < N_MSGS; i++) usleep(1000); /* a bound, not a pace */
    store_stats st;
    store_get_stats(s, &st);
    if (atomic_load(&g_logged) != N_MSGS || st.log_switches < 1) { /* the replay reads both files */
        fprintf(stderr, "child: %d of %d logged, %llu log switches\n", atomic_load(&g_logged), N_MSGS,
                (unsigned long long)st.log_switches);
        _exit(5);
    }
    _exit(0);
}

/* Fork a child that dies after logging (child_dies_after_logging) and wait for it. */
static void crash_a_child(const char *dir) {
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) child_dies_after_logging(dir);
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
}

/* The test channel's last stored seq. */
static uint64_t stored_last_seq(store *s) {
    store_rtxn *r;
    assert_int_equal(store_rtxn_begin(s, &r), MP_OK);
    uint64_t last = 0;
    assert_int_equal(store_get_last_seq(r, 2, MP_STR(CHANNEL), &last), MP_OK);
    store_rtxn_end(r);
    return last;
}

static void test_store_replays_what_lmdb_lacks(void **state) {
    fx *f = *state;
    crash_a_child(f->dir);

    store_options o = {.dir = f->dir, .sync_mode = STORE_SYNC_ALWAYS, .replay = replay_msg, .log_file_size = LOG_FILE};
    store *s;
    assert_int_equal(store_open(&o, &s), MP_OK);
    store_stats st;
    store_get_stats(s, &st);
    assert_int_equal(st.log_replayed, N_MSGS - N_COMMITTED); /* the stuck ones re-applied, the rest skipped */
    store_rtxn *r;
    assert_int_equal(store_rtxn_begin(s, &r), MP_OK);
    uint64_t last;
    assert_int_equal(store_get_last_seq(r, 2, MP_STR(CHANNEL), &last), MP_OK);
    assert_int_equal(last, N_MSGS);
    for (uint64_t q = 1; q <= N_MSGS; q++) {
        msg_fields m;
        char want[32];
        snprintf(want, sizeof want, "message %llu", (unsigned long long)q);
        assert_int_equal(store_get_message(r, 2, MP_STR(CHANNEL), q, &m), MP_OK);
        assert_true(mp_str_eq_c(m.payload, want));
        assert_int_equal(m.message_id, (int64_t)(1000 + q));
    }
    store_rtxn_end(r);
    store_close(s);

    /* a clean close empties the log: the next open replays nothing */
    assert_int_equal(store_open(&o, &s), MP_OK);
    store_get_stats(s, &st);
    assert_int_equal(st.log_replayed, 0);
    store_close(s);
}

static void test_logged_ops_keep_order_and_callbacks(void **state) {
    fx *f = *state;
    store_options o = {.dir = f->dir, .sync_mode = STORE_SYNC_ALWAYS, .replay = replay_msg, .log_file_size = 16 << 10};
    store *s;
    assert_int_equal(store_open(&o, &s), MP_OK);
    assert_true(store_logging(s));
    atomic_store(&g_logged, 0);
    atomic_store(&g_block_from, INT32_MAX);
    for (uint64_t q = 1; q <= 2000; q++) submit_msg(s, q, write_msg); /* switches files ~20 times */
    store_close(s);
    assert_int_equal(atomic_load(&g_logged), 2000);
    assert_int_equal(store_open(&o, &s), MP_OK);
    store_stats st;
    store_get_stats(s, &st);
    assert_int_equal(st.log_replayed, 0);
    assert_int_equal(stored_last_seq(s), 2000); /* every append found seq == last + 1: order kept */
    store_close(s);
}

/* store.messageLog=false: no log thread; logged callbacks follow the commit; a log left by
 * a run that had one is still replayed. */
static void test_without_the_log(void **state) {
    fx *f = *state;
    crash_a_child(f->dir);
    store_options o = {.dir = f->dir, .sync_mode = STORE_SYNC_ALWAYS, .replay = replay_msg, .no_message_log = 1};
    store *s;
    assert_int_equal(store_open(&o, &s), MP_OK);
    assert_false(store_logging(s));
    store_stats st;
    store_get_stats(s, &st);
    assert_int_equal(st.log_replayed, N_MSGS - N_COMMITTED);
    atomic_store(&g_logged, 0);
    atomic_store(&g_block_from, INT32_MAX);
    for (uint64_t q = N_MSGS + 1; q <= N_MSGS + 100; q++) submit_msg(s, q, write_msg);
    store_close(s);
    assert_int_equal(atomic_load(&g_logged), 100);
    assert_int_equal(store_open(&o, &s), MP_OK);
    store_get_stats(s, &st);
    assert_int_equal(st.log_records, 0);
    assert_int_equal(stored_last_seq(s), N_MSGS + 100);
    store_close(s);
}

int main(void) {
    mp_log_set_level(MP_LOG_WARN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_records_come_back_in_order, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_torn_and_corrupt_tails_end_the_replay, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_switch_keeps_order_and_drops_reused_records, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_reset_empties, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_logged_ops_keep_order_and_callbacks, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_store_replays_what_lmdb_lacks, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_without_the_log, fx_setup, fx_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
