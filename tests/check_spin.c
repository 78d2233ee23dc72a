/*
 * check_spin.c - white-box tests of the runtime's spinlock
 * (runtime/common.h): mutual exclusion under contention, and a waiter
 * that outlasts the spinning and yielding phases (the holder keeps the
 * lock for milliseconds, as a preempted holder does) sleeps, gets the
 * lock once it is free and leaves errno as it was.  No timing is asserted:
 * how fast a waiter gets in is a scheduler matter, measured by hand.
 */
#include <check.h>
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <time.h>

#include "../runtime/common.h"

static braid__spin lk = BRAID__SPIN_INIT;
static long counter;                    /* lk */

enum { THREADS = 4, ROUNDS = 200000 };

static void *bump_many(void *arg)
{
    (void)arg;
    for (int i = 0; i < ROUNDS; i++) {
        braid__spin_lock(&lk);
        long c = counter;
        if (i % 1024 == 0) sched_yield();   /* a holder off the CPU */
        counter = c + 1;
        braid__spin_unlock(&lk);
    }
    return NULL;
}

START_TEST(spin_excludes_under_contention)
{
    pthread_t t[THREADS];
    counter = 0;
    for (int i = 0; i < THREADS; i++)
        ck_assert_int_eq(pthread_create(&t[i], NULL, bump_many, NULL), 0);
    for (int i = 0; i < THREADS; i++)
        pthread_join(t[i], NULL);
    ck_assert_int_eq(counter, (long)THREADS * ROUNDS);
}
END_TEST

static _Atomic int released, got_early, waiting;
static int waiter_errno;

static void *late_waiter(void *arg)
{
    (void)arg;
    st_release(&waiting, 1);
    errno = 4321;
    braid__spin_lock(&lk);
    waiter_errno = errno;
    if (!ld_acquire(&released)) st_relaxed(&got_early, 1);
    counter++;
    braid__spin_unlock(&lk);
    return NULL;
}

START_TEST(spin_waiter_sleeps_through_a_long_hold)
{
    pthread_t t;
    counter = 0;
    braid__spin_lock(&lk);
    ck_assert_int_eq(pthread_create(&t, NULL, late_waiter, NULL), 0);
    while (!ld_acquire(&waiting)) sched_yield();
    /* 30 ms: far past the spinning and yielding phases (tens of us). */
    struct timespec ts = { 0, 30 * 1000 * 1000 };
    nanosleep(&ts, NULL);
    st_release(&released, 1);
    braid__spin_unlock(&lk);
    pthread_join(t, NULL);
    ck_assert_int_eq(got_early, 0);
    ck_assert_int_eq(counter, 1);
    ck_assert_int_eq(waiter_errno, 4321);
    ck_assert(braid__spin_trylock(&lk));      /* left free */
    braid__spin_unlock(&lk);
}
END_TEST

static Suite *spin_suite(void)
{
    Suite *s = suite_create("spin");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, spin_excludes_under_contention);
    tcase_add_test(tc, spin_waiter_sleeps_through_a_long_hold);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(spin_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
