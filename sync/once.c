/*
 * once.c - braid_once: run a function exactly once; concurrent callers
 * park until it has returned.
 *
 * State word (atomic): NEW -> RUNNING (by the one CAS winner) -> DONE.
 * Waiters queue on q under lk, after checking under lk that the state is
 * not DONE; the runner stores DONE under lk and then wakes everything on q,
 * so no waiter queues after the wake-up it needed.
 *
 * Ordering: the runner's store of DONE is a release, every fast-path load
 * an acquire, so fn's effects are visible to every caller that returns.
 * Parked waiters are ordered by the claim and park handshake.  A cancelled
 * waiter cannot park (every wait returns -ECANCELED at once) and must not
 * return before fn did, so it polls the state with yields.
 * Lock order: lk < coro->lk < scheduler locks.
 */
#include "../runtime/common.h"
#include "sync.h"

enum { ONCE_NEW = 0, ONCE_RUNNING = 1, ONCE_DONE = 2 };

typedef struct once_impl {
    _Atomic uint32_t state;   /* atomic; ONCE_* */
    braid__spin lk;           /* protects q; DONE is stored under it */
    braid__wq q;              /* lk */
} once_impl;

BRAID__FITS(once_impl, braid_once);

static inline once_impl *impl(braid_once *o)
{
    return (once_impl *)(void *)o;
}

static void finish(once_impl *o)
{
    braid__batch b = BRAID__BATCH_INIT;
    braid__spin_lock(&o->lk);
    st_release(&o->state, ONCE_DONE);
    braid__wq_wake_all(&o->q, 0, &b);
    braid__spin_unlock(&o->lk);
    if (b.n)
        braid__ready_batch(&b);
}

static void await_done(once_impl *o)
{
    braid__waiter w;
    braid__wnode nd = { .w = &w };
    braid__waiter_init(&w, "once", o);
    w.nocancel = true;            /* fn is running: everyone waits it out */
    braid__spin_lock(&o->lk);
    if (ld_relaxed(&o->state) == ONCE_DONE) {
        braid__spin_unlock(&o->lk);
        atomic_thread_fence(memory_order_acquire);
        return;
    }
    braid__wq_push(&o->q, &nd);
    braid__spin_unlock(&o->lk);
    int r = braid__waiter_wait(&w, BRAID_FOREVER);
    BRAID_ASSERT(r == 0);         /* only the runner decides us */
    (void)r;
    atomic_thread_fence(memory_order_acquire);
}

/* Run fn exactly once across all callers of o. */
BRAID_EXPORT int braid_once_do(braid_once *po, void (*fn)(void))
{
    BRAID__FORK_GUARD();
    if (!po || !fn)
        return -EINVAL;
    once_impl *o = impl(po);
    uint32_t s = ld_acquire(&o->state);
    if (likely(s == ONCE_DONE))
        return 0;
    if (s == ONCE_NEW && atomic_compare_exchange_strong_explicit(&o->state,
            &s, ONCE_RUNNING, memory_order_acquire, memory_order_acquire)) {
        fn();
        finish(o);
        return 0;
    }
    await_done(o);
    return 0;
}
