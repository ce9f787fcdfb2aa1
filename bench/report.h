/* report.h - the figures of one run and their two renderings: a short text report and
 * one JSON line (--json). */
#ifndef BENCH_REPORT_H
#define BENCH_REPORT_H

#include "bench.h"

typedef struct bench_result {
    bstats st;                    /* all threads' counters and histograms merged */
    uint64_t lost;                /* acknowledged, not received by an online receiver */
    uint64_t expected;            /* acknowledged messages owed to receivers online at the end */
    uint64_t unacked;             /* SENDs without SENDACK at the end */
    uint64_t delivered_unacked;   /* received, but the sender has no successful SENDACK */
    uint64_t receivers_lost;      /* receivers disconnected before the end (not counted in lost) */
    double connect_s;             /* time to settle every connect attempt */
    double measured_s;            /* length of the measurement window */
    double drain_s;               /* time spent draining */
    int server_pid;
    uint64_t rss_before_kib, rss_kib, rss_peak_kib, rss_anon_kib; /* 0 = unknown */
    uint64_t rss_anon_before_kib;                   /* RssAnon before connecting */
    uint64_t idle_rss_kib, idle_anon_kib;           /* idle: after all connected + 2 s */
    uint32_t idle_conns;                            /* idle: connections READY at that sample */
    uint64_t part_lost[PART_N];                     /* lost, by part (mixed) */
    double server_cpu_pct, bench_cpu_pct;           /* over the window; 100 = one core; <0 unknown */
    const char *aborted;          /* NULL, or why the run ended early */
} bench_result;

/* Sum of error counters that do not expect anything of a healthy server. */
uint64_t report_errors(const bench_result *r);
/* Print the report to stdout. */
void report_text(const bench_ctx *ctx, const bench_result *r);
/* Print one JSON line to stdout. */
void report_json(const bench_ctx *ctx, const bench_result *r);
/* The workload's name. */
const char *report_workload_name(int wl);

#endif
