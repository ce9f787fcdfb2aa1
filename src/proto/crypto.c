/* crypto.c - WuKongIM payload crypto (spec §7) on OpenSSL 3.
 *
 * Hot paths (encrypt, decrypt, msgKey) run once per message per connection, so they
 * avoid per-call allocation: the AES and MD5 algorithm objects are fetched once per
 * process, the cipher and digest contexts are cached per thread (freed at thread exit),
 * and msgKey is computed as a stream (AES -> Base64 -> MD5 in fixed stack chunks)
 * instead of materialising the sign string, its ciphertext and its Base64 text.
 * X25519 only runs once per connection and uses the plain EVP_PKEY calls. */
#include "crypto.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>

#include <openssl/evp.h>
#include <openssl/rand.h>

/* ---- per-process algorithms and per-thread contexts ----------------------------- */

static pthread_once_t g_once = PTHREAD_ONCE_INIT;
static pthread_key_t g_tls_key;
static EVP_CIPHER *g_aes;
static EVP_MD *g_md5;

/* Per-thread contexts, bound to their algorithm once: later calls only set key and IV
 * (a NULL cipher/digest), which spares OpenSSL re-creating its provider context, i.e.
 * several allocations per message. enc serves payload encryption and msgKey alike. */
typedef struct tls_ctx {
    EVP_CIPHER_CTX *enc;
    EVP_CIPHER_CTX *dec;
    EVP_MD_CTX *md;
} tls_ctx;

static _Thread_local tls_ctx *t_ctx;

/* Runs at thread exit (pthread key destructor). */
static void tls_free(void *p) {
    tls_ctx *t = p;
    EVP_CIPHER_CTX_free(t->enc);
    EVP_CIPHER_CTX_free(t->dec);
    EVP_MD_CTX_free(t->md);
    free(t);
    t_ctx = NULL; /* a later call from another destructor on this thread starts afresh */
}

static void init_once(void) {
    g_aes = EVP_CIPHER_fetch(NULL, "AES-128-CBC", NULL);
    g_md5 = EVP_MD_fetch(NULL, "MD5", NULL);
    /* Without these (e.g. a FIPS-only provider setup) the protocol cannot work at all. */
    MP_ASSERT(g_aes && g_md5);
    int rc = pthread_key_create(&g_tls_key, tls_free);
    MP_ASSERT(rc == 0);
}

static tls_ctx *ctx_get(void) {
    if (t_ctx) return t_ctx;
    pthread_once(&g_once, init_once);
    tls_ctx *t = mp_calloc(1, sizeof(*t));
    t->enc = EVP_CIPHER_CTX_new();
    t->dec = EVP_CIPHER_CTX_new();
    t->md = EVP_MD_CTX_new();
    MP_ASSERT(t->enc && t->dec && t->md);
    int ok = EVP_EncryptInit_ex2(t->enc, g_aes, NULL, NULL, NULL) == 1 &&
             EVP_DecryptInit_ex2(t->dec, g_aes, NULL, NULL, NULL) == 1 &&
             EVP_CIPHER_CTX_set_padding(t->dec, 0) == 1 && EVP_DigestInit_ex(t->md, g_md5, NULL) == 1;
    MP_ASSERT(ok);
    int rc = pthread_setspecific(g_tls_key, t);
    MP_ASSERT(rc == 0);
    t_ctx = t;
    return t;
}

/* ---- Base64 (standard alphabet, padded) ----------------------------------------- */

static const char b64_alpha[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static size_t b64_enc_len(size_t n) { return (n + 2) / 3 * 4; }

/* Writes b64_enc_len(n) chars to out (no NUL). */
static size_t b64_enc(const uint8_t *in, size_t n, char *out) {
    char *o = out;
    size_t i = 0;
    for (; i + 3 <= n; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
        *o++ = b64_alpha[v >> 18];
        *o++ = b64_alpha[(v >> 12) & 63];
        *o++ = b64_alpha[(v >> 6) & 63];
        *o++ = b64_alpha[v & 63];
    }
    if (i < n) {
        uint32_t v = (uint32_t)in[i] << 16 | (i + 1 < n ? (uint32_t)in[i + 1] << 8 : 0);
        *o++ = b64_alpha[v >> 18];
        *o++ = b64_alpha[(v >> 12) & 63];
        *o++ = i + 1 < n ? b64_alpha[(v >> 6) & 63] : '=';
        *o++ = '=';
    }
    return (size_t)(o - out);
}

/* 0..63 for alphabet characters, -1 otherwise. */
static int b64_val(unsigned char c) {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
}

/* Strict padded decode: length a multiple of 4, '=' only as the last one or two chars.
 * The whole input is validated, but at most `cap` bytes are stored into out.
 * Returns the decoded length (which may exceed cap), or -1 for invalid input. */
static long b64_dec(const char *in, size_t n, uint8_t *out, size_t cap) {
    if (n % 4) return -1;
    size_t o = 0;
    for (size_t i = 0; i < n; i += 4) {
        const unsigned char *q = (const unsigned char *)in + i;
        int last = i + 4 == n;
        int pad = 0;
        if (last && q[3] == '=') pad = q[2] == '=' ? 2 : 1;
        int a = b64_val(q[0]), b = b64_val(q[1]);
        int c = pad == 2 ? 0 : b64_val(q[2]);
        int d = pad ? 0 : b64_val(q[3]);
        if ((a | b | c | d) < 0) return -1;
        uint32_t v = (uint32_t)a << 18 | (uint32_t)b << 12 | (uint32_t)c << 6 | (uint32_t)d;
        uint8_t t[3] = {(uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v};
        for (int k = 0; k < 3 - pad; k++, o++)
            if (o < cap) out[o] = t[k];
    }
    return (long)o;
}

void crypto_b64_encode(const uint8_t *in, size_t len, mp_buf *out) {
    size_t n = b64_enc_len(len);
    mp_buf_reserve(out, n);
    out->len += b64_enc(in, len, (char *)out->data + out->len);
}

int crypto_b64_decode(const char *in, size_t len, mp_buf *out) {
    size_t cap = len / 4 * 3;
    mp_buf_reserve(out, cap);
    long n = b64_dec(in, len, out->data + out->len, cap);
    if (n < 0) return MP_EINVAL;
    out->len += (size_t)n;
    return MP_OK;
}

/* ---- digests -------------------------------------------------------------------- */

static void hex_lower(const uint8_t *in, size_t n, char *out) {
    static const char hx[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = hx[in[i] >> 4];
        out[2 * i + 1] = hx[in[i] & 15];
    }
}

void crypto_md5_hex(const uint8_t *in, size_t len, char out[32]) {
    tls_ctx *t = ctx_get();
    uint8_t md[16];
    unsigned int mdlen = 0;
    int ok = EVP_DigestInit_ex(t->md, NULL, NULL) == 1 && EVP_DigestUpdate(t->md, in, len) == 1 &&
             EVP_DigestFinal_ex(t->md, md, &mdlen) == 1 && mdlen == 16;
    MP_ASSERT(ok); /* MD5 over memory cannot fail once the algorithm is available */
    hex_lower(md, 16, out);
}

void crypto_sha1(const uint8_t *in, size_t len, uint8_t out[20]) {
    unsigned int mdlen = 0;
    int ok = EVP_Digest(in, len, out, &mdlen, EVP_sha1(), NULL) == 1 && mdlen == 20;
    MP_ASSERT(ok);
}

/* ---- X25519 --------------------------------------------------------------------- */

int crypto_x25519_public(const uint8_t priv[32], uint8_t pub[32]) {
    EVP_PKEY *k = EVP_PKEY_new_raw_private_key(EVP_PKEY_X25519, NULL, priv, 32);
    if (!k) return MP_ECRYPTO;
    size_t n = 32;
    int ok = EVP_PKEY_get_raw_public_key(k, pub, &n) == 1 && n == 32;
    EVP_PKEY_free(k);
    return ok ? MP_OK : MP_ECRYPTO;
}

int crypto_x25519_keypair(uint8_t priv[32], uint8_t pub[32]) {
    if (RAND_bytes(priv, 32) != 1) return MP_ECRYPTO;
    return crypto_x25519_public(priv, pub);
}

static int x25519_derive(EVP_PKEY *k, const uint8_t peer[32], uint8_t shared[32]) {
    int rc = MP_ECRYPTO;
    EVP_PKEY *p = EVP_PKEY_new_raw_public_key(EVP_PKEY_X25519, NULL, peer, 32);
    EVP_PKEY_CTX *c = p ? EVP_PKEY_CTX_new(k, NULL) : NULL;
    size_t n = 32;
    if (c && EVP_PKEY_derive_init(c) == 1 && EVP_PKEY_derive_set_peer(c, p) == 1 &&
        EVP_PKEY_derive(c, shared, &n) == 1 && n == 32) {
        /* OpenSSL already refuses an all-zero result (low-order peer); keep the check local. */
        uint8_t acc = 0;
        for (int i = 0; i < 32; i++) acc |= shared[i];
        rc = acc ? MP_OK : MP_ECRYPTO;
    }
    EVP_PKEY_CTX_free(c);
    EVP_PKEY_free(p);
    return rc;
}

int crypto_x25519_shared(const uint8_t priv[32], const uint8_t peer[32], uint8_t shared[32]) {
    EVP_PKEY *k = EVP_PKEY_new_raw_private_key(EVP_PKEY_X25519, NULL, priv, 32);
    if (!k) return MP_ECRYPTO;
    int rc = x25519_derive(k, peer, shared);
    EVP_PKEY_free(k);
    return rc;
}

/* ---- key derivation and handshake ----------------------------------------------- */

void crypto_derive_aes_key(const uint8_t shared[32], uint8_t aes_key[16]) {
    char b64[44];
    char hex[32];
    b64_enc(shared, 32, b64);
    crypto_md5_hex((const uint8_t *)b64, sizeof(b64), hex);
    memcpy(aes_key, hex, 16);
}

void crypto_random_salt(uint8_t salt[16]) {
    static const char alnum[] = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
    int got = 0;
    while (got < 16) {
        uint8_t r[32];
        int ok = RAND_bytes(r, sizeof(r)) == 1;
        MP_ASSERT(ok); /* a failing CSPRNG must not silently yield a predictable IV */
        for (size_t i = 0; i < sizeof(r) && got < 16; i++)
            if (r[i] < 248) salt[got++] = (uint8_t)alnum[r[i] % 62]; /* 248 = 4*62: unbiased */
    }
}

int crypto_server_handshake(const char *client_key_b64, size_t len, crypto_keys *keys, char server_pub_b64[45]) {
    uint8_t client_pub[32], priv[32], pub[32], shared[32];
    long n = b64_dec(client_key_b64, len, client_pub, sizeof(client_pub));
    if (n < 32) return MP_EINVAL; /* invalid Base64 (-1) or too short; extra bytes are ignored */
    /* One key object for both the public key and the derivation: two scalar mults, not three. */
    EVP_PKEY *k = NULL;
    size_t pn = 32;
    int rc = MP_ECRYPTO;
    if (RAND_bytes(priv, 32) == 1 && (k = EVP_PKEY_new_raw_private_key(EVP_PKEY_X25519, NULL, priv, 32)) &&
        EVP_PKEY_get_raw_public_key(k, pub, &pn) == 1 && pn == 32)
        rc = x25519_derive(k, client_pub, shared);
    EVP_PKEY_free(k);
    if (rc == MP_OK) {
        crypto_derive_aes_key(shared, keys->aes_key);
        crypto_random_salt(keys->iv);
        b64_enc(pub, 32, server_pub_b64);
        server_pub_b64[44] = '\0';
    }
    OPENSSL_cleanse(priv, sizeof(priv));
    OPENSSL_cleanse(shared, sizeof(shared));
    return rc;
}

/* ---- AES-128-CBC ---------------------------------------------------------------- */

int crypto_encrypt_b64(const crypto_keys *k, const uint8_t *plain, size_t len, mp_buf *out) {
    if (len > INT32_MAX - 32) return MP_ECRYPTO;
    tls_ctx *t = ctx_get();
    size_t ct_len = (len / 16 + 1) * 16;
    size_t txt_len = b64_enc_len(ct_len);
    /* The ciphertext goes to scratch space just past where its Base64 text will land. */
    mp_buf_reserve(out, txt_len + ct_len);
    char *txt = (char *)out->data + out->len;
    uint8_t *ct = out->data + out->len + txt_len;
    int n1 = 0, n2 = 0;
    if (EVP_EncryptInit_ex2(t->enc, NULL, k->aes_key, k->iv, NULL) != 1 ||
        EVP_EncryptUpdate(t->enc, ct, &n1, plain, (int)len) != 1 ||
        EVP_EncryptFinal_ex(t->enc, ct + n1, &n2) != 1 || (size_t)(n1 + n2) != ct_len)
        return MP_ECRYPTO;
    out->len += b64_enc(ct, ct_len, txt);
    return MP_OK;
}

int crypto_decrypt_b64(const crypto_keys *k, const char *b64, size_t len, mp_buf *out) {
    if (len == 0 || len > INT32_MAX) return MP_ECRYPTO;
    tls_ctx *t = ctx_get();
    size_t cap = len / 4 * 3;
    mp_buf_reserve(out, cap);
    uint8_t *buf = out->data + out->len;
    long n = b64_dec(b64, len, buf, cap);
    if (n <= 0 || n % 16) return MP_ECRYPTO;
    /* Decrypt in place (exact overlap is allowed for CBC) and check PKCS#7 ourselves. */
    int n1 = 0, n2 = 0;
    if (EVP_DecryptInit_ex2(t->dec, NULL, k->aes_key, k->iv, NULL) != 1 ||
        EVP_DecryptUpdate(t->dec, buf, &n1, buf, (int)n) != 1 ||
        EVP_DecryptFinal_ex(t->dec, buf + n1, &n2) != 1 || n1 + n2 != n)
        return MP_ECRYPTO;
    uint8_t pad = buf[n - 1];
    uint8_t bad = pad == 0 || pad > 16;
    for (int i = 0; i < 16; i++) bad |= (uint8_t)((i < pad) & (buf[n - 1 - i] != pad));
    if (bad) return MP_ECRYPTO;
    out->len += (size_t)n - pad;
    return MP_OK;
}

/* ---- msgKey --------------------------------------------------------------------- */

/* Streams sign bytes through AES-CBC, the ciphertext through Base64 and the text
 * through MD5, using fixed stack buffers. */
typedef struct mk_stream {
    tls_ctx *t;
    uint8_t ct[1024 + 16 + 2]; /* ciphertext not yet Base64-encoded (carry < 3 at rest) */
    size_t ct_len;
    int err;
} mk_stream;

static void mk_flush(mk_stream *s, int final) {
    char txt[(sizeof(s->ct) + 2) / 3 * 4];
    size_t n = final ? s->ct_len : s->ct_len / 3 * 3;
    if (n == 0) return;
    size_t tn = b64_enc(s->ct, n, txt);
    if (EVP_DigestUpdate(s->t->md, txt, tn) != 1) s->err = 1;
    memmove(s->ct, s->ct + n, s->ct_len - n);
    s->ct_len -= n;
}

static void mk_begin(mk_stream *s, const crypto_keys *k) {
    s->t = ctx_get();
    s->ct_len = 0;
    s->err = EVP_EncryptInit_ex2(s->t->enc, NULL, k->aes_key, k->iv, NULL) != 1 ||
             EVP_DigestInit_ex(s->t->md, NULL, NULL) != 1;
}

static void mk_feed(mk_stream *s, const void *data, size_t len) {
    const uint8_t *p = data;
    while (len && !s->err) {
        size_t chunk = MP_MIN(len, (size_t)1024);
        int n = 0;
        if (EVP_EncryptUpdate(s->t->enc, s->ct + s->ct_len, &n, p, (int)chunk) != 1) {
            s->err = 1;
            return;
        }
        s->ct_len += (size_t)n;
        mk_flush(s, 0);
        p += chunk;
        len -= chunk;
    }
}

static void mk_feed_str(mk_stream *s, mp_str v) { mk_feed(s, v.p, v.len); }

static int mk_end(mk_stream *s, char out[32]) {
    int n = 0;
    if (!s->err && EVP_EncryptFinal_ex(s->t->enc, s->ct + s->ct_len, &n) != 1) s->err = 1;
    if (s->err) return MP_ECRYPTO;
    s->ct_len += (size_t)n;
    mk_flush(s, 1);
    uint8_t md[16];
    unsigned int mdlen = 0;
    if (s->err || EVP_DigestFinal_ex(s->t->md, md, &mdlen) != 1 || mdlen != 16) return MP_ECRYPTO;
    hex_lower(md, 16, out);
    return MP_OK;
}

int crypto_msgkey(const crypto_keys *k, const uint8_t *sign, size_t len, char out[32]) {
    mk_stream s;
    mk_begin(&s, k);
    mk_feed(&s, sign, len);
    return mk_end(&s, out);
}

int crypto_send_msgkey(const crypto_keys *k, uint32_t client_seq, mp_str client_msg_no, mp_str channel_id,
                       uint8_t channel_type, mp_str payload_b64, char out[32]) {
    char num[24];
    mk_stream s;
    mk_begin(&s, k);
    mk_feed(&s, num, (size_t)snprintf(num, sizeof(num), "%" PRIu32, client_seq));
    mk_feed_str(&s, client_msg_no);
    mk_feed_str(&s, channel_id);
    mk_feed(&s, num, (size_t)snprintf(num, sizeof(num), "%u", (unsigned)channel_type));
    mk_feed_str(&s, payload_b64);
    return mk_end(&s, out);
}

int crypto_recv_msgkey(const crypto_keys *k, int64_t message_id, uint32_t message_seq, mp_str client_msg_no,
                       int32_t timestamp, mp_str from_uid, mp_str channel_id, uint8_t channel_type,
                       mp_str payload_b64, char out[32]) {
    char num[24];
    mk_stream s;
    mk_begin(&s, k);
    mk_feed(&s, num, (size_t)snprintf(num, sizeof(num), "%" PRId64, message_id));
    mk_feed(&s, num, (size_t)snprintf(num, sizeof(num), "%" PRIu32, message_seq));
    mk_feed_str(&s, client_msg_no);
    mk_feed(&s, num, (size_t)snprintf(num, sizeof(num), "%" PRId32, timestamp));
    mk_feed_str(&s, from_uid);
    mk_feed_str(&s, channel_id);
    mk_feed(&s, num, (size_t)snprintf(num, sizeof(num), "%u", (unsigned)channel_type));
    mk_feed_str(&s, payload_b64);
    return mk_end(&s, out);
}
