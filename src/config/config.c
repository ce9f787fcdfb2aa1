/* config.c - the options table and everything driven by it: defaults, the YAML file,
 * MAGPIE_* environment variables, --flags, `magpie --help` and docs/config.md.
 *
 * Adding an option means adding a field to mp_config and one row to `options` below; the
 * parsers, the environment name, the flag, the help text and the docs all follow from the
 * row. tests/unit/test_config.c fails when docs/config.md no longer matches the table. */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <yaml.h>

#define ENV_PREFIX "MAGPIE_"
#define KEY_MAX 128                    /* longest dotted key we look up */
#define FILE_MAX (1u << 20)            /* config files above 1 MiB are surely a mistake */

typedef enum {
    OPT_STRING,   /* char *, owned by mp_config */
    OPT_BOOL,     /* int 0/1 */
    OPT_INT,      /* int */
    OPT_U32,      /* uint32_t */
    OPT_U64,      /* uint64_t */
    OPT_DURATION, /* uint32_t milliseconds */
    OPT_SIZE32,   /* uint32_t bytes */
    OPT_SIZE64,   /* uint64_t bytes */
} opt_type;

/* Extra check for string options; writes a message without the key. */
typedef int (*opt_check)(const char *value, char *err, size_t errlen);

typedef struct opt {
    const char *key;   /* YAML key, dotted for nested mappings; also the flag name */
    opt_type type;
    size_t off;        /* offset of the field in mp_config */
    const char *def;   /* default, as text in the same syntax a user would write */
    uint64_t min, max; /* inclusive range for numeric types (ms, bytes); both 0 = type range */
    opt_check check;   /* string options only; NULL = any string */
    const char *help;
} opt;

static int check_hostport(const char *v, char *err, size_t errlen);
static int check_hostport_or_empty(const char *v, char *err, size_t errlen);
static int check_nonempty(const char *v, char *err, size_t errlen);
static int check_durability(const char *v, char *err, size_t errlen);
static int check_url_or_empty(const char *v, char *err, size_t errlen);
static int check_on_failure(const char *v, char *err, size_t errlen);
static int check_grpc_unsupported(const char *v, char *err, size_t errlen);
static int check_focus_events(const char *v, char *err, size_t errlen);
static int check_tls_version(const char *v, char *err, size_t errlen);
static int check_users(const char *v, char *err, size_t errlen);
static int check_latency_slice(const char *v, char *err, size_t errlen);

#define F(field) offsetof(mp_config, field)
#define SEC ((uint64_t)1000)
#define MIN (60 * SEC)
#define HOUR (60 * MIN)
#define KIB ((uint64_t)1024)
#define MIB (1024 * KIB)
#define GIB (1024 * MIB)

static const opt options[] = {
    /* listeners and storage */
    {"addr", OPT_STRING, F(addr), "0.0.0.0:5100", 0, 0, check_hostport,
     "Binary protocol (TCP) listener, host:port; a scheme such as tcp:// is accepted and ignored."},
    {"wsAddr", OPT_STRING, F(ws_addr), "0.0.0.0:5200", 0, 0, check_hostport,
     "WebSocket listener, host:port; a scheme such as ws:// is accepted and ignored."},
    {"httpAddr", OPT_STRING, F(http_addr), "0.0.0.0:5001", 0, 0, check_hostport,
     "HTTP API listener (WuKongIM-compatible), host:port."},
    {"tlsAddr", OPT_STRING, F(tls_addr), "", 0, 0, check_hostport_or_empty,
     "Binary protocol over TLS listener, host:port (e.g. 0.0.0.0:5110); empty = off. Needs tls.certFile/keyFile."},
    {"wssAddr", OPT_STRING, F(wss_addr), "", 0, 0, check_hostport_or_empty,
     "Secure WebSocket listener, host:port (e.g. 0.0.0.0:5210; wss:// accepted); empty = off."},
    {"httpsAddr", OPT_STRING, F(https_addr), "", 0, 0, check_hostport_or_empty,
     "HTTPS listener for the HTTP API (e.g. 0.0.0.0:5443); empty = off."},
    {"manager.on", OPT_BOOL, F(manager_on), "true", 0, 0, NULL,
     "Run the monitor server on manager.addr: Prometheus /metrics, /varz, /connz, /manager/login, "
     "recent errors and the monitor web UI at /web/ (docs/monitoring.md)."},
    {"manager.addr", OPT_STRING, F(manager_addr), "0.0.0.0:5300", 0, 0, check_hostport,
     "Monitor server listener, host:port. Only /metrics, /web and /manager/login are public; the "
     "rest needs the managerToken header or a JWT from /manager/login."},
    {"demo.on", OPT_BOOL, F(demo_on), "true", 0, 0, NULL,
     "Serve the chat demo on demo.addr (/chatdemo; / redirects there with ?apiurl=external.apiUrl)."},
    {"demo.addr", OPT_STRING, F(demo_addr), "0.0.0.0:5172", 0, 0, check_hostport,
     "Chat demo listener, host:port."},
    {"webDir", OPT_STRING, F(web_dir), "", 0, 0, NULL,
     "Directory with the web files (monitor/ and demo/); empty = the web/ directory of the source "
     "tree the binary was built in (found next to the binary: ../web or ./web)."},
    {"tls.certFile", OPT_STRING, F(tls_cert_file), "", 0, 0, NULL,
     "PEM certificate chain for tlsAddr, wssAddr and httpsAddr; reloaded on SIGHUP."},
    {"tls.keyFile", OPT_STRING, F(tls_key_file), "", 0, 0, NULL,
     "PEM private key for tls.certFile; reloaded on SIGHUP."},
    {"tls.minVersion", OPT_STRING, F(tls_min_version), "1.2", 0, 0, check_tls_version,
     "Oldest TLS version accepted: 1.2 (1.3 preferred when offered) or 1.3. TLS 1.0/1.1 are never accepted."},
    {"wssConfig.certFile", OPT_STRING, F(wss_cert_file), "", 0, 0, NULL,
     "WuKongIM's name for the certificate; used when tls.certFile is empty."},
    {"wssConfig.keyFile", OPT_STRING, F(wss_key_file), "", 0, 0, NULL,
     "WuKongIM's name for the key; used when tls.keyFile is empty."},
    {"dataDir", OPT_STRING, F(data_dir), "./magpie-data", 0, 0, check_nonempty,
     "Directory for the LMDB environment and other state."},
    {"workers", OPT_INT, F(workers), "0", 0, 256, NULL,
     "Worker threads, each with its own event loop; 0 = number of CPUs."},
    /* auth and behaviour */
    {"tokenAuthOn", OPT_BOOL, F(token_auth_on), "false", 0, 0, NULL,
     "Check the CONNECT token against the token registered with /user/token. Turn on in production."},
    {"managerToken", OPT_STRING, F(manager_token), "", 0, 0, NULL,
     "If set, every HTTP API request needs this value in its `token` header; empty leaves the API open."},
    {"managerUID", OPT_STRING, F(manager_uid), "____manager", 0, 0, check_nonempty,
     "The manager user: when managerToken is set, this uid connects with managerToken as its token "
     "(as a slave device) instead of a /user/token token."},
    {"jwt.secret", OPT_STRING, F(jwt_secret), "", 0, 0, NULL,
     "HS256 key of the manager JWTs (/manager/login); empty = a random key created once and kept in "
     "dataDir/jwt.secret."},
    {"jwt.expire", OPT_DURATION, F(jwt_expire_ms), "720h", SEC, UINT32_MAX, NULL,
     "Lifetime of a manager JWT."},
    {"jwt.issuer", OPT_STRING, F(jwt_issuer), "wukongim", 0, 0, NULL,
     "The iss claim of manager JWTs."},
    {"auth.users", OPT_STRING, F(auth_users), "", 0, 0, check_users,
     "Manager users, `user:password:permissions` entries separated by commas (a YAML list works too); "
     "permissions `*` may read and change everything, anything else (e.g. `*:r`) only read. Empty = "
     "one read-only user guest/guest."},
    {"customerService.visitorsSuffix", OPT_STRING, F(visitors_suffix), "___vstr", 0, 0, NULL,
     "uids ending with this suffix are visitors: they connect without a registered token even "
     "when tokenAuthOn is true (always as slaves). Empty = no visitors."},
    {"disableEncryption", OPT_BOOL, F(disable_encryption), "false", 0, 0, NULL,
     "Send and accept payloads in plaintext, without msgKey (both sides must agree)."},
    {"whitelistOffOfPerson", OPT_BOOL, F(whitelist_off_of_person), "true", 0, 0, NULL,
     "When false, person-to-person messages need the sender on the recipient's whitelist."},
    {"disableJSONRPC", OPT_BOOL, F(disable_jsonrpc), "false", 0, 0, NULL,
     "Refuse JSON-RPC clients (connections whose first byte is '{'); only the binary protocol is spoken."},
    {"disableCMDMessageSync", OPT_BOOL, F(disable_cmd_message_sync), "false", 0, 0, NULL,
     "When true, /message/sync answers [] and /message/syncack does nothing (command messages "
     "are still stored and delivered online)."},
    {"durability", OPT_STRING, F(durability), "fsync", 0, 0, check_durability,
     "`fsync`: a message is acknowledged (SENDACK) and delivered only once it is fsynced in the "
     "message log; LMDB commits follow (store.applyInterval). `interval`: no message log, fsync "
     "every syncInterval, so a crash can lose the messages acknowledged in the last interval."},
    {"store.messageLog", OPT_BOOL, F(store_message_log), "true", 0, 0, NULL,
     "durability=fsync: make messages durable in the message log before their LMDB commit "
     "(lower SENDACK latency). false = acknowledge after the LMDB commit itself (one thread "
     "less per message; about 10% more throughput when the CPU is the limit)."},
    {"store.applyInterval", OPT_DURATION, F(store_apply_interval_ms), "10ms", 0, 10 * SEC, NULL,
     "durability=fsync: least time between the starts of two LMDB commits while messages keep "
     "coming (larger commits write fewer pages per message). Messages are already durable in the "
     "log; API reads wait for the commit of everything acknowledged before them. 0 = commit at once."},
    {"syncInterval", OPT_DURATION, F(sync_interval_ms), "100ms", 1, 60 * SEC, NULL,
     "How often storage is fsynced when durability is `interval`."},
    {"store.mapSize", OPT_SIZE64, F(store_map_size), "64GiB", MIB, 1ull << 50, NULL,
     "LMDB map size: the largest the database may grow (address space, not disk, is reserved)."},
    {"nodeId", OPT_U32, F(node_id), "1001", 0, 1023, NULL,
     "Node id used in Snowflake message ids (WuKongIM's cluster.nodeId)."},
    /* timeouts */
    {"connIdleTime", OPT_DURATION, F(conn_idle_ms), "3m", 1, UINT32_MAX, NULL,
     "Close an authenticated connection after this long without inbound bytes."},
    {"preAuthTimeout", OPT_DURATION, F(preauth_timeout_ms), "4s", 1, UINT32_MAX, NULL,
     "Close a connection that has not completed CONNECT within this time."},
    {"kickCloseDelay", OPT_DURATION, F(kick_close_delay_ms), "2s", 0, 0, NULL,
     "After sending DISCONNECT to a kicked connection, close it this much later."},
    {"tag.expire", OPT_DURATION, F(tag_expire_ms), "20m", 1, UINT32_MAX, NULL,
     "A temp channel's recipient set (/tmpchannel/subscriber_set) unused for this long is dropped."},
    /* limits */
    {"maxPacketSize", OPT_SIZE32, F(max_packet_size), "1MiB", 16, 1048576, NULL,
     "Largest accepted binary-protocol packet (remaining length); checked as soon as the header is read."},
    {"maxConnections", OPT_U32, F(max_connections), "1000000", 1, UINT32_MAX, NULL,
     "Connections accepted across the binary-protocol listeners (addr, wsAddr, tlsAddr, wssAddr); "
     "further ones are closed at accept. The HTTP listeners have httpMaxConnections."},
    {"outBufferLimit", OPT_SIZE64, F(out_buffer_limit), "8MiB", KIB, 1ull << 40, NULL,
     "Unsent bytes queued for one connection before it is closed as a slow consumer."},
    {"httpBodyLimit", OPT_SIZE32, F(http_body_limit), "8MiB", KIB, UINT32_MAX, NULL,
     "Largest accepted HTTP request body."},
    {"httpMaxConnections", OPT_U32, F(http_max_connections), "10000", 1, UINT32_MAX, NULL,
     "Open connections accepted across the HTTP listeners (httpAddr, httpsAddr, manager.addr, "
     "demo.addr) together; further ones are closed at accept. Keep it well below the open-file "
     "limit (ulimit -n), so HTTP clients cannot take the descriptors the other listeners and the "
     "store need."},
    {"httpRequestTimeout", OPT_DURATION, F(http_request_timeout_ms), "10s", 100, HOUR, NULL,
     "Close an HTTP connection that has not sent a complete request (headers and body) within "
     "this long of being accepted or of its previous answer: idle keep-alive connections and "
     "slow (slowloris) clients. An HTTPS connection's TLS handshake has the same limit."},
    {"connRateLimit", OPT_U32, F(conn_rate_limit), "200", 0, 1000000, NULL,
     "New connections per second accepted from one source IP (token bucket of connRateBurst); "
     "further ones are closed at accept. 0 = no limit. Loopback sources are exempt unless "
     "connRateLimitLoopback is true (a local reverse proxy or load generator shares 127.0.0.1)."},
    {"connRateBurst", OPT_U32, F(conn_rate_burst), "400", 0, 1000000, NULL,
     "Connections one source IP may open at once before connRateLimit applies; 0 = connRateLimit."},
    {"connRateLimitLoopback", OPT_BOOL, F(conn_rate_loopback), "false", 0, 0, NULL,
     "Apply connRateLimit to loopback sources (127.0.0.0/8, ::1) too."},
    {"sendRateLimit", OPT_U32, F(send_rate_limit), "0", 0, 1000000, NULL,
     "SENDs per second accepted from one connection (token bucket of sendRateBurst); a SEND over "
     "it gets SENDACK reason 22 (RateLimit) and is not stored, and a connection that keeps "
     "sending after 100 + 10 * sendRateBurst refusals in a row is closed. 0 = no limit."},
    {"sendRateBurst", OPT_U32, F(send_rate_burst), "0", 0, 1000000, NULL,
     "SENDs one connection may send at once before sendRateLimit applies; 0 = sendRateLimit."},
    {"sched.latencySlice", OPT_U32, F(sched_latency_slice_us), "100", 0, 100000, check_latency_slice,
     "Time slice in microseconds the worker and message-log threads ask Linux for (6.12+, no "
     "privilege needed): woken by a message, they preempt busier threads at once instead of "
     "waiting up to a scheduler tick. 0 = the kernel's default; otherwise at least 100."},
    {"queueCapacity", OPT_U32, F(queue_capacity), "65536", 16, 1u << 24, NULL,
     "Capacity, in messages, of each worker's inbox queue."},
    /* RECV re-delivery */
    {"messageRetry.interval", OPT_DURATION, F(retry_interval_ms), "60s", 1, UINT32_MAX, NULL,
     "Resend a RECV that has not been acknowledged (RECVACK) after this long."},
    {"messageRetry.scanInterval", OPT_DURATION, F(retry_scan_ms), "5s", 1, UINT32_MAX, NULL,
     "How often the unacknowledged RECVs are scanned."},
    {"messageRetry.maxCount", OPT_U32, F(retry_max_count), "5", 0, 1000, NULL,
     "Resends per RECV before giving up; 0 disables re-delivery."},
    /* addresses returned by /route */
    {"external.ip", OPT_STRING, F(external_ip), "", 0, 0, NULL,
     "Address clients use to reach this node; empty = 127.0.0.1. Used to derive the external.* addresses."},
    {"external.tcpAddr", OPT_STRING, F(external_tcp_addr), "", 0, 0, check_hostport_or_empty,
     "TCP address returned by /route, e.g. 203.0.113.10:5100; empty = external.ip + addr's port."},
    {"external.wsAddr", OPT_STRING, F(external_ws_addr), "", 0, 0, check_hostport_or_empty,
     "WebSocket address returned by /route, e.g. ws://203.0.113.10:5200; empty = derived from wsAddr."},
    {"external.wssAddr", OPT_STRING, F(external_wss_addr), "", 0, 0, check_hostport_or_empty,
     "Secure WebSocket address returned by /route, e.g. wss://im.example.com:5210; empty = none."},
    {"intranet.tcpAddr", OPT_STRING, F(intranet_tcp_addr), "", 0, 0, check_hostport_or_empty,
     "TCP address returned by /route?intranet=1; empty = external.tcpAddr."},
    {"external.apiUrl", OPT_STRING, F(external_api_url), "", 0, 0, check_url_or_empty,
     "Base URL of the HTTP API as browsers reach it (the chat demo's ?apiurl=, /varz api_url); "
     "empty = http:// + external.ip + httpAddr's port."},
    {"external.managerAddr", OPT_STRING, F(external_manager_addr), "", 0, 0, check_hostport_or_empty,
     "Monitor server address reported by /varz manager_addr; empty = external.ip + manager.addr's port."},
    /* datasource (spec §7, docs/datasource.md) */
    {"datasource.addr", OPT_STRING, F(datasource_addr), "", 0, 0, check_url_or_empty,
     "Business-system URL (http:// or https://) asked for subscribers, blacklists, whitelists, "
     "channel info and system uids (POST {\"cmd\",\"data\"}); empty = no datasource."},
    {"datasource.channelDataOn", OPT_BOOL, F(datasource_channel_data_on), "true", 0, 0, NULL,
     "Ask the datasource for subscribers, blacklists and whitelists (WuKongIM v1). false = only "
     "getSystemUIDs, as WuKongIM v2.2.5 does."},
    {"datasource.channelInfoOn", OPT_BOOL, F(datasource_channel_info_on), "false", 0, 0, NULL,
     "Also ask the datasource for channel info (ban, disband, large) instead of the stored info."},
    {"datasource.cacheTTL", OPT_DURATION, F(datasource_cache_ttl_ms), "0", 0, UINT32_MAX, NULL,
     "How long a datasource answer is used before it is asked again; 0 = until the HTTP API "
     "changes the same data (or restart)."},
    {"datasource.timeout", OPT_DURATION, F(datasource_timeout_ms), "5s", 1, UINT32_MAX, NULL,
     "Time limit of one datasource request (connect + answer); beyond it the request failed."},
    {"datasource.onFailure", OPT_STRING, F(datasource_on_failure), "deny", 0, 0, check_on_failure,
     "When the datasource is down or answers badly: `deny` refuses the send (SENDACK 15, nothing "
     "stored); `stored` uses the data stored through the HTTP API instead."},
    {"datasource.maxParked", OPT_U32, F(datasource_max_parked), "10000", 1, 1000000, NULL,
     "Sends and events one channel may hold while its datasource answer is pending; further "
     "sends are refused with SENDACK 22 (RateLimit)."},
    /* webhook (spec §6, docs/webhooks.md) */
    {"webhook.httpAddr", OPT_STRING, F(webhook_http_addr), "", 0, 0, check_url_or_empty,
     "Business-system URL (http:// or https://) that gets POST <url>?event=<name> with a JSON "
     "body for user.onlinestatus, msg.offline and msg.notify; empty = no webhook."},
    {"webhook.grpcAddr", OPT_STRING, F(webhook_grpc_addr), "", 0, 0, check_grpc_unsupported,
     "Not supported (WuKongIM's gRPC webhook): must stay empty; use webhook.httpAddr."},
    {"webhook.msgNotifyEventPushInterval", OPT_DURATION, F(webhook_push_interval_ms), "500ms", 1, HOUR, NULL,
     "How often pending msg.notify events are pushed when fewer than msgNotifyEventCountPerPush "
     "have accumulated; also the first retry delay of a failed push."},
    {"webhook.msgNotifyEventCountPerPush", OPT_U32, F(webhook_count_per_push), "100", 1, 10000, NULL,
     "Most messages in one msg.notify POST; a full batch is pushed at once."},
    {"webhook.msgNotifyEventRetryMaxCount", OPT_U32, F(webhook_retry_max), "5", 1, 1000, NULL,
     "Attempts of a msg.notify or user.onlinestatus event before it is dropped (and counted)."},
    {"webhook.focusEvents", OPT_STRING, F(webhook_focus_events), "", 0, 0, check_focus_events,
     "Events to send, comma-separated (a YAML list works too): user.onlinestatus, msg.offline, "
     "msg.notify; empty = all."},
    {"webhook.maxPending", OPT_U32, F(webhook_max_pending), "100000", 1, 10000000, NULL,
     "Events of one type accepted and not yet delivered (Magpie); beyond it new events are dropped "
     "and counted, so a slow or dead receiver costs bounded memory."},
    {"logger.level", OPT_INT, F(log_level), "2", 1, 4, NULL,
     "Log level: 1 or debug, 2 or info, 3 or warn, 4 or error."},
};

#undef F

/* ---------- errors ---------- */

__attribute__((format(printf, 3, 4))) static int fail(char *err, size_t errlen, const char *fmt, ...) {
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return MP_EINVAL;
}

/* ---------- value parsers (no allocation; results before range checks) ---------- */

static int parse_bool(const char *s, int *out) {
    static const char *yes[] = {"true", "1", "yes", "on"};
    static const char *no[] = {"false", "0", "no", "off"};
    for (size_t i = 0; i < MP_ARRAY_LEN(yes); i++) {
        if (strcasecmp(s, yes[i]) == 0) return *out = 1, MP_OK;
        if (strcasecmp(s, no[i]) == 0) return *out = 0, MP_OK;
    }
    return MP_EINVAL;
}

/* Digits only; *end points past them. Fails on no digits or overflow. */
static int parse_digits(const char *s, const char **end, uint64_t *out) {
    uint64_t v = 0;
    const char *p = s;
    for (; *p >= '0' && *p <= '9'; p++) {
        unsigned d = (unsigned)(*p - '0');
        if (v > (UINT64_MAX - d) / 10) return MP_EINVAL;
        v = v * 10 + d;
    }
    if (p == s) return MP_EINVAL;
    *end = p;
    *out = v;
    return MP_OK;
}

static int parse_u64(const char *s, uint64_t *out) {
    const char *end;
    if (parse_digits(s, &end, out) != MP_OK || *end) return MP_EINVAL;
    return MP_OK;
}

static int parse_i64(const char *s, int64_t *out) {
    int neg = *s == '-';
    uint64_t v;
    if (parse_u64(s + neg, &v) != MP_OK || v > (uint64_t)INT64_MAX) return MP_EINVAL;
    *out = neg ? -(int64_t)v : (int64_t)v;
    return MP_OK;
}

/* "1h", "3m", "4s", "250ms", "1m30s" (Go's syntax, whole numbers), or plain milliseconds. */
static int parse_duration(const char *s, uint64_t *ms) {
    if (parse_u64(s, ms) == MP_OK) return MP_OK;
    uint64_t total = 0;
    const char *p = s;
    if (!*p) return MP_EINVAL;
    while (*p) {
        uint64_t n, mul;
        if (parse_digits(p, &p, &n) != MP_OK) return MP_EINVAL;
        if (p[0] == 'm' && p[1] == 's') mul = 1, p += 2;
        else if (*p == 'h') mul = HOUR, p++;
        else if (*p == 'm') mul = MIN, p++;
        else if (*p == 's') mul = SEC, p++;
        else return MP_EINVAL;
        if (n > (UINT64_MAX - total) / mul) return MP_EINVAL;
        total += n * mul;
    }
    *ms = total;
    return MP_OK;
}

/* "1048576", "512KiB", "8MiB", "64GiB" (binary; also K, M, G, T), "1MB" (decimal). */
static int parse_size(const char *s, uint64_t *bytes) {
    static const struct { const char *unit; uint64_t mul; } units[] = {
        {"", 1}, {"b", 1},
        {"k", KIB}, {"kib", KIB}, {"kb", 1000ull},
        {"m", MIB}, {"mib", MIB}, {"mb", 1000000ull},
        {"g", GIB}, {"gib", GIB}, {"gb", 1000000000ull},
        {"t", 1024 * GIB}, {"tib", 1024 * GIB}, {"tb", 1000000000000ull},
    };
    const char *end;
    uint64_t n;
    if (parse_digits(s, &end, &n) != MP_OK) return MP_EINVAL;
    for (size_t i = 0; i < MP_ARRAY_LEN(units); i++) {
        if (strcasecmp(end, units[i].unit) != 0) continue;
        if (n > UINT64_MAX / units[i].mul) return MP_EINVAL;
        *bytes = n * units[i].mul;
        return MP_OK;
    }
    return MP_EINVAL;
}

/* Human forms used in --help and the docs for ranges. */
static void fmt_duration(uint64_t ms, char *out, size_t cap) {
    if (ms == UINT32_MAX) snprintf(out, cap, "%" PRIu64 "ms", ms);
    else if (ms && ms % HOUR == 0) snprintf(out, cap, "%" PRIu64 "h", ms / HOUR);
    else if (ms && ms % MIN == 0) snprintf(out, cap, "%" PRIu64 "m", ms / MIN);
    else if (ms && ms % SEC == 0) snprintf(out, cap, "%" PRIu64 "s", ms / SEC);
    else snprintf(out, cap, "%" PRIu64 "ms", ms);
}

static void fmt_size(uint64_t b, char *out, size_t cap) {
    static const char *suffix[] = {"TiB", "GiB", "MiB", "KiB"};
    static const uint64_t mul[] = {1024 * GIB, GIB, MIB, KIB};
    for (size_t i = 0; i < MP_ARRAY_LEN(mul); i++) {
        if (b && b % mul[i] == 0) {
            snprintf(out, cap, "%" PRIu64 "%s", b / mul[i], suffix[i]);
            return;
        }
    }
    snprintf(out, cap, "%" PRIu64, b);
}

/* ---------- string checks ---------- */

static int check_hostport(const char *v, char *err, size_t errlen) {
    char host[256];
    if (config_parse_hostport(v, host, sizeof host, NULL) != MP_OK)
        return fail(err, errlen, "'%.64s' is not a valid host:port (e.g. 0.0.0.0:5100)", v);
    return MP_OK;
}

static int check_hostport_or_empty(const char *v, char *err, size_t errlen) {
    return *v ? check_hostport(v, err, errlen) : MP_OK;
}

/* 0 (off) or the kernel's accepted range, 100..100000 us (it would clamp silently). Runs
 * after opt_set parsed v and checked it against 0..100000. */
static int check_latency_slice(const char *v, char *err, size_t errlen) {
    unsigned long us = strtoul(v, NULL, 10);
    if (us == 0 || us >= 100) return MP_OK;
    return fail(err, errlen, "'%.32s' is below the kernel's least slice of 100 microseconds (0 turns it off)", v);
}

static int check_nonempty(const char *v, char *err, size_t errlen) {
    return *v ? MP_OK : fail(err, errlen, "must not be empty");
}

static int check_url_or_empty(const char *v, char *err, size_t errlen) {
    if (!*v || strncmp(v, "http://", 7) == 0 || strncmp(v, "https://", 8) == 0) return MP_OK;
    return fail(err, errlen, "'%.64s' is not an http:// or https:// URL", v);
}

static int check_on_failure(const char *v, char *err, size_t errlen) {
    if (strcmp(v, "deny") == 0 || strcmp(v, "stored") == 0) return MP_OK;
    return fail(err, errlen, "'%.64s' is not one of: deny, stored", v);
}

static int check_tls_version(const char *v, char *err, size_t errlen) {
    if (strcmp(v, "1.2") == 0 || strcmp(v, "1.3") == 0) return MP_OK;
    return fail(err, errlen, "'%.64s' is not one of: 1.2, 1.3 (TLS 1.0 and 1.1 are not offered)", v);
}

int config_next_user(const char **v, mp_str *user, mp_str *pwd, mp_str *perm, mp_str *entry) {
    const char *s = *v, *p = s;
    for (int depth = 0; *p && (*p != ',' || depth); p++) {
        if (*p == '[') depth++;
        else if (*p == ']' && depth) depth--;
    }
    *entry = (mp_str){s, (uint32_t)(p - s)};
    *v = *p ? p + 1 : p;
    const char *c1 = memchr(s, ':', (size_t)(p - s));
    const char *c2 = c1 ? memchr(c1 + 1, ':', (size_t)(p - c1 - 1)) : NULL;
    if (!c2 || c1 == s || c2 == c1 + 1 || c2 + 1 == p) return MP_EINVAL;
    *user = (mp_str){s, (uint32_t)(c1 - s)};
    *pwd = (mp_str){c1 + 1, (uint32_t)(c2 - c1 - 1)};
    *perm = (mp_str){c2 + 1, (uint32_t)(p - c2 - 1)};
    return MP_OK;
}

static int check_users(const char *v, char *err, size_t errlen) {
    mp_str user, pwd, perm, entry;
    while (*v)
        if (config_next_user(&v, &user, &pwd, &perm, &entry) != MP_OK)
            return fail(err, errlen, "'%.*s' is not user:password:permissions", (int)(entry.len > 64 ? 64 : entry.len),
                        entry.p);
    return MP_OK;
}

static int check_grpc_unsupported(const char *v, char *err, size_t errlen) {
    if (!*v) return MP_OK;
    return fail(err, errlen, "gRPC webhooks are not supported by Magpie; set webhook.httpAddr instead");
}

static int check_focus_events(const char *v, char *err, size_t errlen) {
    static const char *const known[] = {"user.onlinestatus", "msg.offline", "msg.notify", "msg.stream"};
    while (*v) {
        size_t n = strcspn(v, ",");
        size_t k = 0;
        while (k < MP_ARRAY_LEN(known) && !(strlen(known[k]) == n && strncmp(known[k], v, n) == 0)) k++;
        if (k == MP_ARRAY_LEN(known))
            return fail(err, errlen, "'%.*s' is not one of: user.onlinestatus, msg.offline, msg.notify", (int)(n > 64 ? 64 : n), v);
        v += n + (v[n] == ',');
    }
    return MP_OK;
}

static int check_durability(const char *v, char *err, size_t errlen) {
    if (strcmp(v, "fsync") == 0 || strcmp(v, "interval") == 0) return MP_OK;
    return fail(err, errlen, "'%.64s' is not one of: fsync, interval", v);
}

/* ---------- the table ---------- */

static const opt *find_opt(const char *key) {
    for (size_t i = 0; i < MP_ARRAY_LEN(options); i++)
        if (strcmp(options[i].key, key) == 0) return &options[i];
    return NULL;
}

/* "did you mean" for keys that differ only in case, the usual typo with camelCase. */
static const char *suggest(const char *key) {
    for (size_t i = 0; i < MP_ARRAY_LEN(options); i++)
        if (strcasecmp(options[i].key, key) == 0) return options[i].key;
    return NULL;
}

static int unknown_key(const char *key, char *err, size_t errlen) {
    const char *s = suggest(key);
    if (s) return fail(err, errlen, "unknown key '%.*s' (did you mean '%s'?)", KEY_MAX, key, s);
    return fail(err, errlen, "unknown key '%.*s'", KEY_MAX, key);
}

/* True when some option lives under "prefix." (prefix is a YAML section). */
static int is_section(const char *prefix, size_t n) {
    for (size_t i = 0; i < MP_ARRAY_LEN(options); i++)
        if (strncmp(options[i].key, prefix, n) == 0 && options[i].key[n] == '.') return 1;
    return 0;
}

/* tokenAuthOn -> MAGPIE_TOKEN_AUTH_ON, messageRetry.interval -> MAGPIE_MESSAGE_RETRY_INTERVAL */
static void env_name(const char *key, char *out, size_t cap) {
    size_t n = 0;
    for (const char *p = ENV_PREFIX; *p && n + 1 < cap; p++) out[n++] = *p;
    for (const char *p = key; *p && n + 2 < cap; p++) {
        if (*p == '.') {
            out[n++] = '_';
        } else {
            if (isupper((unsigned char)*p) && p > key && (islower((unsigned char)p[-1]) || isdigit((unsigned char)p[-1])))
                out[n++] = '_';
            out[n++] = (char)toupper((unsigned char)*p);
        }
    }
    out[n] = 0;
}

static const char *type_name(opt_type t) {
    switch (t) {
    case OPT_STRING: return "string";
    case OPT_BOOL: return "bool";
    case OPT_INT: return "int";
    case OPT_U32: return "uint32";
    case OPT_U64: return "uint64";
    case OPT_DURATION: return "duration";
    case OPT_SIZE32:
    case OPT_SIZE64: return "size";
    }
    return "?";
}

static uint64_t type_max(opt_type t) {
    switch (t) {
    case OPT_INT: return INT32_MAX;
    case OPT_U32:
    case OPT_DURATION:
    case OPT_SIZE32: return UINT32_MAX;
    default: return UINT64_MAX;
    }
}

/* Range as text in the option's own units, or "" when it is just the type's range. */
static void fmt_range(const opt *o, char *out, size_t cap) {
    char a[32], b[32];
    out[0] = 0;
    if (o->min == 0 && o->max == 0) return;
    if (o->type == OPT_DURATION) fmt_duration(o->min, a, sizeof a), fmt_duration(o->max, b, sizeof b);
    else if (o->type == OPT_SIZE32 || o->type == OPT_SIZE64) fmt_size(o->min, a, sizeof a), fmt_size(o->max, b, sizeof b);
    else snprintf(a, sizeof a, "%" PRIu64, o->min), snprintf(b, sizeof b, "%" PRIu64, o->max);
    if (o->max == type_max(o->type)) snprintf(out, cap, ">= %s", a);
    else snprintf(out, cap, "%s..%s", a, b);
}

/* Names an int option also accepts: logger.level as debug, info, warn or error. */
static const char *int_alias(const opt *o, const char *v) {
    static const char *const levels[] = {"debug", "1", "info", "2", "warn", "3", "warning", "3", "error", "4"};
    if (o->off != offsetof(mp_config, log_level)) return v;
    for (size_t k = 0; k < MP_ARRAY_LEN(levels); k += 2)
        if (strcasecmp(v, levels[k]) == 0) return levels[k + 1];
    return v;
}

/* Parse v for o and store it in c. Messages do not name the key; the caller adds it. */
static int opt_set(mp_config *c, const opt *o, const char *v, char *err, size_t errlen) {
    void *field = (char *)c + o->off;
    uint64_t u = 0;
    int64_t i = 0;
    int b;
    switch (o->type) {
    case OPT_STRING:
        if (o->check) {
            int rc = o->check(v, err, errlen);
            if (rc != MP_OK) return rc;
        }
        free(*(char **)field);
        *(char **)field = mp_strndup(v, strlen(v));
        return MP_OK;
    case OPT_BOOL:
        if (parse_bool(v, &b) != MP_OK)
            return fail(err, errlen, "'%.64s' is not a boolean (true/false, 1/0, yes/no, on/off)", v);
        *(int *)field = b;
        return MP_OK;
    case OPT_INT:
        v = int_alias(o, v);
        if (parse_i64(v, &i) != MP_OK || i < INT32_MIN || i > INT32_MAX)
            return fail(err, errlen, "'%.64s' is not an integer", v);
        break;
    case OPT_U32:
    case OPT_U64:
        if (parse_u64(v, &u) != MP_OK)
            return fail(err, errlen, "'%.64s' is not a non-negative integer", v);
        break;
    case OPT_DURATION:
        if (parse_duration(v, &u) != MP_OK)
            return fail(err, errlen, "'%.64s' is not a duration (e.g. 250ms, 4s, 3m, 1h, 1m30s, or milliseconds)", v);
        break;
    case OPT_SIZE32:
    case OPT_SIZE64:
        if (parse_size(v, &u) != MP_OK)
            return fail(err, errlen, "'%.64s' is not a size (e.g. 1048576, 512KiB, 8MiB, 1MB, 64GiB)", v);
        break;
    }
    uint64_t lo = o->min, hi = (o->min || o->max) ? o->max : type_max(o->type);
    int bad = o->type == OPT_INT ? (i < (int64_t)lo || i > (int64_t)hi) : (u < lo || u > hi);
    if (bad) {
        char range[80];
        fmt_range(o, range, sizeof range);
        if (!range[0]) snprintf(range, sizeof range, "<= %" PRIu64, hi);
        return fail(err, errlen, "'%.64s' is out of range (%s)", v, range);
    }
    if (o->check) { /* a further rule on a number that parsed and is in range */
        int rc = o->check(v, err, errlen);
        if (rc != MP_OK) return rc;
    }
    switch (o->type) {
    case OPT_INT: *(int *)field = (int)i; break;
    case OPT_U64:
    case OPT_SIZE64: *(uint64_t *)field = u; break;
    default: *(uint32_t *)field = (uint32_t)u; break;
    }
    return MP_OK;
}

/* ---------- public: defaults, set, free ---------- */

void config_defaults(mp_config *c) {
    memset(c, 0, sizeof *c);
    for (size_t i = 0; i < MP_ARRAY_LEN(options); i++) {
        char err[256];
        int rc = opt_set(c, &options[i], options[i].def, err, sizeof err);
        if (rc != MP_OK) {
            /* A default that fails its own validation is a bug in the table. */
            fprintf(stderr, "config: bad default for %s: %s\n", options[i].key, err);
            MP_ASSERT(rc == MP_OK);
        }
    }
}

int config_set(mp_config *c, const char *key, const char *value, char *err, size_t errlen) {
    const opt *o = key ? find_opt(key) : NULL;
    if (!key) return fail(err, errlen, "no key");
    if (!o) return unknown_key(key, err, errlen);
    if (!value) return fail(err, errlen, "%s: no value", o->key);
    char msg[256];
    if (opt_set(c, o, value, msg, sizeof msg) != MP_OK) return fail(err, errlen, "%s: %s", o->key, msg);
    return MP_OK;
}

void config_free(mp_config *c) {
    for (size_t i = 0; i < MP_ARRAY_LEN(options); i++) {
        if (options[i].type != OPT_STRING) continue;
        char **p = (char **)((char *)c + options[i].off);
        free(*p);
        *p = NULL;
    }
    free(c->config_file);
    c->config_file = NULL;
}

/* ---------- YAML ---------- */

/* Plain (unquoted) `~`, `null` or nothing is YAML's null: treat it as an empty value. */
static const char *scalar_value(const yaml_event_t *ev) {
    const char *v = (const char *)ev->data.scalar.value;
    if (ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE &&
        (strcmp(v, "~") == 0 || strcmp(v, "null") == 0 || strcmp(v, "Null") == 0 || strcmp(v, "NULL") == 0))
        return "";
    return v;
}

static int y_next(yaml_parser_t *p, yaml_event_t *ev, char *err, size_t errlen) {
    if (yaml_parser_parse(p, ev)) return MP_OK;
    const char *problem = p->problem ? p->problem : "malformed YAML";
    if (p->context)
        return fail(err, errlen, "line %zu: %s %s", (size_t)p->problem_mark.line + 1, p->context, problem);
    return fail(err, errlen, "line %zu: %s", (size_t)p->problem_mark.line + 1, problem);
}

static size_t ev_line(const yaml_event_t *ev) { return (size_t)ev->start_mark.line + 1; }

/* A list of scalars (its SEQUENCE-START already read) set as one comma-separated value. */
static int y_scalar_list(mp_config *c, yaml_parser_t *p, const char *key, char *err, size_t errlen) {
    char joined[512] = "", msg[256];
    size_t len = 0;
    for (;;) {
        yaml_event_t ev;
        int rc = y_next(p, &ev, err, errlen);
        if (rc != MP_OK) return rc;
        size_t line = ev_line(&ev);
        if (ev.type == YAML_SEQUENCE_END_EVENT) {
            yaml_event_delete(&ev);
            break;
        }
        if (ev.type != YAML_SCALAR_EVENT) {
            yaml_event_delete(&ev);
            return fail(err, errlen, "line %zu: '%s' must be a list of names", line, key);
        }
        const char *v = scalar_value(&ev);
        int n = snprintf(joined + len, sizeof joined - len, "%s%s", len ? "," : "", v);
        yaml_event_delete(&ev);
        if (n < 0 || (size_t)n >= sizeof joined - len) return fail(err, errlen, "line %zu: '%s' is too long", line, key);
        len += (size_t)n;
    }
    if (config_set(c, key, joined, msg, sizeof msg) != MP_OK) return fail(err, errlen, "%s", msg);
    return MP_OK;
}

/* Walk one mapping (its MAPPING-START already read) whose keys live under prefix. */
static int y_mapping(mp_config *c, yaml_parser_t *p, const char *prefix, char *err, size_t errlen) {
    for (;;) {
        yaml_event_t kev, vev;
        int rc = y_next(p, &kev, err, errlen);
        if (rc != MP_OK) return rc;
        if (kev.type == YAML_MAPPING_END_EVENT) {
            yaml_event_delete(&kev);
            return MP_OK;
        }
        size_t line = ev_line(&kev);
        if (kev.type != YAML_SCALAR_EVENT) {
            yaml_event_delete(&kev);
            return fail(err, errlen, "line %zu: keys must be plain names", line);
        }
        char key[KEY_MAX + 2];
        int klen = snprintf(key, sizeof key, "%s%s%s", prefix, *prefix ? "." : "", (const char *)kev.data.scalar.value);
        yaml_event_delete(&kev);
        if (klen < 0 || (size_t)klen >= sizeof key) return fail(err, errlen, "line %zu: unknown key '%.*s...'", line, KEY_MAX, key);

        rc = y_next(p, &vev, err, errlen);
        if (rc != MP_OK) return rc;
        line = ev_line(&vev);
        switch (vev.type) {
        case YAML_SCALAR_EVENT: {
            char msg[256];
            if (!find_opt(key) && is_section(key, strlen(key)))
                rc = fail(msg, sizeof msg, "'%s' is a section; expected a nested mapping", key);
            else
                rc = config_set(c, key, scalar_value(&vev), msg, sizeof msg);
            yaml_event_delete(&vev);
            if (rc != MP_OK) return fail(err, errlen, "line %zu: %s", line, msg);
            break;
        }
        case YAML_MAPPING_START_EVENT:
            yaml_event_delete(&vev);
            if (!is_section(key, strlen(key))) {
                char msg[256];
                if (find_opt(key)) snprintf(msg, sizeof msg, "'%s' takes a single value, not a mapping", key);
                else unknown_key(key, msg, sizeof msg);
                return fail(err, errlen, "line %zu: %s", line, msg);
            }
            rc = y_mapping(c, p, key, err, errlen);
            if (rc != MP_OK) return rc;
            break;
        case YAML_SEQUENCE_START_EVENT:
            yaml_event_delete(&vev);
            if (strcmp(key, "webhook.focusEvents") == 0) { /* the one list option (spec §6.1) */
                if ((rc = y_scalar_list(c, p, key, err, errlen)) != MP_OK) return rc;
                break;
            }
            return fail(err, errlen, "line %zu: '%s': lists are not supported", line, key);
        case YAML_ALIAS_EVENT:
            yaml_event_delete(&vev);
            return fail(err, errlen, "line %zu: '%s': aliases are not supported", line, key);
        default:
            yaml_event_delete(&vev);
            return fail(err, errlen, "line %zu: unexpected YAML structure", line);
        }
    }
}

/* The stream: nothing at all, an empty document, or one document holding one mapping. */
static int y_stream(mp_config *c, yaml_parser_t *p, char *err, size_t errlen) {
    yaml_event_t ev;
    int rc, docs = 0;
    for (;;) {
        if ((rc = y_next(p, &ev, err, errlen)) != MP_OK) return rc;
        yaml_event_type_t t = ev.type;
        size_t line = ev_line(&ev);
        int empty = t == YAML_SCALAR_EVENT && scalar_value(&ev)[0] == 0;
        yaml_event_delete(&ev);
        switch (t) {
        case YAML_STREAM_START_EVENT:
        case YAML_DOCUMENT_END_EVENT:
            break;
        case YAML_STREAM_END_EVENT:
            return MP_OK;
        case YAML_DOCUMENT_START_EVENT:
            if (++docs > 1) return fail(err, errlen, "line %zu: only one YAML document is allowed", line);
            break;
        case YAML_MAPPING_START_EVENT:
            if ((rc = y_mapping(c, p, "", err, errlen)) != MP_OK) return rc;
            break;
        default:
            if (empty) break;
            return fail(err, errlen, "line %zu: the top level must be a mapping of key: value", line);
        }
    }
}

int config_apply_yaml(mp_config *c, const char *text, size_t len, char *err, size_t errlen) {
    yaml_parser_t p;
    if (!yaml_parser_initialize(&p)) return fail(err, errlen, "cannot initialise the YAML parser");
    yaml_parser_set_input_string(&p, (const unsigned char *)text, len);
    int rc = y_stream(c, &p, err, errlen);
    yaml_parser_delete(&p);
    return rc;
}

static int apply_file(mp_config *c, const char *path, char *err, size_t errlen) {
    FILE *f = fopen(path, "rb");
    if (!f) return fail(err, errlen, "cannot open config file '%s': %s", path, strerror(errno));
    char *text = mp_malloc(FILE_MAX + 1);
    size_t n = fread(text, 1, FILE_MAX + 1, f);
    int rerr = ferror(f);
    fclose(f);
    int rc;
    if (rerr) rc = fail(err, errlen, "cannot read config file '%s'", path);
    else if (n > FILE_MAX) rc = fail(err, errlen, "%s: config file is larger than 1 MiB", path);
    else {
        char msg[384];
        rc = config_apply_yaml(c, text, n, msg, sizeof msg);
        if (rc != MP_OK) fail(err, errlen, "%s: %s", path, msg);
    }
    free(text);
    return rc;
}

/* ---------- environment and flags ---------- */

static int apply_env(mp_config *c, char *err, size_t errlen) {
    for (size_t i = 0; i < MP_ARRAY_LEN(options); i++) {
        char name[KEY_MAX + 16], msg[256];
        env_name(options[i].key, name, sizeof name);
        const char *v = getenv(name);
        if (!v) continue;
        if (opt_set(c, &options[i], v, msg, sizeof msg) != MP_OK)
            return fail(err, errlen, "%s (%s): %s", name, options[i].key, msg);
    }
    return MP_OK;
}

typedef struct flag_val {
    const opt *o;      /* NULL for --config */
    const char *value; /* borrowed from argv or a literal */
} flag_val;

/* Split argv into (option, value) pairs; nothing is applied yet. */
static int scan_flags(int argc, char **argv, flag_val *out, int *nout, char *err, size_t errlen) {
    int n = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strncmp(a, "--", 2) != 0 || !a[2]) return fail(err, errlen, "unexpected argument '%.64s' (see --help)", a);
        const char *name = a + 2, *eq = strchr(name, '=');
        size_t nlen = eq ? (size_t)(eq - name) : strlen(name);
        char key[KEY_MAX + 1];
        if (nlen > KEY_MAX) return fail(err, errlen, "unknown flag '--%.*s...'", KEY_MAX, name);
        memcpy(key, name, nlen);
        key[nlen] = 0;

        const opt *o = NULL;
        if (strcmp(key, "config") != 0) {
            o = find_opt(key);
            if (!o) {
                const char *s = suggest(key);
                if (s) return fail(err, errlen, "unknown flag '--%s' (did you mean '--%s'?)", key, s);
                return fail(err, errlen, "unknown flag '--%s' (see --help)", key);
            }
        }
        const char *v;
        if (eq) {
            v = eq + 1;
        } else if (i + 1 < argc && strncmp(argv[i + 1], "--", 2) != 0 && !(o && o->type == OPT_BOOL && argv[i + 1][0] == '-')) {
            v = argv[++i];
        } else if (o && o->type == OPT_BOOL) {
            v = "true"; /* bare --tokenAuthOn */
        } else {
            return fail(err, errlen, "flag '--%s' needs a value", key);
        }
        if (!o && !*v) return fail(err, errlen, "flag '--config' needs a file name");
        out[n++] = (flag_val){o, v};
    }
    *nout = n;
    return MP_OK;
}

int config_load(mp_config *c, int argc, char **argv, char *err, size_t errlen) {
    config_defaults(c);
    /* --help and --version win over everything else, even a broken config. */
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            config_print_help(stdout);
            return 1;
        }
        if (strcmp(argv[i], "--version") == 0) {
            printf("magpie %s\n", MAGPIE_VERSION);
            return 1;
        }
    }
    flag_val *flags = mp_calloc((size_t)(argc > 0 ? argc : 1), sizeof *flags);
    int nflags = 0;
    int rc = scan_flags(argc, argv, flags, &nflags, err, errlen);
    if (rc != MP_OK) goto out;

    const char *file = getenv(ENV_PREFIX "CONFIG");
    if (file && !*file) file = NULL;
    for (int i = 0; i < nflags; i++)
        if (!flags[i].o) file = flags[i].value;
    if (file) {
        c->config_file = mp_strndup(file, strlen(file));
        if ((rc = apply_file(c, file, err, errlen)) != MP_OK) goto out;
    }
    if ((rc = apply_env(c, err, errlen)) != MP_OK) goto out;
    for (int i = 0; i < nflags; i++) {
        char msg[256];
        if (!flags[i].o) continue;
        if (opt_set(c, flags[i].o, flags[i].value, msg, sizeof msg) != MP_OK) {
            rc = fail(err, errlen, "--%s: %s", flags[i].o->key, msg);
            goto out;
        }
    }
out:
    free(flags);
    return rc;
}

/* ---------- help and docs ---------- */

void config_print_help(FILE *f) {
    fprintf(f,
            "Usage: magpie [--config FILE] [--KEY=VALUE | --KEY VALUE]...\n"
            "\n"
            "Magpie %s, a WuKongIM-compatible messaging server.\n"
            "Settings come from defaults, then the YAML file, then MAGPIE_* environment\n"
            "variables, then flags; later sources win. A bare boolean flag means true.\n"
            "\n"
            "  --config FILE   YAML configuration file (env MAGPIE_CONFIG)\n"
            "  -h, --help      print this help and exit\n"
            "  --version       print the version and exit\n"
            "\n"
            "Options (flag, YAML key and environment variable):\n",
            MAGPIE_VERSION);
    for (size_t i = 0; i < MP_ARRAY_LEN(options); i++) {
        const opt *o = &options[i];
        char flag[KEY_MAX + 16], env[KEY_MAX + 16], range[80];
        snprintf(flag, sizeof flag, "--%s=<%s>", o->key, type_name(o->type));
        env_name(o->key, env, sizeof env);
        fmt_range(o, range, sizeof range);
        fprintf(f, "  %s\n      %s\n      default: %s", flag, o->help, *o->def ? o->def : "\"\"");
        if (range[0]) fprintf(f, "  range: %s", range);
        fprintf(f, "  env: %s\n", env);
    }
}

static void md_cell(FILE *f, const char *s) {
    for (; *s; s++) {
        if (*s == '|') fputc('\\', f);
        fputc(*s, f);
    }
}

void config_print_markdown(FILE *f) {
    fputs("# Magpie configuration\n"
          "\n"
          "<!-- Generated from the options table in src/config/config.c; do not edit by hand.\n"
          "     Regenerate with: MAGPIE_WRITE_CONFIG_DOCS=docs/config.md build/test_config -->\n"
          "\n"
          "Every option can be set in four places. Later ones win:\n"
          "\n"
          "1. the built-in default (below);\n"
          "2. the YAML file named by `--config FILE` or the `MAGPIE_CONFIG` environment variable;\n"
          "3. an environment variable: `MAGPIE_` followed by the key in upper snake case, with `.`\n"
          "   becoming `_` (`tokenAuthOn` is `MAGPIE_TOKEN_AUTH_ON`, `messageRetry.interval` is\n"
          "   `MAGPIE_MESSAGE_RETRY_INTERVAL`);\n"
          "4. a command-line flag with the exact key: `--tokenAuthOn=true`, `--workers 2`,\n"
          "   `--messageRetry.interval=500ms`. A boolean flag with no value means true.\n"
          "\n"
          "Keys reuse WuKongIM's names where the concept matches. A dotted key is a nested mapping\n"
          "in YAML:\n"
          "\n"
          "```yaml\n"
          "tokenAuthOn: true\n"
          "managerToken: \"change-me\"\n"
          "external:\n"
          "  ip: 203.0.113.10\n"
          "messageRetry:\n"
          "  interval: 30s\n"
          "  maxCount: 3\n"
          "```\n"
          "\n"
          "Unknown keys and flags are errors, so a typo stops the server instead of being ignored.\n"
          "Only single values are accepted (no lists).\n"
          "\n"
          "Value syntax:\n"
          "\n"
          "* **bool**: `true`/`false`, `1`/`0`, `yes`/`no`, `on`/`off`.\n"
          "* **duration**: `250ms`, `4s`, `3m`, `1h`, `1m30s` (whole numbers), or a plain number of\n"
          "  milliseconds.\n"
          "* **size**: bytes (`1048576`), or with a unit: `KiB`, `MiB`, `GiB`, `TiB` (also `K`, `M`,\n"
          "  `G`, `T`) are powers of 1024; `KB`, `MB`, `GB`, `TB` are powers of 1000.\n"
          "* **host:port** addresses: `0.0.0.0:5100`, `[::1]:5100`, `:5100` (all interfaces); a\n"
          "  leading `tcp://`, `ws://` or `wss://` is accepted.\n"
          "\n"
          "| Key | Type | Default | Environment | Description |\n"
          "|---|---|---|---|---|\n",
          f);
    for (size_t i = 0; i < MP_ARRAY_LEN(options); i++) {
        const opt *o = &options[i];
        char env[KEY_MAX + 16], range[80];
        env_name(o->key, env, sizeof env);
        fmt_range(o, range, sizeof range);
        fprintf(f, "| `%s` | %s | ", o->key, type_name(o->type));
        if (*o->def) fprintf(f, "`%s`", o->def);
        else fputs("(empty)", f);
        fprintf(f, " | `%s` | ", env);
        md_cell(f, o->help);
        if (range[0]) {
            fputs(" Range: ", f);
            md_cell(f, range);
            fputc('.', f);
        }
        fputs(" |\n", f);
    }
}

/* ---------- addresses ---------- */

int config_parse_hostport(const char *addr, char *host, size_t cap, int *port) {
    if (!addr) return MP_EINVAL;
    const char *s = addr, *scheme = strstr(addr, "://");
    if (scheme) {
        for (const char *p = addr; p < scheme; p++)
            if (!isalnum((unsigned char)*p) && *p != '+' && *p != '-' && *p != '.') return MP_EINVAL;
        if (scheme == addr) return MP_EINVAL;
        s = scheme + 3;
    }
    const char *hs, *he, *colon;
    if (*s == '[') {
        hs = s + 1;
        he = strchr(hs, ']');
        if (!he || he == hs || he[1] != ':') return MP_EINVAL;
        colon = he + 1;
    } else {
        colon = strrchr(s, ':');
        if (!colon) return MP_EINVAL;
        hs = s;
        he = colon;
        if (memchr(hs, ':', (size_t)(he - hs))) return MP_EINVAL; /* IPv6 needs brackets */
    }
    for (const char *p = hs; p < he; p++)
        if ((unsigned char)*p <= ' ' || *p == '/' || *p == '[' || *p == ']' || *p == '@' || *p == 0x7f) return MP_EINVAL;
    const char *end;
    uint64_t pv;
    if (parse_digits(colon + 1, &end, &pv) != MP_OK || *end || pv > 65535) return MP_EINVAL;

    size_t hlen = (size_t)(he - hs);
    if (hlen == 0) hs = "0.0.0.0", hlen = 7;
    if (host) {
        if (hlen + 1 > cap) return MP_EINVAL;
        memcpy(host, hs, hlen);
        host[hlen] = 0;
    }
    if (port) *port = (int)pv;
    return MP_OK;
}
