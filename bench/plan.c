/* plan.c - workload layouts and their set-up over the HTTP API.
 *   send:   G groups "<p>g<i>" of M members "<p>g<i>u<j>"; member u0 of each group is online
 *           and sends to its group. Nobody else is online, so there are no deliveries.
 *   fanout: one group "<p>fan" of M members "<p>f<j>"; f0 sends, f1..f<online> receive.
 *   person: P pairs; "<p>a<i>" sends to "<p>b<i>" on the person channel.
 *   idle:   N connections "<p>i<j>" that only PING; no set-up.
 *   mixed:  person pairs, then G groups "<p>g<i>" of --group-size members (u0 online and
 *           sending), then the big group "<p>fan" of --members ("<p>f0" sends, f1..f<online>
 *           receive), all in one run. Connection order: pairs, group senders, big group. */
#include "plan.h"

#include <stdarg.h>
#include <stdio.h>
#include <time.h>

#include "http_client.h"

#define SUBS_PER_CALL 1000

static void set_sender(bconn *c, const char *chan, uint8_t type) {
    c->is_sender = 1;
    snprintf(c->chan_id, sizeof c->chan_id, "%s", chan);
    c->chan_type = type;
}

int plan_build(bench_ctx *ctx) {
    const bench_opts *o = &ctx->o;
    uint32_t n = 0, np = 0, ng = 0, nb = 0; /* connections of the person, group and big-group parts */
    if ((o->workload == WL_FANOUT || o->workload == WL_MIXED) && o->online + 1 > o->members) {
        fprintf(stderr, "%s: --online (%u) must be below --members (%u): member 0 is the sender\n",
                o->workload == WL_FANOUT ? "fanout" : "mixed", o->online, o->members);
        return MP_EINVAL;
    }
    switch (o->workload) {
    case WL_SEND: ng = o->groups; break;
    case WL_FANOUT: nb = o->online + 1; break;
    case WL_PERSON: np = 2 * o->pairs; break;
    case WL_IDLE: n = o->conns; break;
    case WL_MIXED:
        np = 2 * o->pairs;
        ng = o->groups;
        nb = o->online + 1;
        break;
    }
    if (o->workload != WL_IDLE) n = np + ng + nb;
    if (n == 0) {
        fprintf(stderr, "nothing to run: zero connections\n");
        return MP_EINVAL;
    }
    ctx->conns = mp_calloc(n, sizeof *ctx->conns);
    ctx->nconns = n;
    const char *p = o->prefix;
    for (uint32_t i = 0; i < n; i++) {
        bconn *c = &ctx->conns[i];
        c->idx = i;
        c->expect_src = BC_NO_SRC;
        char chan[64];
        if (o->workload == WL_IDLE) {
            snprintf(c->uid, sizeof c->uid, "%si%u", p, i);
        } else if (i < np) { /* person pairs */
            c->part = PART_PERSON;
            snprintf(c->uid, sizeof c->uid, "%s%c%u", p, i % 2 ? 'b' : 'a', i / 2);
            if (i % 2 == 0) {
                snprintf(chan, sizeof chan, "%sb%u", p, i / 2);
                set_sender(c, chan, 1);
            } else {
                c->expect_src = i - 1;
            }
        } else if (i < np + ng) { /* group senders */
            uint32_t g = i - np;
            c->part = PART_GROUPS;
            snprintf(c->uid, sizeof c->uid, "%sg%uu0", p, g);
            snprintf(chan, sizeof chan, "%sg%u", p, g);
            set_sender(c, chan, 2);
        } else { /* big group */
            uint32_t j = i - np - ng;
            c->part = PART_BIG;
            snprintf(c->uid, sizeof c->uid, "%sf%u", p, j);
            if (j == 0) {
                snprintf(chan, sizeof chan, "%sfan", p);
                set_sender(c, chan, 2);
            } else {
                c->expect_src = np + ng;
            }
        }
    }
    return MP_OK;
}

void plan_free(bench_ctx *ctx) {
    for (uint32_t i = 0; i < ctx->nconns; i++) {
        bconn *c = &ctx->conns[i];
        free(c->acked.w);
        free(c->got.w);
        free(c->slots);
        mp_buf_free(&c->in);
        mp_buf_free(&c->out);
        mp_buf_free(&c->wout);
    }
    free(ctx->conns);
    ctx->conns = NULL;
    ctx->nconns = 0;
}

void plan_token(const char *uid, char out[72]) { snprintf(out, 72, "tk-%s", uid); }

typedef struct setup {
    http_client http;
    mp_buf body, resp;
    uint64_t calls;
} setup;

static int post(setup *s, const char *path) {
    int status = 0;
    s->calls++;
    int rc = http_post(&s->http, path, (const char *)s->body.data, s->body.len, &status, &s->resp);
    if (rc != MP_OK) {
        fprintf(stderr, "set-up: POST %s to %s:%d failed: %s\n", path, s->http.host, s->http.port, mp_strerror(rc));
        return rc;
    }
    /* Success is HTTP 200 with no "status" other than 200 in the body (/user/token answers
     * 200 {"status":19} for a banned uid). */
    if (status != 200 || (s->resp.len && !memmem(s->resp.data, s->resp.len, "\"status\":200", 12))) {
        fprintf(stderr, "set-up: POST %s -> HTTP %d %.*s\n  request: %.*s\n", path, status, (int)MP_MIN(s->resp.len, 400),
                (const char *)s->resp.data, (int)MP_MIN(s->body.len, 200), (const char *)s->body.data);
        return MP_EIO;
    }
    return MP_OK;
}

static void body_str(mp_buf *b, const char *s) { mp_buf_append(b, s, strlen(s)); }

static void body_fmt(mp_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void body_fmt(mp_buf *b, const char *fmt, ...) {
    char tmp[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    MP_ASSERT(n >= 0 && (size_t)n < sizeof tmp);
    mp_buf_append(b, tmp, (size_t)n);
}

/* Create group `chan` with members name(0..m-1): /channel with the first chunk,
 * /channel/subscriber_add for the rest. */
static int make_group(setup *s, const char *chan, uint32_t m, void (*name)(const bench_opts *, uint32_t, uint32_t, char *),
                      const bench_opts *o, uint32_t group) {
    char uid[64];
    for (uint32_t first = 0; first < m; first += SUBS_PER_CALL) {
        uint32_t last = MP_MIN(m, first + SUBS_PER_CALL);
        s->body.len = 0;
        body_fmt(&s->body, "{\"channel_id\":\"%s\",\"channel_type\":2,\"subscribers\":[", chan);
        for (uint32_t j = first; j < last; j++) {
            name(o, group, j, uid);
            body_fmt(&s->body, "%s\"%s\"", j == first ? "" : ",", uid);
        }
        body_str(&s->body, "]}");
        int rc = post(s, first == 0 ? "/channel" : "/channel/subscriber_add");
        if (rc != MP_OK) return rc;
    }
    return MP_OK;
}

static void send_member(const bench_opts *o, uint32_t g, uint32_t j, char *out) {
    snprintf(out, 64, "%sg%uu%u", o->prefix, g, j);
}

static void fan_member(const bench_opts *o, uint32_t g, uint32_t j, char *out) {
    (void)g;
    snprintf(out, 64, "%sf%u", o->prefix, j);
}

int plan_setup(bench_ctx *ctx) {
    const bench_opts *o = &ctx->o;
    setup s = {0};
    int rc = http_client_init(&s.http, o->api);
    if (rc != MP_OK) {
        fprintf(stderr, "bad --api %s (want http://host:port)\n", o->api);
        return rc;
    }
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    uint32_t np = o->workload == WL_MIXED ? 2 * o->pairs : 0;
    if (o->workload == WL_SEND || o->workload == WL_MIXED) {
        uint32_t m = o->workload == WL_MIXED ? o->group_size : o->members;
        for (uint32_t g = 0; g < o->groups && rc == MP_OK; g++)
            rc = make_group(&s, ctx->conns[np + g].chan_id, m, send_member, o, g);
    }
    if (rc == MP_OK && (o->workload == WL_FANOUT || o->workload == WL_MIXED))
        rc = make_group(&s, ctx->conns[np + (o->workload == WL_MIXED ? o->groups : 0)].chan_id, o->members, fan_member, o,
                        0);
    for (uint32_t i = 0; rc == MP_OK && o->token_auth && i < ctx->nconns; i++) {
        char tok[72];
        plan_token(ctx->conns[i].uid, tok);
        s.body.len = 0;
        body_fmt(&s.body, "{\"uid\":\"%s\",\"token\":\"%s\",\"device_flag\":0,\"device_level\":1}", ctx->conns[i].uid,
                 tok);
        rc = post(&s, "/user/token");
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    if (rc == MP_OK)
        fprintf(stderr, "magpie-bench: set-up done: %llu API calls in %.2f s\n", (unsigned long long)s.calls,
                (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9);
    http_client_close(&s.http);
    mp_buf_free(&s.body);
    mp_buf_free(&s.resp);
    return rc;
}
