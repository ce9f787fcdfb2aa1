/* idmap.c - linear probing over (id, value) slots; deletion shifts the following entries
 * back (no tombstones), so lookups stay short however many connections come and go. */
#include "idmap.h"

typedef struct slot {
    uint64_t id; /* 0 = empty */
    void *val;
} slot;

struct idmap {
    slot *slots;
    size_t cap; /* power of two */
    size_t count;
};

/* Fibonacci hashing: ids are sequence numbers with a worker index in the low bits. */
static size_t home(const idmap *m, uint64_t id) { return (size_t)((id * 0x9E3779B97F4A7C15ull) >> 32) & (m->cap - 1); }

idmap *idmap_new(void) {
    idmap *m = mp_calloc(1, sizeof *m);
    m->cap = 16;
    m->slots = mp_calloc(m->cap, sizeof(slot));
    return m;
}

void idmap_free(idmap *m) {
    if (!m) return;
    free(m->slots);
    free(m);
}

static slot *find(const idmap *m, uint64_t id) {
    size_t mask = m->cap - 1;
    for (size_t i = home(m, id);; i = (i + 1) & mask) {
        slot *s = &m->slots[i];
        if (s->id == id) return s;
        if (s->id == 0) return NULL;
    }
}

void *idmap_get(const idmap *m, uint64_t id) {
    if (id == 0) return NULL; /* never stored; lookups may come from user input */
    slot *s = find(m, id);
    return s ? s->val : NULL;
}

static void insert_new(idmap *m, uint64_t id, void *val) {
    size_t mask = m->cap - 1;
    size_t i = home(m, id);
    while (m->slots[i].id != 0) i = (i + 1) & mask;
    m->slots[i] = (slot){id, val};
}

static void grow(idmap *m) {
    slot *old = m->slots;
    size_t oldcap = m->cap;
    m->cap *= 2;
    m->slots = mp_calloc(m->cap, sizeof(slot));
    for (size_t i = 0; i < oldcap; i++)
        if (old[i].id) insert_new(m, old[i].id, old[i].val);
    free(old);
}

void *idmap_put(idmap *m, uint64_t id, void *val) {
    MP_ASSERT(id != 0);
    slot *s = find(m, id);
    if (s) {
        void *prev = s->val;
        s->val = val;
        return prev;
    }
    if ((m->count + 1) * 4 > m->cap * 3) grow(m); /* at most 75% full */
    insert_new(m, id, val);
    m->count++;
    return NULL;
}

void *idmap_del(idmap *m, uint64_t id) {
    MP_ASSERT(id != 0);
    slot *s = find(m, id);
    if (!s) return NULL;
    void *val = s->val;
    size_t mask = m->cap - 1;
    size_t hole = (size_t)(s - m->slots);
    /* Backward-shift: move each following entry of the run into the hole if the hole lies
     * between its home slot and where it sits (cyclically), so no probe sequence breaks. */
    for (size_t j = (hole + 1) & mask; m->slots[j].id != 0; j = (j + 1) & mask) {
        size_t h = home(m, m->slots[j].id);
        int movable = hole <= j ? (h <= hole || h > j) : (h <= hole && h > j);
        if (!movable) continue;
        m->slots[hole] = m->slots[j];
        hole = j;
    }
    m->slots[hole] = (slot){0, NULL};
    m->count--;
    return val;
}

size_t idmap_count(const idmap *m) { return m->count; }

void idmap_foreach(const idmap *m, int (*cb)(void *ctx, uint64_t id, void *val), void *ctx) {
    for (size_t i = 0; i < m->cap; i++)
        if (m->slots[i].id && cb(ctx, m->slots[i].id, m->slots[i].val)) return;
}
