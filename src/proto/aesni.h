/* aesni.h - AES-128-CBC with PKCS#7 on the CPU's AES instructions (x86-64 AES-NI).
 *
 * Why not OpenSSL's EVP here: every RECV is encrypted twice (payload and msgKey) with the
 * connection's fixed key and IV, on a few hundred bytes. OpenSSL 3 spends more time
 * re-initialising its cipher context (parameter lookups by name) than encrypting, and the
 * resets are unavoidable because the IV is reused for every message (spec §7). This is the
 * block cipher instruction itself plus the CBC chaining; the result is checked against
 * OpenSSL in tests/unit/test_proto_crypto.c. crypto.c uses it when aesni_available() and
 * OpenSSL otherwise. Constant time: no table lookups, no data-dependent branches. */
#ifndef MP_PROTO_AESNI_H
#define MP_PROTO_AESNI_H

#include <stddef.h>
#include <stdint.h>

/* Round keys of one AES-128 key, for encryption and for decryption. */
typedef struct aesni_key {
    uint8_t enc[11][16];
    uint8_t dec[11][16];
} aesni_key;

/* 1 if this CPU has the AES and SSE4.1 instructions (asks the CPU: call once). */
int aesni_available(void);
/* Expand key into both schedules. Only call when aesni_available(). */
void aesni_expand(const uint8_t key[16], aesni_key *k);
/* ct = CBC(plain ‖ PKCS#7 padding); writes (len / 16 + 1) * 16 bytes. */
void aesni_cbc_encrypt_pad(const aesni_key *k, const uint8_t iv[16], const uint8_t *plain, size_t len, uint8_t *ct);
/* CBC-decrypt nblocks blocks (padding is left to the caller); in == out is allowed. */
void aesni_cbc_decrypt(const aesni_key *k, const uint8_t iv[16], const uint8_t *in, size_t nblocks, uint8_t *out);

#endif
