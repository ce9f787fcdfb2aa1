/* webhook.h - events for the business system (spec §6, docs/webhooks.md): POST
 * <webhook.httpAddr>?event=<name> with a JSON body, success only on HTTP 200.
 *   user.onlinestatus  from the uid's presence owner, batched in order, retried
 *   msg.offline        one POST per message with the recipients that are offline, computed
 *                      on the presence owners during the fan-out; concurrency-bounded, no retry
 *   msg.notify         every persisted message, batched (count per push / push interval),
 *                      failed batches retried with back-off, then dropped; what is still
 *                      pending at a clean shutdown is written to <dataDir> and sent after the
 *                      restart
 *
 * Threads: producers run on any worker; each worker buffers its events of one loop iteration
 * and then appends them to one locked intake list, which wakes worker 0 once while it is
 * non-empty: a burst costs one lock per worker iteration and one post, not one per event. Worker 0's loop owns the HTTP client (httpc), the queues and the timers. Every
 * queue is bounded (events admitted and not yet sent or dropped); beyond a bound the new
 * event is dropped and counted, so a dead receiver never grows memory nor slows delivery.
 * Without a webhook the producers cost one branch (webhook_wants). */
#ifndef MP_INTEG_WEBHOOK_H
#define MP_INTEG_WEBHOOK_H

#include <jansson.h>

#include "../common/mp.h"
#include "../config/config.h"
#include "../core/msg.h"
#include "../core/worker.h"

enum { WEBHOOK_ONLINESTATUS = 0, WEBHOOK_OFFLINE = 1, WEBHOOK_NOTIFY = 2, WEBHOOK_EVENT_COUNT = 3 };

extern unsigned webhook_focus_;   /* bit per wanted event; 0 without a webhook. Set by webhook_init */
extern int webhook_master_only_;  /* msg.offline: only master connections count as online */

/* 1 when event (WEBHOOK_*) is configured and in focusEvents. */
static inline int webhook_wants(int event) { return (int)((webhook_focus_ >> event) & 1u); }

/* Once, before the workers run. Keeps cfg. Loads the msg.notify events a clean shutdown
 * left in <dataDir>. */
void webhook_init(const mp_config *cfg);
/* For each worker after webhook_init, before the loops run: its event buffer's handles. */
void webhook_worker_start(worker *w);
/* On each worker while shutting down (loops still running): hand over the worker's buffer
 * (later events go straight to the intake); on worker 0, also fail what is in flight and
 * close the HTTP client and timer; events produced later stay queued. */
void webhook_worker_stop(worker *w);
/* After the loops ended: write pending msg.notify events to <dataDir>, free everything. */
void webhook_free(void);

/* ---- producers (any worker) ---- */

/* user.onlinestatus: "<uid>-<flag>-<online>-<connId>-<flagCount>-<totalCount>". */
void webhook_online_status(mp_str uid, uint8_t device_flag, int online, uint64_t conn_id, size_t flag_count,
                           size_t total_count);
/* msg.notify for a persisted message (takes its own reference). */
void webhook_msg_notify(mp_msg *m);

/* msg.offline. A recipient is offline when none of its connections counts as online: with
 * tokenAuthOn, only master (device_level 1) connections count (spec §5.2); without token
 * auth every connection is a slave, and Magpie counts any connection (WuKongIM would
 * report every online recipient). The fan-out is split by presence owner, so the offline
 * recipients arrive in parts: the sender's thread reports the members the online filter
 * already proves offline, and each owner those of its batch. Worker 0 assembles them,
 * removes the sender, the system uid and duplicates, and posts once all parts arrived
 * (nothing when no recipient is offline). */
static inline int webhook_offline_wanted(const mp_msg *m) {
    return webhook_wants(WEBHOOK_OFFLINE) && m->f.kind == MSG_KIND_MESSAGE && m->f.channel_type != CHANNEL_AGENT;
}
static inline int webhook_counts_online(uint8_t device_level) { return device_level == 1 || !webhook_master_only_; }

/* uids of one part, NUL-separated; owned by whoever fills it until webhook_offline_part. */
typedef struct webhook_uids {
    char *buf;
    size_t len, cap;
} webhook_uids;
void webhook_uids_add(webhook_uids *u, mp_str uid);

/* One message's collection; owned by the webhook module. */
typedef struct webhook_offline webhook_offline;
/* A collection for m expecting `parts` calls of webhook_offline_part, or NULL when the
 * msg.offline queue is full (counted as dropped). */
webhook_offline *webhook_offline_begin(mp_msg *m, int parts);
/* Hand over one part (u's buffer moves; u is left empty). Must be called exactly `parts`
 * times, also with nothing in u. */
void webhook_offline_part(webhook_offline *o, webhook_uids *u);

/* ---- counters (any thread) ---- */

typedef struct webhook_event_stats {
    uint64_t sent;    /* events delivered (HTTP 200) */
    uint64_t failed;  /* POST attempts that failed (transport error or status != 200) */
    uint64_t dropped; /* events given up: retries exhausted, queue full, no retry, shutdown */
    uint64_t pending; /* events accepted and not yet sent or dropped */
} webhook_event_stats;

typedef struct webhook_stats {
    int enabled;
    webhook_event_stats ev[WEBHOOK_EVENT_COUNT]; /* indexed by WEBHOOK_* */
} webhook_stats;

void webhook_stats_get(webhook_stats *out);
/* The /varz "webhook" object (new reference). */
json_t *webhook_stats_json(void);
/* "user.onlinestatus", "msg.offline", "msg.notify". */
const char *webhook_event_name(int event);

#endif
