/* packet.h - WuKongIM binary protocol ("WKProto") codec, versions 1..5.
 * Pure functions: decoders take a body span and fill structs whose mp_str fields
 * point INTO the input (valid while the input is); encoders append a complete
 * packet (header byte + varint length + body) to an mp_buf.
 * Layouts: ../shared/spec/wire-protocol.md §1-§5, §11. */
#ifndef MP_PROTO_PACKET_H
#define MP_PROTO_PACKET_H

#include "../common/buf.h"
#include "../common/mp.h"

enum proto_type {
    PROTO_CONNECT = 1,
    PROTO_CONNACK = 2,
    PROTO_SEND = 3,
    PROTO_SENDACK = 4,
    PROTO_RECV = 5,
    PROTO_RECVACK = 6,
    PROTO_PING = 7,
    PROTO_PONG = 8,
    PROTO_DISCONNECT = 9,
    PROTO_SUB = 10,
    PROTO_SUBACK = 11,
    PROTO_EVENT = 12,
};

/* Header flag bits (low nibble of byte 0). */
#define PROTO_FLAG_NOPERSIST 0x01
#define PROTO_FLAG_REDDOT 0x02
#define PROTO_FLAG_SYNCONCE 0x04
#define PROTO_FLAG_DUP 0x08
#define PROTO_FLAG_HAS_SERVER_VERSION 0x01 /* CONNACK only */

/* Setting byte bits (SEND, RECV, SUB). */
#define PROTO_SETTING_RECEIPT 0x80
#define PROTO_SETTING_SIGNAL 0x20
#define PROTO_SETTING_NOENCRYPT 0x10
#define PROTO_SETTING_TOPIC 0x08
#define PROTO_SETTING_STREAM_OLD 0x04 /* SDK 1.0.4 stream bit */
#define PROTO_SETTING_STREAM 0x02

#define PROTO_MAX_VERSION 5
#define PROTO_MAX_REMAINING 1048576u /* protocol hard limit, spec §1.4 */
#define PROTO_MAX_STR 32767u

/* Reason codes, spec §6.1. */
enum proto_reason {
    REASON_UNKNOWN = 0,
    REASON_SUCCESS = 1,
    REASON_AUTH_FAIL = 2,
    REASON_SUBSCRIBER_NOT_EXIST = 3,
    REASON_IN_BLACKLIST = 4,
    REASON_CHANNEL_NOT_EXIST = 5,
    REASON_USER_NOT_ON_NODE = 6,
    REASON_SENDER_OFFLINE = 7,
    REASON_MSGKEY_ERROR = 8,
    REASON_PAYLOAD_DECODE_ERROR = 9,
    REASON_FORWARD_SEND_PACKET_ERROR = 10,
    REASON_NOT_ALLOW_SEND = 11,
    REASON_CONNECT_KICK = 12,
    REASON_NOT_IN_WHITELIST = 13,
    REASON_QUERY_TOKEN_ERROR = 14,
    REASON_SYSTEM_ERROR = 15,
    REASON_CHANNEL_ID_ERROR = 16,
    REASON_NODE_MATCH_ERROR = 17,
    REASON_NODE_NOT_MATCH = 18,
    REASON_BAN = 19,
    REASON_NOT_SUPPORT_HEADER = 20,
    REASON_CLIENT_KEY_IS_EMPTY = 21,
    REASON_RATE_LIMIT = 22,
    REASON_NOT_SUPPORT_CHANNEL_TYPE = 23,
    REASON_DISBAND = 24,
    REASON_SEND_BAN = 25,
};

/* A framed packet found in a byte stream. */
typedef struct proto_frame {
    uint8_t type;        /* high nibble of byte 0 */
    uint8_t flags;       /* low nibble of byte 0 */
    const uint8_t *body; /* points into the input */
    uint32_t body_len;
    uint32_t total_len;  /* header + varint + body (1 for PING/PONG) */
} proto_frame;

/* Find the next packet at buf[0..len).
 * Returns MP_OK (frame filled), MP_EAGAIN (incomplete: need more bytes),
 * MP_ETOOBIG (remaining length > max_remaining; checked as soon as the varint is read),
 * MP_EPROTO (unknown type 0 or 13..15, or a 4-byte varint with continuation bit). */
int proto_frame_parse(const uint8_t *buf, size_t len, uint32_t max_remaining, proto_frame *out);

/* Varint (remaining length). encode returns bytes written into out[4] (0 for value 0 is
 * NOT used: we write 0x00 for 0), or MP_EINVAL for value > 268435455.
 * decode: MP_OK / MP_EAGAIN / MP_EPROTO, *used = bytes read. */
int proto_varint_encode(uint32_t value, uint8_t out[4]);
int proto_varint_decode(const uint8_t *buf, size_t len, uint32_t *value, size_t *used);

typedef struct proto_connect {
    uint8_t version;
    uint8_t device_flag;
    mp_str device_id;
    mp_str uid;
    mp_str token;
    int64_t client_timestamp;
    mp_str client_key;
} proto_connect;

typedef struct proto_connack {
    uint8_t has_server_version; /* header bit 0 */
    uint8_t server_version;
    int64_t time_diff;
    uint8_t reason;
    mp_str server_key;
    mp_str salt;
    uint64_t node_id; /* encoded at version >= 4 */
} proto_connack;

typedef struct proto_send {
    uint8_t flags;   /* header flags */
    uint8_t setting;
    uint32_t client_seq;
    mp_str client_msg_no;
    mp_str stream_no;  /* only 2<=v<=4 with STREAM bit */
    mp_str channel_id;
    uint8_t channel_type;
    uint32_t expire;   /* v3+ */
    mp_str msg_key;
    mp_str topic;      /* only with TOPIC bit */
    mp_str payload;    /* rest of body */
} proto_send;

typedef struct proto_sendack {
    uint8_t flags;
    int64_t message_id;
    uint32_t client_seq;
    uint32_t message_seq;
    uint8_t reason;
} proto_sendack;

typedef struct proto_recv {
    uint8_t flags;
    uint8_t setting;
    mp_str msg_key;
    mp_str from_uid;
    mp_str channel_id;
    uint8_t channel_type;
    uint32_t expire;      /* v3+ */
    mp_str client_msg_no;
    uint8_t stream_flag;  /* only 2<=v<=4 with STREAM bit (0x02) */
    mp_str stream_no;
    uint64_t stream_id;
    int64_t message_id;
    uint32_t message_seq;
    int32_t timestamp;
    mp_str topic;         /* only with TOPIC bit */
    mp_str payload;
} proto_recv;

typedef struct proto_recvack {
    uint8_t flags;
    int64_t message_id;
    uint32_t message_seq;
} proto_recvack;

typedef struct proto_disconnect {
    uint8_t reason;
    mp_str reason_text;
} proto_disconnect;

typedef struct proto_sub {
    uint8_t setting;
    mp_str sub_no;
    mp_str channel_id;
    uint8_t channel_type;
    uint8_t action;
    mp_str param;
} proto_sub;

typedef struct proto_suback {
    mp_str sub_no;
    mp_str channel_id;
    uint8_t channel_type;
    uint8_t action;
    uint8_t reason;
} proto_suback;

typedef struct proto_event {
    mp_str id;
    mp_str type;
    int64_t timestamp;
    mp_str data;
} proto_event;

/* Decoders: body/len is the packet body (frame.body/body_len), flags the header nibble,
 * version the negotiated protocol version. Return MP_OK or MP_EPROTO (truncated field,
 * string length > 32767). Trailing bytes are ignored except where a field is `rest`. */
int proto_decode_connect(const uint8_t *body, size_t len, uint8_t flags, proto_connect *out);
int proto_decode_connack(const uint8_t *body, size_t len, uint8_t flags, int version, proto_connack *out);
int proto_decode_send(const uint8_t *body, size_t len, uint8_t flags, int version, proto_send *out);
int proto_decode_sendack(const uint8_t *body, size_t len, uint8_t flags, int version, proto_sendack *out);
int proto_decode_recv(const uint8_t *body, size_t len, uint8_t flags, int version, proto_recv *out);
int proto_decode_recvack(const uint8_t *body, size_t len, uint8_t flags, int version, proto_recvack *out);
int proto_decode_disconnect(const uint8_t *body, size_t len, uint8_t flags, proto_disconnect *out);
int proto_decode_sub(const uint8_t *body, size_t len, uint8_t flags, proto_sub *out);
int proto_decode_suback(const uint8_t *body, size_t len, uint8_t flags, proto_suback *out);
int proto_decode_event(const uint8_t *body, size_t len, uint8_t flags, proto_event *out);

/* Encoders: append one whole packet to out. Return MP_OK, or MP_EINVAL if a string is
 * longer than 32767 bytes or the body exceeds 268435455 bytes (nothing is appended then).
 * The packet's strings must not point into `out` itself (it may be reallocated).
 * Version 0 encodes/decodes like 1; versions above 5 like 5. CONNACK's header byte is
 * 0x20 | has_server_version (serverVersion byte written only then); nodeId at v>=4.
 * PING/PONG are the single bytes 0x70 / 0x80. */
int proto_encode_connect(const proto_connect *p, mp_buf *out);
int proto_encode_connack(const proto_connack *p, int version, mp_buf *out);
int proto_encode_send(const proto_send *p, int version, mp_buf *out);
int proto_encode_sendack(const proto_sendack *p, int version, mp_buf *out);
int proto_encode_recv(const proto_recv *p, int version, mp_buf *out);
int proto_encode_recvack(const proto_recvack *p, int version, mp_buf *out);
int proto_encode_disconnect(const proto_disconnect *p, mp_buf *out);
int proto_encode_sub(const proto_sub *p, mp_buf *out);
int proto_encode_suback(const proto_suback *p, mp_buf *out);
int proto_encode_event(const proto_event *p, mp_buf *out);
void proto_encode_ping(mp_buf *out);
void proto_encode_pong(mp_buf *out);

#endif
