/* msg.h - an IM message as it moves through the server: one immutable, reference-counted
 * allocation shared by the channel owner, the store writer and every delivering worker.
 * Thread rule: fields are read-only after msg_new(); refs is atomic. */
#ifndef MP_CORE_MSG_H
#define MP_CORE_MSG_H

#include <stdatomic.h>

#include "../common/mp.h"

/* Channel types, spec §6.4. */
enum {
    CHANNEL_PERSON = 1,
    CHANNEL_GROUP = 2,
    CHANNEL_CUSTOMER_SERVICE = 3,
    CHANNEL_COMMUNITY = 4,
    CHANNEL_COMMUNITY_TOPIC = 5,
    CHANNEL_INFO = 6,
    CHANNEL_DATA = 7,
    CHANNEL_TEMP = 8,
    CHANNEL_LIVE = 9,
    CHANNEL_VISITORS = 10,
    CHANNEL_AGENT = 11,
    CHANNEL_AGENT_GROUP = 12,
};

#define MP_SYSTEM_UID "____system"

/* What a fan-out carries: a message (RECV frames) or a stream event (EVENT frames,
 * spec §5.14; never stored in the message log, never retried). */
enum { MSG_KIND_MESSAGE = 0, MSG_KIND_EVENT = 1 };

/* Message fields. String views; in a struct mp_msg they point into its own data[]. */
typedef struct msg_fields {
    uint8_t kind;          /* MSG_KIND_*; the store only keeps MSG_KIND_MESSAGE */
    int64_t message_id;
    uint64_t seq;          /* 0 for no_persist */
    uint32_t timestamp;    /* server seconds */
    uint32_t expire;
    uint8_t flags;         /* header bits: PROTO_FLAG_* (no_persist, red_dot, sync_once) */
    uint8_t setting;
    uint8_t channel_type;
    mp_str channel_id;     /* STORED id: fake id "a@b" for person channels */
    mp_str from_uid;
    mp_str client_msg_no;
    mp_str topic;
    mp_str payload;        /* plaintext; for an event: the EVENT data (JSON) */
    /* MSG_KIND_EVENT only: the EVENT frame's id, type and timestamp (ms) */
    mp_str event_id;
    mp_str event_type;
    int64_t event_ts;
} msg_fields;

typedef struct mp_msg {
    atomic_int refs;
    msg_fields f;
    char data[];
} mp_msg;

/* Copy fields (strings included) into one new allocation with refs = 1. */
mp_msg *msg_new(const msg_fields *f);
static inline mp_msg *msg_ref(mp_msg *m) { atomic_fetch_add_explicit(&m->refs, 1, memory_order_relaxed); return m; }
/* n references at once: one atomic operation where a fan-out would otherwise do n on a
 * count that other workers update at the same time. */
static inline void msg_ref_n(mp_msg *m, int n) { atomic_fetch_add_explicit(&m->refs, n, memory_order_relaxed); }
void msg_unref(mp_msg *m);
void msg_unref_n(mp_msg *m, int n);

/* Person channel fake id (spec §5.3): the uid with the larger CRC32-IEEE goes first,
 * "A@B"; on a CRC tie `b` goes first. Writes into out (cap >= a.len + b.len + 2),
 * returns length. */
uint32_t msg_person_fake_id(mp_str a, mp_str b, char *out);
/* For a stored person id "x@y" and a viewer uid, return the other uid (the peer). */
mp_str msg_person_peer(mp_str fake_id, mp_str viewer);

#endif
