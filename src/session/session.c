/* session.c - protocol sessions: authentication, SEND intake, RECV output, retries. */
#include "session.h"

#include <openssl/crypto.h>

#include "../channel/channel.h"
#include "../common/log.h"
#include "../common/metrics.h"
#include "../core/im.h"
#include "../core/presence.h"
#include "../proto/crypto.h"
#include "../store/store.h"

#define MAX_PENDING_PER_CONN 4096
/* sendRateLimit: a connection is closed after this many refusals in a row (a flood, not a
 * client that merely bursts) */
#define SEND_REFUSALS_BEFORE_CLOSE(burst) (100u + 10u * (uint64_t)(burst))

/* A RECV awaiting its RECVACK. It keeps a reference on the message, not a copy of the
 * packet: a retry re-encodes it with the same timestamp, so the bytes are identical, and
 * one message pushed to many connections is held once. The pending RECVs of a
 * connection form a ring, oldest first (conn.h), because clients acknowledge in order
 * almost always: adding and acknowledging are then O(1) and allocate nothing. */
typedef struct pending_recv {
    int64_t message_id; /* 0: acknowledged out of order, a hole until it reaches the head */
    mp_msg *m;
    uint64_t sent_ms;
    int32_t timestamp;  /* the RECV's timestamp field */
    uint16_t tries;
    uint8_t cmd;        /* a stored command message: a master's RECVACK moves the read pointer */
} pending_recv;

static const mp_config *g_cfg;

void session_init(const mp_config *cfg) { g_cfg = cfg; }

int64_t im_next_message_id(void); /* im.c */

/* ---- CONNECT ----------------------------------------------------------------------- */

static void send_connack_failure(conn *c, uint8_t version, uint8_t reason) {
    c->version = version; /* the version the CONNACK is encoded at (JSON-RPC decodes it) */
    proto_connack a = {0};
    a.reason = reason;
    mp_buf out = MP_BUF_INIT;
    proto_encode_connack(&a, version, &out);
    conn_write_packet(c, out.data, out.len);
    mp_buf_free(&out);
    conn_close(c, "connect refused");
}

/* spec §5.1: visitors (customer service) connect without a registered token. */
static int is_visitor(mp_str uid) {
    size_t n = strlen(g_cfg->visitors_suffix);
    return n && uid.len > n && memcmp(uid.p + uid.len - n, g_cfg->visitors_suffix, n) == 0;
}

/* Returns REASON_SUCCESS or the failure reason; fills level. */
static uint8_t authenticate(const proto_connect *p, uint8_t *level) {
    *level = 0;
    if (!im_valid_id(p->uid) || mp_str_eq_c(p->uid, MP_SYSTEM_UID)) return REASON_AUTH_FAIL;
    store_rtxn *r;
    if (store_rtxn_begin(im_store(), &r) != MP_OK) return REASON_SYSTEM_ERROR;
    uint8_t reason = REASON_SUCCESS;
    mp_str manager_token = mp_str_c(g_cfg->manager_token);
    if (manager_token.len && mp_str_eq_c(p->uid, g_cfg->manager_uid)) {
        /* spec §5.1: the manager uid's token is managerToken; it connects as a slave */
        if (p->token.len != manager_token.len || CRYPTO_memcmp(p->token.p, manager_token.p, manager_token.len) != 0)
            reason = REASON_AUTH_FAIL;
    } else if (g_cfg->token_auth_on && !is_visitor(p->uid)) {
        store_device d;
        int rc = store_get_device(r, p->uid, p->device_flag, &d);
        if (rc == MP_ENOTFOUND || (rc == MP_OK && (p->token.len == 0 || !mp_str_eq(d.token, p->token))))
            reason = REASON_AUTH_FAIL;
        else if (rc != MP_OK)
            reason = REASON_QUERY_TOKEN_ERROR;
        else
            *level = d.level;
    }
    if (reason == REASON_SUCCESS) {
        store_channel_info info;
        if (store_get_channel_info(r, CHANNEL_PERSON, p->uid, &info) == MP_OK && info.ban) reason = REASON_BAN;
    }
    store_rtxn_end(r);
    return reason;
}

static uint32_t send_burst(void) {
    return g_cfg->send_rate_burst ? g_cfg->send_rate_burst : g_cfg->send_rate_limit;
}

/* A CONNACK held until the uid's presence owner has registered the connection: a
 * client must not hold its CONNACK while a fan-out could still miss it (a peer told
 * "b is connected" sends at once). */
typedef struct connack_job {
    uint64_t conn_id;
    size_t len;
    uint8_t bytes[];
} connack_job;

static void connack_when_registered(worker *w, void *arg) {
    connack_job *j = arg;
    conn *c = conn_find(w, j->conn_id);
    if (c && c->state == CONN_AUTHING) {
        c->state = CONN_READY;
        conn_write_packet(c, j->bytes, j->len);
        conn_input_resume(c);
    }
    free(j);
}

static int on_connect(conn *c, const proto_frame *f) {
    proto_connect p;
    if (c->state != CONN_PREAUTH) return MP_EPROTO; /* a second CONNECT closes the connection */
    if (proto_decode_connect(f->body, f->body_len, f->flags, &p) != MP_OK) {
        send_connack_failure(c, 2, REASON_AUTH_FAIL);
        return MP_OK;
    }
    uint8_t version = p.version == 0 ? 1 : MP_MIN(p.version, PROTO_MAX_VERSION);
    uint8_t level;
    uint8_t reason = authenticate(&p, &level);
    if (reason != REASON_SUCCESS) {
        LOG_DEBUG("session", "connect refused conn=%llu reason=%u", (unsigned long long)c->id, reason);
        send_connack_failure(c, version, reason);
        return MP_OK;
    }
    char server_pub[45] = "";
    uint8_t salt[16];
    if (!g_cfg->disable_encryption && !c->rpc) { /* JSON-RPC is never encrypted (spec §9) */
        if (p.client_key.len == 0) {
            send_connack_failure(c, version, REASON_CLIENT_KEY_IS_EMPTY);
            return MP_OK;
        }
        if (crypto_server_handshake(p.client_key.p, p.client_key.len, &c->keys, server_pub) != MP_OK) {
            send_connack_failure(c, version, REASON_AUTH_FAIL);
            return MP_OK;
        }
        memcpy(salt, c->keys.iv, 16);
        c->encrypt = 1;
    }
    c->version = version;
    c->client_version = p.version;
    c->device_flag = p.device_flag;
    c->device_level = level;
    c->uid = mp_strndup(p.uid.p, p.uid.len);
    c->device_id = mp_strndup(p.device_id.p, p.device_id.len);
    c->state = CONN_AUTHING;
    rl_bucket_fill(&c->send_bucket, uv_now(c->tcp.loop), send_burst());

    proto_connack a = {0};
    a.has_server_version = p.version > 3;
    a.server_version = version;
    a.time_diff = (int64_t)mp_now_ms() - p.client_timestamp;
    a.reason = REASON_SUCCESS;
    a.server_key = mp_str_c(server_pub);
    a.salt = c->encrypt ? (mp_str){(const char *)salt, 16} : MP_STR("");
    a.node_id = g_cfg->node_id;
    mp_buf out = MP_BUF_INIT;
    proto_encode_connack(&a, version, &out);
    connack_job *j = mp_malloc(sizeof *j + out.len);
    j->conn_id = c->id;
    j->len = out.len;
    memcpy(j->bytes, out.data, out.len);
    mp_buf_free(&out);
    presence_online(c, connack_when_registered, j);
    return MP_OK;
}

/* ---- SEND -------------------------------------------------------------------------- */

int session_sendack(worker *w, uint64_t conn_id, uint8_t flags, int64_t message_id, uint32_t client_seq,
                    uint64_t message_seq, uint8_t reason) {
    conn *c = conn_find(w, conn_id);
    if (!c || c->state != CONN_READY) return 0;
    proto_sendack a = {flags, message_id, client_seq, (uint32_t)message_seq, reason};
    uint8_t buf[64];
    mp_buf out = {buf, 0, sizeof buf}; /* stack buffer: a SENDACK is < 32 bytes */
    proto_encode_sendack(&a, c->version, &out);
    MP_ASSERT(out.data == buf);
    conn_write_packet(c, out.data, out.len);
    mt_worker *m = mt_worker_slot(w->index);
    if (reason == REASON_SUCCESS) m->sendacks_ok++;
    else m->sendacks_refused++;
    return 1;
}

/* An agent channel given as its stored id "uid@agentUid" (Magpie: so the agent can answer
 * in the user's channel): both parts valid uids, the sender one of them. */
static int is_own_agent_id(mp_str id, mp_str sender) {
    const char *at = id.len ? memchr(id.p, '@', id.len) : NULL;
    if (!at) return 0;
    mp_str a = {id.p, (uint32_t)(at - id.p)}, b = {at + 1, id.len - (uint32_t)(at - id.p) - 1};
    return im_valid_id(a) && im_valid_id(b) && (mp_str_eq(a, sender) || mp_str_eq(b, sender));
}

/* sendRateLimit: 1 if this SEND may go on. Uses the loop's cached time (no system call). */
static int send_allowed(conn *c) {
    if (g_cfg->send_rate_limit == 0) return 1;
    if (rl_take(&c->send_bucket, uv_now(c->tcp.loop), g_cfg->send_rate_limit, send_burst())) {
        c->send_refused = 0;
        return 1;
    }
    c->send_refused++;
    return 0;
}

static int on_send(conn *c, const proto_frame *f) {
    proto_send s;
    if (proto_decode_send(f->body, f->body_len, f->flags, c->version, &s) != MP_OK) return MP_EPROTO;
    uint64_t decoded_ns = uv_hrtime();
    c->in_msgs++;
    int64_t message_id = im_next_message_id();
    uint8_t flags = f->flags & 0x0F;
    if (!send_allowed(c)) {
        if (c->send_refused > SEND_REFUSALS_BEFORE_CLOSE(send_burst())) {
            LOG_WARN("session", "closing: keeps sending over sendRateLimit conn=%llu uid=%s sendRateLimit=%u",
                     (unsigned long long)c->id, c->uid, g_cfg->send_rate_limit);
            return MP_ETOOBIG;
        }
        session_sendack(c->w, c->id, flags, message_id, s.client_seq, 0, REASON_RATE_LIMIT);
        return MP_OK;
    }
    uint8_t stream_bit = c->version <= 4 ? (PROTO_SETTING_STREAM | PROTO_SETTING_STREAM_OLD) : 0;
    if (s.setting & stream_bit) {
        /* Old clients disagree on the stream layout (spec §5.1): refuse rather than misparse. */
        session_sendack(c->w, c->id, flags, message_id, s.client_seq, 0, REASON_NOT_SUPPORT_HEADER);
        return MP_OK;
    }
    if (s.channel_type == 0 || s.channel_type > CHANNEL_AGENT_GROUP) {
        session_sendack(c->w, c->id, flags, message_id, s.client_seq, 0, REASON_NOT_SUPPORT_CHANNEL_TYPE);
        return MP_OK;
    }
    if (s.client_msg_no.len > IM_MAX_CLIENT_MSG_NO_LEN) {
        session_sendack(c->w, c->id, flags, message_id, s.client_seq, 0, REASON_NOT_SUPPORT_HEADER);
        return MP_OK;
    }
    mp_str uid = mp_str_c(c->uid);
    if (!im_valid_id(s.channel_id) && !(s.channel_type == CHANNEL_AGENT && is_own_agent_id(s.channel_id, uid))) {
        session_sendack(c->w, c->id, flags, message_id, s.client_seq, 0, REASON_CHANNEL_ID_ERROR);
        return MP_OK;
    }
    mp_buf plain = MP_BUF_INIT;
    mp_str payload = s.payload;
    if (c->encrypt) {
        char key[32];
        if (crypto_send_msgkey(&c->keys, s.client_seq, s.client_msg_no, s.channel_id, s.channel_type, s.payload,
                               key) != MP_OK ||
            s.msg_key.len != 32 || memcmp(key, s.msg_key.p, 32) != 0 ||
            crypto_decrypt_b64(&c->keys, s.payload.p, s.payload.len, &plain) != MP_OK) {
            mp_buf_free(&plain);
            session_sendack(c->w, c->id, flags, message_id, s.client_seq, 0, REASON_PAYLOAD_DECODE_ERROR);
            return MP_OK;
        }
        payload = (mp_str){(const char *)plain.data, (uint32_t)plain.len};
    }
    char fake[2 * PROTO_MAX_STR + 2];
    chan_send r = {0};
    r.origin_worker = c->w->index;
    r.conn_id = c->id;
    r.client_seq = s.client_seq;
    r.ack_flags = flags;
    r.decoded_ns = decoded_ns;
    r.f.message_id = message_id;
    r.f.timestamp = (uint32_t)(mp_now_ms() / 1000);
    r.f.expire = s.expire;
    r.f.flags = flags & (PROTO_FLAG_NOPERSIST | PROTO_FLAG_REDDOT | PROTO_FLAG_SYNCONCE);
    r.f.setting = s.setting;
    r.f.channel_type = s.channel_type;
    r.f.from_uid = uid;
    r.f.client_msg_no = s.client_msg_no;
    r.f.topic = s.topic;
    r.f.payload = payload;
    if (s.channel_type == CHANNEL_PERSON) {
        r.f.channel_id = (mp_str){fake, msg_person_fake_id(s.channel_id, uid, fake)};
    } else if (s.channel_type == CHANNEL_AGENT && im_valid_id(s.channel_id)) {
        r.f.channel_id = (mp_str){fake, chan_agent_id(uid, s.channel_id, fake)}; /* as WuKongIM builds it */
    } else {
        r.f.channel_id = s.channel_id;
    }
    chan_submit_send(&r);
    mp_buf_free(&plain);
    return MP_OK;
}

/* ---- RECV / RECVACK ---------------------------------------------------------------- */

static pending_recv *pending_at(conn *c, uint32_t i) {
    return &c->pending[(c->pending_head + i) & (c->pending_cap - 1)];
}

static void pending_pop_head(conn *c) {
    pending_recv *p = pending_at(c, 0);
    if (p->m) msg_unref(p->m);
    p->m = NULL;
    c->pending_head = (c->pending_head + 1) & (c->pending_cap - 1);
    c->n_pending--;
}

/* Drop acknowledged holes at the head; give a large, empty ring back. */
static void pending_trim(conn *c) {
    while (c->n_pending && pending_at(c, 0)->message_id == 0) pending_pop_head(c);
    if (c->n_pending == 0 && c->pending_cap > 64) {
        free(c->pending);
        c->pending = NULL;
        c->pending_cap = c->pending_head = 0;
    }
}

static void pending_grow(conn *c) {
    uint32_t cap = c->pending_cap ? c->pending_cap * 2 : 8;
    pending_recv *v = mp_malloc(cap * sizeof *v);
    for (uint32_t i = 0; i < c->n_pending; i++) v[i] = *pending_at(c, i);
    free(c->pending);
    c->pending = v;
    c->pending_cap = cap;
    c->pending_head = 0;
}

/* Takes the caller's reference on m. */
static void pending_add(conn *c, mp_msg *m, int32_t timestamp, int cmd) {
    if (c->n_pending >= MAX_PENDING_PER_CONN) { /* drop the oldest: bounded memory */
        pending_pop_head(c);
        pending_trim(c);
    }
    if (c->n_pending == c->pending_cap) pending_grow(c);
    pending_recv *p = pending_at(c, c->n_pending++);
    p->message_id = m->f.message_id;
    p->m = m;
    p->sent_ms = uv_now(&c->w->loop); /* the loop's cached monotonic time: no clock call */
    p->timestamp = timestamp;
    p->tries = 0;
    p->cmd = (uint8_t)cmd;
}

/* Drop the pending RECV of message_id; returns whether it was a command message. */
/* Forget the pending RECV of message_id. When it was a stored command message, returns 1
 * and hands its message reference to *cmd (the caller unrefs); else returns 0. */
static int pending_remove(conn *c, int64_t message_id, mp_msg **cmd) {
    if (message_id == 0) return 0;
    for (uint32_t i = 0; i < c->n_pending; i++) {
        pending_recv *p = pending_at(c, i);
        if (p->message_id != message_id) continue;
        int is_cmd = p->cmd;
        p->message_id = 0;
        if (is_cmd) *cmd = p->m;
        else msg_unref(p->m);
        p->m = NULL;
        pending_trim(c);
        return is_cmd;
    }
    return 0;
}

static void pending_clear(conn *c) {
    while (c->n_pending) pending_pop_head(c);
    free(c->pending);
    c->pending = NULL;
    c->pending_cap = c->pending_head = 0;
}

/* Per-worker scratch buffers for encoding RECVs: the hot path allocates nothing. enc[i]
 * holds lane i's encrypted payload in a batch (deliver_lanes); the single path uses enc[0]. */
static struct {
    mp_buf enc[CRYPTO_MSGKEY_BATCH], out;
} g_scratch[MP_MAX_WORKERS];

void session_worker_free(worker *w) {
    for (int i = 0; i < CRYPTO_MSGKEY_BATCH; i++) mp_buf_free(&g_scratch[w->index].enc[i]);
    mp_buf_free(&g_scratch[w->index].out);
}

/* m as this connection's RECV, all but the payload and msgKey. */
static void recv_fields(const conn *c, const msg_fields *f, int32_t timestamp, proto_recv *r) {
    mp_str uid = mp_str_c(c->uid);
    int own = mp_str_eq(uid, f->from_uid);
    *r = (proto_recv){0};
    r->flags = f->flags & (PROTO_FLAG_NOPERSIST | PROTO_FLAG_SYNCONCE | PROTO_FLAG_REDDOT);
    if (own) r->flags &= (uint8_t)~PROTO_FLAG_REDDOT;
    r->setting = f->setting;
    r->from_uid = mp_str_eq_c(f->from_uid, MP_SYSTEM_UID) ? MP_STR("") : f->from_uid;
    mp_str channel = chan_cmd_origin(f->channel_id); /* command messages show their channel */
    r->channel_id = f->channel_type == CHANNEL_PERSON ? msg_person_peer(channel, uid)
                    : f->channel_type == CHANNEL_AGENT ? chan_agent_peer(channel) : channel;
    r->channel_type = f->channel_type;
    r->expire = f->expire;
    r->client_msg_no = f->client_msg_no;
    r->message_id = f->message_id;
    r->message_seq = (uint32_t)f->seq;
    r->timestamp = timestamp;
    r->topic = f->topic;
}

static crypto_recv_sign recv_sign(const conn *c, const proto_recv *r) {
    return (crypto_recv_sign){&c->keys, r->message_id, r->message_seq, r->client_msg_no, r->timestamp,
                              r->from_uid, r->channel_id, r->channel_type, r->payload};
}

/* The payload encrypted with the connection's key, as Base64 text in enc. */
static int encrypt_payload(const conn *c, const msg_fields *f, mp_buf *enc, proto_recv *r) {
    enc->len = 0;
    if (crypto_encrypt_b64(&c->keys, (const uint8_t *)f->payload.p, f->payload.len, enc) != MP_OK) return MP_ECRYPTO;
    r->payload = (mp_str){(const char *)enc->data, (uint32_t)enc->len};
    return MP_OK;
}

static void recv_failed(const conn *c, int rc) {
    LOG_WARN("session", "cannot encode RECV conn=%llu err=\"%s\"", (unsigned long long)c->id, mp_strerror(rc));
}

/* Encode r and queue it on c; MP_OK once queued (a failure is logged). */
static int queue_recv(conn *c, const proto_recv *r) {
    mp_buf *out = &g_scratch[c->w->index].out;
    out->len = 0;
    int rc = proto_encode_recv(r, c->version, out);
    if (rc != MP_OK) recv_failed(c, rc);
    else conn_write_packet(c, out->data, out->len);
    return rc;
}

/* Encode and queue m's RECV; MP_OK once queued. */
static int write_recv(conn *c, mp_msg *m, int32_t timestamp) {
    proto_recv r;
    recv_fields(c, &m->f, timestamp, &r);
    char key[32];
    r.payload = m->f.payload;
    if (c->encrypt) {
        if (encrypt_payload(c, &m->f, &g_scratch[c->w->index].enc[0], &r) != MP_OK ||
            crypto_recv_msgkey(&c->keys, r.message_id, r.message_seq, r.client_msg_no, r.timestamp, r.from_uid,
                               r.channel_id, r.channel_type, r.payload, key) != MP_OK) {
            recv_failed(c, MP_ECRYPTO);
            return MP_ECRYPTO;
        }
        r.msg_key = (mp_str){key, 32};
    }
    return queue_recv(c, &r);
}

/* EVENT frames exist from protocol version 5 (GoProto v1.2.3). Older clients, SDK 1.0.4
 * among them (version 2), have no decoder for type 12: they throw and reconnect (wire spec
 * §4.10), so they never get one. */
#define EVENT_MIN_VERSION 5

static void deliver_event(conn *c, const msg_fields *f) {
    if (c->client_version < EVENT_MIN_VERSION) return;
    proto_event e = {f->event_id, f->event_type, f->event_ts, f->payload};
    mp_buf out = MP_BUF_INIT;
    if (proto_encode_event(&e, &out) == MP_OK) {
        conn_write_packet(c, out.data, out.len);
        c->out_msgs++;
        mt_worker_slot(c->w->index)->deliveries++;
    } else {
        LOG_WARN("session", "cannot encode EVENT conn=%llu", (unsigned long long)c->id);
    }
    mp_buf_free(&out);
}

/* The RECV timestamp (server seconds): read from the clock once per loop iteration of the
 * worker, not once per delivery (a fan-out writes thousands in one iteration). */
static struct {
    uint64_t loop_ms;
    int32_t wall_s;
} g_push_clock[MP_MAX_WORKERS];

static int32_t push_time(worker *w) {
    uint64_t loop_ms = uv_now(&w->loop);
    if (g_push_clock[w->index].wall_s == 0 || g_push_clock[w->index].loop_ms != loop_ms) {
        g_push_clock[w->index].loop_ms = loop_ms;
        g_push_clock[w->index].wall_s = (int32_t)(mp_now_ms() / 1000);
    }
    return g_push_clock[w->index].wall_s;
}

/* A RECV of m is queued on c: count it, and keep it pending for a retry unless it is not
 * stored. Returns 1 when the pending entry took the caller's reference on m. */
static int recv_queued(conn *c, mp_msg *m, int32_t ts) {
    c->out_msgs++;
    mt_worker_slot(c->w->index)->deliveries++;
    if (m->f.flags & PROTO_FLAG_NOPERSIST) return 0;
    pending_add(c, m, ts, (m->f.flags & PROTO_FLAG_SYNCONCE) && chan_is_cmd(m->f.channel_id));
    return 1;
}

static int deliver_one(conn *c, mp_msg *m, int32_t ts) {
    if (m->f.kind == MSG_KIND_EVENT) {
        deliver_event(c, &m->f);
        return 0;
    }
    return write_recv(c, m, ts) == MP_OK ? recv_queued(c, m, ts) : 0;
}

/* RECVs of m to encrypted connections, their msgKeys computed together (the MD5s of equal
 * texts run several at a time: crypto_recv_msgkey_lanes). Returns the references kept. */
static int deliver_lanes(worker *w, conn **lanes, size_t n, mp_msg *m, int32_t ts) {
    proto_recv r[CRYPTO_MSGKEY_BATCH];
    char keys[CRYPTO_MSGKEY_BATCH][32];
    int ok[CRYPTO_MSGKEY_BATCH];
    for (size_t i = 0; i < n; i++) {
        recv_fields(lanes[i], &m->f, ts, &r[i]);
        /* payload, then the sign string, with the same key: one key schedule per RECV */
        ok[i] = encrypt_payload(lanes[i], &m->f, &g_scratch[w->index].enc[i], &r[i]) == MP_OK;
        if (ok[i]) {
            crypto_recv_sign in = recv_sign(lanes[i], &r[i]);
            ok[i] = crypto_recv_msgkey_lane(i, &in) == MP_OK;
        }
        if (!ok[i]) recv_failed(lanes[i], MP_ECRYPTO);
    }
    crypto_recv_msgkey_lanes(n, keys);
    int kept = 0;
    for (size_t i = 0; i < n; i++) {
        if (!ok[i]) continue;
        r[i].msg_key = (mp_str){keys[i], 32};
        if (queue_recv(lanes[i], &r[i]) == MP_OK) kept += recv_queued(lanes[i], m, ts);
    }
    return kept;
}

int session_deliver_many(worker *w, const uint64_t *conn_ids, size_t n, mp_msg *m) {
    int32_t ts = push_time(w);
    conn *lanes[CRYPTO_MSGKEY_BATCH];
    size_t nl = 0;
    int kept = 0;
    for (size_t i = 0; i < n; i++) {
        conn *c = conn_find(w, conn_ids[i]);
        if (!c || c->state != CONN_READY) continue;
        if (m->f.kind == MSG_KIND_EVENT || !c->encrypt) {
            kept += deliver_one(c, m, ts);
            continue;
        }
        lanes[nl++] = c;
        if (nl == CRYPTO_MSGKEY_BATCH) {
            kept += deliver_lanes(w, lanes, nl, m, ts);
            nl = 0;
        }
    }
    if (nl == 1) kept += deliver_one(lanes[0], m, ts); /* nothing to batch with */
    else if (nl) kept += deliver_lanes(w, lanes, nl, m, ts);
    return kept;
}

/* spec §5.8: a master device's RECVACK of a stored command message moves the user's
 * command read pointer to it, so /message/sync will not return it again. The message is
 * the one the RECV carried (it may not be committed to LMDB yet: the store write queues
 * behind the message's own). */
static int on_recvack(conn *c, const proto_frame *f) {
    proto_recvack a;
    if (proto_decode_recvack(f->body, f->body_len, f->flags, c->version, &a) != MP_OK) return MP_EPROTO;
    mp_msg *cmd = NULL;
    if (!(f->flags & PROTO_FLAG_NOPERSIST) && pending_remove(c, a.message_id, &cmd)) {
        if (c->device_level == 1 && chan_is_cmd(cmd->f.channel_id))
            im_conv_advance(mp_str_c(c->uid), cmd->f.channel_type, cmd->f.channel_id, cmd->f.seq, NULL, NULL);
        msg_unref(cmd);
    }
    return MP_OK;
}

void session_sweep(conn *c, uint64_t now_ms) {
    for (uint32_t i = 0; i < c->n_pending; i++) {
        pending_recv *p = pending_at(c, i);
        if (p->message_id == 0 || now_ms < p->sent_ms || now_ms - p->sent_ms < g_cfg->retry_interval_ms) continue;
        if (p->tries >= g_cfg->retry_max_count) { /* give up: the client syncs it later */
            p->message_id = 0;
            msg_unref(p->m);
            p->m = NULL;
            continue;
        }
        p->tries++;
        p->sent_ms = now_ms;
        write_recv(c, p->m, p->timestamp);
    }
    pending_trim(c);
}

/* ---- kicks, close -------------------------------------------------------------------- */

void session_kick(worker *w, uint64_t conn_id, uint8_t reason, const char *text, uint32_t delay_ms) {
    conn *c = conn_find(w, conn_id);
    if (!c) return;
    if (reason && c->state == CONN_READY) {
        proto_disconnect d = {reason, mp_str_c(text)};
        mp_buf out = MP_BUF_INIT;
        proto_encode_disconnect(&d, &out);
        conn_write_packet(c, out.data, out.len);
        mp_buf_free(&out);
    }
    conn_close_after(c, delay_ms);
}

void session_on_close(conn *c) {
    if (c->uid) {
        presence_offline(mp_str_c(c->uid), c->id);
        free(c->uid);
        c->uid = NULL;
    }
    free(c->device_id);
    c->device_id = NULL;
    pending_clear(c);
}

/* ---- dispatch ------------------------------------------------------------------------- */

int session_on_packet(conn *c, const proto_frame *f) {
    if (c->state == CONN_PREAUTH) {
        if (f->type != PROTO_CONNECT) return MP_EPERM; /* only CONNECT before authentication */
        return on_connect(c, f);
    }
    switch (f->type) {
    case PROTO_SEND: return on_send(c, f);
    case PROTO_RECVACK: return on_recvack(c, f);
    case PROTO_PING: {
        uint8_t pong = 0x80;
        conn_write_packet(c, &pong, 1);
        return MP_OK;
    }
    case PROTO_CONNECT: return MP_EPROTO;
    case PROTO_DISCONNECT: conn_close(c, "client disconnect"); return MP_OK;
    default: return MP_OK; /* SUB and server-to-client types are ignored, as v2.2.5 does */
    }
}
