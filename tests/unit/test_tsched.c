/* test_tsched.c - the latency slice: set on the calling thread only, never on a thread
 * with another policy, keeping the thread's nice value; off when the slice is 0. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <sched.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "common/mp.h"
#include "common/tsched.h"

typedef struct attr {
    uint32_t size, policy;
    uint64_t flags;
    int32_t nice;
    uint32_t priority;
    uint64_t runtime, deadline, period;
} attr;

static attr get_attr(void) {
    attr a;
    memset(&a, 0, sizeof a);
    if (syscall(SYS_sched_getattr, 0, &a, (unsigned)sizeof a, 0u) != 0) a.size = 0; /* refused: see skip_without */
    return a;
}

/* Machines whose seccomp filter refuses sched_getattr cannot show what changed. */
static void skip_without_getattr(void) {
    if (get_attr().size == 0) skip();
}

typedef struct run {
    int policy; /* for the thread before the call */
    int nice;
    int rc;
    attr before, after;
} run;

static void *thread_body(void *arg) {
    run *r = arg;
    if (r->policy != SCHED_OTHER) {
        struct sched_param p = {0};
        if (sched_setscheduler(0, r->policy, &p) != 0) r->rc = 99;
    }
    if (r->nice) setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), r->nice); /* raising nice needs no privilege */
    r->before = get_attr();
    if (r->rc != 99) r->rc = tsched_latency_thread("test");
    r->after = get_attr();
    return NULL;
}

/* Each case in its own thread, so the test runner's thread keeps its attributes. */
static run in_thread(int policy, int nice) {
    run r = {.policy = policy, .nice = nice};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, thread_body, &r), 0);
    pthread_join(t, NULL);
    return r;
}

static void test_off_leaves_the_thread_alone(void **state) {
    (void)state;
    skip_without_getattr();
    tsched_set_latency_slice(0);
    run r = in_thread(SCHED_OTHER, 0);
    assert_int_equal(r.rc, MP_OK);
    assert_memory_equal(&r.before, &r.after, sizeof r.before);
}

static void test_slice_set_and_nice_kept(void **state) {
    (void)state;
    skip_without_getattr();
    tsched_set_latency_slice(300);
    run r = in_thread(SCHED_OTHER, 5);
    assert_true(r.rc == MP_OK || r.rc == MP_ENOTSUP);
    assert_int_equal(r.after.policy, SCHED_OTHER);
    assert_int_equal(r.after.nice, 5); /* sched_setattr would have reset it to 0 */
    if (r.rc == MP_OK) assert_int_equal(r.after.runtime, 300000); /* Linux 6.12+ */
    else assert_int_equal(r.after.runtime, r.before.runtime);
    /* the caller's thread was not touched */
    assert_true(get_attr().runtime != 300000 || r.rc == MP_ENOTSUP);
    tsched_set_latency_slice(0);
}

static void test_other_policy_kept(void **state) {
    (void)state;
    skip_without_getattr();
    tsched_set_latency_slice(300);
    run r = in_thread(SCHED_BATCH, 0);
    assert_int_not_equal(r.rc, 99);
    assert_int_equal(r.rc, MP_OK);
    assert_int_equal(r.after.policy, SCHED_BATCH);
    assert_int_equal(r.after.runtime, r.before.runtime);
    tsched_set_latency_slice(0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_off_leaves_the_thread_alone),
        cmocka_unit_test(test_slice_set_and_nice_kept),
        cmocka_unit_test(test_other_policy_kept),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
