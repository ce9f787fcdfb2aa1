/* api_system.c - /health, /route, /route/batch, /docs* (spec §4.1) and two static status
 * endpoints WuKongIM tools poll (/migrate/result, /varz/setting). */
#include <stdio.h>

#include "api_routes.h"
#include "json_util.h"

void api_health(api_req *r) {
    json_t *o = json_object();
    json_object_set_new(o, "status", json_string("ok"));
    api_reply_json(r, 200, o);
}

/* The address clients should use for a listener: "ip:port", where ip is external.ip, or
 * the listener's own host unless that is a wildcard (then 127.0.0.1). */
static void derive_addr(const mp_config *cfg, const char *listen_addr, const char *scheme, char *out, size_t cap) {
    char host[256];
    int port = 0;
    out[0] = '\0';
    if (!listen_addr || config_parse_hostport(listen_addr, host, sizeof host, &port) != MP_OK) return;
    const char *ip = cfg->external_ip && cfg->external_ip[0] ? cfg->external_ip : host;
    if (!ip[0] || strcmp(ip, "0.0.0.0") == 0 || strcmp(ip, "::") == 0) ip = "127.0.0.1";
    int v6 = strchr(ip, ':') != NULL;
    snprintf(out, cap, "%s%s%s%s:%d", scheme, v6 ? "[" : "", ip, v6 ? "]" : "", port);
}

static const char *or_empty(const char *s) { return s ? s : ""; }

void api_client_addrs(int intranet, json_t *o) {
    const mp_config *cfg = api_cfg();
    char tcp[300], ws[300];
    if (intranet) {
        json_object_set_new(o, "tcp_addr", ju_string(mp_str_c(or_empty(cfg->intranet_tcp_addr))));
        json_object_set_new(o, "ws_addr", json_string(""));
        json_object_set_new(o, "wss_addr", json_string(""));
        return;
    }
    if (cfg->external_tcp_addr && cfg->external_tcp_addr[0]) snprintf(tcp, sizeof tcp, "%s", cfg->external_tcp_addr);
    else derive_addr(cfg, cfg->addr, "", tcp, sizeof tcp);
    if (cfg->external_ws_addr && cfg->external_ws_addr[0]) snprintf(ws, sizeof ws, "%s", cfg->external_ws_addr);
    else derive_addr(cfg, cfg->ws_addr, "ws://", ws, sizeof ws);
    json_object_set_new(o, "tcp_addr", ju_string(mp_str_c(tcp)));
    json_object_set_new(o, "ws_addr", ju_string(mp_str_c(ws)));
    char wss[300] = "";
    if (cfg->external_wss_addr && cfg->external_wss_addr[0]) snprintf(wss, sizeof wss, "%s", cfg->external_wss_addr);
    else if (cfg->wss_addr && cfg->wss_addr[0]) derive_addr(cfg, cfg->wss_addr, "wss://", wss, sizeof wss);
    json_object_set_new(o, "wss_addr", ju_string(mp_str_c(wss)));
}

void api_url(char *out, size_t cap) {
    const mp_config *cfg = api_cfg();
    if (cfg->external_api_url && cfg->external_api_url[0]) snprintf(out, cap, "%s", cfg->external_api_url);
    else derive_addr(cfg, cfg->http_addr, "http://", out, cap);
}

void api_manager_addr(char *out, size_t cap) {
    const mp_config *cfg = api_cfg();
    out[0] = '\0';
    if (!cfg->manager_on) return;
    if (cfg->external_manager_addr && cfg->external_manager_addr[0]) snprintf(out, cap, "%s", cfg->external_manager_addr);
    else derive_addr(cfg, cfg->manager_addr, "", out, cap);
}

/* Fill tcp/ws/wss addresses as /route answers them (intranet: only tcp_addr). */
static void route_addrs(api_req *r, json_t *o) {
    mp_str q;
    api_client_addrs(api_req_query(r, "intranet", &q) && q.len == 1 && q.p[0] == '1', o);
}

void api_route(api_req *r) {
    json_t *o = json_object();
    route_addrs(r, o);
    api_reply_json(r, 200, o);
}

/* Body: a JSON array of uids; answer: one element carrying all of them. */
void api_route_batch(api_req *r) {
    mp_str *uids;
    size_t n;
    json_t *root = api_parse_uid_array(r, "request body must be a JSON array of uids", &uids, &n);
    if (!root) return;
    json_t *e = json_object();
    route_addrs(r, e);
    json_t *list = json_is_null(root) ? json_null() : json_array();
    for (size_t i = 0; i < n; i++) json_array_append_new(list, ju_string(uids[i]));
    json_object_set_new(e, "uids", list);
    free(uids);
    json_decref(root);
    json_t *arr = json_array();
    json_array_append_new(arr, e);
    api_reply_json(r, 200, arr);
}

/* Magpie has no v1 migration; this is what WuKongIM answers when none is configured. */
void api_migrate_result(api_req *r) {
    json_t *o = json_object();
    json_object_set_new(o, "status", json_string("running"));
    json_object_set_new(o, "step", json_string(""));
    json_object_set_new(o, "last_err", json_null());
    json_object_set_new(o, "try_count", json_integer(0));
    api_reply_json(r, 200, o);
}

void api_varz_setting(api_req *r) {
    json_t *o = json_object();
    json_object_set_new(o, "logger", json_pack("{s:i,s:i}", "trace_on", 0, "loki_on", 0));
    json_object_set_new(o, "prometheus_on", json_integer(0));
    json_object_set_new(o, "stress_on", json_integer(0));
    api_reply_json(r, 200, o);
}

/* /docs, /docs/ and /docs/openapi.json: WuKongIM serves Swagger only in debug mode and
 * answers this in release mode. Magpie has no debug mode; its API is docs/api.md. */
void api_docs_disabled(api_req *r) {
    json_t *o = json_object(); /* keys in Go's map order (sorted) */
    json_object_set_new(o, "error", json_string("Documentation endpoints are disabled in release mode"));
    json_object_set_new(o, "message",
                        json_string("API documentation is only available in development mode for security reasons"));
    json_object_set_new(o, "mode", json_string("release"));
    json_object_set_new(o, "suggestion", json_string("See docs/api.md in the Magpie source tree"));
    api_reply_json(r, 403, o);
}

void api_docs_health(api_req *r) {
    json_t *o = json_object();
    json_object_set_new(o, "description", json_string("Documentation service is disabled in release mode"));
    json_object_set_new(o, "mode", json_string("release"));
    json_object_set_new(o, "service", json_string("docs"));
    json_object_set_new(o, "status", json_string("disabled"));
    api_reply_json(r, 200, o);
}
