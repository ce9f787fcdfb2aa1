/* buf.h - growable byte buffer used by codecs and I/O. The buffer owns data. */
#ifndef MP_BUF_H
#define MP_BUF_H

#include "mp.h"

typedef struct mp_buf {
    uint8_t *data;
    size_t len;
    size_t cap;
} mp_buf;

#define MP_BUF_INIT {NULL, 0, 0}

void mp_buf_init(mp_buf *b);
void mp_buf_free(mp_buf *b);
void mp_buf_reserve(mp_buf *b, size_t extra);          /* ensure cap >= len + extra; data != NULL after */
void mp_buf_append(mp_buf *b, const void *p, size_t n);
void mp_buf_append_u8(mp_buf *b, uint8_t v);
void mp_buf_append_u16be(mp_buf *b, uint16_t v);
void mp_buf_append_u32be(mp_buf *b, uint32_t v);
void mp_buf_append_u64be(mp_buf *b, uint64_t v);
void mp_buf_append_str16(mp_buf *b, const void *p, uint16_t n); /* u16 BE length + bytes */
void mp_buf_consume(mp_buf *b, size_t n);               /* drop n bytes from the front */
static inline void mp_buf_reset(mp_buf *b) { b->len = 0; }

/* Big-endian loads/stores. */
static inline uint16_t mp_load_u16be(const uint8_t *p) { return (uint16_t)((p[0] << 8) | p[1]); }
static inline uint32_t mp_load_u32be(const uint8_t *p) {
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}
static inline uint64_t mp_load_u64be(const uint8_t *p) {
    return ((uint64_t)mp_load_u32be(p) << 32) | mp_load_u32be(p + 4);
}
static inline void mp_store_u16be(uint8_t *p, uint16_t v) { p[0] = (uint8_t)(v >> 8); p[1] = (uint8_t)v; }
static inline void mp_store_u32be(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)(v >> 24); p[1] = (uint8_t)(v >> 16); p[2] = (uint8_t)(v >> 8); p[3] = (uint8_t)v;
}
static inline void mp_store_u64be(uint8_t *p, uint64_t v) {
    mp_store_u32be(p, (uint32_t)(v >> 32)); mp_store_u32be(p + 4, (uint32_t)v);
}

#endif
