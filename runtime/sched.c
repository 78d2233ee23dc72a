/*
 * sched.c - workers, run queues, stealing, parking, the switch.
 *
 * Each worker owns a bounded ring (ck_ring, single producer = the owner,
 * many consumers = the owner and thieves) and a one-slot "next" for the
 * coroutine it readied last, plus a spawn deque (deque.h) for coroutines
 * it spawned that never ran: the owner takes the newest, thieves the
 * oldest, so fork-join trees are walked depth first.  A global FIFO behind a spinlock takes spawns
 * from plain threads, ring overflow (half the ring moves at once) and
 * batches from the I/O thread; a worker looks at it every GLOBAL_EVERY
 * ticks and whenever its own queues are empty.  Idle workers steal half of
 * a random victim's ring, spin a few rounds, then park on a futex.  The
 * spinning/parking protocol and the deadlock rule are in runtime.h.
 *
 * Switching: a coroutine that stops running (park, yield, exit) picks its
 * successor from its worker's own queues and switches to it directly, or
 * to the worker's idle context (the thread's own stack) which steals or
 * sleeps.  What must happen only once the coroutine is off its stack (make
 * it runnable again, publish that it is parked, free its stack) is the
 * deferred action w->after, run by whichever context runs next on that
 * worker, before anything else.
 *
 * Ordering: a coroutine handed to another worker goes through the ring
 * (ck_ring publishes the slot with a release store, a consumer's CAS
 * acquires; the owner's own take: "owner and thieves" below), the global
 * queue lock, or the next slot (ditto).
 * Every switch on a worker is bracketed by TSan release/acquire on the
 * worker, and every queue hand-off by release/acquire on the coroutine.
 */
#include "runtime.h"
#include "timer.h"
#include "waiter.h"
#include "../netio/poller.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#ifdef BRAID_ASAN
#include <sanitizer/asan_interface.h>
#endif
#ifdef BRAID_TSAN
#include <sanitizer/tsan_interface.h>
#endif

struct braid__rt braid__rt;

static __thread braid__worker *tls_worker
    __attribute__((tls_model("initial-exec")));

/* TSan sees each fiber as its own thread: fibers of one worker thread
   share its TLS, so every read of it is ordered after the thread's writes
   through acquire on the TLS variable (released at each switch). */
__attribute__((noinline)) braid__worker *braid__worker_self(void)
{
    braid__tsan_acquire(&tls_worker);
    braid__worker *w = tls_worker;
    __asm__ __volatile__("" ::: "memory");
    return w;
}

__attribute__((noinline)) braid__coro *braid__current(void)
{
    braid__tsan_acquire(&tls_worker);
    braid__worker *w = unlikely(ld_relaxed(&braid__forked)) ? NULL : tls_worker;
    __asm__ __volatile__("" ::: "memory");
    return w ? w->cur : NULL;
}

/* Counters written only by their owner: a plain load and store, no lock
   prefix; readers sum them with relaxed loads. */
static inline void bump(_Atomic uint64_t *p, uint64_t n)
{
    st_relaxed(p, ld_relaxed(p) + n);
}

static uint32_t rnd(braid__worker *w)
{
    uint64_t x = w->rng;     /* xorshift64* */
    x ^= x >> 12; x ^= x << 25; x ^= x >> 27;
    w->rng = x;
    return (uint32_t)((x * 0x2545F4914F6CDD1DULL) >> 32);
}

/* ---- global queue ------------------------------------------------------ */

/* Coroutines woken by the I/O thread (timers, readiness) go ahead of a
   backlog of spawned ones, as Go puts them in runnext: the queue keeps a
   FIFO prefix of woken coroutines (ending at gq_prio), and a new batch is
   appended to that prefix, so wake-ups stay in deadline order. */
static void gq_push_front(braid__coro *head, braid__coro *tail, size_t n)
{
    braid__spin_lock(&braid__rt.gq_lock);
    braid__coro **at = braid__rt.gq_prio ? &braid__rt.gq_prio->link
                                         : &braid__rt.gq_head;
    tail->link = *at;
    *at = head;
    if (!tail->link) braid__rt.gq_tail = tail;
    braid__rt.gq_prio = tail;
    braid__rt.gq_prio_n += n;
    st_relaxed(&braid__rt.gq_woken, braid__rt.gq_prio_n);
    atomic_store(&braid__rt.gq_n, ld_relaxed(&braid__rt.gq_n) + n);
    braid__spin_unlock(&braid__rt.gq_lock);
    add_relaxed(&braid__rt.global_pushes, n);
}

static void gq_push_list(braid__coro *head, braid__coro *tail, size_t n)
{
    braid__spin_lock(&braid__rt.gq_lock);
    if (braid__rt.gq_tail) braid__rt.gq_tail->link = head;
    else braid__rt.gq_head = head;
    braid__rt.gq_tail = tail;
    tail->link = NULL;
    atomic_store(&braid__rt.gq_n, ld_relaxed(&braid__rt.gq_n) + n);
    braid__spin_unlock(&braid__rt.gq_lock);
    add_relaxed(&braid__rt.global_pushes, n);
}

/* Take up to max coroutines from the global queue; the first is returned,
   the rest go to w's ring.  Owner only. */
static braid__coro *gq_take(braid__worker *w, size_t max)
{
    if (ld_relaxed(&braid__rt.gq_n) == 0) return NULL;
    braid__spin_lock(&braid__rt.gq_lock);
    size_t n = ld_relaxed(&braid__rt.gq_n);
    size_t room = RUNQ_SIZE - 1 - ck_ring_size(&w->ring);
    size_t k = n / braid__rt.nworkers + 1;
    if (k > max) k = max;
    if (k > room + 1) k = room + 1;
    if (k > n) k = n;
    if (k == 0) {
        braid__spin_unlock(&braid__rt.gq_lock);
        return NULL;
    }
    braid__coro *first = braid__rt.gq_head, *last = first;
    for (size_t i = 1; i < k; i++) last = last->link;
    braid__rt.gq_head = last->link;
    if (!braid__rt.gq_head) braid__rt.gq_tail = NULL;
    if (braid__rt.gq_prio_n <= k) {
        braid__rt.gq_prio = NULL;
        braid__rt.gq_prio_n = 0;
    } else {
        braid__rt.gq_prio_n -= k;
    }
    st_relaxed(&braid__rt.gq_woken, braid__rt.gq_prio_n);
    atomic_store(&braid__rt.gq_n, n - k);
    braid__spin_unlock(&braid__rt.gq_lock);
    braid__coro *c = first->link;
    for (size_t i = 1; i < k; i++) {
        braid__tsan_acquire(c);     /* we read c->link: pass ownership on */
        braid__coro *nx = c->link;
        braid__tsan_release(c);
        ck_ring_enqueue_spmc(&w->ring, w->buf, c);  /* room was checked */
        c = nx;
    }
    braid__tsan_acquire(first);
    return first;
}

/* ---- local queues -------------------------------------------------------- */

/* Push c to w's ring; on overflow move half of the ring and c to the
   global queue.  Owner only. */
static void runq_push_owner(braid__worker *w, braid__coro *c)
{
    braid__tsan_release(c);
    if (likely(ck_ring_enqueue_spmc(&w->ring, w->buf, c)))
        return;
    braid__coro *head = c, *tail = c;
    size_t n = 1;
    for (unsigned i = 0; i < RUNQ_SIZE / 2; i++) {
        braid__coro *o;
        if (!ck_ring_dequeue_spmc(&w->ring, w->buf, &o)) break;
        tail->link = o;
        tail = o;
        n++;
    }
    gq_push_list(head, tail, n);
}

/* Queue c, which is runnable and not running, on w: one that never ran
   goes to the spawn deque (depth first, deque.h), any other to the ring.
   Owner only. */
static void local_push(braid__worker *w, braid__coro *c)
{
    if (!c->stack.lo) {
        braid__tsan_release(c);
        if (likely(braid__deq_push(&w->spawns, c))) return;
    }
    runq_push_owner(w, c);
}

static braid__coro *deq_take(braid__worker *w)
{
    braid__coro *c = braid__deq_take(&w->spawns);
    if (c) braid__tsan_acquire(c);
    return c;
}

static braid__coro *runq_pop_owner(braid__worker *w);

/* ---- owner and thieves ------------------------------------------------------
 *
 * The owner takes from its next slot at nearly every hand-off (twice per
 * message in a ping-pong) and from its ring at every other switch; a
 * locked instruction there, right after a context switch filled the store
 * buffer, was a third of a yield.  Thieves take from them only from a long
 * ring or from a victim that has run one coroutine for STILL_NS,
 * and the monitor from a stuck worker: rare, and each take moves many.  So
 * the cost goes to the rare side (asymmetric Dekker, as for cancellation
 * in waiter.c):
 *  - owner: busy = 1; compiler barrier; if steal_lock is clear, read and
 *    write next / the ring's c_head with plain moves; busy = 0 (release).
 *    If a thief holds steal_lock: exchange next, CAS c_head (ck_ring).
 *  - thief: steal_lock 0 -> 1 (one at a time); braid__asym_heavy; if busy
 *    is set, back off (come back later); else exchange next / CAS c_head
 *    (ck_ring); steal_lock = 0.
 * After the heavy fence every owner operation either finished before it
 * (the thief's acquire of busy == 0 sees its writes), is still inside
 * (busy reads 1 and the thief backs off), or starts after it and sees
 * steal_lock set (atomic against atomic).  The owner's enqueue needs
 * nothing of this: ck_ring's single producer never races its consumers.
 * The spawn deque keeps its own fences (deque.h): fork-join work is
 * stolen from it all the time, and an interrupt of its owner per steal
 * would cost more than the fence it saves.
 * Without membarrier (or under TSan) both sides use the atomics. */

static inline bool owner_enter(braid__worker *w)
{
    if (!braid__asym) return false;
    st_relaxed(&w->busy, 1);
    braid__asym_light();
    if (likely(!ld_acquire(&w->steal_lock))) return true;
    st_release(&w->busy, 0);
    return false;
}

static inline void owner_leave(braid__worker *w)
{
    st_release(&w->busy, 0);
}

/* false: another thief is at it, or the owner is inside right now. */
static bool thief_enter(braid__worker *v)
{
    if (!braid__asym) return true;
    if (ld_relaxed(&v->steal_lock) || atomic_exchange(&v->steal_lock, 1))
        return false;
    braid__asym_heavy();
    if (!ld_acquire(&v->busy)) return true;
    st_release(&v->steal_lock, 0);
    return false;
}

static void thief_leave(braid__worker *v)
{
    if (braid__asym) st_release(&v->steal_lock, 0);
}

/* Owner: put c (may be NULL) in the next slot; returns what was there. */
static inline braid__coro *next_swap(braid__worker *w, braid__coro *c)
{
    if (likely(owner_enter(w))) {
        braid__coro *old = ld_relaxed(&w->next);
        st_relaxed(&w->next, c);
        owner_leave(w);
        return old;
    }
    return atomic_exchange_explicit(&w->next, c, memory_order_acq_rel);
}

/* Thief, inside thief_enter: take v's next slot. */
static braid__coro *next_steal(braid__worker *v)
{
    if (!ld_relaxed(&v->next)) return NULL;
    return atomic_exchange_explicit(&v->next, NULL, memory_order_acq_rel);
}

/* Owner: the oldest coroutine of the ring, or NULL. */
static braid__coro *runq_pop_owner(braid__worker *w)
{
    braid__coro *c;
    if (likely(owner_enter(w))) {
        unsigned h = ck_pr_load_uint(&w->ring.c_head);
        c = NULL;
        if (h != ck_pr_load_uint(&w->ring.p_tail)) {   /* ours: no fence */
            c = w->buf[h & w->ring.mask].value;
            ck_pr_store_uint(&w->ring.c_head, h + 1);
        }
        owner_leave(w);
        if (c) braid__tsan_acquire(c);
        return c;
    }
    if (!ck_ring_dequeue_spmc(&w->ring, w->buf, &c)) return NULL;
    braid__tsan_acquire(c);
    return c;
}

/* ---- tiny spawns ------------------------------------------------------------
 *
 * Stealing a spawn costs both workers: the thief's CAS on the deque's top
 * and its reads of the coroutine, the victim's misses on the lines the
 * thief took (deque indices, objects and stacks that come back through
 * the pools).  For a coroutine that runs for a few hundred nanoseconds
 * that is more than the work moved: bench spawn (a loop spawning 1M
 * coroutines that add 1 to a counter) ran at 63 ns a spawn on one worker
 * and 200-300 on two.  So a thief judges each batch of spawns it steals:
 * from the steal to the moment it runs out of work again, at least
 * TINY_NS per coroutine, or its next steals leave the spawns of victims
 * that keep switching alone for a pause that doubles up to PAUSE_MAX_NS,
 * each steal after a pause being a new probe.  Rings, next slots, held
 * spawners and a victim that sits on one coroutine are not concerned; a
 * spawn tree (whose oldest spawns are its biggest pieces) never looks
 * tiny.  Owner-only fields of the thief: no ordering. */
static _Atomic uint64_t spawn_pauses;

uint64_t braid__spawn_pauses(void) { return ld_relaxed(&spawn_pauses); }

static bool spawns_paused(braid__worker *w)
{
    return w->spawn_pause_until && braid_now() < w->spawn_pause_until;
}

/* w ran out of work: judge the batch it stole last, if any. */
static void judge_probe(braid__worker *w)
{
    int64_t now = braid_now();
    if (now - w->probe_t0 < (int64_t)w->probe_k * TINY_NS) {
        int64_t p = w->spawn_pause_ns ? 2 * w->spawn_pause_ns : PAUSE_MIN_NS;
        w->spawn_pause_ns = p < PAUSE_MAX_NS ? p : PAUSE_MAX_NS;
        w->spawn_pause_until = now + w->spawn_pause_ns;
        add_relaxed(&spawn_pauses, 1);
    } else {
        w->spawn_pause_ns = 0;
        w->spawn_pause_until = 0;
    }
    w->probe_k = 0;
}

/* Move half of victim's ring into w's, or (spawns_ok) some of its oldest
   spawns; return one to run.  still: the victim has run one coroutine for
   STILL_NS, so its short ring and its next slot are fair game too. */
static braid__coro *runq_steal(braid__worker *w, braid__worker *v, bool still,
                               bool spawns_ok)
{
    unsigned n = ck_ring_size(&v->ring);
    braid__coro *first = NULL, *c;
    /* A short ring of a victim that keeps switching is left alone: its
       owner gets there in a moment, and taking one coroutine of a
       producer/consumer group only moves it, and the data it touches, to
       the other core at every hand-off (cap 0 4P4C on one channel:
       430,000 steals for 2M messages and 4x slower; now ~800).  A long
       ring, or one whose owner has sat on one coroutine for STILL_NS
       interval, is fair game. */
    unsigned k = n >= STEAL_SHORT || still ? n - n / 2 : 0;
    bool want_next = still && ld_relaxed(&v->next);
    bool in = (k || want_next) && thief_enter(v);
    if (!in) k = 0;
    for (unsigned i = 0; i < k; i++) {
        if (!ck_ring_trydequeue_spmc(&v->ring, v->buf, &c)) break;
        braid__tsan_acquire(c);
        if (!first) { first = c; continue; }
        braid__tsan_release(c);
        if (!ck_ring_enqueue_spmc(&w->ring, w->buf, c)) { /* cannot happen: */
            gq_push_list(c, c, 1);                      /* we were empty */
        }
    }
    if (!first && in && want_next && (c = next_steal(v))) {
        braid__tsan_acquire(c);
        first = c;
    }
    if (in) thief_leave(v);
    if (!first && spawns_ok) {  /* then the oldest of its spawns */
        int64_t m = braid__deq_size(&v->spawns), i;
        m -= m / 2;
        for (i = 0; i < m && i < RUNQ_SIZE / 4; i++) {
            if (!(c = braid__deq_steal(&v->spawns))) break;
            braid__tsan_acquire(c);
            if (!first) { first = c; continue; }
            local_push(w, c);
        }
        if (i >= PROBE_MIN) {
            w->probe_k = (uint32_t)i;
            w->probe_t0 = braid_now();
        }
    }
    if (first) bump(&w->steals, 1 + ck_ring_size(&w->ring) +
                                (uint64_t)braid__deq_size(&w->spawns));
    return first;
}

static braid__coro *pick_local_slow(braid__worker *w);

/* The next slot may run now: its streak is not spent (NEXT_STREAK runs in
   a row), or nothing else waits here. */
static inline bool next_may_run(braid__worker *w)
{
    return w->streak < NEXT_STREAK ||
           (ck_ring_size(&w->ring) == 0 && braid__deq_size(&w->spawns) == 0);
}

/* Take the next slot, seen full (streak counted), or NULL: a thief got
   there first. */
static inline braid__coro *take_next(braid__worker *w)
{
    braid__coro *c = next_swap(w, NULL);
    if (c) {
        w->streak++;
        braid__tsan_acquire(c);
    }
    return c;
}

/* Next coroutine to run from w's own queues, or NULL.  Owner only.  The
   common case of a hand-off inline: the next slot, with no held spawner,
   no global-queue turn due, and the streak not spent or nothing else
   here; everything else in pick_local_slow. */
static inline braid__coro *pick_local(braid__worker *w)
{
    braid__coro *c;
    unsigned t = w->tick + 1;
    if (likely(ld_relaxed(&w->next) && t % GLOBAL_EVERY != 0 &&
               !ld_relaxed(&w->held) && !ld_relaxed(&braid__rt.gq_woken)) &&
        next_may_run(w) && (c = take_next(w))) {
        w->tick = t;
        return c;
    }
    return pick_local_slow(w);
}

static __attribute__((noinline)) braid__coro *pick_local_slow(braid__worker *w)
{
    braid__coro *c;
    if (unlikely(ld_relaxed(&w->held) != NULL) &&
        braid__deq_size(&w->spawns) <= BRAID__DEQ_SIZE / 4 &&
        (c = atomic_exchange_explicit(&w->held, NULL, memory_order_acquire))) {
        while (c) {
            braid__tsan_acquire(c);
            braid__coro *nx = c->link;
            runq_push_owner(w, c);
            c = nx;
        }
    }
    /* The global queue every GLOBAL_EVERY ticks, and every other tick
       while it holds coroutines the I/O thread woke (timers, readiness):
       a burst of local work delays a deadline by a few picks, not by the
       length of the burst. */
    bool turn = ++w->tick % GLOBAL_EVERY == 0;
    if (turn) {                 /* deadlines the I/O thread is late with */
        braid__batch b = BRAID__BATCH_INIT;
        if (braid__timers_expire_late(&b))
            braid__ready_batch(&b);
    }
    if (unlikely(turn ||
                 (ld_relaxed(&braid__rt.gq_woken) && (w->tick & 1))) &&
        ld_relaxed(&braid__rt.gq_n) && (c = gq_take(w, 1)))
        goto ran_other;
    if (ld_relaxed(&w->next) && next_may_run(w) && (c = take_next(w)))
        return c;
    /* Spawns that never ran go first (depth first), except every fourth
       tick, when the ring does: a readied coroutine waits behind at most
       three spawns at a time, however fast they come. */
    if ((w->tick & 3) == 0) {
        if ((c = runq_pop_owner(w)) || (c = deq_take(w)))
            goto ran_other;
    } else if ((c = deq_take(w)) || (c = runq_pop_owner(w))) {
        goto ran_other;
    }
    if ((c = gq_take(w, RUNQ_SIZE / 2)))
        goto ran_other;
    if (ld_relaxed(&w->next) && (c = next_swap(w, NULL))) {
        braid__tsan_acquire(c);
        return c;
    }
    return NULL;
ran_other:
    w->streak = 0;
    return c;
}

/* ---- waking workers ------------------------------------------------------ */

static void idle_push(braid__worker *w);
static bool idle_remove(braid__worker *w);
static braid__worker *idle_pop(void);

static void wake_worker(braid__worker *w)
{
    st_release(&w->park, 1);
    braid__futex_wake(&w->park, 1);
}

/* Wake a parked worker to look for work, unless one is already spinning
   (it will find the work, and hands over when it does: see found()). */
static void wakep(void)
{
    atomic_thread_fence(memory_order_seq_cst);  /* pairs with park_worker */
    if (ld_relaxed(&braid__rt.nspinning) != 0 ||
        ld_relaxed(&braid__rt.npidle) == 0)
        return;
    unsigned zero = 0;
    if (!atomic_compare_exchange_strong(&braid__rt.nspinning, &zero, 1))
        return;
    braid__worker *w = idle_pop();
    if (!w) {
        atomic_fetch_sub(&braid__rt.nspinning, 1);
        return;
    }
    w->spinning = true;        /* read by w after it wakes (futex word) */
    wake_worker(w);
}

/* For work the caller pushed on its own queues.  With one worker the
   caller is the only one who could take it: no wakep.  Otherwise wakep
   only when the relaxed loads say no one spins and someone sleeps, as Go's
   wakep does, without the fence first: a spawning loop paid a fence per
   spawn (28% of the spawner's time in bench spawn on 2 workers).  The
   fence keeps a push from being missed by a worker going to sleep;
   without it, under TSO, a push still in our store buffer can be missed
   by a sleeper whose re-check ran first while our load saw it not yet
   idle.  That strands nothing: the work sits on our own queues, which we
   take from as soon as the running coroutine switches, and the next
   local push, or the monitor (every MONITOR_NS while a worker is busy
   and work waits: braid__sched_monitor), wakes the sleeper.  The
   parallelism lost is one push's worth; park.pml checks the protocol
   with these wakeps optional. */
static inline void wakep_local(void)
{
    if (braid__rt.nworkers > 1 &&
        ld_relaxed(&braid__rt.nspinning) == 0 &&
        ld_relaxed(&braid__rt.npidle) != 0)
        wakep();
}

static inline __attribute__((always_inline))
void ready_on(braid__worker *w, braid__coro *c)
{
    if (c->stack.lo) st_relaxed(&c->state, CORO_RUNNABLE);  /* else NEW */
    if (!w) {
        braid__tsan_release(c);
        gq_push_list(c, c, 1);
        wakep();
        return;
    }
    if (!w->cur) {              /* the idle context: it looks here next */
        local_push(w, c);
        return;
    }
    braid__tsan_release(c);
    if (unlikely(braid__rt.chaos) && rnd(w) % 4 == 0) {
        local_push(w, c);               /* chaos: bypass the next slot */
        wakep_local();
        return;
    }
    braid__coro *old = next_swap(w, c);
    if (!old) return;           /* runs as soon as we stop: no wake needed */
    braid__tsan_acquire(old);
    local_push(w, old);
    wakep_local();
}

void braid__ready(braid__coro *c)
{
    ready_on(braid__worker_self(), c);
}

/* A new coroutine goes where braid__ready puts it.  Back-pressure: when
   the spawner's run queue is three-quarters full it yields, so a spawning
   loop runs its own children (objects and stacks stay hot on this worker,
   nothing spills to the global queue) while idle workers steal the rest. */
/* Held spawners form a list through link, pushed by the owner and taken
   whole (xchg) by the owner or the monitor. */
static void hold(braid__worker *w, void *arg)
{
    braid__coro *c = arg;
    st_relaxed(&c->state, CORO_RUNNABLE);
    braid__coro *h = ld_relaxed(&w->held);
    do {
        c->link = h;
        braid__tsan_release(c);
    } while (!atomic_compare_exchange_weak_explicit(&w->held, &h, c,
                                                    memory_order_release,
                                                    memory_order_relaxed));
}

void braid__sched_push(braid__worker *w, braid__coro *c)
{
    ready_on(w, c);
    if (!w || !w->cur) return;
    if (braid__deq_size(&w->spawns) >= BRAID__DEQ_SIZE * 3 / 4) {
        /* Sit out until the deque is down to a quarter (pick_local lets
           the spawner go): requeued at once, it would come back after
           three spawns (the ring's turn) and yield again. */
        braid__park(w->cur, hold, w->cur);
        return;
    }
    if (ck_ring_size(&w->ring) >= RUNQ_SIZE * 3 / 4)
        braid_yield();
}

void braid__batch_add(braid__batch *b, braid__coro *c)
{
    c->link = NULL;
    if (b->tail) b->tail->link = c; else b->head = c;
    b->tail = c;
    b->n++;
}

void braid__ready_batch(braid__batch *b)
{
    if (!b->n) return;
    for (braid__coro *c = b->head; c; c = c->link) {
        st_relaxed(&c->state, CORO_RUNNABLE);
        braid__tsan_release(c);
    }
    gq_push_front(b->head, b->tail, b->n);
    size_t n = b->n;
    b->head = b->tail = NULL;
    b->n = 0;
    /* One spinner per batch is Go's rule; it hands over to the next when it
       finds work, so a big batch spreads without a thundering herd. */
    (void)n;
    wakep();
}

/* ---- the switch ----------------------------------------------------------- */

static void run_after(braid__worker *w)
{
    void (*fn)(braid__worker *, void *) = w->after;
    if (fn) {
        w->after = NULL;
        fn(w, w->after_arg);
    }
}

/* The worker that runs c, the running coroutine (or the one being
   resumed): switch_ctx wrote it just before the switch, so no accessor
   call.  TSan orders fibers of one thread only through the annotations on
   the TLS accessor: there, the accessor. */
static inline braid__worker *worker_of(braid__coro *c)
{
#ifdef BRAID_TSAN
    (void)c;
    return braid__worker_self();
#else
    return c->wk;
#endif
}

/* Annotations and the register switch.  fromc/toc NULL mean the idle
   context.  dying: fromc never runs again. */
static void switch_ctx(braid__worker *w, braid__coro *fromc, braid__coro *toc,
                       bool dying)
{
    braid__ctx *from = fromc ? &fromc->ctx : &w->idle_ctx;
    braid__ctx *to = toc ? &toc->ctx : &w->idle_ctx;
    if (toc) toc->wk = w;
    bump(&w->switches, 1);
#ifdef BRAID_ASAN
    void **fake = dying ? NULL : fromc ? &fromc->asan_fake : &w->idle_fake;
    __sanitizer_start_switch_fiber(fake, toc ? toc->stack.lo : w->idle_bottom,
                                   toc ? toc->stack.size : w->idle_size);
#endif
#ifdef BRAID_TSAN
    void *fiber = toc ? toc->tsan_fiber : w->idle_fiber;  /* read first */
    __tsan_release(w);
    __tsan_release(&tls_worker);
    __tsan_switch_to_fiber(fiber, __tsan_switch_to_fiber_no_sync);
#endif
    (void)dying;
    braid__ctx_switch(from, to);
}

/* First thing a context does after being switched to.  This and
   switch_away are inlined into their few callers: a frame less to build
   and unwind on each side of every switch (bench yield 14.2 -> 13.0 ns,
   skynet -8%). */
static inline __attribute__((always_inline))
braid__worker *resumed(braid__coro *self)
{
    braid__worker *w = self ? worker_of(self) : braid__worker_self();
#ifdef BRAID_ASAN
    __sanitizer_finish_switch_fiber(self ? self->asan_fake : w->idle_fake,
                                    NULL, NULL);
#endif
#ifdef BRAID_TSAN
    __tsan_acquire(w);
#endif
    if (self) {
        *w->errno_ptr = self->saved_errno;  /* this thread's errno now */
        __atomic_store_n(&self->worker, (int16_t)w->id, __ATOMIC_RELAXED);
    }
    run_after(w);
    return w;
}

static void check_stack(braid__coro *c)
{
    char here;
    if (unlikely((char *)&here < (char *)c->stack.lo + 4096))
        braid__panic("coroutine %llu (%s) overflowed its %zu-byte stack",
                     (unsigned long long)c->id, c->name ? c->name : "unnamed",
                     c->stack.size);
}

static void coro_entry(void *arg);

/* Give c its stack and initial frame before its first run. */
void braid__coro_start(braid__worker *w, braid__coro *c)
{
    braid__stack_get(w->stacks, c->stack_size, &c->stack);
#ifdef BRAID_ASAN
    /* A recycled stack keeps the poison of frames that never returned. */
    __asan_unpoison_memory_region(c->stack.lo, c->stack.size);
#endif
    braid__ctx_make(&c->ctx, c->stack.lo, c->stack.size, coro_entry, c);
#ifdef BRAID_TSAN
    c->tsan_fiber = __tsan_create_fiber(0);
#endif
}

/* Switch from the running coroutine me to whatever w runs next. */
static inline __attribute__((always_inline))
void switch_away(braid__worker *w, braid__coro *me, bool dying)
{
    check_stack(me);
    me->saved_errno = *w->errno_ptr;
    braid__coro *to = pick_local(w);
    if (to && !to->stack.lo)
        braid__coro_start(w, to);
    __atomic_store_n(&w->cur, to, __ATOMIC_RELAXED);   /* braid_dump reads it */
    if (to) st_relaxed(&to->state, CORO_RUNNING);
    switch_ctx(w, me, to, dying);
}

void braid__park(braid__coro *me, void (*after)(braid__worker *, void *),
                 void *arg)
{
    braid__worker *w = worker_of(me);
    w->after = after;
    w->after_arg = arg;
    switch_away(w, me, false);
    resumed(me);
}

static void requeue(braid__worker *w, void *arg)
{
    braid__coro *c = arg;
    st_relaxed(&c->state, CORO_RUNNABLE);
    runq_push_owner(w, c);
}

void braid_yield(void)
{
    braid__worker *w = braid__worker_self();
    braid__coro *me = w ? w->cur : NULL;
    if (!me || unlikely(ld_relaxed(&braid__forked))) {  /* a forked child: no workers */
        sched_yield();
        return;
    }
    if (!ld_relaxed(&w->next) && ck_ring_size(&w->ring) == 0 &&
        braid__deq_size(&w->spawns) == 0 && ld_relaxed(&braid__rt.gq_n) == 0)
        return;                 /* nothing else to run here */
    /* Let the ring go first, and move the next slot behind it too: two
       coroutines yielding in turn must not starve one readied meanwhile. */
    braid__coro *nx = ld_relaxed(&w->next) ? next_swap(w, NULL) : NULL;
    if (nx) {
        braid__tsan_acquire(nx);
        local_push(w, nx);
    }
    w->streak = NEXT_STREAK;
    w->after = requeue;         /* braid__park, with w at hand */
    w->after_arg = me;
    switch_away(w, me, false);
    resumed(me);
}

/* ---- coroutine entry and exit ---------------------------------------------- */

void braid__coro_run(braid__coro *c);   /* coro.c: runs fn, then exits */

static void coro_entry(void *arg)
{
    braid__coro *c = arg;
    resumed(c);
    braid__coro_run(c);
    braid__panic("coroutine %llu returned into its entry",
                 (unsigned long long)c->id);
}

void braid__coro_finish(braid__coro *c,
                        void (*after)(braid__worker *, void *));

/* Leave for good: after(w, c) runs once c is off its stack. */
void braid__coro_finish(braid__coro *c,
                        void (*after)(braid__worker *, void *))
{
    braid__worker *w = braid__worker_self();
    w->after = after;
    w->after_arg = c;
    switch_away(w, c, true);
    braid__panic("dead coroutine %llu resumed", (unsigned long long)c->id);
}

/* ---- idle workers ----------------------------------------------------------- */

static bool any_work(void)
{
    if (ld_relaxed(&braid__rt.gq_n)) return true;
    for (unsigned i = 0; i < braid__rt.nworkers; i++) {
        braid__worker *v = braid__rt.workers[i];
        if (ck_ring_size(&v->ring) || ld_relaxed(&v->next) ||
            braid__deq_size(&v->spawns) || ld_relaxed(&v->held))
            return true;
    }
    return false;
}

static void deadlock_check_locked(void);

static void idle_push(braid__worker *w)
{
    braid__spin_lock(&braid__rt.idle_lock);
    w->idle_next = braid__rt.idle_head;
    braid__rt.idle_head = w;
    w->idle = true;
    atomic_fetch_add(&braid__rt.npidle, 1);
    if (ld_relaxed(&braid__rt.npidle) == braid__rt.nworkers)
        deadlock_check_locked();
    braid__spin_unlock(&braid__rt.idle_lock);
}

static bool idle_remove(braid__worker *w)
{
    bool found = false;
    braid__spin_lock(&braid__rt.idle_lock);
    if (w->idle) {
        braid__worker **pp = &braid__rt.idle_head;
        while (*pp != w) pp = &(*pp)->idle_next;
        *pp = w->idle_next;
        w->idle = false;
        atomic_fetch_sub(&braid__rt.npidle, 1);
        found = true;
    }
    braid__spin_unlock(&braid__rt.idle_lock);
    return found;
}

static braid__worker *idle_pop(void)
{
    braid__spin_lock(&braid__rt.idle_lock);
    braid__worker *w = braid__rt.idle_head;
    if (w) {
        braid__rt.idle_head = w->idle_next;
        w->idle = false;
        atomic_fetch_sub(&braid__rt.npidle, 1);
    }
    braid__spin_unlock(&braid__rt.idle_lock);
    return w;
}

void braid__stat_poll(void) { add_relaxed(&braid__rt.polls, 1); }

bool braid__sched_all_idle(void)
{
    return ld_relaxed(&braid__rt.npidle) >= braid__rt.nworkers;
}

uint64_t braid__chaos;
_Atomic int64_t braid__coarse_clock;


void braid__chaos_yield(void)
{
    braid__worker *w = braid__worker_self();
    if (w && w->cur && rnd(w) % 8 == 0) braid_yield();
}

bool braid__chaos_coin(void)
{
    braid__worker *w = braid__worker_self();
    return w && (rnd(w) & 1);
}

int64_t braid__chaos_jitter(void)
{
    if (likely(!braid__rt.chaos)) return 0;
    braid__worker *w = braid__worker_self();
    return w ? rnd(w) % 1000000 : 0;
}

void braid__source_add(void) { atomic_fetch_add(&braid__rt.sources, 1); }
void braid__source_del(void) { atomic_fetch_sub(&braid__rt.sources, 1); }

/* Every worker is idle (idle_lock held).  Sources first, then queues. */
static void deadlock_check_locked(void)
{
    if (braid__rt.no_deadlock_check || ld_acquire(&braid__rt.stopping))
        return;
    unsigned moves = atomic_load(&braid__rt.moves);
    if (moves & 1) return;              /* a batch in flight, see runtime.h */
    atomic_thread_fence(memory_order_seq_cst);
    if (atomic_load(&braid__rt.sources) != 0 || braid__timers_armed() != 0)
        return;
    atomic_thread_fence(memory_order_seq_cst);
    if (any_work() || atomic_load(&braid__rt.moves) != moves) return;
    fprintf(stderr, "braid: deadlock: every coroutine is blocked and nothing "
                    "can wake one\n");
    braid_dump(stderr);
    atomic_store(&braid__rt.result, -EDEADLK);
    atomic_store(&braid__rt.stopping, 1);
    atomic_store(&braid__rt.done, 1);
    braid__futex_wake(&braid__rt.done, 1);
}

/* Stop spinning; if w was the last spinner and parked workers remain, wake
   one so that work that arrived meanwhile is not left waiting (Go's
   resetspinning). */
static void stop_spinning(braid__worker *w)
{
    if (!w->spinning) return;
    w->spinning = false;
    if (atomic_fetch_sub(&braid__rt.nspinning, 1) == 1)
        wakep();
}

static braid__coro *steal_round(braid__worker *w, bool stuck_ok)
{
    int64_t now = 0;
    bool paused = spawns_paused(w);
    unsigned n = braid__rt.nworkers;
    unsigned start = rnd(w) % n;   /* random victim (chaos or not) */
    for (unsigned i = 0; i < n; i++) {
        braid__worker *v = braid__rt.workers[(start + i) % n];
        if (v == w) continue;
        /* still: v has run one coroutine for STILL_NS at least.  The
           clock is read only for a victim that has not switched and has
           something a still victim gives up; seen_since 0 means "switched
           since the last look", and the timing starts at the next. */
        bool still = false;
        uint64_t sw = ld_relaxed(&v->switches);
        if (sw != ld_relaxed(&v->seen_switches)) {
            st_relaxed(&v->seen_switches, sw);
            st_relaxed(&v->seen_since, 0);
        } else if (stuck_ok &&
                   (ld_relaxed(&v->next) || ck_ring_size(&v->ring) ||
                    (paused && braid__deq_size(&v->spawns)))) {
            if (!now) now = braid_now();
            int64_t since = ld_relaxed(&v->seen_since);
            if (!since) st_relaxed(&v->seen_since, now);
            else still = now - since >= STILL_NS;
        }
        /* A paused thief still takes the spawns of a still victim. */
        braid__coro *c = runq_steal(w, v, still, !paused || still);
        if (c) return c;
    }
    return gq_take(w, RUNQ_SIZE / 2);
}

#define MONITOR_NS 5000000   /* the I/O thread looks at busy workers */

static _Atomic uint64_t nap_sleeps;    /* naps that slept on a futex */

uint64_t braid__nap_sleeps(void) { return ld_relaxed(&nap_sleeps); }

/* Coroutines whose I/O is ready, completed by w itself: the first to run
   now, the rest to w's ring (another worker is woken to share them). */
static braid__coro *poll_io(braid__worker *w, int64_t wait_ns)
{
    braid__batch b = BRAID__BATCH_INIT;
    int n = braid__poller_poll(&b, wait_ns);
    if (n == -ENOSYS) {         /* cannot wait there: just sleep */
        add_relaxed(&nap_sleeps, 1);
        _Atomic uint32_t word = 0;
        braid__futex_wait(&word, 0, braid_now() + wait_ns);
        return NULL;
    }
    if (n <= 0 || !b.n)
        return NULL;
    braid__coro *first = b.head;
    for (braid__coro *c = first->link, *nx; c; c = nx) {
        nx = c->link;
        st_relaxed(&c->state, CORO_RUNNABLE);
        runq_push_owner(w, c);
    }
    st_relaxed(&first->state, CORO_RUNNABLE);
    if (b.n > 1)
        wakep_local();
    return first;
}

static void park_worker(braid__worker *w)
{
    bump(&w->parks, 1);
    while (!atomic_exchange_explicit(&w->park, 0, memory_order_acquire)) {
        if (ld_acquire(&braid__rt.stopping)) return;
        braid__futex_wait(&w->park, 0, -1);
    }
    /* Busy again: make sure the I/O thread's monitor is watching (it
       sleeps indefinitely while every worker is idle). */
    braid__poller_kick(braid_now() + MONITOR_NS);
}

/* Work that a steal round would take now: the global queue, spawns, held
   spawners, a long ring, or a short one whose owner has not switched since
   our last look (it may be stuck: the still rule takes it after STILL_NS).
   What is left - the short ring or next slot of an owner that keeps
   switching - its owner runs in a moment. */
static bool work_now(braid__worker *w)
{
    if (ld_relaxed(&braid__rt.gq_n)) return true;
    bool paused = spawns_paused(w);     /* tiny spawns: not ours for now */
    for (unsigned i = 0; i < braid__rt.nworkers; i++) {
        braid__worker *v = braid__rt.workers[i];
        if (v == w) continue;
        if (((braid__deq_size(&v->spawns) || ld_relaxed(&v->held)) &&
             !paused) || ck_ring_size(&v->ring) >= STEAL_SHORT)
            return true;
        if ((ck_ring_size(&v->ring) || ld_relaxed(&v->next)) &&
            ld_relaxed(&v->switches) == ld_relaxed(&v->seen_switches))
            return true;
    }
    return false;
}

/* Only work that its busy owner will run is about: look again in a while
   instead of at once.  A thief polling at full speed reads the owner's
   hottest lines (switch counter, next slot, ring indices) every
   microsecond, and every such read costs the owner a cache miss on its
   next store: cap 0 4P4C ran at half the speed of one worker.  The nap is
   a wait on the sockets, so a request that arrives meanwhile is served at
   once; what it readies runs first. */
static braid__coro *nap(braid__worker *w)
{
    return poll_io(w, NAP_NS);
}

/* Find a coroutine for w, sleeping if there is none.  NULL: stop. */
static braid__coro *find_runnable(braid__worker *w)
{
    for (;;) {
        if (ld_acquire(&braid__rt.stopping)) return NULL;
        braid__coro *c = pick_local(w);
        if (c) {
            stop_spinning(w);   /* woken as a spinner: hand the role on */
            return c;
        }
        if (w->probe_k) judge_probe(w);
        unsigned busy = braid__rt.nworkers - ld_relaxed(&braid__rt.npidle);
        if (!w->spinning && 2 * ld_relaxed(&braid__rt.nspinning) < busy) {
            w->spinning = true;
            atomic_fetch_add(&braid__rt.nspinning, 1);
        }
        for (int round = 0; round < 4 && !c; round++) {
            c = steal_round(w, round == 3);
            if (!c && round < 3)
                for (int i = 0; i < 64; i++) braid__cpu_relax();
        }
        if (!c)
            c = poll_io(w, 0);
        if (c) {
            stop_spinning(w);
            return c;
        }
        /* Stop spinning before publishing ourselves idle: once we are on
           the idle list a waker may set w->spinning for us (and count it). */
        if (w->spinning) {
            w->spinning = false;
            atomic_fetch_sub(&braid__rt.nspinning, 1);
        }
        idle_push(w);
        atomic_thread_fence(memory_order_seq_cst);  /* pairs with wakep */
        if (any_work() && idle_remove(w)) {
            if (!work_now(w) && (c = nap(w)))
                return c;
            continue;
        }
        if (braid__sched_all_idle())
            braid__poller_idle();   /* the sockets are the I/O thread's now */
        park_worker(w);
    }
}

static void *worker_main(void *arg)
{
    braid__worker *w = arg;
    tls_worker = w;
    w->errno_ptr = &errno;
    char name[16];
    snprintf(name, sizeof name, "braid-w%u", w->id);
    pthread_setname_np(pthread_self(), name);   /* for top -H, perf, gdb */
    braid__tsan_release(&tls_worker);
    stack_t ss = { .ss_sp = w->altstack, .ss_size = SIGSTKSZ * 4 };
    sigaltstack(&ss, NULL);
#ifdef BRAID_ASAN
    pthread_attr_t a;
    if (pthread_getattr_np(pthread_self(), &a) == 0) {
        void *lo; size_t sz;
        pthread_attr_getstack(&a, &lo, &sz);
        w->idle_bottom = lo;
        w->idle_size = sz;
        pthread_attr_destroy(&a);
    }
#endif
#ifdef BRAID_TSAN
    w->idle_fiber = __tsan_get_current_fiber();
#endif
    for (;;) {
        braid__coro *c = find_runnable(w);
        if (!c) break;
        if (!c->stack.lo) braid__coro_start(w, c);
        st_relaxed(&c->state, CORO_RUNNING);
        __atomic_store_n(&w->cur, c, __ATOMIC_RELAXED);
        switch_ctx(w, NULL, c, false);
        resumed(NULL);
    }
    stack_t off = { .ss_flags = SS_DISABLE };
    sigaltstack(&off, NULL);
    tls_worker = NULL;
    return NULL;
}

/* ---- start, stop, monitor, counters ------------------------------------------ */

static void sigsegv(int sig, siginfo_t *si, void *uc)
{
    braid__worker *w = tls_worker;
    braid__coro *c = w ? w->cur : NULL;
    if (c && braid__stack_guard_hit(si->si_addr, &c->stack))
        braid__panic("coroutine %llu (%s) overflowed its %zu-byte stack",
                     (unsigned long long)c->id,
                     c->name ? c->name : "unnamed", c->stack.size);
    struct sigaction *old = sig == SIGSEGV ? &braid__rt.old_segv
                                           : &braid__rt.old_bus;
    if (old->sa_flags & SA_SIGINFO && old->sa_sigaction) {
        old->sa_sigaction(sig, si, uc);
        return;
    }
    if (old->sa_handler != SIG_DFL && old->sa_handler != SIG_IGN && old->sa_handler) {
        old->sa_handler(sig);
        return;
    }
    signal(sig, SIG_DFL);       /* re-raised by the returning fault */
}

static int worker_new(unsigned id, braid__worker **out)
{
    braid__worker *w;
    if (posix_memalign((void **)&w, BRAID_CACHELINE, sizeof *w)) return -ENOMEM;
    memset(w, 0, sizeof *w);
    w->id = id;
    w->rng = 0x9E3779B97F4A7C15ULL * (id + 1) ^
             (braid__rt.chaos ? braid__rt.chaos : (uint64_t)braid_now());
    ck_ring_init(&w->ring, RUNQ_SIZE);
    atomic_init(&w->spawns.top, 0);
    atomic_init(&w->spawns.bottom, 0);
    w->stacks = braid__stack_cache_new(braid__rt.stack_size);
    w->coros = braid__coro_cache_new();
    w->altstack = malloc(SIGSTKSZ * 4);
    if (!w->stacks || !w->coros || !w->altstack) {
        braid__stack_cache_free(w->stacks);
        braid__coro_cache_free(w->coros);
        free(w->altstack);
        free(w);
        return -ENOMEM;
    }
    *out = w;
    return 0;
}

static void worker_free(braid__worker *w)
{
    braid__stack_cache_free(w->stacks);
    braid__coro_cache_free(w->coros);
    free(w->altstack);
    free(w);
}

int braid__sched_start(void)
{
    unsigned n = braid__rt.nworkers;
    braid__rt.workers = calloc(n, sizeof *braid__rt.workers);
    if (!braid__rt.workers) return -ENOMEM;
    for (unsigned i = 0; i < n; i++) {
        int r = worker_new(i, &braid__rt.workers[i]);
        if (r < 0) {
            while (i-- > 0) worker_free(braid__rt.workers[i]);
            free(braid__rt.workers);
            braid__rt.workers = NULL;
            return r;
        }
    }
    struct sigaction sa = { .sa_sigaction = sigsegv,
                            .sa_flags = SA_SIGINFO | SA_ONSTACK };
    sigemptyset(&sa.sa_mask);
    sigaction(SIGSEGV, &sa, &braid__rt.old_segv);
    sigaction(SIGBUS, &sa, &braid__rt.old_bus);
    return 0;
}

/* Start the threads: separate from sched_start so braid_run can queue the
   main coroutine first. */
int braid__sched_threads(void);
int braid__sched_threads(void)
{
    for (unsigned i = 0; i < braid__rt.nworkers; i++) {
        braid__worker *w = braid__rt.workers[i];
        int r = pthread_create(&w->thread, NULL, worker_main, w);
        if (r) {
            atomic_store(&braid__rt.stopping, 1);
            for (unsigned j = 0; j < i; j++) {
                wake_worker(braid__rt.workers[j]);
                pthread_join(braid__rt.workers[j]->thread, NULL);
            }
            return -r;
        }
    }
    return 0;
}

void braid__sched_stop(void)
{
    atomic_store(&braid__rt.stopping, 1);
    for (unsigned i = 0; i < braid__rt.nworkers; i++)
        wake_worker(braid__rt.workers[i]);
    for (unsigned i = 0; i < braid__rt.nworkers; i++)
        pthread_join(braid__rt.workers[i]->thread, NULL);
    sigaction(SIGSEGV, &braid__rt.old_segv, NULL);
    sigaction(SIGBUS, &braid__rt.old_bus, NULL);
}

void braid__sched_free(void)
{
    for (unsigned i = 0; i < braid__rt.nworkers; i++)
        worker_free(braid__rt.workers[i]);
    free(braid__rt.workers);
    braid__rt.workers = NULL;
    braid__rt.idle_head = NULL;
    braid__rt.gq_head = braid__rt.gq_tail = braid__rt.gq_prio = NULL;
    braid__rt.gq_prio_n = 0;
    atomic_store(&braid__rt.gq_woken, 0);
    atomic_store(&braid__rt.gq_n, 0);
    atomic_store(&braid__rt.npidle, 0);
    atomic_store(&braid__rt.nspinning, 0);
}

/* v has not switched since the monitor last looked (at least one monitor
   period) yet has coroutines queued: it is stuck in a call that blocks its
   thread, or in a long computation.  Move its ring and next slot to the
   global queue, as a thief would.  I/O thread only. */
static size_t drain_stuck(braid__worker *v, braid__batch *b)
{
    size_t n = 0;
    braid__coro *c;
    bool in = (ck_ring_size(&v->ring) || ld_relaxed(&v->next)) &&
              thief_enter(v);
    while (in && ck_ring_trydequeue_spmc(&v->ring, v->buf, &c)) {
        braid__tsan_acquire(c);
        braid__batch_add(b, c);
        n++;
    }
    if (in && (c = next_steal(v))) {
        braid__tsan_acquire(c);
        braid__batch_add(b, c);
        n++;
    }
    if (in) thief_leave(v);
    while (braid__deq_size(&v->spawns) &&
           (c = braid__deq_steal(&v->spawns))) {
        braid__tsan_acquire(c);
        braid__batch_add(b, c);
        n++;
    }
    c = ld_relaxed(&v->held) ? atomic_exchange(&v->held, NULL) : NULL;
    while (c) {
        braid__tsan_acquire(c);
        braid__coro *nx = c->link;
        braid__batch_add(b, c);
        n++;
        c = nx;
    }
    return n;
}

int64_t braid__sched_monitor(int64_t now)
{
    if (!ld_acquire(&braid__rt.running) || ld_acquire(&braid__rt.stopping))
        return -1;
    bool busy = false;
    st_relaxed(&braid__coarse_clock, now);
    braid__batch b = BRAID__BATCH_INIT;
    atomic_fetch_add(&braid__rt.moves, 1);  /* odd: see the deadlock rule */
    for (unsigned i = 0; i < braid__rt.nworkers; i++) {
        braid__worker *v = braid__rt.workers[i];
        if (ld_relaxed(&v->idle)) {     /* asleep */
            v->mon_since = 0;
            continue;
        }
        busy = true;
        /* Stuck: no switch for MONITOR_NS by our clock.  The monitor runs
           on every loop of the I/O thread, often microseconds apart, and
           comparing counts between two calls once took a worker that had
           spawned ten children without switching for stuck. */
        uint64_t sw = ld_relaxed(&v->switches);
        if (sw != v->mon_switches || !v->mon_since) {
            v->mon_switches = sw;
            v->mon_since = now;
        } else if (now - v->mon_since >= MONITOR_NS) {
            /* A lone worker's queue has nowhere else to go: moved to the
               global queue it only comes back in FIFO order, which turns
               a depth-first fork-join walk breadth-first (tens of MB of
               stacks) whenever the OS preempts the worker for 5 ms. */
            if (braid__rt.nworkers > 1)
                drain_stuck(v, &b);
            v->mon_since = now;
        }
    }
    if (b.n) {
        for (braid__coro *c = b.head; c; c = c->link) braid__tsan_release(c);
        gq_push_list(b.head, b.tail, b.n);
    }
    atomic_fetch_add(&braid__rt.moves, 1);
    if (busy && any_work() && ld_relaxed(&braid__rt.nspinning) == 0)
        wakep();
    return busy ? now + MONITOR_NS : -1;
}

void braid__count_read_skip(void)
{
    braid__worker *w = braid__worker_self();
    if (w) bump(&w->read_skips, 1);
}

uint64_t braid__read_skips(void)
{
    return braid__sched_counter(offsetof(braid__worker, read_skips));
}

uint64_t braid__sched_counter(size_t off)
{
    uint64_t s = 0;
    for (unsigned i = 0; braid__rt.workers && i < braid__rt.nworkers; i++)
        s += atomic_load_explicit((_Atomic uint64_t *)
                                  ((char *)braid__rt.workers[i] + off),
                                  memory_order_relaxed);
    return s;
}
