/*
 * deque.h - the spawn deque: a bounded Chase-Lev work-stealing deque.
 *
 * Each worker keeps the coroutines it spawned that have not run yet here.
 * The owner pushes and takes at the bottom, newest first, so a fork-join
 * tree is walked depth first: only the coroutines on the current path hold
 * stacks, instead of a whole breadth of the tree (a FIFO walk of fib(30)
 * touched 230 MB of stack; this one, under 2 MB).  Thieves take from the
 * top, the oldest spawns, which in a fork-join tree are the biggest pieces
 * of work.  Readied coroutines never come here: they keep the FIFO ring,
 * so wake-ups stay fair.
 *
 * Invariants: items live in slots [top, bottom); bottom is written by the
 * owner only; top only grows, by CAS (a thief, or the owner taking the
 * last item).  bottom - top <= BRAID__DEQ_SIZE.
 *
 * Memory ordering (the bounded form of Le, Pop, Cohen and Zappa Nardelli,
 * "Correct and Efficient Work-Stealing for Weak Memory Models", PPoPP'13):
 *   push:  slot store (relaxed), release fence, bottom store (relaxed)
 *   take:  bottom store, seq_cst fence, top load; CAS on top for the last
 *          item, so the owner and a thief cannot both get it
 *   steal: top load (acquire), seq_cst fence, bottom load (acquire), slot
 *          load, CAS on top (seq_cst); a thief whose CAS fails read a slot
 *          the owner may since have reused, and drops what it read.
 * The owner never overwrites slot t while a thief can still win a CAS on
 * top == t: push refuses when bottom - top == BRAID__DEQ_SIZE, judged from
 * top_seen, an older value of top and so never an overestimate.  (The
 * acquire load of top in that case orders the thief's read of the old
 * slot before the owner's new write to it.)
 * ThreadSanitizer does not model fences: the coroutine handed over is
 * released/acquired explicitly by the caller (sched.c).
 */
#ifndef BRAID_DEQUE_H
#define BRAID_DEQUE_H

#include "common.h"

#define BRAID__DEQ_SIZE 256    /* power of two */

typedef struct braid__deque {
    _Atomic int64_t top BRAID_ALIGNED;
    _Atomic int64_t bottom BRAID_ALIGNED;
    int64_t top_seen;          /* owner only: a top it read (top only grows,
                                  so a lower bound); push reads the shared
                                  line only when this one says "full" */
    _Atomic(void *) slot[BRAID__DEQ_SIZE];
} braid__deque;

static inline _Atomic(void *) *braid__deq_at(braid__deque *d, int64_t i)
{
    return &d->slot[i & (BRAID__DEQ_SIZE - 1)];
}

/* Items held; racy unless called by the owner (a hint for thieves). */
static inline int64_t braid__deq_size(braid__deque *d)
{
    int64_t n = atomic_load_explicit(&d->bottom, memory_order_relaxed) -
                atomic_load_explicit(&d->top, memory_order_relaxed);
    return n > 0 ? n : 0;
}

/* Owner: push x at the bottom.  false when full. */
static inline bool braid__deq_push(braid__deque *d, void *x)
{
    int64_t b = atomic_load_explicit(&d->bottom, memory_order_relaxed);
    if (b - d->top_seen >= BRAID__DEQ_SIZE) {
        d->top_seen = atomic_load_explicit(&d->top, memory_order_acquire);
        if (b - d->top_seen >= BRAID__DEQ_SIZE) return false;
    }
    atomic_store_explicit(braid__deq_at(d, b), x, memory_order_relaxed);
    atomic_thread_fence(memory_order_release);
    atomic_store_explicit(&d->bottom, b + 1, memory_order_relaxed);
    return true;
}

/* Owner: take the newest item, or NULL. */
static inline void *braid__deq_take(braid__deque *d)
{
    int64_t b = atomic_load_explicit(&d->bottom, memory_order_relaxed) - 1;
    int64_t t = atomic_load_explicit(&d->top, memory_order_relaxed);
    if (b < t) return NULL;         /* empty: skip the fence */
    atomic_store_explicit(&d->bottom, b, memory_order_relaxed);
    atomic_thread_fence(memory_order_seq_cst);
    t = atomic_load_explicit(&d->top, memory_order_relaxed);
    void *x = NULL;
    if (t <= b) {
        x = atomic_load_explicit(braid__deq_at(d, b), memory_order_relaxed);
        if (t == b) {               /* the last one: race the thieves */
            if (!atomic_compare_exchange_strong_explicit(
                    &d->top, &t, t + 1, memory_order_seq_cst,
                    memory_order_relaxed))
                x = NULL;
            atomic_store_explicit(&d->bottom, b + 1, memory_order_relaxed);
        }
    } else {
        atomic_store_explicit(&d->bottom, b + 1, memory_order_relaxed);
    }
    return x;
}

/* Anyone: take the oldest item, or NULL (empty, or lost a race). */
static inline void *braid__deq_steal(braid__deque *d)
{
    int64_t t = atomic_load_explicit(&d->top, memory_order_acquire);
    atomic_thread_fence(memory_order_seq_cst);
    int64_t b = atomic_load_explicit(&d->bottom, memory_order_acquire);
    if (t >= b) return NULL;
    void *x = atomic_load_explicit(braid__deq_at(d, t), memory_order_relaxed);
    if (!atomic_compare_exchange_strong_explicit(&d->top, &t, t + 1,
                                                 memory_order_seq_cst,
                                                 memory_order_relaxed))
        return NULL;
    return x;
}

#endif
