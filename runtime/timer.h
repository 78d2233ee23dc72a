/*
 * timer.h - deadlines and sleeps.  Expired by the I/O thread, and by
 * workers that find a deadline already past (braid__timers_expire_late).
 *
 * One 4-ary min-heap per worker plus one for plain threads, each behind its
 * own spinlock, so that workers arming deadlines on a hot path never
 * serialise on one lock.  A timer remembers its heap and slot, so stop is
 * O(log n) from any thread.  The I/O thread sleeps until the earliest
 * deadline over all heaps (each heap publishes its earliest in an atomic)
 * and is kicked through braid__poller_kick() when an arm makes a heap's
 * earliest deadline earlier than the one the I/O thread sleeps towards.
 *
 * A timer's fn runs with the heap lock held (on the I/O thread, or on a
 * worker that found it late), so once braid__timer_stop returns the timer
 * is neither pending nor running: it never fires twice or after its stop
 * returned.  fn must be short and must not take a heap lock or any lock a
 * worker may hold while it switches (it may claim a waiter and add to
 * the batch).
 */
#ifndef BRAID_TIMER_H
#define BRAID_TIMER_H

#include "common.h"

typedef struct braid__batch braid__batch;
typedef struct braid__timer braid__timer;

struct braid__timer {
    int64_t when;                                   /* absolute, ns */
    void (*fn)(braid__timer *t, braid__batch *b);   /* runs on expiry */
    uint32_t slot;     /* heap index + 1, 0 when not armed; heap lock */
    uint32_t heap;     /* which heap holds it; heap lock */
};

/* Arm t to run fn at when.  t must not be armed.  Returns 0, -ENOMEM. */
int braid__timer_start(braid__timer *t, int64_t when,
                       void (*fn)(braid__timer *, braid__batch *));

/* Disarm t.  1: removed before it fired; 0: it was not armed or has fired
   (and its fn has returned). */
int braid__timer_stop(braid__timer *t);

/* Earliest deadline over all heaps, or -1 when none is armed. */
int64_t braid__timers_next(void);

/* Run every timer whose deadline is <= now; the coroutines they ready go
   into b.  Called by the I/O thread.  Returns the number fired. */
int braid__timers_expire(int64_t now, braid__batch *b);

/* A worker at its global-queue turn: run the timers already due, if the
   heap is free, into b.  The I/O thread sleeps towards the earliest
   deadline, but it is one thread: when the kernel does not run it on time
   (both CPUs busy with workers) every deadline waits for it, 3-5 ms in
   bench sleep while 10,000 sleepers were being spawned.  Workers that keep
   switching fire them instead, as Go's Ps check timers when they
   schedule.  Costs one relaxed load while no timer is armed. */
int braid__timers_expire_late(braid__batch *b);
/* Count of armed timers (for deadlock detection). */
long braid__timers_armed(void);

int  braid__timers_init(unsigned nheaps);
void braid__timers_fini(void);

#endif
