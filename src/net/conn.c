/* conn.c - listeners, connection I/O, WebSocket transport, idle and pre-auth timeouts,
 * and the cross-worker views of connections for monitoring (/connz, /varz) and the
 * /conn/kick and /conn/remove administration calls. */
#include "conn.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdatomic.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../common/idmap.h"
#include "../common/log.h"
#include "../common/metrics.h"
#include "../proto/packet.h"
#include "../session/jsonrpc.h"
#include "../session/session.h"
#include "ratelimit.h"
#include "tls.h"
#include "ws.h"

#define READ_BUF_SIZE (64 * 1024)
#define SWEEP_MS 250
#define IDLE_BUF_KEEP 4096 /* buffers larger than this are freed when empty */
#define CLOSE_LINGER_MS 5000 /* a graceful close that cannot flush by then is aborted */
#define REFUSE_LOG_MS 1000   /* refused connections are logged at most this often per worker */

struct conn_mgr {
    idmap *by_id; /* conn id -> conn */
    uint64_t next_id;
    uv_tcp_t tcp_listener, ws_listener, tls_listener, wss_listener;
    int have_tcp, have_ws, have_tls, have_wss;
    mp_buf tls_plain; /* decrypted bytes of the read being handled (TLS connections) */
    uv_timer_t sweep;
    uint64_t last_retry_scan_ms;
    uv_check_t flush;
    conn *dirty_head;
    char read_buf[READ_BUF_SIZE];
    int stopping;
    /* counters of connections already closed, so /varz totals cover the whole run */
    uint64_t closed_in_msgs, closed_out_msgs, closed_in_packet_bytes, closed_out_packet_bytes;
    uint64_t slow_clients;
    /* connections refused at accept (connRateLimit, maxConnections), logged in aggregate */
    uint64_t refused_rate, refused_max;
    mp_log_every refused_log;
};

static const mp_config *g_cfg;
static atomic_uint g_total_conns;

static void conn_really_close(conn *c);
static void conn_flush(conn *c);
static void conn_write_text(conn *c, const uint8_t *p, size_t n);
static int out_would_overflow(conn *c, size_t n);

/* ---- listeners ------------------------------------------------------------------- */

static int open_reuseport_socket(const char *addr, int *fd_out) {
    char host[256];
    int port;
    if (config_parse_hostport(addr, host, sizeof host, &port) != MP_OK) return MP_EINVAL;
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    socklen_t sl;
    int family;
    if (strchr(host, ':')) {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
        a->sin6_family = AF_INET6;
        a->sin6_port = htons((uint16_t)port);
        if (inet_pton(AF_INET6, host, &a->sin6_addr) != 1) return MP_EINVAL;
        sl = sizeof *a;
        family = AF_INET6;
    } else {
        struct sockaddr_in *a = (struct sockaddr_in *)&ss;
        a->sin_family = AF_INET;
        a->sin_port = htons((uint16_t)port);
        if (inet_pton(AF_INET, host[0] ? host : "0.0.0.0", &a->sin_addr) != 1) return MP_EINVAL;
        sl = sizeof *a;
        family = AF_INET;
    }
    int fd = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) return MP_EIO;
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
    if (bind(fd, (struct sockaddr *)&ss, sl) != 0 || listen(fd, 4096) != 0) {
        LOG_ERROR("net", "cannot listen on %s: %s", addr, strerror(errno));
        close(fd);
        return MP_EIO;
    }
    *fd_out = fd;
    return MP_OK;
}

static void on_accept(uv_stream_t *server, int status);

/* Listener kinds, stored in the listener's data. */
#define LISTEN_WS 1
#define LISTEN_TLS 2

static int start_listener(worker *w, uv_tcp_t *l, const char *addr, int kind) {
    int fd;
    int rc = open_reuseport_socket(addr, &fd);
    if (rc != MP_OK) return rc;
    uv_tcp_init(&w->loop, l);
    l->data = (void *)(intptr_t)kind;
    if (uv_tcp_open(l, fd) != 0 || uv_listen((uv_stream_t *)l, 4096, on_accept) != 0) {
        LOG_ERROR("net", "cannot listen on %s", addr);
        uv_close((uv_handle_t *)l, NULL); /* the loop finishes closing it at shutdown */
        return MP_EIO;
    }
    return MP_OK;
}

/* ---- connection lifecycle ---------------------------------------------------------- */

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
    (void)suggested;
    conn *c = h->data;
    /* One read buffer per worker: a read is consumed before the next alloc. */
    buf->base = c->w->conns->read_buf;
    buf->len = READ_BUF_SIZE;
}

static void maybe_shrink(mp_buf *b) {
    if (b->len == 0 && b->cap > IDLE_BUF_KEEP) mp_buf_free(b);
}

/* Packet counters as WuKongIM keeps them per connection: every packet, and SENDs apart;
 * and by packet type in the worker's /metrics slot. */
static void count_in(conn *c, const proto_frame *f) {
    c->in_packets++;
    c->in_packet_bytes += f->total_len;
    if (f->type == PROTO_SEND) c->in_msg_bytes += f->total_len;
    mt_worker *m = mt_worker_slot(c->w->index);
    m->pkt_in[f->type & (MT_PKT_TYPES - 1)]++;
    m->bytes_in[f->type & (MT_PKT_TYPES - 1)] += f->total_len;
}

static void count_out(conn *c, const uint8_t *p, size_t n) {
    c->out_packets++;
    c->out_packet_bytes += n;
    uint8_t type = n ? (uint8_t)(p[0] >> 4) : 0;
    if (type == PROTO_RECV) c->out_msg_bytes += n;
    mt_worker *m = mt_worker_slot(c->w->index);
    m->pkt_out[type]++;
    m->bytes_out[type] += n;
}

/* Packets are parsed before and after authentication, not while CONNECT is being
 * registered (CONN_AUTHING): what a client pipelines behind its CONNECT waits in c->in
 * (or c->ws_data) until conn_input_resume, so nothing is answered before the CONNACK. */
static int takes_packets(const conn *c) { return c->state == CONN_PREAUTH || c->state == CONN_READY; }

/* JSON-RPC input: each complete object becomes the binary packet it stands for (handed
 * to the session like any other) and/or a direct answer. Returns bytes consumed or <0. */
static ssize_t parse_rpc(conn *c, const uint8_t *p, size_t n) {
    size_t off = 0;
    mp_buf pkt = MP_BUF_INIT, reply = MP_BUF_INIT;
    int rc = MP_OK;
    while (off < n && takes_packets(c) && rc == MP_OK) {
        size_t start, len;
        rc = jsonrpc_next(p + off, n - off, g_cfg->max_packet_size, &start, &len);
        if (rc == MP_EAGAIN) {
            rc = MP_OK;
            break;
        }
        if (rc != MP_OK) break;
        pkt.len = reply.len = 0;
        rc = jsonrpc_request(c->rpc, (const char *)p + off + start, len, c->state == CONN_READY ? c->version : 5, &pkt,
                             &reply);
        off += start + len;
        c->in_bytes += start + len;
        if (reply.len) conn_write_text(c, reply.data, reply.len);
        proto_frame f;
        if (rc == MP_OK && pkt.len && proto_frame_parse(pkt.data, pkt.len, UINT32_MAX, &f) == MP_OK) {
            count_in(c, &f);
            rc = session_on_packet(c, &f);
        }
    }
    mp_buf_free(&pkt);
    mp_buf_free(&reply);
    if (rc != MP_OK) {
        LOG_DEBUG("net", "bad JSON-RPC input conn=%llu err=\"%s\"", (unsigned long long)c->id, mp_strerror(rc));
        return rc;
    }
    return (ssize_t)off;
}

/* Parse protocol packets from p[0..n); returns bytes consumed or <0 to close. */
static ssize_t parse_packets(conn *c, const uint8_t *p, size_t n) {
    if (!c->rpc && c->state == CONN_PREAUTH && c->in_bytes == 0 && !g_cfg->disable_jsonrpc) {
        int is_rpc = jsonrpc_detect(p, n); /* the first byte decides, for good */
        if (is_rpc == MP_EAGAIN) return 0;
        if (is_rpc) c->rpc = jsonrpc_new();
    }
    if (c->rpc) return parse_rpc(c, p, n);
    size_t off = 0;
    while (off < n && takes_packets(c)) {
        proto_frame f;
        int rc = proto_frame_parse(p + off, n - off, g_cfg->max_packet_size, &f);
        if (rc == MP_EAGAIN) break;
        if (rc != MP_OK) {
            LOG_DEBUG("net", "bad packet conn=%llu err=\"%s\"", (unsigned long long)c->id, mp_strerror(rc));
            return rc;
        }
        c->in_bytes += f.total_len;
        count_in(c, &f);
        rc = session_on_packet(c, &f);
        if (rc != MP_OK) return rc;
        off += f.total_len;
    }
    return (ssize_t)off;
}

/* Feed protocol-stream bytes (TCP data, or WebSocket data-frame payloads). */
static int feed_packets(conn *c, mp_buf *pending, const uint8_t *p, size_t n) {
    if (pending->len == 0) {
        ssize_t used = parse_packets(c, p, n);
        if (used < 0) return (int)used;
        if ((size_t)used < n && c->state != CONN_CLOSING) mp_buf_append(pending, p + used, n - (size_t)used);
        return MP_OK;
    }
    mp_buf_append(pending, p, n);
    ssize_t used = parse_packets(c, pending->data, pending->len);
    if (used < 0) return (int)used;
    mp_buf_consume(pending, (size_t)used);
    maybe_shrink(pending);
    return MP_OK;
}

/* WebSocket input: handshake, then frames. p is writable (frames are unmasked in place).
 * Returns bytes consumed or <0 to close. */
static ssize_t ws_input(conn *c, uint8_t *p, size_t n) {
    size_t off = 0;
    if (c->state == CONN_WS_HANDSHAKE) {
        char accept[29];
        size_t used;
        int rc = ws_handshake_parse(p, n, &used, accept, NULL, 0);
        if (rc == MP_EAGAIN) return 0;
        mp_buf resp = MP_BUF_INIT;
        if (rc != MP_OK) {
            ws_handshake_reject(&resp);
            mp_buf_append(&c->out, resp.data, resp.len);
            mp_buf_free(&resp);
            conn_close(c, "bad websocket handshake");
            return (ssize_t)n;
        }
        ws_handshake_response(accept, &resp);
        mp_buf_append(&c->out, resp.data, resp.len);
        mp_buf_free(&resp);
        conn_flush(c);
        c->state = CONN_PREAUTH;
        off = used;
    }
    uint64_t max_payload = (uint64_t)g_cfg->max_packet_size * 2 + 1024;
    while (off < n && c->state != CONN_CLOSING) {
        ws_frame f;
        size_t used;
        int rc = ws_frame_parse(p + off, n - off, max_payload, &used, &f);
        if (rc == MP_EAGAIN) break;
        if (rc != MP_OK) return rc;
        off += used;
        switch (f.opcode) {
        case WS_OP_CONT:
        case WS_OP_TEXT:
        case WS_OP_BINARY:
            rc = feed_packets(c, &c->ws_data, f.payload, (size_t)f.payload_len);
            if (rc != MP_OK) return rc;
            break;
        case WS_OP_PING: {
            if (out_would_overflow(c, (size_t)f.payload_len + 2)) return MP_ETOOBIG;
            uint8_t hdr[10];
            size_t hl = ws_frame_header(WS_OP_PONG, f.payload_len, hdr);
            mp_buf_append(&c->out, hdr, hl);
            mp_buf_append(&c->out, f.payload, (size_t)f.payload_len);
            conn_flush(c);
            break;
        }
        case WS_OP_CLOSE: {
            if (out_would_overflow(c, 4)) return MP_ETOOBIG;
            uint8_t hdr[10];
            size_t hl = ws_frame_header(WS_OP_CLOSE, f.payload_len >= 2 ? 2 : 0, hdr);
            mp_buf_append(&c->out, hdr, hl);
            if (f.payload_len >= 2) mp_buf_append(&c->out, f.payload, 2);
            conn_close(c, "websocket close");
            return (ssize_t)n;
        }
        default: break; /* PONG: nothing to do */
        }
    }
    return (ssize_t)off;
}

static int handle_input(conn *c, uint8_t *p, size_t n, size_t *consumed) {
    if (!c->is_ws) {
        ssize_t used = parse_packets(c, p, n);
        if (used < 0) return (int)used;
        *consumed = (size_t)used;
        return MP_OK;
    }
    ssize_t used = ws_input(c, p, n);
    if (used < 0) return (int)used;
    *consumed = (size_t)used;
    return MP_OK;
}

/* Plaintext stream bytes (p writable: WebSocket frames are unmasked in place). */
static int stream_input(conn *c, uint8_t *p, size_t n) {
    size_t used = 0;
    int rc;
    if (c->in.len == 0) {
        rc = handle_input(c, p, n, &used);
        if (rc == MP_OK && used < n && c->state != CONN_CLOSING) mp_buf_append(&c->in, p + used, n - used);
    } else {
        mp_buf_append(&c->in, p, n);
        rc = handle_input(c, c->in.data, c->in.len, &used);
        if (rc == MP_OK) {
            mp_buf_consume(&c->in, used);
            maybe_shrink(&c->in);
        }
    }
    return rc;
}

/* TLS records in: decrypt into the worker's scratch buffer, handle the plaintext, and
 * send what the session has to say (handshake answers first). */
static int tls_input(conn *c, const uint8_t *p, size_t n) {
    mp_buf *plain = &c->w->conns->tls_plain;
    plain->len = 0;
    int rc = tls_conn_input(c->tls, p, n, plain);
    if (plain->len && c->state != CONN_CLOSING) {
        int prc = stream_input(c, plain->data, plain->len);
        if (rc == MP_OK) rc = prc;
    }
    if (plain->cap > IDLE_BUF_KEEP * 4) mp_buf_free(plain);
    if (tls_conn_wire(c->tls)->len) conn_flush(c);
    return rc == MP_ECLOSED ? MP_OK : rc;
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
    conn *c = s->data;
    if (nread < 0) {
        conn_really_close(c);
        return;
    }
    if (nread == 0 || c->state == CONN_CLOSING) return;
    c->last_recv_ms = mp_mono_ms();
    int rc = c->tls ? tls_input(c, (const uint8_t *)buf->base, (size_t)nread)
                    : stream_input(c, (uint8_t *)buf->base, (size_t)nread);
    if (rc != MP_OK) conn_close(c, mp_strerror(rc));
    else if (c->state == CONN_AUTHING) uv_read_stop(s); /* conn_input_resume restarts it */
}

void conn_input_resume(conn *c) {
    if (c->state != CONN_READY) return;
    int rc = MP_OK;
    if (c->is_ws && c->ws_data.len) { /* packet bytes of WebSocket frames already decoded */
        ssize_t used = parse_packets(c, c->ws_data.data, c->ws_data.len);
        if (used < 0) rc = (int)used;
        else mp_buf_consume(&c->ws_data, (size_t)used);
    }
    if (rc == MP_OK && c->in.len && c->state == CONN_READY) {
        size_t used = 0;
        rc = handle_input(c, c->in.data, c->in.len, &used);
        if (rc == MP_OK) mp_buf_consume(&c->in, used);
    }
    if (rc != MP_OK) {
        conn_close(c, mp_strerror(rc));
        return;
    }
    maybe_shrink(&c->in);
    maybe_shrink(&c->ws_data);
    if (c->state == CONN_READY) uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
    else if (c->state == CONN_AUTHING) uv_read_stop((uv_stream_t *)&c->tcp);
}

static void on_closed(uv_handle_t *h) {
    conn *c = h->data;
    struct conn_mgr *m = c->w->conns;
    session_on_close(c);
    jsonrpc_free(c->rpc);
    idmap_del(m->by_id, c->id);
    m->closed_in_msgs += c->in_msgs;
    m->closed_out_msgs += c->out_msgs;
    m->closed_in_packet_bytes += c->in_packet_bytes;
    m->closed_out_packet_bytes += c->out_packet_bytes;
    atomic_fetch_sub(&g_total_conns, 1);
    mp_buf_free(&c->in);
    mp_buf_free(&c->ws_data);
    mp_buf_free(&c->out);
    mp_buf_free(&c->wbuf);
    tls_conn_free(c->tls);
    free(c);
}

static void conn_really_close(conn *c) {
    if (uv_is_closing((uv_handle_t *)&c->tcp)) return;
    c->state = CONN_CLOSING;
    uv_close((uv_handle_t *)&c->tcp, on_closed);
}

/* Fill c->ip and c->port; addr/alen get the raw address (for the per-IP rate table). */
static void peer_address(conn *c, uint8_t addr[16], size_t *alen) {
    struct sockaddr_storage ss;
    int sl = sizeof ss;
    *alen = 0;
    if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &sl) != 0) return;
    if (ss.ss_family == AF_INET) {
        struct sockaddr_in *a = (struct sockaddr_in *)&ss;
        uv_ip4_name(a, c->ip, sizeof c->ip);
        c->port = ntohs(a->sin_port);
        memcpy(addr, &a->sin_addr, 4);
        *alen = 4;
    } else if (ss.ss_family == AF_INET6) {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
        uv_ip6_name(a, c->ip, sizeof c->ip);
        c->port = ntohs(a->sin6_port);
        int v4 = IN6_IS_ADDR_V4MAPPED(&a->sin6_addr); /* one bucket per IPv4 address either way */
        memcpy(addr, v4 ? a->sin6_addr.s6_addr + 12 : a->sin6_addr.s6_addr, v4 ? 4 : 16);
        *alen = v4 ? 4 : 16;
    }
}

static int is_loopback(const uint8_t *addr, size_t alen) {
    static const uint8_t v6_loopback[16] = {[15] = 1};
    return (alen == 4 && addr[0] == 127) || (alen == 16 && memcmp(addr, v6_loopback, 16) == 0);
}

/* connRateLimit: 1 if this source may open another connection now. */
static int rate_allows(const conn *c, const uint8_t *addr, size_t alen) {
    uint32_t rate = g_cfg->conn_rate_limit;
    if (rate == 0 || alen == 0 || (!g_cfg->conn_rate_loopback && is_loopback(addr, alen))) return 1;
    uint32_t burst = g_cfg->conn_rate_burst ? g_cfg->conn_rate_burst : rate;
    return rl_ip_allow(addr, alen, uv_now(c->tcp.loop), rate, burst);
}

/* Count a connection refused at accept; log the refusals of the last second once. */
static void note_refused(struct conn_mgr *m, const conn *c, int over_rate) {
    if (over_rate) m->refused_rate++;
    else m->refused_max++;
    uint64_t n = mp_log_every_due(&m->refused_log, uv_now(c->tcp.loop), REFUSE_LOG_MS);
    if (!n) return;
    LOG_WARN("net", "refused connections at accept count=%llu last_ip=%s limit=%s over_rate_total=%llu "
             "connRateLimit=%u over_max_total=%llu maxConnections=%u",
             (unsigned long long)n, c->ip[0] ? c->ip : "?",
             over_rate ? "connRateLimit" : "maxConnections", (unsigned long long)m->refused_rate,
             g_cfg->conn_rate_limit, (unsigned long long)m->refused_max, g_cfg->max_connections);
}

static void on_accept(uv_stream_t *server, int status) {
    if (status < 0) return;
    worker *w = server->loop->data;
    struct conn_mgr *m = w->conns;
    conn *c = mp_calloc(1, sizeof *c);
    uv_tcp_init(&w->loop, &c->tcp);
    c->tcp.data = c;
    if (uv_accept(server, (uv_stream_t *)&c->tcp) != 0) {
        uv_close((uv_handle_t *)&c->tcp, (uv_close_cb)free);
        return;
    }
    uint8_t addr[16];
    size_t alen;
    peer_address(c, addr, &alen);
    if (!rate_allows(c, addr, alen)) {
        note_refused(m, c, 1);
        uv_close((uv_handle_t *)&c->tcp, (uv_close_cb)free);
        return;
    }
    if (atomic_fetch_add(&g_total_conns, 1) >= g_cfg->max_connections) {
        atomic_fetch_sub(&g_total_conns, 1);
        note_refused(m, c, 0);
        uv_close((uv_handle_t *)&c->tcp, (uv_close_cb)free);
        return;
    }
    c->w = w;
    c->id = (++m->next_id << CONN_WORKER_BITS) | (uint64_t)w->index;
    int kind = (int)(intptr_t)server->data;
    c->is_ws = (kind & LISTEN_WS) != 0;
    c->state = c->is_ws ? CONN_WS_HANDSHAKE : CONN_PREAUTH;
    if ((kind & LISTEN_TLS) && !(c->tls = tls_conn_new())) {
        uv_close((uv_handle_t *)&c->tcp, (uv_close_cb)free);
        atomic_fetch_sub(&g_total_conns, 1);
        return;
    }
    c->created_ms = c->last_recv_ms = mp_mono_ms();
    uv_tcp_nodelay(&c->tcp, 1);
    idmap_put(m->by_id, c->id, c);
    uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
}

/* ---- output ------------------------------------------------------------------------- */

static void mark_dirty(conn *c) {
    if (c->dirty) return;
    struct conn_mgr *m = c->w->conns;
    c->dirty = 1;
    c->dirty_next = m->dirty_head;
    m->dirty_head = c;
}

/* Over outBufferLimit (a client that does not read): drop the output and abort the
 * connection; 1 if so. */
static int out_would_overflow(conn *c, size_t n) {
    size_t queued = c->out.len + c->wbuf.len + (c->tls ? tls_conn_wire(c->tls)->len : 0);
    if (queued + n <= g_cfg->out_buffer_limit) return 0;
    LOG_WARN("net", "closing slow client: output over outBufferLimit conn=%llu uid=%s outBufferLimit=%llu",
             (unsigned long long)c->id, c->uid ? c->uid : "", (unsigned long long)g_cfg->out_buffer_limit);
    c->w->conns->slow_clients++;
    c->out.len = 0;
    conn_really_close(c);
    return 1;
}

/* Queue JSON text: one WebSocket text message, or raw bytes on TCP. */
static void conn_write_text(conn *c, const uint8_t *p, size_t n) {
    if (c->state == CONN_CLOSING && uv_is_closing((uv_handle_t *)&c->tcp)) return;
    if (out_would_overflow(c, n + 10)) return;
    if (c->is_ws) {
        uint8_t hdr[10];
        size_t hl = ws_frame_header(WS_OP_TEXT, n, hdr);
        mp_buf_append(&c->out, hdr, hl);
    }
    mp_buf_append(&c->out, p, n);
    c->out_bytes += n;
    mark_dirty(c);
}

/* A JSON-RPC connection gets the JSON form of the packet (or nothing, if it has none). */
static void write_packet_as_rpc(conn *c, const uint8_t *p, size_t n) {
    mp_buf json = MP_BUF_INIT;
    if (jsonrpc_from_packet(c->rpc, p, n, c->version ? c->version : 5, &json) == MP_OK)
        conn_write_text(c, json.data, json.len);
    mp_buf_free(&json);
}

void conn_write_packet(conn *c, const uint8_t *p, size_t n) {
    if (c->state == CONN_CLOSING && uv_is_closing((uv_handle_t *)&c->tcp)) return;
    if (c->rpc) {
        count_out(c, p, n);
        write_packet_as_rpc(c, p, n);
        return;
    }
    if (out_would_overflow(c, n + 10)) return;
    count_out(c, p, n);
    if (c->is_ws) {
        uint8_t hdr[10];
        size_t hl = ws_frame_header(WS_OP_BINARY, n, hdr);
        mp_buf_append(&c->out, hdr, hl);
    }
    mp_buf_append(&c->out, p, n);
    c->out_bytes += n;
    mark_dirty(c);
}

static void on_write(uv_write_t *req, int status) {
    conn *c = req->data;
    c->writing = 0;
    c->wbuf.len = 0;
    maybe_shrink(&c->wbuf);
    if (status < 0) {
        conn_really_close(c);
        return;
    }
    if (c->out.len || (c->tls && tls_conn_wire(c->tls)->len)) conn_flush(c);
    else if (c->state == CONN_CLOSING) conn_really_close(c);
}

/* The bytes that go to the socket: the output itself, or for TLS the records it was
 * encrypted into (NULL if encryption failed: the connection is closed). */
static mp_buf *wire_of(conn *c) {
    if (!c->tls) return &c->out;
    if (c->out.len) {
        int rc = tls_conn_output(c->tls, c->out.data, c->out.len);
        c->out.len = 0;
        maybe_shrink(&c->out);
        if (rc != MP_OK) {
            conn_really_close(c);
            return NULL;
        }
    }
    return tls_conn_wire(c->tls);
}

static void conn_flush(conn *c) {
    if (c->writing || uv_is_closing((uv_handle_t *)&c->tcp)) return;
    mp_buf *src = wire_of(c);
    if (!src) return;
    if (src->len == 0) {
        if (c->state == CONN_CLOSING) conn_really_close(c);
        return;
    }
    uv_buf_t b = uv_buf_init((char *)src->data, (unsigned)src->len);
    int n = uv_try_write((uv_stream_t *)&c->tcp, &b, 1);
    if (n == (int)src->len) {
        src->len = 0;
        maybe_shrink(src);
        if (c->state == CONN_CLOSING) conn_really_close(c);
        return;
    }
    if (n < 0 && n != UV_EAGAIN) {
        conn_really_close(c);
        return;
    }
    if (n > 0) mp_buf_consume(src, (size_t)n);
    mp_buf tmp = c->wbuf;
    c->wbuf = *src;
    *src = tmp;
    src->len = 0;
    c->writing = 1;
    c->wreq.data = c;
    b = uv_buf_init((char *)c->wbuf.data, (unsigned)c->wbuf.len);
    if (uv_write(&c->wreq, (uv_stream_t *)&c->tcp, &b, 1, on_write) != 0) {
        c->writing = 0;
        conn_really_close(c);
    }
}

/* Once per loop iteration, after I/O callbacks: flush everything queued. */
static void on_flush_check(uv_check_t *h) {
    struct conn_mgr *m = h->data;
    conn *c = m->dirty_head;
    m->dirty_head = NULL;
    while (c) {
        conn *next = c->dirty_next;
        c->dirty = 0;
        c->dirty_next = NULL;
        conn_flush(c);
        c = next;
    }
}

void conn_close(conn *c, const char *why) {
    if (c->state == CONN_CLOSING) return;
    LOG_DEBUG("net", "closing conn=%llu why=\"%s\"", (unsigned long long)c->id, why);
    c->state = CONN_CLOSING;
    c->closing_since_ms = mp_mono_ms();
    uv_read_stop((uv_stream_t *)&c->tcp);
    conn_flush(c);
}

void conn_close_after(conn *c, uint32_t delay_ms) {
    uint64_t at = mp_mono_ms() + delay_ms;
    if (c->close_at_ms == 0 || at < c->close_at_ms) c->close_at_ms = at;
}

/* ---- timers ------------------------------------------------------------------------- */

typedef struct sweep_ctx {
    uint64_t now;
    int retries; /* messageRetry.scanInterval has elapsed: look at unacknowledged RECVs */
} sweep_ctx;

static int sweep_one(void *ctx, uint64_t id, void *val) {
    (void)id;
    const sweep_ctx *sc = ctx;
    uint64_t now = sc->now;
    conn *c = val;
    if (c->state == CONN_CLOSING) {
        if (c->closing_since_ms && now - c->closing_since_ms >= CLOSE_LINGER_MS) conn_really_close(c);
        return 0;
    }
    if (c->close_at_ms && now >= c->close_at_ms) {
        conn_close(c, "kicked");
        return 0;
    }
    uint64_t idle = now - c->last_recv_ms;
    if (c->state != CONN_READY && now - c->created_ms >= g_cfg->preauth_timeout_ms) {
        conn_close(c, "pre-auth timeout");
        return 0;
    }
    if (c->state == CONN_READY && idle >= g_cfg->conn_idle_ms) {
        conn_close(c, "idle timeout");
        return 0;
    }
    if (c->state == CONN_READY && sc->retries) session_sweep(c, now);
    return 0;
}

static void on_sweep(uv_timer_t *t) {
    struct conn_mgr *m = t->data;
    sweep_ctx sc = {mp_mono_ms(), 0};
    if (sc.now - m->last_retry_scan_ms >= g_cfg->retry_scan_ms) {
        sc.retries = 1;
        m->last_retry_scan_ms = sc.now;
    }
    idmap_foreach(m->by_id, sweep_one, &sc);
}

/* ---- worker setup ------------------------------------------------------------------- */

int net_worker_start(worker *w, const mp_config *cfg) {
    g_cfg = cfg;
    struct conn_mgr *m = mp_calloc(1, sizeof *m);
    m->by_id = idmap_new();
    w->conns = m;
    uv_timer_init(&w->loop, &m->sweep);
    m->sweep.data = m;
    uint64_t period = MP_MIN(SWEEP_MS, cfg->retry_scan_ms); /* timeouts, kicks and retry scans */
    uv_timer_start(&m->sweep, on_sweep, period, period);
    uv_check_init(&w->loop, &m->flush);
    m->flush.data = m;
    uv_check_start(&m->flush, on_flush_check);
    int rc = start_listener(w, &m->tcp_listener, cfg->addr, 0);
    if (rc != MP_OK) return rc;
    m->have_tcp = 1;
    rc = start_listener(w, &m->ws_listener, cfg->ws_addr, LISTEN_WS);
    if (rc != MP_OK) return rc;
    m->have_ws = 1;
    if (cfg->tls_addr[0]) {
        if ((rc = start_listener(w, &m->tls_listener, cfg->tls_addr, LISTEN_TLS)) != MP_OK) return rc;
        m->have_tls = 1;
    }
    if (cfg->wss_addr[0]) {
        if ((rc = start_listener(w, &m->wss_listener, cfg->wss_addr, LISTEN_WS | LISTEN_TLS)) != MP_OK) return rc;
        m->have_wss = 1;
    }
    return MP_OK;
}

static int close_each(void *ctx, uint64_t id, void *val) {
    (void)ctx;
    (void)id;
    conn *c = val;
    session_on_close(c); /* tell the presence owner now, while its worker still runs */
    conn_really_close(c);
    return 0;
}


void net_worker_stop(worker *w) {
    struct conn_mgr *m = w->conns;
    if (!m) return;
    m->stopping = 1;
    if (m->have_tcp) uv_close((uv_handle_t *)&m->tcp_listener, NULL);
    if (m->have_ws) uv_close((uv_handle_t *)&m->ws_listener, NULL);
    if (m->have_tls) uv_close((uv_handle_t *)&m->tls_listener, NULL);
    if (m->have_wss) uv_close((uv_handle_t *)&m->wss_listener, NULL);
    uv_timer_stop(&m->sweep);
    uv_close((uv_handle_t *)&m->sweep, NULL);
    uv_check_stop(&m->flush);
    uv_close((uv_handle_t *)&m->flush, NULL);
    idmap_foreach(m->by_id, close_each, NULL);
}

void net_worker_free(worker *w) {
    if (!w->conns) return;
    idmap_free(w->conns->by_id); /* connections were freed by their close callbacks */
    mp_buf_free(&w->conns->tls_plain);
    free(w->conns);
    w->conns = NULL;
}

conn *conn_find(worker *w, uint64_t id) {
    conn *c = idmap_get(w->conns->by_id, id);
    return (c && !uv_is_closing((uv_handle_t *)&c->tcp)) ? c : NULL;
}

struct foreach_ctx {
    void (*cb)(conn *, void *);
    void *ctx;
};

static int foreach_one(void *ctx, uint64_t id, void *val) {
    (void)id;
    struct foreach_ctx *f = ctx;
    f->cb(val, f->ctx);
    return 0;
}

void conn_foreach(worker *w, void (*cb)(conn *c, void *ctx), void *ctx) {
    struct foreach_ctx f = {cb, ctx};
    idmap_foreach(w->conns->by_id, foreach_one, &f);
}

size_t conn_count(worker *w) { return idmap_count(w->conns->by_id); }

uint64_t conn_total(void) { return atomic_load(&g_total_conns); }

/* ---- cross-worker views (worker_gather) ------------------------------------------------ */

typedef worker_gather gather;

/* -- conn_list -- */

typedef struct info_vec {
    conn_info *v;
    size_t n, cap, total;
} info_vec;

typedef struct list_job {
    gather g; /* first member: the gather callbacks get the job */
    int sort, desc;
    size_t keep;
    mp_str uid_part; /* points into text */
    conn_list_fn done;
    void *ctx;
    info_vec part[MP_MAX_WORKERS];
    char text[];
} list_job;

static uint64_t sort_value(const conn_info *i, int sort) {
    switch (sort) {
    case CONN_SORT_IN_MSGS: return i->in_msgs;
    case CONN_SORT_OUT_MSGS: return i->out_msgs;
    case CONN_SORT_IN_MSG_BYTES: return i->in_msg_bytes;
    case CONN_SORT_OUT_MSG_BYTES: return i->out_msg_bytes;
    case CONN_SORT_IN_PACKETS: return i->in_packets;
    case CONN_SORT_OUT_PACKETS: return i->out_packets;
    case CONN_SORT_IN_PACKET_BYTES: return i->in_packet_bytes;
    case CONN_SORT_OUT_PACKET_BYTES: return i->out_packet_bytes;
    case CONN_SORT_PENDING_BYTES: return i->pending_bytes;
    case CONN_SORT_CREATED: return i->created_ms;
    case CONN_SORT_LAST_RECV: return i->last_recv_ms;
    case CONN_SORT_VERSION: return i->version;
    default: return i->id;
    }
}

/* sort_key already holds the value, bit-inverted for a descending order. */
static int by_sort_key(const void *a, const void *b) {
    const conn_info *x = a, *y = b;
    if (x->sort_key != y->sort_key) return x->sort_key < y->sort_key ? -1 : 1;
    return x->id < y->id ? -1 : (x->id > y->id ? 1 : 0);
}

static void info_free(conn_info *i) {
    free(i->uid);
    free(i->device_id);
}

/* Sort v and drop what lies beyond keep. */
static void info_vec_trim(info_vec *v, size_t keep) {
    if (v->n > 1) qsort(v->v, v->n, sizeof *v->v, by_sort_key);
    while (v->n > keep) info_free(&v->v[--v->n]);
}

static int uid_matches(const conn *c, mp_str part) {
    if (!part.len) return 1;
    return memmem(c->uid, strlen(c->uid), part.p, part.len) != NULL;
}

static void snapshot(const conn *c, conn_info *i) {
    memset(i, 0, sizeof *i);
    i->id = c->id;
    i->uid = mp_strndup(c->uid, strlen(c->uid));
    i->device_id = mp_strndup(c->device_id ? c->device_id : "", c->device_id ? strlen(c->device_id) : 0);
    memcpy(i->ip, c->ip, sizeof i->ip);
    i->port = c->port;
    i->created_ms = c->created_ms;
    i->last_recv_ms = c->last_recv_ms;
    i->pending_bytes = c->out.len + c->wbuf.len;
    i->in_msgs = c->in_msgs;
    i->out_msgs = c->out_msgs;
    i->in_msg_bytes = c->in_msg_bytes;
    i->out_msg_bytes = c->out_msg_bytes;
    i->in_packets = c->in_packets;
    i->out_packets = c->out_packets;
    i->in_packet_bytes = c->in_packet_bytes;
    i->out_packet_bytes = c->out_packet_bytes;
    i->device_flag = c->device_flag;
    i->device_level = c->device_level;
    i->version = c->version;
}

static int list_one(void *ctx, uint64_t id, void *val) {
    (void)id;
    list_job *j = ctx;
    const conn *c = val;
    if (c->state != CONN_READY || !c->uid || !uid_matches(c, j->uid_part)) return 0;
    info_vec *v = &j->part[c->w->index];
    v->total++;
    if (v->n == v->cap) {
        v->cap = v->cap ? v->cap * 2 : 16;
        v->v = mp_realloc(v->v, v->cap * sizeof *v->v);
    }
    conn_info *i = &v->v[v->n++];
    snapshot(c, i);
    uint64_t k = sort_value(i, j->sort);
    i->sort_key = j->desc ? ~k : k;
    /* Bound the memory of a worker with many connections: keep at most 2 * keep. */
    if (v->n >= 2 * j->keep + 64) info_vec_trim(v, j->keep);
    return 0;
}

static void list_collect(worker *w, gather *g) {
    list_job *j = (list_job *)g;
    idmap_foreach(w->conns->by_id, list_one, j);
    info_vec_trim(&j->part[w->index], j->keep);
}

static void list_finish(gather *g) {
    list_job *j = (list_job *)g;
    info_vec all = {0};
    for (int i = 0; i < workers_count(); i++) {
        info_vec *p = &j->part[i];
        all.total += p->total;
        if (all.n + p->n > all.cap) {
            all.cap = all.n + p->n;
            all.v = mp_realloc(all.v, all.cap * sizeof *all.v);
        }
        if (p->n) memcpy(all.v + all.n, p->v, p->n * sizeof *p->v); /* takes the strings */
        all.n += p->n;
        free(p->v);
    }
    info_vec_trim(&all, j->keep);
    j->done(j->ctx, all.v, all.n, all.total);
    for (size_t i = 0; i < all.n; i++) info_free(&all.v[i]);
    free(all.v);
    free(j);
}

void conn_list(const conn_query *q, conn_list_fn done, void *ctx) {
    list_job *j = mp_calloc(1, sizeof *j + q->uid_part.len + 1);
    memcpy(j->text, q->uid_part.p ? q->uid_part.p : "", q->uid_part.len);
    j->uid_part = (mp_str){j->text, q->uid_part.len};
    j->sort = q->sort;
    j->desc = q->desc;
    j->keep = MP_MIN(q->keep, (size_t)1 << 40); /* a huge offset must not overflow 2 * keep */
    j->done = done;
    j->ctx = ctx;
    j->g.collect = list_collect;
    j->g.finish = list_finish;
    worker_gather_start(&j->g);
}

/* -- conn_stats_gather -- */

typedef struct stats_job {
    gather g;
    conn_stats_fn done;
    void *ctx;
    conn_stats part[MP_MAX_WORKERS];
} stats_job;

static int stats_one(void *ctx, uint64_t id, void *val) {
    (void)id;
    conn_stats *s = ctx;
    const conn *c = val;
    s->in_msgs += c->in_msgs;
    s->out_msgs += c->out_msgs;
    s->in_packet_bytes += c->in_packet_bytes;
    s->out_packet_bytes += c->out_packet_bytes;
    s->pending_recvs += c->n_pending;
    return 0;
}

static void stats_collect(worker *w, gather *g) {
    stats_job *j = (stats_job *)g;
    struct conn_mgr *m = w->conns;
    conn_stats *s = &j->part[w->index];
    s->in_msgs = m->closed_in_msgs;
    s->out_msgs = m->closed_out_msgs;
    s->in_packet_bytes = m->closed_in_packet_bytes;
    s->out_packet_bytes = m->closed_out_packet_bytes;
    s->slow_clients = m->slow_clients;
    s->refused_max = m->refused_max;
    s->refused_rate = m->refused_rate;
    idmap_foreach(m->by_id, stats_one, s);
}

static void stats_finish(gather *g) {
    stats_job *j = (stats_job *)g;
    conn_stats sum = {0};
    for (int i = 0; i < workers_count(); i++) {
        const conn_stats *p = &j->part[i];
        sum.in_msgs += p->in_msgs;
        sum.out_msgs += p->out_msgs;
        sum.in_packet_bytes += p->in_packet_bytes;
        sum.out_packet_bytes += p->out_packet_bytes;
        sum.slow_clients += p->slow_clients;
        sum.refused_max += p->refused_max;
        sum.refused_rate += p->refused_rate;
        sum.pending_recvs += p->pending_recvs;
    }
    sum.conns = conn_total();
    j->done(j->ctx, &sum);
    free(j);
}

void conn_stats_gather(conn_stats_fn done, void *ctx) {
    stats_job *j = mp_calloc(1, sizeof *j);
    j->done = done;
    j->ctx = ctx;
    j->g.collect = stats_collect;
    j->g.finish = stats_finish;
    worker_gather_start(&j->g);
}

/* -- conn_admin -- */

typedef struct admin_job {
    uint64_t id;
    int op;
    int origin;
    int acted;
    uint32_t delay_ms;
    conn_admin_fn done;
    void *ctx;
    char uid[];
} admin_job;

static void admin_back(worker *w, void *arg) {
    (void)w;
    admin_job *j = arg;
    j->done(j->ctx, j->acted);
    free(j);
}

static void admin_run(worker *w, void *arg) {
    admin_job *j = arg;
    conn *c = conn_find(w, j->id);
    /* A uid in the request names the connection's owner: a mismatch is a stale id. */
    if (c && c->state != CONN_CLOSING && (!j->uid[0] || (c->uid && strcmp(c->uid, j->uid) == 0))) {
        j->acted = 1;
        if (j->op == CONN_ADMIN_KICK) session_kick(w, c->id, REASON_CONNECT_KICK, "server kick", j->delay_ms);
        else conn_close(c, "removed by /conn/remove");
    }
    worker_post(j->origin, admin_back, j);
}

void conn_admin(uint64_t id, mp_str uid, int op, uint32_t delay_ms, conn_admin_fn done, void *ctx) {
    worker *self = worker_current();
    MP_ASSERT(self);
    admin_job *j = mp_calloc(1, sizeof *j + uid.len + 1);
    memcpy(j->uid, uid.p ? uid.p : "", uid.len);
    j->id = id;
    j->op = op;
    j->origin = self->index;
    j->delay_ms = delay_ms;
    j->done = done;
    j->ctx = ctx;
    int w = conn_worker_of(id);
    if (w >= workers_count()) { /* no such worker: the id was never issued */
        admin_back(self, j);
        return;
    }
    worker_post(w, admin_run, j);
}
