/* tsched.c - the latency slice of tsched.h, through sched_getattr/sched_setattr (glibc
 * 2.36 has no wrappers). */
#include "tsched.h"

#include <errno.h>
#include <sched.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "log.h"
#include "mp.h"

#define COMP "sched"

/* The kernel's struct sched_attr, first version (SCHED_ATTR_SIZE_VER0 = 48 bytes). */
typedef struct sched_attr_v0 {
    uint32_t size;
    uint32_t sched_policy;
    uint64_t sched_flags;
    int32_t sched_nice;
    uint32_t sched_priority;
    uint64_t sched_runtime; /* SCHED_OTHER: the requested slice, ns (0 = default) */
    uint64_t sched_deadline;
    uint64_t sched_period;
} sched_attr_v0;

static atomic_uint g_slice_us;
static atomic_int g_unsupported_logged;

void tsched_set_latency_slice(uint32_t us) { atomic_store(&g_slice_us, us); }

static int get_attr(sched_attr_v0 *a) {
    memset(a, 0, sizeof *a);
    return (int)syscall(SYS_sched_getattr, 0, a, (unsigned)sizeof *a, 0u);
}

/* Logged once per process: every thread would say the same. */
static int unsupported(const char *thread, int err) {
    if (!atomic_exchange(&g_unsupported_logged, 1))
        LOG_INFO(COMP, "per-thread time slices are not available (Linux 6.12+, not blocked by a seccomp filter); "
                       "sched.latencySlice has no effect thread=%s err=\"%s\"",
                 thread, err ? strerror(err) : "kernel ignores sched_runtime");
    return MP_ENOTSUP;
}

int tsched_latency_thread(const char *thread) {
    uint32_t us = atomic_load(&g_slice_us);
    if (!us) return MP_OK;
    sched_attr_v0 a;
    if (get_attr(&a) != 0) {
        if (errno == ENOSYS || errno == EPERM) return unsupported(thread, errno); /* e.g. a seccomp filter */
        LOG_WARN(COMP, "sched_getattr failed thread=%s err=\"%s\"", thread, strerror(errno));
        return MP_EIO;
    }
    if (a.sched_policy != SCHED_OTHER) return MP_OK; /* set by the operator: keep it */
    uint64_t ns = (uint64_t)us * 1000u;
    a.size = sizeof a;
    a.sched_flags = 0;
    a.sched_runtime = ns;
    if (syscall(SYS_sched_setattr, 0, &a, 0u) != 0) {
        if (errno == ENOSYS || errno == EPERM) return unsupported(thread, errno);
        LOG_WARN(COMP, "cannot set the latency slice thread=%s slice_us=%u err=\"%s\"", thread, us, strerror(errno));
        return MP_EIO;
    }
    /* Kernels without custom slices accept the call and drop the field. */
    if (get_attr(&a) == 0 && a.sched_runtime != ns) return unsupported(thread, 0);
    return MP_OK;
}
