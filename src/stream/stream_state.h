/* stream_state.h - the projected state of one event key of a streaming message (spec
 * §5.14): how each event type changes it, and the records it is stored as.
 *
 * A streaming message (setting bit 0x02) receives events through POST /message/event.
 * Events are grouped by event_key ("main" by default). Each key has one projected state:
 * a status (open until a terminal event), a snapshot (the text deltas accumulated so far,
 * or the last snapshot given) and the metadata of its last events. msg_event_seq numbers
 * the persisted (non-delta) events of a message across all its keys.
 *
 * Pure: no I/O, no clock, no globals. Thread rule: none; a stream_key belongs to whoever
 * holds it. */
#ifndef MP_STREAM_STATE_H
#define MP_STREAM_STATE_H

#include <jansson.h>

#include "../common/buf.h"
#include "../common/mp.h"

enum stream_status { STREAM_OPEN = 0, STREAM_CLOSED = 1, STREAM_ERROR = 2, STREAM_CANCELLED = 3 };

#define STREAM_KEY_MAIN "main"
#define STREAM_KEY_FINISH "__finish__" /* the reserved key of stream.finish */

typedef struct stream_key {
    char *name;        /* the event_key (owned) */
    uint8_t status;    /* STREAM_* */
    uint64_t seq;      /* msg_event_seq of its last persisted event; 0 = none yet */
    /* the last persisted event (what /message/eventsync projects); NULL/0 before one */
    char *id, *type, *vis;
    int64_t at;
    char *last_id;     /* the last accepted event of any type, deltas included */
    /* The snapshot: NULL for none. In text mode it is `snap` (an object, or NULL for
     * {"kind":"text"}) with its "text" member replaced by `text`, so text deltas append
     * in amortized O(1). */
    json_t *snap;
    int text_mode;
    mp_buf text;
    uint8_t end_reason;
    char *error;       /* NULL for none */
    int dirty;         /* changed by deltas since its record was last written (stream.c) */
} stream_key;

/* An event as the state sees it (strings NUL-terminated, borrowed). */
typedef struct stream_ev {
    const char *id;
    const char *type;      /* lower-case */
    const char *vis;       /* "", "public", "private" or "restricted" */
    int64_t at;            /* occurred_at, ms */
    const json_t *payload; /* NULL (or JSON null) when absent */
} stream_ev;

void stream_key_init(stream_key *k, const char *name);
void stream_key_free(stream_key *k);
/* dst = a deep copy of src (dst uninitialized). */
void stream_key_copy(stream_key *dst, const stream_key *src);

/* "open", "closed", "error", "cancelled". */
const char *stream_status_name(uint8_t status);
static inline int stream_key_terminal(const stream_key *k) { return k->status != STREAM_OPEN; }
/* 1 for stream.close, stream.error, stream.cancel and stream.finish. */
int stream_type_terminal(const char *type);

/* A stream.delta (kept in memory only; seq unchanged): a text delta
 * {"kind":"text","delta":"..."} appends to the snapshot text (entering text mode), any
 * other payload replaces the snapshot, an absent payload changes nothing. Returns MP_OK,
 * or MP_ETOOBIG (nothing changed) if the text would grow beyond max_text bytes. */
int stream_key_delta(stream_key *k, const stream_ev *e, size_t max_text);
/* Any other event, persisted as msg_event_seq `seq`: stream.snapshot replaces the
 * snapshot (absent or null payload: none); stream.close / .error / .cancel make the key
 * closed / error / cancelled, replace the snapshot with payload.snapshot when given, and
 * take payload.end_reason (close) or payload.error (error); stream.finish closes; other
 * types only advance the metadata. A terminal key no longer changes (callers check). */
void stream_key_apply(stream_key *k, const stream_ev *e, uint64_t seq);
/* stream.finish `e` (msg_event_seq seq) closes this other key if it is still open. */
void stream_key_finish(stream_key *k, const stream_ev *e, uint64_t seq);

/* The snapshot as JSON (a new reference), or NULL for none. */
json_t *stream_key_snapshot(const stream_key *k);
/* WuKongIM's legacy stream_data bytes of a snapshot: the text of a {"kind":"text"}
 * object, the data of a {"kind":"binary"} object, otherwise the snapshot's JSON text.
 * Appends to out. */
void stream_snapshot_bytes(const json_t *snap, mp_buf *out);

/* Stored forms (JSON text, malloc'd; *len gets the length). Decoding takes the key name
 * from the store key; MP_EPROTO for a record that is not one. */
char *stream_key_encode(const stream_key *k, size_t *len);
int stream_key_decode(const char *name, mp_str val, stream_key *out);
/* The message record: the last msg_event_seq given and whether stream.finish arrived. */
char *stream_meta_encode(uint64_t seq, int completed, size_t *len);
int stream_meta_decode(mp_str val, uint64_t *seq, int *completed);

#endif
