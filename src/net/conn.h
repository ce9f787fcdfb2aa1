/* conn.h - client connections (TCP and WebSocket) and their listeners.
 *
 * A connection belongs, for life, to the worker whose listener accepted it; every
 * function here must be called on that worker's thread. Inbound bytes are framed
 * (WebSocket frames, then protocol packets) and handed to session_on_packet().
 * Outbound packets are queued on the connection and flushed once per loop iteration
 * with one write (uv_try_write, then uv_write for the rest). */
#ifndef MP_NET_CONN_H
#define MP_NET_CONN_H

#include <uv.h>

#include "../common/buf.h"
#include "../config/config.h"
#include "../core/worker.h"
#include "../proto/crypto.h"
#include "ratelimit.h"

enum conn_state {
    CONN_WS_HANDSHAKE = 0, /* WebSocket: waiting for the HTTP upgrade request */
    CONN_PREAUTH = 1,      /* waiting for CONNECT */
    CONN_READY = 2,        /* authenticated */
    CONN_CLOSING = 3,      /* no more input; closes once output is flushed */
    CONN_AUTHING = 4,      /* CONNECT accepted, CONNACK waits for the presence owner to
                            * register the connection; input is held until it is READY */
};

struct pending_recv; /* session.c: RECVs awaiting RECVACK */
struct jsonrpc_state; /* session/jsonrpc.c: set when the client speaks JSON-RPC */

typedef struct conn {
    uv_tcp_t tcp;
    worker *w;
    uint64_t id;       /* unique in the process; conn_worker_of(id) is the owning worker */
    uint8_t state;
    uint8_t is_ws;
    struct tls_conn *tls; /* tlsAddr / wssAddr connections (net/tls.h), else NULL */
    uint8_t writing;
    uint8_t dirty;
    struct conn *dirty_next;
    mp_buf in;         /* unparsed socket bytes */
    mp_buf ws_data;    /* WebSocket: data-frame payload bytes not yet parsed as packets */
    mp_buf out;        /* queued output */
    mp_buf wbuf;       /* output being written */
    uv_write_t wreq;
    uint64_t created_ms, last_recv_ms, close_at_ms, closing_since_ms;
    char ip[64];
    int port;
    /* session state (session.c) */
    uint8_t version;        /* negotiated protocol version */
    uint8_t client_version; /* as announced in CONNECT */
    uint8_t device_flag;
    uint8_t device_level;
    uint8_t encrypt;
    char *uid;
    char *device_id;
    crypto_keys keys;
    struct pending_recv *pending; /* ring of pending_cap (a power of 2), oldest at pending_head */
    uint32_t pending_head, n_pending, pending_cap;
    rl_bucket send_bucket;  /* sendRateLimit, filled at CONNECT */
    uint32_t send_refused;  /* SENDs refused by sendRateLimit since the last accepted one */
    uint64_t in_msgs, out_msgs, in_bytes, out_bytes; /* msgs: session.c; bytes: transport */
    /* Protocol packets (binary form, also for JSON-RPC clients) and the SEND / RECV share of
     * them, as WuKongIM counts them for /connz. */
    uint64_t in_packets, out_packets, in_packet_bytes, out_packet_bytes;
    uint64_t in_msg_bytes, out_msg_bytes;
    /* JSON-RPC (wire spec §9): decided by the first byte; owned by the connection. Packets
     * the session writes are translated to JSON text on the way out. */
    struct jsonrpc_state *rpc;
} conn;

/* Connection ids are (sequence << CONN_WORKER_BITS) | worker index: the worker is found
 * from the id alone (for /conn/kick), and ids stay below 2^53 so JavaScript clients read
 * them exactly. Never 0. */
#define CONN_WORKER_BITS 6
_Static_assert(MP_MAX_WORKERS <= (1 << CONN_WORKER_BITS), "worker index must fit in a conn id");
static inline int conn_worker_of(uint64_t id) { return (int)(id & ((1u << CONN_WORKER_BITS) - 1)); }

/* Set up this worker's connection table and listeners (TCP addr and WebSocket wsAddr,
 * both with SO_REUSEPORT so every worker accepts). */
int net_worker_start(worker *w, const mp_config *cfg);
/* Close listeners and every connection of this worker. */
void net_worker_stop(worker *w);
/* Free the connection table (after the loop has ended). */
void net_worker_free(worker *w);

conn *conn_find(worker *w, uint64_t id);
/* Queue one encoded protocol packet (WebSocket: one binary message per packet). */
void conn_write_packet(conn *c, const uint8_t *p, size_t n);
/* The session moved c from CONN_AUTHING to CONN_READY: parse what arrived meanwhile and
 * read again. Closes c on bad input, like a read would. */
void conn_input_resume(conn *c);
/* Stop reading, flush queued output, then close. */
void conn_close(conn *c, const char *why);
/* Close after delay_ms (used after a kick's DISCONNECT). */
void conn_close_after(conn *c, uint32_t delay_ms);
/* Visit every connection of the worker (cb must not free connections). */
void conn_foreach(worker *w, void (*cb)(conn *c, void *ctx), void *ctx);
size_t conn_count(worker *w);
/* Open connections in the process, every state (any thread). */
uint64_t conn_total(void);

/* ---- monitoring and administration (any worker; results come back on the caller) ---- */

/* A copy of one authenticated connection, for /connz and /varz. Times are mp_mono_ms(). */
typedef struct conn_info {
    uint64_t id;
    char *uid, *device_id; /* owned by the list handed to conn_list_fn */
    char ip[64];
    int port;
    uint64_t created_ms, last_recv_ms;
    uint64_t pending_bytes; /* queued and being written */
    uint64_t in_msgs, out_msgs, in_msg_bytes, out_msg_bytes;
    uint64_t in_packets, out_packets, in_packet_bytes, out_packet_bytes;
    uint8_t device_flag, device_level, version;
    uint64_t sort_key; /* private to conn.c */
} conn_info;

enum conn_sort {
    CONN_SORT_ID = 0,
    CONN_SORT_IN_MSGS,
    CONN_SORT_OUT_MSGS,
    CONN_SORT_IN_MSG_BYTES,
    CONN_SORT_OUT_MSG_BYTES,
    CONN_SORT_IN_PACKETS,
    CONN_SORT_OUT_PACKETS,
    CONN_SORT_IN_PACKET_BYTES,
    CONN_SORT_OUT_PACKET_BYTES,
    CONN_SORT_PENDING_BYTES,
    CONN_SORT_CREATED,   /* WuKongIM "uptime": by start time */
    CONN_SORT_LAST_RECV, /* WuKongIM "idle": by last activity time */
    CONN_SORT_VERSION,
};

typedef struct conn_query {
    mp_str uid_part; /* only uids containing these bytes; empty = every uid (copied) */
    int sort;        /* enum conn_sort */
    int desc;        /* 1: descending; ties are always broken by ascending id */
    size_t keep;     /* how many from the start of the order are wanted */
} conn_query;

/* infos: the first min(keep, total) matches in order; valid during the call only.
 * total: every authenticated connection that matched. */
typedef void (*conn_list_fn)(void *ctx, const conn_info *infos, size_t n, size_t total);
/* Gather authenticated connections from every worker; done runs on the calling worker. */
void conn_list(const conn_query *q, conn_list_fn done, void *ctx);

typedef struct conn_stats {
    uint64_t conns;         /* open connections, every state */
    uint64_t in_msgs, out_msgs;                 /* since start, closed connections included */
    uint64_t in_packet_bytes, out_packet_bytes; /* likewise */
    uint64_t slow_clients;  /* connections closed for exceeding outBufferLimit, since start */
    uint64_t refused_max, refused_rate; /* closed at accept over maxConnections / connRateLimit, since start */
    uint64_t pending_recvs; /* RECVs waiting for a RECVACK now */
} conn_stats;
typedef void (*conn_stats_fn)(void *ctx, const conn_stats *s);
/* Sum the counters of every worker; done runs on the calling worker. */
void conn_stats_gather(conn_stats_fn done, void *ctx);

enum conn_admin_op { CONN_ADMIN_KICK = 0, CONN_ADMIN_REMOVE = 1 };
/* /conn/kick (DISCONNECT reason 12 "server kick", close after delay_ms) or /conn/remove
 * (close now, no DISCONNECT) of connection id, on its worker. A non-empty uid must match
 * the connection's uid, else nothing happens. done(ctx, 1 if acted) runs on the calling
 * worker once the connection's worker has acted. */
typedef void (*conn_admin_fn)(void *ctx, int acted);
void conn_admin(uint64_t id, mp_str uid, int op, uint32_t delay_ms, conn_admin_fn done, void *ctx);

#endif
