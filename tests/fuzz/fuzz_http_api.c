/* fuzz_http_api.c - the HTTP API's request bodies (JSON), through the real handlers.
 *
 * LLVMFuzzerInitialize starts the server minus the HTTP listener: a store in a fresh
 * temp directory (durability "interval", so no fsync per input), the IM core, one worker
 * (presence, channels, connection table, listeners on ephemeral loopback ports) whose loop
 * runs in a thread of its own. Each input is byte 0 = which POST endpoint (the list below
 * covers every POST route), the rest = the body. It is posted to worker 0, which runs the
 * handler through api_call() (http_server.h) exactly as a routed request, and the target
 * waits for the answer; valid bodies really mutate and query the store.
 *
 * Invariants:
 *   - the handler answers, and within 10 s (a lost request would hang a client);
 *   - it answers once: the per-call state is freed after the answer, so a second answer
 *     is a heap-use-after-free under ASan;
 *   - no 5xx: a body, however malformed, is the client's error (400), never a server
 *     failure such as an over-long LMDB key;
 *   - the answer body is JSON; a 400 is {"msg":<string>,"status":400}. */
#include <ftw.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "api/http_server.h"
#include "channel/channel.h"
#include "common/log.h"
#include "config/config.h"
#include "core/im.h"
#include "core/presence.h"
#include "core/worker.h"
#include "fuzz_util.h"
#include "net/conn.h"
#include "session/session.h"
#include "store/store.h"

static const char *const paths[] = {
    "/message/send", "/message/sendbatch", "/channel/messagesync", "/channel", "/channel/info",
    "/channel/subscriber_add", "/channel/subscriber_remove", "/channel/subscriber_remove_all",
    "/channel/delete", "/channel/blacklist_add", "/channel/blacklist_set", "/channel/blacklist_remove",
    "/channel/blacklist_remove_all", "/channel/whitelist_add", "/channel/whitelist_set",
    "/channel/whitelist_remove", "/channel/whitelist_remove_all", "/tmpchannel/subscriber_set",
    "/conversation/sync", "/conversations/setUnread", "/conversations/clearUnread", "/conversations/delete",
    "/conversation/syncMessages", "/conversation/channels", "/conversation/syncByChannels", "/user/token",
    "/user/device_quit", "/user/systemuids_add", "/user/systemuids_remove", "/user/systemuids_add_to_cache",
    "/user/systemuids_remove_from_cache", "/user/onlinestatus", "/user/update_plugin_no", "/conn/kick",
    "/conn/remove", "/message/event", "/message/eventsync", "/message/sync", "/message/syncack", "/messages",
    "/message", "/route/batch",
};

void im_init(const mp_config *cfg, store *s); /* im.c; declared like this in main.c too */

static mp_config g_cfg;
static char g_dir[256];

typedef struct call {
    const char *path;
    mp_str body;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int answered;
    int status;
    char *resp;
    size_t resp_len;
} call;

static void on_answer(void *ctx, int status, const char *body, size_t len) {
    call *c = ctx;
    pthread_mutex_lock(&c->mu);
    FUZZ_CHECK(!c->answered);
    c->status = status;
    c->resp = mp_strndup(body, len);
    c->resp_len = len;
    c->answered = 1;
    pthread_cond_signal(&c->cv);
    pthread_mutex_unlock(&c->mu);
}

/* On worker 0, the API's thread. */
static void run_call(worker *w, void *arg) {
    (void)w;
    call *c = arg;
    FUZZ_CHECK(api_call(&g_cfg, "POST", c->path, c->body, on_answer, c) == MP_OK);
}

static void *loop_thread(void *arg) {
    (void)arg;
    workers_run();
    return NULL;
}

static int rm_entry(const char *p, const struct stat *sb, int flag, struct FTW *ftw) {
    (void)sb, (void)flag, (void)ftw;
    return remove(p);
}

static void cleanup(void) { nftw(g_dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS); }

static void set(const char *key, const char *value) {
    char err[256];
    if (config_set(&g_cfg, key, value, err, sizeof err) != MP_OK) {
        fprintf(stderr, "fuzz_http_api: %s\n", err);
        abort();
    }
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc, (void)argv;
    const char *tmp = getenv("TMPDIR");
    snprintf(g_dir, sizeof g_dir, "%s/magpie-fuzz-http.XXXXXX", tmp && *tmp ? tmp : "/tmp");
    FUZZ_CHECK(mkdtemp(g_dir) != NULL);
    atexit(cleanup);
    mp_log_set_level(4); /* errors only: rejected bodies are not worth a line each */
    config_defaults(&g_cfg);
    set("dataDir", g_dir);
    set("durability", "interval");
    set("store.mapSize", "4GiB");
    set("addr", "127.0.0.1:0");
    set("wsAddr", "127.0.0.1:0");
    set("httpAddr", "127.0.0.1:0");
    set("workers", "1");

    store_options so = {0};
    so.dir = g_cfg.data_dir;
    so.sync_mode = STORE_SYNC_INTERVAL;
    so.sync_interval_ms = g_cfg.sync_interval_ms;
    so.map_size = g_cfg.store_map_size;
    store *st;
    FUZZ_CHECK(store_open(&so, &st) == MP_OK);
    im_init(&g_cfg, st);
    session_init(&g_cfg);
    FUZZ_CHECK(workers_init(1, g_cfg.queue_capacity) == MP_OK);
    worker *w0 = worker_get(0);
    presence_init(w0);
    chan_init(w0);
    FUZZ_CHECK(net_worker_start(w0, &g_cfg) == MP_OK);
    pthread_t t;
    FUZZ_CHECK(pthread_create(&t, NULL, loop_thread, NULL) == 0);
    pthread_detach(t);
    return 0;
}

static void check_answer(const call *c) {
    FUZZ_CHECK(c->status >= 200 && c->status < 500);
    if (c->resp_len == 0) return;
    json_error_t e;
    json_t *o = json_loadb(c->resp, c->resp_len, JSON_DECODE_ANY | JSON_ALLOW_NUL, &e);
    FUZZ_CHECK(o != NULL);
    if (c->status == 400) {
        FUZZ_CHECK(json_is_object(o) && json_is_string(json_object_get(o, "msg")));
        FUZZ_CHECK(json_integer_value(json_object_get(o, "status")) == 400);
    }
    json_decref(o);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    call *c = mp_calloc(1, sizeof *c);
    c->path = paths[data[0] % MP_ARRAY_LEN(paths)];
    char *body = mp_malloc(size - 1 ? size - 1 : 1); /* exact size: ASan sees any over-read */
    memcpy(body, data + 1, size - 1);
    c->body = (mp_str){body, (uint32_t)(size - 1)};
    pthread_mutex_init(&c->mu, NULL);
    pthread_cond_init(&c->cv, NULL);

    worker_post(0, run_call, c);
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += 10;
    pthread_mutex_lock(&c->mu);
    while (!c->answered)
        if (pthread_cond_timedwait(&c->cv, &c->mu, &deadline) != 0) break;
    int answered = c->answered;
    pthread_mutex_unlock(&c->mu);
    if (!answered) fprintf(stderr, "no answer from %s\n", c->path);
    FUZZ_CHECK(answered);
    if (getenv("FUZZ_HTTP_TRACE")) /* to see which seeds get past validation */
        fprintf(stderr, "%s %d %.*s\n", c->path, c->status, (int)MP_MIN(c->resp_len, 160), c->resp);
    if (c->status >= 500) fprintf(stderr, "%s answered %d: %.*s\n", c->path, c->status, (int)c->resp_len, c->resp);
    check_answer(c);

    pthread_mutex_destroy(&c->mu);
    pthread_cond_destroy(&c->cv);
    free(c->resp);
    free(body);
    free(c);
    return 0;
}
