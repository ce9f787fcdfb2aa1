/* datasource.c - per-worker cache of business-system answers, fetched through the
 * worker's own httpc, with continuations parked while an answer is pending (datasource.h). */
#include "datasource.h"

#include <stdatomic.h>
#include <stdio.h>

#include "../common/log.h"
#include "../common/map.h"
#include "../core/sysuid.h"
#include "../core/msg.h"
#include "../store/store.h"
#include "httpc.h"

#define MAX_ANSWER (64u * 1024 * 1024) /* a subscriber list of a very large group fits */
#define DOWN_LOG_INTERVAL_MS 10000     /* at most one "datasource down" line per interval */
#define SYS_RETRY_MS 1000             /* a failed getSystemUIDs is asked again after this */
#define N_SETS 3                       /* enum store_set: subscribers, blacklist, whitelist */

int ds_on_;
static const mp_config *g_cfg;
static atomic_int g_sys_loaded; /* getSystemUIDs answered once (then never asked again) */
static atomic_int g_down;       /* the last request failed */
static _Atomic uint64_t g_down_logged_ms;

static struct {
    _Atomic uint64_t ok[DS_CMD_COUNT], failed[DS_CMD_COUNT];
    _Atomic uint64_t hits, misses, parked, refused_full, unavailable, fallbacks, outages;
} g_stats;

static const char *const cmd_names[DS_CMD_COUNT] = {"getSubscribers", "getBlacklist", "getWhitelist",
                                                    "getChannelInfo", "getSystemUIDs"};

typedef struct park {
    worker_fn fn;
    void *arg;
    struct park *next;
} park;

/* One answer set: the uid sets carried (NULL = not asked) and the channel info. */
typedef struct ds_data {
    mp_map *sets[N_SETS];
    int has_info, ban, disband, large;
} ds_data;

enum { E_IDLE, E_PENDING, E_RESUMING };

struct ds_entry {
    uint8_t type;
    mp_str id;      /* owned copy */
    int is_sys;     /* the worker's getSystemUIDs entry */
    int state;      /* E_*: RESUMING while the parked continuations run */
    int failed;     /* the last fetch failed (read while RESUMING) */
    int stale;      /* invalidated while pending: do not keep the answer */
    int has_data;
    ds_data cur;    /* answers in use */
    ds_data next;   /* answers of the fetch in flight */
    int reqs_left;
    int req_failed;
    uint64_t gen, fetched_ms;
    park *head, *tail;
    size_t n_parked;
};

typedef struct ds_worker {
    worker *w;
    httpc *h;        /* created on first need */
    mp_map *entries; /* type byte + id -> ds_entry */
    ds_entry sys;
    uint64_t gen;
    uint64_t swept_ms; /* monotonic: last sweep of expired entries */
    uint64_t sys_failed_ms; /* monotonic: when getSystemUIDs last failed, 0 = it did not */
    int stopped;
} ds_worker;

static ds_worker *g_workers[MP_MAX_WORKERS]; /* each touched only by its own worker thread */

typedef struct ds_req {
    ds_worker *ws;
    ds_entry *e;
    int cmd;
} ds_req;

void ds_init(const mp_config *cfg) {
    g_cfg = cfg;
    ds_on_ = cfg->datasource_addr && cfg->datasource_addr[0];
}

const char *ds_cmd_name(int cmd) { return cmd >= 0 && cmd < DS_CMD_COUNT ? cmd_names[cmd] : "?"; }

static int deny_on_failure(void) { return strcmp(g_cfg->datasource_on_failure, "stored") != 0; }

static ds_worker *worker_state(worker *w) {
    ds_worker *ws = g_workers[w->index];
    if (!ws) {
        ws = mp_calloc(1, sizeof *ws);
        ws->w = w;
        ws->entries = map_new();
        ws->sys.is_sys = 1;
        g_workers[w->index] = ws;
    }
    return ws;
}

/* ---- answers ------------------------------------------------------------------------------ */

static void data_free(ds_data *d) {
    for (int i = 0; i < N_SETS; i++) map_free(d->sets[i], NULL);
    memset(d, 0, sizeof *d);
}

static char g_member; /* the value of every set member */

/* A JSON array of strings into a new set (NULL if the body is not one). */
static mp_map *parse_uid_array(json_t *root) {
    if (!json_is_array(root)) return NULL;
    mp_map *m = map_new();
    size_t i;
    json_t *v;
    json_array_foreach(root, i, v) {
        if (!json_is_string(v)) {
            map_free(m, NULL);
            return NULL;
        }
        map_put(m, json_string_value(v), json_string_length(v), &g_member);
    }
    return m;
}

/* 0/1 from a JSON integer or bool; absent = 0. */
static int flag_of(json_t *o, const char *key) {
    json_t *v = json_object_get(o, key);
    return json_is_true(v) || (json_is_integer(v) && json_integer_value(v) != 0);
}

static int parse_info(json_t *root, ds_data *d) {
    if (!json_is_object(root)) return MP_EINVAL;
    d->has_info = 1;
    d->ban = flag_of(root, "ban");
    d->disband = flag_of(root, "disband");
    d->large = flag_of(root, "large");
    return MP_OK;
}

/* Merge a JSON array of uids into the system accounts (sysuid.h), all or nothing. */
static int add_sysuids(json_t *root) {
    if (!json_is_array(root)) return MP_EINVAL;
    size_t i, n = json_array_size(root);
    json_t *v;
    json_array_foreach(root, i, v) if (!json_is_string(v)) return MP_EINVAL;
    mp_str *uids = mp_malloc((n ? n : 1) * sizeof *uids);
    json_array_foreach(root, i, v) uids[i] = (mp_str){json_string_value(v), (uint32_t)json_string_length(v)};
    sysuid_add(uids, n);
    free(uids);
    return MP_OK;
}

/* Parse one 200 answer into e->next (or the system uid set). */
static int take_answer(ds_entry *e, int cmd, const char *body, size_t len) {
    json_t *root = json_loadb(body, len, JSON_DECODE_ANY, NULL);
    if (!root) return MP_EINVAL;
    int rc = MP_OK;
    if (cmd == DS_CMD_SYSTEM_UIDS) rc = add_sysuids(root);
    else if (cmd == DS_CMD_CHANNEL_INFO) rc = parse_info(root, &e->next);
    else if (!(e->next.sets[cmd] = parse_uid_array(root))) rc = MP_EINVAL; /* DS_CMD_* == store_set */
    json_decref(root);
    return rc;
}

/* One line when the datasource stops answering (at most one per DOWN_LOG_INTERVAL_MS), one
 * when it answers again. */
static void note_outcome(int cmd, const httpc_response *res, int ok) {
    if (ok) {
        if (atomic_exchange(&g_down, 0)) LOG_INFO("datasource", "datasource answers again addr=%s", g_cfg->datasource_addr);
        return;
    }
    if (atomic_exchange(&g_down, 1)) return;
    atomic_fetch_add(&g_stats.outages, 1);
    uint64_t now = mp_mono_ms(), last = atomic_load(&g_down_logged_ms);
    if (last && now - last < DOWN_LOG_INTERVAL_MS) return;
    atomic_store(&g_down_logged_ms, now);
    char why[160];
    if (res->error) snprintf(why, sizeof why, "%s", res->error);
    else if (res->status == 200) snprintf(why, sizeof why, "an answer that is not the expected JSON");
    else snprintf(why, sizeof why, "HTTP %d", res->status);
    LOG_WARN("datasource", "datasource is not answering (%s) addr=%s cmd=%s onFailure=%s", why, g_cfg->datasource_addr, cmd_names[cmd],
             g_cfg->datasource_on_failure);
}

/* ---- fetching ----------------------------------------------------------------------------- */

static void finish(ds_worker *ws, ds_entry *e);

static void on_answer(void *arg, const httpc_response *res) {
    ds_req *q = arg;
    ds_entry *e = q->e;
    int ok = res->status == 200 && take_answer(e, q->cmd, res->body, res->body_len) == MP_OK;
    atomic_fetch_add(ok ? &g_stats.ok[q->cmd] : &g_stats.failed[q->cmd], 1);
    note_outcome(q->cmd, res, ok);
    if (!ok) e->req_failed = 1;
    ds_worker *ws = q->ws;
    free(q);
    if (--e->reqs_left == 0) finish(ws, e);
}

static httpc *client_of(ds_worker *ws) {
    if (!ws->h && !ws->stopped) ws->h = httpc_new(&ws->w->loop);
    return ws->h;
}

/* Start one command; 0 when it could not start (counted as failed). */
static int ask(ds_worker *ws, ds_entry *e, int cmd) {
    json_t *data = json_object();
    if (!e->is_sys) {
        json_object_set_new(data, "channel_id", json_stringn(e->id.p, e->id.len));
        json_object_set_new(data, "channel_type", json_integer(e->type));
    }
    json_t *o = json_pack("{s:s,s:o}", "cmd", cmd_names[cmd], "data", data);
    char *body = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    ds_req *q = mp_malloc(sizeof *q);
    *q = (ds_req){ws, e, cmd};
    httpc *h = client_of(ws);
    int rc = h && body ? httpc_post_json(h, g_cfg->datasource_addr, body, strlen(body), g_cfg->datasource_timeout_ms,
                                         MAX_ANSWER, on_answer, q)
                       : MP_ECLOSED;
    free(body);
    if (rc == MP_OK) return 1;
    free(q);
    atomic_fetch_add(&g_stats.failed[cmd], 1);
    return 0;
}

/* The commands an entry needs (spec §7, v1): system uids; or the lists, plus subscribers
 * for non-person channels and the info when channelInfoOn. 0 if none could start. */
static int start_fetch(ds_worker *ws, ds_entry *e) {
    int cmds[4], n = 0;
    if (e->is_sys) {
        cmds[n++] = DS_CMD_SYSTEM_UIDS;
    } else {
        if (e->type != CHANNEL_PERSON) cmds[n++] = DS_CMD_SUBSCRIBERS;
        cmds[n++] = DS_CMD_BLACKLIST;
        cmds[n++] = DS_CMD_WHITELIST;
        if (g_cfg->datasource_channel_info_on) cmds[n++] = DS_CMD_CHANNEL_INFO;
    }
    e->state = E_PENDING;
    e->req_failed = 0;
    e->reqs_left = n + 1; /* +1 until every request is started: none may finish the fetch early */
    for (int i = 0; i < n; i++)
        if (!ask(ws, e, cmds[i])) {
            e->req_failed = 1;
            e->reqs_left--;
        }
    if (--e->reqs_left == 0) { /* nothing started: finished (failed) already */
        finish(ws, e);
        return 0;
    }
    return 1;
}

static void free_entry(void *p) {
    ds_entry *e = p;
    data_free(&e->cur);
    data_free(&e->next);
    while (e->head) { /* only at exit, after the loops ended: the continuations are gone */
        park *k = e->head;
        e->head = k->next;
        free(k);
    }
    free((void *)e->id.p);
    free(e);
}

/* Entry key: type byte + id. */
static size_t entry_key(uint8_t type, mp_str id, char *stack, size_t cap, char **key) {
    size_t klen = (size_t)id.len + 1;
    *key = klen <= cap ? stack : mp_malloc(klen);
    (*key)[0] = (char)type;
    memcpy(*key + 1, id.p, id.len);
    return klen;
}

static void drop_entry(ds_worker *ws, ds_entry *e) {
    char stack[256], *key;
    size_t klen = entry_key(e->type, e->id, stack, sizeof stack, &key);
    map_del(ws->entries, key, klen);
    if (key != stack) free(key);
    free_entry(e);
}

/* The fetch is complete: keep or drop the answers, then run the parked continuations in
 * order. While they run the entry counts as fresh, so none of them parks again on it. */
static void finish(ds_worker *ws, ds_entry *e) {
    int ok = !e->req_failed;
    data_free(&e->cur);
    if (ok) {
        e->cur = e->next;
        memset(&e->next, 0, sizeof e->next);
        e->has_data = 1;
        e->gen = ++ws->gen;
        e->fetched_ms = mp_mono_ms();
        if (e->is_sys) atomic_store(&g_sys_loaded, 1);
    } else {
        data_free(&e->next);
        e->has_data = 0;
        if (e->is_sys) ws->sys_failed_ms = mp_mono_ms();
    }
    e->state = E_RESUMING;
    e->failed = !ok;
    park *list = e->head;
    e->head = e->tail = NULL;
    e->n_parked = 0;
    while (list) {
        park *k = list;
        list = k->next;
        k->fn(ws->w, k->arg);
        free(k);
    }
    e->state = E_IDLE;
    if (e->stale) {
        data_free(&e->cur);
        e->has_data = 0;
        e->stale = 0;
    }
    if (!e->has_data && !e->is_sys) drop_entry(ws, e); /* the next need asks again */
}

/* ---- the gate ----------------------------------------------------------------------------- */

static ds_gate park_on(ds_entry *e, worker_fn fn, void *arg) {
    if (e->n_parked >= g_cfg->datasource_max_parked) {
        atomic_fetch_add(&g_stats.refused_full, 1);
        return DS_FULL;
    }
    park *k = mp_malloc(sizeof *k);
    *k = (park){fn, arg, NULL};
    if (e->tail) e->tail->next = k;
    else e->head = k;
    e->tail = k;
    e->n_parked++;
    atomic_fetch_add(&g_stats.parked, 1);
    return DS_PARKED;
}

/* What a failed fetch means for the caller. */
static ds_gate failed_gate(const ds_entry **out) {
    *out = NULL;
    if (deny_on_failure()) {
        atomic_fetch_add(&g_stats.unavailable, 1);
        return DS_DOWN;
    }
    atomic_fetch_add(&g_stats.fallbacks, 1);
    return DS_GO;
}

static int expired(const ds_entry *e) {
    uint32_t ttl = g_cfg->datasource_cache_ttl_ms;
    return ttl && mp_mono_ms() - e->fetched_ms >= ttl;
}

static ds_entry *entry_get(ds_worker *ws, uint8_t type, mp_str id, int create) {
    char stack[256], *key;
    size_t klen = entry_key(type, id, stack, sizeof stack, &key);
    ds_entry *e = map_get(ws->entries, key, klen);
    if (!e && create) {
        e = mp_calloc(1, sizeof *e);
        e->type = type;
        e->id = (mp_str){mp_strndup(id.p, id.len), id.len};
        map_put(ws->entries, key, klen, e);
    }
    if (key != stack) free(key);
    return e;
}

typedef struct expired_list {
    ds_entry **v;
    size_t n, cap;
} expired_list;

static int collect_expired(void *ctx, const void *key, size_t klen, void *val) {
    (void)key;
    (void)klen;
    expired_list *l = ctx;
    ds_entry *e = val;
    if (e->state != E_IDLE || !expired(e)) return 0;
    if (l->n == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 16;
        l->v = mp_realloc(l->v, l->cap * sizeof *l->v);
    }
    l->v[l->n++] = e;
    return 0;
}

/* With a TTL, answers nobody asked for again within it are dropped (one pass per TTL, when
 * an answer is needed; no timer), so channels no longer used do not keep memory. */
static void sweep_expired(ds_worker *ws) {
    uint32_t ttl = g_cfg->datasource_cache_ttl_ms;
    uint64_t now = mp_mono_ms();
    if (!ttl || now - ws->swept_ms < ttl) return;
    ws->swept_ms = now;
    expired_list l = {NULL, 0, 0};
    map_foreach(ws->entries, collect_expired, &l);
    for (size_t i = 0; i < l.n; i++) drop_entry(ws, l.v[i]);
    free(l.v);
}

/* The system uids come first: a continuation parked behind them, or behind the worker's
 * pending fetch of them (so nothing overtakes what is parked there), waits. */
static int sys_pending(ds_worker *ws) {
    ds_entry *s = &ws->sys;
    if (s->state == E_PENDING) return 1;
    if (s->state == E_RESUMING || atomic_load(&g_sys_loaded)) return 0;
    /* after a failure, sends go on without them for a while rather than each paying a
     * round trip to a datasource that does not answer this command */
    if (ws->sys_failed_ms && mp_mono_ms() - ws->sys_failed_ms < SYS_RETRY_MS) return 0;
    return start_fetch(ws, s); /* a fetch that could not start: go on without them */
}

ds_gate ds_acquire(worker *w, uint8_t type, mp_str id, worker_fn resume, void *arg, const ds_entry **out) {
    ds_worker *ws = worker_state(w);
    *out = NULL;
    ds_entry *e = entry_get(ws, type, id, 0);
    if (e && e->state == E_RESUMING) { /* resumed from e: it passed the system uids already */
        if (e->failed) return failed_gate(out);
        *out = e;
        return DS_GO;
    }
    if (sys_pending(ws)) return park_on(&ws->sys, resume, arg);
    if (!g_cfg->datasource_channel_data_on) return DS_GO; /* v2.2.5: the store has the channel data */
    sweep_expired(ws);
    e = entry_get(ws, type, id, 1); /* the sweep may have dropped it */
    if (e->state == E_IDLE && e->has_data && !expired(e)) {
        atomic_fetch_add(&g_stats.hits, 1);
        *out = e;
        return DS_GO;
    }
    if (e->state == E_IDLE) {
        atomic_fetch_add(&g_stats.misses, 1);
        if (!start_fetch(ws, e)) return failed_gate(out); /* e was dropped */
    }
    return park_on(e, resume, arg);
}

const ds_entry *ds_peek(uint8_t type, mp_str id) {
    worker *w = worker_current();
    ds_worker *ws = w ? g_workers[w->index] : NULL;
    ds_entry *e = ws ? entry_get(ws, type, id, 0) : NULL;
    return e && e->has_data ? e : NULL;
}

/* ---- readers ------------------------------------------------------------------------------- */

int ds_contains(const ds_entry *e, int set, mp_str uid) {
    const mp_map *m = set >= 0 && set < N_SETS ? e->cur.sets[set] : NULL;
    return m ? map_get(m, uid.p, uid.len) != NULL : -1;
}

int ds_nonempty(const ds_entry *e, int set) {
    const mp_map *m = set >= 0 && set < N_SETS ? e->cur.sets[set] : NULL;
    return m ? map_count(m) > 0 : -1;
}

typedef struct each_ctx {
    int (*fn)(void *ctx, mp_str uid);
    void *ctx;
} each_ctx;

static int each_key(void *ctx, const void *key, size_t klen, void *val) {
    (void)val;
    each_ctx *c = ctx;
    return c->fn(c->ctx, (mp_str){key, (uint32_t)klen});
}

int ds_each(const ds_entry *e, int set, int (*fn)(void *ctx, mp_str uid), void *ctx) {
    const mp_map *m = set >= 0 && set < N_SETS ? e->cur.sets[set] : NULL;
    if (!m) return -1;
    each_ctx c = {fn, ctx};
    map_foreach(m, each_key, &c);
    return 0;
}

int ds_info(const ds_entry *e, int *ban, int *disband) {
    if (!e->cur.has_info) return 0;
    *ban = e->cur.ban;
    *disband = e->cur.disband;
    return 1;
}

uint64_t ds_generation(const ds_entry *e) { return e->gen; }

/* ---- invalidation and shutdown --------------------------------------------------------------- */

/* An entry's map key travelling to a worker. */
typedef struct key_msg {
    size_t len;
    char key[];
} key_msg;

static void do_invalidate(worker *w, void *arg) {
    key_msg *m = arg;
    ds_worker *ws = g_workers[w->index];
    ds_entry *e = ws ? map_get(ws->entries, m->key, m->len) : NULL;
    if (e && e->state == E_IDLE) drop_entry(ws, e);
    else if (e) e->stale = 1; /* the answer in flight may predate the change */
    free(m);
}

void ds_invalidate(uint8_t type, mp_str id) {
    if (!ds_enabled()) return;
    for (int i = 0; i < workers_count(); i++) {
        key_msg *m = mp_malloc(sizeof *m + id.len + 1);
        char *key = m->key;
        m->len = entry_key(type, id, key, id.len + 1, &key);
        worker_post(i, do_invalidate, m);
    }
}

void ds_worker_stop(worker *w) {
    ds_worker *ws = g_workers[w->index];
    if (!ws) return;
    ws->stopped = 1;
    if (ws->h) httpc_close(ws->h); /* fails what is in flight: parked work resumes */
    ws->h = NULL;
}

void ds_worker_free(worker *w) {
    ds_worker *ws = g_workers[w->index];
    if (!ws) return;
    map_free(ws->entries, free_entry);
    data_free(&ws->sys.cur);
    data_free(&ws->sys.next);
    free(ws);
    g_workers[w->index] = NULL;
}

/* ---- counters -------------------------------------------------------------------------------- */

void ds_stats_get(ds_stats *out) {
    for (int i = 0; i < DS_CMD_COUNT; i++) {
        out->ok[i] = atomic_load(&g_stats.ok[i]);
        out->failed[i] = atomic_load(&g_stats.failed[i]);
    }
    out->cache_hits = atomic_load(&g_stats.hits);
    out->cache_misses = atomic_load(&g_stats.misses);
    out->parked = atomic_load(&g_stats.parked);
    out->refused_full = atomic_load(&g_stats.refused_full);
    out->unavailable = atomic_load(&g_stats.unavailable);
    out->fallbacks = atomic_load(&g_stats.fallbacks);
    out->outages = atomic_load(&g_stats.outages);
}

json_t *ds_stats_json(void) {
    ds_stats s;
    ds_stats_get(&s);
    json_t *req = json_object();
    for (int i = 0; i < DS_CMD_COUNT; i++)
        json_object_set_new(req, cmd_names[i], json_pack("{s:I,s:I}", "ok", (json_int_t)s.ok[i], "failed",
                                                         (json_int_t)s.failed[i]));
    return json_pack("{s:b,s:o,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:b}", "enabled", ds_enabled(), "requests", req,
                     "cache_hits", (json_int_t)s.cache_hits, "cache_misses", (json_int_t)s.cache_misses, "parked",
                     (json_int_t)s.parked, "refused_full", (json_int_t)s.refused_full, "unavailable",
                     (json_int_t)s.unavailable, "fallbacks", (json_int_t)s.fallbacks, "outages",
                     (json_int_t)s.outages, "down", atomic_load(&g_down));
}
