/* datasource.h - channel data and system uids from the business system (spec §7, v1
 * behaviour; docs/datasource.md). With datasource.addr set, the channel owner asks
 *   getSubscribers (non-person channels), getBlacklist and getWhitelist (every channel; for
 *   a person channel the uid whose lists they are), getChannelInfo (channelInfoOn only)
 * the first time it needs a channel's data (unless datasource.channelDataOn is false, as in
 * WuKongIM v2.2.5), and getSystemUIDs (merged into sysuid.h's set)
 * before the first send check. Answers are cached per worker for datasource.cacheTTL
 * (0 = until the HTTP API changes the same data) and dropped by ds_invalidate.
 *
 * Nothing blocks: each worker owns an httpc (created on first need, closed by
 * ds_worker_stop). While an answer is pending, callers park a continuation on the entry;
 * the continuations run on the same worker, in parking order, once it arrives or fails.
 *
 * Thread rule: ds_acquire, ds_peek and the ds_entry readers run on the worker that owns the
 * channel (each worker has its own cache); ds_invalidate and ds_stats_* on any thread. */
#ifndef MP_INTEG_DATASOURCE_H
#define MP_INTEG_DATASOURCE_H

#include <jansson.h>

#include "../common/mp.h"
#include "../config/config.h"
#include "../core/worker.h"

/* Cached answers for one (channel type, id) on one worker. Owned by the datasource module;
 * a pointer handed out is valid until control returns to the worker's loop. */
typedef struct ds_entry ds_entry;

extern int ds_on_; /* set once by ds_init; read through ds_enabled() */

/* 1 when a datasource is configured: the one branch the send path pays without one. */
static inline int ds_enabled(void) { return ds_on_; }

/* Once, before the workers run. Keeps cfg (it must outlive the workers). */
void ds_init(const mp_config *cfg);
/* On w's thread when shutting down, while its loop still runs: every pending answer fails
 * (its parked work resumes and is refused or falls back) and the HTTP client closes. Later
 * needs fail at once. */
void ds_worker_stop(worker *w);
/* After the loops ended: free w's cache. */
void ds_worker_free(worker *w);

typedef enum {
    DS_GO,     /* go on; *out = the answers, or NULL to use the store */
    DS_PARKED, /* resume(w, arg) runs later on w; it must call ds_acquire again */
    DS_DOWN,   /* the datasource failed and onFailure is deny: refuse */
    DS_FULL,   /* too many continuations parked on this channel (datasource.maxParked) */
} ds_gate;

/* On the owner worker w: the datasource answers for (type, id) (a person channel: id is
 * the uid whose lists are needed), fetched when not cached or expired. The system uids
 * are loaded first (their failure only means no datasource system uids this time, as in
 * WuKongIM v2). On DS_PARKED the module keeps arg until resume runs. */
ds_gate ds_acquire(worker *w, uint8_t type, mp_str id, worker_fn resume, void *arg, const ds_entry **out);
/* The cached answers for (type, id) on the current worker without asking (possibly
 * expired, never pending ones), or NULL. */
const ds_entry *ds_peek(uint8_t type, mp_str id);

/* Readers. set is enum store_set (STORE_SUBSCRIBERS, ...). -1 = the entry does not carry
 * that set (ask the store), else 0/1. */
int ds_contains(const ds_entry *e, int set, mp_str uid);
int ds_nonempty(const ds_entry *e, int set);
/* Call fn for each member (stops when fn returns nonzero); -1 if the set is not carried. */
int ds_each(const ds_entry *e, int set, int (*fn)(void *ctx, mp_str uid), void *ctx);
/* 1 and the flags when the entry carries channel info (channelInfoOn), else 0. */
int ds_info(const ds_entry *e, int *ban, int *disband);
/* Changes whenever the entry's answers are replaced (to refresh copies made of them). */
uint64_t ds_generation(const ds_entry *e);

/* The HTTP API changed data of (type, id): every worker drops its cached answers for it. */
void ds_invalidate(uint8_t type, mp_str id);

enum { DS_CMD_SUBSCRIBERS, DS_CMD_BLACKLIST, DS_CMD_WHITELIST, DS_CMD_CHANNEL_INFO, DS_CMD_SYSTEM_UIDS, DS_CMD_COUNT };

typedef struct ds_stats {
    uint64_t ok[DS_CMD_COUNT], failed[DS_CMD_COUNT]; /* requests by command */
    uint64_t cache_hits, cache_misses;               /* ds_acquire found answers / had to ask */
    uint64_t parked;                                 /* continuations parked behind an answer */
    uint64_t refused_full;                           /* DS_FULL answers */
    uint64_t unavailable;                            /* DS_DOWN answers (deny) */
    uint64_t fallbacks;                              /* answers that fell back to the store (stored) */
    uint64_t outages;                                /* times the datasource went from answering to down */
} ds_stats;

/* The counters since start (for /varz and /metrics). */
void ds_stats_get(ds_stats *out);
/* Name of a DS_CMD_* ("getSubscribers", ...). */
const char *ds_cmd_name(int cmd);
/* The counters as the /varz "datasource" object (new reference). */
json_t *ds_stats_json(void);

#endif
