/* test_proto_crypto.c - key exchange, AES/Base64 payloads and msgKey against the
 * spec's §7.9 worked example, plus failure handling of untrusted ciphertext. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <cmocka.h>
#include <ctype.h>
#include <pthread.h>

#include <openssl/evp.h>

#include <openssl/rand.h>

#include "common/buf.h"
#include "proto/aesni.h"
#include "proto/crypto.h"
#include "proto/md5mb.h"

/* ---- §7.9 values ---------------------------------------------------------------- */

#define CLIENT_SEED "0123456789abcdef0123456789abcdef"
#define CLIENT_PUB_HEX "86517bc0c39fe876b7646cb5e34ee03daf71ccbad67450c16a970ad8cbc03e7e"
#define CLIENT_KEY_B64 "hlF7wMOf6Ha3ZGy1407gPa9xzLrWdFDBapcK2MvAPn4="
#define SERVER_PRIV_HEX "0102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f20"
#define SERVER_PUB_HEX "07a37cbc142093c8b755dc1b10e86cb426374ad16aa853ed0bdfc0b2b86d1c7c"
#define SERVER_KEY_B64 "B6N8vBQgk8i3VdwbEOhstCY3StFqqFPtC9/AsrhtHHw="
#define SHARED_HEX "4556e110d50f5f9fb0871b27adaa947f9ead6688599435824f585e6482b81250"
#define SHARED_B64 "RVbhENUPX5+whxsnraqUf56tZohZlDWCT1heZIK4ElA="
#define SHARED_MD5 "4989ad64ccaf943de10cda10ffdb31af"
#define AES_KEY "4989ad64ccaf943d"
#define SALT "a1B2c3D4e5F6g7H8"
#define PLAINTEXT "{\"content\":\"hi\",\"type\":1}"
#define CIPHER_HEX "f801397385a61bc1ae953f5e9a53625549eb953c4cee870b4d6a05f92ced2bf4"
#define PAYLOAD_B64 "+AE5c4WmG8GulT9emlNiVUnrlTxM7ocLTWoF+SztK/Q="
#define SEND_SIGN "1cmn1u21" PAYLOAD_B64
#define SEND_SIGN_AES_B64 "uvHW/a+B/LOyLL6ywjsMVs9QikL3hlBKBUVGRORWQKT/vupeaYv0BQjr8Crk+Qm0P2JJlvRmEwe/7XgdpEDmTQ=="
#define SEND_MSGKEY "0efe6776a486c329dfc55501bdbf7728"
#define RECV_SIGN "12345678901237cmn11700000001u1u11" PAYLOAD_B64
#define RECV_SIGN_AES_B64                                                                            \
    "zMxEWJyTpVQGxQwwwfVPm0XH6Q4cEJOFR/8mj1AQaFcSks5UOikEexp0MdD4OWvZiZFvgKYAHeGK5a3IPEyUHTjElzJaaB" \
    "yaTe6zQasyGZg="
#define RECV_MSGKEY "f874a77c6d21b020b881b91a6b117b29"

/* ---- helpers -------------------------------------------------------------------- */

static void unhex(const char *h, uint8_t *out, size_t n) {
    assert_int_equal(strlen(h), 2 * n);
    for (size_t i = 0; i < n; i++) {
        unsigned v;
        assert_int_equal(sscanf(h + 2 * i, "%2x", &v), 1);
        out[i] = (uint8_t)v;
    }
}

static void assert_buf_str(const mp_buf *b, const char *want) {
    assert_int_equal(b->len, strlen(want));
    assert_memory_equal(b->data, want, b->len);
}

static crypto_keys example_keys(void) {
    crypto_keys k;
    memcpy(k.aes_key, AES_KEY, 16);
    memcpy(k.iv, SALT, 16);
    return k;
}

/* Raw AES-128-CBC without padding, to build ciphertexts with chosen (bad) padding. */
static void aes_raw(const crypto_keys *k, const uint8_t *in, int n, uint8_t *out) {
    EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
    int n1 = 0, n2 = 0;
    assert_int_equal(EVP_EncryptInit_ex(c, EVP_aes_128_cbc(), NULL, k->aes_key, k->iv), 1);
    EVP_CIPHER_CTX_set_padding(c, 0);
    assert_int_equal(EVP_EncryptUpdate(c, out, &n1, in, n), 1);
    assert_int_equal(EVP_EncryptFinal_ex(c, out + n1, &n2), 1);
    assert_int_equal(n1 + n2, n);
    EVP_CIPHER_CTX_free(c);
}

/* ---- Base64 --------------------------------------------------------------------- */

static void test_b64_rfc4648(void **state) {
    (void)state;
    static const char *t[][2] = {{"", ""},          {"f", "Zg=="},         {"fo", "Zm8="},      {"foo", "Zm9v"},
                                 {"foob", "Zm9vYg=="}, {"fooba", "Zm9vYmE="}, {"foobar", "Zm9vYmFy"}};
    for (size_t i = 0; i < MP_ARRAY_LEN(t); i++) {
        mp_buf b = MP_BUF_INIT;
        crypto_b64_encode((const uint8_t *)t[i][0], strlen(t[i][0]), &b);
        assert_buf_str(&b, t[i][1]);
        mp_buf d = MP_BUF_INIT;
        assert_int_equal(crypto_b64_decode(t[i][1], strlen(t[i][1]), &d), MP_OK);
        assert_int_equal(d.len, strlen(t[i][0]));
        if (d.len) assert_memory_equal(d.data, t[i][0], d.len);
        mp_buf_free(&b);
        mp_buf_free(&d);
    }
}

static void test_b64_matches_openssl(void **state) {
    (void)state;
    uint8_t in[300];
    for (size_t i = 0; i < sizeof(in); i++) in[i] = (uint8_t)(i * 37 + 11);
    for (size_t n = 0; n <= sizeof(in); n++) {
        unsigned char ref[404];
        int rn = EVP_EncodeBlock(ref, in, (int)n);
        mp_buf b = MP_BUF_INIT;
        mp_buf_append(&b, "xy", 2); /* appends after existing content */
        crypto_b64_encode(in, n, &b);
        assert_int_equal(b.len, 2 + (size_t)rn);
        assert_memory_equal(b.data + 2, ref, (size_t)rn);
        mp_buf d = MP_BUF_INIT;
        assert_int_equal(crypto_b64_decode((const char *)b.data + 2, b.len - 2, &d), MP_OK);
        assert_int_equal(d.len, n);
        if (n) assert_memory_equal(d.data, in, n);
        mp_buf_free(&b);
        mp_buf_free(&d);
    }
}

static void test_b64_decode_rejects(void **state) {
    (void)state;
    static const char *bad[] = {
        "Zg=",      /* length not a multiple of 4 */
        "Zg",       /* unpadded */
        "Z",        "Zm9vY",
        "====",     /* padding only */
        "Z===",     /* too much padding */
        "=Zg=",     /* padding first */
        "Zg==Zg==", /* padding in the middle */
        "Zm=v",     /* padding before data */
        "Zm9v!A==", /* bad character */
        "Zm9v\nA==", "Zm9v A==", "Zm9-", "Zm9_", "Zm9v\0AAA",
    };
    for (size_t i = 0; i < MP_ARRAY_LEN(bad); i++) {
        size_t n = i == MP_ARRAY_LEN(bad) - 1 ? 8 : strlen(bad[i]);
        mp_buf d = MP_BUF_INIT;
        mp_buf_append(&d, "keep", 4);
        if (crypto_b64_decode(bad[i], n, &d) != MP_EINVAL) fail_msg("accepted bad base64 #%zu", i);
        assert_int_equal(d.len, 4);
        mp_buf_free(&d);
    }
}

/* ---- digests -------------------------------------------------------------------- */

static void test_md5_sha1(void **state) {
    (void)state;
    char hex[32];
    crypto_md5_hex((const uint8_t *)"", 0, hex);
    assert_memory_equal(hex, "d41d8cd98f00b204e9800998ecf8427e", 32);
    crypto_md5_hex((const uint8_t *)"abc", 3, hex);
    assert_memory_equal(hex, "900150983cd24fb0d6963f7d28e17f72", 32);
    crypto_md5_hex((const uint8_t *)SHARED_B64, 44, hex);
    assert_memory_equal(hex, SHARED_MD5, 32);

    /* RFC 6455 §1.3 handshake example. */
    const char *k = "dGhlIHNhbXBsZSBub25jZQ==258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
    uint8_t sha[20];
    crypto_sha1((const uint8_t *)k, strlen(k), sha);
    mp_buf b = MP_BUF_INIT;
    crypto_b64_encode(sha, 20, &b);
    assert_buf_str(&b, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    mp_buf_free(&b);
}

/* ---- §7.9 worked example -------------------------------------------------------- */

static void test_example_key_exchange(void **state) {
    (void)state;
    uint8_t cpriv[32], cpub[32], want[32];
    memcpy(cpriv, CLIENT_SEED, 32); /* SDK style: ASCII of 32 hex chars */
    assert_int_equal(crypto_x25519_public(cpriv, cpub), MP_OK);
    unhex(CLIENT_PUB_HEX, want, 32);
    assert_memory_equal(cpub, want, 32);
    mp_buf b = MP_BUF_INIT;
    crypto_b64_encode(cpub, 32, &b);
    assert_buf_str(&b, CLIENT_KEY_B64);

    uint8_t spriv[32], spub[32];
    unhex(SERVER_PRIV_HEX, spriv, 32);
    assert_int_equal(crypto_x25519_public(spriv, spub), MP_OK);
    unhex(SERVER_PUB_HEX, want, 32);
    assert_memory_equal(spub, want, 32);
    mp_buf_reset(&b);
    crypto_b64_encode(spub, 32, &b);
    assert_buf_str(&b, SERVER_KEY_B64);

    uint8_t s1[32], s2[32];
    assert_int_equal(crypto_x25519_shared(spriv, cpub, s1), MP_OK);
    assert_int_equal(crypto_x25519_shared(cpriv, spub, s2), MP_OK);
    unhex(SHARED_HEX, want, 32);
    assert_memory_equal(s1, want, 32);
    assert_memory_equal(s2, want, 32);
    mp_buf_reset(&b);
    crypto_b64_encode(s1, 32, &b);
    assert_buf_str(&b, SHARED_B64);

    uint8_t aes[16];
    crypto_derive_aes_key(s1, aes);
    assert_memory_equal(aes, AES_KEY, 16);
    mp_buf_free(&b);
}

static void test_example_encrypt_decrypt(void **state) {
    (void)state;
    crypto_keys k = example_keys();
    mp_buf enc = MP_BUF_INIT;
    assert_int_equal(crypto_encrypt_b64(&k, (const uint8_t *)PLAINTEXT, strlen(PLAINTEXT), &enc), MP_OK);
    assert_buf_str(&enc, PAYLOAD_B64);

    uint8_t want[32];
    unhex(CIPHER_HEX, want, 32);
    mp_buf raw = MP_BUF_INIT;
    assert_int_equal(crypto_b64_decode((const char *)enc.data, enc.len, &raw), MP_OK);
    assert_int_equal(raw.len, 32);
    assert_memory_equal(raw.data, want, 32);

    mp_buf dec = MP_BUF_INIT;
    mp_buf_append(&dec, "pre", 3);
    assert_int_equal(crypto_decrypt_b64(&k, PAYLOAD_B64, strlen(PAYLOAD_B64), &dec), MP_OK);
    assert_int_equal(dec.len, 3 + strlen(PLAINTEXT));
    assert_memory_equal(dec.data, "pre" PLAINTEXT, dec.len);
    mp_buf_free(&enc);
    mp_buf_free(&raw);
    mp_buf_free(&dec);
}

static void test_example_send_msgkey(void **state) {
    (void)state;
    crypto_keys k = example_keys();
    /* Intermediate step: AES(sign) as Base64. */
    mp_buf enc = MP_BUF_INIT;
    assert_int_equal(crypto_encrypt_b64(&k, (const uint8_t *)SEND_SIGN, strlen(SEND_SIGN), &enc), MP_OK);
    assert_buf_str(&enc, SEND_SIGN_AES_B64);
    char key[32];
    crypto_md5_hex(enc.data, enc.len, key);
    assert_memory_equal(key, SEND_MSGKEY, 32);

    memset(key, 0, sizeof(key));
    assert_int_equal(crypto_msgkey(&k, (const uint8_t *)SEND_SIGN, strlen(SEND_SIGN), key), MP_OK);
    assert_memory_equal(key, SEND_MSGKEY, 32);

    memset(key, 0, sizeof(key));
    assert_int_equal(crypto_send_msgkey(&k, 1, MP_STR("cmn1"), MP_STR("u2"), 1, MP_STR(PAYLOAD_B64), key), MP_OK);
    assert_memory_equal(key, SEND_MSGKEY, 32);
    mp_buf_free(&enc);
}

static void test_example_recv_msgkey(void **state) {
    (void)state;
    crypto_keys k = example_keys();
    mp_buf enc = MP_BUF_INIT;
    assert_int_equal(crypto_encrypt_b64(&k, (const uint8_t *)RECV_SIGN, strlen(RECV_SIGN), &enc), MP_OK);
    assert_buf_str(&enc, RECV_SIGN_AES_B64);

    char key[32];
    assert_int_equal(crypto_msgkey(&k, (const uint8_t *)RECV_SIGN, strlen(RECV_SIGN), key), MP_OK);
    assert_memory_equal(key, RECV_MSGKEY, 32);

    memset(key, 0, sizeof(key));
    assert_int_equal(crypto_recv_msgkey(&k, 1234567890123LL, 7, MP_STR("cmn1"), 1700000001, MP_STR("u1"),
                                        MP_STR("u1"), 1, MP_STR(PAYLOAD_B64), key),
                     MP_OK);
    assert_memory_equal(key, RECV_MSGKEY, 32);
    mp_buf_free(&enc);
}

/* msgKey must equal the definition md5hex(Base64(AES(sign))) for every length, on both
 * sides of the stack/heap boundary of its buffers. */
static void test_msgkey_matches_definition(void **state) {
    (void)state;
    crypto_keys k = example_keys();
    static const size_t lens[] = {0, 1, 2, 3, 15, 16, 17, 47, 48, 1021, 1022, 1023, 1024, 1025, 1535, 1536, 1537, 2048, 3001, 70000};
    uint8_t *sign = mp_malloc(70000);
    for (size_t i = 0; i < 70000; i++) sign[i] = (uint8_t)(i * 131 + 7);
    for (size_t i = 0; i < MP_ARRAY_LEN(lens); i++) {
        mp_buf enc = MP_BUF_INIT;
        assert_int_equal(crypto_encrypt_b64(&k, sign, lens[i], &enc), MP_OK);
        char want[32], got[32];
        crypto_md5_hex(enc.data, enc.len, want);
        assert_int_equal(crypto_msgkey(&k, sign, lens[i], got), MP_OK);
        if (memcmp(want, got, 32) != 0) fail_msg("msgkey mismatch at length %zu", lens[i]);
        mp_buf_free(&enc);
    }
    /* The field-wise SEND variant with a big payload equals msgkey of the joined string. */
    mp_buf joined = MP_BUF_INIT;
    mp_buf_append(&joined, "4294967295cmn1u2255", 19);
    mp_buf_append(&joined, sign, 5000);
    char a[32], b[32];
    assert_int_equal(crypto_msgkey(&k, joined.data, joined.len, a), MP_OK);
    assert_int_equal(crypto_send_msgkey(&k, UINT32_MAX, MP_STR("cmn1"), MP_STR("u2"), 255,
                                        (mp_str){(const char *)sign, 5000}, b),
                     MP_OK);
    assert_memory_equal(a, b, 32);
    /* Negative ids/timestamps are printed with a sign (Go's %d). */
    mp_buf_reset(&joined);
    mp_buf_append(&joined, "-50c-7u1g12", 11);
    assert_int_equal(crypto_msgkey(&k, joined.data, joined.len, a), MP_OK);
    assert_int_equal(crypto_recv_msgkey(&k, -5, 0, MP_STR("c"), -7, MP_STR("u1"), MP_STR("g1"), 2, MP_STR(""), b),
                     MP_OK);
    assert_memory_equal(a, b, 32);
    mp_buf_free(&joined);
    free(sign);
}

/* ---- encrypt / decrypt ---------------------------------------------------------- */

static void test_encrypt_decrypt_round_trip(void **state) {
    (void)state;
    crypto_keys k = example_keys();
    uint8_t *plain = mp_malloc(100000);
    for (size_t i = 0; i < 100000; i++) plain[i] = (uint8_t)(i ^ (i >> 8));
    for (size_t n = 0; n <= 100000; n = n < 70 ? n + 1 : n * 3) {
        mp_buf enc = MP_BUF_INIT, dec = MP_BUF_INIT;
        assert_int_equal(crypto_encrypt_b64(&k, plain, n, &enc), MP_OK);
        assert_int_equal(enc.len, ((n / 16 + 1) * 16 + 2) / 3 * 4); /* always 1..16 bytes of padding */
        assert_int_equal(crypto_decrypt_b64(&k, (const char *)enc.data, enc.len, &dec), MP_OK);
        assert_int_equal(dec.len, n);
        if (n) assert_memory_equal(dec.data, plain, n);
        mp_buf_free(&enc);
        mp_buf_free(&dec);
    }
    free(plain);
}

/* The sign string's numbers are printed without printf: compare with it for edge and
 * random values of every width. */
static void test_msgkey_numbers_match_printf(void **state) {
    (void)state;
    crypto_keys k = example_keys();
    int64_t ids[64] = {0, 1, 9, 10, 99, 100, 101, 999, 1000, -1, -9, -10, -100, INT64_MAX, INT64_MIN, INT64_MIN + 1};
    uint64_t x = 88172645463325252ull;
    for (int i = 16; i < 64; i++) { /* xorshift: values of every length */
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        ids[i] = (int64_t)(x >> (i % 60));
        if (i % 3 == 0) ids[i] = -ids[i];
    }
    for (int i = 0; i < 64; i++) {
        uint32_t seq = (uint32_t)(ids[i] ^ (ids[i] >> 32));
        int32_t ts = (int32_t)ids[i];
        char sign[160], a[32], b[32];
        int n = snprintf(sign, sizeof sign, "%lld%ucmn%dufg2pl", (long long)ids[i], seq, ts);
        assert_int_equal(crypto_msgkey(&k, (const uint8_t *)sign, (size_t)n, a), MP_OK);
        assert_int_equal(crypto_recv_msgkey(&k, ids[i], seq, MP_STR("cmn"), ts, MP_STR("u"), MP_STR("fg"), 2,
                                            MP_STR("pl"), b),
                         MP_OK);
        if (memcmp(a, b, 32) != 0) fail_msg("sign string differs from printf for %lld", (long long)ids[i]);
    }
}

/* The AES-NI path against OpenSSL's EVP AES-128-CBC: random keys, IVs and lengths,
 * padding included, decryption in place and out of place. */
static void test_aesni_matches_openssl(void **state) {
    (void)state;
    if (!aesni_available()) skip();
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    uint8_t plain[700], ref[720], got[720], back[720];
    for (int round = 0; round < 400; round++) {
        uint8_t key[16], iv[16];
        assert_int_equal(RAND_bytes(key, 16), 1);
        assert_int_equal(RAND_bytes(iv, 16), 1);
        size_t len = round < 50 ? (size_t)round : (size_t)(round * 7919) % sizeof plain;
        assert_int_equal(RAND_bytes(plain, (int)sizeof plain), 1);
        int n1 = 0, n2 = 0;
        assert_int_equal(EVP_EncryptInit_ex2(ctx, EVP_aes_128_cbc(), key, iv, NULL), 1);
        assert_int_equal(EVP_EncryptUpdate(ctx, ref, &n1, plain, (int)len), 1);
        assert_int_equal(EVP_EncryptFinal_ex(ctx, ref + n1, &n2), 1);
        size_t ct_len = (size_t)(n1 + n2);
        assert_int_equal(ct_len, (len / 16 + 1) * 16);
        aesni_key k;
        aesni_expand(key, &k);
        aesni_cbc_encrypt_pad(&k, iv, plain, len, got);
        if (memcmp(got, ref, ct_len) != 0) fail_msg("ciphertext differs from OpenSSL at length %zu", len);
        aesni_cbc_decrypt(&k, iv, got, ct_len / 16, back);
        assert_memory_equal(back, plain, len);
        for (size_t i = len; i < ct_len; i++) assert_int_equal(back[i], ct_len - len);
        aesni_cbc_decrypt(&k, iv, got, ct_len / 16, got); /* in place */
        assert_memory_equal(got, back, ct_len);
    }
    EVP_CIPHER_CTX_free(ctx);
}

/* The cipher contexts keep the last expanded key per thread: alternating connections'
 * keys must still give each its own ciphertext. */
static void test_alternating_keys(void **state) {
    (void)state;
    crypto_keys a = example_keys(), b = example_keys();
    b.aes_key[0] ^= 1;
    for (int round = 0; round < 3; round++) {
        mp_buf ea = MP_BUF_INIT, eb = MP_BUF_INIT, d = MP_BUF_INIT;
        assert_int_equal(crypto_encrypt_b64(&a, (const uint8_t *)PLAINTEXT, strlen(PLAINTEXT), &ea), MP_OK);
        assert_int_equal(ea.len, strlen(PAYLOAD_B64));
        assert_memory_equal(ea.data, PAYLOAD_B64, ea.len);
        assert_int_equal(crypto_encrypt_b64(&b, (const uint8_t *)PLAINTEXT, strlen(PLAINTEXT), &eb), MP_OK);
        assert_false(eb.len == ea.len && memcmp(eb.data, ea.data, ea.len) == 0);
        /* b's ciphertext does not decrypt as a's, and a's does after b was used */
        assert_int_not_equal(crypto_decrypt_b64(&a, (const char *)eb.data, eb.len, &d) == MP_OK &&
                                 d.len == strlen(PLAINTEXT) && memcmp(d.data, PLAINTEXT, d.len) == 0,
                             1);
        mp_buf_reset(&d);
        assert_int_equal(crypto_decrypt_b64(&b, (const char *)eb.data, eb.len, &d), MP_OK);
        mp_buf_reset(&d);
        assert_int_equal(crypto_decrypt_b64(&a, PAYLOAD_B64, strlen(PAYLOAD_B64), &d), MP_OK);
        assert_memory_equal(d.data, PLAINTEXT, strlen(PLAINTEXT));
        mp_buf_free(&ea);
        mp_buf_free(&eb);
        mp_buf_free(&d);
    }
}

/* A fan-out's msgKeys, computed together, equal one crypto_recv_msgkey per connection: the
 * spec's vector among them, different keys, person-channel ids of different lengths (texts
 * of unequal length), a payload too big for a lane's buffers, and batches of 1..8. */
static void test_recv_msgkeys_batch(void **state) {
    (void)state;
    static char big[4000];
    memset(big, 'B', sizeof big - 1);
    crypto_keys keys[CRYPTO_MSGKEY_BATCH];
    crypto_recv_sign in[CRYPTO_MSGKEY_BATCH];
    const char *chans[] = {"u1", "g1", "g1", "someone-longer", "g1", "g1", "g1", "g1"};
    for (int force = 0; force <= 1; force++) {
        md5mb_force_scalar(force);
        for (size_t n = 1; n <= CRYPTO_MSGKEY_BATCH; n++) {
            for (size_t i = 0; i < n; i++) {
                keys[i] = example_keys();
                if (i) keys[i].aes_key[i % 16] ^= (uint8_t)(i * 37), keys[i].iv[(i * 5) % 16] ^= (uint8_t)i;
                in[i] = (crypto_recv_sign){&keys[i], 1234567890123LL, 7, MP_STR("cmn1"), 1700000001, MP_STR("u1"),
                                           mp_str_c(chans[i]), 1, MP_STR(PAYLOAD_B64)};
            }
            if (n == 7) in[5].payload_b64 = mp_str_c(big); /* the sign string spills */
            char got[CRYPTO_MSGKEY_BATCH][32], want[32];
            for (size_t i = 0; i < n; i++) assert_int_equal(crypto_recv_msgkey_lane(i, &in[i]), MP_OK);
            crypto_recv_msgkey_lanes(n, got);
            for (size_t i = 0; i < n; i++) {
                const crypto_recv_sign *r = &in[i];
                assert_int_equal(crypto_recv_msgkey(r->k, r->message_id, r->message_seq, r->client_msg_no, r->timestamp,
                                                    r->from_uid, r->channel_id, r->channel_type, r->payload_b64, want),
                                 MP_OK);
                assert_memory_equal(got[i], want, 32);
            }
            assert_memory_equal(got[0], RECV_MSGKEY, 32); /* lane 0 is the spec's example */
        }
    }
    md5mb_force_scalar(0);
}

static void expect_decrypt_fail(const crypto_keys *k, const char *b64, size_t n) {
    mp_buf out = MP_BUF_INIT;
    mp_buf_append(&out, "keep", 4);
    assert_int_equal(crypto_decrypt_b64(k, b64, n, &out), MP_ECRYPTO);
    assert_int_equal(out.len, 4);
    assert_memory_equal(out.data, "keep", 4);
    mp_buf_free(&out);
}

/* Encrypts exactly the given blocks (no padding added) and returns the Base64 text. */
static void raw_b64(const crypto_keys *k, const uint8_t *blocks, int n, mp_buf *out) {
    uint8_t ct[64];
    assert_true(n <= 64);
    aes_raw(k, blocks, n, ct);
    crypto_b64_encode(ct, (size_t)n, out);
}

static void test_decrypt_failures(void **state) {
    (void)state;
    crypto_keys k = example_keys();
    expect_decrypt_fail(&k, "", 0);
    expect_decrypt_fail(&k, "!!!!", 4);
    expect_decrypt_fail(&k, "+AE5c4WmG8GulT9emlNiVUnrlTxM7ocLTWoF+SztK/Q", 43); /* truncated text */
    expect_decrypt_fail(&k, "+AE5c4WmG8GulT9emlNiVUnrlTxM7ocLTWoF+SztK/Q=\n", 45);

    /* Valid Base64 whose length is not a non-zero multiple of 16. */
    uint8_t bytes[48] = {0};
    for (size_t n = 1; n <= 48; n++) {
        if (n % 16 == 0) continue;
        mp_buf b = MP_BUF_INIT;
        crypto_b64_encode(bytes, n, &b);
        expect_decrypt_fail(&k, (const char *)b.data, b.len);
        mp_buf_free(&b);
    }

    /* Bad PKCS#7 padding in an otherwise well-formed ciphertext. */
    uint8_t blk[32];
    memset(blk, 'a', sizeof(blk));
    static const struct {
        int len;
        uint8_t tail[4]; /* last four plaintext bytes */
        int ok;
    } t[] = {
        {16, {'a', 'a', 'a', 0x00}, 0}, /* zero pad length */
        {16, {'a', 'a', 'a', 0x11}, 0}, /* 17 > block size */
        {16, {'a', 'a', 'a', 0xff}, 0},
        {16, {'a', 0x03, 0x02, 0x03}, 0}, /* inconsistent bytes */
        {16, {'a', 'a', 0x03, 0x03}, 0},  /* says 3, only 2 match */
        {32, {'a', 'a', 'a', 0x00}, 0},
        {16, {'a', 'a', 0x02, 0x02}, 1}, /* valid: 14-byte plaintext */
        {16, {'a', 'a', 'a', 0x01}, 1},
        {32, {0x04, 0x04, 0x04, 0x04}, 1},
    };
    for (size_t i = 0; i < MP_ARRAY_LEN(t); i++) {
        memset(blk, 'a', sizeof(blk));
        memcpy(blk + t[i].len - 4, t[i].tail, 4);
        mp_buf b = MP_BUF_INIT;
        raw_b64(&k, blk, t[i].len, &b);
        if (!t[i].ok) {
            expect_decrypt_fail(&k, (const char *)b.data, b.len);
        } else {
            mp_buf out = MP_BUF_INIT;
            assert_int_equal(crypto_decrypt_b64(&k, (const char *)b.data, b.len, &out), MP_OK);
            assert_int_equal(out.len, (size_t)(t[i].len - t[i].tail[3]));
            assert_memory_equal(out.data, blk, out.len);
            mp_buf_free(&out);
        }
        mp_buf_free(&b);
    }
    /* A full block of 0x10 padding decodes to the empty plaintext. */
    uint8_t full[16];
    memset(full, 0x10, 16);
    mp_buf b = MP_BUF_INIT, out = MP_BUF_INIT;
    raw_b64(&k, full, 16, &b);
    assert_int_equal(crypto_decrypt_b64(&k, (const char *)b.data, b.len, &out), MP_OK);
    assert_int_equal(out.len, 0);
    /* The wrong key almost surely breaks the padding; it must never crash or over-read. */
    crypto_keys other = k;
    other.aes_key[0] ^= 1;
    mp_buf_reset(&out);
    int rc = crypto_decrypt_b64(&other, PAYLOAD_B64, strlen(PAYLOAD_B64), &out);
    assert_true(rc == MP_ECRYPTO || (rc == MP_OK && out.len < 32));
    mp_buf_free(&b);
    mp_buf_free(&out);
}

/* ---- key pairs, salt, handshake ------------------------------------------------- */

/* The spec's vectors once more with OpenSSL doing the AES (the path of CPUs without
 * AES-NI). */
static void test_example_vectors_openssl_path(void **state) {
    crypto_force_openssl(1);
    test_example_encrypt_decrypt(state);
    test_example_send_msgkey(state);
    test_example_recv_msgkey(state);
    test_msgkey_matches_definition(state);
    test_encrypt_decrypt_round_trip(state);
    test_decrypt_failures(state);
    crypto_force_openssl(0);
}

static void test_keypair(void **state) {
    (void)state;
    uint8_t p1[32], q1[32], p2[32], q2[32], chk[32];
    assert_int_equal(crypto_x25519_keypair(p1, q1), MP_OK);
    assert_int_equal(crypto_x25519_keypair(p2, q2), MP_OK);
    assert_memory_not_equal(p1, p2, 32);
    assert_memory_not_equal(q1, q2, 32);
    assert_int_equal(crypto_x25519_public(p1, chk), MP_OK);
    assert_memory_equal(chk, q1, 32);
    uint8_t s1[32], s2[32];
    assert_int_equal(crypto_x25519_shared(p1, q2, s1), MP_OK);
    assert_int_equal(crypto_x25519_shared(p2, q1, s2), MP_OK);
    assert_memory_equal(s1, s2, 32);
    /* Low-order peer points give an all-zero secret and are refused. */
    uint8_t zero[32] = {0}, one[32] = {1};
    assert_int_equal(crypto_x25519_shared(p1, zero, s1), MP_ECRYPTO);
    assert_int_equal(crypto_x25519_shared(p1, one, s1), MP_ECRYPTO);
}

static int is_alnum_ascii(uint8_t c) {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static void test_random_salt(void **state) {
    (void)state;
    int seen[256] = {0};
    uint8_t prev[16] = {0};
    for (int i = 0; i < 1000; i++) {
        uint8_t salt[17];
        salt[16] = 0xAA; /* exactly 16 bytes written */
        crypto_random_salt(salt);
        assert_int_equal(salt[16], 0xAA);
        for (int j = 0; j < 16; j++) {
            if (!is_alnum_ascii(salt[j])) fail_msg("salt byte 0x%02x not in [0-9a-zA-Z]", salt[j]);
            seen[salt[j]]++;
        }
        assert_memory_not_equal(salt, prev, 16);
        memcpy(prev, salt, 16);
    }
    int distinct = 0;
    for (int c = 0; c < 256; c++) distinct += seen[c] > 0;
    assert_int_equal(distinct, 62); /* 16000 draws: missing one of 62 is ~1e-110 */
}

/* The client side of §7, done independently of crypto_server_handshake. */
static void client_derive(const uint8_t cpriv[32], const char *server_pub_b64, uint8_t aes[16]) {
    mp_buf pub = MP_BUF_INIT;
    assert_int_equal(crypto_b64_decode(server_pub_b64, strlen(server_pub_b64), &pub), MP_OK);
    assert_int_equal(pub.len, 32);
    uint8_t shared[32];
    assert_int_equal(crypto_x25519_shared(cpriv, pub.data, shared), MP_OK);
    crypto_derive_aes_key(shared, aes);
    mp_buf_free(&pub);
}

static void check_handshake_keys(const crypto_keys *keys, const char *server_pub_b64) {
    assert_int_equal(strlen(server_pub_b64), 44);
    assert_int_equal(server_pub_b64[43], '=');
    for (int i = 0; i < 16; i++) {
        assert_true(isxdigit(keys->aes_key[i]) && !isupper(keys->aes_key[i]));
        assert_true(is_alnum_ascii(keys->iv[i]));
    }
}

static void test_server_handshake(void **state) {
    (void)state;
    /* The SDK-style client from the worked example. */
    uint8_t cpriv[32];
    memcpy(cpriv, CLIENT_SEED, 32);
    crypto_keys keys;
    char spub[45];
    memset(spub, 'X', sizeof(spub));
    assert_int_equal(crypto_server_handshake(CLIENT_KEY_B64, strlen(CLIENT_KEY_B64), &keys, spub), MP_OK);
    assert_int_equal(spub[44], '\0');
    check_handshake_keys(&keys, spub);
    uint8_t aes[16];
    client_derive(cpriv, spub, aes);
    assert_memory_equal(aes, keys.aes_key, 16);

    /* Both directions then agree on payloads and msgKeys. */
    crypto_keys client = keys; /* the client learns iv from CONNACK.salt */
    memcpy(client.aes_key, aes, 16);
    mp_buf enc = MP_BUF_INIT, dec = MP_BUF_INIT;
    assert_int_equal(crypto_encrypt_b64(&client, (const uint8_t *)PLAINTEXT, strlen(PLAINTEXT), &enc), MP_OK);
    assert_int_equal(crypto_decrypt_b64(&keys, (const char *)enc.data, enc.len, &dec), MP_OK);
    assert_int_equal(dec.len, strlen(PLAINTEXT));
    mp_buf_free(&enc);
    mp_buf_free(&dec);

    /* A second handshake with the same client key gets a fresh server key and salt. */
    crypto_keys keys2;
    char spub2[45];
    assert_int_equal(crypto_server_handshake(CLIENT_KEY_B64, strlen(CLIENT_KEY_B64), &keys2, spub2), MP_OK);
    assert_string_not_equal(spub, spub2);
    assert_memory_not_equal(keys.iv, keys2.iv, 16);

    /* A random client key pair. */
    for (int i = 0; i < 20; i++) {
        uint8_t p[32], q[32];
        assert_int_equal(crypto_x25519_keypair(p, q), MP_OK);
        mp_buf ck = MP_BUF_INIT;
        crypto_b64_encode(q, 32, &ck);
        assert_int_equal(crypto_server_handshake((const char *)ck.data, ck.len, &keys, spub), MP_OK);
        check_handshake_keys(&keys, spub);
        client_derive(p, spub, aes);
        assert_memory_equal(aes, keys.aes_key, 16);
        mp_buf_free(&ck);
    }
}

static void test_server_handshake_client_key_forms(void **state) {
    (void)state;
    crypto_keys keys;
    char spub[45];
    /* More than 32 decoded bytes: the first 32 are the key (as v2.2.5 does). */
    uint8_t long_key[48];
    unhex(CLIENT_PUB_HEX, long_key, 32);
    memset(long_key + 32, 0xEE, 16);
    mp_buf ck = MP_BUF_INIT;
    crypto_b64_encode(long_key, sizeof(long_key), &ck);
    assert_int_equal(crypto_server_handshake((const char *)ck.data, ck.len, &keys, spub), MP_OK);
    uint8_t cpriv[32], aes[16];
    memcpy(cpriv, CLIENT_SEED, 32);
    client_derive(cpriv, spub, aes);
    assert_memory_equal(aes, keys.aes_key, 16);

    /* Too short, empty, or not Base64. */
    mp_buf_reset(&ck);
    crypto_b64_encode(long_key, 31, &ck);
    assert_int_equal(crypto_server_handshake((const char *)ck.data, ck.len, &keys, spub), MP_EINVAL);
    assert_int_equal(crypto_server_handshake("", 0, &keys, spub), MP_EINVAL);
    assert_int_equal(crypto_server_handshake(CLIENT_KEY_B64, 43, &keys, spub), MP_EINVAL);
    const char *bad = "hlF7wMOf6Ha3ZGy1407gPa9xzLrWdFDBapcK2MvAPn4*";
    assert_int_equal(crypto_server_handshake(bad, strlen(bad), &keys, spub), MP_EINVAL);
    /* Bad characters after the first 32 bytes are still rejected. */
    mp_buf_reset(&ck);
    crypto_b64_encode(long_key, sizeof(long_key), &ck);
    ck.data[ck.len - 2] = '-';
    assert_int_equal(crypto_server_handshake((const char *)ck.data, ck.len, &keys, spub), MP_EINVAL);
    /* A low-order client key cannot produce a session key. */
    uint8_t zero[32] = {0};
    mp_buf_reset(&ck);
    crypto_b64_encode(zero, 32, &ck);
    assert_int_equal(crypto_server_handshake((const char *)ck.data, ck.len, &keys, spub), MP_ECRYPTO);
    mp_buf_free(&ck);
}

/* ---- threads -------------------------------------------------------------------- */

static void *thread_main(void *arg) {
    int *ok = arg;
    crypto_keys k = example_keys();
    *ok = 1;
    for (int i = 0; i < 200 && *ok; i++) {
        mp_buf enc = MP_BUF_INIT, dec = MP_BUF_INIT;
        char key[32];
        *ok &= crypto_encrypt_b64(&k, (const uint8_t *)PLAINTEXT, strlen(PLAINTEXT), &enc) == MP_OK;
        *ok &= enc.len == 44 && memcmp(enc.data, PAYLOAD_B64, 44) == 0;
        *ok &= crypto_decrypt_b64(&k, (const char *)enc.data, enc.len, &dec) == MP_OK;
        *ok &= crypto_send_msgkey(&k, 1, MP_STR("cmn1"), MP_STR("u2"), 1, MP_STR(PAYLOAD_B64), key) == MP_OK;
        *ok &= memcmp(key, SEND_MSGKEY, 32) == 0;
        mp_buf_free(&enc);
        mp_buf_free(&dec);
    }
    return NULL;
}

static void test_threads(void **state) {
    (void)state;
    pthread_t th[8];
    int ok[8];
    for (int i = 0; i < 8; i++) assert_int_equal(pthread_create(&th[i], NULL, thread_main, &ok[i]), 0);
    for (int i = 0; i < 8; i++) {
        pthread_join(th[i], NULL);
        assert_true(ok[i]);
    }
}

/* Found by fuzz_crypto (UBSan): Base64 of an empty input into a fresh buffer, or a decode
 * of a short text, computed NULL + 0 (mp_buf_reserve(b, 0) left data NULL). */
static void test_b64_empty_into_fresh_buffer(void **state) {
    (void)state;
    mp_buf b = MP_BUF_INIT;
    mp_buf_reserve(&b, 0);
    assert_non_null(b.data);
    mp_buf_free(&b);
    crypto_b64_encode((const uint8_t *)"", 0, &b);
    assert_int_equal(b.len, 0);
    mp_buf_free(&b);
    assert_int_equal(crypto_b64_decode("", 0, &b), MP_OK);
    assert_int_equal(b.len, 0);
    mp_buf_free(&b);
    assert_int_equal(crypto_b64_decode("a=", 2, &b), MP_EINVAL);
    mp_buf_free(&b);
    crypto_keys k = {{0}, {0}};
    assert_int_equal(crypto_decrypt_b64(&k, "aa", 2, &b), MP_ECRYPTO);
    assert_int_equal(b.len, 0);
    mp_buf_free(&b);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_b64_rfc4648),
        cmocka_unit_test(test_b64_empty_into_fresh_buffer),
        cmocka_unit_test(test_b64_matches_openssl),
        cmocka_unit_test(test_b64_decode_rejects),
        cmocka_unit_test(test_md5_sha1),
        cmocka_unit_test(test_example_key_exchange),
        cmocka_unit_test(test_example_encrypt_decrypt),
        cmocka_unit_test(test_example_send_msgkey),
        cmocka_unit_test(test_example_recv_msgkey),
        cmocka_unit_test(test_msgkey_matches_definition),
        cmocka_unit_test(test_recv_msgkeys_batch),
        cmocka_unit_test(test_encrypt_decrypt_round_trip),
        cmocka_unit_test(test_alternating_keys),
        cmocka_unit_test(test_aesni_matches_openssl),
        cmocka_unit_test(test_msgkey_numbers_match_printf),
        cmocka_unit_test(test_example_vectors_openssl_path),
        cmocka_unit_test(test_decrypt_failures),
        cmocka_unit_test(test_keypair),
        cmocka_unit_test(test_random_salt),
        cmocka_unit_test(test_server_handshake),
        cmocka_unit_test(test_server_handshake_client_key_forms),
        cmocka_unit_test(test_threads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
