/* api_stream.c - streaming messages over HTTP (spec §5.14): POST /message/event, POST
 * /message/eventsync, the stream fields of MessageResp in /channel/messagesync, and the
 * note /message/send keeps of stream anchors. The state itself is src/stream/stream.c.
 *
 * An event names its anchor by (channel, client_msg_no). The anchor is looked up in the
 * store, so it is found after a restart too; it must have been stored with the stream bit
 * (/message/send with is_stream 1), else the event is refused with 400. Person and agent
 * channels are stored under an id that includes the sender: when an event leaves from_uid
 * out, the sender of a stream message sent through this server since it started is used
 * (WuKongIM's in-memory cache does the same), else the system uid. */
#include <ctype.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <strings.h>

#include "../channel/channel.h"
#include "../common/log.h"
#include "../common/map.h"
#include "../proto/crypto.h"
#include "../proto/packet.h"
#include "../stream/stream.h"
#include "api_routes.h"
#include "json_util.h"
#include "message_resp.h"

#define EVENT_ID_MAX 200
#define EVENT_TYPE_MAX 64
#define EVENT_KEY_MAX 100
#define EVENTSYNC_DEFAULT_LIMIT 200
#define EVENTSYNC_MAX_LIMIT 2000
#define ANCHOR_NOTES_MAX 10000 /* remembered senders of stream messages (oldest forgotten first) */
#define SETTING_STREAM 0x02

/* ---- senders of recent stream messages ------------------------------------------------------ */

/* (channel_type, channel_id as sent, client_msg_no) -> sender uid; a ring keeps the order
 * of insertion so the oldest is forgotten first. */
static struct {
    mp_map *map;
    mp_buf *ring;
    size_t next, n;
} g_notes;

static void note_key(mp_buf *k, uint8_t type, mp_str channel, mp_str cmn) {
    mp_buf_append_u8(k, type);
    mp_buf_append(k, channel.p, channel.len);
    mp_buf_append_u8(k, 0);
    mp_buf_append(k, cmn.p, cmn.len);
}

static void note_sender(uint8_t type, mp_str channel, mp_str cmn, mp_str from) {
    if (!g_notes.map) {
        g_notes.map = map_new();
        g_notes.ring = mp_calloc(ANCHOR_NOTES_MAX, sizeof *g_notes.ring);
    }
    mp_buf k = MP_BUF_INIT;
    note_key(&k, type, channel, cmn);
    char *old = map_put(g_notes.map, k.data, k.len, mp_strndup(from.p, from.len));
    if (old) { /* already noted: its place in the ring stays */
        free(old);
        mp_buf_free(&k);
        return;
    }
    mp_buf *slot = &g_notes.ring[g_notes.next];
    if (g_notes.n == ANCHOR_NOTES_MAX) free(map_del(g_notes.map, slot->data, slot->len));
    else g_notes.n++;
    mp_buf_free(slot);
    *slot = k;
    g_notes.next = (g_notes.next + 1) % ANCHOR_NOTES_MAX;
}

static const char *noted_sender(uint8_t type, mp_str channel, mp_str cmn) {
    if (!g_notes.map) return NULL;
    mp_buf k = MP_BUF_INIT;
    note_key(&k, type, channel, cmn);
    const char *from = map_get(g_notes.map, k.data, k.len);
    mp_buf_free(&k);
    return from;
}

typedef struct send_note {
    im_done_fn done;
    void *ctx;
    uint8_t type;
    mp_str channel, from; /* owned */
} send_note;

static void noted_send_done(void *ctx, const im_result *res) {
    send_note *n = ctx;
    if (res->status == MP_OK && res->reason == REASON_SUCCESS) note_sender(n->type, n->channel, res->client_msg_no, n->from);
    n->done(n->ctx, res);
    free((char *)n->channel.p);
    free((char *)n->from.p);
    free(n);
}

void api_stream_send(const im_send_req *q, im_done_fn done, void *ctx) {
    int keyed_by_sender = q->channel_type == CHANNEL_PERSON || q->channel_type == CHANNEL_AGENT;
    if (!(q->setting & SETTING_STREAM) || q->n_subscribers || !keyed_by_sender) {
        im_send(q, done, ctx);
        return;
    }
    send_note *n = mp_malloc(sizeof *n);
    mp_str from = q->from_uid.len ? q->from_uid : MP_STR(MP_SYSTEM_UID);
    *n = (send_note){done, ctx, q->channel_type, {mp_strndup(q->channel_id.p, q->channel_id.len), q->channel_id.len},
                     {mp_strndup(from.p, from.len), from.len}};
    im_send(q, noted_send_done, n);
}

void api_stream_stop(void) {
    stream_stop();
    if (g_notes.map) {
        map_free(g_notes.map, free);
        for (size_t i = 0; i < ANCHOR_NOTES_MAX; i++) mp_buf_free(&g_notes.ring[i]);
        free(g_notes.ring);
    }
    memset(&g_notes, 0, sizeof g_notes);
}

/* ---- finding the anchor ----------------------------------------------------------------------- */

typedef struct anchor {
    stream_anchor a;
    uint8_t setting;
    char stored[2 * IM_MAX_ID_LEN + 2]; /* ids are validated: a uid, '@', a uid at most */
    char *from;      /* owned copy of the stored sender */
    char *client_msg_no;
} anchor;

/* The stored channel id of (type, channel) for an event or eventsync, into out. */
static mp_str stored_channel(uint8_t type, mp_str channel, mp_str from, mp_str cmn, char *out) {
    int keyed_by_sender = type == CHANNEL_PERSON || type == CHANNEL_AGENT;
    if (!keyed_by_sender || (type == CHANNEL_PERSON && memchr(channel.p, '@', channel.len))) return channel;
    mp_str sender = from;
    if (ju_blank(from)) {
        const char *noted = noted_sender(type, channel, cmn);
        sender = noted ? mp_str_c(noted) : MP_STR(MP_SYSTEM_UID);
    }
    if (type == CHANNEL_AGENT) return (mp_str){out, chan_agent_id(sender, channel, out)};
    return (mp_str){out, msg_person_fake_id(sender, channel, out)};
}

static void anchor_free(anchor *an) {
    free(an->from);
    free(an->client_msg_no);
}

/* The stored message (channel, client_msg_no) inside tx: MP_OK, MP_ENOTFOUND or a store
 * error. */
static int find_anchor(store_rtxn *tx, uint8_t type, mp_str channel, mp_str from, mp_str cmn, anchor *an) {
    memset(an, 0, sizeof *an);
    mp_str id = stored_channel(type, channel, from, cmn, an->stored);
    if (id.p != an->stored) { /* keep a copy: channel points into the request */
        memcpy(an->stored, id.p, id.len);
        id.p = an->stored;
    }
    msg_fields m;
    int rc = store_get_message_by_client_msg_no(tx, type, id, cmn, &m);
    if (rc != MP_OK) return rc;
    an->setting = m.setting;
    an->from = mp_strndup(m.from_uid.p, m.from_uid.len);
    an->client_msg_no = mp_strndup(m.client_msg_no.p, m.client_msg_no.len);
    an->a = (stream_anchor){m.message_id, type, id, {an->from, m.from_uid.len}, {an->client_msg_no, m.client_msg_no.len}};
    return MP_OK;
}

/* ---- validation -------------------------------------------------------------------------------- */

/* s without leading and trailing white space. */
static mp_str trimmed(mp_str s) {
    while (s.len && isspace((unsigned char)s.p[0])) s.p++, s.len--;
    while (s.len && isspace((unsigned char)s.p[s.len - 1])) s.len--;
    return s;
}

static int has_control(mp_str s) {
    for (uint32_t i = 0; i < s.len; i++)
        if ((unsigned char)s.p[i] < 0x20 || s.p[i] == 0x7f) return 1;
    return 0;
}

/* A required name-like field: non-blank, at most max bytes, no control characters. */
static void check_name(ju *j, const char *field, mp_str v, size_t max) {
    if (j->failed) return;
    if (ju_blank(v)) ju_fail(j, "%s is required", field);
    else if (v.len > max) ju_fail(j, "%s is longer than %zu bytes", field, max);
    else if (has_control(v)) ju_fail(j, "%s must not contain control characters", field);
}

static void check_channel(ju *j, uint8_t type, mp_str channel, mp_str from, mp_str cmn) {
    if (j->failed) return;
    int fake = type == CHANNEL_PERSON && memchr(channel.p, '@', channel.len);
    if (type < CHANNEL_PERSON || type > CHANNEL_AGENT_GROUP) ju_fail(j, "unknown channel_type %u", type);
    else if (!fake && !im_valid_id(channel)) ju_fail(j, "channel_id must not contain '@', '#' or '&' (nor be too long)");
    else if (fake && (channel.len > 2 * IM_MAX_ID_LEN + 1 || has_control(channel))) ju_fail(j, "channel_id is not valid");
    else if (!ju_blank(from) && !im_valid_id(from)) ju_fail(j, "from_uid must not contain '@', '#' or '&' (nor be too long)");
    else if (cmn.len > IM_MAX_CLIENT_MSG_NO_LEN) ju_fail(j, "client_msg_no is longer than %d bytes", IM_MAX_CLIENT_MSG_NO_LEN);
}

/* headers: a map of strings; accepted and not used (as in WuKongIM). */
static void check_headers(ju *j) {
    json_t *h = ju_object(j, "headers");
    const char *k;
    json_t *v;
    json_object_foreach(h, k, v) {
        if (!json_is_string(v) && !json_is_null(v)) {
            ju_fail(j, "headers.%s must be a string", k);
            return;
        }
    }
}

/* ---- POST /message/event ------------------------------------------------------------------------ */

static void event_done(void *ctx, const stream_result *res) {
    api_req *r = ctx;
    if (res->http_status != 200) {
        api_reply_error(r, res->http_status, "%s", res->error);
        return;
    }
    json_t *d = json_object();
    json_object_set_new(d, "client_msg_no", ju_string(res->client_msg_no));
    json_object_set_new(d, "event_key", ju_string(res->event_key));
    json_object_set_new(d, "event_id", ju_string(res->event_id));
    json_object_set_new(d, "msg_event_seq", json_integer((json_int_t)res->msg_event_seq));
    json_object_set_new(d, "stream_status", json_string(res->stream_status));
    json_object_set_new(d, "channel_id", ju_string(res->channel_id));
    json_object_set_new(d, "channel_type", json_integer(res->channel_type));
    json_object_set_new(d, "from_uid", ju_string(res->from_uid));
    json_t *o = json_object();
    json_object_set_new(o, "status", json_integer(200));
    json_object_set_new(o, "data", d);
    api_reply_json(r, 200, o);
}

void api_message_event(api_req *r) {
    json_t *root = api_parse_object(r);
    if (!root) return;
    ju j;
    ju_init(&j, root);
    mp_str channel = ju_str(&j, "channel_id");
    uint8_t type = (uint8_t)ju_uint(&j, "channel_type", 255);
    mp_str from = ju_str(&j, "from_uid");
    ju_int(&j, "message_id", INT64_MIN, INT64_MAX); /* the anchor's own id is used */
    mp_str cmn = ju_str(&j, "client_msg_no");
    mp_str event_id = trimmed(ju_str(&j, "event_id"));
    mp_str event_type = trimmed(ju_str(&j, "event_type"));
    mp_str key = trimmed(ju_str(&j, "event_key"));
    mp_str vis = ju_str(&j, "visibility");
    int64_t at = ju_int(&j, "occurred_at", 0, INT64_MAX);
    check_headers(&j);
    json_t *payload = json_object_get(root, "payload");

    check_name(&j, "channel_id", channel, 2 * IM_MAX_ID_LEN + 1);
    check_name(&j, "client_msg_no", cmn, IM_MAX_CLIENT_MSG_NO_LEN);
    check_name(&j, "event_id", event_id, EVENT_ID_MAX);
    check_name(&j, "event_type", event_type, EVENT_TYPE_MAX);
    check_channel(&j, type, channel, from, cmn);
    char type_lc[EVENT_TYPE_MAX + 1] = "";
    if (!j.failed) {
        for (uint32_t i = 0; i < event_type.len; i++) type_lc[i] = (char)tolower((unsigned char)event_type.p[i]);
        event_type = (mp_str){type_lc, event_type.len};
        if (mp_str_eq_c(event_type, "stream.finish")) key = MP_STR(STREAM_KEY_FINISH);
        else if (key.len == 0) key = MP_STR(STREAM_KEY_MAIN);
        else if (mp_str_eq_c(key, STREAM_KEY_FINISH)) ju_fail(&j, "event_key " STREAM_KEY_FINISH " is reserved for stream.finish");
        else check_name(&j, "event_key", key, EVENT_KEY_MAX);
    }
    if (!j.failed && vis.len && !mp_str_eq_c(vis, "public") && !mp_str_eq_c(vis, "private") &&
        !mp_str_eq_c(vis, "restricted"))
        ju_fail(&j, "visibility must be public, private or restricted");
    if (!j.failed && payload && json_dumpb(payload, NULL, 0, JSON_COMPACT | JSON_ENCODE_ANY) > STREAM_MAX_PAYLOAD)
        ju_fail(&j, "payload is larger than %d bytes (as compact JSON)", STREAM_MAX_PAYLOAD);
    if (j.failed) {
        api_reply_error(r, 400, "%s", j.err);
        json_decref(root);
        return;
    }

    anchor an;
    store_rtxn *tx;
    int rc = store_rtxn_begin(im_store(), &tx);
    if (rc == MP_OK) {
        rc = find_anchor(tx, type, channel, from, cmn, &an);
        store_rtxn_end(tx);
    }
    if (rc == MP_ENOTFOUND) {
        api_reply_error(r, 400, "no message with client_msg_no \"%.*s\" in this channel%s", (int)cmn.len, cmn.p,
                        type == CHANNEL_PERSON || type == CHANNEL_AGENT ? " (is from_uid its sender?)" : "");
    } else if (rc != MP_OK) {
        api_reply_error(r, 500, "reading the message failed: %s", mp_strerror(rc));
    } else if (!(an.setting & SETTING_STREAM)) {
        api_reply_error(r, 400, "message \"%.*s\" is not a stream message (send it with is_stream 1)", (int)cmn.len,
                        cmn.p);
    } else {
        stream_event e = {event_id, event_type, key, vis, at ? at : (int64_t)mp_now_ms(), payload, channel,
                          ju_blank(from) ? an.a.from_uid : from};
        stream_append(&an.a, &e, event_done, r);
    }
    if (rc == MP_OK) anchor_free(&an);
    json_decref(root);
}

/* ---- POST /message/eventsync ---------------------------------------------------------------------- */

/* A key's state as an event of /message/eventsync (WuKongIM's projected event). Keys in
 * Go's order (a map there). */
static json_t *projected_event(const stream_key *k) {
    json_t *payload = stream_key_snapshot(k);
    if (!payload) {
        payload = json_object();
        json_object_set_new(payload, "end_reason", json_integer(k->end_reason));
        if (k->error) json_object_set_new(payload, "error", json_string(k->error));
        json_object_set_new(payload, "status", json_string(stream_status_name(k->status)));
    }
    json_t *o = json_object();
    json_object_set_new(o, "event_id", json_string(k->id ? k->id : ""));
    json_object_set_new(o, "event_key", json_string(k->name));
    json_object_set_new(o, "event_type", json_string(k->type ? k->type : "stream.snapshot"));
    json_object_set_new(o, "msg_event_seq", json_integer((json_int_t)k->seq));
    json_object_set_new(o, "occurred_at", json_integer(k->at));
    json_object_set_new(o, "payload", payload);
    json_object_set_new(o, "visibility", json_string(k->vis ? k->vis : ""));
    return o;
}

static int by_seq(const void *a, const void *b) {
    const stream_key *x = *(const stream_key *const *)a, *y = *(const stream_key *const *)b;
    if (x->seq != y->seq) return x->seq < y->seq ? -1 : 1;
    return strcmp(x->name, y->name);
}

static int is_private(const stream_key *k) {
    return k->vis && (strcmp(k->vis, "private") == 0 || strcmp(k->vis, "restricted") == 0);
}

void api_message_eventsync(api_req *r) {
    json_t *root = api_parse_object(r);
    if (!root) return;
    ju j;
    ju_init(&j, root);
    mp_str channel = ju_str(&j, "channel_id");
    uint8_t type = (uint8_t)ju_uint(&j, "channel_type", 255);
    mp_str from = ju_str(&j, "from_uid");
    mp_str cmn = ju_str(&j, "client_msg_no");
    mp_str key_raw = ju_str(&j, "event_key");
    uint64_t from_seq = ju_uint(&j, "from_msg_event_seq", UINT64_MAX);
    int64_t limit = ju_int(&j, "limit", INT64_MIN, INT64_MAX);
    uint8_t include_private = (uint8_t)ju_uint(&j, "include_private", 255);
    check_name(&j, "channel_id", channel, 2 * IM_MAX_ID_LEN + 1);
    check_name(&j, "client_msg_no", cmn, IM_MAX_CLIENT_MSG_NO_LEN);
    if (!j.failed && limit < 0) ju_fail(&j, "limit must not be negative");
    check_channel(&j, type, channel, from, cmn);
    if (j.failed) {
        api_reply_error(r, 400, "%s", j.err);
        json_decref(root);
        return;
    }
    size_t lim = limit == 0 ? EVENTSYNC_DEFAULT_LIMIT : (size_t)MP_MIN(limit, EVENTSYNC_MAX_LIMIT);
    mp_str key = trimmed(key_raw);

    stream_states st = {0};
    anchor an;
    store_rtxn *tx;
    int rc = store_rtxn_begin(im_store(), &tx);
    if (rc == MP_OK) {
        rc = find_anchor(tx, type, channel, from, cmn, &an);
        if (rc == MP_OK) {
            if (an.setting & SETTING_STREAM) rc = stream_states_load(tx, an.a.message_id, &st);
            anchor_free(&an);
        }
        store_rtxn_end(tx);
    }
    if (rc != MP_OK && rc != MP_ENOTFOUND) { /* an unknown message has no events */
        stream_states_free(&st);
        json_decref(root);
        api_reply_error(r, 500, "reading the events failed: %s", mp_strerror(rc));
        return;
    }

    const stream_key **pick = st.n ? mp_malloc(st.n * sizeof *pick) : NULL;
    size_t n = 0;
    for (size_t i = 0; i < st.n; i++) {
        const stream_key *k = &st.keys[i];
        if (key.len && !mp_str_eq_c(key, k->name)) continue;
        if (k->seq <= from_seq) continue;
        if (include_private != 1 && is_private(k)) continue;
        pick[n++] = k;
    }
    if (n > 1) qsort(pick, n, sizeof *pick, by_seq);
    int more = n > lim;
    if (more) n = lim;
    json_t *events = json_array();
    for (size_t i = 0; i < n; i++) json_array_append_new(events, projected_event(pick[i]));

    json_t *d = json_object();
    json_object_set_new(d, "client_msg_no", ju_string(cmn));
    json_object_set_new(d, "events", events);
    json_object_set_new(d, "filtered_by_event_key", ju_string(key_raw));
    json_object_set_new(d, "from_msg_event_seq", json_integer((json_int_t)from_seq));
    json_object_set_new(d, "more", json_integer(more));
    json_object_set_new(d, "next_msg_event_seq", json_integer((json_int_t)(n ? pick[n - 1]->seq : from_seq)));
    json_t *o = json_object();
    json_object_set_new(o, "status", json_integer(200));
    json_object_set_new(o, "data", d);
    free(pick);
    stream_states_free(&st);
    json_decref(root);
    api_reply_json(r, 200, o);
}

/* ---- MessageResp of a stream message ----------------------------------------------------------- */

static json_t *event_meta(const stream_states *st, int full) {
    json_t *events = json_array();
    uint64_t last = 0;
    int open = 0;
    for (size_t i = 0; i < st->n; i++) {
        const stream_key *k = &st->keys[i];
        if (strcmp(k->name, STREAM_KEY_FINISH) == 0) continue;
        json_t *e = json_object();
        json_object_set_new(e, "event_key", json_string(k->name));
        json_object_set_new(e, "status", json_string(stream_status_name(k->status)));
        if (k->seq) json_object_set_new(e, "last_msg_event_seq", json_integer((json_int_t)k->seq));
        json_t *snap = full ? stream_key_snapshot(k) : NULL;
        if (snap) json_object_set_new(e, "snapshot", snap);
        if (k->end_reason) json_object_set_new(e, "end_reason", json_integer(k->end_reason));
        if (k->error) json_object_set_new(e, "error", json_string(k->error));
        json_array_append_new(events, e);
        if (k->seq > last) last = k->seq;
        if (!stream_key_terminal(k)) open++;
    }
    json_t *m = json_object();
    json_object_set_new(m, "has_events", json_true());
    json_object_set_new(m, "completed", json_boolean(st->completed));
    if (last) {
        json_object_set_new(m, "event_version", json_integer((json_int_t)last));
        json_object_set_new(m, "last_msg_event_seq", json_integer((json_int_t)last));
    }
    if (json_array_size(events)) json_object_set_new(m, "event_count", json_integer((json_int_t)json_array_size(events)));
    if (open) json_object_set_new(m, "open_event_count", json_integer(open));
    if (json_array_size(events)) json_object_set_new(m, "events", events);
    else json_decref(events);
    return m;
}

int api_stream_full_mode(mp_str mode) {
    mode = trimmed(mode);
    return mode.len == 0 || (mode.len == 4 && strncasecmp(mode.p, "full", 4) == 0);
}

json_t *api_stream_message_json(store_rtxn *tx, const msg_fields *m, int full) {
    if (!(m->setting & SETTING_STREAM) || m->client_msg_no.len == 0) return message_resp_json(m);
    stream_states st;
    int rc = stream_states_load(tx, m->message_id, &st);
    if (rc != MP_OK || st.n == 0) {
        if (rc != MP_OK) LOG_WARN("api", "message %" PRId64 ": reading stream state failed: %s", m->message_id, mp_strerror(rc));
        stream_states_free(&st);
        return message_resp_json(m);
    }
    /* in WuKongIM's field order: end, end_reason, error, stream_data, event_meta, hint */
    json_t *x = json_object();
    const stream_key *main_key = NULL;
    for (size_t i = 0; i < st.n && !main_key; i++)
        if (strcmp(st.keys[i].name, STREAM_KEY_MAIN) == 0) main_key = &st.keys[i];
    if (main_key) {
        if (stream_key_terminal(main_key)) json_object_set_new(x, "end", json_integer(1));
        if (main_key->end_reason) json_object_set_new(x, "end_reason", json_integer(main_key->end_reason));
        if (main_key->error) json_object_set_new(x, "error", json_string(main_key->error));
        json_t *snap = stream_key_snapshot(main_key);
        mp_buf bytes = MP_BUF_INIT, b64 = MP_BUF_INIT;
        stream_snapshot_bytes(snap, &bytes);
        if (bytes.len) {
            crypto_b64_encode(bytes.data, bytes.len, &b64);
            json_object_set_new(x, "stream_data", json_stringn((const char *)b64.data, b64.len));
        }
        json_decref(snap);
        mp_buf_free(&bytes);
        mp_buf_free(&b64);
    }
    json_object_set_new(x, "event_meta", event_meta(&st, full));
    json_t *hint = json_object();
    json_object_set_new(hint, "client_msg_no", ju_string(m->client_msg_no));
    json_object_set_new(hint, "from_msg_event_seq", json_integer(0));
    json_object_set_new(x, "event_sync_hint", hint);
    stream_states_free(&st);
    return message_resp_json_ext(m, x);
}
