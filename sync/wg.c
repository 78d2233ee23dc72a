/*
 * wg.c - braid_wg: Go's sync.WaitGroup.
 *
 * State word (atomic uint64): counter << 1 | W.  W ("someone may wait") is
 * set only under lk, by a waiter that saw a non-zero counter in the same
 * CAS, and cleared only under lk.  The counter lives in bits 1..62; bit 63
 * set means a braid_wg_done on a zero counter is backing its decrement out
 * (transiently "negative").
 *
 * braid_wg_done is one fetch_sub on the hot path.  Only the decrement that
 * takes the counter to zero with W set goes to the slow path, wake(): under
 * lk it clears W and wakes every waiter, but only if the word is exactly
 * "0 | W" then: if the counter went up again meanwhile the waiters stay
 * (the next transition to zero wakes them).  Every transition to zero sees
 * a W set before it (same atomic word), and W is set only while the
 * counter is non-zero, so no waiter is left behind.
 *
 * Underflow: a done that finds the counter at zero adds its 2 back (the
 * counter is unchanged in the end) and returns -EINVAL; if waiters queued
 * during the transient it runs wake() itself.  Adds spin while a transient
 * is in flight.
 *
 * Ordering: done/add are acq_rel RMWs (release publishes the worker's
 * writes; they form one release sequence), wait's fast-path load is an
 * acquire; a parked waiter is ordered by the claim and park handshake.
 * Lock order: nursery lk < lk < coro->lk < scheduler locks.
 */
#include "../runtime/common.h"
#include "sync.h"

#define WG_W     ((uint64_t)1)
#define WG_ONE   ((uint64_t)2)
#define WG_NEG   ((uint64_t)1 << 63)
#define WG_MAX   ((int64_t)1 << 61)        /* counter limit, exclusive */

typedef struct wg_impl {
    _Atomic uint64_t state;   /* atomic; see above */
    braid__spin lk;           /* protects q and W */
    uint32_t pad_;
    braid__wq q;              /* lk */
} wg_impl;

BRAID__FITS(wg_impl, braid_wg);

static inline wg_impl *impl(braid_wg *w)
{
    return (wg_impl *)(void *)w;
}

/* The counter reached zero with W set: wake everyone if still so.
   Lifetime: a waiter may free the wait group as soon as it can return, so
   the CAS that clears W must be our last touch of g.  Waiters return only
   on state == 0 or when woken (see braid_wg_wait), so: under lk claim
   every queued waiter (claimed waiters stay parked until woken), drop lk,
   clear W, then wake the claimed waiters through their own nodes. */
static void wake(wg_impl *g)
{
    braid__batch b = BRAID__BATCH_INIT;
    braid__wnode *mine = NULL, *n;
    braid__spin_lock(&g->lk);
    if (ld_relaxed(&g->state) != WG_W) {   /* counter went up again */
        braid__spin_unlock(&g->lk);
        return;
    }
    while ((n = braid__wq_pop(&g->q)) != NULL)
        if (braid__waiter_claim(n->w, 0)) {
            n->next = mine;
            mine = n;
        }
    braid__spin_unlock(&g->lk);
    uint64_t s = WG_W;
    atomic_compare_exchange_strong_explicit(&g->state, &s, 0,
            memory_order_acq_rel, memory_order_relaxed);
    while (mine) {
        n = mine;
        mine = n->next;          /* read before n's owner may return */
        braid__waiter_wake(n->w, &b);
    }
    if (b.n)
        braid__ready_batch(&b);
}

static int done_underflow(wg_impl *g)
{
    uint64_t s = atomic_fetch_add_explicit(&g->state, WG_ONE,
                                           memory_order_acq_rel) + WG_ONE;
    if (s == WG_W)
        wake(g);
    return -EINVAL;
}

/* Add delta (may be negative) to the counter. */
BRAID_EXPORT int braid_wg_add(braid_wg *pw, int64_t delta)
{
    BRAID__FORK_GUARD();
    if (!pw || delta >= WG_MAX || delta <= -WG_MAX)
        return -EINVAL;
    if (delta == 0)
        return 0;
    wg_impl *g = impl(pw);
    uint64_t s = ld_relaxed(&g->state);
    for (;;) {
        if (s & WG_NEG) {      /* a failing done backs out: wait for it */
            braid__cpu_relax();
            s = ld_relaxed(&g->state);
            continue;
        }
        int64_t n = (int64_t)(s >> 1) + delta;
        if (n < 0 || n >= WG_MAX)
            return -EINVAL;
        uint64_t ns = (uint64_t)n << 1 | (s & WG_W);
        if (atomic_compare_exchange_weak_explicit(&g->state, &s, ns,
                memory_order_acq_rel, memory_order_relaxed)) {
            if (ns == WG_W)
                wake(g);
            return 0;
        }
    }
}

/* Decrement the counter: one atomic RMW unless it reaches zero with
   waiters. */
BRAID_EXPORT int braid_wg_done(braid_wg *pw)
{
    BRAID__FORK_GUARD();
    if (!pw)
        return -EINVAL;
    wg_impl *g = impl(pw);
    uint64_t old = atomic_fetch_sub_explicit(&g->state, WG_ONE,
                                             memory_order_acq_rel);
    if (unlikely(old < WG_ONE || (old & WG_NEG)))
        return done_underflow(g);
    if (unlikely(old == (WG_ONE | WG_W)))
        wake(g);
    return 0;
}

/* Under lk: publish W if the counter is non-zero.  false: it is zero. */
static bool mark_waiting(wg_impl *g)
{
    uint64_t s = ld_relaxed(&g->state);
    for (;;) {
        if ((s & ~WG_W) == 0)
            return false;
        if ((s & WG_W) || atomic_compare_exchange_weak_explicit(&g->state,
                &s, s | WG_W, memory_order_relaxed, memory_order_relaxed))
            return true;
    }
}

/* Wait for the counter to be zero. */
BRAID_EXPORT int braid_wg_wait(braid_wg *pw, int64_t deadline)
{
    BRAID__FORK_GUARD();
    if (!pw)
        return -EINVAL;
    wg_impl *g = impl(pw);
    uint64_t st;
    /* Counter zero with W still set: a wake is in flight and may still
       touch g; wait for it to clear W before returning (see wake()). */
    while ((st = ld_acquire(&g->state)) == WG_W)
        braid_yield();
    if (st == 0)
        return 0;
    if (braid__deadline_past(deadline))
        return -EAGAIN;
    if (braid__cancel_pending())
        return -ECANCELED;
    braid__chaos_point();
    braid__waiter w;
    braid__wnode nd = { .w = &w };
    braid__waiter_init(&w, "wg wait", g);
    braid__spin_lock(&g->lk);
    if (!mark_waiting(g)) {    /* reached zero meanwhile: start over */
        braid__spin_unlock(&g->lk);
        return braid_wg_wait(pw, deadline);
    }
    braid__wq_push(&g->q, &nd);
    braid__spin_unlock(&g->lk);
    int r = braid__waiter_wait(&w, deadline);
    if (r != 0)
        braid__wq_leave(&g->lk, &g->q, &g->state, WG_W, &nd);
    return r;
}

/* The counter (0 during an underflow transient). */
int64_t braid__wg_count(braid_wg *pw)
{
    uint64_t s = ld_acquire(&impl(pw)->state);
    return (s & WG_NEG) ? 0 : (int64_t)(s >> 1);
}
