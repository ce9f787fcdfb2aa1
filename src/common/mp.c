/* mp.c - error names, checked allocation, clocks. */
#include "mp.h"

#include <stdio.h>
#include <time.h>

const char *mp_strerror(int code) {
    switch (code) {
    case MP_OK: return "ok";
    case MP_EAGAIN: return "need more data";
    case MP_EPROTO: return "protocol error";
    case MP_ETOOBIG: return "over limit";
    case MP_ENOMEM: return "out of memory";
    case MP_ENOTFOUND: return "not found";
    case MP_EINVAL: return "invalid argument";
    case MP_EIO: return "i/o error";
    case MP_ECRYPTO: return "crypto failure";
    case MP_EFULL: return "queue full";
    case MP_EEXIST: return "already exists";
    case MP_ECLOSED: return "closed";
    case MP_EPERM: return "not permitted";
    case MP_ENOTSUP: return "not supported";
    default: return "unknown error";
    }
}

void mp_assert_fail(const char *expr, const char *file, int line) {
    fprintf(stderr, "assertion failed: %s (%s:%d)\n", expr, file, line);
    abort();
}

static void *oom(void) {
    fputs("out of memory\n", stderr);
    abort();
}

void *mp_malloc(size_t n) {
    void *p = malloc(n ? n : 1);
    return p ? p : oom();
}

void *mp_calloc(size_t n, size_t sz) {
    void *p = calloc(n ? n : 1, sz ? sz : 1);
    return p ? p : oom();
}

void *mp_realloc(void *p, size_t n) {
    void *q = realloc(p, n ? n : 1);
    return q ? q : oom();
}

char *mp_strndup(const char *s, size_t n) {
    char *d = mp_malloc(n + 1);
    if (n) memcpy(d, s, n);
    d[n] = 0;
    return d;
}

uint64_t mp_now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

uint64_t mp_now_ms(void) { return mp_now_ns() / 1000000ull; }

uint64_t mp_mono_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

uint64_t mp_mono_ms(void) { return mp_mono_ns() / 1000000ull; }
