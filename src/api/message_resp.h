/* message_resp.h - a stored message as the HTTP API returns it: WuKongIM's MessageResp
 * (spec §3.5), used by /channel/messagesync and /conversation/sync. */
#ifndef MP_API_MESSAGE_RESP_H
#define MP_API_MESSAGE_RESP_H

#include <jansson.h>

#include "../core/msg.h"

/* A new JSON object for m (fields copied; m may be a view into a read transaction).
 * from_uid "____system" becomes ""; a person channel's channel_id is the part of the fake
 * id that is not the sender; topic is omitted when empty; payload is base64. */
json_t *message_resp_json(const msg_fields *m);
/* The same with the members of extra (consumed; may be NULL) inserted after
 * client_msg_no, where WuKongIM puts the stream fields (spec §3.5). */
json_t *message_resp_json_ext(const msg_fields *m, json_t *extra);

#endif
