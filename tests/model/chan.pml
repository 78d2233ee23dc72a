/*
 * chan.pml - channels, select and the waiter (sync/chan.c, sync/select.c,
 * runtime/waiter.c), for spin.
 *
 * Scenario: two channels, c0 with capacity 0 (rendezvous: hand-off straight
 * between the parties' buffers) and c1 with capacity 1 (buffer, and the
 * "receiver frees a slot and pulls the first waiting sender" path).
 *   S1   a plain OS thread: braid_send(c0, 1, deadline)   (thread_wait)
 *   S2   a coroutine: braid_send(c1, 2, t); braid_send(c1, 3, t), each with
 *        a deadline t served by the timer process
 *   R1   a coroutine: braid_recv(c0, FOREVER), cancelled by the canceller
 *   SEL  a coroutine: braid_select({recv c0, recv c1}, FOREVER)
 *   closer     braid_tx_close of c1's only send handle (S2's; in C the
 *              handle is freed, so S2 may use it only while blocked on it:
 *              the model keeps the closed flag instead, which is the same
 *              -EBADF the C returns while the memory is still there)
 *   canceller  braid_cancel(R1)
 *   timer      the I/O thread's braid__timers_expire for S2's deadline
 *
 * Which C each piece stands for:
 *   claim            braid__waiter_claim (the CAS on w->state)
 *   wake             braid__waiter_wake with b == NULL (load park: 1 means
 *                    braid__ready at once; else exchange park <- 2 and
 *                    braid__ready if it saw 1; a thread: futex wake)
 *   wake_batch       braid__waiter_wake with a batch (evict, on_timer); the
 *                    batch is readied by braid__ready_batch afterwards
 *   claim_first      claim_first (chan.c)
 *   try_send_c1      braid__chan_try_send on c1;  S2's send: braid_send
 *   try_recv_c0/c1   braid__chan_try_recv;  R1: braid_recv
 *   evict            evict (chan.c), in the closer: braid_tx_close +
 *                    close_finish
 *   parked / resume  coro_wait + the deferred action `parked` (CAS park
 *                    0 -> 1, or ready itself when the wake came first) and
 *                    the coroutine running again
 *   pub / unpub      braid__waiter_wait publishing me->waiter under coro->lk
 *                    (a cancellable wait only: R1's)
 *   canceller        braid_cancel
 *   list_*           braid__wlist_push / _remove / _pop
 *   SEL              braid_select: plan (the shuffle: a free choice of poll
 *                    order), poll_cases, enqueue_all, braid__waiter_wait,
 *                    dequeue_all
 *
 * Granularity: a section under a channel lock (for select: under both) is
 * one atomic step.  The only other parties inside such a section in C are
 * claims by the timer or the canceller on some waiter's state word, which
 * commute with the section's other steps; so atomic sections lose no
 * outcome.  Everything done after a lock is dropped (the wake, the park
 * handshake, unlinking on the way out, readying a batch) is its own step.
 *
 * Properties (assertions):
 *  - a waiter is claimed at most once (CAS) and woken exactly by the party
 *    whose claim won, exactly once; nobody claims, wakes or pops the node of
 *    a waiter whose operation has returned (its stack frame is gone);
 *  - a coroutine is made runnable at most once per park, and only after it
 *    parked (the handshake);
 *  - every operation returns with none of its nodes on any wait list;
 *  - a select completes at most one case: only the returned case's buffer
 *    was written; a cancelled / timed-out / failed operation moved nothing;
 *  - conservation: a value is received at most once; when nothing can move
 *    any more, each value whose send returned 0 was received exactly once or
 *    is still buffered, and no other value was; and every party still
 *    blocked is undecided (no decided waiter was left parked: no lost wake).
 *
 * Broken variants (run.sh checks that each produces a counterexample):
 *  -DBUG_WAKE_NO_CLAIM   evict stores its outcome and wakes without the CAS
 *  -DBUG_NO_UNLINK       a timed-out / cancelled waiter returns without
 *                        unlinking its node
 */

#define NONE     255
#define NVAL     4        /* values: 1 (S1), 2 and 3 (S2), 4 (SEL_MIXED) */
#define WAITING  8        /* BRAID__WAITING */
#define DEAD     9        /* the operation returned: the waiter is gone */
#define TIMEDOUT 6        /* -ETIMEDOUT */
#define CANCELED 7        /* -ECANCELED */
#define K_OK     0        /* channel outcomes: kind * 2 + case index */
#define K_PIPE   1
#define K_BADF   2
#define OUTCOME(kind, idx) ((kind) * 2 + (idx))

/* waiters */
#define W_S1  0
#define W_S2  1
#define W_R1  2
#define W_SEL 3
#define NWAIT 4
/* nodes: 0 S1 on c0 sendq, 1 S2 on c1 sendq, 2 R1 on c0 recvq,
   3 SEL case 0 on c0 recvq, 4 SEL case 1 on c1 recvq */
#define NNODE 5
#define NW(n)   ((n) - (n) / 4)      /* the waiter of node n */
#define NIDX(n) ((n) / 4)            /* its case index */
/* wait lists: 0 c0.sendq, 1 c0.recvq, 2 c1.sendq, 3 c1.recvq; 2 slots each,
   holding node + 1 (0 = empty) */
#define L_C0S 0
#define L_C0R 1
#define L_C1S 2
#define L_C1R 3

byte wstate[NWAIT] = DEAD;      /* w->state */
byte park[NWAIT];               /* w->park: 0 running, 1 parked, 2 woken */
bit  runnable[NWAIT];           /* the coroutine was made runnable */
byte claimer[NWAIT];            /* ghost: _pid whose claim won */
byte wakes[NWAIT];              /* ghost: wakes in this operation */

byte ql[8];                     /* wait lists */
byte qn[4];
bit  nlinked[NNODE];            /* node->linked */
byte nval[NNODE];               /* node->elem: the value sent / received */

byte buf1;                      /* c1's buffer (cap 1): value, 0 = empty */
bit  txclosed1;                 /* c1's send handle closed (tx_open 0) */

bit  cancelled;                 /* R1's coro->cancelled */
bit  pub;                       /* R1's coro->waiter != NULL */
bit  armed;                     /* S2's w->timer is armed */

bit  sent_ok[NVAL + 1];                /* ghost: braid_send(v) returned 0 */
byte recvd[NVAL + 1];                  /* ghost: receives that returned v */
bit  moved[NVAL + 1];                  /* ghost: v was copied out of its sender */
bit  inop[NWAIT];               /* ghost: an operation is under way */

/* ---- wait lists (braid__wlist_*), inside a lock section --------------- */

inline list_push(L, n) {
    ql[2 * L + qn[L]] = n + 1; qn[L]++; nlinked[n] = 1
}

inline list_remove(L, n) {
    if
    :: nlinked[n] ->
        if
        :: ql[2 * L] == n + 1 -> ql[2 * L] = ql[2 * L + 1]
        :: else -> assert(ql[2 * L + 1] == n + 1)
        fi;
        ql[2 * L + 1] = 0; qn[L]--; nlinked[n] = 0
    :: else
    fi
}

/* ---- the waiter ----------------------------------------------------------- */

inline claim(w, oc) {
    assert(wstate[w] != DEAD);          /* nobody reaches a returned waiter */
    if
    :: wstate[w] == WAITING -> wstate[w] = oc; claimer[w] = _pid; won = 1
    :: else -> won = 0
    fi
}

/* The winner's wake: a load first; 1 (parked) means ready the coroutine
   with no store, since nobody else moves the word from 1.  Otherwise, in
   a later step, exchange park <- 2 and ready the coroutine if that saw 1
   (a thread waiter never stores 1: it sleeps on the futex until 2). */
inline wake(w) {
    assert(wstate[w] != DEAD && wstate[w] != WAITING && claimer[w] == _pid);
    wakes[w]++; assert(wakes[w] == 1);
    if
    :: park[w] == 1 -> assert(!runnable[w]); runnable[w] = 1
    :: else ->
        d_step {
            if
            :: park[w] == 1 -> assert(!runnable[w]); runnable[w] = 1
            :: else
            fi;
            park[w] = 2
        }
    fi
}

/* The same inside a lock section, the coroutine going to the batch bm. */
inline wake_batch(w, bm) {
    assert(wstate[w] != DEAD && wstate[w] != WAITING && claimer[w] == _pid);
    wakes[w]++; assert(wakes[w] == 1);
    if
    :: park[w] == 1 -> bm = bm | (1 << w)
    :: else
    fi;
    park[w] = 2
}

/* claim_first: pop nodes off L until one whose waiter we win; got = that
   node, or NONE. */
inline claim_first(L) {
    got = NONE;
    do
    :: qn[L] == 0 -> break
    :: else ->
        n = ql[2 * L] - 1;
        assert(wstate[NW(n)] != DEAD);   /* a dead waiter's node: use after return */
        list_remove(L, n);
        claim(NW(n), OUTCOME(K_OK, NIDX(n)));
        if
        :: won -> got = n; break
        :: else
        fi
    od;
    n = 0; won = 0
}

/* A new operation of waiter w (braid__waiter_init). */
inline op_start(w) {
    assert(wstate[w] == DEAD);
    wstate[w] = WAITING; park[w] = 0; claimer[w] = 0; wakes[w] = 0;
    inop[w] = 1
}

/* The coroutine parks (coro_wait: braid__park with the deferred action
   `parked`) and runs again once made runnable. */
inline park_coro(w) {
    d_step {
        if
        :: park[w] == 0 -> park[w] = 1
        :: else -> assert(park[w] == 2 && !runnable[w]); runnable[w] = 1
        fi
    }
}

/* An operation returns: none of its nodes is linked any more. */
inline op_end(w) {
    d_step {
        assert(wstate[w] != WAITING);
        wstate[w] = DEAD; inop[w] = 0; runnable[w] = 0; park[w] = 0;
        claimer[w] = 0; wakes[w] = 0
    }
}

/* ---- the receive halves (braid__chan_try_recv), inside a lock section ---- */

/* c0, capacity 0: straight from a waiting sender into node me's buffer.
   r: 1 done, 0 would block (tx_open of c0 never drops). */
inline try_recv_c0(me) {
    claim_first(L_C0S);
    if
    :: got != NONE ->
        nval[me] = nval[got]; moved[nval[got]] = 1; wk = NW(got); r = 1
    :: else -> r = 0
    fi;
    got = NONE
}

/* c1, capacity 1: the buffered value, then pull the first waiting sender
   into the freed slot; else (never with cap 1) straight from a sender;
   else -EPIPE once the send handle is closed.  r: 1 done, 0 block,
   2 -EPIPE. */
inline try_recv_c1(me) {
    if
    :: buf1 != 0 ->
        nval[me] = buf1; buf1 = 0; r = 1;
        claim_first(L_C1S);
        if
        :: got != NONE -> buf1 = nval[got]; moved[buf1] = 1; wk = NW(got)
        :: else
        fi
    :: else ->
        claim_first(L_C1S);
        if
        :: got != NONE ->
            nval[me] = nval[got]; moved[nval[got]] = 1; wk = NW(got); r = 1
        :: else -> r = 2 * txclosed1
        fi
    fi;
    got = NONE
}

/* A value returned by a receive. */
inline received(v) {
    assert(v != 0 && moved[v]); recvd[v]++; assert(recvd[v] == 1)
}

/* ---- the parties -------------------------------------------------------- */

/* S1: a plain thread, braid_send(c0, 1, deadline): thread_wait sleeps on
   the futex with the deadline itself and, once it has passed, claims
   -ETIMEDOUT for itself (failing that, it waits for the winner's wake). */
active proctype S1()
{
    byte r, n, got, wk = NONE;
    bit won;

    d_step {
        op_start(W_S1);
        claim_first(L_C0R);             /* try_send: a waiting receiver? */
        if
        :: got != NONE ->
            nval[got] = 1; moved[1] = 1; wk = NW(got); r = 1
        :: else ->                       /* cap 0: block */
            nval[0] = 1; list_push(L_C0S, 0); r = 0
        fi;
        got = NONE
    };
    if
    :: r == 1 ->
        wake(wk); wk = NONE;
        d_step { sent_ok[1] = 1; wstate[W_S1] = OUTCOME(K_OK, 0) }
    :: else ->
end_s1: do                              /* thread_wait */
        :: park[W_S1] == 2 -> break
        :: d_step {                     /* the deadline passed: claim it */
               wstate[W_S1] == WAITING -> wstate[W_S1] = TIMEDOUT;
               claimer[W_S1] = _pid
           }
           break
        od;
        if
        :: wstate[W_S1] == TIMEDOUT ->
#ifndef BUG_NO_UNLINK
            d_step { list_remove(L_C0S, 0) };   /* braid__chan_unlink */
#endif
            assert(!moved[1])           /* nothing was sent */
        :: else ->
            assert(wstate[W_S1] == OUTCOME(K_OK, 0));
            sent_ok[1] = 1
        fi;
        assert(!nlinked[0]);
        nval[0] = 0
    fi;
    op_end(W_S1)
}

/* S2: a coroutine, braid_send(c1, v, deadline) for v = 2, 3; the second
   blocks while the first is still buffered. */
active proctype S2()
{
    byte v = 2, r, n, got, wk = NONE;
    bit won;

    do
    :: v <= 3 ->
        d_step {
            op_start(W_S2);
            if
            :: txclosed1 -> r = 3                 /* -EBADF */
            :: else ->
                claim_first(L_C1R);
                if
                :: got != NONE ->                  /* straight into SEL */
                    nval[got] = v; moved[v] = 1; wk = NW(got); r = 1
                :: else ->
                    if
                    :: buf1 == 0 -> buf1 = v; moved[v] = 1; r = 1
                    :: else -> nval[1] = v; list_push(L_C1S, 1); r = 0
                    fi
                fi
            fi;
            got = NONE
        };
        if
        :: r == 1 ->
            if
            :: wk != NONE -> wake(wk); wk = NONE
            :: else
            fi;
            d_step { wstate[W_S2] = OUTCOME(K_OK, 0); sent_ok[v] = 1 }
        :: r == 3 ->
            d_step { wstate[W_S2] = OUTCOME(K_BADF, 0); assert(!moved[v]) }
        :: r == 0 ->                            /* block(): waiter_wait */
            armed = 1;                          /* braid__timer_start */
            park_coro(W_S2);
end_s2:     d_step { runnable[W_S2] -> runnable[W_S2] = 0 };
            armed = 0;                          /* braid__timer_stop */
            if
            :: wstate[W_S2] >= TIMEDOUT ->
#ifndef BUG_NO_UNLINK
                d_step { list_remove(L_C1S, 1) };   /* braid__chan_unlink */
#endif
                skip
            :: else
            fi;
            d_step {
                if
                :: wstate[W_S2] == OUTCOME(K_OK, 0) -> sent_ok[v] = 1
                :: else -> assert(!moved[v])    /* a failed send sent nothing */
                fi;
                nval[1] = 0
            }
        fi;
        assert(!nlinked[1]);
        op_end(W_S2);
        v++
    :: else -> break
    od
}

/* R1: a coroutine, braid_recv(c0, FOREVER); the canceller targets it. */
active proctype R1()
{
    byte r, n, got, wk = NONE;
    bit won, mine;

    d_step {
        op_start(W_R1);
        try_recv_c0(2);
        if
        :: r == 0 && cancelled -> r = 4    /* block(): cancel pending */
        :: r == 0 && !cancelled -> list_push(L_C0R, 2)
        :: else
        fi
    };
    if
    :: r == 1 ->
        if
        :: wk != NONE -> wake(wk); wk = NONE
        :: else
        fi;
        d_step { wstate[W_R1] = OUTCOME(K_OK, 0) }
    :: r == 4 ->
        wstate[W_R1] = CANCELED
    :: r == 0 ->                            /* braid__waiter_wait */
        pub = 1;                            /* me->waiter = w (coro->lk) */
        d_step {                            /* atomic_load(&me->cancelled) */
            if
            :: cancelled -> claim(W_R1, CANCELED); mine = won; won = 0
            :: else
            fi
        };
        if
        :: !mine ->
            park_coro(W_R1);
end_r1:     d_step { runnable[W_R1] -> runnable[W_R1] = 0 }
        :: else
        fi;
        pub = 0;                            /* me->waiter = NULL (coro->lk) */
        if
        :: wstate[W_R1] >= TIMEDOUT ->
#ifndef BUG_NO_UNLINK
            d_step { list_remove(L_C0R, 2) };
#endif
            skip
        :: else
        fi
    fi;
    d_step {
        assert(!nlinked[2]);
        if
        :: wstate[W_R1] == OUTCOME(K_OK, 0) -> received(nval[2])
        :: else -> assert(nval[2] == 0)     /* cancelled: nothing taken */
        fi;
        nval[2] = 0
    };
    op_end(W_R1)
}

#ifndef SEL_MIXED
/* SEL: a coroutine, braid_select({recv c0, recv c1}, FOREVER). */
active proctype SEL()
{
    byte r, n, got, wk = NONE, first, i, res;
    bit won;

    if                                  /* plan: the random poll order */
    :: first = 0
    :: first = 1
    fi;
    d_step {                            /* poll_cases: both locks held */
        op_start(W_SEL);
        i = first;
        if
        :: i == 0 -> try_recv_c0(3)
        :: else -> try_recv_c1(4)
        fi;
        if
        :: r == 0 ->
            i = 1 - i;
            if
            :: i == 0 -> try_recv_c0(3)
            :: else -> try_recv_c1(4)
            fi
        :: else
        fi;
        if
        :: r == 0 ->                    /* enqueue_all */
            list_push(L_C0R, 3); list_push(L_C1R, 4); i = NONE
        :: r == 1 -> wstate[W_SEL] = OUTCOME(K_OK, i)
        :: r == 2 -> wstate[W_SEL] = OUTCOME(K_PIPE, i)
        fi;
        first = 0
    };
    if
    :: r != 0 ->
        if
        :: wk != NONE -> wake(wk); wk = NONE
        :: else
        fi
    :: else ->
        park_coro(W_SEL);
end_sel: d_step { runnable[W_SEL] -> runnable[W_SEL] = 0 };
        /* dequeue_all: every node but the one a channel party decided us
           through (it unlinked that one), each under its channel's lock */
        if
        :: wstate[W_SEL] < TIMEDOUT -> i = wstate[W_SEL] % 2
        :: else -> i = NONE
        fi;
        if
        :: i != 0 -> d_step { list_remove(L_C0R, 3) }
        :: else
        fi;
        if
        :: i != 1 -> d_step { list_remove(L_C1R, 4) }
        :: else
        fi
    fi;
    d_step {
        assert(!nlinked[3] && !nlinked[4]);
        res = wstate[W_SEL];
        assert(res < TIMEDOUT);         /* no deadline, not cancelled */
        i = res % 2;
        if
        :: res / 2 == K_OK ->
            received(nval[3 + i]);
            assert(nval[4 - i] == 0)    /* the other case took nothing */
        :: else ->
            assert(nval[3] == 0 && nval[4] == 0)
        fi;
        nval[3] = 0; nval[4] = 0; i = 0; res = 0
    };
    op_end(W_SEL)
}
#else
/* SEL (SEL_MIXED): a coroutine, braid_select({send c0 <- 4, recv c1},
   FOREVER): its send case competes with S1 for R1. */
active proctype SEL()
{
    byte r, n, got, wk = NONE, first, i, res;
    bit won;

    if                                  /* plan: the random poll order */
    :: first = 0
    :: first = 1
    fi;
    d_step {                            /* poll_cases: both locks held */
        op_start(W_SEL);
        i = first;
        do
        :: i == 0 ->                    /* try_send on c0 (cap 0) */
            claim_first(L_C0R);
            if
            :: got != NONE ->
                nval[got] = 4; moved[4] = 1; wk = NW(got); r = 1
            :: else -> r = 0
            fi;
            got = NONE;
            if
            :: r == 0 && first == 0 -> i = 1
            :: else -> break
            fi
        :: i == 1 ->
            try_recv_c1(4);
            if
            :: r == 0 && first == 1 -> i = 0
            :: else -> break
            fi
        od;
        if
        :: r == 0 ->                    /* enqueue_all */
            nval[3] = 4; list_push(L_C0S, 3); list_push(L_C1R, 4); i = NONE
        :: r == 1 -> wstate[W_SEL] = OUTCOME(K_OK, i)
        :: r == 2 -> wstate[W_SEL] = OUTCOME(K_PIPE, i)
        fi;
        first = 0
    };
    if
    :: r != 0 ->
        if
        :: wk != NONE -> wake(wk); wk = NONE
        :: else
        fi
    :: else ->
        park_coro(W_SEL);
end_sel: d_step { runnable[W_SEL] -> runnable[W_SEL] = 0 };
        if                              /* dequeue_all */
        :: wstate[W_SEL] < TIMEDOUT -> i = wstate[W_SEL] % 2
        :: else -> i = NONE
        fi;
        if
        :: i != 0 -> d_step { list_remove(L_C0S, 3) }
        :: else
        fi;
        if
        :: i != 1 -> d_step { list_remove(L_C1R, 4) }
        :: else
        fi
    fi;
    d_step {
        assert(!nlinked[3] && !nlinked[4]);
        res = wstate[W_SEL];
        assert(res < TIMEDOUT);
        i = res % 2;
        if
        :: res == OUTCOME(K_OK, 0) ->   /* sent: the recv case took nothing */
            sent_ok[4] = 1; assert(moved[4] && nval[4] == 0)
        :: res == OUTCOME(K_OK, 1) ->   /* received: the send case sent nothing */
            received(nval[4]); assert(!moved[4])
        :: else ->
            assert(!moved[4] && nval[4] == 0)
        fi;
        nval[3] = 0; nval[4] = 0; i = 0; res = 0
    };
    op_end(W_SEL)
}
#endif

/* evict: unlink and decide every node of L with kind; coroutines go to
   the batch bm.  Inside the closer's lock section. */
inline evict(L, kind) {
    do
    :: qn[L] == 0 -> break
    :: else ->
        n = ql[2 * L] - 1;
        assert(wstate[NW(n)] != DEAD);
        list_remove(L, n);
#ifndef BUG_WAKE_NO_CLAIM
        claim(NW(n), OUTCOME(kind, NIDX(n)));
        if
        :: won -> wake_batch(NW(n), bm)
        :: else
        fi
#else
        wstate[NW(n)] = OUTCOME(kind, NIDX(n)); claimer[NW(n)] = _pid;
        wake_batch(NW(n), bm)
#endif
    od;
    n = 0; won = 0
}

/* closer: braid_tx_close on c1's only send handle. */
active proctype closer()
{
    byte n, bm, w;
    bit won;

    d_step {
        txclosed1 = 1;                  /* tx->closed; tx_open-- (to 0) */
        evict(L_C1S, K_BADF);           /* calls blocked on this handle */
        evict(L_C1R, K_PIPE)            /* last send handle: EOF */
    };
    d_step {                            /* close_finish: braid__ready_batch */
        w = 0;
        do
        :: w < NWAIT ->
            if
            :: bm & (1 << w) -> assert(!runnable[w]); runnable[w] = 1
            :: else
            fi;
            w++
        :: else -> break
        od;
        w = 0; bm = 0
    }
}

/* canceller: braid_cancel(R1). */
active proctype canceller()
{
    bit won, cw;

    cancelled = 1;
    d_step {                            /* under coro->lk */
        if
        :: pub -> claim(W_R1, CANCELED); cw = won; won = 0
        :: else
        fi
    };
    if
    :: cw -> wake(W_R1)
    :: else
    fi
}

/* timer: on_timer for S2's deadline, run by the I/O thread under the heap
   lock (so braid__timer_stop waits for it), then the batch is readied. */
active proctype timer()
{
    byte bm;
    bit won;

end_timer:
    do
    :: d_step {
           armed ->
           armed = 0;
           claim(W_S2, TIMEDOUT);
           if
           :: won -> wake_batch(W_S2, bm)
           :: else
           fi;
           won = 0
       };
       if
       :: d_step { bm != 0 -> assert(!runnable[W_S2]); runnable[W_S2] = 1; bm = 0 }
       :: else
       fi
    od
}

/* When nothing can move: conservation, and no decided waiter left parked. */
active proctype monitor()
{
    byte w, v;
end_monitor:
    timeout ->
    d_step {
        w = 0;
        do
        :: w < NWAIT -> assert(!inop[w] || wstate[w] == WAITING); w++
        :: else -> break
        od;
        v = 1;
        do
        :: v <= NVAL ->
            if
            :: sent_ok[v] -> assert(recvd[v] + (buf1 == v) == 1)
            :: else -> assert(recvd[v] == 0 && buf1 != v)
            fi;
            v++
        :: else -> break
        od
    }
}
