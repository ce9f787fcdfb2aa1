/* metrics.h - counters and histograms behind GET /metrics, and the Prometheus text format
 * (version 0.0.4) they are written in.
 *
 * The hot path shares nothing between threads. Each worker counts into its own slot
 * (mt_worker_slot(index)), which only that worker's thread writes; a scrape reads the slot
 * on the same thread, when it visits every worker (worker_gather), and sums the slots at
 * the end. Histograms use single-writer relaxed atomics (a plain load and store, never a
 * locked instruction), so one that lives outside a worker (the store writer's) can also be
 * read from the scraping thread.
 *
 * Other modules add their own families through collectors registered at start-up
 * (mt_register); every scrape calls them in registration order. */
#ifndef MP_COMMON_METRICS_H
#define MP_COMMON_METRICS_H

#include <stdatomic.h>

#include "buf.h"
#include "mp.h"

#define MT_HIST_MAX 20     /* most finite buckets of a histogram */
#define MT_PKT_TYPES 16    /* protocol packet types are 4 bits */
#define MT_MAX_WORKERS 64  /* = MP_MAX_WORKERS (core/worker.h) */

/* A histogram's finite upper bounds, ascending, in its unit (ns or items); `scale` turns a
 * unit into the exposed one (1e-9 for seconds from ns, 1 for counts). */
typedef struct mt_bounds {
    size_t n;
    uint64_t le[MT_HIST_MAX];
    double scale;
} mt_bounds;

extern const mt_bounds mt_latency_bounds; /* 100us .. 10s, in ns */
extern const mt_bounds mt_count_bounds;   /* 1 .. 8192, powers of two */

/* One writer thread at a time (see the file comment). bucket[i] counts observations in
 * (le[i-1], le[i]]; larger ones count only in count (the +Inf bucket). */
typedef struct mt_hist {
    _Atomic uint64_t bucket[MT_HIST_MAX];
    _Atomic uint64_t count;
    _Atomic uint64_t sum;
} mt_hist;

/* A plain copy, for summing at scrape time. */
typedef struct mt_hist_sum {
    uint64_t bucket[MT_HIST_MAX];
    uint64_t count, sum;
} mt_hist_sum;

/* Record v (writer thread only). */
void mt_hist_observe(mt_hist *h, const mt_bounds *b, uint64_t v);
/* Add h's current values into s (any thread). */
void mt_hist_add(mt_hist_sum *s, const mt_hist *h);

/* A worker's counters. Written and read on that worker's thread only. */
typedef struct mt_worker {
    uint64_t pkt_in[MT_PKT_TYPES], pkt_out[MT_PKT_TYPES];     /* packets by type */
    uint64_t bytes_in[MT_PKT_TYPES], bytes_out[MT_PKT_TYPES]; /* their bytes */
    uint64_t sendacks_ok, sendacks_refused; /* SENDACKs written to clients, by outcome */
    uint64_t deliveries;                    /* RECV and EVENT messages written to clients */
    mt_hist sendack_latency;                /* SEND decoded -> SENDACK written, ns */
} __attribute__((aligned(64))) mt_worker;

/* Worker index's slot (index < MT_MAX_WORKERS). */
mt_worker *mt_worker_slot(int index);
/* Zero every slot (tests; before workers start). */
void mt_reset(void);

/* ---- exposition text ---- */

/* "# HELP name help\n# TYPE name type\n" (type: counter, gauge, histogram). */
void mt_family(mp_buf *o, const char *name, const char *type, const char *help);
/* "name{labels} value\n"; labels is "" or 'k="v",k2="v2"' (values escaped by the caller:
 * mt_label_value). */
void mt_sample(mp_buf *o, const char *name, const char *labels, uint64_t v);
void mt_sample_f(mp_buf *o, const char *name, const char *labels, double v);
/* name_bucket{labels,le=...} cumulative ... +Inf, name_sum, name_count. */
void mt_hist_write(mp_buf *o, const char *name, const char *labels, const mt_hist_sum *h, const mt_bounds *b);
/* Escape a label value (\\, \", \n) into out (cap bytes, always terminated). */
void mt_label_value(const char *v, char *out, size_t cap);

/* ---- collectors ---- */

/* Appends families to o. Runs on the scraping thread (worker 0). */
typedef void (*mt_collector_fn)(mp_buf *o, void *ctx);
/* Register before the server starts serving (not thread-safe); at most 16. Returns MP_OK
 * or MP_ETOOBIG. */
int mt_register(mt_collector_fn fn, void *ctx);
/* Run every registered collector. */
void mt_collect(mp_buf *o);
/* Forget every collector (shutdown, tests). */
void mt_unregister_all(void);

#endif
