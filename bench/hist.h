/* hist.h - log-linear latency histogram: fixed array, no allocation per sample.
 * Values (nanoseconds) below 32 are exact; above, each power of two is split into 32
 * linear buckets, so a reported percentile is within ~3% of the true value.
 * Not thread-safe: one histogram per load thread, merged after the threads end. */
#ifndef BENCH_HIST_H
#define BENCH_HIST_H

#include <stdint.h>

#define HIST_SUB_BITS 5
#define HIST_SUB (1u << HIST_SUB_BITS)
#define HIST_BUCKETS ((64u - HIST_SUB_BITS + 1u) * HIST_SUB)

typedef struct hist {
    uint64_t count;
    uint64_t sum;
    uint64_t min;
    uint64_t max;
    uint64_t b[HIST_BUCKETS];
} hist;

/* Empty the histogram. */
void hist_init(hist *h);
/* Count one value. */
void hist_record(hist *h, uint64_t v);
/* Add every count of src into dst. */
void hist_merge(hist *dst, const hist *src);
/* Value at quantile q (0 < q <= 1): the midpoint of the bucket holding the ceil(q*count)-th
 * smallest value, clamped to [min, max]. 0 when the histogram is empty. */
uint64_t hist_quantile(const hist *h, double q);

#endif
