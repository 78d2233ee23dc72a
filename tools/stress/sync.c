/*
 * sync.c - mutexes, condition variables, wait groups, semaphores and once
 * across migrating coroutines and a few plain pthreads.
 *
 * Invariants:
 *  - mutex: never two holders (an atomic occupancy count checked inside
 *    the critical section), and a plain counter incremented under the lock
 *    equals the number of successful locks; lock deadlines time out
 *    cleanly (-EAGAIN / -ETIMEDOUT, never early);
 *  - errno survives a switch: each coroutine sets it before a yield and
 *    finds the same value after (also when it resumed on another thread,
 *    counted as a migration);
 *  - cond: a bounded queue guarded by a mutex and two condition variables
 *    passes every item exactly once (sum and count);
 *  - wait groups, semaphores and once: see waits.c.
 */
#include "stress.h"

#include <pthread.h>
#include <stdlib.h>

typedef struct shared {
    braid_mutex mu;
    _Atomic int inside;
    uint64_t counter;                 /* protected by mu */
    _Atomic uint64_t locks;           /* successful locks */
    braid_wg wg;
    unsigned iters;
} shared;

typedef struct worker { shared *sh; unsigned id; bool thread; st_rng rng; } worker;

static int lock(worker *w)
{
    shared *sh = w->sh;
    int rc;
    int64_t dl;
    switch (st_below(&w->rng, 4)) {
    case 0: return braid_mutex_trylock(&sh->mu);
    case 1: dl = braid_after((int64_t)st_below(&w->rng, 200 * ST_US)); break;
    default: dl = BRAID_FOREVER; break;
    }
    rc = braid_mutex_lock(&sh->mu, dl);
    if (rc == -ETIMEDOUT && braid_now() < dl) st_fail("sync: mutex lock timed out early");
    return rc;
}

/* errno and thread identity through calls the compiler cannot see
   through: __errno_location and pthread_self are declared const, so a
   cached result would outlive a migration (GCC even infers const for a
   noinline wrapper, hence the volatile asm) and the checks would test the
   compiler rather than the runtime. */
__attribute__((noinline)) static int get_errno(void)
{
    __asm__ volatile("" ::: "memory");
    return errno;
}

__attribute__((noinline)) static void set_errno(int e)
{
    __asm__ volatile("" ::: "memory");
    errno = e;
}

__attribute__((noinline)) static pthread_t thread_now(void)
{
    __asm__ volatile("" ::: "memory");
    return pthread_self();
}

/* errno must survive a yield, wherever the coroutine resumes. */
static void errno_yield(worker *w)
{
    int mine = 1000 + (int)w->id, now;
    pthread_t before = thread_now();
    set_errno(mine);
    braid_yield();
    if ((now = get_errno()) != mine)
        st_fail("sync: errno %d after a yield, was %d", now, mine);
    if (!pthread_equal(before, thread_now())) st_count(C_MIGRATIONS, 1);
}

static void critical(worker *w)
{
    shared *sh = w->sh;
    if (atomic_fetch_add(&sh->inside, 1) != 0) st_fail("sync: two mutex holders");
    uint64_t c = sh->counter;
    if (!w->thread && st_below(&w->rng, 8) == 0) errno_yield(w);
    sh->counter = c + 1;
    atomic_fetch_sub(&sh->inside, 1);
    atomic_fetch_add(&sh->locks, 1);
}

static void mutex_loop(worker *w)
{
    for (unsigned i = 0; i < w->sh->iters; i++) {
        pthread_t before = thread_now();
        int rc = lock(w);
        if (!w->thread && !pthread_equal(before, thread_now())) st_count(C_MIGRATIONS, 1);
        st_count(C_OPS, 1);
        if (rc == -EBUSY || rc == -EAGAIN || rc == -ETIMEDOUT) {
            st_count(C_TIMEOUTS, 1);
            continue;
        }
        if (rc != 0) {
            st_fail("sync: mutex lock %s", braid_strerror(rc));
            break;
        }
        critical(w);
        if ((rc = braid_mutex_unlock(&w->sh->mu)) != 0)
            st_fail("sync: mutex unlock %s", braid_strerror(rc));
        if (!w->thread && st_below(&w->rng, 4) == 0) errno_yield(w);
    }
    if (!w->thread) st_count(C_COMPLETED, 1);
    braid_wg_done(&w->sh->wg);
    free(w);
}

static void mutex_co(void *arg) { mutex_loop(arg); }
static void *mutex_thread(void *arg) { mutex_loop(arg); return NULL; }
static void *join_thread(void *arg) { pthread_join(*(pthread_t *)arg, NULL); return NULL; }

static void mutex_round(st_rng *r)
{
    shared *sh = calloc(1, sizeof *sh);
    unsigned nco = (unsigned)st_range(r, 2, 32), nth = (unsigned)st_below(r, 3);
    pthread_t th[2];
    sh->iters = (unsigned)st_range(r, 50, 2000);
    braid_wg_add(&sh->wg, nco + nth);
    for (unsigned i = 0; i < nco + nth; i++) {
        worker *w = malloc(sizeof *w);
        bool thread = i >= nco;         /* w belongs to the worker once started */
        *w = (worker){ sh, i, thread, st_rng_derive(st_next(r), i) };
        int rc = thread ? pthread_create(&th[i - nco], NULL, mutex_thread, w)
                        : braid_go(mutex_co, w);
        if (rc != 0) {
            st_fail("sync: starting a worker failed");
            return;
        }
        if (!thread) st_count(C_SPAWNED, 1);
    }
    if (braid_wg_wait(&sh->wg, braid_after(ST_PATIENCE)) != 0) {
        st_fail("sync: mutex round did not finish");
        return;
    }
    for (unsigned i = 0; i < nth; i++) braid_blocking(join_thread, &th[i], NULL);
    if (sh->counter != sh->locks)
        st_fail("sync: counter %llu after %llu locks",
                (unsigned long long)sh->counter, (unsigned long long)sh->locks);
    free(sh);
}

/* ---- condition variables: a bounded queue -------------------------------------- */

#define QCAP 4

typedef struct queue {
    braid_mutex mu;
    braid_cond not_full, not_empty;
    uint64_t items[QCAP];             /* protected by mu */
    unsigned head, n, producers;      /* protected by mu */
    _Atomic uint64_t sum, count;
    uint64_t per;
    braid_wg wg;
} queue;

typedef struct qactor { queue *q; unsigned id; st_rng rng; } qactor;

static void cwait(qactor *a, braid_cond *c)
{
    int64_t dl = st_below(&a->rng, 3) ? BRAID_FOREVER
                 : braid_after((int64_t)st_below(&a->rng, 300 * ST_US));
    int rc = braid_cond_wait(c, &a->q->mu, dl);
    if (rc != 0 && rc != -ETIMEDOUT && rc != -EAGAIN)
        st_fail("sync: braid_cond_wait %s", braid_strerror(rc));
    if (rc == -ETIMEDOUT) st_count(C_TIMEOUTS, 1);
    if (braid_mutex_trylock(&a->q->mu) != -EBUSY)
        st_fail("sync: braid_cond_wait returned (%d) without the mutex", rc);
}

static void wake(qactor *a, braid_cond *c)
{
    int rc = st_below(&a->rng, 2) ? braid_cond_signal(c) : braid_cond_broadcast(c);
    if (rc != 0) st_fail("sync: cond signal %s", braid_strerror(rc));
}

static void qproducer(void *arg)
{
    qactor *a = arg;
    queue *q = a->q;
    for (uint64_t i = 0; i < q->per; i++) {
        braid_mutex_lock(&q->mu, BRAID_FOREVER);
        while (q->n == QCAP) cwait(a, &q->not_full);
        q->items[(q->head + q->n++) % QCAP] = a->id * q->per + i + 1;
        wake(a, &q->not_empty);
        braid_mutex_unlock(&q->mu);
        st_count(C_SENT, 1);
    }
    braid_mutex_lock(&q->mu, BRAID_FOREVER);
    if (--q->producers == 0) braid_cond_broadcast(&q->not_empty);
    braid_mutex_unlock(&q->mu);
    st_count(C_COMPLETED, 1);
    braid_wg_done(&q->wg);
    free(a);
}

static void qconsumer(void *arg)
{
    qactor *a = arg;
    queue *q = a->q;
    braid_mutex_lock(&q->mu, BRAID_FOREVER);
    for (;;) {
        while (q->n == 0 && q->producers) cwait(a, &q->not_empty);
        if (q->n == 0) break;
        uint64_t v = q->items[q->head];
        q->head = (q->head + 1) % QCAP;
        q->n--;
        wake(a, &q->not_full);
        braid_mutex_unlock(&q->mu);
        atomic_fetch_add(&q->sum, v);
        atomic_fetch_add(&q->count, 1);
        st_count(C_RECEIVED, 1);
        braid_mutex_lock(&q->mu, BRAID_FOREVER);
    }
    braid_mutex_unlock(&q->mu);
    st_count(C_COMPLETED, 1);
    braid_wg_done(&q->wg);
    free(a);
}

static void cond_round(st_rng *r)
{
    queue *q = calloc(1, sizeof *q);
    unsigned np = (unsigned)st_range(r, 1, 4), nc = (unsigned)st_range(r, 1, 4);
    q->per = st_range(r, 10, 2000);
    q->producers = np;
    braid_wg_add(&q->wg, np + nc);
    for (unsigned i = 0; i < np + nc; i++) {
        qactor *a = malloc(sizeof *a);
        *a = (qactor){ q, i < np ? i : i - np, st_rng_derive(st_next(r), i) };
        if (braid_go(i < np ? qproducer : qconsumer, a) != 0) st_fail("sync: braid_go");
        st_count(C_SPAWNED, 1);
    }
    if (braid_wg_wait(&q->wg, braid_after(ST_PATIENCE)) != 0) {
        st_fail("sync: cond round did not finish");
        return;
    }
    uint64_t n = np * q->per, want = n * (n + 1) / 2;
    if (q->count != n || q->sum != want)
        st_fail("sync: cond queue passed %llu items summing %llu, want %llu and %llu",
                (unsigned long long)q->count, (unsigned long long)q->sum,
                (unsigned long long)n, (unsigned long long)want);
    free(q);
}

void st_sync_run(st_prof *p)
{
    st_rng r = st_rng_derive(p->seed, 0x5c);
    do {
        switch (st_below(&r, 5)) {
        case 0: mutex_round(&r); break;
        case 1: cond_round(&r); break;
        case 2: st_wg_round(&r); break;
        case 3: st_sem_round(&r); break;
        default: st_once_round(&r); break;
        }
        st_count(C_ROUNDS, 1);
    } while (!st_over());
}
