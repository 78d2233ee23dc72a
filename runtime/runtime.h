/*
 * runtime.h - the running runtime: workers and the state they share.
 *
 * Scheduler invariants (sched.c implements them):
 *  - A runnable coroutine is in exactly one place: a worker's next slot, a
 *    worker's ring, a worker's spawn deque (only coroutines that never ran:
 *    deque.h), the global queue, a batch in flight, or being switched
 *    to.  A coroutine is made runnable only after its switch-out completed
 *    (the deferred action of braid__park, the waiter's park handshake).
 *  - nspinning counts workers looking for work without being parked; a new
 *    runnable coroutine that another worker could take wakes a parked
 *    worker only when nspinning == 0 (wakep), and the woken worker starts
 *    out spinning.  A worker going to sleep first publishes itself idle,
 *    stops spinning, then re-checks every queue (seq_cst on both sides):
 *    a push that raced with it is seen either by the pusher's wakep (it sees
 *    npidle > 0) or by the sleeper's re-check.
 *  - Deadlock: checked under idle_lock by the last worker to go idle.  The
 *    sources count is read before the queues; a waker queues the coroutine
 *    before it drops its source, so sources == 0 and empty queues, seen in
 *    that order, mean nothing can ever run again.  The monitor moving a
 *    stuck worker's queue to the global one brackets the move with two
 *    increments of `moves`; a check that sees it odd, or changed across
 *    its reads of the queues, concludes nothing (the monitor wakes a
 *    worker for what it moved).
 * Lock order: see common.h.
 */
#ifndef BRAID_RUNTIME_H
#define BRAID_RUNTIME_H

#include <pthread.h>
#include <signal.h>
#include <ck_ring.h>

#include "common.h"
#include "context.h"
#include "coro.h"
#include "deque.h"
#include "sched.h"
#include "stack.h"

#define RUNQ_SIZE 256          /* ring slots per worker (power of two) */
#define GLOBAL_EVERY 16        /* look at the global queue every k ticks */
#define NEXT_STREAK 16         /* next-slot runs in a row before the ring */
#define STEAL_SHORT 32         /* a ring this long is stolen from at once */
/* A shorter ring, and the next slot, only from a worker that has run one
   coroutine this long: a producer/consumer group that keeps switching
   stays on one worker (one channel's lock, one core's cache: cap 128 4P4C
   went from 6-9M to 23M messages/s when its group stopped being split
   every few microseconds), while a long computation still shares its
   queue after 50 us (the monitor takes over from a worker stuck in a
   system call, after MONITOR_NS). */
#define STILL_NS 50000
/* Stolen spawns that ran under TINY_NS each on average (steal to idle
   again) cost the victim more than they saved: the thief leaves a busy
   victim's spawns alone for PAUSE_MIN_NS, doubling to PAUSE_MAX_NS while
   its probes keep coming back tiny (sched.c, "tiny spawns"). */
#define TINY_NS 1000
#define PAUSE_MIN_NS 100000
#define PAUSE_MAX_NS 1600000
#define PROBE_MIN 4            /* batches smaller than this are not judged */
#define NAP_NS (STILL_NS / 2)  /* an idle worker's pause before it looks
                                  again at work it cannot take (sched.c) */

struct braid__worker {
    /* Owner only. */
    braid__coro *cur;              /* running coroutine, NULL on idle ctx */
    braid__ctx idle_ctx;           /* the thread's own stack: find work */
    void (*after)(braid__worker *, void *); /* deferred, see braid__park */
    int *errno_ptr;                /* this thread's errno */
    void *after_arg;
    unsigned tick;
    unsigned streak;               /* next-slot runs in a row */
    uint64_t rng;
    braid__stack_cache *stacks;
    braid__coro_cache *coros;
    unsigned id;
    bool spinning;                 /* counted in rt.nspinning */
    /* Spawns this worker stole (sched.c, "tiny spawns"): the last batch,
       probe_k of them taken at probe_t0, and how long it leaves a busy
       victim's spawns alone after batches that ran tiny. */
    uint32_t probe_k;
    int64_t probe_t0;
    int64_t spawn_pause_ns, spawn_pause_until;
    /* Shared with thieves. */
    /* The next slot and the ring's consumer side (sched.c, "owner and
       thieves"): with braid__asym the owner takes from them with plain
       moves inside busy, and a thief takes steal_lock and runs
       braid__asym_heavy first, and backs off while the owner is inside;
       without, the owner exchanges / CASes like the thieves. */
    _Atomic(braid__coro *) next BRAID_ALIGNED;
    _Atomic int busy;              /* owner: inside a plain operation */
    _Atomic int steal_lock;        /* a thief (or the monitor) is at work */
    ck_ring_t ring BRAID_ALIGNED;  /* owner enqueues; anyone dequeues */
    ck_ring_buffer_t buf[RUNQ_SIZE];
    braid__deque spawns;           /* owner pushes/takes; anyone steals */
    /* Spawners held back while the deque drains (braid__sched_push): a
       list through link; the owner pushes (CAS), the owner or the monitor
       takes it whole (xchg). */
    _Atomic(braid__coro *) held;
    /* Parking: park word 0 = asleep or running, 1 = woken (futex). */
    _Atomic uint32_t park BRAID_ALIGNED;
    struct braid__worker *idle_next;   /* rt.idle_lock */
    _Atomic bool idle;                 /* written under rt.idle_lock */
    /* Counters: owner writes (relaxed), anyone reads. */
    _Atomic uint64_t switches, steals, parks, spawned, completed;
    _Atomic uint64_t read_skips;   /* drained reads (netio/net.c) */
    /* Thieves' hint (relaxed; a torn pair only delays a steal): the
       switch count last seen, and since when it has not moved. */
    _Atomic uint64_t seen_switches;
    _Atomic int64_t seen_since;
    uint64_t mon_switches;         /* I/O thread only: the same for the */
    int64_t mon_since;             /* monitor (braid__sched_monitor) */
    uint64_t id_next, id_end;      /* owner: block of coroutine ids */
    pthread_t thread;
    void *altstack;
#ifdef BRAID_ASAN
    const void *idle_bottom;
    size_t idle_size;
    void *idle_fake;
#endif
#ifdef BRAID_TSAN
    void *idle_fiber;
#endif
};

struct braid__rt {
    unsigned nworkers;             /* immutable while running */
    braid__worker **workers;       /* immutable while running */
    size_t stack_size;             /* default, rounded; immutable */
    unsigned no_deadlock_check;
    uint64_t chaos;                /* BRAID_CHAOS seed; 0 = off; immutable */
    _Atomic int running;           /* 1 between start and stop */
    _Atomic int stopping;
    _Atomic int result;            /* braid_run's return value */
    _Atomic uint32_t done;         /* futex: braid_run waits for 1 */
    /* Global queue: spinlock-protected FIFO (its own cache line). */
    braid__spin gq_lock BRAID_ALIGNED;
    braid__coro *gq_head, *gq_tail;    /* gq_lock */
    braid__coro *gq_prio;              /* gq_lock: last of the woken prefix */
    size_t gq_prio_n;                  /* gq_lock: length of that prefix */
    _Atomic size_t gq_woken;           /* written under gq_lock: a copy of
                                          gq_prio_n workers peek at */
    _Atomic size_t gq_n;               /* written under gq_lock */
    /* Idle workers (read by every wakep: keep away from written lines). */
    braid__spin idle_lock BRAID_ALIGNED;
    braid__worker *idle_head;          /* idle_lock */
    _Atomic unsigned npidle;           /* written under idle_lock */
    _Atomic unsigned nspinning BRAID_ALIGNED;
    /* Rarely written. */
    _Atomic long sources BRAID_ALIGNED;/* see braid__source_add */
    _Atomic unsigned moves;            /* odd while the monitor moves a
                                          stuck worker's queue (its batch
                                          is in no queue meanwhile) */
    _Atomic uint64_t next_id;          /* id blocks handed to workers */
    _Atomic uint64_t foreign_spawned;  /* spawns from plain threads */
    _Atomic uint64_t global_pushes, polls;
    braid__coro *main;
    struct sigaction old_segv, old_bus;
};

extern struct braid__rt braid__rt;

/* braid__running() inline, for the spawn path (a call to it and one to
   braid__forked_child were 20 instructions of a 600-instruction spawn). */
static inline bool braid__running_inline(void)
{
    return ld_acquire(&braid__rt.running) &&
           !atomic_load_explicit(&braid__forked, memory_order_relaxed);
}

/* sched.c, for runtime.c */
int  braid__sched_start(void);
void braid__sched_stop(void);       /* joins the worker threads */
void braid__sched_free(void);       /* after the I/O thread stopped */
void braid__sched_push(braid__worker *w, braid__coro *c); /* new; w: caller's */
void braid__coro_start(braid__worker *w, braid__coro *c); /* first run */
uint64_t braid__sched_counter(size_t off);  /* sum a worker counter */
bool braid__forked_child(void);

#endif
