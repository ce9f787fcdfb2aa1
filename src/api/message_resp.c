/* message_resp.c - MessageResp JSON (spec §3.5), field order as WuKongIM writes it. */
#include "message_resp.h"

#include <inttypes.h>
#include <stdio.h>

#include "../channel/channel.h"
#include "../proto/crypto.h"
#include "../proto/packet.h"
#include "json_util.h"

static json_t *header_json(uint8_t flags) {
    json_t *h = json_object();
    json_object_set_new(h, "no_persist", json_integer((flags & PROTO_FLAG_NOPERSIST) ? 1 : 0));
    json_object_set_new(h, "red_dot", json_integer((flags & PROTO_FLAG_REDDOT) ? 1 : 0));
    json_object_set_new(h, "sync_once", json_integer((flags & PROTO_FLAG_SYNCONCE) ? 1 : 0));
    return h;
}

json_t *message_resp_json(const msg_fields *m) { return message_resp_json_ext(m, NULL); }

json_t *message_resp_json_ext(const msg_fields *m, json_t *extra) {
    mp_str from = mp_str_eq_c(m->from_uid, MP_SYSTEM_UID) ? (mp_str){"", 0} : m->from_uid;
    mp_str channel = chan_cmd_origin(m->channel_id); /* command messages show their channel */
    if (m->channel_type == CHANNEL_PERSON && memchr(channel.p, '@', channel.len))
        channel = msg_person_peer(channel, m->from_uid);
    char idstr[24];
    snprintf(idstr, sizeof idstr, "%" PRId64, m->message_id);
    mp_buf b64 = MP_BUF_INIT;
    crypto_b64_encode((const uint8_t *)m->payload.p, m->payload.len, &b64);

    json_t *o = json_object();
    json_object_set_new(o, "header", header_json(m->flags));
    json_object_set_new(o, "setting", json_integer(m->setting));
    json_object_set_new(o, "message_id", json_integer(m->message_id));
    json_object_set_new(o, "message_idstr", json_string(idstr));
    json_object_set_new(o, "client_msg_no", ju_string(m->client_msg_no));
    if (extra) { /* stream fields sit here in WuKongIM's order */
        json_object_update(o, extra);
        json_decref(extra);
    }
    json_object_set_new(o, "message_seq", json_integer((json_int_t)m->seq));
    json_object_set_new(o, "from_uid", ju_string(from));
    json_object_set_new(o, "channel_id", ju_string(channel));
    json_object_set_new(o, "channel_type", json_integer(m->channel_type));
    if (m->topic.len) json_object_set_new(o, "topic", ju_string(m->topic));
    json_object_set_new(o, "expire", json_integer(m->expire));
    json_object_set_new(o, "timestamp", json_integer((int32_t)m->timestamp));
    json_object_set_new(o, "payload", json_stringn(b64.len ? (const char *)b64.data : "", b64.len));
    mp_buf_free(&b64);
    return o;
}
