/*
 * sched.h - what the other rooms need from the scheduler.
 */
#ifndef BRAID_SCHED_H
#define BRAID_SCHED_H

#include "common.h"

typedef struct braid__coro braid__coro;
typedef struct braid__worker braid__worker;
typedef struct braid__batch braid__batch;

/* A list of coroutines readied together (by the I/O thread, or by a waker
   that holds a lock).  Linked through coro->link. */
struct braid__batch {
    braid__coro *head, *tail;
    size_t n;
};
#define BRAID__BATCH_INIT { NULL, NULL, 0 }

/* The running coroutine, NULL on a plain thread.  Not inlined: after a
   switch the coroutine may be on another thread. */
braid__coro *braid__current(void);

/* The worker running the caller, NULL on a plain thread.  Not inlined. */
braid__worker *braid__worker_self(void);

/* Make c runnable.  From a worker, c goes to that worker's next slot (the
   previous occupant moves to its run queue); from any other thread, to the
   global queue, waking a parked worker if none is spinning.  c must be
   parked (its switch-out has completed), see braid__waiter_wake. */
void braid__ready(braid__coro *c);

/* Append c to b; make them runnable with braid__ready_batch (one push to
   the global queue, waking at most as many workers as needed). */
void braid__batch_add(braid__batch *b, braid__coro *c);
void braid__ready_batch(braid__batch *b);

/* Switch the calling coroutine away.  Once it is off its stack, after(w,
   arg) runs on the same worker w (the deferred action: publish that it is
   parked, release a lock).  me: the calling coroutine.  Coroutine only. */
void braid__park(braid__coro *me, void (*after)(braid__worker *, void *),
                 void *arg);

/* Deadlock detection: count something that can wake a coroutine from
   outside (an armed deadline, an I/O wait, a blocking-pool call, a thread
   blocked in a braid call).  Increment before the coroutine can be parked
   on it; decrement only after the coroutine it woke (if any) is queued. */
void braid__source_add(void);
void braid__source_del(void);

/* 1 while a runtime runs in this process (and this is not a forked child). */
bool braid__running(void);

/* The I/O thread calls this on every loop: it wakes a parked worker when
   a busy worker has sat on queued work since the last call (a coroutine
   that blocks its thread in a system call).  Returns the latest time (ns)
   at which it wants to be called again, or -1 when every worker is idle. */
int64_t braid__sched_monitor(int64_t now);

/* Every worker is parked (or none runs): nobody will poll the sockets. */
bool braid__sched_all_idle(void);

/* Count one epoll_wait of the I/O thread (braid_stats.polls). */
void braid__stat_poll(void);

/* Chaos mode (env BRAID_CHAOS=<seed>): maybe yield at an interesting point
   (channel, lock and I/O code calls this); a random extra delay for a new
   timer (never negative: a deadline never fires early).  Both are a load
   and a branch when chaos is off. */
extern uint64_t braid__chaos;       /* the seed; 0 = off */
void braid__chaos_yield(void);
static inline void braid__chaos_point(void)
{
    if (__builtin_expect(braid__chaos != 0, 0)) braid__chaos_yield();
}
int64_t braid__chaos_jitter(void);
/* Chaos mode only: a fair coin from the calling worker's generator. */
bool braid__chaos_coin(void);

/* Monotonic time, refreshed by the I/O thread on every loop (at least every
   few ms while a worker is busy): for dumps, never for deadlines. */
extern _Atomic int64_t braid__coarse_clock;
static inline int64_t braid__coarse_now(void)
{
    return atomic_load_explicit(&braid__coarse_clock, memory_order_relaxed);
}

/* netio/net.c's drained reads: count one on the calling worker (plain
   threads are not counted); the sum over the running workers. */
void braid__count_read_skip(void);
uint64_t braid__read_skips(void);

/* Naps (an idle worker's short wait, sched.c) that slept on a futex
   because epoll_pwait2 could not wait: for tests. */
uint64_t braid__nap_sleeps(void);
/* Times a thief judged a batch of stolen spawns tiny and paused. */
uint64_t braid__spawn_pauses(void);

#endif
