/* presence.h - the user owner's registry of online devices (DESIGN.md §3): every uid has
 * one owner worker (worker_owner_of(uid)) holding its connections, applying the kick
 * rules of spec §8.7 and fanning a message out to the connections' workers.
 * The functions below may be called on any worker; they post to the owner. */
#ifndef MP_CORE_PRESENCE_H
#define MP_CORE_PRESENCE_H

#include "../net/conn.h"
#include "msg.h"

void presence_init(worker *w);
void presence_free(worker *w);

/* Connection c (on the calling worker) authenticated: register it with its uid's owner,
 * kicking per §8.7, then run registered(w, arg) back on c's worker. Anything fanned out
 * after that finds the connection, so a session that answers CONNECT from registered
 * cannot lose a message sent once its client holds the CONNACK. registered owns arg
 * (it runs even if c has closed meanwhile; it is dropped only at shutdown). */
void presence_online(conn *c, worker_fn registered, void *arg);
/* Connection left. */
void presence_offline(mp_str uid, uint64_t conn_id);
/* Kick every connection of uid with device_flag (reason 12), closing after delay_ms. */
void presence_kick_device(mp_str uid, uint8_t device_flag, uint32_t delay_ms);

/* Deliver m to every online connection of the given uids except exclude_conn_id.
 * hashes[i] = mp_hash(uids[i]) when the caller keeps them (a channel's cached members),
 * or NULL to compute them. Takes its own references on m. */
void presence_deliver(mp_msg *m, const mp_str *uids, const uint64_t *hashes, size_t n, uint64_t exclude_conn_id);

/* ---- queries (for the HTTP API): asked on any worker, answered on the same worker ---- */

typedef struct presence_conn {
    uint32_t uid_index; /* position of the uid in the query */
    uint8_t device_flag;
    uint8_t device_level;
    uint64_t conn_id;
} presence_conn;
/* conns: the online connections of the queried uids, ordered by uid_index (then by
 * registration); valid during the call only. */
typedef void (*presence_query_fn)(void *ctx, const presence_conn *conns, size_t n);
/* Ask the owners of the n uids (copied) for their online connections; done runs on the
 * calling worker once every owner answered (at once when n is 0). */
void presence_query(const mp_str *uids, size_t n, presence_query_fn done, void *ctx);

typedef struct presence_stats {
    uint64_t users; /* uids with at least one online connection */
    uint64_t conns; /* their registered connections */
} presence_stats;
typedef void (*presence_stats_fn)(void *ctx, const presence_stats *s);
/* Count the registries of every worker; done runs on the calling worker. */
void presence_stats_gather(presence_stats_fn done, void *ctx);

#endif
