/*
 * waiter.h - THE parking primitive.  Every blocking call in braid reduces
 * to: publish a waiter on some wait list, then park in braid__waiter_wait
 * until another party decides its outcome.
 *
 * The decision word (w->state) starts at BRAID__WAITING and is changed
 * exactly once, by compare-and-swap, to the outcome: a completion code
 * (>= 0; for select the winning case index) or a negative errno
 * (-ETIMEDOUT by the timer, -ECANCELED by braid_cancel, -EBADF / -EPIPE by
 * a closer).  The party whose CAS succeeds owns the completion: it finishes
 * the hand-off (copies the element into w's buffer, say) and then calls
 * braid__waiter_wake.  Losers back off and must not touch the waiter's
 * buffers.  A select is one waiter with several wait-list nodes.
 *
 * Park handshake (w->park, coroutines): 0 running, 1 parked, 2 woken.  The
 * waiting coroutine switches away and, once off its stack, CASes 0 -> 1;
 * the waker exchanges in 2 and readies the coroutine only if it saw 1.  If
 * the waker came first (saw 0), the parking side sees 2 and readies itself.
 * So a coroutine is never made runnable while it still runs.  A waker
 * that loads 1 skips the exchange: only the winner of the claim moves the
 * word on from 1, so nothing can race with it there.  A solo waiter
 * (chan.c) parks lock-ordered, as Go's gopark does: it keeps its wait
 * list's lock (w->held) across the switch, and the deferred action sets
 * the word with plain moves before unlocking (waiter.c, parked_solo), so
 * a channel peer always finds 1 and no locked instruction is spent.
 * Threads sleep on the same word with a futex.  The exchange is acq_rel:
 * what the waker wrote before waking is visible to the woken party.
 *
 * Memory: a waiter lives on the waiting party's stack.  Wait lists are
 * protected by their owner's lock; a party other than the waiter touches a
 * node only under that lock, and the waiter unlinks its nodes under the lock
 * before it returns.  Timers and braid_cancel reach the waiter through
 * w->timer (stopped before return) and coro->lk.
 */
#ifndef BRAID_WAITER_H
#define BRAID_WAITER_H

#include "common.h"
#include "sched.h"
#include "timer.h"
#include "coro.h"

#define BRAID__WAITING INT_MIN

typedef struct braid__waiter {
    _Atomic int state;         /* BRAID__WAITING, then the outcome (once) */
    _Atomic uint32_t park;     /* handshake / futex word, see above */
    braid__coro *coro;         /* NULL: a plain thread waits */
    braid__timer timer;        /* deadline, armed by braid__waiter_wait */
    const char *what;          /* for braid_dump: "chan recv", "sleep", ... */
    const void *obj;           /* what it waits on, for braid_dump */
    bool nocancel;             /* braid_cancel does not interrupt this wait
                                  (finishing work that uses the caller's
                                  stack); set after braid__waiter_init */
    bool solo;                 /* one wait-list node and no deadline: only
                                  holders of that list's lock and
                                  cancellation decide it (see
                                  braid__waiter_claim_locked); set before
                                  the node is published */
    braid__spin *held;         /* solo only, or NULL: the lock of that list,
                                  which the caller still holds when it calls
                                  braid__waiter_wait; released once the
                                  coroutine is off its stack (lock-ordered
                                  parking, see waiter.c); when the caller
                                  does not park (a plain thread, or a wait
                                  decided at once), before it sleeps or
                                  returns */
} braid__waiter;

/* A wait-list entry: a waiter may be linked on several lists (select).
   Fields are protected by the lock of the list it is linked on. */
typedef struct braid__wnode {
    struct braid__wnode *next, *prev;
    braid__waiter *w;
    void *elem;                /* hand-off buffer (channels) */
    int index;                 /* case index (select); 0 otherwise */
    bool linked;
    uintptr_t data;            /* free for the list owner */
} braid__wnode;

/* A doubly linked FIFO of wnodes, protected by its owner's lock. */
typedef struct braid__wlist { braid__wnode *head, *tail; size_t n; } braid__wlist;

static inline void braid__wlist_push(braid__wlist *l, braid__wnode *n)
{
    n->next = NULL;
    n->prev = l->tail;
    if (l->tail) l->tail->next = n; else l->head = n;
    l->tail = n;
    n->linked = true;
    l->n++;
}

static inline void braid__wlist_remove(braid__wlist *l, braid__wnode *n)
{
    if (!n->linked) return;
    if (n->prev) n->prev->next = n->next; else l->head = n->next;
    if (n->next) n->next->prev = n->prev; else l->tail = n->prev;
    n->next = n->prev = NULL;
    n->linked = false;
    l->n--;
}

/* Unlink and return the head, or NULL.  A popped node's next/prev are
   stale: only linked nodes' links mean anything. */
static inline braid__wnode *braid__wlist_pop(braid__wlist *l)
{
    braid__wnode *n = l->head;
    if (n) {
        braid__wnode *nx = n->next;
        l->head = nx;
        if (nx) nx->prev = NULL; else l->tail = NULL;
        n->linked = false;
        l->n--;
    }
    return n;
}

/* Prepare w for the calling coroutine or thread.  what/obj name the wait
   in dumps. */
void braid__waiter_init(braid__waiter *w, const char *what, const void *obj);

/* The same for a caller that knows its coroutine (braid__current(); NULL
   on a plain thread): saves the accessor call on hot paths. */
static inline void braid__waiter_init_as(braid__waiter *w, braid__coro *me,
                                         const char *what, const void *obj)
{
    atomic_init(&w->state, BRAID__WAITING);
    atomic_init(&w->park, 0);
    w->coro = me;
    w->timer.slot = 0;
    w->what = what;
    w->obj = obj;
    w->nocancel = false;
    w->solo = false;
    w->held = NULL;
}

/* Try to decide w's outcome; true if this caller won. */
static inline bool braid__waiter_claim(braid__waiter *w, int outcome)
{
    int exp = BRAID__WAITING;
    return atomic_compare_exchange_strong_explicit(&w->state, &exp, outcome,
            memory_order_acq_rel, memory_order_acquire);
}

/* braid__waiter_claim for a party that holds the lock of the wait list
   w's node is on.  A solo waiter has no other claimer but cancellation
   (braid_cancel, or the waiter itself finding the cancel flag), so with
   braid__asym the claim is a plain load and store, made exclusive against
   cancellation by an asymmetric Dekker on the waiting coroutine:
     party:     claiming = 1; compiler barrier; if lk is free: decide with
                plain moves; claiming = 0 (release).  If lk is held, CAS.
     canceller: takes lk; braid__asym_heavy; waits for claiming == 0; CAS.
   After the heavy fence a party's plain claim has finished (its release of
   claiming orders its store before the canceller's CAS), or it starts later
   and sees lk held and uses the CAS.  A plain thread's solo waiter has no
   asynchronous claimer at all.  Saves the locked instruction of every
   hand-off to a waiting channel peer. */
static inline bool braid__waiter_claim_locked(braid__waiter *w, int outcome)
{
    if (w->solo) {
        braid__coro *c = w->coro;
        if (!c) {
            bool won = atomic_load_explicit(&w->state, memory_order_relaxed)
                       == BRAID__WAITING;
            if (won)
                atomic_store_explicit(&w->state, outcome, memory_order_relaxed);
            return won;
        }
        if (braid__asym) {
            atomic_store_explicit(&c->claiming, 1, memory_order_relaxed);
            braid__asym_light();
            if (likely(!atomic_load_explicit(&c->lk.v, memory_order_acquire))) {
                bool won = atomic_load_explicit(&w->state, memory_order_relaxed)
                           == BRAID__WAITING;
                if (won)
                    atomic_store_explicit(&w->state, outcome,
                                          memory_order_relaxed);
                atomic_store_explicit(&c->claiming, 0, memory_order_release);
                return won;
            }
            atomic_store_explicit(&c->claiming, 0, memory_order_release);
        }
    }
    return braid__waiter_claim(w, outcome);
}

/* A canceller's claim (holding w->coro->lk after braid__asym_heavy, or
   without braid__asym): waits out a party's plain claim in flight. */
static inline bool braid__waiter_claim_cancel(braid__waiter *w)
{
    while (atomic_load_explicit(&w->coro->claiming, memory_order_acquire))
        braid__cpu_relax();
    return braid__waiter_claim(w, -ECANCELED);
}

/* Wake w, whose outcome this caller decided.  b NULL: ready at once; else
   the coroutine is appended to b (the caller readies b after dropping its
   locks).  w must not be touched afterwards. */
void braid__waiter_wake(braid__waiter *w, braid__batch *b);

/* braid__waiter_wake(w, NULL), the parked-coroutine case inline (a
   channel hand-off's wake). */
static inline void braid__waiter_wake_now(braid__waiter *w)
{
    braid__coro *c = w->coro;
    if (likely(c)) {
        braid__tsan_release(&w->park);
        if (atomic_load_explicit(&w->park, memory_order_acquire) == 1) {
            braid__ready(c);
            return;
        }
    }
    braid__waiter_wake(w, NULL);
}

/* Claim with outcome and wake if won; returns whether it won. */
bool braid__waiter_complete(braid__waiter *w, int outcome, braid__batch *b);

/* Park until w is decided and woken.  The caller has linked w's nodes and
   dropped its locks, except w->held (solo waiters), which this releases.
   A future deadline arms w->timer (-ETIMEDOUT); deadline <= now decides
   -ETIMEDOUT at once; braid_cancel decides -ECANCELED (at once if the
   coroutine is already cancelled).  Returns the outcome.  The caller then
   unlinks its nodes (under the list lock) unless the winner already did. */
int braid__waiter_wait(braid__waiter *w, int64_t deadline);

/* braid__waiter_wait(w, BRAID_FOREVER) for the hot case of a channel call:
   a cancellable coroutine's solo waiter with w->held, under braid__asym.
   The same protocol, without the branches for deadlines, threads and
   uncancellable scopes. */
int braid__waiter_wait_solo(braid__waiter *w);

/* Wait on a list whose lock the caller holds and on which w is already
   linked (w->solo set before that, when deadline is BRAID_FOREVER).  A
   solo waiter keeps the lock until it is off its stack (lock-ordered
   parking, waiter.c parked_solo), so no party can reach it half-parked;
   any other waiter unlocks first.  Chaos mode unlocks now and then, maybe
   yields, and lets a party decide us before we park.  The lock is free
   when this returns.  Channels (chan.c) and braid_join use it. */
static inline __attribute__((always_inline))
int braid__waiter_wait_locked(braid__waiter *w, braid__spin *lock,
                              int64_t deadline)
{
    braid__coro *me = w->coro;
    if (w->solo && !(unlikely(braid__chaos) && braid__chaos_coin())) {
        w->held = lock;
    } else {
        braid__spin_unlock(lock);
        braid__chaos_point();
    }
    return w->held && braid__asym && me && !me->nocancel
         ? braid__waiter_wait_solo(w) : braid__waiter_wait(w, deadline);
}

/* An uncancellable scope for the calling coroutine (nests): waits inside
   it ignore braid_cancel (the flag stays set for later calls).  For
   cleanup that must complete: relocking after a cond wait, waiting for a
   job that uses the caller's stack.  No-ops on plain threads. */
void braid__nocancel_push(void);
void braid__nocancel_pop(void);

/* Would a blocking call of the current context be cancelled at once? */
bool braid__cancel_pending(void);

/* The same for a caller that knows its coroutine (NULL: a plain thread). */
static inline bool braid__cancel_pending_as(const braid__coro *c)
{
    return c && !c->nocancel &&
           atomic_load_explicit(&c->cancelled, memory_order_relaxed);
}

#endif
