/* test_proto_packet.c - WKProto framing and codec against the spec's §13 vectors.
 * Every vector is checked both ways (decode the bytes, encode the fields) byte-exact,
 * plus framing limits and malformed input. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <cmocka.h>

#include "common/buf.h"
#include "proto/packet.h"

/* ---- vectors (spec §13, verbatim) ----------------------------------------------- */

#define V1_CONNECT \
    "104602010003643157000275310003746b310000018bcfe56800002c686c4637774d4f66364861335a4779313430" \
    "3767506139787a4c7257644644426170634b324d7641506e343d"
#define V2_CONNACK \
    "2049fffffffffffffa2401002c42364e38764251676b38693356647762454f687374435933537446717146507443" \
    "392f41737268744848773d001061314232633344346535463667374838"
#define V2B_CONNACK \
    "215205fffffffffffffa2401002c42364e38764251676b38693356647762454f6873744359335374467171465074" \
    "43392f41737268744848773d0010613142326333443465354636673748380000000000000001"
#define V2C_CONNACK "200d00000000000000000200000000"
#define V3_SEND \
    "325e00000000010004636d6e31000275320100203065666536373736613438366333323964666335353530316264" \
    "6266373732382b4145356334576d473847756c5439656d6c4e6956556e726c54784d376f634c54576f462b537a74" \
    "4b2f513d"
#define V4_SENDACK "42110000011f71fb04cb000000010000000701"
#define V5_RECV \
    "526e0000206638373461373763366432316230323062383831623931613662313137623239000275310002753101" \
    "0004636d6e310000011f71fb04cb000000076553f1012b4145356334576d473847756c5439656d6c4e6956556e72" \
    "6c54784d376f634c54576f462b537a744b2f513d"
#define V6_RECVACK "620c0000011f71fb04cb00000007"
#define V8_SEND "321f10000000020002633200053334333431020000006400006473647364736431"
#define V9_RECV "552f1800000003313233000433343334020000000a0002633200000000000004c7008cf9966553f10000017468656c6c6f"
#define V10_DISCONNECT "90180c00156c6f67696e20696e206f7468657220646576696365"
#define V10_SUB "a00b0000000002673102000000"
#define V10_SUBACK "b009000000026731020001"
#define V10_EVENT "c01a000631323334353600047465737400000000499602d274657374"
#define V11_SEND_V4 "301902000000030002633300027331000267310200000000000078"
#define V11_SEND_V5_GOPROTO "3019020000000300026333000267310200000000000078"
#define V11_RECV_V4 \
    "50320200000002753100026731020000000000026333010002733100000000000000630000000000000063000000" \
    "016553f10078"
#define V12_SENDACK_HEAD "42170000011f71fb04cb0000000100000007010004636d6e31"
/* Not in the spec: our own (correct) v5 encoding of the V11 SEND, remaining length 21. */
#define V11_SEND_V5_OURS "3015020000000300026333000267310200000000000078"

#define PAYLOAD_B64 "+AE5c4WmG8GulT9emlNiVUnrlTxM7ocLTWoF+SztK/Q="
#define SERVER_KEY_B64 "B6N8vBQgk8i3VdwbEOhstCY3StFqqFPtC9/AsrhtHHw="

/* ---- helpers -------------------------------------------------------------------- */

typedef struct bytes {
    uint8_t *p;
    size_t n;
} bytes;

static bytes unhex(const char *h) {
    size_t n = strlen(h) / 2;
    bytes b = {mp_malloc(n ? n : 1), n};
    for (size_t i = 0; i < n; i++) {
        unsigned v;
        assert_int_equal(sscanf(h + 2 * i, "%2x", &v), 1);
        b.p[i] = (uint8_t)v;
    }
    return b;
}

/* Parses the whole vector as exactly one frame and checks type and length. */
static proto_frame frame_of(bytes b, uint8_t type) {
    proto_frame f;
    assert_int_equal(proto_frame_parse(b.p, b.n, PROTO_MAX_REMAINING, &f), MP_OK);
    assert_int_equal(f.type, type);
    assert_int_equal(f.total_len, b.n);
    return f;
}

static void assert_str(mp_str s, const char *want) {
    assert_int_equal(s.len, strlen(want));
    if (s.len) assert_memory_equal(s.p, want, s.len);
}

/* An mp_str must point into the packet, not at a copy. */
static void assert_in(mp_str s, bytes b) {
    assert_true((const uint8_t *)s.p >= b.p && (const uint8_t *)s.p + s.len <= b.p + b.n);
}

static void assert_buf_hex(const mp_buf *out, const char *hex) {
    bytes want = unhex(hex);
    assert_int_equal(out->len, want.n);
    assert_memory_equal(out->data, want.p, want.n);
    free(want.p);
}

/* ---- varint and framing --------------------------------------------------------- */

static void test_varint_table(void **state) {
    (void)state;
    static const struct {
        uint32_t v;
        const char *hex;
    } t[] = {
        {0, "00"}, /* our encoder writes 0x00 where the reference writes nothing */
        {12, "0c"},           {127, "7f"},           {128, "8001"},        {213, "d501"},
        {321, "c102"},        {16383, "ff7f"},       {16384, "808001"},    {1048576, "808040"},
        {2097151, "ffff7f"},  {2097152, "80808001"}, {268435455, "ffffff7f"},
    };
    for (size_t i = 0; i < MP_ARRAY_LEN(t); i++) {
        bytes want = unhex(t[i].hex);
        uint8_t enc[4];
        assert_int_equal(proto_varint_encode(t[i].v, enc), (int)want.n);
        assert_memory_equal(enc, want.p, want.n);
        uint32_t v = 0xdeadbeef;
        size_t used = 0;
        assert_int_equal(proto_varint_decode(want.p, want.n, &v, &used), MP_OK);
        assert_int_equal(v, t[i].v);
        assert_int_equal(used, want.n);
        for (size_t cut = 0; cut < want.n; cut++)
            assert_int_equal(proto_varint_decode(want.p, cut, &v, &used), MP_EAGAIN);
        free(want.p);
    }
    uint8_t enc[4];
    assert_int_equal(proto_varint_encode(268435456u, enc), MP_EINVAL);
    assert_int_equal(proto_varint_encode(UINT32_MAX, enc), MP_EINVAL);
}

static void test_varint_four_byte_continuation(void **state) {
    (void)state;
    const uint8_t a[] = {0xff, 0xff, 0xff, 0x80, 0x01};
    const uint8_t b[] = {0x80, 0x80, 0x80, 0x80};
    uint32_t v;
    size_t used;
    assert_int_equal(proto_varint_decode(a, sizeof(a), &v, &used), MP_EPROTO);
    assert_int_equal(proto_varint_decode(b, sizeof(b), &v, &used), MP_EPROTO);
    /* Through the framer as well, with plenty of bytes after it. */
    const uint8_t f[] = {0x30, 0xff, 0xff, 0xff, 0xff, 0x01, 0, 0, 0, 0};
    proto_frame fr;
    assert_int_equal(proto_frame_parse(f, sizeof(f), UINT32_MAX, &fr), MP_EPROTO);
}

static void test_frame_ping_pong_one_byte(void **state) {
    (void)state;
    for (unsigned lo = 0; lo < 16; lo++) {
        uint8_t in[3] = {(uint8_t)(0x70 | lo), 0xff, 0xff}; /* following bytes are not a length */
        proto_frame f;
        assert_int_equal(proto_frame_parse(in, sizeof(in), PROTO_MAX_REMAINING, &f), MP_OK);
        assert_int_equal(f.type, PROTO_PING);
        assert_int_equal(f.flags, lo);
        assert_int_equal(f.total_len, 1);
        assert_int_equal(f.body_len, 0);
        in[0] = (uint8_t)(0x80 | lo);
        assert_int_equal(proto_frame_parse(in, 1, PROTO_MAX_REMAINING, &f), MP_OK);
        assert_int_equal(f.type, PROTO_PONG);
        assert_int_equal(f.total_len, 1);
    }
    /* V7 */
    mp_buf out = MP_BUF_INIT;
    proto_encode_ping(&out);
    proto_encode_pong(&out);
    assert_buf_hex(&out, "7080");
    mp_buf_free(&out);
}

static void test_frame_unknown_types(void **state) {
    (void)state;
    const uint8_t types[] = {0, 13, 14, 15};
    for (size_t i = 0; i < sizeof(types); i++) {
        uint8_t in[4] = {(uint8_t)(types[i] << 4), 0x02, 0x00, 0x00};
        proto_frame f;
        assert_int_equal(proto_frame_parse(in, sizeof(in), PROTO_MAX_REMAINING, &f), MP_EPROTO);
        assert_int_equal(proto_frame_parse(in, 1, PROTO_MAX_REMAINING, &f), MP_EPROTO); /* byte 0 suffices */
        in[0] |= 0x0f;
        assert_int_equal(proto_frame_parse(in, sizeof(in), PROTO_MAX_REMAINING, &f), MP_EPROTO);
    }
    for (uint8_t t = 1; t <= 12; t++) {
        uint8_t in[1] = {(uint8_t)(t << 4)};
        proto_frame f;
        int want = (t == PROTO_PING || t == PROTO_PONG) ? MP_OK : MP_EAGAIN;
        assert_int_equal(proto_frame_parse(in, 1, PROTO_MAX_REMAINING, &f), want);
    }
}

static void test_frame_oversize_from_header(void **state) {
    (void)state;
    proto_frame f;
    /* 1048577 = 81 80 40: rejected with only the 4 header bytes present. */
    const uint8_t over[] = {0x32, 0x81, 0x80, 0x40};
    assert_int_equal(proto_frame_parse(over, sizeof(over), PROTO_MAX_REMAINING, &f), MP_ETOOBIG);
    /* Exactly 1 MiB is allowed: just incomplete. */
    const uint8_t at[] = {0x32, 0x80, 0x80, 0x40};
    assert_int_equal(proto_frame_parse(at, sizeof(at), PROTO_MAX_REMAINING, &f), MP_EAGAIN);
    /* The largest varint. */
    const uint8_t huge[] = {0x32, 0xff, 0xff, 0xff, 0x7f};
    assert_int_equal(proto_frame_parse(huge, sizeof(huge), PROTO_MAX_REMAINING, &f), MP_ETOOBIG);
    /* The caller's limit is honoured, including a smaller one. */
    const uint8_t small[] = {0x90, 0x65}; /* 101 */
    assert_int_equal(proto_frame_parse(small, sizeof(small), 100, &f), MP_ETOOBIG);
    assert_int_equal(proto_frame_parse(small, sizeof(small), 101, &f), MP_EAGAIN);
    /* A one-byte check decides before any body is buffered. */
    const uint8_t v[] = {0x62, 0x0d};
    assert_int_equal(proto_frame_parse(v, sizeof(v), 12, &f), MP_ETOOBIG);
}

static void test_frame_incomplete_and_coalesced(void **state) {
    (void)state;
    bytes a = unhex(V4_SENDACK "70" V6_RECVACK);
    proto_frame f;
    assert_int_equal(proto_frame_parse(a.p, 0, PROTO_MAX_REMAINING, &f), MP_EAGAIN);
    for (size_t cut = 1; cut < 19; cut++)
        assert_int_equal(proto_frame_parse(a.p, cut, PROTO_MAX_REMAINING, &f), MP_EAGAIN);
    size_t off = 0;
    const uint8_t types[] = {PROTO_SENDACK, PROTO_PING, PROTO_RECVACK};
    const uint32_t lens[] = {19, 1, 14};
    for (size_t i = 0; i < 3; i++) {
        assert_int_equal(proto_frame_parse(a.p + off, a.n - off, PROTO_MAX_REMAINING, &f), MP_OK);
        assert_int_equal(f.type, types[i]);
        assert_int_equal(f.total_len, lens[i]);
        assert_ptr_equal(f.body, a.p + off + (lens[i] == 1 ? 1 : 2));
        off += f.total_len;
    }
    assert_int_equal(off, a.n);
    assert_int_equal(proto_frame_parse(a.p + off, 0, PROTO_MAX_REMAINING, &f), MP_EAGAIN);
    free(a.p);
}

/* ---- V1 CONNECT ----------------------------------------------------------------- */

static void test_v1_connect(void **state) {
    (void)state;
    bytes b = unhex(V1_CONNECT);
    proto_frame f = frame_of(b, PROTO_CONNECT);
    assert_int_equal(f.flags, 0);
    assert_int_equal(f.body_len, 70);
    proto_connect c;
    assert_int_equal(proto_decode_connect(f.body, f.body_len, f.flags, &c), MP_OK);
    assert_int_equal(c.version, 2);
    assert_int_equal(c.device_flag, 1);
    assert_str(c.device_id, "d1W");
    assert_str(c.uid, "u1");
    assert_str(c.token, "tk1");
    assert_int_equal(c.client_timestamp, 1700000000000LL);
    assert_str(c.client_key, "hlF7wMOf6Ha3ZGy1407gPa9xzLrWdFDBapcK2MvAPn4=");
    assert_in(c.client_key, b);
    assert_in(c.uid, b);

    proto_connect e = {2, 1, MP_STR("d1W"), MP_STR("u1"), MP_STR("tk1"), 1700000000000LL,
                       MP_STR("hlF7wMOf6Ha3ZGy1407gPa9xzLrWdFDBapcK2MvAPn4=")};
    mp_buf out = MP_BUF_INIT;
    assert_int_equal(proto_encode_connect(&e, &out), MP_OK);
    assert_buf_hex(&out, V1_CONNECT);
    mp_buf_free(&out);
    free(b.p);
}

/* ---- V2 CONNACK ----------------------------------------------------------------- */

static void test_v2_connack_v2(void **state) {
    (void)state;
    bytes b = unhex(V2_CONNACK);
    proto_frame f = frame_of(b, PROTO_CONNACK);
    proto_connack a;
    assert_int_equal(proto_decode_connack(f.body, f.body_len, f.flags, 2, &a), MP_OK);
    assert_int_equal(a.has_server_version, 0);
    assert_int_equal(a.time_diff, -1500);
    assert_int_equal(a.reason, REASON_SUCCESS);
    assert_str(a.server_key, SERVER_KEY_B64);
    assert_str(a.salt, "a1B2c3D4e5F6g7H8");
    assert_int_equal(a.node_id, 0);

    proto_connack e = {0, 0, -1500, REASON_SUCCESS, MP_STR(SERVER_KEY_B64), MP_STR("a1B2c3D4e5F6g7H8"), 1001};
    mp_buf out = MP_BUF_INIT;
    assert_int_equal(proto_encode_connack(&e, 2, &out), MP_OK); /* nodeId not written below v4 */
    assert_buf_hex(&out, V2_CONNACK);
    mp_buf_free(&out);
    free(b.p);
}

static void test_v2b_connack_v5(void **state) {
    (void)state;
    bytes b = unhex(V2B_CONNACK);
    proto_frame f = frame_of(b, PROTO_CONNACK);
    assert_int_equal(f.flags, PROTO_FLAG_HAS_SERVER_VERSION);
    proto_connack a;
    assert_int_equal(proto_decode_connack(f.body, f.body_len, f.flags, 5, &a), MP_OK);
    assert_int_equal(a.has_server_version, 1);
    assert_int_equal(a.server_version, 5);
    assert_int_equal(a.time_diff, -1500);
    assert_int_equal(a.reason, REASON_SUCCESS);
    assert_str(a.server_key, SERVER_KEY_B64);
    assert_str(a.salt, "a1B2c3D4e5F6g7H8");
    assert_int_equal(a.node_id, 1);

    proto_connack e = {1, 5, -1500, REASON_SUCCESS, MP_STR(SERVER_KEY_B64), MP_STR("a1B2c3D4e5F6g7H8"), 1};
    mp_buf out = MP_BUF_INIT;
    assert_int_equal(proto_encode_connack(&e, 5, &out), MP_OK);
    assert_buf_hex(&out, V2B_CONNACK);
    /* has_server_version is the only flag: any non-zero value still yields 0x21. */
    e.has_server_version = 0xff;
    mp_buf_reset(&out);
    assert_int_equal(proto_encode_connack(&e, 5, &out), MP_OK);
    assert_buf_hex(&out, V2B_CONNACK);
    mp_buf_free(&out);
    free(b.p);
}

static void test_v2c_connack_failure(void **state) {
    (void)state;
    bytes b = unhex(V2C_CONNACK);
    proto_frame f = frame_of(b, PROTO_CONNACK);
    proto_connack a;
    assert_int_equal(proto_decode_connack(f.body, f.body_len, f.flags, 2, &a), MP_OK);
    assert_int_equal(a.time_diff, 0);
    assert_int_equal(a.reason, REASON_AUTH_FAIL);
    assert_int_equal(a.server_key.len, 0);
    assert_int_equal(a.salt.len, 0);
    /* At v4+ the nodeId is required. */
    assert_int_equal(proto_decode_connack(f.body, f.body_len, f.flags, 4, &a), MP_EPROTO);

    proto_connack e = {0};
    e.reason = REASON_AUTH_FAIL;
    mp_buf out = MP_BUF_INIT;
    assert_int_equal(proto_encode_connack(&e, 2, &out), MP_OK);
    assert_buf_hex(&out, V2C_CONNACK);
    mp_buf_reset(&out);
    assert_int_equal(proto_encode_connack(&e, 4, &out), MP_OK); /* "at v >= 4 append nodeId" */
    assert_buf_hex(&out, "201500000000000000000200000000" "0000000000000000");
    mp_buf_free(&out);
    free(b.p);
}

/* ---- V3 / V8 / V11 / V13 SEND --------------------------------------------------- */

static void test_v3_send_v2(void **state) {
    (void)state;
    bytes b = unhex(V3_SEND);
    proto_frame f = frame_of(b, PROTO_SEND);
    assert_int_equal(f.flags, PROTO_FLAG_REDDOT);
    proto_send s;
    assert_int_equal(proto_decode_send(f.body, f.body_len, f.flags, 2, &s), MP_OK);
    assert_int_equal(s.flags, PROTO_FLAG_REDDOT);
    assert_int_equal(s.setting, 0);
    assert_int_equal(s.client_seq, 1);
    assert_str(s.client_msg_no, "cmn1");
    assert_int_equal(s.stream_no.len, 0);
    assert_str(s.channel_id, "u2");
    assert_int_equal(s.channel_type, 1);
    assert_int_equal(s.expire, 0);
    assert_str(s.msg_key, "0efe6776a486c329dfc55501bdbf7728");
    assert_int_equal(s.topic.len, 0);
    assert_str(s.payload, PAYLOAD_B64);
    assert_in(s.payload, b);
    assert_ptr_equal(s.payload.p + s.payload.len, b.p + b.n);

    /* The layout is version dependent: read as v3 the msgKey bytes become expire. */
    assert_int_equal(proto_decode_send(f.body, f.body_len, f.flags, 3, &s), MP_EPROTO);

    proto_send e = {0};
    e.flags = PROTO_FLAG_REDDOT;
    e.client_seq = 1;
    e.client_msg_no = MP_STR("cmn1");
    e.channel_id = MP_STR("u2");
    e.channel_type = 1;
    e.expire = 12345; /* not written below v3 */
    e.msg_key = MP_STR("0efe6776a486c329dfc55501bdbf7728");
    e.stream_no = MP_STR("ignored"); /* not written without the stream bit */
    e.topic = MP_STR("ignored");     /* not written without the topic bit */
    e.payload = MP_STR(PAYLOAD_B64);
    mp_buf out = MP_BUF_INIT;
    assert_int_equal(proto_encode_send(&e, 2, &out), MP_OK);
    assert_buf_hex(&out, V3_SEND);
    mp_buf_free(&out);
    free(b.p);
}

static void test_v8_send_v5(void **state) {
    (void)state;
    bytes b = unhex(V8_SEND);
    proto_frame f = frame_of(b, PROTO_SEND);
    proto_send s;
    assert_int_equal(proto_decode_send(f.body, f.body_len, f.flags, 5, &s), MP_OK);
    assert_int_equal(s.flags, PROTO_FLAG_REDDOT);
    assert_int_equal(s.setting, PROTO_SETTING_NOENCRYPT);
    assert_int_equal(s.client_seq, 2);
    assert_str(s.client_msg_no, "c2");
    assert_str(s.channel_id, "34341");
    assert_int_equal(s.channel_type, 2);
    assert_int_equal(s.expire, 100);
    assert_int_equal(s.msg_key.len, 0);
    assert_str(s.payload, "dsdsdsd1");

    proto_send e = {0};
    e.flags = PROTO_FLAG_REDDOT;
    e.setting = PROTO_SETTING_NOENCRYPT;
    e.client_seq = 2;
    e.client_msg_no = MP_STR("c2");
    e.channel_id = MP_STR("34341");
    e.channel_type = 2;
    e.expire = 100;
    e.payload = MP_STR("dsdsdsd1");
    mp_buf out = MP_BUF_INIT;
    assert_int_equal(proto_encode_send(&e, 5, &out), MP_OK);
    assert_buf_hex(&out, V8_SEND);
    /* Same bytes at v3 and v4 (no stream bit set). */
    for (int v = 3; v <= 4; v++) {
        mp_buf_reset(&out);
        assert_int_equal(proto_encode_send(&e, v, &out), MP_OK);
        assert_buf_hex(&out, V8_SEND);
    }
    mp_buf_free(&out);
    free(b.p);
}

static proto_send v11_send(void) {
    proto_send e = {0};
    e.setting = PROTO_SETTING_STREAM;
    e.client_seq = 3;
    e.client_msg_no = MP_STR("c3");
    e.stream_no = MP_STR("s1");
    e.channel_id = MP_STR("g1");
    e.channel_type = 2;
    e.payload = MP_STR("x");
    return e;
}

static void test_v11_send_stream_v4(void **state) {
    (void)state;
    bytes b = unhex(V11_SEND_V4);
    proto_frame f = frame_of(b, PROTO_SEND);
    proto_send s;
    assert_int_equal(proto_decode_send(f.body, f.body_len, f.flags, 4, &s), MP_OK);
    assert_int_equal(s.setting, PROTO_SETTING_STREAM);
    assert_int_equal(s.client_seq, 3);
    assert_str(s.client_msg_no, "c3");
    assert_str(s.stream_no, "s1");
    assert_str(s.channel_id, "g1");
    assert_int_equal(s.channel_type, 2);
    assert_int_equal(s.expire, 0);
    assert_int_equal(s.msg_key.len, 0);
    assert_str(s.payload, "x");

    proto_send e = v11_send();
    mp_buf out = MP_BUF_INIT;
    assert_int_equal(proto_encode_send(&e, 4, &out), MP_OK);
    assert_buf_hex(&out, V11_SEND_V4);
    mp_buf_free(&out);
    free(b.p);
}

/* The spec's v5 bytes carry GoProto's length bug (header says 25, body is 21). Our
 * encoder writes the correct length (as HEAD does: 30 15 ...), and that round-trips. */
static void test_v11_send_stream_v5(void **state) {
    (void)state;
    proto_send e = v11_send();
    mp_buf out = MP_BUF_INIT;
    assert_int_equal(proto_encode_send(&e, 5, &out), MP_OK);
    assert_buf_hex(&out, V11_SEND_V5_OURS);
    /* Apart from the length byte our body equals GoProto's. */
    bytes go = unhex(V11_SEND_V5_GOPROTO);
    assert_int_equal(go.n, out.len);
    assert_memory_equal(go.p + 2, out.data + 2, go.n - 2);

    proto_frame f;
    assert_int_equal(proto_frame_parse(out.data, out.len, PROTO_MAX_REMAINING, &f), MP_OK);
    assert_int_equal(f.total_len, out.len);
    proto_send s;
    assert_int_equal(proto_decode_send(f.body, f.body_len, f.flags, 5, &s), MP_OK);
    assert_int_equal(s.setting, PROTO_SETTING_STREAM); /* bit kept, no fields */
    assert_int_equal(s.stream_no.len, 0);
    assert_str(s.client_msg_no, "c3");
    assert_str(s.channel_id, "g1");
    assert_int_equal(s.channel_type, 2);
    assert_str(s.payload, "x");

    /* GoProto's form is a frame whose body never fully arrives. */
    assert_int_equal(proto_frame_parse(go.p, go.n, PROTO_MAX_REMAINING, &f), MP_EAGAIN);
    free(go.p);
    mp_buf_free(&out);
}

static void test_send_stream_version_gating(void **state) {
    (void)state;
    proto_send e = v11_send();
    mp_buf out = MP_BUF_INIT;
    /* v1 (and v0, which behaves like 1): no streamNo, no expire. */
    const char *v1 = "30110200000003000263330002673102000078";
    for (int v = 0; v <= 1; v++) {
        mp_buf_reset(&out);
        assert_int_equal(proto_encode_send(&e, v, &out), MP_OK);
        assert_buf_hex(&out, v1);
    }
    /* v2: streamNo, no expire. */
    mp_buf_reset(&out);
    assert_int_equal(proto_encode_send(&e, 2, &out), MP_OK);
    assert_buf_hex(&out, "3015020000000300026333000273310002673102000078");
    proto_frame f;
    proto_send s;
    assert_int_equal(proto_frame_parse(out.data, out.len, PROTO_MAX_REMAINING, &f), MP_OK);
    assert_int_equal(proto_decode_send(f.body, f.body_len, f.flags, 2, &s), MP_OK);
    assert_str(s.stream_no, "s1");
    /* The old SDK stream bit 0x04 adds nothing in our layout. */
    e.setting = PROTO_SETTING_STREAM_OLD;
    mp_buf_reset(&out);
    assert_int_equal(proto_encode_send(&e, 2, &out), MP_OK);
    assert_buf_hex(&out, "30110400000003000263330002673102000078");
    mp_buf_free(&out);
}

static void test_v13_two_byte_length(void **state) {
    (void)state;
    uint8_t payload[200];
    for (int i = 0; i < 200; i++) payload[i] = (uint8_t)i;
    proto_send e = {0};
    e.client_seq = 1;
    e.channel_id = MP_STR("g");
    e.channel_type = 2;
    e.payload = (mp_str){(const char *)payload, 200};
    mp_buf out = MP_BUF_INIT;
    assert_int_equal(proto_encode_send(&e, 2, &out), MP_OK);
    assert_int_equal(out.len, 216);
    const uint8_t hdr[] = {0x30, 0xd5, 0x01, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00,
                           0x00, 0x01, 'g',  0x02, 0x00, 0x00};
    assert_memory_equal(out.data, hdr, sizeof(hdr));
    assert_memory_equal(out.data + 16, payload, 200);

    proto_frame f;
    assert_int_equal(proto_frame_parse(out.data, out.len, PROTO_MAX_REMAINING, &f), MP_OK);
    assert_int_equal(f.body_len, 213);
    assert_int_equal(f.total_len, 216);
    assert_ptr_equal(f.body, out.data + 3);
    proto_send s;
    assert_int_equal(proto_decode_send(f.body, f.body_len, f.flags, 2, &s), MP_OK);
    assert_int_equal(s.client_seq, 1);
    assert_int_equal(s.client_msg_no.len, 0);
    assert_str(s.channel_id, "g");
    assert_int_equal(s.msg_key.len, 0);
    assert_int_equal(s.payload.len, 200);
    assert_memory_equal(s.payload.p, payload, 200);
    mp_buf_free(&out);
}

/* ---- V4 SENDACK, V6 RECVACK ----------------------------------------------------- */

static void test_v4_sendack(void **state) {
    (void)state;
    bytes b = unhex(V4_SENDACK);
    proto_frame f = frame_of(b, PROTO_SENDACK);
    proto_sendack a;
    assert_int_equal(proto_decode_sendack(f.body, f.body_len, f.flags, 2, &a), MP_OK);
    assert_int_equal(a.flags, PROTO_FLAG_REDDOT);
    assert_int_equal(a.message_id, 1234567890123LL);
    assert_int_equal(a.client_seq, 1);
    assert_int_equal(a.message_seq, 7);
    assert_int_equal(a.reason, REASON_SUCCESS);

    proto_sendack e = {PROTO_FLAG_REDDOT, 1234567890123LL, 1, 7, REASON_SUCCESS};
    mp_buf out = MP_BUF_INIT;
    for (int v = 1; v <= 5; v++) {
        mp_buf_reset(&out);
        assert_int_equal(proto_encode_sendack(&e, v, &out), MP_OK);
        assert_buf_hex(&out, V4_SENDACK);
    }
    /* All four flags are echoed. */
    e.flags = 0x0f;
    mp_buf_reset(&out);
    assert_int_equal(proto_encode_sendack(&e, 2, &out), MP_OK);
    assert_int_equal(out.data[0], 0x4f);
    mp_buf_free(&out);
    free(b.p);
}

static void test_sendack_trailing_client_msg_no(void **state) {
    (void)state;
    /* HEAD appends clientMsgNo; the v1.2.3 layout reads the same fields and ignores it. */
    bytes b = unhex(V12_SENDACK_HEAD);
    proto_frame f = frame_of(b, PROTO_SENDACK);
    proto_sendack a;
    assert_int_equal(proto_decode_sendack(f.body, f.body_len, f.flags, 5, &a), MP_OK);
    assert_int_equal(a.message_id, 1234567890123LL);
    assert_int_equal(a.client_seq, 1);
    assert_int_equal(a.message_seq, 7);
    assert_int_equal(a.reason, REASON_SUCCESS);
    free(b.p);
}

static void test_v6_recvack(void **state) {
    (void)state;
    bytes b = unhex(V6_RECVACK);
    proto_frame f = frame_of(b, PROTO_RECVACK);
    proto_recvack a;
    assert_int_equal(proto_decode_recvack(f.body, f.body_len, f.flags, 2, &a), MP_OK);
    assert_int_equal(a.flags, PROTO_FLAG_REDDOT);
    assert_int_equal(a.message_id, 1234567890123LL);
    assert_int_equal(a.message_seq, 7);

    proto_recvack e = {PROTO_FLAG_REDDOT, 1234567890123LL, 7};
    mp_buf out = MP_BUF_INIT;
    assert_int_equal(proto_encode_recvack(&e, 2, &out), MP_OK);
    assert_buf_hex(&out, V6_RECVACK);
    mp_buf_free(&out);
    free(b.p);
}

/* ---- V5 / V9 / V11 RECV --------------------------------------------------------- */

static void test_v5_recv_v2(void **state) {
    (void)state;
    bytes b = unhex(V5_RECV);
    proto_frame f = frame_of(b, PROTO_RECV);
    proto_recv r;
    assert_int_equal(proto_decode_recv(f.body, f.body_len, f.flags, 2, &r), MP_OK);
    assert_int_equal(r.flags, PROTO_FLAG_REDDOT);
    assert_int_equal(r.setting, 0);
    assert_str(r.msg_key, "f874a77c6d21b020b881b91a6b117b29");
    assert_str(r.from_uid, "u1");
    assert_str(r.channel_id, "u1");
    assert_int_equal(r.channel_type, 1);
    assert_int_equal(r.expire, 0);
    assert_str(r.client_msg_no, "cmn1");
    assert_int_equal(r.message_id, 1234567890123LL);
    assert_int_equal(r.message_seq, 7);
    assert_int_equal(r.timestamp, 1700000001);
    assert_int_equal(r.topic.len, 0);
    assert_str(r.payload, PAYLOAD_B64);
    assert_in(r.payload, b);

    proto_recv e = {0};
    e.flags = PROTO_FLAG_REDDOT;
    e.msg_key = MP_STR("f874a77c6d21b020b881b91a6b117b29");
    e.from_uid = MP_STR("u1");
    e.channel_id = MP_STR("u1");
    e.channel_type = 1;
    e.expire = 99; /* not written below v3 */
    e.client_msg_no = MP_STR("cmn1");
    e.message_id = 1234567890123LL;
    e.message_seq = 7;
    e.timestamp = 1700000001;
    e.payload = MP_STR(PAYLOAD_B64);
    mp_buf out = MP_BUF_INIT;
    assert_int_equal(proto_encode_recv(&e, 2, &out), MP_OK);
    assert_buf_hex(&out, V5_RECV);
    mp_buf_free(&out);
    free(b.p);
}

static void test_v9_recv_v5_topic(void **state) {
    (void)state;
    bytes b = unhex(V9_RECV);
    proto_frame f = frame_of(b, PROTO_RECV);
    assert_int_equal(f.flags, PROTO_FLAG_SYNCONCE | PROTO_FLAG_NOPERSIST);
    proto_recv r;
    assert_int_equal(proto_decode_recv(f.body, f.body_len, f.flags, 5, &r), MP_OK);
    assert_int_equal(r.setting, PROTO_SETTING_NOENCRYPT | PROTO_SETTING_TOPIC);
    assert_int_equal(r.msg_key.len, 0);
    assert_str(r.from_uid, "123");
    assert_str(r.channel_id, "3434");
    assert_int_equal(r.channel_type, 2);
    assert_int_equal(r.expire, 10);
    assert_str(r.client_msg_no, "c2");
    assert_int_equal(r.message_id, 1223);
    assert_int_equal(r.message_seq, 9238934);
    assert_int_equal(r.timestamp, 1700000000);
    assert_str(r.topic, "t");
    assert_str(r.payload, "hello");

    proto_recv e = {0};
    e.flags = PROTO_FLAG_SYNCONCE | PROTO_FLAG_NOPERSIST;
    e.setting = PROTO_SETTING_NOENCRYPT | PROTO_SETTING_TOPIC;
    e.from_uid = MP_STR("123");
    e.channel_id = MP_STR("3434");
    e.channel_type = 2;
    e.expire = 10;
    e.client_msg_no = MP_STR("c2");
    e.message_id = 1223;
    e.message_seq = 9238934;
    e.timestamp = 1700000000;
    e.topic = MP_STR("t");
    e.payload = MP_STR("hello");
    mp_buf out = MP_BUF_INIT;
    assert_int_equal(proto_encode_recv(&e, 5, &out), MP_OK);
    assert_buf_hex(&out, V9_RECV);
    /* RECV header is 0x50 | flags. */
    e.flags = PROTO_FLAG_REDDOT;
    mp_buf_reset(&out);
    assert_int_equal(proto_encode_recv(&e, 5, &out), MP_OK);
    assert_int_equal(out.data[0], 0x52);
    mp_buf_free(&out);
    free(b.p);
}

static void test_v11_recv_stream_v4(void **state) {
    (void)state;
    bytes b = unhex(V11_RECV_V4);
    proto_frame f = frame_of(b, PROTO_RECV);
    proto_recv r;
    assert_int_equal(proto_decode_recv(f.body, f.body_len, f.flags, 4, &r), MP_OK);
    assert_int_equal(r.setting, PROTO_SETTING_STREAM);
    assert_int_equal(r.msg_key.len, 0);
    assert_str(r.from_uid, "u1");
    assert_str(r.channel_id, "g1");
    assert_int_equal(r.channel_type, 2);
    assert_int_equal(r.expire, 0);
    assert_str(r.client_msg_no, "c3");
    assert_int_equal(r.stream_flag, 1);
    assert_str(r.stream_no, "s1");
    assert_int_equal(r.stream_id, 99);
    assert_int_equal(r.message_id, 99);
    assert_int_equal(r.message_seq, 1);
    assert_int_equal(r.timestamp, 1700000000);
    assert_str(r.payload, "x");

    proto_recv e = {0};
    e.setting = PROTO_SETTING_STREAM;
    e.from_uid = MP_STR("u1");
    e.channel_id = MP_STR("g1");
    e.channel_type = 2;
    e.client_msg_no = MP_STR("c3");
    e.stream_flag = 1;
    e.stream_no = MP_STR("s1");
    e.stream_id = 99;
    e.message_id = 99;
    e.message_seq = 1;
    e.timestamp = 1700000000;
    e.payload = MP_STR("x");
    mp_buf out = MP_BUF_INIT;
    assert_int_equal(proto_encode_recv(&e, 4, &out), MP_OK);
    assert_buf_hex(&out, V11_RECV_V4);
    /* At v5 the stream fields disappear (13 bytes shorter) and the result round-trips. */
    mp_buf_reset(&out);
    assert_int_equal(proto_encode_recv(&e, 5, &out), MP_OK);
    assert_int_equal(out.len, b.n - 13);
    assert_int_equal(proto_frame_parse(out.data, out.len, PROTO_MAX_REMAINING, &f), MP_OK);
    assert_int_equal(proto_decode_recv(f.body, f.body_len, f.flags, 5, &r), MP_OK);
    assert_int_equal(r.stream_no.len, 0);
    assert_int_equal(r.stream_id, 0);
    assert_int_equal(r.message_id, 99);
    assert_str(r.payload, "x");
    mp_buf_free(&out);
    free(b.p);
}

/* ---- V10 DISCONNECT / SUB / SUBACK / EVENT -------------------------------------- */

static void test_v10_disconnect(void **state) {
    (void)state;
    bytes b = unhex(V10_DISCONNECT);
    proto_frame f = frame_of(b, PROTO_DISCONNECT);
    proto_disconnect d;
    assert_int_equal(proto_decode_disconnect(f.body, f.body_len, f.flags, &d), MP_OK);
    assert_int_equal(d.reason, REASON_CONNECT_KICK);
    assert_str(d.reason_text, "login in other device");

    proto_disconnect e = {REASON_CONNECT_KICK, MP_STR("login in other device")};
    mp_buf out = MP_BUF_INIT;
    assert_int_equal(proto_encode_disconnect(&e, &out), MP_OK);
    assert_buf_hex(&out, V10_DISCONNECT);
    mp_buf_free(&out);
    free(b.p);
}

static void test_v10_sub(void **state) {
    (void)state;
    bytes b = unhex(V10_SUB);
    proto_frame f = frame_of(b, PROTO_SUB);
    proto_sub s;
    assert_int_equal(proto_decode_sub(f.body, f.body_len, f.flags, &s), MP_OK);
    assert_int_equal(s.setting, 0);
    assert_int_equal(s.sub_no.len, 0);
    assert_str(s.channel_id, "g1");
    assert_int_equal(s.channel_type, 2);
    assert_int_equal(s.action, 0);
    assert_int_equal(s.param.len, 0);

    proto_sub e = {0, MP_STR(""), MP_STR("g1"), 2, 0, MP_STR("")};
    mp_buf out = MP_BUF_INIT;
    assert_int_equal(proto_encode_sub(&e, &out), MP_OK);
    assert_buf_hex(&out, V10_SUB);
    mp_buf_free(&out);
    free(b.p);
}

static void test_v10_suback(void **state) {
    (void)state;
    bytes b = unhex(V10_SUBACK);
    proto_frame f = frame_of(b, PROTO_SUBACK);
    proto_suback s;
    assert_int_equal(proto_decode_suback(f.body, f.body_len, f.flags, &s), MP_OK);
    assert_int_equal(s.sub_no.len, 0);
    assert_str(s.channel_id, "g1");
    assert_int_equal(s.channel_type, 2);
    assert_int_equal(s.action, 0);
    assert_int_equal(s.reason, REASON_SUCCESS);

    proto_suback e = {{NULL, 0}, MP_STR("g1"), 2, 0, REASON_SUCCESS}; /* NULL empty string is fine */
    mp_buf out = MP_BUF_INIT;
    assert_int_equal(proto_encode_suback(&e, &out), MP_OK);
    assert_buf_hex(&out, V10_SUBACK);
    mp_buf_free(&out);
    free(b.p);
}

static void test_v10_event(void **state) {
    (void)state;
    bytes b = unhex(V10_EVENT);
    proto_frame f = frame_of(b, PROTO_EVENT);
    proto_event ev;
    assert_int_equal(proto_decode_event(f.body, f.body_len, f.flags, &ev), MP_OK);
    assert_str(ev.id, "123456");
    assert_str(ev.type, "test");
    assert_int_equal(ev.timestamp, 1234567890);
    assert_str(ev.data, "test");

    proto_event e = {MP_STR("123456"), MP_STR("test"), 1234567890, MP_STR("test")};
    mp_buf out = MP_BUF_INIT;
    assert_int_equal(proto_encode_event(&e, &out), MP_OK);
    assert_buf_hex(&out, V10_EVENT);
    mp_buf_free(&out);
    free(b.p);
}

/* ---- malformed input ------------------------------------------------------------ */

/* Decodes a body by frame type; the body is copied into an exact-size heap block so
 * that AddressSanitizer catches any read past len. */
static int decode_any(uint8_t type, uint8_t flags, int version, const uint8_t *body, size_t len) {
    uint8_t *copy = mp_malloc(len);
    if (len) memcpy(copy, body, len);
    int rc;
    union {
        proto_connect c;
        proto_connack ca;
        proto_send s;
        proto_sendack sa;
        proto_recv r;
        proto_recvack ra;
        proto_disconnect d;
        proto_sub sub;
        proto_suback suba;
        proto_event ev;
    } u;
    switch (type) {
    case PROTO_CONNECT: rc = proto_decode_connect(copy, len, flags, &u.c); break;
    case PROTO_CONNACK: rc = proto_decode_connack(copy, len, flags, version, &u.ca); break;
    case PROTO_SEND: rc = proto_decode_send(copy, len, flags, version, &u.s); break;
    case PROTO_SENDACK: rc = proto_decode_sendack(copy, len, flags, version, &u.sa); break;
    case PROTO_RECV: rc = proto_decode_recv(copy, len, flags, version, &u.r); break;
    case PROTO_RECVACK: rc = proto_decode_recvack(copy, len, flags, version, &u.ra); break;
    case PROTO_DISCONNECT: rc = proto_decode_disconnect(copy, len, flags, &u.d); break;
    case PROTO_SUB: rc = proto_decode_sub(copy, len, flags, &u.sub); break;
    case PROTO_SUBACK: rc = proto_decode_suback(copy, len, flags, &u.suba); break;
    case PROTO_EVENT: rc = proto_decode_event(copy, len, flags, &u.ev); break;
    default: fail_msg("no decoder for type %u", type); rc = MP_EINVAL;
    }
    free(copy);
    return rc;
}

/* Every body prefix shorter than the fixed part must be MP_EPROTO; once only the
 * `rest` payload is cut, decoding succeeds. rest_off = -1: no rest field. */
static void test_truncated_bodies(void **state) {
    (void)state;
    static const struct {
        const char *hex;
        int version;
        int rest_off;
    } t[] = {
        {V1_CONNECT, 2, -1},       {V2_CONNACK, 2, -1},      {V2B_CONNACK, 5, -1},    {V2C_CONNACK, 2, -1},
        {V3_SEND, 2, 50},          {V4_SENDACK, 2, -1},      {V5_RECV, 2, 66},        {V6_RECVACK, 2, -1},
        {V8_SEND, 5, 23},          {V9_RECV, 5, 42},         {V10_DISCONNECT, 0, -1}, {V10_SUB, 0, -1},
        {V10_SUBACK, 0, -1},       {V10_EVENT, 0, 22},       {V11_SEND_V4, 4, 24},    {V11_RECV_V4, 4, 49},
        {V11_SEND_V5_OURS, 5, 20},
    };
    for (size_t i = 0; i < MP_ARRAY_LEN(t); i++) {
        bytes b = unhex(t[i].hex);
        proto_frame f;
        assert_int_equal(proto_frame_parse(b.p, b.n, PROTO_MAX_REMAINING, &f), MP_OK);
        size_t fixed = t[i].rest_off < 0 ? f.body_len : (size_t)t[i].rest_off;
        for (size_t cut = 0; cut <= f.body_len; cut++) {
            int want = cut < fixed ? MP_EPROTO : MP_OK;
            int got = decode_any(f.type, f.flags, t[i].version, f.body, cut);
            if (got != want) fail_msg("vector %zu cut %zu: got %d want %d", i, cut, got, want);
        }
        /* And the framer waits for every prefix of the packet. */
        for (size_t cut = 0; cut < b.n; cut++)
            assert_int_equal(proto_frame_parse(b.p, cut, PROTO_MAX_REMAINING, &f), MP_EAGAIN);
        free(b.p);
    }
}

static void test_string_length_limit_decode(void **state) {
    (void)state;
    /* DISCONNECT with a 0x8000-byte reason, all bytes present: still a protocol error. */
    size_t n = 1 + 2 + 0x8000;
    uint8_t *body = mp_calloc(1, n);
    body[0] = REASON_CONNECT_KICK;
    body[1] = 0x80;
    body[2] = 0x00;
    proto_disconnect d;
    assert_int_equal(proto_decode_disconnect(body, n, 0, &d), MP_EPROTO);
    body[1] = 0xff;
    body[2] = 0xff;
    assert_int_equal(proto_decode_disconnect(body, n, 0, &d), MP_EPROTO);
    /* 0x7fff is the largest valid length. */
    body[1] = 0x7f;
    body[2] = 0xff;
    assert_int_equal(proto_decode_disconnect(body, n, 0, &d), MP_OK);
    assert_int_equal(d.reason_text.len, 0x7fff);
    assert_ptr_equal(d.reason_text.p, (const char *)body + 3);
    free(body);

    /* Same inside a SEND's clientMsgNo. */
    n = 1 + 4 + 2 + 0x8000 + 64;
    body = mp_calloc(1, n);
    body[5] = 0x80;
    proto_send s;
    assert_int_equal(proto_decode_send(body, n, 0, 2, &s), MP_EPROTO);
    free(body);
}

static void test_string_length_limit_encode(void **state) {
    (void)state;
    char *big = mp_malloc(PROTO_MAX_STR + 1);
    memset(big, 'a', PROTO_MAX_STR + 1);
    mp_str too_long = {big, PROTO_MAX_STR + 1};
    mp_str max = {big, PROTO_MAX_STR};
    mp_buf out = MP_BUF_INIT;
    mp_buf_append(&out, "pre", 3); /* existing content must be left alone */

    proto_disconnect d = {REASON_CONNECT_KICK, too_long};
    assert_int_equal(proto_encode_disconnect(&d, &out), MP_EINVAL);
    assert_int_equal(out.len, 3);

    proto_send s = {0};
    s.channel_id = MP_STR("g1");
    s.setting = PROTO_SETTING_TOPIC;
    s.topic = too_long;
    assert_int_equal(proto_encode_send(&s, 5, &out), MP_EINVAL);
    s.setting = 0; /* topic not written without the bit: no longer an error */
    assert_int_equal(proto_encode_send(&s, 5, &out), MP_OK);
    out.len = 3;

    proto_connack a = {0};
    a.server_key = too_long;
    assert_int_equal(proto_encode_connack(&a, 2, &out), MP_EINVAL);
    proto_connect c = {0};
    c.uid = too_long;
    assert_int_equal(proto_encode_connect(&c, &out), MP_EINVAL);
    proto_recv r = {0};
    r.client_msg_no = too_long;
    assert_int_equal(proto_encode_recv(&r, 2, &out), MP_EINVAL);
    proto_sub sub = {0};
    sub.param = too_long;
    assert_int_equal(proto_encode_sub(&sub, &out), MP_EINVAL);
    proto_suback sa = {0};
    sa.channel_id = too_long;
    assert_int_equal(proto_encode_suback(&sa, &out), MP_EINVAL);
    proto_event ev = {0};
    ev.type = too_long;
    assert_int_equal(proto_encode_event(&ev, &out), MP_EINVAL);
    assert_int_equal(out.len, 3);

    /* 32767 is accepted and round-trips (3-byte varint). */
    d.reason_text = max;
    assert_int_equal(proto_encode_disconnect(&d, &out), MP_OK);
    proto_frame f;
    assert_int_equal(proto_frame_parse(out.data + 3, out.len - 3, PROTO_MAX_REMAINING, &f), MP_OK);
    assert_int_equal(f.body_len, 1 + 2 + PROTO_MAX_STR);
    assert_int_equal(proto_decode_disconnect(f.body, f.body_len, f.flags, &d), MP_OK);
    assert_int_equal(d.reason_text.len, PROTO_MAX_STR);
    assert_memory_equal(out.data, "pre", 3);
    mp_buf_free(&out);
    free(big);
}

static void test_version_zero_like_one(void **state) {
    (void)state;
    bytes b = unhex(V3_SEND);
    proto_frame f = frame_of(b, PROTO_SEND);
    proto_send s0, s1;
    assert_int_equal(proto_decode_send(f.body, f.body_len, f.flags, 0, &s0), MP_OK);
    assert_int_equal(proto_decode_send(f.body, f.body_len, f.flags, 1, &s1), MP_OK);
    assert_memory_equal(&s0, &s1, sizeof(s0));
    assert_str(s0.msg_key, "0efe6776a486c329dfc55501bdbf7728");
    free(b.p);

    /* CONNACK at v0: like v1, no nodeId. */
    proto_connack a = {0, 0, -1500, REASON_SUCCESS, MP_STR(SERVER_KEY_B64), MP_STR("a1B2c3D4e5F6g7H8"), 7};
    mp_buf out = MP_BUF_INIT;
    assert_int_equal(proto_encode_connack(&a, 0, &out), MP_OK);
    assert_buf_hex(&out, V2_CONNACK);
    mp_buf_free(&out);
}

/* Optional: checks that the vectors above are verbatim copies of the spec. */
static void test_vectors_match_spec(void **state) {
    (void)state;
    const char *dir = getenv("MAGPIE_SPEC_DIR");
    char path[4096];
    FILE *fp = NULL;
    if (dir) {
        snprintf(path, sizeof(path), "%s/wire-protocol.md", dir);
        fp = fopen(path, "rb");
    }
    if (!fp) fp = fopen("../shared/spec/wire-protocol.md", "rb");
    if (!fp) fp = fopen("../../shared/spec/wire-protocol.md", "rb");
    if (!fp) {
        skip();
        return;
    }
    mp_buf spec = MP_BUF_INIT;
    char chunk[4096];
    size_t n;
    while ((n = fread(chunk, 1, sizeof(chunk), fp)) > 0) mp_buf_append(&spec, chunk, n);
    fclose(fp);
    mp_buf_append_u8(&spec, 0);
    const char *v[] = {V1_CONNECT,  V2_CONNACK,  V2B_CONNACK, V2C_CONNACK,    V3_SEND,
                       V4_SENDACK,  V5_RECV,     V6_RECVACK,  V8_SEND,        V9_RECV,
                       V10_DISCONNECT, V10_SUB,  V10_SUBACK,  V10_EVENT,      V11_SEND_V4,
                       V11_SEND_V5_GOPROTO, V11_RECV_V4, V12_SENDACK_HEAD, PAYLOAD_B64, SERVER_KEY_B64};
    for (size_t i = 0; i < MP_ARRAY_LEN(v); i++)
        if (!strstr((const char *)spec.data, v[i])) fail_msg("vector %zu not found in the spec", i);
    mp_buf_free(&spec);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_varint_table),
        cmocka_unit_test(test_varint_four_byte_continuation),
        cmocka_unit_test(test_frame_ping_pong_one_byte),
        cmocka_unit_test(test_frame_unknown_types),
        cmocka_unit_test(test_frame_oversize_from_header),
        cmocka_unit_test(test_frame_incomplete_and_coalesced),
        cmocka_unit_test(test_v1_connect),
        cmocka_unit_test(test_v2_connack_v2),
        cmocka_unit_test(test_v2b_connack_v5),
        cmocka_unit_test(test_v2c_connack_failure),
        cmocka_unit_test(test_v3_send_v2),
        cmocka_unit_test(test_v8_send_v5),
        cmocka_unit_test(test_v11_send_stream_v4),
        cmocka_unit_test(test_v11_send_stream_v5),
        cmocka_unit_test(test_send_stream_version_gating),
        cmocka_unit_test(test_v13_two_byte_length),
        cmocka_unit_test(test_v4_sendack),
        cmocka_unit_test(test_sendack_trailing_client_msg_no),
        cmocka_unit_test(test_v6_recvack),
        cmocka_unit_test(test_v5_recv_v2),
        cmocka_unit_test(test_v9_recv_v5_topic),
        cmocka_unit_test(test_v11_recv_stream_v4),
        cmocka_unit_test(test_v10_disconnect),
        cmocka_unit_test(test_v10_sub),
        cmocka_unit_test(test_v10_suback),
        cmocka_unit_test(test_v10_event),
        cmocka_unit_test(test_truncated_bodies),
        cmocka_unit_test(test_string_length_limit_decode),
        cmocka_unit_test(test_string_length_limit_encode),
        cmocka_unit_test(test_version_zero_like_one),
        cmocka_unit_test(test_vectors_match_spec),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
