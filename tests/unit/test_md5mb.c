/* test_md5mb.c - multi-buffer MD5 against OpenSSL's EVP MD5 and the RFC 1321 vectors, on the
 * AVX2 kernel (skipped when the CPU has no AVX2) and on the forced scalar path. Every message
 * sits in its own allocation that ends exactly at the message's last byte and starts at an
 * odd address, so ASan builds catch reads past the end and the loads must be unaligned. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <cmocka.h>

#include <openssl/evp.h>

#include "common/mp.h"
#include "proto/md5mb.h"

static const size_t k_lengths[] = {0, 1, 55, 56, 63, 64, 65, 119, 120, 127, 128, 300, 350, 1000, 5000};

/* ---- helpers -------------------------------------------------------------------- */

static void ref_md5(const uint8_t *msg, size_t len, uint8_t out[16]) {
    unsigned int n = 0;
    assert_int_equal(EVP_Digest(msg, len, out, &n, EVP_md5(), NULL), 1);
    assert_int_equal(n, 16);
}

/* xorshift64: reproducible content, different for every lane and length. */
static uint64_t next_rand(uint64_t *s) {
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

/* A message of len bytes at an odd address, ending at the end of its allocation. */
typedef struct test_msg {
    uint8_t *base;
    uint8_t *p;
} test_msg;

static test_msg msg_new(size_t len, uint64_t *rng) {
    test_msg m;
    m.base = malloc(len + 1);
    assert_non_null(m.base);
    m.p = m.base + 1;
    for (size_t i = 0; i < len; i++) m.p[i] = (uint8_t)next_rand(rng);
    return m;
}

/* md5mb over msgs[0..n) must equal OpenSSL per message, and leave digests[n..8) alone. */
static void check_batch(const uint8_t *const msgs[], size_t n, size_t len) {
    uint8_t got[MD5MB_LANES][16], want[16];
    memset(got, 0xa5, sizeof got);
    md5mb(msgs, n, len, got);
    for (size_t i = 0; i < MD5MB_LANES; i++) {
        if (i < n) {
            ref_md5(msgs[i], len, want);
        } else {
            memset(want, 0xa5, 16);
        }
        if (memcmp(got[i], want, 16) != 0) {
            print_error("mismatch: len %zu, n %zu, lane %zu, scalar %d\n", len, n, i, !md5mb_accelerated());
            fail();
        }
    }
}

/* Every length of k_lengths with n = 1..8 messages of different random content. */
static void check_all_lengths(void) {
    uint64_t rng = 0x9e3779b97f4a7c15u;
    for (size_t l = 0; l < MP_ARRAY_LEN(k_lengths); l++) {
        size_t len = k_lengths[l];
        for (size_t n = 1; n <= MD5MB_LANES; n++) {
            test_msg m[MD5MB_LANES];
            const uint8_t *msgs[MD5MB_LANES];
            for (size_t i = 0; i < n; i++) {
                m[i] = msg_new(len, &rng);
                msgs[i] = m[i].p;
            }
            check_batch(msgs, n, len);
            for (size_t i = 0; i < n; i++) free(m[i].base);
        }
    }
}

static void unhex(const char *h, uint8_t out[16]) {
    assert_int_equal(strlen(h), 32);
    for (size_t i = 0; i < 16; i++) {
        unsigned v;
        assert_int_equal(sscanf(h + 2 * i, "%2x", &v), 1);
        out[i] = (uint8_t)v;
    }
}

/* RFC 1321 appendix A.5, each vector in 1..8 lanes at once. */
static void check_rfc1321(void) {
    static const char *v[][2] = {
        {"", "d41d8cd98f00b204e9800998ecf8427e"},
        {"a", "0cc175b9c0f1b6a831c399e269772661"},
        {"abc", "900150983cd24fb0d6963f7d28e17f72"},
        {"message digest", "f96b697d7cb7938d525a2f31aaf161d0"},
        {"abcdefghijklmnopqrstuvwxyz", "c3fcd3d76192e4007dfb496cca67e13b"},
        {"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789", "d174ab98d277d9f5a5611c2c9f419d9f"},
        {"12345678901234567890123456789012345678901234567890123456789012345678901234567890",
         "57edf4a22be3c955ac49da2e2107b67a"},
    };
    for (size_t t = 0; t < MP_ARRAY_LEN(v); t++) {
        uint8_t want[16], got[MD5MB_LANES][16];
        unhex(v[t][1], want);
        const uint8_t *msgs[MD5MB_LANES];
        for (size_t i = 0; i < MD5MB_LANES; i++) msgs[i] = (const uint8_t *)v[t][0];
        for (size_t n = 1; n <= MD5MB_LANES; n++) {
            memset(got, 0, sizeof got);
            md5mb(msgs, n, strlen(v[t][0]), got);
            for (size_t i = 0; i < n; i++) assert_memory_equal(got[i], want, 16);
        }
    }
}

/* ---- tests ---------------------------------------------------------------------- */

static void test_avx2_matches_openssl(void **state) {
    (void)state;
    md5mb_force_scalar(0);
    if (!md5mb_accelerated()) {
        print_message("no AVX2 on this CPU: the kernel is not tested\n");
        skip();
    }
    check_all_lengths();
}

static void test_avx2_rfc1321(void **state) {
    (void)state;
    md5mb_force_scalar(0);
    if (!md5mb_accelerated()) skip();
    check_rfc1321();
}

static void test_scalar_matches_openssl(void **state) {
    (void)state;
    md5mb_force_scalar(1);
    assert_int_equal(md5mb_accelerated(), 0);
    check_all_lengths();
    md5mb_force_scalar(0);
}

static void test_scalar_rfc1321(void **state) {
    (void)state;
    md5mb_force_scalar(1);
    check_rfc1321();
    md5mb_force_scalar(0);
}

/* Each byte position of a 3-block message matters in every lane: flipping one byte of one
 * lane changes that lane's digest only (a lane mix-up in the transpose would show here). */
static void test_lanes_independent(void **state) {
    (void)state;
    md5mb_force_scalar(0);
    enum { LEN = 150 };
    static uint8_t buf[MD5MB_LANES][LEN];
    uint64_t rng = 42;
    for (size_t i = 0; i < MD5MB_LANES; i++)
        for (size_t j = 0; j < LEN; j++) buf[i][j] = (uint8_t)next_rand(&rng);
    const uint8_t *msgs[MD5MB_LANES];
    for (size_t i = 0; i < MD5MB_LANES; i++) msgs[i] = buf[i];
    uint8_t base[MD5MB_LANES][16], got[MD5MB_LANES][16];
    md5mb(msgs, MD5MB_LANES, LEN, base);
    for (size_t lane = 0; lane < MD5MB_LANES; lane++) {
        for (size_t j = 0; j < LEN; j += 7) {
            buf[lane][j] ^= 1;
            md5mb(msgs, MD5MB_LANES, LEN, got);
            buf[lane][j] ^= 1;
            for (size_t i = 0; i < MD5MB_LANES; i++) {
                if (i == lane)
                    assert_memory_not_equal(got[i], base[i], 16);
                else
                    assert_memory_equal(got[i], base[i], 16);
            }
        }
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_avx2_matches_openssl),   cmocka_unit_test(test_avx2_rfc1321),
        cmocka_unit_test(test_scalar_matches_openssl), cmocka_unit_test(test_scalar_rfc1321),
        cmocka_unit_test(test_lanes_independent),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
