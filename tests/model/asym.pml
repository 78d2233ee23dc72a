/*
 * asym.pml - the two asymmetric Dekker protocols (braid__asym_light /
 * braid__asym_heavy, runtime/common.h) under x86-TSO, for spin.
 *
 * Select the protocol with -DNEXT_SLOT, -DSOLO_CLAIM or -DSOLO_PARK:
 *
 *  NEXT_SLOT   the worker's next slot (runtime/sched.c, "owner and
 *              thieves"; owner_enter/owner_leave, thief_enter/thief_leave).
 *              The owner's ring pop (runq_pop_owner: c_head read and
 *              advanced with plain moves inside busy, against a thief's CAS
 *              on c_head inside steal_lock) is the same protocol on another
 *              word, and this model stands for it too.
 *    proctype owner    the owning worker: next_swap(w, c) to put a fresh
 *                      coroutine in (braid__ready from a coroutine; what
 *                      comes back goes to the ring), and the take of
 *                      pick_local / switch_away (ld_relaxed(&w->next) &&
 *                      next_swap(w, NULL): the one it gets runs).
 *    proctype thief    next_steal(v): runq_steal's last round, or the
 *                      monitor taking the slot of a stuck worker.
 *  SOLO_CLAIM  the claim of a solo waiter (runtime/waiter.h)
 *    proctype party    braid__waiter_claim_locked on a solo waiter of a
 *                      coroutine, by a channel peer holding the wait-list
 *                      lock (so parties are serialized by that lock).
 *    proctype canceller  braid_cancel (runtime/coro.c: spin_lock(lk),
 *                      braid__asym_heavy, braid__waiter_claim_cancel,
 *                      spin_unlock) and the waiter's own self-cancel in
 *                      braid__waiter_wait (runtime/waiter.c: the same
 *                      sequence); both hold coro->lk.
 *
 *  SOLO_PARK   the lock-ordered park of a solo waiter (runtime/waiter.c,
 *              parked_solo; sync/chan.c block keeps ch->lock, w->held)
 *    proctype parker     the deferred action after the switch: the park
 *                      word with plain moves inside claiming (or a CAS
 *                      while lk is held), then unlock ch->lock; readies
 *                      itself if a canceller's wake came first.
 *    proctype party      a channel peer: lock ch->lock, claim as in
 *                      SOLO_CLAIM, unlock, braid__waiter_wake.
 *    proctype canceller  braid_cancel: lk, heavy, wait out claiming,
 *                      claim, braid__waiter_wake, unlock lk.
 *
 * The memory model (x86-TSO): every thread has a FIFO store buffer (depth
 * BUFD); st() appends to it, ld() reads the newest own buffered store to
 * the location, else memory; proctype flusher moves the oldest entry of any
 * thread's buffer to memory at any time.  A locked instruction (xchg, cmpxchg:
 * atomic_exchange, atomic_compare_exchange, the spin lock) drains the
 * thread's buffer and then acts on memory, in one step.  Release stores and
 * acquire loads are plain moves on x86: st() and ld().
 *   braid__asym_light   a compiler barrier: nothing at all here (program
 *                       order is kept by construction).
 *   braid__asym_heavy   membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED): the
 *                       caller drains its own buffer (smp_mb on entry), then
 *                       every other thread, in any order and each at any
 *                       point before the call returns, executes a full
 *                       barrier (the IPI, or a context switch): its buffer is
 *                       drained at that point.  The others run on meanwhile.
 * Spin interleaves the threads' steps, so with the buffers it explores every
 * TSO execution of the model (up to the buffer depth: a thread with a full
 * buffer waits for the flusher, which only leaves out executions with more
 * stores in flight).
 *
 * Properties (assertions):
 *  NEXT_SLOT   every coroutine put in the slot is obtained exactly once:
 *              by the owner (returned by next_swap: to the ring, or run) or
 *              by a thief; none lost, none duplicated.  Checked at every
 *              take (never twice) and when nothing can move (taken once, or
 *              still in the slot, with all buffers drained).
 *  SOLO_PARK   one party or canceller decides the waiter and the
 *              coroutine is readied exactly once (checked at every ready,
 *              and when nothing can move).
 *  SOLO_CLAIM  at most one of party / cancellers decides the waiter (checked
 *              at every win), and when all are done exactly one has, and
 *              w->state holds the winner's outcome.
 *
 * Broken variants (run.sh checks that each produces a counterexample):
 *  -DBUG_NO_HEAVY   the thief / canceller skips braid__asym_heavy: the
 *                   owner's (party's) store of busy (claiming) may still sit
 *                   in its store buffer when the other side loads it.
 *  -DBUG_NO_WAIT    the thief ignores busy (exchanges the slot anyway);
 *                   the canceller does not wait for claiming == 0 (CASes at
 *                   once): it races the plain read-modify-write in flight.
 *  -DBUG_NO_HELD    (SOLO_PARK) the parker unlocks ch->lock before it
 *                   parks: a peer's wake races its plain park store.
 *  -DBUG_WAKE_UNLOCKED  (SOLO_PARK) braid_cancel wakes after unlocking lk
 *                   (as it did before lock-ordered parking).
 *
 * Sizes: NEXT_SLOT: -DTHIEVES (1 or 2), -DOPS (owner operations), -DSTEALS
 * (attempts per thief).  SOLO_CLAIM: -DCANCELLERS (1 or 2), -DPARTIES (1 or
 * 2).  Both: -DBUFD (store-buffer depth, default 3).
 */

#ifndef BUFD
#define BUFD 3
#endif

#if defined(NEXT_SLOT)
#ifndef THIEVES
#define THIEVES 1
#endif
#ifndef OPS
#define OPS 3
#endif
#ifndef STEALS
#define STEALS 2
#endif
#define NT (1 + THIEVES)        /* threads: owner 0, thieves 1.. */
#define NLOC 3
#define NEXT 0                  /* w->next: 0 = NULL, else a coroutine 1..OPS */
#define BUSY 1                  /* w->busy */
#define LOCK 2                  /* w->steal_lock */
#elif defined(SOLO_CLAIM)
#ifndef CANCELLERS
#define CANCELLERS 2
#endif
#ifndef PARTIES
#define PARTIES 1
#endif
#define NT (PARTIES + CANCELLERS)   /* parties 0.., then cancellers */
#define NLOC 4
#define STATE 0                 /* w->state */
#define CLAIMING 1              /* coro->claiming */
#define LK 2                    /* coro->lk.v */
#define LLOCK 3                 /* the wait-list lock (parties only) */
#define WAITING 0               /* BRAID__WAITING */
#define PARTY_OUT 1             /* the party's outcome */
#define CANCELED 2              /* -ECANCELED */
#elif defined(SOLO_PARK)
#ifndef CANCELLERS
#define CANCELLERS 1
#endif
#define NT (2 + CANCELLERS)     /* parker 0, party 1, then cancellers */
#define NLOC 5
#define STATE 0                 /* w->state */
#define CLAIMING 1              /* coro->claiming */
#define LK 2                    /* coro->lk.v */
#define LLOCK 3                 /* the wait-list lock (ch->lock), w->held */
#define PARK 4                  /* w->park: 0 running, 1 parked, 2 woken */
#define WAITING 0
#define PARTY_OUT 1
#define CANCELED 2
#else
#error "select a protocol: -DNEXT_SLOT, -DSOLO_CLAIM or -DSOLO_PARK"
#endif

byte mem[NLOC];                 /* memory */
byte ba[NT * BUFD];             /* store buffers: thread t's entries are */
byte bv[NT * BUFD];             /* t * BUFD .. t * BUFD + bn[t] - 1, oldest */
byte bn[NT];                    /* first: address ba, value bv */
byte finished;                  /* ghost: threads done */

/* Store: append to my buffer (wait for the flusher if it is full). */
inline st(a, v) {
    d_step {
        bn[me] < BUFD ->
        ba[me * BUFD + bn[me]] = a; bv[me * BUFD + bn[me]] = v; bn[me]++
    }
}

/* Load: the newest store to a in my buffer, else memory. */
inline ld(a, r) {
    d_step {
        r = mem[a]; j = 0;
        do
        :: j < bn[me] ->
            if
            :: ba[me * BUFD + j] == a -> r = bv[me * BUFD + j]
            :: else
            fi;
            j++
        :: else -> break
        od;
        j = 0
    }
}

/* Drain thread t's buffer to memory (inside a d_step). */
inline drain_body(t) {
    j = 0;
    do
    :: j < bn[t] ->
        mem[ba[t * BUFD + j]] = bv[t * BUFD + j];
        ba[t * BUFD + j] = 0; bv[t * BUFD + j] = 0; j++
    :: else -> break
    od;
    bn[t] = 0; j = 0
}

/* Locked exchange: drain, then read and write memory. */
inline xchg(a, v, r) {
    d_step { drain_body(me); r = mem[a]; mem[a] = v }
}

/* Locked compare-exchange: drain, then compare and set; ok = success. */
inline cas(a, e, n, ok) {
    d_step {
        drain_body(me);
        if
        :: mem[a] == e -> mem[a] = n; ok = 1
        :: else -> ok = 0
        fi
    }
}

/* braid__spin_lock: xchg(a, 1) until it returns 0.  A failed xchg only
   drains the buffer, which the flusher does as well: so wait for an empty
   buffer and a free lock, then take it. */
inline spin_lock(a) {
    d_step { bn[me] == 0 && mem[a] == 0 -> mem[a] = 1 }
}

/* braid__asym_heavy: drain my buffer, then each other thread's once, in any
   order, each drain its own step (others keep running in between). */
inline heavy() {
    d_step { drain_body(me); hm = 1 << me };
    do
    :: hm == (1 << NT) - 1 -> break
    :: d_step { !(hm & 1) -> drain_body(0); hm = hm | 1 }
    :: d_step { !(hm & 2) -> drain_body(1); hm = hm | 2 }
#if NT > 2
    :: d_step { !(hm & 4) -> drain_body(2); hm = hm | 4 }
#endif
#if NT > 3
    :: d_step { !(hm & 8) -> drain_body(3); hm = hm | 8 }
#endif
    od;
    hm = 0
}

/* The hardware writing back buffered stores: the oldest entry of any
   thread's buffer, at any time. */
inline flush1(t) {
    d_step {
        bn[t] > 0 ->
        mem[ba[t * BUFD]] = bv[t * BUFD];
        j = 0;
        do
        :: j + 1 < bn[t] ->
            ba[t * BUFD + j] = ba[t * BUFD + j + 1];
            bv[t * BUFD + j] = bv[t * BUFD + j + 1]; j++
        :: else -> break
        od;
        ba[t * BUFD + j] = 0; bv[t * BUFD + j] = 0; bn[t]--; j = 0
    }
}

active proctype flusher()
{
    byte j;
end_flush:
    do
    :: flush1(0)
    :: flush1(1)
#if NT > 2
    :: flush1(2)
#endif
#if NT > 3
    :: flush1(3)
#endif
    od
}

#if NT == 2
#define BUFS_EMPTY (bn[0] + bn[1] == 0)
#elif NT == 3
#define BUFS_EMPTY (bn[0] + bn[1] + bn[2] == 0)
#else
#define BUFS_EMPTY (bn[0] + bn[1] + bn[2] + bn[3] == 0)
#endif

/* ======================================================================= */
#ifdef NEXT_SLOT

byte got[OPS + 1];              /* ghost: times coroutine c was obtained */
byte puts;                      /* ghost: coroutines 1..puts were put in */

inline obtained(c) {
    d_step { got[c]++; assert(got[c] == 1) }
}

/* next_swap(w, c): the owner.  Result in old. */
inline next_swap(c, old) {
    st(BUSY, 1);
    /* braid__asym_light: compiler barrier */
    ld(LOCK, r);
    if
    :: r == 0 ->
        ld(NEXT, old);
        st(NEXT, c);
        st(BUSY, 0)                     /* release */
    :: else ->
        st(BUSY, 0);
        xchg(NEXT, c, old)
    fi;
    r = 0
}

proctype owner()
{
    byte me = 0;
    byte r, j, c, old, ops;

    do
    :: ops < OPS ->
        ops++;
        if
        :: d_step { puts++; c = puts }  /* braid__ready(c): a fresh one */
           next_swap(c, old);
           if
           :: old != 0 -> obtained(old) /* displaced: to the ring */
           :: else
           fi
        :: ld(NEXT, r);                 /* pick_local: the slot first */
           if
           :: r != 0 ->
               next_swap(0, old);
               if
               :: old != 0 -> obtained(old)    /* runs it */
               :: else                          /* a thief was faster */
               fi
           :: else
           fi
        fi;
        c = 0; old = 0; r = 0
    :: else -> break
    od;
    finished++
}

/* next_steal(v): a thief (or the monitor). */
proctype thief(byte me)
{
    byte r, j, hm, c, n;

    do
    :: n < STEALS ->
        n++;
        ld(NEXT, r);
        if
        :: r != 0 ->
            xchg(LOCK, 1, r);
            if
            :: r == 0 ->
#ifndef BUG_NO_HEAVY
                heavy();
#endif
                ld(BUSY, r);            /* acquire */
#ifdef BUG_NO_WAIT
                r = 0;                  /* ignores busy */
#endif
                if
                :: r != 0 -> c = 0      /* the owner is at it: back off */
                :: else -> xchg(NEXT, 0, c)
                fi;
                st(LOCK, 0);            /* release */
                if
                :: c != 0 -> obtained(c)
                :: else
                fi
            :: else                     /* another thief is at it */
            fi
        :: else
        fi;
        r = 0; c = 0
    :: else -> break
    od;
    finished++
}

init
{
    atomic {
        run owner();
        run thief(1);
#if THIEVES > 1
        run thief(2);
#endif
    }
}

/* When nothing can move: all done, all stores written back; every
   coroutine put in was obtained once or is still in the slot. */
active proctype monitor()
{
    byte c;
end_monitor:
    timeout ->
    d_step {
        assert(finished == NT && BUFS_EMPTY);
        assert(mem[BUSY] == 0 && mem[LOCK] == 0);
        c = 1;
        do
        :: c <= puts -> assert(got[c] + (mem[NEXT] == c) == 1); c++
        :: c > puts -> break
        od;
        assert(mem[NEXT] <= puts)
    }
}

#endif /* NEXT_SLOT */

/* ======================================================================= */
#ifdef SOLO_CLAIM

byte wins;                      /* ghost: claims that won */
byte winner = 255;              /* ghost: the outcome of the one that won */

inline won_as(o) {
    d_step { wins++; assert(wins == 1); winner = o }
}

/* braid__waiter_claim_locked(w, PARTY_OUT) under the wait-list lock. */
proctype party(byte me)
{
    byte r, j;
    bit ok;

    spin_lock(LLOCK);                   /* the wait list's lock */
    st(CLAIMING, 1);
    /* braid__asym_light: compiler barrier */
    ld(LK, r);                          /* acquire */
    if
    :: r == 0 ->
        ld(STATE, r);
        if
        :: r == WAITING ->
            st(STATE, PARTY_OUT);
            won_as(PARTY_OUT)
        :: else
        fi;
        st(CLAIMING, 0)                 /* release */
    :: else ->
        st(CLAIMING, 0);                /* release */
        cas(STATE, WAITING, PARTY_OUT, ok);
        if
        :: ok -> won_as(PARTY_OUT)
        :: else
        fi
    fi;
    st(LLOCK, 0);                       /* unlock the list */
    r = 0; ok = 0;
    finished++
}

/* braid_cancel / the self-cancel of braid__waiter_wait: spin_lock(lk);
   braid__asym_heavy; braid__waiter_claim_cancel; spin_unlock(lk). */
proctype canceller(byte me)
{
    byte j, hm;
    bit ok;

    spin_lock(LK);
#ifndef BUG_NO_HEAVY
    heavy();
#endif
#ifndef BUG_NO_WAIT
    /* while (ld_acquire(&claiming)) cpu_relax(): we never store claiming,
       so our load reads memory; loads have no effect, so the loop is a
       wait for memory to say 0 */
    mem[CLAIMING] == 0;
#endif
    cas(STATE, WAITING, CANCELED, ok);
    if
    :: ok -> won_as(CANCELED)
    :: else
    fi;
    st(LK, 0);                          /* spin_unlock: release */
    ok = 0;
    finished++
}

init
{
    atomic {
        run party(0);
#if PARTIES > 1
        run party(1);
#endif
        run canceller(PARTIES);
#if CANCELLERS > 1
        run canceller(PARTIES + 1);
#endif
    }
}

/* When nothing can move: all done (no canceller stuck on claiming), all
   stores written back, decided exactly once, by the winner. */
active proctype monitor()
{
end_monitor:
    timeout ->
    d_step {
        assert(finished == NT && BUFS_EMPTY);
        assert(wins == 1 && mem[STATE] == winner);
        assert(mem[CLAIMING] == 0 && mem[LK] == 0 && mem[LLOCK] == 0)
    }
}

#endif /* SOLO_CLAIM */

/* ======================================================================= */
#ifdef SOLO_PARK

byte wins;                      /* ghost: claims that won */
byte readied;                   /* ghost: times the coroutine was readied */

inline won() {
    d_step { wins++; assert(wins == 1) }
}

inline ready() {
    d_step { readied++; assert(readied == 1) }
}

/* braid__waiter_wake(w) of a coroutine: load the park word; unless it says
   parked (1), exchange in 2 and ready only if that saw 1. */
inline wake() {
    ld(PARK, r);                        /* acquire */
    if
    :: r == 1 -> ready()
    :: else ->
        xchg(PARK, 2, r);
        if
        :: r == 1 -> ready()
        :: else                         /* it readies itself */
        fi
    fi
}

/* The blocked coroutine: block() linked its node and kept ch->lock (the
   model starts with LLOCK held); after the switch, parked_solo
   (runtime/waiter.c) settles the park word, then unlocks ch->lock. */
proctype parker()
{
    byte me = 0;
    byte r, j, v;
    bit ok;

#ifdef BUG_NO_HELD
    st(LLOCK, 0);                       /* unlock before parking */
#endif
    st(CLAIMING, 1);
    /* braid__asym_light: compiler barrier */
    ld(LK, r);                          /* acquire */
    if
    :: r == 0 ->
        ld(PARK, v);
        if
        :: v == 0 -> st(PARK, 1)
        :: else
        fi;
        st(CLAIMING, 0)                 /* release */
    :: else ->
        st(CLAIMING, 0);
        cas(PARK, 0, 1, ok);
        if
        :: ok -> v = 0
        :: else -> v = 2
        fi
    fi;
#ifndef BUG_NO_HELD
    st(LLOCK, 0);                       /* spin_unlock(w->held): release */
#endif
    if
    :: v != 0 -> ready()                /* a canceller's wake came first */
    :: else
    fi;
    r = 0; ok = 0;
    finished++
}

/* A channel peer: finds the node under ch->lock, claims the solo waiter
   (braid__waiter_claim_locked), unlocks, then wakes it (braid_send /
   braid_recv). */
proctype party()
{
    byte me = 1;
    byte r, j;
    bit ok, w;

    spin_lock(LLOCK);
    st(CLAIMING, 1);
    ld(LK, r);
    if
    :: r == 0 ->
        ld(STATE, r);
        if
        :: r == WAITING -> st(STATE, PARTY_OUT); w = 1; won()
        :: else
        fi;
        st(CLAIMING, 0)
    :: else ->
        st(CLAIMING, 0);
        cas(STATE, WAITING, PARTY_OUT, ok);
        if
        :: ok -> w = 1; won()
        :: else
        fi
    fi;
    st(LLOCK, 0);
    if
    :: w -> wake()
    :: else
    fi;
    r = 0; ok = 0; w = 0;
    finished++
}

/* braid_cancel (runtime/coro.c): spin_lock(lk); braid__asym_heavy; wait
   out claiming; claim; wake under lk; spin_unlock(lk). */
proctype canceller(byte me)
{
    byte r, j, hm;
    bit ok;

    spin_lock(LK);
    heavy();
    mem[CLAIMING] == 0;                 /* while (claiming) cpu_relax() */
    cas(STATE, WAITING, CANCELED, ok);
#ifdef BUG_WAKE_UNLOCKED
    st(LK, 0);
#endif
    if
    :: ok -> won(); wake()
    :: else
    fi;
#ifndef BUG_WAKE_UNLOCKED
    st(LK, 0);                          /* spin_unlock: release */
#endif
    r = 0; ok = 0;
    finished++
}

init
{
    atomic {
        mem[LLOCK] = 1;                 /* held by the parker */
        run parker();
        run party();
        run canceller(2);
#if CANCELLERS > 1
        run canceller(3);
#endif
    }
}

/* When nothing can move: everyone done, all stores written back, the
   waiter decided once and the coroutine readied exactly once. */
active proctype monitor()
{
end_monitor:
    timeout ->
    d_step {
        assert(finished == NT && BUFS_EMPTY);
        assert(wins == 1 && readied == 1);
        assert(mem[CLAIMING] == 0 && mem[LK] == 0 && mem[LLOCK] == 0)
    }
}

#endif /* SOLO_PARK */
