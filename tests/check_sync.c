/*
 * check_sync.c - mutex, cond, wait group, semaphore, once and nursery.
 *
 * Each test starts its own runtime with braid_run (Check forks every test,
 * so file-scope state is fresh) and asserts inside coroutines and threads;
 * a failed ck_assert anywhere ends the forked test, which Check reports.
 * Timing assertions are bounds that cannot flake: "not before the
 * deadline, and within +500 ms".
 */
#define _GNU_SOURCE 1

#include <check.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>

#include <braid.h>

#define MS ((int64_t)1000000)

#ifdef HAVE_VALGRIND_VALGRIND_H
#include <valgrind/valgrind.h>
#else
#define RUNNING_ON_VALGRIND 0
#endif
/* Under valgrind (threads serialised, ~50x slower) timing and scheduling
   assumptions do not hold: those asserts are skipped, memcheck is the
   point of that run. */
#define TIMING (!RUNNING_ON_VALGRIND)
#define SLACK (500 * MS)

static void run(unsigned workers, void (*fn)(void *), void *arg)
{
    braid_config cfg = { .workers = workers };
    ck_assert_int_eq(braid_run(&cfg, fn, arg), 0);
}

/* For tests where a plain thread that is not blocked in braid (so the
   deadlock check cannot see it) will wake a coroutine. */
static void run_threads(unsigned workers, void (*fn)(void *), void *arg)
{
    braid_config cfg = { .workers = workers, .no_deadlock_check = 1 };
    ck_assert_int_eq(braid_run(&cfg, fn, arg), 0);
}

static braid_task *spawn(void *(*fn)(void *), void *arg)
{
    braid_task *t;
    ck_assert_int_eq(braid_spawn(&t, fn, arg, NULL), 0);
    return t;
}

/* Join t and return its result as an integer. */
static intptr_t join(braid_task *t)
{
    void *res;
    ck_assert_int_eq(braid_join(t, &res, BRAID_FOREVER), 0);
    return (intptr_t)res;
}

static pthread_t thread(void *(*fn)(void *), void *arg)
{
    pthread_t th;
    ck_assert_int_eq(pthread_create(&th, NULL, fn, arg), 0);
    return th;
}

/* A call that blocked until deadline returned on time. */
static void assert_on_time(int64_t start, int64_t deadline)
{
    int64_t now = braid_now();
    ck_assert_int_ge(now, deadline);
    if (TIMING)
        ck_assert_int_lt(now - start, deadline - start + SLACK);
}

/* Shared by the tests (fresh in each forked test). */
static braid_mutex mu = BRAID_MUTEX_INIT;
static braid_cond cv = BRAID_COND_INIT, cv2 = BRAID_COND_INIT;
static braid_wg wg = BRAID_WG_INIT;
static braid_sem sem = BRAID_SEM_INIT(0);
static braid_once once = BRAID_ONCE_INIT;
static long counter;
static _Atomic long acounter;
static _Atomic int flag;

/* ---- mutex ------------------------------------------------------------- */

#define LOCKERS 100
#define ROUNDS 10000

static void locker(void *arg)
{
    (void)arg;
    for (int i = 0; i < ROUNDS; i++) {
        ck_assert_int_eq(braid_mutex_lock(&mu, BRAID_FOREVER), 0);
        long v = counter;
        braid_yield();          /* may migrate while holding the lock */
        counter = v + 1;
        ck_assert_int_eq(braid_mutex_unlock(&mu), 0);
    }
    braid_wg_done(&wg);
}

static void counter_main(void *arg)
{
    (void)arg;
    ck_assert_int_eq(braid_wg_add(&wg, LOCKERS), 0);
    for (int i = 0; i < LOCKERS; i++)
        ck_assert_int_eq(braid_go(locker, NULL), 0);
    ck_assert_int_eq(braid_wg_wait(&wg, BRAID_FOREVER), 0);
    ck_assert_int_eq(counter, (long)LOCKERS * ROUNDS);
}

START_TEST(test_mutex_counter)
{
    run(2, counter_main, NULL);
}
END_TEST

static void *try_other(void *arg)
{
    (void)arg;
    return (void *)(intptr_t)braid_mutex_trylock(&mu);
}

static void errors_main(void *arg)
{
    (void)arg;
    braid_mutex m = BRAID_MUTEX_INIT;
    ck_assert_int_eq(braid_mutex_unlock(&m), -EPERM);
    ck_assert_int_eq(braid_mutex_trylock(&m), 0);
    ck_assert_int_eq(braid_mutex_trylock(&m), -EBUSY);
    ck_assert_int_eq(braid_mutex_unlock(&m), 0);
    ck_assert_int_eq(braid_mutex_unlock(&m), -EPERM);
    /* Held here: trylock from another coroutine fails. */
    ck_assert_int_eq(braid_mutex_lock(&mu, BRAID_FOREVER), 0);
    ck_assert_int_eq(join(spawn(try_other, NULL)), -EBUSY);
    /* Past deadlines try once. */
    ck_assert_int_eq(braid_mutex_lock(&mu, 0), -EAGAIN);
    ck_assert_int_eq(braid_mutex_lock(&mu, braid_now() - MS), -EAGAIN);
    int64_t start = braid_now(), dl = braid_after((TIMING ? 50 : 2000) * MS);
    ck_assert_int_eq(braid_mutex_lock(&mu, dl), -ETIMEDOUT);
    assert_on_time(start, dl);
    /* Still held, still usable. */
    ck_assert_int_eq(join(spawn(try_other, NULL)), -EBUSY);
    ck_assert_int_eq(braid_mutex_unlock(&mu), 0);
    ck_assert_int_eq(join(spawn(try_other, NULL)), 0);
    ck_assert_int_eq(braid_mutex_unlock(&mu), 0);
    ck_assert_int_eq(braid_mutex_lock(&mu, 0), 0);
    ck_assert_int_eq(braid_mutex_unlock(&mu), 0);
}

START_TEST(test_mutex_errors)
{
    run(2, errors_main, NULL);
}
END_TEST

/* Starvation, on one worker: the barger yields only while it holds the
   lock and relocks right after each unlock, so in normal mode the holdout
   finds the lock taken every time it runs and would never get it.  After
   1 ms of waiting it must switch the mutex to starvation mode (the barger
   sees the STARVING bit, white-box: bit 2 of the first word, set during
   its yield) and be handed the lock. */
#define HOLDOUT_ROUNDS 20

static int starving_now(void)
{
    return (__atomic_load_n((uint32_t *)&mu, __ATOMIC_RELAXED) & 4) != 0;
}

static void *barger(void *arg)
{
    (void)arg;
    long n = 0;
    while (!atomic_load(&flag)) {
        ck_assert_int_eq(braid_mutex_lock(&mu, BRAID_FOREVER), 0);
        braid_yield();
        if (starving_now())
            atomic_store(&acounter, 1);
        ck_assert_int_eq(braid_mutex_unlock(&mu), 0);
        n++;
    }
    return (void *)(intptr_t)n;
}

static void *holdout(void *arg)
{
    (void)arg;
    for (int i = 0; i < HOLDOUT_ROUNDS; i++) {
        braid_sleep(MS);
        int64_t start = braid_now();
        ck_assert_int_eq(braid_mutex_lock(&mu, BRAID_FOREVER), 0);
        if (TIMING)
            ck_assert_int_ge(braid_now() - start, MS);   /* only by hand-off */
        ck_assert_int_eq(braid_mutex_unlock(&mu), 0);
    }
    atomic_store(&flag, 1);
    return NULL;
}

static void starve_main(void *arg)
{
    (void)arg;
    braid_task *b = spawn(barger, NULL);
    braid_task *h = spawn(holdout, NULL);
    join(h);
    ck_assert_int_gt(join(b), 0);
    ck_assert_int_eq(atomic_load(&acounter), 1);   /* mode was engaged */
    ck_assert_int_eq(starving_now(), 0);           /* and left */
    ck_assert_int_eq(braid_mutex_trylock(&mu), 0);
    ck_assert_int_eq(braid_mutex_unlock(&mu), 0);
}

START_TEST(test_mutex_starvation)
{
    run(1, starve_main, NULL);
}
END_TEST

/* Plain threads and coroutines share one mutex. */
#define MIX_THREADS 2
#define MIX_CORO 20
#define MIX_ROUNDS 5000

static void *mix_thread(void *arg)
{
    (void)arg;
    for (int i = 0; i < MIX_ROUNDS; i++) {
        ck_assert_int_eq(braid_mutex_lock(&mu, BRAID_FOREVER), 0);
        counter++;
        ck_assert_int_eq(braid_mutex_unlock(&mu), 0);
    }
    braid_wg_done(&wg);
    return NULL;
}

static void mix_coro(void *arg)
{
    (void)arg;
    for (int i = 0; i < MIX_ROUNDS; i++) {
        ck_assert_int_eq(braid_mutex_lock(&mu, BRAID_FOREVER), 0);
        long v = counter;
        if (i % 8 == 0)
            braid_yield();
        counter = v + 1;
        ck_assert_int_eq(braid_mutex_unlock(&mu), 0);
    }
    braid_wg_done(&wg);
}

static void mix_main(void *arg)
{
    (void)arg;
    pthread_t th[MIX_THREADS];
    ck_assert_int_eq(braid_wg_add(&wg, MIX_THREADS + MIX_CORO), 0);
    for (int i = 0; i < MIX_THREADS; i++)
        th[i] = thread(mix_thread, NULL);
    for (int i = 0; i < MIX_CORO; i++)
        ck_assert_int_eq(braid_go(mix_coro, NULL), 0);
    ck_assert_int_eq(braid_wg_wait(&wg, BRAID_FOREVER), 0);
    for (int i = 0; i < MIX_THREADS; i++)
        pthread_join(th[i], NULL);  /* they are past their last braid call */
    ck_assert_int_eq(counter, (long)(MIX_THREADS + MIX_CORO) * MIX_ROUNDS);
}

START_TEST(test_mutex_threads)
{
    run_threads(2, mix_main, NULL);
}
END_TEST

/* A plain thread times out on a mutex a coroutine holds. */
static void *thread_timeout(void *arg)
{
    (void)arg;
    ck_assert_int_eq(braid_mutex_lock(&mu, 0), -EAGAIN);
    int64_t start = braid_now(), dl = braid_after((TIMING ? 50 : 2000) * MS);
    ck_assert_int_eq(braid_mutex_lock(&mu, dl), -ETIMEDOUT);
    assert_on_time(start, dl);
    atomic_store(&flag, 1);
    /* Blocks until the coroutine unlocks. */
    ck_assert_int_eq(braid_mutex_lock(&mu, BRAID_FOREVER), 0);
    ck_assert_int_eq(braid_mutex_unlock(&mu), 0);
    braid_wg_done(&wg);
    return NULL;
}

static void thread_timeout_main(void *arg)
{
    (void)arg;
    ck_assert_int_eq(braid_wg_add(&wg, 1), 0);
    ck_assert_int_eq(braid_mutex_lock(&mu, BRAID_FOREVER), 0);
    pthread_t th = thread(thread_timeout, NULL);
    while (!atomic_load(&flag))
        braid_sleep(MS);
    braid_sleep(20 * MS);
    ck_assert_int_eq(braid_mutex_unlock(&mu), 0);
    ck_assert_int_eq(braid_wg_wait(&wg, BRAID_FOREVER), 0);
    pthread_join(th, NULL);
}

START_TEST(test_mutex_thread_deadline)
{
    run_threads(2, thread_timeout_main, NULL);
}
END_TEST

/* Cancelled while blocked in lock: -ECANCELED, mutex state intact. */
static void *cancel_lock(void *arg)
{
    (void)arg;
    return (void *)(intptr_t)braid_mutex_lock(&mu, BRAID_FOREVER);
}

#define CANCEL_LOCKERS 40

static void *churn_locker(void *arg)
{
    (void)arg;
    long mine = 0;
    while (!braid_cancelled()) {
        int r = braid_mutex_lock(&mu, BRAID_FOREVER);
        if (r == -ECANCELED)
            break;
        ck_assert_int_eq(r, 0);
        counter++;
        braid_yield();
        mine++;
        ck_assert_int_eq(braid_mutex_unlock(&mu), 0);
    }
    return (void *)(intptr_t)mine;
}

static void cancel_mutex_main(void *arg)
{
    (void)arg;
    ck_assert_int_eq(braid_mutex_lock(&mu, BRAID_FOREVER), 0);
    braid_task *t = spawn(cancel_lock, NULL);
    braid_sleep(20 * MS);
    ck_assert_int_eq(braid_cancel(t), 0);
    ck_assert_int_eq(join(t), -ECANCELED);
    ck_assert_int_eq(join(spawn(try_other, NULL)), -EBUSY);  /* still ours */
    ck_assert_int_eq(braid_mutex_unlock(&mu), 0);
    /* Churn: cancel lockers while they hand the lock around. */
    braid_task *ts[CANCEL_LOCKERS];
    for (int i = 0; i < CANCEL_LOCKERS; i++)
        ts[i] = spawn(churn_locker, NULL);
    for (int i = 0; i < CANCEL_LOCKERS; i++) {
        braid_sleep(MS);
        ck_assert_int_eq(braid_cancel(ts[i]), 0);
    }
    long sum = 0;
    for (int i = 0; i < CANCEL_LOCKERS; i++)
        sum += (long)join(ts[i]);
    ck_assert_int_eq(sum, counter);
    ck_assert_int_eq(braid_mutex_lock(&mu, braid_after(1000 * MS)), 0);
    ck_assert_int_eq(braid_mutex_unlock(&mu), 0);
    ck_assert_int_eq(braid_mutex_unlock(&mu), -EPERM);
}

START_TEST(test_mutex_cancel)
{
    run(2, cancel_mutex_main, NULL);
}
END_TEST

/* ---- cond -------------------------------------------------------------- */

#define QCAP 4
#define PRODUCERS 4
#define CONSUMERS 4
#define ITEMS 5000

static long queue[QCAP];
static int qhead, qlen;
static _Atomic long consumed_sum, consumed_n;

static void producer(void *arg)
{
    long base = (long)(intptr_t)arg * ITEMS;
    for (long i = 1; i <= ITEMS; i++) {
        ck_assert_int_eq(braid_mutex_lock(&mu, BRAID_FOREVER), 0);
        while (qlen == QCAP)
            ck_assert_int_eq(braid_cond_wait(&cv2, &mu, BRAID_FOREVER), 0);
        queue[(qhead + qlen++) % QCAP] = base + i;
        ck_assert_int_eq(braid_cond_signal(&cv), 0);
        ck_assert_int_eq(braid_mutex_unlock(&mu), 0);
    }
    braid_wg_done(&wg);
}

static void consumer(void *arg)
{
    braid_wg *cwg = arg;
    for (;;) {
        ck_assert_int_eq(braid_mutex_lock(&mu, BRAID_FOREVER), 0);
        while (qlen == 0 && !atomic_load(&flag))
            ck_assert_int_eq(braid_cond_wait(&cv, &mu, BRAID_FOREVER), 0);
        if (qlen == 0) {
            ck_assert_int_eq(braid_mutex_unlock(&mu), 0);
            break;
        }
        long v = queue[qhead];
        qhead = (qhead + 1) % QCAP;
        qlen--;
        ck_assert_int_eq(braid_cond_signal(&cv2), 0);
        ck_assert_int_eq(braid_mutex_unlock(&mu), 0);
        atomic_fetch_add(&consumed_sum, v);
        atomic_fetch_add(&consumed_n, 1);
    }
    braid_wg_done(cwg);
}

static void prodcons_main(void *arg)
{
    (void)arg;
    braid_wg cwg = BRAID_WG_INIT;
    ck_assert_int_eq(braid_wg_add(&wg, PRODUCERS), 0);
    ck_assert_int_eq(braid_wg_add(&cwg, CONSUMERS), 0);
    for (long i = 0; i < PRODUCERS; i++)
        ck_assert_int_eq(braid_go(producer, (void *)(intptr_t)i), 0);
    for (int i = 0; i < CONSUMERS; i++)
        ck_assert_int_eq(braid_go(consumer, &cwg), 0);
    ck_assert_int_eq(braid_wg_wait(&wg, BRAID_FOREVER), 0);
    /* Producers done: tell the consumers to drain and stop. */
    ck_assert_int_eq(braid_mutex_lock(&mu, BRAID_FOREVER), 0);
    atomic_store(&flag, 1);
    ck_assert_int_eq(braid_cond_broadcast(&cv), 0);
    ck_assert_int_eq(braid_mutex_unlock(&mu), 0);
    ck_assert_int_eq(braid_wg_wait(&cwg, BRAID_FOREVER), 0);
    long n = (long)PRODUCERS * ITEMS;
    ck_assert_int_eq(atomic_load(&consumed_n), n);
    ck_assert_int_eq(atomic_load(&consumed_sum), n * (n + 1) / 2);
}

START_TEST(test_cond_prodcons)
{
    run(2, prodcons_main, NULL);
}
END_TEST

/* signal wakes exactly one waiter, broadcast all of them. */
#define CWAITERS 3
static int arrived, woke;

static void cond_waiter(void *arg)
{
    (void)arg;
    ck_assert_int_eq(braid_mutex_lock(&mu, BRAID_FOREVER), 0);
    arrived++;
    ck_assert_int_eq(braid_cond_wait(&cv, &mu, BRAID_FOREVER), 0);
    woke++;
    ck_assert_int_eq(braid_mutex_unlock(&mu), 0);
    braid_wg_done(&wg);
}

/* Read an int under mu. */
static int locked_read(const int *p)
{
    ck_assert_int_eq(braid_mutex_lock(&mu, BRAID_FOREVER), 0);
    int v = *p;
    ck_assert_int_eq(braid_mutex_unlock(&mu), 0);
    return v;
}

static void signal_main(void *arg)
{
    (void)arg;
    ck_assert_int_eq(braid_wg_add(&wg, CWAITERS), 0);
    for (int i = 0; i < CWAITERS; i++)
        ck_assert_int_eq(braid_go(cond_waiter, NULL), 0);
    /* arrived is counted under mu before the wait releases mu: once we
       see all of them, all are queued on cv. */
    while (locked_read(&arrived) < CWAITERS)
        braid_sleep(MS);
    ck_assert_int_eq(braid_cond_signal(&cv), 0);
    while (locked_read(&woke) < 1)
        braid_sleep(MS);
    braid_sleep(50 * MS);
    ck_assert_int_eq(locked_read(&woke), 1);
    ck_assert_int_eq(braid_cond_broadcast(&cv), 0);
    ck_assert_int_eq(braid_wg_wait(&wg, braid_after(5000 * MS)), 0);
    ck_assert_int_eq(woke, CWAITERS);
    /* Nobody waits: signal and broadcast are no-ops. */
    ck_assert_int_eq(braid_cond_signal(&cv), 0);
    ck_assert_int_eq(braid_cond_broadcast(&cv), 0);
}

START_TEST(test_cond_signal_broadcast)
{
    run(2, signal_main, NULL);
}
END_TEST

static void cond_timeout_main(void *arg)
{
    (void)arg;
    ck_assert_int_eq(braid_cond_wait(&cv, &mu, BRAID_FOREVER), -EPERM);
    ck_assert_int_eq(braid_mutex_lock(&mu, BRAID_FOREVER), 0);
    ck_assert_int_eq(braid_cond_wait(&cv, &mu, 0), -EAGAIN);
    ck_assert_int_eq(join(spawn(try_other, NULL)), -EBUSY);
    int64_t start = braid_now(), dl = braid_after((TIMING ? 50 : 2000) * MS);
    ck_assert_int_eq(braid_cond_wait(&cv, &mu, dl), -ETIMEDOUT);
    assert_on_time(start, dl);
    ck_assert_int_eq(join(spawn(try_other, NULL)), -EBUSY);  /* relocked */
    ck_assert_int_eq(braid_mutex_unlock(&mu), 0);
    ck_assert_int_eq(braid_mutex_unlock(&mu), -EPERM);
}

START_TEST(test_cond_timeout)
{
    run(2, cond_timeout_main, NULL);
}
END_TEST

/* Cancelled in cond_wait: -ECANCELED with the mutex held again. */
static void *cancel_cond(void *arg)
{
    (void)arg;
    ck_assert_int_eq(braid_mutex_lock(&mu, BRAID_FOREVER), 0);
    atomic_store(&flag, 1);
    int r = braid_cond_wait(&cv, &mu, BRAID_FOREVER);
    /* Held: unlock succeeds (-EPERM would mean it was not relocked). */
    ck_assert_int_eq(braid_mutex_unlock(&mu), 0);
    return (void *)(intptr_t)r;
}

static void cancel_cond_main(void *arg)
{
    (void)arg;
    braid_task *t = spawn(cancel_cond, NULL);
    while (!atomic_load(&flag))
        braid_sleep(MS);
    /* Hold the mutex while cancelling: the waiter must wait for it. */
    ck_assert_int_eq(braid_mutex_lock(&mu, BRAID_FOREVER), 0);
    ck_assert_int_eq(braid_cancel(t), 0);
    braid_sleep(20 * MS);
    ck_assert_int_eq(braid_mutex_unlock(&mu), 0);
    ck_assert_int_eq(join(t), -ECANCELED);
    ck_assert_int_eq(braid_mutex_trylock(&mu), 0);
    ck_assert_int_eq(braid_mutex_unlock(&mu), 0);
    /* The cancelled waiter left the queue: a signal finds nobody and a new
       waiter still gets signalled. */
    ck_assert_int_eq(braid_cond_signal(&cv), 0);
    ck_assert_int_eq(braid_wg_add(&wg, 1), 0);
    ck_assert_int_eq(braid_go(cond_waiter, NULL), 0);
    while (locked_read(&arrived) < 1)
        braid_sleep(MS);
    ck_assert_int_eq(braid_cond_signal(&cv), 0);
    ck_assert_int_eq(braid_wg_wait(&wg, braid_after(5000 * MS)), 0);
}

START_TEST(test_cond_cancel)
{
    run(2, cancel_cond_main, NULL);
}
END_TEST

/* ---- wait group -------------------------------------------------------- */

#define WG_CORO 10000

static void wg_worker(void *arg)
{
    (void)arg;
    braid_yield();
    atomic_fetch_add(&acounter, 1);
    ck_assert_int_eq(braid_wg_done(&wg), 0);
}

static void wg_many_main(void *arg)
{
    (void)arg;
    for (int i = 0; i < WG_CORO; i++) {
        ck_assert_int_eq(braid_wg_add(&wg, 1), 0);
        ck_assert_int_eq(braid_go(wg_worker, NULL), 0);
    }
    ck_assert_int_eq(braid_wg_wait(&wg, BRAID_FOREVER), 0);
    ck_assert_int_eq(atomic_load(&acounter), WG_CORO);
    ck_assert_int_eq(braid_wg_wait(&wg, 0), 0);
}

START_TEST(test_wg_many)
{
    run(2, wg_many_main, NULL);
}
END_TEST

static void *wg_waiter(void *arg)
{
    (void)arg;
    return (void *)(intptr_t)braid_wg_wait(&wg, BRAID_FOREVER);
}

static void wg_errors_main(void *arg)
{
    (void)arg;
    braid_wg w = BRAID_WG_INIT;
    ck_assert_int_eq(braid_wg_wait(&w, 0), 0);
    ck_assert_int_eq(braid_wg_done(&w), -EINVAL);
    ck_assert_int_eq(braid_wg_add(&w, -1), -EINVAL);
    ck_assert_int_eq(braid_wg_add(&w, 2), 0);
    ck_assert_int_eq(braid_wg_add(&w, -3), -EINVAL);   /* unchanged: 2 */
    ck_assert_int_eq(braid_wg_wait(&w, 0), -EAGAIN);
    int64_t start = braid_now(), dl = braid_after((TIMING ? 50 : 2000) * MS);
    ck_assert_int_eq(braid_wg_wait(&w, dl), -ETIMEDOUT);
    assert_on_time(start, dl);
    ck_assert_int_eq(braid_wg_done(&w), 0);
    ck_assert_int_eq(braid_wg_wait(&w, 0), -EAGAIN);
    ck_assert_int_eq(braid_wg_done(&w), 0);
    ck_assert_int_eq(braid_wg_wait(&w, 0), 0);
    ck_assert_int_eq(braid_wg_done(&w), -EINVAL);
    ck_assert_int_eq(braid_wg_wait(&w, 0), 0);
    ck_assert_int_eq(braid_wg_add(&w, 0), 0);
    /* Waiters parked across a failed done still get woken. */
    ck_assert_int_eq(braid_wg_add(&wg, 1), 0);
    braid_task *t = spawn(wg_waiter, NULL);
    braid_sleep(10 * MS);
    ck_assert_int_eq(braid_wg_add(&wg, -2), -EINVAL);
    ck_assert_int_eq(braid_wg_done(&wg), 0);
    ck_assert_int_eq(join(t), 0);
}

START_TEST(test_wg_errors)
{
    run(2, wg_errors_main, NULL);
}
END_TEST

/* Cancelled in wg_wait: -ECANCELED; no wake-up lost for the others. */
static void cancel_wg_main(void *arg)
{
    (void)arg;
    ck_assert_int_eq(braid_wg_add(&wg, 1), 0);
    braid_task *t = spawn(wg_waiter, NULL);
    braid_task *u = spawn(wg_waiter, NULL);
    braid_sleep(20 * MS);
    ck_assert_int_eq(braid_cancel(t), 0);
    ck_assert_int_eq(join(t), -ECANCELED);
    ck_assert_int_eq(braid_wg_wait(&wg, 0), -EAGAIN);
    ck_assert_int_eq(braid_wg_done(&wg), 0);
    ck_assert_int_eq(join(u), 0);
    ck_assert_int_eq(braid_wg_wait(&wg, 0), 0);
    /* A plain thread waits too. */
    ck_assert_int_eq(braid_wg_add(&wg, 1), 0);
    pthread_t th = thread(wg_waiter, NULL);
    braid_sleep(20 * MS);
    ck_assert_int_eq(braid_wg_done(&wg), 0);
    void *r;
    pthread_join(th, &r);
    ck_assert_int_eq((intptr_t)r, 0);
}

START_TEST(test_wg_cancel)
{
    run_threads(2, cancel_wg_main, NULL);
}
END_TEST

/* ---- semaphore --------------------------------------------------------- */

#define SEM_UNITS 3
#define SEM_CORO 50
static _Atomic int inside, max_inside;

static void limited(void *arg)
{
    (void)arg;
    for (int i = 0; i < 20; i++) {
        ck_assert_int_eq(braid_sem_acquire(&sem, BRAID_FOREVER), 0);
        int n = atomic_fetch_add(&inside, 1) + 1;
        int m = atomic_load(&max_inside);
        while (n > m && !atomic_compare_exchange_weak(&max_inside, &m, n))
            ;
        braid_yield();
        atomic_fetch_sub(&inside, 1);
        ck_assert_int_eq(braid_sem_release(&sem), 0);
    }
    braid_wg_done(&wg);
}

static void sem_limit_main(void *arg)
{
    (void)arg;
    ck_assert_int_eq(braid_sem_init(&sem, SEM_UNITS), 0);
    ck_assert_int_eq(braid_wg_add(&wg, SEM_CORO), 0);
    for (int i = 0; i < SEM_CORO; i++)
        ck_assert_int_eq(braid_go(limited, NULL), 0);
    ck_assert_int_eq(braid_wg_wait(&wg, BRAID_FOREVER), 0);
    ck_assert_int_le(atomic_load(&max_inside), SEM_UNITS);
    ck_assert_int_ge(atomic_load(&max_inside), 1);
    /* All units are back. */
    for (int i = 0; i < SEM_UNITS; i++)
        ck_assert_int_eq(braid_sem_acquire(&sem, 0), 0);
    ck_assert_int_eq(braid_sem_acquire(&sem, 0), -EAGAIN);
    int64_t start = braid_now(), dl = braid_after((TIMING ? 50 : 2000) * MS);
    ck_assert_int_eq(braid_sem_acquire(&sem, dl), -ETIMEDOUT);
    assert_on_time(start, dl);
    /* Static initialiser; overflow. */
    braid_sem s2 = BRAID_SEM_INIT(2);
    ck_assert_int_eq(braid_sem_acquire(&s2, 0), 0);
    ck_assert_int_eq(braid_sem_acquire(&s2, 0), 0);
    ck_assert_int_eq(braid_sem_acquire(&s2, 0), -EAGAIN);
    ck_assert_int_eq(braid_sem_init(&s2, UINT64_MAX), -EINVAL);
    ck_assert_int_eq(braid_sem_init(&s2, UINT64_MAX >> 1), 0);
    ck_assert_int_eq(braid_sem_release(&s2), -EOVERFLOW);
}

START_TEST(test_sem_limit)
{
    run(2, sem_limit_main, NULL);
}
END_TEST

/* FIFO: on one worker, waiters queue in spawn order and are served in
   that order; a released unit goes to the first waiter, not to a caller
   that tries right after the release. */
#define FIFO_N 5
static int order[FIFO_N], norder, nqueued;

static void fifo_waiter(void *arg)
{
    nqueued++;                  /* no switch point until it is queued */
    ck_assert_int_eq(braid_sem_acquire(&sem, BRAID_FOREVER), 0);
    order[norder++] = (int)(intptr_t)arg;
    braid_wg_done(&wg);
}

static void sem_fifo_main(void *arg)
{
    (void)arg;
    ck_assert_int_eq(braid_wg_add(&wg, FIFO_N), 0);
    for (int i = 0; i < FIFO_N; i++) {
        ck_assert_int_eq(braid_go(fifo_waiter, (void *)(intptr_t)i), 0);
        while (nqueued < i + 1)
            braid_yield();
    }
    for (int i = 0; i < FIFO_N; i++) {
        ck_assert_int_eq(braid_sem_release(&sem), 0);
        ck_assert_int_eq(braid_sem_acquire(&sem, 0), -EAGAIN);  /* handed */
        while (norder < i + 1)
            braid_yield();
    }
    ck_assert_int_eq(braid_wg_wait(&wg, BRAID_FOREVER), 0);
    for (int i = 0; i < FIFO_N; i++)
        ck_assert_int_eq(order[i], i);
}

START_TEST(test_sem_fifo)
{
    run(1, sem_fifo_main, NULL);
}
END_TEST

/* Cancelled in acquire: -ECANCELED and no unit consumed. */
static void *sem_taker(void *arg)
{
    (void)arg;
    return (void *)(intptr_t)braid_sem_acquire(&sem, BRAID_FOREVER);
}

static void cancel_sem_main(void *arg)
{
    (void)arg;
    braid_task *t = spawn(sem_taker, NULL);
    braid_task *u = spawn(sem_taker, NULL);
    braid_sleep(20 * MS);
    ck_assert_int_eq(braid_cancel(t), 0);
    ck_assert_int_eq(join(t), -ECANCELED);
    ck_assert_int_eq(braid_sem_release(&sem), 0);   /* goes to u */
    ck_assert_int_eq(join(u), 0);
    ck_assert_int_eq(braid_sem_acquire(&sem, 0), -EAGAIN);
    ck_assert_int_eq(braid_sem_release(&sem), 0);
    ck_assert_int_eq(braid_sem_acquire(&sem, 0), 0);
    ck_assert_int_eq(braid_sem_acquire(&sem, 0), -EAGAIN);
    /* A cancelled coroutine still takes a unit that is there. */
    ck_assert_int_eq(braid_sem_release(&sem), 0);
    ck_assert_int_eq(braid_cancel(braid_self()), 0);
    ck_assert_int_eq(braid_sem_acquire(&sem, BRAID_FOREVER), 0);
    ck_assert_int_eq(braid_sem_acquire(&sem, BRAID_FOREVER), -ECANCELED);
    /* A plain thread blocks and is woken by a release. */
    pthread_t th = thread(sem_taker, NULL);
    ck_assert_int_eq(braid_sem_release(&sem), 0);
    void *r;
    pthread_join(th, &r);
    ck_assert_int_eq((intptr_t)r, 0);
}

START_TEST(test_sem_cancel)
{
    run_threads(2, cancel_sem_main, NULL);
}
END_TEST

/* ---- once -------------------------------------------------------------- */

static _Atomic int once_calls, once_done;

static void once_fn(void)
{
    atomic_fetch_add(&once_calls, 1);
    braid_sleep(30 * MS);
    atomic_store(&once_done, 1);
}

static void *once_caller(void *arg)
{
    (void)arg;
    ck_assert_int_eq(braid_once_do(&once, once_fn), 0);
    ck_assert_int_eq(atomic_load(&once_done), 1);
    braid_wg_done(&wg);
    return NULL;
}

static void once_coro(void *arg)
{
    once_caller(arg);
}

#define ONCE_CORO 100
#define ONCE_THREADS 4

static void once_main(void *arg)
{
    (void)arg;
    pthread_t th[ONCE_THREADS];
    ck_assert_int_eq(braid_wg_add(&wg, ONCE_CORO + ONCE_THREADS), 0);
    for (int i = 0; i < ONCE_THREADS; i++)
        th[i] = thread(once_caller, NULL);
    for (int i = 0; i < ONCE_CORO; i++)
        ck_assert_int_eq(braid_go(once_coro, NULL), 0);
    ck_assert_int_eq(braid_wg_wait(&wg, BRAID_FOREVER), 0);
    for (int i = 0; i < ONCE_THREADS; i++)
        pthread_join(th[i], NULL);
    ck_assert_int_eq(atomic_load(&once_calls), 1);
    ck_assert_int_eq(braid_once_do(&once, once_fn), 0);
    ck_assert_int_eq(atomic_load(&once_calls), 1);
}

START_TEST(test_once)
{
    run_threads(2, once_main, NULL);
}
END_TEST

/* A cancelled waiter still returns only after fn has returned. */
static void *once_cancelled(void *arg)
{
    (void)arg;
    ck_assert_int_eq(braid_once_do(&once, once_fn), 0);
    return (void *)(intptr_t)atomic_load(&once_done);
}

static void *once_runner(void *arg)
{
    (void)arg;
    ck_assert_int_eq(braid_once_do(&once, once_fn), 0);
    return NULL;
}

static void once_cancel_main(void *arg)
{
    (void)arg;
    braid_task *r = spawn(once_runner, NULL);
    while (!atomic_load(&once_calls))
        braid_sleep(MS);
    braid_task *t = spawn(once_cancelled, NULL);
    braid_sleep(5 * MS);
    ck_assert_int_eq(braid_cancel(t), 0);
    ck_assert_int_eq(join(t), 1);
    join(r);
    ck_assert_int_eq(atomic_load(&once_calls), 1);
}

START_TEST(test_once_cancel)
{
    run(2, once_cancel_main, NULL);
}
END_TEST

/* ---- nursery ----------------------------------------------------------- */

static int child_ok(void *arg)
{
    (void)arg;
    braid_yield();
    atomic_fetch_add(&acounter, 1);
    return 0;
}

/* Sleeps arg ms, then returns the errno arg encodes (ms * 1000 + err). */
static int child_fail(void *arg)
{
    intptr_t v = (intptr_t)arg;
    braid_sleep(v / 1000 * MS);
    return -(int)(v % 1000);
}

static _Atomic int sleep_results;

/* Sleeps for a long time; returns what braid_sleep returned. */
static int child_sleeper(void *arg)
{
    (void)arg;
    int r = braid_sleep(60000 * MS);
    if (r == -ECANCELED)
        atomic_fetch_add(&sleep_results, 1);
    return r;
}

/* A child that spawns siblings while close waits. */
static int child_spawner(void *arg)
{
    braid_nursery *n = arg;
    braid_sleep(10 * MS);
    for (int i = 0; i < 10; i++)
        ck_assert_int_eq(braid_nursery_go(n, child_ok, NULL), 0);
    return 0;
}

static void nursery_basic_main(void *arg)
{
    (void)arg;
    braid_nursery *n;
    ck_assert_int_eq(braid_nursery_open(&n, BRAID_FOREVER), 0);
    for (int i = 0; i < 100; i++)
        ck_assert_int_eq(braid_nursery_go(n, child_ok, NULL), 0);
    ck_assert_int_eq(braid_nursery_go(n, child_spawner, n), 0);
    ck_assert_int_eq(braid_nursery_close(n), 0);
    ck_assert_int_eq(atomic_load(&acounter), 110);
    /* First failure in time wins, not first spawned. */
    ck_assert_int_eq(braid_nursery_open(&n, BRAID_FOREVER), 0);
    ck_assert_int_eq(braid_nursery_go(n, child_fail,
                                      (void *)(intptr_t)(200000 + E2BIG)), 0);
    ck_assert_int_eq(braid_nursery_go(n, child_fail,
                                      (void *)(intptr_t)(10000 + EIO)), 0);
    ck_assert_int_eq(braid_nursery_go(n, child_ok, NULL), 0);
    ck_assert_int_eq(braid_nursery_close(n), -EIO);
    /* An empty nursery. */
    ck_assert_int_eq(braid_nursery_open(&n, BRAID_FOREVER), 0);
    ck_assert_int_eq(braid_nursery_close(n), 0);
}

START_TEST(test_nursery_basic)
{
    run(2, nursery_basic_main, NULL);
}
END_TEST

static void nursery_cancel_main(void *arg)
{
    (void)arg;
    braid_nursery *n;
    ck_assert_int_eq(braid_nursery_open(&n, BRAID_FOREVER), 0);
    for (int i = 0; i < 10; i++)
        ck_assert_int_eq(braid_nursery_go(n, child_sleeper, NULL), 0);
    braid_sleep(10 * MS);
    int64_t start = braid_now();
    ck_assert_int_eq(braid_nursery_cancel(n), 0);
    ck_assert_int_eq(braid_nursery_go(n, child_ok, NULL), -ECANCELED);
    ck_assert_int_eq(braid_nursery_close(n), -ECANCELED);
    ck_assert_int_lt(braid_now() - start, SLACK);
    ck_assert_int_eq(atomic_load(&sleep_results), 10);
    ck_assert_int_eq(atomic_load(&acounter), 0);
    /* A deadline already past: nothing may start. */
    ck_assert_int_eq(braid_nursery_open(&n, 0), 0);
    ck_assert_int_eq(braid_nursery_go(n, child_ok, NULL), -ECANCELED);
    ck_assert_int_eq(braid_nursery_close(n), 0);
}

START_TEST(test_nursery_cancel)
{
    run(2, nursery_cancel_main, NULL);
}
END_TEST

/* The deadline cancels children by itself, before close is called. */
static void nursery_deadline_main(void *arg)
{
    (void)arg;
    braid_nursery *n;
    int64_t start = braid_now(), dl = braid_after((TIMING ? 50 : 2000) * MS);
    ck_assert_int_eq(braid_nursery_open(&n, dl), 0);
    ck_assert_int_eq(braid_nursery_go(n, child_sleeper, NULL), 0);
    ck_assert_int_eq(braid_nursery_go(n, child_ok, NULL), 0);
    while (atomic_load(&sleep_results) == 0)
        braid_sleep(MS);
    assert_on_time(start, dl);
    ck_assert_int_eq(braid_nursery_go(n, child_ok, NULL), -ECANCELED);
    ck_assert_int_eq(braid_nursery_close(n), -ECANCELED);
    ck_assert_int_eq(atomic_load(&acounter), 1);
    /* Children that finish before the deadline: close returns at once. */
    ck_assert_int_eq(braid_nursery_open(&n, braid_after(60000 * MS)), 0);
    ck_assert_int_eq(braid_nursery_go(n, child_ok, NULL), 0);
    start = braid_now();
    ck_assert_int_eq(braid_nursery_close(n), 0);
    ck_assert_int_lt(braid_now() - start, SLACK);
}

START_TEST(test_nursery_deadline)
{
    run(2, nursery_deadline_main, NULL);
}
END_TEST

/* A nursery used from a plain thread; a closer that is cancelled cancels
   its children. */
static void *nursery_thread(void *arg)
{
    (void)arg;
    braid_nursery *n;
    /* Long enough for the six spawns below even under valgrind, which
       runs one thread at a time (like the other deadlines here). */
    ck_assert_int_eq(braid_nursery_open(&n, braid_after((TIMING ? 50 : 2000) * MS)), 0);
    for (int i = 0; i < 5; i++)
        ck_assert_int_eq(braid_nursery_go(n, child_ok, NULL), 0);
    ck_assert_int_eq(braid_nursery_go(n, child_sleeper, NULL), 0);
    ck_assert_int_eq(braid_nursery_close(n), -ECANCELED);
    braid_wg_done(&wg);
    return NULL;
}

static void *cancelled_closer(void *arg)
{
    (void)arg;
    braid_nursery *n;
    ck_assert_int_eq(braid_nursery_open(&n, BRAID_FOREVER), 0);
    ck_assert_int_eq(braid_nursery_go(n, child_sleeper, NULL), 0);
    return (void *)(intptr_t)braid_nursery_close(n);
}

static void nursery_thread_main(void *arg)
{
    (void)arg;
    ck_assert_int_eq(braid_wg_add(&wg, 1), 0);
    pthread_t th = thread(nursery_thread, NULL);
    ck_assert_int_eq(braid_wg_wait(&wg, braid_after(10000 * MS)), 0);
    pthread_join(th, NULL);
    ck_assert_int_eq(atomic_load(&acounter), 5);
    ck_assert_int_eq(atomic_load(&sleep_results), 1);
    braid_task *t = spawn(cancelled_closer, NULL);
    braid_sleep(20 * MS);
    ck_assert_int_eq(braid_cancel(t), 0);
    ck_assert_int_eq(join(t), -ECANCELED);
    ck_assert_int_eq(atomic_load(&sleep_results), 2);
}

START_TEST(test_nursery_thread)
{
    run_threads(2, nursery_thread_main, NULL);
}
END_TEST

/* ---- bad arguments ----------------------------------------------------- */

static void noop(void) {}
static int noop_child(void *arg) { (void)arg; return 0; }

static void null_main(void *arg)
{
    (void)arg;
    braid_mutex m = BRAID_MUTEX_INIT;
    braid_cond c = BRAID_COND_INIT;
    braid_once o = BRAID_ONCE_INIT;
    braid_nursery *n;
    ck_assert_int_eq(braid_mutex_lock(NULL, BRAID_FOREVER), -EINVAL);
    ck_assert_int_eq(braid_mutex_trylock(NULL), -EINVAL);
    ck_assert_int_eq(braid_mutex_unlock(NULL), -EINVAL);
    ck_assert_int_eq(braid_cond_wait(NULL, &m, BRAID_FOREVER), -EINVAL);
    ck_assert_int_eq(braid_cond_wait(&c, NULL, BRAID_FOREVER), -EINVAL);
    ck_assert_int_eq(braid_cond_signal(NULL), -EINVAL);
    ck_assert_int_eq(braid_cond_broadcast(NULL), -EINVAL);
    ck_assert_int_eq(braid_wg_add(NULL, 1), -EINVAL);
    ck_assert_int_eq(braid_wg_done(NULL), -EINVAL);
    ck_assert_int_eq(braid_wg_wait(NULL, BRAID_FOREVER), -EINVAL);
    ck_assert_int_eq(braid_sem_init(NULL, 1), -EINVAL);
    ck_assert_int_eq(braid_sem_acquire(NULL, BRAID_FOREVER), -EINVAL);
    ck_assert_int_eq(braid_sem_release(NULL), -EINVAL);
    ck_assert_int_eq(braid_once_do(NULL, noop), -EINVAL);
    ck_assert_int_eq(braid_once_do(&o, NULL), -EINVAL);
    ck_assert_int_eq(braid_nursery_open(NULL, BRAID_FOREVER), -EINVAL);
    ck_assert_int_eq(braid_nursery_go(NULL, noop_child, NULL), -EINVAL);
    ck_assert_int_eq(braid_nursery_cancel(NULL), -EINVAL);
    ck_assert_int_eq(braid_nursery_close(NULL), -EINVAL);
    ck_assert_int_eq(braid_nursery_open(&n, BRAID_FOREVER), 0);
    ck_assert_int_eq(braid_nursery_go(n, NULL, NULL), -EINVAL);
    ck_assert_int_eq(braid_nursery_close(n), 0);
    /* Nothing was disturbed. */
    ck_assert_int_eq(braid_mutex_trylock(&m), 0);
    ck_assert_int_eq(braid_mutex_unlock(&m), 0);
    ck_assert_int_eq(braid_once_do(&o, noop), 0);
}

START_TEST(test_null_args)
{
    run(1, null_main, NULL);
}
END_TEST

/* ---- plain threads, no runtime at all ---------------------------------- */

static void *plain_worker(void *arg)
{
    (void)arg;
    for (int i = 0; i < 20000; i++) {
        ck_assert_int_eq(braid_mutex_lock(&mu, BRAID_FOREVER), 0);
        counter++;
        if (counter % 1000 == 0)
            ck_assert_int_eq(braid_cond_broadcast(&cv), 0);
        ck_assert_int_eq(braid_mutex_unlock(&mu), 0);
    }
    ck_assert_int_eq(braid_sem_release(&sem), 0);
    ck_assert_int_eq(braid_wg_done(&wg), 0);
    return NULL;
}

START_TEST(test_no_runtime)
{
    pthread_t th[3];
    ck_assert_int_eq(braid_wg_add(&wg, 3), 0);
    for (int i = 0; i < 3; i++)
        th[i] = thread(plain_worker, NULL);
    ck_assert_int_eq(braid_mutex_lock(&mu, BRAID_FOREVER), 0);
    while (counter < 60000)
        ck_assert_int_eq(braid_cond_wait(&cv, &mu, BRAID_FOREVER), 0);
    ck_assert_int_eq(braid_mutex_unlock(&mu), 0);
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(braid_sem_acquire(&sem, BRAID_FOREVER), 0);
    ck_assert_int_eq(braid_wg_wait(&wg, BRAID_FOREVER), 0);
    for (int i = 0; i < 3; i++)
        pthread_join(th[i], NULL);
    ck_assert_int_eq(counter, 60000);
    int64_t start = braid_now(), dl = braid_after((TIMING ? 50 : 2000) * MS);
    ck_assert_int_eq(braid_sem_acquire(&sem, dl), -ETIMEDOUT);
    assert_on_time(start, dl);
    ck_assert_int_eq(braid_once_do(&once, once_fn), 0);
    ck_assert_int_eq(atomic_load(&once_calls), 1);
}
END_TEST

/* ---- runner ------------------------------------------------------------ */

#define ADD_CASE(s, test, secs) do { \
        TCase *tc_ = tcase_create(#test); \
        tcase_set_timeout(tc_, (secs)); \
        tcase_add_test(tc_, test); \
        suite_add_tcase((s), tc_); \
    } while (0)

static Suite *sync_suite(void)
{
    Suite *s = suite_create("sync");
    ADD_CASE(s, test_mutex_errors, 60);
    ADD_CASE(s, test_mutex_counter, 120);
    ADD_CASE(s, test_mutex_starvation, 60);
    ADD_CASE(s, test_mutex_threads, 60);
    ADD_CASE(s, test_mutex_thread_deadline, 60);
    ADD_CASE(s, test_mutex_cancel, 60);
    ADD_CASE(s, test_cond_prodcons, 60);
    ADD_CASE(s, test_cond_signal_broadcast, 60);
    ADD_CASE(s, test_cond_timeout, 60);
    ADD_CASE(s, test_cond_cancel, 60);
    ADD_CASE(s, test_wg_many, 60);
    ADD_CASE(s, test_wg_errors, 60);
    ADD_CASE(s, test_wg_cancel, 60);
    ADD_CASE(s, test_sem_limit, 60);
    ADD_CASE(s, test_sem_fifo, 60);
    ADD_CASE(s, test_sem_cancel, 60);
    ADD_CASE(s, test_once, 60);
    ADD_CASE(s, test_once_cancel, 60);
    ADD_CASE(s, test_nursery_basic, 60);
    ADD_CASE(s, test_nursery_cancel, 60);
    ADD_CASE(s, test_nursery_deadline, 60);
    ADD_CASE(s, test_nursery_thread, 60);
    ADD_CASE(s, test_null_args, 60);
    ADD_CASE(s, test_no_runtime, 60);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(sync_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
