/*
 * waiter.c - the parking primitive (contract and states in waiter.h).
 *
 * Cancellation: braid_cancel sets coro->cancelled, then, under coro->lk,
 * claims coro->waiter.  The waiting side publishes coro->waiter before it
 * checks the flag and clears it before it returns, so a canceller never
 * touches a waiter that is gone, and a cancel that lands between the
 * check and the park is still seen (it claims the published waiter).
 * Two ways to get the ordering, both a store followed by a load on each
 * side (Dekker):
 *  - braid__asym (membarrier available): the waiter stores and loads with
 *    only a compiler barrier between; the canceller, holding lk, runs
 *    braid__asym_heavy before it loads coro->waiter.  Publish: either the
 *    waiter sees cancelled, or the canceller sees the waiter.  Clear: the
 *    waiter stores NULL, then waits until lk is free; either the canceller
 *    sees NULL, or the waiter sees lk held and waits for the canceller to
 *    finish with it.  A wait costs no atomic instruction for this.
 *  - otherwise: publish and clear under lk.
 *
 * Solo waiters (waiter.h, braid__waiter_claim_locked): a party holding
 * the wait-list lock decides them with plain moves; every cancellation
 * claim of one (braid_cancel, and ours below) holds coro->lk, runs
 * braid__asym_heavy and waits out coro->claiming first.  Their park is
 * lock-ordered (parked_solo): the same plain-move section on the park
 * word, so braid_cancel also wakes under coro->lk.  Model:
 * tests/model/asym.pml, SOLO_CLAIM and SOLO_PARK.
 *
 * Timers: a coroutine with a deadline arms w->timer (its callback claims
 * -ETIMEDOUT); braid__timer_stop on the way out guarantees the callback is
 * not running any more.  A plain thread needs no timer: it sleeps on the
 * futex with the deadline itself, so it works without a running runtime.
 */
#include "runtime.h"
#include "waiter.h"

#include <stddef.h>
#include <time.h>

void braid__waiter_init(braid__waiter *w, const char *what, const void *obj)
{
    braid__waiter_init_as(w, braid__current(), what, obj);
}

void braid__waiter_wake(braid__waiter *w, braid__batch *b)
{
    braid__coro *c = w->coro;
    if (!c) {
        atomic_exchange_explicit(&w->park, 2, memory_order_acq_rel);
        braid__futex_wake(&w->park, 1);   /* address only: w may be gone */
        return;
    }
    braid__tsan_release(&w->park);
    /* Parked already (1): only the claim's winner, us, moves the word
       from there, so a load tells; the exchange is for the race with a
       coroutine that is still on its way to park (0). */
    if (ld_acquire(&w->park) != 1 &&
        atomic_exchange_explicit(&w->park, 2, memory_order_acq_rel) != 1)
        return;                 /* not parked yet: it readies itself */
    if (b) braid__batch_add(b, c);
    else braid__ready(c);
}

bool braid__waiter_complete(braid__waiter *w, int outcome, braid__batch *b)
{
    if (!braid__waiter_claim(w, outcome)) return false;
    braid__waiter_wake(w, b);
    return true;
}

/* Deferred action of a coroutine's park: it is off its stack now. */
static void parked(braid__worker *self, void *arg)
{
    (void)self;
    braid__waiter *w = arg;
    uint32_t exp = 0;
    if (atomic_compare_exchange_strong_explicit(&w->park, &exp, 1,
            memory_order_acq_rel, memory_order_acquire))
        return;
    braid__tsan_acquire(&w->park);
    braid__ready(w->coro);      /* the wake came first */
}

/* The same for a solo waiter whose list lock (w->held) the coroutine kept
   across the switch.  Lock-ordered parking: every channel party reaches
   the waiter through its node, under that lock, so none can claim it
   before the park word says 1; only a canceller can race with us here,
   and it holds coro->lk and runs braid__asym_heavy, then waits out
   claiming, and wakes under lk (braid_cancel).  So with braid__asym the
   word moves with plain moves inside claiming, as a party's plain claim
   does (waiter.h): a canceller either finished before (its wake left 2:
   we ready ourselves), or waits for us, or comes later and finds 1.  No
   locked instruction on the park of a blocked channel call. */
static void parked_solo(braid__worker *self, void *arg)
{
    (void)self;
    braid__waiter *w = arg;
    braid__coro *c = w->coro;
    braid__spin *held = w->held;
    uint32_t v = 0;
    if (braid__asym) {
        st_relaxed(&c->claiming, 1);
        braid__asym_light();
        if (likely(!ld_acquire(&c->lk.v))) {
            v = ld_relaxed(&w->park);
            if (v == 0) st_relaxed(&w->park, 1);
            st_release(&c->claiming, 0);
            goto out;
        }
        st_release(&c->claiming, 0);
    }
    atomic_compare_exchange_strong_explicit(&w->park, &v, 1,
            memory_order_acq_rel, memory_order_acquire);
out:
    braid__spin_unlock(held);   /* w may be gone from here on if v == 0 */
    if (v == 0) return;
    braid__tsan_acquire(&w->park);
    braid__ready(c);            /* a canceller's wake came first */
}

static void on_timer(braid__timer *t, braid__batch *b)
{
    braid__waiter *w = (braid__waiter *)((char *)t - offsetof(braid__waiter, timer));
    braid__waiter_complete(w, -ETIMEDOUT, b);
}

bool braid__cancel_pending(void)
{
    return braid__cancel_pending_as(braid__current());
}

void braid__nocancel_push(void)
{
    braid__coro *c = braid__current();
    if (c) c->nocancel++;
}

void braid__nocancel_pop(void)
{
    braid__coro *c = braid__current();
    if (c) c->nocancel--;
}

static void thread_wait(braid__waiter *w, int64_t deadline)
{
    uint32_t v;
    while ((v = ld_acquire(&w->park)) != 2) {
        if (deadline >= 0 && braid_now() >= deadline) {
            if (braid__waiter_claim(w, -ETIMEDOUT))
                return;
            deadline = -1;      /* someone else decided: wait for its wake */
        }
        braid__futex_wait(&w->park, v, deadline);
    }
}

/* Inlined (two callers): one frame less on every park. */
static inline __attribute__((always_inline))
void coro_wait(braid__waiter *w, braid__coro *me)
{
    /* Relaxed atomic stores: braid_dump reads these from any thread. */
    __atomic_store_n(&me->wait_what, w->what, __ATOMIC_RELAXED);
    __atomic_store_n(&me->wait_obj, w->obj, __ATOMIC_RELAXED);
    __atomic_store_n(&me->since, braid__coarse_now(), __ATOMIC_RELAXED);
    st_relaxed(&me->state, CORO_BLOCKED);
    braid__park(me, w->held ? parked_solo : parked, w);
    braid__tsan_acquire(&w->park);
}

/* The waiter leaves coro->waiter (braid__asym, see the top): clear it,
   then wait until no canceller holds lk (one may still use the waiter). */
static inline void unpublish_asym(braid__coro *me)
{
    st_relaxed(&me->waiter, NULL);
    braid__asym_light();
    while (ld_acquire(&me->lk.v))
        braid__cpu_relax();
}

int braid__waiter_wait(braid__waiter *w, int64_t deadline)
{
    if (deadline < BRAID_FOREVER) deadline = 0;   /* any other negative: past */
    braid__coro *me = w->coro;
    BRAID_ASSERT(!w->solo || deadline == BRAID_FOREVER);
    BRAID_ASSERT(!w->held || w->solo);
    bool mine = false, armed = false;
    bool cancellable = me && !w->nocancel && !me->nocancel;
    if (cancellable) {
        if (braid__asym) {
            st_relaxed(&me->waiter, w);
            braid__asym_light();
        } else {
            braid__spin_lock(&me->lk);
            st_relaxed(&me->waiter, w);
            braid__spin_unlock(&me->lk);
        }
        if (ld_relaxed(&me->cancelled)) {
            if (w->solo && braid__asym) {   /* as a canceller would */
                braid__spin_lock(&me->lk);
                braid__asym_heavy();
                mine = braid__waiter_claim_cancel(w);
                braid__spin_unlock(&me->lk);
            } else {
                mine = braid__waiter_claim(w, -ECANCELED);
            }
        }
    }
    if (!mine && deadline >= 0 && deadline <= braid_now())
        mine = braid__waiter_claim(w, -ETIMEDOUT);
    if (!mine && me && deadline >= 0) {
        braid__source_add();
        armed = braid__timer_start(&w->timer, deadline, on_timer) == 0;
        if (!armed) braid__source_del();
    }
    if (!mine && me) {
        coro_wait(w, me);       /* releases w->held once off the stack */
    } else {
        if (w->held)
            braid__spin_unlock(w->held);
        if (!mine) {
            braid__source_add();
            thread_wait(w, deadline);
            braid__source_del();
        }
    }
    if (armed) {
        braid__timer_stop(&w->timer);
        braid__source_del();
    }
    if (cancellable) {
        if (braid__asym) {
            unpublish_asym(me);
        } else {
            braid__spin_lock(&me->lk);
            st_relaxed(&me->waiter, NULL);
            braid__spin_unlock(&me->lk);
        }
    }
    if (me) __atomic_store_n(&me->wait_what, NULL, __ATOMIC_RELAXED);
    return ld_acquire(&w->state);
}

int braid__waiter_wait_solo(braid__waiter *w)
{
    braid__coro *me = w->coro;
    st_relaxed(&me->waiter, w);
    braid__asym_light();
    if (unlikely(ld_relaxed(&me->cancelled)))
        return braid__waiter_wait(w, BRAID_FOREVER);
    coro_wait(w, me);
    unpublish_asym(me);
    __atomic_store_n(&me->wait_what, NULL, __ATOMIC_RELAXED);
    return ld_acquire(&w->state);
}

/* ---- sleep ------------------------------------------------------------------ */

BRAID_EXPORT int64_t braid_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec + 1;
}

BRAID_EXPORT int64_t braid_after(int64_t ns)
{
    int64_t now = braid_now();
    if (ns <= 0) return now;
    return ns > INT64_MAX - now ? INT64_MAX : now + ns;
}

BRAID_EXPORT int braid_sleep_until(int64_t deadline)
{
    if (braid__forked_child()) return -EPERM;
    if (deadline < BRAID_FOREVER) deadline = 0;
    if (deadline >= 0 && deadline <= braid_now()) {
        braid_yield();
        return 0;
    }
    braid__waiter w;
    braid__waiter_init(&w, "sleep", NULL);
    int r = braid__waiter_wait(&w, deadline);
    return r == -ETIMEDOUT ? 0 : r;
}

BRAID_EXPORT int braid_sleep(int64_t ns)
{
    if (ns <= 0) {
        if (braid__forked_child()) return -EPERM;
        braid_yield();
        return 0;
    }
    return braid_sleep_until(braid_after(ns));
}
