/* metrics.c - per-worker counter slots, single-writer histograms, the Prometheus text
 * writer and the collector registry (metrics.h). */
#include "metrics.h"

#include <stdio.h>

#define MT_COLLECTORS_MAX 16
#define US 1000ull
#define MS (1000 * US)
#define S (1000 * MS)

const mt_bounds mt_latency_bounds = {
    16,
    {100 * US, 250 * US, 500 * US, 1 * MS, 2500 * US, 5 * MS, 10 * MS, 25 * MS, 50 * MS, 100 * MS, 250 * MS,
     500 * MS, 1 * S, 2500 * MS, 5 * S, 10 * S},
    1e-9,
};

const mt_bounds mt_count_bounds = {
    14,
    {1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192},
    1,
};

static mt_worker g_slots[MT_MAX_WORKERS];

static struct {
    mt_collector_fn fn;
    void *ctx;
} g_collectors[MT_COLLECTORS_MAX];
static size_t g_ncollectors;

/* Single writer: a relaxed load and store compile to plain moves, yet a reader on another
 * thread never sees a torn value. */
static void bump(_Atomic uint64_t *c, uint64_t n) {
    atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + n, memory_order_relaxed);
}

void mt_hist_observe(mt_hist *h, const mt_bounds *b, uint64_t v) {
    for (size_t i = 0; i < b->n; i++) {
        if (v <= b->le[i]) {
            bump(&h->bucket[i], 1);
            break;
        }
    }
    bump(&h->sum, v);
    bump(&h->count, 1); /* last: a reader that sees the count sees its bucket too, nearly */
}

void mt_hist_add(mt_hist_sum *s, const mt_hist *h) {
    for (size_t i = 0; i < MT_HIST_MAX; i++) s->bucket[i] += atomic_load_explicit(&h->bucket[i], memory_order_relaxed);
    s->count += atomic_load_explicit(&h->count, memory_order_relaxed);
    s->sum += atomic_load_explicit(&h->sum, memory_order_relaxed);
}

mt_worker *mt_worker_slot(int index) {
    MP_ASSERT(index >= 0 && index < MT_MAX_WORKERS);
    return &g_slots[index];
}

void mt_reset(void) { memset(g_slots, 0, sizeof g_slots); }

/* ---- exposition text ---- */

static void put(mp_buf *o, const char *s) { mp_buf_append(o, s, strlen(s)); }

void mt_family(mp_buf *o, const char *name, const char *type, const char *help) {
    put(o, "# HELP ");
    put(o, name);
    mp_buf_append_u8(o, ' ');
    put(o, help);
    put(o, "\n# TYPE ");
    put(o, name);
    mp_buf_append_u8(o, ' ');
    put(o, type);
    mp_buf_append_u8(o, '\n');
}

static void sample_head(mp_buf *o, const char *name, const char *labels) {
    put(o, name);
    if (labels && *labels) {
        mp_buf_append_u8(o, '{');
        put(o, labels);
        mp_buf_append_u8(o, '}');
    }
    mp_buf_append_u8(o, ' ');
}

void mt_sample(mp_buf *o, const char *name, const char *labels, uint64_t v) {
    char num[24];
    sample_head(o, name, labels);
    snprintf(num, sizeof num, "%llu\n", (unsigned long long)v);
    put(o, num);
}

void mt_sample_f(mp_buf *o, const char *name, const char *labels, double v) {
    char num[40];
    sample_head(o, name, labels);
    snprintf(num, sizeof num, "%.9g\n", v);
    put(o, num);
}

void mt_hist_write(mp_buf *o, const char *name, const char *labels, const mt_hist_sum *h, const mt_bounds *b) {
    char metric[160], lab[320];
    const char *sep = labels && *labels ? "," : "";
    snprintf(metric, sizeof metric, "%s_bucket", name);
    uint64_t cum = 0;
    for (size_t i = 0; i < b->n; i++) {
        cum += h->bucket[i];
        snprintf(lab, sizeof lab, "%s%sle=\"%.9g\"", labels ? labels : "", sep, (double)b->le[i] * b->scale);
        mt_sample(o, metric, lab, cum);
    }
    snprintf(lab, sizeof lab, "%s%sle=\"+Inf\"", labels ? labels : "", sep);
    /* count is bumped last, so a racing observation can make it lag a bucket: never let
     * +Inf be below the last finite bucket */
    mt_sample(o, metric, lab, h->count > cum ? h->count : cum);
    snprintf(metric, sizeof metric, "%s_sum", name);
    if (b->scale == 1) mt_sample(o, metric, labels, h->sum);
    else mt_sample_f(o, metric, labels, (double)h->sum * b->scale);
    snprintf(metric, sizeof metric, "%s_count", name);
    mt_sample(o, metric, labels, h->count > cum ? h->count : cum);
}

void mt_label_value(const char *v, char *out, size_t cap) {
    size_t n = 0;
    for (; *v && n + 3 < cap; v++) {
        if (*v == '\\' || *v == '"') out[n++] = '\\', out[n++] = *v;
        else if (*v == '\n') out[n++] = '\\', out[n++] = 'n';
        else out[n++] = *v;
    }
    out[n] = '\0';
}

/* ---- collectors ---- */

int mt_register(mt_collector_fn fn, void *ctx) {
    if (g_ncollectors == MT_COLLECTORS_MAX) return MP_ETOOBIG;
    g_collectors[g_ncollectors].fn = fn;
    g_collectors[g_ncollectors].ctx = ctx;
    g_ncollectors++;
    return MP_OK;
}

void mt_collect(mp_buf *o) {
    for (size_t i = 0; i < g_ncollectors; i++) g_collectors[i].fn(o, g_collectors[i].ctx);
}

void mt_unregister_all(void) { g_ncollectors = 0; }
