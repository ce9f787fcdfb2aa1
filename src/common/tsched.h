/* tsched.h - a scheduling hint for the threads on a message's path (the workers and the
 * message log thread).
 *
 * On a busy machine a thread woken by a socket or a queue often finds both CPUs taken by
 * threads that are not waiting for anything urgent (the LMDB writer, a load generator).
 * Linux's EEVDF scheduler (6.6+) lets the running thread finish its slice first, and
 * without wake-up preemption that can mean the next 4 ms tick (HZ=250). Since Linux 6.12 a
 * SCHED_OTHER thread may ask for a shorter slice (sched_attr.sched_runtime, no privilege
 * needed); a woken thread with a shorter slice than the running one preempts it at once.
 * docs/performance.md has the measured effect. Older kernels ignore the request. */
#ifndef MP_COMMON_TSCHED_H
#define MP_COMMON_TSCHED_H

#include <stdint.h>

/* The slice later tsched_latency_thread calls ask for, in microseconds; 0 = leave threads
 * as they are. The kernel accepts 100..100000. Call before the threads start. */
void tsched_set_latency_slice(uint32_t us);

/* Ask for the configured slice for the calling thread, keeping its policy and nice value.
 * Does nothing when the slice is 0 or the thread is not SCHED_OTHER (an operator's chrt).
 * Returns MP_OK, MP_ENOTSUP (a kernel without custom slices, or the calls refused, e.g. by
 * a seccomp filter: logged once per process) or MP_EIO (the call failed: logged). */
int tsched_latency_thread(const char *thread);

#endif
