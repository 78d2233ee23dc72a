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
 * Shutdown (braid__pool_fini, after the workers stopped): queued jobs are
 * withdrawn without waking anyone (their coroutines are abandoned), running
 * ones finish, and every thread is joined, so nothing outlives braid_run.
 */
#include "../runtime/common.h"
#include "netio.h"

#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <time.h>

#define IDLE_NS (10 * (int64_t)1000000000)
#define DEFAULT_MAX 64
#define HARD_MAX 1024

static struct {
    pthread_mutex_t mu;
    pthread_cond_t work;        /* a job was queued, or stopping */
    pthread_cond_t gone;        /* a thread retired */
    braid__job *head, *tail;    /* queued jobs */
    unsigned queued, idle, nthreads, max;
    bool stopping;
    pthread_t zombies[HARD_MAX];    /* retired, not yet joined */
    unsigned nzombies;
} B = {
    .mu = PTHREAD_MUTEX_INITIALIZER,
    .work = PTHREAD_COND_INITIALIZER,
    .gone = PTHREAD_COND_INITIALIZER,
};

static void q_push(braid__job *j)
{
    j->next = NULL;
    j->prev = B.tail;
    if (B.tail) B.tail->next = j; else B.head = j;
    B.tail = j;
    B.queued++;
}

static void q_remove(braid__job *j)
{
    if (j->prev) j->prev->next = j->next; else B.head = j->next;
    if (j->next) j->next->prev = j->prev; else B.tail = j->prev;
    B.queued--;
}

static void join_zombies(void)
{
    while (B.nzombies)
        pthread_join(B.zombies[--B.nzombies], NULL);
}

/* Wait for a job; NULL when this thread should retire.  B.mu held. */
static braid__job *next_job(void)
{
    while (!B.head && !B.stopping) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += IDLE_NS / 1000000000;
        B.idle++;
        int r = pthread_cond_timedwait(&B.work, &B.mu, &ts);
        B.idle--;
        if (r == ETIMEDOUT && !B.head)
            return NULL;
    }
    braid__job *j = B.head;
    if (j)
        q_remove(j);
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
        pthread_mutex_unlock(&B.mu);
        j->run(j);
        pthread_mutex_lock(&B.mu);
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

/* Start a thread if every idle one already has a job.  0, or -errno when
   none could be started.  B.mu held. */
static int grow(void)
{
    if (!B.nthreads)
        B.max = max_threads();
    if (B.idle > B.queued || B.nthreads >= B.max)
        return 0;
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
        q_remove(j);
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
    int r = grow();
    if (r < 0 && !B.nthreads) {
        pthread_mutex_unlock(&B.mu);
        return -EAGAIN;
    }
    braid__source_add();                /* before anyone can wake us */
    q_push(j);
    pthread_cond_signal(&B.work);
    pthread_mutex_unlock(&B.mu);
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
    while (B.head) {                    /* abandoned with their coroutines */
        B.head->state = JOB_WITHDRAWN;
        q_remove(B.head);
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
