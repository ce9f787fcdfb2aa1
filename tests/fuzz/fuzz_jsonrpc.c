/* fuzz_jsonrpc.c - the JSON-RPC dialect of the client protocol (src/session/jsonrpc.h),
 * both directions.
 *
 * Input: byte 0 picks the negotiated version (0..6), byte 1 splits the rest into a client
 * stream (requests, as a connection sends them) and a server part (packet bodies whose
 * strings the server relays from other clients: uids, channel ids, event data).
 * Client side, per request found by jsonrpc_next:
 *   - the object lies inside the stream and starts with '{';
 *   - a packet produced is exactly one frame that decodes at the connection's version;
 *   - a reply produced is one JSON object {"jsonrpc":"2.0", "error":{"message":...}};
 *   - an answer packet for each request (CONNACK, SENDACK with its clientSeq, PONG) is
 *     translated into a JSON response.
 * Server side: RECV, EVENT and DISCONNECT packets carrying the fuzzed strings become
 * notifications that are valid JSON and keep every field (none silently dropped). */
#include <jansson.h>
#include <string.h>

#include "common/buf.h"
#include "fuzz_util.h"
#include "proto/packet.h"
#include "session/jsonrpc.h"

#define MAX_REQ 65536

/* One JSON object, appended at out[from..]. Returns it (caller decrefs). */
static json_t *one_object(const mp_buf *out, size_t from) {
    json_error_t e;
    FUZZ_CHECK(out->len > from);
    json_t *o = json_loadb((const char *)out->data + from, out->len - from, JSON_ALLOW_NUL, &e); /* \u0000 is valid JSON */
    FUZZ_CHECK(o && json_is_object(o));
    FUZZ_CHECK(json_is_string(json_object_get(o, "jsonrpc")));
    return o;
}

static void check_reply(const mp_buf *reply, size_t from) {
    if (reply->len == from) return;
    json_t *o = one_object(reply, from);
    json_t *err = json_object_get(o, "error");
    FUZZ_CHECK(json_is_object(err) && json_is_string(json_object_get(err, "message")));
    json_decref(o);
}

/* Answer a request's packet the way the server would, and translate the answer. */
static void answer(jsonrpc_state *st, const proto_frame *f, int version) {
    mp_buf pkt = MP_BUF_INIT, out = MP_BUF_INIT;
    int want_ok = 1;
    if (f->type == PROTO_CONNECT) {
        proto_connack a = {.reason = REASON_SUCCESS, .server_key = MP_STR("k"), .salt = MP_STR("s")};
        FUZZ_CHECK(proto_encode_connack(&a, version, &pkt) == MP_OK);
    } else if (f->type == PROTO_SEND) {
        proto_send s;
        FUZZ_CHECK(proto_decode_send(f->body, f->body_len, f->flags, version, &s) == MP_OK);
        proto_sendack a = {.message_id = 1, .client_seq = s.client_seq, .message_seq = 1, .reason = REASON_SUCCESS};
        FUZZ_CHECK(proto_encode_sendack(&a, version, &pkt) == MP_OK);
    } else if (f->type == PROTO_PING) {
        proto_encode_pong(&pkt);
        want_ok = 0; /* a ping notification (no id) waits for nothing */
    } else {
        return;
    }
    int rc = jsonrpc_from_packet(st, pkt.data, pkt.len, version, &out);
    FUZZ_CHECK(rc == MP_OK || (!want_ok && rc == MP_ENOTFOUND));
    if (rc == MP_OK) json_decref(one_object(&out, 0));
    mp_buf_free(&pkt);
    mp_buf_free(&out);
}

static void client_side(const uint8_t *p, size_t n, int version) {
    jsonrpc_state *st = jsonrpc_new();
    int d = jsonrpc_detect(p, n);
    FUZZ_CHECK(d == 0 || d == 1 || d == MP_EAGAIN);
    size_t off = 0;
    while (d == 1 && off < n) {
        size_t start = 0, len = 0;
        int rc = jsonrpc_next(p + off, n - off, MAX_REQ, &start, &len);
        if (rc != MP_OK) {
            FUZZ_CHECK(rc == MP_EAGAIN || rc == MP_EPROTO || rc == MP_ETOOBIG);
            break;
        }
        FUZZ_CHECK(len >= 2 && len <= MAX_REQ && start + len <= n - off && p[off + start] == '{');
        mp_buf packet = MP_BUF_INIT, reply = MP_BUF_INIT;
        rc = jsonrpc_request(st, (const char *)p + off + start, len, version, &packet, &reply);
        FUZZ_CHECK(rc == MP_OK || rc == MP_EPROTO);
        check_reply(&reply, 0);
        if (packet.len) {
            proto_frame f;
            FUZZ_CHECK(proto_frame_parse(packet.data, packet.len, PROTO_MAX_REMAINING, &f) == MP_OK);
            FUZZ_CHECK(f.total_len == packet.len);
            if (f.type == PROTO_SEND) {
                proto_send s;
                FUZZ_CHECK(proto_decode_send(f.body, f.body_len, f.flags, version, &s) == MP_OK);
            } else if (f.type == PROTO_CONNECT) {
                proto_connect c;
                FUZZ_CHECK(proto_decode_connect(f.body, f.body_len, f.flags, &c) == MP_OK);
            }
            if (rc == MP_OK) answer(st, &f, version);
        }
        mp_buf_free(&packet);
        mp_buf_free(&reply);
        if (rc != MP_OK) break; /* the connection closes */
        off += start + len;
    }
    jsonrpc_free(st);
}

/* Strings for the server-side packets: split p at 0xFF bytes. */
static mp_str next_str(const uint8_t **p, const uint8_t *end) {
    const uint8_t *s = *p, *e = memchr(s, 0xFF, (size_t)(end - s));
    if (!e) e = end;
    *p = e < end ? e + 1 : end;
    return (mp_str){(const char *)s, (uint32_t)MP_MIN((size_t)(e - s), PROTO_MAX_STR)};
}

static json_t *notify(const mp_buf *pkt, int version, const char *method) {
    jsonrpc_state *st = jsonrpc_new();
    mp_buf out = MP_BUF_INIT;
    FUZZ_CHECK(jsonrpc_from_packet(st, pkt->data, pkt->len, version, &out) == MP_OK);
    json_t *o = one_object(&out, 0);
    FUZZ_CHECK(json_is_string(json_object_get(o, "method")) &&
               strcmp(json_string_value(json_object_get(o, "method")), method) == 0);
    mp_buf_free(&out);
    jsonrpc_free(st);
    return o;
}

static void server_side(const uint8_t *p, size_t n, int version) {
    const uint8_t *end = p + n;
    mp_str a = next_str(&p, end), b = next_str(&p, end), c = next_str(&p, end);
    mp_buf pkt = MP_BUF_INIT;

    proto_recv r = {.setting = PROTO_SETTING_TOPIC, .msg_key = a, .from_uid = a, .channel_id = b,
                    .channel_type = 2, .client_msg_no = c, .topic = c, .message_id = 7, .message_seq = 3,
                    .payload = b};
    FUZZ_CHECK(proto_encode_recv(&r, version, &pkt) == MP_OK);
    json_t *o = notify(&pkt, version, "recv");
    json_t *params = json_object_get(o, "params");
    FUZZ_CHECK(json_is_string(json_object_get(params, "fromUid")));
    FUZZ_CHECK(json_is_string(json_object_get(params, "channelId")));
    FUZZ_CHECK(json_is_string(json_object_get(params, "payload")));
    FUZZ_CHECK(a.len == 0 || json_is_string(json_object_get(params, "msgKey")));
    FUZZ_CHECK(c.len == 0 || json_is_string(json_object_get(params, "clientMsgNo")));
    FUZZ_CHECK(c.len == 0 || json_is_string(json_object_get(params, "topic")));
    json_decref(o);

    mp_buf_reset(&pkt);
    proto_event e = {.id = a, .type = b, .timestamp = 1, .data = c};
    FUZZ_CHECK(proto_encode_event(&e, &pkt) == MP_OK);
    o = notify(&pkt, version, "event");
    params = json_object_get(o, "params");
    FUZZ_CHECK(json_is_string(json_object_get(params, "id")) && json_is_string(json_object_get(params, "type")) &&
               json_is_string(json_object_get(params, "data")));
    json_decref(o);

    mp_buf_reset(&pkt);
    proto_disconnect dc = {.reason = REASON_CONNECT_KICK, .reason_text = a};
    FUZZ_CHECK(proto_encode_disconnect(&dc, &pkt) == MP_OK);
    o = notify(&pkt, version, "disconnect");
    FUZZ_CHECK(a.len == 0 || json_is_string(json_object_get(json_object_get(o, "params"), "reason")));
    json_decref(o);
    mp_buf_free(&pkt);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 2) return 0;
    int version = data[0] % (PROTO_MAX_VERSION + 2);
    size_t split = MP_MIN((size_t)data[1] * 4, size - 2);
    if (data[1] == 0) split = size - 2; /* the common case: all client stream */
    client_side(data + 2, split, version);
    server_side(data + 2 + split, size - 2 - split, version);
    return 0;
}
