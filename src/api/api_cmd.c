/* api_cmd.c - offline command messages: POST /message/sync and POST /message/syncack
 * (spec §4.5, §5.8).
 *
 * Command messages (sync_once API sends) live in command channels "X____cmd"; each
 * recipient has a command conversation row whose read pointer says what it has seen.
 * /message/sync returns the unseen ones and remembers, per uid, the last seq it returned
 * in each channel; /message/syncack moves the read pointers there. The memory is the API
 * thread's alone (worker 0), like the handlers. */
#include <stdlib.h>

#include "../channel/channel.h"
#include "../common/log.h"
#include "../common/map.h"
#include "api_routes.h"
#include "json_util.h"
#include "message_resp.h"

#define CMD_SYNC_DEFAULT_LIMIT 200
#define CMD_SYNC_MAX_LIMIT 10000
/* Remembered sync positions are dropped wholesale above this many uids: a later syncack
 * then does nothing and the next sync returns the same commands again (at least once). */
#define CMD_MAX_REMEMBERED_UIDS 100000

/* One command channel of a uid and the last seq a sync returned from it. */
typedef struct cmd_pos {
    uint8_t type;
    uint64_t seq;
    char *id;
    uint32_t id_len;
} cmd_pos;

typedef struct cmd_memory {
    cmd_pos *pos;
    size_t n;
} cmd_memory;

static mp_map *g_remembered; /* uid -> cmd_memory */

static void memory_free(void *p) {
    cmd_memory *m = p;
    for (size_t i = 0; i < m->n; i++) free(m->pos[i].id);
    free(m->pos);
    free(m);
}

static void remember(mp_str uid, cmd_memory *m) {
    if (!g_remembered) g_remembered = map_new();
    if (map_count(g_remembered) >= CMD_MAX_REMEMBERED_UIDS && !map_get(g_remembered, uid.p, uid.len)) {
        LOG_WARN("api", "more than %d uids with unacknowledged /message/sync; forgetting them all",
                 CMD_MAX_REMEMBERED_UIDS);
        map_free(g_remembered, memory_free);
        g_remembered = map_new();
    }
    cmd_memory *old = map_put(g_remembered, uid.p, uid.len, m);
    if (old) memory_free(old);
}

void api_cmd_free(void) {
    if (g_remembered) map_free(g_remembered, memory_free);
    g_remembered = NULL;
}

/* ---- /message/sync ------------------------------------------------------------------------ */

/* A command channel of the uid and its read pointer, copied out of the scan. */
typedef struct cmd_chan {
    uint8_t type;
    uint64_t read_to;
    mp_str id; /* owned */
} cmd_chan;

typedef struct chan_list {
    cmd_chan *v;
    size_t n, cap;
} chan_list;

static int collect_cmd_chan(void *ctx, uint8_t type, mp_str id, const store_conv *c) {
    chan_list *l = ctx;
    if (c->type != 1 && !chan_is_cmd(id)) return 0;
    if (l->n == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 8;
        l->v = mp_realloc(l->v, l->cap * sizeof *l->v);
    }
    l->v[l->n++] = (cmd_chan){type, c->readed_to_seq, {mp_strndup(id.p, id.len), id.len}};
    return 0;
}

/* A message found, with what is needed to order and remember it. */
typedef struct found {
    int64_t message_id;
    size_t chan;  /* index into the chan_list */
    uint64_t seq;
    json_t *json;
} found;

typedef struct found_list {
    found *v;
    size_t n, cap;
    size_t chan;
} found_list;

static int collect_message(void *ctx, const msg_fields *m) {
    found_list *f = ctx;
    if (f->n == f->cap) {
        f->cap = f->cap ? f->cap * 2 : 32;
        f->v = mp_realloc(f->v, f->cap * sizeof *f->v);
    }
    f->v[f->n++] = (found){m->message_id, f->chan, m->seq, message_resp_json(m)};
    return 0;
}

static int by_message_id(const void *a, const void *b) {
    int64_t x = ((const found *)a)->message_id, y = ((const found *)b)->message_id;
    return x < y ? -1 : x > y;
}

/* Unseen commands of every command channel (each at most `limit`), in one read txn. */
static int read_commands(mp_str uid, uint64_t limit, chan_list *chans, found_list *out) {
    store_rtxn *tx;
    int rc = store_rtxn_begin(im_store(), &tx);
    if (rc != MP_OK) return rc;
    rc = store_scan_convs(tx, uid, collect_cmd_chan, chans);
    for (size_t i = 0; rc == MP_OK && i < chans->n; i++) {
        out->chan = i;
        cmd_chan *c = &chans->v[i];
        if (c->read_to == UINT64_MAX) continue;
        rc = store_scan_messages(tx, c->type, c->id, c->read_to + 1, UINT64_MAX, 0, (size_t)limit, collect_message,
                                 out);
        if (rc == MP_ENOTFOUND) rc = MP_OK;
    }
    store_rtxn_end(tx);
    return rc;
}

/* Remember, per channel, the last seq among the first `kept` (sorted) messages. */
static cmd_memory *positions(const chan_list *chans, const found_list *f, size_t kept) {
    cmd_memory *m = mp_calloc(1, sizeof *m);
    uint64_t *last = mp_calloc(chans->n ? chans->n : 1, sizeof *last);
    for (size_t i = 0; i < kept; i++)
        if (f->v[i].seq > last[f->v[i].chan]) last[f->v[i].chan] = f->v[i].seq;
    m->pos = mp_calloc(chans->n ? chans->n : 1, sizeof *m->pos);
    for (size_t i = 0; i < chans->n; i++) {
        if (!last[i]) continue;
        const cmd_chan *c = &chans->v[i];
        m->pos[m->n++] = (cmd_pos){c->type, last[i], mp_strndup(c->id.p, c->id.len), c->id.len};
    }
    free(last);
    return m;
}

static void chans_free(chan_list *l) {
    for (size_t i = 0; i < l->n; i++) free((void *)l->v[i].id.p);
    free(l->v);
}

void api_message_sync(api_req *r) {
    json_t *root = api_parse_object(r);
    if (!root) return;
    ju j;
    ju_init(&j, root);
    mp_str uid = ju_str(&j, "uid");
    ju_uint(&j, "message_seq", UINT64_MAX); /* accepted and ignored, as in WuKongIM */
    int64_t limit = ju_int(&j, "limit", INT64_MIN, INT64_MAX);
    if (!j.failed && ju_blank(uid)) ju_fail(&j, "uid is required");
    if (!j.failed && !im_valid_id(uid)) ju_fail(&j, "uid must not contain '@', '#' or '&' (nor be too long)");
    if (!j.failed && limit < 0) ju_fail(&j, "limit must not be negative");
    if (j.failed) {
        api_reply_error(r, 400, "%s", j.err);
        json_decref(root);
        return;
    }
    if (api_cfg()->disable_cmd_message_sync) {
        json_decref(root);
        api_reply_json(r, 200, json_array());
        return;
    }
    uint64_t lim = limit == 0 ? CMD_SYNC_DEFAULT_LIMIT : (uint64_t)MP_MIN(limit, CMD_SYNC_MAX_LIMIT);
    chan_list chans = {0};
    found_list f = {0};
    int rc = read_commands(uid, lim, &chans, &f);
    size_t kept = rc == MP_OK ? MP_MIN(f.n, (size_t)lim) : 0;
    json_t *arr = json_array();
    if (rc == MP_OK) {
        if (f.n) qsort(f.v, f.n, sizeof *f.v, by_message_id); /* oldest first, across channels */
        for (size_t i = 0; i < kept; i++) json_array_append(arr, f.v[i].json);
        remember(uid, positions(&chans, &f, kept));
    }
    for (size_t i = 0; i < f.n; i++) json_decref(f.v[i].json);
    free(f.v);
    chans_free(&chans);
    json_decref(root);
    if (rc != MP_OK) {
        json_decref(arr);
        api_reply_error(r, 500, "reading command messages failed: %s", mp_strerror(rc));
        return;
    }
    api_reply_json(r, 200, arr);
}

/* ---- /message/syncack --------------------------------------------------------------------- */

typedef struct ack_wait {
    api_req *r;
    size_t left;
    int failed;
    const char *error;
} ack_wait;

static void ack_done(void *ctx, const im_result *res) {
    ack_wait *w = ctx;
    if (!api_im_ok(res) && !w->failed) {
        w->failed = 1;
        w->error = res->error;
    }
    if (--w->left) return;
    if (w->failed) api_reply_error(w->r, 400, "acknowledging failed: %s", w->error ? w->error : "store error");
    else api_reply_ok(w->r);
    free(w);
}

void api_message_syncack(api_req *r) {
    json_t *root = api_parse_object(r);
    if (!root) return;
    ju j;
    ju_init(&j, root);
    mp_str uid = ju_str(&j, "uid");
    uint64_t last = ju_uint(&j, "last_message_seq", UINT64_MAX);
    if (!j.failed && ju_blank(uid)) ju_fail(&j, "uid is required");
    if (!j.failed && last == 0) ju_fail(&j, "last_message_seq is required (not 0)");
    if (j.failed) {
        api_reply_error(r, 400, "%s", j.err);
        json_decref(root);
        return;
    }
    cmd_memory *m = api_cfg()->disable_cmd_message_sync || !g_remembered
                        ? NULL
                        : map_del(g_remembered, uid.p, uid.len);
    if (!m || m->n == 0) {
        if (m) memory_free(m);
        json_decref(root);
        api_reply_ok(r);
        return;
    }
    ack_wait *w = mp_calloc(1, sizeof *w);
    w->r = r;
    w->left = m->n;
    for (size_t i = 0; i < m->n; i++) {
        cmd_pos *p = &m->pos[i];
        im_conv_advance(uid, p->type, (mp_str){p->id, p->id_len}, p->seq, ack_done, w);
    }
    memory_free(m);
    json_decref(root);
}
