/* session.h - the protocol session on a connection: CONNECT/authentication, SEND
 * (msgKey check, decrypt, hand-off to the channel owner), SENDACK, RECV encoding per
 * connection, RECVACK and bounded re-delivery of unacknowledged RECVs.
 * All functions run on the connection's worker thread. */
#ifndef MP_SESSION_H
#define MP_SESSION_H

#include "../core/msg.h"
#include "../net/conn.h"
#include "../proto/packet.h"

void session_init(const mp_config *cfg);
/* Free worker w's encoding scratch buffers (at shutdown, after its loop ended). */
void session_worker_free(worker *w);

/* Handle one framed packet. Returns MP_OK, or an error meaning "close the connection". */
int session_on_packet(conn *c, const proto_frame *f);
/* The connection is going away: leave the presence registry, drop pending RECVs. Idempotent. */
void session_on_close(conn *c);
/* Periodic work (RECV retries). */
void session_sweep(conn *c, uint64_t now_ms);

/* Deliver a message as RECV to n connections of worker w (a fan-out; missing ones are
 * skipped). Ownership: the caller lends one reference on m per connection; a RECV kept
 * pending for a retry takes its loan. Returns how many were taken (the caller still owns
 * the rest). */
int session_deliver_many(worker *w, const uint64_t *conn_ids, size_t n, mp_msg *m);
/* Send DISCONNECT (when reason != 0) and close after delay_ms. */
void session_kick(worker *w, uint64_t conn_id, uint8_t reason, const char *text, uint32_t delay_ms);
/* SENDACK to connection conn_id; 1 if written, 0 if the connection is gone. */
int session_sendack(worker *w, uint64_t conn_id, uint8_t flags, int64_t message_id, uint32_t client_seq,
                    uint64_t message_seq, uint8_t reason);

#endif
