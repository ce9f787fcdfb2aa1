/* json_util.c - strict typed JSON field access and answer helpers (see json_util.h). */
#include "json_util.h"

#include <stdarg.h>
#include <stdio.h>

#include "../proto/crypto.h"
#include "../proto/packet.h"

json_t *ju_parse(mp_str body, int want_object, char *err, size_t errlen) {
    if (ju_blank(body)) {
        snprintf(err, errlen, "request body is empty (expected JSON)");
        return NULL;
    }
    json_error_t je;
    json_t *v = json_loadb(body.p, body.len, JSON_DECODE_ANY, &je);
    if (!v) {
        snprintf(err, errlen, "malformed JSON at line %d column %d: %s", je.line, je.column, je.text);
        return NULL;
    }
    if (want_object && !json_is_object(v)) {
        snprintf(err, errlen, "request body must be a JSON object");
        json_decref(v);
        return NULL;
    }
    return v;
}

void ju_init(ju *j, json_t *obj) {
    j->obj = obj;
    j->failed = 0;
    j->err[0] = '\0';
}

void ju_fail(ju *j, const char *fmt, ...) {
    if (j->failed) return;
    j->failed = 1;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(j->err, sizeof j->err, fmt, ap);
    va_end(ap);
}

/* The value for key, or NULL when absent/null or after an earlier failure. */
static json_t *field(ju *j, const char *key) {
    if (j->failed || !j->obj) return NULL;
    json_t *v = json_object_get(j->obj, key);
    return json_is_null(v) ? NULL : v;
}

static const char *type_name(const json_t *v) {
    switch (json_typeof(v)) {
    case JSON_OBJECT: return "an object";
    case JSON_ARRAY: return "an array";
    case JSON_STRING: return "a string";
    case JSON_INTEGER: return "an integer";
    case JSON_REAL: return "a fractional number";
    case JSON_TRUE:
    case JSON_FALSE: return "a boolean";
    default: return "null";
    }
}

mp_str ju_str(ju *j, const char *key) {
    json_t *v = field(j, key);
    if (!v) return (mp_str){"", 0};
    if (!json_is_string(v)) {
        ju_fail(j, "field \"%s\" must be a string, got %s", key, type_name(v));
        return (mp_str){"", 0};
    }
    return (mp_str){json_string_value(v), (uint32_t)json_string_length(v)};
}

int64_t ju_int(ju *j, const char *key, int64_t min, int64_t max) {
    json_t *v = field(j, key);
    if (!v) return 0;
    if (!json_is_integer(v)) {
        ju_fail(j, "field \"%s\" must be an integer, got %s", key, type_name(v));
        return 0;
    }
    json_int_t n = json_integer_value(v);
    if (n < min || n > max) {
        ju_fail(j, "field \"%s\" is out of range [%lld, %lld]", key, (long long)min, (long long)max);
        return 0;
    }
    return n;
}

uint64_t ju_uint(ju *j, const char *key, uint64_t max) {
    int64_t lim = max > (uint64_t)INT64_MAX ? INT64_MAX : (int64_t)max;
    return (uint64_t)ju_int(j, key, 0, lim);
}

json_t *ju_object(ju *j, const char *key) {
    json_t *v = field(j, key);
    if (v && !json_is_object(v)) {
        ju_fail(j, "field \"%s\" must be an object, got %s", key, type_name(v));
        return NULL;
    }
    return v;
}

size_t ju_str_array_value(ju *j, json_t *v, const char *what, mp_str **out) {
    *out = NULL;
    if (j->failed || !v || json_is_null(v)) return 0;
    if (!json_is_array(v)) {
        ju_fail(j, "%s must be an array of strings, got %s", what, type_name(v));
        return 0;
    }
    size_t n = json_array_size(v);
    if (n == 0) return 0;
    mp_str *a = mp_calloc(n, sizeof *a);
    for (size_t i = 0; i < n; i++) {
        json_t *e = json_array_get(v, i);
        if (json_is_null(e)) { /* Go decodes null elements as "" */
            a[i] = (mp_str){"", 0};
            continue;
        }
        if (!json_is_string(e)) {
            ju_fail(j, "%s must be an array of strings, element %zu is %s", what, i, type_name(e));
            free(a);
            return 0;
        }
        a[i] = (mp_str){json_string_value(e), (uint32_t)json_string_length(e)};
    }
    *out = a;
    return n;
}

size_t ju_str_array(ju *j, const char *key, mp_str **out) {
    char what[80];
    snprintf(what, sizeof what, "field \"%s\"", key);
    return ju_str_array_value(j, field(j, key), what, out);
}

size_t ju_u8_list(ju *j, const char *key, uint8_t *out, size_t cap) {
    json_t *v = field(j, key);
    if (!v) return 0;
    if (json_is_string(v)) { /* Go decodes a []uint8 from base64 text too */
        mp_buf b = MP_BUF_INIT;
        size_t n = 0;
        if (crypto_b64_decode(json_string_value(v), json_string_length(v), &b) != MP_OK) {
            ju_fail(j, "field \"%s\" is not valid base64", key);
        } else {
            n = MP_MIN(b.len, cap);
            if (n) memcpy(out, b.data, n);
        }
        mp_buf_free(&b);
        return n;
    }
    if (!json_is_array(v)) {
        ju_fail(j, "field \"%s\" must be an array of integers, got %s", key, type_name(v));
        return 0;
    }
    size_t n = 0;
    for (size_t i = 0; i < json_array_size(v); i++) {
        json_t *e = json_array_get(v, i);
        if (!json_is_integer(e) || json_integer_value(e) < 0 || json_integer_value(e) > 255) {
            ju_fail(j, "field \"%s\" must contain integers in [0, 255]", key);
            return 0;
        }
        if (n < cap) out[n++] = (uint8_t)json_integer_value(e);
    }
    return n;
}

/* Length of the valid UTF-8 sequence at p (1..4), or 0 if invalid. */
static size_t utf8_seq(const unsigned char *p, size_t left) {
    unsigned char c = p[0];
    size_t n;
    uint32_t cp;
    if (c < 0x80) return 1;
    if (c >= 0xC2 && c <= 0xDF) n = 2, cp = c & 0x1F;
    else if (c >= 0xE0 && c <= 0xEF) n = 3, cp = c & 0x0F;
    else if (c >= 0xF0 && c <= 0xF4) n = 4, cp = c & 0x07;
    else return 0;
    if (left < n) return 0;
    for (size_t i = 1; i < n; i++) {
        if ((p[i] & 0xC0) != 0x80) return 0;
        cp = (cp << 6) | (p[i] & 0x3F);
    }
    if ((n == 3 && cp < 0x800) || (n == 4 && (cp < 0x10000 || cp > 0x10FFFF))) return 0;
    if (cp >= 0xD800 && cp <= 0xDFFF) return 0;
    return n;
}

json_t *ju_string(mp_str s) {
    json_t *v = json_stringn(s.len ? s.p : "", s.len);
    if (v) return v;
    /* invalid UTF-8: replace each bad byte with U+FFFD */
    mp_buf b = MP_BUF_INIT;
    const unsigned char *p = (const unsigned char *)s.p;
    for (size_t i = 0; i < s.len;) {
        size_t n = utf8_seq(p + i, s.len - i);
        if (n) {
            mp_buf_append(&b, p + i, n);
            i += n;
        } else {
            mp_buf_append(&b, "\xEF\xBF\xBD", 3);
            i++;
        }
    }
    v = json_stringn(b.len ? (const char *)b.data : "", b.len);
    mp_buf_free(&b);
    MP_ASSERT(v);
    return v;
}

char *ju_dump(const json_t *v, size_t *len) {
    char *s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
    MP_ASSERT(s); /* only fails on allocation failure */
    *len = strlen(s);
    return s;
}

int ju_blank(mp_str s) {
    for (uint32_t i = 0; i < s.len; i++) {
        char c = s.p[i];
        if (c != ' ' && c != '\t' && c != '\n' && c != '\r' && c != '\v' && c != '\f') return 0;
    }
    return 1;
}

uint8_t ju_header_flags(ju *j) {
    json_t *h = ju_object(j, "header");
    if (!h) return 0;
    ju hj;
    ju_init(&hj, h);
    uint8_t flags = 0;
    if (ju_int(&hj, "no_persist", 0, 1)) flags |= PROTO_FLAG_NOPERSIST;
    if (ju_int(&hj, "red_dot", 0, 1)) flags |= PROTO_FLAG_REDDOT;
    if (ju_int(&hj, "sync_once", 0, 1)) flags |= PROTO_FLAG_SYNCONCE;
    if (hj.failed) ju_fail(j, "header: %s", hj.err);
    return flags;
}
