/* api_user.c - POST /user/token and /user/device_quit (spec §4.2). */
#include "../common/log.h"
#include "../core/msg.h"
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
