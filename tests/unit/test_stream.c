/* test_stream.c - projection rules and stored records of stream event keys
 * (src/stream/stream_state.c, spec §5.14): text deltas accumulate, other deltas and
 * snapshots replace, terminal events set status / end_reason / error and keep the
 * accumulated text unless payload.snapshot is given, stream.finish closes open keys, the
 * size cap refuses without changing anything, records round-trip, legacy stream_data. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "stream/stream_state.h"

static json_t *J(const char *text) {
    json_t *v = json_loads(text, JSON_DECODE_ANY, NULL);
    assert_non_null(v);
    return v;
}

/* The snapshot as compact JSON text (static buffer), "null" for none. */
static const char *snap_text(const stream_key *k) {
    static char buf[4096];
    json_t *s = stream_key_snapshot(k);
    if (!s) return "null";
    char *d = json_dumps(s, JSON_COMPACT | JSON_ENCODE_ANY);
    snprintf(buf, sizeof buf, "%s", d);
    free(d);
    json_decref(s);
    return buf;
}

static void delta(stream_key *k, const char *id, const char *payload) {
    json_t *p = payload ? J(payload) : NULL;
    stream_ev e = {id, "stream.delta", "", 1000, p};
    assert_int_equal(stream_key_delta(k, &e, 1 << 20), MP_OK);
    json_decref(p);
}

static void apply(stream_key *k, const char *id, const char *type, const char *payload, uint64_t seq) {
    json_t *p = payload ? J(payload) : NULL;
    stream_ev e = {id, type, "public", 2000 + (int64_t)seq, p};
    stream_key_apply(k, &e, seq);
    json_decref(p);
}

static void test_text_deltas_accumulate(void **state) {
    (void)state;
    stream_key k;
    stream_key_init(&k, "main");
    assert_string_equal(snap_text(&k), "null");
    delta(&k, "d1", "{\"kind\":\"text\",\"delta\":\"hello \"}");
    delta(&k, "d2", "{\"kind\":\"text\",\"delta\":\"w\\u00f6rld\"}");
    delta(&k, "d3", "{\"kind\":\"text\",\"delta\":\"\"}"); /* empty: no change */
    delta(&k, "d4", NULL);                                  /* no payload: no change */
    assert_string_equal(snap_text(&k), "{\"kind\":\"text\",\"text\":\"hello w\xc3\xb6rld\"}");
    assert_int_equal(k.status, STREAM_OPEN);
    assert_int_equal(k.seq, 0); /* deltas take no msg_event_seq */
    assert_string_equal(k.last_id, "d4");
    assert_null(k.id); /* nothing persisted yet */
    stream_key_free(&k);
}

static void test_snapshot_replaces_and_deltas_continue(void **state) {
    (void)state;
    stream_key k;
    stream_key_init(&k, "main");
    delta(&k, "d1", "{\"kind\":\"text\",\"delta\":\"draft\"}");
    apply(&k, "s1", "stream.snapshot", "{\"kind\":\"text\",\"text\":\"Fresh\",\"lang\":\"en\"}", 1);
    delta(&k, "d2", "{\"kind\":\"text\",\"delta\":\" start\"}");
    /* other members of a text snapshot are kept; text continues from the snapshot */
    assert_string_equal(snap_text(&k), "{\"kind\":\"text\",\"text\":\"Fresh start\",\"lang\":\"en\"}");
    assert_int_equal(k.seq, 1);
    assert_string_equal(k.id, "s1");
    assert_string_equal(k.type, "stream.snapshot");
    assert_string_equal(k.vis, "public");
    assert_string_equal(k.last_id, "d2");
    /* a non-text delta replaces the snapshot */
    delta(&k, "d3", "{\"kind\":\"tool\",\"name\":\"weather\"}");
    assert_string_equal(snap_text(&k), "{\"kind\":\"tool\",\"name\":\"weather\"}");
    /* then a text delta starts the text afresh */
    delta(&k, "d4", "{\"kind\":\"text\",\"delta\":\"x\"}");
    assert_string_equal(snap_text(&k), "{\"kind\":\"text\",\"text\":\"x\"}");
    /* a snapshot without payload clears it */
    apply(&k, "s2", "stream.snapshot", NULL, 2);
    assert_string_equal(snap_text(&k), "null");
    stream_key_free(&k);
}

static void test_terminal_events(void **state) {
    (void)state;
    stream_key k;
    stream_key_init(&k, "main");
    delta(&k, "d1", "{\"kind\":\"text\",\"delta\":\"abc\"}");
    apply(&k, "c1", "stream.close", "{\"end_reason\":3}", 5);
    assert_int_equal(k.status, STREAM_CLOSED);
    assert_int_equal(k.end_reason, 3);
    assert_int_equal(k.seq, 5);
    assert_true(stream_key_terminal(&k));
    assert_string_equal(snap_text(&k), "{\"kind\":\"text\",\"text\":\"abc\"}"); /* kept */
    stream_key_free(&k);

    stream_key_init(&k, "main");
    delta(&k, "d1", "{\"kind\":\"text\",\"delta\":\"abc\"}");
    apply(&k, "c1", "stream.close", "{\"end_reason\":\"7\",\"snapshot\":{\"kind\":\"text\",\"text\":\"final\"}}", 1);
    assert_int_equal(k.end_reason, 7);
    assert_string_equal(snap_text(&k), "{\"kind\":\"text\",\"text\":\"final\"}"); /* explicit snapshot wins */
    stream_key_free(&k);

    stream_key_init(&k, "tool");
    apply(&k, "e1", "stream.error", "{\"error\":\"boom\"}", 2);
    assert_int_equal(k.status, STREAM_ERROR);
    assert_string_equal(k.error, "boom");
    assert_string_equal(stream_status_name(k.status), "error");
    stream_key_free(&k);

    stream_key_init(&k, "x");
    apply(&k, "x1", "stream.cancel", NULL, 3);
    assert_int_equal(k.status, STREAM_CANCELLED);
    assert_string_equal(stream_status_name(k.status), "cancelled");
    stream_key_free(&k);

    /* other event types only advance the metadata */
    stream_key_init(&k, "x");
    apply(&k, "o1", "tool.call", "{\"a\":1}", 4);
    assert_int_equal(k.status, STREAM_OPEN);
    assert_string_equal(k.type, "tool.call");
    assert_string_equal(snap_text(&k), "null");
    stream_key_free(&k);

    assert_true(stream_type_terminal("stream.finish"));
    assert_true(stream_type_terminal("stream.cancel"));
    assert_false(stream_type_terminal("stream.snapshot"));
    assert_false(stream_type_terminal("stream.delta"));
}

static void test_finish_closes_open_keys(void **state) {
    (void)state;
    stream_key open, done;
    stream_key_init(&open, "main");
    stream_key_init(&done, "tool");
    delta(&open, "d1", "{\"kind\":\"text\",\"delta\":\"partial\"}");
    apply(&done, "e1", "stream.error", "{\"error\":\"x\"}", 1);
    stream_ev fin = {"f1", "stream.finish", "", 9000, NULL};
    stream_key_finish(&open, &fin, 2);
    stream_key_finish(&done, &fin, 2);
    assert_int_equal(open.status, STREAM_CLOSED);
    assert_int_equal(open.seq, 2);
    assert_string_equal(open.type, "stream.finish");
    assert_string_equal(snap_text(&open), "{\"kind\":\"text\",\"text\":\"partial\"}");
    assert_int_equal(done.status, STREAM_ERROR); /* terminal keys keep their state */
    assert_int_equal(done.seq, 1);
    stream_key_free(&open);
    stream_key_free(&done);
}

static void test_text_cap(void **state) {
    (void)state;
    stream_key k;
    stream_key_init(&k, "main");
    json_t *p = J("{\"kind\":\"text\",\"delta\":\"12345\"}");
    stream_ev e = {"d", "stream.delta", "", 1, p};
    assert_int_equal(stream_key_delta(&k, &e, 10), MP_OK);
    assert_int_equal(stream_key_delta(&k, &e, 10), MP_OK);
    assert_int_equal(stream_key_delta(&k, &e, 10), MP_ETOOBIG);
    assert_string_equal(snap_text(&k), "{\"kind\":\"text\",\"text\":\"1234512345\"}");
    json_decref(p);
    stream_key_free(&k);
}

static void test_record_round_trip(void **state) {
    (void)state;
    stream_key k, back, copy;
    stream_key_init(&k, "main");
    delta(&k, "d1", "{\"kind\":\"text\",\"delta\":\"he said \\\"hi\\\"\"}");
    apply(&k, "e1", "stream.error", "{\"error\":\"bad\"}", 12);
    size_t len;
    char *rec = stream_key_encode(&k, &len);
    assert_int_equal(stream_key_decode("main", (mp_str){rec, (uint32_t)len}, &back), MP_OK);
    assert_string_equal(back.name, "main");
    assert_int_equal(back.status, STREAM_ERROR);
    assert_int_equal(back.seq, 12);
    assert_string_equal(back.id, "e1");
    assert_string_equal(back.type, "stream.error");
    assert_string_equal(back.vis, "public");
    assert_int_equal(back.at, 2012);
    assert_string_equal(back.last_id, "e1");
    assert_string_equal(back.error, "bad");
    assert_true(back.text_mode); /* a text snapshot reloads in text mode */
    delta(&back, "d2", "{\"kind\":\"text\",\"delta\":\"!\"}");
    assert_string_equal(snap_text(&back), "{\"kind\":\"text\",\"text\":\"he said \\\"hi\\\"!\"}");
    stream_key_copy(&copy, &back);
    stream_key_free(&back);
    assert_string_equal(snap_text(&copy), "{\"kind\":\"text\",\"text\":\"he said \\\"hi\\\"!\"}");
    assert_string_equal(copy.error, "bad");
    stream_key_free(&copy);
    free(rec);
    stream_key_free(&k);

    assert_int_equal(stream_key_decode("x", MP_STR("not json"), &back), MP_EPROTO);
    assert_int_equal(stream_key_decode("x", MP_STR("[1]"), &back), MP_EPROTO);

    uint64_t seq;
    int completed;
    rec = stream_meta_encode(77, 1, &len);
    assert_int_equal(stream_meta_decode((mp_str){rec, (uint32_t)len}, &seq, &completed), MP_OK);
    assert_int_equal(seq, 77);
    assert_int_equal(completed, 1);
    free(rec);
}

static void test_legacy_stream_data(void **state) {
    (void)state;
    struct {
        const char *snap, *bytes;
    } cases[] = {
        {"{\"kind\":\"text\",\"text\":\"hi\"}", "hi"},
        {"{\"kind\":\"text\"}", ""},
        {"{\"kind\":\"binary\",\"data\":\"raw\"}", "raw"},
        {"{\"kind\":\"binary\"}", "{\"kind\":\"binary\"}"},
        {"{\"kind\":\"tool\",\"n\":1}", "{\"kind\":\"tool\",\"n\":1}"},
        {"\"plain\"", "\"plain\""},
        {"[1,2]", "[1,2]"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        json_t *s = J(cases[i].snap);
        mp_buf b = MP_BUF_INIT;
        stream_snapshot_bytes(s, &b);
        assert_int_equal(b.len, strlen(cases[i].bytes));
        if (b.len) assert_memory_equal(b.data, cases[i].bytes, b.len);
        mp_buf_free(&b);
        json_decref(s);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_text_deltas_accumulate),
        cmocka_unit_test(test_snapshot_replaces_and_deltas_continue),
        cmocka_unit_test(test_terminal_events),
        cmocka_unit_test(test_finish_closes_open_keys),
        cmocka_unit_test(test_text_cap),
        cmocka_unit_test(test_record_round_trip),
        cmocka_unit_test(test_legacy_stream_data),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
