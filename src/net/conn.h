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

enum conn_state {
    CONN_WS_HANDSHAKE = 0, /* WebSocket: waiting for the HTTP upgrade request */
    CONN_PREAUTH = 1,      /* waiting for CONNECT */
    CONN_READY = 2,        /* authenticated */
    CONN_CLOSING = 3,      /* no more input; closes once output is flushed */
};

struct pending_recv; /* session.c: RECVs awaiting RECVACK */
struct jsonrpc_state; /* session/jsonrpc.c: set when the client speaks JSON-RPC */

typedef struct conn {
    uv_tcp_t tcp;
    worker *w;
    uint64_t id;       /* unique in the process: worker index in the top byte */
    uint8_t state;
    uint8_t is_ws;
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
    struct pending_recv *pending; /* singly linked, oldest first */
    struct pending_recv *pending_tail;
    uint32_t n_pending;
    uint64_t in_msgs, out_msgs, in_bytes, out_bytes;
    /* JSON-RPC (wire spec §9): decided by the first byte; owned by the connection. Packets
     * the session writes are translated to JSON text on the way out. */
    struct jsonrpc_state *rpc;
} conn;

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
/* Stop reading, flush queued output, then close. */
void conn_close(conn *c, const char *why);
/* Close after delay_ms (used after a kick's DISCONNECT). */
void conn_close_after(conn *c, uint32_t delay_ms);
/* Visit every connection of the worker (cb must not free connections). */
void conn_foreach(worker *w, void (*cb)(conn *c, void *ctx), void *ctx);
size_t conn_count(worker *w);

#endif
