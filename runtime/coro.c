/*
 * coro.c - coroutine objects: allocation, spawn, exit, join, cancel.
 *
 * Objects come from 64 KiB slabs that live until braid_run returns (so a
 * dump can walk every object ever handed out without locks), through a
 * per-worker cache of free objects that trades whole batches with a
 * global pool under P.lock.
 *
 * Join protocol (coro->lk): the exiting coroutine sets done and takes the
 * joiner pointer under lk, then completes the joiner's waiter.  A joiner
 * checks done and publishes itself under lk, so one of the two sees the
 * other.  result is written before done and read after it (lk orders it).
 *
 * References: a running coroutine holds one, an undetached handle one.
 * The last braid__coro_unref recycles the object (its stack is already
 * back in the pool: the exit's deferred action returns it).
 */
#include "runtime.h"
#include "waiter.h"

#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#ifdef BRAID_TSAN
#include <sanitizer/tsan_interface.h>
#endif

#define SLAB_BYTES (64u << 10)
#define CACHE_MAX 64
#define CACHE_MOVE 32

/* Objects move between a worker cache and the global pool in whole
   batches of CACHE_MOVE, chained through link, the batch itself on the
   pool's list through its first object's `batch`: a worker that spawns
   what another one runs and frees (every spawn of bench spawn on 2
   workers) takes a batch in O(1) under the lock.  Taking 32 objects one
   by one walked a list of lines last written by the other core, 32 cache
   misses in a row under P.lock, a third of the spawner's time. */
struct braid__coro_cache {
    braid__coro *free;       /* owner only */
    size_t n;
};

typedef struct cslab { struct cslab *next; size_t n; braid__coro objs[]; } cslab;

static struct {
    braid__spin lock;         /* protects everything below */
    braid__coro *batches;     /* full batches, through batch */
    braid__coro *loose;       /* single objects, through link */
    cslab *slabs;
    _Atomic int fail_next;
} P;

void braid__coro_fail_next(int n);
void braid__coro_fail_next(int n) { st_relaxed(&P.fail_next, n); }

/* Chain n objects from a into one list; returns its last. */
static braid__coro *chain(braid__coro *a, size_t n)
{
    for (size_t i = 0; i + 1 < n; i++) a[i].link = &a[i + 1];
    a[n - 1].link = NULL;
    return &a[n - 1];
}

/* Carve a slab into batches on the pool (the rest loose).  P.lock held. */
static int grow(void)
{
    if (atomic_load(&P.fail_next) > 0 && atomic_fetch_sub(&P.fail_next, 1) > 0)
        return -ENOMEM;
    cslab *s = mmap(NULL, SLAB_BYTES, PROT_READ | PROT_WRITE,
                    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (s == MAP_FAILED) return -ENOMEM;
    s->n = (SLAB_BYTES - sizeof *s) / sizeof(braid__coro);
    size_t i = 0;
    for (; i + CACHE_MOVE <= s->n; i += CACHE_MOVE) {
        chain(&s->objs[i], CACHE_MOVE);
        s->objs[i].batch = P.batches;
        P.batches = &s->objs[i];
    }
    if (i < s->n) {
        chain(&s->objs[i], s->n - i)->link = P.loose;
        P.loose = &s->objs[i];
    }
    s->next = P.slabs;
    P.slabs = s;
    return 0;
}

/* Pop the head of a free list, warming the next object for its turn: it
   was most likely last written on another core. */
static inline braid__coro *pop(braid__coro **head)
{
    braid__coro *co = *head, *nx = co->link;
    *head = nx;
    if (nx) {
        __builtin_prefetch(nx, 1);
        __builtin_prefetch((char *)nx + 64, 1);
        __builtin_prefetch((char *)nx + 128, 1);
    }
    return co;
}

braid__coro *braid__coro_alloc(braid__coro_cache *c)
{
    braid__coro *co;
    if (c && c->free) {
        c->n--;
        return pop(&c->free);
    }
    braid__spin_lock(&P.lock);
    if (!P.batches && !P.loose && grow() < 0) {
        braid__spin_unlock(&P.lock);
        return NULL;
    }
    if (!c) {                         /* a plain thread: one object */
        if (!P.loose) {               /* break a batch */
            P.loose = P.batches;
            P.batches = P.batches->batch;
        }
        co = pop(&P.loose);
    } else if (P.batches) {           /* the common case: a whole batch */
        co = P.batches;
        P.batches = co->batch;
        c->free = co;
        c->n = CACHE_MOVE - 1;
        co = pop(&c->free);
    } else {                          /* only loose ones left */
        for (size_t i = 0; i < CACHE_MOVE && P.loose; i++) {
            braid__coro *x = P.loose;
            P.loose = x->link;
            x->link = c->free;
            c->free = x;
            c->n++;
        }
        c->n--;
        co = pop(&c->free);
    }
    braid__spin_unlock(&P.lock);
    return co;
}

void braid__coro_free(braid__coro_cache *c, braid__coro *co)
{
    st_relaxed(&co->state, CORO_FREE);
    if (!c) {
        braid__spin_lock(&P.lock);
        co->link = P.loose;
        P.loose = co;
        braid__spin_unlock(&P.lock);
        return;
    }
    co->link = c->free;
    c->free = co;
    if (++c->n <= CACHE_MAX) return;
    /* Full: the newest CACHE_MOVE (warm, ours) go to the pool as a batch;
       the older ones stay. */
    braid__coro *last = co;
    for (size_t i = 1; i < CACHE_MOVE; i++) last = last->link;
    c->free = last->link;
    c->n -= CACHE_MOVE;
    last->link = NULL;
    braid__spin_lock(&P.lock);
    co->batch = P.batches;
    P.batches = co;
    braid__spin_unlock(&P.lock);
}

braid__coro_cache *braid__coro_cache_new(void)
{
    return braid__zalloc_lines(sizeof(braid__coro_cache));
}

void braid__coro_cache_free(braid__coro_cache *c)
{
    if (!c) return;
    braid__spin_lock(&P.lock);
    while (c->free) {
        braid__coro *x = c->free;
        c->free = x->link;
        x->link = P.loose;
        P.loose = x;
    }
    braid__spin_unlock(&P.lock);
    free(c);
}

void braid__coro_each(void (*fn)(braid__coro *, void *), void *arg)
{
    for (cslab *s = P.slabs; s; s = s->next)
        for (size_t i = 0; i < s->n; i++)
            fn(&s->objs[i], arg);
}

void braid__coros_release_all(void)
{
    braid__spin_lock(&P.lock);
    for (cslab *s = P.slabs, *nx; s; s = nx) {
        nx = s->next;
        munmap(s, SLAB_BYTES);
    }
    P.slabs = NULL;
    P.batches = P.loose = NULL;
    braid__spin_unlock(&P.lock);
}

/* ---- spawn ------------------------------------------------------------- */

static braid__coro_cache *my_cache(void)
{
    braid__worker *w = braid__worker_self();
    return w ? w->coros : NULL;
}

/* Ids come in blocks so that spawning on two workers shares no counter. */
#define ID_BLOCK 1024
static uint64_t new_id(braid__worker *w)
{
    if (!w)
        return atomic_fetch_add_explicit(&braid__rt.next_id, 1,
                                         memory_order_relaxed) + 1;
    if (w->id_next == w->id_end) {
        w->id_next = atomic_fetch_add_explicit(&braid__rt.next_id, ID_BLOCK,
                                               memory_order_relaxed) + 1;
        w->id_end = w->id_next + ID_BLOCK;
    }
    return w->id_next++;
}

/* Build a coroutine on the caller's worker w (NULL: a plain thread); not
   yet runnable.  NULL with *err set on failure. */
static braid__coro *coro_new(braid__worker *w, void *(*fn)(void *), void *arg,
                             const braid_attr *attr, unsigned flags, int *err)
{
    braid__stack_cache *stacks = w ? w->stacks : NULL;
    size_t size = braid__rt.stack_size;
    if (attr && attr->stack_size) size = braid__stack_round(attr->stack_size);
    *err = braid__stack_reserve(stacks, size);
    if (*err < 0) return NULL;
    braid__coro *c = braid__coro_alloc(w ? w->coros : NULL);
    if (!c) {
        braid__stack_unreserve(stacks, size);
        *err = -ENOMEM;
        return NULL;
    }
    /* Field by field (a memset of the object is a rep stos here): ctx is
       made at the first run, link set when queued. */
    c->stack.lo = NULL;
    c->result = NULL;
    c->saved_errno = 0;
    st_relaxed(&c->cancelled, 0);
    c->stack_size = size;
    c->fn = fn;
    c->arg = arg;
    c->flags = flags;
    st_relaxed(&c->refs, (flags & CORO_DETACHED) ? 1 : 2);
    c->id = new_id(w);
    c->name = attr ? attr->name : NULL;
    c->lk = (braid__spin)BRAID__SPIN_INIT;
    st_relaxed(&c->done, false);
    st_relaxed(&c->waiter, NULL);
    c->joiner = NULL;
    c->since = 0;
    c->ticks = 0;
    c->nocancel = 0;
    c->worker = -1;
    st_relaxed(&c->state, CORO_NEW);
    if (w) st_relaxed(&w->spawned, ld_relaxed(&w->spawned) + 1);
    else add_relaxed(&braid__rt.foreign_spawned, 1);
    return c;
}

braid__coro *braid__coro_spawn(void *(*fn)(void *), void *arg,
                               const braid_attr *attr, unsigned flags, int *err);
braid__coro *braid__coro_spawn(void *(*fn)(void *), void *arg,
                               const braid_attr *attr, unsigned flags, int *err)
{
    braid__worker *w = braid__worker_self();
    braid__coro *c = coro_new(w, fn, arg, attr, flags, err);
    if (c) braid__sched_push(w, c);
    return c;
}

static int check_attr(const braid_attr *a)
{
    if (!a || a->stack_size == 0) return 0;
    if (a->stack_size < BRAID_STACK_MIN || a->stack_size > BRAID_STACK_MAX)
        return -EINVAL;
    return 0;
}

BRAID_EXPORT int braid_go(void (*fn)(void *), void *arg)
{
    if (!fn) return -EINVAL;
    if (!braid__running_inline()) return -EPERM;
    int err;
    braid__coro_spawn((void *(*)(void *))(void (*)(void))fn, arg, NULL,
                      CORO_DETACHED | CORO_GO, &err);
    return err;
}

BRAID_EXPORT int braid_spawn(braid_task **t, void *(*fn)(void *), void *arg,
                             const braid_attr *attr)
{
    if (!t || !fn || check_attr(attr)) return -EINVAL;
    if (!braid__running_inline()) return -EPERM;
    int err;
    braid__coro *c = braid__coro_spawn(fn, arg, attr, 0, &err);
    if (c) *t = (braid_task *)c;
    return err;
}

/* ---- run and exit ---------------------------------------------------------- */

void braid__coro_finish(braid__coro *c,
                        void (*after)(braid__worker *, void *));
void braid__coro_run(braid__coro *c);
void braid__main_done(braid__coro *c);

static void unref_on(braid__coro_cache *cache, braid__coro *c)
{
    if (atomic_fetch_sub_explicit(&c->refs, 1, memory_order_acq_rel) == 1)
        braid__coro_free(cache, c);
}

void braid__coro_unref(braid__coro *c)
{
    unref_on(my_cache(), c);
}

/* Deferred action of an exit: c is off its stack now.  A coroutine
   detached from its spawn holds the only reference (its handle may only
   cancel itself, see braid_self), so it is recycled without an atomic. */
static void exited(braid__worker *w, void *arg)
{
    braid__coro *c = arg;
#ifdef BRAID_TSAN
    __tsan_destroy_fiber(c->tsan_fiber);
#endif
    braid__stack_put(w->stacks, &c->stack);
    c->stack.lo = NULL;
    if (unlikely(c->flags & CORO_MAIN)) braid__main_done(c);
    if (c->flags & CORO_DETACHED)
        braid__coro_free(w->coros, c);
    else
        unref_on(w->coros, c);
}

/* Guarded stacks fault on overflow; unguarded ones are checked here (the
   red zone's top word is a cold line: skip it where the guard exists). */
static void check_redzone(braid__coro *c)
{
    if (c->stack.guarded) return;
    const uint64_t *z = (const uint64_t *)((char *)c->stack.lo + 4096) - 8;
    for (int i = 0; i < 8; i++)
        if (z[i])
            braid__panic("coroutine %llu (%s) overflowed its %zu-byte stack",
                         (unsigned long long)c->id,
                         c->name ? c->name : "unnamed", c->stack.size);
}

void braid__coro_run(braid__coro *c)
{
    if (c->flags & CORO_GO)
        ((void (*)(void *))(void (*)(void))c->fn)(c->arg);
    else
        c->result = c->fn(c->arg);
    check_redzone(c);
    st_relaxed(&c->state, CORO_DONE);
    /* Counted before a joiner can wake: once braid_join returned, the
       child is not in braid_stats.live any more, whichever worker it ran
       on (its exit finishes on that worker after the switch). */
    braid__worker *w = braid__worker_self();
    st_relaxed(&w->completed, ld_relaxed(&w->completed) + 1);
    if (c->flags & CORO_DETACHED)       /* from its spawn: no joiner, ever */
        braid__coro_finish(c, exited);
    /* Claim under lk: a joiner that timed out takes lk before it returns,
       so its waiter cannot vanish under our claim, and a solo joiner is
       claimed with plain moves (braid__waiter_claim_locked). */
    braid__spin_lock(&c->lk);
    st_release(&c->done, true);
    braid__waiter *j = c->joiner;
    bool won = j && braid__waiter_claim_locked(j, 0);
    braid__spin_unlock(&c->lk);
    if (won) braid__waiter_wake(j, NULL);
    braid__coro_finish(c, exited);
}

/* ---- join, detach, cancel ---------------------------------------------------- */

/* Wait until c is done.  0, or -EBUSY / -EAGAIN / a wait's error.
   Without a deadline the waiter is solo and parks lock-ordered, as a
   channel's does (chan.c, block): it keeps c->lk until it is off its
   stack, so the exit that claims it under lk does so with plain moves
   and the park takes no locked instruction either.  After a successful
   wait the exit has set done and will not read joiner again: no lock. */
static int join_wait(braid__coro *c, braid__coro *me, int64_t deadline)
{
    braid__waiter w;
    braid__waiter_init_as(&w, me, "join", c);
    braid__spin_lock(&c->lk);
    int r = ld_relaxed(&c->done) ? 1
          : c->joiner ? -EBUSY
          : deadline != BRAID_FOREVER && deadline <= braid_now() ? -EAGAIN
          : 0;
    if (r) {
        braid__spin_unlock(&c->lk);
        return r < 0 ? r : 0;
    }
    w.solo = deadline == BRAID_FOREVER;
    c->joiner = &w;
    r = braid__waiter_wait_locked(&w, &c->lk, deadline);
    if (r >= 0)
        return 0;
    braid__spin_lock(&c->lk);   /* timed out or cancelled */
    c->joiner = NULL;
    bool done = ld_relaxed(&c->done);
    braid__spin_unlock(&c->lk);
    return done ? 0 : r;
}

BRAID_EXPORT int braid_join(braid_task *t, void **result, int64_t deadline)
{
    braid__coro *c = (braid__coro *)t;
    braid__coro *me = braid__current();
    if (!c || c == me || (c->flags & CORO_DETACHED))
        return -EINVAL;
    if (braid__forked_child()) return -EPERM;
    /* A child that is done already (run by a thief, say) costs no lock:
       done is stored after result, with release. */
    if (!ld_acquire(&c->done)) {
        int r = join_wait(c, me, deadline);
        if (r) return r;
    }
    if (result) *result = c->result;
    braid__coro_unref(c);
    return 0;
}

BRAID_EXPORT int braid_detach(braid_task *t)
{
    braid__coro *c = (braid__coro *)t;
    if (!c || (c->flags & CORO_DETACHED)) return -EINVAL;
    BRAID__FORK_GUARD();
    braid__coro_unref(c);
    return 0;
}

BRAID_EXPORT int braid_cancel(braid_task *t)
{
    braid__coro *c = (braid__coro *)t;
    if (!c) return -EINVAL;
    BRAID__FORK_GUARD();
    atomic_store(&c->cancelled, 1);
    braid__spin_lock(&c->lk);
    if (braid__asym)            /* pairs with the light side in waiter.c */
        braid__asym_heavy();
    braid__waiter *w = ld_relaxed(&c->waiter);
    /* Wake under lk: a solo waiter still parking moves its park word with
       plain moves only while lk is free (waiter.c, parked_solo). */
    if (w && braid__waiter_claim_cancel(w))
        braid__waiter_wake(w, NULL);
    braid__spin_unlock(&c->lk);
    return 0;
}

BRAID_EXPORT int braid_cancelled(void)
{
    braid__coro *c = braid__current();
    return c ? atomic_load_explicit(&c->cancelled, memory_order_relaxed) : 0;
}

BRAID_EXPORT braid_task *braid_self(void)
{
    return (braid_task *)braid__current();
}

BRAID_EXPORT int braid_attr_init(braid_attr *a)
{
    if (!a) return -EINVAL;
    memset(a, 0, sizeof *a);
    return 0;
}

BRAID_EXPORT int braid_attr_set_stack_size(braid_attr *a, size_t size)
{
    if (!a || (size && (size < BRAID_STACK_MIN || size > BRAID_STACK_MAX)))
        return -EINVAL;
    a->stack_size = size;
    return 0;
}

BRAID_EXPORT int braid_attr_set_name(braid_attr *a, const char *name)
{
    if (!a) return -EINVAL;
    a->name = name;
    return 0;
}
