/*
 * timer.c - deadlines: one 4-ary min-heap per worker plus one spare.
 *
 * Why per-worker 4-ary heaps: a deadline-taking call on a hot path (a
 * receive with a timeout in a loop) arms and stops a timer every time; one
 * shared structure would serialise every worker on its lock.  A coroutine
 * arms on its own worker's heap (uncontended except against the I/O thread
 * expiring it), and stop finds the timer through t->heap and t->slot in
 * O(log n) from anywhere.  A 4-ary heap is shallower than a binary one and
 * its four children share a cache line of pointers; a hierarchical wheel
 * would make arm/stop O(1) but costs a periodic tick, which an idle
 * process should not pay.
 *
 * Invariants (per heap, under h->lock): v[0..n) is a min-heap on ->when;
 * v[i]->slot == i + 1 and v[i]->heap == heap index; a timer not in a heap
 * has slot 0.  h->earliest mirrors v[0]->when (INT64_MAX when empty); it is
 * written under the lock and read without it by the I/O thread and by
 * workers looking for late deadlines (relaxed is enough: a stale value
 * only makes a reader look again or a little later, and every arm that
 * lowers it also kicks the I/O thread after unlocking).
 * Callbacks run under the lock (see timer.h).
 */
#include "timer.h"
#include "runtime.h"
#include "../netio/poller.h"

#include <stdlib.h>

typedef struct heap {
    braid__spin lock;
    braid__timer **v;
    uint32_t n, cap;
    _Atomic int64_t earliest;
    char pad[BRAID_CACHELINE - 32];
} heap;

static heap *H;
static unsigned NH;
static _Atomic long armed;

int braid__timers_init(unsigned nheaps)
{
    H = braid__zalloc_lines(nheaps * sizeof *H);
    if (!H) return -ENOMEM;
    NH = nheaps;
    for (unsigned i = 0; i < nheaps; i++)
        atomic_init(&H[i].earliest, INT64_MAX);
    atomic_store(&armed, 0);
    return 0;
}

void braid__timers_fini(void)
{
    for (unsigned i = 0; i < NH; i++) free(H[i].v);
    free(H);
    H = NULL;
    NH = 0;
}

long braid__timers_armed(void) { return atomic_load(&armed); }

static void put(heap *h, uint32_t i, braid__timer *t)
{
    h->v[i] = t;
    t->slot = i + 1;
}

static void up(heap *h, uint32_t i)
{
    braid__timer *t = h->v[i];
    while (i > 0) {
        uint32_t p = (i - 1) / 4;
        if (h->v[p]->when <= t->when) break;
        put(h, i, h->v[p]);
        i = p;
    }
    put(h, i, t);
}

static void down(heap *h, uint32_t i)
{
    braid__timer *t = h->v[i];
    for (;;) {
        uint32_t c = 4 * i + 1, best = i;
        int64_t bw = t->when;
        for (uint32_t k = c; k < c + 4 && k < h->n; k++)
            if (h->v[k]->when < bw) { best = k; bw = h->v[k]->when; }
        if (best == i) break;
        put(h, i, h->v[best]);
        i = best;
    }
    put(h, i, t);
}

static void remove_at(heap *h, uint32_t i)
{
    h->v[i]->slot = 0;
    braid__timer *last = h->v[--h->n];
    if (i < h->n) {
        put(h, i, last);
        if (i > 0 && h->v[(i - 1) / 4]->when > last->when) up(h, i);
        else down(h, i);
    }
    atomic_store_explicit(&h->earliest, h->n ? h->v[0]->when : INT64_MAX,
                          memory_order_relaxed);
    atomic_fetch_sub_explicit(&armed, 1, memory_order_relaxed);
}

int braid__timer_start(braid__timer *t, int64_t when,
                       void (*fn)(braid__timer *, braid__batch *))
{
    braid__worker *w = braid__worker_self();
    if (!H) return -EPERM;
    unsigned hi = w ? w->id % NH : NH - 1;
    heap *h = &H[hi];
    int64_t j = braid__chaos_jitter();
    t->when = when > INT64_MAX - j ? INT64_MAX : when + j;
    t->fn = fn;
    t->heap = hi;
    braid__spin_lock(&h->lock);
    if (h->n == h->cap) {
        uint32_t cap = h->cap ? h->cap * 2 : 64;
        braid__timer **v = realloc(h->v, cap * sizeof *v);
        if (!v) {
            braid__spin_unlock(&h->lock);
            return -ENOMEM;
        }
        h->v = v;
        h->cap = cap;
    }
    h->n++;
    put(h, h->n - 1, t);
    up(h, h->n - 1);
    bool first = h->v[0] == t;
    if (first)
        atomic_store_explicit(&h->earliest, t->when, memory_order_relaxed);
    atomic_fetch_add_explicit(&armed, 1, memory_order_relaxed);
    braid__spin_unlock(&h->lock);
    if (first) braid__poller_kick(t->when);
    return 0;
}

int braid__timer_stop(braid__timer *t)
{
    if (!H || t->heap >= NH) return 0;
    heap *h = &H[t->heap];
    braid__spin_lock(&h->lock);
    bool was = t->slot != 0;
    if (was) remove_at(h, t->slot - 1);
    braid__spin_unlock(&h->lock);
    return was;
}

int64_t braid__timers_next(void)
{
    int64_t m = INT64_MAX;
    for (unsigned i = 0; i < NH; i++) {
        int64_t e = atomic_load_explicit(&H[i].earliest, memory_order_relaxed);
        if (e < m) m = e;
    }
    return m == INT64_MAX ? -1 : m;
}

static int expire(int64_t now, braid__batch *b, bool worker)
{
    int fired = 0;
    for (unsigned i = 0; i < NH; i++) {
        heap *h = &H[i];
        if (atomic_load_explicit(&h->earliest, memory_order_relaxed) > now)
            continue;
        if (!worker)
            braid__spin_lock(&h->lock);
        else if (!braid__spin_trylock(&h->lock))
            continue;               /* someone is at it: it fires them */
        while (h->n && h->v[0]->when <= now) {
            braid__timer *t = h->v[0];
            remove_at(h, 0);
            t->fn(t, b);
            fired++;
        }
        braid__spin_unlock(&h->lock);
    }
    return fired;
}

int braid__timers_expire(int64_t now, braid__batch *b)
{
    return expire(now, b, false);
}

int braid__timers_expire_late(braid__batch *b)
{
    if (!H || atomic_load_explicit(&armed, memory_order_relaxed) == 0)
        return 0;
    int64_t e = braid__timers_next(), now;
    if (e < 0 || e > (now = braid_now()))
        return 0;
    return expire(now, b, true);
}
