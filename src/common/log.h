/* log.h - leveled logging to stderr: "time level component: message key=value...".
 * Thread-safe (one write(2) per line). Never log secrets (tokens, keys). */
#ifndef MP_LOG_H
#define MP_LOG_H

enum mp_log_level { MP_LOG_DEBUG = 1, MP_LOG_INFO = 2, MP_LOG_WARN = 3, MP_LOG_ERROR = 4 };

void mp_log_set_level(int level);
int mp_log_level(void);
void mp_log(int level, const char *component, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

#define LOG_DEBUG(comp, ...) do { if (mp_log_level() <= MP_LOG_DEBUG) mp_log(MP_LOG_DEBUG, comp, __VA_ARGS__); } while (0)
#define LOG_INFO(comp, ...) mp_log(MP_LOG_INFO, comp, __VA_ARGS__)
#define LOG_WARN(comp, ...) mp_log(MP_LOG_WARN, comp, __VA_ARGS__)
#define LOG_ERROR(comp, ...) mp_log(MP_LOG_ERROR, comp, __VA_ARGS__)

#endif
