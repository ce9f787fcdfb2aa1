/* test_ws.c - WebSocket handshake parsing/response and frame parsing/encoding. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <inttypes.h>
#include <stdio.h>

#include "net/ws.h"

/* RFC 6455 section 1.3 */
#define RFC_KEY "dGhlIHNhbXBsZSBub25jZQ=="
#define RFC_ACCEPT "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="

static const char rfc_request[] = "GET /chat HTTP/1.1\r\n"
                                  "Host: server.example.com\r\n"
                                  "Upgrade: websocket\r\n"
                                  "Connection: Upgrade\r\n"
                                  "Sec-WebSocket-Key: " RFC_KEY "\r\n"
                                  "Origin: http://example.com\r\n"
                                  "Sec-WebSocket-Protocol: chat, superchat\r\n"
                                  "Sec-WebSocket-Version: 13\r\n"
                                  "\r\n";

static int hs(const char *req, size_t *consumed, char accept[29], char *xff, size_t cap) {
    return ws_handshake_parse((const uint8_t *)req, strlen(req), consumed, accept, xff, cap);
}

static void test_handshake_rfc_example(void **state) {
    (void)state;
    size_t consumed = 0;
    char accept[29], xff[64] = "junk";
    assert_int_equal(hs(rfc_request, &consumed, accept, xff, sizeof xff), MP_OK);
    assert_int_equal(consumed, strlen(rfc_request));
    assert_string_equal(accept, RFC_ACCEPT);
    assert_string_equal(xff, ""); /* cleared when absent */

    /* Bytes after the head (an early first frame) are left for the caller. */
    char more[sizeof rfc_request + 8];
    snprintf(more, sizeof more, "%s\x82\x80xyzw", rfc_request);
    assert_int_equal(hs(more, &consumed, accept, NULL, 0), MP_OK);
    assert_int_equal(consumed, strlen(rfc_request));

    mp_buf out = MP_BUF_INIT;
    ws_handshake_response(accept, &out);
    const char want[] = "HTTP/1.1 101 Switching Protocols\r\n"
                        "Upgrade: websocket\r\n"
                        "Connection: Upgrade\r\n"
                        "Sec-WebSocket-Accept: " RFC_ACCEPT "\r\n\r\n";
    assert_int_equal(out.len, sizeof want - 1);
    assert_memory_equal(out.data, want, sizeof want - 1);
    assert_null(memmem(out.data, out.len, "Sec-WebSocket-Protocol", 22)); /* no subprotocol */
    mp_buf_free(&out);
}

static void test_handshake_incomplete(void **state) {
    (void)state;
    size_t n = strlen(rfc_request);
    for (size_t i = 0; i < n; i++) {
        size_t consumed = 12345;
        char accept[29];
        int rc = ws_handshake_parse((const uint8_t *)rfc_request, i, &consumed, accept, NULL, 0);
        if (rc != MP_EAGAIN) fail_msg("prefix %zu: rc=%d", i, rc);
        assert_int_equal(consumed, 12345);
    }
}

static void test_handshake_not_http(void **state) {
    (void)state;
    size_t consumed;
    char accept[29];
    /* A binary-protocol CONNECT sent to the WebSocket port fails on its first byte. */
    const uint8_t connect[] = {0x10, 0x40, 0x02};
    assert_int_equal(ws_handshake_parse(connect, 1, &consumed, accept, NULL, 0), MP_EPROTO);
    assert_int_equal(ws_handshake_parse((const uint8_t *)"POST / HTTP/1.1\r\n", 17, &consumed, accept, NULL, 0), MP_EPROTO);
    assert_int_equal(ws_handshake_parse((const uint8_t *)"GE", 2, &consumed, accept, NULL, 0), MP_EAGAIN);
    assert_int_equal(ws_handshake_parse((const uint8_t *)"", 0, &consumed, accept, NULL, 0), MP_EAGAIN);
    assert_int_equal(ws_handshake_parse((const uint8_t *)"get / HTTP/1.1\r\n", 16, &consumed, accept, NULL, 0), MP_EPROTO);
}

static void test_handshake_too_big(void **state) {
    (void)state;
    size_t consumed;
    char accept[29];
    /* Pad with a filler header so the head is exactly n bytes. */
    const char *base = "GET / HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                       "Sec-WebSocket-Key: " RFC_KEY "\r\nSec-WebSocket-Version: 13\r\nX-Pad: ";
    size_t blen = strlen(base);
    char *req = malloc(9000);
    for (size_t total = 8190; total <= 8194; total++) {
        memcpy(req, base, blen);
        size_t pad = total - blen - 4;
        memset(req + blen, 'a', pad);
        memcpy(req + blen + pad, "\r\n\r\n", 4);
        int rc = ws_handshake_parse((const uint8_t *)req, total, &consumed, accept, NULL, 0);
        if (total <= 8192) {
            assert_int_equal(rc, MP_OK);
            assert_int_equal(consumed, total);
        } else {
            assert_int_equal(rc, MP_ETOOBIG);
        }
    }
    /* no terminator yet: EAGAIN below the limit, ETOOBIG once the limit is reached */
    memset(req, 'a', 9000);
    memcpy(req, "GET /", 5);
    assert_int_equal(ws_handshake_parse((const uint8_t *)req, 8191, &consumed, accept, NULL, 0), MP_EAGAIN);
    assert_int_equal(ws_handshake_parse((const uint8_t *)req, 8192, &consumed, accept, NULL, 0), MP_ETOOBIG);
    assert_int_equal(ws_handshake_parse((const uint8_t *)req, 9000, &consumed, accept, NULL, 0), MP_ETOOBIG);
    free(req);
}

/* A valid request with one line replaced (or removed when repl is ""). */
static char *variant(const char *line_prefix, const char *repl) {
    static char out[2048];
    const char *lines[] = {"GET /ws?x=1 HTTP/1.1\r\n", "Host: h\r\n", "Upgrade: websocket\r\n", "Connection: Upgrade\r\n",
                           "Sec-WebSocket-Key: " RFC_KEY "\r\n", "Sec-WebSocket-Version: 13\r\n"};
    out[0] = 0;
    for (size_t i = 0; i < MP_ARRAY_LEN(lines); i++) {
        if (line_prefix && strncmp(lines[i], line_prefix, strlen(line_prefix)) == 0) strcat(out, repl);
        else strcat(out, lines[i]);
    }
    strcat(out, "\r\n");
    return out;
}

static void test_handshake_required_headers(void **state) {
    (void)state;
    size_t consumed;
    char accept[29];
    assert_int_equal(hs(variant(NULL, NULL), &consumed, accept, NULL, 0), MP_OK);
    static const struct { const char *prefix, *repl; } bad[] = {
        {"Upgrade:", ""},
        {"Upgrade:", "Upgrade: h2c\r\n"},
        {"Upgrade:", "Upgrade: websockets\r\n"},
        {"Connection:", ""},
        {"Connection:", "Connection: keep-alive\r\n"},
        {"Connection:", "Connection: upgrades\r\n"},
        {"Sec-WebSocket-Key:", ""},
        {"Sec-WebSocket-Key:", "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ=\r\n"},   /* 23 chars */
        {"Sec-WebSocket-Key:", "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==A\r\n"}, /* 25 chars */
        {"Sec-WebSocket-Key:", "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZ!==\r\n"},  /* not base64 */
        {"Sec-WebSocket-Key:", "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ00\r\n"},  /* 18 bytes, not 16 */
        {"Sec-WebSocket-Key:", "Sec-WebSocket-Key: " RFC_KEY "\r\nSec-WebSocket-Key: " RFC_KEY "\r\n"},
        {"Sec-WebSocket-Version:", ""},
        {"Sec-WebSocket-Version:", "Sec-WebSocket-Version: 8\r\n"},
        {"Sec-WebSocket-Version:", "Sec-WebSocket-Version: 13, 8\r\n"},
        {"Sec-WebSocket-Version:", "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Version: 12\r\n"},
        {"GET", "GET /ws HTTP/1.0\r\n"},
        {"GET", "GET HTTP/1.1\r\n"},
        {"GET", "GET  HTTP/1.1\r\n"},
        {"GET", "GET /a b HTTP/1.1\r\n"},
        {"GET", "GET /ws HTTP/1.1 \r\n"},
        {"GET", "GET /ws\r\n"},
        {"Host:", "Host h\r\n"},                     /* no colon */
        {"Host:", ": h\r\n"},                        /* empty name */
        {"Host:", "Ho st: h\r\n"},                   /* bad name */
        {"Host:", "Host: h\r\n folded\r\n"},         /* obsolete line folding */
        {"Host:", "Host: h\nX: y\r\n"},              /* bare LF */
        {"Host:", "Host: h\rX: y\r\n"},              /* bare CR */
        {"Host:", "Host: a\x01" "b\r\n"},            /* control character */
    };
    for (size_t i = 0; i < MP_ARRAY_LEN(bad); i++) {
        const char *req = variant(bad[i].prefix, bad[i].repl);
        int rc = hs(req, &consumed, accept, NULL, 0);
        if (rc != MP_EPROTO) fail_msg("case %zu: rc=%d for\n%s", i, rc, req);
    }
}

static void test_handshake_case_insensitive(void **state) {
    (void)state;
    const char *req = "GET / HTTP/1.1\r\n"
                      "host: h\r\n"
                      "UPGRADE:WebSocket\r\n"
                      "connection:  keep-alive, UPGRADE \r\n"
                      "sec-websocket-key:\t" RFC_KEY "\t\r\n"
                      "SEC-WEBSOCKET-VERSION: 13\r\n"
                      "\r\n";
    size_t consumed;
    char accept[29];
    assert_int_equal(hs(req, &consumed, accept, NULL, 0), MP_OK);
    assert_string_equal(accept, RFC_ACCEPT);
    /* several Connection headers and an Upgrade list also work */
    const char *req2 = "GET /any/path?q HTTP/1.1\r\n"
                       "Connection: keep-alive\r\n"
                       "Connection: Upgrade\r\n"
                       "Upgrade: foo/1, websocket\r\n"
                       "Sec-WebSocket-Key: AAAAAAAAAAAAAAAAAAAAAA==\r\n"
                       "Sec-WebSocket-Version: 13\r\n"
                       "\r\n";
    assert_int_equal(hs(req2, &consumed, accept, NULL, 0), MP_OK);
    assert_int_equal(strlen(accept), 28);
}

static char *with_headers(const char *extra) {
    static char out[1024];
    snprintf(out, sizeof out,
             "GET / HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: " RFC_KEY
             "\r\nSec-WebSocket-Version: 13\r\n%s\r\n",
             extra);
    return out;
}

static void test_handshake_forwarded_for(void **state) {
    (void)state;
    static const struct { const char *headers, *want; } cases[] = {
        {"X-Forwarded-For: 203.0.113.7, 10.0.0.1\r\n", "203.0.113.7"},
        {"x-forwarded-for:2001:db8::1\r\n", "2001:db8::1"},
        {"X-Real-IP: 198.51.100.2\r\n", "198.51.100.2"},
        {"X-Real-IP: 198.51.100.2\r\nX-Forwarded-For: 203.0.113.7\r\n", "203.0.113.7"},
        {"X-Forwarded-For: 203.0.113.7\r\nX-Forwarded-For: 10.9.9.9\r\n", "203.0.113.7"},
        {"X-Forwarded-For: <script>\r\nX-Real-IP: 198.51.100.2\r\n", "198.51.100.2"},
        {"X-Forwarded-For: <script>\r\n", ""},
        {"X-Forwarded-For: \r\n", ""},
        {"X-Forwarded-For: 1111:2222:3333:4444:5555:6666:7777:8888\r\n", ""}, /* longer than the 16-byte buffer */
    };
    for (size_t i = 0; i < MP_ARRAY_LEN(cases); i++) {
        size_t consumed;
        char accept[29], xff[16] = "junk";
        int rc = hs(with_headers(cases[i].headers), &consumed, accept, xff, sizeof xff);
        assert_int_equal(rc, MP_OK);
        if (strcmp(xff, cases[i].want) != 0) fail_msg("case %zu: got '%s' want '%s'", i, xff, cases[i].want);
    }
}

static void test_handshake_reject(void **state) {
    (void)state;
    mp_buf out = MP_BUF_INIT;
    ws_handshake_reject(&out);
    char *s = mp_strndup((const char *)out.data, out.len);
    assert_true(strncmp(s, "HTTP/1.1 400 Bad Request\r\n", 26) == 0);
    assert_non_null(strstr(s, "Connection: close\r\n"));
    char *body = strstr(s, "\r\n\r\n");
    assert_non_null(body);
    body += 4;
    const char *cl = strstr(s, "Content-Length: ");
    assert_non_null(cl);
    assert_int_equal(strtoul(cl + 16, NULL, 10), strlen(body));
    free(s);
    mp_buf_free(&out);
}

/* ---------- frames ---------- */

static const uint8_t mask_key[4] = {0x37, 0xfa, 0x21, 0x3d};

/* Encode a client frame the way a browser does (masked), with the minimal length encoding. */
static size_t client_frame(uint8_t *out, uint8_t b0, const uint8_t *payload, uint64_t n, int masked) {
    size_t h = ws_frame_header(b0 & 0x0f, n, out);
    out[0] = b0;
    if (masked) {
        out[1] |= 0x80;
        memcpy(out + h, mask_key, 4);
        h += 4;
    }
    for (uint64_t i = 0; i < n; i++) out[h + i] = masked ? payload[i] ^ mask_key[i & 3] : payload[i];
    return h + (size_t)n;
}

static void test_frame_rfc_example(void **state) {
    (void)state;
    /* RFC 6455 5.7: a masked text frame "Hello" */
    uint8_t f[] = {0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58};
    size_t consumed;
    ws_frame fr;
    assert_int_equal(ws_frame_parse(f, sizeof f, 1 << 20, &consumed, &fr), MP_OK);
    assert_int_equal(consumed, sizeof f);
    assert_int_equal(fr.fin, 1);
    assert_int_equal(fr.opcode, WS_OP_TEXT);
    assert_int_equal(fr.payload_len, 5);
    assert_ptr_equal(fr.payload, f + 6);
    assert_memory_equal(fr.payload, "Hello", 5);
}

static void test_frame_lengths(void **state) {
    (void)state;
    static const uint64_t sizes[] = {0, 1, 7, 8, 9, 125, 126, 127, 1000, 65535, 65536, 70001};
    uint8_t *payload = malloc(70001), *frame = malloc(70001 + 15), *copy = malloc(70001 + 15);
    for (size_t i = 0; i < 70001; i++) payload[i] = (uint8_t)(i * 31 + 7);
    for (size_t s = 0; s < MP_ARRAY_LEN(sizes); s++) {
        uint64_t n = sizes[s];
        size_t len = client_frame(frame, 0x82, payload, n, 1);
        size_t want_hdr = n <= 125 ? 6 : n <= 65535 ? 8 : 14;
        assert_int_equal(len, want_hdr + n);
        memcpy(copy, frame, len);
        /* every strict prefix is incomplete and leaves the buffer untouched */
        for (size_t k = 0; k < len; k++) {
            size_t consumed = 999;
            ws_frame fr;
            int rc = ws_frame_parse(frame, k, 1 << 20, &consumed, &fr);
            if (rc != MP_EAGAIN) fail_msg("size %" PRIu64 " prefix %zu: rc=%d", n, k, rc);
            assert_int_equal(consumed, 999);
        }
        assert_memory_equal(frame, copy, len);
        size_t consumed;
        ws_frame fr;
        /* extra bytes after the frame are not consumed */
        frame[len] = 0x82;
        assert_int_equal(ws_frame_parse(frame, len + 1, 1 << 20, &consumed, &fr), MP_OK);
        assert_int_equal(consumed, len);
        assert_int_equal(fr.fin, 1);
        assert_int_equal(fr.opcode, WS_OP_BINARY);
        assert_true(fr.payload_len == n);
        assert_ptr_equal(fr.payload, frame + want_hdr);
        if (n) assert_memory_equal(fr.payload, payload, n);
    }
    free(payload);
    free(frame);
    free(copy);
}

static void test_frame_non_minimal_length(void **state) {
    (void)state;
    /* 5 bytes declared with the 16-bit and the 64-bit forms: accepted */
    uint8_t f16[] = {0x82, 0xfe, 0x00, 0x05, 0, 0, 0, 0, 'a', 'b', 'c', 'd', 'e'};
    uint8_t f64[] = {0x82, 0xff, 0, 0, 0, 0, 0, 0, 0, 0x05, 0, 0, 0, 0, 'a', 'b', 'c', 'd', 'e'};
    size_t consumed;
    ws_frame fr;
    assert_int_equal(ws_frame_parse(f16, sizeof f16, 100, &consumed, &fr), MP_OK);
    assert_int_equal(consumed, sizeof f16);
    assert_memory_equal(fr.payload, "abcde", 5);
    assert_int_equal(ws_frame_parse(f64, sizeof f64, 100, &consumed, &fr), MP_OK);
    assert_int_equal(consumed, sizeof f64);
    /* the most significant bit of a 64-bit length must be 0 */
    uint8_t bad[] = {0x82, 0xff, 0x80, 0, 0, 0, 0, 0, 0, 0x05};
    assert_int_equal(ws_frame_parse(bad, sizeof bad, UINT64_MAX, &consumed, &fr), MP_EPROTO);
}

static void test_frame_unmasked(void **state) {
    (void)state;
    uint8_t p[200] = {1, 2, 3};
    uint8_t f[300];
    size_t consumed;
    ws_frame fr;
    static const uint64_t sizes[] = {0, 3, 200};
    for (size_t i = 0; i < MP_ARRAY_LEN(sizes); i++) {
        size_t len = client_frame(f, 0x82, p, sizes[i], 0);
        assert_int_equal(ws_frame_parse(f, len, 1 << 20, &consumed, &fr), MP_EPROTO);
        assert_int_equal(ws_frame_parse(f, 2, 1 << 20, &consumed, &fr), MP_EPROTO); /* known from 2 bytes */
    }
}

static void test_frame_reserved_bits_and_opcodes(void **state) {
    (void)state;
    uint8_t f[16];
    size_t consumed;
    ws_frame fr;
    for (int rsv = 0x10; rsv <= 0x40; rsv <<= 1) {
        size_t len = client_frame(f, (uint8_t)(0x80 | rsv | WS_OP_BINARY), (const uint8_t *)"x", 1, 1);
        assert_int_equal(ws_frame_parse(f, len, 100, &consumed, &fr), MP_EPROTO);
    }
    for (int op = 0; op < 16; op++) {
        size_t len = client_frame(f, (uint8_t)(0x80 | op), (const uint8_t *)"ab", 2, 1);
        int ok = op == 0 || op == 1 || op == 2 || op == 8 || op == 9 || op == 10;
        assert_int_equal(ws_frame_parse(f, len, 100, &consumed, &fr), ok ? MP_OK : MP_EPROTO);
        if (ok) assert_int_equal(fr.opcode, op);
    }
}

static void test_frame_control_rules(void **state) {
    (void)state;
    uint8_t p[126], f[200];
    memset(p, 'p', sizeof p);
    size_t consumed, len;
    ws_frame fr;
    /* ping with 125 bytes is fine; 126 is not, whatever max_payload says */
    len = client_frame(f, 0x80 | WS_OP_PING, p, 125, 1);
    assert_int_equal(ws_frame_parse(f, len, 1 << 20, &consumed, &fr), MP_OK);
    assert_int_equal(fr.opcode, WS_OP_PING);
    assert_int_equal(fr.payload_len, 125);
    len = client_frame(f, 0x80 | WS_OP_PING, p, 126, 1);
    assert_int_equal(ws_frame_parse(f, len, 1 << 20, &consumed, &fr), MP_EPROTO);
    assert_int_equal(ws_frame_parse(f, 2, 1 << 20, &consumed, &fr), MP_EPROTO);
    /* fragmented control frames */
    static const uint8_t ctl[] = {WS_OP_CLOSE, WS_OP_PING, WS_OP_PONG};
    for (size_t i = 0; i < MP_ARRAY_LEN(ctl); i++) {
        len = client_frame(f, ctl[i], p, 2, 1);
        assert_int_equal(ws_frame_parse(f, len, 1 << 20, &consumed, &fr), MP_EPROTO);
        len = client_frame(f, 0x80 | ctl[i], p, 0, 1);
        assert_int_equal(ws_frame_parse(f, len, 1 << 20, &consumed, &fr), MP_OK);
        assert_int_equal(fr.payload_len, 0);
    }
    /* a close body is empty or at least a 2-byte status code */
    const uint8_t close_body[] = {0x03, 0xe8, 'b', 'y', 'e'};
    len = client_frame(f, 0x80 | WS_OP_CLOSE, close_body, 1, 1);
    assert_int_equal(ws_frame_parse(f, len, 1 << 20, &consumed, &fr), MP_EPROTO);
    len = client_frame(f, 0x80 | WS_OP_CLOSE, close_body, 5, 1);
    assert_int_equal(ws_frame_parse(f, len, 1 << 20, &consumed, &fr), MP_OK);
    assert_memory_equal(fr.payload, close_body, 5);
    /* data frames may be fragmented: text without FIN, then a final continuation */
    len = client_frame(f, WS_OP_TEXT, p, 3, 1);
    assert_int_equal(ws_frame_parse(f, len, 1 << 20, &consumed, &fr), MP_OK);
    assert_int_equal(fr.fin, 0);
    assert_int_equal(fr.opcode, WS_OP_TEXT);
    len = client_frame(f, 0x80 | WS_OP_CONT, p, 3, 1);
    assert_int_equal(ws_frame_parse(f, len, 1 << 20, &consumed, &fr), MP_OK);
    assert_int_equal(fr.fin, 1);
    assert_int_equal(fr.opcode, WS_OP_CONT);
}

static void test_frame_too_big(void **state) {
    (void)state;
    size_t consumed;
    ws_frame fr;
    /* Each length form is refused as soon as the length is readable; no mask or payload needed. */
    uint8_t f7[] = {0x82, 0x80 | 101};
    uint8_t f16[] = {0x82, 0xfe, 0x01, 0x00};
    uint8_t f64[] = {0x82, 0xff, 0, 0, 0, 1, 0, 0, 0, 0}; /* 4 GiB */
    assert_int_equal(ws_frame_parse(f7, sizeof f7, 100, &consumed, &fr), MP_ETOOBIG);
    assert_int_equal(ws_frame_parse(f16, sizeof f16, 255, &consumed, &fr), MP_ETOOBIG);
    assert_int_equal(ws_frame_parse(f16, 3, 255, &consumed, &fr), MP_EAGAIN); /* length not yet known */
    assert_int_equal(ws_frame_parse(f64, sizeof f64, 1 << 20, &consumed, &fr), MP_ETOOBIG);
    assert_int_equal(ws_frame_parse(f64, 9, 1 << 20, &consumed, &fr), MP_EAGAIN);
    /* exactly max_payload is fine */
    uint8_t p[100] = {0}, f[120];
    size_t len = client_frame(f, 0x82, p, 100, 1);
    assert_int_equal(ws_frame_parse(f, len, 100, &consumed, &fr), MP_OK);
    len = client_frame(f, 0x82, p, 100, 1);
    assert_int_equal(ws_frame_parse(f, len, 99, &consumed, &fr), MP_ETOOBIG);
    /* max_payload 0 allows only empty frames */
    len = client_frame(f, 0x82, p, 0, 1);
    assert_int_equal(ws_frame_parse(f, len, 0, &consumed, &fr), MP_OK);
}

static void test_frame_sequence(void **state) {
    (void)state;
    /* two frames in one read, then a partial third */
    uint8_t buf[64];
    size_t n = 0;
    n += client_frame(buf + n, 0x82, (const uint8_t *)"abc", 3, 1);
    n += client_frame(buf + n, 0x80 | WS_OP_PING, (const uint8_t *)"hi", 2, 1);
    size_t third = client_frame(buf + n, 0x82, (const uint8_t *)"xyz", 3, 1);
    n += third - 1;
    size_t off = 0, consumed;
    ws_frame fr;
    assert_int_equal(ws_frame_parse(buf + off, n - off, 100, &consumed, &fr), MP_OK);
    assert_memory_equal(fr.payload, "abc", 3);
    off += consumed;
    assert_int_equal(ws_frame_parse(buf + off, n - off, 100, &consumed, &fr), MP_OK);
    assert_int_equal(fr.opcode, WS_OP_PING);
    assert_memory_equal(fr.payload, "hi", 2);
    off += consumed;
    assert_int_equal(ws_frame_parse(buf + off, n - off, 100, &consumed, &fr), MP_EAGAIN);
    assert_int_equal(n - off, third - 1);
}

static void test_frame_header_encoding(void **state) {
    (void)state;
    static const struct { uint8_t op; uint64_t n; size_t len; uint8_t want[10]; } cases[] = {
        {WS_OP_BINARY, 0, 2, {0x82, 0x00}},
        {WS_OP_BINARY, 125, 2, {0x82, 0x7d}},
        {WS_OP_BINARY, 126, 4, {0x82, 0x7e, 0x00, 0x7e}},
        {WS_OP_BINARY, 65535, 4, {0x82, 0x7e, 0xff, 0xff}},
        {WS_OP_BINARY, 65536, 10, {0x82, 0x7f, 0, 0, 0, 0, 0, 0x01, 0x00, 0x00}},
        {WS_OP_BINARY, 0x0102030405060708ull, 10, {0x82, 0x7f, 1, 2, 3, 4, 5, 6, 7, 8}},
        {WS_OP_TEXT, 5, 2, {0x81, 0x05}},
        {WS_OP_PONG, 2, 2, {0x8a, 0x02}},
        {WS_OP_CLOSE, 0, 2, {0x88, 0x00}},
    };
    for (size_t i = 0; i < MP_ARRAY_LEN(cases); i++) {
        uint8_t hdr[10];
        memset(hdr, 0xee, sizeof hdr);
        size_t len = ws_frame_header(cases[i].op, cases[i].n, hdr);
        assert_int_equal(len, cases[i].len);
        assert_memory_equal(hdr, cases[i].want, len);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_handshake_rfc_example),
        cmocka_unit_test(test_handshake_incomplete),
        cmocka_unit_test(test_handshake_not_http),
        cmocka_unit_test(test_handshake_too_big),
        cmocka_unit_test(test_handshake_required_headers),
        cmocka_unit_test(test_handshake_case_insensitive),
        cmocka_unit_test(test_handshake_forwarded_for),
        cmocka_unit_test(test_handshake_reject),
        cmocka_unit_test(test_frame_rfc_example),
        cmocka_unit_test(test_frame_lengths),
        cmocka_unit_test(test_frame_non_minimal_length),
        cmocka_unit_test(test_frame_unmasked),
        cmocka_unit_test(test_frame_reserved_bits_and_opcodes),
        cmocka_unit_test(test_frame_control_rules),
        cmocka_unit_test(test_frame_too_big),
        cmocka_unit_test(test_frame_sequence),
        cmocka_unit_test(test_frame_header_encoding),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
