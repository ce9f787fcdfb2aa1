/* api_ops.c - operations endpoints (spec §4.2, §4.3, §4.7): POST /user/onlinestatus,
 * POST /conn/kick and /conn/remove, GET /varz and GET /connz, POST /user/update_plugin_no.
 *
 * Connections and the online registry belong to the workers, so every answer here is
 * gathered: the handler asks (presence_query, conn_list, conn_stats_gather, conn_admin)
 * and answers from the callback, which runs back on the API's worker. The only state of
 * this file is the last CPU sample of /varz, touched on the API thread alone. */
#include <errno.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>

#include "../common/log.h"
#include "../common/map.h"
#include "../core/im.h"
#include "../core/presence.h"
#include "../integ/datasource.h"
#include "../integ/webhook.h"
#include "../net/conn.h"
#include "../store/store.h"
#include "api_routes.h"
#include "json_util.h"

#define ONLINESTATUS_MAX_UIDS 10000
#define CONN_LIST_DEFAULT_LIMIT 20
#define CONN_LIST_MAX_LIMIT 10000
#define PLUGIN_NO_MAX_LEN 128
#define PLUGIN_NO_KEY_PREFIX "plugin_no/" /* STORE_KV_USER row: plugin_no/<uid> -> plugin_no */
#define CPU_SAMPLE_MIN_MS 1000           /* /varz cpu is averaged over at least this long */

/* ---- shared helpers ----------------------------------------------------------------------- */

static void reply_bad(api_req *r, json_t *root, const char *msg) {
    json_decref(root);
    api_reply_error(r, 400, "%s", msg);
}

/* A node id other than ours: Magpie is a single node, so there is nowhere to forward. */
static int foreign_node(uint64_t node_id) { return node_id != 0 && node_id != api_cfg()->node_id; }

/* Go's strconv.ParseInt(s, 10, 64): optional sign and digits only; 0 on any error, as
 * WuKongIM ignores the error. */
static int64_t query_int(api_req *r, const char *name) {
    mp_str v;
    if (!api_req_query(r, name, &v) || v.len == 0 || v.len > 20) return 0;
    char buf[24];
    memcpy(buf, v.p, v.len);
    buf[v.len] = '\0';
    uint32_t i = (buf[0] == '-' || buf[0] == '+') ? 1 : 0;
    if (i == v.len) return 0;
    for (uint32_t k = i; k < v.len; k++)
        if (buf[k] < '0' || buf[k] > '9') return 0;
    errno = 0;
    long long n = strtoll(buf, NULL, 10);
    return errno ? 0 : (int64_t)n;
}

static uint64_t query_uint(api_req *r, const char *name) {
    int64_t n = query_int(r, name);
    return n > 0 ? (uint64_t)n : 0;
}

/* A list limit as WuKongIM reads it (0 or negative means 20), capped. */
static size_t list_limit(int64_t n) {
    if (n <= 0) return CONN_LIST_DEFAULT_LIMIT;
    return n > CONN_LIST_MAX_LIMIT ? CONN_LIST_MAX_LIMIT : (size_t)n;
}

/* Go's time.Time JSON for a wall-clock instant: RFC 3339 in UTC, with the fraction of the
 * second trimmed of trailing zeros (and left out when 0). */
static json_t *rfc3339(uint64_t ns) {
    time_t sec = (time_t)(ns / 1000000000u);
    uint32_t frac = (uint32_t)(ns % 1000000000u);
    struct tm tm;
    gmtime_r(&sec, &tm);
    char out[64], f[16] = "";
    if (frac) {
        snprintf(f, sizeof f, ".%09u", frac);
        size_t n = strlen(f);
        while (n > 1 && f[n - 1] == '0') f[--n] = '\0'; /* f is "." + 9 digits, frac != 0 */
    }
    snprintf(out, sizeof out, "%04d-%02d-%02dT%02d:%02d:%02d%sZ", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
             tm.tm_hour, tm.tm_min, tm.tm_sec, f);
    return json_string(out);
}

/* WuKongIM's duration text for uptime and idle: whole seconds as "1y2d3h4m5s", leading
 * zero units left out ("4m5s", "0s"). */
static json_t *uptime_text(uint64_t ms) {
    uint64_t s = ms / 1000, m = s / 60, h = m / 60, d = h / 24, y = d / 365;
    char out[96];
    if (y) snprintf(out, sizeof out, "%lluy%llud%lluh%llum%llus", (unsigned long long)y, (unsigned long long)(d % 365),
                    (unsigned long long)(h % 24), (unsigned long long)(m % 60), (unsigned long long)(s % 60));
    else if (d) snprintf(out, sizeof out, "%llud%lluh%llum%llus", (unsigned long long)d, (unsigned long long)(h % 24),
                         (unsigned long long)(m % 60), (unsigned long long)(s % 60));
    else if (h) snprintf(out, sizeof out, "%lluh%llum%llus", (unsigned long long)h, (unsigned long long)(m % 60),
                         (unsigned long long)(s % 60));
    else if (m) snprintf(out, sizeof out, "%llum%llus", (unsigned long long)m, (unsigned long long)(s % 60));
    else snprintf(out, sizeof out, "%llus", (unsigned long long)s);
    return json_string(out);
}

/* ---- POST /user/onlinestatus --------------------------------------------------------------- */

typedef struct online_ctx {
    api_req *r;
    json_t *root;  /* keeps the uid strings alive */
    mp_str *uids;  /* distinct uids, in request order */
} online_ctx;

static void online_done(void *ctx, const presence_conn *conns, size_t n) {
    online_ctx *o = ctx;
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++) {
        json_t *e = json_object();
        json_object_set_new(e, "uid", ju_string(o->uids[conns[i].uid_index]));
        json_object_set_new(e, "device_flag", json_integer(conns[i].device_flag));
        json_object_set_new(e, "online", json_integer(1));
        json_array_append_new(arr, e);
    }
    api_reply_json(o->r, 200, arr);
    free(o->uids);
    json_decref(o->root);
    free(o);
}

/* Drop repeated uids (keeping the first), so each connection is listed once. */
static size_t distinct(mp_str *uids, size_t n) {
    mp_map *seen = map_new();
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        if (map_get(seen, uids[i].p, uids[i].len)) continue;
        map_put(seen, uids[i].p, uids[i].len, (void *)1);
        uids[m++] = uids[i];
    }
    map_free(seen, NULL);
    return m;
}

void api_user_onlinestatus(api_req *r) {
    mp_str *uids;
    size_t n;
    json_t *root = api_parse_uid_array(r, NULL, &uids, &n);
    if (!root) return;
    if (n == 0) { /* WuKongIM: an empty (or null) list is a plain OK, not [] */
        json_decref(root);
        api_reply_ok(r);
        return;
    }
    if (n > ONLINESTATUS_MAX_UIDS) {
        free(uids);
        json_decref(root);
        api_reply_error(r, 400, "at most %d uids per request, got %zu", ONLINESTATUS_MAX_UIDS, n);
        return;
    }
    online_ctx *o = mp_malloc(sizeof *o);
    o->r = r;
    o->root = root;
    o->uids = uids;
    presence_query(uids, distinct(uids, n), online_done, o);
}

/* ---- POST /conn/kick, /conn/remove ---------------------------------------------------------- */

static void admin_done(void *ctx, int acted) {
    (void)acted; /* OK either way, as WuKongIM */
    api_reply_ok(ctx);
}

static void conn_admin_req(api_req *r, int op) {
    json_t *root = api_parse_object(r);
    if (!root) return;
    ju j;
    ju_init(&j, root);
    mp_str uid = ju_str(&j, "uid");
    int64_t conn_id = ju_int(&j, "conn_id", INT64_MIN, INT64_MAX);
    uint64_t node_id = ju_uint(&j, "node_id", UINT64_MAX);
    uint64_t op_node_id = ju_uint(&j, "op_node_id", UINT64_MAX);
    if (!j.failed) {
        if (foreign_node(op_node_id))
            ju_fail(&j, "op_node_id %llu is not this node (Magpie is a single node, nodeId %u)",
                    (unsigned long long)op_node_id, api_cfg()->node_id);
        else if (conn_id == 0) ju_fail(&j, "conn_id is required (not 0)");
        else if (foreign_node(node_id))
            ju_fail(&j, "node_id %llu is not this node (Magpie is a single node, nodeId %u)",
                    (unsigned long long)node_id, api_cfg()->node_id);
        else if (uid.len && !im_valid_id(uid)) ju_fail(&j, "uid is not a valid uid");
    }
    if (j.failed) {
        reply_bad(r, root, j.err);
        return;
    }
    conn_admin((uint64_t)conn_id, uid, op, api_cfg()->kick_close_delay_ms, admin_done, r);
    json_decref(root);
}

void api_conn_kick(api_req *r) { conn_admin_req(r, CONN_ADMIN_KICK); }
void api_conn_remove(api_req *r) { conn_admin_req(r, CONN_ADMIN_REMOVE); }

/* ---- ConnInfo (GET /connz, GET /varz?show=conn) ----------------------------------------------- */

static const char *device_name(uint8_t flag) {
    switch (flag) {
    case 0: return "App";
    case 1: return "Web";
    case 2: return "PC";
    default: return "未知"; /* WuKongIM's "unknown" */
    }
}

static json_t *conn_info_json(const conn_info *c, uint64_t now_ns, uint64_t now_mono) {
    const mp_config *cfg = api_cfg();
    uint64_t idle_ms = now_mono > c->last_recv_ms ? now_mono - c->last_recv_ms : 0;
    uint64_t up_ms = now_mono > c->created_ms ? now_mono - c->created_ms : 0;
    uint64_t last_ns = now_ns - idle_ms * 1000000u;
    char device[32];
    /* level 0 is a slave (从), anything else a master (主) */
    snprintf(device, sizeof device, "%s(%s)", device_name(c->device_flag), c->device_level == 0 ? "从" : "主");
    json_t *o = json_object();
    json_object_set_new(o, "id", json_integer((json_int_t)c->id));
    json_object_set_new(o, "uid", ju_string(mp_str_c(c->uid)));
    json_object_set_new(o, "ip", ju_string(mp_str_c(c->ip)));
    json_object_set_new(o, "port", json_integer(c->port));
    json_object_set_new(o, "last_activity", rfc3339(last_ns - last_ns % 1000000000u)); /* seconds, as WuKongIM */
    json_object_set_new(o, "uptime", uptime_text(up_ms));
    json_object_set_new(o, "idle", uptime_text(idle_ms));
    json_object_set_new(o, "pending_bytes", json_integer((json_int_t)c->pending_bytes));
    json_object_set_new(o, "in_msgs", json_integer((json_int_t)c->in_msgs));
    json_object_set_new(o, "out_msgs", json_integer((json_int_t)c->out_msgs));
    json_object_set_new(o, "in_msg_bytes", json_integer((json_int_t)c->in_msg_bytes));
    json_object_set_new(o, "out_msg_bytes", json_integer((json_int_t)c->out_msg_bytes));
    json_object_set_new(o, "in_packets", json_integer((json_int_t)c->in_packets));
    json_object_set_new(o, "out_packets", json_integer((json_int_t)c->out_packets));
    json_object_set_new(o, "in_packet_bytes", json_integer((json_int_t)c->in_packet_bytes));
    json_object_set_new(o, "out_packet_bytes", json_integer((json_int_t)c->out_packet_bytes));
    json_object_set_new(o, "device", json_string(device));
    json_object_set_new(o, "device_id", ju_string(mp_str_c(c->device_id)));
    json_object_set_new(o, "version", json_integer(c->version));
    json_object_set_new(o, "proxy_type_format", json_string("本地连接")); /* WuKongIM's "local connection" */
    json_object_set_new(o, "leader_id", json_integer(cfg->node_id));
    json_object_set_new(o, "node_id", json_integer(cfg->node_id));
    return o;
}

static json_t *conn_infos_json(const conn_info *infos, size_t from, size_t n) {
    uint64_t now_ns = mp_now_ns(), now_mono = mp_mono_ms();
    json_t *arr = json_array();
    for (size_t i = from; i < n; i++) json_array_append_new(arr, conn_info_json(&infos[i], now_ns, now_mono));
    return arr;
}

/* ---- GET /connz ------------------------------------------------------------------------------ */

static const struct {
    const char *name;
    int sort;
} g_sorts[] = {
    {"id", CONN_SORT_ID},
    {"inMsg", CONN_SORT_IN_MSGS},
    {"outMsg", CONN_SORT_OUT_MSGS},
    {"inMsgBytes", CONN_SORT_IN_MSG_BYTES},
    {"outMsgBytes", CONN_SORT_OUT_MSG_BYTES},
    {"inPacket", CONN_SORT_IN_PACKETS},
    {"outPacket", CONN_SORT_OUT_PACKETS},
    {"inPacketBytes", CONN_SORT_IN_PACKET_BYTES},
    {"outPacketBytes", CONN_SORT_OUT_PACKET_BYTES},
    {"pendingBytes", CONN_SORT_PENDING_BYTES},
    {"uptime", CONN_SORT_CREATED},  /* WuKongIM orders by start time: the oldest first */
    {"idle", CONN_SORT_LAST_RECV},  /* by last activity: the longest idle first */
    {"protoVersion", CONN_SORT_VERSION},
};

/* "name" or "nameDesc"; anything else orders by id. */
static void parse_sort(mp_str s, conn_query *q) {
    q->sort = CONN_SORT_ID;
    q->desc = 0;
    for (size_t i = 0; i < MP_ARRAY_LEN(g_sorts); i++) {
        size_t n = strlen(g_sorts[i].name);
        if (s.len < n || memcmp(s.p, g_sorts[i].name, n) != 0) continue;
        if (s.len == n || (s.len == n + 4 && memcmp(s.p + n, "Desc", 4) == 0)) {
            q->sort = g_sorts[i].sort;
            q->desc = s.len > n;
            return;
        }
    }
}

typedef struct connz_ctx {
    api_req *r;
    size_t offset, limit;
} connz_ctx;

static void connz_done(void *ctx, const conn_info *infos, size_t n, size_t total) {
    connz_ctx *z = ctx;
    json_t *o = json_object();
    json_object_set_new(o, "connections", conn_infos_json(infos, MP_MIN(z->offset, n), n));
    json_object_set_new(o, "now", rfc3339(mp_now_ns()));
    json_object_set_new(o, "total", json_integer((json_int_t)total));
    json_object_set_new(o, "offset", json_integer((json_int_t)z->offset));
    json_object_set_new(o, "limit", json_integer((json_int_t)z->limit));
    api_reply_json(z->r, 200, o);
    free(z);
}

void api_connz(api_req *r) {
    uint64_t node_id = query_uint(r, "node_id");
    if (foreign_node(node_id)) {
        api_reply_error(r, 400, "node_id %llu is not this node (Magpie is a single node, nodeId %u)",
                        (unsigned long long)node_id, api_cfg()->node_id);
        return;
    }
    int64_t offset = query_int(r, "offset");
    connz_ctx *z = mp_malloc(sizeof *z);
    z->r = r;
    z->offset = offset > 0 ? (size_t)offset : 0; /* WuKongIM fails on a negative offset */
    z->limit = list_limit(query_int(r, "limit"));
    mp_str uid = {"", 0}, sort = {"", 0};
    api_req_query(r, "uid", &uid);
    api_req_query(r, "sort", &sort);
    conn_query q = {0};
    if (!ju_blank(uid)) q.uid_part = uid; /* a substring, as WuKongIM matches it */
    parse_sort(sort, &q);
    q.keep = z->offset + z->limit;
    conn_list(&q, connz_done, z);
}

/* ---- GET /varz ------------------------------------------------------------------------------- */

/* What /proc/self/stat says about this process. */
typedef struct proc_usage {
    uint64_t rss_bytes;
    uint64_t threads;
    uint64_t uptime_ms;
} proc_usage;

static void read_proc(proc_usage *u) {
    memset(u, 0, sizeof *u);
    FILE *f = fopen("/proc/self/stat", "r");
    if (!f) return;
    char buf[1024];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    char *p = strrchr(buf, ')'); /* the command name may contain spaces */
    if (!p) return;
    /* fields from 3 (state) on; 1-based numbers as in proc(5) */
    unsigned long long v[64] = {0};
    int field = 3;
    for (char *tok = strtok(p + 1, " "); tok && field < 64; tok = strtok(NULL, " "), field++)
        v[field] = strtoull(tok, NULL, 10);
    long page = sysconf(_SC_PAGESIZE), ticks = sysconf(_SC_CLK_TCK);
    u->threads = v[20];
    u->rss_bytes = v[24] * (uint64_t)(page > 0 ? page : 4096);
    struct timespec boot;
    if (ticks > 0 && clock_gettime(CLOCK_BOOTTIME, &boot) == 0) {
        uint64_t now_ms = (uint64_t)boot.tv_sec * 1000 + (uint64_t)boot.tv_nsec / 1000000;
        uint64_t start_ms = v[22] * 1000 / (uint64_t)ticks;
        u->uptime_ms = now_ms > start_ms ? now_ms - start_ms : 0;
    }
}

/* Process CPU in percent of one core, averaged since the previous sample (taken at least
 * CPU_SAMPLE_MIN_MS earlier), or since start for the first. One decimal, as WuKongIM. */
static double cpu_percent(uint64_t uptime_ms) {
    static uint64_t last_mono_ms, last_cpu_ns;
    static double last_pct;
    static int sampled;
    struct timespec ts;
    if (clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts) != 0) return 0;
    uint64_t cpu_ns = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec, now = mp_mono_ms();
    uint64_t window_ms = sampled ? now - last_mono_ms : uptime_ms;
    if (sampled && window_ms < CPU_SAMPLE_MIN_MS) return last_pct;
    uint64_t used_ns = cpu_ns - (sampled ? last_cpu_ns : 0);
    if (window_ms > 0) last_pct = (double)used_ns / ((double)window_ms * 10000.0); /* 100 * ns / (ms * 1e6) */
    last_pct = (double)(int64_t)(last_pct * 10.0) / 10.0;
    last_mono_ms = now;
    last_cpu_ns = cpu_ns;
    sampled = 1;
    return last_pct;
}

typedef struct varz_ctx {
    api_req *r;
    int show_conns;
    size_t conn_limit;
    conn_stats cs;
    presence_stats ps;
} varz_ctx;

/* Magpie's own addition to /varz: the group-commit writer's counters (WuKongIM readers
 * ignore unknown keys). */
static json_t *store_json(void) {
    store_stats st;
    store_get_stats(im_store(), &st);
    json_t *o = json_object();
    json_object_set_new(o, "ops", json_integer((json_int_t)st.completed));
    json_object_set_new(o, "queued", json_integer((json_int_t)st.queued));
    json_object_set_new(o, "commits", json_integer((json_int_t)st.commits));
    json_object_set_new(o, "commit_failures", json_integer((json_int_t)st.commit_failures));
    json_object_set_new(o, "largest_batch", json_integer((json_int_t)st.largest_batch));
    json_object_set_new(o, "nested_reruns", json_integer((json_int_t)st.nested_reruns));
    json_object_set_new(o, "map_size", json_integer((json_int_t)st.map_size));
    json_object_set_new(o, "read_barriers", json_integer((json_int_t)st.barriers));
    return o;
}

static void varz_reply(varz_ctx *v, json_t *conns) {
    const mp_config *cfg = api_cfg();
    proc_usage pu;
    read_proc(&pu);
    char id[24], url[320];
    snprintf(id, sizeof id, "%u", cfg->node_id);
    api_url(url, sizeof url);
    json_t *addrs = json_object();
    api_client_addrs(0, addrs);
    json_t *o = json_object();
    json_object_set_new(o, "server_id", json_string(id));
    json_object_set_new(o, "server_name", json_string("Magpie"));
    json_object_set_new(o, "version", json_string(MAGPIE_VERSION));
    json_object_set_new(o, "connections", json_integer((json_int_t)v->cs.conns));
    json_object_set_new(o, "user_handler_count", json_integer((json_int_t)v->ps.users));
    json_object_set_new(o, "user_handler_conn_count", json_integer((json_int_t)v->ps.conns));
    json_object_set_new(o, "uptime", uptime_text(pu.uptime_ms));
    json_object_set_new(o, "goroutine", json_integer((json_int_t)pu.threads));
    json_object_set_new(o, "mem", json_integer((json_int_t)pu.rss_bytes));
    json_object_set_new(o, "cpu", json_real(cpu_percent(pu.uptime_ms)));
    json_object_set_new(o, "in_msgs", json_integer((json_int_t)v->cs.in_msgs));
    json_object_set_new(o, "out_msgs", json_integer((json_int_t)v->cs.out_msgs));
    json_object_set_new(o, "in_bytes", json_integer((json_int_t)v->cs.in_packet_bytes));
    json_object_set_new(o, "out_bytes", json_integer((json_int_t)v->cs.out_packet_bytes));
    json_object_set_new(o, "slow_clients", json_integer((json_int_t)v->cs.slow_clients));
    json_object_set_new(o, "retry_queue", json_integer((json_int_t)v->cs.pending_recvs));
    json_object_set(o, "tcp_addr", json_object_get(addrs, "tcp_addr"));
    json_object_set(o, "ws_addr", json_object_get(addrs, "ws_addr"));
    json_object_set(o, "wss_addr", json_object_get(addrs, "wss_addr"));
    json_decref(addrs);
    char mgr[320];
    api_manager_addr(mgr, sizeof mgr);
    json_object_set_new(o, "manager_addr", ju_string(mp_str_c(mgr)));
    json_object_set_new(o, "manager_on", json_integer(cfg->manager_on ? 1 : 0));
    json_object_set_new(o, "commit", json_string(""));
    json_object_set_new(o, "commit_date", json_string(""));
    json_object_set_new(o, "tree_state", json_string(""));
    json_object_set_new(o, "api_url", ju_string(mp_str_c(url)));
    json_object_set_new(o, "manager_uid", ju_string(mp_str_c(cfg->manager_uid ? cfg->manager_uid : "")));
    int token_on = cfg->manager_token && !ju_blank(mp_str_c(cfg->manager_token));
    json_object_set_new(o, "manager_token_on", json_integer(token_on));
    if (conns && json_array_size(conns)) json_object_set(o, "conns", conns); /* Go: omitempty */
    json_decref(conns);
    json_object_set_new(o, "conversation_cache_count", json_integer(0)); /* no conversation cache */
    json_object_set_new(o, "store", store_json());
    json_object_set_new(o, "datasource", ds_stats_json()); /* Magpie: docs/datasource.md */
    json_object_set_new(o, "webhook", webhook_stats_json()); /* Magpie: docs/webhooks.md */
    /* 15 digits print cpu 0.3 as Go does, not as 0.29999999999999999 */
    char *text = json_dumps(o, JSON_COMPACT | JSON_REAL_PRECISION(15));
    MP_ASSERT(text);
    json_decref(o);
    api_reply_text(v->r, 200, "application/json; charset=utf-8", mp_str_c(text));
    free(text);
    free(v);
}

static void varz_conns_done(void *ctx, const conn_info *infos, size_t n, size_t total) {
    (void)total;
    varz_reply(ctx, conn_infos_json(infos, 0, n));
}

static void varz_presence_done(void *ctx, const presence_stats *s) {
    varz_ctx *v = ctx;
    v->ps = *s;
    if (!v->show_conns) {
        varz_reply(v, NULL);
        return;
    }
    conn_query q = {.sort = CONN_SORT_IN_MSGS, .desc = 1, .keep = v->conn_limit}; /* as WuKongIM */
    conn_list(&q, varz_conns_done, v);
}

static void varz_conn_stats_done(void *ctx, const conn_stats *s) {
    varz_ctx *v = ctx;
    v->cs = *s;
    presence_stats_gather(varz_presence_done, v);
}

void api_varz(api_req *r) {
    uint64_t node_id = query_uint(r, "node_id");
    if (foreign_node(node_id)) {
        api_reply_error(r, 400, "node_id %llu is not this node (Magpie is a single node, nodeId %u)",
                        (unsigned long long)node_id, api_cfg()->node_id);
        return;
    }
    mp_str show;
    varz_ctx *v = mp_calloc(1, sizeof *v);
    v->r = r;
    v->show_conns = api_req_query(r, "show", &show) && mp_str_eq_c(show, "conn");
    v->conn_limit = list_limit(query_int(r, "conn_limit"));
    conn_stats_gather(varz_conn_stats_done, v);
}

/* ---- POST /user/update_plugin_no ------------------------------------------------------------- */

typedef struct plugin_op {
    api_req *r;
    int origin;
    int status;
    mp_str key, val; /* point into text */
    char text[];
} plugin_op;

static int write_plugin_no(store_wtxn *t, void *arg) {
    plugin_op *op = arg;
    if (op->val.len == 0) return store_txn_del_kv(t, STORE_KV_USER, op->key); /* unbind */
    return store_txn_put_kv(t, STORE_KV_USER, op->key, op->val);
}

static void plugin_finish(worker *w, void *arg) {
    (void)w;
    plugin_op *op = arg;
    if (op->status == MP_OK) api_reply_ok(op->r);
    else api_reply_error(op->r, 400, "cannot store plugin_no: %s", mp_strerror(op->status));
    free(op);
}

static void plugin_stored(void *arg, int status) { /* writer thread */
    plugin_op *op = arg;
    op->status = status;
    worker_post(op->origin, plugin_finish, op);
}

void api_user_update_plugin_no(api_req *r) {
    json_t *root = api_parse_object(r);
    if (!root) return;
    ju j;
    ju_init(&j, root);
    mp_str uid = ju_str(&j, "uid");
    mp_str plugin_no = ju_str(&j, "plugin_no");
    if (!j.failed) {
        if (uid.len == 0) ju_fail(&j, "uid is required");
        else if (!im_valid_id(uid)) ju_fail(&j, "uid must not contain '@', '#' or '&' (nor be blank or too long)");
        else if (plugin_no.len > PLUGIN_NO_MAX_LEN) ju_fail(&j, "plugin_no is longer than %d bytes", PLUGIN_NO_MAX_LEN);
    }
    if (j.failed) {
        reply_bad(r, root, j.err);
        return;
    }
    size_t plen = strlen(PLUGIN_NO_KEY_PREFIX);
    plugin_op *op = mp_calloc(1, sizeof *op + plen + uid.len + plugin_no.len);
    op->r = r;
    op->origin = worker_current()->index;
    char *cur = op->text;
    op->key = mp_str_pack(&cur, (mp_str){PLUGIN_NO_KEY_PREFIX, (uint32_t)plen});
    mp_str_pack(&cur, uid);
    op->key.len += uid.len;
    op->val = mp_str_pack(&cur, plugin_no);
    json_decref(root);
    if (store_submit(im_store(), write_plugin_no, plugin_stored, op) != MP_OK) {
        free(op);
        api_reply_error(r, 503, "server is shutting down");
    }
}
