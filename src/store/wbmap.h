/* wbmap.h - the write-back map of one batch transaction: rows of small, hot tables read and
 * written many times in a batch (a channel's last seq, a sender's conversation) are kept
 * here and written to LMDB once, in key order, before the commit (store.c).
 *
 * A row is known by a tag (which table) and its key. Its state says what the batch knows:
 *   WB_PRESENT, WB_ABSENT   read from LMDB, unchanged (a negative answer is cached too);
 *   WB_PUT, WB_DEL          written in this batch, not yet in LMDB (dirty).
 * Values and keys are copied in; entries and the pointers they hand out stay valid until
 * wbmap_clear or wbmap_free. Single-threaded (the writer thread). */
#ifndef MP_STORE_WBMAP_H
#define MP_STORE_WBMAP_H

#include <stddef.h>
#include <stdint.h>

enum { WB_PRESENT, WB_ABSENT, WB_PUT, WB_DEL };

typedef struct wb_entry {
    uint32_t hash;
    uint32_t vlen, vcap;
    uint16_t klen;
    uint8_t tag;
    uint8_t state;
    uint8_t *val; /* vlen bytes (nothing for WB_ABSENT / WB_DEL) */
    uint8_t key[];
} wb_entry;

typedef struct wbmap wbmap;

wbmap *wbmap_new(void);
void wbmap_free(wbmap *m);
/* Forget every row (dirty ones too); the memory is kept for the next batch. */
void wbmap_clear(wbmap *m);

/* The row, or NULL when the batch knows nothing of it. */
const wb_entry *wbmap_get(const wbmap *m, uint8_t tag, const void *key, size_t klen);
/* Record what the batch now knows of a row (val ignored for WB_ABSENT and WB_DEL).
 * klen must be below 65536. */
void wbmap_set(wbmap *m, uint8_t tag, const void *key, size_t klen, int state, const void *val, size_t vlen);

/* Rows in state WB_PUT or WB_DEL. */
size_t wbmap_dirty(const wbmap *m);
/* Call fn for every dirty row, sorted by tag then key (bytewise, a shorter key first when
 * it is a prefix: LMDB's default order), and mark each clean once fn returned 0. Stops at
 * the first non-zero return and returns it; 0 when all were written. */
typedef int (*wbmap_write_fn)(void *ctx, const wb_entry *e);
int wbmap_flush(wbmap *m, wbmap_write_fn fn, void *ctx);

#endif
