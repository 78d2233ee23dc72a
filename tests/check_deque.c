/*
 * check_deque.c - white-box tests of the spawn deque (runtime/deque.h)
 * alone: the owner's LIFO end, the thieves' FIFO end, the bound, and an
 * owner racing thieves where every item must come out exactly once.
 */
#include <check.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>

#include "../runtime/deque.h"

#ifdef HAVE_VALGRIND_VALGRIND_H
#include <valgrind/valgrind.h>
#else
#define RUNNING_ON_VALGRIND 0
#endif

static braid__deque dq;

static void *item(uintptr_t i) { return (void *)(i + 1); }  /* never NULL */

START_TEST(owner_end_is_lifo_thief_end_is_fifo)
{
    for (uintptr_t i = 0; i < 10; i++) ck_assert(braid__deq_push(&dq, item(i)));
    ck_assert_int_eq(braid__deq_size(&dq), 10);
    ck_assert_ptr_eq(braid__deq_take(&dq), item(9));
    ck_assert_ptr_eq(braid__deq_take(&dq), item(8));
    ck_assert_ptr_eq(braid__deq_steal(&dq), item(0));
    ck_assert_ptr_eq(braid__deq_steal(&dq), item(1));
    for (uintptr_t i = 7; i >= 2; i--) ck_assert_ptr_eq(braid__deq_take(&dq), item(i));
    ck_assert_ptr_null(braid__deq_take(&dq));
    ck_assert_ptr_null(braid__deq_steal(&dq));
    ck_assert_int_eq(braid__deq_size(&dq), 0);
}
END_TEST

START_TEST(push_refuses_when_full)
{
    for (uintptr_t i = 0; i < BRAID__DEQ_SIZE; i++)
        ck_assert(braid__deq_push(&dq, item(i)));
    ck_assert(!braid__deq_push(&dq, item(999)));
    ck_assert_ptr_eq(braid__deq_steal(&dq), item(0));   /* room again */
    ck_assert(braid__deq_push(&dq, item(999)));
    ck_assert_ptr_eq(braid__deq_take(&dq), item(999));
    /* wrapped around: the rest come out newest first, nothing lost */
    for (uintptr_t i = BRAID__DEQ_SIZE - 1; i >= 1; i--)
        ck_assert_ptr_eq(braid__deq_take(&dq), item(i));
    ck_assert_ptr_null(braid__deq_take(&dq));
}
END_TEST

/* The owner pushes N items in bursts and takes some back while two thieves
   steal; each item is counted once by whoever got it. */
#define N (RUNNING_ON_VALGRIND ? 20000 : 2000000)
static atomic_uchar *seen;
static atomic_int owner_done;
static atomic_long stolen;

static void got(void *x)
{
    uintptr_t i = (uintptr_t)x - 1;
    atomic_fetch_add_explicit(&seen[i], 1, memory_order_relaxed);
}

static void *thief(void *arg)
{
    (void)arg;
    long n = 0;
    for (;;) {
        void *x = braid__deq_steal(&dq);
        if (x) { got(x); n++; continue; }
        if (atomic_load(&owner_done) && braid__deq_size(&dq) == 0) break;
    }
    atomic_fetch_add(&stolen, n);
    return NULL;
}

START_TEST(owner_races_thieves_nothing_lost_or_doubled)
{
    seen = calloc(N, sizeof *seen);
    ck_assert_ptr_nonnull(seen);
    pthread_t th[2];
    for (int i = 0; i < 2; i++) pthread_create(&th[i], NULL, thief, NULL);
    uint64_t rng = 88172645463325252ULL;
    long taken = 0;
    for (uintptr_t i = 0; i < (uintptr_t)N;) {
        rng ^= rng << 13; rng ^= rng >> 7; rng ^= rng << 17;
        unsigned burst = 1 + rng % 8, takes = (rng >> 8) % 6;
        for (unsigned k = 0; k < burst && i < (uintptr_t)N; k++) {
            while (!braid__deq_push(&dq, item(i))) {
                void *x = braid__deq_take(&dq);   /* full: make room */
                if (x) { got(x); taken++; }
            }
            i++;
        }
        for (unsigned k = 0; k < takes; k++) {
            void *x = braid__deq_take(&dq);
            if (x) { got(x); taken++; }
        }
    }
    void *x;
    while ((x = braid__deq_take(&dq))) { got(x); taken++; }
    atomic_store(&owner_done, 1);
    for (int i = 0; i < 2; i++) pthread_join(th[i], NULL);
    long bad = 0;
    for (long i = 0; i < N; i++) bad += atomic_load(&seen[i]) != 1;
    ck_assert_int_eq(bad, 0);
    ck_assert_int_eq(taken + atomic_load(&stolen), N);
    if (!RUNNING_ON_VALGRIND)       /* valgrind runs one thread at a time */
        ck_assert_int_gt(atomic_load(&stolen), 0);
    free(seen);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("deque");
    TCase *tc = tcase_create("deque");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, owner_end_is_lifo_thief_end_is_fifo);
    tcase_add_test(tc, push_refuses_when_full);
    tcase_add_test(tc, owner_races_thieves_nothing_lost_or_doubled);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
