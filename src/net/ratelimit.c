/* ratelimit.c - token buckets and the per-IP connection-rate table.
 *
 * The table has RL_SLOTS entries and never grows. An address hashes to a window of
 * RL_PROBE consecutive slots; a new address takes a free slot of its window, else one whose
 * bucket has refilled completely (an idle address: forgetting it loses nothing), else the
 * least recently used one. Under a flood of more distinct addresses than slots some
 * buckets are forgotten early, which only makes the limit more lenient; maxConnections
 * still bounds the total. */
#include "ratelimit.h"

#include <pthread.h>
#include <string.h>

#include "../common/mp.h"

#define RL_SLOTS 8192 /* power of 2; about 300 KiB */
#define RL_PROBE 8

typedef struct rl_entry {
    uint8_t addr[16];
    uint8_t len; /* 0: free */
    rl_bucket b;
} rl_entry;

static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;
static rl_entry *g_table;

void rl_bucket_fill(rl_bucket *b, uint64_t now_ms, uint32_t burst) {
    b->last_ms = now_ms;
    b->milli = burst * 1000u;
}

static void refill(rl_bucket *b, uint64_t now_ms, uint32_t rate, uint32_t burst) {
    uint64_t cap = (uint64_t)burst * 1000u;
    if (now_ms <= b->last_ms) return;
    uint64_t add = (now_ms - b->last_ms) * rate; /* rate tokens/s = rate thousandths/ms */
    b->milli = (uint32_t)MP_MIN((uint64_t)b->milli + add, cap);
    b->last_ms = now_ms;
}

int rl_take(rl_bucket *b, uint64_t now_ms, uint32_t rate, uint32_t burst) {
    refill(b, now_ms, rate, burst);
    if (b->milli < 1000) return 0;
    b->milli -= 1000;
    return 1;
}

static uint32_t hash_addr(const uint8_t *p, size_t n) {
    uint32_t h = 2166136261u; /* FNV-1a */
    for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * 16777619u;
    return h;
}

static int is_idle(const rl_entry *e, uint64_t now_ms, uint64_t idle_ms) {
    return e->len == 0 || now_ms - e->b.last_ms >= idle_ms;
}

/* The entry of addr, or the slot to give it (free, idle or least recently used). */
static rl_entry *find_slot(const uint8_t *addr, size_t len, uint64_t now_ms, uint32_t rate, uint32_t burst) {
    rl_entry *win[RL_PROBE];
    uint32_t start = hash_addr(addr, len);
    for (uint32_t i = 0; i < RL_PROBE; i++) {
        win[i] = &g_table[(start + i) & (RL_SLOTS - 1)];
        if (win[i]->len == len && memcmp(win[i]->addr, addr, len) == 0) return win[i];
    }
    uint64_t idle_ms = ((uint64_t)burst * 1000u + rate - 1) / rate; /* time to refill fully */
    rl_entry *victim = win[0];
    for (uint32_t i = 0; i < RL_PROBE && !is_idle(victim, now_ms, idle_ms); i++)
        if (is_idle(win[i], now_ms, idle_ms) || win[i]->b.last_ms < victim->b.last_ms) victim = win[i];
    memcpy(victim->addr, addr, len);
    victim->len = (uint8_t)len;
    rl_bucket_fill(&victim->b, now_ms, burst);
    return victim;
}

int rl_ip_allow(const uint8_t *addr, size_t len, uint64_t now_ms, uint32_t rate, uint32_t burst) {
    if (len == 0 || len > 16 || rate == 0) return 1;
    pthread_mutex_lock(&g_mu);
    if (!g_table) g_table = mp_calloc(RL_SLOTS, sizeof *g_table);
    rl_entry *e = find_slot(addr, len, now_ms, rate, burst);
    int ok = rl_take(&e->b, now_ms, rate, burst);
    pthread_mutex_unlock(&g_mu);
    return ok;
}

void rl_ip_free(void) {
    pthread_mutex_lock(&g_mu);
    free(g_table);
    g_table = NULL;
    pthread_mutex_unlock(&g_mu);
}
