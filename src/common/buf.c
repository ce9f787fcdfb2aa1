/* buf.c - growable byte buffer. */
#include "buf.h"

void mp_buf_init(mp_buf *b) { b->data = NULL; b->len = b->cap = 0; }

void mp_buf_free(mp_buf *b) {
    free(b->data);
    mp_buf_init(b);
}

void mp_buf_reserve(mp_buf *b, size_t extra) {
    /* Allocate even for extra == 0: callers compute b->data + b->len right after, and
     * NULL + 0 is undefined behaviour (UBSan: "applying zero offset to null pointer"). */
    if (b->data && b->cap - b->len >= extra) return;
    size_t need = b->len + extra;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < need) cap *= 2;
    b->data = mp_realloc(b->data, cap);
    b->cap = cap;
}

void mp_buf_append(mp_buf *b, const void *p, size_t n) {
    if (n == 0) return;
    mp_buf_reserve(b, n);
    memcpy(b->data + b->len, p, n);
    b->len += n;
}

void mp_buf_append_u8(mp_buf *b, uint8_t v) { mp_buf_append(b, &v, 1); }

void mp_buf_append_u16be(mp_buf *b, uint16_t v) {
    uint8_t t[2];
    mp_store_u16be(t, v);
    mp_buf_append(b, t, 2);
}

void mp_buf_append_u32be(mp_buf *b, uint32_t v) {
    uint8_t t[4];
    mp_store_u32be(t, v);
    mp_buf_append(b, t, 4);
}

void mp_buf_append_u64be(mp_buf *b, uint64_t v) {
    uint8_t t[8];
    mp_store_u64be(t, v);
    mp_buf_append(b, t, 8);
}

void mp_buf_append_str16(mp_buf *b, const void *p, uint16_t n) {
    mp_buf_append_u16be(b, n);
    mp_buf_append(b, p, n);
}

void mp_buf_consume(mp_buf *b, size_t n) {
    MP_ASSERT(n <= b->len);
    if (n == b->len) {
        b->len = 0;
        return;
    }
    memmove(b->data, b->data + n, b->len - n);
    b->len -= n;
}
