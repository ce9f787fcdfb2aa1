/* im.h - the IM core as seen by the edges (HTTP API, later webhooks/cluster).
 *
 * Thread rule: call these on a worker thread (the HTTP API runs on worker 0's loop).
 * Each call copies what it needs before returning; `done` is called later, exactly once,
 * on the SAME worker thread, with `ctx` untouched. Mutations answer only after the change
 * is durable in the store. */
#ifndef MP_CORE_IM_H
#define MP_CORE_IM_H

#include "../common/mp.h"
#include "../config/config.h"
#include "../store/store.h"
#include "msg.h"

typedef struct im_result {
    int status;          /* MP_OK, or MP_E* */
    uint8_t reason;      /* protocol reason code (REASON_SUCCESS on success) */
    int64_t message_id;  /* im_send */
    uint64_t message_seq;/* im_send (0 for no_persist) */
    mp_str client_msg_no;/* im_send: the number used (valid only during the callback) */
    const char *error;   /* human-readable error text when status != MP_OK (static string) */
} im_result;

typedef void (*im_done_fn)(void *ctx, const im_result *r);

typedef struct im_send_req {
    mp_str from_uid;       /* empty = system uid "____system" */
    mp_str channel_id;     /* the real id: the peer uid for person channels */
    uint8_t channel_type;
    uint8_t flags;         /* PROTO_FLAG_NOPERSIST | PROTO_FLAG_REDDOT | PROTO_FLAG_SYNCONCE */
    uint8_t setting;
    uint32_t expire;
    mp_str client_msg_no;  /* empty = generated */
    mp_str topic;
    mp_str payload;        /* plaintext bytes */
    const mp_str *subscribers; /* deliver only to these uids (needs PROTO_FLAG_SYNCONCE and
                                  an empty channel_id); NULL/0 = the channel's members */
    size_t n_subscribers;
} im_send_req;

/* Send as a business/system sender (no SENDACK, no subscriber/black/whitelist checks;
 * ban and disband still apply). done reports reason != SUCCESS if refused.
 * Command messages (spec §5.8): with PROTO_FLAG_SYNCONCE the message goes to the command
 * channel X____cmd of the channel X (same members and rules) and every recipient gets a
 * command conversation row, read through /message/sync. With subscribers it goes to the
 * temp command channel "<fnv64a(uids joined by ',')>____cmd" (type 8), or, when not
 * persisted, straight to the subscribers through "systemcmdonline". */
void im_send(const im_send_req *r, im_done_fn done, void *ctx);

/* Register a device token; device_level 1 (master) kicks the uid's other connections with
 * the same device flag. */
void im_user_token(mp_str uid, mp_str token, uint8_t device_flag, uint8_t device_level, im_done_fn done, void *ctx);

/* Clear the stored token of (uid, device_flag) so token login fails until /user/token is
 * called again, and kick that device's connections. device_flag -1 = APP, WEB and PC. */
void im_user_device_quit(mp_str uid, int device_flag, im_done_fn done, void *ctx);

typedef struct im_channel_req {
    mp_str channel_id;
    uint8_t channel_type;
    int set_info;               /* 1: overwrite channel info with `info` */
    store_channel_info info;
    const mp_str *subscribers;  /* added after info; may be NULL */
    size_t n_subscribers;
    int reset;                  /* 1: remove all subscribers first */
} im_channel_req;
/* /channel and /channel/info: upsert info, then (optionally) subscribers. */
void im_channel_upsert(const im_channel_req *r, im_done_fn done, void *ctx);

enum im_members_op { IM_MEMBERS_ADD = 0, IM_MEMBERS_REMOVE = 1, IM_MEMBERS_REMOVE_ALL = 2, IM_MEMBERS_SET = 3 };
/* Change a subscriber / blacklist / whitelist set (set = STORE_SUBSCRIBERS...). Creates the
 * channel if missing. Subscriber add creates conversation rows at the current last seq;
 * subscriber remove deletes them. */
void im_channel_members(int set, int op, mp_str channel_id, uint8_t channel_type, const mp_str *uids, size_t n,
                        im_done_fn done, void *ctx);
/* /tmpchannel/subscriber_set: the in-memory recipients of temp channel (channel_id, 8). */
void im_tmp_subscribers_set(mp_str channel_id, const mp_str *uids, size_t n, im_done_fn done, void *ctx);

/* System accounts (spec §5.11): add (add = 1) or remove the uids in the store, then in the
 * in-memory set (sysuid.h) once durable. */
void im_sysuids_change(const mp_str *uids, size_t n, int add, im_done_fn done, void *ctx);

/* /channel/delete: marks the channel disbanded (messages are kept). */
void im_channel_delete(mp_str channel_id, uint8_t channel_type, im_done_fn done, void *ctx);

/* Conversation read position (channel_id is the real id; peer uid for person).
 * unread < 0 means "clear" (read everything). Forward-only, as spec §4.6. */
void im_conv_set_unread(mp_str uid, mp_str channel_id, uint8_t channel_type, int64_t unread, im_done_fn done,
                        void *ctx);
void im_conv_delete(mp_str uid, mp_str channel_id, uint8_t channel_type, im_done_fn done, void *ctx);

/* Move uid's read pointer in a stored channel (type, stored id) forward to seq; creates
 * a missing row as a command row when the id is a command channel. done may be NULL.
 * Used by /message/syncack and by a master device's RECVACK of a command message. */
void im_conv_advance(mp_str uid, uint8_t channel_type, mp_str stored_id, uint64_t seq, im_done_fn done, void *ctx);

/* A fresh client_msg_no as WuKongIM makes one: 32 random hex digits and "0" (no NUL). */
void im_new_client_msg_no(char out[33]);

/* Shared read-only context for handlers (valid for the server's lifetime). */
store *im_store(void);
const mp_config *im_config(void);

/* Map a real channel id to the stored one (fake id for person channels, given the viewer
 * uid). Writes into out (cap >= id.len + viewer.len + 2); returns the stored id. */
mp_str im_stored_channel_id(uint8_t channel_type, mp_str channel_id, mp_str viewer, char *out);

/* Length caps keep every store key under LMDB's 511-byte limit (a person fake id is two
 * uids; a conversation key is a uid plus a channel key). */
#define IM_MAX_ID_LEN 128
#define IM_MAX_CLIENT_MSG_NO_LEN 200

/* Id rules shared by API and CONNECT: non-blank, at most IM_MAX_ID_LEN bytes, no '@',
 * '#', '&' and no control characters (ids are also used as C strings). */
int im_valid_id(mp_str id);

#endif
