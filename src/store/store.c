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
 * runs each in a nested transaction of one batch transaction, commits once and only then
 * calls the done callbacks. Ops that arrive during a commit form the next batch. On
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
    DB_COUNT
};
static const char *const db_names[DB_COUNT] = {"msg",        "msg_id",    "client_msg_no", "channel",
                                               "last_seq",   "subscriber", "blacklist",    "whitelist",
                                               "device",     "conversation", "sysuid",     "meta"};

typedef struct store_op {
    struct store_op *next;
    store_write_fn fn;
    store_done_fn done;
    void *arg;
    int status;
} store_op;

struct store {
    MDB_env *env;
    MDB_dbi dbi[DB_COUNT];
    size_t maxkey;
    int sync_mode;
    uint32_t sync_interval_ms;
    uint32_t max_batch;

    pthread_mutex_t mu; /* guards head, tail, queued, closing */
    pthread_cond_t cond;
    store_op *head, *tail;
    uint64_t queued;
    int closing;
    pthread_t thread;

    /* writer thread only */
    int dirty;
    uint64_t next_sync_ms;

    /* read gate for map resizes */
    atomic_uint readers;
    atomic_int resizing;
    pthread_mutex_t gate_mu;
    pthread_cond_t gate_cond;

    atomic_uint_fast64_t st_submitted, st_completed, st_commits, st_commit_failures, st_largest_batch,
        st_map_resizes, st_syncs, st_map_size;
};

/* One transaction as the accessors see it; lmdb_err keeps the first LMDB failure so the
 * writer can tell "fn refused" from "LMDB failed" (and MAP_FULL from the rest). */
typedef struct tx {
    store *s;
    MDB_txn *txn;
    int lmdb_err;
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

static int tx_get(tx *t, int db, kbuf *k, MDB_val *v) {
    MDB_val key = kb_val(k);
    return tx_err(t, mdb_get(t->txn, t->s->dbi[db], &key, v), db_names[db]);
}

static int tx_put(tx *t, int db, kbuf *k, const void *p, size_t n) {
    MDB_val key = kb_val(k), val = {n, (void *)(p ? p : "")};
    return tx_err(t, mdb_put(t->txn, t->s->dbi[db], &key, &val, 0), db_names[db]);
}

/* Delete; absent is fine. */
static int tx_del(tx *t, int db, kbuf *k) {
    MDB_val key = kb_val(k);
    int rc = tx_err(t, mdb_del(t->txn, t->s->dbi[db], &key, NULL), db_names[db]);
    return rc == MP_ENOTFOUND ? MP_OK : rc;
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
