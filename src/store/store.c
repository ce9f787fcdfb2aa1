/* store.c - durable storage on LMDB: one environment, named sub-databases with big-endian
 * keys, and the group-commit writer thread.
 *
 * Sub-databases and layouts (ck = channel key = type u8 + idlen u16 + id):
 *   msg            ck + seq u64                 -> message record (store_msg_encode)
 *   msg_id         message_id u64 (sign flipped) -> ck + seq (the msg key)
 *   client_msg_no  ck + client_msg_no            -> seq u64
 *   channel        ck                            -> info record
 *   last_seq       ck                            -> seq u64
 *   subscriber / blacklist / whitelist   ck + uid -> (empty)
 *   device         uidlen u16 + uid + flag u8    -> format u8, level u8, token
 *   conversation   uidlen u16 + uid + ck         -> conv record
 *   sysuid         uid                           -> (empty)
 *   meta           "format"                      -> u8 layout version
 * Length prefixes make every prefix scan exact: uid "a" never matches the rows of "ab".
 *
 * Writer: ops queue on a mutex-protected list. The writer takes up to max_batch of them,
 * runs them in one batch transaction, commits once and only then calls the done
 * callbacks. If an op fails, the batch is aborted and re-run with each op in a nested
 * transaction, so only the failed op's changes are lost (run_flat, run_nested). Ops that arrive during a commit form the next batch. On
 * MDB_MAP_FULL the batch is aborted, the map doubled and the batch re-run; LMDB requires
 * that no transaction is open in the process while the map is resized, so read
 * transactions pass through a gate (readers counter + resizing flag) the writer can close. */
#include "store.h"

#include <errno.h>
#include <lmdb.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "../common/buf.h"
#include "../common/log.h"
#include "../common/metrics.h"
#include "../common/tsched.h"
#include "msglog.h"
#include "wbmap.h"

#define COMP "store"
#define FORMAT_VERSION 1
#define MSG_FORMAT 1
#define INFO_FORMAT 1
#define CONV_FORMAT 1
#define DEVICE_FORMAT 1
#define INFO_SIZE 22
#define CONV_SIZE 34
#define MSG_FIXED 28
#define DEFAULT_MAP_SIZE (64ull << 30)
#define DEFAULT_BATCH 4096
#define DEFAULT_SYNC_MS 100
#define MAX_READERS 512
#define MAX_GROWS 8
#define RESIZE_WAIT_MS 5000
#define RTXN_POOL 16
#define DEFAULT_LOG_FILE (32ull << 20)
#define REPLAY_CHUNK 1000 /* records per transaction when replaying the log */

enum {
    DB_MSG,
    DB_MSGID,
    DB_CMN,
    DB_CHAN,
    DB_LASTSEQ,
    DB_SUB,
    DB_BLACK,
    DB_WHITE,
    DB_DEVICE,
    DB_CONV,
    DB_SYSUID,
    DB_META,
    DB_KV,
    DB_COUNT
};
static const char *const db_names[DB_COUNT] = {
    "msg", "msg_id", "client_msg_no", "channel", "last_seq", "subscriber",
    "blacklist", "whitelist", "device", "conversation", "sysuid", "meta", "kv",
};

typedef struct store_op {
    struct store_op *next;
    store_write_fn fn;
    store_done_fn done;
    store_logged_fn logged;
    void *arg;
    int status;
    uint32_t rec_len; /* > 0: a logged op (store_submit_logged), its record follows */
    uint8_t rec[];
} store_op;

struct store {
    MDB_env *env;
    MDB_dbi dbi[DB_COUNT];
    size_t maxkey;
    int sync_mode;
    uint32_t sync_interval_ms;
    uint32_t max_batch;
    uint32_t apply_interval_ms; /* with the log only (store_options) */
    uint64_t last_commit_ms;    /* writer: when the last batch was taken */
    uint64_t waiting;           /* with mu: ops in the writer's queue whose submitter waits for
                                 * their commit: barriers and writes without a log record */

    pthread_mutex_t mu; /* guards head, tail, queued, closing */
    pthread_cond_t cond;
    store_op *head, *tail;
    uint64_t queued;
    int closing;
    pthread_t thread;

    /* writer thread only */
    int dirty;
    uint64_t next_sync_ms;

    /* Message log (msglog.h; STORE_SYNC_ALWAYS only, else NULL). Submitted ops queue on
     * lhead first; the log thread appends the records of a batch, fdatasyncs, runs the
     * logged callbacks and moves the batch, in order, to the writer's queue (head). */
    mlog *log;
    pthread_mutex_t lmu; /* guards lhead, ltail, lqueued, lclosing */
    pthread_cond_t lcond;
    store_op *lhead, *ltail;
    uint64_t lqueued;
    int lclosing;
    pthread_t log_thread;
    uint64_t log_file_start;      /* log thread: st_log_records when the current file began */
    atomic_uint_fast64_t log_applied; /* writer: logged records committed to LMDB */
    pthread_cond_t applied_cond;  /* with mu: log_applied moved or the writer took a batch */
    mt_hist log_ns;               /* log thread: append + fdatasync */

    /* read gate for map resizes */
    atomic_uint readers;
    atomic_int resizing;
    pthread_mutex_t gate_mu;
    pthread_cond_t gate_cond;

    /* Reset read transactions kept for reuse: beginning one from scratch allocates and
     * takes LMDB's reader-table lock, and the send path reads once per message. */
    pthread_mutex_t pool_mu;
    struct store_rtxn *pool[RTXN_POOL];
    int n_pool;

    atomic_uint_fast64_t st_submitted, st_completed, st_commits, st_commit_failures, st_largest_batch,
        st_map_resizes, st_syncs, st_map_size, st_nested_reruns, st_log_records, st_log_switches,
        st_log_replayed, st_barriers;
    mt_hist commit_ns, batch_ops; /* written by the writer thread only (metrics.h) */
    wbmap *wb;                    /* writer thread: run_flat's write-back rows */
};

/* One transaction as the accessors see it; lmdb_err keeps the first LMDB failure so the
 * writer can tell "fn refused" from "LMDB failed" (and MAP_FULL from the rest). */
typedef struct tx {
    store *s;
    MDB_txn *txn;
    int lmdb_err;
    wbmap *wb; /* a flat batch's write-back rows (cached_db), else NULL */
} tx;

struct store_wtxn {
    tx t;
};
struct store_rtxn {
    tx t;
};

static void stat_add(atomic_uint_fast64_t *c, uint64_t n) { atomic_fetch_add_explicit(c, n, memory_order_relaxed); }

/* ---- errors ------------------------------------------------------------------------ */

static int tx_err(tx *t, int rc, const char *what) {
    switch (rc) {
    case MDB_SUCCESS: return MP_OK;
    case MDB_NOTFOUND: return MP_ENOTFOUND;
    case MDB_MAP_FULL:
    case MDB_TXN_FULL: /* the writer handles these: no log here */
        if (!t->lmdb_err) t->lmdb_err = rc;
        return MP_EIO;
    case MDB_BAD_VALSIZE:
        if (!t->lmdb_err) t->lmdb_err = rc;
        return MP_ETOOBIG;
    default:
        if (!t->lmdb_err) t->lmdb_err = rc;
        LOG_ERROR(COMP, "%s: %s", what, mdb_strerror(rc));
        return MP_EIO;
    }
}

static int corrupt(const char *what) {
    LOG_ERROR(COMP, "corrupt record in %s", what);
    return MP_EIO;
}

/* ---- keys -------------------------------------------------------------------------- */

#define KEY_CAP (STORE_MAX_KEY + 1)

typedef struct kbuf {
    size_t n;
    int over;
    uint8_t b[KEY_CAP];
} kbuf;

static void kb_put(kbuf *k, const void *p, size_t n) {
    if (k->over || n > KEY_CAP - k->n) {
        k->over = 1;
        return;
    }
    if (n) memcpy(k->b + k->n, p, n);
    k->n += n;
}
static void kb_u8(kbuf *k, uint8_t v) { kb_put(k, &v, 1); }
static void kb_u64(kbuf *k, uint64_t v) {
    uint8_t t[8];
    mp_store_u64be(t, v);
    kb_put(k, t, 8);
}
static void kb_str16(kbuf *k, mp_str s) {
    if (s.len > 0xffff) {
        k->over = 1;
        return;
    }
    uint8_t t[2];
    mp_store_u16be(t, (uint16_t)s.len);
    kb_put(k, t, 2);
    kb_put(k, s.p, s.len);
}
static void kb_chan(kbuf *k, uint8_t type, mp_str id) {
    kb_u8(k, type);
    kb_str16(k, id);
}
static int kb_check(const store *s, const kbuf *k) {
    return k->over || k->n > s->maxkey || k->n == 0 ? MP_ETOOBIG : MP_OK;
}
static MDB_val kb_val(kbuf *k) { return (MDB_val){k->n, k->b}; }

/* Parse a channel key at p; returns bytes used, 0 if malformed. */
static size_t parse_chan(const uint8_t *p, size_t n, uint8_t *type, mp_str *id) {
    if (n < 3) return 0;
    size_t len = mp_load_u16be(p + 1);
    if (n < 3 + len) return 0;
    *type = p[0];
    *id = (mp_str){(const char *)p + 3, (uint32_t)len};
    return 3 + len;
}

static int valid_set(int set) { return set == STORE_SUBSCRIBERS || set == STORE_BLACKLIST || set == STORE_WHITELIST; }
static MDB_dbi set_dbi(const store *s, int set) { return s->dbi[DB_SUB + set]; }

/* message_id keys sort by signed value. */
static void msgid_key(uint8_t out[8], int64_t id) { mp_store_u64be(out, (uint64_t)id ^ (1ull << 63)); }

/* ---- message record ------------------------------------------------------------------ */

static size_t varint_size(uint32_t v) {
    size_t n = 1;
    while (v >= 0x80) {
        v >>= 7;
        n++;
    }
    return n;
}

static uint8_t *varint_put(uint8_t *p, uint32_t v) {
    while (v >= 0x80) {
        *p++ = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    *p++ = (uint8_t)v;
    return p;
}

static int varint_get(const uint8_t **pp, const uint8_t *end, uint32_t *out) {
    const uint8_t *p = *pp;
    uint32_t v = 0;
    for (int shift = 0; shift < 35; shift += 7) {
        if (p >= end) return MP_EPROTO;
        uint8_t b = *p++;
        if (shift == 28 && (b & 0xf0)) return MP_EPROTO; /* over 32 bits */
        v |= (uint32_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) {
            *pp = p;
            *out = v;
            return MP_OK;
        }
    }
    return MP_EPROTO;
}

static size_t str_size(mp_str s) { return varint_size(s.len) + s.len; }

size_t store_msg_encoded_size(const msg_fields *f) {
    return MSG_FIXED + str_size(f->channel_id) + str_size(f->from_uid) + str_size(f->client_msg_no) +
           str_size(f->topic) + str_size(f->payload);
}

static uint8_t *put_str(uint8_t *p, mp_str s) {
    p = varint_put(p, s.len);
    if (s.len) memcpy(p, s.p, s.len);
    return p + s.len;
}

/* Format 1: format u8, message_id i64, seq u64, timestamp u32, expire u32, flags u8,
 * setting u8, channel_type u8, then channel_id, from_uid, client_msg_no, topic, payload
 * each as varint length + bytes. Integers big-endian. */
void store_msg_encode(const msg_fields *f, uint8_t *out) {
    uint8_t *p = out;
    *p++ = MSG_FORMAT;
    mp_store_u64be(p, (uint64_t)f->message_id);
    mp_store_u64be(p + 8, f->seq);
    mp_store_u32be(p + 16, f->timestamp);
    mp_store_u32be(p + 20, f->expire);
    p += 24;
    *p++ = f->flags;
    *p++ = f->setting;
    *p++ = f->channel_type;
    p = put_str(p, f->channel_id);
    p = put_str(p, f->from_uid);
    p = put_str(p, f->client_msg_no);
    p = put_str(p, f->topic);
    p = put_str(p, f->payload);
    MP_ASSERT((size_t)(p - out) == store_msg_encoded_size(f));
}

static int get_str(const uint8_t **pp, const uint8_t *end, mp_str *out) {
    uint32_t len;
    if (varint_get(pp, end, &len) != MP_OK) return MP_EPROTO;
    if ((size_t)(end - *pp) < len) return MP_EPROTO;
    *out = (mp_str){len ? (const char *)*pp : "", len};
    *pp += len;
    return MP_OK;
}

int store_msg_decode(const uint8_t *p, size_t len, msg_fields *out) {
    if (!p || len < MSG_FIXED || p[0] != MSG_FORMAT) return MP_EPROTO;
    const uint8_t *end = p + len;
    msg_fields f;
    memset(&f, 0, sizeof f);
    f.message_id = (int64_t)mp_load_u64be(p + 1);
    f.seq = mp_load_u64be(p + 9);
    f.timestamp = mp_load_u32be(p + 17);
    f.expire = mp_load_u32be(p + 21);
    f.flags = p[25];
    f.setting = p[26];
    f.channel_type = p[27];
    p += MSG_FIXED;
    if (get_str(&p, end, &f.channel_id) || get_str(&p, end, &f.from_uid) || get_str(&p, end, &f.client_msg_no) ||
        get_str(&p, end, &f.topic) || get_str(&p, end, &f.payload))
        return MP_EPROTO;
    if (p != end) return MP_EPROTO;
    *out = f;
    return MP_OK;
}

/* ---- small records ------------------------------------------------------------------ */

static void info_encode(const store_channel_info *i, uint8_t out[INFO_SIZE]) {
    out[0] = INFO_FORMAT;
    out[1] = i->ban;
    out[2] = i->disband;
    out[3] = i->send_ban;
    out[4] = i->large;
    out[5] = i->allow_stranger;
    mp_store_u64be(out + 6, i->created_ms);
    mp_store_u64be(out + 14, i->updated_ms);
}

static int info_decode(const MDB_val *v, store_channel_info *i) {
    const uint8_t *p = v->mv_data;
    if (v->mv_size < INFO_SIZE || p[0] != INFO_FORMAT) return corrupt("channel");
    i->ban = p[1];
    i->disband = p[2];
    i->send_ban = p[3];
    i->large = p[4];
    i->allow_stranger = p[5];
    i->created_ms = mp_load_u64be(p + 6);
    i->updated_ms = mp_load_u64be(p + 14);
    return MP_OK;
}

static void conv_encode(const store_conv *c, uint8_t out[CONV_SIZE]) {
    out[0] = CONV_FORMAT;
    out[1] = c->type;
    mp_store_u64be(out + 2, c->readed_to_seq);
    mp_store_u64be(out + 10, c->deleted_at_seq);
    mp_store_u64be(out + 18, c->created_at_ns);
    mp_store_u64be(out + 26, c->updated_at_ns);
}

static int conv_decode(const MDB_val *v, store_conv *c) {
    const uint8_t *p = v->mv_data;
    if (v->mv_size < CONV_SIZE || p[0] != CONV_FORMAT) return corrupt("conversation");
    c->type = p[1];
    c->readed_to_seq = mp_load_u64be(p + 2);
    c->deleted_at_seq = mp_load_u64be(p + 10);
    c->created_at_ns = mp_load_u64be(p + 18);
    c->updated_at_ns = mp_load_u64be(p + 26);
    return MP_OK;
}

/* ---- shared accessors (read or write transaction) ------------------------------------ */

/* The tables a batch writes back (wbmap.h): every message reads and rewrites its channel's
 * last seq and, in groups, reads and rewrites its sender's conversation. A batch holds many
 * messages of few channels and senders, so each row reaches LMDB once per commit. Only
 * point reads and writes go through the map; prefix_scan writes it back first. */
static int cached_db(int db) { return db == DB_LASTSEQ || db == DB_CONV; }

/* Straight to LMDB, whatever the write-back map holds. */
static int db_get(tx *t, int db, MDB_val key, MDB_val *v) {
    return tx_err(t, mdb_get(t->txn, t->s->dbi[db], &key, v), db_names[db]);
}

static int db_put(tx *t, int db, MDB_val key, const void *p, size_t n) {
    MDB_val val = {n, (void *)(p ? p : "")};
    return tx_err(t, mdb_put(t->txn, t->s->dbi[db], &key, &val, 0), db_names[db]);
}

/* Delete; absent is fine. */
static int db_del(tx *t, int db, MDB_val key) {
    int rc = tx_err(t, mdb_del(t->txn, t->s->dbi[db], &key, NULL), db_names[db]);
    return rc == MP_ENOTFOUND ? MP_OK : rc;
}

static int tx_get(tx *t, int db, kbuf *k, MDB_val *v) {
    if (!t->wb || !cached_db(db)) return db_get(t, db, kb_val(k), v);
    const wb_entry *e = wbmap_get(t->wb, (uint8_t)db, k->b, k->n);
    if (e) {
        *v = (MDB_val){e->vlen, e->val};
        return e->state == WB_PRESENT || e->state == WB_PUT ? MP_OK : MP_ENOTFOUND;
    }
    int rc = db_get(t, db, kb_val(k), v);
    if (rc == MP_OK || rc == MP_ENOTFOUND)
        wbmap_set(t->wb, (uint8_t)db, k->b, k->n, rc == MP_OK ? WB_PRESENT : WB_ABSENT, v->mv_data, v->mv_size);
    return rc;
}

static int tx_put(tx *t, int db, kbuf *k, const void *p, size_t n) {
    if (!t->wb || !cached_db(db)) return db_put(t, db, kb_val(k), p, n);
    wbmap_set(t->wb, (uint8_t)db, k->b, k->n, WB_PUT, p, n);
    return MP_OK;
}

/* Delete; absent is fine. */
static int tx_del(tx *t, int db, kbuf *k) {
    if (!t->wb || !cached_db(db)) return db_del(t, db, kb_val(k));
    wbmap_set(t->wb, (uint8_t)db, k->b, k->n, WB_DEL, NULL, 0);
    return MP_OK;
}

static int write_back_row(void *ctx, const wb_entry *e) {
    MDB_val key = {e->klen, (void *)e->key};
    return e->state == WB_PUT ? db_put(ctx, e->tag, key, e->val, e->vlen) : db_del(ctx, e->tag, key);
}

/* Write the batch's dirty rows to LMDB (before a commit or a scan); they stay in the map,
 * clean. MP_OK, or the first failure (also in t->lmdb_err). */
static int tx_write_back(tx *t) {
    return t->wb ? wbmap_flush(t->wb, write_back_row, t) : MP_OK;
}

static int tx_last_seq(tx *t, kbuf *ck, uint64_t *seq) {
    MDB_val v;
    int rc = tx_get(t, DB_LASTSEQ, ck, &v);
    if (rc == MP_ENOTFOUND) {
        *seq = 0;
        return MP_OK;
    }
    if (rc) return rc;
    if (v.mv_size != 8) return corrupt("last_seq");
    *seq = mp_load_u64be(v.mv_data);
    return MP_OK;
}

static int get_last_seq(tx *t, uint8_t type, mp_str id, uint64_t *seq) {
    kbuf ck = {0};
    kb_chan(&ck, type, id);
    *seq = 0;
    int rc = kb_check(t->s, &ck);
    return rc ? rc : tx_last_seq(t, &ck, seq);
}

static int get_channel_info(tx *t, uint8_t type, mp_str id, store_channel_info *info) {
    kbuf ck = {0};
    kb_chan(&ck, type, id);
    int rc = kb_check(t->s, &ck);
    if (rc) return rc;
    MDB_val v;
    rc = tx_get(t, DB_CHAN, &ck, &v);
    return rc ? rc : info_decode(&v, info);
}

static int decode_msg_val(const MDB_val *v, msg_fields *out) {
    return store_msg_decode(v->mv_data, v->mv_size, out) == MP_OK ? MP_OK : corrupt("msg");
}

static int get_message_key(tx *t, kbuf *mk, msg_fields *out) {
    MDB_val v;
    int rc = tx_get(t, DB_MSG, mk, &v);
    return rc ? rc : decode_msg_val(&v, out);
}

static int get_message(tx *t, uint8_t type, mp_str id, uint64_t seq, msg_fields *out) {
    kbuf mk = {0};
    kb_chan(&mk, type, id);
    kb_u64(&mk, seq);
    int rc = kb_check(t->s, &mk);
    return rc ? rc : get_message_key(t, &mk, out);
}

static int get_message_by_id(tx *t, int64_t message_id, msg_fields *out) {
    kbuf ik = {0};
    uint8_t idk[8];
    msgid_key(idk, message_id);
    kb_put(&ik, idk, 8);
    MDB_val v;
    int rc = tx_get(t, DB_MSGID, &ik, &v);
    if (rc) return rc;
    if (v.mv_size < 3 + 8 || v.mv_size > STORE_MAX_KEY) return corrupt("msg_id");
    kbuf mk = {0};
    kb_put(&mk, v.mv_data, v.mv_size);
    rc = get_message_key(t, &mk, out);
    return rc == MP_ENOTFOUND ? corrupt("msg_id") : rc;
}

static int get_message_by_cmn(tx *t, uint8_t type, mp_str id, mp_str cmn, msg_fields *out) {
    if (cmn.len == 0) return MP_ENOTFOUND;
    kbuf nk = {0};
    kb_chan(&nk, type, id);
    size_t cklen = nk.n;
    kb_put(&nk, cmn.p, cmn.len);
    if (kb_check(t->s, &nk)) return MP_ENOTFOUND; /* too long to have been indexed */
    MDB_val v;
    int rc = tx_get(t, DB_CMN, &nk, &v);
    if (rc) return rc;
    if (v.mv_size != 8) return corrupt("client_msg_no");
    nk.n = cklen; /* reuse the channel key */
    kb_u64(&nk, mp_load_u64be(v.mv_data));
    if (kb_check(t->s, &nk)) return corrupt("client_msg_no");
    rc = get_message_key(t, &nk, out);
    return rc == MP_ENOTFOUND ? corrupt("client_msg_no") : rc;
}

static int scan_messages(tx *t, uint8_t type, mp_str id, uint64_t lo, uint64_t hi, int reverse, size_t limit,
                         store_msg_cb cb, void *ctx) {
    kbuf sk = {0};
    kb_chan(&sk, type, id);
    size_t cklen = sk.n;
    kb_u64(&sk, reverse ? hi : lo);
    int ret = kb_check(t->s, &sk);
    if (ret) return ret;
    if (lo > hi) return MP_OK;
    MDB_cursor *c;
    int rc = mdb_cursor_open(t->txn, t->s->dbi[DB_MSG], &c);
    if (rc) return tx_err(t, rc, "msg cursor");
    MDB_val k = kb_val(&sk), v;
    rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE);
    if (reverse) {
        /* SET_RANGE lands on the first key >= (channel, hi); step back unless it is hi. */
        if (rc == MDB_NOTFOUND)
            rc = mdb_cursor_get(c, &k, &v, MDB_LAST);
        else if (rc == 0 && !(k.mv_size == sk.n && memcmp(k.mv_data, sk.b, sk.n) == 0))
            rc = mdb_cursor_get(c, &k, &v, MDB_PREV);
    }
    size_t n = 0;
    while (rc == 0) {
        if (k.mv_size != cklen + 8 || memcmp(k.mv_data, sk.b, cklen) != 0) break;
        uint64_t seq = mp_load_u64be((const uint8_t *)k.mv_data + cklen);
        if (reverse ? seq < lo : seq > hi) break;
        msg_fields m;
        if ((ret = decode_msg_val(&v, &m)) != MP_OK) break;
        if (cb(ctx, &m)) break;
        if (limit && ++n >= limit) break;
        rc = mdb_cursor_get(c, &k, &v, reverse ? MDB_PREV : MDB_NEXT);
    }
    if (ret == MP_OK && rc != 0 && rc != MDB_NOTFOUND) ret = tx_err(t, rc, "msg scan");
    mdb_cursor_close(c);
    return ret;
}

/* Visit every row whose key starts with prefix (all rows when plen == 0). fn returns
 * 0 to go on, > 0 to stop, < 0 (an MP_E* code) to fail. */
typedef int (*kv_fn)(void *ctx, const MDB_val *k, const MDB_val *v);

static int prefix_scan(tx *t, int db, const uint8_t *prefix, size_t plen, kv_fn fn, void *ctx) {
    MDB_cursor *c;
    int rc = cached_db(db) ? tx_write_back(t) : MP_OK;
    if (rc != MP_OK) return rc;
    rc = mdb_cursor_open(t->txn, t->s->dbi[db], &c);
    if (rc) return tx_err(t, rc, db_names[db]);
    MDB_val k = {plen, (void *)prefix}, v;
    rc = mdb_cursor_get(c, &k, &v, plen ? MDB_SET_RANGE : MDB_FIRST);
    int ret = MP_OK;
    while (rc == 0) {
        if (plen && (k.mv_size < plen || memcmp(k.mv_data, prefix, plen) != 0)) break;
        int r = fn(ctx, &k, &v);
        if (r < 0) ret = r;
        if (r) break;
        rc = mdb_cursor_get(c, &k, &v, MDB_NEXT);
    }
    if (ret == MP_OK && rc != 0 && rc != MDB_NOTFOUND) ret = tx_err(t, rc, db_names[db]);
    mdb_cursor_close(c);
    return ret;
}

typedef struct uid_visit {
    size_t skip; /* prefix bytes before the uid */
    store_uid_cb cb;
    void *ctx;
    uint64_t count;
} uid_visit;

static int visit_uid(void *ctx, const MDB_val *k, const MDB_val *v) {
    (void)v;
    uid_visit *u = ctx;
    u->count++;
    if (!u->cb) return 0;
    mp_str uid = {(const char *)k->mv_data + u->skip, (uint32_t)(k->mv_size - u->skip)};
    return u->cb(u->ctx, uid) ? 1 : 0;
}

static int scan_set(tx *t, int set, uint8_t type, mp_str id, store_uid_cb cb, void *ctx, uint64_t *count) {
    if (count) *count = 0;
    if (!valid_set(set)) return MP_EINVAL;
    kbuf ck = {0};
    kb_chan(&ck, type, id);
    int rc = kb_check(t->s, &ck);
    if (rc) return rc;
    uid_visit u = {ck.n, cb, ctx, 0};
    rc = prefix_scan(t, DB_SUB + set, ck.b, ck.n, visit_uid, &u);
    if (count) *count = rc == MP_OK ? u.count : 0;
    return rc;
}

static int set_contains(tx *t, int set, uint8_t type, mp_str id, mp_str uid) {
    if (!valid_set(set)) return MP_EINVAL;
    kbuf k = {0};
    kb_chan(&k, type, id);
    kb_put(&k, uid.p, uid.len);
    if (kb_check(t->s, &k)) return 0; /* could never have been added */
    MDB_val v;
    int rc = tx_get(t, DB_SUB + set, &k, &v);
    return rc == MP_OK ? 1 : rc == MP_ENOTFOUND ? 0 : rc;
}

static int conv_key(const store *s, kbuf *k, mp_str uid, uint8_t type, mp_str id) {
    kb_str16(k, uid);
    kb_chan(k, type, id);
    return kb_check(s, k);
}

static int get_conv(tx *t, mp_str uid, uint8_t type, mp_str id, store_conv *c) {
    kbuf k = {0};
    int rc = conv_key(t->s, &k, uid, type, id);
    if (rc) return rc == MP_ETOOBIG ? MP_ENOTFOUND : rc;
    MDB_val v;
    rc = tx_get(t, DB_CONV, &k, &v);
    return rc ? rc : conv_decode(&v, c);
}

/* ---- write operations ------------------------------------------------------------- */

int store_txn_append_message(store_wtxn *w, const msg_fields *f) {
    tx *t = &w->t;
    kbuf mk = {0};
    kb_chan(&mk, f->channel_type, f->channel_id);
    size_t cklen = mk.n;
    kb_u64(&mk, f->seq);
    int rc = kb_check(t->s, &mk);
    if (rc) return rc;
    kbuf nk = {0};
    if (f->client_msg_no.len) {
        kb_put(&nk, mk.b, cklen);
        kb_put(&nk, f->client_msg_no.p, f->client_msg_no.len);
        if ((rc = kb_check(t->s, &nk)) != MP_OK) return rc;
    }
    kbuf ck = {0};
    kb_put(&ck, mk.b, cklen);
    uint64_t last;
    if ((rc = tx_last_seq(t, &ck, &last)) != MP_OK) return rc;
    if (f->seq != last + 1) return MP_EINVAL;

    MDB_val key = kb_val(&mk), val = {store_msg_encoded_size(f), NULL};
    rc = mdb_put(t->txn, t->s->dbi[DB_MSG], &key, &val, MDB_RESERVE);
    if (rc) return tx_err(t, rc, "msg");
    store_msg_encode(f, val.mv_data);

    kbuf ik = {0};
    uint8_t idk[8];
    msgid_key(idk, f->message_id);
    kb_put(&ik, idk, 8);
    if ((rc = tx_put(t, DB_MSGID, &ik, mk.b, mk.n)) != MP_OK) return rc;

    uint8_t seqv[8];
    mp_store_u64be(seqv, f->seq);
    if (f->client_msg_no.len && (rc = tx_put(t, DB_CMN, &nk, seqv, 8)) != MP_OK) return rc;
    return tx_put(t, DB_LASTSEQ, &ck, seqv, 8);
}

int store_txn_get_last_seq(store_wtxn *t, uint8_t type, mp_str id, uint64_t *seq) {
    return get_last_seq(&t->t, type, id, seq);
}

int store_txn_put_channel_info(store_wtxn *w, uint8_t type, mp_str id, const store_channel_info *info) {
    kbuf ck = {0};
    kb_chan(&ck, type, id);
    int rc = kb_check(w->t.s, &ck);
    if (rc) return rc;
    uint8_t v[INFO_SIZE];
    info_encode(info, v);
    return tx_put(&w->t, DB_CHAN, &ck, v, sizeof v);
}

int store_txn_get_channel_info(store_wtxn *t, uint8_t type, mp_str id, store_channel_info *info) {
    return get_channel_info(&t->t, type, id, info);
}

int store_txn_set_member(store_wtxn *w, int set, uint8_t type, mp_str id, mp_str uid, int present) {
    if (!valid_set(set)) return MP_EINVAL;
    kbuf k = {0};
    kb_chan(&k, type, id);
    kb_put(&k, uid.p, uid.len);
    int rc = kb_check(w->t.s, &k);
    if (rc) return present ? rc : MP_OK; /* such a member cannot exist */
    return present ? tx_put(&w->t, DB_SUB + set, &k, NULL, 0) : tx_del(&w->t, DB_SUB + set, &k);
}

int store_txn_clear_set(store_wtxn *w, int set, uint8_t type, mp_str id) {
    tx *t = &w->t;
    if (!valid_set(set)) return MP_EINVAL;
    kbuf ck = {0};
    kb_chan(&ck, type, id);
    int rc = kb_check(t->s, &ck);
    if (rc) return rc;
    MDB_cursor *c;
    if ((rc = mdb_cursor_open(t->txn, set_dbi(t->s, set), &c)) != 0) return tx_err(t, rc, "set cursor");
    MDB_val k = kb_val(&ck), v;
    rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE);
    while (rc == 0 && k.mv_size >= ck.n && memcmp(k.mv_data, ck.b, ck.n) == 0) {
        if ((rc = mdb_cursor_del(c, 0)) != 0) break;
        /* after a delete the cursor already sits on the next row; MDB_NEXT returns it */
        rc = mdb_cursor_get(c, &k, &v, MDB_NEXT);
    }
    mdb_cursor_close(c);
    return rc == 0 || rc == MDB_NOTFOUND ? MP_OK : tx_err(t, rc, db_names[DB_SUB + set]);
}

static int device_key(const store *s, kbuf *k, mp_str uid, uint8_t device_flag) {
    kb_str16(k, uid);
    kb_u8(k, device_flag);
    return kb_check(s, k);
}

int store_txn_put_device(store_wtxn *w, mp_str uid, uint8_t device_flag, mp_str token, uint8_t level) {
    tx *t = &w->t;
    kbuf k = {0};
    int rc = device_key(t->s, &k, uid, device_flag);
    if (rc) return rc;
    MDB_val key = kb_val(&k), val = {2 + (size_t)token.len, NULL};
    rc = mdb_put(t->txn, t->s->dbi[DB_DEVICE], &key, &val, MDB_RESERVE);
    if (rc) return tx_err(t, rc, "device");
    uint8_t *p = val.mv_data;
    p[0] = DEVICE_FORMAT;
    p[1] = level;
    if (token.len) memcpy(p + 2, token.p, token.len);
    return MP_OK;
}

int store_txn_get_conv(store_wtxn *t, mp_str uid, uint8_t type, mp_str id, store_conv *c) {
    return get_conv(&t->t, uid, type, id, c);
}

int store_txn_put_conv(store_wtxn *w, mp_str uid, uint8_t type, mp_str id, const store_conv *c) {
    kbuf k = {0};
    int rc = conv_key(w->t.s, &k, uid, type, id);
    if (rc) return rc;
    uint8_t v[CONV_SIZE];
    conv_encode(c, v);
    return tx_put(&w->t, DB_CONV, &k, v, sizeof v);
}

int store_txn_del_conv(store_wtxn *w, mp_str uid, uint8_t type, mp_str id) {
    kbuf k = {0};
    if (conv_key(w->t.s, &k, uid, type, id)) return MP_OK;
    return tx_del(&w->t, DB_CONV, &k);
}

int store_txn_set_sysuid(store_wtxn *w, mp_str uid, int present) {
    if (uid.len == 0) return MP_EINVAL;
    kbuf k = {0};
    kb_put(&k, uid.p, uid.len);
    int rc = kb_check(w->t.s, &k);
    if (rc) return present ? rc : MP_OK;
    return present ? tx_put(&w->t, DB_SYSUID, &k, NULL, 0) : tx_del(&w->t, DB_SYSUID, &k);
}

/* ---- generic key/value rows ------------------------------------------------------------ */

static int kv_key(const store *s, kbuf *k, uint8_t ns, mp_str key) {
    kb_u8(k, ns);
    kb_put(k, key.p, key.len);
    return kb_check(s, k);
}

static int kv_get(tx *t, uint8_t ns, mp_str key, mp_str *val) {
    kbuf k = {0};
    if (kv_key(t->s, &k, ns, key)) return MP_ENOTFOUND; /* could never have been stored */
    MDB_val v;
    int rc = tx_get(t, DB_KV, &k, &v);
    if (rc == MP_OK) *val = (mp_str){(const char *)v.mv_data, (uint32_t)v.mv_size};
    return rc;
}

int store_txn_put_kv(store_wtxn *w, uint8_t ns, mp_str key, mp_str val) {
    kbuf k = {0};
    int rc = kv_key(w->t.s, &k, ns, key);
    return rc ? rc : tx_put(&w->t, DB_KV, &k, val.p, val.len);
}

int store_txn_del_kv(store_wtxn *w, uint8_t ns, mp_str key) {
    kbuf k = {0};
    if (kv_key(w->t.s, &k, ns, key)) return MP_OK;
    return tx_del(&w->t, DB_KV, &k);
}

int store_txn_get_kv(store_wtxn *w, uint8_t ns, mp_str key, mp_str *val) { return kv_get(&w->t, ns, key, val); }

int store_get_kv(store_rtxn *r, uint8_t ns, mp_str key, mp_str *val) { return kv_get(&r->t, ns, key, val); }

typedef struct kv_visit {
    store_kv_cb cb;
    void *ctx;
} kv_visit;

static int visit_kv(void *ctx, const MDB_val *k, const MDB_val *v) {
    kv_visit *kv = ctx;
    mp_str key = {(const char *)k->mv_data + 1, (uint32_t)(k->mv_size - 1)};
    return kv->cb(kv->ctx, key, (mp_str){(const char *)v->mv_data, (uint32_t)v->mv_size}) ? 1 : 0;
}

int store_scan_kv(store_rtxn *r, uint8_t ns, mp_str prefix, store_kv_cb cb, void *ctx) {
    kbuf k = {0};
    kb_u8(&k, ns);
    kb_put(&k, prefix.p, prefix.len);
    if (k.over || k.n > r->t.s->maxkey) return MP_OK; /* no key can have this prefix */
    kv_visit kv = {cb, ctx};
    return prefix_scan(&r->t, DB_KV, k.b, k.n, visit_kv, &kv);
}

int store_txn_scan_set(store_wtxn *t, int set, uint8_t type, mp_str id, store_uid_cb cb, void *ctx) {
    return scan_set(&t->t, set, type, id, cb, ctx, NULL);
}

int store_txn_set_contains(store_wtxn *t, int set, uint8_t type, mp_str id, mp_str uid) {
    return set_contains(&t->t, set, type, id, uid);
}

/* ---- read transactions --------------------------------------------------------------- */

static void gate_leave(store *s) {
    if (atomic_fetch_sub(&s->readers, 1) == 1 && atomic_load(&s->resizing)) {
        pthread_mutex_lock(&s->gate_mu);
        pthread_cond_broadcast(&s->gate_cond);
        pthread_mutex_unlock(&s->gate_mu);
    }
}

/* Count this reader in; wait while the writer is resizing the map. */
static void gate_enter(store *s) {
    for (;;) {
        atomic_fetch_add(&s->readers, 1);
        if (!atomic_load(&s->resizing)) return;
        gate_leave(s);
        pthread_mutex_lock(&s->gate_mu);
        while (atomic_load(&s->resizing)) pthread_cond_wait(&s->gate_cond, &s->gate_mu);
        pthread_mutex_unlock(&s->gate_mu);
    }
}

/* A pooled (reset) read transaction, or NULL. */
static store_rtxn *pool_take(store *s) {
    pthread_mutex_lock(&s->pool_mu);
    store_rtxn *r = s->n_pool ? s->pool[--s->n_pool] : NULL;
    pthread_mutex_unlock(&s->pool_mu);
    return r;
}

/* Keep r (already reset) for reuse; 0 if the pool is full. */
static int pool_put(store *s, store_rtxn *r) {
    pthread_mutex_lock(&s->pool_mu);
    int kept = s->n_pool < RTXN_POOL;
    if (kept) s->pool[s->n_pool++] = r;
    pthread_mutex_unlock(&s->pool_mu);
    return kept;
}

/* Abort every pooled transaction (at close, and before a map resize). */
static void pool_drain(store *s) {
    pthread_mutex_lock(&s->pool_mu);
    while (s->n_pool) {
        store_rtxn *r = s->pool[--s->n_pool];
        mdb_txn_abort(r->t.txn);
        free(r);
    }
    pthread_mutex_unlock(&s->pool_mu);
}

int store_rtxn_begin(store *s, store_rtxn **out) {
    *out = NULL;
    gate_enter(s);
    store_rtxn *r = pool_take(s);
    int rc;
    if (r) {
        rc = mdb_txn_renew(r->t.txn);
        if (rc) {
            mdb_txn_abort(r->t.txn);
            free(r);
            r = NULL;
        }
    }
    if (!r) {
        MDB_txn *txn;
        rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &txn);
        if (rc) {
            gate_leave(s);
            LOG_ERROR(COMP, "read txn: %s", mdb_strerror(rc));
            return rc == MDB_READERS_FULL ? MP_EFULL : MP_EIO;
        }
        r = mp_malloc(sizeof *r);
        r->t = (tx){s, txn, 0, NULL};
    }
    r->t.lmdb_err = 0;
    *out = r;
    return MP_OK;
}

void store_rtxn_end(store_rtxn *r) {
    if (!r) return;
    store *s = r->t.s;
    mdb_txn_reset(r->t.txn);
    if (!pool_put(s, r)) {
        mdb_txn_abort(r->t.txn);
        free(r);
    }
    gate_leave(s);
}

int store_get_last_seq(store_rtxn *r, uint8_t type, mp_str id, uint64_t *seq) {
    return get_last_seq(&r->t, type, id, seq);
}

int store_get_channel_info(store_rtxn *r, uint8_t type, mp_str id, store_channel_info *info) {
    return get_channel_info(&r->t, type, id, info);
}

int store_get_message(store_rtxn *r, uint8_t type, mp_str id, uint64_t seq, msg_fields *out) {
    return get_message(&r->t, type, id, seq, out);
}

int store_get_message_by_id(store_rtxn *r, int64_t message_id, msg_fields *out) {
    return get_message_by_id(&r->t, message_id, out);
}

int store_get_message_by_client_msg_no(store_rtxn *r, uint8_t type, mp_str id, mp_str client_msg_no,
                                       msg_fields *out) {
    return get_message_by_cmn(&r->t, type, id, client_msg_no, out);
}

int store_scan_messages(store_rtxn *r, uint8_t type, mp_str id, uint64_t lo, uint64_t hi, int reverse, size_t limit,
                        store_msg_cb cb, void *ctx) {
    return scan_messages(&r->t, type, id, lo, hi, reverse, limit, cb, ctx);
}

int store_scan_set(store_rtxn *r, int set, uint8_t type, mp_str id, store_uid_cb cb, void *ctx) {
    return scan_set(&r->t, set, type, id, cb, ctx, NULL);
}

int store_set_contains(store_rtxn *r, int set, uint8_t type, mp_str id, mp_str uid) {
    return set_contains(&r->t, set, type, id, uid);
}

int store_set_count(store_rtxn *r, int set, uint8_t type, mp_str id, uint64_t *count) {
    return scan_set(&r->t, set, type, id, NULL, NULL, count);
}

int store_get_device(store_rtxn *r, mp_str uid, uint8_t device_flag, store_device *out) {
    kbuf k = {0};
    if (device_key(r->t.s, &k, uid, device_flag)) return MP_ENOTFOUND;
    MDB_val v;
    int rc = tx_get(&r->t, DB_DEVICE, &k, &v);
    if (rc) return rc;
    const uint8_t *p = v.mv_data;
    if (v.mv_size < 2 || p[0] != DEVICE_FORMAT) return corrupt("device");
    out->level = p[1];
    out->token = (mp_str){v.mv_size > 2 ? (const char *)p + 2 : "", (uint32_t)(v.mv_size - 2)};
    return MP_OK;
}

int store_get_conv(store_rtxn *r, mp_str uid, uint8_t type, mp_str id, store_conv *c) {
    return get_conv(&r->t, uid, type, id, c);
}

typedef struct conv_visit {
    size_t skip;
    store_conv_cb cb;
    void *ctx;
} conv_visit;

static int visit_conv(void *ctx, const MDB_val *k, const MDB_val *v) {
    conv_visit *cv = ctx;
    uint8_t type = 0;
    mp_str id = {NULL, 0};
    store_conv c;
    size_t used = parse_chan((const uint8_t *)k->mv_data + cv->skip, k->mv_size - cv->skip, &type, &id);
    if (used == 0 || used != k->mv_size - cv->skip) return corrupt("conversation key");
    int rc = conv_decode(v, &c);
    if (rc) return rc;
    return cv->cb(cv->ctx, type, id, &c) ? 1 : 0;
}

int store_scan_convs(store_rtxn *r, mp_str uid, store_conv_cb cb, void *ctx) {
    kbuf k = {0};
    kb_str16(&k, uid);
    if (kb_check(r->t.s, &k)) return MP_OK;
    conv_visit cv = {k.n, cb, ctx};
    return prefix_scan(&r->t, DB_CONV, k.b, k.n, visit_conv, &cv);
}

int store_scan_sysuids(store_rtxn *r, store_uid_cb cb, void *ctx) {
    uid_visit u = {0, cb, ctx, 0};
    return prefix_scan(&r->t, DB_SYSUID, NULL, 0, visit_uid, &u);
}

/* Merge the key-sorted channel and last_seq tables so a channel with both is seen once. */
int store_scan_channels(store_rtxn *r, store_chan_cb cb, void *ctx) {
    tx *t = &r->t;
    MDB_cursor *ca = NULL, *cb2 = NULL;
    int rc = mdb_cursor_open(t->txn, t->s->dbi[DB_CHAN], &ca);
    if (rc == 0) rc = mdb_cursor_open(t->txn, t->s->dbi[DB_LASTSEQ], &cb2);
    if (rc) {
        if (ca) mdb_cursor_close(ca);
        return tx_err(t, rc, "channel cursor");
    }
    MDB_val ka, kb, v;
    int ra = mdb_cursor_get(ca, &ka, &v, MDB_FIRST);
    int rb = mdb_cursor_get(cb2, &kb, &v, MDB_FIRST);
    int ret = MP_OK;
    while (ra == 0 || rb == 0) {
        int c = ra == 0 && rb == 0 ? mdb_cmp(t->txn, t->s->dbi[DB_CHAN], &ka, &kb) : ra == 0 ? -1 : 1;
        const MDB_val *k = c <= 0 ? &ka : &kb;
        uint8_t type = 0;
        mp_str id = {NULL, 0};
        size_t used = parse_chan(k->mv_data, k->mv_size, &type, &id);
        if (used == 0 || used != k->mv_size) {
            ret = corrupt("channel key");
            break;
        }
        if (cb(ctx, type, id)) break;
        if (c <= 0) ra = mdb_cursor_get(ca, &ka, &v, MDB_NEXT);
        if (c >= 0) rb = mdb_cursor_get(cb2, &kb, &v, MDB_NEXT);
    }
    if (ret == MP_OK && ra != 0 && ra != MDB_NOTFOUND) ret = tx_err(t, ra, "channel scan");
    if (ret == MP_OK && rb != 0 && rb != MDB_NOTFOUND) ret = tx_err(t, rb, "last_seq scan");
    mdb_cursor_close(ca);
    mdb_cursor_close(cb2);
    return ret;
}

/* ---- writer thread ------------------------------------------------------------------- */

static struct timespec mono_deadline(uint64_t ms) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    ts.tv_sec += (time_t)(ms / 1000);
    ts.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    return ts;
}

/* Double the map. LMDB needs every transaction of this process closed meanwhile: close the
 * read gate and wait (bounded) for open read transactions to end. */
static int grow_map(store *s) {
    MDB_envinfo info;
    int rc = mdb_env_info(s->env, &info);
    if (rc) {
        LOG_ERROR(COMP, "env info: %s", mdb_strerror(rc));
        return MP_EIO;
    }
    size_t cur = info.me_mapsize;
    if (cur > SIZE_MAX / 2) {
        LOG_ERROR(COMP, "map full at %zu bytes", cur);
        return MP_EIO;
    }
    size_t next = cur * 2;
    int drained = 1;
    pool_drain(s); /* pooled transactions belong to the old mapping */
    pthread_mutex_lock(&s->gate_mu);
    atomic_store(&s->resizing, 1);
    struct timespec deadline = mono_deadline(RESIZE_WAIT_MS);
    while (atomic_load(&s->readers) > 0) {
        if (pthread_cond_timedwait(&s->gate_cond, &s->gate_mu, &deadline) == ETIMEDOUT &&
            atomic_load(&s->readers) > 0) {
            drained = 0;
            break;
        }
    }
    rc = drained ? mdb_env_set_mapsize(s->env, next) : 0;
    atomic_store(&s->resizing, 0);
    pthread_cond_broadcast(&s->gate_cond);
    pthread_mutex_unlock(&s->gate_mu);
    if (!drained) {
        LOG_ERROR(COMP, "map full and read transactions stayed open for %d ms; batch failed", RESIZE_WAIT_MS);
        return MP_EIO;
    }
    if (rc) {
        LOG_ERROR(COMP, "grow map to %zu bytes: %s", next, mdb_strerror(rc));
        return MP_EIO;
    }
    stat_add(&s->st_map_resizes, 1);
    atomic_store_explicit(&s->st_map_size, next, memory_order_relaxed);
    LOG_INFO(COMP, "map grown to %zu MiB", next >> 20);
    return MP_OK;
}

static void set_status(store_op *from, store_op *to, int status) {
    for (store_op *op = from; op != to; op = op->next) op->status = status;
}

enum { TXN_DONE = 0, TXN_MAP_FULL = 1, TXN_NEEDS_NESTED = 2 };

/* Flat mode: every op writes straight into the batch transaction. This is the fast path:
 * an LMDB nested transaction allocates its own dirty-page list and copies each page it
 * touches from its parent, which cost more than the writes themselves. An op that fails
 * may have written part of its changes, so on the first failure (or a full transaction)
 * the batch is aborted and returns TXN_NEEDS_NESTED, to be re-run in nested mode; ops
 * may run more than once anyway (store.h). The hot rows (cached_db) are written back
 * once, at the end; a failure there, too, sends the batch to nested mode, which writes
 * straight through. */
static int run_flat(store *s, MDB_txn *parent, store_op *first) {
    struct store_wtxn w = {{s, parent, 0, s->wb}};
    wbmap_clear(s->wb);
    for (store_op *op = first; op; op = op->next) {
        op->status = MP_OK;
        if (!op->fn) continue;
        int st = op->fn(&w, op->arg);
        if (w.t.lmdb_err == MDB_MAP_FULL) return TXN_MAP_FULL;
        if (st != MP_OK || w.t.lmdb_err) return TXN_NEEDS_NESTED;
    }
    if (tx_write_back(&w.t) != MP_OK) return w.t.lmdb_err == MDB_MAP_FULL ? TXN_MAP_FULL : TXN_NEEDS_NESTED;
    return TXN_DONE;
}

/* Nested mode: each op in its own nested transaction, so a failing op's partial changes
 * are discarded alone. *stop as for run_txn. */
static int run_nested(store *s, MDB_txn *parent, store_op *first, store_op **stop) {
    for (store_op *op = first; op; op = op->next) {
        op->status = MP_OK;
        if (!op->fn) continue;
        struct store_wtxn w = {{s, NULL, 0, NULL}};
        int rc = mdb_txn_begin(s->env, parent, 0, &w.t.txn);
        if (rc) {
            LOG_ERROR(COMP, "nested txn: %s", mdb_strerror(rc));
            op->status = MP_EIO;
            continue;
        }
        int st = op->fn(&w, op->arg);
        if (st == MP_OK && w.t.lmdb_err == 0) {
            rc = mdb_txn_commit(w.t.txn);
            if (rc == 0) continue;
            w.t.lmdb_err = rc;
            if (rc != MDB_MAP_FULL && rc != MDB_TXN_FULL) LOG_ERROR(COMP, "nested commit: %s", mdb_strerror(rc));
        } else {
            mdb_txn_abort(w.t.txn);
        }
        if (w.t.lmdb_err == MDB_MAP_FULL) return TXN_MAP_FULL;
        if (w.t.lmdb_err == MDB_TXN_FULL) {
            if (op != first) { /* commit what came before; this op starts the next txn */
                *stop = op;
                break;
            }
            LOG_ERROR(COMP, "one write op exceeds the transaction size limit");
            op->status = MP_ETOOBIG;
            continue;
        }
        op->status = st != MP_OK ? st : MP_EIO;
    }
    return TXN_DONE;
}

/* Run ops from `first` in one write transaction (flat, or nested when asked) and commit.
 * Sets every op's status. *stop is the first op left for a new transaction (when this one
 * reached LMDB's dirty-page limit), or NULL. Returns TXN_MAP_FULL (all aborted) when the
 * map must grow, TXN_NEEDS_NESTED (all aborted) when a flat run must be redone nested. */
static int run_txn(store *s, store_op *first, store_op **stop, int nested) {
    *stop = NULL;
    MDB_txn *parent;
    int rc = mdb_txn_begin(s->env, NULL, 0, &parent);
    if (rc == MDB_MAP_FULL) return TXN_MAP_FULL;
    if (rc) {
        LOG_ERROR(COMP, "write txn: %s", mdb_strerror(rc));
        set_status(first, NULL, MP_EIO);
        stat_add(&s->st_commit_failures, 1);
        return TXN_DONE;
    }
    int r = nested ? run_nested(s, parent, first, stop) : run_flat(s, parent, first);
    if (r != TXN_DONE) {
        mdb_txn_abort(parent);
        return r;
    }
    rc = mdb_txn_commit(parent);
    if (rc == MDB_MAP_FULL) return TXN_MAP_FULL;
    if (rc) {
        LOG_ERROR(COMP, "commit: %s", mdb_strerror(rc));
        set_status(first, *stop, MP_EIO);
        stat_add(&s->st_commit_failures, 1);
        return TXN_DONE;
    }
    stat_add(&s->st_commits, 1);
    if (s->sync_mode == STORE_SYNC_INTERVAL && !s->dirty) {
        s->dirty = 1;
        s->next_sync_ms = mp_mono_ms() + s->sync_interval_ms;
    }
    return TXN_DONE;
}

/* Commit ops from `first`; returns where the next transaction must start (NULL: all done). */
static store_op *run_segment(store *s, store_op *first) {
    int nested = 0;
    for (int grows = 0;;) {
        store_op *stop;
        int r = run_txn(s, first, &stop, nested);
        if (r == TXN_DONE) return stop;
        if (r == TXN_NEEDS_NESTED) {
            nested = 1;
            stat_add(&s->st_nested_reruns, 1);
            continue;
        }
        if (grows >= MAX_GROWS || grow_map(s) != MP_OK) {
            if (grows >= MAX_GROWS) LOG_ERROR(COMP, "map still full after %d resizes; batch failed", grows);
            set_status(first, NULL, MP_EIO);
            stat_add(&s->st_commit_failures, 1);
            return NULL;
        }
        grows++;
    }
}

/* A logged op's sender may have been acknowledged already: losing its write now would
 * lose an acknowledged message. Stop instead; the restart replays the log. */
_Noreturn static void stop_for_log(const char *what, int status) {
    LOG_ERROR(COMP, "stopping: a logged message write failed after it was made durable in the message log; "
                    "restart the server to re-apply it from the log what=\"%s\" err=\"%s\"",
              what, mp_strerror(status));
    abort();
}

/* After a commit: the logged ops among [ops, stop) are in LMDB; let the log thread know. */
static void note_applied(store *s, store_op *ops, store_op *stop) {
    uint64_t n = 0;
    for (store_op *op = ops; op != stop; op = op->next) {
        if (!op->rec_len) continue;
        if (op->status != MP_OK) stop_for_log("apply", op->status);
        n++;
    }
    if (!n) return;
    pthread_mutex_lock(&s->mu);
    atomic_fetch_add(&s->log_applied, n);
    pthread_cond_broadcast(&s->applied_cond);
    pthread_mutex_unlock(&s->mu);
}

static void run_batch(store *s, store_op *ops) {
    while (ops) {
        uint64_t t0 = mp_mono_ns(), n = 0;
        store_op *stop = run_segment(s, ops);
        mt_hist_observe(&s->commit_ns, &mt_latency_bounds, mp_mono_ns() - t0);
        for (store_op *op = ops; op != stop; op = op->next) n++;
        mt_hist_observe(&s->batch_ops, &mt_count_bounds, n);
        if (s->log) note_applied(s, ops, stop);
        while (ops != stop) {
            store_op *next = ops->next;
            stat_add(&s->st_completed, 1); /* before done, so a woken waiter sees it */
            if (!s->log && ops->logged) ops->logged(ops->arg, ops->status); /* no log: after the commit */
            if (ops->done) ops->done(ops->arg, ops->status);
            free(ops);
            ops = next;
        }
    }
}

static void maybe_sync(store *s, int force) {
    if (s->sync_mode != STORE_SYNC_INTERVAL || !s->dirty) return;
    if (!force && mp_mono_ms() < s->next_sync_ms) return;
    int rc = mdb_env_sync(s->env, 1);
    if (rc) LOG_ERROR(COMP, "sync: %s", mdb_strerror(rc));
    s->dirty = 0;
    stat_add(&s->st_syncs, 1);
}

/* Append first..last (linked) to a queue. Caller holds the queue's mutex. */
static void append_to(store_op **head, store_op **tail, store_op *first, store_op *last) {
    if (*tail) (*tail)->next = first;
    else *head = first;
    *tail = last;
}

/* Detach up to max ops from the head of a queue. Caller holds the queue's mutex. */
static store_op *take_from(store_op **head, store_op **tail, uint64_t *queued, uint64_t max) {
    store_op *first = *head, *last = first;
    if (!first) return NULL;
    uint64_t n = 1;
    while (last->next && n < max) {
        last = last->next;
        n++;
    }
    *head = last->next;
    if (!*head) *tail = NULL;
    last->next = NULL;
    *queued -= n;
    return first;
}

/* Detach up to max_batch ops from the writer's queue. Caller holds mu. */
static store_op *take_batch(store *s) {
    uint64_t before = s->queued;
    store_op *first = take_from(&s->head, &s->tail, &s->queued, s->max_batch);
    uint64_t n = before - s->queued;
    for (store_op *op = first; op && s->waiting; op = op->next) s->waiting -= !op->rec_len;
    if (n > atomic_load_explicit(&s->st_largest_batch, memory_order_relaxed))
        atomic_store_explicit(&s->st_largest_batch, n, memory_order_relaxed);
    return first;
}

/* ---- the message log thread --------------------------------------------------------- */

/* Move to the log's other file once every record in it is in LMDB: they were all logged
 * before the current file began. Waits for the writer if it lags that far behind (a
 * bound on the memory and log space the backlog takes). */
static void log_switch_file(store *s) {
    pthread_mutex_lock(&s->mu);
    while (atomic_load(&s->log_applied) < s->log_file_start) pthread_cond_wait(&s->applied_cond, &s->mu);
    pthread_mutex_unlock(&s->mu);
    int rc = mlog_switch(s->log);
    if (rc != MP_OK) stop_for_log("switch", rc);
    s->log_file_start = atomic_load_explicit(&s->st_log_records, memory_order_relaxed);
    stat_add(&s->st_log_switches, 1);
}

/* Append the batch's records, make them durable, then tell their submitters. */
static void log_batch(store *s, store_op *batch) {
    size_t bytes = 0;
    uint64_t n = 0;
    for (store_op *op = batch; op; op = op->next)
        if (op->rec_len) bytes += mlog_framed_size(op->rec_len), n++;
    if (!n) return;
    if (mlog_switch_due(s->log, bytes)) log_switch_file(s);
    uint64_t t0 = mp_mono_ns();
    for (store_op *op = batch; op; op = op->next)
        if (op->rec_len) mlog_add(s->log, op->rec, op->rec_len);
    int rc = mlog_flush(s->log);
    if (rc != MP_OK) stop_for_log("append", rc);
    mt_hist_observe(&s->log_ns, &mt_latency_bounds, mp_mono_ns() - t0);
    stat_add(&s->st_log_records, n); /* the log thread's count of records appended */
    for (store_op *op = batch; op; op = op->next)
        if (op->rec_len && op->logged) op->logged(op->arg, MP_OK);
}

/* Append the batch, in order, to the writer's queue; first wait while the writer is more
 * than two batches behind, so a log that outruns LMDB cannot queue without bound. */
static void hand_to_writer(store *s, store_op *batch) {
    store_op *last = batch;
    uint64_t n = 1, waiting = !batch->rec_len;
    for (; last->next; last = last->next) n++, waiting += !last->next->rec_len;
    pthread_mutex_lock(&s->mu);
    while (s->queued >= 2 * (uint64_t)s->max_batch && !s->closing) pthread_cond_wait(&s->applied_cond, &s->mu);
    s->waiting += waiting;
    int wake = s->head == NULL || waiting; /* someone waiting ends the writer's apply-interval wait */
    append_to(&s->head, &s->tail, batch, last);
    s->queued += n;
    if (wake) pthread_cond_signal(&s->cond);
    pthread_mutex_unlock(&s->mu);
}

static void *log_main(void *arg) {
    store *s = arg;
    pthread_setname_np(pthread_self(), "magpie-log");
    tsched_latency_thread("magpie-log"); /* acknowledgements wait for this thread */
    for (;;) {
        pthread_mutex_lock(&s->lmu);
        while (!s->lhead && !s->lclosing) pthread_cond_wait(&s->lcond, &s->lmu);
        store_op *batch = take_from(&s->lhead, &s->ltail, &s->lqueued, s->max_batch);
        pthread_mutex_unlock(&s->lmu);
        if (!batch) return NULL; /* closing and drained */
        log_batch(s, batch);
        hand_to_writer(s, batch);
    }
}

/* With the message log no message waits for its LMDB commit to be answered, so commits can
 * be spaced out: the pages a commit rewrites follow the channels it touches, not its size,
 * and fewer, larger commits write far less per message. Waits (mu held, released while
 * waiting) until apply_interval_ms after the last batch was taken, unless a full batch is
 * already waiting, an op whose submitter waits for its commit is (an API read's barrier,
 * an API write such as /user/token: commit now) or the store is closing. */
static void wait_apply_interval(store *s) {
    if (!s->log || !s->apply_interval_ms) return;
    uint64_t due = s->last_commit_ms + s->apply_interval_ms;
    for (uint64_t now = mp_mono_ms(); now < due && !s->closing && s->queued < s->max_batch && !s->waiting;
         now = mp_mono_ms()) {
        struct timespec ts = mono_deadline(due - now);
        pthread_cond_timedwait(&s->cond, &s->mu, &ts);
    }
    s->last_commit_ms = mp_mono_ms();
}

static void *writer_main(void *arg) {
    store *s = arg;
    pthread_setname_np(pthread_self(), "magpie-store");
    for (;;) {
        pthread_mutex_lock(&s->mu);
        while (!s->head && !s->closing) {
            if (s->dirty) { /* interval mode with unsynced commits: wake up for the sync */
                uint64_t now = mp_mono_ms();
                if (now >= s->next_sync_ms) break;
                struct timespec ts = mono_deadline(s->next_sync_ms - now);
                pthread_cond_timedwait(&s->cond, &s->mu, &ts);
            } else {
                pthread_cond_wait(&s->cond, &s->mu);
            }
        }
        wait_apply_interval(s);
        store_op *batch = take_batch(s);
        if (batch && s->log) pthread_cond_broadcast(&s->applied_cond); /* room for the log thread */
        int stop = !batch && s->closing;
        pthread_mutex_unlock(&s->mu);
        if (batch) run_batch(s, batch);
        maybe_sync(s, stop);
        if (stop) return NULL;
    }
}

/* Queue op for the log thread (with a log) or the writer; frees it when closed. */
static int enqueue(store *s, store_op *op) {
    pthread_mutex_t *mu = s->log ? &s->lmu : &s->mu;
    pthread_cond_t *cond = s->log ? &s->lcond : &s->cond;
    store_op **head = s->log ? &s->lhead : &s->head, **tail = s->log ? &s->ltail : &s->tail;
    pthread_mutex_lock(mu);
    if (s->log ? s->lclosing : s->closing) {
        pthread_mutex_unlock(mu);
        free(op);
        return MP_ECLOSED;
    }
    int wake = *head == NULL; /* the thread only sleeps on an empty queue */
    append_to(head, tail, op, op);
    if (s->log) s->lqueued++;
    else s->queued++;
    if (wake) pthread_cond_signal(cond);
    pthread_mutex_unlock(mu);
    stat_add(&s->st_submitted, 1);
    return MP_OK;
}

int store_logging(const store *s) { return s->log != NULL; }

int store_submit(store *s, store_write_fn fn, store_done_fn done, void *arg) {
    if (!s) return MP_EINVAL;
    store_op *op = mp_malloc(sizeof *op);
    *op = (store_op){.fn = fn, .done = done, .arg = arg, .status = MP_OK};
    if (!fn) stat_add(&s->st_barriers, 1);
    return enqueue(s, op);
}

int store_submit_logged(store *s, const uint8_t *rec, size_t len, store_write_fn fn, store_logged_fn logged,
                        store_done_fn done, void *arg) {
    if (!s || !rec || len == 0 || len > MLOG_MAX_RECORD) return MP_EINVAL;
    size_t keep = s->log ? len : 0;
    store_op *op = mp_malloc(sizeof *op + keep);
    *op = (store_op){.fn = fn, .done = done, .logged = logged, .arg = arg, .status = MP_OK, .rec_len = (uint32_t)keep};
    memcpy(op->rec, rec, keep);
    return enqueue(s, op);
}

void store_get_histograms(store *s, mt_hist_sum *commit_ns, mt_hist_sum *batch_ops) {
    mt_hist_add(commit_ns, &s->commit_ns);
    mt_hist_add(batch_ops, &s->batch_ops);
}

void store_get_log_histogram(store *s, mt_hist_sum *flush_ns) { mt_hist_add(flush_ns, &s->log_ns); }

void store_get_stats(store *s, store_stats *out) {
    memset(out, 0, sizeof *out);
    pthread_mutex_lock(&s->mu);
    out->queued = s->queued;
    pthread_mutex_unlock(&s->mu);
    if (s->log) {
        pthread_mutex_lock(&s->lmu);
        out->queued += s->lqueued;
        pthread_mutex_unlock(&s->lmu);
    }
    out->log_records = atomic_load_explicit(&s->st_log_records, memory_order_relaxed);
    out->log_switches = atomic_load_explicit(&s->st_log_switches, memory_order_relaxed);
    out->log_replayed = atomic_load_explicit(&s->st_log_replayed, memory_order_relaxed);
    out->barriers = atomic_load_explicit(&s->st_barriers, memory_order_relaxed);
    out->submitted = atomic_load_explicit(&s->st_submitted, memory_order_relaxed);
    out->completed = atomic_load_explicit(&s->st_completed, memory_order_relaxed);
    out->commits = atomic_load_explicit(&s->st_commits, memory_order_relaxed);
    out->commit_failures = atomic_load_explicit(&s->st_commit_failures, memory_order_relaxed);
    out->largest_batch = atomic_load_explicit(&s->st_largest_batch, memory_order_relaxed);
    out->map_resizes = atomic_load_explicit(&s->st_map_resizes, memory_order_relaxed);
    out->nested_reruns = atomic_load_explicit(&s->st_nested_reruns, memory_order_relaxed);
    out->syncs = atomic_load_explicit(&s->st_syncs, memory_order_relaxed);
    out->map_size = atomic_load_explicit(&s->st_map_size, memory_order_relaxed);
}

/* ---- open / close ------------------------------------------------------------------ */

static int mkdir_p(const char *dir) {
    char *p = mp_strndup(dir, strlen(dir));
    int rc = 0;
    for (char *c = p + 1; *c && rc == 0; c++) {
        if (*c != '/') continue;
        *c = 0;
        if (mkdir(p, 0755) != 0 && errno != EEXIST) rc = -1;
        *c = '/';
    }
    if (rc == 0 && mkdir(p, 0755) != 0 && errno != EEXIST) rc = -1;
    struct stat st;
    if (rc == 0 && (stat(p, &st) != 0 || !S_ISDIR(st.st_mode))) rc = -1;
    free(p);
    return rc;
}

static int cond_init_mono(pthread_cond_t *c) {
    pthread_condattr_t a;
    pthread_condattr_init(&a);
    pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
    int rc = pthread_cond_init(c, &a);
    pthread_condattr_destroy(&a);
    return rc;
}

static void sync_init(store *s) {
    pthread_mutex_init(&s->mu, NULL);
    pthread_mutex_init(&s->lmu, NULL);
    pthread_mutex_init(&s->pool_mu, NULL);
    pthread_mutex_init(&s->gate_mu, NULL);
    cond_init_mono(&s->cond);
    cond_init_mono(&s->lcond);
    cond_init_mono(&s->applied_cond);
    cond_init_mono(&s->gate_cond);
}

static void sync_destroy(store *s) {
    pthread_mutex_destroy(&s->mu);
    pthread_mutex_destroy(&s->lmu);
    pthread_mutex_destroy(&s->pool_mu);
    pthread_mutex_destroy(&s->gate_mu);
    pthread_cond_destroy(&s->cond);
    pthread_cond_destroy(&s->lcond);
    pthread_cond_destroy(&s->applied_cond);
    pthread_cond_destroy(&s->gate_cond);
}

/* Open every sub-database and check the layout version. */
static int open_dbs(store *s) {
    MDB_txn *txn;
    int rc = mdb_txn_begin(s->env, NULL, 0, &txn);
    if (rc) {
        LOG_ERROR(COMP, "open: txn: %s", mdb_strerror(rc));
        return MP_EIO;
    }
    for (int i = 0; i < DB_COUNT && rc == 0; i++) {
        rc = mdb_dbi_open(txn, db_names[i], MDB_CREATE, &s->dbi[i]);
        if (rc) LOG_ERROR(COMP, "open: database %s: %s", db_names[i], mdb_strerror(rc));
    }
    if (rc == 0) {
        MDB_val k = {6, (void *)"format"}, v;
        uint8_t ver = FORMAT_VERSION;
        rc = mdb_get(txn, s->dbi[DB_META], &k, &v);
        if (rc == MDB_NOTFOUND) {
            v = (MDB_val){1, &ver};
            rc = mdb_put(txn, s->dbi[DB_META], &k, &v, 0);
            if (rc) LOG_ERROR(COMP, "open: write format: %s", mdb_strerror(rc));
        } else if (rc) {
            LOG_ERROR(COMP, "open: read format: %s", mdb_strerror(rc));
        } else if (v.mv_size != 1 || *(const uint8_t *)v.mv_data != FORMAT_VERSION) {
            LOG_ERROR(COMP, "open: unsupported data format (want %d)", FORMAT_VERSION);
            rc = EINVAL;
        }
    }
    if (rc) {
        mdb_txn_abort(txn);
        return MP_EIO;
    }
    rc = mdb_txn_commit(txn);
    if (rc) {
        LOG_ERROR(COMP, "open: commit: %s", mdb_strerror(rc));
        return MP_EIO;
    }
    return MP_OK;
}

/* ---- replaying the message log at open ------------------------------------------------ */

typedef struct replay_ctx {
    store *s;
    store_replay_fn fn;
    MDB_txn *txn;
    uint32_t in_txn;
    uint64_t applied;
    int map_full;
} replay_ctx;

static int replay_commit(replay_ctx *r) {
    int rc = mdb_txn_commit(r->txn);
    r->txn = NULL;
    r->in_txn = 0;
    if (rc == MDB_MAP_FULL) r->map_full = 1;
    else if (rc) LOG_ERROR(COMP, "message log replay: commit: %s", mdb_strerror(rc));
    return rc ? MP_EIO : MP_OK;
}

static int replay_one(void *ctx, const uint8_t *rec, size_t len) {
    replay_ctx *r = ctx;
    if (!r->fn) {
        LOG_ERROR(COMP, "the message log holds records but no replay function was given");
        return MP_EINVAL;
    }
    if (!r->txn) {
        int rc = mdb_txn_begin(r->s->env, NULL, 0, &r->txn);
        if (rc) {
            if (rc == MDB_MAP_FULL) r->map_full = 1;
            else LOG_ERROR(COMP, "message log replay: txn: %s", mdb_strerror(rc));
            r->txn = NULL;
            return MP_EIO;
        }
    }
    struct store_wtxn w = {{r->s, r->txn, 0, NULL}};
    int rc = r->fn(&w, rec, len);
    if (w.t.lmdb_err == MDB_MAP_FULL || w.t.lmdb_err == MDB_TXN_FULL) {
        r->map_full = w.t.lmdb_err == MDB_MAP_FULL;
        if (w.t.lmdb_err == MDB_TXN_FULL) LOG_ERROR(COMP, "message log replay: one record exceeds the transaction size limit");
        return MP_EIO;
    }
    if (rc < 0 || w.t.lmdb_err) {
        LOG_ERROR(COMP, "message log replay: a record cannot be applied err=\"%s\"", mp_strerror(rc < 0 ? rc : MP_EIO));
        return rc < 0 ? rc : MP_EIO;
    }
    r->applied += rc == 1;
    return ++r->in_txn == REPLAY_CHUNK ? replay_commit(r) : MP_OK;
}

/* Re-apply what the log holds (a chunk per transaction; the replay function skips what
 * LMDB already has, so a chunk cut short by a full map is simply re-read after the map
 * grew), make it durable, then empty the log. */
static int replay_log(store *s, store_replay_fn fn) {
    for (int grows = 0;; grows++) {
        replay_ctx r = {.s = s, .fn = fn};
        int rc = mlog_replay(s->log, replay_one, &r);
        if (rc == MP_OK && r.txn) rc = replay_commit(&r);
        if (r.txn) mdb_txn_abort(r.txn);
        if (rc != MP_OK && r.map_full && grows < MAX_GROWS && grow_map(s) == MP_OK) continue;
        if (rc != MP_OK) return rc;
        if (s->sync_mode == STORE_SYNC_INTERVAL && (rc = mdb_env_sync(s->env, 1)) != 0) {
            LOG_ERROR(COMP, "message log replay: sync: %s", mdb_strerror(rc));
            return MP_EIO;
        }
        stat_add(&s->st_log_replayed, r.applied);
        if (mlog_replayed(s->log))
            LOG_INFO(COMP, "message log replayed records=%llu re_applied=%llu", (unsigned long long)mlog_replayed(s->log),
                     (unsigned long long)r.applied);
        return mlog_reset(s->log);
    }
}

/* Open the log and replay it (always: the last run may have had another durability);
 * keep it for writing in STORE_SYNC_ALWAYS mode only, unless turned off. */
static int open_log(store *s, const store_options *opt) {
    int rc = mlog_open(opt->dir, opt->log_file_size ? opt->log_file_size : DEFAULT_LOG_FILE, &s->log);
    if (rc == MP_OK) rc = replay_log(s, opt->replay);
    if (rc != MP_OK || s->sync_mode != STORE_SYNC_ALWAYS || opt->no_message_log) {
        mlog_close(s->log);
        s->log = NULL;
    }
    return rc;
}

int store_open(const store_options *opt, store **out) {
    *out = NULL;
    if (!opt || !opt->dir || !opt->dir[0] ||
        (opt->sync_mode != STORE_SYNC_ALWAYS && opt->sync_mode != STORE_SYNC_INTERVAL))
        return MP_EINVAL;
    if (mkdir_p(opt->dir) != 0) {
        LOG_ERROR(COMP, "cannot create data dir %s: %s", opt->dir, strerror(errno));
        return MP_EIO;
    }
    long page = sysconf(_SC_PAGESIZE);
    uint64_t map = opt->map_size ? opt->map_size : DEFAULT_MAP_SIZE;
    if (page > 0) map = (map + (uint64_t)page - 1) / (uint64_t)page * (uint64_t)page;
    if (map > SIZE_MAX) return MP_EINVAL;

    store *s = mp_calloc(1, sizeof *s);
    s->sync_mode = opt->sync_mode;
    s->sync_interval_ms = opt->sync_interval_ms ? opt->sync_interval_ms : DEFAULT_SYNC_MS;
    s->max_batch = opt->max_batch ? opt->max_batch : DEFAULT_BATCH;
    s->apply_interval_ms = opt->apply_interval_ms;
    s->wb = wbmap_new();

    int rc = mdb_env_create(&s->env);
    if (rc == 0) rc = mdb_env_set_maxdbs(s->env, DB_COUNT + 4);
    if (rc == 0) rc = mdb_env_set_maxreaders(s->env, MAX_READERS);
    if (rc == 0) rc = mdb_env_set_mapsize(s->env, (size_t)map);
    unsigned flags = MDB_NOTLS | (s->sync_mode == STORE_SYNC_INTERVAL ? MDB_NOSYNC : 0);
    if (rc == 0) rc = mdb_env_open(s->env, opt->dir, flags, 0644);
    if (rc) {
        LOG_ERROR(COMP, "open %s: %s", opt->dir, mdb_strerror(rc));
        goto fail;
    }
    int dead = 0;
    mdb_reader_check(s->env, &dead);
    if (dead) LOG_WARN(COMP, "cleared %d stale reader slots", dead);
    s->maxkey = (size_t)mdb_env_get_maxkeysize(s->env);
    if (s->maxkey > STORE_MAX_KEY) s->maxkey = STORE_MAX_KEY;
    if (open_dbs(s) != MP_OK) goto fail;
    MDB_envinfo info;
    if (mdb_env_info(s->env, &info) == 0) atomic_store(&s->st_map_size, info.me_mapsize);

    sync_init(s);
    if (open_log(s, opt) != MP_OK) goto fail_sync;
    if ((rc = pthread_create(&s->thread, NULL, writer_main, s)) != 0) {
        LOG_ERROR(COMP, "writer thread: %s", strerror(rc));
        goto fail_sync;
    }
    if (s->log && (rc = pthread_create(&s->log_thread, NULL, log_main, s)) != 0) {
        LOG_ERROR(COMP, "message log thread: %s", strerror(rc));
        mlog_close(s->log);
        s->log = NULL;
        store_close(s);
        return MP_EIO;
    }
    *out = s;
    return MP_OK;
fail_sync:
    mlog_close(s->log);
    pool_drain(s);
    sync_destroy(s);
fail:
    if (s->env) mdb_env_close(s->env);
    wbmap_free(s->wb);
    free(s);
    return MP_EIO;
}

void store_close(store *s) {
    if (!s) return;
    if (s->log) { /* the log thread hands everything on to the writer, then ends */
        pthread_mutex_lock(&s->lmu);
        s->lclosing = 1;
        pthread_cond_signal(&s->lcond);
        pthread_mutex_unlock(&s->lmu);
        pthread_join(s->log_thread, NULL);
        MP_ASSERT(s->lhead == NULL);
    }
    pthread_mutex_lock(&s->mu);
    s->closing = 1;
    pthread_cond_signal(&s->cond);
    pthread_mutex_unlock(&s->mu);
    pthread_join(s->thread, NULL);
    MP_ASSERT(s->head == NULL);
    MP_ASSERT(atomic_load(&s->readers) == 0);
    pool_drain(s);
    /* everything is in LMDB and durable: start the next run with an empty log */
    if (s->log && mlog_reset(s->log) != MP_OK) LOG_WARN(COMP, "could not empty the message log; the next start replays it");
    mdb_env_close(s->env);
    mlog_close(s->log);
    sync_destroy(s);
    wbmap_free(s->wb);
    free(s);
}
