/* ws.h - WebSocket (RFC 6455) server side, pure: handshake parsing/response and frame
 * parsing/encoding over byte spans. No sockets here, so it can be fuzzed.
 * The server treats inbound data messages (binary or text) as a byte stream (spec §8.2);
 * fragmented messages are handled by appending each data frame's payload as it arrives. */
#ifndef MP_NET_WS_H
#define MP_NET_WS_H

#include "../common/buf.h"
#include "../common/mp.h"

#define WS_OP_CONT 0x0
#define WS_OP_TEXT 0x1
#define WS_OP_BINARY 0x2
#define WS_OP_CLOSE 0x8
#define WS_OP_PING 0x9
#define WS_OP_PONG 0xA

/* Parse an HTTP/1.1 upgrade request at buf[0..len). Any path is accepted.
 * MP_OK: *consumed = bytes of the request head, accept (28 chars + NUL) = the
 * Sec-WebSocket-Accept value; MP_EAGAIN: head incomplete; MP_ETOOBIG: head > 8 KiB;
 * MP_EPROTO: not a valid WebSocket upgrade (caller answers 400 and closes).
 * xff (cap bytes, may be NULL) receives X-Forwarded-For / X-Real-IP if present. */
int ws_handshake_parse(const uint8_t *buf, size_t len, size_t *consumed, char accept[29], char *xff, size_t xff_cap);
/* Append the "101 Switching Protocols" response. */
void ws_handshake_response(const char accept[29], mp_buf *out);
/* Append "400 Bad Request" response. */
void ws_handshake_reject(mp_buf *out);

/* One parsed frame. payload points into the input and is already unmasked in place
 * (the parser unmasks inside the caller's buffer, hence non-const input). */
typedef struct ws_frame {
    uint8_t fin;
    uint8_t opcode;
    uint8_t *payload;
    uint64_t payload_len;
} ws_frame;

/* Parse one frame at buf[0..len). MP_OK (*consumed = frame size), MP_EAGAIN (incomplete),
 * MP_ETOOBIG (payload > max_payload), MP_EPROTO (unmasked client frame, reserved bits or
 * opcode, control frame > 125 bytes or fragmented). */
int ws_frame_parse(uint8_t *buf, size_t len, uint64_t max_payload, size_t *consumed, ws_frame *out);
/* Write an unmasked FIN frame header for payload_len bytes into hdr (<= 10 bytes); returns its size. */
size_t ws_frame_header(uint8_t opcode, uint64_t payload_len, uint8_t hdr[10]);

#endif
