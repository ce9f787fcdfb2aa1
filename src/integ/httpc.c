/* httpc.c - libcurl's multi interface on a libuv loop (the "multi_socket" pattern): curl
 * tells us which sockets to watch (sock_cb) and when to wake it (timer_cb); uv_poll and
 * uv_timer call back into curl_multi_socket_action, and finished transfers are collected
 * with curl_multi_info_read. */
#include "httpc.h"

#include <curl/curl.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "../common/buf.h"
#include "../common/log.h"
#include "../common/mp.h"
#include "../config/config.h"

typedef struct request {
    CURL *easy;
    httpc *h;
    struct request *prev, *next; /* h->requests */
    struct curl_slist *headers;
    char *body;                  /* the POST body (curl does not copy it) */
    mp_buf answer;
    size_t max_body;
    int too_large;
    httpc_done_fn done;
    void *arg;
    char error[CURL_ERROR_SIZE];
} request;

typedef struct sock_watch {
    uv_poll_t poll;
    curl_socket_t fd;
    httpc *h;
    struct sock_watch *prev, *next; /* h->watches, while the poll is open */
} sock_watch;

struct httpc {
    uv_loop_t *loop;
    CURLM *multi;
    uv_timer_t timer;
    request *requests;
    sock_watch *watches;
    size_t inflight;
    size_t open_handles; /* timer + polls not yet closed */
    int closing;
};

int httpc_global_init(void) {
    CURLcode rc = curl_global_init(CURL_GLOBAL_DEFAULT);
    if (rc != CURLE_OK) {
        LOG_ERROR("httpc", "curl_global_init failed: %s", curl_easy_strerror(rc));
        return MP_EIO;
    }
    return MP_OK;
}

void httpc_global_cleanup(void) { curl_global_cleanup(); }

size_t httpc_inflight(const httpc *h) { return h->inflight; }

static void maybe_free(httpc *h) {
    if (h->closing && h->open_handles == 0) free(h);
}

static void on_handle_closed(uv_handle_t *handle) {
    httpc *h;
    if (handle->type == UV_POLL) {
        sock_watch *w = handle->data;
        h = w->h;
        free(w);
    } else {
        h = handle->data;
    }
    h->open_handles--;
    maybe_free(h);
}

/* ---- requests ---------------------------------------------------------------------------- */

static void request_unlink(request *r) {
    httpc *h = r->h;
    if (r->prev) r->prev->next = r->next;
    else h->requests = r->next;
    if (r->next) r->next->prev = r->prev;
    h->inflight--;
}

/* Remove r from the multi handle, report res to its owner, free it. */
static void request_finish(request *r, const httpc_response *res) {
    request_unlink(r);
    curl_multi_remove_handle(r->h->multi, r->easy);
    curl_easy_cleanup(r->easy);
    curl_slist_free_all(r->headers);
    r->done(r->arg, res);
    free(r->body);
    mp_buf_free(&r->answer);
    free(r);
}

static void request_complete(request *r, CURLcode result) {
    httpc_response res = {0};
    if (result == CURLE_OK) {
        long status = 0;
        curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &status);
        res.status = (int)status;
        mp_buf_append(&r->answer, "", 1); /* NUL-terminate for the callback's convenience */
        res.body = (const char *)r->answer.data;
        res.body_len = r->answer.len - 1;
    } else {
        res.error = r->too_large ? "response too large" : r->error[0] ? r->error : curl_easy_strerror(result);
        res.body = "";
    }
    request_finish(r, &res);
}

static void collect_finished(httpc *h) {
    CURLMsg *msg;
    int left;
    while (!h->closing && (msg = curl_multi_info_read(h->multi, &left))) { /* a callback may close h */
        if (msg->msg != CURLMSG_DONE) continue;
        request *r = NULL;
        curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&r);
        request_complete(r, msg->data.result);
    }
}

static size_t on_body(char *data, size_t size, size_t nmemb, void *userp) {
    request *r = userp;
    size_t n = size * nmemb;
    if (r->answer.len + n > r->max_body) {
        r->too_large = 1;
        return 0; /* curl fails the transfer with CURLE_WRITE_ERROR */
    }
    mp_buf_append(&r->answer, data, n);
    return n;
}

/* ---- curl <-> libuv ------------------------------------------------------------------------ */

static void on_poll(uv_poll_t *p, int status, int events) {
    sock_watch *w = p->data;
    int flags = 0;
    if (status < 0) flags = CURL_CSELECT_ERR;
    if (events & UV_READABLE) flags |= CURL_CSELECT_IN;
    if (events & UV_WRITABLE) flags |= CURL_CSELECT_OUT;
    httpc *h = w->h;
    int running;
    curl_multi_socket_action(h->multi, w->fd, flags, &running);
    collect_finished(h);
}

static void on_timer(uv_timer_t *t) {
    httpc *h = t->data;
    int running;
    curl_multi_socket_action(h->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    collect_finished(h);
}

static int timer_cb(CURLM *multi, long timeout_ms, void *userp) {
    (void)multi;
    httpc *h = userp;
    if (h->closing) return 0;
    if (timeout_ms < 0) uv_timer_stop(&h->timer);
    else uv_timer_start(&h->timer, on_timer, (uint64_t)timeout_ms, 0);
    return 0;
}

static void watch_close(sock_watch *w) {
    httpc *h = w->h;
    if (w->prev) w->prev->next = w->next;
    else h->watches = w->next;
    if (w->next) w->next->prev = w->prev;
    uv_poll_stop(&w->poll);
    uv_close((uv_handle_t *)&w->poll, on_handle_closed);
}

static int sock_cb(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp) {
    (void)easy;
    httpc *h = userp;
    sock_watch *w = socketp;
    if (what == CURL_POLL_REMOVE) {
        if (w) {
            if (!h->closing) curl_multi_assign(h->multi, fd, NULL);
            watch_close(w);
        }
        return 0;
    }
    if (!w) {
        w = mp_calloc(1, sizeof *w);
        w->fd = fd;
        w->h = h;
        if (uv_poll_init_socket(h->loop, &w->poll, fd) != 0) {
            free(w);
            return -1;
        }
        w->poll.data = w;
        w->next = h->watches;
        if (h->watches) h->watches->prev = w;
        h->watches = w;
        h->open_handles++;
        curl_multi_assign(h->multi, fd, w);
    }
    int events = 0;
    if (what & CURL_POLL_IN) events |= UV_READABLE;
    if (what & CURL_POLL_OUT) events |= UV_WRITABLE;
    uv_poll_start(&w->poll, events, on_poll);
    return 0;
}

/* ---- public ---------------------------------------------------------------------------------- */

httpc *httpc_new(uv_loop_t *loop) {
    httpc *h = mp_calloc(1, sizeof *h);
    h->loop = loop;
    h->multi = curl_multi_init();
    if (!h->multi) {
        LOG_ERROR("httpc", "curl_multi_init failed");
        free(h);
        return NULL;
    }
    curl_multi_setopt(h->multi, CURLMOPT_SOCKETFUNCTION, sock_cb);
    curl_multi_setopt(h->multi, CURLMOPT_SOCKETDATA, h);
    curl_multi_setopt(h->multi, CURLMOPT_TIMERFUNCTION, timer_cb);
    curl_multi_setopt(h->multi, CURLMOPT_TIMERDATA, h);
    curl_multi_setopt(h->multi, CURLMOPT_MAX_HOST_CONNECTIONS, 8L);
    uv_timer_init(loop, &h->timer);
    h->timer.data = h;
    h->open_handles = 1;
    return h;
}

int httpc_post_json(httpc *h, const char *url, const char *body, size_t len, uint32_t timeout_ms, size_t max_body,
                    httpc_done_fn done, void *arg) {
    if (h->closing) return MP_ECLOSED;
    if (strncasecmp(url, "http://", 7) != 0 && strncasecmp(url, "https://", 8) != 0) return MP_EINVAL;
    CURL *easy = curl_easy_init();
    if (!easy) return MP_ENOMEM;
    request *r = mp_calloc(1, sizeof *r);
    r->easy = easy;
    r->h = h;
    r->body = mp_malloc(len + 1);
    memcpy(r->body, body, len);
    r->body[len] = 0;
    r->max_body = max_body;
    r->done = done;
    r->arg = arg;
    r->headers = curl_slist_append(NULL, "Content-Type: application/json");
    r->headers = curl_slist_append(r->headers, "Expect:"); /* no 100-continue round trip */
    int bad = curl_easy_setopt(easy, CURLOPT_URL, url) != CURLE_OK ||
              curl_easy_setopt(easy, CURLOPT_PROTOCOLS_STR, "http,https") != CURLE_OK;
    curl_easy_setopt(easy, CURLOPT_PRIVATE, (char *)r);
    curl_easy_setopt(easy, CURLOPT_HTTPHEADER, r->headers);
    curl_easy_setopt(easy, CURLOPT_POSTFIELDS, r->body);
    curl_easy_setopt(easy, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
    curl_easy_setopt(easy, CURLOPT_TIMEOUT_MS, (long)timeout_ms);
    curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(easy, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(easy, CURLOPT_ERRORBUFFER, r->error);
    curl_easy_setopt(easy, CURLOPT_USERAGENT, "magpie/" MAGPIE_VERSION);
    if (bad || curl_multi_add_handle(h->multi, easy) != CURLM_OK) {
        curl_slist_free_all(r->headers);
        curl_easy_cleanup(easy);
        free(r->body);
        free(r);
        return MP_EINVAL;
    }
    r->next = h->requests;
    if (h->requests) h->requests->prev = r;
    h->requests = r;
    h->inflight++;
    return MP_OK;
}

void httpc_close(httpc *h) {
    if (h->closing) return;
    h->closing = 1;
    httpc_response res = {.status = 0, .body = "", .error = "shutting down"};
    while (h->requests) request_finish(h->requests, &res);
    curl_multi_cleanup(h->multi); /* closes cached connections (their REMOVE closes the watch) */
    h->multi = NULL;
    while (h->watches) watch_close(h->watches);
    uv_timer_stop(&h->timer);
    uv_close((uv_handle_t *)&h->timer, on_handle_closed);
}
