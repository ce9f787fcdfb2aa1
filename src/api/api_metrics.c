/* api_metrics.c - GET /metrics (Prometheus text format, on the manager port) and the
 * collectors for the datasource and webhook counters (api_metrics_init registers them).
 *
 * A scrape visits every worker (worker_gather): each one copies its own counter slot
 * (common/metrics.h) and counts its connections by transport and device, so the hot path
 * never shares a counter between threads. The sums, the store's histograms, the queue
 * depths and the process's memory are added on the API thread, then every registered
 * collector appends its families. docs/monitoring.md lists every family. */
#include <stdio.h>
#include <time.h>
#include <unistd.h>

#include "../common/log.h"
#include "../common/metrics.h"
#include "../core/im.h"
#include "../core/presence.h"
#include "../integ/datasource.h"
#include "../integ/webhook.h"
#include "../net/conn.h"
#include "../proto/packet.h"
#include "../store/store.h"
#include "api_routes.h"
#include "http_server.h"

#define CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

enum { TR_TCP, TR_WS, TR_TLS, TR_WSS, TR_COUNT };
static const char *const g_transports[TR_COUNT] = {"tcp", "ws", "tls", "wss"};
enum { DEV_APP, DEV_WEB, DEV_PC, DEV_OTHER, DEV_COUNT };
static const char *const g_devices[DEV_COUNT] = {"app", "web", "pc", "other"};

/* What one worker reports. */
typedef struct worker_part {
    uint64_t conns[TR_COUNT];     /* open connections, every state */
    uint64_t clients[DEV_COUNT];  /* authenticated ones, by device flag */
    uint64_t pkt_in[MT_PKT_TYPES], pkt_out[MT_PKT_TYPES], bytes_in[MT_PKT_TYPES], bytes_out[MT_PKT_TYPES];
    uint64_t sendacks_ok, sendacks_refused, deliveries;
    mt_hist_sum sendack_latency;
} worker_part;

typedef struct scrape {
    worker_gather g; /* first member */
    api_req *r;
    worker_part part[MP_MAX_WORKERS];
    worker_part sum;
    conn_stats cs;
    presence_stats ps;
} scrape;

/* ---- gathering ------------------------------------------------------------------------- */

static void count_conn(conn *c, void *ctx) {
    worker_part *p = ctx;
    int tr = c->tls ? (c->is_ws ? TR_WSS : TR_TLS) : (c->is_ws ? TR_WS : TR_TCP);
    p->conns[tr]++;
    if (c->state == CONN_READY) p->clients[c->device_flag < DEV_OTHER ? c->device_flag : DEV_OTHER]++;
}

static void scrape_collect(worker *w, worker_gather *g) {
    worker_part *p = &((scrape *)g)->part[w->index];
    const mt_worker *m = mt_worker_slot(w->index);
    memcpy(p->pkt_in, m->pkt_in, sizeof p->pkt_in);
    memcpy(p->pkt_out, m->pkt_out, sizeof p->pkt_out);
    memcpy(p->bytes_in, m->bytes_in, sizeof p->bytes_in);
    memcpy(p->bytes_out, m->bytes_out, sizeof p->bytes_out);
    p->sendacks_ok = m->sendacks_ok;
    p->sendacks_refused = m->sendacks_refused;
    p->deliveries = m->deliveries;
    mt_hist_add(&p->sendack_latency, &m->sendack_latency);
    conn_foreach(w, count_conn, p);
}

static void add_part(worker_part *s, const worker_part *p) {
    for (int i = 0; i < TR_COUNT; i++) s->conns[i] += p->conns[i];
    for (int i = 0; i < DEV_COUNT; i++) s->clients[i] += p->clients[i];
    for (int i = 0; i < MT_PKT_TYPES; i++) {
        s->pkt_in[i] += p->pkt_in[i];
        s->pkt_out[i] += p->pkt_out[i];
        s->bytes_in[i] += p->bytes_in[i];
        s->bytes_out[i] += p->bytes_out[i];
    }
    s->sendacks_ok += p->sendacks_ok;
    s->sendacks_refused += p->sendacks_refused;
    s->deliveries += p->deliveries;
    for (int i = 0; i < MT_HIST_MAX; i++) s->sendack_latency.bucket[i] += p->sendack_latency.bucket[i];
    s->sendack_latency.count += p->sendack_latency.count;
    s->sendack_latency.sum += p->sendack_latency.sum;
}

/* ---- writing --------------------------------------------------------------------------- */

static const char *packet_name(int type) {
    static const char *const names[] = {"reserved", "connect", "connack", "send", "sendack", "recv", "recvack",
                                        "ping", "pong", "disconnect", "sub", "suback", "event"};
    return type < (int)MP_ARRAY_LEN(names) ? names[type] : NULL;
}

/* One counter family labelled by packet type (types 1..12). */
static void packet_family(mp_buf *o, const char *name, const char *help, const uint64_t *v) {
    char lab[32];
    mt_family(o, name, "counter", help);
    for (int t = PROTO_CONNECT; t < MT_PKT_TYPES && packet_name(t); t++) {
        snprintf(lab, sizeof lab, "type=\"%s\"", packet_name(t));
        mt_sample(o, name, lab, v[t]);
    }
}

static void labelled(mp_buf *o, const char *name, const char *key, const char *val, uint64_t v) {
    char lab[160], esc[120];
    mt_label_value(val, esc, sizeof esc);
    snprintf(lab, sizeof lab, "%s=\"%s\"", key, esc);
    mt_sample(o, name, lab, v);
}

static void write_connections(mp_buf *o, const scrape *s) {
    mt_family(o, "magpie_connections", "gauge", "Open client connections (every state), by transport.");
    for (int i = 0; i < TR_COUNT; i++) labelled(o, "magpie_connections", "transport", g_transports[i], s->sum.conns[i]);
    mt_family(o, "magpie_clients", "gauge", "Authenticated client connections, by device flag.");
    for (int i = 0; i < DEV_COUNT; i++) labelled(o, "magpie_clients", "device", g_devices[i], s->sum.clients[i]);
    mt_family(o, "magpie_online_users", "gauge", "Users with at least one authenticated connection.");
    mt_sample(o, "magpie_online_users", "", s->ps.users);
    mt_family(o, "magpie_slow_clients_total", "counter", "Connections closed for exceeding outBufferLimit.");
    mt_sample(o, "magpie_slow_clients_total", "", s->cs.slow_clients);
    mt_family(o, "magpie_pending_recvs", "gauge", "RECVs delivered and waiting for the client's RECVACK.");
    mt_sample(o, "magpie_pending_recvs", "", s->cs.pending_recvs);
}

/* Connections closed at accept by a limit, and the HTTP listeners' connections (the HTTP
 * server runs on this thread, so it is read directly). */
static void write_refusals(mp_buf *o, const scrape *s) {
    api_conn_stats hs;
    api_conn_stats_get(&hs);
    mt_family(o, "magpie_connections_refused_total", "counter",
              "Connections closed at accept, by the limit they were over: maxConnections and connRateLimit "
              "(binary protocol listeners), httpMaxConnections (HTTP listeners).");
    labelled(o, "magpie_connections_refused_total", "limit", "maxConnections", s->cs.refused_max);
    labelled(o, "magpie_connections_refused_total", "limit", "connRateLimit", s->cs.refused_rate);
    labelled(o, "magpie_connections_refused_total", "limit", "httpMaxConnections", hs.refused);
    mt_family(o, "magpie_http_connections", "gauge", "Open HTTP connections: API, HTTPS, manager and demo listeners together.");
    mt_sample(o, "magpie_http_connections", "", hs.open);
}

static void write_traffic(mp_buf *o, const scrape *s) {
    packet_family(o, "magpie_packets_received_total", "Protocol packets received from clients, by type.", s->sum.pkt_in);
    packet_family(o, "magpie_packets_sent_total", "Protocol packets written to clients, by type.", s->sum.pkt_out);
    packet_family(o, "magpie_received_bytes_total", "Bytes of the protocol packets received, by type.", s->sum.bytes_in);
    packet_family(o, "magpie_sent_bytes_total", "Bytes of the protocol packets written, by type.", s->sum.bytes_out);
    mt_family(o, "magpie_sends_total", "counter", "Client SENDs answered with a SENDACK, by result (ok = stored).");
    labelled(o, "magpie_sends_total", "result", "ok", s->sum.sendacks_ok);
    labelled(o, "magpie_sends_total", "result", "refused", s->sum.sendacks_refused);
    mt_family(o, "magpie_deliveries_total", "counter", "Messages (RECV and EVENT) written to client connections.");
    mt_sample(o, "magpie_deliveries_total", "", s->sum.deliveries);
    mt_family(o, "magpie_sendack_latency_seconds", "histogram",
              "Time from a client SEND decoded to its SENDACK written (SENDs that reached the channel owner).");
    mt_hist_write(o, "magpie_sendack_latency_seconds", "", &s->sum.sendack_latency, &mt_latency_bounds);
}

static void write_store(mp_buf *o) {
    store_stats st;
    store_get_stats(im_store(), &st);
    mt_hist_sum commit = {0}, batch = {0};
    store_get_histograms(im_store(), &commit, &batch);
    mt_family(o, "magpie_store_commit_seconds", "histogram",
              "Duration of one storage batch transaction, from begin to durable commit.");
    mt_hist_write(o, "magpie_store_commit_seconds", "", &commit, &mt_latency_bounds);
    mt_family(o, "magpie_store_batch_ops", "histogram", "Write operations committed together in one transaction.");
    mt_hist_write(o, "magpie_store_batch_ops", "", &batch, &mt_count_bounds);
    mt_hist_sum flush = {0};
    store_get_log_histogram(im_store(), &flush);
    mt_family(o, "magpie_store_log_flush_seconds", "histogram",
              "One append to the message log with its fdatasync: what a SENDACK waits for (durability=fsync).");
    mt_hist_write(o, "magpie_store_log_flush_seconds", "", &flush, &mt_latency_bounds);
    mt_family(o, "magpie_store_log_records_total", "counter", "Message writes made durable in the message log.");
    mt_sample(o, "magpie_store_log_records_total", "", st.log_records);
    mt_family(o, "magpie_store_log_replayed_total", "counter",
              "Message writes re-applied from the message log at start (the last run ended before LMDB had them).");
    mt_sample(o, "magpie_store_log_replayed_total", "", st.log_replayed);
    mt_family(o, "magpie_store_read_barriers_total", "counter",
              "Store barriers taken: API reads that waited for the writer to commit what was acknowledged before them (message log on).");
    mt_sample(o, "magpie_store_read_barriers_total", "", st.barriers);
    mt_family(o, "magpie_store_ops_total", "counter", "Storage write operations completed.");
    mt_sample(o, "magpie_store_ops_total", "", st.completed);
    mt_family(o, "magpie_store_commit_failures_total", "counter", "Batch transactions that failed (their ops got an error).");
    mt_sample(o, "magpie_store_commit_failures_total", "", st.commit_failures);
    mt_family(o, "magpie_store_map_size_bytes", "gauge", "LMDB map size (the most the database may grow to).");
    mt_sample(o, "magpie_store_map_size_bytes", "", st.map_size);
    mt_family(o, "magpie_queue_depth", "gauge", "Items waiting in a queue between threads: each worker's inbox and the store writer's.");
    char lab[32];
    for (int i = 0; i < workers_count(); i++) {
        snprintf(lab, sizeof lab, "queue=\"worker%d\"", i);
        mt_sample(o, "magpie_queue_depth", lab, worker_inbox_depth(i));
    }
    mt_sample(o, "magpie_queue_depth", "queue=\"store\"", st.queued);
}

/* kB value of a "Name:   123 kB" line of /proc/self/status, in bytes; 0 if absent. */
static uint64_t status_kb(const char *text, const char *name) {
    const char *p = strstr(text, name);
    return p ? strtoull(p + strlen(name), NULL, 10) * 1024 : 0;
}

static void write_process(mp_buf *o) {
    char text[4096] = "";
    FILE *f = fopen("/proc/self/status", "r");
    if (f) {
        size_t n = fread(text, 1, sizeof text - 1, f);
        text[n] = '\0';
        fclose(f);
    }
    mt_family(o, "magpie_memory_rss_bytes", "gauge", "Resident memory of the process.");
    mt_sample(o, "magpie_memory_rss_bytes", "", status_kb(text, "VmRSS:"));
    mt_family(o, "magpie_memory_anon_bytes", "gauge", "Resident anonymous memory (heap, stacks): what the server itself allocated.");
    mt_sample(o, "magpie_memory_anon_bytes", "", status_kb(text, "RssAnon:"));
    mt_family(o, "magpie_memory_file_bytes", "gauge", "Resident file-backed memory (mostly LMDB's map pages).");
    mt_sample(o, "magpie_memory_file_bytes", "", status_kb(text, "RssFile:"));
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    mt_family(o, "magpie_cpu_seconds_total", "counter", "CPU time used by the process (user + system).");
    mt_sample_f(o, "magpie_cpu_seconds_total", "", (double)ts.tv_sec + (double)ts.tv_nsec / 1e9);
    uint64_t lines[5];
    mp_log_counts(lines);
    static const char *const levels[] = {"", "debug", "info", "warn", "error"};
    mt_family(o, "magpie_log_lines_total", "counter", "Log lines written, by level (warn and error: GET /logs/recent).");
    for (int i = MP_LOG_DEBUG; i <= MP_LOG_ERROR; i++) labelled(o, "magpie_log_lines_total", "level", levels[i], lines[i]);
    mt_family(o, "magpie_build_info", "gauge", "Always 1; the version is a label.");
    mt_sample(o, "magpie_build_info", "version=\"" MAGPIE_VERSION "\"", 1);
}

static void scrape_reply(scrape *s) {
    mp_buf o = MP_BUF_INIT;
    mp_buf_reserve(&o, 16384);
    write_connections(&o, s);
    write_refusals(&o, s);
    write_traffic(&o, s);
    write_store(&o);
    write_process(&o);
    mt_collect(&o);
    api_reply_text(s->r, 200, CONTENT_TYPE, (mp_str){(const char *)o.data, (uint32_t)o.len});
    mp_buf_free(&o);
    free(s);
}

static void scrape_presence_done(void *ctx, const presence_stats *ps) {
    scrape *s = ctx;
    s->ps = *ps;
    scrape_reply(s);
}

static void scrape_conn_stats_done(void *ctx, const conn_stats *cs) {
    scrape *s = ctx;
    s->cs = *cs;
    presence_stats_gather(scrape_presence_done, s);
}

static void scrape_finish(worker_gather *g) {
    scrape *s = (scrape *)g;
    for (int i = 0; i < workers_count(); i++) add_part(&s->sum, &s->part[i]);
    conn_stats_gather(scrape_conn_stats_done, s);
}

void api_metrics(api_req *r) {
    scrape *s = mp_calloc(1, sizeof *s);
    s->r = r;
    s->g.collect = scrape_collect;
    s->g.finish = scrape_finish;
    worker_gather_start(&s->g);
}

/* ---- collectors of other modules ----------------------------------------------------------- */

static void datasource_collect(mp_buf *o, void *ctx) {
    (void)ctx;
    ds_stats d;
    ds_stats_get(&d);
    char lab[96];
    mt_family(o, "magpie_datasource_requests_total", "counter", "Datasource requests, by command and result.");
    for (int c = 0; c < DS_CMD_COUNT; c++) {
        snprintf(lab, sizeof lab, "cmd=\"%s\",result=\"ok\"", ds_cmd_name(c));
        mt_sample(o, "magpie_datasource_requests_total", lab, d.ok[c]);
        snprintf(lab, sizeof lab, "cmd=\"%s\",result=\"failed\"", ds_cmd_name(c));
        mt_sample(o, "magpie_datasource_requests_total", lab, d.failed[c]);
    }
    mt_family(o, "magpie_datasource_cache_total", "counter", "Datasource answers looked up in the cache, by result.");
    labelled(o, "magpie_datasource_cache_total", "result", "hit", d.cache_hits);
    labelled(o, "magpie_datasource_cache_total", "result", "miss", d.cache_misses);
    mt_family(o, "magpie_datasource_outcomes_total", "counter",
              "Sends and events held or decided by the datasource's state: parked behind an answer, refused "
              "(too many parked), unavailable (denied while down), fallback (stored data used while down).");
    labelled(o, "magpie_datasource_outcomes_total", "outcome", "parked", d.parked);
    labelled(o, "magpie_datasource_outcomes_total", "outcome", "refused", d.refused_full);
    labelled(o, "magpie_datasource_outcomes_total", "outcome", "unavailable", d.unavailable);
    labelled(o, "magpie_datasource_outcomes_total", "outcome", "fallback", d.fallbacks);
    mt_family(o, "magpie_datasource_outages_total", "counter", "Times the datasource went from answering to down.");
    mt_sample(o, "magpie_datasource_outages_total", "", d.outages);
}

static void webhook_collect(mp_buf *o, void *ctx) {
    (void)ctx;
    webhook_stats w;
    webhook_stats_get(&w);
    char lab[96];
    static const char *const results[] = {"ok", "failed", "dropped"};
    mt_family(o, "magpie_webhook_events_total", "counter",
              "Webhook events by result: ok = delivered (HTTP 200), failed = POST attempts that failed "
              "(retried), dropped = events given up.");
    for (int e = 0; e < WEBHOOK_EVENT_COUNT; e++) {
        const webhook_event_stats *s = &w.ev[e];
        const uint64_t v[] = {s->sent, s->failed, s->dropped};
        for (size_t k = 0; k < MP_ARRAY_LEN(results); k++) {
            snprintf(lab, sizeof lab, "event=\"%s\",result=\"%s\"", webhook_event_name(e), results[k]);
            mt_sample(o, "magpie_webhook_events_total", lab, v[k]);
        }
    }
    mt_family(o, "magpie_webhook_pending", "gauge", "Webhook events accepted and not yet delivered or dropped.");
    for (int e = 0; e < WEBHOOK_EVENT_COUNT; e++)
        labelled(o, "magpie_webhook_pending", "event", webhook_event_name(e), w.ev[e].pending);
}

void api_metrics_init(void) {
    static int done;
    if (done) return;
    done = 1;
    mt_register(datasource_collect, NULL);
    mt_register(webhook_collect, NULL);
}
