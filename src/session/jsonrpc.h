/* jsonrpc.h - WuKongIM's JSON-RPC dialect of the client protocol (wire spec §9), as a
 * translation layer: a client request becomes the binary packet the session already
 * understands, and every packet the session writes becomes the JSON-RPC message the
 * client expects. The session itself never sees the difference, except that JSON-RPC
 * connections are not encrypted.
 *
 * A connection is JSON-RPC when the first non-whitespace byte it sends is '{'. Requests
 * are a stream of JSON objects (one per WebSocket text message, or back to back on TCP).
 *
 * Thread rule: a jsonrpc_state belongs to one connection and is used on its worker. */
#ifndef MP_SESSION_JSONRPC_H
#define MP_SESSION_JSONRPC_H

#include "../common/buf.h"
#include "../common/mp.h"

typedef struct jsonrpc_state jsonrpc_state;

jsonrpc_state *jsonrpc_new(void);
void jsonrpc_free(jsonrpc_state *st);

/* Whether input starting with p[0..n) is JSON-RPC: 1 yes ('{' first), 0 no (binary),
 * MP_EAGAIN when it is only whitespace so far. */
int jsonrpc_detect(const uint8_t *p, size_t n);

/* Find the first complete JSON object in p[0..n): sets *start (after leading whitespace)
 * and *len. Returns MP_OK, MP_EAGAIN (incomplete; also when n is only whitespace),
 * MP_EPROTO (not an object), or MP_ETOOBIG (longer than max bytes). */
int jsonrpc_next(const uint8_t *p, size_t n, size_t max, size_t *start, size_t *len);

/* Translate one request. A request that maps to a packet appends one binary packet to
 * `packet` (encoded at `version`, the connection's negotiated version, or the announced
 * one for connect); one that is answered directly (errors, unsupported methods) appends
 * the JSON answer to `reply`. Returns MP_OK, or MP_EPROTO when the connection must close
 * (anything but `connect` first, a second connect, undecodable JSON). */
int jsonrpc_request(jsonrpc_state *st, const char *json, size_t len, int version, mp_buf *packet, mp_buf *reply);

/* Translate one packet the server writes (whole packet, at the connection's version) into
 * JSON text appended to out. Returns MP_OK, or MP_ENOTFOUND when the packet has no
 * JSON-RPC form or answers nothing pending (nothing is appended), or MP_EPROTO. */
int jsonrpc_from_packet(jsonrpc_state *st, const uint8_t *pkt, size_t len, int version, mp_buf *out);

#endif
