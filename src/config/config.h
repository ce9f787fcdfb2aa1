/* config.h - server configuration. One table of options drives defaults, the YAML file
 * (--config FILE), MAGPIE_* environment variables and --flags, plus `magpie --help` and
 * docs/config.md. Precedence: defaults < YAML file < environment < command line.
 * Keys reuse WuKongIM's names where a concept matches (addr, wsAddr, httpAddr,
 * tokenAuthOn, connIdleTime, managerToken, ...). */
#ifndef MP_CONFIG_H
#define MP_CONFIG_H

#include <stdio.h>

#include "../common/mp.h"

#define MAGPIE_VERSION "0.1.0" /* --version and /varz */

typedef struct mp_config {
    /* listeners: "host:port" (a leading scheme like tcp:// or ws:// is accepted and dropped) */
    char *addr;              /* addr       default 0.0.0.0:5100 (binary protocol over TCP) */
    char *ws_addr;           /* wsAddr     default 0.0.0.0:5200 */
    char *http_addr;         /* httpAddr   default 0.0.0.0:5001 */
    char *tls_addr;          /* tlsAddr    default "" (binary protocol over TLS) */
    char *wss_addr;          /* wssAddr    default "" (WebSocket over TLS) */
    char *https_addr;        /* httpsAddr  default "" (HTTP API over TLS) */
    int manager_on;          /* manager.on  default 1: the monitor server (metrics, web UI, login) */
    char *manager_addr;      /* manager.addr default 0.0.0.0:5300 */
    int demo_on;             /* demo.on     default 1: the chat demo */
    char *demo_addr;         /* demo.addr   default 0.0.0.0:5172 */
    char *web_dir;           /* webDir      default "" = the source tree's web/ next to the binary */
    char *tls_cert_file;     /* tls.certFile (PEM chain) */
    char *tls_key_file;      /* tls.keyFile (PEM) */
    char *tls_min_version;   /* tls.minVersion "1.2" | "1.3" */
    char *wss_cert_file;     /* wssConfig.certFile (WuKongIM's name) */
    char *wss_key_file;      /* wssConfig.keyFile */
    char *data_dir;          /* dataDir    default ./magpie-data */
    int workers;             /* workers    default 0 = number of CPUs */
    int token_auth_on;       /* tokenAuthOn default 0 */
    char *manager_token;     /* managerToken default "" (API open) */
    char *manager_uid;       /* managerUID default "____manager" */
    char *jwt_secret;        /* jwt.secret  default "" = random, kept in dataDir/jwt.secret */
    uint32_t jwt_expire_ms;  /* jwt.expire  default 720h (30 days) */
    char *jwt_issuer;        /* jwt.issuer  default "wukongim" */
    char *auth_users;        /* auth.users  "user:pwd:perm" entries, comma-separated; "" = guest/guest read-only */
    char *visitors_suffix;   /* customerService.visitorsSuffix default "___vstr" */
    int disable_encryption;  /* disableEncryption default 0 */
    int whitelist_off_of_person; /* whitelistOffOfPerson default 1 */
    int disable_cmd_message_sync; /* disableCMDMessageSync */
    int disable_jsonrpc;          /* disableJSONRPC */
    char *durability;        /* durability "fsync" (default) | "interval" */
    uint32_t sync_interval_ms; /* syncInterval default 100ms (interval mode) */
    uint64_t store_map_size; /* store.mapSize default 64GiB */
    uint32_t store_apply_interval_ms; /* store.applyInterval default 10ms (durability=fsync) */
    int store_message_log;            /* store.messageLog default 1 (durability=fsync) */
    uint32_t node_id;        /* nodeId (snowflake node, <= 1023) default 1001 */
    /* timeouts (durations accept "3m", "4s", "250ms", or plain milliseconds) */
    uint32_t conn_idle_ms;   /* connIdleTime default 3m */
    uint32_t preauth_timeout_ms; /* preAuthTimeout default 4s */
    uint32_t kick_close_delay_ms; /* kickCloseDelay default 2s */
    uint32_t tag_expire_ms;  /* tag.expire default 20m (idle temp channel recipient sets) */
    /* limits */
    uint32_t max_packet_size;    /* maxPacketSize default 1048576 (protocol max) */
    uint32_t max_connections;    /* maxConnections default 1000000 */
    uint64_t out_buffer_limit;   /* outBufferLimit default 8MiB per connection */
    uint32_t http_body_limit;    /* httpBodyLimit default 8MiB */
    uint32_t http_max_connections; /* httpMaxConnections default 10000, every HTTP listener together */
    uint32_t http_request_timeout_ms; /* httpRequestTimeout default 10s */
    uint32_t sched_latency_slice_us; /* sched.latencySlice default 100 (us; 0 = off) */
    uint32_t queue_capacity;     /* queueCapacity default 65536 messages per worker inbox */
    uint32_t conn_rate_limit;    /* connRateLimit default 200 new connections/s per source IP; 0 = off */
    uint32_t conn_rate_burst;    /* connRateBurst default 400; 0 = connRateLimit */
    int conn_rate_loopback;      /* connRateLimitLoopback default 0: loopback sources are exempt */
    uint32_t send_rate_limit;    /* sendRateLimit default 0 (off) SENDs/s per connection */
    uint32_t send_rate_burst;    /* sendRateBurst default 0 = sendRateLimit */
    /* RECV re-delivery */
    uint32_t retry_interval_ms;  /* messageRetry.interval default 60s */
    uint32_t retry_scan_ms;      /* messageRetry.scanInterval default 5s */
    uint32_t retry_max_count;    /* messageRetry.maxCount default 5 */
    /* external addresses returned by /route (derived from listeners when empty) */
    char *external_ip;           /* external.ip default "" -> 127.0.0.1 */
    char *external_tcp_addr;     /* external.tcpAddr */
    char *external_ws_addr;      /* external.wsAddr */
    char *external_wss_addr;     /* external.wssAddr */
    char *intranet_tcp_addr;     /* intranet.tcpAddr */
    char *external_api_url;      /* external.apiUrl (the demo's API; /varz api_url) */
    char *external_manager_addr; /* external.managerAddr (/varz manager_addr) */
    /* datasource (spec §7) */
    char *datasource_addr;       /* datasource.addr default "" (off) */
    int datasource_channel_data_on; /* datasource.channelDataOn default 1 (v1); 0 = system uids only */
    int datasource_channel_info_on; /* datasource.channelInfoOn default 0 */
    uint32_t datasource_cache_ttl_ms; /* datasource.cacheTTL default 0 = until invalidated */
    uint32_t datasource_timeout_ms;   /* datasource.timeout default 5s */
    char *datasource_on_failure;  /* datasource.onFailure "deny" (default) | "stored" */
    uint32_t datasource_max_parked; /* datasource.maxParked default 10000 per channel */
    /* webhook (spec §6, docs/webhooks.md) */
    char *webhook_http_addr;     /* webhook.httpAddr default "" (off) */
    char *webhook_grpc_addr;     /* webhook.grpcAddr: refused unless empty (gRPC not supported) */
    uint32_t webhook_push_interval_ms; /* webhook.msgNotifyEventPushInterval default 500ms */
    uint32_t webhook_count_per_push;   /* webhook.msgNotifyEventCountPerPush default 100 */
    uint32_t webhook_retry_max;        /* webhook.msgNotifyEventRetryMaxCount default 5 */
    char *webhook_focus_events;  /* webhook.focusEvents, comma-separated; "" = all */
    uint32_t webhook_max_pending;  /* webhook.maxPending default 100000 events per event type */
    int log_level;               /* logger.level 1 debug, 2 info (default), 3 warn, 4 error */
    char *config_file;           /* --config */
} mp_config;

/* Fill defaults. */
void config_defaults(mp_config *c);
/* Defaults, then the YAML file named by --config / MAGPIE_CONFIG, then MAGPIE_* variables,
 * then argv flags. On error returns MP_EINVAL and writes a message to err.
 * Returns 1 (not an error) when --help or --version was handled and printed. */
int config_load(mp_config *c, int argc, char **argv, char *err, size_t errlen);
/* Parse YAML text (exposed for tests/fuzzing); applies keys over c. */
int config_apply_yaml(mp_config *c, const char *text, size_t len, char *err, size_t errlen);
/* Set one option by its key (YAML name, e.g. "tokenAuthOn" or "messageRetry.interval"). */
int config_set(mp_config *c, const char *key, const char *value, char *err, size_t errlen);
void config_free(mp_config *c);
void config_print_help(FILE *f);
/* Write docs/config.md content (markdown table of every option). */
void config_print_markdown(FILE *f);

/* Split "scheme://host:port" or "host:port" into host (cap bytes) and port. */
int config_parse_hostport(const char *addr, char *host, size_t cap, int *port);
/* Split the next entry of an auth.users value at *v ("user:pwd:perm" entries separated by
 * commas outside [...], so perm may be "[res:rw,...]") and advance *v past it. entry is the
 * whole entry; user, pwd and perm are set only on MP_OK (MP_EINVAL: not user:pwd:perm).
 * All are views into the value. */
int config_next_user(const char **v, mp_str *user, mp_str *pwd, mp_str *perm, mp_str *entry);

#endif
