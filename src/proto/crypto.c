/* crypto.c - WuKongIM payload crypto (spec §7) on OpenSSL 3.
 *
 * Hot paths (encrypt, decrypt, msgKey) run once per message per connection, so they
 * avoid per-call allocation: the AES and MD5 algorithm objects are fetched once per
 * process, the cipher and digest contexts are cached per thread (freed at thread exit)
 * with the last key expanded, and a msgKey's sign string, ciphertext and Base64 text
 * live on the stack unless the payload is large. Each is one OpenSSL call per step:
 * feeding OpenSSL many small pieces costs more than copying them together first.
 * X25519 only runs once per connection and uses the plain EVP_PKEY calls. */
#include "crypto.h"

#include <pthread.h>
#include <stdatomic.h>

#include <openssl/evp.h>
#include <openssl/rand.h>

#include "aesni.h"
#include "md5mb.h"

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
    /* The key each cipher context was last expanded for: a RECV encrypts its payload and
     * then its msgKey with one connection's key, so the second call only resets the IV. */
    uint8_t enc_key[16], dec_key[16];
    int enc_keyed, dec_keyed;
    /* The same for the AES-NI path: the schedules of the last key used on this thread. */
    aesni_key ni;
    uint8_t ni_key[16];
    int ni_keyed;
} tls_ctx;

/* AES-NI when the CPU has it (decided once), unless a test asked for OpenSSL. */
static atomic_int g_use_aesni;

static _Thread_local tls_ctx *t_ctx;

/* Runs at thread exit (pthread key destructor). */
static void tls_free(void *p) {
    tls_ctx *t = p;
    EVP_CIPHER_CTX_free(t->enc);
    EVP_CIPHER_CTX_free(t->dec);
    EVP_MD_CTX_free(t->md);
    OPENSSL_cleanse(t, sizeof *t);
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
    atomic_store(&g_use_aesni, aesni_available());
}

void crypto_force_openssl(int on) {
    pthread_once(&g_once, init_once);
    atomic_store(&g_use_aesni, on ? 0 : aesni_available());
}

/* The AES-NI schedules for k on this thread, or NULL when OpenSSL does the AES. */
static const aesni_key *ni_key(tls_ctx *t, const crypto_keys *k) {
    if (!atomic_load_explicit(&g_use_aesni, memory_order_relaxed)) return NULL;
    if (!t->ni_keyed || memcmp(t->ni_key, k->aes_key, 16) != 0) {
        aesni_expand(k->aes_key, &t->ni);
        memcpy(t->ni_key, k->aes_key, 16);
        t->ni_keyed = 1;
    }
    return &t->ni;
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

/* Set key and IV on a cipher context (encrypt = 1 or 0); the key is expanded only when it
 * differs from the last one this context was given. */
static int cipher_init(EVP_CIPHER_CTX *ctx, uint8_t last[16], int *keyed, const crypto_keys *k, int encrypt) {
    int same = *keyed && memcmp(last, k->aes_key, 16) == 0;
    if (EVP_CipherInit_ex2(ctx, NULL, same ? NULL : k->aes_key, k->iv, encrypt, NULL) != 1) {
        *keyed = 0;
        return 0;
    }
    memcpy(last, k->aes_key, 16);
    *keyed = 1;
    return 1;
}

static int enc_init(tls_ctx *t, const crypto_keys *k) { return cipher_init(t->enc, t->enc_key, &t->enc_keyed, k, 1); }
static int dec_init(tls_ctx *t, const crypto_keys *k) { return cipher_init(t->dec, t->dec_key, &t->dec_keyed, k, 0); }

/* ---- Base64 (standard alphabet, padded) ----------------------------------------- */

static const char b64_alpha[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static size_t b64_enc_len(size_t n) { return (n + 2) / 3 * 4; }

/* Two Base64 characters for every 12-bit value, so 3 input bytes take two lookups. Built
 * by the preprocessor from the alphabet's ranges. */
#define B64_CHAR(v) ((v) < 26 ? 'A' + (v) : (v) < 52 ? 'a' + (v) - 26 : (v) < 62 ? '0' + (v) - 52 : (v) == 62 ? '+' : '/')
#define B64_PAIR(i) {(char)B64_CHAR((i) >> 6), (char)B64_CHAR((i) & 63)}
#define B64_R4(i) B64_PAIR(i), B64_PAIR((i) + 1), B64_PAIR((i) + 2), B64_PAIR((i) + 3)
#define B64_R16(i) B64_R4(i), B64_R4((i) + 4), B64_R4((i) + 8), B64_R4((i) + 12)
#define B64_R64(i) B64_R16(i), B64_R16((i) + 16), B64_R16((i) + 32), B64_R16((i) + 48)
#define B64_R256(i) B64_R64(i), B64_R64((i) + 64), B64_R64((i) + 128), B64_R64((i) + 192)
#define B64_R1024(i) B64_R256(i), B64_R256((i) + 256), B64_R256((i) + 512), B64_R256((i) + 768)
static const char b64_pair[4096][2] = {B64_R1024(0), B64_R1024(1024), B64_R1024(2048), B64_R1024(3072)};

/* Writes b64_enc_len(n) chars to out (no NUL). */
static size_t b64_enc(const uint8_t *in, size_t n, char *out) {
    char *o = out;
    size_t i = 0;
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    /* 6 bytes per step from one 8-byte load (the top 48 bits after the byte swap). */
    for (; i + 8 <= n; i += 6) {
        uint64_t v;
        memcpy(&v, in + i, 8);
        v = __builtin_bswap64(v);
        memcpy(o, b64_pair[(v >> 52) & 4095], 2);
        memcpy(o + 2, b64_pair[(v >> 40) & 4095], 2);
        memcpy(o + 4, b64_pair[(v >> 28) & 4095], 2);
        memcpy(o + 6, b64_pair[(v >> 16) & 4095], 2);
        o += 8;
    }
#endif
    for (; i + 3 <= n; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
        memcpy(o, b64_pair[v >> 12], 2);
        memcpy(o + 2, b64_pair[v & 4095], 2);
        o += 4;
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

/* Base64 digit values; 255 marks a character outside the alphabet. */
static const uint8_t b64_digit[256] = {
    255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255,
    255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255,
    255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255,  62, 255, 255, 255,  63,
     52,  53,  54,  55,  56,  57,  58,  59,  60,  61, 255, 255, 255, 255, 255, 255,
    255,   0,   1,   2,   3,   4,   5,   6,   7,   8,   9,  10,  11,  12,  13,  14,
     15,  16,  17,  18,  19,  20,  21,  22,  23,  24,  25, 255, 255, 255, 255, 255,
    255,  26,  27,  28,  29,  30,  31,  32,  33,  34,  35,  36,  37,  38,  39,  40,
     41,  42,  43,  44,  45,  46,  47,  48,  49,  50,  51, 255, 255, 255, 255, 255,
    255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255,
    255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255,
    255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255,
    255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255,
    255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255,
    255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255,
    255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255,
    255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255,
};

/* Strict padded decode: length a multiple of 4, '=' only as the last one or two chars.
 * The whole input is validated, but at most `cap` bytes are stored into out.
 * Returns the decoded length (which may exceed cap), or -1 for invalid input. */
static long b64_dec(const char *in, size_t n, uint8_t *out, size_t cap) {
    if (n % 4) return -1;
    const unsigned char *q = (const unsigned char *)in;
    size_t full = n ? n - 4 : 0; /* every group but the last has no padding */
    size_t o = 0;
    uint8_t bad = 0;
    for (size_t i = 0; i < full; i += 4, q += 4) {
        uint8_t a = b64_digit[q[0]], b = b64_digit[q[1]], c = b64_digit[q[2]], d = b64_digit[q[3]];
        bad |= a | b | c | d; /* 255 sets the high bit; digits never do */
        uint32_t v = (uint32_t)a << 18 | (uint32_t)b << 12 | (uint32_t)c << 6 | d;
        if (o + 3 <= cap) {
            out[o] = (uint8_t)(v >> 16);
            out[o + 1] = (uint8_t)(v >> 8);
            out[o + 2] = (uint8_t)v;
        } else {
            uint8_t t[3] = {(uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v};
            for (int k = 0; k < 3; k++)
                if (o + (size_t)k < cap) out[o + k] = t[k];
        }
        o += 3;
    }
    if (bad & 0x80) return -1;
    if (n == 0) return 0;
    int pad = q[3] == '=' ? (q[2] == '=' ? 2 : 1) : 0;
    uint8_t a = b64_digit[q[0]], b = b64_digit[q[1]];
    uint8_t c = pad == 2 ? 0 : b64_digit[q[2]];
    uint8_t d = pad ? 0 : b64_digit[q[3]];
    if ((a | b | c | d) & 0x80) return -1;
    uint32_t v = (uint32_t)a << 18 | (uint32_t)b << 12 | (uint32_t)c << 6 | d;
    uint8_t t[3] = {(uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v};
    for (int k = 0; k < 3 - pad; k++, o++)
        if (o < cap) out[o] = t[k];
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

/* ct = AES-CBC(plain ‖ PKCS#7), (len / 16 + 1) * 16 bytes. */
static int aes_encrypt_pad(tls_ctx *t, const crypto_keys *k, const uint8_t *plain, size_t len, uint8_t *ct) {
    const aesni_key *ni = ni_key(t, k);
    if (ni) {
        aesni_cbc_encrypt_pad(ni, k->iv, plain, len, ct);
        return MP_OK;
    }
    int n1 = 0, n2 = 0;
    if (!enc_init(t, k) || EVP_EncryptUpdate(t->enc, ct, &n1, plain, (int)len) != 1 ||
        EVP_EncryptFinal_ex(t->enc, ct + n1, &n2) != 1 || (size_t)(n1 + n2) != (len / 16 + 1) * 16)
        return MP_ECRYPTO;
    return MP_OK;
}

int crypto_encrypt_b64(const crypto_keys *k, const uint8_t *plain, size_t len, mp_buf *out) {
    if (len > INT32_MAX - 32) return MP_ECRYPTO;
    tls_ctx *t = ctx_get();
    size_t ct_len = (len / 16 + 1) * 16;
    size_t txt_len = b64_enc_len(ct_len);
    /* The ciphertext goes to scratch space just past where its Base64 text will land. */
    mp_buf_reserve(out, txt_len + ct_len);
    char *txt = (char *)out->data + out->len;
    uint8_t *ct = out->data + out->len + txt_len;
    if (aes_encrypt_pad(t, k, plain, len, ct) != MP_OK) return MP_ECRYPTO;
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
    const aesni_key *ni = ni_key(t, k);
    if (ni) {
        aesni_cbc_decrypt(ni, k->iv, buf, (size_t)n / 16, buf);
    } else {
        int n1 = 0, n2 = 0;
        if (!dec_init(t, k) || EVP_DecryptUpdate(t->dec, buf, &n1, buf, (int)n) != 1 ||
            EVP_DecryptFinal_ex(t->dec, buf + n1, &n2) != 1 || n1 + n2 != n)
            return MP_ECRYPTO;
    }
    uint8_t pad = buf[n - 1];
    uint8_t bad = pad == 0 || pad > 16;
    for (int i = 0; i < 16; i++) bad |= (uint8_t)((i < pad) & (buf[n - 1 - i] != pad));
    if (bad) return MP_ECRYPTO;
    out->len += (size_t)n - pad;
    return MP_OK;
}

/* ---- msgKey --------------------------------------------------------------------- */

/* Sign strings of ordinary messages fit on the stack; a bigger one (a large payload)
 * takes one heap buffer for its ciphertext and Base64 text. */
#define MK_STACK 1536

/* msgKey of the sign bytes: one AES pass, one Base64 pass, one MD5. */
int crypto_msgkey(const crypto_keys *k, const uint8_t *sign, size_t len, char out[32]) {
    if (len > INT32_MAX - 32) return MP_ECRYPTO;
    tls_ctx *t = ctx_get();
    size_t ct_len = (len / 16 + 1) * 16;
    size_t need = ct_len + b64_enc_len(ct_len);
    uint8_t stack[MK_STACK / 16 * 16 + 16 + (MK_STACK / 16 * 16 + 16 + 2) / 3 * 4];
    uint8_t *mem = need <= sizeof(stack) ? stack : mp_malloc(need);
    uint8_t *ct = mem;
    char *txt = (char *)mem + ct_len;
    int rc = MP_ECRYPTO;
    uint8_t md[16];
    unsigned int mdlen = 0;
    if (aes_encrypt_pad(t, k, sign, len, ct) == MP_OK) {
        size_t tn = b64_enc(ct, ct_len, txt);
        if (EVP_DigestInit_ex(t->md, NULL, NULL) == 1 && EVP_DigestUpdate(t->md, txt, tn) == 1 &&
            EVP_DigestFinal_ex(t->md, md, &mdlen) == 1 && mdlen == 16) {
            hex_lower(md, 16, out);
            rc = MP_OK;
        }
    }
    if (mem != stack) free(mem);
    return rc;
}

/* The sign string under construction: on the stack while it fits, else on the heap. */
typedef struct sign_buf {
    char stack[MK_STACK];
    mp_buf heap;
    size_t len;
    int spilled;
} sign_buf;

static void sign_put(sign_buf *b, const void *p, size_t n) {
    if (!b->spilled && b->len + n <= sizeof(b->stack)) {
        memcpy(b->stack + b->len, p, n);
        b->len += n;
        return;
    }
    if (!b->spilled) {
        b->heap = (mp_buf)MP_BUF_INIT;
        mp_buf_append(&b->heap, b->stack, b->len);
        b->spilled = 1;
    }
    mp_buf_append(&b->heap, p, n);
    b->len += n;
}

static void sign_str(sign_buf *b, mp_str v) { sign_put(b, v.p, v.len); }

/* Decimal text of v (with a leading '-' when negative), as Go's strconv prints it. */
static void sign_int(sign_buf *b, int64_t v) {
    static const char two[] = "00010203040506070809101112131415161718192021222324252627282930313233343536373839"
                              "40414243444546474849505152535455565758596061626364656667686970717273747576777879"
                              "8081828384858687888990919293949596979899";
    char tmp[21];
    size_t i = sizeof(tmp);
    uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
    while (u >= 100) { /* two digits per division */
        uint64_t r = u % 100;
        u /= 100;
        i -= 2;
        memcpy(tmp + i, two + 2 * r, 2);
    }
    if (u >= 10) {
        i -= 2;
        memcpy(tmp + i, two + 2 * u, 2);
    } else {
        tmp[--i] = (char)('0' + u);
    }
    if (v < 0) tmp[--i] = '-';
    sign_put(b, tmp + i, sizeof(tmp) - i);
}

static int sign_finish(sign_buf *b, const crypto_keys *k, char out[32]) {
    const uint8_t *p = b->spilled ? b->heap.data : (const uint8_t *)b->stack;
    int rc = crypto_msgkey(k, p, b->len, out);
    if (b->spilled) mp_buf_free(&b->heap);
    return rc;
}

int crypto_send_msgkey(const crypto_keys *k, uint32_t client_seq, mp_str client_msg_no, mp_str channel_id,
                       uint8_t channel_type, mp_str payload_b64, char out[32]) {
    sign_buf b;
    b.len = 0;
    b.spilled = 0;
    sign_int(&b, client_seq);
    sign_str(&b, client_msg_no);
    sign_str(&b, channel_id);
    sign_int(&b, channel_type);
    sign_str(&b, payload_b64);
    return sign_finish(&b, k, out);
}

static void sign_recv(sign_buf *b, const crypto_recv_sign *r) {
    b->len = 0;
    b->spilled = 0;
    sign_int(b, r->message_id);
    sign_int(b, r->message_seq);
    sign_str(b, r->client_msg_no);
    sign_int(b, r->timestamp);
    sign_str(b, r->from_uid);
    sign_str(b, r->channel_id);
    sign_int(b, r->channel_type);
    sign_str(b, r->payload_b64);
}

int crypto_recv_msgkey(const crypto_keys *k, int64_t message_id, uint32_t message_seq, mp_str client_msg_no,
                       int32_t timestamp, mp_str from_uid, mp_str channel_id, uint8_t channel_type,
                       mp_str payload_b64, char out[32]) {
    crypto_recv_sign r = {k, message_id, message_seq, client_msg_no, timestamp, from_uid, channel_id, channel_type,
                          payload_b64};
    sign_buf b;
    sign_recv(&b, &r);
    return sign_finish(&b, k, out);
}

/* One lane of a batched msgKey: the Base64 text of the encrypted sign string, whose MD5 is
 * the msgKey. Per thread: 8 lanes of about 3.6 KiB are too much for a stack frame. */
#define MK_CT_MAX (MK_STACK / 16 * 16 + 16)
typedef struct mk_lane {
    uint8_t ct[MK_CT_MAX];
    uint8_t txt[(MK_CT_MAX + 2) / 3 * 4];
    size_t len;
    int hashed;    /* nothing left to hash: its MD5 is done, or it has no text */
    int own, fail; /* own: the msgKey was computed alone into key (a big sign string) */
    char key[32];
} mk_lane;
static _Thread_local mk_lane t_lanes[CRYPTO_MSGKEY_BATCH];

/* MD5 of the lanes whose texts have lane first's length, several at a time. */
static void md5_equal_lanes(size_t n, size_t first, char out[][32]) {
    const uint8_t *msgs[MD5MB_LANES];
    size_t idx[MD5MB_LANES], m = 0;
    for (size_t i = first; i < n; i++) {
        mk_lane *l = &t_lanes[i];
        if (l->hashed || l->len != t_lanes[first].len) continue;
        msgs[m] = l->txt;
        idx[m++] = i;
        l->hashed = 1;
    }
    uint8_t md[MD5MB_LANES][16];
    md5mb(msgs, m, t_lanes[first].len, md);
    for (size_t j = 0; j < m; j++) hex_lower(md[j], 16, out[idx[j]]);
}

int crypto_recv_msgkey_lane(size_t lane, const crypto_recv_sign *in) {
    MP_ASSERT(lane < CRYPTO_MSGKEY_BATCH && CRYPTO_MSGKEY_BATCH <= MD5MB_LANES);
    mk_lane *l = &t_lanes[lane];
    l->hashed = 1; /* until its text is ready */
    sign_buf b;
    sign_recv(&b, in);
    l->own = b.spilled;
    if (b.spilled) { /* a sign string too big for the lane: its msgKey now, on its own */
        l->fail = sign_finish(&b, in->k, l->key) != MP_OK;
        return l->fail ? MP_ECRYPTO : MP_OK;
    }
    l->fail = aes_encrypt_pad(ctx_get(), in->k, (const uint8_t *)b.stack, b.len, l->ct) != MP_OK;
    if (l->fail) return MP_ECRYPTO;
    l->len = b64_enc(l->ct, (b.len / 16 + 1) * 16, (char *)l->txt);
    l->hashed = 0;
    return MP_OK;
}

void crypto_recv_msgkey_lanes(size_t n, char out[][32]) {
    MP_ASSERT(n <= CRYPTO_MSGKEY_BATCH);
    for (size_t i = 0; i < n; i++)
        if (t_lanes[i].own && !t_lanes[i].fail) memcpy(out[i], t_lanes[i].key, 32);
    for (size_t i = 0; i < n; i++)
        if (!t_lanes[i].hashed) md5_equal_lanes(n, i, out);
}
