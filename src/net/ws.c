/* ws.c - WebSocket (RFC 6455) server side over byte spans: the HTTP/1.1 upgrade handshake
 * and frame parsing/encoding. No sockets and no allocation, so it can be fuzzed.
 *
 * The handshake parser is deliberately small: it reads only the request line and the headers
 * an upgrade needs, and refuses anything it cannot read unambiguously (obsolete line folding,
 * control characters, a repeated Sec-WebSocket-Key). */
#include "ws.h"

#include <openssl/evp.h>
#include <strings.h>

#define WS_HEAD_MAX 8192
#define WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

/* ---------- handshake ---------- */

typedef struct span {
    const char *p;
    size_t n;
} span;

static int span_ieq(span s, const char *lit) {
    size_t n = strlen(lit);
    return s.n == n && strncasecmp(s.p, lit, n) == 0;
}

static span trim(span s) {
    while (s.n && (s.p[0] == ' ' || s.p[0] == '\t')) s.p++, s.n--;
    while (s.n && (s.p[s.n - 1] == ' ' || s.p[s.n - 1] == '\t')) s.n--;
    return s;
}

/* Does the comma-separated list v contain token (case-insensitive)? */
static int has_token(span v, const char *token) {
    while (v.n) {
        const char *comma = memchr(v.p, ',', v.n);
        size_t len = comma ? (size_t)(comma - v.p) : v.n;
        if (span_ieq(trim((span){v.p, len}), token)) return 1;
        if (!comma) break;
        v.p += len + 1;
        v.n -= len + 1;
    }
    return 0;
}

static int is_tchar(unsigned char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || (c && strchr("!#$%&'*+-.^_`|~", c));
}

static int is_b64(unsigned char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '+' || c == '/';
}

/* Sec-WebSocket-Key must be the base64 of 16 bytes: 22 characters and "==". */
static int valid_key(span k) {
    if (k.n != 24 || k.p[22] != '=' || k.p[23] != '=') return 0;
    for (size_t i = 0; i < 22; i++)
        if (!is_b64((unsigned char)k.p[i])) return 0;
    return 1;
}

/* Copy the first address of an X-Forwarded-For / X-Real-IP value into out, if it looks like
 * an address (it ends up in logs and /connz, so nothing else gets through). */
static void copy_addr(span v, char *out, size_t cap) {
    const char *comma = memchr(v.p, ',', v.n);
    if (comma) v.n = (size_t)(comma - v.p);
    v = trim(v);
    if (!v.n || v.n >= cap) return;
    for (size_t i = 0; i < v.n; i++) {
        unsigned char c = (unsigned char)v.p[i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || strchr(".:[]-_%", c)))
            return;
    }
    memcpy(out, v.p, v.n);
    out[v.n] = 0;
}

/* Could buf[0..n) still become "GET "? Lets garbage on the WebSocket port fail fast. */
static int could_be_get(const uint8_t *buf, size_t n) {
    return memcmp(buf, "GET ", MP_MIN(n, (size_t)4)) == 0;
}

int ws_handshake_parse(const uint8_t *buf, size_t len, size_t *consumed, char accept[29], char *xff, size_t xff_cap) {
    if (xff && xff_cap) xff[0] = 0;
    if (!could_be_get(buf, len)) return MP_EPROTO;

    /* Find the end of the head within the limit. */
    size_t scan = MP_MIN(len, (size_t)WS_HEAD_MAX), head = 0;
    for (size_t i = 3; i < scan; i++) {
        if (buf[i] == '\n' && buf[i - 1] == '\r' && buf[i - 2] == '\n' && buf[i - 3] == '\r') {
            head = i + 1;
            break;
        }
    }
    if (!head) return len >= WS_HEAD_MAX ? MP_ETOOBIG : MP_EAGAIN;

    const char *p = (const char *)buf, *end = p + head - 2; /* end: the final empty line's CRLF */

    /* Request line: GET <target> HTTP/1.1 */
    const char *eol = memchr(p, '\r', (size_t)(end - p));
    if (!eol || eol[1] != '\n') return MP_EPROTO;
    span line = {p, (size_t)(eol - p)};
    if (line.n < 14 || memcmp(line.p, "GET ", 4) != 0 || memcmp(line.p + line.n - 9, " HTTP/1.1", 9) != 0)
        return MP_EPROTO;
    for (size_t i = 4; i < line.n - 9; i++)
        if ((unsigned char)line.p[i] <= ' ' || line.p[i] == 0x7f) return MP_EPROTO;

    int upgrade = 0, connection = 0, version = 0, keys = 0;
    span key = {NULL, 0}, fwd = {NULL, 0}, real_ip = {NULL, 0};
    for (p = eol + 2; p < end; p = eol + 2) {
        eol = memchr(p, '\r', (size_t)(end - p));
        if (!eol || eol[1] != '\n') return MP_EPROTO; /* bare CR or LF */
        const char *colon = memchr(p, ':', (size_t)(eol - p));
        if (!colon || colon == p) return MP_EPROTO; /* also rejects obs-fold lines */
        span name = {p, (size_t)(colon - p)};
        for (size_t i = 0; i < name.n; i++)
            if (!is_tchar((unsigned char)name.p[i])) return MP_EPROTO;
        span value = {colon + 1, (size_t)(eol - colon - 1)};
        for (size_t i = 0; i < value.n; i++) {
            unsigned char c = (unsigned char)value.p[i];
            if ((c < ' ' && c != '\t') || c == 0x7f) return MP_EPROTO;
        }
        value = trim(value);

        if (span_ieq(name, "Upgrade")) upgrade |= has_token(value, "websocket");
        else if (span_ieq(name, "Connection")) connection |= has_token(value, "upgrade");
        else if (span_ieq(name, "Sec-WebSocket-Key")) key = value, keys++;
        else if (span_ieq(name, "Sec-WebSocket-Version")) {
            if (!(value.n == 2 && memcmp(value.p, "13", 2) == 0)) return MP_EPROTO;
            version = 1;
        } else if (span_ieq(name, "X-Forwarded-For")) {
            if (!fwd.p) fwd = value;
        } else if (span_ieq(name, "X-Real-IP")) {
            if (!real_ip.p) real_ip = value;
        }
    }
    if (!upgrade || !connection || !version || keys != 1 || !valid_key(key)) return MP_EPROTO;

    unsigned char in[24 + sizeof WS_GUID - 1], digest[EVP_MAX_MD_SIZE];
    unsigned int dlen = 0;
    memcpy(in, key.p, 24);
    memcpy(in + 24, WS_GUID, sizeof WS_GUID - 1);
    if (!EVP_Digest(in, sizeof in, digest, &dlen, EVP_sha1(), NULL) || dlen != 20) return MP_EPROTO;
    EVP_EncodeBlock((unsigned char *)accept, digest, 20); /* 28 characters and a NUL */

    if (xff && xff_cap) {
        if (fwd.p) copy_addr(fwd, xff, xff_cap);
        if (!xff[0] && real_ip.p) copy_addr(real_ip, xff, xff_cap);
    }
    *consumed = head;
    return MP_OK;
}

void ws_handshake_response(const char accept[29], mp_buf *out) {
    static const char a[] = "HTTP/1.1 101 Switching Protocols\r\n"
                            "Upgrade: websocket\r\n"
                            "Connection: Upgrade\r\n"
                            "Sec-WebSocket-Accept: ";
    mp_buf_append(out, a, sizeof a - 1);
    mp_buf_append(out, accept, strnlen(accept, 28));
    mp_buf_append(out, "\r\n\r\n", 4);
}

void ws_handshake_reject(mp_buf *out) {
    static const char r[] = "HTTP/1.1 400 Bad Request\r\n"
                            "Connection: close\r\n"
                            "Sec-WebSocket-Version: 13\r\n"
                            "Content-Type: text/plain\r\n"
                            "Content-Length: 12\r\n"
                            "\r\n"
                            "Bad Request\n";
    mp_buf_append(out, r, sizeof r - 1);
}

/* ---------- frames ---------- */

static void unmask(uint8_t *p, uint64_t n, const uint8_t key[4]) {
    uint64_t i = 0;
    if (n >= 8) {
        uint8_t k8[8] = {key[0], key[1], key[2], key[3], key[0], key[1], key[2], key[3]};
        uint64_t k, w;
        memcpy(&k, k8, 8);
        for (; i + 8 <= n; i += 8) {
            memcpy(&w, p + i, 8);
            w ^= k;
            memcpy(p + i, &w, 8);
        }
    }
    for (; i < n; i++) p[i] ^= key[i & 3];
}

int ws_frame_parse(uint8_t *buf, size_t len, uint64_t max_payload, size_t *consumed, ws_frame *out) {
    if (len < 2) return MP_EAGAIN;
    uint8_t fin = buf[0] >> 7, opcode = buf[0] & 0x0f, masked = buf[1] >> 7;
    uint64_t plen = buf[1] & 0x7f;
    if (buf[0] & 0x70) return MP_EPROTO; /* RSV1-3: no extension was negotiated */
    switch (opcode) {
    case WS_OP_CONT: case WS_OP_TEXT: case WS_OP_BINARY: break;
    case WS_OP_CLOSE: case WS_OP_PING: case WS_OP_PONG:
        if (!fin || plen > 125) return MP_EPROTO;
        if (opcode == WS_OP_CLOSE && plen == 1) return MP_EPROTO; /* a close body is empty or >= 2 */
        break;
    default: return MP_EPROTO;
    }
    if (!masked) return MP_EPROTO; /* every client frame is masked */

    size_t hdr = 2;
    if (plen == 126) {
        if (len < 4) return MP_EAGAIN;
        plen = mp_load_u16be(buf + 2);
        hdr = 4;
    } else if (plen == 127) {
        if (len < 10) return MP_EAGAIN;
        plen = mp_load_u64be(buf + 2);
        if (plen >> 63) return MP_EPROTO;
        hdr = 10;
    }
    /* Refuse an oversized frame now, before its payload is buffered. */
    if (plen > max_payload) return MP_ETOOBIG;
    hdr += 4;
    if (len < hdr || len - hdr < plen) return MP_EAGAIN;

    uint8_t *payload = buf + hdr;
    unmask(payload, plen, buf + hdr - 4);
    out->fin = fin;
    out->opcode = opcode;
    out->payload = payload;
    out->payload_len = plen;
    *consumed = hdr + (size_t)plen;
    return MP_OK;
}

size_t ws_frame_header(uint8_t opcode, uint64_t payload_len, uint8_t hdr[10]) {
    hdr[0] = (uint8_t)(0x80 | (opcode & 0x0f));
    if (payload_len <= 125) {
        hdr[1] = (uint8_t)payload_len;
        return 2;
    }
    if (payload_len <= 0xffff) {
        hdr[1] = 126;
        mp_store_u16be(hdr + 2, (uint16_t)payload_len);
        return 4;
    }
    hdr[1] = 127;
    mp_store_u64be(hdr + 2, payload_len);
    return 10;
}
