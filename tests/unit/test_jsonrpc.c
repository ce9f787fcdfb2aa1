/* test_jsonrpc.c - the JSON-RPC translation layer (src/session/jsonrpc.c) against the
 * wire spec §9: detection and object framing, requests turned into the binary packets
 * the session handles, and server packets turned into exactly the JSON of §9.2. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "proto/packet.h"
#include "session/jsonrpc.h"

static void assert_json(const mp_buf *b, const char *want) {
    assert_int_equal(b->len, strlen(want));
    assert_memory_equal(b->data, want, b->len);
}

static int request(jsonrpc_state *st, const char *json, mp_buf *pkt, mp_buf *reply) {
    return jsonrpc_request(st, json, strlen(json), 5, pkt, reply);
}

/* A state that has seen a connect (its CONNACK answer is not needed here). */
static jsonrpc_state *connected_state(void) {
    jsonrpc_state *st = jsonrpc_new();
    mp_buf pkt = MP_BUF_INIT, reply = MP_BUF_INIT;
    assert_int_equal(request(st, "{\"method\":\"connect\",\"id\":\"c\",\"params\":{\"uid\":\"u\"}}", &pkt, &reply), MP_OK);
    mp_buf_free(&pkt);
    mp_buf_free(&reply);
    return st;
}

static void test_detect_and_next(void **state) {
    (void)state;
    assert_int_equal(jsonrpc_detect((const uint8_t *)"  \n{", 4), 1);
    assert_int_equal(jsonrpc_detect((const uint8_t *)"\x10\x05", 2), 0);
    assert_int_equal(jsonrpc_detect((const uint8_t *)"  ", 2), MP_EAGAIN);

    const char *two = " {\"a\":\"}{\\\"\",\"b\":[1,{\"c\":2}]}{\"x\":1}";
    size_t start, len;
    assert_int_equal(jsonrpc_next((const uint8_t *)two, strlen(two), 1024, &start, &len), MP_OK);
    assert_int_equal(start, 1);
    assert_int_equal(len, strlen("{\"a\":\"}{\\\"\",\"b\":[1,{\"c\":2}]}"));
    const char *rest = two + start + len;
    assert_int_equal(jsonrpc_next((const uint8_t *)rest, strlen(rest), 1024, &start, &len), MP_OK);
    assert_int_equal(len, 7);
    assert_int_equal(jsonrpc_next((const uint8_t *)"{\"a\":", 5, 1024, &start, &len), MP_EAGAIN);
    assert_int_equal(jsonrpc_next((const uint8_t *)"[1]", 3, 1024, &start, &len), MP_EPROTO);
    assert_int_equal(jsonrpc_next((const uint8_t *)"{\"aaaaaaaa\":1}", 14, 8, &start, &len), MP_ETOOBIG);
    assert_int_equal(jsonrpc_next((const uint8_t *)"{\"aaaaaaaaaa", 12, 8, &start, &len), MP_ETOOBIG);
}

static void test_connect_roundtrip(void **state) {
    (void)state;
    jsonrpc_state *st = jsonrpc_new();
    mp_buf pkt = MP_BUF_INIT, reply = MP_BUF_INIT, out = MP_BUF_INIT;
    assert_int_equal(request(st, "{\"jsonrpc\":\"2.0\",\"method\":\"connect\",\"id\":\"req-conn-1\","
                                 "\"params\":{\"uid\":\"u1\",\"token\":\"t\",\"deviceFlag\":1,\"clientKey\":\"ignored\"}}",
                             &pkt, &reply),
                     MP_OK);
    assert_int_equal(reply.len, 0);
    proto_frame f;
    proto_connect c;
    assert_int_equal(proto_frame_parse(pkt.data, pkt.len, PROTO_MAX_REMAINING, &f), MP_OK);
    assert_int_equal(f.type, PROTO_CONNECT);
    assert_int_equal(proto_decode_connect(f.body, f.body_len, f.flags, &c), MP_OK);
    assert_int_equal(c.version, 5); /* missing version = latest */
    assert_true(mp_str_eq_c(c.uid, "u1"));
    assert_true(mp_str_eq_c(c.token, "t"));
    assert_int_equal(c.device_flag, 1);

    /* The CONNACK answers the connect request, with the spec §9.2 field set. */
    proto_connack a = {1, 5, -15, REASON_SUCCESS, {"", 0}, {"", 0}, 1};
    mp_buf ack = MP_BUF_INIT;
    assert_int_equal(proto_encode_connack(&a, 5, &ack), MP_OK);
    assert_int_equal(jsonrpc_from_packet(st, ack.data, ack.len, 5, &out), MP_OK);
    assert_json(&out, "{\"jsonrpc\":\"2.0\",\"id\":\"req-conn-1\",\"result\":{\"serverVersion\":5,\"timeDiff\":-15,"
                      "\"reasonCode\":1,\"nodeId\":1}}");
    /* Nothing waits any more: a second CONNACK has no JSON form. */
    out.len = 0;
    assert_int_equal(jsonrpc_from_packet(st, ack.data, ack.len, 5, &out), MP_ENOTFOUND);
    assert_int_equal(out.len, 0);
    mp_buf_free(&ack);
    mp_buf_free(&pkt);
    mp_buf_free(&reply);
    mp_buf_free(&out);
    jsonrpc_free(st);
}

static void test_first_must_be_connect(void **state) {
    (void)state;
    jsonrpc_state *st = jsonrpc_new();
    mp_buf pkt = MP_BUF_INIT, reply = MP_BUF_INIT;
    assert_int_equal(request(st, "{\"method\":\"ping\",\"id\":\"p\"}", &pkt, &reply), MP_EPROTO);
    assert_int_equal(request(st, "{\"method\":\"connect\",\"id\":7,\"params\":{}}", &pkt, &reply), MP_EPROTO);
    assert_int_equal(request(st, "not json", &pkt, &reply), MP_EPROTO);
    assert_int_equal(pkt.len, 0);
    /* a connect without an id cannot be answered: close */
    assert_int_equal(request(st, "{\"method\":\"connect\",\"params\":{\"uid\":\"u\"}}", &pkt, &reply), MP_EPROTO);
    /* after a connect, a second one closes too */
    assert_int_equal(request(st, "{\"method\":\"connect\",\"id\":\"a\",\"params\":{\"uid\":\"u\"}}", &pkt, &reply), MP_OK);
    assert_int_equal(request(st, "{\"method\":\"connect\",\"id\":\"b\",\"params\":{\"uid\":\"u\"}}", &pkt, &reply), MP_EPROTO);
    mp_buf_free(&pkt);
    mp_buf_free(&reply);
    jsonrpc_free(st);
}

static void test_send_and_sendack(void **state) {
    (void)state;
    jsonrpc_state *st = connected_state();
    mp_buf pkt = MP_BUF_INIT, reply = MP_BUF_INIT, out = MP_BUF_INIT;
    /* payload is base64 of {"content":"hi","type":1} */
    assert_int_equal(request(st, "{\"jsonrpc\":\"2.0\",\"method\":\"send\",\"id\":\"req-send-1\",\"params\":{"
                                 "\"channelId\":\"u2\",\"channelType\":1,\"clientMsgNo\":\"cmn1\",\"header\":{\"redDot\":true},"
                                 "\"payload\":\"eyJjb250ZW50IjoiaGkiLCJ0eXBlIjoxfQ==\"}}",
                             &pkt, &reply),
                     MP_OK);
    proto_frame f;
    proto_send s;
    assert_int_equal(proto_frame_parse(pkt.data, pkt.len, PROTO_MAX_REMAINING, &f), MP_OK);
    assert_int_equal(f.type, PROTO_SEND);
    assert_int_equal(f.flags, PROTO_FLAG_REDDOT);
    assert_int_equal(proto_decode_send(f.body, f.body_len, f.flags, 5, &s), MP_OK);
    assert_true(mp_str_eq_c(s.channel_id, "u2"));
    assert_true(mp_str_eq_c(s.client_msg_no, "cmn1"));
    assert_true(mp_str_eq_c(s.payload, "{\"content\":\"hi\",\"type\":1}"));

    proto_sendack a = {PROTO_FLAG_REDDOT, 1234567890123LL, s.client_seq, 7, REASON_SUCCESS};
    mp_buf ack = MP_BUF_INIT;
    proto_encode_sendack(&a, 5, &ack);
    assert_int_equal(jsonrpc_from_packet(st, ack.data, ack.len, 5, &out), MP_OK);
    assert_json(&out, "{\"jsonrpc\":\"2.0\",\"id\":\"req-send-1\",\"result\":{\"header\":{\"redDot\":true},"
                      "\"messageId\":\"1234567890123\",\"messageSeq\":7,\"reasonCode\":1}}");

    /* A send without clientMsgNo gets a generated one; a bad payload is an error answer. */
    pkt.len = 0;
    assert_int_equal(request(st, "{\"method\":\"send\",\"id\":\"s2\",\"params\":{\"channelId\":\"g\",\"channelType\":2,"
                                 "\"payload\":\"e30=\"}}",
                             &pkt, &reply),
                     MP_OK);
    assert_int_equal(proto_frame_parse(pkt.data, pkt.len, PROTO_MAX_REMAINING, &f), MP_OK);
    assert_int_equal(proto_decode_send(f.body, f.body_len, f.flags, 5, &s), MP_OK);
    assert_int_equal(s.client_msg_no.len, 33);
    pkt.len = 0;
    assert_int_equal(request(st, "{\"method\":\"send\",\"id\":\"s3\",\"params\":{\"channelId\":\"g\",\"channelType\":2,"
                                 "\"payload\":\"not base64!\"}}",
                             &pkt, &reply),
                     MP_OK);
    assert_int_equal(pkt.len, 0);
    assert_json(&reply, "{\"jsonrpc\":\"2.0\",\"id\":\"s3\",\"error\":{\"code\":0,\"message\":\"invalid params: payload\"}}");
    mp_buf_free(&ack);
    mp_buf_free(&pkt);
    mp_buf_free(&reply);
    mp_buf_free(&out);
    jsonrpc_free(st);
}

static void test_recv_pong_disconnect_event(void **state) {
    (void)state;
    jsonrpc_state *st = connected_state();
    mp_buf pkt = MP_BUF_INIT, reply = MP_BUF_INIT, out = MP_BUF_INIT, b = MP_BUF_INIT;

    proto_recv r = {0};
    r.flags = PROTO_FLAG_REDDOT;
    r.message_id = 1234567890123LL;
    r.message_seq = 7;
    r.client_msg_no = mp_str_c("cmn1");
    r.timestamp = 1700000001;
    r.channel_id = mp_str_c("u1");
    r.channel_type = 1;
    r.from_uid = mp_str_c("u1");
    r.payload = mp_str_c("{\"content\":\"hi\",\"type\":1}");
    proto_encode_recv(&r, 5, &b);
    assert_int_equal(jsonrpc_from_packet(st, b.data, b.len, 5, &out), MP_OK);
    assert_json(&out, "{\"jsonrpc\":\"2.0\",\"method\":\"recv\",\"params\":{\"header\":{\"redDot\":true},"
                      "\"messageId\":\"1234567890123\",\"messageSeq\":7,\"clientMsgNo\":\"cmn1\",\"timestamp\":1700000001,"
                      "\"channelId\":\"u1\",\"channelType\":1,\"fromUid\":\"u1\","
                      "\"payload\":\"eyJjb250ZW50IjoiaGkiLCJ0eXBlIjoxfQ==\"}}");

    /* ping request -> PING packet; the PONG answers it without a result member */
    assert_int_equal(request(st, "{\"jsonrpc\":\"2.0\",\"method\":\"ping\",\"id\":\"req-ping-1\"}", &pkt, &reply), MP_OK);
    assert_int_equal(pkt.len, 1);
    assert_int_equal(pkt.data[0], 0x70);
    uint8_t pong = 0x80;
    out.len = 0;
    assert_int_equal(jsonrpc_from_packet(st, &pong, 1, 5, &out), MP_OK);
    assert_json(&out, "{\"jsonrpc\":\"2.0\",\"id\":\"req-ping-1\"}");

    proto_disconnect d = {REASON_CONNECT_KICK, mp_str_c("login in other device")};
    b.len = 0;
    proto_encode_disconnect(&d, &b);
    out.len = 0;
    assert_int_equal(jsonrpc_from_packet(st, b.data, b.len, 5, &out), MP_OK);
    assert_json(&out, "{\"jsonrpc\":\"2.0\",\"method\":\"disconnect\",\"params\":{\"reasonCode\":12,"
                      "\"reason\":\"login in other device\"}}");

    proto_event e = {mp_str_c("e1"), mp_str_c("test"), 1234567890, mp_str_c("{\"a\":1}")};
    b.len = 0;
    proto_encode_event(&e, &b);
    out.len = 0;
    assert_int_equal(jsonrpc_from_packet(st, b.data, b.len, 5, &out), MP_OK);
    assert_json(&out, "{\"jsonrpc\":\"2.0\",\"method\":\"event\",\"params\":{\"id\":\"e1\",\"type\":\"test\","
                      "\"timestamp\":1234567890,\"data\":\"{\\\"a\\\":1}\"}}");

    /* recvack notification -> RECVACK packet, no answer */
    pkt.len = 0;
    reply.len = 0;
    assert_int_equal(request(st, "{\"method\":\"recvack\",\"params\":{\"messageId\":\"1234567890123\",\"messageSeq\":7}}",
                             &pkt, &reply),
                     MP_OK);
    assert_int_equal(reply.len, 0);
    proto_frame f;
    proto_recvack a;
    assert_int_equal(proto_frame_parse(pkt.data, pkt.len, PROTO_MAX_REMAINING, &f), MP_OK);
    assert_int_equal(proto_decode_recvack(f.body, f.body_len, f.flags, 5, &a), MP_OK);
    assert_int_equal(a.message_id, 1234567890123LL);
    assert_int_equal(a.message_seq, 7);

    /* unsupported methods are answered with an error */
    pkt.len = 0;
    assert_int_equal(request(st, "{\"method\":\"subscribe\",\"id\":\"x\",\"params\":{}}", &pkt, &reply), MP_OK);
    assert_int_equal(pkt.len, 0);
    assert_json(&reply, "{\"jsonrpc\":\"2.0\",\"id\":\"x\",\"error\":{\"code\":0,\"message\":\"method subscribe is not supported\"}}");
    mp_buf_free(&pkt);
    mp_buf_free(&reply);
    mp_buf_free(&out);
    mp_buf_free(&b);
    jsonrpc_free(st);
}

/* Found by fuzz_jsonrpc: strings relayed from other clients need not be UTF-8 (a binary
 * client may use any bytes in its uid), and jansson refuses such a string, so the field
 * went missing from the notification. It must be there, with U+FFFD for the bad bytes. */
static void test_invalid_utf8_fields_kept(void **state) {
    (void)state;
    jsonrpc_state *st = jsonrpc_new();
    mp_buf pkt = MP_BUF_INIT, out = MP_BUF_INIT;
    proto_recv r = {0};
    r.from_uid = (mp_str){"u\xc3(", 3};
    r.channel_id = (mp_str){"g\xff", 2};
    r.channel_type = 2;
    r.message_id = 1;
    assert_int_equal(proto_encode_recv(&r, 5, &pkt), MP_OK);
    assert_int_equal(jsonrpc_from_packet(st, pkt.data, pkt.len, 5, &out), MP_OK);
    assert_json(&out, "{\"jsonrpc\":\"2.0\",\"method\":\"recv\",\"params\":{\"messageId\":\"1\",\"messageSeq\":0,"
                      "\"timestamp\":0,\"channelId\":\"g\xef\xbf\xbd\",\"channelType\":2,\"fromUid\":\"u\xef\xbf\xbd(\","
                      "\"payload\":\"\"}}");
    mp_buf_reset(&pkt);
    mp_buf_reset(&out);
    proto_event e = {{"e", 1}, {"t", 1}, 0, {"\xe2\x82", 2}};
    assert_int_equal(proto_encode_event(&e, &pkt), MP_OK);
    assert_int_equal(jsonrpc_from_packet(st, pkt.data, pkt.len, 5, &out), MP_OK);
    assert_json(&out, "{\"jsonrpc\":\"2.0\",\"method\":\"event\",\"params\":{\"id\":\"e\",\"type\":\"t\",\"timestamp\":0,"
                      "\"data\":\"\xef\xbf\xbd\xef\xbf\xbd\"}}");
    mp_buf_free(&pkt);
    mp_buf_free(&out);
    jsonrpc_free(st);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_detect_and_next),
        cmocka_unit_test(test_connect_roundtrip),
        cmocka_unit_test(test_first_must_be_connect),
        cmocka_unit_test(test_send_and_sendack),
        cmocka_unit_test(test_recv_pong_disconnect_event),
        cmocka_unit_test(test_invalid_utf8_fields_kept),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
