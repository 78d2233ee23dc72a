/*
 * poller.h - the I/O thread, as the runtime sees it.  braid_run starts it
 * with braid__poller_start and stops it with braid__poller_stop; timer.c
 * kicks it when a new deadline is earlier than the one it sleeps towards.
 */
#ifndef BRAID_POLLER_H
#define BRAID_POLLER_H

#include "../runtime/common.h"
#include "../runtime/sched.h"

int  braid__poller_start(void);   /* 0 or -errno */
void braid__poller_stop(void);    /* joins the thread, closes its fds */
/* A worker with nothing to run takes the readiness the kernel already
   has (epoll_wait with timeout 0, as Go's findrunnable polls): waiters it
   completes go to b, for that worker to run, without the hop through the
   I/O thread and a parked worker's futex.  Returns the events seen.
   wait_ns > 0: wait that long for the first event (a worker's nap, sched.c);
   -ENOSYS when it cannot wait there (no epoll_pwait2, or the sockets' set
   is closed or not open yet): the caller sleeps another way. */
int braid__poller_poll(braid__batch *b, int64_t wait_ns);
/* The last worker to park calls this: the I/O thread then watches the
   sockets itself (poller.c). */
void braid__poller_idle(void);

/* Wake the I/O thread if it sleeps past `when` (ns, absolute). */
void braid__poller_kick(int64_t when);

/* Shut down pools (file, blocking) started lazily by netio; called by
   braid_run after the workers stopped. */
void braid__netio_fini(void);

#endif
