/* json_util.h - strict, typed access to JSON request bodies (jansson), following Go's
 * encoding/json rules that WuKongIM's clients are used to: a missing key or a null leaves
 * the field's default; any other type mismatch (a number given as a string, 1.5 for an
 * integer, -1 for an unsigned field, 300 for a uint8) is an error. Unknown keys are ignored.
 *
 * Usage: parse the body with ju_parse(), then read fields through a ju cursor. The first
 * failure is remembered (ju.failed, ju.err) and later reads return defaults, so a handler
 * reads every field and checks once. Strings returned as mp_str point into the parsed
 * document and live as long as it does. Thread rule: none (pure functions). */
#ifndef MP_API_JSON_UTIL_H
#define MP_API_JSON_UTIL_H

#include <jansson.h>

#include "../common/buf.h"
#include "../common/mp.h"

typedef struct ju {
    json_t *obj;   /* the object fields are read from (borrowed) */
    int failed;    /* 1 after the first error */
    char err[200]; /* message of the first error, for a 400 answer */
} ju;

/* Parse a whole body. want_object: the top level must be an object (else an array or any
 * value is accepted and the caller checks). Returns a new reference, or NULL with a
 * human-readable message in err (malformed JSON, empty body, wrong top-level type). */
json_t *ju_parse(mp_str body, int want_object, char *err, size_t errlen);

/* Start reading fields of obj. */
void ju_init(ju *j, json_t *obj);
/* Record an error (printf-style) unless one is already recorded. */
void ju_fail(ju *j, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* string field; default "" */
mp_str ju_str(ju *j, const char *key);
/* integer field within [min, max]; default 0 */
int64_t ju_int(ju *j, const char *key, int64_t min, int64_t max);
/* unsigned integer field (Go uint64/uint32/uint8) within [0, max]; default 0 */
uint64_t ju_uint(ju *j, const char *key, uint64_t max);
/* nested object; NULL when absent or null */
json_t *ju_object(ju *j, const char *key);
/* array of strings; *out is a new array of views (caller frees *out with free()), NULL
 * when absent, null or empty. Returns the count. */
size_t ju_str_array(ju *j, const char *key, mp_str **out);
/* Same for a top-level value that must be an array of strings (or null). */
size_t ju_str_array_value(ju *j, json_t *v, const char *what, mp_str **out);
/* Go []uint8: an array of integers 0..255, or a base64 string. Fills out (cap entries),
 * returns the count (entries past cap are dropped). */
size_t ju_u8_list(ju *j, const char *key, uint8_t *out, size_t cap);

/* ---- building answers ---- */

/* A JSON string from bytes that may not be valid UTF-8 (invalid sequences become U+FFFD,
 * as Go's encoder does). Never NULL. */
json_t *ju_string(mp_str s);
/* Serialize compactly into a malloc'd buffer; *len receives its length. */
char *ju_dump(const json_t *v, size_t *len);

/* true when s is empty or only spaces/tabs/newlines (Go strings.TrimSpace(s) == ""). */
int ju_blank(mp_str s);
/* The "header" object of a send body ({"no_persist","red_dot","sync_once"}, each 0 or 1)
 * as protocol header flags (PROTO_FLAG_*); a missing header is 0. */
uint8_t ju_header_flags(ju *j);

#endif
