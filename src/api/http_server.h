/* http_server.h - the WuKongIM-compatible HTTP API (port 5001): an HTTP/1.1 server on
 * libh2o (libuv backend) that routes requests to the handlers in src/api/api_*.c.
 * Behaviour and deliberate differences from WuKongIM: docs/api.md.
 *
 * Thread rule: both calls run on the thread that runs `loop` (worker 0). */
#ifndef MP_API_HTTP_SERVER_H
#define MP_API_HTTP_SERVER_H

#include <uv.h>

#include "../config/config.h"

/* Listen on cfg->http_addr on this loop (worker 0's loop; the caller runs it). cfg must
 * outlive the server. Returns MP_OK, or MP_EINVAL (bad address) / MP_EIO (bind/listen
 * failed); the reason is logged here. */
int api_start(uv_loop_t *loop, const mp_config *cfg);
/* Close the listener and every connection. Answers still being computed are sent when
 * ready; those not ready within 2 s get 503 {"msg","status":503}, as do requests read
 * after this call. Once the last connection is gone the server releases its loop
 * handles, so the loop then drains. Safe to call twice, or without a successful
 * api_start. */
void api_stop(void);
/* The HTTP listeners' connections (API, HTTPS, manager, demo together). */
typedef struct api_conn_stats {
    uint64_t open;    /* open now; httpMaxConnections bounds them */
    uint64_t refused; /* closed at accept over httpMaxConnections, since start */
} api_conn_stats;
/* Same thread rule as api_start. */
void api_conn_stats_get(api_conn_stats *out);
/* httpsAddr: take the TLS context net/tls.c holds now (after a SIGHUP reload). */
void api_tls_reload(void);

/* Without a network (tests, fuzzing): run the handler routed for method and path (no
 * query string) on body, as if the request had passed the middleware (no token check,
 * no CORS). answer(ctx, status, body, len) is called exactly once, on this thread, when
 * the handler answers: during this call, or later from an IM core done callback (so the
 * IM core must be running and body must stay valid until then). cfg is used when
 * api_start was not called. Returns MP_OK, or MP_ENOTFOUND (no such route; answer is
 * not called). Same thread rule as the handlers: the API loop's thread (worker 0). */
typedef void (*api_answer_fn)(void *ctx, int status, const char *body, size_t len);
int api_call(const mp_config *cfg, const char *method, const char *path, mp_str body, api_answer_fn answer,
             void *ctx);

#endif
