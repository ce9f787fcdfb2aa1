/* jsonrpc.c - JSON-RPC requests to binary packets and back (wire spec §9). */
#include "jsonrpc.h"

#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>

#include "../api/json_util.h"
#include "../core/im.h"
#include "../proto/crypto.h"
#include "../proto/packet.h"

/* Requests answered later (connect, send, ping) wait here for the packet that answers
 * them; past this many the oldest is forgotten (its answer is then dropped). */
#define MAX_WAITING 1024

typedef struct waiting {
    uint8_t type;        /* PROTO_CONNACK, PROTO_SENDACK or PROTO_PONG: what answers it */
    uint32_t client_seq; /* SENDACK: the seq given to the translated SEND */
    char *id;
} waiting;

struct jsonrpc_state {
    waiting w[MAX_WAITING]; /* ring, oldest first */
    size_t head, n;
    uint32_t next_client_seq;
    int connected; /* connect has been translated */
};

jsonrpc_state *jsonrpc_new(void) { return mp_calloc(1, sizeof(jsonrpc_state)); }

void jsonrpc_free(jsonrpc_state *st) {
    if (!st) return;
    for (size_t i = 0; i < st->n; i++) free(st->w[(st->head + i) % MAX_WAITING].id);
    free(st);
}

static void wait_push(jsonrpc_state *st, uint8_t type, uint32_t client_seq, const char *id) {
    if (st->n == MAX_WAITING) { /* forget the oldest */
        free(st->w[st->head].id);
        st->head = (st->head + 1) % MAX_WAITING;
        st->n--;
    }
    waiting *w = &st->w[(st->head + st->n) % MAX_WAITING];
    *w = (waiting){type, client_seq, mp_strndup(id, strlen(id))};
    st->n++;
}

/* Take the first waiting request answered by a packet of `type` (and client_seq for
 * SENDACK). The caller frees the id; NULL when none waits. */
static char *wait_take(jsonrpc_state *st, uint8_t type, uint32_t client_seq) {
    for (size_t i = 0; i < st->n; i++) {
        waiting *w = &st->w[(st->head + i) % MAX_WAITING];
        if (w->type != type || (type == PROTO_SENDACK && w->client_seq != client_seq)) continue;
        char *id = w->id;
        for (size_t k = i; k + 1 < st->n; k++) /* close the gap, keeping the order */
            st->w[(st->head + k) % MAX_WAITING] = st->w[(st->head + k + 1) % MAX_WAITING];
        st->n--;
        return id;
    }
    return NULL;
}

/* ---- framing ------------------------------------------------------------------------------ */

static int is_ws(uint8_t ch) { return ch == ' ' || ch == '\t' || ch == '\r' || ch == '\n'; }

int jsonrpc_detect(const uint8_t *p, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (!is_ws(p[i])) return p[i] == '{';
    return MP_EAGAIN;
}

int jsonrpc_next(const uint8_t *p, size_t n, size_t max, size_t *start, size_t *len) {
    size_t i = 0;
    while (i < n && is_ws(p[i])) i++;
    if (i == n) return MP_EAGAIN;
    if (p[i] != '{') return MP_EPROTO;
    *start = i;
    int depth = 0, in_str = 0, esc = 0;
    for (size_t k = i; k < n; k++) {
        if (k - i >= max) return MP_ETOOBIG;
        uint8_t ch = p[k];
        if (in_str) {
            if (esc) esc = 0;
            else if (ch == '\\') esc = 1;
            else if (ch == '"') in_str = 0;
            continue;
        }
        if (ch == '"') in_str = 1;
        else if (ch == '{' || ch == '[') depth++;
        else if ((ch == '}' || ch == ']') && --depth == 0) {
            *len = k - i + 1;
            return MP_OK;
        }
    }
    return n - i >= max ? MP_ETOOBIG : MP_EAGAIN;
}

/* ---- requests ------------------------------------------------------------------------------ */

static void append_json(mp_buf *out, json_t *o) {
    char *s = json_dumps(o, JSON_COMPACT);
    if (s) mp_buf_append(out, s, strlen(s));
    free(s);
    json_decref(o);
}

static json_t *envelope(const char *id) {
    json_t *o = json_object();
    json_object_set_new(o, "jsonrpc", json_string("2.0"));
    if (id) json_object_set_new(o, "id", json_string(id));
    return o;
}

static void error_reply(mp_buf *reply, const char *id, const char *text) {
    json_t *o = envelope(id ? id : "");
    json_t *e = json_object();
    json_object_set_new(e, "code", json_integer(0));
    json_object_set_new(e, "message", ju_string(mp_str_c(text))); /* text may end in a cut UTF-8 sequence */
    json_object_set_new(o, "error", e);
    append_json(reply, o);
}

/* Typed field readers: a missing or null field gives the default; a wrong type sets *bad. */
static mp_str field_str(json_t *o, const char *key, const char **bad) {
    json_t *v = o ? json_object_get(o, key) : NULL;
    if (!v || json_is_null(v)) return (mp_str){"", 0};
    if (!json_is_string(v)) {
        *bad = key;
        return (mp_str){"", 0};
    }
    return (mp_str){json_string_value(v), (uint32_t)json_string_length(v)};
}

static int64_t field_int(json_t *o, const char *key, int64_t min, int64_t max, const char **bad) {
    json_t *v = o ? json_object_get(o, key) : NULL;
    if (!v || json_is_null(v)) return 0;
    if (!json_is_integer(v) || json_integer_value(v) < min || json_integer_value(v) > max) {
        *bad = key;
        return 0;
    }
    return json_integer_value(v);
}

static int field_bool(json_t *o, const char *key, const char **bad) {
    json_t *v = o ? json_object_get(o, key) : NULL;
    if (!v || json_is_null(v)) return 0;
    if (!json_is_boolean(v)) {
        *bad = key;
        return 0;
    }
    return json_is_true(v);
}

static json_t *field_object(json_t *o, const char *key, const char **bad) {
    json_t *v = o ? json_object_get(o, key) : NULL;
    if (!v || json_is_null(v)) return NULL;
    if (!json_is_object(v)) *bad = key;
    return json_is_object(v) ? v : NULL;
}

static uint8_t header_flags(json_t *params, const char **bad) {
    json_t *h = field_object(params, "header", bad);
    uint8_t f = 0;
    if (field_bool(h, "noPersist", bad)) f |= PROTO_FLAG_NOPERSIST;
    if (field_bool(h, "redDot", bad)) f |= PROTO_FLAG_REDDOT;
    if (field_bool(h, "syncOnce", bad)) f |= PROTO_FLAG_SYNCONCE;
    if (field_bool(h, "dup", bad)) f |= PROTO_FLAG_DUP;
    field_bool(h, "end", bad);
    return f;
}

static uint8_t setting_bits(json_t *params, const char **bad) {
    json_t *s = field_object(params, "setting", bad);
    uint8_t b = 0;
    if (field_bool(s, "receipt", bad)) b |= PROTO_SETTING_RECEIPT;
    if (field_bool(s, "signal", bad)) b |= PROTO_SETTING_SIGNAL;
    if (field_bool(s, "stream", bad)) b |= PROTO_SETTING_STREAM;
    if (field_bool(s, "topic", bad)) b |= PROTO_SETTING_TOPIC;
    return b;
}

static int req_connect(jsonrpc_state *st, json_t *params, const char *id, mp_buf *packet, const char **bad) {
    proto_connect c = {0};
    c.uid = field_str(params, "uid", bad);
    c.token = field_str(params, "token", bad);
    c.version = (uint8_t)field_int(params, "version", 0, 255, bad);
    c.device_id = field_str(params, "deviceId", bad);
    c.device_flag = (uint8_t)field_int(params, "deviceFlag", 0, 255, bad);
    c.client_timestamp = field_int(params, "clientTimestamp", INT64_MIN, INT64_MAX, bad);
    field_str(params, "clientKey", bad); /* ignored: JSON-RPC is not encrypted */
    header_flags(params, bad);
    if (*bad) return MP_EINVAL;
    if (c.version == 0) c.version = PROTO_MAX_VERSION; /* spec §9.1: 0 or missing = latest */
    if (proto_encode_connect(&c, packet) != MP_OK) return MP_EINVAL;
    wait_push(st, PROTO_CONNACK, 0, id);
    return MP_OK;
}

static int req_send(jsonrpc_state *st, json_t *params, const char *id, int version, mp_buf *packet,
                    const char **bad) {
    proto_send s = {0};
    s.flags = header_flags(params, bad);
    s.setting = setting_bits(params, bad);
    s.channel_id = field_str(params, "channelId", bad);
    s.channel_type = (uint8_t)field_int(params, "channelType", 0, 255, bad);
    s.client_msg_no = field_str(params, "clientMsgNo", bad);
    s.msg_key = field_str(params, "msgKey", bad);
    s.expire = (uint32_t)field_int(params, "expire", 0, UINT32_MAX, bad);
    s.stream_no = field_str(params, "streamNo", bad);
    s.topic = field_str(params, "topic", bad);
    mp_str b64 = field_str(params, "payload", bad);
    if (*bad) return MP_EINVAL;
    if (s.topic.len) s.setting |= PROTO_SETTING_TOPIC;
    mp_buf payload = MP_BUF_INIT;
    if (crypto_b64_decode(b64.p, b64.len, &payload) != MP_OK) {
        *bad = "payload";
        mp_buf_free(&payload);
        return MP_EINVAL;
    }
    char cmn[33];
    if (s.client_msg_no.len == 0) { /* spec §9.1: an empty clientMsgNo gets a generated one */
        im_new_client_msg_no(cmn);
        s.client_msg_no = (mp_str){cmn, sizeof cmn};
    }
    s.client_seq = ++st->next_client_seq; /* private: matches the SENDACK to this request */
    s.payload = (mp_str){(const char *)payload.data, (uint32_t)payload.len};
    int rc = proto_encode_send(&s, version, packet);
    mp_buf_free(&payload);
    if (rc != MP_OK) return MP_EINVAL;
    wait_push(st, PROTO_SENDACK, s.client_seq, id);
    return MP_OK;
}

static int req_recvack(json_t *params, int version, mp_buf *packet, const char **bad) {
    proto_recvack a = {0};
    a.flags = header_flags(params, bad);
    mp_str idtext = field_str(params, "messageId", bad);
    a.message_seq = (uint32_t)field_int(params, "messageSeq", 0, UINT32_MAX, bad);
    if (*bad) return MP_EINVAL;
    char tmp[24];
    char *end;
    if (idtext.len == 0 || idtext.len >= sizeof tmp) {
        *bad = "messageId";
        return MP_EINVAL;
    }
    memcpy(tmp, idtext.p, idtext.len);
    tmp[idtext.len] = 0;
    a.message_id = strtoll(tmp, &end, 10);
    if (*end) {
        *bad = "messageId";
        return MP_EINVAL;
    }
    return proto_encode_recvack(&a, version, packet) == MP_OK ? MP_OK : MP_EINVAL;
}

int jsonrpc_request(jsonrpc_state *st, const char *json, size_t len, int version, mp_buf *packet, mp_buf *reply) {
    int connected = st->connected;
    json_error_t err;
    json_t *o = json_loadb(json, len, JSON_REJECT_DUPLICATES, &err);
    if (!o || !json_is_object(o)) {
        json_decref(o);
        return MP_EPROTO;
    }
    const char *bad = NULL;
    json_t *idv = json_object_get(o, "id");
    mp_str method = field_str(o, "method", &bad);
    mp_str rpc = field_str(o, "jsonrpc", &bad);
    const char *id = idv && json_is_string(idv) ? json_string_value(idv) : NULL;
    int is_connect = mp_str_eq_c(method, "connect");
    int rc = MP_OK;
    if (!connected && !is_connect) {
        rc = MP_EPROTO; /* spec §9.1: connect must come first */
    } else if (bad || (rpc.len && !mp_str_eq_c(rpc, "2.0")) || (idv && !json_is_string(idv))) {
        error_reply(reply, id, "invalid request: jsonrpc must be \"2.0\" and id a string");
        rc = is_connect ? MP_EPROTO : MP_OK;
    } else {
        json_t *params = json_object_get(o, "params");
        if (params && !json_is_object(params) && !json_is_null(params)) bad = "params";
        if (params && !json_is_object(params)) params = NULL;
        int r = MP_OK;
        if (bad) {
            r = MP_EINVAL;
        } else if (is_connect) {
            if (connected) rc = MP_EPROTO; /* a second connect closes, as in binary */
            else if (!id) rc = MP_EPROTO;
            else if ((r = req_connect(st, params, id, packet, &bad)) == MP_OK) st->connected = 1;
        } else if (mp_str_eq_c(method, "send")) {
            if (!id) error_reply(reply, NULL, "send is a request: it needs an id");
            else r = req_send(st, params, id, version, packet, &bad);
        } else if (mp_str_eq_c(method, "recvack")) {
            r = req_recvack(params, version, packet, &bad);
            if (r != MP_OK) r = MP_OK, bad = NULL; /* a notification gets no answer */
        } else if (mp_str_eq_c(method, "ping")) {
            uint8_t ping = PROTO_PING << 4;
            mp_buf_append(packet, &ping, 1);
            if (id) wait_push(st, PROTO_PONG, 0, id);
        } else if (mp_str_eq_c(method, "disconnect")) {
            proto_disconnect d = {(uint8_t)field_int(params, "reasonCode", 0, 255, &bad), field_str(params, "reason", &bad)};
            if (!bad) proto_encode_disconnect(&d, packet);
        } else {
            char text[96];
            snprintf(text, sizeof text, "method %.*s is not supported", (int)MP_MIN(method.len, 40), method.p);
            error_reply(reply, id, text);
        }
        if (rc == MP_OK && (r != MP_OK || bad)) {
            char text[96];
            snprintf(text, sizeof text, "invalid params: %s", bad ? bad : "value out of range");
            error_reply(reply, id, text);
            if (is_connect) rc = MP_EPROTO;
        }
    }
    json_decref(o);
    return rc;
}

/* ---- server packets --------------------------------------------------------------------- */

static json_t *header_json(uint8_t flags) {
    if (!(flags & (PROTO_FLAG_NOPERSIST | PROTO_FLAG_REDDOT | PROTO_FLAG_SYNCONCE | PROTO_FLAG_DUP))) return NULL;
    json_t *h = json_object();
    if (flags & PROTO_FLAG_NOPERSIST) json_object_set_new(h, "noPersist", json_true());
    if (flags & PROTO_FLAG_REDDOT) json_object_set_new(h, "redDot", json_true());
    if (flags & PROTO_FLAG_SYNCONCE) json_object_set_new(h, "syncOnce", json_true());
    if (flags & PROTO_FLAG_DUP) json_object_set_new(h, "dup", json_true());
    return h;
}

/* Strings relayed from other clients (uids, channel ids, event data) need not be UTF-8:
 * invalid bytes become U+FFFD, as Go's encoder does, instead of the field going missing. */
static void set_str(json_t *o, const char *key, mp_str s, int omit_empty) {
    if (omit_empty && s.len == 0) return;
    json_object_set_new(o, key, ju_string(s));
}

static void set_id(json_t *o, const char *key, int64_t id) {
    char t[24];
    snprintf(t, sizeof t, "%" PRId64, id);
    json_object_set_new(o, key, json_string(t));
}

static json_t *connack_result(const proto_connack *a) {
    json_t *r = json_object();
    set_str(r, "serverKey", a->server_key, 1);
    set_str(r, "salt", a->salt, 1);
    if (a->has_server_version) json_object_set_new(r, "serverVersion", json_integer(a->server_version));
    if (a->time_diff) json_object_set_new(r, "timeDiff", json_integer(a->time_diff));
    json_object_set_new(r, "reasonCode", json_integer(a->reason));
    json_object_set_new(r, "nodeId", json_integer((json_int_t)a->node_id));
    return r;
}

static json_t *sendack_result(const proto_sendack *a) {
    json_t *r = json_object();
    json_t *h = header_json(a->flags);
    if (h) json_object_set_new(r, "header", h);
    set_id(r, "messageId", a->message_id);
    json_object_set_new(r, "messageSeq", json_integer(a->message_seq));
    json_object_set_new(r, "reasonCode", json_integer(a->reason));
    return r;
}

static json_t *recv_params(const proto_recv *p) {
    json_t *r = json_object();
    json_t *h = header_json(p->flags);
    if (h) json_object_set_new(r, "header", h);
    if (p->setting) {
        json_t *s = json_object();
        if (p->setting & PROTO_SETTING_RECEIPT) json_object_set_new(s, "receipt", json_true());
        if (p->setting & PROTO_SETTING_SIGNAL) json_object_set_new(s, "signal", json_true());
        if (p->setting & PROTO_SETTING_STREAM) json_object_set_new(s, "stream", json_true());
        if (p->setting & PROTO_SETTING_TOPIC) json_object_set_new(s, "topic", json_true());
        json_object_set_new(r, "setting", s);
    }
    set_str(r, "msgKey", p->msg_key, 1);
    if (p->expire) json_object_set_new(r, "expire", json_integer(p->expire));
    set_id(r, "messageId", p->message_id);
    json_object_set_new(r, "messageSeq", json_integer(p->message_seq));
    set_str(r, "clientMsgNo", p->client_msg_no, 1);
    json_object_set_new(r, "timestamp", json_integer(p->timestamp));
    set_str(r, "channelId", p->channel_id, 0);
    json_object_set_new(r, "channelType", json_integer(p->channel_type));
    set_str(r, "topic", p->topic, 1);
    set_str(r, "fromUid", p->from_uid, 0);
    mp_buf b64 = MP_BUF_INIT;
    crypto_b64_encode((const uint8_t *)p->payload.p, p->payload.len, &b64);
    json_object_set_new(r, "payload", json_stringn(b64.len ? (const char *)b64.data : "", b64.len));
    mp_buf_free(&b64);
    return r;
}

static json_t *notification(const char *method, json_t *params) {
    json_t *o = envelope(NULL);
    json_object_set_new(o, "method", json_string(method));
    json_object_set_new(o, "params", params);
    return o;
}

static json_t *response(char *id, json_t *result) {
    json_t *o = envelope(id);
    if (result) json_object_set_new(o, "result", result);
    free(id);
    return o;
}

int jsonrpc_from_packet(jsonrpc_state *st, const uint8_t *pkt, size_t len, int version, mp_buf *out) {
    proto_frame f;
    if (proto_frame_parse(pkt, len, UINT32_MAX, &f) != MP_OK) return MP_EPROTO;
    json_t *o = NULL;
    switch (f.type) {
    case PROTO_CONNACK: {
        proto_connack a;
        char *id = wait_take(st, PROTO_CONNACK, 0);
        if (!id) return MP_ENOTFOUND;
        if (proto_decode_connack(f.body, f.body_len, f.flags, version, &a) != MP_OK) {
            free(id);
            return MP_EPROTO;
        }
        o = response(id, connack_result(&a));
        break;
    }
    case PROTO_SENDACK: {
        proto_sendack a;
        if (proto_decode_sendack(f.body, f.body_len, f.flags, version, &a) != MP_OK) return MP_EPROTO;
        char *id = wait_take(st, PROTO_SENDACK, a.client_seq);
        if (!id) return MP_ENOTFOUND;
        o = response(id, sendack_result(&a));
        break;
    }
    case PROTO_PONG: {
        char *id = wait_take(st, PROTO_PONG, 0);
        if (!id) return MP_ENOTFOUND;
        o = response(id, NULL); /* spec §9.2: a pong response has no result member */
        break;
    }
    case PROTO_RECV: {
        proto_recv r;
        if (proto_decode_recv(f.body, f.body_len, f.flags, version, &r) != MP_OK) return MP_EPROTO;
        o = notification("recv", recv_params(&r));
        break;
    }
    case PROTO_DISCONNECT: {
        proto_disconnect d;
        if (proto_decode_disconnect(f.body, f.body_len, f.flags, &d) != MP_OK) return MP_EPROTO;
        json_t *p = json_object();
        json_object_set_new(p, "reasonCode", json_integer(d.reason));
        set_str(p, "reason", d.reason_text, 1);
        o = notification("disconnect", p);
        break;
    }
    case PROTO_EVENT: {
        proto_event e;
        if (proto_decode_event(f.body, f.body_len, f.flags, &e) != MP_OK) return MP_EPROTO;
        json_t *p = json_object();
        set_str(p, "id", e.id, 0);
        set_str(p, "type", e.type, 0);
        json_object_set_new(p, "timestamp", json_integer(e.timestamp));
        set_str(p, "data", e.data, 0);
        o = notification("event", p);
        break;
    }
    default: return MP_ENOTFOUND;
    }
    append_json(out, o);
    return MP_OK;
}
