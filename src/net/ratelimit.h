/* ratelimit.h - token buckets: one per connection for SENDs (session.c) and one per
 * source IP for new connections (conn.c), the latter in a fixed-size table shared by the
 * workers, so a flood of distinct addresses cannot grow memory.
 *
 * Tokens are counted in thousandths, time in loop milliseconds (uv_now): refilling is
 * integer arithmetic with no system call. */
#ifndef MP_NET_RATELIMIT_H
#define MP_NET_RATELIMIT_H

#include <stddef.h>
#include <stdint.h>

typedef struct rl_bucket {
    uint64_t last_ms;     /* when tokens was last brought up to date */
    uint32_t milli;       /* tokens * 1000 */
} rl_bucket;

/* A full bucket at now_ms. */
void rl_bucket_fill(rl_bucket *b, uint64_t now_ms, uint32_t burst);
/* Take one token, refilling at rate per second up to burst; 1 if taken, 0 if over. */
int rl_take(rl_bucket *b, uint64_t now_ms, uint32_t rate, uint32_t burst);

/* Per-IP connection rate (connRateLimit / connRateBurst). addr is the raw address (4 bytes
 * for IPv4, 16 for IPv6). Returns 1 if a new connection from addr is allowed now. Any
 * thread; the table is allocated on first use and freed by rl_ip_free(). */
int rl_ip_allow(const uint8_t *addr, size_t len, uint64_t now_ms, uint32_t rate, uint32_t burst);
void rl_ip_free(void);

#endif
