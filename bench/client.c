/* client.c - the load threads and the client side of the protocol.
 * Hot path: a SEND is built in per-thread scratch buffers and appended to the connection's
 * output buffer; RECV is decoded in place from the read buffer. Output is flushed once per
 * loop iteration (uv_prepare) with one uv_write per connection; buffers only grow. */
#include "client.h"

#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "plan.h"
#include "proto/packet.h"

#define PROTO_VERSION 5
#define CONNECT_PARALLEL 128                 /* per thread: attempts awaiting CONNACK */
#define HANDSHAKE_TIMEOUT_NS (10ull * 1000000000ull)
#define RATE_TICK_MS 1                       /* --rate: token bucket refill period */
#define RATE_BURST_NS 20000000.0             /* --rate: at most 20 ms worth of tokens saved up */
#define RBUF_SIZE (256 * 1024)
#define LOG_BUDGET 10                        /* error lines printed per thread */

uint64_t bench_mono_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

uint64_t bench_wall_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static int phase_of(bthread *th) { return atomic_load_explicit(&th->ctx->phase, memory_order_acquire); }

static void set_state(bconn *c, int s) { atomic_store_explicit(&c->state, (uint8_t)s, memory_order_release); }
static int state_of(const bconn *c) { return atomic_load_explicit(&c->state, memory_order_relaxed); }

static void add(_Atomic uint64_t *a, int64_t d) { atomic_fetch_add_explicit(a, (uint64_t)d, memory_order_relaxed); }

/* The acquire load of the phase makes main's window bounds visible to this thread. */
static int in_window(bthread *th, uint64_t mono) {
    return phase_of(th) >= PH_RUN && mono >= th->ctx->meas_start_ns &&
           mono < atomic_load_explicit(&th->ctx->meas_end_ns, memory_order_relaxed);
}

static int budget_left(bthread *th) { return th->printed++ < LOG_BUDGET; }

static void start_connects(bthread *th);
static void flush_conn(bconn *c);

/* ---- closing ------------------------------------------------------------------------- */

static void on_closed(uv_handle_t *h) {
    bconn *c = h->data;
    c->handle_open = 0;
    set_state(c, BC_CLOSED);
}

static void close_conn(bconn *c) {
    int s = state_of(c);
    if (s == BC_CLOSING || s == BC_CLOSED) return;
    if (s == BC_READY) add(&c->th->a_live, -1);
    if (c->is_sender && c->inflight) add(&c->th->a_inflight, -(int64_t)c->inflight); /* never acked now */
    if (c->handle_open) {
        set_state(c, BC_CLOSING);
        uv_close((uv_handle_t *)&c->tcp, on_closed);
    } else {
        set_state(c, BC_CLOSED);
    }
}

/* A connect attempt ended (CONNACK success or any failure before it). */
static void settle(bconn *c, int ok) {
    bthread *th = c->th;
    th->connecting--;
    add(&th->a_settled, 1);
    if (ok) {
        add(&th->a_live, 1);
        th->st.conn_ok++;
        hist_record(&th->st.connect, bench_mono_ns() - c->t_start_ns);
    } else {
        th->st.conn_failed++;
    }
}

static void fail_connect(bconn *c, const char *what, const char *detail) {
    if (budget_left(c->th)) fprintf(stderr, "magpie-bench: %s: %s%s%s\n", c->uid, what, detail ? ": " : "", detail ? detail : "");
    close_conn(c);
    settle(c, 0);
}

/* An established connection ended unexpectedly (not at PH_QUIT). */
static void lost_conn(bconn *c, const char *why) {
    if (state_of(c) == BC_HANDSHAKE || state_of(c) == BC_CONNECTING) {
        fail_connect(c, "closed before CONNACK", why);
        start_connects(c->th);
        return;
    }
    if (state_of(c) != BC_READY) return;
    c->th->st.disconnects++;
    if (budget_left(c->th)) fprintf(stderr, "magpie-bench: %s: connection lost: %s\n", c->uid, why);
    close_conn(c);
}

/* ---- output ------------------------------------------------------------------------- */

static void mark_dirty(bconn *c) {
    if (c->dirty) return;
    c->dirty = 1;
    c->th->dirty[c->th->ndirty++] = c;
}

static void on_written(uv_write_t *req, int status) {
    bconn *c = req->data;
    c->writing = 0;
    c->wout.len = 0;
    if (status < 0) {
        if (status != UV_ECANCELED) lost_conn(c, uv_strerror(status));
        return;
    }
    flush_conn(c);
}

/* SENDACK latency runs from the moment the SEND is handed to the kernel: a burst of sends
 * (--rate tokens, a refilled window) is encoded first and written at the end of the loop
 * turn, and that wait inside the load generator is not the server's. */
static void stamp_sends(bconn *c) {
    uint64_t now = bench_mono_ns();
    for (uint32_t i = 0; i < c->th->ctx->o.window && c->unstamped; i++)
        if (c->slots[i].seq && !c->slots[i].t_ns) c->slots[i].t_ns = now, c->unstamped--;
}

static void flush_conn(bconn *c) {
    int s = state_of(c);
    if (c->writing || c->out.len == 0 || (s != BC_HANDSHAKE && s != BC_READY)) return;
    if (c->unstamped) stamp_sends(c);
    mp_buf t = c->wout;
    c->wout = c->out;
    c->out = t;
    uv_buf_t b = uv_buf_init((char *)c->wout.data, (unsigned)c->wout.len);
    c->wreq.data = c;
    int rc = uv_write(&c->wreq, (uv_stream_t *)&c->tcp, &b, 1, on_written);
    if (rc < 0) {
        c->wout.len = 0;
        lost_conn(c, uv_strerror(rc));
        return;
    }
    c->writing = 1;
}

/* --ack-log: write this thread's pending lines (once per loop turn and when the loop ends),
 * so every SENDACK handled is in the file even if the run ends abnormally. One write() per
 * batch of whole lines on an O_APPEND descriptor: threads never split each other's lines. */
static void acklog_write(bthread *th) {
    size_t off = 0;
    while (off < th->acklog.len) {
        ssize_t n = write(th->ctx->ack_fd, th->acklog.data + off, th->acklog.len - off);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
            if (!th->acklog_failed++) fprintf(stderr, "magpie-bench: --ack-log write failed: %s\n", strerror(errno));
            break;
        }
        off += (size_t)n;
    }
    th->acklog.len = 0;
}

static void verify_flush(bthread *th);

static void on_flush(uv_prepare_t *p) {
    bthread *th = p->data;
    verify_flush(th);
    if (th->acklog.len) acklog_write(th);
    for (uint32_t i = 0; i < th->ndirty; i++) {
        bconn *c = th->dirty[i];
        c->dirty = 0;
        flush_conn(c);
    }
    th->ndirty = 0;
}

/* ---- sending -------------------------------------------------------------------------- */

/* The client_msg_no of a sender's SEND. Real clients make it random (the JS SDK: a UUID v4
 * in hex, then "3"), so a channel's numbers reach the server's index in no order; a hex
 * hash of (connection, seq) in front does the same here. The rest names the message for --ack-log and the checks.
 * --cmn seq leaves the hash out: numbers of one sender then sort nearly in sending order,
 * which is far cheaper for the server's client_msg_no index (docs/performance.md). */
static int client_msg_no(const bconn *c, uint32_t seq, char out[96]) {
    const char *prefix = c->th->ctx->o.prefix;
    if (c->th->ctx->o.sequential_cmn) return snprintf(out, 96, "%s-%" PRIu32 "-%" PRIu32, prefix, c->idx, seq);
    uint64_t h = ((uint64_t)c->idx << 32 | seq) + 0x9e3779b97f4a7c15ull; /* splitmix64 */
    h = (h ^ (h >> 30)) * 0xbf58476d1ce4e5b9ull;
    h = (h ^ (h >> 27)) * 0x94d049bb133111ebull;
    h ^= h >> 31;
    return snprintf(out, 96, "%016" PRIx64 "-%s-%" PRIu32 "-%" PRIu32, h, prefix, c->idx, seq);
}

static void send_one(bconn *c) {
    bthread *th = c->th;
    const bench_opts *o = &th->ctx->o;
    uint32_t seq = c->next_seq++;
    uint64_t now_wall = bench_wall_ns();
    char head[160];
    int hn = snprintf(head, sizeof head, "{\"type\":1,\"ts_ns\":%" PRIu64 ",\"seq\":%" PRIu32 ",\"src\":%" PRIu32 ",\"pad\":\"",
                      now_wall, seq, c->idx);
    th->plain.len = 0;
    mp_buf_append(&th->plain, head, (size_t)hn);
    mp_buf_reserve(&th->plain, o->payload_size + 2);
    memset(th->plain.data + th->plain.len, 'x', o->payload_size);
    th->plain.len += o->payload_size;
    mp_buf_append(&th->plain, "\"}", 2);

    char cmn[96];
    int cn = client_msg_no(c, seq, cmn);
    proto_send s = {0};
    s.flags = PROTO_FLAG_REDDOT;
    s.client_seq = seq;
    s.client_msg_no = (mp_str){cmn, (uint32_t)cn};
    s.channel_id = mp_str_c(c->chan_id);
    s.channel_type = c->chan_type;
    char key[32];
    if (c->encrypt) {
        th->enc.len = 0;
        if (crypto_encrypt_b64(&c->keys, th->plain.data, th->plain.len, &th->enc) != MP_OK ||
            crypto_send_msgkey(&c->keys, seq, s.client_msg_no, s.channel_id, s.channel_type,
                               (mp_str){(const char *)th->enc.data, (uint32_t)th->enc.len}, key) != MP_OK) {
            MP_ASSERT(!"encryption failed");
        }
        s.payload = (mp_str){(const char *)th->enc.data, (uint32_t)th->enc.len};
        s.msg_key = (mp_str){key, 32};
    } else {
        s.payload = (mp_str){(const char *)th->plain.data, (uint32_t)th->plain.len};
    }
    MP_ASSERT(proto_encode_send(&s, c->version, &c->out) == MP_OK);

    send_slot *slot = NULL;
    for (uint32_t i = 0; i < o->window && !slot; i++)
        if (c->slots[i].seq == 0) slot = &c->slots[i];
    MP_ASSERT(slot);
    slot->seq = seq;
    slot->t_ns = 0; /* stamped when the write is issued (stamp_sends) */
    c->unstamped++;
    c->inflight++;
    add(&th->a_inflight, 1);
    th->st.sent++;
    mark_dirty(c);
}

static void fill_window(bconn *c) {
    if (!c->is_sender || state_of(c) != BC_READY) return;
    bthread *th = c->th;
    int paced = th->ctx->o.rate > 0;
    while (c->inflight < th->ctx->o.window && phase_of(th) == PH_RUN) {
        if (paced) {
            if (th->tokens < 1) return; /* on_rate sends when tokens come */
            th->tokens -= 1;
        }
        send_one(c);
    }
}

/* --rate: add the tokens earned since the last tick and spend them round-robin on the
 * senders that have room in their window. */
static void on_rate(uv_timer_t *t) {
    bthread *th = t->data;
    uint64_t now = bench_mono_ns();
    th->tokens += (double)(now - th->rate_last_ns) * th->rate_per_ns;
    th->rate_last_ns = now;
    double cap = MP_MAX(1.0, th->rate_per_ns * RATE_BURST_NS);
    if (th->tokens > cap) th->tokens = cap;
    if (phase_of(th) != PH_RUN || !th->nsenders) return;
    uint32_t window = th->ctx->o.window, idle = 0;
    while (th->tokens >= 1 && idle < th->nsenders) {
        bconn *c = th->senders[th->rate_cursor];
        th->rate_cursor = (th->rate_cursor + 1) % th->nsenders;
        if (state_of(c) == BC_READY && c->inflight < window) {
            th->tokens -= 1;
            send_one(c);
            idle = 0;
        } else {
            idle++;
        }
    }
}

/* ---- input ---------------------------------------------------------------------------- */

static void on_connack(bconn *c, const proto_frame *f) {
    bthread *th = c->th;
    proto_connack a;
    if (proto_decode_connack(f->body, f->body_len, f->flags, PROTO_VERSION, &a) != MP_OK) {
        th->st.connack_failed++;
        fail_connect(c, "undecodable CONNACK", NULL);
        return;
    }
    if (a.reason != REASON_SUCCESS) {
        th->st.connack_failed++;
        th->st.connack_reason[MP_MIN(a.reason, 31)]++;
        char r[16];
        snprintf(r, sizeof r, "%u", a.reason);
        fail_connect(c, "CONNACK refused, reason", r);
        return;
    }
    c->version = a.has_server_version ? a.server_version : PROTO_VERSION;
    if (a.server_key.len) {
        mp_buf pub = MP_BUF_INIT;
        uint8_t shared[32];
        int ok = crypto_b64_decode(a.server_key.p, a.server_key.len, &pub) == MP_OK && pub.len == 32 &&
                 a.salt.len == 16 && crypto_x25519_shared(c->priv, pub.data, shared) == MP_OK;
        mp_buf_free(&pub);
        if (!ok) {
            th->st.connack_failed++;
            fail_connect(c, "bad CONNACK key or salt", NULL);
            return;
        }
        crypto_derive_aes_key(shared, c->keys.aes_key);
        memcpy(c->keys.iv, a.salt.p, 16);
        c->encrypt = 1;
    }
    set_state(c, BC_READY);
    settle(c, 1);
}

/* --ack-log: "channel_id channel_type client_msg_no message_id message_seq from_uid". */
static void acklog_line(bconn *c, const proto_sendack *a) {
    char cmn[96], line[320];
    client_msg_no(c, a->client_seq, cmn);
    int n = snprintf(line, sizeof line, "%s %u %s %" PRId64 " %" PRIu32 " %s\n", c->chan_id, c->chan_type, cmn,
                     a->message_id, a->message_seq, c->uid);
    mp_buf_append(&c->th->acklog, line, (size_t)MP_MIN(n, (int)sizeof line - 1));
}

static void on_sendack(bconn *c, const proto_frame *f) {
    bthread *th = c->th;
    proto_sendack a;
    if (proto_decode_sendack(f->body, f->body_len, f->flags, c->version, &a) != MP_OK) {
        th->st.proto_errors++;
        return;
    }
    send_slot *slot = NULL;
    for (uint32_t i = 0; c->slots && i < th->ctx->o.window && !slot; i++)
        if (c->slots[i].seq == a.client_seq && a.client_seq) slot = &c->slots[i];
    if (!slot) {
        th->st.ack_unknown++;
        return;
    }
    uint64_t now = bench_mono_ns();
    uint64_t lat = now - slot->t_ns;
    slot->seq = 0;
    c->inflight--;
    add(&th->a_inflight, -1);
    if (a.reason == REASON_SUCCESS) {
        bm_set(&c->acked, a.client_seq);
        if (th->ctx->ack_fd >= 0) acklog_line(c, &a);
        th->st.acked++;
        add(&th->a_acked, 1);
        add(&th->a_expected, c->n_receivers);
        if (in_window(th, now)) {
            th->st.acked_in_win++;
            hist_record(&th->st.sendack, lat);
            th->st.part_acked_in_win[c->part]++;
            hist_record(&th->st.part_sendack[c->part], lat);
        }
    } else {
        th->st.ack_failed++;
        th->st.ack_fail_reason[MP_MIN(a.reason, 31)]++;
        if (th->st.ack_failed <= 3 && budget_left(th))
            fprintf(stderr, "magpie-bench: %s: SENDACK reason %u for seq %u\n", c->uid, a.reason, a.client_seq);
    }
    fill_window(c);
}

/* Consume the literal lit at *p; 0 if it was there. */
static int take_lit(const uint8_t **p, const uint8_t *end, const char *lit) {
    size_t n = strlen(lit);
    if ((size_t)(end - *p) < n || memcmp(*p, lit, n) != 0) return -1;
    *p += n;
    return 0;
}

/* Consume a decimal unsigned integer at *p; 0 if there was one. */
static int take_u64(const uint8_t **p, const uint8_t *end, uint64_t *out) {
    const uint8_t *d = *p;
    uint64_t v = 0;
    while (d < end && *d >= '0' && *d <= '9' && d - *p < 20) v = v * 10 + (uint64_t)(*d++ - '0');
    if (d == *p) return -1;
    *p = d;
    *out = v;
    return 0;
}

/* The fields of a payload written by send_one, which always starts
 * {"type":1,"ts_ns":T,"seq":S,"src":I, — parsed in that order (this runs for every RECV,
 * so it must cost less than the server's work for it). -1 for anything else. */
static int parse_payload(const uint8_t *p, size_t n, uint64_t *ts, uint64_t *seq, uint64_t *src) {
    const uint8_t *end = p + n;
    return take_lit(&p, end, "{\"type\":1,\"ts_ns\":") || take_u64(&p, end, ts) || take_lit(&p, end, ",\"seq\":") ||
                   take_u64(&p, end, seq) || take_lit(&p, end, ",\"src\":") || take_u64(&p, end, src) ||
                   take_lit(&p, end, ",")
               ? -1
               : 0;
}

/* The msgKeys queued by verify_msgkey: compare them with what the server sent. */
static void verify_flush(bthread *th) {
    if (!th->n_verify) return;
    char got[CRYPTO_MSGKEY_BATCH][32];
    crypto_recv_msgkey_lanes(th->n_verify, got);
    for (uint32_t i = 0; i < th->n_verify; i++)
        if (memcmp(got[i], th->verify_want[i], 32) != 0) th->st.bad_msgkey++;
    th->n_verify = 0;
}

/* Check r's msgKey. Its AES pass runs now (right after nothing else used another key);
 * its MD5 joins the thread's batch, checked CRYPTO_MSGKEY_BATCH at a time and at the end of
 * every loop turn. A mismatch found then is counted in bad_msgkey (the run fails), though
 * that RECV was already acknowledged. MP_ECRYPTO = wrong now (no key, or no AES). */
static int verify_msgkey(bconn *c, const proto_recv *r) {
    bthread *th = c->th;
    th->st.msgkey_checked++;
    crypto_recv_sign in = {&c->keys, r->message_id, r->message_seq, r->client_msg_no, r->timestamp,
                           r->from_uid, r->channel_id, r->channel_type, r->payload};
    if (r->msg_key.len != 32 || crypto_recv_msgkey_lane(th->n_verify, &in) != MP_OK) return MP_ECRYPTO;
    memcpy(th->verify_want[th->n_verify++], r->msg_key.p, 32);
    if (th->n_verify == CRYPTO_MSGKEY_BATCH) verify_flush(th);
    return MP_OK;
}

static void on_recv(bconn *c, const proto_frame *f) {
    bthread *th = c->th;
    bench_ctx *ctx = th->ctx;
    proto_recv r;
    if (proto_decode_recv(f->body, f->body_len, f->flags, c->version, &r) != MP_OK) {
        th->st.proto_errors++;
        return;
    }
    const uint8_t *body = (const uint8_t *)r.payload.p;
    size_t blen = r.payload.len;
    /* --verify-every N: the msgKey (an AES pass and an MD5 over the whole payload, the
     * dearest step here) is checked on 1 RECV in N; decryption and every other check run
     * on all of them. */
    int verify = th->st.recvs++ % th->ctx->o.verify_every == 0;
    if (c->encrypt) {
        if (verify && verify_msgkey(c, &r) != MP_OK) {
            th->st.bad_msgkey++; /* like the SDK: drop it, no RECVACK */
            return;
        }
        th->plain.len = 0;
        if (crypto_decrypt_b64(&c->keys, r.payload.p, r.payload.len, &th->plain) != MP_OK) {
            th->st.bad_payload++;
            return;
        }
        body = th->plain.data;
        blen = th->plain.len;
    }
    uint64_t seq, src, ts;
    uint64_t now_mono = bench_mono_ns();
    if (parse_payload(body, blen, &ts, &seq, &src) || seq == 0 || seq > UINT32_MAX) {
        th->st.bad_payload++;
    } else if (src != c->expect_src || src >= ctx->nconns) {
        th->st.unexpected++;
    } else {
        const bconn *s = &ctx->conns[src];
        /* A person message arrives on the channel named after its sender. */
        const char *want_chan = s->chan_type == 1 ? s->uid : s->chan_id;
        if (!mp_str_eq_c(r.from_uid, s->uid) || !mp_str_eq_c(r.channel_id, want_chan) || r.channel_type != s->chan_type) {
            th->st.unexpected++;
        } else if (bm_set(&c->got, (uint32_t)seq)) {
            th->st.duplicated++;
        } else {
            th->st.delivered++;
            add(&th->a_distinct, 1);
            if (in_window(th, now_mono)) {
                uint64_t now_wall = bench_wall_ns();
                th->st.delivered_in_win++;
                hist_record(&th->st.e2e, now_wall > ts ? now_wall - ts : 0);
                th->st.part_delivered_in_win[c->part]++;
                hist_record(&th->st.part_e2e[c->part], now_wall > ts ? now_wall - ts : 0);
            }
        }
    }
    proto_recvack k = {f->flags, r.message_id, r.message_seq};
    MP_ASSERT(proto_encode_recvack(&k, c->version, &c->out) == MP_OK);
    mark_dirty(c);
}

/* Handle one packet; returns 0, or -1 if the connection was closed. */
static int on_frame(bconn *c, const proto_frame *f) {
    if (state_of(c) == BC_HANDSHAKE) {
        if (f->type != PROTO_CONNACK) {
            c->th->st.proto_errors++;
            fail_connect(c, "first packet is not CONNACK", NULL);
            start_connects(c->th);
            return -1;
        }
        on_connack(c, f);
        start_connects(c->th);
        return state_of(c) == BC_READY ? 0 : -1;
    }
    switch (f->type) {
    case PROTO_SENDACK: on_sendack(c, f); break;
    case PROTO_RECV: on_recv(c, f); break;
    case PROTO_PONG: c->th->st.pongs++; break;
    case PROTO_DISCONNECT: {
        proto_disconnect d = {0};
        proto_decode_disconnect(f->body, f->body_len, f->flags, &d);
        c->th->st.kicked++;
        char why[96];
        snprintf(why, sizeof why, "DISCONNECT reason %u \"%.*s\"", d.reason, (int)MP_MIN(d.reason_text.len, 60),
                 d.reason_text.p ? d.reason_text.p : "");
        lost_conn(c, why);
        return -1;
    }
    default: break;
    }
    return state_of(c) == BC_READY ? 0 : -1;
}

/* Parse whole packets from p[0..n); returns bytes used, or SIZE_MAX if the connection closed. */
static size_t parse(bconn *c, const uint8_t *p, size_t n) {
    size_t off = 0;
    for (;;) {
        proto_frame f;
        int rc = proto_frame_parse(p + off, n - off, PROTO_MAX_REMAINING, &f);
        if (rc == MP_EAGAIN) return off;
        if (rc != MP_OK) {
            c->th->st.proto_errors++;
            lost_conn(c, "unparsable packet");
            return SIZE_MAX;
        }
        off += f.total_len;
        if (on_frame(c, &f) != 0) return SIZE_MAX;
    }
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *b) {
    (void)hint;
    bconn *c = h->data;
    *b = uv_buf_init((char *)c->th->rbuf, RBUF_SIZE);
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b) {
    bconn *c = s->data;
    if (n < 0) {
        lost_conn(c, n == UV_EOF ? "closed by the server" : uv_strerror((int)n));
        return;
    }
    if (n == 0 || (state_of(c) != BC_HANDSHAKE && state_of(c) != BC_READY)) return;
    const uint8_t *p = (const uint8_t *)b->base;
    size_t len = (size_t)n;
    int buffered = c->in.len > 0;
    if (buffered) {
        mp_buf_append(&c->in, p, len);
        p = c->in.data;
        len = c->in.len;
    }
    size_t used = parse(c, p, len);
    if (used == SIZE_MAX) return;
    if (buffered) mp_buf_consume(&c->in, used);
    else if (used < len) mp_buf_append(&c->in, p + used, len - used);
}

/* ---- connecting ----------------------------------------------------------------------- */

static void on_connected(uv_connect_t *req, int status) {
    bconn *c = req->data;
    bthread *th = c->th;
    if (state_of(c) != BC_CONNECTING) return; /* closed meanwhile */
    if (status < 0) {
        fail_connect(c, "connect", uv_strerror(status));
        start_connects(th);
        return;
    }
    uint8_t pub[32];
    mp_buf key = MP_BUF_INIT;
    char token[72] = "", dev[32];
    if (crypto_x25519_keypair(c->priv, pub) != MP_OK) {
        fail_connect(c, "X25519 key generation failed", NULL);
        start_connects(th);
        return;
    }
    crypto_b64_encode(pub, 32, &key);
    if (th->ctx->o.token_auth) plan_token(c->uid, token);
    snprintf(dev, sizeof dev, "bench%" PRIu32, c->idx);
    proto_connect p = {0};
    p.version = PROTO_VERSION;
    p.device_flag = 0;
    p.device_id = mp_str_c(dev);
    p.uid = mp_str_c(c->uid);
    p.token = mp_str_c(token);
    p.client_timestamp = (int64_t)(bench_wall_ns() / 1000000ull);
    p.client_key = (mp_str){(const char *)key.data, (uint32_t)key.len};
    MP_ASSERT(proto_encode_connect(&p, &c->out) == MP_OK);
    mp_buf_free(&key);
    set_state(c, BC_HANDSHAKE);
    int rc = uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
    if (rc < 0) {
        fail_connect(c, "read start", uv_strerror(rc));
        start_connects(th);
        return;
    }
    flush_conn(c);
}

static int open_conn(bconn *c) {
    bthread *th = c->th;
    bench_ctx *ctx = th->ctx;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) return uv_translate_sys_error(errno);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (ctx->bind_source) {
        /* Choose the port at connect(), per (source, destination): each source address then
         * has its own ~28k ephemeral ports towards the server. */
        setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
        struct sockaddr_in src = {0};
        src.sin_family = AF_INET;
        src.sin_addr.s_addr = htonl(0x7f000001u + c->idx % ctx->o.sources);
        if (bind(fd, (struct sockaddr *)&src, sizeof src) < 0) {
            int e = errno;
            close(fd);
            return uv_translate_sys_error(e);
        }
    }
    uv_tcp_init(&th->loop, &c->tcp);
    c->tcp.data = c;
    c->handle_open = 1;
    int rc = uv_tcp_open(&c->tcp, fd);
    if (rc < 0) {
        close(fd);
        return rc;
    }
    c->creq.data = c;
    return uv_tcp_connect(&c->creq, &c->tcp, (const struct sockaddr *)&ctx->server, on_connected);
}

static void start_connects(bthread *th) {
    while (th->connecting < CONNECT_PARALLEL && th->next_connect < th->n && phase_of(th) == PH_CONNECT) {
        bconn *c = th->conns[th->next_connect++];
        th->connecting++;
        c->t_start_ns = bench_mono_ns();
        set_state(c, BC_CONNECTING);
        int rc = open_conn(c);
        if (rc < 0) fail_connect(c, "connect", uv_strerror(rc));
    }
}

/* ---- loop control ---------------------------------------------------------------------- */

static void on_tick(uv_timer_t *t) {
    bthread *th = t->data;
    uint64_t now = bench_mono_ns();
    if (th->connecting) {
        for (uint32_t i = 0; i < th->next_connect; i++) {
            bconn *c = th->conns[i];
            int s = state_of(c);
            if ((s == BC_CONNECTING || s == BC_HANDSHAKE) && now - c->t_start_ns > HANDSHAKE_TIMEOUT_NS)
                fail_connect(c, "no CONNACK within 10 s", NULL);
        }
        start_connects(th);
    }
    if (now - th->last_ping_ns >= (uint64_t)(th->ctx->o.ping_interval * 1e9)) { /* the server closes silent connections */
        th->last_ping_ns = now;
        for (uint32_t i = 0; i < th->n; i++) {
            bconn *c = th->conns[i];
            if (state_of(c) != BC_READY) continue;
            proto_encode_ping(&c->out);
            th->st.pings++;
            mark_dirty(c);
        }
    }
}

static void on_wake(uv_async_t *a) {
    bthread *th = a->data;
    int ph = phase_of(th);
    if (ph == atomic_load(&th->seen_phase)) return;
    atomic_store(&th->seen_phase, ph);
    if (ph == PH_RUN) {
        for (uint32_t i = 0; i < th->n; i++) fill_window(th->conns[i]);
    } else if (ph == PH_QUIT) {
        for (uint32_t i = 0; i < th->n; i++) {
            bconn *c = th->conns[i];
            c->alive_at_end = state_of(c) == BC_READY;
            close_conn(c);
        }
        uv_close((uv_handle_t *)&th->wake, NULL);
        uv_close((uv_handle_t *)&th->tick, NULL);
        uv_close((uv_handle_t *)&th->rate_timer, NULL);
        uv_close((uv_handle_t *)&th->flush, NULL);
    }
}

static void *thread_main(void *arg) {
    bthread *th = arg;
    start_connects(th);
    uv_run(&th->loop, UV_RUN_DEFAULT);
    verify_flush(th);
    if (th->acklog.len) acklog_write(th);
    return NULL;
}

int client_threads_start(bench_ctx *ctx) {
    uint32_t nt = ctx->o.threads;
    ctx->threads = mp_calloc(nt, sizeof *ctx->threads);
    for (uint32_t t = 0; t < nt; t++) {
        bthread *th = &ctx->threads[t];
        th->ctx = ctx;
        th->index = (int)t;
        th->n = ctx->nconns / nt + (t < ctx->nconns % nt);
        th->conns = mp_calloc(th->n ? th->n : 1, sizeof *th->conns);
        th->dirty = mp_calloc(th->n ? th->n : 1, sizeof *th->dirty);
        th->rbuf = mp_malloc(RBUF_SIZE);
        th->last_ping_ns = bench_mono_ns();
        atomic_init(&th->seen_phase, PH_CONNECT);
        hist_init(&th->st.sendack);
        hist_init(&th->st.e2e);
        hist_init(&th->st.connect);
        for (int p = 0; p < PART_N; p++) {
            hist_init(&th->st.part_sendack[p]);
            hist_init(&th->st.part_e2e[p]);
        }
        th->senders = mp_calloc(th->n ? th->n : 1, sizeof *th->senders);
        uint32_t k = 0;
        for (uint32_t i = t; i < ctx->nconns; i += nt) {
            bconn *c = &ctx->conns[i];
            c->th = th;
            if (c->is_sender) c->slots = mp_calloc(ctx->o.window, sizeof *c->slots);
            c->next_seq = 1;
            th->conns[k++] = c;
            if (c->is_sender) th->senders[th->nsenders++] = c;
        }
        MP_ASSERT(k == th->n);
        uv_loop_init(&th->loop);
        uv_async_init(&th->loop, &th->wake, on_wake);
        th->wake.data = th;
        uv_timer_init(&th->loop, &th->tick);
        th->tick.data = th;
        uv_timer_start(&th->tick, on_tick, 100, 100);
        uv_prepare_init(&th->loop, &th->flush);
        th->flush.data = th;
        uv_prepare_start(&th->flush, on_flush);
        uv_timer_init(&th->loop, &th->rate_timer);
        th->rate_timer.data = th;
        if (ctx->o.rate > 0) {
            th->rate_per_ns = ctx->o.rate / nt / 1e9;
            th->rate_last_ns = bench_mono_ns();
            uv_timer_start(&th->rate_timer, on_rate, RATE_TICK_MS, RATE_TICK_MS);
        }
    }
    for (uint32_t t = 0; t < nt; t++) {
        if (pthread_create(&ctx->threads[t].tid, NULL, thread_main, &ctx->threads[t]) != 0) {
            fprintf(stderr, "magpie-bench: cannot start thread %u\n", t);
            return MP_EIO;
        }
    }
    return MP_OK;
}

void client_threads_wake(bench_ctx *ctx) {
    for (uint32_t t = 0; t < ctx->o.threads; t++) uv_async_send(&ctx->threads[t].wake);
}

void client_threads_join(bench_ctx *ctx) {
    for (uint32_t t = 0; t < ctx->o.threads; t++) {
        bthread *th = &ctx->threads[t];
        pthread_join(th->tid, NULL);
        uv_loop_close(&th->loop);
        free(th->rbuf);
        free(th->dirty);
        free(th->conns);
        free(th->senders);
        th->senders = NULL;
        mp_buf_free(&th->plain);
        mp_buf_free(&th->enc);
        mp_buf_free(&th->acklog);
        th->rbuf = NULL;
        th->dirty = NULL;
        th->conns = NULL;
    }
}
