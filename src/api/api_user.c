/* api_user.c - POST /user/token, /user/device_quit and the system uid endpoints
 * (spec §4.2). */
#include "../common/log.h"
#include "../core/msg.h"
#include "../core/sysuid.h"
#include "../proto/packet.h"
#include "api_routes.h"
#include "json_util.h"

/* A banned or disbanded person channel answers 200 {"status":<reason>} (spec §4.2). */
static uint8_t person_refusal(mp_str uid) {
    store_rtxn *tx;
    if (store_rtxn_begin(im_store(), &tx) != MP_OK) return 0;
    store_channel_info info;
    uint8_t reason = 0;
    if (store_get_channel_info(tx, CHANNEL_PERSON, uid, &info) == MP_OK) {
        if (info.ban) reason = REASON_BAN;
        else if (info.disband) reason = REASON_DISBAND;
    }
    store_rtxn_end(tx);
    return reason;
}

static void reply_status(api_req *r, int status) {
    json_t *o = json_object();
    json_object_set_new(o, "status", json_integer(status));
    api_reply_json(r, 200, o);
}

static void token_done(void *ctx, const im_result *res) {
    api_req *r = ctx;
    if (res->status == MP_OK && (res->reason == REASON_BAN || res->reason == REASON_DISBAND))
        reply_status(r, res->reason);
    else
        api_im_done_ok(ctx, res);
}

void api_user_token(api_req *r) {
    json_t *root = api_parse_object(r);
    if (!root) return;
    ju j;
    ju_init(&j, root);
    mp_str uid = ju_str(&j, "uid");
    mp_str token = ju_str(&j, "token");
    uint8_t device_flag = (uint8_t)ju_uint(&j, "device_flag", 255);
    uint8_t device_level = (uint8_t)ju_uint(&j, "device_level", 255);
    if (!j.failed) {
        if (uid.len == 0) ju_fail(&j, "uid is required");
        else if (token.len == 0) ju_fail(&j, "token is required");
        else if (!im_valid_id(uid)) ju_fail(&j, "uid must not contain '@', '#' or '&' (nor be blank or too long)");
        else if (mp_str_eq_c(uid, MP_SYSTEM_UID)) ju_fail(&j, "the system uid cannot have a token");
    }
    if (j.failed) {
        json_decref(root);
        api_reply_error(r, 400, "%s", j.err);
        return;
    }
    uint8_t refusal = person_refusal(uid);
    if (refusal) {
        json_decref(root);
        reply_status(r, refusal);
        return;
    }
    im_user_token(uid, token, device_flag, device_level, token_done, r);
    json_decref(root);
}

/* POST /user/device_quit: clear the device token(s) and kick the device's connections.
 * device_flag -1 means APP, WEB and PC; omitted means 0 (APP), as WuKongIM does. */
void api_user_device_quit(api_req *r) {
    json_t *root = api_parse_object(r);
    if (!root) return;
    ju j;
    ju_init(&j, root);
    mp_str uid = ju_str(&j, "uid");
    int64_t flag = ju_int(&j, "device_flag", -1, 2);
    if (!j.failed && !im_valid_id(uid)) ju_fail(&j, "uid is required and must not contain '@', '#' or '&'");
    if (j.failed) {
        json_decref(root);
        api_reply_error(r, 400, "%s", j.err);
        return;
    }
    im_user_device_quit(uid, (int)flag, api_im_done_ok, r);
    json_decref(root);
}

/* ---- system accounts (spec §4.2, §5.11) ------------------------------------------------------ */

#define SYSUIDS_MAX 10000

/* The "uids" of a system uid request: required, not empty, every entry a valid uid.
 * Returns the count (0 after answering 400); *uids is freed by the caller. */
static size_t sysuids_parse(api_req *r, json_t **root, mp_str **uids) {
    *uids = NULL;
    *root = api_parse_object(r);
    if (!*root) return 0;
    ju j;
    ju_init(&j, *root);
    size_t n = ju_str_array(&j, "uids", uids);
    if (!j.failed && n == 0) ju_fail(&j, "uids is required (a non-empty array of uids)");
    if (!j.failed && n > SYSUIDS_MAX) ju_fail(&j, "uids has %zu entries (at most %d)", n, SYSUIDS_MAX);
    for (size_t i = 0; i < n && !j.failed; i++)
        if (!im_valid_id((*uids)[i]))
            ju_fail(&j, "uids[%zu] is not a valid uid (blank, too long, or contains '@', '#' or '&')", i);
    if (!j.failed) return n;
    api_reply_error(r, 400, "%s", j.err);
    free(*uids);
    *uids = NULL;
    json_decref(*root);
    *root = NULL;
    return 0;
}

/* Persisted add/remove: answered once durable; the in-memory set follows. */
static void sysuids_change(api_req *r, int add) {
    json_t *root;
    mp_str *uids;
    size_t n = sysuids_parse(r, &root, &uids);
    if (!n) return;
    im_sysuids_change(uids, n, add, api_im_done_ok, r);
    free(uids);
    json_decref(root);
}

/* Cache-only add/remove (between nodes in WuKongIM): this process only, until restart. */
static void sysuids_cache(api_req *r, int add) {
    json_t *root;
    mp_str *uids;
    size_t n = sysuids_parse(r, &root, &uids);
    if (!n) return;
    if (add) sysuid_add(uids, n);
    else sysuid_remove(uids, n);
    free(uids);
    json_decref(root);
    api_reply_ok(r);
}

void api_user_systemuids_add(api_req *r) { sysuids_change(r, 1); }
void api_user_systemuids_remove(api_req *r) { sysuids_change(r, 0); }
void api_user_systemuids_add_to_cache(api_req *r) { sysuids_cache(r, 1); }
void api_user_systemuids_remove_from_cache(api_req *r) { sysuids_cache(r, 0); }

static int list_sysuid(void *ctx, mp_str uid) {
    json_array_append_new(ctx, ju_string(uid));
    return 0;
}

/* GET /user/systemuids: the stored list (cache-only entries are not listed, as in
 * WuKongIM), or null when there is none. */
void api_user_systemuids(api_req *r) {
    json_t *arr = json_array();
    store_rtxn *tx;
    int rc = store_rtxn_begin(im_store(), &tx);
    if (rc == MP_OK) {
        rc = store_scan_sysuids(tx, list_sysuid, arr);
        store_rtxn_end(tx);
    }
    if (rc != MP_OK && rc != MP_ENOTFOUND) {
        json_decref(arr);
        api_reply_error(r, 500, "reading the system uids failed: %s", mp_strerror(rc));
        return;
    }
    if (json_array_size(arr) == 0) {
        json_decref(arr);
        arr = json_null();
    }
    api_reply_json(r, 200, arr);
}
