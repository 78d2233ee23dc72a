/*
 * poller.h - the I/O thread, as the runtime sees it.  braid_run starts it
 * with braid__poller_start and stops it with braid__poller_stop; timer.c
 * kicks it when a new deadline is earlier than the one it sleeps towards.
 */
#ifndef BRAID_POLLER_H
#define BRAID_POLLER_H

#include "../runtime/common.h"

int  braid__poller_start(void);   /* 0 or -errno */
void braid__poller_stop(void);    /* joins the thread, closes its fds */
/* Wake the I/O thread if it sleeps past `when` (ns, absolute). */
void braid__poller_kick(int64_t when);

/* Shut down pools (file, blocking) started lazily by netio; called by
   braid_run after the workers stopped. */
void braid__netio_fini(void);

#endif
