/* channel.c - channel owners: permission checks, de-duplication, sequencing, commit,
 * SENDACK and fan-out. State here is touched only by the owning worker. */
#include "channel.h"

#include "../common/log.h"
#include "../common/map.h"
#include "../common/metrics.h"
#include "../core/presence.h"
#include "../core/sysuid.h"
#include "../integ/datasource.h"
#include "../integ/webhook.h"
#include "../proto/packet.h"
#include "../session/session.h"
#include "../store/store.h"

typedef struct chan {
    uint8_t type;
    mp_str id;            /* owned copy */
    int seq_loaded;
    uint64_t last_seq;    /* last ASSIGNED seq (committed or in flight) */
    uint32_t epoch;       /* bumped when a store failure rewinds last_seq */
    int subs_loaded;
    mp_str *subs;         /* cached subscriber list for fan-out */
    uint64_t *subs_hash;  /* mp_hash of each, for presence_deliver's online filter */
    char *subs_text;
    size_t n_subs;
    uint64_t subs_gen;    /* ds_generation of the datasource answers subs came from */
    mp_map *inflight;     /* from_uid "\0" client_msg_no -> send_op awaiting commit */
    struct temp_set *temp; /* temp channels: the set installed by chan_temp_set, or NULL */
} chan;

/* A temp channel's recipients (spec §5.13): one allocation, the views point into its tail. */
typedef struct temp_set {
    uint64_t used_ms; /* monotonic: when installed or last delivered to */
    size_t n;
    mp_str uids[];    /* followed by the uid bytes */
} temp_set;

struct chan_mgr {
    mp_map *chans; /* type byte + id -> chan */
    uint64_t temp_swept_ms;
};

/* A send travelling to the owner, through the store, and back. Strings live in `text`. */
typedef struct send_op {
    chan_send r;
    int owner;
    int status;
    uint32_t epoch;
    chan *ch;
    mp_msg *m;
    int early;            /* message log on: answered (SENDACK or API reply) and delivered once
                           * the log had it (on_logged), before the LMDB commit (do_committed) */
    struct send_op *dups; /* duplicates (same client_msg_no) waiting for this commit */
    struct send_op *next_dup;
    char text[];
} send_op;

static void chan_free_one(void *p) {
    chan *c = p;
    free((void *)c->id.p);
    free(c->subs);
    free(c->subs_hash);
    free(c->subs_text);
    free(c->temp);
    map_free(c->inflight, NULL);
    free(c);
}

void chan_init(worker *w) {
    w->chans = mp_calloc(1, sizeof(struct chan_mgr));
    w->chans->chans = map_new();
}

void chan_free(worker *w) {
    if (!w->chans) return;
    map_free(w->chans->chans, chan_free_one);
    free(w->chans);
    w->chans = NULL;
}

int chan_is_cmd(mp_str id) {
    return id.len > CHAN_CMD_SUFFIX_LEN &&
           memcmp(id.p + id.len - CHAN_CMD_SUFFIX_LEN, CHAN_CMD_SUFFIX, CHAN_CMD_SUFFIX_LEN) == 0;
}

mp_str chan_cmd_origin(mp_str id) {
    if (chan_is_cmd(id)) id.len -= CHAN_CMD_SUFFIX_LEN;
    return id;
}

/* The channel whose members and rules a stored channel uses: X for a command channel
 * X____cmd. Not for temp channels: their own ids end in the suffix (subscribers sends). */
static mp_str rules_id(uint8_t type, mp_str id) { return type == CHANNEL_TEMP ? id : chan_cmd_origin(id); }

/* Split a two-uid id "a@b" (person fake id, agent id); 0 if it has no '@'. */
static int split_pair(mp_str id, mp_str *a, mp_str *b) {
    const char *at = id.len ? memchr(id.p, '@', id.len) : NULL;
    if (!at) return 0;
    *a = (mp_str){id.p, (uint32_t)(at - id.p)};
    *b = (mp_str){at + 1, id.len - a->len - 1};
    return 1;
}

uint32_t chan_agent_id(mp_str uid, mp_str agent_uid, char *out) {
    memcpy(out, uid.p, uid.len);
    out[uid.len] = '@';
    memcpy(out + uid.len + 1, agent_uid.p, agent_uid.len);
    return uid.len + 1 + agent_uid.len;
}

mp_str chan_agent_peer(mp_str stored_id) {
    mp_str uid, agent;
    return split_pair(chan_cmd_origin(stored_id), &uid, &agent) ? agent : stored_id;
}

int chan_owner_of(uint8_t type, mp_str stored_id) {
    uint64_t h = mp_hash(stored_id.p, stored_id.len) ^ ((uint64_t)type * 0x9E3779B97F4A7C15ull);
    return (int)(h % (uint64_t)workers_count());
}

/* The channel's state on its owner; create = 0 only looks. */
static chan *chan_lookup(worker *w, uint8_t type, mp_str id, int create) {
    char stack[256];
    size_t klen = (size_t)id.len + 1;
    char *key = klen <= sizeof stack ? stack : mp_malloc(klen);
    key[0] = (char)type;
    memcpy(key + 1, id.p, id.len);
    chan *c = map_get(w->chans->chans, key, klen);
    if (!c && create) {
        c = mp_calloc(1, sizeof *c);
        c->type = type;
        c->id = (mp_str){mp_strndup(id.p, id.len), id.len};
        c->inflight = map_new();
        map_put(w->chans->chans, key, klen, c);
    }
    if (key != stack) free(key);
    return c;
}

static chan *chan_get(worker *w, uint8_t type, mp_str id) { return chan_lookup(w, type, id, 1); }

/* ---- cached state -------------------------------------------------------------------- */

static int load_seq(chan *c) {
    if (c->seq_loaded) return MP_OK;
    store_rtxn *r;
    int rc = store_rtxn_begin(im_store(), &r);
    if (rc != MP_OK) return rc;
    rc = store_get_last_seq(r, c->type, c->id, &c->last_seq);
    store_rtxn_end(r);
    if (rc == MP_OK) c->seq_loaded = 1;
    return rc;
}

typedef struct subs_acc {
    mp_buf text;
    uint32_t *lens;
    size_t n, cap;
} subs_acc;

static int collect_uid(void *ctx, mp_str uid) {
    subs_acc *a = ctx;
    if (mp_str_eq_c(uid, MP_SYSTEM_UID)) return 0; /* the built-in system uid never receives */
    if (a->n == a->cap) {
        a->cap = a->cap ? a->cap * 2 : 64;
        a->lens = mp_realloc(a->lens, a->cap * sizeof(uint32_t));
    }
    a->lens[a->n++] = uid.len;
    mp_buf_append(&a->text, uid.p, uid.len);
    return 0;
}

/* A recipient implied by the channel id (spec §5.15): the visitor of a customer service
 * channel "visitor|...", the visitor whose uid a visitors channel's id is. */
static mp_str implied_member(uint8_t type, mp_str id) {
    if (type == CHANNEL_VISITORS) return id;
    if (type != CHANNEL_CUSTOMER_SERVICE) return (mp_str){NULL, 0};
    const char *bar = id.len ? memchr(id.p, '|', id.len) : NULL;
    return bar ? (mp_str){id.p, (uint32_t)(bar - id.p)} : (mp_str){NULL, 0};
}

/* Append the implied member unless it is already a subscriber. */
static void add_implied(subs_acc *a, mp_str uid) {
    if (uid.len == 0) return;
    size_t off = 0;
    for (size_t i = 0; i < a->n; off += a->lens[i], i++)
        if (a->lens[i] == uid.len && memcmp(a->text.data + off, uid.p, uid.len) == 0) return;
    collect_uid(a, uid);
}

/* The members of a (non-person, non-temp) channel for fan-out: the stored subscribers of
 * the channel whose rules it uses, plus the implied member. Cached until invalidated. */
static int scan_stored_subs(uint8_t type, mp_str id, subs_acc *a) {
    store_rtxn *r;
    int rc = store_rtxn_begin(im_store(), &r);
    if (rc != MP_OK) return rc;
    rc = store_scan_set(r, STORE_SUBSCRIBERS, type, id, collect_uid, a);
    store_rtxn_end(r);
    return rc == MP_ENOTFOUND ? MP_OK : rc;
}

/* With a datasource, the members are its answer while it has one (a new answer replaces
 * the copy); otherwise the stored subscribers. */
static int load_subs(chan *c) {
    mp_str id = rules_id(c->type, c->id);
    const ds_entry *ds = ds_enabled() ? ds_peek(c->type, id) : NULL;
    if (c->subs_loaded && (!ds || ds_generation(ds) == c->subs_gen)) return MP_OK;
    subs_acc a = {MP_BUF_INIT, NULL, 0, 0};
    int rc = ds && ds_each(ds, STORE_SUBSCRIBERS, collect_uid, &a) == 0 ? MP_OK : scan_stored_subs(c->type, id, &a);
    if (rc != MP_OK) {
        mp_buf_free(&a.text);
        free(a.lens);
        return rc;
    }
    add_implied(&a, implied_member(c->type, id));
    free(c->subs);
    free(c->subs_hash);
    free(c->subs_text);
    c->subs_text = (char *)a.text.data;
    c->subs = mp_malloc((a.n ? a.n : 1) * sizeof(mp_str));
    c->subs_hash = mp_malloc((a.n ? a.n : 1) * sizeof(uint64_t));
    size_t off = 0;
    for (size_t i = 0; i < a.n; i++) {
        c->subs[i] = (mp_str){c->subs_text + off, a.lens[i]};
        c->subs_hash[i] = mp_hash(c->subs[i].p, c->subs[i].len);
        off += a.lens[i];
    }
    c->n_subs = a.n;
    c->subs_gen = ds ? ds_generation(ds) : 0;
    free(a.lens);
    c->subs_loaded = 1;
    return MP_OK;
}

typedef struct inval_req {
    uint8_t type;
    uint32_t len;
    char id[];
} inval_req;

static void do_invalidate(worker *w, void *arg) {
    inval_req *r = arg;
    chan *c = chan_lookup(w, r->type, (mp_str){r->id, r->len}, 0);
    if (c) c->subs_loaded = 0; /* nothing cached for a channel not seen yet */
    free(r);
}

static void post_invalidate(uint8_t type, mp_str id) {
    inval_req *r = mp_malloc(sizeof *r + id.len);
    r->type = type;
    r->len = id.len;
    memcpy(r->id, id.p, id.len);
    worker_post(chan_owner_of(type, id), do_invalidate, r);
}

void chan_invalidate(uint8_t type, mp_str stored_id) {
    post_invalidate(type, stored_id);
    /* the command channel caches the same members; it may live on another owner */
    if (type == CHANNEL_PERSON || type == CHANNEL_AGENT || type == CHANNEL_TEMP || chan_is_cmd(stored_id)) return;
    char stack[256];
    size_t n = (size_t)stored_id.len + CHAN_CMD_SUFFIX_LEN;
    char *id = n <= sizeof stack ? stack : mp_malloc(n);
    memcpy(id, stored_id.p, stored_id.len);
    memcpy(id + stored_id.len, CHAN_CMD_SUFFIX, CHAN_CMD_SUFFIX_LEN);
    post_invalidate(type, (mp_str){id, (uint32_t)n});
    if (id != stack) free(id);
}

/* ---- permission checks (spec §5.6) ---------------------------------------------------- */

/* Types without the channel-level ban/disband check. */
static int is_public_type(uint8_t t) {
    return t == CHANNEL_CUSTOMER_SERVICE || t == CHANNEL_INFO || t == CHANNEL_VISITORS || t == CHANNEL_AGENT;
}

/* Where the sender checks read a channel's lists: the datasource's answers for it when
 * they carry the list, else the store. */
typedef struct lists {
    store_rtxn *r;
    const ds_entry *ds;
} lists;

static int in_list(const lists *l, int set, uint8_t t, mp_str id, mp_str uid) {
    int v = l->ds ? ds_contains(l->ds, set, uid) : -1;
    return v >= 0 ? v : store_set_contains(l->r, set, t, id, uid) == 1;
}

/* The recipient's lists decide; a system account as recipient takes anything. */
static uint8_t check_person(const lists *l, mp_str id, mp_str from) {
    mp_str to = msg_person_peer(id, from);
    if (sysuid_is(to)) return REASON_SUCCESS;
    if (in_list(l, STORE_BLACKLIST, CHANNEL_PERSON, to, from)) return REASON_IN_BLACKLIST;
    if (!im_config()->whitelist_off_of_person && !mp_str_eq(from, to) &&
        !in_list(l, STORE_WHITELIST, CHANNEL_PERSON, to, from))
        return REASON_NOT_IN_WHITELIST;
    return REASON_SUCCESS;
}

static int stop_at_first(void *ctx, mp_str uid) {
    (void)uid;
    *(int *)ctx = 1;
    return 1;
}

/* Whether a set has any member: one cursor step, whatever the set's size. */
static int set_nonempty(const lists *l, int set, uint8_t type, mp_str id) {
    int any = l->ds ? ds_nonempty(l->ds, set) : -1;
    if (any >= 0) return any;
    any = 0;
    store_scan_set(l->r, set, type, id, stop_at_first, &any);
    return any;
}

static uint8_t check_member(const lists *l, uint8_t t, mp_str id, mp_str from, int has_info) {
    if (in_list(l, STORE_BLACKLIST, t, id, from)) return REASON_IN_BLACKLIST;
    if (!in_list(l, STORE_SUBSCRIBERS, t, id, from))
        return (has_info || set_nonempty(l, STORE_SUBSCRIBERS, t, id)) ? REASON_SUBSCRIBER_NOT_EXIST
                                                                       : REASON_CHANNEL_NOT_EXIST;
    if (set_nonempty(l, STORE_WHITELIST, t, id) && !in_list(l, STORE_WHITELIST, t, id, from))
        return REASON_NOT_IN_WHITELIST;
    return REASON_SUCCESS;
}

/* Senders a channel type lets through before the list checks: anyone on customer service,
 * info and temp channels, the visitor on its own visitors channel, the two parties of an
 * agent channel. */
static int type_admits(uint8_t t, mp_str id, mp_str from) {
    mp_str uid, agent;
    switch (t) {
    case CHANNEL_CUSTOMER_SERVICE:
    case CHANNEL_INFO:
    case CHANNEL_TEMP: return 1;
    case CHANNEL_VISITORS: return mp_str_eq(from, id);
    case CHANNEL_AGENT: return split_pair(id, &uid, &agent) && (mp_str_eq(from, uid) || mp_str_eq(from, agent));
    default: return 0;
    }
}

/* Sender-level checks (spec §5.6 step 5). The system device (API sends) and system
 * accounts skip the lists, but a channel that does not exist at all still refuses them. */
static uint8_t check_sender(const lists *l, const chan_send *s, mp_str id, int has_info) {
    uint8_t t = s->f.channel_type;
    mp_str from = s->f.from_uid;
    if (type_admits(t, id, from)) return REASON_SUCCESS;
    if (s->from_api || sysuid_is(from)) {
        if (t == CHANNEL_PERSON || t == CHANNEL_AGENT || t == CHANNEL_VISITORS || has_info ||
            set_nonempty(l, STORE_SUBSCRIBERS, t, id))
            return REASON_SUCCESS;
        return REASON_CHANNEL_NOT_EXIST;
    }
    if (t == CHANNEL_PERSON) return check_person(l, id, from);
    return check_member(l, t, id, from, has_info);
}

/* Every check runs against the channel whose rules the stored channel uses (X for the
 * command channel X____cmd); ds = the datasource's answers for it, or NULL. */
static uint8_t check_send(const chan_send *s, const ds_entry *ds) {
    store_rtxn *r;
    if (store_rtxn_begin(im_store(), &r) != MP_OK) return REASON_SYSTEM_ERROR;
    uint8_t t = s->f.channel_type;
    mp_str id = rules_id(t, s->f.channel_id);
    uint8_t reason = REASON_SUCCESS;
    store_channel_info info;
    if (!s->from_api && store_get_channel_info(r, CHANNEL_PERSON, s->f.from_uid, &info) == MP_OK && info.send_ban)
        reason = REASON_SEND_BAN;
    int has_info = store_get_channel_info(r, t, id, &info) == MP_OK;
    int ban = has_info && info.ban, disband = has_info && info.disband;
    if (ds && t != CHANNEL_PERSON && ds_info(ds, &ban, &disband)) has_info = 1; /* channelInfoOn */
    if (reason == REASON_SUCCESS && has_info && !is_public_type(t)) {
        if (ban) reason = REASON_BAN;
        else if (disband) reason = REASON_DISBAND;
    }
    lists l = {r, ds};
    if (reason == REASON_SUCCESS) reason = check_sender(&l, s, id, has_info);
    store_rtxn_end(r);
    return reason;
}

/* ---- replies --------------------------------------------------------------------------- */

typedef struct api_reply {
    im_done_fn done;
    void *ctx;
    im_result res;
    char cmn[];
} api_reply;

static void do_api_reply(worker *w, void *arg) {
    (void)w;
    api_reply *a = arg;
    a->res.client_msg_no = mp_str_c(a->cmn);
    a->done(a->ctx, &a->res);
    free(a);
}

typedef struct ack_reply {
    uint64_t conn_id;
    int64_t message_id;
    uint64_t seq;
    uint32_t client_seq;
    uint8_t flags, reason;
    uint64_t decoded_ns;
} ack_reply;

static void do_ack_reply(worker *w, void *arg) {
    ack_reply *a = arg;
    if (session_sendack(w, a->conn_id, a->flags, a->message_id, a->client_seq, a->seq, a->reason) && a->decoded_ns)
        mt_hist_observe(&mt_worker_slot(w->index)->sendack_latency, &mt_latency_bounds, uv_hrtime() - a->decoded_ns);
    free(a);
}

/* error: the API's text for a refusal (REASON_SYSTEM_ERROR shows it), NULL = generic. */
static void reply_with(const chan_send *r, uint8_t reason, int64_t message_id, uint64_t seq, const char *error) {
    if (r->done) {
        api_reply *a = mp_calloc(1, sizeof *a + r->f.client_msg_no.len + 1);
        a->done = r->done;
        a->ctx = r->ctx;
        a->res.status = reason == REASON_SUCCESS ? MP_OK : MP_EPERM;
        a->res.reason = reason;
        a->res.message_id = message_id;
        a->res.message_seq = seq;
        a->res.error = reason == REASON_SUCCESS ? NULL : error ? error : "message refused";
        memcpy(a->cmn, r->f.client_msg_no.p, r->f.client_msg_no.len);
        worker_post(r->origin_worker, do_api_reply, a);
    } else if (r->conn_id) {
        ack_reply *a = mp_malloc(sizeof *a);
        *a = (ack_reply){r->conn_id, message_id, seq, r->client_seq, r->ack_flags, reason, r->decoded_ns};
        worker_post(r->origin_worker, do_ack_reply, a);
    }
}

static void reply(const chan_send *r, uint8_t reason, int64_t message_id, uint64_t seq) {
    reply_with(r, reason, message_id, seq, NULL);
}

/* ---- fan-out --------------------------------------------------------------------------- */

static int conversations_kept(uint8_t t) { return t != CHANNEL_DATA && t != CHANNEL_TEMP && t != CHANNEL_LIVE; }

/* Recipients as resolved by the channel owner; the views stay valid until the owner's
 * next change of the channel's cache. */
typedef struct rcpt {
    const mp_str *uids;
    const uint64_t *hashes; /* their mp_hash values when cached, else NULL */
    size_t n;
    mp_str pair[2];
} rcpt;

static void pair_add(rcpt *to, mp_str uid) {
    if (uid.len == 0 || mp_str_eq_c(uid, MP_SYSTEM_UID) || (to->n && mp_str_eq(to->pair[0], uid))) return;
    to->pair[to->n++] = uid;
}

/* A temp set unused for tag.expire is gone (spec §5.13). */
static int temp_alive(const temp_set *t, uint64_t now) {
    return t && now - t->used_ms < im_config()->tag_expire_ms;
}

/* Who gets a message or event of channel c (spec §5.15), one rule for both:
 * person and agent channels the two uids of the id; temp channels the installed set
 * (nobody without one); every other type the members (load_subs), a command channel
 * those of its original channel. The built-in system uid is never among them. */
static int resolve_recipients(chan *c, rcpt *to) {
    mp_str id = rules_id(c->type, c->id), a, b;
    to->uids = to->pair;
    to->hashes = NULL;
    to->n = 0;
    switch (c->type) {
    case CHANNEL_PERSON:
    case CHANNEL_AGENT:
        if (split_pair(id, &a, &b)) {
            pair_add(to, a);
            pair_add(to, b);
        }
        return MP_OK;
    case CHANNEL_TEMP: {
        uint64_t now = mp_mono_ms();
        if (temp_alive(c->temp, now)) {
            c->temp->used_ms = now;
            to->uids = c->temp->uids;
            to->n = c->temp->n;
        }
        return MP_OK;
    }
    default: {
        int rc = load_subs(c);
        if (rc != MP_OK) return rc;
        to->uids = c->subs;
        to->hashes = c->subs_hash;
        to->n = c->n_subs;
        return MP_OK;
    }
    }
}

static void fan_out(chan *c, const chan_send *r, mp_msg *m) {
    rcpt to;
    int rc = resolve_recipients(c, &to);
    if (rc != MP_OK) {
        LOG_ERROR("channel", "cannot load the recipients of %.*s: %s; stored but not pushed", (int)c->id.len, c->id.p,
                  mp_strerror(rc));
        return;
    }
    presence_deliver(m, to.uids, to.hashes, to.n, r->conn_id);
}

/* A send with explicit recipients goes to them; any other to the channel's own. */
static void deliver(chan *c, const chan_send *r, mp_msg *m) {
    if (r->n_recipients) presence_deliver(m, r->recipients, NULL, r->n_recipients, r->conn_id);
    else fan_out(c, r, m);
}

/* ---- commit ------------------------------------------------------------------------------ */

static void touch_conv(store_wtxn *t, mp_str uid, uint8_t type, mp_str id, uint64_t read_to, uint64_t now_ns) {
    store_conv cv;
    if (store_txn_get_conv(t, uid, type, id, &cv) != MP_OK) {
        memset(&cv, 0, sizeof cv);
        cv.created_at_ns = now_ns;
    }
    if (read_to > cv.readed_to_seq) cv.readed_to_seq = read_to;
    cv.updated_at_ns = now_ns;
    store_txn_put_conv(t, uid, type, id, &cv);
}

/* A command conversation row (type 1) for one recipient, created when missing with
 * nothing read (spec §5.8); existing rows keep their read pointer. */
static int touch_cmd_conv(store_wtxn *t, mp_str uid, const msg_fields *f, uint64_t now_ns) {
    if (mp_str_eq_c(uid, MP_SYSTEM_UID)) return MP_OK;
    int own = mp_str_eq(uid, f->from_uid);
    store_conv cv;
    int rc = store_txn_get_conv(t, uid, f->channel_type, f->channel_id, &cv);
    if (rc == MP_OK && !(own && cv.readed_to_seq < f->seq)) return MP_OK;
    if (rc != MP_OK) {
        memset(&cv, 0, sizeof cv);
        cv.type = 1;
        cv.created_at_ns = now_ns;
    }
    if (own) cv.readed_to_seq = f->seq; /* the sender has read its own command */
    cv.updated_at_ns = now_ns;
    return store_txn_put_conv(t, uid, f->channel_type, f->channel_id, &cv);
}

typedef struct cmd_rows {
    store_wtxn *t;
    const msg_fields *f;
    uint64_t now;
    int rc;
} cmd_rows;

static int cmd_row_of(void *ctx, mp_str uid) {
    cmd_rows *cr = ctx;
    cr->rc = touch_cmd_conv(cr->t, uid, cr->f, cr->now);
    return cr->rc != MP_OK;
}

/* Command rows for every recipient of a persisted command message: the explicit
 * recipients of a subscribers send, else the members of the original channel. This is
 * write diffusion (one row per member, created once), as WuKongIM does for commands. */
static int write_cmd_rows(store_wtxn *t, const msg_fields *f, const mp_str *recipients, size_t n_recipients) {
    cmd_rows cr = {t, f, mp_now_ns(), MP_OK};
    int rc = MP_OK;
    if (n_recipients) {
        for (size_t i = 0; i < n_recipients && rc == MP_OK; i++) rc = touch_cmd_conv(t, recipients[i], f, cr.now);
        return rc;
    }
    mp_str origin = chan_cmd_origin(f->channel_id);
    if (f->channel_type == CHANNEL_PERSON) {
        mp_str peer = msg_person_peer(origin, f->from_uid);
        rc = touch_cmd_conv(t, f->from_uid, f, cr.now);
        if (rc == MP_OK && !mp_str_eq(peer, f->from_uid)) rc = touch_cmd_conv(t, peer, f, cr.now);
        return rc;
    }
    rc = store_txn_scan_set(t, STORE_SUBSCRIBERS, f->channel_type, origin, cmd_row_of, &cr);
    return rc != MP_OK ? rc : cr.rc;
}

/* Writer thread: append the message and keep conversations (spec §5.9): person chats get
 * rows for both sides; the sender has read everything up to its own message. Group
 * members' unread counts are computed from the channel's last seq (read diffusion).
 * Command messages get command rows instead (spec §5.8). */
static int write_message_rows(store_wtxn *t, const msg_fields *f, const mp_str *recipients, size_t n_recipients) {
    int rc = store_txn_append_message(t, f);
    if (rc == MP_OK && chan_is_cmd(f->channel_id)) return write_cmd_rows(t, f, recipients, n_recipients);
    if (rc != MP_OK || !conversations_kept(f->channel_type)) return rc;
    uint64_t now = mp_now_ns();
    mp_str from = f->from_uid;
    int from_system = mp_str_eq_c(from, MP_SYSTEM_UID);
    if (f->channel_type == CHANNEL_PERSON) {
        mp_str peer = msg_person_peer(f->channel_id, from);
        if (!from_system) touch_conv(t, from, f->channel_type, f->channel_id, f->seq, now);
        if (!mp_str_eq(peer, from) && !mp_str_eq_c(peer, MP_SYSTEM_UID))
            touch_conv(t, peer, f->channel_type, f->channel_id, 0, now);
    } else if (!from_system) {
        store_conv cv;
        if (store_txn_get_conv(t, from, f->channel_type, f->channel_id, &cv) == MP_OK)
            touch_conv(t, from, f->channel_type, f->channel_id, f->seq, now);
    }
    return MP_OK;
}

static int write_message(store_wtxn *t, void *arg) {
    send_op *op = arg;
    return write_message_rows(t, &op->m->f, op->r.recipients, op->r.n_recipients);
}

/* ---- the message log record (store_submit_logged) -------------------------------------
 * u32 length of the stored message record, the record (store_msg_encode), u16 number of
 * explicit recipients, each as u16 length + bytes: what write_message needs to run again. */

static size_t log_record_size(const send_op *op) {
    size_t n = 4 + store_msg_encoded_size(&op->m->f) + 2;
    for (size_t i = 0; i < op->r.n_recipients; i++) n += 2 + op->r.recipients[i].len;
    return n;
}

static void log_record_encode(const send_op *op, uint8_t *p) {
    MP_ASSERT(op->r.n_recipients <= UINT16_MAX); /* the API allows 10,000; uids are <= 128 bytes */
    size_t mlen = store_msg_encoded_size(&op->m->f);
    mp_store_u32be(p, (uint32_t)mlen);
    store_msg_encode(&op->m->f, p + 4);
    p += 4 + mlen;
    *p++ = (uint8_t)(op->r.n_recipients >> 8), *p++ = (uint8_t)op->r.n_recipients;
    for (size_t i = 0; i < op->r.n_recipients; i++) {
        mp_str u = op->r.recipients[i];
        *p++ = (uint8_t)(u.len >> 8), *p++ = (uint8_t)u.len;
        memcpy(p, u.p, u.len);
        p += u.len;
    }
}

int chan_replay_record(store_wtxn *t, const uint8_t *rec, size_t len) {
    if (len < 6) return MP_EPROTO;
    size_t mlen = mp_load_u32be(rec);
    if (mlen > len - 6) return MP_EPROTO;
    msg_fields f;
    int rc = store_msg_decode(rec + 4, mlen, &f);
    if (rc != MP_OK) return rc;
    uint64_t last;
    if ((rc = store_txn_get_last_seq(t, f.channel_type, f.channel_id, &last)) != MP_OK) return rc;
    if (f.seq <= last) return 0; /* LMDB has it: written before the crash */
    const uint8_t *p = rec + 4 + mlen, *end = rec + len;
    size_t n = (size_t)p[0] << 8 | p[1];
    p += 2;
    mp_str *to = n ? mp_malloc(n * sizeof *to) : NULL;
    for (size_t i = 0; i < n && rc == MP_OK; i++) {
        size_t ulen = end - p >= 2 ? ((size_t)p[0] << 8 | p[1]) : SIZE_MAX;
        if (ulen > (size_t)(end - p) - 2) rc = MP_EPROTO;
        else to[i] = (mp_str){(const char *)p + 2, (uint32_t)ulen}, p += 2 + ulen;
    }
    if (rc == MP_OK) rc = write_message_rows(t, &f, to, n);
    free(to);
    return rc == MP_OK ? 1 : rc;
}

/* The inflight map's key: from_uid, a NUL, client_msg_no. On the stack unless long. */
typedef struct inflight_key {
    char stack[192];
    char *p;
    size_t len;
} inflight_key;

static void inflight_key_make(inflight_key *k, const msg_fields *f) {
    k->len = (size_t)f->from_uid.len + 1 + f->client_msg_no.len;
    k->p = k->len <= sizeof k->stack ? k->stack : mp_malloc(k->len);
    memcpy(k->p, f->from_uid.p, f->from_uid.len);
    k->p[f->from_uid.len] = 0;
    memcpy(k->p + f->from_uid.len + 1, f->client_msg_no.p, f->client_msg_no.len);
}

static void inflight_key_free(inflight_key *k) {
    if (k->len && k->p != k->stack) free(k->p);
}

static void do_committed(worker *w, void *arg) {
    (void)w;
    send_op *op = arg;
    chan *c = op->ch;
    mp_msg *m = op->m;
    if (op->r.f.client_msg_no.len) {
        inflight_key k;
        inflight_key_make(&k, &m->f);
        map_del(c->inflight, k.p, k.len);
        inflight_key_free(&k);
    }
    if (op->status == MP_OK) {
        if (!op->early) reply(&op->r, REASON_SUCCESS, m->f.message_id, m->f.seq);
        for (send_op *d = op->dups; d; d = d->next_dup) reply(&d->r, REASON_SUCCESS, m->f.message_id, m->f.seq);
        if (!op->early) deliver(c, &op->r, m);
        if (webhook_wants(WEBHOOK_NOTIFY)) webhook_msg_notify(m);
    } else {
        LOG_ERROR("channel", "store append failed seq=%llu err=\"%s\"", (unsigned long long)m->f.seq,
                  mp_strerror(op->status));
        /* The writer is FIFO and append checks seq == last + 1, so every op of this epoch
         * queued behind this one fails too: rewind once, to just before the first failure. */
        if (op->epoch == c->epoch) {
            c->epoch++;
            c->last_seq = m->f.seq - 1;
        }
        reply(&op->r, REASON_SYSTEM_ERROR, m->f.message_id, 0); /* never early: see store_submit_logged */
        for (send_op *d = op->dups; d; d = d->next_dup) reply(&d->r, REASON_SYSTEM_ERROR, m->f.message_id, 0);
    }
    while (op->dups) {
        send_op *d = op->dups;
        op->dups = d->next_dup;
        free(d);
    }
    msg_unref(m);
    free(op);
}

/* Owner: the fan-out of a message the log has made durable. */
static void do_logged(worker *w, void *arg) {
    (void)w;
    send_op *op = arg;
    deliver(op->ch, &op->r, op->m);
}

/* Log thread: the message is durable in the message log. The sender's answer (a
 * connection's SENDACK, an API caller's reply) goes out now, straight to its worker, and
 * the owner starts the fan-out; the LMDB commit follows (do_committed answers duplicates
 * and calls the webhook). API reads
 * wait for the commit of everything acknowledged before them (http_server.c run_route),
 * so a client that got the SENDACK or the RECV can read the message back at once. This is
 * posted to the owner before do_committed is (the batch reaches the writer after its
 * logged callbacks ran), so do_logged runs first. */
static void on_logged(void *arg, int status) {
    send_op *op = arg;
    MP_ASSERT(status == MP_OK); /* a failed log write stops the process */
    reply(&op->r, REASON_SUCCESS, op->m->f.message_id, op->m->f.seq);
    worker_post(op->owner, do_logged, op);
}

static void on_store_done(void *arg, int status) {
    send_op *op = arg;
    op->status = status;
    worker_post(op->owner, do_committed, op);
}

/* Hand the message to the store through the message log (on_logged, do_committed). */
static void submit_message(send_op *op) {
    uint8_t stack[1024];
    size_t len = log_record_size(op);
    uint8_t *rec = len <= sizeof stack ? stack : mp_malloc(len);
    log_record_encode(op, rec);
    op->early = store_logging(im_store());
    int rc = store_submit_logged(im_store(), rec, len, write_message, op->early ? on_logged : NULL, on_store_done, op);
    if (rec != stack) free(rec);
    if (rc != MP_OK) { /* closing: answered as a failed write */
        op->early = 0;
        on_store_done(op, rc);
    }
}

/* ---- the owner's send path ---------------------------------------------------------------- */

/* A committed message with the same client_msg_no from the same sender: answer with it. */
static int find_committed_duplicate(const chan_send *s, int64_t *id, uint64_t *seq) {
    store_rtxn *r;
    if (store_rtxn_begin(im_store(), &r) != MP_OK) return 0;
    msg_fields old;
    int found = store_get_message_by_client_msg_no(r, s->f.channel_type, s->f.channel_id, s->f.client_msg_no, &old) ==
                    MP_OK &&
                mp_str_eq(old.from_uid, s->f.from_uid);
    if (found) {
        *id = old.message_id;
        *seq = old.seq;
    }
    store_rtxn_end(r);
    return found;
}

/* ---- datasource (spec §7, datasource.h) ---------------------------------------------------- */

/* The datasource answers a send or event (s NULL) of channel c needs: those of the channel
 * whose rules it uses; for a person channel the lists of the recipient the sender checks
 * read (API sends skip them; events need none); none for agent and temp channels. */
static int ds_key_of(const chan *c, const chan_send *s, mp_str *id) {
    switch (c->type) {
    case CHANNEL_AGENT:
    case CHANNEL_TEMP: return 0;
    case CHANNEL_PERSON:
        if (!s || s->from_api) return 0;
        *id = msg_person_peer(chan_cmd_origin(c->id), s->f.from_uid);
        return 1;
    default: *id = rules_id(c->type, c->id); return 1;
    }
}

static void do_send(worker *w, void *arg);

/* 1 when the send may go on (*ds = the answers, NULL = use the store); 0 when it was parked
 * (do_send runs again once the answer is there) or refused. Members are copied from a new
 * answer now, so the fan-out after the commit uses what the checks used. */
static int pass_datasource(worker *w, send_op *op, const ds_entry **ds) {
    mp_str id;
    chan *c = op->ch;
    if (!ds_key_of(c, &op->r, &id)) return 1;
    ds_gate g = ds_acquire(w, c->type, id, do_send, op, ds);
    if (g == DS_GO) {
        if (*ds && c->type != CHANNEL_PERSON) load_subs(c);
        return 1;
    }
    int64_t msg_id = op->r.f.message_id;
    if (g == DS_FULL) reply_with(&op->r, REASON_RATE_LIMIT, msg_id, 0, "too many sends waiting for the datasource");
    else if (g == DS_DOWN) reply_with(&op->r, REASON_SYSTEM_ERROR, msg_id, 0, "datasource unavailable");
    if (g != DS_PARKED) free(op);
    return 0;
}

static void do_send(worker *w, void *arg) {
    send_op *op = arg;
    chan_send *s = &op->r;
    chan *c = chan_get(w, s->f.channel_type, s->f.channel_id);
    op->ch = c;
    const ds_entry *ds = NULL;
    if (ds_enabled() && !pass_datasource(w, op, &ds)) return;
    uint8_t reason = check_send(s, ds);
    if (reason != REASON_SUCCESS) {
        reply(s, reason, s->f.message_id, 0);
        free(op);
        return;
    }
    if (s->f.flags & PROTO_FLAG_NOPERSIST) { /* delivered, not stored: seq 0 */
        mp_msg *m = msg_new(&s->f);
        reply(s, REASON_SUCCESS, m->f.message_id, 0);
        deliver(c, s, m);
        msg_unref(m);
        free(op);
        return;
    }
    inflight_key key = {.len = 0};
    if (s->f.client_msg_no.len) {
        inflight_key_make(&key, &s->f);
        send_op *first = map_get(c->inflight, key.p, key.len);
        int64_t old_id;
        uint64_t old_seq;
        if (first) { /* same message still committing: answer together */
            op->next_dup = first->dups;
            first->dups = op;
            inflight_key_free(&key);
            return;
        }
        if (find_committed_duplicate(s, &old_id, &old_seq)) {
            reply(s, REASON_SUCCESS, old_id, old_seq);
            inflight_key_free(&key);
            free(op);
            return;
        }
    }
    if (load_seq(c) != MP_OK) {
        reply(s, REASON_SYSTEM_ERROR, s->f.message_id, 0);
        inflight_key_free(&key);
        free(op);
        return;
    }
    s->f.seq = ++c->last_seq;
    op->epoch = c->epoch;
    op->m = msg_new(&s->f);
    op->owner = w->index;
    if (key.len) map_put(c->inflight, key.p, key.len, op);
    inflight_key_free(&key);
    submit_message(op);
}

/* ---- events ------------------------------------------------------------------------------ */

typedef struct event_op {
    mp_msg *m;
    uint64_t exclude_conn_id;
} event_op;

static void do_event(worker *w, void *arg);

/* Events wait behind the channel's pending datasource answer too (they keep their order
 * with the messages); a failed answer still delivers them, to the stored members. */
static int event_may_go(worker *w, chan *c, event_op *op) {
    mp_str id;
    const ds_entry *ds;
    if (!ds_key_of(c, NULL, &id)) return 1;
    return ds_acquire(w, c->type, id, do_event, op, &ds) != DS_PARKED;
}

static void do_event(worker *w, void *arg) {
    event_op *op = arg;
    chan *c = chan_get(w, op->m->f.channel_type, op->m->f.channel_id);
    if (ds_enabled() && !event_may_go(w, c, op)) return;
    chan_send r = {0};
    r.conn_id = op->exclude_conn_id;
    fan_out(c, &r, op->m);
    msg_unref(op->m);
    free(op);
}

void chan_submit_event(mp_msg *m, uint64_t exclude_conn_id) {
    MP_ASSERT(m->f.kind == MSG_KIND_EVENT);
    event_op *op = mp_malloc(sizeof *op);
    op->m = msg_ref(m);
    op->exclude_conn_id = exclude_conn_id;
    worker_post(chan_owner_of(m->f.channel_type, m->f.channel_id), do_event, op);
}

void chan_submit_send(const chan_send *r) {
    const msg_fields *f = &r->f;
    size_t n = (size_t)f->channel_id.len + f->from_uid.len + f->client_msg_no.len + f->topic.len + f->payload.len;
    for (size_t i = 0; i < r->n_recipients; i++) n += r->recipients[i].len;
    /* the recipient views follow the text, aligned */
    size_t views = r->n_recipients ? r->n_recipients * sizeof(mp_str) + _Alignof(mp_str) : 0;
    send_op *op = mp_calloc(1, sizeof *op + n + views);
    op->r = *r;
    char *cur = op->text;
    op->r.f.channel_id = mp_str_pack(&cur, f->channel_id);
    op->r.f.from_uid = mp_str_pack(&cur, f->from_uid);
    op->r.f.client_msg_no = mp_str_pack(&cur, f->client_msg_no);
    op->r.f.topic = mp_str_pack(&cur, f->topic);
    op->r.f.payload = mp_str_pack(&cur, f->payload);
    if (r->n_recipients) {
        uintptr_t at = ((uintptr_t)(op->text + n) + _Alignof(mp_str) - 1) & ~(uintptr_t)(_Alignof(mp_str) - 1);
        mp_str *to = (mp_str *)at;
        for (size_t i = 0; i < r->n_recipients; i++) to[i] = mp_str_pack(&cur, r->recipients[i]);
        op->r.recipients = to;
    }
    worker_post(chan_owner_of(f->channel_type, f->channel_id), do_send, op);
}

/* ---- temp channels (spec §5.13) ------------------------------------------------------------ */

typedef struct temp_req {
    int origin;
    im_done_fn done;
    void *ctx;
    temp_set *set;
    uint32_t len;
    char id[];
} temp_req;

static int drop_expired_temp(void *ctx, const void *key, size_t klen, void *val) {
    (void)key;
    (void)klen;
    chan *c = val;
    if (c->temp && !temp_alive(c->temp, *(uint64_t *)ctx)) {
        free(c->temp);
        c->temp = NULL;
    }
    return 0;
}

/* Expired sets deliver nothing already; their memory goes back here, at most once a
 * minute, when a set is installed (so no timer is needed). */
static void sweep_temp_sets(worker *w, uint64_t now) {
    if (now - w->chans->temp_swept_ms < 60000) return;
    w->chans->temp_swept_ms = now;
    map_foreach(w->chans->chans, drop_expired_temp, &now);
}

static void do_temp_done(worker *w, void *arg) {
    (void)w;
    temp_req *q = arg;
    im_result res = {0};
    res.status = MP_OK;
    res.reason = REASON_SUCCESS;
    q->done(q->ctx, &res);
    free(q);
}

static void do_temp_set(worker *w, void *arg) {
    temp_req *q = arg;
    uint64_t now = mp_mono_ms();
    sweep_temp_sets(w, now);
    chan *c = chan_get(w, CHANNEL_TEMP, (mp_str){q->id, q->len});
    free(c->temp);
    c->temp = q->set;
    c->temp->used_ms = now;
    q->set = NULL;
    worker_post(q->origin, do_temp_done, q);
}

/* One allocation holding the distinct uids (the built-in system uid left out). */
static temp_set *temp_set_new(const mp_str *uids, size_t n) {
    size_t bytes = 0;
    for (size_t i = 0; i < n; i++) bytes += uids[i].len;
    temp_set *t = mp_malloc(sizeof *t + n * sizeof(mp_str) + bytes);
    char *cur = (char *)&t->uids[n];
    mp_map *seen = map_new();
    t->n = 0;
    for (size_t i = 0; i < n; i++) {
        if (mp_str_eq_c(uids[i], MP_SYSTEM_UID) || map_put(seen, uids[i].p, uids[i].len, t)) continue;
        t->uids[t->n++] = mp_str_pack(&cur, uids[i]);
    }
    map_free(seen, NULL);
    return t;
}

void chan_temp_set(mp_str channel_id, const mp_str *uids, size_t n, im_done_fn done, void *ctx) {
    worker *w = worker_current();
    MP_ASSERT(w);
    temp_req *q = mp_malloc(sizeof *q + channel_id.len);
    q->origin = w->index;
    q->done = done;
    q->ctx = ctx;
    q->set = temp_set_new(uids, n);
    q->len = channel_id.len;
    memcpy(q->id, channel_id.p, channel_id.len);
    worker_post(chan_owner_of(CHANNEL_TEMP, channel_id), do_temp_set, q);
}
