/* test_httpc.c - the loop-driven HTTP client (src/integ/httpc.c) against a small HTTP/1.1
 * server on the same libuv loop: the body and status reach the callback, non-200 answers
 * are reported as such, keep-alive reuses one connection, the timeout fires for a server
 * that never answers, an oversized answer and a refused connection are transport errors,
 * many requests in flight all complete, and httpc_close fails what is still in flight. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "common/buf.h"
#include "common/mp.h"
#include "integ/httpc.h"

/* ---- a tiny server: answers by path, keep-alive ---------------------------------------- */

typedef struct srv_conn {
    uv_tcp_t tcp;
    mp_buf in;
} srv_conn;

static uv_loop_t g_loop;
static uv_tcp_t g_listener;
static int g_port;
static int g_accepted;  /* connections the server accepted */
static char g_last_body[256];
static char g_last_ctype[128];

static void on_srv_closed(uv_handle_t *h) {
    srv_conn *c = h->data;
    mp_buf_free(&c->in);
    free(c);
}

static void on_written(uv_write_t *w, int status) {
    (void)status;
    free(w->data);
    free(w);
}

static void srv_reply(srv_conn *c, int status, const char *body, size_t len) {
    char *out = malloc(len + 128);
    int n = snprintf(out, 128, "HTTP/1.1 %d X\r\nContent-Length: %zu\r\n\r\n", status, len);
    memcpy(out + n, body, len);
    uv_write_t *w = malloc(sizeof *w);
    w->data = out;
    uv_buf_t b = uv_buf_init(out, (unsigned)(n + (int)len));
    uv_write(w, (uv_stream_t *)&c->tcp, &b, 1, on_written);
}

/* One complete request in c->in? Answer it by path and drop it from the buffer. */
static int srv_handle_one(srv_conn *c) {
    mp_buf_append(&c->in, "", 1);
    c->in.len--;
    char *req = (char *)c->in.data;
    char *end = strstr(req, "\r\n\r\n");
    if (!end) return 0;
    size_t clen = 0;
    const char *cl = strcasestr(req, "content-length:");
    if (cl && cl < end) clen = strtoul(cl + 15, NULL, 10);
    size_t total = (size_t)(end + 4 - req) + clen;
    if (c->in.len < total) return 0;
    const char *ct = strcasestr(req, "content-type:");
    if (ct && ct < end) snprintf(g_last_ctype, sizeof g_last_ctype, "%.*s", (int)strcspn(ct + 13, "\r"), ct + 13);
    snprintf(g_last_body, sizeof g_last_body, "%.*s", (int)clen, end + 4);
    if (strncmp(req, "POST /ok ", 9) == 0) srv_reply(c, 200, end + 4, clen); /* echo */
    else if (strncmp(req, "POST /fail ", 11) == 0) srv_reply(c, 500, "no", 2);
    else if (strncmp(req, "POST /big ", 10) == 0) {
        char big[4096];
        memset(big, 'x', sizeof big);
        srv_reply(c, 200, big, sizeof big);
    } /* POST /slow: never answered */
    mp_buf_consume(&c->in, total);
    return 1;
}

static void srv_alloc(uv_handle_t *h, size_t size, uv_buf_t *b) {
    (void)h;
    b->base = malloc(size);
    b->len = size;
}

static void srv_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b) {
    srv_conn *c = s->data;
    if (n < 0) uv_close((uv_handle_t *)s, on_srv_closed);
    else if (n > 0) {
        mp_buf_append(&c->in, b->base, (size_t)n);
        while (srv_handle_one(c)) {}
    }
    free(b->base);
}

static void srv_accept(uv_stream_t *l, int status) {
    assert_int_equal(status, 0);
    srv_conn *c = calloc(1, sizeof *c);
    uv_tcp_init(&g_loop, &c->tcp);
    c->tcp.data = c;
    assert_int_equal(uv_accept(l, (uv_stream_t *)&c->tcp), 0);
    g_accepted++;
    uv_read_start((uv_stream_t *)&c->tcp, srv_alloc, srv_read);
}

static int bound_port(uv_tcp_t *t) {
    struct sockaddr_in a;
    int len = sizeof a;
    uv_tcp_getsockname(t, (struct sockaddr *)&a, &len);
    return ntohs(a.sin_port);
}

static int setup(void **state) {
    (void)state;
    uv_loop_init(&g_loop);
    uv_tcp_init(&g_loop, &g_listener);
    struct sockaddr_in a;
    uv_ip4_addr("127.0.0.1", 0, &a);
    assert_int_equal(uv_tcp_bind(&g_listener, (struct sockaddr *)&a, 0), 0);
    assert_int_equal(uv_listen((uv_stream_t *)&g_listener, 64, srv_accept), 0);
    g_port = bound_port(&g_listener);
    g_accepted = 0;
    return 0;
}

static void close_any(uv_handle_t *h, void *arg) {
    (void)arg;
    if (!uv_is_closing(h)) uv_close(h, h == (uv_handle_t *)&g_listener ? NULL : on_srv_closed);
}

static int teardown(void **state) {
    (void)state;
    uv_walk(&g_loop, close_any, NULL);
    uv_run(&g_loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&g_loop), 0);
    return 0;
}

/* ---- client side ---------------------------------------------------------------------------- */

typedef struct result {
    int done;
    int status;
    char body[64];
    size_t body_len;
    char error[128];
} result;

static void on_done(void *arg, const httpc_response *res) {
    result *r = arg;
    r->done++;
    r->status = res->status;
    r->body_len = res->body_len;
    snprintf(r->body, sizeof r->body, "%s", res->body);
    snprintf(r->error, sizeof r->error, "%s", res->error ? res->error : "");
}

static void url(char *out, size_t n, int port, const char *path) { snprintf(out, n, "http://127.0.0.1:%d%s", port, path); }

static void run_until(const result *r, int want) {
    while (r->done < want) uv_run(&g_loop, UV_RUN_ONCE);
}

static void post(httpc *h, const char *path, const char *body, uint32_t timeout_ms, result *r) {
    char u[128];
    url(u, sizeof u, g_port, path);
    assert_int_equal(httpc_post_json(h, u, body, strlen(body), timeout_ms, 1024, on_done, r), MP_OK);
}

static void test_ok_and_keepalive(void **state) {
    (void)state;
    httpc *h = httpc_new(&g_loop);
    result r1 = {0}, r2 = {0};
    post(h, "/ok", "{\"a\":1}", 5000, &r1);
    assert_int_equal(httpc_inflight(h), 1);
    run_until(&r1, 1);
    assert_int_equal(r1.status, 200);
    assert_string_equal(r1.body, "{\"a\":1}");
    assert_string_equal(r1.error, "");
    assert_string_equal(g_last_ctype, " application/json");
    post(h, "/ok", "[2]", 5000, &r2);
    run_until(&r2, 1);
    assert_string_equal(r2.body, "[2]");
    assert_int_equal(g_accepted, 1); /* the second request reused the connection */
    assert_int_equal(httpc_inflight(h), 0);
    httpc_close(h);
}

static void test_status_and_errors(void **state) {
    (void)state;
    httpc *h = httpc_new(&g_loop);
    result fail = {0}, slow = {0}, big = {0}, refused = {0};
    post(h, "/fail", "{}", 5000, &fail);
    post(h, "/slow", "{}", 300, &slow);
    post(h, "/big", "{}", 5000, &big);
    /* a port nobody listens on: bind one, note it, close it */
    uv_tcp_t t;
    uv_tcp_init(&g_loop, &t);
    struct sockaddr_in a;
    uv_ip4_addr("127.0.0.1", 0, &a);
    uv_tcp_bind(&t, (struct sockaddr *)&a, 0);
    int dead = bound_port(&t);
    uv_close((uv_handle_t *)&t, NULL);
    char u[128];
    url(u, sizeof u, dead, "/ok");
    assert_int_equal(httpc_post_json(h, u, "{}", 2, 5000, 1024, on_done, &refused), MP_OK);
    run_until(&fail, 1);
    run_until(&slow, 1);
    run_until(&big, 1);
    run_until(&refused, 1);
    assert_int_equal(fail.status, 500); /* an answer, not a transport error */
    assert_string_equal(fail.body, "no");
    assert_int_equal(slow.status, 0);
    assert_non_null(strcasestr(slow.error, "timed out"));
    assert_int_equal(big.status, 0);
    assert_string_equal(big.error, "response too large");
    assert_int_equal(refused.status, 0);
    assert_true(refused.error[0] != 0);
    assert_int_equal(fail.done + slow.done + big.done + refused.done, 4); /* each exactly once */
    /* a bad URL is refused up front, and done is not called */
    result bad = {0};
    assert_int_not_equal(httpc_post_json(h, "gopher://x", "{}", 2, 100, 1024, on_done, &bad), MP_OK);
    assert_int_equal(bad.done, 0);
    httpc_close(h);
}

static void test_many_in_flight(void **state) {
    (void)state;
    httpc *h = httpc_new(&g_loop);
    enum { N = 200 };
    static result rs[N];
    memset(rs, 0, sizeof rs);
    char body[32];
    for (int i = 0; i < N; i++) {
        snprintf(body, sizeof body, "[%d]", i);
        post(h, "/ok", body, 10000, &rs[i]);
    }
    for (int i = 0; i < N; i++) run_until(&rs[i], 1);
    for (int i = 0; i < N; i++) {
        snprintf(body, sizeof body, "[%d]", i);
        assert_int_equal(rs[i].status, 200);
        assert_string_equal(rs[i].body, body);
        assert_int_equal(rs[i].done, 1);
    }
    assert_true(g_accepted <= 8); /* CURLMOPT_MAX_HOST_CONNECTIONS */
    httpc_close(h);
}

static void test_close_fails_in_flight(void **state) {
    (void)state;
    httpc *h = httpc_new(&g_loop);
    result slow = {0};
    post(h, "/slow", "{}", 60000, &slow);
    for (int i = 0; i < 20 && g_accepted == 0; i++) uv_run(&g_loop, UV_RUN_NOWAIT);
    httpc_close(h);
    assert_int_equal(slow.done, 1);
    assert_int_equal(slow.status, 0);
    assert_string_equal(slow.error, "shutting down");
}

int main(void) {
    if (httpc_global_init() != MP_OK) return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_ok_and_keepalive, setup, teardown),
        cmocka_unit_test_setup_teardown(test_status_and_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_many_in_flight, setup, teardown),
        cmocka_unit_test_setup_teardown(test_close_fails_in_flight, setup, teardown),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    httpc_global_cleanup();
    return rc;
}
