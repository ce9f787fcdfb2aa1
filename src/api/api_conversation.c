/* api_conversation.c - the conversation endpoints (spec §4.6, model §5.9): the list
 * /conversation/sync and its helpers /conversation/syncByChannels, /conversation/syncMessages
 * and /conversation/channels, and the read-position mutations /conversations/setUnread,
 * /clearUnread and /delete.
 *
 * conversation/sync reads the store in one read transaction: the user's chat rows (newest
 * updated_at first, at most CONV_USER_MAX, as WuKongIM), filtered, each bounded below by
 * the client's last_msg_seqs / read pointer / deleted_at_seq. Conversations without a
 * message above the bound are dropped; the rest are ordered newest message first (WuKongIM
 * keeps row order and leaves sorting to clients), then paged, then their recents read.
 * syncByChannels answers the same row shape for channels the caller names (conv_json is
 * shared), with no bound and also for channels without messages. */
#include "../core/msg.h"
#include "api_routes.h"
#include "json_util.h"

#define CONV_USER_MAX 1000     /* WuKongIM conversation.userMaxCount default */
#define CONV_PAGE_DEFAULT 100
#define CONV_PAGE_MAX 500
#define CONV_RECENTS_MAX 10000 /* msg_count cap (WuKongIM has none) */
#define CONV_MSG_COUNT_DEFAULT 15 /* syncByChannels / syncMessages, as WuKongIM */
#define CONV_CHANNELS_MAX 1000 /* entries of a "channels" list (WuKongIM has no cap) */
#define USER_SEQ_SCAN 1000     /* newest messages searched for user_last_msg_seq */
#define CMD_SUFFIX "____cmd"

/* One "channelId:channelType:seq" entry of last_msg_seqs. */
typedef struct seq_hint {
    mp_str id; /* the real id (peer uid for person) */
    long type;
    uint64_t seq;
} seq_hint;

typedef struct conv_sync_req {
    mp_str uid;
    int64_t version;
    int64_t msg_count;
    int only_unread;
    uint8_t exclude[256];
    size_t n_exclude;
    int64_t page, page_size;
    seq_hint *hints;
    size_t n_hints;
} conv_sync_req;

typedef struct conv_cand {
    uint8_t type;
    mp_str id;        /* stored id (view into the read transaction or the request) */
    mp_str real;      /* channel_id as answered */
    store_conv row;
    uint64_t after;   /* recents have seq > after */
    uint64_t last;    /* channel last seq */
    uint32_t timestamp; /* newest message above the bound (the sync's sort key) */
    size_t order;
} conv_cand;

typedef struct conv_list {
    conv_cand *v;
    size_t n, cap;
} conv_list;

/* ---- request parsing ------------------------------------------------------------------------ */

static uint64_t parse_u64(const char *p, size_t n, int *ok) {
    uint64_t v = 0;
    *ok = n > 0;
    for (size_t i = 0; i < n && *ok; i++) {
        if (p[i] < '0' || p[i] > '9' || v > (UINT64_MAX - (uint64_t)(p[i] - '0')) / 10) *ok = 0;
        else v = v * 10 + (uint64_t)(p[i] - '0');
    }
    return *ok ? v : 0;
}

/* Go strconv.Atoi; errors -> 0. */
static long parse_type(const char *p, size_t n) {
    int neg = n > 0 && p[0] == '-', ok;
    size_t skip = n > 0 && (p[0] == '-' || p[0] == '+');
    uint64_t v = parse_u64(p + skip, n - skip, &ok);
    if (!ok || v > 100000) return 0;
    return neg ? -(long)v : (long)v;
}

/* "chanId:chanType:seq|..." -> hints (entries without exactly three parts are skipped). */
static void parse_hints(mp_str s, conv_sync_req *q) {
    size_t cap = 0;
    const char *p = s.p, *end = s.p + s.len;
    while (s.len && p <= end) {
        const char *bar = memchr(p, '|', (size_t)(end - p));
        const char *stop = bar ? bar : end;
        const char *c1 = memchr(p, ':', (size_t)(stop - p));
        const char *c2 = c1 ? memchr(c1 + 1, ':', (size_t)(stop - c1 - 1)) : NULL;
        if (c2 && !memchr(c2 + 1, ':', (size_t)(stop - c2 - 1))) {
            if (q->n_hints == cap) {
                cap = cap ? cap * 2 : 16;
                q->hints = mp_realloc(q->hints, cap * sizeof *q->hints);
            }
            int ok;
            seq_hint *h = &q->hints[q->n_hints++];
            h->id = (mp_str){p, (uint32_t)(c1 - p)};
            h->type = parse_type(c1 + 1, (size_t)(c2 - c1 - 1));
            h->seq = parse_u64(c2 + 1, (size_t)(stop - c2 - 1), &ok);
        }
        if (!bar) break;
        p = bar + 1;
    }
}

/* The client's entry for a conversation (the last one wins, as in a Go map). */
static const seq_hint *find_hint(const conv_sync_req *q, mp_str real, uint8_t type) {
    for (size_t i = q->n_hints; i-- > 0;)
        if (q->hints[i].type == type && mp_str_eq(q->hints[i].id, real)) return &q->hints[i];
    return NULL;
}

static int sync_parse(ju *j, conv_sync_req *q) {
    memset(q, 0, sizeof *q);
    q->uid = ju_str(j, "uid");
    q->version = ju_int(j, "version", INT64_MIN, INT64_MAX);
    mp_str seqs = ju_str(j, "last_msg_seqs");
    q->msg_count = ju_int(j, "msg_count", INT64_MIN, INT64_MAX);
    q->only_unread = ju_uint(j, "only_unread", 255) == 1;
    q->n_exclude = ju_u8_list(j, "exclude_channel_types", q->exclude, sizeof q->exclude);
    q->page = ju_int(j, "page", INT64_MIN, INT64_MAX);
    q->page_size = ju_int(j, "page_size", INT64_MIN, INT64_MAX);
    if (!j->failed && ju_blank(q->uid)) ju_fail(j, "uid is required");
    if (j->failed) return 0;
    parse_hints(seqs, q);
    return 1;
}

/* ---- candidates ----------------------------------------------------------------------------- */

/* A store read error that means "nothing there": no row, or an id too long to be a key. */
static int missing(int rc) { return rc == MP_ENOTFOUND || rc == MP_ETOOBIG; }

static int collect_conv(void *ctx, uint8_t type, mp_str id, const store_conv *c) {
    conv_list *l = ctx;
    if (c->type != 0) return 0; /* command conversations never appear here */
    if (l->n == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 32;
        l->v = mp_realloc(l->v, l->cap * sizeof *l->v);
    }
    conv_cand *k = &l->v[l->n++];
    memset(k, 0, sizeof *k);
    k->type = type;
    k->id = id;
    k->row = *c;
    return 0;
}

static int by_updated_desc(const void *a, const void *b) {
    const conv_cand *x = a, *y = b;
    if (x->row.updated_at_ns != y->row.updated_at_ns) return x->row.updated_at_ns > y->row.updated_at_ns ? -1 : 1;
    return x->order < y->order ? -1 : x->order > y->order;
}

static int by_timestamp_desc(const void *a, const void *b) {
    const conv_cand *x = a, *y = b;
    if (x->timestamp != y->timestamp) return x->timestamp > y->timestamp ? -1 : 1;
    return x->order < y->order ? -1 : x->order > y->order;
}

/* The user's chat rows, newest updated_at first, at most CONV_USER_MAX (WuKongIM's
 * GetLastConversations); ids are views into tx. order is the position in that list. */
static int load_conv_rows(store_rtxn *tx, mp_str uid, conv_list *l) {
    int rc = store_scan_convs(tx, uid, collect_conv, l);
    if (missing(rc)) rc = MP_OK;
    for (size_t i = 0; i < l->n; i++) l->v[i].order = i;
    if (l->n > 1) qsort(l->v, l->n, sizeof *l->v, by_updated_desc);
    if (l->n > CONV_USER_MAX) l->n = CONV_USER_MAX;
    for (size_t i = 0; i < l->n; i++) l->v[i].order = i; /* ties in later sorts keep this order */
    return rc;
}

static int excluded(const conv_sync_req *q, const conv_cand *k) {
    for (size_t i = 0; i < q->n_exclude; i++)
        if (q->exclude[i] == k->type) return find_hint(q, k->real, k->type) == NULL;
    return 0;
}

static int ends_with(mp_str s, const char *suffix) {
    size_t n = strlen(suffix);
    return s.len >= n && memcmp(s.p + s.len - n, suffix, n) == 0;
}

typedef struct newest {
    uint32_t timestamp;
    int found;
} newest;

static int newest_cb(void *ctx, const msg_fields *m) {
    newest *nw = ctx;
    nw->timestamp = m->timestamp;
    nw->found = 1;
    return 1;
}

/* Decide whether k is listed; fill its bound, last seq and newest timestamp. */
static int conv_eligible(store_rtxn *tx, const conv_sync_req *q, conv_cand *k) {
    if (k->type == CHANNEL_DATA || k->type == CHANNEL_TEMP || k->type == CHANNEL_LIVE) return 0;
    if (ends_with(k->id, CMD_SUFFIX)) return 0;
    k->real = k->type == CHANNEL_PERSON ? msg_person_peer(k->id, q->uid) : k->id;
    if (k->type == CHANNEL_PERSON && mp_str_eq_c(k->real, MP_SYSTEM_UID)) return 0;
    if (excluded(q, k)) return 0;
    const seq_hint *h = find_hint(q, k->real, k->type);
    if (h && h->seq) k->after = h->seq;
    else if (q->version > 0 || q->only_unread) k->after = k->row.readed_to_seq;
    if (k->row.deleted_at_seq > k->after) k->after = k->row.deleted_at_seq;
    if (store_get_last_seq(tx, k->type, k->id, &k->last) != MP_OK || k->last <= k->after) return 0;
    newest nw = {0, 0};
    store_scan_messages(tx, k->type, k->id, k->after + 1, k->last, 1, 1, newest_cb, &nw);
    k->timestamp = nw.timestamp;
    return nw.found;
}

/* ---- answer rows ------------------------------------------------------------------------------ */

/* Messages collected for a row. The newest-message fields are meaningful for a descending
 * scan (conv_json); /conversation/syncMessages also scans ascending and ignores them. */
typedef struct recents_ctx {
    store_rtxn *tx;         /* stream fields are read in the scan's transaction */
    json_t *arr;
    mp_str uid;
    uint64_t readed;
    uint64_t own_seq;       /* newest message of the user above the read pointer */
    int newest_is_own;
    uint64_t newest_seq;
    uint32_t newest_ts;
    mp_str newest_cmn;
} recents_ctx;

static int recent_cb(void *ctx, const msg_fields *m) {
    recents_ctx *rc = ctx;
    int own = mp_str_eq(m->from_uid, rc->uid);
    if (json_array_size(rc->arr) == 0) {
        rc->newest_is_own = own;
        rc->newest_seq = m->seq;
        rc->newest_ts = m->timestamp;
        rc->newest_cmn = m->client_msg_no;
    }
    if (own && !rc->own_seq && m->seq > rc->readed) rc->own_seq = m->seq;
    /* WuKongIM fills the stream fields (with snapshots) in every recents list */
    json_array_append_new(rc->arr, api_stream_message_json(rc->tx, m, 1));
    return 0;
}

/* Append k's row (spec §4.6) to out: its newest `count` messages above k->after as
 * recents, newest first, and the unread state computed from them. A channel without such
 * messages gets an empty row (timestamp 0, version = the row's updated_at), as
 * syncByChannels answers it. Returns MP_OK or a store error. */
static int conv_json(store_rtxn *tx, mp_str uid, size_t count, const conv_cand *k, json_t *out) {
    recents_ctx rc = {tx, json_array(), uid, k->row.readed_to_seq, 0, 0, 0, 0, {"", 0}};
    int err = k->last > k->after
                  ? store_scan_messages(tx, k->type, k->id, k->after + 1, k->last, 1, count, recent_cb, &rc)
                  : MP_OK;
    if (err != MP_OK && !missing(err)) {
        json_decref(rc.arr);
        return err;
    }
    uint64_t last = rc.newest_seq;
    uint64_t readed = k->row.readed_to_seq;
    uint64_t unread = last > readed ? last - readed : 0;
    if (rc.own_seq && last - rc.own_seq < unread) { /* messages up to the user's own are read */
        unread = last - rc.own_seq;
        readed = rc.own_seq;
    }
    if (rc.newest_is_own) {
        unread = 0;
        readed = last;
    }
    uint64_t version = last ? (uint64_t)rc.newest_ts * 1000000000u : k->row.updated_at_ns;
    json_t *o = json_object();
    json_object_set_new(o, "channel_id", ju_string(k->real));
    json_object_set_new(o, "channel_type", json_integer(k->type));
    json_object_set_new(o, "unread", json_integer((json_int_t)unread));
    json_object_set_new(o, "timestamp", json_integer(rc.newest_ts));
    json_object_set_new(o, "last_msg_seq", json_integer((json_int_t)last));
    json_object_set_new(o, "last_client_msg_no", ju_string(rc.newest_cmn));
    json_object_set_new(o, "offset_msg_seq", json_integer(0));
    json_object_set_new(o, "readed_to_msg_seq", json_integer((json_int_t)readed));
    json_object_set_new(o, "version", json_integer((json_int_t)version));
    json_object_set_new(o, "recents", rc.arr);
    json_array_append_new(out, o);
    return MP_OK;
}

/* ---- /conversation/sync ------------------------------------------------------------------------ */

/* Build the answer array; returns MP_OK or a store error. */
static int conv_sync_read(const conv_sync_req *q, json_t *out) {
    store_rtxn *tx;
    int rc = store_rtxn_begin(im_store(), &tx);
    if (rc != MP_OK) return rc;
    conv_list l = {0};
    rc = load_conv_rows(tx, q->uid, &l);
    size_t n = 0;
    for (size_t i = 0; rc == MP_OK && i < l.n; i++)
        if (conv_eligible(tx, q, &l.v[i])) l.v[n++] = l.v[i];
    if (n > 1) qsort(l.v, n, sizeof *l.v, by_timestamp_desc);
    size_t from = 0, to = n;
    if (q->page > 0) {
        int64_t size = q->page_size <= 0 ? CONV_PAGE_DEFAULT : MP_MIN(q->page_size, CONV_PAGE_MAX);
        uint64_t start = (uint64_t)(q->page - 1) * (uint64_t)size;
        from = start >= n ? n : (size_t)start;
        to = MP_MIN(n, from + (size_t)size);
    }
    size_t count = (size_t)MP_MIN(q->msg_count, CONV_RECENTS_MAX);
    for (size_t i = from; rc == MP_OK && i < to; i++) rc = conv_json(tx, q->uid, count, &l.v[i], out);
    free(l.v);
    store_rtxn_end(tx);
    return rc;
}

void api_conversation_sync(api_req *r) {
    json_t *root = api_parse_object(r);
    if (!root) return;
    ju j;
    ju_init(&j, root);
    conv_sync_req q;
    if (!sync_parse(&j, &q)) {
        json_decref(root);
        api_reply_error(r, 400, "%s", j.err);
        return;
    }
    json_t *out = json_array();
    int rc = q.msg_count >= 1 ? conv_sync_read(&q, out) : MP_OK; /* msg_count < 1: [] (spec §4.6) */
    free(q.hints);
    json_decref(root);
    if (rc != MP_OK) {
        json_decref(out);
        api_reply_error(r, 500, "reading conversations failed: %s", mp_strerror(rc));
        return;
    }
    api_reply_json(r, 200, out);
}

/* ---- channel lists: syncByChannels, syncMessages ---------------------------------------------- */

/* One entry of a request's "channels" list. */
typedef struct chan_ref {
    mp_str id;
    uint8_t type;
    uint64_t last_msg_seq; /* syncMessages only */
} chan_ref;

/* "channels": [{"channel_id","channel_type"[,"last_msg_seq"]}, ...] into *out (caller
 * frees; views into the document). Missing or null gives 0 entries. Every entry needs a
 * channel_id and a channel_type other than 0; more than CONV_CHANNELS_MAX entries fail. */
static size_t channels_parse(ju *j, int with_seq, chan_ref **out) {
    *out = NULL;
    json_t *v = j->failed ? NULL : json_object_get(j->obj, "channels");
    if (!v || json_is_null(v)) return 0;
    if (!json_is_array(v)) {
        ju_fail(j, "field \"channels\" must be an array of objects");
        return 0;
    }
    size_t n = json_array_size(v);
    if (n > CONV_CHANNELS_MAX) {
        ju_fail(j, "channels has %zu entries, at most %d are allowed", n, CONV_CHANNELS_MAX);
        return 0;
    }
    chan_ref *a = n ? mp_calloc(n, sizeof *a) : NULL;
    for (size_t i = 0; i < n && !j->failed; i++) {
        json_t *e = json_array_get(v, i);
        if (!json_is_object(e)) {
            ju_fail(j, "channels[%zu] must be an object", i);
            break;
        }
        ju ej;
        ju_init(&ej, e);
        a[i].id = ju_str(&ej, "channel_id");
        a[i].type = (uint8_t)ju_uint(&ej, "channel_type", 255);
        if (with_seq) a[i].last_msg_seq = ju_uint(&ej, "last_msg_seq", UINT64_MAX);
        if (ej.failed) ju_fail(j, "channels[%zu]: %s", i, ej.err);
        else if (ju_blank(a[i].id)) ju_fail(j, "channels[%zu].channel_id is required", i);
        else if (a[i].type == 0) ju_fail(j, "channels[%zu].channel_type is required (not 0)", i);
    }
    if (j->failed) {
        free(a);
        return 0;
    }
    *out = a;
    return n;
}

/* msg_count of syncByChannels and syncMessages: missing or < 1 means 15, as WuKongIM. */
static size_t msg_count_parse(ju *j) {
    int64_t n = ju_int(j, "msg_count", INT64_MIN, INT64_MAX);
    if (n > CONV_RECENTS_MAX) ju_fail(j, "msg_count must be at most %d", CONV_RECENTS_MAX);
    return n < 1 ? CONV_MSG_COUNT_DEFAULT : (size_t)n;
}

static int by_channels_read(mp_str uid, const chan_ref *chs, size_t n, size_t count, json_t *out) {
    store_rtxn *tx = NULL;
    int rc = store_rtxn_begin(im_store(), &tx);
    for (size_t i = 0; rc == MP_OK && i < n; i++) {
        char *buf;
        conv_cand k;
        memset(&k, 0, sizeof k);
        k.type = chs[i].type;
        k.id = api_stored_id(k.type, chs[i].id, uid, &buf);
        k.real = k.type == CHANNEL_PERSON ? msg_person_peer(k.id, uid) : k.id;
        rc = store_get_conv(tx, uid, k.type, k.id, &k.row);
        if (missing(rc)) { /* no row: nothing read, version 0 (WuKongIM's empty conversation) */
            memset(&k.row, 0, sizeof k.row);
            rc = MP_OK;
        }
        if (rc == MP_OK) rc = store_get_last_seq(tx, k.type, k.id, &k.last);
        if (missing(rc)) rc = MP_OK; /* k.last stays 0 */
        if (rc == MP_OK) rc = conv_json(tx, uid, count, &k, out);
        free(buf);
    }
    if (tx) store_rtxn_end(tx);
    return rc;
}

void api_conversation_sync_by_channels(api_req *r) {
    json_t *root = api_parse_object(r);
    if (!root) return;
    ju j;
    ju_init(&j, root);
    mp_str uid = ju_str(&j, "uid");
    chan_ref *chs;
    size_t n = channels_parse(&j, 0, &chs);
    size_t count = msg_count_parse(&j);
    if (!j.failed && ju_blank(uid)) ju_fail(&j, "uid is required");
    if (!j.failed && n == 0) ju_fail(&j, "channels is required (at least one channel)");
    if (j.failed) {
        free(chs);
        json_decref(root);
        api_reply_error(r, 400, "%s", j.err);
        return;
    }
    json_t *out = json_array();
    int rc = by_channels_read(uid, chs, n, count, out);
    free(chs);
    json_decref(root);
    if (rc != MP_OK) {
        json_decref(out);
        api_reply_error(r, 500, "reading conversations failed: %s", mp_strerror(rc));
        return;
    }
    api_reply_json(r, 200, out);
}

typedef struct own_seek {
    mp_str uid;
    uint64_t seq;
} own_seek;

static int own_cb(void *ctx, const msg_fields *m) {
    own_seek *s = ctx;
    if (!mp_str_eq(m->from_uid, s->uid)) return 0;
    s->seq = m->seq;
    return 1;
}

/* The seq of uid's newest message among the channel's newest USER_SEQ_SCAN (0 if none).
 * WuKongIM reads a sender index over the whole channel; Magpie keeps none, so the search
 * is bounded to keep one request's work bounded. */
static int user_last_seq(store_rtxn *tx, const chan_ref *c, mp_str uid, uint64_t last, uint64_t *seq) {
    own_seek s = {uid, 0};
    int rc = store_scan_messages(tx, c->type, c->id, 1, last, 1, USER_SEQ_SCAN, own_cb, &s);
    *seq = s.seq;
    return rc;
}

/* One entry of /conversation/syncMessages: the messages from seq last_msg_seq on (0: from
 * the start), the newest `count` newest first with by_last, else the oldest `count`
 * ascending (WuKongIM's LoadLastMsgsWithEnd / LoadNextRangeMsgs), and user_last_msg_seq. */
static int recent_messages_json(store_rtxn *tx, mp_str uid, const chan_ref *c, size_t count, int by_last,
                                json_t *out) {
    uint64_t last = 0, own = 0;
    recents_ctx rctx = {tx, json_array(), uid, 0, 0, 0, 0, 0, {"", 0}};
    int rc = store_get_last_seq(tx, c->type, c->id, &last);
    if (rc == MP_OK && last > 0)
        rc = store_scan_messages(tx, c->type, c->id, MP_MAX(c->last_msg_seq, 1), last, by_last, count, recent_cb,
                                 &rctx);
    if (rc == MP_OK && last > 0 && !ju_blank(uid)) rc = user_last_seq(tx, c, uid, last, &own);
    if (rc != MP_OK && !missing(rc)) {
        json_decref(rctx.arr);
        return rc;
    }
    json_t *o = json_object();
    json_object_set_new(o, "channel_id", ju_string(c->id));
    json_object_set_new(o, "channel_type", json_integer(c->type));
    json_object_set_new(o, "messages", rctx.arr);
    json_object_set_new(o, "user_last_msg_seq", json_integer((json_int_t)own));
    json_array_append_new(out, o);
    return MP_OK;
}

void api_conversation_sync_messages(api_req *r) {
    json_t *root = api_parse_object(r);
    if (!root) return;
    ju j;
    ju_init(&j, root);
    mp_str uid = ju_str(&j, "uid");
    chan_ref *chs;
    size_t n = channels_parse(&j, 1, &chs);
    size_t count = msg_count_parse(&j);
    int by_last = ju_int(&j, "order_by_last", INT64_MIN, INT64_MAX) == 1;
    if (j.failed) {
        free(chs);
        json_decref(root);
        api_reply_error(r, 400, "%s", j.err);
        return;
    }
    json_t *out = json_array();
    store_rtxn *tx = NULL;
    int rc = n ? store_rtxn_begin(im_store(), &tx) : MP_OK;
    for (size_t i = 0; rc == MP_OK && i < n; i++) rc = recent_messages_json(tx, uid, &chs[i], count, by_last, out);
    if (tx) store_rtxn_end(tx);
    free(chs);
    json_decref(root);
    if (rc != MP_OK) {
        json_decref(out);
        api_reply_error(r, 500, "reading messages failed: %s", mp_strerror(rc));
        return;
    }
    api_reply_json(r, 200, out);
}

/* ---- /conversation/channels ------------------------------------------------------------------ */

void api_conversation_channels(api_req *r) {
    json_t *root = api_parse_object(r);
    if (!root) return;
    ju j;
    ju_init(&j, root);
    mp_str uid = ju_str(&j, "uid");
    if (!j.failed && ju_blank(uid)) ju_fail(&j, "uid is required");
    if (j.failed) {
        json_decref(root);
        api_reply_error(r, 400, "%s", j.err);
        return;
    }
    json_t *out = json_array();
    store_rtxn *tx;
    conv_list l = {0};
    int rc = store_rtxn_begin(im_store(), &tx);
    if (rc == MP_OK) {
        rc = load_conv_rows(tx, uid, &l);
        for (size_t i = 0; rc == MP_OK && i < l.n; i++) { /* the stored id: the fake id for person chats */
            json_t *o = json_object();
            json_object_set_new(o, "channel_id", ju_string(l.v[i].id));
            json_object_set_new(o, "channel_type", json_integer(l.v[i].type));
            json_array_append_new(out, o);
        }
        store_rtxn_end(tx);
    }
    free(l.v);
    json_decref(root);
    if (rc != MP_OK) {
        json_decref(out);
        api_reply_error(r, 500, "reading conversations failed: %s", mp_strerror(rc));
        return;
    }
    api_reply_json(r, 200, out);
}

/* ---- read position -------------------------------------------------------------------------- */

typedef struct conv_target {
    json_t *root;
    ju j;
    mp_str uid, id;
    uint8_t type;
} conv_target;

/* Parse uid, channel_id, channel_type (all required); 0 (answered) on failure. */
static int target_parse(api_req *r, conv_target *t) {
    char err[200];
    t->root = ju_parse(api_req_body(r), 1, err, sizeof err);
    if (!t->root) {
        api_reply_error(r, 400, "%s", err);
        return 0;
    }
    ju_init(&t->j, t->root);
    t->uid = ju_str(&t->j, "uid");
    t->id = ju_str(&t->j, "channel_id");
    t->type = (uint8_t)ju_uint(&t->j, "channel_type", 255);
    if (!t->j.failed && t->uid.len == 0) ju_fail(&t->j, "uid is required");
    if (!t->j.failed && (t->id.len == 0 || t->type == 0)) ju_fail(&t->j, "channel_id and channel_type are required");
    return 1;
}

static int target_reject(api_req *r, conv_target *t) {
    if (!t->j.failed) return 0;
    api_reply_error(r, 400, "%s", t->j.err);
    json_decref(t->root);
    return 1;
}

void api_conversation_set_unread(api_req *r) {
    conv_target t;
    if (!target_parse(r, &t)) return;
    int64_t unread = ju_int(&t.j, "unread", INT64_MIN, INT64_MAX);
    if (target_reject(r, &t)) return;
    /* WuKongIM compares uint64(unread) > last_seq, so a negative count means "one unread" */
    im_conv_set_unread(t.uid, t.id, t.type, unread < 0 ? INT64_MAX : unread, api_im_done_ok, r);
    json_decref(t.root);
}

void api_conversation_clear_unread(api_req *r) {
    conv_target t;
    if (!target_parse(r, &t)) return;
    ju_uint(&t.j, "message_seq", UINT32_MAX); /* accepted and ignored, as in v2.2.5 */
    if (target_reject(r, &t)) return;
    im_conv_set_unread(t.uid, t.id, t.type, -1, api_im_done_ok, r);
    json_decref(t.root);
}

void api_conversation_delete(api_req *r) {
    conv_target t;
    if (!target_parse(r, &t)) return;
    if (target_reject(r, &t)) return;
    im_conv_delete(t.uid, t.id, t.type, api_im_done_ok, r);
    json_decref(t.root);
}
