/* fuzz_packet.c - the WKProto framing and packet decoders (src/proto/packet.h) at every
 * protocol version.
 *
 * The input is a byte stream as a TCP client would send it. Each frame found is decoded
 * as its type at versions 0..6 (0 behaves like 1, 6 like 5: both ends of the clamp), and
 * every successful decode must round-trip:
 *   - encoding the decoded packet succeeds and frames as exactly one packet of that type;
 *   - the encoded body is a prefix of the original body (decoders ignore trailing bytes),
 *     and all of it when the last field is `rest` (SEND, RECV, EVENT payloads);
 *   - decoding the encoded packet gives the same fields again. */
#include <string.h>

#include "common/buf.h"
#include "fuzz_util.h"
#include "proto/packet.h"

#define S_EQ(a, b, f) FUZZ_CHECK(fuzz_str_eq((a)->f, (b)->f))
#define N_EQ(a, b, f) FUZZ_CHECK((a)->f == (b)->f)

/* The re-encoded packet: one whole frame of the same type; returns it. */
static proto_frame reframe(const mp_buf *enc, uint8_t type) {
    proto_frame f;
    FUZZ_CHECK(proto_frame_parse(enc->data, enc->len, PROTO_MAX_REMAINING, &f) == MP_OK);
    FUZZ_CHECK(f.type == type);
    FUZZ_CHECK(f.total_len == enc->len);
    return f;
}

/* Encoded body vs the original one: a prefix, or all of it (whole = 1). */
static void check_body(const proto_frame *orig, const proto_frame *re, int whole) {
    FUZZ_CHECK(re->body_len <= orig->body_len);
    if (whole) FUZZ_CHECK(re->body_len == orig->body_len);
    FUZZ_CHECK(re->body_len == 0 || memcmp(re->body, orig->body, re->body_len) == 0);
}

static void rt_connect(const proto_frame *f) {
    proto_connect a, b;
    if (proto_decode_connect(f->body, f->body_len, f->flags, &a) != MP_OK) return;
    mp_buf enc = MP_BUF_INIT;
    FUZZ_CHECK(proto_encode_connect(&a, &enc) == MP_OK);
    proto_frame re = reframe(&enc, PROTO_CONNECT);
    check_body(f, &re, 0);
    FUZZ_CHECK(proto_decode_connect(re.body, re.body_len, re.flags, &b) == MP_OK);
    N_EQ(&a, &b, version); N_EQ(&a, &b, device_flag); S_EQ(&a, &b, device_id); S_EQ(&a, &b, uid);
    S_EQ(&a, &b, token); N_EQ(&a, &b, client_timestamp); S_EQ(&a, &b, client_key);
    mp_buf_free(&enc);
}

static void rt_connack(const proto_frame *f, int v) {
    proto_connack a, b;
    if (proto_decode_connack(f->body, f->body_len, f->flags, v, &a) != MP_OK) return;
    mp_buf enc = MP_BUF_INIT;
    FUZZ_CHECK(proto_encode_connack(&a, v, &enc) == MP_OK);
    proto_frame re = reframe(&enc, PROTO_CONNACK);
    FUZZ_CHECK(re.flags == (f->flags & PROTO_FLAG_HAS_SERVER_VERSION)); /* the only CONNACK flag */
    check_body(f, &re, 0);
    FUZZ_CHECK(proto_decode_connack(re.body, re.body_len, re.flags, v, &b) == MP_OK);
    N_EQ(&a, &b, has_server_version); N_EQ(&a, &b, server_version); N_EQ(&a, &b, time_diff);
    N_EQ(&a, &b, reason); S_EQ(&a, &b, server_key); S_EQ(&a, &b, salt); N_EQ(&a, &b, node_id);
    if (v < 4) FUZZ_CHECK(a.node_id == 0);
    mp_buf_free(&enc);
}

static void rt_send(const proto_frame *f, int v) {
    proto_send a, b;
    if (proto_decode_send(f->body, f->body_len, f->flags, v, &a) != MP_OK) return;
    mp_buf enc = MP_BUF_INIT;
    FUZZ_CHECK(proto_encode_send(&a, v, &enc) == MP_OK);
    proto_frame re = reframe(&enc, PROTO_SEND);
    FUZZ_CHECK(re.flags == f->flags);
    check_body(f, &re, 1);
    FUZZ_CHECK(proto_decode_send(re.body, re.body_len, re.flags, v, &b) == MP_OK);
    N_EQ(&a, &b, flags); N_EQ(&a, &b, setting); N_EQ(&a, &b, client_seq); S_EQ(&a, &b, client_msg_no);
    S_EQ(&a, &b, stream_no); S_EQ(&a, &b, channel_id); N_EQ(&a, &b, channel_type); N_EQ(&a, &b, expire);
    S_EQ(&a, &b, msg_key); S_EQ(&a, &b, topic); S_EQ(&a, &b, payload);
    if (v < 3) FUZZ_CHECK(a.expire == 0); /* version-gated fields stay unset below their version */
    if (v < 2 || v > 4) FUZZ_CHECK(a.stream_no.len == 0);
    mp_buf_free(&enc);
}

static void rt_sendack(const proto_frame *f, int v) {
    proto_sendack a, b;
    if (proto_decode_sendack(f->body, f->body_len, f->flags, v, &a) != MP_OK) return;
    mp_buf enc = MP_BUF_INIT;
    FUZZ_CHECK(proto_encode_sendack(&a, v, &enc) == MP_OK);
    proto_frame re = reframe(&enc, PROTO_SENDACK);
    FUZZ_CHECK(re.flags == f->flags);
    check_body(f, &re, 0);
    FUZZ_CHECK(proto_decode_sendack(re.body, re.body_len, re.flags, v, &b) == MP_OK);
    N_EQ(&a, &b, flags); N_EQ(&a, &b, message_id); N_EQ(&a, &b, client_seq); N_EQ(&a, &b, message_seq);
    N_EQ(&a, &b, reason);
    mp_buf_free(&enc);
}

static void rt_recv(const proto_frame *f, int v) {
    proto_recv a, b;
    if (proto_decode_recv(f->body, f->body_len, f->flags, v, &a) != MP_OK) return;
    mp_buf enc = MP_BUF_INIT;
    FUZZ_CHECK(proto_encode_recv(&a, v, &enc) == MP_OK);
    proto_frame re = reframe(&enc, PROTO_RECV);
    FUZZ_CHECK(re.flags == f->flags);
    check_body(f, &re, 1);
    FUZZ_CHECK(proto_decode_recv(re.body, re.body_len, re.flags, v, &b) == MP_OK);
    N_EQ(&a, &b, flags); N_EQ(&a, &b, setting); S_EQ(&a, &b, msg_key); S_EQ(&a, &b, from_uid);
    S_EQ(&a, &b, channel_id); N_EQ(&a, &b, channel_type); N_EQ(&a, &b, expire); S_EQ(&a, &b, client_msg_no);
    N_EQ(&a, &b, stream_flag); S_EQ(&a, &b, stream_no); N_EQ(&a, &b, stream_id); N_EQ(&a, &b, message_id);
    N_EQ(&a, &b, message_seq); N_EQ(&a, &b, timestamp); S_EQ(&a, &b, topic); S_EQ(&a, &b, payload);
    if (v < 3) FUZZ_CHECK(a.expire == 0);
    if (v < 2 || v > 4) FUZZ_CHECK(a.stream_no.len == 0 && a.stream_id == 0 && a.stream_flag == 0);
    mp_buf_free(&enc);
}

static void rt_recvack(const proto_frame *f, int v) {
    proto_recvack a, b;
    if (proto_decode_recvack(f->body, f->body_len, f->flags, v, &a) != MP_OK) return;
    mp_buf enc = MP_BUF_INIT;
    FUZZ_CHECK(proto_encode_recvack(&a, v, &enc) == MP_OK);
    proto_frame re = reframe(&enc, PROTO_RECVACK);
    FUZZ_CHECK(re.flags == f->flags);
    check_body(f, &re, 0);
    FUZZ_CHECK(proto_decode_recvack(re.body, re.body_len, re.flags, v, &b) == MP_OK);
    N_EQ(&a, &b, flags); N_EQ(&a, &b, message_id); N_EQ(&a, &b, message_seq);
    mp_buf_free(&enc);
}

static void rt_disconnect(const proto_frame *f) {
    proto_disconnect a, b;
    if (proto_decode_disconnect(f->body, f->body_len, f->flags, &a) != MP_OK) return;
    mp_buf enc = MP_BUF_INIT;
    FUZZ_CHECK(proto_encode_disconnect(&a, &enc) == MP_OK);
    proto_frame re = reframe(&enc, PROTO_DISCONNECT);
    check_body(f, &re, 0);
    FUZZ_CHECK(proto_decode_disconnect(re.body, re.body_len, re.flags, &b) == MP_OK);
    N_EQ(&a, &b, reason); S_EQ(&a, &b, reason_text);
    mp_buf_free(&enc);
}

static void rt_sub(const proto_frame *f) {
    proto_sub a, b;
    if (proto_decode_sub(f->body, f->body_len, f->flags, &a) != MP_OK) return;
    mp_buf enc = MP_BUF_INIT;
    FUZZ_CHECK(proto_encode_sub(&a, &enc) == MP_OK);
    proto_frame re = reframe(&enc, PROTO_SUB);
    check_body(f, &re, 0);
    FUZZ_CHECK(proto_decode_sub(re.body, re.body_len, re.flags, &b) == MP_OK);
    N_EQ(&a, &b, setting); S_EQ(&a, &b, sub_no); S_EQ(&a, &b, channel_id); N_EQ(&a, &b, channel_type);
    N_EQ(&a, &b, action); S_EQ(&a, &b, param);
    mp_buf_free(&enc);
}

static void rt_suback(const proto_frame *f) {
    proto_suback a, b;
    if (proto_decode_suback(f->body, f->body_len, f->flags, &a) != MP_OK) return;
    mp_buf enc = MP_BUF_INIT;
    FUZZ_CHECK(proto_encode_suback(&a, &enc) == MP_OK);
    proto_frame re = reframe(&enc, PROTO_SUBACK);
    check_body(f, &re, 0);
    FUZZ_CHECK(proto_decode_suback(re.body, re.body_len, re.flags, &b) == MP_OK);
    S_EQ(&a, &b, sub_no); S_EQ(&a, &b, channel_id); N_EQ(&a, &b, channel_type); N_EQ(&a, &b, action);
    N_EQ(&a, &b, reason);
    mp_buf_free(&enc);
}

static void rt_event(const proto_frame *f) {
    proto_event a, b;
    if (proto_decode_event(f->body, f->body_len, f->flags, &a) != MP_OK) return;
    mp_buf enc = MP_BUF_INIT;
    FUZZ_CHECK(proto_encode_event(&a, &enc) == MP_OK);
    proto_frame re = reframe(&enc, PROTO_EVENT);
    check_body(f, &re, 1);
    FUZZ_CHECK(proto_decode_event(re.body, re.body_len, re.flags, &b) == MP_OK);
    S_EQ(&a, &b, id); S_EQ(&a, &b, type); N_EQ(&a, &b, timestamp); S_EQ(&a, &b, data);
    mp_buf_free(&enc);
}

static void rt_ping_pong(const proto_frame *f) {
    mp_buf enc = MP_BUF_INIT;
    if (f->type == PROTO_PING) proto_encode_ping(&enc);
    else proto_encode_pong(&enc);
    proto_frame re = reframe(&enc, f->type);
    FUZZ_CHECK(re.total_len == 1 && re.body_len == 0);
    mp_buf_free(&enc);
}

/* Every decoder of f's type; the version-independent ones once. */
static void roundtrip(const proto_frame *f) {
    switch (f->type) {
    case PROTO_CONNECT: rt_connect(f); return;
    case PROTO_DISCONNECT: rt_disconnect(f); return;
    case PROTO_SUB: rt_sub(f); return;
    case PROTO_SUBACK: rt_suback(f); return;
    case PROTO_EVENT: rt_event(f); return;
    case PROTO_PING: case PROTO_PONG: rt_ping_pong(f); return;
    default: break;
    }
    for (int v = 0; v <= PROTO_MAX_VERSION + 1; v++) {
        switch (f->type) {
        case PROTO_CONNACK: rt_connack(f, v); break;
        case PROTO_SEND: rt_send(f, v); break;
        case PROTO_SENDACK: rt_sendack(f, v); break;
        case PROTO_RECV: rt_recv(f, v); break;
        case PROTO_RECVACK: rt_recvack(f, v); break;
        default: FUZZ_CHECK(0 && "frame parser returned an unknown type");
        }
    }
}

/* Varint: any value up to the 4-byte maximum encodes and decodes back to itself. */
static void varint_roundtrip(const uint8_t *data, size_t size) {
    if (size < 4) return;
    uint32_t v = mp_load_u32be(data) & 0x0FFFFFFFu, back;
    uint8_t enc[4];
    size_t used;
    int n = proto_varint_encode(v, enc);
    FUZZ_CHECK(n >= 1 && n <= 4);
    FUZZ_CHECK(proto_varint_decode(enc, (size_t)n, &back, &used) == MP_OK && back == v && used == (size_t)n);
    FUZZ_CHECK(proto_varint_encode(0x10000000u, enc) == MP_EINVAL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    varint_roundtrip(data, size);
    size_t off = 0;
    while (off < size) {
        proto_frame f;
        int rc = proto_frame_parse(data + off, size - off, PROTO_MAX_REMAINING, &f);
        if (rc != MP_OK) {
            FUZZ_CHECK(rc == MP_EAGAIN || rc == MP_EPROTO || rc == MP_ETOOBIG);
            break;
        }
        FUZZ_CHECK(f.type >= PROTO_CONNECT && f.type <= PROTO_EVENT);
        FUZZ_CHECK(f.total_len >= 1 && f.total_len <= size - off);
        FUZZ_CHECK(f.body_len <= PROTO_MAX_REMAINING);
        FUZZ_CHECK(f.body + f.body_len == data + off + f.total_len);
        /* Same answer from a separate varint decode of the length. */
        if (f.type != PROTO_PING && f.type != PROTO_PONG) {
            uint32_t rem;
            size_t used;
            FUZZ_CHECK(proto_varint_decode(data + off + 1, size - off - 1, &rem, &used) == MP_OK);
            FUZZ_CHECK(rem == f.body_len && 1 + used + rem == f.total_len);
        }
        roundtrip(&f);
        off += f.total_len;
    }
    return 0;
}
