/*
 * park.pml - the worker park/unpark protocol of runtime/sched.c, for spin.
 *
 * What is modelled (and which C it stands for):
 *   proctype worker   worker_main + find_runnable: pick_local, the decision
 *                     to spin, steal_round/runq_steal/gq_take, stop_spinning,
 *                     going idle (stop spinning, idle_push, fence, any_work,
 *                     idle_remove), park_worker; and, while a coroutine runs,
 *                     the worker-side producer (braid__ready from a
 *                     coroutine: next slot, displaced one to the ring, wakep)
 *                     and switch_away with its deferred action (requeue of a
 *                     yield, `parked` readying a coroutine whose wake came
 *                     first).
 *   proctype io       the foreign producer: braid__ready_batch from the I/O
 *                     thread (or braid__ready from a plain thread, a batch
 *                     of one): push to the global queue, then wakep.
 *   inline wakep      wakep (the CAS on nspinning, idle_pop, wake_worker).
 *   inline idle_*     idle_push / idle_remove / idle_pop (idle_lock: each one
 *                     atomic step; the idle list is LIFO as in the C).
 *   monitor           the property, checked when nothing can move.
 *
 * Coroutines are anonymous tokens: the queues are counts.  Each C atomic
 * (or spinlocked section) is one Promela step; spin interleaves whole steps,
 * i.e. it explores sequentially consistent executions, which is what the
 * seq_cst fences in wakep and find_runnable provide for the Dekker pair
 * (pusher: queue store, fence, load nspinning/npidle; sleeper: nspinning--,
 * npidle++, fence, load the queues).  Two relaxed loads that the C does back
 * to back (nspinning and npidle in find_runnable) are read in one step.
 *
 * Left out on purpose: the GLOBAL_EVERY tick and NEXT_STREAK (orders of
 * looking at the worker's own queues: no wake depends on them), chaos mode,
 * ring overflow to the global queue (RUNQ_SIZE is far above these counts),
 * the deadlock check in idle_push (about sources, not wakes), stopping, and
 * braid__sched_monitor (a safety net: modelling it would hide lost wakes).
 * The "stuck" victim test (steal the next slot of a worker that has not
 * switched) is a free choice on the last round.
 *
 * Properties:
 *  - safety (monitor): when no process can move (every worker is blocked
 *    in park_worker with no wake pending, the producers are done), no
 *    coroutine is queued, every coroutine made runnable has run, every
 *    worker is on the idle list and nspinning == 0.
 *  - always: nspinning >= 0 and nspinning == number of workers with
 *    w->spinning set + wakeps between their CAS and setting w->spinning;
 *    a worker running a coroutine is not spinning (else wakep, seeing
 *    nspinning != 0, leaves parked workers asleep while it runs).
 *  - ltl done: <>[] quiet -- under weak fairness, every coroutine made
 *    runnable eventually runs: no livelock.  (A lost wake ends in a state
 *    where nothing can move; spin's weak-fairness cycle search does not
 *    count the stutter of such a state, so the monitor catches those, in
 *    the liveness run too.)
 *
 * Broken variants (run.sh checks that each yields a counterexample):
 *  -DBUG_NO_RECHECK    a going-idle worker parks without re-checking the
 *                      queues after idle_push: a push that saw a spinner
 *                      (so did not wake anyone) is stranded.  Caught by the
 *                      monitor.
 *  -DBUG_LATE_UNSPIN   the worker stops spinning AFTER idle_push: a wakep
 *                      that did its CAS before and pops the worker now sets
 *                      w->spinning that is already set, and one count of
 *                      nspinning is never given back (it stays >= 1, so no
 *                      wakep ever wakes anyone again).  The reason for the
 *                      order in find_runnable.
 *  -DBUG_RUN_SPINNING  find_runnable returns what pick_local found without
 *                      stop_spinning (sched.c before commit e87c479, "fix
 *                      spinning leak when a woken spinner finds local
 *                      work"): a woken spinner runs coroutines still counted
 *                      in nspinning.
 *  -DBUG_GQ_SHARE      gq_take takes n / nworkers instead of n / nworkers + 1:
 *                      a lone coroutine on the global queue is never taken
 *                      while every worker spins on it (any_work says yes).
 *                      No state is stuck, so only the LTL claim (under weak
 *                      fairness) catches this livelock.
 * Not needed for these properties, as the model shows: the wakep in
 * stop_spinning (the hand-over).  Without it the spinner that found work
 * still gets to the rest itself once its coroutine switches; the hand-over
 * is for parallelism, and for a coroutine that runs long without switching
 * (which the model does not have: braid__sched_monitor covers that).
 *
 * Sizes: -DNW (2 or 3), -DSPAWN, -DFOREIGN, -DYIELDS (see below).
 */

#ifndef NW
#define NW 2            /* workers: 2 or 3 */
#endif
#ifndef SPAWN
#define SPAWN 2         /* coroutines the running coroutines may ready */
#endif
#ifndef FOREIGN
#define FOREIGN 2       /* coroutines the I/O thread pushes, in batches */
#endif
#ifndef YIELDS
#define YIELDS 1        /* yields / early wakes of a running coroutine */
#endif
#define HALF 8          /* gq_take's max (RUNQ_SIZE / 2): above any count */

#if NW == 2
#define SUMSPIN (spinning[0] + spinning[1])
#define QUIET_RUNQ (nxt[0] + nxt[1] + ring[0] + ring[1] == 0)
#else
#define SUMSPIN (spinning[0] + spinning[1] + spinning[2])
#define QUIET_RUNQ (nxt[0] + nxt[1] + nxt[2] + ring[0] + ring[1] + ring[2] == 0)
#endif

byte nxt[NW];           /* w->next: 0 or 1 coroutine */
byte ring[NW];          /* w->ring */
byte gq = 1;            /* rt.gq_n: braid_run queues main before the threads */
byte queued = 1;        /* ghost: sum of nxt, ring, gq */
byte made = 1;          /* ghost: coroutines ever made runnable */
byte taken;             /* ghost: coroutines that ran to their end */
byte ilist[NW];         /* idle list, LIFO; head = ilist[npidle - 1] */
byte npidle;            /* rt.npidle (== length of the idle list) */
bool idle[NW];          /* w->idle */
bit  park[NW];          /* w->park: 1 = woken */
bool spinning[NW];      /* w->spinning */
short nspinning;        /* rt.nspinning */
byte inflight;          /* ghost: wakeps between their CAS and w->spinning */
byte spawn_left = SPAWN;
byte foreign_left = FOREIGN;
byte yields_left = YIELDS;

#define INV assert(nspinning >= 0 && nspinning == SUMSPIN + inflight)
#define quiet (queued == 0 && taken == made && foreign_left == 0)

ltl done { <>[] quiet }

/* idle_pop (wakep): the head of the idle list, or NW.  idle_lock. */
inline idle_pop(ww) {
    d_step {
        if
        :: npidle > 0 ->
            npidle--; ww = ilist[npidle]; ilist[npidle] = 0; idle[ww] = 0
        :: else -> ww = NW
        fi
    }
}

/* idle_push (find_runnable).  idle_lock. */
inline idle_push() {
    d_step { ilist[npidle] = me; npidle++; idle[me] = 1 }
}

/* idle_remove (find_runnable): unlink me unless a waker popped it.
   idle_lock.  Result in ok. */
inline idle_remove() {
    d_step {
        if
        :: idle[me] ->
            i = 0;
            do
            :: ilist[i] == me -> break
            :: else -> i++
            od;
            do
            :: i + 1 < npidle -> ilist[i] = ilist[i + 1]; i++
            :: else -> break
            od;
            npidle--; ilist[npidle] = 0; idle[me] = 0; ok = 1; i = 0
        :: else -> ok = 0
        fi
    }
}

/* wakep: fence (implicit: sequential consistency); load nspinning; load
   npidle; CAS nspinning 0 -> 1; idle_pop; w->spinning = true (undone if
   the list was empty); wake_worker: store park = 1 (then futex_wake). */
inline wakep() {
    d_step { ok = (nspinning == 0) };
    if
    :: d_step { ok -> ok = (npidle > 0) }
    :: else
    fi;
    if
    :: d_step {
        ok ->
        if
        :: nspinning == 0 -> nspinning = 1; inflight++
        :: else -> ok = 0
        fi
       }
    :: else
    fi;
    if
    :: ok ->
        idle_pop(ww);
        if
        :: d_step { ww == NW -> nspinning--; inflight--; INV; ww = 0; ok = 0 }
        :: d_step { ww < NW -> spinning[ww] = 1; inflight--; INV; ok = 0 };
           d_step { park[ww] = 1; ww = 0 }
        fi
    :: else
    fi
}

/* gq_take (pick_local, steal_round): under gq_lock take k = n/NW + 1 (at
   most n); the first is run, the rest go to our ring after the unlock (in
   hand meanwhile).  Sets found. */
inline gq_take() {
    d_step {
        if
        :: gq > 0 ->
#ifndef BUG_GQ_SHARE
            k = gq / NW + 1;
#else
            k = gq / NW;                 /* forgets the + 1 */
#endif
            if :: k > gq -> k = gq :: else fi;
            if
            :: k > 0 ->
                gq = gq - k; queued = queued - k; found = 1; hand = k - 1
            :: else
            fi;
            k = 0
        :: else
        fi
    }
    if
    :: d_step { hand > 0 -> ring[me] = ring[me] + hand; queued = queued + hand; hand = 0 }
    :: else
    fi
}

/* pick_local: our next slot or ring (only thieves race with us on them),
   else the global queue. */
inline pick_local() {
    if
    :: d_step { nxt[me] > 0 -> nxt[me] = 0; queued--; found = 1 }
    :: d_step { ring[me] > 0 -> ring[me]--; queued--; found = 1 }
    :: else -> gq_take()
    fi
}

/* runq_steal(w, v, stuck): half of v's ring, the rest in hand until it is
   in ours; failing that, on the last round, maybe v's next slot (stuck:
   v has not switched since we looked -- a free choice here). */
inline runq_steal() {
    d_step {
        if
        :: ring[v] > 0 ->
            k = ring[v] - ring[v] / 2;
            ring[v] = ring[v] - k; queued = queued - k; found = 1;
            hand = k - 1; k = 0
        :: else
        fi
    }
    if
    :: d_step { hand > 0 -> ring[me] = ring[me] + hand; queued = queued + hand; hand = 0 }
    :: else
    fi;
    if
    :: d_step { !found && last && nxt[v] > 0 -> nxt[v] = 0; queued--; found = 1 }
    :: true
    fi
}

/* steal_round: the other workers from a random start, then the global
   queue. */
inline steal_round() {
    if
    :: v = (me + 1) % NW
#if NW == 3
    :: v = (me + 2) % NW
#endif
    fi;
    runq_steal();
#if NW == 3
    if
    :: d_step { !found -> v = (v + 1) % NW; if :: v == me -> v = (v + 1) % NW :: else fi }
       runq_steal()
    :: else
    fi;
#endif
    v = 0;
    if
    :: !found -> gq_take()
    :: else
    fi
}

/* any_work: the re-check after idle_push, one load at a time (our own
   queues are empty here: only we push to them).  Result in ok. */
inline any_work() {
    d_step { ok = (gq > 0); i = (me + 1) % NW };
    do
    :: d_step { !ok && i != me -> ok = (ring[i] > 0) };
       if
       :: d_step { !ok -> ok = (nxt[i] > 0); i = (i + 1) % NW }
       :: else
       fi
    :: else -> break
    od;
    i = 0
}

/* stop_spinning: the last spinner to find work hands over with wakep. */
inline stop_spinning() {
    if
    :: d_step { spinning[me] -> spinning[me] = 0; nspinning--; INV; ok = (nspinning == 0) }
       if
       :: ok -> wakep()
       :: else
       fi
    :: else
    fi
}

/* braid__ready(c) from a coroutine running on me: exchange c into the
   next slot; a displaced one goes to the ring, then wakep_local.  That one
   reads nspinning and npidle relaxed, without the fence, and may see them
   stale (x86-TSO: our ring store still buffered): it may skip wakep when
   the fenced one would wake.  Modelled as a free choice, so the safety
   and liveness properties hold with no help from local wakeps. */
inline ready_local() {
    d_step { ok = nxt[me]; nxt[me] = 1; queued = queued + 1 - ok };
    if
    :: d_step { ok -> ring[me]++; queued++; ok = 0 }
       if
       :: wakep()
       :: skip
       fi
    :: else
    fi
}

proctype worker(byte me)
{
    bit found, ok, back, last;
    byte ww, i, v, k, hand;

find:                   /* find_runnable */
    pick_local();
    if
    :: found -> found = 0;
#ifndef BUG_RUN_SPINNING
        stop_spinning();                /* woken as a spinner: hand it on */
#endif
        goto running
    :: else
    fi;
    /* busy = nworkers - npidle; spin if 2 * nspinning < busy */
    if
    :: !spinning[me] && 2 * nspinning < NW - npidle ->
        d_step { spinning[me] = 1; nspinning++; INV }
    :: else
    fi;
    /* the steal rounds (C: 4, with a pause between): one round here, which
       is the last one (next slots fair game); more rounds only give more
       chances to find work */
    last = 1;
    steal_round();
    last = 0;
    if
    :: found -> found = 0; stop_spinning(); goto running
    :: else
    fi;
    /* going idle: stop spinning before publishing ourselves idle (once we
       are on the idle list a waker may set w->spinning for us) */
#ifndef BUG_LATE_UNSPIN
    if
    :: d_step { spinning[me] -> spinning[me] = 0; nspinning--; INV }
    :: else
    fi;
#endif
    idle_push();
#ifdef BUG_LATE_UNSPIN
    if
    :: d_step { spinning[me] -> spinning[me] = 0; nspinning--; INV }
    :: else
    fi;
#endif
    /* atomic_thread_fence(seq_cst): pairs with wakep */
#ifndef BUG_NO_RECHECK
    any_work();
    if
    :: ok ->
        idle_remove();
        if
        :: ok -> ok = 0; goto find
        :: else
        fi
    :: else
    fi;
#endif
end_park:               /* park_worker: xchg(park, 0); futex_wait(park, 0) */
    d_step { park[me] == 1 -> park[me] = 0 };
    goto find;

running:                /* a coroutine runs on me: not counted as spinning */
    assert(!spinning[me]);
    do
    :: d_step { spawn_left > 0 -> spawn_left--; made++ }
       ready_local()
    :: break
    od;
    if
    :: d_step { yields_left > 0 -> yields_left--; back = 1 }
    :: d_step { taken++ }   /* it exits (or blocks on what is not modelled) */
    fi;
    /* switch_away: pick the successor, then the deferred action runs in
       the successor's context, or in the idle context */
    pick_local();
    if
    :: back && found -> back = 0;
        if
        :: d_step { ring[me]++; queued++ }   /* requeue (yield): no wakep */
        :: true -> ready_local()             /* parked, woken first */
        fi
    :: d_step { back && !found -> back = 0; ring[me]++; queued++ }
    :: else
    fi;
    if
    :: found -> found = 0; goto running
    :: else -> goto find
    fi
}

/* The foreign producer: braid__ready_batch from the I/O thread (a plain
   thread's braid__ready is a batch of one): push to the global queue under
   gq_lock, then wakep. */
proctype io()
{
    bit ok;
    byte ww;

    do
    :: d_step { foreign_left > 0 -> gq++; queued++; made++; foreign_left-- }
       wakep()
    :: d_step { foreign_left > 1 -> gq = gq + 2; queued = queued + 2;
                made = made + 2; foreign_left = foreign_left - 2 }
       wakep()
    :: else -> break
    od
}

init
{
    atomic {
        run worker(0);
        run worker(1);
#if NW == 3
        run worker(2);
#endif
        run io()
    }
}

/* When nothing can move: every worker sleeps in park_worker with no wake
   pending and the producers are done. */
#ifndef NOMONITOR
active proctype monitor()
{
end_mon:
    timeout ->
        assert(queued == 0 && gq == 0 && QUIET_RUNQ && taken == made &&
               nspinning == 0 && npidle == NW)
}
#endif
