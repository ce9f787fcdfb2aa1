/* stream.c - streaming-message sessions: the order events are applied in, their store
 * rows, the EVENT pushes and the bounds on memory (see stream.h).
 *
 * Why a session serializes its message's events: a persisted event is answered and pushed
 * only after its commit, while a delta is answered at once. If a delta could overtake a
 * close that is still being stored, clients would see text after the end, and the stored
 * snapshot would miss it. So while a write is in flight, later events of the same message
 * wait in the session's queue; other messages are not held up. */
#include "stream.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "../channel/channel.h"
#include "../common/log.h"
#include "../common/map.h"
#include "../core/im.h"
#include "../core/worker.h"

#ifndef STREAM_SWEEP_MS
#define STREAM_SWEEP_MS (60 * 1000) /* how often idle sessions are looked for */
#endif

/* One event waiting for (or in) its turn. Strings are NUL-terminated copies. */
typedef struct pending {
    struct pending *next;
    char *id, *type, *key, *vis;
    int64_t at;
    json_t *payload; /* own reference, or NULL */
    char *channel_id, *from_uid;
    stream_done_fn done;
    void *ctx;
} pending;

typedef struct session {
    int64_t message_id;
    uint8_t type;
    char *stored_id, *from_uid, *client_msg_no; /* of the anchor */
    uint32_t stored_id_len, from_uid_len, client_msg_no_len;
    uint64_t seq;       /* last msg_event_seq given */
    int completed;
    size_t n_known;     /* event keys the message has, in memory or stored */
    stream_key *keys;   /* its open keys (all of them) */
    size_t n_keys, cap_keys;
    int busy;           /* a write of this session is in flight */
    int evicting;       /* leaving memory once its delta text is stored */
    pending *head, *tail;
    uint64_t used_ms;   /* monotonic time of the last event */
} session;

static struct {
    mp_map *sessions; /* message_id -> session */
    uv_timer_t sweep;
    int timer_live;
    int stopping;
} g;

/* ---- small helpers ------------------------------------------------------------------------ */

static char *dup_str(mp_str s) { return mp_strndup(s.len ? s.p : "", s.len); }

static void row_key(mp_buf *out, int64_t message_id, const char *name) {
    mp_buf_append_u64be(out, (uint64_t)message_id);
    if (name) mp_buf_append(out, name, strlen(name));
}

static void pending_free(pending *p) {
    free(p->id);
    free(p->type);
    free(p->key);
    free(p->vis);
    free(p->channel_id);
    free(p->from_uid);
    json_decref(p->payload);
    free(p);
}

static void fail(pending *p, int http_status, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void fail(pending *p, int http_status, const char *fmt, ...) {
    char msg[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    stream_result r = {0};
    r.http_status = http_status;
    r.error = msg;
    r.stream_status = "open";
    p->done(p->ctx, &r);
    pending_free(p);
}

/* Answer p with a key's state. projected: the event changed nothing because the key is
 * terminal, so the answer names the key's own last event, as WuKongIM does. */
static void answer(session *s, pending *p, const char *key, const char *event_id, uint64_t seq, uint8_t status) {
    stream_result r = {0};
    r.http_status = 200;
    r.client_msg_no = (mp_str){s->client_msg_no, s->client_msg_no_len};
    r.event_key = mp_str_c(key);
    r.event_id = mp_str_c(event_id);
    r.channel_id = mp_str_c(p->channel_id);
    r.from_uid = mp_str_c(p->from_uid);
    r.channel_type = s->type;
    r.msg_event_seq = seq;
    r.stream_status = stream_status_name(status);
    p->done(p->ctx, &r);
    pending_free(p);
}

static void answer_key(session *s, pending *p, const stream_key *k, int projected) {
    answer(s, p, k->name, projected && k->id ? k->id : p->id, k->seq, k->status);
}

static stream_ev event_of(const pending *p) {
    return (stream_ev){p->id, p->type, p->vis, p->at, p->payload};
}

/* ---- EVENT push ------------------------------------------------------------------------------ */

/* The EVENT frame of an accepted event: data is the JSON of spec §5.14, id/type/timestamp
 * the event's own. Goes through the channel owner, after everything pushed before. */
static void push(session *s, const pending *p, const stream_key *k) {
    json_t *d = json_object();
    json_object_set_new(d, "client_msg_no", json_stringn(s->client_msg_no, s->client_msg_no_len));
    json_object_set_new(d, "channel_id", json_string(p->channel_id));
    json_object_set_new(d, "channel_type", json_integer(s->type));
    json_object_set_new(d, "from_uid", json_string(p->from_uid));
    json_object_set_new(d, "message_id", json_integer(s->message_id));
    json_object_set_new(d, "event_key", json_string(k->name));
    json_object_set_new(d, "msg_event_seq", json_integer((json_int_t)k->seq));
    json_object_set_new(d, "stream_status", json_string(stream_status_name(k->status)));
    if (p->vis[0]) json_object_set_new(d, "visibility", json_string(p->vis));
    if (p->payload) json_object_set(d, "payload", p->payload);
    char *data = json_dumps(d, JSON_COMPACT);
    json_decref(d);
    MP_ASSERT(data);

    msg_fields f = {0};
    f.kind = MSG_KIND_EVENT;
    f.message_id = s->message_id;
    f.channel_type = s->type;
    f.channel_id = (mp_str){s->stored_id, s->stored_id_len};
    f.from_uid = (mp_str){s->from_uid, s->from_uid_len};
    f.client_msg_no = (mp_str){s->client_msg_no, s->client_msg_no_len};
    f.payload = mp_str_c(data);
    f.event_id = mp_str_c(p->id);
    f.event_type = mp_str_c(p->type);
    f.event_ts = p->at;
    mp_msg *m = msg_new(&f);
    chan_submit_event(m, 0);
    msg_unref(m);
    free(data);
}

/* ---- session keys -------------------------------------------------------------------------- */

static stream_key *find_key(session *s, const char *name) {
    for (size_t i = 0; i < s->n_keys; i++)
        if (strcmp(s->keys[i].name, name) == 0) return &s->keys[i];
    return NULL;
}

/* Move *k into the session (replacing a key of the same name); returns where it is now. */
static stream_key *put_key(session *s, stream_key *k) {
    stream_key *old = find_key(s, k->name);
    if (old) {
        stream_key_free(old);
        *old = *k;
        return old;
    }
    if (s->n_keys == s->cap_keys) {
        s->cap_keys = s->cap_keys ? 2 * s->cap_keys : 4;
        s->keys = mp_realloc(s->keys, s->cap_keys * sizeof *s->keys);
    }
    s->keys[s->n_keys] = *k;
    return &s->keys[s->n_keys++];
}

/* Terminal keys are stored: they leave memory. */
static void drop_terminal_keys(session *s) {
    size_t kept = 0;
    for (size_t i = 0; i < s->n_keys; i++) {
        if (stream_key_terminal(&s->keys[i])) stream_key_free(&s->keys[i]);
        else s->keys[kept++] = s->keys[i];
    }
    s->n_keys = kept;
}

static int any_dirty(const session *s) {
    for (size_t i = 0; i < s->n_keys; i++)
        if (s->keys[i].dirty) return 1;
    return 0;
}

/* ---- store reads ------------------------------------------------------------------------- */

typedef struct load_ctx {
    int64_t message_id;
    uint64_t seq;
    int completed;
    stream_key *keys;
    size_t n, cap;
} load_ctx;

static int load_row(void *ctx, mp_str key, mp_str val) {
    load_ctx *l = ctx;
    if (key.len < 8) return 0;
    if (key.len == 8) {
        if (stream_meta_decode(val, &l->seq, &l->completed) != MP_OK)
            LOG_WARN("stream", "message %lld: bad stream record", (long long)l->message_id);
        return 0;
    }
    char *name = mp_strndup(key.p + 8, key.len - 8);
    if (l->n == l->cap) {
        l->cap = l->cap ? 2 * l->cap : 4;
        l->keys = mp_realloc(l->keys, l->cap * sizeof *l->keys);
    }
    if (stream_key_decode(name, val, &l->keys[l->n]) == MP_OK) l->n++;
    else LOG_WARN("stream", "message %lld: bad state record of event_key %s", (long long)l->message_id, name);
    free(name);
    return 0;
}

static int load_rows(store_rtxn *tx, int64_t message_id, load_ctx *l) {
    memset(l, 0, sizeof *l);
    l->message_id = message_id;
    mp_buf prefix = MP_BUF_INIT;
    row_key(&prefix, message_id, NULL);
    int rc = store_scan_kv(tx, STORE_KV_STREAM, (mp_str){(const char *)prefix.data, (uint32_t)prefix.len}, load_row, l);
    mp_buf_free(&prefix);
    return rc == MP_ENOTFOUND ? MP_OK : rc;
}

/* One key's stored state: MP_OK, MP_ENOTFOUND, or a store error. */
static int load_key(session *s, const char *name, stream_key *out) {
    store_rtxn *tx;
    int rc = store_rtxn_begin(im_store(), &tx);
    if (rc != MP_OK) return rc;
    mp_buf key = MP_BUF_INIT;
    row_key(&key, s->message_id, name);
    mp_str val;
    rc = store_get_kv(tx, STORE_KV_STREAM, (mp_str){(const char *)key.data, (uint32_t)key.len}, &val);
    if (rc == MP_OK && stream_key_decode(name, val, out) != MP_OK) rc = MP_ENOTFOUND;
    store_rtxn_end(tx);
    mp_buf_free(&key);
    return rc;
}

/* ---- sessions ------------------------------------------------------------------------------ */

static void on_sweep(uv_timer_t *t);

static void session_drop(session *s) {
    MP_ASSERT(!s->busy && !s->head);
    map_del_u64(g.sessions, (uint64_t)s->message_id);
    for (size_t i = 0; i < s->n_keys; i++) stream_key_free(&s->keys[i]);
    free(s->keys);
    free(s->stored_id);
    free(s->from_uid);
    free(s->client_msg_no);
    free(s);
    if (g.stopping && map_count(g.sessions) == 0) {
        map_free(g.sessions, NULL);
        g.sessions = NULL;
    }
}

static void start_sweeper(void) {
    if (g.timer_live || g.stopping) return;
    worker *w = worker_current();
    MP_ASSERT(w);
    uv_timer_init(&w->loop, &g.sweep);
    uv_timer_start(&g.sweep, on_sweep, STREAM_SWEEP_MS, STREAM_SWEEP_MS);
    uv_unref((uv_handle_t *)&g.sweep); /* the server does not stay up for it */
    g.timer_live = 1;
}

static void evict(session *s);

typedef struct lru_ctx {
    session *oldest;
} lru_ctx;

static int find_lru(void *ctx, const void *key, size_t klen, void *val) {
    (void)key;
    (void)klen;
    lru_ctx *l = ctx;
    session *s = val;
    if (!s->busy && !s->head && (!l->oldest || s->used_ms < l->oldest->used_ms)) l->oldest = s;
    return 0;
}

/* The session of a's message, loaded from the store if it is not in memory; NULL with
 * *rc set when the store cannot be read. */
static session *session_get(const stream_anchor *a, int *rc) {
    if (!g.sessions) g.sessions = map_new();
    session *s = map_get_u64(g.sessions, (uint64_t)a->message_id);
    if (s) return s;
    if (map_count(g.sessions) >= STREAM_MAX_SESSIONS) {
        lru_ctx l = {NULL};
        map_foreach(g.sessions, find_lru, &l);
        if (l.oldest) evict(l.oldest); /* stays a little longer if it must store text first */
    }
    store_rtxn *tx;
    load_ctx l;
    *rc = store_rtxn_begin(im_store(), &tx);
    if (*rc != MP_OK) return NULL;
    *rc = load_rows(tx, a->message_id, &l);
    store_rtxn_end(tx);
    if (*rc != MP_OK) {
        for (size_t i = 0; i < l.n; i++) stream_key_free(&l.keys[i]);
        free(l.keys);
        return NULL;
    }
    s = mp_calloc(1, sizeof *s);
    s->message_id = a->message_id;
    s->type = a->channel_type;
    s->stored_id = dup_str(a->stored_id);
    s->stored_id_len = a->stored_id.len;
    s->from_uid = dup_str(a->from_uid);
    s->from_uid_len = a->from_uid.len;
    s->client_msg_no = dup_str(a->client_msg_no);
    s->client_msg_no_len = a->client_msg_no.len;
    s->seq = l.seq;
    s->completed = l.completed;
    s->n_known = l.n;
    for (size_t i = 0; i < l.n; i++) {
        if (stream_key_terminal(&l.keys[i])) stream_key_free(&l.keys[i]);
        else put_key(s, &l.keys[i]);
    }
    free(l.keys);
    s->used_ms = mp_mono_ms();
    map_put_u64(g.sessions, (uint64_t)s->message_id, s);
    start_sweeper();
    return s;
}

/* ---- store writes ----------------------------------------------------------------------------- */

typedef struct row {
    mp_buf key;
    char *val;
    size_t len;
} row;

typedef struct write_op {
    session *s;       /* NULL: a flush at shutdown, nothing to do once written */
    pending *p;       /* the event being stored; NULL for a flush of delta text */
    int worker;       /* where to complete */
    int status;
    uint64_t seq;     /* the message's counter and completion after this event */
    int completed;
    int new_key;      /* p's key is new to the message */
    stream_key *keys; /* the new states of the keys written */
    size_t n_keys;
    row *rows;
    size_t n_rows;
} write_op;

static void op_add_row(write_op *op, int64_t message_id, const char *name, char *val, size_t len) {
    op->rows = mp_realloc(op->rows, (op->n_rows + 1) * sizeof *op->rows);
    row *r = &op->rows[op->n_rows++];
    mp_buf_init(&r->key);
    row_key(&r->key, message_id, name);
    r->val = val;
    r->len = len;
}

static void op_add_key_row(write_op *op, int64_t message_id, const stream_key *k) {
    size_t len;
    char *val = stream_key_encode(k, &len);
    op_add_row(op, message_id, k->name, val, len);
}

/* Frees with free() only, so a flush op can be freed on the writer thread. */
static void op_free(write_op *op) {
    for (size_t i = 0; i < op->n_rows; i++) {
        mp_buf_free(&op->rows[i].key);
        free(op->rows[i].val);
    }
    free(op->rows);
    for (size_t i = 0; i < op->n_keys; i++) stream_key_free(&op->keys[i]);
    free(op->keys);
    free(op);
}

static int write_rows(store_wtxn *t, void *arg) {
    write_op *op = arg;
    for (size_t i = 0; i < op->n_rows; i++) {
        row *r = &op->rows[i];
        int rc = store_txn_put_kv(t, STORE_KV_STREAM, (mp_str){(const char *)r->key.data, (uint32_t)r->key.len},
                                  (mp_str){r->val, (uint32_t)r->len});
        if (rc != MP_OK) return rc;
    }
    return MP_OK;
}

static void on_written(worker *w, void *arg);

static void write_done(void *arg, int status) {
    write_op *op = arg;
    op->status = status;
    if (!op->s) op_free(op); /* a shutdown flush: stored, nothing else to do */
    else worker_post(op->worker, on_written, op);
}

/* Store the delta text of s's keys, in the background. With s NULL... see session_stop. */
static write_op *flush_op(session *s) {
    write_op *op = mp_calloc(1, sizeof *op);
    for (size_t i = 0; i < s->n_keys; i++)
        if (s->keys[i].dirty) op_add_key_row(op, s->message_id, &s->keys[i]);
    return op;
}

static void run(session *s);

/* Idle (or least recently used): leave memory, storing the unsaved delta text first. */
static void evict(session *s) {
    s->evicting = 1;
    if (!any_dirty(s)) {
        session_drop(s);
        return;
    }
    write_op *op = flush_op(s);
    op->s = s;
    op->worker = worker_current()->index;
    s->busy = 1;
    if (store_submit(im_store(), write_rows, write_done, op) != MP_OK) {
        s->busy = 0;
        op_free(op);
        session_drop(s);
    }
}

/* A persisted event: write the key's new state (and, for stream.finish, the closing of
 * every open key) with the message record; answer and push when durable. */
static void store_event(session *s, pending *p, stream_key *k) {
    write_op *op = mp_calloc(1, sizeof *op);
    op->s = s;
    op->p = p;
    op->worker = worker_current()->index;
    op->seq = s->seq + 1;
    int finish = strcmp(p->type, "stream.finish") == 0;
    op->completed = s->completed || finish;
    stream_ev e = event_of(p);
    op->keys = mp_calloc(s->n_keys + 1, sizeof *op->keys);
    stream_key *nk = &op->keys[op->n_keys++];
    if (k) {
        stream_key_copy(nk, k);
    } else {
        stream_key_init(nk, p->key);
        op->new_key = 1;
    }
    stream_key_apply(nk, &e, op->seq);
    nk->dirty = 0;
    if (finish) {
        for (size_t i = 0; i < s->n_keys; i++) {
            if (strcmp(s->keys[i].name, p->key) == 0 || stream_key_terminal(&s->keys[i])) continue;
            stream_key *c = &op->keys[op->n_keys++];
            stream_key_copy(c, &s->keys[i]);
            stream_key_finish(c, &e, op->seq);
            c->dirty = 0;
        }
    }
    size_t len;
    char *meta = stream_meta_encode(op->seq, op->completed, &len);
    op_add_row(op, s->message_id, NULL, meta, len);
    for (size_t i = 0; i < op->n_keys; i++) op_add_key_row(op, s->message_id, &op->keys[i]);
    s->busy = 1;
    if (store_submit(im_store(), write_rows, write_done, op) != MP_OK) {
        s->busy = 0;
        op->p = NULL;
        op_free(op);
        fail(p, 503, "server is shutting down");
    }
}

static void session_stop(session *s);

static void on_written(worker *w, void *arg) {
    (void)w;
    write_op *op = arg;
    session *s = op->s;
    pending *p = op->p;
    s->busy = 0;
    if (op->status != MP_OK) {
        LOG_WARN("stream", "message %lld: storing stream state failed: %s", (long long)s->message_id,
                 mp_strerror(op->status));
        if (p) fail(p, 500, "storing the event failed: %s", mp_strerror(op->status));
        else s->evicting = 0; /* keep the text in memory; the next sweep tries again */
    } else if (!p) {
        for (size_t i = 0; i < s->n_keys; i++) s->keys[i].dirty = 0;
    } else {
        s->seq = op->seq;
        s->completed = op->completed;
        if (op->new_key) s->n_known++;
        for (size_t i = 0; i < op->n_keys; i++) put_key(s, &op->keys[i]);
        op->n_keys = 0; /* moved into the session */
        stream_key *k = find_key(s, p->key);
        push(s, p, k);
        answer_key(s, p, k, 0);
        drop_terminal_keys(s);
    }
    op_free(op);
    if (g.stopping) session_stop(s);
    else run(s);
}

/* ---- applying events ------------------------------------------------------------------------ */

static int is_repeat(const stream_key *k, const char *id) {
    return (k->last_id && strcmp(k->last_id, id) == 0) || (k->id && strcmp(k->id, id) == 0);
}

static void process(session *s, pending *p) {
    s->used_ms = mp_mono_ms();
    s->evicting = 0;
    stream_key *k = find_key(s, p->key);
    if (!k) { /* open keys are all in memory: this one is terminal, or new */
        stream_key stored;
        int rc = load_key(s, p->key, &stored);
        if (rc == MP_OK && (stream_key_terminal(&stored) || s->completed)) {
            answer_key(s, p, &stored, 1);
            stream_key_free(&stored);
            return;
        }
        if (rc == MP_OK) {
            k = put_key(s, &stored); /* open but not in memory: cannot happen; adopt it */
        } else if (rc != MP_ENOTFOUND) {
            fail(p, 500, "reading the stream state failed: %s", mp_strerror(rc));
            return;
        } else if (s->completed) { /* a new key after stream.finish */
            answer(s, p, p->key, p->id, s->seq, STREAM_CLOSED);
            return;
        } else if (s->n_known >= STREAM_MAX_KEYS && strcmp(p->key, STREAM_KEY_FINISH) != 0) {
            fail(p, 400, "a message has at most %d event keys (besides " STREAM_KEY_FINISH ")", STREAM_MAX_KEYS);
            return;
        }
    }
    if (k && (stream_key_terminal(k) || s->completed)) {
        answer_key(s, p, k, 1);
        return;
    }
    if (k && is_repeat(k, p->id)) { /* a retry: the state again, nothing pushed */
        answer_key(s, p, k, 0);
        return;
    }
    if (strcmp(p->type, "stream.delta") != 0) {
        store_event(s, p, k);
        return;
    }
    stream_key fresh;
    int is_new = !k;
    if (is_new) {
        stream_key_init(&fresh, p->key);
        k = &fresh;
    }
    stream_ev e = event_of(p);
    if (stream_key_delta(k, &e, STREAM_MAX_TEXT) != MP_OK) {
        if (is_new) stream_key_free(&fresh);
        fail(p, 400, "the snapshot text of event_key \"%s\" would exceed %d bytes", p->key, STREAM_MAX_TEXT);
        return;
    }
    k->dirty = 1;
    if (is_new) {
        k = put_key(s, &fresh);
        s->n_known++;
    }
    push(s, p, k);
    answer_key(s, p, k, 0);
}

/* Apply queued events until one has to wait for the store; then maybe leave memory. */
static void run(session *s) {
    while (!s->busy && s->head) {
        pending *p = s->head;
        s->head = p->next;
        if (!s->head) s->tail = NULL;
        process(s, p);
    }
    if (s->busy) return;
    if (s->n_keys == 0 || (s->evicting && !any_dirty(s))) session_drop(s);
}

void stream_append(const stream_anchor *a, const stream_event *e, stream_done_fn done, void *ctx) {
    pending *p = mp_calloc(1, sizeof *p);
    p->id = dup_str(e->event_id);
    p->type = dup_str(e->event_type);
    p->key = dup_str(e->event_key);
    p->vis = dup_str(e->visibility);
    p->at = e->occurred_at;
    p->payload = e->payload ? json_incref(e->payload) : NULL;
    p->channel_id = dup_str(e->channel_id);
    p->from_uid = dup_str(e->from_uid);
    p->done = done;
    p->ctx = ctx;
    if (g.stopping) {
        fail(p, 503, "server is shutting down");
        return;
    }
    int rc = MP_OK;
    session *s = session_get(a, &rc);
    if (!s) {
        fail(p, 500, "reading the stream state failed: %s", mp_strerror(rc));
        return;
    }
    if (s->tail) s->tail->next = p;
    else s->head = p;
    s->tail = p;
    run(s);
}

/* ---- idle sessions and shutdown ----------------------------------------------------------- */

typedef struct session_list {
    session **v;
    size_t n;
    uint64_t idle_before; /* 0: every session */
} session_list;

static int collect(void *ctx, const void *key, size_t klen, void *val) {
    (void)key;
    (void)klen;
    session_list *l = ctx;
    session *s = val;
    if (l->idle_before && (s->busy || s->head || s->used_ms > l->idle_before)) return 0;
    l->v[l->n++] = s;
    return 0;
}

static session_list list_sessions(uint64_t idle_before) {
    session_list l = {NULL, 0, idle_before};
    size_t n = g.sessions ? map_count(g.sessions) : 0;
    if (n) {
        l.v = mp_malloc(n * sizeof *l.v);
        map_foreach(g.sessions, collect, &l);
    }
    return l;
}

static void on_sweep(uv_timer_t *t) {
    (void)t;
    uint64_t now = mp_mono_ms();
    if (now <= STREAM_IDLE_MS) return;
    session_list l = list_sessions(now - STREAM_IDLE_MS);
    for (size_t i = 0; i < l.n; i++) evict(l.v[i]);
    free(l.v);
}

/* Shutdown: waiting events get 503; the delta text is stored by a write nobody waits for
 * (the store finishes it before closing); the session goes. */
static void session_stop(session *s) {
    while (s->head) {
        pending *p = s->head;
        s->head = p->next;
        fail(p, 503, "server is shutting down");
    }
    s->tail = NULL;
    if (s->busy) return; /* on_written comes back here */
    if (any_dirty(s)) {
        write_op *op = flush_op(s);
        if (store_submit(im_store(), write_rows, write_done, op) != MP_OK) op_free(op);
    }
    session_drop(s);
}

void stream_stop(void) {
    if (g.stopping) return;
    g.stopping = 1;
    if (g.timer_live) {
        uv_close((uv_handle_t *)&g.sweep, NULL);
        g.timer_live = 0;
    }
    session_list l = list_sessions(0);
    for (size_t i = 0; i < l.n; i++) session_stop(l.v[i]);
    free(l.v);
    if (g.sessions && map_count(g.sessions) == 0) {
        map_free(g.sessions, NULL);
        g.sessions = NULL;
    }
}

/* ---- reads ------------------------------------------------------------------------------------ */

static int by_name(const void *a, const void *b) {
    return strcmp(((const stream_key *)a)->name, ((const stream_key *)b)->name);
}

int stream_states_load(store_rtxn *tx, int64_t message_id, stream_states *out) {
    memset(out, 0, sizeof *out);
    load_ctx l;
    int rc = load_rows(tx, message_id, &l);
    out->keys = l.keys;
    out->n = l.n;
    out->seq = l.seq;
    out->completed = l.completed;
    if (rc != MP_OK) return rc;
    session *s = g.sessions ? map_get_u64(g.sessions, (uint64_t)message_id) : NULL;
    if (!s) return MP_OK;
    /* memory is newer: delta text, and events stored but not answered yet are not there */
    out->seq = s->seq;
    out->completed = s->completed;
    for (size_t i = 0; i < s->n_keys; i++) {
        stream_key *mk = &s->keys[i];
        stream_key *dst = NULL;
        for (size_t j = 0; j < out->n && !dst; j++)
            if (strcmp(out->keys[j].name, mk->name) == 0) dst = &out->keys[j];
        if (dst) {
            stream_key_free(dst);
        } else {
            if (out->n == l.cap) {
                l.cap = l.cap ? 2 * l.cap : 4;
                out->keys = mp_realloc(out->keys, l.cap * sizeof *out->keys);
            }
            dst = &out->keys[out->n++];
        }
        stream_key_copy(dst, mk);
    }
    if (out->n > 1) qsort(out->keys, out->n, sizeof *out->keys, by_name);
    return MP_OK;
}

void stream_states_free(stream_states *s) {
    for (size_t i = 0; i < s->n; i++) stream_key_free(&s->keys[i]);
    free(s->keys);
    memset(s, 0, sizeof *s);
}
