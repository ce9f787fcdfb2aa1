/* test_worker.c - worker threads and their bounded inboxes (src/core/worker.c).
 *
 * One worker set for the whole file (2 workers, inbox capacity 16, so thousands of posts
 * go through the overflow lists and the foreign-thread wait): the group setup starts them
 * with worker 0 on a runner thread, the group teardown stops them with workers_stop /
 * workers_destroy_begin / workers_destroy. Producers are both worker threads and two
 * foreign threads. Checked: every post runs exactly once, on its destination's thread
 * (worker_current() == destination), in order per producer -> destination pair, args are
 * owned by the callee (each is freed there: ASan/LSan catch double runs and losses), and
 * no stall: all work completes without anything else waking the producers.
 *
 * Callbacks run on worker threads, so they never call cmocka asserts: they count
 * problems in atomics that the test thread checks. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>

#include "core/worker.h"

#define NW 2
#define CAPACITY 16
#define PRODUCERS 4 /* 0, 1: worker threads; 2: the test thread; 3: another foreign thread */
#define STALL_MS 5000

static pthread_t g_runner;

/* Per destination, touched only on that destination's thread. */
typedef struct dst_state {
    uint64_t next_seq[PRODUCERS];
    uint64_t ran;
} dst_state;
static dst_state g_dst[NW];

static atomic_int g_wrong_thread, g_out_of_order;
static atomic_uint_fast64_t g_done;

typedef struct rec {
    int producer, dst;
    uint64_t seq;
} rec;

static void on_rec(worker *w, void *arg) {
    rec *r = arg;
    if (worker_current() != w || w != worker_get(r->dst) || w->index != r->dst) atomic_fetch_add(&g_wrong_thread, 1);
    dst_state *d = &g_dst[w->index];
    if (d->next_seq[r->producer] != r->seq) atomic_fetch_add(&g_out_of_order, 1);
    d->next_seq[r->producer] = r->seq + 1;
    d->ran++;
    free(r); /* the arg moved with the post: the callee frees it */
    atomic_fetch_add(&g_done, 1);
}

/* Producer-side sequence numbers: worker producers touch theirs on their own thread; each
 * foreign producer has its own row. */
static uint64_t g_sent[PRODUCERS][NW];

static void post_rec(int producer, int dst) {
    rec *r = mp_malloc(sizeof *r);
    r->producer = producer;
    r->dst = dst;
    r->seq = g_sent[producer][dst]++;
    worker_post(dst, on_rec, r);
}

static void reset_counters(void) {
    memset(g_dst, 0, sizeof g_dst);
    memset(g_sent, 0, sizeof g_sent);
    atomic_store(&g_wrong_thread, 0);
    atomic_store(&g_out_of_order, 0);
    atomic_store(&g_done, 0);
}

static uint64_t now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void nop(worker *w, void *arg) {
    (void)w;
    (void)arg;
}

/* Wait until `want` records ran. Returns 1 if it took a foreign poke to finish (a stall:
 * work was pending but no worker would have woken up for it on its own). */
static int wait_done(uint64_t want) {
    uint64_t start = now_ms();
    while (atomic_load(&g_done) < want) {
        if (now_ms() - start > STALL_MS) break;
        usleep(1000);
    }
    if (atomic_load(&g_done) >= want) return 0;
    fprintf(stderr, "stall: %llu of %llu ran after %d ms; poking the workers\n",
            (unsigned long long)atomic_load(&g_done), (unsigned long long)want, STALL_MS);
    uint64_t pokes = 0;
    while (atomic_load(&g_done) < want) { /* wake every loop so prepare handles run */
        for (int i = 0; i < NW; i++) worker_post(i, nop, NULL);
        pokes++;
        usleep(1000);
        if (pokes > 60000) {
            fprintf(stderr, "still stuck after pokes: %llu of %llu\n", (unsigned long long)atomic_load(&g_done),
                    (unsigned long long)want);
            abort();
        }
    }
    return 1;
}

/* ---- group setup / teardown: one worker set for the file ----------------------------- */

static void *runner_main(void *arg) {
    (void)arg;
    workers_run(); /* worker 0 runs here; returns once its loop ends */
    return NULL;
}

static int group_setup(void **state) {
    (void)state;
    if (workers_init(NW, CAPACITY) != MP_OK) return -1;
    if (workers_count() != NW) return -1;
    for (int i = 0; i < NW; i++)
        if (!worker_get(i) || worker_get(i)->index != i) return -1;
    if (worker_current() != NULL) return -1; /* the test thread is not a worker */
    pthread_create(&g_runner, NULL, runner_main, NULL);
    return 0;
}

static atomic_int g_stop_calls[NW];
static atomic_int g_stop_wrong_thread;

static void stop_fn(worker *w, void *arg) {
    (void)arg;
    if (worker_current() != w) atomic_fetch_add(&g_stop_wrong_thread, 1);
    atomic_fetch_add(&g_stop_calls[w->index], 1);
}

static int group_teardown(void **state) {
    (void)state;
    workers_stop(stop_fn);
    pthread_join(g_runner, NULL); /* workers_run returned: worker 0's loop ended */
    workers_destroy_begin();      /* joins the other worker threads */
    int bad = atomic_load(&g_stop_wrong_thread) != 0;
    for (int i = 0; i < NW; i++) bad |= atomic_load(&g_stop_calls[i]) != 1;
    workers_destroy();
    if (bad) fprintf(stderr, "stop_fn: wrong thread or not exactly once per worker\n");
    return bad ? -1 : 0;
}

/* ---- tests ------------------------------------------------------------------------------ */

/* Every post from a foreign thread runs once, on its destination, in order. */
static void test_foreign_posts(void **state) {
    (void)state;
    reset_counters();
    enum { N = 3000 };
    for (int i = 0; i < N; i++)
        for (int d = 0; d < NW; d++) post_rec(2, d); /* blocks while an inbox is full */
    assert_int_equal(wait_done((uint64_t)N * NW), 0);
    assert_int_equal(atomic_load(&g_wrong_thread), 0);
    assert_int_equal(atomic_load(&g_out_of_order), 0);
    for (int d = 0; d < NW; d++) {
        assert_int_equal(g_dst[d].ran, N);
        assert_int_equal(g_dst[d].next_seq[2], N);
    }
}

/* A post to the current worker is queued, not run inline. */
static atomic_int g_self_ran, g_self_inline, g_self_checked;
static atomic_int g_self_ran_on[NW]; /* per worker: the other worker runs concurrently */

static void self_target(worker *w, void *arg) {
    (void)arg;
    if (worker_current() != w) atomic_fetch_add(&g_wrong_thread, 1);
    atomic_fetch_add(&g_self_ran_on[w->index], 1);
    atomic_fetch_add(&g_self_ran, 1);
}

static void self_poster(worker *w, void *arg) {
    (void)arg;
    int before = atomic_load(&g_self_ran_on[w->index]);
    worker_post(w->index, self_target, NULL);
    if (atomic_load(&g_self_ran_on[w->index]) != before) atomic_fetch_add(&g_self_inline, 1);
    atomic_fetch_add(&g_self_checked, 1);
}

static void test_post_to_self_queues(void **state) {
    (void)state;
    reset_counters();
    atomic_store(&g_self_ran, 0);
    for (int d = 0; d < NW; d++) worker_post(d, self_poster, NULL);
    uint64_t start = now_ms();
    while ((atomic_load(&g_self_checked) < NW || atomic_load(&g_self_ran) < NW) && now_ms() - start < STALL_MS)
        usleep(1000);
    assert_int_equal(atomic_load(&g_self_checked), NW);
    assert_int_equal(atomic_load(&g_self_ran), NW);
    assert_int_equal(atomic_load(&g_self_inline), 0);
    assert_int_equal(atomic_load(&g_wrong_thread), 0);
}

/* Worker producers: each posts `per_dst` records to every destination (itself included) in
 * one callback - far beyond the inbox capacity, so most go through its overflow lists. */
typedef struct burst {
    int per_dst;
    int interleave; /* 1: d0, d1, d0, d1...; 0: all to d0, then all to d1 */
} burst;

static atomic_int g_burst_wrong_thread;

static void produce_burst(worker *w, void *arg) {
    burst *b = arg;
    if (worker_current() != w) atomic_fetch_add(&g_burst_wrong_thread, 1);
    int p = w->index; /* producers 0 and 1 are the workers */
    if (b->interleave) {
        for (int i = 0; i < b->per_dst; i++)
            for (int d = 0; d < NW; d++) post_rec(p, d);
    } else {
        for (int d = 0; d < NW; d++)
            for (int i = 0; i < b->per_dst; i++) post_rec(p, d);
    }
    free(b);
}

static void start_worker_bursts(int per_dst, int interleave) {
    for (int p = 0; p < NW; p++) {
        burst *b = mp_malloc(sizeof *b);
        b->per_dst = per_dst;
        b->interleave = interleave;
        worker_post(p, produce_burst, b);
    }
}

static void check_all(int per_dst_workers, int per_dst_foreign2, int per_dst_foreign3) {
    assert_int_equal(atomic_load(&g_wrong_thread), 0);
    assert_int_equal(atomic_load(&g_burst_wrong_thread), 0);
    assert_int_equal(atomic_load(&g_out_of_order), 0);
    for (int d = 0; d < NW; d++) {
        for (int p = 0; p < NW; p++) assert_int_equal(g_dst[d].next_seq[p], per_dst_workers);
        assert_int_equal(g_dst[d].next_seq[2], per_dst_foreign2);
        assert_int_equal(g_dst[d].next_seq[3], per_dst_foreign3);
        assert_int_equal(g_dst[d].ran, (uint64_t)per_dst_workers * NW + per_dst_foreign2 + per_dst_foreign3);
    }
    for (int p = 0; p < NW; p++)
        for (int d = 0; d < NW; d++) assert_int_equal(g_sent[p][d], per_dst_workers);
}

/* Only the two workers produce: after the bursts nothing else wakes them, so a producer
 * whose overflow list still holds items must be woken by the consumer draining its inbox. */
static void test_worker_overflow_no_stall(void **state) {
    (void)state;
    reset_counters();
    enum { N = 4000 };
    start_worker_bursts(N, 0);
    int stalled = wait_done((uint64_t)N * NW * NW);
    check_all(N, 0, 0);
    if (stalled) fail_msg("overflowed posts waited for an unrelated wake-up (see worker.c on_overflow_flush)");
}

static void test_worker_overflow_interleaved(void **state) {
    (void)state;
    reset_counters();
    enum { N = 4000 };
    start_worker_bursts(N, 1);
    int stalled = wait_done((uint64_t)N * NW * NW);
    check_all(N, 0, 0);
    if (stalled) fail_msg("overflowed posts waited for an unrelated wake-up (see worker.c on_overflow_flush)");
}

static void *foreign_producer(void *arg) {
    int n = *(int *)arg;
    for (int i = 0; i < n; i++)
        for (int d = 0; d < NW; d++) post_rec(3, d);
    return NULL;
}

/* Everything at once: both workers burst while two foreign threads post. Order must hold
 * per producer -> destination pair, and every record runs exactly once. */
static void test_mixed_producers(void **state) {
    (void)state;
    reset_counters();
    enum { NWORK = 5000, NFOREIGN = 3000 };
    int nf = NFOREIGN;
    pthread_t t;
    start_worker_bursts(NWORK, 1);
    pthread_create(&t, NULL, foreign_producer, &nf);
    for (int i = 0; i < NFOREIGN; i++)
        for (int d = NW - 1; d >= 0; d--) post_rec(2, d);
    pthread_join(t, NULL);
    int stalled = wait_done((uint64_t)NWORK * NW * NW + 2ull * NFOREIGN * NW);
    check_all(NWORK, NFOREIGN, NFOREIGN);
    if (stalled) fail_msg("overflowed posts waited for an unrelated wake-up (see worker.c on_overflow_flush)");
}

/* Chains: a record hops w0 -> w1 -> w0 ... carrying a counter; thousands of chains at once
 * with a tiny inbox must neither lose a hop nor deadlock (workers never block on each
 * other). */
typedef struct hop {
    int left;
} hop;
static atomic_int g_chains_done, g_hop_wrong;

static void do_hop(worker *w, void *arg) {
    hop *h = arg;
    if (worker_current() != w) atomic_fetch_add(&g_hop_wrong, 1);
    if (--h->left == 0) {
        free(h);
        atomic_fetch_add(&g_chains_done, 1);
        return;
    }
    worker_post((w->index + 1) % NW, do_hop, h);
}

static void test_ping_pong_chains(void **state) {
    (void)state;
    enum { CHAINS = 2000, HOPS = 20 };
    atomic_store(&g_chains_done, 0);
    for (int i = 0; i < CHAINS; i++) {
        hop *h = mp_malloc(sizeof *h);
        h->left = HOPS;
        worker_post(i % NW, do_hop, h);
    }
    uint64_t start = now_ms();
    while (atomic_load(&g_chains_done) < CHAINS && now_ms() - start < STALL_MS) usleep(1000);
    int stalled = atomic_load(&g_chains_done) < CHAINS;
    while (atomic_load(&g_chains_done) < CHAINS) { /* see wait_done: poke to finish */
        for (int i = 0; i < NW; i++) worker_post(i, nop, NULL);
        usleep(1000);
    }
    assert_int_equal(atomic_load(&g_hop_wrong), 0);
    if (stalled) fail_msg("chains stalled until poked");
}

static void test_owner_of(void **state) {
    (void)state;
    int seen[NW] = {0};
    char k[32];
    for (int i = 0; i < 1000; i++) {
        int n = snprintf(k, sizeof k, "uid-%d", i);
        int o = worker_owner_of(k, (size_t)n);
        assert_true(o >= 0 && o < NW);
        assert_int_equal(o, worker_owner_of(k, (size_t)n)); /* stable */
        seen[o]++;
    }
    for (int i = 0; i < NW; i++) assert_true(seen[i] > 0); /* both workers own something */
    assert_true(worker_inbox_depth(0) <= CAPACITY);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_owner_of),
        cmocka_unit_test(test_foreign_posts),
        cmocka_unit_test(test_post_to_self_queues),
        cmocka_unit_test(test_worker_overflow_no_stall),
        cmocka_unit_test(test_worker_overflow_interleaved),
        cmocka_unit_test(test_mixed_producers),
        cmocka_unit_test(test_ping_pong_chains),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
