/* api_sendbatch.c - POST /message/sendbatch (spec §4.5): one person message from from_uid
 * to each subscriber, each with a fresh client_msg_no, through im_send.
 *
 * WuKongIM answers at once and can only report validation failures; Magpie answers once
 * every message is durable or refused, so fail_uids lists the real refusals (in the order
 * given), `reason` their texts and `reason_code` their protocol reason codes. */
#include "../common/buf.h"
#include "../proto/crypto.h"
#include "../proto/packet.h"
#include "api_routes.h"
#include "json_util.h"

#define SENDBATCH_MAX 10000

typedef struct batch batch;

/* The done context of one send. */
typedef struct batch_item {
    batch *b;
    uint8_t reason; /* REASON_SUCCESS, or why it was refused */
    const char *error;
} batch_item;

struct batch {
    api_req *req;
    json_t *root;   /* keeps the subscriber strings alive */
    mp_str *subs;
    size_t n;
    size_t pending; /* sends not answered yet, +1 while they are being submitted */
    batch_item items[];
};

static void batch_answer(batch *b) {
    json_t *uids = json_array(), *texts = json_array(), *codes = json_array();
    for (size_t i = 0; i < b->n; i++) {
        batch_item *it = &b->items[i];
        if (it->reason == REASON_SUCCESS) continue;
        json_array_append_new(uids, ju_string(b->subs[i]));
        json_array_append_new(texts, json_string(it->error ? it->error : api_reason_text(it->reason)));
        json_array_append_new(codes, json_integer(it->reason));
    }
    json_t *o = json_object();
    json_object_set_new(o, "fail_uids", uids);
    json_object_set_new(o, "reason", texts);
    json_object_set_new(o, "reason_code", codes);
    api_reply_json(b->req, 200, o);
    json_decref(b->root);
    free(b->subs);
    free(b);
}

static void batch_release(batch *b) {
    if (--b->pending == 0) batch_answer(b);
}

static void item_done(void *ctx, const im_result *res) {
    batch_item *it = ctx;
    if (res->status == MP_OK && res->reason == REASON_SUCCESS) {
        it->reason = REASON_SUCCESS;
    } else {
        it->reason = res->reason != REASON_SUCCESS && res->reason != REASON_UNKNOWN ? res->reason : REASON_SYSTEM_ERROR;
        /* a storage failure is explained by the core's (static) text, a refusal by its code */
        it->error = it->reason == REASON_SYSTEM_ERROR ? res->error : NULL;
    }
    batch_release(it->b);
}

/* Validate the body into q (payload decoded into *payload) and the subscriber list. */
static size_t batch_parse(ju *j, im_send_req *q, mp_buf *payload, mp_str **subs) {
    q->flags = ju_header_flags(j);
    q->from_uid = ju_str(j, "from_uid");
    size_t n = ju_str_array(j, "subscribers", subs);
    mp_str b64 = ju_str(j, "payload");
    if (j->failed) return 0;
    if (ju_blank(q->from_uid)) ju_fail(j, "from_uid is required");
    else if (!im_valid_id(q->from_uid)) ju_fail(j, "from_uid must not contain '@', '#' or '&' (nor be too long)");
    else if (n == 0) ju_fail(j, "subscribers is required (a non-empty array of uids)");
    else if (n > SENDBATCH_MAX) ju_fail(j, "subscribers has %zu entries (at most %d)", n, SENDBATCH_MAX);
    else if (crypto_b64_decode(b64.p, b64.len, payload) != MP_OK) ju_fail(j, "payload must be standard base64 (with padding)");
    else if (payload->len == 0) ju_fail(j, "payload is required");
    q->payload = (mp_str){(const char *)payload->data, (uint32_t)payload->len};
    q->channel_type = CHANNEL_PERSON;
    return j->failed ? 0 : n;
}

void api_message_sendbatch(api_req *r) {
    json_t *root = api_parse_object(r);
    if (!root) return;
    ju j;
    ju_init(&j, root);
    im_send_req q = {0};
    mp_buf payload = MP_BUF_INIT;
    mp_str *subs = NULL;
    size_t n = batch_parse(&j, &q, &payload, &subs);
    if (j.failed) {
        api_reply_error(r, 400, "%s", j.err);
        free(subs);
        mp_buf_free(&payload);
        json_decref(root);
        return;
    }
    batch *b = mp_calloc(1, sizeof *b + n * sizeof(batch_item));
    b->req = r;
    b->root = root;
    b->subs = subs;
    b->n = n;
    b->pending = 1;
    for (size_t i = 0; i < n; i++) {
        batch_item *it = &b->items[i];
        it->b = b;
        if (!im_valid_id(subs[i])) { /* WuKongIM: a per-uid failure, not a 400 */
            it->reason = REASON_CHANNEL_ID_ERROR;
            it->error = "invalid uid";
            continue;
        }
        q.channel_id = subs[i];
        b->pending++;
        im_send(&q, item_done, it); /* copies q; answers later on this worker */
    }
    mp_buf_free(&payload);
    batch_release(b);
}
