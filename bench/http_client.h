/* http_client.h - a tiny blocking HTTP/1.1 client for the set-up calls (keep-alive,
 * Content-Length or chunked answers). Used by the main thread only, before the load starts. */
#ifndef BENCH_HTTP_CLIENT_H
#define BENCH_HTTP_CLIENT_H

#include "common/buf.h"

typedef struct http_client {
    char host[64];
    int port;
    int fd; /* -1 while not connected */
} http_client;

/* Parse "http://host:port" (port defaults to 80). MP_OK or MP_EINVAL. Does not connect. */
int http_client_init(http_client *h, const char *url);
/* POST body (JSON) to path; fills *status and replaces resp's content with the answer body.
 * Reconnects and retries once if a kept-alive connection was closed by the server.
 * MP_OK, or MP_EIO (connect/send/receive failure or a 15 s timeout) / MP_EPROTO (bad answer). */
int http_post(http_client *h, const char *path, const char *body, size_t len, int *status, mp_buf *resp);
/* Close the connection, if any. */
void http_client_close(http_client *h);

#endif
