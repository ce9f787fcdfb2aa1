/* api_routes.h - the handlers behind each HTTP API route, grouped by the file that
 * implements them. The route table itself is in http_server.c. Each handler owns the
 * api_req it is given and answers it exactly once (api_req.h). */
#ifndef MP_API_ROUTES_H
#define MP_API_ROUTES_H

#include "api_req.h"

/* api_system.c: health, route, migration and varz stubs */
void api_health(api_req *r);
void api_route(api_req *r);
void api_route_batch(api_req *r);
void api_migrate_result(api_req *r);
void api_varz_setting(api_req *r);

/* api_user.c */
void api_user_token(api_req *r);
void api_user_device_quit(api_req *r);

/* api_channel.c: channel info, subscribers, blacklist, whitelist */
void api_channel_create(api_req *r);
void api_channel_info(api_req *r);
void api_channel_delete(api_req *r);
void api_subscriber_add(api_req *r);
void api_subscriber_remove(api_req *r);
void api_subscriber_remove_all(api_req *r);
void api_blacklist_add(api_req *r);
void api_blacklist_set(api_req *r);
void api_blacklist_remove(api_req *r);
void api_blacklist_remove_all(api_req *r);
void api_whitelist_add(api_req *r);
void api_whitelist_set(api_req *r);
void api_whitelist_remove(api_req *r);
void api_whitelist_remove_all(api_req *r);
void api_whitelist_get(api_req *r);

/* api_message.c: send and channel history */
void api_message_send(api_req *r);
void api_channel_messagesync(api_req *r);
void api_channel_max_message_seq(api_req *r);

/* api_cmd.c: offline command messages */
void api_message_sync(api_req *r);
void api_message_syncack(api_req *r);
void api_cmd_free(void); /* the remembered sync positions (at shutdown) */

/* api_conversation.c */
void api_conversation_sync(api_req *r);
void api_conversation_set_unread(api_req *r);
void api_conversation_clear_unread(api_req *r);
void api_conversation_delete(api_req *r);

#endif
