/* http_client.c - blocking HTTP/1.1 POST over one kept-alive socket. */
#include "http_client.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#define HTTP_TIMEOUT_S 15
#define HTTP_MAX_HEAD 65536

int http_client_init(http_client *h, const char *url) {
    memset(h, 0, sizeof *h);
    h->fd = -1;
    h->port = 80;
    const char *p = url;
    if (strncmp(p, "http://", 7) == 0) p += 7;
    const char *end = p + strcspn(p, "/");
    const char *colon = memchr(p, ':', (size_t)(end - p));
    const char *host_end = colon ? colon : end;
    size_t hl = (size_t)(host_end - p);
    if (hl == 0 || hl >= sizeof h->host) return MP_EINVAL;
    memcpy(h->host, p, hl);
    if (colon) {
        char *e;
        long port = strtol(colon + 1, &e, 10);
        if (e != end || port <= 0 || port > 65535) return MP_EINVAL;
        h->port = (int)port;
    }
    return MP_OK;
}

void http_client_close(http_client *h) {
    if (h->fd >= 0) close(h->fd);
    h->fd = -1;
}

static int http_connect(http_client *h) {
    char port[8];
    snprintf(port, sizeof port, "%d", h->port);
    struct addrinfo hints = {0}, *res = NULL;
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    if (getaddrinfo(h->host, port, &hints, &res) != 0 || !res) return MP_EIO;
    int fd = -1;
    for (struct addrinfo *a = res; a; a = a->ai_next) {
        fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
        if (fd < 0) continue;
        struct timeval tv = {HTTP_TIMEOUT_S, 0};
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        if (connect(fd, a->ai_addr, a->ai_addrlen) == 0) break;
        close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    if (fd < 0) return MP_EIO;
    h->fd = fd;
    return MP_OK;
}

static int write_all(int fd, const char *p, size_t n) {
    while (n) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return MP_EIO;
        p += w;
        n -= (size_t)w;
    }
    return MP_OK;
}

/* Read more bytes into in; 0 on EOF, <0 on error. */
static ssize_t read_more(int fd, mp_buf *in) {
    mp_buf_reserve(in, 16384);
    for (;;) {
        ssize_t r = recv(fd, in->data + in->len, in->cap - in->len, 0);
        if (r < 0 && errno == EINTR) continue;
        if (r > 0) in->len += (size_t)r;
        return r;
    }
}

static const char *find_header(const char *head, size_t n, const char *name) {
    size_t nl = strlen(name);
    for (const char *p = head; p && p < head + n;) {
        const char *eol = memmem(p, (size_t)(head + n - p), "\r\n", 2);
        if (!eol) return NULL;
        if ((size_t)(eol - p) > nl && strncasecmp(p, name, nl) == 0 && p[nl] == ':') {
            p += nl + 1;
            while (*p == ' ' || *p == '\t') p++;
            return p;
        }
        p = eol + 2;
    }
    return NULL;
}

/* Decode a chunked body in src[0..n); returns MP_OK (complete), MP_EAGAIN or MP_EPROTO. */
static int dechunk(const uint8_t *src, size_t n, mp_buf *out) {
    size_t pos = 0;
    out->len = 0;
    for (;;) {
        const uint8_t *eol = memmem(src + pos, n - pos, "\r\n", 2);
        if (!eol) return MP_EAGAIN;
        char *e;
        unsigned long sz = strtoul((const char *)src + pos, &e, 16);
        if ((const uint8_t *)e == src + pos) return MP_EPROTO;
        pos = (size_t)(eol - src) + 2;
        if (sz == 0) return memmem(src + pos, n - pos, "\r\n", 2) ? MP_OK : MP_EAGAIN; /* no trailers expected */
        if (n - pos < sz + 2) return MP_EAGAIN;
        mp_buf_append(out, src + pos, sz);
        pos += sz + 2;
    }
}

static int read_response(http_client *h, int *status, mp_buf *resp, int *keep) {
    mp_buf in = MP_BUF_INIT;
    int rc = MP_EIO;
    size_t head_len = 0;
    for (;;) {
        const uint8_t *hend = in.len ? memmem(in.data, in.len, "\r\n\r\n", 4) : NULL;
        if (hend) {
            head_len = (size_t)(hend - in.data) + 4;
            break;
        }
        if (in.len > HTTP_MAX_HEAD) goto out;
        ssize_t r = read_more(h->fd, &in);
        if (r <= 0) goto out;
    }
    const char *head = (const char *)in.data;
    if (head_len < 12 || strncmp(head, "HTTP/1.", 7) != 0) {
        rc = MP_EPROTO;
        goto out;
    }
    *status = atoi(head + 9);
    const char *conn = find_header(head, head_len, "Connection");
    *keep = !(conn && strncasecmp(conn, "close", 5) == 0);
    const char *cl = find_header(head, head_len, "Content-Length");
    const char *te = find_header(head, head_len, "Transfer-Encoding");
    resp->len = 0;
    if (cl) {
        size_t want = head_len + (size_t)strtoull(cl, NULL, 10);
        while (in.len < want)
            if (read_more(h->fd, &in) <= 0) goto out;
        mp_buf_append(resp, in.data + head_len, want - head_len);
    } else if (te && strncasecmp(te, "chunked", 7) == 0) {
        int d;
        while ((d = dechunk(in.data + head_len, in.len - head_len, resp)) == MP_EAGAIN)
            if (read_more(h->fd, &in) <= 0) goto out;
        if (d != MP_OK) {
            rc = MP_EPROTO;
            goto out;
        }
    } else { /* body until EOF */
        while (read_more(h->fd, &in) > 0) {}
        mp_buf_append(resp, in.data + head_len, in.len - head_len);
        *keep = 0;
    }
    rc = MP_OK;
out:
    mp_buf_free(&in);
    return rc;
}

int http_post(http_client *h, const char *path, const char *body, size_t len, int *status, mp_buf *resp) {
    char head[512];
    int hn = snprintf(head, sizeof head,
                      "POST %s HTTP/1.1\r\nHost: %s:%d\r\nContent-Type: application/json\r\n"
                      "Content-Length: %zu\r\nConnection: keep-alive\r\n\r\n",
                      path, h->host, h->port, len);
    if (hn < 0 || (size_t)hn >= sizeof head) return MP_EINVAL;
    for (int attempt = 0; attempt < 2; attempt++) {
        int reused = h->fd >= 0;
        if (!reused && http_connect(h) != MP_OK) return MP_EIO;
        int keep = 1;
        int rc = write_all(h->fd, head, (size_t)hn);
        if (rc == MP_OK) rc = write_all(h->fd, body, len);
        if (rc == MP_OK) rc = read_response(h, status, resp, &keep);
        if (rc != MP_OK || !keep) http_client_close(h);
        if (rc == MP_OK) return MP_OK;
        if (!reused) return rc; /* a fresh connection failed: do not retry */
    }
    return MP_EIO;
}
