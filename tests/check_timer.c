/*
 * check_timer.c - white-box tests of the timer heaps (runtime/timer.c)
 * without a runtime: heap order, stop, and braid__timers_expire_late, the
 * path by which a worker fires deadlines the I/O thread is late with.  It
 * fires only what is due, skips a heap whose lock someone holds (that
 * party fires it) and fires each timer once.
 */
#include <check.h>
#include <errno.h>
#include <pthread.h>
#include <time.h>

#include "braid.h"
#include "../runtime/timer.h"
#include "../runtime/sched.h"

enum { N = 64 };
static braid__timer tm[N];
static int fired[N];
static int order[N], norder;

static void on_fire(braid__timer *t, braid__batch *b)
{
    (void)b;
    int i = (int)(t - tm);
    fired[i]++;
    order[norder++] = i;
}

static void setup(void)
{
    ck_assert_int_eq(braid__timers_init(3), 0);
    for (int i = 0; i < N; i++) fired[i] = 0;
    norder = 0;
}

static void teardown(void)
{
    braid__timers_fini();
}

START_TEST(expire_fires_due_in_deadline_order_once)
{
    int64_t now = braid_now();
    /* Deadlines in the past, out of order: i fires at now - (i * 7 % N). */
    for (int i = 0; i < N; i++)
        ck_assert_int_eq(braid__timer_start(&tm[i], now - 1000 - (i * 7 % N),
                                            on_fire), 0);
    ck_assert_int_eq(braid__timers_armed(), N);
    braid__batch b = BRAID__BATCH_INIT;
    ck_assert_int_eq(braid__timers_expire(now, &b), N);
    for (int i = 0; i < N; i++) ck_assert_int_eq(fired[i], 1);
    for (int k = 1; k < N; k++)
        ck_assert(tm[order[k - 1]].when <= tm[order[k]].when);
    ck_assert_int_eq(braid__timers_expire(now, &b), 0);
    ck_assert_int_eq(braid__timers_armed(), 0);
}
END_TEST

START_TEST(stop_removes_before_fire)
{
    int64_t now = braid_now();
    for (int i = 0; i < 8; i++)
        braid__timer_start(&tm[i], now - 10, on_fire);
    ck_assert_int_eq(braid__timer_stop(&tm[3]), 1);
    ck_assert_int_eq(braid__timer_stop(&tm[3]), 0);
    braid__batch b = BRAID__BATCH_INIT;
    ck_assert_int_eq(braid__timers_expire(now, &b), 7);
    ck_assert_int_eq(fired[3], 0);
    ck_assert_int_eq(braid__timer_stop(&tm[0]), 0);     /* fired already */
}
END_TEST

START_TEST(late_expiry_fires_only_what_is_due)
{
    braid__batch b = BRAID__BATCH_INIT;
    ck_assert_int_eq(braid__timers_expire_late(&b), 0);    /* none armed */
    int64_t now = braid_now();
    braid__timer_start(&tm[0], now + 10 * 1000 * 1000 * 1000LL, on_fire);
    braid__timer_start(&tm[1], now - 1, on_fire);
    braid__timer_start(&tm[2], now - 2, on_fire);
    ck_assert_int_eq(braid__timers_expire_late(&b), 2);
    ck_assert_int_eq(fired[0], 0);
    ck_assert_int_eq(fired[1], 1);
    ck_assert_int_eq(fired[2], 1);
    ck_assert_int_eq(braid__timers_expire_late(&b), 0);    /* 0: not due */
    ck_assert_int_eq(braid__timers_armed(), 1);
    ck_assert_int_eq(braid__timer_stop(&tm[0]), 1);
}
END_TEST

/* Without heaps (no runtime, or after fini) arming is refused with -EPERM
   and nothing fires or breaks. */
START_TEST(no_heaps_refuses)
{
    braid__timers_fini();
    braid__batch b = BRAID__BATCH_INIT;
    ck_assert_int_eq(braid__timer_start(&tm[0], braid_now() - 1, on_fire),
                     -EPERM);
    ck_assert_int_eq(braid__timers_expire_late(&b), 0);
    ck_assert_int_eq(braid__timer_stop(&tm[0]), 0);
    ck_assert_int_eq(fired[0], 0);
    ck_assert_int_eq(braid__timers_init(3), 0);     /* for teardown */
}
END_TEST

/* A thread arms a due timer in the plain threads' heap and keeps that
   heap's lock (a timer_start in progress, as far as anyone can tell):
   late expiry must pass it by rather than wait, and fire it once the lock
   is free. */
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static int stage;

static void hold_heap(braid__timer *t, braid__batch *b)
{
    (void)t; (void)b;
    pthread_mutex_lock(&mu);
    stage = 1;
    pthread_cond_broadcast(&cv);
    while (stage != 2) pthread_cond_wait(&cv, &mu);
    pthread_mutex_unlock(&mu);
}

static void *expirer(void *arg)
{
    (void)arg;
    braid__batch b = BRAID__BATCH_INIT;
    braid__timers_expire(braid_now(), &b);  /* runs hold_heap under lock */
    return NULL;
}

START_TEST(late_expiry_passes_a_held_heap_by)
{
    int64_t now = braid_now();
    /* tm[0] fires first and holds the heap's lock inside its callback;
       tm[1], due too, sits behind it in the same heap. */
    braid__timer_start(&tm[0], now - 2, hold_heap);
    braid__timer_start(&tm[1], now - 1, on_fire);
    pthread_t t;
    stage = 0;
    ck_assert_int_eq(pthread_create(&t, NULL, expirer, NULL), 0);
    pthread_mutex_lock(&mu);
    while (stage != 1) pthread_cond_wait(&cv, &mu);
    pthread_mutex_unlock(&mu);
    braid__batch b = BRAID__BATCH_INIT;
    ck_assert_int_eq(braid__timers_expire_late(&b), 0);    /* did not wait */
    ck_assert_int_eq(fired[1], 0);
    pthread_mutex_lock(&mu);
    stage = 2;
    pthread_cond_broadcast(&cv);
    pthread_mutex_unlock(&mu);
    pthread_join(t, NULL);
    ck_assert_int_eq(fired[1], 1);          /* the lock's holder fired it */
    ck_assert_int_eq(braid__timers_expire_late(&b), 0);
    ck_assert_int_eq(braid__timers_armed(), 0);
}
END_TEST

static Suite *timer_suite(void)
{
    Suite *s = suite_create("timer");
    TCase *tc = tcase_create("core");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, expire_fires_due_in_deadline_order_once);
    tcase_add_test(tc, stop_removes_before_fire);
    tcase_add_test(tc, late_expiry_fires_only_what_is_due);
    tcase_add_test(tc, late_expiry_passes_a_held_heap_by);
    tcase_add_test(tc, no_heaps_refuses);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(timer_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
