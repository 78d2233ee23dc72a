/*
 * sync.h - internals shared by the synchronisation objects (mutex, cond,
 * wait group, semaphore, once, nursery).
 *
 * Every object here fits the 32 bytes of its public struct (uint64_t
 * opaque_[4]), so it cannot hold a braid__wlist (head, tail, count = 24
 * bytes) next to a state word and a lock.  It uses braid__wq instead: the
 * same doubly linked FIFO of braid__wnode without the count.
 *
 * Blocking protocol (the same in every file):
 *  - The waiter links its node under the object's spinlock `lk` and drops
 *    the lock, then parks in braid__waiter_wait.
 *  - A waker pops nodes under `lk` and claims each waiter
 *    (braid__waiter_complete); a node whose claim fails belongs to a waiter
 *    that timed out or was cancelled: it is dropped and the next one tried,
 *    so no wake-up (or unit, or lock hand-off) is lost.  Wakers queue the
 *    coroutines they woke in a braid__batch and ready it after dropping
 *    `lk`.
 *  - A waiter whose outcome is a success was popped by its waker and
 *    returns without touching the list.  One that failed (-ETIMEDOUT,
 *    -ECANCELED) takes `lk` and unlinks its node if still linked: the lock
 *    orders this after any waker that is still looking at the node.
 *  - After a successful claim and the wake, the waker never touches the
 *    node again (it lives on the waiter's stack).
 * Lock order: nursery lk < wait group lk (braid_nursery_go adds to the wait
 * group under its lock); no other sync lock nests in another.  Each lk may
 * be held while taking coro->lk (braid_cancel, waking) and the scheduler's
 * locks.
 */
#ifndef BRAID_SYNC_H
#define BRAID_SYNC_H

#include "../runtime/common.h"
#include "../runtime/timer.h"   /* typedef braid__batch, before sched.h */
#include "../runtime/waiter.h"

/* Check at compile time that an internal layout fits its public struct. */
#define BRAID__FITS(impl, pub) \
    _Static_assert(sizeof(impl) <= sizeof(pub) && \
                   _Alignof(impl) <= _Alignof(pub), \
                   #impl " does not fit " #pub)

/* A FIFO of wait nodes: braid__wlist without the count.  Protected by the
   owning object's lk. */
typedef struct braid__wq { braid__wnode *head, *tail; } braid__wq;

static inline bool braid__wq_empty(const braid__wq *q)
{
    return q->head == NULL;
}

static inline void braid__wq_push(braid__wq *q, braid__wnode *n)
{
    n->next = NULL;
    n->prev = q->tail;
    if (q->tail) q->tail->next = n; else q->head = n;
    q->tail = n;
    n->linked = true;
}

static inline void braid__wq_push_front(braid__wq *q, braid__wnode *n)
{
    n->prev = NULL;
    n->next = q->head;
    if (q->head) q->head->prev = n; else q->tail = n;
    q->head = n;
    n->linked = true;
}

static inline void braid__wq_remove(braid__wq *q, braid__wnode *n)
{
    if (!n->linked) return;
    if (n->prev) n->prev->next = n->next; else q->head = n->next;
    if (n->next) n->next->prev = n->prev; else q->tail = n->prev;
    n->next = n->prev = NULL;
    n->linked = false;
}

static inline braid__wnode *braid__wq_pop(braid__wq *q)
{
    braid__wnode *n = q->head;
    if (n) braid__wq_remove(q, n);
    return n;
}

/* Pop nodes until one waiter is claimed with outcome and queued on b.
   Returns the claimed node (not to be touched after the caller drops lk
   and readies b), or NULL when the queue ran empty.  Caller holds lk. */
static inline braid__wnode *braid__wq_wake_one(braid__wq *q, int outcome,
                                               braid__batch *b)
{
    braid__wnode *n;
    while ((n = braid__wq_pop(q)) != NULL)
        if (braid__waiter_complete(n->w, outcome, b))
            return n;
    return NULL;
}

/* Claim and queue every waiter of q; returns how many were woken.
   Caller holds lk. */
static inline size_t braid__wq_wake_all(braid__wq *q, int outcome,
                                        braid__batch *b)
{
    size_t k = 0;
    while (braid__wq_wake_one(q, outcome, b))
        k++;
    return k;
}

/* A waiter that timed out or was cancelled leaves the queue q (guarded by
   lk); the last one out clears the "someone waits" bit wbit of state, so
   the fast paths stop taking the slow way. */
static inline void braid__wq_leave(braid__spin *lk, braid__wq *q,
                                   _Atomic uint64_t *state, uint64_t wbit,
                                   braid__wnode *nd)
{
    braid__spin_lock(lk);
    braid__wq_remove(q, nd);
    if (braid__wq_empty(q))
        atomic_fetch_and_explicit(state, ~wbit, memory_order_relaxed);
    braid__spin_unlock(lk);
}

/* Is deadline already past (0 included)?  BRAID_FOREVER never is. */
static inline bool braid__deadline_past(int64_t deadline)
{
    return deadline >= 0 && deadline <= braid_now();
}

/* Counter of a wait group, for the nursery (wg.c). */
int64_t braid__wg_count(braid_wg *w);

#endif
