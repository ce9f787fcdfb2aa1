/* hist.c - log-linear histogram (see hist.h for the bucket layout). */
#include "hist.h"

#include <math.h>
#include <string.h>

void hist_init(hist *h) {
    memset(h, 0, sizeof *h);
    h->min = UINT64_MAX;
}

static uint32_t bucket_of(uint64_t v) {
    if (v < HIST_SUB) return (uint32_t)v;
    uint32_t e = 63u - (uint32_t)__builtin_clzll(v); /* e >= HIST_SUB_BITS */
    uint32_t sub = (uint32_t)(v >> (e - HIST_SUB_BITS)) & (HIST_SUB - 1);
    return (e - HIST_SUB_BITS + 1) * HIST_SUB + sub;
}

/* Lowest value of bucket i and its width. */
static void bucket_range(uint32_t i, uint64_t *low, uint64_t *width) {
    if (i < HIST_SUB) {
        *low = i;
        *width = 1;
        return;
    }
    uint32_t e = i / HIST_SUB + HIST_SUB_BITS - 1;
    uint64_t sub = i % HIST_SUB;
    *low = (HIST_SUB + sub) << (e - HIST_SUB_BITS);
    *width = 1ull << (e - HIST_SUB_BITS);
}

void hist_record(hist *h, uint64_t v) {
    h->b[bucket_of(v)]++;
    h->count++;
    h->sum += v;
    if (v < h->min) h->min = v;
    if (v > h->max) h->max = v;
}

void hist_merge(hist *dst, const hist *src) {
    for (uint32_t i = 0; i < HIST_BUCKETS; i++) dst->b[i] += src->b[i];
    dst->count += src->count;
    dst->sum += src->sum;
    if (src->min < dst->min) dst->min = src->min;
    if (src->max > dst->max) dst->max = src->max;
}

uint64_t hist_quantile(const hist *h, double q) {
    if (h->count == 0) return 0;
    uint64_t rank = (uint64_t)ceil(q * (double)h->count);
    if (rank < 1) rank = 1;
    if (rank > h->count) rank = h->count;
    uint64_t seen = 0;
    for (uint32_t i = 0; i < HIST_BUCKETS; i++) {
        seen += h->b[i];
        if (seen < rank) continue;
        uint64_t low, width;
        bucket_range(i, &low, &width);
        uint64_t v = low + width / 2;
        if (v < h->min) v = h->min;
        if (v > h->max) v = h->max;
        return v;
    }
    return h->max;
}
