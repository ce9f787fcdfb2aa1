/* webhook.c - spec §6 events, produced on any worker and sent from worker 0's loop
 * (webhook.h). */
#include "webhook.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>

#include "../api/message_resp.h"
#include "../common/log.h"
#include "../common/map.h"
#include "httpc.h"

#define HOME_WORKER 0
#define HTTP_TIMEOUT_MS 30000      /* spec §6.1: the WuKongIM client's total timeout */
#define ANSWER_MAX (64 * 1024)     /* the answer is ignored; a bigger one is still a failure */
#define BACKOFF_MAX_MS 30000       /* retry delays double from the push interval up to this */
#define ONLINE_PER_POST 1000       /* user.onlinestatus entries in one POST */
#define OFFLINE_CONCURRENCY 64     /* msg.offline POSTs in flight */
#define LOG_EVERY_MS 10000         /* failure and drop reports, per event type */
#define NOTIFY_FILE "webhook-notify.jsonl"
#define NOTIFY_BYTES_MAX (64u << 20)  /* payload bytes of pending msg.notify events */
#define OFFLINE_BYTES_MAX (64u << 20) /* msg.offline bodies waiting (a big group's to_uids is big) */

unsigned webhook_focus_;
int webhook_master_only_;
static uint64_t g_pending_max; /* webhook.maxPending: per event type, accepted and not yet sent or dropped */

static const char *const event_names[WEBHOOK_EVENT_COUNT] = {"user.onlinestatus", "msg.offline", "msg.notify"};

const char *webhook_event_name(int event) { return event_names[event]; }

/* ---- counters and rate-limited reports (any thread) ---- */

static _Atomic uint64_t g_sent[WEBHOOK_EVENT_COUNT], g_failed[WEBHOOK_EVENT_COUNT], g_dropped[WEBHOOK_EVENT_COUNT],
    g_pending[WEBHOOK_EVENT_COUNT];
static _Atomic uint64_t g_notify_bytes, g_offline_bytes;
static _Atomic uint64_t g_last_log_ms[WEBHOOK_EVENT_COUNT];

static void count(_Atomic uint64_t *c, int ev, uint64_t n) { atomic_fetch_add_explicit(&c[ev], n, memory_order_relaxed); }

/* At most one line per event type every LOG_EVERY_MS; the counters carry the rest. */
static void report(int ev, const char *what, const char *why) {
    uint64_t now = mp_mono_ms(), last = atomic_load_explicit(&g_last_log_ms[ev], memory_order_relaxed);
    if (last && now - last < LOG_EVERY_MS) return;
    if (!atomic_compare_exchange_strong(&g_last_log_ms[ev], &last, now)) return;
    LOG_WARN("webhook", "%s (%s) event=%s sent=%" PRIu64 " failed_attempts=%" PRIu64 " dropped=%" PRIu64,
             what, why, event_names[ev], atomic_load(&g_sent[ev]), atomic_load(&g_failed[ev]),
             atomic_load(&g_dropped[ev]));
}

static void drop(int ev, uint64_t n, const char *why) {
    count(g_dropped, ev, n);
    atomic_fetch_sub_explicit(&g_pending[ev], n, memory_order_relaxed);
    report(ev, "events dropped", why);
}

static void delivered(int ev, uint64_t n) {
    count(g_sent, ev, n);
    atomic_fetch_sub_explicit(&g_pending[ev], n, memory_order_relaxed);
}

/* Reserve room for one event; 0 (counted, reported) when its queue is full. */
static int admit(int ev) {
    if (atomic_fetch_add_explicit(&g_pending[ev], 1, memory_order_relaxed) < g_pending_max) return 1;
    atomic_fetch_sub_explicit(&g_pending[ev], 1, memory_order_relaxed);
    count(g_dropped, ev, 1);
    report(ev, "events dropped", "queue full: the receiver is too slow or down");
    return 0;
}

/* 1 when the bytes held by an event type's queue are within max; else the event is dropped
 * (counted, reported). */
static int bytes_ok(int ev, _Atomic uint64_t *bytes, uint64_t max) {
    if (atomic_load_explicit(bytes, memory_order_relaxed) <= max) return 1;
    count(g_dropped, ev, 1);
    report(ev, "events dropped", "the bytes waiting are above the bound");
    return 0;
}

/* ---- state ---- */

typedef struct notify_entry {
    mp_msg *m;    /* a message of this run, or NULL ... */
    json_t *json; /* ... a MessageResp loaded from the previous run */
    uint32_t fails;
} notify_entry;

struct webhook_offline {
    mp_msg *m;
    int parts_left;
    uint32_t push_ts;
    json_t *to_uids;
    mp_map *seen; /* uid -> (void *)1, to drop duplicates */
    webhook_offline *prev, *next; /* g.collecting, under g.lock */
};

typedef enum { IN_ONLINE, IN_NOTIFY, IN_OFFLINE_PART } in_kind;

typedef struct in_item {
    struct in_item *next;
    in_kind kind;
    mp_msg *m;            /* IN_NOTIFY */
    webhook_offline *o;   /* IN_OFFLINE_PART */
    webhook_uids uids;    /* IN_OFFLINE_PART */
    char text[];          /* IN_ONLINE */
} in_item;

/* A FIFO ring of T, grown on demand (its length is bounded by admit). */
#define DEQ(T)                                                                                                         \
    struct {                                                                                                           \
        T *v;                                                                                                          \
        size_t head, len, cap;                                                                                         \
    }

static struct {
    const mp_config *cfg;
    char *url[WEBHOOK_EVENT_COUNT];
    /* intake, any thread */
    pthread_mutex_t lock;
    in_item *in_head, *in_tail;
    int wake_posted;
    webhook_offline *collecting;
    /* worker 0 */
    httpc *h;
    uv_timer_t tick;
    int tried, started, stopping;
    DEQ(notify_entry) notify;
    size_t notify_batch; /* entries at the front of notify being posted; 0 = none */
    uint32_t notify_streak; /* consecutive failed msg.notify POSTs */
    uint64_t notify_retry_at;
    DEQ(char *) online;
    size_t online_batch;
    uint32_t online_fails;
    uint64_t online_retry_at;
    DEQ(char *) offline; /* bodies waiting for a slot */
    int offline_inflight;
} g = {.lock = PTHREAD_MUTEX_INITIALIZER};

#define DEQ_AT(d, i) ((d).v[((d).head + (i)) % (d).cap])
#define DEQ_PUSH(d, x)                                                                                                 \
    do {                                                                                                               \
        if ((d).len == (d).cap) {                                                                                      \
            size_t ncap_ = (d).cap ? (d).cap * 2 : 64;                                                                 \
            void *nv_ = mp_malloc(ncap_ * sizeof *(d).v);                                                              \
            for (size_t i_ = 0; i_ < (d).len; i_++)                                                                    \
                memcpy((char *)nv_ + i_ * sizeof *(d).v, &DEQ_AT(d, i_), sizeof *(d).v);                               \
            free((d).v);                                                                                               \
            (d).v = nv_;                                                                                               \
            (d).head = 0;                                                                                              \
            (d).cap = ncap_;                                                                                           \
        }                                                                                                              \
        (d).v[((d).head + (d).len++) % (d).cap] = (x);                                                                 \
    } while (0)
#define DEQ_POP(d)                                                                                                     \
    do {                                                                                                               \
        (d).head = ((d).head + 1) % (d).cap;                                                                           \
        (d).len--;                                                                                                     \
    } while (0)

/* ---- intake (any thread) ---- */

static void on_intake(worker *w, void *arg);

/* Append the list first..last to the intake; one wake-up of the home worker per burst. */
static void intake_append(in_item *first, in_item *last) {
    pthread_mutex_lock(&g.lock);
    if (g.in_tail) g.in_tail->next = first;
    else g.in_head = first;
    g.in_tail = last;
    int wake = !g.wake_posted;
    g.wake_posted = 1;
    pthread_mutex_unlock(&g.lock);
    if (wake) worker_post(HOME_WORKER, on_intake, NULL);
}

/* Per-worker buffers: a worker's events of one loop iteration reach the intake with one lock,
 * flushed by a prepare and a check handle (so whatever phase produced them, they leave before
 * the loop blocks again). Each is touched only by its worker's thread. */
typedef struct out_buf {
    in_item *head, *tail;
    int active; /* handles open: buffer; else go straight to the intake */
    uv_prepare_t prepare;
    uv_check_t check;
} out_buf;

static out_buf g_out[MP_MAX_WORKERS];

static void out_flush(out_buf *b) {
    if (!b->head) return;
    intake_append(b->head, b->tail);
    b->head = b->tail = NULL;
}

static void on_out_prepare(uv_prepare_t *h) { out_flush(h->data); }
static void on_out_check(uv_check_t *h) { out_flush(h->data); }

static void intake_push(in_item *it) {
    it->next = NULL;
    worker *w = worker_current();
    out_buf *b = w ? &g_out[w->index] : NULL;
    if (!b || !b->active) {
        intake_append(it, it);
        return;
    }
    if (b->tail) b->tail->next = it;
    else b->head = it;
    b->tail = it;
}

void webhook_worker_start(worker *w) {
    if (!webhook_focus_) return;
    out_buf *b = &g_out[w->index];
    uv_prepare_init(&w->loop, &b->prepare);
    uv_check_init(&w->loop, &b->check);
    b->prepare.data = b->check.data = b;
    uv_prepare_start(&b->prepare, on_out_prepare);
    uv_check_start(&b->check, on_out_check);
    uv_unref((uv_handle_t *)&b->prepare); /* they must not keep the loop alive */
    uv_unref((uv_handle_t *)&b->check);
    b->active = 1;
}

static void out_stop(worker *w) {
    out_buf *b = &g_out[w->index];
    if (!b->active) return;
    out_flush(b);
    b->active = 0;
    uv_close((uv_handle_t *)&b->prepare, NULL);
    uv_close((uv_handle_t *)&b->check, NULL);
}

void webhook_online_status(mp_str uid, uint8_t device_flag, int online, uint64_t conn_id, size_t flag_count,
                           size_t total_count) {
    if (!admit(WEBHOOK_ONLINESTATUS)) return;
    char tail[96];
    int n = snprintf(tail, sizeof tail, "-%u-%d-%" PRIu64 "-%zu-%zu", device_flag, online ? 1 : 0, conn_id, flag_count,
                     total_count);
    in_item *it = mp_calloc(1, sizeof *it + uid.len + (size_t)n + 1);
    it->kind = IN_ONLINE;
    memcpy(it->text, uid.p, uid.len);
    memcpy(it->text + uid.len, tail, (size_t)n + 1);
    intake_push(it);
}

void webhook_msg_notify(mp_msg *m) {
    if (!bytes_ok(WEBHOOK_NOTIFY, &g_notify_bytes, NOTIFY_BYTES_MAX) || !admit(WEBHOOK_NOTIFY)) return;
    atomic_fetch_add_explicit(&g_notify_bytes, m->f.payload.len, memory_order_relaxed);
    in_item *it = mp_calloc(1, sizeof *it);
    it->kind = IN_NOTIFY;
    it->m = msg_ref(m);
    intake_push(it);
}

void webhook_uids_add(webhook_uids *u, mp_str uid) {
    if (u->len + uid.len + 1 > u->cap) {
        u->cap = (u->len + uid.len + 1) * 2;
        u->buf = mp_realloc(u->buf, u->cap);
    }
    memcpy(u->buf + u->len, uid.p, uid.len);
    u->buf[u->len + uid.len] = 0;
    u->len += uid.len + 1;
}

webhook_offline *webhook_offline_begin(mp_msg *m, int parts) {
    if (!bytes_ok(WEBHOOK_OFFLINE, &g_offline_bytes, OFFLINE_BYTES_MAX) || !admit(WEBHOOK_OFFLINE)) return NULL;
    webhook_offline *o = mp_calloc(1, sizeof *o);
    o->m = msg_ref(m);
    o->parts_left = parts;
    o->push_ts = (uint32_t)(mp_now_ns() / 1000000000u);
    pthread_mutex_lock(&g.lock);
    o->next = g.collecting; /* listed so that webhook_free finds one whose parts never came */
    if (o->next) o->next->prev = o;
    g.collecting = o;
    pthread_mutex_unlock(&g.lock);
    return o;
}

void webhook_offline_part(webhook_offline *o, webhook_uids *u) {
    in_item *it = mp_calloc(1, sizeof *it);
    it->kind = IN_OFFLINE_PART;
    it->o = o;
    it->uids = *u;
    *u = (webhook_uids){0};
    intake_push(it);
}

/* ---- sending (worker 0) ---- */

static int post(int ev, json_t *body, httpc_done_fn done, void *arg) {
    char *text = json_dumps(body, JSON_COMPACT);
    json_decref(body);
    MP_ASSERT(text);
    int rc = httpc_post_json(g.h, g.url[ev], text, strlen(text), HTTP_TIMEOUT_MS, ANSWER_MAX, done, arg);
    free(text);
    return rc;
}

static int answered_ok(int ev, const httpc_response *res) {
    if (res->status == 200) return 1;
    count(g_failed, ev, 1);
    char why[128];
    if (res->status) snprintf(why, sizeof why, "HTTP %d", res->status);
    else snprintf(why, sizeof why, "%s", res->error ? res->error : "no answer");
    report(ev, "POST failed", why);
    return 0;
}

static uint64_t backoff_ms(uint32_t failures) {
    uint64_t d = g.cfg->webhook_push_interval_ms;
    for (uint32_t i = 1; i < failures && d < BACKOFF_MAX_MS; i++) d *= 2;
    return d < BACKOFF_MAX_MS ? d : BACKOFF_MAX_MS;
}

static void pump(void);

/* -- msg.notify -- */

static json_t *notify_json(const notify_entry *e) { return e->m ? message_resp_json(&e->m->f) : json_incref(e->json); }

static void notify_entry_free(notify_entry *e) {
    if (e->m) {
        atomic_fetch_sub_explicit(&g_notify_bytes, e->m->f.payload.len, memory_order_relaxed);
        msg_unref(e->m);
    }
    json_decref(e->json);
}

static void notify_pop_front(size_t n) {
    for (size_t i = 0; i < n; i++) {
        notify_entry_free(&DEQ_AT(g.notify, 0));
        DEQ_POP(g.notify);
    }
}

/* A failed batch stays at the front; entries that reached the retry limit leave it. */
static void notify_batch_failed(size_t n) {
    size_t keep = 0, dropped = 0;
    for (size_t i = 0; i < n; i++) {
        notify_entry e = DEQ_AT(g.notify, i);
        if (++e.fails >= g.cfg->webhook_retry_max) {
            notify_entry_free(&e);
            dropped++;
        } else {
            DEQ_AT(g.notify, keep++) = e;
        }
    }
    /* survivors are packed at the front; shift the rest of the queue down over the gap */
    for (size_t i = n; i < g.notify.len; i++) DEQ_AT(g.notify, i - dropped) = DEQ_AT(g.notify, i);
    g.notify.len -= dropped;
    if (dropped) drop(WEBHOOK_NOTIFY, dropped, "retries exhausted");
}

/* How the POST of the *batch entries at the front of a queue ended: 1 answered 200, 0 failed
 * (counted), -1 cut off by the shutdown (the entries stay for webhook_free). *n = the size. */
static int batch_outcome(int ev, size_t *batch, const httpc_response *res, size_t *n) {
    *n = *batch;
    *batch = 0;
    if (g.stopping && res->status == 0) return -1;
    return answered_ok(ev, res);
}

static void notify_done(void *arg, const httpc_response *res) {
    (void)arg;
    size_t n;
    int outcome = batch_outcome(WEBHOOK_NOTIFY, &g.notify_batch, res, &n);
    if (outcome < 0) return;
    if (outcome) {
        notify_pop_front(n);
        delivered(WEBHOOK_NOTIFY, n);
        g.notify_streak = 0;
    } else {
        notify_batch_failed(n);
        g.notify_retry_at = mp_mono_ms() + backoff_ms(++g.notify_streak);
    }
    if (!g.stopping) pump();
}

static void notify_send(void) {
    size_t n = g.notify.len < g.cfg->webhook_count_per_push ? g.notify.len : g.cfg->webhook_count_per_push;
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++) json_array_append_new(arr, notify_json(&DEQ_AT(g.notify, i)));
    g.notify_batch = n;
    if (post(WEBHOOK_NOTIFY, arr, notify_done, NULL) != MP_OK) g.notify_batch = 0;
}

/* Full batches go at once; a partial one waits for the tick (tick = 1 when called from it). */
static void notify_pump(int tick) {
    if (g.notify_batch || !g.notify.len || mp_mono_ms() < g.notify_retry_at) return;
    if (tick || g.notify.len >= g.cfg->webhook_count_per_push) notify_send();
}

/* -- user.onlinestatus -- */

static void online_pop_front(size_t n) {
    for (size_t i = 0; i < n; i++) {
        free(DEQ_AT(g.online, 0));
        DEQ_POP(g.online);
    }
}

static void online_done(void *arg, const httpc_response *res) {
    (void)arg;
    size_t n;
    int outcome = batch_outcome(WEBHOOK_ONLINESTATUS, &g.online_batch, res, &n);
    if (outcome < 0) return;
    if (outcome) {
        online_pop_front(n);
        delivered(WEBHOOK_ONLINESTATUS, n);
        g.online_fails = 0;
    } else if (++g.online_fails >= g.cfg->webhook_retry_max) {
        online_pop_front(n);
        drop(WEBHOOK_ONLINESTATUS, n, "retries exhausted");
        g.online_fails = 0;
    } else {
        g.online_retry_at = mp_mono_ms() + backoff_ms(g.online_fails);
    }
    if (!g.stopping) pump();
}

static void online_pump(void) {
    if (g.online_batch || !g.online.len || mp_mono_ms() < g.online_retry_at) return;
    size_t n = g.online.len < ONLINE_PER_POST ? g.online.len : ONLINE_PER_POST;
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++) json_array_append_new(arr, json_string(DEQ_AT(g.online, i)));
    g.online_batch = n;
    if (post(WEBHOOK_ONLINESTATUS, arr, online_done, NULL) != MP_OK) g.online_batch = 0;
}

/* -- msg.offline -- */

static void offline_done(void *arg, const httpc_response *res) {
    (void)arg;
    g.offline_inflight--;
    if (g.stopping && res->status == 0) drop(WEBHOOK_OFFLINE, 1, "shutdown");
    else if (answered_ok(WEBHOOK_OFFLINE, res)) delivered(WEBHOOK_OFFLINE, 1);
    else drop(WEBHOOK_OFFLINE, 1, "msg.offline is not retried");
    if (!g.stopping) pump();
}

static void offline_enqueue(char *body) {
    atomic_fetch_add_explicit(&g_offline_bytes, strlen(body), memory_order_relaxed);
    DEQ_PUSH(g.offline, body);
}

static char *offline_dequeue(void) {
    char *body = DEQ_AT(g.offline, 0);
    DEQ_POP(g.offline);
    atomic_fetch_sub_explicit(&g_offline_bytes, strlen(body), memory_order_relaxed);
    return body;
}

static void offline_pump(void) {
    while (g.offline.len && g.offline_inflight < OFFLINE_CONCURRENCY) {
        char *text = offline_dequeue();
        int rc = httpc_post_json(g.h, g.url[WEBHOOK_OFFLINE], text, strlen(text), HTTP_TIMEOUT_MS, ANSWER_MAX,
                                 offline_done, NULL);
        free(text);
        if (rc == MP_OK) g.offline_inflight++;
        else drop(WEBHOOK_OFFLINE, 1, "cannot start the request");
    }
}

static void offline_free(webhook_offline *o) {
    msg_unref(o->m);
    json_decref(o->to_uids);
    if (o->seen) map_free(o->seen, NULL);
    free(o);
}

/* spec §6.2: a MessageResp with the raw sender, the push time and the offline recipients. */
static char *offline_body(const webhook_offline *o) {
    json_t *j = message_resp_json(&o->m->f);
    json_object_set_new(j, "from_uid", json_stringn(o->m->f.from_uid.p, o->m->f.from_uid.len));
    json_object_set_new(j, "timestamp", json_integer(o->push_ts));
    json_object_set(j, "to_uids", o->to_uids);
    json_object_set_new(j, "source_id", json_integer((json_int_t)g.cfg->node_id));
    char *text = json_dumps(j, JSON_COMPACT);
    MP_ASSERT(text);
    json_decref(j);
    return text;
}

static void offline_add_part(webhook_offline *o, const webhook_uids *u) {
    mp_str from = o->m->f.from_uid;
    for (size_t off = 0; off < u->len;) {
        mp_str uid = mp_str_c(u->buf + off);
        off += uid.len + 1;
        if (mp_str_eq(uid, from) || mp_str_eq_c(uid, MP_SYSTEM_UID)) continue;
        if (!o->seen) o->seen = map_new();
        if (map_get(o->seen, uid.p, uid.len)) continue;
        map_put(o->seen, uid.p, uid.len, (void *)1);
        if (!o->to_uids) o->to_uids = json_array();
        json_array_append_new(o->to_uids, json_stringn(uid.p, uid.len));
    }
    if (--o->parts_left > 0) return;
    pthread_mutex_lock(&g.lock);
    if (o->prev) o->prev->next = o->next;
    else g.collecting = o->next;
    if (o->next) o->next->prev = o->prev;
    pthread_mutex_unlock(&g.lock);
    if (o->to_uids) offline_enqueue(offline_body(o));
    else atomic_fetch_sub_explicit(&g_pending[WEBHOOK_OFFLINE], 1, memory_order_relaxed); /* nobody offline */
    offline_free(o);
}

/* -- the loop side -- */

static void pump(void) {
    if (!g.started || g.stopping) return;
    notify_pump(0);
    online_pump();
    offline_pump();
}

static void on_tick(uv_timer_t *t) {
    (void)t;
    if (g.stopping) return;
    notify_pump(1);
    pump();
}

static void start_on_loop(worker *w) {
    g.h = httpc_new(&w->loop);
    if (!g.h) LOG_ERROR("webhook", "cannot create the HTTP client; events stay queued until dropped");
    uv_timer_init(&w->loop, &g.tick);
    uv_timer_start(&g.tick, on_tick, g.cfg->webhook_push_interval_ms, g.cfg->webhook_push_interval_ms);
    g.started = g.h != NULL;
}

static void take_item(in_item *it) {
    switch (it->kind) {
    case IN_ONLINE:
        DEQ_PUSH(g.online, mp_strndup(it->text, strlen(it->text)));
        break;
    case IN_NOTIFY:
        DEQ_PUSH(g.notify, ((notify_entry){.m = it->m}));
        break;
    case IN_OFFLINE_PART:
        offline_add_part(it->o, &it->uids);
        free(it->uids.buf);
        break;
    }
    free(it);
}

static in_item *intake_take(void) {
    pthread_mutex_lock(&g.lock);
    in_item *all = g.in_head;
    g.in_head = g.in_tail = NULL;
    g.wake_posted = 0;
    pthread_mutex_unlock(&g.lock);
    return all;
}

static void drain_intake(void) {
    for (in_item *it = intake_take(), *next; it; it = next) {
        next = it->next;
        take_item(it);
    }
}

static void on_intake(worker *w, void *arg) {
    (void)arg;
    if (!g.tried && !g.stopping) {
        g.tried = 1;
        start_on_loop(w);
    }
    drain_intake();
    pump();
}

void webhook_worker_stop(worker *w) {
    if (!webhook_focus_) return;
    out_stop(w);
    if (w->index != HOME_WORKER || g.stopping) return;
    g.stopping = 1;
    if (!g.tried) return;
    uv_close((uv_handle_t *)&g.tick, NULL);
    if (g.h) httpc_close(g.h); /* in-flight requests fail now ("shutting down"): no retry while stopping */
    g.h = NULL;
}

/* ---- persistence of msg.notify across a clean restart ---- */

static char *notify_path(void) {
    size_t n = strlen(g.cfg->data_dir) + sizeof NOTIFY_FILE + 1;
    char *p = mp_malloc(n);
    snprintf(p, n, "%s/%s", g.cfg->data_dir, NOTIFY_FILE);
    return p;
}

static void notify_save(void) {
    if (!g.notify.len) return;
    char *path = notify_path();
    FILE *f = fopen(path, "w");
    size_t saved = 0;
    for (size_t i = 0; f && i < g.notify.len; i++) {
        json_t *j = notify_json(&DEQ_AT(g.notify, i));
        if (json_dumpf(j, f, JSON_COMPACT) == 0 && fputc('\n', f) != EOF) saved++;
        json_decref(j);
    }
    if (!f || fclose(f) != 0 || saved != g.notify.len) {
        LOG_ERROR("webhook", "cannot save %zu pending msg.notify events to %s: %s", g.notify.len, path, strerror(errno));
        saved = 0;
    } else {
        LOG_INFO("webhook", "saved %zu pending msg.notify events to %s; they are sent after the restart", saved, path);
    }
    if (!saved) count(g_dropped, WEBHOOK_NOTIFY, g.notify.len);
    free(path);
}

static void notify_load(void) {
    char *path = notify_path();
    FILE *f = fopen(path, "r");
    if (!f) {
        free(path);
        return;
    }
    size_t loaded = 0, cap = 0;
    char *line = NULL;
    ssize_t len;
    while ((len = getline(&line, &cap, f)) > 0) {
        json_t *j = json_loadb(line, (size_t)len, 0, NULL);
        if (j && json_is_object(j) && admit(WEBHOOK_NOTIFY)) {
            DEQ_PUSH(g.notify, ((notify_entry){.json = j}));
            loaded++;
        } else {
            json_decref(j);
        }
    }
    free(line);
    fclose(f);
    /* Removed once read: a crash before the next clean shutdown loses these (docs/webhooks.md). */
    if (remove(path) != 0) LOG_WARN("webhook", "cannot remove %s: %s", path, strerror(errno));
    if (loaded) LOG_INFO("webhook", "%zu msg.notify events of the previous run are queued again", loaded);
    free(path);
}

/* ---- life cycle ---- */

static char *event_url(const char *base, const char *event) {
    size_t n = strlen(base) + strlen(event) + 8;
    char *u = mp_malloc(n);
    snprintf(u, n, "%s%cevent=%s", base, strchr(base, '?') ? '&' : '?', event);
    return u;
}

static unsigned parse_focus(const char *list) {
    if (!*list) return (1u << WEBHOOK_EVENT_COUNT) - 1;
    unsigned bits = 0;
    while (*list) {
        size_t n = strcspn(list, ",");
        for (int ev = 0; ev < WEBHOOK_EVENT_COUNT; ev++)
            if (strlen(event_names[ev]) == n && strncmp(event_names[ev], list, n) == 0) bits |= 1u << ev;
        list += n + (list[n] == ',');
    }
    return bits;
}

void webhook_init(const mp_config *cfg) {
    g.cfg = cfg;
    if (!*cfg->webhook_http_addr) return;
    for (int ev = 0; ev < WEBHOOK_EVENT_COUNT; ev++) g.url[ev] = event_url(cfg->webhook_http_addr, event_names[ev]);
    webhook_master_only_ = cfg->token_auth_on;
    g_pending_max = cfg->webhook_max_pending;
    notify_load();
    webhook_focus_ = parse_focus(cfg->webhook_focus_events);
    LOG_INFO("webhook", "events for %s (focus: %s)", cfg->webhook_http_addr,
             *cfg->webhook_focus_events ? cfg->webhook_focus_events : "all");
    if (g.notify.len) worker_post(HOME_WORKER, on_intake, NULL); /* send the loaded ones without waiting */
}

void webhook_free(void) {
    if (!g.cfg || !g.url[0]) return;
    g.stopping = 1;
    drain_intake(); /* events produced after the stop: queued, then saved or counted */
    notify_save();
    notify_pop_front(g.notify.len);
    free(g.notify.v);
    uint64_t lost_online = g.online.len;
    online_pop_front(g.online.len);
    free(g.online.v);
    if (lost_online) drop(WEBHOOK_ONLINESTATUS, lost_online, "shutdown");
    uint64_t lost_offline = g.offline.len;
    while (g.offline.len) free(offline_dequeue());
    free(g.offline.v);
    for (webhook_offline *o = g.collecting, *next; o; o = next) { /* parts lost with the inboxes */
        next = o->next;
        offline_free(o);
        lost_offline++;
    }
    g.collecting = NULL;
    if (lost_offline) drop(WEBHOOK_OFFLINE, lost_offline, "shutdown");
    for (int ev = 0; ev < WEBHOOK_EVENT_COUNT; ev++) free(g.url[ev]);
    memset(g.url, 0, sizeof g.url);
}

/* ---- counters ---- */

void webhook_stats_get(webhook_stats *out) {
    out->enabled = webhook_focus_ != 0;
    for (int ev = 0; ev < WEBHOOK_EVENT_COUNT; ev++) {
        out->ev[ev].sent = atomic_load(&g_sent[ev]);
        out->ev[ev].failed = atomic_load(&g_failed[ev]);
        out->ev[ev].dropped = atomic_load(&g_dropped[ev]);
        out->ev[ev].pending = atomic_load(&g_pending[ev]);
    }
}

json_t *webhook_stats_json(void) {
    webhook_stats s;
    webhook_stats_get(&s);
    json_t *o = json_pack("{s:b}", "enabled", s.enabled);
    for (int ev = 0; ev < WEBHOOK_EVENT_COUNT; ev++)
        json_object_set_new(o, event_names[ev],
                            json_pack("{s:I,s:I,s:I,s:I}", "sent", (json_int_t)s.ev[ev].sent, "failed",
                                      (json_int_t)s.ev[ev].failed, "dropped", (json_int_t)s.ev[ev].dropped, "pending",
                                      (json_int_t)s.ev[ev].pending));
    return o;
}
