/* fuzz_config.c - the configuration parsers (src/config/config.h): config_apply_yaml for a
 * --config file and config_set for one --key=value flag or MAGPIE_* variable.
 *
 * Input: "--key=value" is given to config_set (key and value as C strings); anything
 * else is a YAML document. Invariants:
 *   - the result is MP_OK or MP_EINVAL, with a NUL-terminated, non-empty message on error;
 *   - the accepted values respect the documented limits (nodeId <= 1023, durability
 *     fsync|interval, maxPacketSize <= the protocol maximum);
 *   - applying the same document (or flag) a second time gives the same configuration
 *     (no state left behind by the first pass, no freed string still referenced);
 *   - config_free releases everything (LeakSanitizer). */
#include <string.h>

#include "config/config.h"
#include "fuzz_util.h"

static int str_eq(const char *a, const char *b) { return (!a && !b) || (a && b && strcmp(a, b) == 0); }

static void check_same(const mp_config *a, const mp_config *b) {
#define SAME_S(f) FUZZ_CHECK(str_eq(a->f, b->f))
#define SAME_N(f) FUZZ_CHECK(a->f == b->f)
    SAME_S(addr); SAME_S(ws_addr); SAME_S(http_addr); SAME_S(data_dir); SAME_S(manager_token);
    SAME_S(manager_uid); SAME_S(visitors_suffix); SAME_S(durability); SAME_S(external_ip);
    SAME_S(external_tcp_addr); SAME_S(external_ws_addr); SAME_S(external_wss_addr); SAME_S(intranet_tcp_addr);
    SAME_S(config_file);
    SAME_N(workers); SAME_N(token_auth_on); SAME_N(disable_encryption); SAME_N(whitelist_off_of_person);
    SAME_N(disable_cmd_message_sync); SAME_N(disable_jsonrpc); SAME_N(sync_interval_ms); SAME_N(store_map_size);
    SAME_N(node_id); SAME_N(conn_idle_ms); SAME_N(preauth_timeout_ms); SAME_N(kick_close_delay_ms);
    SAME_N(tag_expire_ms); SAME_N(max_packet_size); SAME_N(max_connections); SAME_N(out_buffer_limit);
    SAME_N(http_body_limit); SAME_N(queue_capacity); SAME_N(retry_interval_ms); SAME_N(retry_scan_ms);
    SAME_N(retry_max_count); SAME_N(log_level);
#undef SAME_S
#undef SAME_N
}

static void check_limits(const mp_config *c) {
    FUZZ_CHECK(c->node_id <= 1023);
    FUZZ_CHECK(c->durability && (strcmp(c->durability, "fsync") == 0 || strcmp(c->durability, "interval") == 0));
    FUZZ_CHECK(c->max_packet_size <= 1048576);
    FUZZ_CHECK(c->addr && c->ws_addr && c->http_addr && c->data_dir);
}

/* Apply the input once; returns the result. */
static int apply(mp_config *c, const uint8_t *data, size_t size, int is_flag) {
    char err[256];
    memset(err, 'x', sizeof err);
    int rc;
    if (is_flag) {
        const char *s = (const char *)data + 2;
        size_t n = size - 2;
        const char *eq = memchr(s, '=', n);
        char *key = mp_strndup(s, eq ? (size_t)(eq - s) : n);
        char *val = eq ? mp_strndup(eq + 1, n - (size_t)(eq + 1 - s)) : NULL;
        rc = config_set(c, key, val, err, sizeof err);
        free(key);
        free(val);
    } else {
        rc = config_apply_yaml(c, (const char *)data, size, err, sizeof err);
    }
    FUZZ_CHECK(rc == MP_OK || rc == MP_EINVAL);
    if (rc != MP_OK) FUZZ_CHECK(memchr(err, 0, sizeof err) != NULL && err[0] != 0);
    return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    int is_flag = size >= 2 && data[0] == '-' && data[1] == '-';
    mp_config a, b;
    config_defaults(&a);
    config_defaults(&b);
    int rc = apply(&a, data, size, is_flag);
    if (rc == MP_OK) {
        check_limits(&a);
        FUZZ_CHECK(apply(&a, data, size, is_flag) == MP_OK); /* idempotent over its own result */
        FUZZ_CHECK(apply(&b, data, size, is_flag) == MP_OK);
        check_same(&a, &b);
    }
    config_free(&a);
    config_free(&b);
    return 0;
}
