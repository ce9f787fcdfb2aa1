/* msg.c - reference-counted messages and person-channel ids. */
#include "msg.h"

#include <zlib.h>

static uint32_t crc32_ieee(mp_str s) { return (uint32_t)crc32(0L, (const Bytef *)s.p, s.len); }

mp_msg *msg_new(const msg_fields *f) {
    size_t n = (size_t)f->channel_id.len + f->from_uid.len + f->client_msg_no.len + f->topic.len + f->payload.len +
               f->event_id.len + f->event_type.len;
    mp_msg *m = mp_malloc(sizeof *m + n);
    atomic_init(&m->refs, 1);
    m->f = *f;
    char *c = m->data;
    m->f.channel_id = mp_str_pack(&c, f->channel_id);
    m->f.from_uid = mp_str_pack(&c, f->from_uid);
    m->f.client_msg_no = mp_str_pack(&c, f->client_msg_no);
    m->f.topic = mp_str_pack(&c, f->topic);
    m->f.payload = mp_str_pack(&c, f->payload);
    m->f.event_id = mp_str_pack(&c, f->event_id);
    m->f.event_type = mp_str_pack(&c, f->event_type);
    return m;
}

void msg_unref(mp_msg *m) { msg_unref_n(m, 1); }

void msg_unref_n(mp_msg *m, int n) {
    if (!m || n <= 0) return;
    if (atomic_fetch_sub_explicit(&m->refs, n, memory_order_acq_rel) == n) free(m);
}

uint32_t msg_person_fake_id(mp_str a, mp_str b, char *out) {
    mp_str first = b, second = a;
    if (crc32_ieee(a) > crc32_ieee(b)) {
        first = a;
        second = b;
    }
    memcpy(out, first.p, first.len);
    out[first.len] = '@';
    memcpy(out + first.len + 1, second.p, second.len);
    return first.len + 1 + second.len;
}

mp_str msg_person_peer(mp_str fake_id, mp_str viewer) {
    const char *at = memchr(fake_id.p, '@', fake_id.len);
    if (!at) return fake_id;
    mp_str left = {fake_id.p, (uint32_t)(at - fake_id.p)};
    mp_str right = {at + 1, (uint32_t)(fake_id.len - left.len - 1)};
    return mp_str_eq(left, viewer) ? right : left;
}
