/* fuzz_ws_frame.c - the WebSocket frame parser (ws_frame_parse, src/net/ws.h).
 *
 * The first byte picks the payload limit (so MP_ETOOBIG paths are reached with small
 * inputs); the rest is a stream of client frames, parsed in an exact-size heap copy as
 * the connection does. Invariants per frame:
 *   - the frame lies inside the input and its payload inside the frame;
 *   - the opcode is a defined one, control frames are FIN and <= 125 bytes, the payload
 *     respects the limit;
 *   - the payload, unmasked in place, is the input XOR the mask key;
 *   - re-framing it (ws_frame_header, masked with a zero key) parses to the same frame. */
#include <string.h>

#include "fuzz_util.h"
#include "net/ws.h"

static const uint64_t limits[] = {0, 1, 125, 126, 65535, 65536, 1u << 20, UINT64_MAX >> 1};

/* Parse hdr(opcode, len) + mask 0 + payload, as a client would send the same frame. */
static void reframe(const ws_frame *f) {
    uint8_t hdr[10];
    size_t hn = ws_frame_header(f->opcode, f->payload_len, hdr);
    FUZZ_CHECK(hn == 2 || hn == 4 || hn == 10);
    size_t n = hn + 4 + (size_t)f->payload_len;
    uint8_t *buf = malloc(n);
    memcpy(buf, hdr, hn);
    buf[1] |= 0x80; /* mask bit */
    memset(buf + hn, 0, 4);
    if (f->payload_len) memcpy(buf + hn + 4, f->payload, (size_t)f->payload_len);
    size_t consumed = 0;
    ws_frame g;
    FUZZ_CHECK(ws_frame_parse(buf, n, f->payload_len, &consumed, &g) == MP_OK);
    FUZZ_CHECK(consumed == n && g.fin == 1 && g.opcode == f->opcode && g.payload_len == f->payload_len);
    FUZZ_CHECK(g.payload_len == 0 || memcmp(g.payload, f->payload, (size_t)g.payload_len) == 0);
    free(buf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    uint64_t max = limits[data[0] % MP_ARRAY_LEN(limits)];
    size_t len = size - 1;
    uint8_t *buf = malloc(len ? len : 1);
    if (len) memcpy(buf, data + 1, len);
    const uint8_t *orig = data + 1;

    size_t off = 0;
    while (off < len) {
        size_t consumed = 0;
        ws_frame f;
        int rc = ws_frame_parse(buf + off, len - off, max, &consumed, &f);
        if (rc != MP_OK) {
            FUZZ_CHECK(rc == MP_EAGAIN || rc == MP_EPROTO || rc == MP_ETOOBIG);
            break;
        }
        FUZZ_CHECK(consumed >= 6 && consumed <= len - off);
        FUZZ_CHECK(f.payload >= buf + off + 6 && f.payload + f.payload_len == buf + off + consumed);
        FUZZ_CHECK(f.payload_len <= max);
        FUZZ_CHECK(f.fin <= 1);
        switch (f.opcode) {
        case WS_OP_CONT: case WS_OP_TEXT: case WS_OP_BINARY: break;
        case WS_OP_CLOSE: case WS_OP_PING: case WS_OP_PONG:
            FUZZ_CHECK(f.fin && f.payload_len <= 125);
            break;
        default: FUZZ_CHECK(0 && "undefined opcode accepted");
        }
        /* Unmasked in place: payload[i] == original[i] ^ key[i % 4]. */
        size_t poff = (size_t)(f.payload - buf);
        const uint8_t *key = orig + poff - 4;
        for (uint64_t i = 0; i < f.payload_len; i++) FUZZ_CHECK(f.payload[i] == (orig[poff + i] ^ key[i & 3]));
        reframe(&f);
        off += consumed;
    }
    free(buf);
    return 0;
}
