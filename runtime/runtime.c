/*
 * runtime.c - braid_run: configuration, start, shutdown, stats.
 *
 * braid_run's own thread does not run coroutines: it starts the workers
 * and the I/O thread, queues the main coroutine, and sleeps on rt.done
 * until the main coroutine has exited (or the deadlock check fired).  Then
 * it stops the workers (each finishes the coroutine it runs up to its next
 * switch), the I/O thread and the pools, and frees every stack and
 * coroutine object: coroutines still blocked are abandoned, as in Go.
 *
 * Fork: a child forked while a runtime runs has none of its threads; every
 * entry point returns -EPERM there (braid__forked_child) until exec.
 */
#include "runtime.h"
#include "timer.h"
#include "waiter.h"
#include "../netio/poller.h"

#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static _Atomic int in_run;          /* one braid_run at a time */
_Atomic int braid__forked;          /* see common.h */
static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;

static void on_fork_child(void)
{
    if (atomic_load(&braid__rt.running)) atomic_store(&braid__forked, 1);
}

static void install_atfork(void)
{
    pthread_atfork(NULL, NULL, on_fork_child);
}

bool braid__forked_child(void) { return atomic_load_explicit(&braid__forked, memory_order_relaxed); }

bool braid__running(void)
{
    return braid__running_inline();
}

/* CPUs this process may use: affinity mask, then the cgroup v2 quota. */
static unsigned cpu_count(void)
{
    unsigned n = 0;
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0) n = (unsigned)CPU_COUNT(&set);
    if (n == 0) {
        long c = sysconf(_SC_NPROCESSORS_ONLN);
        n = c > 0 ? (unsigned)c : 1;
    }
    FILE *f = fopen("/sys/fs/cgroup/cpu.max", "r");
    if (f) {
        char quota[32];
        long period;
        if (fscanf(f, "%31s %ld", quota, &period) == 2 &&
            strcmp(quota, "max") != 0 && period > 0) {
            long q = atol(quota);
            unsigned lim = (unsigned)((q + period - 1) / period);
            if (lim >= 1 && lim < n) n = lim;
        }
        fclose(f);
    }
    return n;
}

static int configure(const braid_config *cfg)
{
    unsigned n = cfg ? cfg->workers : 0;
    if (n == 0) {
        const char *e = getenv("BRAID_WORKERS");
        n = e && atoi(e) > 0 ? (unsigned)atoi(e) : cpu_count();
    }
    if (n > 1024) return -EINVAL;
    size_t ss = cfg ? cfg->stack_size : 0;
    if (ss == 0) {
        const char *e = getenv("BRAID_STACK_SIZE");
        ss = e ? (size_t)strtoull(e, NULL, 0) : BRAID_STACK_DEFAULT;
    }
    if (ss < BRAID_STACK_MIN || ss > BRAID_STACK_MAX) return -EINVAL;
    braid__rt.nworkers = n;
    braid__rt.stack_size = braid__stack_round(ss);
    braid__rt.no_deadlock_check = cfg ? cfg->no_deadlock_check : 0;
    const char *chaos = getenv("BRAID_CHAOS");
    braid__rt.chaos = chaos ? strtoull(chaos, NULL, 0) | 1 : 0;
    braid__chaos = braid__rt.chaos;
    return 0;
}

typedef struct { void (*fn)(void *); void *arg; } main_args;

static void *main_tramp(void *p)
{
    main_args *m = p;
    m->fn(m->arg);
    return NULL;
}

braid__coro *braid__coro_spawn(void *(*fn)(void *), void *arg,
                               const braid_attr *attr, unsigned flags, int *err);

/* Deferred action of the main coroutine's exit. */
void braid__main_done(braid__coro *c);
void braid__main_done(braid__coro *c)
{
    (void)c;
    atomic_store(&braid__rt.stopping, 1);
    atomic_store(&braid__rt.done, 1);
    braid__futex_wake(&braid__rt.done, 1);
}

static void reset_state(void)
{
    atomic_store(&braid__rt.stopping, 0);
    atomic_store(&braid__rt.result, 0);
    atomic_store(&braid__rt.done, 0);
    atomic_store(&braid__rt.sources, 0);
    atomic_store(&braid__rt.foreign_spawned, 0);
    atomic_store(&braid__rt.global_pushes, 0);
    atomic_store(&braid__rt.polls, 0);
}

static braid_stats last_stats;

static void teardown(void)
{
    braid_stats_get(&last_stats);
    braid__sched_stop();
    braid__poller_stop();
    braid__sched_free();
    braid__netio_fini();
    braid__timers_fini();
    braid__stacks_release_all();
    braid__coros_release_all();
}

static int start(void (*main_fn)(void *), main_args *m)
{
    braid__asym_init();         /* once per process: see common.h */
    int r = braid__timers_init(braid__rt.nworkers + 1);
    if (r < 0) return r;
    if ((r = braid__sched_start()) < 0) {
        braid__timers_fini();
        return r;
    }
    atomic_store(&braid__rt.running, 1);
    int err;
    m->fn = main_fn;
    braid__coro *c = braid__coro_spawn(main_tramp, m, NULL,
                                       CORO_DETACHED | CORO_MAIN, &err);
    if (!c) return err;
    braid__rt.main = c;
    if ((r = braid__poller_start()) < 0) return r;
    int braid__sched_threads(void);
    return braid__sched_threads();
}

BRAID_EXPORT int braid_run(const braid_config *cfg, void (*main_fn)(void *),
                           void *arg)
{
    if (!main_fn) return -EINVAL;
    if (braid__forked_child() || braid__current()) return -EPERM;
    pthread_once(&atfork_once, install_atfork);
    int busy = 0;
    if (!atomic_compare_exchange_strong(&in_run, &busy, 1)) return -EBUSY;
    int r = configure(cfg);
    if (r < 0) {
        atomic_store(&in_run, 0);
        return r;
    }
    reset_state();
    main_args m = { main_fn, arg };
    r = start(main_fn, &m);
    if (r == 0) {
        while (atomic_load(&braid__rt.done) == 0)
            braid__futex_wait(&braid__rt.done, 0, -1);
        r = atomic_load(&braid__rt.result);
    } else {
        atomic_store(&braid__rt.stopping, 1);
    }
    teardown();
    atomic_store(&braid__rt.running, 0);
    atomic_store(&in_run, 0);
    return r;
}

BRAID_EXPORT void braid_stats_get(braid_stats *s)
{
    if (!s) return;
    if (!ld_acquire(&braid__rt.running) || !braid__rt.workers) {
        *s = last_stats;
        return;
    }
    memset(s, 0, sizeof *s);
#define SUM(f) braid__sched_counter(offsetof(braid__worker, f))
    s->spawned = SUM(spawned);
    s->switches = SUM(switches);
    s->steals = SUM(steals);
    s->parks = SUM(parks);
    s->completed = SUM(completed);
#undef SUM
    s->polls = atomic_load(&braid__rt.polls);
    s->spawned += atomic_load(&braid__rt.foreign_spawned);
    s->live = s->spawned - s->completed;
    s->workers = braid__rt.nworkers;
    s->global_pushes = atomic_load(&braid__rt.global_pushes);
}

BRAID_EXPORT const char *braid_strerror(int err)
{
    if (err == INT_MIN) return "unknown error";
    if (err < 0) err = -err;
    switch (err) {
    case 0: return "success";
    case EPIPE: return "the other side of the channel is closed";
    case EBADF: return "handle or descriptor closed";
    case EAGAIN: return "would block (deadline already past)";
    case ETIMEDOUT: return "deadline expired";
    case ECANCELED: return "coroutine cancelled";
    case EDEADLK: return "deadlock: every coroutine blocked forever";
    case EPERM: return "not allowed in this context";
    case EINVAL: return "invalid argument";
    default: return strerror(err);
    }
}
