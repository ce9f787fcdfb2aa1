/* test_config.c - the options table: defaults, value syntax, YAML, environment, flags,
 * precedence, validation, host:port parsing, and that docs/config.md matches the table.
 *
 * To regenerate docs/config.md after changing the table:
 *   MAGPIE_WRITE_CONFIG_DOCS=docs/config.md build/test_config */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>

#include "config/config.h"

extern char **environ;

/* Every test starts from an environment without MAGPIE_* variables (ctest sets some). */
static int clean_env(void **state) {
    (void)state;
    for (;;) {
        char name[256] = {0};
        for (char **e = environ; *e; e++) {
            if (strncmp(*e, "MAGPIE_", 7) == 0) {
                const char *eq = strchr(*e, '=');
                size_t n = eq ? (size_t)(eq - *e) : strlen(*e);
                if (n < sizeof name) memcpy(name, *e, n);
                break;
            }
        }
        if (!name[0]) return 0;
        unsetenv(name);
    }
}

static char *write_tmp(const char *text) {
    char *path = strdup("/tmp/magpie-test-config-XXXXXX");
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    size_t n = strlen(text);
    assert_int_equal(write(fd, text, n), (ssize_t)n);
    close(fd);
    return path;
}

static int load(mp_config *c, char *err, size_t errlen, int argc, ...) {
    char *argv[32] = {"magpie"};
    va_list ap;
    va_start(ap, argc);
    for (int i = 1; i < argc && i < 32; i++) argv[i] = va_arg(ap, char *);
    va_end(ap);
    return config_load(c, argc, argv, err, errlen);
}

/* Run config_load with stdout sent to /dev/null (for --help / --version). */
static int load_quiet(mp_config *c, int argc, char **argv) {
    char err[256];
    fflush(stdout);
    int saved = dup(1), null = open("/dev/null", O_WRONLY);
    dup2(null, 1);
    int rc = config_load(c, argc, argv, err, sizeof err);
    fflush(stdout);
    dup2(saved, 1);
    close(saved);
    close(null);
    return rc;
}

static void test_defaults(void **state) {
    (void)state;
    mp_config c;
    config_defaults(&c);
    assert_string_equal(c.addr, "0.0.0.0:5100");
    assert_string_equal(c.ws_addr, "0.0.0.0:5200");
    assert_string_equal(c.http_addr, "0.0.0.0:5001");
    assert_string_equal(c.data_dir, "./magpie-data");
    assert_int_equal(c.workers, 0);
    assert_int_equal(c.token_auth_on, 0);
    assert_string_equal(c.manager_token, "");
    assert_int_equal(c.disable_encryption, 0);
    assert_int_equal(c.whitelist_off_of_person, 1);
    assert_string_equal(c.durability, "fsync");
    assert_int_equal(c.sync_interval_ms, 100);
    assert_true(c.store_map_size == 64ull << 30);
    assert_int_equal(c.node_id, 1001);
    assert_int_equal(c.conn_idle_ms, 180000);
    assert_int_equal(c.preauth_timeout_ms, 4000);
    assert_int_equal(c.kick_close_delay_ms, 2000);
    assert_int_equal(c.max_packet_size, 1048576);
    assert_int_equal(c.max_connections, 1000000);
    assert_true(c.out_buffer_limit == 8ull << 20);
    assert_int_equal(c.http_body_limit, 8u << 20);
    assert_int_equal(c.http_max_connections, 10000);
    assert_int_equal(c.http_request_timeout_ms, 10000);
    assert_int_equal(c.queue_capacity, 65536);
    assert_int_equal(c.retry_interval_ms, 60000);
    assert_int_equal(c.retry_scan_ms, 5000);
    assert_int_equal(c.retry_max_count, 5);
    assert_string_equal(c.external_ip, "");
    assert_string_equal(c.external_tcp_addr, "");
    assert_string_equal(c.external_ws_addr, "");
    assert_string_equal(c.external_wss_addr, "");
    assert_string_equal(c.intranet_tcp_addr, "");
    assert_int_equal(c.log_level, 2);
    assert_null(c.config_file);
    config_free(&c);
    assert_null(c.addr);
    config_free(&c); /* a second free is harmless */
}

static void test_load_no_args_gives_defaults(void **state) {
    (void)state;
    mp_config c;
    char err[256] = "";
    assert_int_equal(load(&c, err, sizeof err, 1), MP_OK);
    assert_string_equal(c.addr, "0.0.0.0:5100");
    assert_int_equal(c.log_level, 2);
    config_free(&c);
}

static void test_bool_values(void **state) {
    (void)state;
    static const char *yes[] = {"true", "TRUE", "1", "yes", "Yes", "on", "ON"};
    static const char *no[] = {"false", "False", "0", "no", "NO", "off", "Off"};
    mp_config c;
    char err[256];
    config_defaults(&c);
    for (size_t i = 0; i < MP_ARRAY_LEN(yes); i++) {
        c.token_auth_on = 0;
        assert_int_equal(config_set(&c, "tokenAuthOn", yes[i], err, sizeof err), MP_OK);
        assert_int_equal(c.token_auth_on, 1);
        assert_int_equal(config_set(&c, "tokenAuthOn", no[i], err, sizeof err), MP_OK);
        assert_int_equal(c.token_auth_on, 0);
    }
    static const char *bad[] = {"", "2", "tru", "enabled", "y"};
    for (size_t i = 0; i < MP_ARRAY_LEN(bad); i++) {
        assert_int_equal(config_set(&c, "tokenAuthOn", bad[i], err, sizeof err), MP_EINVAL);
        assert_non_null(strstr(err, "tokenAuthOn"));
    }
    config_free(&c);
}

static void test_durations(void **state) {
    (void)state;
    static const struct { const char *in; uint32_t ms; } ok[] = {
        {"3m", 180000}, {"4s", 4000}, {"250ms", 250}, {"1h", 3600000}, {"1m30s", 90000},
        {"1h2m3s4ms", 3723004}, {"1500", 1500}, {"0", 0}, {"0s", 0}, {"4294967295", 4294967295u},
    };
    static const char *bad[] = {"", "s", "5x", "1.5s", "-1s", "1d", "5 s", " 5s", "5s ", "ms5", "1m30", "4294967296", "50d",
                                "99999999999999999999999s", "1194h"};
    mp_config c;
    char err[256];
    config_defaults(&c);
    for (size_t i = 0; i < MP_ARRAY_LEN(ok); i++) {
        assert_int_equal(config_set(&c, "kickCloseDelay", ok[i].in, err, sizeof err), MP_OK);
        assert_int_equal(c.kick_close_delay_ms, ok[i].ms);
    }
    for (size_t i = 0; i < MP_ARRAY_LEN(bad); i++) {
        c.kick_close_delay_ms = 7;
        assert_int_equal(config_set(&c, "kickCloseDelay", bad[i], err, sizeof err), MP_EINVAL);
        assert_int_equal(c.kick_close_delay_ms, 7); /* unchanged on error */
    }
    assert_int_equal(config_set(&c, "messageRetry.interval", "500ms", err, sizeof err), MP_OK);
    assert_int_equal(c.retry_interval_ms, 500);
    /* connIdleTime must be positive */
    assert_int_equal(config_set(&c, "connIdleTime", "0", err, sizeof err), MP_EINVAL);
    assert_non_null(strstr(err, "connIdleTime"));
    config_free(&c);
}

static void test_sizes(void **state) {
    (void)state;
    static const struct { const char *in; uint64_t b; } ok[] = {
        {"1048576", 1048576}, {"8MiB", 8ull << 20}, {"1MB", 1000000}, {"512KiB", 512 << 10},
        {"64GiB", 64ull << 30}, {"2G", 2ull << 30}, {"4k", 4096}, {"3kb", 3000}, {"2mib", 2ull << 20},
        {"1TiB", 1ull << 40}, {"2048B", 2048},
    };
    static const char *bad[] = {"", "MiB", "8 MiB", "8MiBs", "1.5MiB", "-1", "8XB", "99999999999999999999"};
    mp_config c;
    char err[256];
    config_defaults(&c);
    for (size_t i = 0; i < MP_ARRAY_LEN(ok); i++) {
        assert_int_equal(config_set(&c, "outBufferLimit", ok[i].in, err, sizeof err), MP_OK);
        assert_true(c.out_buffer_limit == ok[i].b);
    }
    for (size_t i = 0; i < MP_ARRAY_LEN(bad); i++)
        assert_int_equal(config_set(&c, "outBufferLimit", bad[i], err, sizeof err), MP_EINVAL);
    assert_int_equal(config_set(&c, "store.mapSize", "1TiB", err, sizeof err), MP_OK);
    assert_true(c.store_map_size == 1ull << 40);
    assert_int_equal(config_set(&c, "maxPacketSize", "64KiB", err, sizeof err), MP_OK);
    assert_int_equal(c.max_packet_size, 65536);
    /* a 32-bit size cannot hold 4 GiB */
    assert_int_equal(config_set(&c, "httpBodyLimit", "4GiB", err, sizeof err), MP_EINVAL);
    config_free(&c);
}

static void test_integers(void **state) {
    (void)state;
    mp_config c;
    char err[256];
    config_defaults(&c);
    assert_int_equal(config_set(&c, "workers", "16", err, sizeof err), MP_OK);
    assert_int_equal(c.workers, 16);
    assert_int_equal(config_set(&c, "nodeId", "1023", err, sizeof err), MP_OK);
    assert_int_equal(c.node_id, 1023);
    assert_int_equal(config_set(&c, "nodeId", "0", err, sizeof err), MP_OK);
    static const char *bad[] = {"", "abc", "1.0", "+3", " 3", "3 ", "0x10", "--1", "99999999999999999999"};
    for (size_t i = 0; i < MP_ARRAY_LEN(bad); i++) {
        assert_int_equal(config_set(&c, "workers", bad[i], err, sizeof err), MP_EINVAL);
        assert_int_equal(config_set(&c, "maxConnections", bad[i], err, sizeof err), MP_EINVAL);
    }
    assert_int_equal(config_set(&c, "maxConnections", "-1", err, sizeof err), MP_EINVAL);
    config_free(&c);
}

static void test_log_level_names(void **state) {
    (void)state;
    static const struct { const char *v; int level; } cases[] = {
        {"debug", 1}, {"INFO", 2}, {"warn", 3}, {"warning", 3}, {"error", 4}, {"3", 3},
    };
    for (size_t i = 0; i < MP_ARRAY_LEN(cases); i++) {
        mp_config c;
        char err[256] = "";
        config_defaults(&c);
        assert_int_equal(config_set(&c, "logger.level", cases[i].v, err, sizeof err), MP_OK);
        assert_int_equal(c.log_level, cases[i].level);
        config_free(&c);
    }
}

static void test_validation(void **state) {
    (void)state;
    static const struct { const char *key, *value; } bad[] = {
        {"workers", "257"}, {"workers", "-1"}, {"nodeId", "1024"}, {"maxPacketSize", "15"},
        {"maxPacketSize", "1048577"}, {"maxPacketSize", "2MiB"}, {"durability", "none"}, {"durability", "FSYNC"},
        {"durability", ""}, {"logger.level", "0"}, {"logger.level", "5"}, {"logger.level", "verbose"}, {"auth.users", "alice:pw"},
        {"auth.users", "a:b:*,:pw:*"}, {"addr", "nohost"},
        {"addr", "0.0.0.0:65536"}, {"addr", "0.0.0.0:"}, {"addr", ""}, {"wsAddr", "ws://x"},
        {"httpAddr", "::1:5001"}, {"dataDir", ""}, {"external.tcpAddr", "1.2.3.4"},
        {"messageRetry.maxCount", "1001"}, {"queueCapacity", "1"}, {"syncInterval", "2m"},
        {"datasource.addr", "127.0.0.1:8090/ds"}, {"datasource.addr", "ftp://x/ds"}, {"datasource.onFailure", "allow"},
        {"datasource.onFailure", ""}, {"datasource.timeout", "0"}, {"datasource.maxParked", "0"},
        {"sched.latencySlice", "99"}, {"sched.latencySlice", "100001"}, {"sched.latencySlice", "1ms"},
        {"httpMaxConnections", "0"}, {"httpMaxConnections", "4294967296"}, {"httpMaxConnections", "-1"},
        {"httpRequestTimeout", "0"}, {"httpRequestTimeout", "99ms"}, {"httpRequestTimeout", "1h1ms"},
    };
    static const struct { const char *key, *value; } good[] = {
        {"workers", "256"}, {"maxPacketSize", "16"}, {"maxPacketSize", "1MiB"}, {"durability", "interval"},
        {"logger.level", "1"}, {"logger.level", "4"}, {"addr", "tcp://127.0.0.1:6100"}, {"wsAddr", "ws://[::]:6200"},
        {"httpAddr", ":6001"}, {"external.tcpAddr", ""}, {"external.wssAddr", "wss://im.example.com:5210"},
        {"managerToken", "s3cret"}, {"external.ip", "203.0.113.10"}, {"auth.users", "admin:p:*,ops:q:[conn:r,user:rw]"},
        {"datasource.addr", "http://127.0.0.1:8090/ds"}, {"datasource.addr", "https://biz.example.com/im"},
        {"datasource.addr", ""}, {"datasource.onFailure", "stored"}, {"datasource.cacheTTL", "0"},
        {"sched.latencySlice", "0"}, {"sched.latencySlice", "100000"}, {"sched.latencySlice", "250"},
        {"httpMaxConnections", "4294967295"}, {"httpMaxConnections", "1"},
        {"httpRequestTimeout", "1h"}, {"httpRequestTimeout", "100ms"},
    };
    mp_config c;
    char err[256];
    config_defaults(&c);
    for (size_t i = 0; i < MP_ARRAY_LEN(bad); i++) {
        err[0] = 0;
        assert_int_equal(config_set(&c, bad[i].key, bad[i].value, err, sizeof err), MP_EINVAL);
        assert_non_null(strstr(err, bad[i].key));
    }
    /* nothing changed */
    assert_int_equal(c.workers, 0);
    assert_int_equal(c.sched_latency_slice_us, 100);
    assert_int_equal(c.http_max_connections, 10000);
    assert_int_equal(c.http_request_timeout_ms, 10000);
    assert_string_equal(c.durability, "fsync");
    assert_string_equal(c.addr, "0.0.0.0:5100");
    for (size_t i = 0; i < MP_ARRAY_LEN(good); i++)
        assert_int_equal(config_set(&c, good[i].key, good[i].value, err, sizeof err), MP_OK);
    assert_string_equal(c.durability, "interval");
    assert_string_equal(c.manager_token, "s3cret");
    assert_int_equal(c.sched_latency_slice_us, 250);
    assert_int_equal(c.http_max_connections, 1);
    assert_int_equal(c.http_request_timeout_ms, 100);
    assert_string_equal(c.addr, "tcp://127.0.0.1:6100");
    config_free(&c);
}

static void test_unknown_key(void **state) {
    (void)state;
    mp_config c;
    char err[256];
    config_defaults(&c);
    assert_int_equal(config_set(&c, "tokenAuthOff", "true", err, sizeof err), MP_EINVAL);
    assert_non_null(strstr(err, "unknown key 'tokenAuthOff'"));
    assert_int_equal(config_set(&c, "tokenauthon", "true", err, sizeof err), MP_EINVAL);
    assert_non_null(strstr(err, "did you mean 'tokenAuthOn'"));
    assert_int_equal(config_set(&c, "messageRetry", "1", err, sizeof err), MP_EINVAL);
    assert_int_equal(config_set(&c, "", "1", err, sizeof err), MP_EINVAL);
    /* err may be NULL */
    assert_int_equal(config_set(&c, "nope", "1", NULL, 0), MP_EINVAL);
    config_free(&c);
}

static int yaml(mp_config *c, const char *text, char *err, size_t errlen) {
    return config_apply_yaml(c, text, strlen(text), err, errlen);
}

static void test_yaml_nested(void **state) {
    (void)state;
    mp_config c;
    char err[256] = "";
    config_defaults(&c);
    const char *text =
        "# Magpie test config\n"
        "addr: tcp://0.0.0.0:6100\n"
        "wsAddr: \"ws://0.0.0.0:6200\"\n"
        "tokenAuthOn: yes\n"
        "managerToken: 'abc: def'\n"
        "workers: 4\n"
        "messageRetry:\n"
        "  interval: 2s\n"
        "  maxCount: 7   # comment\n"
        "store:\n"
        "  mapSize: 1GiB\n"
        "external:\n"
        "  ip: 203.0.113.10\n"
        "  wsAddr: ws://203.0.113.10:5200\n"
        "logger: {level: 3}\n"
        "intranet:\n"
        "  tcpAddr:\n";
    assert_int_equal(yaml(&c, text, err, sizeof err), MP_OK);
    assert_string_equal(c.addr, "tcp://0.0.0.0:6100");
    assert_string_equal(c.ws_addr, "ws://0.0.0.0:6200");
    assert_int_equal(c.token_auth_on, 1);
    assert_string_equal(c.manager_token, "abc: def");
    assert_int_equal(c.workers, 4);
    assert_int_equal(c.retry_interval_ms, 2000);
    assert_int_equal(c.retry_max_count, 7);
    assert_int_equal(c.retry_scan_ms, 5000);
    assert_true(c.store_map_size == 1ull << 30);
    assert_string_equal(c.external_ip, "203.0.113.10");
    assert_string_equal(c.external_ws_addr, "ws://203.0.113.10:5200");
    assert_int_equal(c.log_level, 3);
    assert_string_equal(c.intranet_tcp_addr, "");
    config_free(&c);
}

/* spec §6.1 writes focusEvents as a YAML list; the webhook options refuse what Magpie
 * cannot honour (gRPC) and event names it does not know. */
static void test_yaml_webhook(void **state) {
    (void)state;
    mp_config c;
    char err[256] = "";
    config_defaults(&c);
    const char *text = "webhook:\n"
                       "  httpAddr: http://biz/webhook\n"
                       "  msgNotifyEventPushInterval: 250ms\n"
                       "  focusEvents: [\"msg.offline\", \"msg.notify\"]\n";
    assert_int_equal(yaml(&c, text, err, sizeof err), MP_OK);
    assert_string_equal(c.webhook_http_addr, "http://biz/webhook");
    assert_int_equal(c.webhook_push_interval_ms, 250);
    assert_string_equal(c.webhook_focus_events, "msg.offline,msg.notify");
    assert_int_equal(yaml(&c, "webhook:\n  focusEvents: []\n", err, sizeof err), MP_OK);
    assert_string_equal(c.webhook_focus_events, "");
    assert_int_equal(yaml(&c, "webhook:\n  focusEvents: [msg.notify, msg.bogus]\n", err, sizeof err), MP_EINVAL);
    assert_non_null(strstr(err, "msg.bogus"));
    assert_int_equal(yaml(&c, "webhook:\n  focusEvents: [[a]]\n", err, sizeof err), MP_EINVAL);
    assert_int_equal(yaml(&c, "webhook:\n  grpcAddr: 127.0.0.1:6979\n", err, sizeof err), MP_EINVAL);
    assert_non_null(strstr(err, "not supported"));
    assert_int_equal(yaml(&c, "webhook:\n  httpAddr: ftp://x\n", err, sizeof err), MP_EINVAL);
    config_free(&c);
}

static void test_yaml_empty_and_null(void **state) {
    (void)state;
    static const char *empties[] = {"", "\n", "# only a comment\n", "---\n", "---\n...\n", "~\n", "{}\n"};
    mp_config c;
    char err[256];
    config_defaults(&c);
    for (size_t i = 0; i < MP_ARRAY_LEN(empties); i++)
        assert_int_equal(yaml(&c, empties[i], err, sizeof err), MP_OK);
    assert_int_equal(yaml(&c, "managerToken: x\n", err, sizeof err), MP_OK);
    assert_int_equal(yaml(&c, "managerToken: ~\n", err, sizeof err), MP_OK);
    assert_string_equal(c.manager_token, "");
    assert_int_equal(yaml(&c, "managerToken: \"null\"\n", err, sizeof err), MP_OK);
    assert_string_equal(c.manager_token, "null");
    /* a null number is an error, not a silent default */
    assert_int_equal(yaml(&c, "workers:\n", err, sizeof err), MP_EINVAL);
    assert_non_null(strstr(err, "workers"));
    config_free(&c);
}

static void test_yaml_errors(void **state) {
    (void)state;
    static const struct { const char *text, *want; } cases[] = {
        {"workers: 2\ntokenAuthon: true\n", "line 2: unknown key 'tokenAuthon' (did you mean 'tokenAuthOn'?)"},
        {"messageRetry:\n  interval: 1s\n  bogus: 3\n", "line 3: unknown key 'messageRetry.bogus'"},
        {"cluster:\n  nodeId: 1\n", "line 2: unknown key 'cluster'"},
        {"messageRetry: 5\n", "line 1: 'messageRetry' is a section"},
        {"workers:\n  a: 1\n", "line 2: 'workers' takes a single value"},
        {"addr:\n  - a\n  - b\n", "'addr': lists are not supported"},
        {"workers: 300\n", "line 1: workers: '300' is out of range (0..256)"},
        {"x: &a 1\nworkers: *a\n", "unknown key 'x'"},
        {"workers: &a 1\nnodeId: *a\n", "line 2: 'nodeId': aliases are not supported"},
        {"- a\n- b\n", "top level must be a mapping"},
        {"hello\n", "top level must be a mapping"},
        {"workers: 1\n---\nworkers: 2\n", "only one YAML document"},
        {"? [a, b]\n: 1\n", "line 1: keys must be plain names"},
        /* malformed YAML, with the line of the problem */
        {"workers: 1\naddr: \"unterminated\n", "line 3"},
        {"workers: 1\nnodeId: 5\n  bad: indent\n", "line 2: nodeId: '5 bad'"}, /* a folded plain scalar */
        {"workers: 1\nmessageRetry:\n  interval: 1s\n maxCount: 2\n", "line 4"},
        {"workers: 1\nnodeId: 2\n- x\n", "line 3: while parsing a block mapping did not find expected key"},
        {"workers: 1\ntokenAuthOn: [true\n", "line 2: 'tokenAuthOn': lists are not supported"},
        {"a: b: c\n", "line 1"},
        {"workers: 1\n\tnodeId: 3\n", "line 2"},
    };
    for (size_t i = 0; i < MP_ARRAY_LEN(cases); i++) {
        mp_config c;
        char err[256] = "";
        config_defaults(&c);
        int rc = yaml(&c, cases[i].text, err, sizeof err);
        if (rc != MP_EINVAL || !strstr(err, cases[i].want))
            fail_msg("case %zu: rc=%d err='%s' want '%s'", i, rc, err, cases[i].want);
        config_free(&c);
    }
}

static void test_yaml_binary_garbage(void **state) {
    (void)state;
    static const char junk[] = "workers: 1\n\x00\xff\xfe: \x80\n";
    mp_config c;
    char err[256];
    config_defaults(&c);
    assert_int_equal(config_apply_yaml(&c, junk, sizeof junk - 1, err, sizeof err), MP_EINVAL);
    config_free(&c);
}

static void test_env_names_and_override(void **state) {
    (void)state;
    char *path = write_tmp("tokenAuthOn: false\nworkers: 3\nmessageRetry:\n  interval: 9s\ndataDir: /yaml\n");
    setenv("MAGPIE_CONFIG", path, 1);
    setenv("MAGPIE_TOKEN_AUTH_ON", "true", 1);
    setenv("MAGPIE_MESSAGE_RETRY_INTERVAL", "500ms", 1);
    setenv("MAGPIE_WS_ADDR", "ws://0.0.0.0:7200", 1);
    setenv("MAGPIE_DATA_DIR", "/env", 1);
    setenv("MAGPIE_STORE_MAP_SIZE", "2GiB", 1);
    setenv("MAGPIE_LOGGER_LEVEL", "1", 1);
    setenv("MAGPIE_EXTERNAL_TCP_ADDR", "203.0.113.1:5100", 1);
    setenv("MAGPIE_WHITELIST_OFF_OF_PERSON", "off", 1);
    setenv("MAGPIE_MESSAGE_RETRY_MAX_COUNT", "50", 1);
    setenv("MAGPIE_NODE_ID", "7", 1);
    setenv("MAGPIE_HTTP_MAX_CONNECTIONS", "3", 1);
    setenv("MAGPIE_HTTP_REQUEST_TIMEOUT", "1s", 1);
    setenv("MAGPIE_SPEC_DIR", "/not/an/option", 1); /* unrelated MAGPIE_ variables are ignored */
    mp_config c;
    char err[256] = "";
    assert_int_equal(load(&c, err, sizeof err, 1), MP_OK);
    assert_string_equal(c.config_file, path);
    assert_int_equal(c.workers, 3);               /* YAML */
    assert_int_equal(c.token_auth_on, 1);         /* env beats YAML */
    assert_int_equal(c.retry_interval_ms, 500);   /* env beats nested YAML */
    assert_string_equal(c.data_dir, "/env");
    assert_string_equal(c.ws_addr, "ws://0.0.0.0:7200");
    assert_true(c.store_map_size == 2ull << 30);
    assert_int_equal(c.log_level, 1);
    assert_string_equal(c.external_tcp_addr, "203.0.113.1:5100");
    assert_int_equal(c.whitelist_off_of_person, 0);
    assert_int_equal(c.retry_max_count, 50);
    assert_int_equal(c.node_id, 7);
    assert_int_equal(c.http_max_connections, 3);
    assert_int_equal(c.http_request_timeout_ms, 1000);
    config_free(&c);

    /* flags beat env */
    assert_int_equal(load(&c, err, sizeof err, 7, "--tokenAuthOn=false", "--dataDir", "/flag", "--workers", "2",
                          "--messageRetry.interval=2s"),
                     MP_OK);
    assert_int_equal(c.token_auth_on, 0);
    assert_string_equal(c.data_dir, "/flag");
    assert_int_equal(c.workers, 2);
    assert_int_equal(c.retry_interval_ms, 2000);
    assert_int_equal(c.log_level, 1); /* env still applies where no flag was given */
    config_free(&c);

    /* a bad env value names the variable */
    setenv("MAGPIE_WORKERS", "lots", 1);
    assert_int_equal(load(&c, err, sizeof err, 1), MP_EINVAL);
    assert_non_null(strstr(err, "MAGPIE_WORKERS"));
    config_free(&c);
    unlink(path);
    free(path);
}

static void test_config_flag_beats_env_file(void **state) {
    (void)state;
    char *a = write_tmp("workers: 5\n");
    char *b = write_tmp("workers: 6\n");
    setenv("MAGPIE_CONFIG", a, 1);
    mp_config c;
    char err[256] = "";
    assert_int_equal(load(&c, err, sizeof err, 3, "--config", b), MP_OK);
    assert_int_equal(c.workers, 6);
    assert_string_equal(c.config_file, b);
    config_free(&c);
    unsetenv("MAGPIE_CONFIG");
    assert_int_equal(load(&c, err, sizeof err, 2, "--workers=9"), MP_OK);
    assert_int_equal(c.workers, 9);
    config_free(&c);
    char arg[128];
    snprintf(arg, sizeof arg, "--config=%s", a);
    assert_int_equal(load(&c, err, sizeof err, 2, arg), MP_OK);
    assert_int_equal(c.workers, 5);
    config_free(&c);
    unlink(a);
    unlink(b);
    free(a);
    free(b);
}

static void test_config_file_errors(void **state) {
    (void)state;
    mp_config c;
    char err[256] = "";
    assert_int_equal(load(&c, err, sizeof err, 3, "--config", "/nonexistent/magpie.yaml"), MP_EINVAL);
    assert_non_null(strstr(err, "/nonexistent/magpie.yaml"));
    config_free(&c);
    char *p = write_tmp("workers: 1\nnodeID: 3\n");
    assert_int_equal(load(&c, err, sizeof err, 3, "--config", p), MP_EINVAL);
    assert_non_null(strstr(err, p));
    assert_non_null(strstr(err, "line 2: unknown key 'nodeID' (did you mean 'nodeId'?)"));
    config_free(&c);
    unlink(p);
    free(p);
    assert_int_equal(load(&c, err, sizeof err, 2, "--config"), MP_EINVAL);
    config_free(&c);
    assert_int_equal(load(&c, err, sizeof err, 2, "--config="), MP_EINVAL);
    config_free(&c);
}

static void test_flags(void **state) {
    (void)state;
    mp_config c;
    char err[256] = "";
    /* bare bool flags: followed by another flag, or at the end */
    assert_int_equal(load(&c, err, sizeof err, 4, "--tokenAuthOn", "--disableEncryption", "--whitelistOffOfPerson=0"), MP_OK);
    assert_int_equal(c.token_auth_on, 1);
    assert_int_equal(c.disable_encryption, 1);
    assert_int_equal(c.whitelist_off_of_person, 0);
    config_free(&c);
    assert_int_equal(load(&c, err, sizeof err, 3, "--workers=2", "--tokenAuthOn"), MP_OK);
    assert_int_equal(c.token_auth_on, 1);
    config_free(&c);
    /* bool with a separate value */
    assert_int_equal(load(&c, err, sizeof err, 5, "--tokenAuthOn", "true", "--whitelistOffOfPerson", "off"), MP_OK);
    assert_int_equal(c.token_auth_on, 1);
    assert_int_equal(c.whitelist_off_of_person, 0);
    config_free(&c);
    /* later flags win; values may contain '=' */
    assert_int_equal(load(&c, err, sizeof err, 5, "--workers=2", "--workers", "3", "--managerToken=a=b"), MP_OK);
    assert_int_equal(c.workers, 3);
    assert_string_equal(c.manager_token, "a=b");
    config_free(&c);
    /* an empty string value */
    assert_int_equal(load(&c, err, sizeof err, 2, "--managerToken="), MP_OK);
    assert_string_equal(c.manager_token, "");
    config_free(&c);

    static const struct { int argc; const char *argv[4]; const char *want; } bad[] = {
        {2, {"--bogus=1"}, "unknown flag '--bogus'"},
        {2, {"--tokenauthon"}, "did you mean '--tokenAuthOn'"},
        {2, {"--workers"}, "'--workers' needs a value"},
        {3, {"--dataDir", "--workers=1"}, "'--dataDir' needs a value"},
        {2, {"workers=1"}, "unexpected argument"},
        {2, {"-x"}, "unexpected argument"},
        {2, {"--"}, "unexpected argument"},
        {3, {"--tokenAuthOn", "maybe"}, "tokenAuthOn: 'maybe' is not a boolean"},
        {2, {"--workers=999"}, "--workers: '999' is out of range"},
        {2, {"--messageRetry.interval=5q"}, "is not a duration"},
        {2, {"--=3"}, "unknown flag"},
    };
    for (size_t i = 0; i < MP_ARRAY_LEN(bad); i++) {
        char *argv[8] = {"magpie"};
        for (int j = 1; j < bad[i].argc; j++) argv[j] = (char *)bad[i].argv[j - 1];
        err[0] = 0;
        int rc = config_load(&c, bad[i].argc, argv, err, sizeof err);
        if (rc != MP_EINVAL || !strstr(err, bad[i].want))
            fail_msg("case %zu: rc=%d err='%s' want '%s'", i, rc, err, bad[i].want);
        config_free(&c);
    }
}

static void test_help_and_version(void **state) {
    (void)state;
    mp_config c;
    char *a1[] = {"magpie", "--help"};
    char *a2[] = {"magpie", "-h"};
    char *a3[] = {"magpie", "--version"};
    char *a4[] = {"magpie", "--bogus", "--config", "/nonexistent", "--help"}; /* help wins */
    assert_int_equal(load_quiet(&c, 2, a1), 1);
    config_free(&c);
    assert_int_equal(load_quiet(&c, 2, a2), 1);
    config_free(&c);
    assert_int_equal(load_quiet(&c, 2, a3), 1);
    config_free(&c);
    assert_int_equal(load_quiet(&c, 5, a4), 1);
    config_free(&c);

    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    config_print_help(f);
    fclose(f);
    assert_non_null(strstr(text, "--config FILE"));
    assert_non_null(strstr(text, "--tokenAuthOn=<bool>"));
    assert_non_null(strstr(text, "--messageRetry.interval=<duration>"));
    assert_non_null(strstr(text, "MAGPIE_MESSAGE_RETRY_INTERVAL"));
    assert_non_null(strstr(text, "default: 0.0.0.0:5100"));
    assert_non_null(strstr(text, "range: 0..256"));
    free(text);
}

static char *docs_out; /* MAGPIE_WRITE_CONFIG_DOCS, read before clean_env removes it */

/* docs/config.md must be exactly what config_print_markdown writes. */
static void test_docs_up_to_date(void **state) {
    (void)state;
    char *want = NULL;
    size_t wlen = 0;
    FILE *f = open_memstream(&want, &wlen);
    config_print_markdown(f);
    fclose(f);
    assert_non_null(strstr(want, "| `messageRetry.interval` | duration | `60s` | `MAGPIE_MESSAGE_RETRY_INTERVAL` |"));
    assert_non_null(strstr(want, "| `tokenAuthOn` | bool | `false` | `MAGPIE_TOKEN_AUTH_ON` |"));
    assert_non_null(strstr(want, "| `wsAddr` | string | `0.0.0.0:5200` | `MAGPIE_WS_ADDR` |"));

    if (docs_out) {
        FILE *w = fopen(docs_out, "w");
        assert_non_null(w);
        fwrite(want, 1, wlen, w);
        fclose(w);
    }
    /* docs/ sits beside tests/ in the source tree; __FILE__ is absolute under CMake. */
    char path[1024];
    const char *suffix = "tests/unit/test_config.c";
    size_t flen = strlen(__FILE__), slen = strlen(suffix);
    if (flen < slen || strcmp(&__FILE__[flen - slen], suffix) != 0) {
        free(want);
        skip();
    }
    snprintf(path, sizeof path, "%.*sdocs/config.md", (int)(flen - slen), __FILE__);
    FILE *d = fopen(path, "rb");
    if (!d) {
        free(want);
        skip();
    }
    char *have = malloc(wlen + 2);
    size_t hlen = fread(have, 1, wlen + 1, d);
    fclose(d);
    int same = hlen == wlen && memcmp(have, want, wlen) == 0;
    free(have);
    free(want);
    if (!same) fail_msg("%s is stale; regenerate: MAGPIE_WRITE_CONFIG_DOCS=%s ./test_config", path, path);
}

static void test_hostport(void **state) {
    (void)state;
    static const struct { const char *in, *host; int port; } ok[] = {
        {"tcp://0.0.0.0:5100", "0.0.0.0", 5100}, {"ws://x:5200", "x", 5200}, {"0.0.0.0:5001", "0.0.0.0", 5001},
        {"[::1]:5100", "::1", 5100}, {":5100", "0.0.0.0", 5100}, {"wss://im.example.com:5210", "im.example.com", 5210},
        {"localhost:0", "localhost", 0}, {"[fe80::1%eth0]:65535", "fe80::1%eth0", 65535}, {"tcp://:1", "0.0.0.0", 1},
    };
    static const char *bad[] = {"", "5100", "host", "host:", "host:abc", "host:65536", "host:-1", "host:5100x",
                                "host:5100/", "::1:5100", "[::1]5100", "[]:5100", "[::1:5100", "a b:1",
                                "://x:1", "t cp://x:1", "http://u@x:1", "x/y:1", "host:99999999999999999999999"};
    for (size_t i = 0; i < MP_ARRAY_LEN(ok); i++) {
        char host[64] = "junk";
        int port = -1;
        if (config_parse_hostport(ok[i].in, host, sizeof host, &port) != MP_OK) fail_msg("'%s' rejected", ok[i].in);
        assert_string_equal(host, ok[i].host);
        assert_int_equal(port, ok[i].port);
    }
    for (size_t i = 0; i < MP_ARRAY_LEN(bad); i++) {
        char host[64];
        int port;
        if (config_parse_hostport(bad[i], host, sizeof host, &port) != MP_EINVAL) fail_msg("'%s' accepted", bad[i]);
    }
    char small[4];
    int port;
    assert_int_equal(config_parse_hostport("abcd:1", small, sizeof small, &port), MP_EINVAL);
    assert_int_equal(config_parse_hostport("abc:1", small, sizeof small, &port), MP_OK);
    assert_int_equal(config_parse_hostport(NULL, small, sizeof small, &port), MP_EINVAL);
    assert_int_equal(config_parse_hostport("x:1", NULL, 0, NULL), MP_OK);
}

int main(void) {
    const char *out = getenv("MAGPIE_WRITE_CONFIG_DOCS");
    if (out && *out) docs_out = strdup(out);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_defaults, clean_env),
        cmocka_unit_test_setup(test_load_no_args_gives_defaults, clean_env),
        cmocka_unit_test_setup(test_bool_values, clean_env),
        cmocka_unit_test_setup(test_log_level_names, clean_env),
        cmocka_unit_test_setup(test_durations, clean_env),
        cmocka_unit_test_setup(test_sizes, clean_env),
        cmocka_unit_test_setup(test_integers, clean_env),
        cmocka_unit_test_setup(test_validation, clean_env),
        cmocka_unit_test_setup(test_unknown_key, clean_env),
        cmocka_unit_test_setup(test_yaml_nested, clean_env),
        cmocka_unit_test_setup(test_yaml_empty_and_null, clean_env),
        cmocka_unit_test_setup(test_yaml_webhook, clean_env),
        cmocka_unit_test_setup(test_yaml_errors, clean_env),
        cmocka_unit_test_setup(test_yaml_binary_garbage, clean_env),
        cmocka_unit_test_setup(test_env_names_and_override, clean_env),
        cmocka_unit_test_setup(test_config_flag_beats_env_file, clean_env),
        cmocka_unit_test_setup(test_config_file_errors, clean_env),
        cmocka_unit_test_setup(test_flags, clean_env),
        cmocka_unit_test_setup(test_help_and_version, clean_env),
        cmocka_unit_test_setup(test_docs_up_to_date, clean_env),
        cmocka_unit_test_setup(test_hostport, clean_env),
    };
    int failed = cmocka_run_group_tests(tests, NULL, clean_env);
    free(docs_out);
    return failed;
}
