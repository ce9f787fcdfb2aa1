/* sysuid.c - the set of system accounts shared by every thread (sysuid.h).
 * Every send asks whether its sender is a system account, so the common case (no system
 * accounts at all) is one atomic load; otherwise a read lock around one hash lookup. */
#include "sysuid.h"

#include <pthread.h>
#include <stdatomic.h>

#include "../common/log.h"
#include "../common/map.h"
#include "msg.h"

/* Writers first: glibc's default lets a steady stream of readers (every send) starve an
 * /user/systemuids_add forever. */
static pthread_rwlock_t g_lock = PTHREAD_RWLOCK_WRITER_NONRECURSIVE_INITIALIZER_NP;
static mp_map *g_set;          /* uid -> &g_present; guarded by g_lock */
static atomic_size_t g_count;  /* members of g_set, readable without the lock */
static char g_present;

/* Caller holds the write lock. */
static void put_locked(mp_str uid) {
    if (!g_set) g_set = map_new();
    map_put(g_set, uid.p, uid.len, &g_present);
    atomic_store(&g_count, map_count(g_set));
}

void sysuid_add(const mp_str *uids, size_t n) {
    pthread_rwlock_wrlock(&g_lock);
    for (size_t i = 0; i < n; i++) put_locked(uids[i]);
    pthread_rwlock_unlock(&g_lock);
}

void sysuid_remove(const mp_str *uids, size_t n) {
    pthread_rwlock_wrlock(&g_lock);
    for (size_t i = 0; g_set && i < n; i++) map_del(g_set, uids[i].p, uids[i].len);
    if (g_set) atomic_store(&g_count, map_count(g_set));
    pthread_rwlock_unlock(&g_lock);
}

int sysuid_is(mp_str uid) {
    if (mp_str_eq_c(uid, MP_SYSTEM_UID)) return 1;
    if (atomic_load(&g_count) == 0) return 0;
    pthread_rwlock_rdlock(&g_lock);
    int found = g_set && map_get(g_set, uid.p, uid.len) != NULL;
    pthread_rwlock_unlock(&g_lock);
    return found;
}

static int load_one(void *ctx, mp_str uid) {
    (void)ctx;
    put_locked(uid);
    return 0;
}

int sysuid_load(store *s) {
    store_rtxn *r;
    int rc = store_rtxn_begin(s, &r);
    if (rc != MP_OK) return rc;
    pthread_rwlock_wrlock(&g_lock);
    map_free(g_set, NULL);
    g_set = NULL;
    atomic_store(&g_count, 0);
    rc = store_scan_sysuids(r, load_one, NULL);
    pthread_rwlock_unlock(&g_lock);
    store_rtxn_end(r);
    if (rc == MP_ENOTFOUND) rc = MP_OK;
    if (rc != MP_OK) LOG_ERROR("sysuid", "cannot load the system uids: %s", mp_strerror(rc));
    return rc;
}

void sysuid_free(void) {
    pthread_rwlock_wrlock(&g_lock);
    map_free(g_set, NULL);
    g_set = NULL;
    atomic_store(&g_count, 0);
    pthread_rwlock_unlock(&g_lock);
}
