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
void api_docs_disabled(api_req *r); /* /docs, /docs/, /docs/openapi.json: 403 */
void api_docs_health(api_req *r);
/* Not handlers: the client addresses /route gives (intranet: tcp only) into o, and the
 * API's own base URL "http://ip:port" (both derived as /route derives them). */
void api_client_addrs(int intranet, json_t *o);
void api_url(char *out, size_t cap);
/* The manager server's address as /varz reports it ("" when manager.on is false). */
void api_manager_addr(char *out, size_t cap);

/* api_metrics.c: GET /metrics (manager port), and the collectors of the datasource and
 * webhook counters, registered once by api_metrics_init (from api_start). */
void api_metrics(api_req *r);
void api_metrics_init(void);
/* api_logs.c: GET /logs/recent (manager port): the last warn/error lines. */
void api_logs_recent(api_req *r);

/* api_ops.c: online status, connection admin, /varz and /connz, plugin number */
void api_user_onlinestatus(api_req *r);
void api_user_update_plugin_no(api_req *r);
void api_conn_kick(api_req *r);
void api_conn_remove(api_req *r);
void api_varz(api_req *r);
void api_connz(api_req *r);

/* api_user.c */
void api_user_token(api_req *r);
void api_user_device_quit(api_req *r);
void api_user_systemuids(api_req *r);
void api_user_systemuids_add(api_req *r);
void api_user_systemuids_remove(api_req *r);
void api_user_systemuids_add_to_cache(api_req *r);
void api_user_systemuids_remove_from_cache(api_req *r);

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
void api_tmpchannel_subscriber_set(api_req *r);

/* api_message.c: send and channel history */
void api_message_send(api_req *r);
void api_channel_messagesync(api_req *r);
void api_channel_max_message_seq(api_req *r);
/* Not a handler: the stored channel id for a request's channel_id (the fake id of
 * (channel_id, viewer) for a person channel whose id has no '@'). *buf is set to an
 * allocation the caller frees; the result may point into it or into channel_id. */
mp_str api_stored_id(uint8_t type, mp_str channel_id, mp_str viewer, char **buf);

/* api_query.c: single messages and lists of messages by seq, id or client_msg_no */
void api_messages_search(api_req *r);
void api_message_search(api_req *r);
void api_message_by_client_msg_no(api_req *r);
void api_channel_last_message(api_req *r);

/* api_sendbatch.c */
void api_message_sendbatch(api_req *r);

/* api_stream.c: streaming messages (spec §5.14) */
void api_message_event(api_req *r);
void api_message_eventsync(api_req *r);
/* im_send for /message/send; a stream message's sender is remembered for its events. */
void api_stream_send(const im_send_req *q, im_done_fn done, void *ctx);
/* MessageResp of m with the stream fields when it is a stream message with events, read
 * inside tx (/channel/messagesync); full: event_summary_mode "full" (snapshots). */
json_t *api_stream_message_json(store_rtxn *tx, const msg_fields *m, int full);
/* 1 if an event_summary_mode asks for "full" (the default): trimmed, any case, or empty. */
int api_stream_full_mode(mp_str mode);
void api_stream_stop(void); /* at shutdown (from api_stop) */

/* api_cmd.c: offline command messages */
void api_message_sync(api_req *r);
void api_message_syncack(api_req *r);
void api_cmd_free(void); /* the remembered sync positions (at shutdown) */

/* api_conversation.c */
void api_conversation_sync(api_req *r);
void api_conversation_set_unread(api_req *r);
void api_conversation_clear_unread(api_req *r);
void api_conversation_delete(api_req *r);
void api_conversation_sync_messages(api_req *r);
void api_conversation_channels(api_req *r);
void api_conversation_sync_by_channels(api_req *r);

#endif
