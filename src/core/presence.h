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

/* Connection c (on the calling worker) authenticated: register it, kicking per §8.7. */
void presence_online(conn *c);
/* Connection left. */
void presence_offline(mp_str uid, uint64_t conn_id);
/* Kick every connection of uid with device_flag (reason 12), closing after delay_ms. */
void presence_kick_device(mp_str uid, uint8_t device_flag, uint32_t delay_ms);

/* Deliver m to every online connection of the given uids except exclude_conn_id.
 * Takes its own references on m. */
void presence_deliver(mp_msg *m, const mp_str *uids, size_t n, uint64_t exclude_conn_id);

#endif
