/* bench.h - magpie-bench shared types: options, the run context, connections and load
 * threads. Ownership: main.c owns the bench_ctx and the connection array; each bconn is
 * touched only by its load thread while the threads run, and by the main thread before
 * they start and after they are joined. Fields main reads while threads run are atomic. */
#ifndef BENCH_H
#define BENCH_H

#include <pthread.h>
#include <stdatomic.h>
#include <uv.h>

#include "common/buf.h"
#include "hist.h"
#include "proto/crypto.h"

enum bench_workload { WL_SEND, WL_FANOUT, WL_PERSON, WL_IDLE, WL_MIXED };

/* Parts of the mixed workload (also used for per-part figures). */
enum bench_part { PART_PERSON, PART_GROUPS, PART_BIG, PART_N };

typedef struct bench_opts {
    int workload;
    char addr[80];  /* --addr host:port (IPv4) */
    char api[120];  /* --api http://host:port */
    double duration, warmup, drain;
    uint32_t groups, members, online, pairs, window, threads, sources, payload_size;
    uint32_t conns;        /* idle: connections */
    uint32_t group_size;   /* mixed: members of each small group */
    uint32_t verify_every; /* check the msgKey of 1 RECV in this many (1 = every RECV) */
    double ping_interval;  /* seconds between PINGs on every connection */
    double rate;           /* total SENDs per second across all senders; 0 = closed loop */
    int token_auth;
    int json;
    int server_pid; /* 0 = none, -1 = auto */
    char prefix[24];
    const char *ack_log;   /* --ack-log FILE: one line per successful SENDACK, or NULL */
    int sequential_cmn;    /* --cmn seq: client_msg_no without the random-looking head */
} bench_opts;

/* Run phases, advanced by the main thread only. */
enum bench_phase { PH_CONNECT, PH_RUN, PH_DRAIN, PH_QUIT };

enum bc_state { BC_IDLE, BC_CONNECTING, BC_HANDSHAKE, BC_READY, BC_CLOSING, BC_CLOSED };

#define BC_NO_SRC UINT32_MAX

/* A growable bit set indexed by message seq (grows by doubling: no allocation per message). */
typedef struct bitmap {
    uint64_t *w;
    uint32_t nwords;
} bitmap;

/* One window slot of a sender: an unacknowledged SEND. seq 0 = free. */
typedef struct send_slot {
    uint32_t seq;
    uint64_t t_ns; /* monotonic time the SEND was handed to the kernel; 0 = still queued */
} send_slot;

typedef struct bconn {
    uv_tcp_t tcp;
    uv_connect_t creq;
    uv_write_t wreq;
    struct bthread *th;
    uint32_t idx;                /* position in the run's connection array */
    _Atomic uint8_t state;       /* enum bc_state */
    uint8_t handle_open;         /* tcp was uv_tcp_init'ed and not yet closed */
    uint8_t writing;             /* wreq in flight (wout being written) */
    uint8_t dirty;               /* on the thread's flush list */
    uint8_t encrypt;             /* the server sent a key (encryption on) */
    uint8_t version;             /* negotiated protocol version */
    uint8_t alive_at_end;        /* READY when the load stopped: counted for losses */
    uint8_t counted;             /* receiver: READY when the load started (main sets it) */
    uint8_t chan_type;           /* sender: where it sends */
    uint8_t part;                /* enum bench_part (mixed; PART_PERSON otherwise) */
    char uid[64];
    char chan_id[64];            /* sender: target channel (the peer uid for person) */
    uint8_t is_sender;
    uint32_t expect_src;         /* receiver: the sender it expects, or BC_NO_SRC */
    uint32_t n_receivers;        /* sender: receivers online at the start (set by main) */
    uint64_t t_start_ns;         /* monotonic time of the connect attempt */
    uint8_t priv[32];
    crypto_keys keys;
    mp_buf in;                   /* bytes of an incomplete packet */
    mp_buf out, wout;            /* pending output / output being written */
    /* sender */
    uint32_t next_seq;           /* next clientSeq (and payload seq), from 1 */
    uint32_t inflight;
    uint32_t unstamped;          /* SENDs queued in out, their slots' t_ns not yet set */
    send_slot *slots;            /* window entries */
    bitmap acked;                /* seqs with a successful SENDACK */
    /* receiver */
    bitmap got;                  /* distinct seqs received from expect_src */
} bconn;

/* Counters of one load thread; merged by the main thread after join. */
typedef struct bstats {
    uint64_t sent, acked, acked_in_win, ack_failed, ack_unknown;
    uint64_t ack_fail_reason[32];
    uint64_t delivered, delivered_in_win, duplicated, unexpected;
    uint64_t bad_msgkey, bad_payload, proto_errors;
    uint64_t msgkey_checked, recvs;
    uint64_t conn_ok, conn_failed, connack_failed, connack_reason[32];
    uint64_t disconnects, kicked;
    hist sendack;                /* SEND -> SENDACK, ns */
    hist e2e;                    /* payload ts_ns -> RECV, ns */
    hist connect;                /* connect start -> CONNACK, ns */
    uint64_t pings, pongs;
    /* per part (mixed) */
    uint64_t part_acked_in_win[PART_N], part_delivered_in_win[PART_N];
    hist part_sendack[PART_N], part_e2e[PART_N];
} bstats;

typedef struct bench_ctx bench_ctx;

typedef struct bthread {
    bench_ctx *ctx;
    int index;
    pthread_t tid;
    uv_loop_t loop;
    uv_async_t wake;
    uv_timer_t tick;
    uv_prepare_t flush;
    /* msgKeys waiting to be checked together (crypto_recv_msgkey_lanes): their AES passes
     * are done, the MD5s run CRYPTO_MSGKEY_BATCH at a time, as the server computes them. */
    char verify_want[CRYPTO_MSGKEY_BATCH][32];
    uint32_t n_verify;
    bconn **conns;
    uint32_t n;
    uint32_t next_connect;       /* connect phase: next index in conns to start */
    uint32_t connecting;         /* attempts between connect start and CONNACK */
    bconn **dirty;
    uint32_t ndirty;
    uint8_t *rbuf;               /* libuv read buffer, shared by this thread's connections */
    mp_buf plain, enc;           /* scratch for one payload */
    atomic_int seen_phase;       /* the last phase on_wake acted on; read by the main thread:
                                  * once it is PH_DRAIN this thread sends nothing more, so its
                                  * in-flight count is final */
    int printed;                 /* error lines printed so far */
    uint64_t last_ping_ns;
    /* --rate: token bucket refilled by rate_timer */
    uv_timer_t rate_timer;
    double tokens, rate_per_ns;
    uint64_t rate_last_ns;
    bconn **senders;
    uint32_t nsenders, rate_cursor;
    bstats st;
    mp_buf acklog;               /* --ack-log lines not yet written (written every loop turn) */
    int acklog_failed;           /* a write to the ack log failed (reported once) */
    /* read by the main thread while the loop runs */
    _Atomic uint64_t a_settled;  /* connect attempts finished (ok or failed) */
    _Atomic uint64_t a_inflight; /* SENDs without SENDACK */
    _Atomic uint64_t a_acked;    /* successful SENDACKs */
    _Atomic uint64_t a_expected; /* deliveries owed for acknowledged SENDs */
    _Atomic uint64_t a_distinct; /* distinct deliveries received */
    _Atomic uint64_t a_live;     /* connections READY now (0 everywhere: the server went away) */
} bthread;

struct bench_ctx {
    bench_opts o;
    struct sockaddr_in server;
    int bind_source;             /* bind each socket to 127.0.0.(1 + idx % sources) */
    int ack_fd;                  /* --ack-log, opened O_APPEND; -1 without it */
    bconn *conns;
    uint32_t nconns;
    bthread *threads;
    _Atomic int phase;           /* enum bench_phase */
    uint64_t meas_start_ns;      /* monotonic; written before PH_RUN */
    _Atomic uint64_t meas_end_ns; /* monotonic; set before PH_RUN, lowered if the run stops early */
};

/* Set bit i (growing the map); returns the bit's previous value. */
static inline int bm_set(bitmap *b, uint32_t i) {
    uint32_t w = i / 64;
    if (w >= b->nwords) {
        uint32_t n = b->nwords ? b->nwords : 16;
        while (n <= w) n *= 2;
        b->w = mp_realloc(b->w, (size_t)n * sizeof *b->w);
        memset(b->w + b->nwords, 0, (size_t)(n - b->nwords) * sizeof *b->w);
        b->nwords = n;
    }
    uint64_t m = 1ull << (i % 64);
    int old = (b->w[w] & m) != 0;
    b->w[w] |= m;
    return old;
}

/* Word i of the map (0 beyond its end). */
static inline uint64_t bm_word(const bitmap *b, uint32_t i) { return i < b->nwords ? b->w[i] : 0; }

/* Monotonic and wall clocks in nanoseconds. */
uint64_t bench_mono_ns(void);
uint64_t bench_wall_ns(void);

#endif
