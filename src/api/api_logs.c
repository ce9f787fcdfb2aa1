/* api_logs.c - GET /logs/recent on the manager port: the last warn and error lines the
 * server logged (common/log.c keeps them), newest last, for the monitor's "recent errors". */
#include "../common/log.h"
#include "api_routes.h"
#include "json_util.h"

static void add_line(void *ctx, const char *line) { json_array_append_new(ctx, ju_string(mp_str_c(line))); }

void api_logs_recent(api_req *r) {
    json_t *lines = json_array();
    mp_log_recent(add_line, lines);
    uint64_t counts[5];
    mp_log_counts(counts);
    json_t *o = json_object();
    json_object_set_new(o, "lines", lines);
    json_object_set_new(o, "warn_total", json_integer((json_int_t)counts[MP_LOG_WARN]));
    json_object_set_new(o, "error_total", json_integer((json_int_t)counts[MP_LOG_ERROR]));
    api_reply_json(r, 200, o);
}
