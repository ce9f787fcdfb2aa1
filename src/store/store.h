/* store.h - durable storage on LMDB (one environment in the data dir).
 *
 * Threads: one writer thread owns all writes. Callers on any thread hand it work with
 * store_submit(); the writer runs many submitted functions inside ONE write transaction
 * (group commit), commits (fsync per commit in STORE_SYNC_ALWAYS mode) and only then calls
 * each done callback, on the writer thread. Reads run on any thread inside a read
 * transaction (store_rtxn_begin); views returned by read functions point into the LMDB map
 * and stay valid until store_rtxn_end().
 *
 * Keys are big-endian so ranges sort: messages by (channel, seq); indexes message_id ->
 * (channel, seq) and (channel, client_msg_no) -> seq; channel info; channel last seq;
 * subscriber / blacklist / whitelist sets; device tokens; conversations by (uid, channel);
 * system uids. A channel is (channel_type, channel_id) with the STORED id (the fake id
 * "a@b" for person channels). */
#ifndef MP_STORE_H
#define MP_STORE_H

#include "../common/metrics.h"
#include "../common/mp.h"
#include "../core/msg.h"

typedef struct store store;
typedef struct store_wtxn store_wtxn;
typedef struct store_rtxn store_rtxn;

enum store_sync_mode {
    STORE_SYNC_ALWAYS = 0,   /* fsync every group commit (default; nothing acknowledged is lost) */
    STORE_SYNC_INTERVAL = 1, /* fsync every sync_interval_ms; a crash can lose that interval */
};

/* Re-apply one message-log record after a crash (store_submit_logged), inside a write
 * transaction at store_open. Returns 1 when applied, 0 when LMDB already has the record's
 * writes (records are replayed from the oldest one the log still holds, so most are
 * skipped this way), or an MP_E* error. */
typedef int (*store_replay_fn)(store_wtxn *txn, const uint8_t *rec, size_t len);

typedef struct store_options {
    const char *dir;            /* created if missing */
    int sync_mode;
    uint32_t sync_interval_ms;  /* STORE_SYNC_INTERVAL only; 0 = default 100 */
    uint64_t map_size;          /* bytes; 0 = default (64 GiB, sparse) */
    uint32_t max_batch;         /* max submitted ops per commit; 0 = default 4096 */
    store_replay_fn replay;     /* needed when the message log holds records */
    uint64_t log_file_size;     /* message log: bytes per file before switching; 0 = 32 MiB */
    int no_message_log;         /* STORE_SYNC_ALWAYS without the log: SENDACK after the commit
                                 * (a log left by an earlier run is still replayed at open) */
    uint32_t apply_interval_ms; /* with the log: least time between LMDB commit starts while
                                 * less than max_batch ops wait (bigger, cheaper commits) */
} store_options;

/* Open (or create) the store and start the writer thread. */
int store_open(const store_options *opt, store **out);
/* Finish every submitted op (done callbacks run), stop the writer, close the environment. */
void store_close(store *s);

/* ---- writes ---------------------------------------------------------------------- */

/* Runs on the writer thread inside the batch transaction. Return MP_OK to keep the op's
 * changes, or an error code to discard them (only this op's changes: the batch is then
 * re-run with each op in a nested transaction). When a store_txn_* call fails, return its error: an op whose LMDB
 * calls failed is discarded even if it returns MP_OK. fn may run more than once (the
 * writer re-runs a whole batch after growing a full map or after an op failed), so it
 * must have no effects outside the transaction except on its own arg, and a later run
 * must overwrite whatever an earlier one left in arg. */
typedef int (*store_write_fn)(store_wtxn *txn, void *arg);
/* Called on the writer thread once the op's batch is durable (status = fn's result), or
 * failed (status = MP_EIO, nothing of the batch was kept). Must be quick and thread-safe
 * (typically: post a message to a worker). arg is owned by the caller. */
typedef void (*store_done_fn)(void *arg, int status);

/* Thread-safe, never blocks on I/O. fn and done may be NULL (done then not called); an op
 * with fn == NULL is a barrier: done(arg, MP_OK) runs once every op submitted before it is
 * committed. Returns MP_ECLOSED once store_close() has started (also from done callbacks
 * running during the final drain); done is then not called. */
int store_submit(store *s, store_write_fn fn, store_done_fn done, void *arg);

/* A write made durable by the message log first (msglog.h), for message appends: in
 * STORE_SYNC_ALWAYS mode rec (len bytes, copied) is appended to the log and fdatasync'ed
 * with the others of its batch, then logged(arg, MP_OK) runs on the log thread (the
 * message is durable: acknowledge it), then fn runs in an LMDB batch as for store_submit
 * and done follows the commit. If the process dies in between, store_open replays rec
 * with the replay function. Order with every other submitted op is kept. logged may be
 * NULL. A logged op that cannot be written to the log or applied to LMDB stops the
 * process (its sender may have been acknowledged; the log keeps it for the restart).
 * In STORE_SYNC_INTERVAL mode there is no log: logged(arg, status) runs just before done,
 * after the commit. Returns as store_submit. */
typedef void (*store_logged_fn)(void *arg, int status);
/* 1 when logged ops are acknowledged before their LMDB commit (the message log is on):
 * readers that must see every acknowledged write first wait for a barrier (store_submit
 * with fn NULL). */
int store_logging(const store *s);
int store_submit_logged(store *s, const uint8_t *rec, size_t len, store_write_fn fn, store_logged_fn logged,
                        store_done_fn done, void *arg);

/* Operations usable inside a store_write_fn.
 * Keys are limited by LMDB to STORE_MAX_KEY bytes; a call whose key would be longer returns
 * MP_ETOOBIG. Sizes: channel key = 3 + id; message = channel key + 8; client_msg_no index =
 * channel key + client_msg_no; set member = channel key + uid; conversation = 2 + uid +
 * channel key; device = 3 + uid; system uid = uid (must be non-empty). */
#define STORE_MAX_KEY 511
typedef struct store_channel_info {
    uint8_t ban, disband, send_ban, large, allow_stranger;
    uint64_t created_ms, updated_ms;
} store_channel_info;

enum store_set { STORE_SUBSCRIBERS = 0, STORE_BLACKLIST = 1, STORE_WHITELIST = 2 };

typedef struct store_conv {
    uint8_t type;              /* 0 chat, 1 command */
    uint64_t readed_to_seq;
    uint64_t deleted_at_seq;
    uint64_t created_at_ns;
    uint64_t updated_at_ns;
} store_conv;

typedef struct store_device {
    mp_str token;   /* view */
    uint8_t level;  /* 0 slave, 1 master */
} store_device;

/* Append a persisted message. f->seq must be the channel's last seq + 1 (else MP_EINVAL);
 * writes the message, the message_id and client_msg_no indexes and the channel last seq. */
int store_txn_append_message(store_wtxn *t, const msg_fields *f);
int store_txn_get_last_seq(store_wtxn *t, uint8_t type, mp_str id, uint64_t *seq);
int store_txn_put_channel_info(store_wtxn *t, uint8_t type, mp_str id, const store_channel_info *info);
int store_txn_get_channel_info(store_wtxn *t, uint8_t type, mp_str id, store_channel_info *info); /* MP_ENOTFOUND */
/* present = 1 adds uid to the set, 0 removes it (absent is fine). */
int store_txn_set_member(store_wtxn *t, int set, uint8_t type, mp_str id, mp_str uid, int present);
int store_txn_clear_set(store_wtxn *t, int set, uint8_t type, mp_str id);
int store_txn_put_device(store_wtxn *t, mp_str uid, uint8_t device_flag, mp_str token, uint8_t level);
int store_txn_get_conv(store_wtxn *t, mp_str uid, uint8_t type, mp_str id, store_conv *c); /* MP_ENOTFOUND */
int store_txn_put_conv(store_wtxn *t, mp_str uid, uint8_t type, mp_str id, const store_conv *c);
int store_txn_del_conv(store_wtxn *t, mp_str uid, uint8_t type, mp_str id);
int store_txn_set_sysuid(store_wtxn *t, mp_str uid, int present);

/* ---- reads (any thread) ------------------------------------------------------------ */

/* Keep read transactions short and never open a second one on a thread that holds one:
 * growing a full map waits (up to 5 s) for every open read transaction to end. */
int store_rtxn_begin(store *s, store_rtxn **out);
void store_rtxn_end(store_rtxn *r);

/* 0 when the channel has no message. */
int store_get_last_seq(store_rtxn *r, uint8_t type, mp_str id, uint64_t *seq);
int store_get_channel_info(store_rtxn *r, uint8_t type, mp_str id, store_channel_info *info); /* MP_ENOTFOUND */
int store_get_message(store_rtxn *r, uint8_t type, mp_str id, uint64_t seq, msg_fields *out); /* MP_ENOTFOUND */
int store_get_message_by_id(store_rtxn *r, int64_t message_id, msg_fields *out);
int store_get_message_by_client_msg_no(store_rtxn *r, uint8_t type, mp_str id, mp_str client_msg_no, msg_fields *out);

/* Visit messages with lo <= seq <= hi (hi = UINT64_MAX for unbounded), ascending, or
 * descending when reverse != 0, at most limit of them (0 = no limit). cb returns nonzero
 * to stop. */
typedef int (*store_msg_cb)(void *ctx, const msg_fields *m);
int store_scan_messages(store_rtxn *r, uint8_t type, mp_str id, uint64_t lo, uint64_t hi, int reverse, size_t limit,
                        store_msg_cb cb, void *ctx);

typedef int (*store_uid_cb)(void *ctx, mp_str uid);
int store_scan_set(store_rtxn *r, int set, uint8_t type, mp_str id, store_uid_cb cb, void *ctx);
int store_set_contains(store_rtxn *r, int set, uint8_t type, mp_str id, mp_str uid); /* 1 yes, 0 no, <0 MP_E* */
/* Count members of a set (for "has any whitelist entry"). */
int store_set_count(store_rtxn *r, int set, uint8_t type, mp_str id, uint64_t *count);

int store_get_device(store_rtxn *r, mp_str uid, uint8_t device_flag, store_device *out); /* MP_ENOTFOUND */

int store_get_conv(store_rtxn *r, mp_str uid, uint8_t type, mp_str id, store_conv *c); /* MP_ENOTFOUND */
typedef int (*store_conv_cb)(void *ctx, uint8_t type, mp_str id, const store_conv *c);
int store_scan_convs(store_rtxn *r, mp_str uid, store_conv_cb cb, void *ctx);

int store_scan_sysuids(store_rtxn *r, store_uid_cb cb, void *ctx);

/* Every channel that has info or messages (for start-up and admin listing). */
typedef int (*store_chan_cb)(void *ctx, uint8_t type, mp_str id);
int store_scan_channels(store_rtxn *r, store_chan_cb cb, void *ctx);

/* Set reads inside a write op (e.g. delete the conversation rows of every subscriber).
 * cb must not change the set it is visiting. */
int store_txn_scan_set(store_wtxn *t, int set, uint8_t type, mp_str id, store_uid_cb cb, void *ctx);
int store_txn_set_contains(store_wtxn *t, int set, uint8_t type, mp_str id, mp_str uid); /* 1 yes, 0 no, <0 MP_E* */

/* ---- generic key/value rows ---------------------------------------------------------
 * Small state of other modules (stream event states, plugin bindings, ...). `ns` keeps
 * modules apart; 1 + key.len must stay within STORE_MAX_KEY (else MP_ETOOBIG on put).
 * Values are opaque bytes; views stay valid as for other reads. */
enum store_kv_ns { STORE_KV_STREAM = 1, STORE_KV_USER = 2, STORE_KV_CMD = 3 };
int store_txn_put_kv(store_wtxn *t, uint8_t ns, mp_str key, mp_str val);
int store_txn_del_kv(store_wtxn *t, uint8_t ns, mp_str key); /* absent is fine */
int store_txn_get_kv(store_wtxn *t, uint8_t ns, mp_str key, mp_str *val); /* MP_ENOTFOUND */
int store_get_kv(store_rtxn *r, uint8_t ns, mp_str key, mp_str *val);    /* MP_ENOTFOUND */
/* Rows of ns whose key starts with prefix, in key order; cb gets the key without ns and
 * returns nonzero to stop. */
typedef int (*store_kv_cb)(void *ctx, mp_str key, mp_str val);
int store_scan_kv(store_rtxn *r, uint8_t ns, mp_str prefix, store_kv_cb cb, void *ctx);

/* Writer counters (for /varz and tests). Any thread. */
typedef struct store_stats {
    uint64_t submitted;       /* ops accepted by store_submit */
    uint64_t completed;       /* ops finished (done called, or would have been) */
    uint64_t queued;          /* ops waiting for the writer now */
    uint64_t commits;         /* batch transactions committed */
    uint64_t commit_failures; /* batches whose ops all got MP_EIO */
    uint64_t largest_batch;   /* most ops taken in one batch */
    uint64_t map_resizes;     /* times the map was grown after MDB_MAP_FULL */
    uint64_t syncs;           /* explicit fsyncs (STORE_SYNC_INTERVAL mode) */
    uint64_t map_size;        /* current map size in bytes */
    uint64_t nested_reruns;   /* batches re-run op by op because one op failed */
    uint64_t log_records;     /* records appended to the message log */
    uint64_t log_switches;    /* times the log moved to its other file */
    uint64_t log_replayed;    /* records re-applied from the log at start */
    uint64_t barriers;        /* barriers submitted (fn NULL): API reads waiting for the writer */
} store_stats;
void store_get_stats(store *s, store_stats *out);
/* Add the writer's histograms to the sums (any thread): time of each batch transaction
 * from begin to durable commit (ns), and the ops it carried. */
void store_get_histograms(store *s, mt_hist_sum *commit_ns, mt_hist_sum *batch_ops);
/* The message log's append + fdatasync durations (ns). */
void store_get_log_histogram(store *s, mt_hist_sum *flush_ns);

/* Serialization of a message record, exposed for tests and tools. */
size_t store_msg_encoded_size(const msg_fields *f);
void store_msg_encode(const msg_fields *f, uint8_t *out);
int store_msg_decode(const uint8_t *p, size_t len, msg_fields *out); /* views into p */

#endif
