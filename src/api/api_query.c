/* api_query.c - looking up stored messages (spec §4.5): POST /messages (many, by seq, id
 * or client_msg_no), POST /message and GET /message/byclientmsgno (one), and
 * GET /channel/last_message. All are read-only, each in one read transaction.
 *
 * A message_id names a message anywhere in the store, and WuKongIM returns it whatever
 * channel was asked for. Magpie returns it only when it belongs to the requested channel,
 * so nobody reads another channel's messages by guessing ids. */
#include "../core/msg.h"
#include "api_routes.h"
#include "json_util.h"
#include "message_resp.h"

#define QUERY_LIST_MAX 10000 /* entries per list of /messages (WuKongIM has no cap) */

/* A channel by its stored id (the fake id "a@b" for person channels). */
typedef struct chan_key {
    uint8_t type;
    mp_str id;
} chan_key;

/* ---- lookups: 1 found (m filled, views into tx), 0 not found, < 0 a store error ---------------- */

/* An id too long to be a store key cannot name a stored message either. */
static int found(int rc) { return rc == MP_OK ? 1 : (rc == MP_ENOTFOUND || rc == MP_ETOOBIG) ? 0 : rc; }

static int by_seq(store_rtxn *tx, const chan_key *c, uint64_t seq, msg_fields *m) {
    return seq ? found(store_get_message(tx, c->type, c->id, seq, m)) : 0;
}

static int by_id(store_rtxn *tx, const chan_key *c, int64_t id, msg_fields *m) {
    if (id <= 0) return 0;
    int rc = found(store_get_message_by_id(tx, id, m));
    if (rc == 1 && (m->channel_type != c->type || !mp_str_eq(m->channel_id, c->id))) return 0; /* not this channel's */
    return rc;
}

/* A blank client_msg_no is "not given" (WuKongIM would match any message with it). */
static int by_client_msg_no(store_rtxn *tx, const chan_key *c, mp_str cmn, msg_fields *m) {
    return ju_blank(cmn) ? 0 : found(store_get_message_by_client_msg_no(tx, c->type, c->id, cmn, m));
}

static int newest(store_rtxn *tx, const chan_key *c, msg_fields *m) {
    uint64_t last = 0;
    int rc = found(store_get_last_seq(tx, c->type, c->id, &last));
    return rc == 1 ? by_seq(tx, c, last, m) : rc;
}

/* ---- one message ------------------------------------------------------------------------------ */

typedef struct one_query {
    chan_key ch;
    int64_t message_id;   /* > 0: look up by id */
    mp_str client_msg_no; /* else by this */
    int last;             /* or the channel's newest message */
} one_query;

static int find_one(store_rtxn *tx, const one_query *q, msg_fields *m) {
    if (q->last) return newest(tx, &q->ch, m);
    if (q->message_id > 0) return by_id(tx, &q->ch, q->message_id, m);
    return by_client_msg_no(tx, &q->ch, q->client_msg_no, m);
}

/* Answer the message as MessageResp, or WuKongIM's not-found answer 200 {"status":404}. */
static void reply_one(api_req *r, const one_query *q) {
    json_t *o = NULL;
    store_rtxn *tx;
    int rc = store_rtxn_begin(im_store(), &tx);
    if (rc == MP_OK) {
        msg_fields m;
        rc = find_one(tx, q, &m);
        if (rc == 1) o = message_resp_json(&m); /* copies out of the transaction */
        store_rtxn_end(tx);
    }
    if (rc < 0) {
        api_reply_error(r, 500, "reading the message failed: %s", mp_strerror(rc));
        return;
    }
    if (!o) {
        o = json_object();
        json_object_set_new(o, "status", json_integer(404));
    }
    api_reply_json(r, 200, o);
}

/* A person channel's stored id is derived from login_uid, unless channel_id already is a
 * fake id "a@b" (as /channel/max_message_seq). */
static int needs_login(uint8_t type, mp_str channel, mp_str login) {
    return type == CHANNEL_PERSON && !memchr(channel.p, '@', channel.len) && ju_blank(login);
}

void api_message_search(api_req *r) {
    json_t *root = api_parse_object(r);
    if (!root) return;
    ju j;
    ju_init(&j, root);
    mp_str login = ju_str(&j, "login_uid");
    mp_str channel = ju_str(&j, "channel_id");
    uint8_t type = (uint8_t)ju_uint(&j, "channel_type", 255);
    one_query q = {{type, {"", 0}}, 0, {"", 0}, 0};
    q.message_id = ju_int(&j, "message_id", INT64_MIN, INT64_MAX); /* wins over client_msg_no, as in WuKongIM */
    q.client_msg_no = ju_str(&j, "client_msg_no");
    if (!j.failed && ju_blank(channel)) ju_fail(&j, "channel_id is required");
    if (!j.failed && type == 0) ju_fail(&j, "channel_type is required (not 0)");
    if (!j.failed && needs_login(type, channel, login)) ju_fail(&j, "login_uid is required for person channels");
    if (!j.failed && q.message_id <= 0 && ju_blank(q.client_msg_no))
        ju_fail(&j, "message_id or client_msg_no is required");
    if (j.failed) {
        json_decref(root);
        api_reply_error(r, 400, "%s", j.err);
        return;
    }
    char *buf;
    q.ch.id = api_stored_id(type, channel, login, &buf);
    reply_one(r, &q);
    free(buf);
    json_decref(root);
}

void api_message_by_client_msg_no(api_req *r) {
    one_query q = {{api_req_query_u8(r, "channel_type"), {"", 0}}, 0, {"", 0}, 0};
    api_req_query(r, "channel_id", &q.ch.id); /* a person channel must be given by its fake id */
    api_req_query(r, "client_msg_no", &q.client_msg_no);
    if (ju_blank(q.ch.id)) api_reply_error(r, 400, "channel_id is required");
    else if (q.ch.type == 0) api_reply_error(r, 400, "channel_type is required (not 0)");
    else if (ju_blank(q.client_msg_no)) api_reply_error(r, 400, "client_msg_no is required");
    else reply_one(r, &q);
}

void api_channel_last_message(api_req *r) {
    mp_str channel = {"", 0}, login = {"", 0};
    api_req_query(r, "channel_id", &channel);
    api_req_query(r, "login_uid", &login);
    uint8_t type = api_req_query_u8(r, "channel_type"); /* not a number reads as 0, as in WuKongIM */
    if (channel.len == 0) {
        api_reply_error(r, 400, "channel_id is required");
        return;
    }
    if (needs_login(type, channel, login)) {
        api_reply_error(r, 400, "login_uid is required for person channels");
        return;
    }
    char *buf;
    one_query q = {{type, api_stored_id(type, channel, login, &buf)}, 0, {"", 0}, 1};
    reply_one(r, &q);
    free(buf);
}

/* ---- many messages ------------------------------------------------------------------------------ */

/* An integer list field (Go []uint32, []int64): NULL when absent or null; else every
 * element an integer in [min, max] (null reads as 0) and at most QUERY_LIST_MAX of them. */
static json_t *int_list(ju *j, const char *key, int64_t min, int64_t max) {
    json_t *v = j->failed ? NULL : json_object_get(j->obj, key);
    if (!v || json_is_null(v)) return NULL;
    if (!json_is_array(v)) {
        ju_fail(j, "field \"%s\" must be an array of integers", key);
        return NULL;
    }
    if (json_array_size(v) > QUERY_LIST_MAX) {
        ju_fail(j, "field \"%s\" has %zu entries, at most %d are allowed", key, json_array_size(v), QUERY_LIST_MAX);
        return NULL;
    }
    for (size_t i = 0; i < json_array_size(v); i++) {
        json_t *e = json_array_get(v, i);
        if (json_is_null(e)) continue;
        if (!json_is_integer(e) || json_integer_value(e) < min || json_integer_value(e) > max) {
            ju_fail(j, "field \"%s\": element %zu must be an integer in [%lld, %lld]", key, i, (long long)min,
                    (long long)max);
            return NULL;
        }
    }
    return v;
}

static int64_t int_at(const json_t *list, size_t i) {
    json_t *e = json_array_get(list, i);
    return json_is_integer(e) ? json_integer_value(e) : 0;
}

typedef struct many_query {
    chan_key ch;
    json_t *seqs, *ids; /* validated by int_list; may be NULL */
    mp_str *cmns;
    size_t n_cmns;
} many_query;

/* Append a found message to out; pass a store error on. */
static int add_found(int rc, const msg_fields *m, json_t *out) {
    if (rc == 1) json_array_append_new(out, message_resp_json(m));
    return rc < 0 ? rc : MP_OK;
}

/* The found messages in the order seqs, ids, client_msg_nos; missing ones are skipped. */
static int many_read(const many_query *q, json_t *out) {
    store_rtxn *tx;
    int rc = store_rtxn_begin(im_store(), &tx);
    if (rc != MP_OK) return rc;
    msg_fields m;
    for (size_t i = 0; rc == MP_OK && i < json_array_size(q->seqs); i++)
        rc = add_found(by_seq(tx, &q->ch, (uint64_t)int_at(q->seqs, i), &m), &m, out);
    for (size_t i = 0; rc == MP_OK && i < json_array_size(q->ids); i++)
        rc = add_found(by_id(tx, &q->ch, int_at(q->ids, i), &m), &m, out);
    for (size_t i = 0; rc == MP_OK && i < q->n_cmns; i++)
        rc = add_found(by_client_msg_no(tx, &q->ch, q->cmns[i], &m), &m, out);
    store_rtxn_end(tx);
    return rc;
}

void api_messages_search(api_req *r) {
    json_t *root = api_parse_object(r);
    if (!root) return;
    ju j;
    ju_init(&j, root);
    mp_str login = ju_str(&j, "login_uid");
    mp_str channel = ju_str(&j, "channel_id");
    many_query q = {{(uint8_t)ju_uint(&j, "channel_type", 255), {"", 0}}, NULL, NULL, NULL, 0};
    q.seqs = int_list(&j, "message_seqs", 0, UINT32_MAX);
    q.ids = int_list(&j, "message_ids", INT64_MIN, INT64_MAX);
    q.n_cmns = ju_str_array(&j, "client_msg_nos", &q.cmns);
    if (!j.failed && q.n_cmns > QUERY_LIST_MAX)
        ju_fail(&j, "field \"client_msg_nos\" has %zu entries, at most %d are allowed", q.n_cmns, QUERY_LIST_MAX);
    if (!j.failed && ju_blank(channel)) ju_fail(&j, "channel_id is required");
    if (!j.failed && needs_login(q.ch.type, channel, login)) ju_fail(&j, "login_uid is required for person channels");
    if (j.failed) {
        free(q.cmns);
        json_decref(root);
        api_reply_error(r, 400, "%s", j.err);
        return;
    }
    char *buf;
    q.ch.id = api_stored_id(q.ch.type, channel, login, &buf);
    json_t *msgs = json_array();
    int rc = many_read(&q, msgs);
    free(buf);
    free(q.cmns);
    json_decref(root);
    if (rc != MP_OK) {
        json_decref(msgs);
        api_reply_error(r, 500, "reading messages failed: %s", mp_strerror(rc));
        return;
    }
    /* WuKongIM answers with its /channel/messagesync shape, the seq fields always 0 */
    json_t *o = json_object();
    json_object_set_new(o, "start_message_seq", json_integer(0));
    json_object_set_new(o, "end_message_seq", json_integer(0));
    json_object_set_new(o, "more", json_integer(0));
    json_object_set_new(o, "messages", msgs);
    api_reply_json(r, 200, o);
}
