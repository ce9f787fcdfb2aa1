/* sysuid.h - system accounts (spec §5.11): uids added with /user/systemuids_add (or only
 * to the cache with /user/systemuids_add_to_cache) that may send to any channel without
 * blacklist, whitelist or subscriber checks, and that skip a person recipient's lists.
 * The built-in system uid "____system" always counts.
 *
 * The set lives in memory, loaded from the store at start-up; the store itself is changed
 * by the IM core (im_sysuids_*). Thread rule: every function may be called on any thread
 * (a rwlock guards the set; a lookup with an empty set takes no lock). */
#ifndef MP_CORE_SYSUID_H
#define MP_CORE_SYSUID_H

#include "../common/mp.h"
#include "../store/store.h"

/* Fill the set from the store (start-up; replaces what was there). */
int sysuid_load(store *s);
/* 1 if uid is the built-in system uid or a system account. */
int sysuid_is(mp_str uid);
/* Add / remove uids (copied). */
void sysuid_add(const mp_str *uids, size_t n);
void sysuid_remove(const mp_str *uids, size_t n);
/* Drop the set (shutdown). */
void sysuid_free(void);

#endif
