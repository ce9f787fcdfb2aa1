/* api_req.h - what an HTTP API handler sees of a request, and how it answers.
 *
 * Ownership: the server creates one api_req per routed request and hands it to the
 * handler. The handler owns it until it answers with exactly one api_reply_* call, which
 * sends the answer and frees the api_req; the handler must not touch it afterwards. The
 * answer may come later, from an IM core done callback: the api_req stays valid even if
 * the client went away meanwhile, or if api_stop() already answered 503 for it at the end
 * of its grace period (the answer is then dropped; only the free happens).
 * Thread rule: everything runs on the API loop's thread (worker 0). */
#ifndef MP_API_REQ_H
#define MP_API_REQ_H

#include <jansson.h>

#include "../common/mp.h"
#include "../config/config.h"
#include "../core/im.h"

typedef struct api_req api_req;
typedef void (*api_handler_fn)(api_req *r);

/* The request body (empty for none). Valid until the answer. */
mp_str api_req_body(const api_req *r);
/* Query parameter `name`, percent-decoded; 1 if present. The value lives until the answer. */
int api_req_query(api_req *r, const char *name, mp_str *out);
/* Query parameter as a uint8 the way WuKongIM reads it (strconv.ParseUint, errors -> 0). */
uint8_t api_req_query_u8(api_req *r, const char *name);
/* The server configuration. */
const mp_config *api_cfg(void);

/* Answers (each frees r). */
void api_reply_json(api_req *r, int status, json_t *body); /* takes the reference to body */
void api_reply_ok(api_req *r);                              /* 200 {"status":200} */
/* {"msg":..., "status":status} with HTTP status `status`. */
void api_reply_error(api_req *r, int status, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Parse the body as a JSON object; on failure answer 400 with the parser's message and
 * return NULL. The caller owns the returned reference (json_decref). */
struct json_t;
struct json_t *api_parse_object(api_req *r);
/* Parse a body that is a JSON array of uid strings (or null: no uids). *uids (the caller
 * frees it) points into the returned document, which the caller owns. On failure answer
 * 400 and return NULL: with not_array as the message for a body that is neither an array
 * nor null when it is given, else with the parser's or the element check's message. */
struct json_t *api_parse_uid_array(api_req *r, const char *not_array, mp_str **uids, size_t *n);
void api_reply_text(api_req *r, int status, const char *content_type, mp_str body);
void api_reply_empty(api_req *r, int status);

/* im_done_fn for mutations answered with a plain OK (ctx = the api_req). A refusal or
 * failure answers 400 {"msg","status":400}. */
void api_im_done_ok(void *ctx, const im_result *res);
/* 1 if an IM result means success. */
int api_im_ok(const im_result *res);
/* Text for a protocol reason code (e.g. 19 -> "channel is banned"). */
const char *api_reason_text(uint8_t reason);

#endif
