/* stream.h - streaming messages (spec §5.14): the events of each stream message, applied
 * in order, kept as one projected state per (message, event_key), stored, and pushed to
 * the channel's online members as EVENT frames.
 *
 * Model (WuKongIM v2.2.5's): stream.delta events live in memory only (their text is
 * appended to the key's snapshot) and do not take a msg_event_seq; every other event is
 * persisted as the key's new state record together with the message's msg_event_seq
 * counter, and answered once durable. A terminal event (stream.close / .error / .cancel)
 * persists the key with its accumulated snapshot, so the final text survives restarts;
 * stream.finish (key "__finish__") completes the message and closes its open keys.
 * Further events on a terminal key, or on a completed message, change nothing and get the
 * projected state. Repeating the last event_id of a key gets its state again.
 *
 * Storage: kv rows in STORE_KV_STREAM keyed by the anchor's message_id (8 bytes,
 * big-endian): the message record at exactly those 8 bytes, one row per event key at
 * message_id + event_key (stream_state.h has the record formats).
 *
 * Memory: one session per message that is being streamed, holding its open keys. A key is
 * dropped from memory once terminal and stored; a session once it has no open key, or
 * after STREAM_IDLE_MS without events (unsaved delta text is stored first), or when more
 * than STREAM_MAX_SESSIONS exist (the least recently used goes the same way).
 *
 * Thread rule: single-threaded. Every function must be called on the HTTP API's thread
 * (worker 0), which is the only one touching this module's state; store writes complete
 * back on that worker. */
#ifndef MP_STREAM_H
#define MP_STREAM_H

#include <jansson.h>

#include "../common/mp.h"
#include "../store/store.h"
#include "stream_state.h"

#define STREAM_MAX_PAYLOAD (64 * 1024)   /* bytes of an event's payload as compact JSON */
#define STREAM_MAX_TEXT (1024 * 1024)    /* bytes of a key's snapshot text built from deltas */
#define STREAM_MAX_KEYS 64               /* event keys of one message, besides __finish__ */
#ifndef STREAM_MAX_SESSIONS               /* (overridable at build time for tests) */
#define STREAM_MAX_SESSIONS 10000        /* messages with state in memory */
#endif
#ifndef STREAM_IDLE_MS
#define STREAM_IDLE_MS (10 * 60 * 1000)  /* a message without events this long leaves memory */
#endif

/* The anchor message, as stored. */
typedef struct stream_anchor {
    int64_t message_id;
    uint8_t channel_type;
    mp_str stored_id;     /* the stored channel id (the fake id of a person channel) */
    mp_str from_uid;      /* its sender as stored ("____system" for the system) */
    mp_str client_msg_no;
} stream_anchor;

/* One /message/event call, validated (strings need not outlive the call). */
typedef struct stream_event {
    mp_str event_id;      /* non-empty */
    mp_str event_type;    /* lower-case, non-empty */
    mp_str event_key;     /* non-empty; "__finish__" for stream.finish */
    mp_str visibility;    /* "", "public", "private" or "restricted" */
    int64_t occurred_at;  /* ms */
    json_t *payload;      /* any JSON, NULL when absent; borrowed (a reference is taken) */
    mp_str channel_id;    /* the channel as the caller named it, and the sender it gave */
    mp_str from_uid;      /*   (echoed in the answer and in the EVENT data) */
} stream_event;

/* The answer to one event. Strings are valid during the callback only. */
typedef struct stream_result {
    int http_status;      /* 200; 400 refused, 500 store failure, 503 shutting down */
    const char *error;    /* reason when not 200 */
    mp_str client_msg_no, event_key, event_id, channel_id, from_uid;
    uint8_t channel_type;
    uint64_t msg_event_seq;
    const char *stream_status; /* "open", "closed", "error", "cancelled" */
} stream_result;

typedef void (*stream_done_fn)(void *ctx, const stream_result *r);

/* Apply event e to the message a. Events of one message are applied one at a time in call
 * order; an event waits while an earlier one of the same message is being stored. done is
 * called exactly once, later or before returning; accepted events are pushed (EVENT frame,
 * in order with the channel's other events and messages) right before done. */
void stream_append(const stream_anchor *a, const stream_event *e, stream_done_fn done, void *ctx);

/* Every event key of a message, as stored and then updated from memory, sorted by name. */
typedef struct stream_states {
    stream_key *keys;
    size_t n;
    uint64_t seq;    /* last msg_event_seq given */
    int completed;   /* stream.finish arrived */
} stream_states;
/* Read inside tx (the caller's read transaction). Returns MP_OK (n may be 0) or a store
 * error; free with stream_states_free() either way. */
int stream_states_load(store_rtxn *tx, int64_t message_id, stream_states *out);
void stream_states_free(stream_states *s);

/* At shutdown (from api_stop): events still waiting get 503, unsaved delta text is stored,
 * memory is released (a session whose write is in flight goes when that write is done). */
void stream_stop(void);

#endif
