/*
 * select.c - braid_select, after Go's selectgo.
 *
 * 1. Shuffle the cases that name a channel into a random poll order and
 *    sort their channels by address (duplicates removed) into a lock order.
 * 2. Take every channel lock in lock order, then try each case in poll
 *    order with the non-blocking halves of chan.c; the first that can
 *    complete does, and the select returns it.  Random poll order makes the
 *    choice among ready cases uniform, so no case starves.
 * 3. Otherwise link one wait-list node per case, all sharing ONE waiter
 *    (node->index = case index), drop the locks and park.  Whoever claims
 *    the waiter first (a peer, a closer, the deadline, a cancel) decides the
 *    outcome; the claim carries the case index, so exactly one case takes
 *    effect, and a peer that loses the claim skips (and unlinks) our node.
 * 4. After waking, leave every channel but the one whose party decided
 *    us (each under its own channel's lock: unlink the node if still
 *    linked, drop the pin that kept the channel alive while we slept);
 *    the deciding party unlinked the winning node and dropped its pin.
 *
 * Locks: several channel locks are held at once only here, always in
 * address order, so two selects (or a select and a close, which holds one
 * lock) cannot deadlock.  Nothing else is taken under them except what the
 * waiter takes to claim and wake (see the lock order in common.h).
 */
#include "../runtime/common.h"
#include "chan.h"

#include <stdlib.h>

#define SMALL 8                 /* cases served from the stack */

typedef struct sel {
    braid_case *cases;
    braid__wnode *nodes;        /* [n] by case: wait-list nodes */
    braid__chan **chans;        /* [n] by case: its channel, NULL if none;
                                   still valid once the handle is closed */
    uint32_t *poll;             /* [m] case indices in poll order */
    braid__chan **locks;        /* [nlocks] distinct channels, by address */
    size_t m, nlocks;
} sel;

/* A small fast PRNG per thread (xorshift64*).  Not inlined: the caller
   may migrate between threads across a park, so the TLS address must not
   be cached. */
static _Thread_local uint64_t rng;

__attribute__((noinline)) static uint32_t rand_below(uint32_t bound)
{
    uint64_t x = rng;

    if (!x)
        x = ((uint64_t)(uintptr_t)&rng ^ (uint64_t)braid_now()) | 1;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    rng = x;
    return (uint32_t)(((x * 0x2545F4914F6CDD1DULL) >> 32) * bound >> 32);
}

static braid__chan *case_chan(const braid_case *c)
{
    return c->op == BRAID_SEND ? ((braid_tx *)c->chan)->ch
                               : ((braid_rx *)c->chan)->ch;
}

/* -EINVAL for a bad op, or a send without a value, on a live case. */
static int validate(const braid_case *cases, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        const braid_case *c = &cases[i];
        if (!c->chan)
            continue;
        if (c->op != BRAID_SEND && c->op != BRAID_RECV)
            return -EINVAL;
        if (c->op == BRAID_SEND && !c->elem && case_chan(c)->elem_size)
            return -EINVAL;
    }
    return 0;
}

static int cmp_chan(const void *a, const void *b)
{
    uintptr_t x = (uintptr_t)*(braid__chan *const *)a;
    uintptr_t y = (uintptr_t)*(braid__chan *const *)b;
    return (x > y) - (x < y);
}

/* Insertion sort for the usual handful, qsort beyond. */
static void sort_chans(braid__chan **a, size_t m)
{
    if (m > 16) {
        qsort(a, m, sizeof *a, cmp_chan);
        return;
    }
    for (size_t i = 1; i < m; i++) {
        braid__chan *x = a[i];
        size_t j = i;
        for (; j > 0 && (uintptr_t)a[j - 1] > (uintptr_t)x; j--)
            a[j] = a[j - 1];
        a[j] = x;
    }
}

/* Fill the poll order (shuffled) and the lock order (sorted, unique). */
static void plan(sel *s, size_t n)
{
    s->m = 0;
    for (size_t i = 0; i < n; i++) {
        s->chans[i] = s->cases[i].chan ? case_chan(&s->cases[i]) : NULL;
        if (!s->chans[i])
            continue;
        uint32_t j = rand_below((uint32_t)s->m + 1);  /* inside-out shuffle */
        if (j != s->m)
            s->poll[s->m] = s->poll[j];
        s->poll[j] = (uint32_t)i;
        s->m++;
    }
    for (size_t k = 0; k < s->m; k++)
        s->locks[k] = s->chans[s->poll[k]];
    sort_chans(s->locks, s->m);
    s->nlocks = 0;
    for (size_t k = 0; k < s->m; k++)
        if (!s->nlocks || s->locks[s->nlocks - 1] != s->locks[k])
            s->locks[s->nlocks++] = s->locks[k];
}

static void lock_all(sel *s)
{
    for (size_t k = 0; k < s->nlocks; k++)
        braid__spin_lock(&s->locks[k]->lock);
}

static void unlock_all(sel *s)
{
    for (size_t k = s->nlocks; k-- > 0;)
        braid__spin_unlock(&s->locks[k]->lock);
}

/* Step 2 on case i: 1 done, 0 would block, < 0 done with that result. */
static int try_case(braid_case *c, braid__waiter **wake)
{
    if (c->op == BRAID_SEND) {
        braid_tx *tx = c->chan;
        return tx->closed ? -EBADF
                          : braid__chan_try_send(tx->ch, c->elem, wake);
    }
    braid_rx *rx = c->chan;
    return rx->closed ? -EBADF : braid__chan_try_recv(rx->ch, c->elem, wake);
}

/* Step 2: lock everything, try each case in poll order.  Returns the case
   index that completed, or -1 with the locks still held. */
static int poll_cases(sel *s)
{
    braid__waiter *wake = NULL;

    lock_all(s);
    for (size_t k = 0; k < s->m; k++) {
        uint32_t i = s->poll[k];
        int r = try_case(&s->cases[i], &wake);
        if (r == 0)
            continue;
        unlock_all(s);
        if (wake)
            braid__waiter_wake(wake, NULL);
        s->cases[i].result = r < 0 ? r : 0;
        return (int)i;
    }
    return -1;
}

/* Step 3: link one node per case, all on w.  Locks held. */
static void enqueue_all(sel *s, braid__waiter *w)
{
    for (size_t k = 0; k < s->m; k++) {
        uint32_t i = s->poll[k];
        braid_case *c = &s->cases[i];
        s->nodes[i] = (braid__wnode){ .w = w, .elem = c->elem,
                                      .index = (int)i,
                                      .data = (uintptr_t)c->chan };
        braid__chan_enqueue(s->chans[i], &s->nodes[i], c->op == BRAID_SEND);
    }
}

/* Step 4: leave every channel (unlink what is still linked, drop the
   pins), except through the node a channel party decided us by: it
   unlinked that one and dropped its pin.  The handles may be closed and
   freed by now; only s->chans is used. */
static void dequeue_all(sel *s, int outcome)
{
    int won = outcome >= 0 ? (outcome & BRAID__CHAN_IDX_MASK) : -1;

    for (size_t k = 0; k < s->m; k++) {
        uint32_t i = s->poll[k];
        if ((int)i != won)
            braid__chan_leave(s->chans[i], &s->nodes[i],
                              s->cases[i].op == BRAID_SEND);
    }
}

static int run(sel *s, size_t n, int64_t deadline)
{
    plan(s, n);
    int r = poll_cases(s);
    if (r >= 0)
        return r;
    r = braid__chan_past(deadline) ? -EAGAIN
      : braid__cancel_pending() ? -ECANCELED : 0;
    if (r) {
        unlock_all(s);
        return r;
    }
    braid__waiter w;
    braid__waiter_init(&w, "select", s->m ? (void *)s->locks[0] : NULL);
    enqueue_all(s, &w);
    unlock_all(s);
    braid__chaos_point();       /* a peer may decide us before we park */
    r = braid__waiter_wait(&w, deadline);
    dequeue_all(s, r);
    if (r < 0)
        return r;
    int i = r & BRAID__CHAN_IDX_MASK;
    s->cases[i].result = braid__chan_result(r);
    return i;
}

BRAID_EXPORT int braid_select(braid_case *cases, size_t n, int64_t deadline)
{
    BRAID__FORK_GUARD();
    if ((!cases && n) || n > BRAID__SELECT_MAX)
        return -EINVAL;
    int r = validate(cases, n);
    if (r)
        return r;

    braid__wnode nodes[SMALL];
    braid__chan *chans[SMALL], *locks[SMALL];
    uint32_t poll[SMALL];
    sel s = { .cases = cases, .nodes = nodes, .chans = chans,
              .poll = poll, .locks = locks };
    void *mem = NULL;
    if (n > SMALL) {
        mem = malloc(n * (sizeof *nodes + 2 * sizeof *chans + sizeof *poll));
        if (!mem)
            return -ENOMEM;
        s.nodes = mem;
        s.chans = (braid__chan **)(s.nodes + n);
        s.locks = s.chans + n;
        s.poll = (uint32_t *)(s.locks + n);
    }
    r = run(&s, n, deadline);
    free(mem);
    return r;
}
