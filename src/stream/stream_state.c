/* stream_state.c - projection rules and stored records of stream event keys (see
 * stream_state.h). The rules follow WuKongIM v2.2.5's reduceEventState and its event
 * cache; where Magpie differs it is said in docs/compatibility.md. */
#include "stream_state.h"

#include <stdlib.h>
#include <string.h>

static char *dup_or_null(const char *s) { return s ? mp_strndup(s, strlen(s)) : NULL; }

static void set_str(char **dst, const char *s) {
    free(*dst);
    *dst = dup_or_null(s);
}

void stream_key_init(stream_key *k, const char *name) {
    memset(k, 0, sizeof *k);
    k->name = dup_or_null(name);
    mp_buf_init(&k->text);
}

void stream_key_free(stream_key *k) {
    free(k->name);
    free(k->id);
    free(k->type);
    free(k->vis);
    free(k->last_id);
    free(k->error);
    json_decref(k->snap);
    mp_buf_free(&k->text);
    memset(k, 0, sizeof *k);
}

void stream_key_copy(stream_key *dst, const stream_key *src) {
    *dst = *src;
    dst->name = dup_or_null(src->name);
    dst->id = dup_or_null(src->id);
    dst->type = dup_or_null(src->type);
    dst->vis = dup_or_null(src->vis);
    dst->last_id = dup_or_null(src->last_id);
    dst->error = dup_or_null(src->error);
    dst->snap = src->snap ? json_deep_copy(src->snap) : NULL;
    mp_buf_init(&dst->text);
    if (src->text.len) mp_buf_append(&dst->text, src->text.data, src->text.len);
}

const char *stream_status_name(uint8_t status) {
    switch (status) {
    case STREAM_CLOSED: return "closed";
    case STREAM_ERROR: return "error";
    case STREAM_CANCELLED: return "cancelled";
    default: return "open";
    }
}

static int status_of(const char *name) {
    if (!name) return STREAM_OPEN;
    if (strcmp(name, "closed") == 0) return STREAM_CLOSED;
    if (strcmp(name, "error") == 0) return STREAM_ERROR;
    if (strcmp(name, "cancelled") == 0) return STREAM_CANCELLED;
    return STREAM_OPEN;
}

int stream_type_terminal(const char *t) {
    return strcmp(t, "stream.close") == 0 || strcmp(t, "stream.error") == 0 || strcmp(t, "stream.cancel") == 0 ||
           strcmp(t, "stream.finish") == 0;
}

static int is_kind(const json_t *v, const char *kind) {
    json_t *k = json_is_object(v) ? json_object_get(v, "kind") : NULL;
    return json_is_string(k) && strcmp(json_string_value(k), kind) == 0;
}

/* Replace the snapshot with v (borrowed; NULL or null = none). A {"kind":"text","text":s}
 * object enters text mode, so later text deltas append to s. */
static void set_snapshot(stream_key *k, const json_t *v) {
    json_decref(k->snap);
    k->snap = NULL;
    k->text_mode = 0;
    mp_buf_reset(&k->text);
    if (!v || json_is_null(v)) return;
    k->snap = json_deep_copy(v);
    json_t *text = is_kind(v, "text") ? json_object_get(v, "text") : NULL;
    if (json_is_string(text)) {
        k->text_mode = 1;
        mp_buf_append(&k->text, json_string_value(text), json_string_length(text));
    }
}

int stream_key_delta(stream_key *k, const stream_ev *e, size_t max_text) {
    const json_t *p = e->payload;
    if (is_kind(p, "text")) {
        json_t *d = json_object_get(p, "delta");
        size_t n = json_is_string(d) ? json_string_length(d) : 0;
        if (n) {
            size_t have = k->text_mode ? k->text.len : 0;
            if (have + n > max_text) return MP_ETOOBIG;
            if (!k->text_mode) {
                set_snapshot(k, NULL);
                k->text_mode = 1;
            }
            mp_buf_append(&k->text, json_string_value(d), n);
        }
    } else if (p && !json_is_null(p)) {
        set_snapshot(k, p);
    }
    set_str(&k->last_id, e->id);
    return MP_OK;
}

/* payload.end_reason as WuKongIM reads it: a number or a decimal string, else 0. */
static uint8_t end_reason_of(const json_t *p) {
    json_t *v = json_is_object(p) ? json_object_get(p, "end_reason") : NULL;
    long long n = 0;
    if (json_is_integer(v)) n = json_integer_value(v);
    else if (json_is_real(v)) n = (long long)json_real_value(v);
    else if (json_is_string(v)) n = strtoll(json_string_value(v), NULL, 10);
    return n > 0 && n <= 255 ? (uint8_t)n : 0;
}

static const char *error_of(const json_t *p) {
    json_t *v = json_is_object(p) ? json_object_get(p, "error") : NULL;
    return json_is_string(v) && json_string_length(v) ? json_string_value(v) : NULL;
}

static void note_persisted(stream_key *k, const stream_ev *e, uint64_t seq) {
    k->seq = seq;
    set_str(&k->id, e->id);
    set_str(&k->type, e->type);
    set_str(&k->vis, e->vis);
    k->at = e->at;
}

/* A terminal event's payload.snapshot, when given, is the key's final snapshot. */
static void final_snapshot(stream_key *k, const json_t *p) {
    json_t *snap = json_is_object(p) ? json_object_get(p, "snapshot") : NULL;
    if (snap) set_snapshot(k, snap);
}

void stream_key_apply(stream_key *k, const stream_ev *e, uint64_t seq) {
    const char *t = e->type;
    const json_t *p = e->payload;
    if (strcmp(t, "stream.snapshot") == 0) {
        set_snapshot(k, p);
    } else if (strcmp(t, "stream.close") == 0) {
        final_snapshot(k, p);
        k->status = STREAM_CLOSED;
        k->end_reason = end_reason_of(p);
    } else if (strcmp(t, "stream.error") == 0) {
        final_snapshot(k, p);
        k->status = STREAM_ERROR;
        set_str(&k->error, error_of(p));
    } else if (strcmp(t, "stream.cancel") == 0) {
        final_snapshot(k, p);
        k->status = STREAM_CANCELLED;
    } else if (strcmp(t, "stream.finish") == 0) {
        k->status = STREAM_CLOSED;
    }
    note_persisted(k, e, seq);
    set_str(&k->last_id, e->id);
}

void stream_key_finish(stream_key *k, const stream_ev *e, uint64_t seq) {
    if (stream_key_terminal(k)) return;
    k->status = STREAM_CLOSED;
    note_persisted(k, e, seq);
}

json_t *stream_key_snapshot(const stream_key *k) {
    if (!k->text_mode) return k->snap ? json_incref(k->snap) : NULL;
    json_t *o = k->snap ? json_deep_copy(k->snap) : NULL;
    if (!o) {
        o = json_object();
        json_object_set_new(o, "kind", json_string("text"));
    }
    /* the text is a concatenation of valid UTF-8 strings, so valid UTF-8 itself */
    json_object_set_new(o, "text", json_stringn(k->text.len ? (const char *)k->text.data : "", k->text.len));
    return o;
}

static void dump_into(const json_t *v, mp_buf *out) {
    size_t n = json_dumpb(v, NULL, 0, JSON_COMPACT | JSON_ENCODE_ANY);
    mp_buf_reserve(out, n);
    out->len += json_dumpb(v, (char *)out->data + out->len, n, JSON_COMPACT | JSON_ENCODE_ANY);
}

void stream_snapshot_bytes(const json_t *snap, mp_buf *out) {
    if (!snap) return;
    if (json_is_object(snap)) {
        json_t *kind = json_object_get(snap, "kind");
        const char *field = NULL;
        if (json_is_string(kind) && strcmp(json_string_value(kind), "text") == 0) field = "text";
        else if (json_is_string(kind) && strcmp(json_string_value(kind), "binary") == 0) field = "data";
        json_t *v = field ? json_object_get(snap, field) : NULL;
        if (field && (json_is_string(v) || strcmp(field, "text") == 0)) {
            if (json_is_string(v)) mp_buf_append(out, json_string_value(v), json_string_length(v));
            return;
        }
    }
    dump_into(snap, out);
}

/* ---- stored records -------------------------------------------------------------------- */

static void put_str(json_t *o, const char *name, const char *v) {
    if (v && *v) json_object_set_new(o, name, json_string(v));
}

char *stream_key_encode(const stream_key *k, size_t *len) {
    json_t *o = json_object();
    json_object_set_new(o, "status", json_string(stream_status_name(k->status)));
    json_object_set_new(o, "seq", json_integer((json_int_t)k->seq));
    put_str(o, "id", k->id);
    put_str(o, "type", k->type);
    put_str(o, "vis", k->vis);
    if (k->at) json_object_set_new(o, "at", json_integer(k->at));
    put_str(o, "last_id", k->last_id);
    if (k->end_reason) json_object_set_new(o, "end_reason", json_integer(k->end_reason));
    put_str(o, "error", k->error);
    json_t *snap = stream_key_snapshot(k);
    if (snap) json_object_set_new(o, "snapshot", snap);
    char *s = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    MP_ASSERT(s);
    *len = strlen(s);
    return s;
}

static const char *get_str(const json_t *o, const char *name) {
    json_t *v = json_object_get(o, name);
    return json_is_string(v) ? json_string_value(v) : NULL;
}

static int64_t get_int(const json_t *o, const char *name) {
    json_t *v = json_object_get(o, name);
    return json_is_integer(v) ? json_integer_value(v) : 0;
}

int stream_key_decode(const char *name, mp_str val, stream_key *out) {
    json_t *o = json_loadb(val.p, val.len, 0, NULL);
    if (!json_is_object(o)) {
        json_decref(o);
        return MP_EPROTO;
    }
    stream_key_init(out, name);
    out->status = (uint8_t)status_of(get_str(o, "status"));
    out->seq = (uint64_t)get_int(o, "seq");
    out->id = dup_or_null(get_str(o, "id"));
    out->type = dup_or_null(get_str(o, "type"));
    out->vis = dup_or_null(get_str(o, "vis"));
    out->at = get_int(o, "at");
    out->last_id = dup_or_null(get_str(o, "last_id"));
    int64_t er = get_int(o, "end_reason");
    out->end_reason = er > 0 && er <= 255 ? (uint8_t)er : 0;
    out->error = dup_or_null(get_str(o, "error"));
    set_snapshot(out, json_object_get(o, "snapshot"));
    json_decref(o);
    return MP_OK;
}

char *stream_meta_encode(uint64_t seq, int completed, size_t *len) {
    json_t *o = json_object();
    json_object_set_new(o, "seq", json_integer((json_int_t)seq));
    json_object_set_new(o, "completed", json_integer(completed ? 1 : 0));
    char *s = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    MP_ASSERT(s);
    *len = strlen(s);
    return s;
}

int stream_meta_decode(mp_str val, uint64_t *seq, int *completed) {
    json_t *o = json_loadb(val.p, val.len, 0, NULL);
    if (!json_is_object(o)) {
        json_decref(o);
        return MP_EPROTO;
    }
    *seq = (uint64_t)get_int(o, "seq");
    *completed = get_int(o, "completed") == 1;
    json_decref(o);
    return MP_OK;
}
