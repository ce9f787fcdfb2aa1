/* tls.h - TLS for the protocol listeners (tlsAddr: binary protocol, wssAddr: WebSocket)
 * and the HTTPS API (httpsAddr), from one PEM certificate chain and key.
 *
 * A connection's TLS runs on memory BIOs: the connection's worker feeds it the bytes it
 * read and writes out the bytes it produces, so TLS adds no thread and no blocking call
 * and the plaintext path is untouched. TLS 1.2 and 1.3 only (tls.minVersion "1.3"
 * refuses 1.2); 1.3 is preferred whenever the client offers it.
 *
 * Reload (SIGHUP): tls_reload builds a new context from the same files and swaps it in;
 * new handshakes use it, established connections keep theirs (each SSL holds a reference
 * to the context it was created from). On any error the old context stays. */
#ifndef MP_NET_TLS_H
#define MP_NET_TLS_H

#include <openssl/ssl.h>
#include <stddef.h>

#include "../common/buf.h"
#include "../config/config.h"

/* Start-up: load the certificate if any TLS listener is configured. MP_OK when TLS is
 * not configured at all; an error (message in err) for missing or invalid files. */
int tls_init(const mp_config *cfg, char *err, size_t errlen);
/* 1 once tls_init loaded a certificate. */
int tls_enabled(void);
/* Reload the files (any thread; serialised). MP_OK or an error with the old context kept. */
int tls_reload(char *err, size_t errlen);
/* The current context with a reference the caller owns (SSL_CTX_free it); NULL if off. */
SSL_CTX *tls_ctx_acquire(void);
/* Shutdown. */
void tls_free(void);

/* One server-side TLS session on memory BIOs. */
typedef struct tls_conn tls_conn;
/* NULL if TLS is off or OpenSSL fails (logged). */
tls_conn *tls_conn_new(void);
void tls_conn_free(tls_conn *t);
/* Ciphertext in: plaintext that became readable is appended to plain, and TLS records to
 * send (handshake answers, alerts) to tls_conn_wire(t). MP_EPROTO when the peer broke TLS
 * (bad handshake, refused version, corrupt record), MP_ECLOSED on close_notify: the
 * caller closes after sending the wire bytes. */
int tls_conn_input(tls_conn *t, const uint8_t *p, size_t n, mp_buf *plain);
/* Plaintext out: appends the records carrying it to tls_conn_wire(t). Before the
 * handshake completes the data waits in the session and goes out with a later call. */
int tls_conn_output(tls_conn *t, const uint8_t *p, size_t n);
/* Records waiting to be written to the socket (the caller consumes them). */
mp_buf *tls_conn_wire(tls_conn *t);

#endif
