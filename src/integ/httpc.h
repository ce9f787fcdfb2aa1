/* httpc.h - a non-blocking HTTP client on a libuv loop, for calls into the business system
 * (webhooks, datasource). libcurl's multi interface does the protocol work (HTTP/1.1
 * keep-alive connection reuse, https://, redirects off, timeouts); its sockets and timer are
 * driven by the loop, so a request never blocks the thread and there is no thread per
 * request.
 *
 * Thread rule: an httpc belongs to the loop it was created on; every call, and every
 * completion callback, happens on that loop's thread. Other threads hand work to that
 * loop's worker (worker_post). */
#ifndef MP_INTEG_HTTPC_H
#define MP_INTEG_HTTPC_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

typedef struct httpc httpc;

typedef struct httpc_response {
    int status;        /* HTTP status, or 0 when there was no HTTP answer (see error) */
    const char *body;  /* response body, NUL-terminated; valid during the callback only */
    size_t body_len;
    const char *error; /* transport failure ("Connection refused", "Timeout ...",
                        * "shutting down", ...) when status is 0; NULL otherwise */
} httpc_response;

/* Called exactly once per request, on the loop thread: with the answer, with a transport
 * error, or with status 0 and error "shutting down" from httpc_close. It may start new
 * requests, and may call httpc_close. */
typedef void (*httpc_done_fn)(void *arg, const httpc_response *res);

/* Once per process, before any thread starts (libcurl's global state). */
int httpc_global_init(void);
void httpc_global_cleanup(void);

/* A client on loop. Returns NULL if libcurl cannot be set up (logged). */
httpc *httpc_new(uv_loop_t *loop);

/* POST body (copied; Content-Type: application/json) to url. timeout_ms bounds the whole
 * request (connect + send + answer). Bodies above max_body bytes in the answer fail the
 * request with error "response too large". Returns MP_OK (done will be called) or an error
 * code (done will not be called: a url that is not http:// or https://, closing client). */
int httpc_post_json(httpc *h, const char *url, const char *body, size_t len, uint32_t timeout_ms, size_t max_body,
                    httpc_done_fn done, void *arg);

/* Requests started and not yet completed. */
size_t httpc_inflight(const httpc *h);

/* Fail every request in flight ("shutting down"), close the loop handles and free h once
 * they are closed (the loop must run on for that). h must not be used afterwards. */
void httpc_close(httpc *h);

#endif
