/* aesni.c - AES-128-CBC on AES-NI (see aesni.h for why). FIPS-197 key expansion with
 * AESKEYGENASSIST, the equivalent inverse cipher (AESIMC round keys) for decryption. */
#include "aesni.h"

#include <string.h>

#include "../common/mp.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))

#include <immintrin.h>

#define AESNI_TARGET __attribute__((target("aes,sse4.1")))

int aesni_available(void) {
    __builtin_cpu_init();
    return __builtin_cpu_supports("aes") && __builtin_cpu_supports("sse4.1");
}

/* One step of the key schedule: the previous round key and AESKEYGENASSIST's output. */
AESNI_TARGET static __m128i expand_step(__m128i k, __m128i assist) {
    assist = _mm_shuffle_epi32(assist, 0xff);
    k = _mm_xor_si128(k, _mm_slli_si128(k, 4));
    k = _mm_xor_si128(k, _mm_slli_si128(k, 4));
    k = _mm_xor_si128(k, _mm_slli_si128(k, 4));
    return _mm_xor_si128(k, assist);
}

/* The round constant must be an immediate, hence a macro. */
#define EXPAND(i, rcon) rk[i] = expand_step(rk[(i) - 1], _mm_aeskeygenassist_si128(rk[(i) - 1], rcon))

AESNI_TARGET void aesni_expand(const uint8_t key[16], aesni_key *k) {
    __m128i rk[11];
    rk[0] = _mm_loadu_si128((const __m128i *)key);
    EXPAND(1, 0x01);
    EXPAND(2, 0x02);
    EXPAND(3, 0x04);
    EXPAND(4, 0x08);
    EXPAND(5, 0x10);
    EXPAND(6, 0x20);
    EXPAND(7, 0x40);
    EXPAND(8, 0x80);
    EXPAND(9, 0x1b);
    EXPAND(10, 0x36);
    for (int i = 0; i < 11; i++) _mm_storeu_si128((__m128i *)k->enc[i], rk[i]);
    _mm_storeu_si128((__m128i *)k->dec[0], rk[10]);
    for (int i = 1; i < 10; i++) _mm_storeu_si128((__m128i *)k->dec[i], _mm_aesimc_si128(rk[10 - i]));
    _mm_storeu_si128((__m128i *)k->dec[10], rk[0]);
}

AESNI_TARGET static __m128i encrypt_block(const __m128i *rk, __m128i b) {
    b = _mm_xor_si128(b, rk[0]);
    for (int r = 1; r < 10; r++) b = _mm_aesenc_si128(b, rk[r]);
    return _mm_aesenclast_si128(b, rk[10]);
}

AESNI_TARGET void aesni_cbc_encrypt_pad(const aesni_key *k, const uint8_t iv[16], const uint8_t *plain, size_t len,
                                        uint8_t *ct) {
    __m128i rk[11];
    for (int i = 0; i < 11; i++) rk[i] = _mm_loadu_si128((const __m128i *)k->enc[i]);
    __m128i chain = _mm_loadu_si128((const __m128i *)iv);
    size_t full = len / 16;
    for (size_t i = 0; i < full; i++) {
        __m128i b = _mm_loadu_si128((const __m128i *)(plain + 16 * i));
        chain = encrypt_block(rk, _mm_xor_si128(b, chain));
        _mm_storeu_si128((__m128i *)(ct + 16 * i), chain);
    }
    uint8_t last[16];
    size_t rest = len - full * 16;
    memcpy(last, plain + full * 16, rest);
    memset(last + rest, (int)(16 - rest), 16 - rest); /* PKCS#7: 1..16 bytes of the pad length */
    chain = encrypt_block(rk, _mm_xor_si128(_mm_loadu_si128((const __m128i *)last), chain));
    _mm_storeu_si128((__m128i *)(ct + 16 * full), chain);
}

AESNI_TARGET void aesni_cbc_decrypt(const aesni_key *k, const uint8_t iv[16], const uint8_t *in, size_t nblocks,
                                    uint8_t *out) {
    __m128i rk[11];
    for (int i = 0; i < 11; i++) rk[i] = _mm_loadu_si128((const __m128i *)k->dec[i]);
    __m128i prev = _mm_loadu_si128((const __m128i *)iv);
    for (size_t i = 0; i < nblocks; i++) {
        __m128i c = _mm_loadu_si128((const __m128i *)(in + 16 * i)); /* read before out overwrites it */
        __m128i b = _mm_xor_si128(c, rk[0]);
        for (int r = 1; r < 10; r++) b = _mm_aesdec_si128(b, rk[r]);
        b = _mm_aesdeclast_si128(b, rk[10]);
        _mm_storeu_si128((__m128i *)(out + 16 * i), _mm_xor_si128(b, prev));
        prev = c;
    }
}

#else /* no AES-NI on this architecture: crypto.c always takes the OpenSSL path */

int aesni_available(void) { return 0; }

void aesni_expand(const uint8_t key[16], aesni_key *k) {
    (void)key;
    (void)k;
    MP_ASSERT(!"aesni_expand without AES-NI");
}

void aesni_cbc_encrypt_pad(const aesni_key *k, const uint8_t iv[16], const uint8_t *plain, size_t len, uint8_t *ct) {
    (void)k, (void)iv, (void)plain, (void)len, (void)ct;
    MP_ASSERT(!"aesni_cbc_encrypt_pad without AES-NI");
}

void aesni_cbc_decrypt(const aesni_key *k, const uint8_t iv[16], const uint8_t *in, size_t nblocks, uint8_t *out) {
    (void)k, (void)iv, (void)in, (void)nblocks, (void)out;
    MP_ASSERT(!"aesni_cbc_decrypt without AES-NI");
}

#endif
