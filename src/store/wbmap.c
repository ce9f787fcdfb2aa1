/* wbmap.c - the write-back map (wbmap.h): open addressing over entry pointers, entries
 * carved from an arena of chunks that a clear rewinds instead of freeing. */
#include "wbmap.h"

#include <stdlib.h>
#include <string.h>

#include "../common/map.h"
#include "../common/mp.h"

#define CHUNK (64u << 10)
#define MIN_SLOTS 256
#define MIN_VCAP 40 /* room for a conversation row, so rewriting one reuses its space */

typedef struct chunk {
    struct chunk *next;
    size_t size, used;
    _Alignas(max_align_t) uint8_t mem[];
} chunk;

struct wbmap {
    wb_entry **slots;
    size_t nslots, count, dirty;
    chunk *first, *cur; /* chunks in a list; cur is the one being filled */
    wb_entry **sorted;  /* scratch for wbmap_flush */
    size_t sorted_cap;
};

static void *arena_alloc(wbmap *m, size_t n) {
    n = (n + 15) & ~(size_t)15;
    for (;;) {
        chunk *c = m->cur;
        if (c && c->size - c->used >= n) {
            void *p = c->mem + c->used;
            c->used += n;
            return p;
        }
        if (c && c->next) { /* a chunk kept from an earlier batch */
            m->cur = c->next;
            m->cur->used = 0;
            continue;
        }
        size_t size = n > CHUNK ? n : CHUNK;
        chunk *nc = mp_malloc(sizeof *nc + size);
        nc->next = NULL;
        nc->size = size;
        nc->used = 0;
        if (c) c->next = nc;
        else m->first = nc;
        m->cur = nc;
    }
}

wbmap *wbmap_new(void) {
    wbmap *m = mp_calloc(1, sizeof *m);
    m->nslots = MIN_SLOTS;
    m->slots = mp_calloc(m->nslots, sizeof *m->slots);
    return m;
}

void wbmap_free(wbmap *m) {
    if (!m) return;
    for (chunk *c = m->first, *next; c; c = next) {
        next = c->next;
        free(c);
    }
    free(m->slots);
    free(m->sorted);
    free(m);
}

void wbmap_clear(wbmap *m) {
    if (m->count) memset(m->slots, 0, m->nslots * sizeof *m->slots);
    m->count = m->dirty = 0;
    m->cur = m->first;
    if (m->cur) m->cur->used = 0;
}

static uint32_t hash_of(uint8_t tag, const void *key, size_t klen) {
    return (uint32_t)(mp_hash(key, klen) ^ ((uint64_t)tag * 0x9e3779b97f4a7c15ull));
}

static wb_entry **find_slot(const wbmap *m, uint32_t h, uint8_t tag, const void *key, size_t klen) {
    size_t mask = m->nslots - 1;
    for (size_t i = h & mask;; i = (i + 1) & mask) {
        wb_entry *e = m->slots[i];
        if (!e || (e->hash == h && e->tag == tag && e->klen == klen && memcmp(e->key, key, klen) == 0))
            return &m->slots[i];
    }
}

static void grow(wbmap *m) {
    size_t old_n = m->nslots;
    wb_entry **old = m->slots;
    m->nslots = old_n * 2;
    m->slots = mp_calloc(m->nslots, sizeof *m->slots);
    for (size_t i = 0; i < old_n; i++)
        if (old[i]) *find_slot(m, old[i]->hash, old[i]->tag, old[i]->key, old[i]->klen) = old[i];
    free(old);
}

const wb_entry *wbmap_get(const wbmap *m, uint8_t tag, const void *key, size_t klen) {
    return *find_slot(m, hash_of(tag, key, klen), tag, key, klen);
}

static int is_dirty(int state) { return state == WB_PUT || state == WB_DEL; }

void wbmap_set(wbmap *m, uint8_t tag, const void *key, size_t klen, int state, const void *val, size_t vlen) {
    if (state == WB_ABSENT || state == WB_DEL) vlen = 0;
    MP_ASSERT(klen <= UINT16_MAX && vlen <= UINT32_MAX);
    uint32_t h = hash_of(tag, key, klen);
    wb_entry **slot = find_slot(m, h, tag, key, klen);
    wb_entry *e = *slot;
    if (!e) {
        if (2 * (m->count + 1) > m->nslots) {
            grow(m);
            slot = find_slot(m, h, tag, key, klen);
        }
        e = arena_alloc(m, sizeof *e + klen);
        e->hash = h;
        e->klen = (uint16_t)klen;
        e->tag = tag;
        e->state = WB_ABSENT;
        e->vlen = e->vcap = 0;
        e->val = NULL;
        memcpy(e->key, key, klen);
        *slot = e;
        m->count++;
    }
    if (vlen > e->vcap) {
        e->vcap = (uint32_t)(vlen > MIN_VCAP ? vlen : MIN_VCAP);
        e->val = arena_alloc(m, e->vcap);
    }
    if (vlen) memcpy(e->val, val, vlen);
    e->vlen = (uint32_t)vlen;
    m->dirty += is_dirty(state) - is_dirty(e->state);
    e->state = (uint8_t)state;
}

size_t wbmap_dirty(const wbmap *m) { return m->dirty; }

static int cmp_entry(const void *a, const void *b) {
    const wb_entry *x = *(wb_entry *const *)a, *y = *(wb_entry *const *)b;
    if (x->tag != y->tag) return x->tag < y->tag ? -1 : 1;
    size_t n = x->klen < y->klen ? x->klen : y->klen;
    int c = memcmp(x->key, y->key, n);
    if (c) return c;
    return (x->klen > y->klen) - (x->klen < y->klen);
}

int wbmap_flush(wbmap *m, wbmap_write_fn fn, void *ctx) {
    if (!m->dirty) return 0;
    if (m->sorted_cap < m->dirty) {
        free(m->sorted);
        m->sorted_cap = m->dirty * 2;
        m->sorted = mp_malloc(m->sorted_cap * sizeof *m->sorted);
    }
    size_t n = 0;
    for (size_t i = 0; i < m->nslots; i++)
        if (m->slots[i] && is_dirty(m->slots[i]->state)) m->sorted[n++] = m->slots[i];
    MP_ASSERT(n == m->dirty);
    qsort(m->sorted, n, sizeof *m->sorted, cmp_entry);
    for (size_t i = 0; i < n; i++) {
        wb_entry *e = m->sorted[i];
        int rc = fn(ctx, e);
        if (rc) return rc;
        e->state = e->state == WB_PUT ? WB_PRESENT : WB_ABSENT;
        m->dirty--;
    }
    return 0;
}
