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
    int from_api;        /* system device: skips sender checks */
    im_done_fn done;
    void *ctx;
    msg_fields f;        /* message_id and timestamp set; seq assigned by the owner */
    mp_str peer_uid;     /* person channels: the recipient uid */
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
