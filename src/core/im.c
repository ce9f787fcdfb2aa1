/* im.c - the core's entry points for the edges (im.h), message ids, id rules.
 * Mutations run as store write functions (so read-modify-write of conversations and
 * channel info is serialized by the single writer) and answer after the commit. */
#include "im.h"

#include <openssl/rand.h>
#include <stdatomic.h>
#include <stdio.h>

#include "../channel/channel.h"
#include "../common/log.h"
#include "../proto/packet.h"
#include "../integ/datasource.h"
#include "presence.h"
#include "sysuid.h"
#include "worker.h"

static store *g_store;
static const mp_config *g_cfg;
static _Atomic uint64_t g_last_id;

#define SNOWFLAKE_EPOCH_MS 1288834974657ull

void im_init(const mp_config *cfg, store *s) {
    g_cfg = cfg;
    g_store = s;
    sysuid_load(s); /* a failure is logged; the server runs without system accounts */
}

store *im_store(void) { return g_store; }
const mp_config *im_config(void) { return g_cfg; }

/* Snowflake (spec §5.4): 41-bit ms since the Twitter epoch, 10-bit node id, 12-bit
 * sequence. A CAS loop keeps ids unique and increasing across worker threads. */
int64_t im_next_message_id(void) {
    uint64_t node = (uint64_t)(g_cfg ? g_cfg->node_id : 1) & 0x3FF;
    uint64_t last = atomic_load(&g_last_id);
    for (;;) {
        uint64_t ts = mp_now_ms() - SNOWFLAKE_EPOCH_MS;
        uint64_t candidate = (ts << 22) | (node << 12);
        if (candidate <= last) candidate = last + 1; /* same ms (or clock step back): next sequence */
        if (atomic_compare_exchange_weak(&g_last_id, &last, candidate)) return (int64_t)candidate;
    }
}

int im_valid_id(mp_str id) {
    if (id.len == 0 || id.len > IM_MAX_ID_LEN) return 0;
    int blank = 1;
    for (uint32_t i = 0; i < id.len; i++) {
        unsigned char ch = (unsigned char)id.p[i];
        if (ch == '@' || ch == '#' || ch == '&' || ch < 0x20 || ch == 0x7F) return 0; /* no control chars */
        if (ch != ' ' && ch != '\t') blank = 0;
    }
    return !blank;
}

mp_str im_stored_channel_id(uint8_t channel_type, mp_str channel_id, mp_str viewer, char *out) {
    if (channel_type != CHANNEL_PERSON || (channel_id.len && memchr(channel_id.p, '@', channel_id.len)))
        return channel_id;
    return (mp_str){out, msg_person_fake_id(channel_id, viewer, out)};
}

void im_new_client_msg_no(char out[33]) {
    uint8_t raw[16];
    RAND_bytes(raw, sizeof raw);
    static const char hex[] = "0123456789abcdef";
    for (int i = 0; i < 16; i++) {
        out[2 * i] = hex[raw[i] >> 4];
        out[2 * i + 1] = hex[raw[i] & 15];
    }
    out[32] = '0';
}

/* ---- send ------------------------------------------------------------------------------ */

/* FNV-1a 64 of the subscribers joined by ",", as WuKongIM names a subscribers send's
 * temp channel (spec §5.3). */
static uint64_t fnv64a_joined(const mp_str *uids, size_t n) {
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++) {
        if (i) h = (h ^ (uint8_t)',') * 0x100000001b3ull;
        for (uint32_t k = 0; k < uids[i].len; k++) h = (h ^ (uint8_t)uids[i].p[k]) * 0x100000001b3ull;
    }
    return h;
}

/* A subscribers send: a temp command channel named after the set when persisted, the
 * shared online-only channel otherwise; the recipients are the subscribers. */
static void route_to_subscribers(const im_send_req *q, chan_send *r, char *out) {
    int n;
    if (r->f.flags & PROTO_FLAG_NOPERSIST)
        n = snprintf(out, 32, "systemcmdonline");
    else
        n = snprintf(out, 40, "%llu" CHAN_CMD_SUFFIX, (unsigned long long)fnv64a_joined(q->subscribers, q->n_subscribers));
    r->f.channel_id = (mp_str){out, (uint32_t)n};
    r->f.channel_type = CHANNEL_TEMP;
    r->f.flags |= PROTO_FLAG_SYNCONCE;
    r->recipients = q->subscribers;
    r->n_recipients = q->n_subscribers;
}

void im_send(const im_send_req *q, im_done_fn done, void *ctx) {
    worker *w = worker_current();
    MP_ASSERT(w);
    char fake[2 * PROTO_MAX_STR + 2 + CHAN_CMD_SUFFIX_LEN];
    char cmn[33];
    chan_send r = {0};
    r.origin_worker = w->index;
    r.from_api = 1;
    r.done = done;
    r.ctx = ctx;
    r.f.message_id = im_next_message_id();
    r.f.timestamp = (uint32_t)(mp_now_ms() / 1000);
    r.f.expire = q->expire;
    r.f.flags = q->flags & (PROTO_FLAG_NOPERSIST | PROTO_FLAG_REDDOT | PROTO_FLAG_SYNCONCE);
    r.f.setting = q->setting;
    r.f.channel_type = q->channel_type;
    r.f.from_uid = q->from_uid.len ? q->from_uid : MP_STR(MP_SYSTEM_UID);
    if (q->client_msg_no.len) {
        r.f.client_msg_no = q->client_msg_no;
    } else {
        im_new_client_msg_no(cmn);
        r.f.client_msg_no = (mp_str){cmn, 33};
    }
    r.f.topic = q->topic;
    r.f.payload = q->payload;
    if (q->n_subscribers) {
        route_to_subscribers(q, &r, fake);
    } else if (q->channel_type == CHANNEL_PERSON) {
        r.f.channel_id = (mp_str){fake, msg_person_fake_id(r.f.from_uid, q->channel_id, fake)};
    } else if (q->channel_type == CHANNEL_AGENT) {
        r.f.channel_id = (mp_str){fake, chan_agent_id(r.f.from_uid, q->channel_id, fake)};
    } else {
        memcpy(fake, q->channel_id.p, q->channel_id.len);
        r.f.channel_id = (mp_str){fake, q->channel_id.len};
    }
    if (!q->n_subscribers && (r.f.flags & PROTO_FLAG_SYNCONCE) && q->channel_type != CHANNEL_TEMP &&
        !chan_is_cmd(r.f.channel_id)) {
        /* spec §5.7: an API sync_once send goes to the channel's command channel (not on a
         * temp channel, whose recipients are its installed set) */
        memcpy(fake + r.f.channel_id.len, CHAN_CMD_SUFFIX, CHAN_CMD_SUFFIX_LEN);
        r.f.channel_id.len += CHAN_CMD_SUFFIX_LEN;
    }
    chan_submit_send(&r);
}

/* ---- generic store-backed operations ------------------------------------------------------ */

/* Every mutation below is one of these: args copied in, run on the writer thread, answered
 * on the origin worker. Strings live in text[]. */
typedef struct im_op {
    int origin;
    im_done_fn done;
    void *ctx;
    int status;
    void (*after)(struct im_op *); /* runs on the origin worker after commit, before done */
    uint8_t type, device_flag, level;
    int set, kind, reset, set_info;
    int64_t unread;
    store_channel_info info;
    mp_str uid, id, token;
    mp_str *uids;
    size_t n_uids;
    store_wtxn *txn; /* set while a write function runs (for scan callbacks) */
    char text[];
} im_op;

static void op_finish(worker *w, void *arg) {
    (void)w;
    im_op *op = arg;
    if (op->status == MP_OK && op->after) op->after(op);
    im_result res = {0};
    res.status = op->status;
    res.reason = op->status == MP_OK ? REASON_SUCCESS : REASON_SYSTEM_ERROR;
    res.error = op->status == MP_OK ? NULL : mp_strerror(op->status);
    if (op->done) op->done(op->ctx, &res);
    free(op->uids);
    free(op);
}

static void op_store_done(void *arg, int status) {
    im_op *op = arg;
    op->status = status;
    worker_post(op->origin, op_finish, op);
}

static im_op *op_new(im_done_fn done, void *ctx, mp_str uid, mp_str id, mp_str token, const mp_str *uids, size_t n) {
    size_t bytes = (size_t)uid.len + id.len + token.len;
    for (size_t i = 0; i < n; i++) bytes += uids[i].len;
    im_op *op = mp_calloc(1, sizeof *op + bytes);
    worker *w = worker_current();
    MP_ASSERT(w);
    op->origin = w->index;
    op->done = done;
    op->ctx = ctx;
    char *cur = op->text;
    op->uid = mp_str_pack(&cur, uid);
    op->id = mp_str_pack(&cur, id);
    op->token = mp_str_pack(&cur, token);
    if (n) {
        op->uids = mp_malloc(n * sizeof(mp_str));
        for (size_t i = 0; i < n; i++) op->uids[i] = mp_str_pack(&cur, uids[i]);
    }
    op->n_uids = n;
    return op;
}

static void op_submit(im_op *op, store_write_fn fn) { store_submit(g_store, fn, op_store_done, op); }

/* ---- users -------------------------------------------------------------------------------- */

static int write_token(store_wtxn *t, void *arg) {
    im_op *op = arg;
    return store_txn_put_device(t, op->uid, op->device_flag, op->token, op->level);
}

static void after_token(im_op *op) {
    if (op->level == 1) presence_kick_device(op->uid, op->device_flag, 10000); /* spec §4.2: closed 10 s later */
}

void im_user_token(mp_str uid, mp_str token, uint8_t device_flag, uint8_t device_level, im_done_fn done, void *ctx) {
    im_op *op = op_new(done, ctx, uid, MP_STR(""), token, NULL, 0);
    op->device_flag = device_flag;
    op->level = device_level;
    op->after = after_token;
    op_submit(op, write_token);
}

static int write_device_quit(store_wtxn *t, void *arg) {
    im_op *op = arg;
    for (uint8_t f = 0; f <= 2; f++) {
        if (op->set >= 0 && op->set != f) continue;
        /* an empty token never authenticates (session.c requires a non-empty match) */
        int rc = store_txn_put_device(t, op->uid, f, MP_STR(""), 0);
        if (rc != MP_OK) return rc;
    }
    return MP_OK;
}

static void after_device_quit(im_op *op) {
    for (uint8_t f = 0; f <= 2; f++)
        if (op->set < 0 || op->set == f) presence_kick_device(op->uid, f, g_cfg->kick_close_delay_ms);
}

void im_user_device_quit(mp_str uid, int device_flag, im_done_fn done, void *ctx) {
    im_op *op = op_new(done, ctx, uid, MP_STR(""), MP_STR(""), NULL, 0);
    op->set = device_flag; /* -1 = every flag */
    op->after = after_device_quit;
    op_submit(op, write_device_quit);
}

/* ---- system accounts (spec §5.11) ------------------------------------------------------------ */

static int write_sysuids(store_wtxn *t, void *arg) {
    im_op *op = arg;
    int rc = MP_OK;
    for (size_t i = 0; i < op->n_uids && rc == MP_OK; i++) rc = store_txn_set_sysuid(t, op->uids[i], op->set);
    return rc;
}

/* The cache follows the store only once the change is durable. */
static void after_sysuids(im_op *op) {
    if (op->set) sysuid_add(op->uids, op->n_uids);
    else sysuid_remove(op->uids, op->n_uids);
}

void im_sysuids_change(const mp_str *uids, size_t n, int add, im_done_fn done, void *ctx) {
    im_op *op = op_new(done, ctx, MP_STR(""), MP_STR(""), MP_STR(""), uids, n);
    op->set = add ? 1 : 0;
    op->after = after_sysuids;
    op_submit(op, write_sysuids);
}

/* ---- channels ------------------------------------------------------------------------------ */

static int has_conversations(uint8_t t) { return t != CHANNEL_DATA && t != CHANNEL_TEMP && t != CHANNEL_LIVE; }

static int ensure_channel(store_wtxn *t, uint8_t type, mp_str id) {
    store_channel_info info;
    if (store_txn_get_channel_info(t, type, id, &info) == MP_OK) return MP_OK;
    memset(&info, 0, sizeof info);
    info.created_ms = info.updated_ms = mp_now_ms();
    return store_txn_put_channel_info(t, type, id, &info);
}

/* A new subscriber starts with everything so far read (spec §4.4). */
static int add_subscriber(store_wtxn *t, uint8_t type, mp_str id, mp_str uid, uint64_t last_seq, uint64_t now_ns) {
    int rc = store_txn_set_member(t, STORE_SUBSCRIBERS, type, id, uid, 1);
    if (rc != MP_OK || !has_conversations(type)) return rc;
    store_conv cv;
    if (store_txn_get_conv(t, uid, type, id, &cv) != MP_OK) {
        memset(&cv, 0, sizeof cv);
        cv.created_at_ns = now_ns;
    }
    cv.readed_to_seq = last_seq;
    cv.deleted_at_seq = 0;
    cv.updated_at_ns = now_ns;
    return store_txn_put_conv(t, uid, type, id, &cv);
}

/* Remove every member of a set; subscribers also lose their conversation rows. */
static int del_conv_of(void *ctx, mp_str uid) {
    im_op *op = ctx;
    store_txn_del_conv(op->txn, uid, op->type, op->id);
    return 0;
}

static int clear_members(store_wtxn *t, im_op *op, int set) {
    if (set == STORE_SUBSCRIBERS && has_conversations(op->type)) {
        op->txn = t;
        int rc = store_txn_scan_set(t, set, op->type, op->id, del_conv_of, op);
        if (rc != MP_OK) return rc;
    }
    return store_txn_clear_set(t, set, op->type, op->id);
}

static int write_members(store_wtxn *t, void *arg) {
    im_op *op = arg;
    int rc = ensure_channel(t, op->type, op->id);
    if (rc != MP_OK) return rc;
    if (op->kind == IM_MEMBERS_REMOVE_ALL || op->kind == IM_MEMBERS_SET || op->reset) {
        rc = clear_members(t, op, op->set);
        if (rc != MP_OK) return rc;
    }
    uint64_t last = 0, now = mp_now_ns();
    store_txn_get_last_seq(t, op->type, op->id, &last);
    for (size_t i = 0; i < op->n_uids && rc == MP_OK; i++) {
        mp_str uid = op->uids[i];
        if (op->kind == IM_MEMBERS_REMOVE) {
            rc = store_txn_set_member(t, op->set, op->type, op->id, uid, 0);
            if (rc == MP_OK && op->set == STORE_SUBSCRIBERS && has_conversations(op->type))
                store_txn_del_conv(t, uid, op->type, op->id);
            if (rc == MP_OK && op->set == STORE_BLACKLIST) {
                /* spec §4.4: removal from the blacklist restores a missing conversation */
                store_conv cv;
                if (has_conversations(op->type) && op->type != CHANNEL_PERSON &&
                    store_txn_get_conv(t, uid, op->type, op->id, &cv) != MP_OK) {
                    memset(&cv, 0, sizeof cv);
                    cv.readed_to_seq = last;
                    cv.created_at_ns = cv.updated_at_ns = now;
                    store_txn_put_conv(t, uid, op->type, op->id, &cv);
                }
            }
        } else if (op->set == STORE_SUBSCRIBERS) {
            rc = add_subscriber(t, op->type, op->id, uid, last, now);
        } else {
            rc = store_txn_set_member(t, op->set, op->type, op->id, uid, 1);
            if (rc == MP_OK && op->set == STORE_BLACKLIST && has_conversations(op->type) && op->type != CHANNEL_PERSON)
                store_txn_del_conv(t, uid, op->type, op->id);
        }
    }
    return rc;
}

static void after_members(im_op *op) {
    if (op->set == STORE_SUBSCRIBERS) chan_invalidate(op->type, op->id);
    ds_invalidate(op->type, op->id); /* the business system changed the data: ask it again */
}

void im_channel_members(int set, int op_kind, mp_str channel_id, uint8_t channel_type, const mp_str *uids, size_t n,
                        im_done_fn done, void *ctx) {
    im_op *op = op_new(done, ctx, MP_STR(""), channel_id, MP_STR(""), uids, n);
    op->set = set;
    op->kind = op_kind;
    op->type = channel_type;
    op->after = after_members;
    op_submit(op, write_members);
}

static int write_channel(store_wtxn *t, void *arg) {
    im_op *op = arg;
    int rc;
    if (op->set_info) {
        store_channel_info old, info = op->info;
        uint64_t now = mp_now_ms();
        info.created_ms = store_txn_get_channel_info(t, op->type, op->id, &old) == MP_OK ? old.created_ms : now;
        info.updated_ms = now;
        rc = store_txn_put_channel_info(t, op->type, op->id, &info);
    } else {
        rc = ensure_channel(t, op->type, op->id);
    }
    if (rc != MP_OK) return rc;
    if (op->reset) {
        rc = clear_members(t, op, STORE_SUBSCRIBERS);
        if (rc != MP_OK) return rc;
    }
    uint64_t last = 0, now = mp_now_ns();
    store_txn_get_last_seq(t, op->type, op->id, &last);
    for (size_t i = 0; i < op->n_uids && rc == MP_OK; i++) rc = add_subscriber(t, op->type, op->id, op->uids[i], last, now);
    return rc;
}

static void after_channel(im_op *op) {
    chan_invalidate(op->type, op->id);
    ds_invalidate(op->type, op->id);
}

void im_channel_upsert(const im_channel_req *r, im_done_fn done, void *ctx) {
    im_op *op = op_new(done, ctx, MP_STR(""), r->channel_id, MP_STR(""), r->subscribers, r->n_subscribers);
    op->type = r->channel_type;
    op->set_info = r->set_info;
    op->info = r->info;
    op->reset = r->reset;
    op->after = after_channel;
    op_submit(op, write_channel);
}

static int write_delete(store_wtxn *t, void *arg) {
    im_op *op = arg;
    store_channel_info info;
    if (store_txn_get_channel_info(t, op->type, op->id, &info) != MP_OK) return MP_OK; /* missing: OK */
    info.disband = 1;
    info.updated_ms = mp_now_ms();
    return store_txn_put_channel_info(t, op->type, op->id, &info);
}

void im_tmp_subscribers_set(mp_str channel_id, const mp_str *uids, size_t n, im_done_fn done, void *ctx) {
    chan_temp_set(channel_id, uids, n, done, ctx);
}

void im_channel_delete(mp_str channel_id, uint8_t channel_type, im_done_fn done, void *ctx) {
    im_op *op = op_new(done, ctx, MP_STR(""), channel_id, MP_STR(""), NULL, 0);
    op->type = channel_type;
    op->after = after_channel; /* disband changed the channel info */
    op_submit(op, write_delete);
}

/* ---- conversations ---------------------------------------------------------------------- */

static int write_unread(store_wtxn *t, void *arg) {
    im_op *op = arg;
    uint64_t last = 0;
    store_txn_get_last_seq(t, op->type, op->id, &last);
    uint64_t target; /* spec §4.6 table */
    if (op->unread <= 0) target = last;
    else if ((uint64_t)op->unread <= last) target = last - (uint64_t)op->unread;
    else target = last ? last - 1 : 0;
    store_conv cv;
    uint64_t now = mp_now_ns();
    if (store_txn_get_conv(t, op->uid, op->type, op->id, &cv) != MP_OK) {
        memset(&cv, 0, sizeof cv);
        cv.created_at_ns = now;
    } else if (cv.readed_to_seq >= target) {
        return MP_OK; /* forward only */
    }
    cv.readed_to_seq = target;
    cv.updated_at_ns = now;
    return store_txn_put_conv(t, op->uid, op->type, op->id, &cv);
}

void im_conv_set_unread(mp_str uid, mp_str channel_id, uint8_t channel_type, int64_t unread, im_done_fn done,
                        void *ctx) {
    char fake[2 * PROTO_MAX_STR + 2];
    mp_str id = im_stored_channel_id(channel_type, channel_id, uid, fake);
    im_op *op = op_new(done, ctx, uid, id, MP_STR(""), NULL, 0);
    op->type = channel_type;
    op->unread = unread < 0 ? 0 : unread; /* clear == unread 0: read up to the last seq */
    op_submit(op, write_unread);
}

static int write_conv_delete(store_wtxn *t, void *arg) {
    im_op *op = arg;
    uint64_t last = 0;
    store_txn_get_last_seq(t, op->type, op->id, &last);
    store_conv cv;
    if (store_txn_get_conv(t, op->uid, op->type, op->id, &cv) != MP_OK) return MP_OK;
    cv.deleted_at_seq = last;
    if (cv.readed_to_seq < last) cv.readed_to_seq = last;
    cv.updated_at_ns = mp_now_ns();
    return store_txn_put_conv(t, op->uid, op->type, op->id, &cv);
}

void im_conv_delete(mp_str uid, mp_str channel_id, uint8_t channel_type, im_done_fn done, void *ctx) {
    char fake[2 * PROTO_MAX_STR + 2];
    mp_str id = im_stored_channel_id(channel_type, channel_id, uid, fake);
    im_op *op = op_new(done, ctx, uid, id, MP_STR(""), NULL, 0);
    op->type = channel_type;
    op_submit(op, write_conv_delete);
}

/* ---- command read pointers (spec §5.8) ---------------------------------------------------- */

static int write_advance(store_wtxn *t, void *arg) {
    im_op *op = arg;
    store_conv cv;
    uint64_t now = mp_now_ns();
    if (store_txn_get_conv(t, op->uid, op->type, op->id, &cv) != MP_OK) {
        memset(&cv, 0, sizeof cv);
        cv.type = chan_is_cmd(op->id) ? 1 : 0;
        cv.created_at_ns = now;
    } else if (cv.readed_to_seq >= (uint64_t)op->unread) {
        return MP_OK; /* forward only */
    }
    cv.readed_to_seq = (uint64_t)op->unread;
    cv.updated_at_ns = now;
    return store_txn_put_conv(t, op->uid, op->type, op->id, &cv);
}

void im_conv_advance(mp_str uid, uint8_t channel_type, mp_str stored_id, uint64_t seq, im_done_fn done, void *ctx) {
    im_op *op = op_new(done, ctx, uid, stored_id, MP_STR(""), NULL, 0);
    op->type = channel_type;
    op->unread = (int64_t)MP_MIN(seq, (uint64_t)INT64_MAX); /* the target seq */
    op_submit(op, write_advance);
}
