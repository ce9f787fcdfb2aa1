/* tls.c - OpenSSL server contexts and memory-BIO sessions (see tls.h). */
#include "tls.h"

#include <openssl/err.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "../common/log.h"
#include "../common/mp.h"

static struct {
    pthread_mutex_t lock; /* guards ctx: workers take references, SIGHUP swaps it */
    SSL_CTX *ctx;
    char *cert_file, *key_file;
    int min_version;
} g = {PTHREAD_MUTEX_INITIALIZER, NULL, NULL, NULL, TLS1_2_VERSION};

struct tls_conn {
    SSL *ssl;
    BIO *rbio, *wbio; /* owned by ssl */
    mp_buf pending;   /* plaintext written before the handshake finished */
    mp_buf wire;      /* records to write to the socket */
};

mp_buf *tls_conn_wire(tls_conn *t) { return &t->wire; }

static void openssl_error(char *err, size_t errlen, const char *what, const char *file) {
    unsigned long e = ERR_get_error();
    char reason[160] = "unknown error";
    if (e) ERR_error_string_n(e, reason, sizeof reason);
    ERR_clear_error();
    snprintf(err, errlen, "%s %s: %s", what, file, reason);
}

static SSL_CTX *ctx_build(char *err, size_t errlen) {
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (!ctx) {
        openssl_error(err, errlen, "cannot create a TLS context for", g.cert_file);
        return NULL;
    }
    SSL_CTX_set_min_proto_version(ctx, g.min_version); /* 1.0 and 1.1 never */
    SSL_CTX_set_options(ctx, SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_NO_RENEGOTIATION);
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS); /* idle sessions give their buffers back */
    if (SSL_CTX_use_certificate_chain_file(ctx, g.cert_file) != 1) {
        openssl_error(err, errlen, "cannot load the certificate", g.cert_file);
        SSL_CTX_free(ctx);
        return NULL;
    }
    if (SSL_CTX_use_PrivateKey_file(ctx, g.key_file, SSL_FILETYPE_PEM) != 1) {
        openssl_error(err, errlen, "cannot load the private key", g.key_file);
        SSL_CTX_free(ctx);
        return NULL;
    }
    if (SSL_CTX_check_private_key(ctx) != 1) {
        openssl_error(err, errlen, "the private key does not match the certificate", g.key_file);
        SSL_CTX_free(ctx);
        return NULL;
    }
    return ctx;
}

static int tls_wanted(const mp_config *cfg) {
    return (cfg->tls_addr && cfg->tls_addr[0]) || (cfg->wss_addr && cfg->wss_addr[0]) ||
           (cfg->https_addr && cfg->https_addr[0]);
}

int tls_init(const mp_config *cfg, char *err, size_t errlen) {
    if (!tls_wanted(cfg)) return MP_OK;
    const char *cert = cfg->tls_cert_file && cfg->tls_cert_file[0] ? cfg->tls_cert_file : cfg->wss_cert_file;
    const char *key = cfg->tls_key_file && cfg->tls_key_file[0] ? cfg->tls_key_file : cfg->wss_key_file;
    if (!cert || !cert[0] || !key || !key[0]) {
        snprintf(err, errlen, "tlsAddr, wssAddr and httpsAddr need tls.certFile and tls.keyFile (PEM)");
        return MP_EINVAL;
    }
    g.cert_file = mp_strndup(cert, strlen(cert));
    g.key_file = mp_strndup(key, strlen(key));
    g.min_version = strcmp(cfg->tls_min_version, "1.3") == 0 ? TLS1_3_VERSION : TLS1_2_VERSION;
    g.ctx = ctx_build(err, errlen);
    return g.ctx ? MP_OK : MP_EINVAL;
}

int tls_enabled(void) { return g.ctx != NULL; }

int tls_reload(char *err, size_t errlen) {
    if (!g.cert_file) {
        snprintf(err, errlen, "TLS is not configured");
        return MP_EINVAL;
    }
    SSL_CTX *fresh = ctx_build(err, errlen);
    if (!fresh) return MP_EINVAL;
    pthread_mutex_lock(&g.lock);
    SSL_CTX *old = g.ctx;
    g.ctx = fresh;
    pthread_mutex_unlock(&g.lock);
    SSL_CTX_free(old); /* sessions made from it hold their own references */
    return MP_OK;
}

SSL_CTX *tls_ctx_acquire(void) {
    pthread_mutex_lock(&g.lock);
    SSL_CTX *ctx = g.ctx;
    if (ctx) SSL_CTX_up_ref(ctx);
    pthread_mutex_unlock(&g.lock);
    return ctx;
}

void tls_free(void) {
    SSL_CTX_free(g.ctx);
    g.ctx = NULL;
    free(g.cert_file);
    free(g.key_file);
    g.cert_file = g.key_file = NULL;
}

/* ---- sessions ------------------------------------------------------------------------------ */

tls_conn *tls_conn_new(void) {
    SSL_CTX *ctx = tls_ctx_acquire();
    if (!ctx) return NULL;
    SSL *ssl = SSL_new(ctx);
    SSL_CTX_free(ctx); /* the SSL keeps its own reference */
    if (!ssl) {
        LOG_ERROR("tls", "SSL_new failed");
        ERR_clear_error();
        return NULL;
    }
    tls_conn *t = mp_calloc(1, sizeof *t);
    t->ssl = ssl;
    t->rbio = BIO_new(BIO_s_mem());
    t->wbio = BIO_new(BIO_s_mem());
    BIO_set_mem_eof_return(t->rbio, -1); /* empty = "retry", not EOF */
    SSL_set_bio(ssl, t->rbio, t->wbio);
    SSL_set_accept_state(ssl);
    return t;
}

void tls_conn_free(tls_conn *t) {
    if (!t) return;
    SSL_free(t->ssl);
    mp_buf_free(&t->pending);
    mp_buf_free(&t->wire);
    free(t);
}

static void drain_wire(tls_conn *t) {
    mp_buf *wire = &t->wire;
    size_t n = (size_t)BIO_ctrl_pending(t->wbio);
    if (!n) return;
    mp_buf_reserve(wire, n);
    int got = BIO_read(t->wbio, wire->data + wire->len, (int)n);
    if (got > 0) wire->len += (size_t)got;
}

/* SSL_read/SSL_write/SSL_do_handshake result: 0 = would block (fine with memory BIOs),
 * MP_EPROTO = the session is broken. */
static int ssl_result(tls_conn *t, int rc) {
    int e = SSL_get_error(t->ssl, rc);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) return 0;
    if (e == SSL_ERROR_ZERO_RETURN) return MP_ECLOSED; /* close_notify */
    unsigned long code = ERR_peek_error();
    char reason[160] = "";
    if (code) ERR_error_string_n(code, reason, sizeof reason);
    ERR_clear_error();
    LOG_DEBUG("tls", "session failed: %s", reason[0] ? reason : "protocol error");
    return MP_EPROTO;
}

static int flush_pending(tls_conn *t) {
    if (!t->pending.len || !SSL_is_init_finished(t->ssl)) return MP_OK;
    int rc = SSL_write(t->ssl, t->pending.data, (int)t->pending.len);
    if (rc <= 0) return ssl_result(t, rc) ? MP_EPROTO : MP_OK;
    mp_buf_consume(&t->pending, (size_t)rc);
    drain_wire(t);
    return MP_OK;
}

int tls_conn_input(tls_conn *t, const uint8_t *p, size_t n, mp_buf *plain) {
    ERR_clear_error(); /* SSL_get_error reads the thread's queue: other code may leave errors */
    if (n && BIO_write(t->rbio, p, (int)n) != (int)n) return MP_ENOMEM;
    int rc = MP_OK;
    for (;;) {
        mp_buf_reserve(plain, 16384);
        int got = SSL_read(t->ssl, plain->data + plain->len, (int)(plain->cap - plain->len));
        if (got > 0) {
            plain->len += (size_t)got;
            continue;
        }
        int e = ssl_result(t, got);
        if (e) rc = e == MP_ECLOSED ? MP_ECLOSED : MP_EPROTO;
        break;
    }
    drain_wire(t); /* handshake answers, session tickets, alerts */
    if (rc == MP_OK) rc = flush_pending(t);
    return rc;
}

int tls_conn_output(tls_conn *t, const uint8_t *p, size_t n) {
    ERR_clear_error();
    if (!SSL_is_init_finished(t->ssl) || t->pending.len) {
        mp_buf_append(&t->pending, p, n);
        return flush_pending(t);
    }
    while (n) {
        int rc = SSL_write(t->ssl, p, (int)MP_MIN(n, (size_t)1 << 30));
        if (rc <= 0) {
            if (ssl_result(t, rc)) return MP_EPROTO;
            mp_buf_append(&t->pending, p, n); /* not expected with memory BIOs: keep it */
            break;
        }
        p += rc;
        n -= (size_t)rc;
    }
    drain_wire(t);
    return MP_OK;
}
