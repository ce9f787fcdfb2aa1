/* presence.c - user owners: online device registry, kicks, per-user fan-out, and the
 * online-status and registry-size queries of the HTTP API. */
#include "presence.h"

#include <stdatomic.h>

#include "../common/log.h"
#include "../common/map.h"
#include "../integ/webhook.h"
#include "../proto/packet.h"
#include "../session/session.h"
#include "im.h"

typedef struct dev {
    uint64_t conn_id;
    int worker;
    uint8_t device_flag;
    uint8_t level;
    char *device_id;
} dev;

typedef struct user {
    dev *devs;
    size_t n, cap;
} user;

struct presence_mgr {
    mp_map *users; /* uid -> user */
};

/* The online filter: per hash slot, how many users with at least one registered
 * connection have a uid hashing there. Owners count their users in and out; any thread
 * reads it without a lock. A zero slot proves that none of the uids hashing to it is
 * online, so a fan-out skips such members without asking their owners: a message to a
 * 100,000-member group with 200 members online ships ~200 uids between threads instead of
 * 100,000. With 2^20 slots and N users online a member's slot is busy with probability
 * ~N/2^20 (false positives cost only the owner's lookup). One byte per slot: 1 MiB of
 * address space, resident only where uids hash. A slot that reaches 255 stays there (it
 * can no longer prove anything offline, which is safe, and cannot wrap to a false 0). */
#define ONLINE_SLOTS (1u << 20)
#define ONLINE_STUCK 255
static atomic_uchar g_online[ONLINE_SLOTS];

static void online_count(uint64_t h, int delta) {
    atomic_uchar *slot = &g_online[h & (ONLINE_SLOTS - 1)];
    unsigned char v = atomic_load_explicit(slot, memory_order_relaxed);
    for (;;) {
        if (v == ONLINE_STUCK) return;
        unsigned char next = (unsigned char)(v + delta);
        if (atomic_compare_exchange_weak_explicit(slot, &v, next, memory_order_relaxed, memory_order_relaxed)) return;
    }
}

static int maybe_online(uint64_t h) {
    return atomic_load_explicit(&g_online[h & (ONLINE_SLOTS - 1)], memory_order_relaxed) != 0;
}

static void user_free(void *p) {
    user *u = p;
    for (size_t i = 0; i < u->n; i++) free(u->devs[i].device_id);
    free(u->devs);
    free(u);
}

void presence_init(worker *w) {
    w->presence = mp_calloc(1, sizeof(struct presence_mgr));
    w->presence->users = map_new();
}

void presence_free(worker *w) {
    if (!w->presence) return;
    map_free(w->presence->users, user_free);
    free(w->presence);
    w->presence = NULL;
}

static int owner_of_uid(mp_str uid) { return worker_owner_of(uid.p, uid.len); }

/* ---- kicks on the connection's worker ---------------------------------------------- */

typedef struct kick_req {
    uint64_t conn_id;
    uint8_t reason;
    uint32_t delay_ms;
} kick_req;

static void do_kick(worker *w, void *arg) {
    kick_req *k = arg;
    session_kick(w, k->conn_id, k->reason, k->reason ? "login in other device" : "", k->delay_ms);
    free(k);
}

static void post_kick(const dev *d, uint8_t reason, uint32_t delay_ms) {
    kick_req *k = mp_malloc(sizeof *k);
    k->conn_id = d->conn_id;
    k->reason = reason;
    k->delay_ms = delay_ms;
    worker_post(d->worker, do_kick, k);
}

/* ---- online / offline ------------------------------------------------------------------ */

/* user.onlinestatus with the uid's counts right after the change (spec §6.2). */
static void report_status(mp_str uid, const user *u, uint8_t device_flag, int online, uint64_t conn_id) {
    size_t same = 0, total = u ? u->n : 0;
    for (size_t i = 0; i < total; i++) same += u->devs[i].device_flag == device_flag;
    webhook_online_status(uid, device_flag, online, conn_id, same, total);
}

typedef struct online_req {
    dev d;
    worker_fn registered;
    void *registered_arg;
    char uid[];
} online_req;

static void do_online(worker *w, void *arg) {
    online_req *r = arg;
    mp_str uid = mp_str_c(r->uid);
    user *u = map_get(w->presence->users, uid.p, uid.len);
    if (!u) {
        u = mp_calloc(1, sizeof *u);
        map_put(w->presence->users, uid.p, uid.len, u);
        online_count(mp_hash(uid.p, uid.len), +1);
    }
    uint32_t delay = im_config()->kick_close_delay_ms;
    for (size_t i = 0; i < u->n; i++) { /* spec §8.7 */
        dev *o = &u->devs[i];
        if (o->device_flag != r->d.device_flag) continue;
        int same_device = strcmp(o->device_id, r->d.device_id) == 0;
        if (r->d.level == 1 && !same_device) post_kick(o, REASON_CONNECT_KICK, delay);
        else if (same_device) post_kick(o, 0, delay);
    }
    if (u->n == u->cap) {
        u->cap = u->cap ? u->cap * 2 : 2;
        u->devs = mp_realloc(u->devs, u->cap * sizeof(dev));
    }
    u->devs[u->n++] = r->d; /* takes device_id */
    if (webhook_wants(WEBHOOK_ONLINESTATUS)) report_status(uid, u, r->d.device_flag, 1, r->d.conn_id);
    worker_post(r->d.worker, r->registered, r->registered_arg);
    free(r);
}

void presence_online(conn *c, worker_fn registered, void *arg) {
    size_t n = strlen(c->uid);
    online_req *r = mp_malloc(sizeof *r + n + 1);
    memcpy(r->uid, c->uid, n + 1);
    r->d.conn_id = c->id;
    r->d.worker = c->w->index;
    r->d.device_flag = c->device_flag;
    r->d.level = c->device_level;
    r->d.device_id = mp_strndup(c->device_id, strlen(c->device_id));
    r->registered = registered;
    r->registered_arg = arg;
    worker_post(owner_of_uid(mp_str_c(c->uid)), do_online, r);
}

typedef struct offline_req {
    uint64_t conn_id;
    char uid[];
} offline_req;

static void do_offline(worker *w, void *arg) {
    offline_req *r = arg;
    size_t n = strlen(r->uid);
    user *u = map_get(w->presence->users, r->uid, n);
    if (u) {
        for (size_t i = 0; i < u->n; i++) {
            if (u->devs[i].conn_id != r->conn_id) continue;
            uint8_t flag = u->devs[i].device_flag;
            free(u->devs[i].device_id);
            u->devs[i] = u->devs[--u->n];
            if (webhook_wants(WEBHOOK_ONLINESTATUS)) report_status(mp_str_c(r->uid), u, flag, 0, r->conn_id);
            break;
        }
        if (u->n == 0) {
            user_free(map_del(w->presence->users, r->uid, n));
            online_count(mp_hash(r->uid, n), -1);
        }
    }
    free(r);
}

void presence_offline(mp_str uid, uint64_t conn_id) {
    offline_req *r = mp_malloc(sizeof *r + uid.len + 1);
    memcpy(r->uid, uid.p, uid.len);
    r->uid[uid.len] = 0;
    r->conn_id = conn_id;
    worker_post(owner_of_uid(uid), do_offline, r);
}

typedef struct kickdev_req {
    uint8_t device_flag;
    uint32_t delay_ms;
    char uid[];
} kickdev_req;

static void do_kick_device(worker *w, void *arg) {
    kickdev_req *r = arg;
    user *u = map_get(w->presence->users, r->uid, strlen(r->uid));
    for (size_t i = 0; u && i < u->n; i++)
        if (u->devs[i].device_flag == r->device_flag) post_kick(&u->devs[i], REASON_CONNECT_KICK, r->delay_ms);
    free(r);
}

void presence_kick_device(mp_str uid, uint8_t device_flag, uint32_t delay_ms) {
    kickdev_req *r = mp_malloc(sizeof *r + uid.len + 1);
    memcpy(r->uid, uid.p, uid.len);
    r->uid[uid.len] = 0;
    r->device_flag = device_flag;
    r->delay_ms = delay_ms;
    worker_post(owner_of_uid(uid), do_kick_device, r);
}

/* ---- fan-out ------------------------------------------------------------------------- */

/* Connections of one worker that should get m. */
typedef struct conn_batch {
    mp_msg *m;
    size_t n, cap;
    uint64_t ids[];
} conn_batch;

static void do_conn_batch(worker *w, void *arg) {
    conn_batch *b = arg;
    /* One atomic add lends a reference to every RECV of the batch, one subtraction returns
     * those not kept: the workers fan the same message out at the same time, and an atomic
     * per delivery on its shared count took 12% of the server's CPU in the fanout bench. */
    msg_ref_n(b->m, (int)b->n);
    int kept = session_deliver_many(w, b->ids, b->n, b->m);
    msg_unref_n(b->m, (int)b->n - kept + 1); /* the unused loans and the batch's own */
    free(b);
}

/* uids owned by one worker that may be online and should get m: one allocation, the
 * n + 1 offsets and then the uid bytes follow the struct. */
typedef struct uid_batch {
    mp_msg *m;
    webhook_offline *offline; /* collects this batch's offline uids for msg.offline, or NULL */
    uint64_t exclude;
    size_t n;
    uint32_t offs[];
} uid_batch;

static const char *batch_text(const uid_batch *b) { return (const char *)&b->offs[b->n + 1]; }

/* msg.offline's notion of online (webhook.h): a connection that counts. */
static int counts_online(const user *u) {
    for (size_t j = 0; u && j < u->n; j++)
        if (webhook_counts_online(u->devs[j].level)) return 1;
    return 0;
}

static void do_uid_batch(worker *w, void *arg) {
    uid_batch *b = arg;
    int nw = workers_count();
    conn_batch *per[MP_MAX_WORKERS] = {0};
    const char *text = batch_text(b);
    webhook_uids offline = {0};
    for (size_t i = 0; i < b->n; i++) {
        user *u = map_get(w->presence->users, text + b->offs[i], b->offs[i + 1] - b->offs[i]);
        if (b->offline && !counts_online(u))
            webhook_uids_add(&offline, (mp_str){text + b->offs[i], b->offs[i + 1] - b->offs[i]});
        for (size_t j = 0; u && j < u->n; j++) {
            dev *d = &u->devs[j];
            if (d->conn_id == b->exclude) continue;
            conn_batch *cb = per[d->worker];
            if (!cb || cb->n == cb->cap) {
                size_t cap = cb ? cb->cap * 2 : 16;
                conn_batch *nb = mp_realloc(cb, sizeof *nb + cap * sizeof(uint64_t));
                if (!cb) {
                    nb->m = msg_ref(b->m);
                    nb->n = 0;
                }
                nb->cap = cap;
                per[d->worker] = cb = nb;
            }
            cb->ids[cb->n++] = d->conn_id;
        }
    }
    for (int i = 0; i < nw; i++)
        if (per[i]) worker_post(i, do_conn_batch, per[i]);
    if (b->offline) webhook_offline_part(b->offline, &offline);
    msg_unref(b->m);
    free(b);
}

/* Members that passed the online filter, with their owners. */
typedef struct candidate {
    uint32_t index;
    int owner;
} candidate;

void presence_deliver(mp_msg *m, const mp_str *uids, const uint64_t *hashes, size_t n, uint64_t exclude_conn_id) {
    int nw = workers_count();
    size_t count[MP_MAX_WORKERS] = {0}, bytes[MP_MAX_WORKERS] = {0};
    candidate stack[256];
    candidate *cand = stack;
    size_t nc = 0, cap = MP_ARRAY_LEN(stack);
    int want_offline = webhook_offline_wanted(m);
    webhook_uids offline = {0}; /* members the filter proves offline, for msg.offline */
    for (size_t i = 0; i < n; i++) {
        uint64_t h = hashes ? hashes[i] : mp_hash(uids[i].p, uids[i].len);
        if (!maybe_online(h)) {
            if (want_offline) webhook_uids_add(&offline, uids[i]);
            continue;
        }
        if (nc == cap) {
            cap *= 2;
            candidate *bigger = mp_malloc(cap * sizeof *bigger);
            memcpy(bigger, cand, nc * sizeof *cand);
            if (cand != stack) free(cand);
            cand = bigger;
        }
        int owner = worker_owner_of_hash(h);
        cand[nc++] = (candidate){(uint32_t)i, owner};
        count[owner]++;
        bytes[owner] += uids[i].len;
    }
    webhook_offline *wo = NULL;
    if (want_offline) {
        int parts = offline.len != 0; /* this thread's part if any, then one per owner batch */
        for (int wi = 0; wi < nw; wi++) parts += count[wi] != 0;
        wo = parts ? webhook_offline_begin(m, parts) : NULL;
        if (wo && offline.len) webhook_offline_part(wo, &offline);
        free(offline.buf);
    }
    uid_batch *per[MP_MAX_WORKERS] = {0};
    for (int wi = 0; wi < nw; wi++) {
        if (!count[wi]) continue;
        uid_batch *b = mp_malloc(sizeof *b + (count[wi] + 1) * sizeof(uint32_t) + bytes[wi]);
        b->m = msg_ref(m);
        b->offline = wo;
        b->exclude = exclude_conn_id;
        b->n = 0;
        b->offs[0] = 0;
        per[wi] = b;
    }
    for (size_t k = 0; k < nc; k++) {
        uid_batch *b = per[cand[k].owner];
        mp_str uid = uids[cand[k].index];
        /* the text starts after count + 1 offsets; n is final only at the end, so use count */
        char *text = (char *)&b->offs[count[cand[k].owner] + 1];
        memcpy(text + b->offs[b->n], uid.p, uid.len);
        b->offs[b->n + 1] = b->offs[b->n] + uid.len;
        b->n++;
    }
    if (cand != stack) free(cand);
    for (int wi = 0; wi < nw; wi++)
        if (per[wi]) worker_post(wi, do_uid_batch, per[wi]);
}

/* ---- queries --------------------------------------------------------------------------
 * Scatter/gather: the caller's query is split by owner worker; each part travels to its
 * owner, is answered there from the registry, and travels back to the caller's worker,
 * which alone touches the query job (so it needs no lock). */

typedef struct conn_vec {
    presence_conn *v;
    size_t n, cap;
} conn_vec;

static void conn_vec_push(conn_vec *cv, presence_conn pc) {
    if (cv->n == cv->cap) {
        cv->cap = cv->cap ? cv->cap * 2 : 16;
        cv->v = mp_realloc(cv->v, cv->cap * sizeof *cv->v);
    }
    cv->v[cv->n++] = pc;
}

typedef struct query_job {
    int left; /* parts still out */
    size_t n_uids;
    presence_query_fn done;
    void *ctx;
    conn_vec found;
} query_job;

/* The uids of one owner: uid i is text[offs[i] .. offs[i+1]) at query position idx[i]. */
typedef struct query_part {
    int origin;
    query_job *job; /* only dereferenced back on the origin worker */
    size_t n;
    uint32_t *idx;
    uint32_t *offs;
    char *text;
    conn_vec found;
} query_part;

static void query_part_free(query_part *p) {
    free(p->idx);
    free(p->offs);
    free(p->text);
    free(p->found.v);
    free(p);
}

static void query_finish(query_job *j) {
    /* Parts come back in any order: a counting sort by uid position keeps each uid's
     * devices in registration order. */
    size_t *first = mp_calloc(j->n_uids + 1, sizeof *first);
    for (size_t i = 0; i < j->found.n; i++) first[j->found.v[i].uid_index + 1]++;
    for (size_t u = 0; u < j->n_uids; u++) first[u + 1] += first[u];
    presence_conn *out = mp_malloc((j->found.n ? j->found.n : 1) * sizeof *out);
    for (size_t i = 0; i < j->found.n; i++) out[first[j->found.v[i].uid_index]++] = j->found.v[i];
    j->done(j->ctx, out, j->found.n);
    free(out);
    free(first);
    free(j->found.v);
    free(j);
}

static void query_back(worker *w, void *arg) {
    (void)w;
    query_part *p = arg;
    query_job *j = p->job;
    for (size_t i = 0; i < p->found.n; i++) conn_vec_push(&j->found, p->found.v[i]);
    query_part_free(p);
    if (--j->left == 0) query_finish(j);
}

static void query_run(worker *w, void *arg) {
    query_part *p = arg;
    for (size_t i = 0; i < p->n; i++) {
        user *u = map_get(w->presence->users, p->text + p->offs[i], p->offs[i + 1] - p->offs[i]);
        for (size_t k = 0; u && k < u->n; k++) {
            const dev *d = &u->devs[k];
            presence_conn pc = {p->idx[i], d->device_flag, d->level, d->conn_id};
            conn_vec_push(&p->found, pc);
        }
    }
    worker_post(p->origin, query_back, p);
}

void presence_query(const mp_str *uids, size_t n, presence_query_fn done, void *ctx) {
    worker *self = worker_current();
    MP_ASSERT(self);
    if (n == 0) {
        done(ctx, NULL, 0);
        return;
    }
    int nw = workers_count();
    query_job *j = mp_calloc(1, sizeof *j);
    j->n_uids = n;
    j->done = done;
    j->ctx = ctx;
    size_t count[MP_MAX_WORKERS] = {0}, bytes[MP_MAX_WORKERS] = {0};
    int *owner = mp_malloc(n * sizeof(int));
    for (size_t i = 0; i < n; i++) {
        owner[i] = owner_of_uid(uids[i]);
        count[owner[i]]++;
        bytes[owner[i]] += uids[i].len;
    }
    query_part *per[MP_MAX_WORKERS] = {0};
    for (int wi = 0; wi < nw; wi++) {
        if (!count[wi]) continue;
        query_part *p = mp_calloc(1, sizeof *p);
        p->origin = self->index;
        p->job = j;
        p->idx = mp_malloc(count[wi] * sizeof(uint32_t));
        p->offs = mp_malloc((count[wi] + 1) * sizeof(uint32_t));
        p->offs[0] = 0;
        p->text = mp_malloc(bytes[wi] ? bytes[wi] : 1);
        per[wi] = p;
        j->left++;
    }
    for (size_t i = 0; i < n; i++) {
        query_part *p = per[owner[i]];
        memcpy(p->text + p->offs[p->n], uids[i].p, uids[i].len);
        p->offs[p->n + 1] = p->offs[p->n] + uids[i].len;
        p->idx[p->n++] = (uint32_t)i;
    }
    free(owner);
    for (int wi = 0; wi < nw; wi++)
        if (per[wi]) worker_post(wi, query_run, per[wi]);
}

/* -- registry sizes -- */

typedef struct stats_job {
    int origin;
    int left;
    presence_stats_fn done;
    void *ctx;
    presence_stats part[MP_MAX_WORKERS];
} stats_job;

static void stats_back(worker *w, void *arg) {
    (void)w;
    stats_job *j = arg;
    if (--j->left > 0) return;
    presence_stats sum = {0};
    for (int i = 0; i < workers_count(); i++) {
        sum.users += j->part[i].users;
        sum.conns += j->part[i].conns;
    }
    j->done(j->ctx, &sum);
    free(j);
}

static int count_devs(void *ctx, const void *key, size_t klen, void *val) {
    (void)key;
    (void)klen;
    *(uint64_t *)ctx += ((const user *)val)->n;
    return 0;
}

static void stats_run(worker *w, void *arg) {
    stats_job *j = arg;
    presence_stats *s = &j->part[w->index]; /* each worker writes only its own slot */
    s->users = map_count(w->presence->users);
    map_foreach(w->presence->users, count_devs, &s->conns);
    worker_post(j->origin, stats_back, j);
}

void presence_stats_gather(presence_stats_fn done, void *ctx) {
    worker *self = worker_current();
    MP_ASSERT(self);
    stats_job *j = mp_calloc(1, sizeof *j);
    j->origin = self->index;
    j->left = workers_count();
    j->done = done;
    j->ctx = ctx;
    for (int i = 0; i < workers_count(); i++) worker_post(i, stats_run, j);
}
