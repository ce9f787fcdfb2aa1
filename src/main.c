/* main.c - magpie: load configuration, open the store, start workers, listeners and the
 * HTTP API, run until SIGINT/SIGTERM, then shut down cleanly (the store is flushed). */
#include <signal.h>
#include <stdio.h>
#include <unistd.h>

#include "api/http_server.h"
#include "channel/channel.h"
#include "common/log.h"
#include "common/tsched.h"
#include "config/config.h"
#include "core/im.h"
#include "core/presence.h"
#include "core/sysuid.h"
#include "core/worker.h"
#include "integ/datasource.h"
#include "integ/webhook.h"
#include "integ/httpc.h"
#include "net/tls.h"
#include "net/conn.h"
#include "net/ratelimit.h"
#include "session/session.h"
#include "store/store.h"

void im_init(const mp_config *cfg, store *s); /* im.c */

static uv_signal_t g_sigint, g_sigterm, g_sighup;
static store *g_st;
static int g_net_left;

/* Shutdown runs in phases so nothing in flight is cut off:
 * 1. every worker closes its listeners and connections;
 * 2. a store barrier waits until every write submitted so far is committed (their
 *    SENDACKs and fan-out are posted while the loops still run);
 * 3. a few ping-pong rounds through every worker let cross-worker chains finish;
 * 4. every worker closes its remaining handles and its loop ends. */
static void stop_handles(worker *w, void *arg) {
    (void)arg;
    if (w->index == 0) {
        uv_close((uv_handle_t *)&g_sigint, NULL);
        uv_close((uv_handle_t *)&g_sigterm, NULL);
        uv_close((uv_handle_t *)&g_sighup, NULL);
    }
}

/* After the store drained, work can still be travelling between workers (commit ->
 * user owner -> connection worker). A few rounds of ping-pong through every inbox let
 * those chains finish before the loops stop. */
#define QUIESCE_ROUNDS 4
static int g_quiesce_round, g_quiesce_left;

static void quiesce_round(void);

static void quiesce_pong(worker *w, void *arg) {
    (void)w;
    (void)arg;
    if (--g_quiesce_left > 0) return;
    if (++g_quiesce_round < QUIESCE_ROUNDS) quiesce_round();
    else workers_stop(stop_handles);
}

static void quiesce_ping(worker *w, void *arg) {
    (void)w;
    worker_post(0, quiesce_pong, arg);
}

static void quiesce_round(void) {
    g_quiesce_left = workers_count();
    for (int i = 0; i < workers_count(); i++) worker_post(i, quiesce_ping, NULL);
}

static void on_store_drained_w0(worker *w, void *arg) {
    (void)w;
    (void)arg;
    quiesce_round();
}

static void on_store_drained(void *arg, int status) {
    (void)status;
    worker_post(0, on_store_drained_w0, arg);
}

static void on_net_stopped(worker *w, void *arg) {
    (void)w;
    (void)arg;
    if (--g_net_left == 0) store_submit(g_st, NULL, on_store_drained, NULL);
}

static void stop_net(worker *w, void *arg) {
    (void)arg;
    net_worker_stop(w);
    ds_worker_stop(w);
    webhook_worker_stop(w);
    worker_post(0, on_net_stopped, NULL);
}

/* SIGHUP: reload the TLS certificate and key; connections stay, new handshakes use the
 * new files; a broken file keeps the old ones (docs/tls.md). */
static void on_sighup(uv_signal_t *h, int signum) {
    (void)h;
    (void)signum;
    char err[512];
    if (!tls_enabled()) {
        LOG_INFO("main", "SIGHUP: nothing to reload (no TLS listener)");
        return;
    }
    if (tls_reload(err, sizeof err) != MP_OK) {
        LOG_ERROR("main", "SIGHUP: TLS reload failed, keeping the current certificate: %s", err);
        return;
    }
    api_tls_reload();
    LOG_INFO("main", "SIGHUP: TLS certificate reloaded");
}

/* The shutdown phases above; on worker 0, or before the workers run. */
static void begin_shutdown(void) {
    static int stopping;
    if (stopping) return;
    stopping = 1;
    api_stop();
    g_net_left = workers_count();
    for (int i = 0; i < workers_count(); i++) worker_post(i, stop_net, NULL);
}

static void on_signal(uv_signal_t *h, int signum) {
    (void)h;
    LOG_INFO("main", "shutting down signal=%d", signum);
    begin_shutdown();
}

static int default_workers(void) {
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n < 1 ? 1 : (n > MP_MAX_WORKERS ? MP_MAX_WORKERS : (int)n);
}

int main(int argc, char **argv) {
    mp_config cfg;
    char err[512];
    int rc = config_load(&cfg, argc, argv, err, sizeof err);
    if (rc != MP_OK) config_free(&cfg); /* what the defaults allocated */
    if (rc == 1) return 0;               /* --help / --version */
    if (rc != MP_OK) {
        fprintf(stderr, "magpie: %s\n", err);
        return 2;
    }
    mp_log_set_level(cfg.log_level);
    if (tls_init(&cfg, err, sizeof err) != MP_OK) {
        fprintf(stderr, "magpie: %s\n", err);
        config_free(&cfg);
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    if (httpc_global_init() != MP_OK) return 1; /* before any thread starts */
    tsched_set_latency_slice(cfg.sched_latency_slice_us); /* before the log and worker threads */

    store_options so = {0};
    so.dir = cfg.data_dir;
    so.sync_mode = strcmp(cfg.durability, "interval") == 0 ? STORE_SYNC_INTERVAL : STORE_SYNC_ALWAYS;
    so.sync_interval_ms = cfg.sync_interval_ms;
    so.map_size = cfg.store_map_size;
    so.apply_interval_ms = cfg.store_apply_interval_ms;
    so.no_message_log = !cfg.store_message_log;
    so.replay = chan_replay_record; /* messages the message log has and LMDB not yet (crash) */
    store *st;
    if ((rc = store_open(&so, &st)) != MP_OK) {
        LOG_ERROR("main", "cannot open store err=\"%s\" dataDir=%s", mp_strerror(rc), cfg.data_dir);
        config_free(&cfg);
        return 1;
    }
    g_st = st;
    im_init(&cfg, st);
    ds_init(&cfg);
    session_init(&cfg);

    int nworkers = cfg.workers > 0 ? cfg.workers : default_workers();
    if (workers_init(nworkers, cfg.queue_capacity) != MP_OK) return 1;
    webhook_init(&cfg); /* after workers_init: it may queue saved events for worker 0 */
    for (int i = 0; i < nworkers; i++) {
        worker *w = worker_get(i);
        presence_init(w);
        webhook_worker_start(w);
        chan_init(w);
    }
    worker *w0 = worker_get(0);
    uv_signal_init(&w0->loop, &g_sigint);
    uv_signal_init(&w0->loop, &g_sigterm);
    uv_signal_init(&w0->loop, &g_sighup);

    /* A listener that cannot start (say, a port in use) ends the run through the normal
     * shutdown, so the store is closed and everything is freed as on SIGTERM. */
    int exit_code = 0;
    for (int i = 0; i < nworkers && !exit_code; i++) {
        if (net_worker_start(worker_get(i), &cfg) != MP_OK) {
            LOG_ERROR("main", "cannot start listeners addr=%s wsAddr=%s", cfg.addr, cfg.ws_addr);
            exit_code = 1;
        }
    }
    if (!exit_code && api_start(&w0->loop, &cfg) != MP_OK) {
        LOG_ERROR("main", "cannot start the HTTP API httpAddr=%s", cfg.http_addr);
        exit_code = 1;
    }
    if (exit_code) {
        begin_shutdown();
    } else {
        uv_signal_start(&g_sigint, on_signal, SIGINT);
        uv_signal_start(&g_sigterm, on_signal, SIGTERM);
        uv_signal_start(&g_sighup, on_sighup, SIGHUP);
        LOG_INFO("main", "magpie ready tcp=%s ws=%s http=%s workers=%d dataDir=%s durability=%s tokenAuthOn=%d",
                 cfg.addr, cfg.ws_addr, cfg.http_addr, nworkers, cfg.data_dir, cfg.durability, cfg.token_auth_on);
        if (tls_enabled())
            LOG_INFO("main", "TLS on tls=%s wss=%s https=%s minVersion=%s", cfg.tls_addr[0] ? cfg.tls_addr : "off",
                     cfg.wss_addr[0] ? cfg.wss_addr : "off", cfg.https_addr[0] ? cfg.https_addr : "off",
                     cfg.tls_min_version);
    }
    workers_run();
    workers_destroy_begin(); /* join workers 1.. before the store goes away */
    store_close(st);         /* every submitted write finishes and is synced */
    sysuid_free();
    webhook_free(); /* saves pending msg.notify events; before the messages' workers go */
    for (int i = 0; i < nworkers; i++) {
        presence_free(worker_get(i));
        chan_free(worker_get(i));
        ds_worker_free(worker_get(i));
        net_worker_free(worker_get(i));
        session_worker_free(worker_get(i));
    }
    rl_ip_free();
    workers_destroy();
    LOG_INFO("main", "stopped");
    config_free(&cfg);
    httpc_global_cleanup();
    tls_free();
    return exit_code;
}
