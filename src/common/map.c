/* map.c - linear-probing hash map with tombstones; grows at 70% load. */
#include "map.h"

typedef struct entry {
    uint64_t hash; /* 0 = empty, 1 = tombstone */
    char *key;
    uint32_t klen;
    void *val;
} entry;

struct mp_map {
    entry *slots;
    size_t cap; /* power of two */
    size_t count;
    size_t used; /* count + tombstones */
};

uint64_t mp_hash(const void *p, size_t n) {
    const uint8_t *s = p;
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) {
        h ^= s[i];
        h *= 1099511628211ull;
    }
    h ^= h >> 29;
    return h < 2 ? h + 2 : h;
}

mp_map *map_new(void) {
    mp_map *m = mp_calloc(1, sizeof *m);
    m->cap = 16;
    m->slots = mp_calloc(m->cap, sizeof(entry));
    return m;
}

void map_free(mp_map *m, void (*free_val)(void *)) {
    if (!m) return;
    for (size_t i = 0; i < m->cap; i++) {
        if (m->slots[i].hash < 2) continue;
        free(m->slots[i].key);
        if (free_val) free_val(m->slots[i].val);
    }
    free(m->slots);
    free(m);
}

static entry *find(const mp_map *m, const void *key, size_t klen, uint64_t h) {
    size_t mask = m->cap - 1;
    for (size_t i = h & mask;; i = (i + 1) & mask) {
        entry *e = &m->slots[i];
        if (e->hash == 0) return NULL;
        if (e->hash == h && e->klen == klen && memcmp(e->key, key, klen) == 0) return e;
    }
}

static void grow(mp_map *m) {
    entry *old = m->slots;
    size_t oldcap = m->cap;
    if (m->count * 2 >= m->cap) m->cap *= 2; /* else: just purge tombstones */
    m->slots = mp_calloc(m->cap, sizeof(entry));
    m->used = m->count;
    size_t mask = m->cap - 1;
    for (size_t i = 0; i < oldcap; i++) {
        if (old[i].hash < 2) continue;
        size_t j = old[i].hash & mask;
        while (m->slots[j].hash != 0) j = (j + 1) & mask;
        m->slots[j] = old[i];
    }
    free(old);
}

void *map_get(const mp_map *m, const void *key, size_t klen) {
    entry *e = find(m, key, klen, mp_hash(key, klen));
    return e ? e->val : NULL;
}

void *map_put(mp_map *m, const void *key, size_t klen, void *val) {
    uint64_t h = mp_hash(key, klen);
    entry *e = find(m, key, klen, h);
    if (e) {
        void *old = e->val;
        e->val = val;
        return old;
    }
    if ((m->used + 1) * 10 >= m->cap * 7) grow(m);
    size_t mask = m->cap - 1;
    size_t i = h & mask;
    while (m->slots[i].hash >= 2) i = (i + 1) & mask;
    if (m->slots[i].hash == 0) m->used++;
    m->slots[i] = (entry){h, mp_strndup(key, klen), (uint32_t)klen, val};
    m->count++;
    return NULL;
}

void *map_del(mp_map *m, const void *key, size_t klen) {
    entry *e = find(m, key, klen, mp_hash(key, klen));
    if (!e) return NULL;
    void *val = e->val;
    free(e->key);
    e->key = NULL;
    e->hash = 1;
    m->count--;
    return val;
}

size_t map_count(const mp_map *m) { return m->count; }

void map_foreach(const mp_map *m, int (*cb)(void *, const void *, size_t, void *), void *ctx) {
    for (size_t i = 0; i < m->cap; i++) {
        if (m->slots[i].hash < 2) continue;
        if (cb(ctx, m->slots[i].key, m->slots[i].klen, m->slots[i].val)) return;
    }
}
