/*
 * mutex.c - braid_mutex: Go's sync.Mutex (hand-off with a starvation
 * guard), parking coroutines or threads through the waiter.
 *
 * State word (atomic):
 *   LOCKED    someone owns the mutex (or it is being handed to a waiter)
 *   WOKEN     a waiter was woken with RETRY and has not yet retried; while
 *             set, unlock wakes nobody else (one retrier at a time)
 *   STARVING  starvation mode: unlock hands ownership straight to the
 *             first waiter and newcomers queue instead of barging
 *   WAITERS   the queue is non-empty (set and cleared under lk only)
 * Invariants: STARVING implies LOCKED.  WAITERS equals "q non-empty"
 * whenever lk is free.  The holder of the WOKEN token is not in q.
 *
 * Normal mode: lock is one CAS 0 -> LOCKED; a newcomer may take a free
 * mutex ahead of the waiters (barging, good for throughput).  Unlock clears
 * LOCKED; if there are waiters and no WOKEN token is out, it also sets
 * WOKEN in the same CAS and wakes the first waiter with RETRY.  That waiter
 * tries again; if it loses to a barger it requeues at the front (LIFO, it
 * keeps its start time) and, once it has waited over 1 ms, sets STARVING.
 * Starvation mode: unlock keeps LOCKED and wakes the first waiter with
 * OWNED: ownership passes under lk, nobody can barge in between.  The mode
 * ends when the queue empties or the waiter served waited less than 1 ms.
 *
 * Deadlines and cancellation: the waiter's claim decides.  A waiter claimed
 * OWNED owns the mutex and returns 0 even if it was cancelled meanwhile.
 * One claimed RETRY holds the WOKEN token and must give it back: it either
 * takes the mutex (clearing WOKEN in the same CAS) or requeues (clearing
 * WOKEN in the CAS that sees LOCKED, so the owner's unlock wakes the next
 * waiter).  A waiter that timed out or was cancelled unlinks itself under
 * lk; an unlocker that popped it failed its claim and moved on.
 *
 * Ordering: taking the mutex is an acquire CAS on state, releasing it a
 * release CAS; a hand-off is ordered by the waiter's claim (acq_rel) and
 * park handshake.  lk is a plain spinlock (acquire/release) around q and
 * the WAITERS bit.  Lock order: lk < coro->lk < scheduler locks.
 */
#include "../runtime/common.h"
#include "sync.h"

enum {
    M_LOCKED = 1u,
    M_WOKEN = 2u,
    M_STARVING = 4u,
    M_WAITERS = 8u,
};

enum { WAKE_RETRY = 1, WAKE_OWNED = 2 };

#define STARVE_NS 1000000   /* 1 ms, as Go's starvationThresholdNs */

typedef struct mutex_impl {
    _Atomic uint32_t state;   /* atomic; see above */
    braid__spin lk;           /* protects q and the WAITERS bit */
    braid__wq q;              /* lk: waiters; node->data = &start time */
} mutex_impl;

BRAID__FITS(mutex_impl, braid_mutex);

static inline mutex_impl *impl(braid_mutex *m)
{
    return (mutex_impl *)(void *)m;
}

static bool cas(mutex_impl *m, uint32_t *s, uint32_t v, memory_order mo)
{
    return atomic_compare_exchange_weak_explicit(&m->state, s, v, mo,
                                                 memory_order_relaxed);
}

/* Take the mutex if free and not starving, clearing `token` (M_WOKEN if
   the caller holds it) in the same CAS. */
static bool try_take(mutex_impl *m, uint32_t token)
{
    uint32_t s = ld_relaxed(&m->state);
    while (!(s & (M_LOCKED | M_STARVING)))
        if (cas(m, &s, (s | M_LOCKED) & ~token, memory_order_acquire))
            return true;
    return false;
}

/* Under lk: take the mutex if it is free, else publish WAITERS (and
   STARVING if starve), returning the token in the same CAS.  true: taken. */
static bool take_or_mark(mutex_impl *m, uint32_t token, bool starve)
{
    uint32_t s = ld_relaxed(&m->state);
    for (;;) {
        if (!(s & (M_LOCKED | M_STARVING))) {
            if (cas(m, &s, (s | M_LOCKED) & ~token, memory_order_acquire))
                return true;
            continue;
        }
        uint32_t ns = (s | M_WAITERS | (starve ? M_STARVING : 0)) & ~token;
        if (cas(m, &s, ns, memory_order_relaxed))
            return false;
    }
}

/* A failed waiter leaves: unlink, drop WAITERS if q emptied. */
static void leave(mutex_impl *m, braid__wnode *nd)
{
    braid__spin_lock(&m->lk);
    braid__wq_remove(&m->q, nd);
    if (braid__wq_empty(&m->q))
        atomic_fetch_and_explicit(&m->state, ~(uint32_t)M_WAITERS,
                                  memory_order_relaxed);
    braid__spin_unlock(&m->lk);
}

/* The slow path of braid_mutex_lock: queue, park, retry. */
static int lock_slow(mutex_impl *m, int64_t deadline)
{
    int64_t start = 0;
    uint32_t token = 0;        /* M_WOKEN while we hold the token */
    for (;;) {
        if (try_take(m, token))
            return 0;
        if (!start) {          /* first time it would block */
            if (braid__deadline_past(deadline))
                return -EAGAIN;
            if (braid__cancel_pending())
                return -ECANCELED;
            start = braid_now();
        }
        braid__chaos_point();
        bool starve = token && braid_now() - start > STARVE_NS;
        braid__waiter w;
        braid__wnode nd = { .w = &w, .data = (uintptr_t)&start };
        braid__waiter_init(&w, "mutex lock", m);
        braid__spin_lock(&m->lk);
        if (take_or_mark(m, token, starve)) {
            braid__spin_unlock(&m->lk);
            return 0;
        }
        if (token) braid__wq_push_front(&m->q, &nd);
        else braid__wq_push(&m->q, &nd);
        braid__spin_unlock(&m->lk);
        token = 0;
        int r = braid__waiter_wait(&w, deadline);
        if (r == WAKE_OWNED)
            return 0;
        if (r < 0) {
            leave(m, &nd);
            return r;
        }
        token = M_WOKEN;       /* WAKE_RETRY */
    }
}

/* Lock m.  Callable from coroutines and plain threads. */
BRAID_EXPORT int braid_mutex_lock(braid_mutex *pm, int64_t deadline)
{
    BRAID__FORK_GUARD();
    if (!pm)
        return -EINVAL;
    mutex_impl *m = impl(pm);
    uint32_t s = 0;
    if (likely(atomic_compare_exchange_strong_explicit(&m->state, &s,
            M_LOCKED, memory_order_acquire, memory_order_relaxed)))
        return 0;
    return lock_slow(m, deadline);
}

/* Take m if it is free and not in starvation mode. */
BRAID_EXPORT int braid_mutex_trylock(braid_mutex *pm)
{
    BRAID__FORK_GUARD();
    if (!pm)
        return -EINVAL;
    return try_take(impl(pm), 0) ? 0 : -EBUSY;
}

/* Normal mode, WOKEN just set by us: wake the first live waiter with
   RETRY; if none is left, give the token back. */
static void wake_retry(mutex_impl *m)
{
    braid__batch b = BRAID__BATCH_INIT;
    braid__spin_lock(&m->lk);
    uint32_t clear = 0;
    if (!braid__wq_wake_one(&m->q, WAKE_RETRY, &b))
        clear = M_WOKEN;
    if (braid__wq_empty(&m->q))
        clear |= M_WAITERS;
    if (clear)
        atomic_fetch_and_explicit(&m->state, ~clear, memory_order_relaxed);
    braid__spin_unlock(&m->lk);
    if (b.n)
        braid__ready_batch(&b);
}

/* Starvation mode: hand ownership to the first live waiter (LOCKED stays
   set); with none left, release the mutex and leave starvation mode. */
static void hand_off(mutex_impl *m)
{
    braid__batch b = BRAID__BATCH_INIT;
    braid__spin_lock(&m->lk);
    braid__wnode *n;
    while ((n = braid__wq_pop(&m->q)) != NULL) {
        if (!braid__waiter_claim(n->w, WAKE_OWNED))
            continue;
        /* n's owner is still parked: its start time is readable. */
        int64_t waited = braid_now() - *(const int64_t *)n->data;
        uint32_t clear = 0;
        if (braid__wq_empty(&m->q))
            clear = M_STARVING | M_WAITERS;
        else if (waited < STARVE_NS)
            clear = M_STARVING;
        /* Release: the critical section happens before the new owner's
           (also carried by the claim and the park handshake). */
        atomic_fetch_and_explicit(&m->state, ~clear, memory_order_release);
        braid__waiter_wake(n->w, &b);
        braid__spin_unlock(&m->lk);
        braid__ready_batch(&b);
        return;
    }
    atomic_fetch_and_explicit(&m->state,
            ~(uint32_t)(M_LOCKED | M_STARVING | M_WAITERS),
            memory_order_release);
    braid__spin_unlock(&m->lk);
}

static int unlock_slow(mutex_impl *m, uint32_t s)
{
    for (;;) {
        if (!(s & M_LOCKED))
            return -EPERM;
        if (s & M_STARVING) {
            hand_off(m);
            return 0;
        }
        if (!(s & M_WAITERS) || (s & M_WOKEN)) {
            if (cas(m, &s, s & ~M_LOCKED, memory_order_release))
                return 0;
            continue;
        }
        if (cas(m, &s, (s & ~M_LOCKED) | M_WOKEN, memory_order_release)) {
            braid__chaos_point();     /* a barger may take it meanwhile */
            wake_retry(m);
            return 0;
        }
    }
}

/* Unlock m; any coroutine or thread may.  -EPERM if it was not locked. */
BRAID_EXPORT int braid_mutex_unlock(braid_mutex *pm)
{
    BRAID__FORK_GUARD();
    if (!pm)
        return -EINVAL;
    mutex_impl *m = impl(pm);
    uint32_t s = M_LOCKED;
    if (likely(atomic_compare_exchange_strong_explicit(&m->state, &s, 0,
            memory_order_release, memory_order_relaxed)))
        return 0;
    return unlock_slow(m, s);
}
