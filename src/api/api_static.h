/* api_static.h - files of the monitor UI and the chat demo, served from webDir.
 * Thread rule: the API loop's thread (worker 0). */
#ifndef MP_API_STATIC_H
#define MP_API_STATIC_H

#include "../config/config.h"
#include "api_req.h"

/* Find the web directory: cfg->web_dir, else web/ next to the binary. Logs when none. */
void api_static_init(const mp_config *cfg);
/* The directory in use, "" when none was found. */
const char *api_static_dir(void);
/* Answer with the file <webDir>/<sub>/<rel> (rel "" or ending in '/': its index.html), or
 * 404 when it does not exist or rel is not a plain relative path. */
void api_static_serve(api_req *r, const char *sub, mp_str rel);

#endif
