/* packet.c - WKProto framing and packet codec (spec §1-§5, §11).
 *
 * Decoders walk the body with a bounds-checked reader: every field read checks the
 * remaining length first, so a truncated body yields MP_EPROTO and nothing past `len`
 * is ever touched. Encoders first compute the exact body size (so they can validate
 * string lengths and append nothing on error), then write header, varint and body
 * into one reserved region of the output buffer. */
#include "packet.h"

/* Largest value a 4-byte varint can carry (spec §1.4). */
#define VARINT_MAX 268435455u

/* Version 0 behaves like 1; the negotiator never goes above PROTO_MAX_VERSION, and a
 * larger value is treated as the newest layout we know. */
static int norm_version(int v) {
    if (v < 1) return 1;
    if (v > PROTO_MAX_VERSION) return PROTO_MAX_VERSION;
    return v;
}

static int has_stream(int version, uint8_t setting) {
    return version >= 2 && version <= 4 && (setting & PROTO_SETTING_STREAM);
}

/* ---- varint --------------------------------------------------------------------- */

int proto_varint_encode(uint32_t value, uint8_t out[4]) {
    if (value > VARINT_MAX) return MP_EINVAL;
    int n = 0;
    do {
        uint8_t b = value & 0x7F;
        value >>= 7;
        if (value) b |= 0x80;
        out[n++] = b;
    } while (value);
    return n;
}

int proto_varint_decode(const uint8_t *buf, size_t len, uint32_t *value, size_t *used) {
    uint32_t v = 0;
    for (size_t i = 0; i < 4; i++) {
        if (i >= len) return MP_EAGAIN;
        v |= (uint32_t)(buf[i] & 0x7F) << (7 * i);
        if (!(buf[i] & 0x80)) {
            *value = v;
            *used = i + 1;
            return MP_OK;
        }
    }
    return MP_EPROTO; /* 4th byte still had the continuation bit */
}

/* ---- framing -------------------------------------------------------------------- */

int proto_frame_parse(const uint8_t *buf, size_t len, uint32_t max_remaining, proto_frame *out) {
    if (len == 0) return MP_EAGAIN;
    uint8_t type = buf[0] >> 4;
    uint8_t flags = buf[0] & 0x0F;
    if (type == PROTO_PING || type == PROTO_PONG) {
        *out = (proto_frame){type, flags, buf + 1, 0, 1};
        return MP_OK;
    }
    if (type == 0 || type > PROTO_EVENT) return MP_EPROTO;

    uint32_t rem;
    size_t used;
    int rc = proto_varint_decode(buf + 1, len - 1, &rem, &used);
    if (rc != MP_OK) return rc;
    if (rem > max_remaining) return MP_ETOOBIG;
    size_t hdr = 1 + used;
    if (len - hdr < rem) return MP_EAGAIN;
    *out = (proto_frame){type, flags, buf + hdr, rem, (uint32_t)(hdr + rem)};
    return MP_OK;
}

/* ---- decoding ------------------------------------------------------------------- */

typedef struct rd {
    const uint8_t *p;
    size_t left;
    int err; /* sticky: once set, every read returns zero values */
} rd;

static int rd_need(rd *r, size_t n) {
    if (r->err || r->left < n) {
        r->err = 1;
        return 0;
    }
    return 1;
}

static uint8_t rd_u8(rd *r) {
    if (!rd_need(r, 1)) return 0;
    uint8_t v = r->p[0];
    r->p++;
    r->left--;
    return v;
}

static uint32_t rd_u32(rd *r) {
    if (!rd_need(r, 4)) return 0;
    uint32_t v = mp_load_u32be(r->p);
    r->p += 4;
    r->left -= 4;
    return v;
}

static uint64_t rd_u64(rd *r) {
    if (!rd_need(r, 8)) return 0;
    uint64_t v = mp_load_u64be(r->p);
    r->p += 8;
    r->left -= 8;
    return v;
}

/* u16 length (must be <= 32767: the reference reads it as int16) + bytes. */
static mp_str rd_str(rd *r) {
    mp_str s = {(const char *)r->p, 0};
    if (!rd_need(r, 2)) return s;
    uint16_t n = mp_load_u16be(r->p);
    if (n > PROTO_MAX_STR || r->left - 2 < n) {
        r->err = 1;
        return s;
    }
    s.p = (const char *)r->p + 2;
    s.len = n;
    r->p += 2 + (size_t)n;
    r->left -= 2 + (size_t)n;
    return s;
}

static mp_str rd_rest(rd *r) {
    mp_str s = {(const char *)r->p, 0};
    if (r->err) return s;
    s.len = (uint32_t)r->left;
    r->p += r->left;
    r->left = 0;
    return s;
}

static int rd_done(const rd *r) { return r->err ? MP_EPROTO : MP_OK; }

int proto_decode_connect(const uint8_t *body, size_t len, uint8_t flags, proto_connect *out) {
    (void)flags;
    rd r = {body, len, 0};
    memset(out, 0, sizeof(*out));
    out->version = rd_u8(&r);
    out->device_flag = rd_u8(&r);
    out->device_id = rd_str(&r);
    out->uid = rd_str(&r);
    out->token = rd_str(&r);
    out->client_timestamp = (int64_t)rd_u64(&r);
    out->client_key = rd_str(&r);
    return rd_done(&r);
}

int proto_decode_connack(const uint8_t *body, size_t len, uint8_t flags, int version, proto_connack *out) {
    version = norm_version(version);
    rd r = {body, len, 0};
    memset(out, 0, sizeof(*out));
    out->has_server_version = flags & PROTO_FLAG_HAS_SERVER_VERSION;
    if (out->has_server_version) out->server_version = rd_u8(&r);
    out->time_diff = (int64_t)rd_u64(&r);
    out->reason = rd_u8(&r);
    out->server_key = rd_str(&r);
    out->salt = rd_str(&r);
    if (version >= 4) out->node_id = rd_u64(&r);
    return rd_done(&r);
}

int proto_decode_send(const uint8_t *body, size_t len, uint8_t flags, int version, proto_send *out) {
    version = norm_version(version);
    rd r = {body, len, 0};
    memset(out, 0, sizeof(*out));
    out->flags = flags & 0x0F;
    out->setting = rd_u8(&r);
    out->client_seq = rd_u32(&r);
    out->client_msg_no = rd_str(&r);
    if (has_stream(version, out->setting)) out->stream_no = rd_str(&r);
    out->channel_id = rd_str(&r);
    out->channel_type = rd_u8(&r);
    if (version >= 3) out->expire = rd_u32(&r);
    out->msg_key = rd_str(&r);
    if (out->setting & PROTO_SETTING_TOPIC) out->topic = rd_str(&r);
    out->payload = rd_rest(&r);
    return rd_done(&r);
}

int proto_decode_sendack(const uint8_t *body, size_t len, uint8_t flags, int version, proto_sendack *out) {
    (void)version;
    rd r = {body, len, 0};
    memset(out, 0, sizeof(*out));
    out->flags = flags & 0x0F;
    out->message_id = (int64_t)rd_u64(&r);
    out->client_seq = rd_u32(&r);
    out->message_seq = rd_u32(&r);
    out->reason = rd_u8(&r);
    return rd_done(&r);
}

int proto_decode_recv(const uint8_t *body, size_t len, uint8_t flags, int version, proto_recv *out) {
    version = norm_version(version);
    rd r = {body, len, 0};
    memset(out, 0, sizeof(*out));
    out->flags = flags & 0x0F;
    out->setting = rd_u8(&r);
    out->msg_key = rd_str(&r);
    out->from_uid = rd_str(&r);
    out->channel_id = rd_str(&r);
    out->channel_type = rd_u8(&r);
    if (version >= 3) out->expire = rd_u32(&r);
    out->client_msg_no = rd_str(&r);
    if (has_stream(version, out->setting)) {
        out->stream_flag = rd_u8(&r);
        out->stream_no = rd_str(&r);
        out->stream_id = rd_u64(&r);
    }
    out->message_id = (int64_t)rd_u64(&r);
    out->message_seq = rd_u32(&r);
    out->timestamp = (int32_t)rd_u32(&r);
    if (out->setting & PROTO_SETTING_TOPIC) out->topic = rd_str(&r);
    out->payload = rd_rest(&r);
    return rd_done(&r);
}

int proto_decode_recvack(const uint8_t *body, size_t len, uint8_t flags, int version, proto_recvack *out) {
    (void)version;
    rd r = {body, len, 0};
    memset(out, 0, sizeof(*out));
    out->flags = flags & 0x0F;
    out->message_id = (int64_t)rd_u64(&r);
    out->message_seq = rd_u32(&r);
    return rd_done(&r);
}

int proto_decode_disconnect(const uint8_t *body, size_t len, uint8_t flags, proto_disconnect *out) {
    (void)flags;
    rd r = {body, len, 0};
    memset(out, 0, sizeof(*out));
    out->reason = rd_u8(&r);
    out->reason_text = rd_str(&r);
    return rd_done(&r);
}

int proto_decode_sub(const uint8_t *body, size_t len, uint8_t flags, proto_sub *out) {
    (void)flags;
    rd r = {body, len, 0};
    memset(out, 0, sizeof(*out));
    out->setting = rd_u8(&r);
    out->sub_no = rd_str(&r);
    out->channel_id = rd_str(&r);
    out->channel_type = rd_u8(&r);
    out->action = rd_u8(&r);
    out->param = rd_str(&r);
    return rd_done(&r);
}

int proto_decode_suback(const uint8_t *body, size_t len, uint8_t flags, proto_suback *out) {
    (void)flags;
    rd r = {body, len, 0};
    memset(out, 0, sizeof(*out));
    out->sub_no = rd_str(&r);
    out->channel_id = rd_str(&r);
    out->channel_type = rd_u8(&r);
    out->action = rd_u8(&r);
    out->reason = rd_u8(&r);
    return rd_done(&r);
}

int proto_decode_event(const uint8_t *body, size_t len, uint8_t flags, proto_event *out) {
    (void)flags;
    rd r = {body, len, 0};
    memset(out, 0, sizeof(*out));
    out->id = rd_str(&r);
    out->type = rd_str(&r);
    out->timestamp = (int64_t)rd_u64(&r);
    out->data = rd_rest(&r);
    return rd_done(&r);
}

/* ---- encoding ------------------------------------------------------------------- */

/* Body size accumulator: strings over the limit poison it. */
typedef struct sz {
    uint64_t n;
    int bad;
} sz;

static void sz_str(sz *s, mp_str v) {
    if (v.len > PROTO_MAX_STR) s->bad = 1;
    s->n += 2 + (uint64_t)v.len;
}

/* Writer over a region already reserved in the output buffer. */
typedef struct wr {
    uint8_t *p;
    uint8_t *end; /* where the body must end; checked by pkt_end */
} wr;

static void wr_u8(wr *w, uint8_t v) { *w->p++ = v; }
static void wr_u32(wr *w, uint32_t v) { mp_store_u32be(w->p, v); w->p += 4; }
static void wr_u64(wr *w, uint64_t v) { mp_store_u64be(w->p, v); w->p += 8; }

static void wr_bytes(wr *w, mp_str v) {
    if (v.len) memcpy(w->p, v.p, v.len);
    w->p += v.len;
}

static void wr_str(wr *w, mp_str v) {
    mp_store_u16be(w->p, (uint16_t)v.len);
    w->p += 2;
    wr_bytes(w, v);
}

/* Validates the size, reserves header + varint + body, writes the header and returns
 * a writer positioned at the body. The caller must write exactly s.n bytes and then
 * call pkt_end. */
static int pkt_begin(mp_buf *out, uint8_t byte0, const sz *s, wr *w) {
    if (s->bad || s->n > VARINT_MAX) return MP_EINVAL;
    uint8_t vi[4];
    int vn = proto_varint_encode((uint32_t)s->n, vi);
    mp_buf_reserve(out, 1 + (size_t)vn + (size_t)s->n);
    w->p = out->data + out->len;
    *w->p++ = byte0;
    memcpy(w->p, vi, (size_t)vn);
    w->p += vn;
    w->end = w->p + s->n;
    return MP_OK;
}

static void pkt_end(mp_buf *out, const wr *w) {
    MP_ASSERT(w->p == w->end); /* the size pass and the write pass agree */
    out->len = (size_t)(w->end - out->data);
}

int proto_encode_connect(const proto_connect *p, mp_buf *out) {
    sz s = {2 + 8, 0};
    sz_str(&s, p->device_id);
    sz_str(&s, p->uid);
    sz_str(&s, p->token);
    sz_str(&s, p->client_key);
    wr w;
    int rc = pkt_begin(out, PROTO_CONNECT << 4, &s, &w);
    if (rc != MP_OK) return rc;
    wr_u8(&w, p->version);
    wr_u8(&w, p->device_flag);
    wr_str(&w, p->device_id);
    wr_str(&w, p->uid);
    wr_str(&w, p->token);
    wr_u64(&w, (uint64_t)p->client_timestamp);
    wr_str(&w, p->client_key);
    pkt_end(out, &w);
    return MP_OK;
}

int proto_encode_connack(const proto_connack *p, int version, mp_buf *out) {
    version = norm_version(version);
    uint8_t hsv = p->has_server_version ? 1 : 0;
    sz s = {(uint64_t)hsv + 8 + 1 + (version >= 4 ? 8 : 0), 0};
    sz_str(&s, p->server_key);
    sz_str(&s, p->salt);
    wr w;
    int rc = pkt_begin(out, (uint8_t)(PROTO_CONNACK << 4 | hsv), &s, &w);
    if (rc != MP_OK) return rc;
    if (hsv) wr_u8(&w, p->server_version);
    wr_u64(&w, (uint64_t)p->time_diff);
    wr_u8(&w, p->reason);
    wr_str(&w, p->server_key);
    wr_str(&w, p->salt);
    if (version >= 4) wr_u64(&w, p->node_id);
    pkt_end(out, &w);
    return MP_OK;
}

int proto_encode_send(const proto_send *p, int version, mp_buf *out) {
    version = norm_version(version);
    int stream = has_stream(version, p->setting);
    int topic = (p->setting & PROTO_SETTING_TOPIC) != 0;
    sz s = {1 + 4 + 1 + (version >= 3 ? 4 : 0) + (uint64_t)p->payload.len, 0};
    sz_str(&s, p->client_msg_no);
    if (stream) sz_str(&s, p->stream_no);
    sz_str(&s, p->channel_id);
    sz_str(&s, p->msg_key);
    if (topic) sz_str(&s, p->topic);
    wr w;
    int rc = pkt_begin(out, (uint8_t)(PROTO_SEND << 4 | (p->flags & 0x0F)), &s, &w);
    if (rc != MP_OK) return rc;
    wr_u8(&w, p->setting);
    wr_u32(&w, p->client_seq);
    wr_str(&w, p->client_msg_no);
    if (stream) wr_str(&w, p->stream_no);
    wr_str(&w, p->channel_id);
    wr_u8(&w, p->channel_type);
    if (version >= 3) wr_u32(&w, p->expire);
    wr_str(&w, p->msg_key);
    if (topic) wr_str(&w, p->topic);
    wr_bytes(&w, p->payload);
    pkt_end(out, &w);
    return MP_OK;
}

int proto_encode_sendack(const proto_sendack *p, int version, mp_buf *out) {
    (void)version;
    sz s = {8 + 4 + 4 + 1, 0};
    wr w;
    int rc = pkt_begin(out, (uint8_t)(PROTO_SENDACK << 4 | (p->flags & 0x0F)), &s, &w);
    if (rc != MP_OK) return rc;
    wr_u64(&w, (uint64_t)p->message_id);
    wr_u32(&w, p->client_seq);
    wr_u32(&w, p->message_seq);
    wr_u8(&w, p->reason);
    pkt_end(out, &w);
    return MP_OK;
}

int proto_encode_recv(const proto_recv *p, int version, mp_buf *out) {
    version = norm_version(version);
    int stream = has_stream(version, p->setting);
    int topic = (p->setting & PROTO_SETTING_TOPIC) != 0;
    sz s = {1 + 1 + (version >= 3 ? 4 : 0) + (stream ? 1 + 8 : 0) + 8 + 4 + 4 + (uint64_t)p->payload.len, 0};
    sz_str(&s, p->msg_key);
    sz_str(&s, p->from_uid);
    sz_str(&s, p->channel_id);
    sz_str(&s, p->client_msg_no);
    if (stream) sz_str(&s, p->stream_no);
    if (topic) sz_str(&s, p->topic);
    wr w;
    int rc = pkt_begin(out, (uint8_t)(PROTO_RECV << 4 | (p->flags & 0x0F)), &s, &w);
    if (rc != MP_OK) return rc;
    wr_u8(&w, p->setting);
    wr_str(&w, p->msg_key);
    wr_str(&w, p->from_uid);
    wr_str(&w, p->channel_id);
    wr_u8(&w, p->channel_type);
    if (version >= 3) wr_u32(&w, p->expire);
    wr_str(&w, p->client_msg_no);
    if (stream) {
        wr_u8(&w, p->stream_flag);
        wr_str(&w, p->stream_no);
        wr_u64(&w, p->stream_id);
    }
    wr_u64(&w, (uint64_t)p->message_id);
    wr_u32(&w, p->message_seq);
    wr_u32(&w, (uint32_t)p->timestamp);
    if (topic) wr_str(&w, p->topic);
    wr_bytes(&w, p->payload);
    pkt_end(out, &w);
    return MP_OK;
}

int proto_encode_recvack(const proto_recvack *p, int version, mp_buf *out) {
    (void)version;
    sz s = {8 + 4, 0};
    wr w;
    int rc = pkt_begin(out, (uint8_t)(PROTO_RECVACK << 4 | (p->flags & 0x0F)), &s, &w);
    if (rc != MP_OK) return rc;
    wr_u64(&w, (uint64_t)p->message_id);
    wr_u32(&w, p->message_seq);
    pkt_end(out, &w);
    return MP_OK;
}

int proto_encode_disconnect(const proto_disconnect *p, mp_buf *out) {
    sz s = {1, 0};
    sz_str(&s, p->reason_text);
    wr w;
    int rc = pkt_begin(out, PROTO_DISCONNECT << 4, &s, &w);
    if (rc != MP_OK) return rc;
    wr_u8(&w, p->reason);
    wr_str(&w, p->reason_text);
    pkt_end(out, &w);
    return MP_OK;
}

int proto_encode_sub(const proto_sub *p, mp_buf *out) {
    sz s = {1 + 1 + 1, 0};
    sz_str(&s, p->sub_no);
    sz_str(&s, p->channel_id);
    sz_str(&s, p->param);
    wr w;
    int rc = pkt_begin(out, PROTO_SUB << 4, &s, &w);
    if (rc != MP_OK) return rc;
    wr_u8(&w, p->setting);
    wr_str(&w, p->sub_no);
    wr_str(&w, p->channel_id);
    wr_u8(&w, p->channel_type);
    wr_u8(&w, p->action);
    wr_str(&w, p->param);
    pkt_end(out, &w);
    return MP_OK;
}

int proto_encode_suback(const proto_suback *p, mp_buf *out) {
    sz s = {1 + 1 + 1, 0};
    sz_str(&s, p->sub_no);
    sz_str(&s, p->channel_id);
    wr w;
    int rc = pkt_begin(out, PROTO_SUBACK << 4, &s, &w);
    if (rc != MP_OK) return rc;
    wr_str(&w, p->sub_no);
    wr_str(&w, p->channel_id);
    wr_u8(&w, p->channel_type);
    wr_u8(&w, p->action);
    wr_u8(&w, p->reason);
    pkt_end(out, &w);
    return MP_OK;
}

int proto_encode_event(const proto_event *p, mp_buf *out) {
    sz s = {8 + (uint64_t)p->data.len, 0};
    sz_str(&s, p->id);
    sz_str(&s, p->type);
    wr w;
    int rc = pkt_begin(out, PROTO_EVENT << 4, &s, &w);
    if (rc != MP_OK) return rc;
    wr_str(&w, p->id);
    wr_str(&w, p->type);
    wr_u64(&w, (uint64_t)p->timestamp);
    wr_bytes(&w, p->data);
    pkt_end(out, &w);
    return MP_OK;
}

void proto_encode_ping(mp_buf *out) { mp_buf_append_u8(out, PROTO_PING << 4); }
void proto_encode_pong(mp_buf *out) { mp_buf_append_u8(out, PROTO_PONG << 4); }
