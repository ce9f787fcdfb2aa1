/* md5mb.c - multi-buffer MD5 on AVX2 (see md5mb.h for why).
 *
 * Lane i of every __m256i belongs to message i. The state a,b,c,d is four vectors; each
 * 64-byte block is loaded as 8 rows (one per message) and transposed so that vector j holds
 * word j of all 8 messages, then the 64 RFC 1321 steps run unchanged on the vectors.
 * Because all messages have the same length, they all have the same number of blocks and
 * the same padding layout: the full blocks are read in place, the last 1-2 padded blocks
 * are built per message on the stack. Missing lanes (n < 8) repeat message 0. */
#include "md5mb.h"

#include <stdatomic.h>
#include <string.h>

/* MD5() is deprecated in OpenSSL 3 in favour of EVP, but EVP_Digest allocates a context
 * on every call; the one-shot MD5() works on an MD5_CTX on the stack. */
#define OPENSSL_SUPPRESS_DEPRECATED
#include <openssl/md5.h>

#include "../common/mp.h"

/* Set by tests to compare both paths on the same machine. */
static atomic_int g_force_scalar;

void md5mb_force_scalar(int on) { atomic_store(&g_force_scalar, on ? 1 : 0); }

static void md5mb_scalar(const uint8_t *const msgs[], size_t n, size_t len, uint8_t digests[][16]) {
    for (size_t i = 0; i < n; i++) MD5(msgs[i], len, digests[i]);
}

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))

#include <immintrin.h>

#define MD5MB_TARGET __attribute__((target("avx2")))
/* The step helpers must end up inside the block loop for the state to stay in registers. */
#define MD5MB_INLINE MD5MB_TARGET static inline __attribute__((always_inline))

/* -1 = CPU not asked yet. The answer never changes, so racing first callers store the same
 * value and a relaxed atomic is enough. */
static atomic_int g_cpu_avx2 = -1;

static int cpu_avx2(void) {
    int v = atomic_load_explicit(&g_cpu_avx2, memory_order_relaxed);
    if (v < 0) {
        __builtin_cpu_init();
        v = __builtin_cpu_supports("avx2") ? 1 : 0;
        atomic_store_explicit(&g_cpu_avx2, v, memory_order_relaxed);
    }
    return v;
}

int md5mb_accelerated(void) { return cpu_avx2() && !atomic_load_explicit(&g_force_scalar, memory_order_relaxed); }

/* ---- the 64 steps on 8 lanes ------------------------------------------------------- */

#define ADD(x, y) _mm256_add_epi32(x, y)
#define XOR(x, y) _mm256_xor_si256(x, y)
/* AVX2 has no 32-bit rotate (that is AVX-512): two shifts and an or. s is a literal. */
#define ROTL(x, s) _mm256_or_si256(_mm256_slli_epi32(x, s), _mm256_srli_epi32(x, 32 - (s)))

/* The rounds are bound by latency, not throughput: step i+1 needs the b that step i just
 * made. So the functions are written to be short from b (at most 2 operations: F's xor/and
 * form, G's andnot/or form, H with c^d first, I), and the step adds a + w[k] + T[i] while
 * f is still being computed. */
#define F(b, c, d) XOR(d, _mm256_and_si256(b, XOR(c, d)))
#define G(b, c, d) _mm256_or_si256(_mm256_and_si256(b, d), _mm256_andnot_si256(d, c))
#define H(b, c, d) XOR(b, XOR(c, d))
#define I(b, c, d) XOR(c, _mm256_or_si256(b, XOR(d, ones))) /* needs `ones` (all bits set) in scope */

/* a = b + ((a + w[k] + t + f(b,c,d)) <<< s) */
#define STEP(f, a, b, c, d, k, t, s) \
    a = ADD(b, ROTL(ADD(ADD(a, ADD(w[k], _mm256_set1_epi32((int)(t)))), f(b, c, d)), s))

MD5MB_INLINE void round1(__m256i *pa, __m256i *pb, __m256i *pc, __m256i *pd, const __m256i w[16]) {
    __m256i a = *pa, b = *pb, c = *pc, d = *pd;
    STEP(F, a, b, c, d, 0, 0xd76aa478, 7);
    STEP(F, d, a, b, c, 1, 0xe8c7b756, 12);
    STEP(F, c, d, a, b, 2, 0x242070db, 17);
    STEP(F, b, c, d, a, 3, 0xc1bdceee, 22);
    STEP(F, a, b, c, d, 4, 0xf57c0faf, 7);
    STEP(F, d, a, b, c, 5, 0x4787c62a, 12);
    STEP(F, c, d, a, b, 6, 0xa8304613, 17);
    STEP(F, b, c, d, a, 7, 0xfd469501, 22);
    STEP(F, a, b, c, d, 8, 0x698098d8, 7);
    STEP(F, d, a, b, c, 9, 0x8b44f7af, 12);
    STEP(F, c, d, a, b, 10, 0xffff5bb1, 17);
    STEP(F, b, c, d, a, 11, 0x895cd7be, 22);
    STEP(F, a, b, c, d, 12, 0x6b901122, 7);
    STEP(F, d, a, b, c, 13, 0xfd987193, 12);
    STEP(F, c, d, a, b, 14, 0xa679438e, 17);
    STEP(F, b, c, d, a, 15, 0x49b40821, 22);
    *pa = a, *pb = b, *pc = c, *pd = d;
}

MD5MB_INLINE void round2(__m256i *pa, __m256i *pb, __m256i *pc, __m256i *pd, const __m256i w[16]) {
    __m256i a = *pa, b = *pb, c = *pc, d = *pd;
    STEP(G, a, b, c, d, 1, 0xf61e2562, 5);
    STEP(G, d, a, b, c, 6, 0xc040b340, 9);
    STEP(G, c, d, a, b, 11, 0x265e5a51, 14);
    STEP(G, b, c, d, a, 0, 0xe9b6c7aa, 20);
    STEP(G, a, b, c, d, 5, 0xd62f105d, 5);
    STEP(G, d, a, b, c, 10, 0x02441453, 9);
    STEP(G, c, d, a, b, 15, 0xd8a1e681, 14);
    STEP(G, b, c, d, a, 4, 0xe7d3fbc8, 20);
    STEP(G, a, b, c, d, 9, 0x21e1cde6, 5);
    STEP(G, d, a, b, c, 14, 0xc33707d6, 9);
    STEP(G, c, d, a, b, 3, 0xf4d50d87, 14);
    STEP(G, b, c, d, a, 8, 0x455a14ed, 20);
    STEP(G, a, b, c, d, 13, 0xa9e3e905, 5);
    STEP(G, d, a, b, c, 2, 0xfcefa3f8, 9);
    STEP(G, c, d, a, b, 7, 0x676f02d9, 14);
    STEP(G, b, c, d, a, 12, 0x8d2a4c8a, 20);
    *pa = a, *pb = b, *pc = c, *pd = d;
}

MD5MB_INLINE void round3(__m256i *pa, __m256i *pb, __m256i *pc, __m256i *pd, const __m256i w[16]) {
    __m256i a = *pa, b = *pb, c = *pc, d = *pd;
    STEP(H, a, b, c, d, 5, 0xfffa3942, 4);
    STEP(H, d, a, b, c, 8, 0x8771f681, 11);
    STEP(H, c, d, a, b, 11, 0x6d9d6122, 16);
    STEP(H, b, c, d, a, 14, 0xfde5380c, 23);
    STEP(H, a, b, c, d, 1, 0xa4beea44, 4);
    STEP(H, d, a, b, c, 4, 0x4bdecfa9, 11);
    STEP(H, c, d, a, b, 7, 0xf6bb4b60, 16);
    STEP(H, b, c, d, a, 10, 0xbebfbc70, 23);
    STEP(H, a, b, c, d, 13, 0x289b7ec6, 4);
    STEP(H, d, a, b, c, 0, 0xeaa127fa, 11);
    STEP(H, c, d, a, b, 3, 0xd4ef3085, 16);
    STEP(H, b, c, d, a, 6, 0x04881d05, 23);
    STEP(H, a, b, c, d, 9, 0xd9d4d039, 4);
    STEP(H, d, a, b, c, 12, 0xe6db99e5, 11);
    STEP(H, c, d, a, b, 15, 0x1fa27cf8, 16);
    STEP(H, b, c, d, a, 2, 0xc4ac5665, 23);
    *pa = a, *pb = b, *pc = c, *pd = d;
}

MD5MB_INLINE void round4(__m256i *pa, __m256i *pb, __m256i *pc, __m256i *pd, const __m256i w[16]) {
    const __m256i ones = _mm256_set1_epi32(-1);
    __m256i a = *pa, b = *pb, c = *pc, d = *pd;
    STEP(I, a, b, c, d, 0, 0xf4292244, 6);
    STEP(I, d, a, b, c, 7, 0x432aff97, 10);
    STEP(I, c, d, a, b, 14, 0xab9423a7, 15);
    STEP(I, b, c, d, a, 5, 0xfc93a039, 21);
    STEP(I, a, b, c, d, 12, 0x655b59c3, 6);
    STEP(I, d, a, b, c, 3, 0x8f0ccc92, 10);
    STEP(I, c, d, a, b, 10, 0xffeff47d, 15);
    STEP(I, b, c, d, a, 1, 0x85845dd1, 21);
    STEP(I, a, b, c, d, 8, 0x6fa87e4f, 6);
    STEP(I, d, a, b, c, 15, 0xfe2ce6e0, 10);
    STEP(I, c, d, a, b, 6, 0xa3014314, 15);
    STEP(I, b, c, d, a, 13, 0x4e0811a1, 21);
    STEP(I, a, b, c, d, 4, 0xf7537e82, 6);
    STEP(I, d, a, b, c, 11, 0xbd3af235, 10);
    STEP(I, c, d, a, b, 2, 0x2ad7d2bb, 15);
    STEP(I, b, c, d, a, 9, 0xeb86d391, 21);
    *pa = a, *pb = b, *pc = c, *pd = d;
}

/* ---- loading a block of every lane ------------------------------------------------ */

/* out[j] = word j of rows r[0..7]: an 8x8 transpose of 32-bit words. The unpacks only work
 * within 128-bit halves: they gather word j (low half) and word j+4 (high half) of rows 0-3
 * and of rows 4-7, and the final permutes join the matching halves of the two groups. */
MD5MB_INLINE void transpose8(const __m256i r[8], __m256i out[8]) {
    /* Named temporaries, not arrays: gcc keeps arrays on the stack here (clang does not). */
    __m256i t0 = _mm256_unpacklo_epi32(r[0], r[1]); /* r0[0] r1[0] r0[1] r1[1] | r0[4] .. */
    __m256i t1 = _mm256_unpackhi_epi32(r[0], r[1]); /* r0[2] r1[2] r0[3] r1[3] | r0[6] .. */
    __m256i t2 = _mm256_unpacklo_epi32(r[2], r[3]);
    __m256i t3 = _mm256_unpackhi_epi32(r[2], r[3]);
    __m256i t4 = _mm256_unpacklo_epi32(r[4], r[5]);
    __m256i t5 = _mm256_unpackhi_epi32(r[4], r[5]);
    __m256i t6 = _mm256_unpacklo_epi32(r[6], r[7]);
    __m256i t7 = _mm256_unpackhi_epi32(r[6], r[7]);
    __m256i u0 = _mm256_unpacklo_epi64(t0, t2); /* word 0 of rows 0-3 | word 4 */
    __m256i u1 = _mm256_unpackhi_epi64(t0, t2); /* word 1 | word 5 */
    __m256i u2 = _mm256_unpacklo_epi64(t1, t3); /* word 2 | word 6 */
    __m256i u3 = _mm256_unpackhi_epi64(t1, t3); /* word 3 | word 7 */
    __m256i u4 = _mm256_unpacklo_epi64(t4, t6); /* the same for rows 4-7 */
    __m256i u5 = _mm256_unpackhi_epi64(t4, t6);
    __m256i u6 = _mm256_unpacklo_epi64(t5, t7);
    __m256i u7 = _mm256_unpackhi_epi64(t5, t7);
    out[0] = _mm256_permute2x128_si256(u0, u4, 0x20); /* low halves: words 0-3 */
    out[1] = _mm256_permute2x128_si256(u1, u5, 0x20);
    out[2] = _mm256_permute2x128_si256(u2, u6, 0x20);
    out[3] = _mm256_permute2x128_si256(u3, u7, 0x20);
    out[4] = _mm256_permute2x128_si256(u0, u4, 0x31); /* high halves: words 4-7 */
    out[5] = _mm256_permute2x128_si256(u1, u5, 0x31);
    out[6] = _mm256_permute2x128_si256(u2, u6, 0x31);
    out[7] = _mm256_permute2x128_si256(u3, u7, 0x31);
}

/* w[j] = little-endian word j of the 64 bytes at p[i] + off, in lane i (x86 is little-endian,
 * so a plain load gives MD5's word order). */
MD5MB_INLINE void load_block(__m256i w[16], const uint8_t *const p[MD5MB_LANES], size_t off) {
    __m256i lo[8], hi[8];
    for (int i = 0; i < 8; i++) {
        lo[i] = _mm256_loadu_si256((const __m256i *)(p[i] + off));
        hi[i] = _mm256_loadu_si256((const __m256i *)(p[i] + off + 32));
    }
    transpose8(lo, w);
    transpose8(hi, w + 8);
}

/* Run nblocks consecutive 64-byte blocks of each lane's p[i] through the state s. */
MD5MB_TARGET static void compress(__m256i s[4], const uint8_t *const p[MD5MB_LANES], size_t nblocks) {
    __m256i a = s[0], b = s[1], c = s[2], d = s[3];
    for (size_t blk = 0; blk < nblocks; blk++) {
        __m256i w[16];
        load_block(w, p, 64 * blk);
        __m256i aa = a, bb = b, cc = c, dd = d;
        round1(&a, &b, &c, &d, w);
        round2(&a, &b, &c, &d, w);
        round3(&a, &b, &c, &d, w);
        round4(&a, &b, &c, &d, w);
        a = ADD(a, aa), b = ADD(b, bb), c = ADD(c, cc), d = ADD(d, dd);
    }
    s[0] = a, s[1] = b, s[2] = c, s[3] = d;
}

/* ---- padding and output ------------------------------------------------------------ */

/* The last 1 or 2 blocks of a message: the bytes after its last full block, 0x80, zeros, and
 * the length in bits (little-endian) in the last 8 bytes. Returns the number of blocks:
 * 2 when the remainder leaves no room for 0x80 plus the length (56..63 bytes). */
static size_t build_tail(uint8_t tail[128], const uint8_t *msg, size_t len) {
    size_t rem = len % 64, nb = rem < 56 ? 1 : 2;
    memset(tail, 0, 64 * nb);
    if (rem) memcpy(tail, msg + (len - rem), rem); /* msg may be NULL when len == 0 */
    tail[rem] = 0x80;
    uint64_t bits = (uint64_t)len * 8; /* MD5 keeps the length modulo 2^64 */
    for (int i = 0; i < 8; i++) tail[64 * nb - 8 + i] = (uint8_t)(bits >> (8 * i));
    return nb;
}

/* Digest i = a,b,c,d of lane i, each word little-endian (= its in-memory form on x86). */
MD5MB_TARGET static void store_digests(const __m256i s[4], size_t n, uint8_t digests[][16]) {
    uint32_t v[4][MD5MB_LANES];
    for (int k = 0; k < 4; k++) _mm256_storeu_si256((__m256i *)v[k], s[k]);
    for (size_t i = 0; i < n; i++)
        for (int k = 0; k < 4; k++) memcpy(digests[i] + 4 * k, &v[k][i], 4);
}

MD5MB_TARGET static void md5mb_avx2(const uint8_t *const msgs[], size_t n, size_t len, uint8_t digests[][16]) {
    const uint8_t *body[MD5MB_LANES], *tails[MD5MB_LANES];
    uint8_t tail[MD5MB_LANES][128];
    size_t ntail = 0;
    for (size_t i = 0; i < n; i++) ntail = build_tail(tail[i], msgs[i], len); /* same for all */
    for (size_t i = 0; i < MD5MB_LANES; i++) {
        body[i] = msgs[i < n ? i : 0]; /* unused lanes hash message 0 again; ignored */
        tails[i] = tail[i < n ? i : 0];
    }
    __m256i s[4] = {_mm256_set1_epi32(0x67452301), _mm256_set1_epi32((int)0xefcdab89),
                    _mm256_set1_epi32((int)0x98badcfe), _mm256_set1_epi32(0x10325476)};
    compress(s, body, len / 64);
    compress(s, tails, ntail);
    store_digests(s, n, digests);
}

/* A pass of the kernel costs the same for 1 or 8 lanes, about two scalar MD5s (measured
 * on 350-byte texts: 990 ns a pass, 515 ns an MD5): fewer messages go one by one. */
#define MD5MB_MIN_LANES 3

void md5mb(const uint8_t *const msgs[], size_t n, size_t len, uint8_t digests[][16]) {
    MP_ASSERT(n >= 1 && n <= MD5MB_LANES);
    if (n >= MD5MB_MIN_LANES && md5mb_accelerated())
        md5mb_avx2(msgs, n, len, digests);
    else
        md5mb_scalar(msgs, n, len, digests);
}

#else /* no AVX2 on this architecture: always one OpenSSL MD5 per message */

int md5mb_accelerated(void) { return 0; }

void md5mb(const uint8_t *const msgs[], size_t n, size_t len, uint8_t digests[][16]) {
    MP_ASSERT(n >= 1 && n <= MD5MB_LANES);
    md5mb_scalar(msgs, n, len, digests);
}

#endif
