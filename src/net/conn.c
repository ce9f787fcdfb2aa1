/* conn.c - listeners, connection I/O, WebSocket transport, idle and pre-auth timeouts. */
#include "conn.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdatomic.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../common/log.h"
#include "../common/map.h"
#include "../proto/packet.h"
#include "../session/jsonrpc.h"
#include "../session/session.h"
#include "ws.h"

#define READ_BUF_SIZE (64 * 1024)
#define SWEEP_MS 250
#define IDLE_BUF_KEEP 4096 /* buffers larger than this are freed when empty */
#define CLOSE_LINGER_MS 5000 /* a graceful close that cannot flush by then is aborted */

struct conn_mgr {
    mp_map *by_id;
    uint64_t next_id;
    uv_tcp_t tcp_listener, ws_listener;
    int have_tcp, have_ws;
    uv_timer_t sweep;
    uint64_t last_retry_scan_ms;
    uv_check_t flush;
    conn *dirty_head;
    char read_buf[READ_BUF_SIZE];
    int stopping;
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

static int start_listener(worker *w, uv_tcp_t *l, const char *addr, int is_ws) {
    int fd;
    int rc = open_reuseport_socket(addr, &fd);
    if (rc != MP_OK) return rc;
    uv_tcp_init(&w->loop, l);
    l->data = (void *)(intptr_t)is_ws;
    if (uv_tcp_open(l, fd) != 0 || uv_listen((uv_stream_t *)l, 4096, on_accept) != 0) {
        LOG_ERROR("net", "cannot listen on %s", addr);
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

/* JSON-RPC input: each complete object becomes the binary packet it stands for (handed
 * to the session like any other) and/or a direct answer. Returns bytes consumed or <0. */
static ssize_t parse_rpc(conn *c, const uint8_t *p, size_t n) {
    size_t off = 0;
    mp_buf pkt = MP_BUF_INIT, reply = MP_BUF_INIT;
    int rc = MP_OK;
    while (off < n && c->state != CONN_CLOSING && rc == MP_OK) {
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
        if (rc == MP_OK && pkt.len && proto_frame_parse(pkt.data, pkt.len, UINT32_MAX, &f) == MP_OK)
            rc = session_on_packet(c, &f);
    }
    mp_buf_free(&pkt);
    mp_buf_free(&reply);
    if (rc != MP_OK) {
        LOG_DEBUG("net", "conn=%llu bad JSON-RPC input: %s", (unsigned long long)c->id, mp_strerror(rc));
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
    while (off < n && c->state != CONN_CLOSING) {
        proto_frame f;
        int rc = proto_frame_parse(p + off, n - off, g_cfg->max_packet_size, &f);
        if (rc == MP_EAGAIN) break;
        if (rc != MP_OK) {
            LOG_DEBUG("net", "conn=%llu bad packet: %s", (unsigned long long)c->id, mp_strerror(rc));
            return rc;
        }
        c->in_bytes += f.total_len;
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

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
    conn *c = s->data;
    if (nread < 0) {
        conn_really_close(c);
        return;
    }
    if (nread == 0 || c->state == CONN_CLOSING) return;
    c->last_recv_ms = mp_mono_ms();
    size_t used = 0;
    int rc;
    if (c->in.len == 0) {
        rc = handle_input(c, (uint8_t *)buf->base, (size_t)nread, &used);
        if (rc == MP_OK && used < (size_t)nread && c->state != CONN_CLOSING)
            mp_buf_append(&c->in, buf->base + used, (size_t)nread - used);
    } else {
        mp_buf_append(&c->in, buf->base, (size_t)nread);
        rc = handle_input(c, c->in.data, c->in.len, &used);
        if (rc == MP_OK) {
            mp_buf_consume(&c->in, used);
            maybe_shrink(&c->in);
        }
    }
    if (rc != MP_OK) conn_close(c, mp_strerror(rc));
}

static void on_closed(uv_handle_t *h) {
    conn *c = h->data;
    struct conn_mgr *m = c->w->conns;
    session_on_close(c);
    jsonrpc_free(c->rpc);
    map_del_u64(m->by_id, c->id);
    atomic_fetch_sub(&g_total_conns, 1);
    mp_buf_free(&c->in);
    mp_buf_free(&c->ws_data);
    mp_buf_free(&c->out);
    mp_buf_free(&c->wbuf);
    free(c);
}

static void conn_really_close(conn *c) {
    if (uv_is_closing((uv_handle_t *)&c->tcp)) return;
    c->state = CONN_CLOSING;
    uv_close((uv_handle_t *)&c->tcp, on_closed);
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
    if (atomic_fetch_add(&g_total_conns, 1) >= g_cfg->max_connections) {
        atomic_fetch_sub(&g_total_conns, 1);
        LOG_WARN("net", "connection refused: maxConnections=%u reached", g_cfg->max_connections);
        uv_close((uv_handle_t *)&c->tcp, (uv_close_cb)free);
        return;
    }
    c->w = w;
    c->id = ((uint64_t)w->index << 56) | ++m->next_id;
    c->is_ws = (intptr_t)server->data != 0;
    c->state = c->is_ws ? CONN_WS_HANDSHAKE : CONN_PREAUTH;
    c->created_ms = c->last_recv_ms = mp_mono_ms();
    struct sockaddr_storage ss;
    int sl = sizeof ss;
    if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &sl) == 0) {
        if (ss.ss_family == AF_INET) {
            struct sockaddr_in *a = (struct sockaddr_in *)&ss;
            uv_ip4_name(a, c->ip, sizeof c->ip);
            c->port = ntohs(a->sin_port);
        } else if (ss.ss_family == AF_INET6) {
            struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
            uv_ip6_name(a, c->ip, sizeof c->ip);
            c->port = ntohs(a->sin6_port);
        }
    }
    uv_tcp_nodelay(&c->tcp, 1);
    map_put_u64(m->by_id, c->id, c);
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
    if (c->out.len + c->wbuf.len + n <= g_cfg->out_buffer_limit) return 0;
    LOG_WARN("net", "conn=%llu uid=%s output over outBufferLimit=%llu: closing slow client",
             (unsigned long long)c->id, c->uid ? c->uid : "", (unsigned long long)g_cfg->out_buffer_limit);
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
    if (c->rpc) {
        write_packet_as_rpc(c, p, n);
        return;
    }
    if (c->state == CONN_CLOSING && uv_is_closing((uv_handle_t *)&c->tcp)) return;
    if (out_would_overflow(c, n + 10)) return;
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
    if (c->out.len) conn_flush(c);
    else if (c->state == CONN_CLOSING) conn_really_close(c);
}

static void conn_flush(conn *c) {
    if (c->writing || uv_is_closing((uv_handle_t *)&c->tcp)) return;
    if (c->out.len == 0) {
        if (c->state == CONN_CLOSING) conn_really_close(c);
        return;
    }
    uv_buf_t b = uv_buf_init((char *)c->out.data, (unsigned)c->out.len);
    int n = uv_try_write((uv_stream_t *)&c->tcp, &b, 1);
    if (n == (int)c->out.len) {
        c->out.len = 0;
        maybe_shrink(&c->out);
        if (c->state == CONN_CLOSING) conn_really_close(c);
        return;
    }
    if (n < 0 && n != UV_EAGAIN) {
        conn_really_close(c);
        return;
    }
    if (n > 0) mp_buf_consume(&c->out, (size_t)n);
    mp_buf tmp = c->wbuf;
    c->wbuf = c->out;
    c->out = tmp;
    c->out.len = 0;
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
    LOG_DEBUG("net", "conn=%llu closing: %s", (unsigned long long)c->id, why);
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

static int sweep_one(void *ctx, const void *key, size_t klen, void *val) {
    (void)key;
    (void)klen;
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
    map_foreach(m->by_id, sweep_one, &sc);
}

/* ---- worker setup ------------------------------------------------------------------- */

int net_worker_start(worker *w, const mp_config *cfg) {
    g_cfg = cfg;
    struct conn_mgr *m = mp_calloc(1, sizeof *m);
    m->by_id = map_new();
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
    rc = start_listener(w, &m->ws_listener, cfg->ws_addr, 1);
    if (rc != MP_OK) return rc;
    m->have_ws = 1;
    return MP_OK;
}

static int close_each(void *ctx, const void *key, size_t klen, void *val) {
    (void)ctx;
    (void)key;
    (void)klen;
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
    uv_timer_stop(&m->sweep);
    uv_close((uv_handle_t *)&m->sweep, NULL);
    uv_check_stop(&m->flush);
    uv_close((uv_handle_t *)&m->flush, NULL);
    map_foreach(m->by_id, close_each, NULL);
}

void net_worker_free(worker *w) {
    if (!w->conns) return;
    map_free(w->conns->by_id, NULL); /* connections were freed by their close callbacks */
    free(w->conns);
    w->conns = NULL;
}

conn *conn_find(worker *w, uint64_t id) {
    conn *c = map_get_u64(w->conns->by_id, id);
    return (c && !uv_is_closing((uv_handle_t *)&c->tcp)) ? c : NULL;
}

struct foreach_ctx {
    void (*cb)(conn *, void *);
    void *ctx;
};

static int foreach_one(void *ctx, const void *key, size_t klen, void *val) {
    (void)key;
    (void)klen;
    struct foreach_ctx *f = ctx;
    f->cb(val, f->ctx);
    return 0;
}

void conn_foreach(worker *w, void (*cb)(conn *c, void *ctx), void *ctx) {
    struct foreach_ctx f = {cb, ctx};
    map_foreach(w->conns->by_id, foreach_one, &f);
}

size_t conn_count(worker *w) { return map_count(w->conns->by_id); }
