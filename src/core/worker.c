/* worker.c - worker threads and their bounded inboxes. */
#include "worker.h"

#include <pthread.h>
#include <stdio.h>
#include <stdatomic.h>

#include "../common/log.h"
#include "../common/map.h"
#include "../common/tsched.h"

typedef struct item {
    worker_fn fn;
    void *arg;
} item;

/* Growable list used for the overflow lists (local to one worker, no lock). */
typedef struct item_list {
    item *v;
    size_t head, len, cap;
} item_list;

typedef struct inbox {
    pthread_mutex_t mu;
    pthread_cond_t room;
    item *ring;
    size_t cap, head, count;
    item_list overflow[MP_MAX_WORKERS]; /* items this worker could not yet post to dst */
    size_t overflow_total;
    uint64_t blocked; /* under mu: workers that found this ring full and hold overflow for it */
} inbox;

static worker *g_workers[MP_MAX_WORKERS];
static int g_nworkers;
static _Thread_local worker *t_current;
static atomic_int g_stopping; /* set once shutdown has begun: later posts are dropped */
static worker_fn g_stop_fn;

int workers_count(void) { return g_nworkers; }
worker *worker_get(int index) { return g_workers[index]; }
worker *worker_current(void) { return t_current; }

int worker_owner_of_hash(uint64_t hash) { return (int)(hash % (uint64_t)g_nworkers); }
int worker_owner_of(const void *key, size_t len) { return worker_owner_of_hash(mp_hash(key, len)); }

static void list_push(item_list *l, item it) {
    if (l->head + l->len == l->cap) {
        if (l->head > 0) {
            memmove(l->v, l->v + l->head, l->len * sizeof(item));
            l->head = 0;
        } else {
            l->cap = l->cap ? l->cap * 2 : 64;
            l->v = mp_realloc(l->v, l->cap * sizeof(item));
        }
    }
    l->v[l->head + l->len++] = it;
}

/* Try to put one item in dst's ring; 1 on success. Caller holds no lock. A worker that
 * finds the ring full (wait == 0) registers itself, under the same lock, so the consumer
 * wakes it after draining: its prepare handle then retries the overflow. */
static int ring_try_push(inbox *ib, item it, int wait) {
    pthread_mutex_lock(&ib->mu);
    while (ib->count == ib->cap) {
        if (!wait) {
            if (t_current) ib->blocked |= 1ull << t_current->index;
            pthread_mutex_unlock(&ib->mu);
            return 0;
        }
        pthread_cond_wait(&ib->room, &ib->mu);
    }
    ib->ring[(ib->head + ib->count) % ib->cap] = it;
    ib->count++;
    pthread_mutex_unlock(&ib->mu);
    return 1;
}

void worker_post(int dst, worker_fn fn, void *arg) {
    MP_ASSERT(dst >= 0 && dst < g_nworkers);
    if (atomic_load(&g_stopping)) return; /* shutting down: handles may be closed */
    worker *to = g_workers[dst];
    item it = {fn, arg};
    worker *self = t_current;
    if (!self) {
        ring_try_push(to->inbox, it, 1);
        uv_async_send(&to->wake);
        return;
    }
    inbox *mine = self->inbox;
    item_list *ov = &mine->overflow[dst];
    /* Keep order: once something overflowed to dst, later items queue behind it. */
    if (ov->len == 0 && ring_try_push(to->inbox, it, 0)) {
        uv_async_send(&to->wake);
        return;
    }
    list_push(ov, it);
    mine->overflow_total++;
}

/* Runs before each poll: move overflowed items into their destinations where room allows. */
static void on_overflow_flush(uv_prepare_t *h) {
    worker *self = h->data;
    inbox *mine = self->inbox;
    if (mine->overflow_total == 0) return;
    for (int d = 0; d < g_nworkers; d++) {
        item_list *ov = &mine->overflow[d];
        int moved = 0;
        while (ov->len > 0 && ring_try_push(g_workers[d]->inbox, ov->v[ov->head], 0)) {
            ov->head++;
            ov->len--;
            mine->overflow_total--;
            moved = 1;
        }
        if (ov->len == 0) ov->head = 0;
        if (moved) uv_async_send(&g_workers[d]->wake);
    }
}

/* Drain the inbox in bounded chunks so one busy producer cannot starve I/O. */
static void on_wake(uv_async_t *h) {
    worker *w = h->data;
    inbox *ib = w->inbox;
    item batch[256];
    for (int rounds = 0; rounds < 64; rounds++) {
        size_t n = 0;
        pthread_mutex_lock(&ib->mu);
        while (n < MP_ARRAY_LEN(batch) && ib->count > 0) {
            batch[n++] = ib->ring[ib->head];
            ib->head = (ib->head + 1) % ib->cap;
            ib->count--;
        }
        if (n) pthread_cond_broadcast(&ib->room);
        uint64_t blocked = n ? ib->blocked : 0;
        if (n) ib->blocked = 0;
        size_t left = ib->count;
        pthread_mutex_unlock(&ib->mu);
        for (int p = 0; blocked; p++, blocked >>= 1)
            if (blocked & 1) uv_async_send(&g_workers[p]->wake);
        for (size_t i = 0; i < n; i++) batch[i].fn(w, batch[i].arg);
        if (left == 0) return;
    }
    uv_async_send(&w->wake); /* more work remains: come back after polling I/O */
}

int workers_init(int n, uint32_t capacity) {
    MP_ASSERT(n >= 1 && n <= MP_MAX_WORKERS);
    g_nworkers = n;
    atomic_store(&g_stopping, 0);
    g_stop_fn = NULL;
    for (int i = 0; i < n; i++) {
        worker *w = mp_calloc(1, sizeof *w);
        inbox *ib = mp_calloc(1, sizeof *ib);
        pthread_mutex_init(&ib->mu, NULL);
        pthread_cond_init(&ib->room, NULL);
        ib->cap = capacity ? capacity : 65536;
        ib->ring = mp_calloc(ib->cap, sizeof(item));
        w->inbox = ib;
        w->index = i;
        int rc = uv_loop_init(&w->loop);
        if (rc) {
            LOG_ERROR("worker", "uv_loop_init failed: %s", uv_strerror(rc));
            return MP_EIO;
        }
        w->loop.data = w;
        uv_async_init(&w->loop, &w->wake, on_wake);
        w->wake.data = w;
        uv_prepare_init(&w->loop, &w->overflow_flush);
        w->overflow_flush.data = w;
        uv_prepare_start(&w->overflow_flush, on_overflow_flush);
        g_workers[i] = w;
    }
    return MP_OK;
}

/* "magpie-w<N>": top, perf and gdb then tell the workers apart. Worker 0 runs on the main
 * thread, whose name is the process name (pgrep, --server-pid auto): it keeps "magpie". */
static void name_thread(int index) {
    if (index == 0) return;
    char name[16];
    snprintf(name, sizeof name, "magpie-w%d", index);
    pthread_setname_np(pthread_self(), name);
}

static void *thread_main(void *arg) {
    worker *w = arg;
    name_thread(w->index);
    tsched_latency_thread(w->index ? "magpie-w" : "magpie"); /* every message passes a worker */
    t_current = w;
    uv_run(&w->loop, UV_RUN_DEFAULT);
    t_current = NULL;
    return NULL;
}

void workers_run(void) {
    for (int i = 1; i < g_nworkers; i++) pthread_create(&g_workers[i]->thread, NULL, thread_main, g_workers[i]);
    thread_main(g_workers[0]);
}

static void close_own_handles(worker *w, void *arg) {
    (void)arg;
    if (g_stop_fn) g_stop_fn(w, NULL);
    uv_prepare_stop(&w->overflow_flush);
    uv_close((uv_handle_t *)&w->overflow_flush, NULL);
    uv_close((uv_handle_t *)&w->wake, NULL);
}

void workers_stop(worker_fn stop_fn) {
    g_stop_fn = stop_fn;
    for (int i = 0; i < g_nworkers; i++) worker_post(i, close_own_handles, NULL);
    atomic_store(&g_stopping, 1);
}

void workers_destroy_begin(void) {
    for (int i = 1; i < g_nworkers; i++) pthread_join(g_workers[i]->thread, NULL);
}

void workers_destroy(void) {
    for (int i = 0; i < g_nworkers; i++) {
        worker *w = g_workers[i];
        inbox *ib = w->inbox;
        uv_run(&w->loop, UV_RUN_NOWAIT);
        if (uv_loop_close(&w->loop) != 0) LOG_WARN("worker", "loop %d closed with open handles", i);
        for (int d = 0; d < MP_MAX_WORKERS; d++) free(ib->overflow[d].v);
        free(ib->ring);
        pthread_mutex_destroy(&ib->mu);
        pthread_cond_destroy(&ib->room);
        free(ib);
        free(w);
        g_workers[i] = NULL;
    }
    g_nworkers = 0;
}

static void gather_back(worker *w, void *arg) {
    (void)w;
    worker_gather *g = arg;
    if (--g->left == 0) g->finish(g);
}

static void gather_visit(worker *w, void *arg) {
    worker_gather *g = arg;
    g->collect(w, g);
    worker_post(g->origin, gather_back, g);
}

void worker_gather_start(worker_gather *g) {
    worker *self = worker_current();
    MP_ASSERT(self);
    g->origin = self->index;
    g->left = workers_count();
    for (int i = 0; i < workers_count(); i++) worker_post(i, gather_visit, g);
}

size_t worker_inbox_depth(int index) {
    inbox *ib = g_workers[index]->inbox;
    pthread_mutex_lock(&ib->mu);
    size_t n = ib->count;
    pthread_mutex_unlock(&ib->mu);
    return n;
}
