/*
 * cond.c - braid_cond: condition variable over a braid_mutex.
 *
 * Layout: a spinlock lk and a FIFO q of waiters, both protected by lk.
 * Invariant: a waiter is linked on q before it unlocks the mutex, so a
 * signaller that takes the mutex after that unlock (or that holds it while
 * signalling) finds the waiter: wait is atomic with respect to it.
 * signal pops waiters until one claim succeeds (timed-out or cancelled
 * waiters lose their claim and are skipped, so no signal is lost);
 * broadcast claims all.  A woken, timed-out or cancelled waiter relocks the
 * mutex before returning.
 *
 * Ordering: the claim (acq_rel) and the park handshake order the
 * signaller's writes before the woken waiter's reads; the mutex orders the
 * rest.  Lock order: lk is never held while the mutex is taken or released
 * (sync locks do not nest).
 */
#include "../runtime/common.h"
#include "sync.h"

typedef struct cond_impl {
    braid__spin lk;
    uint32_t pad_;
    braid__wq q;              /* lk */
} cond_impl;

BRAID__FITS(cond_impl, braid_cond);

static inline cond_impl *impl(braid_cond *c)
{
    return (cond_impl *)(void *)c;
}

/* Relock m after a wait, whatever happens: cancellation cannot interrupt
   it (the caller must get the mutex back). */
static void relock(braid_mutex *m)
{
    braid__nocancel_push();
    int r = braid_mutex_lock(m, BRAID_FOREVER);
    braid__nocancel_pop();
    BRAID_ASSERT(r == 0);
    (void)r;
}

static void unlink_node(cond_impl *c, braid__wnode *nd)
{
    braid__spin_lock(&c->lk);
    braid__wq_remove(&c->q, nd);
    braid__spin_unlock(&c->lk);
}

/* Unlock m, wait for a signal, relock m.  -EPERM (m was not locked; it is
   left unlocked) is an addition to the header's list. */
BRAID_EXPORT int braid_cond_wait(braid_cond *pc, braid_mutex *m,
                                 int64_t deadline)
{
    BRAID__FORK_GUARD();
    if (!pc || !m)
        return -EINVAL;
    if (braid__deadline_past(deadline))
        return -EAGAIN;        /* would block; m is still held */
    if (braid__cancel_pending())
        return -ECANCELED;
    cond_impl *c = impl(pc);
    braid__waiter w;
    braid__wnode nd = { .w = &w };
    braid__waiter_init(&w, "cond wait", c);
    braid__spin_lock(&c->lk);
    braid__wq_push(&c->q, &nd);
    braid__spin_unlock(&c->lk);
    braid__chaos_point();
    int r = braid_mutex_unlock(m);
    if (r < 0) {
        unlink_node(c, &nd);
        return r;
    }
    r = braid__waiter_wait(&w, deadline);
    if (r != 0)
        unlink_node(c, &nd);
    braid__chaos_point();
    relock(m);
    return r;
}

static int wake(braid_cond *pc, bool all)
{
    if (!pc)
        return -EINVAL;
    cond_impl *c = impl(pc);
    braid__batch b = BRAID__BATCH_INIT;
    braid__spin_lock(&c->lk);
    if (all)
        braid__wq_wake_all(&c->q, 0, &b);
    else
        braid__wq_wake_one(&c->q, 0, &b);
    braid__spin_unlock(&c->lk);
    if (b.n)
        braid__ready_batch(&b);
    return 0;
}

/* Wake one waiter, if any. */
BRAID_EXPORT int braid_cond_signal(braid_cond *c)
{
    BRAID__FORK_GUARD();
    return wake(c, false);
}

/* Wake every waiter. */
BRAID_EXPORT int braid_cond_broadcast(braid_cond *c)
{
    BRAID__FORK_GUARD();
    return wake(c, true);
}
