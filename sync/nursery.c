/*
 * nursery.c - structured concurrency (trio's nursery, libdill's bundle).
 *
 * A nursery owns its children: each is a joinable coroutine recorded in a
 * list of `child` records.  close waits for all of them and joins them, so
 * none outlives the nursery.
 *
 * Fields and locks:
 *   lk         spinlock protecting children, cancelled, joining and each
 *              record's t (braid_cancel on a child runs under lk, so close
 *              cannot free the handle underneath it)
 *   live       a wait group counting children that have not returned from
 *              fn, plus braid_nursery_go calls still publishing a handle
 *              (go adds 2 under lk: one for the child, one for itself)
 *   err        first non-zero child result (CAS from 0: first in time)
 *   watchdog   with a finite deadline, a coroutine that waits on `stop`
 *              until the deadline and then cancels the nursery; close
 *              releases `stop` and joins it
 * Close: wait for live == 0 (on its own cancellation: cancel the children,
 * then poll), then under lk re-check live == 0 and set joining (so no go
 * or cancel touches the handles any more), then join every child (each has
 * returned from fn, so the joins are short) and free everything.
 * Lock order: lk < wait group lk < coro->lk < scheduler locks.
 */
#include "../runtime/common.h"
#include "sync.h"

#include <stdlib.h>

typedef struct child {
    struct child *next;       /* lk: nursery's list */
    braid_task *t;            /* lk; NULL until spawned (or if it failed) */
    int (*fn)(void *);        /* immutable */
    void *arg;                /* immutable */
    braid_nursery *n;         /* immutable */
} child;

struct braid_nursery {
    braid__spin lk;
    bool cancelled;           /* lk; sticky */
    bool joining;             /* lk; close is joining: handles off limits */
    child *children;          /* lk */
    braid_wg live;            /* see above */
    _Atomic int err;          /* first failure */
    int64_t deadline;         /* immutable */
    braid_task *watchdog;     /* immutable after open; NULL: none */
    braid_sem stop;           /* released by close for the watchdog */
};

/* Wait for t, whatever the caller's cancellation state. */
static void join_fully(braid_task *t)
{
    braid__nocancel_push();
    int r = braid_join(t, NULL, BRAID_FOREVER);
    braid__nocancel_pop();
    BRAID_ASSERT(r == 0);
    (void)r;
}

static void *watchdog_main(void *arg)
{
    braid_nursery *n = arg;
    int r = braid_sem_acquire(&n->stop, n->deadline);
    if (r == -ETIMEDOUT || r == -EAGAIN)
        braid_nursery_cancel(n);
    return NULL;
}

/* Open a nursery whose children are cancelled at deadline. */
BRAID_EXPORT int braid_nursery_open(braid_nursery **out, int64_t deadline)
{
    BRAID__FORK_GUARD();
    if (!out || deadline < BRAID_FOREVER)
        return -EINVAL;
    braid_nursery *n = calloc(1, sizeof *n);
    if (!n)
        return -ENOMEM;
    n->deadline = deadline;
    if (braid__deadline_past(deadline)) {
        n->cancelled = true;
    } else if (deadline != BRAID_FOREVER) {
        braid_attr a = { .name = "nursery watchdog" };
        int r = braid_spawn(&n->watchdog, watchdog_main, n, &a);
        if (r < 0) {
            free(n);
            return r;
        }
    }
    *out = n;
    return 0;
}

static void *child_main(void *arg)
{
    child *c = arg;
    braid_nursery *n = c->n;
    int r = c->fn(c->arg);
    int zero = 0;
    if (r != 0)
        atomic_compare_exchange_strong(&n->err, &zero, r);
    braid_wg_done(&n->live);
    return NULL;
}

/* Under lk: mark n cancelled and cancel every child it has. */
static void cancel_locked(braid_nursery *n)
{
    n->cancelled = true;
    if (!n->joining)
        for (child *c = n->children; c; c = c->next)
            if (c->t)
                braid_cancel(c->t);
}

/* Under lk: link c and count it (and the go call) in live. */
static int enroll(braid_nursery *n, child *c)
{
    if (n->cancelled || n->joining)
        return -ECANCELED;
    if (braid__deadline_past(n->deadline)) {   /* ahead of the watchdog */
        cancel_locked(n);
        return -ECANCELED;
    }
    int r = braid_wg_add(&n->live, 2);
    if (r < 0)
        return r;
    c->next = n->children;
    n->children = c;
    return 0;
}

/* Start fn(arg) as a child of n. */
BRAID_EXPORT int braid_nursery_go(braid_nursery *n, int (*fn)(void *),
                                  void *arg)
{
    if (!n || !fn)
        return -EINVAL;
    child *c = calloc(1, sizeof *c);
    if (!c)
        return -ENOMEM;
    *c = (child){ .fn = fn, .arg = arg, .n = n };
    braid__spin_lock(&n->lk);
    int r = enroll(n, c);
    braid__spin_unlock(&n->lk);
    if (r < 0) {
        free(c);
        return r;
    }
    braid_task *t;
    braid_attr a = { .name = "nursery child" };
    r = braid_spawn(&t, child_main, c, &a);
    braid__spin_lock(&n->lk);
    if (r == 0) {
        c->t = t;
        if (n->cancelled)
            braid_cancel(t);
    }
    braid__spin_unlock(&n->lk);
    if (r < 0)
        braid_wg_done(&n->live);      /* the child's count */
    braid_wg_done(&n->live);          /* this call's count */
    return r;
}

/* Cancel every child (and every later braid_nursery_go). */
BRAID_EXPORT int braid_nursery_cancel(braid_nursery *n)
{
    BRAID__FORK_GUARD();
    if (!n)
        return -EINVAL;
    braid__spin_lock(&n->lk);
    cancel_locked(n);
    braid__spin_unlock(&n->lk);
    return 0;
}

/* Wait until no child runs and no go is in flight, then set joining. */
static void drain(braid_nursery *n)
{
    for (;;) {
        int r = braid_wg_wait(&n->live, BRAID_FOREVER);
        if (r == -ECANCELED) {        /* the closer was cancelled */
            braid_nursery_cancel(n);
            braid__nocancel_push();
            r = braid_wg_wait(&n->live, BRAID_FOREVER);
            braid__nocancel_pop();
        }
        braid__spin_lock(&n->lk);
        if (braid__wg_count(&n->live) == 0) {
            n->joining = true;
            braid__spin_unlock(&n->lk);
            return;
        }
        braid__spin_unlock(&n->lk);
    }
}

/* Wait for every child, join them, free n; 0 or the first failure. */
BRAID_EXPORT int braid_nursery_close(braid_nursery *n)
{
    BRAID__FORK_GUARD();
    if (!n)
        return -EINVAL;
    drain(n);
    child *c = n->children;
    while (c) {
        child *next = c->next;
        if (c->t)
            join_fully(c->t);
        free(c);
        c = next;
    }
    if (n->watchdog) {
        braid_sem_release(&n->stop);
        join_fully(n->watchdog);
    }
    int err = atomic_load(&n->err);
    free(n);
    return err;
}
