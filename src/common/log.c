/* log.c - structured leveled logging (log.h); one write(2) per line so threads do not
 * interleave, and a ring of the recent warn/error lines behind a mutex (they are rare). */
#include "log.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define LINE_MAX_BYTES 2048
#define RECENT_LINE 512 /* a kept line is cut to this */

static atomic_int g_level = MP_LOG_INFO;
static atomic_uint_fast64_t g_counts[5];

static struct {
    pthread_mutex_t mu;
    char lines[MP_LOG_RECENT][RECENT_LINE];
    size_t next, n;
} g_recent = {.mu = PTHREAD_MUTEX_INITIALIZER};

void mp_log_set_level(int level) { atomic_store(&g_level, level); }
int mp_log_level(void) { return atomic_load(&g_level); }

/* 1 if s starts a key=value field: an identifier (letters, digits, '_', '.') then '='. */
static int is_field(const char *s) {
    const char *p = s;
    if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || *p == '_')) return 0;
    while ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') || *p == '_' || *p == '.') p++;
    return *p == '=';
}

/* Where the fields start in text (its end when there are none). */
static const char *fields_start(const char *text) {
    for (const char *p = text; *p; p++)
        if ((p == text || p[-1] == ' ') && is_field(p)) return p;
    return text + strlen(text);
}

/* Append msg="..." (text[0..n) with quotes, backslashes and control bytes escaped). */
static size_t put_msg(char *out, size_t cap, const char *text, size_t n) {
    while (n && (text[n - 1] == ' ' || text[n - 1] == ':' || text[n - 1] == ';' || text[n - 1] == ',')) n--;
    size_t o = 0;
    if (n == 0 || cap < 8) return 0;
    memcpy(out, "msg=\"", 5);
    o = 5;
    for (size_t i = 0; i < n && o + 4 < cap; i++) {
        unsigned char c = (unsigned char)text[i];
        if (c == '"' || c == '\\') out[o++] = '\\', out[o++] = (char)c;
        else if (c == '\n') out[o++] = '\\', out[o++] = 'n';
        else if (c < 0x20) out[o++] = ' ';
        else out[o++] = (char)c;
    }
    out[o++] = '"';
    return o;
}

static void keep_recent(const char *line, size_t len) {
    pthread_mutex_lock(&g_recent.mu);
    size_t n = len < RECENT_LINE - 1 ? len : RECENT_LINE - 1;
    memcpy(g_recent.lines[g_recent.next], line, n);
    g_recent.lines[g_recent.next][n] = '\0';
    g_recent.next = (g_recent.next + 1) % MP_LOG_RECENT;
    if (g_recent.n < MP_LOG_RECENT) g_recent.n++;
    pthread_mutex_unlock(&g_recent.mu);
}

void mp_log(int level, const char *component, const char *fmt, ...) {
    if (level < atomic_load(&g_level)) return;
    static const char *names[] = {"", "debug", "info", "warn", "error"};
    int lv = level >= 1 && level <= 4 ? level : 0;
    atomic_fetch_add_explicit(&g_counts[lv], 1, memory_order_relaxed);
    char text[LINE_MAX_BYTES], line[LINE_MAX_BYTES + 256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    int n = snprintf(line, sizeof line, "time=%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ level=%s comp=%s ",
                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                     ts.tv_nsec / 1000000, names[lv], component);
    size_t len = n < 0 ? 0 : (size_t)n;
    const char *fields = fields_start(text);
    len += put_msg(line + len, sizeof line - len - 2, text, (size_t)(fields - text));
    if (*fields) {
        if (len && line[len - 1] != ' ') line[len++] = ' ';
        size_t m = strlen(fields);
        if (m > sizeof line - len - 2) m = sizeof line - len - 2;
        memcpy(line + len, fields, m);
        len += m;
    }
    while (len && line[len - 1] == ' ') len--;
    if (level >= MP_LOG_WARN) keep_recent(line, len);
    line[len++] = '\n';
    ssize_t w = write(STDERR_FILENO, line, len);
    (void)w;
}

void mp_log_recent(mp_log_line_fn fn, void *ctx) {
    pthread_mutex_lock(&g_recent.mu);
    size_t first = (g_recent.next + MP_LOG_RECENT - g_recent.n) % MP_LOG_RECENT;
    for (size_t i = 0; i < g_recent.n; i++) fn(ctx, g_recent.lines[(first + i) % MP_LOG_RECENT]);
    pthread_mutex_unlock(&g_recent.mu);
}

void mp_log_counts(uint64_t out[5]) {
    for (int i = 0; i < 5; i++) out[i] = atomic_load_explicit(&g_counts[i], memory_order_relaxed);
}

uint64_t mp_log_every_due(mp_log_every *e, uint64_t now_ms, uint64_t period_ms) {
    e->unlogged++;
    if (e->last_ms && now_ms - e->last_ms < period_ms) return 0;
    uint64_t n = e->unlogged;
    e->unlogged = 0;
    e->last_ms = now_ms;
    return n;
}
