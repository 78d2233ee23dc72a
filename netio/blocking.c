/*
 * blocking.c - the helper pool behind braid_blocking and the file fallback.
 *
 * A bounded pool of plain threads (at most BRAID_BLOCKING_THREADS, default
 * 64, read when the pool first starts a thread in a run) that grows on
 * demand and retires a thread idle for more than 10 s.  A submitting
 * coroutine queues a job (on its own stack) and parks; a pool thread runs
 * it and completes the job's waiter.
 *
 * B.mu protects the queue, the counters and every queued/running job's
 * state and w.  Job state: QUEUED (on the queue) -> RUNNING -> DONE; or
 * QUEUED -> WITHDRAWN when the owner's deadline or cancellation comes
 * first (the job never runs: a cancelled operation did not happen).  Once a
 * job runs, its owner waits for DONE whatever happens, since fn may use
 * the owner's stack.  The completer claims the waiter under B.mu and wakes
 * it after unlocking: a claimed waiter stays parked (and its frame alive)
 * until woken.  Lock order: B.mu < scheduler locks.
 *
 * Growth.  A job that finds no idle thread starts one at once only while
 * the pool has fewer than EAGER threads (the CPU count, at least 2).
 * Beyond that the I/O thread grows the pool (braid__pool_due /
 * braid__pool_grow_late) when jobs wait and fewer than EAGER threads are
 * idle or running a job younger than GROW_NS: a thread in a call that
 * long is taken to be blocked and no longer counts, as Go's sysmon hands
 * a P on from a syscall that has lasted 20 us.  Short calls then share a
 * few hot threads, and calls that block still get threads, EAGER more per
 * look.  The looks come every GROW_NS while they start threads and back
 * off to PERIOD_MAX while they find only short calls, so a call that
 * blocks after such a spell waits up to 1 ms for its thread.  A thread
 * per job on 2 CPUs (64 coroutines reading cached pages through the pool)
 * spent its time switching among 64 threads and fighting over B.mu: 5x
 * slower than 2 threads.  Running jobs are listed in start order (B.run,
 * B.mu).  late (atomic, written under B.mu) says jobs may wait for
 * growth; the I/O thread reads it after its pre-sleep fence and the
 * submitter kicks it after queueing (the timer kick protocol of
 * poller.c).
 *
 * Shutdown (braid__pool_fini, after the workers stopped): queued jobs are
 * withdrawn without waking anyone (their coroutines are abandoned), running
 * ones finish, and every thread is joined, so nothing outlives braid_run.
 */
#include "../runtime/common.h"
#include "netio.h"
#include "poller.h"

#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#define IDLE_NS (10 * (int64_t)1000000000)
#define GROW_NS 50000           /* a call this long is taken as blocked */
#define PERIOD_MAX 1000000      /* the I/O thread's looks, backed off */
#define DEFAULT_MAX 64
#define HARD_MAX 1024

/* A list of jobs through next/prev (a job is on one at a time), with its
   length.  B.mu. */
typedef struct jlist { braid__job *head, *tail; unsigned n; } jlist;

static struct {
    pthread_mutex_t mu;
    pthread_cond_t work;        /* a job was queued, or stopping */
    pthread_cond_t gone;        /* a thread retired */
    jlist q;                    /* queued jobs */
    jlist run;                  /* running jobs, oldest first */
    unsigned idle, nthreads, max, eager;
    _Atomic int late;           /* jobs may wait for braid__pool_grow_late */
    int64_t period, next_look;  /* the I/O thread's looks, backed off */
    bool stopping;
    pthread_t zombies[HARD_MAX];    /* retired, not yet joined */
    unsigned nzombies;
} B = {
    .mu = PTHREAD_MUTEX_INITIALIZER,
    .work = PTHREAD_COND_INITIALIZER,
    .gone = PTHREAD_COND_INITIALIZER,
};

static void l_push(jlist *l, braid__job *j)
{
    j->next = NULL;
    j->prev = l->tail;
    if (l->tail) l->tail->next = j; else l->head = j;
    l->tail = j;
    l->n++;
}

static void l_remove(jlist *l, braid__job *j)
{
    if (j->prev) j->prev->next = j->next; else l->head = j->next;
    if (j->next) j->next->prev = j->prev; else l->tail = j->prev;
    l->n--;
}

static void join_zombies(void)
{
    while (B.nzombies)
        pthread_join(B.zombies[--B.nzombies], NULL);
}

/* Wait for a job; NULL when this thread should retire.  B.mu held. */
static braid__job *next_job(void)
{
    while (!B.q.head && !B.stopping) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += IDLE_NS / 1000000000;
        B.idle++;
        int r = pthread_cond_timedwait(&B.work, &B.mu, &ts);
        B.idle--;
        if (r == ETIMEDOUT && !B.q.head)
            return NULL;
    }
    braid__job *j = B.q.head;
    if (j)
        l_remove(&B.q, j);
    return j;
}

static void finish(braid__job *j)
{
    j->state = JOB_DONE;
    braid__waiter *w = j->w;
    j->w = NULL;
    bool won = w && !atomic_load(&braid__netio_down) &&
               braid__waiter_claim(w, 0);
    pthread_mutex_unlock(&B.mu);
    if (won)
        braid__waiter_wake(w, NULL);
    pthread_mutex_lock(&B.mu);
}

static void *pool_main(void *arg)
{
    pthread_setname_np(pthread_self(), "braid-blocking");
    pthread_mutex_lock(&B.mu);
    braid__job *j;
    while ((j = next_job())) {
        j->state = JOB_RUNNING;
        j->started_at = braid_now();
        l_push(&B.run, j);
        pthread_mutex_unlock(&B.mu);
        j->run(j);
        pthread_mutex_lock(&B.mu);
        l_remove(&B.run, j);
        finish(j);
    }
    B.nthreads--;
    B.zombies[B.nzombies++] = pthread_self();
    pthread_cond_broadcast(&B.gone);
    pthread_mutex_unlock(&B.mu);
    return NULL;
}

static unsigned max_threads(void)
{
    const char *v = getenv("BRAID_BLOCKING_THREADS");
    long n = v ? strtol(v, NULL, 10) : 0;
    if (n <= 0)
        return DEFAULT_MAX;
    return n > HARD_MAX ? HARD_MAX : (unsigned)n;
}

static unsigned eager_threads(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n < 2 ? 2 : n > HARD_MAX ? HARD_MAX : (unsigned)n;
}

/* Start a thread.  0, or -errno.  B.mu held. */
static int start_thread(void)
{
    join_zombies();
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);   /* signals go elsewhere */
    pthread_t t;
    int r = pthread_create(&t, NULL, pool_main, NULL);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (r)
        return -r;
    B.nthreads++;
    return 0;
}

/* For a job about to be queued: a thread for it now while fewer than
   EAGER run (an idle one not yet spoken for, else a new one), else it
   waits for a running thread to come free or for braid__pool_grow_late.
   0: it has a thread; 1: it waits, *look receives when the I/O thread
   should look; -errno: no thread could be started.  B.mu held. */
static int admit(int64_t *look)
{
    if (!B.nthreads) {
        B.max = max_threads();
        B.eager = eager_threads();
    }
    if (B.run.n < B.eager) {
        if (B.idle > B.q.n) {
            pthread_cond_signal(&B.work);
            return 0;
        }
        if (B.nthreads < B.max) {
            int r = start_thread();
            if (r == 0 || !B.nthreads)
                return r;
        }
    }
    if (!ld_relaxed(&B.late)) {         /* a new episode: look soon */
        st_relaxed(&B.late, 1);
        B.period = GROW_NS;
        B.next_look = 0;
    }
    *look = (B.run.head ? B.run.head->started_at : braid_now()) + GROW_NS;
    return 1;
}

int64_t braid__pool_due(void)
{
    if (!ld_relaxed(&B.late))
        return -1;
    int64_t due = -1;
    pthread_mutex_lock(&B.mu);
    if (B.q.head && B.nthreads < B.max && !B.stopping) {
        /* When the oldest running call turns GROW_NS, but not before the
           next look the backoff allows. */
        int64_t now = braid_now();
        due = (B.run.head ? B.run.head->started_at : now) + GROW_NS;
        if (due < B.next_look)
            due = B.next_look;
        if (due <= now)
            due = now + B.period;
    } else {
        st_relaxed(&B.late, 0);         /* nothing to grow for */
    }
    pthread_mutex_unlock(&B.mu);
    return due;
}

void braid__pool_grow_late(int64_t now)
{
    if (!ld_relaxed(&B.late))
        return;
    pthread_mutex_lock(&B.mu);
    if (!B.q.head || B.stopping || now < B.next_look) {
        pthread_mutex_unlock(&B.mu);
        return;
    }
    unsigned stuck = 0;
    for (braid__job *j = B.run.head; j && j->started_at + GROW_NS <= now;
         j = j->next)
        stuck++;
    /* Keep EAGER threads free or in young calls: wake idle ones first,
       then start new ones, one per queued job at most. */
    unsigned fresh = B.run.n - stuck, signalled = 0, acted = 0;
    unsigned need = fresh < B.eager ? B.eager - fresh : 0;
    if (need > B.q.n)
        need = B.q.n;
    while (need--) {
        if (signalled < B.idle) {
            pthread_cond_signal(&B.work);
            signalled++;
        } else if (B.nthreads >= B.max || start_thread() != 0) {
            break;
        }
        acted++;
    }
    /* Jobs wait for short calls: look less often (up to PERIOD_MAX), as
       Go's sysmon backs off while there is nothing to retake. */
    if (acted)
        B.period = GROW_NS;
    else if (B.period < PERIOD_MAX)
        B.period *= 2;
    B.next_look = now + B.period;
    pthread_mutex_unlock(&B.mu);
}

/* Park until j is DONE, whatever the deadline.  A cancelled coroutine
   waits it out: the wait is not cancellable. */
static void wait_done(braid__job *j)
{
    for (;;) {
        braid__waiter w;
        braid__waiter_init(&w, "blocking (finishing)", j);
        w.nocancel = true;          /* the job uses our stack: wait it out */
        pthread_mutex_lock(&B.mu);
        if (j->state == JOB_DONE) {
            pthread_mutex_unlock(&B.mu);
            return;
        }
        j->w = &w;
        pthread_mutex_unlock(&B.mu);
        if (braid__waiter_wait(&w, BRAID_FOREVER) == 0)
            return;
        pthread_mutex_lock(&B.mu);
        if (j->w == &w)
            j->w = NULL;
        pthread_mutex_unlock(&B.mu);
        braid_yield();
    }
}

/* The wait ended early with rc: withdraw j if it has not started, else
   wait for it.  Returns rc if withdrawn, else 0.  */
static int interrupted(braid__job *j, int rc)
{
    pthread_mutex_lock(&B.mu);
    if (j->state == JOB_QUEUED) {
        l_remove(&B.q, j);
        j->state = JOB_WITHDRAWN;
        pthread_mutex_unlock(&B.mu);
        return rc;
    }
    j->w = NULL;
    pthread_mutex_unlock(&B.mu);
    wait_done(j);
    return 0;
}

int braid__pool_run(braid__job *j, int64_t deadline, const char *what,
                    int *late)
{
    braid__waiter w;
    braid__waiter_init(&w, what, j);
    *late = 0;
    j->w = &w;
    j->state = JOB_QUEUED;
    pthread_mutex_lock(&B.mu);
    int64_t look = -1;
    int r = admit(&look);
    if (r < 0) {
        pthread_mutex_unlock(&B.mu);
        return -EAGAIN;
    }
    braid__source_add();                /* before anyone can wake us */
    l_push(&B.q, j);
    pthread_mutex_unlock(&B.mu);
    if (r > 0)
        braid__poller_kick(look);
    int rc = braid__waiter_wait(&w, deadline);
    if (rc != 0) {
        *late = rc;
        rc = interrupted(j, rc);
    }
    braid__source_del();
    return rc;
}

void braid__pool_fini(void)
{
    pthread_mutex_lock(&B.mu);
    B.stopping = true;
    while (B.q.head) {                    /* abandoned with their coroutines */
        B.q.head->state = JOB_WITHDRAWN;
        l_remove(&B.q, B.q.head);
    }
    pthread_cond_broadcast(&B.work);
    while (B.nthreads)
        pthread_cond_wait(&B.gone, &B.mu);
    join_zombies();
    B.stopping = false;
    pthread_mutex_unlock(&B.mu);
}

static void call_fn(braid__job *j)
{
    j->result = j->fn(j->arg);
}

BRAID_EXPORT int braid_blocking(void *(*fn)(void *), void *arg, void **result)
{
    BRAID__FORK_GUARD();
    if (!fn)
        return -EINVAL;
    braid__job j = { .run = call_fn, .fn = fn, .arg = arg };
    int rc = 0, late = 0;
    if (braid__current())
        rc = braid__pool_run(&j, BRAID_FOREVER, "blocking", &late);
    else
        call_fn(&j);                    /* a plain thread may block */
    if (rc < 0)
        return rc;                      /* withdrawn: fn never ran */
    if (result)
        *result = j.result;
    return late;                        /* -ECANCELED if cancelled meanwhile */
}
