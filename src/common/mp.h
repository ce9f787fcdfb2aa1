/* mp.h - shared basics: error codes, string views, assertions, clocks.
 * Every module includes this; it has no dependencies beyond libc. */
#ifndef MP_H
#define MP_H

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Error codes: small negative ints, 0 = ok. mp_strerror() names them. */
enum {
    MP_OK = 0,
    MP_EAGAIN = -1,    /* need more input */
    MP_EPROTO = -2,    /* malformed input (protocol/codec error) */
    MP_ETOOBIG = -3,   /* over a configured or protocol limit */
    MP_ENOMEM = -4,
    MP_ENOTFOUND = -5,
    MP_EINVAL = -6,    /* bad argument / validation failure */
    MP_EIO = -7,       /* storage or socket I/O failure */
    MP_ECRYPTO = -8,   /* decrypt / verify failure */
    MP_EFULL = -9,     /* bounded queue full */
    MP_EEXIST = -10,
    MP_ECLOSED = -11,
    MP_EPERM = -12,
    MP_ENOTSUP = -13,  /* not available on this system */
};
const char *mp_strerror(int code);

/* A borrowed byte string; not NUL-terminated unless stated. */
typedef struct mp_str {
    const char *p;
    uint32_t len;
} mp_str;

#define MP_STR(lit) ((mp_str){(lit), (uint32_t)(sizeof(lit) - 1)})
static inline mp_str mp_str_c(const char *s) { return (mp_str){s, s ? (uint32_t)strlen(s) : 0}; }
static inline int mp_str_eq(mp_str a, mp_str b) { return a.len == b.len && (a.len == 0 || memcmp(a.p, b.p, a.len) == 0); }
static inline int mp_str_eq_c(mp_str a, const char *b) { return mp_str_eq(a, mp_str_c(b)); }
/* Copy s to *cursor, advance the cursor, return the copy (packing strings into one block). */
static inline mp_str mp_str_pack(char **cursor, mp_str s) {
    mp_str r = {*cursor, s.len};
    if (s.len) memcpy(*cursor, s.p, s.len);
    *cursor += s.len;
    return r;
}

/* Invariant check: aborts with file/line. Never use on user input. */
#define MP_ASSERT(cond)                                                           \
    do {                                                                          \
        if (!(cond)) mp_assert_fail(#cond, __FILE__, __LINE__);                   \
    } while (0)
void mp_assert_fail(const char *expr, const char *file, int line) __attribute__((noreturn));

/* Allocation that aborts on failure (out of memory is not recoverable here). */
void *mp_malloc(size_t n);
void *mp_calloc(size_t n, size_t sz);
void *mp_realloc(void *p, size_t n);
char *mp_strndup(const char *s, size_t n);

uint64_t mp_now_ms(void);   /* wall clock, ms since epoch */
uint64_t mp_now_ns(void);   /* wall clock, ns since epoch */
uint64_t mp_mono_ms(void);  /* monotonic, ms */
uint64_t mp_mono_ns(void);  /* monotonic, ns (durations) */

#define MP_MIN(a, b) ((a) < (b) ? (a) : (b))
#define MP_MAX(a, b) ((a) > (b) ? (a) : (b))
#define MP_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

#endif
