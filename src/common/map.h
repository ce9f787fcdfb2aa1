/* map.h - open-addressing hash map from byte-string keys to pointers.
 * The map owns copies of its keys; values are borrowed (the caller owns them).
 * Not thread-safe: each map belongs to one worker. */
#ifndef MP_MAP_H
#define MP_MAP_H

#include "mp.h"

typedef struct mp_map mp_map;

mp_map *map_new(void);
/* Free the map; free_val (may be NULL) is called for every value. */
void map_free(mp_map *m, void (*free_val)(void *));
void *map_get(const mp_map *m, const void *key, size_t klen);
/* Insert or replace; returns the previous value or NULL. */
void *map_put(mp_map *m, const void *key, size_t klen, void *val);
/* Remove; returns the removed value or NULL. */
void *map_del(mp_map *m, const void *key, size_t klen);
size_t map_count(const mp_map *m);
/* Visit every entry; cb returns nonzero to stop. Do not modify the map inside cb. */
void map_foreach(const mp_map *m, int (*cb)(void *ctx, const void *key, size_t klen, void *val), void *ctx);

static inline void *map_get_u64(const mp_map *m, uint64_t k) { return map_get(m, &k, sizeof k); }
static inline void *map_put_u64(mp_map *m, uint64_t k, void *v) { return map_put(m, &k, sizeof k, v); }
static inline void *map_del_u64(mp_map *m, uint64_t k) { return map_del(m, &k, sizeof k); }

uint64_t mp_hash(const void *p, size_t n);

#endif
