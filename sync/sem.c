/*
 * sem.c - braid_sem: counting semaphore with FIFO waiters and direct
 * hand-off.
 *
 * State word (atomic uint64, the first word of the public struct so that
 * BRAID_SEM_INIT(n) sets the count): count in bits 0..62, bit 63 = W
 * ("the queue is non-empty"; set and cleared under lk only).
 * Invariant: W implies count == 0.  A release that sees W hands its unit
 * straight to the first waiter whose claim succeeds (the count does not
 * move), so waiters are served FIFO and a newcomer can never take a unit
 * ahead of them; a release that sees no W just increments the count.
 * acquire takes a unit with a CAS while count > 0 (then W is clear: no
 * waiter is passed over), else queues under lk after setting W in a CAS
 * that saw count == 0.
 *
 * Cancellation and deadlines: the claim decides.  A waiter that lost its
 * claim to a release got the unit and returns 0; one that won with
 * -ETIMEDOUT / -ECANCELED got nothing and the release moved on (or, with
 * the queue empty, put the unit back in the count).
 *
 * Ordering: release is a release RMW, acquire an acquire RMW; a hand-off
 * is ordered by the claim (acq_rel) and the park handshake.  Lock order:
 * lk < coro->lk < scheduler locks.
 */
#include "../runtime/common.h"
#include "sync.h"

#define SEM_W     ((uint64_t)1 << 63)
#define SEM_COUNT (SEM_W - 1)

typedef struct sem_impl {
    _Atomic uint64_t state;   /* atomic; see above */
    braid__spin lk;           /* protects q and W */
    uint32_t pad_;
    braid__wq q;              /* lk */
} sem_impl;

BRAID__FITS(sem_impl, braid_sem);
_Static_assert(offsetof(sem_impl, state) == 0,
               "BRAID_SEM_INIT(n) writes the count into opaque_[0]");

static inline sem_impl *impl(braid_sem *s)
{
    return (sem_impl *)(void *)s;
}

/* Set the count; not while the semaphore is in use. */
BRAID_EXPORT int braid_sem_init(braid_sem *ps, uint64_t count)
{
    BRAID__FORK_GUARD();
    if (!ps || count > SEM_COUNT)
        return -EINVAL;
    sem_impl *s = impl(ps);
    s->lk = (braid__spin)BRAID__SPIN_INIT;
    s->q = (braid__wq){ NULL, NULL };
    st_release(&s->state, count);
    return 0;
}

/* Take a unit if the count is positive. */
static bool try_take(sem_impl *s)
{
    uint64_t v = ld_relaxed(&s->state);
    while (v & SEM_COUNT)
        if (atomic_compare_exchange_weak_explicit(&s->state, &v, v - 1,
                memory_order_acquire, memory_order_relaxed))
            return true;
    return false;
}

/* Under lk: take a unit, or set W (count is 0).  true: taken. */
static bool take_or_mark(sem_impl *s)
{
    uint64_t v = ld_relaxed(&s->state);
    for (;;) {
        if (v & SEM_COUNT) {
            if (atomic_compare_exchange_weak_explicit(&s->state, &v, v - 1,
                    memory_order_acquire, memory_order_relaxed))
                return true;
        } else if ((v & SEM_W) || atomic_compare_exchange_weak_explicit(
                &s->state, &v, v | SEM_W, memory_order_relaxed,
                memory_order_relaxed)) {
            return false;
        }
    }
}

/* Take one unit, waiting FIFO. */
BRAID_EXPORT int braid_sem_acquire(braid_sem *ps, int64_t deadline)
{
    BRAID__FORK_GUARD();
    if (!ps)
        return -EINVAL;
    sem_impl *s = impl(ps);
    if (try_take(s))
        return 0;
    if (braid__deadline_past(deadline))
        return -EAGAIN;
    if (braid__cancel_pending())
        return -ECANCELED;
    braid__chaos_point();
    braid__waiter w;
    braid__wnode nd = { .w = &w };
    braid__waiter_init(&w, "sem acquire", s);
    braid__spin_lock(&s->lk);
    if (take_or_mark(s)) {
        braid__spin_unlock(&s->lk);
        return 0;
    }
    braid__wq_push(&s->q, &nd);
    braid__spin_unlock(&s->lk);
    int r = braid__waiter_wait(&w, deadline);
    if (r != 0)
        braid__wq_leave(&s->lk, &s->q, &s->state, SEM_W, &nd);
    return r;
}

/* W was set: hand the unit to the first live waiter, or (none left) clear
   W and count it. */
static void release_slow(sem_impl *s)
{
    braid__batch b = BRAID__BATCH_INIT;
    braid__spin_lock(&s->lk);
    bool handed = braid__wq_wake_one(&s->q, 0, &b) != NULL;
    if (braid__wq_empty(&s->q)) {
        /* W set implies count 0, so this cannot overflow. */
        uint64_t v = ld_relaxed(&s->state);
        uint64_t nv = (v & SEM_COUNT) + (handed ? 0 : 1);
        while (!atomic_compare_exchange_weak_explicit(&s->state, &v, nv,
                memory_order_release, memory_order_relaxed))
            nv = (v & SEM_COUNT) + (handed ? 0 : 1);
    }
    braid__spin_unlock(&s->lk);
    if (b.n)
        braid__ready_batch(&b);
}

/* Give one unit back. */
BRAID_EXPORT int braid_sem_release(braid_sem *ps)
{
    BRAID__FORK_GUARD();
    if (!ps)
        return -EINVAL;
    sem_impl *s = impl(ps);
    uint64_t v = ld_relaxed(&s->state);
    for (;;) {
        if (v & SEM_W) {
            release_slow(s);
            return 0;
        }
        if (v == SEM_COUNT)
            return -EOVERFLOW;
        if (atomic_compare_exchange_weak_explicit(&s->state, &v, v + 1,
                memory_order_release, memory_order_relaxed))
            return 0;
    }
}
