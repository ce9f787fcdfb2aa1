/* channel.h - the channel owner (DESIGN.md §3/§4): one worker per channel checks
 * permissions, de-duplicates by client_msg_no, assigns message_seq, hands the message to
 * the store writer, and after the commit answers the sender and starts the fan-out.
 * Functions may be called on any worker; they post to the channel's owner. */
#ifndef MP_CHANNEL_H
#define MP_CHANNEL_H

#include "../core/im.h"
#include "../core/msg.h"
#include "../core/worker.h"

void chan_init(worker *w);
void chan_free(worker *w);

typedef struct chan_send {
    /* origin: a connection (conn_id != 0) or an API caller (done != NULL) */
    int origin_worker;
    uint64_t conn_id;
    uint32_t client_seq;
    uint8_t ack_flags;   /* SEND header flags, echoed in SENDACK */
    uint64_t decoded_ns; /* uv_hrtime() when the SEND was decoded (SENDACK latency metric) */
    int from_api;        /* system device: skips sender checks */
    im_done_fn done;
    void *ctx;
    msg_fields f;        /* message_id and timestamp set; seq assigned by the owner */
    /* Explicit recipients (a /message/send with `subscribers`): they replace the channel's
     * own recipient resolution. NULL/0 = resolve from the channel. */
    const mp_str *recipients;
    size_t n_recipients;
} chan_send;

/* Command channels (spec §5.8): sync_once API sends to channel X are stored in X____cmd,
 * which shares X's members and permission rules. */
#define CHAN_CMD_SUFFIX "____cmd"
#define CHAN_CMD_SUFFIX_LEN 7
/* 1 if the stored id names a command channel. */
int chan_is_cmd(mp_str stored_id);
/* X for "X____cmd"; the id itself otherwise. */
mp_str chan_cmd_origin(mp_str stored_id);

/* Agent channels (spec §3.1): the stored id is "<uid>@<agent uid>", uid being the sender
 * and agent uid the channel_id it sent to. Writes into out (cap >= both + 1), returns the
 * length. */
uint32_t chan_agent_id(mp_str uid, mp_str agent_uid, char *out);
/* The agent part of an agent channel id (what its sender gave as channel_id). */
mp_str chan_agent_peer(mp_str stored_id);

/* Install the recipient set of temp channel (channel_id, 8) on its owner, replacing any
 * earlier one (spec §5.13). Memory only: lost on restart, and dropped once unused for
 * tag.expire. done runs on the calling worker once installed. */
void chan_temp_set(mp_str channel_id, const mp_str *uids, size_t n, im_done_fn done, void *ctx);

/* store_replay_fn for the records of message writes (store.h): after a crash, applies a
 * message the message log made durable and LMDB does not have yet. */
struct store_wtxn;
int chan_replay_record(struct store_wtxn *t, const uint8_t *rec, size_t len);

/* Copy r (and its strings) and route it to the channel owner. */
void chan_submit_send(const chan_send *r);
/* Push an event (m->f.kind == MSG_KIND_EVENT; channel_id is the STORED id) to the
 * channel's online recipients, as the channel owner resolves them for messages. Takes its
 * own reference on m. Ordered after every message and event submitted earlier for the
 * same channel from the same worker (one owner, FIFO inboxes). */
void chan_submit_event(mp_msg *m, uint64_t exclude_conn_id);
/* Subscriber set of a channel changed: the owner drops its cached copy. */
void chan_invalidate(uint8_t type, mp_str stored_id);
/* The stored key of a channel: type byte + id (for worker_owner_of). */
int chan_owner_of(uint8_t type, mp_str stored_id);

#endif
