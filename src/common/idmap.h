/* idmap.h - open-addressing hash map from non-zero 64-bit ids to pointers.
 *
 * For the per-worker connection table, looked up once per delivered RECV: keys are stored
 * inline (mp_map copies every key to the heap and hashes it byte by byte), so a lookup is
 * one multiply and, usually, one cache line. Values are borrowed. Not thread-safe: each map
 * belongs to one worker. */
#ifndef MP_IDMAP_H
#define MP_IDMAP_H

#include "mp.h"

typedef struct idmap idmap;

idmap *idmap_new(void);
void idmap_free(idmap *m);
/* The value for id, or NULL (always for 0). */
void *idmap_get(const idmap *m, uint64_t id);
/* Insert or replace (id != 0); returns the previous value or NULL. */
void *idmap_put(idmap *m, uint64_t id, void *val);
/* Remove; returns the removed value or NULL. */
void *idmap_del(idmap *m, uint64_t id);
size_t idmap_count(const idmap *m);
/* Visit every entry; cb returns nonzero to stop. Do not modify the map inside cb. */
void idmap_foreach(const idmap *m, int (*cb)(void *ctx, uint64_t id, void *val), void *ctx);

#endif
