/* fuzz_crypto.c - the decrypt path for untrusted input (src/proto/crypto.h): the Base64
 * decoder, AES-128-CBC decryption with the PKCS#7 check of a client's SEND payload, the
 * client key of the CONNECT handshake, and the msgKey over client-chosen bytes.
 *
 * Invariants:
 *   - Base64: decode(encode(x)) == x for any bytes; an accepted text decodes to bytes whose
 *     encoding decodes to the same bytes; a rejected text leaves the output length alone;
 *   - decrypt: a rejected text leaves the output length alone; an accepted one yields a
 *     plaintext that encrypts back to the very same ciphertext (CBC with fixed key and IV
 *     is deterministic and the padding was valid); encrypt-then-decrypt of the raw input
 *     gives it back;
 *   - handshake: accepted only for Base64 of at least 32 bytes, answering a 44-char key;
 *   - msgKey: always 32 lowercase hex characters. */
#include <string.h>

#include "common/buf.h"
#include "fuzz_util.h"
#include "proto/crypto.h"

static const crypto_keys keys = {{'0', '1', '2', '3', '4', '5', '6', '7', '8', '9', 'a', 'b', 'c', 'd', 'e', 'f'},
                                 {'s', 'a', 'l', 't', 's', 'a', 'l', 't', 's', 'a', 'l', 't', 's', 'a', 'l', 't'}};

static int bytes_eq(const mp_buf *a, const mp_buf *b) {
    return a->len == b->len && (a->len == 0 || memcmp(a->data, b->data, a->len) == 0);
}

static void check_b64(const uint8_t *data, size_t size) {
    mp_buf enc = MP_BUF_INIT, dec = MP_BUF_INIT, enc2 = MP_BUF_INIT, dec2 = MP_BUF_INIT;
    crypto_b64_encode(data, size, &enc);
    FUZZ_CHECK(enc.len == (size + 2) / 3 * 4);
    FUZZ_CHECK(crypto_b64_decode((const char *)enc.data, enc.len, &dec) == MP_OK);
    FUZZ_CHECK(dec.len == size && (size == 0 || memcmp(dec.data, data, size) == 0));

    mp_buf_reset(&dec);
    mp_buf_append(&dec, "x", 1); /* decode appends: the prefix must survive */
    int rc = crypto_b64_decode((const char *)data, size, &dec);
    FUZZ_CHECK(rc == MP_OK || rc == MP_EINVAL);
    FUZZ_CHECK(dec.data[0] == 'x');
    if (rc != MP_OK) {
        FUZZ_CHECK(dec.len == 1);
    } else {
        FUZZ_CHECK(dec.len - 1 <= size / 4 * 3);
        crypto_b64_encode(dec.data + 1, dec.len - 1, &enc2);
        FUZZ_CHECK(enc2.len == size);
        mp_buf_append(&dec2, "x", 1);
        FUZZ_CHECK(crypto_b64_decode((const char *)enc2.data, enc2.len, &dec2) == MP_OK);
        FUZZ_CHECK(bytes_eq(&dec, &dec2));
    }
    mp_buf_free(&enc);
    mp_buf_free(&dec);
    mp_buf_free(&enc2);
    mp_buf_free(&dec2);
}

static void check_decrypt(const uint8_t *data, size_t size) {
    mp_buf plain = MP_BUF_INIT, ct = MP_BUF_INIT, ct2 = MP_BUF_INIT, re = MP_BUF_INIT;
    mp_buf_append(&plain, "p", 1);
    int rc = crypto_decrypt_b64(&keys, (const char *)data, size, &plain);
    FUZZ_CHECK(rc == MP_OK || rc == MP_ECRYPTO);
    FUZZ_CHECK(plain.data[0] == 'p');
    if (rc != MP_OK) {
        FUZZ_CHECK(plain.len == 1);
    } else {
        FUZZ_CHECK(crypto_b64_decode((const char *)data, size, &ct) == MP_OK);
        FUZZ_CHECK(ct.len % 16 == 0 && plain.len - 1 < ct.len && plain.len - 1 + 16 >= ct.len);
        FUZZ_CHECK(crypto_encrypt_b64(&keys, plain.data + 1, plain.len - 1, &re) == MP_OK);
        FUZZ_CHECK(crypto_b64_decode((const char *)re.data, re.len, &ct2) == MP_OK);
        FUZZ_CHECK(bytes_eq(&ct, &ct2));
    }
    mp_buf_reset(&re);
    mp_buf_reset(&plain);
    FUZZ_CHECK(crypto_encrypt_b64(&keys, data, size, &re) == MP_OK);
    FUZZ_CHECK(crypto_decrypt_b64(&keys, (const char *)re.data, re.len, &plain) == MP_OK);
    FUZZ_CHECK(plain.len == size && (size == 0 || memcmp(plain.data, data, size) == 0));
    mp_buf_free(&plain);
    mp_buf_free(&ct);
    mp_buf_free(&ct2);
    mp_buf_free(&re);
}

static void check_handshake(const uint8_t *data, size_t size) {
    crypto_keys k;
    char pub[45];
    int rc = crypto_server_handshake((const char *)data, size, &k, pub);
    FUZZ_CHECK(rc == MP_OK || rc == MP_EINVAL || rc == MP_ECRYPTO);
    if (rc != MP_OK) return;
    mp_buf dec = MP_BUF_INIT;
    FUZZ_CHECK(crypto_b64_decode((const char *)data, size, &dec) == MP_OK && dec.len >= 32);
    FUZZ_CHECK(strlen(pub) == 44);
    mp_buf_free(&dec);
}

static void check_msgkey(const uint8_t *data, size_t size) {
    char out[32];
    if (crypto_msgkey(&keys, data, size, out) != MP_OK) return;
    for (int i = 0; i < 32; i++) FUZZ_CHECK((out[i] >= '0' && out[i] <= '9') || (out[i] >= 'a' && out[i] <= 'f'));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    check_b64(data, size);
    check_decrypt(data, size);
    check_handshake(data, size);
    check_msgkey(data, size);
    return 0;
}
