/* api_message.c - POST /message/send, POST /channel/messagesync and
 * GET /channel/max_message_seq (spec §4.5, paging §5.10).
 *
 * Unlike WuKongIM, /message/send answers only once the message has been sequenced and
 * stored, so a refusal (ban, disband, ...) comes back as a 400 with its reason code, and
 * a success carries message_seq. */
#include <inttypes.h>
#include <stdio.h>

#include "../common/buf.h"
#include "../common/map.h"
#include "../proto/crypto.h"
#include "../proto/packet.h"
#include "api_routes.h"
#include "json_util.h"
#include "message_resp.h"

#define SYNC_LIMIT_MAX 10000

/* ---- send ---------------------------------------------------------------------------------- */

static void send_done(void *ctx, const im_result *res) {
    api_req *r = ctx;
    if (res->status == MP_OK && res->reason == REASON_SUCCESS) {
        char idstr[24];
        snprintf(idstr, sizeof idstr, "%" PRId64, res->message_id);
        json_t *data = json_object();
        json_object_set_new(data, "message_id", json_integer(res->message_id));
        json_object_set_new(data, "message_idstr", json_string(idstr));
        json_object_set_new(data, "message_seq", json_integer((json_int_t)res->message_seq));
        json_object_set_new(data, "client_msg_no", ju_string(res->client_msg_no));
        json_t *o = json_object();
        json_object_set_new(o, "status", json_integer(200));
        json_object_set_new(o, "data", data);
        api_reply_json(r, 200, o);
        return;
    }
    uint8_t reason = res->reason != REASON_SUCCESS && res->reason != REASON_UNKNOWN ? res->reason : REASON_SYSTEM_ERROR;
    /* a refusal is best explained by its reason; a failure by the core's error text */
    const char *text = reason == REASON_SYSTEM_ERROR && res->error ? res->error : api_reason_text(reason);
    json_t *o = json_object();
    json_object_set_new(o, "msg", ju_string(mp_str_c(text)));
    json_object_set_new(o, "status", json_integer(400));
    json_object_set_new(o, "reason_code", json_integer(reason));
    api_reply_json(r, 400, o);
}

#define SEND_MAX_SUBSCRIBERS 10000

/* The subscribers of a subscribers send: every entry must be a valid uid; repeats are
 * dropped in place (each uid gets one copy). Returns the new count, 0 after ju_fail. */
static size_t check_subscribers(ju *j, mp_str *subs, size_t n) {
    if (n > SEND_MAX_SUBSCRIBERS) {
        ju_fail(j, "subscribers has %zu entries (at most %d)", n, SEND_MAX_SUBSCRIBERS);
        return 0;
    }
    mp_map *seen = map_new();
    size_t kept = 0;
    for (size_t i = 0; i < n; i++) {
        if (!im_valid_id(subs[i])) {
            ju_fail(j, "subscribers[%zu] is not a valid uid", i);
            kept = 0;
            break;
        }
        if (map_put(seen, subs[i].p, subs[i].len, subs)) continue; /* already listed */
        subs[kept++] = subs[i];
    }
    map_free(seen, NULL);
    return kept;
}

/* Validate a parsed send body into q (payload decoded into *payload; q->subscribers
 * points into *subs, which the caller frees). */
static void send_parse(ju *j, im_send_req *q, mp_buf *payload, mp_str **subs_out) {
    q->flags = ju_header_flags(j);
    q->client_msg_no = ju_str(j, "client_msg_no");
    int64_t is_stream = ju_int(j, "is_stream", INT64_MIN, INT64_MAX);
    q->from_uid = ju_str(j, "from_uid");
    q->channel_id = ju_str(j, "channel_id");
    q->channel_type = (uint8_t)ju_uint(j, "channel_type", 255);
    q->expire = (uint32_t)ju_uint(j, "expire", UINT32_MAX);
    mp_str *subs = NULL;
    size_t n_subs = ju_str_array(j, "subscribers", &subs);
    *subs_out = subs;
    mp_str b64 = ju_str(j, "payload");
    if (j->failed) return;
    if (crypto_b64_decode(b64.p, b64.len, payload) != MP_OK) {
        ju_fail(j, "payload must be standard base64 (with padding)");
        return;
    }
    q->setting = is_stream == 1 ? PROTO_SETTING_STREAM : 0;
    if (ju_blank(q->from_uid)) q->from_uid = (mp_str){"", 0}; /* the system uid */
    if (ju_blank(q->client_msg_no)) q->client_msg_no = (mp_str){"", 0};
    int has_channel = !ju_blank(q->channel_id);
    q->payload = (mp_str){(const char *)payload->data, (uint32_t)payload->len};
    if (payload->len == 0) ju_fail(j, "payload is required");
    else if (!has_channel && n_subs == 0) ju_fail(j, "channel_id is required (or subscribers)");
    else if (n_subs > 0 && !(q->flags & PROTO_FLAG_SYNCONCE)) ju_fail(j, "subscribers requires header.sync_once=1");
    else if (n_subs > 0 && has_channel) ju_fail(j, "channel_id and subscribers cannot both be given");
    else if (n_subs == 0 && !im_valid_id(q->channel_id))
        ju_fail(j, "channel_id must not contain '@', '#' or '&' (nor be too long)");
    else if (n_subs == 0 && (q->channel_type < CHANNEL_PERSON || q->channel_type > CHANNEL_AGENT_GROUP))
        ju_fail(j, "unknown channel_type %u", q->channel_type);
    else if (q->from_uid.len && !im_valid_id(q->from_uid))
        ju_fail(j, "from_uid must not contain '@', '#' or '&' (nor be too long)");
    else if (q->client_msg_no.len > IM_MAX_CLIENT_MSG_NO_LEN)
        ju_fail(j, "client_msg_no is longer than %d bytes", IM_MAX_CLIENT_MSG_NO_LEN);
    else if (n_subs > 0) {
        q->subscribers = subs;
        q->n_subscribers = check_subscribers(j, subs, n_subs);
    }
}

void api_message_send(api_req *r) {
    json_t *root = api_parse_object(r);
    if (!root) return;
    ju j;
    ju_init(&j, root);
    im_send_req q = {0};
    mp_buf payload = MP_BUF_INIT;
    mp_str *subs = NULL;
    send_parse(&j, &q, &payload, &subs);
    if (j.failed) api_reply_error(r, 400, "%s", j.err);
    else if (q.setting & PROTO_SETTING_STREAM) api_stream_send(&q, send_done, r); /* remembers the sender */
    else im_send(&q, send_done, r);
    free(subs);
    mp_buf_free(&payload);
    json_decref(root);
}

/* ---- reading history ------------------------------------------------------------------------- */

/* Also used by the query and conversation endpoints (api_routes.h). */
mp_str api_stored_id(uint8_t type, mp_str channel_id, mp_str viewer, char **buf) {
    *buf = mp_malloc((size_t)channel_id.len + viewer.len + 2);
    return im_stored_channel_id(type, channel_id, viewer, *buf);
}

typedef struct sync_page {
    json_t *msgs;
    uint64_t first_seq, last_seq;
    size_t count;
    store_rtxn *tx;  /* the scan's read transaction (stream fields are read in it) */
    int event_full;  /* event_summary_mode "full" */
} sync_page;

static int sync_collect(void *ctx, const msg_fields *m) {
    sync_page *p = ctx;
    if (p->count == 0) p->first_seq = m->seq;
    p->last_seq = m->seq;
    p->count++;
    json_array_append_new(p->msgs, api_stream_message_json(p->tx, m, p->event_full));
    return 0;
}

/* The seq window [*lo, *hi] to return (spec §5.10, WuKongIM's LoadPrevRangeMsgs /
 * LoadNextRangeMsgs); 0 when empty. */
static int sync_window(uint64_t s, uint64_t e, int64_t mode, uint64_t limit, uint64_t last, uint64_t *lo,
                       uint64_t *hi) {
    if (s == 0 && e == 0) {
        *lo = last >= limit ? last - limit + 1 : 1;
        *hi = last;
    } else if (mode == 1) {
        *lo = s;
        *hi = e == 0 ? last : MP_MIN(e - 1, last);
    } else if (e <= s) {
        if (e == 0) *lo = s < limit ? 1 : s - limit + 1;
        else *lo = s - e > limit ? s - limit + 1 : e + 1;
        *hi = MP_MIN(s, last);
    } else {
        return 0;
    }
    if (*lo == 0) *lo = 1;
    return *lo <= *hi;
}

static json_t *sync_answer(uint64_t s, uint64_t e, int more, json_t *msgs) {
    json_t *o = json_object();
    json_object_set_new(o, "start_message_seq", json_integer((json_int_t)s));
    json_object_set_new(o, "end_message_seq", json_integer((json_int_t)e));
    json_object_set_new(o, "more", json_integer(more));
    json_object_set_new(o, "messages", msgs);
    return o;
}

/* Read the page; returns MP_OK or a store error. */
static int sync_read(uint8_t type, mp_str id, uint64_t s, uint64_t e, int64_t mode, uint64_t limit, sync_page *p,
                     int *channel_empty) {
    store_rtxn *tx;
    int rc = store_rtxn_begin(im_store(), &tx);
    if (rc != MP_OK) return rc;
    uint64_t last = 0, lo, hi;
    rc = store_get_last_seq(tx, type, id, &last);
    *channel_empty = rc == MP_OK && last == 0;
    p->tx = tx;
    if (rc == MP_OK && last > 0 && limit > 0 && sync_window(s, e, mode, limit, last, &lo, &hi))
        rc = store_scan_messages(tx, type, id, lo, hi, 0, (size_t)limit, sync_collect, p);
    store_rtxn_end(tx);
    return rc == MP_ENOTFOUND ? MP_OK : rc;
}

void api_channel_messagesync(api_req *r) {
    json_t *root = api_parse_object(r);
    if (!root) return;
    ju j;
    ju_init(&j, root);
    mp_str login = ju_str(&j, "login_uid");
    mp_str channel = ju_str(&j, "channel_id");
    uint8_t type = (uint8_t)ju_uint(&j, "channel_type", 255);
    uint64_t s = ju_uint(&j, "start_message_seq", UINT64_MAX);
    uint64_t e = ju_uint(&j, "end_message_seq", UINT64_MAX);
    int64_t limit = ju_int(&j, "limit", INT64_MIN, INT64_MAX);
    int64_t mode = ju_int(&j, "pull_mode", INT64_MIN, INT64_MAX);
    mp_str summary = ju_str(&j, "event_summary_mode"); /* "full" (default) or "basic" */
    if (!j.failed && ju_blank(channel)) ju_fail(&j, "channel_id is required");
    if (!j.failed && ju_blank(login)) ju_fail(&j, "login_uid is required");
    if (j.failed) {
        json_decref(root);
        api_reply_error(r, 400, "%s", j.err);
        return;
    }
    uint64_t lim = limit <= 0 ? 0 : (uint64_t)MP_MIN(limit, SYNC_LIMIT_MAX);
    char *buf;
    mp_str id = api_stored_id(type, channel, login, &buf);
    sync_page p = {json_array(), 0, 0, 0, NULL, api_stream_full_mode(summary)};
    int empty = 0;
    int rc = sync_read(type, id, s, e, mode, lim, &p, &empty);
    free(buf);
    json_decref(root);
    if (rc != MP_OK) {
        json_decref(p.msgs);
        api_reply_error(r, 500, "reading messages failed: %s", mp_strerror(rc));
        return;
    }
    if (empty) { /* a channel without messages: WuKongIM's "channel not found" answer */
        api_reply_json(r, 200, sync_answer(0, 0, 0, p.msgs));
        return;
    }
    int more = lim > 0 && p.count >= lim;
    /* WuKongIM's (unreachable, e is exclusive) "page touches e" rule: down = mode 0, up = any other */
    if (p.count > 0 && e != 0 && ((mode == 0 && p.first_seq == e) || (mode != 0 && p.last_seq == e))) more = 0;
    api_reply_json(r, 200, sync_answer(s, e, more, p.msgs));
}

void api_channel_max_message_seq(api_req *r) {
    mp_str channel, login;
    api_req_query(r, "channel_id", &channel);
    api_req_query(r, "login_uid", &login);
    uint8_t type = api_req_query_u8(r, "channel_type");
    if (channel.len == 0) {
        api_reply_error(r, 400, "channel_id is required");
        return;
    }
    if (type == CHANNEL_PERSON && !memchr(channel.p, '@', channel.len) && ju_blank(login)) {
        api_reply_error(r, 400, "login_uid is required for person channels");
        return;
    }
    char *buf;
    mp_str id = api_stored_id(type, channel, login, &buf);
    uint64_t last = 0;
    store_rtxn *tx;
    int rc = store_rtxn_begin(im_store(), &tx);
    if (rc == MP_OK) {
        rc = store_get_last_seq(tx, type, id, &last);
        store_rtxn_end(tx);
    }
    free(buf);
    if (rc != MP_OK && rc != MP_ENOTFOUND) {
        api_reply_error(r, 500, "reading the channel failed: %s", mp_strerror(rc));
        return;
    }
    json_t *o = json_object();
    json_object_set_new(o, "message_seq", json_integer((json_int_t)last));
    api_reply_json(r, 200, o);
}
