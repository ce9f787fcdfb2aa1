/* log.h - leveled, structured logging to stderr. Every line is
 *   time=2026-01-02T03:04:05.678Z level=info comp=main msg="what happened" key=value ...
 * Callers write the message first and then key=value fields ("magpie ready tcp=%s");
 * the text before the first key= word becomes the quoted msg. Thread-safe (one write(2)
 * per line). Never log secrets (tokens, keys), and never one line per message at info:
 * per-message events are counters in /metrics.
 *
 * The last warn and error lines are kept in a small ring for the monitor (GET /logs/recent). */
#ifndef MP_LOG_H
#define MP_LOG_H

#include <stddef.h>
#include <stdint.h>

enum mp_log_level { MP_LOG_DEBUG = 1, MP_LOG_INFO = 2, MP_LOG_WARN = 3, MP_LOG_ERROR = 4 };

#define MP_LOG_RECENT 100 /* warn/error lines kept */

void mp_log_set_level(int level);
int mp_log_level(void);
void mp_log(int level, const char *component, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Call fn for each kept warn/error line, oldest first (line without the newline). fn
 * must not log. Any thread. */
typedef void (*mp_log_line_fn)(void *ctx, const char *line);
void mp_log_recent(mp_log_line_fn fn, void *ctx);
/* Lines written since start, by level (index MP_LOG_DEBUG..MP_LOG_ERROR; 0 unused). */
void mp_log_counts(uint64_t out[5]);

/* A frequent event logged in aggregate, at most once a period: mp_log_every_due counts one
 * event and returns how many to report in a line now (those since the last line, this one
 * included), or 0 while the period since the last line lasts. One owner thread per value. */
typedef struct mp_log_every {
    uint64_t unlogged, last_ms;
} mp_log_every;
uint64_t mp_log_every_due(mp_log_every *e, uint64_t now_ms, uint64_t period_ms);

#define LOG_DEBUG(comp, ...) do { if (mp_log_level() <= MP_LOG_DEBUG) mp_log(MP_LOG_DEBUG, comp, __VA_ARGS__); } while (0)
#define LOG_INFO(comp, ...) mp_log(MP_LOG_INFO, comp, __VA_ARGS__)
#define LOG_WARN(comp, ...) mp_log(MP_LOG_WARN, comp, __VA_ARGS__)
#define LOG_ERROR(comp, ...) mp_log(MP_LOG_ERROR, comp, __VA_ARGS__)

#endif
