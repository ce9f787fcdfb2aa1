/* md5mb.h - multi-buffer MD5: the digests of up to 8 messages of equal length at once.
 *
 * Why: a fan-out delivers one message to many connections, and every delivery needs a
 * msgKey, i.e. an MD5 over a text of the same length for every connection. MD5 is a
 * chain of dependent 32-bit operations that leaves most of a core idle on one message;
 * with AVX2 one instruction advances the same step for 8 messages (one per 32-bit lane).
 * The result is checked against OpenSSL in tests/unit/test_md5mb.c. */
#ifndef MP_PROTO_MD5MB_H
#define MP_PROTO_MD5MB_H

#include <stddef.h>
#include <stdint.h>

#define MD5MB_LANES 8

/* digests[i] = MD5(msgs[i][0 .. len)) for i < n, 1 <= n <= MD5MB_LANES; all n messages have
 * the same length len. Uses the AVX2 kernel when the CPU has AVX2 (and md5mb_force_scalar(0)),
 * else one OpenSSL MD5 per message. Thread-safe, no allocation. */
void md5mb(const uint8_t *const msgs[], size_t n, size_t len, uint8_t digests[][16]);
/* 1 when md5mb uses the AVX2 kernel on this CPU (0 while md5mb_force_scalar(1) is in effect). */
int md5mb_accelerated(void);
/* Tests: 1 = always use the scalar path (OpenSSL), 0 = auto. */
void md5mb_force_scalar(int on);

#endif
