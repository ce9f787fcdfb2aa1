/* api_channel.c - channels (spec §4.4): create/update info, delete, and the subscriber,
 * blacklist and whitelist sets. Mutations go through the IM core and answer when it is
 * done (durable); GET /channel/whitelist reads the store directly. */
#include <stdio.h>
#include <time.h>

#include "../core/msg.h"
#include "api_routes.h"
#include "json_util.h"

/* Validation rules; each endpoint applies the subset WuKongIM applies (channel_model.go). */
enum {
    CHK_ID = 1,           /* channel_id non-empty */
    CHK_ID_BLANK = 2,     /* channel_id not only whitespace */
    CHK_ID_VALID = 4,     /* channel_id without '@', '#', '&' */
    CHK_TYPE = 8,         /* channel_type != 0 */
    CHK_UIDS = 16,        /* the uid list has at least one entry */
    CHK_UIDS_BLANK = 32,  /* the uid list has at least one non-blank entry */
    CHK_NOT_PERSON = 64,  /* channel_type != 1 */
};

/* A parsed channel request body. */
typedef struct chan_req {
    json_t *root;
    ju j;
    mp_str id;
    uint8_t type;
    mp_str *uids; /* non-blank entries only (malloc'd) */
    size_t n;
    size_t n_raw; /* entries given, blank ones included */
} chan_req;

static void chan_req_free(chan_req *c) {
    free(c->uids);
    json_decref(c->root);
}

/* Answer 400 with the recorded error, free c; returns 1 if it did. */
static int chan_req_reject(api_req *r, chan_req *c) {
    if (!c->j.failed) return 0;
    api_reply_error(r, 400, "%s", c->j.err);
    chan_req_free(c);
    return 1;
}

/* Parse channel_id, channel_type and (if uids_key) a uid list; apply checks. Returns 0
 * (and has answered) on failure. */
static int chan_req_parse(api_req *r, chan_req *c, const char *uids_key, unsigned checks) {
    char err[200];
    memset(c, 0, sizeof *c);
    c->root = ju_parse(api_req_body(r), 1, err, sizeof err);
    if (!c->root) {
        api_reply_error(r, 400, "%s", err);
        return 0;
    }
    ju *j = &c->j;
    ju_init(j, c->root);
    c->id = ju_str(j, "channel_id");
    c->type = (uint8_t)ju_uint(j, "channel_type", 255);
    if (uids_key) {
        mp_str *all = NULL;
        c->n_raw = ju_str_array(j, uids_key, &all);
        c->uids = all; /* compact the non-blank entries in place */
        for (size_t i = 0; i < c->n_raw; i++)
            if (!ju_blank(all[i])) c->uids[c->n++] = all[i];
    }
    if (j->failed) return !chan_req_reject(r, c);
    if ((checks & CHK_ID) && c->id.len == 0) ju_fail(j, "channel_id is required");
    else if ((checks & CHK_ID_BLANK) && ju_blank(c->id)) ju_fail(j, "channel_id is required");
    else if ((checks & CHK_ID_VALID) && !im_valid_id(c->id))
        ju_fail(j, "channel_id must not contain '@', '#' or '&' (nor be too long)");
    else if ((checks & CHK_TYPE) && c->type == 0) ju_fail(j, "channel_type must not be 0");
    else if ((checks & CHK_UIDS) && c->n_raw == 0) ju_fail(j, "%s is required", uids_key);
    else if ((checks & CHK_UIDS_BLANK) && c->n == 0) ju_fail(j, "%s is required", uids_key);
    else if ((checks & CHK_NOT_PERSON) && c->type == CHANNEL_PERSON)
        ju_fail(j, "this operation is not supported on person channels");
    return !chan_req_reject(r, c);
}

/* ---- channel info ------------------------------------------------------------------------ */

static int flag(ju *j, const char *key) { return ju_int(j, key, INT64_MIN, INT64_MAX) == 1; }

static void upsert(api_req *r, int with_subscribers) {
    chan_req c;
    unsigned checks = CHK_ID_BLANK | CHK_TYPE | CHK_ID_VALID;
    if (!chan_req_parse(r, &c, with_subscribers ? "subscribers" : NULL, checks)) return;
    im_channel_req q = {0};
    q.channel_id = c.id;
    q.channel_type = c.type;
    q.set_info = 1;
    q.info.large = (uint8_t)flag(&c.j, "large");
    q.info.ban = (uint8_t)flag(&c.j, "ban");
    q.info.disband = (uint8_t)flag(&c.j, "disband");
    q.info.send_ban = (uint8_t)flag(&c.j, "send_ban");
    q.info.allow_stranger = (uint8_t)flag(&c.j, "allow_stranger");
    q.info.created_ms = q.info.updated_ms = mp_now_ms();
    if (with_subscribers) {
        q.reset = flag(&c.j, "reset");
        q.subscribers = c.uids;
        q.n_subscribers = c.n;
        if (!c.j.failed && c.type == CHANNEL_PERSON && c.n_raw > 0)
            ju_fail(&c.j, "person channels cannot have subscribers");
    }
    if (chan_req_reject(r, &c)) return;
    im_channel_upsert(&q, api_im_done_ok, r);
    chan_req_free(&c);
}

void api_channel_create(api_req *r) { upsert(r, 1); }
void api_channel_info(api_req *r) { upsert(r, 0); }

void api_channel_delete(api_req *r) {
    chan_req c;
    if (!chan_req_parse(r, &c, NULL, CHK_NOT_PERSON)) return;
    if (c.id.len == 0) { /* WuKongIM: an unknown channel is "deleted" already */
        chan_req_free(&c);
        api_reply_ok(r);
        return;
    }
    im_channel_delete(c.id, c.type, api_im_done_ok, r);
    chan_req_free(&c);
}

/* ---- subscribers ----------------------------------------------------------------------- */

void api_subscriber_add(api_req *r) {
    chan_req c;
    if (!chan_req_parse(r, &c, "subscribers", CHK_ID_BLANK | CHK_ID_VALID | CHK_UIDS_BLANK | CHK_NOT_PERSON)) return;
    int reset = flag(&c.j, "reset");
    if (ju_int(&c.j, "temp_subscriber", INT64_MIN, INT64_MAX) == 1 && !c.j.failed)
        ju_fail(&c.j, "temporary subscribers are no longer supported");
    if (chan_req_reject(r, &c)) return;
    uint8_t type = c.type ? c.type : CHANNEL_GROUP;
    im_channel_members(STORE_SUBSCRIBERS, reset ? IM_MEMBERS_SET : IM_MEMBERS_ADD, c.id, type, c.uids, c.n,
                       api_im_done_ok, r);
    chan_req_free(&c);
}

/* Parse, check, then run one member operation on a set. */
static void members_op(api_req *r, int set, int op, const char *uids_key, unsigned checks) {
    chan_req c;
    if (!chan_req_parse(r, &c, uids_key, checks)) return;
    im_channel_members(set, op, c.id, c.type, c.uids, c.n, api_im_done_ok, r);
    chan_req_free(&c);
}

#define ID_LIST_CHECKS (CHK_ID_BLANK | CHK_ID_VALID | CHK_UIDS_BLANK | CHK_NOT_PERSON)
#define CHANNEL_CHECKS (CHK_ID | CHK_TYPE)

void api_subscriber_remove(api_req *r) {
    members_op(r, STORE_SUBSCRIBERS, IM_MEMBERS_REMOVE, "subscribers", ID_LIST_CHECKS);
}
void api_subscriber_remove_all(api_req *r) {
    members_op(r, STORE_SUBSCRIBERS, IM_MEMBERS_REMOVE_ALL, NULL, CHANNEL_CHECKS | CHK_NOT_PERSON);
}

/* ---- blacklist / whitelist ------------------------------------------------------------- */

void api_blacklist_add(api_req *r) {
    members_op(r, STORE_BLACKLIST, IM_MEMBERS_ADD, "uids", CHANNEL_CHECKS | CHK_UIDS);
}
void api_blacklist_set(api_req *r) {
    members_op(r, STORE_BLACKLIST, IM_MEMBERS_SET, "uids", CHK_ID_BLANK | CHK_TYPE);
}
void api_blacklist_remove(api_req *r) {
    members_op(r, STORE_BLACKLIST, IM_MEMBERS_REMOVE, "uids", CHANNEL_CHECKS | CHK_UIDS);
}
void api_blacklist_remove_all(api_req *r) {
    members_op(r, STORE_BLACKLIST, IM_MEMBERS_REMOVE_ALL, NULL, CHANNEL_CHECKS);
}
void api_whitelist_add(api_req *r) {
    members_op(r, STORE_WHITELIST, IM_MEMBERS_ADD, "uids", CHANNEL_CHECKS | CHK_ID_VALID | CHK_UIDS_BLANK);
}
void api_whitelist_set(api_req *r) {
    members_op(r, STORE_WHITELIST, IM_MEMBERS_SET, "uids", CHK_ID_BLANK | CHK_TYPE);
}
void api_whitelist_remove(api_req *r) {
    members_op(r, STORE_WHITELIST, IM_MEMBERS_REMOVE, "uids", CHANNEL_CHECKS | CHK_ID_VALID | CHK_UIDS_BLANK);
}
void api_whitelist_remove_all(api_req *r) {
    members_op(r, STORE_WHITELIST, IM_MEMBERS_REMOVE_ALL, NULL, CHANNEL_CHECKS);
}

/* GET /channel/whitelist: [{"id","uid","created_at","updated_at"}]. The store keeps no
 * per-member ids or times: id is the 1-based position, the times are the current time. */
typedef struct wl_ctx {
    json_t *arr;
    char now[32];
} wl_ctx;

static int wl_member(void *ctx, mp_str uid) {
    wl_ctx *w = ctx;
    json_t *m = json_object();
    json_object_set_new(m, "id", json_integer((json_int_t)json_array_size(w->arr) + 1));
    json_object_set_new(m, "uid", ju_string(uid));
    json_object_set_new(m, "created_at", json_string(w->now));
    json_object_set_new(m, "updated_at", json_string(w->now));
    json_array_append_new(w->arr, m);
    return 0;
}

void api_whitelist_get(api_req *r) {
    mp_str id;
    api_req_query(r, "channel_id", &id);
    uint8_t type = api_req_query_u8(r, "channel_type");
    wl_ctx w = {json_array(), ""};
    time_t t = time(NULL);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(w.now, sizeof w.now, "%Y-%m-%dT%H:%M:%SZ", &tm);
    if (id.len == 0) {
        api_reply_json(r, 200, w.arr);
        return;
    }
    store_rtxn *tx;
    int rc = store_rtxn_begin(im_store(), &tx);
    if (rc == MP_OK) {
        rc = store_scan_set(tx, STORE_WHITELIST, type, id, wl_member, &w);
        store_rtxn_end(tx);
    }
    if (rc != MP_OK && rc != MP_ENOTFOUND) {
        json_decref(w.arr);
        api_reply_error(r, 500, "reading the whitelist failed: %s", mp_strerror(rc));
        return;
    }
    api_reply_json(r, 200, w.arr);
}

/* ---- temp channels (spec §4.4, §5.13) ------------------------------------------------------- */

#define TMP_SUBSCRIBERS_MAX 10000

/* POST /tmpchannel/subscriber_set {"channel_id","uids"}: the in-memory recipients of
 * temp channel (channel_id, 8); channel_type in the body is ignored. */
void api_tmpchannel_subscriber_set(api_req *r) {
    chan_req c;
    if (!chan_req_parse(r, &c, "uids", CHK_ID_BLANK | CHK_ID_VALID | CHK_UIDS)) return;
    if (c.n != c.n_raw) ju_fail(&c.j, "uids must not contain blank entries");
    else if (c.n > TMP_SUBSCRIBERS_MAX) ju_fail(&c.j, "uids has %zu entries (at most %d)", c.n, TMP_SUBSCRIBERS_MAX);
    for (size_t i = 0; i < c.n && !c.j.failed; i++)
        if (!im_valid_id(c.uids[i])) ju_fail(&c.j, "uids[%zu] is not a valid uid", i);
    if (chan_req_reject(r, &c)) return;
    im_tmp_subscribers_set(c.id, c.uids, c.n, api_im_done_ok, r);
    chan_req_free(&c);
}
