/* http_server.c - the HTTP servers: libuv listeners feeding libh2o's HTTP/1.1
 * connections, the per-request middleware of WuKongIM's gin servers (manager token, CORS,
 * OPTIONS preflight, 404), the route tables, and the api_req request/answer helpers.
 *
 * Three sites share one h2o context, each with its own listener and host: the API
 * (httpAddr, httpsAddr), the manager/monitor server (manager.addr: /metrics, /web/, login,
 * and the API's routes behind a JWT or the manager token) and the chat demo (demo.addr).
 * Their connections count together against httpMaxConnections (so HTTP clients cannot take
 * the file descriptors the binary-protocol listeners and the store need); one past it is
 * closed at accept.
 *
 * Why h2o is driven by hand here: h2o 2.2.5 owns each connection, but has no graceful
 * shutdown for HTTP/1 and its h2o_context_dispose() runs a nested uv_run(), which must not
 * happen inside a loop callback. So we track our accepted sockets, stop them by shutting
 * down their read side (h2o then sees EOF and closes them itself, after finishing a
 * response in flight), and release the context's loop handles ourselves once the last
 * connection is gone (ctx_release). HTTP/2 is off: the WuKongIM API is HTTP/1.1 only. */
#include "http_server.h"

#include <h2o.h>
#include <stdarg.h>
#include <stdio.h>
#include <netdb.h>
#include <sys/socket.h>

#include "../common/log.h"
#include "../core/im.h"
#include "../core/worker.h"
#include "../net/tls.h"
#include "../store/store.h"
#include "api_auth.h"
#include "api_req.h"
#include "api_routes.h"
#include "api_static.h"
#include "json_util.h"

#define API_HEADER_LIMIT (16 * 1024)
#define API_BACKLOG 511
#define API_STOP_GRACE_MS 2000 /* how long api_stop waits for answers in flight */
#define API_REFUSE_LOG_MS 1000 /* connections refused at accept are logged at most this often */

typedef struct api_conn {
    uv_tcp_t tcp; /* first member: h2o's close callback hands us the handle */
    struct api_conn *prev, *next;
} api_conn;

struct api_guard;

struct api_req {
    h2o_req_t *req;          /* NULL once h2o disposed the request (connection gone) */
    struct api_guard *guard; /* lives in req->pool; its dispose callback clears req */
    struct api_req *prev, *next; /* g.pending while unanswered */
    int abandoned;           /* answered 503 at shutdown; the handler's answer is dropped */
    api_answer_fn local;     /* api_call(): no h2o request; the answer goes here instead */
    void *local_ctx;
    mp_str local_body;
};

struct api_guard {
    api_req *r;
};

/* Route flags.
 * NO_STORE: the handler neither reads nor writes the store.
 * NO_MSG_DATA: the handler reads nothing that message writes change (messages, channel
 *   seqs, client_msg_nos, conversations, command rows) outside the writer. Its own writes
 *   run in the writer's FIFO after every message acknowledged before them, and their reads
 *   inside the write transaction see those messages.
 * Either way the route needs no read barrier (run_route); every other route that touches
 * the store waits for one, so forgetting the flag costs latency, never correctness.
 * READS: a POST that only reads, allowed to a read-only manager user on the manager port
 * (every GET is). */
enum { ROUTE_NO_STORE = 1, ROUTE_READS = 2, ROUTE_NO_MSG_DATA = 4 };

typedef struct api_route_def {
    const char *method;
    const char *path;
    api_handler_fn fn;
    unsigned flags;
} api_route_def;

static const api_route_def g_routes[] = {
    {"GET", "/health", api_health, ROUTE_NO_STORE},
    {"GET", "/route", api_route, ROUTE_NO_STORE},
    {"POST", "/route/batch", api_route_batch, ROUTE_NO_STORE | ROUTE_READS},
    {"GET", "/migrate/result", api_migrate_result, ROUTE_NO_STORE},
    {"GET", "/varz/setting", api_varz_setting, ROUTE_NO_STORE},
    {"GET", "/varz", api_varz, ROUTE_NO_STORE},
    {"GET", "/connz", api_connz, ROUTE_NO_STORE},
    {"GET", "/docs", api_docs_disabled, ROUTE_NO_STORE},
    {"GET", "/docs/", api_docs_disabled, ROUTE_NO_STORE},
    {"GET", "/docs/openapi.json", api_docs_disabled, ROUTE_NO_STORE},
    {"GET", "/docs/health", api_docs_health, ROUTE_NO_STORE},
    {"POST", "/user/onlinestatus", api_user_onlinestatus, ROUTE_NO_STORE | ROUTE_READS},
    {"POST", "/user/update_plugin_no", api_user_update_plugin_no, ROUTE_NO_MSG_DATA},
    {"POST", "/conn/kick", api_conn_kick, ROUTE_NO_STORE},
    {"POST", "/conn/remove", api_conn_remove, ROUTE_NO_STORE},
    {"POST", "/user/token", api_user_token, ROUTE_NO_MSG_DATA},
    {"POST", "/user/device_quit", api_user_device_quit, ROUTE_NO_MSG_DATA},
    {"GET", "/user/systemuids", api_user_systemuids, ROUTE_NO_MSG_DATA},
    {"POST", "/user/systemuids_add", api_user_systemuids_add, ROUTE_NO_MSG_DATA},
    {"POST", "/user/systemuids_remove", api_user_systemuids_remove, ROUTE_NO_MSG_DATA},
    {"POST", "/user/systemuids_add_to_cache", api_user_systemuids_add_to_cache, ROUTE_NO_MSG_DATA},
    {"POST", "/user/systemuids_remove_from_cache", api_user_systemuids_remove_from_cache, ROUTE_NO_MSG_DATA},
    {"POST", "/channel", api_channel_create, ROUTE_NO_MSG_DATA},
    {"POST", "/channel/info", api_channel_info, ROUTE_NO_MSG_DATA},
    {"POST", "/channel/delete", api_channel_delete, ROUTE_NO_MSG_DATA},
    {"POST", "/channel/subscriber_add", api_subscriber_add, ROUTE_NO_MSG_DATA},
    {"POST", "/channel/subscriber_remove", api_subscriber_remove, ROUTE_NO_MSG_DATA},
    {"POST", "/channel/subscriber_remove_all", api_subscriber_remove_all, ROUTE_NO_MSG_DATA},
    {"POST", "/channel/blacklist_add", api_blacklist_add, ROUTE_NO_MSG_DATA},
    {"POST", "/channel/blacklist_set", api_blacklist_set, ROUTE_NO_MSG_DATA},
    {"POST", "/channel/blacklist_remove", api_blacklist_remove, ROUTE_NO_MSG_DATA},
    {"POST", "/channel/blacklist_remove_all", api_blacklist_remove_all, ROUTE_NO_MSG_DATA},
    {"POST", "/channel/whitelist_add", api_whitelist_add, ROUTE_NO_MSG_DATA},
    {"POST", "/channel/whitelist_set", api_whitelist_set, ROUTE_NO_MSG_DATA},
    {"POST", "/channel/whitelist_remove", api_whitelist_remove, ROUTE_NO_MSG_DATA},
    {"POST", "/channel/whitelist_remove_all", api_whitelist_remove_all, ROUTE_NO_MSG_DATA},
    {"GET", "/channel/whitelist", api_whitelist_get, ROUTE_NO_MSG_DATA},
    {"POST", "/tmpchannel/subscriber_set", api_tmpchannel_subscriber_set, ROUTE_NO_STORE},
    {"POST", "/message/send", api_message_send, ROUTE_NO_MSG_DATA},
    {"POST", "/message/sendbatch", api_message_sendbatch, ROUTE_NO_MSG_DATA},
    {"POST", "/message/event", api_message_event, 0},
    {"POST", "/message/eventsync", api_message_eventsync, 0},
    {"POST", "/message/sync", api_message_sync, 0},
    {"POST", "/message/syncack", api_message_syncack, ROUTE_NO_MSG_DATA},
    {"POST", "/channel/messagesync", api_channel_messagesync, ROUTE_READS},
    {"GET", "/channel/max_message_seq", api_channel_max_message_seq, 0},
    {"GET", "/channel/last_message", api_channel_last_message, 0},
    {"POST", "/messages", api_messages_search, ROUTE_READS},
    {"POST", "/message", api_message_search, ROUTE_READS},
    {"GET", "/message/byclientmsgno", api_message_by_client_msg_no, 0},
    {"POST", "/conversation/sync", api_conversation_sync, ROUTE_READS},
    {"POST", "/conversations/setUnread", api_conversation_set_unread, ROUTE_NO_MSG_DATA},
    {"POST", "/conversations/clearUnread", api_conversation_clear_unread, ROUTE_NO_MSG_DATA},
    {"POST", "/conversations/delete", api_conversation_delete, ROUTE_NO_MSG_DATA},
    {"POST", "/conversation/syncMessages", api_conversation_sync_messages, ROUTE_READS},
    {"POST", "/conversation/channels", api_conversation_channels, ROUTE_READS},
    {"POST", "/conversation/syncByChannels", api_conversation_sync_by_channels, ROUTE_READS},
    {"POST", "/manager/login", api_manager_login, ROUTE_NO_STORE | ROUTE_READS},
};

/* Routes of the manager port only (the API's routes are there too, behind its auth). */
static const api_route_def g_manager_routes[] = {
    {"GET", "/metrics", api_metrics, ROUTE_NO_STORE},
    {"GET", "/logs/recent", api_logs_recent, ROUTE_NO_STORE},
};

enum site { SITE_API, SITE_MANAGER, SITE_DEMO, SITE_COUNT };
enum listener_kind { L_HTTP, L_HTTPS, L_MANAGER, L_DEMO, L_COUNT };

/* The handler of one site's host: on_req learns its site from it. */
typedef struct site_handler {
    h2o_handler_t super;
    int site;
} site_handler;

typedef struct listener {
    uv_tcp_t tcp;
    int open;
    h2o_accept_ctx_t accept; /* the site's host; with the TLS context for httpsAddr */
    h2o_hostconf_t *hosts[2];
} listener;

static struct {
    const mp_config *cfg;
    uv_loop_t *loop;
    h2o_globalconf_t config;
    h2o_context_t ctx;
    h2o_hostconf_t *hosts[SITE_COUNT];
    listener listeners[L_COUNT];
    uv_timer_t grace;  /* shutdown: answers what is still pending after API_STOP_GRACE_MS */
    int config_live;   /* config initialized, not yet disposed */
    int ctx_live;      /* context initialized, not yet released */
    int stopping;
    api_conn *conns;   /* open connections, every listener: httpMaxConnections bounds them */
    size_t nconns;
    /* connections closed at accept over httpMaxConnections, logged in aggregate */
    uint64_t refused;
    mp_log_every refused_log;
    api_req *pending;  /* requests handed to a handler and not answered yet */
} g;

/* ---- CORS (spec §2.4) ----------------------------------------------------------------- */

static void add_cors_headers(h2o_req_t *req) {
    static const struct {
        const char *name, *value;
    } cors[] = {
        {"access-control-allow-origin", "*"},
        {"access-control-allow-credentials", "true"},
        {"access-control-allow-headers",
         "Content-Type, Authorization, Content-Length, Accept-Encoding, X-CSRF-Token, token, accept, origin, "
         "Cache-Control, X-Requested-With, appid, noncestr, sign, timestamp"},
        {"access-control-allow-methods", "POST, OPTIONS, GET, PUT,DELETE,PATCH"},
    };
    for (size_t i = 0; i < MP_ARRAY_LEN(cors); i++)
        h2o_add_header_by_str(&req->pool, &req->res.headers, cors[i].name, strlen(cors[i].name), 0, NULL,
                              cors[i].value, strlen(cors[i].value));
}

static const char *reason_phrase(int status) {
    switch (status) {
    case 200: return "OK";
    case 204: return "No Content";
    case 302: return "Found";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 413: return "Payload Too Large";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 503: return "Service Unavailable";
    default: return "Unknown";
    }
}

/* ---- answering -------------------------------------------------------------------------- */

static void guard_dispose(void *p) {
    struct api_guard *gd = p;
    if (gd->r) gd->r->req = NULL;
}

/* req is NULL for api_call(). */
static api_req *api_req_new(h2o_req_t *req) {
    api_req *r = mp_calloc(1, sizeof *r);
    r->req = req;
    if (req) {
        r->guard = h2o_mem_alloc_shared(&req->pool, sizeof *r->guard, guard_dispose);
        r->guard->r = r;
    }
    r->next = g.pending;
    if (g.pending) g.pending->prev = r;
    g.pending = r;
    return r;
}

static void pending_unlink(api_req *r) {
    if (r->prev) r->prev->next = r->next;
    else g.pending = r->next;
    if (r->next) r->next->prev = r->prev;
    r->prev = r->next = NULL;
}

/* Send status + body (copied) unless the request is gone. */
static void write_answer(api_req *r, int status, const char *ctype, const char *body, size_t len, int cors) {
    if (r->local) {
        api_answer_fn fn = r->local;
        r->local = NULL;
        fn(r->local_ctx, status, len ? body : "", len);
        return;
    }
    h2o_req_t *req = r->req;
    if (!req) return;
    r->guard->r = NULL;
    r->req = NULL;
    req->res.status = status;
    req->res.reason = reason_phrase(status);
    if (cors) add_cors_headers(req);
    if (ctype) h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL, ctype, strlen(ctype));
    req->res.content_length = status == 204 ? SIZE_MAX : len;
    h2o_send_inline(req, len ? body : "", len);
}

/* The handler's answer: sent (unless abandoned or the client is gone), then r is freed. */
static void send_answer(api_req *r, int status, const char *ctype, const char *body, size_t len, int cors) {
    if (!r->abandoned) {
        pending_unlink(r);
        write_answer(r, status, ctype, body, len, cors);
    }
    free(r);
}

/* Shutdown: answer 503 now; r stays allocated for the handler's late answer (which frees
 * it), or leaks if the core never answers during shutdown. */
static void abandon(api_req *r) {
    static const char body[] = "{\"msg\":\"server is shutting down\",\"status\":503}";
    pending_unlink(r);
    r->abandoned = 1;
    write_answer(r, 503, "application/json; charset=utf-8", body, sizeof body - 1, 1);
}

void api_reply_json(api_req *r, int status, json_t *body) {
    size_t len;
    char *s = ju_dump(body, &len);
    json_decref(body);
    send_answer(r, status, "application/json; charset=utf-8", s, len, 1);
    free(s);
}

void api_reply_ok(api_req *r) {
    static const char ok[] = "{\"status\":200}";
    send_answer(r, 200, "application/json; charset=utf-8", ok, sizeof ok - 1, 1);
}

void api_reply_error(api_req *r, int status, const char *fmt, ...) {
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (status == 500) LOG_ERROR("api", "%s", msg); /* a server-side failure: the answer alone would hide it */
    json_t *o = json_object();
    json_object_set_new(o, "msg", ju_string(mp_str_c(msg)));
    json_object_set_new(o, "status", json_integer(status));
    api_reply_json(r, status, o);
}

json_t *api_parse_object(api_req *r) {
    char err[200];
    json_t *root = ju_parse(api_req_body(r), 1, err, sizeof err);
    if (!root) api_reply_error(r, 400, "%s", err);
    return root;
}

json_t *api_parse_uid_array(api_req *r, const char *not_array, mp_str **uids, size_t *n) {
    char err[200];
    *uids = NULL;
    *n = 0;
    json_t *root = ju_parse(api_req_body(r), 0, err, sizeof err);
    if (!root) {
        api_reply_error(r, 400, "%s", err);
        return NULL;
    }
    if (not_array && !json_is_array(root) && !json_is_null(root)) {
        json_decref(root);
        api_reply_error(r, 400, "%s", not_array);
        return NULL;
    }
    ju j;
    ju_init(&j, NULL);
    *n = ju_str_array_value(&j, root, "request body", uids);
    if (j.failed) {
        json_decref(root);
        api_reply_error(r, 400, "%s", j.err);
        return NULL;
    }
    return root;
}

void api_reply_text(api_req *r, int status, const char *content_type, mp_str body) {
    send_answer(r, status, content_type, body.p, body.len, 1);
}

void api_reply_empty(api_req *r, int status) { send_answer(r, status, NULL, NULL, 0, 1); }

/* 302 to location (copied into the request's pool). */
static void reply_redirect(api_req *r, const char *location) {
    if (r->req) {
        h2o_iovec_t loc = h2o_strdup(&r->req->pool, location, SIZE_MAX);
        h2o_add_header(&r->req->pool, &r->req->res.headers, H2O_TOKEN_LOCATION, NULL, loc.base, loc.len);
    }
    send_answer(r, 302, "text/plain", "", 0, 1);
}

/* The manager port's failures: 401/403 {"error":"..."}. */
static void reply_auth_error(api_req *r, int status, const char *why) {
    json_t *o = json_object();
    json_object_set_new(o, "error", json_string(why));
    api_reply_json(r, status, o);
}

/* ---- request accessors ------------------------------------------------------------------ */

mp_str api_req_body(const api_req *r) {
    if (r->local) return r->local_body;
    if (!r->req || !r->req->entity.base) return (mp_str){"", 0};
    return (mp_str){r->req->entity.base, (uint32_t)r->req->entity.len};
}

const mp_config *api_cfg(void) { return g.cfg; }

static int hexval(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* Percent-decode s (with '+' as space, like Go's url.ParseQuery) into out (cap >= s.len). */
static size_t query_unescape(const char *s, size_t n, char *out) {
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '+') {
            out[o++] = ' ';
        } else if (s[i] == '%' && i + 2 < n && hexval(s[i + 1]) >= 0 && hexval(s[i + 2]) >= 0) {
            out[o++] = (char)(hexval(s[i + 1]) * 16 + hexval(s[i + 2]));
            i += 2;
        } else {
            out[o++] = s[i];
        }
    }
    return o;
}

int api_req_query(api_req *r, const char *name, mp_str *out) {
    *out = (mp_str){"", 0};
    h2o_req_t *req = r->req;
    if (!req || req->query_at == SIZE_MAX) return 0;
    const char *p = req->path.base + req->query_at + 1, *end = req->path.base + req->path.len;
    size_t nlen = strlen(name);
    while (p < end) {
        const char *amp = memchr(p, '&', (size_t)(end - p));
        const char *stop = amp ? amp : end;
        const char *eq = memchr(p, '=', (size_t)(stop - p));
        const char *kend = eq ? eq : stop;
        char *key = h2o_mem_alloc_pool(&req->pool, (size_t)(kend - p) + 1);
        size_t klen = query_unescape(p, (size_t)(kend - p), key);
        if (klen == nlen && memcmp(key, name, nlen) == 0) {
            const char *v = eq ? eq + 1 : stop;
            char *val = h2o_mem_alloc_pool(&req->pool, (size_t)(stop - v) + 1);
            size_t vlen = query_unescape(v, (size_t)(stop - v), val);
            val[vlen] = '\0';
            *out = (mp_str){val, (uint32_t)vlen};
            return 1;
        }
        p = stop + 1;
    }
    return 0;
}

uint8_t api_req_query_u8(api_req *r, const char *name) {
    mp_str v;
    if (!api_req_query(r, name, &v) || v.len == 0 || v.len > 3) return 0;
    unsigned n = 0;
    for (uint32_t i = 0; i < v.len; i++) {
        if (v.p[i] < '0' || v.p[i] > '9') return 0;
        n = n * 10 + (unsigned)(v.p[i] - '0');
    }
    return n > 255 ? 0 : (uint8_t)n;
}

/* ---- IM results -------------------------------------------------------------------------- */

const char *api_reason_text(uint8_t reason) {
    static const char *names[] = {
        "unknown error",           "success",
        "auth failed",             "sender is not a subscriber of the channel",
        "sender is in the blacklist", "channel does not exist",
        "user is not on this node", "sender is offline",
        "msg key error",           "payload decode error",
        "forward send packet error", "not allowed to send",
        "connection kicked",       "sender is not in the whitelist",
        "token query error",       "system error",
        "invalid channel id",      "node match error",
        "node does not match",     "channel is banned",
        "header not supported",    "client key is empty",
        "rate limited",            "channel type not supported",
        "channel is disbanded",    "sender is banned from sending",
    };
    return reason < MP_ARRAY_LEN(names) ? names[reason] : "refused";
}

int api_im_ok(const im_result *res) {
    /* REASON_SUCCESS (1); a mutation that leaves reason 0 with status MP_OK also succeeded */
    return res->status == MP_OK && (res->reason == 1 || res->reason == 0);
}

void api_im_done_ok(void *ctx, const im_result *res) {
    api_req *r = ctx;
    if (api_im_ok(res)) {
        api_reply_ok(r);
    } else if (res->status != MP_OK) {
        api_reply_error(r, 400, "%s", res->error ? res->error : mp_strerror(res->status));
    } else {
        api_reply_error(r, 400, "%s", res->error ? res->error : api_reason_text(res->reason));
    }
}

/* ---- middleware and routing --------------------------------------------------------------- */

static size_t header_bytes(const h2o_req_t *req) {
    size_t n = req->input.method.len + req->input.path.len + 12;
    for (size_t i = 0; i != req->headers.size; i++)
        n += req->headers.entries[i].name->len + req->headers.entries[i].value.len + 4;
    return n;
}

/* Manager token (spec §2.3): checked before CORS, so a 401 carries no CORS headers. */
static int token_ok(const h2o_req_t *req) {
    const char *want = g.cfg->manager_token;
    if (!want || ju_blank(mp_str_c(want))) return 1;
    ssize_t i = h2o_find_header_by_str(&req->headers, H2O_STRLIT("token"), -1);
    if (i < 0) return 0;
    const h2o_iovec_t *v = &req->headers.entries[i].value;
    size_t wl = strlen(want);
    if (v->len != wl) return 0;
    unsigned char diff = 0; /* constant time */
    for (size_t k = 0; k < wl; k++) diff |= (unsigned char)(v->base[k] ^ want[k]);
    return diff == 0;
}

static const api_route_def *find_in(const api_route_def *tab, size_t n, h2o_iovec_t method, h2o_iovec_t path);
static void run_route(api_req *r, const api_route_def *rt);

static const api_route_def *find_route(h2o_iovec_t method, h2o_iovec_t path) {
    return find_in(g_routes, MP_ARRAY_LEN(g_routes), method, path);
}

static const api_route_def *find_in(const api_route_def *tab, size_t n, h2o_iovec_t method, h2o_iovec_t path) {
    for (size_t i = 0; i < n; i++)
        if (h2o_memis(path.base, path.len, tab[i].path, strlen(tab[i].path)) &&
            h2o_memis(method.base, method.len, tab[i].method, strlen(tab[i].method)))
            return &tab[i];
    return NULL;
}

static int has_prefix(h2o_iovec_t path, const char *prefix) {
    size_t n = strlen(prefix);
    return path.len >= n && memcmp(path.base, prefix, n) == 0;
}

static int reads_only(const api_route_def *rt) { return strcmp(rt->method, "GET") == 0 || (rt->flags & ROUTE_READS); }

static mp_str header_value(const h2o_req_t *req, const char *name) {
    ssize_t i = h2o_find_header_by_str(&req->headers, name, strlen(name), -1);
    if (i < 0) return (mp_str){"", 0};
    return (mp_str){req->headers.entries[i].value.base, (uint32_t)req->headers.entries[i].value.len};
}

/* The path after prefix (a view into the request). */
static mp_str path_rest(h2o_iovec_t path, const char *prefix) {
    size_t n = strlen(prefix);
    return (mp_str){path.base + n, (uint32_t)(path.len - n)};
}

/* Manager port (spec §4.8): /web*, /metrics* and /manager/login are public; everything else
 * needs the manager token or a JWT, and a read-only user only gets the reading routes. */
static void route_manager(api_req *r, h2o_req_t *req) {
    h2o_iovec_t path = req->path_normalized;
    if (h2o_memis(path.base, path.len, H2O_STRLIT("/")) || h2o_memis(path.base, path.len, H2O_STRLIT("/web"))) {
        reply_redirect(r, "/web/");
        return;
    }
    if (has_prefix(path, "/web/")) {
        api_static_serve(r, "monitor", path_rest(path, "/web/"));
        return;
    }
    const api_route_def *rt = find_in(g_manager_routes, MP_ARRAY_LEN(g_manager_routes), req->method, path);
    if (!rt) rt = find_in(g_routes, MP_ARRAY_LEN(g_routes), req->method, path);
    int is_public = has_prefix(path, "/metrics") || h2o_memis(path.base, path.len, H2O_STRLIT("/manager/login"));
    if (!is_public) {
        mp_str authz = header_value(req, "authorization");
        if (authz.len == 0) api_req_query(r, "Authorization", &authz);
        const char *why = "unauthorized";
        int access = api_auth_check(header_value(req, "token"), authz, &why);
        if (access == API_ACCESS_NONE) {
            reply_auth_error(r, 401, why);
            return;
        }
        if (rt && access == API_ACCESS_READ && !reads_only(rt)) {
            reply_auth_error(r, 403, "this user may only read");
            return;
        }
    }
    if (!rt) {
        api_reply_text(r, 404, "text/plain", MP_STR("404 page not found"));
        return;
    }
    run_route(r, rt);
}

/* Demo port (spec §1): "/" goes to the SPA with the API's URL; /chatdemo serves it. */
static void route_demo(api_req *r, h2o_req_t *req) {
    h2o_iovec_t path = req->path_normalized;
    if (h2o_memis(path.base, path.len, H2O_STRLIT("/"))) {
        char url[320], loc[1024];
        api_url(url, sizeof url);
        h2o_iovec_t enc = h2o_uri_escape(&req->pool, url, strlen(url), NULL);
        snprintf(loc, sizeof loc, "/chatdemo?apiurl=%.*s", (int)enc.len, enc.base);
        reply_redirect(r, loc);
        return;
    }
    if (h2o_memis(path.base, path.len, H2O_STRLIT("/chatdemo"))) {
        api_static_serve(r, "demo", (mp_str){"", 0});
        return;
    }
    if (has_prefix(path, "/chatdemo/")) {
        api_static_serve(r, "demo", path_rest(path, "/chatdemo/"));
        return;
    }
    api_reply_text(r, 404, "text/plain", MP_STR("404 page not found"));
}

static int on_req(h2o_handler_t *self, h2o_req_t *req) {
    int site = ((site_handler *)self)->site;
    api_req *r = api_req_new(req);
    if (header_bytes(req) > API_HEADER_LIMIT) {
        api_reply_error(r, 431, "request headers too large (limit %d bytes)", API_HEADER_LIMIT);
        return 0;
    }
    if (site == SITE_API && !token_ok(req)) {
        send_answer(r, 401, NULL, NULL, 0, 0);
        return 0;
    }
    if (g.stopping) { /* a pipelined request read after api_stop */
        api_reply_error(r, 503, "server is shutting down");
        return 0;
    }
    if (h2o_memis(req->method.base, req->method.len, H2O_STRLIT("OPTIONS"))) {
        api_reply_empty(r, 204);
        return 0;
    }
    if (site == SITE_MANAGER) {
        route_manager(r, req);
        return 0;
    }
    if (site == SITE_DEMO) {
        route_demo(r, req);
        return 0;
    }
    const api_route_def *rt = find_route(req->method, req->path_normalized);
    if (!rt) {
        api_reply_text(r, 404, "text/plain", MP_STR("404 page not found"));
        return 0;
    }
    run_route(r, rt);
    return 0;
}

/* ---- read barrier -------------------------------------------------------------------------
 * With the message log (store.h), a client's SENDACK can come before LMDB has the message;
 * a request that reads (or reads and then writes) the store first waits for a store
 * barrier, which completes once every write submitted before it is committed. So whatever
 * was acknowledged before the request arrived is visible to it, as without the log. */

typedef struct barrier_wait {
    api_req *r;
    api_handler_fn fn;
} barrier_wait;

static void run_after_barrier(worker *w, void *arg) {
    (void)w;
    barrier_wait *b = arg;
    if (b->r->req || b->r->abandoned) b->fn(b->r);
    else send_answer(b->r, 499, NULL, NULL, 0, 0); /* the client has gone: just free it */
    free(b);
}

static void on_barrier(void *arg, int status) {
    (void)status;
    worker_post(0, run_after_barrier, arg); /* the API runs on worker 0 */
}

static void run_route(api_req *r, const api_route_def *rt) {
    store *st = im_store();
    if ((rt->flags & (ROUTE_NO_STORE | ROUTE_NO_MSG_DATA)) || !st || !store_logging(st)) {
        rt->fn(r);
        return;
    }
    barrier_wait *b = mp_malloc(sizeof *b);
    *b = (barrier_wait){r, rt->fn};
    if (store_submit(st, NULL, on_barrier, b) != MP_OK) { /* closing */
        free(b);
        rt->fn(r);
    }
}

int api_call(const mp_config *cfg, const char *method, const char *path, mp_str body, api_answer_fn answer,
             void *ctx) {
    if (!g.cfg) g.cfg = cfg; /* not started: handlers read the configuration through api_cfg() */
    const api_route_def *rt = find_route(h2o_iovec_init(method, strlen(method)), h2o_iovec_init(path, strlen(path)));
    if (!rt) return MP_ENOTFOUND;
    api_req *r = api_req_new(NULL);
    r->local = answer;
    r->local_ctx = ctx;
    r->local_body = body;
    rt->fn(r);
    return MP_OK;
}

/* Errors h2o answers itself before routing (body over the limit -> 413, broken chunked
 * body -> 400, unknown Expect -> 417) are bound to the host's fallback path. This filter
 * gives them CORS headers and the API's JSON error shape instead of h2o's plain text. */
typedef struct err_ostream {
    h2o_ostream_t super;
    h2o_iovec_t json;
    int sent;
} err_ostream;

static void err_do_send(h2o_ostream_t *self, h2o_req_t *req, h2o_iovec_t *bufs, size_t n, h2o_send_state_t state) {
    (void)bufs;
    (void)n;
    err_ostream *o = (err_ostream *)self;
    if (!o->sent && !h2o_send_state_is_in_progress(state)) {
        o->sent = 1;
        h2o_ostream_send_next(self, req, &o->json, 1, state);
    } else {
        h2o_ostream_send_next(self, req, NULL, 0, state);
    }
}

static void err_on_setup_ostream(h2o_filter_t *self, h2o_req_t *req, h2o_ostream_t **slot) {
    (void)self;
    if (req->res.status >= 400) {
        char msg[160];
        if (req->res.status == 413)
            snprintf(msg, sizeof msg, "{\"msg\":\"request body too large (limit %u bytes)\",\"status\":413}",
                     g.cfg->http_body_limit);
        else
            snprintf(msg, sizeof msg, "{\"msg\":\"%s\",\"status\":%d}", req->res.reason, req->res.status);
        memset(&req->res.headers, 0, sizeof req->res.headers);
        add_cors_headers(req);
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL,
                       H2O_STRLIT("application/json; charset=utf-8"));
        err_ostream *o = (err_ostream *)h2o_add_ostream(req, sizeof *o, slot);
        o->super.do_send = err_do_send;
        o->json = h2o_strdup(&req->pool, msg, SIZE_MAX);
        o->sent = 0;
        req->res.content_length = o->json.len;
        slot = &o->super.next;
    }
    h2o_setup_next_ostream(req, slot);
}

/* ---- connections ------------------------------------------------------------------------- */

static void ctx_release(void);

static void conn_unlink(api_conn *c) {
    if (c->prev) c->prev->next = c->next;
    else g.conns = c->next;
    if (c->next) c->next->prev = c->prev;
    g.nconns--;
}

/* h2o closed the socket (uv_close done). */
static void on_conn_closed(uv_handle_t *h) {
    api_conn *c = (api_conn *)h;
    conn_unlink(c);
    free(c);
    if (g.stopping && g.nconns == 0) ctx_release();
}

static void on_unaccepted_closed(uv_handle_t *h) { free(h); }

/* Shutdown grace period over: answer whatever the core has not answered yet, so the
 * connections can close and the loop can drain. */
static void on_grace(uv_timer_t *t) {
    (void)t;
    api_req *r = g.pending;
    while (r) {
        api_req *next = r->next;
        if (r->req) abandon(r);
        r = next;
    }
}

/* Shut the read side: h2o reads EOF and closes the connection, once the response it may
 * be writing has gone out. */
static void conn_stop(api_conn *c) {
    uv_os_fd_t fd;
    if (uv_fileno((uv_handle_t *)&c->tcp, &fd) == 0) shutdown(fd, SHUT_RD);
}

/* The peer's address as text ("?" if unknown), for the refusal log line. */
static void peer_ip(uv_tcp_t *tcp, char *out, size_t cap) {
    struct sockaddr_storage ss;
    int len = sizeof ss;
    if (uv_tcp_getpeername(tcp, (struct sockaddr *)&ss, &len) != 0 || uv_ip_name((struct sockaddr *)&ss, out, cap) != 0)
        snprintf(out, cap, "?");
}

/* Count a connection refused at accept; log the refusals of the last second once. */
static void note_refused(uv_tcp_t *tcp) {
    g.refused++;
    uint64_t n = mp_log_every_due(&g.refused_log, uv_now(g.loop), API_REFUSE_LOG_MS);
    if (!n) return;
    char ip[64];
    peer_ip(tcp, ip, sizeof ip);
    LOG_WARN("api", "refused HTTP connections at accept count=%llu last_ip=%s limit=httpMaxConnections total=%llu "
             "httpMaxConnections=%u",
             (unsigned long long)n, ip, (unsigned long long)g.refused, g.cfg->http_max_connections);
}

static void on_accept(uv_stream_t *server, int status) {
    if (status < 0) {
        LOG_DEBUG("api", "accept failed: %s", uv_strerror(status));
        return;
    }
    api_conn *c = mp_calloc(1, sizeof *c);
    uv_tcp_init(server->loop, &c->tcp);
    if (uv_accept(server, (uv_stream_t *)&c->tcp) != 0) {
        uv_close((uv_handle_t *)&c->tcp, on_unaccepted_closed);
        return;
    }
    /* Over the cap: accept and close at once, so the backlog keeps draining instead of
     * filling with connections nobody will serve. A closed connection frees its slot in
     * on_conn_closed. */
    if (g.nconns >= g.cfg->http_max_connections) {
        note_refused(&c->tcp);
        uv_close((uv_handle_t *)&c->tcp, on_unaccepted_closed);
        return;
    }
    uv_tcp_nodelay(&c->tcp, 1);
    c->next = g.conns;
    if (g.conns) g.conns->prev = c;
    g.conns = c;
    g.nconns++;
    h2o_socket_t *sock = h2o_uv_socket_create((uv_stream_t *)&c->tcp, on_conn_closed);
    h2o_accept(&((listener *)server)->accept, sock); /* tcp is the first member of listener */
}

/* ---- lifecycle --------------------------------------------------------------------------- */

/* h2o_context_dispose() minus its nested uv_run(): closes the context's timer and async
 * handles (freed by the loop afterwards) and frees what it allocated. Matches h2o 2.2.5. */
static void ctx_release(void) {
    if (!g.ctx_live) return;
    g.ctx_live = 0;
    uv_close((uv_handle_t *)&g.grace, NULL);
    SSL_CTX_free(g.listeners[L_HTTPS].accept.ssl_ctx); /* our reference; NULL without httpsAddr */
    g.listeners[L_HTTPS].accept.ssl_ctx = NULL;
    h2o_context_t *ctx = &g.ctx;
    for (size_t i = 0; g.config.hosts[i] != NULL; i++) {
        h2o_hostconf_t *host = g.config.hosts[i];
        for (size_t j = 0; j != host->paths.size; j++) h2o_context_dispose_pathconf_context(ctx, host->paths.entries + j);
        h2o_context_dispose_pathconf_context(ctx, &host->fallback_path);
    }
    free(ctx->_pathconfs_inited.entries);
    free(ctx->_module_configs);
    h2o_timeout_dispose(ctx->loop, &ctx->zero_timeout);
    h2o_timeout_dispose(ctx->loop, &ctx->one_sec_timeout);
    h2o_timeout_dispose(ctx->loop, &ctx->hundred_ms_timeout);
    h2o_timeout_dispose(ctx->loop, &ctx->handshake_timeout);
    h2o_timeout_dispose(ctx->loop, &ctx->http1.req_timeout);
    h2o_timeout_dispose(ctx->loop, &ctx->http2.idle_timeout);
    h2o_timeout_dispose(ctx->loop, &ctx->http2.graceful_shutdown_timeout);
    h2o_timeout_dispose(ctx->loop, &ctx->proxy.io_timeout);
    h2o_filecache_destroy(ctx->filecache);
    ctx->filecache = NULL;
    for (size_t i = 0; i != ctx->storage.size; i++)
        if (ctx->storage.entries[i].dispose) ctx->storage.entries[i].dispose(ctx->storage.entries[i].data);
    free(ctx->storage.entries);
    h2o_multithread_unregister_receiver(ctx->queue, &ctx->receivers.hostinfo_getaddr);
    h2o_multithread_destroy_queue(ctx->queue);
    if (ctx->_timestamp_cache.value != NULL) h2o_mem_release_shared(ctx->_timestamp_cache.value);
    if (g.config_live) {
        g.config_live = 0;
        h2o_config_dispose(&g.config);
    }
}

static int bind_listener(listener *l, int site, const char *addr) {
    char host[256];
    int port = 0;
    if (config_parse_hostport(addr, host, sizeof host, &port) != MP_OK || port <= 0 || port > 65535) {
        LOG_ERROR("api", "invalid listener address addr=\"%s\"", addr);
        return MP_EINVAL;
    }
    const char *h = host[0] ? host : "0.0.0.0";
    char service[8];
    snprintf(service, sizeof service, "%d", port);
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
    struct addrinfo *ai = NULL;
    int gai = getaddrinfo(h, service, &hints, &ai); /* start-up only: a blocking lookup is fine */
    if (gai != 0 || !ai) {
        LOG_ERROR("api", "cannot resolve host host=\"%s\" err=\"%s\"", h, gai_strerror(gai));
        return MP_EINVAL;
    }
    l->hosts[0] = g.hosts[site];
    l->hosts[1] = NULL;
    l->accept.ctx = &g.ctx;
    l->accept.hosts = l->hosts;
    uv_tcp_init(g.loop, &l->tcp);
    l->open = 1;
    int rc = uv_tcp_bind(&l->tcp, ai->ai_addr, 0);
    freeaddrinfo(ai);
    if (rc == 0) rc = uv_listen((uv_stream_t *)&l->tcp, API_BACKLOG, on_accept);
    if (rc != 0) {
        LOG_ERROR("api", "cannot listen addr=%s err=\"%s\"", addr, uv_strerror(rc));
        return MP_EIO;
    }
    return MP_OK;
}

/* One h2o host per site, each with the request handler and the error-body filter. */
static void register_site(int site, const char *name) {
    h2o_hostconf_t *host = h2o_config_register_host(&g.config, h2o_iovec_init(name, strlen(name)), 65535);
    h2o_pathconf_t *path = h2o_config_register_path(host, "/", 0);
    site_handler *handler = (site_handler *)h2o_create_handler(path, sizeof *handler);
    handler->super.on_req = on_req;
    handler->site = site;
    h2o_filter_t *filter = h2o_create_filter(&host->fallback_path, sizeof *filter);
    filter->on_setup_ostream = err_on_setup_ostream;
    g.hosts[site] = host;
}

static int start_listeners(const mp_config *cfg) {
    int rc = bind_listener(&g.listeners[L_HTTP], SITE_API, cfg->http_addr);
    if (rc == MP_OK && cfg->https_addr[0]) {
        g.listeners[L_HTTPS].accept.ssl_ctx = tls_ctx_acquire();
        rc = bind_listener(&g.listeners[L_HTTPS], SITE_API, cfg->https_addr);
    }
    if (rc == MP_OK && cfg->manager_on) rc = bind_listener(&g.listeners[L_MANAGER], SITE_MANAGER, cfg->manager_addr);
    if (rc == MP_OK && cfg->demo_on) rc = bind_listener(&g.listeners[L_DEMO], SITE_DEMO, cfg->demo_addr);
    return rc;
}

int api_start(uv_loop_t *loop, const mp_config *cfg) {
    MP_ASSERT(!g.config_live && !g.ctx_live);
    g.cfg = cfg;
    g.loop = loop;
    g.stopping = 0;
    char err[256];
    if (api_auth_init(cfg, err, sizeof err) != MP_OK) {
        LOG_ERROR("api", "manager auth: %s", err);
        return MP_EIO;
    }
    api_static_init(cfg);
    api_metrics_init();

    h2o_config_init(&g.config);
    g.config_live = 1;
    g.config.server_name = h2o_iovec_init(H2O_STRLIT("magpie"));
    g.config.max_request_entity_size = cfg->http_body_limit;
    g.config.http1.upgrade_to_http2 = 0;
    /* h2o 2.2.5's HTTP/1 request timeout is a deadline, not an inactivity timer: it starts at
     * accept and after each answer and stops once the request's body is read, so it closes
     * idle keep-alive connections and clients trickling a request alike. */
    g.config.http1.req_timeout = cfg->http_request_timeout_ms;
    g.config.handshake_timeout = cfg->http_request_timeout_ms;
    register_site(SITE_API, "api");
    register_site(SITE_MANAGER, "manager");
    register_site(SITE_DEMO, "demo");

    h2o_context_init(&g.ctx, loop, &g.config);
    g.ctx_live = 1;
    uv_timer_init(loop, &g.grace);
    uv_unref((uv_handle_t *)&g.grace); /* open connections keep the loop alive, not this */

    int rc = start_listeners(cfg);
    if (rc != MP_OK) {
        api_stop();
        return rc;
    }
    LOG_INFO("api", "HTTP listening http=%s https=%s manager=%s demo=%s", cfg->http_addr,
             cfg->https_addr[0] ? cfg->https_addr : "off", cfg->manager_on ? cfg->manager_addr : "off",
             cfg->demo_on ? cfg->demo_addr : "off");
    return MP_OK;
}

void api_tls_reload(void) {
    h2o_accept_ctx_t *a = &g.listeners[L_HTTPS].accept;
    if (!a->ssl_ctx) return;
    SSL_CTX *old = a->ssl_ctx;
    a->ssl_ctx = tls_ctx_acquire(); /* h2o's sessions hold their own references */
    SSL_CTX_free(old);
}

void api_conn_stats_get(api_conn_stats *out) {
    out->open = g.nconns;
    out->refused = g.refused;
}

void api_stop(void) {
    int any_open = 0;
    for (int i = 0; i < L_COUNT; i++) any_open |= g.listeners[i].open;
    if (g.stopping || (!g.ctx_live && !any_open)) return;
    g.stopping = 1;
    api_cmd_free(); /* requests read from now on get 503 */
    api_stream_stop();
    api_auth_free();
    for (int i = 0; i < L_COUNT; i++) {
        if (!g.listeners[i].open) continue;
        g.listeners[i].open = 0;
        uv_close((uv_handle_t *)&g.listeners[i].tcp, NULL);
    }
    for (api_conn *c = g.conns; c; c = c->next) conn_stop(c);
    if (g.pending) uv_timer_start(&g.grace, on_grace, API_STOP_GRACE_MS, 0);
    if (g.nconns == 0) ctx_release();
}
