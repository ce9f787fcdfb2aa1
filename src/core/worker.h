/* worker.h - worker threads, each with its own libuv loop, and the bounded queues
 * between them (DESIGN.md §3). Work for another worker travels as (fn, arg) on the
 * destination's inbox and is woken by uv_async.
 *
 * Bounds: an inbox holds at most `capacity` items. A worker posting to a full inbox keeps
 * the item in its own per-destination overflow list and retries every loop iteration (it
 * never blocks, so two workers can never deadlock on each other); a non-worker thread
 * (the store writer) waits until there is room. */
#ifndef MP_CORE_WORKER_H
#define MP_CORE_WORKER_H

#include <uv.h>

#include "../common/mp.h"

#define MP_MAX_WORKERS 64

typedef struct worker worker;
typedef void (*worker_fn)(worker *w, void *arg);

/* Per-worker module state, owned by the modules that set it. */
struct conn_mgr;
struct chan_mgr;
struct presence_mgr;

struct worker {
    int index;
    uv_loop_t loop;
    uv_async_t wake;
    uv_prepare_t overflow_flush;
    pthread_t thread;
    struct conn_mgr *conns;
    struct presence_mgr *presence;
    struct chan_mgr *chans;
    void *inbox; /* private to worker.c */
};

/* Create n workers (loops initialised, not running). */
int workers_init(int n, uint32_t capacity);
/* Run every worker's loop in its own thread, except worker 0 which runs in the caller's
 * thread (this call returns when worker 0's loop ends). */
void workers_run(void);
/* Ask every worker loop to stop once its handles are closed: calls stop_fn on each worker
 * (on that worker's thread); stop_fn must close the worker's handles. */
void workers_stop(worker_fn stop_fn);
/* Join the other worker threads (after workers_run returned); loops stay allocated. */
void workers_destroy_begin(void);
/* Close loops and free the workers (after module state was freed). */
void workers_destroy(void);

int workers_count(void);
worker *worker_get(int index);
/* The worker whose loop runs on this thread, or NULL. */
worker *worker_current(void);

/* Post fn(dst, arg) to run on worker `dst`. Thread-safe; arg ownership moves with it.
 * Posting to the current worker also queues (it does not run inline). */
void worker_post(int dst, worker_fn fn, void *arg);

/* Owner of a key: hash(key) % workers_count(). */
int worker_owner_of(const void *key, size_t len);
/* The same for a key whose mp_hash is already known. */
int worker_owner_of_hash(uint64_t hash);

/* A gather visits every worker: collect() runs on each worker's thread and fills only that
 * worker's part of the job; the job then returns to the calling worker, where finish()
 * runs once every worker has answered. Posting hands the job over, so what collect wrote
 * on the workers is visible to finish without locks. Embed it as the first member of the
 * job; finish owns (and frees) the job. */
typedef struct worker_gather worker_gather;
struct worker_gather {
    int origin; /* set by worker_gather_start */
    int left;
    void (*collect)(worker *w, worker_gather *g);
    void (*finish)(worker_gather *g);
};
/* Start g from the current worker (a worker thread only). */
void worker_gather_start(worker_gather *g);

/* Queue depth (for metrics/tests). */
size_t worker_inbox_depth(int index);

#endif
